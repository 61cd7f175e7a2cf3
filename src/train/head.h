/* The classification head of face recognition training: class centres, margin-based softmax
 * losses and Partial FC, sharded over the ranks of a data-parallel run.
 *
 * With features x_i (L2-normalised by the network for every loss but plain softmax) and
 * centres w_c (normalised here), cos θ_ic = x_i . w_c / |w_c|, and the logits are
 *   softmax      z_ic = x_i . w_c                      (nothing normalised, no scale)
 *   others       z_ic = s cos θ_ic for c != y_i,  z_iy = s ψ(cos θ_iy)
 * with the combined margin ψ = cos(m1 θ + m2) - m3 (InsightFace's CombinedMarginLoss):
 *   NormFace     m1 = 1, m2 = 0, m3 = 0
 *   SphereFace   m1 > 1: θ = acos(cos), φ = m1 θ + m2, k = floor(φ / π), and SphereFace's
 *                monotonic extension ψ = (-1)^k cos φ - 2k - m3 (Liu et al. 2017, eq. 6),
 *                which is cos φ - m3 while φ < π
 *   CosFace      ψ = cos θ - m3
 *   ArcFace      m1 = 1, m2 > 0: cos(θ + m2) = cos θ cos m2 - sin θ sin m2 with
 *                sin θ = sqrt(max(1 - cos^2, 1e-12)); where θ + m2 > π (cos θ < cos(π - m2))
 *                the fallback cos θ - m2 sin(m2) keeps ψ decreasing, exactly as
 *                deepinsight/insightface recognition/arcface_torch/losses.py (class ArcFace,
 *                commit eca1d9a: th = cos(π - m), mm = sin(π - m) m); with easy_margin the
 *                margin applies only where cos θ > 0. Then - m3.
 * Every cos is clamped to [-1, 1] first (gradient passes inside). The loss is the mean over
 * the global batch of the cross-entropy of z. Defaults (ArcFace paper, Table 2): s = 64,
 * SphereFace m1 = 1.35, CosFace m3 = 0.35, ArcFace m2 = 0.5.
 *
 * Partial FC (An et al. 2021; arcface_torch/partial_fc.py): each step keeps the centres of
 * every class present in the global batch plus a random share of the others, so that
 * max(positives, round(sample_rate * classes)) centres take part; only those rows are
 * normalised, multiplied, differentiated and updated. The random keys are counter-based
 * (seed, step, class), so the chosen set does not depend on how the classes are sharded:
 * one process and N processes sample the same classes.
 *
 * Sharding (data-parallel): rank r holds the centres of classes [c0, c0 + n_local). The
 * features of the whole global batch are gathered on every rank, each computes its logit
 * columns, the softmax denominators are combined by an allreduce of the row maxima and of the
 * sums of exponentials, the feature gradients by an allreduce sum. */
#ifndef MIEN_TRAIN_HEAD_H
#define MIEN_TRAIN_HEAD_H

#include "train/train.h"

typedef enum tr_loss_kind {
    TR_LOSS_SOFTMAX = 0,
    TR_LOSS_NORMFACE,
    TR_LOSS_SPHEREFACE,
    TR_LOSS_COSFACE,
    TR_LOSS_ARCFACE,
    TR_LOSS_COMBINED,
} tr_loss_kind;

typedef struct tr_margin {
    tr_loss_kind kind;
    float s;                 /* scale of the normalised logits */
    float m1, m2, m3;        /* cos(m1 θ + m2) - m3 */
    int easy_margin;         /* ArcFace: margin only where cos θ > 0 */
} tr_margin;

/* Defaults of each loss (see above). */
void tr_margin_default(tr_margin *m, tr_loss_kind kind);
int tr_loss_from_name(const char *name, tr_loss_kind *kind);
const char *tr_loss_name(tr_loss_kind kind);
/* 1 if the loss works on normalised features (every loss but softmax). */
int tr_loss_normalized(tr_loss_kind kind);

/* ψ(cos) of the target logit (before the scale s) and dψ/dcos in *dpsi. */
double tr_margin_psi(const tr_margin *m, double cos, double *dpsi);

typedef struct tr_head {
    tr_margin margin;
    int dim;
    int64_t n_classes;       /* over all ranks */
    int64_t c0, n_local;     /* this rank's classes: c0 .. c0 + n_local - 1 */
    float *w;                /* (n_local, dim) class centres, one row each */
    float *m, *v;            /* (n_local, dim) optimizer state of the centres */
    float sample_rate;       /* share of the classes per step (1: all) */
    uint64_t seed;
    /* Per step. */
    int64_t n_sel;           /* centres of this shard taking part */
    int64_t *sel;            /* (n_local) their local indices, ascending */
    float *wn;               /* (n_sel, dim) normalised centres */
    float *wnorm;            /* (n_sel) their norms */
    float *logits;           /* (B_global, n_sel) */
    float *dw;               /* (n_sel, dim) gradient for the raw centres w[sel[j]] */
    float *xg, *dxg;         /* (B_global, dim) gathered features and their gradient */
    int *lab;                /* (B_global) gathered labels */
    int *col;                /* (B_global) column of the label among sel, -1 elsewhere */
    double *key;             /* (n_classes) sampling keys (sample_rate < 1) */
    double *order;           /* (n_classes) selection scratch */
    int64_t cap_sel;         /* rows allocated for wn/dw */
    int batch;               /* global batch the buffers are sized for */
    size_t step_bytes;       /* bytes of the per-step buffers at the last step */
    struct tr_kern *kern;    /* borrowed: the products on these kernels (train/kern.h); NULL:
                              * OpenBLAS */
} tr_head;

/* Centres initialised N(0, 0.01) from (seed, class), the same on any sharding; classes are
 * split over comm's ranks in contiguous blocks. */
int tr_head_init(tr_head *h, const tr_margin *m, int64_t n_classes, int dim, float sample_rate,
                 uint64_t seed, const tr_comm *comm, mien_err *e);
void tr_head_free(tr_head *h);

/* One training step of the head: x (B, dim) this rank's features, labels (B) class ids
 * (0 .. n_classes-1), the same B on every rank. Writes dx (B, dim) = dL/dx for L the mean
 * loss over the global batch, h->dw for the sampled centres, and the global mean loss and
 * training accuracy (target cos the largest among the sampled classes). */
int tr_head_step(tr_head *h, const tr_comm *comm, int64_t step, const float *x,
                 const int *labels, int B, float *dx, double *loss, double *acc, mien_err *e);
/* Optimizer update of the sampled centres (their momentum / moments only). */
int tr_head_update(tr_head *h, const tr_optim *o, mien_err *e);

/* Loss and gradients on a dense problem (one process, every class): for the PyTorch checks.
 * x (B, D), w (C, D), labels (B); dx (B, D), dw (C, D) may be NULL. */
int tr_margin_loss(const tr_margin *m, const float *x, const float *w, const int *labels, int B,
                   int C, int D, double *loss, float *dx, float *dw, mien_err *e);

#endif
