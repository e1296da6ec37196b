/*
 * pst_hostlist.c -- host lists (postern_module.h): the next hops of the
 * routers that send to fixed hosts (relay_smarthost, deliver_lmtp).
 * A list is parsed once (configuration) and resolved at every route:
 * the addresses of all its host names looked up at once
 * (pst_dns_resolve_addrs()), the hops then laid out in the order the
 * hosts were written.
 */

#include "pst_core.h"
#include "pst_route.h"

#include <arpa/inet.h>
#include <sys/un.h>

#define PST_HL_MAX_HOSTS         16
#define PST_HL_MAX_ADDRS         8          /* per host */

typedef struct {
    char                         name[256]; /* host name, address or path */
    in_port_t                    port;
    unsigned                     unix_path:1;
} pst_hl_host_t;

struct pst_hostlist_s {
    pst_uint_t                   n;
    pst_hl_host_t                hosts[PST_HL_MAX_HOSTS];
};

typedef struct pst_hl_ctx_s  pst_hl_ctx_t;

typedef struct {
    pst_hl_ctx_t                *ctx;
    pst_dns_addrs_t             *q;
    pst_dns_status_e             status;
    int                          secure;
    pst_uint_t                   n;
    struct sockaddr_storage      addrs[PST_HL_MAX_ADDRS];
} pst_hl_lookup_t;

struct pst_hl_ctx_s {
    const pst_hostlist_t        *hl;
    pst_hostlist_t               one;       /* a next hop of its own */
    pst_route_t                  route;
    pst_route_done_pt            done;
    void                        *data;
    pst_uint_t                   pending;
    pst_timer_t                 *timer;     /* only unix paths: no DNS */
    pst_hl_lookup_t              look[PST_HL_MAX_HOSTS];
    pst_nexthop_t                hops[PST_HL_MAX_HOSTS * PST_HL_MAX_ADDRS];
    char                         text[300];
};


static int pst_hostlist_one(const pst_str_t *s, in_port_t port,
    pst_hl_host_t *h);
static void pst_hostlist_answer(void *data, pst_dns_status_e status,
    int secure, const struct sockaddr_storage *addrs, pst_uint_t n);
static void pst_hostlist_timer(void *data);
static void pst_hostlist_report(pst_hl_ctx_t *ctx);
static pst_uint_t pst_hostlist_hops(pst_hl_ctx_t *ctx, pst_uint_t *own);


pst_hostlist_t *
pst_hostlist_parse(const pst_str_t *hosts, pst_uint_t n, in_port_t port,
    char *err, size_t errlen)
{
    pst_hostlist_t  *hl;
    pst_uint_t       i;

    if (n == 0 || n > PST_HL_MAX_HOSTS) {
        snprintf(err, errlen, "from 1 to %d hosts", PST_HL_MAX_HOSTS);
        return NULL;
    }
    hl = calloc(1, sizeof(pst_hostlist_t));
    if (hl == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (pst_hostlist_one(&hosts[i], port, &hl->hosts[i]) != PST_OK) {
            snprintf(err, errlen, "invalid host \"%.*s\" (host, host:port,"
                     " [address]:port or unix:/path)",
                     (int) pst_min(hosts[i].len, 300), hosts[i].data);
            free(hl);
            return NULL;
        }
    }
    hl->n = n;
    return hl;
}


void
pst_hostlist_free(void *hl)
{
    free(hl);
}


char *
pst_conf_set_hostlist_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_hostlist_t  **slot = (pst_hostlist_t **) ((u_char *) conf
                                                  + cmd->offset);
    pst_str_t        *a;
    pst_uint_t        n;
    char              err[400];

    if (*slot != NULL) {
        return "is duplicate";
    }
    a = pst_conf_args(cf, &n);
    *slot = pst_hostlist_parse(&a[1], n - 1, *(const in_port_t *) cmd->post,
                               err, sizeof(err));
    if (*slot == NULL) {
        pst_conf_error(cf, "%s: %s", cmd->name, err);
        return PST_CONF_ERROR;
    }
    if (pst_pool_cleanup_add(pst_conf_pool(cf), pst_hostlist_free, *slot)
        != PST_OK)
    {
        pst_hostlist_free(*slot);
        *slot = NULL;
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


/* One "host[:port]", "[addr][:port]" or "unix:/path". */
static int
pst_hostlist_one(const pst_str_t *s, in_port_t port, pst_hl_host_t *h)
{
    const u_char  *p = s->data, *end = s->data + s->len, *colon, *close;
    size_t         len;
    long           v;
    char          *e;

    h->port = port;
    if (s->len > 5 && memcmp(p, "unix:", 5) == 0) {
        if (s->len - 5 >= sizeof(((struct sockaddr_un *) 0)->sun_path)
            || p[5] != '/')
        {
            return PST_ERROR;
        }
        h->unix_path = 1;
        snprintf(h->name, sizeof(h->name), "%.*s", (int) (s->len - 5), p + 5);
        return PST_OK;
    }

    if (p < end && *p == '[') {
        close = memchr(p, ']', s->len);
        if (close == NULL) {
            return PST_ERROR;
        }
        colon = (close + 1 < end) ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            return PST_ERROR;
        }
        len = (size_t) (close + 1 - p);     /* brackets kept: a literal */
    } else {
        colon = memchr(p, ':', s->len);
        len = colon ? (size_t) (colon - p) : s->len;
    }

    if (len == 0 || len >= sizeof(h->name)) {
        return PST_ERROR;
    }
    memcpy(h->name, p, len);
    h->name[len] = '\0';
    if (strpbrk(h->name, " \t\r\n/") != NULL) {
        return PST_ERROR;
    }

    if (colon != NULL) {
        errno = 0;
        v = strtol((const char *) colon + 1, &e, 10);
        if (errno || v < 1 || v > 65535 || e != (const char *) end
            || colon + 1 == end)
        {
            return PST_ERROR;
        }
        h->port = (in_port_t) v;
    }
    return PST_OK;
}


void *
pst_hostlist_resolve(const pst_hostlist_t *hl, const pst_str_t *nexthop,
    in_port_t port, const pst_route_t *tmpl, pst_msec_t timeout,
    pst_route_done_pt done, void *data)
{
    pst_hl_ctx_t  *ctx;
    pst_uint_t     i;

    ctx = calloc(1, sizeof(pst_hl_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->hl = hl;
    if (nexthop != NULL && nexthop->len > 0) {
        ctx->hl = &ctx->one;
        if (pst_hostlist_one(nexthop, port, &ctx->one.hosts[0]) == PST_OK) {
            ctx->one.n = 1;
        }
    }
    ctx->done = done;
    ctx->data = data;
    ctx->route.flags = tmpl->flags;
    ctx->route.tls = tmpl->tls;
    ctx->route.tls_name = tmpl->tls_name;
    ctx->route.auth_user = tmpl->auth_user;
    ctx->route.auth_pass = tmpl->auth_pass;

    hl = ctx->hl;
    for (i = 0; i < hl->n; i++) {
        ctx->look[i].ctx = ctx;
        if (hl->hosts[i].unix_path) {
            continue;
        }
        ctx->look[i].q = pst_dns_resolve_addrs(hl->hosts[i].name, AF_UNSPEC,
                                               timeout, pst_hostlist_answer,
                                               &ctx->look[i]);
        if (ctx->look[i].q == NULL) {
            pst_hostlist_cancel(ctx);
            return NULL;
        }
        ctx->pending++;
    }

    if (ctx->pending == 0) {
        ctx->timer = pst_timer_add(0, pst_hostlist_timer, ctx);
        if (ctx->timer == NULL) {
            free(ctx);
            return NULL;
        }
    }
    return ctx;
}


void
pst_hostlist_cancel(void *handle)
{
    pst_hl_ctx_t  *ctx = handle;
    pst_uint_t     i;

    for (i = 0; i < ctx->hl->n; i++) {
        if (ctx->look[i].q != NULL) {
            pst_dns_addrs_cancel(ctx->look[i].q);
        }
    }
    if (ctx->timer != NULL) {
        pst_timer_cancel(ctx->timer);
    }
    free(ctx);
}


static void
pst_hostlist_answer(void *data, pst_dns_status_e status, int secure,
    const struct sockaddr_storage *addrs, pst_uint_t n)
{
    pst_hl_lookup_t  *l = data;
    pst_hl_ctx_t     *ctx = l->ctx;

    l->q = NULL;
    l->status = status;
    l->secure = secure;
    l->n = pst_min(n, PST_HL_MAX_ADDRS);
    memcpy(l->addrs, addrs, l->n * sizeof(struct sockaddr_storage));

    if (--ctx->pending == 0) {
        pst_hostlist_report(ctx);
    }
}


static void
pst_hostlist_timer(void *data)
{
    pst_hl_ctx_t  *ctx = data;

    ctx->timer = NULL;
    pst_hostlist_report(ctx);
}


/* Every lookup is in: the route, then ctx is freed. */
static void
pst_hostlist_report(pst_hl_ctx_t *ctx)
{
    pst_uint_t  n, own = 0;

    n = pst_hostlist_hops(ctx, &own);
    ctx->route.hops = ctx->hops;
    ctx->route.nhops = n;

    if (ctx->hl->n == 0) {
        ctx->route.verdict = PST_HOOK_TEMPFAIL;
        ctx->route.code = 451;
        ctx->route.ecode = "4.3.5";
        snprintf(ctx->text, sizeof(ctx->text), "invalid next hop in the"
                 " transport table");
    } else if (n > 0) {
        ctx->route.verdict = PST_HOOK_ACCEPT;
    } else if (own > 0) {
        ctx->route.verdict = PST_HOOK_REJECT;
        ctx->route.code = 554;
        ctx->route.ecode = "5.4.6";
        snprintf(ctx->text, sizeof(ctx->text), "mail for %s loops back to"
                 " myself", ctx->hl->hosts[0].name);
    } else {
        ctx->route.verdict = PST_HOOK_TEMPFAIL;
        ctx->route.code = 451;
        ctx->route.ecode = "4.4.3";
        snprintf(ctx->text, sizeof(ctx->text), "no address found for %s%s",
                 ctx->hl->hosts[0].name, ctx->hl->n > 1 ? " or the other"
                 " hosts" : "");
    }
    ctx->route.text = ctx->text;
    if (ctx->hl->n > 0) {
        ctx->route.port = ctx->hl->hosts[0].port;
    }

    ctx->done(ctx->data, &ctx->route);
    free(ctx);
}


/* The hops in the order of the hosts; *own counts those left out as
 * our own listeners. */
static pst_uint_t
pst_hostlist_hops(pst_hl_ctx_t *ctx, pst_uint_t *own)
{
    const pst_hl_host_t  *h;
    pst_nexthop_t        *hop;
    struct sockaddr_un   *sun;
    pst_uint_t            i, k, n = 0;

    for (i = 0; i < ctx->hl->n; i++) {
        h = &ctx->hl->hosts[i];
        if (h->unix_path) {
            hop = &ctx->hops[n++];
            sun = (struct sockaddr_un *) &hop->addr;
            sun->sun_family = AF_UNIX;
            snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", h->name);
            hop->addrlen = sizeof(struct sockaddr_un);
            hop->name.data = (u_char *) "localhost";
            hop->name.len = 9;
            continue;
        }
        for (k = 0; k < ctx->look[i].n; k++) {
            hop = &ctx->hops[n];
            hop->addr = ctx->look[i].addrs[k];
            if (hop->addr.ss_family == AF_INET6) {
                ((struct sockaddr_in6 *) &hop->addr)->sin6_port
                    = htons(h->port);
                hop->addrlen = sizeof(struct sockaddr_in6);
            } else {
                ((struct sockaddr_in *) &hop->addr)->sin_port
                    = htons(h->port);
                hop->addrlen = sizeof(struct sockaddr_in);
            }
            if (pst_route_own_addr((struct sockaddr *) &hop->addr)) {
                (*own)++;
                continue;
            }
            hop->name.data = (u_char *) h->name;
            hop->name.len = strlen(h->name);
            hop->secure = ctx->look[i].secure ? 1 : 0;
            n++;
        }
    }
    return n;
}
