/*
 * check_queue_event.c -- the queue-side events (ABI 1.2): the dispatcher
 * (load order, NULL hooks skipped, next_try and reroute written by a hook
 * seen by the caller), the accessors, what modules keep with a queued
 * message (pst_qevent_set_ctx(), core/queue/pst_queue_ctx.c), and
 * modules/queue_events.c called directly (JSON line, retry schedule,
 * reroute).
 */

#include "pst_core.h"
#include "pst_envelope.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_queue_event.h"
#include "pst_queue_ctx.h"
#include "check_suites.h"
#include "check_util.h"

#define postern_module  queue_events_test_module
#include "../../modules/queue_events.c"

#include <check.h>


static char  order[16];

static void
hook_a(pst_qevent_t *ev, void *main_conf)
{
    strcat(order, main_conf);
    ev->next_try = 1000;
}

static void
hook_b(pst_qevent_t *ev, void *main_conf)
{
    strcat(order, main_conf);
    ck_assert_int_eq(ev->next_try, 1000);      /* sees a's change */
    ev->next_try += 5;
    ev->reroute.data = (u_char *) "[127.0.0.9]";
    ev->reroute.len = 11;
}


START_TEST(test_dispatch_order)
{
    pst_cycle_t          cycle, *saved;
    pst_module_entry_t   me[3];
    void                *confs[3] = { "a", "x", "b" };
    pst_qevent_t         ev;

    memset(&cycle, 0, sizeof(cycle));
    memset(me, 0, sizeof(me));
    me[0].desc.name = "a";
    me[1].desc.name = "x";
    me[2].desc.name = "b";
    me[0].desc.queue_event = hook_a;
    me[0].index = 0;
    me[1].index = 1;                           /* no hook: skipped */
    me[2].desc.queue_event = hook_b;
    me[2].index = 2;
    cycle.modules.elts = me;
    cycle.modules.nelts = 3;
    cycle.main_conf = confs;

    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_DEFERRED;
    order[0] = '\0';
    saved = pst_cycle;
    pst_cycle = &cycle;
    pst_queue_event(&ev);
    pst_cycle = NULL;
    pst_queue_event(&ev);                      /* no cycle: nothing */
    pst_cycle = saved;

    ck_assert_str_eq(order, "ab");
    ck_assert_int_eq(ev.next_try, 1005);
    ck_assert_int_eq(ev.reroute.len, 0);        /* not a ROUTE event */

    ev.event = PST_QEV_ROUTE;
    order[0] = '\0';
    pst_cycle = &cycle;
    pst_queue_event(&ev);
    pst_cycle = saved;
    ck_assert_str_eq(order, "ab");
    ck_assert_int_eq(ev.reroute.len, 11);
    ck_assert_mem_eq(ev.reroute.data, "[127.0.0.9]", 11);
}
END_TEST


static pst_pool_t      *pool;
static pst_envelope_t   env;

static void
make_env(void)
{
    pst_env_rcpt_t  *r;

    pool = pst_create_pool(4096);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    env.id.data = (u_char *) "0123ABCD";
    env.id.len = 8;
    pst_envelope_add_rcpt(pool, &env, (u_char *) "a@x.test", 8);
    r = pst_envelope_add_rcpt(pool, &env, (u_char *) "b\"q@y.test", 10);
    ck_assert_ptr_nonnull(r);
    r->attempts = 3;
}


START_TEST(test_accessors)
{
    pst_qevent_t  ev;

    make_env();
    memset(&ev, 0, sizeof(ev));
    ck_assert_ptr_null(pst_qevent_id(&ev));
    ck_assert_ptr_null(pst_qevent_rcpt(&ev));
    ev.env = &env;
    ev.rcpt = PST_QEV_NO_RCPT;
    ck_assert_ptr_null(pst_qevent_rcpt(&ev));
    ck_assert_uint_eq(pst_qevent_attempts(&ev), 0);
    ev.rcpt = 2;                               /* out of range */
    ck_assert_ptr_null(pst_qevent_rcpt(&ev));
    ev.rcpt = 1;
    ck_assert_int_eq(pst_qevent_rcpt(&ev)->len, 10);
    ck_assert_uint_eq(pst_qevent_attempts(&ev), 3);
    ck_assert_int_eq(pst_qevent_id(&ev)->len, 8);
    ck_assert_str_eq(pst_qevent_name(PST_QEV_EXPIRED), "expired");
    ck_assert_str_eq(pst_qevent_name(PST_QEV_BEFORE_SEND), "before_send");
    ck_assert_str_eq(pst_qevent_name((pst_qevent_e) 99), "unknown");
    pst_destroy_pool(pool);
}
END_TEST


/* pst_qevent_header(): the delivered order (trace block, fields added
 * at receive time, the rest), folding kept, ENQUEUED and ROUTE only */
START_TEST(test_header)
{
    static const char  *want[][2] = {
        { "Received", "from a\r\n\tby b" }, { "Return-Path", "<x@y>" },
        { "X-Added", "by a hook" }, { "Subject", "hi" },
        { "X-Route", "bulk" }, { "Received", "late" }
    };
    pst_qevent_t        ev;
    pst_str_t           name, value, *pre;
    pst_uint_t          i;

    make_env();
    pre = pst_array_push(env.prepend);
    pre->data = (u_char *) "X-Added: by a hook";
    pre->len = 18;
    env.header.data = (u_char *) "Received: from a\r\n\tby b\r\n"
        "Return-Path: <x@y>\r\nSubject:   hi\r\nnot a field\r\n"
        "X-Route : bulk\r\nReceived: late\r\n";
    env.header.len = strlen((char *) env.header.data);

    memset(&ev, 0, sizeof(ev));
    ev.env = &env;
    ev.event = PST_QEV_DELIVERED;
    ck_assert_int_eq(pst_qevent_header(&ev, 0, &name, &value), PST_DECLINED);
    ev.event = PST_QEV_ROUTE;
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_int_eq(pst_qevent_header(&ev, i, &name, &value), PST_OK);
        ck_assert_int_eq(name.len, strlen(want[i][0]));
        ck_assert(memcmp(name.data, want[i][0], name.len) == 0);
        ck_assert_msg(value.len == strlen(want[i][1])
                      && memcmp(value.data, want[i][1], value.len) == 0,
                      "field %lu: \"%.*s\"", (unsigned long) i,
                      (int) value.len, value.data);
    }
    ck_assert_int_eq(pst_qevent_header(&ev, i, &name, &value), PST_DONE);

    /* no header read: only the added fields */
    env.header.len = 0;
    ev.event = PST_QEV_ENQUEUED;
    ck_assert_int_eq(pst_qevent_header(&ev, 0, &name, &value), PST_OK);
    ck_assert_int_eq(name.len, 7);
    ck_assert_int_eq(pst_qevent_header(&ev, 1, &name, &value), PST_DONE);
    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_module_json)
{
    pst_qevent_t  ev;
    pst_str_t     dest = pst_string("y.test");
    char          line[QEV_LINE_MAX];
    size_t        len;

    make_env();
    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_FAILED;
    ev.env = &env;
    ev.rcpt = 1;
    ev.dest = &dest;
    ev.remote = "mx.y.test[127.0.0.2]:25";
    ev.code = 550;
    ev.reply = "550 5.1.1 no\001";
    len = qev_format(&ev, 42, line, sizeof(line));
    ck_assert_str_eq(line, "{\"time\":42,\"event\":\"failed\","
        "\"id\":\"0123ABCD\",\"rcpt\":\"b\\\"q@y.test\",\"dest\":\"y.test\","
        "\"remote\":\"mx.y.test[127.0.0.2]:25\",\"code\":550,"
        "\"reply\":\"550 5.1.1 no\\u0001\"}\n");
    ck_assert_uint_eq(len, strlen(line));

    memset(&ev, 0, sizeof(ev));                /* no message */
    ev.event = PST_QEV_CONNECTED;
    qev_format(&ev, 1, line, sizeof(line));
    ck_assert_str_eq(line, "{\"time\":1,\"event\":\"connected\",\"id\":null,"
        "\"rcpt\":null,\"dest\":null,\"remote\":null,\"code\":0,"
        "\"reply\":null}\n");
    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_module_json_bounded)
{
    pst_qevent_t  ev;
    char          big[8000], line[QEV_LINE_MAX];
    size_t        len;

    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_DEFERRED;
    ev.remote = big;
    ev.reply = big;
    len = qev_format(&ev, 1, line, sizeof(line));
    ck_assert_uint_lt(len, sizeof(line));
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_int_eq(line[len - 2], '}');
}
END_TEST


START_TEST(test_module_retry_reroute)
{
    qev_conf_t      c;
    qev_retry_t     r[2];
    qev_reroute_t   rr[1];
    pst_array_t     ra, rra;
    pst_qevent_t    ev;
    pst_str_t       dest = pst_string("mx.Y.test"), other = pst_string("z.t");

    memset(&c, 0, sizeof(c));
    memset(r, 0, sizeof(r));
    c.fd = -1;
    r[0].pattern = (pst_str_t) pst_string("*.y.test");
    r[0].times[0] = 60;
    r[0].times[1] = 600;
    r[0].ntimes = 2;
    ra.elts = r;
    ra.nelts = 1;
    c.retry = &ra;
    rr[0].domain = (pst_str_t) pst_string("z.t");
    rr[0].dest = (pst_str_t) pst_string("[127.0.0.5]");
    rra.elts = rr;
    rra.nelts = 1;
    c.reroute = &rra;

    make_env();
    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_DEFERRED;
    ev.env = &env;
    ev.rcpt = 1;                               /* attempts 3: last time */
    ev.dest = &dest;
    ev.next_try = 7;
    pst_time_update();                         /* the engine's clock */
    qev_event(&ev, &c);
    ck_assert_int_eq(ev.next_try, pst_current_time() + 600);
    ((pst_env_rcpt_t *) env.rcpts->elts)[1].attempts = 1;
    qev_event(&ev, &c);
    ck_assert_int_eq(ev.next_try, pst_current_time() + 60);
    ev.dest = &other;                          /* no match: unchanged */
    ev.next_try = 7;
    qev_event(&ev, &c);
    ck_assert_int_eq(ev.next_try, 7);

    ev.event = PST_QEV_ROUTE;
    qev_event(&ev, &c);
    ck_assert_int_eq(ev.reroute.len, 11);
    ev.reroute.len = 0;
    ev.dest = &dest;
    qev_event(&ev, &c);
    ck_assert_int_eq(ev.reroute.len, 0);
    pst_destroy_pool(pool);
}
END_TEST


/* ------------------------------------------------------------------ */
/* What modules keep with a queued message                             */

static const pst_module_t   ctx_mod[3];    /* only their addresses */
static pst_module_entry_t   ctx_me[2];
static pst_cycle_t          ctx_cycle, *ctx_saved;
static char                 freed[256];
static pst_qevent_t        *ctx_other;      /* for ctx_free_other() */

static void
ctx_free(void *v)
{
    strcat(freed, v);
}

/* a cleanup that clears another message's state (re-entry) */
static void
ctx_free_other(void *v)
{
    strcat(freed, v);
    ck_assert_int_eq(pst_qevent_set_ctx(ctx_other, &ctx_mod[0], NULL, NULL),
                     PST_OK);
}

/* A cycle with ctx_mod[0] and ctx_mod[1] loaded (ctx_mod[2] not), and
 * event ev with a message of queue ID id. */
static void
ctx_setup(pst_qevent_t *ev, pst_envelope_t *e, const char *id)
{
    memset(&ctx_cycle, 0, sizeof(ctx_cycle));
    memset(ctx_me, 0, sizeof(ctx_me));
    ctx_me[0].orig = &ctx_mod[0];
    ctx_me[0].index = 4;
    ctx_me[1].orig = &ctx_mod[1];
    ctx_me[1].index = 7;
    ctx_cycle.modules.elts = ctx_me;
    ctx_cycle.modules.nelts = 2;
    ctx_saved = pst_cycle;
    pst_cycle = &ctx_cycle;
    memset(e, 0, sizeof(*e));
    e->id.data = (u_char *) id;
    e->id.len = strlen(id);
    memset(ev, 0, sizeof(*ev));
    ev->event = PST_QEV_ENQUEUED;
    ev->env = e;
    ev->rcpt = PST_QEV_NO_RCPT;
    freed[0] = '\0';
}


START_TEST(test_ctx_set_get)
{
    pst_envelope_t  e1, e2;
    pst_qevent_t    ev1, ev2, none;
    u_char         *id1 = (u_char *) "AAAAAAAAAAAAAAAAA1";

    ctx_setup(&ev2, &e2, "AAAAAAAAAAAAAAAAA2");
    ctx_setup(&ev1, &e1, (char *) id1);
    memset(&none, 0, sizeof(none));
    none.event = PST_QEV_CONNECTED;            /* no message */

    ck_assert_ptr_null(pst_qevent_get_ctx(&ev1, &ctx_mod[0]));
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[0], "a", ctx_free),
                     PST_OK);
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[1], "b", ctx_free),
                     PST_OK);
    ck_assert_int_eq(pst_qevent_set_ctx(&ev2, &ctx_mod[0], "c", ctx_free),
                     PST_OK);
    /* per module, per message; any event of the message sees it */
    ev1.event = PST_QEV_DELIVERED;
    ev1.rcpt = 0;
    ck_assert_str_eq(pst_qevent_get_ctx(&ev1, &ctx_mod[0]), "a");
    ck_assert_str_eq(pst_qevent_get_ctx(&ev1, &ctx_mod[1]), "b");
    ck_assert_str_eq(pst_qevent_get_ctx(&ev2, &ctx_mod[0]), "c");
    ck_assert_ptr_null(pst_qevent_get_ctx(&ev2, &ctx_mod[1]));
    ck_assert_uint_eq(pst_queue_ctx_count(id1), 2);

    /* refused: no message, a module not loaded, a malformed ID */
    ck_assert_int_eq(pst_qevent_set_ctx(&none, &ctx_mod[0], "x", ctx_free),
                     PST_ERROR);
    ck_assert_ptr_null(pst_qevent_get_ctx(&none, &ctx_mod[0]));
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[2], "x", ctx_free),
                     PST_ERROR);
    e2.id.len = 8;
    ck_assert_int_eq(pst_qevent_set_ctx(&ev2, &ctx_mod[1], "x", ctx_free),
                     PST_ERROR);
    e2.id.len = 18;
    ck_assert_str_eq(freed, "");               /* refused: still yours */

    /* replaced: the old value's cleanup; the same value: none */
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[0], "A", ctx_free),
                     PST_OK);
    ck_assert_str_eq(freed, "a");
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[0], "A", NULL),
                     PST_OK);
    ck_assert_str_eq(freed, "a");
    /* cleared: its cleanup (none now for "A") */
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[0], NULL, NULL),
                     PST_OK);
    ck_assert_ptr_null(pst_qevent_get_ctx(&ev1, &ctx_mod[0]));
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[1], NULL, NULL),
                     PST_OK);
    ck_assert_str_eq(freed, "ab");
    ck_assert_uint_eq(pst_queue_ctx_count(id1), 0);

    pst_queue_ctx_clear();                     /* the engine stops */
    ck_assert_str_eq(freed, "abc");
    ck_assert_ptr_null(pst_qevent_get_ctx(&ev2, &ctx_mod[0]));
    pst_cycle = ctx_saved;
}
END_TEST


START_TEST(test_ctx_forget)
{
    pst_envelope_t  e1, e2;
    pst_qevent_t    ev1, ev2;

    ctx_setup(&ev2, &e2, "BBBBBBBBBBBBBBBBB2");
    ctx_setup(&ev1, &e1, "BBBBBBBBBBBBBBBBB1");
    ctx_other = &ev2;
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[0], "a", ctx_free),
                     PST_OK);
    ck_assert_int_eq(pst_qevent_set_ctx(&ev1, &ctx_mod[1], "b",
                                        ctx_free_other), PST_OK);
    ck_assert_int_eq(pst_qevent_set_ctx(&ev2, &ctx_mod[0], "c", ctx_free),
                     PST_OK);
    ck_assert_int_eq(pst_qevent_set_ctx(&ev2, &ctx_mod[1], "d", ctx_free),
                     PST_OK);

    /* the message leaves: both of its states, each once; b's cleanup
     * clears c (another message) on the way */
    pst_queue_ctx_forget(e1.id.data);
    ck_assert_uint_eq(strlen(freed), 3);
    ck_assert_ptr_nonnull(strchr(freed, 'a'));
    ck_assert_ptr_nonnull(strstr(freed, "bc"));
    ck_assert_ptr_null(pst_qevent_get_ctx(&ev1, &ctx_mod[0]));
    ck_assert_ptr_null(pst_qevent_get_ctx(&ev2, &ctx_mod[0]));
    ck_assert_str_eq(pst_qevent_get_ctx(&ev2, &ctx_mod[1]), "d");
    pst_queue_ctx_forget(e1.id.data);          /* again: nothing */
    ck_assert_uint_eq(strlen(freed), 3);
    pst_queue_ctx_clear();
    ck_assert_str_eq(freed + 3, "d");
    pst_queue_ctx_clear();                     /* empty: nothing */
    pst_queue_ctx_forget(e1.id.data);
    pst_cycle = ctx_saved;
}
END_TEST


/* Many messages: the table grows and every state is found again. */
START_TEST(test_ctx_many)
{
    static char     ids[5000][PST_QUEUE_ID_LEN + 1];
    pst_envelope_t  e;
    pst_qevent_t    ev;
    int             i;

    ctx_setup(&ev, &e, "CCCCCCCCCCCCCCCCCC");
    for (i = 0; i < 5000; i++) {
        snprintf(ids[i], sizeof(ids[i]), "1LH4V0%012d", i);
        e.id.data = (u_char *) ids[i];
        ck_assert_int_eq(pst_qevent_set_ctx(&ev, &ctx_mod[i % 2], ids[i],
                                            NULL), PST_OK);
    }
    for (i = 0; i < 5000; i++) {
        e.id.data = (u_char *) ids[i];
        ck_assert_ptr_eq(pst_qevent_get_ctx(&ev, &ctx_mod[i % 2]), ids[i]);
        ck_assert_ptr_null(pst_qevent_get_ctx(&ev, &ctx_mod[1 - i % 2]));
    }
    for (i = 0; i < 5000; i += 2) {
        pst_queue_ctx_forget((u_char *) ids[i]);
    }
    for (i = 0; i < 5000; i++) {
        ck_assert_uint_eq(pst_queue_ctx_count((u_char *) ids[i]), i % 2);
    }
    pst_queue_ctx_clear();
    pst_cycle = ctx_saved;
}
END_TEST


Suite *
suite_queue_event(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("queue_event");
    tc = tcase_create("core");
    tcase_add_test(tc, test_dispatch_order);
    tcase_add_test(tc, test_accessors);
    tcase_add_test(tc, test_header);
    tcase_add_test(tc, test_ctx_set_get);
    tcase_add_test(tc, test_ctx_forget);
    tcase_add_test(tc, test_ctx_many);
    tcase_add_test(tc, test_module_json);
    tcase_add_test(tc, test_module_json_bounded);
    tcase_add_test(tc, test_module_retry_reroute);
    suite_add_tcase(s, tc);
    return s;
}
