/*
 * relay_smarthost.c -- a router (ABI 1.2, postern_module.h) that sends
 * mail through an upstream relay instead of the recipients' MX: the
 * reference components' relay host with "UserName"/"Password".
 *
 * The hosts are tried in the order written (every address of a host
 * before the next host).  TLS is verified by default (chain and name:
 * relay_tls_ca_file or the system's CAs): the password is never sent
 * to a host that could be anyone.  AUTH (PLAIN, LOGIN or SCRAM-SHA-256,
 * the best the relay offers) when an auth file is given.
 *
 * Which mail: everything when this is the only router module loaded;
 * else what the transport table sends to "smarthost" ("transport *
 * smarthost;", "transport corp.example smarthost [192.0.2.7]:587;" --
 * a next hop there replaces the host list).
 *
 * Directives (top level):
 *   relay_host HOST ...;                 host, host:port, [addr]:port
 *                                        (required; port 25 unless said)
 *   relay_host_tls none|may|encrypt|verify|implicit;   (verify; implicit:
 *                                        TLS from the first byte, 465)
 *   relay_host_tls_name NAME;            the name to verify (each host's
 *                                        own name by default)
 *   relay_host_auth_file PATH;           "USER PASSWORD" for the relay
 *                                        hosts; "HOST USER PASSWORD" for a
 *                                        transport table next hop HOST;
 *                                        read when the configuration is
 *                                        (by root: keep it mode 0600)
 *   relay_host_dns_timeout TIME;         each address lookup (10s)
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <netinet/in.h>

#include "postern_module.h"

#define SMARTHOST_MAX_AUTH       64

typedef struct {
    char                        *host;      /* NULL: the relay_host list */
    char                        *user;
    char                        *pass;
} smarthost_auth_t;

typedef struct {
    pst_hostlist_t              *hosts;
    pst_uint_t                   tls;
    pst_str_t                    tls_name;
    pst_str_t                    auth_file;
    pst_msec_t                   dns_timeout;
    smarthost_auth_t             auth[SMARTHOST_MAX_AUTH];
    pst_uint_t                   nauth;
} smarthost_conf_t;


static void *smarthost_create_conf(pst_conf_t *cf);
static char *smarthost_init_conf(pst_conf_t *cf, void *conf);
static char *smarthost_read_auth(pst_conf_t *cf, smarthost_conf_t *c);
static void *smarthost_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data);
static void smarthost_cleanup(void *data);

static const pst_conf_enum_t  smarthost_tls_modes[] = {
    { "none", PST_ROUTE_TLS_NONE },
    { "may", PST_ROUTE_TLS_MAY },
    { "encrypt", PST_ROUTE_TLS_ENCRYPT },
    { "verify", PST_ROUTE_TLS_VERIFY },
    { "implicit", PST_ROUTE_TLS_IMPLICIT },
    { NULL, 0 }
};

static const in_port_t  smarthost_port = 25;

static const pst_command_t  smarthost_commands[] = {
    { "relay_host", PST_CONF_MAIN | PST_CONF_1MORE,
      pst_conf_set_hostlist_slot, PST_MAIN_CONF,
      offsetof(smarthost_conf_t, hosts), &smarthost_port },
    { "relay_host_tls", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF,
      offsetof(smarthost_conf_t, tls), smarthost_tls_modes },
    { "relay_host_tls_name", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_MAIN_CONF,
      offsetof(smarthost_conf_t, tls_name), NULL },
    { "relay_host_auth_file", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, PST_MAIN_CONF,
      offsetof(smarthost_conf_t, auth_file), NULL },
    { "relay_host_dns_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF,
      offsetof(smarthost_conf_t, dns_timeout), NULL },
    pst_null_command
};

static const pst_router_t  smarthost_router = {
    .resolve = smarthost_resolve,
    .cancel = pst_hostlist_cancel,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "relay_smarthost",
    .version = "1.0",
    .description = "mail through an upstream relay, with AUTH and TLS",
    .commands = smarthost_commands,
    .create_main_conf = smarthost_create_conf,
    .init_main_conf = smarthost_init_conf,
    .router = &smarthost_router,
};


static void *
smarthost_create_conf(pst_conf_t *cf)
{
    smarthost_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(smarthost_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->tls = PST_CONF_UNSET_UINT;
    c->dns_timeout = PST_CONF_UNSET_MSEC;
    if (pst_pool_cleanup_add(pst_conf_pool(cf), smarthost_cleanup, c)
        != PST_OK)
    {
        return NULL;
    }
    return c;
}


/* The passwords are wiped with the configuration. */
static void
smarthost_cleanup(void *data)
{
    smarthost_conf_t  *c = data;
    pst_uint_t         i;

    for (i = 0; i < c->nauth; i++) {
        explicit_bzero(c->auth[i].pass, strlen(c->auth[i].pass));
        free(c->auth[i].host);
        free(c->auth[i].user);
        free(c->auth[i].pass);
    }
    c->nauth = 0;
}


static char *
smarthost_init_conf(pst_conf_t *cf, void *conf)
{
    smarthost_conf_t  *c = conf;

    pst_conf_merge_uint_value(c->tls, PST_CONF_UNSET_UINT,
                              PST_ROUTE_TLS_VERIFY);
    pst_conf_merge_msec_value(c->dns_timeout, PST_CONF_UNSET_MSEC, 10000);

    if (c->hosts == NULL) {
        return "relay_smarthost is loaded without relay_host";
    }
    if (c->dns_timeout == 0) {
        return "relay_host_dns_timeout must not be 0";
    }
    if (c->auth_file.len > 0) {
        return smarthost_read_auth(cf, c);
    }
    return PST_CONF_OK;
}


/* "USER PASSWORD" or "HOST USER PASSWORD" lines; '#' comments. */
static char *
smarthost_read_auth(pst_conf_t *cf, smarthost_conf_t *c)
{
    FILE              *f;
    char               line[1024], *w[4], *save;
    int                n, lineno = 0;
    smarthost_auth_t  *e;

    f = fopen((char *) c->auth_file.data, "re");
    if (f == NULL) {
        pst_conf_error(cf, "relay_host_auth_file \"%s\": %s",
                       c->auth_file.data, strerror(errno));
        return PST_CONF_ERROR;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        for (n = 0, save = NULL; n < 4; n++) {
            w[n] = strtok_r(n ? NULL : line, " \t\r\n", &save);
            if (w[n] == NULL || w[n][0] == '#') {
                break;
            }
        }
        if (n == 0) {
            continue;
        }
        if (n < 2 || n > 3 || c->nauth == SMARTHOST_MAX_AUTH) {
            fclose(f);
            explicit_bzero(line, sizeof(line));
            pst_conf_error(cf, "%s:%d: \"USER PASSWORD\" or \"HOST USER"
                           " PASSWORD\" (at most %d lines)",
                           c->auth_file.data, lineno, SMARTHOST_MAX_AUTH);
            return PST_CONF_ERROR;
        }
        e = &c->auth[c->nauth++];
        e->host = (n == 3) ? strdup(w[0]) : NULL;
        e->user = strdup(w[n - 2]);
        e->pass = strdup(w[n - 1]);
        if (e->user == NULL || e->pass == NULL || (n == 3 && !e->host)) {
            c->nauth--;
            free(e->host);
            free(e->user);
            free(e->pass);
            fclose(f);
            return PST_CONF_ERROR;
        }
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    return PST_CONF_OK;
}


static void *
smarthost_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data)
{
    smarthost_conf_t  *c = main_conf;
    pst_route_t        tmpl;
    pst_uint_t         i;
    const char        *host;

    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.tls = (int) c->tls;
    tmpl.tls_name = c->tls_name.len ? (const char *) c->tls_name.data : NULL;

    for (i = 0; i < c->nauth; i++) {
        host = c->auth[i].host;
        if ((host == NULL && nexthop->len == 0)
            || (host != NULL && strlen(host) == nexthop->len
                && strncasecmp(host, (const char *) nexthop->data,
                               nexthop->len) == 0))
        {
            tmpl.auth_user = c->auth[i].user;
            tmpl.auth_pass = c->auth[i].pass;
            break;
        }
    }

    return pst_hostlist_resolve(c->hosts, nexthop, 25, &tmpl,
                                c->dns_timeout, done, data);
}
