/* The training engine's fast kernels: what tr_forward / tr_backward run unless a net asks for
 * the reference kernels (tr_net_opts.reference), which stay the oracle the tests hold these
 * to.
 *
 *   GEMM     C (M, N) = op(A) op(B) (+ C), row-major, any of the four transposes: the
 *            convolutions' forward pass, both their gradients (input: dZ W^T; weights:
 *            X^T dZ), fully connected layers and the margin head. Microkernels of MR x NR
 *            accumulators in registers (AVX-512: 6 x 32, AVX2/FMA: 6 x 16, portable C:
 *            4 x 4), chosen at run time by the CPU. A is never copied: the kernel reads its
 *            MR rows through pointers with a stride per k, which covers A and A^T alike; B is
 *            packed into NR-wide panels per (KC x NC) block, zero-padded, so edges need no
 *            special case there. The work splits over threads by rows of C, by columns when C
 *            has few rows, or by K (each thread a private C, summed at the end) for the
 *            weight gradients, whose C is small and K the batch's pixel count.
 *   depthwise convolution (multiplier 1), forward and both gradients; batch norm with batch
 *   statistics (one pass for the sums, one to apply) and its backward; bias + activation
 *   and its backward; adds; vectorised over channels (AVX2 where the CPU has it) and split
 *   over rows, images or pixels between threads. Per-thread partial sums (batch-norm
 *   statistics, parameter gradients) are reduced in a fixed order, so a run gives the same
 *   numbers every time at a given thread count.
 *
 * Gradient outputs take `acc`: 0 writes the result, 1 adds it to what is there (a tensor read
 * by several nodes collects their contributions; the first one writes). */
#ifndef MIEN_TRAIN_KERN_H
#define MIEN_TRAIN_KERN_H

#include "nn/graph.h"

#include <stddef.h>
#include <stdint.h>

typedef enum tr_isa { TR_ISA_SCALAR = 0, TR_ISA_AVX2 = 1, TR_ISA_AVX512 = 2 } tr_isa;

typedef struct tr_kern tr_kern;

/* threads >= 1. The instruction set is the best this CPU runs, unless MIEN_TRAIN_ISA
 * (scalar, avx2, avx512) in the environment asks for a lower one (tests cover every path).
 * NULL on OOM. */
tr_kern *tr_kern_create(int threads);
void tr_kern_free(tr_kern *k);
tr_isa tr_kern_isa(const tr_kern *k);
const char *tr_isa_name(tr_isa isa);
int tr_kern_threads(const tr_kern *k);

/* C = op(A) op(B), or C += with acc. op(A) is (M, K): A[i*lda + k], or A[k*lda + i] with
 * ta; op(B) is (K, N): B[k*ldb + j], or B[j*ldb + k] with tb. Returns MIEN_ENOMEM when its
 * scratch cannot be had (C is then unchanged). */
int tr_gemm(tr_kern *k, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
            int64_t lda, const float *B, int64_t ldb, int acc, float *C, int64_t ldc);

/* ==== Convolution geometry (NHWC, as in the graph) ==== */

typedef struct tr_conv {
    int64_t n, h, w, c;      /* input (N, H, W, C) */
    int64_t oh, ow, co;      /* output (N, OH, OW, CO) */
    int kh, kw;
    int stride[2], dilation[2];
    int pad_top, pad_left;
} tr_conv;

/* im2col rows [p0, p0 + rows) of a dense convolution with groups 1: (rows, KH*KW*C),
 * zeros for taps in the padding. */
void tr_im2col(tr_kern *k, const tr_conv *g, const float *x, int64_t p0, int64_t rows,
               float *col);
/* dx += col2im(dcol): the inverse scatter of the same rows. */
void tr_col2im_add(tr_kern *k, const tr_conv *g, const float *dcol, int64_t p0, int64_t rows,
                   float *dx);

/* Depthwise convolution with multiplier 1: w (KH, KW, C); y = conv(x) (no bias). */
int tr_dw_forward(tr_kern *k, const tr_conv *g, const float *x, const float *w, float *y);
/* dx (acc) and dw (always added to) from dz; either may be NULL. */
int tr_dw_backward(tr_kern *k, const tr_conv *g, const float *x, const float *w, const float *dz,
                   float *dx, int acc_dx, float *dw);

/* ==== Per-channel ops on (R, C) row-major data ==== */

/* Column sums of x - shift and (x - shift)^2 (doubles, (C) each, overwritten). */
int tr_col_moments(tr_kern *k, const float *x, int64_t R, int64_t C, const float *shift,
                   double *s1, double *s2);
/* y = act(x a + sh), act none, relu or prelu (alpha). */
void tr_scale_shift_act(tr_kern *k, const float *x, float *y, int64_t R, int64_t C,
                        const float *a, const float *sh, nn_act act, const float *alpha);
/* The batch-norm backward's first pass: with z = x a + sh and d = act'(z) dy, sums of d,
 * d (x - mean) and (PReLU) dy z over z <= 0 (doubles, (C) each, overwritten). */
int tr_bn_grad_sums(tr_kern *k, const float *x, const float *dy, int64_t R, int64_t C,
                    const float *a, const float *sh, const float *mean, nn_act act,
                    const float *alpha, double *sd, double *sdx, double *sal);
/* Its second pass: dx (acc) = c1 d - c2 - c3 (x - mean). */
void tr_bn_grad_input(tr_kern *k, const float *x, const float *dy, float *dx, int acc,
                      int64_t R, int64_t C, const float *a, const float *sh, const float *mean,
                      nn_act act, const float *alpha, const float *c1, const float *c2,
                      const float *c3);
/* In place y = act(y + bias) (bias may be NULL), keeping y + bias in pre when pre is not
 * NULL (and act is not none). */
void tr_bias_act(tr_kern *k, float *y, float *pre, int64_t R, int64_t C, const float *bias,
                 nn_act act, const float *alpha);
/* dz = act'(z) dy (dz may be dy itself); dalpha += sum over z <= 0 of dy z; dbias += sum of
 * dz. Any of dalpha, dbias may be NULL. act none just sums. */
int tr_act_backward(tr_kern *k, const float *z, const float *dy, float *dz, int64_t R,
                    int64_t C, nn_act act, const float *alpha, float *dalpha, float *dbias);
/* y = a + b (same shape, n values). */
void tr_add(tr_kern *k, const float *a, const float *b, float *y, int64_t n);
/* d (acc) = s, n values. */
void tr_copy_acc(tr_kern *k, const float *s, float *d, int64_t n, int acc);

#endif
