/*
 * pst_route.c -- the core side of routing: finding the router module,
 * and loop detection (is this next hop ourselves?).
 *
 * A next hop is us when a connection to its address and port would land
 * on one of our listeners: a listener bound to exactly that address and
 * port, or a wildcard listener (0.0.0.0, [::]) on that port when the
 * address is local (an interface's, anything in 127.0.0.0/8, ::1, the
 * unspecified address).  The comparison is on address and port: the
 * tests run several servers on loopback, each on its own port or its own
 * 127.0.0.x, and none of them is "us" for the others.
 */

#include "pst_core.h"
#include "pst_smtp.h"
#include "pst_route.h"

#include <ifaddrs.h>

#define PST_ROUTE_MAX_LOCAL      64
#define PST_ROUTE_LOCAL_TTL      5000      /* ms an interface list serves */


static int pst_route_unmap(const struct sockaddr *sa, pst_sockaddr_t *out);
static int pst_route_is_loopback(const pst_sockaddr_t *a);
static int pst_route_is_any(const pst_sockaddr_t *a);
static int pst_route_same_addr(const pst_sockaddr_t *a,
    const pst_sockaddr_t *b);
static in_port_t pst_route_port(const pst_sockaddr_t *a);
static pst_uint_t pst_route_local_addrs(pst_sockaddr_t *out, pst_uint_t n);


const pst_router_t *
pst_route_router(pst_cycle_t *cycle, void **main_conf)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.router != NULL && me[i].desc.router->resolve != NULL)
        {
            *main_conf = cycle->main_conf[me[i].index];
            return me[i].desc.router;
        }
    }

    *main_conf = NULL;
    return NULL;
}


/* Copy sa into out with an IPv4-mapped IPv6 address made IPv4.
 * PST_ERROR for another family. */
static int
pst_route_unmap(const struct sockaddr *sa, pst_sockaddr_t *out)
{
    const struct sockaddr_in6  *sin6;

    memset(out, 0, sizeof(pst_sockaddr_t));

    if (sa->sa_family == AF_INET) {
        memcpy(&out->sin, sa, sizeof(struct sockaddr_in));
        return PST_OK;
    }

    if (sa->sa_family != AF_INET6) {
        return PST_ERROR;
    }

    sin6 = (const struct sockaddr_in6 *) sa;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
        out->sin.sin_family = AF_INET;
        out->sin.sin_port = sin6->sin6_port;
        memcpy(&out->sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
        return PST_OK;
    }

    memcpy(&out->sin6, sin6, sizeof(struct sockaddr_in6));
    return PST_OK;
}


static int
pst_route_is_loopback(const pst_sockaddr_t *a)
{
    if (a->sa.sa_family == AF_INET) {
        return (ntohl(a->sin.sin_addr.s_addr) >> 24) == 127;
    }
    return IN6_IS_ADDR_LOOPBACK(&a->sin6.sin6_addr);
}


static int
pst_route_is_any(const pst_sockaddr_t *a)
{
    if (a->sa.sa_family == AF_INET) {
        return a->sin.sin_addr.s_addr == htonl(INADDR_ANY);
    }
    return IN6_IS_ADDR_UNSPECIFIED(&a->sin6.sin6_addr);
}


static int
pst_route_same_addr(const pst_sockaddr_t *a, const pst_sockaddr_t *b)
{
    if (a->sa.sa_family != b->sa.sa_family) {
        return 0;
    }
    if (a->sa.sa_family == AF_INET) {
        return a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr;
    }
    return memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr, 16) == 0;
}


static in_port_t
pst_route_port(const pst_sockaddr_t *a)
{
    return a->sa.sa_family == AF_INET ? a->sin.sin_port : a->sin6.sin6_port;
}


int
pst_route_own_addr_in(const struct sockaddr *sa, const pst_listening_t *ls,
    pst_uint_t nls, const pst_sockaddr_t *local, pst_uint_t nlocal)
{
    pst_sockaddr_t  d, l;
    pst_uint_t      i, j;

    if (pst_route_unmap(sa, &d) != PST_OK) {
        return 0;
    }

    for (i = 0; i < nls; i++) {
        if (pst_route_unmap(&ls[i].sockaddr.sa, &l) != PST_OK
            || l.sa.sa_family != d.sa.sa_family
            || pst_route_port(&l) != pst_route_port(&d))
        {
            continue;
        }

        if (!pst_route_is_any(&l)) {
            if (pst_route_same_addr(&l, &d)) {
                return 1;
            }
            continue;
        }

        /* a wildcard listener answers on every local address */
        if (pst_route_is_any(&d) || pst_route_is_loopback(&d)) {
            return 1;
        }
        for (j = 0; j < nlocal; j++) {
            if (pst_route_same_addr(&local[j], &d)) {
                return 1;
            }
        }
    }

    return 0;
}


/* The addresses of the local interfaces (at most n). */
static pst_uint_t
pst_route_local_addrs(pst_sockaddr_t *out, pst_uint_t n)
{
    struct ifaddrs  *ifa, *i;
    pst_uint_t       k = 0;

    if (getifaddrs(&ifa) == -1) {
        pst_log_error(PST_LOG_ERR, errno, "getifaddrs() failed");
        return 0;
    }

    for (i = ifa; i != NULL && k < n; i = i->ifa_next) {
        if (i->ifa_addr != NULL
            && pst_route_unmap(i->ifa_addr, &out[k]) == PST_OK)
        {
            k++;
        }
    }

    freeifaddrs(ifa);
    return k;
}


int
pst_route_own_addr(const struct sockaddr *sa)
{
    static pst_sockaddr_t  local[PST_ROUTE_MAX_LOCAL];
    static pst_uint_t      nlocal;
    static pst_msec_t      when;
    static int             known;
    pst_listening_t       *ls;
    pst_sockaddr_t         l;
    pst_uint_t             i;

    if (pst_cycle == NULL) {
        return 0;
    }

    ls = pst_cycle->listening.elts;

    /* the interfaces only matter to a wildcard listener; a route asks
     * for each address of each exchanger, so the list is kept a while */
    for (i = 0; i < pst_cycle->listening.nelts; i++) {
        if (pst_route_unmap(&ls[i].sockaddr.sa, &l) == PST_OK
            && pst_route_is_any(&l))
        {
            if (!known || pst_current_msec() - when > PST_ROUTE_LOCAL_TTL) {
                nlocal = pst_route_local_addrs(local, PST_ROUTE_MAX_LOCAL);
                when = pst_current_msec();
                known = 1;
            }
            break;
        }
    }

    return pst_route_own_addr_in(sa, ls, pst_cycle->listening.nelts, local,
                                 nlocal);
}


int
pst_route_own_name(const u_char *name, size_t len)
{
    pst_server_t  **srv;
    pst_str_t      *h;
    pst_uint_t      i;

    if (pst_cycle == NULL) {
        return 0;
    }

    if (len > 0 && name[len - 1] == '.') {
        len--;
    }

    srv = pst_cycle->servers.elts;
    for (i = 0; i < pst_cycle->servers.nelts; i++) {
        h = &srv[i]->conf->hostname;
        if (len > 0 && h->len == len
            && pst_strncasecmp(h->data, name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
