/* A C interface to hnswlib (header-only C++, Debian's libhnswlib-dev): the gallery's
 * approximate nearest-neighbour index. Implemented in hnsw_shim.cpp, the one C++ file of
 * mien; every C++ exception stops at this boundary and becomes a status.
 *
 * Vectors are L2-normalised float32 of one dimension; the distance is 1 - dot product, and
 * results are reported as similarities (the dot product). Labels are the caller's 64-bit ids
 * (the gallery uses face ids).
 *
 * Threads: ghnsw_search may run on any number of threads at once; ghnsw_add, ghnsw_delete
 * and ghnsw_save need the caller to exclude searches (the gallery's write lock). */
#ifndef MIEN_GALLERY_HNSW_H
#define MIEN_GALLERY_HNSW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ghnsw ghnsw;

typedef struct ghnsw_params {
    int M;                /* graph degree (links per node on the upper layers; 2M on layer 0) */
    int ef_construction;  /* candidate list while building */
    int ef_search;        /* candidate list while searching (raised to k when smaller) */
    uint64_t seed;        /* level generator seed: same input, same graph */
} ghnsw_params;

/* The parameters chosen with bench/bench_gallery (README: Identification and clustering). */
void ghnsw_params_default(ghnsw_params *p);

/* New empty index for vectors of dim floats, with room for capacity (it grows on demand).
 * Returns a mien status; err (errsize bytes) receives the reason. */
int ghnsw_create(int dim, size_t capacity, const ghnsw_params *p, ghnsw **out, char *err,
                 size_t errsize);
void ghnsw_free(ghnsw *h);

/* Add n vectors (n, dim) with their labels, on `threads` threads (hnswlib's inserts are
 * thread-safe among themselves). A label already present is replaced. */
int ghnsw_add(ghnsw *h, const float *v, const int64_t *labels, size_t n, int threads, char *err,
              size_t errsize);

/* Mark a label deleted: it is never returned again (its node still routes searches). Unknown
 * or already deleted labels are ignored. */
void ghnsw_delete(ghnsw *h, int64_t label);

/* The k nearest (highest dot product) live vectors to q, best first: labels and similarities
 * (k each); *n_out <= k. ef = 0 uses the index's ef_search. */
int ghnsw_search(const ghnsw *h, const float *q, int k, int ef, int64_t *labels, float *sims,
                 int *n_out);

size_t ghnsw_count(const ghnsw *h);   /* live vectors */

/* 1 when the index holds exactly these n live labels with exactly these vectors (n, dim)
 * (bit for bit), 0 otherwise: the check that a cached index still matches the gallery. */
int ghnsw_matches(const ghnsw *h, const int64_t *labels, const float *v, size_t n);
int ghnsw_dim(const ghnsw *h);

/* Write the index to path / read it back (hnswlib's own format). ghnsw_load checks that the
 * file holds vectors of dim floats and refuses a short or damaged file. */
int ghnsw_save(const ghnsw *h, const char *path, char *err, size_t errsize);
int ghnsw_load(const char *path, int dim, const ghnsw_params *p, ghnsw **out, char *err,
               size_t errsize);

#ifdef __cplusplus
}
#endif
#endif
