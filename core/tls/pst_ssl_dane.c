/*
 * pst_ssl_dane.c -- DANE for SMTP (RFC 7672) on OpenSSL's own DANE
 * verification (SSL_dane_enable, SSL_dane_tlsa_add): the TLSA records a
 * DNSSEC-validated lookup gave authenticate the server instead of the
 * CAs.  Only DANE-TA(2) and DANE-EE(3) are for mail (RFC 7672 3.1.3);
 * with DANE-EE the name and the dates are not checked (3.1.1).
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_ssl.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>


int
pst_ssl_tlsa_usable(const pst_ssl_tlsa_t *rr)
{
    if ((rr->usage != 2 && rr->usage != 3) || rr->selector > 1) {
        return 0;
    }
    switch (rr->mtype) {
    case 0:
        return rr->len > 0;
    case 1:
        return rr->len == 32;
    case 2:
        return rr->len == 64;
    default:
        return 0;
    }
}


int
pst_ssl_set_dane(pst_connection_t *c, const char *name,
    const pst_ssl_tlsa_t *rr, pst_uint_t n)
{
    SSL         *ssl = pst_ssl_object(c);
    pst_uint_t   i;
    int          added = 0;

    if (ssl == NULL || name == NULL || name[0] == '\0') {
        return -1;
    }

    for (i = 0; i < n && !pst_ssl_tlsa_usable(&rr[i]); i++) {
        /* void */
    }
    if (i == n) {
        return 0;
    }

    if (SSL_CTX_dane_enable(SSL_get_SSL_CTX(ssl)) <= 0
        || SSL_dane_enable(ssl, name) <= 0)
    {
        ERR_clear_error();
        return -1;
    }
    (void) SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);

    for (i = 0; i < n; i++) {
        if (!pst_ssl_tlsa_usable(&rr[i])) {
            continue;
        }
        if (SSL_dane_tlsa_add(ssl, rr[i].usage, rr[i].selector, rr[i].mtype,
                              rr[i].data, rr[i].len) > 0)
        {
            added++;
        }
    }
    ERR_clear_error();
    return added;
}


const char *
pst_ssl_tlsrpt_result(long code)
{
    switch (code) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return "certificate-host-mismatch";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate-expired";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return "certificate-not-trusted";
    default:
        return "validation-failure";
    }
}
