/* libFuzzer target: the image decoders (img_probe and img_decode, JPEG/PNG/WebP, with and
 * without DCT scaling and EXIF orientation), with resize, warp and text run on whatever
 * decodes. `make fuzz` builds and runs it (tools/fuzz.sh); `make test` replays its corpus.
 *
 * The options (scale 1/2/4/8, EXIF on/off) come from the input's length, so plain image
 * files work as seeds. Images over 4 megapixels are only probed: a hostile 16384x16384
 * header is legal up to the point where the pixels run out, and allocating for it on every
 * run would slow the fuzzer down without reaching code the smaller ones do not. */
#include "fuzz.h"

#include "image/image.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const unsigned opt = (unsigned)size;
    mien_err e = {0};
    int w = 0, h = 0;
    const char *fmt = NULL;
    int rc = img_probe(data, size, &w, &h, &fmt, &e);
    if (rc != MIEN_OK || (long long)w * h > 4000000) return 0;

    img_decode_opts o = {.scale_denom = 1 << (opt & 3), .no_exif = (opt >> 2) & 1};
    mien_image img = {0};
    int fw = 0, fh = 0;
    rc = img_decode(data, size, &o, &img, &fw, &fh, &e);
    if (rc != MIEN_OK) {
        if (img.rgb || !e.msg[0]) abort(); /* failures leave no image and give a reason */
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || img.width > fw || img.height > fh) abort();

    /* Exercise the geometry on the decoded pixels. */
    mien_image small = {0};
    if (img_resize(&img, 1 + img.width / 3, 1 + img.height / 5, &small, &e) == MIEN_OK) {
        const float m[6] = {0.9f, 0.2f, -3.0f, -0.1f, 1.1f, 2.0f};
        img_warp_affine(&img, m, &small);
        img_draw_text(&small, -2, -3, "fuzz", 1, (img_color){255, 0, 0}, 1,
                      (img_color){0, 0, 0});
        free(small.rgb);
    }
    free(img.rgb);
    return 0;
}
