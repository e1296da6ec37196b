/*
 * pst_inet.c -- socket addresses in the configuration (see pst_inet.h).
 */

#include "pst_core.h"


/*
 * "127.0.0.1:2525", "[::1]:2525", "2525" (all IPv4 addresses),
 * "*:2525", "[::]:2525", "localhost:25" is refused (no name lookups in
 * the configuration).  A missing port in a resolver address means 53.
 */
int
pst_listening_parse(pst_conf_t *cf, const pst_str_t *spec,
    pst_sockaddr_t *sa, socklen_t *len)
{
    char      host[INET6_ADDRSTRLEN + 1];
    u_char   *p, *end, *colon, *port;
    size_t    hlen;
    int64_t   n;

    (void) cf;

    memset(sa, 0, sizeof(pst_sockaddr_t));
    p = spec->data;
    end = p + spec->len;

    if (p < end && *p == '[') {
        colon = memchr(p, ']', spec->len);
        if (colon == NULL) {
            return PST_ERROR;
        }
        hlen = (size_t) (colon - p - 1);
        if (hlen == 0 || hlen >= sizeof(host)) {
            return PST_ERROR;
        }
        memcpy(host, p + 1, hlen);
        host[hlen] = '\0';
        port = colon + 1;
        if (port < end) {
            if (*port != ':' || port + 1 == end) {
                return PST_ERROR;         /* "[::1]x", "[::1]:" */
            }
            port++;
        }
        sa->sin6.sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, host, &sa->sin6.sin6_addr) != 1) {
            return PST_ERROR;
        }
        *len = sizeof(struct sockaddr_in6);

    } else {
        colon = NULL;
        for (p = spec->data; p < end; p++) {
            if (*p == ':') {
                colon = p;
            }
        }

        sa->sin.sin_family = AF_INET;
        *len = sizeof(struct sockaddr_in);

        if (colon == NULL) {
            /* a bare port, or a bare address */
            n = pst_atoi(spec->data, spec->len, 65535);
            if (n >= 0) {
                sa->sin.sin_addr.s_addr = htonl(INADDR_ANY);
                sa->sin.sin_port = htons((uint16_t) n);
                return n > 0 ? PST_OK : PST_ERROR;
            }
            hlen = spec->len;
            port = end;
        } else {
            hlen = (size_t) (colon - spec->data);
            port = colon + 1;
            if (port == end) {
                return PST_ERROR;         /* "127.0.0.1:" */
            }
        }

        if (hlen >= sizeof(host)) {
            return PST_ERROR;
        }
        memcpy(host, spec->data, hlen);
        host[hlen] = '\0';

        if (strcmp(host, "*") == 0) {
            sa->sin.sin_addr.s_addr = htonl(INADDR_ANY);
        } else if (inet_pton(AF_INET, host, &sa->sin.sin_addr) != 1) {
            return PST_ERROR;
        }
    }

    if (port == end) {
        n = 53;        /* only resolvers omit the port */
    } else {
        n = pst_atoi(port, (size_t) (end - port), 65535);
        if (n <= 0) {
            return PST_ERROR;
        }
    }

    if (sa->sa.sa_family == AF_INET) {
        sa->sin.sin_port = htons((uint16_t) n);
    } else {
        sa->sin6.sin6_port = htons((uint16_t) n);
    }

    return PST_OK;
}
