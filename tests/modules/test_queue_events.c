/*
 * test_queue_events.c -- modules/queue_events.c on the plugin test
 * harness's queue side (postern/test.h), as a plugin author tests a
 * queue_event function: the retry schedule it gives deferred
 * recipients (and the engine's clamp to the message's lifetime), the
 * reroute at ROUTE, the JSON event log it writes in the queue process
 * only.  tests/integration/test_queue_events.py keeps the real server
 * with its DNS and a real next hop.  make modules-check (part of make
 * unit).
 */

#include <unistd.h>

#include "mtest.h"


START_TEST(test_retry_schedule)
{
    pst_test_t                *t;
    const pst_test_qresult_t  *r;

    t = mtest_queue_new("queue_retry example.test 10s 1m;\n"
                        "relay_min_backoff 30s;", "queue_events", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test c@other.test", "Subject: s\n\nx\n"),
                     PST_OK);

    /* the first deferral: the schedule's first time, not the engine's */
    r = pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451, "4.3.0 later");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->backoff, 30);
    ck_assert_int_eq(r->next_try, 10);
    ck_assert_str_eq(r->dest, "example.test");
    /* then its second, and the last one again after that */
    ck_assert_int_eq(pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451,
                                     NULL)->next_try, 60);
    pst_test_advance(t, 3600 * 1000);           /* the clock moves on */
    r = pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451, NULL);
    ck_assert_int_eq(r->next_try, 60);
    ck_assert_int_eq(r->backoff, 120);          /* 30s doubled, twice */

    /* a destination the schedule does not name: the engine's back-off */
    r = pst_test_qevent(t, PST_QEV_DEFERRED, 1, 451, NULL);
    ck_assert_int_eq(r->next_try, 30);
    ck_assert_int_eq(r->final, 0);
    ck_assert_int_eq(pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250,
                                     NULL)->final, 0);
    ck_assert_int_eq(pst_test_qevent(t, PST_QEV_EXPIRED, 1, 451,
                                     NULL)->final, 1);
    /* a recipient's event out of range */
    ck_assert_ptr_null(pst_test_qevent(t, PST_QEV_DEFERRED, 2, 451, NULL));
    pst_test_free(t);
}
END_TEST


START_TEST(test_retry_clamped_to_lifetime)
{
    pst_test_t  *t;

    t = mtest_queue_new("queue_retry * 1h;\nmax_queue_lifetime 20m;",
                        "queue_events", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test", "Subject: s\n\nx\n"), PST_OK);
    pst_test_advance(t, 5 * 60 * 1000);
    /* the message expires 15 minutes from now: no later try */
    ck_assert_int_eq(pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451,
                                     NULL)->next_try, 15 * 60);
    pst_test_free(t);
}
END_TEST


START_TEST(test_reroute)
{
    pst_test_t  *t;

    t = mtest_queue_new("queue_reroute moved.test ok.test;\n"
                        "queue_reroute *.sub.test [192.0.2.7];",
                        "queue_events", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "",
                         "a@moved.test b@x.sub.test c@sub.test",
                         "Subject: s\n\nx\n"), PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "ok.test");
    ck_assert_str_eq(pst_test_queue_dest(t, 1), "[192.0.2.7]");
    ck_assert_str_eq(pst_test_queue_dest(t, 2), "sub.test");
    /* no state kept with the message */
    ck_assert_uint_eq(pst_test_queue_states(t), 0);
    pst_test_free(t);
}
END_TEST


/* A log file's path into path (mkstemp), empty. */
static void
log_path(char *path, size_t size, char *conf, size_t csize)
{
    int  fd;

    snprintf(path, size, "/tmp/test_queue_events.XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ne(fd, -1);
    close(fd);
    snprintf(conf, csize, "queue_events_log %s;", path);
}


/* What the log file holds (removed). */
static void
log_read(const char *path, char *buf, size_t size)
{
    FILE    *f = fopen(path, "r");
    size_t   n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
}


/* The JSON log is opened in the queue process only: a worker never
 * writes it. */
START_TEST(test_event_log_not_in_worker)
{
    pst_test_t  *t;
    char         path[64], conf[256], buf[256];

    log_path(path, sizeof(path), conf, sizeof(conf));
    t = mtest_new(conf, NULL, "queue_events", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test", "Subject: s\n\nx\n"), PST_OK);
    pst_test_free(t);
    log_read(path, buf, sizeof(buf));
    ck_assert_str_eq(buf, "");
}
END_TEST


/* One line per event, its time the engine's clock. */
START_TEST(test_event_log)
{
    pst_test_t  *t;
    char         path[64], conf[256], buf[8192], want[256];

    log_path(path, sizeof(path), conf, sizeof(conf));
    t = mtest_queue_new(conf, "queue_events", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.test", "Subject: s\n\nx\n"), PST_OK);
    pst_test_qevent(t, PST_QEV_FAILED, 0, 550, "5.1.1 no such \"user\"");
    pst_test_qevent(t, PST_QEV_BOUNCE, PST_QEV_NO_RCPT, 0, "DSNID");
    log_read(path, buf, sizeof(buf));

    snprintf(want, sizeof(want), "\"event\":\"enqueued\",\"id\":\"%s\","
             "\"rcpt\":null,\"dest\":null,", pst_test_queue_id(t));
    ck_assert_msg(strstr(buf, want) != NULL, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "\"event\":\"route\","));
    ck_assert_ptr_nonnull(strstr(buf, "\"event\":\"failed\","));
    ck_assert_ptr_nonnull(strstr(buf, "\"rcpt\":\"b@example.test\","
                                      "\"dest\":\"example.test\","
                                      "\"remote\":null,\"code\":550,"
                                      "\"reply\":\"5.1.1 no such"
                                      " \\\"user\\\"\"}\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\"event\":\"bounce\","));
    ck_assert_ptr_nonnull(strstr(buf, "\"reply\":\"DSNID\"}\n"));
    ck_assert_ptr_null(strstr(buf, "\"time\":0,"));
    pst_test_free(t);
}
END_TEST


MTEST_MAIN("queue_events", test_retry_schedule,
           test_retry_clamped_to_lifetime, test_reroute,
           test_event_log_not_in_worker, test_event_log)
