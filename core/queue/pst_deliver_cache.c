/*
 * pst_deliver_cache.c -- idle outbound connections kept for the next
 * message to the same destination (relay_connection_reuse,
 * relay_connection_idle).  A connection is in the cache only while no
 * attempt uses it; the attempt that takes it sends RSET first, so a
 * connection the server closed meanwhile costs one round trip.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_smtp_client.h"
#include "pst_deliver_int.h"
#include "pst_queue_event.h"

#define PST_DLV_CACHE_MAX  1000

typedef struct pst_dlv_idle_s  pst_dlv_idle_t;

struct pst_dlv_idle_s {
    pst_dlv_idle_t      *next;
    pst_smtp_client_t   *cl;
    pst_uint_t           uses;
    pst_event_t          timer;
    pst_str_t            dest;          /* points into the allocation */
    char                 remote[300];
};

static pst_dlv_idle_t  *pst_dlv_idle;
static pst_uint_t       pst_dlv_nidle;

static void pst_deliver_cache_expire(pst_event_t *ev);
static void pst_deliver_cache_unlink(pst_dlv_idle_t *e);


/* QUIT and a DISCONNECTED event. */
static void
pst_deliver_cache_quit(pst_smtp_client_t *cl, const pst_str_t *dest,
    const char *remote)
{
    pst_qevent_t  ev;

    pst_smtp_client_quit(cl);
    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_DISCONNECTED;
    ev.rcpt = PST_QEV_NO_RCPT;
    ev.dest = dest;
    ev.remote = remote;
    pst_queue_event(&ev);
}


void
pst_deliver_cache_put(const pst_str_t *dest, pst_smtp_client_t *cl,
    pst_uint_t uses, const char *remote)
{
    const pst_deliver_conf_t  *conf = pst_deliver_conf(pst_cycle);
    pst_dlv_idle_t            *e;

    if (conf == NULL || uses >= (pst_uint_t) conf->reuse || conf->idle == 0
        || pst_dlv_nidle >= PST_DLV_CACHE_MAX)
    {
        pst_deliver_cache_quit(cl, dest, remote);
        return;
    }

    e = calloc(1, sizeof(pst_dlv_idle_t) + dest->len);
    if (e == NULL) {
        pst_deliver_cache_quit(cl, dest, remote);
        return;
    }
    e->cl = cl;
    e->uses = uses;
    e->dest.data = (u_char *) (e + 1);
    e->dest.len = dest->len;
    memcpy(e->dest.data, dest->data, dest->len);
    snprintf(e->remote, sizeof(e->remote), "%s", remote);
    e->timer.data = e;
    e->timer.handler = pst_deliver_cache_expire;
    pst_event_add_timer(&e->timer, conf->idle);

    e->next = pst_dlv_idle;
    pst_dlv_idle = e;
    pst_dlv_nidle++;
}


pst_smtp_client_t *
pst_deliver_cache_get(const pst_str_t *dest, pst_uint_t *uses, char *remote,
    size_t size)
{
    pst_dlv_idle_t     *e;
    pst_smtp_client_t  *cl;

    for (e = pst_dlv_idle; e != NULL; e = e->next) {
        if (e->dest.len == dest->len
            && memcmp(e->dest.data, dest->data, dest->len) == 0)
        {
            break;
        }
    }
    if (e == NULL) {
        return NULL;
    }

    cl = e->cl;
    *uses = e->uses;
    snprintf(remote, size, "%s", e->remote);
    pst_deliver_cache_unlink(e);
    return cl;
}


pst_uint_t
pst_deliver_cache_count(void)
{
    return pst_dlv_nidle;
}


void
pst_deliver_cache_flush(void)
{
    pst_dlv_idle_t  *e;

    while (pst_dlv_idle != NULL) {
        e = pst_dlv_idle;
        pst_deliver_cache_quit(e->cl, &e->dest, e->remote);
        pst_deliver_cache_unlink(e);
    }
}


/* The idle connections to dest: closed now (the end of a drain). */
void
pst_deliver_close(const pst_str_t *dest)
{
    pst_dlv_idle_t  *e, *next;

    for (e = pst_dlv_idle; e != NULL; e = next) {
        next = e->next;
        if (e->dest.len == dest->len
            && memcmp(e->dest.data, dest->data, dest->len) == 0)
        {
            pst_deliver_cache_quit(e->cl, &e->dest, e->remote);
            pst_deliver_cache_unlink(e);
        }
    }
}


static void
pst_deliver_cache_expire(pst_event_t *ev)
{
    pst_dlv_idle_t  *e = ev->data;

    pst_deliver_cache_quit(e->cl, &e->dest, e->remote);
    pst_deliver_cache_unlink(e);
}


/* Out of the list, timer stopped, freed. */
static void
pst_deliver_cache_unlink(pst_dlv_idle_t *e)
{
    pst_dlv_idle_t  **pp;

    for (pp = &pst_dlv_idle; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    if (e->timer.timer_set) {
        pst_event_del_timer(&e->timer);
    }
    pst_dlv_nidle--;
    free(e);
}
