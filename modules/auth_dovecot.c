/*
 * auth_dovecot.c -- AUTH backend: a client of Dovecot's authentication
 * protocol (the auth-client socket Postfix uses), so that Postern
 * shares its users, password schemes and mechanisms with a Dovecot.
 *
 * Each worker keeps one connection per socket, opened on first use and
 * watched by the event loop; requests are multiplexed on it by id and
 * answered from the event loop -- nothing waits.  The protocol:
 *
 *   us:  VERSION 1 2, CPID pid
 *   it:  VERSION, MECH name..., SPID, CUID, COOKIE, DONE
 *   us:  AUTH id mech service=smtp [secured] lip= rip= [resp=base64]
 *   it:  OK id user=... | FAIL id [temp] [reason=...] | CONT id base64
 *   us:  CONT id base64                                    (next step)
 *
 * PLAIN and LOGIN reach the module decoded by the core and go to Dovecot
 * as PLAIN.  Every other mechanism Dovecot announces (SCRAM-SHA-256...)
 * is passed through step by step; Dovecot's final server message (for
 * SCRAM, in the OK) goes to the client as a last 334, as RFC 4954
 * wants.  "FAIL ... temp" and a lost connection answer 454 (TEMPFAIL).
 *
 * Directives (smtp or server block):
 *   auth_dovecot_socket unix:/run/dovecot/auth-client | 127.0.0.1:PORT;
 *   auth_dovecot_service smtp;
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/evp.h>

#include "postern_module.h"

#define AD_MAX_CONNS       8
#define AD_MAX_REQUESTS    4096
#define AD_RBUF            65536
#define AD_LINE_MAX        16384

typedef struct {
    pst_str_t                    socket;      /* as configured */
    pst_str_t                    service;
    struct sockaddr_storage      sa;
    socklen_t                    salen;
} ad_conf_t;

typedef struct ad_conn_s  ad_conn_t;

/* one exchange with Dovecot, alive across the steps of a SASL exchange */
typedef struct {
    uint32_t                     id;
    uint64_t                     token;       /* of the current step */
    uint64_t                     session;     /* id, to drop stale ones */
    ad_conn_t                   *conn;
    unsigned                     waiting:1;   /* a step is with Dovecot */
    unsigned                     final:1;     /* server-final sent */
    unsigned                     used:1;
    char                         user[256];
} ad_req_t;

struct ad_conn_s {
    const ad_conf_t             *conf;
    int                          fd;
    int                          ready;       /* DONE received */
    char                        *mechs;       /* " PLAIN LOGIN ... " */
    size_t                       rlen;
    u_char                      *rbuf;
    u_char                      *wbuf;        /* queued until DONE */
    size_t                       wlen;
    size_t                       wsize;
};

static ad_conn_t   ad_conns[AD_MAX_CONNS];
static ad_req_t   *ad_reqs;
static uint32_t    ad_next_id;


static void *ad_create_conf(pst_conf_t *cf);
static char *ad_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *ad_set_socket(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static void ad_exit_process(pst_cycle_t *cycle, void *conf);
static pst_verdict_e ad_auth(pst_call_t *call, void *conf);
static void ad_read_handler(int fd, void *data);
static void ad_close(ad_conn_t *c, const char *why);

PST_EXPORT const pst_module_t  postern_module;


static const pst_command_t  ad_commands[] = {
    { "auth_dovecot_socket", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      ad_set_socket, PST_SRV_CONF, 0, NULL },
    { "auth_dovecot_service", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_SRV_CONF, offsetof(ad_conf_t, service),
      NULL },
    pst_null_command
};

static const pst_hook_t  ad_hooks[] = {
    { PST_PHASE_AUTH, ad_auth, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "auth_dovecot",
    .version = "1.0",
    .description = "AUTH through Dovecot's authentication service",
    .commands = ad_commands,
    .create_srv_conf = ad_create_conf,
    .merge_srv_conf = ad_merge_conf,
    .exit_process = ad_exit_process,
    .hooks = ad_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
ad_create_conf(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(ad_conf_t));
}


static char *
ad_set_socket(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    ad_conf_t           *c = conf;
    struct sockaddr_un  *un;
    struct sockaddr_in  *in;
    pst_str_t           *args, path;
    char                 host[64], *colon;
    long                 port;

    (void) cmd;

    if (c->socket.data != NULL) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, NULL);
    c->socket = args[1];

    if (args[1].len > 5 && memcmp(args[1].data, "unix:", 5) == 0) {
        path.data = args[1].data + 5;
        path.len = args[1].len - 5;
        if (pst_conf_full_name(cf, &path) != PST_OK) {
            return PST_CONF_ERROR;
        }
        un = (struct sockaddr_un *) &c->sa;
        if (path.len >= sizeof(un->sun_path)) {
            return "has a socket path that is too long";
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path.data, path.len + 1);
        c->salen = sizeof(struct sockaddr_un);
        /* the workers connect to it: postern -t checks they can */
        if (pst_conf_worker_path(cf, &path, W_OK | PST_PATH_PEER,
                                 "auth_dovecot_socket")
            != PST_OK)
        {
            return PST_CONF_ERROR;
        }
        return PST_CONF_OK;
    }

    /* ADDRESS:PORT, IPv4 (Dovecot's inet_listener on loopback) */
    if (args[1].len >= sizeof(host)) {
        goto invalid;
    }
    memcpy(host, args[1].data, args[1].len + 1);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        goto invalid;
    }
    *colon = '\0';
    port = strtol(colon + 1, NULL, 10);
    in = (struct sockaddr_in *) &c->sa;
    if (port < 1 || port > 65535
        || inet_pton(AF_INET, host, &in->sin_addr) != 1)
    {
        goto invalid;
    }
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t) port);
    c->salen = sizeof(struct sockaddr_in);
    return PST_CONF_OK;

invalid:

    pst_conf_error(cf, "invalid auth_dovecot_socket \"%s\" (use"
                   " unix:/PATH or ADDRESS:PORT)", args[1].data);
    return PST_CONF_ERROR;
}


static char *
ad_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    ad_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->socket.data == NULL) {
        conf->socket = prev->socket;
        conf->sa = prev->sa;
        conf->salen = prev->salen;
    }
    pst_conf_merge_str_value(conf->service, prev->service, "smtp");

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Requests                                                            */

static ad_req_t *
ad_req_new(void)
{
    uint32_t  i;

    if (ad_reqs == NULL) {
        ad_reqs = calloc(AD_MAX_REQUESTS, sizeof(ad_req_t));
        if (ad_reqs == NULL) {
            return NULL;
        }
    }

    for (i = 0; i < AD_MAX_REQUESTS; i++) {
        if (!ad_reqs[i].used) {
            memset(&ad_reqs[i], 0, sizeof(ad_req_t));
            ad_reqs[i].used = 1;
            /* ids: never 0, never reused while Dovecot may answer */
            if (++ad_next_id == 0) {
                ad_next_id = 1;
            }
            ad_reqs[i].id = ad_next_id;
            return &ad_reqs[i];
        }
    }

    return NULL;
}


static ad_req_t *
ad_req_find(uint32_t id)
{
    uint32_t  i;

    if (ad_reqs == NULL) {
        return NULL;
    }

    for (i = 0; i < AD_MAX_REQUESTS; i++) {
        if (ad_reqs[i].used && ad_reqs[i].id == id) {
            return &ad_reqs[i];
        }
    }

    return NULL;
}


static void
ad_req_free(pst_session_t *s, ad_req_t *r)
{
    if (s != NULL && pst_session_get_ctx(s, &postern_module) == r) {
        pst_session_set_ctx(s, &postern_module, NULL);
    }
    r->used = 0;
}


/* Answer the step Dovecot was working on. */
static void
ad_answer(ad_req_t *r, pst_verdict_e v, const char *why)
{
    pst_session_t  *s;

    r->waiting = 0;
    s = pst_hook_session(r->token);

    if (s == NULL || pst_session_id(s) != r->session) {
        /* the session ended or gave up on this step */
        ad_req_free(NULL, r);
        return;
    }

    if (why != NULL) {
        (void) pst_hook_resume(r->token, v, 0, NULL, "%s", why);
    } else {
        (void) pst_hook_resume(r->token, v, 0, NULL, NULL);
    }
}


/* ------------------------------------------------------------------ */
/* The connection                                                      */

static int
ad_flush(ad_conn_t *c)
{
    ssize_t  n;

    while (c->wlen > 0) {
        n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t) n);
            c->wlen -= (size_t) n;
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK
                        || errno == ENOTCONN))
        {
            /* connecting, or full: retried on the next event */
            return PST_AGAIN;
        }
        return PST_ERROR;
    }

    return PST_OK;
}


static int
ad_queue(ad_conn_t *c, const char *line, size_t n)
{
    u_char  *p;
    size_t   size;

    if (c->wlen + n > c->wsize) {
        size = c->wsize ? c->wsize : 4096;
        while (size < c->wlen + n) {
            size *= 2;
        }
        if (size > 1024 * 1024) {
            return PST_ERROR;
        }
        p = realloc(c->wbuf, size);
        if (p == NULL) {
            return PST_ERROR;
        }
        c->wbuf = p;
        c->wsize = size;
    }

    memcpy(c->wbuf + c->wlen, line, n);
    c->wlen += n;

    if (c->ready && ad_flush(c) == PST_ERROR) {
        ad_close(c, "write failed");
        return PST_ERROR;
    }

    return PST_OK;
}


static ad_conn_t *
ad_connect(const ad_conf_t *conf)
{
    ad_conn_t  *c, *free_c = NULL;
    char        hello[64];
    int         i, fd, n;

    for (i = 0; i < AD_MAX_CONNS; i++) {
        c = &ad_conns[i];
        if (c->conf == conf || (c->conf != NULL && c->conf->salen
                                && c->conf->salen == conf->salen
                                && memcmp(&c->conf->sa, &conf->sa,
                                          conf->salen) == 0))
        {
            if (c->fd != -1 && c->rbuf != NULL) {
                return c;
            }
            free_c = c;
            break;
        }
        if (free_c == NULL && c->conf == NULL) {
            free_c = c;
        }
    }

    if (free_c == NULL) {
        return NULL;
    }
    c = free_c;
    memset(c, 0, sizeof(ad_conn_t));
    c->fd = -1;
    c->conf = conf;

    fd = socket(conf->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK
                                    | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return NULL;
    }

    if (connect(fd, (struct sockaddr *) &conf->sa, conf->salen) == -1
        && errno != EINPROGRESS)
    {
        pst_log(PST_LOG_ERR, errno, "auth_dovecot: cannot connect to %.*s",
                (int) conf->socket.len, conf->socket.data);
        close(fd);
        return NULL;
    }

    c->rbuf = malloc(AD_RBUF);
    if (c->rbuf == NULL || pst_fd_watch(fd, ad_read_handler, c) != PST_OK) {
        free(c->rbuf);
        c->rbuf = NULL;
        close(fd);
        return NULL;
    }
    c->fd = fd;

    /* Dovecot speaks first; ours waits in the buffer until it did */
    n = snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%d\n",
                 (int) getpid());
    if (ad_queue(c, hello, (size_t) n) != PST_OK) {
        ad_close(c, "out of memory");
        return NULL;
    }

    return c;
}


static void
ad_close(ad_conn_t *c, const char *why)
{
    uint32_t  i;

    if (c->fd == -1) {
        return;
    }

    pst_log(PST_LOG_WARN, 0, "auth_dovecot: connection to %.*s closed: %s",
            (int) c->conf->socket.len, c->conf->socket.data, why);

    (void) pst_fd_unwatch(c->fd);
    close(c->fd);
    c->fd = -1;
    c->ready = 0;
    free(c->rbuf);
    free(c->wbuf);
    free(c->mechs);
    c->rbuf = NULL;
    c->wbuf = NULL;
    c->mechs = NULL;
    c->wlen = 0;
    c->wsize = 0;
    c->rlen = 0;

    /* every step waiting on it: a temporary failure (454) */
    for (i = 0; ad_reqs != NULL && i < AD_MAX_REQUESTS; i++) {
        if (ad_reqs[i].used && ad_reqs[i].conn == c) {
            if (ad_reqs[i].waiting) {
                ad_answer(&ad_reqs[i], PST_HOOK_TEMPFAIL,
                          "Dovecot authentication service unavailable");
            }
            ad_reqs[i].used = 0;
        }
    }
}


static void
ad_exit_process(pst_cycle_t *cycle, void *conf)
{
    int  i;

    (void) cycle;
    (void) conf;

    for (i = 0; i < AD_MAX_CONNS; i++) {
        if (ad_conns[i].fd > 0 && ad_conns[i].rbuf != NULL) {
            (void) pst_fd_unwatch(ad_conns[i].fd);
            close(ad_conns[i].fd);
            ad_conns[i].fd = -1;
        }
    }
}


/* "user=bob\treason=..." -> the value of key, NUL-terminated in out */
static int
ad_arg(char **args, int nargs, const char *key, char *out, size_t size)
{
    size_t  k = strlen(key);
    int     i;

    for (i = 0; i < nargs; i++) {
        if (strncmp(args[i], key, k) == 0 && args[i][k] == '=') {
            snprintf(out, size, "%s", args[i] + k + 1);
            return 1;
        }
        if (strcmp(args[i], key) == 0) {
            out[0] = '\0';
            return 1;
        }
    }

    return 0;
}


static int
ad_b64_decode(const char *p, u_char *out, size_t size)
{
    size_t  n = strlen(p);
    int     k;

    if (n % 4 != 0 || n / 4 * 3 > size) {
        return -1;
    }
    k = EVP_DecodeBlock(out, (const u_char *) p, (int) n);
    if (k < 0) {
        return -1;
    }
    if (n >= 1 && p[n - 1] == '=') {
        k--;
    }
    if (n >= 2 && p[n - 2] == '=') {
        k--;
    }
    return k;
}


static void
ad_reply(ad_conn_t *c, char *line)
{
    pst_session_t  *s;
    ad_req_t       *r;
    char           *args[32], *p, value[1024];
    u_char          data[AD_LINE_MAX];
    int             nargs = 0, n;

    for (p = line; nargs < 32; ) {
        args[nargs++] = p;
        p = strchr(p, '\t');
        if (p == NULL) {
            break;
        }
        *p++ = '\0';
    }

    if (!c->ready) {
        if (strcmp(args[0], "MECH") == 0 && nargs >= 2) {
            n = c->mechs ? (int) strlen(c->mechs) : 0;
            p = realloc(c->mechs, (size_t) n + strlen(args[1]) + 3);
            if (p != NULL) {
                c->mechs = p;
                snprintf(p + n, strlen(args[1]) + 3, "%s%s ",
                         n ? "" : " ", args[1]);
            }
        } else if (strcmp(args[0], "VERSION") == 0 && nargs >= 2
                   && strcmp(args[1], "1") != 0)
        {
            ad_close(c, "unsupported protocol version");
        } else if (strcmp(args[0], "DONE") == 0) {
            c->ready = 1;
            if (ad_flush(c) == PST_ERROR) {
                ad_close(c, "write failed");
            }
        }
        return;
    }

    if (nargs < 2) {
        return;
    }

    r = ad_req_find((uint32_t) strtoul(args[1], NULL, 10));
    if (r == NULL || !r->waiting) {
        return;                       /* answered by a timeout already */
    }

    s = pst_hook_session(r->token);

    if (strcmp(args[0], "OK") == 0) {
        if (ad_arg(args + 2, nargs - 2, "user", r->user, sizeof(r->user))
            && s != NULL)
        {
            (void) pst_auth_set_user(s, (u_char *) r->user,
                                     strlen(r->user));
        }
        if (ad_arg(args + 2, nargs - 2, "resp", value, sizeof(value))
            && value[0] != '\0' && s != NULL)
        {
            /* SCRAM's server-final message: a last 334, then 235 */
            n = ad_b64_decode(value, data, sizeof(data));
            if (n < 0 || pst_auth_challenge(s, data, (size_t) n) != PST_OK)
            {
                ad_answer(r, PST_HOOK_TEMPFAIL, "bad data from Dovecot");
                ad_req_free(s, r);
                return;
            }
            r->final = 1;
            ad_answer(r, PST_HOOK_ACCEPT, NULL);
            return;
        }
        ad_answer(r, PST_HOOK_ACCEPT, NULL);
        ad_req_free(s, r);
        return;
    }

    if (strcmp(args[0], "CONT") == 0) {
        n = ad_b64_decode(nargs > 2 ? args[2] : "", data, sizeof(data));
        if (n < 0 || s == NULL
            || pst_auth_challenge(s, data, (size_t) n) != PST_OK)
        {
            ad_answer(r, PST_HOOK_TEMPFAIL, "bad data from Dovecot");
            ad_req_free(s, r);
            return;
        }
        ad_answer(r, PST_HOOK_ACCEPT, NULL);
        return;
    }

    if (strcmp(args[0], "FAIL") == 0) {
        if (ad_arg(args + 2, nargs - 2, "temp", value, sizeof(value))) {
            ad_answer(r, PST_HOOK_TEMPFAIL, "Dovecot: temporary failure");
        } else if (ad_arg(args + 2, nargs - 2, "reason", value,
                          sizeof(value)))
        {
            /* the reason is for the log, never for the client */
            ad_answer(r, PST_HOOK_REJECT, value);
        } else {
            ad_answer(r, PST_HOOK_REJECT, "Dovecot: failed");
        }
        ad_req_free(s, r);
        return;
    }
}


static void
ad_read_handler(int fd, void *data)
{
    ad_conn_t  *c = data;
    u_char     *p, *lf;
    ssize_t     n;

    (void) fd;

    for ( ;; ) {
        if (c->rlen == AD_RBUF) {
            ad_close(c, "line too long");
            return;
        }

        n = recv(c->fd, c->rbuf + c->rlen, AD_RBUF - c->rlen, 0);

        if (n == 0) {
            ad_close(c, "closed by Dovecot");
            return;
        }
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            ad_close(c, strerror(errno));
            return;
        }
        c->rlen += (size_t) n;

        p = c->rbuf;
        while ((lf = memchr(p, '\n', c->rlen - (size_t) (p - c->rbuf)))
               != NULL)
        {
            *lf = '\0';
            ad_reply(c, (char *) p);
            if (c->fd == -1) {
                return;               /* closed while handling */
            }
            p = lf + 1;
        }
        c->rlen -= (size_t) (p - c->rbuf);
        memmove(c->rbuf, p, c->rlen);
    }

    if (c->ready && c->wlen > 0 && ad_flush(c) == PST_ERROR) {
        ad_close(c, "write failed");
    }
}


/* ------------------------------------------------------------------ */
/* The hook                                                            */

static int
ad_b64_encode(char *dst, size_t size, const u_char *src, size_t n)
{
    if ((n + 2) / 3 * 4 + 1 > size) {
        return -1;
    }
    return EVP_EncodeBlock((u_char *) dst, src, (int) n);
}


static int
ad_mech_known(ad_conn_t *c, const pst_str_t *mech)
{
    char  m[32];

    if (c->mechs == NULL || mech->len >= sizeof(m) - 2) {
        return 0;
    }
    snprintf(m, sizeof(m), " %.*s ", (int) mech->len, mech->data);
    return strstr(c->mechs, m) != NULL;
}


static pst_verdict_e
ad_first_step(pst_call_t *call, ad_conf_t *conf, pst_session_t *s)
{
    const pst_str_t  *mech, *user, *zid, *pass, *resp;
    const char       *dmech;
    ad_conn_t        *c;
    ad_req_t         *r;
    char             *line, *p;
    u_char           *raw;
    size_t            rawlen, size;
    int               n;

    mech = pst_auth_mechanism(s);
    user = pst_auth_authcid(s);

    c = ad_connect(conf);
    if (c == NULL) {
        pst_call_reply(call, 0, NULL, "Dovecot authentication service"
                       " unavailable");
        return PST_HOOK_TEMPFAIL;
    }

    if (c->ready && user == NULL && !ad_mech_known(c, mech)) {
        return PST_HOOK_CONTINUE;     /* Dovecot does not offer it */
    }

    raw = NULL;
    rawlen = 0;

    if (user != NULL) {
        /* PLAIN or LOGIN, decoded by the core: Dovecot gets PLAIN */
        zid = pst_auth_authzid(s);
        pass = pst_auth_password(s);
        rawlen = zid->len + 1 + user->len + 1 + pass->len;
        raw = malloc(rawlen);
        if (raw == NULL) {
            return PST_HOOK_TEMPFAIL;
        }
        /* an empty authzid or password may have no data pointer:
         * memcpy() must not see NULL even for 0 bytes */
        if (zid->len > 0) {
            memcpy(raw, zid->data, zid->len);
        }
        raw[zid->len] = '\0';
        memcpy(raw + zid->len + 1, user->data, user->len);
        raw[zid->len + 1 + user->len] = '\0';
        if (pass->len > 0) {
            memcpy(raw + zid->len + 2 + user->len, pass->data, pass->len);
        }
        dmech = "PLAIN";
    } else {
        resp = pst_auth_response(s);
        if (resp != NULL) {
            raw = (u_char *) resp->data;
            rawlen = resp->len;
        }
        dmech = NULL;
    }

    r = ad_req_new();
    size = 512 + mech->len + (rawlen + 2) / 3 * 4;
    line = malloc(size);
    if (r == NULL || line == NULL) {
        if (user != NULL) {
            explicit_bzero(raw, rawlen);
            free(raw);
        }
        free(line);
        if (r != NULL) {
            r->used = 0;
        }
        return PST_HOOK_TEMPFAIL;
    }

    n = snprintf(line, size, "AUTH\t%u\t%.*s\tservice=%.*s%s"
                 "\trip=%.*s\tsession=%016llx", r->id,
                 dmech ? 5 : (int) mech->len,
                 dmech ? dmech : (char *) mech->data,
                 (int) conf->service.len, conf->service.data,
                 pst_session_tls(s) ? "\tsecured" : "",
                 (int) pst_session_client_addr(s)->len,
                 pst_session_client_addr(s)->data,
                 (unsigned long long) pst_session_id(s));
    p = line + n;

    if (raw != NULL) {
        p += snprintf(p, size - (size_t) (p - line), "\tresp=");
        p += ad_b64_encode(p, size - (size_t) (p - line), raw, rawlen);
    }
    *p++ = '\n';

    if (user != NULL) {
        explicit_bzero(raw, rawlen);
        free(raw);
    }

    r->conn = c;
    r->session = pst_session_id(s);
    r->token = pst_call_defer(call);
    r->waiting = 1;
    pst_session_set_ctx(s, &postern_module, r);

    /* on failure ad_close() has answered the step already, through
     * pst_hook_resume(): PENDING is still the right return */
    (void) ad_queue(c, line, (size_t) (p - line));
    explicit_bzero(line, size);
    free(line);

    return PST_HOOK_PENDING;
}


static pst_verdict_e
ad_next_step(pst_call_t *call, pst_session_t *s, ad_req_t *r)
{
    const pst_str_t  *resp;
    char             *line, *p;
    size_t            size;
    int               n;

    if (r->final) {
        /* the client's (empty) answer to the server-final message */
        resp = pst_auth_response(s);
        ad_req_free(s, r);
        if (resp == NULL || resp->len != 0) {
            return PST_HOOK_REJECT;
        }
        return PST_HOOK_ACCEPT;       /* the user was set with the OK */
    }

    if (r->conn->fd == -1) {
        ad_req_free(s, r);
        return PST_HOOK_TEMPFAIL;
    }

    resp = pst_auth_response(s);
    size = 64 + (resp ? (resp->len + 2) / 3 * 4 : 0);
    line = malloc(size);
    if (line == NULL) {
        return PST_HOOK_TEMPFAIL;
    }

    n = snprintf(line, size, "CONT\t%u\t", r->id);
    p = line + n;
    if (resp != NULL) {
        p += ad_b64_encode(p, size - (size_t) n, resp->data, resp->len);
    }
    *p++ = '\n';

    r->token = pst_call_defer(call);
    r->waiting = 1;
    n = ad_queue(r->conn, line, (size_t) (p - line));
    explicit_bzero(line, size);
    free(line);

    (void) n;        /* on failure ad_close() answered the step */
    return PST_HOOK_PENDING;
}


static pst_verdict_e
ad_auth(pst_call_t *call, void *cf)
{
    ad_conf_t      *conf = cf;
    pst_session_t  *s = pst_call_session(call);
    ad_req_t       *r;

    if (conf == NULL || conf->salen == 0) {
        return PST_HOOK_CONTINUE;
    }

    r = pst_session_get_ctx(s, &postern_module);
    if (r != NULL && (!r->used || r->session != pst_session_id(s))) {
        /* its slot was freed (connection lost) and maybe reused */
        pst_session_set_ctx(s, &postern_module, NULL);
        r = NULL;
    }

    if (pst_auth_step(s) == 0) {
        if (r != NULL) {
            /* an earlier exchange of this session was abandoned */
            ad_req_free(s, r);
        }
        return ad_first_step(call, conf, s);
    }

    if (r == NULL) {
        return PST_HOOK_CONTINUE;
    }

    return ad_next_step(call, s, r);
}
