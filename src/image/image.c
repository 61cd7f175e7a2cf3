/* Image buffers: allocation, release, crop and mirror. */
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

int img_alloc(mien_image *img, int w, int h, mien_err *e) {
    img->width = 0;
    img->height = 0;
    img->rgb = NULL;
    if (w <= 0 || h <= 0)
        return mien_err_set(e, MIEN_EINVAL, "invalid image size %dx%d", w, h);
    if (w > MIEN_MAX_IMAGE_SIDE || h > MIEN_MAX_IMAGE_SIDE)
        return mien_err_set(e, MIEN_ETOOBIG, "image size %dx%d exceeds the limit of %d per side",
                            w, h, MIEN_MAX_IMAGE_SIDE);
    size_t n;
    if (!mien_mul3_size((size_t)w, (size_t)h, 3, &n))
        return mien_err_set(e, MIEN_ETOOBIG, "image size %dx%d overflows", w, h);
    img->rgb = malloc(n);
    if (!img->rgb)
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for a %dx%d image", w, h);
    img->width = w;
    img->height = h;
    return MIEN_OK;
}

void mien_image_free(mien_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

int img_crop(const mien_image *src, int x, int y, int w, int h, mien_image *dst, mien_err *e) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (!src || !src->rgb || src->width <= 0 || src->height <= 0)
        return mien_err_set(e, MIEN_EINVAL, "crop of an empty image");
    /* 64-bit so that x + w cannot overflow for any int arguments. */
    long long x0 = x, y0 = y, x1 = (long long)x + w, y1 = (long long)y + h;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > src->width) x1 = src->width;
    if (y1 > src->height) y1 = src->height;
    if (x1 <= x0 || y1 <= y0)
        return mien_err_set(e, MIEN_EINVAL, "crop %d,%d %dx%d lies outside the %dx%d image", x, y,
                            w, h, src->width, src->height);
    int rc = img_alloc(dst, (int)(x1 - x0), (int)(y1 - y0), e);
    if (rc) return rc;
    size_t row = (size_t)dst->width * 3, sstride = (size_t)src->width * 3;
    for (int r = 0; r < dst->height; r++)
        memcpy(dst->rgb + (size_t)r * row, src->rgb + (size_t)(y0 + r) * sstride + (size_t)x0 * 3,
               row);
    return MIEN_OK;
}

int img_pad(const mien_image *src, int m, uint8_t v, mien_image *dst, mien_err *e) {
    dst->width = dst->height = 0;
    dst->rgb = NULL;
    if (!src || !src->rgb || src->width <= 0 || src->height <= 0 || m < 0)
        return mien_err_set(e, MIEN_EINVAL, "pad of an empty image");
    if ((long long)src->width + 2LL * m > MIEN_MAX_IMAGE_SIDE ||
        (long long)src->height + 2LL * m > MIEN_MAX_IMAGE_SIDE)
        return mien_err_set(e, MIEN_ETOOBIG, "a %d pixel border takes the %dx%d image past %d per side",
                            m, src->width, src->height, MIEN_MAX_IMAGE_SIDE);
    int rc = img_alloc(dst, src->width + 2 * m, src->height + 2 * m, e);
    if (rc) return rc;
    memset(dst->rgb, v, (size_t)dst->width * (size_t)dst->height * 3);
    const size_t row = (size_t)src->width * 3;
    for (int y = 0; y < src->height; y++)
        memcpy(dst->rgb + ((size_t)(y + m) * (size_t)dst->width + (size_t)m) * 3,
               src->rgb + (size_t)y * row, row);
    return MIEN_OK;
}

void img_flip_h(mien_image *img) {
    if (!img || !img->rgb) return;
    int w = img->width;
    for (int r = 0; r < img->height; r++) {
        uint8_t *p = img->rgb + (size_t)r * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            for (int k = 0; k < 3; k++) {
                uint8_t t = p[3 * a + k];
                p[3 * a + k] = p[3 * b + k];
                p[3 * b + k] = t;
            }
        }
    }
}
