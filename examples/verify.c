/* Same person? The smallest complete program on libmien: open the models, detect the largest
 * face of two photos, embed both, compare.
 *
 *   cc examples/verify.c $(pkg-config --cflags --libs mien) -o verify
 *   ./verify models a.jpg b.jpg
 */
#include <mien.h>
#include <stdio.h>
#include <stdlib.h>

static int embed_largest(mien_session *s, const char *path, float *emb) {
    mien_image img;
    mien_face *faces;
    int n;
    if (mien_image_load(s, path, &img) || mien_detect(s, &img, NULL, &faces, &n)) {
        fprintf(stderr, "%s\n", mien_errmsg(s));
        return -1;
    }
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || faces[i].box[2] * faces[i].box[3] > faces[best].box[2] * faces[best].box[3])
            best = i;
    int rc = best < 0 ? -1 : mien_embed(s, &img, &faces[best], emb);
    if (best < 0) fprintf(stderr, "%s: no face\n", path);
    else if (rc) fprintf(stderr, "%s\n", mien_errmsg(s));
    mien_faces_free(faces);
    mien_image_free(&img);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODELS_DIR A.jpg B.jpg\n", argv[0]);
        return 2;
    }
    mien_models *m;
    if (mien_models_open(argv[1], NULL, &m)) {
        fprintf(stderr, "%s\n", mien_models_errmsg(m));
        mien_models_close(m);
        return 1;
    }
    mien_session *s;
    if (mien_session_open(m, &s)) {
        fprintf(stderr, "%s\n", mien_errmsg(s));
        return 1;
    }
    int dim = mien_models_embedding_dim(m);
    float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
    int rc = 1;
    if (a && b && !embed_largest(s, argv[2], a) && !embed_largest(s, argv[3], b)) {
        float sim = mien_similarity(a, b, dim);
        printf("similarity %.3f: %s\n", sim,
               sim >= mien_models_threshold(m) ? "same person" : "different people");
        rc = 0;
    }
    free(a);
    free(b);
    mien_session_close(s);
    mien_models_close(m);
    return rc;
}
