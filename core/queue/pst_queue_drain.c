/*
 * pst_queue_drain.c -- a node hands its queue to another node:
 * `postern queue drain --to ADDR:PORT` and `drain_on_quit ADDR:PORT;`
 * (docs/SCALING.md, "Draining a node").
 *
 * A drain is one pass over the messages the engine knows when it
 * starts.  Each becomes a node transfer: an attempt (pst_queue_run.c,
 * pst_deliver.c) whose one hop is the other node, for every recipient
 * still to deliver, that sends the node facts (XPOSTERN) and whose
 * outcome is "moved" or "untouched": a recipient the other node took
 * with a 2xx after the message is final here without any DSN (the
 * responsibility moved with it); anything else -- a refusal, a
 * timeout, a node that is down or does not offer XPOSTERN -- leaves the
 * recipient exactly as it was (no attempt counted, no bounce).  A
 * message whose every recipient is final is removed by the engine's
 * usual finish.  While a pass runs the engine starts no delivery
 * attempt; a message in one when the pass reaches it is transferred
 * after it.  The first transfer that finds the node dead or unwilling
 * ends the pass: what did not go stays queued.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_sched.h"
#include "pst_queue.h"
#include "pst_queue_int.h"
#include "pst_control.h"
#include "pst_process.h"

#define PST_QDRAIN_WINDOW   8       /* transfers at once */

typedef struct {
    pst_sockaddr_t      peer;
    socklen_t           peer_len;
    char                target[80];     /* "ADDR:PORT" */
    char                host[64];       /* ADDR, the hop's name */
    pst_qdest_t        *dest;           /* "drain:ADDR:PORT", its own */
    u_char            (*ids)[PST_QUEUE_ID_LEN + 1];
    pst_uint_t          n, next, running, waiting;
    pst_uint_t          moved, partial, rcpts;
    time_t              started, ended;
    char                why[256];       /* why the pass stopped */
    unsigned            active:1;
    unsigned            stop:1;
    unsigned            quit:1;
    unsigned            ran:1;          /* a pass ran since the start */
} pst_qdrain_t;

static pst_qdrain_t  dr;


static int pst_qdrain_start(const char *target, const pst_sockaddr_t *sa,
    socklen_t len, int quit, char *err, size_t size);
static void pst_qdrain_collect(pst_qmsg_t *msg, void *data);
static void pst_qdrain_pump(void);
static int pst_qdrain_take(pst_qmsg_t *msg);
static void pst_qdrain_end(void);
static void pst_qdrain_clear(pst_qmsg_t *msg, void *data);
static void pst_qdrain_outcome(pst_qjob_t *job, pst_dlv_rcpt_t *o,
    time_t now);
static int pst_qdrain_status(pst_buf_t *out, int json);
static int pst_qdrain_reload(void);


/* "ADDR:PORT" (an address, not a name: the queue process never blocks
 * on a lookup); "[v6]:PORT". */
static int
pst_qdrain_parse(const char *spec, pst_sockaddr_t *sa, socklen_t *len)
{
    pst_str_t  s;

    s.data = (u_char *) spec;
    s.len = strlen(spec);
    if (s.len == 0 || strrchr(spec, ':') == NULL || spec[0] == '*'
        || pst_listening_parse(NULL, &s, sa, len) != PST_OK)
    {
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_qdrain_control(int argc, char **argv, pst_buf_t *out)
{
    pst_sockaddr_t  sa;
    socklen_t       len;
    char            text[400];
    int             n, json;

    json = pst_spool_json_arg(&argc, argv);

    if (argc == 1) {
        return pst_qdrain_status(out, json);
    }
    if (argc != 3 || strcmp(argv[1], "--to") != 0) {
        n = snprintf(text, sizeof(text), "postern queue drain [--to"
                     " ADDR:PORT] [--json]\n");
        (void) pst_buf_append(out, text, (size_t) n, PST_CONTROL_ANSWER_MAX);
        return PST_QUEUE_CONTROL_USAGE;
    }

    if (pst_qdrain_parse(argv[2], &sa, &len) != PST_OK) {
        n = snprintf(text, sizeof(text), "\"%.64s\" is not ADDR:PORT (an"
                     " IP address and a port)\n", argv[2]);
    } else if (pst_route_own_addr(&sa.sa)) {
        n = snprintf(text, sizeof(text), "%.64s is this node\n", argv[2]);
    } else if (pst_qdrain_start(argv[2], &sa, len, 0, text, sizeof(text))
               == PST_OK)
    {
        n = pst_spool_json_count(text, sizeof(text), "drain", dr.target,
                                 (unsigned long) dr.n, json);
        (void) pst_buf_append(out, text, (size_t) pst_min((size_t) n,
                              sizeof(text) - 1), PST_CONTROL_ANSWER_MAX);
        return PST_QUEUE_CONTROL_OK;
    } else {
        n = (int) strlen(text);
    }
    (void) pst_buf_append(out, text, (size_t) n, PST_CONTROL_ANSWER_MAX);
    return PST_QUEUE_CONTROL_FAILED;
}


int
pst_qdrain_on_quit(void)
{
    const pst_queue_conf_t  *conf = pst_q.conf;
    char                     err[256];

    if (conf == NULL || conf->drain_on_quit.len == 0 || dr.active
        || pst_qdrain_reload())
    {
        return 0;
    }
    if (pst_q.loading) {
        /* every message must be known first: the scan goes on, and
         * its end starts the drain (worker_shutdown_timeout bounds
         * both) */
        pst_q.drain_after_load = 1;
        pst_log_error(PST_LOG_INFO, 0, "queue: drain_on_quit: after the"
                      " spool scan");
        return 1;
    }
    if (pst_qdrain_start((char *) conf->drain_on_quit.data,
                         &conf->drain_sa, conf->drain_len, 1, err,
                         sizeof(err)) != PST_OK)
    {
        pst_log_error(PST_LOG_ERR, 0, "queue: drain_on_quit: %s", err);
        return 0;
    }
    return 1;
}


/* 1 when this QUIT is a reload's (a newer generation runs): the queue
 * stays for the next queue process. */
static int
pst_qdrain_reload(void)
{
    pst_proc_status_t  st;
    pid_t              me = getpid();
    int                i;

    if (pst_process_status(&st) != PST_OK) {
        return 0;
    }
    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (st.procs[i].pid == me && st.procs[i].generation != st.generation)
        {
            pst_log_error(PST_LOG_INFO, 0, "queue: a reload: no"
                          " drain_on_quit");
            return 1;
        }
    }
    return 0;
}


static int
pst_qdrain_start(const char *target, const pst_sockaddr_t *sa,
    socklen_t len, int quit, char *err, size_t size)
{
    const char  *colon;
    size_t       k;

    if (dr.active) {
        snprintf(err, size, "a drain to %s is running\n", dr.target);
        return PST_ERROR;
    }
    if (pst_q.loading) {
        snprintf(err, size, "the engine is still reading the spool after"
                 " its start: try again\n");
        return PST_ERROR;
    }

    free(dr.ids);
    free(dr.dest);
    memset(&dr, 0, sizeof(dr));
    dr.ran = 1;
    dr.peer = *sa;
    dr.peer_len = len;
    snprintf(dr.target, sizeof(dr.target), "%s", target);
    colon = strrchr(target, ':');
    k = (size_t) (colon - target);
    if (target[0] == '[' && k >= 2) {
        target++;
        k -= 2;
    }
    snprintf(dr.host, sizeof(dr.host), "%.*s", (int) k, target);

    dr.dest = calloc(1, sizeof(pst_qdest_t) + 80);
    dr.ids = malloc(pst_max(pst_q.nmsgs, 1) * sizeof(*dr.ids));
    if (dr.dest == NULL || dr.ids == NULL) {
        snprintf(err, size, "out of memory\n");
        return PST_ERROR;
    }
    dr.dest->name.data = (u_char *) (dr.dest + 1);
    dr.dest->name.len = (size_t) snprintf((char *) dr.dest->name.data, 80,
                                          "drain:%s", dr.target);

    pst_queue_each(pst_qdrain_collect, NULL);

    dr.active = 1;
    dr.quit = quit ? 1 : 0;
    dr.started = time(NULL);
    pst_q.draining = 1;
    pst_log_error(PST_LOG_NOTICE, 0, "queue: drain to %s%s: %lu"
                  " message(s)", dr.target, quit ? " (drain_on_quit)" : "",
                  (unsigned long) dr.n);
    pst_qdrain_pump();
    return PST_OK;
}


static void
pst_qdrain_collect(pst_qmsg_t *msg, void *data)
{
    (void) data;

    if (!msg->deleted && !msg->gone && dr.n < pst_q.nmsgs) {
        memcpy(dr.ids[dr.n++], msg->id, PST_QUEUE_ID_LEN + 1);
    }
}


/* Start transfers while the window allows; end the pass when done. */
static void
pst_qdrain_pump(void)
{
    pst_qmsg_t  *msg;

    while (dr.active && !dr.stop && dr.running < PST_QDRAIN_WINDOW
           && dr.next < dr.n)
    {
        msg = pst_queue_find(dr.ids[dr.next++]);
        if (msg == NULL || msg->deleted || msg->gone) {
            continue;
        }
        if (msg->jobs > 0) {
            msg->drain_wait = 1;        /* after its attempt */
            dr.waiting++;
            continue;
        }
        (void) pst_qdrain_take(msg);
    }

    if (dr.active && dr.running == 0
        && (dr.stop || (dr.next == dr.n && dr.waiting == 0)))
    {
        pst_qdrain_end();
    }
}


/* One transfer: every recipient of msg still to deliver.  1 when it
 * started. */
static int
pst_qdrain_take(pst_qmsg_t *msg)
{
    pst_qjob_t   *job;
    pst_qrcpt_t  *r = msg->rcpts;
    pst_uint_t    i, j, k = 0;

    for (i = 0; i < msg->nrcpts; i++) {
        k += (r[i].state == PST_RCPT_PENDING
              || r[i].state == PST_RCPT_DEFERRED)
             && !(r[i].flags & PST_QR_BUSY);
    }
    job = k ? calloc(1, sizeof(pst_qjob_t) + k * sizeof(pst_dlv_rcpt_t))
            : NULL;
    if (job == NULL) {
        return 0;
    }

    /* out of the destinations' lists: the transfer takes them all */
    for (i = 0; i < msg->nrcpts; i++) {
        if (r[i].flags & PST_QR_QUEUED) {
            pst_sched_unlink(&pst_q.sched, r[i].dest, msg);
            for (j = 0; j < msg->nrcpts; j++) {
                if (r[j].dest == r[i].dest) {
                    r[j].flags &= ~PST_QR_QUEUED;
                }
            }
        }
    }

    job->msg = msg;
    job->dest = dr.dest;
    job->drain = 1;
    job->dj.rcpts = job->rcpts;
    job->dj.nrcpts = k;
    job->dj.peer = &dr.peer.sa;
    job->dj.peer_len = dr.peer_len;
    job->dj.peer_name = dr.host;
    for (i = 0, j = 0; i < msg->nrcpts; i++) {
        if ((r[i].state == PST_RCPT_PENDING
             || r[i].state == PST_RCPT_DEFERRED)
            && !(r[i].flags & PST_QR_BUSY))
        {
            r[i].flags |= PST_QR_BUSY;
            job->rcpts[j++].index = i;
        }
    }
    pst_queue_reschedule(msg);
    dr.running++;
    pst_queue_job_run(job);
    return 1;
}


void
pst_qdrain_done(pst_qjob_t *job)
{
    pst_dlv_job_t  *dj = &job->dj;
    pst_uint_t      i, moved = 0;
    time_t          now = time(NULL);

    for (i = 0; i < dj->nrcpts; i++) {
        pst_qdrain_outcome(job, &dj->rcpts[i], now);
        moved += dj->rcpts[i].state == PST_RCPT_DELIVERED;
    }

    dr.rcpts += moved;
    if (moved == dj->nrcpts) {
        dr.moved++;
    } else if (moved > 0) {
        dr.partial++;
    }
    if (dj->dest_failed && !dr.stop) {
        dr.stop = 1;
        snprintf(dr.why, sizeof(dr.why), "%.200s", dj->rcpts[0].reply);
    }

    /* moved recipients are made final by the usual finish; a transfer
     * that moved nothing changed nothing to write */
    pst_queue_job_end(job, moved > 0, !dj->dest_failed, dj->dest_failed);
}


static void
pst_qdrain_outcome(pst_qjob_t *job, pst_dlv_rcpt_t *o, time_t now)
{
    pst_qmsg_t      *msg = job->msg;
    pst_qopen_t     *op = msg->open;
    pst_env_rcpt_t  *r = (pst_env_rcpt_t *) op->m.env.rcpts->elts + o->index;
    pst_qrcpt_t     *q = &msg->rcpts[o->index];
    char             text[600];
    size_t           n;

    q->flags &= ~(PST_QR_BUSY | PST_QR_FLUSH);
    o->reply[sizeof(o->reply) - 1] = '\0';

    if (o->state != PST_RCPT_DELIVERED) {
        o->state = PST_RCPT_PENDING;            /* untouched */
        pst_log_error(PST_LOG_INFO, 0, "%s: to=<%.*s>, drain=%s, status=kept"
                      " (%s)", msg->id, (int) r->addr.len, r->addr.data,
                      dr.target, o->reply);
        return;
    }

    /* final here, no DSN from us: the other node owns it now */
    r->state = PST_RCPT_DELIVERED;
    q->state = PST_RCPT_DELIVERED;
    r->next_try = 0;
    r->last_try = now;
    n = (size_t) snprintf(text, sizeof(text), "moved to node %s: %s",
                          dr.target, o->reply);
    r->reply.data = pst_palloc(op->pool, n + 1);
    r->reply.len = r->reply.data != NULL ? n : 0;
    if (r->reply.data != NULL) {
        memcpy(r->reply.data, text, n + 1);
    }
    n = strlen(job->dj.remote);
    r->remote.data = pst_palloc(op->pool, n + 1);
    r->remote.len = r->remote.data != NULL ? n : 0;
    if (r->remote.data != NULL) {
        memcpy(r->remote.data, job->dj.remote, n + 1);
    }
    pst_log_error(PST_LOG_INFO, 0, "%s: to=<%.*s>, relay=%s, dsn=2.0.0,"
                  " status=moved (%s)", msg->id, (int) r->addr.len,
                  r->addr.data, job->dj.remote[0] ? job->dj.remote
                  : dr.target, o->reply);
}


void
pst_qdrain_job_ended(pst_qmsg_t *msg, int drain, int dest_failed)
{
    (void) dest_failed;

    if (drain) {
        dr.running--;
    } else if (msg->drain_wait && msg->jobs == 0) {
        msg->drain_wait = 0;
        dr.waiting--;
        if (dr.active && !dr.stop) {
            (void) pst_qdrain_take(msg);
        }
    }
    pst_qdrain_pump();
}


void
pst_qdrain_cancel(void)
{
    if (dr.active && !dr.stop) {
        dr.stop = 1;
        snprintf(dr.why, sizeof(dr.why), "the engine stopped (%s)",
                 dr.quit ? "worker_shutdown_timeout" : "exit");
    }
}


void
pst_qdrain_forget(pst_qmsg_t *msg)
{
    msg->drain_wait = 0;
    dr.waiting--;
    pst_qdrain_pump();
}


static void
pst_qdrain_end(void)
{
    dr.active = 0;
    dr.ended = time(NULL);
    pst_q.draining = 0;
    pst_deliver_close(&dr.dest->name);
    if (dr.waiting > 0) {
        pst_queue_each(pst_qdrain_clear, NULL);
        dr.waiting = 0;
    }
    pst_log_error(dr.stop ? PST_LOG_WARN : PST_LOG_NOTICE, 0, "queue: drain"
                  " to %s: %lu of %lu message(s) moved (%lu in part, %lu"
                  " recipient(s))%s%s", dr.target, (unsigned long) dr.moved,
                  (unsigned long) dr.n, (unsigned long) dr.partial,
                  (unsigned long) dr.rcpts, dr.stop ? "; stopped: " : "",
                  dr.stop ? dr.why : "");
    pst_queue_kick();
    pst_queue_check_done();
}


static void
pst_qdrain_clear(pst_qmsg_t *msg, void *data)
{
    (void) data;
    msg->drain_wait = 0;
}


/* The pass running, or the last one. */
static int
pst_qdrain_status(pst_buf_t *out, int json)
{
    const char  *state;
    char         text[600], why[sizeof(dr.why)];
    size_t       i;
    int          n;

    /* a peer's reply: nothing that needs escaping in JSON */
    for (i = 0; dr.why[i] != '\0'; i++) {
        why[i] = dr.why[i] < 0x20 || dr.why[i] == 0x7f || dr.why[i] == '"'
                 || dr.why[i] == '\\' ? '?' : dr.why[i];
    }
    why[i] = '\0';

    state = dr.active ? "running" : !dr.ran ? "none"
            : dr.stop ? "stopped" : "done";
    if (json) {
        n = snprintf(text, sizeof(text), "{\"verb\":\"drain\",\"state\":"
                     "\"%s\",\"target\":\"%s\",\"messages\":%lu,\"moved\":"
                     "%lu,\"partial\":%lu,\"recipients\":%lu,\"queued\":%lu,"
                     "\"why\":\"%s\"}\n", state, dr.target,
                     (unsigned long) dr.n, (unsigned long) dr.moved,
                     (unsigned long) dr.partial, (unsigned long) dr.rcpts,
                     (unsigned long) pst_q.nmsgs, why);
    } else if (!dr.ran) {
        n = snprintf(text, sizeof(text), "no drain since the start\n");
    } else {
        n = snprintf(text, sizeof(text), "drain to %s: %s: %lu of %lu"
                     " message(s) moved (%lu in part), %lu queued%s%s\n",
                     dr.target, state, (unsigned long) dr.moved,
                     (unsigned long) dr.n, (unsigned long) dr.partial,
                     (unsigned long) pst_q.nmsgs, dr.stop ? "; " : "",
                     dr.why);
    }
    (void) pst_buf_append(out, text, (size_t) pst_min((size_t) n,
                          sizeof(text) - 1), PST_CONTROL_ANSWER_MAX);
    return PST_QUEUE_CONTROL_OK;
}
