/* Helpers shared by the fuzz targets (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */
    }
}

const char *fuzz_dir(void) {
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/mien-fuzz-XXXXXX", base && *base && strlen(base) < 40 ? base : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_write(const char *name, const void *data, size_t n, char *path, size_t size) {
    snprintf(path, size, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    if (fclose(f) != 0 || w != n) return NULL;
    return path;
}

void fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t *n1, size_t *off2) {
    size_t ls = strlen(sep);
    for (size_t i = 0; i + ls <= size; i++)
        if (!memcmp(data + i, sep, ls)) {
            *n1 = i;
            *off2 = i + ls;
            return;
        }
    *n1 = size;
    *off2 = size;
}
