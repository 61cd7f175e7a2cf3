/* Dense convolution on our own GEMM microkernel, a part of the fast backend.
 *
 * Why it exists: on CPUs without AVX-512 this Debian XNNPACK build runs its convolutions
 * and fully connected layers on the FMA3 5x16 GEMM microkernel, which GCC compiled with one
 * accumulator spilled to the stack (17 live ymm registers): a store/load chain through
 * memory every k step holds it to about 35 GFLOP/s, a third of the core's FMA peak. The
 * 6x16 kernel here keeps 12 accumulators, 2 weight vectors and 1 broadcast in the 16 ymm
 * registers and runs at 65-90 GFLOP/s on the same layers. On CPUs with AVX-512 XNNPACK's
 * 7x16 AVX-512 kernel is used instead (nn_gemm_preferred() says which). */
#ifndef MIEN_NN_BACKEND_XNNPACK_GEMM_H
#define MIEN_NN_BACKEND_XNNPACK_GEMM_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nn_gemm_conv {
    int64_t n, h, w, ci;        /* input (N,H,W,CI), contiguous NHWC */
    int64_t oh, ow, co;         /* output (N,OH,OW,CO), contiguous NHWC */
    int kh, kw;                 /* kernel */
    int stride[2], dilation[2]; /* (h, w) */
    int pad_top, pad_left;      /* the bottom and right padding follow from the sizes */
    const float *weights;       /* HWIO (KH,KW,CI,CO), dense (groups 1) */
    const float *bias;          /* (CO) or NULL */
    const float *alpha;         /* PReLU slope per output channel (CO) or NULL */
    float lo, hi;               /* output clamp (-inf, inf: none) */
    const float *x;             /* input data, fixed for the plan's life */
    float *y;                   /* output data */
    int threads;                /* tasks the pool splits the work into (>= 1) */
} nn_gemm_conv;

typedef struct nn_gemm nn_gemm;

/* 1 when this CPU runs the kernel (AVX2 and FMA) and XNNPACK would not pick an AVX-512
 * kernel; MIEN_FAST_GEMM=0 in the environment turns the kernel off, =1 forces it on where
 * the CPU can run it. */
int nn_gemm_preferred(void);

/* Pack the weights and plan the run; NULL on OOM. */
nn_gemm *nn_gemm_create(const nn_gemm_conv *p);
void nn_gemm_run(nn_gemm *gm, pthreadpool_t pool);
void nn_gemm_free(nn_gemm *gm);

#endif
