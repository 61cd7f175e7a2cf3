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
    const char *detector;    /* "ultraface@320+ultraface@640" (default), "blazeface", ... */
    const char *embedder;    /* "mobilefacenet-tflite" (default), "dlib", ... */
    const char *landmarks;   /* "onet" (default), "facemesh", "68", "facemesh+68", "none" */
    mien_backend backend;    /* default MIEN_BACKEND_AUTO */
    int threads;             /* threads per session for intra-op parallelism; 0 = 1 */
    int flip;                /* embed with horizontal-flip test-time augmentation: -1 default */
    const char *model_file;  /* a checkpoint written by `mien train`: its network replaces the
                              * embedder's (input size, normalisation, threshold from the file,
                              * ArcFace crop); NULL (default) for none */
    unsigned analyze;        /* MIEN_ANALYZE_* tasks whose models are loaded at open, so that
                              * mien_analyze can answer them; default 0 (none) */
    const char *analysis;    /* which models answer each task, "TASK=MODEL[+MODEL...],...", e.g.
                              * "age=fr_age+gear,liveness=antispoof" (several: their mean);
                              * pose: "landmarks" (the fit of the five alignment points, the
                              * default), "landmarks68" (of the 68 landmarks where a face has
                              * them), "fr_pose"; NULL or "" for the defaults (README, "Face
                              * analysis") */
    float liveness_threshold;/* liveness score at or above which a face is real; 0: the models'
                              * default */
} mien_config;

/* Fill *cfg with the defaults. Call this, then change the fields you care about. */
void mien_config_default(mien_config *cfg);

/* Open the model set found in dir (the folder the setup fills: dir/human/..., dir/faceapi/...).
 * dir NULL searches, in this order:
 *   1. $MIEN_MODELS (when set and not empty);
 *   2. ./models (the current directory's, as in a checkout after `make setup`);
 *   3. the user's data folder: $XDG_DATA_HOME/mien/models, else $HOME/.local/share/mien/models;
 *   4. the install prefix's PREFIX/share/mien/models (what `make install` fills), PREFIX being
 *      the folder above the one holding libmien.so, or the program when libmien is linked in
 *      statically (/usr/local/bin/mien -> /usr/local/share/mien/models);
 *   5. a build tree's models: when that folder is called build or build-*, ../models beside it
 *      (build/mien or build/libmien.so of a checkout run from anywhere).
 * The first folder that exists and opens is used (mien_models_dir() says which); a folder
 * missing a model file (MIEN_EIO) passes to the next; any other failure (a damaged model, an
 * unknown model name) stops the search. When no folder opens the message names every place
 * looked at and why each failed; the status is that of the last folder tried (MIEN_EIO when
 * none exists).
 * On failure *out may still hold a handle whose mien_models_errmsg() says why; close it. */
int mien_models_open(const char *dir, const mien_config *cfg, mien_models **out);
void mien_models_close(mien_models *m);
const char *mien_models_errmsg(const mien_models *m);

/* The folder the models were read from (dir as given, or the one the search found). */
const char *mien_models_dir(const mien_models *m);

/* The folder mien_models_open(NULL, ...) would try first: the first place of its search order
 * that exists, written to buf. MIEN_ENOTFOUND when none exists (buf then holds a message naming
 * every place looked at); MIEN_ETOOBIG when size is too small. */
int mien_models_find(char *buf, size_t size);

/* Embedding size and a stable name ("mobilefacenet") of the open embedder. */
int mien_models_embedding_dim(const mien_models *m);
const char *mien_models_embedder_name(const mien_models *m);

/* Default cosine-similarity threshold of the open embedder for "same person". */
float mien_models_threshold(const mien_models *m);
/* Default threshold for mien_cluster() with the open embedder: stricter than the 1:1 one
 * where it was measured (clusters join faces through chains of pairs), else the same. */
float mien_models_cluster_threshold(const mien_models *m);

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
     * 68-point model, none from O-Net (the default: its five are the alignment points). */
    int n_landmarks;
    float landmarks[MIEN_MAX_LANDMARKS][2];
    /* The alignment points in ArcFace template order: eye, eye, nose tip, mouth corner, mouth
     * corner, each pair in image order (smaller x first on an upright frontal face). When the
     * source has no mouth corners n_points is 4 and points[3] is the mouth centre. */
    int n_points;
    float points[5][2];
} mien_face;

typedef struct mien_detect_options {
    float min_score;       /* default 0.6; a face O-Net doubts scores below 0.5 */
    float min_size;        /* faces smaller than this (box side, pixels) are dropped; default 0 */
    int tile;              /* 1: also look for small faces in overlapping tiles of big photos */
    int max_faces;         /* cap on the number of faces returned (largest first); 0 = no cap */
} mien_detect_options;

void mien_detect_options_default(mien_detect_options *o);

/* Find faces. *faces is allocated (free with mien_faces_free()); *n_faces may be 0. Sorted
 * by score. Behind O-Net (the default), a photo in which nothing is found is looked at again
 * inside a grey margin, for a face that fills the frame: such a face's box and points may
 * reach past the photo's edges. */
int mien_detect(mien_session *s, const mien_image *img, const mien_detect_options *o,
                mien_face **faces, int *n_faces);
/* Free the array of mien_detect (NULL is fine). */
void mien_faces_free(mien_face *faces);

/* The landmarks of a face known by its box alone (from another detector, a tracker or a
 * user): face->box set, face->n_landmarks 0 (or the detector's keypoints, eyes first, which
 * level the crop). Runs the model set's landmark source on the box as mien_detect does and
 * fills face->landmarks (68 points with a 68-point source) and face->points, ready for
 * mien_align and mien_embed. *present (may be NULL) is 0 when the face mesh sees no face in
 * the box (the points are still filled). With landmarks "none" there is no network to run:
 * MIEN_EUNSUPPORTED unless the face already has its points. */
int mien_landmarks(mien_session *s, const mien_image *img, mien_face *face, int *present);

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
/* As mien_detect (free *faces with mien_faces_free()) and mien_embed. */
int mien_photo_detect(mien_session *s, mien_photo *p, const mien_detect_options *o,
                      mien_face **faces, int *n_faces);
int mien_photo_embed(mien_session *s, mien_photo *p, const mien_face *face, float *emb);

/* Cosine similarity of two embeddings (L2-normalised vectors: their dot product). */
float mien_similarity(const float *a, const float *b, int dim);

/* ==== Face analysis ====
 * Attributes of one detected face, each computed on demand: the tasks asked for in
 * mien_analyze's flags, which must have been loaded at open (mien_config.analyze). Each model
 * sees its own crop, taken with the similarity transform of the face's alignment points (so
 * the crop follows the face's roll), in the geometry and normalisation it was trained with. */

enum {
    MIEN_ANALYZE_AGE = 1u << 0,        /* age in years */
    MIEN_ANALYZE_GENDER = 1u << 1,     /* male / female with a confidence */
    MIEN_ANALYZE_EXPRESSION = 1u << 2, /* 7 expressions (FER2013's classes) */
    MIEN_ANALYZE_LIVENESS = 1u << 3,   /* real face or a spoof (printed photo, screen) */
    MIEN_ANALYZE_POSE = 1u << 4,       /* yaw, pitch, roll in degrees */
    MIEN_ANALYZE_QUALITY = 1u << 5,    /* 0..1 and its parts (implies the pose) */
    MIEN_ANALYZE_MASK = 1u << 6,       /* face mask worn or not */
    MIEN_ANALYZE_ALL = 0x7fu
};

#define MIEN_EXPRESSIONS 7
/* "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise": the order of
 * mien_analysis.expression_scores. */
extern const char *const mien_expression_names[MIEN_EXPRESSIONS];

#define MIEN_RACES 5
/* "white", "black", "asian", "indian", "other": GEAR's race classes in its own order (Human's
 * src/gear/gear.ts), the order of mien_analysis.race_scores. */
extern const char *const mien_race_names[MIEN_RACES];

typedef struct mien_analysis {
    unsigned tasks;          /* MIEN_ANALYZE_* bits that were computed */
    float age;               /* years */
    int male;                /* 1: male, 0: female */
    float gender_score;      /* confidence of that answer, 0.5..1 */
    int expression;          /* index of the most likely expression */
    float expression_scores[MIEN_EXPRESSIONS]; /* probabilities, summing to 1 */
    float liveness;          /* 0..1, high for a live face */
    int real;                /* liveness >= the threshold */
    float liveness_threshold;/* the threshold used */
    float yaw, pitch, roll;  /* degrees: yaw > 0 turned towards the image's right (the
                              * subject's left), pitch > 0 looking up, roll > 0 clockwise in
                              * the image */
    float quality;           /* 0..1: how good the face is for recognition: the geometric mean
                              * of the recognizability and of the image's parts (the geometric
                              * mean of the parts' scores below, and of the eyes being open and
                              * no mask when those were measured); the image's parts alone when
                              * the recognizability is not measured. LFW's median face: 0.9 */
    float sharpness;         /* variance of the Laplacian of the aligned 112x112 grey crop
                              * over the variance of its grey levels (blur lowers it, contrast
                              * does not change it) */
    float brightness;        /* mean grey level of the face, 0..255 */
    float contrast;          /* standard deviation of the grey levels of the face */
    float face_size;         /* distance between the eye centres, in pixels */
    float eyes_open;         /* 0..1, probability that the eyes are open (-1: not measured) */
    float sharpness_score, brightness_score, contrast_score, size_score, pose_score;
    float feature_norm;      /* length of the recognizer's output before normalisation (-1: not
                              * measured): faces it finds little identity in come out short */
    float recognizability;   /* 0..1 (-1: not measured, the recognizer is not calibrated): the
                              * chance, by the feature norm, that this face and another photo of
                              * the person are accepted at the recognizer's threshold (fitted on
                              * frontal-to-profile pairs of cfp_dev) */
    int mask;                /* 1: a mask covers the mouth and nose */
    float mask_score;        /* confidence of that answer, 0.5..1 */
    int race;                /* index into mien_race_names of the most likely class; -1 when
                              * no model answering it ran (only GEAR does: --analysis age=gear
                              * or gender=gear) */
    float race_scores[MIEN_RACES]; /* GEAR's probabilities, summing to 1 */
} mien_analysis;

/* Analyse face (from mien_detect on img) for the tasks in flags (MIEN_ANALYZE_*). A task
 * whose models were not loaded at open is MIEN_EINVAL. *out is filled (out->tasks says
 * what). */
int mien_analyze(mien_session *s, const mien_image *img, const mien_face *face, unsigned flags,
                 mien_analysis *out);
/* The same for a face of a photo (its full-size image is decoded on first use). */
int mien_photo_analyze(mien_session *s, mien_photo *p, const mien_face *face, unsigned flags,
                       mien_analysis *out);

/* The tasks the open model set can analyse (MIEN_ANALYZE_* bits). */
unsigned mien_models_analysis_tasks(const mien_models *m);
/* The models that answer one task ("fr_age+gear"), "" when none is loaded. For POSE without
 * a model: "landmarks" (the fit of the alignment points) or "landmarks68". */
const char *mien_models_analysis_names(const mien_models *m, unsigned task);

/* ==== Gallery ==== */

/* A gallery of known people: named subjects, each with any number of enrolled face
 * embeddings. It lives in one SQLite file (WAL journal, every change one transaction) and is
 * mirrored in memory as one contiguous (faces, dim) matrix of L2-normalised embeddings, which
 * is what a search reads.
 *
 * Threads: one handle may be shared by any number of threads. Searches (search, identify,
 * subjects, count, export) run concurrently under a shared lock; changes (enroll, rename,
 * forget, import) take it exclusively, so there is one writer at a time. The message of
 * mien_gallery_errmsg() is that of the handle's most recent failure in any thread; the
 * returned status is always exact.
 *
 * Processes: SQLite lets several processes open the file; each handle sees the file as it was
 * when opened, plus its own changes. A server should be the file's only writer.
 *
 * Model binding: a gallery holds embeddings of one embedder (name and dimension, stored with
 * every face). Enrolling, importing or searching with another model's embeddings fails with
 * MIEN_EMISMATCH. An empty gallery accepts any model.
 *
 * Collections: one gallery file (or database) holds any number of named face collections,
 * each its own namespace of subjects and faces, bound to its own embedder, with its own
 * in-memory matrix and index. A handle works on one collection (options.collection; the
 * default one is "default", which is where a gallery made before collections existed keeps
 * its people: opening such a file upgrades it in place). Face ids are unique across the whole
 * gallery; a handle sees, searches and changes its own collection's faces only. */

typedef struct mien_gallery mien_gallery;

/* Subject names: 1 to MIEN_GALLERY_NAME_MAX - 1 bytes of UTF-8, no control characters, not
 * all blanks, and not "unknown" (the answer for faces that match nobody). */
#define MIEN_GALLERY_NAME_MAX 128

typedef struct mien_gallery_options {
    int read_only;        /* 1: never write; the file must exist. Default 0 */
    int create;           /* 1: create the file when it is missing (default 1; not read_only) */
    const char *model;    /* embedder the caller will use, or NULL: a gallery bound to another
                           * model is refused at open (MIEN_EMISMATCH). Default NULL */
    int dim;              /* its embedding size (with model), or 0 */
    int ann;              /* approximate search index (HNSW): -1 from ann_min_faces faces on
                           * (default), 0 never (exact search only), 1 always */
    int ann_min_faces;    /* size at which ann == -1 switches to the index; 0 = the default,
                           * MIEN_GALLERY_ANN_MIN_FACES */
    int ann_cache;        /* 1 (default): keep the index in PATH.hnsw beside the file, so that
                           * the next open loads it instead of building it again */
    int threads;          /* threads that build the index; 0 = all cores */
    const char *collection; /* the face collection to work on: 1 to 63 characters of
                           * A-Z a-z 0-9 . _ - (not starting with '.'); NULL or "" for
                           * MIEN_GALLERY_DEFAULT_COLLECTION. Created when missing if create is
                           * set, else MIEN_ENOTFOUND */
} mien_gallery_options;

#define MIEN_GALLERY_DEFAULT_COLLECTION "default"

/* Where exact search (one BLAS matrix-vector product over all faces) stops paying off
 * against the HNSW index, measured by bench/bench_gallery (see README). */
#define MIEN_GALLERY_ANN_MIN_FACES 200000

void mien_gallery_options_default(mien_gallery_options *o);

/* The default gallery file: $XDG_DATA_HOME/mien/gallery.db, else
 * $HOME/.local/share/mien/gallery.db. MIEN_ENOTFOUND when neither variable is set,
 * MIEN_ETOOBIG when size is too small. The folder is not created. */
int mien_gallery_default_path(char *buf, size_t size);

/* Open (or create) the gallery at path and load it into memory. o may be NULL (defaults).
 * A path starting with postgresql:// or postgres:// is a libpq URI: the gallery is kept in
 * that database (created on first use) and the handle follows what other processes commit
 * there (README, Identification: PostgreSQL); a server that cannot be reached is MIEN_EIO.
 * On failure *out may still hold a handle whose mien_gallery_errmsg() says why; close it.
 * A missing file with read_only or create == 0 is MIEN_ENOTFOUND; a file that is not a
 * mien gallery (or is damaged) is MIEN_EFORMAT. */
int mien_gallery_open(const char *path, const mien_gallery_options *o, mien_gallery **out);
void mien_gallery_close(mien_gallery *g);
const char *mien_gallery_errmsg(const mien_gallery *g);

/* The embedder the gallery is bound to: name ("" while empty) and dimension (0 while empty). */
int mien_gallery_model(mien_gallery *g, char *name, size_t size, int *dim);

/* Number of subjects and faces (either pointer may be NULL). */
void mien_gallery_count(mien_gallery *g, int *n_subjects, int *n_faces);

/* 1 when searches go through the approximate index, 0 when they are exact. */
int mien_gallery_ann_active(mien_gallery *g);

/* One face to enroll. */
typedef struct mien_gallery_face {
    const float *embedding;   /* (dim,) as mien_embed gives it (normalised again on entry) */
    float box[4];             /* where the face was in its photo (x, y, w, h), or zeros */
    const char *image_sha256; /* the photo's sha256 as 64 hex digits, or NULL */
} mien_gallery_face;

/* Add n faces to the subject called name, creating the subject if needed; all or nothing, in
 * one transaction. model and dim name the embedder (MIEN_EMISMATCH when the gallery holds
 * another). A face whose image_sha256 the subject already has is skipped, so enrolling the
 * same photos twice changes nothing; *n_added (may be NULL) counts the faces really added. */
int mien_gallery_enroll(mien_gallery *g, const char *name, const char *model, int dim,
                        const mien_gallery_face *faces, int n, int *n_added);

/* Rename a subject. MIEN_ENOTFOUND when old_name is not there, MIEN_EINVAL when new_name is
 * invalid or taken. */
int mien_gallery_rename(mien_gallery *g, const char *old_name, const char *new_name);

/* Forget a subject: its row and every face are deleted from the file (SQLite's secure_delete
 * overwrites the freed bytes and the WAL is checkpointed and truncated, so the embeddings
 * cannot be read back from the file afterwards) and from memory. MIEN_ENOTFOUND if absent. */
int mien_gallery_forget(mien_gallery *g, const char *name);

typedef struct mien_subject {
    int64_t id;                        /* stable id in the file */
    char name[MIEN_GALLERY_NAME_MAX];
    int n_faces;                       /* enrolled faces */
    int64_t created;                   /* Unix time (seconds) of the first enrollment */
} mien_subject;

/* Every subject, sorted by name. *out is allocated (free with mien_subjects_free()); *n may
 * be 0. */
int mien_gallery_subjects(mien_gallery *g, mien_subject **out, int *n);
void mien_subjects_free(mien_subject *subjects);

/* A search result: one subject. */
typedef struct mien_match {
    int64_t subject_id;
    char name[MIEN_GALLERY_NAME_MAX];
    int64_t face_id;      /* the subject's face that matched best */
    float similarity;     /* cosine similarity of that face: the subject's score is the
                           * maximum over its faces */
} mien_match;

/* The k best subjects for one embedding, best first: out has room for k, *n_out gets
 * min(k, subjects). With the approximate index the best subject is found with the recall
 * measured in the README; the similarities are always exact. */
int mien_gallery_search(mien_gallery *g, const float *emb, int dim, int k, mien_match *out,
                        int *n_out);

/* The same for n embeddings (n, dim) at once (one BLAS matrix product): out is (n, k),
 * n_out is (n,). */
int mien_gallery_search_batch(mien_gallery *g, const float *emb, int n, int dim, int k,
                              mien_match *out, int *n_out);

/* Open-set identification: the best subject (in *best, when the gallery is not empty) and
 * *known = 1 when its similarity is >= threshold (the embedder's threshold is
 * mien_models_threshold()), 0 for "unknown". */
int mien_gallery_identify(mien_gallery *g, const float *emb, int dim, float threshold,
                          mien_match *best, int *known);

/* One enrolled face, as listed by mien_gallery_faces(). */
typedef struct mien_gallery_face_info {
    int64_t id;                          /* face id: assigned at enrollment, never reused */
    char subject[MIEN_GALLERY_NAME_MAX]; /* its subject */
    char image_sha256[65];               /* the source photo's sha256, or "" */
    float box[4];                        /* x, y, w, h in the source photo, or zeros */
    int64_t created;                     /* Unix seconds */
} mien_gallery_face_info;

/* The faces of the subject called name (every face when name is NULL), by increasing id.
 * *out is allocated (free with mien_gallery_faces_free()); *n may be 0. MIEN_ENOTFOUND for an
 * unknown name. */
int mien_gallery_faces(mien_gallery *g, const char *name, mien_gallery_face_info **out, int *n);
void mien_gallery_faces_free(mien_gallery_face_info *faces);

/* Delete one face by id, from the file and from memory; its subject stays, possibly with no
 * face. subject (may be NULL) receives the subject's name. MIEN_ENOTFOUND when no face has
 * that id; MIEN_EUNSUPPORTED when the storage backend cannot delete single faces. */
int mien_gallery_face_delete(mien_gallery *g, int64_t id, char *subject, size_t size);

/* Copy the stored embedding of face id (normalised; dim must be the gallery's) into emb.
 * MIEN_ENOTFOUND when no face has that id, MIEN_EMISMATCH for another dim. */
int mien_gallery_face_embedding(mien_gallery *g, int64_t id, float *emb, int dim);

/* Create a subject with no face yet; *created (may be NULL) = 0 when it already exists. */
int mien_gallery_subject_add(mien_gallery *g, const char *name, int *created);

/* Keep an image with face id (replacing any): its encoded bytes (len of them), media type
 * (e.g. "image/jpeg", up to 63 characters) and kind (what it shows, up to 15 characters: mien
 * serve writes "crop" for the aligned face or "photo" for the source photo). It goes when the
 * face goes. MIEN_ENOTFOUND when the face is not in this handle's collection. */
int mien_gallery_face_image_set(mien_gallery *g, int64_t id, const char *kind, const char *type,
                                const void *data, size_t len);

/* The image kept with face id: *data allocated (free with mien_buffer_free()), its media type and kind
 * into type and kind (either may be NULL). MIEN_ENOTFOUND when the face is not in this
 * handle's collection or has no image. */
int mien_gallery_face_image(mien_gallery *g, int64_t id, void **data, size_t *len, char *type,
                            size_t type_size, char *kind, size_t kind_size);
/* Free bytes the library returned (mien_gallery_face_image's data). */
void mien_buffer_free(void *data);

/* The collection this handle works on. */
const char *mien_gallery_collection(const mien_gallery *g);

/* One collection of the gallery, as listed by mien_gallery_collections(). */
typedef struct mien_collection {
    char name[64];
    char model[64];                      /* embedder bound to it, "" while it has no face */
    int dim;
    int64_t n_subjects, n_faces;
    int64_t created;                     /* Unix seconds */
} mien_collection;

/* Every collection of the gallery (not only this handle's), sorted by name. *out is allocated
 * (free with mien_collections_free()). */
int mien_gallery_collections(mien_gallery *g, mien_collection **out, int *n);
void mien_collections_free(mien_collection *collections);

/* Delete this handle's collection with every subject, face and image in it (as forget, from
 * the file too). The handle is empty afterwards and refuses changes; close it. */
int mien_gallery_drop(mien_gallery *g);

/* Export every subject and face to a portable JSON Lines file (UTF-8): a header line
 * {"format":"mien-gallery","version":1,"model":M,"dim":D}, then one line per subject
 * {"name":N,"created":T,"faces":[{"embedding":[D floats],"box":[x,y,w,h],
 * "image_sha256":H or null,"created":T},...]}, T in Unix seconds. Floats are written with
 * 9 significant digits, which read back bit for bit. */
int mien_gallery_export(mien_gallery *g, const char *path);

/* Import such a file, merging into this gallery (existing subjects get the new faces; faces
 * whose photo the subject already has are skipped), all in one transaction. A file of
 * another model or dimension is MIEN_EMISMATCH. Counts of what was added may be NULL. */
int mien_gallery_import(mien_gallery *g, const char *path, int *n_subjects, int *n_faces);

/* ==== Clustering ==== */

/* Group n faces by person without labels: the graph joins faces whose cosine similarity is
 * >= threshold, and Chinese whispers (as dlib's chinese_whispers: every node starts in its
 * own cluster, then, visiting the nodes in a random order each pass, takes the label that
 * carries the most edge weight among its neighbours) runs for `iterations` passes (0 = 100)
 * from a fixed seed. emb is (n, dim), L2-normalised; labels (n,) receive cluster numbers 0 ..
 * *n_clusters - 1, numbered by decreasing size (ties by first member). Edges have weight 1. */
int mien_cluster(const float *emb, int n, int dim, float threshold, int iterations,
                 uint64_t seed, int *labels, int *n_clusters);

/* ==== Video: tracking faces across frames ====
 *
 * A tracker is fed the frames of one video or camera in order (mien_tracker_push) and follows
 * every face from frame to frame (a ByteTrack-style tracker: a Kalman filter on each box,
 * detections matched to tracks by IoU with a high- and a low-score pass, and by embedding
 * similarity where boxes are ambiguous). A track is born after min_hits detections in a row
 * and dies after max_lost_s seconds without one; a shot cut (a sudden change of the whole
 * picture) ends every track. Each track is named once from its best faces (by detector score,
 * size and frontality): each is embedded and searched in the gallery, and the track takes the
 * name that the majority of them have as nearest subject, when min_votes of them reach it with
 * a similarity >= the threshold (or one does, and so does the normalised mean of the track's
 * faces); otherwise it stays "unknown", and it may become known later as better faces arrive
 * (a MIEN_EVENT_NAMED event says when).
 *
 * Frames are any size (the same within one video is not required); the face models of the
 * session do the detecting and embedding. A tracker is used by one thread at a time, with the
 * session it was opened with. The library never prints: events are returned to the caller. */

typedef struct mien_tracker mien_tracker;

typedef struct mien_tracker_options {
    int detect_every;     /* run the detector on every N-th frame, the motion model carries the
                           * boxes in between (default 1) */
    float high_score;     /* detections from this score start tracks and are matched first
                           * (default 0.5) */
    float low_score;      /* weaker detections down to this score only continue tracks (0.3) */
    float name_score;     /* only faces detected with at least this score are embedded to name
                           * a track (default 0.6, mien_detect's default: a track is named from
                           * faces a still photo would have reported) */
    int min_hits;         /* detections in a row before a track is born (default 3) */
    float max_lost_s;     /* a track not detected for this many seconds dies (default 1.0) */
    float cut_threshold;  /* a frame that differs from the previous one by more than this (and
                           * by 3 times the recent frame-to-frame change) is a shot cut, which
                           * ends every track; 0 disables (default 0.12; the difference is that
                           * of 16x9 thumbnails plus that of colour histograms, 0..2) */
    float threshold;      /* cosine similarity for a name; 0 = the embedder's default */
    int min_votes;        /* faces that must agree on a name (default 2) */
    int max_faces;        /* best faces kept (embedded) per track (default 12) */
    float min_face;       /* faces smaller than this (box side, pixels) are tracked but not
                           * embedded (default 32) */
    float embed_gap_s;    /* at least this long between two embeddings of a track (0.15) */
    int appearance;       /* 1: embed faces to disambiguate close boxes and to join a face that
                           * comes back to its lost track, even without a gallery (default 1) */
    int keep_crops;       /* 1: keep a copy of each track's best face (mien_tracker_crop) */
} mien_tracker_options;

void mien_tracker_options_default(mien_tracker_options *o);

/* One track, as the tracker reports it. Times are the t_s of the frames pushed; frame numbers
 * count the frames pushed, from 0. */
typedef struct mien_track {
    int id;                            /* 1, 2, ... in order of birth */
    char name[MIEN_GALLERY_NAME_MAX];  /* "unknown" until named */
    float similarity;                  /* the name's best similarity over the track's faces;
                                        * while unknown, the nearest subject's (0 if none) */
    char nearest[MIEN_GALLERY_NAME_MAX]; /* nearest subject of the best similarity, or "" */
    double start_s, end_s;             /* first and last frame shown */
    int64_t start_frame, end_frame;
    int frames;                        /* frames in which it was shown */
    int detections;                    /* frames in which the detector found it */
    int faces;                         /* faces embedded for naming */
    float box[4];                      /* x, y, w, h in the latest frame (predicted between
                                        * detections) */
    float score;                       /* detector score of its latest detection */
    double best_s;                     /* the best face: time, frame, box, quality in [0,1] */
    int64_t best_frame;
    float best_box[4];
    float best_quality;
    double named_s;                    /* when the current name was given; -1 while unknown */
} mien_track;

typedef enum mien_event_type {
    MIEN_EVENT_APPEARED = 1,  /* a track is born (t_s: its first frame) */
    MIEN_EVENT_NAMED = 2,     /* a track gets a name, or a better one (t_s: now) */
    MIEN_EVENT_LEFT = 3       /* a track died (t_s: its last frame) */
} mien_event_type;

typedef struct mien_track_event {
    mien_event_type type;
    int id;                            /* the track */
    char name[MIEN_GALLERY_NAME_MAX];  /* its name at the time ("unknown" when not known) */
    float similarity;
    double t_s;
    int64_t frame;
} mien_track_event;

/* Open a tracker that detects with session s and names faces from gallery g (NULL: every
 * track stays "unknown"). o may be NULL (defaults). The session and gallery must outlive it.
 * A gallery of another embedder is MIEN_EMISMATCH. On failure *out may hold a handle whose
 * mien_tracker_errmsg() says why; close it. */
int mien_tracker_open(mien_session *s, mien_gallery *g, const mien_tracker_options *o,
                      mien_tracker **out);
void mien_tracker_close(mien_tracker *t);
const char *mien_tracker_errmsg(const mien_tracker *t);

/* Push the next frame, shown at t_s seconds (must not go back in time). *events (may be
 * NULL) receives what happened at this frame, *n_events how many; the array is the
 * tracker's, valid until the next push or finish. */
int mien_tracker_push(mien_tracker *t, const mien_image *frame, double t_s,
                      const mien_track_event **events, int *n_events);

/* The same with the frame's detections made by the caller (its own detector, or mien's run
 * ahead on other threads): faces (n_faces of them, boxes and scores; points when there are;
 * those under low_score are ignored) are this frame's detections; n_faces < 0 says the
 * detector did not run on this frame (the motion model carries the boxes). detect_every is
 * not used: the caller decides. Faces are still embedded with the tracker's session. */
int mien_tracker_push_faces(mien_tracker *t, const mien_image *frame, double t_s,
                            const mien_face *faces, int n_faces,
                            const mien_track_event **events, int *n_events);

/* End of input (or of a stream that dropped): every live track leaves. The tracker can be
 * pushed again afterwards (later frames start new tracks). */
int mien_tracker_finish(mien_tracker *t, const mien_track_event **events, int *n_events);

/* The tracks shown in the latest frame (born, and detected or carried by the motion model).
 * The array is the tracker's, valid until the next push or finish. */
int mien_tracker_active(mien_tracker *t, const mien_track **tracks, int *n);

/* The track with this id: live, or one that left in the latest push or finish (later they
 * are forgotten). MIEN_ENOTFOUND otherwise. */
int mien_tracker_track(mien_tracker *t, int id, mien_track *out);

/* A copy of the track's best face (its box with a margin), into a new image (free with
 * mien_image_free). Needs keep_crops; same lifetime rule as mien_tracker_track. */
int mien_tracker_crop(mien_tracker *t, int id, mien_image *out);

#ifdef __cplusplus
}
#endif
#endif
