/* libFuzzer target: the video reader (vid_reader_open_mem and vid_reader_next: FFmpeg's
 * demuxers and decoders behind mien's checks, rotation and timestamps), as POST /v1/video
 * feeds it uploaded bytes. `make fuzz` builds and runs it (tools/fuzz.sh); `make test` replays
 * its corpus (seeds: tools/fuzz_seeds.py, video()).
 *
 * Frames are capped at 256 pixels a side and 30 per input, so that a hostile header of a huge
 * or endless video costs the fuzzer nothing: the caps are the reader's own options. */
#include "fuzz.h"

#include "video/video.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vid_reader_opts o;
    vid_reader_opts_default(&o);
    o.max_side = 256;
    o.open_timeout_s = o.read_timeout_s = 5;
    vid_reader *r = NULL;
    mien_err e = {0};
    int rc = vid_reader_open_mem(data, size, &o, &r, &e);
    if (rc != MIEN_OK) {
        if (r || !e.msg[0]) abort(); /* failures leave no reader and give a reason */
        return 0;
    }
    double last = -INFINITY;
    for (int i = 0; i < 30; i++) {
        const mien_image *img;
        double t;
        int64_t idx;
        rc = vid_reader_next(r, &img, &t, &idx, &e);
        if (rc == VID_END) break;
        if (rc != MIEN_OK) {
            if (!e.msg[0]) abort();
            break;
        }
        /* Frames within the cap, with pixels; times finite and increasing; numbered in order. */
        if (!img->rgb || img->width <= 0 || img->height <= 0 || img->width > 256 ||
            img->height > 256 || !isfinite(t) || !(t > last) || idx != i)
            abort();
        last = t;
    }
    vid_reader_close(r);
    return 0;
}
