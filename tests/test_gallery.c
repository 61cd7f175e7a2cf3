/* The gallery: the SQLite store (enroll, list, rename, forget gone from the file, export and
 * import, model mismatch, damaged files), search (exact top-k against a naive loop, the HNSW
 * index's recall), Chinese whispers on synthetic graphs, and end to end through the CLI:
 * enroll the known people, identify every labelled face, cluster the single-person photos.
 *
 * The same cases run again against the PostgreSQL store (the TCases named pg_*): a real
 * server of the test's own (initdb + pg_ctl in a temporary folder, listening on a Unix socket
 * there only, stopped when the runner exits) and a fresh database per gallery. Missing
 * PostgreSQL binaries fail those cases with a message; they are never skipped. */
#include "testutil.h"
#include "pgtest.h"
#include "gallery/cluster.h"
#include "core/sha256.h"
#include "gallery/store.h"
#include "mien.h"

#include <cJSON.h>
#include <libpq-fe.h>
#include <math.h>
#include <pwd.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ==== Helpers ==== */

typedef struct rng { uint64_t s; } rng;

static double rng_uniform(rng *r) { /* xorshift64*, in (0, 1) */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return ((double)((r->s * 2685821657736338717ull) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void random_unit(rng *r, float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) v[i] = (float)rng_normal(r), s += (double)v[i] * v[i];
    for (int i = 0; i < d; i++) v[i] = (float)(v[i] / sqrt(s));
}

/* A centre plus noise, normalised. */
static void near(rng *r, const float *c, float sigma, float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) v[i] = c[i] + sigma * (float)rng_normal(r), s += (double)v[i] * v[i];
    for (int i = 0; i < d; i++) v[i] = (float)(v[i] / sqrt(s));
}

/* tu_temp_file's buffers rotate (and run_mien uses them too): keep paths in a pool of our own. */
static const char *keep(const char *p) {
    static char pool[32][256];
    static int next;
    ck_assert(p != NULL && strlen(p) < sizeof pool[0]);
    char *b = pool[next++ & 31];
    snprintf(b, sizeof pool[0], "%s", p);
    return b;
}

/* ==== The PostgreSQL server of the tests ==== */

/* Set in each test of the pg_* TCases (a checked fixture: it runs in the test's process). */
/* Another handle's commit reaches this one by a NOTIFY, which travels on its own after the
 * commit: a reader may be a moment behind. Poll cond (re-evaluated) for up to 5 s. */
#define EVENTUALLY(cond)                                                      \
    do {                                                                      \
        for (int tries_ = 0; tries_ < 500 && !(cond); tries_++) usleep(10000); \
    } while (0)

static int use_pg;
static void backend_pg(void) { use_pg = 1; }

/* A fresh gallery location: a temporary path (the file does not exist yet), or with the
 * PostgreSQL backend a new database. */
static const char *temp_gallery(void) {
    if (use_pg) return pg_fresh_db();
    const char *p = keep(tu_temp_file(".db", "", 0));
    remove(p);
    return p;
}

static void remove_gallery(const char *p) {
    if (!strncmp(p, "postgresql://", 13)) return; /* the server goes at the end */
    char side[300];
    remove(p);
    const char *sfx[] = {"-wal", "-shm", ".hnsw"};
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", p, sfx[i]);
        remove(side);
    }
}

static mien_gallery *open_ok(const char *path, const mien_gallery_options *o) {
    mien_gallery *g;
    int rc = mien_gallery_open(path, o, &g);
    ck_assert_msg(rc == MIEN_OK, "open %s: %s", path, mien_gallery_errmsg(g));
    return g;
}

static void sha_of_int(int i, char hex[65]) {
    char b[32];
    snprintf(b, sizeof b, "photo-%d", i);
    gallery_sha256_of(b, strlen(b), hex);
}

/* Enroll n faces (n, d) for name; sha of photo numbers first.. */
static void enroll_ok(mien_gallery *g, const char *name, const char *model, int d, const float *v,
                      int n, int first_photo) {
    mien_gallery_face f[64];
    char sha[64][65];
    ck_assert(n <= 64);
    for (int i = 0; i < n; i++) {
        sha_of_int(first_photo + i, sha[i]);
        f[i] = (mien_gallery_face){v + (size_t)i * d, {10.0f * i, 20, 30, 40}, sha[i]};
    }
    int added = -1;
    int rc = mien_gallery_enroll(g, name, model, d, f, n, &added);
    ck_assert_msg(rc == MIEN_OK, "enroll %s: %s", name, mien_gallery_errmsg(g));
    ck_assert_int_eq(added, n);
}


static int contains(const char *hay, size_t n, const void *needle, size_t m) {
    for (size_t i = 0; m <= n && i + m <= n; i++)
        if (!memcmp(hay + i, needle, m)) return 1;
    return 0;
}

/* ==== Store ==== */

START_TEST(sha256_vectors) {
    char h[65];
    gallery_sha256_of("abc", 3, h);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    gallery_sha256_of("", 0, h);
    ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    gallery_sha256 c;
    ck_assert_int_eq(gallery_sha256_init(&c), 0);
    for (size_t i = 0; i < strlen(m); i++) gallery_sha256_update(&c, m + i, 1); /* byte by byte */
    gallery_sha256_hex(&c, h);
    ck_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(enroll_list_rename) {
    const char *path = temp_gallery();
    const int d = 16;
    rng r = {42};
    float v[4 * 16];
    for (int i = 0; i < 4; i++) random_unit(&r, v + i * d, d);
    mien_gallery *g = open_ok(path, NULL);
    enroll_ok(g, "zoë", "test-model", d, v, 2, 0);
    enroll_ok(g, "adam", "test-model", d, v + 2 * d, 1, 2);
    enroll_ok(g, "zoë", "test-model", d, v + 3 * d, 1, 3); /* a third face for an existing subject */
    /* The same photo again is skipped. */
    char sha[65];
    sha_of_int(0, sha);
    mien_gallery_face dup = {v, {0}, sha};
    int added = -1;
    ck_assert_int_eq(mien_gallery_enroll(g, "zoë", "test-model", d, &dup, 1, &added), MIEN_OK);
    ck_assert_int_eq(added, 0);
    mien_subject *s;
    int n, nf;
    ck_assert_int_eq(mien_gallery_subjects(g, &s, &n), MIEN_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(s[0].name, "adam"); /* sorted by name */
    ck_assert_int_eq(s[0].n_faces, 1);
    ck_assert_str_eq(s[1].name, "zoë");
    ck_assert_int_eq(s[1].n_faces, 3);
    free(s);
    /* Rename: to a taken name, from a missing one, then for real. */
    ck_assert_int_eq(mien_gallery_rename(g, "adam", "zoë"), MIEN_EINVAL);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "already exists"), "%s", mien_gallery_errmsg(g));
    ck_assert_int_eq(mien_gallery_rename(g, "nobody", "x"), MIEN_ENOTFOUND);
    ck_assert_int_eq(mien_gallery_rename(g, "adam", "eve"), MIEN_OK);
    /* Bad names. */
    const char *bad[] = {"", "unknown", "tab\there", "   ", "\xff\xfe", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(mien_gallery_enroll(g, bad[i], "test-model", d, &dup, 1, NULL) == MIEN_EINVAL,
                      "name %zu accepted", i);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ck_assert_int_eq(mien_gallery_enroll(g, longname, "test-model", d, &dup, 1, NULL), MIEN_EINVAL);
    mien_gallery_close(g);
    /* Everything is in the file: reopen read-only. */
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.read_only = 1;
    g = open_ok(path, &o);
    mien_gallery_count(g, &n, &nf);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(nf, 4);
    char model[64];
    int dim;
    mien_gallery_model(g, model, sizeof model, &dim);
    ck_assert_str_eq(model, "test-model");
    ck_assert_int_eq(dim, d);
    mien_match best;
    int known;
    ck_assert_int_eq(mien_gallery_identify(g, v + 2 * d, d, 0.9f, &best, &known), MIEN_OK);
    ck_assert(known);
    ck_assert_str_eq(best.name, "eve");
    ck_assert_float_eq_tol(best.similarity, 1.0f, 1e-5f);
    ck_assert_int_eq(mien_gallery_forget(g, "eve"), MIEN_EINVAL); /* read-only */
    mien_gallery_close(g);
    remove_gallery(path);
}
END_TEST

START_TEST(forget_is_gone_from_the_file) {
    const char *path = temp_gallery();
    const int d = 32;
    rng r = {7};
    float keep[32], secret[3 * 32];
    random_unit(&r, keep, d);
    for (int i = 0; i < 3; i++) random_unit(&r, secret + i * d, d);
    mien_gallery *g = open_ok(path, NULL);
    enroll_ok(g, "kept_person", "m", d, keep, 1, 0);
    enroll_ok(g, "Secret_Person_Name", "m", d, secret, 3, 1);
    mien_gallery_close(g);
    if (use_pg) {
        /* Deleted rows are gone from every query (the bytes on disk: see the README). */
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM faces"), 4);
        g = open_ok(path, NULL);
        ck_assert_int_eq(mien_gallery_forget(g, "Secret_Person_Name"), MIEN_OK);
        ck_assert_int_eq(mien_gallery_forget(g, "Secret_Person_Name"), MIEN_ENOTFOUND);
        mien_match best;
        int known;
        ck_assert_int_eq(mien_gallery_identify(g, secret, d, -1.0f, &best, &known), MIEN_OK);
        ck_assert_str_eq(best.name, "kept_person");
        mien_gallery_close(g);
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM faces"), 1);
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM subjects WHERE name LIKE 'Secret%'"), 0);
        /* purge (VACUUM) freed the dead tuples' line pointers: only the kept face's tuple
         * remains in the table's (one) page. */
        pg_admin(pg_db_of(path), "CREATE EXTENSION IF NOT EXISTS pageinspect");
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM heap_page_items(get_raw_page("
                                            "'faces', 0)) WHERE t_data IS NOT NULL"), 1);
        return;
    }
    size_t n;
    char *bytes = tu_read_file(path, &n);
    ck_assert(bytes && contains(bytes, n, "Secret_Person_Name", 18));
    ck_assert(contains(bytes, n, secret + d, (size_t)d * 4)); /* the embedding as stored */
    free(bytes);
    g = open_ok(path, NULL);
    ck_assert_int_eq(mien_gallery_forget(g, "Secret_Person_Name"), MIEN_OK);
    ck_assert_int_eq(mien_gallery_forget(g, "Secret_Person_Name"), MIEN_ENOTFOUND);
    /* Gone from memory: search finds only the other one. */
    mien_match best;
    int known;
    ck_assert_int_eq(mien_gallery_identify(g, secret, d, -1.0f, &best, &known), MIEN_OK);
    ck_assert_str_eq(best.name, "kept_person");
    /* Gone from the files while the handle is still open (database and log). */
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    const char *files[] = {path, wal};
    for (int f = 0; f < 2; f++) {
        bytes = tu_read_file(files[f], &n);
        if (!bytes) continue;
        ck_assert_msg(!contains(bytes, n, "Secret_Person_Name", 18), "name left in %s", files[f]);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(!contains(bytes, n, secret + i * d, (size_t)d * 4),
                          "embedding %d left in %s", i, files[f]);
        free(bytes);
    }
    mien_gallery_close(g);
    g = open_ok(path, NULL);
    int ns, nf;
    mien_gallery_count(g, &ns, &nf);
    ck_assert_int_eq(ns, 1);
    ck_assert_int_eq(nf, 1);
    mien_gallery_close(g);
    /* SQLite agrees the file is sound. */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM faces", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_gallery(path);
}
END_TEST

START_TEST(export_import_round_trip) {
    const char *a = temp_gallery(), *b = temp_gallery();
    const char *ea = keep(tu_temp_file(".jsonl", "", 0)), *eb = keep(tu_temp_file(".jsonl", "", 0));
    const int d = 24;
    rng r = {99};
    float v[6 * 24];
    for (int i = 0; i < 6; i++) random_unit(&r, v + i * d, d);
    mien_gallery *g = open_ok(a, NULL);
    enroll_ok(g, "alice", "m", d, v, 3, 0);
    enroll_ok(g, "bob \"the\" builder", "m", d, v + 3 * d, 2, 3);
    enroll_ok(g, "carol", "m", d, v + 5 * d, 1, 5);
    ck_assert_int_eq(mien_gallery_export(g, ea), MIEN_OK);
    mien_gallery_close(g);
    g = open_ok(b, NULL);
    int ns, nf;
    ck_assert_int_eq(mien_gallery_import(g, ea, &ns, &nf), MIEN_OK);
    ck_assert_int_eq(ns, 3);
    ck_assert_int_eq(nf, 6);
    /* Importing again adds nothing (same photos). */
    ck_assert_int_eq(mien_gallery_import(g, ea, &ns, &nf), MIEN_OK);
    ck_assert_int_eq(ns, 0);
    ck_assert_int_eq(nf, 0);
    ck_assert_int_eq(mien_gallery_export(g, eb), MIEN_OK);
    /* Bit-exact embeddings: the best match of each enrolled vector is itself at 1. */
    for (int i = 0; i < 6; i++) {
        mien_match m;
        int n;
        ck_assert_int_eq(mien_gallery_search(g, v + i * d, d, 1, &m, &n), MIEN_OK);
        ck_assert_float_eq_tol(m.similarity, 1.0f, 1e-6f);
    }
    mien_gallery_close(g);
    size_t la, lb;
    char *ta = tu_read_file(ea, &la), *tb = tu_read_file(eb, &lb);
    ck_assert(ta && tb);
    ck_assert_msg(la == lb && !memcmp(ta, tb, la), "exports differ:\n%s\n---\n%s", ta, tb);
    ck_assert(strstr(ta, "\"format\":\"mien-gallery\""));
    free(ta);
    free(tb);
    /* A damaged export is refused as a whole. */
    static const char bad_text[] = "{\"format\":\"mien-gallery\",\"version\":1,\"model\":\"m\",\"dim\":24}\n"
                                   "{\"name\":\"dave\",\"faces\":[]}\n"
                                   "{\"name\":\"erin\",\"faces\":[{\"embedding\":[1,2]}]}\n";
    const char *bad = keep(tu_temp_file(".jsonl", bad_text, strlen(bad_text)));
    g = open_ok(b, NULL);
    ck_assert_int_eq(mien_gallery_import(g, bad, &ns, &nf), MIEN_EFORMAT);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), ":3:"), "should name the line: %s", mien_gallery_errmsg(g));
    mien_gallery_count(g, &ns, NULL);
    ck_assert_int_eq(ns, 3); /* dave was not added either */
    const char *text = keep(tu_temp_file(".jsonl", "hello\n", 6));
    ck_assert_int_eq(mien_gallery_import(g, text, NULL, NULL), MIEN_EFORMAT);
    mien_gallery_close(g);
    remove(bad), remove(text), remove(ea), remove(eb);
    remove_gallery(a);
    remove_gallery(b);
}
END_TEST

/* Faces one by one (what CompreFace-style services address): list with ids, delete one, and
 * a second handle (another process's view) follows the deletion. Both backends. */
START_TEST(single_faces) {
    const char *path = temp_gallery();
    float v[3][16];
    rng r = {11};
    for (int i = 0; i < 3; i++) random_unit(&r, v[i], 16);
    mien_gallery *g = open_ok(path, NULL);
    mien_gallery_face f[3] = {{v[0], {0}, NULL}, {v[1], {0}, NULL}, {v[2], {0}, NULL}};
    ck_assert_int_eq(mien_gallery_enroll(g, "ana", "dlib", 16, f, 2, NULL), MIEN_OK);
    ck_assert_int_eq(mien_gallery_enroll(g, "bo", "dlib", 16, f + 2, 1, NULL), MIEN_OK);
    mien_gallery *h = open_ok(path, NULL); /* a second process's view */
    mien_gallery_face_info *fi;
    int n;
    ck_assert_int_eq(mien_gallery_faces(g, NULL, &fi, &n), MIEN_OK);
    ck_assert_int_eq(n, 3);
    int64_t id1 = fi[1].id, id2 = fi[2].id;
    ck_assert_str_eq(fi[1].subject, "ana");
    free(fi);
    mien_match m;
    int known;
    /* h sees the enrollment (opened after it), then, with PostgreSQL, the deletion. */
    ck_assert_int_eq(mien_gallery_identify(h, v[1], 16, 0.99f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 1);
    ck_assert_int_eq(m.face_id, id1);
    char who[MIEN_GALLERY_NAME_MAX];
    ck_assert_int_eq(mien_gallery_face_delete(g, id1, who, sizeof who), MIEN_OK);
    ck_assert_str_eq(who, "ana");
    ck_assert_int_eq(mien_gallery_face_delete(g, id1, who, sizeof who), MIEN_ENOTFOUND);
    ck_assert_int_eq(mien_gallery_identify(g, v[2], 16, 0.99f, &m, &known), MIEN_OK);
    ck_assert(known && m.face_id == id2);
    ck_assert_int_eq(mien_gallery_identify(g, v[1], 16, 0.99f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 0);
    if (use_pg) { /* SQLite handles see the file as it was when opened (mien.h) */
        EVENTUALLY(mien_gallery_identify(h, v[1], 16, 0.99f, &m, &known) == MIEN_OK && !known);
        ck_assert_int_eq(mien_gallery_identify(h, v[1], 16, 0.99f, &m, &known), MIEN_OK);
        ck_assert_int_eq(known, 0);
        int ns, nf;
        mien_gallery_count(h, &ns, &nf);
        ck_assert_int_eq(nf, 2);
    }
    mien_gallery_close(h);
    mien_gallery_close(g);
    remove_gallery(path);
}
END_TEST

START_TEST(model_mismatch_refused) {
    const char *path = temp_gallery();
    float v[16], w[8];
    rng r = {5};
    random_unit(&r, v, 16);
    random_unit(&r, w, 8);
    mien_gallery *g = open_ok(path, NULL);
    enroll_ok(g, "a", "dlib", 16, v, 1, 0);
    mien_gallery_face f = {w, {0}, NULL};
    ck_assert_int_eq(mien_gallery_enroll(g, "b", "dlib", 8, &f, 1, NULL), MIEN_EMISMATCH);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "dlib"), "%s", mien_gallery_errmsg(g));
    f.embedding = v;
    ck_assert_int_eq(mien_gallery_enroll(g, "b", "faceres", 16, &f, 1, NULL), MIEN_EMISMATCH);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "faceres") && strstr(mien_gallery_errmsg(g), "--embedder dlib"),
                  "%s", mien_gallery_errmsg(g));
    mien_match m;
    int n;
    ck_assert_int_eq(mien_gallery_search(g, w, 8, 1, &m, &n), MIEN_EMISMATCH);
    /* An export of another model. */
    static const char other_text[] = "{\"format\":\"mien-gallery\",\"version\":1,\"model\":\"faceres\",\"dim\":16}\n";
    const char *other = keep(tu_temp_file(".jsonl", other_text, strlen(other_text)));
    ck_assert_int_eq(mien_gallery_import(g, other, NULL, NULL), MIEN_EMISMATCH);
    mien_gallery_close(g);
    /* Opening for another embedder. */
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.model = "faceres";
    o.dim = 1024;
    ck_assert_int_eq(mien_gallery_open(path, &o, &g), MIEN_EMISMATCH);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "faceres") && strstr(mien_gallery_errmsg(g), "--embedder dlib"),
                  "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
    /* Emptied, the gallery takes another model. */
    g = open_ok(path, NULL);
    ck_assert_int_eq(mien_gallery_forget(g, "a"), MIEN_OK);
    enroll_ok(g, "c", "other", 8, w, 1, 1);
    mien_gallery_close(g);
    remove(other);
    remove_gallery(path);
}
END_TEST

/* ==== Collections ==== */

/* Two collections of one gallery keep their people apart: the same subject name in both,
 * faces and images of one unreachable from the other, each bound to its own embedder, and a
 * dropped collection gone from the store (from the SQLite file's bytes too). */
START_TEST(collections_keep_apart) {
    const char *path = temp_gallery();
    const int d = 16;
    float v[4][16], w[8];
    rng r = {21};
    for (int i = 0; i < 4; i++) random_unit(&r, v[i], d);
    random_unit(&r, w, 8);
    mien_gallery *a = open_ok(path, NULL);
    ck_assert_str_eq(mien_gallery_collection(a), MIEN_GALLERY_DEFAULT_COLLECTION);
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.collection = "shop";
    mien_gallery *b = open_ok(path, &o);
    ck_assert_str_eq(mien_gallery_collection(b), "shop");
    enroll_ok(a, "ana", "dlib", d, v[0], 1, 0);
    enroll_ok(b, "ana", "dlib", d, v[1], 1, 0); /* same name, same photo: another collection */
    enroll_ok(b, "bo", "dlib", d, v[2], 1, 1);
    int ns, nf;
    mien_gallery_count(a, &ns, &nf);
    ck_assert_int_eq(ns, 1);
    ck_assert_int_eq(nf, 1);
    mien_gallery_count(b, &ns, &nf);
    ck_assert_int_eq(ns, 2);
    ck_assert_int_eq(nf, 2);
    mien_gallery_face_info *fa, *fb;
    int na, nb;
    ck_assert_int_eq(mien_gallery_faces(a, NULL, &fa, &na), MIEN_OK);
    ck_assert_int_eq(mien_gallery_faces(b, NULL, &fb, &nb), MIEN_OK);
    ck_assert_int_eq(na, 1);
    ck_assert_int_eq(nb, 2);
    int64_t ida = fa[0].id, idb = fb[0].id;
    ck_assert(ida != idb && ida != fb[1].id);
    free(fa);
    free(fb);
    /* Each searches its own faces. */
    mien_match m;
    int known;
    ck_assert_int_eq(mien_gallery_identify(a, v[1], d, 0.99f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 0);
    ck_assert_int_eq(m.face_id, ida);
    ck_assert_int_eq(mien_gallery_identify(b, v[1], d, 0.99f, &m, &known), MIEN_OK);
    ck_assert(known && m.face_id == idb && !strcmp(m.name, "ana"));
    ck_assert_int_eq(mien_gallery_identify(b, v[0], d, 0.99f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 0);
    /* Another collection's face id is unknown here: read, image, delete. */
    float e[16];
    ck_assert_int_eq(mien_gallery_face_embedding(b, ida, e, d), MIEN_ENOTFOUND);
    ck_assert_int_eq(mien_gallery_face_delete(b, ida, NULL, 0), MIEN_ENOTFOUND);
    static const char jpg[] = "\xff\xd8\xff\xe0 not really a jpeg";
    ck_assert_int_eq(mien_gallery_face_image_set(a, ida, "crop", "image/jpeg", jpg, sizeof jpg), MIEN_OK);
    ck_assert_int_eq(mien_gallery_face_image_set(b, ida, "crop", "image/jpeg", jpg, sizeof jpg),
                     MIEN_ENOTFOUND);
    void *img = NULL;
    size_t len = 0;
    char type[64], kind[16];
    ck_assert_int_eq(mien_gallery_face_image(b, ida, &img, &len, type, sizeof type, kind, sizeof kind),
                     MIEN_ENOTFOUND);
    ck_assert_int_eq(mien_gallery_face_image(a, ida, &img, &len, type, sizeof type, kind, sizeof kind),
                     MIEN_OK);
    ck_assert(len == sizeof jpg && !memcmp(img, jpg, len));
    ck_assert_str_eq(type, "image/jpeg");
    ck_assert_str_eq(kind, "crop");
    free(img);
    ck_assert_int_eq(mien_gallery_face_image(b, idb, &img, &len, NULL, 0, NULL, 0), MIEN_ENOTFOUND);
    /* Changes in one leave the other alone. */
    ck_assert_int_eq(mien_gallery_forget(b, "ana"), MIEN_OK);
    ck_assert_int_eq(mien_gallery_rename(b, "bo", "ana"), MIEN_OK);
    ck_assert_int_eq(mien_gallery_identify(a, v[0], d, 0.99f, &m, &known), MIEN_OK);
    ck_assert(known && m.face_id == ida);
    EVENTUALLY(mien_gallery_identify(a, v[0], d, 0.99f, &m, &known) == MIEN_OK && known &&
               m.face_id == ida);
    /* Each collection binds its own embedder. */
    o.collection = "other";
    mien_gallery *c = open_ok(path, &o);
    enroll_ok(c, "x", "faceres", 8, w, 1, 5);
    mien_collection *cv;
    int nc;
    ck_assert_int_eq(mien_gallery_collections(a, &cv, &nc), MIEN_OK);
    ck_assert_int_eq(nc, 3);
    ck_assert_str_eq(cv[0].name, "default");
    ck_assert_str_eq(cv[0].model, "dlib");
    ck_assert(cv[0].n_subjects == 1 && cv[0].n_faces == 1);
    ck_assert_str_eq(cv[1].name, "other");
    ck_assert_str_eq(cv[1].model, "faceres");
    ck_assert_int_eq(cv[1].dim, 8);
    ck_assert_str_eq(cv[2].name, "shop");
    ck_assert(cv[2].n_subjects == 1 && cv[2].n_faces == 1);
    free(cv);
    mien_gallery_close(c);
    /* Names: checked; a missing collection without create. */
    mien_gallery *x = NULL;
    o.collection = "../up";
    ck_assert_int_eq(mien_gallery_open(path, &o, &x), MIEN_EINVAL);
    mien_gallery_close(x);
    o.collection = "nowhere";
    o.create = 0;
    ck_assert_int_eq(mien_gallery_open(path, &o, &x), MIEN_ENOTFOUND);
    ck_assert_msg(strstr(mien_gallery_errmsg(x), "nowhere"), "%s", mien_gallery_errmsg(x));
    mien_gallery_close(x);
    /* Dropping one: gone from the store, the handle refuses changes, the others stay. */
    ck_assert_int_eq(mien_gallery_drop(b), MIEN_OK);
    mien_gallery_count(b, &ns, &nf);
    ck_assert_int_eq(nf, 0);
    mien_gallery_face f1 = {v[3], {0}, NULL};
    ck_assert_int_ne(mien_gallery_enroll(b, "cy", "dlib", d, &f1, 1, NULL), MIEN_OK);
    mien_gallery_close(b);
    o.collection = "shop";
    ck_assert_int_eq(mien_gallery_open(path, &o, &x), MIEN_ENOTFOUND);
    mien_gallery_close(x);
    ck_assert_int_eq(mien_gallery_identify(a, v[0], d, 0.99f, &m, &known), MIEN_OK);
    ck_assert(known && m.face_id == ida);
    mien_gallery_close(a);
    if (!use_pg) {
        size_t n;
        char *bytes = tu_read_file(path, &n);
        ck_assert(bytes != NULL);
        ck_assert_msg(!contains(bytes, n, v[2], (size_t)d * 4), "a dropped embedding is left in the file");
        ck_assert_msg(contains(bytes, n, v[0], (size_t)d * 4), "the default collection's embedding is gone");
        free(bytes);
    } else {
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM collections WHERE name = 'shop'"), 0);
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM faces"), 2);
    }
    remove_gallery(path);
}
END_TEST

/* ==== Galleries of schema 1 (before collections) ==== */

/* The schema 1 tables exactly as the mien of that version created them. */
static const char v1_sqlite_schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE subjects(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE faces(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  subject INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,"
    "  embedding BLOB NOT NULL, model TEXT NOT NULL,"
    "  dim INTEGER NOT NULL CHECK (dim > 0 AND length(embedding) = 4 * dim),"
    "  box_x REAL NOT NULL DEFAULT 0, box_y REAL NOT NULL DEFAULT 0,"
    "  box_w REAL NOT NULL DEFAULT 0, box_h REAL NOT NULL DEFAULT 0,"
    "  image_sha256 TEXT, created INTEGER NOT NULL);"
    "CREATE INDEX faces_subject ON faces(subject);"
    "CREATE UNIQUE INDEX faces_subject_image ON faces(subject, image_sha256);"
    "PRAGMA application_id=1835623790; PRAGMA user_version=1;";
static const char v1_pg_schema[] =
    "CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE subjects(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  name text NOT NULL UNIQUE, created bigint NOT NULL);"
    "CREATE TABLE faces(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  subject bigint NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,"
    "  embedding bytea NOT NULL, model text NOT NULL,"
    "  dim integer NOT NULL CHECK (dim > 0 AND octet_length(embedding) = 4 * dim),"
    "  box_x real NOT NULL DEFAULT 0, box_y real NOT NULL DEFAULT 0,"
    "  box_w real NOT NULL DEFAULT 0, box_h real NOT NULL DEFAULT 0,"
    "  image_sha256 text, created bigint NOT NULL);"
    "CREATE INDEX faces_subject ON faces(subject);"
    "CREATE UNIQUE INDEX faces_subject_image ON faces(subject, image_sha256);"
    "INSERT INTO meta(key, value) VALUES ('format', 'mien-gallery'), ('schema', '1'),"
    "  ('generation', '0'), ('reset', '0');";

/* SQL text of n floats as a little-endian hex literal (X'..' or '\x..'). */
static void hex_floats(const float *v, int n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int b = 0; b < 4; b++) {
            unsigned byte = (u >> (8 * b)) & 0xff;
            *out++ = hx[byte >> 4];
            *out++ = hx[byte & 15];
        }
    }
    *out = 0;
}

/* A gallery of schema 1 at path with ana (2 faces), a forgotten subject, bo (1 face), bound
 * to 'dlib' 16-d, as that version left it. */
static void make_v1_gallery(const char *path, float v[3][16]) {
    char sql[4096], hex[3][16 * 8 + 1];
    for (int i = 0; i < 3; i++) hex_floats(v[i], 16, hex[i]);
    if (use_pg) {
        pg_admin(pg_db_of(path), v1_pg_schema);
        snprintf(sql, sizeof sql,
                 "INSERT INTO meta VALUES ('model', 'dlib'), ('dim', '16');"
                 "INSERT INTO subjects(name, created) VALUES ('ana', 1), ('gone', 2), ('bo', 3);"
                 "DELETE FROM subjects WHERE name = 'gone';"
                 "INSERT INTO faces(subject, embedding, model, dim, image_sha256, created) VALUES"
                 " (1, '\\x%s', 'dlib', 16, 'a', 1), (1, '\\x%s', 'dlib', 16, 'b', 1),"
                 " (3, '\\x%s', 'dlib', 16, 'c', 3);", hex[0], hex[1], hex[2]);
        pg_admin(pg_db_of(path), sql);
        return;
    }
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, v1_sqlite_schema, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "INSERT INTO meta VALUES ('model', 'dlib'), ('dim', '16');"
             "INSERT INTO subjects(name, created) VALUES ('ana', 1), ('gone', 2), ('bo', 3);"
             "DELETE FROM subjects WHERE name = 'gone';"
             "INSERT INTO faces(subject, embedding, model, dim, image_sha256, created) VALUES"
             " (1, X'%s', 'dlib', 16, 'a', 1), (1, X'%s', 'dlib', 16, 'b', 1),"
             " (3, X'%s', 'dlib', 16, 'c', 3);", hex[0], hex[1], hex[2]);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s", err ? err : "?");
    sqlite3_close(db);
}

/* A gallery made before collections is upgraded in place: its people are the default
 * collection's, bound to the model it had, ids kept (a forgotten subject's id is not reused). */
START_TEST(upgrade_from_schema_1) {
    const char *path = temp_gallery();
    float v[3][16];
    rng r = {33};
    for (int i = 0; i < 3; i++) random_unit(&r, v[i], 16);
    make_v1_gallery(path, v);
    if (!use_pg) { /* read-only cannot upgrade: a clear refusal */
        mien_gallery_options ro;
        mien_gallery_options_default(&ro);
        ro.read_only = 1;
        mien_gallery *x = NULL;
        ck_assert_int_eq(mien_gallery_open(path, &ro, &x), MIEN_EUNSUPPORTED);
        ck_assert_msg(strstr(mien_gallery_errmsg(x), "schema 1"), "%s", mien_gallery_errmsg(x));
        mien_gallery_close(x);
    }
    for (int pass = 0; pass < 2; pass++) { /* upgrading, then already upgraded */
        mien_gallery *g = open_ok(path, NULL);
        int ns, nf, dim;
        char model[64];
        mien_gallery_count(g, &ns, &nf);
        ck_assert_int_eq(ns, 2);
        ck_assert_int_eq(nf, 3 + pass);
        ck_assert_int_eq(mien_gallery_model(g, model, sizeof model, &dim), MIEN_OK);
        ck_assert_str_eq(model, "dlib");
        ck_assert_int_eq(dim, 16);
        mien_match m;
        int known;
        ck_assert_int_eq(mien_gallery_identify(g, v[2], 16, 0.99f, &m, &known), MIEN_OK);
        ck_assert(known && !strcmp(m.name, "bo") && m.face_id == 3 && m.subject_id == 3);
        ck_assert_int_eq(mien_gallery_identify(g, v[1], 16, 0.99f, &m, &known), MIEN_OK);
        ck_assert(known && !strcmp(m.name, "ana") && m.face_id == 2);
        if (pass == 0) {
            /* Still one namespace per collection: bo exists, a new subject gets a new id. */
            float w[16];
            random_unit(&r, w, 16);
            enroll_ok(g, "bo", "dlib", 16, w, 1, 9);
            mien_subject *sv;
            int n;
            ck_assert_int_eq(mien_gallery_subject_add(g, "cy", NULL), MIEN_OK);
            ck_assert_int_eq(mien_gallery_subjects(g, &sv, &n), MIEN_OK);
            ck_assert_int_eq(n, 3);
            ck_assert_str_eq(sv[2].name, "cy");
            ck_assert_int_gt(sv[2].id, 3);
            free(sv);
            ck_assert_int_eq(mien_gallery_forget(g, "cy"), MIEN_OK);
            /* A second collection beside the upgraded one. */
            mien_gallery_options o;
            mien_gallery_options_default(&o);
            o.collection = "new";
            mien_gallery *h = open_ok(path, &o);
            enroll_ok(h, "ana", "dlib", 16, v[0], 1, 0);
            mien_gallery_close(h);
        }
        mien_gallery_close(g);
    }
    if (use_pg) {
        ck_assert_int_eq(pg_query_int(path, "SELECT value::int FROM meta WHERE key = 'schema'"), 2);
        ck_assert_int_eq(pg_query_int(path, "SELECT count(*) FROM meta WHERE key = 'model'"), 0);
    } else {
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 2);
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    remove_gallery(path);
}
END_TEST

START_TEST(damaged_files_fail_cleanly) {
    mien_gallery *g;
    ck_assert_msg(!use_pg, "SQLite files only: pg_errors is the PostgreSQL counterpart");
    /* Not a database. */
    static const char junk_text[] = "this is not an SQLite database, just some text that is long enough";
    const char *junk = keep(tu_temp_file(".db", junk_text, strlen(junk_text)));
    ck_assert_int_eq(mien_gallery_open(junk, NULL, &g), MIEN_EFORMAT);
    ck_assert_msg(strlen(mien_gallery_errmsg(g)) > 10, "no message");
    mien_gallery_close(g);
    remove(junk);
    /* An SQLite file of something else. */
    const char *other = temp_gallery();
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(other, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(mien_gallery_open(other, NULL, &g), MIEN_EFORMAT);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "not a mien gallery"), "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
    remove_gallery(other);
    /* A real gallery cut in half, and one with its pages overwritten. */
    const char *path = temp_gallery();
    rng r = {3};
    float v[64 * 128];
    for (int i = 0; i < 64; i++) random_unit(&r, v + i * 128, 128);
    g = open_ok(path, NULL);
    for (int s = 0; s < 8; s++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", s);
        enroll_ok(g, name, "m", 128, v + s * 8 * 128, 8, s * 8);
    }
    mien_gallery_close(g);
    size_t n;
    char *bytes = tu_read_file(path, &n);
    ck_assert(bytes && n > 8192);
    const char *half = keep(tu_temp_file(".db", bytes, n / 2));
    int rc = mien_gallery_open(half, NULL, &g);
    ck_assert_msg(rc == MIEN_EFORMAT || rc == MIEN_EIO, "half a gallery opened: %d", rc);
    ck_assert_msg(strlen(mien_gallery_errmsg(g)) > 10, "no message");
    mien_gallery_close(g);
    /* Every page but the first (the schema): whichever tables an open reads are garbage. */
    memset(bytes + 4096, 0xA5, n - 4096);
    const char *scribbled = keep(tu_temp_file(".db", bytes, n));
    rc = mien_gallery_open(scribbled, NULL, &g);
    ck_assert_msg(rc == MIEN_EFORMAT || rc == MIEN_EIO, "a scribbled gallery opened: %d", rc);
    mien_gallery_close(g);
    free(bytes);
    remove_gallery(half);
    remove_gallery(scribbled);
    remove_gallery(path);
    /* Missing, without create. */
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.create = 0;
    ck_assert_int_eq(mien_gallery_open("/nonexistent/dir/gallery.db", &o, &g), MIEN_ENOTFOUND);
    mien_gallery_close(g);
    /* The default location follows XDG_DATA_HOME, then HOME. */
    char buf[512], *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    setenv("XDG_DATA_HOME", "/x/data", 1);
    ck_assert_int_eq(mien_gallery_default_path(buf, sizeof buf), MIEN_OK);
    ck_assert_str_eq(buf, "/x/data/mien/gallery.db");
    unsetenv("XDG_DATA_HOME");
    ck_assert_int_eq(mien_gallery_default_path(buf, sizeof buf), MIEN_OK);
    ck_assert_msg(strstr(buf, "/.local/share/mien/gallery.db"), "%s", buf);
    if (old_xdg) setenv("XDG_DATA_HOME", old_xdg, 1);
    free(old_xdg);
}
END_TEST

START_TEST(pg_errors) {
    mien_gallery *g;
    /* A server that is not there: MIEN_EIO with libpq's reason. */
    int rc = mien_gallery_open("postgresql:///x?host=/nonexistent-mien&connect_timeout=2", NULL, &g);
    ck_assert_int_eq(rc, MIEN_EIO);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "cannot connect") &&
                  strstr(mien_gallery_errmsg(g), "nonexistent-mien"), "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
    /* A bad URI; and the password never appears in messages. */
    rc = mien_gallery_open("postgresql://u:hunter2@/x?nosuchoption=1", NULL, &g);
    ck_assert_int_eq(rc, MIEN_EIO);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "nosuchoption") &&
                  !strstr(mien_gallery_errmsg(g), "hunter2"), "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
    char red[256];
    gallery_store_pg_redact("postgresql://bob:s3cret@db:5432/g?sslmode=require&password=x2&a=b",
                            red, sizeof red);
    ck_assert_str_eq(red, "postgresql://bob:***@db:5432/g?sslmode=require&password=***&a=b");
    /* An existing database without a gallery, not to be created: not found. */
    const char *uri = temp_gallery();
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.create = 0;
    ck_assert_int_eq(mien_gallery_open(uri, &o, &g), MIEN_ENOTFOUND);
    mien_gallery_close(g);
    o.create = 1;
    o.read_only = 1;
    ck_assert_int_eq(mien_gallery_open(uri, &o, &g), MIEN_ENOTFOUND);
    mien_gallery_close(g);
    /* Tables of the same names that are not a gallery: refused, untouched. */
    pg_admin(pg_db_of(uri), "CREATE TABLE meta(key text, value text)");
    ck_assert_int_eq(mien_gallery_open(uri, NULL, &g), MIEN_EFORMAT);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "not a mien gallery"), "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
    /* A face row damaged behind our back. */
    uri = temp_gallery();
    float v[8];
    rng r = {4};
    random_unit(&r, v, 8);
    g = open_ok(uri, NULL);
    enroll_ok(g, "a", "m", 8, v, 1, 0);
    mien_gallery_close(g);
    pg_admin(pg_db_of(uri), "ALTER TABLE faces DROP CONSTRAINT faces_check; "
                            "UPDATE faces SET embedding = '\\x0102'");
    ck_assert_int_eq(mien_gallery_open(uri, NULL, &g), MIEN_EFORMAT);
    ck_assert_msg(strstr(mien_gallery_errmsg(g), "damaged"), "%s", mien_gallery_errmsg(g));
    mien_gallery_close(g);
}
END_TEST

/* Two handles on one database (as two `mien serve` on two machines): what one commits, the
 * other sees at its next read, without reopening. */
START_TEST(pg_two_handles_sync) {
    const char *uri = temp_gallery();
    const int d = 16;
    rng r = {21};
    float v[4 * 16];
    for (int i = 0; i < 4; i++) random_unit(&r, v + i * d, d);
    mien_gallery *a = open_ok(uri, NULL), *b = open_ok(uri, NULL);
    mien_match m;
    int n, known, ns, nf;
    ck_assert_int_eq(mien_gallery_search(b, v, d, 1, &m, &n), MIEN_OK);
    ck_assert_int_eq(n, 0);
    /* A enrolls: B finds the new subject on its next search. */
    enroll_ok(a, "alice", "m", d, v, 2, 0);
    EVENTUALLY(mien_gallery_identify(b, v, d, 0.9f, &m, &known) == MIEN_OK && known);
    ck_assert_int_eq(mien_gallery_identify(b, v, d, 0.9f, &m, &known), MIEN_OK);
    ck_assert_msg(known && !strcmp(m.name, "alice"), "B did not see alice: %s", m.name);
    /* More faces for her and a second person (incremental), then B enrolls too. */
    enroll_ok(a, "alice", "m", d, v + 2 * d, 1, 2);
    enroll_ok(b, "bob", "m", d, v + 3 * d, 1, 3);
    mien_gallery_count(b, &ns, &nf);
    ck_assert_int_eq(ns, 2);
    ck_assert_int_eq(nf, 4);
    EVENTUALLY(mien_gallery_identify(a, v + 3 * d, d, 0.9f, &m, &known) == MIEN_OK && known &&
               !strcmp(m.name, "bob"));
    ck_assert_int_eq(mien_gallery_identify(a, v + 3 * d, d, 0.9f, &m, &known), MIEN_OK);
    ck_assert_msg(known && !strcmp(m.name, "bob"), "A did not see bob: %s", m.name);
    mien_gallery_count(a, &ns, &nf);
    ck_assert_int_eq(nf, 4);
    /* Renamed by B, seen by A. */
    ck_assert_int_eq(mien_gallery_rename(b, "bob", "robert"), MIEN_OK);
    mien_subject *sv;
    EVENTUALLY(mien_gallery_subjects(a, &sv, &n) == MIEN_OK &&
               (n == 2 && !strcmp(sv[1].name, "robert") ? (free(sv), 1) : (free(sv), 0)));
    ck_assert_int_eq(mien_gallery_subjects(a, &sv, &n), MIEN_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(sv[1].name, "robert");
    free(sv);
    /* A forgets alice: B no longer finds her. */
    ck_assert_int_eq(mien_gallery_forget(a, "alice"), MIEN_OK);
    EVENTUALLY(mien_gallery_identify(b, v, d, -1.0f, &m, &known) == MIEN_OK &&
               strcmp(m.name, "alice") != 0);
    ck_assert_int_eq(mien_gallery_identify(b, v, d, -1.0f, &m, &known), MIEN_OK);
    ck_assert_msg(strcmp(m.name, "alice") != 0, "B still finds alice");
    ck_assert_str_eq(m.name, "robert");
    mien_gallery_count(b, &ns, &nf);
    ck_assert_int_eq(ns, 1);
    ck_assert_int_eq(nf, 1);
    /* B renames to a name A took meanwhile: refused (B catches up inside its transaction). */
    enroll_ok(a, "carol", "m", d, v, 1, 10);
    ck_assert_int_eq(mien_gallery_rename(b, "robert", "carol"), MIEN_EINVAL);
    /* Emptied by one handle and bound to another model: the other follows. */
    ck_assert_int_eq(mien_gallery_forget(a, "carol"), MIEN_OK);
    ck_assert_int_eq(mien_gallery_forget(a, "robert"), MIEN_OK);
    float w[8];
    random_unit(&r, w, 8);
    enroll_ok(a, "dave", "other", 8, w, 1, 20);
    ck_assert_int_eq(mien_gallery_identify(b, w, 8, 0.9f, &m, &known), MIEN_OK);
    ck_assert_msg(known && !strcmp(m.name, "dave"), "B did not follow the rebind: %s", m.name);
    mien_gallery_close(a);
    mien_gallery_close(b);
}
END_TEST

/* ==== Search ==== */

START_TEST(exact_topk_matches_naive) {
    const char *path = temp_gallery();
    const int d = 32, n_subj = 300, k = 5, n_q = 40;
    rng r = {2024};
    float *v = malloc((size_t)n_subj * 4 * d * sizeof *v), *q = malloc((size_t)n_q * d * sizeof *q);
    int *owner = malloc((size_t)n_subj * 4 * sizeof *owner), nv = 0;
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.ann = 0;
    mien_gallery *g = open_ok(path, &o);
    for (int s = 0; s < n_subj; s++) {
        float c[32];
        random_unit(&r, c, d);
        int nf = 1 + s % 4;
        for (int f = 0; f < nf; f++) near(&r, c, 0.1f, v + (size_t)(nv + f) * d, d);
        char name[16];
        snprintf(name, sizeof name, "s%03d", s);
        enroll_ok(g, name, "m", d, v + (size_t)nv * d, nf, nv);
        for (int f = 0; f < nf; f++) owner[nv + f] = s;
        nv += nf;
    }
    for (int i = 0; i < n_q; i++) near(&r, v + (size_t)(i * 7 % nv) * d, 0.2f, q + (size_t)i * d, d);
    mien_match *batch = calloc((size_t)n_q * k, sizeof *batch);
    int *nb = calloc((size_t)n_q, sizeof *nb);
    ck_assert_int_eq(mien_gallery_search_batch(g, q, n_q, d, k, batch, nb), MIEN_OK);
    for (int i = 0; i < n_q; i++) {
        /* Naive: the best face of each subject, then the k best subjects. */
        float best[300];
        for (int s = 0; s < n_subj; s++) best[s] = -INFINITY;
        for (int j = 0; j < nv; j++) {
            double dot = 0;
            for (int t = 0; t < d; t++) dot += (double)q[i * d + t] * v[j * d + t];
            if (dot > best[owner[j]]) best[owner[j]] = (float)dot;
        }
        mien_match one[5];
        int n1;
        ck_assert_int_eq(mien_gallery_search(g, q + (size_t)i * d, d, k, one, &n1), MIEN_OK);
        ck_assert_int_eq(n1, k);
        ck_assert_int_eq(nb[i], k);
        for (int rank = 0; rank < k; rank++) {
            int arg = 0;
            for (int s = 1; s < n_subj; s++)
                if (best[s] > best[arg]) arg = s;
            char name[16];
            snprintf(name, sizeof name, "s%03d", arg);
            ck_assert_msg(!strcmp(one[rank].name, name), "query %d rank %d: %s, naive %s", i, rank,
                          one[rank].name, name);
            ck_assert_float_eq_tol(one[rank].similarity, best[arg], 1e-5f);
            ck_assert_str_eq(batch[i * k + rank].name, one[rank].name);
            ck_assert_float_eq_tol(batch[i * k + rank].similarity, one[rank].similarity, 1e-5f);
            best[arg] = -INFINITY;
        }
    }
    /* k larger than the gallery: every subject once. */
    mien_match *all = calloc(400, sizeof *all);
    int n_all;
    ck_assert_int_eq(mien_gallery_search(g, q, d, 400, all, &n_all), MIEN_OK);
    ck_assert_int_eq(n_all, n_subj);
    for (int i = 1; i < n_all; i++) ck_assert(all[i].similarity <= all[i - 1].similarity);
    free(all);
    mien_gallery_close(g);
    free(v), free(q), free(owner), free(batch), free(nb);
    remove_gallery(path);
}
END_TEST

START_TEST(ann_recall_small) {
    const char *exact_path = temp_gallery(), *ann_path = temp_gallery();
    const int d = 64, n_subj = 1000, per = 4, n_q = 300;
    rng r = {77};
    float *v = malloc((size_t)n_subj * per * d * sizeof *v), *q = malloc((size_t)n_q * d * sizeof *q);
    float *centres = malloc((size_t)n_subj * d * sizeof *centres);
    mien_gallery_options oe, oa;
    mien_gallery_options_default(&oe);
    oe.ann = 0;
    mien_gallery_options_default(&oa);
    oa.ann = 1;
    mien_gallery *ge = open_ok(exact_path, &oe), *ga = open_ok(ann_path, &oa);
    for (int s = 0; s < n_subj; s++) {
        random_unit(&r, centres + s * d, d);
        for (int f = 0; f < per; f++) near(&r, centres + s * d, 0.08f, v + (size_t)(s * per + f) * d, d);
        char name[16];
        snprintf(name, sizeof name, "s%04d", s);
        enroll_ok(ge, name, "m", d, v + (size_t)s * per * d, per, s * per);
        enroll_ok(ga, name, "m", d, v + (size_t)s * per * d, per, s * per);
    }
    ck_assert(!mien_gallery_ann_active(ge));
    ck_assert(mien_gallery_ann_active(ga));
    for (int i = 0; i < n_q; i++) near(&r, centres + (i * 13 % n_subj) * d, 0.08f, q + (size_t)i * d, d);
    mien_match *me = calloc((size_t)n_q, sizeof *me), *ma = calloc((size_t)n_q, sizeof *ma);
    int *ne = calloc((size_t)n_q, sizeof *ne), *na = calloc((size_t)n_q, sizeof *na);
    ck_assert_int_eq(mien_gallery_search_batch(ge, q, n_q, d, 1, me, ne), MIEN_OK);
    ck_assert_int_eq(mien_gallery_search_batch(ga, q, n_q, d, 1, ma, na), MIEN_OK);
    int hit = 0;
    for (int i = 0; i < n_q; i++) {
        hit += na[i] == 1 && ma[i].face_id == me[i].face_id;
        if (na[i] == 1 && ma[i].face_id == me[i].face_id)
            ck_assert_float_eq_tol(ma[i].similarity, me[i].similarity, 1e-5f);
    }
    ck_assert_msg(hit >= 0.99 * n_q, "recall@1 %d / %d", hit, n_q);
    /* Forget removes from the index too; the cache written at close is used on reopen. */
    ck_assert_int_eq(mien_gallery_forget(ga, ma[0].name), MIEN_OK);
    mien_match after;
    int n1;
    ck_assert_int_eq(mien_gallery_search(ga, q, d, 1, &after, &n1), MIEN_OK);
    ck_assert_msg(strcmp(after.name, ma[0].name) != 0, "forgotten subject still found");
    if (use_pg) { /* no cache file beside a database */
        mien_gallery_close(ga);
        mien_gallery_close(ge);
        free(v), free(q), free(centres), free(me), free(ma), free(ne), free(na);
        return;
    }
    mien_gallery_close(ga);
    char cache[300];
    snprintf(cache, sizeof cache, "%s.hnsw", ann_path);
    ck_assert_msg(access(cache, F_OK) == 0, "no index cache written");
    ga = open_ok(ann_path, &oa);
    mien_match again;
    ck_assert_int_eq(mien_gallery_search(ga, q, d, 1, &again, &n1), MIEN_OK);
    ck_assert_str_eq(again.name, after.name);
    mien_gallery_close(ga);
    /* A damaged cache is ignored (rebuilt), never trusted. */
    FILE *f = fopen(cache, "r+b");
    ck_assert(f != NULL);
    fseek(f, 200, SEEK_SET);
    fwrite("garbage garbage garbage", 1, 23, f);
    fclose(f);
    ga = open_ok(ann_path, &oa);
    ck_assert_int_eq(mien_gallery_search(ga, q, d, 1, &again, &n1), MIEN_OK);
    ck_assert_str_eq(again.name, after.name);
    mien_gallery_close(ga);
    mien_gallery_close(ge);
    free(v), free(q), free(centres), free(me), free(ma), free(ne), free(na);
    remove_gallery(exact_path);
    remove_gallery(ann_path);
}
END_TEST

typedef struct reader_arg {
    mien_gallery *g;
    const float *q;
    int d, fails;
} reader_arg;

static void *reader(void *p) {
    reader_arg *a = p;
    for (int i = 0; i < 200; i++) {
        mien_match m[3];
        int n;
        if (mien_gallery_search(a->g, a->q, a->d, 3, m, &n) || n < 1) a->fails++;
    }
    return NULL;
}

START_TEST(concurrent_readers_one_writer) {
    const char *path = temp_gallery();
    const int d = 16;
    rng r = {11};
    float v[16];
    random_unit(&r, v, d);
    mien_gallery *g = open_ok(path, NULL);
    enroll_ok(g, "first", "m", d, v, 1, 0);
    pthread_t t[4];
    reader_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (reader_arg){g, v, d, 0};
        pthread_create(&t[i], NULL, reader, &a[i]);
    }
    for (int s = 0; s < 20; s++) {
        float w[16];
        random_unit(&r, w, d);
        char name[16];
        snprintf(name, sizeof name, "w%d", s);
        enroll_ok(g, name, "m", d, w, 1, 100 + s);
        if (s % 3 == 0) ck_assert_int_eq(mien_gallery_forget(g, name), MIEN_OK);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].fails, 0);
    }
    mien_gallery_close(g);
    remove_gallery(path);
}
END_TEST

/* ==== Clustering ==== */

START_TEST(chinese_whispers_synthetic) {
    /* Cliques {0..4}, {5..8}, {9..11}, node 12 alone, one bridge 4-5, self loops everywhere. */
    int start[14], nbr[128], n = 13, e = 0;
    int group[13] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3};
    for (int i = 0; i < n; i++) {
        start[i] = e;
        for (int j = 0; j < n; j++)
            if ((group[i] == group[j] && group[i] != 3) || i == j || (i == 4 && j == 5) || (i == 5 && j == 4))
                nbr[e++] = j;
    }
    start[n] = e;
    int labels[13];
    for (uint64_t seed = 1; seed <= 5; seed++) {
        int count = gallery_chinese_whispers(n, start, nbr, NULL, 100, seed, labels);
        ck_assert_int_eq(count, 4);
        for (int i = 0; i < n; i++) ck_assert_int_eq(labels[i], group[i]); /* numbered by size */
    }
    /* Embeddings: 4 people, 6 faces each, well apart. */
    rng r = {123};
    const int d = 64;
    float c[4][64], v[24 * 64];
    for (int p = 0; p < 4; p++) random_unit(&r, c[p], d);
    for (int i = 0; i < 24; i++) near(&r, c[i % 4], 0.03f, v + i * d, d);
    int lab[24], nc;
    ck_assert_int_eq(mien_cluster(v, 24, d, 0.8f, 0, 0, lab, &nc), MIEN_OK);
    ck_assert_int_eq(nc, 4);
    for (int i = 0; i < 24; i++) ck_assert_int_eq(lab[i], lab[i % 4]);
    ck_assert_int_eq(mien_cluster(v, 0, d, 0.8f, 0, 0, lab, &nc), MIEN_OK);
    ck_assert_int_eq(nc, 0);
}
END_TEST

/* ==== End to end: the known people through the CLI ==== */


static const char *known_gallery(void) {
    const char *g = temp_gallery();
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(),
                      tu_path("enroll --gallery '%s' --from-dir %s/people/examples/knn_examples/train", g,
                              tu_data_dir()),
                      &out, &err);
    ck_assert_msg(rc == 0, "enroll failed (%d): %s", rc, err);
    ck_assert_msg(strstr(out, "5 subjects, 9 faces"), "%s", out);
    free(out), free(err);
    return g;
}

START_TEST(identify_labelled_faces) {
    const char *g = known_gallery();
    char *labels = tu_read_file(tu_path("%s/people/labels.tsv", tu_data_dir()), NULL);
    ck_assert(labels != NULL);
    /* One identify run over every labelled photo. */
    char args[16384], *names[64];
    int n = snprintf(args, sizeof args, "identify --json --gallery '%s'", g), photos = 0;
    char *save = NULL;
    for (char *l = strtok_r(labels, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (*l == '#' || !*l) continue;
        char *tab = strchr(l, '\t');
        ck_assert(tab && photos < 64);
        *tab = 0;
        names[photos++] = tab + 1;
        n += snprintf(args + n, sizeof args - (size_t)n, " %s/people/%s", tu_data_dir(), l);
    }
    ck_assert_int_ge(photos, 20);
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(), args, &out, &err);
    ck_assert_msg(rc == 0, "identify failed (%d): %s", rc, err);
    const char *gallery_people[] = {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"};
    int line = 0, faces = 0, unknown_ok = 0, extra = 0;
    save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        ck_assert(line < photos);
        cJSON *o = cJSON_Parse(l);
        ck_assert_msg(o != NULL, "not JSON: %s", l);
        const char *image = cJSON_GetObjectItem(o, "image")->valuestring;
        cJSON *fa = cJSON_GetObjectItem(o, "faces");
        /* Faces come left to right; check anyway. */
        int nf = cJSON_GetArraySize(fa);
        double prev_x = -1;
        char got[1024] = "", want[1024] = "", copy[256];
        for (int i = 0; i < nf; i++) {
            cJSON *f = cJSON_GetArrayItem(fa, i);
            double x = cJSON_GetArrayItem(cJSON_GetObjectItem(f, "box"), 0)->valuedouble;
            ck_assert_msg(x >= prev_x, "%s: faces not left to right", image);
            prev_x = x;
            size_t at = strlen(got);
            snprintf(got + at, sizeof got - at, "%s%s(%.3f to %s)", i ? "," : "",
                     cJSON_GetObjectItem(f, "name")->valuestring,
                     cJSON_GetObjectItem(f, "similarity")->valuedouble,
                     cJSON_GetObjectItem(f, "nearest")->valuestring);
        }
        snprintf(copy, sizeof copy, "%s", names[line]);
        int k = 0;
        char *s2 = NULL;
        for (char *who = strtok_r(copy, ",", &s2); who; who = strtok_r(NULL, ",", &s2), k++) {
            int enrolled = 0;
            for (int p = 0; p < 5; p++) enrolled |= !strcmp(who, gallery_people[p]);
            size_t at = strlen(want);
            snprintf(want + at, sizeof want - at, "%s%s", k ? "," : "", enrolled ? who : "unknown");
            unknown_ok += !enrolled && strstr(image, "lin-manuel-miranda.png") != NULL;
        }
        /* The names alone, for the comparison. */
        char names_only[1024] = "";
        for (int i = 0; i < nf; i++) {
            size_t at = strlen(names_only);
            snprintf(names_only + at, sizeof names_only - at, "%s%s", i ? "," : "",
                     cJSON_GetObjectItem(cJSON_GetArrayItem(fa, i), "name")->valuestring);
        }
        int more = 0;
        ck_assert_msg(tu_labels_agree(names_only, want, &more), "%s: found %s, labelled %s", image, got, want);
        extra += more;
        faces += k;
        cJSON_Delete(o);
    }
    ck_assert_int_eq(line, photos);
    ck_assert_int_ge(faces, 25);
    ck_assert_msg(unknown_ok == 1, "lin-manuel-miranda.png should come back unknown");
    ck_assert_msg(extra <= 2, "%d faces beyond the labels", extra); /* see tu_labels_agree */
    free(out), free(err), free(labels);
    /* --draw writes a PNG with the names. */
    const char *png = keep(tu_temp_file(".png", "", 0));
    rc = tu_run_mien(tu_mien_bin_fast(),
                  tu_path("identify --gallery '%s' --draw %s %s/people/examples/two_people.jpg", g, png,
                          tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "obama") && strstr(out, "biden"), "%s %s", out, err);
    size_t len;
    char *b = tu_read_file(png, &len);
    ck_assert_msg(b && len > 1000 && !memcmp(b, "\x89PNG", 4), "no PNG written");
    free(b), free(out), free(err);
    remove(png);
    remove_gallery(g);
}
END_TEST

START_TEST(cluster_known_people) {
    /* Single-person photos of the five known people. */
    static const struct { const char *path, *who; } ph[] = {
        {"examples/knn_examples/train/alex_lacamoire/img1.jpg", "alex"},
        {"examples/alex-lacamoire.png", "alex"},
        {"examples/knn_examples/test/alex_lacamoire1.jpg", "alex"},
        {"examples/knn_examples/train/biden/biden.jpg", "biden"},
        {"examples/knn_examples/train/biden/biden2.jpg", "biden"},
        {"tests/test_images/biden.jpg", "biden"},
        {"examples/knn_examples/train/kit_harington/john1.jpeg", "kit"},
        {"examples/knn_examples/train/kit_harington/john2.jpeg", "kit"},
        {"examples/knn_examples/test/johnsnow_test1.jpg", "kit"},
        {"examples/knn_examples/train/obama/obama.jpg", "obama"},
        {"examples/knn_examples/train/obama/obama2.jpg", "obama"},
        {"examples/knn_examples/test/obama1.jpg", "obama"},
        {"tests/test_images/obama3.jpg", "obama"},
        {"examples/obama-480p.jpg", "obama"},
        {"examples/knn_examples/train/rose_leslie/img1.jpg", "rose"},
        {"examples/knn_examples/train/rose_leslie/img2.jpg", "rose"},
    };
    const int n = (int)(sizeof ph / sizeof ph[0]);
    char args[8192];
    int len = snprintf(args, sizeof args, "cluster --json");
    for (int i = 0; i < n; i++)
        len += snprintf(args + len, sizeof args - (size_t)len, " %s/people/%s", tu_data_dir(), ph[i].path);
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(), args, &out, &err);
    ck_assert_msg(rc == 0, "cluster failed (%d): %s", rc, err);
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o != NULL, "not JSON: %s", out);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "faces")->valueint, n);
    cJSON *clusters = cJSON_GetObjectItem(o, "clusters"), *c;
    ck_assert_msg(cJSON_GetArraySize(clusters) == 5, "%d clusters for 5 people: %s",
                  cJSON_GetArraySize(clusters), out);
    /* Each cluster is one person, and each person one cluster. */
    const char *seen[5] = {0};
    int n_seen = 0;
    cJSON_ArrayForEach(c, clusters) {
        const char *who = NULL;
        cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(c, "faces")) {
            const char *img = cJSON_GetObjectItem(f, "image")->valuestring;
            const char *w = NULL;
            for (int i = 0; i < n && !w; i++)
                if (strstr(img, ph[i].path)) w = ph[i].who;
            ck_assert(w != NULL);
            if (!who) who = w;
            ck_assert_msg(!strcmp(who, w), "cluster mixes %s and %s", who, w);
        }
        for (int i = 0; i < n_seen; i++) ck_assert_msg(strcmp(seen[i], who) != 0, "%s split", who);
        seen[n_seen++] = who;
    }
    cJSON_Delete(o);
    free(out), free(err);
}
END_TEST

/* ==== CLI failures (sanitizer build) ==== */

START_TEST(cli_errors) {
    char *out, *err;
    const char *g = temp_gallery();
    /* A gallery that does not exist: identify and subjects say so, create nothing. */
    int rc = tu_run_mien(tu_mien_bin(), tu_path("subjects --gallery '%s'", g), &out, &err);
    ck_assert_msg(rc == 1 && strstr(err, "no gallery"), "exit %d: %s", rc, err);
    if (use_pg) {
        ck_assert_int_eq(pg_query_int(g, "SELECT count(*) FROM pg_tables WHERE tablename = 'faces'"), 0);
    } else {
        ck_assert(access(g, F_OK) != 0);
    }
    free(out), free(err);
    /* A damaged one. */
    static const char junk_text[] = "definitely not a database file, but long enough....";
    const char *junk = use_pg ? "postgresql:///nosuchdb?host=/nonexistent&connect_timeout=2"
                              : keep(tu_temp_file(".db", junk_text, strlen(junk_text)));
    rc = tu_run_mien(tu_mien_bin(), tu_path("subjects --gallery '%s'", junk), &out, &err);
    ck_assert_msg(rc == 1 && strlen(err) > 10 && !strstr(err, "Sanitizer"), "exit %d: %s", rc, err);
    free(out), free(err);
    if (!use_pg) remove(junk);
    /* enroll: a photo without a face is an error for that photo (exit 2). */
    rc = tu_run_mien(tu_mien_bin(),
                  tu_path("enroll --gallery '%s' someone %s/dlib_faces/dogs.jpg", g, tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 2 && strstr(err, "no face"), "exit %d: %s", rc, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("forget --gallery '%s' nobody", g), &out, &err);
    ck_assert_msg(rc == 1 && strstr(err, "nobody"), "exit %d: %s", rc, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("enroll --gallery '%s' unknown %s/people/examples/obama.jpg", g,
                                         tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 2 && strstr(err, "reserved"), "exit %d: %s", rc, err);
    free(out), free(err);
    /* Export, import, rename, forget through the CLI (sanitizer build). */
    rc = tu_run_mien(tu_mien_bin(), tu_path("enroll --gallery '%s' obama %s/people/examples/obama.jpg", g,
                                         tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(out), free(err);
    const char *ex = keep(tu_temp_file(".jsonl", "", 0)), *g2 = temp_gallery();
    rc = tu_run_mien(tu_mien_bin(), tu_path("export --gallery '%s' %s && %s import --gallery '%s' %s && "
                                         "%s rename --gallery '%s' obama barack && "
                                         "%s subjects --json --gallery '%s'",
                                         g, ex, tu_mien_bin(), g2, ex, tu_mien_bin(), g2, tu_mien_bin(), g2),
                  &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "\"name\":\"barack\""), "exit %d: %s %s", rc, out, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("forget --gallery '%s' barack", g2), &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(out), free(err);
    /* Collections through the CLI: another one beside the default, listed, searched, deleted. */
    rc = tu_run_mien(tu_mien_bin(), tu_path("enroll --gallery '%s' --collection team biden %s/people/examples/biden.jpg "
                                         "&& %s collections --json --gallery '%s' && %s identify --gallery '%s' "
                                         "--collection team %s/people/examples/two_people.jpg", g, tu_data_dir(),
                                         tu_mien_bin(), g, tu_mien_bin(), g, tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "\"name\":\"team\",\"subjects\":1") &&
                  strstr(out, "\"name\":\"default\",\"subjects\":1") && strstr(out, "biden") &&
                  !strstr(out, "obama "), "exit %d: %s %s", rc, out, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("subjects --gallery '%s' --collection nowhere", g), &out, &err);
    ck_assert_msg(rc == 1 && strstr(err, "nowhere"), "exit %d: %s", rc, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("collections delete team --gallery '%s' && %s collections --gallery '%s'",
                                         g, tu_mien_bin(), g), &out, &err);
    ck_assert_msg(rc == 0 && !strstr(out, "team") && strstr(out, "default"), "exit %d: %s %s", rc, out, err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), tu_path("collections delete default --gallery '%s'", g), &out, &err);
    ck_assert_msg(rc == 2, "deleting the default collection: exit %d: %s", rc, err);
    free(out), free(err);
    /* --help everywhere. */
    const char *cmds[] = {"enroll", "identify", "subjects", "forget", "rename", "export", "import",
                          "cluster", "eval identify", "eval cluster", "collections"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        rc = tu_run_mien(tu_mien_bin(), tu_path("%s --help", cmds[i]), &out, &err);
        ck_assert_msg(rc == 0 && strstr(out, "usage: mien"), "%s --help: %d", cmds[i], rc);
        free(out), free(err);
    }
    remove(ex);
    remove_gallery(g);
    remove_gallery(g2);
}
END_TEST

Suite *suite_gallery(void) {
    Suite *s = suite_create("gallery");
    TCase *t = tcase_create("store");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, sha256_vectors);
    tcase_add_test(t, enroll_list_rename);
    tcase_add_test(t, forget_is_gone_from_the_file);
    tcase_add_test(t, export_import_round_trip);
    tcase_add_test(t, model_mismatch_refused);
    tcase_add_test(t, single_faces);
    tcase_add_test(t, collections_keep_apart);
    tcase_add_test(t, upgrade_from_schema_1);
    tcase_add_test(t, damaged_files_fail_cleanly);
    suite_add_tcase(s, t);
    TCase *q = tcase_create("search");
    tcase_set_timeout(q, 300);
    tcase_add_test(q, exact_topk_matches_naive);
    tcase_add_test(q, ann_recall_small);
    tcase_add_test(q, concurrent_readers_one_writer);
    tcase_add_test(q, chinese_whispers_synthetic);
    suite_add_tcase(s, q);
    TCase *e = tcase_create("e2e");
    tcase_set_timeout(e, 900);
    tcase_add_test(e, identify_labelled_faces);
    tcase_add_test(e, cluster_known_people);
    tcase_add_test(e, cli_errors);
    suite_add_tcase(s, e);
    /* The same cases against PostgreSQL (those about SQLite files have pg_errors instead). */
    TCase *ps = tcase_create("pg_store");
    tcase_set_timeout(ps, 120);
    tcase_add_unchecked_fixture(ps, pg_start, NULL);
    tcase_add_checked_fixture(ps, backend_pg, NULL);
    tcase_add_test(ps, enroll_list_rename);
    tcase_add_test(ps, forget_is_gone_from_the_file);
    tcase_add_test(ps, export_import_round_trip);
    tcase_add_test(ps, model_mismatch_refused);
    tcase_add_test(ps, single_faces);
    tcase_add_test(ps, collections_keep_apart);
    tcase_add_test(ps, upgrade_from_schema_1);
    tcase_add_test(ps, pg_errors);
    tcase_add_test(ps, pg_two_handles_sync);
    suite_add_tcase(s, ps);
    TCase *pq = tcase_create("pg_search");
    tcase_set_timeout(pq, 300);
    tcase_add_unchecked_fixture(pq, pg_start, NULL);
    tcase_add_checked_fixture(pq, backend_pg, NULL);
    tcase_add_test(pq, exact_topk_matches_naive);
    tcase_add_test(pq, ann_recall_small);
    tcase_add_test(pq, concurrent_readers_one_writer);
    suite_add_tcase(s, pq);
    TCase *pe = tcase_create("pg_e2e");
    tcase_set_timeout(pe, 900);
    tcase_add_unchecked_fixture(pe, pg_start, NULL);
    tcase_add_checked_fixture(pe, backend_pg, NULL);
    tcase_add_test(pe, identify_labelled_faces);
    tcase_add_test(pe, cli_errors);
    suite_add_tcase(s, pe);
    return s;
}
