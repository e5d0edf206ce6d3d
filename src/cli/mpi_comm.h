/* The scale-out communicator of `spqr quantize` (include/spqr.h spqr_comm)
 * on MPI, when the CLI is built with it (CMake finds MPI); the library
 * itself links no MPI (docs/quantize.md, "Scale-out"). */
#ifndef SPQR_CLI_MPI_COMM_H
#define SPQR_CLI_MPI_COMM_H

#include "spqr.h"

/* Under mpirun (its environment set) with MPI built in: initializes MPI,
 * fills c and returns 1. Otherwise c is rank 0 of 1 and it returns 0.
 * A launch under mpirun by a build without MPI is refused (-1, msg set). */
int cli_mpi_start(spqr_comm *c, char *msg, size_t cap);
/* Ends the job's MPI: code 0 finalizes; non-zero aborts every rank with
 * that exit status (a rank that failed alone would otherwise leave the
 * others waiting in a collective). Returns code. */
int cli_mpi_end(int started, int code);

#endif
