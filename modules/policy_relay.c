/*
 * policy_relay.c -- relay control: which recipients this server accepts,
 * and (optionally) who may use our own domains as sender.
 *
 * A recipient is accepted when
 *   - its domain is one of local_domains (mail for us), or
 *   - its domain is one of relay_domains (we are their MX/backup), or
 *   - the client may relay: its address is in relay_networks, or it
 *     authenticated (relay_authenticated, on by default).
 * Everything else gets "550 5.7.1 Relay access denied".  <Postmaster>
 * without a domain is always accepted (RFC 5321 4.5.1).  Without any of
 * these directives nothing is accepted at all: the default relays
 * nothing (and the core refuses a recipient nobody accepted).
 *
 * Address tricks never open a relay:
 *   - a local part holding '%', '!' or '@' (percent hack, bang path,
 *     quoted "user@other") is refused for our domains unless the client
 *     may relay anyway: a downstream MTA might route on it;
 *   - source routes were stripped by the core parser, so <@a:user@b> is
 *     judged as user@b; "user@other@local", trailing dots and empty
 *     labels never get here (501 from the parser);
 *   - domains are compared exactly after normalisation: ASCII lowercase,
 *     internationalised domains (U-labels, and A-labels in any case)
 *     converted to their lowercase A-label with UTS #46 mapping (needs
 *     libidn2; without it such a domain never matches a list), address
 *     literals re-printed in canonical form.  A domain that does not
 *     normalise (bad punycode...) is foreign.  No suffix matching: a
 *     subdomain of a local domain is not local unless listed.
 *   - an address literal is never a local domain unless it is listed as
 *     written, e.g. "[192.0.2.1]".
 *
 * Every decision is logged with the rule that made it: rejects at
 * notice level, accepts at info level.
 *
 * Directives (smtp or server block):
 *   local_domains  example.test localhost ...;
 *   relay_domains  partner.test ...;
 *   relay_networks 127.0.0.0/8 ::1/128 192.0.2.0/24 ...;
 *   relay_authenticated on|off;       (default on)
 *   protect_local_senders on|off;     (default off) MAIL FROM in one of
 *                                     local_domains only from clients
 *                                     that may relay: 553 5.7.1 else
 *
 * Hook order: relay control judges each recipient twice.  At priority
 * -10 (after policy_limits and policy_access, whose "accept" may open
 * the way on purpose) it refuses what is not ours, so that greylisting
 * or recipient lookups are never spent on it.  At priority 100, last
 * whatever the load_module order, it gives the ACCEPT: every check
 * that may still refuse a recipient (policy_recipients,
 * policy_greylist...) runs between the two.  protect_local_senders
 * (MAIL) runs at -10 too, before the sender's DNS check.  A
 * module_priority line moves all hooks.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "postern_module.h"

#define RELAY_CHECK_PRIORITY  -10
#define RELAY_PRIORITY        100

typedef struct {
    pst_cidr_t                   cidr;
    pst_str_t                    text;            /* as configured */
} relay_net_t;

typedef struct {
    pst_array_t                 *local_domains;   /* pst_str_t */
    pst_array_t                 *relay_domains;   /* pst_str_t */
    pst_array_t                 *networks;        /* relay_net_t */
    pst_int_t                    authenticated;
    pst_int_t                    protect_senders;
} relay_conf_t;


static void *relay_create_conf(pst_conf_t *cf);
static char *relay_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *relay_set_domains(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *relay_set_networks(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e relay_mail(pst_call_t *call, void *conf);
static pst_verdict_e relay_rcpt_check(pst_call_t *call, void *conf);
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
    { "protect_local_senders", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(relay_conf_t, protect_senders), NULL },
    pst_null_command
};

static const pst_hook_t  relay_hooks[] = {
    { PST_PHASE_MAIL, relay_mail, RELAY_CHECK_PRIORITY },
    { PST_PHASE_RCPT, relay_rcpt_check, RELAY_CHECK_PRIORITY },
    { PST_PHASE_RCPT, relay_rcpt, RELAY_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_relay",
    .version = "1.1",
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
    c->protect_senders = PST_CONF_UNSET;
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
    pst_conf_merge_value(conf->protect_senders, prev->protect_senders, 0);

    return PST_CONF_OK;
}


static char *
relay_set_domains(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_array_t  **ap;
    pst_str_t     *args, *d;
    pst_uint_t     n, i;
    u_char         norm[PST_DOMAIN_MAX + 1];
    int            k;

    ap = (pst_array_t **) ((u_char *) conf + cmd->offset);
    if (*ap == PST_CONF_UNSET_PTR) {
        *ap = pst_array_create(pst_conf_pool(cf), 8, sizeof(pst_str_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        k = -1;
        if (args[i].len > 0 && args[i].data[0] != '.'
            && args[i].data[args[i].len - 1] != '.')
        {
            k = pst_domain_normalize(args[i].data, args[i].len, norm,
                                sizeof(norm));
        }
        if (k <= 0 || norm[k - 1] == '.') {
            pst_conf_error(cf, "invalid domain \"%s\" in \"%s\"%s",
                           args[i].data, cmd->name, pst_domain_idna() ? ""
                           : " (internationalised domains need libidn2)");
            return PST_CONF_ERROR;
        }
        d = pst_array_push(*ap);
        if (d == NULL) {
            return PST_CONF_ERROR;
        }
        d->len = (size_t) k;
        d->data = pst_palloc(pst_conf_pool(cf), (size_t) k + 1);
        if (d->data == NULL) {
            return PST_CONF_ERROR;
        }
        memcpy(d->data, norm, (size_t) k + 1);
    }

    return PST_CONF_OK;
}


static char *
relay_set_networks(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    relay_conf_t  *rc = conf;
    relay_net_t   *net;
    pst_str_t     *args;
    pst_uint_t     n, i;

    (void) cmd;

    if (rc->networks == PST_CONF_UNSET_PTR) {
        rc->networks = pst_array_create(pst_conf_pool(cf), 4,
                                        sizeof(relay_net_t));
        if (rc->networks == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        net = pst_array_push(rc->networks);
        if (net == NULL) {
            return PST_CONF_ERROR;
        }
        if (pst_cidr_parse(&args[i], &net->cidr) != PST_OK) {
            pst_conf_error(cf, "invalid network \"%s\" in \"relay_networks\""
                           " (use ADDRESS or ADDRESS/BITS)", args[i].data);
            return PST_CONF_ERROR;
        }
        net->text = args[i];
    }

    return PST_CONF_OK;
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
        if (s[i].len == n && memcmp(s[i].data, d, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* Why the client may relay ("relay_networks 10.0.0.0/8", "authenticated
 * as bob"), or NULL when it may not.  why is filled for the log. */
static const char *
relay_client_may_relay(relay_conf_t *conf, pst_session_t *s, char *why,
    size_t size)
{
    const relay_net_t  *net;
    const pst_str_t    *id;
    pst_uint_t          i;

    id = pst_session_auth_id(s);
    if (conf->authenticated && id != NULL) {
        snprintf(why, size, "authenticated as %.*s",
                 (int) (id->len > 128 ? 128 : id->len), id->data);
        return why;
    }

    if (conf->networks == NULL) {
        return NULL;
    }

    net = conf->networks->elts;
    for (i = 0; i < conf->networks->nelts; i++) {
        if (pst_cidr_match(&net[i].cidr, pst_session_client_sockaddr(s))) {
            snprintf(why, size, "relay_networks %.*s",
                     (int) net[i].text.len, net[i].text.data);
            return why;
        }
    }

    return NULL;
}


/* The domain of an address: after the last '@' (a quoted local part may
 * hold '@', a domain never does).  NULL for <Postmaster>. */
static const u_char *
relay_at(const pst_str_t *addr)
{
    const u_char  *p;

    for (p = addr->data + addr->len; p > addr->data; p--) {
        if (p[-1] == '@') {
            return p - 1;
        }
    }

    return NULL;
}


/*
 * Judge a recipient.  The early pass (priority RELAY_CHECK_PRIORITY)
 * only refuses, so that a recipient we would never take is refused
 * before greylisting or DNS work is spent on it; the final pass
 * (RELAY_PRIORITY, last) gives the ACCEPT.
 */
static pst_verdict_e
relay_judge(pst_call_t *call, relay_conf_t *conf, int final)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *rcpt;
    const u_char     *at, *p;
    const char       *relay_ok, *list;
    u_char            norm[PST_DOMAIN_MAX + 1];
    char              why[192];
    int               k, routing;

    rcpt = pst_call_rcpt(call);
    if (rcpt == NULL) {
        return PST_HOOK_CONTINUE;
    }

    at = relay_at(rcpt);
    if (at == NULL) {
        if (!final) {
            return PST_HOOK_CONTINUE;
        }
        pst_log_session(s, PST_LOG_INFO, "policy_relay: accept <%.*s>:"
                        " postmaster (RFC 5321 4.5.1)", (int) rcpt->len,
                        rcpt->data);
        return PST_HOOK_ACCEPT;
    }

    relay_ok = relay_client_may_relay(conf, s, why, sizeof(why));

    routing = 0;
    for (p = rcpt->data; p < at; p++) {
        if (*p == '%' || *p == '!' || *p == '@') {
            routing = 1;
            break;
        }
    }

    k = pst_domain_normalize(at + 1, (size_t) (rcpt->data + rcpt->len - at - 1),
                        norm, sizeof(norm));

    list = NULL;
    if (k > 0) {
        if (relay_domain_in(conf->local_domains, norm, (size_t) k)) {
            list = "local_domains";
        } else if (relay_domain_in(conf->relay_domains, norm, (size_t) k)) {
            list = "relay_domains";
        }
    }

    if (list != NULL) {
        if (routing && relay_ok == NULL) {
            pst_log_session(s, PST_LOG_NOTICE, "policy_relay: reject <%.*s>:"
                            " routing characters in the local part of a"
                            " %s address", (int) rcpt->len, rcpt->data,
                            list);
            pst_call_reply(call, 550, "5.7.1", "<%.*s>: Relay access denied"
                           " (routing in local part)", (int) rcpt->len,
                           rcpt->data);
            return PST_HOOK_REJECT;
        }
        if (!final) {
            return PST_HOOK_CONTINUE;
        }
        pst_log_session(s, PST_LOG_INFO, "policy_relay: accept <%.*s>: %s"
                        " %s", (int) rcpt->len, rcpt->data, list, norm);
        return PST_HOOK_ACCEPT;
    }

    if (relay_ok != NULL) {
        if (!final) {
            return PST_HOOK_CONTINUE;
        }
        pst_log_session(s, PST_LOG_INFO, "policy_relay: accept <%.*s>:"
                        " relaying for %s", (int) rcpt->len, rcpt->data,
                        relay_ok);
        return PST_HOOK_ACCEPT;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_relay: reject <%.*s>: relay"
                    " access denied (domain %s is in no list and the"
                    " client may not relay)", (int) rcpt->len, rcpt->data,
                    k > 0 ? (char *) norm : "that does not normalise");
    pst_call_reply(call, 550, "5.7.1", "<%.*s>: Relay access denied",
                   (int) rcpt->len, rcpt->data);
    return PST_HOOK_REJECT;
}


static pst_verdict_e
relay_rcpt_check(pst_call_t *call, void *conf)
{
    return relay_judge(call, conf, 0);
}


static pst_verdict_e
relay_rcpt(pst_call_t *call, void *conf)
{
    return relay_judge(call, conf, 1);
}


/* protect_local_senders: our own domains as sender only from clients
 * that may relay (a spammer's favourite forgery). */
static pst_verdict_e
relay_mail(pst_call_t *call, void *data)
{
    relay_conf_t     *conf = data;
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *from;
    const u_char     *at;
    u_char            norm[PST_DOMAIN_MAX + 1];
    char              why[192];
    int               k;

    if (!conf->protect_senders) {
        return PST_HOOK_CONTINUE;
    }

    from = pst_tx_sender(s);
    if (from == NULL || from->len == 0) {
        return PST_HOOK_CONTINUE;          /* <>: bounces come from anyone */
    }

    at = relay_at(from);
    if (at == NULL) {
        return PST_HOOK_CONTINUE;
    }

    k = pst_domain_normalize(at + 1, (size_t) (from->data + from->len - at - 1),
                        norm, sizeof(norm));
    if (k <= 0 || !relay_domain_in(conf->local_domains, norm, (size_t) k)) {
        return PST_HOOK_CONTINUE;
    }

    if (relay_client_may_relay(conf, s, why, sizeof(why)) != NULL) {
        pst_log_session(s, PST_LOG_INFO, "policy_relay: sender <%.*s> in"
                        " local_domains allowed: %s", (int) from->len,
                        from->data, why);
        return PST_HOOK_CONTINUE;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_relay: reject sender <%.*s>:"
                    " protect_local_senders (local_domains %s, client not"
                    " authenticated and not in relay_networks)",
                    (int) from->len, from->data, norm);
    pst_call_reply(call, 553, "5.7.1", "<%.*s>: Sender address rejected:"
                   " not logged in", (int) from->len, from->data);
    return PST_HOOK_REJECT;
}
