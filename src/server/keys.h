/* API keys of mien serve: random keys shown once, stored as SHA-256 digests in a small SQLite
 * file (table keys: name, role, sha256, created). A server checks each request's key against
 * the file, so keys added or removed with `mien keys` take effect at once.
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

typedef struct srv_key_info {
    char name[SRV_KEY_NAME_MAX];
    srv_role role;
    int64_t created;          /* Unix seconds */
    char prefix[16];          /* first hex digits of the digest, to tell keys apart */
} srv_key_info;

/* Every key, sorted by name; *out malloc'd (free()), *n may be 0. */
int srv_keys_list(srv_keys *k, srv_key_info **out, int *n);
/* MIEN_ENOTFOUND when no key has that name. */
int srv_keys_remove(srv_keys *k, const char *name);
/* The role of a key (SRV_ROLE_NONE for NULL, malformed or unknown keys). */
srv_role srv_keys_check(srv_keys *k, const char *key);

#endif
