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


static void pst_deliver_sts_done(void *data, const pst_sts_policy_t *p);
static int pst_deliver_sts_copy(pst_dlv_t *d, const pst_sts_policy_t *p);


int
pst_deliver_sts_start(pst_dlv_t *d)
{
    const pst_sts_policy_t  *p = NULL;
    int                      rc;

    if (pst_deliver_tls_mode(d) != PST_DLV_TLS_MTA_STS
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
    if (k > 0) {
        return PST_OK;
    }
    /* RFC 8461 5: no MX matches an enforced policy: not delivered */
    pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.7.5", "no MX host of %.*s"
                    " matches its MTA-STS policy", (int) d->dest.len,
                    d->dest.data);
    return PST_DECLINED;
}
