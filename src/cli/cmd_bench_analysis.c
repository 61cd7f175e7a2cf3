/* mien bench, the face analysis section: the cost of mien_analyze for one face, on one thread
 * (the thread's CPU time, median of repeated runs), for each task alone and for the issue's
 * set (age, gender, expression, liveness and pose together; the target is 15 ms). The models
 * are the defaults, or those of --analysis. The face is the largest of the first demo photo,
 * already detected: this is the analysis alone, without detection. */
#include "cli/cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double thread_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median CPU ms of mien_analyze(flags): a tenth of `seconds` of warm-up, then at least
 * min_runs runs and `seconds` of them. -1 on failure. */
static double time_analyze(mien_session *s, const mien_image *img, const mien_face *f,
                           unsigned flags, double seconds, int min_runs, double *fastest) {
    mien_analysis a;
    double end = cli_now() + seconds * 0.1;
    do {
        if (mien_analyze(s, img, f, flags, &a)) return -1;
    } while (cli_now() < end);
    enum { CAP = 2000 };
    double *t = malloc(CAP * sizeof *t);
    if (!t) return -1;
    int n = 0;
    end = cli_now() + seconds;
    while ((n < min_runs || cli_now() < end) && n < CAP) {
        double c0 = thread_ms();
        if (mien_analyze(s, img, f, flags, &a)) {
            free(t);
            return -1;
        }
        t[n++] = thread_ms() - c0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    if (fastest) *fastest = t[0];
    free(t);
    return m;
}

int bench_analysis(const cli_common *c, double seconds, int quick, bench_analysis_result *r) {
    memset(r, 0, sizeof *r);
    cli_common lc = *c;
    lc.cfg.threads = 1;
    lc.cfg.backend = MIEN_BACKEND_AUTO;
    if (cli_analysis_tasks(c, NULL, &lc.cfg.analyze)) return -1;
    mien_models *m = cli_open_models(&lc);
    if (!m) return -1;
    mien_session *s = cli_open_session(m);
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0, rc = -1;
    snprintf(r->photo, sizeof r->photo, "%s/demo/sample1.jpg", c->models_dir);
    if (s && !mien_image_load(s, r->photo, &img) && !mien_detect(s, &img, NULL, &faces, &n) && n > 0) {
        const mien_face *f = &faces[cli_pick_largest(faces, n)];
        const int runs = quick ? 3 : 20;
        rc = 0;
        for (int t = 0; t < BENCH_ANALYSIS_TASKS && !rc; t++) {
            unsigned flag = 1u << t;
            r->ms[t] = -1;
            if (!(mien_models_analysis_tasks(m) & flag)) continue;
            snprintf(r->models[t], sizeof r->models[t], "%s", mien_models_analysis_names(m, flag));
            r->ms[t] = time_analyze(s, &img, f, flag, seconds, runs, &r->fastest_ms[t]);
            if (r->ms[t] < 0) rc = -1;
        }
        const unsigned five = MIEN_ANALYZE_AGE | MIEN_ANALYZE_GENDER | MIEN_ANALYZE_EXPRESSION |
                              MIEN_ANALYZE_LIVENESS | MIEN_ANALYZE_POSE;
        r->five_ms = !rc ? time_analyze(s, &img, f, five, seconds, runs, &r->five_fastest_ms) : -1;
        r->all_ms = !rc ? time_analyze(s, &img, f, mien_models_analysis_tasks(m), seconds, runs,
                                       &r->all_fastest_ms) : -1;
        if (r->five_ms < 0 || r->all_ms < 0) rc = -1;
    }
    if (rc) fprintf(stderr, "mien bench: face analysis: %s\n", s ? mien_errmsg(s) : "no session");
    free(faces);
    mien_image_free(&img);
    mien_session_close(s);
    mien_models_close(m);
    r->ok = !rc;
    return rc;
}

static const char *const task_names[BENCH_ANALYSIS_TASKS] = {
    "age", "gender", "expression", "liveness", "pose", "quality", "mask"};

cJSON *bench_analysis_json(const bench_analysis_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "photo", r->photo);
    cJSON *t = cJSON_AddArrayToObject(o, "tasks");
    for (int i = 0; i < BENCH_ANALYSIS_TASKS; i++) {
        if (r->ms[i] < 0 || !r->models[i][0]) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "task", task_names[i]);
        cJSON_AddStringToObject(x, "models", r->models[i]);
        cJSON_AddNumberToObject(x, "ms", round(r->ms[i] * 1000) / 1000);
        cJSON_AddNumberToObject(x, "fastest_ms", round(r->fastest_ms[i] * 1000) / 1000);
        cJSON_AddItemToArray(t, x);
    }
    cJSON_AddNumberToObject(o, "age_gender_expression_liveness_pose_ms", round(r->five_ms * 1000) / 1000);
    cJSON_AddNumberToObject(o, "age_gender_expression_liveness_pose_fastest_ms", round(r->five_fastest_ms * 1000) / 1000);
    cJSON_AddNumberToObject(o, "all_ms", round(r->all_ms * 1000) / 1000);
    cJSON_AddNumberToObject(o, "all_fastest_ms", round(r->all_fastest_ms * 1000) / 1000);
    cJSON_AddNumberToObject(o, "target_ms", 15);
    return o;
}

void bench_analysis_print(const bench_analysis_result *r) {
    printf("face analysis of one face (the largest of %s, detected already), 1 thread, CPU ms\n"
           "(median, and the fastest run: what a core free of other programs would give):\n",
           r->photo);
    for (int i = 0; i < BENCH_ANALYSIS_TASKS; i++)
        if (r->ms[i] >= 0 && r->models[i][0])
            printf("  %-11s %8.2f %8.2f  (%s)\n", task_names[i], r->ms[i], r->fastest_ms[i], r->models[i]);
    printf("  age + gender + expression + liveness + pose: %.2f ms, fastest %.2f (target 15 ms);\n"
           "  every task: %.2f ms, fastest %.2f\n", r->five_ms, r->five_fastest_ms, r->all_ms,
           r->all_fastest_ms);
}
