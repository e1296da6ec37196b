/*
 * policy_relay.c -- relay control: which recipients this server accepts.
 *
 * A recipient is accepted when
 *   - its domain is one of local_domains (mail for us), or
 *   - its domain is one of relay_domains (we are their MX/backup), or
 *   - the client may relay: its address is in relay_networks, or it
 *     authenticated.
 * Everything else gets "550 5.7.1 Relay access denied".  <Postmaster>
 * without a domain is always accepted (RFC 5321 4.5.1).
 *
 * Routing tricks never open a relay: a local part holding '%', '!' or
 * '@' (percent hack, bang path, quoted "user@other") is refused unless
 * the client may relay anyway; source routes were already stripped by the
 * core parser, so <@a:user@b> is judged as user@b.  Domains are compared
 * exactly, case-insensitively, after the core's syntax check (no
 * trailing dots, no empty labels); an address literal is never a local
 * domain unless it is listed as written, e.g. "[192.0.2.1]".
 *
 * Directives (smtp or server block):
 *   local_domains  example.test localhost ...;
 *   relay_domains  partner.test ...;
 *   relay_networks 127.0.0.0/8 ::1/128 192.0.2.0/24 ...;
 *   relay_authenticated on|off;         (default on)
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "postern_module.h"

typedef struct {
    int                          family;
    u_char                       addr[16];
    int                          bits;
} relay_cidr_t;

typedef struct {
    pst_array_t                 *local_domains;   /* pst_str_t */
    pst_array_t                 *relay_domains;   /* pst_str_t */
    pst_array_t                 *networks;        /* relay_cidr_t */
    pst_int_t                    authenticated;
} relay_conf_t;


static void *relay_create_conf(pst_conf_t *cf);
static char *relay_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *relay_set_domains(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *relay_set_networks(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e relay_rcpt(pst_call_t *call, void *conf);


static const pst_command_t  relay_commands[] = {
    { "local_domains", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      relay_set_domains, PST_SRV_CONF,
      offsetof(relay_conf_t, local_domains), NULL },
    { "relay_domains", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      relay_set_domains, PST_SRV_CONF,
      offsetof(relay_conf_t, relay_domains), NULL },
    { "relay_networks", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      relay_set_networks, PST_SRV_CONF, 0, NULL },
    { "relay_authenticated", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(relay_conf_t, authenticated), NULL },
    pst_null_command
};

static const pst_hook_t  relay_hooks[] = {
    { PST_PHASE_RCPT, relay_rcpt, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_relay",
    .version = "1.0",
    .description = "relay control: local and relay domains, networks",
    .commands = relay_commands,
    .create_srv_conf = relay_create_conf,
    .merge_srv_conf = relay_merge_conf,
    .hooks = relay_hooks,
};


static void *
relay_create_conf(pst_conf_t *cf)
{
    relay_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(relay_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->local_domains = PST_CONF_UNSET_PTR;
    c->relay_domains = PST_CONF_UNSET_PTR;
    c->networks = PST_CONF_UNSET_PTR;
    c->authenticated = PST_CONF_UNSET;
    return c;
}


static char *
relay_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    relay_conf_t  *prev = parent, *conf = child;

    (void) cf;

    pst_conf_merge_ptr_value(conf->local_domains, prev->local_domains, NULL);
    pst_conf_merge_ptr_value(conf->relay_domains, prev->relay_domains, NULL);
    pst_conf_merge_ptr_value(conf->networks, prev->networks, NULL);
    pst_conf_merge_value(conf->authenticated, prev->authenticated, 1);

    return PST_CONF_OK;
}


static char *
relay_set_domains(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_array_t  **ap;
    pst_str_t     *args, *d;
    pst_uint_t     n, i, k;
    u_char        *p;

    ap = (pst_array_t **) ((u_char *) conf + cmd->offset);
    if (*ap == PST_CONF_UNSET_PTR) {
        *ap = pst_array_create(pst_conf_pool(cf), 8, sizeof(pst_str_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        if (args[i].len == 0 || args[i].len > 255
            || args[i].data[args[i].len - 1] == '.'
            || args[i].data[0] == '.')
        {
            pst_conf_error(cf, "invalid domain \"%s\" in \"%s\"",
                           args[i].data, cmd->name);
            return PST_CONF_ERROR;
        }
        d = pst_array_push(*ap);
        p = pst_palloc(pst_conf_pool(cf), args[i].len + 1);
        if (d == NULL || p == NULL) {
            return PST_CONF_ERROR;
        }
        for (k = 0; k < args[i].len; k++) {
            u_char  ch = args[i].data[k];
            p[k] = (ch >= 'A' && ch <= 'Z') ? (u_char) (ch | 0x20) : ch;
        }
        p[k] = '\0';
        d->data = p;
        d->len = args[i].len;
    }

    return PST_CONF_OK;
}


static int
relay_parse_cidr(const pst_str_t *s, relay_cidr_t *c)
{
    char   buf[64], *slash;
    long   bits;

    if (s->len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, s->data, s->len);
    buf[s->len] = '\0';

    slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash++ = '\0';
    }

    memset(c, 0, sizeof(relay_cidr_t));
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return -1;
    }

    if (slash != NULL) {
        char  *end;

        bits = strtol(slash, &end, 10);
        if (*slash == '\0' || *end != '\0' || bits < 0 || bits > c->bits) {
            return -1;
        }
        c->bits = (int) bits;
    }

    return 0;
}


static char *
relay_set_networks(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    relay_conf_t  *rc = conf;
    relay_cidr_t  *c;
    pst_str_t     *args;
    pst_uint_t     n, i;

    (void) cmd;

    if (rc->networks == PST_CONF_UNSET_PTR) {
        rc->networks = pst_array_create(pst_conf_pool(cf), 4,
                                        sizeof(relay_cidr_t));
        if (rc->networks == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        c = pst_array_push(rc->networks);
        if (c == NULL) {
            return PST_CONF_ERROR;
        }
        if (relay_parse_cidr(&args[i], c) != 0) {
            pst_conf_error(cf, "invalid network \"%s\" in \"relay_networks\""
                           " (use ADDRESS or ADDRESS/BITS)", args[i].data);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


static int
relay_cidr_match(const relay_cidr_t *c, const struct sockaddr *sa)
{
    const u_char  *a;
    u_char         v4[4];
    int            full, rest;

    if (sa->sa_family == AF_INET6) {
        a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        if (c->family == AF_INET) {
            /* an IPv4-mapped client matches IPv4 networks */
            static const u_char  mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0xff, 0xff };
            if (memcmp(a, mapped, 12) != 0) {
                return 0;
            }
            memcpy(v4, a + 12, 4);
            a = v4;
        }
    } else if (sa->sa_family == AF_INET) {
        if (c->family != AF_INET) {
            return 0;
        }
        a = (const u_char *) &((const struct sockaddr_in *) sa)->sin_addr;
    } else {
        return 0;
    }

    full = c->bits / 8;
    rest = c->bits % 8;

    if (memcmp(a, c->addr, (size_t) full) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a[full] ^ c->addr[full]) & (0xff << (8 - rest))) == 0;
}


static int
relay_domain_in(const pst_array_t *list, const u_char *d, size_t n)
{
    const pst_str_t  *s;
    pst_uint_t        i;

    if (list == NULL) {
        return 0;
    }

    s = list->elts;
    for (i = 0; i < list->nelts; i++) {
        if (s[i].len == n && strncasecmp((char *) s[i].data, (char *) d, n)
                             == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
relay_client_may_relay(relay_conf_t *conf, pst_session_t *s)
{
    const relay_cidr_t  *c;
    pst_uint_t           i;

    if (conf->authenticated && pst_session_auth_id(s) != NULL) {
        return 1;
    }

    if (conf->networks == NULL) {
        return 0;
    }

    c = conf->networks->elts;
    for (i = 0; i < conf->networks->nelts; i++) {
        if (relay_cidr_match(&c[i], pst_session_client_sockaddr(s))) {
            return 1;
        }
    }

    return 0;
}


static pst_verdict_e
relay_rcpt(pst_call_t *call, void *data)
{
    relay_conf_t     *conf = data;
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *rcpt;
    const u_char     *at, *p;
    size_t            dlen;
    int               relay_ok, routing;

    rcpt = pst_call_rcpt(call);
    if (rcpt == NULL) {
        return PST_HOOK_CONTINUE;
    }

    at = NULL;
    for (p = rcpt->data + rcpt->len; p > rcpt->data; p--) {
        if (p[-1] == '@') {
            at = p - 1;
            break;
        }
    }

    if (at == NULL) {
        return PST_HOOK_ACCEPT;        /* <Postmaster> */
    }

    dlen = (size_t) (rcpt->data + rcpt->len - at - 1);
    relay_ok = relay_client_may_relay(conf, s);

    routing = 0;
    for (p = rcpt->data; p < at; p++) {
        if (*p == '%' || *p == '!' || *p == '@') {
            routing = 1;
            break;
        }
    }

    if (relay_domain_in(conf->local_domains, at + 1, dlen)
        || relay_domain_in(conf->relay_domains, at + 1, dlen))
    {
        if (routing && !relay_ok) {
            pst_log_session(s, PST_LOG_NOTICE, "policy_relay: reject <%.*s>:"
                            " routing characters in local part",
                            (int) rcpt->len, rcpt->data);
            pst_call_reply(call, 550, "5.7.1", "<%.*s>: Relay access denied"
                           " (routing in local part)", (int) rcpt->len,
                           rcpt->data);
            return PST_HOOK_REJECT;
        }
        return PST_HOOK_ACCEPT;
    }

    if (relay_ok) {
        return PST_HOOK_ACCEPT;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_relay: reject <%.*s>: relay"
                    " access denied", (int) rcpt->len, rcpt->data);
    pst_call_reply(call, 550, "5.7.1", "<%.*s>: Relay access denied",
                   (int) rcpt->len, rcpt->data);
    return PST_HOOK_REJECT;
}
