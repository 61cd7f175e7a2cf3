/* Detection evaluation: ground truth (WIDER FACE's text format or dlib's imglab XML),
 * greedy matching of detections to faces and average precision (mien eval detection). */
#include "eval/det_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void de_set_free(de_set *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->img[i].path);
        free(g->img[i].box);
    }
    free(g->img);
}

static de_image *gt_add_image(de_set *g, const char *path, size_t len) {
    if (g->n == g->cap) {
        int nc = g->cap ? g->cap * 2 : 64;
        de_image *ni = realloc(g->img, (size_t)nc * sizeof *ni);
        if (!ni) return NULL;
        g->img = ni;
        g->cap = nc;
    }
    de_image *im = &g->img[g->n];
    memset(im, 0, sizeof *im);
    im->path = strndup(path, len);
    if (!im->path) return NULL;
    g->n++;
    return im;
}

static int gt_add_box(de_image *im, float x, float y, float w, float h, int care) {
    if (im->n == im->cap) {
        int nc = im->cap ? im->cap * 2 : 8;
        de_box *nb = realloc(im->box, (size_t)nc * sizeof *nb);
        if (!nb) return 0;
        im->box = nb;
        im->cap = nc;
    }
    im->box[im->n++] = (de_box){x, y, w, h, care, 0};
    return 1;
}

/* Value of attribute name='...' (or "...") inside [s, end); NULL if absent. */
static const char *xml_attr(const char *s, const char *end, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *p = s; p + nl + 2 < end; p++) {
        if (strncmp(p, name, nl) != 0 || p[nl] != '=' || (p > s && p[-1] != ' ')) continue;
        char q = p[nl + 1];
        if (q != '\'' && q != '"') continue;
        const char *v = p + nl + 2, *e = memchr(v, q, (size_t)(end - v));
        if (!e) return NULL;
        *len = (size_t)(e - v);
        return v;
    }
    return NULL;
}

static int xml_num(const char *s, const char *end, const char *name, float *out) {
    size_t len;
    const char *v = xml_attr(s, end, name, &len);
    if (!v || len == 0 || len > 30) return 0;
    char buf[32];
    memcpy(buf, v, len);
    buf[len] = 0;
    char *e;
    *out = strtof(buf, &e);
    return *e == 0 && isfinite(*out);
}

static int parse_dlib_xml(const char *text, const char *name, float min_size, de_set *g,
                          mien_err *err) {
    const char *p = text;
    de_image *cur = NULL;
    while ((p = strchr(p, '<'))) {
        const char *end = strchr(p, '>');
        if (!end) break;
        if (!strncmp(p, "<image ", 7)) {
            size_t len;
            const char *f = xml_attr(p, end, "file", &len);
            if (!f) return mien_err_set(err, MIEN_EFORMAT, "%s: <image> without file", name);
            if (!(cur = gt_add_image(g, f, len))) return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        } else if (!strncmp(p, "<box ", 5)) {
            float top, left, w, h, ign = 0;
            if (!cur || !xml_num(p, end, "top", &top) || !xml_num(p, end, "left", &left) ||
                !xml_num(p, end, "width", &w) || !xml_num(p, end, "height", &h) || w < 0 || h < 0)
                return mien_err_set(err, MIEN_EFORMAT, "%s: bad <box> near byte %ld", name,
                                    (long)(p - text));
            xml_num(p, end, "ignore", &ign);
            if (!gt_add_box(cur, left, top, w, h, ign == 0 && fmaxf(w, h) >= min_size))
                return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        }
        p = end + 1;
    }
    return MIEN_OK;
}

/* WIDER FACE: path / count / count lines "x y w h blur expression illumination invalid
 * occlusion pose" (a count of 0 is followed by one line of zeros). */
static int parse_wider(char *text, const char *name, float min_size, de_set *g, mien_err *err) {
    char *save = NULL;
    int lineno = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strcspn(l, "\r");
        if (len == 0) continue;
        de_image *im = gt_add_image(g, l, len);
        if (!im) return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        char *cl = strtok_r(NULL, "\n", &save), *e;
        lineno++;
        long count = cl ? strtol(cl, &e, 10) : -1;
        if (!cl || e == cl || count < 0 || count > 100000)
            return mien_err_set(err, MIEN_EFORMAT, "%s:%d: expected a face count", name, lineno);
        for (long k = 0; k < (count ? count : 1); k++) {
            char *bl = strtok_r(NULL, "\n", &save);
            lineno++;
            float v[10] = {0};
            int got = bl ? sscanf(bl, "%f %f %f %f %f %f %f %f %f %f", &v[0], &v[1], &v[2], &v[3],
                                  &v[4], &v[5], &v[6], &v[7], &v[8], &v[9])
                         : 0;
            if (got < 4) return mien_err_set(err, MIEN_EFORMAT, "%s:%d: expected x y w h", name, lineno);
            if (count == 0) break;
            int invalid = got >= 8 && v[7] != 0;
            if (!gt_add_box(im, v[0], v[1], v[2], v[3], !invalid && fmaxf(v[2], v[3]) >= min_size))
                return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        }
    }
    return MIEN_OK;
}

static float iou_xywh(const float *a, const de_box *b) {
    float x0 = fmaxf(a[0], b->x), y0 = fmaxf(a[1], b->y);
    float x1 = fminf(a[0] + a[2], b->x + b->w), y1 = fminf(a[1] + a[3], b->y + b->h);
    float inter = fmaxf(x1 - x0, 0.f) * fmaxf(y1 - y0, 0.f);
    float uni = a[2] * a[3] + b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0.f;
}

static int by_score(const void *a, const void *b) {
    float x = ((const de_det *)a)->score, y = ((const de_det *)b)->score;
    return (x < y) - (x > y);
}

void de_evaluate(de_set *g, de_det *d, int nd, float iou_thr, float op_score, de_result *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->img[i].n; k++) {
            g->img[i].box[k].matched = 0;
            r->n_care += g->img[i].box[k].care;
        }
    qsort(d, (size_t)nd, sizeof *d, by_score);
    double *prec = malloc((size_t)(nd + 1) * sizeof *prec), *rec = malloc((size_t)(nd + 1) * sizeof *rec);
    int tp = 0, fp = 0, m = 0;
    for (int k = 0; prec && rec && k < nd; k++) {
        de_image *im = &g->img[d[k].image];
        int best = -1;
        float bi = 0;
        for (int b = 0; b < im->n; b++) {
            float v = iou_xywh(d[k].box, &im->box[b]);
            if (v > bi) bi = v, best = b;
        }
        if (bi < iou_thr) best = -1;
        if (best >= 0 && !im->box[best].care) continue; /* don't-care: neither way */
        if (best >= 0 && !im->box[best].matched) {
            im->box[best].matched = 1;
            tp++;
        } else {
            fp++;
        }
        if (d[k].score >= op_score) r->tp = tp, r->fp = fp;
        prec[m] = (double)tp / (tp + fp);
        rec[m] = r->n_care ? (double)tp / r->n_care : 0;
        m++;
    }
    /* All-point interpolated AP: precision made monotone from the right. */
    for (int k = m - 2; k >= 0; k--) prec[k] = fmax(prec[k], prec[k + 1]);
    double prev_r = 0;
    for (int k = 0; k < m; k++) {
        r->ap += (rec[k] - prev_r) * prec[k];
        prev_r = rec[k];
    }
    r->precision = r->tp + r->fp ? (double)r->tp / (r->tp + r->fp) : 1.0;
    r->recall = r->n_care ? (double)r->tp / r->n_care : 0;
    free(prec);
    free(rec);
}

int de_gt_parse(char *text, const char *name, float min_size, de_set *g, mien_err *e) {
    return strstr(text, "<image") ? parse_dlib_xml(text, name, min_size, g, e)
                                  : parse_wider(text, name, min_size, g, e);
}
