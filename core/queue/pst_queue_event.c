/*
 * pst_queue_event.c -- the dispatcher of the queue-side events: every
 * loaded module that has a queue_event function sees each event, in
 * load order, synchronously (a hook must not block); the two events
 * whose answer the engine uses (ROUTE: a recipient's destination,
 * DEFERRED: its next try), told the same way by the engine and by
 * libpostern-test; and the accessors a module reads an event's message
 * with (postern_module.h).
 */

#include "pst_core.h"
#include "pst_envelope.h"
#include "pst_queue_event.h"
#include "pst_transport.h"


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


/* The domain of an address, as given ("" without one). */
static void
pst_queue_event_domain(const pst_str_t *addr, pst_str_t *dom)
{
    u_char  *at;

    at = addr->len ? memrchr(addr->data, '@', addr->len) : NULL;
    if (at == NULL) {
        dom->data = addr->data;
        dom->len = 0;
        return;
    }
    dom->data = at + 1;
    dom->len = addr->len - (size_t) (at + 1 - addr->data);
}


size_t
pst_queue_event_route(pst_envelope_t *env, pst_uint_t i, u_char *dest,
    int *hold)
{
    pst_env_rcpt_t  *r = env->rcpts->elts;
    pst_qevent_t     ev;
    pst_str_t        dom;
    u_char           norm[PST_DOMAIN_MAX + 1];
    size_t           n;
    int              k;

    *hold = 0;
    pst_queue_event_domain(&r[i].addr, &dom);

    /* the router wants A-labels: IDNA domains in their ASCII form */
    if (dom.len > 0 && dom.data[0] != '['
        && (k = pst_domain_normalize(dom.data, dom.len, norm, sizeof(norm)))
           > 0)
    {
        dom.data = norm;
        dom.len = (size_t) k;
    }

    n = dom.len > 0 ? pst_transport_dest(pst_cycle, &r[i].addr, &dom, dest,
                                         hold)
                    : 0;
    if (n > 0) {
        dom.data = dest;
        dom.len = n;
    }

    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_ROUTE;
    ev.env = env;
    ev.rcpt = i;
    ev.dest = &dom;
    pst_queue_event(&ev);
    if (ev.reroute.len > 0) {
        dom = ev.reroute;
    }

    /* a reroute is at most 257 bytes, a transport's destination fits */
    n = pst_min(dom.len, PST_TRANSPORT_DEST_MAX - 1);
    memmove(dest, dom.data, n);
    dest[n] = '\0';
    return n;
}


time_t
pst_queue_event_deferred(pst_qevent_t *ev, time_t now, time_t expiry)
{
    ev->event = PST_QEV_DEFERRED;
    if (ev->next_try > expiry) {
        ev->next_try = expiry;
    }
    pst_queue_event(ev);
    if (ev->next_try < now) {
        ev->next_try = now;
    }
    if (ev->next_try > expiry) {
        ev->next_try = expiry;
    }
    return ev->next_try;
}


int
pst_queue_event_wanted(void)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    if (pst_cycle == NULL) {
        return 0;
    }
    me = pst_cycle->modules.elts;
    for (i = 0; i < pst_cycle->modules.nelts; i++) {
        if (me[i].desc.queue_event != NULL) {
            return 1;
        }
    }
    return 0;
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


/* "Name: value" (a prepend line or one field of a header section):
 * the name without trailing blanks, the value after the colon and its
 * blanks, without the line ending (folding inside stays). */
static int
pst_qevent_field(const u_char *p, size_t n, pst_str_t *name,
    pst_str_t *value)
{
    const u_char  *colon, *v;

    colon = memchr(p, ':', n);
    if (colon == NULL || colon == p) {
        return PST_ERROR;
    }
    name->data = (u_char *) p;
    name->len = (size_t) (colon - p);
    while (name->len && (p[name->len - 1] == ' ' || p[name->len - 1] == '\t'))
    {
        name->len--;
    }
    for (v = colon + 1; v < p + n && (*v == ' ' || *v == '\t'); v++) {
        /* void */
    }
    value->data = (u_char *) v;
    value->len = (size_t) (p + n - v);
    while (value->len && (v[value->len - 1] == '\n'
                          || v[value->len - 1] == '\r'))
    {
        value->len--;
    }
    return PST_OK;
}


/* The k-th field of a header section (folded lines belong to their
 * field); *trace: how many fields of the trace block (Received:,
 * Return-Path:) lead it.  PST_DONE past the last. */
static int
pst_qevent_stored(const pst_str_t *hdr, pst_uint_t k, pst_str_t *name,
    pst_str_t *value, pst_uint_t *trace)
{
    const u_char  *p, *end, *nl, *start = NULL;
    pst_uint_t     n = 0;
    int            in_trace = 1, rc = PST_DONE;
    pst_str_t      nm, v;

    *trace = 0;
    end = hdr->data + hdr->len;
    for (p = hdr->data; p < end; p = nl) {
        nl = memchr(p, '\n', (size_t) (end - p));
        nl = nl != NULL ? nl + 1 : end;
        if (*p == ' ' || *p == '\t') {
            continue;                   /* folded: the same field */
        }
        if (start != NULL) {
            break;                      /* the k-th field ends here */
        }
        if (pst_qevent_field(p, (size_t) (nl - p), &nm, &v) != PST_OK) {
            continue;                   /* not a field */
        }
        if (in_trace && ((nm.len == 8 && pst_strncasecmp(nm.data,
                             (u_char *) "Received", 8) == 0)
                         || (nm.len == 11 && pst_strncasecmp(nm.data,
                             (u_char *) "Return-Path", 11) == 0)))
        {
            (*trace)++;
        } else {
            in_trace = 0;
        }
        if (n++ == k) {
            start = p;
        }
    }
    if (start != NULL) {
        rc = pst_qevent_field(start, (size_t) (p - start), name, value);
    }
    return rc;
}


int
pst_qevent_header(const pst_qevent_t *ev, pst_uint_t i, pst_str_t *name,
    pst_str_t *value)
{
    const pst_str_t  *pre;
    pst_uint_t        npre, trace;
    pst_str_t         nm, v;

    if (ev->env == NULL
        || (ev->event != PST_QEV_ENQUEUED && ev->event != PST_QEV_ROUTE))
    {
        return PST_DECLINED;
    }

    /* as delivered: the trace block, the fields hooks added at receive
     * time (pst_msg_add_header), then the message's other fields */
    npre = ev->env->prepend != NULL ? ev->env->prepend->nelts : 0;
    pre = npre ? ev->env->prepend->elts : NULL;
    (void) pst_qevent_stored(&ev->env->header, (pst_uint_t) -1, &nm, &v,
                             &trace);
    if (i < trace) {
        return pst_qevent_stored(&ev->env->header, i, name, value, &trace);
    }
    if (i < trace + npre) {
        return pst_qevent_field(pre[i - trace].data, pre[i - trace].len,
                                name, value) == PST_OK ? PST_OK : PST_ERROR;
    }
    return pst_qevent_stored(&ev->env->header, i - npre, name, value,
                             &trace);
}
