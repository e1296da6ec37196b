/*
 * filter_milter.c -- a milter client: Sendmail's content filter
 * protocol (version 6, or what the filter speaks), so that rspamd,
 * OpenDKIM, clamav-milter and the like filter Postern's mail as they
 * filter Postfix's.
 *
 * Each server block lists its milters in order; a session asks each in
 * turn at every step (connect, HELO, MAIL, RCPT, DATA, end of data) and
 * the first that does not say "continue" decides.  Everything runs on
 * the worker's event loop: a hook sends, returns PENDING, and the reply
 * (or a timeout, or the connection breaking) resumes the session.  A
 * milter that cannot be reached, times out or breaks the protocol gets
 * its default_action (tempfail, accept or reject) for the rest of the
 * session, logged with the queue ID.
 *
 * Directive (smtp or server block; repeatable, in order):
 *   milter ADDRESS [default_action=tempfail|accept|reject]
 *                  [timeout=10s] [connect_timeout=5s];
 * ADDRESS: inet:HOST:PORT, inet:PORT@HOST, inet6:[ADDR]:PORT, unix:PATH.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "milter.h"

static void *milter_create_conf(pst_conf_t *cf);
static char *milter_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *milter_set(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static int milter_set_param(const pst_str_t *arg, milter_conf_t *m);
static int milter_parse_unix(const char *path, milter_conf_t *m);
static int milter_parse_addr(const pst_str_t *a, milter_conf_t *m);
static void milter_cleanup(void *data);
static int milter_macro(milter_conn_t *m, const char *name, pst_str_t *v);

/* the SMTP phase of each SMFIC_ command (the hooks it comes from) */
static const pst_hook_t  milter_hooks[] = {
    { PST_PHASE_CONNECT, milter_hook, 60 },
    { PST_PHASE_HELO, milter_hook, 60 },
    { PST_PHASE_MAIL, milter_hook, 60 },
    { PST_PHASE_RCPT, milter_hook, 60 },
    { PST_PHASE_DATA, milter_hook, 60 },
    { PST_PHASE_MESSAGE, milter_hook, 60 },
    { PST_PHASE_UNKNOWN, milter_hook, 60 },
    { PST_PHASE_DISCONNECT, milter_disconnect, 60 },
    pst_null_hook
};

static const pst_command_t  milter_commands[] = {
    { "milter", PST_CONF_ANY_SMTP | PST_CONF_1MORE, milter_set,
      PST_SRV_CONF, 0, NULL },
    pst_null_command
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "filter_milter",
    .version = "1.0",
    .description = "content filters through the milter protocol",
    .commands = milter_commands,
    .create_srv_conf = milter_create_conf,
    .merge_srv_conf = milter_merge_conf,
    .hooks = milter_hooks,
};

/* the macros each stage sends when the filter does not list its own */
static const char  *milter_default_macros[MILTER_STAGES] = {
    "j {daemon_name} {client_addr} {client_name} {client_port}"
        " {daemon_addr}",
    "{tls_version} {cipher} {cipher_bits}",
    "i {auth_authen} {auth_type} {mail_addr}",
    "{rcpt_addr}",
    "i",
    "i",
    "i"
};

static const char  *milter_known_macros[] = {
    "i", "j", "{daemon_name}", "{daemon_addr}", "{client_addr}",
    "{client_name}", "{client_port}", "{auth_authen}", "{auth_type}",
    "{tls_version}", "{cipher}", "{cipher_bits}", "{mail_addr}",
    "{rcpt_addr}", NULL
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
milter_create_conf(pst_conf_t *cf)
{
    milter_srv_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(milter_srv_conf_t));
    return c;
}


static char *
milter_merge_conf(pst_conf_t *cf, void *prev, void *conf)
{
    milter_srv_conf_t  *p = prev, *c = conf;

    (void) cf;
    if (c->milters == NULL) {
        c->milters = p->milters;
    }
    return PST_CONF_OK;
}


static int
milter_parse_unix(const char *path, milter_conf_t *m)
{
    struct sockaddr_un  *sun = (struct sockaddr_un *) &m->sa;

    if (strlen(path) == 0 || strlen(path) >= sizeof(sun->sun_path)) {
        return PST_ERROR;
    }
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    m->salen = sizeof(struct sockaddr_un);
    return PST_OK;
}


static int
milter_parse_addr(const pst_str_t *a, milter_conf_t *m)
{
    struct sockaddr_in   *sin = (struct sockaddr_in *) &m->sa;
    struct sockaddr_in6  *sin6 = (struct sockaddr_in6 *) &m->sa;
    char                  buf[512], *host, *port, *at;
    long                  n;

    if (a->len >= sizeof(buf)) {
        return PST_ERROR;
    }
    memcpy(buf, a->data, a->len);
    buf[a->len] = '\0';
    memset(&m->sa, 0, sizeof(m->sa));

    if (strncmp(buf, "unix:", 5) == 0 || strncmp(buf, "local:", 6) == 0
        || buf[0] == '/')
    {
        return milter_parse_unix(buf[0] == '/' ? buf : strchr(buf, ':') + 1,
                                 m);
    }

    host = buf;
    if (strncmp(buf, "inet:", 5) == 0) {
        host = buf + 5;
    } else if (strncmp(buf, "inet6:", 6) == 0) {
        host = buf + 6;
    }

    at = strchr(host, '@');
    if (at != NULL) {                      /* Sendmail: PORT@HOST */
        *at = '\0';
        port = host;
        host = at + 1;
    } else {                               /* Postfix: HOST:PORT */
        port = strrchr(host, ':');
        if (port == NULL) {
            return PST_ERROR;
        }
        *port++ = '\0';
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host[strlen(host) - 1] = '\0';
        host++;
    }

    n = strtol(port, &at, 10);
    if (*port == '\0' || *at != '\0' || n < 1 || n > 65535) {
        return PST_ERROR;
    }

    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) n);
        m->salen = sizeof(struct sockaddr_in);
        return PST_OK;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) n);
        m->salen = sizeof(struct sockaddr_in6);
        return PST_OK;
    }
    return PST_ERROR;    /* an address, not a name: no DNS in the config */
}


/* default_action=..., timeout=..., connect_timeout=... */
static int
milter_set_param(const pst_str_t *arg, milter_conf_t *m)
{
    static const char  *acts[] = { "tempfail", "accept", "reject" };
    pst_str_t           v = *arg;
    pst_msec_t         *slot;
    int64_t             t;
    int                 i;

    if (v.len > 15 && strncmp((char *) v.data, "default_action=", 15) == 0) {
        for (i = 0; i < 3; i++) {
            if (strcmp((char *) v.data + 15, acts[i]) == 0) {
                m->fail = (milter_fail_e) i;
                return PST_OK;
            }
        }
        return PST_ERROR;
    }

    if (v.len > 8 && strncmp((char *) v.data, "timeout=", 8) == 0) {
        slot = &m->timeout;
        v.data += 8;
        v.len -= 8;
    } else if (v.len > 16
               && strncmp((char *) v.data, "connect_timeout=", 16) == 0)
    {
        slot = &m->connect_timeout;
        v.data += 16;
        v.len -= 16;
    } else {
        return PST_ERROR;
    }

    t = pst_parse_msec(&v);
    if (t <= 0) {
        return PST_ERROR;
    }
    *slot = (pst_msec_t) t;
    return PST_OK;
}


static char *
milter_set(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    milter_srv_conf_t  *c = conf;
    milter_conf_t      *m;
    pst_str_t          *args;
    pst_uint_t          n, i;

    (void) cmd;
    args = pst_conf_args(cf, &n);

    if (c->milters == NULL) {
        c->milters = pst_array_create(pst_conf_pool(cf), 2,
                                      sizeof(milter_conf_t));
        if (c->milters == NULL) {
            return PST_CONF_ERROR;
        }
    }
    if (c->milters->nelts == MILTER_MAX) {
        return "has too many milters in this block";
    }
    m = pst_array_push(c->milters);
    if (m == NULL) {
        return PST_CONF_ERROR;
    }
    memset(m, 0, sizeof(milter_conf_t));
    m->name = args[1];
    m->fail = MILTER_FAIL_TEMPFAIL;
    m->timeout = 10000;
    m->connect_timeout = 5000;

    if (milter_parse_addr(&args[1], m) != PST_OK) {
        pst_conf_error(cf, "invalid milter address \"%s\" (inet:ADDR:PORT,"
                       " inet:PORT@ADDR or unix:PATH)", args[1].data);
        return PST_CONF_ERROR;
    }

    for (i = 2; i < n; i++) {
        if (milter_set_param(&args[i], m) != PST_OK) {
            pst_conf_error(cf, "invalid milter parameter \"%s\"",
                           args[i].data);
            return PST_CONF_ERROR;
        }
    }
    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Per-session state                                                   */

milter_sess_t *
milter_session(pst_session_t *s, milter_srv_conf_t *conf)
{
    milter_sess_t  *ms;
    milter_conf_t  *mc;
    pst_pool_t     *pool = pst_session_pool(s);
    pst_uint_t      i;

    ms = pst_session_get_ctx(s, &postern_module);
    if (ms != NULL) {
        return ms;
    }

    ms = pst_pcalloc(pool, sizeof(milter_sess_t));
    if (ms == NULL) {
        return NULL;
    }
    ms->s = s;
    ms->n = conf->milters->nelts;
    ms->m = pst_pcalloc(pool, ms->n * sizeof(milter_conn_t));
    if (ms->m == NULL
        || pst_pool_cleanup_add(pool, milter_cleanup, ms) != PST_OK)
    {
        return NULL;
    }
    mc = conf->milters->elts;
    for (i = 0; i < ms->n; i++) {
        ms->m[i].conf = &mc[i];
        ms->m[i].ms = ms;
        ms->m[i].fd = -1;
    }
    pst_session_set_ctx(s, &postern_module, ms);
    return ms;
}


static void
milter_cleanup(void *data)
{
    milter_sess_t  *ms = data;
    pst_uint_t      i;

    for (i = 0; i < ms->n; i++) {
        milter_close(&ms->m[i]);
    }
}


void
milter_log(milter_conn_t *m, int level, const char *fmt, ...)
{
    const pst_str_t  *id;
    va_list           ap;
    char              msg[512];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    id = pst_tx_id(m->ms->s);
    pst_log_session(m->ms->s, level, "milter %.*s:%s%.*s %s",
                    (int) m->conf->name.len, m->conf->name.data,
                    id ? " id=" : "", id ? (int) id->len : 0,
                    id ? (char *) id->data : "", msg);
}


/* ------------------------------------------------------------------ */
/* Macros                                                              */

static int
milter_macro(milter_conn_t *m, const char *name, pst_str_t *v)
{
    pst_session_t     *s = m->ms->s;
    const pst_str_t   *p = NULL;
    const char        *c = NULL;
    static char        num[32];

    if (strcmp(name, "i") == 0) {
        p = pst_tx_id(s);
    } else if (strcmp(name, "j") == 0 || strcmp(name, "{daemon_name}") == 0)
    {
        p = pst_session_server_name(s);
    } else if (strcmp(name, "{client_addr}") == 0) {
        p = pst_session_client_addr(s);
    } else if (strcmp(name, "{client_name}") == 0) {
        p = pst_session_client_name(s);
        c = p ? NULL : "unknown";
    } else if (strcmp(name, "{client_port}") == 0) {
        const struct sockaddr  *sa = pst_session_client_sockaddr(s);

        snprintf(num, sizeof(num), "%u", sa->sa_family == AF_INET6
                 ? ntohs(((struct sockaddr_in6 *) sa)->sin6_port)
                 : sa->sa_family == AF_INET
                 ? ntohs(((struct sockaddr_in *) sa)->sin_port) : 0);
        c = num;
    } else if (strcmp(name, "{auth_authen}") == 0) {
        p = pst_session_auth_id(s);
    } else if (strcmp(name, "{auth_type}") == 0) {
        p = pst_session_auth_id(s) ? pst_auth_mechanism(s) : NULL;
    } else if (strcmp(name, "{tls_version}") == 0) {
        c = pst_session_tls_version(s);
    } else if (strcmp(name, "{cipher}") == 0) {
        c = pst_session_tls_cipher(s);
    } else if (strcmp(name, "{mail_addr}") == 0) {
        p = pst_tx_sender(s);
    } else if (strcmp(name, "{rcpt_addr}") == 0) {
        p = m->ms->rcpt.len ? &m->ms->rcpt : NULL;
    }

    if (p != NULL) {
        *v = *p;
        return 1;
    }
    if (c != NULL) {
        v->data = (u_char *) c;
        v->len = strlen(c);
        return 1;
    }
    return 0;
}


int
milter_put_macros(milter_conn_t *m, int stage, int cmd)
{
    const u_char  *list;
    size_t         len;
    pst_str_t      v;
    u_char         c = (u_char) cmd;
    int            i, any = 0;

    if (m->macros[stage].data != NULL) {
        list = m->macros[stage].data;
        len = m->macros[stage].len;
    } else {
        list = (const u_char *) milter_default_macros[stage];
        len = strlen(milter_default_macros[stage]);
    }

    if (milter_frame_begin(&m->out, SMFIC_MACRO) != 0
        || milter_put(&m->out, &c, 1) != 0)
    {
        return PST_ERROR;
    }
    for (i = 0; milter_known_macros[i] != NULL; i++) {
        if (!milter_macro_listed(list, len, milter_known_macros[i])
            || !milter_macro(m, milter_known_macros[i], &v))
        {
            continue;
        }
        if (milter_put_str(&m->out, milter_known_macros[i],
                           strlen(milter_known_macros[i])) != 0
            || milter_put_str(&m->out, v.data, v.len) != 0)
        {
            return PST_ERROR;
        }
        any = 1;
    }
    if (!any) {
        milter_frame_cancel(&m->out);
        return PST_OK;
    }
    return milter_frame_end(&m->out);
}
