/*
 * check_string.c -- pst_string.c: base64, xtext, numbers, sizes, times,
 * sanitising, dates and comparisons.
 *
 * These functions decode what clients send (AUTH, ENVID, ORCPT, SIZE)
 * and what administrators write (sizes, times), so every malformed
 * input must be refused, never "mostly" decoded.
 */

#include "check_util.h"
#include "check_suites.h"


/* ------------------------------------------------------------------ */
/* base64                                                              */

typedef struct {
    tstr_t                       plain;
    tstr_t                       b64;
} b64_case_t;

/* RFC 4648 section 10, plus binary and the two non-alphanumerics */
static const b64_case_t  b64_good[] = {
    { T(""), T("") },
    { T("f"), T("Zg==") },
    { T("fo"), T("Zm8=") },
    { T("foo"), T("Zm9v") },
    { T("foob"), T("Zm9vYg==") },
    { T("fooba"), T("Zm9vYmE=") },
    { T("foobar"), T("Zm9vYmFy") },
    { T("\0"), T("AA==") },
    { T("\0\0\0"), T("AAAA") },
    { T("\xfb\xff\xbf"), T("+/+/") },
    { T("\xff\xff\xff\xff"), T("/////w==") },
    { T("\0user\0secret"), T("AHVzZXIAc2VjcmV0") },
};


START_TEST(test_base64_encode)
{
    const b64_case_t  *c = &b64_good[_i];
    u_char             out[64];
    size_t             n;

    ck_assert_uint_eq(pst_base64_encoded_length(c->plain.len), c->b64.len);

    n = pst_base64_encode(out, (const u_char *) c->plain.data, c->plain.len);
    ck_assert_uint_eq(n, c->b64.len);
    ck_assert_mem_eq(out, c->b64.data, n);
}
END_TEST


START_TEST(test_base64_decode)
{
    const b64_case_t  *c = &b64_good[_i];
    u_char             out[64];
    ssize_t            n;

    n = pst_base64_decode(out, (const u_char *) c->b64.data, c->b64.len);
    ck_assert_int_eq(n, (ssize_t) c->plain.len);
    ck_assert_mem_eq(out, c->plain.data, (size_t) n);
}
END_TEST


static const tstr_t  b64_bad[] = {
    T("Z"),                  /* length not a multiple of 4 */
    T("Zg"),
    T("Zg="),
    T("Zm9vY"),
    T("Zm9vYg=="
      "="),
    T("Zm9v\n"),             /* no whitespace, no line breaks */
    T("Zm 9"),
    T("Zm\r\nZm9v"),
    T("Zm-v"),               /* base64url alphabet is not base64 */
    T("Zm_v"),
    T("Zm9\0"),
    T("Zm9\x80"),
    T("Zm9*"),
    T("===="),               /* padding only */
    T("Z==="),               /* three pad characters */
    T("Z=g="),               /* padding in the middle of a group */
    T("Zg=a"),
    T("=Zg="),
    T("Zg==Zg=="),           /* padding before the last group */
    T("Zm8=Zm9v"),
    T("Zm9v===="),
};


START_TEST(test_base64_decode_bad)
{
    const tstr_t  *c = &b64_bad[_i];
    u_char         out[64];

    ck_assert_msg(pst_base64_decode(out, (const u_char *) c->data, c->len)
                  == -1, "\"%.*s\" decoded", (int) c->len, c->data);
}
END_TEST


START_TEST(test_base64_decode_short)
{
    static const u_char  good[] = "Zm9vYmFyZm8=";
    u_char               out[16];
    size_t               n;

    /* a length that is not a multiple of 4 is refused before anything
     * is read: the bytes just past n are valid base64 here, so a
     * decoder that looked at them would succeed */
    for (n = 1; n < sizeof(good) - 1; n++) {
        if (n % 4 == 0) {
            ck_assert_int_eq(pst_base64_decode(out, good, n),
                             (ssize_t) (n / 4 * 3));
            continue;
        }
        ck_assert_msg(pst_base64_decode(out, good, n) == -1,
                      "prefix of %zu decoded", n);
    }
}
END_TEST


/* A deterministic byte stream for round trips (no rand(): the test must
 * see the same bytes in every run). */
static uint32_t
lcg(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 16;
}


START_TEST(test_base64_round_trip)
{
    u_char    in[300], enc[400], dec[300];
    uint32_t  seed = 1;
    size_t    len, i, n;
    ssize_t   k;

    for (len = 0; len <= sizeof(in); len++) {
        for (i = 0; i < len; i++) {
            in[i] = (u_char) lcg(&seed);
        }
        n = pst_base64_encode(enc, in, len);
        ck_assert_uint_eq(n, pst_base64_encoded_length(len));
        k = pst_base64_decode(dec, enc, n);
        ck_assert_int_eq(k, (ssize_t) len);
        ck_assert_mem_eq(dec, in, len);
    }
}
END_TEST


/* ------------------------------------------------------------------ */
/* xtext (RFC 3461 section 4)                                          */

typedef struct {
    tstr_t                       plain;
    tstr_t                       xtext;
} xtext_case_t;

static const xtext_case_t  xtext_good[] = {
    { T(""), T("") },
    { T("abc"), T("abc") },
    { T("a+b"), T("a+2Bb") },
    { T("a=b"), T("a+3Db") },
    { T("a b"), T("a+20b") },
    { T("<>"), T("<>") },
    { T("!~\"#"), T("!~\"#") },
    { T("\r\n"), T("+0D+0A") },
    { T("\x7f\x80\xff"), T("+7F+80+FF") },
    { T("user@example.com"), T("user@example.com") },
};


START_TEST(test_xtext_encode)
{
    const xtext_case_t  *c = &xtext_good[_i];
    u_char               out[64];
    size_t               n;

    ck_assert_uint_eq(pst_xtext_encoded_length((const u_char *) c->plain.data,
                                               c->plain.len),
                      c->xtext.len);
    n = pst_xtext_encode(out, (const u_char *) c->plain.data, c->plain.len);
    ck_assert_uint_eq(n, c->xtext.len);
    ck_assert_mem_eq(out, c->xtext.data, n);
}
END_TEST


START_TEST(test_xtext_decode)
{
    const xtext_case_t  *c = &xtext_good[_i];
    u_char               out[64];
    ssize_t              n;

    n = pst_xtext_decode(out, (const u_char *) c->xtext.data, c->xtext.len);
    ck_assert_int_eq(n, (ssize_t) c->plain.len);
    ck_assert_mem_eq(out, c->plain.data, (size_t) n);
}
END_TEST


static const tstr_t  xtext_bad[] = {
    T("a+2b"),               /* hexchar is uppercase only */
    T("+0a"),
    T("+ff"),
    T("+"),                  /* truncated hexchar */
    T("a+"),
    T("a+2"),
    T("+G0"),
    T("+0G"),
    T("+-1"),
    T("a=b"),                /* '=' must be encoded */
    T("a b"),                /* controls and SP must be encoded */
    T("a\tb"),
    T("a\r\n"),
    T("\0"),
    T("a\x7f"),
    T("caf\xc3\xa9"),        /* non-ASCII must be encoded */
};


START_TEST(test_xtext_decode_bad)
{
    const tstr_t  *c = &xtext_bad[_i];
    u_char         out[64];

    ck_assert_msg(pst_xtext_decode(out, (const u_char *) c->data, c->len)
                  == -1, "\"%.*s\" decoded", (int) c->len, c->data);
}
END_TEST


START_TEST(test_xtext_round_trip)
{
    u_char   in[256], enc[3 * 256], dec[256];
    size_t   i, n;
    ssize_t  k;

    for (i = 0; i < 256; i++) {
        in[i] = (u_char) i;
    }

    n = pst_xtext_encode(enc, in, sizeof(in));
    ck_assert_uint_eq(n, pst_xtext_encoded_length(in, sizeof(in)));

    /* only "!".."~" except '+' and '=' stay as they are */
    ck_assert_uint_eq(n, 256 + 2 * (256 - 92));

    for (i = 0; i < n; i++) {
        ck_assert(enc[i] >= 33 && enc[i] <= 126 && enc[i] != '=');
        if (enc[i] == '+') {
            /* uppercase hex: a decoder following RFC 3461 reads it */
            ck_assert(strchr("0123456789ABCDEF", enc[i + 1]) != NULL);
            ck_assert(strchr("0123456789ABCDEF", enc[i + 2]) != NULL);
            i += 2;
        }
    }

    k = pst_xtext_decode(dec, enc, n);
    ck_assert_int_eq(k, 256);
    ck_assert_mem_eq(dec, in, 256);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_atoi                                                            */

typedef struct {
    tstr_t                       in;
    int64_t                      max;
    int64_t                      result;
} atoi_case_t;

static const atoi_case_t  atoi_cases[] = {
    { T("0"), INT64_MAX, 0 },
    { T("7"), INT64_MAX, 7 },
    { T("007"), INT64_MAX, 7 },
    { T("1234567890"), INT64_MAX, 1234567890 },
    { T("9223372036854775807"), INT64_MAX, INT64_MAX },
    { T("9223372036854775808"), INT64_MAX, -1 },
    { T("9223372036854775810"), INT64_MAX, -1 },
    { T("99999999999999999999"), INT64_MAX, -1 },
    { T("100"), 100, 100 },
    { T("101"), 100, -1 },
    { T("1024"), 1024, 1024 },
    { T("1025"), 1024, -1 },
    { T("65535"), 65535, 65535 },
    { T("65536"), 65535, -1 },
    { T("2147483647"), INT32_MAX, INT32_MAX },
    { T("2147483648"), INT32_MAX, -1 },
    /* limits below 10: the last digit alone may exceed the limit */
    { T("5"), 5, 5 },
    { T("7"), 5, -1 },
    { T("0"), 0, 0 },
    { T("1"), 0, -1 },
    { T("9"), 8, -1 },
    { T("10"), 9, -1 },
    { T(""), INT64_MAX, -1 },
    { T("-1"), INT64_MAX, -1 },
    { T("+1"), INT64_MAX, -1 },
    { T(" 1"), INT64_MAX, -1 },
    { T("1 "), INT64_MAX, -1 },
    { T("1a"), INT64_MAX, -1 },
    { T("0x10"), INT64_MAX, -1 },
    { T("1\0"), INT64_MAX, -1 },
};


START_TEST(test_atoi)
{
    const atoi_case_t  *c = &atoi_cases[_i];

    ck_assert_msg(pst_atoi((const u_char *) c->in.data, c->in.len, c->max)
                  == c->result, "pst_atoi(\"%.*s\", max %lld) != %lld",
                  (int) c->in.len, c->in.data, (long long) c->max,
                  (long long) c->result);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_parse_size                                                      */

typedef struct {
    tstr_t                       in;
    ssize_t                      result;
} size_case_t;

static const size_case_t  size_cases[] = {
    { T("0"), 0 },
    { T("1"), 1 },
    { T("1024"), 1024 },
    { T("1k"), 1024 },
    { T("1K"), 1024 },
    { T("512k"), 512 * 1024 },
    { T("10m"), 10 * 1024 * 1024 },
    { T("10M"), 10 * 1024 * 1024 },
    { T("2g"), 2LL * 1024 * 1024 * 1024 },
    { T("0k"), 0 },
    { T("9223372036854775807"), INT64_MAX },
    { T("9223372036854775808"), -1 },
    { T("8589934591g"), 8589934591LL * 1024 * 1024 * 1024 },
    { T("8589934592g"), -1 },
    { T("9007199254740992k"), -1 },
    { T("99999999999999999999999m"), -1 },
    { T(""), -1 },
    { T("k"), -1 },
    { T("m"), -1 },
    { T("-1"), -1 },
    { T("-1k"), -1 },
    { T("1.5m"), -1 },
    { T("1kb"), -1 },
    { T("1t"), -1 },
    { T("1 k"), -1 },
    { T(" 1k"), -1 },
    { T("1kk"), -1 },
    { T("0x10"), -1 },
};


START_TEST(test_parse_size)
{
    const size_case_t  *c = &size_cases[_i];
    pst_str_t           s;

    s.data = (u_char *) c->in.data;
    s.len = c->in.len;

    ck_assert_msg(pst_parse_size(&s) == c->result,
                  "pst_parse_size(\"%.*s\") = %zd, expected %zd",
                  (int) s.len, s.data, pst_parse_size(&s), c->result);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_parse_msec                                                      */

typedef struct {
    tstr_t                       in;
    int64_t                      result;
} msec_case_t;

#define SEC   1000LL
#define MIN   (60 * SEC)
#define HOUR  (60 * MIN)
#define DAY   (24 * HOUR)

static const msec_case_t  msec_cases[] = {
    { T("250ms"), 250 },
    { T("0ms"), 0 },
    { T("30s"), 30 * SEC },
    { T("30"), 30 * SEC },                /* bare number: seconds */
    { T("0"), 0 },
    { T("5m"), 5 * MIN },
    { T("1h"), HOUR },
    { T("1h30m"), HOUR + 30 * MIN },
    { T("1d"), DAY },
    { T("1d2h3m4s5ms"), DAY + 2 * HOUR + 3 * MIN + 4 * SEC + 5 },
    { T("2m30s"), 2 * MIN + 30 * SEC },
    { T("1m500ms"), MIN + 500 },
    { T("36500d"), 36500 * DAY },         /* the 100 year ceiling */
    { T("36501d"), -1 },
    { T("876001h"), -1 },
    { T("1000000000000d"), -1 },          /* must not overflow */
    { T("100000000000h"), -1 },
    { T("99999999999999999999"), -1 },
    { T("99999999999999999999ms"), -1 },
    { T(""), -1 },
    { T("ms"), -1 },
    { T("s"), -1 },
    { T("m5"), -1 },
    { T("5x"), -1 },
    { T("5M"), -1 },                      /* units are lowercase */
    { T("5S"), -1 },
    { T("5 m"), -1 },
    { T(" 5m"), -1 },
    { T("5m "), -1 },
    { T("-5"), -1 },
    { T("1.5s"), -1 },
    { T("5mm"), -1 },
    { T("5sms"), -1 },
    { T("5ms5"), 5 + 5 * SEC },
};


START_TEST(test_parse_msec)
{
    const msec_case_t  *c = &msec_cases[_i];
    pst_str_t           s;

    s.data = (u_char *) c->in.data;
    s.len = c->in.len;

    ck_assert_msg(pst_parse_msec(&s) == c->result,
                  "pst_parse_msec(\"%.*s\") = %lld, expected %lld",
                  (int) s.len, s.data, (long long) pst_parse_msec(&s),
                  (long long) c->result);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_sanitize                                                        */

typedef struct {
    tstr_t                       in;
    size_t                       size;
    const char                  *out;
} sanitize_case_t;

static const sanitize_case_t  sanitize_cases[] = {
    { T("hello"), 64, "hello" },
    { T("a\r\nb"), 64, "a??b" },
    { T("a\0b"), 64, "a?b" },
    { T("\x1b[31mred"), 64, "?[31mred" },
    { T("tab\there"), 64, "tab?here" },
    { T("del\x7f"), 64, "del?" },
    { T("caf\xc3\xa9"), 64, "caf\xc3\xa9" },     /* UTF-8 is kept */
    { T("abcdef"), 4, "abc" },                   /* truncated, NUL-ended */
    { T("abc"), 4, "abc" },
    { T("abcd"), 1, "" },
    { T(""), 8, "" },
};


START_TEST(test_sanitize)
{
    const sanitize_case_t  *c = &sanitize_cases[_i];
    u_char                  out[128];
    size_t                  n;

    memset(out, 'X', sizeof(out));
    n = pst_sanitize(out, c->size, (const u_char *) c->in.data, c->in.len);

    ck_assert_uint_eq(n, strlen(c->out));
    ck_assert_str_eq((char *) out, c->out);
    /* never a byte past size */
    ck_assert_int_eq(out[c->size], 'X');
}
END_TEST


static const sanitize_case_t  escape_cases[] = {
    { T("MAIL FROM:<a@b>"), 64, "MAIL FROM:<a@b>" },
    { T("DATA\r\nx\ty"), 64, "DATA\\r\\nx\\ty" },
    { T("a\\b"), 64, "a\\\\b" },
    { T("\0\x1b\x7f"), 64, "\\x00\\x1b\\x7f" },
    { T("caf\xc3\xa9"), 64, "caf\\xc3\\xa9" },
    { T("ab\r\n"), 5, "ab\\r" },            /* never half an escape */
    { T("ab\r\n"), 4, "ab" },
    { T("abc"), 1, "" },
    { T(""), 8, "" },
};


START_TEST(test_escape)
{
    const sanitize_case_t  *c = &escape_cases[_i];
    u_char                  out[128];
    size_t                  n;

    memset(out, 'X', sizeof(out));
    n = pst_escape(out, c->size, (const u_char *) c->in.data, c->in.len);

    ck_assert_uint_eq(n, strlen(c->out));
    ck_assert_str_eq((char *) out, c->out);
    ck_assert_int_eq(out[c->size], 'X');
}
END_TEST


START_TEST(test_sanitize_zero_size)
{
    u_char  out[4] = "XXX";

    ck_assert_uint_eq(pst_sanitize(out, 0, (u_char *) "abc", 3), 0);
    ck_assert_int_eq(out[0], 'X');
}
END_TEST


/* pst_name_check(): node_name and XP-NODE. */
typedef struct {
    tstr_t                       in;
    int                          rc;
} name_case_t;

static const name_case_t  name_cases[] = {
    { T("mx-a"), PST_OK },
    { T("Node_1.example.test"), PST_OK },
    { T("7"), PST_OK },
    { T("0123456789012345678901234567890123456789012345678901234567890123"),
      PST_OK },                                            /* 64 */
    { T("01234567890123456789012345678901234567890123456789012345678901234"),
      PST_ERROR },                                         /* 65 */
    { T(""), PST_ERROR },
    { T("-a"), PST_ERROR },
    { T(".a"), PST_ERROR },
    { T("_a"), PST_ERROR },
    { T("a b"), PST_ERROR },
    { T("a(b)"), PST_ERROR },
    { T("a;b"), PST_ERROR },
    { T("a\nb"), PST_ERROR },
    { T("a\0b"), PST_ERROR },
    { T("caf\xc3\xa9"), PST_ERROR },
    { T("a\"b"), PST_ERROR },
};


START_TEST(test_name_check)
{
    const name_case_t  *c = &name_cases[_i];

    ck_assert_msg(pst_name_check((const u_char *) c->in.data, c->in.len)
                  == c->rc, "\"%.*s\"", (int) c->in.len, c->in.data);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_rfc5322_date                                                    */

typedef struct {
    const char                  *tz;
    time_t                       t;
    const char                  *out;
} date_case_t;

static const date_case_t  date_cases[] = {
    { "UTC0", 0, "Thu, 1 Jan 1970 00:00:00 +0000" },
    { "UTC0", 1700000000, "Tue, 14 Nov 2023 22:13:20 +0000" },
    { "UTC0", 951782400, "Tue, 29 Feb 2000 00:00:00 +0000" },
    { "UTC0", 1719792000, "Mon, 1 Jul 2024 00:00:00 +0000" },
    { "UTC0", 1735689599, "Tue, 31 Dec 2024 23:59:59 +0000" },
    /* POSIX TZ strings: the sign is inverted (EST5 is UTC-5) */
    { "EST5", 1700000000, "Tue, 14 Nov 2023 17:13:20 -0500" },
    { "XXX-5:45", 1700000000, "Wed, 15 Nov 2023 03:58:20 +0545" },
    { "XXX3:30", 1700000000, "Tue, 14 Nov 2023 18:43:20 -0330" },
    { "XXX-14", 1700000000, "Wed, 15 Nov 2023 12:13:20 +1400" },
};


START_TEST(test_rfc5322_date)
{
    const date_case_t  *c = &date_cases[_i];
    u_char              buf[64];
    size_t              n;

    /* each test runs in its own process: changing TZ is local to it */
    setenv("TZ", c->tz, 1);
    tzset();

    n = pst_rfc5322_date(c->t, buf, sizeof(buf));
    ck_assert_str_eq((char *) buf, c->out);
    ck_assert_uint_eq(n, strlen(c->out));
}
END_TEST


START_TEST(test_rfc5322_date_months)
{
    static const char  *mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    static const char  *wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                   "Sat" };
    struct tm           tm;
    u_char              buf[64];
    char                expect[64];
    time_t              t;
    int                 m;

    setenv("TZ", "UTC0", 1);
    tzset();

    for (m = 0; m < 12; m++) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 2026 - 1900;
        tm.tm_mon = m;
        tm.tm_mday = 9 + m;
        tm.tm_hour = 7;
        tm.tm_min = 5;
        tm.tm_sec = 3;
        t = timegm(&tm);
        gmtime_r(&t, &tm);

        snprintf(expect, sizeof(expect), "%s, %d %s 2026 07:05:03 +0000",
                 wday[tm.tm_wday], 9 + m, mon[m]);
        pst_rfc5322_date(t, buf, sizeof(buf));
        ck_assert_str_eq((char *) buf, expect);
    }
}
END_TEST


START_TEST(test_rfc5322_date_truncated)
{
    u_char  buf[16];
    size_t  n;

    setenv("TZ", "UTC0", 1);
    tzset();

    memset(buf, 'X', sizeof(buf));
    n = pst_rfc5322_date(0, buf, 10);
    ck_assert_uint_eq(n, 9);
    ck_assert_str_eq((char *) buf, "Thu, 1 Ja");
    ck_assert_int_eq(buf[10], 'X');
}
END_TEST


/* ------------------------------------------------------------------ */
/* comparisons                                                         */

typedef struct {
    tstr_t                       a;
    tstr_t                       b;
    size_t                       n;
    int                          sign;     /* -1, 0, 1 */
} cmp_case_t;

static const cmp_case_t  strncasecmp_cases[] = {
    { T("HELO"), T("helo"), 4, 0 },
    { T("MaIl FrOm:"), T("mail from:"), 10, 0 },
    { T("abc"), T("abd"), 2, 0 },
    { T("abc"), T("abd"), 3, -1 },
    { T("abd"), T("ABC"), 3, 1 },
    { T("a"), T("b"), 1, -1 },
    { T("Z"), T("a"), 1, 1 },               /* 'z' > 'a' once folded */
    { T("x"), T("y"), 0, 0 },
    /* only A-Z fold: "|0x20" folding would equate these */
    { T("["), T("{"), 1, -1 },
    { T("@"), T("`"), 1, -1 },
    { T("^"), T("~"), 1, -1 },
    { T("\xc4"), T("\xe4"), 1, -1 },        /* Latin-1 is not folded */
    { T("a\0b"), T("A\0B"), 3, 0 },         /* NUL does not stop it */
    { T("a\0b"), T("A\0C"), 3, -1 },
};


static int
sign(int v)
{
    return (v > 0) - (v < 0);
}


START_TEST(test_strncasecmp)
{
    const cmp_case_t  *c = &strncasecmp_cases[_i];
    int                rc;

    rc = pst_strncasecmp((const u_char *) c->a.data,
                         (const u_char *) c->b.data, c->n);
    ck_assert_msg(sign(rc) == c->sign, "\"%s\" vs \"%s\" (%zu): %d",
                  c->a.data, c->b.data, c->n, rc);
}
END_TEST


static const cmp_case_t  memeq_cases[] = {
    { T("secret"), T("secret"), 6, 0 },
    { T("secret"), T("Secret"), 6, 1 },      /* first byte */
    { T("secret"), T("secreT"), 6, 1 },      /* last byte */
    { T("secret"), T("secreT"), 5, 0 },      /* only n bytes count */
    { T("a\0b"), T("a\0b"), 3, 0 },
    { T("a\0b"), T("a\0c"), 3, 1 },
    { T("\x80"), T("\x00"), 1, 1 },
    { T("x"), T("y"), 0, 0 },
};


START_TEST(test_memeq_const)
{
    const cmp_case_t  *c = &memeq_cases[_i];
    int                rc;

    rc = pst_memeq_const(c->a.data, c->b.data, c->n);
    ck_assert_int_eq(rc != 0, c->sign != 0);
}
END_TEST


Suite *
suite_string(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("string");

    tc = tcase_create("base64");
    tcase_add_loop_test(tc, test_base64_encode, 0, pst_nelems(b64_good));
    tcase_add_loop_test(tc, test_base64_decode, 0, pst_nelems(b64_good));
    tcase_add_loop_test(tc, test_base64_decode_bad, 0, pst_nelems(b64_bad));
    tcase_add_test(tc, test_base64_decode_short);
    tcase_add_test(tc, test_base64_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("xtext");
    tcase_add_loop_test(tc, test_xtext_encode, 0, pst_nelems(xtext_good));
    tcase_add_loop_test(tc, test_xtext_decode, 0, pst_nelems(xtext_good));
    tcase_add_loop_test(tc, test_xtext_decode_bad, 0, pst_nelems(xtext_bad));
    tcase_add_test(tc, test_xtext_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("numbers");
    tcase_add_loop_test(tc, test_atoi, 0, pst_nelems(atoi_cases));
    tcase_add_loop_test(tc, test_parse_size, 0, pst_nelems(size_cases));
    tcase_add_loop_test(tc, test_parse_msec, 0, pst_nelems(msec_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_loop_test(tc, test_sanitize, 0, pst_nelems(sanitize_cases));
    tcase_add_test(tc, test_sanitize_zero_size);
    tcase_add_loop_test(tc, test_escape, 0, pst_nelems(escape_cases));
    tcase_add_loop_test(tc, test_name_check, 0, pst_nelems(name_cases));
    tcase_add_loop_test(tc, test_rfc5322_date, 0, pst_nelems(date_cases));
    tcase_add_test(tc, test_rfc5322_date_months);
    tcase_add_test(tc, test_rfc5322_date_truncated);
    tcase_add_loop_test(tc, test_strncasecmp, 0,
                        pst_nelems(strncasecmp_cases));
    tcase_add_loop_test(tc, test_memeq_const, 0, pst_nelems(memeq_cases));
    suite_add_tcase(s, tc);

    return s;
}
