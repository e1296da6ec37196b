/*
 * pst_queue_event.c -- the dispatcher of the queue-side events: every
 * loaded module that has a queue_event function sees each event, in
 * load order, synchronously (a hook must not block); and the accessors
 * a module reads an event's message with (postern_module.h).
 */

#include "pst_core.h"
#include "pst_envelope.h"
#include "pst_queue_event.h"


static const char  *pst_qevent_names[] = {
    "enqueued", "route", "resolved", "connected", "disconnected",
    "before_send", "delivered", "deferred", "failed", "bounce", "expired"
};


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
        if (me[i].desc.queue_event == NULL) {
            continue;
        }

        me[i].desc.queue_event(ev, pst_cycle->main_conf[me[i].index]);

        /* a destination is a domain or "[addr]": at most 255 + 2 bytes */
        if (ev->reroute.len != 0
            && (ev->reroute.data == NULL || ev->reroute.len > 257
                || ev->event != PST_QEV_ROUTE))
        {
            pst_log(PST_LOG_WARN, 0, "module \"%s\": queue event %s: "
                    "invalid reroute ignored", me[i].desc.name,
                    pst_qevent_name(ev->event));
            ev->reroute.len = 0;
            ev->reroute.data = NULL;
        }
    }
}


const pst_str_t *
pst_qevent_id(const pst_qevent_t *ev)
{
    return ev->env != NULL ? &ev->env->id : NULL;
}


const pst_str_t *
pst_qevent_sender(const pst_qevent_t *ev)
{
    return ev->env != NULL ? &ev->env->sender : NULL;
}


const pst_str_t *
pst_qevent_rcpt(const pst_qevent_t *ev)
{
    const pst_env_rcpt_t  *r;

    if (ev->env == NULL || ev->env->rcpts == NULL
        || ev->rcpt == PST_QEV_NO_RCPT || ev->rcpt >= ev->env->rcpts->nelts)
    {
        return NULL;
    }

    r = ev->env->rcpts->elts;
    return &r[ev->rcpt].addr;
}


unsigned
pst_qevent_attempts(const pst_qevent_t *ev)
{
    const pst_env_rcpt_t  *r;

    if (pst_qevent_rcpt(ev) == NULL) {
        return 0;
    }

    r = ev->env->rcpts->elts;
    return r[ev->rcpt].attempts;
}


const char *
pst_qevent_name(pst_qevent_e event)
{
    if ((unsigned) event
        >= sizeof(pst_qevent_names) / sizeof(pst_qevent_names[0]))
    {
        return "unknown";
    }

    return pst_qevent_names[event];
}
