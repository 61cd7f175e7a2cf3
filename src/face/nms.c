/* Non-maximum suppression, the one of every detector (face.h): hard suppression for SCRFD,
 * YuNet and the SSDs, MediaPipe's weighted blending for BlazeFace. Used by detect.c and
 * onnx_models.c. */
#include "face/face.h"

#include <stdlib.h>
#include <string.h>

/* Any struct beginning with {float score; float box[4];}. */
static int by_score_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void face_sort_by_score(void *c, int n, size_t size) {
    if (n > 1) qsort(c, (size_t)n, size, by_score_desc); /* c is NULL when n is 0 */
}

int face_nms_hard(void *c, int n, size_t size, float iou) {
    face_sort_by_score(c, n, size);
    char *p = c;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        const float *bi = (const float *)(p + (size_t)i * size) + 1;
        int ok = 1;
        for (int k = 0; k < kept && ok; k++)
            ok = face_iou((const float *)(p + (size_t)k * size) + 1, bi) <= iou;
        if (ok) {
            if (kept != i) memcpy(p + (size_t)kept * size, p + (size_t)i * size, size);
            kept++;
        }
    }
    return kept;
}

int face_nms_weighted(det_cand *c, int n, float iou) {
    face_sort_by_score(c, n, sizeof *c);
    char *used = calloc((size_t)(n ? n : 1), 1);
    if (!used) return -1;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        det_cand acc = {0};
        float wsum = 0, wkp = 0;
        for (int j = i; j < n; j++) {
            if (used[j] || (j != i && face_iou(c[i].box, c[j].box) <= iou)) continue;
            used[j] = 1;
            float w = c[j].score;
            wsum += w;
            for (int k = 0; k < 4; k++) acc.box[k] += w * c[j].box[k];
            if (!c[j].n_kp) continue;
            wkp += w;
            acc.n_kp = c[j].n_kp;
            for (int k = 0; k < c[j].n_kp; k++) {
                acc.kp[k][0] += w * c[j].kp[k][0];
                acc.kp[k][1] += w * c[j].kp[k][1];
            }
        }
        for (int k = 0; k < 4; k++) acc.box[k] /= wsum;
        for (int k = 0; k < acc.n_kp; k++) {
            acc.kp[k][0] /= wkp;
            acc.kp[k][1] /= wkp;
        }
        acc.score = c[i].score;
        c[kept++] = acc;  /* kept <= i, so this never overwrites an unread candidate */
    }
    free(used);
    return kept;
}
