/* Writes a synthetic Llama checkpoint with random F16 weights, streaming
 * (constant memory), for decode benchmarks at real sizes. Default shape:
 * Llama-7B (32 layers, hidden 4096, MLP 11008, 32 heads, vocab 32000,
 * ~13.5 GB). Values are uniform in [-a, a] with a = 1/sqrt(in_features) so
 * activations stay finite; the text it generates is noise.
 *
 * usage: gen_synthetic_llama OUTDIR [--layers N] [--hidden N] [--inter N]
 *        [--heads N] [--kv-heads N] [--vocab N] [--ctx N]
 *        [--tokenizer tokenizer.json (default tests/fixtures/tiny_gqa/tokenizer.json)] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spqr.h"

typedef struct { char name[128]; int64_t rows, cols; int norm; } tdesc;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) { if (in) fclose(in); if (out) fclose(out); return -1; }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: gen_synthetic_llama OUTDIR [--layers N] [--hidden N] [--inter N] [--heads N] "
                        "[--kv-heads N] [--vocab N] [--ctx N] [--tokenizer FILE]\n");
        return 2;
    }
    const char *out = argv[1], *tokpath = "tests/fixtures/tiny_gqa/tokenizer.json";
    long layers = 32, hidden = 4096, inter = 11008, heads = 32, kv = 32, vocab = 32000, ctx = 2048;
    for (int i = 2; i < argc; i++) {
        long *dst = NULL;
        if (!strcmp(argv[i], "--layers")) dst = &layers;
        else if (!strcmp(argv[i], "--hidden")) dst = &hidden;
        else if (!strcmp(argv[i], "--inter")) dst = &inter;
        else if (!strcmp(argv[i], "--heads")) dst = &heads;
        else if (!strcmp(argv[i], "--kv-heads")) dst = &kv;
        else if (!strcmp(argv[i], "--vocab")) dst = &vocab;
        else if (!strcmp(argv[i], "--ctx")) dst = &ctx;
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) { tokpath = argv[++i]; continue; }
        if (!dst || i + 1 >= argc) { fprintf(stderr, "gen_synthetic_llama: bad argument '%s'\n", argv[i]); return 2; }
        *dst = strtol(argv[++i], NULL, 10);
        if (*dst <= 0) { fprintf(stderr, "gen_synthetic_llama: bad value for %s\n", argv[i - 1]); return 2; }
    }
    if (hidden % heads || heads % kv) { fprintf(stderr, "gen_synthetic_llama: inconsistent head counts\n"); return 2; }
    const long hd = hidden / heads;
    mkdir(out, 0755);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", out);
    if (copy_file(tokpath, path)) { fprintf(stderr, "gen_synthetic_llama: cannot copy %s\n", tokpath); return 1; }
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fprintf(f, "{\"model_type\": \"llama\", \"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": %ld, "
               "\"hidden_size\": %ld, \"intermediate_size\": %ld, \"num_hidden_layers\": %ld, "
               "\"num_attention_heads\": %ld, \"num_key_value_heads\": %ld, \"max_position_embeddings\": %ld, "
               "\"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, "
               "\"bos_token_id\": 0, \"eos_token_id\": 0, \"torch_dtype\": \"float16\"}\n",
            vocab, hidden, inter, layers, heads, kv, ctx);
    fclose(f);

    /* tensor list in the order they are written */
    size_t nt = 0, cap = (size_t)layers * 9 + 3;
    tdesc *t = calloc(cap, sizeof *t);
#define ADD(r, c, isnorm, ...) do { snprintf(t[nt].name, sizeof t[nt].name, __VA_ARGS__); t[nt].rows = r; t[nt].cols = c; t[nt].norm = isnorm; nt++; } while (0)
    ADD(vocab, hidden, 0, "model.embed_tokens.weight");
    for (long l = 0; l < layers; l++) {
        ADD(hidden, 0, 1, "model.layers.%ld.input_layernorm.weight", l);
        ADD(heads * hd, hidden, 0, "model.layers.%ld.self_attn.q_proj.weight", l);
        ADD(kv * hd, hidden, 0, "model.layers.%ld.self_attn.k_proj.weight", l);
        ADD(kv * hd, hidden, 0, "model.layers.%ld.self_attn.v_proj.weight", l);
        ADD(hidden, heads * hd, 0, "model.layers.%ld.self_attn.o_proj.weight", l);
        ADD(hidden, 0, 1, "model.layers.%ld.post_attention_layernorm.weight", l);
        ADD(inter, hidden, 0, "model.layers.%ld.mlp.gate_proj.weight", l);
        ADD(inter, hidden, 0, "model.layers.%ld.mlp.up_proj.weight", l);
        ADD(hidden, inter, 0, "model.layers.%ld.mlp.down_proj.weight", l);
    }
    ADD(hidden, 0, 1, "model.norm.weight");
    ADD(vocab, hidden, 0, "lm_head.weight");

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
    const uint16_t one = spqr_fp32_to_fp16(1.0f);
    for (size_t i = 0; i < nt; i++) {
        uint64_t n = t[i].norm ? (uint64_t)t[i].rows : (uint64_t)t[i].rows * t[i].cols;
        const float a = t[i].norm ? 0.0f : 1.0f / sqrtf((float)t[i].cols);
        /* 1024 distinct fp16 values in [-a, a], picked at random: fast and incompressible enough */
        uint16_t table[1024];
        for (int k = 0; k < 1024; k++) table[k] = t[i].norm ? one : spqr_fp32_to_fp16(a * ((k + 0.5f) / 512.0f - 1.0f));
        for (uint64_t done = 0; done < n;) {
            size_t m = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
            for (size_t k = 0; k < m; k += 4) {
                uint64_t r = rng_next(&s);
                for (size_t j = 0; j < 4 && k + j < m; j++) buf[k + j] = table[(r >> (16 * j)) & 1023];
            }
            if (fwrite(buf, 2, m, f) != m) { perror(tmp); return 1; }
            done += m;
        }
    }
    if (fclose(f)) { perror(tmp); return 1; }
    if (rename(tmp, path)) { perror(path); return 1; }
    fprintf(stderr, "done\n");
    free(buf); free(hdr); free(t);
    return 0;
}
