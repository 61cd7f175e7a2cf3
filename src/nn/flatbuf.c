/* Checked FlatBuffers reader (see flatbuf.h). Positions are size_t; every check is written
 * as "n <= len - pos" after "pos <= len", so no sum can wrap. Values are decoded byte by
 * byte (little-endian on any host, no alignment needed). */
#include "nn/flatbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fb_init(fb_reader *r, const void *data, size_t len) {
    memset(r, 0, sizeof *r);
    r->p = data;
    r->len = data ? len : 0;
}

static void fail(fb_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(fb_reader *r, const char *fmt, ...) {
    if (r->bad) return;
    r->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

/* 1 when [pos, pos + n) lies inside the buffer. */
static int inside(const fb_reader *r, size_t pos, size_t n) {
    return pos <= r->len && n <= r->len - pos;
}

static uint64_t get_le(const uint8_t *p, int size) {
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t u32_at(const fb_reader *r, size_t pos) { return (uint32_t)get_le(r->p + pos, 4); }

static fb_table table_at(fb_reader *r, size_t pos) {
    fb_table t = {0};
    if (r->bad) return t;
    if (!inside(r, pos, 4)) {
        fail(r, "table at %zu is outside the %zu-byte file", pos, r->len);
        return t;
    }
    int32_t so = (int32_t)u32_at(r, pos);
    /* vtable = pos - so, computed without overflow in either direction. */
    if (so > 0 ? (size_t)so > pos : (size_t)(-(int64_t)so) > r->len - pos) {
        fail(r, "table at %zu: vtable offset %d points outside the file", pos, (int)so);
        return t;
    }
    size_t vt = so > 0 ? pos - (size_t)so : pos + (size_t)(-(int64_t)so);
    if (!inside(r, vt, 4)) {
        fail(r, "table at %zu: vtable at %zu is outside the file", pos, vt);
        return t;
    }
    uint32_t vt_len = (uint32_t)get_le(r->p + vt, 2), tab_len = (uint32_t)get_le(r->p + vt + 2, 2);
    if (vt_len < 4 || vt_len % 2 || !inside(r, vt, vt_len)) {
        fail(r, "table at %zu: bad vtable size %u", pos, vt_len);
        return t;
    }
    if (tab_len < 4 || !inside(r, pos, tab_len)) {
        fail(r, "table at %zu: inline size %u does not fit in the file", pos, tab_len);
        return t;
    }
    t.ok = 1;
    t.pos = pos;
    t.vt = vt;
    t.vt_len = vt_len;
    t.tab_len = tab_len;
    return t;
}

fb_table fb_root(fb_reader *r) {
    fb_table t = {0};
    if (!inside(r, 0, 8)) {
        fail(r, "file of %zu bytes is too small", r->len);
        return t;
    }
    return table_at(r, u32_at(r, 0));
}

int fb_has_identifier(const fb_reader *r, const char id[4]) {
    return inside(r, 4, 4) && !memcmp(r->p + 4, id, 4);
}

/* Offset of field id inside table t (0 when absent); checks that size bytes fit inside the
 * table's inline part. */
static size_t field_pos(fb_reader *r, const fb_table *t, int id, size_t size) {
    if (r->bad || !t->ok || id < 0) return 0;
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > t->vt_len) return 0; /* a field newer than the writer: absent */
    size_t off = (size_t)get_le(r->p + t->vt + slot, 2);
    if (!off) return 0;
    if (off < 4 || off > t->tab_len || size > t->tab_len - off) {
        fail(r, "table at %zu: field %d at offset %zu overruns the table (%u bytes)", t->pos,
             id, off, t->tab_len);
        return 0;
    }
    return t->pos + off; /* inside the file: pos + tab_len is */
}

int fb_present(fb_reader *r, const fb_table *t, int id) { return field_pos(r, t, id, 1) != 0; }

uint64_t fb_uint(fb_reader *r, const fb_table *t, int id, int size, uint64_t def) {
    size_t p = field_pos(r, t, id, (size_t)size);
    return p ? get_le(r->p + p, size) : def;
}

int64_t fb_int(fb_reader *r, const fb_table *t, int id, int size, int64_t def) {
    size_t p = field_pos(r, t, id, (size_t)size);
    if (!p) return def;
    uint64_t v = get_le(r->p + p, size);
    if (size < 8 && (v >> (8 * size - 1)) & 1) v |= ~(uint64_t)0 << (8 * size); /* sign */
    return (int64_t)v;
}

float fb_float(fb_reader *r, const fb_table *t, int id, float def) {
    size_t p = field_pos(r, t, id, 4);
    if (!p) return def;
    uint32_t v = (uint32_t)get_le(r->p + p, 4);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* Follow the uoffset at position p (inside the file, 4 bytes available): the target, which
 * must leave at least 4 bytes; 0 on error (position 0 is never a valid target). */
static size_t follow(fb_reader *r, size_t p) {
    uint32_t off = u32_at(r, p);
    if (off == 0 || off > r->len - p || !inside(r, p + off, 4)) {
        fail(r, "offset %u at %zu points outside the %zu-byte file", off, p, r->len);
        return 0;
    }
    return p + off;
}

fb_table fb_table_field(fb_reader *r, const fb_table *t, int id) {
    fb_table none = {0};
    size_t p = field_pos(r, t, id, 4);
    if (!p) return none;
    size_t target = follow(r, p);
    return target ? table_at(r, target) : none;
}

static fb_vec vec_at(fb_reader *r, size_t target, uint32_t esize) {
    fb_vec v = {0, 0, esize};
    uint32_t n = u32_at(r, target);
    size_t first = target + 4;
    if (esize == 0 || n > (r->len - first) / esize) {
        fail(r, "vector at %zu: %u elements of %u bytes overrun the file", target, n, esize);
        return v;
    }
    v.pos = first;
    v.n = n;
    return v;
}

fb_vec fb_vec_field(fb_reader *r, const fb_table *t, int id, uint32_t esize) {
    fb_vec none = {0, 0, esize};
    size_t p = field_pos(r, t, id, 4);
    if (!p) return none;
    size_t target = follow(r, p);
    return target ? vec_at(r, target, esize) : none;
}

void fb_string_field(fb_reader *r, const fb_table *t, int id, const char **s, uint32_t *n) {
    fb_vec v = fb_vec_field(r, t, id, 1);
    *s = v.n ? (const char *)(r->p + v.pos) : NULL;
    *n = v.n;
}

static size_t elem_pos(fb_reader *r, const fb_vec *v, uint32_t k) {
    if (r->bad) return 0;
    if (k >= v->n) {
        fail(r, "vector index %u out of range (%u elements)", k, v->n);
        return 0;
    }
    return v->pos + (size_t)k * v->esize; /* checked when the vector was made */
}

uint64_t fb_vec_uint(fb_reader *r, const fb_vec *v, uint32_t k) {
    size_t p = elem_pos(r, v, k);
    return p && v->esize <= 8 ? get_le(r->p + p, (int)v->esize) : 0;
}

int64_t fb_vec_int(fb_reader *r, const fb_vec *v, uint32_t k) {
    size_t p = elem_pos(r, v, k);
    if (!p || v->esize > 8) return 0;
    int size = (int)v->esize;
    uint64_t x = get_le(r->p + p, size);
    if (size < 8 && (x >> (8 * size - 1)) & 1) x |= ~(uint64_t)0 << (8 * size);
    return (int64_t)x;
}

float fb_vec_float(fb_reader *r, const fb_vec *v, uint32_t k) {
    size_t p = elem_pos(r, v, k);
    if (!p || v->esize != 4) return 0;
    uint32_t x = (uint32_t)get_le(r->p + p, 4);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

fb_table fb_vec_table(fb_reader *r, const fb_vec *v, uint32_t k) {
    fb_table none = {0};
    if (v->esize != 4) return none;
    size_t p = elem_pos(r, v, k);
    if (!p) return none;
    size_t target = follow(r, p);
    return target ? table_at(r, target) : none;
}

const uint8_t *fb_vec_bytes(const fb_reader *r, const fb_vec *v) {
    return v->n ? r->p + v->pos : NULL;
}
