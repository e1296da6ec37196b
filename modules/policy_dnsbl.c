/*
 * policy_dnsbl.c -- DNS blocklists and allowlists with weights, and
 * reverse DNS checks of the client, at connect time.
 *
 * All lookups of a session start together when it connects, through
 * the core's asynchronous resolver (libunbound in the worker's event
 * loop); the connect phase waits for the answers (each bounded by
 * dnsbl_timeout) and the greeting follows.  Nothing blocks the worker.
 *
 * Lists are written as Postfix's postscreen_dnsbl_sites:
 *   dnsbl ZONE[=ADDRESS][*WEIGHT] ...;
 *   dnswl ZONE[=ADDRESS][*WEIGHT] ...;
 * ADDRESS is the listing to look for, each octet a number, a range
 * [2..11] or a list [2,4,6] (postscreen's [2;4;6] works when quoted:
 * ';' ends a directive) (default: any address); WEIGHT an integer
 * (default 1).  A client listed in a dnsbl adds its weight to its
 * score, one listed in a dnswl subtracts it; several entries may name
 * the same zone (it is looked up once).  A score at or above
 * dnsbl_threshold refuses the client:
 *   dnsbl_action reject      554 5.7.1 greeting (then 503 to all but
 *                            QUIT, RFC 5321 3.1)  (default)
 *   dnsbl_action tempfail    421 4.7.1, the session ends
 * A lookup that fails or times out counts as "not listed".
 *
 * Reverse DNS:
 *   rdns_check off|ptr|fcrdns;   ptr: the client address must have a
 *                     PTR record; fcrdns: one of its PTR names (up to 5)
 *                     must resolve back to it.  Missing: 554 5.7.25
 *                     greeting (RFC 7372); a failed lookup: 421 4.7.25.
 *                     A client whose name the core already confirmed
 *                     (smtp_reverse_lookup) costs no lookup.
 *
 * Other directives (smtp or server block):
 *   dnsbl_threshold N;       default 1
 *   dnsbl_timeout TIME;      default 5s, per lookup
 *   dnsbl_exempt CIDR ...;   no lookups for these clients
 *
 * Every decision is logged with the score and the entries that made it.
 * Hook priority -20: after policy_limits and policy_access (cheap, and
 * an access rule can accept a client before any lookup), before the
 * recipient checks.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "postern_module.h"

#define DNSBL_PRIORITY       -20
#define DNSBL_MAX_ADDRS      16
#define DNSBL_MAX_NAMES      5

enum {
    DNSBL_RDNS_OFF = 0,
    DNSBL_RDNS_PTR,
    DNSBL_RDNS_FCRDNS
};

enum {
    DNSBL_REJECT = 0,
    DNSBL_TEMPFAIL
};

/* rDNS result of a session */
enum {
    DNSBL_R_PENDING = 0,
    DNSBL_R_OK,
    DNSBL_R_NO_PTR,
    DNSBL_R_UNCONFIRMED,
    DNSBL_R_FAILED
};

typedef struct {
    pst_str_t                    zone;
} dnsbl_zone_t;

typedef struct {
    pst_uint_t                   zone;        /* index into zones */
    int                          weight;      /* negative: allowlist */
    unsigned                     any:1;
    u_char                       octets[4][32];   /* bitmaps */
    pst_str_t                    text;        /* as configured */
} dnsbl_entry_t;

typedef struct {
    pst_array_t                 *zones;       /* dnsbl_zone_t */
    pst_array_t                 *entries;     /* dnsbl_entry_t */
    pst_int_t                    threshold;
    pst_msec_t                   timeout;
    pst_uint_t                   action;
    pst_uint_t                   rdns;
    pst_array_t                 *exempt;      /* pst_cidr_t */
} dnsbl_conf_t;

typedef struct dnsbl_session_s  dnsbl_session_t;

/* The answer of one list (zone). */
typedef struct {
    dnsbl_session_t             *ds;
    pst_dns_query_t             *q;
    pst_uint_t                   naddrs;
    u_char                       addrs[DNSBL_MAX_ADDRS][4];
} dnsbl_result_t;

/* A forward lookup of one PTR name. */
typedef struct {
    dnsbl_session_t             *ds;
    pst_dns_query_t             *q;
} dnsbl_fwd_t;

struct dnsbl_session_s {
    pst_session_t               *session;
    dnsbl_conf_t                *conf;
    uint64_t                     token;
    pst_uint_t                   pending;
    dnsbl_result_t              *results;     /* per zone */
    pst_uint_t                   nresults;
    pst_dns_query_t             *ptr;
    dnsbl_fwd_t                  fwd[DNSBL_MAX_NAMES];
    pst_uint_t                   nnames;
    int                          rdns;        /* DNSBL_R_* */
    int                          fwd_failed;
    char                         names[DNSBL_MAX_NAMES][256];
};

static const pst_conf_enum_t  dnsbl_rdns_modes[] = {
    { "off", DNSBL_RDNS_OFF },
    { "ptr", DNSBL_RDNS_PTR },
    { "fcrdns", DNSBL_RDNS_FCRDNS },
    { NULL, 0 }
};

static const pst_conf_enum_t  dnsbl_actions[] = {
    { "reject", DNSBL_REJECT },
    { "tempfail", DNSBL_TEMPFAIL },
    { NULL, 0 }
};


static void *dnsbl_create_conf(pst_conf_t *cf);
static char *dnsbl_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *dnsbl_set_list(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e dnsbl_connect(pst_call_t *call, void *conf);


static const pst_command_t  dnsbl_commands[] = {
    { "dnsbl", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      dnsbl_set_list, PST_SRV_CONF, 0, NULL },
    { "dnswl", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      dnsbl_set_list, PST_SRV_CONF, 1, NULL },
    { "dnsbl_threshold", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(dnsbl_conf_t, threshold), NULL },
    { "dnsbl_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(dnsbl_conf_t, timeout), NULL },
    { "dnsbl_action", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(dnsbl_conf_t, action), dnsbl_actions },
    { "dnsbl_exempt", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, PST_SRV_CONF,
      offsetof(dnsbl_conf_t, exempt), NULL },
    { "rdns_check", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(dnsbl_conf_t, rdns), dnsbl_rdns_modes },
    pst_null_command
};

static const pst_hook_t  dnsbl_hooks[] = {
    { PST_PHASE_CONNECT, dnsbl_connect, DNSBL_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_dnsbl",
    .version = "1.0",
    .description = "DNS block/allowlists with weights, reverse DNS",
    .commands = dnsbl_commands,
    .create_srv_conf = dnsbl_create_conf,
    .merge_srv_conf = dnsbl_merge_conf,
    .hooks = dnsbl_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
dnsbl_create_conf(pst_conf_t *cf)
{
    dnsbl_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(dnsbl_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->zones = PST_CONF_UNSET_PTR;
    c->entries = PST_CONF_UNSET_PTR;
    c->threshold = PST_CONF_UNSET;
    c->timeout = PST_CONF_UNSET_MSEC;
    c->action = PST_CONF_UNSET_UINT;
    c->rdns = PST_CONF_UNSET_UINT;
    c->exempt = PST_CONF_UNSET_PTR;
    return c;
}


static char *
dnsbl_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    dnsbl_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->entries == PST_CONF_UNSET_PTR) {
        conf->entries = prev->entries;
        conf->zones = prev->zones;
    }
    if (conf->entries == PST_CONF_UNSET_PTR) {
        conf->entries = NULL;
        conf->zones = NULL;
    }
    pst_conf_merge_value(conf->threshold, prev->threshold, 1);
    pst_conf_merge_msec_value(conf->timeout, prev->timeout, 5000);
    pst_conf_merge_uint_value(conf->action, prev->action, DNSBL_REJECT);
    pst_conf_merge_uint_value(conf->rdns, prev->rdns, DNSBL_RDNS_OFF);
    pst_conf_merge_ptr_value(conf->exempt, prev->exempt, NULL);

    if (conf->threshold < 1) {
        return "dnsbl_threshold must be at least 1";
    }

    return PST_CONF_OK;
}


/* One octet pattern: "7", "[2..11]", "[2,4,6]" or a mix "[1,5..9]"
 * (';' as in postscreen works too, inside a quoted argument). */
static int
dnsbl_octet(const u_char *p, size_t n, u_char map[32])
{
    const u_char  *end = p + n, *q;
    long           lo, hi;
    char          *e, buf[8];
    size_t         k;

    memset(map, 0, 32);

    if (n > 0 && p[0] == '[') {
        if (n < 3 || p[n - 1] != ']') {
            return -1;
        }
        p++;
        end--;
    }

    while (p < end) {
        q = p;
        while (q < end && *q != ';' && *q != ',') {
            q++;
        }
        k = (size_t) (q - p);
        if (k == 0 || k >= sizeof(buf)) {
            return -1;
        }
        memcpy(buf, p, k);
        buf[k] = '\0';

        lo = strtol(buf, &e, 10);
        if (e == buf) {
            return -1;
        }
        hi = lo;
        if (e[0] == '.' && e[1] == '.') {
            hi = strtol(e + 2, &e, 10);
        }
        if (*e != '\0' || lo < 0 || hi > 255 || lo > hi) {
            return -1;
        }
        for ( /* void */ ; lo <= hi; lo++) {
            map[lo / 8] |= (u_char) (1 << (lo % 8));
        }

        p = (q < end) ? q + 1 : q;
    }

    return 0;
}


static int
dnsbl_parse_entry(pst_conf_t *cf, dnsbl_conf_t *dc, const pst_str_t *arg,
    int allow)
{
    dnsbl_entry_t  *e;
    dnsbl_zone_t   *z;
    const u_char   *p, *end, *eq, *star, *dot;
    pst_uint_t      i;
    long            w;
    char           *endp, buf[16];
    int             o;

    p = arg->data;
    end = p + arg->len;

    star = NULL;
    for (i = arg->len; i > 0; i--) {
        if (p[i - 1] == '*') {
            star = p + i - 1;
            break;
        }
        if (p[i - 1] == '=' || p[i - 1] == ']') {
            break;
        }
    }

    e = pst_array_push(dc->entries);
    if (e == NULL) {
        return PST_ERROR;
    }
    memset(e, 0, sizeof(dnsbl_entry_t));
    e->text = *arg;
    e->weight = 1;

    if (star != NULL) {
        if ((size_t) (end - star - 1) == 0
            || (size_t) (end - star - 1) >= sizeof(buf))
        {
            return PST_DECLINED;
        }
        memcpy(buf, star + 1, (size_t) (end - star - 1));
        buf[end - star - 1] = '\0';
        w = strtol(buf, &endp, 10);
        if (*endp != '\0' || w < -1000 || w > 1000) {
            return PST_DECLINED;
        }
        e->weight = (int) w;
        end = star;
    }
    if (allow) {
        e->weight = -e->weight;
    }

    eq = memchr(p, '=', (size_t) (end - p));

    if (eq == NULL) {
        e->any = 1;
    } else {
        p = eq + 1;
        for (o = 0; o < 4; o++) {
            dot = p;
            if (*dot == '[') {
                dot = memchr(p, ']', (size_t) (end - p));
                if (dot == NULL) {
                    return PST_DECLINED;
                }
                dot++;
            } else {
                while (dot < end && *dot != '.') {
                    dot++;
                }
            }
            if (dnsbl_octet(p, (size_t) (dot - p), e->octets[o]) != 0) {
                return PST_DECLINED;
            }
            if (o < 3) {
                if (dot >= end || *dot != '.') {
                    return PST_DECLINED;
                }
                p = dot + 1;
            } else if (dot != end) {
                return PST_DECLINED;
            }
        }
        end = eq;
    }

    /* the zone */
    p = arg->data;
    if (end == p || *p == '.' || end[-1] == '.' || end - p > 200) {
        return PST_DECLINED;
    }
    for (i = 0; p + i < end; i++) {
        u_char  c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.'
              || c == '_'))
        {
            return PST_DECLINED;
        }
    }

    z = dc->zones->elts;
    for (i = 0; i < dc->zones->nelts; i++) {
        if (z[i].zone.len == (size_t) (end - p)
            && pst_strncasecmp(z[i].zone.data, p, z[i].zone.len) == 0)
        {
            break;
        }
    }
    if (i == dc->zones->nelts) {
        z = pst_array_push(dc->zones);
        if (z == NULL) {
            return PST_ERROR;
        }
        z->zone.len = (size_t) (end - p);
        z->zone.data = pst_palloc(pst_conf_pool(cf), z->zone.len + 1);
        if (z->zone.data == NULL) {
            return PST_ERROR;
        }
        memcpy(z->zone.data, p, z->zone.len);
        z->zone.data[z->zone.len] = '\0';
    }
    e->zone = i;

    return PST_OK;
}


static char *
dnsbl_set_list(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    dnsbl_conf_t  *dc = conf;
    pst_str_t     *args;
    pst_uint_t     n, i;
    int            rc;

    if (dc->entries == PST_CONF_UNSET_PTR) {
        dc->entries = pst_array_create(pst_conf_pool(cf), 4,
                                       sizeof(dnsbl_entry_t));
        dc->zones = pst_array_create(pst_conf_pool(cf), 4,
                                     sizeof(dnsbl_zone_t));
        if (dc->entries == NULL || dc->zones == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        rc = dnsbl_parse_entry(cf, dc, &args[i], cmd->offset == 1);
        if (rc == PST_ERROR) {
            return PST_CONF_ERROR;
        }
        if (rc != PST_OK) {
            pst_conf_error(cf, "invalid entry \"%s\" in \"%s\" (use"
                           " ZONE[=ADDRESS][*WEIGHT], e.g."
                           " zen.example.test=127.0.0.[2..11]*3)",
                           args[i].data, cmd->name);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Lookups                                                             */

static void
dnsbl_cancel(void *data)
{
    dnsbl_session_t  *ds = data;
    pst_uint_t        i;

    for (i = 0; i < ds->nresults; i++) {
        if (ds->results[i].q != NULL) {
            pst_dns_cancel(ds->results[i].q);
            ds->results[i].q = NULL;
        }
    }
    if (ds->ptr != NULL) {
        pst_dns_cancel(ds->ptr);
        ds->ptr = NULL;
    }
    for (i = 0; i < DNSBL_MAX_NAMES; i++) {
        if (ds->fwd[i].q != NULL) {
            pst_dns_cancel(ds->fwd[i].q);
            ds->fwd[i].q = NULL;
        }
    }
    ds->pending = 0;
}


static int
dnsbl_entry_match(const dnsbl_entry_t *e, const u_char a[4])
{
    int  o;

    if (e->any) {
        return 1;
    }
    for (o = 0; o < 4; o++) {
        if (!(e->octets[o][a[o] / 8] & (1 << (a[o] % 8)))) {
            return 0;
        }
    }
    return 1;
}


static void
dnsbl_finish(dnsbl_session_t *ds)
{
    dnsbl_conf_t         *conf = ds->conf;
    pst_session_t        *s = ds->session;
    const dnsbl_entry_t  *e;
    const dnsbl_zone_t   *z;
    const dnsbl_result_t *r;
    pst_uint_t            i, k;
    char                  why[512], first[256];
    size_t                n;
    int                   score, hit;

    score = 0;
    n = 0;
    why[0] = '\0';
    first[0] = '\0';

    if (conf->entries != NULL) {
        e = conf->entries->elts;
        z = conf->zones->elts;
        for (i = 0; i < conf->entries->nelts; i++) {
            r = &ds->results[e[i].zone];
            hit = 0;
            for (k = 0; k < r->naddrs && !hit; k++) {
                hit = dnsbl_entry_match(&e[i], r->addrs[k]);
            }
            if (!hit) {
                continue;
            }
            score += e[i].weight;
            if (first[0] == '\0' && e[i].weight > 0) {
                snprintf(first, sizeof(first), "%s",
                         (char *) z[e[i].zone].zone.data);
            }
            if (n < sizeof(why) - 1) {
                n += (size_t) snprintf(why + n, sizeof(why) - n, "%s%.*s%s",
                                       n ? " " : "", (int) e[i].text.len,
                                       e[i].text.data,
                                       e[i].weight < 0 ? "(allow)" : "");
                if (n >= sizeof(why)) {
                    n = sizeof(why) - 1;
                }
            }
        }

        if (score >= conf->threshold) {
            pst_log_session(s, PST_LOG_NOTICE, "policy_dnsbl: %s client %s:"
                            " score %d >= dnsbl_threshold %ld (%s)",
                            conf->action == DNSBL_REJECT ? "reject"
                                                         : "tempfail",
                            pst_session_client_addr(s)->data, score,
                            (long) conf->threshold, why);
            if (conf->action == DNSBL_REJECT) {
                (void) pst_hook_resume(ds->token, PST_HOOK_REJECT, 554,
                                       "5.7.1", "Service unavailable; client"
                                       " [%s] blocked using %s",
                                       pst_session_client_addr(s)->data,
                                       first[0] ? first : "DNS lists");
            } else {
                (void) pst_hook_resume(ds->token, PST_HOOK_TEMPFAIL, 421,
                                       "4.7.1", "Service unavailable; client"
                                       " [%s] blocked using %s, try again"
                                       " later",
                                       pst_session_client_addr(s)->data,
                                       first[0] ? first : "DNS lists");
            }
            return;
        }

        pst_log_session(s, PST_LOG_INFO, "policy_dnsbl: pass client %s:"
                        " score %d < dnsbl_threshold %ld%s%s%s",
                        pst_session_client_addr(s)->data, score,
                        (long) conf->threshold, n ? " (" : "", why,
                        n ? ")" : "");
    }

    switch (ds->rdns) {

    case DNSBL_R_NO_PTR:
    case DNSBL_R_UNCONFIRMED:
        pst_log_session(s, PST_LOG_NOTICE, "policy_dnsbl: reject client %s:"
                        " rdns_check %s: %s",
                        pst_session_client_addr(s)->data,
                        conf->rdns == DNSBL_RDNS_PTR ? "ptr" : "fcrdns",
                        ds->rdns == DNSBL_R_NO_PTR ? "no PTR record"
                        : "no PTR name resolves back to the address");
        (void) pst_hook_resume(ds->token, PST_HOOK_REJECT, 554, "5.7.25",
                               "Client host rejected: cannot find your"
                               " %s", ds->rdns == DNSBL_R_NO_PTR
                               ? "reverse hostname"
                               : "hostname (reverse DNS does not match)");
        return;

    case DNSBL_R_FAILED:
        pst_log_session(s, PST_LOG_NOTICE, "policy_dnsbl: tempfail client"
                        " %s: rdns_check: lookup failed or timed out",
                        pst_session_client_addr(s)->data);
        (void) pst_hook_resume(ds->token, PST_HOOK_TEMPFAIL, 421, "4.7.25",
                               "Client host rejected: cannot look up your"
                               " hostname, try again later");
        return;

    case DNSBL_R_OK:
        pst_log_session(s, PST_LOG_INFO, "policy_dnsbl: rdns_check passed:"
                        " %s", ds->nnames ? ds->names[0] : "confirmed");
        break;

    default:
        break;
    }

    (void) pst_hook_resume(ds->token, PST_HOOK_CONTINUE, 0, NULL, NULL);
}


static void
dnsbl_done_one(dnsbl_session_t *ds)
{
    if (--ds->pending == 0) {
        dnsbl_finish(ds);
    }
}


static void
dnsbl_list_answer(void *data, const pst_dns_answer_t *a)
{
    dnsbl_result_t   *r = data;
    dnsbl_session_t  *ds = r->ds;
    pst_uint_t        i;

    r->q = NULL;

    if (a->status == PST_DNS_OK) {
        for (i = 0; i < a->count && r->naddrs < DNSBL_MAX_ADDRS; i++) {
            if (a->rdata[i].len == 4) {
                memcpy(r->addrs[r->naddrs++], a->rdata[i].data, 4);
            }
        }
    } else if (a->status != PST_DNS_NXDOMAIN) {
        pst_log(PST_LOG_INFO, 0, "policy_dnsbl: lookup of %s failed (%s):"
                " counted as not listed", a->qname,
                a->status == PST_DNS_TIMEOUT ? "timeout" : "error");
    }

    dnsbl_done_one(ds);
}


static int
dnsbl_name_ok(const char *name)
{
    size_t  n = 0;

    for ( /* void */ ; *name; name++, n++) {
        if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A'
              && *name <= 'Z') || (*name >= '0' && *name <= '9')
              || *name == '-' || *name == '.' || *name == '_'))
        {
            return 0;
        }
    }
    return n > 0 && n < 254;
}


static void
dnsbl_fwd_answer(void *data, const pst_dns_answer_t *a)
{
    dnsbl_fwd_t      *f = data;
    dnsbl_session_t  *ds = f->ds;
    const pst_str_t  *client;
    char              text[64];
    pst_uint_t        i, k;

    f->q = NULL;

    client = pst_session_client_addr(ds->session);

    if (a->status == PST_DNS_OK) {
        for (i = 0; i < a->count; i++) {
            if (pst_dns_rr_addr(a, i, text, sizeof(text)) == PST_OK
                && strlen(text) == client->len
                && memcmp(text, client->data, client->len) == 0)
            {
                ds->rdns = DNSBL_R_OK;
            }
        }
    } else if (a->status != PST_DNS_NXDOMAIN) {
        ds->fwd_failed = 1;
    }

    for (k = 0; k < DNSBL_MAX_NAMES; k++) {
        if (ds->fwd[k].q != NULL) {
            break;
        }
    }
    if (k == DNSBL_MAX_NAMES && ds->rdns == DNSBL_R_PENDING) {
        ds->rdns = ds->fwd_failed ? DNSBL_R_FAILED : DNSBL_R_UNCONFIRMED;
    }

    dnsbl_done_one(ds);
}


static void
dnsbl_ptr_answer(void *data, const pst_dns_answer_t *a)
{
    dnsbl_session_t  *ds = data;
    pst_session_t    *s = ds->session;
    pst_uint_t        i, started;
    int               type;

    ds->ptr = NULL;

    if (a->status == PST_DNS_NXDOMAIN
        || (a->status == PST_DNS_OK && a->count == 0))
    {
        ds->rdns = DNSBL_R_NO_PTR;
        dnsbl_done_one(ds);
        return;
    }

    if (a->status != PST_DNS_OK) {
        ds->rdns = DNSBL_R_FAILED;
        dnsbl_done_one(ds);
        return;
    }

    ds->nnames = 0;
    for (i = 0; i < a->count && ds->nnames < DNSBL_MAX_NAMES; i++) {
        if (pst_dns_rr_name(a, i, 0, ds->names[ds->nnames], 256) == PST_OK
            && dnsbl_name_ok(ds->names[ds->nnames]))
        {
            ds->nnames++;
        }
    }

    if (ds->nnames == 0) {
        ds->rdns = DNSBL_R_NO_PTR;
        dnsbl_done_one(ds);
        return;
    }

    if (ds->conf->rdns == DNSBL_RDNS_PTR) {
        ds->rdns = DNSBL_R_OK;
        dnsbl_done_one(ds);
        return;
    }

    type = pst_session_client_sockaddr(s)->sa_family == AF_INET6
           ? PST_DNS_AAAA : PST_DNS_A;

    started = 0;
    for (i = 0; i < ds->nnames; i++) {
        ds->fwd[i].ds = ds;
        ds->fwd[i].q = pst_dns_resolve(ds->names[i], type, ds->conf->timeout,
                                       dnsbl_fwd_answer, &ds->fwd[i]);
        if (ds->fwd[i].q == NULL) {
            ds->fwd_failed = 1;
            continue;
        }
        ds->pending++;
        started++;
    }

    if (started == 0) {
        ds->rdns = DNSBL_R_FAILED;
    }

    dnsbl_done_one(ds);
}


/* ------------------------------------------------------------------ */
/* The connect hook                                                    */

static int
dnsbl_exempt(const dnsbl_conf_t *conf, pst_session_t *s)
{
    return pst_cidr_match_list(conf->exempt, pst_session_client_sockaddr(s));
}


static pst_verdict_e
dnsbl_connect(pst_call_t *call, void *data)
{
    dnsbl_conf_t        *conf = data;
    pst_session_t       *s = pst_call_session(call);
    dnsbl_session_t     *ds;
    const dnsbl_zone_t  *z;
    pst_uint_t           nz, i;
    size_t               size;
    char                 name[320];

    nz = conf->zones ? conf->zones->nelts : 0;

    if ((nz == 0 && conf->rdns == DNSBL_RDNS_OFF) || dnsbl_exempt(conf, s)) {
        return PST_HOOK_CONTINUE;
    }

    size = sizeof(dnsbl_session_t) + nz * sizeof(dnsbl_result_t);
    ds = pst_pcalloc(pst_session_pool(s), size);
    if (ds == NULL
        || pst_pool_cleanup_add(pst_session_pool(s), dnsbl_cancel, ds)
           != PST_OK)
    {
        return PST_HOOK_CONTINUE;
    }

    ds->session = s;
    ds->conf = conf;
    ds->results = (dnsbl_result_t *) (ds + 1);
    ds->nresults = 0;
    ds->rdns = DNSBL_R_PENDING;

    /* one pending count for this function, so that no answer can
     * finish the phase while lookups are still being started */
    ds->pending = 1;

    z = nz ? conf->zones->elts : NULL;

    for (i = 0; i < nz; i++) {
        ds->nresults = i + 1;
        ds->results[i].ds = ds;
        if (pst_dns_reverse_name(pst_session_client_sockaddr(s),
                                 (const char *) z[i].zone.data, name,
                                 sizeof(name)) != PST_OK)
        {
            continue;
        }
        ds->results[i].q = pst_dns_resolve(name, PST_DNS_A, conf->timeout,
                                           dnsbl_list_answer,
                                           &ds->results[i]);
        if (ds->results[i].q != NULL) {
            ds->pending++;
        }
    }

    if (conf->rdns != DNSBL_RDNS_OFF) {
        if (pst_session_client_name(s) != NULL) {
            ds->rdns = DNSBL_R_OK;          /* confirmed by the core */
        } else if (pst_dns_reverse_name(pst_session_client_sockaddr(s), NULL,
                                        name, sizeof(name)) == PST_OK
                   && (ds->ptr = pst_dns_resolve(name, PST_DNS_PTR,
                                                 conf->timeout,
                                                 dnsbl_ptr_answer, ds))
                      != NULL)
        {
            ds->pending++;
        } else {
            ds->rdns = DNSBL_R_FAILED;
        }
    }

    ds->token = pst_call_defer(call);

    if (--ds->pending == 0) {
        /* nothing could be looked up: decide now (resumes at once) */
        dnsbl_finish(ds);
    }

    return PST_HOOK_PENDING;
}
