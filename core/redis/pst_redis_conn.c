/*
 * pst_redis_conn.c -- this process's connection to Redis, on its event
 * loop: a link (pst_redis_link.c, hiredis's async context watched by
 * epoll), the handshake (AUTH, ROLE with Sentinel, SELECT, SCRIPT LOAD,
 * PING), commands with a timer each, EVALSHA with EVAL after NOSCRIPT,
 * and reconnection with back-off.
 *
 * Ownership of a command: hiredis holds it (privdata) from the send to
 * its reply callback, which always comes -- with the reply, or with
 * NULL when the context goes away -- and frees it.  The module's
 * handler runs once before that: with the reply, at its timeout, or
 * with DOWN; after a timeout or pst_redis_cancel() the command only
 * waits for hiredis to let it go ("live" is 0).
 *
 * The only signal that the connection is gone is the link's gone
 * callback (a refused connect, an error, and our own close alike): it
 * schedules the next attempt.  Nothing here blocks: the connect is
 * non-blocking (to an address, never a name), and a server that
 * accepts but does not answer is given up after redis_connect_timeout,
 * or, once connected, when nothing came back for ten command timeouts
 * (at least 1 s) while commands waited.
 *
 * With redis_sentinel every attempt starts by asking the sentinels
 * where the master is (pst_redis_sentinel.c); the instance must then
 * say ROLE master, or the attempt fails and the next asks again.  A
 * READONLY reply (the server was made a replica under us) and a
 * +switch-master from the sentinels drop the connection: the next
 * attempt finds the new master, at once for the latter.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"
#include "pst_redis.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#define PST_REDIS_BACKOFF_MIN    100
#define PST_REDIS_BACKOFF_MAX    5000
#define PST_REDIS_STUCK_MIN      1000

typedef enum {
    PST_REDIS_S_DOWN = 0,
    PST_REDIS_S_CONNECTING,          /* connect and handshake */
    PST_REDIS_S_READY
} pst_redis_state_e;

/* handshake steps, the privdata of their callbacks */
enum {
    PST_REDIS_H_AUTH = 1,
    PST_REDIS_H_ROLE,
    PST_REDIS_H_SELECT,
    PST_REDIS_H_SCRIPT,
    PST_REDIS_H_PING
};

struct pst_redis_cmd_s {
    pst_redis_pt                 handler;
    void                        *data;
    const pst_redis_script_t    *script;
    pst_event_t                  timer;
    pst_list_t                   link;       /* rd.cmds while live */
    int                          argc;
    const char                 **argv;       /* in this allocation */
    size_t                      *argvlen;
    char                         nkeys[12];  /* EVAL's key count */
    unsigned                     live:1;     /* handler not run yet */
    unsigned                     retried:1;  /* EVAL after NOSCRIPT */
};

static struct {
    pst_redis_conf_t            *conf;
    pst_redis_link_t             link;
    pst_redis_state_e            state;
    pst_event_t                  retry;
    pst_event_t                  connect_timer;
    pst_event_t                  stuck_timer;
    pst_msec_t                   backoff;
    pst_uint_t                   pending;    /* callbacks hiredis holds */
    pst_msec_t                   waiting_since;
    pst_list_t                   cmds;
    pst_uint_t                   failures;   /* attempts since the last
                                                ready connection */
    pst_msec_t                   error_logged;
    char                         host[PST_REDIS_HOST_MAX];
    int                          port;       /* of the attempt */
    char                         name[PST_REDIS_HOST_MAX + 160];
    unsigned                     exiting:1;
    unsigned                     up:1;       /* ready, and not given up
                                                by us (which logs why) */
    unsigned                     now:1;      /* next attempt without
                                                waiting */
} rd;


static void pst_redis_connect(void);
static void pst_redis_stuck(pst_event_t *ev);


static void
pst_redis_schedule(void)
{
    if (rd.exiting || rd.retry.timer_set) {
        return;
    }
    if (rd.now) {
        rd.now = 0;
        pst_event_add_timer(&rd.retry, 0);
        return;
    }
    pst_event_add_timer(&rd.retry, rd.backoff);
    rd.backoff = pst_min(rd.backoff * 2, PST_REDIS_BACKOFF_MAX);
}


/* The name in the log: redis_server as written, or with Sentinel the
 * master's name and, once known, its address ("mymaster@ADDR:PORT"). */
static void
pst_redis_set_name(const char *host, int port)
{
    pst_redis_conf_t  *rc = rd.conf;
    char               addr[PST_REDIS_HOST_MAX + 16];

    if (rc->nsentinels == 0) {
        snprintf(rd.name, sizeof(rd.name), "%s", rc->server.data);
        return;
    }
    if (host == NULL) {
        snprintf(rd.name, sizeof(rd.name), "%s", rc->master_name.data);
        return;
    }
    pst_redis_addr_text(addr, sizeof(addr), host, port);
    snprintf(rd.name, sizeof(rd.name), "%s@%s", rc->master_name.data, addr);
}


/* The link is gone (refused, lost, or closed by us). */
static void
pst_redis_gone(pst_redis_link_t *l)
{
    (void) l;

    if (rd.up && !rd.exiting) {
        pst_log_error(PST_LOG_WARN, 0, "redis %s: connection lost%s%s;"
                      " state falls back to this node", rd.name,
                      rd.link.errstr[0] ? ": " : "", rd.link.errstr);
    }
    rd.up = 0;
    rd.state = PST_REDIS_S_DOWN;
    pst_event_del_timer(&rd.connect_timer);
    pst_event_del_timer(&rd.stuck_timer);
    pst_redis_schedule();
}


/* Give the connection up now; inside a hiredis callback the free comes
 * when the callback returns. */
static void
pst_redis_drop(void)
{
    rd.state = PST_REDIS_S_DOWN;
    rd.up = 0;
    pst_redis_link_close(&rd.link);
}


/* ------------------------------------------------------------------ */
/* Connect and handshake                                               */

static void
pst_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK) {
        return;
    }
    rd.failures++;
    pst_log_error(rd.failures == 1 ? PST_LOG_WARN : PST_LOG_INFO, 0,
                  "redis %s: cannot connect: %s (next try in %lu ms)",
                  rd.name, ac->errstr, (unsigned long) rd.backoff);
}


static void
pst_redis_ready_now(void)
{
    pst_event_del_timer(&rd.connect_timer);
    rd.state = PST_REDIS_S_READY;
    rd.up = 1;
    rd.backoff = PST_REDIS_BACKOFF_MIN;
    rd.waiting_since = pst_current_time_msec;
    pst_log_error(rd.failures ? PST_LOG_NOTICE : PST_LOG_INFO, 0,
                  "redis %s: connected", rd.name);
    rd.failures = 0;
}


static void
pst_redis_handshake_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    static const char  *steps[] = { "", "AUTH", "ROLE", "SELECT",
                                    "SCRIPT LOAD", "PING" };
    intptr_t            step = (intptr_t) privdata;
    char                err[160];

    (void) ac;

    if (reply == NULL || rd.state != PST_REDIS_S_CONNECTING) {
        return;                          /* going away: cleanup follows */
    }

    if (pst_redis_reply_error(reply, err, sizeof(err))) {
        rd.failures++;
        pst_log_error(PST_LOG_ERR, 0, "redis %s: %s refused: %s",
                      rd.name, steps[step], err);
        pst_redis_drop();
        return;
    }

    /* a stale sentinel, or a failover since it answered: ask again */
    if (step == PST_REDIS_H_ROLE && !pst_redis_role_master(reply, err, 32)) {
        rd.failures++;
        pst_log_error(PST_LOG_WARN, 0, "redis %s: the sentinels' master"
                      " says ROLE %s: asking again in %lu ms", rd.name, err,
                      (unsigned long) rd.backoff);
        pst_redis_drop();
        return;
    }

    if (step == PST_REDIS_H_PING) {
        pst_redis_ready_now();
    }
}


static int
pst_redis_handshake_cmd(intptr_t step, int argc, const char **argv,
    const size_t *len)
{
    return redisAsyncCommandArgv(rd.link.ac, pst_redis_handshake_cb,
                                 (void *) step, argc, argv, len);
}


/* Queued at once, sent when the connect completes, answered in order. */
static int
pst_redis_handshake(void)
{
    pst_redis_conf_t     *rc = rd.conf;
    pst_redis_script_t  **sc;
    const char           *argv[3];
    size_t                len[3];
    char                  db[24];
    pst_uint_t            i;
    int                   rv = REDIS_OK;

    if (pst_redis_link_auth(&rd.link, &rc->user, &rc->password,
                            pst_redis_handshake_cb,
                            (void *) PST_REDIS_H_AUTH) != PST_OK)
    {
        return PST_ERROR;
    }

    if (rc->nsentinels > 0) {
        argv[0] = "ROLE";
        len[0] = 4;
        rv |= pst_redis_handshake_cmd(PST_REDIS_H_ROLE, 1, argv, len);
    }

    if (rc->database > 0) {
        argv[0] = "SELECT";
        len[0] = 6;
        len[1] = (size_t) snprintf(db, sizeof(db), "%ld",
                                   (long) rc->database);
        argv[1] = db;
        rv |= pst_redis_handshake_cmd(PST_REDIS_H_SELECT, 2, argv, len);
    }

    /* the scripts once per connection; EVALSHA covers a flush later */
    sc = rc->scripts->elts;
    for (i = 0; i < rc->scripts->nelts; i++) {
        argv[0] = "SCRIPT";
        len[0] = 6;
        argv[1] = "LOAD";
        len[1] = 4;
        argv[2] = (char *) sc[i]->body.data;
        len[2] = sc[i]->body.len;
        rv |= pst_redis_handshake_cmd(PST_REDIS_H_SCRIPT, 3, argv, len);
    }

    argv[0] = "PING";
    len[0] = 4;
    rv |= pst_redis_handshake_cmd(PST_REDIS_H_PING, 1, argv, len);

    return rv == REDIS_OK ? PST_OK : PST_ERROR;
}


static void
pst_redis_connect_timeout(pst_event_t *ev)
{
    (void) ev;

    rd.failures++;
    pst_log_error(rd.failures == 1 ? PST_LOG_WARN : PST_LOG_INFO, 0,
                  "redis %s: no answer within redis_connect_timeout"
                  " (next try in %lu ms)", rd.name,
                  (unsigned long) rd.backoff);
    pst_redis_drop();
}


static void
pst_redis_retry(pst_event_t *ev)
{
    (void) ev;
    pst_redis_connect();
}


/* Connect to the server at host:port (redis_server's, or the master
 * the sentinels named) and start the handshake. */
static void
pst_redis_open(const char *host, int port)
{
    char  err[128];

    rd.state = PST_REDIS_S_CONNECTING;
    snprintf(rd.host, sizeof(rd.host), "%s", host);
    rd.port = port;
    pst_redis_set_name(host, port);

    if (pst_redis_link_open(&rd.link, host, port, err, sizeof(err))
        != PST_OK)
    {
        rd.state = PST_REDIS_S_DOWN;
        rd.failures++;
        pst_log_error(rd.failures == 1 ? PST_LOG_WARN : PST_LOG_INFO, 0,
                      "redis %s: cannot connect: %s (next try in %lu ms)",
                      rd.name, err, (unsigned long) rd.backoff);
        pst_redis_schedule();
        return;
    }

    (void) redisAsyncSetConnectCallback(rd.link.ac, pst_redis_on_connect);
    pst_event_add_timer(&rd.connect_timer, rd.conf->connect_timeout);

    if (pst_redis_handshake() != PST_OK) {
        pst_redis_drop();
    }
}


/* The end of a discovery: the master's address, or NULL (the sentinel
 * layer said why). */
static void
pst_redis_found(const char *host, int port)
{
    if (rd.exiting) {
        return;
    }
    if (host == NULL) {
        rd.state = PST_REDIS_S_DOWN;
        rd.failures++;
        pst_redis_schedule();
        return;
    }
    pst_redis_open(host, port);
}


/* The sentinels announced a new master for our name: leave the old one
 * now and ask them again at once, as a lost connection would (the
 * push alone is not trusted: the discovery and ROLE decide). */
static void
pst_redis_switched(const char *host, int port)
{
    if (rd.exiting
        || (rd.state != PST_REDIS_S_DOWN && rd.link.ac != NULL
            && rd.port == port && strcmp(rd.host, host) == 0))
    {
        return;                          /* there already */
    }

    rd.backoff = PST_REDIS_BACKOFF_MIN;
    rd.now = 1;
    if (rd.link.ac != NULL) {
        pst_log_error(PST_LOG_NOTICE, 0, "redis %s: the sentinels moved"
                      " the master: reconnecting", rd.name);
        pst_redis_drop();                /* gone schedules at once */
    } else if (rd.retry.timer_set) {
        pst_event_del_timer(&rd.retry);
        pst_redis_schedule();
    }
}


static void
pst_redis_connect(void)
{
    pst_redis_conf_t  *rc = rd.conf;

    if (rc->nsentinels == 0) {
        pst_redis_open(rc->host, rc->port);
        return;
    }

    /* every attempt asks the sentinels first */
    rd.state = PST_REDIS_S_CONNECTING;
    pst_redis_set_name(NULL, 0);
    pst_redis_sentinel_ask();
}


int
pst_redis_conn_init(pst_redis_conf_t *conf)
{
    memset(&rd, 0, sizeof(rd));
    rd.conf = conf;
    rd.backoff = PST_REDIS_BACKOFF_MIN;
    pst_list_init(&rd.cmds);
    rd.link.gone = pst_redis_gone;
    rd.retry.handler = pst_redis_retry;
    rd.connect_timer.handler = pst_redis_connect_timeout;
    rd.stuck_timer.handler = pst_redis_stuck;
    pst_redis_set_name(NULL, 0);

    if (conf->nsentinels > 0) {
        pst_redis_sentinel_init(conf, pst_redis_found, pst_redis_switched);
    }
    pst_redis_connect();
    return PST_OK;
}


void
pst_redis_conn_done(void)
{
    pst_redis_cmd_t  *cmd;
    pst_list_t       *l;

    if (rd.conf == NULL) {
        return;
    }

    /* the process is going: no handler runs any more */
    rd.exiting = 1;
    while (!pst_list_empty(&rd.cmds)) {
        l = pst_list_head(&rd.cmds);
        cmd = pst_list_data(l, pst_redis_cmd_t, link);
        pst_redis_cancel(cmd);
    }

    if (rd.conf->nsentinels > 0) {
        pst_redis_sentinel_done();
    }
    pst_event_del_timer(&rd.retry);
    pst_event_del_timer(&rd.connect_timer);
    pst_event_del_timer(&rd.stuck_timer);
    pst_redis_drop();
    rd.conf = NULL;
}


/* ------------------------------------------------------------------ */
/* Commands                                                            */

int
pst_redis_ready(void)
{
    return rd.conf != NULL && rd.state == PST_REDIS_S_READY
           && rd.pending < (pst_uint_t) rd.conf->max_pending;
}


static void
pst_redis_deliver(pst_redis_cmd_t *cmd, pst_redis_status_e status,
    const pst_redis_reply_t *reply)
{
    cmd->live = 0;
    pst_event_del_timer(&cmd->timer);
    pst_list_remove(&cmd->link);
    cmd->handler(cmd->data, status, reply);
}


static int
pst_redis_send(pst_redis_cmd_t *cmd);


/* A script that fails (an ACL without a command it calls, a Redis too
 * old) fails for every event: said at most once a minute. */
static void
pst_redis_log_error(pst_redis_cmd_t *cmd, const pst_redis_reply_t *reply)
{
    char  err[200];

    if (cmd->script == NULL || !pst_redis_reply_error(reply, err, sizeof(err))
        || (rd.error_logged != 0
            && pst_current_time_msec - rd.error_logged < 60000))
    {
        return;
    }
    rd.error_logged = pst_current_time_msec;
    pst_log_error(PST_LOG_ERR, 0, "redis %s: script %.12s failed: %s (said"
                  " once a minute)", rd.name, cmd->script->sha,
                  err);
}


static void
pst_redis_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    pst_redis_cmd_t           *cmd = privdata;
    const pst_redis_script_t  *sc = cmd->script;

    (void) ac;
    rd.pending--;

    if (reply == NULL) {
        rd.state = PST_REDIS_S_DOWN;     /* the context is going away */
        if (cmd->live) {
            pst_redis_deliver(cmd, PST_REDIS_DOWN, NULL);
        }
        free(cmd);
        return;
    }

    rd.waiting_since = pst_current_time_msec;

    if (cmd->live && sc != NULL && !cmd->retried
        && pst_redis_reply_noscript(reply))
    {
        /* flushed, or another server behind the address: EVAL loads it */
        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = 4;
        cmd->argv[1] = (char *) sc->body.data;
        cmd->argvlen[1] = sc->body.len;
        if (pst_redis_send(cmd) == PST_OK) {
            return;
        }
        pst_redis_deliver(cmd, PST_REDIS_DOWN, NULL);
    }

    if (rd.conf->nsentinels > 0 && rd.state == PST_REDIS_S_READY
        && pst_redis_reply_readonly(reply))
    {
        /* made a replica under us (no CLIENT KILL came): the sentinels
         * know the master now */
        pst_log_error(PST_LOG_WARN, 0, "redis %s: READONLY: no longer the"
                      " master, asking the sentinels again", rd.name);
        pst_redis_drop();
    }

    if (cmd->live) {
        pst_redis_log_error(cmd, reply);
        pst_redis_deliver(cmd, PST_REDIS_OK, reply);
    }
    free(cmd);
}


static int
pst_redis_send(pst_redis_cmd_t *cmd)
{
    if (rd.link.ac == NULL
        || redisAsyncCommandArgv(rd.link.ac, pst_redis_reply_cb, cmd,
                                 cmd->argc, cmd->argv, cmd->argvlen)
           != REDIS_OK)
    {
        return PST_ERROR;
    }

    if (rd.pending++ == 0) {
        rd.waiting_since = pst_current_time_msec;
    }
    if (!rd.stuck_timer.timer_set) {
        pst_event_add_timer(&rd.stuck_timer,
                            pst_max(rd.conf->timeout * 10,
                                    PST_REDIS_STUCK_MIN));
    }
    return PST_OK;
}


/* Armed while commands wait: nothing came back for too long, the
 * server is gone without a reset (a dead host, a stopped process). */
static void
pst_redis_stuck(pst_event_t *ev)
{
    pst_msec_t  limit, quiet;

    (void) ev;

    if (rd.state != PST_REDIS_S_READY || rd.pending == 0) {
        return;                      /* re-armed by the next send */
    }

    limit = pst_max(rd.conf->timeout * 10, PST_REDIS_STUCK_MIN);
    quiet = pst_current_time_msec - rd.waiting_since;
    if (quiet < limit) {
        pst_event_add_timer(&rd.stuck_timer, limit - quiet);
        return;
    }

    pst_log_error(PST_LOG_WARN, 0, "redis %s: no reply for %lu ms:"
                  " reconnecting", rd.name,
                  (unsigned long) quiet);
    rd.failures++;
    pst_redis_drop();
}


static void
pst_redis_cmd_timeout(pst_event_t *ev)
{
    pst_redis_cmd_t  *cmd = ev->data;

    /* hiredis still holds it: freed when its reply or the end comes */
    pst_redis_deliver(cmd, PST_REDIS_TIMEOUT, NULL);
}


/* One allocation: the command, argv and lengths (head slots first),
 * then a copy of every argument. */
static pst_redis_cmd_t *
pst_redis_cmd_alloc(int head, int argc, const char **argv,
    const size_t *argvlen)
{
    pst_redis_cmd_t  *cmd;
    size_t            size;
    u_char           *p;
    int               i, n = head + argc;

    size = sizeof(pst_redis_cmd_t) + (size_t) n * (sizeof(char *)
                                                   + sizeof(size_t));
    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    cmd = calloc(1, size);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->argc = n;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + n);
    p = (u_char *) (cmd->argvlen + n);

    for (i = 0; i < argc; i++) {
        memcpy(p, argv[i], argvlen[i]);
        cmd->argv[head + i] = (char *) p;
        cmd->argvlen[head + i] = argvlen[i];
        p += argvlen[i];
    }

    return cmd;
}


static pst_redis_cmd_t *
pst_redis_start(pst_redis_cmd_t *cmd, pst_msec_t timeout,
    pst_redis_pt handler, void *data)
{
    cmd->handler = handler;
    cmd->data = data;

    if (pst_redis_send(cmd) != PST_OK) {
        free(cmd);
        return NULL;
    }

    cmd->live = 1;
    cmd->timer.data = cmd;
    cmd->timer.handler = pst_redis_cmd_timeout;
    pst_event_add_timer(&cmd->timer, timeout ? timeout : rd.conf->timeout);
    pst_list_insert_tail(&rd.cmds, &cmd->link);
    return cmd;
}


pst_redis_cmd_t *
pst_redis_command(pst_msec_t timeout, pst_redis_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen)
{
    pst_redis_cmd_t  *cmd;

    if (!pst_redis_ready() || handler == NULL || argc < 1) {
        return NULL;
    }

    cmd = pst_redis_cmd_alloc(0, argc, argv, argvlen);
    if (cmd == NULL) {
        return NULL;
    }
    return pst_redis_start(cmd, timeout, handler, data);
}


pst_redis_cmd_t *
pst_redis_eval(const pst_redis_script_t *script, pst_msec_t timeout,
    pst_redis_pt handler, void *data, int nkeys, int argc,
    const char **argv, const size_t *argvlen)
{
    pst_redis_cmd_t  *cmd;

    if (!pst_redis_ready() || handler == NULL || script == NULL
        || nkeys < 0 || nkeys > argc)
    {
        return NULL;
    }

    cmd = pst_redis_cmd_alloc(3, argc, argv, argvlen);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->script = script;
    cmd->argv[0] = "EVALSHA";
    cmd->argvlen[0] = 7;
    cmd->argv[1] = script->sha;
    cmd->argvlen[1] = 40;
    cmd->argvlen[2] = (size_t) snprintf(cmd->nkeys, sizeof(cmd->nkeys), "%d",
                                        nkeys);
    cmd->argv[2] = cmd->nkeys;

    return pst_redis_start(cmd, timeout, handler, data);
}


void
pst_redis_cancel(pst_redis_cmd_t *cmd)
{
    if (cmd == NULL || !cmd->live) {
        return;
    }
    cmd->live = 0;
    pst_event_del_timer(&cmd->timer);
    pst_list_remove(&cmd->link);
}
