/* bench_ops: speed of the engine per model, reference vs fast (XNNPACK) backend.
 *
 *   build/bench_ops [-v] [-n RUNS] [-w WARMUP] [-t THREADS,...] [-d MODELS_DIR] [model ...]
 *
 * For every model (default: the five face models of models/human) and thread count (default
 * 1 and 2) it prints the median wall time of a whole run after warm-up (and the fastest), the
 * model's GFLOP (multiply-adds x 2 of convolutions and fully connected layers) and GFLOP/s
 * at the median, the speedup over the reference, then where the
 * fast backend's time goes (XNNPACK, and its own GEMM kernel for dense convolutions): each
 * kernel timed on its own, summed per op type (mean per run); -v adds every node with its
 * kernel, output shape and, for convolutions, GFLOP/s.
 * The reference backend is single-threaded, so it is timed once per model.
 * A model named an:NAME is face analysis model NAME (mien models lists them), loaded as
 * mien_analyze loads it from the folder above MODELS_DIR (models/). */
#include "face/analyze.h"
#include "nn/exec.h"
#include "nn/tfjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Deterministic inputs in [-1, 1] (the range the face models are fed). */
static void fill_input(nn_exec *x) {
    const nn_graph *g = nn_exec_graph(x);
    uint32_t s = 12345;
    for (int i = 0; i < g->n_inputs; i++) {
        float *p = nn_exec_input(x, i);
        for (int64_t j = 0; j < g->t[g->inputs[i]].n; j++) {
            s = s * 1664525u + 1013904223u;
            p[j] = (float)(s >> 8) / (float)(1u << 23) - 1.f;
        }
    }
}

/* Median ms of `runs` whole runs after `warmup` untimed ones (and the fastest in *best: on
 * a machine shared with other work the median carries their noise); -1 on failure. */
static double time_runs(nn_exec *x, int warmup, int runs, double *best) {
    mien_err e = {0};
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) return -1;
    for (int i = 0; i < warmup; i++)
        if (nn_exec_run(x, &e)) {
            fprintf(stderr, "run failed: %s\n", e.msg);
            free(t);
            return -1;
        }
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms();
        if (nn_exec_run(x, &e)) {
            fprintf(stderr, "run failed: %s\n", e.msg);
            free(t);
            return -1;
        }
        t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    *best = t[0];
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    free(t);
    return med;
}

/* Multiply-adds x 2 of node i (convolutions and fully connected; 0 for the rest). */
static double node_flops(const nn_graph *g, int i) {
    const nn_node *n = &g->nodes[i];
    const nn_tensor *w = n->n_in > 1 ? &g->t[n->in[1]] : NULL;
    double out = (double)g->t[n->out].n;
    switch (n->op) {
    case NN_OP_CONV2D: return 2.0 * out * (double)(w->dims[0] * w->dims[1] * w->dims[2]);
    case NN_OP_DWCONV2D: return 2.0 * out * (double)(w->dims[0] * w->dims[1]);
    case NN_OP_FC: return 2.0 * out * (double)w->dims[0];
    default: return 0;
    }
}

static int verbose;

/* Time every kernel on its own over `runs` runs and print the sum per op type (and with -v
 * every node). */
static void breakdown(nn_exec *x, int runs) {
    const nn_graph *g = nn_exec_graph(x);
    double *node_ms = calloc((size_t)g->n_nodes, sizeof *node_ms);
    if (!node_ms) return;
    double ms[NN_OP_COUNT] = {0};
    int count[NN_OP_COUNT] = {0}, fast[NN_OP_COUNT] = {0};
    mien_err e = {0};
    for (int i = 0; i < g->n_nodes; i++) {
        count[g->nodes[i].op]++;
        fast[g->nodes[i].op] += strcmp(nn_exec_node_backend(x, i), "ref") != 0;
    }
    double total = 0;
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < g->n_nodes; i++) {
            double t0 = now_ms();
            if (nn_exec_run_node(x, i, &e)) {
                fprintf(stderr, "run failed: %s\n", e.msg);
                return;
            }
            double dt = now_ms() - t0;
            ms[g->nodes[i].op] += dt;
            node_ms[i] += dt;
            total += dt;
        }
    for (int i = 0; verbose && i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        const nn_tensor *t = &g->t[n->out];
        const nn_tensor *w = n->n_in > 1 ? &g->t[n->in[1]] : NULL;
        char shape[64] = "", kern[32] = "";
        for (int d = 0, at = 0; d < t->ndim && at < (int)sizeof shape - 12; d++)
            at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%lld", d ? "x" : "",
                           (long long)t->dims[d]);
        if (w && (n->op == NN_OP_CONV2D || n->op == NN_OP_DWCONV2D))
            snprintf(kern, sizeof kern, "k%lldx%lld s%d", (long long)w->dims[0],
                     (long long)w->dims[1], n->stride[0]);
        double f = node_flops(g, i), t_ms = node_ms[i] / runs;
        printf("      %3d %-10s %-8s %-16s %-10s act %d %8.3f ms", i, nn_op_name(n->op),
               nn_exec_node_backend(x, i), shape, kern, (int)n->act, t_ms);
        if (f > 0) printf(" %7.1f GFLOP/s", f * 1e-6 / t_ms);
        printf("\n");
    }
    free(node_ms);
    printf("    %-16s %5s %7s %9s %6s\n", "op", "nodes", "fast", "ms/run", "share");
    for (int op = 0; op < NN_OP_COUNT; op++) {
        if (!count[op] || op == NN_OP_INPUT) continue;
        printf("    %-16s %5d %7d %9.3f %5.1f%%\n", nn_op_name((nn_op)op), count[op], fast[op],
               ms[op] / runs, total > 0 ? 100.0 * ms[op] / total : 0.0);
    }
    printf("    %-16s %5d %7s %9.3f\n", "sum of kernels", g->n_nodes, "", total / runs);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_ops [-v] [-n RUNS] [-w WARMUP] [-t THREADS,...] "
                    "[-d MODELS_DIR] [model ...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int runs = 30, warmup = 5, n_threads = 2, threads[8] = {1, 2};
    const char *dir = "models/human";
    const char *defaults[] = {"mobilefacenet", "blazeface", "blazeface-front", "facemesh",
                              "faceres"};
    const char **models = defaults;
    int n_models = 5, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc && strcmp(argv[i], "-v")) usage();
        if (!strcmp(argv[i], "-v")) {
            verbose = 1;
            continue;
        }
        if (!strcmp(argv[i], "-n")) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-w")) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d")) dir = argv[++i];
        else if (!strcmp(argv[i], "-t")) {
            n_threads = 0;
            for (char *p = strtok(argv[++i], ","); p && n_threads < 8; p = strtok(NULL, ","))
                threads[n_threads++] = atoi(p);
        } else usage();
    }
    if (runs < 1 || warmup < 0 || n_threads < 1) usage();
    if (i < argc) {
        models = (const char **)(argv + i);
        n_models = argc - i;
    }

    printf("%-16s %-8s %7s %9s %9s %8s %8s %8s\n", "model", "backend", "threads", "ms", "min ms",
           "GFLOP", "GFLOP/s", "speedup");
    for (int m = 0; m < n_models; m++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", dir, models[m]);
        nn_graph *g = NULL;
        mien_err e = {0};
        int rc;
        if (!strncmp(models[m], "an:", 3)) {
            char root[1024];
            snprintf(root, sizeof root, "%s/..", dir);
            rc = an_model_load(root, models[m] + 3, &g, &e);
            snprintf(path, sizeof path, "%s", models[m]);
        } else {
            rc = nn_tfjs_load(path, NULL, NULL, 0, &g, &e);
        }
        if (rc) {
            fprintf(stderr, "%s: %s\n", path, e.msg);
            continue;
        }
        const double gflop = nn_graph_flops(g) * 1e-9;
        nn_exec *x = NULL;
        nn_exec_opts ro = {.backend = NN_BACKEND_REF, .threads = 1};
        double ref_ms = -1, ref_min = -1;
        if (nn_exec_create(g, &ro, &x, &e) == MIEN_OK) {
            fill_input(x);
            ref_ms = time_runs(x, warmup > 1 ? 1 : warmup, runs < 10 ? runs : 10, &ref_min);
            nn_exec_free(x);
        }
        printf("%-16s %-8s %7d %9.3f %9.3f %8.3f %8.1f %8s\n", models[m], "ref", 1, ref_ms,
               ref_min, gflop, gflop / ref_ms * 1e3, "1.0x");
        for (int t = 0; t < n_threads; t++) {
            nn_exec_opts fo = {.backend = NN_BACKEND_FAST, .threads = threads[t]};
            if (nn_exec_create(g, &fo, &x, &e)) {
                fprintf(stderr, "%s: %s\n", path, e.msg);
                continue;
            }
            fill_input(x);
            double best = -1, ms = time_runs(x, warmup, runs, &best);
            char sp[32];
            snprintf(sp, sizeof sp, "%.1fx", ref_ms / ms);
            printf("%-16s %-8s %7d %9.3f %9.3f %8.3f %8.1f %8s\n", models[m], "fast", threads[t],
                   ms, best, gflop, gflop / ms * 1e3, sp);
            breakdown(x, runs);
            nn_exec_free(x);
        }
        nn_graph_free(g);
    }
    return 0;
}
