/*
 * check_main.c -- the single Check runner: every suite of tests/unit/,
 * forked per test (CK_FORK) so a crash fails one test, not the run.
 */

#include "check_util.h"
#include "check_suites.h"


int
main(void)
{
    SRunner     *sr;
    const char  *base;
    char         tmp[PATH_MAX];
    int          failed;

    /* every test's files go under one directory, removed at the end
     * even when tests failed or crashed */
    base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/pst-unit-run-XXXXXX",
             (base != NULL && base[0] != '\0') ? base : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        perror(tmp);
        return EXIT_FAILURE;
    }
    setenv("PST_UNIT_TMP", tmp, 1);

    sr = srunner_create(suite_string());
    srunner_add_suite(sr, suite_buf());
    srunner_add_suite(sr, suite_palloc());
    srunner_add_suite(sr, suite_smtp_parse());
    srunner_add_suite(sr, suite_smtp_data());
    srunner_add_suite(sr, suite_smtp_deadline());
    srunner_add_suite(sr, suite_conf_file());
    srunner_add_suite(sr, suite_module());
    srunner_add_suite(sr, suite_spool());
    srunner_add_suite(sr, suite_envelope());
    srunner_add_suite(sr, suite_spool_msg());
    srunner_add_suite(sr, suite_addr());
    srunner_add_suite(sr, suite_session());
    srunner_add_suite(sr, suite_channel());
    srunner_add_suite(sr, suite_control());
    srunner_add_suite(sr, suite_smtp_proto());
    srunner_add_suite(sr, suite_smtp_client());
    srunner_add_suite(sr, suite_milter());
    srunner_add_suite(sr, suite_send());
    srunner_add_suite(sr, suite_relay_mx());
    srunner_add_suite(sr, suite_dsn());
    srunner_add_suite(sr, suite_mime7());
    srunner_add_suite(sr, suite_proxy_protocol());
    srunner_add_suite(sr, suite_metrics());
    srunner_add_suite(sr, suite_queue_event());
    srunner_add_suite(sr, suite_sched());
    srunner_add_suite(sr, suite_hostlist());
    srunner_add_suite(sr, suite_mta_sts());
    srunner_add_suite(sr, suite_tlsrpt());
    srunner_add_suite(sr, suite_redis());
    srunner_add_suite(sr, suite_maildir());

    srunner_set_tap(sr, "unit.tap");
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    tu_rmtree(tmp);

    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
