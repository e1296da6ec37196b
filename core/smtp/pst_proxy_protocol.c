/*
 * pst_proxy_protocol.c -- the PROXY protocol header, versions 1 and 2
 * (see pst_proxy_protocol.h).
 *
 * Version 1 is one text line, at most 107 bytes with its CRLF:
 *     "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"
 *     "PROXY TCP6 2001:db8::1 2001:db8::2 56324 25\r\n"
 *     "PROXY UNKNOWN[ anything]\r\n"
 * Exactly one space between fields, addresses as inet_pton() reads them
 * for the named family, ports 0-65535 in decimal without leading zeros,
 * CR immediately before LF.
 *
 * Version 2 is binary: a 12-byte signature, a byte version (2) and
 * command (LOCAL 0, PROXY 1), a byte address family and transport, a
 * 16-bit length of what follows: the addresses (12 bytes for TCP over
 * IPv4, 36 for IPv6) and then TLVs (type, 16-bit length, value), which
 * are walked to check that they fill the rest exactly and are otherwise
 * ignored.
 */

#include "pst_core.h"
#include "pst_proxy_protocol.h"

static const u_char  pst_proxy_v2_sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static int pst_proxy_v1(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why);
static int pst_proxy_v1_fields(const u_char *p, const u_char *end,
    pst_proxy_header_t *h, const char **why);
static const u_char *pst_proxy_v1_field(const u_char *p, const u_char *end,
    char *buf, size_t size);
static int pst_proxy_v1_port(const char *text, uint16_t *port);
static int pst_proxy_v2(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why);
static int pst_proxy_v2_addrs(const u_char *p, size_t len,
    pst_proxy_header_t *h, const char **why);


int
pst_proxy_parse(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why)
{
    size_t  k;

    memset(h, 0, sizeof(pst_proxy_header_t));
    *why = NULL;

    if (n == 0) {
        return PST_AGAIN;
    }

    if (p[0] == 'P') {
        return pst_proxy_v1(p, n, h, why);
    }

    if (p[0] == pst_proxy_v2_sig[0]) {
        k = pst_min(n, sizeof(pst_proxy_v2_sig));
        if (memcmp(p, pst_proxy_v2_sig, k) != 0) {
            *why = "bad version 2 signature";
            return PST_ERROR;
        }
        if (n < PST_PROXY_V2_HDR) {
            return PST_AGAIN;
        }
        return pst_proxy_v2(p, n, h, why);
    }

    *why = "no PROXY header";
    return PST_ERROR;
}


/* ------------------------------------------------------------------ */
/* Version 1                                                           */

static int
pst_proxy_v1(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why)
{
    static const char  sig[] = "PROXY ";
    size_t             i, k;

    k = pst_min(n, sizeof(sig) - 1);
    if (memcmp(p, sig, k) != 0) {
        *why = "no PROXY header";
        return PST_ERROR;
    }

    for (i = 0; i < n && i < PST_PROXY_V1_MAX; i++) {
        if (p[i] == '\n') {
            if (i == 0 || p[i - 1] != '\r') {
                *why = "version 1 line without CRLF";
                return PST_ERROR;
            }
            break;
        }
        if (i > 0 && p[i - 1] == '\r') {
            *why = "CR inside the version 1 line";
            return PST_ERROR;
        }
    }

    if (i == PST_PROXY_V1_MAX) {
        *why = "version 1 line longer than 107 bytes";
        return PST_ERROR;
    }

    if (i == n) {
        return PST_AGAIN;
    }

    /* p[i] is the LF, p[i - 1] the CR */
    h->version = 1;
    h->len = i + 1;

    return pst_proxy_v1_fields(p + sizeof(sig) - 1, p + i - 1, h, why);
}


/* The fields between "PROXY " and the CR. */
static int
pst_proxy_v1_fields(const u_char *p, const u_char *end,
    pst_proxy_header_t *h, const char **why)
{
    char       proto[8], src[48], dst[48], sport[8], dport[8];
    uint16_t   sp, dp;
    int        family;
    void      *sa, *da;

    p = pst_proxy_v1_field(p, end, proto, sizeof(proto));

    if (p != NULL && strcmp(proto, "UNKNOWN") == 0
        && (p == end || *p == ' '))
    {
        /* 2.1: the rest of an UNKNOWN line is ignored */
        h->local = 1;
        return PST_OK;
    }

    if (p == NULL || p == end || *p != ' ') {
        *why = "bad version 1 protocol";
        return PST_ERROR;
    }

    if (strcmp(proto, "TCP4") == 0) {
        family = AF_INET;
        sa = &h->src.sin.sin_addr;
        da = &h->dst.sin.sin_addr;
    } else if (strcmp(proto, "TCP6") == 0) {
        family = AF_INET6;
        sa = &h->src.sin6.sin6_addr;
        da = &h->dst.sin6.sin6_addr;
    } else {
        *why = "bad version 1 protocol";
        return PST_ERROR;
    }

    p = pst_proxy_v1_field(p + 1, end, src, sizeof(src));
    p = (p == NULL || p == end) ? NULL
        : pst_proxy_v1_field(p + 1, end, dst, sizeof(dst));
    p = (p == NULL || p == end) ? NULL
        : pst_proxy_v1_field(p + 1, end, sport, sizeof(sport));
    p = (p == NULL || p == end) ? NULL
        : pst_proxy_v1_field(p + 1, end, dport, sizeof(dport));

    if (p != end) {
        *why = "bad version 1 field count or spacing";
        return PST_ERROR;
    }

    if (inet_pton(family, src, sa) != 1 || inet_pton(family, dst, da) != 1) {
        *why = "bad version 1 address";
        return PST_ERROR;
    }

    if (pst_proxy_v1_port(sport, &sp) != PST_OK
        || pst_proxy_v1_port(dport, &dp) != PST_OK)
    {
        *why = "bad version 1 port";
        return PST_ERROR;
    }

    if (family == AF_INET) {
        h->src.sin.sin_family = AF_INET;
        h->src.sin.sin_port = htons(sp);
        h->dst.sin.sin_family = AF_INET;
        h->dst.sin.sin_port = htons(dp);
        h->socklen = sizeof(struct sockaddr_in);
    } else {
        h->src.sin6.sin6_family = AF_INET6;
        h->src.sin6.sin6_port = htons(sp);
        h->dst.sin6.sin6_family = AF_INET6;
        h->dst.sin6.sin6_port = htons(dp);
        h->socklen = sizeof(struct sockaddr_in6);
    }

    return PST_OK;
}


/* One field up to the next space or end, copied as a C string into buf.
 * Returns where it stopped (at the space or end), or NULL when the
 * field is empty or does not fit. */
static const u_char *
pst_proxy_v1_field(const u_char *p, const u_char *end, char *buf,
    size_t size)
{
    size_t  n = 0;

    while (p < end && *p != ' ') {
        if (n + 1 >= size || *p < 0x21 || *p > 0x7e) {
            return NULL;
        }
        buf[n++] = (char) *p++;
    }

    if (n == 0) {
        return NULL;
    }

    buf[n] = '\0';
    return p;
}


static int
pst_proxy_v1_port(const char *text, uint16_t *port)
{
    unsigned long  v = 0;
    size_t         i;

    if (text[0] == '0' && text[1] != '\0') {
        return PST_ERROR;              /* no leading zeros */
    }

    for (i = 0; text[i] != '\0'; i++) {
        if (text[i] < '0' || text[i] > '9' || i >= 5) {
            return PST_ERROR;
        }
        v = v * 10 + (unsigned long) (text[i] - '0');
    }

    if (v > 65535) {
        return PST_ERROR;
    }

    *port = (uint16_t) v;
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Version 2                                                           */

static int
pst_proxy_v2(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why)
{
    size_t  len;
    u_char  ver, cmd;

    ver = p[12] >> 4;
    cmd = p[12] & 0x0f;
    len = ((size_t) p[14] << 8) | p[15];

    if (ver != 2) {
        *why = "bad version 2 version";
        return PST_ERROR;
    }

    if (cmd > 1) {
        *why = "bad version 2 command";
        return PST_ERROR;
    }

    if (PST_PROXY_V2_HDR + len > PST_PROXY_MAX) {
        *why = "version 2 header too long";
        return PST_ERROR;
    }

    if (n < PST_PROXY_V2_HDR + len) {
        return PST_AGAIN;
    }

    h->version = 2;
    h->len = PST_PROXY_V2_HDR + len;

    if (cmd == 0) {
        /* LOCAL: the proxy's own connection (a health check); the
         * rest is skipped unread (2.2) */
        h->local = 1;
        return PST_OK;
    }

    return pst_proxy_v2_addrs(p, len, h, why);
}


/* PROXY command: the address block at p + 16, then TLVs up to len. */
static int
pst_proxy_v2_addrs(const u_char *p, size_t len, pst_proxy_header_t *h,
    const char **why)
{
    const u_char  *a = p + PST_PROXY_V2_HDR;
    size_t         alen, off, tlen;
    u_char         fam, proto;

    fam = p[13] >> 4;
    proto = p[13] & 0x0f;

    if (fam == 0) {
        /* AF_UNSPEC: "unknown or unsupported"; the real endpoints */
        h->local = 1;
        return PST_OK;
    }

    if ((fam != 1 && fam != 2) || proto != 1) {
        *why = "version 2 family or transport other than TCP";
        return PST_ERROR;
    }

    alen = (fam == 1) ? 12 : 36;
    if (len < alen) {
        *why = "version 2 address block truncated";
        return PST_ERROR;
    }

    if (fam == 1) {
        h->src.sin.sin_family = AF_INET;
        memcpy(&h->src.sin.sin_addr, a, 4);
        memcpy(&h->src.sin.sin_port, a + 8, 2);
        h->dst.sin.sin_family = AF_INET;
        memcpy(&h->dst.sin.sin_addr, a + 4, 4);
        memcpy(&h->dst.sin.sin_port, a + 10, 2);
        h->socklen = sizeof(struct sockaddr_in);
    } else {
        h->src.sin6.sin6_family = AF_INET6;
        memcpy(&h->src.sin6.sin6_addr, a, 16);
        memcpy(&h->src.sin6.sin6_port, a + 32, 2);
        h->dst.sin6.sin6_family = AF_INET6;
        memcpy(&h->dst.sin6.sin6_addr, a + 16, 16);
        memcpy(&h->dst.sin6.sin6_port, a + 34, 2);
        h->socklen = sizeof(struct sockaddr_in6);
    }

    /* TLVs: each must fit inside the declared length */
    for (off = alen; off < len; off += 3 + tlen) {
        if (len - off < 3) {
            *why = "version 2 TLV header truncated";
            return PST_ERROR;
        }
        tlen = ((size_t) a[off + 1] << 8) | a[off + 2];
        if (tlen > len - off - 3) {
            *why = "version 2 TLV longer than the header";
            return PST_ERROR;
        }
    }

    return PST_OK;
}
