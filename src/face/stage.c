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
    const int side = img->width > img->height ? img->width : img->height;
    const int m = (int)ceilf(FACE_LOOK_MARGIN * (float)side);
    mien_image big;
    int rc = img_pad(img, m, 127, &big, &s->err);
    if (rc == MIEN_ETOOBIG) { /* a photo the margin would take too far: no look, no error */
        mien_err_clear(&s->err);
        return MIEN_OK;
    }
    if (rc) return rc;
    rc = face_detect_refined(s, &big, o, faces, n_faces);
    mien_image_free(&big);
    for (int i = 0; !rc && i < *n_faces; i++) face_move(&(*faces)[i], 1.f, 1.f, -(float)m, -(float)m);
    return rc;
}
