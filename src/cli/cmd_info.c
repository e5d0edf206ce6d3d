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
#include "format/spqr_file.h"
#include "model/arch.h"
#include "spqr.h"

#define CMD "info"

static int fail(const char *msg) { return cli_fail(CMD, msg, 1); }

/* Writes s escaped (control characters as \n, \t, \r, \xNN, C1 controls as
 * \u00NN, backslash doubled), left-justified in width bytes: every string
 * info prints comes from the file, and raw escape sequences would drive the
 * terminal. */
static void put_str(const char *s, int width) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const unsigned c = *p;
        if (c == '\\') n += printf("\\\\");
        else if (c == '\n') n += printf("\\n");
        else if (c == '\t') n += printf("\\t");
        else if (c == '\r') n += printf("\\r");
        else if (c < 0x20 || c == 0x7f) n += printf("\\x%02x", c);
        else if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) n += printf("\\u%04x", (unsigned)*++p);
        else n += putchar((int)c) != EOF;
    }
    if (n < width) printf("%*s", width - n, "");
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str_or(const cJSON *o, const char *k, const char *def) {
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return v ? v : def;
}

/* tie_word_embeddings, or the family's default when config.json omits it (Gemma ties). */
static int config_tied(const cJSON *c, const model_arch *arch) {
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    return tie && !cJSON_IsNull(tie) ? cJSON_IsTrue(tie) : arch ? arch->tie_default : 0;
}

static void print_config(const cJSON *c, const model_arch *arch) {
    if (!c) { printf("config: (none)\n"); return; }
    printf("config: ");
    put_str(str_or(c, "model_type", "?"), 0);
    printf(", %g layers, hidden %g, heads %g/%g, intermediate %g, vocab %g, max positions %g, tied %s\n",
           num(c, "num_hidden_layers"), num(c, "hidden_size"), num(c, "num_attention_heads"),
           num(c, "num_key_value_heads"), num(c, "intermediate_size"), num(c, "vocab_size"),
           num(c, "max_position_embeddings"),
           config_tied(c, arch) ? "yes" : "no");
}

/* The family's table next to what the file holds: every linear the table
 * lists for every layer (packed, dense or missing), its biases and norms. */
static void print_family(const spqr_archive *a, const cJSON *c, const model_arch *arch) {
    const char *mt = str_or(c, "model_type", "?");
    if (!arch) {
        printf("family: ");
        put_str(mt, 0);
        char list[160];
        printf(" is not one this build runs (supported: %s)\n", spqri_arch_supported_list(list, sizeof list));
        return;
    }
    printf("family: %s: %s\nper layer:", arch->model_type, arch->description);
    for (int k = 0; k < ARCH_N_LIN; k++)
        if (arch->lin[k].name) printf(" %s%s", arch->lin[k].name, arch->lin[k].bias ? "(+bias)" : "");
    printf(";");
    for (int k = 0; k < ARCH_N_NORM; k++)
        if (arch->norm[k].name) printf(" %s", arch->norm[k].name);
    printf("\n");
    const double nl = num(c, "num_hidden_layers");
    const int32_t layers = nl >= 0 && nl <= 4096 ? (int32_t)nl : 0;
    int64_t packed = 0, dense = 0, missing = 0, vec_want = 0, vec_have = 0;
    char name[256];
    for (int32_t l = 0; l < layers; l++) {
        for (int k = 0; k < ARCH_N_LIN; k++) {
            if (!arch->lin[k].name) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, arch->lin[k].name);
            if (spqr_archive_find_packed(a, name)) packed++;
            else if (spqr_archive_find_dense(a, name)) dense++;
            else missing++;
            if (!arch->lin[k].bias) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, arch->lin[k].name);
            vec_want++;
            vec_have += spqr_archive_find_dense(a, name) != NULL;
        }
        for (int k = 0; k < ARCH_N_NORM; k++) {
            if (!arch->norm[k].name) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, arch->norm[k].name);
            vec_want++;
            vec_have += spqr_archive_find_dense(a, name) != NULL;
        }
    }
    printf("block linears: %lld packed, %lld dense, %lld missing; biases and norms: %lld of %lld\n", (long long)packed,
           (long long)dense, (long long)missing, (long long)vec_have, (long long)vec_want);
}

static void print_metadata(const cJSON *m) {
    if (!m) { printf("quantization metadata: (none)\n"); return; }
    printf("preset: ");
    put_str(str_or(m, "preset", "?"), 0);
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(m, "target_bits");
    if (cJSON_IsNumber(tb)) {
        printf("\ntarget: %g bits per parameter of the ", tb->valuedouble);
        put_str(str_or(m, "target", "?"), 0);
        printf("; a setting per linear (below), the knobs give the rest");
    }
    printf("\nquantize_head: %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "quantize_head")) ? "yes" : "no");
    printf("quantize_embed: %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "quantize_embed")) ? "yes" : "no");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "params");
    if (cJSON_IsObject(p)) {
        printf("knobs:");
        const cJSON *it;
        cJSON_ArrayForEach(it, p) {
            if (!cJSON_IsNumber(it) && !cJSON_IsString(it) && !cJSON_IsNull(it)) continue;
            printf(" ");
            put_str(it->string, 0);
            if (cJSON_IsNumber(it)) printf("=%g", it->valuedouble);
            else if (cJSON_IsNull(it)) printf("=off");
            else {
                printf("=");
                put_str(it->valuestring, 0);
            }
        }
        printf("\n");
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "calibration");
    if (cJSON_IsObject(c)) {
        printf("calibration: %g windows x %g tokens, seed %g, from %g tokens (fnv1a64 ", num(c, "nsamples"),
               num(c, "seqlen"), num(c, "seed"), num(c, "tokens"));
        put_str(str_or(c, "tokens_fnv1a64", "?"), 0);
        printf(")\n");
    }
}

/* The metadata's per-layer records ("layers": [{"name", "rel_err"}, ...])
 * sorted by name (then file order, so the first record of a name wins), so
 * each tensor's lookup is a binary search rather than a walk of them all. */
typedef struct {
    const char *name;
    double rel_err;
    int32_t order;
    const char *setting; /* --target-bits: the grid setting chosen for it, or NULL */
} layer_rec;

static int cmp_layer_rec(const void *x, const void *y) {
    const layer_rec *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* A file holds at most SPQRF_MAX_SECTIONS tensors, so more records than
 * that cannot all describe one of them: such metadata is refused. Returns
 * 0, or -1 with a message in msg. */
static int layer_index(const cJSON *layers, layer_rec **out, int32_t *n_out, char *msg, size_t cap) {
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsArray(layers)) return 0;
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, layers) {
        if (++n > SPQRF_MAX_SECTIONS) {
            snprintf(msg, cap,
                     "metadata lists more than %u layer records (a .spqr file holds at most that many tensors)",
                     SPQRF_MAX_SECTIONS);
            return -1;
        }
    }
    layer_rec *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) { snprintf(msg, cap, "out of memory"); return -1; }
    int32_t k = 0;
    cJSON_ArrayForEach(it, layers) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        if (name) {
            r[k] = (layer_rec){name, num(it, "rel_err"), k,
                               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "setting"))};
            k++;
        }
    }
    qsort(r, (size_t)k, sizeof *r, cmp_layer_rec);
    *out = r;
    *n_out = k;
    return 0;
}

/* The first record named name, or NULL. */
static const layer_rec *layer_find(const layer_rec *r, int32_t n, const char *name) {
    int32_t lo = 0, hi = n; /* first record whose name is >= name */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (strcmp(r[mid].name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strcmp(r[lo].name, name) ? &r[lo] : NULL;
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
    /* Config and metadata parsed once; the layer records are indexed before
     * anything is printed, so refused metadata prints only the error. */
    const char *cj = spqr_archive_config_json(a), *mj = spqr_archive_metadata_json(a);
    cJSON *cfg = cj ? cJSON_Parse(cj) : NULL, *meta = mj ? cJSON_Parse(mj) : NULL;
    layer_rec *recs = NULL;
    int32_t n_recs = 0;
    char msg[160];
    if (layer_index(cJSON_GetObjectItemCaseSensitive(meta, "layers"), &recs, &n_recs, msg, sizeof msg)) {
        cJSON_Delete(cfg);
        cJSON_Delete(meta);
        spqr_archive_close(a);
        char line[sizeof msg + 4200];
        snprintf(line, sizeof line, "%.4096s: %s", path, msg);
        return fail(line);
    }
    struct stat sb;
    const uint64_t fsize = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    put_str(path, 0);
    printf(": %llu bytes, %d tensors\n", (unsigned long long)fsize, spqr_archive_count(a));
    const model_arch *arch = spqri_arch_find(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cfg, "model_type")));
    print_config(cfg, arch);
    if (cfg) print_family(a, cfg, arch);
    print_metadata(meta);

    const int target = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(meta, "target_bits"));
    printf("\n%-44s %12s %5s %5s %9s %8s %8s %10s%s\n", "tensor", "shape", "bits", "group", "outliers", "bits/par",
           "formula", "rel.err", target ? "  setting (--target-bits)" : "");
    uint64_t q_bytes = 0, d_bytes = 0, s_bytes = 0;
    int64_t q_params = 0, d_params = 0, outl = 0, s_params = 0;
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
            put_str(name, 44);
            const layer_rec *lr = layer_find(recs, n_recs, name);
            printf(" %12s %5d %5d %8.3f%% %8.3f %8.3f %10.5f", shape, t->wbits, t->groupsize, 100.0 * t->nnz / np,
                   r.stored_bits_per_param, r.formula_bits_per_param, lr ? lr->rel_err : -1);
            if (lr && lr->setting) {
                printf("  ");
                put_str(lr->setting, 0);
                s_bytes += r.stored_bytes; /* a linear of the allocation */
                s_params += np;
            }
            printf("\n");
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
    printf("\nquantized tensors: %lld params, %llu bytes: %.4f bits/param measured (formula %.4f), %.3f%% outliers\n",
           (long long)q_params, (unsigned long long)q_bytes, q_params ? 8.0 * q_bytes / q_params : 0.0,
           q_params ? f_bits / q_params : 0.0, q_params ? 100.0 * outl / q_params : 0.0);
    /* The LM head and the embedding, as the loader binds them. */
    const spqr_tensor *head = spqr_archive_find_packed(a, "lm_head.weight");
    const spqr_tensor *emb = spqr_archive_find_packed(a, "model.embed_tokens.weight");
    const int tied = config_tied(cfg, arch);
    spqr_size_report hr = {0}, er = {0};
    if (head) spqr_tensor_size(head, &hr);
    if (emb) spqr_tensor_size(emb, &er);
    if (head)
        printf("lm_head: packed %dx%d, %.4f bits/param measured (formula %.4f)%s\n", head->rows, head->cols,
               hr.stored_bits_per_param, hr.formula_bits_per_param,
               tied && !emb ? "; tied embeddings: the dense embedding serves the lookup only" : "");
    else
        printf("lm_head: %s\n", spqr_archive_find_dense(a, "lm_head.weight") ? "dense (not quantized)"
                                  : tied ? (emb ? "tied: the packed embedding is the head" : "tied to the dense embedding (not quantized)")
                                         : "missing");
    if (emb)
        printf("embedding: packed %dx%d, %.4f bits/param measured (formula %.4f), looked up one row at a time\n",
               emb->rows, emb->cols, er.stored_bits_per_param, er.formula_bits_per_param);
    else
        printf("embedding: %s\n", spqr_archive_find_dense(a, "model.embed_tokens.weight") ? "dense (not quantized)" : "missing");
    const int64_t hp = head ? (int64_t)head->rows * head->cols : 0, ep = emb ? (int64_t)emb->rows * emb->cols : 0;
    const int64_t lp = q_params - hp - ep;
    printf("block linears only: %.4f bits/param measured\n",
           lp > 0 ? 8.0 * (double)(q_bytes - hr.stored_bytes - er.stored_bytes) / (double)lp : 0.0);
    /* --target-bits: the tensors the allocation chose a setting for (the block
     * linears and a quantized head; not the RTN embedding), what
     * --target-bits-linears counts */
    if (target)
        printf("allocated linears: %lld params, %.4f bits/param measured\n", (long long)s_params,
               s_params ? 8.0 * (double)s_bytes / (double)s_params : 0.0);
    printf("dense tensors (norms%s%s): %lld params, %llu bytes\n", emb ? "" : ", embedding",
           head || tied ? "" : ", lm_head", (long long)d_params, (unsigned long long)d_bytes);
    /* A tied matrix is one parameter set of the model even when stored twice. */
    const int64_t model_params = q_params + d_params - (head && tied ? (int64_t)head->rows * head->cols : 0);
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    printf("file bytes (format version %u): packed tensors %llu, dense tensors %llu, text %llu, container %llu\n",
           ab.version, (unsigned long long)ab.packed_bytes, (unsigned long long)ab.dense_bytes,
           (unsigned long long)ab.text_bytes, (unsigned long long)ab.container_bytes);
    printf("whole file: %.4f bits per model parameter (every stored byte over every parameter); linears only %.4f; "
           "fp16 would be %.2f MB (%.2fx)\n",
           model_params ? 8.0 * fsize / (double)model_params : 0.0,
           lp > 0 ? 8.0 * (double)(q_bytes - hr.stored_bytes - er.stored_bytes) / (double)lp : 0.0,
           2.0 * model_params / 1e6, fsize ? 2.0 * model_params / fsize : 0.0);
    free(recs);
    cJSON_Delete(cfg);
    cJSON_Delete(meta);
    spqr_archive_close(a);
    return 0;
}
