/*
 * pst_redis_sentinel.c -- where the master is, asked of Redis Sentinel
 * on this process's event loop, as the sentinel client guidelines say
 * (redis.io, "Sentinel client spec"):
 *
 *   1. the sentinels are tried in order, each within
 *      redis_sentinel_timeout (connect, AUTH, answer); on an error, a
 *      timeout or the null reply, the next one;
 *   2. SENTINEL get-master-addr-by-name NAME; the sentinel that named
 *      the master moves to the front of this process's list, so the
 *      next discovery asks it first;
 *   3. ROLE on the master is checked by the connection
 *      (pst_redis_conn.c), which starts every attempt with a discovery.
 *
 * After an answer the process subscribes to +switch-master on that
 * sentinel (one more connection, kept; made again with back-off on
 * another sentinel when it goes): a push for our name makes the
 * connection leave the old master and ask again at once, instead of
 * writing to it until the sentinels demote it.  The push only triggers
 * the discovery, it is never trusted alone.
 *
 * Every step is a link (pst_redis_link.c) whose gone callback ends it;
 * the next step is posted, never started inside hiredis's free.  What
 * the sentinels send is read by pst_redis_reply.c's checked parsers.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_redis.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#define PST_REDIS_WATCH_MIN      1000
#define PST_REDIS_WATCH_MAX      5000

static struct {
    pst_redis_conf_t            *conf;
    pst_redis_found_pt           found;
    pst_redis_switched_pt        switched;
    pst_uint_t                   order[PST_REDIS_SENTINELS_MAX];

    /* the discovery: order[pos] is being asked */
    pst_redis_link_t             ask;
    pst_event_t                  ask_timer;
    pst_event_t                  ask_next;   /* posted after a step */
    pst_uint_t                   pos;
    pst_uint_t                   reached;    /* sentinels that answered */
    pst_uint_t                   unknown;    /* ... with the null reply */
    pst_uint_t                   failures;   /* discoveries in a row */
    char                         host[PST_REDIS_HOST_MAX];
    int                          port;
    unsigned                     asking:1;
    unsigned                     named:1;    /* order[pos] named it */
    unsigned                     said:1;     /* its end is logged */

    /* the +switch-master subscription */
    pst_redis_link_t             watch;
    pst_event_t                  watch_timer;
    pst_msec_t                   watch_backoff;
    pst_uint_t                   watch_idx;  /* its sentinel */
    pst_uint_t                   watch_next; /* position tried next */
    unsigned                     watching:1; /* subscribed */

    unsigned                     exiting:1;
} rs;


static void pst_redis_sentinel_try(void);
static void pst_redis_watch_start(pst_uint_t idx);


static const char *
pst_redis_sentinel_name(pst_uint_t idx)
{
    return (const char *) rs.conf->sentinels[idx].spec.data;
}


/* ------------------------------------------------------------------ */
/* The discovery                                                       */

static void
pst_redis_ask_close(void)
{
    rs.said = 1;
    pst_event_del_timer(&rs.ask_timer);
    pst_redis_link_close(&rs.ask);
}


static void
pst_redis_ask_connect_cb(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK) {
        return;
    }
    rs.said = 1;
    pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: cannot connect: %s",
                  pst_redis_sentinel_name(rs.order[rs.pos]), ac->errstr);
}


static void
pst_redis_ask_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    char  err[160];

    (void) ac;
    (void) privdata;

    if (reply != NULL && pst_redis_reply_error(reply, err, sizeof(err))) {
        pst_log_error(PST_LOG_ERR, 0, "redis sentinel %s: AUTH refused: %s",
                      pst_redis_sentinel_name(rs.order[rs.pos]), err);
        pst_redis_ask_close();
    }
}


static void
pst_redis_ask_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    const char  *name, *why = NULL;
    char         err[160];
    int          rc;

    (void) ac;
    (void) privdata;

    if (reply == NULL) {
        return;                          /* going away: gone follows */
    }

    name = pst_redis_sentinel_name(rs.order[rs.pos]);
    if (pst_redis_reply_error(reply, err, sizeof(err))) {
        pst_log_error(PST_LOG_ERR, 0, "redis sentinel %s: SENTINEL"
                      " get-master-addr-by-name refused: %s", name, err);
        pst_redis_ask_close();
        return;
    }

    rs.reached++;
    rc = pst_redis_master_addr(reply, rs.host, sizeof(rs.host), &rs.port,
                               &why);
    if (rc == PST_OK) {
        rs.named = 1;
    } else if (rc == PST_DECLINED) {
        rs.unknown++;
        pst_log_error(PST_LOG_WARN, 0, "redis sentinel %s: does not know"
                      " master \"%s\"", name, rs.conf->master_name.data);
    } else {
        pst_log_error(PST_LOG_ERR, 0, "redis sentinel %s: its answer for"
                      " master \"%s\" %s", name, rs.conf->master_name.data,
                      why);
    }
    pst_redis_ask_close();
}


static void
pst_redis_ask_timeout(pst_event_t *ev)
{
    (void) ev;

    pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: no answer within"
                  " redis_sentinel_timeout",
                  pst_redis_sentinel_name(rs.order[rs.pos]));
    pst_redis_ask_close();
}


static void
pst_redis_ask_gone(pst_redis_link_t *l)
{
    if (!rs.said && !rs.exiting) {
        pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: connection lost"
                      " before an answer%s%s",
                      pst_redis_sentinel_name(rs.order[rs.pos]),
                      l->errstr[0] ? ": " : "", l->errstr);
    }
    pst_event_del_timer(&rs.ask_timer);
    if (!rs.exiting) {
        pst_post_event(&rs.ask_next);
    }
}


/* Connect to order[pos] and ask; PST_ERROR when the connect failed at
 * once (said here). */
static int
pst_redis_ask_one(void)
{
    pst_redis_conf_t  *rc = rs.conf;
    pst_redis_addr_t  *sa = &rc->sentinels[rs.order[rs.pos]];
    const char        *argv[3];
    size_t             len[3];
    char               err[128];

    rs.named = 0;
    rs.said = 0;
    if (pst_redis_link_open(&rs.ask, sa->host, sa->port, err, sizeof(err))
        != PST_OK)
    {
        pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: cannot connect:"
                      " %s", sa->spec.data, err);
        return PST_ERROR;
    }
    (void) redisAsyncSetConnectCallback(rs.ask.ac, pst_redis_ask_connect_cb);

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "get-master-addr-by-name";
    len[1] = 23;
    argv[2] = (char *) rc->master_name.data;
    len[2] = rc->master_name.len;

    pst_event_add_timer(&rs.ask_timer, rc->sentinel_timeout);
    if (pst_redis_link_auth(&rs.ask, &rc->sentinel_user,
                            &rc->sentinel_password, pst_redis_ask_auth_cb,
                            NULL) != PST_OK
        || redisAsyncCommandArgv(rs.ask.ac, pst_redis_ask_cb, NULL, 3, argv,
                                 len) != REDIS_OK)
    {
        pst_redis_ask_close();           /* gone goes on */
    }
    return PST_OK;
}


static void
pst_redis_ask_end(void)
{
    pst_redis_conf_t  *rc = rs.conf;

    rs.asking = 0;

    if (rs.pos == rc->nsentinels) {
        rs.failures++;
        pst_log_error(rs.failures == 1 ? PST_LOG_WARN : PST_LOG_INFO, 0,
                      "redis %s: %s; state falls back to this node",
                      rc->master_name.data,
                      rs.reached == 0 ? "no sentinel reachable"
                      : rs.unknown == rs.reached
                      ? "the sentinels do not know this master name"
                      : "no sentinel named a usable master");
        rs.found(NULL, 0);
        return;
    }

    rs.failures = 0;
    if (rs.watch.ac == NULL) {
        pst_event_del_timer(&rs.watch_timer);
        pst_redis_watch_start(rs.order[0]);
    }
    rs.found(rs.host, rs.port);
}


/* After each sentinel: the answer, or the next one. */
static void
pst_redis_ask_step(pst_event_t *ev)
{
    pst_uint_t  idx;

    (void) ev;

    if (rs.named) {
        /* the one that answered goes first next time */
        idx = rs.order[rs.pos];
        memmove(&rs.order[1], &rs.order[0], rs.pos * sizeof(pst_uint_t));
        rs.order[0] = idx;
        pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: master \"%s\""
                      " is %s:%d", pst_redis_sentinel_name(idx),
                      rs.conf->master_name.data, rs.host, rs.port);
        rs.pos = 0;
        pst_redis_ask_end();
        return;
    }
    rs.pos++;
    pst_redis_sentinel_try();
}


static void
pst_redis_sentinel_try(void)
{
    while (rs.pos < rs.conf->nsentinels) {
        if (pst_redis_ask_one() == PST_OK) {
            return;
        }
        rs.pos++;
    }
    pst_redis_ask_end();
}


void
pst_redis_sentinel_ask(void)
{
    if (rs.asking || rs.exiting) {
        return;
    }
    rs.asking = 1;
    rs.pos = 0;
    rs.reached = 0;
    rs.unknown = 0;
    pst_redis_sentinel_try();
}


/* ------------------------------------------------------------------ */
/* The +switch-master subscription                                     */

static void
pst_redis_watch_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    const char  *name;
    char         host[PST_REDIS_HOST_MAX];
    int          port, rc;

    (void) ac;
    (void) privdata;

    if (reply == NULL || rs.exiting) {
        return;
    }

    name = pst_redis_sentinel_name(rs.watch_idx);
    rc = pst_redis_switch_master(reply, &rs.conf->master_name, host,
                                 sizeof(host), &port);
    if (rc == PST_ERROR) {
        pst_log_error(PST_LOG_ERR, 0, "redis sentinel %s: malformed"
                      " +switch-master message: unsubscribed", name);
        pst_redis_link_close(&rs.watch);
        return;
    }
    if (rc == PST_DECLINED) {
        if (!rs.watching) {              /* the subscribe confirmation */
            rs.watching = 1;
            rs.watch_backoff = PST_REDIS_WATCH_MIN;
            pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: watching"
                          " +switch-master", name);
        }
        return;
    }

    pst_log_error(PST_LOG_NOTICE, 0, "redis sentinel %s: +switch-master"
                  " \"%s\" to %s:%d", name, rs.conf->master_name.data, host,
                  port);
    rs.switched(host, port);
}


static void
pst_redis_watch_auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    char  err[160];

    (void) ac;
    (void) privdata;

    if (reply != NULL && pst_redis_reply_error(reply, err, sizeof(err))) {
        pst_log_error(PST_LOG_ERR, 0, "redis sentinel %s: AUTH refused: %s",
                      pst_redis_sentinel_name(rs.watch_idx), err);
        pst_redis_link_close(&rs.watch);
    }
}


static void
pst_redis_watch_retry(void)
{
    if (rs.exiting || rs.watch_timer.timer_set) {
        return;
    }
    pst_event_add_timer(&rs.watch_timer, rs.watch_backoff);
    rs.watch_backoff = pst_min(rs.watch_backoff * 2, PST_REDIS_WATCH_MAX);
}


static void
pst_redis_watch_gone(pst_redis_link_t *l)
{
    (void) l;

    if (rs.watching && !rs.exiting) {
        pst_log_error(PST_LOG_INFO, 0, "redis sentinel %s: subscription"
                      " lost%s%s", pst_redis_sentinel_name(rs.watch_idx),
                      rs.watch.errstr[0] ? ": " : "", rs.watch.errstr);
    }
    rs.watching = 0;
    pst_redis_watch_retry();
}


static void
pst_redis_watch_start(pst_uint_t idx)
{
    pst_redis_conf_t  *rc = rs.conf;
    pst_redis_addr_t  *sa = &rc->sentinels[idx];
    const char        *argv[2];
    size_t             len[2];
    char               err[128];

    rs.watch_idx = idx;
    if (pst_redis_link_open(&rs.watch, sa->host, sa->port, err, sizeof(err))
        != PST_OK)
    {
        pst_redis_watch_retry();
        return;
    }

    argv[0] = "SUBSCRIBE";
    len[0] = 9;
    argv[1] = "+switch-master";
    len[1] = 14;
    if (pst_redis_link_auth(&rs.watch, &rc->sentinel_user,
                            &rc->sentinel_password, pst_redis_watch_auth_cb,
                            NULL) != PST_OK
        || redisAsyncCommandArgv(rs.watch.ac, pst_redis_watch_cb, NULL, 2,
                                 argv, len) != REDIS_OK)
    {
        pst_redis_link_close(&rs.watch);
    }
}


/* The subscription went: try the sentinels in turn, the one that last
 * answered first. */
static void
pst_redis_watch_again(pst_event_t *ev)
{
    (void) ev;

    if (rs.watch.ac != NULL) {
        return;
    }
    pst_redis_watch_start(rs.order[rs.watch_next % rs.conf->nsentinels]);
    rs.watch_next++;
}


/* ------------------------------------------------------------------ */

void
pst_redis_sentinel_init(pst_redis_conf_t *conf, pst_redis_found_pt found,
    pst_redis_switched_pt switched)
{
    pst_uint_t  i;

    memset(&rs, 0, sizeof(rs));
    rs.conf = conf;
    rs.found = found;
    rs.switched = switched;
    for (i = 0; i < conf->nsentinels; i++) {
        rs.order[i] = i;
    }
    rs.ask.gone = pst_redis_ask_gone;
    rs.ask_timer.handler = pst_redis_ask_timeout;
    rs.ask_next.handler = pst_redis_ask_step;
    rs.watch.gone = pst_redis_watch_gone;
    rs.watch_timer.handler = pst_redis_watch_again;
    rs.watch_backoff = PST_REDIS_WATCH_MIN;
}


void
pst_redis_sentinel_done(void)
{
    if (rs.conf == NULL) {
        return;
    }
    rs.exiting = 1;
    pst_event_del_timer(&rs.ask_timer);
    pst_event_del_timer(&rs.watch_timer);
    if (rs.ask_next.posted) {
        pst_delete_posted_event(&rs.ask_next);
    }
    pst_redis_link_close(&rs.ask);
    pst_redis_link_close(&rs.watch);
    rs.conf = NULL;
}
