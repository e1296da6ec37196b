/*
 * check_smtp_data.c -- the DATA/BDAT byte parser (pst_smtp_data_init,
 * pst_smtp_data_parse, pst_smtp_data_finish in pst_smtp_parse.c).
 *
 * Two things matter most here.  Only <CRLF>.<CRLF> may end the data:
 * any other reading of a lone dot lets a sender smuggle a second
 * message past a relay that ends the data elsewhere (SMTP smuggling).
 * And the parser is resumable: the result must not depend on how TCP
 * cut the input into reads, nor on the room left in the output buffer.
 *
 * Besides the hand-written table, every input is checked against a
 * small line-based model of the same rules (model() below), written
 * independently of the state machine, in every 2-way split, byte by
 * byte and in random chunks, with output buffers from 3 bytes up.
 */

#include "check_util.h"
#include "check_suites.h"

#define OUT_MAX  8192


typedef struct {
    u_char                       out[OUT_MAX];
    size_t                       olen;
    int                          rc;          /* PST_DONE or PST_AGAIN */
    size_t                       end;         /* input consumed */
    unsigned                     bare_lf;
    unsigned                     bare_cr;
    unsigned                     long_line;
    unsigned                     too_big;
    unsigned                     hdr_overflow;
    off_t                        size;
    u_char                       hdr[OUT_MAX];
    size_t                       hlen;
} result_t;

typedef struct {
    int                          dot_mode;
    size_t                       max_line;
    off_t                        max_size;
    size_t                       hdr_max;     /* 0: no header capture */
    int                          finish;      /* call data_finish at EOF */
} opts_t;


static void
put(result_t *r, const u_char *p, size_t n)
{
    ck_assert_uint_le(r->olen + n, OUT_MAX);
    memcpy(r->out + r->olen, p, n);
    r->olen += n;
}


/* ------------------------------------------------------------------ */
/* The model: the same rules, one whole line at a time                 */

/*
 * A line ends at CRLF, at a bare LF or at a bare CR (a CR followed by
 * anything but LF).  A line "." ends the data only when it ends with
 * CRLF and starts the message or follows a CRLF.  Every other line
 * loses one leading dot and is written with CRLF.  The header section
 * is the output up to and including the first empty line.
 */
static void
model(const u_char *in, size_t len, const opts_t *o, result_t *r)
{
    size_t  i, start, next, clen;
    int     eligible, term, hdr_done;

    enum { CRLF, BARE_LF, BARE_CR, NONE, CR_PENDING };

    memset(r, 0, sizeof(result_t));
    r->rc = PST_AGAIN;
    r->end = len;
    eligible = 1;
    hdr_done = 0;

    for (i = 0; /* void */ ; i = next) {
        start = i;
        while (i < len && in[i] != '\r' && in[i] != '\n') {
            i++;
        }

        if (i == len) {
            term = NONE;
            next = len;
        } else if (in[i] == '\n') {
            term = BARE_LF;
            next = i + 1;
        } else if (i + 1 == len) {
            term = CR_PENDING;
            next = len;
        } else if (in[i + 1] == '\n') {
            term = CRLF;
            next = i + 2;
        } else {
            term = BARE_CR;
            next = i + 1;
        }

        if (o->dot_mode && eligible && term == CRLF && i - start == 1
            && in[start] == '.')
        {
            r->rc = PST_DONE;
            r->end = next;
            break;
        }

        if (o->dot_mode && i > start && in[start] == '.') {
            start++;
        }

        clen = i - start;
        put(r, in + start, clen);
        if (o->max_line && clen > o->max_line) {
            r->long_line = 1;
        }

        if (term == NONE || term == CR_PENDING) {
            if (o->finish && (clen > 0 || term == CR_PENDING)) {
                put(r, (u_char *) "\r\n", 2);
                r->bare_cr |= (term == CR_PENDING);
                if (!hdr_done && clen == 0) {
                    hdr_done = 1;
                    r->hlen = r->olen;
                }
            }
            break;
        }

        put(r, (u_char *) "\r\n", 2);
        r->bare_lf |= (term == BARE_LF);
        r->bare_cr |= (term == BARE_CR);
        eligible = (term == CRLF);

        if (!hdr_done && clen == 0) {
            hdr_done = 1;
            r->hlen = r->olen;
        }
    }

    if (!hdr_done) {
        r->hlen = r->olen;
    }
    memcpy(r->hdr, r->out, r->hlen);

    r->size = (off_t) r->olen;
    r->too_big = (o->max_size && r->size > o->max_size);
    r->hdr_overflow = (o->hdr_max && r->hlen > o->hdr_max);
}


/* ------------------------------------------------------------------ */
/* Running the real parser                                             */

/*
 * Feed in[0..len) cut at bounds[] (increasing, ending with len), with
 * an output buffer of osize bytes.  Each chunk is copied into its own
 * allocation so that ASan catches a read past the end of a read.
 */
static void
run(const u_char *in, size_t len, const size_t *bounds, size_t osize,
    const opts_t *o, result_t *r)
{
    pst_smtp_data_t   d;
    pst_buf_t        *hdr;
    u_char           *chunk, *pos, *obuf;
    size_t            a, b, k, olen, guard;
    int               rc;

    memset(r, 0, sizeof(result_t));
    r->rc = PST_AGAIN;
    r->end = len;

    hdr = o->hdr_max ? pst_buf_alloc(16) : NULL;
    obuf = malloc(osize);
    ck_assert_ptr_nonnull(obuf);

    /* what pst_smtp_data_open() does: limits are set after init */
    pst_smtp_data_init(&d, o->dot_mode);
    d.max_line = o->max_line;
    d.max_size = o->max_size;
    d.hdr = hdr;
    d.hdr_max = o->hdr_max;

    for (a = 0, k = 0; a < len; a = b, k++) {
        b = bounds[k];
        ck_assert_uint_gt(b, a);

        chunk = malloc(b - a);
        ck_assert_ptr_nonnull(chunk);
        memcpy(chunk, in + a, b - a);
        pos = chunk;

        for (guard = 0; pos < chunk + (b - a); guard++) {
            ck_assert_uint_lt(guard, 10 * (b - a) + 10);

            olen = osize;
            rc = pst_smtp_data_parse(&d, &pos, chunk + (b - a), obuf, &olen);
            ck_assert_uint_le(olen, osize);
            put(r, obuf, olen);

            if (rc == PST_DONE) {
                r->rc = PST_DONE;
                r->end = a + (size_t) (pos - chunk);
                free(chunk);
                goto done;
            }
            ck_assert_int_eq(rc, PST_AGAIN);
        }

        free(chunk);
    }

    if (o->finish) {
        /* data_finish writes at most one CRLF */
        k = pst_smtp_data_finish(&d, obuf);
        ck_assert_uint_le(k, 2);
        put(r, obuf, k);
    }

done:

    r->bare_lf = d.bare_lf;
    r->bare_cr = d.bare_cr;
    r->long_line = d.long_line;
    r->too_big = d.too_big;
    r->hdr_overflow = d.hdr_overflow;
    r->size = d.size;

    if (hdr != NULL) {
        r->hlen = pst_buf_size(hdr);
        ck_assert_uint_le(r->hlen, o->hdr_max);
        memcpy(r->hdr, hdr->pos, r->hlen);
        pst_buf_destroy(hdr);
    }

    free(obuf);
}


static void
compare(const char *name, const char *how, const result_t *got,
    const result_t *want, const opts_t *o)
{
    ck_assert_msg(got->rc == want->rc, "%s (%s): rc %d, expected %d", name,
                  how, got->rc, want->rc);
    ck_assert_msg(got->end == want->end, "%s (%s): ended at %zu, expected"
                  " %zu", name, how, got->end, want->end);
    ck_assert_msg(got->bare_lf == want->bare_lf
                  && got->bare_cr == want->bare_cr,
                  "%s (%s): bare LF/CR %u/%u, expected %u/%u", name, how,
                  got->bare_lf, got->bare_cr, want->bare_lf, want->bare_cr);
    ck_assert_msg(got->long_line == want->long_line, "%s (%s): long_line %u",
                  name, how, got->long_line);
    ck_assert_msg(got->too_big == want->too_big, "%s (%s): too_big %u", name,
                  how, got->too_big);
    ck_assert_msg(got->size == want->size, "%s (%s): size %lld, expected"
                  " %lld", name, how, (long long) got->size,
                  (long long) want->size);

    if (got->too_big) {
        /* output stops at the limit; how much of it was produced before
         * the limit was seen depends on the reads and does not matter
         * (the caller throws it away) */
        ck_assert_uint_le(got->olen, (size_t) o->max_size);
        ck_assert(memcmp(got->out, want->out, got->olen) == 0);
        return;
    }

    ck_assert_msg(got->olen == want->olen
                  && memcmp(got->out, want->out, got->olen) == 0,
                  "%s (%s): output \"%.*s\", expected \"%.*s\"", name, how,
                  (int) got->olen, got->out, (int) want->olen, want->out);

    if (o->hdr_max) {
        ck_assert_msg(got->hdr_overflow == want->hdr_overflow,
                      "%s (%s): hdr_overflow %u", name, how,
                      got->hdr_overflow);
        if (!got->hdr_overflow) {
            ck_assert_msg(got->hlen == want->hlen
                          && memcmp(got->hdr, want->hdr, got->hlen) == 0,
                          "%s (%s): header \"%.*s\", expected \"%.*s\"",
                          name, how, (int) got->hlen, got->hdr,
                          (int) want->hlen, want->hdr);
        }
    }
}


static uint32_t
lcg(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 16;
}


/*
 * Run in[] every way: whole, every 2-way split, byte by byte (with a
 * large and a 3-byte output buffer), and random chunks with random
 * small output buffers.  Every run must equal want.
 */
static void
run_all_ways(const char *name, const u_char *in, size_t len,
    const opts_t *o, const result_t *want)
{
    static result_t  got;
    size_t          *bounds, k, n, osize;
    uint32_t         seed;
    char             how[64];

    bounds = malloc((len + 1) * sizeof(size_t));
    ck_assert_ptr_nonnull(bounds);

    bounds[0] = len;
    run(in, len, bounds, OUT_MAX, o, &got);
    compare(name, "whole", &got, want, o);

    for (k = 1; k < len; k++) {
        bounds[0] = k;
        bounds[1] = len;
        run(in, len, bounds, OUT_MAX, o, &got);
        snprintf(how, sizeof(how), "split at %zu", k);
        compare(name, how, &got, want, o);
    }

    for (k = 0; k < len; k++) {
        bounds[k] = k + 1;
    }
    run(in, len, bounds, OUT_MAX, o, &got);
    compare(name, "byte by byte", &got, want, o);
    run(in, len, bounds, 3, o, &got);
    compare(name, "byte by byte, 3-byte output", &got, want, o);

    bounds[0] = len;
    run(in, len, bounds, 3, o, &got);
    compare(name, "whole, 3-byte output", &got, want, o);

    for (seed = 1; seed <= 8; seed++) {
        uint32_t  s = seed;

        for (k = 0, n = 0; n < len; k++) {
            n += 1 + lcg(&s) % 7;
            bounds[k] = pst_min(n, len);
        }
        osize = 3 + lcg(&s) % 6;
        run(in, len, bounds, osize, o, &got);
        snprintf(how, sizeof(how), "random chunks, seed %u, output %zu",
                 seed, osize);
        compare(name, how, &got, want, o);
    }

    free(bounds);
}


/* ------------------------------------------------------------------ */
/* The table                                                           */

typedef struct {
    const char                  *name;
    tstr_t                       in;
    int                          dot_mode;
    tstr_t                       out;
    int                          rc;
    ssize_t                      end;         /* -1: all of the input */
    unsigned                     bare_lf;
    unsigned                     bare_cr;
} data_case_t;

#define DATA     1
#define BDAT     0
#define EVIL     "MAIL FROM:<evil@example.net>\r\n"
#define END      ".\r\n"

static const data_case_t  data_cases[] = {

    /* the end of the data, dot-unstuffing */
    { "simple", T("Subject: hi\r\n\r\nHello\r\n.\r\n"), DATA,
      T("Subject: hi\r\n\r\nHello\r\n"), PST_DONE, -1, 0, 0 },
    { "input after the end stays", T("a\r\n.\r\nQUIT\r\n"), DATA,
      T("a\r\n"), PST_DONE, 6, 0, 0 },
    /* RFC 5321 4.1.1.4: the CRLF that ends the DATA command is the
     * first CRLF of CRLF.CRLF, so an empty message is ".\r\n" */
    { "empty message", T(".\r\n"), DATA, T(""), PST_DONE, 3, 0, 0 },
    { "empty line, then the end", T("\r\n.\r\n"), DATA, T("\r\n"),
      PST_DONE, -1, 0, 0 },
    { "dot-stuffed lines", T("..\r\n..x\r\n...\r\n.\r\n"), DATA,
      T(".\r\n.x\r\n..\r\n"), PST_DONE, -1, 0, 0 },
    { "single leading dot dropped", T(".x\r\n.\r\n"), DATA, T("x\r\n"),
      PST_DONE, -1, 0, 0 },
    { "dot inside a line", T("a.\r\n a\r\n.\r\n"), DATA,
      T("a.\r\n a\r\n"), PST_DONE, -1, 0, 0 },
    { "dot and space is not the end", T(". \r\n.\r\n"), DATA, T(" \r\n"),
      PST_DONE, -1, 0, 0 },
    { "not finished", T("abc\r\n"), DATA, T("abc\r\n"), PST_AGAIN, -1,
      0, 0 },
    { "dot not yet known", T("abc\r\n."), DATA, T("abc\r\n"), PST_AGAIN,
      -1, 0, 0 },
    { "dot CR not yet known", T("abc\r\n.\r"), DATA, T("abc\r\n"),
      PST_AGAIN, -1, 0, 0 },

    /* SMTP smuggling: none of these ends the data */
    { "LF.LF", T("body\n.\n" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 1, 0 },
    { "CR.CR", T("body\r.\r" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 0, 1 },
    { "LF.CRLF", T("body\n.\r\n" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 1, 0 },
    { "CRLF.LF", T("body\r\n.\n" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 1, 0 },
    { "CRLF.CR + other", T("body\r\n.\r" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 0, 1 },
    { "CRLF.CR CR LF", T("body\r\n.\r\r\n" EVIL END), DATA,
      T("body\r\n\r\n\r\n" EVIL), PST_DONE, -1, 0, 1 },
    { "CR.CRLF", T("body\r.\r\n" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 0, 1 },
    { "LF.CR + other", T("body\n.\r" EVIL END), DATA,
      T("body\r\n\r\n" EVIL), PST_DONE, -1, 1, 1 },
    { "CRLF.NUL CRLF", T("body\r\n.\0\r\n" EVIL END), DATA,
      T("body\r\n\0\r\n" EVIL), PST_DONE, -1, 0, 0 },
    { ".LF at the start", T(".\n" EVIL END), DATA,
      T("\r\n" EVIL), PST_DONE, -1, 1, 0 },
    { ".CR + other at the start", T(".\r" EVIL END), DATA,
      T("\r\n" EVIL), PST_DONE, -1, 0, 1 },
    { "LF.CRLF at the start", T("\n.\r\n" EVIL END), DATA,
      T("\r\n\r\n" EVIL), PST_DONE, -1, 1, 0 },
    { "CR.CRLF at the start", T("\r.\r\n" EVIL END), DATA,
      T("\r\n\r\n" EVIL), PST_DONE, -1, 0, 1 },

    /* bare CR and LF become CRLF */
    { "bare LF", T("a\nb\r\n.\r\n"), DATA, T("a\r\nb\r\n"), PST_DONE, -1,
      1, 0 },
    { "bare CR", T("a\rb\r\n.\r\n"), DATA, T("a\r\nb\r\n"), PST_DONE, -1,
      0, 1 },
    { "CR CR LF", T("a\r\r\n.\r\n"), DATA, T("a\r\n\r\n"), PST_DONE, -1,
      0, 1 },
    { "LF LF", T("a\n\nb\r\n.\r\n"), DATA, T("a\r\n\r\nb\r\n"), PST_DONE,
      -1, 1, 0 },
    { "LF CR LF", T("a\n\r\n.\r\n"), DATA, T("a\r\n\r\n"), PST_DONE, -1,
      1, 0 },
    { "leading bare LF", T("\nabc\r\n.\r\n"), DATA, T("\r\nabc\r\n"),
      PST_DONE, -1, 1, 0 },

    /* BDAT: bytes as they are, dots too, and no end marker */
    { "BDAT dots", T("..x\r\n.\r\nQUIT\r\n"), BDAT,
      T("..x\r\n.\r\nQUIT\r\n"), PST_AGAIN, -1, 0, 0 },
    { "BDAT bare LF", T("a\nb"), BDAT, T("a\r\nb"), PST_AGAIN, -1, 1, 0 },
    { "BDAT bare CR", T("a\rb\r\n"), BDAT, T("a\r\nb\r\n"), PST_AGAIN, -1,
      0, 1 },
};


static void
expected(const data_case_t *c, result_t *r)
{
    memset(r, 0, sizeof(result_t));
    memcpy(r->out, c->out.data, c->out.len);
    r->olen = c->out.len;
    r->rc = c->rc;
    r->end = c->end < 0 ? c->in.len : (size_t) c->end;
    r->bare_lf = c->bare_lf;
    r->bare_cr = c->bare_cr;
    r->size = (off_t) c->out.len;
}


START_TEST(test_data_table)
{
    const data_case_t  *c = &data_cases[_i];
    static result_t     want, mod;
    opts_t              o;

    memset(&o, 0, sizeof(o));
    o.dot_mode = c->dot_mode;
    expected(c, &want);

    /* the model agrees with the table (else the model is wrong) */
    model((const u_char *) c->in.data, c->in.len, &o, &mod);
    compare(c->name, "model", &mod, &want, &o);

    run_all_ways(c->name, (const u_char *) c->in.data, c->in.len, &o,
                 &want);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Random inputs against the model                                     */

START_TEST(test_data_random)
{
    static const char  alphabet[] = "a.\r\n";
    static result_t    want;
    u_char             in[160];
    uint32_t           seed;
    size_t             len, i;
    opts_t             o;
    char               name[64];

    /* _i picks the seed: a failure names a reproducible input */
    seed = (uint32_t) _i + 1;
    len = 20 + lcg(&seed) % (sizeof(in) - 20);

    for (i = 0; i < len; i++) {
        /* mostly text, so that lines have length */
        in[i] = (lcg(&seed) % 3 == 0) ? (u_char) alphabet[lcg(&seed) % 4]
                                      : (u_char) 'a';
    }

    memset(&o, 0, sizeof(o));
    o.dot_mode = (_i % 2 == 0);
    o.finish = !o.dot_mode;
    o.max_line = (_i % 3 == 0) ? 4 : 0;
    o.hdr_max = (_i % 4 == 1) ? 1024 : 0;

    model(in, len, &o, &want);
    snprintf(name, sizeof(name), "random input %d (%s)", _i,
             o.dot_mode ? "DATA" : "BDAT");
    run_all_ways(name, in, len, &o, &want);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Limits                                                              */

START_TEST(test_data_line_limit)
{
    static result_t  want;
    opts_t           o;
    const char      *in;

    memset(&o, 0, sizeof(o));
    o.dot_mode = 1;
    o.max_line = 10;

    /* exactly 10 characters per line: fine (the stuffed dot is not
     * counted, the CRLF is not counted) */
    in = "0123456789\r\n.123456789A\r\n.\r\n";
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.long_line, 0);
    run_all_ways("10 characters", (const u_char *) in, strlen(in), &o,
                 &want);

    /* 11: flagged, but the message is still read to its end */
    in = "short\r\n0123456789A\r\nshort\r\n.\r\n";
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.long_line, 1);
    ck_assert_int_eq(want.rc, PST_DONE);
    run_all_ways("11 characters", (const u_char *) in, strlen(in), &o,
                 &want);

    /* a bare LF ends the count as well */
    in = "0123456789\n0123456789\r\n.\r\n";
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.long_line, 0);
    run_all_ways("bare LF resets the count", (const u_char *) in,
                 strlen(in), &o, &want);
}
END_TEST


START_TEST(test_data_size_limit)
{
    static result_t  want, got;
    size_t           bound;
    opts_t           o;
    const char      *in;

    memset(&o, 0, sizeof(o));
    o.dot_mode = 1;

    /* 12 bytes out ("0123456789\r\n") against limits around it */
    in = "0123456789\r\n.\r\nQUIT\r\n";

    o.max_size = 12;
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.too_big, 0);
    run_all_ways("size 12, limit 12", (const u_char *) in, strlen(in), &o,
                 &want);

    o.max_size = 11;
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.too_big, 1);
    run_all_ways("size 12, limit 11", (const u_char *) in, strlen(in), &o,
                 &want);

    /* far over: output stops at the limit, the input is still read up
     * to the end of the data, and no further */
    in = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nbbbbbbbbbbbbbbbbbbbb\r\n"
         "..cccc\r\n.\r\nQUIT\r\n";
    o.max_size = 5;
    bound = strlen(in);
    run((const u_char *) in, strlen(in), &bound, OUT_MAX, &o, &got);
    ck_assert_int_eq(got.rc, PST_DONE);
    ck_assert_uint_eq(got.end, strlen(in) - 6);
    ck_assert_uint_eq(got.too_big, 1);
    ck_assert_uint_le(got.olen, 5);
    ck_assert_int_eq(got.size, 30 + 2 + 20 + 2 + 5 + 2);

    model((const u_char *) in, strlen(in), &o, &want);
    run_all_ways("far over the limit", (const u_char *) in, strlen(in), &o,
                 &want);
}
END_TEST


START_TEST(test_data_header)
{
    static result_t  want, got;
    size_t           bound;
    opts_t           o;
    const char      *in;

    memset(&o, 0, sizeof(o));
    o.dot_mode = 1;
    o.hdr_max = 1024;

    in = "Subject: test\r\nFrom: a@b.example\r\n\r\nbody\r\n\r\nmore\r\n"
         ".\r\n";
    bound = strlen(in);
    run((const u_char *) in, strlen(in), &bound, OUT_MAX, &o, &got);
    ck_assert_uint_eq(got.hlen, 36);
    ck_assert_mem_eq(got.hdr, "Subject: test\r\nFrom: a@b.example\r\n\r\n",
                     36);
    ck_assert_uint_eq(got.hdr_overflow, 0);
    model((const u_char *) in, strlen(in), &o, &want);
    run_all_ways("header section", (const u_char *) in, strlen(in), &o,
                 &want);

    /* bare LF in the header: normalised there too */
    in = "Subject: test\n\nbody\r\n.\r\n";
    bound = strlen(in);
    run((const u_char *) in, strlen(in), &bound, OUT_MAX, &o, &got);
    ck_assert_uint_eq(got.hlen, 17);
    ck_assert_mem_eq(got.hdr, "Subject: test\r\n\r\n", 17);

    /* no empty line: everything is header */
    in = "Subject: test\r\n.\r\n";
    model((const u_char *) in, strlen(in), &o, &want);
    ck_assert_uint_eq(want.hlen, 15);
    run_all_ways("no body", (const u_char *) in, strlen(in), &o, &want);

    /* over hdr_max: flagged, and the message itself is complete */
    o.hdr_max = 20;
    in = "Subject: a long subject line\r\n\r\nbody\r\n.\r\n";
    bound = strlen(in);
    run((const u_char *) in, strlen(in), &bound, OUT_MAX, &o, &got);
    ck_assert_uint_eq(got.hdr_overflow, 1);
    ck_assert_uint_eq(got.olen, strlen(in) - 3);
    model((const u_char *) in, strlen(in), &o, &want);
    run_all_ways("header overflow", (const u_char *) in, strlen(in), &o,
                 &want);

    /* exactly hdr_max: fits */
    o.hdr_max = 19;
    in = "Subject: abcdef\r\n\r\nbody\r\n.\r\n";
    bound = strlen(in);
    run((const u_char *) in, strlen(in), &bound, OUT_MAX, &o, &got);
    ck_assert_uint_eq(got.hdr_overflow, 0);
    ck_assert_uint_eq(got.hlen, 19);
}
END_TEST


/* ------------------------------------------------------------------ */
/* BDAT and pst_smtp_data_finish                                       */

typedef struct {
    const char                  *name;
    tstr_t                       in;
    tstr_t                       out;
    unsigned                     bare_lf;
    unsigned                     bare_cr;
} finish_case_t;

static const finish_case_t  finish_cases[] = {
    { "ends with CRLF", T("a\r\n"), T("a\r\n"), 0, 0 },
    { "no final CRLF", T("abc"), T("abc\r\n"), 0, 0 },
    { "final CR", T("abc\r"), T("abc\r\n"), 0, 1 },
    { "final LF", T("abc\n"), T("abc\r\n"), 1, 0 },
    { "final CR CR", T("abc\r\r"), T("abc\r\n\r\n"), 0, 1 },
    { "dot line", T("a\r\n."), T("a\r\n.\r\n"), 0, 0 },
    { "lone dot", T(".\r\n"), T(".\r\n"), 0, 0 },
};


START_TEST(test_bdat_finish)
{
    const finish_case_t  *c = &finish_cases[_i];
    static result_t       want, mod;
    opts_t                o;

    memset(&o, 0, sizeof(o));
    o.finish = 1;

    memset(&want, 0, sizeof(want));
    memcpy(want.out, c->out.data, c->out.len);
    want.olen = c->out.len;
    want.rc = PST_AGAIN;
    want.end = c->in.len;
    want.bare_lf = c->bare_lf;
    want.bare_cr = c->bare_cr;
    want.size = (off_t) c->out.len;

    model((const u_char *) c->in.data, c->in.len, &o, &mod);
    compare(c->name, "model", &mod, &want, &o);

    run_all_ways(c->name, (const u_char *) c->in.data, c->in.len, &o,
                 &want);
}
END_TEST


START_TEST(test_bdat_finish_empty)
{
    pst_smtp_data_t  d;
    u_char           out[4];

    /* nothing sent at all (BDAT 0 LAST): nothing to close */
    memset(&d, 0, sizeof(d));
    pst_smtp_data_init(&d, 0);
    ck_assert_uint_eq(pst_smtp_data_finish(&d, out), 0);
    ck_assert_int_eq(d.size, 0);
}
END_TEST


START_TEST(test_bdat_chunks_continue)
{
    pst_smtp_data_t  d;
    u_char           out[64], *p;
    size_t           olen, n;
    const char      *c1 = "Subject: x\r\n\r\nline one\r";
    const char      *c2 = "\nline two";
    const char      *want = "Subject: x\r\n\r\nline one\r\nline two\r\n";

    /* one parser over several BDAT chunks: state carries across, and
     * finish closes the last line once.  init leaves the limits and the
     * header buffer to the caller (pst_smtp_data_open sets them) */
    memset(&d, 0, sizeof(d));
    pst_smtp_data_init(&d, 0);

    p = (u_char *) c1;
    olen = sizeof(out);
    ck_assert_int_eq(pst_smtp_data_parse(&d, &p, p + strlen(c1), out, &olen),
                     PST_AGAIN);
    ck_assert_uint_eq(olen, strlen(c1) - 1);

    n = olen;
    p = (u_char *) c2;
    olen = sizeof(out) - n;
    ck_assert_int_eq(pst_smtp_data_parse(&d, &p, p + strlen(c2), out + n,
                                         &olen), PST_AGAIN);
    n += olen;
    n += pst_smtp_data_finish(&d, out + n);

    ck_assert_uint_eq(n, strlen(want));
    ck_assert_mem_eq(out, want, n);
    ck_assert_uint_eq(d.bare_cr, 0);
    ck_assert_uint_eq(d.bare_lf, 0);
    ck_assert_int_eq(d.size, (off_t) n);
}
END_TEST


Suite *
suite_smtp_data(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("smtp_data");

    tc = tcase_create("data");
    tcase_add_loop_test(tc, test_data_table, 0, pst_nelems(data_cases));
    tcase_add_loop_test(tc, test_data_random, 0, 40);
    tcase_add_test(tc, test_data_line_limit);
    tcase_add_test(tc, test_data_size_limit);
    tcase_add_test(tc, test_data_header);
    suite_add_tcase(s, tc);

    tc = tcase_create("bdat");
    tcase_add_loop_test(tc, test_bdat_finish, 0, pst_nelems(finish_cases));
    tcase_add_test(tc, test_bdat_finish_empty);
    tcase_add_test(tc, test_bdat_chunks_continue);
    suite_add_tcase(s, tc);

    return s;
}
