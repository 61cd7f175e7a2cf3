/* The backend registry: the reference backend always, and the fast backends this build has
 * (XNNPACK when built with it: MIEN_HAVE_XNNPACK, the Makefile's XNNPACK=1, the default).
 * nn_exec asks here for the backend of a kind; nothing else names a backend. */
#include "nn/exec.h"

#include <stddef.h>

static const nn_backend *const registry[] = {
    &nn_backend_ref,
#ifdef MIEN_HAVE_XNNPACK
    &nn_backend_xnnpack,
#endif
};

#define N_BACKENDS ((int)(sizeof registry / sizeof registry[0]))

int nn_backend_count(void) { return N_BACKENDS; }

const nn_backend *nn_backend_at(int i) { return i >= 0 && i < N_BACKENDS ? registry[i] : NULL; }

const nn_backend *nn_backend_of_kind(nn_backend_kind kind) {
    if (kind == NN_BACKEND_REF) return registry[0];
    return N_BACKENDS > 1 ? registry[1] : NULL;
}
