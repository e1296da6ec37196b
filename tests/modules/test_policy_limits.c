/*
 * test_policy_limits.c -- modules/policy_limits.c (shm backend) on the
 * plugin test harness, its buckets refilled by the fake clock: each
 * rate's refusal (code, enhanced code, text, verdict, log line), burst
 * and refill, per client (an IPv4 address, an IPv6 /64 or what
 * limit_ipv6_prefix says), exempt networks, the greeting delay and an
 * early talker caught by it, and the configuration errors.
 * tests/integration/test_policy_limits.py keeps what needs the server:
 * buckets shared by workers and kept over a reload, the core's own
 * limits, early talkers and pipelining from real sockets.
 * make modules-check (part of make unit).
 */

#include "mtest.h"

#define HOUR       (60 * 60 * 1000)


static pst_test_t *
limits(const char *server)
{
    return mtest_new(NULL, server, "policy_limits", NULL);
}


/* A new session from addr: the greeting's code. */
static int
greeting(pst_test_t *t, const char *addr)
{
    ck_assert_int_eq(pst_test_client(t, addr, NULL), PST_OK);
    return pst_test_connect(t)->code;
}


START_TEST(test_conn_rate)
{
    pst_test_t               *t = limits("limit_conn_rate 1/h burst=3;");
    const pst_test_reply_t   *r;
    int                       i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(greeting(t, "198.51.100.7"), 220);
    }
    r = pst_test_connect(t);
    ck_assert(pst_test_expect(r, 421, "4.7.0", "Too many connections from"
                              " your address, try again later"));
    ck_assert(r->closed);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_DISCONNECT);
    mtest_logged(t, "policy_limits: limit_conn_rate 1/h (burst 3) exceeded"
                 " by 198.51.100.7");
    /* another client has its own bucket */
    ck_assert_int_eq(greeting(t, "198.51.100.8"), 220);
    /* one token an hour */
    pst_test_advance(t, HOUR);
    ck_assert_int_eq(greeting(t, "198.51.100.7"), 220);
    ck_assert_int_eq(greeting(t, "198.51.100.7"), 421);
    pst_test_free(t);
}
END_TEST


START_TEST(test_msg_rate_and_refill)
{
    pst_test_t  *t = limits("limit_msg_rate 2/s;");
    int          i;

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    for (i = 0; i < 2; i++) {
        ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250,
                                  NULL, NULL));
        ck_assert(pst_test_expect(pst_test_command(t, "RSET"), 250, NULL,
                                  NULL));
    }
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 451,
                              "4.7.1", "Message rate limit exceeded, try"
                              " again later"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_TEMPFAIL);
    mtest_logged(t, "policy_limits: limit_msg_rate 2/s (burst 2) exceeded");
    /* 2/s: a token every 500 ms */
    pst_test_advance(t, 499);
    ck_assert_int_eq(pst_test_mail(t, "a@client.test")->code, 451);
    pst_test_advance(t, 500);
    ck_assert_int_eq(pst_test_mail(t, "a@client.test")->code, 250);
    pst_test_free(t);
}
END_TEST


START_TEST(test_rcpt_rate)
{
    pst_test_t  *t = limits("limit_rcpt_rate 5/h;");
    char         rcpt[64];
    int          i;

    mtest_mail(t, NULL, "a@client.test");
    for (i = 0; i < 5; i++) {
        snprintf(rcpt, sizeof(rcpt), "u%d@example.test", i);
        ck_assert_int_eq(pst_test_rcpt(t, rcpt)->code, 250);
    }
    ck_assert(pst_test_expect(pst_test_rcpt(t, "u5@example.test"), 452,
                              "4.5.3", "Recipient rate limit exceeded, try"
                              " again later"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_TEMPFAIL);
    /* a later session of the same client is still over */
    mtest_mail(t, NULL, "a@client.test");
    ck_assert_int_eq(pst_test_rcpt(t, "x@example.test")->code, 452);
    mtest_mail(t, "192.0.2.2", "a@client.test");
    ck_assert_int_eq(pst_test_rcpt(t, "x@example.test")->code, 250);
    pst_test_free(t);
}
END_TEST


START_TEST(test_ipv6_prefix)
{
    pst_test_t  *t = limits("limit_conn_rate 1/h;");

    ck_assert_int_eq(greeting(t, "2001:db8::1"), 220);
    ck_assert_int_eq(greeting(t, "2001:db8::ffff:2"), 421);  /* its /64 */
    ck_assert_int_eq(greeting(t, "2001:db8:0:1::1"), 220);
    pst_test_free(t);

    t = limits("limit_conn_rate 1/h; limit_ipv6_prefix 128;");
    ck_assert_int_eq(greeting(t, "2001:db8::1"), 220);
    ck_assert_int_eq(greeting(t, "2001:db8::2"), 220);
    ck_assert_int_eq(greeting(t, "2001:db8::1"), 421);
    pst_test_free(t);
}
END_TEST


START_TEST(test_exempt)
{
    pst_test_t  *t = limits("limit_conn_rate 1/h; limit_msg_rate 1/h;"
                            "limit_rcpt_rate 1/h;"
                            "limit_exempt 192.0.2.0/24 2001:db8::/32;");
    int          i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(greeting(t, "2001:db8::1"), 220);
        mtest_mail(t, "192.0.2.1", "a@client.test");
        ck_assert_int_eq(pst_test_rcpt(t, "a@example.test")->code, 250);
        ck_assert_int_eq(pst_test_rcpt(t, "b@example.test")->code, 250);
    }
    ck_assert_int_eq(greeting(t, "198.51.100.1"), 220);
    ck_assert_int_eq(greeting(t, "198.51.100.1"), 421);
    ck_assert_ptr_null(strstr(pst_test_log(t), "exceeded by 192.0.2.1"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_greet_delay)
{
    pst_test_t               *t = limits("greet_delay 1s;");
    const pst_test_reply_t   *r;

    /* a patient client gets its greeting after the delay */
    ck_assert(pst_test_connect(t)->pending);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_PENDING);
    pst_test_advance(t, 999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    pst_test_free(t);

    /* one that talks meanwhile is caught when the delay ends */
    t = limits("greet_delay 1s; early_talker disconnect;");
    ck_assert(pst_test_connect(t)->pending);
    ck_assert(pst_test_command(t, "HELO bot.test")->pending);
    pst_test_advance(t, 1000);
    r = pst_test_wait(t, 0);
    ck_assert(pst_test_expect(r, 421, "4.7.0", "Protocol error: talking out"
                              " of turn, closing"));
    ck_assert(r->closed);
    mtest_logged(t, "policy_limits: early_talker disconnect: the client"
                 " talked before the greeting");
    pst_test_free(t);
}
END_TEST


static void
config_error(const char *main, const char *server, const char *what)
{
    mtest_config_error("policy_limits", main, server, what);
}


START_TEST(test_config_errors)
{
    static const char  *bad[] = {
        "limit_conn_rate 10;", "limit_conn_rate 0/m;",
        "limit_msg_rate 5/x;", "limit_rcpt_rate 5/m burst=0;",
        "limit_rcpt_rate 5/m burst=x;", "limit_msg_rate /m;", NULL
    };
    const char        **b;

    for (b = bad; *b != NULL; b++) {
        config_error(NULL, *b, "invalid rate \"");
    }
    config_error(NULL, "limit_conn_rate 5/m burst=0;", "invalid rate \"5/m"
                 " burst=0\" in \"limit_conn_rate\" (use N/s, N/m, N/h,"
                 " N/d or N/TIME, then optionally burst=N)");
    config_error(NULL, "limit_msg_rate 1/s; limit_msg_rate 2/s;",
                 "is duplicate");
    config_error(NULL, "limit_ipv6_prefix 8;",
                 "limit_ipv6_prefix must be between 16 and 128");
    config_error("limit_zone 1k;", NULL, "limit_zone must be at least 64k");
    config_error(NULL, "early_talker maybe;", "early_talker");
}
END_TEST


MTEST_MAIN("policy_limits", test_conn_rate, test_msg_rate_and_refill,
           test_rcpt_rate, test_ipv6_prefix, test_exempt, test_greet_delay,
           test_config_errors)
