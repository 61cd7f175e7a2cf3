/* Decode JPEG (libjpeg-turbo), PNG (libpng) and WebP (libwebp) from memory into packed RGB,
 * and probe their headers.
 *
 * Every decoder refuses a side above MIEN_MAX_IMAGE_SIDE after reading the header and before
 * allocating pixels, and none of them prints: libjpeg and libpng report through callbacks
 * installed here, which keep the message for the mien_err and jump back with longjmp.
 *
 * setjmp discipline: the function that calls setjmp keeps every value it changes after the
 * setjmp in a context struct owned by its caller, so nothing it needs after a longjmp lives
 * in one of its own (possibly clobbered) locals. */
#include "image/image.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#define IMG_MAX_FILE_BYTES ((size_t)256 << 20)

typedef enum { FMT_UNKNOWN, FMT_JPEG, FMT_PNG, FMT_WEBP } img_format;

static img_format detect_format(const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return FMT_JPEG;
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return FMT_PNG;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) return FMT_WEBP;
    return FMT_UNKNOWN;
}

/* The one place that decides whether a header's size is acceptable. */
static int check_size(const char *fmt, long long w, long long h, mien_err *e) {
    if (w <= 0 || h <= 0)
        return mien_err_set(e, MIEN_EFORMAT, "%s header gives an invalid size %lldx%lld", fmt, w,
                            h);
    if (w > MIEN_MAX_IMAGE_SIDE || h > MIEN_MAX_IMAGE_SIDE)
        return mien_err_set(e, MIEN_ETOOBIG,
                            "%s image is %lldx%lld pixels; the limit is %d pixels per side", fmt,
                            w, h, MIEN_MAX_IMAGE_SIDE);
    return MIEN_OK;
}

/* x / 255 rounded to nearest, exact for 0 <= x <= 65535 (no division per pixel). */
static inline unsigned div255(unsigned x) {
    x += 128;
    return (x + (x >> 8)) >> 8;
}

/* RGBA -> RGB over a white background, in place: pixel i is read whole before its three
 * bytes are written at 3i, which never reaches the unread bytes at 4(i+1). */
static void composite_over_white(uint8_t *p, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        unsigned r = p[4 * i], g = p[4 * i + 1], b = p[4 * i + 2], a = p[4 * i + 3];
        unsigned white = 255 * (255 - a);
        p[3 * i] = (uint8_t)div255(r * a + white);
        p[3 * i + 1] = (uint8_t)div255(g * a + white);
        p[3 * i + 2] = (uint8_t)div255(b * a + white);
    }
}

/* Give back the tail of a buffer that shrank from RGBA to RGB; keep the old one if realloc
 * fails (it is still valid and large enough). */
static uint8_t *shrink(uint8_t *p, size_t n) {
    uint8_t *q = realloc(p, n);
    return q ? q : p;
}

/* ==== JPEG ==== */

typedef struct jpeg_ctx {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int eof_fatal;       /* 1 while pixel rows are still owed: running out of data is an error */
    uint8_t *pixels;     /* (out_h, out_w, 3) the decoded image, or NULL */
    uint8_t *cmyk_row;   /* (out_w, 4) scratch row for CMYK/YCCK files */
    int orientation;     /* EXIF orientation, 1..8 */
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr ci) {
    jpeg_ctx *c = ci->client_data;
    ci->err->format_message(ci, c->msg);
    longjmp(c->jb, 1);
}

/* libjpeg reports recoverable damage as warnings (level -1) and goes on; most are harmless
 * ("extraneous bytes before marker"), but running out of data makes it pad the rest with a
 * fake EOI marker and return a half-grey image. That one becomes an error. */
static void jpeg_on_message(j_common_ptr ci, int level) {
    if (level >= 0) return; /* trace messages */
    jpeg_ctx *c = ci->client_data;
    ci->err->num_warnings++;
    if (ci->err->msg_code == JWRN_JPEG_EOF && c->eof_fatal) {
        snprintf(c->msg, sizeof c->msg, "truncated file (premature end of JPEG data)");
        longjmp(c->jb, 1);
    }
}

static void jpeg_on_output(j_common_ptr ci) { (void)ci; }

static void jpeg_setup(jpeg_ctx *c, const uint8_t *data, size_t len, int want_exif) {
    c->cinfo.err = jpeg_std_error(&c->jerr);
    c->jerr.error_exit = jpeg_on_error;
    c->jerr.emit_message = jpeg_on_message;
    c->jerr.output_message = jpeg_on_output;
    jpeg_create_decompress(&c->cinfo);
    c->cinfo.client_data = c;
    jpeg_mem_src(&c->cinfo, data, (unsigned long)len);
    if (want_exif) jpeg_save_markers(&c->cinfo, JPEG_APP0 + 1, 0xFFFF);
}

static int jpeg_find_orientation(j_decompress_ptr ci) {
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1) continue;
        int o = img_exif_orientation(m->data, m->data_length);
        if (o) return o;
    }
    return 1;
}

/* Inverted CMYK as Photoshop writes it (Adobe marker): stored values are 255 - ink, so
 * R = C * K / 255. Plain CMYK stores ink, so R = (255 - C) * (255 - K) / 255. */
static void cmyk_to_rgb(const uint8_t *s, uint8_t *d, int w, int inverted) {
    for (int x = 0; x < w; x++, s += 4, d += 3) {
        unsigned c = s[0], m = s[1], y = s[2], k = s[3];
        if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        d[0] = (uint8_t)div255(c * k);
        d[1] = (uint8_t)div255(m * k);
        d[2] = (uint8_t)div255(y * k);
    }
}

static int jpeg_decode_run(jpeg_ctx *c, const uint8_t *data, size_t len, int denom,
                           int no_exif, mien_image *out, int *full_w, int *full_h, mien_err *e) {
    j_decompress_ptr ci = &c->cinfo;
    if (setjmp(c->jb)) {
        jpeg_destroy_decompress(ci);
        free(c->pixels);
        free(c->cmyk_row);
        return mien_err_set(e, MIEN_EFORMAT, "corrupt JPEG: %s", c->msg);
    }
    c->eof_fatal = 1; /* a header cut short is as broken as pixels cut short */
    jpeg_setup(c, data, len, !no_exif);
    jpeg_read_header(ci, TRUE);
    c->orientation = no_exif ? 1 : jpeg_find_orientation(ci);
    int rc = check_size("JPEG", ci->image_width, ci->image_height, e);
    if (rc) {
        jpeg_destroy_decompress(ci);
        return rc;
    }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    ci->scale_num = 1;
    ci->scale_denom = (unsigned)denom;
    jpeg_calc_output_dimensions(ci);
    const int w = (int)ci->output_width, h = (int)ci->output_height;
    size_t n;
    if (w <= 0 || h <= 0 || !mien_mul3_size((size_t)w, (size_t)h, 3, &n)) {
        jpeg_destroy_decompress(ci);
        return mien_err_set(e, MIEN_EFORMAT, "corrupt JPEG: bad output size %dx%d", w, h);
    }
    c->pixels = malloc(n);
    if (cmyk) c->cmyk_row = malloc((size_t)w * 4);
    if (!c->pixels || (cmyk && !c->cmyk_row)) {
        jpeg_destroy_decompress(ci);
        free(c->pixels);
        free(c->cmyk_row);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for a %dx%d JPEG", w, h);
    }
    jpeg_start_decompress(ci);
    if ((int)ci->output_components != (cmyk ? 4 : 3)) {
        snprintf(c->msg, sizeof c->msg, "unexpected %d output components",
                 ci->output_components);
        longjmp(c->jb, 1);
    }
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = c->pixels + (size_t)ci->output_scanline * w * 3;
        JSAMPROW row = cmyk ? c->cmyk_row : dst;
        if (jpeg_read_scanlines(ci, &row, 1) != 1) {
            snprintf(c->msg, sizeof c->msg, "decoder returned no rows");
            longjmp(c->jb, 1);
        }
        if (cmyk) cmyk_to_rgb(c->cmyk_row, dst, w, ci->saw_Adobe_marker);
    }
    /* All rows are in. Skip the trailer rather than insist on a clean EOI: jpeg_abort
     * instead of jpeg_finish_decompress. */
    c->eof_fatal = 0;
    int upright_swap = c->orientation >= 5;
    int fw = (int)ci->image_width, fh = (int)ci->image_height;
    jpeg_abort_decompress(ci);
    jpeg_destroy_decompress(ci);
    free(c->cmyk_row);
    out->width = w;
    out->height = h;
    out->rgb = c->pixels;
    if (full_w) *full_w = upright_swap ? fh : fw;
    if (full_h) *full_h = upright_swap ? fw : fh;
    return MIEN_OK;
}

static int decode_jpeg(const uint8_t *data, size_t len, const img_decode_opts *o,
                       mien_image *out, int *full_w, int *full_h, mien_err *e) {
    int denom = o ? o->scale_denom : 1;
    if (denom == 0) denom = 1;
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8)
        return mien_err_set(e, MIEN_EINVAL, "JPEG scale_denom must be 1, 2, 4 or 8, not %d",
                            denom);
    jpeg_ctx c;
    memset(&c, 0, sizeof c);
    int rc = jpeg_decode_run(&c, data, len, denom, o && o->no_exif, out, full_w, full_h, e);
    if (rc) return rc;
    rc = img_apply_orientation(out, c.orientation, e);
    if (rc) {
        free(out->rgb);
        out->rgb = NULL;
        out->width = out->height = 0;
    }
    return rc;
}

static int jpeg_probe_run(jpeg_ctx *c, const uint8_t *data, size_t len, int *w, int *h,
                          mien_err *e) {
    if (setjmp(c->jb)) {
        jpeg_destroy_decompress(&c->cinfo);
        return mien_err_set(e, MIEN_EFORMAT, "corrupt JPEG: %s", c->msg);
    }
    c->eof_fatal = 1;
    jpeg_setup(c, data, len, 1);
    jpeg_read_header(&c->cinfo, TRUE);
    int o = jpeg_find_orientation(&c->cinfo);
    long long iw = c->cinfo.image_width, ih = c->cinfo.image_height;
    jpeg_destroy_decompress(&c->cinfo);
    *w = (int)(o >= 5 ? ih : iw);
    *h = (int)(o >= 5 ? iw : ih);
    return check_size("JPEG", iw, ih, e);
}

/* ==== PNG ==== */

typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
    uint8_t *pixels;   /* (h, w, channels) */
    png_bytep *rows;   /* (h,) pointers into pixels */
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, "known incorrect sRGB profile", ...) are dropped. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep dst, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated file (premature end of PNG data)");
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

/* Width and height straight from IHDR, which the PNG specification requires to be the first
 * chunk: signature (8) | length (4) | "IHDR" | width (4) | height (4), big endian. Read
 * by hand so an absurd size is refused before libpng allocates anything for it. */
static int png_ihdr_size(const uint8_t *d, size_t n, long long *w, long long *h, mien_err *e) {
    if (n < 24 || memcmp(d + 12, "IHDR", 4) != 0)
        return mien_err_set(e, MIEN_EFORMAT, "corrupt PNG: missing IHDR header");
    *w = (long long)d[16] << 24 | d[17] << 16 | d[18] << 8 | d[19];
    *h = (long long)d[20] << 24 | d[21] << 16 | d[22] << 8 | d[23];
    return check_size("PNG", *w, *h, e);
}

static int png_decode_run(png_ctx *c, png_structp png, png_infop info, mien_image *out,
                          mien_err *e) {
    if (setjmp(png_jmpbuf(png))) {
        free(c->pixels);
        free(c->rows);
        c->pixels = NULL;
        return mien_err_set(e, MIEN_EFORMAT, "corrupt PNG: %s", c->msg);
    }
    png_set_read_fn(png, c, png_on_read);
    png_set_user_limits(png, MIEN_MAX_IMAGE_SIDE, MIEN_MAX_IMAGE_SIDE);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int rc = check_size("PNG", w, h, e);
    if (rc) return rc;
    const int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    /* Everything becomes 8-bit RGB or RGBA. */
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_scale_16(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int ch = png_get_channels(png, info);
    if ((ch != 3 && ch != 4) || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * ch)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "PNG colour type %d, depth %d not supported",
                            type, depth);
    size_t n, nrows;
    if (!mien_mul3_size(w, h, (size_t)ch, &n) || !mien_mul_size(h, sizeof(png_bytep), &nrows))
        return mien_err_set(e, MIEN_ETOOBIG, "PNG %ux%u: size overflows", (unsigned)w,
                            (unsigned)h);
    c->pixels = malloc(n);
    c->rows = malloc(nrows);
    if (!c->pixels || !c->rows) {
        free(c->pixels);
        free(c->rows);
        c->pixels = NULL;
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for a %ux%u PNG", (unsigned)w,
                            (unsigned)h);
    }
    for (png_uint_32 r = 0; r < h; r++) c->rows[r] = c->pixels + (size_t)r * w * ch;
    png_read_image(png, c->rows);
    /* No png_read_end: chunks after the pixels do not matter here. */
    free(c->rows);
    c->rows = NULL;
    if (ch == 4) {
        composite_over_white(c->pixels, (size_t)w * h);
        c->pixels = shrink(c->pixels, (size_t)w * h * 3);
    }
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = c->pixels;
    return MIEN_OK;
}

static int decode_png(const uint8_t *data, size_t len, mien_image *out, int *full_w,
                      int *full_h, mien_err *e) {
    long long w, h;
    int rc = png_ihdr_size(data, len, &w, &h, e);
    if (rc) return rc;
    png_ctx c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory starting the PNG decoder");
    }
    rc = png_decode_run(&c, png, info, out, e);
    png_destroy_read_struct(&png, &info, NULL);
    if (rc) return rc;
    if (full_w) *full_w = out->width;
    if (full_h) *full_h = out->height;
    return MIEN_OK;
}

/* ==== WebP ==== */

static int webp_features(const uint8_t *data, size_t len, WebPBitstreamFeatures *f,
                         mien_err *e) {
    VP8StatusCode st = WebPGetFeatures(data, len, f);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA)
        return mien_err_set(e, MIEN_EFORMAT, "corrupt WebP: truncated header");
    if (st != VP8_STATUS_OK)
        return mien_err_set(e, MIEN_EFORMAT, "corrupt WebP: bad header (status %d)", (int)st);
    return check_size("WebP", f->width, f->height, e);
}

static int decode_webp(const uint8_t *data, size_t len, mien_image *out, int *full_w,
                       int *full_h, mien_err *e) {
    WebPBitstreamFeatures f;
    int rc = webp_features(data, len, &f, e);
    if (rc) return rc;
    if (f.has_animation)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "animated WebP is not supported");
    const int ch = f.has_alpha ? 4 : 3;
    size_t n;
    if (!mien_mul3_size((size_t)f.width, (size_t)f.height, (size_t)ch, &n))
        return mien_err_set(e, MIEN_ETOOBIG, "WebP %dx%d: size overflows", f.width, f.height);
    uint8_t *p = malloc(n);
    if (!p)
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for a %dx%d WebP", f.width, f.height);
    int stride = f.width * ch;
    uint8_t *ok = ch == 4 ? WebPDecodeRGBAInto(data, len, p, n, stride)
                          : WebPDecodeRGBInto(data, len, p, n, stride);
    if (!ok) {
        free(p);
        return mien_err_set(e, MIEN_EFORMAT, "corrupt WebP: pixel data could not be decoded");
    }
    if (ch == 4) {
        composite_over_white(p, (size_t)f.width * f.height);
        p = shrink(p, (size_t)f.width * f.height * 3);
    }
    out->width = f.width;
    out->height = f.height;
    out->rgb = p;
    if (full_w) *full_w = f.width;
    if (full_h) *full_h = f.height;
    return MIEN_OK;
}

/* ==== Entry points ==== */

int img_decode(const uint8_t *data, size_t len, const img_decode_opts *o, mien_image *out,
               int *full_w, int *full_h, mien_err *e) {
    out->width = out->height = 0;
    out->rgb = NULL;
    if (full_w) *full_w = 0;
    if (full_h) *full_h = 0;
    if (len == 0) return mien_err_set(e, MIEN_EFORMAT, "empty file");
    if (!data) return mien_err_set(e, MIEN_EINVAL, "no data");
    switch (detect_format(data, len)) {
    case FMT_JPEG: return decode_jpeg(data, len, o, out, full_w, full_h, e);
    case FMT_PNG: return decode_png(data, len, out, full_w, full_h, e);
    case FMT_WEBP: return decode_webp(data, len, out, full_w, full_h, e);
    default: return mien_err_set(e, MIEN_EFORMAT, "not a JPEG, PNG or WebP image");
    }
}

int img_load(const char *path, const img_decode_opts *o, mien_image *out, int *full_w,
             int *full_h, mien_err *e) {
    out->width = out->height = 0;
    out->rgb = NULL;
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, IMG_MAX_FILE_BYTES, &data, &len, e);
    if (rc) return rc; /* the message already names the path */
    rc = img_decode(data, len, o, out, full_w, full_h, e);
    free(data);
    if (rc) mien_err_prefix(e, "%s", path);
    return rc;
}

int img_probe(const uint8_t *data, size_t len, int *w, int *h, const char **format,
              mien_err *e) {
    int dw, dh;
    const char *df;
    if (!w) w = &dw;
    if (!h) h = &dh;
    if (!format) format = &df;
    *w = *h = 0;
    *format = NULL;
    if (len == 0) return mien_err_set(e, MIEN_EFORMAT, "empty file");
    if (!data) return mien_err_set(e, MIEN_EINVAL, "no data");
    switch (detect_format(data, len)) {
    case FMT_JPEG: {
        *format = "jpeg";
        jpeg_ctx c;
        memset(&c, 0, sizeof c);
        return jpeg_probe_run(&c, data, len, w, h, e);
    }
    case FMT_PNG: {
        *format = "png";
        long long pw = 0, ph = 0;
        int rc = png_ihdr_size(data, len, &pw, &ph, e);
        /* On ETOOBIG the claimed size is still reported. */
        if (rc == MIEN_OK || rc == MIEN_ETOOBIG) {
            *w = pw > INT_MAX ? INT_MAX : (int)pw;
            *h = ph > INT_MAX ? INT_MAX : (int)ph;
        }
        return rc;
    }
    case FMT_WEBP: {
        *format = "webp";
        WebPBitstreamFeatures f;
        int rc = webp_features(data, len, &f, e);
        if (rc == MIEN_OK || rc == MIEN_ETOOBIG) {
            *w = f.width;
            *h = f.height;
        }
        return rc;
    }
    default: return mien_err_set(e, MIEN_EFORMAT, "not a JPEG, PNG or WebP image");
    }
}
