/*
 * pst_queue_int.h -- the delivery engine's own types, shared by its
 * files (pst_queue.c: messages, loading, timers; pst_queue_run.c:
 * attempts and outcomes; pst_queue_admin.c: control verbs;
 * pst_bounce.c: DSNs; pst_queue_conf.c: directives).  Queue process
 * only; see docs/RELAY.md.
 */

#ifndef PST_QUEUE_INT_H
#define PST_QUEUE_INT_H

#include "pst_spool.h"
#include "pst_deliver.h"
#include "pst_sched.h"
#include "pst_qio.h"


typedef struct {
    pst_int_t           hold;               /* relay_hold */
    pst_int_t           concurrency;        /* relay_concurrency */
    pst_int_t           dest_concurrency;   /* ..._destination_concurrency */
    pst_int_t           rcpt_limit;         /* ..._destination_rcpt_limit */
    pst_msec_t          min_backoff;
    pst_msec_t          max_backoff;
    pst_msec_t          dead_dest;          /* relay_dead_destination */
    pst_msec_t          max_lifetime;       /* max_queue_lifetime */
    pst_msec_t          bounce_lifetime;    /* bounce_queue_lifetime */
    pst_msec_t          delay_warning;      /* delay_warning_time; 0 off */
    pst_str_t           drain_on_quit;      /* "ADDR:PORT", or empty */
    pst_sockaddr_t      drain_sa;
    socklen_t           drain_len;
} pst_queue_conf_t;

/* The cycle's values (defaults applied). */
const pst_queue_conf_t *pst_queue_conf(pst_cycle_t *cycle);


typedef struct pst_qjob_s   pst_qjob_t;
typedef struct pst_qopen_s  pst_qopen_t;
typedef struct pst_qmsg_s   pst_qmsg_t;

/* pending I/O of a message (one operation in flight at a time) */
#define PST_QM_OPEN       0x01
#define PST_QM_FINISH     0x02     /* write outcomes, DSNs, maybe remove */
#define PST_QM_HOLD       0x04     /* persist msg->hold (not open) */
#define PST_QM_DELETE     0x08

struct pst_qmsg_s {
    pst_qmsg_t         *hnext;       /* ID hash chain */
    time_t              arrival;
    time_t              due;         /* heap key */
    uint32_t            heap;        /* index in the heap, or -1 */
    uint32_t            nrcpts;
    uint32_t            jobs;        /* running attempts */
    uint8_t             io_want;     /* PST_QM_* */
    unsigned            io_busy:1;
    unsigned            hold:1;
    unsigned            null_sender:1;
    unsigned            deleted:1;
    unsigned            gone:1;      /* removed from the spool */
    unsigned            retry_io:1;  /* an I/O failed: try again later */
    unsigned            in_retry:1;  /* in the retry list */
    unsigned            in_rel:1;    /* in the release lane */
    unsigned            rel_go:1;    /* the lane's turn: write it now */
    unsigned            rel_io:1;    /* its write is the lane's */
    unsigned            disk_final:1;  /* its state on disk has outcomes */
    unsigned            drain_wait:1;  /* the drain waits for its attempt */
    pst_qopen_t        *open;        /* while attempts or I/O need it */
    pst_qjob_t         *waiting;     /* attempts waiting for the open */
    u_char              id[PST_QUEUE_ID_LEN + 1];
    pst_qrcpt_t         rcpts[];
};

/* An open message: its envelope (with replies) and file. */
struct pst_qopen_s {
    pst_pool_t         *pool;
    pst_spool_msg_t     m;
    unsigned            ready:1;     /* m is read */
    unsigned            remove_ordered:1;  /* pst_spool_remove() */
    pst_qio_job_t       io;
    /* the finish in flight */
    pst_envelope_t      snap;        /* the state written */
    pst_array_t         snap_arr;
    pst_env_rcpt_t     *snap_rcpts;
    pst_uint_t         *dsn_which[4];   /* by pst_dsn_action_e */
    pst_uint_t          dsn_n[4];
    int                 dsn_rc[4];
    u_char              dsn_id[4][PST_QUEUE_ID_LEN + 1];
    time_t              retry_until; /* delay DSNs */
    int                 remove;      /* every recipient final */
    int                 removed;
    int                 rc;
    int                 err;
    const char         *why;
};

struct pst_qjob_s {
    pst_list_t          link;        /* running attempts */
    pst_qjob_t         *next;        /* waiting for the open */
    pst_qmsg_t         *msg;
    pst_qdest_t        *dest;
    pst_dlv_t          *dlv;
    pst_dlv_job_t       dj;
    unsigned            drain:1;     /* a node transfer (pst_queue_drain.c) */
    pst_dlv_rcpt_t      rcpts[];
};


/* pst_queue.c */
typedef struct {
    const pst_queue_conf_t  *conf;
    pst_cycle_t             *cycle;
    pst_sched_t              sched;
    const char              *hostname;   /* reporting MTA */
    pst_uint_t               nmsgs;
    pst_uint_t               held;
    pst_uint_t               jobs;       /* running attempts */
    int                     *done;       /* pst_queue_shutdown() */
    unsigned                 stopping:1;
    unsigned                 loading:1;
    unsigned                 flush_on_load:1; /* a flush ALL met the scan */
    unsigned                 draining:1;  /* a drain pass: no attempt */
    unsigned                 drain_after_load:1; /* drain_on_quit met the
                                                    scan: it ends first */
    /* the last hold ALL / release ALL (PST_QUEUE_ALL_*), numbered: a
     * message a load was already reading when it came gets it too */
    uint32_t                 all_gen;
    int                      all_verb;
    time_t                   all_time;   /* when it came */
} pst_queue_t;

extern pst_queue_t  pst_q;

/* Whether the engine still takes messages in: not once it stops, unless
 * drain_on_quit waits for the spool scan to know every message. */
#define pst_queue_taking()  (!pst_q.stopping || pst_q.drain_after_load)

pst_qmsg_t *pst_queue_find(const u_char *id);
/* The hash of a queue ID (PST_QUEUE_ID_LEN bytes). */
pst_uint_t pst_queue_hash(const u_char *id);
/* pst_queue_admin.c: msg's deferred (and pending) recipients, of dest
 * or all, due now; 1 when there was one. */
int pst_qadmin_flush_msg(pst_qmsg_t *msg, pst_qdest_t *dest);
#define PST_QUEUE_ALL_HOLD     1
#define PST_QUEUE_ALL_RELEASE  2
/* Apply the last hold ALL / release ALL to a message just loaded. */
void pst_qadmin_late(pst_qmsg_t *msg);
/* Hold msg durably, as "hold ID" does (a transport table hold rule). */
void pst_qadmin_late_hold(pst_qmsg_t *msg);
/* Recompute msg's next due time and (re)place it in the heap. */
void pst_queue_reschedule(pst_qmsg_t *msg);
/* The message is done with (gone from the spool, or deleted). */
void pst_queue_forget(pst_qmsg_t *msg);
void pst_queue_note_final(pst_qmsg_t *msg, const pst_env_rcpt_t *r,
    pst_uint_t n);
/* Ask for I/O on msg (PST_QM_*); runs when the previous one is done. */
void pst_queue_io(pst_qmsg_t *msg, unsigned what);
/* The due timer set for the earliest message. */
void pst_queue_arm(void);
/* Something changed that may let attempts start. */
void pst_queue_kick(void);
void pst_queue_check_done(void);
void pst_queue_gauges(void);
/* Iterate: cb on every message (control verbs). */
void pst_queue_each(void (*cb)(pst_qmsg_t *msg, void *data), void *data);
time_t pst_queue_expiry(const pst_qmsg_t *msg);
/* The same for a message that arrived then (max_queue_lifetime, or
 * bounce_queue_lifetime for the null sender's). */
time_t pst_queue_expiry_of(const pst_queue_conf_t *conf, time_t arrival,
    int null_sender);

void pst_queue_io_done(pst_qmsg_t *msg);

/* pst_queue_run.c */
void pst_queue_cancel_jobs(pst_qmsg_t *msg);
/* Count job as running and launch it (once msg is open). */
void pst_queue_job_run(pst_qjob_t *job);
/* An attempt is over (done, never started, or cancelled). */
void pst_queue_job_end(pst_qjob_t *job, int ran, int ok, int dest_failed);
/* End the attempts waiting for msg's open (retry: their next try). */
void pst_queue_unstart(pst_qmsg_t *msg, time_t retry);
/* the open operation (io.data: the message) */
void pst_queue_run_open(pst_qio_job_t *job);
void pst_queue_run_opened(pst_qio_job_t *job);
/* the finish operation: outcomes durable, DSNs, removal */
int pst_queue_finish_start(pst_qmsg_t *msg);

/* pst_bounce.c */
/* Which recipients of the open message owe which DSN now (into
 * o->dsn_which / dsn_n, by pst_dsn_action_e); 1 when any does. */
int pst_bounce_plan(pst_qmsg_t *msg, time_t now);
/* Thread: build and inject the planned DSNs (results in o->dsn_rc). */
void pst_bounce_inject(pst_qopen_t *o, const char *hostname,
    const pst_queue_conf_t *conf);
/* Loop: record what went out (dsn_sent bits, events, log); the
 * number of reports that could not be queued. */
pst_uint_t pst_bounce_done(pst_qmsg_t *msg);
/* The pst_dsn_action_e a recipient's DSN would have now, -1: none;
 * how a delivered recipient went: 0 to a hop that reports itself (DSN),
 * PST_BOUNCE_RELAYED to one without DSN, PST_BOUNCE_FINAL into a
 * mailbox. */
#define PST_BOUNCE_RELAYED     1
#define PST_BOUNCE_FINAL       2
int pst_bounce_action(const pst_env_rcpt_t *r, unsigned how,
    time_t arrival, time_t now, time_t delay_warning);

/* pst_queue_admin.c */
int pst_queue_admin(int argc, char **argv, pst_buf_t *out);

/* pst_queue_drain.c: postern queue drain, drain_on_quit */
int pst_qdrain_control(int argc, char **argv, pst_buf_t *out);
/* QUIT: drain to conf->drain_on_quit first; 1 when a drain started. */
int pst_qdrain_on_quit(void);
/* A drain job is done: the outcomes (moved or untouched). */
void pst_qdrain_done(pst_qjob_t *job);
/* A job of msg ended (after the engine's bookkeeping). */
void pst_qdrain_job_ended(pst_qmsg_t *msg, int drain, int dest_failed);
/* The engine stops now: no new transfer (the running ones are
 * cancelled with the attempts). */
void pst_qdrain_cancel(void);
/* msg is forgotten while the drain waited for it. */
void pst_qdrain_forget(pst_qmsg_t *msg);

#endif /* PST_QUEUE_INT_H */
