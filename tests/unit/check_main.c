/*
 * check_main.c -- the single Check runner: every suite of tests/unit/,
 * forked per test (CK_FORK) so a crash fails one test, not the run.
 */

#include <check.h>
#include <stdlib.h>

#include "check_suites.h"


int
main(void)
{
    SRunner  *sr;
    int       failed;

    sr = srunner_create(suite_string());
    srunner_add_suite(sr, suite_buf());
    srunner_add_suite(sr, suite_palloc());
    srunner_add_suite(sr, suite_smtp_parse());
    srunner_add_suite(sr, suite_smtp_data());
    srunner_add_suite(sr, suite_conf_file());
    srunner_add_suite(sr, suite_module());

    srunner_set_tap(sr, "unit.tap");
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
