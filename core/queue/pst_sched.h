/*
 * pst_sched.h -- the relay scheduler's bookkeeping, without I/O:
 * destinations (interned next-hop domains) with their list of messages
 * ready to go, the per-destination concurrency window and its
 * feedback, dead destinations, the retry back-off and the choice of a
 * transaction's recipients.  Pure enough for the unit tests
 * (tests/unit/check_sched.c); the engine (pst_queue*.c) drives it.
 */

#ifndef PST_SCHED_H
#define PST_SCHED_H

typedef struct pst_qdest_s   pst_qdest_t;
typedef struct pst_qentry_s  pst_qentry_t;

struct pst_qentry_s {
    pst_qentry_t       *next;
    void               *msg;
};

struct pst_qdest_s {
    pst_qdest_t        *hnext;       /* hash chain */
    pst_list_t          ring;        /* ready destinations */
    pst_qentry_t       *head;        /* messages with recipients due here */
    pst_qentry_t      **tail;
    pst_uint_t          nready;
    pst_uint_t          active;      /* running attempts */
    pst_uint_t          window;      /* concurrency allowed now */
    pst_uint_t          successes;   /* since the window last grew */
    pst_uint_t          failures;    /* in a row */
    time_t              dead_until;
    pst_str_t           name;        /* lower case */
};

typedef struct {
    pst_qdest_t       **hash;
    pst_uint_t          hsize;
    pst_uint_t          ndests;
    pst_list_t          ring;        /* destinations with ready entries */
    pst_uint_t          init_window;
    pst_uint_t          max_window;
    pst_qentry_t       *free;        /* recycled entries */
} pst_sched_t;

/* The compact state of a recipient as the engine keeps it. */
typedef struct {
    pst_qdest_t        *dest;
    time_t              next_try;
    uint16_t            attempts;
    uint8_t             state;       /* pst_rcpt_state_e */
    uint8_t             flags;       /* PST_QR_* */
    uint8_t             notify;      /* PST_NOTIFY_* */
    uint8_t             dsn_sent;    /* PST_NOTIFY_* of the DSNs sent */
} pst_qrcpt_t;

#define PST_QR_QUEUED     0x01     /* waiting in its destination's list */
#define PST_QR_BUSY       0x02     /* in a running attempt */
#define PST_QR_RELAYED    0x04     /* delivered to a hop without DSN */
#define PST_QR_FLUSH      0x08     /* due now whatever next_try says */
#define PST_QR_FINAL      0x10     /* delivered into a mailbox */

/* Postfix's initial_destination_concurrency */
#define PST_SCHED_INIT_WINDOW   5

int pst_sched_init(pst_sched_t *s, pst_uint_t max_window);
void pst_sched_free(pst_sched_t *s);
/* The destination named (copied, lower-cased), created on first use;
 * NULL: no memory. */
pst_qdest_t *pst_sched_dest(pst_sched_t *s, const u_char *name, size_t len);
pst_qdest_t *pst_sched_find(pst_sched_t *s, const u_char *name, size_t len);
/* A message with recipients due for dest joins its list (tail). */
int pst_sched_push(pst_sched_t *s, pst_qdest_t *d, void *msg);
/* Take the first message of dest's list; NULL when empty. */
void *pst_sched_pop(pst_sched_t *s, pst_qdest_t *d);
/* Drop every entry of msg from dest's list. */
void pst_sched_unlink(pst_sched_t *s, pst_qdest_t *d, void *msg);
/* The next destination that may start an attempt now (ready, not dead,
 * below its window), round robin; NULL when none.  *wake: the earliest
 * time a dead destination with ready mail comes back (0: none). */
pst_qdest_t *pst_sched_next(pst_sched_t *s, time_t now, time_t *wake);
/* An attempt ended: ok (some recipient got an answer from the
 * destination), dest_failed (no hop reachable: dead until now + dead). */
void pst_sched_feedback(pst_sched_t *s, pst_qdest_t *d, int ok,
    int dest_failed, time_t now, time_t dead);

/* Seconds until the next try after attempt number attempts (1 = the
 * first failed): min doubled each time, at most max. */
time_t pst_sched_backoff(unsigned attempts, time_t min, time_t max);
/* Recipients of r[0..n) for dest that wait in its list (QUEUED), at
 * most limit, into which[]; they become BUSY.  Returns the number. */
pst_uint_t pst_sched_batch(pst_qrcpt_t *r, pst_uint_t n, pst_qdest_t *dest,
    pst_uint_t limit, pst_uint_t *which);
/* 1 when recipient r is due at now (pending or deferred, not held back
 * by another attempt or the list). */
int pst_sched_due(const pst_qrcpt_t *r, time_t now);

#endif /* PST_SCHED_H */
