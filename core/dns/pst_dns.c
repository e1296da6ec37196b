/*
 * pst_dns.c -- libunbound wired into the worker's event loop (see
 * pst_dns.h and the DNS section of postern_module.h).
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_dns.h"

#include <unbound.h>

struct pst_dns_query_s {
    pst_dns_pt                   handler;
    void                        *data;
    int                          async_id;
    int                          type;
    pst_event_t                  timer;
    pst_list_t                   link;
    unsigned                     scripted:1;
    char                         name[256];
};

static struct ub_ctx     *ub;
static pst_connection_t  *ub_conn;
static pst_list_t         queries;
static int                configured;
static pst_dns_script_pt  script;
static void              *script_data;
static char               conf_path[PATH_MAX];


static void pst_dns_read_handler(pst_event_t *ev);
static void pst_dns_callback(void *arg, int err, struct ub_result *res);
static void pst_dns_timeout(pst_event_t *ev);
static void pst_dns_finish(pst_dns_query_t *q, pst_dns_answer_t *a);
static pst_dns_query_t *pst_dns_resolve_scripted(const char *name, int type,
    pst_msec_t timeout, pst_dns_pt handler, void *data);


int
pst_dns_configured(void)
{
    return configured;
}


/* Names libunbound answers by itself unless told not to. */
static const char  *pst_dns_local_zones[] = {
    "localhost.", "127.in-addr.arpa.", "test.", "invalid.", "onion.",
    "home.arpa.", "local.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
    NULL
};


static int
pst_dns_write_config(pst_cycle_t *cycle)
{
    pst_core_conf_t  *ccf = cycle->core;
    pst_sockaddr_t    sa;
    pst_str_t        *r;
    pst_uint_t        i;
    socklen_t         len;
    char              addr[INET6_ADDRSTRLEN];
    FILE             *f;
    int               fd, port;
    const char      **z;

    snprintf(conf_path, sizeof(conf_path), "/tmp/postern-unbound.XXXXXX");
    fd = mkstemp(conf_path);
    if (fd == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "mkstemp(%s) failed", conf_path);
        return PST_ERROR;
    }

    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(conf_path);
        return PST_ERROR;
    }

    fprintf(f, "server:\n"
               "    do-not-query-localhost: no\n"
               "    unblock-lan-zones: yes\n"
               "    insecure-lan-zones: yes\n"
               "    use-syslog: no\n"
               "    logfile: \"\"\n"
               "    verbosity: 0\n");
    for (z = pst_dns_local_zones; *z != NULL; z++) {
        fprintf(f, "    local-zone: \"%s\" nodefault\n", *z);
    }

    if (ccf->trust_anchor.data != NULL) {
        fprintf(f, "    trust-anchor-file: \"%s\"\n", ccf->trust_anchor.data);
    }

    fprintf(f, "forward-zone:\n"
               "    name: \".\"\n");

    r = ccf->resolvers->elts;
    for (i = 0; i < ccf->resolvers->nelts; i++) {
        if (pst_listening_parse(NULL, &r[i], &sa, &len) != PST_OK) {
            continue;
        }
        if (sa.sa.sa_family == AF_INET) {
            inet_ntop(AF_INET, &sa.sin.sin_addr, addr, sizeof(addr));
            port = ntohs(sa.sin.sin_port);
        } else {
            inet_ntop(AF_INET6, &sa.sin6.sin6_addr, addr, sizeof(addr));
            port = ntohs(sa.sin6.sin6_port);
        }
        fprintf(f, "    forward-addr: %s@%d\n", addr, port);
    }

    if (fclose(f) != 0) {
        unlink(conf_path);
        return PST_ERROR;
    }

    return PST_OK;
}


/*
 * Make libunbound set itself up now (read its configuration and trust
 * anchors) rather than at the first lookup: ub_ctx_zone_remove() of a
 * zone that does not exist does only that.  0 or a libunbound error.
 */
static int
pst_dns_finalize(struct ub_ctx *ctx)
{
    return ub_ctx_zone_remove(ctx, (char *) "postern-check.invalid.");
}


int
pst_dns_init(pst_cycle_t *cycle)
{
    pst_core_conf_t  *ccf = cycle->core;
    int               rc;

    pst_list_init(&queries);
    configured = (ccf->resolvers != NULL && ccf->resolvers->nelts > 0);

    ub = ub_ctx_create();
    if (ub == NULL) {
        pst_log_error(PST_LOG_EMERG, 0, "ub_ctx_create() failed");
        return PST_ERROR;
    }

    if (configured) {
        if (pst_dns_write_config(cycle) != PST_OK) {
            return PST_ERROR;
        }
        rc = ub_ctx_config(ub, conf_path);
        unlink(conf_path);
        if (rc != 0) {
            pst_log_error(PST_LOG_EMERG, 0, "resolver configuration"
                          " failed: %s", ub_strerror(rc));
            return PST_ERROR;
        }

    } else {
        rc = ub_ctx_resolvconf(ub, NULL);
        if (rc != 0) {
            pst_log_error(PST_LOG_WARN, 0, "cannot read resolv.conf (%s):"
                          " DNS lookups will fail", ub_strerror(rc));
        }
        if (ccf->trust_anchor.data != NULL) {
            (void) ub_ctx_add_ta_file(ub, (char *) ccf->trust_anchor.data);
        }
    }

    /* answers come from a thread; its pipe is what we watch */
    rc = ub_ctx_async(ub, 1);
    if (rc != 0) {
        pst_log_error(PST_LOG_EMERG, 0, "ub_ctx_async() failed: %s",
                      ub_strerror(rc));
        return PST_ERROR;
    }

    /*
     * Finalize now: the worker calls this before it drops privileges,
     * so the trust anchors are read while the file is as readable as the
     * master saw it, and a setup that fails anyway is said once, here,
     * instead of by every lookup.
     */
    rc = pst_dns_finalize(ub);
    if (rc != 0) {
        pst_log_error(PST_LOG_ALERT, 0, "resolver setup failed: %s; DNS"
                      " lookups will fail", ub_strerror(rc));
    }

    return PST_OK;
}


/*
 * libunbound reads trust anchors only when a context is first used: a
 * file that is missing or does not parse would pass the configuration
 * and make every lookup of every worker fail.  Load it now in a context
 * of its own.
 */
int
pst_dns_check_trust_anchor(const char *path, const char **err)
{
    struct ub_ctx  *ctx;
    int             rc;

    ctx = ub_ctx_create();
    if (ctx == NULL) {
        *err = "ub_ctx_create() failed";
        return PST_ERROR;
    }

    rc = ub_ctx_add_ta_file(ctx, (char *) path);
    if (rc == 0) {
        rc = pst_dns_finalize(ctx);
    }

    ub_ctx_delete(ctx);

    if (rc != 0) {
        *err = ub_strerror(rc);
        return PST_ERROR;
    }

    return PST_OK;
}


static int
pst_dns_watch(void)
{
    if (ub_conn != NULL) {
        return PST_OK;
    }

    ub_conn = pst_get_connection(ub_fd(ub));
    if (ub_conn == NULL) {
        return PST_ERROR;
    }

    ub_conn->read.handler = pst_dns_read_handler;
    if (pst_event_add_read(ub_conn) != PST_OK) {
        pst_free_connection(ub_conn);
        ub_conn = NULL;
        return PST_ERROR;
    }

    return PST_OK;
}


void
pst_dns_done(void)
{
    pst_list_t       *l;
    pst_dns_query_t  *q;

    if (ub == NULL) {
        return;
    }

    while (!pst_list_empty(&queries)) {
        l = pst_list_head(&queries);
        q = pst_list_data(l, pst_dns_query_t, link);
        pst_dns_cancel(q);
    }

    if (ub_conn != NULL) {
        (void) pst_event_del_read(ub_conn);
        pst_free_connection(ub_conn);    /* libunbound owns the fd */
        ub_conn = NULL;
    }

    ub_ctx_delete(ub);
    ub = NULL;
}


static void
pst_dns_read_handler(pst_event_t *ev)
{
    (void) ev;

    if (ub_process(ub) != 0) {
        pst_log_error(PST_LOG_ERR, 0, "ub_process() failed");
    }
}


/* ------------------------------------------------------------------ */
/* Scripted answers (the test harness, libpostern-test)                */

void
pst_dns_script(pst_dns_script_pt fn, void *data)
{
    script = fn;
    script_data = data;
    if (queries.next == NULL) {
        pst_list_init(&queries);
    }
}


static void
pst_dns_scripted_answer(pst_event_t *ev)
{
    pst_dns_query_t   *q = ev->data;
    pst_dns_answer_t   a;

    memset(&a, 0, sizeof(a));
    if (ev->timedout && q->scripted == 0) {
        a.status = PST_DNS_TIMEOUT;      /* the script never answers */
    } else if (script(q->name, q->type, &a, script_data) < 0) {
        a.status = PST_DNS_TIMEOUT;
    }
    pst_dns_finish(q, &a);
}


/* A query the script answers after the delay it gives, from a timer
 * (never from inside the call); a script that does not answer (-1)
 * leaves the query to its timeout. */
static pst_dns_query_t *
pst_dns_resolve_scripted(const char *name, int type, pst_msec_t timeout,
    pst_dns_pt handler, void *data)
{
    pst_dns_query_t   *q;
    int                delay;

    if (strlen(name) >= sizeof(q->name)) {
        return NULL;
    }
    q = calloc(1, sizeof(pst_dns_query_t));
    if (q == NULL) {
        return NULL;
    }
    q->handler = handler;
    q->data = data;
    q->type = type;
    snprintf(q->name, sizeof(q->name), "%s", name);

    delay = script(q->name, type, NULL, script_data);  /* the delay */
    q->scripted = delay >= 0;
    q->timer.data = q;
    q->timer.handler = pst_dns_scripted_answer;
    pst_event_add_timer(&q->timer, delay >= 0 ? (pst_msec_t) delay
                                   : (timeout ? timeout : 10000));
    pst_list_insert_tail(&queries, &q->link);
    return q;
}


pst_dns_query_t *
pst_dns_resolve(const char *name, int type, pst_msec_t timeout,
    pst_dns_pt handler, void *data)
{
    pst_dns_query_t  *q;
    int               rc;

    if (script != NULL) {
        return pst_dns_resolve_scripted(name, type, timeout, handler, data);
    }
    if (ub == NULL || strlen(name) >= sizeof(q->name)
        || pst_dns_watch() != PST_OK)
    {
        return NULL;
    }

    q = calloc(1, sizeof(pst_dns_query_t));
    if (q == NULL) {
        return NULL;
    }

    q->handler = handler;
    q->data = data;
    q->type = type;
    snprintf(q->name, sizeof(q->name), "%s", name);

    pst_metric_inc(PST_M_DNS_QUERIES);
    rc = ub_resolve_async(ub, q->name, type, 1 /* IN */, q,
                          pst_dns_callback, &q->async_id);
    if (rc != 0) {
        pst_metric_inc(PST_M_DNS_FAILURES);
        pst_log_error(PST_LOG_ERR, 0, "DNS lookup of \"%s\" failed: %s",
                      name, ub_strerror(rc));
        free(q);
        return NULL;
    }

    q->timer.data = q;
    q->timer.handler = pst_dns_timeout;
    pst_event_add_timer(&q->timer, timeout ? timeout : 10000);
    pst_list_insert_tail(&queries, &q->link);

    return q;
}


void
pst_dns_cancel(pst_dns_query_t *q)
{
    if (q == NULL) {
        return;
    }

    if (!q->scripted && ub != NULL) {
        (void) ub_cancel(ub, q->async_id);
    }
    pst_event_del_timer(&q->timer);
    pst_list_remove(&q->link);
    free(q);
}


static void
pst_dns_finish(pst_dns_query_t *q, pst_dns_answer_t *a)
{
    pst_event_del_timer(&q->timer);
    pst_list_remove(&q->link);
    if (a->status == PST_DNS_SERVFAIL || a->status == PST_DNS_TIMEOUT) {
        pst_metric_inc(PST_M_DNS_FAILURES);
    }
    a->qname = q->name;
    a->qtype = q->type;
    q->handler(q->data, a);
    free(q);
}


static void
pst_dns_timeout(pst_event_t *ev)
{
    pst_dns_query_t   *q = ev->data;
    pst_dns_answer_t   a;

    (void) ub_cancel(ub, q->async_id);

    memset(&a, 0, sizeof(a));
    a.status = PST_DNS_TIMEOUT;
    pst_dns_finish(q, &a);
}


static void
pst_dns_callback(void *arg, int err, struct ub_result *res)
{
    pst_dns_query_t   *q = arg;
    pst_dns_answer_t   a;
    pst_str_t          rd[64];
    pst_uint_t         n;

    memset(&a, 0, sizeof(a));

    if (err != 0 || res == NULL) {
        a.status = PST_DNS_SERVFAIL;

    } else {
        a.secure = res->secure;
        a.bogus = res->bogus;
        a.ttl = res->ttl;

        if (res->bogus) {
            a.status = PST_DNS_SERVFAIL;
        } else if (res->nxdomain || res->rcode == 3) {
            a.status = PST_DNS_NXDOMAIN;
        } else if (res->rcode != 0) {
            a.status = PST_DNS_SERVFAIL;
        } else {
            a.status = PST_DNS_OK;
            for (n = 0; res->havedata && res->data[n] != NULL
                        && n < pst_nelems(rd); n++)
            {
                rd[n].data = (u_char *) res->data[n];
                rd[n].len = (size_t) res->len[n];
            }
            a.count = n;
            a.rdata = rd;
        }
    }

    pst_dns_finish(q, &a);

    if (res != NULL) {
        ub_resolve_free(res);
    }
}


/* ------------------------------------------------------------------ */
/* RDATA decoders                                                      */

int
pst_dns_rr_addr(const pst_dns_answer_t *a, pst_uint_t i, char *text,
    size_t size)
{
    if (i >= a->count) {
        return PST_ERROR;
    }

    if (a->rdata[i].len == 4) {
        return inet_ntop(AF_INET, a->rdata[i].data, text, (socklen_t) size)
               ? PST_OK : PST_ERROR;
    }
    if (a->rdata[i].len == 16) {
        return inet_ntop(AF_INET6, a->rdata[i].data, text, (socklen_t) size)
               ? PST_OK : PST_ERROR;
    }

    return PST_ERROR;
}


int
pst_dns_rr_name(const pst_dns_answer_t *a, pst_uint_t i, size_t skip,
    char *text, size_t size)
{
    const u_char  *p, *end;
    size_t         n, o = 0;

    if (i >= a->count || a->rdata[i].len <= skip || size < 2) {
        return PST_ERROR;
    }

    p = a->rdata[i].data + skip;
    end = a->rdata[i].data + a->rdata[i].len;

    while (p < end) {
        n = *p++;
        if (n == 0) {
            break;
        }
        if (n > 63 || (size_t) (end - p) < n || o + n + 2 > size) {
            return PST_ERROR;       /* compression is not expected here */
        }
        if (o) {
            text[o++] = '.';
        }
        memcpy(text + o, p, n);
        o += n;
        p += n;
    }

    if (o == 0) {
        text[o++] = '.';          /* the root: MX "." means no mail */
    }
    text[o] = '\0';

    return PST_OK;
}


int
pst_dns_rr_mx_pref(const pst_dns_answer_t *a, pst_uint_t i)
{
    if (i >= a->count || a->rdata[i].len < 3) {
        return -1;
    }
    return (a->rdata[i].data[0] << 8) | a->rdata[i].data[1];
}


int
pst_dns_rr_txt(const pst_dns_answer_t *a, pst_uint_t i, char *text,
    size_t size)
{
    const u_char  *p, *end;
    size_t         n, o = 0;

    if (i >= a->count || size == 0) {
        return PST_ERROR;
    }

    p = a->rdata[i].data;
    end = p + a->rdata[i].len;

    while (p < end) {
        n = *p++;
        if ((size_t) (end - p) < n) {
            return PST_ERROR;
        }
        if (o + n >= size) {
            n = size - o - 1;
        }
        memcpy(text + o, p, n);
        o += n;
        p += *(p - 1);
    }

    text[o] = '\0';
    return PST_OK;
}


int
pst_dns_reverse_name(const struct sockaddr *sa, const char *zone,
    char *name, size_t size)
{
    static const char  hex[] = "0123456789abcdef";
    const u_char      *b;
    size_t             o;
    int                i, n;

    if (sa->sa_family == AF_INET) {
        b = (const u_char *) &((const struct sockaddr_in *) sa)->sin_addr;
        n = snprintf(name, size, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0],
                     zone ? zone : "in-addr.arpa");
        return (n > 0 && (size_t) n < size) ? PST_OK : PST_ERROR;
    }

    if (sa->sa_family != AF_INET6 || size < 64 + 1) {
        return PST_ERROR;
    }

    b = (const u_char *) &((const struct sockaddr_in6 *) sa)->sin6_addr;
    o = 0;
    for (i = 15; i >= 0; i--) {
        name[o++] = hex[b[i] & 0x0f];
        name[o++] = '.';
        name[o++] = hex[b[i] >> 4];
        name[o++] = '.';
    }
    n = snprintf(name + o, size - o, "%s", zone ? zone : "ip6.arpa");

    return (n > 0 && (size_t) n < size - o) ? PST_OK : PST_ERROR;
}


int
pst_dns_name_safe(const char *name)
{
    size_t  n = 0;

    for ( /* void */ ; *name; name++, n++) {
        if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z')
              || (*name >= '0' && *name <= '9') || *name == '-'
              || *name == '.' || *name == '_'))
        {
            return 0;
        }
    }

    return n > 0 && n <= 253;
}
