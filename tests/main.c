/* Test runner: every suite of tests/suites.h, then one closing line "N passed, N failed". */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_data_dir(void) {
    const char *d = getenv("MIEN_DATA");
    return d && *d ? d : "../shared/data";
}

const char *tu_models_dir(void) {
    const char *d = getenv("MIEN_MODELS");
    return d && *d ? d : "models";
}

const char *tu_mien_bin(void) {
    const char *d = getenv("MIEN_BIN");
    return d && *d ? d : "build-asan/mien";
}

const char *tu_mien_bin_fast(void) {
    const char *d = getenv("MIEN_BIN_FAST");
    return d && *d ? d : "build/mien";
}

char *tu_read_file(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

int tu_run_mien(const char *bin, const char *args, char **out, char **err) {
    const char *ef = tu_temp_file(".err", "", 0);
    int rc = tu_run(tu_path("%s %s 2>%s", bin, args, ef), out);
    *err = tu_read_file(ef, NULL);
    remove(ef);
    if (!*err) *err = strdup("");
    return rc;
}

const char *tu_path(const char *fmt, ...) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

int tu_run(const char *cmd, char **out) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, p);
        if (!got) break;
        n += got;
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int tu_python(const char *args, size_t tail, char **out) {
    char *all = NULL;
    int rc = tu_run(tu_path("/usr/bin/python3 %s 2>&1", args), &all);
    size_t n = all ? strlen(all) : 0;
    if (all && tail && n > tail) memmove(all, all + n - tail, tail + 1);
    if (out) *out = all ? all : strdup("");
    else free(all);
    return rc;
}

int tu_python_generate(const char *script, const char *dir, char *log, size_t cap) {
    char *out = NULL;
    int rc = tu_run(tu_path("mkdir -p '%s' && /usr/bin/python3 %s '%s' > '%s/make.log' 2>&1; "
                            "st=$?; tail -c %zu '%s/make.log'; exit $st",
                            dir, script, dir, dir, cap ? cap - 1 : 0, dir),
                    &out);
    if (cap) snprintf(log, cap, "%s", out ? out : "");
    free(out);
    return rc;
}

int tu_labels_agree(const char *got, const char *want, int *extra) {
    char g[4096], w[4096];
    snprintf(g, sizeof g, "%s", got);
    snprintf(w, sizeof w, "%s", want);
    char *sg = NULL, *sw = NULL, *next = strtok_r(w, ",", &sw);
    int more = 0;
    for (char *t = strtok_r(g, ",", &sg); t; t = strtok_r(NULL, ",", &sg)) {
        if (next && !strcmp(t, next))
            next = strtok_r(NULL, ",", &sw);
        else if (!strcmp(t, "unknown"))
            more++;
        else
            return 0;
    }
    if (extra) *extra = more;
    return next == NULL;
}

const char *tu_temp_file(const char *suffix, const void *data, size_t len) {
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "/tmp/mien-test-XXXXXX%s", suffix);
    int fd = mkstemps(b, (int)strlen(suffix));
    if (fd < 0) return NULL;
    if (len && write(fd, data, len) != (ssize_t)len) { close(fd); return NULL; }
    close(fd);
    return b;
}

int main(int argc, char **argv) {
    /* Optional argument: run only the suite of that name. */
    const char *only = argc > 1 ? argv[1] : NULL;
    SRunner *sr = NULL;
#define SUITE(name)                                                         \
    if (!only || strcmp(only, #name) == 0) {                                \
        if (!sr) sr = srunner_create(suite_##name());                       \
        else srunner_add_suite(sr, suite_##name());                         \
    }
#include "suites.h"
#undef SUITE
    if (!sr) {
        fprintf(stderr, "no suite named %s\n", only);
        return 2;
    }
    srunner_run_all(sr, CK_NORMAL);
    int run = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("%d passed, %d failed\n", run - failed, failed);
    return failed ? 1 : 0;
}
