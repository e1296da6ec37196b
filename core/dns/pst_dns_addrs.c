/*
 * pst_dns_addrs.c -- the addresses of a host (pst_dns_resolve_addrs(),
 * postern_module.h): AAAA and A looked up at once, or an address
 * literal without DNS.  Used by routers whose next hops are host names
 * (relay_smarthost, deliver_lmtp).
 */

#include "pst_core.h"
#include "pst_dns.h"

#include <arpa/inet.h>

#define PST_DNS_ADDRS_MAX        32         /* per family */
#define PST_DNS_ADDRS_Q_AAAA     0
#define PST_DNS_ADDRS_Q_A        1

struct pst_dns_addrs_s {
    pst_dns_addrs_pt             handler;
    void                        *data;
    pst_dns_query_t             *q[2];      /* running lookups */
    pst_timer_t                 *timer;     /* a literal's answer */
    pst_dns_status_e             status[2];
    int                          asked[2];
    int                          secure;
    pst_uint_t                   n[2];
    struct sockaddr_storage      addrs[2][PST_DNS_ADDRS_MAX];
};


static void pst_dns_addrs_answer(void *data, const pst_dns_answer_t *a);
static void pst_dns_addrs_report(pst_dns_addrs_t *q);
static void pst_dns_addrs_literal_done(void *data);
static int pst_dns_addrs_literal(pst_dns_addrs_t *q, const char *name,
    int family);


pst_dns_addrs_t *
pst_dns_resolve_addrs(const char *name, int family, pst_msec_t timeout,
    pst_dns_addrs_pt handler, void *data)
{
    pst_dns_addrs_t  *q;
    int               i, types[2] = { PST_DNS_AAAA, PST_DNS_A };

    q = calloc(1, sizeof(pst_dns_addrs_t));
    if (q == NULL) {
        return NULL;
    }
    q->handler = handler;
    q->data = data;
    q->secure = 1;

    if (pst_dns_addrs_literal(q, name, family) == PST_OK) {
        q->timer = pst_timer_add(0, pst_dns_addrs_literal_done, q);
        if (q->timer == NULL) {
            free(q);
            return NULL;
        }
        return q;
    }

    q->asked[PST_DNS_ADDRS_Q_AAAA] = (family != AF_INET);
    q->asked[PST_DNS_ADDRS_Q_A] = (family != AF_INET6);

    for (i = 0; i < 2; i++) {
        if (!q->asked[i]) {
            continue;
        }
        q->q[i] = pst_dns_resolve(name, types[i], timeout,
                                  pst_dns_addrs_answer, q);
        if (q->q[i] == NULL) {
            pst_dns_addrs_cancel(q);
            return NULL;
        }
    }

    return q;
}


void
pst_dns_addrs_cancel(pst_dns_addrs_t *q)
{
    int  i;

    for (i = 0; i < 2; i++) {
        if (q->q[i] != NULL) {
            pst_dns_cancel(q->q[i]);
        }
    }
    if (q->timer != NULL) {
        pst_timer_cancel(q->timer);
    }
    free(q);
}


/* "192.0.2.1", "2001:db8::1", "[192.0.2.1]", "[ipv6:2001:db8::1]":
 * the one address, PST_OK; PST_DECLINED for a name. */
static int
pst_dns_addrs_literal(pst_dns_addrs_t *q, const char *name, int family)
{
    char                  text[64];
    size_t                n = strlen(name);
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        name++;
        n -= 2;
        if (n > 5 && strncasecmp(name, "ipv6:", 5) == 0) {
            name += 5;
            n -= 5;
        }
    }
    if (n == 0 || n >= sizeof(text)) {
        return PST_DECLINED;
    }
    memcpy(text, name, n);
    text[n] = '\0';

    sin = (struct sockaddr_in *) &q->addrs[PST_DNS_ADDRS_Q_A][0];
    sin6 = (struct sockaddr_in6 *) &q->addrs[PST_DNS_ADDRS_Q_AAAA][0];

    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        q->n[PST_DNS_ADDRS_Q_A] = (family != AF_INET6);
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        q->n[PST_DNS_ADDRS_Q_AAAA] = (family != AF_INET);
    } else {
        return PST_DECLINED;
    }
    q->secure = 0;
    return PST_OK;
}


static void
pst_dns_addrs_literal_done(void *data)
{
    pst_dns_addrs_t  *q = data;

    q->timer = NULL;
    pst_dns_addrs_report(q);
}


static void
pst_dns_addrs_answer(void *data, const pst_dns_answer_t *a)
{
    pst_dns_addrs_t      *q = data;
    int                   w = (a->qtype == PST_DNS_A) ? PST_DNS_ADDRS_Q_A
                                                      : PST_DNS_ADDRS_Q_AAAA;
    pst_uint_t            i;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    q->q[w] = NULL;
    q->status[w] = a->status;
    if (a->status != PST_DNS_OK || !a->secure) {
        q->secure = 0;
    }

    for (i = 0; a->status == PST_DNS_OK && i < a->count
         && q->n[w] < PST_DNS_ADDRS_MAX; i++)
    {
        if (w == PST_DNS_ADDRS_Q_A && a->rdata[i].len == 4) {
            sin = (struct sockaddr_in *) &q->addrs[w][q->n[w]++];
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, a->rdata[i].data, 4);
        } else if (w == PST_DNS_ADDRS_Q_AAAA && a->rdata[i].len == 16) {
            sin6 = (struct sockaddr_in6 *) &q->addrs[w][q->n[w]++];
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, a->rdata[i].data, 16);
        }
    }

    if (q->q[PST_DNS_ADDRS_Q_A] == NULL && q->q[PST_DNS_ADDRS_Q_AAAA] == NULL)
    {
        pst_dns_addrs_report(q);
    }
}


/* Both answers are in (or the literal): one call, then q is freed. */
static void
pst_dns_addrs_report(pst_dns_addrs_t *q)
{
    struct sockaddr_storage  *all;
    pst_dns_status_e          st = PST_DNS_OK;
    pst_uint_t                n6 = q->n[PST_DNS_ADDRS_Q_AAAA];
    pst_uint_t                n4 = q->n[PST_DNS_ADDRS_Q_A];
    int                       i;

    /* the AAAA slots are followed by the A slots: one array */
    all = q->addrs[PST_DNS_ADDRS_Q_AAAA];
    memmove(&all[n6], q->addrs[PST_DNS_ADDRS_Q_A],
            n4 * sizeof(struct sockaddr_storage));

    if (n6 + n4 == 0) {
        for (i = 0; i < 2; i++) {
            if (!q->asked[i] || q->status[i] == PST_DNS_OK) {
                continue;
            }
            /* a temporary failure wins over NXDOMAIN, which wins over
             * NODATA: never fail what a retry could deliver */
            if (q->status[i] != PST_DNS_NXDOMAIN) {
                st = q->status[i];
            } else if (st == PST_DNS_OK) {
                st = PST_DNS_NXDOMAIN;
            }
        }
    }

    q->handler(q->data, st, st == PST_DNS_OK && q->secure, all, n6 + n4);
    free(q);
}
