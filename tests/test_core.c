#include "testutil.h"
#include "core/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(size_overflow) {
    size_t r = 7;
    ck_assert(mien_mul_size(SIZE_MAX / 2 + 1, 2, &r) == 0);
    ck_assert_uint_eq(r, 7);
    ck_assert(mien_mul3_size(16384, 16384, 3, &r) == 1);
    ck_assert_uint_eq(r, (size_t)16384 * 16384 * 3);
    ck_assert(mien_add_size(SIZE_MAX, 1, &r) == 0);
}
END_TEST

START_TEST(err_messages) {
    mien_err e = {0};
    ck_assert_int_eq(mien_err_set(&e, MIEN_EFORMAT, "bad %s", "thing"), MIEN_EFORMAT);
    ck_assert_str_eq(e.msg, "bad thing");
    mien_err_prefix(&e, "loading %d", 3);
    ck_assert_str_eq(e.msg, "loading 3: bad thing");
    ck_assert_str_eq(mien_status_name(MIEN_EFORMAT), "EFORMAT");
    ck_assert_str_eq(mien_status_name(12345), "EUNKNOWN");
}
END_TEST

START_TEST(read_file_limits) {
    const char *p = tu_temp_file(".bin", "hello", 5);
    unsigned char *d;
    size_t n;
    mien_err e = {0};
    ck_assert_int_eq(mien_read_file(p, 5, &d, &n, &e), MIEN_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(d, "hello", 5);
    free(d);
    ck_assert_int_eq(mien_read_file(p, 4, &d, &n, &e), MIEN_ETOOBIG);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(mien_read_file("/nonexistent/x", 4, &d, &n, &e), MIEN_EIO);
    ck_assert(strstr(e.msg, "/nonexistent/x") != NULL);
    remove(p);
}
END_TEST

Suite *suite_core(void) {
    Suite *s = suite_create("core");
    TCase *t = tcase_create("core");
    tcase_add_test(t, size_overflow);
    tcase_add_test(t, err_messages);
    tcase_add_test(t, read_file_limits);
    suite_add_tcase(s, t);
    return s;
}
