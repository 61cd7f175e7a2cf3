/* Photos: decode only as much of a photo as the networks need.
 *
 * The detector sees a photo letterboxed to 256x256 (128x128 for the front model), the face
 * mesh a 192x192 crop, the embedder a 112..224 crop. Decoding a 12-megapixel JPEG at full
 * size (32 ms here) and shrinking it for the detector (10 ms) is mostly wasted:
 * libjpeg-turbo decodes at 1/2, 1/4 or 1/8 of the size straight from the DCT coefficients
 * (22, 18, 14 ms), the shrinking done, and antialiased, on the way.
 *
 * A mien_photo keeps the encoded bytes and decodes "levels" lazily: level j is the photo at
 * 1/2^j of its size (baseline JPEG only; other formats and progressive JPEGs have level 0
 * alone). Each level is decoded at most once, on first use, and kept until the photo closes.
 *
 *   - Detection reads the coarsest level whose longer side is still at least
 *     PHOTO_DETECT_OVERSAMPLE times the detector input (with tiling, level 0: the tiles need
 *     the detail).
 *   - Each crop (the landmark network's and the embedder's) reads the coarsest level at which
 *     one crop pixel still covers at least PHOTO_CROP_MIN_SCALE pixels of that level, so no
 *     crop is magnified from a reduced level: a face too small for the detection level
 *     brings in a finer one (level 0 for small faces). A level already decoded is preferred
 *     to decoding a coarser one.
 *
 * Why 4 and not 2 times the detector input: the entropy decoding is the same work at every
 * scale, so 1/2 saves little (obama-1080p: 9.3 ms at 1/1, 8.6 at 1/2, plus 1 ms less
 * resizing), while a face that then needs the full size costs a second decode. With 4, a
 * photo under 2048 pixels (8 x BlazeFace's 256) is decoded once at full size as before,
 * with the same results bit for bit, and a 4032x2268 one detects at 1/2 (obama4k: 56 -> 45 ms for the
 * whole pipeline, min of 5); a crop pixel covering at least one level pixel kept its
 * embedding within cosine 0.9995 of the full-size one (worst of the people and demo photos;
 * shifting a photo by one pixel moves it as much, down to 0.9992).
 *
 * The scaled levels are block-aligned with the full image: pixel i of level j covers full
 * pixels [i 2^j, (i+1) 2^j), so a continuous coordinate maps by the factor full size /
 * level size (exactly 2^j when the side is a multiple of 2^j; otherwise the last partial
 * block puts the factor up to 1/side off, under 2^j pixels at the far edge). Every
 * coordinate given out is in pixels of the full-size upright photo. */
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PHOTO_LEVELS 4                  /* 1/1, 1/2, 1/4, 1/8 */
#define PHOTO_MAX_FILE_BYTES ((size_t)256 << 20) /* as img_load */
/* Detection level: longer side >= this x the detector input (see above). */
#define PHOTO_DETECT_OVERSAMPLE 4.f
/* Crop levels: level pixels per crop pixel at least this. */
#define PHOTO_CROP_MIN_SCALE 1.f
/* The landmark crop's side relative to the detection box's longer side when the detector's
 * row (detectors.c) does not say: landmarks.c's MESH_ROI_SCALE (face mesh) and P68_ROI_SCALE
 * (68-point nets). Keep in step with it; a drift only moves the level choice, never a
 * result's coordinates. */
#define PHOTO_MESH_ROI 1.5f
#define PHOTO_68_ROI 1.2f

struct mien_photo {
    uint8_t *data;                      /* the encoded photo (owned) */
    size_t len;
    int width, height;                  /* full size, upright (EXIF orientation applied) */
    int n_levels;                       /* PHOTO_LEVELS for JPEG, 1 otherwise */
    mien_image level[PHOTO_LEVELS];     /* level j decoded at 1/2^j; rgb NULL until needed */
};

/* ==== Levels ==== */

/* 1 when the JPEG's first frame header is progressive (SOF2, SOF6, SOF10, SOF14). Such a
 * photo is entropy-decoded in full whatever the scale (66 ms at 1/1 and 1/8 alike for a
 * 2000x1428 one here), so a second, finer decode would cost as much as the first: it gets
 * level 0 alone. Walks the marker segments with every length checked (hostile input). */
static int jpeg_progressive(const uint8_t *d, size_t len) {
    size_t i = 2; /* after SOI */
    while (i + 4 <= len) {
        if (d[i] != 0xFF) return 0;
        uint8_t marker = d[i + 1];
        if (marker == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
            marker != 0xCC) /* a frame header (not DHT, JPG or DAC) */
            return marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE;
        if (marker == 0xDA || marker == 0xD9) return 0; /* scan or end before any frame */
        size_t seg = (size_t)d[i + 2] << 8 | d[i + 3];
        if (seg < 2) return 0;
        i += 2 + seg;
    }
    return 0;
}

/* Size of level j: libjpeg's scaled output is ceil(side / 2^j). */
static void level_size(const mien_photo *p, int j, int *w, int *h) {
    const int d = 1 << j;
    *w = (p->width + d - 1) / d;
    *h = (p->height + d - 1) / d;
}

/* Full-size pixels per pixel of level j, along x and y. */
static void level_scale(const mien_photo *p, int j, float *sx, float *sy) {
    int w, h;
    level_size(p, j, &w, &h);
    *sx = (float)p->width / (float)w;
    *sy = (float)p->height / (float)h;
}

/* Level j, decoded on first use. */
static int level_get(mien_session *s, mien_photo *p, int j, const mien_image **out) {
    mien_image *l = &p->level[j];
    if (!l->rgb) {
        img_decode_opts o = {.scale_denom = 1 << j};
        int fw, fh, rc = img_decode(p->data, p->len, &o, l, &fw, &fh, &s->err);
        if (rc) return rc;
        int w, h;
        level_size(p, j, &w, &h);
        if (fw != p->width || fh != p->height || l->width != w || l->height != h) {
            mien_image_free(l);
            return mien_err_set(&s->err, MIEN_EFORMAT,
                                "photo: decoded %dx%d at 1/%d of %dx%d, expected %dx%d",
                                l->width, l->height, 1 << j, fw, fh, w, h);
        }
    }
    *out = l;
    return MIEN_OK;
}

/* The level a crop should read when it takes k full-size pixels per crop pixel: the
 * coarsest decoded level where a crop pixel covers >= PHOTO_CROP_MIN_SCALE level pixels,
 * else the coarsest such level (to decode), else level 0. */
static int crop_level(const mien_photo *p, float k) {
    int best_decoded = -1, best = 0;
    for (int j = 0; j < p->n_levels; j++) {
        float sx, sy;
        level_scale(p, j, &sx, &sy);
        if (!(k / fmaxf(sx, sy) >= PHOTO_CROP_MIN_SCALE)) break; /* coarser levels: worse */
        best = j;
        if (p->level[j].rgb) best_decoded = j;
    }
    return best_decoded >= 0 ? best_decoded : best;
}

/* Multiply every coordinate of f by (sx, sy). */
/* Full-size pixels per crop pixel of the embedder's crop of f (0 if it has none). */
static float embed_crop_scale(const mien_session *s, const mien_face *f, float m[6]) {
    if (!face_embed_matrix(&s->m->emb, f, m)) return 0.f;
    return hypotf(m[0], m[3]);
}

/* ==== Public API ==== */

int mien_photo_open(mien_session *s, const void *data, size_t len, mien_photo **out) {
    if (!s || !out) return MIEN_EINVAL;
    *out = NULL;
    if (!data && len) return mien_err_set(&s->err, MIEN_EINVAL, "photo: no data");
    const char *format;
    int w, h, rc = img_probe(data, len, &w, &h, &format, &s->err);
    if (rc) return rc;
    mien_photo *p = calloc(1, sizeof *p);
    if (!p || !(p->data = malloc(len))) {
        free(p);
        return mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
    }
    memcpy(p->data, data, len);
    p->len = len;
    p->width = w;
    p->height = h;
    p->n_levels = format && !strcmp(format, "jpeg") && !jpeg_progressive(p->data, len)
                      ? PHOTO_LEVELS : 1;
    *out = p;
    return MIEN_OK;
}

int mien_photo_load(mien_session *s, const char *path, mien_photo **out) {
    if (!s || !path || !out) return MIEN_EINVAL;
    *out = NULL;
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, PHOTO_MAX_FILE_BYTES, &data, &len, &s->err);
    if (rc) return rc;
    rc = mien_photo_open(s, data, len, out);
    free(data);
    if (rc) mien_err_prefix(&s->err, "%s", path);
    return rc;
}

void mien_photo_close(mien_photo *p) {
    if (!p) return;
    for (int j = 0; j < PHOTO_LEVELS; j++) mien_image_free(&p->level[j]);
    free(p->data);
    free(p);
}

void mien_photo_size(const mien_photo *p, int *width, int *height) {
    if (width) *width = p ? p->width : 0;
    if (height) *height = p ? p->height : 0;
}

int mien_photo_image(mien_session *s, mien_photo *p, const mien_image **img) {
    if (!s || !p || !img) return MIEN_EINVAL;
    return level_get(s, p, 0, img);
}

int mien_photo_detect(mien_session *s, mien_photo *p, const mien_detect_options *o,
                      mien_face **faces, int *n_faces) {
    if (!s || !p || !faces || !n_faces) return MIEN_EINVAL;
    *faces = NULL;
    *n_faces = 0;
    mien_detect_options opt;
    if (o) opt = *o;
    else mien_detect_options_default(&opt);
    /* Detection level. */
    int jd = 0;
    const float need = PHOTO_DETECT_OVERSAMPLE * (float)s->m->det.size;
    for (int j = 1; j < p->n_levels && !opt.tile; j++) {
        int w, h;
        level_size(p, j, &w, &h);
        if ((float)(w > h ? w : h) >= need) jd = j;
    }
    const mien_image *img;
    int rc = level_get(s, p, jd, &img);
    if (rc) return rc;
    float sx, sy;
    level_scale(p, jd, &sx, &sy);
    opt.min_size /= fmaxf(sx, sy); /* min_size is in full-size pixels */
    mien_face *f;
    int n;
    if ((rc = face_detect(s, img, &opt, &f, &n))) return rc;
    for (int i = 0; i < n; i++) face_move(&f[i], sx, sy, 0.f, 0.f);

    /* Landmark refinement, as mien_detect does, each face on its own level. */
    int kept = 0;
    const lm_model *lm = &s->m->lm;
    for (int i = 0; s->lm && i < n; i++) {
        const det_spec *ds = s->m->det.spec;
        const float roi = lm->kind == LM_FACEMESH || lm->kind == LM_MESH68
                              ? (ds ? ds->mesh_roi : PHOTO_MESH_ROI)
                              : (ds ? ds->lm68_roi : PHOTO_68_ROI);
        const float k = fmaxf(f[i].box[2], f[i].box[3]) * roi / (float)lm->size;
        const int j = crop_level(p, k);
        const mien_image *li;
        int keep = 1;
        if ((rc = level_get(s, p, j, &li))) break;
        float lx, ly;
        level_scale(p, j, &lx, &ly);
        face_move(&f[i], 1.f / lx, 1.f / ly, 0.f, 0.f);
        rc = face_refine_landmarks(s, li, &f[i], &keep);
        face_move(&f[i], lx, ly, 0.f, 0.f);
        if (rc) break;
        if (face_lm_kept(keep, &f[i], opt.min_score)) f[kept++] = f[i];
    }
    if (rc) {
        free(f);
        return rc;
    }
    if (s->lm) n = kept;
    if (n == 0) { /* nothing: a second look, with a margin, at the detection level */
        free(f);
        if ((rc = face_second_look(s, img, &opt, &f, &n))) return rc;
        for (int i = 0; i < n; i++) face_move(&f[i], sx, sy, 0.f, 0.f);
    }
    *faces = f;
    *n_faces = n;
    return MIEN_OK;
}

int mien_photo_embed(mien_session *s, mien_photo *p, const mien_face *face, float *emb) {
    if (!s || !p || !face || !emb) return MIEN_EINVAL;
    float m[6];
    const float k = embed_crop_scale(s, face, m);
    if (!(k > 0.f)) return mien_err_set(&s->err, MIEN_EINVAL, "embed: degenerate landmarks");
    const int j = crop_level(p, k);
    const mien_image *img;
    int rc = level_get(s, p, j, &img);
    if (rc) return rc;
    /* The crop matrices map crop pixels to full-size coordinates: the level is read at the
     * level's scale instead. */
    float sx, sy;
    level_scale(p, j, &sx, &sy);
    return face_embed_scaled(s, img, face, sx, sy, emb);
}
