/* safetensors reader/writer: round trips of every dtype and odd shapes, the
 * fp16/bf16 -> fp32 conversion, files crafted byte by byte (valid ones that
 * must open, hostile ones that must be rejected with a one-line message
 * naming the file), and the atomicity of writes. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "spqr.h"
#include "test_util.h"

static char g_dir[256];

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k = 0;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

/* u64 LE length (declared, or the real JSON length when declared == ~0),
 * the JSON text, then data_len bytes of data (0..255 pattern). */
static const char *craft(const char *name, const char *json, uint64_t declared, size_t data_len) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    uint64_t n = declared == ~(uint64_t)0 ? strlen(json) : declared;
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), f);
    fwrite(json, 1, strlen(json), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
    return path;
}

static const char *craft_bytes(const char *name, const void *bytes, size_t n) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    if (n) fwrite(bytes, 1, n, f);
    fclose(f);
    return path;
}

static int one_line_naming(const spqr_err *e, const char *path) {
    return e->msg[0] && !strchr(e->msg, '\n') && strstr(e->msg, path) != NULL;
}

#define EXPECT_REJECT(path, want)                                                                     \
    do {                                                                                              \
        spqr_safetensors *_f = (spqr_safetensors *)0x1;                                               \
        spqr_err _e = {0};                                                                            \
        spqr_status _s = spqr_safetensors_open((path), &_f, &_e);                                     \
        CHECK_MSG(_s == (want), "%s: status %d (%s), want %d", (path), (int)_s, _e.msg, (int)(want));  \
        CHECK_MSG(_f == NULL, "%s: out not cleared", (path));                                         \
        CHECK_MSG(one_line_naming(&_e, (path)), "%s: message '%s'", (path), _e.msg);                   \
        if (getenv("SPQR_TEST_VERBOSE")) fprintf(stderr, "  rejected: %s\n", _e.msg);                \
        if (_s == SPQR_OK) spqr_safetensors_close(_f);                                                \
    } while (0)

static spqr_safetensors *expect_open(const char *path) {
    spqr_safetensors *f = NULL;
    spqr_err e = {0};
    spqr_status s = spqr_safetensors_open(path, &f, &e);
    CHECK_MSG(s == SPQR_OK, "%s: %s", path, e.msg);
    return s == SPQR_OK ? f : NULL;
}

static void test_round_trip(void) {
    /* One tensor per dtype with odd sizes so that alignment and padding
     * are exercised; the bytes are a deterministic pattern. */
    static const int64_t shapes[][3] = {{3, 5, 0}, {7, 0, 0}, {1, 1, 3}, {2, 3, 0}, {11, 0, 0}, {1, 0, 0},
                                        {3, 3, 0}, {5, 0, 0}, {2, 2, 2}, {3, 0, 0}, {13, 0, 0}};
    static const int ndims[] = {2, 1, 3, 2, 1, 1, 2, 1, 3, 1, 1};
    const int ndt = 11;
    uint8_t *bufs[11];
    spqr_st_writer *w = NULL;
    spqr_err e = {0};
    CHECK(spqr_st_writer_create(&w, &e) == SPQR_OK);
    test_rng rng = {0x1234567ull};
    char name[32];
    for (int d = 0; d < ndt; d++) {
        int64_t numel = 1;
        for (int k = 0; k < ndims[d]; k++) numel *= shapes[d][k];
        size_t nb = (size_t)numel * spqr_dtype_size((spqr_dtype)d);
        bufs[d] = malloc(nb + 1);
        for (size_t i = 0; i < nb; i++) bufs[d][i] = (uint8_t)test_rng_next(&rng);
        if (d == SPQR_DTYPE_BOOL)
            for (size_t i = 0; i < nb; i++) bufs[d][i] &= 1;
        snprintf(name, sizeof name, "t.%s", spqr_dtype_name((spqr_dtype)d));
        CHECK_MSG(spqr_st_writer_add(w, name, (spqr_dtype)d, ndims[d], shapes[d], bufs[d], &e) == SPQR_OK, "%s",
                  e.msg);
    }
    float scalar = 3.25f;
    CHECK(spqr_st_writer_add(w, "scalar", SPQR_DTYPE_F32, 0, NULL, &scalar, &e) == SPQR_OK);
    int64_t empty_shape[2] = {0, 4};
    CHECK(spqr_st_writer_add(w, "empty", SPQR_DTYPE_F16, 2, empty_shape, NULL, &e) == SPQR_OK);
    /* names and values that need JSON escaping, and non-ASCII UTF-8 */
    const char *odd_name = "we\"ird\\name\n\xc3\xa9";
    uint8_t odd_byte = 42;
    int64_t one = 1;
    CHECK(spqr_st_writer_add(w, odd_name, SPQR_DTYPE_U8, 1, &one, &odd_byte, &e) == SPQR_OK);
    CHECK(spqr_st_writer_set_metadata(w, "format", "pt", &e) == SPQR_OK);
    CHECK(spqr_st_writer_set_metadata(w, "quote\"key", "line1\nline2\t\\ \xe2\x82\xac", &e) == SPQR_OK);
    CHECK(spqr_st_writer_set_metadata(w, "format", "spqr", &e) == SPQR_OK); /* replaces */

    /* invalid additions are refused without corrupting the writer */
    CHECK(spqr_st_writer_add(w, "scalar", SPQR_DTYPE_F32, 0, NULL, &scalar, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_st_writer_add(w, "__metadata__", SPQR_DTYPE_F32, 0, NULL, &scalar, &e) == SPQR_ERR_INVALID_ARG);
    int64_t neg = -1;
    CHECK(spqr_st_writer_add(w, "neg", SPQR_DTYPE_F32, 1, &neg, &scalar, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_st_writer_add(w, "bad\xff", SPQR_DTYPE_F32, 0, NULL, &scalar, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_st_writer_add(w, "nodata", SPQR_DTYPE_F32, 1, &one, NULL, &e) == SPQR_ERR_INVALID_ARG);
    CHECK(spqr_st_writer_add(w, "dims", SPQR_DTYPE_F32, 9, shapes[0], &scalar, &e) == SPQR_ERR_INVALID_ARG);

    const char *path = tmp_path("rt.safetensors");
    CHECK_MSG(spqr_st_writer_write(w, path, &e) == SPQR_OK, "%s", e.msg);
    spqr_st_writer_free(w);

    /* header length is a multiple of 8, so data starts 8-aligned */
    FILE *fp = fopen(path, "rb");
    uint8_t l8[8] = {0};
    CHECK(fread(l8, 1, 8, fp) == 8);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | l8[i];
    CHECK_MSG(hl % 8 == 0, "header length %llu", (unsigned long long)hl);

    spqr_safetensors *f = expect_open(path);
    if (!f) return;
    CHECK(spqr_safetensors_count(f) == ndt + 3);
    for (int d = 0; d < ndt; d++) {
        snprintf(name, sizeof name, "t.%s", spqr_dtype_name((spqr_dtype)d));
        const spqr_st_tensor *t = spqr_safetensors_find(f, name);
        CHECK_MSG(t != NULL, "%s missing", name);
        if (!t) continue;
        int64_t numel = 1;
        for (int k = 0; k < ndims[d]; k++) numel *= shapes[d][k];
        CHECK(t->dtype == (spqr_dtype)d);
        CHECK(t->ndim == ndims[d]);
        for (int k = 0; k < ndims[d]; k++) CHECK(t->shape[k] == shapes[d][k]);
        CHECK(t->numel == numel);
        CHECK(t->nbytes == (uint64_t)numel * spqr_dtype_size((spqr_dtype)d));
        CHECK_MSG(memcmp(t->data, bufs[d], (size_t)t->nbytes) == 0, "%s bytes differ", name);
        CHECK_MSG((uintptr_t)t->data % spqr_dtype_size((spqr_dtype)d) == 0, "%s misaligned", name);
        CHECK(strcmp(t->name, name) == 0);
    }
    const spqr_st_tensor *t = spqr_safetensors_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4 && memcmp(t->data, &scalar, 4) == 0);
    t = spqr_safetensors_find(f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4 && t->numel == 0 && t->nbytes == 0);
    t = spqr_safetensors_find(f, odd_name);
    CHECK(t && t->nbytes == 1 && *(const uint8_t *)t->data == 42);
    CHECK(spqr_safetensors_find(f, "nope") == NULL);
    CHECK(spqr_safetensors_find(f, "neg") == NULL);
    CHECK(spqr_safetensors_at(f, -1) == NULL && spqr_safetensors_at(f, ndt + 3) == NULL);
    /* at() preserves insertion order */
    CHECK(spqr_safetensors_at(f, 0) && strcmp(spqr_safetensors_at(f, 0)->name, "t.F32") == 0);
    CHECK(spqr_safetensors_at(f, ndt + 2) && strcmp(spqr_safetensors_at(f, ndt + 2)->name, odd_name) == 0);
    const char *m = spqr_safetensors_metadata(f, "format");
    CHECK(m && strcmp(m, "spqr") == 0);
    m = spqr_safetensors_metadata(f, "quote\"key");
    CHECK(m && strcmp(m, "line1\nline2\t\\ \xe2\x82\xac") == 0);
    CHECK(spqr_safetensors_metadata(f, "missing") == NULL);
    spqr_safetensors_close(f);
    for (int d = 0; d < ndt; d++) free(bufs[d]);

    /* an empty writer produces a valid file with no tensors */
    CHECK(spqr_st_writer_create(&w, &e) == SPQR_OK);
    path = tmp_path("none.safetensors");
    CHECK(spqr_st_writer_write(w, path, &e) == SPQR_OK);
    spqr_st_writer_free(w);
    f = expect_open(path);
    if (f) {
        CHECK(spqr_safetensors_count(f) == 0);
        CHECK(spqr_safetensors_metadata(f, "format") == NULL);
        spqr_safetensors_close(f);
    }
}

static void test_conversion(void) {
    /* values exactly representable in fp16 and bf16 */
    const float vals[7] = {0.0f, -0.0f, 1.0f, -2.5f, 0.099975586f, 65504.0f, 6.103515625e-05f};
    uint16_t h[7], b[7];
    for (int i = 0; i < 7; i++) {
        h[i] = spqr_fp32_to_fp16(vals[i]);
        b[i] = spqr_fp32_to_bf16(vals[i]);
    }
    int32_t ints[3] = {1, 2, 3};
    int64_t s7 = 7, s3 = 3;
    spqr_st_writer *w = NULL;
    spqr_err e = {0};
    spqr_st_writer_create(&w, &e);
    spqr_st_writer_add(w, "h", SPQR_DTYPE_F16, 1, &s7, h, &e);
    spqr_st_writer_add(w, "b", SPQR_DTYPE_BF16, 1, &s7, b, &e);
    spqr_st_writer_add(w, "f", SPQR_DTYPE_F32, 1, &s7, vals, &e);
    spqr_st_writer_add(w, "i", SPQR_DTYPE_I32, 1, &s3, ints, &e);
    const char *path = tmp_path("conv.safetensors");
    CHECK(spqr_st_writer_write(w, path, &e) == SPQR_OK);
    spqr_st_writer_free(w);
    spqr_safetensors *f = expect_open(path);
    if (!f) return;
    float out[7];
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "h"), out, &e) == SPQR_OK);
    for (int i = 0; i < 7; i++) CHECK_MSG(memcmp(&out[i], &vals[i], 4) == 0, "f16[%d] %g", i, out[i]);
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "b"), out, &e) == SPQR_OK);
    /* bf16 keeps 8 significand bits: compare with the bf16-rounded value */
    for (int i = 0; i < 7; i++) CHECK_NEAR(out[i], spqr_bf16_to_fp32(spqr_fp32_to_bf16(vals[i])), 0);
    CHECK(out[2] == 1.0f && out[3] == -2.5f);
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "f"), out, &e) == SPQR_OK);
    for (int i = 0; i < 7; i++) CHECK(memcmp(&out[i], &vals[i], 4) == 0);
    memset(&e, 0, sizeof e);
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "i"), out, &e) == SPQR_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "I32") != NULL && strstr(e.msg, "'i'") != NULL);
    spqr_safetensors_close(f);

    /* Unaligned data (header length 3 mod 8, offset 1): conversion must read
     * through memcpy (UBSan in the sanitizer build catches a direct load). */
    char json[256];
    snprintf(json, sizeof json, "{\"p\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},\"y\":{\"dtype\":"
                                "\"F16\",\"shape\":[1],\"data_offsets\":[9,11]}}");
    size_t jl = strlen(json);
    uint8_t raw[512];
    memset(raw, 0, sizeof raw);
    for (int i = 0; i < 8; i++) raw[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(raw + 8, json, jl);
    uint8_t *d = raw + 8 + jl;
    float two[2] = {1.5f, -7.0f};
    memcpy(d + 1, two, 8);
    uint16_t hv = spqr_fp32_to_fp16(0.75f);
    memcpy(d + 9, &hv, 2);
    path = craft_bytes("unaligned.safetensors", raw, 8 + jl + 11);
    f = expect_open(path);
    if (!f) return;
    float o2[2] = {0};
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "x"), o2, &e) == SPQR_OK);
    CHECK(o2[0] == 1.5f && o2[1] == -7.0f);
    CHECK(spqr_st_tensor_to_f32(spqr_safetensors_find(f, "y"), o2, &e) == SPQR_OK);
    CHECK(o2[0] == 0.75f);
    spqr_safetensors_close(f);
}

#define T(name, rest) "\"" name "\":{" rest "}"
static void test_valid_crafted(void) {
    /* Things the format allows that our writer never produces: leading
     * whitespace, padding, unknown fields, field order, metadata anywhere.
     * Each must open. (Holes and trailing bytes it does not allow: the
     * safetensors library refuses them, and so do we; test_hostile.) */
    const char *p;
    spqr_safetensors *f;
    p = craft("v_empty.safetensors", "{}", ~(uint64_t)0, 0);
    f = expect_open(p);
    if (f) { CHECK(spqr_safetensors_count(f) == 0); spqr_safetensors_close(f); }
    p = craft("v_fields.safetensors",
              "  {" T("a", "\"shape\":[2,2],\"extra\":{\"x\":[1,2]},\"data_offsets\":[1,17],\"dtype\":\"F32\"") ","
              "\"__metadata__\":{\"k\":\"v\"}," T("b", "\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]") "}    ",
              ~(uint64_t)0, 17);
    f = expect_open(p);
    if (f) {
        CHECK(spqr_safetensors_count(f) == 2);
        const spqr_st_tensor *a = spqr_safetensors_find(f, "a");
        CHECK(a && a->numel == 4 && a->nbytes == 16 && ((const uint8_t *)a->data)[0] == 1);
        const spqr_st_tensor *b = spqr_safetensors_find(f, "b");
        CHECK(b && b->ndim == 0 && b->numel == 1 && ((const uint8_t *)b->data)[0] == 0);
        CHECK(spqr_safetensors_metadata(f, "k") && !strcmp(spqr_safetensors_metadata(f, "k"), "v"));
        spqr_safetensors_close(f);
    }
    /* two empty tensors at the same offset do not overlap */
    p = craft("v_empties.safetensors",
              "{" T("a", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]") ","
                  T("b", "\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]") ","
                  T("c", "\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]") "}",
              ~(uint64_t)0, 8);
    f = expect_open(p);
    if (f) { CHECK(spqr_safetensors_count(f) == 3); spqr_safetensors_close(f); }
}

static void test_hostile(void) {
    const char *p;
    const char *ok_t = T("w", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]");
    char json[512];

    EXPECT_REJECT(tmp_path("does-not-exist.safetensors"), SPQR_ERR_IO);
    p = craft_bytes("h_empty.safetensors", "", 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft_bytes("h_7.safetensors", "\x02\0\0\0\0\0\0", 7);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    /* exactly 8 bytes: header length 0 */
    p = craft_bytes("h_8.safetensors", "\0\0\0\0\0\0\0\0", 8);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    snprintf(json, sizeof json, "{%s}", ok_t);
    p = craft("h_hlen_big.safetensors", json, strlen(json) + 25, 24); /* one byte past EOF */
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_hlen_2_63.safetensors", json, (uint64_t)1 << 63, 24);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_hlen_max.safetensors", json, ~(uint64_t)0 - 1, 24);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_notjson.safetensors", "this is not json", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_trailing.safetensors", "{} x", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    /* a hole before a tensor, bytes after the last: the safetensors library refuses both */
    snprintf(json, sizeof json, "{%s}", T("w", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]"));
    p = craft("h_hole.safetensors", json, ~(uint64_t)0, 28);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    snprintf(json, sizeof json, "{%s}", ok_t);
    p = craft("h_tail.safetensors", json, ~(uint64_t)0, 25);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_array.safetensors", "[1,2,3]", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_string.safetensors", "\"{}\"", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_badutf8.safetensors", "{\"\xff\xfe\":{}}", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    p = craft("h_overlong.safetensors", "{\"\xc0\xaf\":{}}", ~(uint64_t)0, 0);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    /* an escaped NUL in a name: cJSON would cut "w\u0000x" to "w" */
    snprintf(json, sizeof json, "{%s}", T("w\\u0000x", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]"));
    p = craft("h_escnul.safetensors", json, ~(uint64_t)0, 24);
    EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    /* ... but an escaped backslash before "u0000" is plain text */
    snprintf(json, sizeof json, "{%s}", T("w\\\\u0000x", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]"));
    p = craft("h_escbs.safetensors", json, ~(uint64_t)0, 24);
    {
        spqr_safetensors *f = NULL;
        spqr_err e = {0};
        CHECK_MSG(spqr_safetensors_open(p, &f, &e) == SPQR_OK, "%s", e.msg);
        spqr_safetensors_close(f);
    }
    {   /* NUL byte inside the header */
        uint8_t raw[8 + 4] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0, ' ', '}'};
        p = craft_bytes("h_nul.safetensors", raw, sizeof raw);
        EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    }
    {   /* deep nesting must not blow the stack */
        static char deep[20000];
        int k = 0;
        deep[k++] = '{';
        deep[k++] = '"', deep[k++] = 'a', deep[k++] = '"', deep[k++] = ':';
        for (int i = 0; i < 9000; i++) deep[k++] = '[';
        deep[k] = 0;
        p = craft("h_deep.safetensors", deep, ~(uint64_t)0, 0);
        EXPECT_REJECT(p, SPQR_ERR_FORMAT);
    }

#define REJECT_T(file, tensor_json, data_len, want)                    \
    do {                                                               \
        snprintf(json, sizeof json, "{%s}", tensor_json);              \
        p = craft(file, json, ~(uint64_t)0, data_len);                 \
        EXPECT_REJECT(p, want);                                        \
    } while (0)

    /* control: the same shape of file with correct values opens */
    snprintf(json, sizeof json, "{%s}", ok_t);
    p = craft("h_control.safetensors", json, ~(uint64_t)0, 24);
    spqr_safetensors *f = expect_open(p);
    if (f) spqr_safetensors_close(f);

    REJECT_T("h_past_eof.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_truncated.safetensors", ok_t, 23, SPQR_ERR_FORMAT); /* data section one byte short */
    REJECT_T("h_end_lt_begin.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,0]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_nbytes.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_nbytes2.safetensors", T("w", "\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_overlap.safetensors",
             T("a", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]") ","
             T("b", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_contained.safetensors",
             T("a", "\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]") ","
             T("b", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[23,24]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_same.safetensors",
             T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]") ","
             T("b", "\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_dup.safetensors",
             T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") ","
             T("a", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_dupfield.safetensors",
             T("a", "\"dtype\":\"F32\",\"shape\":[1],\"shape\":[2],\"data_offsets\":[0,4]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_negshape.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_fracshape.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[1.5,4],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_strshape.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[\"6\"],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_hugeshape.safetensors",
             T("w", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    /* product wraps to exactly 0 mod 2^64 with a naive multiply: 2^32 * 2^32 * ... */
    REJECT_T("h_wrapshape.safetensors",
             T("w", "\"dtype\":\"U8\",\"shape\":[65536,65536,65536,65536],\"data_offsets\":[0,0]"), 24,
             SPQR_ERR_FORMAT);
    /* numel fits but numel * 8 overflows */
    REJECT_T("h_bytesoverflow.safetensors",
             T("w", "\"dtype\":\"I64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_bigjson.safetensors", T("w", "\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,24]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_ndim9.safetensors",
             T("w", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 24,
             SPQR_ERR_UNSUPPORTED);
    REJECT_T("h_dtype.safetensors", T("w", "\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]"), 24,
             SPQR_ERR_UNSUPPORTED);
    REJECT_T("h_dtype_num.safetensors", T("w", "\"dtype\":4,\"shape\":[4],\"data_offsets\":[0,4]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_nodtype.safetensors", T("w", "\"shape\":[4],\"data_offsets\":[0,4]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_noshape.safetensors", T("w", "\"dtype\":\"U8\",\"data_offsets\":[0,4]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_nooffsets.safetensors", T("w", "\"dtype\":\"U8\",\"shape\":[4]"), 24, SPQR_ERR_FORMAT);
    REJECT_T("h_offsets3.safetensors", T("w", "\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_negoffset.safetensors", T("w", "\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]"), 24,
             SPQR_ERR_FORMAT);
    REJECT_T("h_entry_num.safetensors", "\"w\":5", 24, SPQR_ERR_FORMAT);
    REJECT_T("h_meta_num.safetensors", "\"__metadata__\":{\"a\":\"b\",\"n\":1}", 0, SPQR_ERR_FORMAT);
    REJECT_T("h_meta_obj.safetensors", "\"__metadata__\":{\"n\":{}}", 0, SPQR_ERR_FORMAT);
    REJECT_T("h_meta_arr.safetensors", "\"__metadata__\":[\"a\"]", 0, SPQR_ERR_FORMAT);
    REJECT_T("h_meta_dupkey.safetensors", "\"__metadata__\":{\"a\":\"b\",\"a\":\"c\"}", 0, SPQR_ERR_FORMAT);
    REJECT_T("h_meta_twice.safetensors", "\"__metadata__\":{},\"__metadata__\":{}", 0, SPQR_ERR_FORMAT);

    /* messages name the tensor (and keep control characters out) */
    snprintf(json, sizeof json, "{%s}", T("bad\\nname", "\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,4]"));
    p = craft("h_msg.safetensors", json, ~(uint64_t)0, 4);
    spqr_err e = {0};
    f = NULL;
    CHECK(spqr_safetensors_open(p, &f, &e) == SPQR_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(e.msg, "bad?name") && strstr(e.msg, "Q4") && !strchr(e.msg, '\n'), "%s", e.msg);

    /* every truncation of a valid file is rejected (or, for cuts inside
     * the padding-free data section end, rejected too): none may crash */
    spqr_st_writer *w = NULL;
    spqr_st_writer_create(&w, &e);
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t sh[2] = {2, 3};
    spqr_st_writer_add(w, "w", SPQR_DTYPE_F32, 2, sh, v, &e);
    spqr_st_writer_set_metadata(w, "k", "v", &e);
    const char *full = tmp_path("full.safetensors");
    CHECK(spqr_st_writer_write(w, full, &e) == SPQR_OK);
    spqr_st_writer_free(w);
    FILE *fp = fopen(full, "rb");
    uint8_t buf[1024];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        p = craft_bytes("cut.safetensors", buf, cut);
        f = NULL;
        memset(&e, 0, sizeof e);
        spqr_status s = spqr_safetensors_open(p, &f, &e);
        if (s != SPQR_ERR_FORMAT || f || !one_line_naming(&e, p)) bad++;
        if (f) spqr_safetensors_close(f);
    }
    CHECK_MSG(bad == 0, "%d truncations not rejected properly", bad);
    /* flipping any single header byte never crashes; results vary */
    for (size_t i = 0; i < n; i++) {
        uint8_t save = buf[i];
        buf[i] ^= 0x5a;
        p = craft_bytes("flip.safetensors", buf, n);
        f = NULL;
        memset(&e, 0, sizeof e);
        spqr_status s = spqr_safetensors_open(p, &f, &e);
        if (s == SPQR_OK) {
            for (int32_t k = 0; k < spqr_safetensors_count(f); k++) {
                const spqr_st_tensor *t = spqr_safetensors_at(f, k);
                volatile uint8_t sink = 0;
                for (uint64_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
                (void)sink;
            }
            spqr_safetensors_close(f);
        } else if (!e.msg[0] || strchr(e.msg, '\n')) {
            bad++;
        }
        buf[i] = save;
    }
    CHECK_MSG(bad == 0, "%d byte flips gave a bad error message", bad);
}

static int write_fail(FILE *f, void *user, spqr_err *err) {
    fputs("partial", f);
    return 1;
}

static int write_text(FILE *f, void *user, spqr_err *err) {
    return fputs((const char *)user, f) < 0;
}

static int leftover_temps(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void test_atomic(void) {
    spqr_err e = {0};
    /* missing directory: clean failure, nothing created */
    spqr_st_writer *w = NULL;
    spqr_st_writer_create(&w, &e);
    float v = 1;
    spqr_st_writer_add(w, "v", SPQR_DTYPE_F32, 0, NULL, &v, &e);
    const char *p = tmp_path("no/such/dir/out.safetensors");
    CHECK(spqr_st_writer_write(w, p, &e) == SPQR_ERR_IO);
    CHECK_MSG(one_line_naming(&e, p), "%s", e.msg);
    CHECK(access(p, F_OK) != 0);

    /* destination is a directory */
    const char *dirp = tmp_path("adir");
    mkdir(dirp, 0755);
    memset(&e, 0, sizeof e);
    CHECK(spqr_st_writer_write(w, dirp, &e) != SPQR_OK);
    CHECK(e.msg[0] != 0);

    /* a failed write leaves an existing destination byte for byte */
    const char *dst = tmp_path("keep.txt");
    FILE *f = fopen(dst, "wb");
    fputs("OLD CONTENT", f);
    fclose(f);
    memset(&e, 0, sizeof e);
    CHECK(spqr_file_write_atomic(dst, write_fail, NULL, &e) == SPQR_ERR_IO);
    CHECK(e.msg[0] && strstr(e.msg, dst));
    char *got = test_read_file(dst, NULL);
    CHECK(got && strcmp(got, "OLD CONTENT") == 0);
    free(got);
    CHECK_MSG(leftover_temps() == 0, "temporary file left behind");

    /* a successful write replaces it, keeping its permissions */
    chmod(dst, 0600);
    CHECK(spqr_file_write_atomic(dst, write_text, "NEW", &e) == SPQR_OK);
    got = test_read_file(dst, NULL);
    CHECK(got && strcmp(got, "NEW") == 0);
    free(got);
    struct stat st;
    CHECK(stat(dst, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(leftover_temps() == 0);

    /* safetensors writer replaces an existing file on success */
    CHECK(spqr_st_writer_write(w, dst, &e) == SPQR_OK);
    spqr_safetensors *sf = expect_open(dst);
    if (sf) { CHECK(spqr_safetensors_count(sf) == 1); spqr_safetensors_close(sf); }
    spqr_st_writer_free(w);
    CHECK(leftover_temps() == 0);

    /* read_text: cap enforced, content exact */
    char *txt = NULL;
    size_t len = 0;
    CHECK(spqr_file_write_atomic(dst, write_text, "hello world", &e) == SPQR_OK);
    CHECK(spqr_file_read_text(dst, 11, &txt, &len, &e) == SPQR_OK && len == 11 && !strcmp(txt, "hello world"));
    free(txt);
    txt = NULL;
    CHECK(spqr_file_read_text(dst, 10, &txt, &len, &e) == SPQR_ERR_FORMAT && txt == NULL);
    CHECK(spqr_file_read_text(dirp, 100, &txt, &len, &e) != SPQR_OK);

    /* path helpers */
    char *j = spqr_path_join("a/b", "c.json");
    CHECK(j && !strcmp(j, "a/b/c.json"));
    free(j);
    j = spqr_path_join("a/b/", "c");
    CHECK(j && !strcmp(j, "a/b/c"));
    free(j);
    j = spqr_path_join("", "c");
    CHECK(j && !strcmp(j, "c"));
    free(j);
    j = spqr_path_join("a", "/abs");
    CHECK(j && !strcmp(j, "/abs"));
    free(j);
    j = spqr_path_dirname("x.bin");
    CHECK(j && !strcmp(j, "."));
    free(j);
    j = spqr_path_dirname("/x.bin");
    CHECK(j && !strcmp(j, "/"));
    free(j);

    /* mapping limits */
    spqr_mapped_file m;
    CHECK(spqr_file_map(dst, 0, 5, &m, &e) == SPQR_ERR_FORMAT);
    CHECK(spqr_file_map(dst, 12, 0, &m, &e) == SPQR_ERR_FORMAT);
    CHECK(spqr_file_map(dst, 11, 11, &m, &e) == SPQR_OK && m.size == 11 && !memcmp(m.data, "hello world", 11));
    spqr_file_unmap(&m);
    CHECK(spqr_file_map(dirp, 0, 0, &m, &e) == SPQR_ERR_IO);
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/spqr_test_st_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_conversion();
    test_valid_crafted();
    test_hostile();
    test_atomic();
    remove_tree(g_dir);
    TEST_SUMMARY();
}
