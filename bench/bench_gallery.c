/* Gallery search at scale: exact search (one BLAS matrix-vector product per query, then the
 * best face of each subject, as mien_gallery_search does) against the HNSW index of
 * src/gallery/hnsw_shim.cpp, on up to millions of synthetic 128-d face embeddings.
 *
 * The embeddings are "augmented" from real ones when --real names a gallery export (mien
 * export): the two-covariance model of face embeddings (each identity a centre drawn from
 * N(mean, B), each face its centre plus N(0, W); B and W estimated from the real faces of the
 * export, the model behind PLDA) samples new identities and faces that spread like real ones,
 * then every vector is L2-normalised. Without --real the identities are random directions and
 * faces scatter isotropically around them.
 *
 * Queries are new faces of gallery identities (genuine probes). recall@1 is the fraction of
 * queries whose best face by the index is the exact best face. Everything runs on one thread
 * per query (OpenBLAS is set to one thread), timed in CPU seconds of that thread; the index
 * is built on --threads threads (wall and total CPU seconds).
 *
 *   build/bench_gallery --real lfw.jsonl --sizes 10000,100000,1000000 --queries 1000
 */
#include "gallery/hnsw.h"
#include "mien.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIM_MAX 1024

/* Wall time, and CPU time of this thread / of the process. Query timings are CPU time of
 * the one thread that runs them, so that they mean the same on a machine shared with other
 * work; build times are given both ways. */
static double clock_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now(void) { return clock_of(CLOCK_MONOTONIC); }
static double thread_cpu(void) { return clock_of(CLOCK_THREAD_CPUTIME_ID); }
static double process_cpu(void) { return clock_of(CLOCK_PROCESS_CPUTIME_ID); }

/* ==== Random numbers ==== */

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return ((rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static double rng_normal(void) { /* Box-Muller */
    return sqrt(-2 * log(rng_unit())) * cos(6.283185307179586 * rng_unit());
}

static void normalise(float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
    float inv = (float)(1 / sqrt(s));
    for (int i = 0; i < d; i++) v[i] *= inv;
}

/* ==== The generative model ==== */

typedef struct model {
    int dim;
    double mean[DIM_MAX];
    double *lb;   /* (dim, dim) lower Cholesky factor of the between-identity covariance */
    double *lw;   /* (dim, dim) of the within-identity covariance */
    double iso_sigma; /* without --real: per-coordinate spread of the faces around a centre */
} model;

/* In place: a (n, n) symmetric positive definite -> its lower Cholesky factor. A small ridge
 * keeps it definite when the sample covariance is not. */
static int cholesky(double *a, int n) {
    double ridge = 0;
    for (int i = 0; i < n; i++) ridge += a[i * n + i];
    ridge = 1e-6 * ridge / n;
    for (int i = 0; i < n; i++) a[i * n + i] += ridge;
    for (int j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
        if (s <= 0) return -1;
        a[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double t = a[i * n + j];
            for (int k = 0; k < j; k++) t -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = t / a[j * n + j];
        }
        for (int k = j + 1; k < n; k++) a[j * n + k] = 0;
    }
    return 0;
}

/* out = mean + L z (mean may be NULL). */
static void draw(const double *l, const double *mean, int d, double *out) {
    double z[DIM_MAX];
    for (int i = 0; i < d; i++) z[i] = rng_normal();
    for (int i = 0; i < d; i++) {
        double s = mean ? mean[i] : 0;
        for (int k = 0; k <= i; k++) s += l[i * d + k] * z[k];
        out[i] = s;
    }
}

/* Estimate B and W from an export (one line per subject). */
static int fit_real(const char *path, model *m) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int d = 0, n_id = 0, n_face = 0;
    double *sum_c = NULL, *cov_b = NULL, *cov_w = NULL, *mu = NULL;
    double sum_all[DIM_MAX] = {0};
    /* Two passes over the file are avoided by accumulating raw moments: sum of centres,
     * sum of centre outer products, and within-class scatter per subject. */
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        cJSON *dj = cJSON_GetObjectItem(o, "dim");
        if (cJSON_IsNumber(dj) && cJSON_GetObjectItem(o, "format")) {
            d = dj->valueint;
            if (d <= 0 || d > DIM_MAX) {
                cJSON_Delete(o);
                break;
            }
            sum_c = calloc((size_t)d, sizeof *sum_c);
            cov_b = calloc((size_t)d * d, sizeof *cov_b);
            cov_w = calloc((size_t)d * d, sizeof *cov_w);
            mu = calloc((size_t)d, sizeof *mu);
            cJSON_Delete(o);
            continue;
        }
        cJSON *faces = cJSON_GetObjectItem(o, "faces");
        int k = cJSON_GetArraySize(faces);
        if (!d || k == 0) {
            cJSON_Delete(o);
            continue;
        }
        float *x = malloc((size_t)k * d * sizeof *x);
        int i = 0;
        cJSON *fa;
        cJSON_ArrayForEach(fa, faces) {
            cJSON *e = cJSON_GetObjectItem(fa, "embedding");
            for (int j = 0; j < d; j++) x[i * d + j] = (float)cJSON_GetArrayItem(e, j)->valuedouble;
            i++;
        }
        for (int j = 0; j < d; j++) mu[j] = 0;
        for (i = 0; i < k; i++)
            for (int j = 0; j < d; j++) mu[j] += x[i * d + j] / k;
        for (int a = 0; a < d; a++) {
            sum_c[a] += mu[a];
            for (int b = 0; b < d; b++) cov_b[a * d + b] += mu[a] * mu[b];
        }
        if (k >= 2)
            for (i = 0; i < k; i++)
                for (int a = 0; a < d; a++) {
                    double da = x[i * d + a] - mu[a];
                    for (int b = 0; b < d; b++) cov_w[a * d + b] += da * (x[i * d + b] - mu[b]);
                }
        for (i = 0; i < k; i++)
            for (int j = 0; j < d; j++) sum_all[j] += x[i * d + j];
        n_id++;
        n_face += k;
        free(x);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (!d || n_id < 2 || n_face <= n_id) {
        fprintf(stderr, "%s: need an export with several people, some with several faces\n", path);
        return -1;
    }
    m->dim = d;
    for (int j = 0; j < d; j++) m->mean[j] = sum_c[j] / n_id;
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            cov_b[a * d + b] = cov_b[a * d + b] / n_id - m->mean[a] * m->mean[b];
            cov_w[a * d + b] /= (n_face - n_id);
        }
    double tb = 0, tw = 0;
    for (int j = 0; j < d; j++) tb += cov_b[j * d + j], tw += cov_w[j * d + j];
    printf("model: %d identities, %d faces from %s; trace B %.4f, trace W %.4f\n", n_id, n_face,
           path, tb, tw);
    if (cholesky(cov_b, d) || cholesky(cov_w, d)) {
        fprintf(stderr, "covariance not positive definite\n");
        return -1;
    }
    m->lb = cov_b;
    m->lw = cov_w;
    free(sum_c);
    free(mu);
    return 0;
}

/* One identity centre, and faces of it. */
static void new_centre(const model *m, double *c) {
    if (m->lb) {
        draw(m->lb, m->mean, m->dim, c);
    } else {
        for (int i = 0; i < m->dim; i++) c[i] = rng_normal();
        double s = 0;
        for (int i = 0; i < m->dim; i++) s += c[i] * c[i];
        for (int i = 0; i < m->dim; i++) c[i] /= sqrt(s);
    }
}

static void new_face(const model *m, const double *c, float *out) {
    double v[DIM_MAX];
    if (m->lw) {
        draw(m->lw, c, m->dim, v);
    } else {
        for (int i = 0; i < m->dim; i++) v[i] = c[i] + m->iso_sigma * rng_normal();
    }
    for (int i = 0; i < m->dim; i++) out[i] = (float)v[i];
    normalise(out, m->dim);
}

/* ==== Exact search as the gallery does it ==== */

typedef struct exact_ws {
    float *sims;   /* (n,) */
    float *best;   /* (n_subj,) */
} exact_ws;

/* The best face (its row) over the gallery; also fills the per-subject maxima, as
 * mien_gallery_search does before choosing the top subjects. */
static long exact_top1(const float *x, long n, int d, const int *subj, int n_subj,
                       const float *q, exact_ws *ws) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, d, 1.0f, x, d, q, 1, 0.0f, ws->sims, 1);
    for (int s = 0; s < n_subj; s++) ws->best[s] = -INFINITY;
    long arg = 0;
    for (long r = 0; r < n; r++) {
        float v = ws->sims[r];
        if (v > ws->best[subj[r]]) ws->best[subj[r]] = v;
        if (v > ws->sims[arg]) arg = r;
    }
    return arg;
}

/* ==== Main ==== */

static int parse_list(const char *s, long *v, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        v[n++] = strtol(s, &end, 10);
        if (*end != ',' && *end) return -1;
        s = *end ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *real = NULL;
    long sizes[8] = {10000, 100000, 1000000}, efs[16] = {16, 32, 64, 128, 256};
    int n_sizes = 3, n_efs = 5, queries = 1000, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int faces_per_id = 5;
    const char *write_export = NULL; /* write the largest size as a gallery export and stop */
    ghnsw_params p;
    ghnsw_params_default(&p);
    model m = {.dim = 128, .iso_sigma = 0.03};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--real") && v) real = v, i++;
        else if (!strcmp(a, "--sizes") && v) n_sizes = parse_list(v, sizes, 8), i++;
        else if (!strcmp(a, "--ef") && v) n_efs = parse_list(v, efs, 16), i++;
        else if (!strcmp(a, "--queries") && v) queries = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--faces-per-id") && v) faces_per_id = atoi(v), i++;
        else if (!strcmp(a, "--M") && v) p.M = atoi(v), i++;
        else if (!strcmp(a, "--efc") && v) p.ef_construction = atoi(v), i++;
        else if (!strcmp(a, "--sigma") && v) m.iso_sigma = atof(v), i++;
        else if (!strcmp(a, "--dim") && v) m.dim = atoi(v), i++;
        else if (!strcmp(a, "--write-export") && v) write_export = v, i++;
        else {
            fprintf(stderr,
                    "usage: bench_gallery [--real EXPORT.jsonl] [--sizes 10000,100000,1000000]\n"
                    "       [--queries 1000] [--ef 16,32,64,128,256] [--M 16] [--efc 100]\n"
                    "       [--threads N] [--faces-per-id 5] [--sigma 0.03] [--dim 128]\n"
                    "       [--write-export FILE]  (the largest size as a file for mien import)\n");
            return 2;
        }
    }
    if (n_sizes <= 0 || n_efs <= 0 || queries <= 0 || faces_per_id <= 0 || m.dim <= 0 ||
        m.dim > DIM_MAX) {
        fprintf(stderr, "bench_gallery: bad arguments\n");
        return 2;
    }
    openblas_set_num_threads(1);
    if (real && fit_real(real, &m)) return 1;
    if (!real) printf("model: isotropic, random identity directions, face spread %.3f per coordinate\n",
                      m.iso_sigma);
    const int d = m.dim;
    long n_max = 0;
    for (int i = 0; i < n_sizes; i++) n_max = sizes[i] > n_max ? sizes[i] : n_max;
    printf("HNSW M=%d ef_construction=%d, %d build threads, %d queries, %d faces per identity, %d-d\n\n",
           p.M, p.ef_construction, threads, queries, faces_per_id, d);
    /* The largest gallery; the smaller sizes are its prefixes (whole identities). */
    long n_id = (n_max + faces_per_id - 1) / faces_per_id;
    float *x = malloc((size_t)n_max * d * sizeof *x);
    int *subj = malloc((size_t)n_max * sizeof *subj);
    double *centres = malloc((size_t)n_id * d * sizeof *centres);
    float *q = malloc((size_t)queries * d * sizeof *q);
    int64_t *labels = malloc((size_t)n_max * sizeof *labels);
    exact_ws ws = {malloc((size_t)n_max * sizeof(float)), malloc((size_t)n_id * sizeof(float))};
    if (!x || !subj || !centres || !q || !labels || !ws.sims || !ws.best) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double t0 = now();
    for (long i = 0; i < n_id; i++) new_centre(&m, centres + i * d);
    for (long r = 0; r < n_max; r++) {
        subj[r] = (int)(r / faces_per_id);
        new_face(&m, centres + (size_t)subj[r] * d, x + (size_t)r * d);
        labels[r] = r;
    }
    printf("generated %ld faces in %.1f s\n", n_max, now() - t0);
    if (write_export) {
        /* A gallery export (mien.h: mien_gallery_export) of the synthetic faces, one subject
         * per identity, for timing mien import / open / the index on a real gallery file. */
        FILE *f = fopen(write_export, "w");
        if (!f) {
            perror(write_export);
            return 1;
        }
        fprintf(f, "{\"format\":\"mien-gallery\",\"version\":1,\"model\":\"dlib\",\"dim\":%d}\n", d);
        for (long s0 = 0; s0 < n_max; s0 += faces_per_id) {
            fprintf(f, "{\"name\":\"synthetic_%07ld\",\"faces\":[", s0 / faces_per_id);
            for (long r = s0; r < n_max && r < s0 + faces_per_id; r++) {
                fprintf(f, "%s{\"embedding\":[", r > s0 ? "," : "");
                for (int j = 0; j < d; j++) fprintf(f, "%s%.9g", j ? "," : "", x[(size_t)r * d + j]);
                fprintf(f, "]}");
            }
            fprintf(f, "]}\n");
        }
        if (fclose(f) != 0) {
            perror(write_export);
            return 1;
        }
        printf("wrote %ld faces to %s\n", n_max, write_export);
        return 0;
    }
    /* Typical similarities, to compare with real data (LFW, dlib: same person ~0.95, different
     * people ~0.85 on average, threshold 0.9286). */
    {
        double s_same = 0, s_diff = 0;
        int ns = 0, nd = 0;
        for (int t = 0; t < 2000 && n_max > faces_per_id; t++) {
            long a = (long)(rng_u64() % (uint64_t)n_max), b = (long)(rng_u64() % (uint64_t)n_max);
            long a2 = (a / faces_per_id) * faces_per_id + (a % faces_per_id + 1) % faces_per_id;
            if (a2 < n_max) s_same += cblas_sdot(d, x + a * d, 1, x + a2 * d, 1), ns++;
            if (subj[a] != subj[b]) s_diff += cblas_sdot(d, x + a * d, 1, x + b * d, 1), nd++;
        }
        printf("mean cosine: same identity %.4f, different identities %.4f\n\n", s_same / (ns ? ns : 1),
               s_diff / (nd ? nd : 1));
    }
    printf("| faces | exact ms/query | build CPU s (wall s) | ef | HNSW ms/query | recall@1 (face) | recall@1 (subject) |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int si = 0; si < n_sizes; si++) {
        long n = sizes[si];
        int n_subj = (int)((n + faces_per_id - 1) / faces_per_id);
        /* Queries: new faces of random identities of this gallery. */
        for (int i = 0; i < queries; i++)
            new_face(&m, centres + (size_t)(rng_u64() % (uint64_t)n_subj) * d, q + (size_t)i * d);
        long *truth = malloc((size_t)queries * sizeof *truth);
        t0 = thread_cpu();
        for (int i = 0; i < queries; i++)
            truth[i] = exact_top1(x, n, d, subj, n_subj, q + (size_t)i * d, &ws);
        double exact_ms = 1e3 * (thread_cpu() - t0) / queries;
        ghnsw *h;
        char err[256];
        t0 = now();
        double c0 = process_cpu();
        if (ghnsw_create(d, (size_t)n, &p, &h, err, sizeof err) ||
            ghnsw_add(h, x, labels, (size_t)n, threads, err, sizeof err)) {
            fprintf(stderr, "hnsw: %s\n", err);
            return 1;
        }
        double build_s = now() - t0, build_cpu = process_cpu() - c0;
        for (int ei = 0; ei < n_efs; ei++) {
            int hit = 0, hit_subj = 0, got;
            int64_t lab;
            float sim;
            t0 = thread_cpu();
            for (int i = 0; i < queries; i++) {
                ghnsw_search(h, q + (size_t)i * d, 1, (int)efs[ei], &lab, &sim, &got);
                hit += got == 1 && lab == truth[i];
                hit_subj += got == 1 && subj[lab] == subj[truth[i]];
            }
            double ann_ms = 1e3 * (thread_cpu() - t0) / queries;
            printf("| %ld | %.3f | %.0f (%.0f) | %ld | %.3f | %.4f | %.4f |\n", n, exact_ms, build_cpu,
                   build_s, efs[ei], ann_ms, (double)hit / queries, (double)hit_subj / queries);
            fflush(stdout);
        }
        ghnsw_free(h);
        free(truth);
    }
    free(x), free(subj), free(centres), free(q), free(labels), free(ws.sims), free(ws.best);
    free(m.lb), free(m.lw);
    return 0;
}
