/* SHA-256 of a photo's bytes (and of API keys), through OpenSSL's libcrypto. */
#ifndef MIEN_CORE_SHA256_H
#define MIEN_CORE_SHA256_H

#include <stddef.h>

/* Streaming digest: init, update any number of times, then hex (which frees the context;
 * a context that is never finished must be released with gallery_sha256_free). */
typedef struct gallery_sha256 {
    void *ctx;               /* EVP_MD_CTX */
} gallery_sha256;

/* 0 on success, -1 when libcrypto cannot allocate a context. */
int gallery_sha256_init(gallery_sha256 *c);
void gallery_sha256_update(gallery_sha256 *c, const void *data, size_t len);
/* Finish: 64 lowercase hex digits and a NUL into hex. */
void gallery_sha256_hex(gallery_sha256 *c, char hex[65]);
void gallery_sha256_free(gallery_sha256 *c);

/* One call: the digest of data as hex. */
void gallery_sha256_of(const void *data, size_t len, char hex[65]);

#endif
