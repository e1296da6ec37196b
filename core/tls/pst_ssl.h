/*
 * pst_ssl.h -- TLS with OpenSSL 3, for the server and the client side.
 *
 * Contexts are built from the configuration while a cycle is read (in
 * the master, before the workers fork), so a certificate that does not
 * load fails the cycle and a reload keeps the running one.  They live
 * in the cycle's pool.
 *
 * A connection becomes TLS with pst_ssl_create_connection() and
 * pst_ssl_handshake(): the handshake runs in the event loop, never
 * blocks, has its own timeout, and calls back once.  On success the
 * connection's recv/send are the TLS ones and its event handlers are
 * wrapped so that a read that needs a write (or the reverse) resumes
 * when the other direction is ready.  pst_close_connection() frees the
 * TLS state and sends close_notify, best effort.
 *
 * No OpenSSL type appears here: any core file may include this header.
 */

#ifndef PST_SSL_H
#define PST_SSL_H

typedef struct pst_ssl_ctx_s     pst_ssl_ctx_t;
typedef struct pst_ssl_conn_s    pst_ssl_conn_t;

/* Protocol versions (tls_protocols). */
#define PST_SSL_TLSv1            0x01
#define PST_SSL_TLSv1_1          0x02
#define PST_SSL_TLSv1_2          0x04
#define PST_SSL_TLSv1_3          0x08
#define PST_SSL_DEFAULT_PROTOCOLS  (PST_SSL_TLSv1_2 | PST_SSL_TLSv1_3)

/* Client certificates asked of the peer (server side). */
#define PST_SSL_CLIENT_OFF       0
#define PST_SSL_CLIENT_OPTIONAL  1          /* asked, any accepted */
#define PST_SSL_CLIENT_REQUIRED  2          /* must verify against CA */

/* Verification of the server (client side). */
typedef enum {
    PST_SSL_VERIFY_NONE = 0,     /* encrypt only; nothing checked */
    PST_SSL_VERIFY_OPPORTUNISTIC, /* checked and reported, not enforced */
    PST_SSL_VERIFY_PEER          /* chain and host name must verify */
} pst_ssl_verify_e;

/*
 * SNI: called during a server handshake with the name the client asked
 * for; returns the context to use instead of the listener's default (or
 * NULL to keep it) and may store what it chose in *data (read it back
 * with pst_ssl_sni_data()).
 */
typedef pst_ssl_ctx_t *(*pst_ssl_sni_pt)(pst_connection_t *c,
    const char *name, void **data);

typedef struct {
    pst_array_t                 *certificates;   /* pst_str_t, full paths */
    pst_array_t                 *keys;           /* same count */
    pst_uint_t                   protocols;      /* PST_SSL_TLSv* */
    pst_str_t                    ciphers;        /* TLS 1.2 and older */
    pst_str_t                    ciphersuites;   /* TLS 1.3 */
    pst_str_t                    client_ca;      /* CA file, or empty */
    pst_uint_t                   verify_client;  /* PST_SSL_CLIENT_* */
    pst_int_t                    verify_depth;
    pst_int_t                    session_cache;  /* entries, 0: off */
    pst_shm_t                   *session_zone;   /* shared cache, or NULL */
    pst_int_t                    session_tickets;
    pst_msec_t                   session_timeout;
    pst_uint_t                   id;             /* session id context */
    pst_ssl_sni_pt               sni;
} pst_ssl_server_conf_t;

typedef struct {
    pst_ssl_verify_e             verify;
    pst_str_t                    ca_file;        /* NUL-terminated */
    pst_str_t                    ca_path;
    pst_uint_t                   protocols;
    pst_str_t                    ciphers;
    pst_str_t                    certificate;    /* client certificate */
    pst_str_t                    key;
} pst_ssl_client_conf_t;

/* Handshake completion: rc is PST_OK or PST_ERROR (the reason is in
 * pst_ssl_error()).  Called from the event loop, never from inside
 * pst_ssl_handshake(). */
typedef void (*pst_ssl_handshake_pt)(pst_connection_t *c, int rc);

/* Build a server context; errors go to pst_conf_error().  NULL on
 * failure.  Freed with the configuration pool. */
pst_ssl_ctx_t *pst_ssl_server_ctx(pst_conf_t *cf,
    const pst_ssl_server_conf_t *conf);
/* Build a client context in pool; on failure NULL and a message in err. */
pst_ssl_ctx_t *pst_ssl_client_ctx(pst_pool_t *pool,
    const pst_ssl_client_conf_t *conf, char *err, size_t size);

/* Attach TLS state to a connection (server or client side).  For a
 * client, name is the SNI and, with PST_SSL_VERIFY_*, the name checked
 * against the certificate (NULL: none).  An IP address, bare or as
 * "[addr]" / "[IPv6:addr]", is no SNI and is checked against the
 * iPAddress names; "[host]" is host.  PST_OK / PST_ERROR. */
int pst_ssl_create_connection(pst_connection_t *c, pst_ssl_ctx_t *ctx,
    int client, const char *name);
/* Send the cleartext bytes plain[0..n) first (a STARTTLS reply), then
 * run the handshake. */
void pst_ssl_handshake(pst_connection_t *c, const u_char *plain, size_t n,
    pst_msec_t timeout, pst_ssl_handshake_pt done);
/* Free the TLS state; sends close_notify when the session was clean. */
void pst_ssl_close(pst_connection_t *c);

ssize_t pst_ssl_recv(pst_connection_t *c, u_char *buf, size_t n);
ssize_t pst_ssl_send(pst_connection_t *c, const u_char *buf, size_t n);

/* What the handshake established (valid while the connection is). */
const char *pst_ssl_version(pst_connection_t *c);
const char *pst_ssl_cipher(pst_connection_t *c);
int pst_ssl_cipher_bits(pst_connection_t *c);
const char *pst_ssl_servername(pst_connection_t *c);
void *pst_ssl_sni_data(pst_connection_t *c);
int pst_ssl_session_reused(pst_connection_t *c);
/* Peer certificate: subject (RFC 2253) and SHA-256 fingerprint (64 lower
 * case hex digits), copied into pool.  PST_DECLINED when there is none. */
int pst_ssl_peer_certificate(pst_connection_t *c, pst_pool_t *pool,
    pst_str_t *subject, pst_str_t *fingerprint);
/* 1 when the peer's certificate verified (chain, and the host name for
 * a client connection made with a name). */
int pst_ssl_verified(pst_connection_t *c);
/* The peer certificate's X509_V_* verification result; -1 when the
 * peer sent none. */
long pst_ssl_verify_code(pst_connection_t *c);
/* The RFC 8460 result-type of a verification result ("certificate-
 * expired", ...); "validation-failure" for one without its own. */
const char *pst_ssl_tlsrpt_result(long code);
/* Why the peer's certificate did not verify, or NULL. */
const char *pst_ssl_verify_error(pst_connection_t *c);
/* Why the handshake or the last TLS call failed ("" if unknown). */
const char *pst_ssl_error(pst_connection_t *c);

/* The connection's SSL * (as void *), NULL before it has TLS state. */
void *pst_ssl_object(pst_connection_t *c);

/* DANE (RFC 7672, pst_ssl_dane.c): one TLSA record. */
typedef struct {
    uint8_t                      usage;     /* 2 DANE-TA, 3 DANE-EE */
    uint8_t                      selector;  /* 0 certificate, 1 SPKI */
    uint8_t                      mtype;     /* 0 full, 1 SHA-256, 2 SHA-512 */
    const u_char                *data;
    size_t                       len;
} pst_ssl_tlsa_t;

/* 1 when the record is one a mail client may use (RFC 7672 3.1: DANE-TA
 * or DANE-EE, a known selector and matching type, the digest's length
 * right). */
int pst_ssl_tlsa_usable(const pst_ssl_tlsa_t *rr);
/* After pst_ssl_create_connection() on a client connection, before the
 * handshake: authenticate the peer by the usable records of rr[0..n)
 * instead of the CAs (name: the TLSA base domain, the MX host, which
 * is also the SNI and, for DANE-TA, the name checked).  Returns how many
 * records were taken (0: none usable, the connection is unchanged), or
 * -1 on an OpenSSL failure.  pst_ssl_verified() then says whether a
 * record matched. */
int pst_ssl_set_dane(pst_connection_t *c, const char *name,
    const pst_ssl_tlsa_t *rr, pst_uint_t n);

/* Bytes of a shared session cache zone for about n sessions. */
size_t pst_ssl_session_zone_size(size_t n);

/* tls_protocols argument list -> PST_SSL_TLSv* bits; 0 when invalid. */
pst_uint_t pst_ssl_parse_protocol(const pst_str_t *name);

#endif /* PST_SSL_H */
