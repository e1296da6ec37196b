/*
 * check_metrics.c -- pst_metrics.c, pst_log_syslog.c, pst_conf_written.c:
 * counters and histograms in their shared zone and the exposition
 * text, dynamic labels (escaped, bounded, "other" past the last slot),
 * the syslog: specification, and how -T writes times and sizes.
 */

#include "check_util.h"
#include "check_suites.h"


static pst_buf_t *
render(int om)
{
    pst_buf_t  *b;

    b = pst_buf_alloc(65536);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(pst_metrics_render(b, om), PST_OK);
    ck_assert(pst_buf_free(b) > 0);
    *b->last = '\0';
    return b;
}


static void
init_zone(void)
{
    static int  done;
    pst_conf_t  cf;

    if (!done) {
        memset(&cf, 0, sizeof(cf));
        ck_assert_int_eq(pst_metrics_init(&cf), PST_OK);
        done = 1;
    }
}


START_TEST(test_counters_and_text)
{
    pst_buf_t  *b;

    init_zone();
    pst_metric_inc(PST_M_MSG_ACCEPTED);
    pst_metric_add(PST_M_MSG_BYTES, 1234);
    pst_metric_inc(PST_M_MSG_REJECTED_RCPT);
    pst_metric_set(PST_M_QUEUE_DEFERRED, 7);
    pst_metric_set(PST_M_QUEUE_DEFERRED, 5);     /* a gauge: replaced */
    pst_metric_add(PST_M_NSERIES, 1);            /* out of range: ignored */

    b = render(0);
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "# TYPE postern_messages_accepted_total counter\n"
        "postern_messages_accepted_total 1\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_message_bytes_total 1234\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_messages_rejected_total{phase=\"rcpt\"} 1\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "# TYPE postern_queue_messages gauge\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_queue_messages{state=\"deferred\"} 5\n"));
    ck_assert_ptr_null(strstr((char *) b->pos, "# EOF"));
    pst_buf_destroy(b);

    /* OpenMetrics: families without _total, samples with it, # EOF */
    b = render(1);
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "# TYPE postern_messages_accepted counter\n"
        "postern_messages_accepted_total 1\n"));
    ck_assert_str_eq((char *) b->last - 6, "# EOF\n");
    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_histogram_buckets)
{
    pst_buf_t  *b;

    init_zone();
    pst_metric_observe(PST_H_STORE_COMMIT, 800);        /* 0.8 ms */
    pst_metric_observe(PST_H_STORE_COMMIT, 1000);       /* on the bound */
    pst_metric_observe(PST_H_STORE_COMMIT, 30000);      /* 30 ms */
    pst_metric_observe(PST_H_STORE_COMMIT, 60000000);   /* past 10 s */
    pst_metric_observe(PST_H_GROUP_COMMIT, 3);

    b = render(0);
    /* cumulative; le is inclusive */
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_store_commit_duration_seconds_bucket{le=\"0.001\"} 2\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_store_commit_duration_seconds_bucket{le=\"0.025\"} 2\n"
        "postern_store_commit_duration_seconds_bucket{le=\"0.05\"} 3\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_store_commit_duration_seconds_bucket{le=\"10\"} 3\n"
        "postern_store_commit_duration_seconds_bucket{le=\"+Inf\"} 4\n"
        "postern_store_commit_duration_seconds_count 4\n"
        "postern_store_commit_duration_seconds_sum 60.031800\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_group_commit_messages_bucket{le=\"2.0\"} 0\n"
        "postern_group_commit_messages_bucket{le=\"4.0\"} 1\n"));
    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_labels_escaped_and_bounded)
{
    pst_buf_t  *b;
    char        name[32];
    int         i;

    init_zone();
    pst_metric_label_inc(PST_ML_REJECT_REASON, "a\"b\\c\nd", 7);
    pst_metric_label_inc(PST_ML_REJECT_REASON, "a\"b\\c\nd", 7);
    pst_metric_label_observe(PST_ML_HOOK_LATENCY, "policy_x", 8, 2000);

    b = render(0);
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_rejections_total{reason=\"a\\\"b\\\\c\\nd\"} 2\n"));
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_hook_duration_seconds_count{module=\"policy_x\"} 1\n"));
    pst_buf_destroy(b);

    /* more names than slots: the rest is counted as "other" */
    for (i = 0; i < PST_METRICS_LABELS + 10; i++) {
        snprintf(name, sizeof(name), "l%d", i);
        pst_metric_label_inc(PST_ML_SESSIONS, name, strlen(name));
    }
    b = render(0);
    ck_assert_ptr_nonnull(strstr((char *) b->pos,
        "postern_sessions_total{listener=\"other\"} "));
    ck_assert_ptr_null(strstr((char *) b->pos,
        "{listener=\"l137\"}"));
    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_syslog_spec)
{
    char  tag[40];
    int   fac;

    ck_assert_int_eq(pst_log_syslog_parse("syslog:", &fac, tag,
                                          sizeof(tag)), PST_OK);
    ck_assert_str_eq(tag, "postern");
    ck_assert_int_eq(pst_log_syslog_parse("syslog:facility=local3,tag=a-b.c",
                                          &fac, tag, sizeof(tag)), PST_OK);
    ck_assert_str_eq(tag, "a-b.c");
    ck_assert_int_eq(fac, 19 << 3);             /* LOG_LOCAL3 */
    ck_assert_int_eq(pst_log_syslog_parse("syslog:facility=bogus", NULL,
                                          NULL, 0), PST_ERROR);
    ck_assert_int_eq(pst_log_syslog_parse("syslog:server=10.0.0.1", NULL,
                                          NULL, 0), PST_ERROR);
    ck_assert_int_eq(pst_log_syslog_parse("syslog:tag=", NULL, NULL, 0),
                     PST_ERROR);
    ck_assert_int_eq(pst_log_syslog_parse("syslog:tag=a b", NULL, NULL, 0),
                     PST_ERROR);
    ck_assert_int_eq(pst_log_syslog_parse("syslog:facility", NULL, NULL, 0),
                     PST_ERROR);
    ck_assert_int_eq(pst_log_syslog_parse("/var/log/x", NULL, NULL, 0),
                     PST_ERROR);
}
END_TEST


START_TEST(test_dump_units)
{
    char  buf[32];

    ck_assert_str_eq(pst_conf_written_msec(300000, buf, sizeof(buf)), "5m");
    ck_assert_str_eq(pst_conf_written_msec(30000, buf, sizeof(buf)), "30s");
    ck_assert_str_eq(pst_conf_written_msec(1500, buf, sizeof(buf)),
                     "1500ms");
    ck_assert_str_eq(pst_conf_written_msec(0, buf, sizeof(buf)), "0ms");
    ck_assert_str_eq(pst_conf_written_msec(86400000, buf, sizeof(buf)),
                     "1d");
    ck_assert_str_eq(pst_conf_written_size(262144, buf, sizeof(buf)),
                     "256k");
    ck_assert_str_eq(pst_conf_written_size(50 * 1024 * 1024, buf,
                                           sizeof(buf)), "50m");
    ck_assert_str_eq(pst_conf_written_size(500, buf, sizeof(buf)), "500");
}
END_TEST


Suite *
suite_metrics(void)
{
    Suite  *s = suite_create("metrics");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_counters_and_text);
    tcase_add_test(tc, test_histogram_buckets);
    tcase_add_test(tc, test_labels_escaped_and_bounded);
    tcase_add_test(tc, test_syslog_spec);
    tcase_add_test(tc, test_dump_units);
    suite_add_tcase(s, tc);

    return s;
}
