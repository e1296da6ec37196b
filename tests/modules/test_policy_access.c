/*
 * test_policy_access.c -- modules/policy_access.c on the plugin test
 * harness (postern/test.h): one test per target and action (accept,
 * pass, reject and tempfail with the default and a configured reply,
 * disconnect, header), the first matching rule deciding, an accept
 * that opens the way past policy_relay, and the configuration errors.
 * tests/integration/test_policy_access.py keeps what needs the server:
 * include files and HUP, a thousand rules, logs with file:line.
 * make modules-check (part of make unit).
 */

#include "mtest.h"


static pst_test_t *
access(const char *rules, const char *addr)
{
    pst_test_t  *t = mtest_new(NULL, rules, "policy_access", NULL);

    if (addr != NULL) {
        ck_assert_int_eq(pst_test_client(t, addr, NULL), PST_OK);
    }
    return t;
}


START_TEST(test_client_range)
{
    const char  *rules = "access_rule client 198.51.100.0/24 reject;";
    pst_test_t  *t = access(rules, "198.51.100.9");

    /* at connect the default refusal is 554 5.7.1 */
    ck_assert(pst_test_expect(pst_test_connect(t), 554, "5.7.1",
                              "Access denied"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT), PST_HOOK_REJECT);
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "(client 198.51.100.0/24) reject"));
    pst_test_free(t);

    t = access(rules, "192.0.2.9");
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_CONTINUE);
    pst_test_free(t);
}
END_TEST


START_TEST(test_helo_tempfail)
{
    pst_test_t  *t = access("access_rule helo = localhost tempfail;", NULL);

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "LOCALHOST"), 450, "4.7.1",
                              "Try again later"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_HELO), PST_HOOK_TEMPFAIL);
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    pst_test_free(t);
}
END_TEST


START_TEST(test_mail_reply)
{
    pst_test_t  *t = access("access_rule mail ~* \"@spam[.]test$\""
                            " reject 553 5.7.0 \"Spam source\";", NULL);

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, "x@SPAM.test"), 553, "5.7.0",
                              "Spam source"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_REJECT);
    ck_assert(pst_test_expect(pst_test_mail(t, "x@spam.test.example"), 250,
                              NULL, NULL));
    pst_test_free(t);
}
END_TEST


START_TEST(test_first_rule_decides)
{
    const pst_test_reply_t  *r;
    pst_test_t              *t = access("access_rule rcpt = ok@x.test pass;"
                            "access_rule rcpt ~ \"^(ok|no)@\" reject;"
                            "access_rule rcpt ~ \"^bye@\" disconnect"
                            " \"Go away\";", NULL);

    mtest_mail(t, NULL, "a@client.test");
    /* pass: the access rules stop, the other modules decide */
    ck_assert(pst_test_expect(pst_test_rcpt(t, "ok@x.test"), 250, NULL,
                              NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_CONTINUE);
    ck_assert(pst_test_expect(pst_test_rcpt(t, "no@x.test"), 550, "5.7.1",
                              "Access denied"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_REJECT);
    r = pst_test_rcpt(t, "bye@x.test");
    ck_assert(pst_test_expect(r, 421, "4.7.0", "Go away"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT),
                     PST_HOOK_DISCONNECT);
    ck_assert(r->closed);                        /* and the server hung up */
    pst_test_free(t);
}
END_TEST


START_TEST(test_accept_before_relay)
{
    /* the harness would accept what nobody decides: policy_relay is
     * loaded to refuse, and an access "accept" skips it */
    pst_test_t  *t = mtest_new(NULL, "local_domains example.test;"
                               "access_rule rcpt = vip@partner.test accept;",
                               "policy_access", "policy_relay", NULL);

    mtest_mail(t, "198.51.100.1", "a@client.test");
    ck_assert(pst_test_expect(pst_test_rcpt(t, "vip@partner.test"), 250,
                              NULL, NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_ACCEPT);
    ck_assert(pst_test_expect(pst_test_rcpt(t, "other@partner.test"), 550,
                              "5.7.1", "<other@partner.test>: Relay access"
                              " denied"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_headers)
{
    pst_test_t  *t = access("access_rule client 192.0.2.0/24 header"
                            " X-Trusted \"yes, by rule\";"
                            "access_rule header ~* \"^subject:.*lottery\""
                            " reject;", "192.0.2.5");

    mtest_mail(t, NULL, "a@client.test");
    ck_assert(pst_test_expect(pst_test_rcpt(t, "b@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_data(t, "Subject: You won the"
                                            " LOTTERY\n\nbody\n"),
                              554, "5.7.1", "Access denied"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MESSAGE),
                     PST_HOOK_REJECT);
    ck_assert_int_eq(pst_test_stored(t), 0);

    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "b@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_data(t, "Subject: hello\n\nbody\n"),
                              250, NULL, NULL));
    ck_assert_int_eq(pst_test_stored(t), 1);
    /* the connect-time header rule added its line to the message */
    ck_assert_str_eq(pst_test_header(t, "X-Trusted", 0), "yes, by rule");
    pst_test_free(t);
}
END_TEST


static void
config_error(const char *rules, const char *what)
{
    mtest_config_error("policy_access", NULL, rules, what);
}


START_TEST(test_config_errors)
{
    config_error("access_rule sender = a@b.test reject;",
                 "unknown target \"sender\" in \"access_rule\"");
    config_error("access_rule mail ~ \"(x\" reject;",
                 "invalid regular expression \"(x\"");
    config_error("access_rule client 192.0.2.0/40 reject;",
                 "invalid address range \"192.0.2.0/40\"");
    config_error("access_rule mail ~ x drop;",
                 "unknown action \"drop\" in \"access_rule\"");
    config_error("access_rule mail ~ x reject 450;",
                 "\"reject\" needs a 5xx reply code, not 450");
    config_error("access_rule mail ~ x tempfail 451 5.7.1;",
                 "invalid enhanced status code \"5.7.1\" for \"tempfail\"");
    config_error("access_rule mail ~ x;",
                 "needs a target, a match and an action");
    config_error("access_rule mail ~ x reject 550 5.7.1 \"two\" \"texts\";",
                 "unexpected");
}
END_TEST


MTEST_MAIN("policy_access", test_client_range, test_helo_tempfail,
           test_mail_reply, test_first_rule_decides, test_accept_before_relay,
           test_headers, test_config_errors)
