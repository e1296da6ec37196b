/*
 * pst_mime7_enc.c -- the two encodings of a 7-bit downgrade: quoted-
 * printable (RFC 2045 6.7) for text, base64 (RFC 2045 6.8) for the rest.
 * Output lines have at most 76 octets and end in CRLF.
 */

#include "pst_core.h"
#include "pst_mime7_int.h"


#define PST_M7_QP_MAX     76      /* with the soft break's "=" */
#define PST_M7_B64_IN     57      /* octets per 76-character line */

static const char  pst_m7_hex[] = "0123456789ABCDEF";
static const char  pst_m7_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


/* The token of octet ch: itself, or =XX.  last: the line's last octet
 * (white space there must be encoded, RFC 2045 6.7 rule 3). */
static size_t
pst_m7_qp_token(u_char ch, int last, u_char *tok)
{
    if ((ch >= 33 && ch <= 126 && ch != '=')
        || ((ch == ' ' || ch == '\t') && !last))
    {
        tok[0] = ch;
        return 1;
    }
    tok[0] = '=';
    tok[1] = (u_char) pst_m7_hex[ch >> 4];
    tok[2] = (u_char) pst_m7_hex[ch & 0x0f];
    return 3;
}


/* One input line (without its CRLF) into soft-broken output lines. */
static int
pst_m7_qp_line(pst_m7_t *c, const u_char *p, size_t n)
{
    u_char  line[PST_M7_QP_MAX + 8], tok[3];
    size_t  col = 0, i, k;
    int     rc;

    for (i = 0; i < n; i++) {
        k = pst_m7_qp_token(p[i], i + 1 == n, tok);
        if (col + k > PST_M7_QP_MAX - 1) {
            line[col++] = '=';
            line[col++] = '\r';
            line[col++] = '\n';
            if ((rc = pst_m7_put(c, line, col)) != PST_OK) {
                return rc;
            }
            col = 0;
        }
        memcpy(line + col, tok, k);
        col += k;
    }
    return pst_m7_put(c, line, col);
}


int
pst_m7_qp(pst_m7_t *c, const u_char *p, size_t n)
{
    const u_char  *end = p + n, *eol;
    int            rc;

    while (p < end) {
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        if (eol == NULL) {
            return pst_m7_qp_line(c, p, (size_t) (end - p));
        }
        if ((rc = pst_m7_qp_line(c, p, (size_t) (eol - p))) != PST_OK
            || (rc = pst_m7_put(c, "\r\n", 2)) != PST_OK)
        {
            return rc;
        }
        p = eol + 2;
    }
    return PST_OK;
}


int
pst_m7_base64(pst_m7_t *c, const u_char *p, size_t n)
{
    u_char  line[80], *q;
    size_t  i, k;
    int     rc;

    while (n > 0) {
        k = n < PST_M7_B64_IN ? n : PST_M7_B64_IN;
        q = line;
        for (i = 0; i + 2 < k; i += 3) {
            *q++ = (u_char) pst_m7_b64[p[i] >> 2];
            *q++ = (u_char) pst_m7_b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *q++ = (u_char) pst_m7_b64[((p[i + 1] & 15) << 2)
                                      | (p[i + 2] >> 6)];
            *q++ = (u_char) pst_m7_b64[p[i + 2] & 63];
        }
        if (i < k) {
            *q++ = (u_char) pst_m7_b64[p[i] >> 2];
            *q++ = (u_char) pst_m7_b64[((p[i] & 3) << 4)
                                      | (i + 1 < k ? p[i + 1] >> 4 : 0)];
            *q++ = (u_char) (i + 1 < k ? pst_m7_b64[(p[i + 1] & 15) << 2]
                                       : '=');
            *q++ = '=';
        }
        *q++ = '\r';
        *q++ = '\n';
        if ((rc = pst_m7_put(c, line, (size_t) (q - line))) != PST_OK) {
            return rc;
        }
        p += k;
        n -= k;
    }
    return PST_OK;
}
