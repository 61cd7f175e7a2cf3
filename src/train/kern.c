/* The training engine's fast kernels (see kern.h). */
#include "train/kern.h"

#include "core/err.h"
#include "nn/gemm_kernel.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef MIEN_HAVE_XNNPACK
#include <pthreadpool.h>
#else
/* Built without pthreadpool (make XNNPACK=0): the kernels run on the calling thread
 * (tr_kern_create asks for one), and these stand-ins are never reached with a pool. */
typedef void *pthreadpool_t;
#define PTHREADPOOL_FLAG_DISABLE_DENORMALS 0
static inline pthreadpool_t pthreadpool_create(size_t n) { (void)n; return NULL; }
static inline void pthreadpool_destroy(pthreadpool_t p) { (void)p; }
static inline void pthreadpool_parallelize_1d(pthreadpool_t p, void (*f)(void *, size_t), void *c,
                                              size_t range, uint32_t flags) {
    (void)p, (void)flags;
    for (size_t i = 0; i < range; i++) f(c, i);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KERN_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f")))
#else
#define KERN_X86 0
#endif

#define KC 256      /* K per packed B block */
#define NC 1024     /* columns per packed B block */
#define MC 96       /* rows of A per block (reused across the block's B panels) */
#define MAX_MR 6
#define ROW_BLOCK 64 /* rows summed in float before the double accumulators */

/* Microkernel: C[0..rows) x [0..cols) (+)= sum over kc of a[r][i * ask] * b[i][j], b packed
 * [kc][nr]. a holds MR row pointers; rows past `rows` repeat a valid one. */
typedef void (*ukr_fn)(int64_t kc, const float *const *a, int64_t ask, const float *b, float *c,
                       int64_t ldc, int acc, int rows, int cols);

struct tr_kern {
    pthreadpool_t pool;
    int threads;
    tr_isa isa;
    int mr, nr;
    ukr_fn ukr;
    int n_slots;             /* per-task scratch sets (4 per thread: tasks balance) */
    float **pb;              /* (n_slots) packed B */
    size_t *pb_n;
    float **cb;              /* (n_slots) private C (K split) and float scratch */
    size_t *cb_n;
    double **db;             /* (n_slots) partial sums */
    size_t *db_n;
};

/* ==== Microkernels ==== */

static void ukr_scalar(int64_t kc, const float *const *a, int64_t ask, const float *b, float *c,
                       int64_t ldc, int acc, int rows, int cols) {
    float t[4][4] = {{0}};
    for (int64_t i = 0, o = 0; i < kc; i++, o += ask, b += 4)
        for (int r = 0; r < 4; r++) {
            const float x = a[r][o];
            for (int j = 0; j < 4; j++) t[r][j] += x * b[j];
        }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) c[r * ldc + j] = acc ? c[r * ldc + j] + t[r][j] : t[r][j];
}

#if KERN_X86
/* The 6x16 AVX2/FMA microkernel of the fast backend (nn/gemm_kernel.c), from zero, added to
 * C when acc. */
static void ukr_avx2(int64_t kc, const float *const *a, int64_t ask, const float *b, float *c,
                     int64_t ldc, int acc, int rows, int cols) {
    const nn_gemm_out o = {.acc = acc};
    nn_gemm_6x16(kc, a, ask, b, c, ldc, rows, cols, &o);
}

AVX512 static void store16(float *c, __m512 v, int acc, int n) {
    if (n <= 0) return;
    const __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    if (acc) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), v);
    _mm512_mask_storeu_ps(c, m, v);
}

AVX512 static void ukr_avx512(int64_t kc, const float *const *a, int64_t ask, const float *b,
                              float *c, int64_t ldc, int acc, int rows, int cols) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t i = 0, o = 0; i < kc; i++, o += ask, b += 32) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        __m512 x = _mm512_set1_ps(a0[o]);
        c00 = _mm512_fmadd_ps(x, b0, c00);
        c01 = _mm512_fmadd_ps(x, b1, c01);
        x = _mm512_set1_ps(a1[o]);
        c10 = _mm512_fmadd_ps(x, b0, c10);
        c11 = _mm512_fmadd_ps(x, b1, c11);
        x = _mm512_set1_ps(a2[o]);
        c20 = _mm512_fmadd_ps(x, b0, c20);
        c21 = _mm512_fmadd_ps(x, b1, c21);
        x = _mm512_set1_ps(a3[o]);
        c30 = _mm512_fmadd_ps(x, b0, c30);
        c31 = _mm512_fmadd_ps(x, b1, c31);
        x = _mm512_set1_ps(a4[o]);
        c40 = _mm512_fmadd_ps(x, b0, c40);
        c41 = _mm512_fmadd_ps(x, b1, c41);
        x = _mm512_set1_ps(a5[o]);
        c50 = _mm512_fmadd_ps(x, b0, c50);
        c51 = _mm512_fmadd_ps(x, b1, c51);
    }
    const __m512 v[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < rows; r++) {
        store16(c + r * ldc, v[r][0], acc, cols);
        store16(c + r * ldc + 16, v[r][1], acc, cols - 16);
    }
}
#endif

/* ==== Creation ==== */

static int env_isa(tr_isa *out) {
    const char *v = getenv("MIEN_TRAIN_ISA");
    if (!v || !*v) return 0;
    if (!strcmp(v, "scalar")) *out = TR_ISA_SCALAR;
    else if (!strcmp(v, "avx2")) *out = TR_ISA_AVX2;
    else if (!strcmp(v, "avx512")) *out = TR_ISA_AVX512;
    else return 0;
    return 1;
}

static tr_isa best_isa(void) {
#if KERN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return TR_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TR_ISA_AVX2;
#endif
    return TR_ISA_SCALAR;
}

tr_kern *tr_kern_create(int threads) {
    tr_kern *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->threads = threads > 0 ? threads : 1;
#ifndef MIEN_HAVE_XNNPACK
    k->threads = 1; /* no thread pool in this build */
#endif
    k->isa = best_isa();
    tr_isa want;
    if (env_isa(&want) && want < k->isa) k->isa = want;
    switch (k->isa) {
#if KERN_X86
    case TR_ISA_AVX512: k->mr = 6, k->nr = 32, k->ukr = ukr_avx512; break;
    case TR_ISA_AVX2: k->mr = 6, k->nr = 16, k->ukr = ukr_avx2; break;
#endif
    default: k->isa = TR_ISA_SCALAR, k->mr = 4, k->nr = 4, k->ukr = ukr_scalar; break;
    }
    k->n_slots = k->threads > 1 ? 4 * k->threads : 1;
    k->pb = calloc((size_t)k->n_slots, sizeof *k->pb);
    k->pb_n = calloc((size_t)k->n_slots, sizeof *k->pb_n);
    k->cb = calloc((size_t)k->n_slots, sizeof *k->cb);
    k->cb_n = calloc((size_t)k->n_slots, sizeof *k->cb_n);
    k->db = calloc((size_t)k->n_slots, sizeof *k->db);
    k->db_n = calloc((size_t)k->n_slots, sizeof *k->db_n);
    if (!k->pb || !k->pb_n || !k->cb || !k->cb_n || !k->db || !k->db_n ||
        (k->threads > 1 && !(k->pool = pthreadpool_create((size_t)k->threads)))) {
        tr_kern_free(k);
        return NULL;
    }
    return k;
}

void tr_kern_free(tr_kern *k) {
    if (!k) return;
    for (int s = 0; s < k->n_slots; s++) {
        if (k->pb) free(k->pb[s]);
        if (k->cb) free(k->cb[s]);
        if (k->db) free(k->db[s]);
    }
    free(k->pb);
    free(k->pb_n);
    free(k->cb);
    free(k->cb_n);
    free(k->db);
    free(k->db_n);
    if (k->pool) pthreadpool_destroy(k->pool);
    free(k);
}

tr_isa tr_kern_isa(const tr_kern *k) { return k->isa; }
int tr_kern_threads(const tr_kern *k) { return k->threads; }

const char *tr_isa_name(tr_isa isa) {
    return isa == TR_ISA_AVX512 ? "avx512" : isa == TR_ISA_AVX2 ? "avx2" : "scalar";
}

/* Grow slot buffers (of s slots) to n elements each. */
static int reserve(void **buf, size_t *cap, int s, size_t n, size_t elem) {
    for (int i = 0; i < s; i++) {
        if (cap[i] >= n) continue;
        free(buf[i]);
        buf[i] = malloc((n ? n : 1) * elem);
        cap[i] = buf[i] ? n : 0;
        if (!buf[i]) return MIEN_ENOMEM;
    }
    return MIEN_OK;
}

static int reserve_pb(tr_kern *k, int s, size_t n) { return reserve((void **)k->pb, k->pb_n, s, n, sizeof(float)); }
static int reserve_cb(tr_kern *k, int s, size_t n) { return reserve((void **)k->cb, k->cb_n, s, n, sizeof(float)); }
static int reserve_db(tr_kern *k, int s, size_t n) { return reserve((void **)k->db, k->db_n, s, n, sizeof(double)); }

/* ==== Parallel ranges ==== */

typedef void (*range_fn)(void *ctx, int slot, int64_t i0, int64_t i1);

typedef struct par_job {
    range_fn fn;
    void *ctx;
    int64_t n;
    int s;
} par_job;

static void par_task(void *p, size_t i) {
    const par_job *j = p;
    const int64_t i0 = j->n * (int64_t)i / j->s, i1 = j->n * ((int64_t)i + 1) / j->s;
    if (i1 > i0) j->fn(j->ctx, (int)i, i0, i1);
}

/* How many ranges n items of at least `grain` each make (1 on one thread). */
static int n_ranges(const tr_kern *k, int64_t n, int64_t grain) {
    if (k->threads <= 1 || !k->pool) return 1;
    int64_t s = grain > 0 ? n / grain : n;
    if (s < 1) s = 1;
    if (s > k->n_slots) s = k->n_slots;
    return (int)s;
}

/* Denormal numbers off (flushed to zero in and out) while a kernel runs: pretrained weights
 * hold some (batch norm folded into a near-dead channel), and every multiply-add that meets
 * one takes a microcode assist a hundred times slower, which made whole layers crawl. The
 * inference backend runs the same way (XNNPACK's thread pool flag). */
static unsigned denormals_off(void) {
#if KERN_X86
    const unsigned m = _mm_getcsr();
    _mm_setcsr(m | 0x8040); /* FTZ | DAZ */
    return m;
#else
    return 0;
#endif
}

static void denormals_restore(unsigned m) {
#if KERN_X86
    _mm_setcsr(m);
#else
    (void)m;
#endif
}

static void par(tr_kern *k, int s, int64_t n, range_fn fn, void *ctx) {
    if (s <= 1 || !k->pool) {
        const unsigned m = denormals_off();
        if (n > 0) fn(ctx, 0, 0, n);
        denormals_restore(m);
        return;
    }
    par_job j = {fn, ctx, n, s};
    pthreadpool_parallelize_1d(k->pool, par_task, &j, (size_t)s, PTHREADPOOL_FLAG_DISABLE_DENORMALS);
}

/* ==== GEMM ==== */

typedef struct gemm_job {
    tr_kern *k;
    int ta, tb;
    int64_t M, N, K;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    int acc;
    float *C;
    int split;               /* 0 rows, 1 columns, 2 K */
    int s;                   /* ranges */
} gemm_job;

/* B[k0 .. k0+kc) x [j0 .. j0+nc) into panels of nr columns, [panel][kc][nr], zero-padded. */
static void pack_b(const gemm_job *g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr,
                   float *pb) {
    for (int64_t s = 0; s * nr < nc; s++) {
        float *d = pb + s * kc * nr;
        const int64_t jj = j0 + s * nr;
        const int w = nc - s * nr < nr ? (int)(nc - s * nr) : nr;
        if (!g->tb) {
            for (int64_t i = 0; i < kc; i++) {
                memcpy(d + i * nr, g->B + (k0 + i) * g->ldb + jj, (size_t)w * sizeof(float));
                for (int j = w; j < nr; j++) d[i * nr + j] = 0.f;
            }
        } else {
            for (int j = 0; j < w; j++) {
                const float *src = g->B + (jj + j) * g->ldb + k0;
                for (int64_t i = 0; i < kc; i++) d[i * nr + j] = src[i];
            }
            for (int j = w; j < nr; j++)
                for (int64_t i = 0; i < kc; i++) d[i * nr + j] = 0.f;
        }
    }
}

/* C[m0..m1) x [n0..n1) over K [k0..k1) on one thread; C points at row 0, column 0. */
static void gemm_region(const gemm_job *g, float *pb, int64_t m0, int64_t m1, int64_t n0,
                        int64_t n1, int64_t k0, int64_t k1, int acc, float *C, int64_t ldc) {
    const tr_kern *k = g->k;
    const int mr = k->mr, nr = k->nr;
    const int64_t ask = g->ta ? g->lda : 1;
    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = n1 - jc < NC ? n1 - jc : NC;
        for (int64_t pc = k0; pc < k1; pc += KC) {
            const int64_t kc = k1 - pc < KC ? k1 - pc : KC;
            const int a = acc || pc > k0;
            pack_b(g, pc, kc, jc, nc, nr, pb);
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = m1 - ic < MC ? m1 - ic : MC;
                for (int64_t s = 0; s * nr < nc; s++) {
                    const float *bs = pb + s * kc * nr;
                    const int cols = nc - s * nr < nr ? (int)(nc - s * nr) : nr;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        const int rows = mc - ir < mr ? (int)(mc - ir) : mr;
                        const float *ap[MAX_MR];
                        for (int r = 0; r < mr; r++) {
                            const int64_t i = ic + ir + (r < rows ? r : rows - 1);
                            ap[r] = g->ta ? g->A + pc * g->lda + i : g->A + i * g->lda + pc;
                        }
                        k->ukr(kc, ap, ask, bs, C + (ic + ir) * ldc + jc + s * nr, ldc, a, rows, cols);
                    }
                }
            }
        }
    }
}

static size_t pb_need(const tr_kern *k, int64_t K, int64_t N) {
    const int64_t kc = K < KC ? K : KC, nc = N < NC ? N : NC;
    return (size_t)kc * (size_t)((nc + k->nr - 1) / k->nr * k->nr);
}

static void gemm_task(void *ctx, int slot, int64_t i0, int64_t i1) {
    const gemm_job *g = ctx;
    tr_kern *k = g->k;
    if (g->split == 0) {
        gemm_region(g, k->pb[slot], i0 * k->mr, i1 * k->mr < g->M ? i1 * k->mr : g->M, 0, g->N, 0,
                    g->K, g->acc, g->C, g->ldc);
    } else if (g->split == 1) {
        gemm_region(g, k->pb[slot], 0, g->M, i0 * k->nr, i1 * k->nr < g->N ? i1 * k->nr : g->N, 0,
                    g->K, g->acc, g->C, g->ldc);
    } else {
        gemm_region(g, k->pb[slot], 0, g->M, 0, g->N, i0, i1, 0, k->cb[slot], g->N);
    }
}

/* K split: C (+)= the sum of the slots' private results, rows [i0, i1). */
static void gemm_reduce(void *ctx, int slot, int64_t i0, int64_t i1) {
    const gemm_job *g = ctx;
    (void)slot;
    for (int64_t i = i0; i < i1; i++) {
        float *c = g->C + i * g->ldc;
        for (int s = 0; s < g->s; s++) {
            const float *p = g->k->cb[s] + i * g->N;
            if (s == 0 && !g->acc) memcpy(c, p, (size_t)g->N * sizeof(float));
            else
                for (int64_t j = 0; j < g->N; j++) c[j] += p[j];
        }
    }
}

int tr_gemm(tr_kern *k, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
            int64_t lda, const float *B, int64_t ldb, int acc, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return MIEN_OK;
    if (K <= 0) {
        if (!acc)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return MIEN_OK;
    }
    gemm_job g = {k, ta, tb, M, N, K, A, B, lda, ldb, ldc, acc, C, 0, 1};
    const int T = k->pool ? k->threads : 1;
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    int64_t items = (M + k->mr - 1) / k->mr;
    if (T > 1 && flops > 4e6) {
        if (M >= 192 * T) {
            g.split = 0;
            g.s = n_ranges(k, M, 96);
        } else if (K >= 1024 * T) {
            g.split = 2;
            g.s = T;
            items = K;
        } else if (N >= 64 * T) {
            g.split = 1;
            items = (N + k->nr - 1) / k->nr;
            g.s = n_ranges(k, items, 64 / k->nr > 0 ? 64 / k->nr : 1);
        } else if (M >= 2 * k->mr * T) {
            g.split = 0;
            g.s = T;
        }
    }
    if (reserve_pb(k, g.s, pb_need(k, g.split == 2 ? K / g.s + 1 : K, N))) return MIEN_ENOMEM;
    if (g.split == 2 && reserve_cb(k, g.s, (size_t)M * (size_t)N)) return MIEN_ENOMEM;
    if (g.s <= 1) {
        const unsigned m = denormals_off();
        gemm_region(&g, k->pb[0], 0, M, 0, N, 0, K, acc, C, ldc);
        denormals_restore(m);
        return MIEN_OK;
    }
    par(k, g.s, items, gemm_task, &g);
    if (g.split == 2) par(k, n_ranges(k, M, 16), M, gemm_reduce, &g);
    return MIEN_OK;
}

/* ==== im2col ==== */

typedef struct conv_job {
    tr_kern *k;
    const tr_conv *g;
    const float *x, *w, *dz;
    float *y, *dx, *dw, *col;
    int64_t p0;
    int acc;
} conv_job;

static void im2col_rows(const tr_conv *g, const float *x, int64_t p0, int64_t r0, int64_t r1,
                        float *col) {
    const int64_t K = (int64_t)g->kh * g->kw * g->c;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t p = p0 + r, b = p / (g->oh * g->ow), rem = p % (g->oh * g->ow);
        const int64_t oy = rem / g->ow, ox = rem % g->ow;
        float *cr = col + r * K;
        for (int ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
            for (int kx = 0; kx < g->kw; kx++) {
                const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
                float *dst = cr + ((int64_t)ky * g->kw + kx) * g->c;
                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                    memset(dst, 0, (size_t)g->c * sizeof(float));
                else
                    memcpy(dst, x + ((b * g->h + iy) * g->w + ix) * g->c, (size_t)g->c * sizeof(float));
            }
        }
    }
}

static void im2col_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const conv_job *j = ctx;
    (void)slot;
    im2col_rows(j->g, j->x, j->p0, r0, r1, j->col);
}

void tr_im2col(tr_kern *k, const tr_conv *g, const float *x, int64_t p0, int64_t rows, float *col) {
    conv_job j = {.k = k, .g = g, .x = x, .col = col, .p0 = p0};
    par(k, n_ranges(k, rows, 256), rows, im2col_task, &j);
}

void tr_col2im_add(tr_kern *k, const tr_conv *g, const float *dcol, int64_t p0, int64_t rows,
                   float *dx) {
    (void)k; /* a scatter: rows of one image overlap, so it stays on one thread */
    const int64_t K = (int64_t)g->kh * g->kw * g->c;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t p = p0 + r, b = p / (g->oh * g->ow), rem = p % (g->oh * g->ow);
        const int64_t oy = rem / g->ow, ox = rem % g->ow;
        const float *cr = dcol + r * K;
        for (int ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
            if (iy < 0 || iy >= g->h) continue;
            for (int kx = 0; kx < g->kw; kx++) {
                const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
                if (ix < 0 || ix >= g->w) continue;
                const float *src = cr + ((int64_t)ky * g->kw + kx) * g->c;
                float *dst = dx + ((b * g->h + iy) * g->w + ix) * g->c;
                for (int64_t c = 0; c < g->c; c++) dst[c] += src[c];
            }
        }
    }
}

/* ==== Depthwise convolution ==== */

#if KERN_X86
/* o[0..cv) = sum over taps of x * w, cv a multiple of 8. */
AVX2 static void dw_pixel_avx2(const tr_conv *g, const float *x, const float *w, int64_t b,
                               int64_t oy, int64_t ox, int64_t cv, float *o) {
    const int64_t C = g->c;
    for (int64_t c = 0; c < cv; c += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int ky = 0; ky < g->kh; ky++) {
            const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
            if (iy < 0 || iy >= g->h) continue;
            const float *xr = x + (b * g->h + iy) * g->w * C + c;
            const float *wr = w + (int64_t)ky * g->kw * C + c;
            for (int kx = 0; kx < g->kw; kx++) {
                const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
                if (ix < 0 || ix >= g->w) continue;
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(xr + ix * C), _mm256_loadu_ps(wr + kx * C), acc);
            }
        }
        _mm256_storeu_ps(o + c, acc);
    }
}

/* The backward of one output pixel: dx += d w, dwp += d x over the taps, channels [0, cv). */
AVX2 static void dw_back_pixel_avx2(const tr_conv *g, const float *x, const float *w,
                                    const float *d, int64_t b, int64_t oy, int64_t ox, int64_t cv,
                                    float *dx, float *dwp) {
    const int64_t C = g->c;
    for (int ky = 0; ky < g->kh; ky++) {
        const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
        if (iy < 0 || iy >= g->h) continue;
        for (int kx = 0; kx < g->kw; kx++) {
            const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
            if (ix < 0 || ix >= g->w) continue;
            const int64_t xo = ((b * g->h + iy) * g->w + ix) * C, wo = ((int64_t)ky * g->kw + kx) * C;
            for (int64_t c = 0; c < cv; c += 8) {
                const __m256 dv = _mm256_loadu_ps(d + c);
                if (dx)
                    _mm256_storeu_ps(dx + xo + c, _mm256_fmadd_ps(dv, _mm256_loadu_ps(w + wo + c),
                                                                  _mm256_loadu_ps(dx + xo + c)));
                if (dwp)
                    _mm256_storeu_ps(dwp + wo + c, _mm256_fmadd_ps(dv, _mm256_loadu_ps(x + xo + c),
                                                                   _mm256_loadu_ps(dwp + wo + c)));
            }
        }
    }
}
#endif

static int64_t vec_channels(const tr_kern *k, int64_t C) {
    return k->isa >= TR_ISA_AVX2 ? C & ~(int64_t)7 : 0;
}

static void dw_fwd_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const conv_job *j = ctx;
    const tr_conv *g = j->g;
    const int64_t C = g->c, cv = vec_channels(j->k, C);
    (void)slot;
    for (int64_t r = r0; r < r1; r++) { /* r = b * OH + oy */
        const int64_t b = r / g->oh, oy = r % g->oh;
        for (int64_t ox = 0; ox < g->ow; ox++) {
            float *o = j->y + ((b * g->oh + oy) * g->ow + ox) * C;
#if KERN_X86
            if (cv) dw_pixel_avx2(g, j->x, j->w, b, oy, ox, cv, o);
#endif
            for (int64_t c = cv; c < C; c++) o[c] = 0.f;
            if (cv == C) continue;
            for (int ky = 0; ky < g->kh; ky++) {
                const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
                if (iy < 0 || iy >= g->h) continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
                    if (ix < 0 || ix >= g->w) continue;
                    const float *xp = j->x + ((b * g->h + iy) * g->w + ix) * C;
                    const float *wp = j->w + ((int64_t)ky * g->kw + kx) * C;
                    for (int64_t c = cv; c < C; c++) o[c] += xp[c] * wp[c];
                }
            }
        }
    }
}

int tr_dw_forward(tr_kern *k, const tr_conv *g, const float *x, const float *w, float *y) {
    conv_job j = {.k = k, .g = g, .x = x, .w = w, .y = y};
    const int64_t rows = g->n * g->oh;
    par(k, n_ranges(k, rows, 2), rows, dw_fwd_task, &j);
    return MIEN_OK;
}

/* Images [b0, b1): dx of those images, and the slot's share of dw. */
static void dw_bwd_task(void *ctx, int slot, int64_t b0, int64_t b1) {
    const conv_job *j = ctx;
    const tr_conv *g = j->g;
    const int64_t C = g->c, cv = vec_channels(j->k, C);
    const int64_t wn = (int64_t)g->kh * g->kw * C;
    float *dwp = j->dw ? j->k->cb[slot] : NULL;
    if (dwp) memset(dwp, 0, (size_t)wn * sizeof(float));
    if (j->dx && !j->acc) memset(j->dx + b0 * g->h * g->w * C, 0, (size_t)((b1 - b0) * g->h * g->w * C) * sizeof(float));
    for (int64_t b = b0; b < b1; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++) {
                const float *d = j->dz + ((b * g->oh + oy) * g->ow + ox) * C;
#if KERN_X86
                if (cv) dw_back_pixel_avx2(g, j->x, j->w, d, b, oy, ox, cv, j->dx, dwp);
#endif
                if (cv == C) continue;
                for (int ky = 0; ky < g->kh; ky++) {
                    const int64_t iy = oy * g->stride[0] - g->pad_top + (int64_t)ky * g->dilation[0];
                    if (iy < 0 || iy >= g->h) continue;
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int64_t ix = ox * g->stride[1] - g->pad_left + (int64_t)kx * g->dilation[1];
                        if (ix < 0 || ix >= g->w) continue;
                        const int64_t xo = ((b * g->h + iy) * g->w + ix) * C;
                        const int64_t wo = ((int64_t)ky * g->kw + kx) * C;
                        for (int64_t c = cv; c < C; c++) {
                            if (j->dx) j->dx[xo + c] += d[c] * j->w[wo + c];
                            if (dwp) dwp[wo + c] += d[c] * j->x[xo + c];
                        }
                    }
                }
            }
}

int tr_dw_backward(tr_kern *k, const tr_conv *g, const float *x, const float *w, const float *dz,
                   float *dx, int acc_dx, float *dw) {
    if (!dx && !dw) return MIEN_OK;
    const int s = n_ranges(k, g->n, 1);
    const int64_t wn = (int64_t)g->kh * g->kw * g->c;
    if (dw && reserve_cb(k, s, (size_t)wn)) return MIEN_ENOMEM;
    conv_job j = {.k = k, .g = g, .x = x, .w = w, .dz = dz, .dx = dx, .dw = dw, .acc = acc_dx};
    par(k, s, g->n, dw_bwd_task, &j);
    if (dw)
        for (int i = 0; i < s; i++) /* fixed order: the same sums every run */
            for (int64_t t = 0; t < wn; t++) dw[t] += k->cb[i][t];
    return MIEN_OK;
}

/* ==== Per-channel ops ==== */

typedef struct chan_job {
    tr_kern *k;
    const float *x, *dy, *a, *sh, *mean, *alpha, *shift, *c1, *c2, *c3, *bias;
    float *y, *dx, *pre;
    int64_t R, C;
    nn_act act;
    int acc;
    int nsum;                /* partial sums per slot (multiples of C doubles) */
} chan_job;

/* Reduce the slots' partial sums (nsum x C doubles each) into out[0..nsum) in slot order. */
static void reduce_slots(tr_kern *k, int s, int nsum, int64_t C, double **out) {
    for (int q = 0; q < nsum; q++) {
        if (!out[q]) continue;
        memset(out[q], 0, (size_t)C * sizeof(double));
        for (int i = 0; i < s; i++)
            for (int64_t c = 0; c < C; c++) out[q][c] += k->db[i][q * C + c];
    }
}

#if KERN_X86
/* t1 += x - s, t2 += (x - s)^2 over rows [r0, r1), channels [0, cv). */
AVX2 static void moments_avx2(const float *x, int64_t r0, int64_t r1, int64_t C, int64_t cv,
                              const float *s, float *t1, float *t2) {
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 sv = _mm256_loadu_ps(s + c);
        __m256 a1 = _mm256_setzero_ps(), a2 = a1;
        for (int64_t r = r0; r < r1; r++) {
            const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + r * C + c), sv);
            a1 = _mm256_add_ps(a1, v);
            a2 = _mm256_fmadd_ps(v, v, a2);
        }
        _mm256_storeu_ps(t1 + c, a1);
        _mm256_storeu_ps(t2 + c, a2);
    }
}
#endif

static void moments_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    double *d1 = j->k->db[slot], *d2 = d1 + C;
    float *t1 = j->k->cb[slot], *t2 = t1 + C;
    memset(d1, 0, (size_t)C * 2 * sizeof(double));
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        const int64_t re = r1 - rb < ROW_BLOCK ? r1 : rb + ROW_BLOCK;
#if KERN_X86
        if (cv) moments_avx2(j->x, rb, re, C, cv, j->shift, t1, t2);
#endif
        for (int64_t c = cv; c < C; c++) t1[c] = t2[c] = 0.f;
        for (int64_t r = rb; r < re && cv < C; r++)
            for (int64_t c = cv; c < C; c++) {
                float v = j->x[r * C + c] - j->shift[c];
                t1[c] += v;
                t2[c] += v * v;
            }
        for (int64_t c = 0; c < C; c++) {
            d1[c] += t1[c];
            d2[c] += t2[c];
        }
    }
}

int tr_col_moments(tr_kern *k, const float *x, int64_t R, int64_t C, const float *shift,
                   double *s1, double *s2) {
    const int s = n_ranges(k, R, 256);
    if (reserve_db(k, s, (size_t)C * 2) || reserve_cb(k, s, (size_t)C * 2)) return MIEN_ENOMEM;
    chan_job j = {.k = k, .x = x, .shift = shift, .R = R, .C = C};
    if (R > 0) par(k, s, R, moments_task, &j);
    else
        for (int i = 0; i < s; i++) memset(k->db[i], 0, (size_t)C * 2 * sizeof(double));
    double *out[2] = {s1, s2};
    reduce_slots(k, s, 2, C, out);
    return MIEN_OK;
}

#if KERN_X86
/* x a + sh rounded twice, as the reference kernels compute the batch-norm pre-activation: the
 * forward and backward passes must agree on its sign (the activation's kink) with them, and a
 * fused multiply-add would move values near zero across it. */
AVX2 static inline __m256 mul_add(__m256 x, __m256 a, __m256 sh) {
    return _mm256_add_ps(_mm256_mul_ps(x, a), sh);
}

AVX2 static inline __m256 prelu8(__m256 z, __m256 al) {
    return _mm256_blendv_ps(_mm256_mul_ps(z, al), z, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
}

AVX2 static void ssa_row_avx2(const float *x, float *y, int64_t cv, const float *a,
                              const float *sh, nn_act act, const float *al) {
    for (int64_t c = 0; c < cv; c += 8) {
        __m256 z = mul_add(_mm256_loadu_ps(x + c), _mm256_loadu_ps(a + c), _mm256_loadu_ps(sh + c));
        if (act == NN_ACT_PRELU) z = prelu8(z, _mm256_loadu_ps(al + c));
        else if (act == NN_ACT_RELU) z = _mm256_max_ps(z, _mm256_setzero_ps());
        _mm256_storeu_ps(y + c, z);
    }
}
#endif

static inline float act1(float z, nn_act act, float al) {
    return act == NN_ACT_PRELU ? (z > 0 ? z : al * z) : act == NN_ACT_RELU ? (z > 0 ? z : 0.f) : z;
}

static void ssa_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    (void)slot;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * C;
        float *yr = j->y + r * C;
#if KERN_X86
        if (cv) ssa_row_avx2(xr, yr, cv, j->a, j->sh, j->act, j->alpha);
#endif
        for (int64_t c = cv; c < C; c++)
            yr[c] = act1(xr[c] * j->a[c] + j->sh[c], j->act, j->alpha ? j->alpha[c] : 0.f);
    }
}

void tr_scale_shift_act(tr_kern *k, const float *x, float *y, int64_t R, int64_t C,
                        const float *a, const float *sh, nn_act act, const float *alpha) {
    chan_job j = {.k = k, .x = x, .y = y, .R = R, .C = C, .a = a, .sh = sh, .act = act, .alpha = alpha};
    par(k, n_ranges(k, R * C, 16384) , R, ssa_task, &j);
}

#if KERN_X86
/* Sums over rows [r0, r1) of d, d (x - mean) and (PReLU) dy z over z <= 0. */
AVX2 static void bn_sums_avx2(const float *x, const float *dy, int64_t r0, int64_t r1, int64_t C,
                              int64_t cv, const float *a, const float *sh, const float *mean,
                              nn_act act, const float *al, float *t0, float *t1, float *t2) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 av = _mm256_loadu_ps(a + c), sv = _mm256_loadu_ps(sh + c);
        const __m256 mv = _mm256_loadu_ps(mean + c);
        const __m256 alv = act == NN_ACT_PRELU ? _mm256_loadu_ps(al + c) : zero;
        __m256 s0 = zero, s1 = zero, s2 = zero;
        for (int64_t r = r0; r < r1; r++) {
            const __m256 xv = _mm256_loadu_ps(x + r * C + c), g = _mm256_loadu_ps(dy + r * C + c);
            __m256 d = g;
            if (act != NN_ACT_NONE) {
                const __m256 z = mul_add(xv, av, sv);
                const __m256 pos = _mm256_cmp_ps(z, zero, _CMP_GT_OQ);
                d = _mm256_blendv_ps(_mm256_mul_ps(alv, g), g, pos);
                if (act == NN_ACT_PRELU) s2 = _mm256_add_ps(s2, _mm256_blendv_ps(_mm256_mul_ps(g, z), zero, pos));
            }
            s0 = _mm256_add_ps(s0, d);
            s1 = _mm256_fmadd_ps(d, _mm256_sub_ps(xv, mv), s1);
        }
        _mm256_storeu_ps(t0 + c, s0);
        _mm256_storeu_ps(t1 + c, s1);
        _mm256_storeu_ps(t2 + c, s2);
    }
}
#endif

static void bn_sums_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    double *d = j->k->db[slot];
    float *t0 = j->k->cb[slot], *t1 = t0 + C, *t2 = t0 + 2 * C;
    memset(d, 0, (size_t)C * 3 * sizeof(double));
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        const int64_t re = r1 - rb < ROW_BLOCK ? r1 : rb + ROW_BLOCK;
#if KERN_X86
        if (cv) bn_sums_avx2(j->x, j->dy, rb, re, C, cv, j->a, j->sh, j->mean, j->act, j->alpha, t0, t1, t2);
#endif
        for (int64_t c = cv; c < C; c++) t0[c] = t1[c] = t2[c] = 0.f;
        for (int64_t r = rb; r < re && cv < C; r++)
            for (int64_t c = cv; c < C; c++) {
                const float xv = j->x[r * C + c], g = j->dy[r * C + c];
                float dd = g;
                if (j->act != NN_ACT_NONE) {
                    const float z = xv * j->a[c] + j->sh[c];
                    const int pos = z > 0;
                    dd = pos ? g : (j->act == NN_ACT_PRELU ? j->alpha[c] : 0.f) * g;
                    if (j->act == NN_ACT_PRELU && !pos) t2[c] += g * z;
                }
                t0[c] += dd;
                t1[c] += dd * (xv - j->mean[c]);
            }
        for (int64_t c = 0; c < C; c++) {
            d[c] += t0[c];
            d[C + c] += t1[c];
            d[2 * C + c] += t2[c];
        }
    }
}

int tr_bn_grad_sums(tr_kern *k, const float *x, const float *dy, int64_t R, int64_t C,
                    const float *a, const float *sh, const float *mean, nn_act act,
                    const float *alpha, double *sd, double *sdx, double *sal) {
    const int s = n_ranges(k, R, 256);
    if (reserve_db(k, s, (size_t)C * 3) || reserve_cb(k, s, (size_t)C * 3)) return MIEN_ENOMEM;
    chan_job j = {.k = k, .x = x, .dy = dy, .R = R, .C = C, .a = a, .sh = sh, .mean = mean,
                  .act = act, .alpha = alpha};
    if (R > 0) par(k, s, R, bn_sums_task, &j);
    else
        for (int i = 0; i < s; i++) memset(k->db[i], 0, (size_t)C * 3 * sizeof(double));
    double *out[3] = {sd, sdx, sal};
    reduce_slots(k, s, 3, C, out);
    return MIEN_OK;
}

#if KERN_X86
AVX2 static void bn_dx_row_avx2(const float *x, const float *dy, float *o, int64_t cv, int acc,
                                const float *a, const float *sh, const float *mean, nn_act act,
                                const float *al, const float *c1, const float *c2, const float *c3) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 xv = _mm256_loadu_ps(x + c), g = _mm256_loadu_ps(dy + c);
        __m256 d = g;
        if (act != NN_ACT_NONE) {
            const __m256 z = mul_add(xv, _mm256_loadu_ps(a + c), _mm256_loadu_ps(sh + c));
            const __m256 alv = act == NN_ACT_PRELU ? _mm256_loadu_ps(al + c) : zero;
            d = _mm256_blendv_ps(_mm256_mul_ps(alv, g), g, _mm256_cmp_ps(z, zero, _CMP_GT_OQ));
        }
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(c1 + c), d);
        v = _mm256_sub_ps(v, _mm256_loadu_ps(c2 + c));
        v = _mm256_fnmadd_ps(_mm256_loadu_ps(c3 + c), _mm256_sub_ps(xv, _mm256_loadu_ps(mean + c)), v);
        if (acc) v = _mm256_add_ps(v, _mm256_loadu_ps(o + c));
        _mm256_storeu_ps(o + c, v);
    }
}
#endif

static void bn_dx_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    (void)slot;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * C, *dr = j->dy + r * C;
        float *o = j->dx + r * C;
#if KERN_X86
        if (cv) bn_dx_row_avx2(xr, dr, o, cv, j->acc, j->a, j->sh, j->mean, j->act, j->alpha, j->c1, j->c2, j->c3);
#endif
        for (int64_t c = cv; c < C; c++) {
            float d = dr[c];
            if (j->act != NN_ACT_NONE) {
                const float z = xr[c] * j->a[c] + j->sh[c];
                d = z > 0 ? dr[c] : (j->act == NN_ACT_PRELU ? j->alpha[c] : 0.f) * dr[c];
            }
            const float v = j->c1[c] * d - j->c2[c] - j->c3[c] * (xr[c] - j->mean[c]);
            o[c] = j->acc ? o[c] + v : v;
        }
    }
}

void tr_bn_grad_input(tr_kern *k, const float *x, const float *dy, float *dx, int acc,
                      int64_t R, int64_t C, const float *a, const float *sh, const float *mean,
                      nn_act act, const float *alpha, const float *c1, const float *c2,
                      const float *c3) {
    chan_job j = {.k = k, .x = x, .dy = dy, .dx = dx, .acc = acc, .R = R, .C = C, .a = a, .sh = sh,
                  .mean = mean, .act = act, .alpha = alpha, .c1 = c1, .c2 = c2, .c3 = c3};
    par(k, n_ranges(k, R * C, 16384), R, bn_dx_task, &j);
}

#if KERN_X86
AVX2 static void bias_act_row_avx2(float *y, float *pre, int64_t cv, const float *bias, nn_act act,
                                   const float *al) {
    for (int64_t c = 0; c < cv; c += 8) {
        __m256 z = _mm256_loadu_ps(y + c);
        if (bias) z = _mm256_add_ps(z, _mm256_loadu_ps(bias + c));
        if (pre) _mm256_storeu_ps(pre + c, z);
        if (act == NN_ACT_PRELU) z = prelu8(z, _mm256_loadu_ps(al + c));
        else if (act == NN_ACT_RELU) z = _mm256_max_ps(z, _mm256_setzero_ps());
        _mm256_storeu_ps(y + c, z);
    }
}
#endif

static void bias_act_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    float *pre = j->act != NN_ACT_NONE ? j->pre : NULL;
    (void)slot;
    for (int64_t r = r0; r < r1; r++) {
        float *yr = j->y + r * C, *pr = pre ? pre + r * C : NULL;
#if KERN_X86
        if (cv) bias_act_row_avx2(yr, pr, cv, j->bias, j->act, j->alpha);
#endif
        for (int64_t c = cv; c < C; c++) {
            float z = yr[c] + (j->bias ? j->bias[c] : 0.f);
            if (pr) pr[c] = z;
            yr[c] = act1(z, j->act, j->alpha ? j->alpha[c] : 0.f);
        }
    }
}

void tr_bias_act(tr_kern *k, float *y, float *pre, int64_t R, int64_t C, const float *bias,
                 nn_act act, const float *alpha) {
    if (!bias && act == NN_ACT_NONE) return;
    chan_job j = {.k = k, .y = y, .pre = pre, .R = R, .C = C, .bias = bias, .act = act, .alpha = alpha};
    par(k, n_ranges(k, R * C, 16384), R, bias_act_task, &j);
}

#if KERN_X86
AVX2 static void act_back_avx2(const float *z, const float *dy, float *dz, int64_t r0, int64_t r1,
                               int64_t C, int64_t cv, nn_act act, const float *al, float *ta,
                               float *tb) {
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t c = 0; c < cv; c += 8) {
        const __m256 alv = act == NN_ACT_PRELU ? _mm256_loadu_ps(al + c) : zero;
        __m256 sa = zero, sb = zero;
        for (int64_t r = r0; r < r1; r++) {
            const __m256 g = _mm256_loadu_ps(dy + r * C + c);
            __m256 d = g;
            if (act != NN_ACT_NONE) {
                const __m256 zv = _mm256_loadu_ps(z + r * C + c);
                const __m256 pos = _mm256_cmp_ps(zv, zero, _CMP_GT_OQ);
                d = _mm256_blendv_ps(_mm256_mul_ps(alv, g), g, pos);
                if (act == NN_ACT_PRELU) sa = _mm256_add_ps(sa, _mm256_blendv_ps(_mm256_mul_ps(g, zv), zero, pos));
            }
            _mm256_storeu_ps(dz + r * C + c, d);
            sb = _mm256_add_ps(sb, d);
        }
        _mm256_storeu_ps(ta + c, sa);
        _mm256_storeu_ps(tb + c, sb);
    }
}
#endif

static void act_back_task(void *ctx, int slot, int64_t r0, int64_t r1) {
    const chan_job *j = ctx;
    const int64_t C = j->C, cv = vec_channels(j->k, C);
    double *d = j->k->db[slot];
    float *ta = j->k->cb[slot], *tb = ta + C;
    memset(d, 0, (size_t)C * 2 * sizeof(double));
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
        const int64_t re = r1 - rb < ROW_BLOCK ? r1 : rb + ROW_BLOCK;
#if KERN_X86
        if (cv) act_back_avx2(j->x, j->dy, j->dx, rb, re, C, cv, j->act, j->alpha, ta, tb);
#endif
        for (int64_t c = cv; c < C; c++) ta[c] = tb[c] = 0.f;
        for (int64_t r = rb; r < re && cv < C; r++)
            for (int64_t c = cv; c < C; c++) {
                const float g = j->dy[r * C + c];
                float dd = g;
                if (j->act != NN_ACT_NONE) {
                    const float z = j->x[r * C + c];
                    const int pos = z > 0;
                    dd = pos ? g : (j->act == NN_ACT_PRELU ? j->alpha[c] : 0.f) * g;
                    if (j->act == NN_ACT_PRELU && !pos) ta[c] += g * z;
                }
                j->dx[r * C + c] = dd;
                tb[c] += dd;
            }
        for (int64_t c = 0; c < C; c++) {
            d[c] += ta[c];
            d[C + c] += tb[c];
        }
    }
}

int tr_act_backward(tr_kern *k, const float *z, const float *dy, float *dz, int64_t R,
                    int64_t C, nn_act act, const float *alpha, float *dalpha, float *dbias) {
    const int s = n_ranges(k, R, 256);
    if (reserve_db(k, s, (size_t)C * 2) || reserve_cb(k, s, (size_t)C * 2)) return MIEN_ENOMEM;
    chan_job j = {.k = k, .x = z, .dy = dy, .dx = dz, .R = R, .C = C, .act = act, .alpha = alpha};
    if (R > 0) par(k, s, R, act_back_task, &j);
    else
        for (int i = 0; i < s; i++) memset(k->db[i], 0, (size_t)C * 2 * sizeof(double));
    for (int64_t c = 0; c < C; c++) {
        double sa = 0, sb = 0;
        for (int i = 0; i < s; i++) {
            sa += k->db[i][c];
            sb += k->db[i][C + c];
        }
        if (dalpha) dalpha[c] += (float)sa;
        if (dbias) dbias[c] += (float)sb;
    }
    return MIEN_OK;
}

/* ==== Flat ops ==== */

typedef struct flat_job {
    const float *a, *b;
    float *y;
    int acc;
} flat_job;

static void add_task(void *ctx, int slot, int64_t i0, int64_t i1) {
    const flat_job *j = ctx;
    (void)slot;
    for (int64_t i = i0; i < i1; i++) j->y[i] = j->a[i] + j->b[i];
}

void tr_add(tr_kern *k, const float *a, const float *b, float *y, int64_t n) {
    flat_job j = {a, b, y, 0};
    par(k, n_ranges(k, n, 65536), n, add_task, &j);
}

static void copy_task(void *ctx, int slot, int64_t i0, int64_t i1) {
    const flat_job *j = ctx;
    (void)slot;
    if (!j->acc) {
        memcpy(j->y + i0, j->a + i0, (size_t)(i1 - i0) * sizeof(float));
        return;
    }
    for (int64_t i = i0; i < i1; i++) j->y[i] += j->a[i];
}

void tr_copy_acc(tr_kern *k, const float *s, float *d, int64_t n, int acc) {
    if (s == d && !acc) return;
    flat_job j = {s, NULL, d, acc};
    par(k, n_ranges(k, n, 65536), n, copy_task, &j);
}
