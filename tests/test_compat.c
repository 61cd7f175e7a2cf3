/* Compatibility and reliability of `mien serve`, each test against a real server (the release
 * build, tu_mien_bin_fast(), on a free loopback port with a temporary gallery and key file):
 *   - the gallery calls behind the CompreFace routes (faces by id, empty subjects);
 *   - CompreFace's REST API, exercised by tests/compat/compreface_client.py, a client written
 *     from CompreFace's document alone;
 *   - the web page in headless Chromium (tests/web/page_test.mjs; fails when Chromium or
 *     playwright-core is missing: `make setup` installs them);
 *   - malformed HTTP, huge bodies and bad JSON: a clear 4xx and the server keeps serving;
 *   - a short load test (bench/load_test.sh, wrk): zero errors;
 * A build without a fast backend (make XNNPACK=0) runs the models on the reference backend,
 * about 12 times slower (mien embed on four demo photos: 3.2 s of CPU against 0.22 s): the
 * suite allows it more time, and the load test asks it for error-free answers, not a rate.
 *   - kill -9 during a bulk enroll: every acknowledged enrollment survives the restart and
 *     the SQLite file passes PRAGMA integrity_check. */
#include "testutil.h"

#include "mien.h"
#include "nn/exec.h"
#include "pgtest.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ==== A server under test ==== */

typedef struct server {
    const char *bin;      /* the mien binary serving */
    pid_t pid;
    int port;
    char dir[256];        /* temp folder: gallery.db, keys, server.log */
    char gallery[512];    /* --gallery: dir/gallery.db, or a PostgreSQL URI */
    char admin[128];      /* admin key */
    char read[128];       /* read key */
} server;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* Send req (len bytes) and read the whole reply (the request asks Connection: close).
 * Returns the status code, -1 when the connection failed; *reply (may be NULL) gets the
 * malloc'd reply, headers included. */
static int http_raw(int port, const void *req, size_t len, char **reply, int timeout_s) {
    if (reply) *reply = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    const char *p = req;
    size_t left = len;
    while (left > 0) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may answer (413) before reading everything */
        p += w;
        left -= (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = -1;
    if (reply) *reply = buf;
    else free(buf);
    return status;
}

/* One request with an optional body; *body_out (may be NULL) gets the reply's body. */
static int http(int port, const char *method, const char *path, const char *key,
                const char *ctype, const void *body, size_t len, char **body_out) {
    char head[2048];
    int h = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%s%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, key ? "X-API-Key: " : "", key ? key : "", key ? "\r\n" : "",
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", len);
    char *req = malloc((size_t)h + len);
    memcpy(req, head, (size_t)h);
    if (len) memcpy(req + h, body, len);
    char *reply;
    int st = http_raw(port, req, (size_t)h + len, &reply, 120);
    free(req);
    if (body_out) {
        const char *b = reply ? strstr(reply, "\r\n\r\n") : NULL;
        *body_out = strdup(b ? b + 4 : "");
    }
    free(reply);
    return st;
}


static char *read_file_ok(const char *path, size_t *len) {
    char *b = tu_read_file(path, len);
    ck_assert_msg(b != NULL, "cannot read %s", path);
    return b;
}

/* A key of the role (and service options, e.g. "--service recognition --collection a"),
 * added to the server's key file with the CLI. */
static void add_key_opts(server *s, const char *name, const char *opts, char *key, size_t size) {
    char *out = NULL;
    int rc = tu_run(tu_path("%s keys add --name %s %s --keys %s/keys.db 2>>%s/server.log",
                            tu_mien_bin_fast(), name, opts, s->dir, s->dir), &out);
    ck_assert_msg(rc == 0, "mien keys add failed (%d): %s", rc, out);
    /* The key is the one line printed on stdout. */
    char *end = out + strlen(out);
    while (end > out && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\r')) *--end = 0;
    char *w = end;
    while (w > out && w[-1] != '\n' && w[-1] != ' ') w--;
    ck_assert_msg(*w && strlen(w) < size, "no key in: %s", out);
    snprintf(key, size, "%s", w);
    free(out);
}

static void add_key(server *s, const char *name, const char *role, char *key, size_t size) {
    add_key_opts(s, name, tu_path("--role %s", role), key, size);
}

static void server_spawn(server *s) {
    s->port = free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* A failed check ends the test process: the server must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *log = fopen(tu_path("%s/server.log", s->dir), "a");
        if (log) {
            dup2(fileno(log), 1);
            dup2(fileno(log), 2);
        }
        const char *bin = s->bin;
        execl(bin, bin, "serve", "--port", port, "--gallery", s->gallery,
              "--keys", tu_path("%s/keys.db", s->dir), "--models", tu_models_dir(), "--workers",
              "2", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    /* Ready when /healthz answers 200 (loading the models takes a moment). */
    for (int i = 0; i < 600; i++) {
        if (http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0, NULL) == 200) return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *log = NULL;
            tu_run(tu_path("tail -20 %s/server.log", s->dir), &log);
            ck_abort_msg("mien serve exited (status %d): %s", st, log);
        }
        usleep(100000);
    }
    ck_abort_msg("mien serve did not answer /healthz on port %d in 60 s", s->port);
}

/* Start bin (tu_mien_bin(), the sanitizer build, where speed allows; else the release one)
 * on gallery (NULL: a file in the server's folder). */
static void server_start_on(server *s, const char *bin, const char *gallery) {
    memset(s, 0, sizeof *s);
    s->bin = bin;
    snprintf(s->dir, sizeof s->dir, "/tmp/mien-compat-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->gallery, sizeof s->gallery, "%s", gallery ? gallery : tu_path("%s/gallery.db", s->dir));
    add_key(s, "admin", "admin", s->admin, sizeof s->admin);
    add_key(s, "reader", "read", s->read, sizeof s->read);
    server_spawn(s);
}

static void server_start(server *s, const char *bin) { server_start_on(s, bin, NULL); }

/* Send sig and wait: the exit status (128 + signal when killed by one). */
static int server_kill(server *s, int sig) {
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Stop gracefully: the server must exit 0 and, for the sanitizer build, report nothing (a
 * leak or a UBSan finding makes the exit status 86 or leaves a report in the log). */
static void server_stop(server *s) {
    int rc = server_kill(s, SIGTERM);
    char *log = NULL;
    tu_run(tu_path("cat %s/server.log", s->dir), &log);
    int clean = rc == 0 && !strstr(log, "Sanitizer") && !strstr(log, "runtime error");
    tu_run(tu_path("rm -rf %s", s->dir), NULL);
    ck_assert_msg(clean, "mien serve exited with %d:\n%s", rc, log);
    free(log);
}

static int healthy(const server *s) {
    return http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0, NULL) == 200;
}

/* ==== The gallery calls behind the CompreFace routes ==== */

START_TEST(gallery_faces_by_id) {
    const char *path = tu_temp_file(".db", NULL, 0);
    unlink(path);
    mien_gallery *g = NULL;
    ck_assert_int_eq(mien_gallery_open(path, NULL, &g), MIEN_OK);
    int created = 0;
    ck_assert_int_eq(mien_gallery_subject_add(g, "ana", &created), MIEN_OK);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(mien_gallery_subject_add(g, "ana", &created), MIEN_OK);
    ck_assert_int_eq(created, 0);
    float e[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}};
    char sha[3][65];
    mien_gallery_face f[3];
    for (int i = 0; i < 3; i++) {
        memset(sha[i], 'a' + i, 64);
        sha[i][64] = 0;
        f[i] = (mien_gallery_face){.embedding = e[i], .box = {1, 2, 3, 4}, .image_sha256 = sha[i]};
    }
    ck_assert_int_eq(mien_gallery_enroll(g, "ana", "m", 4, f, 2, NULL), MIEN_OK);
    ck_assert_int_eq(mien_gallery_enroll(g, "bo", "m", 4, f + 2, 1, NULL), MIEN_OK);
    mien_gallery_face_info *fi;
    int n;
    ck_assert_int_eq(mien_gallery_faces(g, NULL, &fi, &n), MIEN_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(fi[0].subject, "ana");
    ck_assert_str_eq(fi[2].subject, "bo");
    ck_assert_str_eq(fi[1].image_sha256, sha[1]);
    ck_assert(fi[0].id < fi[1].id && fi[1].id < fi[2].id);
    ck_assert(fi[0].box[3] == 4.0f);
    int64_t id1 = fi[1].id, id2 = fi[2].id;
    free(fi);
    float v[4];
    ck_assert_int_eq(mien_gallery_face_embedding(g, id1, v, 4), MIEN_OK);
    ck_assert(v[1] == 1.0f && v[0] == 0.0f);
    ck_assert_int_eq(mien_gallery_face_embedding(g, id1, v, 3), MIEN_EMISMATCH);
    char who[MIEN_GALLERY_NAME_MAX];
    ck_assert_int_eq(mien_gallery_face_delete(g, id1, who, sizeof who), MIEN_OK);
    ck_assert_str_eq(who, "ana");
    ck_assert_int_eq(mien_gallery_face_delete(g, id1, who, sizeof who), MIEN_ENOTFOUND);
    ck_assert_int_eq(mien_gallery_face_embedding(g, id1, v, 4), MIEN_ENOTFOUND);
    /* The rows after the deleted one still search right. */
    mien_match m;
    int known;
    ck_assert_int_eq(mien_gallery_identify(g, e[2], 4, 0.9f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 1);
    ck_assert_str_eq(m.name, "bo");
    ck_assert(m.face_id == id2);
    ck_assert_int_eq(mien_gallery_identify(g, e[1], 4, 0.9f, &m, &known), MIEN_OK);
    ck_assert_int_eq(known, 0);
    /* More results asked than there are subjects: each query's row is still k apart. */
    mien_match mm[2 * 5];
    int nm[2];
    float q2[2][4] = {{0, 0, 1, 0}, {1, 0, 0, 0}};
    ck_assert_int_eq(mien_gallery_search_batch(g, &q2[0][0], 2, 4, 5, mm, nm), MIEN_OK);
    ck_assert_int_eq(nm[0], 2);
    ck_assert_int_eq(nm[1], 2);
    ck_assert_str_eq(mm[0].name, "bo");
    ck_assert_str_eq(mm[5].name, "ana");
    ck_assert_str_eq(mm[6].name, "bo");
    ck_assert_int_eq(mien_gallery_faces(g, "nobody", &fi, &n), MIEN_ENOTFOUND);
    mien_gallery_close(g);
    /* And after reopening: the deletion is in the file. */
    ck_assert_int_eq(mien_gallery_open(path, NULL, &g), MIEN_OK);
    ck_assert_int_eq(mien_gallery_faces(g, "ana", &fi, &n), MIEN_OK);
    ck_assert_int_eq(n, 1);
    free(fi);
    int ns, nf;
    mien_gallery_count(g, &ns, &nf);
    ck_assert_int_eq(ns, 2);
    ck_assert_int_eq(nf, 2);
    mien_gallery_close(g);
    unlink(path);
}
END_TEST

/* ==== CompreFace's API, through a client written from its document ==== */

/* The client with the keys of a CompreFace application: two recognition services (two face
 * collections), their read-only keys, a detection and a verification service, and a mien
 * admin key; gallery NULL is a file, else a PostgreSQL database. */
static void run_compreface_client(const char *bin, const char *gallery) {
    server s;
    server_start_on(&s, bin, gallery);
    char ka[128], kar[128], kb[128], kd[128], kv[128];
    add_key_opts(&s, "shop_a", "--service recognition --collection shop_a", ka, sizeof ka);
    add_key_opts(&s, "shop_a_viewer", "--service recognition --collection shop_a --role read", kar, sizeof kar);
    add_key_opts(&s, "shop_b", "--service recognition", kb, sizeof kb);
    add_key_opts(&s, "detector", "--service detection", kd, sizeof kd);
    add_key_opts(&s, "verifier", "--service verification", kv, sizeof kv);
    char *out = NULL;
    int rc = tu_python(tu_path("tests/compat/compreface_client.py --url http://127.0.0.1:%d "
                               "--key %s --read-key %s --key-b %s --detection-key %s --verification-key %s "
                               "--admin-key %s --data %s", s.port, ka, kar, kb, kd, kv, s.admin,
                               tu_data_dir()), 0, &out);
    ck_assert_msg(healthy(&s), "the server died during the client run");
    server_stop(&s);
    ck_assert_msg(rc == 0 && strstr(out, "compreface_client: OK"), "compreface_client.py (%d):\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "labelled faces recognised right"));
    free(out);
}

START_TEST(compreface_client) { run_compreface_client(tu_mien_bin(), NULL); }
END_TEST

/* The same against a PostgreSQL gallery (the release build: the sanitizer run above covers
 * the code; this one the store). */
START_TEST(compreface_client_pg) { run_compreface_client(tu_mien_bin_fast(), pg_fresh_db()); }
END_TEST

/* ==== The web page in headless Chromium ==== */

START_TEST(web_page_chromium) {
    ck_assert_msg(access("/usr/bin/chromium", X_OK) == 0,
                  "/usr/bin/chromium is missing: run `make setup` (apt-get install chromium)");
    ck_assert_msg(access("tests/web/node_modules/playwright-core/package.json", R_OK) == 0,
                  "playwright-core is missing: run `make setup` (cd tests/web && npm ci)");
    server s;
    server_start(&s, tu_mien_bin_fast());
    char *out = NULL;
    int rc = tu_run(tu_path("MIEN_URL=http://127.0.0.1:%d MIEN_KEY=%s MIEN_DATA=%s node tests/web/page_test.mjs 2>&1",
                            s.port, s.admin, tu_data_dir()), &out);
    server_stop(&s);
    ck_assert_msg(rc == 0 && strstr(out, "page_test: OK"), "tests/web/page_test.mjs (%d):\n%s", rc, out);
    free(out);
}
END_TEST

/* ==== Malformed HTTP, huge bodies, bad JSON ==== */

static void expect_4xx(server *s, const char *what, int st) {
    ck_assert_msg(st >= 400 && st < 500, "%s: expected a 4xx, got %d", what, st);
    ck_assert_msg(healthy(s), "%s: the server stopped answering", what);
}

START_TEST(malformed_requests) {
    server s;
    server_start(&s, tu_mien_bin());
    char *body = NULL;
    /* Not HTTP at all, a bad request line, a bad header, a lying Content-Length. */
    static const char *raw[] = {
        "HELLO\r\n\r\n",
        "GET /api/v1/recognition/subjects HTTP/9.9\r\nHost: x\r\n\r\n",
        "POST /api/v1/recognition/recognize HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET /api/v1/recognition/subjects HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof raw / sizeof *raw; i++) {
        int st = http_raw(s.port, raw[i], strlen(raw[i]), NULL, 10);
        /* 505 is the right answer to an unknown HTTP version. */
        ck_assert_msg(st == -1 || (st >= 400 && st < 500) || (i == 1 && st == 505),
                      "raw request %zu: got %d", i, st);
        ck_assert_msg(healthy(&s), "raw request %zu killed the server", i);
    }
    /* A truncated body: the client goes away mid-upload. */
    const char *cut = "POST /api/v1/recognition/recognize HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8\xff";
    http_raw(s.port, cut, strlen(cut), NULL, 5);
    ck_assert(healthy(&s));
    /* A huge body: refused with 413 without reading it all. */
    const char *huge = "POST /api/v1/recognition/recognize HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n";
    char req[1024];
    int len = snprintf(req, sizeof req, huge, s.admin);
    int st = http_raw(s.port, req, (size_t)len, NULL, 20);
    ck_assert_msg(st == 413, "a 1 GB body: expected 413, got %d", st);
    ck_assert(healthy(&s));
    size_t big_n = (size_t)30 << 20;
    char *big = malloc(big_n);
    memset(big, 'A', big_n);
    st = http(s.port, "POST", "/api/v1/recognition/recognize", s.admin, "application/json", big, big_n, NULL);
    free(big);
    ck_assert_msg(st == 413 || st == -1, "a 30 MB body: expected 413, got %d", st);
    ck_assert(healthy(&s));
    /* Bad JSON and wrong JSON on the CompreFace routes: 400 with CompreFace's error shape. */
    static const char *bad_json[] = {"{not json", "[1,2,3]", "{\"file\": 42}", "{\"file\": \"@@@not base64\"}",
                                     "{\"file\": \"aGVsbG8=\"}", ""};
    for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
        st = http(s.port, "POST", "/api/v1/recognition/recognize", s.admin, "application/json",
                  bad_json[i], strlen(bad_json[i]), &body);
        expect_4xx(&s, bad_json[i], st);
        ck_assert_int_eq(st, 400);
        ck_assert_msg(strstr(body, "\"message\"") && strstr(body, "\"code\""), "error body: %s", body);
        free(body);
    }
    st = http(s.port, "POST", "/api/v1/recognition/subjects", s.admin, "application/json", "{\"subject\":", 11, NULL);
    expect_4xx(&s, "truncated subject JSON", st);
    st = http(s.port, "PUT", "/api/v1/recognition/subjects/x", s.admin, "application/json", "{}", 2, NULL);
    expect_4xx(&s, "rename without subject", st);
    /* A multipart body with a broken boundary, and one with no file part. */
    const char *mp = "--mienBoundary42\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nxyz";
    st = http(s.port, "POST", "/api/v1/detection/detect", s.admin, "multipart/form-data; boundary=mienBoundary42", mp,
              strlen(mp), NULL);
    expect_4xx(&s, "truncated multipart", st);
    const char *mp2 = "--mienBoundary42\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nxyz\r\n--mienBoundary42--\r\n";
    st = http(s.port, "POST", "/api/v1/detection/detect", s.admin, "multipart/form-data; boundary=mienBoundary42", mp2,
              strlen(mp2), NULL);
    expect_4xx(&s, "multipart without file", st);
    /* Bad query options, unknown routes, wrong methods, bad ids. */
    st = http(s.port, "POST", "/api/v1/recognition/recognize?limit=-3", s.admin, "application/json", "{}", 2, NULL);
    expect_4xx(&s, "limit=-3", st);
    st = http(s.port, "POST", "/api/v1/recognition/recognize?det_prob_threshold=7", s.admin, "application/json",
              "{}", 2, NULL);
    expect_4xx(&s, "det_prob_threshold=7", st);
    st = http(s.port, "GET", "/api/v1/recognition/recognize", s.admin, NULL, NULL, 0, NULL);
    ck_assert_int_eq(st, 405);
    st = http(s.port, "GET", "/api/v1/no/such/route", s.admin, NULL, NULL, 0, NULL);
    ck_assert_int_eq(st, 404);
    st = http(s.port, "DELETE", "/api/v1/recognition/faces/not-a-uuid", s.admin, NULL, NULL, 0, NULL);
    ck_assert_int_eq(st, 404);
    st = http(s.port, "DELETE", "/api/v1/recognition/subjects/%zz", s.admin, NULL, NULL, 0, NULL);
    expect_4xx(&s, "bad escape in the path", st);
    /* Not an image, in multipart. */
    const char *mp3 = "--mienBoundary42\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
                      "GIF89a garbage\r\n--mienBoundary42--\r\n";
    st = http(s.port, "POST", "/api/v1/recognition/faces?subject=x", s.admin, "multipart/form-data; boundary=mienBoundary42",
              mp3, strlen(mp3), &body);
    expect_4xx(&s, "garbage image", st);
    ck_assert_msg(strstr(body, "\"message\""), "garbage image: %s", body);
    free(body);
    /* Nothing above changed the gallery. */
    st = http(s.port, "GET", "/api/v1/recognition/subjects", s.read, NULL, NULL, 0, &body);
    ck_assert_int_eq(st, 200);
    ck_assert_str_eq(body, "{\"subjects\":[]}");
    free(body);
    server_stop(&s);
}
END_TEST

/* ==== Load: bench/load_test.sh, short ==== */

START_TEST(load_short) {
    ck_assert_msg(access("/usr/bin/wrk", X_OK) == 0, "/usr/bin/wrk is missing: run `make setup`");
    char *out = NULL;
    int rc = tu_run(tu_path("MIEN_BIN=%s MIEN_DATA=%s MIEN_MODELS=%s bench/load_test.sh 8 5 2>&1",
                            tu_mien_bin_fast(), tu_data_dir(), tu_models_dir()), &out);
    ck_assert_msg(rc == 0, "bench/load_test.sh 8 5 (%d):\n%s", rc, out);
    long ok = 0, err = -1;
    const char *p = strstr(out, "load_test: requests ");
    ck_assert_msg(p && sscanf(p, "load_test: requests %ld errors %ld", &ok, &err) == 2, "no summary:\n%s", out);
    /* Reference backend only: a few answers in 5 s, all of them right. */
    const long want = nn_backend_fast() ? 9 : 1;
    ck_assert_msg(err == 0 && ok >= want, "load test: %ld requests (at least %ld wanted), %ld errors:\n%s",
                  ok, want, err, out);
    free(out);
}
END_TEST

/* ==== kill -9 during a bulk enroll ==== */

#define KILL_CLIENTS 3
#define KILL_MAX 2000

typedef struct enroller {
    int port;
    const char *key;
    char (*paths)[512];
    int n_paths, first, step;
    volatile int acked[KILL_MAX];   /* 1: the server answered 2xx */
} enroller;

static enroller *kill_state;
static volatile int kill_stop;

static void *enroll_loop(void *arg) {
    int c = (int)(intptr_t)arg;
    enroller *e = kill_state;
    for (int i = c; i < e->n_paths && !kill_stop; i += KILL_CLIENTS) {
        size_t len;
        char *img = read_file_ok(e->paths[i], &len);
        char path[128];
        snprintf(path, sizeof path, "/v1/subjects/p%04d/faces", i);
        int st = http(e->port, "POST", path, e->key, "image/jpeg", img, len, NULL);
        free(img);
        if (st >= 200 && st < 300) e->acked[i] = 1;
        else if (st < 0) break; /* the server is gone */
    }
    return NULL;
}

START_TEST(kill9_bulk_enroll) {
    server s;
    server_start(&s, tu_mien_bin_fast());
    /* Distinct photos, one face each: the first photo of LFW people in name order. */
    enroller *e = calloc(1, sizeof *e);
    e->paths = calloc(KILL_MAX, sizeof *e->paths);
    DIR *d = opendir(tu_path("%s/lfw", tu_data_dir()));
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) && e->n_paths < 400) {
        if (de->d_name[0] == '.') continue;
        char *p = (char *)tu_path("%s/lfw/%s/%s_0001.jpg", tu_data_dir(), de->d_name, de->d_name);
        if (access(p, R_OK) == 0) snprintf(e->paths[e->n_paths++], 512, "%s", p);
    }
    closedir(d);
    ck_assert_int_ge(e->n_paths, 100);
    e->port = s.port;
    e->key = s.admin;
    kill_state = e;
    kill_stop = 0;
    pthread_t th[KILL_CLIENTS];
    for (int c = 0; c < KILL_CLIENTS; c++)
        pthread_create(&th[c], NULL, enroll_loop, (void *)(intptr_t)c);
    /* Kill once a good number were acknowledged, with requests in flight. */
    int acked = 0;
    for (int t = 0; t < 1200 && acked < 40; t++) {
        usleep(50000);
        acked = 0;
        for (int i = 0; i < e->n_paths; i++) acked += e->acked[i];
    }
    ck_assert_msg(acked >= 40, "only %d enrollments acknowledged in 60 s", acked);
    server_kill(&s, SIGKILL);
    kill_stop = 1;
    for (int c = 0; c < KILL_CLIENTS; c++) pthread_join(th[c], NULL);
    acked = 0;
    for (int i = 0; i < e->n_paths; i++) acked += e->acked[i];

    /* The file first, untouched by a server: SQLite's own consistency check. */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(tu_path("%s/gallery.db", s.dir), &db, SQLITE_OPEN_READWRITE, NULL),
                     SQLITE_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);

    /* Restart on the same files: every acknowledged subject is there. */
    server_spawn(&s);
    char *body = NULL;
    int st = http(s.port, "GET", "/v1/subjects", s.admin, NULL, NULL, 0, &body);
    ck_assert_int_eq(st, 200);
    int missing = 0, present = 0;
    for (int i = 0; i < e->n_paths; i++) {
        char name[32];
        snprintf(name, sizeof name, "\"p%04d\"", i);
        int here = strstr(body, name) != NULL;
        present += here;
        if (e->acked[i] && !here) {
            missing++;
            fprintf(stderr, "kill9: acknowledged p%04d is missing after the restart\n", i);
        }
    }
    free(body);
    ck_assert_msg(missing == 0, "%d of %d acknowledged enrollments lost", missing, acked);
    ck_assert_int_ge(present, acked);
    ck_assert_msg(present <= acked + KILL_CLIENTS, "%d present but %d acknowledged", present, acked);
    /* And it still takes changes. */
    size_t len;
    char *img = read_file_ok(e->paths[e->n_paths - 1], &len);
    st = http(s.port, "POST", "/v1/subjects/after_restart/faces", s.admin, "image/jpeg", img, len, NULL);
    free(img);
    ck_assert_msg(st >= 200 && st < 300, "enroll after the restart: %d", st);
    server_stop(&s);
    free(e->paths);
    free(e);
}
END_TEST

Suite *suite_compat(void) {
    Suite *s = suite_create("compat");
    TCase *tc = tcase_create("compat");
    const int slow = !nn_backend_fast(); /* make XNNPACK=0: the reference backend only */
    tcase_set_timeout(tc, slow ? 900 : 300);
    tcase_add_test(tc, gallery_faces_by_id);
    tcase_add_test(tc, malformed_requests);
    tcase_add_test(tc, compreface_client);
    tcase_add_test(tc, web_page_chromium);
    tcase_add_test(tc, load_short);
    tcase_add_test(tc, kill9_bulk_enroll);
    suite_add_tcase(s, tc);
    TCase *pg = tcase_create("compat_pg");
    tcase_set_timeout(pg, slow ? 900 : 300);
    tcase_add_unchecked_fixture(pg, pg_start, NULL);
    tcase_add_test(pg, compreface_client_pg);
    suite_add_tcase(s, pg);
    return s;
}
