/* placeholder until the quantize-matrix command lands */
#include <stdio.h>
#include "cli/commands.h"
int cmd_quantize_matrix(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "spqr: quantize-matrix: not built yet\n"); return 1; }
