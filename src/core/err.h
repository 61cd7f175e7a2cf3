/* Error state kept on a handle: a status code and a human readable message.
 * The library never prints; every function that can fail because of its input returns a
 * mien status and, where a handle is at hand, leaves the reason in its mien_err. */
#ifndef MIEN_CORE_ERR_H
#define MIEN_CORE_ERR_H

#include "mien.h"
#include <stddef.h>

typedef struct mien_err {
    int status;      /* last status (MIEN_OK when the last call succeeded) */
    char msg[512];   /* NUL-terminated reason for the last failure */
} mien_err;

/* Record a failure and return its status, so a caller can write
 *   return mien_err_set(e, MIEN_EFORMAT, "bad header in %s", path);
 * e may be NULL (the message is then dropped). */
int mien_err_set(mien_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in e with more context ("loading X: <old message>"). */
int mien_err_prefix(mien_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void mien_err_clear(mien_err *e);

/* Overflow-checked size arithmetic: return 0 and leave *out untouched on overflow. */
int mien_mul_size(size_t a, size_t b, size_t *out);
int mien_mul3_size(size_t a, size_t b, size_t c, size_t *out);
int mien_add_size(size_t a, size_t b, size_t *out);

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience, the NUL is not
 * counted in *len). Refuses files larger than max_bytes. */
int mien_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                   mien_err *e);

#endif
