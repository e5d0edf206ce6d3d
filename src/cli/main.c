/* `spqr` command-line entry point: dispatches to subcommands. The CLI owns
 * the terminal; the library only returns status codes and log messages. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/quant_flags.h"
#include "model/linear.h"
#include "spqr.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"bench", cmd_bench, "prompt and decode tokens/s of models (fp16 vs .spqr) against memory bandwidth"},
    {"bench-kernel", cmd_bench_kernel, "time SpQR/fp16/fp32 matvec kernels against memory bandwidth"},
    {"quantize", cmd_quantize, "quantize a whole model to a .spqr file (sequential SpQR calibration)"},
    {"info", cmd_info, "print config, knobs, per-layer bits and outlier shares of a .spqr file"},
    {"export", cmd_export, "write a .spqr model as a Hugging Face checkpoint (fp16/bf16, or transformers' SpQR format)"},
    {"import", cmd_import, "convert a Hugging Face SpQR checkpoint (quant_method spqr) to a .spqr file"},
    {"perplexity", cmd_perplexity, "held-out perplexity of a model (and KL to a base run)"},
    {"generate", cmd_generate, "generate text from a prompt"},
    {"chat", cmd_chat, "talk with an instruct model through its chat template"},
    {"quantize-matrix", cmd_quantize_matrix, "quantize one W/H pair from a safetensors file (engine check)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "spqr %s - SpQR (Sparse-Quantized Representation) LLM compression\n\n"
            "usage: spqr <command> [options]\n\ncommands:\n",
            spqr_version());
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-18s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nRun `spqr <command> --help` for the options of a command.\n");
}

/* A closed 0, 1 or 2 would be handed to the next file opened, and progress
 * text written to "stderr" would land in an output file: hold them open on
 * /dev/null (what a closed stream meant anyway). */
static void hold_std_fds(void) {
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            const int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (got >= 0 && got != fd) close(got); /* a lower fd was free: cannot happen in this order */
        }
}

/* Output lost to a full disk or /dev/full is an error, not a success. */
static int check_stdout(int rc) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (rc == 0) fprintf(stderr, "spqr: error writing to standard output: %s\n", strerror(errno ? errno : EIO));
        return rc ? rc : 1;
    }
    return rc;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        printf("\n");
        cli_quant_flags_help(stdout); /* the knobs every quantizing command takes */
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("spqr %s\n", spqr_version());
        return 0;
    }
    /* every session reads SPQR_DENSE_ISA / SPQR_DENSE_GEMM; a bad value is
     * refused here, before a command prints anything */
    spqr_isa isa;
    int blas;
    spqr_err err;
    if (spqri_linear_dense_from_env(&isa, &blas, &err)) {
        fprintf(stderr, "spqr: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "spqr: unknown command '%s' (see spqr --help)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    hold_std_fds();
    /* past a file-size limit writes fail with EFBIG (a one-line error, the
     * temporary removed) instead of SIGXFSZ killing the process mid-write */
    signal(SIGXFSZ, SIG_IGN);
    return check_stdout(run(argc, argv));
}
