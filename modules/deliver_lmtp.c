/*
 * deliver_lmtp.c -- a router (ABI 1.2, postern_module.h) that hands mail
 * to a mailbox server over LMTP (RFC 2033): LHLO instead of EHLO, and
 * after the data one reply per accepted recipient, so each recipient
 * gets its own outcome (a full mailbox defers or fails only its owner).
 *
 * Which mail: what the transport table sends to "lmtp" ("transport
 * example.com lmtp;"; a next hop there, host:port, replaces the host
 * list), or everything when this is the only router module loaded.
 *
 * Directives (top level):
 *   lmtp_host HOST ...;          unix:/path, host:port, [addr]:port
 *                                (required; port 24 unless said)
 *   lmtp_tls none|may|encrypt|verify;    STARTTLS to the server (none:
 *                                it is usually local)
 *   lmtp_dns_timeout TIME;       each address lookup (10s)
 */

#include <stdio.h>
#include <string.h>

#include "postern_module.h"

typedef struct {
    pst_hostlist_t              *hosts;
    pst_uint_t                   tls;
    pst_msec_t                   dns_timeout;
} lmtp_conf_t;


static void *lmtp_create_conf(pst_conf_t *cf);
static char *lmtp_init_conf(pst_conf_t *cf, void *conf);
static void *lmtp_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data);

static const pst_conf_enum_t  lmtp_tls_modes[] = {
    { "none", PST_ROUTE_TLS_NONE },
    { "may", PST_ROUTE_TLS_MAY },
    { "encrypt", PST_ROUTE_TLS_ENCRYPT },
    { "verify", PST_ROUTE_TLS_VERIFY },
    { NULL, 0 }
};

static const in_port_t  lmtp_port = 24;

static const pst_command_t  lmtp_commands[] = {
    { "lmtp_host", PST_CONF_MAIN | PST_CONF_1MORE,
      pst_conf_set_hostlist_slot, PST_MAIN_CONF,
      offsetof(lmtp_conf_t, hosts), &lmtp_port },
    { "lmtp_tls", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF,
      offsetof(lmtp_conf_t, tls), lmtp_tls_modes },
    { "lmtp_dns_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF,
      offsetof(lmtp_conf_t, dns_timeout), NULL },
    pst_null_command
};

static const pst_router_t  lmtp_router = {
    .resolve = lmtp_resolve,
    .cancel = pst_hostlist_cancel,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "deliver_lmtp",
    .version = "1.0",
    .description = "delivery to a mailbox server over LMTP (RFC 2033)",
    .commands = lmtp_commands,
    .create_main_conf = lmtp_create_conf,
    .init_main_conf = lmtp_init_conf,
    .router = &lmtp_router,
};


static void *
lmtp_create_conf(pst_conf_t *cf)
{
    lmtp_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(lmtp_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->tls = PST_CONF_UNSET_UINT;
    c->dns_timeout = PST_CONF_UNSET_MSEC;
    return c;
}


static char *
lmtp_init_conf(pst_conf_t *cf, void *conf)
{
    lmtp_conf_t  *c = conf;

    (void) cf;

    pst_conf_merge_uint_value(c->tls, PST_CONF_UNSET_UINT,
                              PST_ROUTE_TLS_NONE);
    pst_conf_merge_msec_value(c->dns_timeout, PST_CONF_UNSET_MSEC, 10000);

    if (c->hosts == NULL) {
        return "deliver_lmtp is loaded without lmtp_host";
    }
    if (c->dns_timeout == 0) {
        return "lmtp_dns_timeout must not be 0";
    }
    return PST_CONF_OK;
}


static void *
lmtp_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data)
{
    lmtp_conf_t  *c = main_conf;
    pst_route_t   tmpl;

    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.flags = PST_ROUTE_LMTP;
    tmpl.tls = (int) c->tls;
    return pst_hostlist_resolve(c->hosts, nexthop, 24, &tmpl,
                                c->dns_timeout, done, data);
}
