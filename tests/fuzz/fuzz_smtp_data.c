/*
 * fuzz_smtp_data.c -- libFuzzer harness for the DATA/BDAT byte parser
 * (pst_smtp_data_init/parse/finish in pst_smtp_parse.c).
 *
 * Input: 4 option bytes, then the message bytes.  The options choose
 * DATA or BDAT, the line, size and header limits, whether the message
 * is finished as a BDAT LAST would be, an output buffer size (from the
 * minimum of 3 bytes) and a seed for the split points.
 *
 * The same bytes are parsed twice: whole into a large output buffer,
 * and cut into chunks at pseudo-random points into a small one.  Each
 * chunk is an exact-size allocation so that ASan catches a read past
 * the end of a read.  Both runs must agree on everything the session
 * uses: the result, where the data ended, the output, the header copy
 * and every flag.  A difference calls abort().
 */

#include "pst_core.h"
#include "pst_smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


typedef struct {
    u_char                      *out;
    size_t                       olen;
    size_t                       osize;
    int                          rc;
    size_t                       end;       /* input consumed */
    unsigned                     flags;
    off_t                        size;
    u_char                      *hdr;
    size_t                       hlen;
} fz_result_t;

typedef struct {
    int                          dot_mode;
    size_t                       max_line;
    off_t                        max_size;
    size_t                       hdr_max;
    int                          finish;
} fz_opts_t;


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_smtp_data: %s\n", what);
    abort();
}


static void
fz_put(fz_result_t *r, const u_char *p, size_t n)
{
    if (r->olen + n > r->osize) {
        fz_fail("output larger than the input allows");
    }
    memcpy(r->out + r->olen, p, n);
    r->olen += n;
}


static uint32_t
fz_rand(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}


/*
 * Parse in[0..len): chunks of 1..maxchunk bytes chosen by seed (seed 0:
 * one chunk), into an output buffer of obsize bytes.
 */
static void
fz_run(const u_char *in, size_t len, const fz_opts_t *o, uint32_t seed,
    size_t maxchunk, size_t obsize, fz_result_t *r)
{
    pst_smtp_data_t   d;
    pst_buf_t        *hdr;
    u_char           *chunk, *pos, *obuf;
    size_t            a, b, olen, guard;
    int               rc;

    r->olen = 0;
    r->rc = PST_AGAIN;
    r->end = len;

    hdr = o->hdr_max ? pst_buf_alloc(16) : NULL;
    obuf = malloc(obsize);
    if (obuf == NULL || (o->hdr_max && hdr == NULL)) {
        fz_fail("malloc");
    }

    pst_smtp_data_init(&d, o->dot_mode);
    d.max_line = o->max_line;
    d.max_size = o->max_size;
    d.hdr = hdr;
    d.hdr_max = o->hdr_max;

    for (a = 0; a < len; a = b) {
        b = (seed == 0) ? len : a + 1 + fz_rand(&seed) % maxchunk;
        if (b > len) {
            b = len;
        }

        chunk = malloc(b - a);
        if (chunk == NULL) {
            fz_fail("malloc");
        }
        memcpy(chunk, in + a, b - a);
        pos = chunk;

        for (guard = 0; pos < chunk + (b - a); guard++) {
            /* each call makes progress: at least one byte in or out */
            if (guard > 2 * (b - a) + 4) {
                fz_fail("no progress");
            }

            olen = obsize;
            rc = pst_smtp_data_parse(&d, &pos, chunk + (b - a), obuf, &olen);
            if (olen > obsize || pos > chunk + (b - a) || pos < chunk) {
                fz_fail("parse wrote or read out of bounds");
            }
            fz_put(r, obuf, olen);

            if (rc == PST_DONE) {
                r->rc = PST_DONE;
                r->end = a + (size_t) (pos - chunk);
                free(chunk);
                goto done;
            }
            if (rc != PST_AGAIN) {
                fz_fail("parse returned neither DONE nor AGAIN");
            }
        }

        free(chunk);
    }

    if (o->finish) {
        olen = pst_smtp_data_finish(&d, obuf);
        if (olen > 2) {
            fz_fail("data_finish wrote more than a CRLF");
        }
        fz_put(r, obuf, olen);
    }

done:

    r->flags = d.bare_lf | d.bare_cr << 1 | d.long_line << 2
               | d.too_big << 3 | d.hdr_overflow << 4 | d.in_header << 5;
    r->size = d.size;
    r->hlen = 0;

    if (hdr != NULL) {
        r->hlen = pst_buf_size(hdr);
        if (r->hlen > o->hdr_max) {
            fz_fail("header copy over hdr_max");
        }
        memcpy(r->hdr, hdr->pos, r->hlen);
        pst_buf_destroy(hdr);
    }

    free(obuf);
}


static void
fz_compare(const fz_result_t *x, const fz_result_t *y, const fz_opts_t *o)
{
    unsigned  mask;

    if (x->rc != y->rc) {
        fz_fail("split changed the result (DONE/AGAIN)");
    }
    if (x->end != y->end) {
        fz_fail("split changed where the data ended");
    }
    /* past the size limit nothing more is copied, so whether the
     * header copy overflowed first depends on the runs; the session
     * answers 552 then and never looks at the header copy */
    if ((x->flags & 0x08) && (y->flags & 0x08)) {
        mask = ~0x10u;
    } else {
        mask = ~0u;
    }
    if ((x->flags & mask) != (y->flags & mask)) {
        fz_fail("split changed a flag (bare LF/CR, long line, too big,"
                " header overflow, in header)");
    }
    if (x->size != y->size) {
        fz_fail("split changed the size");
    }

    if (x->flags & 0x08) {
        /* too big: output stops at the limit, after a prefix that
         * depends on the reads; only the prefix must agree */
        if ((off_t) x->olen > o->max_size || (off_t) y->olen > o->max_size
            || memcmp(x->out, y->out, pst_min(x->olen, y->olen)) != 0)
        {
            fz_fail("split changed the output before the size limit");
        }
        return;
    }

    if (x->olen != y->olen || memcmp(x->out, y->out, x->olen) != 0) {
        fz_fail("split changed the output");
    }
    if ((off_t) x->olen != x->size) {
        fz_fail("size does not count the output");
    }
    if (!(x->flags & 0x10)
        && (x->hlen != y->hlen || memcmp(x->hdr, y->hdr, x->hlen) != 0))
    {
        fz_fail("split changed the header copy");
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t  limits[4] = { 0, 8, 78, 998 };
    static fz_result_t   whole, split;
    fz_opts_t            o;
    uint32_t             seed;
    size_t               cap, obsize;

    if (size < 4 || size > 65536) {
        return -1;
    }

    o.dot_mode = data[0] & 1;
    o.finish = !o.dot_mode && (data[0] & 2);
    o.max_line = limits[(data[0] >> 2) & 3];
    o.max_size = (data[0] & 0x10) ? (off_t) (data[1] % 64) + 1 : 0;
    /* never below the header buffer's first allocation (16 bytes):
     * pst_buf_append() bounds growth, not what already fits, and the
     * session's buffer (1 KiB) is always smaller than its limit (4k+) */
    o.hdr_max = (data[0] & 0x20) ? 16 + (size_t) (data[1] >> 2) : 0;
    if (data[0] & 0x40) {
        o.hdr_max += 4096;
    }
    obsize = 3 + data[2] % 16;
    seed = (uint32_t) data[3] + 1;

    data += 4;
    size -= 4;

    /* the output is at most twice the input (bare LF -> CRLF) plus the
     * CRLF of data_finish */
    cap = 2 * size + 2;
    if (whole.osize < cap) {
        free(whole.out);
        free(whole.hdr);
        free(split.out);
        free(split.hdr);
        whole.out = malloc(cap);
        whole.hdr = malloc(cap);
        split.out = malloc(cap);
        split.hdr = malloc(cap);
        if (whole.out == NULL || whole.hdr == NULL || split.out == NULL
            || split.hdr == NULL)
        {
            fz_fail("malloc");
        }
        whole.osize = cap;
        split.osize = cap;
    }

    fz_run(data, size, &o, 0, 0, 8192, &whole);
    fz_run(data, size, &o, seed, 1 + data[-1] % 13, obsize, &split);
    fz_compare(&whole, &split, &o);

    /* byte by byte with the smallest output buffer: the worst case */
    if (size <= 4096) {
        fz_run(data, size, &o, seed, 1, 3, &split);
        fz_compare(&whole, &split, &o);
    }

    return 0;
}
