/* The source layout's rules, checked on the built objects (tools/file_cycles.py reads their
 * symbols with nm): no two source files depend on each other, directly or around a longer
 * cycle, no two folders either, and nothing outside src/train and src/cli depends on the
 * training engine. The checker first shows it catches each on made-up files (--selftest). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_checker(const char *args) {
    char *out = NULL;
    int rc = tu_python(tu_path("tools/file_cycles.py %s", args), 0, &out);
    ck_assert_msg(rc == 0, "tools/file_cycles.py %s: exit %d\n%s", args, rc, out);
    fprintf(stderr, "layout: %s", out);
    free(out);
}

START_TEST(checker_catches_cycles) { run_checker("--selftest"); }
END_TEST

/* The sanitizer build's objects: `make test` has just built every one of them. */
START_TEST(no_file_cycles) { run_checker("build-asan"); }
END_TEST

Suite *suite_layout(void) {
    Suite *s = suite_create("layout");
    TCase *t = tcase_create("layout");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, checker_catches_cycles);
    tcase_add_test(t, no_file_cycles);
    suite_add_tcase(s, t);
    return s;
}
