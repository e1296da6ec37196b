/*
 * pst_queue_event.c -- the dispatcher of the queue-side events: every
 * loaded module that has a queue_event function sees each event, in
 * load order, synchronously (a hook must not block).
 */

#include "pst_core.h"
#include "pst_queue_event.h"


void
pst_queue_event(pst_qevent_t *ev)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    if (pst_cycle == NULL) {
        return;
    }

    me = pst_cycle->modules.elts;
    for (i = 0; i < pst_cycle->modules.nelts; i++) {
        if (me[i].desc.queue_event != NULL) {
            me[i].desc.queue_event(ev, pst_cycle->main_conf[me[i].index]);
        }
    }
}
