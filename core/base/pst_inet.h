/*
 * pst_inet.h -- socket addresses in the configuration: the one address
 * syntax of listen, resolver and metrics_listen, parsed without name
 * lookups (base layer, so that a directive of any layer can use it).
 */

#ifndef PST_INET_H
#define PST_INET_H

typedef union {
    struct sockaddr              sa;
    struct sockaddr_in           sin;
    struct sockaddr_in6          sin6;
} pst_sockaddr_t;

/* "127.0.0.1:2525", "[::1]:2525", "2525" (all IPv4 addresses),
 * "*:2525", "[::]:2525"; a missing port means 53 (resolvers).  PST_OK
 * or PST_ERROR; cf may be NULL. */
int pst_listening_parse(pst_conf_t *cf, const pst_str_t *spec,
    pst_sockaddr_t *sa, socklen_t *len);

#endif /* PST_INET_H */
