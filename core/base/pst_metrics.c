/*
 * pst_metrics.c -- counters in shared memory and their exposition
 * (see pst_metrics.h).  The built-in module "metrics" owns the
 * metrics_listen directive.
 */

#include "pst_core.h"
#include "pst_metrics.h"

typedef struct {
    uint64_t                     bucket[PST_METRICS_BUCKETS];
    uint64_t                     count;
    uint64_t                     sum;
} pst_hist_t;

typedef struct {
    volatile uint32_t            used;
    uint32_t                     fam;
    char                         label[PST_METRICS_LABEL_LEN];
    uint64_t                     value;
    pst_hist_t                   hist;
} pst_label_slot_t;

typedef struct {
    uint64_t                     series[PST_M_NSERIES];
    pst_hist_t                   hist[PST_H_NFIXED];
    pst_label_slot_t             labels[PST_METRICS_LABELS];
} pst_metrics_zone_t;

typedef struct {
    const char                  *name;      /* family, without _total */
    const char                  *type;      /* counter, gauge */
    const char                  *help;
    const char                  *label;     /* k="v" or NULL */
} pst_series_desc_t;

typedef struct {
    const char                  *name;
    const char                  *help;
    const char                  *label;     /* label name (dynamic) */
    int                          seconds;   /* else plain counts */
} pst_hist_desc_t;


static pst_hist_t *pst_metrics_label_hist(pst_metric_label_e fam,
    const char *label, size_t len);
static pst_label_slot_t *pst_metrics_slot(pst_metric_label_e fam,
    const char *label, size_t len);
static void pst_metrics_hist_add(pst_hist_t *h, int seconds, uint64_t v);
static int pst_metrics_series(pst_buf_t *out, int om);
static int pst_metrics_labelled(pst_buf_t *out, int om);
static int pst_metrics_hist(pst_buf_t *out, const pst_hist_desc_t *d,
    const char *lval, const pst_hist_t *h);
static int pst_metrics_head(pst_buf_t *out, const char *name,
    const char *type, const char *help, int om);
static int pst_metrics_printf(pst_buf_t *out, const char *fmt, ...)
    PST_PRINTF(2, 3);
static void pst_metrics_escape(char *dst, size_t size, const char *src);
static void *pst_metrics_create_conf(pst_conf_t *cf);
static char *pst_metrics_init_conf(pst_conf_t *cf, void *conf);
static char *pst_metrics_listen_set(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);


#define PST_METRICS_ANSWER_MAX   (1024 * 1024)

static const pst_series_desc_t  series[PST_M_NSERIES] = {
    { "postern_connections", "counter", "SMTP connections accepted", NULL },
    { "postern_connections_refused", "counter",
      "SMTP connections refused", "reason=\"limit\"" },
    { "postern_connections_refused", "counter", NULL,
      "reason=\"addr_limit\"" },
    { "postern_connections_refused", "counter", NULL, "reason=\"access\"" },
    { "postern_connections_refused", "counter", NULL,
      "reason=\"resources\"" },

    { "postern_messages_accepted", "counter",
      "messages committed to the spool", NULL },
    { "postern_message_bytes", "counter",
      "bytes of messages committed, as stored", NULL },
    { "postern_messages_rejected", "counter",
      "transactions refused (5xx) by phase", "phase=\"connect\"" },
    { "postern_messages_rejected", "counter", NULL, "phase=\"helo\"" },
    { "postern_messages_rejected", "counter", NULL, "phase=\"mail\"" },
    { "postern_messages_rejected", "counter", NULL, "phase=\"rcpt\"" },
    { "postern_messages_rejected", "counter", NULL, "phase=\"data\"" },
    { "postern_messages_rejected", "counter", NULL, "phase=\"queue\"" },
    { "postern_messages_tempfailed", "counter",
      "transactions deferred (4xx) by phase", "phase=\"connect\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"helo\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"mail\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"rcpt\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"data\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"queue\"" },
    { "postern_messages_tempfailed", "counter", NULL, "phase=\"store\"" },

    { "postern_tls_handshakes", "counter", "TLS handshakes completed",
      NULL },
    { "postern_tls_handshake_failures", "counter", "TLS handshakes failed",
      NULL },
    { "postern_auth", "counter", "AUTH attempts by result",
      "result=\"success\"" },
    { "postern_auth", "counter", NULL, "result=\"failure\"" },

    { "postern_dns_queries", "counter", "DNS queries sent", NULL },
    { "postern_dns_failures", "counter",
      "DNS queries that failed (not NXDOMAIN)", NULL },

    { "postern_process_restarts", "counter",
      "child processes restarted after an abnormal exit", NULL },

    { "postern_deliveries", "counter", "recipient deliveries by outcome",
      "outcome=\"delivered\"" },
    { "postern_deliveries", "counter", NULL, "outcome=\"deferred\"" },
    { "postern_deliveries", "counter", NULL, "outcome=\"bounced\"" },

    { "postern_queue_messages", "gauge", "messages in the queue by state",
      "state=\"active\"" },
    { "postern_queue_messages", "gauge", NULL, "state=\"deferred\"" },
    { "postern_queue_messages", "gauge", NULL, "state=\"hold\"" },
};

static const pst_hist_desc_t  hists[PST_H_NFIXED] = {
    { "postern_store_commit_duration_seconds",
      "time from the end of DATA to a durable message", NULL, 1 },
    { "postern_group_commit_messages",
      "messages made durable by one fsync batch", NULL, 0 },
    { "postern_delivery_duration_seconds",
      "time from arrival to a final or deferred outcome", NULL, 1 },
};

static const pst_hist_desc_t  label_fams[PST_ML_NFAMILIES] = {
    { "postern_sessions", "SMTP sessions by listener", "listener", 0 },
    { "postern_rejections", "refusals by the rule or module that made"
      " them", "reason", 0 },
    { "postern_hook_duration_seconds", "hook latency by module",
      "module", 1 },
};

/* finite bucket bounds: microseconds, or counts */
static const uint64_t  bounds_usec[PST_METRICS_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};
static const uint64_t  bounds_count[PST_METRICS_BUCKETS - 1] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096
};

static pst_shm_t           *zone;
static pst_metrics_zone_t  *mz;

typedef struct {
    pst_str_t                    listen;
} pst_metrics_conf_t;

static const pst_command_t  pst_metrics_commands[] = {
    { "metrics_listen", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_metrics_listen_set, PST_MAIN_CONF, 0, NULL },
    pst_null_command
};

const pst_module_t  pst_metrics_module = {
    PST_MODULE_HEADER,
    .name = "metrics",
    .version = PST_VERSION,
    .description = "counters in shared memory, the Prometheus endpoint",
    .commands = pst_metrics_commands,
    .create_main_conf = pst_metrics_create_conf,
    .init_main_conf = pst_metrics_init_conf,
};


static void *
pst_metrics_create_conf(pst_conf_t *cf)
{
    return pst_pcalloc(cf->pool, sizeof(pst_metrics_conf_t));
}


static char *
pst_metrics_init_conf(pst_conf_t *cf, void *conf)
{
    (void) conf;
    return pst_metrics_init(cf) == PST_OK ? PST_CONF_OK : PST_CONF_ERROR;
}


static char *
pst_metrics_listen_set(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_metrics_conf_t  *mcf = conf;
    pst_sockaddr_t       sa;
    socklen_t            len;
    pst_str_t           *args;
    pst_uint_t           n;

    (void) cmd;

    if (mcf->listen.data != NULL) {
        return "is duplicate";
    }
    args = pst_conf_args(cf, &n);
    if (pst_listening_parse(cf, &args[1], &sa, &len) != PST_OK) {
        return PST_CONF_ERROR;
    }
    mcf->listen = args[1];
    return PST_CONF_OK;
}


/* The cycle's address (a reload asks before its cycle is the current
 * one), or NULL. */
const pst_str_t *
pst_metrics_listen_addr(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;
    pst_metrics_conf_t  *mcf;

    me = pst_module_entry(cycle, &pst_metrics_module);
    if (me == NULL) {
        return NULL;
    }
    mcf = cycle->main_conf[me->index];
    return (mcf != NULL && mcf->listen.data != NULL) ? &mcf->listen : NULL;
}


int
pst_metrics_init(pst_conf_t *cf)
{
    pst_label_slot_t  *ls;
    int                f;

    zone = pst_shm_add(cf, "postern:metrics", sizeof(pst_metrics_zone_t));
    if (zone == NULL) {
        return PST_ERROR;
    }
    mz = pst_shm_addr(zone);

    if (pst_shm_is_new(zone)) {
        /* the last slots hold each family's "other" */
        for (f = 0; f < PST_ML_NFAMILIES; f++) {
            ls = &mz->labels[PST_METRICS_LABELS - PST_ML_NFAMILIES + f];
            ls->fam = (uint32_t) f;
            memcpy(ls->label, "other", 6);
            ls->used = 1;
        }
    }

    return PST_OK;
}


uint64_t
pst_metric_usec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


void
pst_metric_add(pst_metric_e id, uint64_t n)
{
    if (mz != NULL && (unsigned) id < PST_M_NSERIES) {
        __atomic_fetch_add(&mz->series[id], n, __ATOMIC_RELAXED);
    }
}


void
pst_metrics_group_commit(unsigned n)
{
    pst_metric_observe(PST_H_GROUP_COMMIT, n);
}


void
pst_metric_set(pst_metric_e id, uint64_t v)
{
    if (mz != NULL && (unsigned) id < PST_M_NSERIES) {
        __atomic_store_n(&mz->series[id], v, __ATOMIC_RELAXED);
    }
}


static void
pst_metrics_hist_add(pst_hist_t *h, int seconds, uint64_t v)
{
    const uint64_t  *b = seconds ? bounds_usec : bounds_count;
    int              i;

    for (i = 0; i < PST_METRICS_BUCKETS - 1 && v > b[i]; i++) {
        /* void */
    }
    __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}


void
pst_metric_observe(pst_histogram_e id, uint64_t value)
{
    if (mz != NULL && (unsigned) id < PST_H_NFIXED) {
        pst_metrics_hist_add(&mz->hist[id], hists[id].seconds, value);
    }
}


/*
 * The slot of (fam, label): found without a lock (a slot is published by
 * its "used" flag, written last), claimed under the zone's lock.
 */
static pst_label_slot_t *
pst_metrics_slot(pst_metric_label_e fam, const char *label, size_t len)
{
    pst_label_slot_t  *ls;
    int                i, pass;

    if (mz == NULL || (unsigned) fam >= PST_ML_NFAMILIES) {
        return NULL;
    }
    len = pst_min(len, PST_METRICS_LABEL_LEN - 1);

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < PST_METRICS_LABELS; i++) {
            ls = &mz->labels[i];
            if (!__atomic_load_n(&ls->used, __ATOMIC_ACQUIRE)) {
                if (pass == 0) {
                    break;          /* slots fill in order */
                }
                memcpy(ls->label, label, len);
                ls->label[len] = '\0';
                ls->fam = (uint32_t) fam;
                __atomic_store_n(&ls->used, 1, __ATOMIC_RELEASE);
                pst_shm_unlock(zone);
                return ls;
            }
            if (ls->fam == (uint32_t) fam
                && strncmp(ls->label, label, len) == 0
                && ls->label[len] == '\0')
            {
                if (pass == 1) {
                    pst_shm_unlock(zone);
                }
                return ls;
            }
        }
        if (pass == 0) {
            pst_shm_lock(zone);
        }
    }

    pst_shm_unlock(zone);
    return &mz->labels[PST_METRICS_LABELS - PST_ML_NFAMILIES + fam];
}


void
pst_metric_label_inc(pst_metric_label_e fam, const char *label, size_t len)
{
    pst_label_slot_t  *ls;

    ls = pst_metrics_slot(fam, label, len);
    if (ls != NULL) {
        __atomic_fetch_add(&ls->value, 1, __ATOMIC_RELAXED);
    }
}


static pst_hist_t *
pst_metrics_label_hist(pst_metric_label_e fam, const char *label,
    size_t len)
{
    pst_label_slot_t  *ls;

    ls = pst_metrics_slot(fam, label, len);
    return ls != NULL ? &ls->hist : NULL;
}


void
pst_metric_label_observe(pst_metric_label_e fam, const char *label,
    size_t len, uint64_t usec)
{
    pst_hist_t  *h;

    h = pst_metrics_label_hist(fam, label, len);
    if (h != NULL) {
        pst_metrics_hist_add(h, label_fams[fam].seconds, usec);
    }
}


/* ------------------------------------------------------------------ */
/* Exposition                                                          */

int
pst_metrics_render(pst_buf_t *out, int om)
{
    pst_uint_t  cur;
    int         i, rc;

    if (mz == NULL) {
        return PST_ERROR;
    }

    rc = pst_metrics_series(out, om);

    cur = pst_conn_count_current();
    rc |= pst_metrics_head(out, "postern_connections_current", "gauge",
                           "SMTP connections open now", om);
    rc |= pst_metrics_printf(out, "postern_connections_current %lu\n",
                             (unsigned long) cur);

    for (i = 0; i < PST_H_NFIXED; i++) {
        rc |= pst_metrics_head(out, hists[i].name, "histogram",
                               hists[i].help, om);
        rc |= pst_metrics_hist(out, &hists[i], NULL, &mz->hist[i]);
    }

    rc |= pst_metrics_labelled(out, om);

    if (om) {
        rc |= pst_metrics_printf(out, "# EOF\n");
    }

    return rc == PST_OK ? PST_OK : PST_ERROR;
}


static int
pst_metrics_series(pst_buf_t *out, int om)
{
    const char  *sfx;
    uint64_t     v;
    int          i, rc;

    rc = PST_OK;
    for (i = 0; i < PST_M_NSERIES; i++) {
        if (series[i].help != NULL) {
            rc |= pst_metrics_head(out, series[i].name, series[i].type,
                                   series[i].help, om);
        }
        sfx = series[i].type[0] == 'c' ? "_total" : "";
        v = __atomic_load_n(&mz->series[i], __ATOMIC_RELAXED);
        if (series[i].label != NULL) {
            rc |= pst_metrics_printf(out, "%s%s{%s} %llu\n", series[i].name,
                                     sfx, series[i].label,
                                     (unsigned long long) v);
        } else {
            rc |= pst_metrics_printf(out, "%s%s %llu\n", series[i].name,
                                     sfx, (unsigned long long) v);
        }
    }

    return rc;
}


static int
pst_metrics_labelled(pst_buf_t *out, int om)
{
    const pst_hist_desc_t  *d;
    pst_label_slot_t       *ls;
    char                    lval[PST_METRICS_LABEL_LEN * 2];
    int                     f, i, rc;

    rc = PST_OK;
    for (f = 0; f < PST_ML_NFAMILIES; f++) {
        d = &label_fams[f];
        rc |= pst_metrics_head(out, d->name, d->seconds ? "histogram"
                                                        : "counter",
                               d->help, om);
        for (i = 0; i < PST_METRICS_LABELS; i++) {
            ls = &mz->labels[i];
            if (!__atomic_load_n(&ls->used, __ATOMIC_ACQUIRE)
                || ls->fam != (uint32_t) f)
            {
                continue;
            }
            pst_metrics_escape(lval, sizeof(lval), ls->label);
            if (d->seconds) {
                if (ls->hist.count != 0) {
                    rc |= pst_metrics_hist(out, d, lval, &ls->hist);
                }
            } else if (ls->value != 0) {
                rc |= pst_metrics_printf(out, "%s_total{%s=\"%s\"} %llu\n",
                                         d->name, d->label, lval,
                                         (unsigned long long) ls->value);
            }
        }
    }

    return rc;
}


static int
pst_metrics_hist(pst_buf_t *out, const pst_hist_desc_t *d, const char *lval,
    const pst_hist_t *h)
{
    const uint64_t  *b = d->seconds ? bounds_usec : bounds_count;
    char             lab[PST_METRICS_LABEL_LEN * 2 + 32], le[32];
    uint64_t         cum, sum;
    int              i, rc;

    lab[0] = '\0';
    if (lval != NULL) {
        snprintf(lab, sizeof(lab), "%s=\"%s\",", d->label, lval);
    }

    rc = PST_OK;
    cum = 0;
    for (i = 0; i < PST_METRICS_BUCKETS; i++) {
        cum += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
        if (i == PST_METRICS_BUCKETS - 1) {
            snprintf(le, sizeof(le), "+Inf");
        } else if (d->seconds) {
            snprintf(le, sizeof(le), "%g", (double) b[i] / 1e6);
        } else {
            snprintf(le, sizeof(le), "%llu.0", (unsigned long long) b[i]);
        }
        rc |= pst_metrics_printf(out, "%s_bucket{%sle=\"%s\"} %llu\n",
                                 d->name, lab, le, (unsigned long long) cum);
    }

    /* the count is the +Inf bucket, so the two always agree */
    sum = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
    if (lval != NULL) {
        lab[strlen(lab) - 1] = '\0';
        rc |= pst_metrics_printf(out, "%s_count{%s} %llu\n%s_sum{%s} ",
                                 d->name, lab, (unsigned long long) cum,
                                 d->name, lab);
    } else {
        rc |= pst_metrics_printf(out, "%s_count %llu\n%s_sum ", d->name,
                                 (unsigned long long) cum, d->name);
    }

    if (d->seconds) {
        rc |= pst_metrics_printf(out, "%.6f\n", (double) sum / 1e6);
    } else {
        rc |= pst_metrics_printf(out, "%llu.0\n", (unsigned long long) sum);
    }

    return rc;
}


static int
pst_metrics_head(pst_buf_t *out, const char *name, const char *type,
    const char *help, int om)
{
    /* the text format names a counter by its sample (_total), the
     * OpenMetrics format by its family */
    const char  *sfx = (!om && type[0] == 'c') ? "_total" : "";

    return pst_metrics_printf(out, "# HELP %s%s %s\n# TYPE %s%s %s\n", name,
                              sfx, help, name, sfx, type);
}


static int
pst_metrics_printf(pst_buf_t *out, const char *fmt, ...)
{
    va_list  ap;
    char     line[512];
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(line)) {
        return PST_ERROR;
    }

    return pst_buf_append(out, line, (size_t) n, PST_METRICS_ANSWER_MAX);
}


/* A label value as the text format wants it: \\, \" and \n escaped,
 * other controls dropped. */
static void
pst_metrics_escape(char *dst, size_t size, const char *src)
{
    size_t  n = 0;

    for (/* void */; *src != '\0' && n + 3 < size; src++) {
        if (*src == '\\' || *src == '"') {
            dst[n++] = '\\';
            dst[n++] = *src;
        } else if (*src == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else if ((u_char) *src >= 0x20) {
            dst[n++] = *src;
        }
    }
    dst[n] = '\0';
}
