/* Writing a video with FFmpeg's libraries: the container from the file name, H.264 through
 * libx264 where the container takes it (the container's own default codec otherwise), RGB
 * frames converted to the encoder's pixel format (4:2:0) by libswscale. Timestamps are the
 * frames' own, in milliseconds, so a video with dropped frames keeps its timing. */
#include "video/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct vid_writer {
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int w, h;                /* encoded size (even) */
    int header_done;
    int64_t last_pts;
    int64_t frame_ms;        /* nominal frame duration: the last frame needs one to be shown */
    char path[1024];
};

static int ff_err(mien_err *e, int status, int averr, const char *what, const char *path) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, msg, sizeof msg);
    return mien_err_set(e, status, "%s %s: %s", what, path, msg);
}

static void writer_free(vid_writer *w) {
    if (!w) return;
    if (w->oc) {
        if (w->oc->pb && !(w->oc->oformat->flags & AVFMT_NOFILE)) avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    avcodec_free_context(&w->enc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    sws_freeContext(w->sws);
    free(w);
}

int vid_writer_open(const char *path, int width, int height, double fps, int threads,
                    vid_writer **out, mien_err *e) {
    *out = NULL;
    vid_ffmpeg_init();
    if (width < 2 || height < 2 || width > MIEN_MAX_IMAGE_SIDE || height > MIEN_MAX_IMAGE_SIDE)
        return mien_err_set(e, MIEN_EINVAL, "cannot write a %dx%d video", width, height);
    vid_writer *w = calloc(1, sizeof *w);
    if (!w) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    snprintf(w->path, sizeof w->path, "%s", path);
    w->w = width & ~1;
    w->h = height & ~1;
    w->last_pts = INT64_MIN;
    int ret = avformat_alloc_output_context2(&w->oc, NULL, NULL, path);
    if (ret < 0 || !w->oc) {
        writer_free(w);
        return mien_err_set(e, MIEN_EUNSUPPORTED,
                            "%s: no video container for this file name (use .mp4, .mkv, .avi, .webm)",
                            path);
    }
    const AVOutputFormat *of = w->oc->oformat;
    const AVCodec *codec = NULL;
    if (of->video_codec == AV_CODEC_ID_H264 ||
        avformat_query_codec(of, AV_CODEC_ID_H264, FF_COMPLIANCE_NORMAL) == 1)
        codec = avcodec_find_encoder_by_name("libx264");
    if (!codec && of->video_codec != AV_CODEC_ID_NONE) codec = avcodec_find_encoder(of->video_codec);
    if (!codec) {
        writer_free(w);
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: no video encoder for the %s container",
                            path, of->name);
    }
    if (!(w->st = avformat_new_stream(w->oc, NULL)) || !(w->enc = avcodec_alloc_context3(codec)) ||
        !(w->frame = av_frame_alloc()) || !(w->pkt = av_packet_alloc())) {
        writer_free(w);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    AVCodecContext *c = w->enc;
    c->width = w->w;
    c->height = w->h;
    c->time_base = (AVRational){1, 1000};
    w->frame_ms = fps > 0 && fps < 1000 ? llround(1000.0 / fps) : 33;
    if (fps > 0 && fps < 1000) c->framerate = av_d2q(fps, 100000);
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    if (codec->pix_fmts) {
        int ok = 0;
        for (const enum AVPixelFormat *p = codec->pix_fmts; *p != AV_PIX_FMT_NONE; p++)
            ok |= *p == AV_PIX_FMT_YUV420P;
        if (!ok) c->pix_fmt = codec->pix_fmts[0];
    }
    c->gop_size = fps > 0 ? (int)lround(fps * 2) : 60;
    c->thread_count = threads > 0 ? threads : 1;
    if (!strcmp(codec->name, "libx264")) {
        av_opt_set(c->priv_data, "preset", "veryfast", 0);
        av_opt_set(c->priv_data, "crf", "23", 0);
    } else {
        c->bit_rate = (int64_t)w->w * w->h * 4; /* ~ 4 bits per pixel per second */
    }
    if (of->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        ff_err(e, MIEN_EUNSUPPORTED, ret, "cannot open the encoder for", path);
        writer_free(w);
        return MIEN_EUNSUPPORTED;
    }
    if ((ret = avcodec_parameters_from_context(w->st->codecpar, c)) < 0) {
        writer_free(w);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    w->st->time_base = c->time_base;
    w->frame->format = c->pix_fmt;
    w->frame->width = c->width;
    w->frame->height = c->height;
    if ((ret = av_frame_get_buffer(w->frame, 0)) < 0) {
        writer_free(w);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    w->sws = sws_getContext(w->w, w->h, AV_PIX_FMT_RGB24, w->w, w->h, c->pix_fmt,
                            SWS_BILINEAR, NULL, NULL, NULL);
    if (!w->sws) {
        writer_free(w);
        return mien_err_set(e, MIEN_EUNSUPPORTED, "cannot convert RGB for the encoder");
    }
    if (!(of->flags & AVFMT_NOFILE) && (ret = avio_open(&w->oc->pb, path, AVIO_FLAG_WRITE)) < 0) {
        ff_err(e, MIEN_EIO, ret, "cannot write", path);
        writer_free(w);
        return MIEN_EIO;
    }
    if ((ret = avformat_write_header(w->oc, NULL)) < 0) {
        ff_err(e, MIEN_EIO, ret, "cannot write the header of", path);
        writer_free(w);
        return MIEN_EIO;
    }
    w->header_done = 1;
    *out = w;
    return MIEN_OK;
}

/* Send frame (NULL: flush) and write every packet the encoder has ready. */
static int encode(vid_writer *w, AVFrame *frame, mien_err *e) {
    int ret = avcodec_send_frame(w->enc, frame);
    if (ret < 0) return ff_err(e, MIEN_EIO, ret, "cannot encode", w->path);
    for (;;) {
        ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return MIEN_OK;
        if (ret < 0) return ff_err(e, MIEN_EIO, ret, "cannot encode", w->path);
        if (w->pkt->duration <= 0) w->pkt->duration = w->frame_ms;
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        ret = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's data */
        if (ret < 0) return ff_err(e, MIEN_EIO, ret, "cannot write", w->path);
    }
}

int vid_writer_write(vid_writer *w, const mien_image *img, double t_s, mien_err *e) {
    if (!img || !img->rgb || img->width < w->w || img->height < w->h)
        return mien_err_set(e, MIEN_EINVAL, "%s: frame of %dx%d for a %dx%d video", w->path,
                            img ? img->width : 0, img ? img->height : 0, w->w, w->h);
    int ret = av_frame_make_writable(w->frame);
    if (ret < 0) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    /* The image's own row stride: an odd last column or row is left out. */
    const uint8_t *src[4] = {img->rgb, NULL, NULL, NULL};
    const int src_stride[4] = {3 * img->width, 0, 0, 0};
    sws_scale(w->sws, src, src_stride, 0, w->h, w->frame->data, w->frame->linesize);
    int64_t pts = llround(t_s * 1000.0);
    if (pts <= w->last_pts) pts = w->last_pts + 1;
    w->last_pts = pts;
    w->frame->pts = pts;
    return encode(w, w->frame, e);
}

int vid_writer_close(vid_writer *w, mien_err *e) {
    if (!w) return MIEN_OK;
    int rc = encode(w, NULL, e);
    if (w->header_done) {
        int ret = av_write_trailer(w->oc);
        if (ret < 0 && !rc) rc = ff_err(e, MIEN_EIO, ret, "cannot finish", w->path);
    }
    writer_free(w);
    return rc;
}
