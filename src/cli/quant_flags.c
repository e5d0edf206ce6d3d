#include "cli/quant_flags.h"

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

/* The integer knobs, their fields and ranges. Ranges match
 * spqr_quant_params_validate so the error names the flag, not the field. */
typedef struct {
    const char *flag;
    size_t offset;
    long long lo, hi;
} int_knob;

static const int_knob INT_KNOBS[] = {
    {"--wbits", offsetof(spqr_quant_params, wbits), 2, 8},
    {"--groupsize", offsetof(spqr_quant_params, groupsize), 0, INT32_MAX},
    {"--qq-scale-bits", offsetof(spqr_quant_params, qq_scale_bits), 0, 8},
    {"--qq-zero-bits", offsetof(spqr_quant_params, qq_zero_bits), 0, 8},
    {"--qq-groupsize", offsetof(spqr_quant_params, qq_groupsize), 1, INT32_MAX},
    {"--blocksize", offsetof(spqr_quant_params, blocksize), 1, INT32_MAX},
};

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

cli_flag_result cli_quant_flag(int argc, char **argv, int *i, spqr_quant_params *p, char *msg, size_t cap) {
    const char *a = argv[*i];
    const char *v = NULL;
    for (size_t k = 0; k < sizeof BOOL_KNOBS / sizeof BOOL_KNOBS[0]; k++)
        if (!strcmp(a, BOOL_KNOBS[k].flag)) {
            *(int32_t *)((char *)p + BOOL_KNOBS[k].offset) = BOOL_KNOBS[k].value;
            *i += 1;
            return CLI_FLAG_OK;
        }
    for (size_t k = 0; k < sizeof INT_KNOBS / sizeof INT_KNOBS[0]; k++) {
        int r = cli_option_value(argc, argv, i, NULL, INT_KNOBS[k].flag, &v, msg, cap);
        if (r < 0) return CLI_FLAG_ERROR;
        if (r == 0) continue;
        long long x;
        if (cli_parse_int(INT_KNOBS[k].flag, v, INT_KNOBS[k].lo, INT_KNOBS[k].hi, &x, msg, cap)) return CLI_FLAG_ERROR;
        *(int32_t *)((char *)p + INT_KNOBS[k].offset) = (int32_t)x;
        return CLI_FLAG_OK;
    }
    int r = cli_option_value(argc, argv, i, NULL, "--outlier-threshold", &v, msg, cap);
    if (r < 0) return CLI_FLAG_ERROR;
    if (r > 0) {
        if (!strcmp(v, "off") || !strcmp(v, "inf")) {
            p->outlier_threshold = INFINITY;
            return CLI_FLAG_OK;
        }
        double x;
        if (cli_parse_double("--outlier-threshold", v, 0.0, 1e30, &x, msg, cap)) return CLI_FLAG_ERROR;
        if (x <= 0) {
            snprintf(msg, cap, "--outlier-threshold: must be > 0 (use 'off' to disable outliers)");
            return CLI_FLAG_ERROR;
        }
        p->outlier_threshold = (float)x;
        return CLI_FLAG_OK;
    }
    r = cli_option_value(argc, argv, i, NULL, "--percdamp", &v, msg, cap);
    if (r < 0) return CLI_FLAG_ERROR;
    if (r > 0) {
        double x;
        if (cli_parse_double("--percdamp", v, 0.0, 1e30, &x, msg, cap)) return CLI_FLAG_ERROR;
        p->percdamp = (float)x;
        return CLI_FLAG_OK;
    }
    r = cli_option_value(argc, argv, i, NULL, "--perm", &v, msg, cap);
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

static int outliers_on(const spqr_quant_params *p) {
    return p->outlier_threshold > 0 && isfinite(p->outlier_threshold);
}

void cli_quant_flags_help(FILE *f) {
    spqr_quant_params d;
    spqr_quant_params_default(&d);
    char tau[32];
    if (outliers_on(&d)) snprintf(tau, sizeof tau, "%g", (double)d.outlier_threshold);
    else snprintf(tau, sizeof tau, "off");
    fprintf(f,
            "quantization options (defaults: the paper's near-lossless-style recipe):\n"
            "  --wbits N              bits per weight code, 2..8 (default %d)\n"
            "  --groupsize N          beta1: input columns per first-level group; 0 = whole row (default %d)\n"
            "  --qq-scale-bits N      bits of the second-level-quantized group scales; 0 = fp16 scales\n"
            "                         (default %d)\n"
            "  --qq-zero-bits N       bits of the second-level-quantized group zeros; 0 = fp16 zeros (default %d)\n"
            "  --qq-groupsize N       beta2: first-level statistics (output rows) per second-level group\n"
            "                         (default %d)\n"
            "  --outlier-threshold X  relative outlier threshold tau (> 0), or 'off' for no outliers\n"
            "                         (default %s)\n"
            "  --simplified-outliers  fit group statistics on all weights (skip the leave-one-out pass)\n"
            "                         (default %s)\n"
            "  --percdamp X           Hessian damping lambda: H += lambda*mean(diag H)*I, >= 0 (default %g)\n"
            "  --blocksize N          GPTQ lazy-batch width; changes speed only (default %d)\n"
            "  --perm MODE            column order: identity | act_order (descending diag H) (default %s)\n"
            "  --round-zero           round first-level zero points to integers (default %s)\n"
            "  --sym                  symmetric first-level quantization (default %s)\n"
            "  --rtn                  round-to-nearest: no GPTQ error feedback (default: GPTQ %s)\n",
            d.wbits, d.groupsize, d.qq_scale_bits, d.qq_zero_bits, d.qq_groupsize, tau,
            d.simplified_outliers ? "on" : "off", (double)d.percdamp, d.blocksize,
            d.perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity", d.round_zero ? "on" : "off",
            d.sym ? "on" : "off", d.gptq ? "on" : "off");
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
