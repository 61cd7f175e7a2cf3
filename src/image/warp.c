/* Affine warp with bilinear sampling and a black border (OpenCV's warpAffine with
 * WARP_INVERSE_MAP, INTER_LINEAR, BORDER_CONSTANT 0, but with the pixel-centre convention of
 * image.h: destination centre (col + 0.5, row + 0.5) maps to continuous source coordinates in
 * which source pixel i has its centre at i + 0.5). */
#include "image/image.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__ /* the one guard of this file's SIMD path (every x86-64 CPU has SSE2) */
#define WARP_SSE2 1
#include <emmintrin.h>
#endif

static const uint8_t black[3] = {0, 0, 0};

/* Bilinear sample of src at continuous position (sx, sy); neighbours outside the image count
 * as black, so a pixel half outside blends with black. */
static inline __attribute__((always_inline)) void sample(const mien_image *src, float sx,
                                                         float sy, float px[3]) {
    const int w = src->width, h = src->height;
    /* To pixel-index coordinates, where pixel i sits at i. */
    float u = sx - 0.5f, v = sy - 0.5f;
    /* Written so NaN fails the test: every neighbour would be outside. Inside this range the
     * float-to-int conversions below are defined. */
    if (!(u > -1.0f && u < (float)w && v > -1.0f && v < (float)h)) {
        px[0] = px[1] = px[2] = 0;
        return;
    }
    /* floor without a libm call (u, v > -1, so the truncations are defined): the same
     * values as floorf (its -0 for u = -0 becomes +0, which changes no result below). */
    int x0 = (int)u, y0 = (int)v; /* in [-1, w-1] x [-1, h-1] */
    x0 -= u < (float)x0;
    y0 -= v < (float)y0;
    const float fu = (float)x0, fv = (float)y0;
    const float ax = u - fu, ay = v - fv;
    const size_t stride = (size_t)w * 3;
    if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
        /* Inside: the four neighbours exist (the same arithmetic as below). */
        const uint8_t *p00 = src->rgb + (size_t)y0 * stride + (size_t)x0 * 3, *p10 = p00 + stride;
        for (int k = 0; k < 3; k++) {
            float top = p00[k] + ax * (p00[3 + k] - p00[k]);
            float bot = p10[k] + ax * (p10[3 + k] - p10[k]);
            px[k] = top + ay * (bot - top);
        }
        return;
    }
    const int in_x0 = x0 >= 0, in_x1 = x0 + 1 < w, in_y0 = y0 >= 0, in_y1 = y0 + 1 < h;
    /* Pointers are formed only for pixels that exist (no arithmetic before the buffer). */
    const uint8_t *p00 = black, *p01 = black, *p10 = black, *p11 = black;
    if (in_y0) {
        const uint8_t *row = src->rgb + (size_t)y0 * stride;
        if (in_x0) p00 = row + (size_t)x0 * 3;
        if (in_x1) p01 = row + (size_t)(x0 + 1) * 3;
    }
    if (in_y1) {
        const uint8_t *row = src->rgb + (size_t)(y0 + 1) * stride;
        if (in_x0) p10 = row + (size_t)x0 * 3;
        if (in_x1) p11 = row + (size_t)(x0 + 1) * 3;
    }
    for (int k = 0; k < 3; k++) {
        float top = p00[k] + ax * (p01[k] - p00[k]);
        float bot = p10[k] + ax * (p11[k] - p10[k]);
        px[k] = top + ay * (bot - top);
    }
}

#ifdef WARP_SSE2
/* The 4 bytes at p (a pixel and the next one's first byte) as floats. */
static inline __m128 bytes4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    const __m128i z = _mm_setzero_si128();
    return _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(v), z), z));
}
#endif

/* sample() into out (3 floats); inside the image, the three channels at once: the same
 * operations in the same order on each channel, so the same values to the bit (byte
 * differences are exact in float). */
static inline __attribute__((always_inline)) void sample_f32(const mien_image *src, float sx,
                                                             float sy, float *out) {
#ifdef WARP_SSE2
    const int w = src->width, h = src->height;
    const float u = sx - 0.5f, v = sy - 0.5f;
    if (u > 0.f && v > 0.f && u < (float)(w - 2) && v < (float)(h - 1)) {
        /* x0 + 2 < w: the 4-byte loads of the right neighbours stay in the row. */
        int x0 = (int)u, y0 = (int)v;
        x0 -= u < (float)x0;
        y0 -= v < (float)y0;
        const __m128 ax = _mm_set1_ps(u - (float)x0), ay = _mm_set1_ps(v - (float)y0);
        const size_t stride = (size_t)w * 3;
        const uint8_t *p00 = src->rgb + (size_t)y0 * stride + (size_t)x0 * 3, *p10 = p00 + stride;
        const __m128 a = bytes4(p00), b = bytes4(p00 + 3), c = bytes4(p10), d = bytes4(p10 + 3);
        const __m128 top = _mm_add_ps(a, _mm_mul_ps(ax, _mm_sub_ps(b, a)));
        const __m128 bot = _mm_add_ps(c, _mm_mul_ps(ax, _mm_sub_ps(d, c)));
        const __m128 px = _mm_add_ps(top, _mm_mul_ps(ay, _mm_sub_ps(bot, top)));
        _mm_storel_pi((__m64 *)out, px);
        _mm_store_ss(out + 2, _mm_shuffle_ps(px, px, _MM_SHUFFLE(2, 2, 2, 2)));
        return;
    }
#endif
    sample(src, sx, sy, out);
}

void img_warp_affine(const mien_image *src, const float m[6], mien_image *dst) {
    if (!dst || !dst->rgb) return;
    const int dw = dst->width, dh = dst->height;
    const int have_src = src && src->rgb && src->width > 0 && src->height > 0;
    for (int r = 0; r < dh; r++) {
        const float y = r + 0.5f;
        uint8_t *d = dst->rgb + (size_t)r * dw * 3;
        for (int c = 0; c < dw; c++, d += 3) {
            const float x = c + 0.5f;
            float px[3] = {0, 0, 0};
            if (have_src)
                sample(src, m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5], px);
            for (int k = 0; k < 3; k++) {
                float v = px[k] + 0.5f;
                d[k] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
            }
        }
    }
}

static void warp_f32(const mien_image *src, const float m[6], int dst_w, int dst_h, float mean,
                     float scale, int edge, float *out) {
    if (!out) return;
    const int have_src = src && src->rgb && src->width > 0 && src->height > 0;
    for (int r = 0; r < dst_h; r++) {
        const float y = r + 0.5f;
        float *o = out + (size_t)r * dst_w * 3;
        for (int c = 0; c < dst_w; c++, o += 3) {
            const float x = c + 0.5f;
            /* Sampled straight into the output: a copy through a small array on the stack
             * was read back with one 8-byte load over two 4-byte stores, a stall on every
             * pixel that cost more than the sampling. */
            if (have_src) {
                float sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
                if (edge) { /* the nearest pixel of the photo's edge (NaN stays NaN: black) */
                    const float hx = (float)src->width - 0.5f, hy = (float)src->height - 0.5f;
                    sx = sx < 0.5f ? 0.5f : sx > hx ? hx : sx;
                    sy = sy < 0.5f ? 0.5f : sy > hy ? hy : sy;
                }
                sample_f32(src, sx, sy, o);
            } else {
                o[0] = o[1] = o[2] = 0;
            }
        }
        if (mean != 0.f || scale != 1.f)
            for (int i = 0; i < dst_w * 3; i++) o[i - dst_w * 3] = (o[i - dst_w * 3] - mean) * scale;
    }
}

void img_warp_affine_f32(const mien_image *src, const float m[6], int dst_w, int dst_h,
                         float mean, float scale, float *out) {
    warp_f32(src, m, dst_w, dst_h, mean, scale, 0, out);
}

void img_warp_affine_f32_edge(const mien_image *src, const float m[6], int dst_w, int dst_h,
                              float mean, float scale, float *out) {
    warp_f32(src, m, dst_w, dst_h, mean, scale, 1, out);
}
