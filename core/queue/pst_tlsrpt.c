/*
 * pst_tlsrpt.c -- TLS reporting (RFC 8460) in the queue process: the
 * counts per policy domain (pst_tlsrpt_record(), from the delivery
 * layer), and every tls_report_interval the reports: for each domain
 * counted, its "_smtp._tls" TXT record through the core's resolver, then
 * the report mailed to the first mailto: rua, injected into the spool
 * from the null sender on an I/O thread (the relay then delivers it like
 * any message).  https: rua are not posted to.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_qio.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"
#include "pst_tlsrpt.h"
#include "pst_queue.h"
#include "pst_smtp.h"

#define PST_TLSRPT_MAX_DOMAINS   10000

typedef struct {
    pst_qio_job_t                job;
    pst_tlsrpt_dom_t            *dom;
    pst_dns_query_t             *q;
    char                         rua[256];
    char                         report_id[300];
    u_char                      *msg;
    size_t                       len;
    int                          rc;
    u_char                       id[PST_QUEUE_ID_LEN + 1];
} pst_tlsrpt_send_t;

static pst_tlsrpt_dom_t  *pst_tr_doms;
static pst_uint_t         pst_tr_ndoms;
static time_t             pst_tr_start;
static pst_timer_t       *pst_tr_timer;
static pst_uint_t         pst_tr_sending;
static const pst_deliver_conf_t  *pst_tr_conf;
static char               pst_tr_submitter[256];


static void pst_tlsrpt_tick(void *data);
static void pst_tlsrpt_send(pst_tlsrpt_dom_t *d, time_t start, time_t end);
static void pst_tlsrpt_txt(void *data, const pst_dns_answer_t *a);
static void pst_tlsrpt_inject(pst_qio_job_t *job);
static void pst_tlsrpt_injected(pst_qio_job_t *job);
static void pst_tlsrpt_free(pst_tlsrpt_dom_t *d);
static char *pst_tlsrpt_strdup(const char *s);


int
pst_tlsrpt_init(pst_cycle_t *cycle)
{
    pst_server_t  **srv;

    pst_tr_conf = pst_deliver_conf(cycle);
    pst_tr_start = time(NULL);
    if (pst_tr_conf == NULL || !pst_tr_conf->tls_report) {
        return PST_OK;
    }
    if (pst_tr_conf->tls_report_submitter.len > 0) {
        snprintf(pst_tr_submitter, sizeof(pst_tr_submitter), "%.*s",
                 (int) pst_tr_conf->tls_report_submitter.len,
                 pst_tr_conf->tls_report_submitter.data);
    } else if (cycle->servers.nelts > 0) {
        srv = cycle->servers.elts;
        snprintf(pst_tr_submitter, sizeof(pst_tr_submitter), "%.*s",
                 (int) srv[0]->conf->hostname.len,
                 srv[0]->conf->hostname.data);
    } else {
        snprintf(pst_tr_submitter, sizeof(pst_tr_submitter), "localhost");
    }
    pst_tr_timer = pst_timer_add(pst_tr_conf->tls_report_interval,
                                 pst_tlsrpt_tick, NULL);
    return pst_tr_timer != NULL ? PST_OK : PST_ERROR;
}


void
pst_tlsrpt_exit(void)
{
    pst_tlsrpt_dom_t  *d, *next;

    if (pst_tr_timer != NULL) {
        pst_timer_cancel(pst_tr_timer);
        pst_tr_timer = NULL;
    }
    for (d = pst_tr_doms; d != NULL; d = next) {
        next = d->next;
        pst_tlsrpt_free(d);
    }
    pst_tr_doms = NULL;
    pst_tr_ndoms = 0;
}


void
pst_tlsrpt_record(const pst_str_t *domain, pst_tlsrpt_type_e type,
    const char *policy, const char *mx, const char *result,
    const char *mx_host, const char *ip)
{
    pst_tlsrpt_dom_t   *d;
    pst_tlsrpt_fail_t  *f;
    pst_uint_t          i;

    if (pst_tr_conf == NULL || !pst_tr_conf->tls_report
        || domain->len == 0 || domain->len > 253)
    {
        return;
    }
    for (d = pst_tr_doms; d != NULL; d = d->next) {
        if (strlen(d->domain) == domain->len && d->type == type
            && memcmp(d->domain, domain->data, domain->len) == 0)
        {
            break;
        }
    }
    if (d == NULL) {
        if (pst_tr_ndoms >= PST_TLSRPT_MAX_DOMAINS
            || (d = calloc(1, sizeof(pst_tlsrpt_dom_t))) == NULL)
        {
            return;
        }
        memcpy(d->domain, domain->data, domain->len);
        d->type = type;
        d->policy = pst_tlsrpt_strdup(policy);
        d->mx = pst_tlsrpt_strdup(mx);
        d->next = pst_tr_doms;
        pst_tr_doms = d;
        pst_tr_ndoms++;
    }

    if (result == NULL) {
        d->ok++;
        return;
    }
    d->failed++;
    for (i = 0; i < d->nfail; i++) {
        f = &d->fail[i];
        if (strcmp(f->result, result) == 0 && strcmp(f->mx, mx_host) == 0
            && strcmp(f->ip, ip) == 0)
        {
            f->count++;
            return;
        }
    }
    if (d->nfail < PST_TLSRPT_MAX_FAIL) {
        f = &d->fail[d->nfail++];
        snprintf(f->result, sizeof(f->result), "%s", result);
        snprintf(f->mx, sizeof(f->mx), "%s", mx_host);
        snprintf(f->ip, sizeof(f->ip), "%s", ip);
        f->count = 1;
    }
}


/* The period is over: every domain counted gets its report. */
static void
pst_tlsrpt_tick(void *data)
{
    pst_tlsrpt_dom_t  *d, *next;
    time_t             end = time(NULL);

    (void) data;
    d = pst_tr_doms;
    pst_tr_doms = NULL;
    pst_tr_ndoms = 0;
    for ( /* void */ ; d != NULL; d = next) {
        next = d->next;
        pst_tlsrpt_send(d, pst_tr_start, end);
    }
    pst_tr_start = end;
    pst_tr_timer = pst_timer_add(pst_tr_conf->tls_report_interval,
                                 pst_tlsrpt_tick, NULL);
}


static void
pst_tlsrpt_send(pst_tlsrpt_dom_t *d, time_t start, time_t end)
{
    pst_tlsrpt_send_t  *s;
    char                name[300], date[16];
    struct tm           tm;

    s = calloc(1, sizeof(pst_tlsrpt_send_t));
    if (s == NULL) {
        pst_tlsrpt_free(d);
        return;
    }
    s->dom = d;
    gmtime_r(&start, &tm);
    strftime(date, sizeof(date), "%Y%m%d", &tm);
    snprintf(s->report_id, sizeof(s->report_id), "%s.%lld.%.120s@%.120s",
             date, (long long) end, d->domain, pst_tr_submitter);
    s->job.data = s;
    s->job.run = pst_tlsrpt_inject;
    s->job.done = pst_tlsrpt_injected;
    /* the message is built once the rua is known: start and end kept */
    s->len = (size_t) start;
    s->rc = (int) (end - start);

    snprintf(name, sizeof(name), "_smtp._tls.%s", d->domain);
    s->q = pst_dns_resolve(name, PST_DNS_TXT, 10000, pst_tlsrpt_txt, s);
    if (s->q == NULL) {
        pst_tlsrpt_free(d);
        free(s);
    }
}


static void
pst_tlsrpt_txt(void *data, const pst_dns_answer_t *a)
{
    pst_tlsrpt_send_t  *s = data;
    pst_tlsrpt_dom_t   *d = s->dom;
    const char         *org = pst_tr_submitter;
    char                txt[512];
    pst_uint_t          i;
    time_t              start = (time_t) s->len, end = start + s->rc;
    char               *json = NULL;

    for (i = 0; a->status == PST_DNS_OK && i < a->count; i++) {
        if (pst_dns_rr_txt(a, i, txt, sizeof(txt)) == PST_OK
            && pst_tlsrpt_rua(txt, s->rua, sizeof(s->rua)) == PST_OK)
        {
            break;
        }
    }
    if (s->rua[0] == '\0') {
        pst_log_error(PST_LOG_INFO, 0, "tls report %s: no mailto: rua at"
                      " _smtp._tls.%s, not sent", d->domain, d->domain);
        goto done;
    }

    json = pst_tlsrpt_json(d, org, pst_tr_conf->tls_report_contact.len
                           ? (char *) pst_tr_conf->tls_report_contact.data
                           : org, s->report_id, start, end);
    s->msg = json ? pst_tlsrpt_message(d, json, org, s->rua, s->report_id,
                                       start, end, &s->len)
                  : NULL;
    free(json);
    if (s->msg == NULL) {
        goto done;
    }
    pst_tr_sending++;
    pst_qio_post(&s->job);
    return;

done:

    pst_tlsrpt_free(d);
    free(s);
}


/* Thread: into the spool from the null sender (a report never bounces). */
static void
pst_tlsrpt_inject(pst_qio_job_t *job)
{
    pst_tlsrpt_send_t  *s = job->data;
    pst_pool_t         *pool;
    pst_envelope_t      env;
    pst_env_rcpt_t     *r;

    s->rc = PST_ERROR;
    pool = pst_create_pool(4096);
    if (pool == NULL) {
        return;
    }
    if (pst_envelope_init(pool, &env) == PST_OK
        && (r = pst_envelope_add_rcpt(pool, &env, (u_char *) s->rua,
                                      strlen(s->rua))) != NULL)
    {
        r->notify = PST_NOTIFY_NEVER;
        pst_str_set(&env.protocol, "local");
        env.size = (int64_t) s->len;
        s->rc = pst_spool_inject(&env, s->msg, s->len, s->id);
    }
    pst_destroy_pool(pool);
}


static void
pst_tlsrpt_injected(pst_qio_job_t *job)
{
    pst_tlsrpt_send_t  *s = job->data;

    pst_tr_sending--;
    if (s->rc == PST_OK) {
        pst_log_error(PST_LOG_INFO, 0, "tls report %s: %s to <%s>: %lu"
                      " successful, %lu failed session(s)", s->dom->domain,
                      s->id, s->rua, s->dom->ok, s->dom->failed);
        pst_queue_committed(s->id, PST_QUEUE_ID_LEN);
    } else {
        pst_log_error(PST_LOG_ERR, 0, "tls report %s: cannot write it to"
                      " the spool", s->dom->domain);
    }
    free(s->msg);
    pst_tlsrpt_free(s->dom);
    free(s);
}


static void
pst_tlsrpt_free(pst_tlsrpt_dom_t *d)
{
    free(d->policy);
    free(d->mx);
    free(d);
}


static char *
pst_tlsrpt_strdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}
