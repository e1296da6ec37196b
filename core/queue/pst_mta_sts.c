/*
 * pst_mta_sts.c -- MTA-STS policies on the queue process's event loop
 * (pst_mta_sts.h): one cache entry per destination domain, and the
 * lookup that refreshes it (RFC 8461 5.1):
 *
 *   [first use: the disk cache, on an I/O thread] -> TXT "_mta-sts.D"
 *     -> the same id as the cached, unexpired policy: keep it
 *     -> a new id: the addresses of "mta-sts.D", then the HTTPS fetch
 *        (an I/O thread), which replaces the policy when it is valid
 *     -> no record, a lookup or fetch that failed: the cached policy
 *        while it has not expired, else none
 *
 * Deliveries that ask meanwhile wait for the one lookup running; the
 * TXT record is looked at again at most every PST_STS_RECHECK seconds.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_mta_sts.h"
#include "pst_mta_sts_int.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#define PST_STS_HASH             1024
#define PST_STS_MAX_ENTRIES      100000
#define PST_STS_RECHECK          300       /* s between TXT lookups */
#define PST_STS_DNS_TIMEOUT      10000     /* ms */

typedef struct pst_sts_entry_s   pst_sts_entry_t;
typedef struct pst_sts_waiter_s  pst_sts_waiter_t;

struct pst_sts_waiter_s {
    pst_sts_waiter_t            *next;
    pst_sts_entry_t             *entry;
    pst_sts_done_pt              done;
    void                        *data;
};

struct pst_sts_entry_s {
    pst_sts_entry_t             *hnext;
    pst_sts_policy_t             policy;
    time_t                       checked;
    pst_dns_query_t             *q;
    pst_dns_addrs_t             *aq;
    pst_sts_waiter_t            *waiters;
    char                         new_id[33];
    unsigned                     have:1;      /* policy holds one */
    unsigned                     loaded:1;    /* the disk was read */
    unsigned                     busy:1;      /* a lookup runs */
    char                         domain[1];
};

static pst_sts_entry_t  *pst_sts_hash[PST_STS_HASH];
static pst_uint_t        pst_sts_entries;
static in_port_t         pst_sts_port = 443;
static pst_msec_t        pst_sts_timeout = 10000;
static char              pst_sts_ca[PATH_MAX];
static int               pst_sts_curl;


static pst_sts_entry_t *pst_sts_entry(const pst_str_t *domain);
static void pst_sts_start(pst_sts_entry_t *e);
static void pst_sts_txt(pst_sts_entry_t *e);
static void pst_sts_txt_answer(void *data, const pst_dns_answer_t *a);
static void pst_sts_addrs_answer(void *data, pst_dns_status_e status,
    int secure, const struct sockaddr_storage *addrs, pst_uint_t n);
static void pst_sts_io_post(pst_sts_entry_t *e, int kind,
    const char *resolve);
static void pst_sts_io_done(pst_qio_job_t *job);
static void pst_sts_finish(pst_sts_entry_t *e);
static const pst_sts_policy_t *pst_sts_effective(pst_sts_entry_t *e,
    time_t now);


void
pst_sts_configure(in_port_t port, pst_msec_t timeout, const char *ca_file)
{
    pst_sts_port = port;
    pst_sts_timeout = timeout;
    snprintf(pst_sts_ca, sizeof(pst_sts_ca), "%s", ca_file ? ca_file : "");
    if (!pst_sts_curl) {
        /* before any I/O thread uses curl: not thread-safe */
        pst_sts_curl = (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
    }
}


int
pst_sts_get(const pst_str_t *domain, const pst_sts_policy_t **p,
    pst_sts_done_pt done, void *data, void **handle)
{
    pst_sts_entry_t   *e;
    pst_sts_waiter_t  *w;
    time_t             now = time(NULL);

    e = pst_sts_entry(domain);
    if (e == NULL) {
        return PST_ERROR;
    }
    if (!e->busy && e->loaded && now - e->checked < PST_STS_RECHECK) {
        *p = pst_sts_effective(e, now);
        return PST_OK;
    }

    w = calloc(1, sizeof(pst_sts_waiter_t));
    if (w == NULL) {
        return PST_ERROR;
    }
    w->entry = e;
    w->done = done;
    w->data = data;
    w->next = e->waiters;
    e->waiters = w;
    *handle = w;

    if (!e->busy) {
        e->busy = 1;
        pst_sts_start(e);
    }
    return PST_AGAIN;
}


void
pst_sts_cancel(void *handle)
{
    pst_sts_waiter_t   *w = handle, **pp;

    for (pp = &w->entry->waiters; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    free(w);
}


static pst_sts_entry_t *
pst_sts_entry(const pst_str_t *domain)
{
    pst_sts_entry_t  *e;
    pst_uint_t        h = 5381, i;

    if (domain->len == 0 || domain->len > 253) {
        return NULL;
    }
    for (i = 0; i < domain->len; i++) {
        h = h * 33 + pst_tolower(domain->data[i]);
    }
    h %= PST_STS_HASH;
    for (e = pst_sts_hash[h]; e != NULL; e = e->hnext) {
        if (strlen(e->domain) == domain->len
            && pst_strncasecmp((u_char *) e->domain, domain->data,
                               domain->len) == 0)
        {
            return e;
        }
    }
    if (pst_sts_entries >= PST_STS_MAX_ENTRIES) {
        return NULL;
    }
    e = calloc(1, sizeof(pst_sts_entry_t) + domain->len);
    if (e == NULL) {
        return NULL;
    }
    pst_strlow((u_char *) e->domain, domain->data, domain->len);
    e->hnext = pst_sts_hash[h];
    pst_sts_hash[h] = e;
    pst_sts_entries++;
    return e;
}


static void
pst_sts_start(pst_sts_entry_t *e)
{
    if (!e->loaded) {
        pst_sts_io_post(e, PST_STS_IO_LOAD, NULL);
        return;
    }
    pst_sts_txt(e);
}


static void
pst_sts_txt(pst_sts_entry_t *e)
{
    char  name[300];

    snprintf(name, sizeof(name), "_mta-sts.%s", e->domain);
    e->q = pst_dns_resolve(name, PST_DNS_TXT, PST_STS_DNS_TIMEOUT,
                           pst_sts_txt_answer, e);
    if (e->q == NULL) {
        pst_sts_finish(e);
    }
}


static void
pst_sts_txt_answer(void *data, const pst_dns_answer_t *a)
{
    pst_sts_entry_t  *e = data;
    char              txt[8][256];
    const char       *v[8];
    pst_uint_t        i, n = 0;
    char              name[300];

    e->q = NULL;
    for (i = 0; a->status == PST_DNS_OK && i < a->count && n < 8; i++) {
        if (pst_dns_rr_txt(a, i, txt[n], sizeof(txt[n])) == PST_OK) {
            v[n] = txt[n];
            n++;
        }
    }
    if (a->status != PST_DNS_OK
        || pst_sts_txt_id(v, n, e->new_id, sizeof(e->new_id)) != PST_OK)
    {
        pst_sts_finish(e);      /* no (valid) record: what is cached */
        return;
    }
    if (e->have && strcmp(e->policy.id, e->new_id) == 0
        && pst_sts_effective(e, time(NULL)) != NULL)
    {
        pst_sts_finish(e);      /* unchanged */
        return;
    }

    snprintf(name, sizeof(name), "mta-sts.%s", e->domain);
    e->aq = pst_dns_resolve_addrs(name, AF_UNSPEC, PST_STS_DNS_TIMEOUT,
                                  pst_sts_addrs_answer, e);
    if (e->aq == NULL) {
        pst_sts_finish(e);
    }
}


/* The policy host's addresses: curl is told them (CURLOPT_RESOLVE) so
 * that it makes no DNS query of its own. */
static void
pst_sts_addrs_answer(void *data, pst_dns_status_e status, int secure,
    const struct sockaddr_storage *addrs, pst_uint_t n)
{
    pst_sts_entry_t  *e = data;
    char              list[700], a[INET6_ADDRSTRLEN];
    size_t            len;
    pst_uint_t        i;
    const void       *in;

    (void) secure;
    e->aq = NULL;
    if (status != PST_DNS_OK || n == 0) {
        pst_log_error(PST_LOG_INFO, 0, "mta-sts %s: no address for"
                      " mta-sts.%s", e->domain, e->domain);
        pst_sts_finish(e);
        return;
    }
    len = (size_t) snprintf(list, sizeof(list), "mta-sts.%s:%u:",
                            e->domain, (unsigned) pst_sts_port);
    for (i = 0; i < n && i < 8 && len < sizeof(list) - 60; i++) {
        in = addrs[i].ss_family == AF_INET6
             ? (const void *) &((const struct sockaddr_in6 *)
                                &addrs[i])->sin6_addr
             : (const void *) &((const struct sockaddr_in *)
                                &addrs[i])->sin_addr;
        inet_ntop(addrs[i].ss_family, in, a, sizeof(a));
        len += (size_t) snprintf(list + len, sizeof(list) - len,
                                 addrs[i].ss_family == AF_INET6
                                 ? "%s[%s]" : "%s%s", i ? "," : "", a);
    }
    pst_sts_io_post(e, PST_STS_IO_FETCH, list);
}


static void
pst_sts_io_post(pst_sts_entry_t *e, int kind, const char *resolve)
{
    pst_sts_io_t  *io;

    io = calloc(1, sizeof(pst_sts_io_t));
    if (io == NULL || (kind == PST_STS_IO_FETCH && !pst_sts_curl)) {
        free(io);
        e->loaded = 1;
        pst_sts_finish(e);
        return;
    }
    io->job.run = pst_sts_io_run;
    io->job.done = pst_sts_io_done;
    io->job.data = io;
    io->kind = kind;
    io->entry = e;
    snprintf(io->domain, sizeof(io->domain), "%s", e->domain);
    snprintf(io->path, sizeof(io->path), "%.*s/mta-sts/%s",
             (int) pst_spool_dir()->len, pst_spool_dir()->data, e->domain);
    snprintf(io->id, sizeof(io->id), "%s", e->new_id);
    snprintf(io->resolve, sizeof(io->resolve), "%s", resolve ? resolve : "");
    snprintf(io->ca_file, sizeof(io->ca_file), "%s", pst_sts_ca);
    io->port = pst_sts_port;
    io->timeout = pst_sts_timeout;
    pst_qio_post(&io->job);
}


static void
pst_sts_io_done(pst_qio_job_t *job)
{
    pst_sts_io_t     *io = job->data;
    pst_sts_entry_t  *e = io->entry;

    if (io->err[0] != '\0') {
        pst_log_error(PST_LOG_INFO, 0, "mta-sts %s: %s", e->domain,
                      io->err);
    }
    if (io->rc == PST_OK) {
        pst_sts_policy_free(&e->policy);
        e->policy = io->policy;
        e->have = 1;
        if (io->kind == PST_STS_IO_FETCH) {
            pst_log_error(PST_LOG_INFO, 0, "mta-sts %s: policy %s, mode %s,"
                          " max_age %ld", e->domain, e->policy.id,
                          e->policy.mode == PST_STS_ENFORCE ? "enforce"
                          : e->policy.mode == PST_STS_TESTING ? "testing"
                          : "none", e->policy.max_age);
        }
    } else {
        pst_sts_policy_free(&io->policy);
    }

    if (io->kind == PST_STS_IO_LOAD) {
        e->loaded = 1;
        free(io);
        pst_sts_txt(e);
        return;
    }
    free(io);
    pst_sts_finish(e);
}


/* The lookup is over: every delivery waiting gets the policy. */
static void
pst_sts_finish(pst_sts_entry_t *e)
{
    pst_sts_waiter_t        *w, *next;
    const pst_sts_policy_t  *p;
    time_t                   now = time(NULL);

    e->busy = 0;
    e->loaded = 1;
    e->checked = now;
    p = pst_sts_effective(e, now);

    w = e->waiters;
    e->waiters = NULL;
    for ( /* void */ ; w != NULL; w = next) {
        next = w->next;
        w->done(w->data, p);
        free(w);
    }
}


static const pst_sts_policy_t *
pst_sts_effective(pst_sts_entry_t *e, time_t now)
{
    if (!e->have || e->policy.mode == PST_STS_NONE
        || now >= e->policy.fetched + e->policy.max_age)
    {
        return NULL;
    }
    return &e->policy;
}
