/* Drawing for --draw outputs and plots: fills, rectangles, thick lines, discs and bitmap text.
 *
 * Every primitive takes any coordinates, including huge, infinite or NaN floats: NaN draws
 * nothing, and floats become integers only after they have been clipped or clamped to a
 * range where the conversion is defined. Pixels are then clipped to the image. */
#include "image/image.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* ==== Helpers ==== */

static int drawable(const mien_image *img) {
    return img && img->rgb && img->width > 0 && img->height > 0;
}

/* Fill [x0, x1) x [y0, y1), clipped to the image. */
static void fill_rect(mien_image *img, long long x0, long long y0, long long x1, long long y1,
                      img_color c) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width) x1 = img->width;
    if (y1 > img->height) y1 = img->height;
    if (x0 >= x1 || y0 >= y1) return;
    for (long long y = y0; y < y1; y++) {
        uint8_t *p = img->rgb + ((size_t)y * img->width + (size_t)x0) * 3;
        for (long long x = x0; x < x1; x++, p += 3) {
            p[0] = c.r;
            p[1] = c.g;
            p[2] = c.b;
        }
    }
}

/* Round a finite or infinite double to an integer in [-2^40, 2^40]: far outside any image,
 * yet small enough that sums of a few of them cannot overflow a long long. */
static long long round_clamped(double v) {
    const double lim = 1099511627776.0; /* 2^40 */
    if (v < -lim) return -(long long)lim;
    if (v > lim) return (long long)lim;
    return (long long)floor(v + 0.5);
}

static int clamp_thickness(int t) { return t < 1 ? 1 : t > 4096 ? 4096 : t; }

/* ==== Shapes ==== */

void img_fill(mien_image *img, img_color c) {
    if (!drawable(img)) return;
    fill_rect(img, 0, 0, img->width, img->height, c);
}

/* The outline lies inside the box [x, x + w) x [y, y + h); a box thinner than two lines is
 * filled. */
void img_draw_rect(mien_image *img, float x, float y, float w, float h, int t, img_color c) {
    if (!drawable(img)) return;
    double xa = x, ya = y, xb = (double)x + w, yb = (double)y + h;
    if (isnan(xa) || isnan(ya) || isnan(xb) || isnan(yb)) return;
    long long x0 = round_clamped(fmin(xa, xb)), x1 = round_clamped(fmax(xa, xb));
    long long y0 = round_clamped(fmin(ya, yb)), y1 = round_clamped(fmax(ya, yb));
    if (x1 == x0) x1++; /* a zero-width box still shows as a line */
    if (y1 == y0) y1++;
    long long tt = clamp_thickness(t);
    if (x1 - x0 <= 2 * tt || y1 - y0 <= 2 * tt) {
        fill_rect(img, x0, y0, x1, y1, c);
        return;
    }
    fill_rect(img, x0, y0, x1, y0 + tt, c);           /* top */
    fill_rect(img, x0, y1 - tt, x1, y1, c);           /* bottom */
    fill_rect(img, x0, y0 + tt, x0 + tt, y1 - tt, c); /* left */
    fill_rect(img, x1 - tt, y0 + tt, x1, y1 - tt, c); /* right */
}

/* Liang-Barsky: clip the segment p0-p1 to [lo_x, hi_x] x [lo_y, hi_y]; 0 if nothing is left. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1, double lo_x,
                        double lo_y, double hi_x, double hi_y) {
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {*x0 - lo_x, hi_x - *x0, *y0 - lo_y, hi_y - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > t1) return 0;
            if (r > t0) t0 = r;
        } else {
            if (r < t0) return 0;
            if (r < t1) t1 = r;
        }
    }
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
    *x1 = *x0 + t1 * dx;
    *y1 = *y0 + t1 * dy;
    *x0 = ax;
    *y0 = ay;
    return 1;
}

/* Bresenham along the major axis; at each step a run of t pixels across it. Coordinates are
 * pixel centres: the pixel (i, j) is hit by points in [i, i + 1) x [j, j + 1). */
void img_draw_line(mien_image *img, float x0, float y0, float x1, float y1, int t,
                   img_color c) {
    if (!drawable(img)) return;
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
    const int tt = clamp_thickness(t);
    double ax = x0, ay = y0, bx = x1, by = y1;
    /* Clip to the image grown by the thickness; afterwards all values are small. */
    const double m = tt + 2;
    if (!clip_segment(&ax, &ay, &bx, &by, -m, -m, img->width + m, img->height + m)) return;
    long long px = (long long)floor(ax), py = (long long)floor(ay);
    long long qx = (long long)floor(bx), qy = (long long)floor(by);
    long long dx = qx > px ? qx - px : px - qx, dy = qy > py ? qy - py : py - qy;
    long long sx = px < qx ? 1 : -1, sy = py < qy ? 1 : -1;
    long long err = dx - dy;
    const long long lo = tt / 2; /* run from -lo to tt - lo - 1 across the line */
    const int steep = dy > dx;
    for (;;) {
        if (steep) fill_rect(img, px - lo, py, px - lo + tt, py + 1, c);
        else fill_rect(img, px, py - lo, px + 1, py - lo + tt, c);
        if (px == qx && py == qy) break;
        long long e2 = 2 * err;
        if (e2 > -dy) {
            err -= dy;
            px += sx;
        }
        if (e2 < dx) {
            err += dx;
            py += sy;
        }
    }
}

/* Pixels whose centre lies within r of (x, y); the pixel holding (x, y) is always drawn, so a
 * tiny radius still shows a dot. */
void img_draw_point(mien_image *img, float x, float y, float r, img_color c) {
    if (!drawable(img)) return;
    if (!isfinite(x) || !isfinite(y) || isnan(r)) return;
    double rr = r > 0 ? fmin((double)r, 1e9) : 0;
    /* Rows whose centre j + 0.5 is within rr of y, clipped to the image. */
    double ylo = fmax(y - rr - 0.5, 0), yhi = fmin(y + rr - 0.5, img->height - 1.0);
    /* Only now, with 0 <= ylo <= yhi < height, are the bounds safe to convert. */
    const long long j0 = ylo <= yhi ? (long long)ceil(ylo) : 1;
    const long long j1 = ylo <= yhi ? (long long)floor(yhi) : 0;
    for (long long j = j0; j <= j1; j++) {
        double dy = j + 0.5 - y, half2 = rr * rr - dy * dy;
        if (half2 < 0) continue;
        double half = sqrt(half2);
        double xlo = fmax(x - half - 0.5, 0), xhi = fmin(x + half - 0.5, img->width - 1.0);
        if (xlo > xhi) continue;
        fill_rect(img, (long long)ceil(xlo), j, (long long)floor(xhi) + 1, j + 1, c);
    }
    if (x >= 0 && x < img->width && y >= 0 && y < img->height) {
        long long cx = (long long)x, cy = (long long)y;
        fill_rect(img, cx, cy, cx + 1, cy + 1, c);
    }
}

/* ==== Text ==== */

/* 5x7 ASCII font, characters 32 (space) to 126 (~). Each glyph is 5 columns, left to right;
 * in each column byte, bit 0 is the top row and bit 6 the bottom row. A character cell is
 * 6x8: the glyph plus one blank column and one blank row. To add or fix a glyph, draw it on
 * a 5x7 grid and write each column top-down as bits 0..6. */
enum { FONT_FIRST = 32, FONT_LAST = 126, CELL_W = 6, CELL_H = 8 };

static const uint8_t font5x7[FONT_LAST - FONT_FIRST + 1][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x00, 0x00, 0x5F, 0x00, 0x00}, /* ! */
    {0x00, 0x07, 0x00, 0x07, 0x00}, /* " */
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, /* # */
    {0x24, 0x2A, 0x7F, 0x2A, 0x12}, /* $ */
    {0x23, 0x13, 0x08, 0x64, 0x62}, /* % */
    {0x36, 0x49, 0x55, 0x22, 0x50}, /* & */
    {0x00, 0x05, 0x03, 0x00, 0x00}, /* ' */
    {0x00, 0x1C, 0x22, 0x41, 0x00}, /* ( */
    {0x00, 0x41, 0x22, 0x1C, 0x00}, /* ) */
    {0x14, 0x08, 0x3E, 0x08, 0x14}, /* * */
    {0x08, 0x08, 0x3E, 0x08, 0x08}, /* + */
    {0x00, 0x50, 0x30, 0x00, 0x00}, /* , */
    {0x08, 0x08, 0x08, 0x08, 0x08}, /* - */
    {0x00, 0x60, 0x60, 0x00, 0x00}, /* . */
    {0x20, 0x10, 0x08, 0x04, 0x02}, /* / */
    {0x3E, 0x51, 0x49, 0x45, 0x3E}, /* 0 */
    {0x00, 0x42, 0x7F, 0x40, 0x00}, /* 1 */
    {0x42, 0x61, 0x51, 0x49, 0x46}, /* 2 */
    {0x21, 0x41, 0x45, 0x4B, 0x31}, /* 3 */
    {0x18, 0x14, 0x12, 0x7F, 0x10}, /* 4 */
    {0x27, 0x45, 0x45, 0x45, 0x39}, /* 5 */
    {0x3C, 0x4A, 0x49, 0x49, 0x30}, /* 6 */
    {0x01, 0x71, 0x09, 0x05, 0x03}, /* 7 */
    {0x36, 0x49, 0x49, 0x49, 0x36}, /* 8 */
    {0x06, 0x49, 0x49, 0x29, 0x1E}, /* 9 */
    {0x00, 0x36, 0x36, 0x00, 0x00}, /* : */
    {0x00, 0x56, 0x36, 0x00, 0x00}, /* ; */
    {0x08, 0x14, 0x22, 0x41, 0x00}, /* < */
    {0x14, 0x14, 0x14, 0x14, 0x14}, /* = */
    {0x00, 0x41, 0x22, 0x14, 0x08}, /* > */
    {0x02, 0x01, 0x51, 0x09, 0x06}, /* ? */
    {0x32, 0x49, 0x79, 0x41, 0x3E}, /* @ */
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, /* A */
    {0x7F, 0x49, 0x49, 0x49, 0x36}, /* B */
    {0x3E, 0x41, 0x41, 0x41, 0x22}, /* C */
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, /* D */
    {0x7F, 0x49, 0x49, 0x49, 0x41}, /* E */
    {0x7F, 0x09, 0x09, 0x09, 0x01}, /* F */
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, /* G */
    {0x7F, 0x08, 0x08, 0x08, 0x7F}, /* H */
    {0x00, 0x41, 0x7F, 0x41, 0x00}, /* I */
    {0x20, 0x40, 0x41, 0x3F, 0x01}, /* J */
    {0x7F, 0x08, 0x14, 0x22, 0x41}, /* K */
    {0x7F, 0x40, 0x40, 0x40, 0x40}, /* L */
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, /* M */
    {0x7F, 0x04, 0x08, 0x10, 0x7F}, /* N */
    {0x3E, 0x41, 0x41, 0x41, 0x3E}, /* O */
    {0x7F, 0x09, 0x09, 0x09, 0x06}, /* P */
    {0x3E, 0x41, 0x51, 0x21, 0x5E}, /* Q */
    {0x7F, 0x09, 0x19, 0x29, 0x46}, /* R */
    {0x46, 0x49, 0x49, 0x49, 0x31}, /* S */
    {0x01, 0x01, 0x7F, 0x01, 0x01}, /* T */
    {0x3F, 0x40, 0x40, 0x40, 0x3F}, /* U */
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, /* V */
    {0x3F, 0x40, 0x38, 0x40, 0x3F}, /* W */
    {0x63, 0x14, 0x08, 0x14, 0x63}, /* X */
    {0x07, 0x08, 0x70, 0x08, 0x07}, /* Y */
    {0x61, 0x51, 0x49, 0x45, 0x43}, /* Z */
    {0x00, 0x7F, 0x41, 0x41, 0x00}, /* [ */
    {0x02, 0x04, 0x08, 0x10, 0x20}, /* backslash */
    {0x00, 0x41, 0x41, 0x7F, 0x00}, /* ] */
    {0x04, 0x02, 0x01, 0x02, 0x04}, /* ^ */
    {0x40, 0x40, 0x40, 0x40, 0x40}, /* _ */
    {0x00, 0x01, 0x02, 0x04, 0x00}, /* ` */
    {0x20, 0x54, 0x54, 0x54, 0x78}, /* a */
    {0x7F, 0x48, 0x44, 0x44, 0x38}, /* b */
    {0x38, 0x44, 0x44, 0x44, 0x20}, /* c */
    {0x38, 0x44, 0x44, 0x48, 0x7F}, /* d */
    {0x38, 0x54, 0x54, 0x54, 0x18}, /* e */
    {0x08, 0x7E, 0x09, 0x01, 0x02}, /* f */
    {0x0C, 0x52, 0x52, 0x52, 0x3E}, /* g */
    {0x7F, 0x08, 0x04, 0x04, 0x78}, /* h */
    {0x00, 0x44, 0x7D, 0x40, 0x00}, /* i */
    {0x20, 0x40, 0x44, 0x3D, 0x00}, /* j */
    {0x7F, 0x10, 0x28, 0x44, 0x00}, /* k */
    {0x00, 0x41, 0x7F, 0x40, 0x00}, /* l */
    {0x7C, 0x04, 0x18, 0x04, 0x78}, /* m */
    {0x7C, 0x08, 0x04, 0x04, 0x78}, /* n */
    {0x38, 0x44, 0x44, 0x44, 0x38}, /* o */
    {0x7C, 0x14, 0x14, 0x14, 0x08}, /* p */
    {0x08, 0x14, 0x14, 0x18, 0x7C}, /* q */
    {0x7C, 0x08, 0x04, 0x04, 0x08}, /* r */
    {0x48, 0x54, 0x54, 0x54, 0x20}, /* s */
    {0x04, 0x3F, 0x44, 0x40, 0x20}, /* t */
    {0x3C, 0x40, 0x40, 0x20, 0x7C}, /* u */
    {0x1C, 0x20, 0x40, 0x20, 0x1C}, /* v */
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, /* w */
    {0x44, 0x28, 0x10, 0x28, 0x44}, /* x */
    {0x0C, 0x50, 0x50, 0x50, 0x3C}, /* y */
    {0x44, 0x64, 0x54, 0x4C, 0x44}, /* z */
    {0x00, 0x08, 0x36, 0x41, 0x00}, /* { */
    {0x00, 0x00, 0x7F, 0x00, 0x00}, /* | */
    {0x00, 0x41, 0x36, 0x08, 0x00}, /* } */
    {0x08, 0x04, 0x08, 0x10, 0x08}, /* ~ */
};
_Static_assert(sizeof font5x7 / sizeof font5x7[0] == FONT_LAST - FONT_FIRST + 1,
               "font table must hold every printable ASCII character");

static int clamp_scale(int scale) { return scale < 1 ? 1 : scale > 1024 ? 1024 : scale; }

int img_text_width(const char *text, int scale) {
    if (!text) return 0;
    long long w = (long long)strlen(text) * CELL_W * clamp_scale(scale);
    return w > INT_MAX ? INT_MAX : (int)w;
}

int img_text_height(int scale) { return CELL_H * clamp_scale(scale); }

int img_draw_text(mien_image *img, int x, int y, const char *text, int scale, img_color fg,
                  int has_bg, img_color bg) {
    const int width = img_text_width(text, scale);
    if (!text || !drawable(img)) return width;
    const long long s = clamp_scale(scale);
    if (has_bg) fill_rect(img, x, y, (long long)x + width, (long long)y + CELL_H * s, bg);
    if ((long long)y >= img->height || (long long)y + CELL_H * s <= 0) return width;
    long long cx = x;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++, cx += CELL_W * s) {
        if (cx >= img->width) break; /* the rest is off to the right */
        if (cx + CELL_W * s <= 0) continue;
        unsigned ch = *p >= FONT_FIRST && *p <= FONT_LAST ? *p : '?';
        const uint8_t *g = font5x7[ch - FONT_FIRST];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++)
                if (g[col] >> row & 1)
                    fill_rect(img, cx + col * s, (long long)y + row * s, cx + (col + 1) * s,
                              (long long)y + (row + 1) * s, fg);
    }
    return width;
}
