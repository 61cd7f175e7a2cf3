/* Shared pieces of mien's libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines LLVMFuzzerTestOneInput for one parser. The same file is built two ways:
 *   - `make fuzz`: with clang's -fsanitize=fuzzer,address,undefined, a coverage-guided
 *     campaign seeded from real files (build-fuzz/);
 *   - `make test`: linked with tests/fuzz/replay.c into the sanitizer build, which replays
 *     the committed corpus (tests/fuzz/corpus/TARGET/) and the crash inputs of
 *     ../shared/data/fuzz/TARGET/ once each: every input ever found stays a regression test.
 * A target aborts (a finding) when a parser breaks its contract: a failure without a
 * message, or a success with an impossible result. */
#ifndef MIEN_FUZZ_H
#define MIEN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A private folder for this process (created on first use, removed at exit). */
const char *fuzz_dir(void);
/* Write n bytes to fuzz_dir()/name; returns the path (static buffer, one per call site is
 * enough for the targets) or NULL when it cannot be written. */
const char *fuzz_write(const char *name, const void *data, size_t n, char *path, size_t size);
/* Split data at the first occurrence of sep: [0, *n1) and [*off2, size). Without sep the
 * whole input is the first part and the second is empty. */
void fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t *n1, size_t *off2);

/* Separator between a JSON document and its binary weights in the model targets' inputs. */
#define FUZZ_SEP "\n--mien-weights--\n"

#endif
