/* Where the models are: the search order of mien_models_open(NULL, ...) (mien.h).
 *
 * The install prefix is not compiled in: it is found from where the code runs, the folder
 * above the one holding libmien.so (dladdr), or above the program's own folder when libmien is
 * linked in statically (/proc/self/exe). So an installed tree works wherever it is put (DESTDIR
 * staging, a moved prefix), and a checkout's build/mien or build/libmien.so finds the
 * checkout's models from any directory. */
#define _GNU_SOURCE /* dladdr */
#include "face/face.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *path) {
    struct stat st;
    return path[0] && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder holding the code that runs this function: libmien.so's, or the program's. */
static int code_dir(char *buf, size_t size) {
    char path[PATH_MAX] = "";
    Dl_info info;
    const char *base = NULL;
    if (dladdr((void *)&models_places, &info) && info.dli_fname && info.dli_fname[0]) {
        base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
    }
    /* In a shared library dli_fname is the library's path; in a program it is only argv[0]. */
    if (base && strstr(base, ".so") && realpath(info.dli_fname, path)) {
        /* path is the library's */
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0) return 0;
        path[n] = '\0';
    }
    char *slash = strrchr(path, '/');
    if (!slash) return 0;
    *slash = '\0';
    if ((size_t)snprintf(buf, size, "%s", path[0] ? path : "/") >= size) return 0;
    return 1;
}

static void add(models_place *p, int *n, const char *label, const char *path, const char *why) {
    models_place *q = &p[(*n)++];
    snprintf(q->label, sizeof q->label, "%s", label);
    if (snprintf(q->path, sizeof q->path, "%s", path ? path : "") >= (int)sizeof q->path) {
        q->path[0] = '\0';
        why = "path too long";
    }
    snprintf(q->why, sizeof q->why, "%s", why ? why : "");
}

int models_places(models_place p[MODELS_MAX_PLACES]) {
    int n = 0;
    char buf[4096 + 64];
    const char *env = getenv("MIEN_MODELS");
    add(p, &n, "$MIEN_MODELS", env && *env ? env : NULL, "not set");

    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) && snprintf(buf, sizeof buf, "%s/models", strcmp(cwd, "/") ? cwd : "") < (int)sizeof buf)
        add(p, &n, "./models", buf, NULL);
    else
        add(p, &n, "./models", "models", NULL);

    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/') { /* the XDG spec ignores relative paths */
        snprintf(buf, sizeof buf, "%s/mien/models", xdg);
        add(p, &n, "$XDG_DATA_HOME/mien/models", buf, NULL);
    } else if (home && *home) {
        snprintf(buf, sizeof buf, "%s/.local/share/mien/models", home);
        add(p, &n, "~/.local/share/mien/models", buf, NULL);
    } else {
        add(p, &n, "user data folder", NULL, "neither $XDG_DATA_HOME nor $HOME is set");
    }

    char here[4096];
    if (code_dir(here, sizeof here)) {
        char prefix[4096];
        snprintf(prefix, sizeof prefix, "%s", here);
        char *slash = strrchr(prefix, '/');
        const char *leaf = slash ? slash + 1 : prefix;
        int build = !strcmp(leaf, "build") || !strncmp(leaf, "build-", 6);
        if (slash) *slash = '\0';
        snprintf(buf, sizeof buf, "%s/share/mien/models", prefix);
        add(p, &n, "install prefix", buf, NULL);
        if (build) {
            snprintf(buf, sizeof buf, "%s/models", prefix);
            add(p, &n, "build tree", buf, NULL);
        }
    } else {
        add(p, &n, "install prefix", NULL, "cannot tell where libmien runs from");
    }
    return n;
}

int mien_models_find(char *buf, size_t size) {
    if (!buf || !size) return MIEN_EINVAL;
    models_place p[MODELS_MAX_PLACES];
    int n = models_places(p);
    for (int i = 0; i < n; i++)
        if (is_dir(p[i].path)) {
            if ((size_t)snprintf(buf, size, "%s", p[i].path) >= size) return MIEN_ETOOBIG;
            return MIEN_OK;
        }
    size_t len = (size_t)snprintf(buf, size, "no models folder; looked in:");
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s %s (%s)", i ? ";" : "",
                                p[i].path[0] ? p[i].path : p[i].label,
                                p[i].path[0] ? "no such folder" : p[i].why);
    return MIEN_ENOTFOUND;
}
