/* The backend registry: the fast backends this build has (XNNPACK when built with it:
 * MIEN_HAVE_XNNPACK, the Makefile's XNNPACK=1, the default). The reference backend
 * (nn_backend_ref, backend_ref.c) is not listed: every exec has it, and runs on it whatever no fast
 * backend claims. nn_exec asks here for its fast backend; nothing else names one. */
#include "nn/exec.h"

#include <stddef.h>

static const nn_backend *const fast_backends[] = {
#ifdef MIEN_HAVE_XNNPACK
    &nn_backend_xnnpack,
#endif
    NULL,
};

const nn_backend *nn_backend_fast(void) { return fast_backends[0]; }
