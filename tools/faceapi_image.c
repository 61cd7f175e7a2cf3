/* Decode an image with mien's decoder (EXIF orientation applied) and write its pixels as raw
 * float32 RGB, HWC, for tools/faceapi_oracle.js --input; prints "W H". Lets the oracle and
 * tests/test_faceapi.c start from the same pixels without any JPEG decoder in JavaScript.
 * Built and run by tools/make_goldens_faceapi.sh:
 *   faceapi_image models/demo/sample1.jpg /tmp/sample1.f32  ->  1920 1280 */
#include "image/image.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGE OUT.f32\n", argv[0]);
        return 2;
    }
    mien_image img;
    mien_err e = {0};
    if (img_load(argv[1], NULL, &img, NULL, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    size_t n = (size_t)img.width * img.height * 3;
    for (size_t i = 0; i < n; i++) {
        float v = img.rgb[i];
        fwrite(&v, sizeof v, 1, f);
    }
    if (fclose(f)) {
        perror(argv[2]);
        return 1;
    }
    printf("%d %d\n", img.width, img.height);
    mien_image_free(&img);
    return 0;
}
