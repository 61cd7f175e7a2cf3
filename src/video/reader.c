/* Reading video with FFmpeg's libraries: libavformat opens files, network streams and (through
 * libavdevice) cameras, libavcodec decodes, libswscale converts each frame once to packed RGB
 * with the stream's own colour matrix and range. The stream's display matrix (phone videos
 * recorded upright are stored sideways with a rotation) is applied, so frames come out
 * upright.
 *
 * Nothing here may block for ever: every blocking FFmpeg call runs under an interrupt callback
 * with a deadline (open_timeout_s for opening and probing, read_timeout_s for each read), so a
 * stream that never answers or stops sending gives an error, not a hang. FFmpeg's own log
 * goes to a callback that keeps the latest message of each thread (to explain a failure)
 * instead of stderr: the library never prints. */
#include "video/video.h"
#include "image/image.h"

#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Consecutive packets that fail to decode before the input is declared broken (a live stream
 * loses packets now and then; a file of garbage fails every one). */
#define MAX_DECODE_ERRORS 200

struct vid_reader {
    vid_reader_opts o;
    char url[1024];
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int sws_w, sws_h, sws_fmt, sws_cs, sws_range;
    int stream;              /* index of the video stream */
    double tb;               /* its time base, seconds */
    double start_s;          /* the input's start time (subtracted from every timestamp) */
    double fps;
    int orientation;         /* EXIF-style orientation that makes frames upright (1: none) */
    int flushing;            /* the demuxer is done: draining the decoder */
    int64_t n_frames;        /* frames returned so far */
    int64_t expect_frames;   /* frames the container declares (0: unknown) */
    double last_t;
    int decode_errors;       /* consecutive */
    int demux_error;         /* the demuxer stopped on an error, not at the end */
    double deadline;         /* monotonic seconds, for interrupt_cb; 0: none */
    int timed_out;
    atomic_int interrupted;  /* vid_reader_interrupt was called */
    mien_image img;          /* the frame handed out */
    char desc[256];
    /* In-memory input. */
    AVIOContext *avio;
    uint8_t *mem;
    size_t mem_len, mem_pos;
};

/* ==== FFmpeg's log: kept, not printed ==== */

static _Thread_local char last_log[256];

static void log_cb(void *avcl, int level, const char *fmt, va_list ap) {
    (void)avcl;
    if (level > AV_LOG_WARNING) return;
    char buf[256];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    if (n) memcpy(last_log, buf, n + 1);
}

static pthread_once_t ff_once = PTHREAD_ONCE_INIT;
static void ff_init(void) {
    av_log_set_callback(log_cb);
    avdevice_register_all();
    avformat_network_init();
}

void vid_ffmpeg_init(void) { pthread_once(&ff_once, ff_init); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int interrupt_cb(void *opaque) {
    vid_reader *r = opaque;
    if ((r->o.abort && *r->o.abort) || atomic_load(&r->interrupted)) return 1;
    if (r->deadline > 0 && now_s() > r->deadline) {
        r->timed_out = 1;
        return 1;
    }
    return 0;
}

/* An FFmpeg error as a mien failure: its text, and FFmpeg's latest log line when it says
 * more ("moov atom not found"). */
static int ff_fail(vid_reader *r, mien_err *e, int status, int averr, const char *what) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, msg, sizeof msg);
    if (last_log[0] && strcmp(last_log, msg) != 0)
        return mien_err_set(e, status, "%s: %s (%s)", what, msg, last_log);
    return mien_err_set(e, status, "%s: %s", what, msg);
}

void vid_reader_opts_default(vid_reader_opts *o) {
    memset(o, 0, sizeof *o);
    o->open_timeout_s = 10;
    o->read_timeout_s = 10;
    o->threads = 1;
    o->max_side = MIEN_MAX_IMAGE_SIDE;
}

/* ==== In-memory input ==== */

static int mem_read(void *opaque, uint8_t *buf, int size) {
    vid_reader *r = opaque;
    size_t left = r->mem_len - r->mem_pos, n = (size_t)size < left ? (size_t)size : left;
    if (n == 0) return AVERROR_EOF;
    memcpy(buf, r->mem + r->mem_pos, n);
    r->mem_pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    vid_reader *r = opaque;
    if (whence == AVSEEK_SIZE) return (int64_t)r->mem_len;
    whence &= ~AVSEEK_FORCE;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)r->mem_pos
                 : whence == SEEK_END ? (int64_t)r->mem_len : -1;
    if (base < 0) return AVERROR(EINVAL);
    int64_t pos = base + offset;
    if (pos < 0 || pos > (int64_t)r->mem_len) return AVERROR(EINVAL);
    r->mem_pos = (size_t)pos;
    return pos;
}

/* ==== Opening ==== */

/* Rotation from the display matrix (counter-clockwise degrees in the matrix; FFmpeg's
 * players turn the picture back by it) as the EXIF orientation that makes it upright. */
static int stream_orientation(const AVStream *st) {
    const int32_t *dm = NULL;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(
        st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (sd && sd->size >= 9 * sizeof(int32_t)) dm = (const int32_t *)sd->data;
#else
    size_t size = 0;
    const uint8_t *sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (sd && size >= 9 * sizeof(int32_t)) dm = (const int32_t *)sd;
#endif
    if (!dm) return 1;
    double theta = av_display_rotation_get(dm);
    if (!isfinite(theta)) return 1;
    theta = -round(theta);
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1) return 6;   /* turn 90 degrees clockwise */
    if (fabs(theta - 180) < 1) return 3;
    if (fabs(theta - 270) < 1) return 8;  /* turn 90 degrees counter-clockwise */
    return 1;
}

/* Demuxers that read text as pictures (ANSI art and the like): a text file is not a video. */
static int is_text_format(const char *name) {
    static const char *const text[] = {"tty", "bin", "xbin", "adf", "idf", "srt", "ass",
                                       "webvtt", "subviewer", "microdvd", "jacosub", NULL};
    for (int i = 0; text[i]; i++)
        if (!strcmp(name, text[i])) return 1;
    return 0;
}

static int open_common(vid_reader *r, const char *url, mien_err *e) {
    vid_ffmpeg_init();
    last_log[0] = '\0';
    const AVInputFormat *ifmt = NULL;
    const char *fname = r->o.format;
    if (!fname && !strncmp(url, "/dev/video", 10)) fname = "v4l2";
    if (fname && !(ifmt = av_find_input_format(fname)))
        return mien_err_set(e, MIEN_EUNSUPPORTED, "unknown input format '%s'", fname);
    AVDictionary *opts = NULL;
    if (!strncmp(url, "udp://", 6)) {
        /* A burst the caller is too slow for loses packets, not the stream. */
        av_dict_set(&opts, "overrun_nonfatal", "1", 0);
        av_dict_set(&opts, "fifo_size", "278876", 0); /* 50 MB of 188-byte packets */
    }
    r->deadline = now_s() + r->o.open_timeout_s;
    int ret = avformat_open_input(&r->fmt, url, ifmt, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        r->fmt = NULL; /* freed by FFmpeg on failure */
        if (r->timed_out)
            return mien_err_set(e, MIEN_EIO, "%s: no answer within %.0f s", url, r->o.open_timeout_s);
        return ff_fail(r, e, ret == AVERROR_INVALIDDATA ? MIEN_EFORMAT : MIEN_EIO, ret, url);
    }
    if (is_text_format(r->fmt->iformat->name))
        return mien_err_set(e, MIEN_EFORMAT, "%s: not a video (FFmpeg reads it as %s)", url,
                            r->fmt->iformat->name);
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0) {
        if (r->timed_out)
            return mien_err_set(e, MIEN_EIO, "%s: no video data within %.0f s", url, r->o.open_timeout_s);
        return ff_fail(r, e, MIEN_EFORMAT, ret, url);
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (ret < 0) {
        if (ret == AVERROR_DECODER_NOT_FOUND)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: no decoder for its video codec", url);
        if (r->timed_out)
            return mien_err_set(e, MIEN_EIO, "%s: no video data within %.0f s", url, r->o.open_timeout_s);
        return mien_err_set(e, MIEN_EFORMAT, "%s: no video stream", url);
    }
    r->stream = ret;
    AVStream *st = r->fmt->streams[r->stream];
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != r->stream) r->fmt->streams[i]->discard = AVDISCARD_ALL;
    const AVCodecParameters *par = st->codecpar;
    if (par->width > r->o.max_side || par->height > r->o.max_side)
        return mien_err_set(e, MIEN_ETOOBIG, "%s: frames of %dx%d exceed the limit of %d per side",
                            url, par->width, par->height, r->o.max_side);
    if (!(r->dec = avcodec_alloc_context3(codec))) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if ((ret = avcodec_parameters_to_context(r->dec, par)) < 0)
        return ff_fail(r, e, MIEN_EFORMAT, ret, url);
    /* Frame threads cost latency and, on a busy machine, time slices: one thread decodes up
     * to 720p at several hundred frames per second; more only for larger frames. */
    r->dec->thread_count = (int64_t)par->width * par->height <= 1280 * 720 ? 1
                         : r->o.threads > 0 ? r->o.threads : 0;
    r->dec->pkt_timebase = st->time_base;
    if ((ret = avcodec_open2(r->dec, codec, NULL)) < 0)
        return ff_fail(r, e, MIEN_EUNSUPPORTED, ret, url);
    if (!(r->pkt = av_packet_alloc()) || !(r->frame = av_frame_alloc()))
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");

    r->tb = av_q2d(st->time_base);
    r->start_s = r->fmt->start_time != AV_NOPTS_VALUE ? (double)r->fmt->start_time / AV_TIME_BASE
                                                     : NAN;
    AVRational fr = av_guess_frame_rate(r->fmt, st, NULL);
    r->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    if (!(r->fps > 0 && r->fps < 1000)) r->fps = 0;
    r->orientation = stream_orientation(st);
    r->expect_frames = st->nb_frames > 0 ? st->nb_frames : 0;
    r->last_t = -INFINITY;
    int w = par->width, h = par->height;
    if (r->orientation >= 5) { int t = w; w = h; h = t; }
    snprintf(r->desc, sizeof r->desc, "%s %dx%d %.2f fps (%s)", codec->name, w, h, r->fps,
             r->fmt->iformat->name);
    return MIEN_OK;
}

int vid_reader_open(const char *url, const vid_reader_opts *o, vid_reader **out, mien_err *e) {
    *out = NULL;
    if (!url || !*url) return mien_err_set(e, MIEN_EINVAL, "no input");
    vid_reader *r = calloc(1, sizeof *r);
    if (!r) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (o) r->o = *o;
    else vid_reader_opts_default(&r->o);
    if (r->o.max_side <= 0 || r->o.max_side > MIEN_MAX_IMAGE_SIDE) r->o.max_side = MIEN_MAX_IMAGE_SIDE;
    snprintf(r->url, sizeof r->url, "%s", url);
    if (!(r->fmt = avformat_alloc_context())) {
        free(r);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    r->fmt->interrupt_callback.callback = interrupt_cb;
    r->fmt->interrupt_callback.opaque = r;
    int rc = open_common(r, url, e);
    if (rc) {
        vid_reader_close(r);
        return rc;
    }
    *out = r;
    return MIEN_OK;
}

int vid_reader_open_mem(const void *data, size_t len, const vid_reader_opts *o,
                        vid_reader **out, mien_err *e) {
    *out = NULL;
    if (!data || !len) return mien_err_set(e, MIEN_EINVAL, "empty video");
    vid_reader *r = calloc(1, sizeof *r);
    if (!r) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (o) r->o = *o;
    else vid_reader_opts_default(&r->o);
    if (r->o.max_side <= 0 || r->o.max_side > MIEN_MAX_IMAGE_SIDE) r->o.max_side = MIEN_MAX_IMAGE_SIDE;
    r->o.format = NULL;
    snprintf(r->url, sizeof r->url, "video");
    const int bufsize = 1 << 16;
    uint8_t *buf = NULL;
    int rc = MIEN_ENOMEM;
    if (!(r->mem = malloc(len)) || !(r->fmt = avformat_alloc_context()) ||
        !(buf = av_malloc(bufsize)) ||
        !(r->avio = avio_alloc_context(buf, bufsize, 0, r, mem_read, NULL, mem_seek))) {
        av_free(buf);
        mien_err_set(e, MIEN_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(r->mem, data, len);
    r->mem_len = len;
    r->fmt->pb = r->avio;
    r->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    r->fmt->interrupt_callback.callback = interrupt_cb;
    r->fmt->interrupt_callback.opaque = r;
    if ((rc = open_common(r, "video", e))) goto fail;
    *out = r;
    return MIEN_OK;
fail:
    vid_reader_close(r);
    return rc;
}

void vid_reader_close(vid_reader *r) {
    if (!r) return;
    avformat_close_input(&r->fmt); /* NULL-safe; leaves a custom AVIOContext to us */
    if (r->avio) {
        av_freep(&r->avio->buffer);
        avio_context_free(&r->avio);
    }
    avcodec_free_context(&r->dec);
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    sws_freeContext(r->sws);
    mien_image_free(&r->img);
    free(r->mem);
    free(r);
}

double vid_reader_fps(const vid_reader *r) { return r->fps; }

double vid_reader_duration(const vid_reader *r) {
    if (!r->fmt || r->fmt->duration == AV_NOPTS_VALUE || r->fmt->duration <= 0) return 0;
    return (double)r->fmt->duration / AV_TIME_BASE;
}

void vid_reader_size(const vid_reader *r, int *w, int *h) {
    const AVCodecParameters *par = r->fmt->streams[r->stream]->codecpar;
    int a = par->width, b = par->height;
    if (r->orientation >= 5) { int t = a; a = b; b = t; }
    if (w) *w = a;
    if (h) *h = b;
}

int vid_reader_live(const vid_reader *r) {
    if (r->mem) return 0;
    if (r->fmt->iformat->flags & AVFMT_NOFILE) return 1; /* devices */
    return vid_reader_duration(r) <= 0 && (!r->fmt->pb || !(r->fmt->pb->seekable & AVIO_SEEKABLE_NORMAL));
}

const char *vid_reader_describe(const vid_reader *r) { return r->desc; }

void vid_reader_interrupt(vid_reader *r) { atomic_store(&r->interrupted, 1); }

/* ==== Decoding ==== */

/* The frame in r->frame as packed RGB into r->img, upright. */
static int convert(vid_reader *r, mien_err *e) {
    const AVFrame *f = r->frame;
    if (f->width <= 0 || f->height <= 0 || f->width > r->o.max_side || f->height > r->o.max_side)
        return mien_err_set(e, MIEN_ETOOBIG, "%s: frame of %dx%d (limit %d per side)", r->url,
                            f->width, f->height, r->o.max_side);
    const int cs = f->colorspace, range = f->color_range == AVCOL_RANGE_JPEG ||
                                          f->format == AV_PIX_FMT_YUVJ420P ||
                                          f->format == AV_PIX_FMT_YUVJ422P ||
                                          f->format == AV_PIX_FMT_YUVJ444P;
    if (!r->sws || r->sws_w != f->width || r->sws_h != f->height || r->sws_fmt != f->format ||
        r->sws_cs != cs || r->sws_range != range) {
        r->sws = sws_getCachedContext(r->sws, f->width, f->height, (enum AVPixelFormat)f->format,
                                      f->width, f->height, AV_PIX_FMT_RGB24,
                                      SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                      NULL, NULL, NULL);
        if (!r->sws)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: cannot convert pixel format %s",
                                r->url, av_get_pix_fmt_name((enum AVPixelFormat)f->format));
        /* The stream's YUV matrix (BT.709 for HD, BT.601 otherwise; swscale's table is indexed
         * by the same numbers as AVColorSpace) and range; RGB out is full range. Fails
         * harmlessly for RGB sources. */
        int mat = cs >= 0 && cs <= 10 && cs != AVCOL_SPC_UNSPECIFIED ? cs
                : (f->height >= 720 ? SWS_CS_ITU709 : SWS_CS_DEFAULT);
        sws_setColorspaceDetails(r->sws, sws_getCoefficients(mat), range,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
        r->sws_w = f->width;
        r->sws_h = f->height;
        r->sws_fmt = f->format;
        r->sws_cs = cs;
        r->sws_range = range;
    }
    int rc;
    if (r->img.width != f->width || r->img.height != f->height || !r->img.rgb) {
        mien_image_free(&r->img);
        if ((rc = img_alloc(&r->img, f->width, f->height, e))) return rc;
    }
    uint8_t *dst[4] = {r->img.rgb, NULL, NULL, NULL};
    int dst_stride[4] = {3 * f->width, 0, 0, 0};
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (r->orientation != 1) {
        /* Replaces the pixels (sides swapped for a quarter turn: the next frame then
         * allocates its stored size again). */
        if ((rc = img_apply_orientation(&r->img, r->orientation, e))) return rc;
    }
    return MIEN_OK;
}

int vid_reader_next(vid_reader *r, const mien_image **frame, double *t_s, int64_t *index,
                    mien_err *e) {
    last_log[0] = '\0';
    for (;;) {
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret == 0) {
            int rc = convert(r, e);
            int64_t ts = r->frame->best_effort_timestamp;
            av_frame_unref(r->frame);
            if (rc) return rc;
            double t;
            if (ts != AV_NOPTS_VALUE) {
                if (isnan(r->start_s)) r->start_s = (double)ts * r->tb;
                t = (double)ts * r->tb - r->start_s;
            } else {
                t = r->fps > 0 ? (double)r->n_frames / r->fps : (double)r->n_frames / 30.0;
            }
            /* Timestamps that repeat or go back (broken streams, wraps) move on by a frame. */
            if (!(t > r->last_t)) t = r->last_t + (r->fps > 0 ? 1.0 / r->fps : 1.0 / 30.0);
            if (r->n_frames == 0 && t < 0) t = 0;
            r->last_t = t;
            *frame = &r->img;
            *t_s = t;
            *index = r->n_frames++;
            return MIEN_OK;
        }
        if (ret == AVERROR_EOF) {
            if (r->n_frames == 0)
                return mien_err_set(e, MIEN_EFORMAT, "%s: no frame could be decoded%s%s", r->url,
                                    last_log[0] ? ": " : "", last_log);
            /* A file that stops well short of the frames its index lists was cut off. */
            if (r->demux_error || (r->expect_frames > 0 && r->n_frames < r->expect_frames * 9 / 10))
                return mien_err_set(e, MIEN_EFORMAT,
                                    "%s: the input ends early, after %lld of %lld frames "
                                    "(truncated file?)", r->url, (long long)r->n_frames,
                                    (long long)r->expect_frames);
            return VID_END;
        }
        if (ret != AVERROR(EAGAIN))
            return ff_fail(r, e, MIEN_EFORMAT, ret, r->url);
        if (r->flushing) return VID_END;
        r->deadline = r->o.read_timeout_s > 0 ? now_s() + r->o.read_timeout_s : 0;
        ret = av_read_frame(r->fmt, r->pkt);
        r->deadline = 0;
        if (ret < 0) {
            if ((r->o.abort && *r->o.abort) || atomic_load(&r->interrupted))
                return mien_err_set(e, MIEN_EIO, "%s: stopped", r->url);
            if (r->timed_out)
                return mien_err_set(e, MIEN_EIO, "%s: no data for %.0f s", r->url,
                                    r->o.read_timeout_s);
            if (ret != AVERROR_EOF) {
                if (vid_reader_live(r)) return ff_fail(r, e, MIEN_EIO, ret, r->url);
                r->demux_error = 1; /* decode what came, then say the file is damaged */
            }
            avcodec_send_packet(r->dec, NULL); /* drain */
            r->flushing = 1;
            continue;
        }
        if (r->pkt->stream_index != r->stream) {
            av_packet_unref(r->pkt);
            continue;
        }
        ret = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN)) {
            /* A damaged packet: skip it, unless nothing decodes at all. */
            if (++r->decode_errors > MAX_DECODE_ERRORS)
                return ff_fail(r, e, MIEN_EFORMAT, ret, r->url);
        } else {
            r->decode_errors = 0;
        }
    }
}
