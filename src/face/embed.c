/* Embedding: warp the face straight into the network input (no uint8 round trip), run the
 * embedder, L2-normalise; optionally add the embedding of the mirrored crop first. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <string.h>

static void l2_normalise(float *v, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
    for (int i = 0; i < n; i++) v[i] *= inv;
}

static int run_once(mien_session *s, const mien_image *img, const float m[6], float *acc) {
    const emb_model *em = &s->m->emb;
    img_warp_affine_f32(img, m, em->size, em->size, em->mean, em->scale,
                        nn_exec_input(s->emb, 0));
    int rc = nn_exec_run(s->emb, &s->err);
    if (rc) return rc;
    const float *y = nn_exec_output(s->emb, 0);
    for (int i = 0; i < em->dim; i++) acc[i] += y[i];
    return MIEN_OK;
}

int face_embed_input(mien_session *s, const mien_image *img, const float m[6], float *emb) {
    const emb_model *em = &s->m->emb;
    memset(emb, 0, (size_t)em->dim * sizeof *emb);
    int rc = run_once(s, img, m, emb);
    if (!rc && s->m->cfg.flip) {
        /* Mirror: crop pixel x reads what x' = size - x read before. */
        const float S = (float)em->size;
        float mf[6] = {-m[0], m[1], m[0] * S + m[2], -m[3], m[4], m[3] * S + m[5]};
        rc = run_once(s, img, mf, emb);
    }
    if (rc) return rc;
    l2_normalise(emb, em->dim);
    return MIEN_OK;
}

int mien_embed(mien_session *s, const mien_image *img, const mien_face *face, float *emb) {
    if (!s || !img || !img->rgb || !face || !emb) return MIEN_EINVAL;
    float m[6];
    if (!face_embed_matrix(&s->m->emb, face, m))
        return mien_err_set(&s->err, MIEN_EINVAL, "embed: degenerate landmarks");
    return face_embed_input(s, img, m, emb);
}

int mien_embed_aligned(mien_session *s, const mien_image *chip, float *emb) {
    if (!s || !chip || !chip->rgb || !emb) return MIEN_EINVAL;
    /* Scale the chip onto the network input (identity when it already has that size). */
    const float k = (float)chip->width / (float)s->m->emb.size;
    const float ky = (float)chip->height / (float)s->m->emb.size;
    float m[6] = {k, 0, 0, 0, ky, 0};
    return face_embed_input(s, chip, m, emb);
}

float mien_similarity(const float *a, const float *b, int dim) {
    double d = 0;
    for (int i = 0; i < dim; i++) d += (double)a[i] * b[i];
    return (float)d;
}
