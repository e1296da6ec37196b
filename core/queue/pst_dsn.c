/*
 * pst_dsn.c -- delivery status notifications (see pst_dsn.h).
 *
 * A report is three MIME parts in a multipart/report (RFC 6522):
 *   1. text/plain for people: what happened, one line per recipient;
 *   2. message/delivery-status (RFC 3464), or message/global-delivery-
 *      status (RFC 6533) for SMTPUTF8 mail: the per-message fields, then
 *      one block of fields per recipient;
 *   3. the original: its header section (RET=HDRS, the default, and
 *      every report that is not a failure) as text/rfc822-headers or
 *      message/global-headers, or the whole message (RET=FULL) as
 *      message/rfc822 or message/global.
 * The parts are written into one buffer, then the top header fields
 * (which say whether anything inside is 8-bit) in front of it.  The
 * original is read from the queue file in bounded chunks and copied
 * with its line ends made CRLF and its lines cut at 998 octets.
 */

#include "pst_core.h"
#include "pst_spool.h"
#include "pst_dsn.h"

#include <sys/random.h>

#define PST_DSN_FOLD             78         /* preferred line length */
#define PST_DSN_LINE_MAX         998        /* RFC 5322 2.1.1 */
#define PST_DSN_VALUE_MAX        1000       /* one sanitised value */
#define PST_DSN_ADDR_MAX         512
#define PST_DSN_HEADERS_MAX      (256 * 1024)
#define PST_DSN_FULL_MAX         (10 * 1024 * 1024)
#define PST_DSN_CHUNK            (64 * 1024)
#define PST_DSN_DOMAIN_BUF       256

typedef struct {
    pst_buf_t                   *b;
    size_t                       max;
    int                          utf8;       /* global form */
    int                          eightbit;   /* 8-bit content written */
    int                          rc;
} pst_dsn_out_t;

/* Copying the original: line state across chunks. */
typedef struct {
    size_t                       col;
    size_t                       written;
    size_t                       max;
    unsigned                     cr:1;       /* a CR seen, LF unknown */
    unsigned                     headers:1;  /* stop at the empty line */
    unsigned                     done:1;
} pst_dsn_copy_t;

typedef struct {
    const pst_spool_msg_t       *m;
    pst_dsn_action_e             action;
    const pst_uint_t            *which;
    pst_uint_t                   n;
    pst_dsn_opts_t              *opts;
    const char                  *mta;        /* sanitised */
    char                         boundary[80];
    int                          full;       /* the whole original */
    int                          too_big;    /* RET=FULL, sent headers */
} pst_dsn_ctx_t;


static void pst_dsn_put(pst_dsn_out_t *o, const void *data, size_t n);
static void pst_dsn_puts(pst_dsn_out_t *o, const char *s);
static size_t pst_dsn_utf8_len(const u_char *p, size_t n);
static size_t pst_dsn_clean(u_char *dst, size_t size, const u_char *src,
    size_t n, int utf8);
static void pst_dsn_fold(pst_dsn_out_t *o, const char *prefix,
    const pst_str_t *value, const char *cont);
static void pst_dsn_field(pst_dsn_out_t *o, const char *name,
    const char *type, const pst_str_t *value);
static void pst_dsn_date_field(pst_dsn_out_t *o, const char *name,
    time_t t);
static size_t pst_dsn_digits(const u_char *p, const u_char *end);
static void pst_dsn_human(pst_dsn_out_t *o, pst_dsn_ctx_t *d);
static void pst_dsn_report(pst_dsn_out_t *o, pst_dsn_ctx_t *d);
static void pst_dsn_recipient(pst_dsn_out_t *o, pst_dsn_ctx_t *d,
    const pst_env_rcpt_t *r);
static void pst_dsn_remote(pst_dsn_out_t *o, const pst_str_t *remote);
static int pst_dsn_original(pst_dsn_out_t *o, pst_dsn_ctx_t *d);
static int pst_dsn_copy_file(pst_dsn_out_t *o, pst_dsn_copy_t *c,
    const pst_spool_msg_t *m, off_t from, off_t to);
static void pst_dsn_copy(pst_dsn_out_t *o, pst_dsn_copy_t *c,
    const u_char *p, size_t n);
static void pst_dsn_copy_eol(pst_dsn_out_t *o, pst_dsn_copy_t *c);
static void pst_dsn_head(pst_dsn_out_t *o, pst_dsn_ctx_t *d);
static int pst_dsn_body(pst_dsn_out_t *o, pst_dsn_ctx_t *d);
static void pst_dsn_random(char *hex, size_t size);
static int pst_dsn_prepare(pst_dsn_ctx_t *d, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    pst_dsn_opts_t *opts, u_char *mta, size_t size);


static const char  *pst_dsn_actions[] = {
    "failed", "delayed", "delivered", "relayed"
};

static const char  *pst_dsn_subjects[] = {
    "Undelivered Mail Returned to Sender",
    "Delayed Mail (still being retried)",
    "Successful Mail Delivery Report",
    "Mail Relayed (no further notifications)"
};

static const char  *pst_dsn_intros[] = {
    "Your message could not be delivered to the recipients below.\r\n"
    "The attempts failed permanently, or the message stayed in the queue\r\n"
    "too long; it will not be tried again.\r\n",

    "Your message has not been delivered yet to the recipients below.\r\n"
    "Delivery is still being attempted; you do not need to send it\r\n"
    "again.\r\n",

    "Your message was delivered to the recipients below, as you asked\r\n"
    "with a delivery notification request.\r\n",

    "Your message was relayed to the recipients below, to a mail server\r\n"
    "that does not offer delivery notifications: you will not hear more\r\n"
    "about it from there.\r\n"
};


/* ------------------------------------------------------------------ */
/* Output and sanitising                                               */

static void
pst_dsn_put(pst_dsn_out_t *o, const void *data, size_t n)
{
    if (o->rc == PST_OK && n > 0
        && pst_buf_append(o->b, data, n, o->max) != PST_OK)
    {
        o->rc = PST_ERROR;
    }
}


static void
pst_dsn_puts(pst_dsn_out_t *o, const char *s)
{
    pst_dsn_put(o, s, strlen(s));
}


/* Length of the valid UTF-8 sequence at p (2 to 4 bytes, no overlong
 * forms, no surrogates, at most U+10FFFF), or 0. */
static size_t
pst_dsn_utf8_len(const u_char *p, size_t n)
{
    size_t  len, i;
    u_char  lo = 0x80, hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        lo = p[0] == 0xe0 ? 0xa0 : 0x80;
        hi = p[0] == 0xed ? 0x9f : 0xbf;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        lo = p[0] == 0xf0 ? 0x90 : 0x80;
        hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }

    if (n < len || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return len;
}


/*
 * A value from outside as one clean line into dst (size bytes, NUL
 * ended): control characters (CR and LF included) become spaces, runs
 * of spaces one space, leading and trailing spaces go; non-ASCII stays
 * only when utf8 and valid, else '?'.  Cut at size - 1 bytes on a
 * character boundary.  Returns the length.
 */
static size_t
pst_dsn_clean(u_char *dst, size_t size, const u_char *src, size_t n,
    int utf8)
{
    size_t  i = 0, o = 0, len;
    u_char  ch;

    while (i < n) {
        ch = src[i];
        len = 1;

        if (ch < 0x20 || ch == 0x7f) {
            ch = ' ';
        } else if (ch >= 0x80) {
            len = utf8 ? pst_dsn_utf8_len(src + i, n - i) : 0;
            if (len == 0) {
                ch = '?';
                len = 1;
            }
        }

        if (ch == ' ' && (o == 0 || dst[o - 1] == ' ')) {
            i++;
            continue;
        }
        if (o + len >= size) {
            break;
        }
        if (len == 1) {
            dst[o++] = ch;
        } else {
            memcpy(dst + o, src + i, len);
            o += len;
        }
        i += len;
    }

    while (o > 0 && dst[o - 1] == ' ') {
        o--;
    }
    dst[o] = '\0';

    return o;
}


/*
 * prefix, then the clean value folded at its spaces: lines of at most
 * PST_DSN_FOLD octets where the words allow, never more than
 * PST_DSN_LINE_MAX (a longer word is cut, on a UTF-8 boundary).
 * Continuation lines start with cont (" " for header fields).
 */
static void
pst_dsn_fold(pst_dsn_out_t *o, const char *prefix, const pst_str_t *value,
    const char *cont)
{
    const u_char  *p = value->data, *end = value->data + value->len;
    const u_char  *w;
    size_t         col, wlen, room;
    int            first = 1;

    pst_dsn_puts(o, prefix);
    col = strlen(prefix);

    while (p < end) {
        for (w = p; w < end && *w != ' '; w++) {
            /* void */
        }
        wlen = (size_t) (w - p);

        if (!first && col + 1 + wlen > PST_DSN_FOLD) {
            pst_dsn_puts(o, "\r\n");
            pst_dsn_puts(o, cont);
            col = strlen(cont);
        } else if (!first) {
            pst_dsn_put(o, " ", 1);
            col++;
        }
        first = 0;

        while (col + wlen > PST_DSN_LINE_MAX) {
            room = PST_DSN_LINE_MAX - col;
            while (room > 0 && (p[room] & 0xc0) == 0x80) {
                room--;                 /* not inside a character */
            }
            if (room == 0) {
                room = PST_DSN_LINE_MAX - col;
            }
            pst_dsn_put(o, p, room);
            pst_dsn_puts(o, "\r\n");
            pst_dsn_puts(o, cont);
            col = strlen(cont);
            p += room;
            wlen -= room;
        }

        pst_dsn_put(o, p, wlen);
        col += wlen;
        p = w < end ? w + 1 : end;
    }

    pst_dsn_puts(o, "\r\n");
}


/* "Name: type; value" with the value cleaned; nothing for an empty
 * value. */
static void
pst_dsn_field(pst_dsn_out_t *o, const char *name, const char *type,
    const pst_str_t *value)
{
    u_char     buf[PST_DSN_VALUE_MAX];
    char       prefix[64];
    pst_str_t  v;

    v.len = pst_dsn_clean(buf, sizeof(buf), value->data, value->len,
                          o->utf8);
    v.data = buf;
    if (v.len == 0) {
        return;
    }

    snprintf(prefix, sizeof(prefix), "%s: %s%s", name, type ? type : "",
             type ? "; " : "");
    pst_dsn_fold(o, prefix, &v, " ");
}


static void
pst_dsn_date_field(pst_dsn_out_t *o, const char *name, time_t t)
{
    u_char  date[64];
    size_t  n;

    n = pst_rfc5322_date(t, date, sizeof(date));
    pst_dsn_puts(o, name);
    pst_dsn_puts(o, ": ");
    pst_dsn_put(o, date, n);
    pst_dsn_puts(o, "\r\n");
}


/* ------------------------------------------------------------------ */
/* The parts                                                           */

/* Digits at p (1 to 3 of them) before end: their count, or 0. */
static size_t
pst_dsn_digits(const u_char *p, const u_char *end)
{
    size_t  n = 0;

    while (p + n < end && n < 4 && isdigit(p[n])) {
        n++;
    }
    return n <= 3 ? n : 0;
}


void
pst_dsn_status(const pst_env_rcpt_t *r, pst_dsn_action_e action, char *out)
{
    const u_char  *p = r->reply.data, *end = p + r->reply.len, *q;
    size_t         n = r->reply.len, k;
    char           want;

    want = action == PST_DSN_FAILED ? '5'
           : action == PST_DSN_DELAYED ? '4' : '2';

    /* "550 5.1.1 text": the enhanced code (RFC 3463: class "." 1-3
     * digits "." 1-3 digits) after the reply code */
    if (n >= 9 && isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2])
        && p[3] == ' ' && p[5] == '.'
        && (p[4] == want || (want == '5' && p[4] == '4')))
    {
        q = p + 6;
        k = pst_dsn_digits(q, end);
        if (k > 0 && q + k < end && q[k] == '.') {
            q += k + 1;
            k = pst_dsn_digits(q, end);
            if (k > 0 && (q + k == end || q[k] == ' ')) {
                memcpy(out, p + 4, (size_t) (q + k - p - 4));
                out[q + k - p - 4] = '\0';
                return;
            }
        }
    }

    /* the class of the reply code when it fits, else the action's */
    if (n >= 3 && isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2])
        && (p[0] == want || (want == '5' && p[0] == '4')))
    {
        want = (char) p[0];
    }

    snprintf(out, 16, "%c.0.0", want);
}


static void
pst_dsn_human(pst_dsn_out_t *o, pst_dsn_ctx_t *d)
{
    const pst_env_rcpt_t  *r = d->m->env.rcpts->elts, *rc;
    u_char                 addr[PST_DSN_ADDR_MAX], why[PST_DSN_VALUE_MAX];
    char                   prefix[PST_DSN_ADDR_MAX + 8];
    pst_str_t              v;
    pst_uint_t             i;

    pst_dsn_puts(o, "This is the mail system at host ");
    pst_dsn_puts(o, d->mta);
    pst_dsn_puts(o, ".\r\n\r\n");
    pst_dsn_puts(o, pst_dsn_intros[d->action]);
    if (d->too_big) {
        pst_dsn_puts(o, "\r\nThe message was too large to return whole:"
                        " only its header is\r\nattached.\r\n");
    }
    pst_dsn_puts(o, "\r\n");

    for (i = 0; i < d->n; i++) {
        rc = &r[d->which[i]];
        pst_dsn_clean(addr, sizeof(addr), rc->addr.data, rc->addr.len,
                      o->utf8);
        v.len = pst_dsn_clean(why, sizeof(why), rc->reply.data,
                              rc->reply.len, o->utf8);
        v.data = why;
        if (v.len == 0) {
            pst_str_set(&v, "no further details");
        }
        snprintf(prefix, sizeof(prefix), "<%s>: ", addr);
        pst_dsn_fold(o, prefix, &v, "    ");
    }
}


static void
pst_dsn_report(pst_dsn_out_t *o, pst_dsn_ctx_t *d)
{
    const pst_envelope_t   *env = &d->m->env;
    const pst_env_rcpt_t   *r = env->rcpts->elts;
    pst_str_t               v;
    pst_uint_t              i;

    v.data = (u_char *) d->mta;
    v.len = strlen(d->mta);
    pst_dsn_field(o, "Reporting-MTA", "dns", &v);
    pst_dsn_field(o, "X-Postern-Queue-ID", NULL, &env->id);
    pst_dsn_field(o, "Original-Envelope-Id", NULL, &env->envid);
    if (env->arrival_sec > 0) {
        pst_dsn_date_field(o, "Arrival-Date", env->arrival_sec);
    }

    for (i = 0; i < d->n; i++) {
        pst_dsn_puts(o, "\r\n");
        pst_dsn_recipient(o, d, &r[d->which[i]]);
    }
}


static void
pst_dsn_recipient(pst_dsn_out_t *o, pst_dsn_ctx_t *d,
    const pst_env_rcpt_t *r)
{
    pst_str_t   type, v;
    size_t      i;
    char        status[16];
    int         utf8 = 0;

    for (i = 0; i < r->addr.len; i++) {
        utf8 |= r->addr.data[i] >= 0x80;
    }
    pst_dsn_field(o, "Final-Recipient", utf8 && o->utf8 ? "utf-8"
                  : "rfc822", &r->addr);

    /* ORCPT "type;address", decoded */
    if (r->orcpt.len > 0) {
        u_char  *semi = memchr(r->orcpt.data, ';', r->orcpt.len);
        u_char   t[32];

        type.data = r->orcpt.data;
        type.len = semi ? (size_t) (semi - r->orcpt.data) : 0;
        v.data = semi ? semi + 1 : r->orcpt.data;
        v.len = r->orcpt.len - (size_t) (v.data - r->orcpt.data);
        if (pst_dsn_clean(t, sizeof(t), type.data, type.len, 0) == 0
            || strchr((char *) t, ' ') != NULL)
        {
            snprintf((char *) t, sizeof(t), "rfc822");
        }
        pst_dsn_field(o, "Original-Recipient", (char *) t, &v);
    }

    pst_dsn_status(r, d->action, status);
    pst_dsn_puts(o, "Action: ");
    pst_dsn_puts(o, pst_dsn_actions[d->action]);
    pst_dsn_puts(o, "\r\nStatus: ");
    pst_dsn_puts(o, status);
    pst_dsn_puts(o, "\r\n");

    pst_dsn_remote(o, &r->remote);

    if (r->reply.len >= 3 && isdigit(r->reply.data[0])
        && isdigit(r->reply.data[1]) && isdigit(r->reply.data[2])
        && (r->reply.len == 3 || r->reply.data[3] == ' '))
    {
        pst_dsn_field(o, "Diagnostic-Code", "smtp", &r->reply);
    } else {
        pst_dsn_field(o, "Diagnostic-Code", "X-Postern", &r->reply);
    }

    if (r->last_try > 0) {
        pst_dsn_date_field(o, "Last-Attempt-Date", r->last_try);
    }
    if (d->action == PST_DSN_DELAYED && d->opts->retry_until > 0) {
        pst_dsn_date_field(o, "Will-Retry-Until", d->opts->retry_until);
    }
}


/* Remote-MTA from "mx.example.net[192.0.2.1]:25": the host name, or
 * the address when there is no name. */
static void
pst_dsn_remote(pst_dsn_out_t *o, const pst_str_t *remote)
{
    pst_str_t  v;
    u_char    *b, *e;

    if (remote->len == 0) {
        return;
    }

    v = *remote;
    b = memchr(v.data, '[', v.len);
    if (b != NULL && b > v.data) {
        v.len = (size_t) (b - v.data);
    } else if (b != NULL) {
        e = memchr(b, ']', v.len);
        v.len = e ? (size_t) (e - b) + 1 : v.len;
    }

    pst_dsn_field(o, "Remote-MTA", "dns", &v);
}


/* ------------------------------------------------------------------ */
/* The original                                                        */

static void
pst_dsn_copy_eol(pst_dsn_out_t *o, pst_dsn_copy_t *c)
{
    if (c->headers && c->col == 0) {
        c->done = 1;                    /* the end of the header section */
        return;
    }

    pst_dsn_put(o, "\r\n", 2);
    c->written += c->col + 2;
    c->col = 0;

    if (c->written >= c->max) {
        c->done = 1;
    }
}


/* Feed bytes of the original: CRLF line ends (a bare CR or LF ends a
 * line too), no line over 998 octets (a header line goes on as a
 * folded line, a body line as a new one), NUL as '?'. */
static void
pst_dsn_copy(pst_dsn_out_t *o, pst_dsn_copy_t *c, const u_char *p,
    size_t n)
{
    const u_char  *end = p + n, *run;

    while (p < end && !c->done) {
        if (c->cr) {
            c->cr = 0;
            pst_dsn_copy_eol(o, c);
            if (*p == '\n') {
                p++;
            }
            continue;
        }
        if (*p == '\r' || *p == '\n') {
            c->cr = *p == '\r';
            if (*p++ == '\n') {
                pst_dsn_copy_eol(o, c);
            }
            continue;
        }
        if (c->col == PST_DSN_LINE_MAX) {
            pst_dsn_put(o, c->headers ? "\r\n " : "\r\n", c->headers ? 3 : 2);
            c->written += c->col + 2;
            c->col = c->headers ? 1 : 0;
        }

        /* a run of ordinary bytes up to the line's limit */
        for (run = p; run < end && *run != '\r' && *run != '\n'
                      && *run != '\0'
                      && c->col + (size_t) (run - p) < PST_DSN_LINE_MAX;
             run++)
        {
            o->eightbit |= *run >= 0x80;
        }
        if (run == p) {
            pst_dsn_put(o, "?", 1);         /* NUL */
            run++;
        } else {
            pst_dsn_put(o, p, (size_t) (run - p));
        }
        c->col += (size_t) (run - p);
        p = run;
    }
}


static int
pst_dsn_copy_file(pst_dsn_out_t *o, pst_dsn_copy_t *c,
    const pst_spool_msg_t *m, off_t done, off_t to)
{
    u_char   *buf;
    ssize_t   k;
    size_t    want;

    buf = malloc(PST_DSN_CHUNK);
    if (buf == NULL) {
        return PST_ERROR;
    }

    while (done < to && !c->done && o->rc == PST_OK) {
        want = (size_t) pst_min((off_t) PST_DSN_CHUNK, to - done);
        k = pread(m->fd, buf, want, m->msg_offset + done);
        if (k == -1 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            pst_log_error(PST_LOG_ERR, k ? errno : 0, "DSN: cannot read"
                          " message %.*s", (int) m->env.id.len,
                          m->env.id.data);
            free(buf);
            return PST_ERROR;
        }
        pst_dsn_copy(o, c, buf, (size_t) k);
        done += k;
    }

    free(buf);

    if (to == m->msg_len && !c->done && (c->cr || c->col > 0)) {
        c->cr = 0;
        c->headers = 0;
        pst_dsn_copy_eol(o, c);
    }

    return o->rc;
}


static int
pst_dsn_original(pst_dsn_out_t *o, pst_dsn_ctx_t *d)
{
    const pst_str_t  *pre;
    pst_dsn_copy_t    c;
    pst_uint_t        i;
    size_t            cte;
    off_t             at;
    int               before = o->eightbit;
    const char       *type;

    type = d->full ? (o->utf8 ? "message/global" : "message/rfc822")
           : (o->utf8 ? "message/global-headers" : "text/rfc822-headers");

    pst_dsn_puts(o, "Content-Description: ");
    pst_dsn_puts(o, d->full ? "Original message" : "Original message"
                             " header");
    pst_dsn_puts(o, "\r\nContent-Type: ");
    pst_dsn_puts(o, type);
    pst_dsn_puts(o, "\r\nContent-Transfer-Encoding: ");
    cte = pst_buf_size(o->b);           /* "7bit" becomes "8bit" later */
    pst_dsn_puts(o, "7bit\r\n\r\n");

    o->eightbit = 0;
    memset(&c, 0, sizeof(c));
    c.headers = !d->full;
    c.max = d->full ? (size_t) -1 : PST_DSN_HEADERS_MAX;

    /* the message as it was sent on: its trace block, the header lines
     * hooks added, the rest (pst_spool_trace_len()) */
    pre = d->m->env.prepend ? d->m->env.prepend->elts : NULL;
    at = pre != NULL && d->m->env.prepend->nelts > 0
         ? pst_spool_trace_len(d->m->fd, d->m->msg_offset, d->m->msg_len) : 0;
    if (pst_dsn_copy_file(o, &c, d->m, 0, at) != PST_OK) {
        return PST_ERROR;
    }
    for (i = 0; pre != NULL && i < d->m->env.prepend->nelts; i++) {
        pst_dsn_copy(o, &c, pre[i].data, pre[i].len);
        if (c.cr || c.col > 0) {
            c.cr = 0;
            pst_dsn_copy_eol(o, &c);
        }
    }

    c.done = 0;
    if (pst_dsn_copy_file(o, &c, d->m, at, d->m->msg_len) != PST_OK) {
        return PST_ERROR;
    }

    if (o->eightbit && o->rc == PST_OK) {
        o->b->pos[cte] = '8';
    }
    o->eightbit |= before;

    return o->rc;
}


/* ------------------------------------------------------------------ */
/* The message                                                         */

static void
pst_dsn_random(char *hex, size_t size)
{
    static const char  digits[] = "0123456789abcdef";
    u_char             r[16];
    size_t             i;

    if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r)) {
        for (i = 0; i < sizeof(r); i++) {
            r[i] = (u_char) (rand() ^ (int) (pst_current_msec() >> i));
        }
    }

    for (i = 0; i < sizeof(r) && 2 * i + 2 < size; i++) {
        hex[2 * i] = digits[r[i] >> 4];
        hex[2 * i + 1] = digits[r[i] & 0x0f];
    }
    hex[2 * i] = '\0';
}


/* The top header fields, into o (the body goes after them). */
static void
pst_dsn_head(pst_dsn_out_t *o, pst_dsn_ctx_t *d)
{
    const pst_envelope_t  *env = &d->m->env;
    u_char                 rcpt[PST_DSN_ADDR_MAX];
    char                   id[40];
    struct tm              tm;
    time_t                 now = d->opts->now ? d->opts->now : time(NULL);
    char                   stamp[32];

    pst_dsn_puts(o, "From: Mail Delivery System <MAILER-DAEMON@");
    pst_dsn_puts(o, d->mta);
    pst_dsn_puts(o, ">\r\nTo: <");
    pst_dsn_clean(rcpt, sizeof(rcpt), env->sender.data, env->sender.len,
                  o->utf8);
    pst_dsn_puts(o, (char *) rcpt);
    pst_dsn_puts(o, ">\r\nSubject: ");
    pst_dsn_puts(o, pst_dsn_subjects[d->action]);
    pst_dsn_puts(o, "\r\n");
    pst_dsn_date_field(o, "Date", now);

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
    pst_dsn_random(id, 17);
    pst_dsn_puts(o, "Message-ID: <");
    pst_dsn_puts(o, stamp);
    pst_dsn_puts(o, ".");
    pst_dsn_puts(o, id);
    pst_dsn_puts(o, "@");
    pst_dsn_puts(o, d->mta);
    pst_dsn_puts(o, ">\r\nAuto-Submitted: auto-replied\r\n"
                    "MIME-Version: 1.0\r\n"
                    "Content-Type: multipart/report; report-type=");
    pst_dsn_puts(o, o->utf8 ? "global-delivery-status;\r\n"
                            : "delivery-status;\r\n");
    pst_dsn_puts(o, "    boundary=\"");
    pst_dsn_puts(o, d->boundary);
    pst_dsn_puts(o, "\"\r\nContent-Transfer-Encoding: ");
    pst_dsn_puts(o, o->eightbit ? "8bit" : "7bit");
    pst_dsn_puts(o, "\r\n\r\nThis is a MIME-encapsulated message.\r\n");
}


/* The three parts and the closing boundary. */
static int
pst_dsn_body(pst_dsn_out_t *o, pst_dsn_ctx_t *d)
{
    const char  *cte = o->utf8 ? "8bit" : "7bit";

    pst_dsn_puts(o, "\r\n--");
    pst_dsn_puts(o, d->boundary);
    pst_dsn_puts(o, "\r\nContent-Description: Notification\r\n"
                    "Content-Type: text/plain; charset=");
    pst_dsn_puts(o, o->utf8 ? "utf-8" : "us-ascii");
    pst_dsn_puts(o, "\r\nContent-Transfer-Encoding: ");
    pst_dsn_puts(o, cte);
    pst_dsn_puts(o, "\r\n\r\n");
    pst_dsn_human(o, d);

    pst_dsn_puts(o, "\r\n--");
    pst_dsn_puts(o, d->boundary);
    pst_dsn_puts(o, "\r\nContent-Description: Delivery report\r\n"
                    "Content-Type: ");
    pst_dsn_puts(o, o->utf8 ? "message/global-delivery-status"
                            : "message/delivery-status");
    pst_dsn_puts(o, "\r\nContent-Transfer-Encoding: ");
    pst_dsn_puts(o, cte);
    pst_dsn_puts(o, "\r\n\r\n");
    pst_dsn_report(o, d);

    pst_dsn_puts(o, "\r\n--");
    pst_dsn_puts(o, d->boundary);
    pst_dsn_puts(o, "\r\n");
    if (pst_dsn_original(o, d) != PST_OK) {
        return PST_ERROR;
    }

    pst_dsn_puts(o, "\r\n--");
    pst_dsn_puts(o, d->boundary);
    pst_dsn_puts(o, "--\r\n");

    return o->rc;
}


int
pst_dsn_build(pst_pool_t *pool, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    const char *reporting_mta, pst_buf_t **out)
{
    pst_dsn_opts_t  opts;

    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = reporting_mta;

    return pst_dsn_build_opts(pool, m, action, which, n, &opts, out);
}


/* Check the arguments and fill d.  PST_OK or PST_ERROR. */
static int
pst_dsn_prepare(pst_dsn_ctx_t *d, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    pst_dsn_opts_t *opts, u_char *mta, size_t size)
{
    const pst_envelope_t  *env = &m->env;
    off_t                  full_max;
    pst_uint_t             i;
    int                    ret_full;

    /* never to the null sender, nor to one that is nothing but blanks
     * and control characters once cleaned */
    if (n == 0 || env->rcpts == NULL || (unsigned) action > PST_DSN_RELAYED
        || pst_dsn_clean(mta, size, env->sender.data, env->sender.len, 1)
           == 0)
    {
        return PST_ERROR;
    }
    for (i = 0; i < n; i++) {
        if (which[i] >= env->rcpts->nelts) {
            return PST_ERROR;
        }
    }

    memset(d, 0, sizeof(pst_dsn_ctx_t));
    d->m = m;
    d->action = action;
    d->which = which;
    d->n = n;
    d->opts = opts;

    if (opts->reporting_mta == NULL
        || pst_dsn_clean(mta, size, (u_char *) opts->reporting_mta,
                         strlen(opts->reporting_mta), 0) == 0
        || strchr((char *) mta, ' ') != NULL)
    {
        snprintf((char *) mta, size, "localhost");
    }
    d->mta = (char *) mta;

    memcpy(d->boundary, "=_postern_", 10);
    pst_dsn_random(d->boundary + 10, sizeof(d->boundary) - 10);

    full_max = opts->full_max ? opts->full_max : PST_DSN_FULL_MAX;
    /* never the body of a REQUIRETLS message (RFC 8689 5) */
    ret_full = env->ret.len == 4 && !env->requiretls
               && pst_strncasecmp(env->ret.data, (u_char *) "FULL", 4) == 0;
    d->full = ret_full && action == PST_DSN_FAILED
              && m->msg_len <= full_max;
    d->too_big = ret_full && action == PST_DSN_FAILED && !d->full;

    return PST_OK;
}


int
pst_dsn_build_opts(pst_pool_t *pool, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    pst_dsn_opts_t *opts, pst_buf_t **out)
{
    pst_dsn_ctx_t   d;
    pst_dsn_out_t   body, head;
    u_char          mta[PST_DSN_DOMAIN_BUF];
    off_t           full_max;

    (void) pool;
    *out = NULL;

    if (pst_dsn_prepare(&d, m, action, which, n, opts, mta, sizeof(mta))
        != PST_OK)
    {
        return PST_ERROR;
    }

    full_max = opts->full_max ? opts->full_max : PST_DSN_FULL_MAX;
    memset(&body, 0, sizeof(body));
    body.utf8 = m->env.smtputf8 ? 1 : 0;
    body.max = (size_t) full_max * 2 + 4 * 1024 * 1024;
    body.b = pst_buf_alloc(64 * 1024);
    if (body.b == NULL) {
        return PST_ERROR;
    }

    if (pst_dsn_body(&body, &d) != PST_OK) {
        pst_buf_destroy(body.b);
        return PST_ERROR;
    }

    /* the top header knows now whether anything inside is 8-bit */
    head = body;
    head.eightbit = body.eightbit | body.utf8;
    head.max = body.max + 64 * 1024;
    head.b = pst_buf_alloc(pst_buf_size(body.b) + 4096);
    if (head.b != NULL) {
        pst_dsn_head(&head, &d);
        pst_dsn_put(&head, body.b->pos, pst_buf_size(body.b));
    }
    pst_buf_destroy(body.b);

    if (head.b == NULL || head.rc != PST_OK) {
        if (head.b != NULL) {
            pst_buf_destroy(head.b);
        }
        return PST_ERROR;
    }

    opts->eightbit = head.eightbit;
    *out = head.b;
    return PST_OK;
}
