/* API keys of mien serve: random keys shown once, stored as SHA-256 digests in a small SQLite
 * file (table keys: name, role, service, collection, sha256, created). A server checks each
 * request's key against the file, so keys added or removed with `mien keys` take effect at once.
 *
 * A key without a service (a "mien key") may use every route its role allows, on any face
 * collection. A service key is CompreFace's: a recognition key works on its own collection
 * only (every route that reads or changes subjects, faces, identify), a detection key only
 * detects (and embeds), a verification key only compares faces; neither touches a collection.
 *
 * Threads: one handle may be used by any number of threads (calls are serialised). */
#ifndef MIEN_SERVER_KEYS_H
#define MIEN_SERVER_KEYS_H

#include <stddef.h>
#include <stdint.h>

typedef enum srv_role {
    SRV_ROLE_NONE = 0,   /* no key or an unknown key */
    SRV_ROLE_READ = 1,   /* detect, embed, verify, identify, list subjects */
    SRV_ROLE_ADMIN = 2   /* also enroll, rename and delete subjects */
} srv_role;

/* "read", "admin" ("none" for SRV_ROLE_NONE); srv_role_parse: SRV_ROLE_NONE when unknown. */
const char *srv_role_name(srv_role r);
srv_role srv_role_parse(const char *s);

typedef enum srv_service {
    SRV_SERVICE_ANY = 0,          /* a mien key: no service, any route of its role */
    SRV_SERVICE_RECOGNITION = 1,  /* one collection: identify, subjects, faces */
    SRV_SERVICE_DETECTION = 2,    /* detect and embed */
    SRV_SERVICE_VERIFICATION = 3  /* verify (two photos, or embeddings) */
} srv_service;

/* "" for SRV_SERVICE_ANY, else "recognition", "detection", "verification"; srv_service_parse:
 * -1 when unknown. */
const char *srv_service_name(srv_service s);
int srv_service_parse(const char *s);

/* Collection names of keys: as the gallery's (1 to 63 of [A-Za-z0-9._-], no leading '.'). */
#define SRV_COLLECTION_MAX 64

/* What a key may do. */
typedef struct srv_grant {
    srv_role role;                      /* SRV_ROLE_NONE: no such key */
    srv_service service;
    char collection[SRV_COLLECTION_MAX]; /* a recognition key's collection, else "" */
    char name[64];                      /* the key's name */
} srv_grant;

typedef struct srv_keys srv_keys;

/* A key as printed: "mien_" and 64 hex digits (32 random bytes). */
#define SRV_KEY_LEN 69
/* Key names (labels): 1 to 63 bytes of [A-Za-z0-9._@-]. */
#define SRV_KEY_NAME_MAX 64

/* The default keys file: $XDG_DATA_HOME/mien/keys.db, else $HOME/.local/share/mien/keys.db.
 * MIEN_ENOTFOUND when neither variable is set. The folder is not created. */
int srv_keys_default_path(char *buf, size_t size);

/* Open the keys file (create: make it when missing, mode 0600). On failure *out may hold a
 * handle whose srv_keys_errmsg() says why; close it. */
int srv_keys_open(const char *path, int create, srv_keys **out);
void srv_keys_close(srv_keys *k);
const char *srv_keys_errmsg(const srv_keys *k);

/* Make a new key of the role: name NULL or "" picks "key-" and 8 hex digits. key receives the
 * key (shown once: only its digest is stored), name_out (may be NULL) the name used.
 * MIEN_EINVAL for a bad name or role, or a name already taken. */
int srv_keys_add(srv_keys *k, const char *name, srv_role role, char key[SRV_KEY_LEN + 1],
                 char name_out[SRV_KEY_NAME_MAX]);

/* The same for a service: a recognition key works on collection (NULL or "": a collection
 * named after the key), other services take no collection (MIEN_EINVAL when one is given).
 * collection_out (may be NULL) receives the collection used. */
int srv_keys_add_service(srv_keys *k, const char *name, srv_role role, srv_service service,
                         const char *collection, char key[SRV_KEY_LEN + 1],
                         char name_out[SRV_KEY_NAME_MAX], char collection_out[SRV_COLLECTION_MAX]);

typedef struct srv_key_info {
    char name[SRV_KEY_NAME_MAX];
    srv_role role;
    srv_service service;
    char collection[SRV_COLLECTION_MAX];
    int64_t created;          /* Unix seconds */
    char prefix[16];          /* first hex digits of the digest, to tell keys apart */
} srv_key_info;

/* Every key, sorted by name; *out malloc'd (free()), *n may be 0. */
int srv_keys_list(srv_keys *k, srv_key_info **out, int *n);
/* MIEN_ENOTFOUND when no key has that name. */
int srv_keys_remove(srv_keys *k, const char *name);
/* The role of a key (SRV_ROLE_NONE for NULL, malformed or unknown keys). */
srv_role srv_keys_check(srv_keys *k, const char *key);
/* Everything a key grants (role SRV_ROLE_NONE for NULL, malformed or unknown keys). */
void srv_keys_grant(srv_keys *k, const char *key, srv_grant *out);

#endif
