/*
 * check_smtp_parse.c -- pst_smtp_parse.c: command lines, MAIL/RCPT
 * paths and ESMTP parameters.
 *
 * Everything here is client input.  The tables pin the exact reply
 * (code and RFC 3463 enhanced code) for every refusal, because a wrong
 * class of reply (4xx for a syntax error, 5.1.3 for a sender) makes
 * clients retry or bounce the wrong way.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_envelope.h"


/* ------------------------------------------------------------------ */
/* pst_smtp_read_line                                                  */

typedef struct {
    int                          rc;       /* pst_smtp_line_e */
    const char                  *line;     /* for OK and BARE_LF */
} line_result_t;

typedef struct {
    const char                  *name;
    tstr_t                       in;
    size_t                       limit;
    int                          strict;
    line_result_t                out[6];   /* ends with LINE_AGAIN */
} line_case_t;

#define L_OK(s)        { PST_SMTP_LINE_OK, s }
#define L_AGAIN        { PST_SMTP_LINE_AGAIN, NULL }
#define L_LONG         { PST_SMTP_LINE_TOO_LONG, NULL }
#define L_BARE(s)      { PST_SMTP_LINE_BARE_LF, s }
#define L_BAD          { PST_SMTP_LINE_BAD_CHAR, NULL }

static const line_case_t  line_cases[] = {
    { "one line", T("NOOP\r\n"), 512, 0,
      { L_OK("NOOP"), L_AGAIN } },
    { "empty line", T("\r\n"), 512, 0,
      { L_OK(""), L_AGAIN } },
    { "incomplete", T("NOOP"), 512, 0,
      { L_AGAIN } },
    { "CR without LF yet", T("NOOP\r"), 512, 0,
      { L_AGAIN } },
    { "pipelined", T("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"
                     "DATA\r\n"), 512, 0,
      { L_OK("MAIL FROM:<a@b.example>"), L_OK("RCPT TO:<c@d.example>"),
        L_OK("DATA"), L_AGAIN } },
    { "pipelined, last incomplete", T("RSET\r\nNOOP\r\nQU"), 512, 0,
      { L_OK("RSET"), L_OK("NOOP"), L_AGAIN } },
    { "bare LF lenient", T("NOOP\nRSET\r\n"), 512, 0,
      { L_OK("NOOP"), L_OK("RSET"), L_AGAIN } },
    { "bare LF strict", T("NOOP\nRSET\r\n"), 512, 1,
      { L_BARE("NOOP"), L_OK("RSET"), L_AGAIN } },
    { "empty bare LF strict", T("\nNOOP\r\n"), 512, 1,
      { L_BARE(""), L_OK("NOOP"), L_AGAIN } },
    { "NUL inside", T("NO\0OP\r\nRSET\r\n"), 512, 0,
      { L_BAD, L_OK("RSET"), L_AGAIN } },
    { "bare CR inside", T("NO\rOP\r\nRSET\r\n"), 512, 0,
      { L_BAD, L_OK("RSET"), L_AGAIN } },
    { "CR CR LF", T("NOOP\r\r\nRSET\r\n"), 512, 1,
      { L_BAD, L_OK("RSET"), L_AGAIN } },
    { "bare CR strict", T("NO\rOP\r\n"), 512, 1,
      { L_BAD, L_AGAIN } },
    /* limit counts the whole line with CRLF: 14 + 2 = 16 fits */
    { "at the limit", T("AAAAAAAAAAAAAA\r\nNOOP\r\n"), 16, 0,
      { L_OK("AAAAAAAAAAAAAA"), L_OK("NOOP"), L_AGAIN } },
    { "one over the limit", T("AAAAAAAAAAAAAAA\r\nNOOP\r\n"), 16, 0,
      { L_LONG, L_OK("NOOP"), L_AGAIN } },
    { "far over the limit", T("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
                              "NOOP\r\n"), 16, 0,
      { L_LONG, L_OK("NOOP"), L_AGAIN } },
    { "over the limit, no LF yet", T("AAAAAAAAAAAAAAAAAAAA"), 16, 0,
      { L_AGAIN } },
};


/* Feed in with chunk-sized reads, the way the session does: append what
 * "arrived", call the parser until it wants more, compact. */
static void
run_lines(const line_case_t *c, size_t chunk)
{
    const line_result_t  *want;
    pst_smtp_line_e       rc;
    pst_buf_t            *b;
    pst_str_t             line;
    unsigned              skipping;
    size_t                off, n, k;

    b = pst_buf_alloc(4096);
    skipping = 0;
    want = c->out;
    k = 0;

    for (off = 0; off < c->in.len || off == 0; off += n) {
        n = pst_min(chunk, c->in.len - off);
        ck_assert_int_eq(pst_buf_append(b, c->in.data + off, n, 4096),
                         PST_OK);

        for ( ;; ) {
            rc = pst_smtp_read_line(b, c->limit, c->strict, &skipping,
                                    &line);
            if (rc == PST_SMTP_LINE_AGAIN) {
                break;
            }

            ck_assert_msg(want[k].rc == (int) rc,
                          "%s, chunk %zu, result %zu: %d, expected %d",
                          c->name, chunk, k, rc, want[k].rc);
            if (want[k].line != NULL) {
                ck_assert_uint_eq(line.len, strlen(want[k].line));
                ck_assert_mem_eq(line.data, want[k].line, line.len);
            }
            k++;
        }

        pst_buf_compact(b);
        if (n == 0) {
            break;
        }
    }

    ck_assert_msg(want[k].rc == PST_SMTP_LINE_AGAIN,
                  "%s, chunk %zu: result %zu missing", c->name, chunk, k);

    pst_buf_destroy(b);
}


START_TEST(test_read_line)
{
    const line_case_t  *c = &line_cases[_i];
    size_t              chunk;

    /* all at once, byte by byte, and every size in between: the result
     * must not depend on how the input was split into reads */
    for (chunk = 1; chunk <= c->in.len + 1; chunk++) {
        run_lines(c, chunk);
    }
}
END_TEST


START_TEST(test_read_line_long_across_reads)
{
    pst_smtp_line_e  rc;
    pst_buf_t       *b;
    pst_str_t        line;
    unsigned         skipping = 0;
    int              i, too_long = 0;

    b = pst_buf_alloc(64);

    /* 100 reads of 10 bytes without a LF: the buffer must not fill up
     * (the excess is dropped) and nothing is reported yet */
    for (i = 0; i < 100; i++) {
        ck_assert_int_eq(pst_buf_append(b, "AAAAAAAAAA", 10, 64), PST_OK);
        rc = pst_smtp_read_line(b, 32, 0, &skipping, &line);
        ck_assert_int_eq(rc, PST_SMTP_LINE_AGAIN);
        pst_buf_compact(b);
        ck_assert_uint_le(pst_buf_size(b), 32);
    }
    ck_assert_uint_eq(skipping, 1);

    /* the LF arrives at the start of a read, with the next command */
    ck_assert_int_eq(pst_buf_append(b, "\nNOOP\r\n", 7, 64), PST_OK);
    for ( ;; ) {
        rc = pst_smtp_read_line(b, 32, 0, &skipping, &line);
        if (rc == PST_SMTP_LINE_AGAIN) {
            break;
        }
        if (rc == PST_SMTP_LINE_TOO_LONG) {
            too_long++;
            continue;
        }
        ck_assert_int_eq(rc, PST_SMTP_LINE_OK);
        ck_assert_uint_eq(line.len, 4);
        ck_assert_mem_eq(line.data, "NOOP", 4);
        ck_assert_int_eq(too_long, 1);
        too_long += 10;
    }

    /* TOO_LONG exactly once, then the next command intact */
    ck_assert_int_eq(too_long, 11);
    ck_assert_uint_eq(skipping, 0);

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_read_line_skip_ends_at_lf_only)
{
    pst_smtp_line_e  rc;
    pst_buf_t       *b;
    pst_str_t        line;
    unsigned         skipping = 0;

    b = pst_buf_alloc(64);

    ck_assert_int_eq(pst_buf_append(b, "AAAAAAAAAAAAAAAAAAAA", 20, 64), PST_OK);
    ck_assert_int_eq(pst_smtp_read_line(b, 16, 0, &skipping, &line),
                     PST_SMTP_LINE_AGAIN);
    pst_buf_compact(b);

    /* a CR alone does not end the skipped line, even a CR and "." */
    ck_assert_int_eq(pst_buf_append(b, "\r.\rQUIT\r", 8, 64), PST_OK);
    ck_assert_int_eq(pst_smtp_read_line(b, 16, 0, &skipping, &line),
                     PST_SMTP_LINE_AGAIN);
    pst_buf_compact(b);

    ck_assert_int_eq(pst_buf_append(b, "\nRSET\r\n", 7, 64), PST_OK);
    rc = pst_smtp_read_line(b, 16, 0, &skipping, &line);
    ck_assert_int_eq(rc, PST_SMTP_LINE_TOO_LONG);
    rc = pst_smtp_read_line(b, 16, 0, &skipping, &line);
    ck_assert_int_eq(rc, PST_SMTP_LINE_OK);
    ck_assert_uint_eq(line.len, 4);
    ck_assert_mem_eq(line.data, "RSET", 4);

    pst_buf_destroy(b);
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_smtp_parse_path                                                 */

#define F_NULL         0x01
#define F_UTF8         0x02
#define F_ROUTE        0x04
#define F_POSTMASTER   0x08
#define F_LITERAL      0x10

#define MAIL           1
#define RCPT           0

typedef struct {
    const char                  *name;
    tstr_t                       in;
    int                          reverse;
    int                          utf8_ok;
    int                          code;     /* 0: PST_OK */
    const char                  *ecode;
    const char                  *addr;     /* or the error text */
    const char                  *local;
    const char                  *domain;
    unsigned                     flags;
    const char                  *rest;     /* what follows '>' */
} path_case_t;

#define OK(addr, local, domain, flags, rest)                                 \
    0, NULL, addr, local, domain, flags, rest
#define SENDER_SYNTAX                                                        \
    501, "5.1.7", "Bad sender address syntax", NULL, NULL, 0, NULL
#define RCPT_SYNTAX                                                          \
    501, "5.1.3", "Bad recipient address syntax", NULL, NULL, 0, NULL
#define ERR(code, ecode, text)                                               \
    code, ecode, text, NULL, NULL, 0, NULL

static const path_case_t  path_cases[] = {

    /* dot-strings */
    { "plain", T("<user@example.com>"), RCPT, 0,
      OK("user@example.com", "user", "example.com", 0, "") },
    { "plain sender", T("<user@example.com>"), MAIL, 0,
      OK("user@example.com", "user", "example.com", 0, "") },
    { "domain lowercased, local part kept",
      T("<John.Smith+Tag@Example.COM>"), RCPT, 0,
      OK("John.Smith+Tag@example.com", "John.Smith+Tag", "example.com", 0,
         "") },
    { "every atext special", T("<!#$%&'*+-/=?^_`{|}~@x.example>"), RCPT, 0,
      OK("!#$%&'*+-/=?^_`{|}~@x.example", "!#$%&'*+-/=?^_`{|}~",
         "x.example", 0, "") },
    { "single-label domain", T("<root@localhost>"), RCPT, 0,
      OK("root@localhost", "root", "localhost", 0, "") },
    { "digits and inner hyphens", T("<a@1-2.3com.example>"), RCPT, 0,
      OK("a@1-2.3com.example", "a", "1-2.3com.example", 0, "") },
    { "parameters follow", T("<a@b.example> SIZE=10"), MAIL, 0,
      OK("a@b.example", "a", "b.example", 0, " SIZE=10") },
    /* what follows '>' is the caller's to check (the session refuses
     * anything but a space) */
    { "junk after '>' left to the caller", T("<a@b.example>junk"), RCPT, 0,
      OK("a@b.example", "a", "b.example", 0, "junk") },

    { "empty atom first", T("<.user@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "empty atom last", T("<user.@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "empty atom inside", T("<us..er@x.example>"), MAIL, 0, SENDER_SYNTAX },
    { "space in local part", T("<us er@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "comma in local part", T("<us,er@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "two @", T("<a@b@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "backslash outside quotes", T("<a\\b@x.example>"), RCPT, 0,
      RCPT_SYNTAX },

    /* quoted local parts */
    { "quoted with space", T("<\"john doe\"@example.com>"), RCPT, 0,
      OK("\"john doe\"@example.com", "\"john doe\"", "example.com", 0,
         "") },
    { "quoted with escaped quote", T("<\"a\\\"b\"@x.example>"), RCPT, 0,
      OK("\"a\\\"b\"@x.example", "\"a\\\"b\"", "x.example", 0, "") },
    { "quoted with escaped backslash", T("<\"a\\\\b\"@x.example>"), RCPT, 0,
      OK("\"a\\\\b\"@x.example", "\"a\\\\b\"", "x.example", 0, "") },
    { "quoted specials", T("<\"a@b,c:d<e>\"@x.example>"), MAIL, 0,
      OK("\"a@b,c:d<e>\"@x.example", "\"a@b,c:d<e>\"", "x.example", 0,
         "") },
    { "quoted empty", T("<\"\"@x.example>"), RCPT, 0,
      OK("\"\"@x.example", "\"\"", "x.example", 0, "") },
    { "unterminated quote", T("<\"abc@x.example>"), RCPT, 0, RCPT_SYNTAX },
    { "control in quotes", T("<\"a\x01z\"@x.example>"), RCPT, 0,
      RCPT_SYNTAX },
    { "escaped control", T("<\"a\\\x01z\"@x.example>"), RCPT, 0,
      RCPT_SYNTAX },
    { "escape at the end", T("<\"a\\"), RCPT, 0, RCPT_SYNTAX },
    { "text after the quotes", T("<\"a\"b@x.example>"), RCPT, 0,
      RCPT_SYNTAX },
    { "quoted then dot", T("<\"a\".b@x.example>"), RCPT, 0, RCPT_SYNTAX },

    /* source routes: accepted, stripped, flagged */
    { "source route", T("<@a.example,@b.example:user@c.example>"), RCPT, 0,
      OK("user@c.example", "user", "c.example", F_ROUTE, "") },
    { "one-hop source route", T("<@a.example:user@c.example>"), MAIL, 0,
      OK("user@c.example", "user", "c.example", F_ROUTE, "") },
    { "source route without ':'", T("<@a.example,user@c.example>"), RCPT,
      0, RCPT_SYNTAX },
    { "source route with a space", T("<@a.example, @b:user@c.example>"),
      RCPT, 0, RCPT_SYNTAX },
    { "source route, then <>", T("<@a.example:>"), MAIL, 0,
      SENDER_SYNTAX },
    { "source route, no Postmaster", T("<@a.example:Postmaster>"), RCPT, 0,
      RCPT_SYNTAX },

    /* address literals */
    { "IPv4 literal", T("<user@[192.0.2.1]>"), RCPT, 0,
      OK("user@[192.0.2.1]", "user", "[192.0.2.1]", F_LITERAL, "") },
    { "IPv6 literal", T("<user@[IPv6:2001:db8::1]>"), RCPT, 0,
      OK("user@[ipv6:2001:db8::1]", "user", "[ipv6:2001:db8::1]",
         F_LITERAL, "") },
    { "IPv6 loopback literal", T("<user@[IPv6:::1]>"), MAIL, 0,
      OK("user@[ipv6:::1]", "user", "[ipv6:::1]", F_LITERAL, "") },
    { "IPv6 with IPv4 tail", T("<u@[IPv6:::ffff:192.0.2.1]>"), RCPT, 0,
      OK("u@[ipv6:::ffff:192.0.2.1]", "u", "[ipv6:::ffff:192.0.2.1]",
         F_LITERAL, "") },
    { "IPv4 octet over 255", T("<user@[192.0.2.256]>"), RCPT, 0,
      RCPT_SYNTAX },
    { "IPv4 three octets", T("<user@[192.0.2]>"), RCPT, 0, RCPT_SYNTAX },
    { "IPv4 five octets", T("<user@[192.0.2.1.5]>"), RCPT, 0, RCPT_SYNTAX },
    { "IPv4 with spaces", T("<user@[192.0.2. 1]>"), RCPT, 0, RCPT_SYNTAX },
    { "IPv6 without the tag", T("<user@[::1]>"), RCPT, 0, RCPT_SYNTAX },
    { "IPv6 tag with IPv4", T("<user@[IPv6:192.0.2.1]>"), RCPT, 0,
      RCPT_SYNTAX },
    { "IPv6 bad hex", T("<user@[IPv6:2001:db8::g]>"), RCPT, 0,
      RCPT_SYNTAX },
    { "IPv6 two ::", T("<user@[IPv6:1::2::3]>"), MAIL, 0, SENDER_SYNTAX },
    { "IPv6 tag only", T("<user@[IPv6:]>"), RCPT, 0, RCPT_SYNTAX },
    { "general literal", T("<user@[x400:abc]>"), RCPT, 0, RCPT_SYNTAX },
    { "empty literal", T("<user@[]>"), RCPT, 0, RCPT_SYNTAX },
    { "unclosed literal", T("<user@[192.0.2.1>"), RCPT, 0, RCPT_SYNTAX },
    { "text after literal", T("<user@[192.0.2.1]x>"), RCPT, 0,
      RCPT_SYNTAX },
    { "literal too long", T("<user@[IPv6:0000:0000:0000:0000:0000:0000:"
                            "0000:0000:0000:0000:0000:0000:0000:0000]>"),
      RCPT, 0, RCPT_SYNTAX },

    /* UTF-8 (RFC 6531) */
    { "UTF-8 local part",
      T("<j\xc3\xbcrgen@example.de>"), RCPT, 1,
      OK("j\xc3\xbcrgen@example.de", "j\xc3\xbcrgen", "example.de", F_UTF8,
         "") },
    { "U-label domain", T("<info@b\xc3\xbc" "cher.de>"), RCPT, 1,
      OK("info@b\xc3\xbc" "cher.de", "info", "b\xc3\xbc" "cher.de", F_UTF8,
         "") },
    { "Greek both sides",
      T("<\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@"
        "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3"
        "\xce\xbc\xce\xb1.\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae>"),
      MAIL, 1,
      OK("\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae@"
         "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3"
         "\xce\xbc\xce\xb1.\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae",
         "\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae",
         "\xcf\x80\xce\xb1\xcf\x81\xce\xac\xce\xb4\xce\xb5\xce\xb9\xce\xb3"
         "\xce\xbc\xce\xb1.\xce\xb4\xce\xbf\xce\xba\xce\xb9\xce\xbc\xce\xae",
         F_UTF8, "") },
    { "3-byte sequence", T("<\xe2\x82\xac@x.example>"), RCPT, 1,
      OK("\xe2\x82\xac@x.example", "\xe2\x82\xac", "x.example", F_UTF8,
         "") },
    { "4-byte sequence", T("<\xf0\x9f\x98\x80@x.example>"), RCPT, 1,
      OK("\xf0\x9f\x98\x80@x.example", "\xf0\x9f\x98\x80", "x.example",
         F_UTF8, "") },
    { "highest code point", T("<\xf4\x8f\xbf\xbf@x.example>"), RCPT, 1,
      OK("\xf4\x8f\xbf\xbf@x.example", "\xf4\x8f\xbf\xbf", "x.example",
         F_UTF8, "") },
    { "UTF-8 in quotes", T("<\"j\xc3\xbc r\"@x.example>"), RCPT, 1,
      OK("\"j\xc3\xbc r\"@x.example", "\"j\xc3\xbc r\"", "x.example",
         F_UTF8, "") },

    /* valid UTF-8 without SMTPUTF8: the RFC 6531 reply */
    { "UTF-8 local part, utf8 off", T("<j\xc3\xbcrgen@example.de>"), RCPT,
      0, ERR(553, "5.6.7",
             "Non-ASCII address needs the SMTPUTF8 parameter") },
    { "U-label, utf8 off", T("<info@b\xc3\xbc" "cher.de>"), MAIL, 0,
      ERR(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter") },
    { "UTF-8 in quotes, utf8 off", T("<\"\xc3\xbc\"@x.example>"), RCPT, 0,
      ERR(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter") },

    /* invalid UTF-8 is a syntax error whatever utf8_ok says */
    { "Latin-1 byte", T("<j\xfcrgen@example.de>"), RCPT, 1, RCPT_SYNTAX },
    { "Latin-1 byte, utf8 off", T("<j\xfcrgen@example.de>"), RCPT, 0,
      RCPT_SYNTAX },
    { "lone continuation byte", T("<a\x80@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "bad continuation", T("<\xc3(@x.example>"), RCPT, 1, RCPT_SYNTAX },
    { "truncated 3-byte", T("<\xe2\x82@x.example>"), RCPT, 1, RCPT_SYNTAX },
    { "truncated at the end", T("<a@x.example\xe2\x82"), RCPT, 1,
      RCPT_SYNTAX },
    { "overlong 2-byte C0", T("<\xc0\xaf@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "overlong 2-byte C1", T("<\xc1\xbf@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "overlong 3-byte", T("<\xe0\x80\xaf@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "overlong 4-byte", T("<\xf0\x80\x80\xaf@x.example>"), MAIL, 1,
      SENDER_SYNTAX },
    { "surrogate D800", T("<\xed\xa0\x80@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "surrogate DFFF", T("<\xed\xbf\xbf@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "above U+10FFFF", T("<\xf4\x90\x80\x80@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "F5 lead byte", T("<\xf5\x80\x80\x80@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "FF byte", T("<\xff@x.example>"), RCPT, 1, RCPT_SYNTAX },
    { "bad UTF-8 in quotes", T("<\"\xc3\"@x.example>"), RCPT, 1,
      RCPT_SYNTAX },
    { "Latin-1 domain", T("<info@b\xfc" "cher.de>"), RCPT, 1, RCPT_SYNTAX },
    { "overlong in domain", T("<info@\xc1\x81.de>"), RCPT, 1, RCPT_SYNTAX },
    { "surrogate in domain", T("<info@\xed\xa0\x80.de>"), MAIL, 1,
      SENDER_SYNTAX },

    /* the special paths */
    { "<Postmaster> as recipient", T("<Postmaster>"), RCPT, 0,
      OK("Postmaster", "Postmaster", "", F_POSTMASTER, "") },
    { "<postmaster> any case", T("<pOSTMASTER>"), RCPT, 0,
      OK("pOSTMASTER", "pOSTMASTER", "", F_POSTMASTER, "") },
    { "<Postmaster> as sender", T("<Postmaster>"), MAIL, 0, SENDER_SYNTAX },
    { "<\"Postmaster\"> quoted", T("<\"Postmaster\">"), RCPT, 0,
      RCPT_SYNTAX },
    { "<Postmasters>", T("<Postmasters>"), RCPT, 0, RCPT_SYNTAX },
    { "null sender", T("<>"), MAIL, 0, OK("", "", "", F_NULL, "") },
    { "null sender, parameters", T("<> BODY=8BITMIME"), MAIL, 0,
      OK("", "", "", F_NULL, " BODY=8BITMIME") },
    { "null recipient", T("<>"), RCPT, 0, RCPT_SYNTAX },
    { "local part only", T("<user>"), RCPT, 0, RCPT_SYNTAX },
    { "local part only, sender", T("<user>"), MAIL, 0, SENDER_SYNTAX },

    /* brackets */
    { "no brackets", T("user@example.com"), RCPT, 0, RCPT_SYNTAX },
    { "no brackets, sender", T("user@example.com"), MAIL, 0,
      SENDER_SYNTAX },
    { "no closing bracket", T("<user@example.com"), RCPT, 0, RCPT_SYNTAX },
    { "no opening bracket", T("user@example.com>"), RCPT, 0, RCPT_SYNTAX },
    { "space before '>'", T("<user@example.com >"), RCPT, 0, RCPT_SYNTAX },
    { "space after '<'", T("< user@example.com>"), RCPT, 0, RCPT_SYNTAX },
    { "double brackets", T("<<user@example.com>>"), RCPT, 0, RCPT_SYNTAX },
    { "empty input", T(""), MAIL, 0, SENDER_SYNTAX },
    { "only '<'", T("<"), RCPT, 0, RCPT_SYNTAX },
    { "'<' and '@'", T("<@"), RCPT, 0, RCPT_SYNTAX },
    { "display name", T("John <user@example.com>"), RCPT, 0, RCPT_SYNTAX },

    /* domains */
    { "empty domain", T("<user@>"), RCPT, 0, RCPT_SYNTAX },
    { "no local part", T("<@example.com>"), RCPT, 0, RCPT_SYNTAX },
    { "trailing dot", T("<user@example.com.>"), RCPT, 0, RCPT_SYNTAX },
    { "leading dot", T("<user@.example.com>"), RCPT, 0, RCPT_SYNTAX },
    { "empty label", T("<user@example..com>"), MAIL, 0, SENDER_SYNTAX },
    { "only a dot", T("<user@.>"), RCPT, 0, RCPT_SYNTAX },
    { "leading hyphen", T("<user@-example.com>"), RCPT, 0, RCPT_SYNTAX },
    { "trailing hyphen", T("<user@example-.com>"), RCPT, 0, RCPT_SYNTAX },
    { "hyphen-only label", T("<user@a.-.com>"), RCPT, 0, RCPT_SYNTAX },
    { "last label trailing hyphen", T("<user@example.com->"), RCPT, 0,
      RCPT_SYNTAX },
    { "underscore", T("<user@ex_ample.com>"), RCPT, 0, RCPT_SYNTAX },
    { "space in domain", T("<user@exa mple.com>"), RCPT, 0, RCPT_SYNTAX },
};


static void
check_part(const char *name, const char *what, const pst_str_t *got,
    const char *want)
{
    ck_assert_msg(got->len == strlen(want)
                  && (got->len == 0
                      || memcmp(got->data, want, got->len) == 0),
                  "%s: %s \"%.*s\", expected \"%s\"", name, what,
                  (int) got->len, got->data ? (char *) got->data : "",
                  want);
}


static void
check_path(const path_case_t *c, const u_char *in, size_t len)
{
    pst_smtp_error_t  err;
    pst_smtp_path_t   path;
    pst_pool_t       *pool;
    unsigned          flags;
    u_char           *p, *buf;
    int               rc;

    /* a private copy: the parser must not read past the end */
    buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, in, len);

    pool = pst_create_pool(1024);
    memset(&err, 0, sizeof(err));
    p = buf;

    rc = pst_smtp_parse_path(pool, &p, buf + len, c->reverse, c->utf8_ok,
                             &path, &err);

    if (c->code != 0) {
        ck_assert_msg(rc == PST_ERROR, "%s: accepted", c->name);
        ck_assert_msg(err.code == c->code && strcmp(err.ecode, c->ecode) == 0,
                      "%s: %d %s, expected %d %s", c->name, err.code,
                      err.ecode, c->code, c->ecode);
        ck_assert_str_eq(err.text, c->addr);
        goto done;
    }

    ck_assert_msg(rc == PST_OK, "%s: refused with %d %s %s", c->name,
                  err.code, err.ecode, err.text);

    check_part(c->name, "address", &path.addr, c->addr);
    /* handed to hooks as a C string too */
    ck_assert_int_eq(path.addr.data[path.addr.len], '\0');

    if (!path.null) {
        check_part(c->name, "local part", &path.local, c->local);
        check_part(c->name, "domain", &path.domain, c->domain);
    }

    flags = (path.null ? F_NULL : 0) | (path.utf8 ? F_UTF8 : 0)
            | (path.route ? F_ROUTE : 0)
            | (path.postmaster ? F_POSTMASTER : 0)
            | (path.ip_literal ? F_LITERAL : 0);
    ck_assert_msg(flags == c->flags, "%s: flags 0x%x, expected 0x%x",
                  c->name, flags, c->flags);

    /* *pos is just past '>' */
    ck_assert_uint_eq((size_t) (buf + len - p), strlen(c->rest));
    ck_assert(memcmp(p, c->rest, strlen(c->rest)) == 0);

done:

    pst_destroy_pool(pool);
    free(buf);
}


START_TEST(test_parse_path)
{
    const path_case_t  *c = &path_cases[_i];

    check_path(c, (const u_char *) c->in.data, c->in.len);
}
END_TEST


/* Length limits, built at run time: RFC 5321 4.5.3.1.1 and 4.5.3.1.3 */

static void
make_path(char *out, size_t local, size_t domain)
{
    size_t  i, n;

    n = 0;
    out[n++] = '<';
    for (i = 0; i < local; i++) {
        out[n++] = 'l';
    }
    out[n++] = '@';
    /* labels of 63 separated by dots; no label may end up empty */
    for (i = 0; i < domain; i++) {
        out[n++] = (i % 64 == 63 && i + 1 < domain) ? '.' : 'd';
    }
    out[n++] = '>';
    out[n] = '\0';
}


typedef struct {
    const char                  *name;
    size_t                       local;
    size_t                       domain;
    int                          code;
    const char                  *text;
} length_case_t;

static const length_case_t  length_cases[] = {
    { "label of 63", 1, 63, 0, NULL },
    { "label of 64", 1, 64, 501, "Bad recipient address syntax" },
    { "local part of 64", 64, 10, 0, NULL },
    { "local part of 65", 65, 10, 501, "Local part too long" },
    { "local part of 300", 300, 10, 501, "Local part too long" },
    /* "<" 64 "@" 189 ">" is 256 */
    { "path of 256", 64, 189, 0, NULL },
    { "path of 257", 64, 190, 501, "Path too long" },
    { "domain of 255", 1, 255, 501, "Path too long" },
    /* a domain over 255 is a bad domain before it is a long path */
    { "domain of 256", 1, 256, 501, "Bad recipient address syntax" },
};


/* what pst_call_rcpt_local()/_domain() and pst_tx_sender_local()/
 * _domain() give a plugin: the quoting undone (RFC 5321 4.1.2), so that
 * a quoted "noreply" cannot slip past a check for noreply; the domain
 * after the last '@'; every part NUL-terminated */
START_TEST(test_addr_split)
{
    static const struct { const char *in, *local, *domain; } t[] = {
        { "noreply@example.test", "noreply", "example.test" },
        { "\"noreply\"@example.test", "noreply", "example.test" },
        { "\"no\\reply\"@example.test", "noreply", "example.test" },
        { "\"no reply\"@x.test", "no reply", "x.test" },
        { "\"a\\\"b\"@x.test", "a\"b", "x.test" },
        { "\"a\\\\b\"@x.test", "a\\b", "x.test" },
        { "\"a@b\"@x.test", "a@b", "x.test" },
        { "\"\"@x.test", "", "x.test" },
        { "No.Reply@[192.0.2.1]", "No.Reply", "[192.0.2.1]" },
        { "Postmaster", "Postmaster", "" },
        { "", "", "" },
    };
    pst_pool_t  *pool = pst_create_pool(1024);
    pst_str_t    in, local, domain;
    size_t       i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        in.data = (u_char *) t[i].in;
        in.len = strlen(t[i].in);
        ck_assert_int_eq(pst_smtp_addr_split(pool, &in, &local, &domain),
                         PST_OK);
        ck_assert_msg(local.len == strlen(t[i].local)
                      && strcmp((char *) local.data, t[i].local) == 0,
                      "%s: local %.*s", t[i].in, (int) local.len,
                      local.data);
        ck_assert_msg(domain.len == strlen(t[i].domain)
                      && strcmp((char *) domain.data, t[i].domain) == 0,
                      "%s: domain %.*s", t[i].in, (int) domain.len,
                      domain.data);
    }
    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_parse_path_lengths)
{
    const length_case_t  *c = &length_cases[_i];
    pst_smtp_error_t      err;
    pst_smtp_path_t       path;
    pst_pool_t           *pool;
    char                  in[1024];
    u_char               *p;
    int                   rc;

    make_path(in, c->local, c->domain);
    pool = pst_create_pool(1024);
    memset(&err, 0, sizeof(err));
    p = (u_char *) in;

    rc = pst_smtp_parse_path(pool, &p, (u_char *) in + strlen(in), 0, 0,
                             &path, &err);

    if (c->code == 0) {
        ck_assert_msg(rc == PST_OK, "%s: %d %s", c->name, err.code,
                      err.text);
        ck_assert_uint_eq(path.local.len, c->local);
        ck_assert_uint_eq(path.domain.len, c->domain);
    } else {
        ck_assert_int_eq(rc, PST_ERROR);
        ck_assert_int_eq(err.code, c->code);
        ck_assert_str_eq(err.ecode, "5.1.3");
        ck_assert_str_eq(err.text, c->text);
    }

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_parse_path_truncations)
{
    const char  *in = "<@r.example:\"a b\"@[IPv6:2001:db8::1]>";
    path_case_t  c;
    size_t       n, len;

    /* every proper prefix of a valid path is an error, never a read
     * past the end (ASan) or a success */
    memset(&c, 0, sizeof(c));
    c.code = 501;
    c.ecode = "5.1.3";
    c.addr = "Bad recipient address syntax";
    len = strlen(in);

    for (n = 0; n < len; n++) {
        c.name = "prefix";
        check_path(&c, (const u_char *) in, n);
    }
}
END_TEST


/* ------------------------------------------------------------------ */
/* pst_smtp_parse_params                                               */

typedef struct {
    const char                  *name;
    tstr_t                       in;
    int                          mail;
    int                          code;     /* 0: PST_OK */
    const char                  *ecode;
    const char                  *text;
    /* expected values on success */
    int64_t                      size;
    pst_body_e                   body;
    unsigned                     smtputf8;
    pst_ret_e                    ret;
    const char                  *envid;
    const char                  *auth;
    unsigned                     notify;
    const char                  *orcpt_type;
    const char                  *orcpt;
    unsigned                     requiretls;
} param_case_t;

#define P_ERR(code, text)        code, "5.5.4", text
#define P_OK                     0, NULL, NULL
#define INVALID                  P_ERR(501, "Invalid parameter syntax")
#define DUPLICATE                P_ERR(501, "Duplicate parameter")
#define UNSUPPORTED              P_ERR(555, "Unsupported parameter")
#define BODY_UNSUPPORTED         P_ERR(555, "Unsupported BODY type")

#define NOTIFY_SFD  (PST_NOTIFY_SUCCESS | PST_NOTIFY_FAILURE | PST_NOTIFY_DELAY)

#define X10   "xxxxxxxxxx"
#define X90   X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X100  X90 X10
#define X500  X100 X100 X100 X100 X100

static const param_case_t  param_cases[] = {

    { "none", T(""), MAIL, P_OK, -1 },
    { "only spaces", T("   "), RCPT, P_OK, -1 },

    /* SIZE (RFC 1870) */
    { "SIZE", T(" SIZE=1000"), MAIL, P_OK, 1000 },
    { "SIZE=0", T(" SIZE=0"), MAIL, P_OK, 0 },
    { "size lowercase", T(" size=10"), MAIL, P_OK, 10 },
    { "SIZE largest", T(" SIZE=9223372036854775807"), MAIL, P_OK, INT64_MAX },
    /* RFC 1870: 1*20DIGIT is valid; beyond int64 it is "too big" */
    { "SIZE past int64", T(" SIZE=9223372036854775808"), MAIL, P_OK,
      INT64_MAX },
    { "SIZE 20 digits", T(" SIZE=99999999999999999999"), MAIL, P_OK,
      INT64_MAX },
    { "SIZE 20 digits, zeros", T(" SIZE=00000000000000000001"), MAIL, P_OK,
      1 },
    { "SIZE 20 characters, not digits", T(" SIZE=9999999999999999999x"),
      MAIL, INVALID },
    { "SIZE 21 digits", T(" SIZE=100000000000000000000"), MAIL, INVALID },
    { "SIZE without value", T(" SIZE"), MAIL, INVALID },
    { "SIZE empty value", T(" SIZE="), MAIL, INVALID },
    { "SIZE not a number", T(" SIZE=ten"), MAIL, INVALID },
    { "SIZE negative", T(" SIZE=-1"), MAIL, INVALID },
    { "SIZE with unit", T(" SIZE=10k"), MAIL, INVALID },
    { "SIZE twice", T(" SIZE=10 SIZE=10"), MAIL, DUPLICATE },
    { "SIZE twice, any case", T(" SIZE=10 size=20"), MAIL, DUPLICATE },
    { "SIZE on RCPT", T(" SIZE=10"), RCPT, UNSUPPORTED },

    /* BODY (RFC 6152) */
    { "BODY=7BIT", T(" BODY=7BIT"), MAIL, P_OK, -1, PST_BODY_7BIT },
    { "BODY=8BITMIME", T(" BODY=8BITMIME"), MAIL, P_OK, -1,
      PST_BODY_8BITMIME },
    { "body=8bitmime", T(" body=8bitmime"), MAIL, P_OK, -1,
      PST_BODY_8BITMIME },
    { "BODY=BINARYMIME", T(" BODY=BINARYMIME"), MAIL, BODY_UNSUPPORTED },
    { "BODY=foo", T(" BODY=foo"), MAIL, BODY_UNSUPPORTED },
    { "BODY without value", T(" BODY"), MAIL, INVALID },
    { "BODY twice", T(" BODY=7BIT BODY=8BITMIME"), MAIL, DUPLICATE },
    { "BODY on RCPT", T(" BODY=7BIT"), RCPT, UNSUPPORTED },

    /* SMTPUTF8 (RFC 6531) */
    { "SMTPUTF8", T(" SMTPUTF8"), MAIL, P_OK, -1, 0, 1 },
    { "SMTPUTF8 with a value", T(" SMTPUTF8=yes"), MAIL, INVALID },
    { "SMTPUTF8 twice", T(" SMTPUTF8 SMTPUTF8"), MAIL, DUPLICATE },
    { "SMTPUTF8 on RCPT", T(" SMTPUTF8"), RCPT, UNSUPPORTED },

    /* REQUIRETLS (RFC 8689): a flag, MAIL only */
    { "REQUIRETLS", T(" REQUIRETLS"), MAIL, P_OK, -1, 0, 0, 0, NULL, NULL,
      0, NULL, NULL, 1 },
    { "REQUIRETLS with SMTPUTF8", T(" SMTPUTF8 requiretls"), MAIL, P_OK, -1,
      0, 1, 0, NULL, NULL, 0, NULL, NULL, 1 },
    { "REQUIRETLS with a value", T(" REQUIRETLS=yes"), MAIL, INVALID },
    { "REQUIRETLS twice", T(" REQUIRETLS requiretls"), MAIL, DUPLICATE },
    { "REQUIRETLS on RCPT", T(" REQUIRETLS"), RCPT, UNSUPPORTED },

    /* RET and ENVID (RFC 3461) */
    { "RET=FULL", T(" RET=FULL"), MAIL, P_OK, -1, 0, 0, PST_RET_FULL },
    { "RET=hdrs", T(" RET=hdrs"), MAIL, P_OK, -1, 0, 0, PST_RET_HDRS },
    { "RET=ALL", T(" RET=ALL"), MAIL, INVALID },
    { "RET without value", T(" RET"), MAIL, INVALID },
    { "RET twice", T(" RET=FULL RET=FULL"), MAIL, DUPLICATE },
    { "RET on RCPT", T(" RET=FULL"), RCPT, UNSUPPORTED },
    { "ENVID", T(" ENVID=QQ314159"), MAIL, P_OK, -1, 0, 0, 0, "QQ314159" },
    { "ENVID xtext", T(" ENVID=a+2Bb+3Dc"), MAIL, P_OK, -1, 0, 0, 0,
      "a+b=c" },
    { "ENVID of 100", T(" ENVID=" X100), MAIL, P_OK, -1, 0, 0, 0, X100 },
    { "ENVID of 101", T(" ENVID=" X100 "x"), MAIL, INVALID },
    /* the limit applies to the xtext as sent (99 characters decoded) */
    { "ENVID of 101 encoded", T(" ENVID=" X90 "xxxxxxxx+2B"), MAIL,
      INVALID },
    { "ENVID bad xtext", T(" ENVID=a+2b"), MAIL, INVALID },
    { "ENVID truncated xtext", T(" ENVID=a+2"), MAIL, INVALID },
    { "ENVID decodes to NUL", T(" ENVID=a+00b"), MAIL, INVALID },
    { "ENVID decodes to LF", T(" ENVID=a+0Ab"), MAIL, INVALID },
    { "ENVID decodes to DEL", T(" ENVID=a+7F"), MAIL, INVALID },
    { "ENVID decodes to space", T(" ENVID=a+20b"), MAIL, P_OK, -1, 0, 0, 0,
      "a b" },
    { "ENVID empty", T(" ENVID="), MAIL, INVALID },
    { "ENVID twice", T(" ENVID=a ENVID=b"), MAIL, DUPLICATE },
    { "ENVID on RCPT", T(" ENVID=a"), RCPT, UNSUPPORTED },

    /* AUTH (RFC 4954) */
    { "AUTH=<>", T(" AUTH=<>"), MAIL, P_OK, -1, 0, 0, 0, NULL, "<>" },
    { "AUTH xtext", T(" AUTH=user+40example.com"), MAIL, P_OK, -1, 0, 0, 0,
      NULL, "user@example.com" },
    { "AUTH bad xtext", T(" AUTH=a+zz"), MAIL, INVALID },
    { "AUTH decodes to NUL", T(" AUTH=a+00@b.example"), MAIL, INVALID },
    { "AUTH without value", T(" AUTH"), MAIL, INVALID },
    { "AUTH twice", T(" AUTH=<> AUTH=<>"), MAIL, DUPLICATE },
    { "AUTH on RCPT", T(" AUTH=<>"), RCPT, UNSUPPORTED },

    { "all MAIL parameters",
      T(" SIZE=10 BODY=7BIT SMTPUTF8 RET=HDRS ENVID=e AUTH=<>"), MAIL,
      P_OK, 10, PST_BODY_7BIT, 1, PST_RET_HDRS, "e", "<>" },
    { "several spaces", T("  SIZE=10    BODY=7BIT  "), MAIL, P_OK, 10,
      PST_BODY_7BIT },

    /* NOTIFY and ORCPT (RFC 3461) */
    { "NOTIFY=NEVER", T(" NOTIFY=NEVER"), RCPT, P_OK, -1, 0, 0, 0, NULL,
      NULL, PST_NOTIFY_NEVER },
    { "NOTIFY list", T(" NOTIFY=SUCCESS,FAILURE,DELAY"), RCPT, P_OK, -1, 0,
      0, 0, NULL, NULL, NOTIFY_SFD },
    { "notify lowercase", T(" notify=failure"), RCPT, P_OK, -1, 0, 0, 0,
      NULL, NULL, PST_NOTIFY_FAILURE },
    { "NOTIFY=DELAY,SUCCESS", T(" NOTIFY=DELAY,SUCCESS"), RCPT, P_OK, -1, 0,
      0, 0, NULL, NULL, PST_NOTIFY_DELAY | PST_NOTIFY_SUCCESS },
    { "NOTIFY=NEVER,SUCCESS", T(" NOTIFY=NEVER,SUCCESS"), RCPT, INVALID },
    { "NOTIFY=SUCCESS,NEVER", T(" NOTIFY=SUCCESS,NEVER"), RCPT, INVALID },
    { "NOTIFY=NEVER,NEVER", T(" NOTIFY=NEVER,NEVER"), RCPT, INVALID },
    { "NOTIFY unknown", T(" NOTIFY=ALWAYS"), RCPT, INVALID },
    { "NOTIFY empty item", T(" NOTIFY=SUCCESS,,DELAY"), RCPT, INVALID },
    { "NOTIFY trailing comma", T(" NOTIFY=SUCCESS,"), RCPT, INVALID },
    { "NOTIFY leading comma", T(" NOTIFY=,SUCCESS"), RCPT, INVALID },
    { "NOTIFY empty", T(" NOTIFY="), RCPT, INVALID },
    { "NOTIFY without value", T(" NOTIFY"), RCPT, INVALID },
    { "NOTIFY twice", T(" NOTIFY=NEVER NOTIFY=NEVER"), RCPT, DUPLICATE },
    { "NOTIFY on MAIL", T(" NOTIFY=NEVER"), MAIL, UNSUPPORTED },
    { "ORCPT", T(" ORCPT=rfc822;user+40example.com"), RCPT, P_OK, -1, 0, 0,
      0, NULL, NULL, 0, "rfc822", "user@example.com" },
    { "ORCPT type lowercased", T(" ORCPT=RFC822;a@b.example"), RCPT, P_OK,
      -1, 0, 0, 0, NULL, NULL, 0, "rfc822", "a@b.example" },
    { "ORCPT utf-8 type", T(" ORCPT=utf-8;a@b.example"), RCPT, P_OK, -1, 0,
      0, 0, NULL, NULL, 0, "utf-8", "a@b.example" },
    { "ORCPT without ';'", T(" ORCPT=rfc822"), RCPT, INVALID },
    { "ORCPT without type", T(" ORCPT=;a@b.example"), RCPT, INVALID },
    { "ORCPT without address", T(" ORCPT=rfc822;"), RCPT, INVALID },
    { "ORCPT bad xtext", T(" ORCPT=rfc822;a+zz"), RCPT, INVALID },
    { "ORCPT decodes to CR", T(" ORCPT=rfc822;a+0D@b.example"), RCPT,
      INVALID },
    { "ORCPT of 500", T(" ORCPT=rfc822;" X100 X100 X100 X100 X90 "xxx"),
      RCPT, P_OK, -1, 0, 0, 0, NULL, NULL, 0, "rfc822",
      X100 X100 X100 X100 X90 "xxx" },
    { "ORCPT of 501", T(" ORCPT=rfc822;" X100 X100 X100 X100 X90 "xxxx"),
      RCPT, INVALID },
    { "ORCPT of 507", T(" ORCPT=rfc822;" X500), RCPT, INVALID },
    { "ORCPT twice", T(" ORCPT=rfc822;a ORCPT=rfc822;b"), RCPT, DUPLICATE },
    { "ORCPT on MAIL", T(" ORCPT=rfc822;a"), MAIL, UNSUPPORTED },
    { "NOTIFY and ORCPT", T(" NOTIFY=NEVER ORCPT=rfc822;a"), RCPT, P_OK, -1,
      0, 0, 0, NULL, NULL, PST_NOTIFY_NEVER, "rfc822", "a" },

    /* unknown and malformed keywords and values */
    { "unknown", T(" FOO=bar"), MAIL, UNSUPPORTED },
    { "unknown without value", T(" XYZZY"), RCPT, UNSUPPORTED },
    { "unknown after a good one", T(" SIZE=1 FOO"), MAIL, UNSUPPORTED },
    { "keyword with '_'", T(" X_Y=1"), MAIL, INVALID },
    { "keyword starting with '-'", T(" -X=1"), MAIL, INVALID },
    { "empty keyword", T(" =1"), MAIL, INVALID },
    { "'=' in the value", T(" SIZE=1=2"), MAIL, INVALID },
    { "control in the value", T(" ENVID=a\x01"), MAIL, INVALID },
    { "DEL in the value", T(" ENVID=a\x7f"), MAIL, INVALID },
    { "tab as a separator", T(" SIZE=1\tBODY=7BIT"), MAIL, INVALID },
    { "non-ASCII keyword", T(" S\xc3\xacZE=1"), MAIL, INVALID },
};


static void
check_str(const char *name, const char *what, const pst_str_t *got,
    const char *want)
{
    if (want == NULL) {
        ck_assert_msg(got->data == NULL, "%s: %s set", name, what);
        return;
    }

    ck_assert_msg(got->data != NULL, "%s: %s not set", name, what);
    ck_assert_msg(got->len == strlen(want)
                  && memcmp(got->data, want, got->len) == 0,
                  "%s: %s \"%.*s\", expected \"%s\"", name, what,
                  (int) got->len, got->data, want);
    ck_assert_int_eq(got->data[got->len], '\0');
}


START_TEST(test_parse_params)
{
    const param_case_t  *c = &param_cases[_i];
    pst_smtp_params_t    prm;
    pst_smtp_error_t     err;
    pst_pool_t          *pool;
    u_char              *buf;
    int                  rc;

    buf = malloc(c->in.len + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, c->in.data, c->in.len);

    pool = pst_create_pool(1024);
    memset(&err, 0, sizeof(err));

    rc = pst_smtp_parse_params(pool, buf, buf + c->in.len, c->mail, &prm,
                               &err);

    if (c->code != 0) {
        ck_assert_msg(rc == PST_ERROR, "%s: accepted", c->name);
        ck_assert_msg(err.code == c->code && strcmp(err.ecode, c->ecode) == 0
                      && strcmp(err.text, c->text) == 0,
                      "%s: %d %s %s, expected %d %s %s", c->name, err.code,
                      err.ecode, err.text, c->code, c->ecode, c->text);
        goto done;
    }

    ck_assert_msg(rc == PST_OK, "%s: refused with %d %s %s", c->name,
                  err.code, err.ecode, err.text);
    ck_assert_int_eq(prm.size, c->size);
    ck_assert_int_eq(prm.body, c->body);
    ck_assert_uint_eq(prm.smtputf8, c->smtputf8);
    ck_assert_int_eq(prm.ret, c->ret);
    check_str(c->name, "ENVID", &prm.envid, c->envid);
    check_str(c->name, "AUTH", &prm.auth, c->auth);
    ck_assert_uint_eq(prm.notify, c->notify);
    check_str(c->name, "ORCPT type", &prm.orcpt_type, c->orcpt_type);
    check_str(c->name, "ORCPT", &prm.orcpt, c->orcpt);
    ck_assert_uint_eq(prm.requiretls, c->requiretls);

done:

    pst_destroy_pool(pool);
    free(buf);
}
END_TEST


/* XPOSTERN's node facts (pst_smtp_parse_node()): what each gives, and
 * what is refused as bad syntax. */
static int
parse_node(const char *in, int mail, pst_smtp_params_t *prm)
{
    pst_smtp_error_t   err;
    pst_pool_t        *pool;
    u_char             buf[256];
    size_t             n = strlen(in);
    int                rc;

    memcpy(buf, in, n);
    pool = pst_create_pool(1024);
    rc = pst_smtp_parse_params(pool, buf, buf + n, mail, prm, &err);
    pst_destroy_pool(pool);
    return rc;
}


START_TEST(test_parse_node)
{
    static const char  *bad_mail[] = {
        " XP-ARRIVAL=1795382512", " XP-ARRIVAL=1795382512.42",
        " XP-ARRIVAL=x.000000", " XP-ARRIVAL", " XP-HOLD=1",
        " XP-HOLD XP-HOLD", " XP-ATTEMPTS=1", " XP-NOPE=1",
        " XP-ARRIVAL=0.000000"
    };
    static const char  *bad_rcpt[] = {
        " XP-ATTEMPTS=65536", " XP-ATTEMPTS", " XP-DSN=256",
        " XP-NEXT-TRY=0", " XP-HOLD", " XP-ATTEMPTS=1 xp-attempts=2"
    };
    pst_smtp_params_t   prm;
    pst_uint_t          i;

    ck_assert_int_eq(parse_node(" SIZE=10 XP-ARRIVAL=1795382512.042117"
                                " xp-hold XP-REQUIRETLS", 1, &prm), PST_OK);
    ck_assert_uint_eq(prm.node, 1);
    ck_assert_int_eq(prm.node_arrival, 1795382512);
    ck_assert_int_eq(prm.node_arrival_usec, 42117);
    ck_assert_uint_eq(prm.node_hold, 1);
    ck_assert_uint_eq(prm.node_requiretls, 1);
    ck_assert_uint_eq(prm.requiretls, 0);

    ck_assert_int_eq(parse_node(" NOTIFY=DELAY XP-ATTEMPTS=3 XP-DSN=8"
                                " XP-NEXT-TRY=1795386112", 0, &prm), PST_OK);
    ck_assert_uint_eq(prm.node, 1);
    ck_assert_uint_eq(prm.node_attempts, 3);
    ck_assert_uint_eq(prm.node_dsn, 8);
    ck_assert_int_eq(prm.node_next_try, 1795386112);

    ck_assert_int_eq(parse_node(" NOTIFY=NEVER", 0, &prm), PST_OK);
    ck_assert_uint_eq(prm.node, 0);

    for (i = 0; i < pst_nelems(bad_mail); i++) {
        ck_assert_msg(parse_node(bad_mail[i], 1, &prm) == PST_ERROR,
                      "MAIL%s accepted", bad_mail[i]);
    }
    for (i = 0; i < pst_nelems(bad_rcpt); i++) {
        ck_assert_msg(parse_node(bad_rcpt[i], 0, &prm) == PST_ERROR,
                      "RCPT%s accepted", bad_rcpt[i]);
    }
}
END_TEST


/* XP-NODE=NAME: the sending node's name, a pst_name_check() name, on
 * MAIL only, copied into the pool. */
START_TEST(test_parse_node_name)
{
    static const char  *bad[] = {
        " XP-NODE", " XP-NODE=", " XP-NODE=-a", " XP-NODE=a/b",
        " XP-NODE=a(b)", " XP-NODE=a XP-NODE=b",
        " XP-NODE=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxx"                                    /* 65 bytes */
    };
    pst_smtp_params_t   prm;
    pst_smtp_error_t    err;
    pst_pool_t         *pool;
    u_char              buf[128];
    const char         *in;
    pst_uint_t          i;

    pool = pst_create_pool(1024);
    in = " XP-ARRIVAL=1795382512.000001 XP-NODE=mx-a.1_b";
    memcpy(buf, in, strlen(in));
    ck_assert_int_eq(pst_smtp_parse_params(pool, buf, buf + strlen(in), 1,
                                           &prm, &err), PST_OK);
    /* the line's buffer is reused for the next command: a copy */
    memset(buf, 'z', sizeof(buf));
    ck_assert_uint_eq(prm.node, 1);
    ck_assert_uint_eq(prm.node_name.len, 8);
    ck_assert_str_eq((char *) prm.node_name.data, "mx-a.1_b");
    pst_destroy_pool(pool);

    ck_assert_int_eq(parse_node(" XP-NODE=mx-a", 0, &prm), PST_ERROR);
    for (i = 0; i < pst_nelems(bad); i++) {
        ck_assert_msg(parse_node(bad[i], 1, &prm) == PST_ERROR,
                      "MAIL%s accepted", bad[i]);
    }
}
END_TEST


START_TEST(test_check_domain)
{
    /* the hostname directive uses this with utf8_ok off */
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "mx.example", 10, 0),
                     PST_OK);
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "b\xc3\xbc.de", 6, 0),
                     PST_ERROR);
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "b\xc3\xbc.de", 6, 1),
                     PST_OK);
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "", 0, 1), PST_ERROR);
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "-a", 2, 0),
                     PST_ERROR);
    ck_assert_int_eq(pst_smtp_check_domain((u_char *) "a.", 2, 0),
                     PST_ERROR);
}
END_TEST


Suite *
suite_smtp_parse(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("smtp_parse");

    tc = tcase_create("read_line");
    tcase_add_loop_test(tc, test_read_line, 0, pst_nelems(line_cases));
    tcase_add_test(tc, test_read_line_long_across_reads);
    tcase_add_test(tc, test_read_line_skip_ends_at_lf_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("path");
    tcase_add_loop_test(tc, test_parse_path, 0, pst_nelems(path_cases));
    tcase_add_loop_test(tc, test_parse_path_lengths, 0,
                        pst_nelems(length_cases));
    tcase_add_test(tc, test_parse_path_truncations);
    tcase_add_test(tc, test_addr_split);
    tcase_add_test(tc, test_check_domain);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_loop_test(tc, test_parse_params, 0, pst_nelems(param_cases));
    tcase_add_test(tc, test_parse_node);
    tcase_add_test(tc, test_parse_node_name);
    suite_add_tcase(s, tc);

    return s;
}
