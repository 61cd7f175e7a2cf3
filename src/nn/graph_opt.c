/* Graph rewriting: constant folding, batch norm folding, activation fusion, PReLU pattern
 * recognition, dead node removal. Each rewrite keeps the graph's meaning exactly (up to float
 * rounding of folded constants); tests run graphs before and after on the reference backend. */
#include "nn/backend_ref.h"
#include "nn/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEAD NN_OP_COUNT /* marks a node for removal */

static int is_const(const nn_graph *g, int t) { return g->t[t].data != NULL; }

static int is_output(const nn_graph *g, int t) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t) return 1;
    return 0;
}

/* Evaluate nodes whose inputs are all constant, turning their outputs into constants. */
static int fold_constants(nn_graph *g, mien_err *e) {
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op == NN_OP_INPUT || n->op == (nn_op)DEAD) continue;
        int all = 1;
        for (int k = 0; k < n->n_in && all; k++) all = is_const(g, n->in[k]);
        if (!all) continue;
        nn_tensor *t = &g->t[n->out];
        float *buf = malloc((size_t)(t->n ? t->n : 1) * sizeof *buf);
        if (!buf || !nn_graph_own(g, buf)) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        const float *in[64];
        for (int k = 0; k < n->n_in; k++) in[k] = g->t[n->in[k]].data;
        int rc = nn_ref_eval(g, n, in, buf, e);
        if (rc) return rc;
        t->data = buf;
        t->producer = -1;
        n->op = (nn_op)DEAD;
    }
    return MIEN_OK;
}

/* Redirect node p to write tensor `to` instead of its current output (whose node is gone). */
static void take_output(nn_graph *g, int p, int to) {
    g->nodes[p].out = to;
    g->t[to].producer = p;
}

static int append_input(nn_node *n, int t, mien_err *e) {
    int *ni = realloc(n->in, (size_t)(n->n_in + 1) * sizeof *ni);
    if (!ni) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    ni[n->n_in++] = t;
    n->in = ni;
    return MIEN_OK;
}

static int fusable_producer(const nn_graph *g, int t, const int *uses, int max_uses) {
    int p = g->t[t].producer;
    if (p < 0 || uses[t] > max_uses || is_output(g, t)) return -1;
    const nn_node *n = &g->nodes[p];
    if (n->act != NN_ACT_NONE) return -1;
    if (n->op != NN_OP_CONV2D && n->op != NN_OP_DWCONV2D && n->op != NN_OP_FC &&
        n->op != NN_OP_ADD)
        return -1;
    return p;
}

/* ==== Batch norm folding ====
 * Every loader writes an inference batch norm as a BATCHNORM node, y = x * scale + shift on
 * the last axis (the loader derives scale and shift from its format's parameters: ONNX's
 * BatchNormalization, face-api's scale layers and BatchNorm variables, a checkpoint's running
 * statistics). When x is written by a convolution, depthwise convolution or fully connected
 * layer with constant weights and no fused activation, and nobody else reads x, the node
 * goes into that layer: W'[.., o] = W[.., o] * scale[o], b'[o] = b[o] * scale[o] + shift[o]
 * (shift where the layer has no bias), in float. Every weight layout of the graph keeps the
 * output channel fastest (HWIO, depthwise (KH,KW,C,M) with o = c * M + m, fc (K,M)). */

/* Storage for new values of constant t: t's own block, rewritten in place, when the graph
 * owns it, only one node reads t and no other tensor shares it (or t is a copy this pass made:
 * id n_counted or above, uncounted in uses); else a new graph-owned copy as a new constant.
 * *nt receives the constant's id (t itself in the first case). */
static float *writable_const(nn_graph *g, int t, const int *uses, int n_counted, int *nt,
                             mien_err *e) {
    const float *d = g->t[t].data;
    if (t >= n_counted) {
        *nt = t;
        return (float *)d;
    }
    int shared = uses[t] != 1;
    for (int i = 0; i < g->n_t && !shared; i++) shared = i != t && g->t[i].data == d;
    if (!shared && nn_graph_owns(g, d)) {
        *nt = t;
        return (float *)d; /* a block this graph malloc'd */
    }
    const nn_tensor tt = g->t[t]; /* nn_add_const_ref may move g->t */
    float *p = malloc((size_t)(tt.n ? tt.n : 1) * sizeof *p);
    if (!p || !nn_graph_own(g, p)) {
        mien_err_set(e, MIEN_ENOMEM, "out of memory");
        return NULL;
    }
    if (tt.n) memcpy(p, d, (size_t)tt.n * sizeof *p);
    char name[300];
    snprintf(name, sizeof name, "%s/bn_folded", tt.name);
    if ((*nt = nn_add_const_ref(g, name, tt.ndim, tt.dims, p, e)) < 0) return NULL;
    return p;
}

static int fold_batchnorm(nn_graph *g, int *uses, mien_err *e) {
    const int n_counted = g->n_t;
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op != NN_OP_BATCHNORM || !is_const(g, n->in[1]) || !is_const(g, n->in[2]))
            continue;
        int p = fusable_producer(g, n->in[0], uses, 1);
        if (p < 0 || g->nodes[p].op == NN_OP_ADD) continue;
        nn_node *pn = &g->nodes[p];
        const int64_t co = g->t[n->in[1]].n;
        const nn_tensor *ty = &g->t[pn->out];
        if (ty->ndim < 1 || ty->dims[ty->ndim - 1] != co || g->t[n->in[2]].n != co) continue;
        if (pn->n_in < 2 || pn->n_in > 3 || !is_const(g, pn->in[1]) ||
            (pn->n_in == 3 && !is_const(g, pn->in[2])))
            continue;
        const int64_t wn = g->t[pn->in[1]].n;
        if (co < 1 || wn % co || (pn->n_in == 3 && g->t[pn->in[2]].n != co)) continue;
        const int sc_t = n->in[1], sh_t = n->in[2];
        int wt, bt = -1;
        float *w = writable_const(g, pn->in[1], uses, n_counted, &wt, e);
        if (!w) return e->status;
        if (pn->n_in == 3) {
            float *b = writable_const(g, pn->in[2], uses, n_counted, &bt, e);
            if (!b) return e->status;
            const float *sc = g->t[sc_t].data, *sh = g->t[sh_t].data;
            for (int64_t o = 0; o < co; o++) b[o] = b[o] * sc[o] + sh[o];
            pn->in[2] = bt;
        } else { /* the shift is the layer's bias */
            char name[300];
            snprintf(name, sizeof name, "%s/bias", g->t[n->out].name);
            if ((bt = nn_add_const(g, name, 1, &co, g->t[sh_t].data, e)) < 0) return e->status;
            int rc = append_input(pn, bt, e);
            if (rc) return rc;
        }
        const float *sc = g->t[sc_t].data;
        for (int64_t k = 0; k < wn; k++) w[k] *= sc[k % co];
        pn->in[1] = wt;
        take_output(g, p, n->out);
        n->op = (nn_op)DEAD;
    }
    return MIEN_OK;
}

/* relu/relu6/clamp/leaky after conv, dwconv, fc or add, and a PReLU with one slope per
 * channel after conv or dwconv: fold into the producer. */
static int fuse_activations(nn_graph *g, int *uses, mien_err *e) {
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        nn_act act;
        switch (n->op) {
        case NN_OP_RELU: act = NN_ACT_RELU; break;
        case NN_OP_RELU6: act = NN_ACT_RELU6; break;
        case NN_OP_CLAMP: act = NN_ACT_CLAMP; break;
        case NN_OP_LEAKY_RELU: act = NN_ACT_LEAKY; break;
        case NN_OP_PRELU: act = NN_ACT_PRELU; break;
        default: continue;
        }
        int p = fusable_producer(g, n->in[0], uses, 1);
        if (p < 0) continue;
        nn_node *pn = &g->nodes[p];
        if (act == NN_ACT_PRELU) {
            const nn_tensor *ty = &g->t[n->out];
            if ((pn->op != NN_OP_CONV2D && pn->op != NN_OP_DWCONV2D) || !is_const(g, n->in[1]) ||
                g->t[n->in[1]].n != ty->dims[ty->ndim - 1])
                continue;
            int rc = append_input(pn, n->in[1], e);
            if (rc) return rc;
        }
        pn->act = act;
        pn->act_min = n->act_min;
        pn->act_max = n->act_max;
        pn->act_alpha = n->act_alpha;
        take_output(g, p, n->out);
        uses[n->in[0]]--;
        n->op = (nn_op)DEAD;
    }
    return MIEN_OK;
}

/* ==== PReLU as TensorFlow exports it ====
 * Keras-style code writes PReLU as relu(x) + alpha * (x - |x|) * 0.5, and the converter folds
 * the 0.5 into the constant c = alpha / 2:
 *   A:  Add(Relu(x), Mul(Sub(x, Abs(x)), c))   ==  x > 0 ? x : 2c * x
 *   B:  Add(x,       Mul(Sub(x, Abs(x)), c))   ==  x > 0 ? x : (1 + 2c) * x
 * TF1 code (MTCNN's, facenet's) writes relu(x) - alpha * relu(-x), exported as
 *   C:  Add(Relu(x), Mul(Neg(Relu(Neg(x))), c)) ==  x > 0 ? x : c * x
 * Each becomes one PReLU (fused into x's producer when possible). */

static int producer_op(const nn_graph *g, int t, nn_op op) {
    int p = g->t[t].producer;
    return p >= 0 && g->nodes[p].op == op ? p : -1;
}

/* If t = Mul(Sub(x, Abs(x)), c) return the Mul node and set *x and *c. */
static int match_neg_part(const nn_graph *g, int t, int *x, int *c) {
    int m = producer_op(g, t, NN_OP_MUL);
    if (m < 0) return -1;
    const nn_node *mn = &g->nodes[m];
    for (int k = 0; k < 2; k++) {
        int s = producer_op(g, mn->in[k], NN_OP_SUB), cc = mn->in[1 - k];
        if (s < 0 || !is_const(g, cc)) continue;
        const nn_node *sn = &g->nodes[s];
        int a = producer_op(g, sn->in[1], NN_OP_ABS);
        if (a < 0 || g->nodes[a].in[0] != sn->in[0]) continue;
        *x = sn->in[0];
        *c = cc;
        return m;
    }
    return -1;
}

/* If t = Mul(Neg(Relu(Neg(x))), c) return the Mul node and set *x, *c and the three inner
 * nodes (outer Neg, Relu, inner Neg). */
static int match_neg_relu(const nn_graph *g, int t, int *x, int *c, int inner[3]) {
    int m = producer_op(g, t, NN_OP_MUL);
    if (m < 0) return -1;
    const nn_node *mn = &g->nodes[m];
    for (int k = 0; k < 2; k++) {
        int n1 = producer_op(g, mn->in[k], NN_OP_NEG), cc = mn->in[1 - k];
        if (n1 < 0 || !is_const(g, cc)) continue;
        int r = producer_op(g, g->nodes[n1].in[0], NN_OP_RELU);
        if (r < 0) continue;
        int n2 = producer_op(g, g->nodes[r].in[0], NN_OP_NEG);
        if (n2 < 0) continue;
        *x = g->nodes[n2].in[0];
        *c = cc;
        inner[0] = n1;
        inner[1] = r;
        inner[2] = n2;
        return m;
    }
    return -1;
}

static int recognise_prelu(nn_graph *g, int *uses, mien_err *e) {
    for (int i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op != NN_OP_ADD) continue;
        for (int k = 0; k < 2; k++) {
            int x, c, inner[3], pattern_c = 0;
            int m = match_neg_part(g, n->in[1 - k], &x, &c);
            if (m < 0) {
                m = match_neg_relu(g, n->in[1 - k], &x, &c, inner);
                pattern_c = m >= 0;
            }
            if (m < 0) continue;
            int other = n->in[k], relu = producer_op(g, other, NN_OP_RELU);
            int pattern_a = relu >= 0 && g->nodes[relu].in[0] == x;
            int pattern_b = other == x && !pattern_c;
            if (!pattern_a && !pattern_b) continue;
            /* The intermediates must have no other consumers. */
            int sub = -1, abs_n = -1;
            if (pattern_c) {
                if (uses[g->nodes[m].out] != 1 || uses[g->nodes[inner[0]].out] != 1 ||
                    uses[g->nodes[inner[1]].out] != 1 || uses[g->nodes[inner[2]].out] != 1 ||
                    uses[g->nodes[relu].out] != 1)
                    continue;
            } else {
                sub = g->t[g->nodes[m].in[0]].producer; /* -1 when the constant is first */
                if (sub < 0 || g->nodes[sub].op != NN_OP_SUB) sub = g->t[g->nodes[m].in[1]].producer;
                abs_n = g->t[g->nodes[sub].in[1]].producer;
                if (uses[g->nodes[m].out] != 1 || uses[g->nodes[sub].out] != 1 ||
                    uses[g->nodes[abs_n].out] != 1 || (pattern_a && uses[g->nodes[relu].out] != 1))
                    continue;
            }
            const nn_tensor *tc = &g->t[c], *tx = &g->t[x];
            int64_t ch = tx->ndim ? tx->dims[tx->ndim - 1] : 1;
            if (tc->n != ch && tc->n != 1) continue;
            /* c must broadcast along the channel axis only. */
            int ok = 1;
            for (int d = 0; d < tc->ndim - 1; d++) ok &= tc->dims[d] == 1;
            if (!ok) continue;
            float *alpha = malloc((size_t)ch * sizeof *alpha);
            if (!alpha || !nn_graph_own(g, alpha)) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
            for (int64_t j = 0; j < ch; j++) {
                float cv = tc->data[tc->n == 1 ? 0 : j];
                alpha[j] = pattern_c ? cv : pattern_a ? 2.f * cv : 1.f + 2.f * cv;
            }
            char name[300];
            snprintf(name, sizeof name, "%s/prelu_alpha", g->t[n->out].name);
            int64_t d1 = ch;
            int ta = nn_add_const_ref(g, name, 1, &d1, alpha, e);
            if (ta < 0) return e->status;
            n = &g->nodes[i]; /* nn_add_const_ref may have moved nothing, but be safe */
            /* Remove the pattern's nodes; x now has (uses - pattern uses) + 1 consumer. */
            g->nodes[m].op = (nn_op)DEAD;
            if (pattern_c) {
                uses[x] -= 2; /* relu, inner neg */
                for (int j = 0; j < 3; j++) g->nodes[inner[j]].op = (nn_op)DEAD;
            } else {
                uses[x] -= 3; /* relu|add, abs, sub */
                g->nodes[sub].op = (nn_op)DEAD;
                g->nodes[abs_n].op = (nn_op)DEAD;
            }
            if (pattern_a) g->nodes[relu].op = (nn_op)DEAD;
            int p = fusable_producer(g, x, uses, 0);
            if (p >= 0 && g->nodes[p].op != NN_OP_ADD) {
                nn_node *pn = &g->nodes[p];
                pn->act = NN_ACT_PRELU;
                int rc = append_input(pn, ta, e);
                if (rc) return rc;
                take_output(g, p, n->out);
                n->op = (nn_op)DEAD;
            } else {
                /* Standalone PReLU in place of the Add. */
                n->op = NN_OP_PRELU;
                n->in[0] = x;
                n->in[1] = ta;
                uses[x]++;
            }
            break;
        }
    }
    return MIEN_OK;
}

/* Remove nodes marked DEAD or whose output nobody reads; compact the node array. */
static void remove_dead(nn_graph *g) {
    int changed = 1;
    while (changed) {
        changed = 0;
        int *uses = nn_graph_use_counts(g);
        if (!uses) return;
        /* Dead nodes' inputs do not count. */
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].op == (nn_op)DEAD)
                for (int k = 0; k < g->nodes[i].n_in; k++) uses[g->nodes[i].in[k]]--;
        for (int i = g->n_nodes - 1; i >= 0; i--) {
            nn_node *n = &g->nodes[i];
            if (n->op == (nn_op)DEAD || n->op == NN_OP_INPUT) continue;
            if (uses[n->out] == 0) {
                n->op = (nn_op)DEAD;
                for (int k = 0; k < n->n_in; k++) uses[n->in[k]]--;
                changed = 1;
            }
        }
        free(uses);
    }
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == (nn_op)DEAD) {
            free(g->nodes[i].in);
            continue;
        }
        g->nodes[w++] = g->nodes[i];
    }
    g->n_nodes = w;
    /* Tensors whose producer was removed or rewired are orphans now: producer -1. */
    for (int t = 0; t < g->n_t; t++) g->t[t].producer = -1;
    for (int i = 0; i < g->n_nodes; i++) g->t[g->nodes[i].out].producer = i;
}

int nn_graph_optimize(nn_graph *g, mien_err *e) {
    int rc = fold_constants(g, e);
    if (rc) return rc;
    remove_dead(g);
    int *uses = nn_graph_use_counts(g);
    if (!uses) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    rc = fold_batchnorm(g, uses, e);
    free(uses);
    if (rc) return rc;
    /* The folds added constants: count again. */
    if (!(uses = nn_graph_use_counts(g))) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    rc = recognise_prelu(g, uses, e);
    if (!rc) rc = fuse_activations(g, uses, e);
    free(uses);
    if (rc) return rc;
    remove_dead(g);
    return MIEN_OK;
}
