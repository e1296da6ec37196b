/*
 * check_proxy_protocol.c -- the PROXY protocol header parser
 * (pst_proxy_protocol.c): versions 1 and 2, valid and malformed headers,
 * every truncation (a valid header's every prefix must ask for more, as
 * when it arrives in pieces), overlong lines and headers, bad signatures,
 * LOCAL and UNKNOWN, TLVs.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_proxy_protocol.h"


static const u_char  v2sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};


/* The header's text form of the client: "ADDR:PORT" or "[ADDR]:PORT". */
static const char *
src_text(const pst_proxy_header_t *h, int dst)
{
    static u_char  buf[INET6_ADDRSTRLEN + 16];
    size_t         n;

    n = pst_sock_ntop(dst ? &h->dst.sa : &h->src.sa, buf, sizeof(buf), 1);
    buf[n] = '\0';
    return (const char *) buf;
}


/* Parse, and check that every shorter prefix asks for more (a valid
 * header arriving one byte at a time). */
static int
parse_all(const u_char *p, size_t n, pst_proxy_header_t *h,
    const char **why)
{
    pst_proxy_header_t  t;
    const char         *w;
    size_t              k;
    int                 rc;

    rc = pst_proxy_parse(p, n, h, why);
    if (rc != PST_OK) {
        return rc;
    }

    for (k = 0; k < h->len; k++) {
        ck_assert_msg(pst_proxy_parse(p, k, &t, &w) == PST_AGAIN,
                      "prefix of %zu bytes of a valid header: not AGAIN (%s)",
                      k, w ? w : "");
    }

    return rc;
}


/* ------------------------------------------------------------------ */
/* Version 1                                                           */

typedef struct {
    tstr_t                       in;
    int                          rc;
    size_t                       len;
    int                          local;
    const char                  *src;
    const char                  *dst;
} v1_case_t;

static const v1_case_t  v1_cases[] = {
    { T("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n"), PST_OK, 44, 0,
      "192.0.2.1:56324", "198.51.100.2:25" },
    { T("PROXY TCP6 2001:db8::1 2001:db8::2 56324 25\r\n"), PST_OK, 45, 0,
      "[2001:db8::1]:56324", "[2001:db8::2]:25" },
    { T("PROXY TCP6 ::ffff:192.0.2.1 ::1 1 65535\r\n"), PST_OK, 41, 0,
      "[::ffff:192.0.2.1]:1", "[::1]:65535" },
    { T("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n"), PST_OK, 40, 0,
      "0.0.0.0:0", "255.255.255.255:0" },
    { T("PROXY UNKNOWN\r\n"), PST_OK, 15, 1, NULL, NULL },
    { T("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
      PST_OK, 59, 1, NULL, NULL },
    /* the bytes after the header are not part of it */
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nEHLO x\r\n"), PST_OK, 36, 0,
      "192.0.2.1:1", "192.0.2.2:2" },
    { T("PROXY UNKNOWN\r\n\r\n"), PST_OK, 15, 1, NULL, NULL },

    /* malformed */
    { T("proxy TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY  TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY \r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY UNKNOWNX\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 256.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n"), PST_ERROR, 0, 0, 0,
      0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 -1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2x\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 999999\r\n"), PST_ERROR, 0, 0, 0,
      0 },
    { T("PROXY TCP4 192.0.2.1\t192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY UNKNOWN x\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY UNKNOWN\r\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXY TCP4 192.0.2.1\0192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("\nPROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), PST_ERROR, 0, 0, 0,
      0 },

    /* never a PROXY header: known from the first bytes */
    { T("EHLO client.test\r\n"), PST_ERROR, 0, 0, 0, 0 },
    { T("PROXX"), PST_ERROR, 0, 0, 0, 0 },
    { T("\x16\x03\x01\x02\x00"), PST_ERROR, 0, 0, 0, 0 },
    { T("G"), PST_ERROR, 0, 0, 0, 0 },

    /* truncated: may still become one */
    { T("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r"), PST_AGAIN, 0, 0, 0, 0 },
    { T("PROX"), PST_AGAIN, 0, 0, 0, 0 },
    { T(""), PST_AGAIN, 0, 0, 0, 0 },
};


START_TEST(test_v1_cases)
{
    const v1_case_t     *c = &v1_cases[_i];
    pst_proxy_header_t   h;
    const char          *why;
    int                  rc;

    rc = parse_all((const u_char *) c->in.data, c->in.len, &h, &why);

    ck_assert_msg(rc == c->rc, "case %d %.*s: rc %d, want %d (%s)", _i,
                  (int) c->in.len, c->in.data, rc, c->rc, why ? why : "");

    if (rc == PST_ERROR) {
        ck_assert_msg(why != NULL && why[0] != '\0', "no reason");
    }

    if (rc != PST_OK) {
        return;
    }

    ck_assert_int_eq(h.version, 1);
    ck_assert_uint_eq(h.len, c->len);
    ck_assert_int_eq(h.local, c->local);
    if (!c->local) {
        ck_assert_str_eq(src_text(&h, 0), c->src);
        ck_assert_str_eq(src_text(&h, 1), c->dst);
        ck_assert_uint_eq(h.socklen, h.src.sa.sa_family == AF_INET
                                     ? sizeof(struct sockaddr_in)
                                     : sizeof(struct sockaddr_in6));
    }
}
END_TEST


/* The reasons logged for the usual mistakes. */
START_TEST(test_v1_reasons)
{
    static const struct {
        const char  *in;
        const char  *why;
    } cases[] = {
        { "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n",
          "version 1 line without CRLF" },
        { "PROXY UNKNOWN\rx\r\n", "CR inside the version 1 line" },
        { "PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
          "bad version 1 field count or spacing" },
        { "PROXY TCP9 192.0.2.1 192.0.2.2 1 2\r\n",
          "bad version 1 protocol" },
        { "PROXY TCP4 192.0.2.1 ::1 1 2\r\n", "bad version 1 address" },
        { "PROXY TCP4 192.0.2.1 192.0.2.2 1 00\r\n", "bad version 1 port" },
        { "SMTP", "no PROXY header" },
        { "PROXY\r\n", "no PROXY header" },
    };
    pst_proxy_header_t   h;
    const char          *why;
    size_t               i;

    for (i = 0; i < pst_nelems(cases); i++) {
        ck_assert_int_eq(pst_proxy_parse((u_char *) cases[i].in,
                                         strlen(cases[i].in), &h, &why),
                         PST_ERROR);
        ck_assert_str_eq(why, cases[i].why);
    }
}
END_TEST


/* 107 bytes with the CRLF is the limit (spec 2.1): the longest TCP6
 * line is 104; an UNKNOWN line padded to 107 passes, 108 does not, and
 * 107 bytes without an LF are an error at once, not a wait. */
START_TEST(test_v1_length)
{
    pst_proxy_header_t   h;
    const char          *why;
    char                 line[256];
    size_t               n;

    n = (size_t) snprintf(line, sizeof(line), "PROXY TCP6 %s %s 65535 65535"
                          "\r\n",
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    ck_assert_uint_eq(n, 104);
    ck_assert_int_eq(parse_all((u_char *) line, n, &h, &why), PST_OK);
    ck_assert_uint_eq(h.len, 104);

    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    ck_assert_int_eq(parse_all((u_char *) line, 107, &h, &why), PST_OK);
    ck_assert_uint_eq(h.len, 107);
    ck_assert_int_eq(h.local, 1);

    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 2);
    ck_assert_int_eq(pst_proxy_parse((u_char *) line, 108, &h, &why),
                     PST_ERROR);
    ck_assert_str_eq(why, "version 1 line longer than 107 bytes");

    /* no end in sight after 107 bytes: no need to wait for more */
    ck_assert_int_eq(pst_proxy_parse((u_char *) line, 107, &h, &why),
                     PST_ERROR);
    ck_assert_int_eq(pst_proxy_parse((u_char *) line, 106, &h, &why),
                     PST_AGAIN);
    ck_assert_int_eq(pst_proxy_parse((u_char *) line, sizeof(line), &h,
                                     &why), PST_ERROR);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Version 2                                                           */

/* A version 2 header: ver_cmd, fam, then the body (addresses, TLVs);
 * the length field says blen unless len_field >= 0. */
static size_t
v2(u_char *out, u_char ver_cmd, u_char fam, const u_char *body,
    size_t blen, int len_field)
{
    size_t  len = len_field >= 0 ? (size_t) len_field : blen;

    memcpy(out, v2sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (u_char) (len >> 8);
    out[15] = (u_char) len;
    if (blen > 0) {
        memcpy(out + 16, body, blen);
    }
    return 16 + blen;
}


static const u_char  v4body[12] = {
    192, 0, 2, 1,  198, 51, 100, 2,  0xdc, 0x04,  0x00, 0x19
};

static const u_char  v6body[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
    0xdc, 0x04,  0x01, 0xd1
};


START_TEST(test_v2_valid)
{
    pst_proxy_header_t   h;
    const char          *why;
    u_char               buf[PST_PROXY_MAX + 64], body[256];
    size_t               n;

    /* TCP over IPv4 */
    n = v2(buf, 0x21, 0x11, v4body, sizeof(v4body), -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.local, 0);
    ck_assert_uint_eq(h.len, 28);
    ck_assert_str_eq(src_text(&h, 0), "192.0.2.1:56324");
    ck_assert_str_eq(src_text(&h, 1), "198.51.100.2:25");

    /* TCP over IPv6, with SMTP after it */
    n = v2(buf, 0x21, 0x21, v6body, sizeof(v6body), -1);
    memcpy(buf + n, "EHLO x\r\n", 8);
    ck_assert_int_eq(parse_all(buf, n + 8, &h, &why), PST_OK);
    ck_assert_uint_eq(h.len, 52);
    ck_assert_str_eq(src_text(&h, 0), "[2001:db8::1]:56324");
    ck_assert_str_eq(src_text(&h, 1), "[2001:db8::2]:465");

    /* TLVs are skipped: ALPN "smtp", an empty NOOP, a 0x20 SSL block */
    memcpy(body, v4body, 12);
    memcpy(body + 12, "\x01\x00\x04smtp" "\x04\x00\x00"
           "\x20\x00\x05\x01\x00\x00\x00\x00", 7 + 3 + 8);
    n = v2(buf, 0x21, 0x11, body, 12 + 18, -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);
    ck_assert_uint_eq(h.len, 16 + 30);
    ck_assert_str_eq(src_text(&h, 0), "192.0.2.1:56324");

    /* address block longer than the family needs: the rest as TLVs
     * (here none: an exact fit of one empty TLV) */
    memcpy(body, v4body, 12);
    memcpy(body + 12, "\xea\x00\x00", 3);
    n = v2(buf, 0x21, 0x11, body, 15, -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);

    /* the largest header accepted */
    memset(body, 0, sizeof(body));
    memcpy(buf + 16, v4body, 12);
    buf[28] = 0x04;
    buf[29] = (u_char) ((PST_PROXY_MAX - 16 - 12 - 3) >> 8);
    buf[30] = (u_char) (PST_PROXY_MAX - 16 - 12 - 3);
    memset(buf + 31, 0, PST_PROXY_MAX - 31);
    (void) v2(buf, 0x21, 0x11, buf + 16, 0, PST_PROXY_MAX - 16);
    ck_assert_int_eq(parse_all(buf, PST_PROXY_MAX, &h, &why), PST_OK);
    ck_assert_uint_eq(h.len, PST_PROXY_MAX);
}
END_TEST


START_TEST(test_v2_local)
{
    pst_proxy_header_t   h;
    const char          *why;
    u_char               buf[256], junk[40];
    size_t               n;

    /* LOCAL: a health check; whatever follows inside the length is
     * skipped unread, even what would be a malformed address block */
    n = v2(buf, 0x20, 0x00, NULL, 0, -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);
    ck_assert_int_eq(h.local, 1);
    ck_assert_uint_eq(h.len, 16);

    memset(junk, 0xff, sizeof(junk));
    n = v2(buf, 0x20, 0x11, junk, 5, -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);
    ck_assert_int_eq(h.local, 1);
    ck_assert_uint_eq(h.len, 21);

    /* PROXY with AF_UNSPEC: the real endpoints */
    n = v2(buf, 0x21, 0x00, junk, 7, -1);
    ck_assert_int_eq(parse_all(buf, n, &h, &why), PST_OK);
    ck_assert_int_eq(h.local, 1);
    ck_assert_uint_eq(h.len, 23);
}
END_TEST


START_TEST(test_v2_malformed)
{
    pst_proxy_header_t   h;
    const char          *why;
    u_char               buf[PST_PROXY_MAX + 64], body[64];
    size_t               n;

    /* a wrong byte anywhere in the signature: known at once */
    for (n = 1; n < 12; n++) {
        (void) v2(buf, 0x21, 0x11, v4body, 12, -1);
        buf[n] ^= 0x20;
        ck_assert_int_eq(pst_proxy_parse(buf, n + 1, &h, &why), PST_ERROR);
        ck_assert_str_eq(why, "bad version 2 signature");
        ck_assert_int_eq(pst_proxy_parse(buf, 28, &h, &why), PST_ERROR);
    }

    /* version 1 or 3 in the version nibble; command 2..15 */
    n = v2(buf, 0x11, 0x11, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "bad version 2 version");
    n = v2(buf, 0x31, 0x11, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    n = v2(buf, 0x22, 0x11, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "bad version 2 command");
    n = v2(buf, 0x2f, 0x11, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);

    /* UDP, UNIX, an unknown family */
    n = v2(buf, 0x21, 0x12, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    n = v2(buf, 0x21, 0x31, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    n = v2(buf, 0x21, 0x41, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    n = v2(buf, 0x21, 0x10, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);

    /* address block shorter than the family needs */
    n = v2(buf, 0x21, 0x11, v4body, 11, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "version 2 address block truncated");
    n = v2(buf, 0x21, 0x21, v6body, 35, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    n = v2(buf, 0x21, 0x21, v4body, 12, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);

    /* TLVs that do not fill the rest exactly */
    memcpy(body, v4body, 12);
    memcpy(body + 12, "\x01\x00", 2);                /* header cut */
    n = v2(buf, 0x21, 0x11, body, 14, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "version 2 TLV header truncated");
    memcpy(body + 12, "\x01\x00\x05smtp", 7);        /* value cut */
    n = v2(buf, 0x21, 0x11, body, 19, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "version 2 TLV longer than the header");
    memcpy(body + 12, "\x01\xff\xffsmtp", 7);        /* huge length */
    n = v2(buf, 0x21, 0x11, body, 19, -1);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_ERROR);

    /* longer than we accept: refused from the 16 bytes, no waiting */
    n = v2(buf, 0x21, 0x11, v4body, 12, PST_PROXY_MAX - 16 + 1);
    ck_assert_int_eq(pst_proxy_parse(buf, 16, &h, &why), PST_ERROR);
    ck_assert_str_eq(why, "version 2 header too long");
    n = v2(buf, 0x21, 0x11, v4body, 12, 0xffff);
    ck_assert_int_eq(pst_proxy_parse(buf, 16, &h, &why), PST_ERROR);
}
END_TEST


/* Truncated: the length says more than has come; more is awaited, and
 * no byte past n is read (ASan would see it: exact-size copies). */
START_TEST(test_v2_truncated)
{
    pst_proxy_header_t   h;
    const char          *why;
    u_char               buf[128], *copy;
    size_t               n, k;

    n = v2(buf, 0x21, 0x21, v6body, sizeof(v6body), -1);
    for (k = 0; k <= n; k++) {
        copy = malloc(k ? k : 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, buf, k);
        ck_assert_int_eq(pst_proxy_parse(copy, k, &h, &why),
                         k < n ? PST_AGAIN : PST_OK);
        free(copy);
    }

    /* a LOCAL header announcing a body that has not come yet */
    n = v2(buf, 0x20, 0x00, v4body, 12, 40);
    ck_assert_int_eq(pst_proxy_parse(buf, n, &h, &why), PST_AGAIN);
}
END_TEST


Suite *
suite_proxy_protocol(void)
{
    Suite  *s = suite_create("proxy_protocol");
    TCase  *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_v1_cases, 0, (int) pst_nelems(v1_cases));
    tcase_add_test(tc, test_v1_reasons);
    tcase_add_test(tc, test_v1_length);
    tcase_add_test(tc, test_v2_valid);
    tcase_add_test(tc, test_v2_local);
    tcase_add_test(tc, test_v2_malformed);
    tcase_add_test(tc, test_v2_truncated);
    suite_add_tcase(s, tc);

    return s;
}
