/* The detection stage as mien_detect and mien_photo_detect run it: the detector's boxes, each
 * refined by the landmark source (which may drop or doubt it), and, for a photo in which
 * nothing is found, a second look with a margin.
 *
 * Why the second look: detectors are trained on faces in context (WIDER FACE: people in
 * scenes), so a face that fills the frame or runs past its edges, as in a tight crop, a
 * passport-style cut-out or CFP's profiles, often gets no box at all. With a grey margin
 * of FACE_LOOK_MARGIN times the photo's longer side on every side the same face is a face
 * in a frame again. On cfp_dev the default stage missed 18 of 1,170 photos (17 profiles);
 * the second look finds a face in all but 3 of them, with nothing found on the dogs of
 * dlib_faces/dogs.jpg (bench/detector_checks.sh). Grey is 127, the value the detectors'
 * (x - 127) / 128 input normalisation takes to zero: no edge, no colour. The margin is
 * looked at only when the photo gave nothing, so photos with faces cost nothing more.
 * Only stages whose landmark source is O-Net look twice: the face mesh's presence check
 * lets one of the dogs through in the margin. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int face_detect_refined(mien_session *s, const mien_image *img, const mien_detect_options *o,
                        mien_face **faces, int *n_faces) {
    int rc = face_detect(s, img, o, faces, n_faces);
    if (rc || !s->lm) return rc;
    mien_detect_options def;
    mien_detect_options_default(&def);
    const float min_score = (o ? o : &def)->min_score;
    int kept = 0;
    for (int i = 0; i < *n_faces; i++) {
        int keep;
        if ((rc = face_refine_landmarks(s, img, &(*faces)[i], &keep))) {
            free(*faces);
            *faces = NULL;
            *n_faces = 0;
            return rc;
        }
        if (face_lm_kept(keep, &(*faces)[i], min_score)) (*faces)[kept++] = (*faces)[i];
    }
    *n_faces = kept;
    return MIEN_OK;
}

int face_second_look(mien_session *s, const mien_image *img, const mien_detect_options *o,
                     mien_face **faces, int *n_faces) {
    *faces = NULL;
    *n_faces = 0;
    if (!s->lm || s->m->lm.kind != LM_ONET) return MIEN_OK; /* see the top of the file */
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mien_err_set(&s->err, MIEN_EINVAL, "detect: empty image");
    const int side = img->width > img->height ? img->width : img->height;
    const int m = (int)ceilf(FACE_LOOK_MARGIN * (float)side);
    /* A photo the margin would take past the size limit gets no second look. */
    if ((long long)img->width + 2LL * m > MIEN_MAX_IMAGE_SIDE ||
        (long long)img->height + 2LL * m > MIEN_MAX_IMAGE_SIDE)
        return MIEN_OK;
    mien_image big = {0};
    int rc = img_alloc(&big, img->width + 2 * m, img->height + 2 * m, &s->err);
    if (rc) return rc;
    memset(big.rgb, 127, (size_t)big.width * (size_t)big.height * 3);
    const size_t row = (size_t)img->width * 3;
    for (int y = 0; y < img->height; y++)
        memcpy(big.rgb + ((size_t)(y + m) * (size_t)big.width + (size_t)m) * 3,
               img->rgb + (size_t)y * row, row);
    rc = face_detect_refined(s, &big, o, faces, n_faces);
    mien_image_free(&big);
    for (int i = 0; !rc && i < *n_faces; i++) {
        mien_face *f = &(*faces)[i];
        f->box[0] -= (float)m, f->box[1] -= (float)m;
        for (int k = 0; k < f->n_landmarks; k++) f->landmarks[k][0] -= (float)m, f->landmarks[k][1] -= (float)m;
        for (int k = 0; k < 5; k++) f->points[k][0] -= (float)m, f->points[k][1] -= (float)m;
    }
    return rc;
}
