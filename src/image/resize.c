/* Separable resize: bilinear with half-pixel centres (OpenCV INTER_LINEAR) when a direction
 * is enlarged or shrunk by at most 2x, area averaging (OpenCV INTER_AREA) when it is shrunk
 * by more, so that downscaled photos do not alias.
 *
 * Both are a weighted sum of consecutive source pixels per output pixel ("taps"). The taps of
 * each axis are computed once (no division per pixel). Each output row is then made in two
 * steps: the weighted sum of its source rows (a long, vectorisable loop over whole rows, which
 * is where a big shrink spends its time), then the horizontal taps on that float row. */
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Taps ==== */

typedef struct axis_taps {
    int *start;    /* (dst_n,) first source index of output i */
    int *count;    /* (dst_n,) number of consecutive source pixels it sums */
    float *w;      /* (dst_n, max_count) weights, row i's first count[i] used; sum to 1 */
    int max_count;
} axis_taps;

static void taps_free(axis_taps *t) {
    free(t->start);
    free(t->count);
    free(t->w);
}

static int taps_build(int src_n, int dst_n, axis_taps *t) {
    const double scale = (double)src_n / dst_n;
    const int area = scale > 2.0;
    /* An output pixel of an area shrink covers scale source pixels, which can straddle
     * ceil(scale) + 1 of them. */
    t->max_count = area ? (int)ceil(scale) + 1 : 2;
    t->start = malloc(sizeof(int) * (size_t)dst_n);
    t->count = malloc(sizeof(int) * (size_t)dst_n);
    t->w = malloc(sizeof(float) * (size_t)dst_n * (size_t)t->max_count);
    if (!t->start || !t->count || !t->w) return 0;
    for (int i = 0; i < dst_n; i++) {
        float *w = t->w + (size_t)i * t->max_count;
        if (area) {
            /* Output i covers [i * scale, (i + 1) * scale) of the source; each source pixel
             * k weighs by its overlap [k, k + 1) with that span. */
            double a = i * scale, b = (i + 1) * scale;
            if (b > src_n) b = src_n;
            int k0 = (int)floor(a), k1 = (int)ceil(b);
            if (k1 > src_n) k1 = src_n;
            /* Drop slivers so rounding noise does not add a near-zero tap. */
            if (fmin(k0 + 1, b) - a < 1e-9) k0++;
            if (b - fmax(k1 - 1, a) < 1e-9) k1--;
            if (k1 - k0 > t->max_count) k1 = k0 + t->max_count; /* cannot happen; be safe */
            double sum = 0;
            for (int k = k0; k < k1; k++) sum += fmin(k + 1, b) - fmax(k, a);
            for (int k = k0; k < k1; k++) w[k - k0] = (float)((fmin(k + 1, b) - fmax(k, a)) / sum);
            t->start[i] = k0;
            t->count[i] = k1 - k0;
        } else {
            /* Centre of output i in source pixel-index coordinates, borders replicated. */
            double s = (i + 0.5) * scale - 0.5;
            int k = (int)floor(s);
            double f = s - k;
            if (k < 0) {
                t->start[i] = 0, t->count[i] = 1, w[0] = 1;
            } else if (k >= src_n - 1) {
                t->start[i] = src_n - 1, t->count[i] = 1, w[0] = 1;
            } else if (f < 1e-6) {
                t->start[i] = k, t->count[i] = 1, w[0] = 1;
            } else if (f > 1 - 1e-6) {
                t->start[i] = k + 1, t->count[i] = 1, w[0] = 1;
            } else {
                t->start[i] = k, t->count[i] = 2, w[0] = (float)(1 - f), w[1] = (float)f;
            }
        }
    }
    return 1;
}

/* ==== Passes ==== */

/* Vertical pass, one source row at a time: acc (n,) (+)= w * row (n,). Whole blocks of 16 have
 * a fixed trip count, which lets the compiler vectorise them even at -O2; the tail is
 * scalar. */
enum { VBLOCK = 16 };

static void row_madd(float *restrict acc, const uint8_t *restrict row, float w, size_t n,
                     int first) {
    size_t i = 0;
    if (first) {
        for (; i + VBLOCK <= n; i += VBLOCK)
            for (int j = 0; j < VBLOCK; j++) acc[i + j] = w * (float)row[i + j];
        for (; i < n; i++) acc[i] = w * (float)row[i];
    } else {
        for (; i + VBLOCK <= n; i += VBLOCK)
            for (int j = 0; j < VBLOCK; j++) acc[i + j] += w * (float)row[i + j];
        for (; i < n; i++) acc[i] += w * (float)row[i];
    }
}

static inline uint8_t to_u8(float v) {
    v += 0.5f;
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

/* Horizontal pass: one vertically resized row (src_w, 3) of floats to a row (dst_w, 3) of
 * bytes. */
static void row_h(const float *src, const axis_taps *tx, int dst_w, uint8_t *out) {
    const int mc = tx->max_count;
    for (int x = 0; x < dst_w; x++) {
        const float *s = src + (size_t)tx->start[x] * 3;
        const float *w = tx->w + (size_t)x * mc;
        const int n = tx->count[x];
        float r = 0, g = 0, b = 0;
        for (int k = 0; k < n; k++, s += 3) {
            r += w[k] * s[0];
            g += w[k] * s[1];
            b += w[k] * s[2];
        }
        out[3 * x] = to_u8(r);
        out[3 * x + 1] = to_u8(g);
        out[3 * x + 2] = to_u8(b);
    }
}

int img_resize(const mien_image *src, int dst_w, int dst_h, mien_image *dst, mien_err *e) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (!src || !src->rgb || src->width <= 0 || src->height <= 0)
        return mien_err_set(e, MIEN_EINVAL, "resize of an empty image");
    int rc = img_alloc(dst, dst_w, dst_h, e);
    if (rc) return rc;
    const int sw = src->width, sh = src->height;
    if (sw == dst_w && sh == dst_h) {
        memcpy(dst->rgb, src->rgb, (size_t)sw * sh * 3);
        return MIEN_OK;
    }
    axis_taps tx = {0}, ty = {0};
    const size_t src_row = (size_t)sw * 3;
    float *acc = malloc(sizeof(float) * src_row); /* (src_w, 3) one vertically resized row */
    rc = MIEN_ENOMEM;
    if (acc && taps_build(sw, dst_w, &tx) && taps_build(sh, dst_h, &ty)) {
        for (int y = 0; y < dst_h; y++) {
            const int y0 = ty.start[y], n = ty.count[y];
            const float *w = ty.w + (size_t)y * ty.max_count;
            for (int k = 0; k < n; k++)
                row_madd(acc, src->rgb + (size_t)(y0 + k) * src_row, w[k], src_row, k == 0);
            row_h(acc, &tx, dst_w, dst->rgb + (size_t)y * dst_w * 3);
        }
        rc = MIEN_OK;
    }
    taps_free(&tx);
    taps_free(&ty);
    free(acc);
    if (rc) {
        free(dst->rgb);
        dst->rgb = NULL;
        dst->width = dst->height = 0;
        mien_err_set(e, rc, "out of memory resizing %dx%d to %dx%d", sw, sh, dst_w, dst_h);
    }
    return rc;
}
