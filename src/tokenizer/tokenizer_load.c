/* Loading a Hugging Face tokenizer.json (BPE model) into spqr_tokenizer:
 * vocab, merges, added tokens, and the pre-processing configuration, which
 * must be one of the layouts docs/tokenizer.md lists. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "io/file.h"
#include "io/json_doc.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#define META "\xE2\x96\x81" /* U+2581 "▁" */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = /* Llama-3's with single digits */
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* What the pre-processing sections of the JSON asked for. */
typedef struct tok_cfg {
    int bytelevel, metaspace, sp_norm;
} tok_cfg;

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Absent/null -> def; true/false -> 1/0. */
static int jbool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

/* A valid id: an integral number in [0, TOK_MAX_ID). */
static int jid(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || d != floor(d)) return 0;
    *out = (int32_t)d;
    return 1;
}

static const char *type_of(const cJSON *o) {
    const char *s = jstr(o, "type");
    return s ? s : "(no type)";
}

/* ----------------------------------------------------------- sections */

static spqr_status parse_pretok(spqr_tokenizer *t, tok_cfg *c, const cJSON *p, int depth, spqr_err *err) {
    if (!p || cJSON_IsNull(p)) return SPQR_OK;
    if (!cJSON_IsObject(p) || depth > 8)
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: malformed pre_tokenizer");
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(a)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: Sequence pre_tokenizer without a list");
        cJSON_ArrayForEach(e, a) {
            spqr_status st = parse_pretok(t, c, e, depth + 1, err);
            if (st) return st;
        }
        return SPQR_OK;
    }
    if (!strcmp(ty, "ByteLevel")) {
        c->bytelevel = 1;
        t->add_prefix_space = jbool(p, "add_prefix_space", 0);
        t->prefix_stage = t->n_stages;
        if (jbool(p, "use_regex", 1)) {
            if (t->n_stages == TOK_MAX_STAGES) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: too many pre-tokenizer splits");
            t->stage[t->n_stages] = TOK_PRE_GPT2; t->stage_digits[t->n_stages++] = 0;
        }
        return SPQR_OK;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = pat ? jstr(pat, "Regex") : NULL;
        const char *beh = jstr(p, "behavior");
        if (!re) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Split pre-tokenizer without a Regex pattern is not supported");
        if (!beh || strcmp(beh, "Isolated") || jbool(p, "invert", 0))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Split pre-tokenizer behavior \"%s\"%s is not supported (only Isolated)",
                                beh ? beh : "?", jbool(p, "invert", 0) ? " with invert" : "");
        if (t->n_stages == TOK_MAX_STAGES) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: too many pre-tokenizer splits");
        if (!strcmp(re, RE_GPT2)) { t->stage[t->n_stages] = TOK_PRE_GPT2; t->stage_digits[t->n_stages++] = 0; }
        else if (!strcmp(re, RE_LLAMA3)) { t->stage[t->n_stages] = TOK_PRE_LLAMA3; t->stage_digits[t->n_stages++] = 3; }
        else if (!strcmp(re, RE_QWEN2)) { t->stage[t->n_stages] = TOK_PRE_LLAMA3; t->stage_digits[t->n_stages++] = 1; }
        else return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: pre-tokenizer regex \"%.300s\" is not supported (only the GPT-2, Llama-3 and Qwen2 patterns)", re);
        return SPQR_OK;
    }
    if (!strcmp(ty, "Digits")) { /* SmolLM: Sequence[Digits(individual_digits), ByteLevel] */
        if (t->n_stages == TOK_MAX_STAGES) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: too many pre-tokenizer splits");
        t->stage[t->n_stages] = TOK_PRE_DIGITS;
        t->stage_digits[t->n_stages++] = jbool(p, "individual_digits", 0);
        return SPQR_OK;
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        if (rep && strcmp(rep, META)) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Metaspace replacement \"%.40s\" is not supported (only \"" META "\")", rep);
        c->metaspace = 1;
        const char *ps = jstr(p, "prepend_scheme");
        if (ps) {
            if (!strcmp(ps, "always")) t->prepend = TOK_PREPEND_META_ALWAYS;
            else if (!strcmp(ps, "first")) t->prepend = TOK_PREPEND_META_FIRST;
            else if (!strcmp(ps, "never")) t->prepend = TOK_PREPEND_NONE;
            else return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: unknown Metaspace prepend_scheme \"%.40s\"", ps);
        } else {
            t->prepend = jbool(p, "add_prefix_space", 1) ? TOK_PREPEND_META_ALWAYS : TOK_PREPEND_NONE;
        }
        t->replace_space = 1;
        t->meta_split = jbool(p, "split", 1);
        return SPQR_OK;
    }
    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: pre_tokenizer type \"%.60s\" is not supported", ty);
}

static spqr_status parse_normalizer(spqr_tokenizer *t, tok_cfg *c, const cJSON *p, int depth, spqr_err *err) {
    if (!p || cJSON_IsNull(p)) return SPQR_OK;
    if (!cJSON_IsObject(p) || depth > 8) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: malformed normalizer");
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "normalizers"), *e;
        if (!cJSON_IsArray(a)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: Sequence normalizer without a list");
        cJSON_ArrayForEach(e, a) {
            spqr_status st = parse_normalizer(t, c, e, depth + 1, err);
            if (st) return st;
        }
        return SPQR_OK;
    }
    if (!strcmp(ty, "Prepend")) {
        const char *s = jstr(p, "prepend");
        if (!s || strcmp(s, META)) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Prepend normalizer \"%.40s\" is not supported (only \"" META "\")", s ? s : "?");
        t->prepend = TOK_PREPEND_ALWAYS; c->sp_norm = 1;
        return SPQR_OK;
    }
    if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *from = pat ? jstr(pat, "String") : NULL, *to = jstr(p, "content");
        if (!from || !to || strcmp(from, " ") || strcmp(to, META))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Replace normalizer other than \" \" -> \"" META "\" is not supported");
        t->replace_space = 1; c->sp_norm = 1;
        return SPQR_OK;
    }
    if (!strcmp(ty, "NFC")) { t->nfc = 1; return SPQR_OK; }
    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: normalizer type \"%.60s\" is not supported", ty);
}

static spqr_status parse_decoder(spqr_tokenizer *t, const cJSON *p, int depth, spqr_err *err) {
    if (!p || cJSON_IsNull(p)) return SPQR_OK;
    if (!cJSON_IsObject(p) || depth > 8) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: malformed decoder");
    const char *ty = type_of(p);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "decoders"), *e;
        if (!cJSON_IsArray(a)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: Sequence decoder without a list");
        cJSON_ArrayForEach(e, a) {
            spqr_status st = parse_decoder(t, e, depth + 1, err);
            if (st) return st;
        }
        return SPQR_OK;
    }
    if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "ByteFallback") || !strcmp(ty, "Fuse")) return SPQR_OK;
    if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *from = pat ? jstr(pat, "String") : NULL, *to = jstr(p, "content");
        if (!from || !to || strcmp(from, META) || strcmp(to, " "))
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Replace decoder other than \"" META "\" -> \" \" is not supported");
        return SPQR_OK;
    }
    if (!strcmp(ty, "Strip")) {
        const char *s = jstr(p, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "start"), *sp = cJSON_GetObjectItemCaseSensitive(p, "stop");
        int32_t start = 0, stop = 0;
        if (!s || strcmp(s, " ") || (st && !jid(st, &start)) || (sp && !jid(sp, &stop)) || stop != 0 || start > 16)
            return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Strip decoder other than leading spaces is not supported");
        t->strip_start = start;
        return SPQR_OK;
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *ps = jstr(p, "prepend_scheme");
        int strip = ps ? strcmp(ps, "never") != 0 : jbool(p, "add_prefix_space", 1);
        t->strip_start = strip ? 1 : 0;
        return SPQR_OK;
    }
    return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: decoder type \"%.60s\" is not supported", ty);
}

/* ----------------------------------------------------------- vocab */

static spqr_status set_decoded(spqr_tokenizer *t, int32_t id, const uint8_t *s, size_t n, int64_t *fill) {
    memcpy(t->dec_arena + *fill, s, n);
    t->dec_off[id] = *fill;
    t->dec_len[id] = (int32_t)n;
    *fill += (int64_t)n;
    return SPQR_OK;
}

/* Upper-case hex digit, as HF writes byte tokens ("<0x0A>"). */
static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Bytes a vocab token decodes to (added tokens decode to their content). */
static void decode_vocab_token(spqr_tokenizer *t, int32_t id, int64_t *fill) {
    const uint8_t *s = (const uint8_t *)t->str_arena + t->str_off[id];
    size_t n = (size_t)t->str_len[id];
    uint8_t *dst = t->dec_arena + *fill;
    size_t m = 0;
    if (t->mode == TOK_BYTELEVEL) {
        /* each char back to its byte; a token with an unmapped char decodes
         * to its own UTF-8 text, as HF's ByteLevel decoder does */
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t l = spqr_utf8_next(s + i, n - i, &cp);
            int b = cp == SPQR_UTF8_INVALID ? -1 : spqri_tok_cp_to_byte(cp);
            if (b < 0) { memcpy(dst, s, n); m = n; break; }
            dst[m++] = (uint8_t)b;
            i += l;
        }
    } else {
        int hi = n == 6 ? hexval(s[3]) : -1, lo = n == 6 ? hexval(s[4]) : -1;
        if (t->byte_fallback && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hi >= 0 && lo >= 0) {
            dst[m++] = (uint8_t)(hi * 16 + lo);
        } else {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && !memcmp(s + i, META, 3)) { dst[m++] = ' '; i += 3; }
                else dst[m++] = s[i++];
            }
        }
    }
    t->dec_off[id] = *fill;
    t->dec_len[id] = (int32_t)m;
    *fill += (int64_t)m;
}

/* The first of names that the tokenizer declares: among the added tokens
 * marked special first, then the other added tokens, then the plain vocab.
 * A declared token wins over an earlier name that is only a vocab entry
 * (Gemma has "<eos>" = 1 declared and a plain "</s>" = 213 in its vocab). */
static int32_t find_named(const spqr_tokenizer *t, const cJSON *added, const char *const *names) {
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; names[k]; k++) {
            const cJSON *e;
            cJSON_ArrayForEach(e, added) {
                const char *c = jstr(e, "content");
                int32_t id;
                if (jbool(e, "special", 0) == !pass && c && !strcmp(c, names[k]) &&
                    jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
                    return id;
            }
        }
    for (int k = 0; names[k]; k++) {
        int32_t id = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)names[k], strlen(names[k]));
        if (id >= 0) return id;
    }
    return -1;
}

/* First / last SpecialToken of a TemplateProcessing "single" template. */
static void template_ids(const cJSON *pp, int32_t *first, int32_t *last, int depth) {
    if (!cJSON_IsObject(pp) || depth > 8) return;
    const char *ty = type_of(pp);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) template_ids(e, first, last, depth + 1);
        return;
    }
    if (strcmp(ty, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    int n = cJSON_GetArraySize(single);
    for (int end = 0; end < 2; end++) {
        const cJSON *piece = cJSON_GetArrayItem(single, end ? n - 1 : 0);
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
        const char *name = sp ? jstr(sp, "id") : NULL;
        if (!name) continue;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
        int32_t id;
        if (jid(cJSON_GetArrayItem(ids, 0), &id)) *(end ? last : first) = id;
    }
}

/* Id of the token whose text is s: an added token, else a vocab entry; -1. */
static int32_t token_id_of(const spqr_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    int32_t id = -1;
    if (n && spqri_tok_trie_match(t, (const uint8_t *)s, n, &id) == n) return id;
    return spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)s, n);
}

spqr_status spqr_tokenizer_apply_config(spqr_tokenizer *t, const char *json, size_t len, spqr_err *err) {
    if (!t || !json) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer_config.json: NULL argument");
    const char *why = NULL;
    cJSON *root = spqr_json_parse_doc(json, len, &why);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: %s", why ? why : "not a JSON object");
    }
    static const char *const keys[2] = {"bos_token", "eos_token"};
    int32_t ids[2] = {t->bos_id, t->eos_id};
    spqr_status st = SPQR_OK;
    for (int k = 0; k < 2 && !st; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!v) continue;                        /* not declared: tokenizer.json decides */
        if (cJSON_IsNull(v)) { ids[k] = -1; continue; } /* declared absent (Qwen's bos_token) */
        const char *name = cJSON_IsString(v) ? v->valuestring : jstr(v, "content"); /* "x" or {"content": "x", ...} */
        if (!name) {
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: \"%s\" is neither a string nor {\"content\": ...}", keys[k]);
        } else if ((ids[k] = token_id_of(t, name)) < 0) {
            st = spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: %s \"%.60s\" is not a token of tokenizer.json", keys[k], name);
        }
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "add_bos_token");
    int add_bos = cJSON_IsBool(ab) ? cJSON_IsTrue(ab) : t->add_bos; /* transformers rebuilds the post-processor from it */
    if (!st && ab && !cJSON_IsBool(ab) && !cJSON_IsNull(ab))
        st = spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer_config.json: \"add_bos_token\" must be true, false or null");
    cJSON_Delete(root);
    if (!st) { t->bos_id = ids[0]; t->eos_id = ids[1]; t->add_bos = add_bos; }
    return st;
}

int spqr_tokenizer_adds_bos(const spqr_tokenizer *t) { return t && t->add_bos && t->bos_id >= 0; }

void spqr_tokenizer_set_special_ids(spqr_tokenizer *t, int32_t bos_id, int32_t eos_id) {
    if (bos_id < t->n_ids && (bos_id < 0 || t->dec_len[bos_id] >= 0)) t->bos_id = bos_id < 0 ? -1 : bos_id;
    if (eos_id < t->n_ids && (eos_id < 0 || t->dec_len[eos_id] >= 0)) t->eos_id = eos_id < 0 ? -1 : eos_id;
}

/* ----------------------------------------------------------- main */

static spqr_status load_json(spqr_tokenizer *t, const cJSON *root, spqr_err *err) {
    if (!cJSON_IsObject(root)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: top level is not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: missing \"model\" object");
    const cJSON *mty = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (mty && !cJSON_IsString(mty)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: model type is not a string");
    if (mty && strcmp(mty->valuestring, "BPE"))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: model type \"%.60s\" is not supported (only BPE)", mty->valuestring);
    if (!mty && !merges) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: model has no type and no merges (only BPE is supported)");
    if (!cJSON_IsObject(vocab)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: missing BPE \"vocab\" object");
    if (!cJSON_IsArray(merges)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: missing BPE \"merges\" list");
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: \"added_tokens\" is not a list");

    /* Pre-processing layout decides the mode before any token is decoded. */
    tok_cfg cfg = {0, 0, 0};
    spqr_status st;
    if ((st = parse_normalizer(t, &cfg, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0, err))) return st;
    if ((st = parse_pretok(t, &cfg, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0, err))) return st;
    if ((st = parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0, err))) return st;
    if (cfg.bytelevel && (cfg.metaspace || cfg.sp_norm))
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: ByteLevel mixed with Metaspace/Prepend is not supported");
    if (cfg.bytelevel) t->mode = TOK_BYTELEVEL;
    else if (cfg.metaspace || cfg.sp_norm || t->byte_fallback) {
        t->mode = TOK_SENTENCEPIECE;
        if (t->n_stages) return spqr_err_set(err, SPQR_ERR_UNSUPPORTED, "tokenizer: Split or Digits pre-tokenizers without ByteLevel are not supported");
    } else
        return spqr_err_set(err, SPQR_ERR_UNSUPPORTED,
                            "tokenizer: BPE without a ByteLevel or SentencePiece-style (Metaspace, Prepend+Replace, byte_fallback) layout is not supported");

    /* Pass 1: ids and sizes. */
    int32_t max_id = -1;
    int64_t str_bytes = 0, dec_bytes = 0;
    int n_vocab = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!jid(e, &id)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: vocab entry \"%.60s\" has an invalid id (need an integer in [0, %d))", e->string, TOK_MAX_ID);
        if (id > max_id) max_id = id;
        size_t l = strlen(e->string);
        if (l > 65536) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: vocab token of %zu bytes is too long", l);
        str_bytes += (int64_t)l;
        n_vocab++;
    }
    if (n_vocab == 0) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: empty vocab");
    if (added) cJSON_ArrayForEach(e, added) {
        int32_t id;
        const char *c = jstr(e, "content");
        if (!c || !jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: added token without a valid id and content");
        /* Encoding tries every added token at every byte of the text, so the
         * longest one bounds the work per byte (real ones are < 100 bytes). */
        const size_t cl = strlen(c);
        if (cl > TOK_ADDED_MAX)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: added token %d is %zu bytes long (at most %d supported)",
                                (int)id, cl, TOK_ADDED_MAX);
        if (id > max_id) max_id = id;
        dec_bytes += (int64_t)cl;
    }
    dec_bytes += str_bytes;
    t->n_ids = max_id + 1;
    size_t n = (size_t)t->n_ids;
    t->str_arena = malloc((size_t)str_bytes + 1);
    t->dec_arena = malloc((size_t)dec_bytes + 1);
    t->str_off = malloc(n * sizeof(int64_t)); t->str_len = malloc(n * sizeof(int32_t));
    t->dec_off = malloc(n * sizeof(int64_t)); t->dec_len = malloc(n * sizeof(int32_t));
    t->is_added = calloc(n, 1);
    if (!t->str_arena || !t->dec_arena || !t->str_off || !t->str_len || !t->dec_off || !t->dec_len || !t->is_added)
        return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (%d ids)", t->n_ids);
    for (size_t i = 0; i < n; i++) { t->str_len[i] = -1; t->dec_len[i] = -1; t->str_off[i] = t->dec_off[i] = 0; }

    /* Pass 2: vocab strings and the string -> id map. */
    if ((st = spqri_tok_strmap_init(&t->vocab, (uint32_t)n_vocab, err))) return st;
    int64_t fill = 0;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = -1;
        if (!jid(e, &id)) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: vocab entry has an invalid id");
        if (t->str_len[id] >= 0)
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: id %d is used by two vocab tokens (\"%.40s\")", id, e->string);
        size_t l = strlen(e->string);
        memcpy(t->str_arena + fill, e->string, l);
        t->str_off[id] = fill; t->str_len[id] = (int32_t)l;
        fill += (int64_t)l;
        if (spqri_tok_strmap_put(t, &t->vocab, id))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: vocab token \"%.60s\" appears twice", e->string);
    }

    /* Merges: "a b" strings or [a, b] pairs; every part and the result must be in the vocab. */
    int n_merges = cJSON_GetArraySize(merges);
    if ((st = spqri_tok_mergemap_init(&t->merges, (uint32_t)(n_merges > 0 ? n_merges : 1), err))) return st;
    char *buf = NULL;
    size_t buf_cap = 0;
    int32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) { free(buf); return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: merge %d \"%.60s\" is not two space-separated tokens", rank, e->valuestring); }
            a = e->valuestring; la = (size_t)(sp - a); b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring; la = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring; lb = strlen(b);
        } else {
            free(buf);
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: merge %d is neither \"a b\" nor [a, b]", rank);
        }
        if (la + lb + 1 > buf_cap) {
            buf_cap = (la + lb + 1) * 2;
            char *nb = realloc(buf, buf_cap);
            if (!nb) { free(buf); return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory (merges)"); }
            buf = nb;
        }
        memcpy(buf, a, la); memcpy(buf + la, b, lb);
        int32_t ia = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)a, la);
        int32_t ib = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)b, lb);
        int32_t iab = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)buf, la + lb);
        if (ia < 0 || ib < 0 || iab < 0) {
            buf[la + lb] = 0;
            spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: merge %d (\"%.*s\" + \"%.*s\") uses a token not in the vocab (\"%.60s\")",
                         rank, (int)(la < 40 ? la : 40), a, (int)(lb < 40 ? lb : 40), b,
                         ia < 0 ? a : ib < 0 ? b : buf);
            free(buf);
            return SPQR_ERR_FORMAT;
        }
        spqri_tok_mergemap_put(&t->merges, ia, ib, rank, iab);
        rank++;
    }
    free(buf);
    t->n_merges = rank;

    /* Decoded bytes: vocab tokens first, then added tokens override their ids. */
    fill = 0;
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->str_len[id] >= 0) decode_vocab_token(t, id, &fill);
    if (added) cJSON_ArrayForEach(e, added) {
        int32_t id = -1;
        const char *c = jstr(e, "content");
        if (!c || !jid(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: added token without a valid id and content");
        size_t l = strlen(c);
        /* Two added tokens with one id: the text of one would encode to an id
         * that decodes to the other's (HF renumbers such a file, with a warning). */
        if (t->is_added[id] && (t->dec_len[id] != (int32_t)l || memcmp(t->dec_arena + t->dec_off[id], c, l))) {
            char a[64], b[64];
            memcpy(a, t->dec_arena + t->dec_off[id], t->dec_len[id] < 63 ? (size_t)t->dec_len[id] : 63);
            a[t->dec_len[id] < 63 ? t->dec_len[id] : 63] = 0;
            return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: added tokens \"%s\" and \"%.60s\" have the same id %d",
                                spqr_printable(a, b, sizeof b), c, id);
        }
        set_decoded(t, id, (const uint8_t *)c, l, &fill);
        t->is_added[id] = 1;
        if ((st = spqri_tok_trie_add(t, (const uint8_t *)c, l, id, err))) return st;
    }

    /* Initial BPE symbols for bytes. */
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t l;
        if (t->mode == TOK_BYTELEVEL) {
            uint32_t cp = spqri_tok_byte_to_cp((uint8_t)b);
            if (cp < 0x80) { s[0] = (char)cp; l = 1; }
            else { s[0] = (char)(0xC0 | (cp >> 6)); s[1] = (char)(0x80 | (cp & 0x3F)); l = 2; }
            memcpy(t->bmap[b], s, l);
            t->bmap_len[b] = (uint8_t)l;
        } else {
            l = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
        }
        t->byte_sym[b] = spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)s, l);
    }
    const char *unk = jstr(model, "unk_token");
    t->unk_id = unk ? spqri_tok_strmap_get(t, &t->vocab, (const uint8_t *)unk, strlen(unk)) : -1;

    /* bos / eos: the post-processor template, else well-known names, the
     * added tokens marked special first (find_named). tokenizer_config.json,
     * when the caller has one, overrides both (spqr_tokenizer_apply_config). */
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "[BOS]", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[EOS]", NULL};
    int32_t tfirst = -1, tlast = -1;
    template_ids(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &tfirst, &tlast, 0);
    t->bos_id = tfirst >= 0 && tfirst < t->n_ids && t->dec_len[tfirst] >= 0 ? tfirst : find_named(t, added, bos_names);
    t->add_bos = tfirst >= 0 && t->bos_id == tfirst; /* HF adds bos to plain text only through the post-processor */
    t->eos_id = find_named(t, added, eos_names);
    if (t->eos_id < 0 && tlast >= 0 && tlast != tfirst && tlast < t->n_ids && t->dec_len[tlast] >= 0) t->eos_id = tlast;
    return SPQR_OK;
}

spqr_status spqr_tokenizer_load_from_memory(const char *json, size_t len, spqr_tokenizer **out, spqr_err *err) {
    if (!out) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: out is NULL");
    *out = NULL;
    if (!json) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: json is NULL");
    const char *why = NULL;
    cJSON *root = spqr_json_parse_doc(json, len, &why);
    if (!root) return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer: %s", why);
    spqr_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) { cJSON_Delete(root); return spqr_err_set(err, SPQR_ERR_NOMEM, "tokenizer: out of memory"); }
    t->bos_id = t->eos_id = t->unk_id = -1;
    spqr_status st = load_json(t, root, err);
    cJSON_Delete(root);
    if (st) { spqr_tokenizer_free(t); return st; }
    *out = t;
    return SPQR_OK;
}

spqr_status spqr_tokenizer_load(const char *path, spqr_tokenizer **out, spqr_err *err) {
    if (!out || !path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    spqr_status rs = spqr_file_read_text(path, TOK_MAX_FILE, &buf, &len, err);
    if (rs) return spqr_err_prefix(err, rs, "tokenizer");
    spqr_status st = spqr_tokenizer_load_from_memory(buf, len, out, err);
    free(buf);
    if (st) spqr_err_prefix(err, st, "%s", path);
    return st;
}

void spqr_tokenizer_free(spqr_tokenizer *t) {
    if (!t) return;
    free(t->str_arena); free(t->str_off); free(t->str_len);
    free(t->dec_arena); free(t->dec_off); free(t->dec_len);
    free(t->is_added);
    free(t->vocab.slot);
    free(t->merges.e);
    free(t->trie);
    free(t);
}

int32_t spqr_tokenizer_vocab_size(const spqr_tokenizer *t) { return t ? t->n_ids : 0; }
int32_t spqr_tokenizer_bos_id(const spqr_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t spqr_tokenizer_eos_id(const spqr_tokenizer *t) { return t ? t->eos_id : -1; }
