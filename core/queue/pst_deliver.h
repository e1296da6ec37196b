/*
 * pst_deliver.h -- one delivery attempt: a transaction's recipients of
 * one message, for one destination, over the core SMTP client.
 *
 * Queue process only, on its event loop; nothing here blocks.  The
 * engine (core/queue/pst_queue.c) decides what to try and when; this layer
 * resolves the destination's hops (through the router), connects,
 * speaks SMTP and reports one outcome per recipient.
 */

#ifndef PST_DELIVER_H
#define PST_DELIVER_H

#include "pst_spool.h"


/* A destination's outbound TLS policy (relay_tls, tls_policy, a
 * route's own): the first five are the client's pst_smtpc_tls_e. */
typedef enum {
    PST_DLV_TLS_NONE = 0,
    PST_DLV_TLS_MAY,
    PST_DLV_TLS_ENCRYPT,
    PST_DLV_TLS_VERIFY,
    PST_DLV_TLS_IMPLICIT,
    PST_DLV_TLS_DANE,           /* DANE when the TLSA records are secure,
                                   else may (RFC 7672 2.2) */
    PST_DLV_TLS_DANE_ONLY,      /* DANE or nothing */
    PST_DLV_TLS_MTA_STS         /* the domain's MTA-STS policy when it
                                   has one (RFC 8461), else may */
} pst_dlv_tls_e;

/* "none", "may", ... "dane-only" for a policy; its value by name, -1
 * for an unknown one (names[0..n)). */
extern const pst_conf_enum_t  pst_deliver_tls_policies[];

typedef struct {
    /* in: recipient index in job->msg->env.rcpts */
    pst_uint_t        index;
    /* out: DELIVERED, DEFERRED or FAILED */
    pst_rcpt_state_e  state;
    /* out: reply code (0: no reply: a local reason) */
    int               code;
    /* out: "4.4.1" or "" */
    char              ecode[16];
    /* out: one line, the remote reply or our reason, e.g.
     * "451 4.4.1 connect to mx.x[1.2.3.4]:25: refused" */
    char              reply[512];
    /* out: DELIVERED, NOTIFY=SUCCESS asked, the next hop lacks DSN */
    unsigned          relayed:1;
    /* out: DELIVERED into a mailbox (LMTP without DSN, a local route):
     * NOTIFY=SUCCESS gets "delivered" from us (RFC 3464 2.3.3) */
    unsigned          final:1;
} pst_dlv_rcpt_t;

typedef struct {
    /* in: open message (env + fd), valid until done */
    pst_spool_msg_t  *msg;
    /* in/out: one transaction's recipients, one destination */
    pst_dlv_rcpt_t   *rcpts;
    pst_uint_t        nrcpts;
    /* out: "mx.host[addr]:port" of the hop that answered, or "" */
    char              remote[300];
    /* out: no hop could be reached, or all failed at connect or
     * greeting: the destination looks dead */
    unsigned          dest_failed:1;
    /* out */
    time_t            started;
    /* in: a node transfer (postern queue drain): NULL, or the other
     * node, the one hop whatever the destination; it must offer
     * XPOSTERN, gets the node facts, and its 2xx moves a recipient */
    const struct sockaddr *peer;
    socklen_t         peer_len;
    const char       *peer_name;      /* its address, as text */
} pst_dlv_job_t;

typedef void (*pst_dlv_done_pt)(pst_dlv_job_t *job, void *data);
typedef struct pst_dlv_s  pst_dlv_t;

/* pst_deliver_conf.c: the delivery layer's main-level directives (built
 * in) */
extern const pst_module_t  pst_deliver_conf_module;

/* Queue process, after the event loop is up. */
int pst_deliver_init(pst_cycle_t *cycle);
/* Close cached connections. */
void pst_deliver_exit(void);
/* Deliver job to dest (the next-hop domain, ASCII lower case, or
 * "[addr]").  Calls done exactly once, never from inside
 * pst_deliver_start(); NULL on immediate failure (no memory), and then
 * done is not called.  Uses a cached idle connection to dest when there
 * is one (bounded by relay_connection_reuse messages and
 * relay_connection_idle time). */
pst_dlv_t *pst_deliver_start(const pst_str_t *dest, pst_dlv_job_t *job,
    pst_dlv_done_pt done, void *data);
/* Stop an attempt (shutdown, delete): done is NOT called afterwards;
 * the recipients stay as they were. */
void pst_deliver_cancel(pst_dlv_t *d);
/* Close the idle connections to dest (a drain's node, once the pass is
 * over: the next pass must meet the node as it is then). */
void pst_deliver_close(const pst_str_t *dest);
/* Open (busy and idle) outbound connections, for status and metrics. */
pst_uint_t pst_deliver_connections(void);
/* A hop as the log's relay= and a queue event's remote say it:
 * "host[addr]:port", "host[/path]" for a unix socket. */
void pst_deliver_hop_text(const pst_nexthop_t *hop, char *buf,
    size_t size);

#endif /* PST_DELIVER_H */
