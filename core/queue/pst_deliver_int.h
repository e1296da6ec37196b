/*
 * pst_deliver_int.h -- the delivery layer's configuration and its
 * idle-connection cache, shared by core/queue/pst_deliver*.c only.
 */

#ifndef PST_DELIVER_INT_H
#define PST_DELIVER_INT_H

#include "pst_event.h"
#include "pst_ssl.h"
#include "pst_spool.h"
#include "pst_smtp_client.h"
#include "pst_qio.h"
#include "pst_mta_sts.h"

enum {
    PST_DLV_T_CONNECT = 0, PST_DLV_T_GREETING, PST_DLV_T_HELO,
    PST_DLV_T_MAIL, PST_DLV_T_RCPT, PST_DLV_T_DATA, PST_DLV_T_DATA_BLOCK,
    PST_DLV_T_DATA_DONE, PST_DLV_T_N
};

typedef struct {
    pst_uint_t                   tls;        /* PST_SMTPC_TLS_* */
    pst_str_t                    tls_ca_file;
    pst_msec_t                   timeouts[PST_DLV_T_N]; /* 0: RFC 5321 */
    pst_int_t                    reuse;      /* messages per connection */
    pst_msec_t                   idle;       /* idle connection kept */
    pst_str_t                    helo_name;  /* "": the smtp hostname */
    pst_str_t                    source;     /* "": the kernel's choice */
    struct sockaddr_storage      source_sa;
    socklen_t                    source_len;
    pst_int_t                    max_received;
    pst_int_t                    sts_port;   /* MTA-STS fetch: 443 */
    pst_msec_t                   sts_timeout;
    pst_int_t                    tls_report; /* RFC 8460 reports */
    pst_msec_t                   tls_report_interval;
    pst_str_t                    tls_report_submitter;  /* "": hostname */
    pst_str_t                    tls_report_contact;
} pst_deliver_conf_t;

#include "pst_deliver.h"

/* One attempt (core/queue/pst_deliver.c). */
struct pst_dlv_s {
    pst_str_t                dest;        /* copy, after the struct */
    pst_dlv_job_t           *job;
    pst_dlv_done_pt          done;
    void                    *data;
    pst_event_t              post;        /* finish from the loop */
    const pst_router_t      *router;
    void                    *route;       /* resolve() handle, running */
    pst_nexthop_t           *hops;        /* copies; names malloc'ed */
    pst_uint_t               nhops, hop;
    /* the route's way of speaking to its hops (copies, malloc'ed) */
    unsigned                 route_flags; /* PST_ROUTE_LMTP */
    int                      route_tls;   /* PST_ROUTE_TLS_* */
    char                    *tls_name, *auth_user, *auth_pass;
    /* outbound TLS: the destination's policy, then this hop's (DANE
     * resolved by pst_deliver_dane.c, whose TLSA answer for one host
     * name serves all its addresses) */
    pst_dlv_tls_e            tls_mode;
    pst_dlv_tls_e            hop_tls;
    pst_dns_query_t         *dane_q;
    char                     dane_name[300];  /* "_25._tcp.mx.host" */
    unsigned                 dane_known:1;    /* answer for dane_name */
    unsigned                 dane_skip:1;     /* ... says: not this host */
    pst_ssl_tlsa_t          *tlsa;            /* malloc'ed, with data */
    pst_uint_t               ntlsa;
    /* RFC 8689: REQUIRETLS asked (the hops that failed it counted), or
     * "TLS-Required: No" in the header */
    unsigned                 requiretls:1;
    unsigned                 tls_optional:1;
    pst_uint_t               rtls_fail;
    /* MTA-STS (pst_deliver_sts.c): the lookup running, the policy */
    void                    *sts_wait;
    pst_sts_policy_t         sts;           /* mode NONE: no policy */
    unsigned                 routed:1;      /* hops known, sts awaited */
    pst_smtp_client_t       *cl;
    pst_uint_t               uses;        /* messages sent on cl */
    int                      fd;          /* converted message, or -1 */
    off_t                    conv_len;
    /* the 7-bit conversion, on an I/O thread (it touches only these) */
    pst_qio_job_t            conv;
    int                      conv_src;    /* a dup of the queue file */
    off_t                    conv_off;    /* the message in it */
    size_t                   conv_size;
    int                      conv_rc;
    const char              *conv_why;
    unsigned                 converting:1;    /* or a local delivery */
    unsigned                 cancelled:1; /* while converting: free at done */
    unsigned                 reused:1;
    unsigned                 alive:1;     /* a hop got past EHLO */
    unsigned                 no_utf8:1;   /* SMTPUTF8 not needed: not sent */
    struct pst_dlv_local_s  *local;       /* pst_deliver_local.c */
    pst_smtp_client_tx_t     tx;
    pst_pool_t              *pool;        /* the transaction's strings */
    char                     remote[300];
    char                     why[512];    /* the last hop's failure */
};

const pst_deliver_conf_t *pst_deliver_conf(pst_cycle_t *cycle);

/* Idle connections (core/queue/pst_deliver_cache.c).  put(): a connection
 * that finished a transaction with `uses` messages sent; the cache
 * quits it after conf->idle, or at once when it is full or used up.
 * get(): an idle connection to dest (removed from the cache) with its
 * uses and its "host[addr]:port", or NULL. */
void pst_deliver_cache_put(const pst_str_t *dest, pst_smtp_client_t *cl,
    pst_uint_t uses, const char *remote);
pst_smtp_client_t *pst_deliver_cache_get(const pst_str_t *dest,
    pst_uint_t *uses, char *remote, size_t size);
pst_uint_t pst_deliver_cache_count(void);
void pst_deliver_cache_flush(void);

/* The message side (core/queue/pst_deliver_msg.c).  received_count(): the
 * Received: header lines (prepended ones included) in the first 64 KiB;
 * 8bit(): 1 when BODY=8BITMIME was given and the text has an octet
 * over 127; needs_utf8(): 1 when an address of the transaction or a
 * header line has UTF-8 (RFC 6531 3.2: else SMTPUTF8 is not needed);
 * convert(): the 7-bit downgrade into d->fd, or every
 * recipient failed 5.6.3 and PST_DECLINED; build_tx(): d->tx from the
 * envelope and job.  The client TLS context (NULL: no TLS). */
int pst_deliver_received_count(pst_spool_msg_t *m, int *tls_no);
int pst_deliver_needs_utf8(pst_dlv_t *d);
/* convert(): PST_AGAIN, then pst_deliver_converted() runs on the loop;
 * PST_DECLINED when the recipients were failed or deferred already. */
int pst_deliver_convert(pst_dlv_t *d);
void pst_deliver_converted(pst_dlv_t *d);
void pst_deliver_convert_failed(pst_dlv_t *d, int rc, const char *why);
int pst_deliver_build_tx(pst_dlv_t *d);
void pst_deliver_all(pst_dlv_t *d, pst_rcpt_state_e state, int code,
    const char *ecode, const char *fmt, ...) PST_PRINTF(5, 6);
pst_ssl_ctx_t *pst_deliver_ssl_ctx(void);

/* DANE for one hop (pst_deliver_dane.c): PST_OK with d->hop_tls (and
 * d->tlsa) set; PST_AGAIN while the TLSA lookup runs (then
 * pst_deliver_connect() is called again); PST_DECLINED: this hop must
 * not be used (d->why says why).  forget(): the lookup cancelled, the
 * records freed. */
int pst_deliver_dane(pst_dlv_t *d, const pst_nexthop_t *hop);
void pst_deliver_dane_forget(pst_dlv_t *d);

/* MTA-STS for an attempt (pst_deliver_sts.c).  start(): under the
 * mta-sts policy, the destination domain's policy: PST_OK (known, or
 * not wanted), PST_AGAIN (d->sts_wait; pst_deliver_go() runs when it
 * is known and the hops are), PST_ERROR.  hops(): an enforced
 * policy's MX patterns applied to the hops; PST_DECLINED when none is
 * left (every recipient deferred).  forget(): cancelled, freed. */
int pst_deliver_sts_start(pst_dlv_t *d);
int pst_deliver_sts_hops(pst_dlv_t *d);
void pst_deliver_sts_forget(pst_dlv_t *d);
/* RFC 8460: the TLS session with hop d->hop succeeded (result NULL) or
 * failed with that result-type. */
void pst_deliver_tlsrpt(pst_dlv_t *d, const char *result);
/* The route and the policy are known: filter the hops, connect. */
void pst_deliver_go(pst_dlv_t *d);
/* 1 when the hops came from an MX lookup (a destination that is a
 * domain). */
int pst_deliver_by_mx(pst_dlv_t *d);
pst_dlv_tls_e pst_deliver_tls_mode(pst_dlv_t *d);
void pst_deliver_connect(pst_dlv_t *d);

/* Local delivery (pst_deliver_local.c): a route with a local function
 * runs it per recipient on an I/O thread (d->converting meanwhile), then
 * pst_deliver_local_done() finishes the attempt on the loop (or frees
 * it when it was cancelled); free(): what it holds. */
typedef struct pst_dlv_local_s  pst_dlv_local_t;
void pst_deliver_local(pst_dlv_t *d, const pst_route_t *route);
void pst_deliver_local_done(pst_dlv_t *d);
void pst_deliver_local_free(pst_dlv_t *d);

#endif /* PST_DELIVER_INT_H */
