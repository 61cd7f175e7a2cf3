/* The Python package (python/, module mien): its pytest suites (python/tests), run with
 * Debian's python3 and pytest against this checkout's build/libmien.so. Each file is one
 * test here, so a failing one fails `make test` and shows pytest's report. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_pytest(const char *file) {
    char *out;
    /* The end of pytest's report: the failures and the summary line. */
    int rc = tu_python(tu_path("-m pytest -q -p no:cacheprovider python/tests/%s", file), 6000,
                       &out);
    ck_assert_msg(rc == 0, "pytest %s: exit %d\n%s", file, rc, out);
    free(out);
}

START_TEST(binding) { run_pytest("test_binding.py"); }
END_TEST

START_TEST(face_recognition_dropin) { run_pytest("test_face_recognition.py"); }
END_TEST

START_TEST(pip_install) { run_pytest("test_install.py"); }
END_TEST

START_TEST(analysis) { run_pytest("test_analysis.py"); }
END_TEST

Suite *suite_python(void) {
    Suite *s = suite_create("python");
    TCase *t = tcase_create("pytest");
    tcase_set_timeout(t, 900);
    tcase_add_test(t, binding);
    tcase_add_test(t, face_recognition_dropin);
    tcase_add_test(t, pip_install);
    tcase_add_test(t, analysis);
    suite_add_tcase(s, t);
    return s;
}
