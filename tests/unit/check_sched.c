/*
 * check_sched.c -- the relay scheduler's pure parts (core/queue/pst_sched.c)
 * and the DSN decision (pst_bounce_action): back-off, the concurrency
 * window's feedback, dead destinations, round robin, batching.
 */

#include "pst_core.h"
#include "pst_queue_int.h"
#include "pst_dsn.h"
#include "check_suites.h"

#include <check.h>


START_TEST(test_backoff)
{
    ck_assert_int_eq(pst_sched_backoff(0, 300, 3600), 300);
    ck_assert_int_eq(pst_sched_backoff(1, 300, 3600), 300);
    ck_assert_int_eq(pst_sched_backoff(2, 300, 3600), 600);
    ck_assert_int_eq(pst_sched_backoff(3, 300, 3600), 1200);
    ck_assert_int_eq(pst_sched_backoff(4, 300, 3600), 2400);
    ck_assert_int_eq(pst_sched_backoff(5, 300, 3600), 3600);
    ck_assert_int_eq(pst_sched_backoff(60000, 300, 3600), 3600);
    ck_assert_int_eq(pst_sched_backoff(3, 1, 2), 2);
    ck_assert_int_eq(pst_sched_backoff(1, 0, 2), 1);
}
END_TEST


START_TEST(test_window_feedback)
{
    pst_sched_t   s;
    pst_qdest_t  *d;
    pst_uint_t    i;

    ck_assert_int_eq(pst_sched_init(&s, 20), PST_OK);
    d = pst_sched_dest(&s, (u_char *) "Example.NET", 11);
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq((char *) d->name.data, "example.net");
    ck_assert_ptr_eq(pst_sched_dest(&s, (u_char *) "example.net", 11), d);
    ck_assert_int_eq(d->window, PST_SCHED_INIT_WINDOW);

    /* many destinations: the table grows, every one is found again */
    {
        char         nm[32];
        pst_qdest_t *x;

        for (i = 0; i < 5000; i++) {
            snprintf(nm, sizeof(nm), "d%lu.test", (unsigned long) i);
            ck_assert_ptr_nonnull(pst_sched_dest(&s, (u_char *) nm,
                                                 strlen(nm)));
        }
        ck_assert_uint_gt(s.hsize, 1024);
        x = pst_sched_find(&s, (u_char *) "D4999.test", 10);
        ck_assert_ptr_nonnull(x);
        ck_assert_str_eq((char *) x->name.data, "d4999.test");
        ck_assert_ptr_eq(pst_sched_find(&s, (u_char *) "example.net", 11),
                         d);
    }

    /* grows by one after as many successes as it is wide */
    for (i = 0; i < PST_SCHED_INIT_WINDOW - 1; i++) {
        pst_sched_feedback(&s, d, 1, 0, 100, 60);
    }
    ck_assert_int_eq(d->window, PST_SCHED_INIT_WINDOW);
    pst_sched_feedback(&s, d, 1, 0, 100, 60);
    ck_assert_int_eq(d->window, PST_SCHED_INIT_WINDOW + 1);

    /* never above the maximum */
    for (i = 0; i < 1000; i++) {
        pst_sched_feedback(&s, d, 1, 0, 100, 60);
    }
    ck_assert_int_eq(d->window, 20);

    /* shrinks on failures, not below 1; dead after a dead attempt */
    pst_sched_feedback(&s, d, 0, 0, 100, 60);
    ck_assert_int_eq(d->window, 19);
    ck_assert_int_eq(d->dead_until, 0);
    for (i = 0; i < 100; i++) {
        pst_sched_feedback(&s, d, 0, 0, 100, 60);
    }
    ck_assert_int_eq(d->window, 1);
    pst_sched_feedback(&s, d, 0, 1, 100, 60);
    ck_assert_int_eq(d->dead_until, 160);
    pst_sched_feedback(&s, d, 1, 0, 101, 60);
    ck_assert_int_eq(d->dead_until, 0);

    pst_sched_free(&s);
}
END_TEST


START_TEST(test_next_round_robin_dead)
{
    pst_sched_t   s;
    pst_qdest_t  *a, *b;
    time_t        wake;
    int           m1, m2, m3;

    ck_assert_int_eq(pst_sched_init(&s, 2), PST_OK);
    ck_assert_int_eq(s.init_window, 2);
    a = pst_sched_dest(&s, (u_char *) "a.test", 6);
    b = pst_sched_dest(&s, (u_char *) "b.test", 6);

    ck_assert_ptr_null(pst_sched_next(&s, 100, &wake));
    ck_assert_int_eq(pst_sched_push(&s, a, &m1), PST_OK);
    ck_assert_int_eq(pst_sched_push(&s, a, &m2), PST_OK);
    ck_assert_int_eq(pst_sched_push(&s, b, &m3), PST_OK);

    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), a);
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), b);
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), a);

    /* a full window is skipped */
    a->active = 2;
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), b);
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), b);
    a->active = 0;

    /* a dead destination waits, and says when it comes back */
    b->dead_until = 130;
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), a);
    ck_assert_ptr_eq(pst_sched_next(&s, 100, &wake), a);
    a->active = 2;
    ck_assert_ptr_null(pst_sched_next(&s, 100, &wake));
    ck_assert_int_eq(wake, 130);
    ck_assert_ptr_eq(pst_sched_next(&s, 130, &wake), b);

    /* FIFO per destination; unlink drops a message's entries */
    ck_assert_ptr_eq(pst_sched_pop(&s, a), &m1);
    ck_assert_int_eq(pst_sched_push(&s, a, &m1), PST_OK);
    pst_sched_unlink(&s, a, &m2);
    ck_assert_ptr_eq(pst_sched_pop(&s, a), &m1);
    ck_assert_ptr_null(pst_sched_pop(&s, a));
    ck_assert_int_eq(a->nready, 0);
    ck_assert_ptr_eq(pst_sched_pop(&s, b), &m3);
    ck_assert(pst_list_empty(&s.ring));

    pst_sched_free(&s);
}
END_TEST


START_TEST(test_batch)
{
    pst_sched_t   s;
    pst_qdest_t  *a, *b;
    pst_qrcpt_t   r[7];
    pst_uint_t    which[7], n;

    ck_assert_int_eq(pst_sched_init(&s, 20), PST_OK);
    a = pst_sched_dest(&s, (u_char *) "a.test", 6);
    b = pst_sched_dest(&s, (u_char *) "b.test", 6);
    memset(r, 0, sizeof(r));
    r[0].dest = a; r[1].dest = b; r[2].dest = a; r[3].dest = a;
    r[4].dest = a; r[5].dest = a; r[6].dest = a;
    r[3].state = PST_RCPT_DELIVERED;
    r[4].next_try = 500;

    ck_assert(pst_sched_due(&r[0], 100));
    ck_assert(!pst_sched_due(&r[3], 100));           /* final */
    ck_assert(!pst_sched_due(&r[4], 100));           /* not yet */
    r[4].flags = PST_QR_FLUSH;
    ck_assert(pst_sched_due(&r[4], 100));            /* flushed */

    r[0].flags = r[1].flags = r[2].flags = r[4].flags = PST_QR_QUEUED;
    r[5].flags = r[6].flags = PST_QR_QUEUED;
    ck_assert(!pst_sched_due(&r[0], 100));           /* listed already */

    /* at most the limit, only this destination's, in order */
    n = pst_sched_batch(r, 7, a, 3, which);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(which[0], 0);
    ck_assert_int_eq(which[1], 2);
    ck_assert_int_eq(which[2], 4);
    ck_assert_int_eq(r[4].flags, PST_QR_BUSY);
    n = pst_sched_batch(r, 7, a, 3, which);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(which[0], 5);
    ck_assert_int_eq(pst_sched_batch(r, 7, a, 3, which), 0);
    ck_assert_int_eq(pst_sched_batch(r, 7, b, 3, which), 1);

    pst_sched_free(&s);
}
END_TEST


START_TEST(test_bounce_action)
{
    pst_env_rcpt_t  r;

    memset(&r, 0, sizeof(r));
    r.state = PST_RCPT_FAILED;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), PST_DSN_FAILED);
    r.dsn_sent = PST_NOTIFY_FAILURE;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);   /* sent */
    r.dsn_sent = 0;
    r.notify = PST_NOTIFY_NEVER;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);
    r.notify = PST_NOTIFY_SUCCESS;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);

    r.state = PST_RCPT_DELIVERED;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);  /* hop's */
    ck_assert_int_eq(pst_bounce_action(&r, PST_BOUNCE_RELAYED, 0, 10, 0),
                     PST_DSN_RELAYED);
    /* into a mailbox (LMTP without DSN, Maildir): "delivered" */
    ck_assert_int_eq(pst_bounce_action(&r, PST_BOUNCE_FINAL, 0, 10, 0),
                     PST_DSN_DELIVERED);
    r.dsn_sent = PST_NOTIFY_SUCCESS;
    ck_assert_int_eq(pst_bounce_action(&r, PST_BOUNCE_FINAL, 0, 10, 0), -1);
    r.dsn_sent = 0;
    r.notify = 0;
    ck_assert_int_eq(pst_bounce_action(&r, PST_BOUNCE_FINAL, 0, 10, 0), -1);
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);

    /* delay warnings: only after the time, once, after an attempt */
    r.state = PST_RCPT_DEFERRED;
    r.attempts = 1;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 0), -1);    /* off */
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 10, 20), -1);   /* early */
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 20, 20), PST_DSN_DELAYED);
    r.notify = PST_NOTIFY_FAILURE;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 20, 20), -1);
    r.notify = PST_NOTIFY_DELAY;
    r.dsn_sent = PST_NOTIFY_DELAY;
    ck_assert_int_eq(pst_bounce_action(&r, 0, 0, 20, 20), -1);
}
END_TEST


Suite *
suite_sched(void)
{
    Suite  *s = suite_create("sched");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_window_feedback);
    tcase_add_test(tc, test_next_round_robin_dead);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_bounce_action);
    suite_add_tcase(s, tc);
    return s;
}
