/*
 * check_smtp_deadline.c -- pst_smtp_deadline.c: the clocks against slow
 * clients.  A command line has a deadline that bytes do not move; message
 * data earns time at smtp_min_data_rate, never more than
 * smtp_data_timeout ahead; the wait asked of the read timer is the
 * nearer of the idle limit and the clock, and says which it was.
 *
 * The event loop's cached clock (pst_current_time_msec) is set by hand:
 * nothing here waits.
 */

#include "check_util.h"
#include "check_suites.h"

#include "pst_smtp.h"


static pst_smtp_srv_conf_t  conf;
static pst_smtp_tx_t        tx;
static pst_session_t        s;


static void
setup(void)
{
    memset(&conf, 0, sizeof(conf));
    memset(&tx, 0, sizeof(tx));
    memset(&s, 0, sizeof(s));
    conf.command_timeout = 300000;
    conf.data_timeout = 2000;
    conf.min_data_rate = 1000;
    s.conf = &conf;
    s.tx = &tx;
    pst_current_time_msec = 1000000;
}


START_TEST(test_command_deadline)
{
    conf.command_timeout = 10000;
    conf.command_deadline = 3000;

    pst_smtp_clock_start(&s, PST_SMTP_S_COMMAND);
    s.state = PST_SMTP_S_COMMAND;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 3000);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), " (smtp_command_deadline)");

    /* bytes came 2.5 s later: the deadline does not move */
    pst_current_time_msec += 2500;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 500);

    /* past it: fire at once, never wait 0 (no timer) */
    pst_current_time_msec += 1000;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 1);

    /* the next line starts a new clock */
    pst_smtp_clock_start(&s, PST_SMTP_S_COMMAND);
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 3000);
}
END_TEST


START_TEST(test_command_deadline_default)
{
    /* 0: as long as the idle limit; the idle limit is what is reported */
    pst_smtp_clock_start(&s, PST_SMTP_S_AUTH);
    s.state = PST_SMTP_S_AUTH;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 300000);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), "");

    pst_current_time_msec += 299000;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 1000);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), " (smtp_command_deadline)");
}
END_TEST


START_TEST(test_data_rate)
{
    int  i;

    pst_smtp_clock_start(&s, PST_SMTP_S_DATA);
    s.state = PST_SMTP_S_DATA;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 2000);

    /* 1 s later 100 bytes at 1000 bytes/s earn 100 ms */
    pst_current_time_msec += 1000;
    pst_smtp_clock_credit(&s, 100);
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 1100);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), " (smtp_min_data_rate)");

    /* a fast burst: never more than the data timeout ahead */
    pst_smtp_clock_credit(&s, 1000000);
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 2000);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), "");

    /* the next BDAT chunk keeps the transaction's credit */
    pst_current_time_msec += 1500;
    pst_smtp_clock_start(&s, PST_SMTP_S_COMMAND);
    pst_smtp_clock_start(&s, PST_SMTP_S_BDAT);
    s.state = PST_SMTP_S_BDAT;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 500);

    /* a trickle loses: 2 bytes per 200 ms earn 2 ms */
    for (i = 0; i < 2; i++) {
        pst_current_time_msec += 200;
        pst_smtp_clock_credit(&s, 2);
    }
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 104);
    pst_current_time_msec += 200;
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 1);

    /* a new transaction starts afresh */
    memset(&tx, 0, sizeof(tx));
    pst_smtp_clock_start(&s, PST_SMTP_S_DATA);
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 2000);
}
END_TEST


START_TEST(test_data_rate_small_reads)
{
    int  i;

    /* 3000 bytes/s: a byte earns 1/3 ms.  3000 one-byte reads must earn
     * the whole second, not 3000 times nothing */
    conf.min_data_rate = 3000;
    conf.data_timeout = 5000;
    pst_smtp_clock_start(&s, PST_SMTP_S_DATA);
    s.state = PST_SMTP_S_DATA;
    pst_current_time_msec += 3000;
    for (i = 0; i < 3000; i++) {
        pst_smtp_clock_credit(&s, 1);
    }
    ck_assert_uint_eq(pst_smtp_clock_wait(&s), 3000);
}
END_TEST


START_TEST(test_data_rate_spent)
{
    /* asked when data is consumed: the credit of the transaction, not
     * the wait of the moment (a whole chunk can come with its command) */
    pst_smtp_clock_start(&s, PST_SMTP_S_BDAT);
    s.state = PST_SMTP_S_BDAT;
    ck_assert_int_eq(pst_smtp_clock_spent(&s), 0);
    pst_current_time_msec += 1999;
    ck_assert_int_eq(pst_smtp_clock_spent(&s), 0);
    pst_current_time_msec += 1;
    ck_assert_int_eq(pst_smtp_clock_spent(&s), 1);
    ck_assert_str_eq(pst_smtp_clock_reason(&s), " (smtp_min_data_rate)");

    /* rate 0: no credit to run out of */
    conf.min_data_rate = 0;
    ck_assert_int_eq(pst_smtp_clock_spent(&s), 0);
}
END_TEST


START_TEST(test_data_rate_off)
{
    int  i;

    conf.min_data_rate = 0;
    pst_smtp_clock_start(&s, PST_SMTP_S_DATA);
    s.state = PST_SMTP_S_DATA;

    /* every read gives the whole data timeout again */
    for (i = 0; i < 10; i++) {
        pst_current_time_msec += 1900;
        pst_smtp_clock_credit(&s, 1);
        ck_assert_uint_eq(pst_smtp_clock_wait(&s), 2000);
    }
}
END_TEST


Suite *
suite_smtp_deadline(void)
{
    Suite  *su = suite_create("smtp_deadline");
    TCase  *tc = tcase_create("clocks");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_command_deadline);
    tcase_add_test(tc, test_command_deadline_default);
    tcase_add_test(tc, test_data_rate);
    tcase_add_test(tc, test_data_rate_off);
    tcase_add_test(tc, test_data_rate_small_reads);
    tcase_add_test(tc, test_data_rate_spent);
    suite_add_tcase(su, tc);

    return su;
}
