/*
 * pst_deliver_conf.c -- the delivery layer's main-level directives (a
 * built-in module, like the engine's):
 *
 *   relay_tls none|may|encrypt|verify|dane|dane-only;   to next hops (may)
 *   relay_tls_ca_file PATH;              CAs for verify (system store)
 *   relay_timeout STAGE TIME;            connect greeting helo mail rcpt
 *                                        data data_block data_done
 *                                        (RFC 5321 4.5.3.2 defaults)
 *   relay_connection_reuse N;            messages per connection (100)
 *   relay_connection_idle TIME;          idle connection kept (5s)
 *   relay_helo_name NAME;                EHLO name (the smtp hostname)
 *   relay_source_address ADDR;           local address to connect from
 *   max_received_headers N;              more: failed 5.4.6 (100)
 */

#include "pst_core.h"
#include "pst_smtp_client.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"

#include <arpa/inet.h>


static void *pst_deliver_conf_create(pst_conf_t *cf);
static char *pst_deliver_conf_init(pst_conf_t *cf, void *conf);
static char *pst_deliver_conf_timeout(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_deliver_conf_source(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_deliver_conf_helo(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);


const pst_conf_enum_t  pst_deliver_tls_policies[] = {
    { "none", PST_DLV_TLS_NONE },
    { "may", PST_DLV_TLS_MAY },
    { "encrypt", PST_DLV_TLS_ENCRYPT },
    { "verify", PST_DLV_TLS_VERIFY },
    { "dane", PST_DLV_TLS_DANE },
    { "dane-only", PST_DLV_TLS_DANE_ONLY },
    { "mta-sts", PST_DLV_TLS_MTA_STS },
    { NULL, 0 }
};

static const char  *pst_deliver_stages[PST_DLV_T_N] = {
    "connect", "greeting", "helo", "mail", "rcpt", "data", "data_block",
    "data_done"
};

#define DC(f)  offsetof(pst_deliver_conf_t, f)

static const pst_command_t  pst_deliver_conf_commands[] = {
    { "relay_tls", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF, DC(tls),
      pst_deliver_tls_policies },
    { "relay_tls_ca_file", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_MAIN_CONF, DC(tls_ca_file), NULL },
    { "relay_timeout", PST_CONF_MAIN | PST_CONF_TAKE2,
      pst_deliver_conf_timeout, PST_MAIN_CONF, 0, NULL },
    { "relay_connection_reuse", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF, DC(reuse), NULL },
    { "relay_connection_idle", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF, DC(idle), NULL },
    { "relay_helo_name", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_deliver_conf_helo, PST_MAIN_CONF, DC(helo_name), NULL },
    { "relay_source_address", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_deliver_conf_source, PST_MAIN_CONF, 0, NULL },
    { "max_received_headers", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF, DC(max_received), NULL },
    { "mta_sts_port", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF, DC(sts_port), NULL },
    { "mta_sts_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF, DC(sts_timeout), NULL },
    { "tls_report", PST_CONF_MAIN | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_MAIN_CONF, DC(tls_report), NULL },
    { "tls_report_interval", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF, DC(tls_report_interval),
      NULL },
    { "tls_report_submitter", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_deliver_conf_helo, PST_MAIN_CONF, DC(tls_report_submitter),
      NULL },
    { "tls_report_contact", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_text_slot, PST_MAIN_CONF, DC(tls_report_contact), NULL },
    pst_null_command
};

const pst_module_t  pst_deliver_conf_module = {
    PST_MODULE_HEADER,
    .name = "deliver",
    .version = PST_VERSION,
    .description = "outbound SMTP delivery attempts",
    .commands = pst_deliver_conf_commands,
    .create_main_conf = pst_deliver_conf_create,
    .init_main_conf = pst_deliver_conf_init,
};


static void *
pst_deliver_conf_create(pst_conf_t *cf)
{
    pst_deliver_conf_t  *c;
    pst_uint_t           i;

    c = pst_pcalloc(cf->pool, sizeof(pst_deliver_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->tls = PST_CONF_UNSET_UINT;
    for (i = 0; i < PST_DLV_T_N; i++) {
        c->timeouts[i] = PST_CONF_UNSET_MSEC;
    }
    c->reuse = PST_CONF_UNSET;
    c->idle = PST_CONF_UNSET_MSEC;
    c->max_received = PST_CONF_UNSET;
    c->sts_port = PST_CONF_UNSET;
    c->sts_timeout = PST_CONF_UNSET_MSEC;
    c->tls_report = PST_CONF_UNSET;
    c->tls_report_interval = PST_CONF_UNSET_MSEC;
    return c;
}


static char *
pst_deliver_conf_init(pst_conf_t *cf, void *conf)
{
    pst_deliver_conf_t  *c = conf;
    pst_uint_t           i;

    if (c->tls == PST_CONF_UNSET_UINT) {
        c->tls = PST_SMTPC_TLS_MAY;
    }
    for (i = 0; i < PST_DLV_T_N; i++) {
        if (c->timeouts[i] == PST_CONF_UNSET_MSEC) {
            c->timeouts[i] = 0;
        }
    }
    pst_conf_merge_value(c->reuse, PST_CONF_UNSET, 100);
    if (c->idle == PST_CONF_UNSET_MSEC) {
        c->idle = 5000;
    }
    pst_conf_merge_value(c->max_received, PST_CONF_UNSET, 100);
    pst_conf_merge_value(c->sts_port, PST_CONF_UNSET, 443);
    pst_conf_merge_value(c->tls_report, PST_CONF_UNSET, 0);
    if (c->tls_report_interval == PST_CONF_UNSET_MSEC) {
        c->tls_report_interval = 86400 * 1000;      /* RFC 8460: daily */
    }
    if (c->tls_report_interval < 1000) {
        pst_conf_error(cf, "tls_report_interval must be at least 1s");
        return PST_CONF_ERROR;
    }
    if (c->sts_timeout == PST_CONF_UNSET_MSEC) {
        c->sts_timeout = 10000;
    }
    if (c->sts_port < 1 || c->sts_port > 65535 || c->sts_timeout < 1000
        || c->sts_timeout > 60000)
    {
        pst_conf_error(cf, "mta_sts_port must be a port and mta_sts_timeout"
                       " between 1s and 60s");
        return PST_CONF_ERROR;
    }

    if (c->reuse < 1 || c->reuse > 100000) {
        pst_conf_error(cf, "relay_connection_reuse must be between 1 and"
                       " 100000");
        return PST_CONF_ERROR;
    }
    if (c->max_received < 1 || c->max_received > 10000) {
        pst_conf_error(cf, "max_received_headers must be between 1 and"
                       " 10000");
        return PST_CONF_ERROR;
    }
    if (c->tls_ca_file.len > 0
        && pst_conf_full_name(cf, &c->tls_ca_file) != PST_OK)
    {
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


static char *
pst_deliver_conf_timeout(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_deliver_conf_t  *c = conf;
    pst_str_t           *args;
    int64_t              ms;
    pst_uint_t           i;

    (void) cmd;

    args = pst_conf_args(cf, NULL);
    for (i = 0; i < PST_DLV_T_N; i++) {
        if (args[1].len == strlen(pst_deliver_stages[i])
            && memcmp(args[1].data, pst_deliver_stages[i], args[1].len) == 0)
        {
            break;
        }
    }
    if (i == PST_DLV_T_N) {
        pst_conf_error(cf, "unknown relay_timeout stage \"%s\" (connect,"
                       " greeting, helo, mail, rcpt, data, data_block,"
                       " data_done)", args[1].data);
        return PST_CONF_ERROR;
    }
    if (c->timeouts[i] != PST_CONF_UNSET_MSEC) {
        return "is duplicate";
    }
    ms = pst_parse_msec(&args[2]);
    if (ms < 1000 || ms > 3600 * 1000) {
        pst_conf_error(cf, "invalid relay_timeout \"%s\" (1s to 1h)",
                       args[2].data);
        return PST_CONF_ERROR;
    }
    c->timeouts[i] = (pst_msec_t) ms;
    return PST_CONF_OK;
}


static char *
pst_deliver_conf_helo(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *args;
    size_t      i;

    args = pst_conf_args(cf, NULL);
    if (args[1].len == 0 || args[1].len > 255) {
        return "must be 1 to 255 characters";
    }
    for (i = 0; i < args[1].len; i++) {
        if (args[1].data[i] <= ' ' || args[1].data[i] >= 0x7f) {
            return "must be a host name without spaces or controls";
        }
    }
    return pst_conf_set_str_slot(cf, cmd, conf);
}


static char *
pst_deliver_conf_source(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_deliver_conf_t   *c = conf;
    pst_str_t            *args;
    struct sockaddr_in   *in = (struct sockaddr_in *) &c->source_sa;
    struct sockaddr_in6  *in6 = (struct sockaddr_in6 *) &c->source_sa;

    (void) cmd;

    if (c->source.len > 0) {
        return "is duplicate";
    }
    args = pst_conf_args(cf, NULL);
    memset(&c->source_sa, 0, sizeof(c->source_sa));
    if (inet_pton(AF_INET, (char *) args[1].data, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        c->source_len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, (char *) args[1].data, &in6->sin6_addr)
               == 1)
    {
        in6->sin6_family = AF_INET6;
        c->source_len = sizeof(struct sockaddr_in6);
    } else {
        pst_conf_error(cf, "invalid relay_source_address \"%s\" (an IPv4"
                       " or IPv6 address)", args[1].data);
        return PST_CONF_ERROR;
    }
    c->source = args[1];
    return PST_CONF_OK;
}


const pst_deliver_conf_t *
pst_deliver_conf(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(cycle, &pst_deliver_conf_module);
    return me != NULL ? cycle->main_conf[me->index] : NULL;
}
