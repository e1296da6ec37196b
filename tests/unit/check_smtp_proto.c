/*
 * check_smtp_proto.c -- the protocol pieces both directions share
 * (pst_smtp_proto.c): the reply parser, the EHLO keyword parser and the
 * dot-stuffer.  (The line reader's own cases are in check_smtp_parse.c.)
 *
 * Both stateful parts must not care how the input was cut: every reply
 * case is fed whole, byte by byte and in every 2-way split; the stuffer
 * is run in every split with small output buffers, and its output is
 * read back through the server's own DATA parser, which must return
 * exactly the (normalised) input.
 */

#include "check_util.h"
#include "check_suites.h"


/* ------------------------------------------------------------------ */
/* Replies                                                             */

typedef struct {
    tstr_t                       in;
    int                          rc;        /* of the first reply */
    int                          code;
    const char                  *ecode;
    tstr_t                       text;
} reply_case_t;

static const reply_case_t  reply_cases[] = {
    { T("250 ok\r\n"), PST_OK, 250, "", T("ok") },
    { T("250\r\n"), PST_OK, 250, "", T("") },
    { T("250 \r\n"), PST_OK, 250, "", T("") },
    { T("220 mx.test ESMTP\n"), PST_OK, 220, "", T("mx.test ESMTP") },
    { T("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"), PST_OK, 250,
      "", T("mx.test\nPIPELINING\nSIZE 1000") },
    { T("550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n"),
      PST_OK, 550, "5.1.1", T("first\nsecond\nthird") },
    { T("550 5.1.1\r\n"), PST_OK, 550, "5.1.1", T("") },
    { T("451 4.3.0 try later\r\n"), PST_OK, 451, "4.3.0", T("try later") },
    { T("250 2.1.0 Ok\r\n"), PST_OK, 250, "2.1.0", T("Ok") },
    /* class of the enhanced code must match the reply's */
    { T("250 5.1.1 odd\r\n"), PST_OK, 250, "", T("5.1.1 odd") },
    { T("250 2.1234.0 x\r\n"), PST_OK, 250, "", T("2.1234.0 x") },
    { T("250 2.1.0x\r\n"), PST_OK, 250, "", T("2.1.0x") },
    { T("354 End data with <CR><LF>.<CR><LF>\r\n"), PST_OK, 354, "",
      T("End data with <CR><LF>.<CR><LF>") },
    /* incomplete */
    { T("250-first\r\n250 sec"), PST_AGAIN, 0, "", T("") },
    { T("25"), PST_AGAIN, 0, "", T("") },
    /* garbage */
    { T("hello\r\n"), PST_ERROR, 0, "", T("") },
    { T("25\r\n"), PST_ERROR, 0, "", T("") },
    { T("2500 x\r\n"), PST_ERROR, 0, "", T("") },
    { T("250x\r\n"), PST_ERROR, 0, "", T("") },
    { T("150 x\r\n"), PST_ERROR, 0, "", T("") },
    { T("260 x\r\n"), PST_ERROR, 0, "", T("") },
    { T("25a x\r\n"), PST_ERROR, 0, "", T("") },
    { T("250-a\r\n251 b\r\n"), PST_ERROR, 0, "", T("") },
    { T("250 a\0b\r\n"), PST_ERROR, 0, "", T("") },
    { T("250 a\rb\r\n"), PST_ERROR, 0, "", T("") },
};


/* Feed in[0..n) in pieces of `step` (0: split once at `split`). */
static int
feed(pst_smtp_reply_parser_t *rp, const char *in, size_t n, size_t step,
    size_t split, pst_smtp_reply_t *r)
{
    pst_buf_t  *b;
    size_t      off = 0, k;
    int         rc = PST_AGAIN;

    b = pst_buf_alloc(2 * n + 16);
    ck_assert_ptr_nonnull(b);

    while (off < n) {
        k = step ? pst_min(step, n - off) : (off == 0 ? split : n - off);
        memcpy(b->last, in + off, k);
        b->last += k;
        off += k;
        rc = pst_smtp_reply_parse(rp, b, r);
        if (rc != PST_AGAIN) {
            break;
        }
    }

    if (rc == PST_OK) {
        /* the text must survive until the next call: copy it out */
        ck_assert_uint_eq(pst_buf_size(b), n - off);
    }

    pst_buf_destroy(b);
    return rc;
}


START_TEST(test_reply_table)
{
    const reply_case_t       *c = &reply_cases[_i];
    pst_smtp_reply_parser_t   rp;
    pst_smtp_reply_t          r;
    size_t                    step, split;
    int                       rc;

    for (step = 0; step <= 1; step++) {
        for (split = step ? 0 : 1; split <= (step ? 0 : c->in.len);
             split++)
        {
            pst_smtp_reply_init(&rp, 0);
            memset(&r, 0, sizeof(r));
            rc = feed(&rp, c->in.data, c->in.len, step ? 1 : 0, split, &r);
            ck_assert_msg(rc == c->rc, "case %d step %zu split %zu: rc %d",
                          _i, step, split, rc);
            if (rc == PST_OK) {
                ck_assert_int_eq(r.code, c->code);
                ck_assert_str_eq(r.ecode, c->ecode);
                ck_assert_uint_eq(r.text.len, c->text.len);
                ck_assert_mem_eq(r.text.data, c->text.data, c->text.len);
            }
            if (rc == PST_ERROR) {
                ck_assert_ptr_nonnull(rp.error);
            }
            pst_smtp_reply_free(&rp);
        }
    }
}
END_TEST


/* Pipelined replies come out one per call; the parser is reusable. */
START_TEST(test_reply_pipelined)
{
    static const char         in[] = "250 2.1.0 a\r\n550-5.1.1 b\r\n"
                                     "550 5.1.1 c\r\n354 go\r\n25";
    pst_smtp_reply_parser_t   rp;
    pst_smtp_reply_t          r;
    pst_buf_t                *b;

    b = pst_buf_alloc(256);
    memcpy(b->last, in, sizeof(in) - 1);
    b->last += sizeof(in) - 1;
    pst_smtp_reply_init(&rp, 0);

    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_OK);
    ck_assert_int_eq(r.code, 250);
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_OK);
    ck_assert_int_eq(r.code, 550);
    ck_assert_str_eq(r.ecode, "5.1.1");
    ck_assert_uint_eq(r.text.len, 3);
    ck_assert_mem_eq(r.text.data, "b\nc", 3);
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_OK);
    ck_assert_int_eq(r.code, 354);
    ck_assert_str_eq(r.ecode, "");
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_AGAIN);
    ck_assert_uint_eq(pst_buf_size(b), 2);

    memcpy(b->last, "1 x\r\n", 5);
    b->last += 5;
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_OK);
    ck_assert_int_eq(r.code, 251);

    pst_smtp_reply_free(&rp);
    pst_buf_destroy(b);
}
END_TEST


/* A line over PST_SMTP_REPLY_LINE_MAX, or a reply over max: errors,
 * and the parser stays failed. */
START_TEST(test_reply_limits)
{
    pst_smtp_reply_parser_t   rp;
    pst_smtp_reply_t          r;
    pst_buf_t                *b;
    int                       i, rc;

    b = pst_buf_alloc(3 * PST_SMTP_REPLY_LINE_MAX);

    /* an endless line: fails once the line limit is passed */
    pst_smtp_reply_init(&rp, 0);
    memcpy(b->last, "250 ", 4);
    b->last += 4;
    memset(b->last, 'x', PST_SMTP_REPLY_LINE_MAX);
    b->last += PST_SMTP_REPLY_LINE_MAX;
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_ERROR);
    ck_assert_str_eq(rp.error, "reply line too long");
    b->pos = b->last = b->start;
    memcpy(b->last, "250 ok\r\n", 8);
    b->last += 8;
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_ERROR);
    pst_smtp_reply_free(&rp);

    /* many short lines: the total limit */
    pst_smtp_reply_init(&rp, 1000);
    b->pos = b->last = b->start;
    rc = PST_AGAIN;
    for (i = 0; i < 200 && rc == PST_AGAIN; i++) {
        memcpy(b->last, "250-0123456789\r\n", 16);
        b->last += 16;
        rc = pst_smtp_reply_parse(&rp, b, &r);
    }
    ck_assert_int_eq(rc, PST_ERROR);
    ck_assert_str_eq(rp.error, "reply too long");
    ck_assert_int_le(i * 16, 1000 + 16);
    pst_smtp_reply_free(&rp);

    /* just under the limit is fine */
    pst_smtp_reply_init(&rp, 32);
    b->pos = b->last = b->start;
    memcpy(b->last, "250-0123456789\r\n250 0123456789\r\n", 32);
    b->last += 32;
    ck_assert_int_eq(pst_smtp_reply_parse(&rp, b, &r), PST_OK);
    pst_smtp_reply_free(&rp);

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_ecode_len)
{
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2.0.0", 5), 5);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "5.7.1 x", 7), 5);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "4.123.456 x", 11), 9);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "3.0.0", 5), 0);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2.0", 3), 0);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2..0", 4), 0);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2.0.0.", 6), 0);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2.0000.0", 8), 0);
    ck_assert_uint_eq(pst_smtp_ecode_len((u_char *) "2.0.", 4), 0);
}
END_TEST


/* ------------------------------------------------------------------ */
/* EHLO                                                                */

typedef struct {
    const char                  *text;
    unsigned                     caps;
    unsigned                     auth;
    off_t                        size;
} ehlo_case_t;

static const ehlo_case_t  ehlo_cases[] = {
    { "mx.test", 0, 0, 0 },
    { "mx.test\nPIPELINING\nSIZE 10240000\n8BITMIME",
      PST_SMTP_CAP_PIPELINING | PST_SMTP_CAP_SIZE | PST_SMTP_CAP_8BITMIME,
      0, 10240000 },
    { "mx.test\nSIZE", PST_SMTP_CAP_SIZE, 0, 0 },
    { "mx.test\nSIZE 0", PST_SMTP_CAP_SIZE, 0, 0 },
    { "mx.test\nSIZE abc", PST_SMTP_CAP_SIZE, 0, 0 },
    { "mx.test\nSIZE 99999999999999999999999", PST_SMTP_CAP_SIZE, 0, 0 },
    { "mx.test\nsize 100\nsmtputf8\ndsn\nchunking\nstarttls",
      PST_SMTP_CAP_SIZE | PST_SMTP_CAP_SMTPUTF8 | PST_SMTP_CAP_DSN
      | PST_SMTP_CAP_CHUNKING | PST_SMTP_CAP_STARTTLS, 0, 100 },
    { "mx.test\nENHANCEDSTATUSCODES\nREQUIRETLS",
      PST_SMTP_CAP_ENHANCED | PST_SMTP_CAP_REQUIRETLS, 0, 0 },
    { "mx.test\nAUTH PLAIN LOGIN SCRAM-SHA-256", PST_SMTP_CAP_AUTH,
      PST_SMTP_AUTH_PLAIN | PST_SMTP_AUTH_LOGIN
      | PST_SMTP_AUTH_SCRAM_SHA256, 0 },
    { "mx.test\nAUTH=LOGIN\nAUTH cram-md5 plain", PST_SMTP_CAP_AUTH,
      PST_SMTP_AUTH_LOGIN | PST_SMTP_AUTH_PLAIN | PST_SMTP_AUTH_OTHER, 0 },
    { "mx.test\nAUTH", PST_SMTP_CAP_AUTH, 0, 0 },
    /* not keywords, or keywords with junk glued on */
    { "PIPELINING\nX-PIPELINING\nPIPELININGX\nSIZE=100\n\n \n=",
      0, 0, 0 },
    { "mx.test\nVRFY\nETRN\nXCLIENT NAME ADDR\nHELP", 0, 0, 0 },
};


START_TEST(test_ehlo_table)
{
    const ehlo_case_t  *c = &ehlo_cases[_i];
    pst_smtp_ehlo_t     e;

    pst_smtp_ehlo_parse((const u_char *) c->text, strlen(c->text), &e);
    ck_assert_msg(e.caps == c->caps, "case %d: caps %#x", _i, e.caps);
    ck_assert_msg(e.auth == c->auth, "case %d: auth %#x", _i, e.auth);
    ck_assert_int_eq(e.size, c->size);
}
END_TEST


/* The parser's output feeds the EHLO parser as the client uses it. */
START_TEST(test_ehlo_from_reply)
{
    static const char         in[] = "250-mx.test Hello\r\n250-PIPELINING\r\n"
                                     "250-SIZE 5000\r\n250 AUTH PLAIN\r\n";
    pst_smtp_reply_parser_t   rp;
    pst_smtp_reply_t          r;
    pst_smtp_ehlo_t           e;

    pst_smtp_reply_init(&rp, 0);
    ck_assert_int_eq(feed(&rp, in, sizeof(in) - 1, 7, 0, &r), PST_OK);
    pst_smtp_ehlo_parse(r.text.data, r.text.len, &e);
    ck_assert_uint_eq(e.caps, PST_SMTP_CAP_PIPELINING | PST_SMTP_CAP_SIZE
                              | PST_SMTP_CAP_AUTH);
    ck_assert_uint_eq(e.auth, PST_SMTP_AUTH_PLAIN);
    ck_assert_int_eq(e.size, 5000);
    pst_smtp_reply_free(&rp);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Dot-stuffing                                                        */

typedef struct {
    tstr_t                       in;
    tstr_t                       data;      /* DATA: stuffed, ".\r\n" */
    tstr_t                       bdat;      /* BDAT: normalised only */
    unsigned                     bare;
} stuff_case_t;

static const stuff_case_t  stuff_cases[] = {
    { T(""), T(".\r\n"), T(""), 0 },
    { T("a\r\n"), T("a\r\n.\r\n"), T("a\r\n"), 0 },
    { T("a"), T("a\r\n.\r\n"), T("a\r\n"), 0 },
    { T(".\r\n"), T("..\r\n.\r\n"), T(".\r\n"), 0 },
    { T("a\r\n.\r\nb\r\n"), T("a\r\n..\r\nb\r\n.\r\n"),
      T("a\r\n.\r\nb\r\n"), 0 },
    { T("..x\r\n"), T("...x\r\n.\r\n"), T("..x\r\n"), 0 },
    { T("a.b\r\n."), T("a.b\r\n..\r\n.\r\n"), T("a.b\r\n.\r\n"), 0 },
    /* bare LF and CR become CRLF, and the line after them is a line */
    { T("a\nb\n"), T("a\r\nb\r\n.\r\n"), T("a\r\nb\r\n"), 2 },
    { T("a\n.\n"), T("a\r\n..\r\n.\r\n"), T("a\r\n.\r\n"), 2 },
    { T("a\r.b"), T("a\r\n..b\r\n.\r\n"), T("a\r\n.b\r\n"), 1 },
    { T("a\r"), T("a\r\n.\r\n"), T("a\r\n"), 1 },
    { T("\r\r\n"), T("\r\n\r\n.\r\n"), T("\r\n\r\n"), 1 },
    { T("a\r\n\r\n.\r\n"), T("a\r\n\r\n..\r\n.\r\n"),
      T("a\r\n\r\n.\r\n"), 0 },
    /* the smuggling shapes arrive as harmless text */
    { T("a\n.\r\nMAIL"), T("a\r\n..\r\nMAIL\r\n.\r\n"),
      T("a\r\n.\r\nMAIL\r\n"), 1 },
    { T("a\r\n.\nx"), T("a\r\n..\r\nx\r\n.\r\n"), T("a\r\n.\r\nx\r\n"), 1 },
};


/* Stuff in, cut into two pieces at split, through an output buffer of
 * olen bytes; returns the bytes in out. */
static size_t
stuff_split(const stuff_case_t *c, int dot, size_t split, size_t olen,
    u_char *out, pst_smtp_stuff_t *st)
{
    const u_char  *p, *end;
    size_t         n = 0, k;
    int            piece;

    pst_smtp_stuff_init(st, dot);

    for (piece = 0; piece < 2; piece++) {
        p = (const u_char *) c->in.data + (piece ? split : 0);
        end = (const u_char *) c->in.data + (piece ? c->in.len : split);
        while (p < end) {
            k = pst_smtp_stuff(st, &p, end, out + n, olen);
            ck_assert_uint_le(k, olen);
            n += k;
        }
    }

    n += pst_smtp_stuff_end(st, out + n);
    return n;
}


START_TEST(test_stuff_table)
{
    const stuff_case_t  *c = &stuff_cases[_i];
    pst_smtp_stuff_t     st;
    u_char               out[256];
    size_t               split, olen, n;
    int                  dot;

    for (dot = 0; dot <= 1; dot++) {
        for (split = 0; split <= c->in.len; split++) {
            for (olen = 2; olen <= 8; olen += 3) {
                n = stuff_split(c, dot, split, olen, out, &st);
                if (dot) {
                    ck_assert_msg(n == c->data.len
                                  && memcmp(out, c->data.data, n) == 0,
                                  "case %d split %zu olen %zu: \"%.*s\"",
                                  _i, split, olen, (int) n, out);
                } else {
                    ck_assert_msg(n == c->bdat.len
                                  && memcmp(out, c->bdat.data, n) == 0,
                                  "case %d split %zu olen %zu (bdat)", _i,
                                  split, olen);
                }
                ck_assert_uint_eq(st.bare, c->bare);
            }
        }
    }
}
END_TEST


/* Lines over 998 bytes are counted once each; the count does not
 * depend on where the input was cut. */
START_TEST(test_stuff_long_lines)
{
    pst_smtp_stuff_t   st;
    static u_char      in[4000], out[8200];
    const u_char      *p;
    size_t             i, n = 0;

    memset(in, 'x', sizeof(in));
    in[998] = '\n';              /* 998 bytes: fine */
    in[999 + 999] = '\n';        /* 999 bytes: long */
    in[3000] = '\n';             /* 1001 bytes: long */
                                 /* 999 at the end: long */

    pst_smtp_stuff_init(&st, 1);
    for (i = 0; i < sizeof(in); i += 7) {
        p = in + i;
        while (p < in + pst_min(i + 7, sizeof(in))) {
            n += pst_smtp_stuff(&st, &p, in + pst_min(i + 7, sizeof(in)),
                                out + n, 5);
        }
    }
    (void) pst_smtp_stuff_end(&st, out + n);

    ck_assert_uint_eq(st.long_lines, 3);
}
END_TEST


/* Random bytes rich in '.', CR and LF: stuffed, then read back by the
 * server's DATA parser, they must come back as the normalised input and
 * end exactly at the terminator. */
START_TEST(test_stuff_roundtrip)
{
    static const u_char  alphabet[] = "..\r\n\nab";
    static u_char        in[600], stuffed[1400], bdat[1400], back[1400];
    pst_smtp_stuff_t     st;
    pst_smtp_data_t      d;
    const u_char        *p;
    u_char              *q;
    size_t               i, n, len, bn, olen;

    srandom((unsigned) _i + 7);
    len = (size_t) random() % sizeof(in);
    for (i = 0; i < len; i++) {
        in[i] = alphabet[random() % (sizeof(alphabet) - 1)];
    }

    /* DATA form, in random pieces */
    pst_smtp_stuff_init(&st, 1);
    n = 0;
    p = in;
    while (p < in + len) {
        i = 1 + (size_t) random() % 50;           /* once: pst_min */
        i = pst_min((size_t) (in + len - p), i);
        n += pst_smtp_stuff(&st, &p, p + i, stuffed + n,
                            2 + (size_t) random() % 40);
    }
    n += pst_smtp_stuff_end(&st, stuffed + n);

    /* BDAT form: the normalised message itself */
    pst_smtp_stuff_init(&st, 0);
    p = in;
    bn = pst_smtp_stuff(&st, &p, in + len, bdat, sizeof(bdat));
    bn += pst_smtp_stuff_end(&st, bdat + bn);

    memset(&d, 0, sizeof(d));
    pst_smtp_data_init(&d, 1);
    q = stuffed;
    olen = sizeof(back);
    ck_assert_int_eq(pst_smtp_data_parse(&d, &q, stuffed + n, back, &olen),
                     PST_DONE);
    ck_assert_ptr_eq(q, stuffed + n);
    ck_assert_uint_eq(olen, bn);
    ck_assert_mem_eq(back, bdat, bn);
    ck_assert_uint_eq(d.bare_lf + d.bare_cr, 0);
}
END_TEST


Suite *
suite_smtp_proto(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("smtp_proto");

    tc = tcase_create("reply");
    tcase_add_loop_test(tc, test_reply_table, 0, pst_nelems(reply_cases));
    tcase_add_test(tc, test_reply_pipelined);
    tcase_add_test(tc, test_reply_limits);
    tcase_add_test(tc, test_ecode_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("ehlo");
    tcase_add_loop_test(tc, test_ehlo_table, 0, pst_nelems(ehlo_cases));
    tcase_add_test(tc, test_ehlo_from_reply);
    suite_add_tcase(s, tc);

    tc = tcase_create("stuff");
    tcase_add_loop_test(tc, test_stuff_table, 0, pst_nelems(stuff_cases));
    tcase_add_test(tc, test_stuff_long_lines);
    tcase_add_loop_test(tc, test_stuff_roundtrip, 0, 50);
    suite_add_tcase(s, tc);

    return s;
}
