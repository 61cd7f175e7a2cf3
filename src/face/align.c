/* Alignment: a least-squares similarity transform of the landmarks onto the ArcFace
 * template, and the warp of the face into the embedder's aligned crop. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <stdlib.h>

/* InsightFace's 5-point template for 112x112 crops, in OpenCV's pixel coordinates (pixel
 * centres at integers): left eye, right eye, nose tip, left and right mouth corners. */
const float mien_arcface_template[5][2] = {
    {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f},
    {41.5493f, 92.3655f}, {70.7299f, 92.2041f},
};

int face_similarity_fit(const float (*src)[2], const float (*dst)[2], int n, float m[6]) {
    /* For 2-D points the Umeyama solution has a closed form: with both point sets centred,
     * s cos(theta) = sum(src . dst) / sum|src|^2 and s sin(theta) = sum(src x dst) /
     * sum|src|^2 (no reflection possible). Accumulate in double. */
    if (n < 2) return 0;
    double msx = 0, msy = 0, mdx = 0, mdy = 0;
    for (int i = 0; i < n; i++) {
        msx += src[i][0], msy += src[i][1], mdx += dst[i][0], mdy += dst[i][1];
    }
    msx /= n, msy /= n, mdx /= n, mdy /= n;
    double a = 0, b = 0, norm = 0;
    for (int i = 0; i < n; i++) {
        double sx = src[i][0] - msx, sy = src[i][1] - msy;
        double dx = dst[i][0] - mdx, dy = dst[i][1] - mdy;
        a += sx * dx + sy * dy;
        b += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    if (!(norm > 1e-12) || !isfinite(a) || !isfinite(b)) return 0;
    double c = a / norm, s = b / norm;
    m[0] = (float)c;
    m[1] = (float)-s;
    m[2] = (float)(mdx - (c * msx - s * msy));
    m[3] = (float)s;
    m[4] = (float)c;
    m[5] = (float)(mdy - (s * msx + c * msy));
    return 1;
}

int face_affine_invert(const float m[6], float inv[6]) {
    double det = (double)m[0] * m[4] - (double)m[1] * m[3];
    if (!(fabs(det) > 1e-12) || !isfinite(det)) return 0;
    double i0 = m[4] / det, i1 = -m[1] / det, i3 = -m[3] / det, i4 = m[0] / det;
    inv[0] = (float)i0;
    inv[1] = (float)i1;
    inv[2] = (float)(-(i0 * m[2] + i1 * m[5]));
    inv[3] = (float)i3;
    inv[4] = (float)i4;
    inv[5] = (float)(-(i3 * m[2] + i4 * m[5]));
    return 1;
}

int face_align_matrix(const mien_face *f, const float (*tmpl)[2], float m[6]) {
    float dst[5][2], src[5][2];
    int n = f->n_points == 5 ? 5 : 4;
    for (int i = 0; i < 5; i++) {
        dst[i][0] = tmpl[i][0];
        dst[i][1] = tmpl[i][1];
        src[i][0] = f->points[i][0];
        src[i][1] = f->points[i][1];
    }
    if (n == 4) { /* mouth centre: the midpoint of the template's mouth corners */
        dst[3][0] = (dst[3][0] + dst[4][0]) * 0.5f;
        dst[3][1] = (dst[3][1] + dst[4][1]) * 0.5f;
    }
    for (int i = 0; i < n; i++)
        if (!isfinite(src[i][0]) || !isfinite(src[i][1])) return 0;
    float fwd[6];
    return face_similarity_fit((const float (*)[2])src, (const float (*)[2])dst, n, fwd) &&
           face_affine_invert(fwd, m);
}

/* dlib's mean face shape for points 17-67 of the 68-point scheme, normalised to the face box
 * (data from dlib/image_transforms/interpolation.h, Boost Software License). */
static const float dlib_mean_x[51] = {
    0.000213256f, 0.0752622f, 0.18113f, 0.29077f, 0.393397f, 0.586856f, 0.689483f, 0.799124f,
    0.904991f, 0.98004f, 0.490127f, 0.490127f, 0.490127f, 0.490127f, 0.36688f, 0.426036f,
    0.490127f, 0.554217f, 0.613373f, 0.121737f, 0.187122f, 0.265825f, 0.334606f, 0.260918f,
    0.182743f, 0.645647f, 0.714428f, 0.793132f, 0.858516f, 0.79751f, 0.719335f, 0.254149f,
    0.340985f, 0.428858f, 0.490127f, 0.551395f, 0.639268f, 0.726104f, 0.642159f, 0.556721f,
    0.490127f, 0.423532f, 0.338094f, 0.290379f, 0.428096f, 0.490127f, 0.552157f, 0.689874f,
    0.553364f, 0.490127f, 0.42689f,
};
static const float dlib_mean_y[51] = {
    0.106454f, 0.038915f, 0.0187482f, 0.0344891f, 0.0773906f, 0.0773906f, 0.0344891f,
    0.0187482f, 0.038915f, 0.106454f, 0.203352f, 0.307009f, 0.409805f, 0.515625f, 0.587326f,
    0.609345f, 0.628106f, 0.609345f, 0.587326f, 0.216423f, 0.178758f, 0.179852f, 0.231733f,
    0.245099f, 0.244077f, 0.231733f, 0.179852f, 0.178758f, 0.216423f, 0.244077f, 0.245099f,
    0.780233f, 0.745405f, 0.727388f, 0.742578f, 0.727388f, 0.745405f, 0.780233f, 0.864805f,
    0.902192f, 0.909281f, 0.902192f, 0.864805f, 0.784792f, 0.778746f, 0.785343f, 0.778746f,
    0.784792f, 0.824182f, 0.831803f, 0.824182f,
};

/* dlib's chip for face recognition: size x size with padding 0.25 around the mean face. */
static int dlib68_matrix(const mien_face *f, int size, float m[6]) {
    const float pad = 0.25f, S = (float)size;
    float src[51][2], dst[51][2];
    int n = 0;
    for (int i = 27; i < 68; i++) {
        /* dlib ignores the eyebrows (17-26) and the lower lip (55-59, 65-67). */
        if ((i >= 55 && i <= 59) || (i >= 65 && i <= 67)) continue;
        if (!isfinite(f->landmarks[i][0]) || !isfinite(f->landmarks[i][1])) return 0;
        src[n][0] = f->landmarks[i][0];
        src[n][1] = f->landmarks[i][1];
        dst[n][0] = (pad + dlib_mean_x[i - 17]) / (1.f + 2.f * pad) * S;
        dst[n][1] = (pad + dlib_mean_y[i - 17]) / (1.f + 2.f * pad) * S;
        n++;
    }
    float fwd[6];
    return face_similarity_fit((const float (*)[2])src, (const float (*)[2])dst, n, fwd) &&
           face_affine_invert(fwd, m);
}

int face_embed_matrix(const emb_model *em, const mien_face *f, float m[6]) {
    if (em->dlib_chip && f->n_landmarks == 68) return dlib68_matrix(f, em->size, m);
    return face_align_matrix(f, (const float (*)[2])em->tmpl, m);
}

int mien_align(mien_session *s, const mien_image *img, const mien_face *face, mien_image *out) {
    if (!s || !img || !face || !out) return MIEN_EINVAL;
    const int size = s->m->emb.size;
    float m[6];
    if (!face_embed_matrix(&s->m->emb, face, m))
        return mien_err_set(&s->err, MIEN_EINVAL, "align: degenerate landmarks");
    int rc = img_alloc(out, size, size, &s->err);
    if (rc) return rc;
    img_warp_affine(img, m, out);
    return MIEN_OK;
}
