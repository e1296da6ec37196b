/*
 * pst_test_tls.c -- libpostern-test's STARTTLS (postern/test.h,
 * pst_test_starttls()): the harness's certificate, and the fake
 * client's side of a real TLS session on the socketpair.
 *
 * The server side is the core's own (pst_smtp_tls.c: the 220, the
 * handshake in the event loop, the facts, everything learnt in clear
 * forgotten); the client side is OpenSSL driven here, one step at a
 * time between turns of the loop, so that the session a plugin sees
 * after STARTTLS is what a server gives it.  The certificate is a
 * self-signed one for mx.example.test made in the scratch directory
 * (the configuration's prefix) when the configuration is written:
 * PST_TEST_TLS_CONF names it.  The client verifies nothing.
 */

#include "pst_test_int.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <time.h>

#define PST_TEST_TLS_MS      5000      /* real time for a handshake */


/* ------------------------------------------------------------------ */
/* The certificate                                                     */

static int
pst_test_tls_write(const char *dir, const char *name, EVP_PKEY *key,
    X509 *crt)
{
    char   path[PATH_MAX];
    FILE  *f;
    int    ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL) {
        return 0;
    }
    ok = crt != NULL ? PEM_write_X509(f, crt)
                     : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
                                            NULL);
    return fclose(f) == 0 && ok;
}


/* harness.crt and harness.key in the scratch directory: a P-256 key,
 * CN and subjectAltName mx.example.test, valid for a day. */
int
pst_test_tls_certificate(pst_test_t *t)
{
    EVP_PKEY         *key;
    X509             *crt;
    X509_NAME        *name;
    X509_EXTENSION   *ext;
    X509V3_CTX        ctx;
    int               ok = 0;

    key = EVP_EC_gen("P-256");
    crt = X509_new();
    if (key != NULL && crt != NULL
        && X509_set_version(crt, 2)
        && ASN1_INTEGER_set(X509_get_serialNumber(crt), (long) time(NULL))
        && X509_gmtime_adj(X509_getm_notBefore(crt), -3600)
        && X509_gmtime_adj(X509_getm_notAfter(crt), 86400)
        && X509_set_pubkey(crt, key)
        && (name = X509_get_subject_name(crt)) != NULL
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
               (const u_char *) "mx.example.test", -1, -1, 0)
        && X509_set_issuer_name(crt, name))
    {
        X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
                                  "DNS:mx.example.test");
        ok = ext != NULL && X509_add_ext(crt, ext, -1)
             && X509_sign(crt, key, EVP_sha256())
             && pst_test_tls_write(t->dir, "harness.key", key, NULL)
             && pst_test_tls_write(t->dir, "harness.crt", key, crt);
        X509_EXTENSION_free(ext);
    }
    X509_free(crt);
    EVP_PKEY_free(key);
    if (!ok) {
        snprintf(t->error, sizeof(t->error), "no certificate: %s",
                 ERR_reason_error_string(ERR_get_error()));
    }
    return ok ? PST_OK : PST_ERROR;
}


/* ------------------------------------------------------------------ */
/* The client's TLS                                                    */

/* The handshake, the loop turned while OpenSSL waits for the server;
 * bounded in real time. */
static int
pst_test_tls_handshake(pst_test_t *t)
{
    pst_msec_t  deadline = pst_test_real_ms() + PST_TEST_TLS_MS;
    int         rc, err;

    while (pst_test_real_ms() < deadline) {
        rc = SSL_connect(t->ssl);
        if (rc == 1) {
            return PST_OK;
        }
        err = SSL_get_error(t->ssl, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            break;
        }
        pst_test_turn();
    }
    return PST_ERROR;
}


const pst_test_reply_t *
pst_test_starttls(pst_test_t *t, const char *sni)
{
    const pst_test_reply_t  *r;
    unsigned long            e;

    r = pst_test_command(t, "STARTTLS");
    if (r->code != 220 || t->ssl != NULL) {
        return r;
    }
    /* as in the server: a TLS alert to a client that left is no signal */
    (void) signal(SIGPIPE, SIG_IGN);
    t->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (t->ssl_ctx != NULL) {
        /* pst_test_send() retries from where a short write stopped */
        SSL_CTX_set_mode(t->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        t->ssl = SSL_new(t->ssl_ctx);
    }
    if (t->ssl == NULL || SSL_set_fd(t->ssl, t->fd) != 1
        || (sni != NULL && SSL_set_tlsext_host_name(t->ssl, sni) != 1)
        || pst_test_tls_handshake(t) != PST_OK)
    {
        e = ERR_get_error();
        fprintf(stderr, "postern-test: the TLS handshake failed%s%s\n",
                e ? ": " : "", e ? ERR_reason_error_string(e) : "");
        pst_test_close(t);
        memset(&t->reply, 0, sizeof(t->reply));
        t->reply.closed = 1;
    }
    return &t->reply;
}


void
pst_test_tls_end(pst_test_t *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ssl_ctx);
    t->ssl = NULL;
    t->ssl_ctx = NULL;
}


/* What recv() and send() say: the count, 0 at the end, -1 with errno
 * EAGAIN while OpenSSL waits for the other side. */
static ssize_t
pst_test_tls_result(pst_test_t *t, int rc)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_NONE:
        return rc;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EPIPE || errno == ECONNRESET) {
            return 0;
        }
        return -1;
    default:
        errno = EIO;
        return -1;
    }
}


ssize_t
pst_test_tls_recv(pst_test_t *t, void *buf, size_t n, int peek)
{
    int  rc;

    ERR_clear_error();
    errno = 0;
    rc = peek ? SSL_peek(t->ssl, buf, (int) n) : SSL_read(t->ssl, buf,
                                                           (int) n);
    return rc > 0 ? rc : pst_test_tls_result(t, rc);
}


ssize_t
pst_test_tls_send(pst_test_t *t, const void *buf, size_t n)
{
    int  rc;

    ERR_clear_error();
    errno = 0;
    rc = SSL_write(t->ssl, buf, (int) pst_min(n, 16384));
    return rc > 0 ? rc : pst_test_tls_result(t, rc);
}
