/* Named tensors and the checkpoint file (format in ckpt.h). */
#include "nn/ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_MAGIC "MIENCKPT"
#define CKPT_VERSION 1u
#define CKPT_MAX_NAME 4096u
#define CKPT_MAX_ITEMS 100000u

/* ==== Named tensors ==== */

const nn_ckpt_tensor *nn_ckpt_find(const nn_ckpt *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->v[i].name, name)) return &ts->v[i];
    return NULL;
}

const char *nn_ckpt_meta(const nn_ckpt *ts, const char *key) {
    size_t kl = strlen(key);
    for (int i = 0; i < ts->n_meta; i++)
        if (!strncmp(ts->meta[i], key, kl) && ts->meta[i][kl] == '=') return ts->meta[i] + kl + 1;
    return NULL;
}

int nn_ckpt_add(nn_ckpt *ts, const char *name, int ndim, const int64_t *dims,
                   const float *data, mien_err *e) {
    if (ndim < 0 || ndim > NN_MAX_DIMS) return mien_err_set(e, MIEN_EINVAL, "tensor %s: bad rank", name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > ((int64_t)1 << 31) / dims[i]))
            return mien_err_set(e, MIEN_EFORMAT, "tensor %s: bad dimensions", name);
        n *= dims[i];
    }
    if (ts->n == ts->cap) {
        int nc = ts->cap ? 2 * ts->cap : 64;
        nn_ckpt_tensor *nv = realloc(ts->v, (size_t)nc * sizeof *nv);
        if (!nv) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        ts->v = nv;
        ts->cap = nc;
    }
    nn_ckpt_tensor *t = &ts->v[ts->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    t->ndim = ndim;
    memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->n = n;
    if (data && n) memcpy(t->data, data, (size_t)n * sizeof(float));
    ts->n++;
    return MIEN_OK;
}

int nn_ckpt_set_meta(nn_ckpt *ts, const char *key, const char *value, mien_err *e) {
    size_t kl = strlen(key), vl = strlen(value);
    char *kv = malloc(kl + vl + 2);
    if (!kv) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    memcpy(kv, key, kl);
    kv[kl] = '=';
    memcpy(kv + kl + 1, value, vl + 1);
    for (int i = 0; i < ts->n_meta; i++)
        if (!strncmp(ts->meta[i], key, kl) && ts->meta[i][kl] == '=') {
            free(ts->meta[i]);
            ts->meta[i] = kv;
            return MIEN_OK;
        }
    char **nm = realloc(ts->meta, (size_t)(ts->n_meta + 1) * sizeof *nm);
    if (!nm) {
        free(kv);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    ts->meta = nm;
    ts->meta[ts->n_meta++] = kv;
    return MIEN_OK;
}

void nn_ckpt_free(nn_ckpt *ts) {
    if (!ts) return;
    for (int i = 0; i < ts->n; i++) {
        free(ts->v[i].name);
        free(ts->v[i].data);
    }
    for (int i = 0; i < ts->n_meta; i++) free(ts->meta[i]);
    free(ts->v);
    free(ts->meta);
    memset(ts, 0, sizeof *ts);
}

/* ==== File ==== */
/* The format is little-endian; so is every machine this builds for (x86-64, arm64), so the
 * integers and floats are written as they sit in memory. */
_Static_assert(sizeof(float) == 4, "float is 32-bit");

static int put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

static int put_u32(FILE *f, uint32_t v) { return put(f, &v, 4); }

int nn_ckpt_save(const char *path, const nn_ckpt *ts, mien_err *e) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = put(f, CKPT_MAGIC, 8) && put_u32(f, CKPT_VERSION) && put_u32(f, (uint32_t)ts->n_meta) &&
             put_u32(f, (uint32_t)ts->n);
    for (int i = 0; ok && i < ts->n_meta; i++) {
        uint32_t l = (uint32_t)strlen(ts->meta[i]);
        ok = put_u32(f, l) && put(f, ts->meta[i], l);
    }
    for (int i = 0; ok && i < ts->n; i++) {
        const nn_ckpt_tensor *t = &ts->v[i];
        uint32_t l = (uint32_t)strlen(t->name);
        ok = put_u32(f, l) && put(f, t->name, l) && put_u32(f, (uint32_t)t->ndim);
        for (int d = 0; ok && d < t->ndim; d++) ok = put(f, &t->dims[d], 8);
        if (ok && t->n) ok = put(f, t->data, (size_t)t->n * 4);
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return mien_err_set(e, MIEN_EIO, "cannot write %s", path);
    }
    return MIEN_OK;
}

/* Bounded reader over the file's bytes: hostile input is assumed. */
typedef struct rd {
    const unsigned char *p;
    size_t n, at;
} rd;

static int take(rd *r, void *dst, size_t n) {
    if (n > r->n - r->at) return 0;
    memcpy(dst, r->p + r->at, n);
    r->at += n;
    return 1;
}

static int take_str(rd *r, char **out) {
    uint32_t l;
    if (!take(r, &l, 4) || l > CKPT_MAX_NAME || l > r->n - r->at) return 0;
    char *s = malloc((size_t)l + 1);
    if (!s) return 0;
    memcpy(s, r->p + r->at, l);
    s[l] = '\0';
    r->at += l;
    *out = s;
    return 1;
}

int nn_ckpt_load(const char *path, nn_ckpt *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, (size_t)4 << 30, &data, &len, e);
    if (rc) return rc;
    rd r = {data, len, 0};
    char magic[8];
    uint32_t ver, nm, nt;
    if (!take(&r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) || !take(&r, &ver, 4) ||
        !take(&r, &nm, 4) || !take(&r, &nt, 4)) {
        free(data);
        return mien_err_set(e, MIEN_EFORMAT, "%s: not a mien checkpoint", path);
    }
    if (ver != CKPT_VERSION || nm > CKPT_MAX_ITEMS || nt > CKPT_MAX_ITEMS) {
        free(data);
        return mien_err_set(e, MIEN_EFORMAT, "%s: unsupported checkpoint version %u", path, ver);
    }
    rc = MIEN_OK;
    for (uint32_t i = 0; i < nm && !rc; i++) {
        char *kv = NULL;
        if (!take_str(&r, &kv) || !strchr(kv, '=')) {
            free(kv); /* an entry without '=' (found by the ckpt fuzz target: a leak) */
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: bad metadata entry %u", path, i);
            break;
        }
        char *eq = strchr(kv, '=');
        *eq = '\0';
        rc = nn_ckpt_set_meta(out, kv, eq + 1, e);
        free(kv);
    }
    for (uint32_t i = 0; i < nt && !rc; i++) {
        char *name = NULL;
        uint32_t nd;
        int64_t dims[NN_MAX_DIMS];
        if (!take_str(&r, &name) || !take(&r, &nd, 4) || nd > NN_MAX_DIMS) {
            free(name);
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: bad tensor header %u", path, i);
            break;
        }
        int64_t n = 1;
        int ok = 1;
        for (uint32_t d = 0; d < nd && ok; d++) {
            ok = take(&r, &dims[d], 8) && dims[d] >= 0 && (dims[d] == 0 || n <= ((int64_t)1 << 31) / dims[d]);
            if (ok) n *= dims[d];
        }
        if (!ok || (uint64_t)n * 4 > r.n - r.at) {
            free(name);
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: tensor %u truncated or too large", path, i);
            break;
        }
        rc = nn_ckpt_add(out, name, (int)nd, dims, NULL, e);
        if (!rc && n) take(&r, out->v[out->n - 1].data, (size_t)n * 4);
        free(name);
    }
    free(data);
    if (rc) nn_ckpt_free(out);
    return rc;
}
