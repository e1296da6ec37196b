/*
 * test_route_by_header.c -- route_by_header.c's tests, with the plugin
 * test harness's queue side (postern/test.h) and Check: a fake queued
 * message is taken by the engine (ENQUEUED, then ROUTE for each
 * recipient) and each recipient's destination is read back; the
 * choice is made once per message and kept with it.
 *     make -C plugins check (plugins/README).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <postern/test.h>

#ifndef PLUGIN_SO
#define PLUGIN_SO  "./route_by_header.so"
#endif

#define RULES  "route_by_header X-Route bulk smarthost:;\n" \
               "route_by_header X-Route test [192.0.2.25];\n"


static pst_test_t *
rbh(const char *main_conf)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_int_eq(pst_test_process(t, PST_PROC_QUEUE), PST_OK);
    ck_assert_msg(pst_test_config(t, main_conf, NULL) == PST_OK, "%s",
                  pst_test_error(t));
    return t;
}


/* How many times the log says s. */
static int
logged(pst_test_t *t, const char *s)
{
    const char  *p = pst_test_log(t);
    int          n = 0;

    while ((p = strstr(p, s)) != NULL) {
        n++;
        p += strlen(s);
    }
    return n;
}


START_TEST(test_header_routes_every_recipient)
{
    pst_test_t  *t = rbh(RULES);
    char         line[128];

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test c@Example.NET d@example.org",
                         "Subject: hi\nX-Route:  BULK \n\nbody\n"), PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "smarthost:");
    ck_assert_str_eq(pst_test_queue_dest(t, 1), "smarthost:");
    ck_assert_str_eq(pst_test_queue_dest(t, 2), "smarthost:");
    ck_assert_ptr_null(pst_test_queue_dest(t, 3));

    /* chosen at the first ROUTE, kept with the message: said once */
    ck_assert_uint_eq(pst_test_queue_states(t), 1);
    snprintf(line, sizeof(line), "route_by_header: %s: X-Route: smarthost:",
             pst_test_queue_id(t));
    ck_assert_int_eq(logged(t, line), 1);

    /* a ROUTE told again reuses the choice */
    ck_assert_str_eq(pst_test_qevent(t, PST_QEV_ROUTE, 1, 0, NULL)->dest,
                     "smarthost:");
    ck_assert_int_eq(logged(t, line), 1);

    pst_test_queue_remove(t);
    ck_assert_uint_eq(pst_test_queue_states(t), 0);
    pst_test_free(t);
}
END_TEST


START_TEST(test_first_field_wins)
{
    pst_test_t  *t = rbh(RULES);

    ck_assert_int_eq(pst_test_queue_message(t, "", "b@example.test",
                         "x-route: Test\r\nX-Route: bulk\r\n\r\nbody\r\n"),
                     PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "[192.0.2.25]");
    pst_test_free(t);
}
END_TEST


START_TEST(test_no_match_keeps_destination)
{
    pst_test_t  *t = rbh(RULES);

    /* another value; X-Route in the body does not count */
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test c@Example.NET",
                         "X-Route: bulky\n\nX-Route: bulk\n"), PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "example.test");
    ck_assert_str_eq(pst_test_queue_dest(t, 1), "example.net");
    ck_assert_int_eq(logged(t, "route_by_header:"), 0);

    /* the next message chooses for itself */
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test", "X-Route: test\n\nbody\n"),
                     PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "[192.0.2.25]");
    pst_test_free(t);
}
END_TEST


START_TEST(test_without_rules)
{
    pst_test_t  *t = rbh(NULL);

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test", "X-Route: bulk\n\nbody\n"),
                     PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "example.test");
    ck_assert_uint_eq(pst_test_queue_states(t), 0);
    pst_test_free(t);
}
END_TEST


START_TEST(test_bad_rules)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_int_eq(pst_test_config(t, "route_by_header X:R bulk "
                                        "smarthost:;", NULL), PST_ERROR);
    ck_assert_ptr_nonnull(strstr(pst_test_error(t),
                                 "needs a header name without spaces"));
    pst_test_free(t);
}
END_TEST


int
main(void)
{
    Suite    *s = suite_create("route_by_header");
    TCase    *tc = tcase_create("route_by_header");
    SRunner  *sr;
    int       failed;

    tcase_add_test(tc, test_header_routes_every_recipient);
    tcase_add_test(tc, test_first_field_wins);
    tcase_add_test(tc, test_no_match_keeps_destination);
    tcase_add_test(tc, test_without_rules);
    tcase_add_test(tc, test_bad_rules);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
