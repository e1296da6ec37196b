/*
 * pst_smtp_auth.c -- SMTP AUTH (RFC 4954): the built-in "smtp_auth"
 * module, the SASL exchange on the wire, PLAIN (RFC 4616) and LOGIN
 * decoding, the backend API of postern_module.h, and the brute-force
 * limits.
 *
 * The core owns the wire: "AUTH mech [initial-response]", 334
 * challenges, base64, "*" to cancel, line limits, the replies and
 * their enhanced codes.  Backends are hooks on PST_PHASE_AUTH (see
 * postern_module.h): PLAIN and LOGIN reach them as user and password;
 * other mechanisms (SCRAM-SHA-256, or everything with Dovecot) are
 * passed through step by step to the backend that takes them.
 *
 * Secrets: decoded credentials live in one buffer of the session's
 * auth state, wiped after each step; the base64 lines they came from
 * are wiped in the input buffer; the protocol log masks AUTH lines
 * (pst_smtp_protocol_log()).
 *
 * Brute force: every failure is answered after auth_failure_delay;
 * auth_max_failures per session end it with 421; and a table in shared
 * memory counts failures per client address (IPv6 by /64) across all
 * workers: auth_client_failures within auth_client_block_time block
 * AUTH from that address (454) for that time.  With
 * auth_client_backend redis the count and the block are kept in Redis
 * too, shared by every node (pst_smtp_auth_redis.c); the table here
 * stays the fallback when Redis does not answer.
 *
 * Directives (smtp or server block):
 *   auth_mechanisms PLAIN LOGIN ...;   auth_allow_plaintext on|off;
 *   auth_required on|off;              auth_failure_delay 1s;
 *   auth_max_failures 3;               auth_client_failures 10;
 *   auth_client_block_time 10m;        auth_client_backend shm|redis;
 * A "listen ... submission" listener requires AUTH before MAIL.
 */

#include "pst_smtp.h"
#include "pst_event.h"
#include "pst_smtp_proto.h"
#include "pst_redis.h"

#define PST_AUTH_LINE_MAX      12288     /* RFC 4954 4 */
#define PST_AUTH_BUF           (PST_AUTH_LINE_MAX / 4 * 3)
#define PST_AUTH_NAME_MAX      255       /* RFC 4616 2 */
#define PST_AUTH_PASS_MAX      1024
#define PST_AUTH_MAX_STEPS     10
#define PST_AUTH_CLIENTS       8192
#define PST_AUTH_PROBES        8

#define PST_AUTH_BACKEND_SHM   0
#define PST_AUTH_BACKEND_REDIS 1

typedef enum {
    PST_AUTH_PLAIN = 0,
    PST_AUTH_LOGIN,
    PST_AUTH_OTHER            /* passed through to a backend */
} pst_auth_kind_e;

struct pst_smtp_auth_s {
    pst_session_t               *session;
    pst_str_t                    mech;          /* configured name */
    pst_auth_kind_e              kind;
    pst_uint_t                   step;
    pst_uint_t                   owner;         /* hook index (OTHER) */
    pst_uint_t                   failures;

    pst_str_t                    authzid;       /* point into buf */
    pst_str_t                    authcid;
    pst_str_t                    password;
    pst_str_t                    response;
    unsigned                     has_response:1;
    unsigned                     active:1;
    unsigned                     close:1;       /* 421 after the delay */

    u_char                      *challenge;     /* malloc */
    size_t                       challenge_len;
    u_char                       user[PST_AUTH_NAME_MAX + 1];
    size_t                       user_len;      /* set by a backend */
    u_char                       login[PST_AUTH_NAME_MAX + 1];
    size_t                       login_len;     /* LOGIN user name */

    pst_event_t                  delay;
    pst_redis_cmd_t             *redis_cmd;     /* the block asked */
    pst_str_t                    redis_arg;     /* the command's, malloc */
    unsigned                     redis_checked:1;
    u_char                       buf[PST_AUTH_BUF];
};

typedef struct {
    pst_array_t                 *mechanisms;    /* pst_str_t */
    pst_int_t                    allow_plaintext;
    pst_int_t                    required;
    pst_msec_t                   failure_delay;
    pst_int_t                    max_failures;
    pst_int_t                    client_failures;
    pst_msec_t                   client_block_time;
    pst_uint_t                   backend;
    pst_redis_script_t          *script;        /* backend redis */
} pst_smtp_auth_conf_t;

typedef struct {
    pst_shm_t                   *zone;
} pst_smtp_auth_main_conf_t;

/* one client address in shared memory */
typedef struct {
    u_char                       key[16];
    uint32_t                     failures;
    uint32_t                     since;         /* window start, time() */
    uint32_t                     until;         /* blocked until */
    uint32_t                     spare;
} pst_auth_client_t;


static void *pst_smtp_auth_create_main(pst_conf_t *cf);
static char *pst_smtp_auth_init_main(pst_conf_t *cf, void *conf);
static void *pst_smtp_auth_create_conf(pst_conf_t *cf);
static char *pst_smtp_auth_merge_conf(pst_conf_t *cf, void *prev,
    void *conf);
static char *pst_smtp_auth_set_mechs(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static void pst_smtp_auth_run(pst_session_t *s);
static void pst_smtp_auth_done(pst_session_t *s, pst_verdict_e v);
static void pst_smtp_auth_end(pst_session_t *s);
static void pst_smtp_auth_failed(pst_session_t *s, const char *why);
static void pst_smtp_auth_delay_handler(pst_event_t *ev);

static const pst_conf_enum_t  pst_smtp_auth_backend_names[] = {
    { "shm", PST_AUTH_BACKEND_SHM },
    { "redis", PST_AUTH_BACKEND_REDIS },
    { NULL, 0 }
};


#define AUTH(field)  PST_SRV_CONF, offsetof(pst_smtp_auth_conf_t, field)

static const pst_command_t  pst_smtp_auth_commands[] = {

    { "auth_mechanisms", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_smtp_auth_set_mechs, AUTH(mechanisms), NULL },

    { "auth_allow_plaintext", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, AUTH(allow_plaintext), NULL },

    { "auth_required", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, AUTH(required), NULL },

    { "auth_failure_delay", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, AUTH(failure_delay), NULL },

    { "auth_max_failures", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, AUTH(max_failures), NULL },

    { "auth_client_failures", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, AUTH(client_failures), NULL },

    { "auth_client_block_time", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, AUTH(client_block_time), NULL },

    { "auth_client_backend", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, AUTH(backend), pst_smtp_auth_backend_names },

    pst_null_command
};


const pst_module_t  pst_smtp_auth_module = {
    PST_MODULE_HEADER,
    .name = "smtp_auth",
    .version = PST_VERSION,
    .description = "SMTP AUTH: SASL exchange, PLAIN, LOGIN, limits",
    .commands = pst_smtp_auth_commands,
    .create_main_conf = pst_smtp_auth_create_main,
    .init_main_conf = pst_smtp_auth_init_main,
    .create_srv_conf = pst_smtp_auth_create_conf,
    .merge_srv_conf = pst_smtp_auth_merge_conf,
};


static pst_smtp_auth_conf_t *
pst_smtp_auth_conf(pst_session_t *s)
{
    return s->server->srv_conf[PST_SMTP_AUTH_MODULE];
}


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
pst_smtp_auth_create_main(pst_conf_t *cf)
{
    return pst_pcalloc(cf->pool, sizeof(pst_smtp_auth_main_conf_t));
}


static char *
pst_smtp_auth_init_main(pst_conf_t *cf, void *conf)
{
    pst_smtp_auth_main_conf_t  *amcf = conf;

    /* always there: a few hundred KiB, kept over reloads */
    amcf->zone = pst_shm_add(cf, "postern:auth_clients",
                             PST_AUTH_CLIENTS * sizeof(pst_auth_client_t));
    return amcf->zone != NULL ? PST_CONF_OK : PST_CONF_ERROR;
}


static void *
pst_smtp_auth_create_conf(pst_conf_t *cf)
{
    pst_smtp_auth_conf_t  *c;

    c = pst_pcalloc(cf->pool, sizeof(pst_smtp_auth_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->mechanisms = PST_CONF_UNSET_PTR;
    c->allow_plaintext = PST_CONF_UNSET;
    c->required = PST_CONF_UNSET;
    c->failure_delay = PST_CONF_UNSET_MSEC;
    c->max_failures = PST_CONF_UNSET;
    c->client_failures = PST_CONF_UNSET;
    c->client_block_time = PST_CONF_UNSET_MSEC;
    c->backend = PST_CONF_UNSET_UINT;

    return c;
}


/* RFC 4422 3.1: up to 20 of A-Z 0-9 - _ */
static char *
pst_smtp_auth_set_mechs(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_smtp_auth_conf_t  *acf = conf;
    pst_str_t             *args, *m;
    pst_uint_t             n, i;
    size_t                 k;
    u_char                 ch;

    (void) cmd;

    if (acf->mechanisms != PST_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    acf->mechanisms = pst_array_create(cf->pool, 4, sizeof(pst_str_t));
    if (acf->mechanisms == NULL) {
        return PST_CONF_ERROR;
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        if (args[i].len == 0 || args[i].len > 20) {
            goto invalid;
        }
        m = pst_array_push(acf->mechanisms);
        if (m == NULL) {
            return PST_CONF_ERROR;
        }
        m->data = pst_palloc(cf->pool, args[i].len + 1);
        if (m->data == NULL) {
            return PST_CONF_ERROR;
        }
        for (k = 0; k < args[i].len; k++) {
            ch = pst_toupper(args[i].data[k]);
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                  || ch == '-' || ch == '_'))
            {
                goto invalid;
            }
            m->data[k] = ch;
        }
        m->data[k] = '\0';
        m->len = k;
    }

    return PST_CONF_OK;

invalid:

    pst_conf_error(cf, "invalid SASL mechanism name \"%s\"", args[i].data);
    return PST_CONF_ERROR;
}


static char *
pst_smtp_auth_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    pst_smtp_auth_conf_t  *prev = parent, *conf = child;
    pst_str_t             *m;

    if (conf->mechanisms == PST_CONF_UNSET_PTR) {
        conf->mechanisms = prev->mechanisms;
    }
    if (conf->mechanisms == PST_CONF_UNSET_PTR) {
        conf->mechanisms = pst_array_create(cf->pool, 2, sizeof(pst_str_t));
        if (conf->mechanisms == NULL) {
            return PST_CONF_ERROR;
        }
        m = pst_array_push(conf->mechanisms);
        if (m == NULL) {
            return PST_CONF_ERROR;
        }
        pst_str_set(m, "PLAIN");
        m = pst_array_push(conf->mechanisms);
        if (m == NULL) {
            return PST_CONF_ERROR;
        }
        pst_str_set(m, "LOGIN");
    }

    pst_conf_merge_value(conf->allow_plaintext, prev->allow_plaintext, 0);
    pst_conf_merge_value(conf->required, prev->required, 0);
    pst_conf_merge_msec_value(conf->failure_delay, prev->failure_delay,
                              1000);
    pst_conf_merge_value(conf->max_failures, prev->max_failures, 3);
    pst_conf_merge_value(conf->client_failures, prev->client_failures, 10);
    pst_conf_merge_msec_value(conf->client_block_time,
                              prev->client_block_time, 10 * 60 * 1000);

    pst_conf_merge_uint_value(conf->backend, prev->backend,
                              PST_AUTH_BACKEND_SHM);

    if (conf->max_failures < 1) {
        return "auth_max_failures must be at least 1";
    }

    if (conf->backend == PST_AUTH_BACKEND_REDIS
        && conf->client_failures > 0)
    {
        conf->script = prev->script != NULL ? prev->script
                       : pst_smtp_auth_redis_script(cf);
        if (conf->script == NULL) {
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Failures per client address, shared by the workers (pst_addr_key)  */

/* The entry of an address (created, possibly over the stalest one). */
static pst_auth_client_t *
pst_auth_client(pst_auth_client_t *t, const u_char key[16], int create)
{
    pst_auth_client_t  *e, *victim;
    uint32_t            h = 2166136261u, i;

    for (i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 16777619u;
    }

    victim = NULL;

    for (i = 0; i < PST_AUTH_PROBES; i++) {
        e = &t[(h + i) % PST_AUTH_CLIENTS];
        if (memcmp(e->key, key, 16) == 0) {
            return e;
        }
        if (victim == NULL || e->since < victim->since) {
            victim = e;
        }
    }

    if (!create) {
        return NULL;
    }

    memset(victim, 0, sizeof(pst_auth_client_t));
    memcpy(victim->key, key, 16);
    return victim;
}


static pst_shm_t *
pst_auth_zone(void)
{
    pst_smtp_auth_main_conf_t  *amcf;

    amcf = pst_cycle->main_conf[PST_SMTP_AUTH_MODULE];
    return amcf != NULL ? amcf->zone : NULL;
}


/* Seconds this address stays blocked, or 0. */
static time_t
pst_auth_client_blocked(pst_session_t *s)
{
    pst_auth_client_t  *e;
    pst_shm_t          *z;
    u_char              key[16];
    time_t              now = pst_current_time_sec, left = 0;

    z = pst_auth_zone();
    if (z == NULL || pst_smtp_auth_conf(s)->client_failures == 0) {
        return 0;
    }

    pst_addr_key(&s->c->sockaddr.sa, key);

    pst_shm_lock(z);
    e = pst_auth_client(pst_shm_addr(z), key, 0);
    if (e != NULL && (time_t) e->until > now) {
        left = (time_t) e->until - now;
    }
    pst_shm_unlock(z);

    return left;
}


/* A block Redis knows of (set by any node): into the local table, so
 * that this node refuses at once from now on. */
static void
pst_auth_client_block(const u_char key[16], uint32_t seconds)
{
    pst_auth_client_t  *e;
    pst_shm_t          *z;
    uint32_t            now = (uint32_t) pst_current_time_sec;

    z = pst_auth_zone();
    if (z == NULL) {
        return;
    }

    pst_shm_lock(z);
    e = pst_auth_client(pst_shm_addr(z), key, 1);
    if (e->until < now + seconds) {
        e->until = now + seconds;
        if (e->since == 0) {
            e->since = now;
        }
    }
    pst_shm_unlock(z);
}


static void
pst_auth_client_failed(pst_session_t *s)
{
    pst_smtp_auth_conf_t  *acf = pst_smtp_auth_conf(s);
    pst_auth_client_t     *e;
    pst_shm_t             *z;
    u_char                 key[16];
    uint32_t               now = (uint32_t) pst_current_time_sec;
    uint32_t               window, n = 0;
    int                    blocked = 0;

    z = pst_auth_zone();
    if (z == NULL || acf->client_failures == 0) {
        return;
    }

    window = (uint32_t) (acf->client_block_time / 1000);
    pst_addr_key(&s->c->sockaddr.sa, key);

    pst_shm_lock(z);
    e = pst_auth_client(pst_shm_addr(z), key, 1);
    if (now - e->since > window) {
        /* failures older than the window are forgotten */
        e->since = now;
        e->failures = 0;
    }
    n = ++e->failures;
    if (n >= (uint32_t) acf->client_failures && e->until <= now) {
        e->until = now + window;
        blocked = 1;
    }
    pst_shm_unlock(z);

    if (blocked) {
        pst_log_session(s, PST_LOG_WARN, "%u authentication failures from"
                        " this address: AUTH blocked for %u s", n, window);
    }

    if (acf->backend == PST_AUTH_BACKEND_REDIS) {
        pst_smtp_auth_redis_failed(acf->script, key, acf->client_failures,
                                   acf->client_block_time,
                                   pst_auth_client_block);
    }
}


static void
pst_smtp_auth_redis_free(pst_smtp_auth_t *a)
{
    pst_redis_cancel(a->redis_cmd);
    a->redis_cmd = NULL;
    if (a->redis_arg.data != NULL) {
        explicit_bzero(a->redis_arg.data, a->redis_arg.len);
        free(a->redis_arg.data);
        a->redis_arg.data = NULL;
    }
}


/* Redis answered (or not) whether the address is blocked: the AUTH
 * command runs again, with the local table now knowing. */
static void
pst_smtp_auth_redis_checked(void *data, pst_redis_status_e status,
    const pst_redis_reply_t *reply)
{
    pst_session_t    *s = data;
    pst_smtp_auth_t  *a = s->auth;
    int64_t           ms;
    u_char            key[16];

    a->redis_cmd = NULL;
    if (status == PST_REDIS_OK
        && pst_redis_reply_integer(reply, &ms) == PST_OK && ms > 0)
    {
        pst_addr_key(&s->c->sockaddr.sa, key);
        pst_auth_client_block(key, (uint32_t) ((ms + 999) / 1000));
    }

    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    a->redis_checked = 1;
    s->arg = a->redis_arg;
    pst_smtp_cmd_auth(s);
    a->redis_checked = 0;
    pst_smtp_auth_redis_free(a);

    if (s->state != PST_SMTP_S_PHASE) {
        pst_smtp_continue(s);
    }
}


/* auth_client_backend redis: ask Redis whether another node blocked
 * this address before taking the command.  PST_OK when asked (the
 * command runs again from the answer), else PST_DECLINED: go on. */
static int
pst_smtp_auth_redis_defer(pst_session_t *s, pst_smtp_auth_t *a)
{
    u_char  key[16];

    a->redis_arg.data = malloc(s->arg.len + 1);
    if (a->redis_arg.data == NULL) {
        return PST_DECLINED;
    }

    pst_addr_key(&s->c->sockaddr.sa, key);
    a->redis_cmd = pst_smtp_auth_redis_blocked(key,
                                               pst_smtp_auth_redis_checked,
                                               s);
    if (a->redis_cmd == NULL) {
        free(a->redis_arg.data);
        a->redis_arg.data = NULL;
        return PST_DECLINED;
    }

    /* the line is consumed: keep the argument (an initial response is
     * a secret: the input buffer's copy is wiped) */
    memcpy(a->redis_arg.data, s->arg.data, s->arg.len);
    a->redis_arg.data[s->arg.len] = '\0';
    a->redis_arg.len = s->arg.len;
    explicit_bzero(s->arg.data, s->arg.len);
    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Session state                                                       */

static void
pst_smtp_auth_cleanup(void *data)
{
    pst_smtp_auth_t  *a = data;

    pst_event_del_timer(&a->delay);
    pst_smtp_auth_redis_free(a);
    free(a->challenge);
    a->challenge = NULL;
    explicit_bzero(a->buf, sizeof(a->buf));
    explicit_bzero(a->login, sizeof(a->login));
}


static pst_smtp_auth_t *
pst_smtp_auth_get(pst_session_t *s)
{
    pst_smtp_auth_t  *a;

    if (s->auth != NULL) {
        return s->auth;
    }

    a = pst_pcalloc(s->pool, sizeof(pst_smtp_auth_t));
    if (a == NULL) {
        return NULL;
    }
    if (pst_pool_cleanup_add(s->pool, pst_smtp_auth_cleanup, a) != PST_OK) {
        return NULL;
    }

    a->session = s;
    a->delay.data = s;
    a->delay.handler = pst_smtp_auth_delay_handler;
    s->auth = a;
    return a;
}


/* Forget the secrets of a step. */
static void
pst_smtp_auth_wipe(pst_smtp_auth_t *a)
{
    explicit_bzero(a->buf, sizeof(a->buf));
    a->authzid.len = 0;
    a->authcid.len = 0;
    a->password.len = 0;
    a->response.len = 0;
    a->has_response = 0;
}


static void
pst_smtp_auth_end(pst_session_t *s)
{
    pst_smtp_auth_t  *a = s->auth;

    pst_smtp_auth_wipe(a);
    explicit_bzero(a->login, sizeof(a->login));
    a->login_len = 0;
    free(a->challenge);
    a->challenge = NULL;
    a->challenge_len = 0;
    a->active = 0;
    a->step = 0;

    if (s->state == PST_SMTP_S_AUTH || s->state == PST_SMTP_S_PHASE) {
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    }
}


void
pst_smtp_auth_reset(pst_session_t *s)
{
    /* STARTTLS: authentication from before TLS does not carry over */
    s->auth_id.len = 0;
    s->auth_id.data = NULL;

    if (s->auth != NULL) {
        pst_event_del_timer(&s->auth->delay);
        s->auth->user_len = 0;
        pst_smtp_auth_end(s);
    }
}


/* ------------------------------------------------------------------ */
/* Advertising and policy checks                                       */

static int
pst_smtp_auth_backends(pst_session_t *s)
{
    return s->server->chains[PST_PHASE_AUTH].nelts > 0;
}


static int
pst_smtp_auth_allowed(pst_session_t *s)
{
    return s->tls_facts != NULL || pst_smtp_auth_conf(s)->allow_plaintext;
}


size_t
pst_smtp_auth_ehlo(pst_session_t *s, char *buf, size_t size)
{
    pst_smtp_auth_conf_t  *acf = pst_smtp_auth_conf(s);
    pst_str_t             *m;
    pst_uint_t             i;
    size_t                 n;
    int                    k;

    if (!pst_smtp_auth_backends(s) || !pst_smtp_auth_allowed(s)
        || acf->mechanisms->nelts == 0 || pst_smtp_tls_required(s))
    {
        return 0;
    }

    n = 0;
    k = snprintf(buf, size, "250-AUTH");
    if (k < 0 || (size_t) k >= size) {
        return 0;
    }
    n = (size_t) k;

    m = acf->mechanisms->elts;
    for (i = 0; i < acf->mechanisms->nelts; i++) {
        k = snprintf(buf + n, size - n, " %.*s", (int) m[i].len, m[i].data);
        if (k < 0 || (size_t) k >= size - n) {
            return 0;
        }
        n += (size_t) k;
    }

    k = snprintf(buf + n, size - n, "\r\n");
    if (k < 0 || (size_t) k >= size - n) {
        return 0;
    }

    return n + (size_t) k;
}


/* MAIL: TLS first when required, and AUTH first on a submission
 * listener (or with auth_required).  PST_OK, or PST_DECLINED after the
 * reply. */
int
pst_smtp_auth_mail_check(pst_session_t *s)
{
    if (pst_smtp_tls_check(s) != PST_OK) {
        return PST_DECLINED;
    }

    if (s->auth_id.len == 0
        && (s->ls->submission || pst_smtp_auth_conf(s)->required))
    {
        pst_smtp_reply(s, 530, "5.7.0", "Authentication required");
        return PST_DECLINED;
    }

    return PST_OK;
}


/* MAIL FROM ... AUTH=<mailbox> (RFC 4954 5): kept for an authenticated
 * client, "<>" for anyone else. */
void
pst_smtp_auth_mail_param(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;

    if (tx == NULL || tx->params.auth.data == NULL) {
        return;
    }

    if (s->auth_id.len) {
        tx->auth_param = tx->params.auth;
    } else {
        pst_str_set(&tx->auth_param, "<>");
    }
}


/* ------------------------------------------------------------------ */
/* The exchange                                                        */

static void
pst_smtp_auth_challenge_reply(pst_session_t *s, const u_char *data,
    size_t len)
{
    u_char  *line;
    size_t   n;

    n = pst_base64_encoded_length(len);
    line = malloc(n + 7);
    if (line == NULL) {
        pst_smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
        pst_smtp_auth_end(s);
        return;
    }

    memcpy(line, "334 ", 4);
    n = pst_base64_encode(line + 4, data, len);
    memcpy(line + 4 + n, "\r\n", 2);
    pst_smtp_reply_raw(s, (char *) line, n + 6);
    free(line);

    pst_smtp_enter_state(s, PST_SMTP_S_AUTH);
}


/* Decode a response (a line or an initial response) into a->buf.
 * PST_OK, PST_DECLINED for "*", PST_ERROR for bad base64. */
static int
pst_smtp_auth_decode(pst_smtp_auth_t *a, u_char *p, size_t n)
{
    ssize_t  k;

    pst_smtp_auth_wipe(a);

    if (n == 1 && p[0] == '*') {
        return PST_DECLINED;
    }

    if (n == 1 && p[0] == '=') {
        /* RFC 4954 4: an empty initial response */
        a->has_response = 1;
        return PST_OK;
    }

    if (n > PST_AUTH_LINE_MAX) {
        return PST_ERROR;
    }

    k = pst_base64_decode(a->buf, p, n);
    explicit_bzero(p, n);             /* the secret was in this line */

    if (k < 0) {
        return PST_ERROR;
    }

    a->response.data = a->buf;
    a->response.len = (size_t) k;
    a->has_response = 1;
    return PST_OK;
}


/* RFC 4616: [authzid] NUL authcid NUL passwd */
static int
pst_smtp_auth_plain(pst_smtp_auth_t *a)
{
    u_char  *p, *end, *nul1, *nul2;

    /* "AUTH PLAIN =" leaves no data: no pointer arithmetic on NULL */
    p = a->response.data;
    if (p == NULL) {
        return PST_ERROR;
    }

    end = p + a->response.len;

    nul1 = memchr(p, '\0', a->response.len);
    if (nul1 == NULL) {
        return PST_ERROR;
    }
    nul2 = memchr(nul1 + 1, '\0', (size_t) (end - nul1 - 1));
    if (nul2 == NULL || memchr(nul2 + 1, '\0', (size_t) (end - nul2 - 1))) {
        return PST_ERROR;
    }

    a->authzid.data = p;
    a->authzid.len = (size_t) (nul1 - p);
    a->authcid.data = nul1 + 1;
    a->authcid.len = (size_t) (nul2 - nul1 - 1);
    a->password.data = nul2 + 1;
    a->password.len = (size_t) (end - nul2 - 1);

    if (a->authcid.len == 0 || a->authcid.len > PST_AUTH_NAME_MAX
        || a->authzid.len > PST_AUTH_NAME_MAX
        || a->password.len > PST_AUTH_PASS_MAX)
    {
        return PST_ERROR;
    }

    return PST_OK;
}


/* One client response (or the initial one) for the running exchange. */
static void
pst_smtp_auth_step(pst_session_t *s)
{
    pst_smtp_auth_t  *a = s->auth;

    switch (a->kind) {

    case PST_AUTH_PLAIN:
        if (!a->has_response) {
            pst_smtp_reply_raw(s, "334 \r\n", 6);
            pst_smtp_enter_state(s, PST_SMTP_S_AUTH);
            a->step++;
            return;
        }
        if (pst_smtp_auth_plain(a) != PST_OK) {
            pst_smtp_reply(s, 501, "5.5.2", "Error: malformed PLAIN"
                           " response");
            pst_smtp_auth_end(s);
            return;
        }
        pst_smtp_auth_run(s);
        return;

    case PST_AUTH_LOGIN:
        if (a->step == 0 && !(a->has_response && a->response.len > 0)) {
            a->step = 1;
            pst_smtp_reply_raw(s, "334 VXNlcm5hbWU6\r\n", 18);
            pst_smtp_enter_state(s, PST_SMTP_S_AUTH);
            return;
        }

        if (a->step <= 1) {
            /* the user name: an answer to "Username:", or the initial
             * response of "AUTH LOGIN dXNlcg==" */
            if (a->response.len == 0
                || a->response.len > PST_AUTH_NAME_MAX
                || memchr(a->response.data, '\0', a->response.len))
            {
                pst_smtp_reply(s, 501, "5.5.2", "Error: malformed LOGIN"
                               " user name");
                pst_smtp_auth_end(s);
                return;
            }
            memcpy(a->login, a->response.data, a->response.len);
            a->login_len = a->response.len;
            pst_smtp_auth_wipe(a);
            a->step = 2;
            pst_smtp_reply_raw(s, "334 UGFzc3dvcmQ6\r\n", 18);
            pst_smtp_enter_state(s, PST_SMTP_S_AUTH);
            return;
        }

        if (a->response.len > PST_AUTH_PASS_MAX) {
            pst_smtp_reply(s, 501, "5.5.2", "Error: password too long");
            pst_smtp_auth_end(s);
            return;
        }

        a->authcid.data = a->login;
        a->authcid.len = a->login_len;
        a->password = a->response;
        if (a->password.data == NULL) {
            a->password.data = a->buf;
        }
        pst_smtp_auth_run(s);
        return;

    case PST_AUTH_OTHER:
        pst_smtp_auth_run(s);
        return;
    }
}


static void
pst_smtp_auth_run(pst_session_t *s)
{
    pst_smtp_auth_t  *a = s->auth;

    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);

    if (a->kind == PST_AUTH_OTHER && a->step > 0) {
        pst_smtp_run_phase_at(s, PST_PHASE_AUTH, a->owner,
                              pst_smtp_auth_done);
    } else {
        pst_smtp_run_phase(s, PST_PHASE_AUTH, pst_smtp_auth_done);
    }
}


static void
pst_smtp_auth_resume(pst_session_t *s)
{
    if (s->state == PST_SMTP_S_PHASE) {
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    }
    pst_smtp_continue(s);
}


static void
pst_smtp_auth_success(pst_session_t *s)
{
    pst_smtp_auth_t  *a = s->auth;
    const u_char     *name;
    size_t            n;
    u_char            clean[PST_AUTH_NAME_MAX + 1];

    if (a->user_len) {
        name = a->user;
        n = a->user_len;
    } else if (a->kind != PST_AUTH_OTHER) {
        name = a->authcid.data;
        n = a->authcid.len;
    } else {
        pst_log_session(s, PST_LOG_ERR, "auth backend accepted %s without"
                        " naming the user", a->mech.data);
        pst_smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
        return;
    }

    s->auth_id.data = pst_palloc(s->pool, n + 1);
    if (s->auth_id.data == NULL) {
        pst_smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
        return;
    }
    /* the identity goes into logs and trace headers: printable only */
    s->auth_id.len = pst_sanitize(s->auth_id.data, n + 1, name, n);

    (void) pst_sanitize(clean, sizeof(clean), s->auth_id.data,
                        s->auth_id.len);
    pst_metric_inc(PST_M_AUTH_SUCCESS);
    pst_log_session(s, PST_LOG_NOTICE, "authenticated as \"%s\""
                    " mechanism=%s%s", clean, a->mech.data,
                    s->tls_facts ? "" : " (without TLS)");

    pst_smtp_reply(s, 235, "2.7.0", "Authentication successful");
}


static void
pst_smtp_auth_done(pst_session_t *s, pst_verdict_e v)
{
    pst_smtp_auth_t  *a = s->auth;
    pst_call_t       *call = &s->call;
    u_char           *ch;
    size_t            chlen;

    /* the hook that answered; a pass-through exchange stays with it */
    a->owner = s->hook_index;

    if (v == PST_HOOK_ACCEPT && a->challenge != NULL) {
        if (++a->step > PST_AUTH_MAX_STEPS) {
            pst_smtp_auth_failed(s, "too many steps");
            return;
        }
        ch = a->challenge;
        chlen = a->challenge_len;
        a->challenge = NULL;
        pst_smtp_auth_wipe(a);
        pst_smtp_auth_challenge_reply(s, ch, chlen);
        free(ch);
        pst_smtp_auth_resume(s);
        return;
    }

    switch (v) {

    case PST_HOOK_ACCEPT:
        pst_smtp_auth_success(s);
        pst_smtp_auth_end(s);
        pst_smtp_auth_resume(s);
        return;

    case PST_HOOK_CONTINUE:
        /* nobody knows the user (or, passed through, nobody took the
         * exchange): the same answer as a wrong password */
        pst_smtp_auth_failed(s, "unknown user");
        return;

    case PST_HOOK_REJECT:
        pst_smtp_auth_failed(s, call->text_len ? (char *) call->text
                                                : "rejected");
        return;

    case PST_HOOK_DISCONNECT:
        (void) pst_smtp_verdict_reply(s, v);          /* 421, closing */
        pst_smtp_auth_end(s);
        pst_smtp_continue(s);
        return;

    default:
        pst_log_session(s, PST_LOG_WARN, "authentication backend failed"
                        "%s%.*s", call->text_len ? ": " : "",
                        (int) call->text_len, call->text);
        (void) pst_smtp_verdict_reply(s, PST_HOOK_TEMPFAIL);   /* 454 */
        pst_smtp_auth_end(s);
        pst_smtp_auth_resume(s);
        return;
    }
}


static void
pst_smtp_auth_failed(pst_session_t *s, const char *why)
{
    pst_smtp_auth_conf_t  *acf = pst_smtp_auth_conf(s);
    pst_smtp_auth_t       *a = s->auth;
    u_char                 user[PST_AUTH_NAME_MAX + 1];

    pst_metric_inc(PST_M_AUTH_FAILURE);
    user[0] = '\0';
    if (a->authcid.len) {
        (void) pst_sanitize(user, sizeof(user), a->authcid.data,
                            a->authcid.len);
    }

    a->failures++;
    pst_log_session(s, PST_LOG_NOTICE, "authentication failed:"
                    " mechanism=%s%s%s%s (%s)", a->mech.data,
                    user[0] ? " user=\"" : "", (char *) user,
                    user[0] ? "\"" : "", why);

    pst_auth_client_failed(s);
    a->close = a->failures >= (pst_uint_t) acf->max_failures;
    pst_smtp_auth_end(s);

    /* answered later: a password guesser gets one try per delay */
    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);
    pst_event_add_timer(&a->delay, acf->failure_delay);
}


static void
pst_smtp_auth_delay_handler(pst_event_t *ev)
{
    pst_session_t      *s = ev->data;
    pst_smtp_auth_t    *a = s->auth;
    pst_smtp_answer_t   answer;

    if (a->close) {
        pst_smtp_reply(s, 421, "4.7.0", "%.*s Error: too many"
                       " authentication failures",
                       (int) s->conf->hostname.len, s->conf->hostname.data);
        pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
        pst_smtp_continue(s);
        return;
    }

    /* a REJECT's reply (or nobody's, the same for a guesser): 535 */
    pst_smtp_verdict_map(PST_PHASE_AUTH, PST_HOOK_REJECT, NULL, &answer);
    pst_smtp_answer_reply(s, &answer);
    pst_smtp_auth_resume(s);
}


void
pst_smtp_cmd_auth(pst_session_t *s)
{
    pst_smtp_auth_conf_t  *acf = pst_smtp_auth_conf(s);
    pst_smtp_auth_t       *a;
    pst_str_t             *m, mech;
    pst_uint_t             i;
    u_char                *p, *end;
    time_t                 left;
    int                    rc;

    if (!pst_smtp_auth_backends(s)) {
        pst_smtp_reply(s, 502, "5.5.1", "Error: AUTH not offered here");
        return;
    }

    if (pst_smtp_tls_check(s) != PST_OK) {
        return;
    }

    if (!pst_smtp_auth_allowed(s)) {
        pst_smtp_reply(s, 538, "5.7.11", "Encryption required for"
                       " requested authentication mechanism");
        return;
    }

    if (!s->esmtp) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: send EHLO first");
        return;
    }

    if (s->auth_id.len) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: already authenticated");
        return;
    }

    if (s->tx != NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: MAIL transaction in"
                       " progress");
        return;
    }

    a = pst_smtp_auth_get(s);
    if (a == NULL) {
        pst_smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
        return;
    }

    left = pst_auth_client_blocked(s);
    if (left > 0) {
        a->failures++;
        if (a->failures >= (pst_uint_t) acf->max_failures) {
            pst_smtp_reply(s, 421, "4.7.0", "%.*s Error: too many"
                           " authentication failures",
                           (int) s->conf->hostname.len,
                           s->conf->hostname.data);
            pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
            return;
        }
        pst_smtp_reply(s, 454, "4.7.0", "Too many authentication failures"
                       " from your address, try again in %ld s",
                       (long) left);
        return;
    }

    if (acf->backend == PST_AUTH_BACKEND_REDIS && !a->redis_checked
        && acf->client_failures > 0 && pst_smtp_auth_redis_defer(s, a)
           == PST_OK)
    {
        return;
    }

    /* "mech [initial-response]" */
    p = s->arg.data;
    end = p + s->arg.len;
    mech.data = p;
    while (p < end && *p != ' ') {
        p++;
    }
    mech.len = (size_t) (p - mech.data);
    while (p < end && *p == ' ') {
        p++;
    }

    if (mech.len == 0 || (p < end && memchr(p, ' ', (size_t) (end - p)))) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism"
                       " [initial-response]");
        return;
    }

    m = acf->mechanisms->elts;
    for (i = 0; i < acf->mechanisms->nelts; i++) {
        if (m[i].len == mech.len
            && pst_strncasecmp(m[i].data, mech.data, mech.len) == 0)
        {
            break;
        }
    }

    if (i == acf->mechanisms->nelts) {
        pst_smtp_reply(s, 504, "5.5.4", "Error: unrecognized authentication"
                       " mechanism");
        return;
    }

    a->mech = m[i];
    a->kind = pst_str_eq(&m[i], "PLAIN") ? PST_AUTH_PLAIN
              : pst_str_eq(&m[i], "LOGIN") ? PST_AUTH_LOGIN
              : PST_AUTH_OTHER;
    a->step = 0;
    a->owner = 0;
    a->user_len = 0;
    a->login_len = 0;
    a->active = 1;
    pst_smtp_auth_wipe(a);

    if (p < end) {
        rc = pst_smtp_auth_decode(a, p, (size_t) (end - p));
        if (rc != PST_OK) {
            pst_smtp_reply(s, 501, "5.5.2", rc == PST_DECLINED
                           ? "Error: authentication cancelled"
                           : "Error: invalid base64 data");
            pst_smtp_auth_end(s);
            return;
        }
    }

    pst_smtp_auth_step(s);
}


/* State AUTH: the client's answer to a 334.  Same return codes as the
 * command loop: PST_AGAIN (need input), PST_OK (state changed),
 * PST_BUSY (waiting for a backend or the failure delay). */
int
pst_smtp_auth_process(pst_session_t *s)
{
    pst_smtp_auth_t  *a = s->auth;
    pst_smtp_line_e   lr;
    pst_str_t         line;
    int               rc;

    lr = pst_smtp_read_line(s->in, PST_AUTH_LINE_MAX, 0, &s->skipping,
                            &line);

    switch (lr) {
    case PST_SMTP_LINE_AGAIN:
        return PST_AGAIN;

    case PST_SMTP_LINE_OK:
        break;

    default:
        pst_smtp_reply(s, 500, "5.5.6", "Error: authentication exchange"
                       " line is too long or malformed");
        pst_smtp_auth_end(s);
        return PST_OK;
    }

    pst_smtp_protocol_log(s, 1, line.data, line.len);

    rc = pst_smtp_auth_decode(a, line.data, line.len);
    if (rc != PST_OK) {
        pst_smtp_reply(s, 501, rc == PST_DECLINED ? "5.0.0" : "5.5.2",
                       rc == PST_DECLINED ? "Authentication cancelled"
                                          : "Error: invalid base64 data");
        pst_smtp_auth_end(s);
        return PST_OK;
    }

    pst_smtp_auth_step(s);

    return s->state == PST_SMTP_S_PHASE ? PST_BUSY : PST_OK;
}


/* ------------------------------------------------------------------ */
/* Backend API (postern_module.h)                                      */

static pst_smtp_auth_t *
pst_auth_active(pst_session_t *s)
{
    return (s != NULL && s->auth != NULL && s->auth->active) ? s->auth
                                                             : NULL;
}


const pst_str_t *
pst_auth_mechanism(pst_session_t *s)
{
    return (s != NULL && s->auth != NULL && s->auth->mech.len)
           ? &s->auth->mech : NULL;
}


pst_uint_t
pst_auth_step(pst_session_t *s)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    if (a == NULL) {
        return 0;
    }
    /* LOGIN's and PLAIN's wire steps are invisible to backends */
    return a->kind == PST_AUTH_OTHER ? a->step : 0;
}


const pst_str_t *
pst_auth_authcid(pst_session_t *s)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    return (a != NULL && a->kind != PST_AUTH_OTHER) ? &a->authcid : NULL;
}


const pst_str_t *
pst_auth_authzid(pst_session_t *s)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    return (a != NULL && a->kind != PST_AUTH_OTHER) ? &a->authzid : NULL;
}


const pst_str_t *
pst_auth_password(pst_session_t *s)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    return (a != NULL && a->kind != PST_AUTH_OTHER) ? &a->password : NULL;
}


const pst_str_t *
pst_auth_response(pst_session_t *s)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    if (a == NULL || !a->has_response) {
        return NULL;
    }
    if (a->response.data == NULL) {
        a->response.data = a->buf;     /* empty, but not NULL */
    }
    return &a->response;
}


int
pst_auth_challenge(pst_session_t *s, const u_char *data, size_t len)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    if (a == NULL || len > PST_AUTH_BUF) {
        return PST_ERROR;
    }

    free(a->challenge);
    a->challenge = malloc(len ? len : 1);
    if (a->challenge == NULL) {
        return PST_ERROR;
    }
    memcpy(a->challenge, data, len);
    a->challenge_len = len;
    return PST_OK;
}


int
pst_auth_set_user(pst_session_t *s, const u_char *name, size_t len)
{
    pst_smtp_auth_t  *a = pst_auth_active(s);

    if (a == NULL || len == 0 || len > PST_AUTH_NAME_MAX) {
        return PST_ERROR;
    }

    memcpy(a->user, name, len);
    a->user_len = len;
    return PST_OK;
}


int
pst_session_tls_peer_verified(pst_session_t *s)
{
    return s->tls_facts != NULL && s->tls_facts->verified;
}


const pst_str_t *
pst_session_tls_sni(pst_session_t *s)
{
    return (s->tls_facts != NULL && s->tls_facts->sni.len)
           ? &s->tls_facts->sni : NULL;
}
