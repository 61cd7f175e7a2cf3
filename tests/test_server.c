/* mien serve end to end: the sanitizer build of the CLI serves on a free port with a temporary
 * gallery and keys file; a small HTTP client on raw sockets checks keys and roles, enrolls
 * the people of the shared data, identifies the labelled photos, verifies, refuses bad input
 * with 4xx (and keeps serving), and stops cleanly on SIGTERM. */
#include "testutil.h"

#include "server/srv_int.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ==== The server under test (started once, in the runner's process) ==== */

static pid_t srv_pid = -1, monitor_pid = -1;
static int srv_port_no;
static char dir[256];
static char admin_key[128], read_key[128];

/* ==== A minimal HTTP/1.1 client ==== */

typedef struct resp {
    int status;          /* 0 when no response came */
    char *head;          /* headers (malloc'd) */
    char *body;          /* body, NUL-terminated (malloc'd) */
    size_t len;
} resp;

static void resp_free(resp *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port_no)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send the rest of a request on fd, read until the server closes; parse status and body. */
static resp http_finish(int fd, const void *req, size_t n) {
    resp r = {0};
    if (fd < 0) return r;
    const char *p = req;
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(fd, p + off, n - off, MSG_NOSIGNAL);
        if (k <= 0) break; /* the server may answer (413) and close before reading it all */
        off += (size_t)k;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
        if (k <= 0) break;
        len += (size_t)k;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &r.status) != 1 || !sep) {
        r.status = 0;
        free(buf);
        return r;
    }
    r.head = strndup(buf, (size_t)(sep - buf));
    r.len = len - (size_t)(sep + 4 - buf);
    r.body = malloc(r.len + 1);
    memcpy(r.body, sep + 4, r.len);
    r.body[r.len] = '\0';
    free(buf);
    return r;
}

/* Send the bytes as they are, read until the server closes. */
static resp http_raw(const void *req, size_t n) { return http_finish(connect_server(), req, n); }

/* A request with an optional key (X-API-Key), extra header lines (each ending "\r\n") and body. */
static resp http(const char *method, const char *path, const char *key, const char *extra,
                 const void *body, size_t len) {
    size_t cap = len + 4096;
    char *req = malloc(cap);
    int h = snprintf(req, 4096,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, key ? "X-API-Key: " : "", key ? key : "", key ? "\r\n" : "",
                     extra ? extra : "", len);
    if (len) memcpy(req + h, body, len);
    resp r = http_raw(req, (size_t)h + len);
    free(req);
    return r;
}


/* POST the photo at path as a raw image/jpeg body. */
static resp post_photo(const char *route, const char *key, const char *path) {
    size_t n = 0;
    unsigned char *d = (unsigned char *)tu_read_file(path, &n);
    ck_assert_msg(d != NULL, "cannot read %s", path);
    resp r = http("POST", route, key, "Content-Type: application/octet-stream\r\n", d, n);
    free(d);
    return r;
}

/* A multipart/form-data body of two files. */
static char *form2(const char *f1, const char *f2, size_t *len) {
    size_t n1, n2;
    unsigned char *d1 = (unsigned char *)tu_read_file(f1, &n1), *d2 = (unsigned char *)tu_read_file(f2, &n2);
    ck_assert(d1 && d2);
    char *b = malloc(n1 + n2 + 1024);
    size_t o = 0;
    o += (size_t)sprintf(b + o, "--XyZb\r\nContent-Disposition: form-data; name=\"image1\"; "
                                "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n");
    memcpy(b + o, d1, n1), o += n1;
    o += (size_t)sprintf(b + o, "\r\n--XyZb\r\nContent-Disposition: form-data; name=\"image2\"; "
                                "filename=\"b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n");
    memcpy(b + o, d2, n2), o += n2;
    o += (size_t)sprintf(b + o, "\r\n--XyZb--\r\n");
    free(d1);
    free(d2);
    *len = o;
    return b;
}

static cJSON *json_of(const resp *r) {
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    ck_assert_msg(j != NULL, "not JSON (status %d): %.300s", r->status, r->body ? r->body : "");
    return j;
}

/* A 4xx with a JSON {"error": "..."} body. */
static void expect_error(resp *r, int status, const char *what) {
    ck_assert_msg(r->status == status, "%s: status %d, expected %d: %.300s", what, r->status,
                  status, r->body ? r->body : "");
    cJSON *j = json_of(r);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    ck_assert_msg(cJSON_IsString(e) && strlen(e->valuestring) > 5, "%s: no error message", what);
    cJSON_Delete(j);
    resp_free(r);
}

static void expect_healthy(void) {
    resp r = http("GET", "/healthz", NULL, NULL, NULL, 0);
    ck_assert_msg(r.status == 200, "/healthz after bad input: %d", r.status);
    resp_free(&r);
}

/* ==== Fixture ==== */

static void make_key(const char *role, char *out, size_t size) {
    char *o = NULL;
    int rc = tu_run(tu_path("%s keys add --role %s --keys %s/keys.db 2>/dev/null", tu_mien_bin(),
                            role, dir), &o);
    if (rc != 0 || !o || strncmp(o, "mien_", 5) != 0) {
        fprintf(stderr, "test_server: mien keys add failed (%d)\n", rc);
        exit(1);
    }
    o[strcspn(o, "\n")] = '\0';
    snprintf(out, size, "%s", o);
    free(o);
}

static void server_start(void) {
    snprintf(dir, sizeof dir, "/tmp/mien-serve-XXXXXX");
    if (!mkdtemp(dir)) exit(1);
    make_key("admin", admin_key, sizeof admin_key);
    make_key("read", read_key, sizeof read_key);
    char log[300];
    snprintf(log, sizeof log, "%s/serve.log", dir);
    /* A monitor process (child of the runner, which reaps it) starts the server, writes its
     * pid, waits for it and writes its exit status: the tests run in forked processes that
     * could not wait for the server themselves. */
    char pidf[300];
    snprintf(pidf, sizeof pidf, "%s/serve.pid", dir);
    monitor_pid = fork();
    if (monitor_pid == 0) {
        pid_t p = fork();
        if (p == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, 2);
            int nul = open("/dev/null", O_WRONLY);
            dup2(nul, 1);
            execl(tu_mien_bin(), tu_mien_bin(), "serve", "--port", "0", "--workers", "2",
                  "--threads", "1", "--gallery", tu_path("%s/gallery.db", dir), "--keys",
                  tu_path("%s/keys.db", dir), "--max-body", "4000000", "--models",
                  tu_models_dir(), (char *)NULL);
            _exit(127);
        }
        FILE *f = fopen(pidf, "w");
        if (f) fprintf(f, "%d\n", (int)p), fclose(f);
        int st = 0;
        waitpid(p, &st, 0);
        f = fopen(tu_path("%s/serve.status", dir), "w");
        if (f) fprintf(f, "%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)), fclose(f);
        _exit(0);
    }
    for (int i = 0; i < 100 && srv_pid <= 0; i++) {
        FILE *f = fopen(pidf, "r");
        if (f) {
            int p = 0;
            if (fscanf(f, "%d", &p) == 1) srv_pid = p;
            fclose(f);
        }
        if (srv_pid <= 0) usleep(50000);
    }
    /* Wait for the line with the port (model loading under ASan takes a while). */
    for (int i = 0; i < 1200 && !srv_port_no; i++) {
        FILE *f = fopen(log, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on http://127.0.0.1:");
            if (p) srv_port_no = atoi(p + strlen("listening on http://127.0.0.1:"));
        }
        if (f) fclose(f);
        if (access(tu_path("%s/serve.status", dir), F_OK) == 0) break; /* it exited */
        usleep(100000);
    }
    if (!srv_port_no) fprintf(stderr, "test_server: mien serve did not start (see %s)\n", log);
}

static void server_stop(void) {
    if (monitor_pid > 0) {
        if (access(tu_path("%s/serve.status", dir), F_OK) != 0 && srv_pid > 0) kill(srv_pid, SIGKILL);
        waitpid(monitor_pid, NULL, 0);
        monitor_pid = -1;
    }
    tu_run(tu_path("rm -rf %s", dir), NULL);
}

/* ==== Tests ==== */

START_TEST(test_keys_and_roles) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    resp r = http("GET", "/healthz", NULL, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http("GET", "/v1/subjects", NULL, NULL, NULL, 0);
    expect_error(&r, 401, "no key");
    r = http("GET", "/v1/subjects", "mien_0000000000000000000000000000000000000000000000000000000000000000", NULL, NULL, 0);
    expect_error(&r, 401, "unknown key");
    r = http("GET", "/v1/subjects", NULL, tu_path("Authorization: Bearer %s\r\n", read_key), NULL, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    const char *photo = tu_path("%s/people/examples/obama.jpg", tu_data_dir());
    r = post_photo("/v1/subjects/obama/faces", read_key, photo);
    expect_error(&r, 403, "read key enrolls");
    r = http("DELETE", "/v1/subjects/obama", read_key, NULL, NULL, 0);
    expect_error(&r, 403, "read key deletes");
    r = http("GET", "/nowhere", admin_key, NULL, NULL, 0);
    expect_error(&r, 404, "unknown route");
    r = http("PUT", "/v1/identify", admin_key, NULL, NULL, 0);
    expect_error(&r, 405, "wrong method");
}
END_TEST

/* A service key as the CLI makes it: extra is the options after "keys add". */
static void make_service_key(const char *extra, char *out, size_t size) {
    char *o = NULL;
    int rc = tu_run(tu_path("%s keys add %s --keys %s/keys.db 2>/dev/null", tu_mien_bin(), extra,
                            dir), &o);
    ck_assert_msg(rc == 0 && o && !strncmp(o, "mien_", 5), "mien keys add %s: %d", extra, rc);
    o[strcspn(o, "\n")] = '\0';
    snprintf(out, size, "%s", o);
    free(o);
}

/* The names in a JSON {"subjects": [{"name"...}]} or {"collections": [{"name"...}]} body, as
 * one comma-joined string. */
static char *names_of(resp *r, const char *array) {
    ck_assert_msg(r->status == 200, "status %d: %.300s", r->status, r->body);
    cJSON *j = json_of(r);
    static char buf[1024];
    buf[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, array)) {
        const cJSON *n = cJSON_GetObjectItem(it, "name");
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", l ? "," : "", cJSON_IsString(n) ? n->valuestring : "?");
    }
    cJSON_Delete(j);
    resp_free(r);
    return buf;
}

/* Services and collections on /v1: each recognition key keeps to its collection, detection
 * and verification keys to their routes, mien keys choose with ?collection=, and an admin
 * key manages keys and collections over HTTP. */
START_TEST(test_services_and_collections) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    char ka[128], kb[128], kd[128], kv[128];
    make_service_key("--service recognition --collection team_a", ka, sizeof ka);
    make_service_key("--service recognition --name team_b", kb, sizeof kb); /* its own: team_b */
    make_service_key("--service detection", kd, sizeof kd);
    make_service_key("--service verification", kv, sizeof kv);
    const char *obama = tu_path("%s/people/examples/obama.jpg", tu_data_dir());
    const char *biden = tu_path("%s/people/examples/biden.jpg", tu_data_dir());
    resp r = post_photo("/v1/subjects/obama/faces", ka, obama);
    ck_assert_msg(r.status == 201, "enroll with team_a's key: %d %s", r.status, r.body);
    cJSON *j = json_of(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "collection")->valuestring, "team_a");
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/subjects/biden/faces", kb, biden);
    ck_assert_msg(r.status == 201, "enroll with team_b's key: %d %s", r.status, r.body);
    resp_free(&r);
    /* Each sees its own people only; another collection by name is refused. */
    r = http("GET", "/v1/subjects", ka, NULL, NULL, 0);
    ck_assert_str_eq(names_of(&r, "subjects"), "obama");
    r = http("GET", "/v1/subjects", kb, NULL, NULL, 0);
    ck_assert_str_eq(names_of(&r, "subjects"), "biden");
    r = http("GET", "/v1/subjects?collection=team_b", ka, NULL, NULL, 0);
    expect_error(&r, 403, "team_a's key naming team_b");
    r = http("DELETE", "/v1/subjects/biden", ka, NULL, NULL, 0);
    expect_error(&r, 404, "team_a's key deleting team_b's subject");
    r = post_photo("/v1/identify", kb, obama);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "\"name\":\"unknown\"") && !strstr(r.body, "\"obama\""),
                  "team_b identifies team_a's person: %s", r.body);
    resp_free(&r);
    /* A mien key chooses; the default collection holds neither. */
    r = http("GET", "/v1/subjects?collection=team_a", read_key, NULL, NULL, 0);
    ck_assert_str_eq(names_of(&r, "subjects"), "obama");
    r = http("GET", "/v1/subjects?collection=no_such", read_key, NULL, NULL, 0);
    expect_error(&r, 404, "unknown collection");
    r = http("GET", "/v1/subjects?collection=..%2Fx", read_key, NULL, NULL, 0);
    expect_error(&r, 400, "bad collection name");
    /* Detection and verification keys keep to their routes. */
    r = post_photo("/v1/detect", kd, obama);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = post_photo("/v1/subjects/x/faces", kd, obama);
    expect_error(&r, 403, "detection key enrolls");
    r = post_photo("/v1/identify", kd, obama);
    expect_error(&r, 403, "detection key identifies");
    r = http("GET", "/v1/subjects", kv, NULL, NULL, 0);
    expect_error(&r, 403, "verification key lists subjects");
    r = post_photo("/v1/detect", kv, obama);
    expect_error(&r, 403, "verification key detects");
    size_t n;
    char *form = form2(obama, biden, &n);
    r = http("POST", "/v1/verify", kv, "Content-Type: multipart/form-data; boundary=XyZb\r\n", form, n);
    ck_assert_msg(r.status == 200, "verification key verifies: %d %s", r.status, r.body);
    resp_free(&r);
    free(form);
    /* Collections: listed (a recognition key sees its own), made and deleted by an admin. */
    r = http("GET", "/v1/collections", read_key, NULL, NULL, 0);
    char *all = names_of(&r, "collections");
    ck_assert_msg(strstr(all, "default") && strstr(all, "team_a") && strstr(all, "team_b"), "%s", all);
    r = http("GET", "/v1/collections", ka, NULL, NULL, 0);
    ck_assert_str_eq(names_of(&r, "collections"), "team_a");
    r = http("GET", "/v1/collections", kd, NULL, NULL, 0);
    expect_error(&r, 403, "detection key lists collections");
    r = http("POST", "/v1/collections", ka, "Content-Type: application/json\r\n", "{\"name\":\"c2\"}", 13);
    expect_error(&r, 403, "a recognition key makes a collection");
    r = http("POST", "/v1/collections", admin_key, "Content-Type: application/json\r\n", "{\"name\":\"c2\"}", 13);
    ck_assert_msg(r.status == 201, "admin makes c2: %d %s", r.status, r.body);
    resp_free(&r);
    r = http("DELETE", "/v1/collections/team_b", read_key, NULL, NULL, 0);
    expect_error(&r, 403, "read key deletes a collection");
    r = http("DELETE", "/v1/collections/default", admin_key, NULL, NULL, 0);
    expect_error(&r, 400, "deleting the default collection");
    r = http("DELETE", "/v1/collections/team_b", admin_key, NULL, NULL, 0);
    ck_assert_msg(r.status == 200, "admin deletes team_b: %d %s", r.status, r.body);
    resp_free(&r);
    r = http("GET", "/v1/subjects?collection=team_b", admin_key, NULL, NULL, 0);
    expect_error(&r, 404, "a deleted collection");
    /* Keys over HTTP: an admin mien key only; the new key works at once, and stops. */
    r = http("GET", "/v1/keys", ka, NULL, NULL, 0);
    expect_error(&r, 403, "a recognition key lists keys");
    r = http("GET", "/v1/keys", read_key, NULL, NULL, 0);
    expect_error(&r, 403, "a read key lists keys");
    const char *kreq = "{\"service\":\"recognition\",\"collection\":\"team_a\",\"role\":\"read\",\"name\":\"viewer\"}";
    r = http("POST", "/v1/keys", admin_key, "Content-Type: application/json\r\n", kreq, strlen(kreq));
    ck_assert_msg(r.status == 201, "admin makes a key: %d %s", r.status, r.body);
    j = json_of(&r);
    char viewer[128];
    snprintf(viewer, sizeof viewer, "%s", cJSON_GetObjectItem(j, "key")->valuestring);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "collection")->valuestring, "team_a");
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/v1/subjects", viewer, NULL, NULL, 0);
    ck_assert_str_eq(names_of(&r, "subjects"), "obama");
    r = http("DELETE", "/v1/subjects/obama", viewer, NULL, NULL, 0);
    expect_error(&r, 403, "a read recognition key deletes");
    r = http("GET", "/v1/keys", admin_key, NULL, NULL, 0);
    ck_assert_msg(r.status == 200 && strstr(r.body, "\"viewer\"") && !strstr(r.body, viewer),
                  "list keys: %s", r.body);
    resp_free(&r);
    r = http("DELETE", "/v1/keys/viewer", admin_key, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http("GET", "/v1/subjects", viewer, NULL, NULL, 0);
    expect_error(&r, 401, "a removed key");
    r = http("POST", "/v1/keys", admin_key, "Content-Type: application/json\r\n", "{\"service\":\"detection\",\"collection\":\"x\"}",
             strlen("{\"service\":\"detection\",\"collection\":\"x\"}"));
    expect_error(&r, 400, "a detection key with a collection");
}
END_TEST

START_TEST(test_openapi_and_page) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    resp r = http("GET", "/v1/openapi.json", NULL, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = json_of(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "openapi")->valuestring, "3.0.3");
    const cJSON *paths = cJSON_GetObjectItem(j, "paths");
    ck_assert(cJSON_IsObject(paths));
    const char *method;
    int n_v1 = 0;
    for (int i = 0; srv_route_path(i, &method); i++) {
        const char *p = srv_route_path(i, &method);
        if (strncmp(p, "/v1/", 4) != 0) continue;
        n_v1++;
        const cJSON *item = cJSON_GetObjectItem(paths, p);
        ck_assert_msg(item != NULL, "openapi.json lacks the path %s", p);
        char lower[16];
        size_t k = 0;
        for (; method[k] && k + 1 < sizeof lower; k++) lower[k] = (char)(method[k] | 0x20);
        lower[k] = '\0';
        ck_assert_msg(cJSON_GetObjectItem(item, lower) != NULL, "openapi.json lacks %s %s", method, p);
    }
    ck_assert_int_ge(n_v1, 10);
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/", NULL, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    static const char *const ids[] = {"id=\"apikey\"", "id=\"file\"", "id=\"drop\"", "id=\"canvas\"",
                                      "id=\"faces\"", "id=\"subjects\"", "id=\"status\"",
                                      "\"enroll-name\"", "\"subject-name\"", "dataset.state"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        ck_assert_msg(strstr(r.body, ids[i]) != NULL, "the page lacks %s", ids[i]);
    resp_free(&r);
}
END_TEST

/* Enroll every photo of knn_examples/train/<name>/, then identify the labelled photos. */
START_TEST(test_enroll_identify) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    char train[1024];
    snprintf(train, sizeof train, "%s/people/examples/knn_examples/train", tu_data_dir());
    DIR *d = opendir(train);
    ck_assert(d != NULL);
    struct dirent *de;
    char names[16][256];
    int n_names = 0, n_faces = 0;
    while ((de = readdir(d)) && n_names < 16) {
        if (de->d_name[0] == '.') continue;
        snprintf(names[n_names++], sizeof names[0], "%s", de->d_name);
        char sub[1400];
        snprintf(sub, sizeof sub, "%s/%s", train, de->d_name);
        DIR *pd = opendir(sub);
        struct dirent *pe;
        while (pd && (pe = readdir(pd))) {
            if (pe->d_name[0] == '.') continue;
            resp r = post_photo(tu_path("/v1/subjects/%s/faces", de->d_name), admin_key,
                                tu_path("%s/%s", sub, pe->d_name));
            ck_assert_msg(r.status == 201, "enroll %s/%s: %d %s", de->d_name, pe->d_name, r.status, r.body);
            resp_free(&r);
            n_faces++;
        }
        if (pd) closedir(pd);
    }
    closedir(d);
    ck_assert_int_ge(n_names, 5);
    /* Enrolling the same photo again adds nothing. */
    resp r = post_photo("/v1/subjects/obama/faces", admin_key,
                        tu_path("%s/obama/obama.jpg", train));
    ck_assert_int_eq(r.status, 200);
    cJSON *j = json_of(&r);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "added")->valueint, 0);
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/v1/subjects", read_key, NULL, NULL, 0);
    j = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "subjects")), n_names);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "faces")->valueint, n_faces);
    cJSON_Delete(j);
    resp_free(&r);

    /* Every labelled probe: the faces, left to right, carry the labels (unknown for people
     * not enrolled); a face the labels leave out is unknown (tu_labels_agree). */
    FILE *f = fopen(tu_path("%s/people/labels.tsv", tu_data_dir()), "r");
    ck_assert(f != NULL);
    char line[1024];
    int probes = 0, unknown_seen = 0, extra = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        ck_assert(tab != NULL);
        *tab = '\0';
        const char *labels = tab + 1;
        r = post_photo("/v1/identify", read_key, tu_path("%s/people/%s", tu_data_dir(), line));
        ck_assert_msg(r.status == 200, "identify %s: %d %s", line, r.status, r.body);
        j = json_of(&r);
        const cJSON *faces = cJSON_GetObjectItem(j, "faces");
        char got[512] = "", want[512] = "";
        const cJSON *fc;
        cJSON_ArrayForEach(fc, faces) {
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%s", l ? "," : "", cJSON_GetObjectItem(fc, "name")->valuestring);
        }
        char copy[512];
        snprintf(copy, sizeof copy, "%s", labels);
        for (char *save, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int known = 0;
            for (int i = 0; i < n_names; i++) known |= !strcmp(names[i], t);
            if (!known) unknown_seen++;
            size_t l = strlen(want);
            snprintf(want + l, sizeof want - l, "%s%s", l ? "," : "", known ? t : "unknown");
        }
        int more = 0;
        ck_assert_msg(tu_labels_agree(got, want, &more), "identify %s: got %s, expected %s", line, got, want);
        extra += more;
        cJSON_Delete(j);
        resp_free(&r);
        probes++;
    }
    fclose(f);
    ck_assert_int_ge(probes, 20);
    ck_assert_int_ge(unknown_seen, 1); /* Lin-Manuel Miranda */
    ck_assert_msg(extra <= 2, "%d faces beyond the labels", extra);
}
END_TEST

START_TEST(test_verify_detect) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    char ex[1024];
    snprintf(ex, sizeof ex, "%s/people/examples", tu_data_dir());
    size_t n;
    char *body = form2(tu_path("%s/obama.jpg", ex), tu_path("%s/obama2.jpg", ex), &n);
    resp r = http("POST", "/v1/verify", read_key, "Content-Type: multipart/form-data; boundary=XyZb\r\n", body, n);
    free(body);
    ck_assert_msg(r.status == 200, "verify: %d %s", r.status, r.body);
    cJSON *j = json_of(&r);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "same")));
    double same_sim = cJSON_GetObjectItem(j, "similarity")->valuedouble;
    cJSON_Delete(j);
    resp_free(&r);
    body = form2(tu_path("%s/obama.jpg", ex), tu_path("%s/biden.jpg", ex), &n);
    r = http("POST", "/v1/verify", read_key, "Content-Type: multipart/form-data; boundary=XyZb\r\n", body, n);
    free(body);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "same")));
    ck_assert(cJSON_GetObjectItem(j, "similarity")->valuedouble < same_sim);
    ck_assert(cJSON_GetObjectItem(j, "threshold") != NULL);
    cJSON_Delete(j);
    resp_free(&r);

    r = post_photo("/v1/detect", read_key, tu_path("%s/dlib_faces/dogs.jpg", tu_data_dir()));
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "faces")), 0);
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/detect", read_key, tu_path("%s/two_people.jpg", ex));
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    const cJSON *faces = cJSON_GetObjectItem(j, "faces");
    ck_assert_int_eq(cJSON_GetArraySize(faces), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(faces, 0), "box")), 4);
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/embed", read_key, tu_path("%s/obama.jpg", ex));
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    const cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(f0, "embedding")),
                     cJSON_GetObjectItem(j, "dim")->valueint);
    cJSON_Delete(j);
    resp_free(&r);
    /* curl --data-binary's default Content-Type is taken as a raw photo. */
    size_t pn;
    unsigned char *pd = (unsigned char *)tu_read_file(tu_path("%s/obama.jpg", ex), &pn);
    r = http("POST", "/v1/detect", read_key, "Content-Type: application/x-www-form-urlencoded\r\n", pd, pn);
    free(pd);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "faces")), 1);
    cJSON_Delete(j);
    resp_free(&r);
    /* A form with one file: identify reads the first file part. */
    body = form2(tu_path("%s/two_people.jpg", ex), tu_path("%s/obama.jpg", ex), &n);
    r = http("POST", "/v1/identify", read_key, "Content-Type: multipart/form-data; boundary=XyZb\r\n", body, n);
    free(body);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "faces")), 2);
    cJSON_Delete(j);
    resp_free(&r);
    /* No face to enroll: 422. */
    r = post_photo("/v1/subjects/dog/faces", admin_key, tu_path("%s/dlib_faces/dogs.jpg", tu_data_dir()));
    expect_error(&r, 422, "enroll without a face");
}
END_TEST

/* A multipart/form-data body of one file in the part called field. */
static char *form1(const char *file, const char *field, size_t *len) {
    size_t n;
    unsigned char *d = (unsigned char *)tu_read_file(file, &n);
    ck_assert(d != NULL);
    char *b = malloc(n + 512);
    size_t o = (size_t)sprintf(b, "--XyZb\r\nContent-Disposition: form-data; name=\"%s\"; "
                                  "filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n", field);
    memcpy(b + o, d, n), o += n;
    o += (size_t)sprintf(b + o, "\r\n--XyZb--\r\n");
    free(d);
    *len = o;
    return b;
}

/* Face analysis: POST /v1/analyze, identify ?liveness=true, CompreFace's face plugins. */
START_TEST(test_analyze) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    const char *two = tu_path("%s/people/examples/two_people.jpg", tu_data_dir());
    resp r = post_photo("/v1/analyze", read_key, two);
    ck_assert_msg(r.status == 200, "analyze: %d %s", r.status, r.body);
    cJSON *j = json_of(&r);
    const cJSON *faces = cJSON_GetObjectItem(j, "faces"), *f;
    ck_assert_int_eq(cJSON_GetArraySize(faces), 2);
    cJSON_ArrayForEach(f, faces) { /* Obama and Biden */
        ck_assert(cJSON_IsArray(cJSON_GetObjectItem(f, "box")));
        double age = cJSON_GetObjectItem(f, "age")->valuedouble;
        ck_assert_msg(age > 35 && age < 75, "age %.1f", age);
        ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "gender"), "value")->valuestring, "male");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "expression"), "scores")), 7);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "liveness"), "real")));
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "pose"), "yaw")));
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "quality"), "score")));
    }
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/analyze?tasks=age,pose", read_key, two);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0);
    ck_assert(cJSON_GetObjectItem(f, "age") && cJSON_GetObjectItem(f, "pose"));
    ck_assert(!cJSON_GetObjectItem(f, "gender") && !cJSON_GetObjectItem(f, "liveness"));
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/analyze?tasks=shoes", read_key, two);
    expect_error(&r, 400, "analyze with an unknown task");
    r = post_photo("/v1/analyze", NULL, two);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);

    /* A printed photo of an enrolled person (NUAA): named without the liveness check, refused
     * with it; a live photo of the same person is named either way. */
    const char *as = tu_path("%s/analysis/antispoof/img", tu_data_dir());
    char live1[1024], live2[1024], print1[1024];
    snprintf(live1, sizeof live1, "%s/0013.jpg", as); /* subject 0001, real */
    snprintf(live2, sizeof live2, "%s/0023.jpg", as); /* subject 0001, real */
    snprintf(print1, sizeof print1, "%s/0025.jpg", as); /* subject 0001, printed photo */
    r = post_photo("/v1/subjects/nuaa0001/faces", admin_key, live1);
    ck_assert_msg(r.status == 201, "enroll: %d %s", r.status, r.body);
    resp_free(&r);
    r = post_photo("/v1/identify", read_key, print1);
    j = json_of(&r);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(f, "name")->valuestring, "nuaa0001");
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/identify?liveness=true", read_key, print1);
    ck_assert_int_eq(r.status, 200);
    j = json_of(&r);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(f, "name")->valuestring, "unknown");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "liveness"), "real")));
    cJSON_Delete(j);
    resp_free(&r);
    r = post_photo("/v1/identify?liveness=true", read_key, live2);
    j = json_of(&r);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(f, "name")->valuestring, "nuaa0001");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "liveness"), "real")));
    cJSON_Delete(j);
    resp_free(&r);

    /* CompreFace's plugins, in CompreFace's shapes. */
    size_t n;
    char *body = form1(tu_path("%s/people/examples/obama.jpg", tu_data_dir()), "file", &n);
    r = http("POST", "/api/v1/detection/detect?face_plugins=age,gender,pose,landmarks&status=true",
             read_key, "Content-Type: multipart/form-data; boundary=XyZb\r\n", body, n);
    free(body);
    ck_assert_msg(r.status == 200, "detect: %d %s", r.status, r.body);
    j = json_of(&r);
    f = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "result"), 0);
    const cJSON *age = cJSON_GetObjectItem(f, "age"), *g = cJSON_GetObjectItem(f, "gender");
    const cJSON *pose = cJSON_GetObjectItem(f, "pose");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(age, "probability")));
    ck_assert(cJSON_GetObjectItem(age, "low")->valueint < cJSON_GetObjectItem(age, "high")->valueint);
    ck_assert_str_eq(cJSON_GetObjectItem(g, "value")->valuestring, "male");
    ck_assert(cJSON_GetObjectItem(g, "probability")->valuedouble >= 0.5);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(pose, "yaw")) && cJSON_IsNumber(cJSON_GetObjectItem(pose, "pitch")) &&
              cJSON_IsNumber(cJSON_GetObjectItem(pose, "roll")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(f, "landmarks")), 5);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "execution_time"), "age")));
    const cJSON *pv = cJSON_GetObjectItem(j, "plugins_versions");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(pv, "age")) && cJSON_IsString(cJSON_GetObjectItem(pv, "pose")));
    cJSON_Delete(j);
    resp_free(&r);
}
END_TEST

START_TEST(test_bad_input) {
    ck_assert_msg(srv_port_no > 0, "server not running");
    size_t n;
    unsigned char *jpg = (unsigned char *)tu_read_file(tu_path("%s/people/examples/obama.jpg", tu_data_dir()), &n);
    ck_assert(jpg != NULL && n > 1000);
    resp r = http("POST", "/v1/detect", read_key, "Content-Type: image/jpeg\r\n", jpg, 600);
    ck_assert_msg(r.status >= 400 && r.status < 500, "truncated JPEG: %d %s", r.status, r.body);
    resp_free(&r);
    free(jpg);
    expect_healthy();
    static const char text[] = "hello, this is not a photo";
    r = http("POST", "/v1/identify", read_key, "Content-Type: application/octet-stream\r\n", text, sizeof text - 1);
    expect_error(&r, 400, "text body");
    r = http("POST", "/v1/identify", read_key, "Content-Type: text/plain\r\n", text, sizeof text - 1);
    expect_error(&r, 415, "text/plain body");
    r = http("POST", "/v1/detect", read_key, NULL, NULL, 0);
    expect_error(&r, 400, "empty body");
    expect_healthy();
    /* A huge Content-Length is refused before any body is read. */
    static const char huge[] = "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                               "Content-Length: 999999999999\r\n\r\nabc";
    r = http_raw(huge, sizeof huge - 1);
    expect_error(&r, 413, "huge Content-Length");
    /* Over --max-body (4 MB here) with a real body. */
    size_t big = 4100000;
    char *blob = calloc(big, 1);
    r = http("POST", "/v1/detect", read_key, "Content-Type: image/jpeg\r\n", blob, big);
    free(blob);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    expect_healthy();
    static const char bad_json[] = "{\"name\": ";
    r = http("POST", "/v1/subjects", admin_key, "Content-Type: application/json\r\n", bad_json, sizeof bad_json - 1);
    expect_error(&r, 400, "malformed JSON");
    static const char good_json[] = "{\"name\": \"Ana B\"}";
    r = http("POST", "/v1/subjects", admin_key, "Content-Type: application/json\r\n", good_json, sizeof good_json - 1);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    r = http("DELETE", "/v1/subjects/Ana%20B", admin_key, NULL, NULL, 0);
    ck_assert_msg(r.status == 200, "delete of a URL-encoded name: %d %s", r.status, r.body);
    resp_free(&r);
    r = http("DELETE", "/v1/subjects/nobody", admin_key, NULL, NULL, 0);
    expect_error(&r, 404, "delete unknown subject");
    r = http("DELETE", "/v1/subjects/bad%zzname", admin_key, NULL, NULL, 0);
    expect_error(&r, 400, "bad escape");
    r = http("POST", "/v1/identify?threshold=abc", read_key, "Content-Type: image/jpeg\r\n", "x", 1);
    expect_error(&r, 400, "bad threshold");
    /* Malformed HTTP is answered by libmicrohttpd itself (400, or 413 for a Content-Length
     * past 64 bits), or for bytes that are no request line at all, by closing. */
    static const char *const malformed[] = {
        "GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        "GET /healthz\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nNoColonHere\r\n\r\n",
        "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        r = http_raw(malformed[i], strlen(malformed[i]));
        ck_assert_msg(r.status >= 400 && r.status < 500, "malformed request %zu: %d", i, r.status);
        resp_free(&r);
    }
    static const char garbage[] = "\x01\x02GARBAGE\r\n\r\n";
    r = http_raw(garbage, sizeof garbage - 1);
    ck_assert_int_lt(r.status, 500);
    resp_free(&r);
    static const char form_bad[] = "--nope\r\nContent-Disposition: form-data\r\n\r\nxx";
    r = http("POST", "/v1/identify", read_key, "Content-Type: multipart/form-data\r\n", form_bad, sizeof form_bad - 1);
    ck_assert_msg(r.status >= 400 && r.status < 500, "form without boundary: %d %s", r.status, r.body);
    resp_free(&r);
    expect_healthy();
    /* The metrics counted all that. */
    r = http("GET", "/metrics", NULL, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "mien_http_requests_total{route=\"/v1/detect\",method=\"POST\",code=\"413\"}"));
    ck_assert(strstr(r.body, "mien_http_request_duration_seconds_bucket{route=\"/v1/identify\",le=\"+Inf\"}"));
    ck_assert(strstr(r.body, "mien_gallery_subjects "));
    resp_free(&r);
}
END_TEST

/* Last: SIGTERM stops the server with status 0, and the gallery file is sound. */
START_TEST(test_sigterm) {
    ck_assert_msg(srv_pid > 0 && srv_port_no > 0, "server not running");
    /* A request in flight when the signal comes is finished: its headers and half its body
     * are sent before SIGTERM, the rest after. */
    size_t n = 0;
    unsigned char *jpg = (unsigned char *)tu_read_file(tu_path("%s/people/examples/two_people.jpg", tu_data_dir()), &n);
    ck_assert(jpg != NULL);
    char head[512];
    int h = snprintf(head, sizeof head, "POST /v1/identify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "X-API-Key: %s\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n", read_key, n);
    int fd = connect_server();
    ck_assert(fd >= 0);
    ck_assert(send(fd, head, (size_t)h, MSG_NOSIGNAL) == h);
    ck_assert(send(fd, jpg, n / 2, MSG_NOSIGNAL) == (ssize_t)(n / 2));
    usleep(500000);
    ck_assert_int_eq(kill(srv_pid, SIGTERM), 0);
    usleep(500000);
    /* New connections are refused from now on. */
    resp late = http("GET", "/healthz", NULL, NULL, NULL, 0);
    ck_assert_int_eq(late.status, 0);
    resp r = http_finish(fd, jpg + n / 2, n - n / 2);
    free(jpg);
    ck_assert_msg(r.status == 200, "request in flight at SIGTERM: %d %s", r.status, r.body ? r.body : "");
    resp_free(&r);
    int st = -1;
    for (int i = 0; i < 600 && st < 0; i++) {
        FILE *f = fopen(tu_path("%s/serve.status", dir), "r");
        if (f) {
            if (fscanf(f, "%d", &st) != 1) st = -1;
            fclose(f);
        }
        if (st < 0) usleep(100000);
    }
    ck_assert_msg(st >= 0, "mien serve did not stop within 60 s of SIGTERM");
    ck_assert_msg(st == 0, "mien serve exit status %d", st);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(tu_path("%s/gallery.db", dir), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}
END_TEST

Suite *suite_server(void) {
    Suite *s = suite_create("server");
    TCase *t = tcase_create("serve");
    tcase_set_timeout(t, 300);
    tcase_add_unchecked_fixture(t, server_start, server_stop);
    tcase_add_test(t, test_keys_and_roles);
    tcase_add_test(t, test_openapi_and_page);
    tcase_add_test(t, test_services_and_collections);
    tcase_add_test(t, test_enroll_identify);
    tcase_add_test(t, test_verify_detect);
    tcase_add_test(t, test_analyze);
    tcase_add_test(t, test_bad_input);
    tcase_add_test(t, test_sigterm);
    suite_add_tcase(s, t);
    return s;
}
