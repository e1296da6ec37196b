/*
 * pst_transport.c -- the transport table (pst_transport.h): the
 * "transport" directive, the lookup of a recipient's destination, and
 * reading a destination back into its router and next hop.
 */

#include "pst_core.h"
#include "pst_module.h"
#include "pst_transport.h"
#include "pst_route.h"
#include "pst_deliver.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef enum {
    PST_TR_ANY = 0,
    PST_TR_DOMAIN,
    PST_TR_SUBDOMAIN,
    PST_TR_REGEX,
    PST_TR_RCPT
} pst_tr_match_e;

typedef enum {
    PST_TR_ROUTER = 0,
    PST_TR_REJECT,
    PST_TR_HOLD
} pst_tr_action_e;

typedef struct {
    pst_tr_match_e               match;
    pst_str_t                    key;       /* without '.' or '~' */
    pcre2_code                  *re;
    pst_tr_action_e              action;
    pst_str_t                    transport; /* as written */
    pst_str_t                    nexthop;   /* may be empty */
    pst_str_t                    reply;     /* REJECT: "550 5.7.1 text" */
    pst_dlv_tls_e                tls;       /* tls_policy rules */
    const char                  *file;
    pst_uint_t                   line;
} pst_tr_rule_t;

typedef struct {
    pst_array_t                 *rules;     /* pst_tr_rule_t */
    pst_array_t                 *tls_rules; /* pst_tr_rule_t */
} pst_tr_conf_t;


static void *pst_transport_create(pst_conf_t *cf);
static char *pst_transport_init(pst_conf_t *cf, void *conf);
static char *pst_transport_set(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_transport_set_tls(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_transport_key(pst_conf_t *cf, pst_tr_rule_t *r,
    const pst_str_t *key);
static char *pst_transport_reject(pst_conf_t *cf, pst_tr_rule_t *r);
static int pst_transport_matches(const pst_tr_rule_t *r,
    const pst_str_t *addr, const pst_str_t *domain);
static pst_module_entry_t *pst_transport_module_of(pst_cycle_t *cycle,
    const u_char *name, size_t len);
static pst_tr_conf_t *pst_transport_conf(pst_cycle_t *cycle);

static pcre2_match_data  *pst_tr_md;


static const pst_command_t  pst_transport_commands[] = {
    { "transport", PST_CONF_MAIN | PST_CONF_2MORE,
      pst_transport_set, PST_MAIN_CONF, 0, NULL },
    { "tls_policy", PST_CONF_MAIN | PST_CONF_TAKE2,
      pst_transport_set_tls, PST_MAIN_CONF, 0, NULL },
    pst_null_command
};

const pst_module_t  pst_transport_module = {
    PST_MODULE_HEADER,
    .name = "transport",
    .version = PST_VERSION,
    .description = "the transport table: which transport carries a"
                   " recipient's mail",
    .commands = pst_transport_commands,
    .create_main_conf = pst_transport_create,
    .init_main_conf = pst_transport_init,
};


static void *
pst_transport_create(pst_conf_t *cf)
{
    pst_tr_conf_t  *c;

    c = pst_pcalloc(cf->pool, sizeof(pst_tr_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->rules = pst_array_create(cf->pool, 4, sizeof(pst_tr_rule_t));
    c->tls_rules = pst_array_create(cf->pool, 4, sizeof(pst_tr_rule_t));
    return c->rules != NULL && c->tls_rules != NULL ? c : NULL;
}


static void
pst_transport_free_code(void *data)
{
    pcre2_code_free(data);
}


static char *
pst_transport_set(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_tr_conf_t  *c = conf;
    pst_str_t      *a = cf->args->elts;
    pst_tr_rule_t  *r;
    char           *rv;

    (void) cmd;

    r = pst_array_push(c->rules);
    if (r == NULL) {
        return PST_CONF_ERROR;
    }
    memset(r, 0, sizeof(*r));
    r->file = pst_conf_position(cf, &r->line);

    rv = pst_transport_key(cf, r, &a[1]);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    r->transport = a[2];
    if (a[2].len == 4 && memcmp(a[2].data, "hold", 4) == 0) {
        r->action = PST_TR_HOLD;
        if (cf->args->nelts != 3) {
            pst_conf_error(cf, "\"transport ... hold\" takes no argument");
            return PST_CONF_ERROR;
        }
        return PST_CONF_OK;
    }
    if (a[2].len == 6 && memcmp(a[2].data, "reject", 6) == 0) {
        r->action = PST_TR_REJECT;
        return pst_transport_reject(cf, r);
    }

    r->action = PST_TR_ROUTER;
    if (cf->args->nelts > 4) {
        pst_conf_error(cf, "\"transport\": one next hop at most after"
                       " \"%s\"", a[2].data);
        return PST_CONF_ERROR;
    }
    if (cf->args->nelts == 4) {
        r->nexthop = a[3];
        if (r->nexthop.len == 0 || r->nexthop.len > 255
            || memchr(r->nexthop.data, ' ', r->nexthop.len) != NULL)
        {
            pst_conf_error(cf, "invalid next hop \"%s\"", a[3].data);
            return PST_CONF_ERROR;
        }
    }
    return PST_CONF_OK;
}


/* "tls_policy KEY POLICY;": the outbound TLS policy of the destinations
 * that KEY matches (domain keys only). */
static char *
pst_transport_set_tls(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_tr_conf_t          *c = conf;
    pst_str_t              *a = cf->args->elts;
    pst_tr_rule_t          *r;
    const pst_conf_enum_t  *e;
    char                   *rv;

    (void) cmd;

    r = pst_array_push(c->tls_rules);
    if (r == NULL) {
        return PST_CONF_ERROR;
    }
    memset(r, 0, sizeof(*r));
    r->file = pst_conf_position(cf, &r->line);
    rv = pst_transport_key(cf, r, &a[1]);
    if (rv != PST_CONF_OK) {
        return rv;
    }
    if (r->match == PST_TR_RCPT) {
        pst_conf_error(cf, "a TLS policy is per destination: \"%s\" is a"
                       " recipient", a[1].data);
        return PST_CONF_ERROR;
    }
    for (e = pst_deliver_tls_policies; e->name != NULL; e++) {
        if (strlen(e->name) == a[2].len
            && memcmp(e->name, a[2].data, a[2].len) == 0)
        {
            r->tls = (pst_dlv_tls_e) e->value;
            return PST_CONF_OK;
        }
    }
    pst_conf_error(cf, "unknown TLS policy \"%s\" (none, may, encrypt,"
                   " verify, dane, dane-only)", a[2].data);
    return PST_CONF_ERROR;
}


int
pst_transport_tls_policy(pst_cycle_t *cycle, const pst_str_t *dest)
{
    pst_tr_conf_t  *c = pst_transport_conf(cycle);
    pst_tr_rule_t  *r;
    pst_uint_t      i;

    if (c == NULL) {
        return -1;
    }
    r = c->tls_rules->elts;
    for (i = 0; i < c->tls_rules->nelts; i++) {
        if (pst_transport_matches(&r[i], dest, dest)) {
            return (int) r[i].tls;
        }
    }
    return -1;
}


static char *
pst_transport_key(pst_conf_t *cf, pst_tr_rule_t *r, const pst_str_t *key)
{
    PCRE2_UCHAR  msg[256];
    PCRE2_SIZE   off;
    int          err;

    r->key = *key;

    if (key->len == 1 && key->data[0] == '*') {
        r->match = PST_TR_ANY;
        return PST_CONF_OK;
    }
    if (key->data[0] == '~') {
        r->match = PST_TR_REGEX;
        r->key.data++;
        r->key.len--;
        r->re = pcre2_compile(r->key.data, r->key.len, PCRE2_CASELESS, &err,
                              &off, NULL);
        if (r->re == NULL) {
            pcre2_get_error_message(err, msg, sizeof(msg));
            pst_conf_error(cf, "invalid regular expression \"%s\": %s at"
                           " offset %zu", r->key.data, (char *) msg,
                           (size_t) off);
            return PST_CONF_ERROR;
        }
        if (pst_pool_cleanup_add(pst_conf_pool(cf), pst_transport_free_code,
                                 r->re) != PST_OK)
        {
            pcre2_code_free(r->re);
            return PST_CONF_ERROR;
        }
        (void) pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);
        return PST_CONF_OK;
    }
    if (memchr(key->data, '@', key->len) != NULL) {
        r->match = PST_TR_RCPT;
        return PST_CONF_OK;
    }
    if (key->data[0] == '.') {
        r->match = PST_TR_SUBDOMAIN;
        r->key.data++;
        r->key.len--;
    } else {
        r->match = PST_TR_DOMAIN;
    }
    if (r->key.len == 0 || r->key.len > PST_DOMAIN_MAX) {
        pst_conf_error(cf, "invalid transport key \"%s\"", key->data);
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


/* "reject CODE [X.Y.Z] TEXT...": the reply, checked. */
static char *
pst_transport_reject(pst_conf_t *cf, pst_tr_rule_t *r)
{
    pst_str_t   *a = cf->args->elts;
    pst_uint_t   i, first = 4;
    size_t       len;
    u_char      *p;
    int          code;
    char         ecode[16] = "";

    code = (cf->args->nelts > 3) ? atoi((char *) a[3].data) : 0;
    if (cf->args->nelts < 5 || a[3].len != 3 || code < 400 || code > 599) {
        pst_conf_error(cf, "\"transport ... reject\" takes a 4xx or 5xx"
                       " code and a text");
        return PST_CONF_ERROR;
    }
    if (a[4].len >= 5 && a[4].len < sizeof(ecode) && isdigit(a[4].data[0])
        && a[4].data[1] == '.')
    {
        if (a[4].data[0] - '0' != code / 100 || cf->args->nelts < 6) {
            pst_conf_error(cf, "\"transport ... reject\": the enhanced code"
                           " \"%s\" does not go with %d, or no text",
                           a[4].data, code);
            return PST_CONF_ERROR;
        }
        snprintf(ecode, sizeof(ecode), "%s", a[4].data);
        first = 5;
    } else {
        snprintf(ecode, sizeof(ecode), "%d.0.0", code / 100);
    }

    len = 4 + strlen(ecode);
    for (i = first; i < cf->args->nelts; i++) {
        len += 1 + a[i].len;
    }
    if (len > 400) {
        pst_conf_error(cf, "\"transport ... reject\": the reply is too long");
        return PST_CONF_ERROR;
    }
    p = pst_palloc(cf->pool, len + 1);
    if (p == NULL) {
        return PST_CONF_ERROR;
    }
    r->reply.data = p;
    p += sprintf((char *) p, "%d %s", code, ecode);
    for (i = first; i < cf->args->nelts; i++) {
        *p++ = ' ';
        memcpy(p, a[i].data, a[i].len);
        p += a[i].len;
    }
    *p = '\0';
    r->reply.len = (size_t) (p - r->reply.data);
    for (p = r->reply.data; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            pst_conf_error(cf, "\"transport ... reject\": a control"
                           " character in the text");
            return PST_CONF_ERROR;
        }
    }
    return PST_CONF_OK;
}


/* Every rule's transport is a loaded router, checked once the whole
 * configuration (and every load_module) is read. */
static char *
pst_transport_init(pst_conf_t *cf, void *conf)
{
    pst_tr_conf_t  *c = conf;
    pst_tr_rule_t  *r = c->rules->elts;
    pst_uint_t      i;

    for (i = 0; i < c->rules->nelts; i++) {
        if (r[i].action != PST_TR_ROUTER) {
            continue;
        }
        if (pst_transport_module_of(cf->cycle, r[i].transport.data,
                                    r[i].transport.len) == NULL)
        {
            pst_conf_error_at(cf, r[i].file, r[i].line, "no loaded module"
                              " is the transport \"%s\" (a router module:"
                              " load_module it first, e.g. relay_%s)",
                              r[i].transport.data, r[i].transport.data);
            return PST_CONF_ERROR;
        }
    }
    return PST_CONF_OK;
}


/* The router module that is transport `name`: its full name or the
 * part after its first '_'. */
static pst_module_entry_t *
pst_transport_module_of(pst_cycle_t *cycle, const u_char *name, size_t len)
{
    pst_module_entry_t  *me = cycle->modules.elts;
    pst_uint_t           i;
    const char          *n, *u;

    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.router == NULL || me[i].desc.router->resolve == NULL)
        {
            continue;
        }
        n = me[i].desc.name;
        u = strchr(n, '_');
        if ((strlen(n) == len && memcmp(n, name, len) == 0)
            || (u != NULL && strlen(u + 1) == len
                && memcmp(u + 1, name, len) == 0))
        {
            return &me[i];
        }
    }
    return NULL;
}


static pst_tr_conf_t *
pst_transport_conf(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(cycle, &pst_transport_module);
    return me != NULL ? cycle->main_conf[me->index] : NULL;
}


size_t
pst_transport_dest(pst_cycle_t *cycle, const pst_str_t *addr,
    const pst_str_t *domain, u_char *out, int *hold)
{
    pst_tr_conf_t  *c = pst_transport_conf(cycle);
    pst_tr_rule_t  *r;
    pst_uint_t      i;
    int             n;

    *hold = 0;
    if (c == NULL) {
        return 0;
    }

    r = c->rules->elts;
    for (i = 0; i < c->rules->nelts; i++) {
        if (!pst_transport_matches(&r[i], addr, domain)) {
            continue;
        }
        switch (r[i].action) {
        case PST_TR_HOLD:
            *hold = 1;
            continue;
        case PST_TR_REJECT:
            n = snprintf((char *) out, PST_TRANSPORT_DEST_MAX, "reject:%lu",
                         (unsigned long) i);
            return (size_t) n;
        default:
            break;
        }
        if (pst_transport_module_of(cycle, r[i].transport.data,
                                    r[i].transport.len)
            == pst_transport_module_of(cycle, (u_char *) "mx", 2))
        {
            /* MX routing: the domain itself, or the next hop instead */
            memcpy(out, r[i].nexthop.data, r[i].nexthop.len);
            return r[i].nexthop.len;
        }
        n = snprintf((char *) out, PST_TRANSPORT_DEST_MAX, "%.*s:%.*s",
                     (int) r[i].transport.len, r[i].transport.data,
                     (int) r[i].nexthop.len, r[i].nexthop.data);
        return (size_t) pst_min(n, PST_TRANSPORT_DEST_MAX - 1);
    }
    return 0;
}


static int
pst_transport_matches(const pst_tr_rule_t *r, const pst_str_t *addr,
    const pst_str_t *domain)
{
    size_t  n;
    int     rc;

    switch (r->match) {

    case PST_TR_ANY:
        return 1;

    case PST_TR_DOMAIN:
        return domain->len == r->key.len
               && pst_strncasecmp(domain->data, r->key.data, r->key.len) == 0;

    case PST_TR_SUBDOMAIN:
        n = r->key.len;
        return domain->len > n + 1 && domain->data[domain->len - n - 1] == '.'
               && pst_strncasecmp(domain->data + domain->len - n, r->key.data,
                                  n) == 0;

    case PST_TR_RCPT:
        return addr->len == r->key.len
               && pst_strncasecmp(addr->data, r->key.data, r->key.len) == 0;

    default:
        if (pst_tr_md == NULL) {
            pst_tr_md = pcre2_match_data_create(1, NULL);
            if (pst_tr_md == NULL) {
                return 0;
            }
        }
        rc = pcre2_match(r->re, domain->data, domain->len, 0, 0, pst_tr_md,
                         NULL);
        return rc >= 0;
    }
}


int
pst_transport_router(pst_cycle_t *cycle, const pst_str_t *dest,
    const pst_router_t **router, void **main_conf, pst_str_t *nexthop)
{
    pst_module_entry_t  *me;
    pst_tr_conf_t       *c;
    pst_tr_rule_t       *r;
    u_char              *colon = NULL;
    unsigned long        i;

    if (dest->len > 0 && dest->data[0] != '[') {
        colon = memchr(dest->data, ':', dest->len);
    }

    if (colon == NULL) {
        /* a domain or "[addr]": the MX router's; without one loaded,
         * the first router's default next hop (a smarthost's hosts) */
        me = pst_transport_module_of(cycle, (u_char *) "mx", 2);
        if (me != NULL) {
            *nexthop = *dest;
            *router = me->desc.router;
            *main_conf = cycle->main_conf[me->index];
            return PST_OK;
        }
        nexthop->data = dest->data;
        nexthop->len = 0;
        *router = pst_route_router(cycle, main_conf);
        if (*router == NULL) {
            nexthop->data = (u_char *) "mx";
            nexthop->len = 2;
            return PST_ERROR;
        }
        return PST_OK;
    }

    nexthop->data = colon + 1;
    nexthop->len = dest->len - (size_t) (colon + 1 - dest->data);

    if (colon - dest->data == 6 && memcmp(dest->data, "reject", 6) == 0) {
        c = pst_transport_conf(cycle);
        i = strtoul((char *) nexthop->data, NULL, 10);
        if (c == NULL || i >= c->rules->nelts) {
            return PST_ERROR;
        }
        r = c->rules->elts;
        *nexthop = r[i].reply;
        return PST_DECLINED;
    }

    me = pst_transport_module_of(cycle, dest->data,
                                 (size_t) (colon - dest->data));
    if (me == NULL) {
        nexthop->data = dest->data;
        nexthop->len = (size_t) (colon - dest->data);
        return PST_ERROR;
    }
    *router = me->desc.router;
    *main_conf = cycle->main_conf[me->index];
    return PST_OK;
}
