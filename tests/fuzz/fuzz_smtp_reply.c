/*
 * fuzz_smtp_reply.c -- libFuzzer harness for what the SMTP client reads
 * from a server (pst_smtp_proto.c): the multi-line reply parser, the
 * EHLO keyword parser on every reply it returns, and -- on the same
 * bytes taken as a message -- the dot-stuffer.
 *
 * The first input byte chooses the options (the reply size limit, the
 * read size, the stuffer's output room); the rest is what the server
 * sent.  It is appended to a buffer in reads of the chosen size, the
 * way the client reads.  Invariants checked besides the sanitizers:
 * a reply has a code from 200 to 559, a well-formed enhanced code or
 * none, text within the limit and without CR or NUL; the parser never
 * leaves a complete line unconsumed when it asks for more; the stuffed
 * message, read back by the server's DATA parser, is the message with
 * its line ends normalised, and ends exactly at the terminator.
 */

#include "pst_core.h"
#include "pst_smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_BUF   (2 * PST_SMTP_REPLY_LINE_MAX)


static void
fz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_smtp_reply: invariant failed: %s\n", what);
        abort();
    }
}


static void
fz_reply(const pst_smtp_reply_t *r, size_t max)
{
    pst_smtp_ehlo_t  e;
    u_char          *copy;
    size_t           n;

    fz_check(r->code >= 200 && r->code <= 559, "reply code range");
    fz_check(r->text.len <= max, "text within the limit");
    fz_check(memchr(r->text.data, '\r', r->text.len) == NULL
             && memchr(r->text.data, '\0', r->text.len) == NULL,
             "no CR or NUL in the text");

    n = strlen(r->ecode);
    fz_check(n == 0 || (pst_smtp_ecode_len((u_char *) r->ecode, n) == n
                        && r->ecode[0] - '0' == r->code / 100),
             "enhanced code well formed");

    /* an exact-size copy: ASan sees a read past the text */
    copy = malloc(r->text.len ? r->text.len : 1);
    memcpy(copy, r->text.data, r->text.len);
    pst_smtp_ehlo_parse(copy, r->text.len, &e);
    fz_check(e.size >= 0, "SIZE not negative");
    fz_check((e.auth != 0) <= ((e.caps & PST_SMTP_CAP_AUTH) != 0),
             "mechanisms only with AUTH");
    free(copy);
}


static void
fz_replies(const uint8_t *data, size_t size, size_t max, size_t step)
{
    pst_smtp_reply_parser_t  rp;
    pst_smtp_reply_t         r;
    pst_buf_t               *b;
    size_t                   off = 0, k;
    int                      rc = PST_AGAIN;

    b = pst_buf_alloc(FZ_BUF);
    pst_smtp_reply_init(&rp, max);

    while (off < size && rc != PST_ERROR) {
        if (pst_buf_free(b) < step) {
            pst_buf_compact(b);
        }
        k = pst_min(pst_min(step, size - off), pst_buf_free(b));
        memcpy(b->last, data + off, k);
        b->last += k;
        off += k;

        for ( ;; ) {
            rc = pst_smtp_reply_parse(&rp, b, &r);
            if (rc != PST_OK) {
                break;
            }
            fz_reply(&r, rp.max);
        }

        if (rc == PST_AGAIN) {
            fz_check(memchr(b->pos, '\n', pst_buf_size(b)) == NULL
                     || rp.skipping, "a complete line left unread");
            fz_check(pst_buf_size(b) < PST_SMTP_REPLY_LINE_MAX,
                     "a line over the limit not refused");
        }
    }

    pst_smtp_reply_free(&rp);
    pst_buf_destroy(b);
}


static void
fz_stuff(const uint8_t *data, size_t size, size_t olen)
{
    pst_smtp_stuff_t   st;
    pst_smtp_data_t    d;
    const u_char      *p;
    u_char            *out, *norm, *back, *q;
    size_t             n = 0, nn, bl;

    out = malloc(2 * size + 8);
    norm = malloc(2 * size + 8);
    back = malloc(2 * size + 8);

    pst_smtp_stuff_init(&st, 1);
    p = data;
    while (p < data + size) {
        n += pst_smtp_stuff(&st, &p, data + size, out + n, olen);
    }
    n += pst_smtp_stuff_end(&st, out + n);

    pst_smtp_stuff_init(&st, 0);
    p = data;
    nn = pst_smtp_stuff(&st, &p, data + size, norm, 2 * size + 8);
    nn += pst_smtp_stuff_end(&st, norm + nn);

    memset(&d, 0, sizeof(d));
    pst_smtp_data_init(&d, 1);
    q = out;
    bl = 2 * size + 8;
    fz_check(pst_smtp_data_parse(&d, &q, out + n, back, &bl) == PST_DONE,
             "the stuffed message ends at its terminator");
    fz_check(q == out + n, "nothing after the terminator");
    fz_check(bl == nn && memcmp(back, norm, nn) == 0,
             "unstuffing gives the normalised message back");

    free(out);
    free(norm);
    free(back);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t  maxes[] = { 0, 16, 512, 5000 };
    unsigned             opt;

    if (size == 0) {
        return 0;
    }

    opt = data[0];
    data++;
    size--;

    fz_replies(data, size, maxes[opt & 3], 1 + ((opt >> 2) & 7) * 97);
    fz_stuff(data, size, 2 + (opt >> 5));

    return 0;
}
