/* spqr info FILE.spqr: what a quantized model file holds: model config,
 * quantization knobs and calibration, per-layer bits and outlier shares
 * (from the stored tensors themselves), and the totals. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "spqr.h"

#define CMD "info"

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void print_config(const char *json) {
    cJSON *c = json ? cJSON_Parse(json) : NULL;
    if (!c) { printf("config: (none)\n"); return; }
    const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model_type"));
    printf("config: %s, %g layers, hidden %g, heads %g/%g, intermediate %g, vocab %g, max positions %g, tied %s\n",
           mt ? mt : "?", num(c, "num_hidden_layers"), num(c, "hidden_size"), num(c, "num_attention_heads"),
           num(c, "num_key_value_heads"), num(c, "intermediate_size"), num(c, "vocab_size"),
           num(c, "max_position_embeddings"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings")) ? "yes" : "no");
    cJSON_Delete(c);
}

static void print_metadata(const char *json) {
    cJSON *m = json ? cJSON_Parse(json) : NULL;
    if (!m) { printf("quantization metadata: (none)\n"); return; }
    const char *preset = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "preset"));
    printf("preset: %s\n", preset ? preset : "?");
    printf("quantize_head: %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "quantize_head")) ? "yes" : "no");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "params");
    if (cJSON_IsObject(p)) {
        printf("knobs:");
        const cJSON *it;
        cJSON_ArrayForEach(it, p) {
            if (cJSON_IsNumber(it)) printf(" %s=%g", it->string, it->valuedouble);
            else if (cJSON_IsString(it)) printf(" %s=%s", it->string, it->valuestring);
            else if (cJSON_IsNull(it)) printf(" %s=off", it->string);
        }
        printf("\n");
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "calibration");
    if (cJSON_IsObject(c))
        printf("calibration: %g windows x %g tokens, seed %g, from %g tokens (fnv1a64 %s)\n", num(c, "nsamples"),
               num(c, "seqlen"), num(c, "seed"), num(c, "tokens"),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "tokens_fnv1a64"))
                   ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "tokens_fnv1a64"))
                   : "?");
    cJSON_Delete(m);
}

static int config_tied(const char *json) {
    cJSON *c = json ? cJSON_Parse(json) : NULL;
    const int tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings"));
    cJSON_Delete(c);
    return tied;
}

/* rel_err of one layer from the metadata, or -1. */
static double layer_rel_err(const cJSON *layers, const char *name) {
    const cJSON *it;
    cJSON_ArrayForEach(it, layers) {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        if (n && !strcmp(n, name)) return num(it, "rel_err");
    }
    return -1;
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: spqr info FILE.spqr\n  prints config, quantization knobs, calibration, per-layer bits,\n"
                   "  outlier shares and Hessian-weighted errors, and the size totals\n");
            return 0;
        }
        if (argv[i][0] == '-') { fprintf(stderr, "spqr: " CMD ": unknown option '%s'\n", argv[i]); return 2; }
        if (path) { fprintf(stderr, "spqr: " CMD ": one FILE.spqr\n"); return 2; }
        path = argv[i];
    }
    if (!path) { fprintf(stderr, "spqr: " CMD ": missing FILE.spqr (see --help)\n"); return 2; }
    spqr_err err = {0};
    spqr_archive *a = NULL;
    if (spqr_archive_open(path, &a, &err)) return fail(err.msg);
    struct stat sb;
    const uint64_t fsize = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    printf("%s: %llu bytes, %d tensors\n", path, (unsigned long long)fsize, spqr_archive_count(a));
    print_config(spqr_archive_config_json(a));
    const char *mj = spqr_archive_metadata_json(a);
    print_metadata(mj);
    cJSON *meta = mj ? cJSON_Parse(mj) : NULL;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(meta, "layers");

    printf("\n%-44s %12s %5s %5s %9s %8s %8s %10s\n", "tensor", "shape", "bits", "group", "outliers", "bits/par",
           "formula", "rel.err");
    uint64_t q_bytes = 0, d_bytes = 0;
    int64_t q_params = 0, d_params = 0, outl = 0;
    double f_bits = 0;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) {
        const char *name = spqr_archive_name(a, i);
        const spqr_tensor *t = spqr_archive_packed_at(a, i);
        if (t) {
            spqr_size_report r;
            spqr_tensor_size(t, &r);
            const int64_t np = (int64_t)t->rows * t->cols;
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%d", t->rows, t->cols);
            printf("%-44s %12s %5d %5d %8.3f%% %8.3f %8.3f %10.5f\n", name, shape, t->wbits, t->groupsize,
                   100.0 * t->nnz / np, r.stored_bits_per_param, r.formula_bits_per_param,
                   layer_rel_err(layers, name));
            q_bytes += r.stored_bytes;
            q_params += np;
            outl += t->nnz;
            f_bits += r.formula_bits_per_param * np;
        } else {
            const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
            if (d) {
                d_bytes += d->nbytes;
                d_params += d->numel;
            }
        }
    }
    printf("\nquantized linears: %lld params, %llu bytes: %.4f bits/param measured (formula %.4f), %.3f%% outliers\n",
           (long long)q_params, (unsigned long long)q_bytes, q_params ? 8.0 * q_bytes / q_params : 0.0,
           q_params ? f_bits / q_params : 0.0, q_params ? 100.0 * outl / q_params : 0.0);
    /* The LM head, as the loader binds it: packed, dense, or the tied embedding. */
    const spqr_tensor *head = spqr_archive_find_packed(a, "lm_head.weight");
    const int tied = config_tied(spqr_archive_config_json(a));
    if (head) {
        spqr_size_report r;
        spqr_tensor_size(head, &r);
        printf("lm_head: packed %dx%d, %.4f bits/param measured (formula %.4f), included in the quantized linears "
               "above%s\n",
               head->rows, head->cols, r.stored_bits_per_param, r.formula_bits_per_param,
               tied ? "; tied embeddings: the dense embedding serves the lookup only" : "");
        const int64_t hp = (int64_t)head->rows * head->cols;
        printf("block linears only: %.4f bits/param measured\n",
               q_params > hp ? 8.0 * (q_bytes - r.stored_bytes) / (double)(q_params - hp) : 0.0);
    } else {
        printf("lm_head: %s\n", spqr_archive_find_dense(a, "lm_head.weight") ? "dense (not quantized)"
                                  : tied ? "tied to the dense embedding (not quantized)" : "missing");
    }
    printf("dense tensors (embeddings, norms%s): %lld params, %llu bytes\n", head ? "" : ", lm_head",
           (long long)d_params, (unsigned long long)d_bytes);
    /* A tied matrix is one parameter set of the model even when stored twice. */
    const int64_t model_params = q_params + d_params - (head && tied ? (int64_t)head->rows * head->cols : 0);
    printf("whole file: %.3f bits per model parameter; fp16 would be %.2f MB (%.2fx)\n",
           model_params ? 8.0 * fsize / (double)model_params : 0.0, 2.0 * model_params / 1e6,
           fsize ? 2.0 * model_params / fsize : 0.0);
    cJSON_Delete(meta);
    spqr_archive_close(a);
    return 0;
}
