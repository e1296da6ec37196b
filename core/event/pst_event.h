/*
 * pst_event.h -- the worker's event loop: I/O readiness, timers, posted
 * events.
 *
 * Sockets are registered once, edge-triggered, for both directions; an
 * event's `ready` flag says the kernel reported readiness and is cleared
 * by the reader or writer when a call returns EAGAIN.  Other descriptors
 * (listeners, eventfds, the resolver, channels) are level-triggered
 * readers.  Timers live in a binary heap keyed by monotonic milliseconds.
 * Handlers that must not run re-entrantly are posted and run after the
 * current batch of I/O.
 *
 * The backend is epoll (Linux); pst_event_epoll.c is the only file that
 * knows it.
 */

#ifndef PST_EVENT_H
#define PST_EVENT_H

typedef void (*pst_event_handler_pt)(pst_event_t *ev);

struct pst_event_s {
    void                        *data;
    pst_event_handler_pt         handler;

    pst_msec_t                   timer_key;
    pst_uint_t                   timer_index;

    pst_list_t                   posted_link;

    unsigned                     write:1;
    unsigned                     active:1;
    unsigned                     ready:1;
    unsigned                     eof:1;
    unsigned                     error:1;
    unsigned                     timedout:1;
    unsigned                     timer_set:1;
    unsigned                     posted:1;
    unsigned                     instance:1;
};

/* Time, refreshed once per loop iteration. */
extern volatile pst_msec_t  pst_current_time_msec;
extern volatile time_t      pst_current_time_sec;
/* The signal mask while the loop waits (epoll_pwait): the process layer
 * blocks its signals elsewhere and empties this one, so that they are
 * delivered only while waiting. */
extern sigset_t             pst_wait_sigmask;
void pst_time_update(void);
/* The test harness's fake clock: after pst_time_freeze() the time
 * stands still (the loop still waits for I/O) and pst_time_advance()
 * alone moves it; the caller then expires the timers. */
void pst_time_freeze(void);
void pst_time_advance(pst_msec_t ms);

/* Event loop life cycle (one per worker process). */
int pst_event_init(pst_uint_t max_fds);
void pst_event_done(void);
/* Wait for I/O or the next timer, run handlers, expire timers, run
 * posted events.  Returns PST_OK or PST_ERROR (epoll failure). */
int pst_process_events_and_timers(void);

/* Register a connection's socket (edge-triggered, both directions). */
int pst_event_add_conn(pst_connection_t *c);
int pst_event_del_conn(pst_connection_t *c);
/* Register a level-triggered reader (listening socket, eventfd...). */
int pst_event_add_read(pst_connection_t *c);
int pst_event_del_read(pst_connection_t *c);
/* Level-triggered, either direction (fd watches of modules); both 0:
 * removed.  pst_event_del_read() removes it too. */
int pst_event_set_fd(pst_connection_t *c, int read, int write);

/* Timer heap and posted list (called by pst_event_init). */
int pst_event_timers_init(void);

/* Timers on events. */
void pst_event_add_timer(pst_event_t *ev, pst_msec_t ms);
void pst_event_del_timer(pst_event_t *ev);
/* Milliseconds until the next timer, or (pst_msec_t) -1 if none. */
pst_msec_t pst_event_find_timer(void);
void pst_event_expire_timers(void);
/* Cancel every timer (worker shutdown). */
pst_uint_t pst_event_timer_count(void);

/* Posted events run after the current I/O batch. */
void pst_post_event(pst_event_t *ev);
void pst_delete_posted_event(pst_event_t *ev);
void pst_event_process_posted(void);

#endif /* PST_EVENT_H */
