/* Training data: folder listing, the crop cache, batches, held-out pairs (see data.h). */
#include "train/data.h"

#include "train/train.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CROP_MAGIC "MIENCROP"
#define CROP_VERSION 1u

/* ==== Folder listing ==== */

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot || n[0] == '.') return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png") ||
           !strcasecmp(dot, ".webp");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir that pass keep (files) or are folders (dirs). */
static int list_dir(const char *dir, int want_dirs, char ***out, int *n, mien_err *e) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mien_err_set(e, MIEN_EIO, "cannot open folder %s: %s", dir, strerror(errno));
    int cap = 0;
    char path[4096];
    struct dirent *de;
    int rc = MIEN_OK;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (want_dirs ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) && is_image_name(de->d_name)))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(*out, (size_t)cap * sizeof *nv);
            if (!nv) {
                rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
                break;
            }
            *out = nv;
        }
        if (!((*out)[*n] = strdup(de->d_name))) {
            rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(*out, (size_t)*n, sizeof **out, cmp_str);
    return rc;
}

void tr_listing_free(tr_listing *l) {
    if (!l) return;
    for (int i = 0; i < l->n_id; i++) {
        free(l->id[i].name);
        for (int k = 0; k < l->id[i].n_files; k++) free(l->id[i].files[k]);
        free(l->id[i].files);
    }
    free(l->id);
    memset(l, 0, sizeof *l);
}

int tr_list_identities(const char *root, int min_images, int max_per_class, tr_listing *out,
                       mien_err *e) {
    memset(out, 0, sizeof *out);
    char **dirs;
    int nd, rc = list_dir(root, 1, &dirs, &nd, e);
    if (rc) return rc;
    out->id = calloc((size_t)(nd ? nd : 1), sizeof *out->id);
    if (!out->id) rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
    char path[4096];
    for (int i = 0; i < nd && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
        char **files;
        int nf;
        if ((rc = list_dir(path, 0, &files, &nf, e))) break;
        if (nf < (min_images > 0 ? min_images : 1)) {
            for (int k = 0; k < nf; k++) free(files[k]);
            free(files);
            continue;
        }
        if (max_per_class > 0 && nf > max_per_class) {
            for (int k = max_per_class; k < nf; k++) free(files[k]);
            nf = max_per_class;
        }
        for (int k = 0; k < nf && !rc; k++) {
            size_t l = strlen(dirs[i]) + strlen(files[k]) + 2;
            char *rel = malloc(l);
            if (!rel) {
                rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
                break;
            }
            snprintf(rel, l, "%s/%s", dirs[i], files[k]);
            free(files[k]);
            files[k] = rel;
        }
        tr_identity *id = &out->id[out->n_id++];
        id->name = dirs[i];
        dirs[i] = NULL;
        id->files = files;
        id->n_files = nf;
    }
    for (int i = 0; i < nd; i++) free(dirs[i]);
    free(dirs);
    if (!rc && out->n_id == 0)
        rc = mien_err_set(e, MIEN_ENOTFOUND, "%s: no identity folder with %d or more photos", root,
                          min_images > 0 ? min_images : 1);
    if (rc) tr_listing_free(out);
    return rc;
}

/* ==== Crop cache ==== */

void tr_crops_free(tr_crops *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->path[i]);
        free(c->pix[i]);
    }
    free(c->path);
    free(c->found);
    free(c->pix);
    memset(c, 0, sizeof *c);
}

int tr_crops_find(const tr_crops *c, const char *rel) {
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, k = strcmp(c->path[mid], rel);
        if (!k) return mid;
        if (k < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int tr_crops_put(tr_crops *c, const char *rel, const uint8_t *pix, mien_err *e) {
    const size_t bytes = (size_t)c->side * c->side * 3;
    uint8_t *copy = NULL;
    if (pix) {
        copy = malloc(bytes);
        if (!copy) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        memcpy(copy, pix, bytes);
    }
    int at = tr_crops_find(c, rel);
    if (at >= 0) {
        free(c->pix[at]);
        c->pix[at] = copy;
        c->found[at] = pix != NULL;
        return MIEN_OK;
    }
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 256;
        char **np = realloc(c->path, (size_t)nc * sizeof *np);
        if (np) c->path = np;
        unsigned char *nf = realloc(c->found, (size_t)nc);
        if (nf) c->found = nf;
        uint8_t **nx = realloc(c->pix, (size_t)nc * sizeof *nx);
        if (nx) c->pix = nx;
        if (!np || !nf || !nx) {
            free(copy);
            return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        }
        c->cap = nc;
    }
    char *p = strdup(rel);
    if (!p) {
        free(copy);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    /* Keep the paths sorted: insertion point by binary search. */
    int lo = 0, hi = c->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (strcmp(c->path[mid], rel) < 0) lo = mid + 1;
        else hi = mid;
    }
    memmove(c->path + lo + 1, c->path + lo, (size_t)(c->n - lo) * sizeof *c->path);
    memmove(c->found + lo + 1, c->found + lo, (size_t)(c->n - lo));
    memmove(c->pix + lo + 1, c->pix + lo, (size_t)(c->n - lo) * sizeof *c->pix);
    c->path[lo] = p;
    c->found[lo] = pix != NULL;
    c->pix[lo] = copy;
    c->n++;
    return MIEN_OK;
}

int tr_crops_load(const char *path, int side, tr_crops *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    out->side = side;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? MIEN_OK : mien_err_set(e, MIEN_EIO, "cannot read %s: %s", path, strerror(errno));
    char magic[8];
    uint32_t ver, s, n;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CROP_MAGIC, 8) || fread(&ver, 4, 1, f) != 1 ||
        fread(&s, 4, 1, f) != 1 || fread(&n, 4, 1, f) != 1 || ver != CROP_VERSION) {
        fclose(f);
        return mien_err_set(e, MIEN_EFORMAT, "%s: not a crop cache (delete it to rebuild)", path);
    }
    if ((int)s != side) { /* another crop size: start afresh */
        fclose(f);
        return MIEN_OK;
    }
    const size_t bytes = (size_t)side * side * 3;
    uint8_t *pix = malloc(bytes);
    char name[4097];
    int rc = pix ? MIEN_OK : mien_err_set(e, MIEN_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n && !rc; i++) {
        uint32_t l;
        unsigned char found;
        if (fread(&l, 4, 1, f) != 1 || l == 0 || l > 4096 || fread(name, 1, l, f) != l ||
            fread(&found, 1, 1, f) != 1 || (found && fread(pix, 1, bytes, f) != bytes)) {
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: truncated at entry %u (delete it to rebuild)", path, i);
            break;
        }
        name[l] = '\0';
        rc = tr_crops_put(out, name, found ? pix : NULL, e);
    }
    free(pix);
    fclose(f);
    if (rc) tr_crops_free(out);
    return rc;
}

int tr_crops_save(const char *path, const tr_crops *c, mien_err *e) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
    uint32_t hdr[3] = {CROP_VERSION, (uint32_t)c->side, (uint32_t)c->n};
    int ok = fwrite(CROP_MAGIC, 1, 8, f) == 8 && fwrite(hdr, 4, 3, f) == 3;
    const size_t bytes = (size_t)c->side * c->side * 3;
    for (int i = 0; ok && i < c->n; i++) {
        uint32_t l = (uint32_t)strlen(c->path[i]);
        unsigned char found = c->found[i];
        ok = fwrite(&l, 4, 1, f) == 1 && fwrite(c->path[i], 1, l, f) == l && fwrite(&found, 1, 1, f) == 1 &&
             (!found || fwrite(c->pix[i], 1, bytes, f) == bytes);
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return mien_err_set(e, MIEN_EIO, "cannot write %s", path);
    }
    return MIEN_OK;
}

/* ==== Samples and batches ==== */

typedef struct keyed { uint64_t k; int i; } keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    return x->k < y->k ? -1 : x->k > y->k ? 1 : x->i - y->i;
}

void tr_epoch_order(uint64_t seed, int64_t epoch, int n, int *order) {
    keyed *k = malloc((size_t)(n ? n : 1) * sizeof *k);
    if (!k) { /* no memory for a shuffle: the identity order is still a valid epoch */
        for (int i = 0; i < n; i++) order[i] = i;
        return;
    }
    for (int i = 0; i < n; i++) k[i] = (keyed){tr_hash3(seed ^ 0xe90c4ULL, (uint64_t)epoch, (uint64_t)i), i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int i = 0; i < n; i++) order[i] = k[i].i;
    free(k);
}

void tr_fill_input(const tr_sample *s, const int *idx, const unsigned char *flip, int batch,
                   int side, float *input) {
    tr_fill_input_norm(s, idx, flip, batch, side, 127.5f, 1.f / 128.f, input);
}

void tr_fill_input_norm(const tr_sample *s, const int *idx, const unsigned char *flip, int batch,
                        int side, float mean, float scale, float *input) {
    const float inv = scale;
    for (int b = 0; b < batch; b++) {
        const uint8_t *p = s[idx[b]].pix;
        float *o = input + (size_t)b * side * side * 3;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                const uint8_t *q = p + ((size_t)y * side + (flip && flip[b] ? side - 1 - x : x)) * 3;
                float *r = o + ((size_t)y * side + x) * 3;
                r[0] = ((float)q[0] - mean) * inv;
                r[1] = ((float)q[1] - mean) * inv;
                r[2] = ((float)q[2] - mean) * inv;
            }
    }
}

/* ==== Held-out pairs ==== */

int tr_make_pairs(const tr_listing *l, const int *ids, int n_ids, const tr_crops *c, int n_folds,
                  int same_per_fold, uint64_t seed, tr_pair **pairs, int *n_pairs, mien_err *e) {
    *pairs = NULL;
    *n_pairs = 0;
    if (n_folds < 2 || n_ids < 2 * n_folds)
        return mien_err_set(e, MIEN_EINVAL, "held-out pairs: %d identities for %d folds (need 2 per fold)",
                            n_ids, n_folds);
    /* Crop indices of each held-out identity's photos with a face. */
    int **ph = calloc((size_t)n_ids, sizeof *ph), *nph = calloc((size_t)n_ids, sizeof *nph);
    tr_pair *out = malloc((size_t)n_folds * 2 * (size_t)same_per_fold * sizeof *out);
    int rc = ph && nph && out ? MIEN_OK : mien_err_set(e, MIEN_ENOMEM, "out of memory");
    for (int i = 0; i < n_ids && !rc; i++) {
        const tr_identity *id = &l->id[ids[i]];
        ph[i] = malloc((size_t)(id->n_files ? id->n_files : 1) * sizeof **ph);
        if (!ph[i]) {
            rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < id->n_files; k++) {
            int at = tr_crops_find(c, id->files[k]);
            if (at >= 0 && c->found[at]) ph[i][nph[i]++] = at;
        }
    }
    int n = 0;
    uint64_t ctr = 0;
    for (int f = 0; f < n_folds && !rc; f++) {
        /* This fold's identities: i = f, f + n_folds, ...; genuine pairs need 2 photos. */
        int mine[4096], nm = 0, multi = 0;
        for (int i = f; i < n_ids && nm < 4096; i += n_folds)
            if (nph[i] > 0) {
                mine[nm++] = i;
                multi += nph[i] > 1;
            }
        if (nm < 2 || !multi) {
            rc = mien_err_set(e, MIEN_EINVAL, "held-out fold %d has too few photos with faces", f);
            break;
        }
        for (int k = 0; k < same_per_fold; k++) {
            int i;
            do i = mine[tr_hash3(seed, ctr++, 1) % (uint64_t)nm];
            while (nph[i] < 2);
            int a = (int)(tr_hash3(seed, ctr++, 2) % (uint64_t)nph[i]);
            int b = (int)(tr_hash3(seed, ctr++, 3) % (uint64_t)(nph[i] - 1));
            if (b >= a) b++;
            out[n++] = (tr_pair){ph[i][a], ph[i][b], 1, f};
        }
        for (int k = 0; k < same_per_fold; k++) {
            int ii = (int)(tr_hash3(seed, ctr++, 4) % (uint64_t)nm);
            int jj = (int)(tr_hash3(seed, ctr++, 5) % (uint64_t)(nm - 1));
            if (jj >= ii) jj++;
            int i = mine[ii], j = mine[jj];
            int a = ph[i][tr_hash3(seed, ctr++, 6) % (uint64_t)nph[i]];
            int b = ph[j][tr_hash3(seed, ctr++, 7) % (uint64_t)nph[j]];
            out[n++] = (tr_pair){a, b, 0, f};
        }
    }
    for (int i = 0; ph && i < n_ids; i++) free(ph[i]);
    free(ph);
    free(nph);
    if (rc) {
        free(out);
        return rc;
    }
    *pairs = out;
    *n_pairs = n;
    return MIEN_OK;
}

int tr_write_pairs(const char *path, const tr_crops *c, const tr_pair *p, int n, mien_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "# mien train: held-out verification pairs (pathA, pathB, 1 same / 0 different, fold)\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\t%s\t%d\t%d\n", c->path[p[i].a], c->path[p[i].b], p[i].same, p[i].fold);
    if (fclose(f) != 0) return mien_err_set(e, MIEN_EIO, "cannot write %s", path);
    return MIEN_OK;
}
