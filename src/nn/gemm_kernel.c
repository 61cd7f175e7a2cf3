/* The 6x16 AVX2/FMA GEMM microkernel (see gemm_kernel.h). */
#include "nn/gemm_kernel.h"

#ifdef NN_GEMM_6X16 /* the one guard of this file's AVX2 code */
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))

/* The first n lanes of v through o's output stage into c. Partial stores go through a
 * buffer, not vmaskmovps (microcoded and slow on AMD cores). */
TARGET static inline void out8(float *c, __m256 v, int n, const nn_gemm_out *o, __m256 lo,
                               __m256 hi, const float *alpha) {
    if (n <= 0) return;
    float t[8] = {0};
    if (o->acc) {
        if (n >= 8) {
            v = _mm256_add_ps(_mm256_loadu_ps(c), v);
        } else {
            for (int i = 0; i < n; i++) t[i] = c[i];
            v = _mm256_add_ps(_mm256_loadu_ps(t), v);
        }
    }
    if (o->clamp) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    if (alpha) { /* one rounding, as in the reference */
        __m256 neg = _mm256_mul_ps(v, _mm256_loadu_ps(alpha));
        v = _mm256_blendv_ps(neg, v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    }
    if (n >= 8) {
        _mm256_storeu_ps(c, v);
    } else {
        _mm256_storeu_ps(t, v);
        for (int i = 0; i < n; i++) c[i] = t[i];
    }
}

TARGET void nn_gemm_6x16(int64_t k, const float *const *a, int64_t ask, const float *b, float *c,
                         int64_t ldc, int rows, int cols, const nn_gemm_out *o) {
    __m256 c00, c01;
    if (o->bias) {
        c00 = _mm256_loadu_ps(o->bias);
        c01 = _mm256_loadu_ps(o->bias + 8);
    } else {
        c00 = c01 = _mm256_setzero_ps();
    }
    __m256 c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
    __m256 c40 = c00, c41 = c01, c50 = c00, c51 = c01;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t i = 0, off = 0; i < k; i++, off += ask, b += 16) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x = _mm256_broadcast_ss(a0 + off);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + off);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + off);
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + off);
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + off);
        c40 = _mm256_fmadd_ps(x, b0, c40);
        c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + off);
        c50 = _mm256_fmadd_ps(x, b0, c50);
        c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                              {c30, c31}, {c40, c41}, {c50, c51}};
    const __m256 lo = _mm256_set1_ps(o->lo), hi = _mm256_set1_ps(o->hi);
    for (int r = 0; r < rows; r++) {
        float *cr = c + r * ldc;
        out8(cr, acc[r][0], cols, o, lo, hi, o->alpha);
        out8(cr + 8, acc[r][1], cols - 8, o, lo, hi, o->alpha ? o->alpha + 8 : NULL);
    }
}
#endif
