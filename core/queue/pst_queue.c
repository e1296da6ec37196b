/*
 * pst_queue.c -- the delivery engine of the queue process (pst_queue.h,
 * docs/RELAY.md): the messages it knows, loading them (the spool scan
 * at start, then the COMMITTED notifications), the heap of due times,
 * and each message's spool I/O, one operation at a time, on the
 * pst_qio threads.  Attempts and their outcomes are in
 * pst_queue_run.c, DSNs in pst_bounce.c, control verbs in
 * pst_queue_admin.c.
 *
 * Memory: a message waiting costs a pst_qmsg_t and one pst_qrcpt_t per
 * recipient (its destination is shared); its file is opened, with its
 * envelope, only while an attempt or I/O needs it.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_deliver.h"
#include "pst_qio.h"
#include "pst_sched.h"
#include "pst_smtp.h"
#include "pst_queue.h"
#include "pst_queue_int.h"
#include "pst_queue_event.h"
#include "pst_queue_ctx.h"
#include "pst_transport.h"

#define PST_QUEUE_HASH          (1 << 16)
#define PST_QUEUE_COMMIT_BATCH  128      /* IDs loaded per I/O job */
#define PST_QUEUE_COMMIT_JOBS   PST_QIO_THREADS   /* such jobs at once */
#define PST_QUEUE_SCAN_JOBS     2        /* spool parts read at once */
#define PST_QUEUE_DUE_BATCH     2000     /* messages made ready per run */
#define PST_QUEUE_IO_RETRY      10       /* s, after a failed spool I/O */
#define PST_QUEUE_REL_LANE      2        /* release writes in flight */


typedef struct {
    pst_qio_job_t        io;
    pst_pool_t          *pool;
    int                  part;           /* scan part, -1: committed IDs */
    int                  hold;           /* relay_hold */
    int                  header;         /* a module hears queue events:
                                            read each message's header */
    uint32_t             gen;            /* pst_q.all_gen at its start */
    pst_uint_t           nids;
    char               (*ids)[PST_QUEUE_ID_LEN + 1];
    pst_uint_t           cap;
    pst_spool_msg_t     *msgs;
    int                 *rc;
    const char         **why;
} pst_qload_t;

typedef struct {
    pst_qio_job_t        io;
    pst_qmsg_t          *msg;
    int                  hold;
    int                  rc;
    int                  err;
} pst_qsimple_t;


pst_queue_t  pst_q;

static pst_qmsg_t     **hash;
static pst_qmsg_t     **heap;
static uint32_t         heap_n, heap_cap;
static pst_event_t      due_ev;
static pst_event_t      retry_ev;
/* A FIFO of queue IDs: taken from the head, appended at the tail (the
 * live part slides to the front before the array grows). */
typedef struct {
    char                (*id)[PST_QUEUE_ID_LEN + 1];
    pst_uint_t            head, n, cap;
} pst_qids_t;

static pst_qids_t       pending;          /* committed, not read yet */
static pst_uint_t       commit_busy;
static int              scan_part;        /* the next to read */
static pst_uint_t       scan_busy;
static pst_qmsg_t     **retry_list;      /* I/O to try again */
static char           (*later)[PST_QUEUE_ID_LEN + 1];   /* to read again */
static pst_uint_t       nlater, later_cap;
static pst_uint_t       nretry, retry_cap;
static pst_qids_t       rel;              /* release lane */
static pst_uint_t       rel_busy;


static int pst_qids_push(pst_qids_t *q, const u_char *id);
static void pst_qids_drop(pst_qids_t *q, pst_uint_t k);
static void pst_queue_scan_next(void);
static void pst_queue_commit_next(void);
static void pst_queue_load_run(pst_qio_job_t *job);
static void pst_queue_load_done(pst_qio_job_t *job);
static void pst_queue_take(pst_spool_msg_t *m);
static void pst_queue_flush_loaded(pst_qload_t *l, pst_uint_t i);
static void pst_queue_all_loaded(pst_qload_t *l, pst_uint_t i);
static void pst_queue_due_handler(pst_event_t *ev);
static void pst_queue_retry_handler(pst_event_t *ev);
static void pst_queue_heap_set(pst_qmsg_t *msg, time_t due);
static void pst_queue_heap_del(pst_qmsg_t *msg);
static void pst_queue_io_next(pst_qmsg_t *msg);
static void pst_queue_rel_pump(void);


/* IDs are time-ordered base32: their last characters vary most */
pst_uint_t
pst_queue_hash(const u_char *id)
{
    pst_uint_t  h = 0;
    int         i;

    for (i = 0; i < PST_QUEUE_ID_LEN; i++) {
        h = h * 31 + id[i];
    }
    return h;
}


int
pst_queue_init(pst_cycle_t *cycle)
{
    pst_server_t  **srv;
    static char     host[256];

    memset(&pst_q, 0, sizeof(pst_q));
    pst_q.cycle = cycle;
    pst_q.conf = pst_queue_conf(cycle);
    if (pst_q.conf == NULL) {
        return PST_ERROR;
    }

    srv = cycle->servers.elts;
    if (cycle->servers.nelts > 0 && srv[0]->conf->hostname.len > 0) {
        snprintf(host, sizeof(host), "%.*s",
                 (int) srv[0]->conf->hostname.len,
                 srv[0]->conf->hostname.data);
    } else if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    pst_q.hostname = host;

    hash = calloc(PST_QUEUE_HASH, sizeof(pst_qmsg_t *));
    if (hash == NULL
        || pst_sched_init(&pst_q.sched,
                          (pst_uint_t) pst_q.conf->dest_concurrency)
           != PST_OK
        || pst_qio_init(PST_QIO_THREADS) != PST_OK)
    {
        return PST_ERROR;
    }

    if (pst_deliver_init(cycle) != PST_OK) {
        pst_log_error(PST_LOG_EMERG, 0, "queue: the delivery layer did not"
                      " start");
        return PST_ERROR;
    }

    due_ev.handler = pst_queue_due_handler;
    retry_ev.handler = pst_queue_retry_handler;

    pst_log_error(PST_LOG_INFO, 0, "queue: engine started on spool \"%s\""
                  " (concurrency %ld, per destination %ld%s)",
                  cycle->core->spool_dir.data,
                  (long) pst_q.conf->concurrency,
                  (long) pst_q.conf->dest_concurrency,
                  pst_q.conf->hold ? ", relay_hold on" : "");

    pst_q.loading = 1;
    scan_part = 0;
    pst_queue_scan_next();
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Loading                                                             */

static pst_qload_t *
pst_queue_load_new(int part)
{
    pst_qload_t  *l;

    l = calloc(1, sizeof(pst_qload_t));
    if (l == NULL) {
        return NULL;
    }
    l->pool = pst_create_pool(16384);
    if (l->pool == NULL) {
        free(l);
        return NULL;
    }
    l->part = part;
    l->hold = pst_q.conf->hold;
    l->header = pst_queue_event_wanted();
    /* the start's scan reads what was in the spool before any verb:
     * every hold/release ALL since the engine started concerns it */
    l->gen = part >= 0 ? 0 : pst_q.all_gen;
    l->io.run = pst_queue_load_run;
    l->io.done = pst_queue_load_done;
    l->io.data = l;
    return l;
}


static void
pst_queue_load_free(pst_qload_t *l)
{
    pst_destroy_pool(l->pool);
    free(l->ids);
    free(l->msgs);
    free(l->rc);
    free(l->why);
    free(l);
}


/* Scan parts in flight at once: part 0 (format 2 files moved into
 * queue/XY/) alone first, then up to PST_QUEUE_SCAN_JOBS. */
static void
pst_queue_scan_next(void)
{
    pst_qload_t  *l;

    while (pst_queue_taking() && scan_part < PST_SPOOL_WALK_PARTS
           && scan_busy < (scan_part <= 1 ? 1 : PST_QUEUE_SCAN_JOBS))
    {
        l = pst_queue_load_new(scan_part);
        if (l == NULL) {
            pst_event_add_timer(&retry_ev, 1000);
            return;
        }
        scan_part++;
        scan_busy++;
        pst_qio_post(&l->io);
    }

    if (pst_q.loading && scan_part >= PST_SPOOL_WALK_PARTS
        && scan_busy == 0)
    {
        pst_q.loading = 0;
        pst_q.flush_on_load = 0;
        pst_log_error(PST_LOG_INFO, 0, "queue: spool scanned: %lu"
                      " message(s), %lu held", (unsigned long) pst_q.nmsgs,
                      (unsigned long) pst_q.held);
        if (pst_q.drain_after_load) {
            pst_q.drain_after_load = 0;
            (void) pst_qdrain_on_quit();
            pst_queue_check_done();
        }
    }
}


static int
pst_qids_push(pst_qids_t *q, const u_char *id)
{
    void  *p;

    if (q->head > 0 && q->head + q->n == q->cap) {
        memmove(q->id, q->id + q->head, q->n * sizeof(*q->id));
        q->head = 0;
    }
    if (q->head + q->n == q->cap) {
        p = realloc(q->id, (q->cap * 2 + 64) * sizeof(*q->id));
        if (p == NULL) {
            return PST_ERROR;
        }
        q->id = p;
        q->cap = q->cap * 2 + 64;
    }
    memcpy(q->id[q->head + q->n], id, PST_QUEUE_ID_LEN);
    q->id[q->head + q->n][PST_QUEUE_ID_LEN] = '\0';
    q->n++;
    return PST_OK;
}


/* The first k IDs are taken (k <= q->n). */
static void
pst_qids_drop(pst_qids_t *q, pst_uint_t k)
{
    q->head += k;
    q->n -= k;
    if (q->n == 0) {
        q->head = 0;
    }
}


void
pst_queue_committed(const u_char *id, size_t len)
{
    if (!pst_queue_taking() || len != PST_QUEUE_ID_LEN) {
        return;
    }
    if (pst_queue_find(id) != NULL) {
        return;
    }

    if (pst_qids_push(&pending, id) != PST_OK) {
        pst_log_error(PST_LOG_ALERT, 0, "queue: %.*s: no memory; the"
                      " next spool scan will find it", (int) len, id);
        return;
    }

    pst_queue_commit_next();
}


static void
pst_queue_commit_next(void)
{
    pst_qload_t  *l;
    pst_uint_t    n;

    if (commit_busy >= PST_QUEUE_COMMIT_JOBS || pending.n == 0
        || !pst_queue_taking())
    {
        return;
    }

    l = pst_queue_load_new(-1);
    n = pst_min(pending.n, PST_QUEUE_COMMIT_BATCH);
    if (l == NULL
        || (l->ids = malloc(n * sizeof(*l->ids))) == NULL)
    {
        if (l != NULL) {
            pst_queue_load_free(l);
        }
        pst_event_add_timer(&retry_ev, 1000);
        return;
    }
    memcpy(l->ids, pending.id + pending.head, n * sizeof(*l->ids));
    pst_qids_drop(&pending, n);
    l->nids = n;
    l->cap = n;

    commit_busy++;
    pst_qio_post(&l->io);
}


static int
pst_queue_load_id(const char *id, void *data)
{
    pst_qload_t  *l = data;
    void         *p;

    if (l->nids == l->cap) {
        p = realloc(l->ids, (l->cap * 2 + 256) * sizeof(*l->ids));
        if (p == NULL) {
            return PST_ERROR;
        }
        l->ids = p;
        l->cap = l->cap * 2 + 256;
    }
    memcpy(l->ids[l->nids], id, PST_QUEUE_ID_LEN + 1);
    l->nids++;
    return PST_OK;
}


/* A message never seen by an engine has no state file yet. */
static int
pst_queue_fresh(const char *id)
{
    char         path[PATH_MAX];
    struct stat  st;

    if (pst_spool_path(path, sizeof(path) - sizeof(PST_SPOOL_STATE_SUFFIX),
                       id) != PST_OK)
    {
        return 0;
    }
    strcat(path, PST_SPOOL_STATE_SUFFIX);
    return stat(path, &st) == -1 && errno == ENOENT;
}


/* Thread: list a part of the spool (scan), read every envelope. */
static void
pst_queue_load_run(pst_qio_job_t *job)
{
    pst_qload_t  *l = job->data;
    pst_uint_t    i;

    if (l->part >= 0) {
        (void) pst_spool_walk_part((unsigned) l->part, pst_queue_load_id, l);
    }
    if (l->nids == 0) {
        return;
    }

    l->msgs = calloc(l->nids, sizeof(pst_spool_msg_t));
    l->rc = calloc(l->nids, sizeof(int));
    l->why = calloc(l->nids, sizeof(char *));
    if (l->msgs == NULL || l->rc == NULL || l->why == NULL) {
        l->nids = 0;
        return;
    }

    for (i = 0; i < l->nids; i++) {
        l->rc[i] = pst_spool_msg_open(l->pool, l->ids[i], &l->msgs[i],
                                      &l->why[i]);
        if (l->rc[i] != PST_OK) {
            continue;
        }
        if (l->header) {
            /* for pst_qevent_header(); without it the events go on */
            (void) pst_spool_msg_header(l->pool, &l->msgs[i]);
        }
        pst_spool_msg_close(&l->msgs[i]);

        /* relay_hold: a message no engine has seen is held, durably */
        if (l->hold && !l->msgs[i].env.hold && pst_queue_fresh(l->ids[i])) {
            l->msgs[i].env.hold = 1;
            if (pst_spool_state_write(&l->msgs[i].env) != PST_OK) {
                l->rc[i] = PST_AGAIN;
                l->why[i] = "cannot write the state to hold it";
            }
        }
    }
}


/* A message that could not be read (EMFILE, EACCES...): read again
 * by the retry timer. */
static void
pst_queue_read_later(const char *id)
{
    void  *p;

    if (nlater == later_cap) {
        p = realloc(later, (later_cap * 2 + 16) * sizeof(*later));
        if (p == NULL) {
            return;             /* the next start's scan finds it */
        }
        later = p;
        later_cap = later_cap * 2 + 16;
    }
    memcpy(later[nlater++], id, PST_QUEUE_ID_LEN + 1);
    if (!retry_ev.timer_set) {
        pst_event_add_timer(&retry_ev, PST_QUEUE_IO_RETRY * 1000);
    }
}


static void
pst_queue_load_done(pst_qio_job_t *job)
{
    pst_qload_t  *l = job->data;
    pst_uint_t    i;

    for (i = 0; i < l->nids && pst_queue_taking(); i++) {
        switch (l->rc[i]) {
        case PST_OK:
            if (pst_queue_find((u_char *) l->ids[i]) == NULL) {
                pst_queue_take(&l->msgs[i]);
                pst_queue_flush_loaded(l, i);
                pst_queue_all_loaded(l, i);
            }
            break;
        case PST_DECLINED:          /* gone meanwhile */
            break;
        case PST_ERROR:
            if (pst_queue_find((u_char *) l->ids[i]) == NULL) {
                (void) pst_spool_corrupt(l->ids[i], l->why[i]);
            }
            break;
        default:
            pst_log_error(PST_LOG_ERR, 0, "queue: %s: cannot read it (%s):"
                          " tried again in %ds", l->ids[i], l->why[i],
                          PST_QUEUE_IO_RETRY);
            pst_queue_read_later(l->ids[i]);
            break;
        }
    }

    if (l->part >= 0) {
        scan_busy--;
        pst_queue_load_free(l);
        pst_queue_scan_next();
    } else {
        commit_busy--;
        pst_queue_load_free(l);
        pst_queue_commit_next();
    }

    pst_queue_gauges();
    pst_queue_arm();
    pst_queue_kick();
    pst_queue_check_done();
}


/* A message the scan read after a flush ALL: flushed too. */
static void
pst_queue_flush_loaded(pst_qload_t *l, pst_uint_t i)
{
    pst_qmsg_t  *msg;

    if (l->part < 0 || !pst_q.flush_on_load) {
        return;
    }
    msg = pst_queue_find((u_char *) l->ids[i]);
    if (msg != NULL && !msg->deleted && !msg->gone) {
        (void) pst_qadmin_flush_msg(msg, NULL);
    }
}


/* A message a load was reading when a hold ALL or release ALL came (a
 * release right after the messages were received, before the engine
 * took them): it gets that verb too, as if it had been in memory. */
static void
pst_queue_all_loaded(pst_qload_t *l, pst_uint_t i)
{
    pst_qmsg_t  *msg;

    if (l->gen == pst_q.all_gen) {
        return;
    }
    msg = pst_queue_find((u_char *) l->ids[i]);
    if (msg != NULL && !msg->deleted && !msg->gone
        && msg->arrival <= pst_q.all_time)
    {
        pst_qadmin_late(msg);       /* (newer mail did not hear it) */
    }
}


/* A recipient's destination (pst_queue_event_route(): the transport
 * table's, then the route event's).  *hold: a hold rule matched. */
static int
pst_queue_route(pst_spool_msg_t *m, pst_qmsg_t *msg, pst_uint_t i,
    int *hold)
{
    u_char  dest[PST_TRANSPORT_DEST_MAX];
    size_t  n;

    n = pst_queue_event_route(&m->env, i, dest, hold);
    msg->rcpts[i].dest = pst_sched_dest(&pst_q.sched, dest, n);
    return msg->rcpts[i].dest != NULL ? PST_OK : PST_ERROR;
}


/* A message read from the spool becomes one the engine knows. */
static void
pst_queue_take(pst_spool_msg_t *m)
{
    pst_env_rcpt_t  *r = m->env.rcpts->elts;
    pst_qmsg_t      *msg;
    pst_qevent_t     ev;
    pst_uint_t       i, n = m->env.rcpts->nelts, h;
    int              owes = 0, hold = 0, tried = 0, k;

    msg = calloc(1, sizeof(pst_qmsg_t) + n * sizeof(pst_qrcpt_t));
    if (msg == NULL) {
        pst_log_error(PST_LOG_ALERT, 0, "queue: %.*s: no memory",
                      (int) m->env.id.len, m->env.id.data);
        return;
    }
    memcpy(msg->id, m->env.id.data, PST_QUEUE_ID_LEN);
    msg->arrival = m->env.arrival_sec;
    msg->nrcpts = (uint32_t) n;
    msg->hold = m->env.hold ? 1 : 0;
    msg->null_sender = m->env.sender.len == 0;
    msg->heap = (uint32_t) -1;

    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_ENQUEUED;
    ev.env = &m->env;
    ev.rcpt = PST_QEV_NO_RCPT;
    pst_queue_event(&ev);

    for (i = 0; i < n; i++) {
        msg->rcpts[i].state = (uint8_t) r[i].state;
        msg->rcpts[i].attempts = (uint16_t) pst_min(r[i].attempts, 65535);
        msg->rcpts[i].next_try = r[i].next_try;
        msg->rcpts[i].notify = (uint8_t) r[i].notify;
        msg->rcpts[i].dsn_sent = (uint8_t) r[i].dsn_sent;
        pst_queue_note_final(msg, &r[i], 1);
        tried |= r[i].attempts > 0 || r[i].state != PST_RCPT_PENDING;
        if (r[i].state == PST_RCPT_PENDING || r[i].state == PST_RCPT_DEFERRED)
        {
            if (pst_queue_route(m, msg, i, &k) != PST_OK) {
                pst_queue_ctx_forget(msg->id);  /* told ENQUEUED */
                free(msg);
                return;
            }
            hold |= k;
        }
    }

    h = pst_queue_hash(msg->id) % PST_QUEUE_HASH;
    msg->hnext = hash[h];
    hash[h] = msg;
    pst_q.nmsgs++;
    if (msg->hold) {
        pst_q.held++;
    }

    /* left by a crash: final recipients whose DSN or removal is due */
    owes = pst_envelope_final(&m->env);
    if (!owes && !msg->null_sender) {
        for (i = 0; i < n && !owes; i++) {
            owes = (r[i].state == PST_RCPT_FAILED
                    && !(r[i].dsn_sent & PST_NOTIFY_FAILURE)
                    && !(r[i].notify & PST_NOTIFY_NEVER));
        }
    }
    if (owes) {
        pst_queue_io(msg, PST_QM_FINISH);
    }

    /* a hold rule of the transport table holds a message that was never
     * tried (once released, the rules after it decide) */
    if (hold && !tried && !msg->hold) {
        pst_log_error(PST_LOG_INFO, 0, "queue: %s: held by the transport"
                      " table", msg->id);
        pst_qadmin_late_hold(msg);
    }

    pst_queue_reschedule(msg);
}


pst_qmsg_t *
pst_queue_find(const u_char *id)
{
    pst_qmsg_t  *m;

    if (hash == NULL) {
        return NULL;
    }
    for (m = hash[pst_queue_hash(id)
                  % PST_QUEUE_HASH];
         m != NULL; m = m->hnext)
    {
        if (memcmp(m->id, id, PST_QUEUE_ID_LEN) == 0) {
            return m;
        }
    }
    return NULL;
}


void
pst_queue_each(void (*cb)(pst_qmsg_t *msg, void *data), void *data)
{
    pst_qmsg_t  *m, *next;
    pst_uint_t   i;

    for (i = 0; hash != NULL && i < PST_QUEUE_HASH; i++) {
        for (m = hash[i]; m != NULL; m = next) {
            next = m->hnext;
            cb(m, data);
        }
    }
}


time_t
pst_queue_expiry(const pst_qmsg_t *msg)
{
    return pst_queue_expiry_of(pst_q.conf, msg->arrival, msg->null_sender);
}


time_t
pst_queue_expiry_of(const pst_queue_conf_t *conf, time_t arrival,
    int null_sender)
{
    pst_msec_t  life;

    life = null_sender ? conf->bounce_lifetime : conf->max_lifetime;
    return arrival + (time_t) (life / 1000);
}


/* The state on disk records an outcome (a final recipient, a DSN sent):
 * removing the message must then be ordered (pst_spool_remove()). */
void
pst_queue_note_final(pst_qmsg_t *msg, const pst_env_rcpt_t *r, pst_uint_t n)
{
    pst_uint_t  i;

    for (i = 0; i < n; i++) {
        if (r[i].state == PST_RCPT_DELIVERED || r[i].state == PST_RCPT_FAILED
            || r[i].dsn_sent != 0)
        {
            msg->disk_final = 1;
        }
    }
}


/* Gone from the spool, or deleted: forget it (no attempt, no I/O). */
void
pst_queue_forget(pst_qmsg_t *msg)
{
    pst_qmsg_t  **pm;
    pst_uint_t    i;

    pst_queue_heap_del(msg);
    if (msg->drain_wait) {
        pst_qdrain_forget(msg);
    }

    for (i = 0; i < msg->nrcpts; i++) {
        if (msg->rcpts[i].flags & PST_QR_QUEUED) {
            pst_sched_unlink(&pst_q.sched, msg->rcpts[i].dest, msg);
        }
    }
    for (i = 0; msg->in_retry && i < nretry; i++) {
        if (retry_list[i] == msg) {
            retry_list[i] = retry_list[--nretry];
            break;
        }
    }

    for (pm = &hash[pst_queue_hash(msg->id)
                    % PST_QUEUE_HASH];
         *pm != NULL; pm = &(*pm)->hnext)
    {
        if (*pm == msg) {
            *pm = msg->hnext;
            break;
        }
    }

    pst_q.nmsgs--;
    if (msg->hold) {
        pst_q.held--;
    }
    if (msg->open != NULL) {
        pst_spool_msg_close(&msg->open->m);
        pst_destroy_pool(msg->open->pool);
        free(msg->open);
    }
    pst_queue_ctx_forget(msg->id);      /* the modules' state goes too */
    free(msg);
    pst_queue_gauges();
    pst_queue_check_done();
}


/* ------------------------------------------------------------------ */
/* Due times                                                           */

void
pst_queue_reschedule(pst_qmsg_t *msg)
{
    pst_qrcpt_t  *r;
    time_t        due = 0, t;
    pst_uint_t    i;
    int           any = 0;

    if (msg->deleted || msg->gone || msg->hold) {
        pst_queue_heap_del(msg);
        return;
    }

    for (i = 0; i < msg->nrcpts; i++) {
        r = &msg->rcpts[i];
        if ((r->state != PST_RCPT_PENDING && r->state != PST_RCPT_DEFERRED)
            || (r->flags & (PST_QR_QUEUED | PST_QR_BUSY)))
        {
            continue;
        }
        t = (r->flags & PST_QR_FLUSH) ? 0 : r->next_try;
        if (!any || t < due) {
            due = t;
            any = 1;
        }
    }

    if (any) {
        pst_queue_heap_set(msg, due);
    } else {
        pst_queue_heap_del(msg);
    }
}


static int
pst_queue_heap_less(uint32_t a, uint32_t b)
{
    return heap[a]->due < heap[b]->due;
}


static void
pst_queue_heap_swap(uint32_t a, uint32_t b)
{
    pst_qmsg_t  *t = heap[a];

    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap = a;
    heap[b]->heap = b;
}


static void
pst_queue_heap_fix(uint32_t i)
{
    uint32_t  c;

    while (i > 0 && pst_queue_heap_less(i, (i - 1) / 2)) {
        pst_queue_heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for ( ;; ) {
        c = 2 * i + 1;
        if (c >= heap_n) {
            break;
        }
        if (c + 1 < heap_n && pst_queue_heap_less(c + 1, c)) {
            c++;
        }
        if (!pst_queue_heap_less(c, i)) {
            break;
        }
        pst_queue_heap_swap(i, c);
        i = c;
    }
}


static void
pst_queue_heap_set(pst_qmsg_t *msg, time_t due)
{
    void  *p;

    msg->due = due;
    if (msg->heap != (uint32_t) -1) {
        pst_queue_heap_fix(msg->heap);
        return;
    }
    if (heap_n == heap_cap) {
        p = realloc(heap, (heap_cap * 2 + 1024) * sizeof(pst_qmsg_t *));
        if (p == NULL) {
            pst_log_error(PST_LOG_ALERT, 0, "queue: %s: no memory to"
                          " schedule it", msg->id);
            return;
        }
        heap = p;
        heap_cap = heap_cap * 2 + 1024;
    }
    heap[heap_n] = msg;
    msg->heap = heap_n++;
    pst_queue_heap_fix(msg->heap);
}


static void
pst_queue_heap_del(pst_qmsg_t *msg)
{
    uint32_t  i = msg->heap;

    if (i == (uint32_t) -1) {
        return;
    }
    msg->heap = (uint32_t) -1;
    if (i != --heap_n) {
        heap[i] = heap[heap_n];
        heap[i]->heap = i;
        pst_queue_heap_fix(i);
    }
}


void
pst_queue_arm(void)
{
    time_t  now = pst_current_time_sec;

    if (heap_n == 0 || pst_q.stopping) {
        if (due_ev.timer_set) {
            pst_event_del_timer(&due_ev);
        }
        return;
    }
    pst_event_add_timer(&due_ev, heap[0]->due <= now ? 0
                                 : (pst_msec_t) (heap[0]->due - now) * 1000);
}


/* Recipients due now join their destinations' lists. */
static void
pst_queue_ready(pst_qmsg_t *msg, time_t now)
{
    pst_qrcpt_t  *r = msg->rcpts;
    pst_uint_t    i, j;
    int           listed;

    for (i = 0; i < msg->nrcpts; i++) {
        if (!pst_sched_due(&r[i], now)) {
            continue;
        }
        listed = 0;
        for (j = 0; j < msg->nrcpts && !listed; j++) {
            listed = j != i && r[j].dest == r[i].dest
                     && (r[j].flags & PST_QR_QUEUED);
        }
        if (!listed
            && pst_sched_push(&pst_q.sched, r[i].dest, msg) != PST_OK)
        {
            continue;
        }
        r[i].flags |= PST_QR_QUEUED;
    }
}


static void
pst_queue_due_handler(pst_event_t *ev)
{
    time_t      now = pst_current_time_sec;
    pst_uint_t  n;
    pst_qmsg_t *msg;

    (void) ev;

    for (n = 0; heap_n > 0 && heap[0]->due <= now
                && n < PST_QUEUE_DUE_BATCH && !pst_q.stopping; n++)
    {
        msg = heap[0];
        pst_queue_ready(msg, now);
        pst_queue_reschedule(msg);
        if (msg->heap == 0 && msg->due <= now) {
            /* nothing could be listed (no memory): try in a while */
            pst_queue_heap_set(msg, now + PST_QUEUE_IO_RETRY);
        }
    }

    pst_queue_arm();
    pst_queue_kick();
}


/* ------------------------------------------------------------------ */
/* Spool I/O of a message, one operation at a time                     */

static void pst_queue_simple_done(pst_qio_job_t *job);

static void
pst_queue_remove_run(pst_qio_job_t *job)
{
    pst_qsimple_t  *s = job->data;

    s->rc = pst_spool_remove((char *) s->msg->id);
    s->err = errno;
}


static void
pst_queue_hold_run(pst_qio_job_t *job)
{
    pst_qsimple_t    *s = job->data;
    pst_pool_t       *pool;
    pst_spool_msg_t   m;
    const char       *why;

    s->rc = PST_ERROR;
    pool = pst_create_pool(4096);
    if (pool == NULL) {
        return;
    }
    s->rc = pst_spool_msg_open(pool, (char *) s->msg->id, &m, &why);
    if (s->rc == PST_OK) {
        pst_spool_msg_close(&m);
        m.env.hold = s->hold;
        s->rc = s->hold ? pst_spool_state_write(&m.env)
                        : pst_spool_release_write(&m.env);
        s->err = errno;
    }
    pst_destroy_pool(pool);
}


static int
pst_queue_simple(pst_qmsg_t *msg, int hold, void (*run)(pst_qio_job_t *))
{
    pst_qsimple_t  *s;

    s = calloc(1, sizeof(pst_qsimple_t));
    if (s == NULL) {
        return PST_ERROR;
    }
    s->msg = msg;
    s->hold = hold;
    s->io.run = run;
    s->io.done = pst_queue_simple_done;
    s->io.data = s;
    msg->io_busy = 1;
    pst_qio_post(&s->io);
    return PST_OK;
}


static void
pst_queue_simple_done(pst_qio_job_t *job)
{
    pst_qsimple_t  *s = job->data;
    pst_qmsg_t     *msg = s->msg;

    if (msg->rel_io) {
        msg->rel_io = 0;
        rel_busy--;
        pst_queue_rel_pump();
    }

    if (job->run == pst_queue_remove_run) {
        msg->io_busy = 0;
        if (s->rc != PST_OK) {
            pst_log_error(PST_LOG_ERR, s->err, "queue: %s: cannot remove it",
                          msg->id);
        } else {
            pst_log_error(PST_LOG_INFO, 0, "%s: removed", msg->id);
        }
        free(s);
        pst_queue_forget(msg);
        return;
    }

    if (s->rc == PST_DECLINED) {
        /* gone: attempts that waited for this I/O never start */
        free(s);
        msg->io_want = 0;
        pst_queue_unstart(msg, 0);
        msg->io_busy = 0;
        msg->gone = 1;
        pst_queue_forget(msg);
        return;
    }
    msg->io_busy = 0;
    if (s->rc != PST_OK) {
        pst_log_error(PST_LOG_ERR, s->err, "queue: %s: cannot write its"
                      " hold state: tried again later", msg->id);
        msg->io_want |= PST_QM_HOLD;
        msg->retry_io = 1;
    }
    free(s);
    pst_queue_io_next(msg);
}


void
pst_queue_io(pst_qmsg_t *msg, unsigned what)
{
    msg->io_want |= (uint8_t) what;
    if (!msg->io_busy) {
        pst_queue_io_next(msg);
    }
}


static int
pst_queue_open_start(pst_qmsg_t *msg)
{
    pst_qopen_t  *o;

    o = calloc(1, sizeof(pst_qopen_t));
    if (o == NULL) {
        return PST_ERROR;
    }
    o->pool = pst_create_pool(8192);
    if (o->pool == NULL) {
        free(o);
        return PST_ERROR;
    }
    o->m.fd = -1;
    msg->open = o;
    msg->io_busy = 1;
    o->io.run = pst_queue_run_open;
    o->io.done = pst_queue_run_opened;
    o->io.data = msg;
    pst_qio_post(&o->io);
    return PST_OK;
}


static void
pst_queue_io_retry(pst_qmsg_t *msg)
{
    void  *p;

    msg->retry_io = 0;
    if (!msg->in_retry) {
        if (nretry == retry_cap) {
            p = realloc(retry_list, (retry_cap * 2 + 64) * sizeof(void *));
            if (p == NULL) {
                return;         /* the next event of msg tries again */
            }
            retry_list = p;
            retry_cap = retry_cap * 2 + 64;
        }
        retry_list[nretry++] = msg;
        msg->in_retry = 1;
    }
    if (!retry_ev.timer_set) {
        pst_event_add_timer(&retry_ev, PST_QUEUE_IO_RETRY * 1000);
    }
}


/*
 * The release lane.  A release's hold-0 state write waits here, at most
 * PST_QUEUE_REL_LANE of them in flight, so that releasing the whole
 * queue does not put thousands of writes (each with a flush) ahead of
 * the opens that the first attempts need, nor one in each attempt's
 * path.  A message that is open meanwhile has its release written by
 * its attempt's finish (the state written carries hold 0, a removal
 * makes it moot), or comes back here when it is closed.  So a crash
 * during the attempt of a released message may bring it back held:
 * never lost, never delivered twice by this.  The lane holds IDs, not
 * pointers: a message forgotten meanwhile is not found again.  When
 * the engine stops, every waiting write is posted.
 */
static void
pst_queue_rel_next(pst_qmsg_t *msg)
{
    if (msg->rel_go) {
        msg->rel_go = 0;
        msg->io_want &= (uint8_t) ~PST_QM_HOLD;
        if (pst_queue_simple(msg, 0, pst_queue_hold_run) != PST_OK) {
            msg->io_want |= PST_QM_HOLD;
            pst_queue_io_retry(msg);
            return;
        }
        msg->rel_io = 1;
        rel_busy++;
        return;
    }
    if (msg->in_rel) {
        return;
    }
    if (pst_qids_push(&rel, msg->id) != PST_OK) {
        pst_queue_io_retry(msg);        /* its next event tries again */
        return;
    }
    msg->in_rel = 1;
    pst_queue_rel_pump();
}


static void
pst_queue_rel_pump(void)
{
    pst_qmsg_t  *msg;

    while (rel.n > 0 && (rel_busy < PST_QUEUE_REL_LANE || pst_q.stopping)) {
        msg = pst_queue_find((u_char *) rel.id[rel.head]);
        pst_qids_drop(&rel, 1);
        if (msg == NULL || !msg->in_rel) {
            continue;
        }
        msg->in_rel = 0;
        if (msg->io_busy || msg->open != NULL || msg->hold
            || !(msg->io_want & PST_QM_HOLD))
        {
            continue;   /* an open took it, or its next I/O comes back */
        }
        msg->rel_go = 1;
        pst_queue_io_next(msg);
    }
}


static void
pst_queue_io_next(pst_qmsg_t *msg)
{
    pst_qopen_t  *o = msg->open;

    if (msg->io_busy) {
        return;
    }
    if (msg->retry_io) {
        pst_queue_io_retry(msg);
        return;
    }

    if (msg->io_want & PST_QM_DELETE) {
        if (msg->jobs > 0) {
            return;                 /* when the last attempt is gone */
        }
        msg->io_want = 0;
        if (pst_queue_simple(msg, 0, pst_queue_remove_run) != PST_OK) {
            msg->io_want = PST_QM_DELETE;
            pst_queue_io_retry(msg);
        }
        return;
    }

    if (o == NULL && (msg->io_want & (PST_QM_FINISH | PST_QM_OPEN))) {
        if (pst_queue_open_start(msg) != PST_OK) {
            pst_queue_io_retry(msg);
        }
        return;
    }

    if (o == NULL && (msg->io_want & PST_QM_HOLD) && !msg->hold) {
        pst_queue_rel_next(msg);
        return;
    }

    /* open: a hold is written now, a release by the finish */
    if ((msg->io_want & PST_QM_HOLD) && o != NULL && msg->hold) {
        msg->io_want = (uint8_t) ((msg->io_want & ~PST_QM_HOLD)
                                  | PST_QM_FINISH);
    }

    if (msg->io_want & PST_QM_FINISH) {
        msg->io_want &= (uint8_t) ~(PST_QM_FINISH | PST_QM_OPEN);
        if (pst_queue_finish_start(msg) != PST_OK) {
            msg->io_want |= PST_QM_FINISH;
            pst_queue_io_retry(msg);
        }
        return;
    }

    if ((msg->io_want & PST_QM_HOLD) && msg->hold) {
        msg->io_want &= (uint8_t) ~PST_QM_HOLD;
        if (pst_queue_simple(msg, msg->hold, pst_queue_hold_run) != PST_OK) {
            msg->io_want |= PST_QM_HOLD;
            pst_queue_io_retry(msg);
        }
        return;
    }

    msg->io_want &= (uint8_t) ~PST_QM_OPEN;

    /* nothing left to do with the file: close it */
    if (o != NULL && msg->jobs == 0 && msg->waiting == NULL) {
        pst_spool_msg_close(&o->m);
        pst_destroy_pool(o->pool);
        free(o);
        msg->open = NULL;
        if ((msg->io_want & PST_QM_HOLD) && !msg->hold) {
            pst_queue_rel_next(msg);    /* a release the finish did not */
        }
        pst_queue_reschedule(msg);
        pst_queue_arm();
    }
    pst_queue_check_done();
}


/* Let the message's next I/O run (after an operation's done). */
void
pst_queue_io_done(pst_qmsg_t *msg)
{
    msg->io_busy = 0;
    pst_queue_io_next(msg);
}


static void
pst_queue_retry_handler(pst_event_t *ev)
{
    pst_qmsg_t  **list;
    pst_uint_t    i, n;

    (void) ev;

    list = retry_list;
    n = nretry;
    retry_list = NULL;
    nretry = retry_cap = 0;
    for (i = 0; i < n; i++) {
        list[i]->in_retry = 0;
    }
    for (i = 0; i < n; i++) {
        pst_queue_io_next(list[i]);
    }
    free(list);

    n = nlater;
    nlater = 0;
    for (i = 0; i < n; i++) {
        pst_queue_committed((u_char *) later[i], PST_QUEUE_ID_LEN);
    }

    pst_queue_scan_next();
    pst_queue_commit_next();
}


/* ------------------------------------------------------------------ */

/* postern_queue_deferred: messages waiting (not held); _hold: held */
void
pst_queue_gauges(void)
{
    pst_metric_set(PST_M_QUEUE_HOLD, pst_q.held);
    pst_metric_set(PST_M_QUEUE_DEFERRED, pst_q.nmsgs - pst_q.held);
}


void
pst_queue_check_done(void)
{
    if (pst_q.done != NULL && pst_q.jobs == 0 && pst_qio_busy() == 0
        && rel.n == 0 && !pst_q.draining && !pst_q.drain_after_load)
    {
        *pst_q.done = 1;
    }
}


void
pst_queue_shutdown(int *done)
{
    pst_q.stopping = 1;
    pst_q.done = done;
    if (due_ev.timer_set) {
        pst_event_del_timer(&due_ev);
    }
    pst_log_error(PST_LOG_INFO, 0, "queue: stopping: %lu attempt(s) and %lu"
                  " spool operation(s) to finish", (unsigned long) pst_q.jobs,
                  (unsigned long) pst_qio_busy());
    pst_queue_rel_pump();               /* every waiting release */
    (void) pst_qdrain_on_quit();        /* drain_on_quit */
    pst_queue_check_done();
}


void
pst_queue_exit(void)
{
    pst_q.stopping = 1;
    pst_qdrain_cancel();
    pst_queue_cancel_jobs(NULL);
    pst_deliver_exit();
    pst_qio_exit();
    pst_queue_ctx_clear();              /* before the modules' exit */
    if (due_ev.timer_set) {
        pst_event_del_timer(&due_ev);
    }
    if (retry_ev.timer_set) {
        pst_event_del_timer(&retry_ev);
    }
    pst_log_debug("queue: engine stopped");
}


int
pst_queue_control(int argc, char **argv, pst_buf_t *out)
{
    return pst_queue_admin(argc, argv, out);
}
