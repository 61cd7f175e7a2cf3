/* SHA-256 via OpenSSL's EVP interface (libcrypto): no hand-written digest in mien. */
#include "core/sha256.h"

#include <openssl/evp.h>
#include <stdio.h>

int gallery_sha256_init(gallery_sha256 *c) {
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    if (x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(x);
        x = NULL;
    }
    c->ctx = x;
    return x ? 0 : -1;
}

void gallery_sha256_update(gallery_sha256 *c, const void *data, size_t len) {
    if (c->ctx && len) EVP_DigestUpdate((EVP_MD_CTX *)c->ctx, data, len);
}

void gallery_sha256_free(gallery_sha256 *c) {
    EVP_MD_CTX_free((EVP_MD_CTX *)c->ctx);
    c->ctx = NULL;
}

static void to_hex(const unsigned char *d, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = 0;
}

void gallery_sha256_hex(gallery_sha256 *c, char hex[65]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!c->ctx || EVP_DigestFinal_ex((EVP_MD_CTX *)c->ctx, d, &n) != 1 || n != 32) {
        hex[0] = 0;              /* allocation failed at init: an empty digest, never a wrong one */
    } else {
        to_hex(d, hex);
    }
    gallery_sha256_free(c);
}

void gallery_sha256_of(const void *data, size_t len, char hex[65]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        hex[0] = 0;
        return;
    }
    to_hex(d, hex);
}
