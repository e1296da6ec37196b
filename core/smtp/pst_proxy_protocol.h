/*
 * pst_proxy_protocol.h -- the PROXY protocol header (HAProxy's
 * proxy-protocol.txt, versions 1 and 2), as a pure parser.
 *
 * A load balancer in front of the server writes one header at the start
 * of the connection naming the client it accepted.  The parser looks at
 * the bytes received so far (it keeps no state: call it again with more)
 * and says whether they hold a whole, valid header, may still become
 * one, or never will.  It reads nothing past the header, so the bytes
 * after it (SMTP, or a TLS ClientHello) stay where they are.
 */

#ifndef PST_PROXY_PROTOCOL_H
#define PST_PROXY_PROTOCOL_H

#define PST_PROXY_V1_MAX         107     /* whole line with CRLF (2.1) */
#define PST_PROXY_V2_HDR         16      /* signature, ver/cmd, fam, len */
/* the largest header accepted: v2 with room for the usual TLVs
 * (ALPN, authority, SSL facts, unique ID) -- never the 64 KiB the length
 * field allows */
#define PST_PROXY_MAX            1024

typedef struct {
    int                          version;   /* 1 or 2 */
    /* v1 UNKNOWN, v2 LOCAL, v2 AF_UNSPEC: no addresses, the
     * connection's own endpoints stay */
    unsigned                     local:1;
    pst_sockaddr_t               src;       /* the client */
    pst_sockaddr_t               dst;       /* the address it connected to */
    socklen_t                    socklen;
    size_t                       len;       /* bytes of the header */
} pst_proxy_header_t;

/*
 * Parse the n bytes at p.  PST_OK: a header of h->len bytes (the bytes
 * after it are not looked at); PST_AGAIN: a valid beginning, more bytes
 * are needed; PST_ERROR: not a valid header, *why says what is wrong
 * (a static string).  Never reads past p + n.
 */
int pst_proxy_parse(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why);

#endif /* PST_PROXY_PROTOCOL_H */
