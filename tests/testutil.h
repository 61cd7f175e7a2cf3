/* Shared helpers for the test suites. */
#ifndef MIEN_TESTUTIL_H
#define MIEN_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#define SUITE(name) Suite *suite_##name(void);
#include "suites.h"
#undef SUITE

/* Root of the shared test data ($MIEN_DATA, default ../shared/data). */
const char *tu_data_dir(void);
/* Folder of the fetched models ($MIEN_MODELS, default models). */
const char *tu_models_dir(void);
/* Path of the CLI under test ($MIEN_BIN, default build-asan/mien), and of the release
 * build for slow end-to-end runs ($MIEN_BIN_FAST, default build/mien). */
const char *tu_mien_bin(void);
const char *tu_mien_bin_fast(void);
/* snprintf into a static rotating buffer: tu_path("%s/lfw/pairs.txt", tu_data_dir()). */
const char *tu_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run a shell command, capture stdout (malloc'd, NUL-terminated) and the exit status. */
int tu_run(const char *cmd, char **out);
/* The whole file, malloc'd with a NUL after its bytes (*len, when len is not NULL, gets its
 * size), or NULL when it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
/* Run `bin args`: stdout in *out, stderr in *err (both malloc'd), and the exit status. */
int tu_run_mien(const char *bin, const char *args, char **out, char **err);
/* Run a Python tool with Debian's interpreter, `/usr/bin/python3 ARGS 2>&1`: its exit status,
 * and in *out (malloc'd) the last `tail` bytes of what it printed (all of it when tail is 0). */
int tu_python(const char *args, size_t tail, char **out);
/* Run a generator of test files, `/usr/bin/python3 SCRIPT DIR` (after mkdir -p DIR), its
 * output kept in DIR/make.log: its exit status, and the log's last bytes in log (cap bytes). */
int tu_python_generate(const char *script, const char *dir, char *log, size_t cap);
/* Write len bytes to a new temporary file; returns its path (static rotating buffer). */
const char *tu_temp_file(const char *suffix, const void *data, size_t len);
/* Whether the names of the faces found, left to right ("a,unknown,b"), agree with a photo's
 * labels (people/labels.tsv, with "unknown" for the people not enrolled): the labels appear in
 * order, and every other face found is "unknown". people/labels.tsv names the people a photo
 * is about; a bystander it leaves out (the girl at the right of obama_and_biden.jpg) is a face
 * all the same, and a stranger to the gallery. *extra (when not NULL) gets the count of faces
 * beyond the labels. */
int tu_labels_agree(const char *got, const char *want, int *extra);

#endif
