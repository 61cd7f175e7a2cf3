/* The fast backend's own kernels, used where they beat this XNNPACK build.
 *
 * Why they exist: on CPUs without AVX-512 the Debian XNNPACK build (2022 snapshot) runs
 * convolutions on its FMA3 5x16 GEMM microkernel, which GCC compiled with one accumulator
 * spilled to the stack (17 live ymm registers): a store/load chain through memory at every
 * k step holds it to about 35 GFLOP/s, a third of the core's FMA peak. Its depthwise kernel
 * (16 channels at a time through an indirection buffer) reaches 13-17 GFLOP/s on the
 * 24-channel layers of BlazeFace, and its constant pad copies row by row.
 *
 *   gemm     dense convolution: a 6x16 AVX2/FMA microkernel with 12 accumulators, 2 weight
 *            vectors and 1 broadcast in the 16 ymm registers (65-90 GFLOP/s on the same
 *            layers), bias, clamp and PReLU applied as it stores;
 *   dwconv   depthwise convolution (multiplier 1): 4 output pixels x 8 channels per step,
 *            each weight vector loaded once for the 4, border pixels on a checked path;
 *   pad      constant pad: plain copies and fills.
 *
 * nn_own_preferred() decides: AVX2 and FMA present and AVX-512 absent (where XNNPACK picks
 * its AVX-512 kernels, which have registers enough). */
#ifndef MIEN_NN_BACKEND_XNNPACK_OWN_H
#define MIEN_NN_BACKEND_XNNPACK_OWN_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU runs the own kernels (AVX2 and FMA) and XNNPACK would not pick AVX-512
 * ones. MIEN_OWN_KERNELS=0 in the environment turns them off, =1 forces them on where the CPU
 * can run them (tests use it to cover both paths). */
int nn_own_preferred(void);
/* 1 when this CPU can run the own kernels (AVX2 and FMA), unless MIEN_OWN_KERNELS=0: for the
 * shapes XNNPACK handles badly on every CPU (a depthwise convolution over the whole input). */
int nn_own_available(void);

/* A convolution's geometry, data and fused output stage. */
typedef struct nn_own_conv {
    int64_t n, h, w, ci;        /* input (N,H,W,CI), contiguous NHWC */
    int64_t oh, ow, co;         /* output (N,OH,OW,CO), contiguous NHWC */
    int kh, kw;                 /* kernel */
    int stride[2], dilation[2]; /* (h, w) */
    int pad_top, pad_left;      /* the bottom and right padding follow from the sizes */
    const float *weights;       /* gemm: HWIO (KH,KW,CI,CO); dwconv: (KH,KW,C) */
    const float *bias;          /* (CO) or NULL */
    const float *alpha;         /* PReLU slope per output channel (CO) or NULL */
    float lo, hi;               /* output clamp (-inf, inf: none) */
    const float *x;             /* input data, fixed for the plan's life */
    float *y;                   /* output data */
} nn_own_conv;

typedef struct nn_own nn_own;

/* Whether the kernels take a convolution of this geometry: dense (groups 1) with an im2col
 * row (KH*KW*CI) of at most 4608 unless 1x1 and unpadded; depthwise with multiplier 1 and a
 * kernel of at most 16x16. */
int nn_own_gemm_fits(const nn_own_conv *p);
int nn_own_dwconv_fits(const nn_own_conv *p);
/* Plans: weights packed, pointers bound. NULL on OOM. */
nn_own *nn_own_gemm_create(const nn_own_conv *p);
nn_own *nn_own_dwconv_create(const nn_own_conv *p);
/* Constant pad of an ndim-d tensor: pads[2*i], pads[2*i+1] before and after axis i. */
nn_own *nn_own_pad_create(int ndim, const int64_t *in_dims, const int64_t *pads, float value,
                          const float *x, float *y);
void nn_own_run(nn_own *k, pthreadpool_t pool);
void nn_own_free(nn_own *k);

#endif
