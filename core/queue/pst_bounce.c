/*
 * pst_bounce.c -- which delivery status notifications a message owes
 * and sending them (RFC 3461 NOTIFY, RFC 3464 reports by pst_dsn.c):
 *
 *   failed or expired recipient   NOTIFY=FAILURE or no NOTIFY
 *   delivered                     NOTIFY=SUCCESS and the next hop
 *                                 had no DSN extension: "relayed" (a
 *                                 next hop with DSN got the NOTIFY and
 *                                 reports itself, RFC 3461 6.2.1);
 *                                 into a mailbox (LMTP without DSN, a
 *                                 local route): "delivered"
 *   deferred past delay_warning_time   NOTIFY=DELAY or no NOTIFY
 *
 * never NOTIFY=NEVER, never to the null sender (a bounce that fails is
 * logged and dropped).  One report per message and action per pass;
 * each recipient's dsn_sent bits (PST_NOTIFY_FAILURE, _DELAY, _SUCCESS)
 * say what went out, so a DSN is sent once, or twice after a crash
 * between its injection and the state write.  Injection runs on a
 * pst_qio thread, with the state snapshot of the finish operation.
 */

#include "pst_core.h"
#include "pst_spool.h"
#include "pst_sched.h"
#include "pst_queue.h"
#include "pst_queue_int.h"
#include "pst_queue_event.h"
#include "pst_dsn.h"


static const unsigned  pst_bounce_bit[4] = {
    PST_NOTIFY_FAILURE,          /* PST_DSN_FAILED */
    PST_NOTIFY_DELAY,            /* PST_DSN_DELAYED */
    PST_NOTIFY_SUCCESS,          /* PST_DSN_DELIVERED */
    PST_NOTIFY_SUCCESS           /* PST_DSN_RELAYED */
};

static const char  *pst_bounce_name[4] = {
    "non-delivery", "delay", "delivery", "relay"
};


/* The action a recipient's DSN would have now, or -1 for none. */
int
pst_bounce_action(const pst_env_rcpt_t *r, unsigned how, time_t arrival,
    time_t now, time_t delay_warning)
{
    unsigned  n = r->notify;

    if (n & PST_NOTIFY_NEVER) {
        return -1;
    }

    switch (r->state) {
    case PST_RCPT_FAILED:
        if ((n == 0 || (n & PST_NOTIFY_FAILURE))
            && !(r->dsn_sent & PST_NOTIFY_FAILURE))
        {
            return PST_DSN_FAILED;
        }
        return -1;
    case PST_RCPT_DELIVERED:
        /* a next hop with DSN got NOTIFY=SUCCESS: the report is its
         * (RFC 3461 6.2.1); one without: "relayed" from us */
        if ((n & PST_NOTIFY_SUCCESS) && how != 0
            && !(r->dsn_sent & PST_NOTIFY_SUCCESS))
        {
            return how == PST_BOUNCE_FINAL ? PST_DSN_DELIVERED
                                           : PST_DSN_RELAYED;
        }
        return -1;
    default:
        if (delay_warning > 0 && r->attempts > 0
            && now >= arrival + delay_warning
            && (n == 0 || (n & PST_NOTIFY_DELAY))
            && !(r->dsn_sent & PST_NOTIFY_DELAY))
        {
            return PST_DSN_DELAYED;
        }
        return -1;
    }
}


int
pst_bounce_plan(pst_qmsg_t *msg, time_t now)
{
    pst_qopen_t     *o = msg->open;
    pst_env_rcpt_t  *r = o->m.env.rcpts->elts;
    pst_uint_t       i, n = o->m.env.rcpts->nelts;
    int              a, any = 0;

    for (a = 0; a < 4; a++) {
        o->dsn_n[a] = 0;
        o->dsn_rc[a] = PST_ERROR;
        o->dsn_which[a] = NULL;
    }
    o->retry_until = pst_queue_expiry(msg);

    if (msg->null_sender) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        a = pst_bounce_action(&r[i],
                              (msg->rcpts[i].flags & PST_QR_FINAL)
                              ? PST_BOUNCE_FINAL
                              : (msg->rcpts[i].flags & PST_QR_RELAYED)
                                ? PST_BOUNCE_RELAYED : 0,
                              msg->arrival, now,
                              (time_t) (pst_q.conf->delay_warning / 1000));
        if (a < 0) {
            continue;
        }
        if (o->dsn_which[a] == NULL) {
            o->dsn_which[a] = pst_palloc(o->pool, n * sizeof(pst_uint_t));
            if (o->dsn_which[a] == NULL) {
                continue;
            }
        }
        o->dsn_which[a][o->dsn_n[a]++] = i;
        any = 1;
    }
    return any;
}


/* Thread: one report, injected; PST_OK when durable. */
static int
pst_bounce_one(pst_qopen_t *o, int a, const char *hostname)
{
    pst_pool_t       *pool;
    pst_spool_msg_t   sm;
    pst_dsn_opts_t    opts;
    pst_envelope_t    env;
    pst_env_rcpt_t   *r;
    pst_buf_t        *b = NULL;
    int               rc = PST_ERROR;

    pool = pst_create_pool(8192);
    if (pool == NULL) {
        return PST_ERROR;
    }

    sm = o->m;
    sm.env = o->snap;
    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = hostname;
    opts.retry_until = a == PST_DSN_DELAYED ? o->retry_until : 0;

    if (pst_dsn_build_opts(pool, &sm, (pst_dsn_action_e) a, o->dsn_which[a],
                           o->dsn_n[a], &opts, &b) == PST_OK
        && pst_envelope_init(pool, &env) == PST_OK
        && (r = pst_envelope_add_rcpt(pool, &env, o->snap.sender.data,
                                      o->snap.sender.len)) != NULL)
    {
        r->notify = PST_NOTIFY_NEVER;
        env.smtputf8 = o->snap.smtputf8;
        /* RFC 8689 5: a notification about a REQUIRETLS message goes
         * back under REQUIRETLS too (and without its body: pst_dsn.c) */
        env.requiretls = o->snap.requiretls;
        if (opts.eightbit) {
            pst_str_set(&env.body, "8BITMIME");
        }
        pst_str_set(&env.protocol, "local");
        env.size = (int64_t) pst_buf_size(b);
        rc = pst_spool_inject(&env, b->pos, pst_buf_size(b), o->dsn_id[a]);
    }

    if (b != NULL) {
        pst_buf_destroy(b);
    }
    pst_destroy_pool(pool);
    return rc;
}


void
pst_bounce_inject(pst_qopen_t *o, const char *hostname,
    const pst_queue_conf_t *conf)
{
    pst_env_rcpt_t  *r = o->snap_rcpts;
    pst_uint_t       i;
    int              a;

    (void) conf;

    for (a = 0; a < 4; a++) {
        if (o->dsn_n[a] == 0) {
            continue;
        }
        o->dsn_rc[a] = pst_bounce_one(o, a, hostname);
        if (o->dsn_rc[a] != PST_OK) {
            continue;
        }
        for (i = 0; i < o->dsn_n[a]; i++) {
            r[o->dsn_which[a][i]].dsn_sent |= pst_bounce_bit[a];
        }
    }
}


pst_uint_t
pst_bounce_done(pst_qmsg_t *msg)
{
    pst_qopen_t     *o = msg->open;
    pst_env_rcpt_t  *r = o->m.env.rcpts->elts;
    pst_qevent_t     ev;
    pst_uint_t       i, k, failed = 0;
    int              a;

    for (a = 0; a < 4; a++) {
        if (o->dsn_n[a] == 0) {
            continue;
        }
        if (o->dsn_rc[a] != PST_OK) {
            pst_log_error(PST_LOG_ERR, 0, "%s: cannot queue the sender's %s"
                          " notification: tried again later", msg->id,
                          pst_bounce_name[a]);
            failed++;
            continue;
        }
        for (i = 0; i < o->dsn_n[a]; i++) {
            k = o->dsn_which[a][i];
            r[k].dsn_sent |= pst_bounce_bit[a];
            msg->rcpts[k].dsn_sent |= (uint8_t) pst_bounce_bit[a];
        }
        pst_log_error(PST_LOG_INFO, 0, "%s: sender %s notification: %s",
                      msg->id, pst_bounce_name[a], o->dsn_id[a]);
        memset(&ev, 0, sizeof(ev));
        ev.event = PST_QEV_BOUNCE;
        ev.env = &o->m.env;
        ev.rcpt = PST_QEV_NO_RCPT;
        ev.reply = (const char *) o->dsn_id[a];
        pst_queue_event(&ev);
        pst_queue_committed(o->dsn_id[a], PST_QUEUE_ID_LEN);
    }

    for (a = 0; a < 4; a++) {
        o->dsn_n[a] = 0;
    }
    return failed;
}
