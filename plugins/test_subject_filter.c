/*
 * test_subject_filter.c -- subject_filter.c's tests, with the plugin
 * test harness (postern/test.h) and Check: a matching Subject is
 * refused at the end of data with the configured reply, nothing is
 * stored; others pass; a pattern that does not compile is a
 * configuration error.  make -C plugins check (plugins/README).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <postern/test.h>

#ifndef PLUGIN_SO
#define PLUGIN_SO  "./subject_filter.so"
#endif


static pst_test_t *
filter(void)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_msg(pst_test_config(t, NULL,
                      "subject_reject \"(?i)\\\\bviagra\\\\b\""
                      " \"Message refused: spam subject\";") == PST_OK,
                  "%s", pst_test_error(t));
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    return t;
}


static const pst_test_reply_t *
send_subject(pst_test_t *t, const char *subject)
{
    char  msg[256];

    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "b@example.test"), 250, NULL,
                              NULL));
    snprintf(msg, sizeof(msg), "From: a@client.test\nSubject: %s\n\n"
             "body\n.hidden dot\n", subject);
    return pst_test_data(t, msg);
}


START_TEST(test_rejects_match)
{
    pst_test_t  *t = filter();

    ck_assert(pst_test_expect(send_subject(t, "Cheap VIAGRA now"), 550,
                              "5.7.1", "Message refused: spam subject"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MESSAGE),
                     PST_HOOK_REJECT);
    ck_assert_int_eq(pst_test_stored(t), 0);
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "subject_filter: rejected"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_passes_others)
{
    pst_test_t  *t = filter();

    ck_assert(pst_test_expect(send_subject(t, "viagraX is a word"), 250,
                              "2.0.0", NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MESSAGE),
                     PST_HOOK_CONTINUE);
    ck_assert(pst_test_expect(send_subject(t, "hello"), 250, NULL, NULL));
    ck_assert_int_eq(pst_test_stored(t), 2);
    ck_assert_str_eq(pst_test_header(t, "Subject", 0), "hello");
    /* the harness dot-stuffed the line; the store has it unstuffed */
    ck_assert_ptr_nonnull(strstr(pst_test_message(t, NULL),
                                 "\r\n.hidden dot\r\n"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_bad_pattern)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_int_eq(pst_test_config(t, NULL, "subject_reject \"(x\";"),
                     PST_ERROR);
    ck_assert_ptr_nonnull(strstr(pst_test_error(t), "does not compile"));
    pst_test_free(t);
}
END_TEST


int
main(void)
{
    Suite    *s = suite_create("subject_filter");
    TCase    *tc = tcase_create("subject_filter");
    SRunner  *sr;
    int       failed;

    tcase_add_test(tc, test_rejects_match);
    tcase_add_test(tc, test_passes_others);
    tcase_add_test(tc, test_bad_pattern);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
