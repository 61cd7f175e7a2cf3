/* mien-train-mpi: `mien train` as one rank of a data-parallel MPI run,
 *
 *   mpirun -np 2 build/mien-train-mpi --data DIR --out FILE [mien train options]
 *
 * This is the only file that includes mpi.h: it fills the trainer's communicator (comm.h)
 * with MPI collectives on MPI_COMM_WORLD and runs the train command. The Makefile compiles it
 * with `mpicc --showme:compile` and links `mpicc --showme:link`, so the library and the mien
 * binary never depend on MPI. */
#include "cli/cli.h"
#include "train/comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>

/* MPI counts are int: collectives over longer buffers go in chunks. */
#define CHUNK ((int64_t)1 << 28)

static int reduce(void *buf, int64_t n, MPI_Datatype type, size_t size, MPI_Op op) {
    for (int64_t at = 0; at < n; at += CHUNK) {
        int64_t k = n - at < CHUNK ? n - at : CHUNK;
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)at * size, (int)k, type, op,
                          MPI_COMM_WORLD) != MPI_SUCCESS)
            return 1;
    }
    return 0;
}

static int m_sum_f(void *ctx, float *buf, int64_t n) { return reduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM); }
static int m_sum_d(void *ctx, double *buf, int64_t n) { return reduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM); }
static int m_max_f(void *ctx, float *buf, int64_t n) { return reduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_MAX); }

static int m_gather_all(void *ctx, const void *send, void *recv, int64_t bytes) {
    if (bytes > INT_MAX) return 1;
    return MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD) != MPI_SUCCESS;
}

static int m_bcast(void *ctx, void *buf, int64_t bytes, int root) {
    if (bytes > INT_MAX) return 1;
    return MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS;
}

static int m_barrier(void *ctx) { return MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS; }

int main(int argc, char **argv) {
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mien-train-mpi: MPI_Init failed\n");
        return 1;
    }
    tr_comm comm = {.sum_f = m_sum_f, .sum_d = m_sum_d, .max_f = m_max_f,
                    .gather_all = m_gather_all, .bcast = m_bcast, .barrier = m_barrier};
    MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
    /* Messages name the command as `mien train` does. */
    char name[] = "train";
    argv[0] = name;
    int rc = cmd_train_with(argc, argv, &comm);
    /* A rank that fails must not leave the others waiting in a collective. */
    if (rc != 0 && comm.size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return rc;
}
