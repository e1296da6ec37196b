/*
 * fuzz_mime7.c -- libFuzzer harness for the 7-bit downgrade
 * (pst_mime7.c): the input is a message as a client sent it.  When the
 * conversion succeeds, the output must be fit for a next hop without
 * 8BITMIME: no octet over 127, no NUL, no line over 998 octets before
 * its CRLF, and no bigger than the bound it was given.  Byte 0 of the
 * input picks a small or a generous bound.
 */

#include "pst_core.h"
#include "pst_mime7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_buf_t    *out = NULL;
    const char   *why = NULL;
    const u_char *p;
    size_t        max, line = 0;

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
    for (p = out->pos; p < out->last; p++) {
        if (*p >= 0x80 || *p == '\0') {
            abort();
        }
        line = (*p == '\n') ? 0 : line + 1;
        if (line > 999) {
            abort();
        }
    }
    pst_buf_destroy(out);
    return 0;
}
