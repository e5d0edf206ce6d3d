/* `spqr quantize-matrix IN -o OUT`: quantize one weight matrix with its
 * Hessian and write the dequantized result, the outlier mask and the run's
 * numbers. The engine check a user can run on their own W/H pair.
 *
 * Exit codes: 0 ok, 1 runtime failure (files, numerics), 2 usage error. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/quant_flags.h"
#include "io/file.h"
#include "io/outpath.h"
#include "spqr.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr quantize-matrix IN.safetensors -o OUT.safetensors [options]\n\n"
            "Quantizes one linear layer with SpQR. IN holds `weight` [out, in] and `hessian` [in, in]\n"
            "(F32, F16 or BF16). OUT (written atomically) holds `weight` (dequantized, F32, original\n"
            "column order), `outlier_mask` (U8, 1 = outlier) and metadata: the parameters,\n"
            "avg_bits_formula, avg_bits_measured, outlier_count, rel_hessian_error\n"
            "(tr(dW H dW^T) / tr(W H W^T), undamped H) and seconds.\n\n"
            "options:\n"
            "  -o, --output PATH      output file (required); an existing file is replaced only if it\n"
            "                         is an output of this command (docs/safety.md)\n"
            "  --force                also replace an existing file of another kind (never the input,\n"
            "                         a directory, device or FIFO)\n"
            "  -t, --threads N        worker threads; 0 = all cores (default 0)\n"
            "  -v, --verbose          progress messages on stderr\n"
            "  -h, --help             this help\n\n");
    cli_quant_flags_help(f);
}

static void log_stderr(void *user, spqr_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "spqr: %s%s\n", level == SPQR_LOG_WARN ? "warning: " : "", msg);
}

static int usage_error(const char *msg) {
    fprintf(stderr, "spqr: quantize-matrix: %s (see spqr quantize-matrix --help)\n", msg);
    return 2;
}

/* Loads a 2-D float tensor, converted to fp32 and checked finite. */
static float *load_matrix(spqr_safetensors *f, const char *path, const char *name, int64_t *rows, int64_t *cols) {
    const spqr_st_tensor *t = spqr_safetensors_find(f, name);
    if (!t) {
        fprintf(stderr, "spqr: %s: no tensor '%s'\n", path, name);
        return NULL;
    }
    if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->shape[0] > INT32_MAX || t->shape[1] > INT32_MAX) {
        char shape[160] = "";
        size_t len = 0;
        for (int32_t k = 0; k < t->ndim && len < sizeof shape - 24; k++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        fprintf(stderr, "spqr: %s: tensor '%s' must be a non-empty 2-D matrix, has shape [%s]\n", path, name, shape);
        return NULL;
    }
    *rows = t->shape[0];
    *cols = t->shape[1];
    float *m = malloc((size_t)t->numel * sizeof(float));
    if (!m) {
        fprintf(stderr, "spqr: out of memory for '%s' (%lld values)\n", name, (long long)t->numel);
        return NULL;
    }
    spqr_err err = {0};
    if (spqr_st_tensor_to_f32(t, m, &err) != SPQR_OK) {
        fprintf(stderr, "spqr: %s: %s\n", path, err.msg);
        free(m);
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(m[i])) {
            fprintf(stderr, "spqr: %s: tensor '%s' has a non-finite value (%g) at [%lld, %lld]\n", path, name,
                    (double)m[i], (long long)(i / *cols), (long long)(i % *cols));
            free(m);
            return NULL;
        }
    return m;
}

static int add_meta(void *user, const char *key, const char *value) {
    spqr_err err = {0};
    return spqr_st_writer_set_metadata((spqr_st_writer *)user, key, value, &err) != SPQR_OK;
}

/* An output of this command: a safetensors header (8-byte length, then
 * JSON) naming our outlier mask and measured bits. What -o may replace
 * without --force. */
static int has_bytes(const uint8_t *h, size_t n, const char *s) {
    const size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(h + i, s, k)) return 1;
    return 0;
}

static int is_our_output(const uint8_t *head, size_t n) {
    if (n < 9 || head[8] != '{') return 0;
    return has_bytes(head + 8, n - 8, "\"outlier_mask\"") && has_bytes(head + 8, n - 8, "\"avg_bits_measured\"");
}

int cmd_quantize_matrix(int argc, char **argv) {
    spqr_quant_params p;
    spqr_quant_params_default(&p);
    const char *in_path = NULL, *out_path = NULL;
    long long threads = 0;
    int verbose = 0, force = 0;
    char msg[512];

    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        const char *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
            i++;
            continue;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            i++;
            continue;
        }
        int r = cli_option_value(argc, argv, &i, "-o", "--output", &v, msg, sizeof msg);
        if (r < 0) return usage_error(msg);
        if (r > 0) {
            if (!*v) return usage_error("-o: empty path");
            out_path = v;
            continue;
        }
        r = cli_option_value(argc, argv, &i, "-t", "--threads", &v, msg, sizeof msg);
        if (r < 0) return usage_error(msg);
        if (r > 0) {
            if (cli_parse_int("--threads", v, 0, 4096, &threads, msg, sizeof msg)) return usage_error(msg);
            continue;
        }
        cli_flag_result q = cli_quant_flag(argc, argv, &i, &p, msg, sizeof msg);
        if (q == CLI_FLAG_ERROR) return usage_error(msg);
        if (q == CLI_FLAG_OK) continue;
        if (a[0] == '-' && a[1] != 0) {
            snprintf(msg, sizeof msg, "unknown option '%.64s'", a);
            return usage_error(msg);
        }
        if (in_path) {
            snprintf(msg, sizeof msg, "unexpected extra argument '%.64s'", a);
            return usage_error(msg);
        }
        in_path = a;
        i++;
    }
    if (!in_path) return usage_error("missing input file IN.safetensors");
    if (!out_path) return usage_error("missing -o OUT.safetensors");
    spqr_err err = {0};
    if (spqr_quant_params_validate(&p, &err) != SPQR_OK) return usage_error(err.msg);
    /* The output rules (docs/safety.md), before minutes of work. */
    const spqr_out_spec spec = {"-o", "an output of spqr quantize-matrix", is_our_output, force};
    const char *inputs[] = {in_path};
    if (spqr_out_check(out_path, &spec, inputs, 1, &err)) {
        fprintf(stderr, "spqr: quantize-matrix: %s\n", err.msg);
        return 1;
    }

    int rc = 1;
    spqr_safetensors *in = NULL;
    float *W = NULL, *H = NULL, *W_hat = NULL;
    uint8_t *mask = NULL;
    spqr_tensor *packed = NULL;
    spqr_st_writer *w = NULL;

    if (spqr_safetensors_open(in_path, &in, &err) != SPQR_OK) {
        fprintf(stderr, "spqr: %s\n", err.msg);
        goto done;
    }
    int64_t rows, cols, hr, hc;
    W = load_matrix(in, in_path, "weight", &rows, &cols);
    if (!W) goto done;
    H = load_matrix(in, in_path, "hessian", &hr, &hc);
    if (!H) goto done;
    if (hr != hc) {
        fprintf(stderr, "spqr: %s: 'hessian' must be square, got [%lld, %lld]\n", in_path, (long long)hr,
                (long long)hc);
        goto done;
    }
    if (hr != cols) {
        fprintf(stderr, "spqr: %s: 'hessian' is [%lld, %lld] but 'weight' has %lld input columns\n", in_path,
                (long long)hr, (long long)hc, (long long)cols);
        goto done;
    }
    W_hat = malloc((size_t)(rows * cols) * sizeof *W_hat);
    mask = malloc((size_t)(rows * cols));
    if (!W_hat || !mask) {
        fprintf(stderr, "spqr: out of memory for a %lld x %lld result\n", (long long)rows, (long long)cols);
        goto done;
    }

    spqr_logger logger = {log_stderr, NULL, verbose ? SPQR_LOG_INFO : SPQR_LOG_WARN};
    spqr_quant_report rep = {0};
    if (spqr_quantize_layer(W, (int32_t)rows, (int32_t)cols, H, &p, (int32_t)threads, &logger, &packed, W_hat, mask,
                            &rep, &err) != SPQR_OK) {
        fprintf(stderr, "spqr: %s: %s\n", in_path, err.msg);
        goto done;
    }
    spqr_size_report size = {0};
    spqr_tensor_size(packed, &size);

    if (spqr_st_writer_create(&w, &err) != SPQR_OK) {
        fprintf(stderr, "spqr: %s\n", err.msg);
        goto done;
    }
    int64_t shape[2] = {rows, cols};
    char buf[64];
    int bad = spqr_st_writer_add(w, "weight", SPQR_DTYPE_F32, 2, shape, W_hat, &err) != SPQR_OK ||
              spqr_st_writer_add(w, "outlier_mask", SPQR_DTYPE_U8, 2, shape, mask, &err) != SPQR_OK ||
              cli_quant_params_foreach(&p, add_meta, w) != 0;
#define META(key, fmt, val) \
    (snprintf(buf, sizeof buf, fmt, val), bad = bad || spqr_st_writer_set_metadata(w, key, buf, &err) != SPQR_OK)
    META("avg_bits_formula", "%.6f", size.formula_bits_per_param);
    META("avg_bits_measured", "%.6f", size.stored_bits_per_param);
    META("outlier_count", "%lld", (long long)rep.n_outliers);
    META("rel_hessian_error", "%.9g", rep.rel_hessian_error);
    META("seconds", "%.3f", rep.seconds);
#undef META
    if (bad) {
        fprintf(stderr, "spqr: building the output failed: %s\n", err.msg);
        goto done;
    }
    if (spqr_st_writer_write(w, out_path, &err) != SPQR_OK) {
        fprintf(stderr, "spqr: %s\n", err.msg);
        goto done;
    }

    char desc[256];
    cli_quant_params_describe(&p, desc, sizeof desc);
    double n = (double)rows * (double)cols;
    printf("quantized 'weight' [%lld x %lld]: %s\n", (long long)rows, (long long)cols, desc);
    printf("  bits per weight: %.4f (formula), %.4f (measured from %llu stored bytes)\n",
           size.formula_bits_per_param, size.stored_bits_per_param, (unsigned long long)size.stored_bytes);
    printf("  outliers:        %lld (%.3f%%)\n", (long long)rep.n_outliers, 100.0 * (double)rep.n_outliers / n);
    printf("  rel. H-error:    %.6g  (tr(dW H dW^T) / tr(W H W^T))\n", rep.rel_hessian_error);
    printf("  time:            %.3f s\n", rep.seconds);
    printf("wrote %s\n", out_path);
    rc = 0;

done:
    spqr_st_writer_free(w);
    spqr_tensor_free(packed);
    free(W);
    free(H);
    free(W_hat);
    free(mask);
    spqr_safetensors_close(in);
    return rc;
}
