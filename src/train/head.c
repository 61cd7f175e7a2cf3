/* Margin-based softmax losses over sharded, sampled class centres (see head.h). */
#include "train/head.h"

#include "train/kern.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Margins ==== */

static const struct {
    const char *name;
    tr_loss_kind kind;
} loss_names[] = {
    {"softmax", TR_LOSS_SOFTMAX},       {"normface", TR_LOSS_NORMFACE},
    {"sphereface", TR_LOSS_SPHEREFACE}, {"cosface", TR_LOSS_COSFACE},
    {"arcface", TR_LOSS_ARCFACE},       {"combined", TR_LOSS_COMBINED},
};

int tr_loss_from_name(const char *name, tr_loss_kind *kind) {
    for (size_t i = 0; i < sizeof loss_names / sizeof loss_names[0]; i++)
        if (!strcmp(name, loss_names[i].name)) {
            *kind = loss_names[i].kind;
            return 1;
        }
    return 0;
}

const char *tr_loss_name(tr_loss_kind kind) {
    for (size_t i = 0; i < sizeof loss_names / sizeof loss_names[0]; i++)
        if (loss_names[i].kind == kind) return loss_names[i].name;
    return "?";
}

int tr_loss_normalized(tr_loss_kind kind) { return kind != TR_LOSS_SOFTMAX; }

void tr_margin_default(tr_margin *m, tr_loss_kind kind) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->s = kind == TR_LOSS_SOFTMAX ? 1.f : 64.f;
    m->m1 = 1.f;
    switch (kind) {
    case TR_LOSS_SPHEREFACE: m->m1 = 1.35f; break;
    case TR_LOSS_COSFACE: m->m3 = 0.35f; break;
    case TR_LOSS_ARCFACE: m->m2 = 0.5f; break;
    case TR_LOSS_COMBINED: m->m1 = 1.f; m->m2 = 0.3f; m->m3 = 0.2f; break; /* InsightFace's CM1 */
    default: break;
    }
}

double tr_margin_psi(const tr_margin *m, double c, double *dpsi) {
    if (m->kind == TR_LOSS_SOFTMAX) {
        *dpsi = 1;
        return c;
    }
    if (m->m1 == 1.f) {
        if (m->m2 == 0.f) {
            *dpsi = 1;
            return c - m->m3;
        }
        const double m2 = m->m2, cm = cos(m2), sm = sin(m2);
        double sn = sqrt(fmax(1.0 - c * c, 1e-12));
        int use = m->easy_margin ? c > 0 : c > cos(M_PI - m2);
        if (use) {
            *dpsi = cm + sm * c / sn;
            return c * cm - sn * sm - m->m3;
        }
        *dpsi = 1;
        return m->easy_margin ? c - m->m3 : c - sin(M_PI - m2) * m2 - m->m3;
    }
    const double lim = 1.0 - 1e-7;
    double cc = c < -lim ? -lim : c > lim ? lim : c;
    double th = acos(cc), phi = m->m1 * th + m->m2;
    double k = floor(phi / M_PI), sign = fmod(k, 2.0) == 0 ? 1.0 : -1.0;
    *dpsi = (c < -lim || c > lim) ? 0 : sign * sin(phi) * m->m1 / sqrt(1.0 - cc * cc);
    return sign * cos(phi) - 2.0 * k - m->m3;
}

/* ==== Head ==== */

/* C (M, N) = op(A) op(B), row-major, on the head's kernels or OpenBLAS. */
static int head_gemm(const tr_head *h, int ta, int tb, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, float *C, int ldc) {
    if (h->kern) return tr_gemm(h->kern, ta, tb, M, N, K, A, lda, B, ldb, 0, C, ldc);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                1.f, A, lda, B, ldb, 0.f, C, ldc);
    return MIEN_OK;
}

void tr_head_free(tr_head *h) {
    if (!h) return;
    free(h->w);
    free(h->m);
    free(h->v);
    free(h->sel);
    free(h->wn);
    free(h->wnorm);
    free(h->logits);
    free(h->dw);
    free(h->xg);
    free(h->dxg);
    free(h->lab);
    free(h->col);
    free(h->key);
    free(h->order);
    memset(h, 0, sizeof *h);
}

int tr_head_init(tr_head *h, const tr_margin *m, int64_t n_classes, int dim, float sample_rate,
                 uint64_t seed, const tr_comm *comm, mien_err *e) {
    memset(h, 0, sizeof *h);
    if (n_classes < 1 || dim < 1 || !(sample_rate > 0) || sample_rate > 1)
        return mien_err_set(e, MIEN_EINVAL, "head: bad classes, dim or sample rate");
    h->margin = *m;
    h->dim = dim;
    h->n_classes = n_classes;
    h->c0 = n_classes * comm->rank / comm->size;
    h->n_local = n_classes * (comm->rank + 1) / comm->size - h->c0;
    h->sample_rate = sample_rate;
    h->seed = seed;
    size_t rows = (size_t)(h->n_local ? h->n_local : 1);
    h->w = malloc(rows * (size_t)dim * sizeof *h->w);
    h->sel = malloc(rows * sizeof *h->sel);
    if (sample_rate < 1) {
        h->key = malloc((size_t)n_classes * sizeof *h->key);
        h->order = malloc((size_t)n_classes * sizeof *h->order);
    }
    if (!h->w || !h->sel || (sample_rate < 1 && (!h->key || !h->order))) {
        tr_head_free(h);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory (class centres)");
    }
    for (int64_t r = 0; r < h->n_local; r++)
        for (int k = 0; k < dim; k++)
            h->w[r * dim + k] = (float)(0.01 * tr_normal(seed ^ 0xc1a55ULL, (uint64_t)(h->c0 + r),
                                                         (uint64_t)k));
    return MIEN_OK;
}

/* Grow the per-step buffers to a global batch of Bg rows and S sampled centres. */
static int head_reserve(tr_head *h, int Bg, int64_t S) {
    const size_t D = (size_t)h->dim;
    if (Bg > h->batch) {
        free(h->xg);
        free(h->dxg);
        free(h->lab);
        free(h->col);
        h->xg = malloc((size_t)Bg * D * sizeof(float));
        h->dxg = malloc((size_t)Bg * D * sizeof(float));
        h->lab = malloc((size_t)Bg * sizeof(int));
        h->col = malloc((size_t)Bg * sizeof(int));
        if (!h->xg || !h->dxg || !h->lab || !h->col) return 0;
        h->batch = Bg;
        free(h->logits);
        h->logits = NULL;
        h->cap_sel = 0;
    }
    if (S > h->cap_sel || !h->logits) {
        int64_t cap = S > 0 ? S : 1;
        free(h->wn);
        free(h->dw);
        free(h->wnorm);
        free(h->logits);
        h->wn = malloc((size_t)cap * D * sizeof(float));
        h->dw = malloc((size_t)cap * D * sizeof(float));
        h->wnorm = malloc((size_t)cap * sizeof(float));
        h->logits = malloc((size_t)cap * (size_t)h->batch * sizeof(float));
        if (!h->wn || !h->dw || !h->wnorm || !h->logits) return 0;
        h->cap_sel = cap;
    }
    return 1;
}

static void swap_d(double *a, double *b) {
    double t = *a;
    *a = *b;
    *b = t;
}

/* The k-th largest (1-based) of v[0..n-1], reordering v (Hoare's quickselect). */
static double kth_largest(double *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) swap_d(&v[i++], &v[j--]);
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return v[want];
}

/* Choose the centres of this step (see head.h): positives always, then the largest random
 * keys up to max(positives, round(rate * classes)) in all. */
static void head_sample(tr_head *h, int64_t step, int Bg) {
    if (h->sample_rate >= 1) {
        for (int64_t r = 0; r < h->n_local; r++) h->sel[r] = r;
        h->n_sel = h->n_local;
        return;
    }
    double *key = h->key, *tmp = h->order;
    for (int64_t c = 0; c < h->n_classes; c++)
        key[c] = tr_uniform(h->seed ^ 0x5a3b1e5ULL, (uint64_t)step, (uint64_t)c);
    int64_t pos = 0;
    for (int i = 0; i < Bg; i++)
        if (key[h->lab[i]] < 2.0) {
            key[h->lab[i]] = 2.0;
            pos++;
        }
    int64_t k = (int64_t)llround((double)h->sample_rate * (double)h->n_classes);
    if (k < pos) k = pos;
    if (k > h->n_classes) k = h->n_classes;
    memcpy(tmp, key, (size_t)h->n_classes * sizeof *tmp);
    double thr = k > 0 ? kth_largest(tmp, h->n_classes, k) : 3.0;
    h->n_sel = 0;
    for (int64_t r = 0; r < h->n_local; r++)
        if (key[h->c0 + r] >= thr) h->sel[h->n_sel++] = r;
}

static int find_sel(const tr_head *h, int64_t local) {
    int64_t lo = 0, hi = h->n_sel - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (h->sel[mid] == local) return (int)mid;
        if (h->sel[mid] < local) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int tr_head_step(tr_head *h, const tr_comm *comm, int64_t step, const float *x,
                 const int *labels, int B, float *dx, double *loss, double *acc, mien_err *e) {
    const int D = h->dim, Bg = B * comm->size;
    const int norm = tr_loss_normalized(h->margin.kind);
    const float s = norm ? h->margin.s : 1.f;
    if (!head_reserve(h, Bg, h->n_local))
        return mien_err_set(e, MIEN_ENOMEM, "out of memory (head)");
    for (int i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= h->n_classes)
            return mien_err_set(e, MIEN_EINVAL, "head: label %d out of range", labels[i]);
    int rc = comm->gather_all(comm->ctx, x, h->xg, (int64_t)B * D * (int64_t)sizeof(float));
    if (!rc) rc = comm->gather_all(comm->ctx, labels, h->lab, (int64_t)B * (int64_t)sizeof(int));
    if (rc) return mien_err_set(e, MIEN_EINTERNAL, "head: gathering the batch failed");

    head_sample(h, step, Bg);
    const int64_t S = h->n_sel;
    for (int i = 0; i < Bg; i++) {
        int64_t local = h->lab[i] - h->c0;
        h->col[i] = local >= 0 && local < h->n_local ? find_sel(h, local) : -1;
    }
    /* Sampled centres, normalised for the margin losses. */
    for (int64_t j = 0; j < S; j++) {
        const float *wr = h->w + h->sel[j] * D;
        float *o = h->wn + j * D;
        double ss = 0;
        for (int k = 0; k < D; k++) ss += (double)wr[k] * wr[k];
        float nrm = norm ? (float)fmax(sqrt(ss), 1e-12) : 1.f;
        h->wnorm[j] = nrm;
        for (int k = 0; k < D; k++) o[k] = wr[k] / nrm;
    }
    float *z = h->logits;
    if (S > 0 && head_gemm(h, 0, 1, Bg, (int)S, D, h->xg, D, h->wn, D, z, (int)S))
        return mien_err_set(e, MIEN_ENOMEM, "out of memory (head)");

    /* Margin on the target, scale; row maxima with and without the margin. */
    float *rowmax = malloc((size_t)Bg * 5 * sizeof *rowmax);
    double *red = calloc(2, sizeof *red);
    if (!rowmax || !red) {
        free(rowmax);
        free(red);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory (head)");
    }
    /* (Bg) each: row maxima with and without the margin (contiguous: one allreduce), sums of
     * exponentials, dψ/dcos of the target, the target logit without the margin. */
    float *plainmax = rowmax + Bg, *rowsum = rowmax + 2 * Bg, *dpsi = rowmax + 3 * Bg;
    float *tplain = rowmax + 4 * Bg;
    for (int i = 0; i < Bg; i++) {
        float *zi = z + (int64_t)i * S, mx = -FLT_MAX, pmx = -FLT_MAX;
        for (int64_t j = 0; j < S; j++) {
            float v = zi[j];
            if (norm) v = s * (v < -1.f ? -1.f : v > 1.f ? 1.f : v);
            zi[j] = v;
            pmx = v > pmx ? v : pmx;
        }
        dpsi[i] = 1.f;
        tplain[i] = h->col[i] >= 0 ? zi[h->col[i]] : 0.f;
        if (norm && h->col[i] >= 0) {
            double d, c = zi[h->col[i]] / s;
            zi[h->col[i]] = (float)(s * tr_margin_psi(&h->margin, c, &d));
            dpsi[i] = (float)d;
        }
        for (int64_t j = 0; j < S; j++) mx = zi[j] > mx ? zi[j] : mx;
        rowmax[i] = mx;
        plainmax[i] = pmx;
    }
    rc = comm->max_f(comm->ctx, rowmax, 2 * (int64_t)Bg);
    if (rc) goto fail;
    for (int i = 0; i < Bg; i++) {
        const float *zi = z + (int64_t)i * S;
        double sum = 0;
        for (int64_t j = 0; j < S; j++) sum += exp((double)zi[j] - rowmax[i]);
        rowsum[i] = (float)sum;
    }
    rc = comm->sum_f(comm->ctx, rowsum, Bg);
    if (rc) goto fail;
    /* Loss and accuracy from the ranks owning each target; gradients of the logits. */
    for (int i = 0; i < Bg; i++) {
        float *zi = z + (int64_t)i * S;
        const int t = h->col[i];
        if (t >= 0) {
            red[0] += log((double)rowsum[i]) + rowmax[i] - zi[t];
            /* Correct when the target beats every class without the margin. */
            if (tplain[i] >= plainmax[i]) red[1] += 1;
        }
        const float inv = 1.f / (float)Bg;
        for (int64_t j = 0; j < S; j++) {
            float p = (float)(exp((double)zi[j] - rowmax[i]) / rowsum[i]);
            float g = (p - (j == t ? 1.f : 0.f)) * inv;
            zi[j] = g * s * (j == t ? dpsi[i] : 1.f);
        }
    }
    rc = comm->sum_d(comm->ctx, red, 2);
    if (rc) goto fail;
    *loss = red[0] / Bg;
    *acc = red[1] / Bg;
    /* Feature gradient: every rank's share of the centres, summed. */
    if (S > 0) {
        if (head_gemm(h, 0, 0, Bg, D, (int)S, z, (int)S, h->wn, D, h->dxg, D)) goto oom;
    } else {
        memset(h->dxg, 0, (size_t)Bg * D * sizeof(float));
    }
    rc = comm->sum_f(comm->ctx, h->dxg, (int64_t)Bg * D);
    if (rc) goto fail;
    if (dx) memcpy(dx, h->dxg + (int64_t)comm->rank * B * D, (size_t)B * D * sizeof(float));
    /* Centre gradient, through the normalisation: (g - w^ (w^ . g)) / |w|. */
    if (S > 0) {
        if (head_gemm(h, 1, 0, (int)S, D, Bg, z, (int)S, h->xg, D, h->dw, D)) goto oom;
        if (norm)
            for (int64_t j = 0; j < S; j++) {
                float *g = h->dw + j * D;
                const float *wn = h->wn + j * D;
                double dot = 0;
                for (int k = 0; k < D; k++) dot += (double)wn[k] * g[k];
                for (int k = 0; k < D; k++) g[k] = (g[k] - wn[k] * (float)dot) / h->wnorm[j];
            }
    }
    h->step_bytes = ((size_t)Bg * (size_t)S + 2 * (size_t)S * D + (size_t)S +
                     2 * (size_t)Bg * D + 4 * (size_t)Bg) * sizeof(float) +
                    (size_t)h->n_local * sizeof(int64_t) +
                    (h->key ? 2 * (size_t)h->n_classes * sizeof(double) : 0);
    free(rowmax);
    free(red);
    return MIEN_OK;
fail:
    free(rowmax);
    free(red);
    return mien_err_set(e, MIEN_EINTERNAL, "head: collective failed");
oom:
    free(rowmax);
    free(red);
    return mien_err_set(e, MIEN_ENOMEM, "out of memory (head)");
}

int tr_head_update(tr_head *h, const tr_optim *o, mien_err *e) {
    const size_t rows = (size_t)(h->n_local ? h->n_local : 1) * (size_t)h->dim;
    if (!h->m) h->m = calloc(rows, sizeof(float));
    if (o->kind == TR_ADAMW && !h->v) h->v = calloc(rows, sizeof(float));
    if (!h->m || (o->kind == TR_ADAMW && !h->v))
        return mien_err_set(e, MIEN_ENOMEM, "out of memory (optimizer state)");
    for (int64_t j = 0; j < h->n_sel; j++) {
        int64_t r = h->sel[j] * h->dim;
        tr_optim_update(o, h->w + r, h->dw + j * h->dim, h->m + r, h->v ? h->v + r : NULL, h->dim, 1);
    }
    return MIEN_OK;
}

int tr_margin_loss(const tr_margin *m, const float *x, const float *w, const int *labels, int B,
                   int C, int D, double *loss, float *dx, float *dw, mien_err *e) {
    tr_head h;
    int rc = tr_head_init(&h, m, C, D, 1.f, 0, tr_comm_single(), e);
    if (rc) return rc;
    memcpy(h.w, w, (size_t)C * D * sizeof(float));
    double acc;
    float *gx = malloc((size_t)B * D * sizeof *gx);
    if (!gx) {
        tr_head_free(&h);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    rc = tr_head_step(&h, tr_comm_single(), 0, x, labels, B, gx, loss, &acc, e);
    if (!rc && dx) memcpy(dx, gx, (size_t)B * D * sizeof(float));
    if (!rc && dw) memcpy(dw, h.dw, (size_t)C * D * sizeof(float));
    free(gx);
    tr_head_free(&h);
    return rc;
}
