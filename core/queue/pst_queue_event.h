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

#endif /* PST_QUEUE_EVENT_H */
