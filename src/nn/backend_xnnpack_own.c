/* The fast backend's own kernels (see backend_xnnpack_own.h): dense convolution as GEMM,
 * depthwise convolution, constant pad.
 *
 * gemm: the output (M = N*OH*OW pixels, CO channels) is computed in blocks of 6 pixels by 16
 * channels: C[6][16] = A[6][K] * B[K][16], K = KH*KW*CI. B is the HWIO weight tensor read
 * as a (K, CO) matrix, packed once into panels of 16 columns (8 for a last narrow panel),
 * zero-padded. A's rows are input pixels: for a 1x1 convolution without padding a row is
 * the input pixel itself (no copy); otherwise the 6 rows are gathered (im2col) into a small
 * per-task buffer, zeros for taps in the padding. Bias, clamp and PReLU are applied to the
 * accumulators before the store, so no second pass over the output is needed. */
#include "nn/backend_xnnpack_own.h"
#include "nn/gemm_kernel.h"

#if defined(__x86_64__) || defined(__i386__)
#define OWN_SIMD 1 /* the one guard of every AVX2 path of this file */
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/* Every kernel plan starts with its run and free functions. */
struct nn_own {
    void (*run)(nn_own *k, pthreadpool_t pool);
    void (*free)(nn_own *k);
};

void nn_own_run(nn_own *k, pthreadpool_t pool) { k->run(k, pool); }

void nn_own_free(nn_own *k) {
    if (k) k->free(k);
}

#define MR 6  /* output pixels per block */
#define NR 16 /* output channels per panel */
#define TASK_BLOCKS 4 /* blocks per thread-pool task: fine enough to balance two threads */
#define GEMM_MAX_K 4608 /* im2col row length (3x3x512) that the stack holds 6 of */

typedef struct own_gemm {
    nn_own base;
    nn_own_conv p;
    int64_t m;                /* output pixels N*OH*OW */
    int64_t k;                /* KH*KW*CI */
    int direct;               /* 1x1 and no padding: A rows are input pixels */
    int n_panels;
    int64_t *panel_col;       /* (n_panels) first output channel */
    int *panel_width;         /* (n_panels) 16 or 8 */
    float *packed;            /* panels: [K][width] each, then bias and alpha per panel */
    int64_t *panel_off;       /* (n_panels) offset of the panel's weights in packed */
    float *bias;              /* (n_panels * 16) zero-padded */
    float *alpha;             /* (n_panels * 16) or NULL */
} own_gemm;

/* ==== CPU ==== */

int nn_own_available(void) {
#ifdef OWN_SIMD
    const char *env = getenv("MIEN_OWN_KERNELS");
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           !(env && env[0] == '0');
#else
    return 0;
#endif
}

int nn_own_preferred(void) {
#ifdef OWN_SIMD
    const char *env = getenv("MIEN_OWN_KERNELS");
    __builtin_cpu_init();
    int can = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (env && *env) return can && env[0] != '0';
    return can && !__builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* ==== Microkernels ==== */

#ifdef OWN_SIMD
#define TARGET __attribute__((target("avx2,fma")))

/* Lanes [0, n) set: the mask of a partial store. */
TARGET static inline __m256i lane_mask(int n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Bias was the accumulators' start; clamp, then PReLU (x > 0 ? x : a * x, one rounding as
 * in the reference). */
TARGET static inline __m256 finish(__m256 v, __m256 lo, __m256 hi, const float *alpha) {
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    if (alpha) {
        __m256 neg = _mm256_mul_ps(v, _mm256_loadu_ps(alpha));
        v = _mm256_blendv_ps(neg, v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    }
    return v;
}

/* Store the first n (< 8) lanes. Not vmaskmovps: a masked store is microcoded and slow on
 * AMD cores. */
TARGET static inline void store_n(float *dst, __m256 v, int n) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int i = 0; i < n; i++) dst[i] = t[i];
}

TARGET static inline void store8(float *c, __m256 v, int cols) {
    if (cols >= 8) _mm256_storeu_ps(c, v);
    else if (cols > 0) store_n(c, v, cols);
}

/* C rows [0, rows) x columns [0, cols) of an 8-wide panel (the last one when CO mod 16 is
 * 1..8; 16-wide panels run on nn_gemm_6x16). a: MR row pointers. */
TARGET static void kernel_6x8(int64_t k, const float *const *a, const float *b,
                              const float *bias, const float *alpha, __m256 lo, __m256 hi,
                              float *c, int64_t ldc, int rows, int cols) {
    __m256 c0 = _mm256_loadu_ps(bias), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t i = 0; i < k; i++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        b += 8;
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + i), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + i), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + i), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + i), b0, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + i), b0, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + i), b0, c5);
    }
    const __m256 acc[MR] = {c0, c1, c2, c3, c4, c5};
    for (int r = 0; r < rows; r++) store8(c + r * ldc, finish(acc[r], lo, hi, alpha), cols);
}
#endif

/* ==== GEMM: plan ==== */

static void gemm_run(nn_own *k, pthreadpool_t pool);

static void gemm_free(nn_own *k) {
    own_gemm *gm = (own_gemm *)k;
    free(gm->panel_col);
    free(gm->panel_width);
    free(gm->panel_off);
    free(gm->bias);
    free(gm->alpha);
    free(gm->packed);
    free(gm);
}

/* 1x1, unpadded: A's rows are the input pixels themselves. */
static int gemm_direct(const nn_own_conv *p) {
    return p->kh == 1 && p->kw == 1 && p->pad_top == 0 && p->pad_left == 0 &&
           (p->oh - 1) * p->stride[0] < p->h && (p->ow - 1) * p->stride[1] < p->w;
}

int nn_own_gemm_fits(const nn_own_conv *p) {
    return gemm_direct(p) || (int64_t)p->kh * p->kw * p->ci <= GEMM_MAX_K;
}

nn_own *nn_own_gemm_create(const nn_own_conv *p) {
    own_gemm *gm = calloc(1, sizeof *gm);
    if (!gm) return NULL;
    gm->base = (nn_own){gemm_run, gemm_free};
    gm->p = *p;
    gm->m = p->n * p->oh * p->ow;
    gm->k = (int64_t)p->kh * p->kw * p->ci;
    gm->direct = gemm_direct(p);
    const int64_t co = p->co, k = gm->k;
    int n_panels = (int)(co / NR) + (co % NR != 0);
    gm->n_panels = n_panels;
    gm->panel_col = calloc((size_t)n_panels, sizeof *gm->panel_col);
    gm->panel_width = calloc((size_t)n_panels, sizeof *gm->panel_width);
    gm->panel_off = calloc((size_t)n_panels, sizeof *gm->panel_off);
    gm->bias = calloc((size_t)n_panels * NR, sizeof *gm->bias);
    gm->packed = malloc((size_t)(n_panels * NR * k) * sizeof *gm->packed + 64);
    if (p->alpha) gm->alpha = calloc((size_t)n_panels * NR, sizeof *gm->alpha);
    if (!gm->panel_col || !gm->panel_width || !gm->panel_off || !gm->bias || !gm->packed ||
        (p->alpha && !gm->alpha)) {
        gemm_free(&gm->base);
        return NULL;
    }
    int64_t off = 0;
    for (int pi = 0; pi < n_panels; pi++) {
        const int64_t c0 = (int64_t)pi * NR, left = co - c0;
        const int width = left > 8 ? NR : 8, valid = left < width ? (int)left : width;
        gm->panel_col[pi] = c0;
        gm->panel_width[pi] = width;
        gm->panel_off[pi] = off;
        /* B[kk][c0 + j] of the (K, CO) view of HWIO, zero past CO. */
        for (int64_t kk = 0; kk < k; kk++)
            for (int j = 0; j < width; j++)
                gm->packed[off + kk * width + j] = j < valid ? p->weights[kk * co + c0 + j] : 0.f;
        off += k * width;
        for (int j = 0; j < valid; j++) {
            gm->bias[pi * NR + j] = p->bias ? p->bias[c0 + j] : 0.f;
            if (gm->alpha) gm->alpha[pi * NR + j] = p->alpha[c0 + j];
        }
    }
    return &gm->base;
}

/* ==== GEMM: run ==== */

/* Input address of output pixel m for a direct (1x1, unpadded) convolution. */
/* An output pixel's coordinates, stepped along without divisions. */
typedef struct pix {
    int64_t b, oy, ox;
} pix;

static pix pix_of(const nn_own_conv *p, int64_t m) {
    return (pix){m / (p->ow * p->oh), (m / p->ow) % p->oh, m % p->ow};
}

static void pix_next(const nn_own_conv *p, pix *q) {
    if (++q->ox < p->ow) return;
    q->ox = 0;
    if (++q->oy < p->oh) return;
    q->oy = 0;
    q->b++;
}

static const float *pixel_in(const nn_own_conv *p, pix q) {
    return p->x + ((q.b * p->h + q.oy * p->stride[0]) * p->w + q.ox * p->stride[1]) * p->ci;
}

#ifdef OWN_SIMD
/* Copy n floats, n small (a few taps' channels): whole vectors, the last one overlapping
 * the one before; no library call per run. */
TARGET static inline void copy_run(float *dst, const float *src, int64_t n) {
    if (n < 8) {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i];
        return;
    }
    for (int64_t i = 0; i + 8 < n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    _mm256_storeu_ps(dst + n - 8, _mm256_loadu_ps(src + n - 8));
}

/* im2col of output pixel q into row (K floats): taps in the padding are zeros. */
TARGET static void gather_row(const nn_own_conv *p, pix q, float *row) {
    const int64_t ci = p->ci, run = (int64_t)p->kw * ci;
    const int64_t ix0 = q.ox * p->stride[1] - p->pad_left;
    const int64_t last = ix0 + (int64_t)(p->kw - 1) * p->dilation[1];
    const int inside = p->dilation[1] == 1 && ix0 >= 0 && last < p->w;
    for (int ky = 0; ky < p->kh; ky++, row += run) {
        const int64_t iy = q.oy * p->stride[0] - p->pad_top + (int64_t)ky * p->dilation[0];
        if (iy < 0 || iy >= p->h) {
            memset(row, 0, (size_t)run * sizeof *row);
            continue;
        }
        const float *src = p->x + (q.b * p->h + iy) * p->w * ci;
        if (inside) {
            copy_run(row, src + ix0 * ci, run);
            continue;
        }
        for (int kx = 0; kx < p->kw; kx++) {
            const int64_t ix = ix0 + (int64_t)kx * p->dilation[1];
            if (ix < 0 || ix >= p->w) memset(row + kx * ci, 0, (size_t)ci * sizeof *row);
            else copy_run(row + kx * ci, src + ix * ci, ci);
        }
    }
}
#endif

#ifdef OWN_SIMD
/* Blocks [b0, b1) of 6 pixels, every panel; scratch: MR im2col rows unless direct. */
TARGET static void run_blocks(const own_gemm *gm, int64_t b0, int64_t b1, float *scratch) {
    const nn_own_conv *p = &gm->p;
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t m0 = blk * MR;
        const int rows = gm->m - m0 < MR ? (int)(gm->m - m0) : MR;
        const float *a[MR];
        pix q = pix_of(p, m0);
        for (int r = 0; r < MR; r++) {
            /* Rows past the end repeat the last pixel; their results are not stored. */
            if (r >= rows) {
                a[r] = a[rows - 1];
                continue;
            }
            if (gm->direct) {
                a[r] = pixel_in(p, q);
            } else {
                gather_row(p, q, scratch + r * gm->k);
                a[r] = scratch + r * gm->k;
            }
            pix_next(p, &q);
        }
        float *c = p->y + m0 * p->co;
        for (int pi = 0; pi < gm->n_panels; pi++) {
            const int64_t c0 = gm->panel_col[pi];
            const int cols = p->co - c0 < NR ? (int)(p->co - c0) : NR;
            const float *alpha = gm->alpha ? gm->alpha + pi * NR : NULL;
            if (gm->panel_width[pi] == NR) {
                const nn_gemm_out o = {.bias = gm->bias + pi * NR, .clamp = 1, .lo = p->lo,
                                       .hi = p->hi, .alpha = alpha};
                nn_gemm_6x16(gm->k, a, 1, gm->packed + gm->panel_off[pi], c + c0, p->co, rows,
                             cols, &o);
            } else
                kernel_6x8(gm->k, a, gm->packed + gm->panel_off[pi], gm->bias + pi * NR, alpha,
                           lo, hi, c + c0, p->co, rows, cols);
        }
    }
}
#endif

/* Thread-pool task t: TASK_BLOCKS blocks. */
static void task_direct(void *ctx, size_t t) {
    const own_gemm *gm = ctx;
    const int64_t blocks = (gm->m + MR - 1) / MR, b0 = (int64_t)t * TASK_BLOCKS;
    run_blocks(gm, b0, b0 + TASK_BLOCKS < blocks ? b0 + TASK_BLOCKS : blocks, NULL);
}

static void task_im2col(void *ctx, size_t t) {
    const own_gemm *gm = ctx;
    const int64_t blocks = (gm->m + MR - 1) / MR, b0 = (int64_t)t * TASK_BLOCKS;
    float scratch[MR * GEMM_MAX_K]; /* gm->k <= GEMM_MAX_K: checked at creation */
    run_blocks(gm, b0, b0 + TASK_BLOCKS < blocks ? b0 + TASK_BLOCKS : blocks, scratch);
}

static void gemm_run(nn_own *k, pthreadpool_t pool) {
#ifdef OWN_SIMD
    const own_gemm *gm = (const own_gemm *)k;
    const int64_t blocks = (gm->m + MR - 1) / MR;
    pthreadpool_parallelize_1d(pool, gm->direct ? task_direct : task_im2col, k,
                               (size_t)((blocks + TASK_BLOCKS - 1) / TASK_BLOCKS), 0);
#else
    (void)k, (void)pool;
#endif
}

/* ==== Depthwise convolution ====
 * One output row per task, 4 output pixels at a time: for each tap one weight vector serves
 * the 4 pixels, and 1 to 3 8-channel groups are in flight (4 to 12 accumulators, enough FMA
 * chains to hide their latency). Interior quads (every tap inside the input) step through
 * the input with fixed strides; border quads look each tap up in a table whose taps in the
 * padding point at a row of zeros, and a last short quad repeats its last pixel. When the
 * channels are not a multiple of 8 the last chunk of groups is shifted back to end at the
 * last channel, overlapping the one before (those channels are computed twice, to the same
 * bits), so every group is a whole vector. Fewer than 8 channels load whole vectors, reading
 * up to 7 floats past a pixel's channels (the next pixel, or the slack every buffer of the
 * fast backend keeps after its data), and store only their own. Weights, bias and slopes
 * are padded to a multiple of 8 channels with zeros. */

#define DW_MAX_K 16 /* kernel height and width the own kernel takes */

typedef struct own_dw {
    nn_own base;
    nn_own_conv p;
    int64_t cp;               /* channels rounded up to 8 */
    float *w;                 /* (KH*KW, cp) */
    float *bias;              /* (cp) */
    float *alpha;             /* (cp) or NULL */
    float *zeros;             /* (cp) the value of a tap in the padding */
    int64_t ox_lo, ox_hi;     /* interior output columns [ox_lo, ox_hi) */
} own_dw;

/* What the quads of one output row share. */
typedef struct dw_row_ctx {
    const float *rows[DW_MAX_K]; /* input rows of the taps inside the image */
    int kys[DW_MAX_K];           /* their ky */
    int n_rows;
    int64_t off[DW_MAX_K][4];    /* border quad: input column offset (ix*C) of tap kx for
                                  * pixel q, or -1 in the padding */
    float *out[4];               /* the quad's 4 output pixels */
} dw_row_ctx;

static void dw_free(nn_own *k) {
    own_dw *d = (own_dw *)k;
    free(d->w);
    free(d->bias);
    free(d->alpha);
    free(d->zeros);
    free(d);
}

#ifdef OWN_SIMD
/* Written out per group count with macros: GCC keeps an accumulator array in memory. */
#define DW_ACC(g)                                                                          \
    const __m256 b##g = _mm256_loadu_ps(d->bias + c + 8 * g);                             \
    __m256 a##g##0 = b##g, a##g##1 = b##g, a##g##2 = b##g, a##g##3 = b##g;
#define DW_TAP(g)                                                                          \
    {                                                                                      \
        const __m256 w = _mm256_loadu_ps(wk + 8 * g);                                      \
        a##g##0 = _mm256_fmadd_ps(LOAD(x0 + 8 * g), w, a##g##0);                           \
        a##g##1 = _mm256_fmadd_ps(LOAD(x1 + 8 * g), w, a##g##1);                           \
        a##g##2 = _mm256_fmadd_ps(LOAD(x2 + 8 * g), w, a##g##2);                           \
        a##g##3 = _mm256_fmadd_ps(LOAD(x3 + 8 * g), w, a##g##3);                           \
    }
#define DW_STORE(g)                                                                        \
    {                                                                                      \
        const float *al = d->alpha ? d->alpha + c + 8 * g : NULL;                          \
        STORE(rc->out[0] + c + 8 * g, finish(a##g##0, lo, hi, al));                        \
        STORE(rc->out[1] + c + 8 * g, finish(a##g##1, lo, hi, al));                        \
        STORE(rc->out[2] + c + 8 * g, finish(a##g##2, lo, hi, al));                        \
        STORE(rc->out[3] + c + 8 * g, finish(a##g##3, lo, hi, al));                        \
    }
/* A quad kernel: BORDER 0 steps through interior pixels, 1 reads the tap table. */
#define DW_QUAD(name, BORDER, ACCS, TAPS, STORES)                                          \
    TARGET static void name(const own_dw *d, const dw_row_ctx *rc, int64_t ox, int64_t c,  \
                            int tail, __m256 lo, __m256 hi) {                              \
        const nn_own_conv *p = &d->p;                                                      \
        const int64_t C = p->ci, s = p->stride[1] * C, step = p->dilation[1] * C;          \
        const float *z = d->zeros + c;                                                     \
        (void)tail, (void)z;                                                               \
        ACCS                                                                               \
        for (int r = 0; r < rc->n_rows; r++) {                                             \
            const float *row = rc->rows[r] + (ox * p->stride[1] - p->pad_left) * C + c;    \
            const float *wk = d->w + (int64_t)rc->kys[r] * p->kw * d->cp + c;              \
            for (int kx = 0; kx < p->kw; kx++, wk += d->cp, row += step) {                 \
                const float *x0, *x1, *x2, *x3;                                            \
                if (BORDER) {                                                              \
                    const int64_t *o = rc->off[kx];                                        \
                    const float *base = rc->rows[r] + c;                                   \
                    x0 = o[0] >= 0 ? base + o[0] : z;                                      \
                    x1 = o[1] >= 0 ? base + o[1] : z;                                      \
                    x2 = o[2] >= 0 ? base + o[2] : z;                                      \
                    x3 = o[3] >= 0 ? base + o[3] : z;                                      \
                } else {                                                                   \
                    x0 = row, x1 = row + s, x2 = row + 2 * s, x3 = row + 3 * s;            \
                }                                                                          \
                TAPS                                                                       \
            }                                                                              \
        }                                                                                  \
        STORES                                                                             \
    }
#define LOAD(ptr) _mm256_loadu_ps(ptr)
#define STORE(ptr, v) _mm256_storeu_ps(ptr, v)
DW_QUAD(dw_quad1, 0, DW_ACC(0), DW_TAP(0), DW_STORE(0))
DW_QUAD(dw_quad2, 0, DW_ACC(0) DW_ACC(1), DW_TAP(0) DW_TAP(1), DW_STORE(0) DW_STORE(1))
DW_QUAD(dw_quad3, 0, DW_ACC(0) DW_ACC(1) DW_ACC(2), DW_TAP(0) DW_TAP(1) DW_TAP(2),
        DW_STORE(0) DW_STORE(1) DW_STORE(2))
DW_QUAD(dw_edge1, 1, DW_ACC(0), DW_TAP(0), DW_STORE(0))
DW_QUAD(dw_edge2, 1, DW_ACC(0) DW_ACC(1), DW_TAP(0) DW_TAP(1), DW_STORE(0) DW_STORE(1))
DW_QUAD(dw_edge3, 1, DW_ACC(0) DW_ACC(1) DW_ACC(2), DW_TAP(0) DW_TAP(1) DW_TAP(2),
        DW_STORE(0) DW_STORE(1) DW_STORE(2))
#undef LOAD
#undef STORE
#define LOAD(ptr) _mm256_loadu_ps(ptr)
#define STORE(ptr, v) store_n(ptr, v, tail)
DW_QUAD(dw_quad_tail, 0, DW_ACC(0), DW_TAP(0), DW_STORE(0))
DW_QUAD(dw_edge_tail, 1, DW_ACC(0), DW_TAP(0), DW_STORE(0))
#undef LOAD
#undef STORE

TARGET static void dw_row(void *ctx, size_t row_index) {
    const own_dw *d = ctx;
    const nn_own_conv *p = &d->p;
    const int64_t C = p->ci, oy = (int64_t)row_index % p->oh, b = (int64_t)row_index / p->oh;
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    dw_row_ctx rc;
    rc.n_rows = 0;
    for (int ky = 0; ky < p->kh; ky++) {
        const int64_t iy = oy * p->stride[0] - p->pad_top + (int64_t)ky * p->dilation[0];
        if (iy < 0 || iy >= p->h) continue;
        rc.rows[rc.n_rows] = p->x + (b * p->h + iy) * p->w * C;
        rc.kys[rc.n_rows++] = ky;
    }
    float *out = p->y + (b * p->oh + oy) * p->ow * C;
    const int tail = (int)(C % 8);
    for (int64_t ox = 0; ox < p->ow; ox += 4) {
        const int border = ox < d->ox_lo || ox + 4 > d->ox_hi;
        for (int q = 0; q < 4; q++) {
            /* A short last quad repeats its last pixel (same value stored twice). */
            const int64_t oq = ox + q < p->ow ? ox + q : p->ow - 1;
            rc.out[q] = out + oq * C;
            for (int kx = 0; border && kx < p->kw; kx++) {
                const int64_t ix = oq * p->stride[1] - p->pad_left + (int64_t)kx * p->dilation[1];
                rc.off[kx][q] = ix >= 0 && ix < p->w ? ix * C : -1;
            }
        }
        if (C < 8) {
            if (border) dw_edge_tail(d, &rc, ox, 0, tail, lo, hi);
            else dw_quad_tail(d, &rc, ox, 0, tail, lo, hi);
            continue;
        }
        /* Chunks of 3 groups (2 when 4 or 2 are left, 1 when 1 is), the last one ending at
         * channel C. */
        for (int64_t g = 0, ng = (C + 7) / 8; g < ng;) {
            const int64_t left = ng - g;
            int G = left == 1 ? 1 : left == 2 || left == 4 ? 2 : 3;
            if (G == ng && 8 * G > C) G--; /* one shifted chunk would start before 0 */
            const int64_t c = g + G == ng ? C - 8 * G : 8 * g;
            if (border) {
                if (G == 3) dw_edge3(d, &rc, ox, c, 0, lo, hi);
                else if (G == 2) dw_edge2(d, &rc, ox, c, 0, lo, hi);
                else dw_edge1(d, &rc, ox, c, 0, lo, hi);
            } else {
                if (G == 3) dw_quad3(d, &rc, ox, c, 0, lo, hi);
                else if (G == 2) dw_quad2(d, &rc, ox, c, 0, lo, hi);
                else dw_quad1(d, &rc, ox, c, 0, lo, hi);
            }
            g += G;
        }
    }
}
#endif

static void dw_run(nn_own *k, pthreadpool_t pool) {
#ifdef OWN_SIMD
    own_dw *d = (own_dw *)k;
    pthreadpool_parallelize_1d(pool, dw_row, d, (size_t)(d->p.n * d->p.oh), 0);
#else
    (void)k, (void)pool;
#endif
}

int nn_own_dwconv_fits(const nn_own_conv *p) {
    return p->kh <= DW_MAX_K && p->kw <= DW_MAX_K && p->co == p->ci;
}

nn_own *nn_own_dwconv_create(const nn_own_conv *p) {
    own_dw *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->base = (nn_own){dw_run, dw_free};
    d->p = *p;
    const int64_t C = p->ci, taps = (int64_t)p->kh * p->kw;
    d->cp = (C + 7) / 8 * 8;
    d->w = calloc((size_t)(taps * d->cp), sizeof *d->w);
    d->bias = calloc((size_t)d->cp, sizeof *d->bias);
    d->zeros = calloc((size_t)d->cp, sizeof *d->zeros);
    if (p->alpha) d->alpha = calloc((size_t)d->cp, sizeof *d->alpha);
    if (!d->w || !d->bias || !d->zeros || (p->alpha && !d->alpha)) {
        dw_free(&d->base);
        return NULL;
    }
    for (int64_t t = 0; t < taps; t++)
        memcpy(d->w + t * d->cp, p->weights + t * C, (size_t)C * sizeof *d->w);
    if (p->bias) memcpy(d->bias, p->bias, (size_t)C * sizeof *d->bias);
    if (p->alpha) memcpy(d->alpha, p->alpha, (size_t)C * sizeof *d->alpha);
    /* Interior columns: ox * s - pad_left >= 0 and ox * s - pad_left + (KW-1) * dil < W. */
    const int64_t s = p->stride[1], span = (int64_t)(p->kw - 1) * p->dilation[1];
    d->ox_lo = (p->pad_left + s - 1) / s;
    d->ox_hi = p->w - 1 - span + p->pad_left >= 0 ? (p->w - 1 - span + p->pad_left) / s + 1 : 0;
    if (d->ox_hi > p->ow) d->ox_hi = p->ow;
    return &d->base;
}

/* ==== Constant pad ====
 * Output rows (the last axis) are either wholly padding or [fill, copy, fill]. */

typedef struct own_pad {
    nn_own base;
    int ndim;
    int64_t in[8], out[8], pre[8];
    float value;
    const float *x;
    float *y;
} own_pad;

static void pad_free(nn_own *k) { free(k); }

static void fill(float *p, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

static void pad_run(nn_own *k, pthreadpool_t pool) {
    (void)pool; /* a copy: one thread moves memory as fast as two here */
    const own_pad *pd = (const own_pad *)k;
    const int nd = pd->ndim, last = nd - 1;
    const int64_t in_c = pd->in[last], out_c = pd->out[last], pre_c = pd->pre[last];
    int64_t rows = 1, idx[8] = {0};
    for (int i = 0; i < last; i++) rows *= pd->out[i];
    float *y = pd->y;
    for (int64_t r = 0; r < rows; r++, y += out_c) {
        /* Source row of output row idx, or -1 when it lies in the padding. */
        int64_t src = 0;
        for (int i = 0; i < last && src >= 0; i++) {
            const int64_t s = idx[i] - pd->pre[i];
            src = s < 0 || s >= pd->in[i] ? -1 : src * pd->in[i] + s;
        }
        if (src < 0) {
            fill(y, out_c, pd->value);
        } else {
            fill(y, pre_c, pd->value);
            memcpy(y + pre_c, pd->x + src * in_c, (size_t)in_c * sizeof *y);
            fill(y + pre_c + in_c, out_c - pre_c - in_c, pd->value);
        }
        for (int i = last - 1; i >= 0; i--) {
            if (++idx[i] < pd->out[i]) break;
            idx[i] = 0;
        }
    }
}

nn_own *nn_own_pad_create(int ndim, const int64_t *in_dims, const int64_t *pads, float value,
                          const float *x, float *y) {
    if (ndim < 1 || ndim > 8) return NULL;
    own_pad *pd = calloc(1, sizeof *pd);
    if (!pd) return NULL;
    pd->base = (nn_own){pad_run, pad_free};
    pd->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        pd->in[i] = in_dims[i];
        pd->pre[i] = pads[2 * i];
        pd->out[i] = in_dims[i] + pads[2 * i] + pads[2 * i + 1];
    }
    pd->value = value;
    pd->x = x;
    pd->y = y;
    return &pd->base;
}
