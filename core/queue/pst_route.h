/*
 * pst_route.h -- the core side of routing (ABI 1.2, postern_module.h):
 * which module routes, and whether a next hop is this server.
 */

#ifndef PST_ROUTE_H
#define PST_ROUTE_H

/* The router of the first loaded module that has one, and that
 * module's main configuration in *main_conf; NULL when none does. */
const pst_router_t *pst_route_router(pst_cycle_t *cycle, void **main_conf);

/* pst_route_own_addr() against explicit data (the unit tests): the
 * listeners ls[0..nls) and the local addresses local[0..nlocal) that a
 * wildcard listener answers on. */
int pst_route_own_addr_in(const struct sockaddr *sa,
    const pst_listening_t *ls, pst_uint_t nls,
    const pst_sockaddr_t *local, pst_uint_t nlocal);

#endif /* PST_ROUTE_H */
