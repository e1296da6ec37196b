/*
 * test_dnsbl_async.c -- dnsbl_async.c's tests, with the plugin test
 * harness (postern/test.h) and Check: the CONNECT hook is PENDING
 * until the scripted DNS answers (the fake clock moves it), then a
 * listed client gets 554, others the greeting; a lookup that never
 * answers meets the module timeout; a client that leaves first cancels
 * the lookup.  make -C plugins check (plugins/README).
 */

#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <postern/test.h>

#ifndef PLUGIN_SO
#define PLUGIN_SO  "./dnsbl_async.so"
#endif


static pst_test_t *
dnsbl(const char *main_conf)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_msg(pst_test_config(t, main_conf,
                                  "dnsbl_async_zone bl.test;") == PST_OK,
                  "%s", pst_test_error(t));
    ck_assert_int_eq(pst_test_client(t, "192.0.2.7", NULL), PST_OK);
    return t;
}


START_TEST(test_listed_after_pending)
{
    pst_test_t  *t = dnsbl(NULL);

    /* the answer comes 200 ms later (by the fake clock) */
    ck_assert_int_eq(pst_test_dns(t, "7.2.0.192.bl.test", PST_DNS_A,
                                  PST_DNS_OK, "127.0.0.2", 200), PST_OK);
    ck_assert(pst_test_connect(t)->pending);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_PENDING);
    ck_assert_uint_eq(pst_test_dns_asked(t, "7.2.0.192.bl.test"), 1);

    pst_test_advance(t, 199);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 554, "5.7.1",
                              "Client address listed in bl.test"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_REJECT);
    pst_test_free(t);
}
END_TEST


START_TEST(test_not_listed)
{
    pst_test_t  *t = dnsbl(NULL);

    /* nothing scripted: NXDOMAIN at once (a 0 ms timer) */
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_CONTINUE);
    pst_test_free(t);
}
END_TEST


START_TEST(test_module_timeout)
{
    pst_test_t  *t = dnsbl("module_timeout dnsbl_async 2s tempfail;");

    ck_assert_int_eq(pst_test_dns(t, "7.2.0.192.bl.test", PST_DNS_A,
                                  PST_DNS_OK, "127.0.0.2", -1), PST_OK);
    ck_assert(pst_test_connect(t)->pending);
    pst_test_advance(t, 2000);
    /* TEMPFAIL at CONNECT: 421 and close; the cancel stopped the lookup */
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 421, NULL, NULL));
    pst_test_advance(t, 10000);
    ck_assert_ptr_null(strstr(pst_test_log(t), "hook completion"));
    pst_test_free(t);
}
END_TEST


int
main(void)
{
    Suite    *s = suite_create("dnsbl_async");
    TCase    *tc = tcase_create("dnsbl_async");
    SRunner  *sr;
    int       failed;

    tcase_add_test(tc, test_listed_after_pending);
    tcase_add_test(tc, test_not_listed);
    tcase_add_test(tc, test_module_timeout);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
