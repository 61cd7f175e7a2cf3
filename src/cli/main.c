/* mien — command-line front end: one table of commands, each in its own file. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv) {
    printf("mien %s\n", mien_version());
    return EXIT_OK;
}

static int cmd_help(int argc, char **argv);

static const struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"detect", cmd_detect, "find faces: boxes, scores, landmarks (--json, --draw)"},
    {"embed", cmd_embed, "one embedding per face (--json)"},
    {"verify", cmd_verify, "same person? similarity, decision, threshold (--json)"},
    {"eval", cmd_eval, "accuracy on public data: eval pairs | eval landmarks"},
    {"models", cmd_models, "the models mien knows, with sources and sha256 (--json)"},
    {"train", cmd_train, "train an embedder: ArcFace/CosFace/SphereFace, Partial FC (--json)"},
    {"bench", cmd_bench, "speed: ms, GFLOP/s and fraction of the machine's peak per model, images/s"},
    {"enroll", cmd_enroll, "add people to the gallery: NAME IMAGE... or --from-dir DIR"},
    {"identify", cmd_identify, "who is this? every face named from the gallery, or unknown"},
    {"subjects", cmd_subjects, "the people in the gallery (--json)"},
    {"forget", cmd_forget, "delete people and their faces from the gallery"},
    {"rename", cmd_rename, "rename a person of the gallery"},
    {"export", cmd_export, "write the gallery to a portable JSON Lines file"},
    {"import", cmd_import, "merge an exported gallery file"},
    {"cluster", cmd_cluster, "group the faces of unlabelled photos by person"},
    {"collections", cmd_collections, "the face collections of the gallery (collections delete NAME)"},
    {"video", cmd_video, "follow and name the faces of a video file or stream (--json, --out)"},
    {"watch", cmd_watch, "a live stream until stopped: events as they happen, webhook"},
    {"serve", cmd_serve, "HTTP service: JSON API under /v1, API keys, web page at /"},
    {"keys", cmd_keys, "API keys of mien serve: keys add | keys list | keys remove"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "this list"},
};

static int cmd_help(int argc, char **argv) {
    printf("usage: mien COMMAND [ARGS]   (mien COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-11s %s\n", commands[i].name, commands[i].help);
    printf("\nModels: --models DIR, else the first of these folders that has them: $MIEN_MODELS,\n"
           "./models (a checkout after 'make setup'), $XDG_DATA_HOME/mien/models (else\n"
           "~/.local/share/mien/models), PREFIX/share/mien/models beside the installed program\n"
           "('make install'). 'man mien' has every command's options.\n");
    return EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cmd_help(0, NULL);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) return cmd_help(0, NULL);
    if (!strcmp(name, "--version")) return cmd_version(0, NULL);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mien: unknown command '%s' (see mien help)\n", name);
    return EXIT_USAGE;
}
