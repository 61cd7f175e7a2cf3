/* Detection evaluation (mien eval detection): annotated faces, and the precision, recall and
 * average precision of a detector's boxes against them.
 *
 * Ground truth: WIDER FACE's text format (path / count / "x y w h blur expression
 * illumination invalid occlusion pose" lines) or dlib's imglab XML (<image file=...> with
 * <box top left width height [ignore]>). Faces smaller than min_size and boxes marked
 * ignore/invalid are don't-care: a detection on one counts neither way.
 *
 * Matching is VOC's: detections by score, best first, each to the unmatched face it overlaps
 * most (IoU >= the threshold); AP is the all-point interpolated area under the
 * precision-recall curve (PASCAL VOC 2010+). */
#ifndef MIEN_EVAL_DET_EVAL_H
#define MIEN_EVAL_DET_EVAL_H

#include "core/err.h"

typedef struct de_box {
    float x, y, w, h;
    int care;                /* 0: don't care (small, ignored or invalid) */
    int matched;
} de_box;

typedef struct de_image {
    char *path;              /* as in the annotation (relative to the photos' root) */
    de_box *box;
    int n, cap;
} de_image;

typedef struct de_set {
    de_image *img;
    int n, cap;
} de_set;

/* Parse an annotation file's text (modified in place) into g (zeroed by the caller; free it
 * with de_set_free even on failure). The format is dlib's XML when the text holds "<image",
 * else WIDER's. name: for messages. */
int de_gt_parse(char *text, const char *name, float min_size, de_set *g, mien_err *e);
void de_set_free(de_set *g);

/* One detection: image index in the set, score, box (x, y, w, h) in pixels. */
typedef struct de_det {
    int image;
    float score, box[4];
} de_det;

typedef struct de_result {
    double ap, precision, recall;   /* precision/recall at op_score */
    int tp, fp, n_care;
} de_result;

/* Match the nd detections d (sorted here by score) to g's faces at IoU >= iou_thr; AP over
 * every detection, precision and recall over those scoring >= op_score. */
void de_evaluate(de_set *g, de_det *d, int nd, float iou_thr, float op_score, de_result *r);

#endif
