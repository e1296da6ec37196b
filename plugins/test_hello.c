/*
 * test_hello.c -- hello.c's tests, with the plugin test harness
 * (postern/test.h) and Check:
 *
 *     make -C plugins check          (see plugins/README)
 *
 * Each test loads the built plugin (PLUGIN_SO, set by the Makefile),
 * gives it a configuration and sends a message through a session in
 * this process; no server, no network.
 */

#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <postern/test.h>

#ifndef PLUGIN_SO
#define PLUGIN_SO  "./hello.so"
#endif


static pst_test_t *
hello(const char *server_conf)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_msg(pst_test_config(t, NULL, server_conf) == PST_OK, "%s",
                  pst_test_error(t));
    return t;
}


/* One message from a@client.test to b@example.test. */
static const pst_test_reply_t *
send_one(pst_test_t *t)
{
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250,
                              "2.1.0", NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "b@example.test"), 250,
                              "2.1.5", NULL));
    return pst_test_data(t, "Subject: hi\n\nbody\n");
}


START_TEST(test_adds_header)
{
    pst_test_t  *t = hello("hello_header X-Hello \"from $server\";");

    ck_assert(pst_test_expect(send_one(t), 250, "2.0.0", "Ok: queued"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MESSAGE),
                     PST_HOOK_CONTINUE);
    ck_assert_int_eq(pst_test_stored(t), 1);
    ck_assert_str_eq(pst_test_header(t, "X-Hello", 0),
                     "from mx.example.test");
    ck_assert_ptr_null(pst_test_header(t, "X-Hello", 1));
    ck_assert_str_eq(pst_test_header(t, "subject", 0), "hi");
    /* below our Received:, above the client's fields */
    ck_assert_ptr_nonnull(strstr(pst_test_message(t, NULL),
                                 "\r\nX-Hello: from mx.example.test\r\n"
                                 "Subject: hi\r\n"));
    ck_assert_str_eq(pst_test_sender(t), "a@client.test");
    ck_assert_uint_eq(pst_test_rcpt_count(t), 1);
    ck_assert_str_eq(pst_test_rcpt_at(t, 0), "b@example.test");
    pst_test_free(t);
}
END_TEST


START_TEST(test_off_without_directive)
{
    pst_test_t  *t = hello(NULL);

    ck_assert(pst_test_expect(send_one(t), 250, "2.0.0", NULL));
    ck_assert_ptr_null(pst_test_header(t, "X-Hello", 0));
    pst_test_free(t);
}
END_TEST


START_TEST(test_bad_name)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_int_eq(pst_test_config(t, NULL, "hello_header X:Y v;"),
                     PST_ERROR);
    ck_assert_ptr_nonnull(strstr(pst_test_error(t),
                                 "needs a header name without spaces"));
    pst_test_free(t);
}
END_TEST


int
main(void)
{
    Suite    *s = suite_create("hello");
    TCase    *tc = tcase_create("hello");
    SRunner  *sr;
    int       failed;

    tcase_add_test(tc, test_adds_header);
    tcase_add_test(tc, test_off_without_directive);
    tcase_add_test(tc, test_bad_name);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
