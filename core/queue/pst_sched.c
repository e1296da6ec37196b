/*
 * pst_sched.c -- destinations, their ready lists and concurrency
 * windows, back-off and batching (see pst_sched.h).
 *
 * The window of a destination starts at PST_SCHED_INIT_WINDOW (at most
 * relay_destination_concurrency) and, in the spirit of Postfix's qmgr,
 * grows by one after as many successful attempts as the window is wide
 * and shrinks by one on each failed one; an attempt that reached no hop
 * at all (job->dest_failed) marks the destination dead for
 * relay_dead_destination: its ready mail waits, untried, until then.
 */

#include "pst_core.h"
#include "pst_envelope.h"
#include "pst_sched.h"

#define PST_SCHED_HASH_MIN   1024


int
pst_sched_init(pst_sched_t *s, pst_uint_t max_window)
{
    memset(s, 0, sizeof(pst_sched_t));
    s->hsize = PST_SCHED_HASH_MIN;
    s->hash = calloc(s->hsize, sizeof(pst_qdest_t *));
    if (s->hash == NULL) {
        return PST_ERROR;
    }
    pst_list_init(&s->ring);
    s->max_window = max_window > 0 ? max_window : 1;
    s->init_window = pst_min(PST_SCHED_INIT_WINDOW, s->max_window);
    return PST_OK;
}


void
pst_sched_free(pst_sched_t *s)
{
    pst_qdest_t   *d, *next;
    pst_qentry_t  *e, *en;
    pst_uint_t     i;

    for (i = 0; s->hash != NULL && i < s->hsize; i++) {
        for (d = s->hash[i]; d != NULL; d = next) {
            next = d->hnext;
            for (e = d->head; e != NULL; e = en) {
                en = e->next;
                free(e);
            }
            free(d);
        }
    }
    for (e = s->free; e != NULL; e = en) {
        en = e->next;
        free(e);
    }
    free(s->hash);
    memset(s, 0, sizeof(pst_sched_t));
}


static pst_uint_t
pst_sched_hash(const u_char *p, size_t n)
{
    pst_uint_t  h = 5381;

    while (n--) {
        h = h * 33 + (pst_uint_t) pst_tolower(*p);
        p++;
    }
    return h;
}


pst_qdest_t *
pst_sched_find(pst_sched_t *s, const u_char *name, size_t len)
{
    pst_qdest_t  *d;

    for (d = s->hash[pst_sched_hash(name, len) % s->hsize]; d != NULL;
         d = d->hnext)
    {
        if (d->name.len == len && pst_strncasecmp(d->name.data, name, len)
                                  == 0)
        {
            return d;
        }
    }
    return NULL;
}


/* Twice as many buckets once there are twice as many destinations. */
static void
pst_sched_grow(pst_sched_t *s)
{
    pst_qdest_t  **h, *d, *next;
    pst_uint_t     i, size = s->hsize * 2, k;

    h = calloc(size, sizeof(pst_qdest_t *));
    if (h == NULL) {
        return;                 /* longer chains, still correct */
    }
    for (i = 0; i < s->hsize; i++) {
        for (d = s->hash[i]; d != NULL; d = next) {
            next = d->hnext;
            k = pst_sched_hash(d->name.data, d->name.len) % size;
            d->hnext = h[k];
            h[k] = d;
        }
    }
    free(s->hash);
    s->hash = h;
    s->hsize = size;
}


pst_qdest_t *
pst_sched_dest(pst_sched_t *s, const u_char *name, size_t len)
{
    pst_qdest_t  *d;
    pst_uint_t    h;

    d = pst_sched_find(s, name, len);
    if (d != NULL) {
        return d;
    }

    d = calloc(1, sizeof(pst_qdest_t) + len + 1);
    if (d == NULL) {
        return NULL;
    }
    d->name.data = (u_char *) (d + 1);
    d->name.len = len;
    pst_strlow(d->name.data, name, len);
    d->tail = &d->head;
    d->window = s->init_window;

    if (s->ndests >= s->hsize * 2) {
        pst_sched_grow(s);
    }
    h = pst_sched_hash(name, len) % s->hsize;
    d->hnext = s->hash[h];
    s->hash[h] = d;
    s->ndests++;
    return d;
}


int
pst_sched_push(pst_sched_t *s, pst_qdest_t *d, void *msg)
{
    pst_qentry_t  *e;

    e = s->free;
    if (e != NULL) {
        s->free = e->next;
    } else {
        e = malloc(sizeof(pst_qentry_t));
        if (e == NULL) {
            return PST_ERROR;
        }
    }
    e->msg = msg;
    e->next = NULL;
    *d->tail = e;
    d->tail = &e->next;
    if (d->nready++ == 0) {
        pst_list_insert_tail(&s->ring, &d->ring);
    }
    return PST_OK;
}


void *
pst_sched_pop(pst_sched_t *s, pst_qdest_t *d)
{
    pst_qentry_t  *e;
    void          *msg;

    e = d->head;
    if (e == NULL) {
        return NULL;
    }
    d->head = e->next;
    if (d->head == NULL) {
        d->tail = &d->head;
    }
    if (--d->nready == 0) {
        pst_list_remove(&d->ring);
    }
    msg = e->msg;
    e->next = s->free;
    s->free = e;
    return msg;
}


void
pst_sched_unlink(pst_sched_t *s, pst_qdest_t *d, void *msg)
{
    pst_qentry_t  **pe, *e;

    for (pe = &d->head; *pe != NULL; ) {
        e = *pe;
        if (e->msg != msg) {
            pe = &e->next;
            continue;
        }
        *pe = e->next;
        e->next = s->free;
        s->free = e;
        if (--d->nready == 0) {
            pst_list_remove(&d->ring);
        }
    }
    d->tail = pe;
}


pst_qdest_t *
pst_sched_next(pst_sched_t *s, time_t now, time_t *wake)
{
    pst_list_t   *l, *first;
    pst_qdest_t  *d;

    *wake = 0;
    first = NULL;

    /* round robin: the destination served goes to the tail */
    while (!pst_list_empty(&s->ring)) {
        l = pst_list_head(&s->ring);
        if (l == first) {
            return NULL;
        }
        d = pst_list_data(l, pst_qdest_t, ring);
        pst_list_remove(l);
        pst_list_insert_tail(&s->ring, l);
        if (first == NULL) {
            first = l;
        }

        if (d->dead_until > now) {
            if (*wake == 0 || d->dead_until < *wake) {
                *wake = d->dead_until;
            }
            continue;
        }
        if (d->active < d->window) {
            return d;
        }
    }
    return NULL;
}


void
pst_sched_feedback(pst_sched_t *s, pst_qdest_t *d, int ok, int dest_failed,
    time_t now, time_t dead)
{
    if (ok) {
        d->failures = 0;
        d->dead_until = 0;
        if (++d->successes >= d->window && d->window < s->max_window) {
            d->window++;
            d->successes = 0;
        }
        return;
    }

    d->successes = 0;
    d->failures++;
    if (d->window > 1) {
        d->window--;
    }
    if (dest_failed) {
        d->dead_until = now + dead;
    }
}


time_t
pst_sched_backoff(unsigned attempts, time_t min, time_t max)
{
    time_t    t = min > 0 ? min : 1;
    unsigned  i;

    for (i = 1; i < attempts && t < max; i++) {
        t *= 2;
    }
    return t < max ? t : max;
}


int
pst_sched_due(const pst_qrcpt_t *r, time_t now)
{
    if (r->state != PST_RCPT_PENDING && r->state != PST_RCPT_DEFERRED) {
        return 0;
    }
    if (r->flags & (PST_QR_QUEUED | PST_QR_BUSY)) {
        return 0;
    }
    return r->next_try <= now || (r->flags & PST_QR_FLUSH);
}


pst_uint_t
pst_sched_batch(pst_qrcpt_t *r, pst_uint_t n, pst_qdest_t *dest,
    pst_uint_t limit, pst_uint_t *which)
{
    pst_uint_t  i, k = 0;

    for (i = 0; i < n && k < limit; i++) {
        if (r[i].dest != dest || !(r[i].flags & PST_QR_QUEUED)) {
            continue;
        }
        r[i].flags &= ~(PST_QR_QUEUED | PST_QR_FLUSH);
        r[i].flags |= PST_QR_BUSY;
        which[k++] = i;
    }
    return k;
}
