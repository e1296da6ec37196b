/*
 * pst_event.c -- timers, posted events and the module timer/fd API
 * (see pst_event.h).  The I/O backend is in pst_event_epoll.c.
 */

#include "pst_core.h"
#include "pst_event.h"


volatile pst_msec_t  pst_current_time_msec;
volatile time_t      pst_current_time_sec;
sigset_t             pst_wait_sigmask;

static pst_event_t  **timer_heap;
static pst_uint_t     timer_count;
static pst_uint_t     timer_alloc;
static pst_list_t     posted_events;

struct pst_timer_s {
    pst_event_t                  ev;
    pst_timer_pt                 handler;
    void                        *data;
};


static void pst_heap_up(pst_uint_t i);
static void pst_heap_down(pst_uint_t i);
static void pst_timer_handler(pst_event_t *ev);


/* the test harness's clock (libpostern-test): stopped, moved only by
 * pst_time_advance() */
static int         time_frozen;
static pst_msec_t  time_frozen_msec, time_frozen_base;
static time_t      time_frozen_sec;


void
pst_time_freeze(void)
{
    pst_time_update();
    time_frozen_msec = pst_current_time_msec;
    time_frozen_base = pst_current_time_msec;
    time_frozen_sec = pst_current_time_sec;
    time_frozen = 1;
}


void
pst_time_advance(pst_msec_t ms)
{
    time_frozen_msec += ms;
    pst_current_time_msec = time_frozen_msec;
    pst_current_time_sec = time_frozen_sec
        + (time_t) ((time_frozen_msec - time_frozen_base) / 1000);
}


void
pst_time_update(void)
{
    struct timespec  ts;

    if (time_frozen) {
        pst_current_time_msec = time_frozen_msec;
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pst_current_time_msec = (pst_msec_t) ts.tv_sec * 1000
                            + (pst_msec_t) ts.tv_nsec / 1000000;
    pst_current_time_sec = time(NULL);
}


pst_msec_t
pst_current_msec(void)
{
    return pst_current_time_msec;
}


time_t
pst_current_time(void)
{
    /* before any loop ran (a module's init at configuration time) */
    return pst_current_time_sec != 0 ? pst_current_time_sec : time(NULL);
}


int
pst_event_timers_init(void)
{
    pst_list_init(&posted_events);
    timer_count = 0;
    if (timer_heap == NULL) {
        timer_alloc = 1024;
        timer_heap = malloc(timer_alloc * sizeof(pst_event_t *));
        if (timer_heap == NULL) {
            return PST_ERROR;
        }
    }
    pst_time_update();
    return PST_OK;
}


static void
pst_heap_swap(pst_uint_t a, pst_uint_t b)
{
    pst_event_t  *t;

    t = timer_heap[a];
    timer_heap[a] = timer_heap[b];
    timer_heap[b] = t;
    timer_heap[a]->timer_index = a;
    timer_heap[b]->timer_index = b;
}


static void
pst_heap_up(pst_uint_t i)
{
    pst_uint_t  parent;

    while (i > 0) {
        parent = (i - 1) / 2;
        if (timer_heap[parent]->timer_key <= timer_heap[i]->timer_key) {
            break;
        }
        pst_heap_swap(i, parent);
        i = parent;
    }
}


static void
pst_heap_down(pst_uint_t i)
{
    pst_uint_t  l, r, m;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;
        if (l < timer_count
            && timer_heap[l]->timer_key < timer_heap[m]->timer_key)
        {
            m = l;
        }
        if (r < timer_count
            && timer_heap[r]->timer_key < timer_heap[m]->timer_key)
        {
            m = r;
        }
        if (m == i) {
            return;
        }
        pst_heap_swap(i, m);
        i = m;
    }
}


void
pst_event_add_timer(pst_event_t *ev, pst_msec_t ms)
{
    pst_event_t  **h;

    if (ev->timer_set) {
        pst_event_del_timer(ev);
    }

    if (timer_count == timer_alloc) {
        h = realloc(timer_heap, 2 * timer_alloc * sizeof(pst_event_t *));
        if (h == NULL) {
            /* keep running: the timer is lost, the caller's session will
             * still end when its peer goes away */
            pst_log_error(PST_LOG_ALERT, ENOMEM, "timer heap full");
            return;
        }
        timer_heap = h;
        timer_alloc *= 2;
    }

    ev->timer_key = pst_current_time_msec + ms;
    ev->timer_index = timer_count;
    ev->timer_set = 1;
    ev->timedout = 0;
    timer_heap[timer_count++] = ev;
    pst_heap_up(ev->timer_index);
}


void
pst_event_del_timer(pst_event_t *ev)
{
    pst_uint_t  i;

    if (!ev->timer_set) {
        return;
    }

    i = ev->timer_index;
    ev->timer_set = 0;
    timer_count--;

    if (i != timer_count) {
        timer_heap[i] = timer_heap[timer_count];
        timer_heap[i]->timer_index = i;
        pst_heap_down(i);
        pst_heap_up(i);
    }
}


pst_msec_t
pst_event_find_timer(void)
{
    if (timer_count == 0) {
        return (pst_msec_t) -1;
    }

    if (timer_heap[0]->timer_key <= pst_current_time_msec) {
        return 0;
    }

    return timer_heap[0]->timer_key - pst_current_time_msec;
}


void
pst_event_expire_timers(void)
{
    pst_event_t  *ev;

    while (timer_count > 0
           && timer_heap[0]->timer_key <= pst_current_time_msec)
    {
        ev = timer_heap[0];
        pst_event_del_timer(ev);
        ev->timedout = 1;
        ev->handler(ev);
    }
}


pst_uint_t
pst_event_timer_count(void)
{
    return timer_count;
}


void
pst_post_event(pst_event_t *ev)
{
    if (ev->posted) {
        return;
    }
    ev->posted = 1;
    pst_list_insert_tail(&posted_events, &ev->posted_link);
}


void
pst_delete_posted_event(pst_event_t *ev)
{
    if (!ev->posted) {
        return;
    }
    ev->posted = 0;
    pst_list_remove(&ev->posted_link);
}


void
pst_event_process_posted(void)
{
    pst_list_t   *l;
    pst_event_t  *ev;

    while (!pst_list_empty(&posted_events)) {
        l = pst_list_head(&posted_events);
        ev = pst_list_data(l, pst_event_t, posted_link);
        pst_delete_posted_event(ev);
        ev->handler(ev);
    }
}


/* Module API: one-shot timers. */

static void
pst_timer_handler(pst_event_t *ev)
{
    pst_timer_t  *t = ev->data;

    t->handler(t->data);
    free(t);
}


pst_timer_t *
pst_timer_add(pst_msec_t delay, pst_timer_pt handler, void *data)
{
    pst_timer_t  *t;

    t = calloc(1, sizeof(pst_timer_t));
    if (t == NULL) {
        return NULL;
    }

    t->ev.data = t;
    t->ev.handler = pst_timer_handler;
    t->handler = handler;
    t->data = data;
    pst_event_add_timer(&t->ev, delay);

    if (!t->ev.timer_set) {
        free(t);
        return NULL;
    }

    return t;
}


void
pst_timer_cancel(pst_timer_t *t)
{
    if (t == NULL) {
        return;
    }
    pst_event_del_timer(&t->ev);
    free(t);
}
