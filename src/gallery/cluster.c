/* Face clustering: the similarity graph of a set of embeddings and Chinese whispers on it. */
#include "gallery/cluster.h"

#include "gallery/gallery_int.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* ==== Chinese whispers ==== */

static uint64_t xorshift64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

typedef struct size_rank {
    int label, size, first;
} size_rank;

static int cmp_rank(const void *a, const void *b) {
    const size_rank *x = a, *y = b;
    if (x->size != y->size) return y->size - x->size;
    return x->first - y->first;
}

int gallery_chinese_whispers(int n, const int *start, const int *nbr, const float *w,
                             int iterations, uint64_t seed, int *labels) {
    if (n <= 0) return 0;
    double *votes = calloc((size_t)n, sizeof *votes); /* (n,) weight per label, this node */
    int *touched = malloc((size_t)n * sizeof *touched);
    size_rank *rank = malloc((size_t)n * sizeof *rank);
    int *map = malloc((size_t)n * sizeof *map);
    if (!votes || !touched || !rank || !map) {
        free(votes), free(touched), free(rank), free(map);
        return -1;
    }
    for (int i = 0; i < n; i++) labels[i] = i;
    uint64_t state = seed ? seed : 0x9e3779b97f4a7c15ull;
    const uint64_t picks = (uint64_t)n * (uint64_t)(iterations > 0 ? iterations : 100);
    for (uint64_t it = 0; it < picks; it++) {
        int v = (int)(xorshift64(&state) % (uint64_t)n);
        if (start[v] == start[v + 1]) continue; /* isolated: keeps its label */
        int nt = 0;
        for (int j = start[v]; j < start[v + 1]; j++) {
            int l = labels[nbr[j]];
            if (votes[l] == 0) touched[nt++] = l;
            votes[l] += w ? w[j] : 1.0;
        }
        int best = labels[v];
        double best_w = -1;
        for (int t = 0; t < nt; t++) {
            int l = touched[t];
            if (votes[l] > best_w || (votes[l] == best_w && l < best)) best_w = votes[l], best = l;
            votes[l] = 0;
        }
        labels[v] = best;
    }
    /* Renumber: biggest cluster first. */
    for (int i = 0; i < n; i++) rank[i] = (size_rank){i, 0, n};
    for (int i = 0; i < n; i++) {
        rank[labels[i]].size++;
        if (i < rank[labels[i]].first) rank[labels[i]].first = i;
    }
    qsort(rank, (size_t)n, sizeof *rank, cmp_rank);
    int count = 0;
    for (int i = 0; i < n && rank[i].size > 0; i++) map[rank[i].label] = count++;
    for (int i = 0; i < n; i++) labels[i] = map[labels[i]];
    free(votes), free(touched), free(rank), free(map);
    return count;
}

/* ==== Clustering embeddings ==== */

int mien_cluster(const float *emb, int n, int dim, float threshold, int iterations,
                 uint64_t seed, int *labels, int *n_clusters) {
    if (n < 0 || dim <= 0 || (n > 0 && (!emb || !labels)) || !n_clusters) return MIEN_EINVAL;
    *n_clusters = 0;
    if (n == 0) return MIEN_OK;
    size_t bytes;
    if (!mien_mul3_size((size_t)n, (size_t)dim, sizeof(float), &bytes)) return MIEN_ETOOBIG;
    float *v = malloc(bytes);
    int *start = malloc(((size_t)n + 1) * sizeof *start);
    const int block = 256;
    float *sims = malloc((size_t)block * (size_t)n * sizeof *sims);
    int *nbr = NULL;
    size_t n_edges = 0, cap = 0;
    int rc = (v && start && sims) ? MIEN_OK : MIEN_ENOMEM;
    for (int i = 0; !rc && i < n; i++)
        if (gallery_normalise(emb + (size_t)i * dim, dim, v + (size_t)i * dim)) rc = MIEN_EINVAL;
    /* The graph, a block of rows at a time: faces joined when similarity >= threshold, each
     * face to itself included. */
    for (int r0 = 0; !rc && r0 < n; r0 += block) {
        int nr = n - r0 < block ? n - r0 : block;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, n, dim, 1.0f, v + (size_t)r0 * dim,
                    dim, v, dim, 0.0f, sims, n);
        for (int i = 0; !rc && i < nr; i++) {
            start[r0 + i] = (int)n_edges;
            for (int j = 0; j < n; j++) {
                if (!(sims[(size_t)i * n + j] >= threshold) && j != r0 + i) continue;
                if (n_edges == cap) {
                    size_t nc = cap ? 2 * cap : (size_t)n * 8;
                    int *nb = nc <= (size_t)2147483647 ? realloc(nbr, nc * sizeof *nb) : NULL;
                    if (!nb) {
                        rc = MIEN_ENOMEM;
                        break;
                    }
                    nbr = nb;
                    cap = nc;
                }
                nbr[n_edges++] = j;
            }
        }
    }
    if (!rc) {
        start[n] = (int)n_edges;
        int count = gallery_chinese_whispers(n, start, nbr, NULL, iterations, seed, labels);
        if (count < 0) rc = MIEN_ENOMEM;
        else *n_clusters = count;
    }
    free(v);
    free(start);
    free(sims);
    free(nbr);
    return rc;
}
