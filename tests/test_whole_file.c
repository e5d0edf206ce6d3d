/* The whole file quantized (issue 14, item 1) on the tiny fixtures:
 *  - untied (tiny GQA), quantize_head + quantize_embed: the file holds a
 *    packed embedding and head and no dense matrix; the embedding equals an
 *    independent round-to-nearest quantization of the fp32 table with the
 *    run's statistics (identity Hessian, no GPTQ, no permutation); the
 *    model's lookup of every token equals that row of the reference
 *    dequantization; ppl within 10% of fp32 and the same as the dequantized
 *    weights run densely;
 *  - byte accounting: the summary's file size is the file's, the archive's
 *    per-part bytes add up to it exactly, the summary's parameter count is
 *    the model's and its whole-file bits are 8 * size / params;
 *  - tied (tiny_tied), both options: one packed table (the calibrated head)
 *    stored as the embedding, no lm_head section, and the loaded model's
 *    head and lookup are that table; with tied_two_tables two packed tables
 *    (the RTN embedding for the lookup, the calibrated head), the
 *    parameters counted once. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "model/session.h"
#include "spqr.h"
#include "test_util.h"
#include "test_ppl.h"


/* Every byte of the file attributed, and the summary consistent with it. */
static void check_accounting(const char *path, const spqr_quantize_summary *sm, const spqr_model *src) {
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sm->file_bytes == (uint64_t)sb.st_size);
    spqr_archive *a = NULL;
    spqr_err err;
    CHECK(spqr_archive_open(path, &a, &err) == SPQR_OK);
    if (!a) return;
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    uint64_t sum = ab.container_bytes + ab.text_bytes;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) sum += spqr_archive_tensor_bytes(a, i);
    CHECK_MSG(sum == (uint64_t)sb.st_size && ab.file_bytes == sum, "counted %llu of %lld bytes",
              (unsigned long long)sum, (long long)sb.st_size);
    CHECK(ab.dense_bytes + ab.packed_bytes + ab.text_bytes + ab.container_bytes == ab.file_bytes);
    /* the model's parameters, counted from the source model's shapes */
    const spqr_config *c = &src->cfg;
    int64_t params = (int64_t)c->vocab_size * c->hidden_size * (c->tie_word_embeddings ? 1 : 2) + src->n_norm_floats;
    for (int32_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < ARCH_N_LIN; k++)
            if (src->hp.arch->lin[k].name) params += (int64_t)src->layers[l].lin[k].rows * src->layers[l].lin[k].cols;
    CHECK_MSG(sm->model_params == params, "summary params %lld, model %lld", (long long)sm->model_params,
              (long long)params);
    /* every parameter stored once, or the tied table twice (embedding and head) */
    const int two_tables = c->tie_word_embeddings && spqr_archive_find_packed(a, "lm_head.weight");
    CHECK(ab.dense_params + ab.packed_params == params + (two_tables ? (int64_t)c->vocab_size * c->hidden_size : 0));
    CHECK_NEAR(sm->file_bits, 8.0 * (double)sb.st_size / (double)params, 1e-12);
    /* bytes counted = file: each packed tensor's bytes as the quantizer counted
     * them before writing (its record's file_bytes, what --target-bits
     * budgets) are exactly the bytes the reader attributes to its section */
    cJSON *meta = cJSON_Parse(spqr_archive_metadata_json(a));
    const cJSON *layer = NULL;
    int n_rec = 0, n_packed = 0;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(meta, "layers")) {
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(layer, "name"));
        const double counted = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(layer, "file_bytes"));
        uint64_t in_file = 0;
        for (int32_t i = 0; nm && i < spqr_archive_count(a); i++)
            if (!strcmp(spqr_archive_name(a, i), nm)) in_file = spqr_archive_tensor_bytes(a, i);
        CHECK_MSG(in_file > 0 && counted == (double)in_file, "%s: %.0f bytes counted, %llu in the file", nm ? nm : "?",
                  counted, (unsigned long long)in_file);
        n_rec++;
    }
    for (int32_t i = 0; i < spqr_archive_count(a); i++) n_packed += spqr_archive_packed_at(a, i) != NULL;
    CHECK_MSG(n_rec == n_packed, "%d records for %d packed tensors", n_rec, n_packed);
    cJSON_Delete(meta);
    spqr_archive_close(a);
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    char path[512], tmp[] = "/tmp/spqr_test_whole.XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    setenv("SPQR_KERNEL", "exact", 1);
    spqr_err err = {0};
    snprintf(path, sizeof path, "%s/../../data/calib.txt", fix);
    size_t len = 0;
    char *text = test_read_prefix(path, 40000, &len);
    CHECK(text && len > 30000);
    if (!text) TEST_SUMMARY();

    spqr_quantize_options o;
    spqr_quantize_options_default(&o);
    o.nsamples = 6;
    o.seqlen = 48;
    o.seed = 7;
    o.n_threads = 2;
    o.preset = "3.6bit";
    o.quantize_head = 1;
    o.quantize_embed = 1;

    /* 1. untied */
    spqr_model *m = NULL;
    snprintf(path, sizeof path, "%s/tiny_gqa", fix);
    CHECK(spqr_model_load(path, NULL, &m, &err) == SPQR_OK);
    if (!m) TEST_SUMMARY();
    CHECK(!m->cfg.tie_word_embeddings);
    int32_t *cal = NULL, n_cal = 0, *ev = NULL, n_ev = 0;
    CHECK(spqr_tokenizer_encode(m->tok, text, 6000, 0, &cal, &n_cal, &err) == SPQR_OK);
    CHECK(spqr_tokenizer_encode(m->tok, text + 10000, 30000, 0, &ev, &n_ev, &err) == SPQR_OK);
    const int32_t ctx = 64, n_win = n_ev / ctx < 12 ? n_ev / ctx : 12;
    char out[600];
    snprintf(out, sizeof out, "%s/whole.spqr", tmp);
    spqr_quantize_summary sm;
    spqr_status st = spqr_model_quantize(m, cal, n_cal, &o, out, &sm, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    const int32_t V = m->cfg.vocab_size, H = m->cfg.hidden_size;
    CHECK(sm.embed.count == 1 && sm.embed.params == (int64_t)V * H && sm.head.count == 1);
    CHECK(sm.dense_params == (int64_t)m->n_norm_floats); /* only norms stay 32-bit */
    check_accounting(out, &sm, m);
    spqr_archive *a = NULL;
    CHECK(spqr_archive_open(out, &a, &err) == SPQR_OK);
    const spqr_tensor *pe = a ? spqr_archive_find_packed(a, "model.embed_tokens.weight") : NULL;
    CHECK(pe && !pe->perm && pe->rows == V && pe->cols == H);
    CHECK(a && !spqr_archive_find_dense(a, "model.embed_tokens.weight") && !spqr_archive_find_dense(a, "lm_head.weight") &&
          spqr_archive_find_packed(a, "lm_head.weight"));
    float *E = malloc((size_t)V * H * sizeof(float)), *Eq = malloc((size_t)V * H * sizeof(float)),
          *Er = malloc((size_t)V * H * sizeof(float)), *Hid = calloc((size_t)H * H, sizeof(float));
    if (pe) {
        /* independent reference: RTN of the fp32 table with the run's statistics */
        for (int32_t r = 0; r < V; r++) CHECK(spqri_linear_row(&m->embed, r, E + (size_t)r * H, &err) == SPQR_OK);
        for (int32_t j = 0; j < H; j++) Hid[(size_t)j * H + j] = 1.0f;
        spqr_quant_params p = o.params;
        p.gptq = 0;
        p.perm = SPQR_PERM_IDENTITY;
        CHECK(spqr_quantize_layer(E, V, H, Hid, &p, 1, NULL, NULL, Er, NULL, NULL, &err) == SPQR_OK);
        CHECK(spqr_tensor_dequantize(pe, Eq, &err) == SPQR_OK);
        CHECK_MSG(!memcmp(Er, Eq, (size_t)V * H * sizeof(float)), "the stored embedding is not the RTN reference");
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)V * H; i++) {
            num += (double)(Eq[i] - E[i]) * (Eq[i] - E[i]);
            den += (double)E[i] * E[i];
        }
        printf("embedding: %.4f bits/param, relative error %.5f\n", sm.embed.stored_bits, num / den);
        CHECK(num / den < 0.05);
    }
    spqr_model *q = NULL;
    st = spqr_model_load(out, NULL, &q, &err);
    CHECK_MSG(st == SPQR_OK, "%s", err.msg);
    if (q && pe) {
        CHECK(q->embed.kind == SPQR_LINEAR_PACKED && q->lm_head.kind == SPQR_LINEAR_PACKED &&
              q->embed.packed != q->lm_head.packed);
        /* the lookup of every token = that row of the reference dequantization */
        float *row = malloc((size_t)H * sizeof(float));
        int same = 1;
        for (int32_t r = 0; r < V; r++) {
            CHECK(spqri_model_embed(q, r, row, &err) == SPQR_OK);
            same &= !memcmp(row, Eq + (size_t)r * H, (size_t)H * sizeof(float));
        }
        CHECK_MSG(same, "spqri_model_embed of a packed embedding differs from spqr_tensor_dequantize");
        free(row);
        const double pq = test_perplexity(q, ev, n_win, ctx), pf = test_perplexity(m, ev, n_win, ctx);
        printf("whole file: ppl .spqr %.5f, fp32 %.5f, %.4f bits per parameter (linears %.4f)\n", pq, pf, sm.file_bits,
               sm.avg_bits_stored_blocks);
        CHECK(isfinite(pq) && pq / pf < 1.10 && pq != pf);
    }
    spqr_model_free(q);
    spqr_archive_close(a);
    free(E);
    free(Eq);
    free(Er);
    free(Hid);
    unlink(out);

    /* 1b. --target-bits 6 on the whole file: the embedding is an item of the
     * allocation with a setting; the bytes the allocation counted for it (its
     * record's file_bytes, the writer's packed size) are its section's in the
     * file, every byte is attributed, and the file meets the budget */
    {
        spqr_quantize_options ob = o;
        ob.preset = NULL;
        ob.target_bits = 6.0;
        spqr_quantize_summary sb;
        st = spqr_model_quantize(m, cal, n_cal, &ob, out, &sb, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        check_accounting(out, &sb, m);
        CHECK_MSG(fabs(sb.file_bits - 6.0) <= 0.02, "whole file %.4f bits for a budget of 6", sb.file_bits);
        spqr_archive *a = NULL;
        CHECK(spqr_archive_open(out, &a, &err) == SPQR_OK);
        uint64_t section = 0;
        for (int32_t i = 0; a && i < spqr_archive_count(a); i++)
            if (!strcmp(spqr_archive_name(a, i), "model.embed_tokens.weight")) section = spqr_archive_tensor_bytes(a, i);
        cJSON *meta = a ? cJSON_Parse(spqr_archive_metadata_json(a)) : NULL;
        const cJSON *layer = NULL, *rec = NULL;
        cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(meta, "layers")) {
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(layer, "name"));
            if (nm && !strcmp(nm, "model.embed_tokens.weight")) rec = layer;
        }
        CHECK_MSG(rec && cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "setting")),
                  "the embedding's record has no setting");
        const double counted = rec ? cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "file_bytes")) : -1;
        CHECK_MSG(section > 0 && counted == (double)section, "embedding: %.0f bytes counted, %llu in the file", counted,
                  (unsigned long long)section);
        printf("--target-bits 6: whole file %.4f bits, embedding %s, %llu bytes\n", sb.file_bits,
               rec ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "setting")) : "?",
               (unsigned long long)section);
        cJSON_Delete(meta);
        if (a) spqr_archive_close(a);
        unlink(out);
    }
    free(cal);
    free(ev);

    /* 2. tied: one table */
    spqr_model *mt = NULL;
    snprintf(path, sizeof path, "%s/tiny_tied", fix);
    CHECK(spqr_model_load(path, NULL, &mt, &err) == SPQR_OK);
    if (mt) {
        CHECK(mt->cfg.tie_word_embeddings);
        CHECK(spqr_tokenizer_encode(mt->tok, text, 6000, 0, &cal, &n_cal, &err) == SPQR_OK);
        snprintf(out, sizeof out, "%s/tied.spqr", tmp);
        o.tied_two_tables = 1;
        st = spqr_model_quantize(mt, cal, n_cal, &o, out, &sm, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        CHECK(sm.head.count == 1 && sm.embed.count == 1);
        check_accounting(out, &sm, mt);
        CHECK(spqr_archive_open(out, &a, &err) == SPQR_OK);
        CHECK(a && spqr_archive_find_packed(a, "model.embed_tokens.weight") && spqr_archive_find_packed(a, "lm_head.weight"));
        spqr_archive_close(a);
        st = spqr_model_load(out, NULL, &q, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        if (q) {
            CHECK(q->embed.kind == SPQR_LINEAR_PACKED && q->lm_head.kind == SPQR_LINEAR_PACKED &&
                  q->lm_head.packed != q->embed.packed && q->lm_head.fast && !q->embed.fast);
            spqr_model_free(q);
        }
        unlink(out);
        o.tied_two_tables = 0;
        st = spqr_model_quantize(mt, cal, n_cal, &o, out, &sm, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        CHECK(sm.head.count == 1 && sm.embed.count == 0);
        check_accounting(out, &sm, mt);
        CHECK(spqr_archive_open(out, &a, &err) == SPQR_OK);
        CHECK(a && spqr_archive_find_packed(a, "model.embed_tokens.weight") && !spqr_archive_find_packed(a, "lm_head.weight") &&
              !spqr_archive_find_dense(a, "lm_head.weight") && !spqr_archive_find_dense(a, "model.embed_tokens.weight"));
        spqr_archive_close(a);
        st = spqr_model_load(out, NULL, &q, &err);
        CHECK_MSG(st == SPQR_OK, "%s", err.msg);
        if (q) {
            CHECK(q->embed.kind == SPQR_LINEAR_PACKED && q->lm_head.packed == q->embed.packed && q->lm_head.fast);
            spqr_model_free(q);
        }
        free(cal);
        unlink(out);
        spqr_model_free(mt);
    }
    spqr_model_free(m);
    free(text);
    rmdir(tmp);
    TEST_SUMMARY();
}
