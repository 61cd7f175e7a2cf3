/* Training data: a folder per identity, the aligned crops cached in one binary file, batches
 * with horizontal-flip augmentation, and held-out verification pairs.
 *
 * Detection and alignment happen once (the CLI runs mien_detect + mien_align on the photos the
 * cache lacks); the cache maps each photo's path relative to the data folder to its crop, or
 * to "no face", so a later run, another loss or another rank reads crops only.
 *
 * Cache file (little-endian): "MIENCROP", u32 version (1), u32 side, u32 count, then count
 * entries: u32 path length, path bytes, u8 found, and side*side*3 RGB bytes when found. */
#ifndef MIEN_TRAIN_DATA_H
#define MIEN_TRAIN_DATA_H

#include "core/err.h"

#include <stdint.h>

/* ==== Folder listing ==== */

typedef struct tr_identity {
    char *name;              /* folder name */
    char **files;            /* (n_files) paths relative to the root: "name/photo.jpg", sorted */
    int n_files;
} tr_identity;

typedef struct tr_listing {
    tr_identity *id;         /* (n_id) sorted by name */
    int n_id;
} tr_listing;

/* Every sub-folder of root with at least min_images photos (.jpg, .jpeg, .png, .webp);
 * max_per_class > 0 keeps the first that many of each (in name order). */
int tr_list_identities(const char *root, int min_images, int max_per_class, tr_listing *out,
                       mien_err *e);
void tr_listing_free(tr_listing *l);

/* ==== Crop cache ==== */

typedef struct tr_crops {
    int side;                /* crop side in pixels */
    int n, cap;
    char **path;             /* (n) relative paths, sorted (binary search) */
    unsigned char *found;    /* (n) 1: a face was found */
    uint8_t **pix;           /* (n) side*side*3 RGB, NULL when not found */
} tr_crops;

/* Load a cache (a missing file gives an empty cache of that side). */
int tr_crops_load(const char *path, int side, tr_crops *out, mien_err *e);
int tr_crops_save(const char *path, const tr_crops *c, mien_err *e);
/* Index of a path, or -1. */
int tr_crops_find(const tr_crops *c, const char *rel);
/* Insert or replace an entry; pix (side*side*3) is copied, NULL for "no face". */
int tr_crops_put(tr_crops *c, const char *rel, const uint8_t *pix, mien_err *e);
void tr_crops_free(tr_crops *c);

/* ==== Samples and batches ==== */

typedef struct tr_sample {
    const uint8_t *pix;      /* crop (side*side*3), owned by the cache */
    int label;               /* class index */
} tr_sample;

/* Permutation of 0..n-1 for an epoch, from a counter-based hash (the same on every rank). */
void tr_epoch_order(uint64_t seed, int64_t epoch, int n, int *order);
/* Fill a network input (batch, side, side, 3) with (pixel - 127.5) / 128 of samples
 * idx[0..batch-1], mirrored where flip[i]. */
void tr_fill_input(const tr_sample *s, const int *idx, const unsigned char *flip, int batch,
                   int side, float *input);
/* The same with input = (pixel - mean) * scale. */
void tr_fill_input_norm(const tr_sample *s, const int *idx, const unsigned char *flip, int batch,
                        int side, float mean, float scale, float *input);

/* ==== Held-out pairs ====
 * Identities ids[0..n_ids-1] are dealt round-robin to n_folds folds; each fold gets
 * same_per_fold genuine pairs (two photos of one of its identities) and as many impostor pairs
 * (photos of two of its identities), drawn with a counter-based hash of seed. Folds are
 * identity-disjoint, as LFW's. Only photos with a found face are used. Written in the generic
 * format of ve_pairs_load: "pathA<TAB>pathB<TAB>0|1<TAB>fold". */
typedef struct tr_pair {
    int a, b;                /* crop indices (tr_crops) */
    int same;                /* 1: one identity */
    int fold;
} tr_pair;

/* *pairs is malloc'd (free()). */
int tr_make_pairs(const tr_listing *l, const int *ids, int n_ids, const tr_crops *c, int n_folds,
                  int same_per_fold, uint64_t seed, tr_pair **pairs, int *n_pairs, mien_err *e);
int tr_write_pairs(const char *path, const tr_crops *c, const tr_pair *p, int n, mien_err *e);

#endif
