/* The JSON of a face analysis, shared by mien analyze, POST /v1/analyze and the web page.
 * The names are a contract (README, "Face analysis"): age (years), gender {value, score},
 * expression {value, scores {7}}, liveness {score, real, threshold}, pose {yaw, pitch, roll},
 * quality {score, parts...}, mask {value, score}; race {value, scores {5}} when GEAR ran. */
#include "server/server.h"

#include <math.h>
#include <string.h>

static double r3(float v) { return round((double)v * 1000.0) / 1000.0; }
static double r2(float v) { return round((double)v * 100.0) / 100.0; }

void srv_add_analysis_json(cJSON *o, const mien_analysis *a) {
    if (a->tasks & MIEN_ANALYZE_AGE) cJSON_AddNumberToObject(o, "age", round((double)a->age * 10) / 10);
    if (a->tasks & MIEN_ANALYZE_GENDER) {
        cJSON *g = cJSON_AddObjectToObject(o, "gender");
        cJSON_AddStringToObject(g, "value", a->male ? "male" : "female");
        cJSON_AddNumberToObject(g, "score", r3(a->gender_score));
    }
    if (a->race >= 0 && a->race < MIEN_RACES) {
        cJSON *x = cJSON_AddObjectToObject(o, "race");
        cJSON_AddStringToObject(x, "value", mien_race_names[a->race]);
        cJSON *sc = cJSON_AddObjectToObject(x, "scores");
        for (int i = 0; i < MIEN_RACES; i++)
            cJSON_AddNumberToObject(sc, mien_race_names[i], r3(a->race_scores[i]));
    }
    if (a->tasks & MIEN_ANALYZE_EXPRESSION) {
        cJSON *x = cJSON_AddObjectToObject(o, "expression");
        cJSON_AddStringToObject(x, "value", mien_expression_names[a->expression]);
        cJSON *sc = cJSON_AddObjectToObject(x, "scores");
        for (int i = 0; i < MIEN_EXPRESSIONS; i++)
            cJSON_AddNumberToObject(sc, mien_expression_names[i], r3(a->expression_scores[i]));
    }
    if (a->tasks & MIEN_ANALYZE_LIVENESS) {
        cJSON *l = cJSON_AddObjectToObject(o, "liveness");
        cJSON_AddNumberToObject(l, "score", r3(a->liveness));
        cJSON_AddBoolToObject(l, "real", a->real);
        cJSON_AddNumberToObject(l, "threshold", r3(a->liveness_threshold));
    }
    if (a->tasks & (MIEN_ANALYZE_POSE | MIEN_ANALYZE_QUALITY)) {
        cJSON *p = cJSON_AddObjectToObject(o, "pose");
        cJSON_AddNumberToObject(p, "yaw", r2(a->yaw));
        cJSON_AddNumberToObject(p, "pitch", r2(a->pitch));
        cJSON_AddNumberToObject(p, "roll", r2(a->roll));
    }
    if (a->tasks & MIEN_ANALYZE_QUALITY) {
        cJSON *q = cJSON_AddObjectToObject(o, "quality");
        cJSON_AddNumberToObject(q, "score", r3(a->quality));
        cJSON_AddNumberToObject(q, "sharpness", r2(a->sharpness));
        cJSON_AddNumberToObject(q, "brightness", r2(a->brightness));
        cJSON_AddNumberToObject(q, "contrast", r2(a->contrast));
        cJSON_AddNumberToObject(q, "face_size", r2(a->face_size));
        if (a->eyes_open >= 0) cJSON_AddNumberToObject(q, "eyes_open", r3(a->eyes_open));
        if (a->recognizability >= 0) cJSON_AddNumberToObject(q, "feature_norm", r2(a->feature_norm));
        cJSON *s = cJSON_AddObjectToObject(q, "scores");
        cJSON_AddNumberToObject(s, "sharpness", r3(a->sharpness_score));
        cJSON_AddNumberToObject(s, "brightness", r3(a->brightness_score));
        cJSON_AddNumberToObject(s, "contrast", r3(a->contrast_score));
        cJSON_AddNumberToObject(s, "face_size", r3(a->size_score));
        cJSON_AddNumberToObject(s, "pose", r3(a->pose_score));
        if (a->recognizability >= 0)
            cJSON_AddNumberToObject(s, "recognizability", r3(a->recognizability));
    }
    if (a->tasks & MIEN_ANALYZE_MASK) {
        cJSON *m = cJSON_AddObjectToObject(o, "mask");
        cJSON_AddStringToObject(m, "value", a->mask ? "mask" : "no_mask");
        cJSON_AddNumberToObject(m, "score", r3(a->mask_score));
    }
}

int srv_parse_analysis_tasks(const char *list, unsigned *tasks) {
    static const struct { const char *name; unsigned flag; } names[] = {
        {"age", MIEN_ANALYZE_AGE}, {"gender", MIEN_ANALYZE_GENDER},
        {"expression", MIEN_ANALYZE_EXPRESSION}, {"liveness", MIEN_ANALYZE_LIVENESS},
        {"pose", MIEN_ANALYZE_POSE}, {"quality", MIEN_ANALYZE_QUALITY},
        {"mask", MIEN_ANALYZE_MASK}, {"all", MIEN_ANALYZE_ALL},
    };
    *tasks = 0;
    const char *p = list;
    while (p && *p) {
        const char *end = p;
        while (*end && *end != ',') end++;
        size_t len = (size_t)(end - p);
        int found = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == len && !strncmp(names[i].name, p, len)) {
                *tasks |= names[i].flag;
                found = 1;
            }
        if (!found && len) return 0;
        p = *end ? end + 1 : end;
    }
    return *tasks != 0;
}
