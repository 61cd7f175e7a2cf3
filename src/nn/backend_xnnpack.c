/* The fast backend on XNNPACK. (Placeholder until the XNNPACK kernels land: claims no node,
 * so every node runs on the reference backend.) */
#include "nn/exec.h"

static int xnn_supports(const nn_graph *g, const nn_node *n) { return 0; }

static int xnn_init(nn_exec *x, const nn_node *n, nn_kernel *k, mien_err *e) {
    return mien_err_set(e, MIEN_EINTERNAL, "xnnpack backend: node not supported");
}

const nn_backend nn_backend_xnnpack = {
    .name = "xnnpack", .supports = xnn_supports, .init = xnn_init,
};
