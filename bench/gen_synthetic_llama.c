/* Writes a synthetic Llama checkpoint with random weights, streaming
 * (constant memory), for speed benchmarks at real sizes. Default shape:
 * Llama-7B (32 layers, hidden 4096, MLP 11008, 32 heads, vocab 32000).
 *   OUTDIR          a Hugging Face directory, F16 (~13.5 GB at 7B): values
 *                   uniform in [-a, a], a = 1/sqrt(in_features), so
 *                   activations stay finite; the text it generates is noise.
 *   --spqr FILE     a .spqr file of the same shapes (~3.5 GB at 7B, w3, 1%
 *                   outliers) as `spqr quantize` lays it out: config,
 *                   tokenizer, metadata (marked synthetic), dense F16
 *                   embedding and head, F32 norms, and random packed block
 *                   linears (beta1 = beta2 = 16, 3-bit statistics, a random
 *                   act-order permutation, Bernoulli outliers; every weight
 *                   in [-a, a]). One tensor in memory at a time.
 *   --whole         with --spqr: the embedding and the head packed too (random,
 *                   the same knobs; the embedding without permutation), as
 *                   `spqr quantize` stores the whole file.
 * Either or both may be given.
 *
 * usage: gen_synthetic_llama [OUTDIR] [--spqr FILE [--wbits B] [--outlier-share P] [--whole]]
 *        [--layers N] [--hidden N] [--inter N] [--heads N] [--kv-heads N] [--vocab N] [--ctx N]
 *        [--tokenizer tokenizer.json (default tests/fixtures/tiny_gqa/tokenizer.json)] */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "format/tensor.h"
#include "io/file.h"
#include "model/arch.h"
#include "quant/pipeline.h"
#include "spqr.h"

typedef struct { char name[128]; int64_t rows, cols; int norm; } tdesc;

typedef struct shape {
    long layers, hidden, inter, heads, kv, vocab, ctx;
} shape;

/* Names and shapes come from the Llama family's table (model/arch.h). */
static const model_arch *const ARCH = &spqri_arch_llama;

static spqr_config shape_config(const shape *sh) {
    spqr_config c = {0};
    c.hidden_size = (int32_t)sh->hidden;
    c.intermediate_size = (int32_t)sh->inter;
    c.n_heads = (int32_t)sh->heads;
    c.n_kv_heads = (int32_t)sh->kv;
    c.head_dim = (int32_t)(sh->hidden / sh->heads);
    return c;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static char *config_json(const shape *sh) {
    char *c = malloc(1024);
    if (c)
        snprintf(c, 1024,
                 "{\"model_type\": \"llama\", \"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": %ld, "
                 "\"hidden_size\": %ld, \"intermediate_size\": %ld, \"num_hidden_layers\": %ld, "
                 "\"num_attention_heads\": %ld, \"num_key_value_heads\": %ld, \"max_position_embeddings\": %ld, "
                 "\"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, "
                 "\"bos_token_id\": 0, \"eos_token_id\": 0, \"torch_dtype\": \"float16\"}\n",
                 sh->vocab, sh->hidden, sh->inter, sh->layers, sh->heads, sh->kv, sh->ctx);
    return c;
}

/* n fp16 values uniform in [-a, a] (1024 distinct values, picked at random:
 * fast and incompressible enough), or all ones when a == 0 (norms). */
static void fill_f16(uint16_t *buf, size_t n, float a, uint64_t *s) {
    uint16_t table[1024];
    const uint16_t one = spqr_fp32_to_fp16(1.0f);
    for (int k = 0; k < 1024; k++) table[k] = a == 0.0f ? one : spqr_fp32_to_fp16(a * ((k + 0.5f) / 512.0f - 1.0f));
    for (size_t k = 0; k < n; k += 4) {
        uint64_t r = rng_next(s);
        for (size_t j = 0; j < 4 && k + j < n; j++) buf[k + j] = table[(r >> (16 * j)) & 1023];
    }
}

static int write_hf(const char *out, const shape *sh, const char *cfg, const char *tok, size_t tok_len) {
    const long layers = sh->layers, hidden = sh->hidden, inter = sh->inter, heads = sh->heads, kv = sh->kv,
               vocab = sh->vocab, hd = hidden / heads;
    mkdir(out, 0755);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", out);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(tok, 1, tok_len, f) != tok_len || fclose(f)) { perror(path); return 1; }
    snprintf(path, sizeof path, "%s/config.json", out);
    f = fopen(path, "w");
    if (!f || fputs(cfg, f) < 0 || fclose(f)) { perror(path); return 1; }

    /* tensor list in the order they are written */
    size_t nt = 0, cap = (size_t)layers * (ARCH_N_LIN + ARCH_N_NORM) + 3;
    tdesc *t = calloc(cap, sizeof *t);
    const spqr_config c = shape_config(sh);
    (void)heads, (void)kv, (void)inter, (void)hd;
#define ADD(r, c, isnorm, ...) do { snprintf(t[nt].name, sizeof t[nt].name, __VA_ARGS__); t[nt].rows = r; t[nt].cols = c; t[nt].norm = isnorm; nt++; } while (0)
    ADD(vocab, hidden, 0, ARCH_EMBED_NAME);
    for (long l = 0; l < layers; l++) {
        for (int k = 0; k < ARCH_N_NORM; k++)
            if (ARCH->norm[k].name)
                ADD(spqri_arch_dim_size(&c, ARCH->norm[k].dim), 0, 1, "model.layers.%ld.%s.weight", l, ARCH->norm[k].name);
        for (int k = 0; k < ARCH_N_LIN; k++)
            if (ARCH->lin[k].name)
                ADD(spqri_arch_dim_size(&c, ARCH->lin[k].rows), spqri_arch_dim_size(&c, ARCH->lin[k].cols), 0,
                    "model.layers.%ld.%s.weight", l, ARCH->lin[k].name);
    }
    ADD(hidden, 0, 1, ARCH_FINAL_NORM_NAME);
    ADD(vocab, hidden, 0, ARCH_HEAD_NAME);
#undef ADD

    /* header */
    size_t hcap = nt * 200 + 256, hl = 0;
    char *hdr = malloc(hcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        uint64_t n = (uint64_t)t[i].rows * (t[i].norm ? 1 : (uint64_t)t[i].cols) * 2;
        if (t[i].norm)
            hl += (size_t)snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (long long)t[i].rows, (unsigned long long)off, (unsigned long long)(off + n));
        else
            hl += (size_t)snprintf(hdr + hl, hcap - hl, ",\"%s\":{\"dtype\":\"F16\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                   t[i].name, (long long)t[i].rows, (long long)t[i].cols, (unsigned long long)off,
                                   (unsigned long long)(off + n));
        off += n;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) { perror(tmp); return 1; }
    uint64_t hl64 = hl;
    fwrite(&hl64, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    fprintf(stderr, "writing %s: %zu tensors, %.2f GB of F16\n", path, nt, off / 1e9);

    enum { CHUNK = 1 << 20 };
    uint16_t *buf = malloc(CHUNK * 2);
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < nt; i++) {
        uint64_t n = t[i].norm ? (uint64_t)t[i].rows : (uint64_t)t[i].rows * t[i].cols;
        const float a = t[i].norm ? 0.0f : 1.0f / sqrtf((float)t[i].cols);
        for (uint64_t done = 0; done < n;) {
            size_t m = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
            fill_f16(buf, m, a, &s);
            if (fwrite(buf, 2, m, f) != m) { perror(tmp); return 1; }
            done += m;
        }
    }
    if (fclose(f)) { perror(tmp); return 1; }
    if (rename(tmp, path)) { perror(path); return 1; }
    free(buf); free(hdr); free(t);
    return 0;
}

/* Quantization metadata in the layout `spqr quantize` writes (preset,
 * params, quantize_head, avg bits, per-layer records), marked synthetic:
 * no calibration, no rel_err (there is no original to compare with). */
static char *synthetic_metadata(int wbits, double share, const pipe_layer_record *rec, long n_rec, double avg_stored,
                                double avg_formula) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "quantizer", "bench/gen_synthetic_llama (synthetic: random codes, no calibration)");
    cJSON_AddStringToObject(root, "preset", "synthetic");
    cJSON_AddBoolToObject(root, "synthetic", 1);
    cJSON_AddNumberToObject(root, "synthetic_outlier_share", share);
    cJSON *pj = cJSON_AddObjectToObject(root, "params");
    cJSON_AddNumberToObject(pj, "wbits", wbits);
    cJSON_AddNumberToObject(pj, "groupsize", 16);
    cJSON_AddNumberToObject(pj, "qq_scale_bits", 3);
    cJSON_AddNumberToObject(pj, "qq_zero_bits", 3);
    cJSON_AddNumberToObject(pj, "qq_groupsize", 16);
    cJSON_AddNullToObject(pj, "outlier_threshold"); /* outliers are drawn at random, not thresholded */
    cJSON_AddStringToObject(pj, "perm", "act_order");
    cJSON_AddNumberToObject(pj, "gptq", 0);
    cJSON_AddBoolToObject(root, "quantize_head", 0);
    cJSON_AddNumberToObject(root, "avg_bits_stored", avg_stored);
    cJSON_AddNumberToObject(root, "avg_bits_formula", avg_formula);
    cJSON *arr = cJSON_AddArrayToObject(root, "layers");
    char name[128];
    for (long i = 0; i < n_rec; i++) {
        cJSON *e = spqri_pipe_record_to_json(&rec[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(e, "rel_err");
        spqri_pipe_record_name(name, sizeof name, ARCH, rec[i].block, rec[i].kind);
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddItemToArray(arr, e);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* Shape [rows, cols] of block linear kind k (a slot of the family's table). */
static void kind_shape(const shape *sh, int k, int32_t *rows, int32_t *cols) {
    const spqr_config c = shape_config(sh);
    *rows = spqri_arch_dim_size(&c, ARCH->lin[k].rows);
    *cols = spqri_arch_dim_size(&c, ARCH->lin[k].cols);
}

static uint64_t tensor_seed(long layer, int kind) { return 0x5eed0000ull + (uint64_t)layer * 16 + (uint64_t)kind; }

/* A random packed [vocab, hidden] table; the embedding keeps no permutation
 * (a lookup walks one row in order). */
static spqr_status random_table(const shape *sh, int wbits, double share, int embed, spqr_tensor **t, spqr_err *err) {
    spqr_status st = spqr_tensor_random((int32_t)sh->vocab, (int32_t)sh->hidden, wbits, share,
                                        1.0f / sqrtf((float)sh->hidden), 0x7ab1e000ull + (uint64_t)embed, t, err);
    if (!st && embed) {
        /* codes and outlier columns are random in either order */
        free((*t)->perm);
        (*t)->perm = NULL;
    }
    return st;
}

static int write_spqr(const char *out, const shape *sh, const char *cfg, const char *tok, size_t tok_len, int wbits,
                      double share, int whole) {
    const double t0 = spqr_now_s();
    spqr_err err = {0};
    const long L = sh->layers;
    pipe_layer_record *rec = calloc((size_t)L * PIPE_KINDS, sizeof *rec);
    if (!rec) { fprintf(stderr, "gen_synthetic_llama: out of memory\n"); return 1; }
    double bits_stored = 0, bits_formula = 0, params = 0;
    spqr_archive_writer *w = NULL;
    spqr_status st = spqr_archive_writer_create(out, &w, &err);
    if (!st) st = spqr_archive_writer_add_config(w, cfg, &err);
    if (!st) st = spqr_archive_writer_add_tokenizer(w, tok, tok_len, &err);
    /* dense: embedding and head F16 (one buffer, reused), norms F32 ones */
    const int64_t emb_shape[2] = {sh->vocab, sh->hidden}, norm_shape[1] = {sh->hidden};
    uint16_t *emb = malloc((size_t)sh->vocab * (size_t)sh->hidden * sizeof *emb);
    float *ones = malloc((size_t)sh->hidden * sizeof *ones);
    if (!emb || !ones) { fprintf(stderr, "gen_synthetic_llama: out of memory\n"); return 1; }
    for (long i = 0; i < sh->hidden; i++) ones[i] = 1.0f;
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    const float a = 1.0f / sqrtf((float)sh->hidden);
    for (int which = 0; which < 2 && !st; which++) { /* embedding, head */
        const char *nm = which ? ARCH_HEAD_NAME : ARCH_EMBED_NAME;
        if (whole) {
            spqr_tensor *t = NULL;
            st = random_table(sh, wbits, share, !which, &t, &err);
            if (!st) st = spqr_archive_writer_add_packed(w, nm, t, &err);
            spqr_tensor_free(t);
        } else {
            fill_f16(emb, (size_t)sh->vocab * (size_t)sh->hidden, a, &s);
            st = spqr_archive_writer_add_dense(w, nm, SPQR_DTYPE_F16, 2, emb_shape, emb, &err);
        }
    }
    free(emb);
    if (!st) st = spqr_archive_writer_add_dense(w, ARCH_FINAL_NORM_NAME, SPQR_DTYPE_F32, 1, norm_shape, ones, &err);
    char name[256];
    const spqr_config c = shape_config(sh);
    for (long l = 0; !st && l < L; l++)
        for (int k = 0; !st && k < ARCH_N_NORM; k++) {
            if (!ARCH->norm[k].name) continue;
            const int64_t shp[1] = {spqri_arch_dim_size(&c, ARCH->norm[k].dim)};
            snprintf(name, sizeof name, "model.layers.%ld.%s.weight", l, ARCH->norm[k].name);
            st = spqr_archive_writer_add_dense(w, name, SPQR_DTYPE_F32, 1, shp, ones, &err);
        }
    free(ones);
    /* packed block linears, one tensor in memory at a time */
    for (long l = 0; !st && l < L; l++)
        for (int k = 0; !st && k < PIPE_KINDS; k++) {
            int32_t rows, cols;
            kind_shape(sh, k, &rows, &cols);
            spqr_tensor *t = NULL;
            st = spqr_tensor_random(rows, cols, wbits, share, 1.0f / sqrtf((float)cols), tensor_seed(l, k), &t, &err);
            spqri_pipe_record_name(name, sizeof name, ARCH, (int32_t)l, k);
            if (!st) st = spqr_archive_writer_add_packed(w, name, t, &err);
            if (!st) {
                spqr_size_report sz;
                spqr_tensor_size(t, &sz);
                rec[l * PIPE_KINDS + k] = (pipe_layer_record){(int32_t)l, k, rows, cols, t->nnz, 0.0,
                                                              sz.formula_bits_per_param, sz.stored_bits_per_param,
                                                              sz.stored_bytes, 0, -1};
                const double np = (double)rows * cols;
                bits_stored += 8.0 * (double)sz.stored_bytes;
                bits_formula += sz.formula_bits_per_param * np;
                params += np;
            }
            spqr_tensor_free(t);
        }
    /* The metadata goes last (the reader finds sections through the table):
     * it needs the outlier counts, known once every tensor is drawn. */
    if (!st) {
        char *meta = synthetic_metadata(wbits, share, rec, L * PIPE_KINDS, bits_stored / params, bits_formula / params);
        st = meta ? spqr_archive_writer_add_metadata(w, meta, &err) : SPQR_ERR_NOMEM;
        if (!meta) snprintf(err.msg, sizeof err.msg, "out of memory");
        free(meta);
    }
    free(rec);
    if (!st) st = spqr_archive_writer_finish(w, &err);
    spqr_archive_writer_free(w);
    if (st) { fprintf(stderr, "gen_synthetic_llama: %s\n", err.msg); return 1; }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct stat sb;
    fprintf(stderr, "wrote %s: %ld layers, w%d, %.2f%% outliers, %.3f bits/param stored (block linears); %.2f GB in %.1f s, peak RSS %.0f MB\n",
            out, L, wbits, 100 * share, bits_stored / params, stat(out, &sb) == 0 ? (double)sb.st_size / 1e9 : 0.0,
            spqr_now_s() - t0, (double)ru.ru_maxrss / 1024.0);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: gen_synthetic_llama [OUTDIR] [--spqr FILE [--wbits B] [--outlier-share P] [--whole]] [--layers N] "
                    "[--hidden N] [--inter N] [--heads N] [--kv-heads N] [--vocab N] [--ctx N] [--tokenizer FILE]\n");
}

int main(int argc, char **argv) {
    const char *out = NULL, *spqr_out = NULL, *tokpath = "tests/fixtures/tiny_gqa/tokenizer.json";
    shape sh = {32, 4096, 11008, 32, 32, 32000, 2048};
    long wbits = 3;
    double share = 0.01;
    int whole = 0;
    for (int i = 1; i < argc; i++) {
        long *dst = NULL;
        const char *a = argv[i];
        if (!strcmp(a, "--layers")) dst = &sh.layers;
        else if (!strcmp(a, "--hidden")) dst = &sh.hidden;
        else if (!strcmp(a, "--inter")) dst = &sh.inter;
        else if (!strcmp(a, "--heads")) dst = &sh.heads;
        else if (!strcmp(a, "--kv-heads")) dst = &sh.kv;
        else if (!strcmp(a, "--vocab")) dst = &sh.vocab;
        else if (!strcmp(a, "--ctx")) dst = &sh.ctx;
        else if (!strcmp(a, "--wbits")) dst = &wbits;
        else if (!strcmp(a, "--whole")) { whole = 1; continue; }
        else if ((!strcmp(a, "--tokenizer") || !strcmp(a, "--spqr") || !strcmp(a, "--outlier-share")) && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--tokenizer")) tokpath = v;
            else if (!strcmp(a, "--spqr")) spqr_out = v;
            else {
                char *end = NULL;
                share = strtod(v, &end);
                if (end == v || *end || !(share >= 0 && share <= 1)) {
                    fprintf(stderr, "gen_synthetic_llama: --outlier-share must be in [0, 1], got '%s'\n", v);
                    return 2;
                }
            }
            continue;
        } else if (a[0] != '-' && !out) { out = a; continue; }
        if (!dst || i + 1 >= argc) { fprintf(stderr, "gen_synthetic_llama: bad argument '%s'\n", a); usage(); return 2; }
        char *end = NULL;
        const char *v = argv[++i];
        *dst = strtol(v, &end, 10);
        if (end == v || *end || *dst <= 0 || *dst > (1L << 30)) {
            fprintf(stderr, "gen_synthetic_llama: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (!out && !spqr_out) { usage(); return 2; }
    if (sh.hidden % sh.heads || sh.heads % sh.kv) { fprintf(stderr, "gen_synthetic_llama: inconsistent head counts\n"); return 2; }
    if (wbits < 2 || wbits > 8) { fprintf(stderr, "gen_synthetic_llama: --wbits must be 2..8\n"); return 2; }
    if (spqr_out && (sh.hidden > 65536 || sh.inter > 65536)) {
        fprintf(stderr, "gen_synthetic_llama: packed tensors need in_features <= 65536\n");
        return 2;
    }
    size_t tok_len = 0;
    char *tok = NULL, *cfg = config_json(&sh);
    spqr_err terr;
    if (spqr_file_read_text(tokpath, (size_t)1 << 30, &tok, &tok_len, &terr)) {
        fprintf(stderr, "gen_synthetic_llama: %s\n", terr.msg);
        return 1;
    }
    if (!cfg) { fprintf(stderr, "gen_synthetic_llama: out of memory\n"); return 1; }
    int rc = 0;
    if (out) rc = write_hf(out, &sh, cfg, tok, tok_len);
    if (!rc && spqr_out) rc = write_spqr(spqr_out, &sh, cfg, tok, tok_len, (int)wbits, share, whole);
    if (!rc) fprintf(stderr, "done\n");
    free(tok);
    free(cfg);
    return rc;
}
