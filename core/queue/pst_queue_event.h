/*
 * pst_queue_event.h -- telling the modules what happens to queued mail
 * (ABI 1.2 queue-side events, postern_module.h).  Queue process only.
 */

#ifndef PST_QUEUE_EVENT_H
#define PST_QUEUE_EVENT_H

/* Run every loaded module's queue_event for ev, in load order. */
void pst_queue_event(pst_qevent_t *ev);
/* 1 when a loaded module has a queue_event function. */
int pst_queue_event_wanted(void);

/* The destination of recipient i of env: its domain (A-labels), the
 * transport table's rule for it, then the ROUTE event (a module may
 * reroute).  Written into dest (PST_TRANSPORT_DEST_MAX bytes,
 * NUL-terminated); its length ("" for an address without a domain).
 * *hold: a hold rule of the table matched. */
size_t pst_queue_event_route(pst_envelope_t *env, pst_uint_t i,
    u_char *dest, int *hold);
/* The DEFERRED event ev (filled but for its event): ev->next_try, the
 * engine's choice, clamped to expiry, told to the modules, then what
 * they chose clamped to [now, expiry]: the next try. */
time_t pst_queue_event_deferred(pst_qevent_t *ev, time_t now,
    time_t expiry);

#endif /* PST_QUEUE_EVENT_H */
