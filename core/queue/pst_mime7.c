/*
 * pst_mime7.c -- 8-bit to 7-bit downgrade of a MIME message for a next
 * hop without 8BITMIME (RFC 6152 section 3; RFC 2045, 2046).
 *
 * The message is walked as a tree of parts.  A part without 8-bit
 * octets (and without a line over 998 octets) is copied as it is.  A
 * leaf part with them is re-encoded: a text type in quoted-printable, every
 * other type in base64, its Content-Transfer-Encoding field replaced.
 * A multipart's parts are walked between its boundaries (the preamble
 * and epilogue, which readers ignore, are dropped when they are 8-bit);
 * a message/rfc822 part is walked as a message, and its own
 * Content-Transfer-Encoding becomes 7bit.  A message without
 * MIME-Version (the top one, or one in a message/rfc822, RFC 2045 4)
 * is one text/plain; charset=unknown-8bit part.  Header
 * fields are copied byte for byte, except the encoding fields a
 * conversion replaces; 8-bit octets in a header cannot be downgraded
 * here (RFC 2047 would need the charset), so the caller fails 5.6.3.
 *
 * Pure: memory in, memory out, thread safe (the relay runs it on an
 * I/O thread).  The encoders are in pst_mime7_enc.c.
 */

#include "pst_core.h"
#include "pst_mime7.h"
#include "pst_mime7_int.h"


#define PST_M7_DEPTH     20
#define PST_M7_LINE      998


typedef struct {
    const u_char        *head;       /* the header, up to its last CRLF */
    size_t               head_len;
    const u_char        *body;
    size_t               body_len;
    pst_str_t            type;       /* as written: compare caselessly */
    pst_str_t            subtype;
    pst_str_t            boundary;
    pst_str_t            cte;
    unsigned             mime:1;     /* MIME-Version present */
    unsigned             has_type:1;
} pst_m7_part_t;


static int pst_m7_walk(pst_m7_t *c, const u_char *p, size_t len,
    int message, int digest, int depth);


int
pst_mime7_needed(const u_char *msg, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (msg[i] >= 0x80 || msg[i] == '\0') {
            return 1;
        }
    }
    return 0;
}


/* 8-bit octets, NUL, or a line longer than RFC 5321 allows: its
 * octets before the CRLF, or before the end (a part's last line, whose
 * CRLF belongs to the delimiter that follows) */
static int
pst_m7_dirty(const u_char *p, size_t len)
{
    size_t  i, line = 0;

    for (i = 0; i < len; i++) {
        if (p[i] >= 0x80 || p[i] == '\0') {
            return 1;
        }
        if (p[i] == '\n') {
            line = 0;
        } else if (!(p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
                   && ++line > PST_M7_LINE)
        {
            return 1;
        }
    }
    return 0;
}


int
pst_m7_put(pst_m7_t *c, const void *p, size_t n)
{
    if (pst_buf_size(c->out) + n > c->max) {
        c->why = "the 7-bit form is too large";
        return PST_DECLINED;
    }
    if (pst_buf_append(c->out, p, n, c->max) != PST_OK) {
        return PST_ERROR;
    }
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Header fields                                                       */

/* The end of the field at p (after its CRLF and continuation lines). */
static const u_char *
pst_m7_field_end(const u_char *p, const u_char *end)
{
    const u_char  *nl;

    for ( ;; ) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            return end;
        }
        p = nl + 1;
        if (p == end || (*p != ' ' && *p != '\t')) {
            return p;
        }
    }
}


/* field "Name:" at p?  *v, *vlen: its value (folded, untrimmed) */
static int
pst_m7_field_is(const u_char *p, const u_char *fend, const char *name,
    const u_char **v, size_t *vlen)
{
    size_t  n = strlen(name);

    if ((size_t) (fend - p) <= n || p[n] != ':'
        || pst_strncasecmp((u_char *) p, (u_char *) name, n) != 0)
    {
        return 0;
    }
    *v = p + n + 1;
    *vlen = (size_t) (fend - *v);
    return 1;
}


/* Skip white space, folding and (comments). */
static const u_char *
pst_m7_cfws(const u_char *p, const u_char *end)
{
    int  depth = 0;

    for ( /* void */ ; p < end; p++) {
        if (*p == '(') {
            depth++;
        } else if (*p == ')' && depth > 0) {
            depth--;
        } else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r'
                   && *p != '\n')
        {
            break;
        }
    }
    return p;
}


/* a token (RFC 2045 5.1) at *pp into t */
static void
pst_m7_token(const u_char **pp, const u_char *end, pst_str_t *t)
{
    const u_char  *p = pst_m7_cfws(*pp, end);

    t->data = (u_char *) p;
    while (p < end && *p > ' ' && *p < 0x7f
           && strchr("()<>@,;:\\\"/[]?=", *p) == NULL)
    {
        p++;
    }
    t->len = (size_t) (p - t->data);
    *pp = p;
}


/* The boundary parameter of a Content-Type value (token or quoted;
 * a quoted boundary has no escapes in practice: RFC 2046 bchars). */
static void
pst_m7_boundary(const u_char *p, const u_char *end, pst_str_t *b)
{
    pst_str_t  name;

    while ((p = memchr(p, ';', (size_t) (end - p))) != NULL) {
        p++;
        pst_m7_token(&p, end, &name);
        p = pst_m7_cfws(p, end);
        if (p == end || *p != '=') {
            continue;
        }
        p = pst_m7_cfws(p + 1, end);
        if (name.len != 8
            || pst_strncasecmp(name.data, (u_char *) "boundary", 8) != 0)
        {
            continue;
        }
        if (p < end && *p == '"') {
            b->data = (u_char *) ++p;
            while (p < end && *p != '"') {
                p++;
            }
            b->len = (size_t) (p - b->data);
        } else {
            pst_m7_token(&p, end, b);
        }
        return;
    }
}


static void
pst_m7_content_type(pst_m7_part_t *pt, const u_char *v, size_t n)
{
    const u_char  *p = v, *end = v + n;

    pst_m7_token(&p, end, &pt->type);
    p = pst_m7_cfws(p, end);
    if (p < end && *p == '/') {
        p++;
        pst_m7_token(&p, end, &pt->subtype);
    }
    pt->has_type = pt->type.len > 0 && pt->subtype.len > 0;
    pst_m7_boundary(p, end, &pt->boundary);
}


/* Split p into header and body and read the fields that matter. */
static int
pst_m7_parse(pst_m7_part_t *pt, const u_char *p, size_t len, pst_m7_t *c)
{
    const u_char  *end = p + len, *f, *fend, *v, *sep;
    size_t         vn;

    memset(pt, 0, sizeof(*pt));
    pt->head = p;
    if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
        sep = p;                            /* no header at all */
    } else {
        sep = memmem(p, len, "\r\n\r\n", 4);
        sep = (sep != NULL) ? sep + 2 : end;
    }
    pt->head_len = (size_t) (sep - p);
    pt->body = (sep + 2 <= end) ? sep + 2 : end;
    pt->body_len = (size_t) (end - pt->body);

    if (pst_m7_dirty(pt->head, pt->head_len)) {
        c->why = "8-bit octets or an overlong line in a header";
        return PST_DECLINED;
    }

    for (f = p; f < sep; f = fend) {
        fend = pst_m7_field_end(f, sep);
        if (pst_m7_field_is(f, fend, "MIME-Version", &v, &vn)) {
            pt->mime = 1;
        } else if (pst_m7_field_is(f, fend, "Content-Type", &v, &vn)) {
            pst_m7_content_type(pt, v, vn);
        } else if (pst_m7_field_is(f, fend, "Content-Transfer-Encoding",
                                   &v, &vn))
        {
            v = pst_m7_cfws(v, v + vn);
            pst_m7_token(&v, f + (fend - f), &pt->cte);
        }
    }
    return PST_OK;
}


static int
pst_m7_is(const pst_str_t *s, const char *lit)
{
    size_t  n = strlen(lit);

    return s->len == n && pst_strncasecmp(s->data, (u_char *) lit, n) == 0;
}


/* The header without the fields named in drop (NULL-ended), then add
 * (already CRLF-terminated lines), then the empty line. */
static int
pst_m7_head(pst_m7_t *c, const pst_m7_part_t *pt, const char **drop,
    const char *add)
{
    const u_char  *f, *fend, *v, *end = pt->head + pt->head_len;
    const char   **d;
    size_t         vn;
    int            rc;

    for (f = pt->head; f < end; f = fend) {
        fend = pst_m7_field_end(f, end);
        for (d = drop; *d != NULL; d++) {
            if (pst_m7_field_is(f, fend, *d, &v, &vn)) {
                break;
            }
        }
        if (*d == NULL && (rc = pst_m7_put(c, f, (size_t) (fend - f)))
                          != PST_OK)
        {
            return rc;
        }
    }
    if ((rc = pst_m7_put(c, add, strlen(add))) != PST_OK) {
        return rc;
    }
    return pst_m7_put(c, "\r\n", 2);
}


/* ------------------------------------------------------------------ */
/* Parts                                                               */

static const char  *pst_m7_cte_only[] = { "Content-Transfer-Encoding",
                                          NULL };
static const char  *pst_m7_non_mime[] = { "Content-Type",
                                          "Content-Transfer-Encoding",
                                          NULL };


/* A leaf with 8-bit content: re-encoded. */
static int
pst_m7_leaf(pst_m7_t *c, const pst_m7_part_t *pt, int text)
{
    int  rc;

    if (pst_m7_is(&pt->cte, "base64")
        || pst_m7_is(&pt->cte, "quoted-printable"))
    {
        c->why = "8-bit octets in a part that says it is encoded";
        return PST_DECLINED;
    }
    rc = pst_m7_head(c, pt, pst_m7_cte_only, text
             ? "Content-Transfer-Encoding: quoted-printable\r\n"
             : "Content-Transfer-Encoding: base64\r\n");
    if (rc != PST_OK) {
        return rc;
    }
    return text ? pst_m7_qp(c, pt->body, pt->body_len)
                : pst_m7_base64(c, pt->body, pt->body_len);
}


/* The next delimiter line "--boundary" at a line start in [p, end):
 * *dlen the length of "--b" or "--b--", *close for the latter. */
static const u_char *
pst_m7_delim(const u_char *start, const u_char *p, const u_char *end,
    const pst_str_t *b, size_t *dlen, int *close)
{
    const u_char  *q;

    for ( ; p < end; p = q + 1) {
        q = memchr(p, '-', (size_t) (end - p));
        if (q == NULL) {
            return NULL;
        }
        if ((q == start || q[-1] == '\n')
            && (size_t) (end - q) >= b->len + 2 && q[1] == '-'
            && memcmp(q + 2, b->data, b->len) == 0)
        {
            *close = (size_t) (end - q) >= b->len + 4
                     && q[b->len + 2] == '-' && q[b->len + 3] == '-';
            *dlen = b->len + 2 + (*close ? 2 : 0);
            /* "--b" then white space and the line's end, not "--bX" */
            if (q + *dlen == end || q[*dlen] == '\r' || q[*dlen] == ' '
                || q[*dlen] == '\t')
            {
                return q;
            }
        }
    }
    return NULL;
}


/* Text outside the parts: kept when clean, dropped when not. */
static int
pst_m7_outside(pst_m7_t *c, const u_char *p, size_t n)
{
    return pst_m7_dirty(p, n) ? PST_OK : pst_m7_put(c, p, n);
}


/* The close delimiter d[0..dlen) (without its padding), then the
 * epilogue up to end. */
static int
pst_m7_epilogue(pst_m7_t *c, const u_char *d, size_t dlen,
    const u_char *end)
{
    const u_char  *eol;
    int            rc;

    eol = memchr(d, '\n', (size_t) (end - d));
    if ((rc = pst_m7_put(c, d, dlen)) != PST_OK
        || (eol != NULL && (rc = pst_m7_put(c, "\r\n", 2)) != PST_OK))
    {
        return rc;
    }
    eol = (eol != NULL) ? eol + 1 : end;
    return pst_m7_outside(c, eol, (size_t) (end - eol));
}


static int
pst_m7_multipart(pst_m7_t *c, const pst_m7_part_t *pt, int depth)
{
    const u_char  *p = pt->body, *end = p + pt->body_len, *d, *next, *eol;
    size_t         dlen;
    int            close = 0, rc, digest, crlf;

    /* RFC 2045 6.4: a multipart is never base64; "--b--" fits a line */
    if (pt->boundary.len == 0 || pt->boundary.len > PST_M7_LINE - 4) {
        c->why = "a multipart whose boundary is missing or too long";
        return PST_DECLINED;
    }
    digest = pst_m7_is(&pt->subtype, "digest");
    d = pst_m7_delim(p, p, end, &pt->boundary, &dlen, &close);
    if (d == NULL) {
        c->why = "a multipart without its boundary";
        return PST_DECLINED;
    }
    rc = pst_m7_head(c, pt, pst_m7_cte_only,
                     pt->cte.len ? "Content-Transfer-Encoding: 7bit\r\n" : "");
    if (rc != PST_OK
        || (rc = pst_m7_outside(c, p, (size_t) (d - p))) != PST_OK)
    {
        return rc;
    }

    while (!close) {
        eol = memchr(d, '\n', (size_t) (end - d));
        if (eol == NULL) {
            c->why = "a multipart delimiter line without its end";
            return PST_DECLINED;
        }
        /* "--boundary" and CRLF: transport padding is not kept */
        if ((rc = pst_m7_put(c, d, dlen)) != PST_OK
            || (rc = pst_m7_put(c, "\r\n", 2)) != PST_OK)
        {
            return rc;
        }
        p = eol + 1;
        next = pst_m7_delim(pt->body, p, end, &pt->boundary, &dlen, &close);
        if (next == NULL) {             /* no close delimiter: to the end */
            next = end;
            close = 1;
            dlen = 0;
        }
        /* the CRLF before a delimiter belongs to the delimiter */
        crlf = next < end && next - p >= 2 && next[-2] == '\r';
        rc = pst_m7_walk(c, p, (size_t) (next - p) - (crlf ? 2 : 0), 0,
                         digest, depth + 1);
        if (rc != PST_OK
            || (crlf && (rc = pst_m7_put(c, "\r\n", 2)) != PST_OK))
        {
            return rc;
        }
        d = next;
    }
    return (d == end) ? PST_OK : pst_m7_epilogue(c, d, dlen, end);
}


/* p[0..len) is an entity: message when it is a whole message (the top
 * one or one inside a message/rfc822), digest when it is a part of a
 * multipart/digest (no Content-Type: message/rfc822, RFC 2046 5.1.5). */
static int
pst_m7_walk(pst_m7_t *c, const u_char *p, size_t len, int message,
    int digest, int depth)
{
    pst_m7_part_t  pt;
    int            rc;

    if (depth > PST_M7_DEPTH) {
        c->why = "MIME parts nested too deep";
        return PST_DECLINED;
    }
    if ((rc = pst_m7_parse(&pt, p, len, c)) != PST_OK) {
        return rc;
    }
    if (!pst_m7_dirty(pt.body, pt.body_len)) {
        return pst_m7_put(c, p, len);
    }

    if (message && !pt.mime) {
        rc = pst_m7_head(c, &pt, pst_m7_non_mime, "MIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=unknown-8bit\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\n");
        return rc != PST_OK ? rc : pst_m7_qp(c, pt.body, pt.body_len);
    }

    if (pst_m7_is(&pt.type, "multipart")) {
        return pst_m7_multipart(c, &pt, depth);
    }

    if ((pst_m7_is(&pt.type, "message") && pst_m7_is(&pt.subtype, "rfc822"))
        || (!pt.has_type && digest))
    {
        rc = pst_m7_head(c, &pt, pst_m7_cte_only,
                         pt.cte.len ? "Content-Transfer-Encoding: 7bit\r\n"
                                    : "");
        return rc != PST_OK ? rc
                            : pst_m7_walk(c, pt.body, pt.body_len, 1, 0,
                                          depth + 1);
    }

    /* RFC 2046 5.2.2, 5.2.3: 7bit only, neither encoded nor walked */
    if (pst_m7_is(&pt.type, "message")
        && (pst_m7_is(&pt.subtype, "partial")
            || pst_m7_is(&pt.subtype, "external-body")))
    {
        c->why = "8-bit octets in a message/partial or external-body";
        return PST_DECLINED;
    }

    return pst_m7_leaf(c, &pt, !pt.has_type || pst_m7_is(&pt.type, "text"));
}


int
pst_mime7_convert(const u_char *msg, size_t len, size_t max,
    pst_buf_t **out, const char **why)
{
    pst_m7_t  c;
    int       rc;

    c.max = max;
    c.why = "cannot be converted";
    c.out = pst_buf_alloc(len + len / 3 + 1024 < max
                          ? len + len / 3 + 1024 : max);
    if (c.out == NULL) {
        return PST_ERROR;
    }

    rc = pst_m7_walk(&c, msg, len, 1, 0, 0);
    if (rc != PST_OK) {
        *why = c.why;
        pst_buf_destroy(c.out);
        return rc;
    }
    *out = c.out;
    return PST_OK;
}
