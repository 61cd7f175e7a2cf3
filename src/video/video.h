/* Video: decoding and encoding with FFmpeg's libraries, a threaded frame source, the pieces of
 * the tracker (Kalman filter, assignment, shot cuts) and the JSON of the timeline. The tracker
 * itself is public (mien_tracker_* in mien.h, track.c). */
#ifndef MIEN_VIDEO_H
#define MIEN_VIDEO_H

#include "core/err.h"
#include "mien.h"

#include <cJSON.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Once per process, before any FFmpeg call (the reader and writer call it): FFmpeg's log goes
 * to a callback that keeps each thread's latest message instead of printing it, and the
 * devices and network protocols are registered. */
void vid_ffmpeg_init(void);

/* ==== Reading (reader.c): files, network streams, cameras ==== */

typedef struct vid_reader vid_reader;

typedef struct vid_reader_opts {
    double open_timeout_s;   /* opening (and probing) that takes longer fails (default 10) */
    double read_timeout_s;   /* a read that gets no data for this long fails (default 10) */
    int threads;             /* decoder threads (0: FFmpeg's choice; default 1) */
    const char *format;      /* input format to force ("v4l2", "mpegts"), or NULL to probe;
                              * /dev/video* paths get "v4l2" */
    int max_side;            /* frames with a larger side are refused (MIEN_MAX_IMAGE_SIDE) */
    volatile sig_atomic_t *abort; /* when non-NULL and set, blocking calls give up (MIEN_EIO) */
} vid_reader_opts;

void vid_reader_opts_default(vid_reader_opts *o);

/* Open url (a file path, anything FFmpeg opens: rtsp://, http://, udp://, /dev/video0) and
 * its best video stream. */
int vid_reader_open(const char *url, const vid_reader_opts *o, vid_reader **out, mien_err *e);
/* The same from an encoded file in memory (data is copied). */
int vid_reader_open_mem(const void *data, size_t len, const vid_reader_opts *o,
                        vid_reader **out, mien_err *e);
void vid_reader_close(vid_reader *r);

/* Decoded frames in order: returns MIEN_OK with *frame filled (the reader's buffer, valid
 * until the next call: upright RGB, the stream's rotation applied), t_s its time in seconds
 * from the start of the input (always increasing), index its number from 0; VID_END at the
 * end of the input; a mien status on failure (e says why). An input that ends well before
 * the length its container declares is MIEN_EFORMAT (a truncated file). */
#define VID_END (-1)
int vid_reader_next(vid_reader *r, const mien_image **frame, double *t_s, int64_t *index,
                    mien_err *e);

/* Nominal frame rate (0 when unknown), duration in seconds (0 when unknown: live input),
 * upright frame size (0 before the first frame when the stream does not say), and whether
 * the input is live (network stream or device: frames come at their own pace). */
double vid_reader_fps(const vid_reader *r);
double vid_reader_duration(const vid_reader *r);
void vid_reader_size(const vid_reader *r, int *w, int *h);
int vid_reader_live(const vid_reader *r);
/* Make a blocked or later read give up (MIEN_EIO); safe from another thread. */
void vid_reader_interrupt(vid_reader *r);
/* Short description: "h264 640x360 29.97 fps (mov,mp4,m4a,3gp,3g2,mj2)". */
const char *vid_reader_describe(const vid_reader *r);

/* ==== Frame source (source.c): a reader on its own thread ====
 *
 * The decoder runs ahead of the caller on a thread of its own, into a queue of a few frames.
 * When the caller is slower than the input: a file waits (every frame is processed), a live
 * input (or a file with realtime) drops the oldest queued frame, so the caller always gets a
 * recent one. With realtime a file is also paced by its timestamps, as a camera would. */

typedef struct vid_source vid_source;

typedef struct vid_frame {
    mien_image img;          /* owned by the source until vid_source_release */
    double t_s;
    int64_t index;           /* the input's frame number */
} vid_frame;

int vid_source_open(vid_reader *r, int realtime, vid_source **out, mien_err *e);
/* Next frame (blocks); VID_END at the end, a status when the reader failed (e says why). */
int vid_source_next(vid_source *s, vid_frame **f, mien_err *e);
void vid_source_release(vid_source *s, vid_frame *f);
/* Frames dropped so far because the caller was behind. */
int64_t vid_source_dropped(vid_source *s);
/* Stops the thread (which closes nothing: the reader stays the caller's). */
void vid_source_close(vid_source *s);

/* ==== Writing (writer.c): an annotated video ==== */

typedef struct vid_writer vid_writer;

/* Container from the file name (.mp4, .mkv, .avi, .webm, ...), H.264 (libx264) where the
 * container takes it, else the container's default codec. Odd sides lose their last
 * column/row (4:2:0 chroma). fps is the nominal rate (timestamps come with each frame). */
int vid_writer_open(const char *path, int width, int height, double fps, int threads,
                    vid_writer **out, mien_err *e);
int vid_writer_write(vid_writer *w, const mien_image *img, double t_s, mien_err *e);
/* Flush and write the trailer; returns the first failure. Frees w. */
int vid_writer_close(vid_writer *w, mien_err *e);

/* ==== Tracker pieces ==== */

/* Constant-velocity Kalman filter of one coordinate (position, velocity): the box filter of
 * SORT/DeepSORT has block-diagonal matrices, so it is exactly three of these (centre x,
 * centre y, side). */
typedef struct vid_kf {
    float x, v;              /* position (pixels), velocity (pixels per 1/30 s) */
    float pxx, pxv, pvv;     /* covariance */
} vid_kf;

void vid_kf_init(vid_kf *k, float x, float var_x, float var_v);
/* Advance by dt (in 1/30 s) with process noise variances q_x, q_v per unit of dt. */
void vid_kf_predict(vid_kf *k, float dt, float q_x, float q_v);
/* Correct with a measurement z of variance r. */
void vid_kf_update(vid_kf *k, float z, float r);

/* Minimum-cost assignment (Hungarian method, O(n^2 m)) of the rows of cost (n_rows, n_cols)
 * to columns: row_to_col[i] = j, or -1 when row i gets no column or its cost is above
 * max_cost. Returns 0, or MIEN_ENOMEM. */
int vid_assign(const float *cost, int n_rows, int n_cols, float max_cost, int *row_to_col);

/* What a frame looks like, to find shot cuts: a 16x9 thumbnail (mean colour of each cell,
 * 0..1) and a colour histogram (4x4x4 bins, sums to 1), both from a subsample. */
#define VID_HIST_BINS 64
#define VID_SIG_W 16
#define VID_SIG_H 9
#define VID_SIG_CELLS (VID_SIG_W * VID_SIG_H)
typedef struct vid_sig {
    float thumb[VID_SIG_CELLS][3];
    float hist[VID_HIST_BINS];
} vid_sig;
void vid_signature(const mien_image *img, vid_sig *s);
/* Half the L1 distance of the histograms (0..1) plus the mean absolute difference of the
 * thumbnails (0..1): 0 for the same picture. */
float vid_sig_distance(const vid_sig *a, const vid_sig *b);

/* Shot-cut detection over a sequence of frames: a cut when a frame differs from the previous
 * one by more than threshold and by 3 times the recent frame-to-frame change (a moving
 * average), so that a long fast pan does not cut at every frame. */
typedef struct vid_cuts {
    int have;                /* sig holds the previous frame */
    vid_sig sig;
    float change;            /* recent frame-to-frame change */
} vid_cuts;
/* 1 when img starts a new shot (never for the first frame); threshold 0 disables. */
int vid_cut_check(vid_cuts *c, const mien_image *img, float threshold);

/* The tracker's detector: mien's detector on img without landmark refinement, faces from
 * min_score up (*faces malloc'd). Lets callers run detection ahead on other threads and feed
 * mien_tracker_push_faces. */
int vid_detect(mien_session *s, const mien_image *img, float min_score, mien_face **faces,
               int *n_faces);

/* ==== JSON of the timeline (json.c): the lines of `mien video --json` ====
 *   {"type":"event","event":"appeared"|"named"|"left","id","name","similarity","t_s","frame"}
 *   {"type":"track","id","name","similarity","nearest","start_s","end_s","start_frame",
 *    "end_frame","frames","detections","faces","box","best_s","best_frame","best_quality",
 *    "named_s"}
 *   {"type":"summary","frames","seconds","fps","video_s","dropped"}: frames processed, in
 *    seconds of wall-clock time, frames per second, seconds of video, frames dropped because
 *    the processing was behind a live input */
const char *vid_event_name(mien_event_type t);
cJSON *vid_event_json(const mien_track_event *ev);
cJSON *vid_track_json(const mien_track *t);
cJSON *vid_summary_json(int64_t frames, double wall_s, double video_s, int64_t dropped);

/* Run a whole input through a tracker (no drawing, no pacing): the timeline as an array of
 * those lines, event and track lines in the order they happen, the summary last. For the
 * service. Returns a status (e says why). */
int vid_timeline(vid_reader *r, mien_tracker *t, cJSON **lines, mien_err *e);

#endif
