/* spqr export MODEL.spqr --to FORMAT OUT_DIR: a .spqr model as a Hugging
 * Face checkpoint directory (docs/format.md, "Export to Hugging Face").
 * OUT_DIR is created when missing; an existing non-empty directory is
 * written into only with --force, and no file of it may be the input
 * (docs/safety.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "format/hf_spqr.h"
#include "model/arch.h"
#include "model/export.h"
#include "spqr.h"

#define CMD "export"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr export MODEL.spqr --to FORMAT OUT_DIR [options]\n"
            "  --to hf-fp16          dequantized weights, fp16 safetensors (any Hugging Face tool loads it)\n"
            "  --to hf-bf16          the same in bf16\n"
            "  --to hf-spqr          transformers' SpQR format (quant_method spqr; GPU inference with the\n"
            "                        authors' spqr_quant kernels); only w3, beta1 = beta2 = 16, 3-bit statistics\n"
            "  --max-shard-size N    bytes per safetensors shard (hf-fp16/hf-bf16; hf-spqr writes one file);\n"
            "                        suffixes KB, MB, GB (powers of 1000),\n"
            "                        default 5GB as transformers' save_pretrained\n"
            "  --force               write into an existing non-empty OUT_DIR: an earlier checkpoint's\n"
            "                        config, safetensors, index, tokenizer and generation files are removed\n"
            "                        first (config.json first), other files kept; the input never is touched\n"
            "  -v                    verbose\n");
}

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }
static int fail_usage(const char *msg) { return cli_fail(CMD, msg, 2); }

/* "123", "500MB", "5GB": decimal units as transformers spells them. */
static int parse_size(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    if (!s || *s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    uint64_t mul = 1;
    if (!strcmp(end, "KB")) mul = 1000;
    else if (!strcmp(end, "MB")) mul = 1000 * 1000;
    else if (!strcmp(end, "GB")) mul = 1000 * 1000 * 1000;
    else if (*end) return -1;
    if (v == 0 || v > UINT64_MAX / mul) return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

/* Creates dir when missing; an existing one must be a directory and, without force, empty. */
static int prepare_dir(const char *dir, int force, char *msg, size_t cap) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT) return snprintf(msg, cap, "%s: %s", dir, strerror(errno)), -1;
        if (mkdir(dir, 0777) != 0) return snprintf(msg, cap, "cannot create %s: %s", dir, strerror(errno)), -1;
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) return snprintf(msg, cap, "%s exists and is not a directory", dir), -1;
    DIR *d = opendir(dir);
    if (!d) return snprintf(msg, cap, "%s: %s", dir, strerror(errno)), -1;
    int empty = 1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    if (!empty && !force) return snprintf(msg, cap, "%s is not empty; pass --force to write into it", dir), -1;
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *to = NULL;
    uint64_t shard = SPQR_EXPORT_DEFAULT_SHARD_BYTES;
    int force = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--to")) {
            if (!(to = cli_flag_value(CMD, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--max-shard-size")) {
            const char *v = cli_flag_value(CMD, argc, argv, &i);
            if (!v) return 2;
            if (parse_size(v, &shard)) return fail_usage("--max-shard-size: want a positive size like 2GB, 500MB or 1000000");
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if (!strcmp(a, "-v")) {
            verbose = 1;
        } else if (a[0] == '-' && a[1]) {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown option %.200s (see spqr export --help)", a);
            return fail_usage(msg);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            return fail_usage("too many arguments (usage: spqr export MODEL.spqr --to FORMAT OUT_DIR)");
        }
    }
    if (!in || !out) return fail_usage("usage: spqr export MODEL.spqr --to hf-fp16|hf-bf16|hf-spqr OUT_DIR");
    if (!to) return fail_usage("--to is required: hf-fp16, hf-bf16 or hf-spqr");
    spqr_dtype dtype = SPQR_DTYPE_F16;
    int hf_spqr = !strcmp(to, "hf-spqr");
    if (!strcmp(to, "hf-fp16") || hf_spqr) dtype = SPQR_DTYPE_F16;
    else if (!strcmp(to, "hf-bf16")) dtype = SPQR_DTYPE_BF16;
    else {
        char msg[256];
        snprintf(msg, sizeof msg, "--to %.100s: supported formats are hf-fp16, hf-bf16 and hf-spqr", to);
        return fail_usage(msg);
    }
    /* Open the input before anything is created, so a bad input leaves no directory behind. */
    spqr_err err = {0};
    spqr_archive *probe = NULL;
    if (spqr_archive_open(in, &probe, &err)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", in, err.msg);
        return fail(msg);
    }
    char msg[1024];
    for (int32_t i = 0; hf_spqr && i < spqr_archive_count(probe); i++) {
        const spqr_tensor *t = spqr_archive_packed_at(probe, i);
        const char *name = spqr_archive_name(probe, i), *why = t ? spqri_hf_spqr_unsupported(t) : NULL;
        if (why && strcmp(name, ARCH_EMBED_NAME) && strcmp(name, ARCH_HEAD_NAME)) {
            snprintf(msg, sizeof msg, "%.300s: %s; %s", name, why, HF_SPQR_SUPPORTED);
            spqr_archive_close(probe);
            return fail(msg);
        }
    }
    spqr_archive_close(probe);
    if (prepare_dir(out, force, msg, sizeof msg)) return fail(msg);
    spqr_logger log = cli_stderr_logger(verbose);
    const volatile int *cancel = cli_cancel_on_signals(); /* an interrupted export leaves no temporary */
    spqr_status st = hf_spqr ? spqr_export_hf_spqr(in, out, cancel, &log, &err)
                             : spqr_export_hf_dense(in, out, dtype, shard, cancel, &log, &err);
    if (st == SPQR_ERR_INTERRUPTED) {
        fprintf(stderr, "spqr: " CMD ": interrupted; %s is incomplete (no config.json: it does not load)\n", out);
        return 1;
    }
    if (st) return fail(err.msg);
    if (verbose) fprintf(stderr, "spqr: export: %s -> %s (%s)\n", in, out, to);
    return 0;
}
