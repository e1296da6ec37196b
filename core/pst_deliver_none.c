/*
 * pst_deliver_none.c -- TEMPORARY weak stand-ins for the delivery layer
 * (core/pst_deliver.c, branch "deliver") so that the engine builds and
 * its tests run before it is merged: every attempt defers.  Removed
 * when deliver is merged.
 */

#include "pst_core.h"
#include "pst_deliver.h"

struct pst_dlv_s {
    pst_event_t       ev;
    pst_dlv_job_t    *job;
    pst_dlv_done_pt   done;
    void             *data;
};


__attribute__((weak)) int
pst_deliver_init(pst_cycle_t *cycle)
{
    (void) cycle;
    return PST_OK;
}


__attribute__((weak)) void
pst_deliver_exit(void)
{
}


static void
pst_deliver_none_handler(pst_event_t *ev)
{
    pst_dlv_t   *d = ev->data;
    pst_uint_t   i;

    for (i = 0; i < d->job->nrcpts; i++) {
        d->job->rcpts[i].state = PST_RCPT_DEFERRED;
        snprintf(d->job->rcpts[i].reply, sizeof(d->job->rcpts[i].reply),
                 "451 4.3.0 no delivery layer in this build");
    }
    d->done(d->job, d->data);
    free(d);
}


__attribute__((weak)) pst_dlv_t *
pst_deliver_start(const pst_str_t *dest, pst_dlv_job_t *job,
    pst_dlv_done_pt done, void *data)
{
    pst_dlv_t  *d;

    (void) dest;
    d = calloc(1, sizeof(pst_dlv_t));
    if (d == NULL) {
        return NULL;
    }
    d->job = job;
    d->done = done;
    d->data = data;
    d->ev.data = d;
    d->ev.handler = pst_deliver_none_handler;
    pst_post_event(&d->ev);
    return d;
}


__attribute__((weak)) void
pst_deliver_cancel(pst_dlv_t *d)
{
    pst_delete_posted_event(&d->ev);
    free(d);
}


__attribute__((weak)) pst_uint_t
pst_deliver_connections(void)
{
    return 0;
}
