/* spqr quantize: whole-model SpQR quantization with sequential calibration
 * (docs/quantize.md). The CLI owns the terminal and the signals: SIGINT /
 * SIGTERM raise the library's cancel flag, which stops the run between
 * layers; finished blocks stay checkpointed for --resume and OUT.spqr is
 * never half-written (the library writes it atomically at the very end). */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/mpi_comm.h"
#include "cli/quant_flags.h"
#include "io/outpath.h"
#include "quant/budget.h"
#include "quant/pipeline.h"
#include "spqr.h"

#define CMD "quantize"
#define CALIB_MAX_BYTES ((size_t)1 << 30)

typedef struct preset {
    const char *name, *desc;
    int32_t wbits, groupsize, qq_bits;
    float tau;       /* 0 = no outliers */
    float percdamp;
    int32_t act_order, gptq;
    double budget;   /* > 0: a named budget, --target-bits (whole file; the knobs above are the rest's) */
} preset;

/* --preset: named budgets, whose whole file measures the bits in their name;
 * --recipe: fixed configurations that reproduce a paper or a baseline tool
 * (their bits are what the configuration gives). */
static const preset PRESETS[] = {
    {"2.5bit", "a setting per linear and for the embedding: 2.5 bits per model parameter, the\n"
     "                                       whole file (--target-bits 2.5)", 3, 16, 3, 0.2f, 1.0f, 1, 1, 2.5},
    {"3bit", "the same for 3 bits", 3, 16, 3, 0.2f, 1.0f, 1, 1, 3.0},
    {"3.5bit", "the same for 3.5 bits", 3, 16, 3, 0.2f, 1.0f, 1, 1, 3.5},
    {"3.6bit", "the same for 3.6 bits", 3, 16, 3, 0.2f, 1.0f, 1, 1, 3.6},
    {"4bit", "the same for 4 bits", 3, 16, 3, 0.2f, 1.0f, 1, 1, 4.0},
    {"4.5bit", "the same for 4.5 bits", 3, 16, 3, 0.2f, 1.0f, 1, 1, 4.5},
    {"near-lossless", "4bit: far inside the paper's 1% perplexity (KL 0.0011, ppl -0.1% on the\n"
     "                                       default model, where +1% is near KL 0.007)", 4, 16, 3,
     0.2f, 1.0f, 1, 1, 4.0},
    /* recipes */
    {"paper-w3", "SpQR w3, beta1=beta2=16, 3-bit statistics, tau 0.2, act_order, percdamp 1: the\n"
     "                                       paper's \"3.6-bit\" configuration (4.44 bits per model parameter\n"
     "                                       on the default model; the library's defaults)", 3, 16, 3,
     0.2f, 1.0f, 1, 1, 0},
    {"paper-w4", "the same with w4 (4.90 bits per model parameter, default model)", 4, 16, 3, 0.2f, 1.0f, 1, 1, 0},
    {"gptq4", "GPTQ w4, group 128, fp16 statistics, no outliers, percdamp 0.01", 4, 128, 0, 0.0f, 0.01f, 0, 1, 0},
    {"gptq3", "GPTQ w3, group 128, fp16 statistics, no outliers, percdamp 0.01", 3, 128, 0, 0.0f, 0.01f, 0, 1, 0},
    {"rtn4", "round-to-nearest w4, group 128, fp16 statistics, no outliers", 4, 128, 0, 0.0f, 0.01f, 0, 0, 0},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

/* A preset's knobs map to params as a --target-bits setting's do (one rule). */
static void apply_preset(const preset *ps, spqr_quant_params *p) {
    spqr_quant_params base;
    spqr_quant_params_default(&base);
    const budget_setting s = {ps->name, ps->wbits, ps->groupsize, ps->qq_bits, ps->tau, ps->percdamp, ps->act_order};
    spqri_budget_setting_apply(&s, &base, p);
    p->gptq = ps->gptq;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: spqr quantize MODEL_DIR -o OUT.spqr --calib TEXT [options]\n"
            "  -o, --output FILE   the .spqr file to write (atomically, at the end); an existing file is\n"
            "                      replaced only if it is a .spqr model (docs/safety.md)\n"
            "  --force             also replace an existing file of another kind (never an input,\n"
            "                      a directory, device or FIFO)\n"
            "  --calib FILE        calibration text (UTF-8), tokenized once without BOS\n"
            "  --nsamples N        calibration windows (default 128)\n"
            "  --seqlen N          tokens per window (default min(2048, max_position_embeddings))\n"
            "  --seed N            window sampling seed (default 0)\n"
            "  --preset NAME       a named budget: the whole file measures the bits of its name\n"
            "                      (--target-bits B with the knobs below as the rest's settings):\n");
    for (size_t i = 0; i < N_PRESETS; i++)
        if (PRESETS[i].budget > 0) fprintf(f, "                        %-14s %s\n", PRESETS[i].name, PRESETS[i].desc);
    fprintf(f, "  --recipe NAME       a fixed configuration of every linear, to reproduce a paper or a\n"
               "                      baseline (its bits are what the configuration gives); knobs override it:\n");
    for (size_t i = 0; i < N_PRESETS; i++)
        if (PRESETS[i].budget <= 0) fprintf(f, "                        %-14s %s\n", PRESETS[i].name, PRESETS[i].desc);
    fprintf(f,
            "                      (neither: the library defaults below, i.e. the recipe paper-w3)\n"
            "  --target-bits B     choose each linear's setting from a grid (w2..w8, groups of 128 with fp16\n"
            "                      statistics or of 16 with 3-bit ones, outliers or none) so that the whole\n"
            "                      file holds B bits per model parameter with the least Hessian-weighted\n"
            "                      error (a measurement pass first; the other knobs stay as set)\n"
            "  --target-bits-linears B  the same, B bits per weight of the quantized linears\n"
            "  --resume            continue an interrupted run from OUT.spqr.partial/ (checked to match\n"
            "                      the same model, calibration and knobs; otherwise starts over)\n"
            "  -t, --threads N     threads (default: all cores)\n"
            "  -q, --quiet         no progress bar\n"
            "  The whole model is quantized: lm_head with the same knobs, calibrated on the final-normed\n"
            "  outputs of the quantized blocks, and the token embedding round-to-nearest with the same\n"
            "  statistics; norms stay 32-bit. Tied embeddings: the calibrated head is the one table.\n"
            "  --tied-two-tables   tied embeddings: also store the RTN embedding for the lookup (bigger,\n"
            "                      a little better: bench/results/whole_file.md)\n"
            "  --dense-head        keep lm_head as stored (16-bit)\n"
            "  --dense-embed       keep the token embedding as stored (16-bit)\n"
            "  --quantize-head     the default (kept for old scripts)\n"
            "  -v                  verbose\n\n");
    cli_quant_flags_help(f);
}

static spqr_comm g_comm = {0, 1, NULL, NULL, NULL}; /* mpirun: this rank (cli/mpi_comm.h) */

/* Under mpirun each rank's message says which rank failed. */
static int fail_code(const char *msg, int code) {
    if (g_comm.size <= 1) return cli_fail(CMD, msg, code);
    char m[640];
    snprintf(m, sizeof m, "rank %d of %d: %s", g_comm.rank, g_comm.size, msg);
    return cli_fail(CMD, m, code);
}

static int fail(const char *msg) { return fail_code(msg, 1); }

static int fail2(const char *msg) { return fail_code(msg, 2); }

typedef struct bar_state {
    int tty, quiet;
    int last_block;
} bar_state;

static void fmt_time(char *b, size_t cap, double s) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, cap, "%ld:%02ld", t / 60, t % 60);
}

/* Tests of a rank killed mid-run (tests/cli_quantize_mpi.sh):
 * SPQR_TEST_KILL_AFTER_BLOCK=R:L makes rank R kill itself once block L is done. */
static void test_kill(const spqr_quantize_progress *e) {
    const char *v = getenv("SPQR_TEST_KILL_AFTER_BLOCK");
    int r, l;
    if (v && sscanf(v, "%d:%d", &r, &l) == 2 && r == g_comm.rank && l == e->block && !strcmp(e->what, "propagate"))
        raise(SIGKILL);
}

static void on_progress(void *user, const spqr_quantize_progress *e) {
    bar_state *b = user;
    test_kill(e);
    if (b->quiet) return;
    char el[32], eta[32] = "?";
    fmt_time(el, sizeof el, e->elapsed_s);
    const int64_t done = e->step - e->steps_skipped;
    if (done > 0) fmt_time(eta, sizeof eta, e->elapsed_s / done * (double)(e->n_steps - e->step));
    const double frac = e->n_steps ? (double)e->step / e->n_steps : 1.0;
    if (b->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[Kblock %d/%d [%s] %3.0f%%  %-26s elapsed %s  ETA %s", e->block + 1, e->n_blocks, bar,
                100 * frac, e->what, el, eta);
        if (e->step == e->n_steps) fputc('\n', stderr);
    } else if (!strcmp(e->what, "propagate")) { /* one line per block when logging to a file */
        fprintf(stderr, "block %d/%d done (%3.0f%%), elapsed %s, ETA %s\n", e->block + 1, e->n_blocks, 100 * frac, el,
                eta);
    }
    fflush(stderr);
}

static void print_kind_row(const spqr_quantize_kind_summary *kk) {
    printf("%-18s %5d %10lld %12.5f %12.5f %8.3f%% %8.3f %8.3f %8.1f\n", kk->name, kk->count, (long long)kk->params,
           kk->rel_err_mean, kk->rel_err_max, 100.0 * kk->outliers / kk->params, kk->stored_bits, kk->formula_bits,
           kk->seconds);
}

static void print_report(const spqr_quantize_summary *s, const char *out) {
    printf("\n%-18s %5s %10s %12s %12s %9s %8s %8s %8s\n", "layer", "count", "params", "rel.err mean", "rel.err max",
           "outliers", "bits", "formula", "time s");
    int64_t outl = s->head.outliers;
    for (int k = 0; k < s->n_kinds; k++) {
        const spqr_quantize_kind_summary *kk = &s->kinds[k];
        if (!kk->count) continue;
        outl += kk->outliers;
        print_kind_row(kk);
    }
    const int head = s->head.count > 0, embed = s->embed.count > 0;
    if (head) print_kind_row(&s->head);
    printf("%-18s %5s %10lld %12s %12s %8.3f%% %8.3f %8.3f\n", head ? "all (with head)" : "all linears", "",
           (long long)s->quantized_params, "", "", 100.0 * outl / (s->quantized_params ? s->quantized_params : 1),
           s->avg_bits_stored, s->avg_bits_formula);
    if (embed) print_kind_row(&s->embed); /* not a linear: outside the total above */
    printf("\naverage bits per parameter of the quantized linears%s: %.4f measured from stored bytes "
           "(formula of docs/method.md, \"Size accounting\": %.4f)\n",
           head ? " (lm_head included)" : "", s->avg_bits_stored, s->avg_bits_formula);
    if (head)
        printf("block linears only (lm_head excluded): %.4f measured (formula %.4f)\n", s->avg_bits_stored_blocks,
               s->avg_bits_formula_blocks);
    if (embed)
        printf("token embedding (round-to-nearest, looked up by row): %.4f measured (formula %.4f)\n",
               s->embed.stored_bits, s->embed.formula_bits);
    printf("whole file: %.4f bits per parameter (every stored byte over every parameter, %lld params)\n",
           s->file_bits, (long long)s->model_params);
    const double fp16 = 2.0 * (double)s->model_params;
    printf("%s: %llu bytes (%.2f MB); the same model in fp16: %.2f MB (%.2fx smaller); "
           "16/32-bit parts kept: %lld params (%s)\n",
           out, (unsigned long long)s->file_bytes, s->file_bytes / 1e6, fp16 / 1e6,
           s->file_bytes ? fp16 / s->file_bytes : 0.0, (long long)s->dense_params,
           "norms, and the embedding and head where not quantized");
    printf("calibration: %d windows x %d tokens from %lld tokens; %d block(s) restored by --resume; %.1f s\n",
           s->nsamples, s->seqlen, (long long)s->calib_tokens, s->resumed_blocks, s->seconds);
}

/* --target-bits: the setting chosen for each linear, from the file's metadata. */
static void print_settings(const char *out, double target, int linears) {
    spqr_archive *a = NULL;
    if (spqr_archive_open(out, &a, NULL)) return;
    const char *mj = spqr_archive_metadata_json(a);
    cJSON *meta = mj ? cJSON_Parse(mj) : NULL;
    const cJSON *it;
    printf("\nsettings chosen for %g bits per %s:\n", target, linears ? "quantized weight" : "model parameter");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(meta, "layers")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
        const char *set = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "setting"));
        const double bits = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "stored_bits"));
        if (name && set) printf("  %-40s %-16s %7.3f bits\n", name, set, bits);
    }
    cJSON_Delete(meta);
    spqr_archive_close(a);
}

static int quantize_main(int argc, char **argv) {
    const char *model_dir = NULL, *out = NULL, *calib = NULL, *preset_name = NULL, *v;
    spqr_quantize_options o;
    spqr_quantize_options_default(&o);
    o.n_threads = cli_default_threads();
    o.quantize_head = 1; /* every preset quantizes the whole file */
    o.quantize_embed = 1;
    int verbose = 0, quiet = 0;
    char msg[512];
    /* The preset or recipe goes first so that knobs given anywhere override it. */
    int is_recipe = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        for (int rc = 0; rc < 2; rc++) {
            int j = i;
            int r = cli_option_value(argc, argv, &j, NULL, rc ? "--recipe" : "--preset", &v, msg, sizeof msg);
            if (r < 0) return fail2(msg);
            if (r == 0) continue;
            if (preset_name && (strcmp(preset_name, v) || is_recipe != rc))
                return fail2("give one --preset or --recipe");
            preset_name = v, is_recipe = rc;
            i = j - 1;
            break;
        }
    }
    if (preset_name) {
        size_t k = 0;
        while (k < N_PRESETS && strcmp(PRESETS[k].name, preset_name)) k++;
        if (k < N_PRESETS && (PRESETS[k].budget <= 0) != is_recipe) {
            snprintf(msg, sizeof msg, "%s: '%s' is %s: use %s %s", is_recipe ? "--recipe" : "--preset", preset_name,
                     is_recipe ? "a named budget, not a fixed recipe" : "a fixed recipe, not a named budget",
                     is_recipe ? "--preset" : "--recipe", preset_name);
            return fail2(msg);
        }
        if (k == N_PRESETS) {
            char names[256] = "";
            for (size_t j = 0; j < N_PRESETS; j++)
                if ((PRESETS[j].budget <= 0) == is_recipe)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "",
                             PRESETS[j].name);
            snprintf(msg, sizeof msg, "%s: unknown %s '%.64s' (%s)", is_recipe ? "--recipe" : "--preset",
                     is_recipe ? "recipe" : "preset", preset_name, names);
            return fail2(msg);
        }
        apply_preset(&PRESETS[k], &o.params);
        if (PRESETS[k].budget > 0) o.target_bits = PRESETS[k].budget, o.target_linears = 0;
    }
    int custom = 0, target_given = 0;
    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        int r;
        cli_flag_result qr = cli_quant_flag(argc, argv, &i, &o.params, msg, sizeof msg);
        if (qr == CLI_FLAG_ERROR) return fail2(msg);
        if (qr == CLI_FLAG_OK) { custom = 1; continue; }
        if ((r = cli_option_value(argc, argv, &i, NULL, "--preset", &v, msg, sizeof msg)) != 0) continue;
        if ((r = cli_option_value(argc, argv, &i, NULL, "--recipe", &v, msg, sizeof msg)) != 0) continue;
        if ((r = cli_option_value(argc, argv, &i, "-o", "--output", &out, msg, sizeof msg)) != 0) {
            if (r < 0) return fail2(msg);
            continue;
        }
        if ((r = cli_option_value(argc, argv, &i, NULL, "--calib", &calib, msg, sizeof msg)) != 0) {
            if (r < 0) return fail2(msg);
            continue;
        }
        long long x;
        if ((r = cli_option_value(argc, argv, &i, NULL, "--nsamples", &v, msg, sizeof msg)) != 0) {
            if (r < 0 || cli_parse_int("--nsamples", v, 1, 1 << 20, &x, msg, sizeof msg)) return fail2(msg);
            o.nsamples = (int32_t)x;
            continue;
        }
        if ((r = cli_option_value(argc, argv, &i, NULL, "--seqlen", &v, msg, sizeof msg)) != 0) {
            if (r < 0 || cli_parse_int("--seqlen", v, 1, 1 << 20, &x, msg, sizeof msg)) return fail2(msg);
            o.seqlen = (int32_t)x;
            continue;
        }
        if ((r = cli_option_value(argc, argv, &i, NULL, "--seed", &v, msg, sizeof msg)) != 0) {
            if (r < 0 || cli_parse_int("--seed", v, 0, INT64_MAX, &x, msg, sizeof msg)) return fail2(msg);
            o.seed = (uint64_t)x;
            continue;
        }
        if ((r = cli_option_value(argc, argv, &i, "-t", "--threads", &v, msg, sizeof msg)) != 0) {
            if (r < 0 || cli_parse_int("--threads", v, 1, 1024, &x, msg, sizeof msg)) return fail2(msg);
            o.n_threads = (int32_t)x;
            continue;
        }
        for (int lin = 0; lin < 2; lin++) {
            const char *flag = lin ? "--target-bits-linears" : "--target-bits";
            if ((r = cli_option_value(argc, argv, &i, NULL, flag, &v, msg, sizeof msg)) == 0) continue;
            double b;
            if (r < 0 || cli_parse_double(flag, v, 1.0, 32.0, &b, msg, sizeof msg)) return fail2(msg);
            if (target_given && o.target_linears != lin)
                return fail2("--target-bits and --target-bits-linears exclude each other");
            target_given = 1;
            o.target_bits = b;
            o.target_linears = lin;
            break;
        }
        if (r > 0) continue;
        if (!strcmp(a, "--resume")) { o.resume = 1; i++; continue; }
        if (!strcmp(a, "-v")) { verbose = 1; i++; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; i++; continue; }
        if (!strcmp(a, "--quantize-head")) { o.quantize_head = 1; i++; continue; }
        if (!strcmp(a, "--dense-head")) { o.quantize_head = 0; i++; continue; }
        if (!strcmp(a, "--dense-embed")) { o.quantize_embed = 0; i++; continue; }
        if (!strcmp(a, "--tied-two-tables")) { o.tied_two_tables = 1; i++; continue; }
        if (!strcmp(a, "--force")) { o.overwrite = 1; i++; continue; }
        if (a[0] == '-' && a[1]) {
            snprintf(msg, sizeof msg, "unknown option '%.64s' (see --help)", a);
            return fail2(msg);
        }
        if (model_dir) {
            snprintf(msg, sizeof msg, "unexpected argument '%.64s' (one MODEL_DIR)", a);
            return fail2(msg);
        }
        model_dir = a;
        i++;
    }
    if (!model_dir) return fail2("missing MODEL_DIR (see --help)");
    if (!out) return fail2("missing -o OUT.spqr");
    if (!calib) return fail2("missing --calib TEXT");
    spqr_err err = {0};
    /* The output rules (docs/safety.md), with every input known here. */
    const char *inputs[] = {model_dir, calib};
    const spqr_out_spec spec = {"-o", "a .spqr model", spqri_pipe_is_spqr_head, o.overwrite};
    if (g_comm.rank == 0 && spqr_out_check(out, &spec, inputs, 2, &err)) return fail(err.msg); /* only rank 0 writes */
    char pname[96];
    if (preset_name) snprintf(pname, sizeof pname, "%s%s", preset_name, custom ? "+custom" : "");
    else snprintf(pname, sizeof pname, "custom");
    o.preset = pname;
    cli_blas_single_thread();

    /* scale-out: rank 0 speaks for the job (progress, report); every rank reports its own failure */
    if (g_comm.size > 1) {
        o.comm = &g_comm;
        if (g_comm.rank != 0) quiet = 1, verbose = 0;
    }
    spqr_logger logger = cli_stderr_logger(verbose);
    o.log = &logger;
    size_t len = 0;
    char *text = cli_read_file(calib, CALIB_MAX_BYTES, &len, &err);
    if (!text) return fail(err.msg);
    if (len == 0) {
        free(text);
        snprintf(msg, sizeof msg, "calibration text %.400s is empty", calib);
        return fail(msg);
    }
    spqr_model *m = NULL;
    if (spqr_model_load_hf(model_dir, &logger, &m, &err)) { free(text); return fail(err.msg); }
    int32_t *ids = NULL, n_ids = 0;
    if (spqr_tokenizer_encode(spqr_model_tokenizer(m), text, len, 0, &ids, &n_ids, &err)) {
        free(text);
        spqr_model_free(m);
        return fail(err.msg);
    }
    free(text);
    char desc[256];
    cli_quant_params_describe(&o.params, desc, sizeof desc);
    const char *also = o.quantize_head && o.quantize_embed ? ", lm_head and embedding too"
                       : o.quantize_head                  ? ", lm_head too"
                       : o.quantize_embed                 ? ", embedding too"
                                                          : "";
    if (!quiet && o.target_bits > 0)
        fprintf(stderr, "quantizing %s -> %s: %g bits per %s, settings chosen per linear%s\n", model_dir, out,
                o.target_bits, o.target_linears ? "quantized weight" : "model parameter", also);
    else if (!quiet)
        fprintf(stderr, "quantizing %s -> %s: %s (%s)%s\n", model_dir, out, pname, desc, also);

    o.cancel = cli_cancel_on_signals();
    bar_state bs = {isatty(2), quiet, -1};
    o.progress = on_progress;
    o.progress_user = &bs;

    spqr_quantize_summary sm;
    spqr_status st = spqr_model_quantize(m, ids, n_ids, &o, out, &sm, &err);
    free(ids);
    spqr_model_free(m);
    if (bs.tty && !quiet && st) fputc('\n', stderr);
    if (st == SPQR_ERR_INTERRUPTED) {
        if (g_comm.rank == 0) fprintf(stderr, "spqr: " CMD ": %s; %s was not written\n", err.msg, out);
        return 130;
    }
    if (st) return fail(err.msg);
    if (g_comm.rank != 0) return 0; /* rank 0 wrote the file and reports */
    print_report(&sm, out);
    if (o.target_bits > 0) {
        print_settings(out, o.target_bits, o.target_linears);
        if (!o.target_linears)
            printf("whole file: %.4f bits per model parameter (target %g)\n",
                   sm.model_params ? 8.0 * sm.file_bytes / (double)sm.model_params : 0.0, o.target_bits);
    }
    return 0;
}

int cmd_quantize(int argc, char **argv) {
    char msg[256];
    const int started = cli_mpi_start(&g_comm, msg, sizeof msg);
    if (started < 0) return cli_fail(CMD, msg, 2);
    return cli_mpi_end(started, quantize_main(argc, argv));
}
