/* Whole-model SpQR quantization with sequential calibration
 * (docs/method.md; docs/quantize.md).
 *
 *   X = embed(calibration windows)                 [N][T][hidden] fp32
 *   for each block l:
 *     for group in [q,k,v] -> [o] -> [gate,up] -> [down]   (the family's table, model/arch.h):
 *       run block l on every window, with the groups quantized so far
 *       substituted, up to this group's input x; H = (2/n) sum x x^T
 *       quantize every linear of the group with H; substitute its
 *       dequantized weights (bit-identical to the packed tensor)
 *     X = block l (fully quantized) applied to X      (in place)
 *     checkpoint: block l's packed tensors, X
 *
 * The forward pass is the runtime's own (spqri_model_layer_forward) on a shallow
 * copy of the model whose block-l linears are swapped for the dequantized
 * fp32 copies. Windows run in parallel, one single-threaded session per
 * thread on a one-layer view of that copy; H is reduced window by window in
 * a fixed order, so the output does not depend on the thread count.
 * Peak memory: X, per thread a session (one layer's KV cache for seqlen
 * positions) and a [seqlen][cols] input buffer, one H and the fp32 copies
 * of one block's linears. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "format/spqr_file.h"
#include "io/atomic_file.h"
#include "io/dir_lock.h"
#include "io/file.h"
#include "io/outpath.h"
#include "model/model.h"
#include "quant/budget.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/calib.h"
#include "quant/pipeline.h"

#define STEPS_PER_BLOCK (MODEL_N_GROUPS + PIPE_KINDS + 1)
#define HEAD_STEPS 2 /* calibrate lm_head, quantize lm_head */

void spqr_quantize_options_default(spqr_quantize_options *o) {
    memset(o, 0, sizeof *o);
    spqr_quant_params_default(&o->params);
    o->nsamples = 128;
    o->seqlen = 0;
    o->seed = 0;
    o->n_threads = 1;
}

/* One calibration worker: its own single-threaded session on a one-layer
 * view of the model, and the hooked group input of its current window. */
typedef struct worker {
    struct pipe *p;
    spqr_session *sess;
    float *buf;                /* [T][max cols] input of the target group; with PIPE_TARGET_ALL, every group's */
    int32_t t0, cols;          /* position of the chunk being run; width seen */
    int32_t gcols[MODEL_N_GROUPS]; /* PIPE_TARGET_ALL: the width each group's input had (0: not seen) */
    spqr_err err;
} worker;

/* run_block's targets besides a group: the whole block (its outputs into X),
 * and the whole block while capturing every group's input (the measurement
 * pass, which substitutes nothing, so one forward serves all groups). */
#define PIPE_TARGET_NONE (-1)
#define PIPE_TARGET_ALL (-2)

typedef struct pipe {
    const spqr_model *src;
    spqr_model mc;             /* shallow copy: block-l linears get substituted */
    spqr_model mview;          /* one-layer view of mc (layers = mc.layers + l) for the sessions */
    const spqr_quantize_options *o;
    int32_t N, T, Hd;
    float *X;                  /* [N][T][Hd] current block inputs */
    worker *w;                 /* [n_threads] */
    int32_t nw;
    /* Hessian being accumulated */
    int32_t target;            /* group whose input is wanted, or PIPE_TARGET_* */
    int32_t gwidth[MODEL_N_GROUPS]; /* each group's input width (PIPE_TARGET_ALL's buffer layout) */
    float *Hm;                 /* [cols][cols]: one window's X^T X while accumulating, then H */
    pipe_hsum hs;              /* the exact sum of the windows' X^T X */
    pipe_hsum hall[MODEL_N_GROUPS]; /* PIPE_TARGET_ALL: one sum per group */
    /* scale-out: this rank runs windows [w0, w1) */
    const spqr_comm *comm;
    spqr_comm serial;
    int32_t rank, w0, w1;
    /* progress */
    double t0;
    int64_t step, n_steps, skipped;
    double kind_seconds[PIPE_KINDS + 1]; /* + the head (PIPE_HEAD_KIND) */
    /* this block's calibration so far: forward and Hessian wall / CPU seconds, GFLOP of the
     * forward's linears (attention and norms not counted) and of the X^T X products */
    double fwd_s, fwd_cpu, fwd_gflop, hess_s, hess_cpu, hess_gflop;
    spqr_quant_params lp;      /* knobs of the linear being quantized */
    pipe_plan *plan;           /* --target-bits; NULL otherwise */
    pipe_layer_record *rec;    /* every record (the plan's items) */
    /* --target-bits on the whole file: the metadata's size follows the records, so the
     * budget is recomputed before each allocation from what the file will hold */
    pipe_layer_record *est;    /* records as long as typical ones, for the items not done */
    double total_bits;         /* B x model parameters */
    uint64_t fixed0;           /* bytes nothing allocates, with an empty metadata text */
    double fixed_bits;         /* the same with the metadata of the last allocation, in bits */
    int64_t n_tok;
    int shared_table;          /* tied, head and embedding quantized into one table (stored as the embedding) */
    char ckdir[4096];
} pipe;

/* The head's name stem: the shared table is stored under the embedding's name. */
static const char *head_stem(const pipe *p) { return p->shared_table ? "model.embed_tokens" : "lm_head"; }

static int cancelled(const pipe *p) { return p->o->cancel && *p->o->cancel; }

static void progress(pipe *p, int32_t block, const char *what) {
    p->step++;
    if (!p->o->progress) return;
    spqr_quantize_progress e = {block, p->src->cfg.n_layers, p->step, p->n_steps, p->skipped, what, spqr_now_s() - p->t0};
    p->o->progress(p->o->progress_user, &e);
}

/* Stashes the target group's input of the current chunk and stops the layer. */
static int capture_hook(void *user, int32_t layer, int32_t group, const float *X, int32_t B, int32_t cols) {
    (void)layer;
    worker *w = user;
    if (w->p->target == PIPE_TARGET_ALL) {
        /* group g's rows at T x (the widths of the groups before it) */
        size_t off = 0;
        for (int32_t g = 0; g < group; g++) off += (size_t)w->p->T * w->p->gwidth[g];
        if (cols != w->p->gwidth[group]) w->gcols[group] = -1; /* refused by the caller */
        else memcpy(w->buf + off + (size_t)w->t0 * cols, X, (size_t)B * cols * sizeof(float)), w->gcols[group] = cols;
        return 0;
    }
    if (group != w->p->target) return 0;
    memcpy(w->buf + (size_t)w->t0 * cols, X, (size_t)B * cols * sizeof(float));
    w->cols = cols;
    return 1; /* the rest of the layer is not needed for this group */
}

/* Window i through the current layer (a causal sequence from position 0). */
static spqr_status run_window(pipe *p, worker *w, int32_t i, int32_t target) {
    spqr_session *s = w->sess;
    const int32_t Hd = p->Hd, T = p->T;
    model_layer_hooks hooks = {capture_hook, w};
    spqr_session_reset(s);
    for (int32_t g = 0; g < MODEL_N_GROUPS; g++) w->gcols[g] = 0;
    for (int32_t t0 = 0; t0 < T; t0 += s->max_batch) {
        const int32_t B = T - t0 < s->max_batch ? T - t0 : s->max_batch;
        float *xs = p->X + ((size_t)i * T + t0) * Hd;
        memcpy(s->x, xs, (size_t)B * Hd * sizeof(float));
        w->t0 = t0;
        spqr_status st = spqri_model_layer_forward(s, 0, B, target != PIPE_TARGET_NONE ? &hooks : NULL, &w->err);
        if (st) return st;
        if (target < 0) memcpy(xs, s->x, (size_t)B * Hd * sizeof(float));
        s->pos += B;
    }
    return SPQR_OK;
}

/* Runs block l over this rank's windows: with a target group, only up to
 * its input, leaving in p->Hm (upper triangle, [cols][cols]) the Hessian
 * H = (2/n) sum x x^T over every rank's windows; with PIPE_TARGET_NONE, the
 * whole block, writing X in place, then every rank gets every window's
 * rows; with PIPE_TARGET_ALL, both: the whole block, each group g's windows
 * added into p->hall[g] (p->Hm the scratch of one window's X^T X, of the
 * widest group; the caller finishes the sums). Windows run in parallel (one
 * per worker); each window's X^T X is added exactly (pipe_hsum), so H
 * depends neither on the thread count nor on the number of ranks. */
static spqr_status run_block(pipe *p, int32_t l, int32_t target, int32_t cols, spqr_err *err) {
    /* the sessions' layer 0 is block l (the head's pseudo layer n_layers
     * stops before attention) */
    spqri_model_layer_view(&p->mview, &p->mc, p->mc.layers, l);
    p->target = target;
    spqr_status sts[1024], st = SPQR_OK;
    if (target >= 0) spqri_hsum_init(&p->hs, cols);
    /* the linears a window runs before the hook stops it (all of them for target < 0) */
    const model_arch *a = p->src->hp.arch;
    double lin_flops = 0.0;
    for (int k = 0; k < PIPE_KINDS; k++)
        if (a->lin[k].name && (target < 0 || a->lin[k].group < target))
            lin_flops += 2.0 * p->T * (double)p->mc.layers[l].lin[k].rows * (double)p->mc.layers[l].lin[k].cols;
    for (int32_t b0 = p->w0; b0 < p->w1 && !st; b0 += p->nw) {
        if (cancelled(p)) { st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted"); break; }
        const int32_t nb = p->w1 - b0 < p->nw ? p->w1 - b0 : p->nw;
        double t = spqr_now_s(), c = spqri_cpu_s();
#pragma omp parallel for num_threads(nb) schedule(static, 1) if (nb > 1)
        for (int32_t j = 0; j < nb; j++) sts[j] = run_window(p, &p->w[j], b0 + j, target);
        p->fwd_s += spqr_now_s() - t;
        p->fwd_cpu += spqri_cpu_s() - c;
        p->fwd_gflop += 1e-9 * nb * lin_flops;
        for (int32_t j = 0; j < nb && !st; j++)
            if (sts[j]) {
                if (err) *err = p->w[j].err;
                st = sts[j];
            }
        if (target == PIPE_TARGET_NONE) continue;
        t = spqr_now_s();
        c = spqri_cpu_s();
        for (int32_t j = 0; j < nb && !st; j++) {
            if (target >= 0) {
                if (p->w[j].cols != cols)
                    st = spqr_err_set(err, SPQR_ERR_IO, "calibration input has %d columns, expected %d", p->w[j].cols,
                                      cols);
                else {
                    spqri_hessian_window(p->Hm, p->w[j].buf, cols, p->T, p->o->n_threads);
                    st = spqri_hsum_add(&p->hs, p->Hm, p->o->n_threads, err);
                    p->hess_gflop += 1e-9 * p->T * (double)cols * cols;
                }
                continue;
            }
            const float *x = p->w[j].buf;
            for (int32_t g = 0; g < MODEL_N_GROUPS && !st; g++) {
                const int32_t gc = p->gwidth[g];
                if (!gc) continue;
                if (p->w[j].gcols[g] != gc)
                    st = spqr_err_set(err, SPQR_ERR_IO, "calibration input of group %d has %d columns, expected %d", g,
                                      p->w[j].gcols[g], gc);
                else {
                    spqri_hessian_window(p->Hm, x, gc, p->T, p->o->n_threads);
                    st = spqri_hsum_add(&p->hall[g], p->Hm, p->o->n_threads, err);
                    p->hess_gflop += 1e-9 * p->T * (double)gc * gc;
                }
                x += (size_t)p->T * gc;
            }
        }
        p->hess_s += spqr_now_s() - t;
        p->hess_cpu += spqri_cpu_s() - c;
    }
    if (!st && target >= 0) st = spqri_hsum_finish(&p->hs, p->comm, (int64_t)p->N * p->T, p->Hm, err);
    if (target >= 0) spqri_hsum_free(&p->hs);
    /* every rank gets every window's outputs: the next block's inputs and rank 0's checkpoint */
    for (int32_t r = 0; !st && target < 0 && r < p->comm->size; r++) {
        const int32_t a = (int32_t)((int64_t)p->N * r / p->comm->size), b = (int32_t)((int64_t)p->N * (r + 1) / p->comm->size);
        st = spqri_comm_bcast(p->comm, p->X + (size_t)a * p->T * p->Hd, (size_t)(b - a) * p->T * p->Hd * sizeof(float), r,
                              err);
    }
    return st;
}

/* 1 when the family has block linear kind k (a slot of model/arch.h). */
static int has_kind(const spqr_model *m, int k) { return m->hp.arch->lin[k].name != NULL; }

static const char *const GROUP_NAMES[MODEL_N_GROUPS] = {"q,k,v", "o", "gate,up", "down"};

/* Mirrors the upper triangle that cblas_ssyrk accumulated. */
static void hessian_symmetrize(float *Hm, int32_t cols) {
    for (int32_t i = 0; i < cols; i++)
        for (int32_t j = 0; j < i; j++) Hm[(size_t)i * cols + j] = Hm[(size_t)j * cols + i];
}

static spqr_status replan(pipe *p, spqr_err *err);

/* Quantizes one linear with p->Hm: *tensor and *Wdq (the dequantized fp32
 * weights, bit-identical to the tensor) are set for the caller to free;
 * rec is filled with what the report and the metadata need. */
static spqr_status quantize_linear(pipe *p, const spqr_linear *lin, int32_t block, int32_t kind, const char *name,
                                   spqr_tensor **tensor, float **Wdq, pipe_layer_record *rec, spqr_err *err) {
    const int32_t rows = lin->rows, cols = lin->cols;
    float *W = malloc((size_t)rows * cols * sizeof(float));
    *Wdq = malloc((size_t)rows * cols * sizeof(float));
    if (!W || !*Wdq) { free(W); return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); }
    spqr_status st = SPQR_OK;
    for (int32_t r = 0; r < rows && !st; r++) st = spqri_linear_row(lin, r, W + (size_t)r * cols, err);
    spqr_quant_report rep;
    const double t = spqr_now_s();
    /* --target-bits: this linear's setting from the allocation of what is left of the budget */
    const int32_t item = kind == PIPE_HEAD_KIND ? p->src->cfg.n_layers * PIPE_KINDS : block * PIPE_KINDS + kind;
    int32_t setting = -1;
    p->lp = p->o->params;
    if (!st && p->plan && !(st = replan(p, err))) {
        setting = p->plan->choice[item];
        spqri_budget_setting_apply(&spqri_budget_grid[setting], &p->o->params, &p->lp);
    }
    if (!st)
        st = spqr_quantize_layer(W, rows, cols, p->Hm, &p->lp, p->o->n_threads, p->o->log, tensor, *Wdq, NULL,
                                 &rep, err);
    free(W);
    if (st) return spqr_err_prefix(err, st, "%s", name);
    p->kind_seconds[kind] += spqr_now_s() - t;
    spqr_size_report sz;
    spqr_tensor_size(*tensor, &sz);
    *rec = (pipe_layer_record){block, kind, rows, cols, rep.n_outliers, rep.rel_hessian_error,
                               sz.formula_bits_per_param, sz.stored_bits_per_param, sz.stored_bytes,
                               spqrf_packed_file_bytes(*tensor, strlen(name) + strlen(".weight")), setting};
    if (p->plan) p->plan->done[item] = 1;
    return SPQR_OK;
}

/* Scale-out: the owner's quantized linear (packed tensor, record, time) to
 * every rank; the others dequantize it, which gives the owner's Wdq bit for bit. */
static spqr_status share_linear(pipe *p, int32_t owner, int32_t kind, spqr_tensor **tensor, float **Wdq,
                                pipe_layer_record *rec, spqr_err *err) {
    spqr_status st = spqri_comm_bcast_tensor(p->comm, tensor, owner, err);
    struct { pipe_layer_record r; double seconds; } msg = {*rec, p->kind_seconds[kind]};
    if (!st) st = spqri_comm_bcast(p->comm, &msg, sizeof msg, owner, err);
    if (st || p->rank == owner) return st;
    *rec = msg.r;
    if (p->rank == 0) p->kind_seconds[kind] = msg.seconds; /* the owner's total for this kind, as a one-rank run reports */
    *Wdq = malloc((size_t)(*tensor)->rows * (*tensor)->cols * sizeof(float));
    if (!*Wdq) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
    return spqr_tensor_dequantize(*tensor, *Wdq, err);
}

/* The first linear slot of group g, or PIPE_KINDS when the family has none. */
static int group_first(const model_arch *a, int32_t g) {
    int k = 0;
    while (k < PIPE_KINDS && !(a->lin[k].name && a->lin[k].group == g)) k++;
    return k;
}

/* The Hessian of group g of block l into p->Hm (allocated here, freed by
 * the caller; freed here on error). *k0: the group's first linear, or
 * PIPE_KINDS when the family has none (nothing allocated). */
static spqr_status group_hessian(pipe *p, int32_t l, int32_t g, int *k0, spqr_err *err) {
    const int k = group_first(p->src->hp.arch, g);
    *k0 = k;
    if (k == PIPE_KINDS) return SPQR_OK;
    const int32_t cols = p->mc.layers[l].lin[k].cols;
    p->Hm = calloc((size_t)cols * cols, sizeof(float));
    if (!p->Hm) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d x %d Hessian", cols, cols);
    spqr_status st = run_block(p, l, g, cols, err);
    if (st) {
        free(p->Hm);
        p->Hm = NULL;
        return st;
    }
    hessian_symmetrize(p->Hm, cols);
    return SPQR_OK;
}

/* Quantizes block l; on success tensors[k] and Wdq[k] are filled (caller frees). */
static spqr_status quantize_block(pipe *p, int32_t l, spqr_tensor *tensors[PIPE_KINDS], float *Wdq[PIPE_KINDS],
                                  pipe_layer_record rec[PIPE_KINDS], spqr_err *err) {
    spqr_layer *L = &p->mc.layers[l];
    char what[96], name[128];
    spqr_status st = SPQR_OK;
    const model_arch *a = p->src->hp.arch;
    p->fwd_s = p->fwd_cpu = p->fwd_gflop = p->hess_s = p->hess_cpu = p->hess_gflop = 0.0;
    for (int32_t g = 0; g < MODEL_N_GROUPS && !st; g++) {
        snprintf(what, sizeof what, "calibrate %s", GROUP_NAMES[g]);
        int k0;
        if ((st = group_hessian(p, l, g, &k0, err))) break;
        if (k0 == PIPE_KINDS) continue;
        progress(p, l, what);
        /* scale-out: the group's j-th linear is quantized on rank j mod size, then
         * shared; --target-bits allocates each linear after the previous one, so
         * there every rank quantizes every linear (the same result everywhere) */
        int32_t j = 0;
        for (int k = k0; k < PIPE_KINDS && !st; k++) {
            if (!a->lin[k].name || a->lin[k].group != g) continue;
            const int32_t owner = p->plan || p->comm->size == 1 ? -1 : j++ % p->comm->size;
            if (owner >= 0 && owner != p->rank) continue;
            if (cancelled(p)) { st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted"); break; }
            spqr_linear *lin = &L->lin[k];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, a->lin[k].name);
            if ((st = quantize_linear(p, lin, l, k, name, &tensors[k], &Wdq[k], &rec[k], err))) break;
            if (owner >= 0) continue; /* substituted once shared, below */
            *lin = (spqr_linear){SPQR_LINEAR_F32, lin->rows, lin->cols, Wdq[k], NULL, NULL};
            snprintf(what, sizeof what, "quantize %s", a->lin[k].name);
            progress(p, l, what);
        }
        j = 0;
        for (int k = k0; k < PIPE_KINDS && !st && !p->plan && p->comm->size > 1; k++) {
            if (!a->lin[k].name || a->lin[k].group != g) continue;
            spqr_linear *lin = &L->lin[k];
            if ((st = share_linear(p, j++ % p->comm->size, k, &tensors[k], &Wdq[k], &rec[k], err))) break;
            *lin = (spqr_linear){SPQR_LINEAR_F32, lin->rows, lin->cols, Wdq[k], NULL, NULL};
            snprintf(what, sizeof what, "quantize %s", a->lin[k].name);
            progress(p, l, what);
        }
        free(p->Hm);
        p->Hm = NULL;
    }
    if (!st && cancelled(p)) st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted");
    if (!st) st = run_block(p, l, PIPE_TARGET_NONE, 0, err);
    if (!st) progress(p, l, "propagate");
    /* the calibration's rates, for bench/pipeline_rate.sh (ratios to an sgemm) */
    spqr_log(p->o->log, SPQR_LOG_INFO,
             "block %d calibration: forward %.2f s wall / %.2f s CPU for %.1f GFLOP of linears; Hessians %.2f s wall / "
             "%.2f s CPU for %.1f GFLOP (X^T X, ssyrk + exact sum)",
             l, p->fwd_s, p->fwd_cpu, p->fwd_gflop, p->hess_s, p->hess_cpu, p->hess_gflop);
    return st;
}

/* --quantize-head: X holds the last block's outputs. The LM head sees
 * RMSNorm(x, final_norm); a pseudo layer (index n_layers of mc.layers) whose
 * input norm is the final norm, stopped by the hook at its q,k,v input,
 * yields exactly that through the runtime's own forward code, so the head's
 * Hessian comes from the same run_block/ssyrk path as every block's. */
static spqr_status quantize_head(pipe *p, spqr_tensor **tensor, float **Wdq, pipe_layer_record *rec, spqr_err *err) {
    const int32_t nl = p->src->cfg.n_layers, Hd = p->Hd;
    if (cancelled(p)) return spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted");
    p->Hm = calloc((size_t)Hd * Hd, sizeof(float));
    if (!p->Hm) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d x %d Hessian", Hd, Hd);
    spqr_status st = run_block(p, nl, MODEL_GROUP_QKV, Hd, err);
    if (!st) {
        hessian_symmetrize(p->Hm, Hd);
        progress(p, nl - 1, "calibrate lm_head");
        if (cancelled(p)) st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted");
    }
    /* only rank 0 writes the file, so only it needs the head */
    if (!st && p->rank == 0)
        st = quantize_linear(p, &p->src->lm_head, nl, PIPE_HEAD_KIND, head_stem(p), tensor, Wdq, rec, err);
    if (!st) progress(p, nl - 1, "quantize lm_head");
    free(p->Hm);
    p->Hm = NULL;
    return st;
}

/* --target-bits, pass 1: every grid setting of one linear under p->Hm, the
 * Hessian of its unquantized inputs; records what each costs and its
 * Hessian-weighted error tr(dW H dW^T) (one sgemm: cheaper than the
 * engine's double-precision report). */
static spqr_status measure_linear(pipe *p, const spqr_linear *lin, int32_t item, const char *name, spqr_err *err) {
    const int32_t rows = lin->rows, cols = lin->cols;
    const size_t n = (size_t)rows * cols;
    float *W = malloc(n * sizeof(float)), *D = malloc(n * sizeof(float)), *DH = malloc(n * sizeof(float));
    if (!W || !D || !DH) { free(W), free(D), free(DH); return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); }
    spqr_status st = SPQR_OK;
    for (int32_t r = 0; r < rows && !st; r++) st = spqri_linear_row(lin, r, W + (size_t)r * cols, err);
    pipe_plan *pl = p->plan;
    const size_t g = (size_t)spqri_budget_grid_n;
    /* the settings grouped by permutation mode and damping, each group's
     * permutation and Cholesky factor computed once (the same bits as
     * computing them per setting) */
    int32_t order[256];
    for (int32_t s = 0; s < spqri_budget_grid_n; s++) {
        int32_t k = s;
        const budget_setting *b = &spqri_budget_grid[s];
        while (k > 0 && (spqri_budget_grid[order[k - 1]].act_order > b->act_order ||
                         (spqri_budget_grid[order[k - 1]].act_order == b->act_order &&
                          spqri_budget_grid[order[k - 1]].percdamp > b->percdamp))) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = s;
    }
    quant_hprep hp;
    memset(&hp, 0, sizeof hp);
    for (int32_t i = 0; i < spqri_budget_grid_n && !st; i++) {
        const int32_t s = order[i];
        if (cancelled(p)) { st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted"); break; }
        spqr_quant_params q;
        spqri_budget_setting_apply(&spqri_budget_grid[s], &p->o->params, &q);
        spqr_tensor *t = NULL;
        if (!(st = spqri_hprep_fill(&hp, p->Hm, cols, &q, p->o->n_threads, err)))
            st = spqri_quantize_layer_prepared(W, rows, cols, p->Hm, &q, p->o->n_threads, &hp, p->o->log, &t, D, NULL,
                                               NULL, err);
        if (st) { st = spqr_err_prefix(err, st, "%s (%s)", name, spqri_budget_grid[s].label); break; }
        spqr_size_report sz;
        spqr_tensor_size(t, &sz);
        pl->cost[item * g + s] =
            8 * (pl->whole_file ? spqrf_packed_file_bytes(t, strlen(name) + strlen(".weight")) : sz.stored_bytes);
        spqr_tensor_free(t);
        if (s == spqri_pipe_sens_setting &&
            (st = spqri_pipe_plan_sens_measure(pl, item, item / PIPE_KINDS, item % PIPE_KINDS, D, err)))
            break;
        for (size_t i = 0; i < n; i++) D[i] = W[i] - D[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, cols, 1.0f, D, cols, p->Hm, cols, 0.0f, DH,
                    cols);
        double e = 0;
        for (size_t i = 0; i < n; i++) e += (double)D[i] * DH[i];
        pl->err[item * g + s] = e;
    }
    spqri_hprep_free(&hp);
    free(W), free(D), free(DH);
    pl->present[item] = 1;
    return st;
}

/* --target-bits, pass 1 for block l: one forward of the unquantized block
 * (nothing is substituted in this pass, so every group's input is the one
 * a forward stopped at that group would see) leaves X = its output and
 * every group's Hessian; then every linear is measured. */
static spqr_status measure_block(pipe *p, int32_t l, spqr_err *err) {
    spqr_layer *L = &p->mc.layers[l];
    const model_arch *a = p->src->hp.arch;
    char what[96], name[128];
    int32_t maxc = 0;
    for (int32_t g = 0; g < MODEL_N_GROUPS; g++) {
        if (p->gwidth[g]) spqri_hsum_init(&p->hall[g], p->gwidth[g]);
        maxc = p->gwidth[g] > maxc ? p->gwidth[g] : maxc;
    }
    p->Hm = malloc((size_t)maxc * maxc * sizeof(float));
    spqr_status st = p->Hm ? run_block(p, l, PIPE_TARGET_ALL, 0, err)
                           : spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d x %d Hessian", maxc, maxc);
    for (int32_t g = 0; g < MODEL_N_GROUPS && !st; g++) {
        const int32_t cols = p->gwidth[g];
        if (!cols) continue;
        if ((st = spqri_hsum_finish(&p->hall[g], p->comm, (int64_t)p->N * p->T, p->Hm, err))) break;
        hessian_symmetrize(p->Hm, cols);
        snprintf(what, sizeof what, "measure: calibrate %s", GROUP_NAMES[g]);
        progress(p, l, what);
        for (int k = group_first(a, g); k < PIPE_KINDS && !st; k++) {
            if (!a->lin[k].name || a->lin[k].group != g) continue;
            snprintf(name, sizeof name, "model.layers.%d.%s", l, a->lin[k].name);
            if ((st = measure_linear(p, &L->lin[k], l * PIPE_KINDS + k, name, err))) break;
            snprintf(what, sizeof what, "measure %s", a->lin[k].name);
            progress(p, l, what);
        }
    }
    for (int32_t g = 0; g < MODEL_N_GROUPS; g++) spqri_hsum_free(&p->hall[g]);
    free(p->Hm);
    p->Hm = NULL;
    if (!st) progress(p, l, "measure: propagate");
    return st;
}

static spqr_status measure_head(pipe *p, spqr_err *err) {
    const int32_t nl = p->src->cfg.n_layers, Hd = p->Hd;
    p->Hm = calloc((size_t)Hd * Hd, sizeof(float));
    if (!p->Hm) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for a %d x %d Hessian", Hd, Hd);
    spqr_status st = run_block(p, nl, MODEL_GROUP_QKV, Hd, err);
    if (!st) {
        hessian_symmetrize(p->Hm, Hd);
        progress(p, nl - 1, "measure: calibrate lm_head");
        st = measure_linear(p, &p->src->lm_head, nl * PIPE_KINDS, head_stem(p), err);
    }
    if (!st) progress(p, nl - 1, "measure lm_head");
    free(p->Hm);
    p->Hm = NULL;
    return st;
}

/* Everything that determines the output: model, calibration, knobs. */
static uint64_t run_hash(const spqr_model *m, const int32_t *tok, int64_t n, const spqr_quantize_options *o,
                         int32_t N, int32_t T) {
    uint64_t h = spqri_calib_hash(CALIB_HASH_INIT, "spqr-pipeline-v1", 16);
    h = spqri_calib_hash(h, m->config_json, m->config_len);
    h = spqri_calib_hash(h, m->tokenizer_json, m->tokenizer_len);
    const spqr_config *c = &m->cfg;
    const spqr_linear *dense[2] = {&m->embed, &m->lm_head};
    for (int i = 0; i < 2; i++)
        h = spqri_calib_hash(h, dense[i]->data, (size_t)dense[i]->rows * dense[i]->cols * (dense[i]->kind == SPQR_LINEAR_F32 ? 4 : 2));
    for (int32_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < PIPE_KINDS; k++) {
            if (!has_kind(m, k)) continue;
            const spqr_linear *lin = &m->layers[l].lin[k];
            h = spqri_calib_hash(h, lin->data, (size_t)lin->rows * lin->cols * (lin->kind == SPQR_LINEAR_F32 ? 4 : 2));
        }
    h = spqri_calib_hash(h, m->norm_storage, m->n_norm_floats * sizeof(float));
    h = spqri_calib_hash(h, tok, (size_t)n * sizeof *tok);
    const spqr_quant_params *q = &o->params;
    const int32_t ints[] = {q->wbits, q->groupsize,   q->qq_scale_bits, q->qq_zero_bits, q->qq_groupsize,
                            q->simplified_outliers, q->blocksize, (int32_t)q->perm, q->round_zero, q->sym,
                            q->gptq, N, T, o->quantize_head ? 1 : 0};
    h = spqri_calib_hash(h, ints, sizeof ints);
    const float fl[] = {isfinite(q->outlier_threshold) && q->outlier_threshold > 0 ? q->outlier_threshold : 0.0f,
                        q->percdamp};
    h = spqri_calib_hash(h, fl, sizeof fl);
    h = spqri_calib_hash(h, &o->seed, sizeof o->seed);
    const char *preset = o->preset ? o->preset : "";
    h = spqri_calib_hash(h, preset, strlen(preset) + 1);
    if (o->target_bits > 0) {
        const double tb[2] = {o->target_bits, o->target_linears ? 1.0 : 0.0};
        h = spqri_calib_hash(h, tb, sizeof tb);
        for (int32_t s = 0; s < spqri_budget_grid_n; s++) {
            const budget_setting *b = &spqri_budget_grid[s];
            const float v[7] = {(float)b->wbits, (float)b->groupsize, (float)b->qq_bits, b->tau, b->percdamp,
                                (float)b->act_order, 0};
            h = spqri_calib_hash(h, b->label, strlen(b->label));
            h = spqri_calib_hash(h, v, sizeof v);
        }
    }
    return h;
}

static char *final_metadata(const spqr_model *m, const spqr_quantize_options *o, int32_t N, int32_t T, int64_t n_tok,
                            uint64_t spqri_tok_hash, const pipe_layer_record *rec, int32_t n_rec, double avg_stored,
                            double avg_formula) {
    const spqr_quant_params *q = &o->params;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "quantizer", "spqr 0.1.0 sequential calibration");
    cJSON_AddStringToObject(root, "preset", o->preset ? o->preset : "custom");
    cJSON *pj = cJSON_AddObjectToObject(root, "params");
    cJSON_AddNumberToObject(pj, "wbits", q->wbits);
    cJSON_AddNumberToObject(pj, "groupsize", q->groupsize);
    cJSON_AddNumberToObject(pj, "qq_scale_bits", q->qq_scale_bits);
    cJSON_AddNumberToObject(pj, "qq_zero_bits", q->qq_zero_bits);
    cJSON_AddNumberToObject(pj, "qq_groupsize", q->qq_groupsize);
    if (isfinite(q->outlier_threshold) && q->outlier_threshold > 0)
        cJSON_AddNumberToObject(pj, "outlier_threshold", q->outlier_threshold);
    else cJSON_AddNullToObject(pj, "outlier_threshold");
    cJSON_AddNumberToObject(pj, "simplified_outliers", q->simplified_outliers);
    cJSON_AddNumberToObject(pj, "percdamp", q->percdamp);
    cJSON_AddNumberToObject(pj, "blocksize", q->blocksize);
    cJSON_AddStringToObject(pj, "perm", q->perm == SPQR_PERM_ACT_ORDER ? "act_order" : "identity");
    cJSON_AddNumberToObject(pj, "round_zero", q->round_zero);
    cJSON_AddNumberToObject(pj, "sym", q->sym);
    cJSON_AddNumberToObject(pj, "gptq", q->gptq);
    cJSON *cj = cJSON_AddObjectToObject(root, "calibration");
    cJSON_AddNumberToObject(cj, "nsamples", N);
    cJSON_AddNumberToObject(cj, "seqlen", T);
    cJSON_AddNumberToObject(cj, "seed", (double)o->seed);
    cJSON_AddNumberToObject(cj, "tokens", (double)n_tok);
    char hs[32];
    snprintf(hs, sizeof hs, "%016" PRIx64, spqri_tok_hash);
    cJSON_AddStringToObject(cj, "tokens_fnv1a64", hs);
    cJSON_AddStringToObject(cj, "sampling", "splitmix64(seed) windows, start uniform in [0, tokens - seqlen]");
    cJSON_AddBoolToObject(root, "quantize_head", o->quantize_head != 0);
    cJSON_AddBoolToObject(root, "quantize_embed", o->quantize_embed != 0);
    if (o->target_bits > 0) {
        cJSON_AddNumberToObject(root, "target_bits", o->target_bits);
        cJSON_AddStringToObject(root, "target", o->target_linears ? "quantized linears" : "whole file");
    }
    cJSON_AddNumberToObject(root, "avg_bits_stored", avg_stored); /* every packed linear, the head included */
    cJSON_AddNumberToObject(root, "avg_bits_formula", avg_formula);
    cJSON *arr = cJSON_AddArrayToObject(root, "layers");
    char name[128];
    for (int32_t i = 0; i < n_rec; i++) {
        if (rec[i].rows == 0) continue; /* a slot the family does not have */
        cJSON *e = spqri_pipe_record_to_json(&rec[i]);
        spqri_pipe_record_name(name, sizeof name, m->hp.arch, rec[i].block, rec[i].kind);
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddItemToArray(arr, e);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

static spqr_status ensure_dir(const char *dir, spqr_err *err) {
    struct stat sb;
    /* a planted symlink would have the run write, and at the end delete,
     * block_*.spqr and lock files in a directory the user never named */
    if (lstat(dir, &sb) == 0 && S_ISLNK(sb.st_mode))
        return spqr_err_set(err, SPQR_ERR_IO, "checkpoint directory %s is a symbolic link; remove it or name the real directory",
                            dir);
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        if (lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return SPQR_OK;
    }
    return spqr_err_set(err, SPQR_ERR_IO, "cannot create checkpoint directory %s: %s", dir, strerror(errno));
}

/* A generous estimate of a packed linear's bits per weight: codes, both
 * statistics, second-level groups, permutation and row pointers, and room
 * for a few percent of outliers at 48 bits each. */
static double estimate_bits(const spqr_quant_params *q, int32_t cols) {
    const double g = q->groupsize > 0 && q->groupsize < cols ? q->groupsize : cols;
    const double stat = (q->qq_scale_bits ? q->qq_scale_bits : 16) + (q->qq_zero_bits ? q->qq_zero_bits : 16);
    const double outl = isfinite(q->outlier_threshold) && q->outlier_threshold > 0 ? 1.5 : 0.0;
    return q->wbits + stat / g + 2.0 + outl;
}

/* Peak disk use of a run: every block checkpoint, two copies of the
 * calibration activations (the new one is written before the old one is
 * removed) and the final file (written while the checkpoints exist).
 * Refused before block 1 when the file system cannot hold it. */
static spqr_status check_disk_space(const spqr_model *m, const spqr_quantize_options *o, const char *out_path,
                                    const char *ckdir, uint64_t inputs_bytes, spqr_err *err) {
    const spqr_config *c = &m->cfg;
    double packed = 0;
    for (int32_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < PIPE_KINDS; k++) {
            if (!has_kind(m, k)) continue;
            const spqr_linear *lin = &m->layers[l].lin[k];
            packed += (double)lin->rows * lin->cols * estimate_bits(&o->params, lin->cols) / 8.0;
        }
    const double VH = (double)c->vocab_size * c->hidden_size;
    const double es = m->embed.kind == SPQR_LINEAR_F32 ? 4.0 : 2.0;
    const double dense = VH * es * (c->tie_word_embeddings ? 1 : 2) + (double)m->n_norm_floats * 4;
    const double need = 2 * packed + dense + 2.0 * (double)inputs_bytes;
    char *odir = spqr_path_dirname(out_path);
    struct statvfs a, b;
    int ok_a = odir && statvfs(odir, &a) == 0, ok_b = statvfs(ckdir, &b) == 0;
    spqr_status st = SPQR_OK;
    if (ok_a && ok_b) {
        const double free_a = (double)a.f_bavail * a.f_frsize, free_b = (double)b.f_bavail * b.f_frsize;
        /* Checkpoints already on disk (--resume) are part of the need. */
        const double have = free_b + (double)spqri_pipe_ckpt_bytes(ckdir, c->n_layers);
        if (a.f_fsid == b.f_fsid ? have < need : (free_a < packed + dense || have < need - packed - dense))
            st = spqr_err_set(err, SPQR_ERR_IO,
                              "not enough disk space for %s: about %.2f GB needed (checkpoints in %s and the final "
                              "file), %.2f GB free",
                              out_path, need / 1e9, ckdir, (a.f_fsid == b.f_fsid ? have : free_a) / 1e9);
    }
    free(odir);
    return st;
}

static spqr_status validate(const spqr_model *m, const int32_t *tok, int64_t n, const spqr_quantize_options *o,
                            const char *out_path, spqr_err *err) {
    if (!m || !o || !out_path || (!tok && n > 0))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "model_quantize: NULL argument");
    if (m->archive || m->n_ktensors)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "the model is already quantized (.spqr); give the original checkpoint");
    if (!m->config_json || !m->tokenizer_json)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "model_quantize: the model lacks its config/tokenizer text");
    spqr_status st = spqr_quant_params_validate(&o->params, err);
    if (st) return st;
    if (o->target_bits != 0 && !(o->target_bits > 0 && o->target_bits <= 32))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "target_bits %g is outside (0, 32]", o->target_bits);
    /* What the final write stores is checked now, not after hours of work. */
    const char *why = spqrf_text_problem(SPQRF_SEC_CONFIG, m->config_json, m->config_len);
    if (why) return spqr_err_set(err, SPQR_ERR_FORMAT, "config.json: %s", why);
    if ((why = spqrf_text_problem(SPQRF_SEC_TOKENIZER, m->tokenizer_json, m->tokenizer_len)))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "tokenizer.json: %s", why);
    const spqr_out_spec spec = {"output", "a .spqr model", spqri_pipe_is_spqr_head, o->overwrite};
    const int writer = !o->comm || o->comm->rank == 0; /* scale-out: only rank 0 writes */
    if (writer && (st = spqr_out_check(out_path, &spec, NULL, 0, err))) return st;
    if (o->nsamples < 1 || o->nsamples > (1 << 20))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "nsamples %d is outside [1, 1048576]", o->nsamples);
    if (o->seqlen < 0 || o->seqlen > m->cfg.max_position_embeddings)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "seqlen %d is outside [1, max_position_embeddings = %d]",
                            o->seqlen, m->cfg.max_position_embeddings);
    if (o->comm && (o->comm->size < 1 || o->comm->rank < 0 || o->comm->rank >= o->comm->size ||
                    (o->comm->size > 1 && (!o->comm->bcast || !o->comm->allreduce_sum_i64))))
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "scale-out: rank %d of %d, or a missing operation",
                            o->comm->rank, o->comm->size);
    if (o->n_threads < 1 || o->n_threads > 1024) /* run_block keeps one status per thread on the stack */
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "thread count %d is outside [1, 1024]", o->n_threads);
    const int32_t V = m->cfg.vocab_size;
    for (int64_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= V)
            return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "calibration token %d at %lld is outside [0, %d)", tok[i],
                                (long long)i, V);
    for (int32_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < PIPE_KINDS; k++)
            if (has_kind(m, k) && m->layers[l].lin[k].kind == SPQR_LINEAR_PACKED)
                return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "the model is already quantized");
    return SPQR_OK;
}

/* Per-kind aggregates; the head (kind PIPE_HEAD_KIND) goes to s->head. The
 * model-level averages include the head when it was quantized; the
 * *_blocks averages never do. */
static void summarize(const pipe *p, const pipe_layer_record *rec, int32_t n_rec, spqr_quantize_summary *s) {
    double fbits = 0, fbits_blocks = 0, err_sum[PIPE_KINDS + 1] = {0};
    int64_t params_blocks = 0;
    uint64_t bytes_blocks = 0;
    spqr_quantize_kind_summary *ks[PIPE_KINDS + 1];
    /* the family's kinds fill s->kinds[0 .. n_kinds) in slot order */
    const model_arch *a = p->src->hp.arch;
    spqr_quantize_kind_summary unused;
    for (int k = 0; k <= PIPE_KINDS; k++) {
        const int have = k == PIPE_HEAD_KIND || a->lin[k].name;
        ks[k] = k == PIPE_HEAD_KIND ? &s->head : have ? &s->kinds[s->n_kinds++] : &unused;
        snprintf(ks[k]->name, sizeof ks[k]->name, "%s", k == PIPE_HEAD_KIND ? "lm_head" : have ? a->lin[k].name : "");
        ks[k]->seconds = p->kind_seconds[k];
    }
    for (int32_t i = 0; i < n_rec; i++) {
        if (rec[i].rows == 0) continue;
        spqr_quantize_kind_summary *k = ks[rec[i].kind];
        const int64_t np = (int64_t)rec[i].rows * rec[i].cols;
        k->count++;
        k->params += np;
        k->outliers += rec[i].outliers;
        err_sum[rec[i].kind] += rec[i].rel_err;
        if (rec[i].rel_err > k->rel_err_max) k->rel_err_max = rec[i].rel_err;
        k->formula_bits += rec[i].formula_bits * np;
        k->stored_bits += 8.0 * rec[i].stored_bytes;
        s->quantized_params += np;
        s->quantized_bytes += rec[i].stored_bytes;
        fbits += rec[i].formula_bits * np;
        if (rec[i].kind != PIPE_HEAD_KIND) {
            params_blocks += np;
            bytes_blocks += rec[i].stored_bytes;
            fbits_blocks += rec[i].formula_bits * np;
        }
    }
    for (int k = 0; k <= PIPE_KINDS; k++) {
        if (!ks[k]->count) continue;
        ks[k]->rel_err_mean = err_sum[k] / ks[k]->count;
        ks[k]->formula_bits /= (double)ks[k]->params;
        ks[k]->stored_bits /= (double)ks[k]->params;
    }
    s->avg_bits_stored = s->quantized_params ? 8.0 * s->quantized_bytes / s->quantized_params : 0;
    s->avg_bits_formula = s->quantized_params ? fbits / s->quantized_params : 0;
    s->avg_bits_stored_blocks = params_blocks ? 8.0 * bytes_blocks / params_blocks : 0;
    s->avg_bits_formula_blocks = params_blocks ? fbits_blocks / params_blocks : 0;
}

/* X = the embeddings of the calibration windows (block 0's inputs). */
static spqr_status embed_windows(pipe *p, const int32_t *tok, const int64_t *starts, spqr_err *err) {
    spqr_status st = SPQR_OK;
    for (int32_t i = 0; i < p->N && !st; i++)
        for (int32_t t = 0; t < p->T && !st; t++)
            st = spqri_model_embed(p->src, tok[starts[i] + t], p->X + ((size_t)i * p->T + t) * p->Hd, err);
    return st;
}

/* --target-bits: pass 1 over the unquantized model (leaves X undefined),
 * then the budget of the allocated linears: B bits per model parameter
 * minus the bytes nothing allocates (--target-bits), or B bits per
 * quantized weight (--target-bits-linears); and the first allocation, which
 * refuses a budget outside what the grid can reach. */
static spqr_status plan_budget(pipe *p, const int32_t *tok, int64_t n_tok, const int64_t *starts, pipe_plan *pl,
                               spqr_err *err) {
    const spqr_model *m = p->src;
    const spqr_config *c = &m->cfg;
    const spqr_quantize_options *o = p->o;
    const int32_t n_items = c->n_layers * PIPE_KINDS + 2, head_item = c->n_layers * PIPE_KINDS,
                  embed_item = head_item + 1;
    spqr_status st = spqri_pipe_plan_init(pl, n_items, !o->target_linears, err);
    if (st) return st;
    p->plan = pl;
    if ((st = embed_windows(p, tok, starts, err))) return st;
    if ((st = spqri_pipe_plan_sens_init(pl, m, tok, starts, p->N, p->T, o->n_threads, err))) return st;
    /* the whole file: the embedding's table is one more item (its own table, not the head's) */
    spqr_tensor *embed_ref = NULL;
    if (pl->whole_file && o->quantize_embed && !p->shared_table &&
        (st = spqri_pipe_measure_embed(m, pl, embed_item, tok, starts, p->N, p->T, &o->params, o->n_threads, o->log,
                                       &embed_ref, err)))
        return st;
    for (int32_t l = 0; l < c->n_layers && !st; l++) st = measure_block(p, l, err);
    if (!st && o->quantize_head) st = measure_head(p, err);
    if (st) { spqr_tensor_free(embed_ref); return st; }
    spqri_pipe_plan_sens_finish(pl);
    /* what the metadata will hold, with numbers as long as real ones, for its size (kept in p->est) */
    pipe_layer_record *est = calloc((size_t)n_items, sizeof *est);
    if (!est) { spqr_tensor_free(embed_ref); return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); }
    int64_t lin_params = 0;
    int32_t median = 0; /* a setting whose label has the median length */
    for (int32_t s = 0; s < spqri_budget_grid_n; s++) {
        int32_t shorter = 0;
        for (int32_t t = 0; t < spqri_budget_grid_n; t++) shorter += strlen(spqri_budget_grid[t].label) < strlen(spqri_budget_grid[s].label);
        if (shorter <= spqri_budget_grid_n / 2) median = s;
    }
    for (int32_t i = 0; i < n_items; i++) {
        if (!pl->present[i]) continue;
        const spqr_linear *lin = i == embed_item ? &m->embed
                                 : i == head_item ? &m->lm_head
                                                  : &m->layers[i / PIPE_KINDS].lin[i % PIPE_KINDS];
        const int64_t np = (int64_t)lin->rows * lin->cols;
        if (i != embed_item) lin_params += np;
        /* numbers printed as long as typical ones: 17 significant digits, integers of their magnitude */
        est[i] = (pipe_layer_record){i >= head_item ? c->n_layers : i / PIPE_KINDS,
                                     i == embed_item ? PIPE_EMBED_KIND
                                     : i == head_item ? (p->shared_table ? PIPE_EMBED_KIND : PIPE_HEAD_KIND)
                                                      : i % PIPE_KINDS,
                                     lin->rows,
                                     lin->cols,
                                     0,
                                     0.0012345678901234567,
                                     3.625, /* formula bits are short binary fractions (w + 32/g ...) */
                                     3.0123456789012345,
                                     (uint64_t)np / 2,
                                     (uint64_t)np / 2 + 700,
                                     median};
    }
    const int64_t VH = (int64_t)c->vocab_size * c->hidden_size;
    const int64_t model_params = lin_params - (o->quantize_head ? VH : 0) + VH * (c->tie_word_embeddings ? 1 : 2) +
                                 (int64_t)m->n_norm_floats;
    p->est = est;
    p->n_tok = n_tok;
    /* the embedding counts at the size it is stored at: dense, none of its own when
     * the head's table is it, or allocated (its measured table's bytes taken out again) */
    if (pl->whole_file && p->rank == 0 &&
        !(st = spqri_pipe_fixed_file_bytes(m, p->ckdir, embed_ref, o->quantize_head, p->shared_table, 0, &p->fixed0,
                                           err)) &&
        embed_ref)
        p->fixed0 -= spqrf_packed_file_bytes(embed_ref, strlen(ARCH_EMBED_NAME));
    spqr_tensor_free(embed_ref);
    if (st) return st;
    if (pl->whole_file && (st = spqri_comm_bcast(p->comm, &p->fixed0, sizeof p->fixed0, 0, err))) return st;
    const double per = (double)(pl->whole_file ? model_params : lin_params);
    p->total_bits = o->target_bits * per;
    pl->budget = (uint64_t)p->total_bits;
    pl->slack = (uint64_t)(0.01 * per);
    if ((st = replan(p, err)) && st != SPQR_ERR_INVALID_ARG) return st;
    const double fixed = p->fixed_bits;
    double lo = fixed, hi = fixed;
    const size_t g = (size_t)spqri_budget_grid_n;
    for (int32_t i = 0; i < n_items; i++) {
        if (!pl->present[i]) continue;
        uint64_t mn = UINT64_MAX, mx = 0;
        for (size_t s = 0; s < g; s++) {
            const uint64_t cs = pl->cost[i * g + s];
            mn = cs < mn ? cs : mn;
            mx = cs > mx ? cs : mx;
        }
        lo += (double)mn, hi += (double)mx;
    }
    if (p->total_bits < lo || p->total_bits > hi) {
        char fx[96] = "";
        if (pl->whole_file) snprintf(fx, sizeof fx, " (the parts not quantized take %.3f)", fixed / per);
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG,
                            "target of %g bits per %s is outside what the settings can reach for this model: "
                            "%.3f to %.3f%s",
                            o->target_bits, pl->whole_file ? "model parameter (whole file)" : "quantized weight",
                            lo / per, hi / per, fx);
    }
    spqr_log(o->log, SPQR_LOG_INFO, "target %g bits: %llu bits for %lld quantized weights, %.0f fixed bytes",
             o->target_bits, (unsigned long long)pl->budget, (long long)lin_params, fixed / 8);
    return st;
}

/* Allocates what is left of the budget to the linears not quantized yet;
 * for the whole file, the budget is B x parameters minus the fixed bytes
 * and the metadata as it will be with the records so far. */
static spqr_status replan(pipe *p, spqr_err *err) {
    pipe_plan *pl = p->plan;
    if (pl->whole_file) {
        /* the records as final_metadata will get them (the embedding's last: an
         * item, or rows 0 when it is dense or the head's table) */
        pipe_layer_record *r = malloc((size_t)pl->n_items * sizeof *r);
        if (!r) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; i < pl->n_items; i++) r[i] = pl->present[i] && !pl->done[i] ? p->est[i] : p->rec[i];
        const int32_t head_item = pl->n_items - 2;
        if (p->shared_table && pl->present[head_item]) r[head_item].kind = PIPE_EMBED_KIND;
        char *meta = final_metadata(p->src, p->o, p->N, p->T, p->n_tok, 0xffffffffffffffffull, r, pl->n_items,
                                    10.0 / 3.0, 10.0 / 3.0);
        free(r);
        if (!meta) return spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory");
        const double fixed =
            8.0 * (double)(p->fixed0 - spqri_pipe_metadata_file_bytes(0) + spqri_pipe_metadata_file_bytes(strlen(meta)));
        free(meta);
        p->fixed_bits = fixed;
        pl->budget = p->total_bits > fixed ? (uint64_t)(p->total_bits - fixed) : 0;
    }
    return spqri_pipe_plan_update(pl, p->rec, err);
}

spqr_status spqr_model_quantize(const spqr_model *m, const int32_t *calib_tokens, int64_t n_tokens,
                                const spqr_quantize_options *opt, const char *out_path,
                                spqr_quantize_summary *summary, spqr_err *err) {
    spqr_status st = validate(m, calib_tokens, n_tokens, opt, out_path, err);
    if (st) return st;
    const spqr_config *c = &m->cfg;
    pipe p;
    memset(&p, 0, sizeof p);
    p.src = m;
    p.o = opt;
    p.t0 = spqr_now_s();
    p.N = opt->nsamples;
    p.T = opt->seqlen ? opt->seqlen : (c->max_position_embeddings < 2048 ? c->max_position_embeddings : 2048);
    p.Hd = c->hidden_size;
    p.serial = (spqr_comm){0, 1, NULL, NULL, NULL};
    p.comm = opt->comm && opt->comm->size > 1 ? opt->comm : &p.serial;
    p.rank = p.comm->rank;
    p.w0 = (int32_t)((int64_t)p.N * p.rank / p.comm->size);
    p.w1 = (int32_t)((int64_t)p.N * (p.rank + 1) / p.comm->size);
    p.n_steps = ((int64_t)STEPS_PER_BLOCK * c->n_layers + (opt->quantize_head ? HEAD_STEPS : 0)) *
                (opt->target_bits > 0 ? 2 : 1); /* --target-bits: a measurement pass first */
    /* every checkpoint path is ckdir/NAME with NAME < 256 bytes in a buffer of sizeof ckdir: refuse what
     * would be cut short (a truncated path names another directory) */
    const int ckn = opt->checkpoint_dir ? snprintf(p.ckdir, sizeof p.ckdir, "%s", opt->checkpoint_dir)
                                        : snprintf(p.ckdir, sizeof p.ckdir, "%s.partial", out_path);
    if (ckn < 0 || (size_t)ckn + 1 + 256 > sizeof p.ckdir)
        return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "checkpoint directory path too long (%d bytes; at most %zu)", ckn,
                            sizeof p.ckdir - 1 - 256);

    int64_t *starts = malloc((size_t)p.N * sizeof *starts);
    const size_t xn = (size_t)p.N * p.T * p.Hd;
    p.X = malloc(xn * sizeof(float));
    /* records: every block linear, then the head's (used with quantize_head) */
    const int32_t n_block_rec = c->n_layers * PIPE_KINDS;
    pipe_layer_record *rec = calloc((size_t)n_block_rec + 2, sizeof *rec); /* + head, embedding */
    pipe_plan plan;
    memset(&plan, 0, sizeof plan);
    p.rec = rec;
    p.mc = *m;
    /* + 1: the head's pseudo layer (quantize_head) */
    p.mc.layers = malloc(((size_t)c->n_layers + 1) * sizeof *p.mc.layers);
    char *meta = NULL;
    int lock_fd = -1;
    spqr_tensor *tensors[PIPE_KINDS] = {0}, *head = NULL, *embed = NULL;
    double embed_seconds = 0;
    float *Wdq[PIPE_KINDS] = {0}, *head_dq = NULL;
    if (!starts || !p.X || !rec || !p.mc.layers) {
        st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for %d x %d calibration activations (%.1f MB)", p.N, p.T,
                          xn * 4.0 / 1e6);
        goto done;
    }
    memcpy(p.mc.layers, m->layers, (size_t)c->n_layers * sizeof *p.mc.layers);
    p.mc.layers[c->n_layers] = m->layers[c->n_layers - 1];
    p.mc.layers[c->n_layers].attn_norm = m->final_norm; /* its q,k,v input = the LM head's input */
    if ((st = spqri_calib_sample_windows(n_tokens, p.N, p.T, opt->seed, starts, err))) goto done;
    /* Workers: a session each on a one-layer view, so a KV cache holds one
     * layer of one window; spqri_model_layer_forward(s, 0, ...) runs block l. */
    spqri_model_layer_view(&p.mview, &p.mc, p.mc.layers, 0);
    p.nw = opt->n_threads < p.w1 - p.w0 ? opt->n_threads : p.w1 - p.w0 > 0 ? p.w1 - p.w0 : 1;
    p.w = calloc((size_t)p.nw, sizeof *p.w);
    if (!p.w) { st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); goto done; }
    const int32_t maxcols = c->intermediate_size > c->hidden_size ? c->intermediate_size : c->hidden_size;
    const int32_t qdim = c->n_heads * c->head_dim;
    const int32_t wcols = maxcols > qdim ? maxcols : qdim;
    /* --target-bits' measurement pass keeps every group's input of a window (PIPE_TARGET_ALL) */
    size_t wfloats = (size_t)p.T * wcols, all = 0;
    for (int32_t g = 0; g < MODEL_N_GROUPS; g++) {
        const int k = group_first(m->hp.arch, g);
        p.gwidth[g] = k < PIPE_KINDS ? m->layers[0].lin[k].cols : 0;
        all += (size_t)p.T * p.gwidth[g];
    }
    if (opt->target_bits > 0 && all > wfloats) wfloats = all;
    for (int32_t j = 0; j < p.nw; j++) {
        p.w[j].p = &p;
        p.w[j].buf = malloc(wfloats * sizeof(float));
        if (!p.w[j].buf) { st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory for calibration buffers"); goto done; }
        if ((st = spqr_session_create(&p.mview, p.T, 1, &p.w[j].sess, err))) goto done;
    }
    /* rank 0 alone touches the checkpoint dir and the output */
    if (p.rank == 0) {
        if ((st = ensure_dir(p.ckdir, err))) goto done;
        if ((st = spqr_dir_lock(p.ckdir, &lock_fd, err))) goto done;
        /* Under the lock no other run writes here: leftovers of a killed run
         * (checkpoint and output temporaries, GBs of activations) can go. */
        spqri_pipe_ckpt_remove_stale(p.ckdir);
        spqr_atomic_remove_stale(out_path);
        if ((st = check_disk_space(m, opt, out_path, p.ckdir, (uint64_t)xn * sizeof(float), err))) goto done;
    }
    const uint64_t hash = run_hash(m, calib_tokens, n_tokens, opt, p.N, p.T);
    /* Tied, head and embedding quantized: the calibrated head is the one table. */
    const int shared_table = c->tie_word_embeddings && opt->quantize_head && opt->quantize_embed && !opt->tied_two_tables;
    p.shared_table = shared_table;
    /* --target-bits: measured again on --resume (deterministic), never checkpointed */
    if (opt->target_bits > 0 && (st = plan_budget(&p, calib_tokens, n_tokens, starts, &plan, err))) goto done;
    /* the embedding, when allocated, at its setting first (no calibration: the same
     * table as after the blocks), so the linears get what it left */
    if (p.plan && plan.present[n_block_rec + 1]) {
        const int32_t s = plan.choice[n_block_rec + 1];
        spqr_quant_params q;
        spqri_budget_setting_apply(&spqri_budget_grid[s], &opt->params, &q);
        st = spqri_pipe_quantize_embed(m, &q, opt->n_threads, opt->log, &embed, rec + n_block_rec + 1, &embed_seconds,
                                       err);
        if (st) goto done;
        rec[n_block_rec + 1].setting = s;
        plan.done[n_block_rec + 1] = 1;
    }
    const int64_t measured_steps = p.step;

    /* --resume: the longest prefix of valid block checkpoints whose last
     * block also left its outputs; otherwise start over. */
    int32_t first = 0;
    if (opt->resume && p.rank == 0) {
        int32_t k = 0;
        while (k < c->n_layers && spqri_pipe_ckpt_block_ok(p.ckdir, hash, k, m->hp.arch, rec + (size_t)k * PIPE_KINDS)) k++;
        while (k > 0 && !spqri_pipe_ckpt_load_inputs(p.ckdir, hash, k - 1, p.X, (int64_t)p.N * p.T, p.Hd)) k--;
        first = k;
        spqr_log(opt->log, SPQR_LOG_INFO, "resume: %d of %d blocks restored from %s", first, c->n_layers, p.ckdir);
    } else if (p.rank == 0) {
        spqri_pipe_ckpt_remove_all(p.ckdir, c->n_layers);
    }
    /* scale-out: rank 0's restored blocks, their records and outputs to every rank */
    if (opt->resume && (st = spqri_comm_bcast(p.comm, &first, sizeof first, 0, err))) goto done;
    if (first > 0 && (st = spqri_comm_bcast(p.comm, rec, (size_t)first * PIPE_KINDS * sizeof *rec, 0, err))) goto done;
    if (first > 0 && (st = spqri_comm_bcast(p.comm, p.X, xn * sizeof(float), 0, err))) goto done;
    p.skipped = (int64_t)STEPS_PER_BLOCK * first;
    p.step = measured_steps + p.skipped;
    for (int32_t i = 0; p.plan && i < first * PIPE_KINDS; i++) plan.done[i] = plan.present[i];
    if (first == 0) st = embed_windows(&p, calib_tokens, starts, err); /* block 0 inputs */
    if (st) goto done;

    for (int32_t l = first; l < c->n_layers; l++) {
        if (cancelled(&p)) { st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted"); break; }
        pipe_layer_record *r = rec + (size_t)l * PIPE_KINDS;
        if ((st = quantize_block(&p, l, tensors, Wdq, r, err))) break;
        if (p.rank == 0 && (st = spqri_pipe_ckpt_write_block(p.ckdir, hash, l, m->hp.arch, tensors, r, err))) break;
        if (p.rank == 0 && (st = spqri_pipe_ckpt_write_inputs(p.ckdir, hash, l, p.X, (int64_t)p.N * p.T, p.Hd, err)))
            break;
        p.mc.layers[l] = m->layers[l]; /* Wdq is about to be freed */
        for (int k = 0; k < PIPE_KINDS; k++) {
            spqr_tensor_free(tensors[k]);
            tensors[k] = NULL;
            free(Wdq[k]);
            Wdq[k] = NULL;
        }
    }
    /* The head is not checkpointed: a resumed run recomputes it from the
     * last block's checkpointed outputs, which gives the same tensor. */
    if (!st && opt->quantize_head) st = quantize_head(&p, &head, &head_dq, rec + n_block_rec, err);
    if (!st && opt->quantize_embed && !shared_table && !embed && cancelled(&p))
        st = spqr_err_set(err, SPQR_ERR_INTERRUPTED, "interrupted");
    /* scale-out: the rest (the embedding, the file) is rank 0's */
    if (!st && p.rank != 0) {
        if (summary) memset(summary, 0, sizeof *summary);
        goto done;
    }
    if (!st && opt->quantize_embed && !shared_table && !embed)
        st = spqri_pipe_quantize_embed(m, &opt->params, opt->n_threads, opt->log, &embed, rec + n_block_rec + 1,
                                 &embed_seconds, err);
    if (st == SPQR_ERR_INTERRUPTED)
        spqr_err_set(err, st, "interrupted; finished blocks are checkpointed in %s (use --resume)", p.ckdir);
    if (st) goto done;

    spqr_quantize_summary sm;
    memset(&sm, 0, sizeof sm);
    const int32_t n_rec = n_block_rec + (opt->quantize_head ? 1 : 0);
    summarize(&p, rec, n_rec, &sm);
    spqri_pipe_summarize_embed(&rec[n_block_rec + 1], embed_seconds, &sm);
    if (shared_table) rec[n_block_rec].kind = PIPE_EMBED_KIND; /* stored under the embedding's name */
    meta = final_metadata(m, opt, p.N, p.T, n_tokens, spqri_calib_hash(CALIB_HASH_INIT, calib_tokens, (size_t)n_tokens * 4),
                          rec, n_block_rec + 2, sm.avg_bits_stored, sm.avg_bits_formula);
    if (!meta) { st = spqr_err_set(err, SPQR_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = spqri_pipe_write_model(m, p.ckdir, hash, meta, head, shared_table ? head : embed, out_path, err))) goto done;
    if (p.plan) {
        uint64_t spent = 0;
        for (int32_t i = 0; i < plan.n_items; i++)
            if (plan.present[i]) spent += spqri_pipe_plan_realized(&plan, &rec[i]);
        spqr_log(opt->log, SPQR_LOG_INFO, "target: %llu of %llu bits allocated; metadata %zu bytes; fixed %.0f bytes",
                 (unsigned long long)spent, (unsigned long long)plan.budget, strlen(meta), p.fixed_bits / 8);
    }
    spqri_pipe_ckpt_remove_all(p.ckdir, c->n_layers);
    spqr_dir_unlock(p.ckdir, lock_fd, 1);
    lock_fd = -1;
    spqri_pipe_ckpt_rmdir(p.ckdir);
    if (summary) {
        sm.resumed_blocks = first;
        sm.seqlen = p.T;
        sm.nsamples = p.N;
        sm.calib_tokens = n_tokens;
        struct stat sb;
        sm.file_bytes = stat(out_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        spqri_pipe_summarize_dense(m, opt, &sm);
        sm.seconds = spqr_now_s() - p.t0;
        *summary = sm;
    }

done:
    if (lock_fd >= 0) {
        /* A failed run that checkpointed nothing leaves no directory behind. */
        const int empty = !spqri_pipe_ckpt_any(p.ckdir, c->n_layers);
        spqr_dir_unlock(p.ckdir, lock_fd, empty);
        if (empty) spqri_pipe_ckpt_rmdir(p.ckdir);
    }
    for (int k = 0; k < PIPE_KINDS; k++) {
        spqr_tensor_free(tensors[k]);
        free(Wdq[k]);
    }
    spqr_tensor_free(head);
    spqr_tensor_free(embed);
    free(head_dq);
    for (int32_t j = 0; p.w && j < p.nw; j++) {
        spqr_session_free(p.w[j].sess);
        free(p.w[j].buf);
    }
    free(p.w);
    free(p.mc.layers);
    free(p.Hm);
    free(p.X);
    free(rec);
    free(starts);
    free(meta);
    spqri_pipe_plan_free(&plan);
    free(p.est);
    return st;
}
