/* Fuzz corpora replayed: every fuzz target (tests/fuzz/fuzz_*.c) runs, through the sanitizer
 * build, each committed input of tests/fuzz/corpus/TARGET/ and each crash input ever found
 * for it in $MIEN_DATA/fuzz/TARGET/. A target found here without its replay program, or
 * without a committed corpus, fails: `make test` builds build-asan/fuzz_replay_TARGET for every
 * name in the Makefile's FUZZ_TARGETS, which must list every target file. */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

START_TEST(fuzz_corpora_replay) {
    DIR *d = opendir("tests/fuzz");
    ck_assert_msg(d != NULL, "tests/fuzz missing (run from the repository root)");
    int targets = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char name[128];
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "fuzz_", 5) || len < 8 || strcmp(de->d_name + len - 2, ".c") ||
            !strcmp(de->d_name, "fuzz_util.c") || len - 7 >= sizeof name)
            continue;
        memcpy(name, de->d_name + 5, len - 7);
        name[len - 7] = 0;
        targets++;
        const char *corpus = tu_path("tests/fuzz/corpus/%s", name);
        int n = count_files(corpus);
        ck_assert_msg(n > 0, "fuzz target %s has no committed corpus in %s", name, corpus);
        char *out = NULL;
        int rc = tu_run(tu_path("build-asan/fuzz_replay_%s '%s' '%s/fuzz/%s' 2>&1", name, corpus,
                                tu_data_dir(), name),
                        &out);
        int replayed = -1;
        for (const char *p = out; (p = strstr(p, " inputs")); p++) {
            const char *q = p;
            while (q > out && q[-1] >= '0' && q[-1] <= '9') q--;
            replayed = atoi(q);
        }
        ck_assert_msg(rc == 0, "fuzz_replay_%s failed (status %d):\n%s", name, rc, out);
        ck_assert_msg(replayed >= n, "fuzz_replay_%s replayed %d inputs, the corpus has %d:\n%s",
                      name, replayed, n, out);
        fprintf(stderr, "fuzz: %-8s %d inputs replayed clean\n", name, replayed);
        free(out);
    }
    closedir(d);
    ck_assert_msg(targets >= 7, "only %d fuzz targets found", targets);
}
END_TEST

Suite *suite_fuzz(void) {
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, fuzz_corpora_replay);
    suite_add_tcase(s, tc);
    return s;
}
