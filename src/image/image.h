/* Images: decode (JPEG, PNG, WebP), EXIF orientation, resize, affine warp, drawing, encode.
 *
 * All images are mien_image: 8-bit RGB, interleaved, packed rows. Every size computation is
 * overflow-checked and sides are capped at MIEN_MAX_IMAGE_SIDE. Failures return a mien status
 * and a message in the mien_err. */
#ifndef MIEN_IMAGE_H
#define MIEN_IMAGE_H

#include "core/err.h"
#include "mien.h"

#include <stddef.h>
#include <stdint.h>

/* Allocate a w x h image (pixels uninitialised). */
int img_alloc(mien_image *img, int w, int h, mien_err *e);

/* ==== Decode ==== */

typedef struct img_decode_opts {
    /* JPEG only: decode at 1/scale_denom resolution with libjpeg-turbo's DCT scaling
     * (1, 2, 4 or 8; 0 or 1 = full size). Other formats ignore it. The caller learns the
     * actual scale from the decoded size versus *full_w / *full_h. */
    int scale_denom;
    int no_exif;   /* 1: ignore EXIF orientation */
} img_decode_opts;

/* Decode JPEG, PNG (8/16-bit, gray, gray+alpha, palette, RGB, RGBA; alpha composited over
 * white) or WebP from memory, detected by magic bytes. EXIF orientation (JPEG APP1) is
 * applied so the result is upright. full_w/full_h (may be NULL) receive the upright size at
 * full resolution. Refuses sides > MIEN_MAX_IMAGE_SIDE before allocating. */
int img_decode(const uint8_t *data, size_t len, const img_decode_opts *o, mien_image *out,
               int *full_w, int *full_h, mien_err *e);

/* Read a file (capped at 256 MiB) and decode it. */
int img_load(const char *path, const img_decode_opts *o, mien_image *out, int *full_w,
             int *full_h, mien_err *e);

/* Read only the header: format and upright size, without decoding pixels. */
int img_probe(const uint8_t *data, size_t len, int *w, int *h, const char **format,
              mien_err *e);

/* EXIF orientation (1..8) found in the payload of a JPEG APP1 segment (the bytes after the
 * length field: "Exif\0\0" then a TIFF header); 0 when there is none or it is malformed.
 * Every offset is bounds-checked: the payload is hostile input. */
int img_exif_orientation(const uint8_t *app1, size_t len);

/* Turn an image stored with EXIF orientation o (1..8) upright: flips, transposes and
 * rotations as the EXIF specification defines them. Replaces img->rgb; width and height swap
 * for o >= 5. o outside 2..8 leaves the image as it is. */
int img_apply_orientation(mien_image *img, int o, mien_err *e);

/* ==== Geometry ==== */

/* Resize src to dst_w x dst_h into a new image. Bilinear with half-pixel centres (as
 * OpenCV's INTER_LINEAR); when shrinking by more than 2x in a direction it averages the
 * covered source area (as INTER_AREA) so small faces do not alias. */
int img_resize(const mien_image *src, int dst_w, int dst_h, mien_image *dst, mien_err *e);

/* Affine warp with bilinear sampling. m is the 2x3 matrix mapping DESTINATION pixel centres
 * to SOURCE coordinates: sx = m[0]*x + m[1]*y + m[2], sy = m[3]*x + m[4]*y + m[5], with x, y
 * the destination pixel centre (col + 0.5, row + 0.5) and sx, sy in the same continuous
 * coordinates of src (pixel centres at +0.5). Outside the source: black (0,0,0). Writes into
 * dst, which must already be allocated (dst->width x dst->height). */
void img_warp_affine(const mien_image *src, const float m[6], mien_image *dst);

/* Same warp, writing float planes straight into a network input: out is (dst_h, dst_w, 3)
 * with out = (pixel - mean) * scale. Avoids a uint8 round trip. */
void img_warp_affine_f32(const mien_image *src, const float m[6], int dst_w, int dst_h,
                         float mean, float scale, float *out);
/* The same with the photo's edge pixels repeated outside it instead of black. */
void img_warp_affine_f32_edge(const mien_image *src, const float m[6], int dst_w, int dst_h,
                              float mean, float scale, float *out);

/* Horizontal mirror, in place. */
void img_flip_h(mien_image *img);

/* Crop (clipped to the image; fails if the crop is empty). */
int img_crop(const mien_image *src, int x, int y, int w, int h, mien_image *dst, mien_err *e);
/* src inside a border of m pixels on every side, filled with the grey level v. */
int img_pad(const mien_image *src, int m, uint8_t v, mien_image *dst, mien_err *e);

/* ==== Drawing (for --draw outputs and plots) ==== */

typedef struct img_color { uint8_t r, g, b; } img_color;

void img_fill(mien_image *img, img_color c);
/* Axis-aligned rectangle outline, thickness t pixels, clipped. */
void img_draw_rect(mien_image *img, float x, float y, float w, float h, int t, img_color c);
/* Anti-aliasing not required; clipped line of thickness t. */
void img_draw_line(mien_image *img, float x0, float y0, float x1, float y1, int t,
                   img_color c);
/* Filled disc of radius r. */
void img_draw_point(mien_image *img, float x, float y, float r, img_color c);
/* Text with a built-in bitmap font (ASCII 32..126, others shown as '?'), top-left at x,y,
 * scale = integer pixel size multiplier; bg drawn behind the glyphs when has_bg. Returns the
 * width in pixels of the drawn text. */
int img_draw_text(mien_image *img, int x, int y, const char *text, int scale, img_color fg,
                  int has_bg, img_color bg);
int img_text_width(const char *text, int scale);
int img_text_height(int scale);

/* ==== Encode ==== */

int img_write_png(const char *path, const mien_image *img, mien_err *e);
int img_write_jpeg(const char *path, const mien_image *img, int quality, mien_err *e);
/* Encode to a malloc'd buffer (for the HTTP service). */
int img_encode_png(const mien_image *img, uint8_t **out, size_t *out_len, mien_err *e);
int img_encode_jpeg(const mien_image *img, int quality, uint8_t **out, size_t *out_len,
                    mien_err *e);

#endif
