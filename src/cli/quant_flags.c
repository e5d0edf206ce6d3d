#include "cli/quant_flags.h"

#include "quant/params.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cli_option_value(int argc, char **argv, int *i, const char *short_name, const char *long_name,
                     const char **value, char *msg, size_t cap) {
    const char *a = argv[*i];
    const char *names[2] = {short_name, long_name};
    for (int k = 0; k < 2; k++) {
        const char *n = names[k];
        if (!n) continue;
        size_t len = strlen(n);
        if (strncmp(a, n, len) != 0) continue;
        if (a[len] == '=' && k == 1) { /* --long=value */
            *value = a + len + 1;
            *i += 1;
            return 1;
        }
        if (a[len] != 0) continue;
        if (*i + 1 >= argc) {
            snprintf(msg, cap, "%s: missing value", n);
            return -1;
        }
        *value = argv[*i + 1];
        *i += 2;
        return 1;
    }
    return 0;
}

typedef struct {
    const char *flag;
    size_t offset;
    int32_t value;
} bool_knob;

static const bool_knob BOOL_KNOBS[] = {
    {"--simplified-outliers", offsetof(spqr_quant_params, simplified_outliers), 1},
    {"--round-zero", offsetof(spqr_quant_params, round_zero), 1},
    {"--sym", offsetof(spqr_quant_params, sym), 1},
    {"--rtn", offsetof(spqr_quant_params, gptq), 0},
};

/* "[lo, hi]", or "(lo, hi] or off" for the knob whose "none" the command line spells off. */
static const char *knob_range(const spqr_knob *kb, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%g, %g]%s", kb->inf_ok ? "(" : "[", kb->lo, kb->hi, kb->inf_ok ? " or off" : "");
    return buf;
}

/* Sets knob kb of p from v. Whatever is wrong with v (not a number, NaN,
 * out of range), the message names the flag and the whole valid range. */
static cli_flag_result parse_knob(const spqr_knob *kb, const char *v, spqr_quant_params *p, char *msg, size_t cap) {
    char why[256], range[64]; /* why: cli_util's reason, replaced by one that always names the range */
    char *at = (char *)p + kb->offset;
    if (!kb->is_float) {
        long long x;
        if (!cli_parse_int(kb->flag, v, (long long)kb->lo, (long long)kb->hi, &x, why, sizeof why)) {
            const int32_t x32 = (int32_t)x;
            memcpy(at, &x32, sizeof x32);
            return CLI_FLAG_OK;
        }
    } else {
        double x = 0;
        const int off = kb->inf_ok && (!strcmp(v, "off") || !strcmp(v, "inf"));
        if (off || !cli_parse_double(kb->flag, v, kb->lo, kb->hi, &x, why, sizeof why)) {
            const float f = off ? INFINITY : (float)x;
            /* 0 also means "none" to the library; the command line spells that only as off */
            if (!kb->inf_ok || f != 0) {
                memcpy(at, &f, sizeof f);
                return CLI_FLAG_OK;
            }
        }
    }
    snprintf(msg, cap, "%s: expected %s in %s, got '%.64s'", kb->flag, kb->is_float ? "a number" : "an integer",
             knob_range(kb, range, sizeof range), v);
    return CLI_FLAG_ERROR;
}

cli_flag_result cli_quant_flag(int argc, char **argv, int *i, spqr_quant_params *p, char *msg, size_t cap) {
    const char *a = argv[*i];
    const char *v = NULL;
    for (size_t k = 0; k < sizeof BOOL_KNOBS / sizeof BOOL_KNOBS[0]; k++)
        if (!strcmp(a, BOOL_KNOBS[k].flag)) {
            *(int32_t *)((char *)p + BOOL_KNOBS[k].offset) = BOOL_KNOBS[k].value;
            *i += 1;
            return CLI_FLAG_OK;
        }
    for (size_t k = 0; k < spqr_n_knobs; k++) {
        const spqr_knob *kb = &spqr_knobs[k];
        int r = cli_option_value(argc, argv, i, NULL, kb->flag, &v, msg, cap);
        if (r < 0) return CLI_FLAG_ERROR;
        if (r > 0) return parse_knob(kb, v, p, msg, cap);
    }
    int r = cli_option_value(argc, argv, i, NULL, "--perm", &v, msg, cap);
    if (r < 0) return CLI_FLAG_ERROR;
    if (r > 0) {
        if (!strcmp(v, "identity")) p->perm = SPQR_PERM_IDENTITY;
        else if (!strcmp(v, "act_order")) p->perm = SPQR_PERM_ACT_ORDER;
        else {
            snprintf(msg, cap, "--perm: '%.64s' is not one of identity, act_order", v);
            return CLI_FLAG_ERROR;
        }
        return CLI_FLAG_OK;
    }
    return CLI_FLAG_NOT_MINE;
}

/* 0 and +inf both switch an inf_ok knob (the outlier threshold) off. */
static int knob_off(float v) { return !(v > 0 && isfinite(v)); }

static int outliers_on(const spqr_quant_params *p) { return !knob_off(p->outlier_threshold); }

/* What each knob of the library's table means; its range and default are the library's. */
static const struct {
    const char *field, *arg, *text;
} KNOB_HELP[] = {
    {"wbits", "N", "bits per weight code"},
    {"groupsize", "N", "beta1: input columns per first-level group; 0 = whole row"},
    {"qq_scale_bits", "N", "bits of the second-level-quantized group scales; 0 = fp16 scales"},
    {"qq_zero_bits", "N", "bits of the second-level-quantized group zeros; 0 = fp16 zeros"},
    {"qq_groupsize", "N", "beta2: first-level statistics (output rows) per second-level group"},
    {"outlier_threshold", "X", "relative outlier threshold tau; off = no outliers"},
    {"percdamp", "X", "Hessian damping lambda: H += lambda*mean(diag H)*I"},
    {"blocksize", "N", "GPTQ lazy-batch width; changes speed only"},
};

void cli_quant_flags_help(FILE *f) {
    spqr_quant_params d;
    spqr_quant_params_default(&d);
    fprintf(f, "quantization options (defaults: the paper's near-lossless-style recipe):\n");
    for (size_t k = 0; k < spqr_n_knobs; k++) {
        const spqr_knob *kb = &spqr_knobs[k];
        const char *arg = "N", *text = "";
        for (size_t h = 0; h < sizeof KNOB_HELP / sizeof KNOB_HELP[0]; h++)
            if (!strcmp(KNOB_HELP[h].field, kb->field)) arg = KNOB_HELP[h].arg, text = KNOB_HELP[h].text;
        char lhs[40], def[32], range[64];
        snprintf(lhs, sizeof lhs, "%s %s", kb->flag, arg);
        const char *at = (const char *)&d + kb->offset;
        if (kb->is_float) {
            float v;
            memcpy(&v, at, sizeof v);
            if (kb->inf_ok && knob_off(v)) snprintf(def, sizeof def, "off");
            else snprintf(def, sizeof def, "%g", (double)v);
        } else {
            int32_t v;
            memcpy(&v, at, sizeof v);
            snprintf(def, sizeof def, "%d", (int)v);
        }
        fprintf(f, "  %-22s %s\n  %-22s range %s (default %s)\n", lhs, text, "", knob_range(kb, range, sizeof range),
                def);
    }
    fprintf(f,
            "  --simplified-outliers  fit group statistics on all weights (skip the leave-one-out pass)\n"
            "                         (default %s)\n"
            "  --perm MODE            column order: identity | act_order (descending diag H) (default %s)\n"
            "  --round-zero           round first-level zero points to integers (default %s)\n"
            "  --sym                  symmetric first-level quantization (default %s)\n"
            "  --rtn                  round-to-nearest: no GPTQ error feedback (default: GPTQ %s)\n",
            d.simplified_outliers ? "on" : "off", d.perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity",
            d.round_zero ? "on" : "off", d.sym ? "on" : "off", d.gptq ? "on" : "off");
}

/* Shortest decimal that reads back as the same float ("0.2", not
 * "0.200000003"). */
static void format_float(char *buf, size_t cap, float v) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, cap, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

int cli_quant_params_foreach(const spqr_quant_params *p, int (*fn)(void *user, const char *key, const char *value),
                             void *user) {
    char buf[64];
    int r;
#define EMIT_INT(key, v)                               \
    do {                                               \
        snprintf(buf, sizeof buf, "%d", (int)(v));     \
        if ((r = fn(user, key, buf)) != 0) return r;   \
    } while (0)
    EMIT_INT("wbits", p->wbits);
    EMIT_INT("groupsize", p->groupsize);
    EMIT_INT("qq_scale_bits", p->qq_scale_bits);
    EMIT_INT("qq_zero_bits", p->qq_zero_bits);
    EMIT_INT("qq_groupsize", p->qq_groupsize);
    /* "inf" = no outliers, as in the fixtures */
    if (outliers_on(p)) format_float(buf, sizeof buf, p->outlier_threshold);
    else snprintf(buf, sizeof buf, "inf");
    if ((r = fn(user, "outlier_threshold", buf)) != 0) return r;
    EMIT_INT("simplified_outliers", p->simplified_outliers);
    format_float(buf, sizeof buf, p->percdamp);
    if ((r = fn(user, "percdamp", buf)) != 0) return r;
    EMIT_INT("blocksize", p->blocksize);
    if ((r = fn(user, "perm", p->perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity")) != 0) return r;
    EMIT_INT("round_zero", p->round_zero);
    EMIT_INT("sym", p->sym);
    EMIT_INT("gptq", p->gptq);
#undef EMIT_INT
    return 0;
}

void cli_quant_params_describe(const spqr_quant_params *p, char *buf, size_t cap) {
    char g[24], stats[48], tau[40];
    if (p->groupsize) snprintf(g, sizeof g, "g%d", p->groupsize);
    else snprintf(g, sizeof g, "per-row");
    if (p->qq_scale_bits || p->qq_zero_bits)
        snprintf(stats, sizeof stats, "stats %d/%d bits x%d", p->qq_scale_bits, p->qq_zero_bits, p->qq_groupsize);
    else snprintf(stats, sizeof stats, "fp16 stats");
    if (outliers_on(p))
        snprintf(tau, sizeof tau, "tau %g%s", (double)p->outlier_threshold,
                 p->simplified_outliers ? " (simplified)" : "");
    else snprintf(tau, sizeof tau, "no outliers");
    snprintf(buf, cap, "w%d %s, %s, %s, percdamp %g, %s%s%s, %s", p->wbits, g, stats, tau, (double)p->percdamp,
             p->perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity", p->round_zero ? ", round-zero" : "",
             p->sym ? ", sym" : "", p->gptq ? "GPTQ" : "RTN");
}
