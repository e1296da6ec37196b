/*
 * fuzz_mime7.c -- libFuzzer harness for the 7-bit downgrade
 * (pst_mime7.c): the input is a message as a client sent it.  When the
 * conversion succeeds, the output must be fit for a next hop without
 * 8BITMIME: no octet over 127, no NUL, no line over 998 octets before
 * its CRLF (or the end), no bigger than the bound it was given, and,
 * when the input's lines all end in CRLF (the spool's are: bare CR and
 * LF are normalised or refused at DATA), no bare CR or LF either.
 * Byte 0 of the input picks a small or a generous bound.
 */

#include "pst_core.h"
#include "pst_mime7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* 1 when every CR is followed by LF and every LF follows a CR */
static int
fuzz_crlf_only(const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if ((p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
            || (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
        {
            return 0;
        }
    }
    return 1;
}


static void
fuzz_check(const pst_buf_t *out, int crlf)
{
    const u_char  *p;
    size_t         line = 0;

    for (p = out->pos; p < out->last; p++) {
        if (*p >= 0x80 || *p == '\0') {
            abort();
        }
        if (*p == '\n') {
            line = 0;
        } else if (!(*p == '\r' && p + 1 < out->last && p[1] == '\n')
                   && ++line > 998)
        {
            abort();
        }
    }
    if (crlf && !fuzz_crlf_only(out->pos, pst_buf_size(out))) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_buf_t    *out = NULL;
    const char   *why = NULL;
    size_t        max;

    if (size < 1) {
        return 0;
    }
    max = (data[0] & 1) ? 64 : (size - 1) * 3 + 65536;

    if (pst_mime7_convert(data + 1, size - 1, max, &out, &why) != PST_OK) {
        if (why == NULL) {
            abort();
        }
        return 0;
    }
    if (pst_buf_size(out) > max) {
        abort();
    }
    fuzz_check(out, fuzz_crlf_only(data + 1, size - 1));
    pst_buf_destroy(out);
    return 0;
}
