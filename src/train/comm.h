/* Collective operations between the processes of a data-parallel training run.
 *
 * The trainer is written once against this small vtable. A single process uses
 * tr_comm_single() (every collective is the identity); mien-train-mpi fills it with MPI calls
 * (src/cli/main_mpi.c), so nothing outside that one file includes mpi.h. Every rank
 * calls the collectives in the same order with the same counts. */
#ifndef MIEN_TRAIN_COMM_H
#define MIEN_TRAIN_COMM_H

#include <stdint.h>

typedef struct tr_comm {
    int rank;                /* this process, 0 .. size-1 */
    int size;                /* number of processes */
    void *ctx;               /* the implementation's state */
    /* In place over every rank: buf[i] = sum (or max) of buf[i] of every rank. */
    int (*sum_f)(void *ctx, float *buf, int64_t n);
    int (*sum_d)(void *ctx, double *buf, int64_t n);
    int (*max_f)(void *ctx, float *buf, int64_t n);
    /* recv (size * bytes) = the send blocks (bytes each) of ranks 0, 1, ... in order. */
    int (*gather_all)(void *ctx, const void *send, void *recv, int64_t bytes);
    /* Copy root's buf (bytes) to every rank. */
    int (*bcast)(void *ctx, void *buf, int64_t bytes, int root);
    int (*barrier)(void *ctx);
} tr_comm;

/* The one-process communicator (a static object). */
const tr_comm *tr_comm_single(void);

#endif
