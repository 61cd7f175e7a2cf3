#include "core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mien_err_set(mien_err *e, int status, const char *fmt, ...) {
    if (!e) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    return status;
}

int mien_err_prefix(mien_err *e, const char *fmt, ...) {
    if (!e) return MIEN_EINTERNAL;
    char head[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* Truncation is fine here: the message is for people. */
    size_t hl = strlen(head);
    if (hl > sizeof e->msg - 3) hl = sizeof e->msg - 3;
    memcpy(e->msg, head, hl);
    memcpy(e->msg + hl, ": ", 2);
    size_t room = sizeof e->msg - hl - 3, ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(e->msg + hl + 2, old, ol);
    e->msg[hl + 2 + ol] = '\0';
    return e->status;
}

void mien_err_clear(mien_err *e) {
    if (!e) return;
    e->status = MIEN_OK;
    e->msg[0] = '\0';
}

int mien_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int mien_mul3_size(size_t a, size_t b, size_t c, size_t *out) {
    size_t ab;
    return mien_mul_size(a, b, &ab) && mien_mul_size(ab, c, out);
}

int mien_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

int mien_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                   mien_err *e) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot open %s: %s", path, strerror(errno));
    /* Read in chunks rather than trusting ftell: works for pipes and for files that change. */
    size_t cap = 0, n = 0;
    unsigned char *buf = NULL;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > max_bytes + 1) ncap = max_bytes + 1;
            if (ncap <= n) {
                free(buf);
                fclose(f);
                return mien_err_set(e, MIEN_ETOOBIG, "%s is larger than %zu bytes", path,
                                    max_bytes);
            }
            unsigned char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return mien_err_set(e, MIEN_ENOMEM, "out of memory reading %s", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mien_err_set(e, MIEN_EIO, "read error on %s", path);
    }
    if (n > max_bytes) {
        free(buf);
        return mien_err_set(e, MIEN_ETOOBIG, "%s is larger than %zu bytes", path, max_bytes);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return MIEN_OK;
}
