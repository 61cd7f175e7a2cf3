/* Shared pieces of the mien command-line tool: common options, model/session setup, progress
 * line, JSON output, running a job over many images on several threads. */
#ifndef MIEN_CLI_H
#define MIEN_CLI_H

#include "mien.h"

#include <cJSON.h>
#include <stdio.h>

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Options every model-using command understands. */
typedef struct cli_common {
    const char *models_dir;  /* --models DIR; NULL: the library's search (mien_models_open) */
    char models_buf[4096];   /* the folder the search found */
    mien_config cfg;         /* --detector, --embedder, --landmarks, --backend, --threads, --no-flip */
    mien_detect_options det; /* --min-score, --min-size, --tile */
    int threads;             /* --threads N (0 = all cores) */
    int threads_given;       /* 1: --threads N with N > 0 was given */
    int json;                /* --json */
    int quiet;               /* --quiet: no progress line */
} cli_common;

void cli_common_init(cli_common *c);

/* Parse argv in place: common options are consumed, the rest is compacted into
 * argv[1..*argc-1] (argv[0] is the command name). extra(opt, value) handles
 * command-specific options: return 1 if it took a value, 0 if it took just the flag, -1 if
 * it does not know opt. Returns 0, or EXIT_USAGE after printing a message. */
typedef int (*cli_extra_fn)(void *ctx, const char *opt, const char *val);
int cli_parse(cli_common *c, int *argc, char **argv, cli_extra_fn extra, void *ctx,
              const char *usage);

/* Open the model set; prints the reason and returns NULL on failure. Sets c->models_dir to
 * the folder used. */
mien_models *cli_open_models(cli_common *c);
/* The models folder: --models DIR, else the first place of the library's search that exists
 * (mien_models_find), else "models". */
const char *cli_models_dir(cli_common *c);
mien_session *cli_open_session(mien_models *m);

/* Number of online CPUs. */
int cli_ncpu(void);

/* Threads inside each of `workers` sessions that run at once (what mien_config.threads
 * gets). --threads N: N split evenly. By default, the cores the rest of the machine leaves
 * idle (online CPUs minus the 1-minute load average), split evenly: on a busy machine the
 * thread pool waits for a core at every layer (measured: mien verify 0.5 s on 1 thread, 5 to
 * 7 s on 2 threads with a load average of 12 on 2 cores). At least 1. */
int cli_intra_threads(const cli_common *c, int workers);

/* Progress line on stderr when it is a terminal and not --quiet: "label  n/total  rate/s". */
typedef struct cli_progress {
    const char *label;
    int total, enabled;
    double t0, last;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, int total, int quiet);
void cli_progress_update(cli_progress *p, int done);
void cli_progress_end(cli_progress *p, int done);
double cli_now(void);

/* Print a cJSON value followed by a newline, and free it. */
void cli_print_json(cJSON *v);

/* Faces of one photo: the largest, or the one nearest the image centre. */
int cli_pick_largest(const mien_face *f, int n);
int cli_pick_central(const mien_face *f, int n, int w, int h);

cJSON *cli_face_json(const mien_face *f);

/* Run fn(ctx, worker, index) for index in [0, n) on `threads` workers, each owning a session
 * (sessions[worker]); returns the first non-zero result. Progress shown with label. */
typedef int (*cli_job_fn)(void *ctx, mien_session *s, int worker, int index);
int cli_parallel(mien_models *m, int threads, int n, cli_job_fn fn, void *ctx,
                 const char *label, int quiet);

/* Draw faces (and labels, or their scores when labels is NULL) on a copy of img and write
 * it as PNG (cmd_detect.c). */
int cli_draw_faces(const char *path, const mien_image *img, const mien_face *f, int n,
                   const char *const *labels);

/* ==== Many photos (cmd_gallery.c) ==== */

/* The photos named by args: files as given, folders searched recursively for .jpg, .jpeg,
 * .png and .webp files (sorted). *paths is malloc'd: free with cli_free_strings. */
int cli_list_images(char *const *args, int n_args, char ***paths, int *n);
void cli_free_strings(char **v, int n);

/* A folder-per-person set: root/NAME/photo... (LFW's layout). */
typedef struct cli_person {
    char *name;              /* folder name */
    char **photos;           /* (n_photos) paths, sorted */
    int n_photos;
} cli_person;
int cli_list_people(const char *root, cli_person **out, int *n);   /* sorted by name */
void cli_people_free(cli_person *p, int n);

/* One photo's faces and embeddings. */
typedef struct cli_photo {
    const char *path;        /* set by the caller */
    int failed;              /* 1: could not be read, decoded or embedded (err says why) */
    char err[512];
    int width, height;
    char sha256[65];         /* of the file's bytes */
    int n_faces;             /* faces kept (0: none found) */
    mien_face *faces;        /* (n_faces) */
    float *emb;              /* (n_faces, dim) L2-normalised */
} cli_photo;

typedef enum cli_faces_rule {
    CLI_FACES_ALL,           /* every face */
    CLI_FACES_LARGEST,       /* the largest one */
    CLI_FACES_CENTRAL        /* cli_pick_central's (LFW's labelled face) */
} cli_faces_rule;

/* Detect and embed the faces of n photos on c->threads threads, one session each. A photo
 * that fails is marked in its cli_photo; the return value is non-zero only when the workers
 * could not run. */
int cli_embed_photos(mien_models *m, const cli_common *c, cli_photo *photos, int n,
                     cli_faces_rule rule, const char *label);
void cli_photos_free(cli_photo *p, int n);

/* The gallery at path (NULL: the default one), as the gallery commands open it: write may
 * create it (and its folder), m binds it to the models' embedder. Prints why and returns NULL
 * on failure. (cmd_gallery.c) */
mien_gallery *cli_open_gallery(const char *cmd, const char *path, int write, mien_models *m);
/* mkdir -p of the folder that will hold path. */
void cli_make_parent_dirs(const char *path);
/* The gallery path of --gallery path_in (NULL: the default one) into path, and the options
 * the gallery commands open it with (collection: --collection, or NULL). Prints why and
 * returns -1 when there is no default path. (cmd_gallery.c) */
int cli_gallery_options(const char *cmd, const char *path_in, const char *collection, int write,
                        mien_models *m, char *path, size_t size, mien_gallery_options *go);

/* Commands. */
int cmd_detect(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_models(int argc, char **argv);
/* mien train (cmd_train.c); mien-train-mpi runs the same command with an MPI communicator. */
struct tr_comm;
int cmd_train(int argc, char **argv);
int cmd_train_with(int argc, char **argv, const struct tr_comm *comm);
int cmd_bench(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_identify(int argc, char **argv);
int cmd_subjects(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_rename(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_collections(int argc, char **argv);
int cmd_eval_identify(int argc, char **argv);
int cmd_eval_cluster(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_video(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
