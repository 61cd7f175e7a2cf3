/* mien bench: how close to the machine's peak the engine runs, measured in one run.
 *
 *   1. The fp32 peak: a cache-resident GEMM on our own AVX2/FMA kernel (the fast backend's)
 *      and OpenBLAS's sgemm, on 1 thread and on all; the faster is the reference.
 *   2. Every model: median ms per inference after warm-up, GFLOP (2 x the multiply-adds of
 *      the convolutions and fully connected layers: nn_graph_flops), GFLOP/s and the
 *      fraction of the peak (the reference GEMM timed again just before and after the
 *      model), on 1 thread and with all threads inside the layers.
 *   3. End to end on LFW-sized photos (250x250, $MIEN_DATA/lfw; the demo photos when absent),
 *      held in memory: decode, detect, refine the landmarks, embed the largest face, for the
 *      default pipeline and lighter ones, on 1 thread and with one session per thread.
 *   4. One big photo (a 1920-pixel demo photo, every face embedded) on 1 thread and with all
 *      threads inside the layers: what intra-op threads give a single request.
 *   5. Face analysis of one face on 1 thread (cmd_bench_analysis.c).
 * Medians everywhere: the machine may be shared. Single-thread figures are on the thread's
 * CPU clock (the time the work holds a core: on a shared machine the wall clock adds the
 * time other programs hold it), multi-thread and end-to-end ones on the wall clock; both
 * clocks are reported for the models, with the load average. */
#include "cli/cli.h"
#ifdef MIEN_HAVE_XNNPACK
#include "nn/backend_xnnpack_own.h" /* the fast backend's own GEMM, timed beside OpenBLAS */
#endif
#include "nn/exec.h"
#include "nn/faceapi.h"
#include "nn/tfjs.h"
#include "nn/onnx.h"
#include "nn/tflite.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <pthreadpool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS (libopenblas, linked by every build): declared here so that the build does not
 * depend on which cblas.h the alternatives system points at. */
enum { BENCH_ROW_MAJOR = 101, BENCH_NO_TRANS = 111 };
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);

static const char bench_usage[] =
    "usage: mien bench [--json] [options]\n"
    "\n"
    "Speed against the machine's own peak, in one run: the fp32 peak (a cache-resident GEMM\n"
    "on our AVX2/FMA kernel and on OpenBLAS), each model's median ms, GFLOP, GFLOP/s and\n"
    "fraction of the peak, then images per second end to end on LFW-sized photos and the\n"
    "latency of one big photo, on 1 thread and on all. Single-thread model times are the\n"
    "thread's CPU time (the wall clock too is shown), the rest wall-clock time.\n"
    "\n"
    "  --json            one JSON object\n"
    "  --threads N       the \"all threads\" figures use N (default: all cores)\n"
    "  --images N        photos for the end-to-end figures (default 300)\n"
    "  --root DIR        LFW folder (default $MIEN_DATA/lfw, else ../shared/data/lfw; the\n"
    "                    demo photos when there is none)\n"
    "  --time S          seconds of timed runs per model and setting (default 1)\n"
    "  --quick           fewer runs and photos (a smoke test, not figures to quote)\n"
    "  --analysis-only   only the face analysis section: mien analyze's cost for one face,\n"
    "                    each task alone and age+gender+expression+liveness+pose together\n"
    "                    (with --analysis SPEC: those models)\n"
    "  --models DIR      models folder (default: searched, see mien help)\n";

typedef struct bench_opts {
    int images;
    const char *root;
    double seconds;
    int quick;
    int analysis_only;
} bench_opts;

static int bench_extra(void *ctx, const char *opt, const char *val) {
    bench_opts *b = ctx;
    if (!strcmp(opt, "--quick")) {
        b->quick = 1;
        return 0;
    }
    if (!strcmp(opt, "--analysis-only")) {
        b->analysis_only = 1;
        return 0;
    }
    if (!strcmp(opt, "--images") || !strcmp(opt, "--root") || !strcmp(opt, "--time")) {
        if (!val) return -2;
        char *end;
        if (!strcmp(opt, "--root")) b->root = val;
        else if (!strcmp(opt, "--images")) {
            long n = strtol(val, &end, 10);
            if (end == val || *end || n < 1 || n > 100000) return -3;
            b->images = (int)n;
        } else {
            b->seconds = strtod(val, &end);
            if (end == val || *end || !(b->seconds > 0) || b->seconds > 600) return -3;
        }
        return 1;
    }
    return -1;
}

/* The calling thread's CPU time in seconds. On a machine shared with other work the wall
 * clock also counts the time other programs hold the core; single-thread figures are taken
 * on this clock (the time the work needs the core), multi-thread ones on the wall clock. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Progress on a terminal only. */
static int show_progress;

static void status_line(const char *fmt, const char *what) {
    if (!show_progress) return;
    fprintf(stderr, "\r\033[K");
    fprintf(stderr, fmt, what);
    fflush(stderr);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ==== 1. Peak ==== */

/* GEMM shapes (M, K, N) that stay in L2 (A + packed B + C under 512 KiB); the best wins.
 * M is a multiple of the own kernel's 6 rows. */
static const int peak_shapes[][3] = {{192, 256, 256}, {96, 256, 256}, {384, 128, 128}, {192, 512, 128}};
#define N_SHAPES (int)(sizeof peak_shapes / sizeof peak_shapes[0])

typedef struct peak {
    double own, own_mt;          /* GFLOP/s, 1 thread and all */
    double blas, blas_mt;
    double ref, ref_mt;          /* the reference: the faster of the two */
    const char *ref_name, *ref_name_mt;
    int shape[3], shape_mt[3];   /* the shapes that gave the reference */
} peak;

/* Median GFLOP/s of `trials` batches of `reps` products, after one warm-up batch; on the
 * thread's CPU clock when cpu, else the wall clock. */
typedef void (*gemm_fn)(void *ctx);
static double time_gemm(gemm_fn fn, void *ctx, double flop, int reps, int trials, int cpu) {
    double (*clock)(void) = cpu ? cpu_now : cli_now;
    double *r = malloc((size_t)trials * sizeof *r);
    if (!r) return 0;
    for (int i = 0; i < reps; i++) fn(ctx);
    for (int t = 0; t < trials; t++) {
        double t0 = clock();
        for (int i = 0; i < reps; i++) fn(ctx);
        r[t] = flop * reps / (clock() - t0) * 1e-9;
    }
    double m = median(r, trials);
    free(r);
    return m;
}

typedef struct gemm_ctx {
    int m, k, n;
    float *a, *b, *c;            /* (m,k) (k,n) (m,n) */
#ifdef MIEN_HAVE_XNNPACK
    nn_own *own;
    pthreadpool_t pool;
#endif
} gemm_ctx;

static void run_blas(void *p) {
    gemm_ctx *g = p;
    cblas_sgemm(BENCH_ROW_MAJOR, BENCH_NO_TRANS, BENCH_NO_TRANS, g->m, g->n, g->k, 1.f, g->a,
                g->k, g->b, g->n, 0.f, g->c, g->n);
}

#ifdef MIEN_HAVE_XNNPACK
static void run_own(void *p) {
    gemm_ctx *g = p;
    nn_own_run(g->own, g->pool);
}
#endif

/* GFLOP/s of both GEMMs on one shape with `threads` threads (M scaled by threads, so each
 * thread keeps a cache-resident share). */
static void peak_shape(const int shape[3], int threads, int quick, double *own, double *blas) {
    gemm_ctx g = {.m = shape[0] * threads, .k = shape[1], .n = shape[2]};
    *own = *blas = 0;
    g.a = aligned_alloc(64, ((size_t)g.m * g.k * 4 + 127) & ~(size_t)63);
    g.b = aligned_alloc(64, ((size_t)g.k * g.n * 4 + 127) & ~(size_t)63);
    g.c = aligned_alloc(64, ((size_t)g.m * g.n * 4 + 127) & ~(size_t)63);
    if (!g.a || !g.b || !g.c) goto done;
    for (size_t i = 0; i < (size_t)g.m * g.k; i++) g.a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)g.k * g.n; i++) g.b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    const double flop = 2.0 * g.m * g.k * g.n;
    /* About 50 ms per trial. */
    int reps = (int)(50e-3 * 40e9 * threads / flop) + 1, trials = quick ? 3 : 9;
    openblas_set_num_threads(threads);
    *blas = time_gemm(run_blas, &g, flop, reps, trials, threads == 1);
    openblas_set_num_threads(1);
#ifdef MIEN_HAVE_XNNPACK /* else no own GEMM: 0 GFLOP/s */
    if (nn_own_preferred()) {
        nn_own_conv p = {
            .n = 1, .h = 1, .w = g.m, .ci = g.k, .oh = 1, .ow = g.m, .co = g.n,
            .kh = 1, .kw = 1, .stride = {1, 1}, .dilation = {1, 1},
            .weights = g.b, .lo = -INFINITY, .hi = INFINITY, .x = g.a, .y = g.c,
        };
        g.own = nn_own_gemm_create(&p);
        g.pool = threads > 1 ? pthreadpool_create((size_t)threads) : NULL;
        if (g.own && (threads == 1 || g.pool))
            *own = time_gemm(run_own, &g, flop, reps, trials, threads == 1);
        nn_own_free(g.own);
        if (g.pool) pthreadpool_destroy(g.pool);
    }
#endif
done:
    free(g.a);
    free(g.b);
    free(g.c);
}

static void measure_peak(peak *pk, int threads, int quick) {
    memset(pk, 0, sizeof *pk);
    for (int mt = 0; mt < 2; mt++) {
        int t = mt ? threads : 1;
        if (mt && threads == 1) {
            pk->own_mt = pk->own, pk->blas_mt = pk->blas, pk->ref_mt = pk->ref;
            pk->ref_name_mt = pk->ref_name;
            memcpy(pk->shape_mt, pk->shape, sizeof pk->shape);
            break;
        }
        for (int s = 0; s < N_SHAPES; s++) {
            status_line("bench: peak, GEMM shape %s", s == 0 ? "1" : s == 1 ? "2" : s == 2 ? "3" : "4");
            double own, blas;
            peak_shape(peak_shapes[s], t, quick, &own, &blas);
            double *po = mt ? &pk->own_mt : &pk->own, *pb = mt ? &pk->blas_mt : &pk->blas;
            double *pr = mt ? &pk->ref_mt : &pk->ref;
            if (own > *po) *po = own;
            if (blas > *pb) *pb = blas;
            double best = own > blas ? own : blas;
            if (best > *pr) {
                *pr = best;
                *(mt ? &pk->ref_name_mt : &pk->ref_name) = own > blas ? "own GEMM kernel" : "OpenBLAS sgemm";
                int *sh = mt ? pk->shape_mt : pk->shape;
                sh[0] = peak_shapes[s][0] * t, sh[1] = peak_shapes[s][1], sh[2] = peak_shapes[s][2];
            }
        }
    }
}

/* ==== 2. Models ==== */

typedef enum { LOAD_TFJS, LOAD_REC, LOAD_LM68, LOAD_LM68_TINY, LOAD_SSD, LOAD_TFLITE, LOAD_ONNX,
               LOAD_ONNX_DET /* a 4:3 input of width size */ } model_loader;

typedef struct bench_model {
    const char *name, *file;
    model_loader loader;
    int size;                 /* input side */
    const char *output;       /* TFJS output to cut at, as mien runs it (NULL: all) */
    const char *role;
} bench_model;

static const bench_model bench_models[] = {
    {"blazeface", "human/blazeface.json", LOAD_TFJS, 256, NULL, "detector (the former default)"},
    {"ultraface@320", "faceplugin/fr_detect.onnx", LOAD_ONNX_DET, 320, NULL, "detector (default, 320x240)"},
    {"ultraface@640", "faceplugin/fr_detect.onnx", LOAD_ONNX_DET, 640, NULL, "detector (default, second pass)"},
    {"onet", "expo/onet.tflite", LOAD_TFLITE, 48, NULL, "landmarks (default, 3 runs per face)"},
    {"blazeface-front", "human/blazeface-front.json", LOAD_TFJS, 128, NULL, "detector"},
    {"ssd", "faceapi/ssd_mobilenetv1_model-weights_manifest.json", LOAD_SSD, 512, NULL, "detector"},
    {"facemesh", "human/facemesh.json", LOAD_TFJS, 192, NULL, "landmarks (the former default)"},
    {"68", "faceapi/face_landmark_68_model-weights_manifest.json", LOAD_LM68, 112, NULL, "landmarks"},
    {"68-tiny", "faceapi/face_landmark_68_tiny_model-weights_manifest.json", LOAD_LM68_TINY, 112, NULL, "landmarks"},
    {"dlib", "faceapi/face_recognition_model-weights_manifest.json", LOAD_REC, 150, NULL, "embedder"},
    {"mobilefacenet", "human/mobilefacenet.json", LOAD_TFJS, 112, NULL, "embedder"},
    {"mobileface", "human/mobileface.json", LOAD_TFJS, 112, NULL, "embedder"},
    {"faceres", "human/faceres.json", LOAD_TFJS, 224, "global_pooling/Mean", "embedder"},
    {"mobilefacenet-tflite", "expo/MobileFaceNet.tflite", LOAD_TFLITE, 112, NULL, "embedder (default)"},
    {"frfeature", "faceplugin/fr_feature.onnx", LOAD_ONNX, 112, NULL, "embedder (fused with the default)"},
};
#define N_MODELS (int)(sizeof bench_models / sizeof bench_models[0])

typedef struct model_result {
    int ok;
    double gflop;
    double ms, wall_ms;       /* 1 thread: median CPU ms per inference, and wall ms */
    double ms_mt;             /* all threads: median wall ms */
    double peak, peak_mt;     /* the reference GEMM's GFLOP/s around those timings */
} model_result;

static int load_model(const char *dir, const bench_model *bm, nn_graph **g, mien_err *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, bm->file);
    int64_t dims[4] = {1, bm->size, bm->size, 3};
    switch (bm->loader) {
    case LOAD_TFJS:
        return nn_tfjs_load(path, dims, bm->output ? &bm->output : NULL, bm->output ? 1 : 0, g, e);
    case LOAD_REC: return nn_faceapi_recognition_load(path, g, e);
    case LOAD_LM68: return nn_faceapi_landmarks68_load(path, 0, g, e);
    case LOAD_LM68_TINY: return nn_faceapi_landmarks68_load(path, 1, g, e);
    case LOAD_SSD: return nn_faceapi_ssd_load(path, g, e);
    case LOAD_TFLITE: return nn_tflite_load(path, dims, g, e);
    case LOAD_ONNX: {
        const int64_t nchw[4] = {1, 3, bm->size, bm->size};
        return nn_onnx_load(path, nchw, g, e);
    }
    case LOAD_ONNX_DET: { /* cut before the decoding, whose priors are constants for 320x240,
                           * as the detector loads it (src/face/detectors.c) */
        const int64_t nchw[4] = {1, 3, bm->size * 3 / 4, bm->size};
        const char *outs[2] = {"scores", "462"};
        return nn_onnx_load_outputs(path, nchw, outs, 2, g, e);
    }
    }
    return MIEN_EINVAL;
}

/* Median wall ms of whole runs; *cpu_ms gets the median of the thread's CPU time per run
 * (meaningful on one thread). Warm-up for a tenth of the time, then at least `min_runs`
 * runs and `seconds` of them. */
static double time_exec(nn_exec *x, double seconds, int min_runs, double *cpu_ms, mien_err *e) {
    const nn_graph *g = nn_exec_graph(x);
    uint32_t st = 12345;
    for (int i = 0; i < g->n_inputs; i++) {
        float *p = nn_exec_input(x, i);
        for (int64_t j = 0; j < g->t[g->inputs[i]].n; j++) {
            st = st * 1664525u + 1013904223u;
            p[j] = (float)(st >> 8) / (float)(1u << 24) * 255.f; /* pixels 0..255 */
        }
    }
    double t_end = cli_now() + seconds * 0.1;
    do {
        if (nn_exec_run(x, e)) return -1;
    } while (cli_now() < t_end);
    int cap = 1024, n = 0;
    double *t = malloc((size_t)cap * sizeof *t), *c = malloc((size_t)cap * sizeof *c);
    if (!t || !c) {
        free(t);
        free(c);
        return -1;
    }
    t_end = cli_now() + seconds;
    while ((n < min_runs || cli_now() < t_end) && n < cap) {
        double t0 = cli_now(), c0 = cpu_now();
        if (nn_exec_run(x, e)) {
            free(t);
            free(c);
            return -1;
        }
        c[n] = (cpu_now() - c0) * 1e3;
        t[n++] = (cli_now() - t0) * 1e3;
    }
    double m = median(t, n);
    *cpu_ms = median(c, n);
    free(t);
    free(c);
    return m;
}

/* The reference GEMM again, on the shape that won: taken just before and just after each
 * model's timing, each model's fraction is of the mean of the two, so that load coming and
 * going on a shared machine weighs on both sides of the ratio alike. */
static double local_peak(const peak *pk, int threads) {
    const int *sh = threads > 1 ? pk->shape_mt : pk->shape;
    if (!sh[0]) return 0;
    int base[3] = {sh[0] / threads, sh[1], sh[2]};
    double own, blas;
    peak_shape(base, threads, 1, &own, &blas);
    return own > blas ? own : blas;
}

static void measure_models(const char *dir, int threads, double seconds, int quick,
                           const peak *pk, model_result *res) {
    for (int i = 0; i < N_MODELS; i++) {
        const bench_model *bm = &bench_models[i];
        model_result *r = &res[i];
        memset(r, 0, sizeof *r);
        status_line("bench: %s", bm->name);
        nn_graph *g = NULL;
        mien_err e = {0};
        if (load_model(dir, bm, &g, &e)) {
            if (show_progress) fprintf(stderr, "\r\033[K");
            fprintf(stderr, "mien bench: %s: %s\n", bm->name, e.msg);
            continue;
        }
        r->gflop = nn_graph_flops(g) * 1e-9;
        r->ok = 1;
        for (int mt = 0; mt < 2 && r->ok; mt++) {
            if (mt && threads == 1) {
                r->ms_mt = r->wall_ms;
                r->peak_mt = r->peak;
                break;
            }
            nn_exec_opts o = {.backend = NN_BACKEND_FAST, .threads = mt ? threads : 1};
            nn_exec *x = NULL;
            double ms = -1, cpu_ms = -1, before = local_peak(pk, o.threads);
            if (!nn_exec_create(g, &o, &x, &e))
                ms = time_exec(x, seconds, quick ? 3 : 10, &cpu_ms, &e);
            nn_exec_free(x);
            *(mt ? &r->peak_mt : &r->peak) = 0.5 * (before + local_peak(pk, o.threads));
            if (ms < 0) {
                fprintf(stderr, "mien bench: %s: %s\n", bm->name, e.msg);
                r->ok = 0;
            }
            if (mt) r->ms_mt = ms;
            else r->wall_ms = ms, r->ms = cpu_ms;
        }
        nn_graph_free(g);
    }
}

static const model_result *model_by_name(const model_result *res, const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(bench_models[i].name, name)) return res[i].ok ? &res[i] : NULL;
    return NULL;
}

/* ==== 3. End to end ==== */

typedef struct pipeline {
    const char *name, *detector, *landmarks, *embedder;
    int flip;
    const char *what;
} pipeline;

static const pipeline pipelines[] = {
    {"default", "ultraface@320+ultraface@640", "onet", "mobilefacenet-tflite", 1,
     "the default: UltraFace 320 (640 on large photos), O-Net, MobileFaceNet.tflite + mirrored face"},
    {"fused", "ultraface@320+ultraface@640", "onet", "frfeature+mobilefacenet-tflite", 1,
     "the default stage, frfeature and MobileFaceNet.tflite fused + mirrored face"},
    {"blazeface", "blazeface", "facemesh", "mobilefacenet-tflite", 1,
     "the former detection stage: BlazeFace 256, face mesh, the default recognizer"},
    {"dlib", "blazeface", "facemesh", "dlib", 1, "the first default: dlib ResNet + mirrored face"},
    {"mobilefacenet", "blazeface", "facemesh", "mobilefacenet", 1, "BlazeFace, face mesh, human's MobileFaceNet + mirrored face"},
    {"light", "blazeface-front", "none", "mobilefacenet", 0, "light: BlazeFace 128, no refinement, MobileFaceNet, no mirror"},
};
#define N_PIPELINES (int)(sizeof pipelines / sizeof pipelines[0])

typedef struct photo_set {
    int n;
    char **path;
    uint8_t **data;
    size_t *len;
    const char *source;       /* "lfw" or "demo" */
} photo_set;

static void photo_set_free(photo_set *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->path[i]), free(ps->data[i]);
    free(ps->path);
    free(ps->data);
    free(ps->len);
    memset(ps, 0, sizeof *ps);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in a folder (not starting with '.'); NULL when it cannot be read. */
static char **list_dir(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 64;
    char **v = malloc((size_t)cap * sizeof *v);
    struct dirent *de;
    while (v && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (*n == cap) {
            char **nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        if (!(v[*n] = strdup(de->d_name))) break;
        (*n)++;
    }
    closedir(d);
    if (v) qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n && v; i++) free(v[i]);
    free(v);
}

static int add_photo(photo_set *ps, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = len > 0 ? malloc((size_t)len) : NULL;
    int ok = data && fread(data, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!ok) {
        free(data);
        return 0;
    }
    ps->path[ps->n] = strdup(path);
    ps->data[ps->n] = data;
    ps->len[ps->n] = (size_t)len;
    ps->n++;
    return 1;
}

/* LFW: the first photo of each person, people in name order, up to `want` photos. */
static int load_photos(const char *root, const char *models_dir, int want, photo_set *ps) {
    memset(ps, 0, sizeof *ps);
    ps->path = calloc((size_t)want, sizeof *ps->path);
    ps->data = calloc((size_t)want, sizeof *ps->data);
    ps->len = calloc((size_t)want, sizeof *ps->len);
    if (!ps->path || !ps->data || !ps->len) return 0;
    int n_people = 0;
    char **people = list_dir(root, &n_people);
    char path[4096];
    for (int i = 0; i < n_people && ps->n < want; i++) {
        int n_files = 0;
        if (snprintf(path, sizeof path, "%s/%s", root, people[i]) >= (int)sizeof path) continue;
        char **files = list_dir(path, &n_files);
        for (int k = 0; k < n_files; k++) {
            const char *dot = strrchr(files[k], '.');
            if (!dot || strcmp(dot, ".jpg")) continue;
            if (snprintf(path, sizeof path, "%s/%s/%s", root, people[i], files[k]) < (int)sizeof path)
                add_photo(ps, path);
            break;
        }
        free_list(files, n_files);
    }
    free_list(people, n_people);
    ps->source = "lfw";
    if (ps->n == 0) { /* the demo photos, repeated up to `want` */
        ps->source = "demo";
        for (int i = 0; i < want; i++) {
            if (snprintf(path, sizeof path, "%s/demo/sample%d.jpg", models_dir, i % 6 + 1) >=
                    (int)sizeof path ||
                !add_photo(ps, path))
                break;
        }
    }
    return ps->n;
}

typedef struct e2e_job {
    const photo_set *ps;
    int dim;
    atomic_int faces;
    int all_faces;            /* embed every face, not just the largest */
} e2e_job;

/* One photo from memory: decode, detect (and refine), embed the largest face (or all). */
static int e2e_one(void *ctx, mien_session *s, int worker, int i) {
    e2e_job *j = ctx;
    float emb[2048];
    mien_photo *p = NULL;
    mien_face *f = NULL;
    int n = 0, rc = mien_photo_open(s, j->ps->data[i], j->ps->len[i], &p);
    if (!rc) rc = mien_photo_detect(s, p, NULL, &f, &n);
    if (!rc && n > 0) {
        if (j->all_faces)
            for (int k = 0; !rc && k < n; k++) rc = mien_photo_embed(s, p, &f[k], emb);
        else
            rc = mien_photo_embed(s, p, &f[cli_pick_largest(f, n)], emb);
        atomic_fetch_add(&j->faces, j->all_faces ? n : 1);
    }
    if (rc) fprintf(stderr, "mien bench: %s: %s\n", j->ps->path[i], mien_errmsg(s));
    free(f);
    mien_photo_close(p);
    return rc ? EXIT_FAIL : 0;
}

/* Images per second (wall clock) over the set with `workers` sessions of `intra` threads
 * each; *cpu_rate: per second of the calling thread's CPU time (one worker of one thread).
 * A short untimed pass first (session start, first-touch page faults, caches). */
static double e2e_rate(const char *models_dir, const pipeline *pl, const photo_set *ps,
                       int workers, int intra, int quiet, int *faces, double *cpu_rate) {
    cli_common c;
    cli_common_init(&c);
    c.models_dir = models_dir;
    c.cfg.detector = pl->detector;
    c.cfg.landmarks = pl->landmarks;
    c.cfg.embedder = pl->embedder;
    c.cfg.flip = pl->flip;
    c.cfg.threads = intra;
    mien_models *m = cli_open_models(&c);
    if (!m) return -1;
    e2e_job j = {.ps = ps, .dim = mien_models_embedding_dim(m)};
    atomic_init(&j.faces, 0);
    photo_set warm = *ps;
    warm.n = ps->n < 2 * workers ? ps->n : 2 * workers;
    e2e_job wj = {.ps = &warm, .dim = j.dim};
    atomic_init(&wj.faces, 0);
    double rate = -1;
    char label[128];
    snprintf(label, sizeof label, "bench: %s, %d thread%s", pl->name, workers * intra,
             workers * intra > 1 ? "s" : "");
    *cpu_rate = -1;
    if (!cli_parallel(m, workers, warm.n, e2e_one, &wj, label, 1)) {
        double t0 = cli_now(), c0 = cpu_now();
        if (!cli_parallel(m, workers, ps->n, e2e_one, &j, label, quiet)) {
            rate = ps->n / (cli_now() - t0);
            if (workers == 1 && intra == 1) *cpu_rate = ps->n / (cpu_now() - c0);
        }
    }
    *faces = atomic_load(&j.faces);
    mien_models_close(m);
    return rate;
}

/* ==== Output ==== */

static void cpu_name(char *buf, size_t size) {
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t') v++;
                snprintf(buf, size, "%s", v);
                buf[strcspn(buf, "\n")] = 0;
            }
            break;
        }
    fclose(f);
}

/* 1-minute load average: on a shared machine, what the figures ran against. */
static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double round_to(double v, double unit) { return round(v / unit) * unit; }

int cmd_bench(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    bench_opts bo = {.images = 300, .seconds = 1.0};
    if (cli_parse(&c, &argc, argv, bench_extra, &bo, bench_usage)) return EXIT_USAGE;
    cli_models_dir(&c); /* these read model files by name: resolve the search now */
    if (argc != 1) {
        fputs(bench_usage, stderr);
        return EXIT_USAGE;
    }
    if (bo.quick) {
        bo.seconds = 0.1;
        if (bo.images == 300) bo.images = 12;
    }
    const int T = c.threads;
    show_progress = !c.quiet && isatty(STDERR_FILENO);
    static bench_analysis_result ar;
    if (bo.analysis_only) {
        if (bench_analysis(&c, bo.seconds, bo.quick, &ar)) return EXIT_FAIL;
        if (c.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "analysis", bench_analysis_json(&ar));
            cli_print_json(o);
        } else {
            bench_analysis_print(&ar);
        }
        return EXIT_OK;
    }
    char root[4096], cpu[256];
    if (bo.root) snprintf(root, sizeof root, "%s", bo.root);
    else {
        const char *d = getenv("MIEN_DATA");
        snprintf(root, sizeof root, "%s/lfw", d && *d ? d : "../shared/data");
    }
    cpu_name(cpu, sizeof cpu);
    const double load0 = load_average();

    peak pk;
    measure_peak(&pk, T, bo.quick);
    static model_result mr[N_MODELS];
    measure_models(c.models_dir, T, bo.seconds, bo.quick, &pk, mr);

    photo_set ps;
    status_line("bench: %s", "reading photos");
    load_photos(root, c.models_dir, bo.images, &ps);
    double rate[N_PIPELINES][2] = {{0}}, cpu_rate[N_PIPELINES] = {0}, unused;
    int faces[N_PIPELINES] = {0};
    for (int p = 0; p < N_PIPELINES && ps.n; p++) {
        int f1 = 0;
        rate[p][0] = e2e_rate(c.models_dir, &pipelines[p], &ps, 1, 1, c.quiet, &f1, &cpu_rate[p]);
        rate[p][1] = T > 1 ? e2e_rate(c.models_dir, &pipelines[p], &ps, T, 1, c.quiet, &faces[p],
                                      &unused)
                           : rate[p][0];
        if (T == 1) faces[p] = f1;
    }
    /* Latency of one big photo, every face: 1 thread, then all threads inside the layers. */
    photo_set big = {0};
    char big_path[4096];
    if (snprintf(big_path, sizeof big_path, "%s/demo/sample1.jpg", c.models_dir) >= (int)sizeof big_path)
        big_path[0] = 0;
    big.path = calloc(1, sizeof *big.path);
    big.data = calloc(1, sizeof *big.data);
    big.len = calloc(1, sizeof *big.len);
    double lat[2] = {-1, -1}, lat_cpu = -1;
    int big_faces = 0;
    if (big.path && big.data && big.len && add_photo(&big, big_path)) {
        int reps = bo.quick ? 2 : 15;
        photo_set rep = big;
        char **rp = malloc((size_t)reps * sizeof *rp);
        uint8_t **rd = malloc((size_t)reps * sizeof *rd);
        size_t *rl = malloc((size_t)reps * sizeof *rl);
        if (rp && rd && rl) {
            for (int i = 0; i < reps; i++) rp[i] = big.path[0], rd[i] = big.data[0], rl[i] = big.len[0];
            rep.n = reps, rep.path = rp, rep.data = rd, rep.len = rl;
            for (int mt = 0; mt < 2; mt++) {
                if (mt && T == 1) {
                    lat[1] = lat[0];
                    break;
                }
                cli_common lc;
                cli_common_init(&lc);
                lc.models_dir = c.models_dir;
                lc.cfg.threads = mt ? T : 1;
                mien_models *m = cli_open_models(&lc);
                if (!m) break;
                e2e_job j = {.ps = &rep, .dim = mien_models_embedding_dim(m), .all_faces = 1};
                atomic_init(&j.faces, 0);
                /* Sequential photos, one session: per-photo latency, median of reps. */
                mien_session *s = cli_open_session(m);
                double *t = malloc((size_t)reps * sizeof *t), *ct = malloc((size_t)reps * sizeof *ct);
                if (s && t && ct && !e2e_one(&j, s, 0, 0)) {
                    atomic_store(&j.faces, 0);
                    int k = 0;
                    for (; k < reps; k++) {
                        status_line("bench: %s", mt ? "one big photo, all threads" : "one big photo, 1 thread");
                        double t0 = cli_now(), c0 = cpu_now();
                        if (e2e_one(&j, s, 0, k)) break;
                        t[k] = (cli_now() - t0) * 1e3;
                        ct[k] = (cpu_now() - c0) * 1e3;
                    }
                    if (k == reps) lat[mt] = median(t, reps);
                    if (k == reps && !mt) lat_cpu = median(ct, reps);
                    big_faces = atomic_load(&j.faces) / reps;
                }
                free(t);
                free(ct);
                mien_session_close(s);
                mien_models_close(m);
            }
        }
        free(rp);
        free(rd);
        free(rl);
    }
    status_line("bench: %s", "face analysis");
    bench_analysis(&c, bo.seconds, bo.quick, &ar);
    if (show_progress) fprintf(stderr, "\r\033[K");
    const double load1 = load_average();

    /* The target and what the embedders cost. */
    const model_result *mfn = model_by_name(mr, "mobilefacenet"), *dl = model_by_name(mr, "dlib");
    double pl_gflop[N_PIPELINES];
    for (int p = 0; p < N_PIPELINES; p++) {
        const model_result *d = model_by_name(mr, pipelines[p].detector);
        const model_result *l = strcmp(pipelines[p].landmarks, "none") ? model_by_name(mr, pipelines[p].landmarks) : NULL;
        /* A fused embedder ("a+b") costs the sum of its parts. */
        double eg = 0;
        char parts[128];
        snprintf(parts, sizeof parts, "%s", pipelines[p].embedder);
        for (char *sv = NULL, *part = strtok_r(parts, "+", &sv); part; part = strtok_r(NULL, "+", &sv)) {
            const model_result *em = model_by_name(mr, part);
            eg += em ? em->gflop : 0;
        }
        pl_gflop[p] = (d ? d->gflop : 0) + (l ? l->gflop : 0) + eg * (pipelines[p].flip ? 2 : 1);
    }

    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *mach = cJSON_AddObjectToObject(o, "machine");
        cJSON_AddStringToObject(mach, "cpu", cpu);
        cJSON_AddNumberToObject(mach, "cores", cli_ncpu());
        double la[2] = {load0, load1};
        cJSON_AddItemToObject(mach, "load_average", cJSON_CreateDoubleArray(la, 2));
        cJSON_AddNumberToObject(o, "threads", T);
        cJSON *pj = cJSON_AddObjectToObject(o, "peak");
        cJSON_AddNumberToObject(pj, "own_gemm_gflops", round_to(pk.own, 0.1)); /* 0: not used */
        cJSON_AddBoolToObject(pj, "own_gemm_used", pk.own > 0);
        cJSON_AddNumberToObject(pj, "openblas_gflops", round_to(pk.blas, 0.1));
        cJSON_AddNumberToObject(pj, "own_gemm_gflops_threads", round_to(pk.own_mt, 0.1));
        cJSON_AddNumberToObject(pj, "openblas_gflops_threads", round_to(pk.blas_mt, 0.1));
        cJSON_AddStringToObject(pj, "reference", pk.ref_name ? pk.ref_name : "none");
        cJSON_AddNumberToObject(pj, "gflops", round_to(pk.ref, 0.1));
        cJSON_AddStringToObject(pj, "reference_threads", pk.ref_name_mt ? pk.ref_name_mt : "none");
        cJSON_AddNumberToObject(pj, "gflops_threads", round_to(pk.ref_mt, 0.1));
        cJSON_AddItemToObject(pj, "shape_mkn", cJSON_CreateIntArray(pk.shape, 3));
        cJSON *ma = cJSON_AddArrayToObject(o, "models");
        for (int i = 0; i < N_MODELS; i++) {
            if (!mr[i].ok) continue;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", bench_models[i].name);
            cJSON_AddStringToObject(x, "role", bench_models[i].role);
            cJSON_AddNumberToObject(x, "input", bench_models[i].size);
            cJSON_AddNumberToObject(x, "ms", round_to(mr[i].ms, 0.001));
            cJSON_AddNumberToObject(x, "wall_ms", round_to(mr[i].wall_ms, 0.001));
            cJSON_AddNumberToObject(x, "gflop", round_to(mr[i].gflop, 0.0001));
            cJSON_AddNumberToObject(x, "gflops", round_to(mr[i].gflop / mr[i].ms * 1e3, 0.1));
            cJSON_AddNumberToObject(x, "peak_gflops", round_to(mr[i].peak, 0.1));
            cJSON_AddNumberToObject(x, "fraction", round_to(mr[i].gflop / mr[i].ms * 1e3 / mr[i].peak, 0.001));
            cJSON_AddNumberToObject(x, "ms_threads", round_to(mr[i].ms_mt, 0.001));
            cJSON_AddNumberToObject(x, "gflops_threads", round_to(mr[i].gflop / mr[i].ms_mt * 1e3, 0.1));
            cJSON_AddNumberToObject(x, "peak_gflops_threads", round_to(mr[i].peak_mt, 0.1));
            cJSON_AddItemToArray(ma, x);
        }
        cJSON *ee = cJSON_AddObjectToObject(o, "end_to_end");
        cJSON_AddStringToObject(ee, "photos", ps.source ? ps.source : "none");
        cJSON_AddNumberToObject(ee, "images", ps.n);
        cJSON *pa = cJSON_AddArrayToObject(ee, "pipelines");
        for (int p = 0; p < N_PIPELINES && ps.n; p++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", pipelines[p].name);
            cJSON_AddStringToObject(x, "detector", pipelines[p].detector);
            cJSON_AddStringToObject(x, "landmarks", pipelines[p].landmarks);
            cJSON_AddStringToObject(x, "embedder", pipelines[p].embedder);
            cJSON_AddBoolToObject(x, "flip", pipelines[p].flip);
            cJSON_AddNumberToObject(x, "gflop_per_image", round_to(pl_gflop[p], 0.001));
            cJSON_AddNumberToObject(x, "faces", faces[p]);
            cJSON_AddNumberToObject(x, "img_per_s", round_to(rate[p][0], 0.1));
            cJSON_AddNumberToObject(x, "img_per_cpu_s", round_to(cpu_rate[p], 0.1));
            cJSON_AddNumberToObject(x, "img_per_s_threads", round_to(rate[p][1], 0.1));
            cJSON_AddItemToArray(pa, x);
        }
        cJSON *lj = cJSON_AddObjectToObject(o, "big_photo");
        cJSON_AddStringToObject(lj, "photo", big_path);
        cJSON_AddNumberToObject(lj, "faces", big_faces);
        cJSON_AddNumberToObject(lj, "ms", round_to(lat[0], 0.01));
        cJSON_AddNumberToObject(lj, "cpu_ms", round_to(lat_cpu, 0.01));
        cJSON_AddNumberToObject(lj, "ms_threads", round_to(lat[1], 0.01));
        cJSON *tj = cJSON_AddObjectToObject(o, "target");
        cJSON_AddNumberToObject(tj, "img_per_s", 200);
        cJSON_AddStringToObject(tj, "set_for", "mobilefacenet");
        cJSON_AddNumberToObject(tj, "mobilefacenet_gflop", mfn ? round_to(mfn->gflop, 0.001) : 0);
        cJSON_AddNumberToObject(tj, "dlib_gflop", dl ? round_to(dl->gflop, 0.001) : 0);
        if (ar.ok) cJSON_AddItemToObject(o, "analysis", bench_analysis_json(&ar));
        cli_print_json(o);
    } else {
        printf("mien bench: %s, %d cores; \"all\" = %d threads; load average %.2f at the start, "
               "%.2f at the end\n\n",
               cpu, cli_ncpu(), T, load0, load1);
        printf("fp32 peak, cache-resident GEMM (best of %d L2-sized shapes):\n", N_SHAPES);
        if (pk.own > 0)
            printf("  %-22s %9.1f GFLOP/s on 1 thread %9.1f on %d\n", "own AVX2/FMA kernel", pk.own,
                   pk.own_mt, T);
        else /* nn_own_preferred: an AVX-512 CPU runs XNNPACK's own kernels instead */
            printf("  %-22s not used on this CPU (XNNPACK's kernels run instead)\n", "own AVX2/FMA kernel");
        printf("  %-22s %9.1f GFLOP/s on 1 thread %9.1f on %d\n", "OpenBLAS sgemm", pk.blas,
               pk.blas_mt, T);
        printf("  reference (the faster): %s, %dx%dx%d\n\n", pk.ref_name ? pk.ref_name : "none",
               pk.shape[0], pk.shape[1], pk.shape[2]);
        printf("%-16s %-20s %5s %7s %8s %8s %8s %6s %5s %9s %8s %6s %5s\n", "model", "role",
               "input", "GFLOP", "ms 1t", "wall", "GFLOP/s", "peak", "of it", "ms all", "GFLOP/s",
               "peak", "of it");
        for (int i = 0; i < N_MODELS; i++) {
            if (!mr[i].ok) continue;
            double g1 = mr[i].gflop / mr[i].ms * 1e3, gt = mr[i].gflop / mr[i].ms_mt * 1e3;
            printf("%-16s %-20s %5d %7.3f %8.2f %8.2f %8.1f %6.1f %4.0f%% %9.2f %8.1f %6.1f %4.0f%%\n",
                   bench_models[i].name, bench_models[i].role, bench_models[i].size, mr[i].gflop,
                   mr[i].ms, mr[i].wall_ms, g1, mr[i].peak, 100 * g1 / mr[i].peak, mr[i].ms_mt, gt,
                   mr[i].peak_mt, 100 * gt / mr[i].peak_mt);
        }
        printf("(GFLOP: 2 x multiply-adds of the convolutions and fully connected layers; medians;\n"
               " ms 1t: the thread's CPU time, wall: the wall clock; peak: the reference GEMM timed\n"
               " on the same clock just before and after each model)\n\n");
        if (ps.n) {
            printf("end to end, %d %s photos in memory (decode, detect, refine, embed the largest face):\n",
                   ps.n, ps.source);
            printf("  %-14s %9s %11s %10s %10s  %s\n", "pipeline", "GFLOP/img", "img/cpu-s 1t",
                   "img/s 1t", "img/s all", "what");
            for (int p = 0; p < N_PIPELINES; p++)
                printf("  %-14s %9.3f %11.1f %10.1f %10.1f  %s\n", pipelines[p].name, pl_gflop[p],
                       cpu_rate[p], rate[p][0], rate[p][1], pipelines[p].what);
            printf("  MobileFaceNet costs %.3f GFLOP per face, dlib's ResNet %.3f; the default runs\n"
                   "  MobileFaceNet.tflite twice (the mirrored face), the fused pipeline two\n"
                   "  embedders twice each.\n\n",
                   mfn ? mfn->gflop : 0, dl ? dl->gflop : 0);
        } else {
            printf("end to end: no photos found under %s nor the demo photos\n\n", root);
        }
        if (lat[0] > 0)
            printf("one big photo (%s, %d faces, default pipeline): %.1f ms on 1 thread (%.1f ms of "
                   "CPU time), %.1f ms with %d threads inside the layers\n",
                   big_path, big_faces, lat[0], lat_cpu, lat[1], T);
        if (ar.ok) {
            printf("\n");
            bench_analysis_print(&ar);
        }
    }
    photo_set_free(&ps);
    photo_set_free(&big);
    return EXIT_OK;
}
