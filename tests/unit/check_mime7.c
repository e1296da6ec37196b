/*
 * check_mime7.c -- the 7-bit downgrade (core/queue/pst_mime7.c): every output
 * is 7-bit with lines of at most 998 octets ending in CRLF; what was
 * 8-bit decodes back to the same octets; clean parts and header fields
 * are kept byte for byte; what cannot be downgraded is refused.
 */

#include <check.h>

#include "pst_core.h"
#include "pst_mime7.h"
#include "check_suites.h"


static pst_buf_t   *out;
static const char  *why;

#define CONV(s)  pst_mime7_convert((u_char *) (s), strlen(s), 1 << 20, \
                                   &out, &why)


static void
m7_teardown(void)
{
    if (out != NULL) {
        pst_buf_destroy(out);
        out = NULL;
    }
}


/* the converted text, NUL-terminated (a static copy) */
static const char *
m7_text(void)
{
    static char  buf[65536];
    size_t       n = pst_buf_size(out);

    ck_assert_uint_lt(n, sizeof(buf));
    memcpy(buf, out->pos, n);
    buf[n] = '\0';
    return buf;
}


static void
m7_assert_clean(void)
{
    const u_char  *p = out->pos, *end = out->last;
    size_t         line = 0;

    for ( ; p < end; p++) {
        ck_assert_msg(*p < 0x80 && *p != '\0', "8-bit octet in the output");
        if (*p == '\n') {
            ck_assert_msg(p > out->pos && p[-1] == '\r', "a bare LF");
            line = 0;
        } else if (*p == '\r') {
            ck_assert_msg(p + 1 < end && p[1] == '\n', "a bare CR");
        } else {
            line++;
            ck_assert_uint_le(line, 998);
        }
    }
}


/* base64 decoder for the test: lines of the alphabet, CRLFs skipped */
static size_t
m7_unbase64(const char *p, u_char *dst)
{
    static const char  a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned int       acc = 0, bits = 0;
    size_t             k = 0;
    const char        *c;

    for ( ; *p != '\0' && *p != '='; p++) {
        if (*p == '\r' || *p == '\n') {
            continue;
        }
        c = strchr(a, *p);
        ck_assert_ptr_nonnull(c);
        acc = (acc << 6) | (unsigned int) (c - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[k++] = (u_char) (acc >> bits);
        }
    }
    return k;
}


/* quoted-printable decoder (soft breaks removed) */
static size_t
m7_unqp(const char *p, size_t n, u_char *dst)
{
    size_t        i, k = 0;
    unsigned int  v;

    for (i = 0; i < n; i++) {
        if (p[i] != '=') {
            dst[k++] = (u_char) p[i];
        } else if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
            i += 2;
        } else {
            ck_assert(i + 2 < n && sscanf(p + i + 1, "%2X", &v) == 1);
            dst[k++] = (u_char) v;
            i += 2;
        }
    }
    return k;
}


/* the body after the first empty line */
static const char *
m7_body(const char *msg)
{
    const char  *b = strstr(msg, "\r\n\r\n");

    ck_assert_ptr_nonnull(b);
    return b + 4;
}


START_TEST(test_needed)
{
    ck_assert_int_eq(pst_mime7_needed((u_char *) "abc\r\n", 5), 0);
    ck_assert_int_eq(pst_mime7_needed((u_char *) "ab\xe9\r\n", 5), 1);
    ck_assert_int_eq(pst_mime7_needed((u_char *) "a\0b", 3), 1);
}
END_TEST


START_TEST(test_non_mime)
{
    static const char  msg[] =
        "Received: from x\r\n\tby y\r\nSubject: caf\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "caf\xc3\xa9 = ok \r\nline two\r\n";
    const char        *t, *b;
    u_char             dec[256];
    size_t             n;

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    t = m7_text();
    ck_assert(strncmp(t, "Received: from x\r\n\tby y\r\nSubject: caf\r\n",
                      39) == 0);
    ck_assert_ptr_nonnull(strstr(t, "MIME-Version: 1.0\r\n"));
    ck_assert_ptr_nonnull(strstr(t, "Content-Type: text/plain; "
                                    "charset=unknown-8bit\r\n"));
    ck_assert_ptr_nonnull(strstr(t, "Content-Transfer-Encoding: "
                                    "quoted-printable\r\n"));
    ck_assert_ptr_null(strstr(t, "Encoding: 8bit"));
    b = m7_body(t);
    /* "=" encoded, the trailing space encoded, CRLFs kept */
    ck_assert_str_eq(b, "caf=C3=A9 =3D ok=20\r\nline two\r\n");
    n = m7_unqp(b, strlen(b), dec);
    ck_assert_uint_eq(n, strlen(m7_body(msg)));
    ck_assert(memcmp(dec, m7_body(msg), n) == 0);
}
END_TEST


START_TEST(test_qp_long_lines)
{
    char         msg[4096], *p;
    const char  *b, *nl;
    u_char       dec[8192];
    size_t       n;
    int          i;

    p = msg + sprintf(msg, "MIME-Version: 1.0\r\nContent-Type: text/plain;"
                      " charset=utf-8\r\n\r\n");
    for (i = 0; i < 1500; i++) {        /* one line over 998 octets */
        *p++ = (i % 7 == 0) ? (char) 0xe9 : 'a';
    }
    strcpy(p, "\r\n");

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    b = m7_body(m7_text());
    for (p = (char *) b; (nl = strstr(p, "\r\n")) != NULL; p = (char *) nl + 2)
    {
        ck_assert_uint_le((size_t) (nl - p), 76);
    }
    n = m7_unqp(b, strlen(b), dec);
    ck_assert_uint_eq(n, strlen(m7_body(msg)));
    ck_assert(memcmp(dec, m7_body(msg), n) == 0);
}
END_TEST


START_TEST(test_binary_base64)
{
    static const char  msg[] =
        "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n\r\n\x01\x02\xff\xfe\r\n";
    const char        *b;
    u_char             dec[64];
    ssize_t            n;

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    ck_assert_ptr_nonnull(strstr(m7_text(), "Content-Transfer-Encoding: "
                                            "base64\r\n\r\n"));
    ck_assert_ptr_null(strstr(m7_text(), "binary"));
    b = m7_body(m7_text());
    ck_assert_str_eq(b + strlen(b) - 2, "\r\n");
    n = pst_base64_decode(dec, (u_char *) b, strlen(b) - 2);
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(dec, "\x01\x02\xff\xfe\r\n", 6) == 0);
}
END_TEST


START_TEST(test_multipart)
{
    static const char  msg[] =
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "preamble\r\n"
        "--=_b1\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "plain ascii\r\n"
        "--=_b1\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "caf\xe9\r\n"
        "--=_b1--\r\n"
        "epilogue \xff\r\n";
    const char        *t;

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    t = m7_text();
    ck_assert_str_eq(t,
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"=_b1\"\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "preamble\r\n"
        "--=_b1\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "plain ascii\r\n"
        "--=_b1\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9\r\n"
        "--=_b1--\r\n");
}
END_TEST


START_TEST(test_nested_and_rfc822)
{
    static const char  msg[] =
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\n"
        "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
        "--inner\r\n"
        "Content-Type: text/html\r\n\r\n"
        "<p>\xc3\xa9</p>\r\n"
        "--inner--\r\n"
        "--outer\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Subject: inner\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: image/png\r\n\r\n"
        "\x89PNG\r\n"
        "--outer--\r\n";
    const char        *t;

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    t = m7_text();
    ck_assert_ptr_nonnull(strstr(t, "Content-Type: text/html\r\n"
                          "Content-Transfer-Encoding: quoted-printable\r\n"
                          "\r\n<p>=C3=A9</p>\r\n--inner--\r\n"));
    ck_assert_ptr_nonnull(strstr(t, "Content-Type: message/rfc822\r\n"
                          "Content-Transfer-Encoding: 7bit\r\n\r\n"
                          "Subject: inner\r\n"));
    ck_assert_ptr_nonnull(strstr(t, "Content-Type: image/png\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n"
                          "iVBORw==\r\n\r\n--outer--\r\n"));
}
END_TEST


START_TEST(test_refused)
{
    char    deep[8192], *p;
    int     i;

    ck_assert_int_eq(CONV("Subject: caf\xe9\r\n\r\nbody \xe9\r\n"),
                     PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "header"));

    ck_assert_int_eq(CONV("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n"),
                     PST_DECLINED);

    ck_assert_int_eq(CONV("MIME-Version: 1.0\r\nContent-Type: multipart/"
                          "mixed; boundary=zz\r\n\r\nno delimiter \xe9\r\n"),
                     PST_DECLINED);

    /* RFC 2045 6.4, RFC 2046 5.2.2: no base64 for these */
    ck_assert_int_eq(CONV("MIME-Version: 1.0\r\nContent-Type: multipart/"
                          "mixed\r\n\r\n--zz\r\n\r\n\xe9\r\n--zz--\r\n"),
                     PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "boundary"));
    ck_assert_int_eq(CONV("MIME-Version: 1.0\r\nContent-Type: message/"
                          "partial; id=x; number=1\r\n\r\n\xe9\r\n"),
                     PST_DECLINED);

    /* "--" boundary "--" would be over 998 octets */
    p = deep + sprintf(deep, "MIME-Version: 1.0\r\nContent-Type: multipart/"
                       "mixed;\r\n boundary=\r\n \"");
    memset(p, 'b', 995);
    p += 995 + sprintf(p + 995, "\"\r\n\r\n--");
    memset(p, 'b', 995);
    strcpy(p + 995, "\r\n\r\n\xe9\r\n");
    ck_assert_int_eq(CONV(deep), PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "boundary"));

    p = deep + sprintf(deep, "MIME-Version: 1.0\r\n");
    for (i = 0; i < 25; i++) {
        p += sprintf(p, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                     "--b%d\r\n", i, i);
    }
    sprintf(p, "\r\n\xe9\r\n");
    ck_assert_int_eq(CONV(deep), PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "deep"));

    ck_assert_int_eq(pst_mime7_convert((u_char *) "Subject: x\r\n\r\n\xe9\xe9"
                                       "\xe9\xe9\r\n", 20, 30, &out, &why),
                     PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "large"));
}
END_TEST


/* A 7-bit part whose last line (its CRLF belongs to the delimiter)
 * is over 998 octets: re-encoded, not copied. */
START_TEST(test_long_last_line_in_a_part)
{
    char         msg[4096], *p;
    const char  *t;

    p = msg + sprintf(msg, "MIME-Version: 1.0\r\nContent-Type: multipart/"
                      "mixed; boundary=b\r\n\r\n--b\r\n"
                      "Content-Type: text/plain\r\n\r\n");
    memset(p, 'a', 999);
    strcpy(p + 999, "\r\n--b--\r\n");

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    t = m7_text();
    ck_assert_ptr_nonnull(strstr(t, "Content-Transfer-Encoding: "
                                    "quoted-printable\r\n"));
    ck_assert_ptr_nonnull(strstr(t, "a=\r\na"));
    ck_assert_str_eq(t + strlen(t) - 10, "a\r\n--b--\r\n");
}
END_TEST


/* The base64 of a binary attachment over several lines decodes back. */
START_TEST(test_base64_lines)
{
    char         msg[4096], *p;
    const char  *b, *nl;
    u_char       dec[4096];
    size_t       n;
    int          i;

    p = msg + sprintf(msg, "MIME-Version: 1.0\r\nContent-Type: multipart/"
                      "mixed; boundary=b\r\n\r\n--b\r\n"
                      "Content-Type: image/gif\r\n\r\n");
    for (i = 0; i < 1000; i++) {
        *p++ = (char) (0x80 + i % 128);
    }
    strcpy(p, "\r\n--b--\r\n");

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    b = m7_body(strstr(m7_text(), "image/gif"));
    for (p = (char *) b; *p != '-' && (nl = strstr(p, "\r\n")) != NULL;
         p = (char *) nl + 2)
    {
        ck_assert_uint_le((size_t) (nl - p), 76);
    }
    ck_assert_str_eq(p, "--b--\r\n");
    n = m7_unbase64(b, dec);
    ck_assert_uint_eq(n, 1000);
    for (i = 0; i < 1000; i++) {
        ck_assert_uint_eq(dec[i], 0x80 + i % 128);
    }
}
END_TEST


/* multipart/digest: a part without Content-Type is a message/rfc822;
 * the message in it has no MIME-Version: a non-MIME message (RFC 2045
 * 4), labelled like the top one */
START_TEST(test_digest)
{
    static const char  msg[] =
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/digest; boundary=d\r\n\r\n"
        "--d\r\n\r\n"
        "Subject: one\r\n\r\n"
        "caf\xe9\r\n"
        "--d--\r\n";

    ck_assert_int_eq(CONV(msg), PST_OK);
    m7_assert_clean();
    ck_assert_str_eq(m7_text(),
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/digest; boundary=d\r\n\r\n"
        "--d\r\n\r\n"
        "Subject: one\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=unknown-8bit\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9\r\n"
        "--d--\r\n");
}
END_TEST


/* n multiparts one in another, an 8-bit text at the bottom */
static const char *
m7_nested(int n)
{
    static char  deep[8192];
    char        *p;
    int          i;

    p = deep + sprintf(deep, "MIME-Version: 1.0\r\n");
    for (i = 0; i < n; i++) {
        p += sprintf(p, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                     "--b%d\r\n", i, i);
    }
    sprintf(p, "\r\n\xe9\r\n");
    return deep;
}


START_TEST(test_depth_limit)
{
    ck_assert_int_eq(CONV(m7_nested(20)), PST_OK);
    m7_assert_clean();
    ck_assert_ptr_nonnull(strstr(m7_text(), "--b19\r\n"
                          "Content-Transfer-Encoding: quoted-printable\r\n"
                          "\r\n=E9\r\n"));
    m7_teardown();
    ck_assert_int_eq(CONV(m7_nested(21)), PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "deep"));
}
END_TEST


START_TEST(test_clean_untouched)
{
    static const char  msg[] =
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nall ascii\r\n";

    ck_assert_int_eq(CONV(msg), PST_OK);
    ck_assert_str_eq(m7_text(), msg);
}
END_TEST


Suite *
suite_mime7(void)
{
    Suite  *s = suite_create("mime7");
    TCase  *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, NULL, m7_teardown);
    tcase_add_test(tc, test_needed);
    tcase_add_test(tc, test_non_mime);
    tcase_add_test(tc, test_qp_long_lines);
    tcase_add_test(tc, test_binary_base64);
    tcase_add_test(tc, test_multipart);
    tcase_add_test(tc, test_nested_and_rfc822);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_long_last_line_in_a_part);
    tcase_add_test(tc, test_base64_lines);
    tcase_add_test(tc, test_digest);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_clean_untouched);
    suite_add_tcase(s, tc);

    return s;
}
