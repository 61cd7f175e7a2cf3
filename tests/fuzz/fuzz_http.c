/* libFuzzer target: request bodies of `mien serve` — multipart/form-data (libmicrohttpd's post
 * processor and mien's parts), JSON bodies, base64 images, raw photos — through the real
 * server on loopback, on every route that reads a body (/v1 and CompreFace's /api/v1).
 * Input: byte 0 picks the route, byte 1 the Content-Type, the rest is the body. A finding is
 * a crash or sanitizer report in the server, no answer within 60 s (a hang: the campaign's
 * -timeout), or a 5xx. A receive interrupted by libFuzzer's timer signal is retried: read as
 * "no answer", it aborted 75 times in two 30-minute campaigns whenever an answer took long.
 * The server, its models (MIEN_MODELS, else ./models), a gallery and an admin key are made
 * once per process in a private folder. Seeds: multipart and JSON bodies with small photos. */
#include "fuzz.h"

#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const routes[][2] = {
    {"POST", "/v1/detect"},
    {"POST", "/v1/embed"},
    {"POST", "/v1/verify"},
    {"POST", "/v1/identify"},
    {"POST", "/v1/subjects"},
    {"PATCH", "/v1/subjects/fuzz"},
    {"POST", "/v1/subjects/fuzz/faces"},
    {"POST", "/api/v1/recognition/faces?subject=fuzz&det_prob_threshold=0.5"},
    {"POST", "/api/v1/recognition/recognize?face_plugins=landmarks,calculator&limit=2"},
    {"POST", "/api/v1/verification/verify"},
    {"POST", "/api/v1/detection/detect?status=true"},
    {"POST", "/api/v1/recognition/subjects"},
    {"PUT", "/api/v1/recognition/subjects/fuzz"},
    {"POST", "/api/v1/recognition/faces/00000000-0000-0000-0000-000000000001/verify"},
    {"POST", "/api/v1/recognition/faces/delete"},
    {"POST", "/api/v1/recognition/embeddings/recognize?prediction_count=3"},
    {"POST", "/api/v1/recognition/embeddings/faces/00000000-0000-0000-0000-000000000001/verify"},
    {"POST", "/api/v1/verification/embeddings/verify"},
    {"POST", "/v1/keys"},
    {"POST", "/v1/collections"},
    {"POST", "/v1/video?detect_every=2"},
};
#define N_ROUTES (int)(sizeof routes / sizeof routes[0])

static const char *const types[] = {
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "image/jpeg",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
};
#define N_TYPES (int)(sizeof types / sizeof types[0])

static srv *server;
static char key[SRV_KEY_LEN + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *mdir = getenv("MIEN_MODELS");
    mien_config cfg;
    mien_config_default(&cfg);
    mien_models *m = NULL;
    if (mien_models_open(mdir && *mdir ? mdir : "models", &cfg, &m) != MIEN_OK) {
        fprintf(stderr, "fuzz_http: cannot open the models: %s\n", m ? mien_models_errmsg(m) : "?");
        exit(2);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/gallery.db", fuzz_dir());
    mien_gallery *g = NULL;
    if (mien_gallery_open(path, NULL, &g) != MIEN_OK) exit(2);
    snprintf(path, sizeof path, "%s/keys.db", fuzz_dir());
    srv_keys *k = NULL;
    if (srv_keys_open(path, 1, &k) != MIEN_OK || srv_keys_add(k, "fuzz", SRV_ROLE_ADMIN, key, NULL))
        exit(2);
    srv_config c;
    srv_config_default(&c);
    c.port = 0;
    c.workers = 1;
    c.max_body = (size_t)1 << 20;
    c.timeout_s = 5;
    if (srv_open(m, g, k, &c, &server) != MIEN_OK) {
        fprintf(stderr, "fuzz_http: %s\n", server ? srv_errmsg(server) : "cannot start");
        exit(2);
    }
    /* The server, models, gallery and keys live as long as the process. */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *const *route = routes[data[0] % N_ROUTES];
    const char *type = types[data[1] % N_TYPES];
    data += 2, size -= 2;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port(server))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort();
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: fuzz\r\nX-API-Key: %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      route[0], route[1], key, type, size);
    /* The server may answer and close before reading a body it refuses: a failed send is
     * not a finding, a missing answer is. */
    int sent = send(fd, head, (size_t)hn, MSG_NOSIGNAL) == hn;
    for (size_t off = 0; sent && off < size;) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue; /* libFuzzer's timer signal */
        if (w <= 0) break;
        off += (size_t)w;
    }
    char resp[64] = {0};
    size_t got = 0;
    for (;;) {
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        /* libFuzzer's -timeout timer (SIGALRM) interrupts a slow answer: wait on. */
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0 && got == 0) {
                fprintf(stderr, "fuzz_http: no answer from %s %s (%s, sent %d)\n", route[0], route[1],
                        strerror(errno), sent);
                abort();
            }
            break;
        }
        if (got < sizeof resp - 1) {
            size_t c = (size_t)r < sizeof resp - 1 - got ? (size_t)r : sizeof resp - 1 - got;
            memcpy(resp + got, buf, c);
        }
        got += (size_t)r;
    }
    close(fd);
    int status = 0;
    if (got && sscanf(resp, "HTTP/1.%*d %d", &status) == 1 && status >= 500) {
        fprintf(stderr, "fuzz_http: %s %s answered %d\n", route[0], route[1], status);
        abort();
    }
    return 0;
}
