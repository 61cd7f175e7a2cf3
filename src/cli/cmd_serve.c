/* mien serve: the HTTP service (src/server/); mien keys: its API keys. */
#include "cli/cli.h"
#include "server/server.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== Options ==== */

typedef struct serve_opts {
    const char *gallery, *keys, *host, *role, *name, *service, *collection, *store_images;
    int port, workers, timeout;
    size_t max_body;
    float threshold;
    int has_threshold;
} serve_opts;

static int parse_long(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int serve_extra(void *ctx, const char *opt, const char *val) {
    serve_opts *o = ctx;
    const char **slot = !strcmp(opt, "--gallery") ? &o->gallery
                        : !strcmp(opt, "--keys")  ? &o->keys
                        : !strcmp(opt, "--host")  ? &o->host
                        : !strcmp(opt, "--role")  ? &o->role
                        : !strcmp(opt, "--name")  ? &o->name
                        : !strcmp(opt, "--service") ? &o->service
                        : !strcmp(opt, "--collection") ? &o->collection
                        : !strcmp(opt, "--store-images") ? &o->store_images
                                                  : NULL;
    if (slot) {
        if (!val) return -2;
        *slot = val;
        return 1;
    }
    long v;
    if (!strcmp(opt, "--port") || !strcmp(opt, "--workers") || !strcmp(opt, "--timeout")) {
        if (!val) return -2;
        if (!strcmp(opt, "--port")) {
            if (parse_long(val, 0, 65535, &v)) return -3;
            o->port = (int)v;
        } else if (!strcmp(opt, "--workers")) {
            if (parse_long(val, 1, 256, &v)) return -3;
            o->workers = (int)v;
        } else {
            if (parse_long(val, 1, 3600, &v)) return -3;
            o->timeout = (int)v;
        }
        return 1;
    }
    if (!strcmp(opt, "--max-body")) {
        if (!val) return -2;
        if (parse_long(val, 1, LONG_MAX, &v)) return -3;
        o->max_body = (size_t)v;
        return 1;
    }
    if (!strcmp(opt, "--threshold")) {
        if (!val) return -2;
        char *end;
        o->threshold = strtof(val, &end);
        if (end == val || *end || !(o->threshold >= -1 && o->threshold <= 1)) return -3;
        o->has_threshold = 1;
        return 1;
    }
    return -1;
}

/* The keys file of --keys or the default one; NULL after a message when there is none. */
static srv_keys *open_keys(const char *cmd, const char *path, int create) {
    char def[4096];
    if (!path) {
        if (srv_keys_default_path(def, sizeof def)) {
            fprintf(stderr, "mien %s: no HOME or XDG_DATA_HOME: pass --keys FILE\n", cmd);
            return NULL;
        }
        path = def;
        if (create) cli_make_parent_dirs(path);
    }
    srv_keys *k;
    if (srv_keys_open(path, create, &k)) {
        fprintf(stderr, "mien %s: %s\n", cmd, srv_keys_errmsg(k));
        srv_keys_close(k);
        return NULL;
    }
    return k;
}

/* ==== serve ==== */

static const char serve_usage[] =
    "usage: mien serve [--gallery G] [--port P] [--host ADDR] [--workers N] [--keys FILE]\n"
    "                  [--max-body BYTES] [--timeout S] [--threshold T]\n"
    "\n"
    "Serve the JSON API under /v1 (detect, embed, verify, identify, subjects), /healthz,\n"
    "/metrics (Prometheus), the OpenAPI description at /v1/openapi.json and a web page at /.\n"
    "Every /v1 call needs an API key (header X-API-Key or Authorization: Bearer): create one\n"
    "with 'mien keys add --role admin'. SIGTERM or SIGINT stops it gracefully.\n"
    "\n"
    "  --gallery PATH    the gallery file (default $XDG_DATA_HOME/mien/gallery.db, else\n"
    "                    ~/.local/share/mien/gallery.db)\n"
    "  --port P          TCP port (default 8080; 0: any free port, printed at start)\n"
    "  --host ADDR       address to listen on (default 127.0.0.1; 0.0.0.0 for every one)\n"
    "  --workers N       worker threads, one model session each (default 2)\n"
    "  --keys FILE       API keys file (default keys.db beside the default gallery)\n"
    "  --max-body BYTES  request body limit (default 20971520); larger requests get 413\n"
    "  --timeout S       idle connection timeout in seconds (default 30)\n"
    "  --threshold T     identify/verify threshold (default: the embedder's)\n"
    "  --store-images W  what an enrollment keeps for GET /api/v1/recognition/faces/{id}/img:\n"
    "                    crop (default: the aligned face, a JPEG of a few KB), photo (the photo\n"
    "                    as sent) or none\n"
    "\n"
    "The gallery's collections: a recognition key works on its own; a mien key on the one\n"
    "named by ?collection=NAME, else 'default' (see mien collections).\n"
    "  (and the model and detection options of mien detect)\n";

int cmd_serve(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    serve_opts o = {.port = 8080, .workers = 2, .timeout = 30, .max_body = SRV_DEFAULT_MAX_BODY};
    if (cli_parse(&c, &argc, argv, serve_extra, &o, serve_usage)) return EXIT_USAGE;
    if (argc != 1) {
        fputs(serve_usage, stderr);
        return EXIT_USAGE;
    }
    /* The signals are taken by sigwait below: block them before any thread starts, so that
     * every thread inherits the mask and none of them is interrupted. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    int store_images = SRV_IMAGES_CROP;
    if (o.store_images) {
        if (!strcmp(o.store_images, "crop")) store_images = SRV_IMAGES_CROP;
        else if (!strcmp(o.store_images, "photo")) store_images = SRV_IMAGES_PHOTO;
        else if (!strcmp(o.store_images, "none")) store_images = SRV_IMAGES_NONE;
        else {
            fprintf(stderr, "mien serve: --store-images is crop, photo or none\n");
            return EXIT_USAGE;
        }
    }
    c.cfg.threads = cli_intra_threads(&c, o.workers);
    int status = EXIT_FAIL;
    mien_models *m = NULL;
    mien_gallery *g = NULL;
    srv_keys *k = NULL;
    srv *s = NULL;
    char gpath[4096];
    mien_gallery_options gopt;
    if (!(m = cli_open_models(&c))) goto done;
    if (!(g = cli_open_gallery("serve", o.gallery, 1, m))) goto done;
    if (!(k = open_keys("serve", o.keys, 1))) goto done;
    if (cli_gallery_options("serve", o.gallery, NULL, 1, m, gpath, sizeof gpath, &gopt)) goto done;
    srv_config cfg;
    srv_config_default(&cfg);
    cfg.gallery_path = gpath;
    cfg.gallery_options = &gopt;
    cfg.store_images = store_images;
    if (o.host) cfg.host = o.host;
    cfg.port = o.port;
    cfg.workers = o.workers;
    cfg.max_body = o.max_body;
    cfg.timeout_s = o.timeout;
    if (o.has_threshold) cfg.threshold = o.threshold;
    cfg.det = &c.det;
    if (srv_open(m, g, k, &cfg, &s)) {
        fprintf(stderr, "mien serve: %s\n", srv_errmsg(s));
        goto done;
    }
    srv_key_info *ki = NULL;
    int nk = 0;
    if (srv_keys_list(k, &ki, &nk) == 0 && nk == 0)
        fprintf(stderr, "mien serve: no API key yet: every /v1 call gets 401 until one is made "
                        "with 'mien keys add --role admin'\n");
    free(ki);
    int ns = 0, nf = 0;
    mien_gallery_count(g, &ns, &nf);
    const char *host = cfg.host;
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "mien serve: listening on http://%s%s%s:%d (%d workers, %d subjects, %d faces)\n",
            v6 ? "[" : "", host, v6 ? "]" : "", srv_port(s), o.workers, ns, nf);
    fflush(stderr);
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    fprintf(stderr, "mien serve: %s: finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_shutdown(s, 30);
    status = EXIT_OK;
done:
    srv_close(s);
    srv_keys_close(k);
    mien_gallery_close(g);
    mien_models_close(m);
    if (status == EXIT_OK) fprintf(stderr, "mien serve: stopped\n");
    return status;
}

/* ==== keys ==== */

static const char keys_usage[] =
    "usage: mien keys add --role read|admin [--name LABEL] [--keys FILE]\n"
    "       mien keys add --service recognition [--collection NAME] [--role read|admin] ...\n"
    "       mien keys add --service detection|verification [--name LABEL] [--keys FILE]\n"
    "       mien keys list [--keys FILE] [--json]\n"
    "       mien keys remove NAME [--keys FILE]\n"
    "\n"
    "API keys of mien serve. 'add' prints a new random key once: only its SHA-256 is stored.\n"
    "A mien key (no --service) works on every collection: a read key may detect, embed,\n"
    "verify, identify and list subjects; an admin key may also enroll, rename and delete, and\n"
    "manage keys and collections (/v1/keys, /v1/collections).\n"
    "A service key is a CompreFace service's: a recognition key works on its own face\n"
    "collection only (--collection NAME, default: a collection named after the key; made on\n"
    "first use), as admin (default) or read; a detection key only detects and embeds, a\n"
    "verification key only compares faces; neither touches a collection.\n"
    "Changes take effect at once, also in a running server.\n"
    "\n"
    "  --keys FILE       the keys file (default $XDG_DATA_HOME/mien/keys.db, else\n"
    "                    ~/.local/share/mien/keys.db)\n";

int cmd_keys(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    serve_opts o = {0};
    if (cli_parse(&c, &argc, argv, serve_extra, &o, keys_usage)) return EXIT_USAGE;
    const char *sub = argc > 1 ? argv[1] : "";
    int add = !strcmp(sub, "add"), list = !strcmp(sub, "list"), rm = !strcmp(sub, "remove");
    if ((!add && !list && !rm) || (rm ? argc != 3 : argc != 2)) {
        fputs(keys_usage, stderr);
        return EXIT_USAGE;
    }
    srv_role role = SRV_ROLE_NONE;
    int service = srv_service_parse(o.service);
    if (add) {
        if (service < 0) {
            fprintf(stderr, "mien keys add: --service is recognition, detection or verification\n");
            return EXIT_USAGE;
        }
        role = srv_role_parse(o.role);
        /* A service key's role by default: admin of its collection for recognition (as a
         * CompreFace service key), read for the others. */
        if (!o.role && service == SRV_SERVICE_RECOGNITION) role = SRV_ROLE_ADMIN;
        else if (!o.role && service != SRV_SERVICE_ANY) role = SRV_ROLE_READ;
        if (role == SRV_ROLE_NONE) {
            fprintf(stderr, "mien keys add: --role read or --role admin is needed\n");
            return EXIT_USAGE;
        }
    }
    srv_keys *k = open_keys("keys", o.keys, add);
    if (!k) return EXIT_FAIL;
    int status = EXIT_OK;
    if (add) {
        char key[SRV_KEY_LEN + 1], name[SRV_KEY_NAME_MAX], coll[SRV_COLLECTION_MAX] = "";
        int rc = srv_keys_add_service(k, o.name, role, (srv_service)service, o.collection, key,
                                      name, coll);
        if (rc) {
            fprintf(stderr, "mien keys add: %s\n", srv_keys_errmsg(k));
            status = rc == MIEN_EINVAL ? EXIT_USAGE : EXIT_FAIL;
        } else if (c.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", name);
            cJSON_AddStringToObject(j, "role", srv_role_name(role));
            if (service != SRV_SERVICE_ANY)
                cJSON_AddStringToObject(j, "service", srv_service_name((srv_service)service));
            if (coll[0]) cJSON_AddStringToObject(j, "collection", coll);
            cJSON_AddStringToObject(j, "key", key);
            cli_print_json(j);
        } else {
            printf("%s\n", key);
            if (service == SRV_SERVICE_ANY)
                fprintf(stderr, "mien keys: key '%s' (%s) created; it is shown only this once\n",
                        name, srv_role_name(role));
            else
                fprintf(stderr, "mien keys: %s key '%s' (%s%s%s) created; it is shown only this "
                        "once\n", srv_service_name((srv_service)service), name,
                        srv_role_name(role), coll[0] ? ", collection " : "", coll);
        }
    } else if (list) {
        srv_key_info *v = NULL;
        int n = 0;
        if (srv_keys_list(k, &v, &n)) {
            fprintf(stderr, "mien keys list: %s\n", srv_keys_errmsg(k));
            status = EXIT_FAIL;
        } else if (c.json) {
            cJSON *a = cJSON_CreateArray();
            for (int i = 0; i < n; i++) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "name", v[i].name);
                cJSON_AddStringToObject(j, "role", srv_role_name(v[i].role));
                if (v[i].service != SRV_SERVICE_ANY)
                    cJSON_AddStringToObject(j, "service", srv_service_name(v[i].service));
                if (v[i].collection[0]) cJSON_AddStringToObject(j, "collection", v[i].collection);
                cJSON_AddNumberToObject(j, "created", (double)v[i].created);
                cJSON_AddStringToObject(j, "sha256_prefix", v[i].prefix);
                cJSON_AddItemToArray(a, j);
            }
            cli_print_json(a);
        } else {
            for (int i = 0; i < n; i++) {
                char when[32] = "?";
                time_t t = (time_t)v[i].created;
                struct tm tm;
                if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
                char svc[96];
                if (v[i].service == SRV_SERVICE_ANY) snprintf(svc, sizeof svc, "mien");
                else snprintf(svc, sizeof svc, "%s%s%s", srv_service_name(v[i].service),
                              v[i].collection[0] ? ":" : "", v[i].collection);
                printf("%-24s %-6s %-28s %s  sha256 %s...\n", v[i].name, srv_role_name(v[i].role),
                       svc, when, v[i].prefix);
            }
        }
        free(v);
    } else {
        int rc = srv_keys_remove(k, argv[2]);
        if (rc) {
            fprintf(stderr, "mien keys remove: %s\n", srv_keys_errmsg(k));
            status = EXIT_FAIL;
        } else {
            fprintf(stderr, "mien keys: key '%s' removed\n", argv[2]);
        }
    }
    srv_keys_close(k);
    return status;
}
