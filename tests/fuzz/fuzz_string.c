/*
 * fuzz_string.c -- libFuzzer harness for the decoders of pst_string.c:
 * base64 (SASL responses) and xtext (ENVID, ORCPT, AUTH=, the spool
 * envelope), plus the number parsers the configuration uses.
 *
 * Round trips checked (abort() on a mismatch):
 *   - base64: decode(x) fits 3 * len / 4; when it succeeds,
 *     encode(decode(x)) is x up to the unused low bits of the last
 *     character before the padding (RFC 4648 3.5 lets a decoder accept
 *     non-zero pad bits), and decode(encode(y)) == y for y = the input.
 *   - xtext: decode(encode(y)) == y for any bytes y, the encoded
 *     length is what pst_xtext_encoded_length() said, and when decode
 *     succeeds, decode(encode(decode(x))) == decode(x).
 */

#include "pst_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_string: %s\n", what);
    abort();
}


static u_char *
fz_alloc(size_t n)
{
    u_char  *p;

    /* exact sizes: ASan reports a write one past the promised length */
    p = malloc(n ? n : 1);
    if (p == NULL) {
        fz_fail("malloc");
    }
    return p;
}


static int
fz_b64val(u_char c)
{
    const char  *s = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789+/";
    const char  *p = strchr(s, c);

    return (c != '\0' && p != NULL) ? (int) (p - s) : -1;
}


static void
fz_base64(const u_char *in, size_t n)
{
    u_char   *dec, *enc, *dec2;
    size_t    elen, i, pad;
    ssize_t   k, k2;
    int       mask;

    /* what every caller allocates for the decoded bytes */
    dec = fz_alloc(n / 4 * 3);
    k = pst_base64_decode(dec, in, n);

    if (k >= 0) {
        if ((size_t) k > n / 4 * 3) {
            fz_fail("base64: decoded more than 3/4 of the input");
        }

        elen = pst_base64_encoded_length((size_t) k);
        enc = fz_alloc(elen);
        if (pst_base64_encode(enc, dec, (size_t) k) != elen) {
            fz_fail("base64: encoder length differs from its promise");
        }
        if (elen != n) {
            fz_fail("base64: encode(decode(x)) has another length");
        }

        pad = 0;
        while (pad < n && in[n - 1 - pad] == '=') {
            pad++;
        }
        for (i = 0; i < n; i++) {
            if (enc[i] == in[i]) {
                continue;
            }
            /* only the last data character may differ, in its unused
             * low bits: 4 with "==", 2 with "=" */
            mask = (pad == 2) ? 0x0f : 0x03;
            if (pad == 0 || i != n - pad - 1
                || (fz_b64val(enc[i]) & ~mask) != (fz_b64val(in[i]) & ~mask)
                || fz_b64val(in[i]) < 0)
            {
                fz_fail("base64: encode(decode(x)) differs from x");
            }
        }
        free(enc);
    }
    free(dec);

    /* any bytes encode, and decode back */
    elen = pst_base64_encoded_length(n);
    enc = fz_alloc(elen);
    if (pst_base64_encode(enc, in, n) != elen) {
        fz_fail("base64: encoder length differs from its promise");
    }
    dec2 = fz_alloc(elen / 4 * 3);
    k2 = pst_base64_decode(dec2, enc, elen);
    if (k2 != (ssize_t) n || memcmp(dec2, in, n) != 0) {
        fz_fail("base64: decode(encode(y)) != y");
    }
    free(dec2);
    free(enc);
}


static void
fz_xtext(const u_char *in, size_t n)
{
    u_char   *dec, *enc, *dec2;
    size_t    elen;
    ssize_t   k, k2;

    dec = fz_alloc(n);
    k = pst_xtext_decode(dec, in, n);
    if (k >= 0) {
        if ((size_t) k > n) {
            fz_fail("xtext: decoded longer than the input");
        }
        elen = pst_xtext_encoded_length(dec, (size_t) k);
        enc = fz_alloc(elen);
        if (pst_xtext_encode(enc, dec, (size_t) k) != elen) {
            fz_fail("xtext: encoder length differs from its promise");
        }
        dec2 = fz_alloc(elen);
        k2 = pst_xtext_decode(dec2, enc, elen);
        if (k2 != k || memcmp(dec2, dec, (size_t) k) != 0) {
            fz_fail("xtext: decode(encode(decode(x))) != decode(x)");
        }
        free(dec2);
        free(enc);
    }
    free(dec);

    elen = pst_xtext_encoded_length(in, n);
    enc = fz_alloc(elen);
    if (pst_xtext_encode(enc, in, n) != elen) {
        fz_fail("xtext: encoder length differs from its promise");
    }
    dec2 = fz_alloc(elen);
    k2 = pst_xtext_decode(dec2, enc, elen);
    if (k2 != (ssize_t) n || memcmp(dec2, in, n) != 0) {
        fz_fail("xtext: decode(encode(y)) != y");
    }
    free(dec2);
    free(enc);
}


static void
fz_numbers(const u_char *in, size_t n)
{
    pst_str_t  s;
    int64_t    v;
    ssize_t    z;

    v = pst_atoi(in, n, 1000);
    if (v > 1000 || v < -1) {
        fz_fail("pst_atoi: outside [-1, max]");
    }
    v = pst_atoi(in, n, INT64_MAX);
    if (v < -1) {
        fz_fail("pst_atoi: below -1");
    }

    s.data = (u_char *) in;
    s.len = n;
    z = pst_parse_size(&s);
    if (z < -1) {
        fz_fail("pst_parse_size: below -1");
    }
    v = pst_parse_msec(&s);
    if (v < -1 || v > 100LL * 365 * 86400 * 1000) {
        fz_fail("pst_parse_msec: outside [-1, 100 years]");
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *copy;

    /* an exact-size copy: reads past the end are caught */
    copy = fz_alloc(size);
    memcpy(copy, data, size);

    fz_base64(copy, size);
    fz_xtext(copy, size);
    fz_numbers(copy, size);

    free(copy);
    return 0;
}
