/* peer_mien: mien's side of bench/peers.sh (side by side with PyTorch, dlib and OpenCV).
 *
 *   peer_mien run MODELS NAME IN.f32 OUT.f32       run one model on a raw float32 input
 *                                                  (NHWC, the model's input shape) and write
 *                                                  its first output: for the equality checks
 *   peer_mien time MODELS NAME THREADS SECONDS     median ms per inference after warm-up
 *   peer_mien detect MODELS DETECTOR THREADS LIST  median ms per photo of detection alone
 *                                                  (photos decoded beforehand) over the
 *                                                  photos listed one per line in LIST
 * NAME: mobilefacenet (human/mobilefacenet.json, 112x112) or dlib (face-api's ResNet,
 * 150x150). Prints one JSON object. Built by bench/peers.sh against build/libmien.a. */
#include "mien.h"
#include "nn/exec.h"
#include "nn/faceapi.h"
#include "nn/tfjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The thread's CPU time: on a shared machine, the time the work holds a core. */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static nn_graph *load(const char *dir, const char *name) {
    char path[4096];
    nn_graph *g = NULL;
    mien_err e = {0};
    int rc;
    if (!strcmp(name, "mobilefacenet")) {
        int64_t dims[4] = {1, 112, 112, 3};
        snprintf(path, sizeof path, "%s/human/mobilefacenet.json", dir);
        rc = nn_tfjs_load(path, dims, NULL, 0, &g, &e);
    } else if (!strcmp(name, "dlib")) {
        snprintf(path, sizeof path, "%s/faceapi/face_recognition_model-weights_manifest.json", dir);
        rc = nn_faceapi_recognition_load(path, &g, &e);
    } else {
        fprintf(stderr, "peer_mien: unknown model %s\n", name);
        exit(2);
    }
    if (rc) {
        fprintf(stderr, "peer_mien: %s: %s\n", name, e.msg);
        exit(1);
    }
    return g;
}

static nn_exec *make_exec(const nn_graph *g, int threads) {
    nn_exec_opts o = {.backend = NN_BACKEND_FAST, .threads = threads};
    nn_exec *x = NULL;
    mien_err e = {0};
    if (nn_exec_create(g, &o, &x, &e)) {
        fprintf(stderr, "peer_mien: %s\n", e.msg);
        exit(1);
    }
    return x;
}

static int cmd_run(const char *dir, const char *name, const char *in, const char *out) {
    nn_graph *g = load(dir, name);
    nn_exec *x = make_exec(g, 1);
    const int64_t n_in = g->t[g->inputs[0]].n, n_out = g->t[g->outputs[0]].n;
    FILE *f = fopen(in, "rb");
    if (!f || fread(nn_exec_input(x, 0), sizeof(float), (size_t)n_in, f) != (size_t)n_in) {
        fprintf(stderr, "peer_mien: %s: cannot read %lld floats\n", in, (long long)n_in);
        return 1;
    }
    fclose(f);
    mien_err e = {0};
    if (nn_exec_run(x, &e)) {
        fprintf(stderr, "peer_mien: %s\n", e.msg);
        return 1;
    }
    f = fopen(out, "wb");
    if (!f || fwrite(nn_exec_output(x, 0), sizeof(float), (size_t)n_out, f) != (size_t)n_out) {
        fprintf(stderr, "peer_mien: cannot write %s\n", out);
        return 1;
    }
    fclose(f);
    printf("{\"model\":\"%s\",\"outputs\":%lld}\n", name, (long long)n_out);
    nn_exec_free(x);
    nn_graph_free(g);
    return 0;
}

static int cmd_time(const char *dir, const char *name, int threads, double seconds) {
    nn_graph *g = load(dir, name);
    nn_exec *x = make_exec(g, threads);
    float *in = nn_exec_input(x, 0);
    for (int64_t i = 0; i < g->t[g->inputs[0]].n; i++) in[i] = (float)(i % 255) / 255.f;
    mien_err e = {0};
    double end = now() + seconds * 0.2;
    while (now() < end) nn_exec_run(x, &e);
    static double t[4096], c[4096];
    int n = 0;
    end = now() + seconds;
    while ((n < 10 || now() < end) && n < 4096) {
        double t0 = now(), c0 = cpu_now();
        if (nn_exec_run(x, &e)) {
            fprintf(stderr, "peer_mien: %s\n", e.msg);
            return 1;
        }
        c[n] = (cpu_now() - c0) * 1e3;
        t[n++] = (now() - t0) * 1e3;
    }
    printf("{\"tool\":\"mien\",\"model\":\"%s\",\"threads\":%d,\"ms\":%.4f,\"cpu_ms\":%.4f,"
           "\"runs\":%d,\"gflop\":%.4f}\n",
           name, threads, median(t, n), median(c, n), n, nn_graph_flops(g) * 1e-9);
    nn_exec_free(x);
    nn_graph_free(g);
    return 0;
}

static int cmd_detect(const char *dir, const char *detector, int threads, const char *list) {
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.detector = detector;
    cfg.landmarks = "none"; /* the detector alone, as HOG and Haar */
    cfg.threads = threads;
    mien_models *m = NULL;
    mien_session *s = NULL;
    if (mien_models_open(dir, &cfg, &m) || mien_session_open(m, &s)) {
        fprintf(stderr, "peer_mien: %s\n", m ? mien_models_errmsg(m) : "out of memory");
        return 1;
    }
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "peer_mien: cannot read %s\n", list);
        return 1;
    }
    static mien_image img[4096];
    char line[4096];
    int n = 0;
    while (n < 4096 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        if (mien_image_load(s, line, &img[n])) {
            fprintf(stderr, "peer_mien: %s\n", mien_errmsg(s));
            return 1;
        }
        n++;
    }
    fclose(f);
    /* Passes over the photos: the first untimed, then the median of the 4 others. */
    enum { PASSES = 4 };
    double t[PASSES], c[PASSES];
    int faces = 0;
    for (int p = 0; p <= PASSES; p++) {
        double t0 = now(), c0 = cpu_now();
        int found = 0;
        for (int i = 0; i < n; i++) {
            mien_face *fa = NULL;
            int nf = 0;
            if (mien_detect(s, &img[i], NULL, &fa, &nf)) {
                fprintf(stderr, "peer_mien: %s\n", mien_errmsg(s));
                return 1;
            }
            found += nf;
            free(fa);
        }
        if (p) t[p - 1] = (now() - t0) * 1e3 / n, c[p - 1] = (cpu_now() - c0) * 1e3 / n;
        faces = found;
    }
    printf("{\"tool\":\"mien %s\",\"threads\":%d,\"images\":%d,\"ms_per_image\":%.4f,"
           "\"cpu_ms_per_image\":%.4f,\"faces\":%d}\n",
           detector, threads, n, median(t, PASSES), median(c, PASSES), faces);
    for (int i = 0; i < n; i++) mien_image_free(&img[i]);
    mien_session_close(s);
    mien_models_close(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "run")) return cmd_run(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 6 && !strcmp(argv[1], "time"))
        return cmd_time(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    if (argc == 6 && !strcmp(argv[1], "detect"))
        return cmd_detect(argv[2], argv[3], atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: peer_mien run MODELS NAME IN.f32 OUT.f32\n"
                    "       peer_mien time MODELS NAME THREADS SECONDS\n"
                    "       peer_mien detect MODELS DETECTOR THREADS LIST\n");
    return 2;
}
