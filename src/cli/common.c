/* Shared pieces of the command-line tool. */
#include "cli/cli.h"
#include "server/server.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->models_dir = NULL; /* the library's search (mien_models_open): $MIEN_MODELS, ./models, ... */
    mien_config_default(&c->cfg);
    mien_detect_options_default(&c->det);
}

int cli_ncpu(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int cli_intra_threads(const cli_common *c, int workers) {
    if (workers < 1) workers = 1;
    int cores = c->threads_given ? c->threads : cli_ncpu();
    if (!c->threads_given) {
        double load = 0;
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) {
            if (fscanf(f, "%lf", &load) != 1) load = 0;
            fclose(f);
        }
        cores -= (int)(load + 0.5);
    }
    int t = cores / workers;
    return t < 1 ? 1 : t;
}

static int parse_float(const char *s, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int cli_parse(cli_common *c, int *argc, char **argv, cli_extra_fn extra, void *ctx,
              const char *usage) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            argv[out++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            while (++i < *argc) argv[out++] = argv[i];
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(EXIT_OK);
        }
        /* --opt=value or --opt value */
        char name[64];
        const char *val = NULL, *eq = strchr(a, '=');
        if (eq) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof name) n = sizeof name - 1;
            memcpy(name, a, n);
            name[n] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
#define NEXT()                                                                      \
    do {                                                                            \
        if (!val) {                                                                 \
            if (i + 1 >= *argc) {                                                   \
                fprintf(stderr, "mien %s: %s needs a value\n", argv[0], name);     \
                return EXIT_USAGE;                                                  \
            }                                                                       \
            val = argv[++i];                                                        \
        }                                                                           \
    } while (0)
#define BAD()                                                                               \
    do {                                                                                    \
        fprintf(stderr, "mien %s: bad value '%s' for %s\n", argv[0], val, name);            \
        return EXIT_USAGE;                                                                  \
    } while (0)
        if (!strcmp(name, "--json")) c->json = 1;
        else if (!strcmp(name, "--quiet") || !strcmp(name, "-q")) c->quiet = 1;
        else if (!strcmp(name, "--tile")) c->det.tile = 1;
        else if (!strcmp(name, "--no-flip")) c->cfg.flip = 0;
        else if (!strcmp(name, "--flip")) c->cfg.flip = 1;
        else if (!strcmp(name, "--models")) { NEXT(); c->models_dir = val; }
        else if (!strcmp(name, "--detector")) { NEXT(); c->cfg.detector = val; }
        else if (!strcmp(name, "--embedder") || !strcmp(name, "--model")) { NEXT(); c->cfg.embedder = val; }
        else if (!strcmp(name, "--landmarks")) { NEXT(); c->cfg.landmarks = val; }
        else if (!strcmp(name, "--model-file")) { NEXT(); c->cfg.model_file = val; }
        else if (!strcmp(name, "--backend")) {
            NEXT();
            if (!strcmp(val, "ref")) c->cfg.backend = MIEN_BACKEND_REF;
            else if (!strcmp(val, "xnnpack") || !strcmp(val, "fast")) c->cfg.backend = MIEN_BACKEND_XNNPACK;
            else if (!strcmp(val, "auto")) c->cfg.backend = MIEN_BACKEND_AUTO;
            else BAD();
        } else if (!strcmp(name, "--threads")) {
            NEXT();
            if (!parse_int(val, 0, 1024, &c->threads)) BAD();
            c->threads_given = c->threads > 0;
        } else if (!strcmp(name, "--min-score")) {
            NEXT();
            if (!parse_float(val, &c->det.min_score) || c->det.min_score < 0 || c->det.min_score > 1) BAD();
        } else if (!strcmp(name, "--min-size")) {
            NEXT();
            if (!parse_float(val, &c->det.min_size) || c->det.min_size < 0) BAD();
        } else {
            int r = extra ? extra(ctx, name, val) : -1;
            if (r == -1) {
                fprintf(stderr, "mien %s: unknown option %s (see mien %s --help)\n", argv[0], name,
                        argv[0]);
                return EXIT_USAGE;
            }
            if (r == -2) { /* needs a value that was given as the next argument */
                NEXT();
                r = extra(ctx, name, val);
                if (r < 0) BAD();
            } else if (r == -3) {
                BAD();
            }
        }
#undef NEXT
#undef BAD
    }
    *argc = out;
    if (c->threads == 0) c->threads = cli_ncpu();
    return 0;
}

mien_models *cli_open_models(cli_common *c) {
    mien_models *m;
    int rc = mien_models_open(c->models_dir, &c->cfg, &m);
    if (rc) {
        if (c->models_dir)
            fprintf(stderr, "mien: cannot open models in %s: %s\n", c->models_dir, mien_models_errmsg(m));
        else
            fprintf(stderr, "mien: cannot open models: %s\n", mien_models_errmsg(m));
        if (rc == MIEN_EIO)
            fprintf(stderr, "mien: fetch them with 'make setup' in a checkout (or 'make install' it), "
                            "or name a folder with --models DIR or $MIEN_MODELS\n");
        mien_models_close(m);
        return NULL;
    }
    if (!c->models_dir) {
        snprintf(c->models_buf, sizeof c->models_buf, "%s", mien_models_dir(m));
        c->models_dir = c->models_buf;
    }
    return m;
}

const char *cli_models_dir(cli_common *c) {
    if (c->models_dir) return c->models_dir;
    if (mien_models_find(c->models_buf, sizeof c->models_buf) != MIEN_OK) return "models";
    return c->models_dir = c->models_buf;
}

mien_session *cli_open_session(mien_models *m) {
    mien_session *s;
    if (mien_session_open(m, &s)) {
        fprintf(stderr, "mien: cannot start a session: %s\n", mien_errmsg(s));
        mien_session_close(s);
        return NULL;
    }
    return s;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, int total, int quiet) {
    p->label = label;
    p->total = total;
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->t0 = p->last = cli_now();
}

void cli_progress_update(cli_progress *p, int done) {
    if (!p->enabled) return;
    double t = cli_now();
    if (t - p->last < 0.2 && done < p->total) return;
    p->last = t;
    double rate = done / (t - p->t0 + 1e-9);
    double eta = rate > 0 ? (p->total - done) / rate : 0;
    fprintf(stderr, "\r%s %d/%d  %.1f/s  eta %.0fs   ", p->label, done, p->total, rate, eta);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p, int done) {
    if (!p->enabled) return;
    double t = cli_now() - p->t0;
    fprintf(stderr, "\r%s %d/%d  %.1f/s  %.1fs        \n", p->label, done, p->total,
            done / (t + 1e-9), t);
}

void cli_print_json(cJSON *v) {
    char *s = cJSON_PrintUnformatted(v);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(v);
}

int cli_pick_largest(const mien_face *f, int n) {
    int best = -1;
    float area = -1;
    for (int i = 0; i < n; i++) {
        float a = f[i].box[2] * f[i].box[3];
        if (a > area) area = a, best = i;
    }
    return best;
}

int cli_pick_central(const mien_face *f, int n, int w, int h) {
    /* Nearest to the centre, among faces at least half the size of the largest one. */
    int big = cli_pick_largest(f, n), best = -1;
    if (big < 0) return -1;
    float dmin = INFINITY, minside = 0.5f * fmaxf(f[big].box[2], f[big].box[3]);
    for (int i = 0; i < n; i++) {
        if (fmaxf(f[i].box[2], f[i].box[3]) < minside) continue;
        float dx = f[i].box[0] + f[i].box[2] * 0.5f - w * 0.5f;
        float dy = f[i].box[1] + f[i].box[3] * 0.5f - h * 0.5f;
        float d = dx * dx + dy * dy;
        if (d < dmin) dmin = d, best = i;
    }
    return best;
}

/* One definition of the face JSON for the CLI and the service. */
cJSON *cli_face_json(const mien_face *f) { return srv_face_json(f); }

/* ==== Parallel jobs ==== */

typedef struct par_state {
    mien_models *m;
    cli_job_fn fn;
    void *ctx;
    int n;
    atomic_int next, done, failed;
    cli_progress *prog;
    pthread_mutex_t lock;
} par_state;

typedef struct par_worker {
    par_state *st;
    int id;
    int rc;
} par_worker;

static void *par_main(void *arg) {
    par_worker *w = arg;
    par_state *st = w->st;
    mien_session *s = cli_open_session(st->m);
    if (!s) {
        w->rc = EXIT_FAIL;
        atomic_store(&st->failed, 1);
        return NULL;
    }
    for (;;) {
        if (atomic_load(&st->failed)) break;
        int i = atomic_fetch_add(&st->next, 1);
        if (i >= st->n) break;
        int rc = st->fn(st->ctx, s, w->id, i);
        if (rc) {
            w->rc = rc;
            atomic_store(&st->failed, 1);
            break;
        }
        int d = atomic_fetch_add(&st->done, 1) + 1;
        if (w->id == 0) {
            pthread_mutex_lock(&st->lock);
            cli_progress_update(st->prog, d);
            pthread_mutex_unlock(&st->lock);
        }
    }
    mien_session_close(s);
    return NULL;
}

int cli_parallel(mien_models *m, int threads, int n, cli_job_fn fn, void *ctx,
                 const char *label, int quiet) {
    if (threads < 1) threads = 1;
    if (threads > n && n > 0) threads = n;
    cli_progress prog;
    cli_progress_start(&prog, label, n, quiet);
    par_state st = {.m = m, .fn = fn, .ctx = ctx, .n = n, .prog = &prog};
    atomic_init(&st.next, 0);
    atomic_init(&st.done, 0);
    atomic_init(&st.failed, 0);
    pthread_mutex_init(&st.lock, NULL);
    par_worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    if (!ws || !tid) {
        free(ws);
        free(tid);
        return EXIT_FAIL;
    }
    char *started = calloc((size_t)threads, 1);
    if (!started) {
        free(ws);
        free(tid);
        return EXIT_FAIL;
    }
    for (int t = 0; t < threads; t++) {
        ws[t] = (par_worker){&st, t, 0};
        /* A worker that cannot start leaves its share to the others. */
        if (t > 0 && pthread_create(&tid[t], NULL, par_main, &ws[t]) == 0) started[t] = 1;
    }
    par_main(&ws[0]); /* the calling thread is worker 0 */
    for (int t = 1; t < threads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
    free(started);
    cli_progress_end(&prog, atomic_load(&st.done));
    int rc = 0;
    for (int t = 0; t < threads && !rc; t++) rc = ws[t].rc;
    pthread_mutex_destroy(&st.lock);
    free(ws);
    free(tid);
    return rc;
}
