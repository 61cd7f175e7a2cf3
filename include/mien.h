/* mien — face detection, alignment and recognition in C.
 *
 * The one public header. Conventions:
 *   - Every function that can fail returns an int status (MIEN_OK == 0). The reason is kept
 *     on the handle: mien_errmsg(session) or mien_models_errmsg(models). The library never
 *     prints.
 *   - Handles are opaque. mien_x_open(..., &out) creates, mien_x_close(x) frees; close(NULL)
 *     is a no-op.
 *   - A mien_models is immutable after opening and may be shared by any number of threads.
 *     A mien_session holds scratch buffers and the last error: use one per thread.
 *   - Images are 8-bit RGB, interleaved, rows packed (stride = 3 * width).
 *   - Coordinates are in pixels of the image passed in, x to the right, y down, with pixel
 *     centres at integer + 0.5 (the top-left pixel covers [0,1) x [0,1)).
 */
#ifndef MIEN_H
#define MIEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MIEN_VERSION_MAJOR 0
#define MIEN_VERSION_MINOR 1
#define MIEN_VERSION_PATCH 0
#define MIEN_VERSION_STRING "0.1.0"

/* ==== Status codes ==== */
enum {
    MIEN_OK = 0,
    MIEN_EINVAL = 1,       /* bad argument (caller error) */
    MIEN_ENOMEM = 2,       /* allocation failed */
    MIEN_EIO = 3,          /* file could not be read or written */
    MIEN_EFORMAT = 4,      /* malformed input: image, model, JSON, ... */
    MIEN_ETOOBIG = 5,      /* input exceeds a limit (dimensions, file size) */
    MIEN_EUNSUPPORTED = 6, /* valid but not supported (format, op, ...) */
    MIEN_ENOFACE = 7,      /* no face found where one is required */
    MIEN_ENOTFOUND = 8,    /* named thing (model, subject, ...) does not exist */
    MIEN_EMISMATCH = 9,    /* e.g. embeddings from a different model */
    MIEN_EINTERNAL = 10    /* broken invariant that input could not have caused */
};

/* A short constant name for a status ("EFORMAT"), never NULL. */
const char *mien_status_name(int status);

/* "0.1.0" */
const char *mien_version(void);

/* ==== Images ==== */

/* Decoders refuse images with a side above this many pixels. */
#define MIEN_MAX_IMAGE_SIDE 16384

typedef struct mien_image {
    int width;       /* pixels */
    int height;      /* pixels */
    uint8_t *rgb;    /* (height, width, 3) interleaved RGB, owned by the image */
} mien_image;

/* Release the pixels of an image filled by this library; leaves the struct zeroed. */
void mien_image_free(mien_image *img);

/* ==== Models ==== */

typedef struct mien_models mien_models;
typedef struct mien_session mien_session;

typedef enum mien_backend {
    MIEN_BACKEND_AUTO = 0,   /* fastest available */
    MIEN_BACKEND_REF = 1,    /* plain C reference backend (the oracle) */
    MIEN_BACKEND_XNNPACK = 2 /* XNNPACK */
} mien_backend;

typedef struct mien_config {
    const char *detector;    /* "blazeface" (256x256, default), "blazeface-front" (128x128) */
    const char *embedder;    /* "mobilefacenet" (default) */
    const char *landmarks;   /* "none" (detector keypoints, default) or "facemesh" */
    mien_backend backend;    /* default MIEN_BACKEND_AUTO */
    int threads;             /* threads per session for intra-op parallelism; 0 = 1 */
    int flip;                /* embed with horizontal-flip test-time augmentation: -1 default */
    const char *model_file;  /* a checkpoint written by `mien train`: its network replaces the
                              * embedder's (input size, normalisation, threshold from the file,
                              * ArcFace crop); NULL (default) for none */
} mien_config;

/* Fill *cfg with the defaults. Call this, then change the fields you care about. */
void mien_config_default(mien_config *cfg);

/* Open the model set found in dir (the folder the setup fills: dir/human/..., dir/faceapi/...).
 * On failure *out may still hold a handle whose mien_models_errmsg() says why; close it. */
int mien_models_open(const char *dir, const mien_config *cfg, mien_models **out);
void mien_models_close(mien_models *m);
const char *mien_models_errmsg(const mien_models *m);

/* Embedding size and a stable name ("mobilefacenet") of the open embedder. */
int mien_models_embedding_dim(const mien_models *m);
const char *mien_models_embedder_name(const mien_models *m);

/* Default cosine-similarity threshold of the open embedder for "same person". */
float mien_models_threshold(const mien_models *m);

int mien_session_open(mien_models *m, mien_session **out);
void mien_session_close(mien_session *s);
const char *mien_errmsg(const mien_session *s);

/* Decode JPEG, PNG or WebP from memory into RGB, honouring EXIF orientation. */
int mien_image_decode(mien_session *s, const void *data, size_t len, mien_image *out);
int mien_image_load(mien_session *s, const char *path, mien_image *out);

/* ==== Detection ==== */

#define MIEN_MAX_LANDMARKS 68

typedef struct mien_face {
    float box[4];          /* x, y, width, height in image pixels */
    float score;           /* detector confidence in [0,1] */
    /* The landmark source's own points: 6 from BlazeFace (the eye centres, nose tip, mouth
     * centre, and the two ear tragions, in the order the detector gives them), 68 from a
     * 68-point model. */
    int n_landmarks;
    float landmarks[MIEN_MAX_LANDMARKS][2];
    /* The alignment points in ArcFace template order: eye, eye, nose tip, mouth corner, mouth
     * corner, each pair in image order (smaller x first on an upright frontal face). When the
     * source has no mouth corners n_points is 4 and points[3] is the mouth centre. */
    int n_points;
    float points[5][2];
} mien_face;

typedef struct mien_detect_options {
    float min_score;       /* default 0.6 */
    float min_size;        /* faces smaller than this (box side, pixels) are dropped; default 0 */
    int tile;              /* 1: also look for small faces in overlapping tiles of big photos */
    int max_faces;         /* cap on the number of faces returned (largest first); 0 = no cap */
} mien_detect_options;

void mien_detect_options_default(mien_detect_options *o);

/* Find faces. *faces is malloc'd (free with free()); *n_faces may be 0. Sorted by score. */
int mien_detect(mien_session *s, const mien_image *img, const mien_detect_options *o,
                mien_face **faces, int *n_faces);

/* ==== Alignment and embedding ==== */

/* The canonical 5-point template of ArcFace for a 112x112 crop. */
extern const float mien_arcface_template[5][2];

/* Warp the face onto the embedder's aligned crop (112x112 for MobileFaceNet). out is filled
 * with a freshly allocated image. */
int mien_align(mien_session *s, const mien_image *img, const mien_face *face, mien_image *out);

/* Embed one face of img: align, run the embedder, L2-normalise. emb has room for
 * mien_models_embedding_dim() floats. */
int mien_embed(mien_session *s, const mien_image *img, const mien_face *face, float *emb);

/* Embed an already aligned crop (as made by mien_align). */
int mien_embed_aligned(mien_session *s, const mien_image *chip, float *emb);

/* ==== Photos: detect and embed without decoding more than the networks need ====
 *
 * A mien_photo holds an encoded photo (a copy of the bytes) and decodes it lazily. A big
 * baseline JPEG is decoded at a reduced scale for detection (libjpeg-turbo DCT scaling: 1/2,
 * 1/4 or 1/8, the longer side kept >= 4 times the detector input), and each face's landmark
 * and embedding crops read the coarsest scale at which the crop is not magnified (the full
 * size for small faces). Photos under 8 times the detector input (2048 pixels for BlazeFace
 * 256) give exactly what mien_image_load + mien_detect + mien_embed give; bigger ones the
 * same faces, faster, with embeddings within cosine 0.9995 of those (as close as the same
 * photo shifted by one pixel). Every coordinate is in pixels of the full-size upright photo.
 * A photo is used by one thread at a time. */
typedef struct mien_photo mien_photo;

int mien_photo_open(mien_session *s, const void *data, size_t len, mien_photo **out);
int mien_photo_load(mien_session *s, const char *path, mien_photo **out);
void mien_photo_close(mien_photo *p);
/* Full size, upright (EXIF orientation applied). */
void mien_photo_size(const mien_photo *p, int *width, int *height);
/* The full-size image (decoded on first call), owned by the photo: valid until it closes. */
int mien_photo_image(mien_session *s, mien_photo *p, const mien_image **img);
/* As mien_detect and mien_embed. */
int mien_photo_detect(mien_session *s, mien_photo *p, const mien_detect_options *o,
                      mien_face **faces, int *n_faces);
int mien_photo_embed(mien_session *s, mien_photo *p, const mien_face *face, float *emb);

/* Cosine similarity of two embeddings (L2-normalised vectors: their dot product). */
float mien_similarity(const float *a, const float *b, int dim);

#ifdef __cplusplus
}
#endif
#endif
