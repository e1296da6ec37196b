/*
 * pst_smtp_tls.c -- TLS for SMTP sessions: the built-in "smtp_tls"
 * module (tls_* directives, one OpenSSL context per server block),
 * STARTTLS (RFC 3207), implicit TLS listeners (RFC 8314), SNI and the
 * facts a session records.
 *
 * STARTTLS: whatever the client sent after the command in cleartext is
 * thrown away before the handshake (CVE-2011-0411: it would otherwise
 * be read as commands of the encrypted session), and after the
 * handshake the session forgets everything it learnt in cleartext:
 * EHLO, the transaction, authentication.
 *
 * SNI picks the server block (among those listening on the address)
 * whose tls_server_names -- by default its hostname -- match the name
 * the client asked for; the session then runs under that block.  An
 * unknown name gets the listener's default block and certificate.
 *
 * Directives (smtp or server block):
 *   tls_certificate FILE;  tls_certificate_key FILE;    (repeatable pairs)
 *   tls_protocols TLSv1.2 TLSv1.3;  tls_ciphers LIST;  tls_ciphersuites LIST;
 *   tls_client_certificate CAFILE;  tls_verify_client off|optional|on;
 *   tls_verify_depth N;  tls_session_cache off|builtin[:N]|shared:SIZE;
 *   tls_session_tickets on|off;  tls_session_timeout 5m;
 *   tls_handshake_timeout 30s;  tls_required on|off;
 *   tls_server_names NAME ...;
 */

#include "pst_smtp.h"
#include "pst_ssl.h"

typedef struct {
    pst_array_t                 *certificates;
    pst_array_t                 *keys;
    pst_uint_t                   protocols;
    pst_str_t                    ciphers;
    pst_str_t                    ciphersuites;
    pst_str_t                    client_ca;
    pst_uint_t                   verify_client;
    pst_int_t                    verify_depth;
    pst_int_t                    session_cache;
    size_t                       session_shared;   /* bytes, 0: none */
    pst_int_t                    session_tickets;
    pst_msec_t                   session_timeout;
    pst_msec_t                   handshake_timeout;
    pst_int_t                    required;
    pst_array_t                 *server_names;
    pst_ssl_ctx_t               *ctx;
    pst_server_t                *server;
} pst_smtp_tls_conf_t;


static void *pst_smtp_tls_create_conf(pst_conf_t *cf);
static char *pst_smtp_tls_merge_conf(pst_conf_t *cf, void *prev,
    void *conf);
static char *pst_smtp_tls_set_paths(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_smtp_tls_set_protocols(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_smtp_tls_set_cache(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static void pst_smtp_tls_start(pst_session_t *s, const u_char *plain,
    size_t n);
static void pst_smtp_tls_done(pst_connection_t *c, int rc);


static const pst_conf_enum_t  pst_smtp_tls_verify[] = {
    { "off", PST_SSL_CLIENT_OFF },
    { "optional", PST_SSL_CLIENT_OPTIONAL },
    { "on", PST_SSL_CLIENT_REQUIRED },
    { "required", PST_SSL_CLIENT_REQUIRED },
    { NULL, 0 }
};

#define TLS(field)  PST_SRV_CONF, offsetof(pst_smtp_tls_conf_t, field)

static const pst_command_t  pst_smtp_tls_commands[] = {

    { "tls_certificate", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_smtp_tls_set_paths, TLS(certificates), NULL },

    { "tls_certificate_key", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_smtp_tls_set_paths, TLS(keys), NULL },

    { "tls_protocols", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_smtp_tls_set_protocols, TLS(protocols), NULL },

    { "tls_ciphers", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, TLS(ciphers), NULL },

    { "tls_ciphersuites", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, TLS(ciphersuites), NULL },

    { "tls_client_certificate", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_path_slot, TLS(client_ca), NULL },

    { "tls_verify_client", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, TLS(verify_client), pst_smtp_tls_verify },

    { "tls_verify_depth", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, TLS(verify_depth), NULL },

    { "tls_session_cache", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_smtp_tls_set_cache, TLS(session_cache), NULL },

    { "tls_session_tickets", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, TLS(session_tickets), NULL },

    { "tls_session_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, TLS(session_timeout), NULL },

    { "tls_handshake_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, TLS(handshake_timeout), NULL },

    { "tls_required", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, TLS(required), NULL },

    { "tls_server_names", PST_CONF_ANY_SMTP | PST_CONF_1MORE,
      pst_conf_set_str_array_slot, TLS(server_names), NULL },

    pst_null_command
};


const pst_module_t  pst_smtp_tls_module = {
    PST_MODULE_HEADER,
    .name = "smtp_tls",
    .version = PST_VERSION,
    .description = "TLS: STARTTLS, implicit TLS listeners, certificates",
    .commands = pst_smtp_tls_commands,
    .create_srv_conf = pst_smtp_tls_create_conf,
    .merge_srv_conf = pst_smtp_tls_merge_conf,
};


static pst_smtp_tls_conf_t *
pst_smtp_tls_conf(pst_server_t *srv)
{
    return srv->srv_conf[PST_SMTP_TLS_MODULE];
}


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
pst_smtp_tls_create_conf(pst_conf_t *cf)
{
    pst_smtp_tls_conf_t  *c;

    c = pst_pcalloc(cf->pool, sizeof(pst_smtp_tls_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->certificates = PST_CONF_UNSET_PTR;
    c->keys = PST_CONF_UNSET_PTR;
    c->protocols = PST_CONF_UNSET_UINT;
    c->verify_client = PST_CONF_UNSET_UINT;
    c->verify_depth = PST_CONF_UNSET;
    c->session_cache = PST_CONF_UNSET;
    c->session_tickets = PST_CONF_UNSET;
    c->session_timeout = PST_CONF_UNSET_MSEC;
    c->handshake_timeout = PST_CONF_UNSET_MSEC;
    c->required = PST_CONF_UNSET;
    c->server_names = PST_CONF_UNSET_PTR;

    return c;
}


/* tls_certificate / tls_certificate_key: repeatable, relative to the
 * prefix */
static char *
pst_smtp_tls_set_paths(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_array_t  **ap;
    pst_str_t     *args, *p;

    ap = (pst_array_t **) ((u_char *) conf + cmd->offset);
    if (*ap == PST_CONF_UNSET_PTR) {
        *ap = pst_array_create(cf->pool, 2, sizeof(pst_str_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, NULL);
    if (args[1].len == 0) {
        return "has an empty path";
    }

    p = pst_array_push(*ap);
    if (p == NULL) {
        return PST_CONF_ERROR;
    }
    *p = args[1];

    return pst_conf_full_name(cf, p) == PST_OK ? PST_CONF_OK
                                                : PST_CONF_ERROR;
}


static char *
pst_smtp_tls_set_protocols(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_uint_t  *np, n, i, bit;
    pst_str_t   *args;

    np = (pst_uint_t *) ((u_char *) conf + cmd->offset);
    if (*np != PST_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, &n);
    *np = 0;
    for (i = 1; i < n; i++) {
        bit = pst_ssl_parse_protocol(&args[i]);
        if (bit == 0) {
            pst_conf_error(cf, "unknown TLS protocol \"%s\" (use TLSv1,"
                           " TLSv1.1, TLSv1.2, TLSv1.3)", args[i].data);
            return PST_CONF_ERROR;
        }
        *np |= bit;
    }

    return PST_CONF_OK;
}


/* off | builtin | builtin:N (entries per worker) | shared:SIZE (all
 * workers, kept over reloads) */
static char *
pst_smtp_tls_set_cache(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_smtp_tls_conf_t  *tcf = conf;
    pst_int_t            *np;
    pst_str_t            *args, size;
    int64_t               n;
    ssize_t               bytes;

    np = (pst_int_t *) ((u_char *) conf + cmd->offset);
    if (*np != PST_CONF_UNSET) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, NULL);

    if (args[1].len > 7 && memcmp(args[1].data, "shared:", 7) == 0) {
        size.data = args[1].data + 7;
        size.len = args[1].len - 7;
        bytes = pst_parse_size(&size);
        if (bytes < (ssize_t) pst_ssl_session_zone_size(64)) {
            pst_conf_error(cf, "invalid \"tls_session_cache %s\": the"
                           " size must be at least %zuk", args[1].data,
                           pst_ssl_session_zone_size(64) / 1024 + 1);
            return PST_CONF_ERROR;
        }
        tcf->session_shared = (size_t) bytes;
        *np = 0;
        return PST_CONF_OK;
    }

    if (pst_str_eq(&args[1], "off")) {
        *np = 0;
        return PST_CONF_OK;
    }

    if (pst_str_eq(&args[1], "builtin")) {
        *np = 20480;
        return PST_CONF_OK;
    }

    if (args[1].len > 8 && memcmp(args[1].data, "builtin:", 8) == 0) {
        n = pst_atoi(args[1].data + 8, args[1].len - 8, 10000000);
        if (n > 0) {
            *np = (pst_int_t) n;
            return PST_CONF_OK;
        }
    }

    pst_conf_error(cf, "invalid \"tls_session_cache %s\" (use off, builtin,"
                   " builtin:ENTRIES or shared:SIZE)", args[1].data);
    return PST_CONF_ERROR;
}


/* "mx.example.test" matches itself; "*.example.test" one more label */
static int
pst_smtp_tls_name_match(const pst_str_t *pattern, const char *name)
{
    size_t  n = strlen(name);
    char   *dot;

    if (pattern->len == n
        && pst_strncasecmp(pattern->data, (u_char *) name, n) == 0)
    {
        return 1;
    }

    if (pattern->len > 2 && pattern->data[0] == '*'
        && pattern->data[1] == '.')
    {
        dot = strchr(name, '.');
        if (dot != NULL && dot != name
            && strlen(dot) == pattern->len - 1
            && pst_strncasecmp(pattern->data + 1, (u_char *) dot,
                               pattern->len - 1) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static pst_ssl_ctx_t *
pst_smtp_tls_sni(pst_connection_t *c, const char *name, void **data)
{
    pst_smtp_tls_conf_t  *tcf;
    pst_server_t        **srv;
    pst_str_t            *names;
    pst_uint_t            i, k;

    srv = c->listening->servers.elts;

    for (i = 0; i < c->listening->servers.nelts; i++) {
        tcf = pst_smtp_tls_conf(srv[i]);
        if (tcf->ctx == NULL) {
            continue;
        }

        names = tcf->server_names->elts;
        for (k = 0; k < tcf->server_names->nelts; k++) {
            if (pst_smtp_tls_name_match(&names[k], name)) {
                *data = srv[i];
                return tcf->ctx;
            }
        }
    }

    return NULL;
}


static char *
pst_smtp_tls_check_listeners(pst_conf_t *cf, pst_smtp_tls_conf_t *conf)
{
    pst_listening_t  *ls;
    pst_uint_t        i;

    ls = cf->cycle->listening.elts;
    for (i = 0; i < cf->cycle->listening.nelts; i++) {
        if (ls[i].tls && ls[i].server == cf->server && conf->ctx == NULL) {
            pst_conf_error_at(cf, ls[i].conf_file, ls[i].conf_line,
                              "\"listen %s tls\" needs a certificate: set"
                              " tls_certificate and tls_certificate_key",
                              ls[i].addr_text);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


static char *
pst_smtp_tls_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    pst_smtp_tls_conf_t    *prev = parent, *conf = child;
    pst_ssl_server_conf_t   sc;
    pst_str_t              *name;
    char                    zname[64];

    pst_conf_merge_ptr_value(conf->certificates, prev->certificates, NULL);
    pst_conf_merge_ptr_value(conf->keys, prev->keys, NULL);
    pst_conf_merge_uint_value(conf->protocols, prev->protocols,
                              PST_SSL_DEFAULT_PROTOCOLS);
    pst_conf_merge_str_value(conf->ciphers, prev->ciphers, "");
    pst_conf_merge_str_value(conf->ciphersuites, prev->ciphersuites, "");
    pst_conf_merge_str_value(conf->client_ca, prev->client_ca, "");
    pst_conf_merge_uint_value(conf->verify_client, prev->verify_client,
                              PST_SSL_CLIENT_OFF);
    pst_conf_merge_value(conf->verify_depth, prev->verify_depth, 5);
    if (conf->session_cache == PST_CONF_UNSET) {
        conf->session_shared = prev->session_shared;
    }
    pst_conf_merge_value(conf->session_cache, prev->session_cache, 20480);
    pst_conf_merge_value(conf->session_tickets, prev->session_tickets, 1);
    pst_conf_merge_msec_value(conf->session_timeout, prev->session_timeout,
                              5 * 60 * 1000);
    pst_conf_merge_msec_value(conf->handshake_timeout,
                              prev->handshake_timeout, 30 * 1000);
    pst_conf_merge_value(conf->required, prev->required, 0);
    pst_conf_merge_ptr_value(conf->server_names, prev->server_names, NULL);

    conf->server = cf->server;

    if (conf->server_names == NULL) {
        /* SNI matches the block's own hostname by default */
        conf->server_names = pst_array_create(cf->pool, 1,
                                              sizeof(pst_str_t));
        name = conf->server_names ? pst_array_push(conf->server_names)
                                  : NULL;
        if (name == NULL) {
            return PST_CONF_ERROR;
        }
        *name = cf->server->conf->hostname;
    }

    if (conf->certificates == NULL && conf->keys == NULL) {
        if (conf->required) {
            return "tls_required needs tls_certificate";
        }
        return pst_smtp_tls_check_listeners(cf, conf);
    }

    if (conf->certificates == NULL || conf->keys == NULL
        || conf->certificates->nelts != conf->keys->nelts)
    {
        return "tls_certificate and tls_certificate_key must come in"
               " pairs";
    }

    if (conf->verify_client == PST_SSL_CLIENT_REQUIRED
        && conf->client_ca.len == 0)
    {
        return "\"tls_verify_client on\" needs tls_client_certificate"
               " (the CA file to verify client certificates against)";
    }

    memset(&sc, 0, sizeof(sc));
    sc.certificates = conf->certificates;
    sc.keys = conf->keys;
    sc.protocols = conf->protocols;
    sc.ciphers = conf->ciphers;
    sc.ciphersuites = conf->ciphersuites;
    sc.client_ca = conf->client_ca;
    sc.verify_client = conf->verify_client;
    sc.verify_depth = conf->verify_depth;
    sc.session_cache = conf->session_cache;

    if (conf->session_shared) {
        /* one zone per size: blocks share it, their sessions carry
         * their own id context; it keeps its sessions over a reload */
        snprintf(zname, sizeof(zname), "postern:tls_sessions:%zu",
                 conf->session_shared);
        sc.session_zone = pst_shm_add(cf, zname, conf->session_shared);
        if (sc.session_zone == NULL) {
            return PST_CONF_ERROR;
        }
    }
    sc.session_tickets = conf->session_tickets;
    sc.session_timeout = conf->session_timeout;
    sc.id = cf->server->index;
    sc.sni = pst_smtp_tls_sni;

    /* a certificate that does not load fails this configuration: on a
     * reload the running one stays, and the message says why */
    conf->ctx = pst_ssl_server_ctx(cf, &sc);
    if (conf->ctx == NULL) {
        return PST_CONF_ERROR;
    }

    return pst_smtp_tls_check_listeners(cf, conf);
}


/* ------------------------------------------------------------------ */
/* Sessions                                                            */

int
pst_smtp_tls_offered(pst_session_t *s)
{
    return s->tls_facts == NULL && pst_smtp_tls_conf(s->server)->ctx != NULL;
}


size_t
pst_smtp_tls_ehlo(pst_session_t *s, char *buf, size_t size)
{
    int  n;

    if (!pst_smtp_tls_offered(s)) {
        return 0;
    }

    n = snprintf(buf, size, "250-STARTTLS\r\n");
    return (n > 0 && (size_t) n < size) ? (size_t) n : 0;
}


/* 1 when tls_required holds and TLS is not up yet. */
int
pst_smtp_tls_required(pst_session_t *s)
{
    return s->tls_facts == NULL && pst_smtp_tls_conf(s->server)->required;
}


/* tls_required: MAIL and AUTH wait for TLS.  PST_OK, or PST_DECLINED
 * after the 530 reply. */
int
pst_smtp_tls_check(pst_session_t *s)
{
    if (pst_smtp_tls_required(s)) {
        pst_smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command"
                       " first");
        return PST_DECLINED;
    }

    return PST_OK;
}


void
pst_smtp_cmd_starttls(pst_session_t *s)
{
    pst_smtp_tls_conf_t  *tcf = pst_smtp_tls_conf(s->server);
    size_t                n;

    if (s->arg.len != 0) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return;
    }

    if (s->tls_facts != NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: TLS already active");
        return;
    }

    if (tcf->ctx == NULL) {
        pst_smtp_reply(s, 502, "5.5.1", "Error: STARTTLS not offered here");
        return;
    }

    if (pst_ssl_create_connection(s->c, tcf->ctx, 0, NULL) != PST_OK) {
        pst_smtp_reply(s, 454, "4.7.0", "TLS not available due to"
                       " temporary reason");
        return;
    }

    /* CVE-2011-0411: nothing sent in cleartext after STARTTLS may be
     * read as a command of the encrypted session */
    n = pst_buf_size(s->in);
    if (n > 0) {
        pst_log_session(s, PST_LOG_NOTICE, "discarded %zu byte(s) sent"
                        " after STARTTLS before the TLS handshake", n);
        s->in->pos = s->in->last;
    }
    s->skipping = 0;

    pst_smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
    pst_smtp_tls_start(s, NULL, 0);
}


/* Hand the pending replies (ending with our 220) to the TLS layer,
 * which sends them before the handshake starts. */
static void
pst_smtp_tls_start(pst_session_t *s, const u_char *plain, size_t n)
{
    pst_smtp_tls_conf_t  *tcf = pst_smtp_tls_conf(s->server);

    if (s->out != NULL) {
        if (pst_smtp_flush(s) == PST_ERROR) {
            return;
        }
        if (pst_buf_size(s->out) > 0) {
            plain = s->out->pos;
            n = pst_buf_size(s->out);
        }
    }

    pst_smtp_enter_state(s, PST_SMTP_S_TLS);
    pst_ssl_handshake(s->c, plain, n, tcf->handshake_timeout,
                      pst_smtp_tls_done);

    if (s->out != NULL) {
        s->out->pos = s->out->start;
        s->out->last = s->out->start;
    }
}


/* An implicit TLS listener (RFC 8314): the handshake comes first, the
 * greeting after it. */
void
pst_smtp_tls_implicit(pst_session_t *s)
{
    pst_smtp_tls_conf_t  *tcf = pst_smtp_tls_conf(s->server);

    if (tcf->ctx == NULL
        || pst_ssl_create_connection(s->c, tcf->ctx, 0, NULL) != PST_OK)
    {
        pst_log_session(s, PST_LOG_ERR, "cannot start TLS on %s",
                        s->ls->addr_text);
        pst_smtp_close_session(s);
        return;
    }

    s->tls_implicit = 1;
    pst_smtp_tls_start(s, NULL, 0);
}


static int
pst_smtp_tls_facts(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    pst_tls_facts_t   *f;
    const char        *sni;
    size_t             n;

    f = pst_pcalloc(s->pool, sizeof(pst_tls_facts_t));
    if (f == NULL) {
        return PST_ERROR;
    }

    f->version = pst_ssl_version(c);
    f->cipher = pst_ssl_cipher(c);
    f->bits = pst_ssl_cipher_bits(c);

    sni = pst_ssl_servername(c);
    if (sni != NULL) {
        n = strlen(sni);
        f->sni.data = pst_palloc(s->pool, n + 1);
        if (f->sni.data != NULL) {
            f->sni.len = pst_sanitize(f->sni.data, n + 1, (u_char *) sni, n);
        }
    }

    if (pst_ssl_peer_certificate(c, s->pool, &f->peer_subject,
                                 &f->peer_fingerprint) == PST_OK)
    {
        f->verified = pst_ssl_verified(c);
    }

    s->tls_facts = f;
    return PST_OK;
}


static void
pst_smtp_tls_done(pst_connection_t *c, int rc)
{
    pst_session_t  *s = c->data;
    pst_server_t   *srv;

    pst_metric_inc(rc == PST_OK ? PST_M_TLS_HANDSHAKES
                                : PST_M_TLS_FAILURES);

    if (rc != PST_OK) {
        pst_log_session(s, PST_LOG_INFO, "TLS handshake failed: %s",
                        pst_ssl_error(c));
        s->eof = 1;
        pst_smtp_close_session(s);
        return;
    }

    if (pst_smtp_tls_facts(s) != PST_OK) {
        pst_smtp_close_session(s);
        return;
    }

    srv = pst_ssl_sni_data(c);
    if (srv != NULL && srv != s->server) {
        /* the rest of the session belongs to the block the client
         * named: its hostname, limits and modules */
        s->server = srv;
        s->conf = srv->conf;
    }

    pst_log_session(s, PST_LOG_INFO, "TLS established: %s %s (%d bits)%s%s"
                    "%s%s%s%s%s", s->tls_facts->version,
                    s->tls_facts->cipher, s->tls_facts->bits,
                    s->tls_facts->sni.len ? " sni=" : "",
                    s->tls_facts->sni.len ? (char *) s->tls_facts->sni.data
                                          : "",
                    s->tls_facts->peer_subject.len ? " client=\"" : "",
                    s->tls_facts->peer_subject.len
                        ? (char *) s->tls_facts->peer_subject.data : "",
                    s->tls_facts->peer_subject.len ? "\"" : "",
                    s->tls_facts->peer_subject.len
                        ? (s->tls_facts->verified ? " verified"
                                                  : " unverified") : "",
                    pst_ssl_session_reused(c) ? " resumed" : "");

    /* RFC 3207 4.2: forget everything learnt before TLS */
    pst_smtp_tx_free(s);
    s->helo.len = 0;
    s->helo.data = NULL;
    s->helo_seen = 0;
    s->esmtp = 0;
    pst_smtp_auth_reset(s);

    if (s->tls_implicit) {
        pst_smtp_session_start(s);
        return;
    }

    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    pst_smtp_set_timer(s, s->conf->command_timeout);
    pst_smtp_continue(s);
}
