/*
 * fuzz_proxy_protocol.c -- libFuzzer harness for the PROXY protocol
 * header parser (pst_proxy_protocol.c), the first bytes a proxy_protocol
 * listener reads from its peer.
 *
 * The input is what the peer sent, in an allocation of exactly its size
 * (ASan sees a read past the end).  Invariants besides the sanitizers:
 *   - a header is never longer than the input, than PST_PROXY_MAX, or
 *     (version 1) than 107 bytes; its addresses are of one family with
 *     the matching length;
 *   - the parser does not look past the header: the header alone parses
 *     to the same result;
 *   - prefixes agree with the whole (bytes arriving in pieces): a prefix
 *     that is a header makes the whole the same header, a prefix that is
 *     an error makes the whole an error, and a whole that asks for more
 *     has prefixes that ask for more;
 *   - a version 1 header written back from what was parsed parses to
 *     the same addresses and ports.
 */

#include "pst_core.h"
#include "pst_proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_proxy_protocol: invariant failed: %s\n", what);
        abort();
    }
}


static int
fz_parse(const uint8_t *data, size_t n, pst_proxy_header_t *h)
{
    const char  *why;
    u_char      *copy;
    int          rc;

    copy = malloc(n ? n : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, data, n);
    rc = pst_proxy_parse(copy, n, h, &why);
    free(copy);

    fz_check(rc == PST_OK || rc == PST_AGAIN || rc == PST_ERROR, "rc");
    fz_check((rc == PST_ERROR) == (why != NULL), "reason iff error");

    return rc;
}


static int
fz_same(const pst_proxy_header_t *a, const pst_proxy_header_t *b)
{
    return a->version == b->version && a->local == b->local
           && a->len == b->len && a->socklen == b->socklen
           && memcmp(&a->src, &b->src, sizeof(a->src)) == 0
           && memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}


static void
fz_header(const uint8_t *data, size_t size, const pst_proxy_header_t *h)
{
    pst_proxy_header_t  t;

    fz_check(h->len > 0 && h->len <= size, "length within the input");
    fz_check(h->len <= PST_PROXY_MAX, "length within the limit");
    fz_check(h->version == 2 || h->len <= PST_PROXY_V1_MAX, "v1 length");

    if (!h->local) {
        fz_check((h->src.sa.sa_family == AF_INET
                  && h->socklen == sizeof(struct sockaddr_in))
                 || (h->src.sa.sa_family == AF_INET6
                     && h->socklen == sizeof(struct sockaddr_in6)),
                 "family and length");
        fz_check(h->dst.sa.sa_family == h->src.sa.sa_family,
                 "one family");
    }

    fz_check(fz_parse(data, h->len, &t) == PST_OK && fz_same(h, &t),
             "the header alone parses the same");
}


/* Version 1 written back from the parsed header parses the same. */
static void
fz_v1_again(const pst_proxy_header_t *h)
{
    pst_proxy_header_t  t;
    char                line[160], s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    int                 n, v6;

    if (h->version != 1 || h->local) {
        return;
    }

    v6 = h->src.sa.sa_family == AF_INET6;
    fz_check(inet_ntop(h->src.sa.sa_family, v6
                       ? (void *) &h->src.sin6.sin6_addr
                       : (void *) &h->src.sin.sin_addr, s, sizeof(s))
             != NULL
             && inet_ntop(h->dst.sa.sa_family, v6
                          ? (void *) &h->dst.sin6.sin6_addr
                          : (void *) &h->dst.sin.sin_addr, d, sizeof(d))
                != NULL, "inet_ntop");

    n = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n",
                 v6 ? '6' : '4', s, d,
                 ntohs(v6 ? h->src.sin6.sin6_port : h->src.sin.sin_port),
                 ntohs(v6 ? h->dst.sin6.sin6_port : h->dst.sin.sin_port));

    fz_check(fz_parse((uint8_t *) line, (size_t) n, &t) == PST_OK,
             "written back: parses");
    fz_check(memcmp(&t.src, &h->src, sizeof(t.src)) == 0
             && memcmp(&t.dst, &h->dst, sizeof(t.dst)) == 0,
             "written back: same addresses");
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_proxy_header_t  h, t;
    size_t              k, cut[4];
    int                 rc, rk, i;

    if (size > 2 * PST_PROXY_MAX) {
        return 0;
    }

    rc = fz_parse(data, size, &h);

    if (rc == PST_OK) {
        fz_header(data, size, &h);
        fz_v1_again(&h);
    }

    /* a few prefixes: one byte short, half, the first byte, chosen */
    cut[0] = size ? size - 1 : 0;
    cut[1] = size / 2;
    cut[2] = size ? 1 : 0;
    cut[3] = size ? data[size - 1] % size : 0;

    for (i = 0; i < 4; i++) {
        k = cut[i];
        rk = fz_parse(data, k, &t);

        if (rk == PST_OK) {
            fz_check(rc == PST_OK && fz_same(&h, &t),
                     "a header in a prefix is the header of the whole");
        } else if (rk == PST_ERROR) {
            fz_check(rc == PST_ERROR, "an error in a prefix stays one");
        }
        if (rc == PST_AGAIN) {
            fz_check(rk == PST_AGAIN, "prefix of an incomplete header");
        }
    }

    return 0;
}
