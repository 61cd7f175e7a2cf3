/* Encode PNG (libpng) and JPEG (libjpeg-turbo) into a malloc'd buffer or a file.
 *
 * Both encoders write into a growable memory buffer of their own (not jpeg_mem_dest, whose
 * buffer would leak when an error jumps out mid-stream); the file variants encode to memory
 * and write the result in one go. As in decode.c, the function that calls setjmp keeps its
 * changing state in a struct owned by its caller. */
#include "image/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

/* ==== Growable output buffer ==== */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

/* Make room for `more` bytes; 0 when out of memory. */
static int membuf_reserve(membuf *b, size_t more) {
    size_t need;
    if (!mien_add_size(b->len, more, &need)) return 0;
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < need) {
        if (!mien_mul_size(cap, 2, &cap)) return 0;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

static int valid_image(const mien_image *img, mien_err *e) {
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mien_err_set(e, MIEN_EINVAL, "cannot encode an empty image");
    if (img->width > MIEN_MAX_IMAGE_SIDE || img->height > MIEN_MAX_IMAGE_SIDE)
        return mien_err_set(e, MIEN_ETOOBIG, "cannot encode a %dx%d image", img->width,
                            img->height);
    return MIEN_OK;
}

static int write_whole_file(const char *path, const uint8_t *p, size_t n, mien_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t put = fwrite(p, 1, n, f);
    int err = put != n ? errno : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (put != n || err) {
        remove(path);
        return mien_err_set(e, MIEN_EIO, "cannot write %s: %s", path, strerror(err ? err : EIO));
    }
    return MIEN_OK;
}

/* ==== PNG ==== */

typedef struct png_enc {
    membuf out;
    char msg[256];
    int oom;
} png_enc;

static void png_enc_error(png_structp png, png_const_charp msg) {
    png_enc *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_enc_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_enc_write(png_structp png, png_bytep data, size_t n) {
    png_enc *c = png_get_io_ptr(png);
    if (!membuf_reserve(&c->out, n)) {
        c->oom = 1;
        png_error(png, "out of memory");
    }
    memcpy(c->out.p + c->out.len, data, n);
    c->out.len += n;
}

static void png_enc_flush(png_structp png) { (void)png; }

static int png_encode_run(png_enc *c, png_structp png, png_infop info, const mien_image *img,
                          mien_err *e) {
    if (setjmp(png_jmpbuf(png)))
        return mien_err_set(e, c->oom ? MIEN_ENOMEM : MIEN_EINTERNAL, "PNG encoder: %s",
                            c->msg);
    png_set_write_fn(png, c, png_enc_write, png_enc_flush);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int r = 0; r < img->height; r++)
        png_write_row(png, img->rgb + (size_t)r * img->width * 3);
    png_write_end(png, NULL);
    return MIEN_OK;
}

int img_encode_png(const mien_image *img, uint8_t **out, size_t *out_len, mien_err *e) {
    *out = NULL;
    *out_len = 0;
    int rc = valid_image(img, e);
    if (rc) return rc;
    png_enc c;
    memset(&c, 0, sizeof c);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_enc_error,
                                              png_enc_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory starting the PNG encoder");
    }
    rc = png_encode_run(&c, png, info, img, e);
    png_destroy_write_struct(&png, &info);
    if (rc) {
        free(c.out.p);
        return rc;
    }
    *out = c.out.p;
    *out_len = c.out.len;
    return MIEN_OK;
}

int img_write_png(const char *path, const mien_image *img, mien_err *e) {
    uint8_t *buf;
    size_t n;
    int rc = img_encode_png(img, &buf, &n, e);
    if (rc) return mien_err_prefix(e, "%s", path);
    rc = write_whole_file(path, buf, n, e);
    free(buf);
    return rc;
}

/* ==== JPEG ==== */

enum { JPEG_CHUNK = 65536 };

typedef struct jpeg_enc {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_destination_mgr dest;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    membuf out;
} jpeg_enc;

static void jpeg_enc_error(j_common_ptr ci) {
    jpeg_enc *c = ci->client_data;
    ci->err->format_message(ci, c->msg);
    longjmp(c->jb, 1);
}

static void jpeg_enc_message(j_common_ptr ci, int level) {
    (void)ci;
    (void)level;
}

/* Destination manager: libjpeg fills [next_output_byte, +free_in_buffer), which is always
 * the unused tail of out; out.len counts the bytes handed over so far. */
static void dest_grow(j_compress_ptr ci) {
    jpeg_enc *c = ci->client_data;
    if (!membuf_reserve(&c->out, JPEG_CHUNK)) ERREXIT1(ci, JERR_OUT_OF_MEMORY, 0);
    c->dest.next_output_byte = c->out.p + c->out.len;
    c->dest.free_in_buffer = c->out.cap - c->out.len;
}

static void dest_init(j_compress_ptr ci) { dest_grow(ci); }

static boolean dest_empty(j_compress_ptr ci) {
    jpeg_enc *c = ci->client_data;
    /* libjpeg calls this only with the whole buffer full. */
    c->out.len = c->out.cap;
    dest_grow(ci);
    return TRUE;
}

static void dest_term(j_compress_ptr ci) {
    jpeg_enc *c = ci->client_data;
    c->out.len = c->out.cap - c->dest.free_in_buffer;
}

static int jpeg_encode_run(jpeg_enc *c, const mien_image *img, int quality, mien_err *e) {
    j_compress_ptr ci = &c->cinfo;
    if (setjmp(c->jb)) {
        int nomem = c->jerr.msg_code == JERR_OUT_OF_MEMORY;
        jpeg_destroy_compress(ci);
        return mien_err_set(e, nomem ? MIEN_ENOMEM : MIEN_EINTERNAL, "JPEG encoder: %s",
                            c->msg);
    }
    ci->err = jpeg_std_error(&c->jerr);
    c->jerr.error_exit = jpeg_enc_error;
    c->jerr.emit_message = jpeg_enc_message;
    jpeg_create_compress(ci);
    ci->client_data = c;
    c->dest.init_destination = dest_init;
    c->dest.empty_output_buffer = dest_empty;
    c->dest.term_destination = dest_term;
    ci->dest = &c->dest;
    ci->image_width = (JDIMENSION)img->width;
    ci->image_height = (JDIMENSION)img->height;
    ci->input_components = 3;
    ci->in_color_space = JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality < 1 ? 1 : quality > 100 ? 100 : quality, TRUE);
    jpeg_start_compress(ci, TRUE);
    while (ci->next_scanline < ci->image_height) {
        JSAMPROW row = img->rgb + (size_t)ci->next_scanline * img->width * 3;
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    jpeg_destroy_compress(ci);
    return MIEN_OK;
}

int img_encode_jpeg(const mien_image *img, int quality, uint8_t **out, size_t *out_len,
                    mien_err *e) {
    *out = NULL;
    *out_len = 0;
    int rc = valid_image(img, e);
    if (rc) return rc;
    jpeg_enc c;
    memset(&c, 0, sizeof c);
    rc = jpeg_encode_run(&c, img, quality, e);
    if (rc) {
        free(c.out.p);
        return rc;
    }
    *out = c.out.p;
    *out_len = c.out.len;
    return MIEN_OK;
}

int img_write_jpeg(const char *path, const mien_image *img, int quality, mien_err *e) {
    uint8_t *buf;
    size_t n;
    int rc = img_encode_jpeg(img, quality, &buf, &n, e);
    if (rc) return mien_err_prefix(e, "%s", path);
    rc = write_whole_file(path, buf, n, e);
    free(buf);
    return rc;
}
