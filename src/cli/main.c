/* mien — command-line front end. */
#include "mien.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("mien %s\n", mien_version());
        return 0;
    }
    fprintf(stderr, "usage: mien COMMAND [ARGS]\n");
    return 2;
}
