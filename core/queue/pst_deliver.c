/*
 * pst_deliver.c -- one delivery attempt (pst_deliver.h): the route of
 * the destination (the router module, e.g. relay_mx), its hops tried in
 * order until one greets and takes EHLO (and STARTTLS when required),
 * one transaction on the core SMTP client, an outcome per recipient.
 *
 *   start -> [idle connection: RSET] -> resolve -> connect hop i ->
 *   ready -> checks (SMTPUTF8, 8BITMIME) -> send -> sent -> finish
 *
 * A connection that completed its transaction goes back to the idle
 * cache (pst_deliver_cache.c).  Nothing here blocks, but for reading
 * the local queue file: its first 64 KiB (Received: count) and, for a
 * next hop without 8BITMIME, the body (8-bit octets, conversion).
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_smtp_client.h"
#include "pst_smtp_proto.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"
#include "pst_queue_event.h"
#include "pst_route.h"
#include "pst_transport.h"
#include "pst_tlsrpt.h"
#include "pst_smtp.h"

#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/un.h>



static pst_uint_t  pst_dlv_busy;


static void pst_deliver_resolve(pst_dlv_t *d);
static void pst_deliver_peer(pst_dlv_t *d);
static void pst_deliver_rset_done(pst_smtp_client_t *cl, void *data,
    const pst_smtp_reply_t *r);
static void pst_deliver_route_done(void *data, const pst_route_t *route);
static void pst_deliver_reject(pst_dlv_t *d, const pst_str_t *reply);
static char *pst_deliver_strdup(const char *s, int *failed);
static void pst_deliver_ready(pst_smtp_client_t *cl, void *data, int rc,
    const pst_smtp_reply_t *r);
static void pst_deliver_send(pst_dlv_t *d);
static void pst_deliver_sent(pst_smtp_client_t *cl,
    pst_smtp_client_tx_t *tx, void *data, int rc);
static void pst_deliver_posted(pst_event_t *ev);
static void pst_deliver_finish(pst_dlv_t *d);
static void pst_deliver_free(pst_dlv_t *d);
static void pst_deliver_event(pst_dlv_t *d, pst_qevent_e event);
static void pst_deliver_drop(pst_dlv_t *d);
static void pst_deliver_keep(pst_dlv_t *d);
static void pst_deliver_send_tx(pst_dlv_t *d);



int
pst_deliver_init(pst_cycle_t *cycle)
{
    const pst_deliver_conf_t  *conf = pst_deliver_conf(cycle);

    if (conf != NULL) {
        pst_sts_configure((in_port_t) conf->sts_port, conf->sts_timeout,
                          conf->tls_ca_file.len
                          ? (const char *) conf->tls_ca_file.data : NULL);
    }
    return pst_tlsrpt_init(cycle);
}


void
pst_deliver_exit(void)
{
    pst_deliver_cache_flush();
    pst_tlsrpt_exit();
}


pst_uint_t
pst_deliver_connections(void)
{
    return pst_dlv_busy + pst_deliver_cache_count();
}


pst_dlv_t *
pst_deliver_start(const pst_str_t *dest, pst_dlv_job_t *job,
    pst_dlv_done_pt done, void *data)
{
    const pst_deliver_conf_t  *conf = pst_deliver_conf(pst_cycle);
    pst_dlv_t                 *d;
    int                        tls_no;

    d = calloc(1, sizeof(pst_dlv_t) + dest->len + 1);
    if (d == NULL) {
        return NULL;
    }
    d->dest.data = (u_char *) (d + 1);
    d->dest.len = dest->len;
    memcpy(d->dest.data, dest->data, dest->len);
    d->job = job;
    d->done = done;
    d->data = data;
    d->fd = -1;
    d->conv_src = -1;
    d->post.data = d;
    d->post.handler = pst_deliver_posted;
    job->remote[0] = '\0';
    job->dest_failed = 0;
    job->started = time(NULL);

    d->requiretls = job->msg->env.requiretls && job->peer == NULL;
    if (job->peer != NULL) {
        /* a node transfer: the flag goes as a node fact, and the node
         * that delivers the message counts its Received: lines */
        tls_no = 0;
    } else if (conf != NULL
               && pst_deliver_received_count(job->msg, &tls_no)
                  > conf->max_received)
    {
        pst_deliver_all(d, PST_RCPT_FAILED, 554, "5.4.6", "too many"
                        " Received: headers (over %ld): a mail loop?",
                        (long) conf->max_received);
        pst_post_event(&d->post);
        return d;
    }

    /* RFC 8689 4.2.2: REQUIRETLS wins over the header */
    d->tls_optional = tls_no && !d->requiretls;
    d->cl = d->requiretls ? NULL
                          : pst_deliver_cache_get(&d->dest, &d->uses,
                                                  d->remote,
                                                  sizeof(d->remote));
    if (d->cl != NULL) {
        d->reused = 1;
        pst_dlv_busy++;
        if (pst_smtp_client_command(d->cl, "RSET", pst_deliver_rset_done, d)
            == PST_OK)
        {
            return d;
        }
        pst_deliver_drop(d);
    }

    if (job->peer != NULL) {
        pst_deliver_peer(d);
        return d;
    }
    pst_deliver_resolve(d);
    return d;
}


/* A node transfer's one hop: the other node, opportunistic TLS. */
static void
pst_deliver_peer(pst_dlv_t *d)
{
    pst_dlv_job_t  *job = d->job;

    d->hops = calloc(1, sizeof(pst_nexthop_t));
    if (d->hops == NULL || job->peer_len > sizeof(d->hops->addr)
        || (d->hops->name.data = (u_char *) strdup(job->peer_name))
           == NULL)
    {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "out of memory");
        pst_post_event(&d->post);
        return;
    }
    d->nhops = 1;
    d->hops->name.len = strlen(job->peer_name);
    memcpy(&d->hops->addr, job->peer, job->peer_len);
    d->hops->addrlen = job->peer_len;
    d->tls_mode = PST_DLV_TLS_MAY;
    pst_deliver_go(d);
}


void
pst_deliver_cancel(pst_dlv_t *d)
{
    if (d->route != NULL && d->router->cancel != NULL) {
        d->router->cancel(d->route);
    }
    d->route = NULL;
    pst_deliver_dane_forget(d);
    pst_deliver_sts_forget(d);
    if (d->cl != NULL) {
        pst_smtp_client_abort(d->cl);
        d->cl = NULL;
        pst_dlv_busy--;
    }
    pst_delete_posted_event(&d->post);
    if (d->converting) {
        d->cancelled = 1;       /* pst_deliver_converted() frees it */
        return;
    }
    pst_deliver_free(d);
}


/* A cached connection answered RSET: send on it, or start afresh. */
static void
pst_deliver_rset_done(pst_smtp_client_t *cl, void *data,
    const pst_smtp_reply_t *r)
{
    pst_dlv_t  *d = data;

    (void) cl;

    if (r != NULL && r->code / 100 == 2) {
        pst_deliver_event(d, PST_QEV_CONNECTED);
        pst_deliver_send(d);
        return;
    }
    pst_deliver_drop(d);
    pst_deliver_resolve(d);
}


/* Close d's connection (it is no use any more). */
static void
pst_deliver_drop(pst_dlv_t *d)
{
    if (d->cl == NULL) {
        return;
    }
    pst_smtp_client_abort(d->cl);
    d->cl = NULL;
    pst_dlv_busy--;
    pst_deliver_event(d, PST_QEV_DISCONNECTED);
    d->remote[0] = '\0';
    d->reused = 0;
    d->uses = 0;
}


static void
pst_deliver_resolve(pst_dlv_t *d)
{
    void       *mc = NULL;
    pst_str_t   nexthop;
    int         rc;

    rc = pst_transport_router(pst_cycle, &d->dest, &d->router, &mc,
                              &nexthop);
    if (rc == PST_DECLINED) {
        /* the transport table's "reject CODE X.Y.Z TEXT" */
        pst_deliver_reject(d, &nexthop);
        pst_post_event(&d->post);
        return;
    }
    if (rc != PST_OK) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.5", "no transport"
                        " module \"%.*s\" is loaded", (int) nexthop.len,
                        nexthop.data);
        pst_post_event(&d->post);
        return;
    }

    if (pst_deliver_sts_start(d) == PST_ERROR) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "cannot look"
                        " up the MTA-STS policy of %.*s now",
                        (int) d->dest.len, d->dest.data);
        pst_post_event(&d->post);
        return;
    }

    d->route = d->router->resolve(&nexthop, mc, pst_deliver_route_done, d);
    if (d->route == NULL) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "cannot"
                        " resolve %.*s now", (int) d->dest.len,
                        d->dest.data);
        pst_post_event(&d->post);
    }
}


/* "550 5.7.1 text" (checked when the table was read): every recipient
 * fails (5xx) or is deferred (4xx) with that reply. */
static void
pst_deliver_reject(pst_dlv_t *d, const pst_str_t *reply)
{
    char         ecode[16];
    const char  *text = (const char *) reply->data + 4;
    size_t       n = strcspn(text, " ");

    snprintf(ecode, sizeof(ecode), "%.*s", (int) pst_min(n, 15), text);
    text += n;
    text += (*text == ' ');
    pst_deliver_all(d, reply->data[0] == '5' ? PST_RCPT_FAILED
                                             : PST_RCPT_DEFERRED,
                    atoi((const char *) reply->data), ecode, "%s", text);
}


static void
pst_deliver_route_done(void *data, const pst_route_t *route)
{
    pst_dlv_t   *d = data;
    pst_uint_t   i;
    int          k;

    d->route = NULL;
    pst_deliver_event(d, PST_QEV_RESOLVED);

    if (route->verdict == PST_HOOK_ACCEPT && route->local != NULL) {
        pst_deliver_local(d, route);    /* pst_deliver_local.c */
        return;
    }

    if (route->verdict != PST_HOOK_ACCEPT || route->nhops == 0) {
        pst_deliver_all(d, route->verdict == PST_HOOK_REJECT
                        ? PST_RCPT_FAILED : PST_RCPT_DEFERRED,
                        route->code ? route->code
                        : (route->verdict == PST_HOOK_REJECT ? 550 : 451),
                        route->ecode ? route->ecode
                        : (route->verdict == PST_HOOK_REJECT
                           ? "5.4.4" : "4.4.3"),
                        "%s", route->text ? route->text
                        : "no route to the destination");
        pst_deliver_finish(d);
        return;
    }

    d->hops = calloc(route->nhops, sizeof(pst_nexthop_t));
    if (d->hops == NULL) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "out of memory");
        pst_deliver_finish(d);
        return;
    }
    d->route_flags = route->flags;
    d->route_tls = route->tls;
    d->tls_mode = pst_deliver_tls_mode(d);
    k = 0;
    d->tls_name = pst_deliver_strdup(route->tls_name, &k);
    d->auth_user = pst_deliver_strdup(route->auth_user, &k);
    d->auth_pass = pst_deliver_strdup(route->auth_pass, &k);
    if (k) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "out of memory");
        pst_deliver_finish(d);
        return;
    }
    for (i = 0; i < route->nhops; i++) {
        d->hops[i] = route->hops[i];
        d->hops[i].name.data = (u_char *) strndup(
            (char *) route->hops[i].name.data, route->hops[i].name.len);
        if (d->hops[i].name.data == NULL) {
            d->hops[i].name.len = 0;
        }
        d->nhops++;
    }

    if (d->sts_wait != NULL) {
        d->routed = 1;              /* pst_deliver_sts_done() goes on */
        return;
    }
    pst_deliver_go(d);
}


/* The destination's TLS policy: the route's own, else the first
 * tls_policy rule that matches, else relay_tls. */
pst_dlv_tls_e
pst_deliver_tls_mode(pst_dlv_t *d)
{
    static const pst_dlv_tls_e  route_tls[] = {
        PST_DLV_TLS_MAY, PST_DLV_TLS_NONE, PST_DLV_TLS_MAY,
        PST_DLV_TLS_ENCRYPT, PST_DLV_TLS_VERIFY, PST_DLV_TLS_IMPLICIT,
        PST_DLV_TLS_DANE, PST_DLV_TLS_DANE_ONLY
    };
    int  p;

    if (d->route_tls > PST_ROUTE_TLS_DEFAULT
        && d->route_tls <= PST_ROUTE_TLS_DANE_ONLY)
    {
        p = (int) route_tls[d->route_tls];
    } else {
        p = pst_transport_tls_policy(pst_cycle, &d->dest);
        if (p < 0) {
            p = (int) pst_deliver_conf(pst_cycle)->tls;
        }
    }
    /* "TLS-Required: No": TLS tried, no policy enforced (RFC 8689 4.2.2) */
    if (d->tls_optional && p != PST_DLV_TLS_NONE
        && p != PST_DLV_TLS_IMPLICIT)
    {
        p = PST_DLV_TLS_MAY;
    }
    return (pst_dlv_tls_e) p;
}


static char *
pst_deliver_strdup(const char *s, int *failed)
{
    char  *p;

    if (s == NULL) {
        return NULL;
    }
    p = strdup(s);
    *failed |= (p == NULL);
    return p;
}


static void
pst_deliver_client_conf(pst_dlv_t *d, pst_smtp_client_conf_t *cc,
    const pst_nexthop_t *hop)
{
    const pst_deliver_conf_t  *conf = pst_deliver_conf(pst_cycle);
    static char                host[256];
    pst_server_t             **srv;

    memset(cc, 0, sizeof(*cc));

    if (conf->helo_name.len > 0) {
        cc->helo_name = (const char *) conf->helo_name.data;
    } else if (pst_cycle->servers.nelts > 0) {
        srv = pst_cycle->servers.elts;
        snprintf(host, sizeof(host), "%.*s", (int) srv[0]->conf->hostname.len,
                 srv[0]->conf->hostname.data);
        cc->helo_name = host;
    } else {
        cc->helo_name = "localhost";
    }
    /* pst_deliver_dane() resolved DANE into one of the client's */
    cc->tls = (pst_smtpc_tls_e) d->hop_tls;
    if (d->ntlsa > 0 && d->hop_tls == PST_DLV_TLS_VERIFY) {
        cc->tlsa = d->tlsa;
        cc->ntlsa = d->ntlsa;
    }
    cc->ssl_ctx = pst_deliver_ssl_ctx();
    if (cc->ssl_ctx == NULL && cc->tls == PST_SMTPC_TLS_MAY) {
        cc->tls = PST_SMTPC_TLS_NONE;
    }
    cc->tls_name = d->tls_name && cc->ntlsa == 0
                   ? d->tls_name : (const char *) hop->name.data;
    cc->lmtp = (d->route_flags & PST_ROUTE_LMTP) != 0;
    if (d->auth_user != NULL) {
        cc->auth_mech = "auto";
        cc->auth_user = d->auth_user;
        cc->auth_pass = d->auth_pass ? d->auth_pass : "";
    }
    if (conf->source_len > 0 && hop->addr.ss_family != AF_UNIX) {
        cc->local = (const struct sockaddr *) &conf->source_sa;
        cc->local_len = conf->source_len;
    }
    cc->connect_timeout = conf->timeouts[PST_DLV_T_CONNECT];
    cc->greeting_timeout = conf->timeouts[PST_DLV_T_GREETING];
    cc->helo_timeout = conf->timeouts[PST_DLV_T_HELO];
    cc->mail_timeout = conf->timeouts[PST_DLV_T_MAIL];
    cc->rcpt_timeout = conf->timeouts[PST_DLV_T_RCPT];
    cc->data_init_timeout = conf->timeouts[PST_DLV_T_DATA];
    cc->data_block_timeout = conf->timeouts[PST_DLV_T_DATA_BLOCK];
    cc->data_done_timeout = conf->timeouts[PST_DLV_T_DATA_DONE];
}


void
pst_deliver_hop_text(const pst_nexthop_t *hop, char *buf, size_t size)
{
    char                       addr[INET6_ADDRSTRLEN];
    const struct sockaddr_in  *in = (const void *) &hop->addr;
    const struct sockaddr_in6 *in6 = (const void *) &hop->addr;
    in_port_t                  port;

    if (hop->addr.ss_family == AF_UNIX) {
        snprintf(buf, size, "%.*s[%s]", (int) pst_min(hop->name.len, 100),
                 hop->name.data,
                 ((const struct sockaddr_un *) &hop->addr)->sun_path);
        return;
    }
    if (hop->addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
        port = ntohs(in6->sin6_port);
    } else {
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
        port = ntohs(in->sin_port);
    }
    snprintf(buf, size, "%.*s[%s]:%u", (int) pst_min(hop->name.len, 255),
             hop->name.data, addr, (unsigned) port);
}


/* "host[addr]:port" of hop. */
static void
pst_deliver_remote(pst_dlv_t *d, const pst_nexthop_t *hop)
{
    pst_deliver_hop_text(hop, d->remote, sizeof(d->remote));
}


void
pst_deliver_go(pst_dlv_t *d)
{
    if (pst_deliver_sts_hops(d) == PST_DECLINED) {
        pst_deliver_finish(d);
        return;
    }
    pst_deliver_connect(d);
}


int
pst_deliver_by_mx(pst_dlv_t *d)
{
    return d->dest.len > 0 && d->dest.data[0] != '['
           && memchr(d->dest.data, ':', d->dest.len) == NULL;
}


/* Open the next hop; when none is left every recipient is deferred. */
void
pst_deliver_connect(pst_dlv_t *d)
{
    pst_smtp_client_conf_t  cc;
    pst_nexthop_t          *hop;
    int                     rc;

    while (d->hop < d->nhops) {
        hop = &d->hops[d->hop];
        pst_deliver_remote(d, hop);
        rc = pst_deliver_dane(d, hop);
        if (rc == PST_AGAIN) {
            return;                 /* the TLSA answer calls us again */
        }
        if (rc == PST_DECLINED) {
            pst_log_error(PST_LOG_INFO, 0, "deliver %.*s: %s",
                          (int) d->dest.len, d->dest.data, d->why);
            d->rtls_fail += d->requiretls;
            d->hop++;
            continue;
        }
        pst_deliver_client_conf(d, &cc, hop);
        d->cl = pst_smtp_client_open(&cc, (const struct sockaddr *) &hop->addr,
                                     hop->addrlen, pst_deliver_ready, d);
        if (d->cl != NULL) {
            pst_dlv_busy++;
            return;
        }
        snprintf(d->why, sizeof(d->why), "cannot connect to %s",
                 d->remote);
        d->hop++;
    }

    if (d->requiretls && d->nhops > 0 && d->rtls_fail == d->nhops) {
        /* every hop failed what REQUIRETLS asks: returned (RFC 8689) */
        pst_deliver_all(d, PST_RCPT_FAILED, 550, "5.7.30", "REQUIRETLS"
                        " support required: %s", d->why);
        d->remote[0] = '\0';
        pst_deliver_finish(d);
        return;
    }
    pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.4.1", "%s",
                    d->why[0] ? d->why : "no next hop could be tried");
    d->job->dest_failed = !d->alive;
    d->remote[0] = '\0';
    pst_deliver_finish(d);
}


static void
pst_deliver_ready(pst_smtp_client_t *cl, void *data, int rc,
    const pst_smtp_reply_t *r)
{
    pst_dlv_t  *d = data;

    (void) cl;

    if (rc == PST_OK && d->requiretls
        && !(pst_smtp_client_caps(cl) & PST_SMTP_CAP_REQUIRETLS))
    {
        d->alive = 1;
        d->rtls_fail++;
        snprintf(d->why, sizeof(d->why), "%s does not offer REQUIRETLS",
                 d->remote);
        pst_deliver_drop(d);
        d->hop++;
        pst_deliver_connect(d);
        return;
    }

    if (rc == PST_OK && d->job->peer != NULL
        && !(pst_smtp_client_caps(cl) & PST_SMTP_CAP_XPOSTERN))
    {
        /* not a node that trusts us: nothing is sent */
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.7.0", "%s does not"
                        " offer XPOSTERN (is this node in its"
                        " node_trusted?)", d->remote);
        d->job->dest_failed = 1;
        pst_deliver_finish(d);
        return;
    }

    if (rc == PST_OK) {
        d->alive = 1;
        pst_deliver_tlsrpt(d, NULL);
        pst_deliver_event(d, PST_QEV_CONNECTED);
        pst_deliver_send(d);
        return;
    }

    d->rtls_fail += d->requiretls && pst_smtp_client_tls_refused(cl);
    if (pst_smtp_client_tls_result(cl) != NULL) {
        pst_deliver_tlsrpt(d, pst_smtp_client_tls_result(cl));
    }

    if (r->code != 0) {
        snprintf(d->why, sizeof(d->why), "%s said: %d %s%s%.*s", d->remote,
                 r->code, r->ecode, r->ecode[0] ? " " : "",
                 (int) pst_min(r->text.len, 300), r->text.data);
    } else {
        snprintf(d->why, sizeof(d->why), "%.*s", (int) r->text.len,
                 r->text.data);
    }
    pst_log_error(PST_LOG_INFO, 0, "deliver %.*s: %s", (int) d->dest.len,
                  d->dest.data, d->why);
    pst_deliver_drop(d);
    d->hop++;
    pst_deliver_connect(d);
}


/* Connected and ready: what the next hop cannot take fails here. */
static void
pst_deliver_send(pst_dlv_t *d)
{
    pst_spool_msg_t  *m = d->job->msg;
    unsigned          caps = pst_smtp_client_caps(d->cl);

    if (m->env.smtputf8 && !(caps & PST_SMTP_CAP_SMTPUTF8)
        && !(d->no_utf8 = !pst_deliver_needs_utf8(d)))
    {
        pst_deliver_all(d, PST_RCPT_FAILED, 553, "5.6.7", "%s does not"
                        " support SMTPUTF8 (RFC 6531 3.2)", d->remote);
        goto keep;
    }

    /* every message to a hop without 8BITMIME: declared 8BITMIME or not
     * (a client may send 8-bit text undeclared), the job looks at the
     * octets on an I/O thread and converts only when it has to */
    if (!(caps & PST_SMTP_CAP_8BITMIME)) {
        if (pst_deliver_convert(d) == PST_AGAIN) {
            return;                     /* pst_deliver_converted() */
        }
        goto keep;
    }

    pst_deliver_send_tx(d);
    return;

keep:

    pst_deliver_keep(d);
}


/* The 7-bit conversion is done (on the loop again). */
void
pst_deliver_converted(pst_dlv_t *d)
{
    d->converting = 0;
    if (d->cancelled) {
        pst_deliver_free(d);
        return;
    }
    if (d->conv_rc != PST_OK && d->conv_rc != PST_DONE) {
        pst_deliver_convert_failed(d, d->conv_rc, d->conv_why);
        pst_deliver_keep(d);
        return;
    }
    pst_deliver_send_tx(d);             /* converted, or 7-bit as it is */
}


/* A local delivery is over (on the loop again). */
void
pst_deliver_local_done(pst_dlv_t *d)
{
    d->converting = 0;
    if (d->cancelled) {
        pst_deliver_free(d);
        return;
    }
    pst_deliver_finish(d);
}


/* The connection stays good for the next message: to the cache. */
static void
pst_deliver_keep(pst_dlv_t *d)
{
    pst_dlv_busy--;
    pst_deliver_cache_put(&d->dest, d->cl, d->uses, d->remote);
    d->cl = NULL;
    pst_deliver_finish(d);
}


static void
pst_deliver_send_tx(pst_dlv_t *d)
{
    pst_deliver_event(d, PST_QEV_BEFORE_SEND);

    if (pst_deliver_build_tx(d) != PST_OK
        || pst_smtp_client_send(d->cl, &d->tx, pst_deliver_sent, d)
           != PST_OK)
    {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "cannot start"
                        " a transaction with %s", d->remote);
        pst_deliver_drop(d);
        pst_deliver_finish(d);
    }
}


/* One recipient's outcome from its reply. */
static void
pst_deliver_outcome(pst_dlv_t *d, pst_dlv_rcpt_t *out,
    const pst_smtp_client_rcpt_t *cr, unsigned caps)
{
    const pst_smtp_reply_t  *r = &cr->reply;
    const pst_env_rcpt_t    *er;
    size_t                   n;

    er = (pst_env_rcpt_t *) d->job->msg->env.rcpts->elts + out->index;

    out->code = r->code;
    snprintf(out->ecode, sizeof(out->ecode), "%s", r->ecode);
    n = r->text.len;
    if (memchr(r->text.data, '\n', n) != NULL) {
        n = (u_char *) memchr(r->text.data, '\n', n) - r->text.data;
    }
    if (r->code == 0) {
        snprintf(out->reply, sizeof(out->reply), "%.*s", (int) n,
                 r->text.data);
    } else {
        snprintf(out->reply, sizeof(out->reply), "%d %s%s%.*s", r->code,
                 r->ecode, r->ecode[0] ? " " : "", (int) n, r->text.data);
    }

    if (r->code / 100 == 2) {
        out->state = PST_RCPT_DELIVERED;
        out->relayed = (er->notify & PST_NOTIFY_SUCCESS)
                       && !(caps & PST_SMTP_CAP_DSN);
        /* an LMTP server delivers into the mailbox: without DSN of its
         * own, the success to report is "delivered", from us */
        out->final = out->relayed && (d->route_flags & PST_ROUTE_LMTP);
        out->relayed &= !out->final;
    } else if (r->code / 100 == 5) {
        out->state = PST_RCPT_FAILED;
    } else {
        out->state = PST_RCPT_DEFERRED;
        if (r->code == 0) {
            out->code = 451;
            snprintf(out->ecode, sizeof(out->ecode), "4.4.2");
        }
    }
}


static void
pst_deliver_sent(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx,
    void *data, int rc)
{
    pst_dlv_t   *d = data;
    pst_uint_t   i;
    unsigned     caps = pst_smtp_client_caps(cl);

    for (i = 0; i < d->job->nrcpts && i < tx->nrcpts; i++) {
        pst_deliver_outcome(d, &d->job->rcpts[i], &tx->rcpts[i], caps);
    }

    if (rc == PST_OK) {
        d->uses++;
        pst_dlv_busy--;
        pst_deliver_cache_put(&d->dest, d->cl, d->uses, d->remote);
        d->cl = NULL;
    } else {
        snprintf(d->job->remote, sizeof(d->job->remote), "%s", d->remote);
        pst_deliver_drop(d);
    }
    pst_deliver_finish(d);
}


void
pst_deliver_all(pst_dlv_t *d, pst_rcpt_state_e state, int code,
    const char *ecode, const char *fmt, ...)
{
    pst_dlv_rcpt_t  *r;
    pst_uint_t       i;
    char             text[400];
    va_list          ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);

    for (i = 0; i < d->job->nrcpts; i++) {
        r = &d->job->rcpts[i];
        r->state = state;
        r->code = code;
        r->relayed = 0;
        r->final = 0;
        snprintf(r->ecode, sizeof(r->ecode), "%s", ecode);
        snprintf(r->reply, sizeof(r->reply), "%d %s %s", code, ecode, text);
    }
}


static void
pst_deliver_posted(pst_event_t *ev)
{
    pst_deliver_finish(ev->data);
}


/* The outcome is in job->rcpts: tell the engine, forget the attempt. */
static void
pst_deliver_finish(pst_dlv_t *d)
{
    pst_dlv_job_t    *job = d->job;
    pst_dlv_done_pt   done = d->done;
    void             *data = d->data;

    if (job->remote[0] == '\0') {
        snprintf(job->remote, sizeof(job->remote), "%s", d->remote);
    }
    if (d->cl != NULL) {
        pst_deliver_drop(d);
    }
    pst_deliver_free(d);
    done(job, data);
}


static void
pst_deliver_free(pst_dlv_t *d)
{
    pst_uint_t  i;

    for (i = 0; i < d->nhops; i++) {
        free(d->hops[i].name.data);
    }
    free(d->hops);
    pst_deliver_local_free(d);
    pst_deliver_dane_forget(d);
    pst_deliver_sts_forget(d);
    free(d->tls_name);
    free(d->auth_user);
    if (d->auth_pass != NULL) {
        explicit_bzero(d->auth_pass, strlen(d->auth_pass));
        free(d->auth_pass);
    }
    if (d->fd != -1) {
        close(d->fd);
    }
    if (d->pool != NULL) {
        pst_destroy_pool(d->pool);
    }
    free(d);
}


/* RESOLVED, CONNECTED, DISCONNECTED, BEFORE_SEND. */
static void
pst_deliver_event(pst_dlv_t *d, pst_qevent_e event)
{
    pst_qevent_t  ev;

    memset(&ev, 0, sizeof(ev));
    ev.event = event;
    ev.rcpt = PST_QEV_NO_RCPT;
    ev.dest = &d->dest;
    ev.remote = d->remote[0] ? d->remote : NULL;
    if (event == PST_QEV_BEFORE_SEND) {
        ev.env = &d->job->msg->env;
    }
    pst_queue_event(&ev);
}
