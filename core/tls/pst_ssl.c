/*
 * pst_ssl.c -- TLS with OpenSSL 3 (see pst_ssl.h).
 *
 * Edge-triggered events and TLS: OpenSSL may hold decrypted bytes (or a
 * whole record read from the socket) that no new epoll edge announces,
 * so pst_ssl_recv() leaves c->read.ready set after a successful read and
 * clears it only when SSL_read() wants more from the socket.  The
 * session's loop then reads again until OpenSSL says WANT_READ, which
 * costs one extra call per burst and never stalls a session.
 *
 * Every OpenSSL call starts with an empty error queue and leaves it
 * empty: errors are per thread, not per connection, and a stale entry
 * would be reported against the next session.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_ssl.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/*
 * The shared session cache: fixed slots in a shared memory zone, found
 * by a hash of the session id, so that a session made by one worker
 * resumes on another (and after a reload: the zone outlives cycles).
 * Sessions carry their session id context, so one zone serves several
 * server blocks without mixing them up.
 */
#define PST_SSL_SESS_DER     1960
#define PST_SSL_SESS_PROBES  4

typedef struct {
    u_char                       id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    uint32_t                     id_len;
    uint32_t                     expires;     /* time(), 0: free */
    uint32_t                     der_len;
    u_char                       der[PST_SSL_SESS_DER];
} pst_ssl_sess_slot_t;

struct pst_ssl_ctx_s {
    SSL_CTX                     *ctx;
    pst_shm_t                   *zone;         /* shared session cache */
    pst_ssl_sni_pt               sni;
    pst_ssl_verify_e             verify;        /* client side */
    unsigned                     client:1;
};

struct pst_ssl_conn_s {
    SSL                         *ssl;
    pst_ssl_ctx_t               *ctx;           /* after SNI */
    void                        *sni_data;
    pst_ssl_handshake_pt         done;
    pst_event_handler_pt         read_handler;  /* the owner's */
    pst_event_handler_pt         write_handler;
    u_char                      *plain;         /* cleartext to send first */
    size_t                       plain_len;
    char                         error[200];
    unsigned                     handshaked:1;
    unsigned                     client:1;
    unsigned                     failed:1;
    unsigned                     read_blocked:1;   /* SSL_read wants write */
    unsigned                     write_blocked:1;  /* SSL_write wants read */
};


/* c->ssl is opaque (void *) outside this file */
#define SC(c)  ((pst_ssl_conn_t *) (c)->ssl)

static void pst_ssl_ctx_cleanup(void *data);
static void pst_ssl_handshake_handler(pst_event_t *ev);
static void pst_ssl_read_wrapper(pst_event_t *ev);
static void pst_ssl_write_wrapper(pst_event_t *ev);
static int pst_ssl_servername_cb(SSL *ssl, int *ad, void *arg);
static void pst_ssl_shared_cache(pst_ssl_ctx_t *c);
static int pst_ssl_client_name(SSL *ssl, const char *name, int verify);


/* The OpenSSL error queue as one line (and emptied). */
static const char *
pst_ssl_errors(char *buf, size_t size, const char *dflt)
{
    unsigned long  e;
    size_t         n = 0;
    char           one[256];

    buf[0] = '\0';

    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_REASON(e) == 0) {
            continue;
        }
        ERR_error_string_n(e, one, sizeof(one));
        /* "error:0A000086:SSL routines::certificate verify failed":
         * keep the text after the last colon pair */
        n += (size_t) snprintf(buf + n, n < size ? size - n : 0, "%s%s",
                               n ? "; " : "",
                               ERR_reason_error_string(e)
                               ? ERR_reason_error_string(e) : one);
        if (n >= size) {
            break;
        }
    }

    if (buf[0] == '\0' && dflt != NULL) {
        snprintf(buf, size, "%s", dflt);
    }

    return buf;
}


pst_uint_t
pst_ssl_parse_protocol(const pst_str_t *name)
{
    if (pst_str_caseeq(name, "TLSv1")) {
        return PST_SSL_TLSv1;
    }
    if (pst_str_caseeq(name, "TLSv1.1")) {
        return PST_SSL_TLSv1_1;
    }
    if (pst_str_caseeq(name, "TLSv1.2")) {
        return PST_SSL_TLSv1_2;
    }
    if (pst_str_caseeq(name, "TLSv1.3")) {
        return PST_SSL_TLSv1_3;
    }
    return 0;
}


/* min/max protocol from a bit set; gaps are not expressible in
 * OpenSSL 3 and are closed (TLSv1 TLSv1.3 means 1.0 .. 1.3). */
static int
pst_ssl_set_protocols(SSL_CTX *ctx, pst_uint_t p)
{
    static const int  versions[] = { TLS1_VERSION, TLS1_1_VERSION,
                                     TLS1_2_VERSION, TLS1_3_VERSION };
    int               i, lo = -1, hi = -1;

    for (i = 0; i < 4; i++) {
        if (p & (1u << i)) {
            if (lo == -1) {
                lo = i;
            }
            hi = i;
        }
    }

    if (lo == -1) {
        return PST_ERROR;
    }

    if (!SSL_CTX_set_min_proto_version(ctx, versions[lo])
        || !SSL_CTX_set_max_proto_version(ctx, versions[hi]))
    {
        return PST_ERROR;
    }

    if (lo < 2) {
        /* Debian's default security level refuses SHA-1 signatures,
         * which TLS 1.0 and 1.1 need: an explicit old protocol is a
         * deliberate choice for old peers */
        SSL_CTX_set_security_level(ctx, 0);
    }

    return PST_OK;
}


static SSL_CTX *
pst_ssl_new_ctx(int client)
{
    SSL_CTX  *ctx;

    ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
    if (ctx == NULL) {
        return NULL;
    }

    /* no renegotiation (CVE-2009-3555 and CPU exhaustion), no
     * compression (CRIME); an EOF without close_notify is a normal end
     * for SMTP, which has its own framing (QUIT, CRLF.CRLF) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION
                             | SSL_OP_IGNORE_UNEXPECTED_EOF
                             | (client ? 0 : SSL_OP_CIPHER_SERVER_PREFERENCE));

    /* partial writes: the session keeps its own output buffer; idle
     * sessions give their TLS buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);

    return ctx;
}


static void
pst_ssl_ctx_cleanup(void *data)
{
    pst_ssl_ctx_t  *c = data;

    SSL_CTX_free(c->ctx);
}


static pst_ssl_ctx_t *
pst_ssl_wrap_ctx(pst_pool_t *pool, SSL_CTX *ctx)
{
    pst_ssl_ctx_t  *c;

    c = pst_pcalloc(pool, sizeof(pst_ssl_ctx_t));
    if (c == NULL) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    c->ctx = ctx;

    if (pst_pool_cleanup_add(pool, pst_ssl_ctx_cleanup, c) != PST_OK) {
        SSL_CTX_free(ctx);
        return NULL;
    }

    return c;
}


/* Optional client certificates: ask, take any, record the verdict. */
static int
pst_ssl_verify_any(int ok, X509_STORE_CTX *store)
{
    (void) ok;
    (void) store;
    return 1;
}


static int
pst_ssl_load_pair(pst_conf_t *cf, SSL_CTX *ctx, const pst_str_t *cert,
    const pst_str_t *key)
{
    char   err[512];
    X509  *x;

    ERR_clear_error();

    if (SSL_CTX_use_certificate_chain_file(ctx, (char *) cert->data) != 1) {
        pst_conf_error(cf, "cannot load certificate \"%s\": %s", cert->data,
                       pst_ssl_errors(err, sizeof(err), "unknown error"));
        return PST_ERROR;
    }

    if (SSL_CTX_use_PrivateKey_file(ctx, (char *) key->data,
                                    SSL_FILETYPE_PEM) != 1)
    {
        if (ERR_GET_REASON(ERR_peek_last_error())
            == X509_R_KEY_VALUES_MISMATCH)
        {
            ERR_clear_error();
            pst_conf_error(cf, "certificate key \"%s\" does not match the"
                           " certificate \"%s\"", key->data, cert->data);
            return PST_ERROR;
        }
        pst_conf_error(cf, "cannot load certificate key \"%s\": %s",
                       key->data,
                       pst_ssl_errors(err, sizeof(err), "unknown error"));
        return PST_ERROR;
    }

    if (SSL_CTX_check_private_key(ctx) != 1) {
        pst_conf_error(cf, "certificate key \"%s\" does not match the"
                       " certificate \"%s\": %s", key->data, cert->data,
                       pst_ssl_errors(err, sizeof(err), "mismatch"));
        return PST_ERROR;
    }

    x = SSL_CTX_get0_certificate(ctx);
    if (x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        /* still served: better an expired certificate than none for
         * opportunistic peers, but the operator must know */
        pst_conf_warn(cf, "certificate \"%s\" has expired", cert->data);
    } else if (x != NULL
               && X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
    {
        pst_conf_warn(cf, "certificate \"%s\" is not valid yet",
                      cert->data);
    }

    return PST_OK;
}


pst_ssl_ctx_t *
pst_ssl_server_ctx(pst_conf_t *cf, const pst_ssl_server_conf_t *conf)
{
    STACK_OF(X509_NAME)  *names;
    pst_ssl_ctx_t        *c;
    pst_str_t            *cert, *key;
    SSL_CTX              *ctx;
    pst_uint_t            i;
    char                  err[512], sid[32];

    ERR_clear_error();

    ctx = pst_ssl_new_ctx(0);
    if (ctx == NULL) {
        pst_conf_error(cf, "SSL_CTX_new() failed: %s",
                       pst_ssl_errors(err, sizeof(err), "no memory"));
        return NULL;
    }

    c = pst_ssl_wrap_ctx(pst_conf_pool(cf), ctx);
    if (c == NULL) {
        return NULL;
    }
    c->sni = conf->sni;

    if (pst_ssl_set_protocols(ctx, conf->protocols) != PST_OK) {
        pst_conf_error(cf, "cannot set tls_protocols: %s",
                       pst_ssl_errors(err, sizeof(err), "no protocol"));
        return NULL;
    }

    if (conf->ciphers.len
        && SSL_CTX_set_cipher_list(ctx, (char *) conf->ciphers.data) != 1)
    {
        pst_conf_error(cf, "invalid tls_ciphers \"%s\": %s",
                       conf->ciphers.data,
                       pst_ssl_errors(err, sizeof(err), "no cipher"));
        return NULL;
    }

    if (conf->ciphersuites.len
        && SSL_CTX_set_ciphersuites(ctx, (char *) conf->ciphersuites.data)
           != 1)
    {
        pst_conf_error(cf, "invalid tls_ciphersuites \"%s\": %s",
                       conf->ciphersuites.data,
                       pst_ssl_errors(err, sizeof(err), "no cipher"));
        return NULL;
    }

    SSL_CTX_set_dh_auto(ctx, 1);

    cert = conf->certificates->elts;
    key = conf->keys->elts;
    for (i = 0; i < conf->certificates->nelts; i++) {
        /* one pair per key type: OpenSSL keeps an RSA and an ECDSA
         * certificate side by side and picks by what the client can do */
        if (pst_ssl_load_pair(cf, ctx, &cert[i], &key[i]) != PST_OK) {
            return NULL;
        }
    }

    /* resumed sessions must come back to the same server block */
    snprintf(sid, sizeof(sid), "postern-%lu", (unsigned long) conf->id);
    SSL_CTX_set_session_id_context(ctx, (u_char *) sid, strlen(sid));

    if (conf->session_zone != NULL) {
        c->zone = conf->session_zone;
        pst_ssl_shared_cache(c);
    } else if (conf->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, conf->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_timeout(ctx, (long) (conf->session_timeout / 1000));

    if (!conf->session_tickets) {
        /* TLS 1.3 without tickets resumes from the cache, if any
         * (OpenSSL then sends "stateful" tickets: session ids) */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if (conf->session_cache == 0 && conf->session_zone == NULL) {
            SSL_CTX_set_num_tickets(ctx, 0);
        }
    }
    /* else: ticket keys are made here, in the master, and inherited by
     * every worker, so a ticket resumes on any worker of this cycle */

    if (conf->verify_client != PST_SSL_CLIENT_OFF) {
        if (conf->client_ca.len) {
            if (SSL_CTX_load_verify_locations(ctx,
                    (char *) conf->client_ca.data, NULL) != 1)
            {
                pst_conf_error(cf, "cannot load tls_client_certificate"
                               " \"%s\": %s", conf->client_ca.data,
                               pst_ssl_errors(err, sizeof(err), "error"));
                return NULL;
            }
            names = SSL_load_client_CA_file((char *) conf->client_ca.data);
            if (names != NULL) {
                /* the CAs we name in the CertificateRequest */
                SSL_CTX_set_client_CA_list(ctx, names);
            }
            ERR_clear_error();
        }

        if (conf->verify_client == PST_SSL_CLIENT_REQUIRED) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER
                                    | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pst_ssl_verify_any);
        }
        SSL_CTX_set_verify_depth(ctx, (int) conf->verify_depth);
    }

    SSL_CTX_set_tlsext_servername_callback(ctx, pst_ssl_servername_cb);

    return c;
}


pst_ssl_ctx_t *
pst_ssl_client_ctx(pst_pool_t *pool, const pst_ssl_client_conf_t *conf,
    char *err, size_t size)
{
    pst_ssl_ctx_t  *c;
    SSL_CTX        *ctx;
    char            e[512];

    ERR_clear_error();

    ctx = pst_ssl_new_ctx(1);
    if (ctx == NULL) {
        snprintf(err, size, "SSL_CTX_new() failed: %s",
                 pst_ssl_errors(e, sizeof(e), "no memory"));
        return NULL;
    }

    c = pst_ssl_wrap_ctx(pool, ctx);
    if (c == NULL) {
        snprintf(err, size, "out of memory");
        return NULL;
    }
    c->client = 1;
    c->verify = conf->verify;

    if (pst_ssl_set_protocols(ctx, conf->protocols
                                   ? conf->protocols
                                   : PST_SSL_DEFAULT_PROTOCOLS) != PST_OK
        || (conf->ciphers.len
            && SSL_CTX_set_cipher_list(ctx, (char *) conf->ciphers.data)
               != 1))
    {
        snprintf(err, size, "invalid protocols or ciphers: %s",
                 pst_ssl_errors(e, sizeof(e), "error"));
        return NULL;
    }

    if (conf->verify != PST_SSL_VERIFY_NONE) {
        if (conf->ca_file.len || conf->ca_path.len) {
            if (SSL_CTX_load_verify_locations(ctx,
                    conf->ca_file.len ? (char *) conf->ca_file.data : NULL,
                    conf->ca_path.len ? (char *) conf->ca_path.data : NULL)
                != 1)
            {
                snprintf(err, size, "cannot load CA \"%s\": %s",
                         conf->ca_file.len ? (char *) conf->ca_file.data
                                           : (char *) conf->ca_path.data,
                         pst_ssl_errors(e, sizeof(e), "error"));
                return NULL;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            snprintf(err, size, "cannot load the system CAs: %s",
                     pst_ssl_errors(e, sizeof(e), "error"));
            return NULL;
        }
    }

    /* the chain is always checked so that the result can be reported;
     * only "verify-peer" lets a failure end the handshake */
    SSL_CTX_set_verify(ctx, conf->verify == PST_SSL_VERIFY_PEER
                            ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);

    if (conf->certificate.len) {
        if (SSL_CTX_use_certificate_chain_file(ctx,
                (char *) conf->certificate.data) != 1
            || SSL_CTX_use_PrivateKey_file(ctx,
                   (char *) (conf->key.len ? conf->key.data
                                           : conf->certificate.data),
                   SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1)
        {
            snprintf(err, size, "cannot load client certificate \"%s\":"
                     " %s", conf->certificate.data,
                     pst_ssl_errors(e, sizeof(e), "error"));
            return NULL;
        }
    }

    return c;
}


/* ------------------------------------------------------------------ */
/* Shared session cache                                                */

size_t
pst_ssl_session_zone_size(size_t n)
{
    return n * sizeof(pst_ssl_sess_slot_t);
}


static pst_ssl_sess_slot_t *
pst_ssl_sess_find(pst_shm_t *z, const u_char *id, size_t len, int create)
{
    pst_ssl_sess_slot_t  *t, *s, *victim = NULL;
    size_t                n, i;
    uint32_t              h = 2166136261u, now;

    t = pst_shm_addr(z);
    n = pst_shm_size(z) / sizeof(pst_ssl_sess_slot_t);
    now = (uint32_t) pst_current_time_sec;

    for (i = 0; i < len; i++) {
        h = (h ^ id[i]) * 16777619u;
    }

    for (i = 0; i < PST_SSL_SESS_PROBES; i++) {
        s = &t[(h + i) % n];
        if (s->expires != 0 && s->id_len == len
            && memcmp(s->id, id, len) == 0)
        {
            if (s->expires <= now && !create) {
                s->expires = 0;
                return NULL;
            }
            return s;
        }
        if (victim == NULL || s->expires < victim->expires) {
            victim = s;          /* free, expired, or soonest to expire */
        }
    }

    return create ? victim : NULL;
}


static int
pst_ssl_sess_new(SSL *ssl, SSL_SESSION *sess)
{
    pst_ssl_sess_slot_t  *s;
    pst_ssl_ctx_t        *c;
    const u_char         *id;
    u_char                der[PST_SSL_SESS_DER], *p;
    unsigned              len;
    int                   n;

    c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    id = SSL_SESSION_get_id(sess, &len);
    n = i2d_SSL_SESSION(sess, NULL);

    if (c == NULL || c->zone == NULL || len == 0 || n <= 0
        || n > PST_SSL_SESS_DER)
    {
        return 0;                /* not cached: a full handshake later */
    }

    p = der;
    n = i2d_SSL_SESSION(sess, &p);

    pst_shm_lock(c->zone);
    s = pst_ssl_sess_find(c->zone, id, len, 1);
    memcpy(s->id, id, len);
    s->id_len = len;
    s->expires = (uint32_t) (SSL_SESSION_get_time(sess)
                             + SSL_SESSION_get_timeout(sess));
    s->der_len = (uint32_t) n;
    memcpy(s->der, der, (size_t) n);
    pst_shm_unlock(c->zone);

    return 0;                    /* we keep no reference to sess */
}


static SSL_SESSION *
pst_ssl_sess_get(SSL *ssl, const u_char *id, int len, int *copy)
{
    pst_ssl_sess_slot_t  *s;
    pst_ssl_ctx_t        *c;
    const u_char         *p;
    SSL_SESSION          *sess = NULL;
    u_char                der[PST_SSL_SESS_DER];
    size_t                n = 0;

    *copy = 0;
    c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (c == NULL || c->zone == NULL || len <= 0
        || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
    {
        return NULL;
    }

    pst_shm_lock(c->zone);
    s = pst_ssl_sess_find(c->zone, id, (size_t) len, 0);
    if (s != NULL) {
        n = s->der_len;
        memcpy(der, s->der, n);
    }
    pst_shm_unlock(c->zone);

    if (n > 0) {
        p = der;
        sess = d2i_SSL_SESSION(NULL, &p, (long) n);
    }

    return sess;
}


static void
pst_ssl_sess_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
    pst_ssl_sess_slot_t  *s;
    pst_ssl_ctx_t        *c;
    const u_char         *id;
    unsigned              len;

    c = SSL_CTX_get_app_data(ctx);
    if (c == NULL || c->zone == NULL) {
        return;
    }

    id = SSL_SESSION_get_id(sess, &len);

    pst_shm_lock(c->zone);
    s = pst_ssl_sess_find(c->zone, id, len, 0);
    if (s != NULL) {
        s->expires = 0;
    }
    pst_shm_unlock(c->zone);
}


static void
pst_ssl_shared_cache(pst_ssl_ctx_t *c)
{
    SSL_CTX_set_app_data(c->ctx, c);
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_SERVER
                                           | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(c->ctx, pst_ssl_sess_new);
    SSL_CTX_sess_set_get_cb(c->ctx, pst_ssl_sess_get);
    SSL_CTX_sess_set_remove_cb(c->ctx, pst_ssl_sess_remove);
}


/* ------------------------------------------------------------------ */
/* Connections                                                         */

/* The server's name for SNI and the certificate check.  An IP address,
 * bare or as an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]",
 * "[2001:db8::1]": the relay's next hops), is never sent as SNI (RFC
 * 6066 3) and is checked against the certificate's iPAddress names (RFC
 * 6125 does not match it against DNS names); "[name]" (a next hop
 * without MX lookup) is the host name without its brackets. */
static int
pst_ssl_client_name(SSL *ssl, const char *name, int verify)
{
    X509_VERIFY_PARAM  *param;
    u_char              addr[sizeof(struct in6_addr)];
    char                host[256];
    size_t              n = strlen(name), skip = 0;

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        skip = 1;
        n -= 2;
        if (n > 5 && strncasecmp(name + 1, "IPv6:", 5) == 0) {
            skip += 5;
            n -= 5;
        }
    }
    if (n == 0 || n >= sizeof(host)) {
        return PST_ERROR;
    }
    memcpy(host, name + skip, n);
    host[n] = '\0';
    param = SSL_get0_param(ssl);

    if (inet_pton(AF_INET, host, addr) == 1
        || inet_pton(AF_INET6, host, addr) == 1)
    {
        /* no SNI; the address against the iPAddress names */
        return !verify || X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1
               ? PST_OK : PST_ERROR;
    }

    (void) SSL_set_tlsext_host_name(ssl, host);
    if (!verify) {
        return PST_OK;
    }
    X509_VERIFY_PARAM_set_hostflags(param,
                                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return X509_VERIFY_PARAM_set1_host(param, host, 0) == 1
           ? PST_OK : PST_ERROR;
}


int
pst_ssl_create_connection(pst_connection_t *c, pst_ssl_ctx_t *ctx,
    int client, const char *name)
{
    pst_ssl_conn_t  *sc;
    char             err[256];

    sc = calloc(1, sizeof(pst_ssl_conn_t));
    if (sc == NULL) {
        return PST_ERROR;
    }

    ERR_clear_error();

    sc->ssl = SSL_new(ctx->ctx);
    if (sc->ssl == NULL || SSL_set_fd(sc->ssl, c->fd) != 1) {
        pst_log_error(PST_LOG_ERR, 0, "SSL_new() failed: %s",
                      pst_ssl_errors(err, sizeof(err), "error"));
        SSL_free(sc->ssl);
        free(sc);
        return PST_ERROR;
    }

    sc->ctx = ctx;
    sc->client = client;
    SSL_set_app_data(sc->ssl, c);

    if (client) {
        SSL_set_connect_state(sc->ssl);
        if (name != NULL && name[0] != '\0'
            && pst_ssl_client_name(sc->ssl, name,
                                   ctx->verify != PST_SSL_VERIFY_NONE)
               != PST_OK)
        {
            SSL_free(sc->ssl);
            free(sc);
            ERR_clear_error();
            return PST_ERROR;
        }
    } else {
        SSL_set_accept_state(sc->ssl);
    }

    c->ssl = sc;
    c->ssl_close = pst_ssl_close;
    return PST_OK;
}


void
pst_ssl_handshake(pst_connection_t *c, const u_char *plain, size_t n,
    pst_msec_t timeout, pst_ssl_handshake_pt done)
{
    pst_ssl_conn_t  *sc = c->ssl;

    sc->done = done;
    sc->read_handler = c->read.handler;
    sc->write_handler = c->write.handler;

    if (n > 0) {
        sc->plain = malloc(n);
        if (sc->plain != NULL) {
            memcpy(sc->plain, plain, n);
            sc->plain_len = n;
        } else {
            sc->failed = 1;
            snprintf(sc->error, sizeof(sc->error), "out of memory");
        }
    }

    c->read.handler = pst_ssl_handshake_handler;
    c->write.handler = pst_ssl_handshake_handler;
    pst_event_add_timer(&c->read, timeout);

    /* first attempt from the posted queue: the caller (a command
     * handler, an accept handler) finishes before the callback runs */
    pst_post_event(&c->write);
}


static void
pst_ssl_handshake_finish(pst_connection_t *c, int rc)
{
    pst_ssl_conn_t  *sc = c->ssl;

    pst_event_del_timer(&c->read);
    free(sc->plain);
    sc->plain = NULL;
    sc->plain_len = 0;

    if (rc == PST_OK) {
        sc->handshaked = 1;
        c->recv = pst_ssl_recv;
        c->send = pst_ssl_send;
        /* the client's first command may have come with its Finished
         * and sit in OpenSSL or the socket: read once, whatever epoll
         * said last (costs one EAGAIN at worst) */
        c->read.ready = 1;
        c->read.handler = pst_ssl_read_wrapper;
        c->write.handler = pst_ssl_write_wrapper;
    } else {
        sc->failed = 1;
        c->read.handler = sc->read_handler;
        c->write.handler = sc->write_handler;
    }

    /* may close the connection: nothing touches c or sc after this */
    sc->done(c, rc);
}


static int
pst_ssl_send_plain(pst_connection_t *c)
{
    pst_ssl_conn_t  *sc = c->ssl;
    ssize_t          n;

    while (sc->plain_len > 0) {
        n = send(c->fd, sc->plain, sc->plain_len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(sc->plain, sc->plain + n, sc->plain_len - (size_t) n);
            sc->plain_len -= (size_t) n;
            continue;
        }
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->write.ready = 0;
            return PST_AGAIN;
        }
        snprintf(sc->error, sizeof(sc->error), "send() failed: %s",
                 strerror(errno));
        return PST_ERROR;
    }

    return PST_OK;
}


static void
pst_ssl_handshake_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_ssl_conn_t    *sc = c->ssl;
    int                n, err, rc;

    if (ev->timedout) {
        ev->timedout = 0;
        snprintf(sc->error, sizeof(sc->error), "handshake timed out");
        pst_ssl_handshake_finish(c, PST_ERROR);
        return;
    }

    if (sc->failed) {
        pst_ssl_handshake_finish(c, PST_ERROR);
        return;
    }

    if (sc->plain_len > 0) {
        rc = pst_ssl_send_plain(c);
        if (rc == PST_AGAIN) {
            return;
        }
        if (rc == PST_ERROR) {
            pst_ssl_handshake_finish(c, PST_ERROR);
            return;
        }
    }

    ERR_clear_error();
    errno = 0;
    n = SSL_do_handshake(sc->ssl);

    if (n == 1) {
        pst_ssl_handshake_finish(c, PST_OK);
        return;
    }

    err = SSL_get_error(sc->ssl, n);

    switch (err) {
    case SSL_ERROR_WANT_READ:
        c->read.ready = 0;
        return;

    case SSL_ERROR_WANT_WRITE:
        c->write.ready = 0;
        return;

    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            snprintf(sc->error, sizeof(sc->error), "%s", errno
                     ? strerror(errno) : "peer closed the connection");
            break;
        }
        /* fall through */

    default:
        (void) pst_ssl_errors(sc->error, sizeof(sc->error),
                              "handshake failed");
        if (SSL_get_verify_result(sc->ssl) != X509_V_OK) {
            n = (int) strlen(sc->error);
            snprintf(sc->error + n, sizeof(sc->error) - (size_t) n,
                     " (%s)", X509_verify_cert_error_string(
                         SSL_get_verify_result(sc->ssl)));
        }
    }

    ERR_clear_error();
    pst_ssl_handshake_finish(c, PST_ERROR);
}


/* After the handshake: a read that waited for the socket to take our
 * bytes (or the reverse) resumes on the other direction's event. */
static void
pst_ssl_read_wrapper(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_ssl_conn_t    *sc = c->ssl;

    if (sc->write_blocked && !ev->timedout) {
        sc->write_blocked = 0;
        c->write.ready = 1;
        pst_post_event(&c->write);
    }

    sc->read_handler(ev);
}


static void
pst_ssl_write_wrapper(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_ssl_conn_t    *sc = c->ssl;

    if (sc->read_blocked && !ev->timedout) {
        sc->read_blocked = 0;
        c->read.ready = 1;
        pst_post_event(&c->read);
    }

    sc->write_handler(ev);
}


static ssize_t
pst_ssl_io_error(pst_connection_t *c, int n, pst_event_t *ev,
    const char *what)
{
    pst_ssl_conn_t  *sc = c->ssl;
    int              err;

    err = SSL_get_error(sc->ssl, n);

    switch (err) {
    case SSL_ERROR_ZERO_RETURN:
        /* close_notify */
        c->read.ready = 0;
        c->read.eof = 1;
        return 0;

    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
                c->read.ready = 0;
                c->read.eof = 1;
                snprintf(sc->error, sizeof(sc->error), "%s",
                         errno ? strerror(errno) : "connection closed");
                sc->failed = 1;
                return ev->write ? PST_ERROR : 0;
            }
            snprintf(sc->error, sizeof(sc->error), "%s() failed: %s", what,
                     strerror(errno));
            break;
        }
        /* fall through */

    default:
        (void) pst_ssl_errors(sc->error, sizeof(sc->error), "TLS error");
    }

    ERR_clear_error();
    sc->failed = 1;
    ev->ready = 0;
    ev->error = 1;
    pst_log_error(PST_LOG_INFO, 0, "TLS %s on connection %llu failed: %s",
                  what, (unsigned long long) c->number, sc->error);
    return PST_ERROR;
}


ssize_t
pst_ssl_recv(pst_connection_t *c, u_char *buf, size_t size)
{
    pst_ssl_conn_t  *sc = c->ssl;
    int              n, err;

    if (size == 0) {
        return PST_AGAIN;
    }

    ERR_clear_error();
    errno = 0;
    n = SSL_read(sc->ssl, buf, (int) pst_min(size, INT_MAX));

    if (n > 0) {
        /* c->read.ready stays set: OpenSSL may hold more */
        return n;
    }

    err = SSL_get_error(sc->ssl, n);

    if (err == SSL_ERROR_WANT_READ) {
        c->read.ready = 0;
        return PST_AGAIN;
    }

    if (err == SSL_ERROR_WANT_WRITE) {
        /* a TLS 1.3 key update answer could not be sent yet */
        c->read.ready = 0;
        sc->read_blocked = 1;
        return PST_AGAIN;
    }

    return pst_ssl_io_error(c, n, &c->read, "read");
}


ssize_t
pst_ssl_send(pst_connection_t *c, const u_char *buf, size_t size)
{
    pst_ssl_conn_t  *sc = c->ssl;
    int              n, err;

    if (size == 0) {
        return 0;
    }

    ERR_clear_error();
    errno = 0;
    n = SSL_write(sc->ssl, buf, (int) pst_min(size, INT_MAX));

    if (n > 0) {
        return n;
    }

    err = SSL_get_error(sc->ssl, n);

    if (err == SSL_ERROR_WANT_WRITE) {
        c->write.ready = 0;
        return PST_AGAIN;
    }

    if (err == SSL_ERROR_WANT_READ) {
        c->write.ready = 0;
        sc->write_blocked = 1;
        return PST_AGAIN;
    }

    return pst_ssl_io_error(c, n, &c->write, "write");
}


void
pst_ssl_close(pst_connection_t *c)
{
    pst_ssl_conn_t  *sc = c->ssl;

    c->ssl = NULL;
    c->recv = pst_unix_recv;
    c->send = pst_unix_send;

    ERR_clear_error();

    if (sc->handshaked && !sc->failed && !c->read.error
        && !c->write.error)
    {
        /* close_notify, once, without waiting for the peer's */
        (void) SSL_shutdown(sc->ssl);
    }

    ERR_clear_error();
    SSL_free(sc->ssl);
    free(sc->plain);
    free(sc);
}


/* ------------------------------------------------------------------ */
/* SNI                                                                 */

static int
pst_ssl_servername_cb(SSL *ssl, int *ad, void *arg)
{
    pst_connection_t  *c;
    pst_ssl_conn_t    *sc;
    pst_ssl_ctx_t     *ctx;
    const char        *name;

    (void) ad;
    (void) arg;

    c = SSL_get_app_data(ssl);
    if (c == NULL || c->ssl == NULL) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    sc = c->ssl;

    name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || sc->ctx->sni == NULL) {
        return SSL_TLSEXT_ERR_NOACK;
    }

    ctx = sc->ctx->sni(c, name, &sc->sni_data);
    if (ctx == NULL || ctx == sc->ctx) {
        /* an unknown name gets the default certificate: the client
         * decides whether that is good enough */
        return SSL_TLSEXT_ERR_OK;
    }

    SSL_set_SSL_CTX(ssl, ctx->ctx);

    /* SSL_set_SSL_CTX() takes the certificates only; the rest comes
     * from the chosen block too */
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx->ctx),
                   SSL_CTX_get_verify_callback(ctx->ctx));
    SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx->ctx));
    SSL_clear_options(ssl, SSL_get_options(ssl)
                           & ~SSL_CTX_get_options(ctx->ctx));
    SSL_set_options(ssl, SSL_CTX_get_options(ctx->ctx));

    sc->ctx = ctx;
    return SSL_TLSEXT_ERR_OK;
}


/* ------------------------------------------------------------------ */
/* Facts                                                               */

const char *
pst_ssl_version(pst_connection_t *c)
{
    return c->ssl ? SSL_get_version(SC(c)->ssl) : NULL;
}


const char *
pst_ssl_cipher(pst_connection_t *c)
{
    return c->ssl ? SSL_get_cipher_name(SC(c)->ssl) : NULL;
}


int
pst_ssl_cipher_bits(pst_connection_t *c)
{
    return c->ssl ? SSL_get_cipher_bits(SC(c)->ssl, NULL) : 0;
}


const char *
pst_ssl_servername(pst_connection_t *c)
{
    return c->ssl ? SSL_get_servername(SC(c)->ssl,
                                       TLSEXT_NAMETYPE_host_name) : NULL;
}


void *
pst_ssl_sni_data(pst_connection_t *c)
{
    return c->ssl ? SC(c)->sni_data : NULL;
}


int
pst_ssl_session_reused(pst_connection_t *c)
{
    return c->ssl ? SSL_session_reused(SC(c)->ssl) : 0;
}


int
pst_ssl_peer_certificate(pst_connection_t *c, pst_pool_t *pool,
    pst_str_t *subject, pst_str_t *fingerprint)
{
    static const char  hex[] = "0123456789abcdef";
    u_char             md[EVP_MAX_MD_SIZE];
    unsigned           mdlen, i;
    X509              *x;
    BIO               *bio;
    char              *p;
    long               n;

    if (c->ssl == NULL) {
        return PST_DECLINED;
    }

    x = SSL_get1_peer_certificate(SC(c)->ssl);
    if (x == NULL) {
        return PST_DECLINED;
    }

    subject->len = 0;
    subject->data = NULL;

    bio = BIO_new(BIO_s_mem());
    if (bio != NULL) {
        if (X509_NAME_print_ex(bio, X509_get_subject_name(x), 0,
                               XN_FLAG_RFC2253) >= 0)
        {
            n = BIO_get_mem_data(bio, &p);
            if (n > 0) {
                subject->data = pst_palloc(pool, (size_t) n + 1);
                if (subject->data != NULL) {
                    (void) pst_sanitize(subject->data, (size_t) n + 1,
                                        (u_char *) p, (size_t) n);
                    subject->len = strlen((char *) subject->data);
                }
            }
        }
        BIO_free(bio);
    }

    fingerprint->len = 0;
    fingerprint->data = NULL;

    if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
        fingerprint->data = pst_palloc(pool, 2 * mdlen + 1);
        if (fingerprint->data != NULL) {
            for (i = 0; i < mdlen; i++) {
                fingerprint->data[2 * i] = (u_char) hex[md[i] >> 4];
                fingerprint->data[2 * i + 1] = (u_char) hex[md[i] & 0xf];
            }
            fingerprint->data[2 * mdlen] = '\0';
            fingerprint->len = 2 * mdlen;
        }
    }

    X509_free(x);
    ERR_clear_error();

    return PST_OK;
}


int
pst_ssl_verified(pst_connection_t *c)
{
    X509  *x;
    int    ok;

    if (c->ssl == NULL || !SC(c)->handshaked) {
        return 0;
    }

    x = SSL_get0_peer_certificate(SC(c)->ssl);
    ok = x != NULL && SSL_get_verify_result(SC(c)->ssl) == X509_V_OK;

    if (ok && SC(c)->client && SC(c)->ctx->verify == PST_SSL_VERIFY_NONE)
    {
        /* nothing was checked */
        ok = 0;
    }

    return ok;
}


long
pst_ssl_verify_code(pst_connection_t *c)
{
    if (c->ssl == NULL || SSL_get0_peer_certificate(SC(c)->ssl) == NULL) {
        return -1;
    }
    return SSL_get_verify_result(SC(c)->ssl);
}


const char *
pst_ssl_verify_error(pst_connection_t *c)
{
    long  r;

    if (c->ssl == NULL) {
        return NULL;
    }

    if (SSL_get0_peer_certificate(SC(c)->ssl) == NULL) {
        return "no certificate";
    }

    r = SSL_get_verify_result(SC(c)->ssl);
    return r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
}


const char *
pst_ssl_error(pst_connection_t *c)
{
    return c->ssl ? SC(c)->error : "";
}


/* The OpenSSL object of a TLS connection (an SSL *), for pst_ssl_dane.c;
 * NULL before pst_ssl_create_connection(). */
void *
pst_ssl_object(pst_connection_t *c)
{
    return c->ssl != NULL ? SC(c)->ssl : NULL;
}
