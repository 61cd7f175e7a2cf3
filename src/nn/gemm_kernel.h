/* The 6x16 AVX2/FMA GEMM microkernel, one copy for the fast backend's own dense convolution
 * (backend_xnnpack_own.c) and the training engine's matrix products (train/kern.c).
 *
 * It computes a block of C of up to 6 rows by 16 columns,
 *     C[r][j] = start[j] + sum over i < k of a[r][i * ask] * b[i][j],
 * with b packed as [k][16] (zero-padded past the matrix's columns) and a given as 6 row
 * pointers (rows past `rows` may repeat a valid one; their results are not stored). 12 ymm
 * accumulators, 2 weight vectors and 1 broadcast fill the 16 registers: 65-90 GFLOP/s on a
 * core without AVX-512 (see backend_xnnpack_own.h). Only x86 builds have it (NN_GEMM_6X16);
 * the caller checks that the CPU has AVX2 and FMA. */
#ifndef MIEN_NN_GEMM_KERNEL_H
#define MIEN_NN_GEMM_KERNEL_H

#include <stdint.h>

/* What happens at the store, in this order. */
typedef struct nn_gemm_out {
    const float *bias;   /* 16 start values (zero-padded), or NULL: start from 0 */
    int acc;             /* add the block to what c already holds */
    int clamp;           /* then clamp to [lo, hi] */
    float lo, hi;
    const float *alpha;  /* then PReLU, x > 0 ? x : alpha[j] * x (16 values, padded), or NULL */
} nn_gemm_out;

#if defined(__x86_64__) || defined(__i386__)
#define NN_GEMM_6X16 1
/* Rows [0, rows) and columns [0, cols) of the block are stored at c (row stride ldc). */
void nn_gemm_6x16(int64_t k, const float *const *a, int64_t ask, const float *b, float *c,
                  int64_t ldc, int rows, int cols, const nn_gemm_out *o);
#endif

#endif
