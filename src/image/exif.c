/* EXIF orientation: find tag 0x0112 in IFD0 of a JPEG APP1 segment, and turn the decoded
 * pixels upright.
 *
 * The APP1 payload is "Exif\0\0" followed by a TIFF file: a byte-order mark ("II" little
 * endian, "MM" big endian), the number 42, the offset of IFD0 (from the start of the TIFF
 * header), then IFD0 itself: a 16-bit entry count and 12-byte entries
 *   tag (2) | type (2) | count (4) | value or offset (4).
 * Orientation is a SHORT (type 3) with count 1, so its value sits in the first two bytes of
 * the value field. Nothing else of EXIF is needed. */
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

/* ==== Parsing ==== */

static unsigned rd16(const uint8_t *p, int big) {
    return big ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, int big) {
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int img_exif_orientation(const uint8_t *app1, size_t len) {
    if (!app1 || len < 6 || memcmp(app1, "Exif\0\0", 6) != 0) return 0;
    const uint8_t *t = app1 + 6; /* TIFF header; every offset below is relative to it */
    size_t n = len - 6;
    if (n < 8) return 0;
    int big;
    if (t[0] == 'I' && t[1] == 'I') big = 0;
    else if (t[0] == 'M' && t[1] == 'M') big = 1;
    else return 0;
    if (rd16(t + 2, big) != 42) return 0;
    uint32_t ifd = rd32(t + 4, big);
    /* Compare by subtraction so that a huge offset cannot wrap around. */
    if (ifd > n || n - ifd < 2) return 0;
    unsigned count = rd16(t + ifd, big);
    size_t room = (n - ifd - 2) / 12; /* entries that actually fit in the payload */
    if (count > room) count = (unsigned)room;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *ent = t + ifd + 2 + (size_t)i * 12;
        if (rd16(ent, big) != 0x0112) continue;
        unsigned type = rd16(ent + 2, big);
        uint32_t cnt = rd32(ent + 4, big);
        if (type != 3 || cnt < 1) return 0; /* SHORT; some writers give a count > 1 */
        unsigned o = rd16(ent + 8, big);
        return o >= 1 && o <= 8 ? (int)o : 0;
    }
    return 0;
}

/* ==== Applying ==== */

int img_apply_orientation(mien_image *img, int o, mien_err *e) {
    if (o < 2 || o > 8 || !img || !img->rgb) return MIEN_OK;
    const int w = img->width, h = img->height;
    const int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    /* Source pixel (x, y) goes to output pixel offset origin + x * sx + y * sy (in pixels).
     * The eight cases, with W', H' the output size:
     *   1 (x, y)          2 mirror (W-1-x, y)      3 rotate 180 (W-1-x, H-1-y)
     *   4 flip (x, H-1-y) 5 transpose (y, x)       6 rotate 90 CW (H-1-y, x)
     *   7 transverse (H-1-y, W-1-x)                8 rotate 90 CCW (y, W-1-x) */
    ptrdiff_t origin, sx, sy;
    const ptrdiff_t W = ow, Wm = w - 1, Hm = h - 1;
    switch (o) {
    case 2: origin = Wm; sx = -1; sy = W; break;
    case 3: origin = (ptrdiff_t)Hm * W + Wm; sx = -1; sy = -W; break;
    case 4: origin = (ptrdiff_t)Hm * W; sx = 1; sy = -W; break;
    case 5: origin = 0; sx = W; sy = 1; break;
    case 6: origin = Hm; sx = W; sy = -1; break;
    case 7: origin = Wm * W + Hm; sx = -W; sy = -1; break;
    default: origin = Wm * W; sx = -W; sy = 1; break; /* 8 */
    }
    mien_image out;
    int rc = img_alloc(&out, ow, oh, e);
    if (rc) return rc;
    /* Walk the source in 64x64 tiles so the transposing cases stay in cache. */
    enum { TILE = 64 };
    for (int ty = 0; ty < h; ty += TILE) {
        int ey = ty + TILE < h ? ty + TILE : h;
        for (int tx = 0; tx < w; tx += TILE) {
            int ex = tx + TILE < w ? tx + TILE : w;
            for (int y = ty; y < ey; y++) {
                const uint8_t *s = img->rgb + ((size_t)y * w + tx) * 3;
                ptrdiff_t d = origin + (ptrdiff_t)tx * sx + (ptrdiff_t)y * sy;
                for (int x = tx; x < ex; x++, s += 3, d += sx) {
                    uint8_t *q = out.rgb + d * 3;
                    q[0] = s[0];
                    q[1] = s[1];
                    q[2] = s[2];
                }
            }
        }
    }
    free(img->rgb);
    *img = out;
    return MIEN_OK;
}
