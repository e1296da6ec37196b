/*
 * relay_mx.c -- the MX router (ABI 1.2 router, postern_module.h): where
 * the mail of a destination domain goes, from the domain's MX records.
 *
 * One route is:
 *   1. MX of the domain.  NXDOMAIN fails at once (5.1.2); SERVFAIL or a
 *      timeout defers (4.4.3); a null MX (RFC 7505: one MX ".") fails
 *      with 556 5.1.10; no MX at all (NODATA) makes the domain its own
 *      mail exchanger at preference 0 (implicit MX, RFC 5321 5.1).
 *   2. The exchangers sorted by preference, equal preferences in random
 *      order (spreading the load as RFC 5321 5.1 asks), at most
 *      relay_mx_max_hosts of them; then AAAA and A of every one of
 *      them, all at once.
 *   3. Loop detection (RFC 5321 5.1): an exchanger whose name is one of
 *      our host names, or with an address that is one of our listeners
 *      (address and port, see pst_route_own_addr()), is ourselves: it
 *      and every exchanger of the same or a worse preference are
 *      dropped; when nothing is left the mail "loops back to myself"
 *      (5.4.6).
 *   4. The hops: every address of every exchanger left (IPv6 first,
 *      each family in random order), each with its DNSSEC status (the MX
 *      answer and the address answer both secure).
 *
 * An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is a route
 * of one hop without DNS.
 *
 * Directives (top level):
 *   relay_mx_port N;                 port of the next hops (default 25;
 *                                    other values are for tests and
 *                                    special networks)
 *   relay_mx_dns_timeout TIME;       each lookup (default 10s)
 *   relay_mx_address_family any|ipv4|ipv6;     (default any)
 *   relay_mx_max_hosts N;            exchangers looked up (default 10)
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "postern_module.h"

#define RELAY_MX_NAME_LEN        256
#define RELAY_MX_MAX_HOSTS       64        /* the core gives 64 records */
#define RELAY_MX_MAX_ADDRS       16        /* per host and family */
#define RELAY_MX_MAX_HOPS        128
#define RELAY_MX_TEXT_LEN        512

#define RELAY_MX_FAMILY_ANY      0
#define RELAY_MX_FAMILY_IPV4     1
#define RELAY_MX_FAMILY_IPV6     2

/* address lookups of a host: 0 AAAA, 1 A */
#define RELAY_MX_Q_AAAA          0
#define RELAY_MX_Q_A             1


typedef struct {
    pst_int_t                    port;
    pst_msec_t                   dns_timeout;
    pst_uint_t                   family;
    pst_int_t                    max_hosts;
} relay_mx_conf_t;

typedef struct relay_mx_ctx_s  relay_mx_ctx_t;

typedef struct {
    char                         name[RELAY_MX_NAME_LEN];
    int                          pref;
    relay_mx_ctx_t              *ctx;
    pst_dns_query_t             *query[2];
    pst_dns_status_e             status[2];
    unsigned                     secure[2];
    u_char                       addr[2][RELAY_MX_MAX_ADDRS][16];
    pst_uint_t                   naddrs[2];
} relay_mx_host_t;

/* A host's lookup as the DNS callback's data: the host and which one. */
typedef struct {
    relay_mx_host_t             *host;
    int                          which;
} relay_mx_lookup_t;

struct relay_mx_ctx_s {
    relay_mx_conf_t             *conf;
    pst_route_done_pt            done;
    void                        *data;
    char                         domain[RELAY_MX_NAME_LEN];
    pst_dns_query_t             *mx_query;
    pst_timer_t                 *timer;
    unsigned                     mx_secure:1;
    unsigned                     implicit:1;
    pst_uint_t                   pending;
    relay_mx_host_t             *hosts;
    pst_uint_t                   nhosts;
    relay_mx_lookup_t           *lookups;
    pst_nexthop_t               *hops;
    pst_route_t                  route;
    pst_nexthop_t                literal;
    char                         text[RELAY_MX_TEXT_LEN];
};


PST_EXPORT const pst_module_t  postern_module;

static void *relay_mx_create_conf(pst_conf_t *cf);
static char *relay_mx_init_conf(pst_conf_t *cf, void *conf);
static void *relay_mx_resolve(const pst_str_t *domain, void *main_conf,
    pst_route_done_pt done, void *data);
static void relay_mx_cancel(void *handle);
static void relay_mx_free(relay_mx_ctx_t *ctx);
static void relay_mx_finish(relay_mx_ctx_t *ctx);
static void relay_mx_finish_timer(void *data);
static void relay_mx_later(relay_mx_ctx_t *ctx);
static void relay_mx_fail(relay_mx_ctx_t *ctx, pst_verdict_e v, int code,
    const char *ecode, const char *fmt, ...) PST_PRINTF(5, 6);
static int relay_mx_domain(const pst_str_t *in, char *out, size_t size);
static int relay_mx_literal(relay_mx_ctx_t *ctx);
static void relay_mx_mx_answer(void *data, const pst_dns_answer_t *a);
static void relay_mx_mx_found(relay_mx_ctx_t *ctx,
    const pst_dns_answer_t *a);
static pst_uint_t relay_mx_named_us(relay_mx_host_t *hosts, pst_uint_t n);
static int relay_mx_lookup_hosts(relay_mx_ctx_t *ctx);
static void relay_mx_addr_answer(void *data, const pst_dns_answer_t *a);
static void relay_mx_hops(relay_mx_ctx_t *ctx);
static int relay_mx_own_pref(relay_mx_ctx_t *ctx);
static pst_uint_t relay_mx_fill_hops(relay_mx_ctx_t *ctx, int own_pref,
    pst_nexthop_t *hops, pst_uint_t max);
static void relay_mx_sockaddr(const u_char *addr, int which, in_port_t port,
    pst_nexthop_t *hop);

/* The parts without I/O, also used by tests/unit/check_relay_mx.c. */
int relay_mx_valid_name(const char *name);
int relay_mx_parse(const pst_dns_answer_t *a, relay_mx_host_t *hosts,
    pst_uint_t max, pst_uint_t *n);
void relay_mx_sort(relay_mx_host_t *hosts, pst_uint_t n);
void relay_mx_shuffle_addrs(u_char (*addr)[16], pst_uint_t n);
uint64_t relay_mx_random(void);


static const pst_conf_enum_t  relay_mx_families[] = {
    { "any", RELAY_MX_FAMILY_ANY },
    { "ipv4", RELAY_MX_FAMILY_IPV4 },
    { "ipv6", RELAY_MX_FAMILY_IPV6 },
    { NULL, 0 }
};

static const pst_command_t  relay_mx_commands[] = {
    { "relay_mx_port", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(relay_mx_conf_t, port), NULL },
    { "relay_mx_dns_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF,
      offsetof(relay_mx_conf_t, dns_timeout), NULL },
    { "relay_mx_address_family", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF,
      offsetof(relay_mx_conf_t, family), relay_mx_families },
    { "relay_mx_max_hosts", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(relay_mx_conf_t, max_hosts), NULL },
    pst_null_command
};

static const pst_router_t  relay_mx_router = {
    .resolve = relay_mx_resolve,
    .cancel = relay_mx_cancel,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "relay_mx",
    .version = "1.0",
    .description = "next hops from MX records (RFC 5321 5.1, RFC 7505)",
    .commands = relay_mx_commands,
    .create_main_conf = relay_mx_create_conf,
    .init_main_conf = relay_mx_init_conf,
    .router = &relay_mx_router,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
relay_mx_create_conf(pst_conf_t *cf)
{
    relay_mx_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(relay_mx_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->port = PST_CONF_UNSET;
    c->dns_timeout = PST_CONF_UNSET_MSEC;
    c->family = PST_CONF_UNSET_UINT;
    c->max_hosts = PST_CONF_UNSET;
    return c;
}


static char *
relay_mx_init_conf(pst_conf_t *cf, void *conf)
{
    relay_mx_conf_t  *c = conf;

    (void) cf;

    pst_conf_merge_value(c->port, PST_CONF_UNSET, 25);
    pst_conf_merge_msec_value(c->dns_timeout, PST_CONF_UNSET_MSEC, 10000);
    pst_conf_merge_uint_value(c->family, PST_CONF_UNSET_UINT,
                              RELAY_MX_FAMILY_ANY);
    pst_conf_merge_value(c->max_hosts, PST_CONF_UNSET, 10);

    if (c->port < 1 || c->port > 65535) {
        return "relay_mx_port must be between 1 and 65535";
    }
    if (c->max_hosts < 1 || c->max_hosts > RELAY_MX_MAX_HOSTS) {
        return "relay_mx_max_hosts must be between 1 and 64";
    }
    if (c->dns_timeout == 0) {
        return "relay_mx_dns_timeout must not be 0";
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* The pure parts: names, MX RDATA, order                              */

/* A host name we can look up and print: LDH labels (and '_'), 1..63
 * bytes each, 253 in all. */
int
relay_mx_valid_name(const char *name)
{
    size_t  n = 0, label = 0;

    for ( /* void */ ; name[n] != '\0'; n++) {
        char  ch = name[n];

        if (ch == '.') {
            if (label == 0) {
                return 0;
            }
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')
            || ++label > 63)
        {
            return 0;
        }
    }

    return n > 0 && n <= 253 && label > 0;
}


/*
 * The exchangers of an MX answer into hosts[0..max): PST_OK with *n set,
 * PST_DONE for a null MX (RFC 7505: every record is "."; a "." beside
 * real exchangers is ignored), PST_ERROR when no record was usable
 * (malformed RDATA or names).  Duplicate names keep the best preference.
 */
int
relay_mx_parse(const pst_dns_answer_t *a, relay_mx_host_t *hosts,
    pst_uint_t max, pst_uint_t *n)
{
    pst_uint_t  i, j, k = 0, nulls = 0;
    char        name[RELAY_MX_NAME_LEN];
    int         pref;

    for (i = 0; i < a->count; i++) {
        pref = pst_dns_rr_mx_pref(a, i);
        if (pref < 0
            || pst_dns_rr_name(a, i, 2, name, sizeof(name)) != PST_OK)
        {
            continue;
        }
        if (strcmp(name, ".") == 0) {
            nulls++;
            continue;
        }
        if (!relay_mx_valid_name(name)) {
            continue;
        }
        for (j = 0; j < k; j++) {
            if (strcasecmp(hosts[j].name, name) == 0) {
                break;
            }
        }
        if (j < k) {
            if (pref < hosts[j].pref) {
                hosts[j].pref = pref;
            }
            continue;
        }
        if (k == max) {
            continue;
        }
        memset(&hosts[k], 0, sizeof(relay_mx_host_t));
        snprintf(hosts[k].name, sizeof(hosts[k].name), "%s", name);
        hosts[k].pref = pref;
        k++;
    }

    *n = k;

    if (k == 0) {
        return nulls > 0 ? PST_DONE : PST_ERROR;
    }

    return PST_OK;
}


/* xorshift64*, seeded from the kernel the first time it is needed (in
 * the process that routes, not before a fork). */
uint64_t
relay_mx_random(void)
{
    static uint64_t  x;

    while (x == 0) {
        if (getrandom(&x, sizeof(x), 0) != sizeof(x)) {
            x = (uint64_t) pst_current_msec() ^ (uint64_t) getpid() << 32;
        }
    }

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;

    return x * 0x2545f4914f6cdd1dull;
}


/* Sort by preference (stable), then shuffle each run of equal
 * preference (Fisher-Yates): equal exchangers share the load. */
void
relay_mx_sort(relay_mx_host_t *hosts, pst_uint_t n)
{
    relay_mx_host_t  t;
    pst_uint_t       i, j, start;

    for (i = 1; i < n; i++) {
        t = hosts[i];
        for (j = i; j > 0 && hosts[j - 1].pref > t.pref; j--) {
            hosts[j] = hosts[j - 1];
        }
        hosts[j] = t;
    }

    for (start = 0; start < n; start = i) {
        for (i = start + 1; i < n && hosts[i].pref == hosts[start].pref;
             i++)
        {
            /* void */
        }
        for (j = i - 1; j > start; j--) {
            pst_uint_t  k = start + relay_mx_random() % (j - start + 1);

            t = hosts[j];
            hosts[j] = hosts[k];
            hosts[k] = t;
        }
    }
}


/* The addresses of one host and family in random order. */
void
relay_mx_shuffle_addrs(u_char (*addr)[16], pst_uint_t n)
{
    u_char      t[16];
    pst_uint_t  j, k;

    for (j = n; j > 1; j--) {
        k = relay_mx_random() % j;
        memcpy(t, addr[j - 1], 16);
        memcpy(addr[j - 1], addr[k], 16);
        memcpy(addr[k], t, 16);
    }
}


/* ------------------------------------------------------------------ */
/* resolve() and cancel()                                              */

/* The domain lower-cased without a trailing dot, into out.  PST_OK,
 * PST_DONE for an address literal, PST_ERROR when unusable. */
static int
relay_mx_domain(const pst_str_t *in, char *out, size_t size)
{
    size_t  i, n = in->len;

    if (n > 0 && in->data[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n >= size) {
        return PST_ERROR;
    }

    for (i = 0; i < n; i++) {
        u_char  ch = in->data[i];

        out[i] = (char) ((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
        if (ch == '\0' || ch < 0x20 || ch >= 0x7f) {
            return PST_ERROR;
        }
    }
    out[n] = '\0';

    if (out[0] == '[') {
        return out[n - 1] == ']' ? PST_DONE : PST_ERROR;
    }

    return relay_mx_valid_name(out) ? PST_OK : PST_ERROR;
}


static void *
relay_mx_resolve(const pst_str_t *domain, void *main_conf,
    pst_route_done_pt done, void *data)
{
    relay_mx_ctx_t  *ctx;
    int              rc;

    ctx = calloc(1, sizeof(relay_mx_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->conf = main_conf;
    ctx->done = done;
    ctx->data = data;
    ctx->route.port = (in_port_t) ctx->conf->port;

    rc = relay_mx_domain(domain, ctx->domain, sizeof(ctx->domain));

    if (rc == PST_ERROR) {
        snprintf(ctx->domain, sizeof(ctx->domain), "(invalid)");
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.1.2",
                      "invalid destination domain");
        relay_mx_later(ctx);

    } else if (rc == PST_DONE) {
        if (relay_mx_literal(ctx) != PST_OK) {
            relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.1.2",
                          "invalid address literal %s", ctx->domain);
        }
        relay_mx_later(ctx);

    } else {
        ctx->mx_query = pst_dns_resolve(ctx->domain, PST_DNS_MX,
                                        ctx->conf->dns_timeout,
                                        relay_mx_mx_answer, ctx);
        if (ctx->mx_query == NULL) {
            relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                          "cannot look up the MX of %s", ctx->domain);
            relay_mx_later(ctx);
        }
    }

    if (ctx->mx_query == NULL && ctx->timer == NULL) {
        free(ctx);
        return NULL;
    }

    return ctx;
}


static void
relay_mx_cancel(void *handle)
{
    relay_mx_free(handle);
}


static void
relay_mx_free(relay_mx_ctx_t *ctx)
{
    pst_uint_t  i;
    int         w;

    if (ctx == NULL) {
        return;
    }

    pst_dns_cancel(ctx->mx_query);
    if (ctx->timer != NULL) {
        pst_timer_cancel(ctx->timer);
    }
    for (i = 0; i < ctx->nhosts; i++) {
        for (w = 0; w < 2; w++) {
            pst_dns_cancel(ctx->hosts[i].query[w]);
        }
    }

    free(ctx->hosts);
    free(ctx->lookups);
    free(ctx->hops);
    free(ctx);
}


/* Hand the route over and forget everything. */
static void
relay_mx_finish(relay_mx_ctx_t *ctx)
{
    ctx->timer = NULL;
    ctx->done(ctx->data, &ctx->route);
    relay_mx_free(ctx);
}


static void
relay_mx_finish_timer(void *data)
{
    relay_mx_ctx_t  *ctx = data;

    ctx->timer = NULL;
    relay_mx_finish(ctx);
}


/* done() must not run from inside resolve(): from the event loop. */
static void
relay_mx_later(relay_mx_ctx_t *ctx)
{
    ctx->timer = pst_timer_add(0, relay_mx_finish_timer, ctx);
}


static void
relay_mx_fail(relay_mx_ctx_t *ctx, pst_verdict_e v, int code,
    const char *ecode, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(ctx->text, sizeof(ctx->text), fmt, args);
    va_end(args);

    ctx->route.verdict = v;
    ctx->route.code = code;
    ctx->route.ecode = ecode;
    ctx->route.text = ctx->text;
    ctx->route.hops = NULL;
    ctx->route.nhops = 0;
}


/* "[192.0.2.1]" or "[ipv6:2001:db8::1]": one hop, no DNS. */
static int
relay_mx_literal(relay_mx_ctx_t *ctx)
{
    char           text[RELAY_MX_NAME_LEN];
    u_char         addr[16];
    size_t         n = strlen(ctx->domain);
    int            which = RELAY_MX_Q_A;
    const char    *p = text;

    snprintf(text, sizeof(text), "%.*s", (int) (n - 2), ctx->domain + 1);

    if (strncmp(text, "ipv6:", 5) == 0) {
        which = RELAY_MX_Q_AAAA;
        p = text + 5;
    }
    if (inet_pton(which == RELAY_MX_Q_A ? AF_INET : AF_INET6, p, addr)
        != 1)
    {
        return PST_ERROR;
    }

    relay_mx_sockaddr(addr, which, ctx->route.port, &ctx->literal);
    ctx->literal.name.data = (u_char *) ctx->domain;
    ctx->literal.name.len = n;

    if (pst_route_own_addr((struct sockaddr *) &ctx->literal.addr)) {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.4.6",
                      "mail for %s loops back to myself", ctx->domain);
        return PST_OK;
    }

    ctx->route.verdict = PST_HOOK_ACCEPT;
    ctx->route.hops = &ctx->literal;
    ctx->route.nhops = 1;
    return PST_OK;
}


static void
relay_mx_sockaddr(const u_char *addr, int which, in_port_t port,
    pst_nexthop_t *hop)
{
    struct sockaddr_in   *sin = (struct sockaddr_in *) &hop->addr;
    struct sockaddr_in6  *sin6 = (struct sockaddr_in6 *) &hop->addr;

    memset(&hop->addr, 0, sizeof(hop->addr));

    if (which == RELAY_MX_Q_A) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, addr, 4);
        hop->addrlen = sizeof(struct sockaddr_in);
    } else {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        memcpy(&sin6->sin6_addr, addr, 16);
        hop->addrlen = sizeof(struct sockaddr_in6);
    }
}


/* ------------------------------------------------------------------ */
/* The lookups                                                         */

static void
relay_mx_mx_answer(void *data, const pst_dns_answer_t *a)
{
    relay_mx_ctx_t  *ctx = data;

    ctx->mx_query = NULL;

    switch (a->status) {
    case PST_DNS_OK:
        relay_mx_mx_found(ctx, a);
        return;
    case PST_DNS_NXDOMAIN:
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.1.2",
                      "domain %s not found (NXDOMAIN)", ctx->domain);
        break;
    case PST_DNS_TIMEOUT:
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                      "MX lookup of %s timed out", ctx->domain);
        break;
    default:
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                      "MX lookup of %s failed (%s)", ctx->domain,
                      a->bogus ? "DNSSEC bogus" : "SERVFAIL");
        break;
    }

    relay_mx_finish(ctx);
}


/* Exchangers named as we are (sorted hosts): they and the worse ones
 * go.  Returns how many are left. */
static pst_uint_t
relay_mx_named_us(relay_mx_host_t *hosts, pst_uint_t n)
{
    pst_uint_t  i, k;

    for (i = 0; i < n; i++) {
        if (pst_route_own_name((u_char *) hosts[i].name,
                               strlen(hosts[i].name)))
        {
            for (k = 0; k < i && hosts[k].pref < hosts[i].pref; k++) {
                /* void */
            }
            return k;
        }
    }

    return n;
}


static void
relay_mx_mx_found(relay_mx_ctx_t *ctx, const pst_dns_answer_t *a)
{
    pst_uint_t  n;
    int         rc;

    ctx->mx_secure = a->secure ? 1 : 0;
    ctx->hosts = calloc(RELAY_MX_MAX_HOSTS, sizeof(relay_mx_host_t));
    if (ctx->hosts == NULL) {
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.3.0",
                      "out of memory");
        relay_mx_finish(ctx);
        return;
    }

    if (a->count == 0) {
        /* no MX: the domain is its own exchanger (RFC 5321 5.1) */
        ctx->implicit = 1;
        snprintf(ctx->hosts[0].name, RELAY_MX_NAME_LEN, "%s", ctx->domain);
        n = 1;
        rc = PST_OK;
    } else {
        rc = relay_mx_parse(a, ctx->hosts, RELAY_MX_MAX_HOSTS, &n);
    }

    if (rc == PST_DONE) {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 556, "5.1.10",
                      "domain %s accepts no mail (null MX)", ctx->domain);
        relay_mx_finish(ctx);
        return;
    }
    if (rc != PST_OK) {
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                      "no usable MX record for %s", ctx->domain);
        relay_mx_finish(ctx);
        return;
    }

    relay_mx_sort(ctx->hosts, n);
    if (n > (pst_uint_t) ctx->conf->max_hosts) {
        n = (pst_uint_t) ctx->conf->max_hosts;
    }

    ctx->nhosts = relay_mx_named_us(ctx->hosts, n);

    if (ctx->nhosts == 0) {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.4.6",
                      "mail for %s loops back to myself", ctx->domain);
        relay_mx_finish(ctx);
        return;
    }

    if (relay_mx_lookup_hosts(ctx) != PST_OK) {
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                      "cannot look up the exchangers of %s", ctx->domain);
        relay_mx_finish(ctx);
    }
}


/* AAAA and A of every exchanger (as the family allows), all at once. */
static int
relay_mx_lookup_hosts(relay_mx_ctx_t *ctx)
{
    static const int   types[2] = { PST_DNS_AAAA, PST_DNS_A };
    relay_mx_host_t   *h;
    relay_mx_lookup_t *l;
    pst_uint_t         i;
    int                w;

    ctx->lookups = calloc(ctx->nhosts * 2, sizeof(relay_mx_lookup_t));
    if (ctx->lookups == NULL) {
        return PST_ERROR;
    }

    for (i = 0; i < ctx->nhosts; i++) {
        h = &ctx->hosts[i];
        h->ctx = ctx;

        for (w = 0; w < 2; w++) {
            h->status[w] = PST_DNS_NXDOMAIN;     /* not asked: nothing */
            if ((w == RELAY_MX_Q_AAAA
                 && ctx->conf->family == RELAY_MX_FAMILY_IPV4)
                || (w == RELAY_MX_Q_A
                    && ctx->conf->family == RELAY_MX_FAMILY_IPV6))
            {
                continue;
            }

            l = &ctx->lookups[i * 2 + w];
            l->host = h;
            l->which = w;
            h->query[w] = pst_dns_resolve(h->name, types[w],
                                          ctx->conf->dns_timeout,
                                          relay_mx_addr_answer, l);
            if (h->query[w] == NULL) {
                return PST_ERROR;
            }
            ctx->pending++;
        }
    }

    return PST_OK;
}


static void
relay_mx_addr_answer(void *data, const pst_dns_answer_t *a)
{
    relay_mx_lookup_t  *l = data;
    relay_mx_host_t    *h = l->host;
    relay_mx_ctx_t     *ctx = h->ctx;
    pst_uint_t          i, n = 0;
    size_t              len = l->which == RELAY_MX_Q_A ? 4 : 16;

    h->query[l->which] = NULL;
    h->status[l->which] = a->status;
    h->secure[l->which] = a->secure ? 1 : 0;

    for (i = 0; a->status == PST_DNS_OK && i < a->count; i++) {
        /* a CNAME chain's records are followed by unbound: only the
         * addresses of the asked type are here, of the right length */
        if (a->rdata[i].len == len && n < RELAY_MX_MAX_ADDRS) {
            memcpy(h->addr[l->which][n++], a->rdata[i].data, len);
        }
    }
    h->naddrs[l->which] = n;
    relay_mx_shuffle_addrs(h->addr[l->which], n);

    if (--ctx->pending == 0) {
        relay_mx_hops(ctx);
        relay_mx_finish(ctx);
    }
}


/* The best preference that is ourselves (an address of ours), or -1. */
static int
relay_mx_own_pref(relay_mx_ctx_t *ctx)
{
    relay_mx_host_t  *h;
    pst_nexthop_t     hop;
    pst_uint_t        i, j;
    int               w;

    for (i = 0; i < ctx->nhosts; i++) {
        h = &ctx->hosts[i];
        for (w = 0; w < 2; w++) {
            for (j = 0; j < h->naddrs[w]; j++) {
                relay_mx_sockaddr(h->addr[w][j], w, ctx->route.port, &hop);
                if (pst_route_own_addr((struct sockaddr *) &hop.addr)) {
                    return h->pref;     /* sorted: the first is the best */
                }
            }
        }
    }

    return -1;
}


static pst_uint_t
relay_mx_fill_hops(relay_mx_ctx_t *ctx, int own_pref, pst_nexthop_t *hops,
    pst_uint_t max)
{
    relay_mx_host_t  *h;
    pst_uint_t        i, j, n = 0;
    int               w;

    for (i = 0; i < ctx->nhosts; i++) {
        h = &ctx->hosts[i];
        if (own_pref >= 0 && h->pref >= own_pref) {
            break;
        }
        for (w = 0; w < 2; w++) {
            for (j = 0; j < h->naddrs[w] && n < max; j++, n++) {
                relay_mx_sockaddr(h->addr[w][j], w, ctx->route.port,
                                  &hops[n]);
                hops[n].name.data = (u_char *) h->name;
                hops[n].name.len = strlen(h->name);
                hops[n].pref = h->pref;
                hops[n].secure = ctx->mx_secure && h->secure[w];
            }
        }
    }

    return n;
}


/* Every lookup is back: the route. */
static void
relay_mx_hops(relay_mx_ctx_t *ctx)
{
    pst_uint_t  i, n = 0;
    int         own, temp = 0;

    own = relay_mx_own_pref(ctx);
    ctx->hops = calloc(RELAY_MX_MAX_HOPS, sizeof(pst_nexthop_t));
    if (ctx->hops != NULL) {
        n = relay_mx_fill_hops(ctx, own, ctx->hops, RELAY_MX_MAX_HOPS);
    }

    if (n > 0) {
        ctx->route.verdict = PST_HOOK_ACCEPT;
        ctx->route.hops = ctx->hops;
        ctx->route.nhops = n;
        return;
    }

    if (ctx->hops == NULL) {
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.3.0",
                      "out of memory");
        return;
    }

    /* only the exchangers better than us count */
    for (i = 0; i < ctx->nhosts; i++) {
        if (own >= 0 && ctx->hosts[i].pref >= own) {
            break;
        }
        temp |= ctx->hosts[i].status[0] == PST_DNS_SERVFAIL
                || ctx->hosts[i].status[0] == PST_DNS_TIMEOUT
                || ctx->hosts[i].status[1] == PST_DNS_SERVFAIL
                || ctx->hosts[i].status[1] == PST_DNS_TIMEOUT;
    }

    if (own >= 0 && !temp) {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.4.6",
                      "mail for %s loops back to myself", ctx->domain);
        return;
    }

    if (temp) {
        relay_mx_fail(ctx, PST_HOOK_TEMPFAIL, 451, "4.4.3",
                      "address lookup of the %s of %s failed",
                      ctx->implicit ? "host" : "exchangers", ctx->domain);
    } else if (ctx->implicit) {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.1.2",
                      "domain %s has no MX and no address", ctx->domain);
    } else {
        relay_mx_fail(ctx, PST_HOOK_REJECT, 550, "5.4.4",
                      "no address for any exchanger of %s", ctx->domain);
    }
}
