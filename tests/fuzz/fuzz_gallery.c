/* libFuzzer target: `mien import` (the gallery's JSON Lines format: a header line, then one
 * person per line with their faces) into a new SQLite gallery, then `mien export` of the
 * result, which must import again with the same counts.
 * Seeds: exports of small galleries. */
#include "fuzz.h"

#include "mien.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int import_into_new(const char *db, const char *jsonl, int *ns, int *nf) {
    char side[300];
    unlink(db);
    snprintf(side, sizeof side, "%s-wal", db), unlink(side);
    snprintf(side, sizeof side, "%s-shm", db), unlink(side);
    mien_gallery_options o;
    mien_gallery_options_default(&o);
    o.ann = 0;
    mien_gallery *g = NULL;
    int rc = mien_gallery_open(db, &o, &g);
    if (rc != MIEN_OK) abort(); /* a new file in our own folder always opens */
    rc = mien_gallery_import(g, jsonl, ns, nf);
    if (rc != MIEN_OK) {
        if (!mien_gallery_errmsg(g)[0]) abort();
    } else {
        int cs, cf;
        mien_gallery_count(g, &cs, &cf);
        if (cs < 0 || cf < 0) abort();
        char out[256];
        snprintf(out, sizeof out, "%s/export.jsonl", fuzz_dir());
        if (mien_gallery_export(g, out) != MIEN_OK) abort();
        *ns = cs, *nf = cf;
    }
    mien_gallery_close(g);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char in[256], db[256], out[256];
    if (!fuzz_write("import.jsonl", data, size, in, sizeof in)) return 0;
    snprintf(db, sizeof db, "%s/gallery.db", fuzz_dir());
    int ns, nf;
    if (import_into_new(db, in, &ns, &nf) != MIEN_OK) return 0;
    /* What was exported imports again, to the same gallery contents. */
    snprintf(out, sizeof out, "%s/export.jsonl", fuzz_dir());
    char db2[256];
    snprintf(db2, sizeof db2, "%s/gallery2.db", fuzz_dir());
    int ns2, nf2;
    if (import_into_new(db2, out, &ns2, &nf2) != MIEN_OK || ns2 != ns || nf2 != nf) abort();
    return 0;
}
