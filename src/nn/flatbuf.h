/* A checked reader of the FlatBuffers binary layout (what TFLite files are made of), written
 * for hostile input: every position, offset and length read from the buffer is checked
 * against the buffer's size before anything is read at it, so a malformed file can give
 * wrong values but never makes the reader touch a byte outside [0, len).
 *
 * The layout (flatbuffers.dev, "Internals"), all little-endian:
 *   - the buffer starts with a uoffset (u32) to the root table, then optionally a 4-byte
 *     file identifier;
 *   - a table at position T starts with an soffset (i32): its vtable is at T - soffset. The
 *     vtable holds u16 vtable size (bytes), u16 table inline size, then one u16 per field: the
 *     field's offset from T, 0 when the field is absent (its default applies);
 *   - scalar fields are stored inline; table, vector and string fields hold a uoffset (u32)
 *     relative to the field's own position;
 *   - a vector is a u32 element count followed by the elements; elements that are tables or
 *     strings are uoffsets relative to each element's own position; a string is a vector of
 *     bytes (followed by a NUL we do not rely on);
 *   - a union field with id N is two fields: its type (u8) at N and the table at N + 1.
 *
 * Errors are sticky: the first out-of-bounds access sets r->bad (with a reason) and every
 * accessor then returns the default / an empty value, so the caller can read a whole table
 * and check r->bad once. */
#ifndef MIEN_NN_FLATBUF_H
#define MIEN_NN_FLATBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct fb_reader {
    const uint8_t *p;
    size_t len;
    int bad;                 /* set by the first invalid access */
    char why[160];           /* what was invalid */
} fb_reader;

/* A table; ok = 0 for an absent (or invalid) table, whose fields all read as defaults. */
typedef struct fb_table {
    int ok;
    size_t pos;              /* the table's position */
    size_t vt;               /* its vtable's position */
    uint32_t vt_len;         /* vtable size in bytes (>= 4, even) */
    uint32_t tab_len;        /* inline size of the table in bytes (>= 4) */
} fb_table;

/* A vector: n elements of esize bytes from pos (n = 0 when absent or invalid). */
typedef struct fb_vec {
    size_t pos;
    uint32_t n;
    uint32_t esize;
} fb_vec;

void fb_init(fb_reader *r, const void *data, size_t len);

/* The root table (bad when the buffer is too small or the offset points outside). */
fb_table fb_root(fb_reader *r);
/* 1 when the 4 bytes after the root offset are id (no error otherwise). */
int fb_has_identifier(const fb_reader *r, const char id[4]);

/* 1 when field id is present in t. */
int fb_present(fb_reader *r, const fb_table *t, int id);

/* Scalar fields (size bytes, 1/2/4/8), def when absent. */
uint64_t fb_uint(fb_reader *r, const fb_table *t, int id, int size, uint64_t def);
int64_t fb_int(fb_reader *r, const fb_table *t, int id, int size, int64_t def);
float fb_float(fb_reader *r, const fb_table *t, int id, float def);

/* Reference fields. */
fb_table fb_table_field(fb_reader *r, const fb_table *t, int id);
fb_vec fb_vec_field(fb_reader *r, const fb_table *t, int id, uint32_t esize);
/* A string field: *s points into the buffer (not NUL-terminated), *n its length; NULL / 0
 * when absent. */
void fb_string_field(fb_reader *r, const fb_table *t, int id, const char **s, uint32_t *n);

/* Vector elements (k < v->n; a k out of range is an error). */
uint64_t fb_vec_uint(fb_reader *r, const fb_vec *v, uint32_t k);
int64_t fb_vec_int(fb_reader *r, const fb_vec *v, uint32_t k);
float fb_vec_float(fb_reader *r, const fb_vec *v, uint32_t k);
/* Element k of a vector of tables (esize 4). */
fb_table fb_vec_table(fb_reader *r, const fb_vec *v, uint32_t k);
/* Pointer to the first byte of a vector of bytes (valid for v->n * v->esize bytes). */
const uint8_t *fb_vec_bytes(const fb_reader *r, const fb_vec *v);

#endif
