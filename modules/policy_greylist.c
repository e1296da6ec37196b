/*
 * policy_greylist.c -- greylisting (RFC 6647): the first attempt of an
 * unknown (client network, sender, recipient) triplet is refused with a
 * temporary error; a real MTA retries after a while and is let through,
 * most spam software does not retry.
 *
 * A triplet is the client's network (IPv4 /24, IPv6 /64 by default),
 * the sender and the recipient, both compared without case.  At RCPT:
 *   - unknown triplet: remembered, 451 4.7.1 "Greylisted";
 *   - retried before greylist_delay: 451 4.7.1 again (the first-seen
 *     time does not move);
 *   - retried after the delay, within greylist_retry_window: passed,
 *     and from then on accepted at once until it goes unused for
 *     greylist_expire;
 *   - retried after the window: starts over.
 * Authenticated clients and greylist_exempt networks are never
 * greylisted.
 *
 * The triplets live in a shared memory zone (one table for all
 * workers, so a retry may reach any worker) and survive restarts: the
 * first worker to start loads greylist_file into an empty zone, and
 * the workers write the table back every greylist_save_interval (from
 * a helper thread: write, fsync, rename) and when they exit.  A reload
 * that keeps the zone's size keeps the table in memory.
 *
 * Directives:
 *   greylist on|off;                (smtp/server, default on)
 *   greylist_delay TIME;            default 5m
 *   greylist_retry_window TIME;     default 2d
 *   greylist_expire TIME;           default 35d
 *   greylist_exempt CIDR ...;
 *   greylist_ipv4_prefix BITS;      default 24
 *   greylist_ipv6_prefix BITS;      default 64
 *   greylist_zone SIZE;             top level, default 4m (about
 *                                   170,000 triplets; the oldest go
 *                                   first when it is full)
 *   greylist_file PATH;             top level, default
 *                                   SPOOL_DIR/greylist.db
 *   greylist_save_interval TIME;    top level, default 1m
 *   greylist_backend shm|redis;     default shm
 *   greylist_redis_fallback pass|tempfail;   default pass
 *
 * With greylist_backend redis (and redis_server at the top level) the
 * triplets live in Redis, shared by every node, as the key
 * postern:grey:NETWORK:SENDER:RECIPIENT (lowercased, escaped by
 * pst_redis_key()): one Lua script sets it with SET NX PX (first
 * seen, expiring after greylist_retry_window) and turns it into the
 * pass state after greylist_delay (expiring after greylist_expire
 * unused).  When Redis does not answer within redis_timeout (down,
 * slow, too busy) greylist_redis_fallback decides: pass (no
 * greylisting meanwhile) or tempfail (451 for everyone not exempt).
 *
 * Hook priority 50: after the checks that refuse for good (access
 * rules, unknown users...) -- greylisting a message that will be
 * refused anyway only delays the refusal -- and before policy_relay's
 * final ACCEPT.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "postern_module.h"

#define GREY_PRIORITY        50
#define GREY_PROBES          32
#define GREY_MAGIC           "PSTGREY1"
#define GREY_VERSION         1
#define GREY_KEY_MAX         2048

enum {
    GREY_BACKEND_SHM = 0,
    GREY_BACKEND_REDIS
};

enum {
    GREY_FALLBACK_PASS = 0,
    GREY_FALLBACK_TEMPFAIL
};

typedef struct {
    uint64_t                     key;         /* 0: free */
    uint32_t                     first;       /* seconds (time_t) */
    uint32_t                     last;
    uint32_t                     passed;
    uint32_t                     count;       /* attempts */
} grey_entry_t;

typedef struct {
    uint32_t                     nentries;
    uint32_t                     loaded;
    int64_t                      last_save;
    grey_entry_t                 entries[1];
} grey_zone_t;

/* The file: this header, then count entries. */
typedef struct {
    char                         magic[8];
    uint32_t                     version;
    uint32_t                     entry_size;
    uint64_t                     count;
} grey_file_t;

typedef struct {
    size_t                       zone_size;
    pst_str_t                    file;
    pst_msec_t                   save_interval;
    pst_shm_t                   *zone;
} grey_main_conf_t;

typedef struct {
    pst_int_t                    enable;
    pst_msec_t                   delay;
    pst_msec_t                   window;
    pst_msec_t                   expire;
    pst_array_t                 *exempt;      /* pst_cidr_t */
    pst_int_t                    v4_prefix;
    pst_int_t                    v6_prefix;
    pst_uint_t                   backend;
    pst_uint_t                   fallback;
    pst_redis_script_t          *script;      /* backend redis */
} grey_conf_t;

/* A triplet asked of Redis; the pending call's data. */
typedef struct {
    uint64_t                     token;
    pst_redis_cmd_t             *cmd;         /* NULL once answered */
    const grey_conf_t           *conf;
    char                         key[1];      /* the key, for the log */
} grey_req_t;

static const pst_conf_enum_t  grey_backends[] = {
    { "shm", GREY_BACKEND_SHM },
    { "redis", GREY_BACKEND_REDIS },
    { NULL, 0 }
};

static const pst_conf_enum_t  grey_fallbacks[] = {
    { "pass", GREY_FALLBACK_PASS },
    { "tempfail", GREY_FALLBACK_TEMPFAIL },
    { NULL, 0 }
};

/*
 * The triplet's state in one key, on Redis's clock (milliseconds):
 * "w:FIRST" waiting (PX greylist_retry_window from the first attempt,
 * set with NX so that two nodes seeing the first attempt at once agree),
 * "p:FIRST" passed (PX greylist_expire, renewed at each use).  ARGV:
 * delay, window, expire (ms).  {pass, ms (age if passed, else left to
 * wait), known}.
 */
static const char  grey_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local delay = tonumber(ARGV[1])\n"
    "local nowtext = string.format('%d', now)\n"
    "if redis.call('SET', KEYS[1], 'w:' .. nowtext, 'NX', 'PX', ARGV[2])"
    " then\n"
    "  return {0, delay, 0}\n"
    "end\n"
    "local v = redis.call('GET', KEYS[1])\n"
    "local first = tonumber(string.sub(v, 3)) or now\n"
    "local age = now - first\n"
    "if string.sub(v, 1, 2) == 'p:' then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "  return {1, age, 1}\n"
    "end\n"
    "if age >= delay then\n"
    "  redis.call('SET', KEYS[1], 'p:' .. string.sub(v, 3), 'PX', ARGV[3])\n"
    "  return {1, age, 1}\n"
    "end\n"
    "return {0, delay - age, 1}\n";

/* The saving machinery of this worker (process state, not config). */
typedef struct {
    grey_main_conf_t            *conf;
    char                         path[4096];
    pthread_t                    thread;
    int                          running;     /* a save thread exists */
    volatile int                 done;        /* ... and has finished */
    grey_entry_t                *snapshot;
    size_t                       nsnapshot;
    int                          rc;          /* of the last save */
    pst_timer_t                 *timer;       /* the next save */
} grey_saver_t;

static grey_saver_t  grey_saver;


static void *grey_create_main_conf(pst_conf_t *cf);
static char *grey_init_main_conf(pst_conf_t *cf, void *conf);
static void *grey_create_conf(pst_conf_t *cf);
static char *grey_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static int grey_init_process(pst_cycle_t *cycle, pst_proc_e type,
    void *conf);
static void grey_exit_process(pst_cycle_t *cycle, void *conf);
static pst_verdict_e grey_rcpt(pst_call_t *call, void *conf);
static char *grey_set_file(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);


static const pst_command_t  grey_commands[] = {
    { "greylist", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, enable), NULL },
    { "greylist_delay", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, delay), NULL },
    { "greylist_retry_window", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, window), NULL },
    { "greylist_expire", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, expire), NULL },
    { "greylist_exempt", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, exempt), NULL },
    { "greylist_ipv4_prefix", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, v4_prefix), NULL },
    { "greylist_ipv6_prefix", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, v6_prefix), NULL },
    { "greylist_zone", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_size_slot, PST_MAIN_CONF,
      offsetof(grey_main_conf_t, zone_size), NULL },
    { "greylist_file", PST_CONF_MAIN | PST_CONF_TAKE1,
      grey_set_file, PST_MAIN_CONF,
      offsetof(grey_main_conf_t, file), NULL },
    { "greylist_save_interval", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF,
      offsetof(grey_main_conf_t, save_interval), NULL },
    { "greylist_backend", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, backend), grey_backends },
    { "greylist_redis_fallback", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_SRV_CONF,
      offsetof(grey_conf_t, fallback), grey_fallbacks },
    pst_null_command
};

static const pst_hook_t  grey_hooks[] = {
    { PST_PHASE_RCPT, grey_rcpt, GREY_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_greylist",
    .version = "1.0",
    .description = "greylisting with a shared, persistent triplet table",
    .commands = grey_commands,
    .create_main_conf = grey_create_main_conf,
    .init_main_conf = grey_init_main_conf,
    .create_srv_conf = grey_create_conf,
    .merge_srv_conf = grey_merge_conf,
    .init_process = grey_init_process,
    .exit_process = grey_exit_process,
    .hooks = grey_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

/* The workers load the file and save it (a temporary file renamed in
 * its directory): postern -t checks that they can (the default, in the
 * spool, is checked with the spool). */
static char *
grey_set_file(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    grey_main_conf_t  *mc = conf;
    pst_str_t          dir;
    char              *rv;

    rv = pst_conf_set_path_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    dir = mc->file;
    while (dir.len > 0 && dir.data[dir.len - 1] != '/') {
        dir.len--;
    }
    if (dir.len > 1) {
        dir.len--;                      /* "/a/b/file" -> "/a/b" */
    }

    if (pst_conf_worker_path(cf, &mc->file, R_OK, "greylist_file")
           != PST_OK
        || (dir.len > 0
            && pst_conf_worker_path(cf, &dir, W_OK | X_OK,
                                    "greylist_file's directory") != PST_OK))
    {
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


static void *
grey_create_main_conf(pst_conf_t *cf)
{
    grey_main_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(grey_main_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->zone_size = PST_CONF_UNSET_SIZE;
    c->save_interval = PST_CONF_UNSET_MSEC;
    return c;
}


static char *
grey_init_main_conf(pst_conf_t *cf, void *conf)
{
    grey_main_conf_t  *c = conf;
    grey_zone_t       *z;

    pst_conf_merge_size_value(c->zone_size, PST_CONF_UNSET_SIZE,
                              4 * 1024 * 1024);
    pst_conf_merge_msec_value(c->save_interval, PST_CONF_UNSET_MSEC, 60000);

    if (c->zone_size < 64 * 1024) {
        return "greylist_zone must be at least 64k";
    }
    if (c->save_interval < 1000) {
        return "greylist_save_interval must be at least 1s";
    }

    c->zone = pst_shm_add(cf, "policy_greylist", c->zone_size);
    if (c->zone == NULL) {
        return PST_CONF_ERROR;
    }

    if (pst_shm_is_new(c->zone)) {
        z = pst_shm_addr(c->zone);
        memset(z, 0, pst_shm_size(c->zone));
        z->nentries = (uint32_t) ((pst_shm_size(c->zone)
                                   - offsetof(grey_zone_t, entries))
                                  / sizeof(grey_entry_t));
    }

    return PST_CONF_OK;
}


static void *
grey_create_conf(pst_conf_t *cf)
{
    grey_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(grey_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->enable = PST_CONF_UNSET;
    c->delay = PST_CONF_UNSET_MSEC;
    c->window = PST_CONF_UNSET_MSEC;
    c->expire = PST_CONF_UNSET_MSEC;
    c->exempt = PST_CONF_UNSET_PTR;
    c->v4_prefix = PST_CONF_UNSET;
    c->v6_prefix = PST_CONF_UNSET;
    c->backend = PST_CONF_UNSET_UINT;
    c->fallback = PST_CONF_UNSET_UINT;
    return c;
}


static char *
grey_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    grey_conf_t  *prev = parent, *conf = child;

    pst_conf_merge_value(conf->enable, prev->enable, 1);
    pst_conf_merge_msec_value(conf->delay, prev->delay, 5 * 60 * 1000);
    pst_conf_merge_msec_value(conf->window, prev->window,
                              2 * 86400 * 1000ULL);
    pst_conf_merge_msec_value(conf->expire, prev->expire,
                              35 * 86400 * 1000ULL);
    pst_conf_merge_ptr_value(conf->exempt, prev->exempt, NULL);
    pst_conf_merge_value(conf->v4_prefix, prev->v4_prefix, 24);
    pst_conf_merge_value(conf->v6_prefix, prev->v6_prefix, 64);
    pst_conf_merge_uint_value(conf->backend, prev->backend,
                              GREY_BACKEND_SHM);
    pst_conf_merge_uint_value(conf->fallback, prev->fallback,
                              GREY_FALLBACK_PASS);

    if (conf->backend == GREY_BACKEND_REDIS && conf->enable) {
        conf->script = prev->script != NULL ? prev->script
                       : pst_redis_script(cf, grey_lua);
        if (conf->script == NULL) {
            return PST_CONF_ERROR;
        }
    }

    if (conf->delay < 1000 || conf->window <= conf->delay) {
        return "greylist_delay must be at least 1s and shorter than"
               " greylist_retry_window";
    }
    if (conf->v4_prefix < 8 || conf->v4_prefix > 32
        || conf->v6_prefix < 16 || conf->v6_prefix > 128)
    {
        return "greylist_ipv4_prefix must be 8..32, greylist_ipv6_prefix"
               " 16..128";
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* The table                                                           */

static uint64_t
grey_fnv(uint64_t h, const u_char *p, size_t n, int fold)
{
    size_t  i;
    u_char  c;

    for (i = 0; i < n; i++) {
        c = p[i];
        if (fold && c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }
        h = (h ^ c) * 1099511628211ULL;
    }
    return h;
}


static uint64_t
grey_key(const grey_conf_t *conf, pst_session_t *s, const pst_str_t *from,
    const pst_str_t *rcpt)
{
    const struct sockaddr  *sa = pst_session_client_sockaddr(s);
    const u_char           *a;
    u_char                  net[17];
    uint64_t                h;
    int                     bits, i, len;

    memset(net, 0, sizeof(net));

    if (sa->sa_family == AF_INET) {
        a = (const u_char *) &((const struct sockaddr_in *) sa)->sin_addr;
        bits = (int) conf->v4_prefix;
        len = 4;
        net[16] = 4;
    } else {
        a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        bits = (int) conf->v6_prefix;
        len = 16;
        net[16] = 6;
    }

    for (i = 0; i < len && bits > 0; i++, bits -= 8) {
        net[i] = bits >= 8 ? a[i] : (u_char) (a[i] & (0xff << (8 - bits)));
    }

    h = 14695981039346656037ULL;
    h = grey_fnv(h, net, sizeof(net), 0);
    h = grey_fnv(h, from->data, from->len, 1);
    h = grey_fnv(h, (const u_char *) "\0", 1, 0);
    h = grey_fnv(h, rcpt->data, rcpt->len, 1);

    return h ? h : 1;
}


/* The entry of key; else a free or stale slot, else the least recently
 * used of the probed ones, cleared.  Called with the zone locked. */
static grey_entry_t *
grey_find(grey_zone_t *z, uint64_t key, uint32_t now, uint32_t expire,
    uint32_t window, int *found)
{
    grey_entry_t  *e, *stale, *lru;
    uint32_t       i;

    stale = NULL;
    lru = NULL;
    *found = 0;

    for (i = 0; i < GREY_PROBES; i++) {
        e = &z->entries[(key + (uint64_t) i * 0x9e3779b1u) % z->nentries];

        if (e->key == key) {
            *found = 1;
            return e;
        }

        if (e->key == 0 || (e->passed && now - e->last > expire)
            || (!e->passed && now - e->first > window))
        {
            if (stale == NULL) {
                stale = e;
            }
            continue;
        }

        if (lru == NULL || e->last < lru->last) {
            lru = e;
        }
    }

    e = stale ? stale : lru;
    memset(e, 0, sizeof(grey_entry_t));
    e->key = key;
    return e;
}


static int
grey_exempt(const grey_conf_t *conf, pst_session_t *s)
{
    return pst_session_auth_id(s) != NULL
           || pst_cidr_match_list(conf->exempt,
                                  pst_session_client_sockaddr(s));
}


/* ------------------------------------------------------------------ */
/* Triplets in Redis                                                   */

/* "postern:grey:192.0.2.0/24:sender@a.example:rcpt@b.example" */
static ssize_t
grey_redis_key(const grey_conf_t *conf, pst_session_t *s,
    const pst_str_t *from, const pst_str_t *rcpt, char *buf, size_t size)
{
    const struct sockaddr  *sa = pst_session_client_sockaddr(s);
    pst_str_t               parts[3];
    u_char                  a[16], low[2][600];
    char                    net[INET6_ADDRSTRLEN + 8];
    size_t                  i, k, n;
    int                     bits, len, family;

    memset(a, 0, sizeof(a));
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        family = AF_INET;
        bits = (int) conf->v4_prefix;
        len = 4;
    } else {
        memcpy(a, ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr, 16);
        family = AF_INET6;
        bits = (int) conf->v6_prefix;
        len = 16;
    }
    for (i = 0; i < (size_t) len; i++, bits -= 8) {
        a[i] = bits >= 8 ? a[i] : bits > 0
               ? (u_char) (a[i] & (0xff << (8 - bits))) : 0;
    }
    inet_ntop(family, a, net, sizeof(net));
    n = strlen(net);
    snprintf(net + n, sizeof(net) - n, "/%d", family == AF_INET
             ? (int) conf->v4_prefix : (int) conf->v6_prefix);

    parts[0].data = (u_char *) net;
    parts[0].len = strlen(net);
    for (k = 0; k < 2; k++) {
        const pst_str_t  *addr = k == 0 ? from : rcpt;

        if (addr->len > sizeof(low[k])) {
            return -1;
        }
        for (i = 0; i < addr->len; i++) {
            low[k][i] = (addr->data[i] >= 'A' && addr->data[i] <= 'Z')
                        ? (u_char) (addr->data[i] | 0x20) : addr->data[i];
        }
        parts[k + 1].data = low[k];
        parts[k + 1].len = addr->len;
    }

    return pst_redis_key(buf, size, "grey", parts, 3);
}


/* Redis did not answer: greylist_redis_fallback decides. */
static pst_verdict_e
grey_fallback(const grey_conf_t *conf, pst_session_t *s, const char *why,
    int *code, const char **ecode, const char **text)
{
    pst_log_session(s, conf->fallback == GREY_FALLBACK_PASS ? PST_LOG_INFO
                    : PST_LOG_NOTICE, "policy_greylist: %s: %s"
                    " (greylist_redis_fallback)", why,
                    conf->fallback == GREY_FALLBACK_PASS ? "pass"
                    : "tempfail");

    if (conf->fallback == GREY_FALLBACK_PASS) {
        return PST_HOOK_CONTINUE;
    }
    *code = 451;
    *ecode = "4.7.1";
    *text = "Greylisted, please try again later";
    return PST_HOOK_TEMPFAIL;
}


static void
grey_req_cancel(void *data)
{
    grey_req_t  *req = data;

    pst_redis_cancel(req->cmd);
    free(req);
}


static void
grey_redis_done(void *data, pst_redis_status_e status,
    const pst_redis_reply_t *reply)
{
    grey_req_t     *req = data;
    pst_session_t  *s;
    const char     *ecode = NULL, *text = NULL;
    pst_verdict_e   v;
    int64_t         pass, ms, known;
    int             code = 0;

    req->cmd = NULL;
    s = pst_hook_session(req->token);
    if (s == NULL) {
        free(req);                      /* cannot happen: cancel first */
        return;
    }

    if (status != PST_REDIS_OK
        || pst_redis_reply_integer(pst_redis_reply_element(reply, 0), &pass)
           != PST_OK
        || pst_redis_reply_integer(pst_redis_reply_element(reply, 1), &ms)
           != PST_OK
        || pst_redis_reply_integer(pst_redis_reply_element(reply, 2),
                                   &known) != PST_OK)
    {
        v = grey_fallback(req->conf, s, status == PST_REDIS_TIMEOUT
                          ? "Redis timed out" : status == PST_REDIS_DOWN
                          ? "Redis went down" : "Redis gave no usable"
                          " answer", &code, &ecode, &text);

    } else if (pass) {
        pst_log_session(s, PST_LOG_INFO, "policy_greylist: pass %s: triplet"
                        " known since %llds", req->key,
                        (long long) (ms / 1000));
        v = PST_HOOK_CONTINUE;

    } else {
        pst_log_session(s, PST_LOG_NOTICE, "policy_greylist: tempfail %s:"
                        " %s triplet, retry in %llds", req->key,
                        known ? "early retry of a" : "new",
                        (long long) ((ms + 999) / 1000));
        (void) pst_hook_resume(req->token, PST_HOOK_TEMPFAIL, 451, "4.7.1",
                               "Greylisted, please try again in %lld"
                               " seconds", (long long) ((ms + 999) / 1000));
        free(req);
        return;
    }

    if (v == PST_HOOK_CONTINUE) {
        (void) pst_hook_resume(req->token, v, 0, NULL, NULL);
    } else {
        (void) pst_hook_resume(req->token, v, code, ecode, "%s", text);
    }
    free(req);
}


static pst_verdict_e
grey_redis(pst_call_t *call, const grey_conf_t *conf, const pst_str_t *from,
    const pst_str_t *rcpt)
{
    pst_session_t  *s = pst_call_session(call);
    grey_req_t     *req;
    const char     *argv[4], *ecode, *text;
    size_t          len[4];
    char            key[GREY_KEY_MAX], num[3][24];
    ssize_t         n;
    pst_verdict_e   v;
    int             code, i;

    n = grey_redis_key(conf, s, from, rcpt, key, sizeof(key));
    req = n < 0 ? NULL : malloc(sizeof(grey_req_t) + (size_t) n);
    if (req == NULL || !pst_redis_ready()) {
        free(req);
        v = grey_fallback(conf, s, n < 0 ? "addresses too long for a key"
                          : "Redis unavailable", &code, &ecode, &text);
        if (v != PST_HOOK_CONTINUE) {
            pst_call_reply(call, code, ecode, "%s", text);
        }
        return v;
    }

    memcpy(req->key, key, (size_t) n + 1);
    req->conf = conf;
    argv[0] = req->key;
    len[0] = (size_t) n;
    for (i = 0; i < 3; i++) {
        argv[i + 1] = num[i];
        len[i + 1] = (size_t) snprintf(num[i], sizeof(num[i]), "%llu",
                                       (unsigned long long)
                                       (i == 0 ? conf->delay : i == 1
                                        ? conf->window : conf->expire));
    }

    req->cmd = pst_redis_eval(conf->script, 0, grey_redis_done, req, 1, 4,
                              argv, len);
    if (req->cmd == NULL) {
        free(req);
        v = grey_fallback(conf, s, "Redis unavailable", &code, &ecode,
                          &text);
        if (v != PST_HOOK_CONTINUE) {
            pst_call_reply(call, code, ecode, "%s", text);
        }
        return v;
    }

    req->token = pst_call_defer(call);
    pst_call_set_data(call, req);
    pst_call_set_cancel(call, grey_req_cancel);
    return PST_HOOK_PENDING;
}


static pst_verdict_e
grey_rcpt(pst_call_t *call, void *data)
{
    grey_conf_t       *conf = data;
    pst_session_t     *s = pst_call_session(call);
    grey_main_conf_t  *mc;
    const pst_str_t   *from, *rcpt;
    grey_entry_t      *e;
    grey_zone_t       *z;
    uint64_t           key;
    uint32_t           now, delay, window, expire, age, first;
    int                found, pass;

    if (!conf->enable || grey_exempt(conf, s)) {
        return PST_HOOK_CONTINUE;
    }

    mc = pst_module_main_conf(&postern_module);
    rcpt = pst_call_rcpt(call);
    from = pst_tx_sender(s);
    if (mc == NULL || mc->zone == NULL || rcpt == NULL || from == NULL) {
        return PST_HOOK_CONTINUE;
    }

    if (conf->backend == GREY_BACKEND_REDIS) {
        return grey_redis(call, conf, from, rcpt);
    }

    z = pst_shm_addr(mc->zone);
    key = grey_key(conf, s, from, rcpt);
    now = (uint32_t) pst_current_time();
    delay = (uint32_t) (conf->delay / 1000);
    window = (uint32_t) (conf->window / 1000);
    expire = (uint32_t) (conf->expire / 1000);

    pst_shm_lock(mc->zone);

    e = grey_find(z, key, now, expire, window, &found);

    if (found && e->passed && now - e->last > expire) {
        found = 0;                         /* forgotten: start over */
    }
    if (found && !e->passed && now - e->first > window) {
        found = 0;                         /* retried too late */
    }

    if (!found) {
        e->key = key;
        e->first = now;
        e->passed = 0;
        e->count = 0;
    }

    e->count++;
    e->last = now;
    age = now - e->first;
    first = e->first;
    pass = e->passed || (found && age >= delay);
    if (pass) {
        e->passed = 1;
    }

    pst_shm_unlock(mc->zone);

    if (pass) {
        pst_log_session(s, PST_LOG_INFO, "policy_greylist: pass <%.*s> ->"
                        " <%.*s>: triplet known since %lus",
                        (int) from->len, from->data, (int) rcpt->len,
                        rcpt->data, (unsigned long) (now - first));
        return PST_HOOK_CONTINUE;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_greylist: tempfail <%.*s> ->"
                    " <%.*s>: %s triplet, retry in %lus", (int) from->len,
                    from->data, (int) rcpt->len, rcpt->data,
                    found ? "early retry of a" : "new",
                    (unsigned long) (delay - age));
    pst_call_reply(call, 451, "4.7.1", "Greylisted, please try again in %lu"
                   " seconds", (unsigned long) (delay - age));
    return PST_HOOK_TEMPFAIL;
}


/* ------------------------------------------------------------------ */
/* Persistence                                                         */

/* Write entries to path: a temporary file, fsync, rename.  Runs in the
 * save thread or, at exit, in the worker itself. */
static int
grey_write(const char *path, const grey_entry_t *e, size_t n)
{
    grey_file_t  hdr;
    char         tmp[4200];
    size_t       len, off;
    ssize_t      w;
    const u_char *p;
    int          fd, rc, part;

    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int) getpid());

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        return errno;
    }

    memset(&hdr, 0, sizeof(hdr));
    memcpy(hdr.magic, GREY_MAGIC, 8);
    hdr.version = GREY_VERSION;
    hdr.entry_size = sizeof(grey_entry_t);
    hdr.count = n;

    rc = 0;
    for (part = 0; part < 2 && rc == 0; part++) {
        p = part == 0 ? (const u_char *) &hdr : (const u_char *) e;
        len = part == 0 ? sizeof(hdr) : n * sizeof(grey_entry_t);
        for (off = 0; off < len; off += (size_t) w) {
            w = write(fd, p + off, len - off);
            if (w == -1) {
                if (errno == EINTR) {
                    w = 0;
                    continue;
                }
                rc = errno;
                break;
            }
        }
    }

    if (rc == 0 && fsync(fd) == -1) {
        rc = errno;
    }
    if (close(fd) == -1 && rc == 0) {
        rc = errno;
    }
    if (rc == 0 && rename(tmp, path) == -1) {
        rc = errno;
    }
    if (rc != 0) {
        (void) unlink(tmp);
    }

    return rc;
}


/* Copy the live entries out of the zone (short: memory only). */
static grey_entry_t *
grey_snapshot(grey_main_conf_t *mc, size_t *n)
{
    grey_zone_t   *z = pst_shm_addr(mc->zone);
    grey_entry_t  *copy;
    uint32_t       i;
    size_t         k;

    copy = malloc((size_t) z->nentries * sizeof(grey_entry_t));
    if (copy == NULL) {
        return NULL;
    }

    k = 0;
    pst_shm_lock(mc->zone);
    for (i = 0; i < z->nentries; i++) {
        if (z->entries[i].key != 0) {
            copy[k++] = z->entries[i];
        }
    }
    pst_shm_unlock(mc->zone);

    *n = k;
    return copy;
}


static void *
grey_save_thread(void *arg)
{
    grey_saver_t  *sv = arg;

    /* no logging from here: the worker reports the result */
    sv->rc = grey_write(sv->path, sv->snapshot, sv->nsnapshot);
    free(sv->snapshot);
    sv->snapshot = NULL;
    __atomic_store_n(&sv->done, 1, __ATOMIC_RELEASE);
    return NULL;
}


static void
grey_reap(grey_saver_t *sv)
{
    if (sv->running) {
        pthread_join(sv->thread, NULL);
        sv->running = 0;
        if (sv->rc != 0) {
            pst_log(PST_LOG_ERR, sv->rc, "policy_greylist: cannot save"
                    " \"%s\"", sv->path);
        }
    }
}


static void
grey_save_timer(void *data)
{
    grey_saver_t      *sv = data;
    grey_main_conf_t  *mc = sv->conf;
    grey_zone_t       *z = pst_shm_addr(mc->zone);
    int64_t            now;
    int                mine;

    if (sv->running && __atomic_load_n(&sv->done, __ATOMIC_ACQUIRE)) {
        grey_reap(sv);
    }

    /* one worker per interval writes the file: claim the turn */
    now = (int64_t) pst_current_msec();
    pst_shm_lock(mc->zone);
    mine = (z->last_save == 0
            || now - z->last_save >= (int64_t) mc->save_interval * 9 / 10);
    if (mine) {
        z->last_save = now;
    }
    pst_shm_unlock(mc->zone);

    if (mine && !sv->running) {
        sv->snapshot = grey_snapshot(mc, &sv->nsnapshot);
        if (sv->snapshot != NULL) {
            sv->done = 0;
            if (pthread_create(&sv->thread, NULL, grey_save_thread, sv)
                == 0)
            {
                sv->running = 1;
            } else {
                free(sv->snapshot);
                sv->snapshot = NULL;
            }
        }
    }

    sv->timer = pst_timer_add(mc->save_interval, grey_save_timer, sv);
}


/* Read the file into an empty zone (the first worker to start). */
static void
grey_load(grey_main_conf_t *mc, const char *path)
{
    grey_zone_t   *z = pst_shm_addr(mc->zone);
    grey_file_t    hdr;
    grey_entry_t  *buf, *e;
    struct stat    st;
    uint32_t       now, i;
    size_t         n, k;
    ssize_t        r;
    int            fd, found;

    if (z->loaded) {
        return;                      /* unlocked peek: the lock decides */
    }

    buf = NULL;
    n = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno != ENOENT) {
            pst_log(PST_LOG_ERR, errno, "policy_greylist: cannot open"
                    " \"%s\"", path);
        }
    } else if (fstat(fd, &st) == -1
               || read(fd, &hdr, sizeof(hdr)) != (ssize_t) sizeof(hdr)
               || memcmp(hdr.magic, GREY_MAGIC, 8) != 0
               || hdr.version != GREY_VERSION
               || hdr.entry_size != sizeof(grey_entry_t)
               || hdr.count > (uint64_t) z->nentries * 4
               || (off_t) (sizeof(hdr) + hdr.count * sizeof(grey_entry_t))
                  != st.st_size)
    {
        pst_log(PST_LOG_ERR, 0, "policy_greylist: \"%s\" is not a greylist"
                " table of this version: ignored", path);
    } else {
        n = (size_t) hdr.count;
        buf = malloc(n * sizeof(grey_entry_t) + 1);
        if (buf != NULL) {
            for (k = 0; k < n * sizeof(grey_entry_t); k += (size_t) r) {
                r = read(fd, (u_char *) buf + k, n * sizeof(grey_entry_t)
                                                  - k);
                if (r <= 0) {
                    free(buf);
                    buf = NULL;
                    n = 0;
                    break;
                }
            }
        }
    }
    if (fd != -1) {
        close(fd);
    }

    now = (uint32_t) pst_current_time();

    pst_shm_lock(mc->zone);
    if (!z->loaded) {
        z->loaded = 1;
        for (i = 0; buf != NULL && i < n; i++) {
            if (buf[i].key == 0) {
                continue;
            }
            /* no expiry known here: keep all, the lookups age them */
            e = grey_find(z, buf[i].key, now, UINT32_MAX, UINT32_MAX,
                          &found);
            *e = buf[i];
        }
        if (buf != NULL) {
            pst_log(PST_LOG_NOTICE, 0, "policy_greylist: %lu triplet(s)"
                    " loaded from \"%s\"", (unsigned long) n, path);
        }
    }
    pst_shm_unlock(mc->zone);

    free(buf);
}


static int
grey_init_process(pst_cycle_t *cycle, pst_proc_e type, void *conf)
{
    grey_main_conf_t  *mc = conf;
    grey_saver_t      *sv = &grey_saver;
    const pst_str_t   *dir;

    (void) cycle;

    if ((type != PST_PROC_WORKER && type != PST_PROC_SINGLE)
        || mc->zone == NULL)
    {
        return PST_OK;
    }

    memset(sv, 0, sizeof(grey_saver_t));
    sv->conf = mc;

    if (mc->file.len > 0) {
        snprintf(sv->path, sizeof(sv->path), "%.*s", (int) mc->file.len,
                 mc->file.data);
    } else {
        dir = pst_spool_dir();
        if (dir == NULL) {
            return PST_ERROR;
        }
        snprintf(sv->path, sizeof(sv->path), "%.*s/greylist.db",
                 (int) dir->len, dir->data);
    }

    grey_load(mc, sv->path);

    sv->timer = pst_timer_add(mc->save_interval, grey_save_timer, sv);
    if (sv->timer == NULL) {
        return PST_ERROR;
    }

    return PST_OK;
}


static void
grey_exit_process(pst_cycle_t *cycle, void *conf)
{
    grey_main_conf_t  *mc = conf;
    grey_saver_t      *sv = &grey_saver;
    grey_entry_t      *snap;
    size_t             n;
    int                rc;

    (void) cycle;

    if (sv->conf == NULL || mc->zone == NULL) {
        return;
    }

    /* a process that goes on after this (libpostern-test's next
     * harness) keeps no timer of ours */
    if (sv->timer != NULL) {
        pst_timer_cancel(sv->timer);
        sv->timer = NULL;
    }
    grey_reap(sv);

    /* every exiting worker writes: the table is shared, so the last
     * one to go leaves the most recent state */
    snap = grey_snapshot(mc, &n);
    if (snap == NULL) {
        return;
    }
    rc = grey_write(sv->path, snap, n);
    if (rc != 0) {
        pst_log(PST_LOG_ERR, rc, "policy_greylist: cannot save \"%s\"",
                sv->path);
    }
    free(snap);
    sv->conf = NULL;
}
