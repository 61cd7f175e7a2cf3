/* Embedding: warp the face straight into the network input (no uint8 round trip), run the
 * embedder, L2-normalise; optionally add the embedding of the mirrored crop first. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <string.h>

/* Returns the length v had. */
static float l2_normalise(float *v, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
    for (int i = 0; i < n; i++) v[i] *= inv;
    return (float)sqrt(ss);
}

static int run_once(mien_session *s, const emb_model *em, nn_exec *x, const mien_image *img,
                    const float m[6], float *acc) {
    img_warp_affine_f32(img, m, em->size, em->size, em->mean, em->scale, nn_exec_input(x, 0));
    int rc = nn_exec_run(x, &s->err);
    if (rc) return rc;
    const float *y = nn_exec_output(x, 0);
    for (int i = 0; i < em->dim; i++) acc[i] += y[i];
    return MIEN_OK;
}

/* One embedder on the crop given by m: L2-normalised, with the mirrored crop added first;
 * *norm: the length of the output (of the two outputs' mean when mirrored). */
static int embed_part(mien_session *s, const emb_model *em, nn_exec *x, const mien_image *img,
                      const float m[6], float *emb, float *norm) {
    memset(emb, 0, (size_t)em->dim * sizeof *emb);
    int rc = run_once(s, em, x, img, m, emb);
    if (!rc && s->m->cfg.flip) {
        /* Mirror: crop pixel x reads what x' = size - x read before. */
        const float S = (float)em->size;
        float mf[6] = {-m[0], m[1], m[0] * S + m[2], -m[3], m[4], m[3] * S + m[5]};
        rc = run_once(s, em, x, img, mf, emb);
    }
    if (rc) return rc;
    *norm = l2_normalise(emb, em->dim) / (s->m->cfg.flip ? 2.f : 1.f);
    return MIEN_OK;
}

int face_embed_norm(mien_session *s, const mien_image *img, const mien_face *f, float sx,
                    float sy, float *emb, float *norm, const emb_model **part) {
    const mien_models *mm = s->m;
    const emb_model *parts[2] = {&mm->emb, &mm->emb2};
    nn_exec *execs[2] = {s->emb, s->emb2};
    const int n_parts = mm->emb2.g ? 2 : 1;
    const float w[2] = {mm->fuse_w, 1.f - mm->fuse_w};
    if (norm) *norm = -1.f, *part = NULL;
    float best_w = -1.f;
    for (int p = 0; p < n_parts; p++) {
        float m[6];
        if (!face_embed_matrix(parts[p], f, m))
            return mien_err_set(&s->err, MIEN_EINVAL, "embed: degenerate landmarks");
        for (int c = 0; c < 3; c++) m[c] /= sx, m[3 + c] /= sy;
        float len;
        int rc = embed_part(s, parts[p], execs[p], img, m, emb, &len);
        if (rc) return rc;
        /* A fused recognizer's norm is its calibrated part's that weighs most in the score
         * (the first on a tie): the recognizability says how well that part sees the face. */
        if (norm && parts[p]->norm_width > 0 && (*part == NULL || w[p] > best_w))
            *norm = len, *part = parts[p], best_w = w[p];
        if (n_parts > 1) {
            /* sqrt of the weight, so the dot product of two such vectors is the weighted sum
             * of the parts' cosines; the weights add up to 1, so the result stays unit. */
            const float k = sqrtf(w[p]);
            for (int i = 0; i < parts[p]->dim; i++) emb[i] *= k;
        }
        emb += parts[p]->dim;
    }
    return MIEN_OK;
}

int face_embed_scaled(mien_session *s, const mien_image *img, const mien_face *f, float sx,
                      float sy, float *emb) {
    return face_embed_norm(s, img, f, sx, sy, emb, NULL, NULL);
}

int mien_embed(mien_session *s, const mien_image *img, const mien_face *face, float *emb) {
    if (!s || !img || !img->rgb || !face || !emb) return MIEN_EINVAL;
    return face_embed_scaled(s, img, face, 1.f, 1.f, emb);
}

int mien_embed_aligned(mien_session *s, const mien_image *chip, float *emb) {
    if (!s || !chip || !chip->rgb || !emb) return MIEN_EINVAL;
    const mien_models *mm = s->m;
    /* A fused recognizer whose two parts use the same crop (the default's two embedders both
     * take the ArcFace 112x112 crop) embeds one chip with both; other pairs crop twice. */
    if (mm->emb2.g && (mm->emb2.size != mm->emb.size || mm->emb2.dlib_chip != mm->emb.dlib_chip ||
                       memcmp(mm->emb2.tmpl, mm->emb.tmpl, sizeof mm->emb.tmpl)))
        return mien_err_set(&s->err, MIEN_EUNSUPPORTED,
                            "a fused recognizer of two crops crops each face twice: embed from the photo");
    /* Scale the chip onto the network input (identity when it already has that size). */
    const float k = (float)chip->width / (float)mm->emb.size;
    const float ky = (float)chip->height / (float)mm->emb.size;
    const float m[6] = {k, 0, 0, 0, ky, 0};
    float len; /* the feature norm: not asked for here */
    int rc = embed_part(s, &mm->emb, s->emb, chip, m, emb, &len);
    if (rc || !mm->emb2.g) return rc;
    rc = embed_part(s, &mm->emb2, s->emb2, chip, m, emb + mm->emb.dim, &len);
    if (rc) return rc;
    const float k1 = sqrtf(mm->fuse_w), k2 = sqrtf(1.f - mm->fuse_w); /* as face_embed_scaled */
    for (int i = 0; i < mm->emb.dim; i++) emb[i] *= k1;
    for (int i = 0; i < mm->emb2.dim; i++) emb[mm->emb.dim + i] *= k2;
    return MIEN_OK;
}

float mien_similarity(const float *a, const float *b, int dim) {
    double d = 0;
    for (int i = 0; i < dim; i++) d += (double)a[i] * b[i];
    return (float)d;
}
