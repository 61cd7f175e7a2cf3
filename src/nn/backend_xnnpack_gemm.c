/* Dense convolution as GEMM on a 6x16 AVX2/FMA microkernel (see backend_xnnpack_gemm.h).
 *
 * The output (M = N*OH*OW pixels, CO channels) is computed in blocks of 6 pixels by 16
 * channels: C[6][16] = A[6][K] * B[K][16], K = KH*KW*CI. B is the HWIO weight tensor read
 * as a (K, CO) matrix, packed once into panels of 16 columns (8 for a last narrow panel),
 * zero-padded. A's rows are input pixels: for a 1x1 convolution without padding a row is
 * the input pixel itself (no copy); otherwise the 6 rows are gathered (im2col) into a small
 * per-task buffer, zeros for taps in the padding. Bias, clamp and PReLU are applied to the
 * accumulators before the store, so no second pass over the output is needed. */
#include "nn/backend_xnnpack_gemm.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define MR 6  /* output pixels per block */
#define NR 16 /* output channels per panel */

struct nn_gemm {
    nn_gemm_conv p;
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
    float *scratch;           /* (threads * MR * K) im2col rows, NULL when direct */
};

/* ==== CPU ==== */

int nn_gemm_preferred(void) {
#if defined(__x86_64__) || defined(__i386__)
    const char *env = getenv("MIEN_FAST_GEMM");
    __builtin_cpu_init();
    int can = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (env && *env) return can && env[0] != '0';
    return can && !__builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* ==== Microkernels ==== */

#if defined(__x86_64__) || defined(__i386__)
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

TARGET static inline void store8(float *c, __m256 v, int cols) {
    if (cols >= 8) _mm256_storeu_ps(c, v);
    else if (cols > 0) _mm256_maskstore_ps(c, lane_mask(cols), v);
}

/* C rows [0, rows) x columns [0, cols) of a 16-wide panel. a: MR row pointers. */
TARGET static void kernel_6x16(int64_t k, const float *const *a, const float *b,
                               const float *bias, const float *alpha, __m256 lo, __m256 hi,
                               float *c, int64_t ldc, int rows, int cols) {
    __m256 c00 = _mm256_loadu_ps(bias), c01 = _mm256_loadu_ps(bias + 8);
    __m256 c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
    __m256 c40 = c00, c41 = c01, c50 = c00, c51 = c01;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t i = 0; i < k; i++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        b += 16;
        __m256 x = _mm256_broadcast_ss(a0 + i);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + i);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + i);
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + i);
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + i);
        c40 = _mm256_fmadd_ps(x, b0, c40);
        c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + i);
        c50 = _mm256_fmadd_ps(x, b0, c50);
        c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < rows; r++) {
        float *cr = c + r * ldc;
        store8(cr, finish(acc[r][0], lo, hi, alpha), cols);
        store8(cr + 8, finish(acc[r][1], lo, hi, alpha ? alpha + 8 : NULL), cols - 8);
    }
}

/* The same for an 8-wide panel (the last one when CO mod 16 is 1..8). */
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

/* ==== Plan ==== */

nn_gemm *nn_gemm_create(const nn_gemm_conv *p) {
    nn_gemm *gm = calloc(1, sizeof *gm);
    if (!gm) return NULL;
    gm->p = *p;
    if (gm->p.threads < 1) gm->p.threads = 1;
    gm->m = p->n * p->oh * p->ow;
    gm->k = (int64_t)p->kh * p->kw * p->ci;
    gm->direct = p->kh == 1 && p->kw == 1 && p->pad_top == 0 && p->pad_left == 0 &&
                 (p->oh - 1) * p->stride[0] < p->h && (p->ow - 1) * p->stride[1] < p->w;
    const int64_t co = p->co, k = gm->k;
    int n_panels = (int)(co / NR) + (co % NR != 0);
    gm->n_panels = n_panels;
    gm->panel_col = calloc((size_t)n_panels, sizeof *gm->panel_col);
    gm->panel_width = calloc((size_t)n_panels, sizeof *gm->panel_width);
    gm->panel_off = calloc((size_t)n_panels, sizeof *gm->panel_off);
    gm->bias = calloc((size_t)n_panels * NR, sizeof *gm->bias);
    gm->packed = malloc((size_t)(n_panels * NR * k) * sizeof *gm->packed + 64);
    if (p->alpha) gm->alpha = calloc((size_t)n_panels * NR, sizeof *gm->alpha);
    if (!gm->direct) gm->scratch = malloc((size_t)(gm->p.threads * MR * k) * sizeof(float));
    if (!gm->panel_col || !gm->panel_width || !gm->panel_off || !gm->bias || !gm->packed ||
        (p->alpha && !gm->alpha) || (!gm->direct && !gm->scratch)) {
        nn_gemm_free(gm);
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
    return gm;
}

void nn_gemm_free(nn_gemm *gm) {
    if (!gm) return;
    free(gm->panel_col);
    free(gm->panel_width);
    free(gm->panel_off);
    free(gm->bias);
    free(gm->alpha);
    free(gm->packed);
    free(gm->scratch);
    free(gm);
}

/* ==== Run ==== */

/* Input address of output pixel m for a direct (1x1, unpadded) convolution. */
static const float *pixel_in(const nn_gemm *gm, int64_t m) {
    const nn_gemm_conv *p = &gm->p;
    const int64_t ox = m % p->ow, oy = (m / p->ow) % p->oh, b = m / (p->ow * p->oh);
    return p->x + ((b * p->h + oy * p->stride[0]) * p->w + ox * p->stride[1]) * p->ci;
}

/* im2col of output pixel m into row (K floats): taps in the padding are zeros. */
static void gather_row(const nn_gemm *gm, int64_t m, float *row) {
    const nn_gemm_conv *p = &gm->p;
    const int64_t ox = m % p->ow, oy = (m / p->ow) % p->oh, b = m / (p->ow * p->oh);
    const int64_t ci = p->ci, run = (int64_t)p->kw * ci;
    const int64_t ix0 = ox * p->stride[1] - p->pad_left;
    for (int ky = 0; ky < p->kh; ky++, row += run) {
        const int64_t iy = oy * p->stride[0] - p->pad_top + (int64_t)ky * p->dilation[0];
        if (iy < 0 || iy >= p->h) {
            memset(row, 0, (size_t)run * sizeof *row);
            continue;
        }
        const float *src = p->x + (b * p->h + iy) * p->w * ci;
        const int64_t last = ix0 + (int64_t)(p->kw - 1) * p->dilation[1];
        if (p->dilation[1] == 1 && ix0 >= 0 && last < p->w) {
            memcpy(row, src + ix0 * ci, (size_t)run * sizeof *row);
            continue;
        }
        for (int kx = 0; kx < p->kw; kx++) {
            const int64_t ix = ix0 + (int64_t)kx * p->dilation[1];
            if (ix < 0 || ix >= p->w) memset(row + kx * ci, 0, (size_t)ci * sizeof *row);
            else memcpy(row + kx * ci, src + ix * ci, (size_t)ci * sizeof *row);
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
/* Task t of p.threads: a contiguous range of 6-pixel blocks, every panel. */
TARGET static void run_task(void *ctx, size_t t) {
    const nn_gemm *gm = ctx;
    const nn_gemm_conv *p = &gm->p;
    const int64_t blocks = (gm->m + MR - 1) / MR, tasks = p->threads;
    const int64_t b0 = blocks * (int64_t)t / tasks, b1 = blocks * ((int64_t)t + 1) / tasks;
    const __m256 lo = _mm256_set1_ps(p->lo), hi = _mm256_set1_ps(p->hi);
    float *scratch = gm->scratch ? gm->scratch + (int64_t)t * MR * gm->k : NULL;
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t m0 = blk * MR;
        const int rows = gm->m - m0 < MR ? (int)(gm->m - m0) : MR;
        const float *a[MR];
        for (int r = 0; r < MR; r++) {
            /* Rows past the end repeat the last pixel; their results are not stored. */
            const int64_t m = m0 + (r < rows ? r : rows - 1);
            if (gm->direct) {
                a[r] = pixel_in(gm, m);
            } else {
                if (r < rows) gather_row(gm, m, scratch + r * gm->k);
                a[r] = scratch + (r < rows ? r : rows - 1) * gm->k;
            }
        }
        float *c = p->y + m0 * p->co;
        for (int pi = 0; pi < gm->n_panels; pi++) {
            const int64_t c0 = gm->panel_col[pi];
            const int cols = p->co - c0 < NR ? (int)(p->co - c0) : NR;
            const float *alpha = gm->alpha ? gm->alpha + pi * NR : NULL;
            if (gm->panel_width[pi] == NR)
                kernel_6x16(gm->k, a, gm->packed + gm->panel_off[pi], gm->bias + pi * NR, alpha,
                            lo, hi, c + c0, p->co, rows, cols);
            else
                kernel_6x8(gm->k, a, gm->packed + gm->panel_off[pi], gm->bias + pi * NR, alpha,
                           lo, hi, c + c0, p->co, rows, cols);
        }
    }
}
#endif

void nn_gemm_run(nn_gemm *gm, pthreadpool_t pool) {
#if defined(__x86_64__) || defined(__i386__)
    pthreadpool_parallelize_1d(pool, run_task, gm, (size_t)gm->p.threads, 0);
#else
    (void)gm, (void)pool;
#endif
}
