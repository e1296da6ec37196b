/*
 * test_policy_greylist.c -- modules/policy_greylist.c (shm backend) on
 * the plugin test harness, its times on the fake clock: the first
 * attempt of a triplet refused with 451 4.7.1, early retries refused
 * with what is left of the delay, the retry after the delay passed and
 * from then on known; the retry window and the expiry starting over;
 * what makes a triplet (network prefix, case); exemptions (networks,
 * authenticated clients, greylist off); the order behind
 * policy_recipients; configuration errors.
 * tests/integration/test_policy_greylist.py keeps what needs the
 * server: the table shared by workers, the file across restarts, a
 * reload, postern -t on the file's access.
 * make modules-check (part of make unit).
 */

#include "mtest.h"

#define MIN         (60 * 1000)
#define HOUR        (60 * MIN)
#define DAY         (24 * HOUR)

/* the table's file in the scratch directory */
#define GREY_MAIN   "greylist_file grey.db;"


static pst_test_t *
greylist(const char *server)
{
    return mtest_new(GREY_MAIN, server, "policy_greylist", NULL);
}


/* A delivery attempt: a new session from addr, MAIL FROM:<sender>,
 * RCPT TO:<rcpt>; the reply to RCPT. */
static const pst_test_reply_t *
attempt(pst_test_t *t, const char *addr, const char *sender,
    const char *rcpt)
{
    mtest_mail(t, addr, sender);
    return pst_test_rcpt(t, rcpt);
}


/* The usual triplet from 198.51.100.7: its RCPT reply code. */
static int
retry(pst_test_t *t)
{
    return attempt(t, "198.51.100.7", "a@client.test",
                   "alice@example.test")->code;
}


START_TEST(test_delay_then_pass)
{
    pst_test_t  *t = greylist(NULL);                 /* delay 5m */

    ck_assert(pst_test_expect(attempt(t, "198.51.100.7", "a@client.test",
                                      "alice@example.test"),
                              451, "4.7.1", "Greylisted, please try again"
                              " in 300 seconds"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_TEMPFAIL);
    mtest_logged(t, "policy_greylist: tempfail <a@client.test> ->"
                 " <alice@example.test>: new triplet, retry in 300s");

    /* too early: the first-seen time does not move */
    pst_test_advance(t, 2 * MIN);
    ck_assert(pst_test_expect(attempt(t, "198.51.100.7", "a@client.test",
                                      "alice@example.test"),
                              451, "4.7.1", "Greylisted, please try again"
                              " in 180 seconds"));
    mtest_logged(t, "early retry of a triplet, retry in 180s");

    pst_test_advance(t, 3 * MIN);
    ck_assert_int_eq(retry(t), 250);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_CONTINUE);
    mtest_logged(t, "policy_greylist: pass <a@client.test> ->"
                 " <alice@example.test>: triplet known since 300s");
    /* known now, at once; case makes no new triplet */
    ck_assert_int_eq(retry(t), 250);
    ck_assert_int_eq(attempt(t, "198.51.100.7", "A@Client.Test",
                             "ALICE@example.test")->code, 250);
    /* the same /24 is the same client */
    ck_assert_int_eq(attempt(t, "198.51.100.77", "a@client.test",
                             "alice@example.test")->code, 250);
    /* another recipient, sender or network is a new triplet */
    ck_assert_int_eq(attempt(t, "198.51.100.7", "a@client.test",
                             "bob@example.test")->code, 451);
    ck_assert_int_eq(attempt(t, "198.51.100.7", "b@client.test",
                             "alice@example.test")->code, 451);
    ck_assert_int_eq(attempt(t, "198.51.101.7", "a@client.test",
                             "alice@example.test")->code, 451);
    pst_test_free(t);
}
END_TEST


START_TEST(test_retry_window_and_expiry)
{
    pst_test_t  *t = greylist("greylist_delay 1m; greylist_retry_window 1h;"
                              "greylist_expire 1d;");

    /* retried after the window: starts over */
    ck_assert_int_eq(retry(t), 451);
    pst_test_advance(t, 2 * HOUR);
    ck_assert(pst_test_expect(attempt(t, "198.51.100.7", "a@client.test",
                                      "alice@example.test"),
                              451, NULL, "Greylisted, please try again in"
                              " 60 seconds"));
    ck_assert_ptr_nonnull(strstr(strstr(pst_test_log(t), "new triplet") + 1,
                                 "new triplet"));
    pst_test_advance(t, MIN);
    ck_assert_int_eq(retry(t), 250);

    /* used within greylist_expire: kept; unused for longer: forgotten */
    pst_test_advance(t, 20 * HOUR);
    ck_assert_int_eq(retry(t), 250);
    pst_test_advance(t, DAY + MIN);
    ck_assert_int_eq(retry(t), 451);
    pst_test_free(t);
}
END_TEST


START_TEST(test_prefixes)
{
    pst_test_t  *t = greylist("greylist_ipv4_prefix 32;"
                              "greylist_ipv6_prefix 64;");

    ck_assert_int_eq(retry(t), 451);
    ck_assert_int_eq(attempt(t, "2001:db8::1", "a@client.test",
                             "alice@example.test")->code, 451);
    pst_test_advance(t, 5 * MIN);
    ck_assert_int_eq(retry(t), 250);
    /* /32: a neighbour is another client */
    ck_assert_int_eq(attempt(t, "198.51.100.8", "a@client.test",
                             "alice@example.test")->code, 451);
    /* /64: the rest of the network is the same one */
    ck_assert_int_eq(attempt(t, "2001:db8::ffff:2", "a@client.test",
                             "alice@example.test")->code, 250);
    ck_assert_int_eq(attempt(t, "2001:db8:0:1::1", "a@client.test",
                             "alice@example.test")->code, 451);
    pst_test_free(t);
}
END_TEST


START_TEST(test_exemptions)
{
    pst_test_t  *t = greylist("greylist_exempt 192.0.2.0/24 2001:db8::/32;");

    ck_assert_int_eq(attempt(t, "192.0.2.9", "a@client.test",
                             "alice@example.test")->code, 250);
    ck_assert_int_eq(attempt(t, "2001:db8::9", "a@client.test",
                             "alice@example.test")->code, 250);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_CONTINUE);
    ck_assert_ptr_null(strstr(pst_test_log(t), "policy_greylist"));
    ck_assert_int_eq(retry(t), 451);

    /* an authenticated client is never greylisted */
    pst_test_auth(t, "alice");
    ck_assert_int_eq(attempt(t, "198.51.100.20", "a@client.test",
                             "carol@example.test")->code, 250);
    pst_test_free(t);

    t = greylist("greylist off;");
    ck_assert_int_eq(retry(t), 250);
    pst_test_free(t);
}
END_TEST


START_TEST(test_after_recipient_checks)
{
    /* an unknown user is refused for good, not greylisted */
    pst_test_t  *t = mtest_new(GREY_MAIN, "recipients example.test list"
                               " alice;", "policy_recipients",
                               "policy_greylist", NULL);

    ck_assert(pst_test_expect(attempt(t, "198.51.100.7", "a@client.test",
                                      "mallory@example.test"),
                              550, "5.1.1", NULL));
    ck_assert_int_eq(retry(t), 451);
    ck_assert_ptr_null(strstr(pst_test_log(t), "<mallory@example.test>:"
                              " new triplet"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_config_errors)
{
    const char  *why = "greylist_delay must be at least 1s and shorter than"
                       " greylist_retry_window";

    mtest_config_error("policy_greylist", GREY_MAIN,
                       "greylist_delay 5m; greylist_retry_window 1m;", why);
    mtest_config_error("policy_greylist", GREY_MAIN, "greylist_delay 500ms;",
                       why);
    mtest_config_error("policy_greylist", GREY_MAIN,
                       "greylist_ipv4_prefix 33;", "greylist_ipv4_prefix"
                       " must be 8..32");
    mtest_config_error("policy_greylist", GREY_MAIN "greylist_zone 1k;",
                       NULL, "greylist_zone must be at least 64k");
    mtest_config_error("policy_greylist", GREY_MAIN
                       "greylist_save_interval 10ms;", NULL,
                       "greylist_save_interval must be at least 1s");
}
END_TEST


MTEST_MAIN("policy_greylist", test_delay_then_pass,
           test_retry_window_and_expiry, test_prefixes, test_exemptions,
           test_after_recipient_checks, test_config_errors)
