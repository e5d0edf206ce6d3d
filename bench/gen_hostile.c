/* Writes valid but hostile-scale inputs, for timing the readers on what a
 * crafted file can make them do (tests/cli_hostile_scale.sh runs them under
 * a timeout, so a quadratic step fails the test instead of hanging it).
 *
 *   spqr FILE [--tensors T] [--layers L] [--control] [--bare]
 *       a .spqr with T tiny packed tensors (1x1) and a metadata "layers"
 *       array of L quantizer-like records; the records naming the tensors
 *       come last, so a linear search per tensor walks all L. --control puts
 *       ESC, BEL, newline and a C1 CSI into the config, the metadata and a
 *       tensor name. --bare makes the records {"name": "<hex>"} only, so
 *       more than 2^20 fit the 64 MiB metadata limit.
 *   index FILE [--entries E] [--shards S]
 *       a model.safetensors.index.json whose weight_map has E entries over
 *       S shard names, compact so that many fit the 64 MiB index limit (the
 *       shards themselves are not written).
 *   safetensors FILE [--tensors T]
 *       a safetensors file of T empty tensors (its header is what is big).
 *
 * Defaults: spqr 20000 tensors / 600000 layers (~80 MB); index 1000000
 * entries / 4096 shards (~28 MB); safetensors 1000000 tensors (~68 MB). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/tensor.h"
#include "spqr.h"

static int die(const char *what) {
    fprintf(stderr, "gen_hostile: %s\n", what);
    return 1;
}

/* A growable string for the big JSON texts. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(sbuf *b, const char *fmt, ...) {
    if (!b->p && !(b->p = malloc(b->cap = 1 << 20))) return -1;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) return -1;
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return 0;
        }
        size_t cap = 2 * b->cap;
        while (cap - b->n <= (size_t)k) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
}

static long opt(int argc, char **argv, const char *name, long def) {
    for (int i = 3; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return atol(argv[i + 1]);
    return def;
}

static int flag(int argc, char **argv, const char *name) {
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

static int gen_spqr(const char *path, long T, long L, int control, int bare) {
    if (T < 1 || L < T) return die("spqr: need 1 <= tensors <= layers");
    spqr_err err = {0};
    spqr_archive_writer *w = NULL;
    spqr_tensor *t = NULL;
    sbuf meta = {0};
    char config[512];
    snprintf(config, sizeof config,
             "{\"model_type\": \"%s\", \"num_hidden_layers\": %ld, \"hidden_size\": 1, \"vocab_size\": 1}",
             control ? "llama\\u001b[31m\\nFAKE" : "llama", L);
    int rc = sb_printf(&meta, "{\"preset\": \"%s\", \"params\": {\"wbits\": 2, \"%s\": \"%s\"}, \"layers\": [",
                       control ? "x\\u001b]0;pwned\\u0007\\ny" : "hostile", control ? "k\\u001bey" : "perm",
                       control ? "v\\nal\\u009b2J" : "identity");
    for (long k = 0; k < L && !rc; k++)
        rc = bare ? sb_printf(&meta, "%s{\"name\":\"%lx\"}", k ? "," : "", k)
                  : sb_printf(&meta,
                       "%s{\"rows\": 1, \"cols\": 1, \"outliers\": 0, \"rel_err\": %.6f, "
                       "\"name\": \"model.layers.%ld.mlp.down_proj.weight\"}",
                       k ? ", " : "", (double)k / (double)L, k);
    if (!rc) rc = sb_printf(&meta, "]}");
    if (rc) return die("out of memory");
    if (spqr_archive_writer_create(path, &w, &err) || spqr_archive_writer_add_config(w, config, &err) ||
        spqr_archive_writer_add_metadata(w, meta.p, &err) ||
        spqr_tensor_alloc(1, 1, 2, 1, 0, 0, 0, 0, 0, &t, &err))
        goto fail;
    for (long i = 0; i < T; i++) {
        char name[128];
        if (control && i == 0) snprintf(name, sizeof name, "evil\x1b[2J\nname.weight");
        else snprintf(name, sizeof name, "model.layers.%ld.mlp.down_proj.weight", L - T + i);
        if (spqr_archive_writer_add_packed(w, name, t, &err)) goto fail;
    }
    if (spqr_archive_writer_finish(w, &err)) goto fail;
    spqr_archive_writer_free(w);
    spqr_tensor_free(t);
    free(meta.p);
    return 0;
fail:
    spqr_archive_writer_free(w);
    spqr_tensor_free(t);
    free(meta.p);
    return die(err.msg);
}

static int write_file(const char *path, const void *head, size_t hn, const void *body, size_t bn) {
    FILE *f = fopen(path, "wb");
    if (!f) return die("cannot create the output file");
    int bad = fwrite(head, 1, hn, f) != hn || fwrite(body, 1, bn, f) != bn;
    bad |= fclose(f) != 0;
    return bad ? die("write failed") : 0;
}

static int gen_index(const char *path, long E, long S) {
    if (E < 1 || S < 1) return die("index: need entries >= 1 and shards >= 1");
    sbuf b = {0};
    int rc = sb_printf(&b, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (long k = 0; k < E && !rc; k++)
        rc = sb_printf(&b, "%s\"%lx\":\"%lx.safetensors\"", k ? "," : "", k, k % S);
    if (!rc) rc = sb_printf(&b, "}}\n");
    rc = rc ? die("out of memory") : write_file(path, "", 0, b.p, b.n);
    free(b.p);
    return rc;
}

static int gen_safetensors(const char *path, long T) {
    if (T < 0) return die("safetensors: need tensors >= 0");
    sbuf b = {0};
    int rc = sb_printf(&b, "{");
    for (long k = 0; k < T && !rc; k++)
        rc = sb_printf(&b, "%s\"t.%ld\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}",
                       k ? ", " : "", k);
    if (!rc) rc = sb_printf(&b, "}");
    if (rc) {
        free(b.p);
        return die("out of memory");
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    rc = write_file(path, len, 8, b.p, b.n);
    free(b.p);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: gen_hostile spqr|index|safetensors FILE [options] (see the source's header)\n");
        return 2;
    }
    if (!strcmp(argv[1], "spqr"))
        return gen_spqr(argv[2], opt(argc, argv, "--tensors", 20000), opt(argc, argv, "--layers", 600000),
                        flag(argc, argv, "--control"), flag(argc, argv, "--bare"));
    if (!strcmp(argv[1], "index"))
        return gen_index(argv[2], opt(argc, argv, "--entries", 1000000), opt(argc, argv, "--shards", 4096));
    if (!strcmp(argv[1], "safetensors")) return gen_safetensors(argv[2], opt(argc, argv, "--tensors", 1000000));
    return die("unknown kind (spqr, index or safetensors)");
}
