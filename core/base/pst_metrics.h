/*
 * pst_metrics.h -- counters, gauges and histograms in shared memory.
 *
 * One shared zone ("postern:metrics"), mapped by the master before it
 * forks, holds every series; a worker or queue process that dies and is
 * respawned keeps counting into the same numbers, and a reload keeps
 * the zone (same name and size).  Updates are single atomic adds: no
 * lock on the counting paths.
 *
 * Fixed series are named by an id (pst_metric_e); series whose label
 * value is only known at run time (the listener of a session, the
 * module of a hook) go through pst_metric_label_inc() and
 * pst_metric_label_observe(), which claim a slot for (family, label)
 * the first time and reuse it after (bounded: PST_METRICS_LABELS slots;
 * past that the sample is counted under label "other").
 *
 * pst_metrics_render() writes the Prometheus text format (0.0.4) or
 * OpenMetrics 1.0; pst_metrics_http.c serves it (metrics_listen).
 */

#ifndef PST_METRICS_H
#define PST_METRICS_H

#define PST_METRICS_LABELS        128
#define PST_METRICS_LABEL_LEN     48
#define PST_METRICS_BUCKETS       14       /* finite buckets + Inf */

/* Fixed series.  Keep in the order of the table in pst_metrics.c. */
typedef enum {
    PST_M_CONN_TOTAL = 0,
    PST_M_CONN_REFUSED_LIMIT,           /* max_connections (total) */
    PST_M_CONN_REFUSED_ADDR_LIMIT,      /* per client address */
    PST_M_CONN_REFUSED_ACCESS,          /* a CONNECT hook said no */
    PST_M_CONN_REFUSED_RESOURCES,       /* no memory, no descriptors */

    PST_M_MSG_ACCEPTED,
    PST_M_MSG_BYTES,                    /* bytes as stored */
    PST_M_MSG_REJECTED_CONNECT,
    PST_M_MSG_REJECTED_HELO,
    PST_M_MSG_REJECTED_MAIL,
    PST_M_MSG_REJECTED_RCPT,
    PST_M_MSG_REJECTED_DATA,
    PST_M_MSG_REJECTED_QUEUE,
    PST_M_MSG_TEMPFAIL_CONNECT,
    PST_M_MSG_TEMPFAIL_HELO,
    PST_M_MSG_TEMPFAIL_MAIL,
    PST_M_MSG_TEMPFAIL_RCPT,
    PST_M_MSG_TEMPFAIL_DATA,
    PST_M_MSG_TEMPFAIL_QUEUE,
    PST_M_MSG_TEMPFAIL_STORE,           /* the commit failed */

    PST_M_TLS_HANDSHAKES,
    PST_M_TLS_FAILURES,
    PST_M_AUTH_SUCCESS,
    PST_M_AUTH_FAILURE,

    PST_M_DNS_QUERIES,
    PST_M_DNS_FAILURES,                 /* SERVFAIL, timeout, transport */

    PST_M_WORKER_RESTARTS,              /* any role, after a crash */

    PST_M_DELIVERY_DELIVERED,           /* per recipient (relay) */
    PST_M_DELIVERY_DEFERRED,
    PST_M_DELIVERY_BOUNCED,

    PST_M_QUEUE_ACTIVE,                 /* gauges, set by the queue */
    PST_M_QUEUE_DEFERRED,
    PST_M_QUEUE_HOLD,

    PST_M_NSERIES
} pst_metric_e;

typedef enum {
    PST_H_STORE_COMMIT = 0,             /* seconds */
    PST_H_GROUP_COMMIT,                 /* messages per fsync batch */
    PST_H_DELIVERY,                     /* seconds, arrival to outcome */
    PST_H_NFIXED
} pst_histogram_e;

typedef enum {
    PST_ML_SESSIONS = 0,                /* label: listener */
    PST_ML_REJECT_REASON,               /* label: the rule or module */
    PST_ML_HOOK_LATENCY,                /* histogram, label: module */
    PST_ML_NFAMILIES
} pst_metric_label_e;

/* Configuration time (master, before fork): map the zone. */
/* the built-in module of metrics_listen and the counters' zone */
extern const pst_module_t  pst_metrics_module;

int pst_metrics_init(pst_conf_t *cf);

void pst_metric_add(pst_metric_e id, uint64_t n);
#define pst_metric_inc(id)   pst_metric_add(id, 1)
void pst_metric_set(pst_metric_e id, uint64_t v);    /* gauges */
/* A sample: seconds (as microseconds) or a plain count (group commit). */
void pst_metric_observe(pst_histogram_e id, uint64_t value);
void pst_metric_label_inc(pst_metric_label_e fam, const char *label,
    size_t len);
void pst_metric_label_observe(pst_metric_label_e fam, const char *label,
    size_t len, uint64_t usec);

/* A monotonic clock in microseconds, for latencies. */
uint64_t pst_metric_usec(void);

/* The exposition: openmetrics 0 = Prometheus text 0.0.4. */
int pst_metrics_render(pst_buf_t *out, int openmetrics);

/* metrics_listen's address, or NULL (pst_metrics_http.c binds it). */
const pst_str_t *pst_metrics_listen_addr(pst_cycle_t *cycle);

#endif /* PST_METRICS_H */
