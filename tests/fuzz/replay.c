/* Replays fuzz inputs through one target without libFuzzer: every file named on the command
 * line, or found (recursively) in a folder named there, goes once through
 * LLVMFuzzerTestOneInput. Built with the sanitizer build by `make test`, so an input that
 * once broke a parser is a regression test for ever. Prints "N inputs" and exits 0; a
 * finding aborts (sanitizer report, exit status not 0). Missing paths are skipped (the shared
 * data may have no folder for a target). */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* As libFuzzer's -malloc_limit_mb: a single allocation above 2100 MB is a finding (the
 * largest a model may make is the 2 GiB activation arena of NN_MAX_ARENA_BYTES). ASAN_OPTIONS
 * from the environment still apply on top. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_allocation_size_mb=2100"; }

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return 0;
}

static long n_inputs;

static void run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return;
    /* An exact-size copy, so that reads past the input's end are caught as libFuzzer would. */
    uint8_t *in = malloc(n ? n : 1);
    if (in) {
        memcpy(in, buf, n);
        LLVMFuzzerTestOneInput(in, n);
        free(in);
        n_inputs++;
    }
    free(buf);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        if (!strstr(path, "README")) run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        size_t len = strlen(path) + strlen(de->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) break;
        snprintf(names[n], len, "%s/%s", path, de->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp); /* the same order on every machine */
    for (size_t i = 0; i < n; i++) {
        run_path(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) run_path(argv[i]);
    printf("%ld inputs\n", n_inputs);
    return 0;
}
