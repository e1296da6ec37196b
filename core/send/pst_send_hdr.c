/*
 * pst_send_hdr.c -- header fields for postern-send.
 *
 * Every field is written folded (RFC 5322 2.2.3) at whitespace so that
 * no line passes 78 columns where it can be helped (a longer word gets a
 * line of its own), and never 998.  Text with non-ASCII or control
 * characters, or a word that could not fit in 998, becomes RFC 2047 "B"
 * encoded words of at most 75 characters, never splitting a UTF-8
 * sequence.  Address lists keep the addresses as they are and
 * encode or quote only the display names; an address too long for a
 * line of 998 octets cannot be folded and is refused.
 */

#include "pst_send.h"

#define PST_SEND_FOLD       78
/* set in a column count: the next word stays on the field name's line
 * (a fold right after "Name:" leaves a leading space in some parsers) */
#define PST_SEND_FIRST      ((size_t) 1 << (sizeof(size_t) * 8 - 1))
#define PST_SEND_EW_BYTES   39      /* 52 base64 chars + 12 = 64 */

static void pst_send_fold_word(FILE *f, const char *w, size_t len,
    size_t *col, int glue);
static size_t pst_send_utf8_cut(const u_char *p, size_t n, size_t max);
static int pst_send_hdr_phrase(FILE *f, const char *p, size_t n,
    size_t *col);
static int pst_send_needs_quote(const char *p, size_t n);
static int pst_send_has_ctl(const char *p, size_t n);
static int pst_send_hdr_one_addr(FILE *f, const char *item, int last,
    size_t *col);


int
pst_send_is_ascii(const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (p[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}


int
pst_send_is_utf8(const u_char *p, size_t n)
{
    size_t    i = 0, k, need;
    uint32_t  c, min;

    while (i < n) {
        c = p[i++];
        if (c < 0x80) {
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            c &= 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            c &= 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            c &= 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < need) {
            return 0;
        }
        for (k = 0; k < need; k++, i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }
            c = (c << 6) | (p[i] & 0x3f);
        }
        /* no overlong form, no surrogate, nothing past U+10FFFF */
        if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) {
            return 0;
        }
    }
    return 1;
}


/* One word: a space (or CRLF and a space when it would not fit) first,
 * unless glue says it sticks to what came before. */
static void
pst_send_fold_word(FILE *f, const char *w, size_t len, size_t *col,
    int glue)
{
    int  first = (*col & PST_SEND_FIRST) != 0;

    *col &= ~PST_SEND_FIRST;
    if (!glue) {
        if (*col + 1 + len > PST_SEND_FOLD && !first) {
            fputs("\r\n", f);
            *col = 0;
        }
        fputc(' ', f);
        (*col)++;
    }
    fwrite(w, 1, len, f);
    *col += len;
}


/* The longest prefix of p[0..n) up to max bytes ending on a character. */
static size_t
pst_send_utf8_cut(const u_char *p, size_t n, size_t max)
{
    size_t  k;

    if (n <= max) {
        return n;
    }
    k = max;
    while (k > 0 && (p[k] & 0xC0) == 0x80) {
        k--;
    }
    return k > 0 ? k : max;
}


int
pst_send_hdr_encode(FILE *f, const u_char *p, size_t n, size_t *col)
{
    u_char  word[128];
    size_t  k, len;

    while (n > 0) {
        k = pst_send_utf8_cut(p, n, PST_SEND_EW_BYTES);
        memcpy(word, "=?UTF-8?B?", 10);
        len = 10 + pst_base64_encode(word + 10, p, k);
        memcpy(word + len, "?=", 2);
        len += 2;
        pst_send_fold_word(f, (char *) word, len, col, 0);
        p += k;
        n -= k;
    }
    return PST_OK;
}


int
pst_send_hdr_text(FILE *f, const char *name, const char *value)
{
    const char  *p, *w;
    size_t       col, n = strlen(value), max;
    int          encode;

    /* the longest word that fits after "Name: " on the first line (or
     * on a line of its own after a fold) */
    max = PST_SEND_MAX_LINE - 2 - strlen(name);
    fputs(name, f);
    fputc(':', f);
    col = (strlen(name) + 1) | PST_SEND_FIRST;

    /* encode when non-ASCII, a control character, or a word too long */
    encode = !pst_send_is_ascii((const u_char *) value, n);
    for (p = value; *p && !encode; p = w) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        for (w = p; *w && *w != ' ' && *w != '\t'; w++) {
            if ((u_char) *w < 0x20 || *w == 0x7f) {
                encode = 1;
            }
        }
        /* a long word (a URL, a token) stays whole on a line of its
         * own: encoded words would break structured fields; only one
         * that would pass 998 octets, even right after the field
         * name, is encoded */
        if ((size_t) (w - p) > max) {
            encode = 1;
        }
    }

    if (encode) {
        pst_send_hdr_encode(f, (const u_char *) value, n, &col);
    } else {
        for (p = value; *p; p = w) {
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            for (w = p; *w && *w != ' ' && *w != '\t'; w++) {
                /* a word */
            }
            if (w > p) {
                pst_send_fold_word(f, p, (size_t) (w - p), &col, 0);
            }
        }
    }

    fputs("\r\n", f);
    return ferror(f) ? PST_ERROR : PST_OK;
}


char *
pst_send_addr_spec(const char *s)
{
    const char  *lt, *gt, *p;
    size_t       n;

    lt = strrchr(s, '<');
    if (lt != NULL) {
        gt = strchr(lt, '>');
        if (gt == NULL) {
            return NULL;
        }
        for (p = gt + 1; *p; p++) {
            if (!isspace((u_char) *p)) {
                return NULL;
            }
        }
        s = lt + 1;
        n = (size_t) (gt - s);
    } else {
        while (isspace((u_char) *s)) {
            s++;
        }
        n = strlen(s);
        while (n > 0 && isspace((u_char) s[n - 1])) {
            n--;
        }
    }

    for (p = s; p < s + n; p++) {
        if ((u_char) *p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
            return NULL;
        }
    }
    if (lt == NULL && n == 0) {
        return NULL;
    }
    return strndup(s, n);
}


static int
pst_send_has_ctl(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if ((u_char) p[i] < 0x20 || p[i] == 0x7f) {
            return 1;
        }
    }
    return 0;
}


static int
pst_send_needs_quote(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strchr("()<>[]:;@\\,.\"", p[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}


/* A display name: encoded words, a quoted string, or plain words. */
static int
pst_send_hdr_phrase(FILE *f, const char *p, size_t n, size_t *col)
{
    char        q[PST_SEND_MAX_LINE];
    const char *w, *end = p + n;
    size_t      i, k = 0;

    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        /* already quoted: unquote, then decide again */
        for (i = 1; i + 1 < n && k < sizeof(q) - 1; i++) {
            if (p[i] == '\\' && i + 2 < n) {
                i++;
            }
            q[k++] = p[i];
        }
        p = q;
        n = k;
        end = p + n;
    }

    /* non-ASCII, or a control character (a CR LF would start a field
     * of its own): encoded words carry anything safely */
    if (!pst_send_is_ascii((const u_char *) p, n) || n > 200
        || pst_send_has_ctl(p, n))
    {
        return pst_send_hdr_encode(f, (const u_char *) p, n, col);
    }

    if (pst_send_needs_quote(p, n)) {
        char    buf[2 * 200 + 3];

        k = 0;
        buf[k++] = '"';
        for (i = 0; i < n; i++) {
            if (p[i] == '"' || p[i] == '\\') {
                buf[k++] = '\\';
            }
            buf[k++] = p[i];
        }
        buf[k++] = '"';
        pst_send_fold_word(f, buf, k, col, 0);
        return PST_OK;
    }

    for ( ; p < end; p = w) {
        while (p < end && *p == ' ') {
            p++;
        }
        for (w = p; w < end && *w != ' '; w++) {
            /* a word */
        }
        if (w > p) {
            pst_send_fold_word(f, p, (size_t) (w - p), col, 0);
        }
    }
    return PST_OK;
}


static int
pst_send_hdr_one_addr(FILE *f, const char *item, int last, size_t *col)
{
    const char  *lt;
    char        *addr, *word;
    size_t       n, dn;

    addr = pst_send_addr_spec(item);
    if (addr == NULL) {
        return PST_ERROR;
    }

    lt = strrchr(item, '<');
    if (lt != NULL) {
        for (dn = (size_t) (lt - item); dn > 0 && item[dn - 1] == ' '; dn--)
        {
            /* trim */
        }
        if (dn > 0) {
            pst_send_hdr_phrase(f, item, dn, col);
        }
    }

    n = strlen(addr);
    word = malloc(n + 4);
    if (word == NULL) {
        free(addr);
        return PST_ERROR;
    }
    n = (size_t) sprintf(word, lt ? "<%s>%s" : "%s%s", addr, last ? "" : ",");
    pst_send_fold_word(f, word, n, col, 0);
    free(word);
    free(addr);

    return PST_OK;
}


int
pst_send_hdr_addrs(FILE *f, const char *name, const pst_send_list_t *l)
{
    size_t   i, col;
    char    *a;

    /* an address is never split: each must fit on a line, in the worst
     * case right after "Name: " and with "<", ">," around it; checked
     * before a byte is written */
    for (i = 0; i < l->n; i++) {
        a = pst_send_addr_spec(l->v[i]);
        if (a == NULL) {
            return PST_ERROR;
        }
        col = strlen(name) + 2 + strlen(a) + 3;
        free(a);
        if (col > PST_SEND_MAX_LINE) {
            return PST_DECLINED;
        }
    }

    fputs(name, f);
    fputc(':', f);
    col = (strlen(name) + 1) | PST_SEND_FIRST;

    for (i = 0; i < l->n; i++) {
        if (pst_send_hdr_one_addr(f, l->v[i], i + 1 == l->n, &col)
            != PST_OK)
        {
            return PST_ERROR;
        }
    }

    fputs("\r\n", f);
    return ferror(f) ? PST_ERROR : PST_OK;
}
