/* Image module: decoders (every PNG flavour, JPEG with EXIF and DCT scaling, WebP), hostile
 * and broken input, resize, warp, drawing, encoders, and a smoke test on real photos.
 * Every test image is made here, by our encoders, by libpng or by libwebp. */
#include "testutil.h"
#include "image/image.h"

#include <math.h>
#include <png.h>
#include <stdio.h> /* before jpeglib.h */
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <webp/encode.h>

/* ==== Helpers ==== */

static const img_color RED = {255, 0, 0}, GREEN = {0, 255, 0}, BLUE = {0, 0, 255},
                       WHITE = {255, 255, 255};

static const uint8_t *px(const mien_image *im, int x, int y) {
    return im->rgb + ((size_t)y * im->width + x) * 3;
}

static void assert_px_near(const mien_image *im, int x, int y, int r, int g, int b, int tol) {
    const uint8_t *p = px(im, x, y);
    ck_assert_msg(abs(p[0] - r) <= tol && abs(p[1] - g) <= tol && abs(p[2] - b) <= tol,
                  "pixel (%d,%d) is (%d,%d,%d), expected (%d,%d,%d) +-%d", x, y, p[0], p[1],
                  p[2], r, g, b, tol);
}

/* A w x h image with a smooth, position-dependent pattern. */
static mien_image pattern(int w, int h) {
    mien_image im;
    ck_assert_int_eq(img_alloc(&im, w, h, NULL), MIEN_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
            p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
            p[2] = (uint8_t)((x + y) * 7);
        }
    return im;
}

static double mean_abs_diff(const mien_image *a, const mien_image *b) {
    ck_assert_int_eq(a->width, b->width);
    ck_assert_int_eq(a->height, b->height);
    size_t n = (size_t)a->width * a->height * 3;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs(a->rgb[i] - b->rgb[i]);
    return s / (double)n;
}

static uint8_t *encode_jpeg(const mien_image *im, int q, size_t *len) {
    uint8_t *buf;
    mien_err e = {0};
    ck_assert_msg(img_encode_jpeg(im, q, &buf, len, &e) == MIEN_OK, "%s", e.msg);
    return buf;
}

static int decode(const uint8_t *d, size_t n, mien_image *out, mien_err *e) {
    return img_decode(d, n, NULL, out, NULL, NULL, e);
}

/* CRC-32 of PNG chunks (ISO 3309 polynomial), bit by bit: test data only. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* ==== PNG variants made with libpng ==== */

typedef struct tbuf {
    uint8_t *p;
    size_t n, cap;
} tbuf;

static void tbuf_write(png_structp png, png_bytep d, size_t n) {
    tbuf *b = png_get_io_ptr(png);
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void tbuf_flush(png_structp png) { (void)png; }

/* Write a PNG of raw rows (rowbytes each, already in the PNG's sample layout). */
static uint8_t *make_png(int w, int h, int type, int depth, int interlace, const uint8_t *raw,
                         size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns,
                         int ntrns, size_t *len) {
    tbuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    png_set_write_fn(png, &b, tbuf_write, tbuf_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int r = 0; r < h; r++) rows[r] = (png_bytep)(raw + (size_t)r * rowbytes);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *len = b.n;
    return b.p;
}

static unsigned over_white(unsigned c, unsigned a) {
    return (c * a + 255 * (255 - a) + 127) / 255;
}

START_TEST(png_roundtrip) {
    mien_image im = pattern(37, 23), out;
    uint8_t *buf;
    size_t n;
    mien_err e = {0};
    ck_assert_int_eq(img_encode_png(&im, &buf, &n, &e), MIEN_OK);
    int fw, fh;
    ck_assert_int_eq(img_decode(buf, n, NULL, &out, &fw, &fh, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 37);
    ck_assert_int_eq(out.height, 23);
    ck_assert_int_eq(fw, 37);
    ck_assert_int_eq(fh, 23);
    ck_assert_mem_eq(out.rgb, im.rgb, (size_t)37 * 23 * 3);
    int w, h;
    const char *fmt;
    ck_assert_int_eq(img_probe(buf, n, &w, &h, &fmt, &e), MIEN_OK);
    ck_assert_int_eq(w, 37);
    ck_assert_int_eq(h, 23);
    ck_assert_str_eq(fmt, "png");
    free(buf);
    mien_image_free(&out);
    mien_image_free(&im);
}
END_TEST

START_TEST(png_variants) {
    enum { W = 9, H = 5 };
    uint8_t raw[W * H * 8];
    size_t n;
    mien_image out;
    mien_err e = {0};

    /* 16-bit RGB: samples 257 * k decode to exactly k. */
    for (int i = 0; i < W * H * 3; i++) {
        unsigned v = 257u * (unsigned)((i * 11) % 256);
        raw[2 * i] = (uint8_t)(v >> 8), raw[2 * i + 1] = (uint8_t)v;
    }
    uint8_t *png = make_png(W, H, PNG_COLOR_TYPE_RGB, 16, 0, raw, W * 6, NULL, 0, NULL, 0, &n);
    ck_assert_msg(decode(png, n, &out, &e) == MIEN_OK, "%s", e.msg);
    for (int i = 0; i < W * H * 3; i++) ck_assert_int_eq(out.rgb[i], (i * 11) % 256);
    free(png);
    mien_image_free(&out);

    /* 8-bit gray. */
    for (int i = 0; i < W * H; i++) raw[i] = (uint8_t)(i * 5);
    png = make_png(W, H, PNG_COLOR_TYPE_GRAY, 8, 0, raw, W, NULL, 0, NULL, 0, &n);
    ck_assert_int_eq(decode(png, n, &out, &e), MIEN_OK);
    for (int i = 0; i < W * H; i++) assert_px_near(&out, i % W, i / W, i * 5, i * 5, i * 5, 0);
    free(png);
    mien_image_free(&out);

    /* 1-bit gray: a checkerboard of 0 and 255. Rows are padded to whole bytes. */
    memset(raw, 0, sizeof raw);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if ((x + y) & 1) raw[y * 2 + x / 8] |= (uint8_t)(0x80 >> (x % 8));
    png = make_png(W, H, PNG_COLOR_TYPE_GRAY, 1, 0, raw, 2, NULL, 0, NULL, 0, &n);
    ck_assert_int_eq(decode(png, n, &out, &e), MIEN_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int v = (x + y) & 1 ? 255 : 0;
            assert_px_near(&out, x, y, v, v, v, 0);
        }
    free(png);
    mien_image_free(&out);

    /* Gray + alpha: composited over white. */
    for (int i = 0; i < W * H; i++) raw[2 * i] = (uint8_t)(i * 3), raw[2 * i + 1] = (uint8_t)(i * 6);
    png = make_png(W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, raw, W * 2, NULL, 0, NULL, 0, &n);
    ck_assert_int_eq(decode(png, n, &out, &e), MIEN_OK);
    for (int i = 0; i < W * H; i++) {
        int v = (int)over_white(raw[2 * i], raw[2 * i + 1]);
        assert_px_near(&out, i % W, i / W, v, v, v, 0);
    }
    free(png);
    mien_image_free(&out);

    /* 4-bit palette with a transparent entry (index 2). */
    const png_color pal[3] = {{255, 0, 0}, {0, 0, 255}, {0, 255, 0}};
    const uint8_t trns[3] = {255, 255, 0};
    memset(raw, 0, sizeof raw);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) raw[y * 5 + x / 2] |= (uint8_t)((x + y) % 3 << (x % 2 ? 0 : 4));
    png = make_png(W, H, PNG_COLOR_TYPE_PALETTE, 4, 0, raw, 5, pal, 3, trns, 3, &n);
    ck_assert_msg(decode(png, n, &out, &e) == MIEN_OK, "%s", e.msg);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int k = (x + y) % 3;
            if (k == 2) assert_px_near(&out, x, y, 255, 255, 255, 0);
            else assert_px_near(&out, x, y, pal[k].red, pal[k].green, pal[k].blue, 0);
        }
    free(png);
    mien_image_free(&out);

    /* RGBA: opaque, transparent and half-transparent pixels. */
    for (int i = 0; i < W * H; i++) {
        raw[4 * i] = (uint8_t)(i * 5), raw[4 * i + 1] = 10, raw[4 * i + 2] = 200;
        raw[4 * i + 3] = (uint8_t)(i % 3 == 0 ? 255 : i % 3 == 1 ? 0 : 128);
    }
    png = make_png(W, H, PNG_COLOR_TYPE_RGBA, 8, 0, raw, W * 4, NULL, 0, NULL, 0, &n);
    ck_assert_int_eq(decode(png, n, &out, &e), MIEN_OK);
    for (int i = 0; i < W * H; i++) {
        unsigned a = raw[4 * i + 3];
        assert_px_near(&out, i % W, i / W, (int)over_white(raw[4 * i], a),
                       (int)over_white(10, a), (int)over_white(200, a), 0);
    }
    free(png);
    mien_image_free(&out);

    /* Interlaced (Adam7) 8-bit RGB. */
    mien_image im = pattern(W, H);
    png = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 1, im.rgb, W * 3, NULL, 0, NULL, 0, &n);
    ck_assert_int_eq(decode(png, n, &out, &e), MIEN_OK);
    ck_assert_mem_eq(out.rgb, im.rgb, (size_t)W * H * 3);
    free(png);
    mien_image_free(&out);
    mien_image_free(&im);
}
END_TEST

START_TEST(webp_decode) {
    mien_image im = pattern(31, 17), out;
    mien_err e = {0};
    uint8_t *wp;
    size_t n = WebPEncodeLosslessRGB(im.rgb, 31, 17, 31 * 3, &wp);
    ck_assert_uint_gt(n, 0);
    int fw, fh;
    ck_assert_msg(img_decode(wp, n, NULL, &out, &fw, &fh, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(fw, 31);
    ck_assert_int_eq(fh, 17);
    ck_assert_mem_eq(out.rgb, im.rgb, (size_t)31 * 17 * 3);
    mien_image_free(&out);
    int w, h;
    const char *fmt;
    ck_assert_int_eq(img_probe(wp, n, &w, &h, &fmt, &e), MIEN_OK);
    ck_assert_str_eq(fmt, "webp");
    ck_assert_int_eq(w, 31);
    ck_assert_int_eq(h, 17);
    /* Truncated WebP fails cleanly. */
    ck_assert_int_eq(decode(wp, n / 2, &out, &e), MIEN_EFORMAT);
    ck_assert_ptr_null(out.rgb);
    WebPFree(wp);
    mien_image_free(&out);

    /* Lossless RGBA: transparent pixels come out white. */
    uint8_t rgba[8 * 4 * 4];
    for (int i = 0; i < 32; i++) {
        rgba[4 * i] = 0, rgba[4 * i + 1] = 100, rgba[4 * i + 2] = 0;
        rgba[4 * i + 3] = i < 16 ? 0 : 255;
    }
    n = WebPEncodeLosslessRGBA(rgba, 8, 4, 8 * 4, &wp);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(decode(wp, n, &out, &e), MIEN_OK);
    assert_px_near(&out, 3, 0, 255, 255, 255, 0);
    assert_px_near(&out, 3, 3, 0, 100, 0, 0);
    WebPFree(wp);
    mien_image_free(&out);
    mien_image_free(&im);

    /* Lossy: close to the original. */
    mien_image big = pattern(64, 48);
    n = WebPEncodeRGB(big.rgb, 64, 48, 64 * 3, 95, &wp);
    ck_assert_int_eq(decode(wp, n, &out, &e), MIEN_OK);
    ck_assert(mean_abs_diff(&out, &big) < 6);
    WebPFree(wp);
    mien_image_free(&out);
    mien_image_free(&big);
}
END_TEST

/* ==== JPEG ==== */

START_TEST(jpeg_roundtrip_and_scaling) {
    mien_image im = pattern(203, 101), out;
    size_t n;
    uint8_t *jpg = encode_jpeg(&im, 95, &n);
    mien_err e = {0};
    int fw, fh;
    ck_assert_int_eq(img_decode(jpg, n, NULL, &out, &fw, &fh, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 203);
    ck_assert_int_eq(out.height, 101);
    ck_assert(mean_abs_diff(&out, &im) < 4);
    mien_image_free(&out);
    /* DCT scaling: ceil(side / denom), full size still reported. */
    const int denoms[] = {2, 4, 8};
    for (int i = 0; i < 3; i++) {
        img_decode_opts o = {.scale_denom = denoms[i]};
        ck_assert_int_eq(img_decode(jpg, n, &o, &out, &fw, &fh, &e), MIEN_OK);
        ck_assert_int_eq(out.width, (203 + denoms[i] - 1) / denoms[i]);
        ck_assert_int_eq(out.height, (101 + denoms[i] - 1) / denoms[i]);
        ck_assert_int_eq(fw, 203);
        ck_assert_int_eq(fh, 101);
        mien_image_free(&out);
    }
    img_decode_opts bad = {.scale_denom = 3};
    ck_assert_int_eq(img_decode(jpg, n, &bad, &out, NULL, NULL, &e), MIEN_EINVAL);
    int w, h;
    const char *fmt;
    ck_assert_int_eq(img_probe(jpg, n, &w, &h, &fmt, &e), MIEN_OK);
    ck_assert_str_eq(fmt, "jpeg");
    ck_assert_int_eq(w, 203);
    ck_assert_int_eq(h, 101);
    free(jpg);
    mien_image_free(&im);
}
END_TEST

START_TEST(jpeg_truncated) {
    mien_image im = pattern(160, 120), out;
    size_t n;
    uint8_t *jpg = encode_jpeg(&im, 90, &n);
    mien_err e = {0};
    ck_assert_int_eq(decode(jpg, n / 2, &out, &e), MIEN_EFORMAT);
    ck_assert_ptr_null(out.rgb);
    ck_assert_msg(strstr(e.msg, "truncated") != NULL, "message: %s", e.msg);
    /* Cut inside the header, and cut to just the SOI marker. */
    ck_assert_int_eq(decode(jpg, 100, &out, &e), MIEN_EFORMAT);
    ck_assert_int_eq(decode(jpg, 3, &out, &e), MIEN_EFORMAT);
    img_decode_opts o = {.scale_denom = 4};
    ck_assert_int_eq(img_decode(jpg, n - 40, &o, &out, NULL, NULL, &e), MIEN_EFORMAT);
    free(jpg);
    mien_image_free(&im);
}
END_TEST

/* A JPEG written with libjpeg directly: CMYK input (the Adobe convention, 255 = no ink) or a
 * progressive RGB file, neither of which img_encode_jpeg makes. */
static uint8_t *make_jpeg_raw(int w, int h, int cmyk, int progressive, const uint8_t *pix,
                              size_t *len) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL;
    unsigned long n = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &buf, &n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = cmyk ? 4 : 3;
    ci.in_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * w * ci.input_components);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *len = n;
    return buf;
}

START_TEST(jpeg_cmyk_and_progressive) {
    enum { W = 32, H = 16 };
    uint8_t cmyk[W * H * 4];
    for (int i = 0; i < W * H; i++) {
        /* Left half magenta ink only, right half black ink only. */
        int left = i % W < W / 2;
        cmyk[4 * i] = 255, cmyk[4 * i + 1] = left ? 0 : 255, cmyk[4 * i + 2] = 255;
        cmyk[4 * i + 3] = left ? 255 : 0;
    }
    size_t n;
    uint8_t *jpg = make_jpeg_raw(W, H, 1, 0, cmyk, &n);
    mien_image out;
    mien_err e = {0};
    ck_assert_msg(decode(jpg, n, &out, &e) == MIEN_OK, "%s", e.msg);
    assert_px_near(&out, 4, 8, 255, 0, 255, 8);
    assert_px_near(&out, 28, 8, 0, 0, 0, 8);
    mien_image_free(&out);
    free(jpg);

    mien_image im = pattern(120, 90);
    jpg = make_jpeg_raw(120, 90, 0, 1, im.rgb, &n);
    img_decode_opts o = {.scale_denom = 2};
    ck_assert_int_eq(decode(jpg, n, &out, &e), MIEN_OK);
    ck_assert(mean_abs_diff(&out, &im) < 4);
    mien_image_free(&out);
    ck_assert_int_eq(img_decode(jpg, n, &o, &out, NULL, NULL, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 60);
    mien_image_free(&out);
    /* A progressive file cut short fails too, even though every scan so far was whole. */
    ck_assert_int_eq(decode(jpg, n * 2 / 3, &out, &e), MIEN_EFORMAT);
    ck_assert_ptr_null(out.rgb);
    free(jpg);
    mien_image_free(&im);
}
END_TEST

/* APP1 "Exif" segment holding only IFD0 with an Orientation entry, big or little endian. */
static size_t make_exif_app1(uint8_t *seg, int orientation, int big) {
    static const uint8_t mm[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t ii[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
                                 0x12, 0x01, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const size_t plen = sizeof mm;
    seg[0] = 0xFF, seg[1] = 0xE1;
    seg[2] = (uint8_t)((plen + 2) >> 8), seg[3] = (uint8_t)(plen + 2);
    memcpy(seg + 4, big ? mm : ii, plen);
    if (big) seg[4 + 24] = 0, seg[4 + 25] = (uint8_t)orientation;
    else seg[4 + 24] = (uint8_t)orientation, seg[4 + 25] = 0;
    return plen + 4;
}

/* Splice an EXIF segment right after SOI. */
static uint8_t *with_exif(const uint8_t *jpg, size_t n, int orientation, int big,
                          size_t *out_n) {
    uint8_t seg[64];
    size_t sn = make_exif_app1(seg, orientation, big);
    uint8_t *r = malloc(n + sn);
    memcpy(r, jpg, 2);
    memcpy(r + 2, seg, sn);
    memcpy(r + 2 + sn, jpg + 2, n - 2);
    *out_n = n + sn;
    return r;
}

START_TEST(jpeg_exif_orientation) {
    /* 64x32: top half red, bottom half blue, the 16 leftmost columns green. Blocks of 16 keep
     * JPEG's chroma subsampling away from the probed pixels. */
    mien_image im;
    ck_assert_int_eq(img_alloc(&im, 64, 32, NULL), MIEN_OK);
    img_fill(&im, BLUE);
    img_draw_rect(&im, 0, 0, 64, 16, 100, RED);
    img_draw_rect(&im, 0, 0, 16, 32, 100, GREEN);
    size_t n, en;
    uint8_t *jpg = encode_jpeg(&im, 95, &n);
    mien_err e = {0};
    mien_image out;
    int fw, fh, w, h;

    /* Orientation 6 (rotate 90 clockwise), big-endian TIFF: 32x64, green on top, blue on
     * the left, red on the right. */
    uint8_t *j6 = with_exif(jpg, n, 6, 1, &en);
    ck_assert_msg(img_decode(j6, en, NULL, &out, &fw, &fh, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(out.width, 32);
    ck_assert_int_eq(out.height, 64);
    ck_assert_int_eq(fw, 32);
    ck_assert_int_eq(fh, 64);
    assert_px_near(&out, 16, 6, 0, 255, 0, 40);
    assert_px_near(&out, 6, 40, 0, 0, 255, 40);
    assert_px_near(&out, 26, 40, 255, 0, 0, 40);
    mien_image_free(&out);
    ck_assert_int_eq(img_probe(j6, en, &w, &h, NULL, &e), MIEN_OK);
    ck_assert_int_eq(w, 32);
    ck_assert_int_eq(h, 64);
    /* Scaled decode rotates too. */
    img_decode_opts half = {.scale_denom = 2};
    ck_assert_int_eq(img_decode(j6, en, &half, &out, &fw, &fh, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 16);
    ck_assert_int_eq(out.height, 32);
    ck_assert_int_eq(fw, 32);
    mien_image_free(&out);
    /* no_exif keeps the stored layout. */
    img_decode_opts raw = {.no_exif = 1};
    ck_assert_int_eq(img_decode(j6, en, &raw, &out, &fw, &fh, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 64);
    ck_assert_int_eq(fw, 64);
    mien_image_free(&out);
    free(j6);

    /* Orientation 3 (rotate 180), little-endian TIFF: 64x32, blue on top, red below, green
     * on the right. */
    uint8_t *j3 = with_exif(jpg, n, 3, 0, &en);
    ck_assert_int_eq(img_decode(j3, en, NULL, &out, &fw, &fh, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 64);
    ck_assert_int_eq(out.height, 32);
    assert_px_near(&out, 30, 6, 0, 0, 255, 40);
    assert_px_near(&out, 30, 26, 255, 0, 0, 40);
    assert_px_near(&out, 58, 16, 0, 255, 0, 40);
    mien_image_free(&out);
    free(j3);
    free(jpg);
    mien_image_free(&im);
}
END_TEST

START_TEST(exif_parser_bounds) {
    uint8_t seg[64];
    size_t n = make_exif_app1(seg, 6, 1);
    const uint8_t *p = seg + 4;
    size_t pn = n - 4;
    ck_assert_int_eq(img_exif_orientation(p, pn), 6);
    make_exif_app1(seg, 8, 0);
    ck_assert_int_eq(img_exif_orientation(p, pn), 8);
    /* Every truncation is rejected, never read past. */
    for (size_t k = 0; k < 26; k++) ck_assert_int_eq(img_exif_orientation(p, k), 0);
    uint8_t bad[64];
    memcpy(bad, p, pn);
    bad[6 + 7] = 0xFF; /* IFD0 offset far beyond the payload (little endian: high byte) */
    ck_assert_int_eq(img_exif_orientation(bad, pn), 0);
    memcpy(bad, p, pn);
    bad[6 + 4] = 0xFF, bad[6 + 5] = 0xFF, bad[6 + 6] = 0xFF, bad[6 + 7] = 0xFF;
    ck_assert_int_eq(img_exif_orientation(bad, pn), 0);
    memcpy(bad, p, pn);
    bad[6 + 8] = 0xFF, bad[6 + 9] = 0xFF; /* 65535 entries claimed */
    ck_assert_int_eq(img_exif_orientation(bad, pn), 8);
    memcpy(bad, p, pn);
    bad[24] = 9; /* orientation out of range */
    ck_assert_int_eq(img_exif_orientation(bad, pn), 0);
    memcpy(bad, p, pn);
    bad[6] = 'X';
    ck_assert_int_eq(img_exif_orientation(bad, pn), 0);
    ck_assert_int_eq(img_exif_orientation(NULL, 0), 0);
}
END_TEST

START_TEST(orientation_all_eight) {
    /* 3x2 image whose pixel (x, y) holds (x, y, 7). Expected mapping, out(x', y') = in(...):
     *   1 (x', y')  2 (W-1-x', y')  3 (W-1-x', H-1-y')  4 (x', H-1-y')
     *   5 (y', x')  6 (y', H-1-x')  7 (W-1-y', H-1-x')  8 (W-1-y', x') */
    const int W = 3, H = 2;
    for (int o = 1; o <= 8; o++) {
        mien_image im;
        ck_assert_int_eq(img_alloc(&im, W, H, NULL), MIEN_OK);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *p = im.rgb + (y * W + x) * 3;
                p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = 7;
            }
        ck_assert_int_eq(img_apply_orientation(&im, o, NULL), MIEN_OK);
        ck_assert_int_eq(im.width, o >= 5 ? H : W);
        ck_assert_int_eq(im.height, o >= 5 ? W : H);
        for (int y = 0; y < im.height; y++)
            for (int x = 0; x < im.width; x++) {
                int sx, sy;
                switch (o) {
                case 1: sx = x, sy = y; break;
                case 2: sx = W - 1 - x, sy = y; break;
                case 3: sx = W - 1 - x, sy = H - 1 - y; break;
                case 4: sx = x, sy = H - 1 - y; break;
                case 5: sx = y, sy = x; break;
                case 6: sx = y, sy = H - 1 - x; break;
                case 7: sx = W - 1 - y, sy = H - 1 - x; break;
                default: sx = W - 1 - y, sy = x; break;
                }
                ck_assert_msg(px(&im, x, y)[0] == sx && px(&im, x, y)[1] == sy,
                              "orientation %d, out (%d,%d)", o, x, y);
            }
        mien_image_free(&im);
    }
}
END_TEST

/* ==== Broken and hostile input ==== */

START_TEST(not_an_image) {
    mien_image out;
    mien_err e = {0};
    const char *txt = "hello, this is plain text and not a picture\n";
    const char *p = tu_temp_file(".jpg", txt, strlen(txt));
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(img_load(p, NULL, &out, NULL, NULL, &e), MIEN_EFORMAT);
    ck_assert_ptr_null(out.rgb);
    ck_assert_msg(strstr(e.msg, p) && strstr(e.msg, "not a JPEG, PNG or WebP"), "%s", e.msg);
    remove(p);

    p = tu_temp_file(".png", "", 0);
    ck_assert_int_eq(img_load(p, NULL, &out, NULL, NULL, &e), MIEN_EFORMAT);
    ck_assert_msg(strstr(e.msg, "empty file") != NULL, "%s", e.msg);
    remove(p);
    ck_assert_int_eq(decode((const uint8_t *)"", 0, &out, &e), MIEN_EFORMAT);
    ck_assert_int_eq(img_load("/nonexistent/photo.jpg", NULL, &out, NULL, NULL, &e), MIEN_EIO);
    ck_assert(strstr(e.msg, "/nonexistent/photo.jpg") != NULL);
    int w, h;
    ck_assert_int_eq(img_probe((const uint8_t *)txt, strlen(txt), &w, &h, NULL, &e),
                     MIEN_EFORMAT);
}
END_TEST

/* PNG signature + IHDR with the given size (CRC computed) + IEND. */
static size_t craft_png(uint8_t *b, uint32_t w, uint32_t h) {
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    put32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put32(b + 16, w);
    put32(b + 20, h);
    b[24] = 8, b[25] = 2, b[26] = 0, b[27] = 0, b[28] = 0; /* 8-bit RGB */
    put32(b + 29, crc32_png(b + 12, 17));
    put32(b + 33, 0);
    memcpy(b + 37, "IEND", 4);
    put32(b + 41, crc32_png(b + 37, 4));
    return 45;
}

START_TEST(png_huge_header) {
    uint8_t b[64];
    size_t n = craft_png(b, 100000, 100000);
    mien_image out;
    mien_err e = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_ETOOBIG);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert(t1.tv_sec - t0.tv_sec < 2);
    ck_assert_ptr_null(out.rgb);
    ck_assert_msg(strstr(e.msg, "100000x100000") && strstr(e.msg, "16384"), "%s", e.msg);
    int w, h;
    ck_assert_int_eq(img_probe(b, n, &w, &h, NULL, &e), MIEN_ETOOBIG);
    ck_assert_int_eq(w, 100000);
    /* One side over the limit is enough; zero is malformed; the limit itself is allowed
     * past the header check (and then fails for lack of pixel data). */
    n = craft_png(b, 16385, 10);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_ETOOBIG);
    n = craft_png(b, 0, 10);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_EFORMAT);
    n = craft_png(b, 0xFFFFFFFFu, 0xFFFFFFFFu);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_ETOOBIG);
    n = craft_png(b, 16384, 1);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_EFORMAT);
    ck_assert_ptr_null(out.rgb);
    /* Truncated PNG. */
    mien_image im = pattern(50, 40);
    uint8_t *png;
    ck_assert_int_eq(img_encode_png(&im, &png, &n, &e), MIEN_OK);
    ck_assert_int_eq(decode(png, n / 2, &out, &e), MIEN_EFORMAT);
    ck_assert_msg(strstr(e.msg, "PNG") != NULL, "%s", e.msg);
    ck_assert_int_eq(decode(png, 20, &out, &e), MIEN_EFORMAT);
    free(png);
    mien_image_free(&im);
}
END_TEST

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xFFFFFF;
}

/* Deterministic damage to valid files of every format: each decode must fail cleanly or
 * succeed with a real image, with the sanitizers watching. */
START_TEST(mini_fuzz) {
    mien_image im = pattern(40, 30);
    uint8_t *src[3];
    size_t len[3];
    mien_err e = {0};
    src[0] = encode_jpeg(&im, 80, &len[0]);
    ck_assert_int_eq(img_encode_png(&im, &src[1], &len[1], &e), MIEN_OK);
    uint8_t *wp;
    len[2] = WebPEncodeRGB(im.rgb, 40, 30, 120, 80, &wp);
    src[2] = malloc(len[2]);
    memcpy(src[2], wp, len[2]);
    WebPFree(wp);
    uint32_t seed = 12345;
    for (int iter = 0; iter < 600; iter++) {
        int f = iter % 3;
        size_t n = len[f];
        uint8_t *d = malloc(n);
        memcpy(d, src[f], n);
        int flips = 1 + (int)(lcg(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = lcg(&seed) % n;
            d[at] ^= (uint8_t)(1 + lcg(&seed) % 255);
        }
        if (lcg(&seed) % 3 == 0) n = 1 + lcg(&seed) % n;
        img_decode_opts o = {.scale_denom = 1 << (lcg(&seed) % 4)};
        mien_image out;
        int rc = img_decode(d, n, &o, &out, NULL, NULL, &e);
        if (rc == MIEN_OK) {
            ck_assert(out.width > 0 && out.height > 0 && out.rgb);
            mien_image_free(&out);
        } else {
            ck_assert_msg(rc == MIEN_EFORMAT || rc == MIEN_ETOOBIG || rc == MIEN_EUNSUPPORTED,
                          "iteration %d: status %d (%s)", iter, rc, e.msg);
            ck_assert(e.msg[0] != '\0');
            ck_assert_ptr_null(out.rgb);
        }
        int w, h;
        img_probe(d, n, &w, &h, NULL, &e);
        free(d);
    }
    for (int f = 0; f < 3; f++) free(src[f]);
    mien_image_free(&im);
}
END_TEST

/* ==== Geometry ==== */

START_TEST(resize_constant) {
    const int sizes[][2] = {{30, 20}, {70, 60}, {250, 170}, {1, 1}, {100, 3}, {7, 80}};
    mien_image im;
    mien_err e = {0};
    ck_assert_int_eq(img_alloc(&im, 100, 80, NULL), MIEN_OK);
    img_fill(&im, (img_color){77, 150, 200});
    for (int i = 0; i < 6; i++) {
        mien_image out;
        ck_assert_int_eq(img_resize(&im, sizes[i][0], sizes[i][1], &out, &e), MIEN_OK);
        ck_assert_int_eq(out.width, sizes[i][0]);
        ck_assert_int_eq(out.height, sizes[i][1]);
        for (int y = 0; y < out.height; y++)
            for (int x = 0; x < out.width; x++) assert_px_near(&out, x, y, 77, 150, 200, 0);
        mien_image_free(&out);
    }
    mien_image out;
    ck_assert_int_eq(img_resize(&im, 0, 10, &out, &e), MIEN_EINVAL);
    ck_assert_int_eq(img_resize(&im, 10, 20000, &out, &e), MIEN_ETOOBIG);
    ck_assert_ptr_null(out.rgb);
    /* Same size is an exact copy. */
    mien_image pat = pattern(33, 21);
    ck_assert_int_eq(img_resize(&pat, 33, 21, &out, &e), MIEN_OK);
    ck_assert_mem_eq(out.rgb, pat.rgb, (size_t)33 * 21 * 3);
    mien_image_free(&out);
    mien_image_free(&pat);
    mien_image_free(&im);
}
END_TEST

/* Source value of a 1-D gradient v(x) = 1 * x at output pixel i, OpenCV INTER_LINEAR. */
static double linear_ref(int i, int src_n, int dst_n) {
    double s = (i + 0.5) * src_n / dst_n - 0.5;
    if (s < 0) s = 0;
    if (s > src_n - 1) s = src_n - 1;
    return s; /* v(s) = s for the gradient */
}

/* Area average of v(x) = x over [i * scale, (i + 1) * scale). */
static double area_ref(int i, int src_n, int dst_n) {
    double a = (double)i * src_n / dst_n, b = (double)(i + 1) * src_n / dst_n, sum = 0;
    for (int k = (int)floor(a); k < src_n && k < b; k++) {
        double ov = fmin(k + 1, b) - fmax(k, a);
        if (ov > 0) sum += ov * k;
    }
    return sum / (b - a);
}

START_TEST(resize_gradient) {
    mien_image g;
    mien_err e = {0};
    ck_assert_int_eq(img_alloc(&g, 200, 4, NULL), MIEN_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 200; x++) {
            uint8_t *p = g.rgb + (y * 200 + x) * 3;
            p[0] = p[1] = p[2] = (uint8_t)x;
        }
    const int widths[] = {120, 100, 40, 60, 13, 450};
    for (int t = 0; t < 6; t++) {
        int dw = widths[t];
        mien_image out;
        ck_assert_int_eq(img_resize(&g, dw, 4, &out, &e), MIEN_OK);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < dw; x++) {
                double ref = 200.0 / dw > 2 ? area_ref(x, 200, dw) : linear_ref(x, 200, dw);
                int v = px(&out, x, y)[0];
                ck_assert_msg(fabs(v - ref) <= 0.51, "width %d, x %d: %d vs %.3f", dw, x, v,
                              ref);
                ck_assert_int_eq(px(&out, x, y)[1], v);
                if (x > 0) ck_assert_int_ge(v, px(&out, x - 1, y)[0]);
            }
        mien_image_free(&out);
    }
    /* A 5x area shrink is an exact block mean: (5x + 2). */
    mien_image out;
    ck_assert_int_eq(img_resize(&g, 40, 2, &out, &e), MIEN_OK);
    for (int x = 0; x < 40; x++) ck_assert_int_eq(px(&out, x, 1)[0], 5 * x + 2);
    mien_image_free(&out);
    /* The same in the vertical direction, through the row ring. */
    mien_image gv;
    ck_assert_int_eq(img_alloc(&gv, 3, 200, NULL), MIEN_OK);
    for (int y = 0; y < 200; y++) memset(gv.rgb + y * 9, y, 9);
    const int heights[] = {150, 60, 7, 333};
    for (int t = 0; t < 4; t++) {
        int dh = heights[t];
        ck_assert_int_eq(img_resize(&gv, 3, dh, &out, &e), MIEN_OK);
        for (int y = 0; y < dh; y++) {
            double ref = 200.0 / dh > 2 ? area_ref(y, 200, dh) : linear_ref(y, 200, dh);
            ck_assert_msg(fabs(px(&out, 1, y)[2] - ref) <= 0.51, "height %d, y %d", dh, y);
        }
        mien_image_free(&out);
    }
    mien_image_free(&gv);
    mien_image_free(&g);
}
END_TEST

/* The textbook bilinear in double of a 29 x 19 warp of im by m, against f (0 mean, scale 1):
 * neighbours outside black, or with edge, the position clamped into the pixel centres first
 * (the edge repeated). Returns how many destination pixels read from outside the photo. */
static int check_textbook_warp(const mien_image *im, const float m[6], int edge, const float *f) {
    int outside = 0;
    for (int y = 0; y < 19; y++)
        for (int x = 0; x < 29; x++) {
            double sx = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2] - 0.5;
            double sy = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5] - 0.5;
            outside += sx < 0 || sy < 0 || sx > 28 || sy > 18;
            if (edge) {
                sx = sx < 0 ? 0 : sx > 28 ? 28 : sx;
                sy = sy < 0 ? 0 : sy > 18 ? 18 : sy;
            }
            double x0 = floor(sx), y0 = floor(sy), ax = sx - x0, ay = sy - y0;
            for (int k = 0; k < 3; k++) {
                double v[2][2];
                for (int j = 0; j < 2; j++)
                    for (int i = 0; i < 2; i++) {
                        int xi = (int)x0 + i, yj = (int)y0 + j;
                        v[j][i] = xi >= 0 && yj >= 0 && xi < 29 && yj < 19 ? px(im, xi, yj)[k] : 0;
                    }
                double top = v[0][0] + ax * (v[0][1] - v[0][0]), bot = v[1][0] + ax * (v[1][1] - v[1][0]);
                double want = top + ay * (bot - top), got = f[(y * 29 + x) * 3 + k];
                ck_assert_msg(fabs(got - want) < 1e-3, "%s(%d, %d, %d): %f, textbook %f", edge ? "edge " : "",
                              x, y, k, got, want);
            }
        }
    return outside;
}

START_TEST(warp_identity_and_shift) {
    mien_image im = pattern(29, 19), out;
    ck_assert_int_eq(img_alloc(&out, 29, 19, NULL), MIEN_OK);
    const float ident[6] = {1, 0, 0, 0, 1, 0};
    img_warp_affine(&im, ident, &out);
    ck_assert_mem_eq(out.rgb, im.rgb, (size_t)29 * 19 * 3);
    /* Sampling one pixel to the right shifts the picture left; the last column has no source
     * and is black. */
    const float shift[6] = {1, 0, 1, 0, 1, 0};
    img_warp_affine(&im, shift, &out);
    for (int y = 0; y < 19; y++) {
        for (int x = 0; x < 28; x++) ck_assert_mem_eq(px(&out, x, y), px(&im, x + 1, y), 3);
        assert_px_near(&out, 28, y, 0, 0, 0, 0);
    }
    /* Down by one row. */
    const float down[6] = {1, 0, 0, 0, 1, -1};
    img_warp_affine(&im, down, &out);
    for (int x = 0; x < 29; x++) assert_px_near(&out, x, 0, 0, 0, 0, 0);
    ck_assert_mem_eq(px(&out, 0, 1), px(&im, 0, 0), (size_t)29 * 18 * 3);
    /* Half a pixel: the border pixel blends half with black. */
    const float half[6] = {1, 0, -0.5f, 0, 1, 0};
    img_warp_affine(&im, half, &out);
    for (int y = 0; y < 19; y++) {
        int v = px(&im, 0, y)[1];
        ck_assert_int_le(abs(px(&out, 0, y)[1] - v / 2), 1);
        int m = (px(&im, 4, y)[0] + px(&im, 5, y)[0]);
        ck_assert_int_le(abs(2 * px(&out, 5, y)[0] - m), 2);
    }
    /* NaN and far-away maps give black. */
    const float nanm[6] = {NAN, 0, 0, 0, 1, 0};
    img_warp_affine(&im, nanm, &out);
    for (size_t i = 0; i < (size_t)29 * 19 * 3; i++) ck_assert_int_eq(out.rgb[i], 0);
    const float far[6] = {1, 0, 1e30f, 0, 1, -1e30f};
    img_warp_affine(&im, far, &out);
    for (size_t i = 0; i < (size_t)29 * 19 * 3; i++) ck_assert_int_eq(out.rgb[i], 0);
    const float inf[6] = {INFINITY, 0, 0, 0, -INFINITY, 0};
    img_warp_affine(&im, inf, &out);

    /* The float variant agrees with the uint8 one. */
    const float rot[6] = {0.8f, -0.3f, 5.2f, 0.35f, 0.9f, -2.7f};
    img_warp_affine(&im, rot, &out);
    float *f = malloc(sizeof(float) * 29 * 19 * 3);
    img_warp_affine_f32(&im, rot, 29, 19, 127.5f, 1 / 128.f, f);
    for (size_t i = 0; i < (size_t)29 * 19 * 3; i++) {
        float back = f[i] * 128.f + 127.5f;
        ck_assert_msg(fabsf(back - out.rgb[i]) <= 0.51f, "%zu: %f vs %d", i, back, out.rgb[i]);
    }
    /* Against a textbook bilinear in double (neighbours outside black), inside and across
     * the borders: the vectorised inside path and the checked one. */
    img_warp_affine_f32(&im, rot, 29, 19, 0.f, 1.f, f);
    check_textbook_warp(&im, rot, 0, f);
    /* Outside is black: (0 - mean) * scale. */
    img_warp_affine_f32(&im, far, 29, 19, 127.5f, 1 / 128.f, f);
    ck_assert_float_eq_tol(f[0], -127.5f / 128.f, 1e-6);
    /* The edge variant: the same textbook bilinear at the position clamped into the pixel
     * centres (the edge pixels repeated outside), a map that leaves the photo on every side. */
    const float wide[6] = {1.6f, -0.4f, -9.f, 0.5f, 1.5f, -7.f};
    img_warp_affine_f32_edge(&im, wide, 29, 19, 0.f, 1.f, f);
    ck_assert_int_gt(check_textbook_warp(&im, wide, 1, f), 100);
    /* Inside the photo both variants are the same to the bit. */
    float *g = malloc(sizeof(float) * 29 * 19 * 3);
    const float inner[6] = {0.5f, 0.1f, 3.f, -0.1f, 0.5f, 4.f};
    img_warp_affine_f32(&im, inner, 29, 19, 127.5f, 1 / 128.f, f);
    img_warp_affine_f32_edge(&im, inner, 29, 19, 127.5f, 1 / 128.f, g);
    ck_assert_mem_eq(f, g, sizeof(float) * 29 * 19 * 3);
    /* Far away: the nearest corner; NaN: black. */
    img_warp_affine_f32_edge(&im, far, 29, 19, 0.f, 1.f, f);
    ck_assert_float_eq_tol(f[0], px(&im, 28, 0)[0], 1e-4);
    img_warp_affine_f32_edge(&im, nanm, 29, 19, 0.f, 1.f, f);
    for (size_t i = 0; i < (size_t)29 * 19 * 3; i++) ck_assert_float_eq(f[i], 0.f);
    free(g);
    free(f);
    mien_image_free(&out);
    mien_image_free(&im);
}
END_TEST

START_TEST(crop_and_flip) {
    mien_image im = pattern(20, 10), c;
    mien_err e = {0};
    ck_assert_int_eq(img_crop(&im, 15, -5, 10, 10, &c, &e), MIEN_OK);
    ck_assert_int_eq(c.width, 5);
    ck_assert_int_eq(c.height, 5);
    ck_assert_mem_eq(px(&c, 0, 0), px(&im, 15, 0), 15);
    mien_image_free(&c);
    ck_assert_int_eq(img_crop(&im, 30, 0, 5, 5, &c, &e), MIEN_EINVAL);
    ck_assert_int_eq(img_crop(&im, 2147483000, 2147483000, 2147483000, 5, &c, &e), MIEN_EINVAL);
    ck_assert_int_eq(img_crop(&im, -2147483647, 0, 2147483647, 5, &c, &e), MIEN_EINVAL);
    mien_image f = pattern(20, 10);
    img_flip_h(&f);
    for (int x = 0; x < 20; x++) ck_assert_mem_eq(px(&f, x, 3), px(&im, 19 - x, 3), 3);
    mien_image_free(&f);
    mien_image_free(&im);
}
END_TEST

/* ==== Drawing ==== */

static int count_color(const mien_image *im, img_color c) {
    int n = 0;
    for (int i = 0; i < im->width * im->height; i++)
        n += im->rgb[3 * i] == c.r && im->rgb[3 * i + 1] == c.g && im->rgb[3 * i + 2] == c.b;
    return n;
}

START_TEST(draw_shapes) {
    mien_image im;
    ck_assert_int_eq(img_alloc(&im, 40, 30, NULL), MIEN_OK);
    img_fill(&im, WHITE);
    img_draw_rect(&im, 2, 3, 10, 8, 1, RED);
    assert_px_near(&im, 2, 3, 255, 0, 0, 0);
    assert_px_near(&im, 11, 10, 255, 0, 0, 0);
    assert_px_near(&im, 6, 6, 255, 255, 255, 0);
    ck_assert_int_eq(count_color(&im, RED), 2 * 10 + 2 * 6);

    img_fill(&im, WHITE);
    img_draw_line(&im, 0.5f, 5.5f, 9.5f, 5.5f, 1, BLUE);
    ck_assert_int_eq(count_color(&im, BLUE), 10);
    for (int x = 0; x < 10; x++) assert_px_near(&im, x, 5, 0, 0, 255, 0);
    img_fill(&im, WHITE);
    img_draw_line(&im, 0, 0, 39.9f, 29.9f, 3, BLUE);
    ck_assert_int_ge(count_color(&im, BLUE), 3 * 39);
    img_fill(&im, WHITE);
    img_draw_point(&im, 10, 10, 2, GREEN);
    assert_px_near(&im, 9, 9, 0, 255, 0, 0);
    assert_px_near(&im, 10, 10, 0, 255, 0, 0);
    assert_px_near(&im, 13, 10, 255, 255, 255, 0);
    ck_assert_int_eq(count_color(&im, GREEN), 12);

    /* Anything goes, nothing crashes. */
    const float odd[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3e38f, -0.5f, 39.5f, 1e9f};
    const int nodd = (int)(sizeof odd / sizeof odd[0]);
    for (int a = 0; a < nodd; a++)
        for (int b = 0; b < nodd; b++) {
            img_draw_rect(&im, odd[a], odd[b], odd[b], odd[a], 2, RED);
            img_draw_rect(&im, 35, 25, odd[a], odd[b], 1000000, RED);
            img_draw_line(&im, odd[a], 5, 20, odd[b], 3, BLUE);
            img_draw_line(&im, -1e30f, odd[a], 1e30f, odd[b], 1, BLUE);
            img_draw_point(&im, odd[a], odd[b], 3, GREEN);
            img_draw_point(&im, 20, 15, odd[a], GREEN);
        }
    img_draw_line(&im, -5, -5, -5, -5, 0, RED);
    img_draw_line(&im, 5, 5, 5, 5, -3, RED);
    img_draw_rect(&im, 0, 0, 0, 0, -1, RED);
    mien_image none = {0};
    img_draw_rect(&none, 0, 0, 5, 5, 1, RED);
    img_fill(&none, RED);
    mien_image_free(&im);
}
END_TEST

START_TEST(draw_text) {
    mien_image im;
    ck_assert_int_eq(img_alloc(&im, 100, 40, NULL), MIEN_OK);
    img_fill(&im, WHITE);
    ck_assert_int_eq(img_text_width("Hi!", 2), 36);
    ck_assert_int_eq(img_text_height(3), 24);
    ck_assert_int_eq(img_text_width(NULL, 1), 0);
    ck_assert_int_eq(img_draw_text(&im, 4, 4, "Hi!", 2, BLUE, 0, WHITE), 36);
    int n = count_color(&im, BLUE);
    ck_assert_int_gt(n, 20);
    /* Every glyph pixel is inside the text box. */
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 100; x++)
            if (px(&im, x, y)[2] == 255 && px(&im, x, y)[0] == 0)
                ck_assert(x >= 4 && x < 40 && y >= 4 && y < 20);
    /* Background fills the box; bytes outside ASCII print as '?'. */
    img_fill(&im, WHITE);
    img_draw_text(&im, 0, 0, "\x01\xff", 1, BLUE, 1, RED);
    ck_assert_int_eq(count_color(&im, RED) + count_color(&im, BLUE), 12 * 8);
    mien_image q;
    ck_assert_int_eq(img_alloc(&q, 100, 40, NULL), MIEN_OK);
    img_fill(&q, WHITE);
    img_draw_text(&q, 0, 0, "??", 1, BLUE, 1, RED);
    ck_assert_mem_eq(q.rgb, im.rgb, (size_t)100 * 40 * 3);
    mien_image_free(&q);
    /* Clipped anywhere. */
    const int pos[] = {-1000000, -7, 0, 95, 39, 1000000, -2147483647, 2147483647};
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 8; b++) {
            img_draw_text(&im, pos[a], pos[b], "clip me ~", 3, BLUE, 1, RED);
            img_draw_text(&im, pos[a], pos[b], "x", 0, BLUE, 0, RED);
        }
    img_draw_text(&im, 0, 0, "", 1, BLUE, 1, RED);
    img_draw_text(&im, 0, 0, NULL, 1, BLUE, 1, RED);
    mien_image_free(&im);
}
END_TEST

/* ==== Encoders and files ==== */

START_TEST(write_and_load_files) {
    mien_image im = pattern(48, 32), out;
    mien_err e = {0};
    const char *pp = tu_temp_file(".png", "", 0), *jp = tu_temp_file(".jpg", "", 0);
    ck_assert_int_eq(img_write_png(pp, &im, &e), MIEN_OK);
    ck_assert_int_eq(img_load(pp, NULL, &out, NULL, NULL, &e), MIEN_OK);
    ck_assert_mem_eq(out.rgb, im.rgb, (size_t)48 * 32 * 3);
    mien_image_free(&out);
    ck_assert_int_eq(img_write_jpeg(jp, &im, 92, &e), MIEN_OK);
    ck_assert_int_eq(img_load(jp, NULL, &out, NULL, NULL, &e), MIEN_OK);
    ck_assert(mean_abs_diff(&out, &im) < 5);
    mien_image_free(&out);
    /* Quality is clamped, not refused. */
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(img_encode_jpeg(&im, 0, &b, &n, &e), MIEN_OK);
    free(b);
    ck_assert_int_eq(img_encode_jpeg(&im, 1000, &b, &n, &e), MIEN_OK);
    free(b);
    /* A big image grows the JPEG buffer past its first chunk. */
    mien_image big = pattern(800, 600);
    for (size_t i = 0; i < (size_t)800 * 600 * 3; i++) big.rgb[i] ^= (uint8_t)(i * 2654435761u >> 24);
    ck_assert_int_eq(img_encode_jpeg(&big, 100, &b, &n, &e), MIEN_OK);
    ck_assert_uint_gt(n, 65536 * 2);
    ck_assert_int_eq(decode(b, n, &out, &e), MIEN_OK);
    ck_assert_int_eq(out.width, 800);
    free(b);
    mien_image_free(&out);
    mien_image_free(&big);
    ck_assert_int_eq(img_write_png("/nonexistent/dir/x.png", &im, &e), MIEN_EIO);
    ck_assert(strstr(e.msg, "/nonexistent/dir/x.png") != NULL);
    mien_image empty = {0};
    ck_assert_int_eq(img_encode_png(&empty, &b, &n, &e), MIEN_EINVAL);
    remove(pp);
    remove(jp);
    mien_image_free(&im);
}
END_TEST

/* ==== Real photos ==== */

static int try_load(const char *path, const img_decode_opts *o, mien_image *out, int *fw,
                    int *fh) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1; /* not fetched here: skip */
    fclose(f);
    mien_err e = {0};
    int rc = img_load(path, o, out, fw, fh, &e);
    ck_assert_msg(rc == MIEN_OK, "%s", e.msg);
    return rc;
}

START_TEST(real_photos) {
    int tried = 0;
    for (int i = 1; i <= 6; i++) {
        const char *p = tu_path("%s/demo/sample%d.jpg", tu_models_dir(), i);
        mien_image im;
        int fw, fh;
        img_decode_opts o = {.scale_denom = 8};
        if (try_load(p, &o, &im, &fw, &fh) < 0) continue;
        tried++;
        ck_assert(fw >= 200 && fw <= 10000 && fh >= 200 && fh <= 10000);
        ck_assert_int_eq(im.width, (fw + 7) / 8);
        ck_assert_int_eq(im.height, (fh + 7) / 8);
        mien_image_free(&im);
        if (i <= 2) { /* full size for two of them */
            ck_assert_int_eq(try_load(p, NULL, &im, &fw, &fh), MIEN_OK);
            ck_assert_int_eq(im.width, fw);
            mien_image small;
            ck_assert_int_eq(img_resize(&im, 256, 256 * im.height / im.width, &small, NULL),
                             MIEN_OK);
            mien_image_free(&small);
            mien_image_free(&im);
        }
    }
    const char *pngs[] = {"people/examples/alex-lacamoire.png",
                          "people/tests/test_images/32bit.png"};
    const int sizes[][2] = {{424, 394}, {626, 1200}};
    for (int i = 0; i < 2; i++) {
        mien_image im;
        int fw, fh;
        if (try_load(tu_path("%s/%s", tu_data_dir(), pngs[i]), NULL, &im, &fw, &fh) < 0)
            continue;
        tried++;
        ck_assert_int_eq(im.width, sizes[i][0]);
        ck_assert_int_eq(im.height, sizes[i][1]);
        mien_image_free(&im);
    }
    mien_image im;
    if (try_load(tu_path("%s/people/examples/obama-240p.jpg", tu_data_dir()), NULL, &im, NULL,
                 NULL) == 0) {
        ck_assert(im.width > 100 && im.height == 240);
        mien_image_free(&im);
        tried++;
    }
    if (!tried) fprintf(stderr, "image: no real photos found, smoke test skipped\n");
}
END_TEST

Suite *suite_image(void) {
    Suite *s = suite_create("image");
    TCase *t = tcase_create("image");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, png_roundtrip);
    tcase_add_test(t, png_variants);
    tcase_add_test(t, webp_decode);
    tcase_add_test(t, jpeg_roundtrip_and_scaling);
    tcase_add_test(t, jpeg_truncated);
    tcase_add_test(t, jpeg_cmyk_and_progressive);
    tcase_add_test(t, jpeg_exif_orientation);
    tcase_add_test(t, exif_parser_bounds);
    tcase_add_test(t, orientation_all_eight);
    tcase_add_test(t, not_an_image);
    tcase_add_test(t, png_huge_header);
    tcase_add_test(t, mini_fuzz);
    tcase_add_test(t, resize_constant);
    tcase_add_test(t, resize_gradient);
    tcase_add_test(t, warp_identity_and_shift);
    tcase_add_test(t, crop_and_flip);
    tcase_add_test(t, draw_shapes);
    tcase_add_test(t, draw_text);
    tcase_add_test(t, write_and_load_files);
    tcase_add_test(t, real_photos);
    suite_add_tcase(s, t);
    return s;
}
