/*
 * pst_queue_run.c -- the engine's attempts: choosing what to start
 * (pst_sched), opening the message, pst_deliver_start(), each
 * recipient's outcome (state, retry time, expiry, events, the log
 * line, metrics), and the "finish" operation that makes the outcomes
 * durable, injects the DSNs owed and removes a message whose every
 * recipient is final (see docs/RELAY.md).
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_deliver.h"
#include "pst_qio.h"
#include "pst_sched.h"
#include "pst_queue.h"
#include "pst_queue_int.h"
#include "pst_queue_event.h"
#include "pst_dsn.h"


static pst_event_t   dispatch_ev;
static pst_event_t   dead_ev;
static pst_list_t    running = { &running, &running };
static pst_uint_t   *which;
static pst_uint_t    which_n;


static void pst_queue_dispatch_handler(pst_event_t *ev);
static void pst_queue_job_start(pst_qmsg_t *msg, pst_qdest_t *d);
static void pst_queue_job_launch(pst_qjob_t *job);
static void pst_queue_job_done(pst_dlv_job_t *dj, void *data);
static void pst_queue_outcome(pst_qjob_t *job, pst_dlv_rcpt_t *o,
    time_t now);
static void pst_queue_finish_run(pst_qio_job_t *job);
static void pst_queue_finish_done(pst_qio_job_t *job);


void
pst_queue_kick(void)
{
    if (dispatch_ev.handler == NULL) {
        dispatch_ev.handler = pst_queue_dispatch_handler;
        dead_ev.handler = pst_queue_dispatch_handler;
    }
    if (!dispatch_ev.posted && !pst_q.stopping) {
        pst_post_event(&dispatch_ev);
    }
}


static void
pst_queue_dispatch_handler(pst_event_t *ev)
{
    pst_qdest_t  *d;
    pst_qmsg_t   *msg;
    time_t        now = pst_current_time_sec, wake = 0;

    (void) ev;

    pst_queue_arm();

    while (!pst_q.stopping && !pst_q.draining
           && pst_q.jobs < (pst_uint_t) pst_q.conf->concurrency)
    {
        d = pst_sched_next(&pst_q.sched, now, &wake);
        if (d == NULL) {
            break;
        }
        msg = pst_sched_pop(&pst_q.sched, d);
        if (msg != NULL) {
            pst_queue_job_start(msg, d);
        }
    }

    if (wake != 0 && !pst_q.stopping) {
        pst_event_add_timer(&dead_ev, (pst_msec_t) (wake - now) * 1000);
    }
}


/* The recipients of msg listed for d (or all, d NULL): back to due. */
static void
pst_queue_unlist(pst_qmsg_t *msg, pst_qdest_t *d)
{
    pst_uint_t  i;

    for (i = 0; i < msg->nrcpts; i++) {
        if (d == NULL || msg->rcpts[i].dest == d) {
            msg->rcpts[i].flags &= ~PST_QR_QUEUED;
        }
    }
    pst_queue_reschedule(msg);
}


static pst_qjob_t *
pst_queue_job_new(pst_qmsg_t *msg, pst_qdest_t *d)
{
    pst_qjob_t  *job;
    pst_uint_t   k, i, limit;
    int          more = 0;

    limit = (pst_uint_t) pst_q.conf->rcpt_limit;
    if (which_n < limit) {
        free(which);
        which = malloc(limit * sizeof(pst_uint_t));
        which_n = which != NULL ? limit : 0;
        if (which == NULL) {
            return NULL;
        }
    }

    k = pst_sched_batch(msg->rcpts, msg->nrcpts, d, limit, which);
    if (k == 0) {
        return NULL;
    }

    for (i = 0; i < msg->nrcpts && !more; i++) {
        more = msg->rcpts[i].dest == d
               && (msg->rcpts[i].flags & PST_QR_QUEUED);
    }
    if (more && pst_sched_push(&pst_q.sched, d, msg) != PST_OK) {
        pst_queue_unlist(msg, d);
    }

    job = calloc(1, sizeof(pst_qjob_t) + k * sizeof(pst_dlv_rcpt_t));
    if (job == NULL) {
        for (i = 0; i < k; i++) {
            msg->rcpts[which[i]].flags &= ~PST_QR_BUSY;
        }
        return NULL;
    }
    job->msg = msg;
    job->dest = d;
    job->dj.rcpts = job->rcpts;
    job->dj.nrcpts = k;
    for (i = 0; i < k; i++) {
        job->rcpts[i].index = which[i];
    }
    return job;
}


static void
pst_queue_job_start(pst_qmsg_t *msg, pst_qdest_t *d)
{
    pst_qjob_t  *job;

    if (msg->hold || msg->deleted || msg->gone) {
        pst_queue_unlist(msg, d);
        return;
    }

    job = pst_queue_job_new(msg, d);
    if (job == NULL) {
        pst_queue_reschedule(msg);
        return;
    }

    pst_queue_job_run(job);
}


void
pst_queue_job_run(pst_qjob_t *job)
{
    pst_qmsg_t  *msg = job->msg;

    job->dest->active++;
    pst_q.jobs++;
    msg->jobs++;
    pst_list_insert_tail(&running, &job->link);
    pst_metric_set(PST_M_QUEUE_ACTIVE, pst_q.jobs);

    if (msg->open != NULL && msg->open->ready) {
        pst_queue_job_launch(job);
        return;
    }

    job->next = msg->waiting;
    msg->waiting = job;
    pst_queue_io(msg, PST_QM_OPEN);
}


static void
pst_queue_job_launch(pst_qjob_t *job)
{
    pst_uint_t  i;

    job->dj.msg = &job->msg->open->m;

    if (job->dest->name.len == 0 && !job->drain) {
        /* "postmaster" and the like: no domain to relay to */
        for (i = 0; i < job->dj.nrcpts; i++) {
            job->rcpts[i].state = PST_RCPT_FAILED;
            job->rcpts[i].code = 550;
            snprintf(job->rcpts[i].ecode, sizeof(job->rcpts[i].ecode),
                     "5.1.3");
            snprintf(job->rcpts[i].reply, sizeof(job->rcpts[i].reply),
                     "550 5.1.3 no domain in the recipient address");
        }
        pst_queue_job_done(&job->dj, job);
        return;
    }

    job->dlv = pst_deliver_start(&job->dest->name, &job->dj,
                                 pst_queue_job_done, job);
    if (job->dlv != NULL) {
        return;
    }

    for (i = 0; i < job->dj.nrcpts; i++) {
        job->rcpts[i].state = PST_RCPT_DEFERRED;
        job->rcpts[i].code = 0;
        snprintf(job->rcpts[i].ecode, sizeof(job->rcpts[i].ecode), "4.3.0");
        snprintf(job->rcpts[i].reply, sizeof(job->rcpts[i].reply),
                 "451 4.3.0 cannot start a delivery: out of memory");
    }
    pst_queue_job_done(&job->dj, job);
}


/* The open operation: in a thread, then on the loop. */
void
pst_queue_run_open(pst_qio_job_t *job)
{
    pst_qmsg_t   *msg = job->data;
    pst_qopen_t  *o = msg->open;

    o->rc = pst_spool_msg_open(o->pool, (char *) msg->id, &o->m, &o->why);
}


/* Attempts that never started: their recipients as they were. */
void
pst_queue_unstart(pst_qmsg_t *msg, time_t retry)
{
    pst_qjob_t  *job;
    pst_uint_t   i;

    while ((job = msg->waiting) != NULL) {
        msg->waiting = job->next;
        for (i = 0; i < job->dj.nrcpts; i++) {
            msg->rcpts[job->rcpts[i].index].flags &= ~PST_QR_BUSY;
            if (retry) {
                msg->rcpts[job->rcpts[i].index].next_try = retry;
            }
        }
        pst_queue_job_end(job, 0, 0, 0);
    }
}


void
pst_queue_run_opened(pst_qio_job_t *job)
{
    pst_qmsg_t   *msg = job->data;
    pst_qopen_t  *o = msg->open;
    pst_qjob_t   *list, *next;
    const char   *why = o->why;
    int           rc = o->rc;

    /* io_busy stays set until pst_queue_io_done(): what runs from here
     * (an attempt that ends at once) must not start the next I/O */
    if (o->rc == PST_OK) {
        o->ready = 1;
        o->m.env.hold = msg->hold;
        list = msg->waiting;
        msg->waiting = NULL;
        for ( ; list != NULL; list = next) {
            next = list->next;
            pst_queue_job_launch(list);
        }
        pst_queue_io_done(msg);
        return;
    }

    pst_spool_msg_close(&o->m);
    pst_destroy_pool(o->pool);
    msg->open = NULL;
    free(o);

    if (rc == PST_AGAIN) {
        pst_log_error(PST_LOG_ERR, 0, "queue: %s: cannot open it (%s):"
                      " tried again later", msg->id, why);
        msg->io_want &= (uint8_t) ~PST_QM_OPEN;
        pst_queue_unstart(msg, pst_current_time_sec + 60);
        msg->retry_io = (msg->io_want & (PST_QM_FINISH | PST_QM_HOLD)) != 0;
        pst_queue_io_done(msg);
        pst_queue_reschedule(msg);
        return;
    }

    if (rc == PST_ERROR) {
        (void) pst_spool_corrupt((char *) msg->id, why);
    } else {
        pst_log_error(PST_LOG_INFO, 0, "%s: gone from the spool", msg->id);
    }
    msg->io_want = 0;
    pst_queue_unstart(msg, 0);
    msg->io_busy = 0;
    msg->gone = 1;
    pst_queue_forget(msg);
}


static void
pst_queue_job_done(pst_dlv_job_t *dj, void *data)
{
    pst_qjob_t  *job = data;
    pst_uint_t   i;
    time_t       now = time(NULL);
    int          ok = 0;

    job->dlv = NULL;

    if (job->drain) {
        pst_qdrain_done(job);           /* and pst_queue_job_end() */
        return;
    }

    for (i = 0; i < dj->nrcpts; i++) {
        pst_queue_outcome(job, &dj->rcpts[i], now);
        if (dj->rcpts[i].code != 0) {
            ok = 1;             /* the destination answered */
        }
    }

    pst_queue_job_end(job, 1, ok && !dj->dest_failed, dj->dest_failed);
}


/* An attempt is over (done, never started, or cancelled). */
void
pst_queue_job_end(pst_qjob_t *job, int ran, int ok, int dest_failed)
{
    pst_qmsg_t  *msg = job->msg;
    pst_qdest_t *d = job->dest;
    time_t       now = pst_current_time_sec;
    int          drain = job->drain;

    if (ran && !drain) {
        pst_sched_feedback(&pst_q.sched, d, ok, dest_failed, now,
                           (time_t) (pst_q.conf->dead_dest / 1000));
    }
    if (dest_failed && pst_q.conf->dead_dest > 0 && !drain) {
        pst_log_error(PST_LOG_NOTICE, 0, "queue: destination %.*s looks"
                      " dead: no attempt before %ds", (int) d->name.len,
                      d->name.data,
                      (int) (pst_q.conf->dead_dest / 1000));
    }

    pst_list_remove(&job->link);
    d->active--;
    pst_q.jobs--;
    msg->jobs--;
    pst_metric_set(PST_M_QUEUE_ACTIVE, pst_q.jobs);
    free(job);

    if (ran && !msg->deleted) {
        pst_queue_io(msg, PST_QM_FINISH);
    } else {
        pst_queue_io(msg, 0);
    }
    pst_queue_reschedule(msg);
    pst_qdrain_job_ended(msg, drain, dest_failed);
    pst_queue_kick();
    pst_queue_check_done();
}


static void
pst_queue_str_set(pst_pool_t *pool, pst_str_t *s, const char *text)
{
    size_t  n = strlen(text);

    s->data = pst_palloc(pool, n + 1);
    if (s->data == NULL) {
        s->len = 0;
        return;
    }
    memcpy(s->data, text, n + 1);
    s->len = n;
}


static void
pst_queue_log(pst_qmsg_t *msg, pst_env_rcpt_t *r, const char *remote,
    const char *ecode, const char *status, time_t now)
{
    struct timeval  tv;
    double          delay;
    char            dsn[16];

    (void) now;
    gettimeofday(&tv, NULL);
    delay = (double) (tv.tv_sec - msg->arrival)
            - (double) msg->open->m.env.arrival_usec / 1e6
            + (double) tv.tv_usec / 1e6;
    if (delay < 0) {
        delay = 0;
    }

    if (ecode[0] != '\0') {
        snprintf(dsn, sizeof(dsn), "%s", ecode);
    } else {
        pst_dsn_status(r, r->state == PST_RCPT_DELIVERED ? PST_DSN_DELIVERED
                          : r->state == PST_RCPT_FAILED ? PST_DSN_FAILED
                          : PST_DSN_DELAYED, dsn);
    }

    pst_log_error(PST_LOG_INFO, 0, "%s: to=<%.*s>, relay=%s, delay=%.1f,"
                  " dsn=%s, status=%s (%.*s)", msg->id, (int) r->addr.len,
                  r->addr.data, remote[0] ? remote : "none", delay, dsn,
                  status, (int) r->reply.len, r->reply.data);
}


/* A recipient's event (DELIVERED, FAILED, EXPIRED; DEFERRED with its
 * next try: pst_queue_event_deferred()). */
static void
pst_queue_event_fill(pst_qevent_t *ev, pst_qevent_e what, pst_qmsg_t *msg,
    pst_qjob_t *job, pst_dlv_rcpt_t *o)
{
    memset(ev, 0, sizeof(pst_qevent_t));
    ev->event = what;
    ev->env = &msg->open->m.env;
    ev->rcpt = o->index;
    ev->dest = &job->dest->name;
    ev->remote = job->dj.remote[0] ? job->dj.remote : NULL;
    ev->code = o->code;
    ev->reply = o->reply;
}


static void
pst_queue_event_rcpt(pst_qevent_e what, pst_qmsg_t *msg, pst_qjob_t *job,
    pst_dlv_rcpt_t *o)
{
    pst_qevent_t  ev;

    pst_queue_event_fill(&ev, what, msg, job, o);
    pst_queue_event(&ev);
}


static void
pst_queue_deferred(pst_qjob_t *job, pst_dlv_rcpt_t *o, pst_env_rcpt_t *r,
    pst_qrcpt_t *q, time_t now)
{
    pst_qmsg_t    *msg = job->msg;
    pst_qevent_t   ev;
    time_t         expiry, next;

    expiry = pst_queue_expiry(msg);

    if (now >= expiry) {
        r->state = PST_RCPT_FAILED;
        q->state = PST_RCPT_FAILED;
        pst_queue_event_rcpt(PST_QEV_EXPIRED, msg, job, o);
        pst_queue_log(msg, r, job->dj.remote, o->ecode,
                      msg->null_sender ? "expired"
                      : "expired, returned to sender", now);
        pst_metric_inc(PST_M_DELIVERY_BOUNCED);
        return;
    }

    pst_queue_event_fill(&ev, PST_QEV_DEFERRED, msg, job, o);
    ev.next_try = now + pst_sched_backoff(r->attempts,
                               (time_t) (pst_q.conf->min_backoff / 1000),
                               (time_t) (pst_q.conf->max_backoff / 1000));
    next = pst_queue_event_deferred(&ev, now, expiry);

    r->state = PST_RCPT_DEFERRED;
    r->next_try = next;
    q->state = PST_RCPT_DEFERRED;
    q->next_try = next;
    pst_queue_log(msg, r, job->dj.remote, o->ecode, "deferred", now);
    pst_metric_inc(PST_M_DELIVERY_DEFERRED);
}


static void
pst_queue_outcome(pst_qjob_t *job, pst_dlv_rcpt_t *o, time_t now)
{
    pst_qmsg_t      *msg = job->msg;
    pst_qopen_t     *op = msg->open;
    pst_env_rcpt_t  *r = op->m.env.rcpts->elts;
    pst_qrcpt_t     *q = &msg->rcpts[o->index];

    r = &r[o->index];
    q->flags &= ~(PST_QR_BUSY | PST_QR_FLUSH);
    r->attempts++;
    q->attempts = (uint16_t) pst_min(r->attempts, 65535);
    r->last_try = now;
    o->reply[sizeof(o->reply) - 1] = '\0';
    job->dj.remote[sizeof(job->dj.remote) - 1] = '\0';
    pst_queue_str_set(op->pool, &r->reply, o->reply);
    pst_queue_str_set(op->pool, &r->remote, job->dj.remote);

    switch (o->state) {

    case PST_RCPT_DELIVERED:
        r->state = PST_RCPT_DELIVERED;
        q->state = PST_RCPT_DELIVERED;
        r->next_try = 0;
        if (o->relayed) {
            q->flags |= PST_QR_RELAYED;
        }
        if (o->final) {
            q->flags |= PST_QR_FINAL;
        }
        pst_queue_event_rcpt(PST_QEV_DELIVERED, msg, job, o);
        pst_queue_log(msg, r, job->dj.remote, o->ecode, "sent", now);
        pst_metric_inc(PST_M_DELIVERY_DELIVERED);
        pst_metric_observe(PST_H_DELIVERY,
                           (uint64_t) pst_max(now - msg->arrival, 0)
                           * 1000000);
        return;

    case PST_RCPT_FAILED:
        r->state = PST_RCPT_FAILED;
        q->state = PST_RCPT_FAILED;
        r->next_try = 0;
        pst_queue_event_rcpt(PST_QEV_FAILED, msg, job, o);
        pst_queue_log(msg, r, job->dj.remote, o->ecode, "bounced", now);
        if (msg->null_sender) {
            pst_log_error(PST_LOG_INFO, 0, "%s: from the null sender: no"
                          " notification (no bounce for a bounce)", msg->id);
        }
        pst_metric_inc(PST_M_DELIVERY_BOUNCED);
        return;

    default:
        pst_queue_deferred(job, o, r, q, now);
        return;
    }
}


/* Stop the attempts of msg (NULL: all): their recipients stay as they
 * were. */
void
pst_queue_cancel_jobs(pst_qmsg_t *msg)
{
    pst_list_t  *l, *next;
    pst_qjob_t  *job, **pj;
    pst_uint_t   i;

    for (l = pst_list_head(&running); l != &running; l = next) {
        next = pst_list_next(l);
        job = pst_list_data(l, pst_qjob_t, link);
        if (msg != NULL && job->msg != msg) {
            continue;
        }
        if (job->dlv != NULL) {
            pst_deliver_cancel(job->dlv);
            job->dlv = NULL;
        }
        for (pj = &job->msg->waiting; *pj != NULL; pj = &(*pj)->next) {
            if (*pj == job) {
                *pj = job->next;
                break;
            }
        }
        for (i = 0; i < job->dj.nrcpts; i++) {
            job->msg->rcpts[job->rcpts[i].index].flags &= ~PST_QR_BUSY;
        }
        pst_queue_job_end(job, 0, 0, 0);
    }
}


/* ------------------------------------------------------------------ */
/* Finish: outcomes durable, DSNs injected, the message removed        */

int
pst_queue_finish_start(pst_qmsg_t *msg)
{
    pst_qopen_t  *o = msg->open;
    pst_uint_t    i, n;

    n = o->m.env.rcpts->nelts;
    o->snap_rcpts = malloc(pst_max(n, 1) * sizeof(pst_env_rcpt_t));
    if (o->snap_rcpts == NULL) {
        return PST_ERROR;
    }

    (void) pst_bounce_plan(msg, time(NULL));

    o->remove = 1;
    for (i = 0; i < msg->nrcpts; i++) {
        if (msg->rcpts[i].state != PST_RCPT_DELIVERED
            && msg->rcpts[i].state != PST_RCPT_FAILED)
        {
            o->remove = 0;
        }
    }

    memcpy(o->snap_rcpts, o->m.env.rcpts->elts, n * sizeof(pst_env_rcpt_t));
    o->remove_ordered = msg->disk_final;
    msg->io_want &= (uint8_t) ~PST_QM_HOLD;     /* snap.hold is msg->hold */
    if (!o->remove) {
        pst_queue_note_final(msg, o->snap_rcpts, n);   /* before it is */
    }
    o->snap = o->m.env;
    o->snap.hold = msg->hold;
    o->snap_arr = *o->m.env.rcpts;
    o->snap_arr.elts = o->snap_rcpts;
    o->snap.rcpts = &o->snap_arr;
    o->removed = 0;

    o->io.run = pst_queue_finish_run;
    o->io.done = pst_queue_finish_done;
    o->io.data = msg;
    msg->io_busy = 1;
    pst_qio_post(&o->io);
    return PST_OK;
}


static void
pst_queue_finish_run(pst_qio_job_t *job)
{
    pst_qmsg_t   *msg = job->data;
    pst_qopen_t  *o = msg->open;
    int           a, owed = 0;

    pst_bounce_inject(o, pst_q.hostname, pst_q.conf);
    for (a = 0; a < 4; a++) {
        if (o->dsn_n[a] > 0 && o->dsn_rc[a] != PST_OK) {
            owed = 1;
        }
    }

    if (o->remove && !owed) {
        o->rc = o->remove_ordered ? pst_spool_remove((char *) msg->id)
                                  : pst_spool_remove_fast((char *) msg->id);
        o->removed = o->rc == PST_OK;
    } else {
        o->rc = pst_spool_state_write(&o->snap);
    }
    o->err = errno;
}


static void
pst_queue_finish_done(pst_qio_job_t *job)
{
    pst_qmsg_t   *msg = job->data;
    pst_qopen_t  *o = msg->open;

    if (!o->removed) {          /* the DSNs it sent may be recorded */
        pst_queue_note_final(msg, o->snap_rcpts, o->snap_arr.nelts);
    }
    free(o->snap_rcpts);
    o->snap_rcpts = NULL;

    if (pst_bounce_done(msg) > 0) {
        msg->io_want |= PST_QM_FINISH;
        msg->retry_io = 1;
    }

    if (o->rc != PST_OK) {
        pst_log_error(PST_LOG_ERR, o->err, "queue: %s: cannot %s:"
                      " tried again later", msg->id,
                      o->remove ? "remove it" : "write its state");
        msg->io_want |= PST_QM_FINISH;
        msg->retry_io = 1;
    }

    if (o->removed) {
        pst_log_error(PST_LOG_INFO, 0, "%s: removed", msg->id);
        msg->io_busy = 0;
        msg->gone = 1;
        pst_queue_forget(msg);
        return;
    }

    pst_queue_io_done(msg);
}
