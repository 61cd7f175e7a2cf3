/* Mixed precision on this CPU: would bf16 storage of activations (fp32 arithmetic and master
 * weights) speed up mien's training? (bench/mixed_precision.sh runs it.)
 *
 * The training step splits into the products (convolutions and the head: the own GEMM, which
 * runs near the core's fp32 FMA peak, so halving the bytes of an operand cannot speed it) and
 * the memory-bound passes over activations: batch norm's statistics and its apply in the
 * forward pass, its two passes in the backward pass. Those are what bf16 storage could speed
 * up. This program times them on MobileFaceNet's batch-norm layers (batch 64, every one of
 * them, one thread) three ways:
 *   fp32      mien's kernels as training runs them (train/kern.h)
 *   bf16      the same passes with the activations and gradients they read and write stored
 *             as bf16 (converted to fp32 on load, rounded to nearest even on store)
 *   fp32-ref  the same loops as bf16's but on fp32, so that the comparison is of storage alone
 * and prints one JSON object: milliseconds of each per training step, and the whole step's
 * milliseconds from `mien train --bench-step` (given as argv[1]) for the share.
 *
 * usage: build/bench_mixed STEP_MS */
#include "train/kern.h"
#include "train/train.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AVX2 __attribute__((target("avx2,fma")))

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ==== bf16 ==== */

AVX2 static inline __m256 ld16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* Round to nearest even, then keep the high halves. */
AVX2 static inline void st16(uint16_t *p, __m256 v) {
    __m256i x = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    x = _mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    x = _mm256_srli_epi32(x, 16);
    const __m128i lo = _mm256_castsi256_si128(x), hi = _mm256_extracti128_si256(x, 1);
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(lo, hi));
}

/* The four batch-norm passes of one layer (R rows, C channels, C a multiple of 8), PReLU
 * fused, on activations stored as T. F32 = 1: float, else bf16. */
#define PASSES(NAME, T, LD, ST)                                                                   \
    AVX2 static void NAME(const T *x, T *y, const T *dy, T *dx, int64_t R, int64_t C,             \
                          const float *a, const float *sh, const float *al, const float *mean,    \
                          double *s1, double *s2, float *t1, float *t2, float *t3) {              \
        const __m256 zero = _mm256_setzero_ps();                                                  \
        memset(s1, 0, (size_t)C * sizeof *s1);                                                    \
        memset(s2, 0, (size_t)C * sizeof *s2);                                                    \
        /* forward: moments */                                                                    \
        for (int64_t r0 = 0; r0 < R; r0 += 64) {                                                  \
            const int64_t r1 = R - r0 < 64 ? R : r0 + 64;                                         \
            for (int64_t c = 0; c < C; c += 8) {                                                  \
                __m256 u = zero, v = zero, m = _mm256_loadu_ps(mean + c);                         \
                for (int64_t r = r0; r < r1; r++) {                                               \
                    const __m256 d = _mm256_sub_ps(LD(x + r * C + c), m);                         \
                    u = _mm256_add_ps(u, d);                                                      \
                    v = _mm256_fmadd_ps(d, d, v);                                                 \
                }                                                                                 \
                _mm256_storeu_ps(t1 + c, u);                                                      \
                _mm256_storeu_ps(t2 + c, v);                                                      \
            }                                                                                     \
            for (int64_t c = 0; c < C; c++) s1[c] += t1[c], s2[c] += t2[c];                       \
        }                                                                                         \
        /* forward: apply */                                                                      \
        for (int64_t r = 0; r < R; r++)                                                           \
            for (int64_t c = 0; c < C; c += 8) {                                                  \
                const __m256 z = _mm256_add_ps(_mm256_mul_ps(LD(x + r * C + c), _mm256_loadu_ps(a + c)), \
                                               _mm256_loadu_ps(sh + c));                          \
                const __m256 p = _mm256_cmp_ps(z, zero, _CMP_GT_OQ);                              \
                ST(y + r * C + c, _mm256_blendv_ps(_mm256_mul_ps(z, _mm256_loadu_ps(al + c)), z, p)); \
            }                                                                                     \
        /* backward: sums */                                                                      \
        for (int64_t r0 = 0; r0 < R; r0 += 64) {                                                  \
            const int64_t r1 = R - r0 < 64 ? R : r0 + 64;                                         \
            for (int64_t c = 0; c < C; c += 8) {                                                  \
                const __m256 av = _mm256_loadu_ps(a + c), sv = _mm256_loadu_ps(sh + c);           \
                const __m256 mv = _mm256_loadu_ps(mean + c), alv = _mm256_loadu_ps(al + c);       \
                __m256 q0 = zero, q1 = zero, q2 = zero;                                           \
                for (int64_t r = r0; r < r1; r++) {                                               \
                    const __m256 xv = LD(x + r * C + c), g = LD(dy + r * C + c);                  \
                    const __m256 z = _mm256_add_ps(_mm256_mul_ps(xv, av), sv);                    \
                    const __m256 pos = _mm256_cmp_ps(z, zero, _CMP_GT_OQ);                        \
                    const __m256 d = _mm256_blendv_ps(_mm256_mul_ps(alv, g), g, pos);             \
                    q2 = _mm256_add_ps(q2, _mm256_blendv_ps(_mm256_mul_ps(g, z), zero, pos));     \
                    q0 = _mm256_add_ps(q0, d);                                                    \
                    q1 = _mm256_fmadd_ps(d, _mm256_sub_ps(xv, mv), q1);                           \
                }                                                                                 \
                _mm256_storeu_ps(t1 + c, q0);                                                     \
                _mm256_storeu_ps(t2 + c, q1);                                                     \
                _mm256_storeu_ps(t3 + c, q2);                                                     \
            }                                                                                     \
            for (int64_t c = 0; c < C; c++) s1[c] += t1[c], s2[c] += t2[c] + t3[c];              \
        }                                                                                         \
        /* backward: input gradient */                                                            \
        for (int64_t r = 0; r < R; r++)                                                           \
            for (int64_t c = 0; c < C; c += 8) {                                                  \
                const __m256 xv = LD(x + r * C + c), g = LD(dy + r * C + c);                      \
                const __m256 z = _mm256_add_ps(_mm256_mul_ps(xv, _mm256_loadu_ps(a + c)),         \
                                               _mm256_loadu_ps(sh + c));                          \
                const __m256 d = _mm256_blendv_ps(_mm256_mul_ps(_mm256_loadu_ps(al + c), g), g,   \
                                                  _mm256_cmp_ps(z, zero, _CMP_GT_OQ));            \
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(a + c), d);                              \
                v = _mm256_sub_ps(v, _mm256_loadu_ps(sh + c));                                    \
                v = _mm256_fnmadd_ps(_mm256_loadu_ps(al + c), _mm256_sub_ps(xv, _mm256_loadu_ps(mean + c)), v); \
                ST(dx + r * C + c, v);                                                            \
            }                                                                                     \
    }

AVX2 static void to_bf16(const float *x, uint16_t *h, int64_t n) {
    for (int64_t j = 0; j < n; j += 8) st16(h + j, _mm256_loadu_ps(x + j));
}

#define LD32(p) _mm256_loadu_ps(p)
#define ST32(p, v) _mm256_storeu_ps(p, v)
PASSES(passes_f32, float, LD32, ST32)
PASSES(passes_bf16, uint16_t, ld16, st16)

int main(int argc, char **argv) {
    const double step_ms = argc > 1 ? atof(argv[1]) : 0;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "bench_mixed: needs AVX2 and FMA\n");
        return 1;
    }
    mien_err e = {0};
    const int B = 64;
    tr_build_opts bo = {.arch = NN_ARCH_MOBILEFACENET, .batch = B, .normalize = 1, .seed = 1, .threads = 1};
    tr_net *net;
    if (tr_build_train(&bo, &net, &e)) {
        fprintf(stderr, "bench_mixed: %s\n", e.msg);
        return 1;
    }
    tr_kern *k = tr_kern_create(1);
    double ms[3] = {0, 0, 0};
    int layers = 0;
    for (int i = 0; i < net->g->n_nodes; i++) {
        const nn_node *n = &net->g->nodes[i];
        if (n->op != NN_OP_BATCHNORM_TRAIN) continue;
        const nn_tensor *t = &net->g->t[n->out];
        const int64_t C = t->dims[t->ndim - 1], R = t->n / C, N = R * C;
        float *x = malloc((size_t)N * 4), *y = malloc((size_t)N * 4), *dy = malloc((size_t)N * 4), *dx = malloc((size_t)N * 4);
        uint16_t *xh = malloc((size_t)N * 2), *yh = malloc((size_t)N * 2), *dyh = malloc((size_t)N * 2), *dxh = malloc((size_t)N * 2);
        float *a = malloc((size_t)C * 4 * 8), *sh = a + C, *al = a + 2 * C, *mean = a + 3 * C;
        float *t1 = a + 4 * C, *t2 = a + 5 * C, *t3 = a + 6 * C, *c3 = a + 7 * C;
        double *s1 = malloc((size_t)C * 8 * 3), *s2 = s1 + C, *s3 = s1 + 2 * C;
        for (int64_t j = 0; j < N; j++) {
            x[j] = (float)tr_normal(1, (uint64_t)i, (uint64_t)j);
            dy[j] = (float)tr_normal(2, (uint64_t)i, (uint64_t)j);
        }
        for (int64_t c = 0; c < C; c++) a[c] = 1.1f, sh[c] = 0.1f, al[c] = 0.25f, mean[c] = 0.f, c3[c] = 1e-3f;
        to_bf16(x, xh, N);
        to_bf16(dy, dyh, N);
        /* warm the pages */
        memset(y, 0, (size_t)N * 4);
        memset(dx, 0, (size_t)N * 4);
        memset(yh, 0, (size_t)N * 2);
        memset(dxh, 0, (size_t)N * 2);
        double best[3] = {1e9, 1e9, 1e9};
        for (int rep = 0; rep < 3; rep++) {
            const double m0 = now_s();
            tr_col_moments(k, x, R, C, mean, s1, s2);
            tr_scale_shift_act(k, x, y, R, C, a, sh, NN_ACT_PRELU, al);
            tr_bn_grad_sums(k, x, dy, R, C, a, sh, mean, NN_ACT_PRELU, al, s1, s2, s3);
            tr_bn_grad_input(k, x, dy, dx, 0, R, C, a, sh, mean, NN_ACT_PRELU, al, a, sh, c3);
            const double m1 = now_s();
            passes_bf16(xh, yh, dyh, dxh, R, C, a, sh, al, mean, s1, s2, t1, t2, t3);
            const double m2 = now_s();
            passes_f32(x, y, dy, dx, R, C, a, sh, al, mean, s1, s2, t1, t2, t3);
            const double m3 = now_s();
            best[0] = fmin(best[0], m1 - m0);
            best[1] = fmin(best[1], m2 - m1);
            best[2] = fmin(best[2], m3 - m2);
        }
        for (int q = 0; q < 3; q++) ms[q] += 1000 * best[q];
        layers++;
        free(x), free(y), free(dy), free(dx), free(xh), free(yh), free(dyh), free(dxh), free(a), free(s1);
    }
    printf("{\"layers\": %d, \"batch\": %d, \"fp32_kernels_ms\": %.1f, \"bf16_storage_ms\": %.1f, "
           "\"fp32_same_loops_ms\": %.1f, \"step_ms\": %.1f}\n",
           layers, B, ms[0], ms[1], ms[2], step_ms);
    tr_kern_free(k);
    tr_net_free(net);
    return 0;
}
