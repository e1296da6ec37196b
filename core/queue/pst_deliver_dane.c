/*
 * pst_deliver_dane.c -- DANE for SMTP (RFC 7672) in a delivery attempt:
 * under the dane and dane-only policies, the TLSA records of each next
 * hop ("_PORT._tcp.HOST", looked up through the core's validating
 * resolver) decide how the hop is spoken to:
 *
 *   hop address or its MX not DNSSEC-secure   dane: may; dane-only: skip
 *   TLSA secure, usable records (DANE-TA/EE)  TLS required, the server
 *                                             authenticated by them
 *   TLSA secure, none usable                  TLS required, unauthenticated
 *                                             (RFC 7672 2.2)
 *   TLSA secure, none at all; or insecure     dane: may; dane-only: skip
 *   TLSA bogus, SERVFAIL or timeout           skip the hop (2.2: a failed
 *                                             lookup must not downgrade)
 *
 * A message with REQUIRETLS (RFC 8689 4.2.1), whatever the policy: a
 * hop from an MX answer that was not DNSSEC-validated is skipped; a
 * secure hop's usable TLSA records authenticate it (DANE), else its
 * certificate must verify against the CAs and its name (PKIX).
 *
 * A skipped hop is like one that refused the connection: the next is
 * tried, and the recipients are deferred when none is left.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"

#define PST_DANE_TIMEOUT         10000     /* ms */
#define PST_DANE_MAX_RR          16


static void pst_deliver_dane_answer(void *data, const pst_dns_answer_t *a);
static void pst_deliver_dane_records(pst_dlv_t *d,
    const pst_dns_answer_t *a);
static int pst_deliver_dane_apply(pst_dlv_t *d);


int
pst_deliver_dane(pst_dlv_t *d, const pst_nexthop_t *hop)
{
    char       name[300];
    in_port_t  port;

    if (hop->addr.ss_family != AF_INET && hop->addr.ss_family != AF_INET6) {
        /* a local socket (LMTP): no DNS, nobody in the middle */
        d->hop_tls = d->tls_mode >= PST_DLV_TLS_DANE ? PST_DLV_TLS_MAY
                                                    : d->tls_mode;
        return PST_OK;
    }

    if (d->requiretls) {
        if (!hop->secure && pst_deliver_by_mx(d)
            && d->sts.mode != PST_STS_ENFORCE)
        {
            /* RFC 8689 4.2.1: the MX must be DNSSEC-validated, or named
             * by an enforced MTA-STS policy (pst_deliver_sts_hops() kept
             * only those) */
            snprintf(d->why, sizeof(d->why), "%s: REQUIRETLS and the MX"
                     " answer was neither DNSSEC-validated nor named by an"
                     " enforced MTA-STS policy", d->remote);
            return PST_DECLINED;
        }
        if (!hop->secure) {
            d->hop_tls = PST_DLV_TLS_VERIFY;    /* a fixed host: PKIX */
            return PST_OK;
        }
        /* else TLSA: DANE when there are records, PKIX when not */

    } else if (d->tls_mode == PST_DLV_TLS_MTA_STS) {
        /* RFC 8461 4.2: enforce wants the certificate to verify for the
         * MX host's name; testing and no policy: opportunistic */
        d->hop_tls = d->sts.mode == PST_STS_ENFORCE ? PST_DLV_TLS_VERIFY
                                                    : PST_DLV_TLS_MAY;
        return PST_OK;

    } else if (d->tls_mode != PST_DLV_TLS_DANE
               && d->tls_mode != PST_DLV_TLS_DANE_ONLY)
    {
        d->hop_tls = d->tls_mode;
        return PST_OK;

    } else if (!hop->secure) {
        if (d->tls_mode == PST_DLV_TLS_DANE_ONLY) {
            snprintf(d->why, sizeof(d->why), "%s: no DNSSEC-secure MX and"
                     " address for DANE", d->remote);
            return PST_DECLINED;
        }
        d->hop_tls = PST_DLV_TLS_MAY;
        return PST_OK;
    }

    port = ntohs(hop->addr.ss_family == AF_INET6
                 ? ((const struct sockaddr_in6 *) &hop->addr)->sin6_port
                 : ((const struct sockaddr_in *) &hop->addr)->sin_port);
    snprintf(name, sizeof(name), "_%u._tcp.%.*s", (unsigned) port,
             (int) pst_min(hop->name.len, 255), hop->name.data);

    if (d->dane_known && strcmp(name, d->dane_name) == 0) {
        return pst_deliver_dane_apply(d);
    }

    pst_deliver_dane_forget(d);
    snprintf(d->dane_name, sizeof(d->dane_name), "%s", name);
    d->dane_q = pst_dns_resolve(name, PST_DNS_TLSA, PST_DANE_TIMEOUT,
                                pst_deliver_dane_answer, d);
    if (d->dane_q == NULL) {
        snprintf(d->why, sizeof(d->why), "%.250s: cannot look up TLSA %.200s",
                 d->remote, name);
        return PST_DECLINED;
    }
    return PST_AGAIN;
}


void
pst_deliver_dane_forget(pst_dlv_t *d)
{
    pst_uint_t  i;

    if (d->dane_q != NULL) {
        pst_dns_cancel(d->dane_q);
        d->dane_q = NULL;
    }
    for (i = 0; i < d->ntlsa; i++) {
        free((void *) d->tlsa[i].data);
    }
    free(d->tlsa);
    d->tlsa = NULL;
    d->ntlsa = 0;
    d->dane_known = 0;
    d->dane_skip = 0;
}


static void
pst_deliver_dane_answer(void *data, const pst_dns_answer_t *a)
{
    pst_dlv_t  *d = data;

    d->dane_q = NULL;
    d->dane_known = 1;

    if (a->bogus || (a->status != PST_DNS_OK && a->status != PST_DNS_NXDOMAIN))
    {
        /* RFC 7672 2.2: a failed TLSA lookup is not "no TLSA" */
        d->dane_skip = 1;
        pst_deliver_tlsrpt(d, a->bogus ? "dnssec-invalid" : "tlsa-invalid");
        snprintf(d->why, sizeof(d->why), "%.250s: TLSA lookup of %.200s %s",
                 d->remote, d->dane_name, a->bogus ? "is DNSSEC-bogus"
                 : "failed");
    } else if (a->status == PST_DNS_OK && a->secure && a->count > 0) {
        pst_deliver_dane_records(d, a);
    }
    /* insecure, or securely none: no DANE for this host */

    pst_deliver_connect(d);
}


/* The secure answer's records, parsed and kept for every address of the
 * host. */
static void
pst_deliver_dane_records(pst_dlv_t *d, const pst_dns_answer_t *a)
{
    pst_uint_t       i, n = pst_min(a->count, PST_DANE_MAX_RR);
    pst_ssl_tlsa_t  *rr;
    const u_char    *p;
    u_char          *copy;

    d->tlsa = calloc(n, sizeof(pst_ssl_tlsa_t));
    if (d->tlsa == NULL) {
        d->dane_skip = 1;
        snprintf(d->why, sizeof(d->why), "%s: out of memory", d->remote);
        return;
    }
    for (i = 0; i < n; i++) {
        rr = &d->tlsa[d->ntlsa++];
        p = a->rdata[i].data;
        if (a->rdata[i].len < 4
            || (copy = malloc(a->rdata[i].len - 3)) == NULL)
        {
            rr->usage = 255;        /* malformed: a record, not usable */
            continue;
        }
        memcpy(copy, p + 3, a->rdata[i].len - 3);
        rr->usage = p[0];
        rr->selector = p[1];
        rr->mtype = p[2];
        rr->data = copy;
        rr->len = a->rdata[i].len - 3;
    }
}


/* The known answer for this hop's host: its TLS, or skip it. */
static int
pst_deliver_dane_apply(pst_dlv_t *d)
{
    pst_uint_t  i, usable = 0;

    if (d->dane_skip) {
        return PST_DECLINED;
    }
    for (i = 0; i < d->ntlsa; i++) {
        usable += pst_ssl_tlsa_usable(&d->tlsa[i]);
    }
    if (usable > 0) {
        d->hop_tls = PST_DLV_TLS_VERIFY;
        return PST_OK;
    }
    if (d->requiretls) {
        d->hop_tls = PST_DLV_TLS_VERIFY;        /* PKIX (RFC 8689 4.2.1) */
        return PST_OK;
    }
    if (d->ntlsa > 0) {
        d->hop_tls = PST_DLV_TLS_ENCRYPT;       /* RFC 7672 2.2 */
        return PST_OK;
    }
    if (d->tls_mode == PST_DLV_TLS_DANE_ONLY) {
        snprintf(d->why, sizeof(d->why), "%.250s: no secure TLSA records at"
                 " %.200s", d->remote, d->dane_name);
        return PST_DECLINED;
    }
    d->hop_tls = PST_DLV_TLS_MAY;
    return PST_OK;
}

