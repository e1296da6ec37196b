/*
 * test_queue.c -- libpostern-test's own tests, queue side: what the
 * engine's bookkeeping gives a module through pst_test_qevent()
 * (attempts, the recipient, the reply, BOUNCE's DSN ID, no message for
 * RESOLVED), the state a module keeps with the fake message (kept
 * across events, replaced when ENQUEUED is told again, freed when the
 * message leaves, by pst_test_queue_remove() or the next message),
 * and the calls a test may get wrong (the process type after the
 * configuration, an event without a message, a recipient out of
 * range, a destination no router takes).  The plugin is the test
 * module tests/unit/modules/qctx_facts.c, which logs what it sees.
 * make harness-check (part of make unit).
 */

#include "mtest.h"

#define QCTX  TEST_MODULE_DIR "/qctx_facts.so"


/* How many times the log says s. */
static int
count(pst_test_t *t, const char *s)
{
    const char  *p = pst_test_log(t);
    int          n = 0;

    while ((p = strstr(p, s)) != NULL) {
        n++;
        p += strlen(s);
    }
    return n;
}


START_TEST(test_events_and_state)
{
    pst_test_t                *t = mtest_queue_new(NULL, QCTX, NULL);
    const pst_test_qresult_t  *r;
    char                       id[64], line[256];

    ck_assert_ptr_null(pst_test_queue_id(t));
    ck_assert_ptr_null(pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, NULL));
    ck_assert_int_eq(pst_test_queue_message(t, NULL, "b@example.test "
                                            " c@Example.NET", "hi\n"),
                     PST_OK);
    snprintf(id, sizeof(id), "%s", pst_test_queue_id(t));
    ck_assert_uint_eq(strlen(id), 18);
    ck_assert_uint_eq(pst_test_queue_states(t), 1);
    ck_assert_str_eq(pst_test_queue_dest(t, 1), "example.net");

    /* the attempt is counted before the hooks hear of it */
    r = pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451, "4.3.0 later");
    ck_assert_int_eq(r->final, 0);
    ck_assert_str_eq(r->dest, "example.test");
    snprintf(line, sizeof(line), "qctx_facts: deferred %s kept %s"
             " attempts=1 rcpt=b@example.test code=451", id, id);
    mtest_logged(t, line);
    pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, "2.0.0 ok");
    snprintf(line, sizeof(line), "qctx_facts: delivered %s kept %s"
             " attempts=2 rcpt=b@example.test code=250", id, id);
    mtest_logged(t, line);

    /* an event without a message can keep nothing */
    ck_assert_str_eq(pst_test_qevent(t, PST_QEV_RESOLVED, PST_QEV_NO_RCPT,
                                     0, NULL)->dest, "");
    mtest_logged(t, "qctx_facts: resolved set=-1 id=none");

    /* ENQUEUED told again (a restart): the new value replaces the old,
     * whose cleanup runs */
    pst_test_qevent(t, PST_QEV_ENQUEUED, PST_QEV_NO_RCPT, 0, NULL);
    snprintf(line, sizeof(line), "qctx_facts: freed %s", id);
    ck_assert_int_eq(count(t, line), 1);
    ck_assert_uint_eq(pst_test_queue_states(t), 1);

    r = pst_test_qevent(t, PST_QEV_FAILED, 1, 550, "5.1.1 no");
    ck_assert_int_eq(r->final, 1);
    pst_test_qevent(t, PST_QEV_BOUNCE, PST_QEV_NO_RCPT, 0, "DSNID");
    snprintf(line, sizeof(line), "qctx_facts: bounce %s reply=DSNID kept %s",
             id, id);
    mtest_logged(t, line);

    /* the message leaves: freed once more, and no message any more */
    pst_test_queue_remove(t);
    snprintf(line, sizeof(line), "qctx_facts: freed %s", id);
    ck_assert_int_eq(count(t, line), 2);
    ck_assert_uint_eq(pst_test_queue_states(t), 0);
    ck_assert_ptr_null(pst_test_queue_id(t));
    ck_assert_ptr_null(pst_test_queue_dest(t, 0));
    ck_assert_ptr_null(pst_test_qevent(t, PST_QEV_BOUNCE, 0, 0, "x"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_next_message_replaces)
{
    pst_test_t  *t = mtest_queue_new(NULL, QCTX, NULL);
    char         id[64], line[128];

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                                            "b@example.test", ""), PST_OK);
    snprintf(id, sizeof(id), "%s", pst_test_queue_id(t));
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                                            "c@example.test", ""), PST_OK);
    ck_assert_str_ne(pst_test_queue_id(t), id);
    snprintf(line, sizeof(line), "qctx_facts: freed %s", id);
    mtest_logged(t, line);
    ck_assert_uint_eq(pst_test_queue_states(t), 1);

    /* recipients out of range; none at all */
    ck_assert_ptr_null(pst_test_qevent(t, PST_QEV_DELIVERED, 1, 250, NULL));
    ck_assert_ptr_null(pst_test_qevent(t, PST_QEV_DELIVERED, PST_QEV_NO_RCPT,
                                       250, NULL));
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test", "  ", ""),
                     PST_ERROR);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test", NULL, ""),
                     PST_ERROR);
    ck_assert_ptr_null(pst_test_queue_id(t));
    pst_test_free(t);
}
END_TEST


START_TEST(test_process_and_routes)
{
    pst_test_t              *t = mtest_queue_new(NULL, QCTX, NULL);
    const pst_test_route_t  *r;

    /* too late, and not a process a module runs in */
    ck_assert_int_eq(pst_test_process(t, PST_PROC_WORKER), PST_ERROR);
    pst_test_free(t);
    t = pst_test_new();
    ck_assert_int_eq(pst_test_process(t, PST_PROC_MASTER), PST_ERROR);
    ck_assert_int_eq(pst_test_process(t, PST_PROC_SINGLE), PST_OK);

    /* no router loaded: nobody takes the destination (the harness
     * configures itself at the first use) */
    r = pst_test_route(t, "example.test");
    ck_assert_int_eq(r->pending, 0);
    ck_assert_int_eq(r->verdict, -1);
    ck_assert_msg(strstr(r->text, "no transport module") != NULL, "%s",
                  r->text);
    pst_test_run(t, 0);
    pst_test_free(t);
}
END_TEST


MTEST_MAIN("harness_queue", test_events_and_state, test_next_message_replaces,
           test_process_and_routes)
