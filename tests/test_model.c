/* Llama forward pass against golden logits from tools/llama_ref.py
 * (float64 PyTorch, tests/fixtures/model_logits.safetensors), KV-cache
 * decoding against the full-sequence forward, and the loader's errors on
 * broken checkpoints. argv[1] = tests/fixtures. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/config.h"
#include "spqr.h"
#include "test_util.h"

static char g_fix[1024];

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb > 0 ? mb : 1);
}

static int copy_file(const char *src, const char *dst, long max_bytes) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) { if (in) fclose(in); if (out) fclose(out); return -1; }
    char buf[65536];
    long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (max_bytes >= 0 && total + (long)n > max_bytes) n = (size_t)(max_bytes - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (max_bytes >= 0 && total >= max_bytes) break;
    }
    fclose(in);
    fclose(out);
    return 0;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

/* Replaces the first occurrence of `from` in a file with `to`. */
static int patch_file(const char *path, const char *from, const char *to) {
    char *s = test_read_file(path, NULL);
    if (!s) return -1;
    char *p = strstr(s, from);
    if (!p) { free(s); return -1; }
    size_t n = strlen(s) + strlen(to) + 1;
    char *o = malloc(n);
    memcpy(o, s, (size_t)(p - s));
    strcpy(o + (p - s), to);
    strcat(o, p + strlen(from));
    write_text(path, o);
    free(s);
    free(o);
    return 0;
}

/* Copies fixture model dir `name` into a fresh temp dir; returns its path. */
static char *copy_model(const char *name, char *tmpl) {
    strcpy(tmpl, "/tmp/spqr_test_model_XXXXXX");
    if (!mkdtemp(tmpl)) return NULL;
    const char *files[] = {"config.json", "tokenizer.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[2048], dst[2048];
        snprintf(src, sizeof src, "%s/%s/%s", g_fix, name, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", tmpl, files[i]);
        if (access(src, F_OK) == 0) copy_file(src, dst, -1);
    }
    return tmpl;
}

static void remove_dir(const char *dir) {
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* Loads dir and expects failure with code and a message containing needle. */
static void expect_load_error(const char *dir, spqr_status code, const char *needle) {
    spqr_model *m = NULL;
    spqr_err err = {0};
    spqr_status st = spqr_model_load_hf(dir, NULL, &m, &err);
    CHECK_MSG(st == code, "load %s: got %d (%s), want %d", dir, st, err.msg, code);
    CHECK_MSG(m == NULL, "model pointer must stay NULL on failure");
    CHECK_MSG(needle == NULL || strstr(err.msg, needle), "message '%s' should mention '%s'", err.msg, needle);
    if (st == SPQR_OK) spqr_model_free(m);
}

/* Copies fixture model `name`, replaces `from` by `to` in its `file`, and
 * expects loading the copy to fail with code and needle. */
static void expect_patched_error(const char *name, const char *file, const char *from, const char *to,
                                 spqr_status code, const char *needle) {
    char tmp[64], path[2048];
    CHECK(copy_model(name, tmp) != NULL);
    snprintf(path, sizeof path, "%s/%s", tmp, file);
    CHECK_MSG(patch_file(path, from, to) == 0, "%s/%s: '%s' not found", name, file, from);
    expect_load_error(tmp, code, needle);
    remove_dir(tmp);
}

static void check_model(const spqr_safetensors *fx, const char *name, const char *dir) {
    spqr_model *m = NULL;
    spqr_err err = {0};
    spqr_status st = spqr_model_load_hf(dir, NULL, &m, &err);
    CHECK_MSG(st == SPQR_OK, "load %s: %s", dir, err.msg);
    if (st) return;
    const int32_t V = spqr_model_config(m)->vocab_size;
    for (int k = 0; k < 2; k++) {
        char key[128];
        snprintf(key, sizeof key, "%s.seq%d.ids", name, k);
        const spqr_st_tensor *ti = spqr_safetensors_find(fx, key);
        snprintf(key, sizeof key, "%s.seq%d.logits", name, k);
        const spqr_st_tensor *tl = spqr_safetensors_find(fx, key);
        CHECK_MSG(ti && tl, "fixture %s seq%d missing", name, k);
        if (!ti || !tl) continue;
        const int32_t T = (int32_t)ti->shape[0];
        CHECK(tl->shape[0] == T && tl->shape[1] == V);
        int32_t *ids = malloc((size_t)T * 4);
        memcpy(ids, ti->data, (size_t)T * 4);
        float *ref = malloc((size_t)T * V * 4), *full = malloc((size_t)T * V * 4), *step = malloc((size_t)T * V * 4);
        spqr_st_tensor_to_f32(tl, ref, &err);

        for (int nt = 1; nt <= 2; nt++) {
            spqr_session *s = NULL;
            CHECK(spqr_session_create(m, T, nt, &s, &err) == SPQR_OK);
            if (!s) break;
            /* 1. whole sequence at once, all logits */
            CHECK(spqr_session_forward(s, ids, T, 1, full, &err) == SPQR_OK);
            double e = rel_diff(full, ref, (size_t)T * V);
            printf("%s seq%d (T=%d, %d thread): full-sequence rel diff %.3g\n", name, k, T, nt, e);
            CHECK_MSG(e < 1e-3, "%s seq%d: logits differ from the reference by %g (relative)", name, k, e);
            CHECK(spqr_session_pos(s) == T);
            /* the context is full now */
            CHECK(spqr_session_forward(s, ids, 1, 0, NULL, &err) == SPQR_ERR_INVALID_ARG);

            /* 2. token-by-token decode through the KV cache (matvec path);
             * single-threaded only: hundreds of tiny parallel regions are
             * slow on a shared machine and add nothing here */
            if (nt == 1) {
                spqr_session_reset(s);
                for (int32_t t = 0; t < T; t++)
                    if (spqr_session_forward(s, ids + t, 1, 0, step + (size_t)t * V, &err)) { CHECK(0); break; }
                e = rel_diff(step, full, (size_t)T * V);
                CHECK_MSG(e < 1e-4, "%s seq%d: one-by-one decode differs from full forward by %g", name, k, e);
            }

            /* 3. uneven chunks (7, then the rest in 33s), all logits */
            spqr_session_reset(s);
            int32_t done = 0;
            while (done < T) {
                int32_t c = done == 0 ? 7 : 33;
                if (c > T - done) c = T - done;
                if (spqr_session_forward(s, ids + done, c, 1, step + (size_t)done * V, &err)) { CHECK(0); break; }
                done += c;
            }
            e = rel_diff(step, full, (size_t)T * V);
            CHECK_MSG(e < 1e-4, "%s seq%d: chunked forward differs from full forward by %g", name, k, e);

            /* 4. last-token-only logits equal the last row */
            spqr_session_reset(s);
            CHECK(spqr_session_forward(s, ids, T, 0, step, &err) == SPQR_OK);
            e = rel_diff(step, full + (size_t)(T - 1) * V, (size_t)V);
            CHECK_MSG(e < 1e-5, "%s seq%d: last-only logits differ by %g", name, k, e);

            /* 5. a prefix without logits (its last layer stops once K and V
             * are cached), then the rest with the last token's logits */
            spqr_session_reset(s);
            const int32_t c5 = T / 3 > 0 ? T / 3 : 1;
            CHECK(spqr_session_forward(s, ids, c5, 0, NULL, &err) == SPQR_OK);
            CHECK(spqr_session_forward(s, ids + c5, T - c5, 0, step, &err) == SPQR_OK);
            e = rel_diff(step, full + (size_t)(T - 1) * V, (size_t)V);
            CHECK_MSG(e < 1e-5, "%s seq%d: logits after a prefix without logits differ by %g", name, k, e);
            spqr_session_free(s);
        }
        free(ids); free(ref); free(full); free(step);
    }
    /* bad tokens and bad session parameters */
    spqr_session *s = NULL;
    CHECK(spqr_session_create(m, spqr_model_config(m)->max_position_embeddings + 1, 1, &s, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_session_create(m, 8, 0, &s, &err) == SPQR_ERR_INVALID_ARG);
    /* the options form: a KV type outside the enum, NULL options, the context and thread checks */
    CHECK(spqr_session_create_opts(m, &(spqr_session_opts){8, 1, (spqr_kv_type)7}, &s, &err) == SPQR_ERR_INVALID_ARG && !s);
    CHECK(spqr_session_create_opts(m, &(spqr_session_opts){8, 1, (spqr_kv_type)-1}, &s, &err) == SPQR_ERR_INVALID_ARG && !s);
    CHECK(spqr_session_create_opts(m, NULL, &s, &err) == SPQR_ERR_INVALID_ARG && !s);
    CHECK(spqr_session_create_opts(m, &(spqr_session_opts){0, 1, SPQR_KV_F16}, &s, &err) == SPQR_ERR_INVALID_ARG && !s);
    CHECK(spqr_session_create_opts(m, &(spqr_session_opts){8, 0, SPQR_KV_F16}, &s, &err) == SPQR_ERR_INVALID_ARG && !s);
    {
        spqr_kv_type kt = SPQR_KV_F32;
        CHECK(spqr_kv_type_parse("f16", &kt, &err) == SPQR_OK && kt == SPQR_KV_F16);
        CHECK(spqr_kv_type_parse("f32", &kt, &err) == SPQR_OK && kt == SPQR_KV_F32);
        CHECK(spqr_kv_type_parse("q8_0", &kt, &err) == SPQR_ERR_INVALID_ARG && kt == SPQR_KV_F32);
        CHECK(spqr_kv_type_parse(NULL, &kt, &err) == SPQR_ERR_INVALID_ARG);
    }
    CHECK(spqr_session_create(m, 8, 1, &s, &err) == SPQR_OK);
    int32_t bad[2] = {1, V};
    CHECK(spqr_session_forward(s, bad, 2, 0, NULL, &err) == SPQR_ERR_INVALID_ARG && strstr(err.msg, "token id"));
    bad[1] = -1;
    CHECK(spqr_session_forward(s, bad, 2, 0, NULL, &err) == SPQR_ERR_INVALID_ARG);
    int32_t many[9] = {0};
    CHECK(spqr_session_forward(s, many, 9, 0, NULL, &err) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_session_pos(s) == 0);
    spqr_session_free(s);
    spqr_model_free(m);
}

static void config_tests(void) {
    spqr_config c;
    spqr_err err = {0};
    const char *base = "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":4,"
                       "\"num_hidden_layers\":1,\"num_attention_heads\":2%s}";
    char buf[1024];
#define CFG(extra) (snprintf(buf, sizeof buf, base, extra), spqr_config_parse(buf, strlen(buf), &c, &err))
    CHECK(CFG("") == SPQR_OK);
    CHECK(c.n_kv_heads == 2 && c.head_dim == 4 && c.max_position_embeddings == 2048 && c.rope_theta == 10000.0f);
    CHECK(c.bos_token_id == -1 && c.eos_token_id == -1 && !c.tie_word_embeddings && c.rope_scaling == SPQR_ROPE_NONE);
    CHECK(CFG(",\"eos_token_id\":[5,6],\"bos_token_id\":3") == SPQR_OK && c.eos_token_id == 5 && c.bos_token_id == 3);
    CHECK(CFG(",\"num_key_value_heads\":3") == SPQR_ERR_FORMAT);
    CHECK(CFG(",\"head_dim\":5") == SPQR_ERR_FORMAT); /* odd head_dim: no RoPE pairs */
    snprintf(buf, sizeof buf, "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":-8,\"intermediate_size\":4,"
                              "\"num_hidden_layers\":1,\"num_attention_heads\":2}");
    CHECK(spqr_config_parse(buf, strlen(buf), &c, &err) == SPQR_ERR_FORMAT && strstr(err.msg, "hidden_size"));
    CHECK(CFG(",\"attention_bias\":true") == SPQR_ERR_UNSUPPORTED && strstr(err.msg, "attention_bias"));
    CHECK(CFG(",\"mlp_bias\":true") == SPQR_ERR_UNSUPPORTED && strstr(err.msg, "mlp_bias"));
    CHECK(CFG(",\"hidden_act\":\"gelu\"") == SPQR_ERR_UNSUPPORTED && strstr(err.msg, "gelu"));
    CHECK(CFG(",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}") == SPQR_ERR_UNSUPPORTED && strstr(err.msg, "yarn"));
    CHECK(CFG(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}") == SPQR_ERR_FORMAT);
    /* transformers' Llama has no sliding window and ignores the field; Mistral slides every layer */
    model_hparams hp;
    CHECK(CFG(",\"sliding_window\":512,\"max_position_embeddings\":4096") == SPQR_OK);
    CHECK(spqri_model_config_parse(buf, strlen(buf), &c, &hp, &err) == SPQR_OK && hp.sliding_window == 0);
    snprintf(buf, sizeof buf, "{\"model_type\":\"mistral\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":4,"
                              "\"num_hidden_layers\":3,\"num_attention_heads\":2,\"sliding_window\":512,"
                              "\"max_position_embeddings\":4096}");
    CHECK(spqri_model_config_parse(buf, strlen(buf), &c, &hp, &err) == SPQR_OK && hp.sliding_window == 512 &&
          arch_layer_slides(&hp, 0) && arch_layer_slides(&hp, 2));
    CHECK(CFG(",\"sliding_window\":null") == SPQR_OK);
    /* transformers 5 keeps theta and scaling in rope_parameters, which wins over the top level */
    CHECK(CFG(",\"rope_theta\":5,\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1000000}") == SPQR_OK &&
          c.rope_theta == 1e6f && c.rope_scaling == SPQR_ROPE_NONE);
    CHECK(CFG(",\"rope_parameters\":{\"rope_theta\":20000}") == SPQR_OK && c.rope_theta == 20000.0f);
    CHECK(CFG(",\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000,\"factor\":8,\"low_freq_factor\":1,"
              "\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}") == SPQR_OK &&
          c.rope_scaling == SPQR_ROPE_LLAMA3 && c.rope_theta == 5e5f && c.rope_factor == 8.0f);
    CHECK(CFG(",\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":4}") == SPQR_ERR_UNSUPPORTED &&
          strstr(err.msg, "yarn") && strstr(err.msg, "rope_parameters"));
    CHECK(CFG(",\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\"}}") == SPQR_ERR_UNSUPPORTED);
    CHECK(CFG(",\"rope_parameters\":7") == SPQR_ERR_FORMAT);
    /* a repeated key (Python keeps the last, cJSON finds the first) and loose types are refused */
    CHECK(CFG(",\"hidden_size\":16") == SPQR_ERR_FORMAT && strstr(err.msg, "\"hidden_size\" appears twice"));
    CHECK(CFG(",\"rope_scaling\":{\"factor\":2,\"factor\":3}") == SPQR_ERR_FORMAT && strstr(err.msg, "factor"));
    CHECK(CFG(",\"tie_word_embeddings\":\"yes\"") == SPQR_ERR_FORMAT && strstr(err.msg, "tie_word_embeddings"));
    CHECK(CFG(",\"rope_theta\":NaN") == SPQR_ERR_FORMAT && strstr(err.msg, "not valid JSON"));
    /* transformers' per-family defaults for omitted fields */
    const char *fam = "{\"model_type\":\"%s\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":4,"
                      "\"num_hidden_layers\":3,\"num_attention_heads\":2%s}";
#define CFGF(type, extra) (snprintf(buf, sizeof buf, fam, type, extra), spqri_model_config_parse(buf, strlen(buf), &c, &hp, &err))
    CHECK(CFGF("gemma", "") == SPQR_OK && c.head_dim == 256 && c.max_position_embeddings == 8192);
    CHECK(CFGF("gemma2", "") == SPQR_OK && c.head_dim == 256);
    CHECK(CFGF("qwen3", "") == SPQR_OK && c.head_dim == 128 && c.rms_norm_eps == 1e-6f);
    CHECK(CFGF("qwen2", "") == SPQR_OK && c.head_dim == 4 && c.max_position_embeddings == 32768);
    CHECK(CFGF("phi3", "") == SPQR_OK && c.rms_norm_eps == 1e-5f && c.head_dim == 4 && hp.sliding_window == 0);
    CHECK(CFGF("mistral", "") == SPQR_OK && c.max_position_embeddings == 131072 && hp.sliding_window == 4096 &&
          arch_layer_slides(&hp, 1));
    CHECK(CFGF("mistral", ",\"max_position_embeddings\":4096") == SPQR_OK && hp.sliding_window == 0);
    /* layer_types: read by Gemma 2, not by transformers' Mistral or Phi-3 (every layer slides) */
    CHECK(CFGF("mistral", ",\"sliding_window\":16,\"layer_types\":[\"full_attention\",\"full_attention\",\"full_attention\"]") ==
              SPQR_OK && hp.sliding_window == 16 && arch_layer_slides(&hp, 0) && arch_layer_slides(&hp, 2));
    CHECK(CFGF("gemma2", ",\"sliding_window\":16,\"layer_types\":[\"full_attention\",\"sliding_attention\",\"full_attention\"]") ==
              SPQR_OK && !arch_layer_slides(&hp, 0) && arch_layer_slides(&hp, 1));
    CHECK(CFGF("phi3", ",\"rope_parameters\":{\"rope_type\":\"default\",\"partial_rotary_factor\":0.5}") ==
              SPQR_ERR_UNSUPPORTED && strstr(err.msg, "partial_rotary_factor"));
#undef CFGF
    CHECK(CFG(",\"sliding_window\":4096,\"max_position_embeddings\":4096") == SPQR_OK);
    CHECK(spqr_config_parse("{\"model_type\":\"gpt2\"}", 21, &c, &err) == SPQR_ERR_UNSUPPORTED && strstr(err.msg, "gpt2") &&
          strstr(err.msg, "supported: llama, mistral, qwen2, qwen3, phi3, gemma, gemma2"));
    CHECK(spqr_config_parse("{\"model_type\":", 14, &c, &err) == SPQR_ERR_FORMAT);
    CHECK(spqr_config_parse("[]", 2, &c, &err) == SPQR_ERR_FORMAT);
    snprintf(buf, sizeof buf, "{\"model_type\":\"mistral\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":4,"
                              "\"num_hidden_layers\":1}");
    CHECK(spqr_config_parse(buf, strlen(buf), &c, &err) == SPQR_ERR_FORMAT && strstr(err.msg, "num_attention_heads"));
    /* Llama-3 rope scaling against values computed with HF's formula by hand:
     * theta 500000, hd 128, factor 8, low 1, high 4, original 8192. */
    CHECK(CFG(",\"head_dim\":128,\"rope_theta\":500000,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
              "\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":8192}") == SPQR_OK);
    float f[64];
    spqr_config_rope_inv_freq(&c, f);
    CHECK_NEAR(f[0], 1.0, 1e-7);                                  /* high frequency: unchanged */
    CHECK_NEAR(f[63], pow(500000.0, -126.0 / 128) / 8, 1e-12);    /* low frequency: / factor */
    /* i = 30: wavelen = 2 pi 500000^(60/128) = 2948 is between 2048 and 8192: smoothed */
    double inv = pow(500000.0, -60.0 / 128), wl = 2 * M_PI / inv, sm = (8192 / wl - 1) / 3;
    CHECK(wl > 2048 && wl < 8192);
    CHECK_NEAR(f[30], (1 - sm) * inv / 8 + sm * inv, 1e-6 * inv);
#undef CFG
}

static void loader_error_tests(void) {
    char tmp[64], path[2048];
    expect_load_error("/nonexistent/spqr/model", SPQR_ERR_IO, "does not exist");
    /* empty directory: no config.json */
    strcpy(tmp, "/tmp/spqr_test_model_XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
    expect_load_error(tmp, SPQR_ERR_IO, "config.json");
    remove_dir(tmp);
    /* config disagrees with the tensor shapes */
    expect_patched_error("tiny_gqa", "config.json", "\"intermediate_size\": 100", "\"intermediate_size\": 104",
                         SPQR_ERR_FORMAT, "mlp.gate_proj.weight has shape [100, 72] but config.json implies [104, 72]");
    /* unsupported architecture */
    expect_patched_error("tiny_gqa", "config.json", "\"model_type\": \"llama\"", "\"model_type\": \"gpt_neox\"",
                         SPQR_ERR_UNSUPPORTED, "gpt_neox");
    /* truncated weights */
    copy_model("tiny_gqa", tmp);
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    char src[2048];
    snprintf(src, sizeof src, "%s/tiny_gqa/model.safetensors", g_fix);
    copy_file(src, path, 200000);
    expect_load_error(tmp, SPQR_ERR_FORMAT, NULL);
    /* no weights at all */
    unlink(path);
    expect_load_error(tmp, SPQR_ERR_IO, "model.safetensors");
    remove_dir(tmp);
    /* missing tensor: untie a tied model, lm_head.weight does not exist */
    expect_patched_error("tiny_tied", "config.json", "\"tie_word_embeddings\": true",
                         "\"tie_word_embeddings\": false", SPQR_ERR_FORMAT, "lm_head.weight is missing");
    /* sharded index that points outside the directory, or at a missing shard */
    expect_patched_error("tiny_tied", "model.safetensors.index.json", "\"model-00002-of-00002.safetensors\"",
                         "\"../model-00002-of-00002.safetensors\"", SPQR_ERR_FORMAT, "plain file name");
    copy_model("tiny_tied", tmp);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", tmp);
    unlink(path);
    expect_load_error(tmp, SPQR_ERR_IO, "model-00002-of-00002");
    remove_dir(tmp);
    /* a shard missing from the index: its tensors are missing */
    copy_model("tiny_tied", tmp);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", tmp);
    write_text(path, "{\"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}");
    expect_load_error(tmp, SPQR_ERR_FORMAT, "is missing");
    remove_dir(tmp);
}

int main(int argc, char **argv) {
    snprintf(g_fix, sizeof g_fix, "%s", argc > 1 ? argv[1] : "tests/fixtures");
    char path[2048];
    config_tests();

    snprintf(path, sizeof path, "%s/model_logits.safetensors", g_fix);
    spqr_safetensors *fx = NULL;
    spqr_err err = {0};
    CHECK_MSG(spqr_safetensors_open(path, &fx, &err) == SPQR_OK, "%s", err.msg);
    if (fx) {
        snprintf(path, sizeof path, "%s/tiny_gqa", g_fix);
        check_model(fx, "tiny_gqa", path);
        snprintf(path, sizeof path, "%s/tiny_tied", g_fix);
        check_model(fx, "tiny_tied", path);
        /* the trained default model, when it and its fixture exist */
        snprintf(path, sizeof path, "%s/../../models/default/model.safetensors", g_fix);
        if (spqr_safetensors_find(fx, "default.seq0.ids") && access(path, F_OK) == 0) {
            snprintf(path, sizeof path, "%s/../../models/default", g_fix);
            check_model(fx, "default", path);
        } else {
            CHECK_MSG(0, "models/default or its logits fixture is missing (both are committed)");
        }
        spqr_safetensors_close(fx);
    }
    loader_error_tests();
    TEST_SUMMARY();
}
