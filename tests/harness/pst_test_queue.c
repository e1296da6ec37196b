/*
 * pst_test_queue.c -- libpostern-test's queue side (postern/test.h,
 * "the queue side"): one fake queued message, told to the modules'
 * queue_event() functions through the engine's own code (the
 * dispatcher, pst_queue_event_route() for ROUTE,
 * pst_queue_event_deferred() for DEFERRED, the back-off and the
 * expiry of pst_queue.c, the modules' state of pst_queue_ctx.c), and a
 * router asked for a destination as a delivery attempt asks it
 * (pst_transport_router(), then resolve()).
 */

#define _GNU_SOURCE

#include "pst_test_int.h"
#include "pst_spool.h"
#include "pst_queue_int.h"
#include "pst_queue_event.h"
#include "pst_queue_ctx.h"
#include "pst_transport.h"

struct pst_test_queue_s {
    /* the queued message */
    pst_pool_t                  *pool;
    pst_envelope_t               env;
    u_char                       id[PST_QUEUE_ID_LEN + 1];
    u_char                     (*dest)[PST_TRANSPORT_DEST_MAX];
    pst_test_qresult_t           result;

    /* the route asked for */
    pst_test_route_t             route;
    const pst_router_t          *router;
    void                        *handle;     /* resolve()'s, until done */
};


static pst_test_queue_t *pst_test_queue(pst_test_t *t);
static int pst_test_queue_header(pst_test_queue_t *q, const char *message);
static int pst_test_queue_rcpts(pst_test_queue_t *q, const char *rcpts);
static void pst_test_queue_outcome(pst_test_queue_t *q, pst_qevent_t *ev,
    pst_env_rcpt_t *r);
static void pst_test_route_done(void *data, const pst_route_t *route);
static void pst_test_route_cancel(pst_test_queue_t *q);


/* ------------------------------------------------------------------ */
/* The process                                                         */

int
pst_test_process(pst_test_t *t, pst_proc_e type)
{
    if (t->cycle != NULL
        || (type != PST_PROC_WORKER && type != PST_PROC_QUEUE
            && type != PST_PROC_SINGLE))
    {
        return PST_ERROR;
    }
    t->proc = type;
    return PST_OK;
}


/* The queue side's state, made at the first use (and the configuration
 * when the test gave none). */
static pst_test_queue_t *
pst_test_queue(pst_test_t *t)
{
    if (t->cycle == NULL) {
        (void) pst_test_config(t, NULL, NULL);
    }
    if (t->cycle == NULL) {
        return NULL;
    }
    if (t->queue == NULL) {
        t->queue = calloc(1, sizeof(pst_test_queue_t));
    }
    return t->queue;
}


void
pst_test_queue_free(pst_test_t *t)
{
    if (t->queue == NULL) {
        return;
    }
    pst_test_route_cancel(t->queue);
    pst_test_queue_remove(t);
    pst_queue_ctx_clear();
    free(t->queue);
    t->queue = NULL;
}


/* ------------------------------------------------------------------ */
/* The queued message                                                  */

/* The header section (up to the first empty line) with CRLF line ends,
 * as the engine reads it from the queue file. */
static int
pst_test_queue_header(pst_test_queue_t *q, const char *message)
{
    const char  *p, *end;
    u_char      *h;
    size_t       n = 0;

    for (end = message; *end != '\0'; end++) {
        if (*end == '\n' && (end[1] == '\n'
                             || (end[1] == '\r' && end[2] == '\n')))
        {
            end++;
            break;
        }
    }
    h = pst_palloc(q->pool, 2 * (size_t) (end - message) + 1);
    if (h == NULL) {
        return PST_ERROR;
    }
    for (p = message; p < end; p++) {
        if (*p == '\n' && (n == 0 || h[n - 1] != '\r')) {
            h[n++] = '\r';
        }
        h[n++] = (u_char) *p;
    }
    h[n] = '\0';
    q->env.header.data = h;
    q->env.header.len = n;
    return PST_OK;
}


static int
pst_test_queue_rcpts(pst_test_queue_t *q, const char *rcpts)
{
    const char  *p = rcpts;
    size_t       n;

    for ( ;; ) {
        p += strspn(p, " ");
        n = strcspn(p, " ");
        if (n == 0) {
            break;
        }
        if (pst_envelope_add_rcpt(q->pool, &q->env, (const u_char *) p, n)
            == NULL)
        {
            return PST_ERROR;
        }
        p += n;
    }
    return q->env.rcpts->nelts > 0 ? PST_OK : PST_ERROR;
}


int
pst_test_queue_message(pst_test_t *t, const char *sender, const char *rcpts,
    const char *message)
{
    pst_test_queue_t  *q = pst_test_queue(t);
    pst_qevent_t       ev;
    pst_uint_t         i;
    int                hold;

    if (q == NULL || rcpts == NULL) {
        return PST_ERROR;
    }
    sender = sender != NULL ? sender : "";
    message = message != NULL ? message : "";
    pst_test_queue_remove(t);
    q->pool = pst_create_pool(4096);
    if (q->pool == NULL || pst_envelope_init(q->pool, &q->env) != PST_OK) {
        return PST_ERROR;
    }
    pst_spool_new_id(q->id);
    q->env.id.data = q->id;
    q->env.id.len = PST_QUEUE_ID_LEN;
    q->env.sender.data = (u_char *) sender;
    q->env.sender.len = strlen(sender);
    q->env.sender.data = pst_pstrdup(q->pool, &q->env.sender);
    q->env.size = (int64_t) strlen(message);
    q->env.arrival_sec = pst_current_time_sec;
    if (q->env.sender.data == NULL || pst_test_queue_rcpts(q, rcpts) != PST_OK
        || pst_test_queue_header(q, message) != PST_OK
        || (q->dest = pst_pcalloc(q->pool, q->env.rcpts->nelts
                                           * PST_TRANSPORT_DEST_MAX)) == NULL)
    {
        pst_test_queue_remove(t);
        return PST_ERROR;
    }

    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_ENQUEUED;
    ev.env = &q->env;
    ev.rcpt = PST_QEV_NO_RCPT;
    pst_queue_event(&ev);
    for (i = 0; i < q->env.rcpts->nelts; i++) {
        (void) pst_queue_event_route(&q->env, i, q->dest[i], &hold);
    }
    return PST_OK;
}


const char *
pst_test_queue_id(pst_test_t *t)
{
    return t->queue != NULL && t->queue->pool != NULL
           ? (const char *) t->queue->id : NULL;
}


const char *
pst_test_queue_dest(pst_test_t *t, unsigned i)
{
    pst_test_queue_t  *q = t->queue;

    return q != NULL && q->pool != NULL && i < q->env.rcpts->nelts
           ? (const char *) q->dest[i] : NULL;
}


unsigned
pst_test_queue_states(pst_test_t *t)
{
    return pst_test_queue_id(t) != NULL
           ? (unsigned) pst_queue_ctx_count(t->queue->id) : 0;
}


void
pst_test_queue_remove(pst_test_t *t)
{
    pst_test_queue_t  *q = t->queue;

    if (q == NULL || q->pool == NULL) {
        return;
    }
    pst_queue_ctx_forget(q->id);
    pst_destroy_pool(q->pool);
    q->pool = NULL;
    memset(&q->env, 0, sizeof(q->env));
    q->dest = NULL;
}


/* ------------------------------------------------------------------ */
/* Events                                                              */

/* An attempt's outcome for recipient r, as the engine's
 * pst_queue_outcome(): counted, its state, the DEFERRED event's next
 * try (the engine's back-off, the hooks, the clamp). */
static void
pst_test_queue_outcome(pst_test_queue_t *q, pst_qevent_t *ev,
    pst_env_rcpt_t *r)
{
    const pst_queue_conf_t  *conf = pst_queue_conf(pst_cycle);
    time_t                   now = pst_current_time_sec, expiry;

    r->attempts++;
    r->last_try = now;
    switch (ev->event) {
    case PST_QEV_DELIVERED:
        r->state = PST_RCPT_DELIVERED;
        pst_queue_event(ev);
        return;
    case PST_QEV_DEFERRED:
        expiry = pst_queue_expiry_of(conf, q->env.arrival_sec,
                                     q->env.sender.len == 0);
        ev->next_try = now + pst_sched_backoff(r->attempts,
                                   (time_t) (conf->min_backoff / 1000),
                                   (time_t) (conf->max_backoff / 1000));
        q->result.backoff = (long) (pst_min(ev->next_try, expiry) - now);
        r->state = PST_RCPT_DEFERRED;
        r->next_try = pst_queue_event_deferred(ev, now, expiry);
        q->result.next_try = (long) (r->next_try - now);
        return;
    default:                            /* FAILED, EXPIRED */
        r->state = PST_RCPT_FAILED;
        pst_queue_event(ev);
        return;
    }
}


const pst_test_qresult_t *
pst_test_qevent(pst_test_t *t, pst_qevent_e event, pst_uint_t rcpt,
    int code, const char *reply)
{
    pst_test_queue_t  *q = t->queue;
    pst_env_rcpt_t    *r;
    pst_qevent_t       ev;
    pst_str_t          dest;
    pst_uint_t         n, d;
    int                per_rcpt, hold;

    per_rcpt = event == PST_QEV_ROUTE || event == PST_QEV_DELIVERED
               || event == PST_QEV_DEFERRED || event == PST_QEV_FAILED
               || event == PST_QEV_EXPIRED;
    n = q != NULL && q->pool != NULL ? q->env.rcpts->nelts : 0;
    if (n == 0 || (per_rcpt && rcpt >= n)) {
        return NULL;
    }
    d = rcpt < n ? rcpt : 0;
    memset(&q->result, 0, sizeof(q->result));
    r = q->env.rcpts->elts;

    if (event == PST_QEV_ROUTE) {
        (void) pst_queue_event_route(&q->env, rcpt, q->dest[rcpt], &hold);
    } else {
        dest.data = q->dest[d];
        dest.len = strlen((char *) q->dest[d]);
        memset(&ev, 0, sizeof(ev));
        ev.event = event;
        ev.env = event == PST_QEV_RESOLVED || event == PST_QEV_CONNECTED
                 || event == PST_QEV_DISCONNECTED ? NULL : &q->env;
        ev.rcpt = per_rcpt ? rcpt : PST_QEV_NO_RCPT;
        ev.dest = &dest;
        ev.code = code;
        ev.reply = reply;
        if (per_rcpt) {
            pst_test_queue_outcome(q, &ev, &r[rcpt]);
        } else {
            pst_queue_event(&ev);
        }
    }

    snprintf(q->result.dest, sizeof(q->result.dest), "%s",
             per_rcpt ? (char *) q->dest[rcpt] : "");
    q->result.final = pst_envelope_final(&q->env);
    return &q->result;
}


/* ------------------------------------------------------------------ */
/* Routers                                                             */

static void
pst_test_route_cancel(pst_test_queue_t *q)
{
    if (q->handle != NULL && q->router != NULL && q->router->cancel != NULL)
    {
        q->router->cancel(q->handle);
    }
    q->handle = NULL;
}


static void
pst_test_route_done(void *data, const pst_route_t *route)
{
    pst_test_queue_t  *q = data;
    pst_test_route_t  *a = &q->route;
    pst_uint_t         i;
    size_t             len = 0;
    char               hop[600];

    q->handle = NULL;
    a->pending = 0;
    a->verdict = route->verdict;
    a->code = route->code;
    snprintf(a->ecode, sizeof(a->ecode), "%s",
             route->ecode != NULL ? route->ecode : "");
    snprintf(a->text, sizeof(a->text), "%s",
             route->text != NULL ? route->text : "");
    a->nhops = (unsigned) route->nhops;
    for (i = 0; i < route->nhops && route->hops != NULL; i++) {
        pst_deliver_hop_text(&route->hops[i], hop, sizeof(hop));
        len += (size_t) snprintf(a->hops + len, sizeof(a->hops) - len,
                                 "%s%s", i ? " " : "", hop);
        len = pst_min(len, sizeof(a->hops) - 1);
        a->secure += route->hops[i].secure;
    }
    a->flags = route->flags;
    a->tls = route->tls;
    snprintf(a->tls_name, sizeof(a->tls_name), "%s",
             route->tls_name != NULL ? route->tls_name : "");
    snprintf(a->auth_user, sizeof(a->auth_user), "%s",
             route->auth_user != NULL ? route->auth_user : "");
    snprintf(a->local, sizeof(a->local), "%s",
             route->local == NULL ? ""
             : route->local_name != NULL ? route->local_name : "local");
}


const pst_test_route_t *
pst_test_route(pst_test_t *t, const char *dest)
{
    static pst_test_route_t  none = { .verdict = -1 };
    pst_test_queue_t        *q = pst_test_queue(t);
    pst_test_route_t        *a;
    pst_str_t                d, nexthop;
    void                    *mc = NULL, *h;
    pst_msec_t               quiet;
    int                      rc;

    if (q == NULL) {
        return &none;
    }
    pst_test_route_cancel(q);
    a = &q->route;
    memset(a, 0, sizeof(*a));
    a->verdict = -1;
    d.data = (u_char *) dest;
    d.len = strlen(dest);
    rc = pst_transport_router(pst_cycle, &d, &q->router, &mc, &nexthop);
    if (rc == PST_DECLINED) {           /* "reject CODE X.Y.Z TEXT" */
        a->verdict = nexthop.data[0] == '5' ? PST_HOOK_REJECT
                                            : PST_HOOK_TEMPFAIL;
        a->code = atoi((char *) nexthop.data);
        sscanf((char *) nexthop.data + 4, "%15s %511[^\n]", a->ecode,
               a->text);
        return a;
    }
    if (rc != PST_OK) {
        snprintf(a->text, sizeof(a->text), "no transport module \"%.*s\""
                 " is loaded", (int) nexthop.len, nexthop.data);
        return a;
    }

    a->pending = 1;
    h = q->router->resolve(&nexthop, mc, pst_test_route_done, q);
    if (h == NULL) {
        a->pending = 0;
        snprintf(a->text, sizeof(a->text), "resolve() failed");
        return a;
    }
    q->handle = a->pending ? h : NULL;  /* (done must come later) */

    quiet = pst_test_real_ms() + PST_TEST_QUIET_MS;
    while (a->pending && pst_test_real_ms() < quiet) {
        pst_test_turn();
    }
    return a;
}


void
pst_test_run(pst_test_t *t, int ms)
{
    pst_msec_t  end = pst_test_real_ms() + (pst_msec_t) pst_max(ms, 0);

    (void) t;
    do {
        pst_test_turn();
    } while (pst_test_real_ms() < end);
}
