/* Chinese whispers graph clustering (Biemann 2006), as dlib's chinese_whispers. */
#ifndef MIEN_GALLERY_CLUSTER_H
#define MIEN_GALLERY_CLUSTER_H

#include <stdint.h>

/* A weighted undirected graph in compressed rows: the neighbours of node i are
 * nbr[start[i] .. start[i+1]-1] with weights w[...] (w may be NULL: all 1). Every edge is
 * listed from both ends; a node may list itself (dlib's face example does: each face votes
 * for its own label too).
 *
 * Every node starts with its own label; then n * iterations times a node is drawn at random
 * (uniformly, with replacement, from a xorshift generator seeded with seed) and takes the
 * label with the largest total edge weight among its neighbours (ties: the smallest label).
 * labels (n,) receive 0 .. count - 1, numbered by decreasing cluster size (ties: by smallest
 * member). Returns the number of clusters, or -1 when out of memory. */
int gallery_chinese_whispers(int n, const int *start, const int *nbr, const float *w,
                             int iterations, uint64_t seed, int *labels);

#endif
