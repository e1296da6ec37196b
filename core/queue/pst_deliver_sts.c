/*
 * pst_deliver_sts.c -- MTA-STS (RFC 8461) in a delivery attempt: under
 * the mta-sts policy (relay_tls or tls_policy), the destination
 * domain's policy is looked up (pst_mta_sts.c) while its MX are; once
 * both are known an enforced policy keeps only the hops whose MX host
 * matches one of its mx patterns, and each of those must present a
 * certificate that verifies for that host (pst_deliver_dane.c sets the
 * hop's TLS).  A testing policy changes nothing but the log; no policy
 * means opportunistic TLS.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"
#include "pst_tlsrpt.h"

#include <arpa/inet.h>


static void pst_deliver_sts_done(void *data, const pst_sts_policy_t *p);
static int pst_deliver_sts_copy(pst_dlv_t *d, const pst_sts_policy_t *p);
static size_t pst_deliver_tlsrpt_policy(pst_dlv_t *d, char *buf,
    size_t size, char *mx, size_t mxsize);


int
pst_deliver_sts_start(pst_dlv_t *d)
{
    const pst_sts_policy_t  *p = NULL;
    int                      rc;

    /* a REQUIRETLS message asks too: an enforced policy may stand for
     * DNSSEC in validating its MX (RFC 8689 4.2.1) */
    if ((pst_deliver_tls_mode(d) != PST_DLV_TLS_MTA_STS && !d->requiretls)
        || !pst_deliver_by_mx(d))
    {
        return PST_OK;
    }
    rc = pst_sts_get(&d->dest, &p, pst_deliver_sts_done, d, &d->sts_wait);
    if (rc == PST_OK) {
        return pst_deliver_sts_copy(d, p);
    }
    return rc;
}


void
pst_deliver_sts_forget(pst_dlv_t *d)
{
    if (d->sts_wait != NULL) {
        pst_sts_cancel(d->sts_wait);
        d->sts_wait = NULL;
    }
    pst_sts_policy_free(&d->sts);
}


static void
pst_deliver_sts_done(void *data, const pst_sts_policy_t *p)
{
    pst_dlv_t  *d = data;

    d->sts_wait = NULL;
    if (pst_deliver_sts_copy(d, p) != PST_OK) {
        /* no memory for the patterns: no hop is allowed (deferred),
         * never a downgrade to no policy */
        d->sts.mode = PST_STS_ENFORCE;
    }
    if (d->routed) {
        d->routed = 0;
        pst_deliver_go(d);
    }
}


/* The policy, the attempt's own copy (the cache's may change). */
static int
pst_deliver_sts_copy(pst_dlv_t *d, const pst_sts_policy_t *p)
{
    size_t      len = 0;
    pst_uint_t  i;
    char       *t;

    memset(&d->sts, 0, sizeof(d->sts));
    if (p == NULL) {
        return PST_OK;                      /* mode NONE */
    }
    for (i = 0; i < p->nmx; i++) {
        len += strlen(p->mx[i]) + 1;
    }
    d->sts.text = malloc(len + 1);
    if (d->sts.text == NULL) {
        return PST_ERROR;
    }
    d->sts.mode = p->mode;
    d->sts.max_age = p->max_age;
    d->sts.fetched = p->fetched;
    memcpy(d->sts.id, p->id, sizeof(d->sts.id));
    for (i = 0, t = d->sts.text; i < p->nmx; i++) {
        d->sts.mx[i] = t;
        t = stpcpy(t, p->mx[i]) + 1;
    }
    d->sts.nmx = p->nmx;
    return PST_OK;
}


int
pst_deliver_sts_hops(pst_dlv_t *d)
{
    pst_uint_t  i, k = 0;
    char        host[256];

    if (d->sts.mode == PST_STS_NONE || d->nhops == 0) {
        return PST_OK;
    }
    for (i = 0; i < d->nhops; i++) {
        snprintf(host, sizeof(host), "%.*s", (int) d->hops[i].name.len,
                 d->hops[i].name.data);
        if (pst_sts_mx_match(&d->sts, host)) {
            d->hops[k++] = d->hops[i];
            continue;
        }
        d->hop = i;
        pst_deliver_tlsrpt(d, "validation-failure");
        pst_log_error(PST_LOG_INFO, 0, "deliver %.*s: MX %s is not in the"
                      " MTA-STS policy %s (%s)", (int) d->dest.len,
                      d->dest.data, host, d->sts.id,
                      d->sts.mode == PST_STS_ENFORCE ? "enforce: not used"
                                                     : "testing: used");
        if (d->sts.mode == PST_STS_TESTING) {
            d->hops[k++] = d->hops[i];
        } else {
            free(d->hops[i].name.data);
        }
    }
    d->nhops = k;
    d->hop = 0;
    if (k > 0) {
        return PST_OK;
    }
    /* RFC 8461 5: no MX matches an enforced policy: not delivered */
    pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.7.5", "no MX host of %.*s"
                    " matches its MTA-STS policy", (int) d->dest.len,
                    d->dest.data);
    return PST_DECLINED;
}


/*
 * One TLS session's outcome for the TLS report (RFC 8460): a destination
 * under the mta-sts, dane or dane-only policy, the hop d->hop; result
 * NULL for a success, else its result-type.
 */
void
pst_deliver_tlsrpt(pst_dlv_t *d, const char *result)
{
    const pst_nexthop_t  *hop;
    pst_tlsrpt_type_e     type;
    char                  policy[4096], mx[2048], host[256], ip[64];
    const void           *in;

    if ((d->tls_mode != PST_DLV_TLS_MTA_STS && d->tls_mode != PST_DLV_TLS_DANE
         && d->tls_mode != PST_DLV_TLS_DANE_ONLY)
        || d->hop >= d->nhops || !pst_deliver_by_mx(d))
    {
        return;
    }
    hop = &d->hops[d->hop];
    snprintf(host, sizeof(host), "%.*s", (int) hop->name.len,
             hop->name.data);
    ip[0] = '\0';
    if (hop->addr.ss_family == AF_INET || hop->addr.ss_family == AF_INET6) {
        in = hop->addr.ss_family == AF_INET6
             ? (const void *) &((const struct sockaddr_in6 *)
                                &hop->addr)->sin6_addr
             : (const void *) &((const struct sockaddr_in *)
                                &hop->addr)->sin_addr;
        inet_ntop(hop->addr.ss_family, in, ip, sizeof(ip));
    }
    type = d->sts.mode != PST_STS_NONE ? PST_TLSRPT_STS
           : d->ntlsa > 0 ? PST_TLSRPT_TLSA : PST_TLSRPT_NO_POLICY;
    (void) pst_deliver_tlsrpt_policy(d, policy, sizeof(policy), mx,
                                     sizeof(mx));
    pst_tlsrpt_record(&d->dest, type, policy, mx, result, host, ip);
}


/* The policy strings (RFC 8460 4.4): an MTA-STS policy's lines, or the
 * TLSA records in presentation form; an MTA-STS policy's mx patterns. */
static size_t
pst_deliver_tlsrpt_policy(pst_dlv_t *d, char *buf, size_t size, char *mx,
    size_t mxsize)
{
    static const char  *modes[] = { "none", "testing", "enforce" };
    size_t              n = 0, m = 0, k;
    pst_uint_t          i;

    buf[0] = mx[0] = '\0';
    if (d->sts.mode != PST_STS_NONE) {
        n = (size_t) snprintf(buf, size, "version: STSv1\nmode: %s\n",
                              modes[d->sts.mode]);
        for (i = 0; i < d->sts.nmx && n < size - 300; i++) {
            n += (size_t) snprintf(buf + n, size - n, "mx: %s\n",
                                   d->sts.mx[i]);
            m += (size_t) snprintf(mx + m, mxsize - m, "%s\n",
                                   m < mxsize - 260 ? d->sts.mx[i] : "");
        }
        n += (size_t) snprintf(buf + n, size - n, "max_age: %ld\n",
                               d->sts.max_age);
        return n;
    }
    for (i = 0; i < d->ntlsa && n < size - 200; i++) {
        n += (size_t) snprintf(buf + n, size - n, "%u %u %u ",
                               d->tlsa[i].usage, d->tlsa[i].selector,
                               d->tlsa[i].mtype);
        for (k = 0; k < d->tlsa[i].len && n < size - 4; k++) {
            n += (size_t) snprintf(buf + n, size - n, "%02x",
                                   d->tlsa[i].data[k]);
        }
        buf[n++] = '\n';
        buf[n] = '\0';
    }
    return n;
}
