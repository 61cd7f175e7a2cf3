/* Optimizers (SGD with momentum, AdamW), learning-rate schedules and the counter-based random
 * numbers of the trainer. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Optimizers ==== */

void tr_optim_default(tr_optim *o, tr_opt_kind kind) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = kind == TR_SGD ? 0.1f : 1e-3f;
    o->momentum = 0.9f;
    o->weight_decay = kind == TR_SGD ? 5e-4f : 0.05f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
}

void tr_optim_tick(tr_optim *o) { o->t++; }

void tr_optim_update(const tr_optim *o, float *w, const float *g, float *m, float *v, int64_t n,
                     int decay) {
    const float lr = o->lr, wd = decay ? o->weight_decay : 0.f;
    if (o->kind == TR_SGD) {
        /* torch.optim.SGD: d = g + wd w; buf = momentum buf + d (the first step's buffer is
         * d itself, which is the same as momentum * 0 + d); w -= lr buf. */
        const float mom = o->momentum;
        for (int64_t i = 0; i < n; i++) {
            float d = g[i] + wd * w[i];
            m[i] = mom * m[i] + d;
            w[i] -= lr * m[i];
        }
        return;
    }
    /* torch.optim.AdamW: w *= 1 - lr wd; m, v moments; bias-corrected step
     * lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
    const float b1 = o->beta1, b2 = o->beta2;
    const double t = (double)(o->t > 0 ? o->t : 1);
    const float bc1 = (float)(1.0 - pow(b1, t)), bc2s = (float)sqrt(1.0 - pow(b2, t));
    const float step = lr / bc1;
    for (int64_t i = 0; i < n; i++) {
        w[i] *= 1.f - lr * wd;
        m[i] = b1 * m[i] + (1.f - b1) * g[i];
        v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
        w[i] -= step * m[i] / (sqrtf(v[i]) / bc2s + o->eps);
    }
}

int tr_optim_step_net(const tr_optim *o, tr_net *net, mien_err *e) {
    for (int i = 0; i < net->n_p; i++) {
        tr_param *p = &net->p[i];
        if (!p->m) p->m = calloc((size_t)p->n, sizeof(float));
        if (o->kind == TR_ADAMW && !p->v) p->v = calloc((size_t)p->n, sizeof(float));
        if (!p->m || (o->kind == TR_ADAMW && !p->v))
            return mien_err_set(e, MIEN_ENOMEM, "out of memory (optimizer state)");
        tr_optim_update(o, p->w, p->g, p->m, p->v, p->n, p->decay);
    }
    return MIEN_OK;
}

/* ==== Schedules ==== */

float tr_sched_lr(const tr_sched *s, int64_t step) {
    if (s->warmup > 0 && step < s->warmup)
        return s->base_lr * (float)(step + 1) / (float)s->warmup;
    switch (s->kind) {
    case TR_SCHED_COSINE: {
        int64_t span = s->total - s->warmup;
        if (span <= 0) return s->base_lr;
        double f = (double)(step - s->warmup) / (double)span;
        if (f > 1) f = 1;
        return (float)(0.5 * s->base_lr * (1 + cos(M_PI * f)));
    }
    case TR_SCHED_STEP: {
        float lr = s->base_lr;
        for (int i = 0; i < s->n_steps; i++)
            if (step >= s->steps[i]) lr *= s->gamma;
        return lr;
    }
    case TR_SCHED_CONST:
        break;
    }
    return s->base_lr;
}

/* ==== Random numbers ==== */

static uint64_t mix64(uint64_t z) {
    /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t tr_hash3(uint64_t seed, uint64_t a, uint64_t b) {
    return mix64(mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ a) + 0x632be59bd9b4e019ULL * (b + 1));
}

double tr_uniform(uint64_t seed, uint64_t a, uint64_t b) {
    return (double)(tr_hash3(seed, a, b) >> 11) * (1.0 / 9007199254740992.0);
}

double tr_normal(uint64_t seed, uint64_t a, uint64_t b) {
    double u1 = tr_uniform(seed, a, 2 * b), u2 = tr_uniform(seed, a, 2 * b + 1);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
