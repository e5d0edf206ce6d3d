/* MPI implementation of spqr_comm for `spqr quantize` (cli/mpi_comm.h). */
#include "cli/mpi_comm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef SPQR_WITH_MPI
#include <mpi.h>
#endif

/* 1 when this process was started by mpirun (Open MPI, or a PMI launcher). */
static int under_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

#ifdef SPQR_WITH_MPI
/* MPI counts are int: big buffers go in pieces. */
#define CHUNK ((size_t)1 << 30)

static int mpi_sum_i64(void *user, int64_t *buf, size_t n) {
    (void)user;
    for (size_t i = 0; i < n; i += CHUNK / 8) {
        const size_t k = n - i < CHUNK / 8 ? n - i : CHUNK / 8;
        if (MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)k, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return 1;
    }
    return 0;
}

static int mpi_bcast(void *user, void *buf, size_t bytes, int32_t root) {
    (void)user;
    for (size_t i = 0; i < bytes; i += CHUNK) {
        const size_t k = bytes - i < CHUNK ? bytes - i : CHUNK;
        if (MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    }
    return 0;
}
#endif

int cli_mpi_start(spqr_comm *c, char *msg, size_t cap) {
    *c = (spqr_comm){0, 1, NULL, NULL, NULL};
    if (!under_mpirun()) return 0;
#ifdef SPQR_WITH_MPI
    int rank = 0, size = 1;
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        snprintf(msg, cap, "MPI_Init failed");
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    *c = (spqr_comm){rank, size, NULL, mpi_sum_i64, mpi_bcast};
    return 1;
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) == 1) return 0; /* one process: the same as a plain run */
    snprintf(msg, cap, "started by mpirun, but this spqr was built without MPI (install libopenmpi-dev and rebuild)");
    return -1;
#endif
}

int cli_mpi_end(int started, int code) {
#ifdef SPQR_WITH_MPI
    if (started && code) MPI_Abort(MPI_COMM_WORLD, code);
    if (started) MPI_Finalize();
#else
    (void)started;
#endif
    return code;
}
