/*
 * policy_limits.c -- rates per client address, shared by all workers,
 * and the early-talker test with an optional greeting delay.
 *
 * Rates are token buckets kept in one shared memory zone, so a limit
 * holds whichever worker gets the connection.  A client is its IPv4
 * address, or its IPv6 /64 (limit_ipv6_prefix).  Each event takes one
 * token; a bucket holds at most "burst" tokens (default: the rate's
 * count) and refills continuously at the rate.  When the bucket is
 * empty:
 *   limit_conn_rate   at connect   421 4.7.0, and the session ends
 *   limit_msg_rate    at MAIL      451 4.7.1
 *   limit_rcpt_rate   at RCPT      452 4.5.3 (RFC 5321 4.5.3.1.10: the
 *                                  client retries the rest later)
 * The per-message recipient limit (max_recipients, 452 4.5.3), messages
 * per session (max_messages_per_session) and concurrent connections
 * (max_connections, max_connections_per_ip, 421) are the core's.
 *
 * Early talkers (as Postfix's postscreen): a client that sends before
 * our greeting, or pipelines where RFC 2920 does not allow it (without
 * ESMTP PIPELINING, or past EHLO, DATA, QUIT...), is a bot more often
 * than not.  With greet_delay the greeting waits that long and a client
 * that talks in the meantime is caught at once; without it the core
 * still notices data that arrived before the greeting went out.
 *   early_talker reject      554 5.5.1 greeting (after a greet_delay),
 *                            or 550 5.5.1 for HELO, MAIL, RCPT, DATA
 *   early_talker disconnect  421 4.7.0 and the session ends
 *   early_talker off         (default) only logged
 *
 * Directives:
 *   limit_zone SIZE;                  top level; default 1m (about
 *                                     14,000 client addresses; the
 *                                     least recently seen is evicted)
 *   limit_conn_rate N/PERIOD [burst=B];   PERIOD: s, m, h or a time
 *   limit_msg_rate N/PERIOD [burst=B];    such as 10m ("100/10m")
 *   limit_rcpt_rate N/PERIOD [burst=B];
 *   limit_exempt CIDR ...;            no limits, no early-talker test
 *   limit_ipv6_prefix BITS;           default 64
 *   early_talker off|reject|disconnect;
 *   greet_delay TIME;                 default 0 (off); keep it below
 *                                     smtp_hook_timeout
 *   limit_backend shm|redis;          default shm
 *
 * With limit_backend redis (and redis_server at the top level) the
 * rates are kept in Redis, shared by every node: one GCRA script per
 * event, atomic in Redis, on the key postern:limit:KIND:CLIENT (KIND
 * conn, msg or rcpt; CLIENT the address, an IPv6 one as its /64
 * "2001:db8::/64", escaped by pst_redis_key()).  The local bucket is
 * taken as well, and decides whenever Redis does not answer within
 * redis_timeout (down, slow, too busy): the documented fallback is
 * this node's own limits.
 *
 * Hooks run at priority -100, first of the policy modules: a client
 * over its rate costs nothing else.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "postern_module.h"

#define LIMITS_PRIORITY      -100
#define LIMITS_PROBES        16
#define LIMITS_MILLI         1000          /* tokens in thousandths */

enum {
    LIMITS_CONN = 0,
    LIMITS_MSG,
    LIMITS_RCPT,
    LIMITS_KINDS
};

enum {
    LIMITS_BACKEND_SHM = 0,
    LIMITS_BACKEND_REDIS
};

enum {
    LIMITS_ET_OFF = 0,
    LIMITS_ET_REJECT,
    LIMITS_ET_DISCONNECT
};

typedef struct {
    pst_int_t                    count;       /* 0: no limit */
    pst_msec_t                   period;
    pst_int_t                    burst;
    pst_str_t                    text;        /* as configured */
} limits_rate_t;

typedef struct {
    size_t                       zone_size;
    pst_shm_t                   *zone;
} limits_main_conf_t;

typedef struct {
    limits_rate_t                rate[LIMITS_KINDS];
    pst_array_t                 *exempt;      /* pst_cidr_t */
    pst_int_t                    v6_prefix;
    pst_uint_t                   early_talker;
    pst_msec_t                   greet_delay;
    pst_uint_t                   backend;
    pst_redis_script_t          *script;      /* backend redis */
} limits_conf_t;

/* A rate asked of Redis; the pending call's data. */
typedef struct {
    uint64_t                     token;
    pst_redis_cmd_t             *cmd;         /* NULL once answered */
    const limits_conf_t         *conf;
    int                          kind;
    int                          local_ok;    /* the fallback's verdict */
} limits_req_t;

/* One client address in the zone. */
typedef struct {
    u_char                       key[16];
    pst_msec_t                   used;        /* 0: free slot */
    pst_msec_t                   stamp[LIMITS_KINDS];
    int64_t                      tokens[LIMITS_KINDS];
} limits_entry_t;

typedef struct {
    uint32_t                     nentries;
    uint32_t                     pad;
    limits_entry_t               entries[1];
} limits_zone_t;

static const char  *limits_names[] = {
    "limit_conn_rate", "limit_msg_rate", "limit_rcpt_rate"
};

static const char  *limits_kinds[] = { "conn", "msg", "rcpt" };

static const pst_conf_enum_t  limits_backends[] = {
    { "shm", LIMITS_BACKEND_SHM },
    { "redis", LIMITS_BACKEND_REDIS },
    { NULL, 0 }
};

/*
 * GCRA (the generic cell rate algorithm): one key per client and kind
 * holds the theoretical arrival time TAT in microseconds of Redis's
 * clock, so that the nodes' clocks never matter.  An event is allowed
 * when TAT + interval - burst * interval <= now: burst events at once,
 * then one per interval, the same as a token bucket of burst tokens.
 * ARGV: the interval in microseconds, the burst.  {1, 0} allowed, or
 * {0, ms to wait}.
 */
static const char  limits_gcra_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "local tat = v and tonumber(v) or now\n"
    "if tat < now then tat = now end\n"
    "local new_tat = tat + interval\n"
    "local wait = new_tat - burst * interval - now\n"
    "if wait > 0 then return {0, math.ceil(wait / 1000)} end\n"
    "redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',\n"
    "           math.ceil((new_tat - now) / 1000) + 1)\n"
    "return {1, 0}\n";

static const pst_conf_enum_t  limits_early_talker[] = {
    { "off", LIMITS_ET_OFF },
    { "reject", LIMITS_ET_REJECT },
    { "disconnect", LIMITS_ET_DISCONNECT },
    { NULL, 0 }
};


static void *limits_create_main_conf(pst_conf_t *cf);
static char *limits_init_main_conf(pst_conf_t *cf, void *conf);
static void *limits_create_conf(pst_conf_t *cf);
static char *limits_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *limits_set_rate(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e limits_connect(pst_call_t *call, void *conf);
static pst_verdict_e limits_helo(pst_call_t *call, void *conf);
static pst_verdict_e limits_mail(pst_call_t *call, void *conf);
static pst_verdict_e limits_rcpt(pst_call_t *call, void *conf);
static pst_verdict_e limits_data(pst_call_t *call, void *conf);


static const pst_command_t  limits_commands[] = {
    { "limit_zone", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_size_slot, PST_MAIN_CONF,
      offsetof(limits_main_conf_t, zone_size), NULL },
    { "limit_conn_rate", PST_CONF_ANY_SMTP | PST_CONF_TAKE12,
      limits_set_rate, PST_SRV_CONF,
      offsetof(limits_conf_t, rate) + LIMITS_CONN * sizeof(limits_rate_t),
      NULL },
    { "limit_msg_rate", PST_CONF_ANY_SMTP | PST_CONF_TAKE12,
      limits_set_rate, PST_SRV_CONF,
      offsetof(limits_conf_t, rate) + LIMITS_MSG * sizeof(limits_rate_t),
      NULL },
    { "limit_rcpt_rate", PST_CONF_ANY_SMTP | PST_CONF_TAKE12,
      limits_set_rate, PST_SRV_CONF,
      offsetof(limits_conf_t, rate) + LIMITS_RCPT * sizeof(limits_rate_t),
      NULL },
    { "limit_exempt", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, PST_SRV_CONF,
      offsetof(limits_conf_t, exempt), NULL },
    { "limit_ipv6_prefix", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(limits_conf_t, v6_prefix), NULL },
    { "early_talker", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(limits_conf_t, early_talker), limits_early_talker },
    { "greet_delay", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(limits_conf_t, greet_delay), NULL },
    { "limit_backend", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(limits_conf_t, backend), limits_backends },
    pst_null_command
};

static const pst_hook_t  limits_hooks[] = {
    { PST_PHASE_CONNECT, limits_connect, LIMITS_PRIORITY },
    { PST_PHASE_HELO, limits_helo, LIMITS_PRIORITY },
    { PST_PHASE_MAIL, limits_mail, LIMITS_PRIORITY },
    { PST_PHASE_RCPT, limits_rcpt, LIMITS_PRIORITY },
    { PST_PHASE_DATA, limits_data, LIMITS_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_limits",
    .version = "1.0",
    .description = "shared rate limits per client, early talkers",
    .commands = limits_commands,
    .create_main_conf = limits_create_main_conf,
    .init_main_conf = limits_init_main_conf,
    .create_srv_conf = limits_create_conf,
    .merge_srv_conf = limits_merge_conf,
    .hooks = limits_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
limits_create_main_conf(pst_conf_t *cf)
{
    limits_main_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(limits_main_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->zone_size = PST_CONF_UNSET_SIZE;
    return c;
}


static char *
limits_init_main_conf(pst_conf_t *cf, void *conf)
{
    limits_main_conf_t  *c = conf;
    limits_zone_t       *z;
    size_t               n;

    pst_conf_merge_size_value(c->zone_size, PST_CONF_UNSET_SIZE,
                              1024 * 1024);

    if (c->zone_size < 64 * 1024) {
        return "limit_zone must be at least 64k";
    }

    /* kept over a reload when the size stays: clients keep their rates */
    c->zone = pst_shm_add(cf, "policy_limits", c->zone_size);
    if (c->zone == NULL) {
        return PST_CONF_ERROR;
    }

    if (pst_shm_is_new(c->zone)) {
        z = pst_shm_addr(c->zone);
        n = (pst_shm_size(c->zone) - offsetof(limits_zone_t, entries))
            / sizeof(limits_entry_t);
        memset(z, 0, pst_shm_size(c->zone));
        z->nentries = (uint32_t) n;
    }

    return PST_CONF_OK;
}


static void *
limits_create_conf(pst_conf_t *cf)
{
    limits_conf_t  *c;
    int             k;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(limits_conf_t));
    if (c == NULL) {
        return NULL;
    }
    for (k = 0; k < LIMITS_KINDS; k++) {
        c->rate[k].count = PST_CONF_UNSET;
    }
    c->exempt = PST_CONF_UNSET_PTR;
    c->v6_prefix = PST_CONF_UNSET;
    c->early_talker = PST_CONF_UNSET_UINT;
    c->greet_delay = PST_CONF_UNSET_MSEC;
    c->backend = PST_CONF_UNSET_UINT;
    return c;
}


static char *
limits_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    limits_conf_t  *prev = parent, *conf = child;
    int             k;

    for (k = 0; k < LIMITS_KINDS; k++) {
        if (conf->rate[k].count == PST_CONF_UNSET) {
            conf->rate[k] = prev->rate[k];
        }
        if (conf->rate[k].count == PST_CONF_UNSET) {
            conf->rate[k].count = 0;
        }
    }
    pst_conf_merge_ptr_value(conf->exempt, prev->exempt, NULL);
    pst_conf_merge_value(conf->v6_prefix, prev->v6_prefix, 64);
    pst_conf_merge_uint_value(conf->early_talker, prev->early_talker,
                              LIMITS_ET_OFF);
    pst_conf_merge_msec_value(conf->greet_delay, prev->greet_delay, 0);
    pst_conf_merge_uint_value(conf->backend, prev->backend,
                              LIMITS_BACKEND_SHM);

    if (conf->v6_prefix < 16 || conf->v6_prefix > 128) {
        return "limit_ipv6_prefix must be between 16 and 128";
    }

    if (conf->backend == LIMITS_BACKEND_REDIS) {
        conf->script = prev->script != NULL ? prev->script
                       : pst_redis_script(cf, limits_gcra_lua);
        if (conf->script == NULL) {
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* N/PERIOD [burst=B] */
static char *
limits_set_rate(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    limits_rate_t  *r = (limits_rate_t *) ((u_char *) conf + cmd->offset);
    pst_str_t      *args, num, per, b;
    pst_uint_t      n;
    u_char         *slash;
    int64_t         t;
    char           *end;
    long            v;

    if (r->count != PST_CONF_UNSET) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, &n);

    slash = memchr(args[1].data, '/', args[1].len);
    if (slash == NULL) {
        goto invalid;
    }
    num.data = args[1].data;
    num.len = (size_t) (slash - args[1].data);
    per.data = slash + 1;
    per.len = args[1].len - num.len - 1;

    v = strtol((char *) num.data, &end, 10);
    if (num.len == 0 || (u_char *) end != slash || v < 1 || v > 1000000000) {
        goto invalid;
    }

    if (per.len == 1 && (per.data[0] == 's' || per.data[0] == 'm'
                         || per.data[0] == 'h' || per.data[0] == 'd'))
    {
        t = per.data[0] == 's' ? 1000 : per.data[0] == 'm' ? 60000
            : per.data[0] == 'h' ? 3600000 : 86400000;
    } else {
        t = pst_parse_msec(&per);
    }
    if (t <= 0) {
        goto invalid;
    }

    r->count = v;
    r->period = (pst_msec_t) t;
    r->burst = v;
    r->text = args[1];

    if (n == 3) {
        if (args[2].len < 7 || memcmp(args[2].data, "burst=", 6) != 0) {
            goto invalid;
        }
        b.data = args[2].data + 6;
        b.len = args[2].len - 6;
        v = strtol((char *) b.data, &end, 10);
        if ((u_char *) end != b.data + b.len || v < 1 || v > 1000000000) {
            goto invalid;
        }
        r->burst = v;
    }

    return PST_CONF_OK;

invalid:

    pst_conf_error(cf, "invalid rate \"%s%s%s\" in \"%s\" (use N/s, N/m,"
                   " N/h, N/d or N/TIME, then optionally burst=N)",
                   args[1].data, n == 3 ? " " : "",
                   n == 3 ? (char *) args[2].data : "", cmd->name);
    return PST_CONF_ERROR;
}


/* ------------------------------------------------------------------ */
/* Token buckets                                                       */

static int
limits_exempt(const limits_conf_t *conf, pst_session_t *s)
{
    return pst_cidr_match_list(conf->exempt, pst_session_client_sockaddr(s));
}


static void
limits_key(const limits_conf_t *conf, const struct sockaddr *sa,
    u_char key[16])
{
    const u_char  *a;
    int            bits, i;

    memset(key, 0, 16);

    if (sa->sa_family == AF_INET) {
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        return;
    }

    if (sa->sa_family != AF_INET6) {
        return;
    }

    a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
    if (a[0] == 0 && a[10] == 0xff && a[11] == 0xff
        && memcmp(a, "\0\0\0\0\0\0\0\0\0\0", 10) == 0)
    {
        memcpy(key, a, 16);                /* IPv4-mapped: as IPv4 */
        return;
    }

    bits = (int) conf->v6_prefix;
    for (i = 0; i < 16 && bits > 0; i++, bits -= 8) {
        key[i] = bits >= 8 ? a[i] : (u_char) (a[i] & (0xff << (8 - bits)));
    }
    key[15] ^= 0x5a;             /* never equal to an IPv4-mapped key */
}


static uint32_t
limits_hash(const u_char key[16])
{
    uint32_t  h = 2166136261u;
    int       i;

    for (i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 16777619u;
    }
    return h ^ (h >> 13);
}


/* The client's entry, a free one, or the one least recently used among
 * the probed slots (its client then starts over with full buckets: the
 * zone fails open, never closed). */
static limits_entry_t *
limits_entry(limits_zone_t *z, const u_char key[16], pst_msec_t now)
{
    limits_entry_t  *e, *victim;
    uint32_t         h, i;
    int              k;

    h = limits_hash(key);
    victim = NULL;

    for (i = 0; i < LIMITS_PROBES; i++) {
        e = &z->entries[(h + i) % z->nentries];

        if (e->used != 0 && memcmp(e->key, key, 16) == 0) {
            return e;
        }
        if (victim == NULL || e->used < victim->used) {
            victim = e;
        }
    }

    memcpy(victim->key, key, 16);
    victim->used = now;
    for (k = 0; k < LIMITS_KINDS; k++) {
        victim->stamp[k] = 0;              /* full bucket */
        victim->tokens[k] = 0;
    }

    return victim;
}


/* Take a token: 1 when there was one, 0 when the client is over. */
static int
limits_take(const limits_conf_t *conf, const u_char key[16], int kind)
{
    const limits_rate_t  *r = &conf->rate[kind];
    limits_main_conf_t   *mc;
    limits_entry_t       *e;
    limits_zone_t        *z;
    pst_msec_t            now, elapsed;
    int64_t               cap, add;
    int                   ok;

    mc = pst_module_main_conf(&postern_module);
    if (mc == NULL || mc->zone == NULL) {
        return 1;
    }

    z = pst_shm_addr(mc->zone);
    now = pst_current_msec();
    if (now == 0) {
        now = 1;
    }
    cap = (int64_t) r->burst * LIMITS_MILLI;

    pst_shm_lock(mc->zone);

    e = limits_entry(z, key, now);
    e->used = now;

    if (e->stamp[kind] == 0) {
        e->tokens[kind] = cap;
    } else if (now > e->stamp[kind]) {
        elapsed = now - e->stamp[kind];
        /* tokens regained: count per period, in thousandths */
        add = (int64_t) ((double) elapsed * (double) r->count
                         * LIMITS_MILLI / (double) r->period);
        e->tokens[kind] = e->tokens[kind] + add > cap ? cap
                                                      : e->tokens[kind] + add;
    }
    e->stamp[kind] = now;

    ok = (e->tokens[kind] >= LIMITS_MILLI);
    if (ok) {
        e->tokens[kind] -= LIMITS_MILLI;
    }

    pst_shm_unlock(mc->zone);

    return ok;
}


/* The refusal of a client over its rate, logged; the reply's parts. */
static pst_verdict_e
limits_over_reply(pst_session_t *s, const limits_conf_t *conf, int kind,
    const char *where, int *code, const char **ecode, const char **text)
{
    pst_log_session(s, PST_LOG_NOTICE, "policy_limits: %s %.*s (burst %ld)"
                    " exceeded by %s%s", limits_names[kind],
                    (int) conf->rate[kind].text.len,
                    conf->rate[kind].text.data,
                    (long) conf->rate[kind].burst,
                    pst_session_client_addr(s)->data, where);

    switch (kind) {
    case LIMITS_CONN:
        *code = 421;
        *ecode = "4.7.0";
        *text = "Too many connections from your address, try again later";
        return PST_HOOK_DISCONNECT;
    case LIMITS_MSG:
        *code = 451;
        *ecode = "4.7.1";
        *text = "Message rate limit exceeded, try again later";
        return PST_HOOK_TEMPFAIL;
    default:
        *code = 452;
        *ecode = "4.5.3";
        *text = "Recipient rate limit exceeded, try again later";
        return PST_HOOK_TEMPFAIL;
    }
}


static pst_verdict_e
limits_over(pst_call_t *call, const limits_conf_t *conf, int kind)
{
    const char     *ecode, *text;
    pst_verdict_e   v;
    int             code;

    v = limits_over_reply(pst_call_session(call), conf, kind, "", &code,
                          &ecode, &text);
    pst_call_reply(call, code, ecode, "%s", text);
    return v;
}


/* ------------------------------------------------------------------ */
/* Early talkers                                                       */

static int
limits_talker(pst_session_t *s)
{
    return pst_session_early_talker(s) || pst_session_bad_pipelining(s);
}


static pst_verdict_e
limits_talker_verdict(pst_session_t *s, const limits_conf_t *conf,
    pst_phase_e phase, int *code, const char **ecode, const char **text)
{
    pst_log_session(s, PST_LOG_NOTICE, "policy_limits: early_talker %s:"
                    " %s", conf->early_talker == LIMITS_ET_OFF ? "(off)"
                    : conf->early_talker == LIMITS_ET_REJECT ? "reject"
                    : "disconnect", pst_session_early_talker(s)
                    ? "the client talked before the greeting"
                    : "improper command pipelining");

    if (conf->early_talker == LIMITS_ET_DISCONNECT) {
        *code = 421;
        *ecode = "4.7.0";
        *text = "Protocol error: talking out of turn, closing";
        return PST_HOOK_DISCONNECT;
    }

    *code = phase == PST_PHASE_CONNECT ? 554 : 550;
    *ecode = "5.5.1";
    *text = pst_session_early_talker(s)
            ? "Protocol error: talked before the greeting"
            : "Protocol error: improper command pipelining";
    return PST_HOOK_REJECT;
}


static pst_verdict_e
limits_check_talker(pst_call_t *call, const limits_conf_t *conf)
{
    pst_session_t  *s = pst_call_session(call);
    const char     *ecode, *text;
    pst_verdict_e   v;
    int             code;

    if (!limits_talker(s)) {
        return PST_HOOK_CONTINUE;
    }

    if (conf->early_talker == LIMITS_ET_OFF) {
        /* noted once per session, for an operator deciding to turn the
         * test on */
        if (pst_session_get_ctx(s, &postern_module) == NULL) {
            pst_session_set_ctx(s, &postern_module, s);
            (void) limits_talker_verdict(s, conf, pst_call_phase(call),
                                         &code, &ecode, &text);
        }
        return PST_HOOK_CONTINUE;
    }

    v = limits_talker_verdict(s, conf, pst_call_phase(call), &code, &ecode,
                              &text);
    pst_call_reply(call, code, ecode, "%s", text);
    return v;
}


/* The greeting delay is over: resume the session's connect phase.  The
 * timer holds the token only, never the session, which may be gone;
 * a rate asked of Redis first left its request as the call's data. */
static void
limits_greet_timer(void *data)
{
    uint64_t             token = (uint64_t) (uintptr_t) data;
    const limits_conf_t  *conf;
    pst_session_t        *s;
    const char           *ecode, *text;
    limits_req_t         *req;
    pst_verdict_e         v;
    int                   code;

    s = pst_hook_session(token);
    if (s == NULL) {
        return;                     /* the call's cancel freed req */
    }

    conf = pst_module_srv_conf(s, &postern_module);
    req = pst_hook_data(token);
    v = PST_HOOK_CONTINUE;

    if (conf != NULL && pst_session_early_talker(s)) {
        if (conf->early_talker == LIMITS_ET_OFF) {
            (void) limits_talker_verdict(s, conf, PST_PHASE_CONNECT, &code,
                                         &ecode, &text);
        } else {
            v = limits_talker_verdict(s, conf, PST_PHASE_CONNECT, &code,
                                      &ecode, &text);
        }
    }

    if (v == PST_HOOK_CONTINUE) {
        (void) pst_hook_resume(token, v, 0, NULL, NULL);
    } else {
        (void) pst_hook_resume(token, v, code, ecode, "%s", text);
    }
    free(req);
}


/* Start the greeting delay of a connect call already deferred. */
static int
limits_greet(const limits_conf_t *conf, uint64_t token)
{
    if (sizeof(void *) < sizeof(uint64_t)
        || pst_timer_add(conf->greet_delay, limits_greet_timer,
                         (void *) (uintptr_t) token) == NULL)
    {
        return PST_ERROR;
    }
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Rates in Redis                                                      */

/* "postern:limit:KIND:CLIENT" */
static ssize_t
limits_redis_key(const limits_conf_t *conf, const u_char key[16],
    int kind, char *buf, size_t size)
{
    pst_str_t  part;
    u_char     a[16];
    char       text[INET6_ADDRSTRLEN + 8], name[16];
    size_t     n;

    if (memcmp(key, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
        inet_ntop(AF_INET, key + 12, text, sizeof(text));
    } else {
        memcpy(a, key, 16);
        a[15] ^= 0x5a;                   /* limits_key()'s mark undone */
        inet_ntop(AF_INET6, a, text, sizeof(text));
        n = strlen(text);
        snprintf(text + n, sizeof(text) - n, "/%d", (int) conf->v6_prefix);
    }

    part.data = (u_char *) text;
    part.len = strlen(text);
    snprintf(name, sizeof(name), "limit:%s", limits_kinds[kind]);
    return pst_redis_key(buf, size, name, &part, 1);
}


static void
limits_req_cancel(void *data)
{
    limits_req_t  *req = data;

    pst_redis_cancel(req->cmd);
    free(req);
}


static void
limits_redis_done(void *data, pst_redis_status_e status,
    const pst_redis_reply_t *reply)
{
    limits_req_t   *req = data;
    pst_session_t  *s;
    const char     *ecode, *text, *where;
    pst_verdict_e   v;
    int64_t         allowed;
    int             ok, code;

    req->cmd = NULL;
    s = pst_hook_session(req->token);
    if (s == NULL) {
        free(req);                      /* cannot happen: cancel first */
        return;
    }

    if (status == PST_REDIS_OK
        && pst_redis_reply_integer(pst_redis_reply_element(reply, 0),
                                   &allowed) == PST_OK)
    {
        ok = allowed != 0;
        where = "";
    } else {
        ok = req->local_ok;
        where = " (this node's count: Redis did not answer)";
        pst_log_session(s, PST_LOG_INFO, "policy_limits: %s: Redis %s,"
                        " this node's bucket decides",
                        limits_names[req->kind],
                        status == PST_REDIS_TIMEOUT ? "timed out"
                        : status == PST_REDIS_DOWN ? "went down"
                        : "gave no usable answer");
    }

    if (!ok) {
        v = limits_over_reply(s, req->conf, req->kind, where, &code, &ecode,
                              &text);
        (void) pst_hook_resume(req->token, v, code, ecode, "%s", text);
        free(req);
        return;
    }

    if (req->kind == LIMITS_CONN && req->conf->greet_delay > 0
        && limits_greet(req->conf, req->token) == PST_OK)
    {
        return;                         /* req goes with the greeting */
    }

    (void) pst_hook_resume(req->token, PST_HOOK_CONTINUE, 0, NULL, NULL);
    free(req);
}


/*
 * One event of a rate: the local bucket always (the fallback, and this
 * node's own count), then with limit_backend redis the shared one,
 * which decides when it answers.  PST_HOOK_PENDING while Redis is
 * asked; otherwise the local verdict (CONTINUE: under the rate).
 */
static pst_verdict_e
limits_rate(pst_call_t *call, const limits_conf_t *conf, int kind)
{
    pst_session_t  *s = pst_call_session(call);
    limits_req_t   *req;
    const char     *argv[3];
    size_t          len[3];
    char            rkey[PST_REDIS_KEY_MAX], interval[24], burst[24];
    pst_msec_t      us;
    ssize_t         n;
    u_char          key[16];
    int             ok;

    limits_key(conf, pst_session_client_sockaddr(s), key);
    ok = limits_take(conf, key, kind);

    if (conf->backend != LIMITS_BACKEND_REDIS || !pst_redis_ready()) {
        return ok ? PST_HOOK_CONTINUE : limits_over(call, conf, kind);
    }

    n = limits_redis_key(conf, key, kind, rkey, sizeof(rkey));
    req = calloc(1, sizeof(limits_req_t));
    if (n < 0 || req == NULL) {
        free(req);
        return ok ? PST_HOOK_CONTINUE : limits_over(call, conf, kind);
    }
    req->conf = conf;
    req->kind = kind;
    req->local_ok = ok;

    argv[0] = rkey;
    len[0] = (size_t) n;
    us = conf->rate[kind].period * 1000 / (pst_msec_t) conf->rate[kind].count;
    argv[1] = interval;
    len[1] = (size_t) snprintf(interval, sizeof(interval), "%llu",
                               (unsigned long long) (us ? us : 1));
    argv[2] = burst;
    len[2] = (size_t) snprintf(burst, sizeof(burst), "%ld",
                               (long) conf->rate[kind].burst);

    req->cmd = pst_redis_eval(conf->script, 0, limits_redis_done, req, 1, 3,
                              argv, len);
    if (req->cmd == NULL) {
        free(req);
        return ok ? PST_HOOK_CONTINUE : limits_over(call, conf, kind);
    }

    req->token = pst_call_defer(call);
    pst_call_set_data(call, req);
    pst_call_set_cancel(call, limits_req_cancel);
    return PST_HOOK_PENDING;
}


/* ------------------------------------------------------------------ */
/* Hooks                                                               */

static pst_verdict_e
limits_connect(pst_call_t *call, void *data)
{
    limits_conf_t  *conf = data;
    pst_session_t  *s = pst_call_session(call);
    pst_verdict_e   v;

    if (limits_exempt(conf, s)) {
        return PST_HOOK_CONTINUE;
    }

    if (conf->rate[LIMITS_CONN].count > 0) {
        v = limits_rate(call, conf, LIMITS_CONN);
        if (v != PST_HOOK_CONTINUE) {
            return v;                   /* over, or Redis asked first */
        }
    }

    if (conf->greet_delay == 0
        || limits_greet(conf, pst_call_defer(call)) != PST_OK)
    {
        return PST_HOOK_CONTINUE;           /* no delay then */
    }

    return PST_HOOK_PENDING;
}


static pst_verdict_e
limits_helo(pst_call_t *call, void *data)
{
    limits_conf_t  *conf = data;

    if (limits_exempt(conf, pst_call_session(call))) {
        return PST_HOOK_CONTINUE;
    }
    return limits_check_talker(call, conf);
}


/* MAIL and RCPT: the early-talker test, then one token of the rate. */
static pst_verdict_e
limits_take_for(pst_call_t *call, limits_conf_t *conf, int kind)
{
    pst_session_t  *s = pst_call_session(call);
    pst_verdict_e   v;

    if (limits_exempt(conf, s)) {
        return PST_HOOK_CONTINUE;
    }

    v = limits_check_talker(call, conf);
    if (v != PST_HOOK_CONTINUE) {
        return v;
    }

    if (conf->rate[kind].count > 0) {
        return limits_rate(call, conf, kind);
    }

    return PST_HOOK_CONTINUE;
}


static pst_verdict_e
limits_mail(pst_call_t *call, void *data)
{
    return limits_take_for(call, data, LIMITS_MSG);
}


static pst_verdict_e
limits_rcpt(pst_call_t *call, void *data)
{
    return limits_take_for(call, data, LIMITS_RCPT);
}


static pst_verdict_e
limits_data(pst_call_t *call, void *data)
{
    limits_conf_t  *conf = data;

    if (limits_exempt(conf, pst_call_session(call))) {
        return PST_HOOK_CONTINUE;
    }
    return limits_check_talker(call, conf);
}
