/* spqr import DIR -o OUT.spqr: a checkpoint in transformers' SpQR format
 * (published SpQR models) as a .spqr file that every command runs on the
 * CPU with our kernels; nothing is quantized (docs/format.md). */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "format/spqr_file.h"
#include "io/outpath.h"
#include "model/export.h"
#include "spqr.h"

#define CMD "import"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr import DIR -o OUT.spqr [options]\n"
            "  DIR         a Hugging Face SpQR checkpoint (config.json with quantization_config\n"
            "              quant_method \"spqr\", bits 3, beta1 = beta2 = 16; CSR outliers)\n"
            "  -o FILE     the .spqr to write (an existing .spqr is replaced; docs/safety.md)\n"
            "  --force     let -o replace a file of another kind (never an input)\n"
            "  -v          verbose\n");
}

static int is_spqr_head(const uint8_t *head, size_t n) { return n >= 8 && !memcmp(head, SPQRF_MAGIC, 8); }

int cmd_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int force = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o")) {
            if (!(out = cli_flag_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "-v")) {
            verbose = 1;
        } else if (a[0] == '-' && a[1]) {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown option %.200s (see spqr import --help)", a);
            return cli_fail(CMD, msg, 2);
        } else if (!in) {
            in = a;
        } else {
            return cli_fail(CMD, "too many arguments (usage: spqr import DIR -o OUT.spqr)", 2);
        }
    }
    if (!in || !out) return cli_fail(CMD, "usage: spqr import DIR -o OUT.spqr", 2);
    spqr_err err = {0};
    const char *inputs[1] = {in};
    const spqr_out_spec spec = {"-o", "a .spqr model", is_spqr_head, force};
    if (spqr_out_check(out, &spec, inputs, 1, &err)) return cli_fail(CMD, err.msg, 1);
    spqr_logger log = cli_stderr_logger(verbose);
    if (spqr_import_hf_spqr(in, out, &log, &err)) return cli_fail(CMD, err.msg, 1);
    return 0;
}
