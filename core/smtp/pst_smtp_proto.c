/*
 * pst_smtp_proto.c -- line reader, reply parser, EHLO keywords and
 * dot-stuffing, shared by the server and the client (pst_smtp_proto.h).
 */

#include "pst_core.h"
#include "pst_smtp_proto.h"


static int pst_smtp_reply_line(pst_smtp_reply_parser_t *rp,
    const pst_str_t *line);
static int pst_smtp_reply_fail(pst_smtp_reply_parser_t *rp,
    const char *why);
static void pst_smtp_ehlo_keyword(const u_char *p, size_t n,
    pst_smtp_ehlo_t *e);


/* ------------------------------------------------------------------ */
/* Line reader                                                         */

pst_smtp_line_e
pst_smtp_read_line(pst_buf_t *b, size_t limit, int strict,
    unsigned *skipping, pst_str_t *line)
{
    u_char  *lf, *p, *end;
    size_t   n;

    n = pst_buf_size(b);
    lf = memchr(b->pos, '\n', n);

    if (*skipping) {
        if (lf == NULL) {
            b->pos = b->last;          /* keep discarding */
            return PST_SMTP_LINE_AGAIN;
        }
        b->pos = lf + 1;
        *skipping = 0;
        return PST_SMTP_LINE_TOO_LONG;
    }

    if (lf == NULL) {
        if (n >= limit) {
            /* overlong: drop what we have, skip to the next LF */
            *skipping = 1;
            b->pos = b->last;
        }
        return PST_SMTP_LINE_AGAIN;
    }

    if ((size_t) (lf - b->pos) + 1 > limit) {
        b->pos = lf + 1;
        return PST_SMTP_LINE_TOO_LONG;
    }

    line->data = b->pos;
    end = lf;
    b->pos = lf + 1;

    if (end > line->data && end[-1] == '\r') {
        end--;
    } else if (strict) {
        line->len = (size_t) (end - line->data);
        return PST_SMTP_LINE_BARE_LF;
    }

    line->len = (size_t) (end - line->data);

    for (p = line->data; p < end; p++) {
        if (*p == '\0' || *p == '\r') {
            return PST_SMTP_LINE_BAD_CHAR;
        }
    }

    return PST_SMTP_LINE_OK;
}


/* ------------------------------------------------------------------ */
/* Replies                                                             */

void
pst_smtp_reply_init(pst_smtp_reply_parser_t *rp, size_t max)
{
    memset(rp, 0, sizeof(pst_smtp_reply_parser_t));
    rp->max = max ? max : PST_SMTP_REPLY_MAX;
}


void
pst_smtp_reply_free(pst_smtp_reply_parser_t *rp)
{
    if (rp->text != NULL) {
        pst_buf_destroy(rp->text);
        rp->text = NULL;
    }
}


static int
pst_smtp_reply_fail(pst_smtp_reply_parser_t *rp, const char *why)
{
    rp->error = why;
    return PST_ERROR;
}


int
pst_smtp_reply_parse(pst_smtp_reply_parser_t *rp, pst_buf_t *in,
    pst_smtp_reply_t *r)
{
    pst_str_t  line;
    int        rc = PST_AGAIN;

    if (rp->error != NULL) {
        return PST_ERROR;
    }

    for ( ;; ) {
        switch (pst_smtp_read_line(in, PST_SMTP_REPLY_LINE_MAX, 0,
                                   &rp->skipping, &line))
        {
        case PST_SMTP_LINE_OK:
            break;
        case PST_SMTP_LINE_AGAIN:
            return rp->skipping
                   ? pst_smtp_reply_fail(rp, "reply line too long")
                   : PST_AGAIN;
        case PST_SMTP_LINE_TOO_LONG:
            return pst_smtp_reply_fail(rp, "reply line too long");
        default:
            return pst_smtp_reply_fail(rp, "NUL or CR in a reply line");
        }

        if (rp->line != NULL) {
            rp->line(rp->line_data, &line);
        }

        rc = pst_smtp_reply_line(rp, &line);
        if (rc != PST_AGAIN) {
            break;
        }
    }

    if (rc == PST_ERROR) {
        return PST_ERROR;
    }

    r->code = rp->code;
    memcpy(r->ecode, rp->ecode, sizeof(r->ecode));
    r->text.data = rp->text->pos;
    r->text.len = pst_buf_size(rp->text);

    rp->code = 0;
    rp->lines = 0;
    rp->total = 0;
    rp->ecode[0] = '\0';

    return PST_OK;
}


/* One line: PST_OK when it was the last of its reply, PST_AGAIN for a
 * continuation line, PST_ERROR when it is not a reply line. */
static int
pst_smtp_reply_line(pst_smtp_reply_parser_t *rp, const pst_str_t *line)
{
    const u_char  *p = line->data, *text;
    size_t         n = line->len, tlen, elen;
    int            code, last;

    if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5'
        || p[2] < '0' || p[2] > '9' || (n > 3 && p[3] != ' ' && p[3] != '-'))
    {
        return pst_smtp_reply_fail(rp, "malformed reply line");
    }

    code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    last = (n == 3 || p[3] == ' ');

    if (rp->lines > 0 && code != rp->code) {
        return pst_smtp_reply_fail(rp, "reply code changed inside a reply");
    }

    rp->total += n + 2;
    if (rp->total > rp->max) {
        return pst_smtp_reply_fail(rp, "reply too long");
    }

    if (rp->text == NULL) {
        rp->text = pst_buf_alloc(256);
        if (rp->text == NULL) {
            return pst_smtp_reply_fail(rp, "out of memory");
        }
    }

    text = n > 4 ? p + 4 : p + n;
    tlen = n > 4 ? n - 4 : 0;

    if (rp->lines == 0) {
        rp->code = code;
        rp->text->pos = rp->text->start;
        rp->text->last = rp->text->start;
        elen = pst_smtp_ecode_len(text, tlen);
        if (elen > 0 && text[0] == p[0] && elen < sizeof(rp->ecode)) {
            memcpy(rp->ecode, text, elen);
            rp->ecode[elen] = '\0';
        }
    } else if (pst_buf_append(rp->text, "\n", 1, rp->max) != PST_OK) {
        return pst_smtp_reply_fail(rp, "reply too long");
    }

    /* the enhanced code is kept once, not in every line's text */
    elen = strlen(rp->ecode);
    if (elen > 0 && tlen >= elen && memcmp(text, rp->ecode, elen) == 0
        && (tlen == elen || text[elen] == ' '))
    {
        text += pst_min(elen + 1, tlen);
        tlen -= pst_min(elen + 1, tlen);
    }

    if (pst_buf_append(rp->text, text, tlen, rp->max) != PST_OK) {
        return pst_smtp_reply_fail(rp, "reply too long");
    }

    rp->lines++;

    return last ? PST_OK : PST_AGAIN;
}


size_t
pst_smtp_ecode_len(const u_char *p, size_t n)
{
    size_t  i, part, digits;

    if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5')
        || p[1] != '.')
    {
        return 0;
    }

    i = 2;

    for (part = 0; part < 2; part++) {
        for (digits = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            digits++;
        }
        if (digits == 0 || digits > 3) {
            return 0;
        }
        if (part == 0) {
            if (i == n || p[i] != '.') {
                return 0;
            }
            i++;
        }
    }

    if (i < n && p[i] != ' ') {
        return 0;
    }

    return i;
}


/* ------------------------------------------------------------------ */
/* EHLO keywords                                                       */

typedef struct {
    const char         *name;
    size_t              len;
    unsigned            cap;
} pst_smtp_keyword_t;

#define PST_KW(name, cap)  { name, sizeof(name) - 1, cap }

static const pst_smtp_keyword_t  pst_smtp_keywords[] = {
    PST_KW("PIPELINING", PST_SMTP_CAP_PIPELINING),
    PST_KW("SIZE", PST_SMTP_CAP_SIZE),
    PST_KW("8BITMIME", PST_SMTP_CAP_8BITMIME),
    PST_KW("SMTPUTF8", PST_SMTP_CAP_SMTPUTF8),
    PST_KW("DSN", PST_SMTP_CAP_DSN),
    PST_KW("CHUNKING", PST_SMTP_CAP_CHUNKING),
    PST_KW("STARTTLS", PST_SMTP_CAP_STARTTLS),
    PST_KW("ENHANCEDSTATUSCODES", PST_SMTP_CAP_ENHANCED),
    PST_KW("AUTH", PST_SMTP_CAP_AUTH),
    PST_KW("REQUIRETLS", PST_SMTP_CAP_REQUIRETLS),
    PST_KW("XPOSTERN", PST_SMTP_CAP_XPOSTERN),
};

static const pst_smtp_keyword_t  pst_smtp_mechs[] = {
    PST_KW("PLAIN", PST_SMTP_AUTH_PLAIN),
    PST_KW("LOGIN", PST_SMTP_AUTH_LOGIN),
    PST_KW("SCRAM-SHA-256", PST_SMTP_AUTH_SCRAM_SHA256),
};


unsigned
pst_smtp_auth_mech(const u_char *p, size_t n)
{
    pst_uint_t  i;

    for (i = 0; i < pst_nelems(pst_smtp_mechs); i++) {
        if (n == pst_smtp_mechs[i].len
            && pst_strncasecmp(p, (u_char *) pst_smtp_mechs[i].name, n) == 0)
        {
            return pst_smtp_mechs[i].cap;
        }
    }

    return PST_SMTP_AUTH_OTHER;
}


void
pst_smtp_ehlo_parse(const u_char *text, size_t len, pst_smtp_ehlo_t *e)
{
    const u_char  *p, *end, *nl;

    memset(e, 0, sizeof(pst_smtp_ehlo_t));

    p = text;
    end = text + len;

    /* the first line is the server's name and greeting */
    nl = memchr(p, '\n', len);

    while (nl != NULL) {
        p = nl + 1;
        nl = memchr(p, '\n', (size_t) (end - p));
        pst_smtp_ehlo_keyword(p, (size_t) ((nl ? nl : end) - p), e);
    }
}


static void
pst_smtp_ehlo_keyword(const u_char *p, size_t n, pst_smtp_ehlo_t *e)
{
    const u_char  *end = p + n, *kw, *w;
    pst_uint_t     i;
    int64_t        size;
    size_t         klen;

    kw = p;
    while (p < end && *p != ' ' && *p != '=') {
        p++;
    }
    klen = (size_t) (p - kw);

    for (i = 0; i < pst_nelems(pst_smtp_keywords); i++) {
        if (klen == pst_smtp_keywords[i].len
            && pst_strncasecmp(kw, (u_char *) pst_smtp_keywords[i].name,
                               klen) == 0)
        {
            break;
        }
    }

    if (i == pst_nelems(pst_smtp_keywords)) {
        return;
    }

    /* "AUTH=PLAIN LOGIN" is the old form of "AUTH PLAIN LOGIN" */
    if (p < end && *p == '=' && pst_smtp_keywords[i].cap
                                != PST_SMTP_CAP_AUTH)
    {
        return;
    }

    e->caps |= pst_smtp_keywords[i].cap;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '=')) {
            p++;
        }
        if (p == end) {
            break;
        }
        w = p;
        while (p < end && *p != ' ') {
            p++;
        }

        if (pst_smtp_keywords[i].cap == PST_SMTP_CAP_SIZE) {
            size = pst_atoi(w, (size_t) (p - w), INT64_MAX);
            e->size = size > 0 ? (off_t) size : 0;
            break;
        }

        if (pst_smtp_keywords[i].cap == PST_SMTP_CAP_AUTH) {
            e->auth |= pst_smtp_auth_mech(w, (size_t) (p - w));
        }
    }
}


/* ------------------------------------------------------------------ */
/* Dot-stuffing                                                        */

void
pst_smtp_stuff_init(pst_smtp_stuff_t *st, int dot)
{
    memset(st, 0, sizeof(pst_smtp_stuff_t));
    st->dot = dot ? 1 : 0;
    st->bol = 1;
}


size_t
pst_smtp_stuff(pst_smtp_stuff_t *st, const u_char **pos,
    const u_char *end, u_char *out, size_t olen)
{
    const u_char  *p = *pos;
    size_t         o = 0;
    u_char         ch;

    while (p < end && olen - o >= 2) {
        ch = *p;

        if (st->cr) {
            st->cr = 0;
            out[o++] = '\r';
            out[o++] = '\n';
            st->bol = 1;
            st->line_len = 0;
            if (ch == '\n') {
                p++;
            } else {
                st->bare++;      /* bare CR: ch is looked at again */
            }
            continue;
        }

        p++;

        if (ch == '\r') {
            st->cr = 1;
            continue;
        }

        if (ch == '\n') {
            st->bare++;
            out[o++] = '\r';
            out[o++] = '\n';
            st->bol = 1;
            st->line_len = 0;
            continue;
        }

        if (st->bol && ch == '.' && st->dot) {
            out[o++] = '.';
            st->line_len++;
        }

        out[o++] = ch;
        st->bol = 0;
        if (++st->line_len == PST_SMTP_LINE_MAX + 1) {
            st->long_lines++;
        }
    }

    *pos = p;
    return o;
}


size_t
pst_smtp_stuff_end(pst_smtp_stuff_t *st, u_char *out)
{
    size_t  o = 0;

    if (st->cr) {
        st->cr = 0;
        st->bare++;
        out[o++] = '\r';
        out[o++] = '\n';
        st->bol = 1;
    }

    if (!st->bol) {
        out[o++] = '\r';
        out[o++] = '\n';
        st->bol = 1;
    }

    st->line_len = 0;

    if (st->dot) {
        out[o++] = '.';
        out[o++] = '\r';
        out[o++] = '\n';
    }

    return o;
}
