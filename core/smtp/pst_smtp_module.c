/*
 * pst_smtp_module.c -- the built-in "smtp" module: the smtp { } and
 * server { } blocks, listen, and the protocol limits.  Every limit a
 * client controls has a directive with a safe default here.
 */

#include "pst_smtp.h"


static char *pst_smtp_block(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_smtp_server_block(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_smtp_listen(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_smtp_set_hostname(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static void *pst_smtp_create_srv_conf(pst_conf_t *cf);
static int pst_smtp_servers_init(pst_conf_t *cf, pst_cycle_t *cycle);
static void pst_smtp_servers_dump(pst_cycle_t *cycle, FILE *out);
static char *pst_smtp_merge_srv_conf(pst_conf_t *cf, void *prev,
    void *conf);


static const pst_conf_enum_t  pst_smtp_bare_newline[] = {
    { "normalize", PST_BARE_NL_NORMALIZE },
    { "reject", PST_BARE_NL_REJECT },
    { NULL, 0 }
};

#define SRV(field)  PST_SRV_CONF, offsetof(pst_smtp_srv_conf_t, field)

static const pst_command_t  pst_smtp_commands[] = {

    { "smtp", PST_CONF_MAIN | PST_CONF_BLOCK | PST_CONF_NOARGS,
      pst_smtp_block, PST_MAIN_CONF, 0, NULL },

    { "server", PST_CONF_SMTP | PST_CONF_BLOCK | PST_CONF_NOARGS,
      pst_smtp_server_block, PST_MAIN_CONF, 0, NULL },

    { "listen", PST_CONF_SRV | PST_CONF_1MORE,
      pst_smtp_listen, PST_MAIN_CONF, 0, NULL },

    { "hostname", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_smtp_set_hostname, SRV(hostname), NULL },

    { "smtp_banner", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_text_slot, SRV(banner), NULL },

    { "store", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, SRV(store), NULL },

    { "smtp_command_line_limit", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_size_slot, SRV(command_line_limit), NULL },

    { "smtp_text_line_limit", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_size_slot, SRV(text_line_limit), NULL },

    { "message_size_limit", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_size_slot, SRV(message_size_limit), NULL },

    { "smtp_header_size_limit", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_size_slot, SRV(header_size_limit), NULL },

    { "max_recipients", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_recipients), NULL },

    { "max_messages_per_session", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_messages), NULL },

    { "max_errors", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_errors), NULL },

    { "max_junk_commands", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_junk_commands), NULL },

    { "max_connections", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_connections), NULL },

    { "max_connections_per_ip", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_connections_per_ip), NULL },

    { "smtp_command_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(command_timeout), NULL },

    { "smtp_data_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(data_timeout), NULL },

    { "smtp_command_deadline", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(command_deadline), NULL },

    { "smtp_min_data_rate", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_size_slot, SRV(min_data_rate), NULL },

    { "max_recipient_overflows", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, SRV(max_rcpt_overflows), NULL },

    { "smtp_hook_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(hook_timeout), NULL },

    { "smtp_dns_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(dns_timeout), NULL },

    { "smtp_bare_newline", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, SRV(bare_newline), pst_smtp_bare_newline },

    { "smtp_debug", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(debug), NULL },

    { "smtp_pipelining", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(pipelining), NULL },

    { "smtp_forbid_unauth_pipelining", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(forbid_unauth_pipelining), NULL },

    { "smtp_chunking", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(chunking), NULL },

    { "smtp_smtputf8", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(smtputf8), NULL },

    { "smtp_dsn", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(dsn), NULL },
    { "smtp_requiretls", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(requiretls), NULL },

    { "smtp_reverse_lookup", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, SRV(reverse_lookup), NULL },

    { "proxy_trusted", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, SRV(proxy_trusted), NULL },

    { "proxy_protocol_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, SRV(proxy_timeout), NULL },

    { "xclient_trusted", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, SRV(xclient_trusted), NULL },
    { "node_trusted", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_cidr_array_slot, SRV(node_trusted), NULL },

    pst_null_command
};


const pst_module_t  pst_smtp_core_module = {
    PST_MODULE_HEADER,
    .name = "smtp",
    .version = PST_VERSION,
    .description = "SMTP receive path: servers, listeners, limits",
    .commands = pst_smtp_commands,
    .create_srv_conf = pst_smtp_create_srv_conf,
    .merge_srv_conf = pst_smtp_merge_srv_conf,
};


static void *
pst_smtp_create_srv_conf(pst_conf_t *cf)
{
    pst_smtp_srv_conf_t  *c;

    c = pst_pcalloc(cf->pool, sizeof(pst_smtp_srv_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->command_line_limit = PST_CONF_UNSET_SIZE;
    c->text_line_limit = PST_CONF_UNSET_SIZE;
    c->message_size_limit = PST_CONF_UNSET_SIZE;
    c->header_size_limit = PST_CONF_UNSET_SIZE;
    c->max_recipients = PST_CONF_UNSET;
    c->max_messages = PST_CONF_UNSET;
    c->max_errors = PST_CONF_UNSET;
    c->max_junk_commands = PST_CONF_UNSET;
    c->max_connections = PST_CONF_UNSET;
    c->max_connections_per_ip = PST_CONF_UNSET;
    c->command_timeout = PST_CONF_UNSET_MSEC;
    c->data_timeout = PST_CONF_UNSET_MSEC;
    c->command_deadline = PST_CONF_UNSET_MSEC;
    c->min_data_rate = PST_CONF_UNSET_SIZE;
    c->max_rcpt_overflows = PST_CONF_UNSET;
    c->hook_timeout = PST_CONF_UNSET_MSEC;
    c->dns_timeout = PST_CONF_UNSET_MSEC;
    c->proxy_trusted = PST_CONF_UNSET_PTR;
    c->proxy_timeout = PST_CONF_UNSET_MSEC;
    c->xclient_trusted = PST_CONF_UNSET_PTR;
    c->node_trusted = PST_CONF_UNSET_PTR;
    c->bare_newline = PST_CONF_UNSET_UINT;
    c->debug = PST_CONF_UNSET;
    c->pipelining = PST_CONF_UNSET;
    c->forbid_unauth_pipelining = PST_CONF_UNSET;
    c->chunking = PST_CONF_UNSET;
    c->smtputf8 = PST_CONF_UNSET;
    c->dsn = PST_CONF_UNSET;
    c->requiretls = PST_CONF_UNSET;
    c->reverse_lookup = PST_CONF_UNSET;

    return c;
}


static char *
pst_smtp_merge_srv_conf(pst_conf_t *cf, void *parent, void *child)
{
    pst_smtp_srv_conf_t  *prev = parent, *conf = child;
    static char           host[256];

    if (host[0] == '\0' && gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }

    if (conf->hostname.data == NULL) {
        if (prev->hostname.data != NULL) {
            conf->hostname = prev->hostname;
        } else {
            conf->hostname.data = (u_char *) host;
            conf->hostname.len = strlen(host);
        }
    }
    pst_conf_merge_str_value(conf->banner, prev->banner, "ESMTP Postern");
    pst_conf_merge_str_value(conf->store, prev->store, "");

    pst_conf_merge_size_value(conf->command_line_limit,
                              prev->command_line_limit, 2048);
    pst_conf_merge_size_value(conf->text_line_limit, prev->text_line_limit,
                              65536);
    pst_conf_merge_size_value(conf->message_size_limit,
                              prev->message_size_limit, 50 * 1024 * 1024);
    pst_conf_merge_size_value(conf->header_size_limit,
                              prev->header_size_limit, 256 * 1024);
    pst_conf_merge_value(conf->max_recipients, prev->max_recipients, 1000);
    pst_conf_merge_value(conf->max_messages, prev->max_messages, 1000);
    pst_conf_merge_value(conf->max_errors, prev->max_errors, 20);
    pst_conf_merge_value(conf->max_junk_commands, prev->max_junk_commands,
                         100);
    pst_conf_merge_value(conf->max_connections, prev->max_connections,
                         10000);
    pst_conf_merge_value(conf->max_connections_per_ip,
                         prev->max_connections_per_ip, 50);
    pst_conf_merge_msec_value(conf->command_timeout, prev->command_timeout,
                              5 * 60 * 1000);
    pst_conf_merge_msec_value(conf->data_timeout, prev->data_timeout,
                              3 * 60 * 1000);
    /* the whole command, not the gap between bytes; 0: as long as
     * smtp_command_timeout (RFC 5321 4.5.3.2.7's five minutes) */
    pst_conf_merge_msec_value(conf->command_deadline,
                              prev->command_deadline, 0);
    pst_conf_merge_size_value(conf->min_data_rate, prev->min_data_rate, 500);
    pst_conf_merge_value(conf->max_rcpt_overflows, prev->max_rcpt_overflows,
                         10000);
    pst_conf_merge_msec_value(conf->hook_timeout, prev->hook_timeout,
                              30 * 1000);
    pst_conf_merge_msec_value(conf->dns_timeout, prev->dns_timeout,
                              10 * 1000);
    pst_conf_merge_uint_value(conf->bare_newline, prev->bare_newline,
                              PST_BARE_NL_NORMALIZE);
    pst_conf_merge_value(conf->debug, prev->debug, 0);
    pst_conf_merge_value(conf->pipelining, prev->pipelining, 1);
    pst_conf_merge_value(conf->forbid_unauth_pipelining,
                         prev->forbid_unauth_pipelining, 1);
    pst_conf_merge_value(conf->chunking, prev->chunking, 1);
    pst_conf_merge_value(conf->smtputf8, prev->smtputf8, 1);
    pst_conf_merge_value(conf->dsn, prev->dsn, 1);
    pst_conf_merge_value(conf->requiretls, prev->requiretls, 1);
    /* unset stays unset: on exactly when a resolver is configured */
    pst_conf_merge_value(conf->reverse_lookup, prev->reverse_lookup,
                         PST_CONF_UNSET);
    /* nobody may speak for another client unless named */
    pst_conf_merge_ptr_value(conf->proxy_trusted, prev->proxy_trusted, NULL);
    pst_conf_merge_msec_value(conf->proxy_timeout, prev->proxy_timeout,
                              10 * 1000);
    pst_conf_merge_ptr_value(conf->xclient_trusted, prev->xclient_trusted,
                             NULL);
    pst_conf_merge_ptr_value(conf->node_trusted, prev->node_trusted, NULL);

    if (conf->command_line_limit < PST_SMTP_MIN_LINE
        || conf->command_line_limit > 32768)
    {
        return "smtp_command_line_limit must be between 512 (RFC 5321"
               " 4.5.3.1.4) and 32k";
    }

    if (conf->text_line_limit != 0 && conf->text_line_limit < 1000) {
        return "smtp_text_line_limit must be 0 (none) or at least 1000"
               " (RFC 5321 4.5.3.1.6)";
    }

    if (conf->max_recipients != 0 && conf->max_recipients < 100) {
        return "max_recipients must be at least 100 (RFC 5321 4.5.3.1.8)";
    }

    if (conf->header_size_limit < 4096) {
        return "smtp_header_size_limit must be at least 4k";
    }

    if (conf->hostname.len == 0
        || pst_smtp_check_domain(conf->hostname.data, conf->hostname.len, 0)
           != PST_OK)
    {
        pst_conf_error(cf, "invalid hostname \"%.*s\": it must be a domain"
                       " name (set \"hostname\")", (int) conf->hostname.len,
                       conf->hostname.data);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


/* Our name goes into the greeting, EHLO and Received: checked where it
 * is set, so that an error names its line. */
static char *
pst_smtp_set_hostname(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *value;
    u_char      esc[128];
    char       *rv;

    rv = pst_conf_set_str_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    if (pst_smtp_check_domain(value[1].data, value[1].len, 0) != PST_OK) {
        (void) pst_escape(esc, sizeof(esc), value[1].data, value[1].len);
        pst_conf_error(cf, "invalid hostname \"%s\": it must be a domain"
                       " name of at most %d bytes", esc,
                       PST_SMTP_DOMAIN_MAX);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


static void **
pst_smtp_create_confs(pst_conf_t *cf)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;
    void               **confs;

    confs = pst_pcalloc(cf->pool, PST_MAX_MODULES * sizeof(void *));
    if (confs == NULL) {
        return NULL;
    }

    me = cf->cycle->modules.elts;
    for (i = 0; i < cf->cycle->modules.nelts; i++) {
        if (me[i].desc.create_srv_conf == NULL) {
            continue;
        }
        confs[i] = me[i].desc.create_srv_conf(cf);
        if (confs[i] == NULL) {
            return NULL;
        }
    }

    return confs;
}


static char *
pst_smtp_parse_block(pst_conf_t *cf, unsigned ctx, void **confs,
    signed char *enabled, pst_server_t *srv)
{
    pst_conf_t  saved;
    int         rc;

    saved = *cf;
    cf->ctx = ctx;
    cf->srv_conf = confs;
    cf->enabled = enabled;
    cf->server = srv;

    rc = pst_conf_parse(cf, NULL);

    saved.file = cf->file;
    *cf = saved;

    return rc == PST_OK ? PST_CONF_OK : PST_CONF_ERROR;
}


static char *
pst_smtp_block(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_cycle_t  *cycle = cf->cycle;

    (void) cmd;
    (void) conf;

    if (cycle->smtp_seen) {
        return "is duplicate";
    }
    cycle->smtp_seen = 1;
    cycle->servers_init = pst_smtp_servers_init;
    cycle->servers_dump = pst_smtp_servers_dump;

    cycle->smtp_srv_conf = pst_smtp_create_confs(cf);
    cycle->smtp_enabled = pst_palloc(cf->pool, PST_MAX_MODULES);
    if (cycle->smtp_srv_conf == NULL || cycle->smtp_enabled == NULL) {
        return PST_CONF_ERROR;
    }
    memset(cycle->smtp_enabled, -1, PST_MAX_MODULES);

    return pst_smtp_parse_block(cf, PST_CONF_SMTP, cycle->smtp_srv_conf,
                                cycle->smtp_enabled, NULL);
}


static char *
pst_smtp_server_block(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_server_t  *srv, **sp;
    char          *rv;

    (void) cmd;
    (void) conf;

    srv = pst_pcalloc(cf->pool, sizeof(pst_server_t));
    if (srv == NULL) {
        return PST_CONF_ERROR;
    }

    srv->srv_conf = pst_smtp_create_confs(cf);
    srv->enabled = pst_palloc(cf->pool, PST_MAX_MODULES);
    if (srv->srv_conf == NULL || srv->enabled == NULL) {
        return PST_CONF_ERROR;
    }
    memset(srv->enabled, -1, PST_MAX_MODULES);

    srv->conf = srv->srv_conf[1];     /* the smtp module is index 1 */
    srv->file = cf->dir_file;
    srv->line = cf->dir_line;
    srv->index = cf->cycle->servers.nelts;

    sp = pst_array_push(&cf->cycle->servers);
    if (sp == NULL) {
        return PST_CONF_ERROR;
    }
    *sp = srv;

    rv = pst_smtp_parse_block(cf, PST_CONF_SRV, srv->srv_conf, srv->enabled,
                              srv);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    if (!srv->has_listen) {
        pst_conf_error_at(cf, srv->file, srv->line, "server block without"
                          " a \"listen\" directive");
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


static char *
pst_smtp_listen(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_listening_t  *ls, *l;
    pst_sockaddr_t    sa;
    pst_server_t    **sp;
    pst_str_t        *args;
    pst_uint_t        n, i;
    socklen_t         len;
    int64_t           backlog = 511;
    unsigned          tls = 0, submission = 0, dflt = 0, proxy = 0;

    (void) cmd;
    (void) conf;

    args = pst_conf_args(cf, &n);

    /* a listener needs a port: without one the parser falls back to
     * the resolver default, 53 ("127.0.0.1", "[::1]") */
    if (pst_listening_parse(cf, &args[1], &sa, &len) != PST_OK
        || (args[1].len > 0 && args[1].data[args[1].len - 1] == ']')
        || (memchr(args[1].data, ':', args[1].len) == NULL
            && pst_atoi(args[1].data, args[1].len, 65535) < 0))
    {
        pst_conf_error(cf, "invalid listen address \"%s\" (use ADDRESS:PORT,"
                       " [IPv6]:PORT or PORT)", args[1].data);
        return PST_CONF_ERROR;
    }

    for (i = 2; i < n; i++) {
        if (pst_str_eq(&args[i], "tls")) {
            tls = 1;
        } else if (pst_str_eq(&args[i], "submission")) {
            submission = 1;
        } else if (pst_str_eq(&args[i], "default_server")) {
            dflt = 1;
        } else if (pst_str_eq(&args[i], "proxy_protocol")) {
            proxy = 1;
        } else if (args[i].len > 8
                   && memcmp(args[i].data, "backlog=", 8) == 0)
        {
            backlog = pst_atoi(args[i].data + 8, args[i].len - 8, 65535);
            if (backlog < 1) {
                pst_conf_error(cf, "invalid \"%s\"", args[i].data);
                return PST_CONF_ERROR;
            }
        } else {
            pst_conf_error(cf, "unknown listen parameter \"%s\" (use tls,"
                           " submission, proxy_protocol, default_server,"
                           " backlog=N)", args[i].data);
            return PST_CONF_ERROR;
        }
    }

    ls = NULL;
    l = cf->cycle->listening.elts;
    for (i = 0; i < cf->cycle->listening.nelts; i++) {
        if (l[i].socklen == len && memcmp(&l[i].sockaddr, &sa, len) == 0) {
            ls = &l[i];
            break;
        }
    }

    if (ls != NULL) {
        if (ls->tls != tls || ls->submission != submission
            || ls->proxy_protocol != proxy)
        {
            pst_conf_error(cf, "listen %s: options differ from the same"
                           " address at %s:%lu", ls->addr_text,
                           ls->conf_file, (unsigned long) ls->conf_line);
            return PST_CONF_ERROR;
        }
        for (i = 0; i < ls->servers.nelts; i++) {
            if (((pst_server_t **) ls->servers.elts)[i] == cf->server) {
                return "is duplicate";
            }
        }
        if (dflt) {
            ls->server = cf->server;
        }

    } else {
        ls = pst_array_push(&cf->cycle->listening);
        if (ls == NULL) {
            return PST_CONF_ERROR;
        }
        memset(ls, 0, sizeof(pst_listening_t));
        ls->fd = -1;
        ls->sockaddr = sa;
        ls->socklen = len;
        ls->backlog = (int) backlog;
        ls->tls = tls;
        ls->submission = submission;
        ls->proxy_protocol = proxy;
        ls->server = cf->server;
        ls->handler = proxy ? pst_smtp_proxy_accept
                            : pst_smtp_init_connection;
        ls->conf_file = cf->dir_file;
        ls->conf_line = cf->dir_line;
        ls->addr_text_len = pst_sock_ntop(&sa.sa, ls->addr_text,
                                          sizeof(ls->addr_text), 1);
        ls->servers.elts = pst_palloc(cf->pool, 4 * sizeof(pst_server_t *));
        if (ls->servers.elts == NULL) {
            return PST_CONF_ERROR;
        }
        ls->servers.size = sizeof(pst_server_t *);
        ls->servers.nalloc = 4;
        ls->servers.pool = cf->pool;
    }

    sp = pst_array_push(&ls->servers);
    if (sp == NULL) {
        return PST_CONF_ERROR;
    }
    *sp = cf->server;
    cf->server->has_listen = 1;

    return PST_CONF_OK;
}


/*
 * The smtp layer's part of building a cycle, which the process layer
 * (pst_cycle.c) calls through the cycle (it knows nothing of SMTP):
 * after every module's init_main_conf, each server's configurations
 * are merged and its hook chains built.
 */
static int
pst_smtp_servers_init(pst_conf_t *cf, pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;
    pst_server_t       **srv;
    pst_uint_t           i, k;
    char                *rv;

    me = cycle->modules.elts;
    srv = cycle->servers.elts;
    for (i = 0; i < cycle->servers.nelts; i++) {
        cf->dir_file = srv[i]->file;
        cf->dir_line = srv[i]->line;
        cf->server = srv[i];

        for (k = 0; k < cycle->modules.nelts; k++) {
            if (srv[i]->enabled[k] == -1) {
                srv[i]->enabled[k] = (cycle->smtp_enabled[k] == -1)
                                     ? 1 : cycle->smtp_enabled[k];
            }
            if (me[k].desc.merge_srv_conf == NULL
                || srv[i]->srv_conf[k] == NULL)
            {
                continue;
            }
            rv = me[k].desc.merge_srv_conf(cf, cycle->smtp_srv_conf[k],
                                           srv[i]->srv_conf[k]);
            if (rv == PST_CONF_OK) {
                continue;
            }
            if (rv != PST_CONF_ERROR) {
                pst_conf_error(cf, "module \"%s\": %s", me[k].desc.name,
                               rv);
            }
            return PST_ERROR;
        }

        if (pst_smtp_build_chains(cf, cycle, srv[i]) != PST_OK) {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


/* -T: the servers, their listeners and hook chains. */
static void
pst_smtp_servers_dump(pst_cycle_t *cycle, FILE *out)
{
    pst_module_entry_t  *me;
    pst_listening_t     *ls;
    pst_hook_entry_t    *he;
    pst_server_t       **srv, *s;
    pst_uint_t           i, k, p, j;

    me = cycle->modules.elts;

    srv = cycle->servers.elts;
    fprintf(out, "smtp {\n");
    for (i = 0; i < cycle->servers.nelts; i++) {
        s = srv[i];
        fprintf(out, "    server {    # %s:%lu\n", s->file,
                (unsigned long) s->line);
        for (k = 0; k < cycle->modules.nelts; k++) {
            if (me[k].handle != NULL) {
                fprintf(out, "        %s %s;\n", me[k].desc.name,
                        s->enabled[k] ? "on" : "off");
            }
            if (!s->enabled[k] || s->srv_conf[k] == NULL) {
                continue;
            }
            pst_conf_dump_commands(out, me[k].desc.commands, NULL,
                                   s->srv_conf[k], PST_CONF_SRV,
                                   "        ");
        }
        fprintf(out, "    }\n");
    }
    fprintf(out, "}\n\n");

    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        s = ls[i].server;
        fprintf(out, "# listener %s%s%s%s (server at %s:%lu)\n",
                ls[i].addr_text, ls[i].tls ? " tls" : "",
                ls[i].submission ? " submission" : "",
                ls[i].proxy_protocol ? " proxy_protocol" : "", s->file,
                (unsigned long) s->line);
        fprintf(out, "#   store: %s\n",
                s->store ? s->store->desc.name : "(none: DATA is refused)");
        for (p = 0; p < PST_PHASE_MAX; p++) {
            fprintf(out, "#   %-10s:", pst_phase_name(p));
            he = s->chains[p].elts;
            if (s->chains[p].nelts == 0) {
                fprintf(out, " (core default)");
            }
            for (j = 0; j < s->chains[p].nelts; j++) {
                fprintf(out, " %s(%d)", he[j].module->desc.name,
                        he[j].priority);
            }
            fprintf(out, "\n");
        }
    }
}
