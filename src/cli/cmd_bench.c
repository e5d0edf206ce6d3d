/* `spqr bench`: llama-bench-style prompt and decode speed of whole models
 * (HF directories or .spqr files), one after another, next to the
 * machine's read bandwidth. Decoding reads every streamed weight once per
 * token, so bandwidth / weight bytes bounds decode tokens/s, and the first
 * model is the baseline the others' speedups refer to (fp16 vs its .spqr).
 * Models are loaded and freed in turn: never two big models in memory. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench_util.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/model.h"
#include "model/model_path.h"
#include "spqr.h"

#define CMD "bench"

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr bench MODEL [MODEL ...] [-p N_PROMPT] [-n N_GEN] [-r REPS] [-t THREADS] [--kv-type T] [--json]\n"
            "  MODEL           Hugging Face checkpoint directory or .spqr file\n"
            "  -p N            prompt test: one batched forward of N random tokens (default 64)\n"
            "  -n N            decode test: N single-token steps after the prompt (default 16)\n"
            "  -r R            repetitions, reported as mean +- stddev (default 3)\n"
            "  -t T            threads (default: online cores)\n"
            "  --kv-type T     KV cache f16 (default) or f32\n"
            "  --json          one JSON object on stdout instead of the table\n"
            "  Weight bytes are those streamed per decoded token (block linears and the\n"
            "  head; the embedding is a row lookup); bound = read bandwidth / weight bytes.\n"
            "  Speedups are relative to the first MODEL.\n");
}

/* What one model measured. */
typedef struct bench_result {
    const char *path;
    const char *kind;        /* "fp16", "bf16", "f32", "spqr" */
    const char *kernel_path; /* SpQR kernel path, or the dense ISA */
    uint64_t weight_bytes;   /* streamed per decoded token */
    double bits_per_param;   /* packed linears' stored bits (spqr), else the dense element width */
    double load_s;
    double prompt_tps, prompt_sd, decode_tps, decode_sd;
    int logits_finite;
} bench_result;

/* Bytes one decode step reads from a linear: the kernel layout for packed
 * tensors (it may differ from the file's), the storage for dense ones. */
static uint64_t streamed_bytes(const spqr_linear *lin) {
    if (lin->kind == SPQR_LINEAR_PACKED && lin->fast) return spqr_ktensor_bytes(lin->fast);
    return spqri_linear_bytes(lin);
}

static void weights(const spqr_model *m, bench_result *r) {
    const spqr_config *c = &m->cfg;
    uint64_t bytes = streamed_bytes(&m->lm_head), packed_bytes = 0;
    double dense_bits = 0, packed_params = 0;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const spqr_layer *L = &m->layers[l];
        const spqr_linear *lin[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) {
            bytes += streamed_bytes(lin[k]);
            if (lin[k]->kind == SPQR_LINEAR_PACKED) {
                spqr_size_report sz;
                spqr_tensor_size(lin[k]->packed, &sz);
                packed_bytes += sz.stored_bytes;
                packed_params += (double)lin[k]->rows * lin[k]->cols;
            } else {
                dense_bits = 8.0 * (double)spqri_linear_bytes(lin[k]) / ((double)lin[k]->rows * lin[k]->cols);
            }
        }
    }
    const spqr_linear_kind k0 = c->n_layers > 0 ? m->layers[0].wq.kind : m->lm_head.kind;
    r->weight_bytes = bytes;
    if (spqr_model_is_quantized(m)) {
        r->kind = "spqr";
        r->bits_per_param = packed_params > 0 ? 8.0 * (double)packed_bytes / packed_params : 0;
        r->kernel_path = spqr_kernel_path_name(spqr_ktensor_path(m->ktensors[0]));
    } else {
        r->kind = k0 == SPQR_LINEAR_F16 ? "fp16" : k0 == SPQR_LINEAR_BF16 ? "bf16" : "f32";
        r->bits_per_param = dense_bits;
        spqr_isa isa = spqri_linear_isa_best();
        int blas = 0;
        spqri_linear_dense_from_env(&isa, &blas, NULL); /* what the session runs (it refused bad settings) */
        r->kernel_path = spqri_linear_isa_name(isa);
    }
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* The machine's read bandwidth, probed once: after the first model's flags
 * are checked against it, so that a -p/-n that cannot fit fails at once. */
typedef struct {
    double gbps, cpu_gbps;
} bench_bw;

/* Loads, measures and frees one model. Returns the exit code (0, 1 load or
 * run error, 2 the flags do not fit the model). */
static int bench_one(const char *path, int32_t P, int32_t N, int32_t reps, int32_t threads, spqr_kv_type kv,
                     int progress, bench_bw *bw, bench_result *r) {
    spqr_err err = {0};
    spqr_logger logger = cli_stderr_logger(0);
    spqr_model *m = NULL;
    spqr_session *s = NULL;
    int32_t *tok = NULL;
    float *logits = NULL;
    double *tp = NULL, *td = NULL;
    int rc = 1;
    memset(r, 0, sizeof *r);
    r->path = path;
    if (progress) fprintf(stderr, "spqr: " CMD ": loading %s\n", path);
    double t0 = cli_now();
    if (spqr_model_load(path, &logger, &m, &err)) {
        return cli_fail(CMD, err.msg, 1);
    }
    r->load_s = cli_now() - t0;
    const spqr_config *c = spqr_model_config(m);
    if ((int64_t)P + N > c->max_position_embeddings) {
        fprintf(stderr, "spqr: " CMD ": -p %d + -n %d = %lld tokens exceed the context of %s (max_position_embeddings %d)\n",
                P, N, (long long)P + N, path, c->max_position_embeddings);
        rc = 2;
        goto done;
    }
    weights(m, r);
    tok = malloc(sizeof *tok * (size_t)(P + N));
    logits = malloc(sizeof *logits * (size_t)c->vocab_size);
    tp = calloc((size_t)reps, sizeof *tp);
    td = calloc((size_t)reps, sizeof *td);
    if (!tok || !logits || !tp || !td) {
        fprintf(stderr, "spqr: " CMD ": out of memory\n");
        goto done;
    }
    if (spqr_session_create_opts(m, &(spqr_session_opts){P + N, threads, kv}, &s, &err)) {
        cli_fail(CMD, err.msg, 1);
        goto done;
    }
    if (bw->gbps <= 0 && (bw->gbps = bench_measure_bandwidth(threads, 5, &bw->cpu_gbps, NULL)) <= 0) {
        fprintf(stderr, "spqr: " CMD ": out of memory for the bandwidth probe\n");
        goto done;
    }
    uint64_t x = 12345; /* the same random tokens for every model with the same vocabulary */
    for (int32_t i = 0; i < P + N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)((x >> 33) % (uint64_t)c->vocab_size);
    }
    /* One untimed decode step pulls every weight through the page cache. */
    if (spqr_session_forward(s, tok, 1, 0, logits, &err)) {
        cli_fail(CMD, err.msg, 1);
        goto done;
    }
    r->logits_finite = 1;
    for (int32_t rep = 0; rep < reps; rep++) {
        spqr_session_reset(s);
        t0 = cli_now();
        if (spqr_session_forward(s, tok, P, 0, logits, &err)) {
            cli_fail(CMD, err.msg, 1);
            goto done;
        }
        tp[rep] = P / (cli_now() - t0);
        t0 = cli_now();
        for (int32_t i = 0; i < N; i++)
            if (spqr_session_forward(s, tok + P + i, 1, 0, logits, &err)) {
                cli_fail(CMD, err.msg, 1);
                goto done;
            }
        td[rep] = N / (cli_now() - t0);
        for (int32_t v = 0; v < c->vocab_size; v++)
            if (!isfinite(logits[v])) r->logits_finite = 0;
        if (progress)
            fprintf(stderr, "spqr: " CMD ": %s rep %d/%d: pp%d %.2f tok/s, tg%d %.2f tok/s\n", path, rep + 1, reps, P,
                    tp[rep], N, td[rep]);
    }
    mean_sd(tp, reps, &r->prompt_tps, &r->prompt_sd);
    mean_sd(td, reps, &r->decode_tps, &r->decode_sd);
    rc = 0;
done:
    spqr_session_free(s);
    spqr_model_free(m);
    free(tok);
    free(logits);
    free(tp);
    free(td);
    return rc;
}

/* "249.9 kB", "11.03 MB", "13.21 GB": small and 7B-sized models in one column. */
static void human_bytes(char *out, size_t cap, uint64_t b) {
    if (b >= 1000000000ull) snprintf(out, cap, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(out, cap, "%.2f MB", (double)b / 1e6);
    else snprintf(out, cap, "%.1f kB", (double)b / 1e3);
}

static void print_header(void) {
    printf("| %-28s | %-4s | %10s | %6s | %-7s | %6s | %21s | %10s | %5s | %7s |\n", "model", "kind", "weights", "bits",
           "kernel", "test", "tokens/s", "bound t/s", "bound", "speedup");
    printf("|------------------------------|------|------------|--------|---------|--------|-----------------------|"
           "------------|-------|---------|\n");
}

static void print_row(const bench_result *r, const bench_result *base, int decode, int32_t n, double tps, double sd,
                      double bw_gbps) {
    char test[24], bytes[32], bound_s[32] = "", pct_s[16] = "";
    snprintf(test, sizeof test, "%s%d", decode ? "tg" : "pp", n);
    human_bytes(bytes, sizeof bytes, r->weight_bytes);
    const double bound = bw_gbps * 1e9 / (double)r->weight_bytes;
    if (decode) {
        snprintf(bound_s, sizeof bound_s, "%.2f", bound);
        snprintf(pct_s, sizeof pct_s, "%.0f%%", 100.0 * tps / bound);
    }
    const double base_tps = decode ? base->decode_tps : base->prompt_tps;
    printf("| %-28s | %-4s | %10s | %6.3f | %-7s | %6s | %10.2f ± %-8.2f | %10s | %5s | %6.2fx |\n", r->path, r->kind,
           bytes, r->bits_per_param, r->kernel_path, test, tps, sd, bound_s, pct_s, base_tps > 0 ? tps / base_tps : 0);
}

int cmd_bench(int argc, char **argv) {
    int32_t P = 64, N = 16, reps = 3, threads = cli_default_threads();
    int json = 0, n_models = 0;
    spqr_kv_type kv = SPQR_KV_F16;
    const char **models = calloc((size_t)argc, sizeof *models);
    if (!models) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int32_t *dst = NULL, lo = 1, hi = 1 << 20;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(models);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        } else if (!strcmp(a, "--kv-type")) {
            if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_kv(CMD, a, v, &kv)) {
                free(models);
                return 2;
            }
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) dst = &P;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) dst = &N;
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) dst = &reps, hi = 1000;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) dst = &threads, hi = 1024;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spqr: " CMD ": unknown option '%s' (see --help)\n", a);
            free(models);
            return 2;
        } else {
            models[n_models++] = a;
            continue;
        }
        if (!(v = cli_flag_value(CMD, argc, argv, &i)) || cli_parse_i32(CMD, a, v, lo, hi, dst)) {
            free(models);
            return 2;
        }
    }
    if (n_models == 0) {
        fprintf(stderr, "spqr: " CMD ": missing MODEL (see --help)\n");
        free(models);
        return 2;
    }
    /* Every path up front, before the first load. */
    for (int i = 0; i < n_models; i++) {
        spqr_err err = {0};
        spqr_model_path_kind kind;
        if (spqr_model_path_classify(models[i], &kind, &err)) {
            free(models);
            return cli_fail(CMD, err.msg, 1);
        }
    }
    cli_blas_single_thread();
    const int progress = isatty(STDERR_FILENO);

    bench_bw probe = {0, 0};
    bench_result *res = calloc((size_t)n_models, sizeof *res);
    if (!res) {
        fprintf(stderr, "spqr: " CMD ": out of memory\n");
        free(res);
        free(models);
        return 1;
    }
    const char *kv_name = kv == SPQR_KV_F16 ? "f16" : "f32";
    int rc = 0;
    for (int i = 0; i < n_models && rc == 0; i++) {
        rc = bench_one(models[i], P, N, reps, threads, kv, progress, &probe, &res[i]);
        if (rc == 0 && !json && i == 0) {
            printf("read bandwidth %.2f GB/s (%d threads); pp%d: one forward of %d tokens, tg%d: %d single-token "
                   "steps after it; KV cache %s; mean ± sd of %d rep(s); bound = bandwidth / weights; speedup vs the "
                   "first model\n\n",
                   probe.gbps, threads, P, P, N, N, kv_name, reps);
            print_header();
        }
        if (rc == 0 && !json) {
            print_row(&res[i], &res[0], 0, P, res[i].prompt_tps, res[i].prompt_sd, probe.gbps);
            print_row(&res[i], &res[0], 1, N, res[i].decode_tps, res[i].decode_sd, probe.gbps);
            fflush(stdout);
        }
        if (rc == 0 && !res[i].logits_finite)
            fprintf(stderr, "spqr: " CMD ": warning: %s produced non-finite logits\n", models[i]);
    }
    if (rc == 0 && json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "bandwidth_gbps", probe.gbps);
        cJSON_AddNumberToObject(root, "bandwidth_cpu_gbps", probe.cpu_gbps);
        cJSON_AddNumberToObject(root, "threads", threads);
        cJSON_AddStringToObject(root, "kv_type", kv_name);
        cJSON_AddNumberToObject(root, "reps", reps);
        cJSON *arr = cJSON_AddArrayToObject(root, "models");
        for (int i = 0; i < n_models; i++) {
            const bench_result *r = &res[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", r->path);
            cJSON_AddStringToObject(o, "kind", r->kind);
            cJSON_AddStringToObject(o, "kernel_path", r->kernel_path);
            cJSON_AddNumberToObject(o, "weight_bytes", (double)r->weight_bytes);
            cJSON_AddNumberToObject(o, "bits_per_param", r->bits_per_param);
            cJSON_AddNumberToObject(o, "load_seconds", r->load_s);
            cJSON_AddNumberToObject(o, "prompt_tokens", P);
            cJSON_AddNumberToObject(o, "prompt_tps", r->prompt_tps);
            cJSON_AddNumberToObject(o, "prompt_tps_sd", r->prompt_sd);
            cJSON_AddNumberToObject(o, "decode_tokens", N);
            cJSON_AddNumberToObject(o, "decode_tps", r->decode_tps);
            cJSON_AddNumberToObject(o, "decode_tps_sd", r->decode_sd);
            const double bound = probe.gbps * 1e9 / (double)r->weight_bytes;
            cJSON_AddNumberToObject(o, "decode_bound_tps", bound);
            cJSON_AddNumberToObject(o, "decode_vs_bound", r->decode_tps / bound);
            cJSON_AddNumberToObject(o, "speedup_prompt", r->prompt_tps / res[0].prompt_tps);
            cJSON_AddNumberToObject(o, "speedup_decode", r->decode_tps / res[0].decode_tps);
            cJSON_AddBoolToObject(o, "logits_finite", r->logits_finite);
            cJSON_AddItemToArray(arr, o);
        }
        char *s = cJSON_PrintUnformatted(root);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
    free(res);
    free(models);
    return rc;
}
