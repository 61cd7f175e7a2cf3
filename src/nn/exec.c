/* nn_exec: activation memory planning, the choice of a backend per node (backends.c), and
 * running the nodes. What kernels read of an exec is in exec_view.c, the reference backend's
 * kernels in backend_ref.c. */
#include "nn/exec.h"
#include "nn/exec_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ==== Memory planning ====
 * Every non-constant tensor gets an interval [first, last] of node indices during which it
 * must hold its value. A reshape does not copy: its output is a view of its input, so the
 * input's interval stretches over the view's uses. Then tensors are placed greedily, largest
 * first, at the lowest offset that does not overlap any placed tensor alive at the same time
 * (the "greedy by size" strategy of TFLite's arena planner). */

#define NN_ARENA_SLACK 64     /* readable bytes after the last tensor of the arena */

typedef struct plan_item {
    int t;                    /* tensor id (a root: not a view) */
    int first, last;          /* node indices */
    size_t bytes;
    size_t offset;
} plan_item;

static int root_of(const nn_graph *g, int t) {
    for (;;) {
        int p = g->t[t].producer;
        if (p < 0 || g->nodes[p].op != NN_OP_RESHAPE) return t;
        int src = g->nodes[p].in[0];
        if (g->t[src].data) return t; /* view of a constant: keep its own buffer */
        t = src;
    }
}

static int cmp_by_size(const void *a, const void *b) {
    const plan_item *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->t - y->t;
}

static int plan_memory(nn_exec *x, size_t max_arena, mien_err *e) {
    const nn_graph *g = x->g;
    int *root = malloc((size_t)g->n_t * sizeof *root);
    int *first = malloc((size_t)g->n_t * sizeof *first);
    int *last = malloc((size_t)g->n_t * sizeof *last);
    plan_item *items = malloc((size_t)g->n_t * sizeof *items);
    if (!root || !first || !last || !items) {
        free(root), free(first), free(last), free(items);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory planning activations");
    }
    for (int t = 0; t < g->n_t; t++) {
        /* Constants and orphans (no producer after graph rewrites) take no arena space. */
        root[t] = (g->t[t].data || g->t[t].producer < 0) ? -1 : root_of(g, t);
        first[t] = g->t[t].producer;
        last[t] = first[t];
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            int r = root[g->nodes[i].in[j]];
            if (r >= 0 && last[r] < i) last[r] = i;
        }
    for (int i = 0; i < g->n_outputs; i++) {
        int r = root[g->outputs[i]];
        if (r >= 0) last[r] = g->n_nodes;
    }
    /* Views also keep their root alive while they are produced. */
    for (int t = 0; t < g->n_t; t++)
        if (root[t] >= 0 && root[t] != t && last[root[t]] < first[t]) last[root[t]] = first[t];
    /* Inputs live from the start to the end: no activation overwrites them, so a caller may
     * run again on the same input (benchmarks, repeated runs) without filling it anew. */
    for (int i = 0; i < g->n_inputs; i++) {
        first[g->inputs[i]] = -1;
        last[g->inputs[i]] = g->n_nodes;
    }

    int n_items = 0;
    for (int t = 0; t < g->n_t; t++) {
        if (root[t] != t) continue;
        size_t bytes = ((size_t)g->t[t].n * sizeof(float) + 63) & ~(size_t)63;
        items[n_items++] = (plan_item){t, first[t], last[t], bytes ? bytes : 64, 0};
    }
    qsort(items, (size_t)n_items, sizeof *items, cmp_by_size);
    size_t total = 0;
    for (int i = 0; i < n_items; i++) {
        /* Candidate offsets: 0 and the end of every placed, time-overlapping item. Take the
         * lowest candidate that collides with none of them. */
        size_t best = SIZE_MAX;
        for (int c = -1; c < i; c++) {
            size_t off = c < 0 ? 0 : items[c].offset + items[c].bytes;
            if (c >= 0 && (items[c].last < items[i].first || items[i].last < items[c].first))
                continue;
            if (off >= best) continue;
            int ok = 1;
            for (int k = 0; k < i && ok; k++) {
                if (items[k].last < items[i].first || items[i].last < items[k].first) continue;
                if (off < items[k].offset + items[k].bytes && items[k].offset < off + items[i].bytes)
                    ok = 0;
            }
            if (ok) best = off;
        }
        items[i].offset = best;
        if (best + items[i].bytes > total) total = best + items[i].bytes;
    }
    if (total > max_arena) {
        free(root), free(first), free(last), free(items);
        return mien_err_set(e, MIEN_ETOOBIG,
                            "the graph needs %zu MB of activations, more than the limit of %zu MB",
                            total >> 20, max_arena >> 20);
    }
    x->arena_bytes = total;
    /* Fast kernels may read (never write) a few bytes past the end of a tensor (XNNPACK's
     * XNN_EXTRA_BYTES, 16): every tensor is padded to 64 bytes and the arena ends with one
     * more block, so such reads stay inside the allocation. */
    x->arena = total ? aligned_alloc(64, total + NN_ARENA_SLACK) : NULL;
    if (total && !x->arena) {
        free(root), free(first), free(last), free(items);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory: %zu bytes of activations", total);
    }
    if (total) memset(x->arena, 0, total + NN_ARENA_SLACK);
    for (int i = 0; i < n_items; i++)
        x->ptr[items[i].t] = (float *)((char *)x->arena + items[i].offset);
    for (int t = 0; t < g->n_t; t++) {
        if (g->t[t].data) x->ptr[t] = (float *)g->t[t].data; /* never written: kernels take const */
        else if (root[t] >= 0 && root[t] != t) x->ptr[t] = x->ptr[root[t]]; /* a view */
    }
    free(root), free(first), free(last), free(items);
    return MIEN_OK;
}

/* ==== Exec ==== */

int nn_exec_create(const nn_graph *g, const nn_exec_opts *o, nn_exec **out, mien_err *e) {
    *out = NULL;
    nn_exec *x = calloc(1, sizeof *x);
    if (!x) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    x->g = g;
    x->ptr = calloc((size_t)(g->n_t ? g->n_t : 1), sizeof *x->ptr);
    x->kernels = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *x->kernels);
    if (!x->ptr || !x->kernels) {
        nn_exec_free(x);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    size_t max_arena = o && o->max_arena_bytes && o->max_arena_bytes < NN_MAX_ARENA_BYTES
                           ? o->max_arena_bytes
                           : NN_MAX_ARENA_BYTES;
    int rc = plan_memory(x, max_arena, e);
    if (rc) {
        nn_exec_free(x);
        return rc;
    }
    if (o && o->backend == NN_BACKEND_FAST) {
        /* NULL in a build without a fast backend: every node runs on the reference. */
        x->fast = nn_backend_fast();
        if (x->fast && x->fast->exec_init && (rc = x->fast->exec_init(x, o->threads, &x->fast_ctx, e))) {
            x->fast = NULL;
            nn_exec_free(x);
            return rc;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        const nn_backend *b = (x->fast && x->fast->supports(g, n)) ? x->fast : &nn_backend_ref;
        if (!b->supports(g, n)) {
            nn_exec_free(x);
            return mien_err_set(e, MIEN_EUNSUPPORTED, "no backend runs op %s (%s)",
                                nn_op_name(n->op), g->t[n->out].name);
        }
        if ((rc = b->init(x, n, &x->kernels[i], e))) {
            nn_exec_free(x);
            return rc;
        }
    }
    *out = x;
    return MIEN_OK;
}

void nn_exec_free(nn_exec *x) {
    if (!x) return;
    if (x->kernels)
        for (int i = 0; i < x->g->n_nodes; i++)
            if (x->kernels[i].free) x->kernels[i].free(x->kernels[i].state);
    if (x->fast && x->fast->exec_free) x->fast->exec_free(x->fast_ctx);
    free(x->kernels);
    free(x->ptr);
    free(x->arena);
    free(x);
}

float *nn_exec_input(nn_exec *x, int i) {
    return i >= 0 && i < x->g->n_inputs ? x->ptr[x->g->inputs[i]] : NULL;
}

const float *nn_exec_output(const nn_exec *x, int i) {
    return i >= 0 && i < x->g->n_outputs ? x->ptr[x->g->outputs[i]] : NULL;
}

size_t nn_exec_arena_bytes(const nn_exec *x) { return x->arena_bytes; }

const char *nn_exec_node_backend(const nn_exec *x, int i) {
    return i >= 0 && i < x->g->n_nodes && x->kernels[i].backend ? x->kernels[i].backend : "?";
}

int nn_exec_run_node(nn_exec *x, int i, mien_err *e) {
    const nn_graph *g = x->g;
    if (i < 0 || i >= g->n_nodes) return mien_err_set(e, MIEN_EINVAL, "no node %d", i);
    const nn_node *n = &g->nodes[i];
    if (n->op == NN_OP_INPUT) return MIEN_OK;
    int rc = x->kernels[i].run(x, n, x->kernels[i].state, e);
    if (rc) return mien_err_prefix(e, "%s (%s)", g->t[n->out].name, nn_op_name(n->op));
    return MIEN_OK;
}

int nn_exec_run(nn_exec *x, mien_err *e) {
    for (int i = 0; i < x->g->n_nodes; i++) {
        int rc = nn_exec_run_node(x, i, e);
        if (rc) return rc;
    }
    return MIEN_OK;
}
