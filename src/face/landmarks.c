/* Landmark refinement with MediaPipe's face mesh (468 points). BlazeFace gives eye centres,
 * nose tip and the mouth centre but no mouth corners; the mesh gives all five ArcFace points.
 *
 * As MediaPipe's face landmark graph does, the crop is the detection box scaled by 1.5,
 * squared, and rotated so the eyes are level; the network sees it at 192x192 with pixels in
 * [0, 1] and answers in crop pixels, which are mapped back through the same transform. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>

/* Mesh indices (image-left first on an upright face, i.e. the subject's right side). */
static const int eye_a[] = {33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246};
static const int eye_b[] = {263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466};
enum { NOSE_TIP = 1, MOUTH_A = 61, MOUTH_B = 291 };
#define ROI_SCALE 1.5f

int face_refine_landmarks(mien_session *s, const mien_image *img, mien_face *f) {
    if (!s->mesh) return MIEN_OK;
    const mesh_model *mm = &s->m->mesh;
    const float S = (float)mm->size;
    float cx = f->box[0] + f->box[2] * 0.5f, cy = f->box[1] + f->box[3] * 0.5f;
    float side = fmaxf(f->box[2], f->box[3]) * ROI_SCALE;
    float ang = atan2f(f->landmarks[1][1] - f->landmarks[0][1],
                       f->landmarks[1][0] - f->landmarks[0][0]);
    if (!isfinite(ang) || !(side > 0)) return MIEN_OK;
    float a = cosf(ang) * side / S, b = sinf(ang) * side / S, h = S * 0.5f;
    /* crop (u, v) -> image: centre + R (u - h, v - h) * side / S */
    float m[6] = {a, -b, cx - (a * h - b * h), b, a, cy - (b * h + a * h)};
    img_warp_affine_f32(img, m, mm->size, mm->size, 0.f, 1.f / 255.f, nn_exec_input(s->mesh, 0));
    int rc = nn_exec_run(s->mesh, &s->err);
    if (rc) return rc;
    const float *mesh = nn_exec_output(s->mesh, mm->out_mesh);
#define PX(i) (m[0] * mesh[3 * (i)] + m[1] * mesh[3 * (i) + 1] + m[2])
#define PY(i) (m[3] * mesh[3 * (i)] + m[4] * mesh[3 * (i) + 1] + m[5])
    const int n_eye = (int)(sizeof eye_a / sizeof eye_a[0]);
    float p[5][2] = {{0}};
    for (int k = 0; k < n_eye; k++) {
        p[0][0] += PX(eye_a[k]) / (float)n_eye;
        p[0][1] += PY(eye_a[k]) / (float)n_eye;
        p[1][0] += PX(eye_b[k]) / (float)n_eye;
        p[1][1] += PY(eye_b[k]) / (float)n_eye;
    }
    p[2][0] = PX(NOSE_TIP), p[2][1] = PY(NOSE_TIP);
    p[3][0] = PX(MOUTH_A), p[3][1] = PY(MOUTH_A);
    p[4][0] = PX(MOUTH_B), p[4][1] = PY(MOUTH_B);
#undef PX
#undef PY
    for (int i = 0; i < 5; i++)
        if (!isfinite(p[i][0]) || !isfinite(p[i][1])) return MIEN_OK;
    for (int i = 0; i < 5; i++) {
        f->points[i][0] = p[i][0];
        f->points[i][1] = p[i][1];
    }
    f->n_points = 5;
    return MIEN_OK;
}
