/*
 * pst_send_raw.c -- ready messages: postern-send --raw and the message
 * postern-sendmail reads on its standard input.
 *
 * The bytes are copied line by line into the output with CRLF line
 * ends.  The header section is held (at most 1 MiB) so that -t can read
 * To/Cc/Bcc, drop Bcc, and sendmail can add the fields a message must
 * have.
 *
 * No line over 998 octets (RFC 5322 2.1.1) is ever written.  A header
 * line that long is refused.  A body line that long makes the body
 * quoted-printable (RFC 2045 6.7) when its MIME fields allow it: no
 * Content-Type, or one that is neither multipart nor message, and a
 * Content-Transfer-Encoding of 7bit, 8bit or binary (or none).  The
 * switch happens at the first long line: the body written so far is
 * read back from the output and encoded into a second temporary file,
 * the rest of the input follows it there, and at the end the header
 * (with MIME-Version, Content-Type and Content-Transfer-Encoding) and
 * that body replace what was written.  Lines are read in pieces of at
 * most 1000 octets, so memory stays bounded whatever their length; a
 * piece that continues a line is never the "." that ends the input.
 *
 * The same re-encoding makes a message 7-bit for a server without
 * 8BITMIME (pst_send_raw_7bit(): the first body line with 8-bit octets
 * starts it), where the MIME fields allow it.
 */

#include "pst_send.h"

#define PST_SEND_MAX_HEADER  (1024 * 1024)
/* a piece of a line: a full piece always means a line over 998 */
#define PST_SEND_RAW_PIECE   (PST_SEND_MAX_LINE + 2)

typedef struct {
    FILE               *in;
    FILE               *out;
    pst_send_env_t     *env;
    unsigned            flags;
    char                line[PST_SEND_RAW_PIECE];
    size_t              len;
    int                 eof;
    int                 more;       /* the line goes on after this piece */
    int                 line8;      /* this piece has 8-bit octets */
    int                 cont;       /* this piece continues a line */
    char               *hdr;
    size_t              hlen, hcap;
    int                 has_from, has_date, has_msgid;
    char               *err;
    size_t              size;
    int                 code;       /* the exit code on failure */
    /* re-encoding a body with long lines */
    off_t               hstart;     /* where the header starts in out */
    off_t               bstart;     /* where the body starts in out */
    int                 n_ctype, n_cte, has_mimever;
    char                no_qp[160]; /* why the body cannot be, or "" */
    pst_send_qp_t       qp;         /* qp.f: the encoded body, or NULL */
    char               *qhdr;       /* the header as written */
    size_t              qhlen;
    unsigned            need;       /* UTF-8 continuation bytes due */
    int                 body8, bad_utf8;
    int                 hdr_refused; /* a field that cannot be 7-bit */
} pst_send_raw_t;

static int pst_send_raw_line(pst_send_raw_t *r);
static int pst_send_raw_keep(pst_send_raw_t *r);
static int pst_send_raw_field(pst_send_raw_t *r, const char *f, size_t n);
static int pst_send_raw_field7(pst_send_raw_t *r, const char *f, size_t n,
    size_t name);
static int pst_send_raw_run(pst_send_raw_t *r, int fd, FILE *f,
    pst_send_env_t *env, unsigned flags, const char *full_name);
static int pst_send_raw_rcpts(pst_send_raw_t *r, const char *v, size_t n);
static int pst_send_raw_header(pst_send_raw_t *r);
static int pst_send_raw_add(pst_send_raw_t *r, const char *full_name);
static int pst_send_raw_is_field(pst_send_raw_t *r);
static int pst_send_raw_end_header(pst_send_raw_t *r,
    const char *full_name);
static void pst_send_raw_mime(pst_send_raw_t *r, int ctype, const char *v,
    size_t n);
static int pst_send_raw_body(pst_send_raw_t *r);
static void pst_send_raw_qp_feed(pst_send_raw_t *r, const u_char *p,
    size_t n, int eol);
static int pst_send_raw_qp_begin(pst_send_raw_t *r);
static int pst_send_raw_qp_end(pst_send_raw_t *r);
static int pst_send_raw_loop(pst_send_raw_t *r, const char *full_name);


/* One line without its line end into r->line, or a piece of one: 1,
 * or 0 at the end.  A line over 998 octets comes in pieces of 1000 with
 * r->more set, the last one with r->cont set only. */
static int
pst_send_raw_line(pst_send_raw_t *r)
{
    int  c;

    r->len = 0;
    r->cont = r->more;
    r->more = 0;
    r->line8 = 0;
    if (r->eof) {
        return 0;
    }
    for ( ;; ) {
        if (r->len == PST_SEND_RAW_PIECE) {
            /* a CR last may be the line end's: the next piece has it */
            if (r->line[r->len - 1] == '\r') {
                ungetc('\r', r->in);
                r->len--;
            }
            r->more = 1;
            return 1;
        }
        c = getc_unlocked(r->in);
        if (c == EOF) {
            r->eof = 1;
            break;
        }
        if (c == '\n') {
            break;
        }
        r->line[r->len++] = (char) c;
        if (c >= 0x80) {
            r->env->eightbit = 1;
            r->line8 = 1;
        }
    }
    if (r->len > 0 && r->line[r->len - 1] == '\r') {
        r->len--;
    }
    if (r->cont) {
        /* the end of a long line: never the "." that ends the input */
        return 1;
    }
    if ((r->flags & PST_SEND_RAW_DOT) && r->len == 1 && r->line[0] == '.') {
        r->eof = 1;
        return 0;
    }
    return r->eof && r->len == 0 ? 0 : 1;
}


/* Append the current line to the held header (CRLF). */
static int
pst_send_raw_keep(pst_send_raw_t *r)
{
    char  *p;

    if (r->hlen + r->len + 2 > PST_SEND_MAX_HEADER) {
        snprintf(r->err, r->size, "the header is over %d bytes",
                 PST_SEND_MAX_HEADER);
        return PST_ERROR;
    }
    if (r->hlen + r->len + 2 > r->hcap) {
        r->hcap = (r->hcap ? r->hcap * 2 : 8192) + r->len + 2;
        p = realloc(r->hdr, r->hcap);
        if (p == NULL) {
            snprintf(r->err, r->size, "out of memory");
            return PST_ERROR;
        }
        r->hdr = p;
    }
    memcpy(r->hdr + r->hlen, r->line, r->len);
    memcpy(r->hdr + r->hlen + r->len, "\r\n", 2);
    r->env->hdr8 |= r->line8;
    r->hlen += r->len + 2;
    return PST_OK;
}


/* Recipients in an address-list value (folding already in it). */
static int
pst_send_raw_rcpts(pst_send_raw_t *r, const char *v, size_t n)
{
    pst_send_list_t  l = { NULL, 0, 0 };
    char            *s, *p, *a;
    size_t           i;
    int              rc = PST_OK;

    s = strndup(v, n);
    if (s == NULL) {
        return PST_ERROR;
    }
    for (p = s; *p; p++) {
        if (*p == '\r' || *p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
    pst_send_list_split(&l, s);

    for (i = 0; i < l.n && rc == PST_OK; i++) {
        p = l.v[i];
        /* group syntax: "name: a, b;" -- drop "name:" and ";" */
        if (strchr(p, ':') != NULL && strchr(p, '<') == NULL
            && strchr(p, '"') == NULL)
        {
            p = strchr(p, ':') + 1;
        }
        p[strcspn(p, ";")] = '\0';
        a = pst_send_addr_spec(p);
        if (a != NULL && *a != '\0') {
            rc = pst_send_list_add(&r->env->rcpts, a);
        }
        free(a);
    }

    pst_send_list_free(&l);
    free(s);
    return rc;
}


/* One header field (with its continuation lines). */
static int
pst_send_raw_field(pst_send_raw_t *r, const char *f, size_t n)
{
    size_t   name = strcspn(f, ":");
    int      bcc;

    if (name > n) {
        name = n;
    }
#define PST_IS(s)  (name == sizeof(s) - 1 && strncasecmp(f, s, name) == 0)
    r->has_from |= PST_IS("From");
    r->has_date |= PST_IS("Date");
    r->has_msgid |= PST_IS("Message-ID");
    bcc = PST_IS("Bcc");
    r->has_mimever |= PST_IS("MIME-Version");
    if (PST_IS("Content-Type") || PST_IS("Content-Transfer-Encoding")) {
        pst_send_raw_mime(r, PST_IS("Content-Type"), f + name + 1,
                          n - name - 1);
    }

    if ((r->flags & PST_SEND_RAW_EXTRACT) && r->env->sender == NULL
        && PST_IS("From"))
    {
        /* -t without a sender: the author's address */
        char  *v = strndup(f + name + 1, n - name - 1), *a;

        if (v != NULL) {
            v[strcspn(v, "\r\n")] = '\0';
            a = pst_send_addr_spec(v);
            r->env->sender = a;
            free(v);
        }
    }

    if ((r->flags & PST_SEND_RAW_EXTRACT)
        && (PST_IS("To") || PST_IS("Cc") || bcc)
        && pst_send_raw_rcpts(r, f + name + 1, n - name - 1) != PST_OK)
    {
        return PST_ERROR;
    }
#undef PST_IS

    if (bcc && (r->flags & PST_SEND_RAW_EXTRACT)) {
        return PST_OK;
    }
    if ((r->flags & PST_SEND_RAW_HDR7)
        && !pst_send_is_ascii((const u_char *) f, n))
    {
        return pst_send_raw_field7(r, f, n, name);
    }
    return fwrite(f, 1, n, r->out) == n ? PST_OK : PST_ERROR;
}


/*
 * A field with 8-bit octets for a server without SMTPUTF8 (RFC 6532
 * allows them only with it).  An unstructured field (RFC 5322 3.6.5
 * and 3.6.8: Subject, Comments, and the X- fields; Content-Description,
 * RFC 2047 5) in UTF-8 becomes RFC 2047 words, folded; anything else
 * (an address, a Message-ID, a word that is not UTF-8) cannot change
 * without changing what it says, and the message is refused.
 */
static int
pst_send_raw_field7(pst_send_raw_t *r, const char *f, size_t n,
    size_t name)
{
    char    fname[80], *v;
    size_t  i, k;
    int     rc;

#define PST_IS(s)  (name == sizeof(s) - 1 && strncasecmp(f, s, name) == 0)
    if (!(PST_IS("Subject") || PST_IS("Comments")
          || PST_IS("Content-Description")
          || (name > 2 && strncasecmp(f, "X-", 2) == 0))
        || name >= sizeof(fname)
        || !pst_send_is_utf8((const u_char *) f, n))
    {
        snprintf(r->err, r->size, "the %.*s field has 8-bit octets and "
                 "the server does not announce SMTPUTF8 (RFC 6532): only "
                 "an unstructured field in UTF-8 (Subject, Comments, "
                 "X-...) can be encoded (RFC 2047); nothing sent",
                 (int) pst_min(name, 60), f);
        r->hdr_refused = 1;
        r->code = PST_SEND_DATAERR;
        return PST_ERROR;
    }
#undef PST_IS

    /* the value unfolded, without its line end and leading space */
    v = malloc(n + 1);
    if (v == NULL) {
        return PST_ERROR;
    }
    for (i = name + 1, k = 0; i < n; i++) {
        if (f[i] != '\r' && f[i] != '\n') {
            v[k++] = f[i];
        }
    }
    while (k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t')) {
        k--;
    }
    v[k] = '\0';
    snprintf(fname, sizeof(fname), "%.*s", (int) name, f);
    rc = pst_send_hdr_text(r->out, fname, v + strspn(v, " \t"));
    free(v);
    return rc;
}


/* The held header: field by field. */
static int
pst_send_raw_header(pst_send_raw_t *r)
{
    const char  *p = r->hdr, *end = r->hdr + r->hlen, *q;

    while (p < end) {
        /* a field ends at a CRLF not followed by white space */
        for (q = p; q < end; q++) {
            if (*q == '\n' && (q + 1 == end || (q[1] != ' ' && q[1] != '\t')))
            {
                q++;
                break;
            }
        }
        if (pst_send_raw_field(r, p, (size_t) (q - p)) != PST_OK) {
            if (!r->hdr_refused) {
                snprintf(r->err, r->size, "cannot write the message");
            }
            return PST_ERROR;
        }
        p = q;
    }
    return PST_OK;
}


static int
pst_send_raw_add(pst_send_raw_t *r, const char *full_name)
{
    pst_send_list_t  one = { NULL, 0, 0 };
    u_char           date[64];
    char             rnd[17], host[256], *who;
    size_t           n;
    int              rc = PST_OK;

    if (!r->has_date) {
        n = pst_rfc5322_date(time(NULL), date, sizeof(date));
        fprintf(r->out, "Date: %.*s\r\n", (int) n, date);
    }
    if (!r->has_from && r->env->sender != NULL && *r->env->sender) {
        n = strlen(r->env->sender) + (full_name ? strlen(full_name) : 0);
        who = malloc(n + 8);
        if (who != NULL) {
            if (full_name != NULL && *full_name) {
                sprintf(who, "\"%s\" <%s>", full_name, r->env->sender);
            } else {
                strcpy(who, r->env->sender);
            }
            if (pst_send_list_add(&one, who) == PST_OK
                && pst_send_hdr_addrs(r->out, "From", &one) != PST_OK)
            {
                snprintf(r->err, r->size, "cannot add a From field for "
                         "\"%.60s...\" in lines of %d octets", r->env->sender,
                         PST_SEND_MAX_LINE);
                rc = PST_ERROR;
            }
            pst_send_list_free(&one);
            free(who);
        }
    }
    if (!r->has_msgid) {
        if (gethostname(host, sizeof(host)) != 0) {
            strcpy(host, "localhost");
        }
        host[sizeof(host) - 1] = '\0';
        pst_send_random_hex(rnd, 16);
        fprintf(r->out, "Message-ID: <%lx.%s@%s>\r\n",
                (unsigned long) time(NULL), rnd, host);
    }
    return rc;
}


/* A header line: "Name: ..." (no white space in the name), or a
 * continuation of the field before. */
static int
pst_send_raw_is_field(pst_send_raw_t *r)
{
    const char  *colon;

    if (r->len == 0) {
        return 0;
    }
    if (r->line[0] == ' ' || r->line[0] == '\t') {
        return r->hlen > 0;
    }
    colon = memchr(r->line, ':', r->len);
    return colon != NULL && colon > r->line
           && memchr(r->line, ' ', (size_t) (colon - r->line)) == NULL
           && memchr(r->line, '\t', (size_t) (colon - r->line)) == NULL;
}


/* The header ends (at the blank line, or at a first line of text that
 * then gets a blank line before it): out with it, the added fields and
 * the blank line. */
static int
pst_send_raw_end_header(pst_send_raw_t *r, const char *full_name)
{
    if (pst_send_raw_header(r) != PST_OK) {
        return PST_ERROR;
    }
    if ((r->flags & PST_SEND_RAW_ADD)
        && pst_send_raw_add(r, full_name) != PST_OK)
    {
        return PST_ERROR;
    }
    fputs("\r\n", r->out);
    r->bstart = r->hstart == -1 ? -1 : ftello(r->out);
    return PST_OK;
}


/* A Content-Type or Content-Transfer-Encoding field: may a body with
 * a line over 998 octets be re-encoded?  Not a multipart or message
 * entity (its parts, not it, carry encodings: RFC 2046 5), nor one
 * already encoded (RFC 2045 6.4: encodings do not nest). */
static void
pst_send_raw_mime(pst_send_raw_t *r, int ctype, const char *v, size_t n)
{
    char    tok[64];
    size_t  i = 0;

    /* the first token: white space, folding and comments skipped */
    while (n > 0 && strchr(" \t\r\n(", *v) != NULL) {
        if (*v == '(') {
            while (n > 0 && *v != ')') {
                v++, n--;
            }
        }
        if (n > 0) {
            v++, n--;
        }
    }
    while (n > 0 && i < sizeof(tok) - 1 && strchr(" \t\r\n;(", *v) == NULL) {
        tok[i++] = *v++;
        n--;
    }
    tok[i] = '\0';

    if (ctype) {
        if (r->n_ctype++ > 0) {
            snprintf(r->no_qp, sizeof(r->no_qp), "more than one "
                     "Content-Type field");
        } else if (strncasecmp(tok, "multipart/", 10) == 0
                   || strncasecmp(tok, "message/", 8) == 0)
        {
            snprintf(r->no_qp, sizeof(r->no_qp), "its Content-Type is %s",
                     tok);
        }
        return;
    }
    if (r->n_cte++ > 0) {
        snprintf(r->no_qp, sizeof(r->no_qp), "more than one "
                 "Content-Transfer-Encoding field");
    } else if (strcasecmp(tok, "7bit") != 0 && strcasecmp(tok, "8bit") != 0
               && strcasecmp(tok, "binary") != 0)
    {
        snprintf(r->no_qp, sizeof(r->no_qp), "it is already encoded "
                 "(Content-Transfer-Encoding: %s)", tok);
    }
}


/* A line (or a piece of one) of the body. */
static int
pst_send_raw_body(pst_send_raw_t *r)
{
    if (r->qp.f == NULL) {
        if (!r->more && !r->cont && r->len <= PST_SEND_MAX_LINE
            && !(r->line8 && (r->flags & PST_SEND_RAW_7BIT)))
        {
            fwrite(r->line, 1, r->len, r->out);
            fputs("\r\n", r->out);
            return PST_OK;
        }
        if (pst_send_raw_qp_begin(r) != PST_OK) {
            return PST_ERROR;
        }
    }
    pst_send_raw_qp_feed(r, (u_char *) r->line, r->len, !r->more);
    return PST_OK;
}


/* Text into the quoted-printable body, its charset checked on the way:
 * US-ASCII, UTF-8, or neither. */
static void
pst_send_raw_qp_feed(pst_send_raw_t *r, const u_char *p, size_t n,
    int eol)
{
    size_t  i;
    u_char  c;

    for (i = 0; i < n; i++) {
        c = p[i];
        if (r->need > 0) {
            if ((c & 0xc0) == 0x80) {
                r->need--;
                continue;
            }
            r->bad_utf8 = 1;
            r->need = 0;
        }
        if (c < 0x80) {
            continue;
        }
        r->body8 = 1;
        if (c >= 0xc2 && c <= 0xdf) {
            r->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            r->need = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            r->need = 3;
        } else {
            r->bad_utf8 = 1;
        }
    }
    pst_send_qp_put(&r->qp, p, n);
    if (eol) {
        r->bad_utf8 |= r->need > 0;
        r->need = 0;
        pst_send_qp_eol(&r->qp);
    }
}


/* The first line over 998 octets: the header written so far is kept
 * aside, the body written so far goes, encoded, into a temporary file,
 * and the output is cut back to where the header started. */
static int
pst_send_raw_qp_begin(pst_send_raw_t *r)
{
    char     *line = NULL;
    size_t    cap = 0;
    ssize_t   n;
    FILE     *t;

    if (r->no_qp[0] != '\0' || r->bstart == -1) {
        snprintf(r->err, r->size, "%s and cannot be re-encoded as "
                 "quoted-printable: %s",
                 r->more || r->cont || r->len > PST_SEND_MAX_LINE
                 ? "a line of the body is over 998 octets (RFC 5322 2.1.1)"
                 : "the body has 8-bit text",
                 r->no_qp[0] ? r->no_qp : "the output is not a file");
        return PST_ERROR;
    }
    r->code = PST_SEND_IOERR;
    if (pst_send_tmpfile(&t, r->err, r->size) != PST_OK) {
        return PST_ERROR;
    }
    r->qp.f = t;
    r->qhlen = (size_t) (r->bstart - r->hstart);
    r->qhdr = malloc(r->qhlen);
    if (r->qhdr == NULL || fflush(r->out) != 0
        || fseeko(r->out, r->hstart, SEEK_SET) != 0
        || fread(r->qhdr, 1, r->qhlen, r->out) != r->qhlen)
    {
        snprintf(r->err, r->size, "cannot re-read the message: %s",
                 strerror(errno));
        return PST_ERROR;
    }
    /* the body so far: lines of at most 998 octets, each with CRLF */
    while ((n = getline(&line, &cap, r->out)) >= 2) {
        pst_send_raw_qp_feed(r, (u_char *) line, (size_t) n - 2, 1);
    }
    free(line);
    if (ferror(r->out) || ftruncate(fileno(r->out), r->hstart) != 0
        || fseeko(r->out, r->hstart, SEEK_SET) != 0)
    {
        snprintf(r->err, r->size, "cannot rewrite the message: %s",
                 strerror(errno));
        return PST_ERROR;
    }
    r->code = PST_SEND_DATAERR;
    return PST_OK;
}


/* The header as written (Content-Transfer-Encoding left out), the MIME
 * fields of the new body, then that body. */
static int
pst_send_raw_qp_end(pst_send_raw_t *r)
{
    const char  *p = r->qhdr, *end = r->qhdr + r->qhlen, *q;
    char         buf[65536];
    size_t       n;

    while (p < end && *p != '\r') {
        for (q = p; q < end; q++) {
            if (*q == '\n' && (q + 1 == end || (q[1] != ' ' && q[1] != '\t')))
            {
                q++;
                break;
            }
        }
        if (strncasecmp(p, "Content-Transfer-Encoding:", 26) != 0) {
            fwrite(p, 1, (size_t) (q - p), r->out);
        }
        p = q;
    }
    if (!r->has_mimever) {
        fputs("MIME-Version: 1.0\r\n", r->out);
    }
    if (r->n_ctype == 0) {
        fprintf(r->out, "Content-Type: text/plain; charset=%s\r\n",
                !r->body8 ? "us-ascii"
                          : !r->bad_utf8 ? "utf-8" : "unknown-8bit");
    }
    fputs("Content-Transfer-Encoding: quoted-printable\r\n\r\n", r->out);

    /* the body is 7-bit now: 8BITMIME only for the header's sake */
    r->env->eightbit = !pst_send_is_ascii((u_char *) r->qhdr, r->qhlen);

    r->code = PST_SEND_IOERR;
    if (fflush(r->qp.f) != 0) {
        snprintf(r->err, r->size, "temporary file: %s", strerror(errno));
        return PST_ERROR;
    }
    rewind(r->qp.f);
    while ((n = fread(buf, 1, sizeof(buf), r->qp.f)) > 0) {
        if (fwrite(buf, 1, n, r->out) != n) {
            snprintf(r->err, r->size, "cannot write the message: %s",
                     strerror(errno));
            return PST_ERROR;
        }
    }
    if (ferror(r->qp.f)) {
        snprintf(r->err, r->size, "temporary file: %s", strerror(errno));
        return PST_ERROR;
    }
    r->code = PST_SEND_DATAERR;
    return PST_OK;
}


/* Line by line: the header held, then the body. */
static int
pst_send_raw_loop(pst_send_raw_t *r, const char *full_name)
{
    int  rc, in_header = 1;

    while ((rc = pst_send_raw_line(r)) == 1) {
        if (in_header && !r->cont && pst_send_raw_is_field(r)) {
            if (r->more || r->len > PST_SEND_MAX_LINE) {
                snprintf(r->err, r->size, "a header line is over %d octets "
                         "(RFC 5322 2.1.1)", PST_SEND_MAX_LINE);
                return PST_ERROR;
            }
            if (pst_send_raw_keep(r) != PST_OK) {
                return PST_ERROR;
            }
            continue;
        }
        if (in_header) {
            in_header = 0;
            if (pst_send_raw_end_header(r, full_name) != PST_OK) {
                return PST_ERROR;
            }
            if (r->len == 0 && !r->more) {
                continue;               /* the blank line: written */
            }
        }
        if (pst_send_raw_body(r) != PST_OK) {
            return PST_ERROR;
        }
    }

    if (rc == 0 && in_header) {
        /* only a header, or nothing */
        return pst_send_raw_end_header(r, full_name);
    }
    if (r->qp.f != NULL) {
        return pst_send_raw_qp_end(r);
    }
    return PST_OK;
}


/* r->err and r->size set: the copy, PST_OK or an exit code. */
static int
pst_send_raw_run(pst_send_raw_t *r, int fd, FILE *f, pst_send_env_t *env,
    unsigned flags, const char *full_name)
{
    int  rc;

    r->in = fdopen(dup(fd), "r");
    if (r->in == NULL) {
        snprintf(r->err, r->size, "cannot read the message: %s",
                 strerror(errno));
        return PST_SEND_NOINPUT;
    }
    r->out = f;
    r->env = env;
    r->flags = flags;
    r->code = PST_SEND_DATAERR;
    r->hstart = ftello(f);

    rc = pst_send_raw_loop(r, full_name);

    fclose(r->in);
    if (r->qp.f != NULL) {
        fclose(r->qp.f);
    }
    free(r->qhdr);
    free(r->hdr);

    if (rc != PST_OK) {
        return r->code;
    }
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(r->err, r->size, "cannot write the message: %s",
                 strerror(errno));
        return PST_SEND_IOERR;
    }
    return PST_OK;
}


int
pst_send_raw(int fd, FILE *f, pst_send_env_t *env, unsigned flags,
    const char *full_name, char *err, size_t size)
{
    pst_send_raw_t  r;

    memset(&r, 0, sizeof(r));
    r.err = err;
    r.size = size;
    return pst_send_raw_run(&r, fd, f, env, flags, full_name);
}


int
pst_send_raw_7bit(FILE *f, pst_send_msg_t *msg, pst_send_env_t *env,
    unsigned what, char *err, size_t size)
{
    pst_send_raw_t  r;
    pst_send_env_t  e;
    char            buf[65536];
    size_t          n;
    FILE           *g;
    int             rc, eight = 0;

    if (pst_send_tmpfile(&g, err, size) != PST_OK) {
        return PST_ERROR;
    }
    memset(&e, 0, sizeof(e));
    if (fflush(f) != 0 || lseek(msg->fd, 0, SEEK_SET) == -1) {
        snprintf(err, size, "temporary file: %s", strerror(errno));
        fclose(g);
        return PST_ERROR;
    }
    memset(&r, 0, sizeof(r));
    r.err = err;
    r.size = size;
    rc = pst_send_raw_run(&r, msg->fd, g, &e,
                          what & (PST_SEND_RAW_7BIT | PST_SEND_RAW_HDR7),
                          NULL);
    pst_send_env_free(&e);
    if (rc != PST_OK) {
        fclose(g);
        return r.hdr_refused ? PST_SEND_DATAERR
               : rc == PST_SEND_DATAERR ? PST_DECLINED : PST_ERROR;
    }

    /* the new message replaces the old one in f */
    rewind(g);
    rewind(f);
    if (ftruncate(fileno(f), 0) != 0) {
        rc = PST_ERROR;
    }
    while (rc == PST_OK && (n = fread(buf, 1, sizeof(buf), g)) > 0) {
        eight |= !pst_send_is_ascii((u_char *) buf, n);
        if (fwrite(buf, 1, n, f) != n) {
            rc = PST_ERROR;
        }
    }
    if (rc != PST_OK || ferror(g)
        || pst_send_finish(f, msg, err, size) != PST_OK)
    {
        snprintf(err, size, "temporary file: %s", strerror(errno));
        rc = PST_ERROR;
    }
    fclose(g);
    /* what is left: a body that could not change (or was not asked
     * to), a header left as it was */
    env->eightbit = eight;
    env->hdr8 = (what & PST_SEND_RAW_HDR7) ? 0 : e.hdr8;
    return rc == PST_OK ? PST_OK : PST_ERROR;
}


int
pst_send_raw_recompose(FILE *f, pst_send_msg_t *msg, pst_send_env_t *env,
    unsigned what, char *err, size_t size)
{
    int  rc;

    /* its body quoted-printable if it may be, its header 7-bit */
    rc = pst_send_raw_7bit(f, msg, env, what, err, size);
    if (rc == PST_ERROR || rc == PST_SEND_DATAERR) {
        return rc;
    }
    /* a header left 8-bit goes with SMTPUTF8: no warning for it */
    if ((what & PST_SEND_RAW_7BIT) && rc == PST_DECLINED) {
        pst_send_err("warning: the server does not announce 8BITMIME; "
                     "sent with 8-bit octets (%s)\n", err);
    }
    return PST_OK;
}


int
pst_send_raw_redo(void *data, pst_send_msg_t *msg, unsigned what, char *err,
    size_t size)
{
    pst_send_redo_t  *d = data;

    if (d->f == NULL && pst_send_tmpfile(&d->f, err, size) != PST_OK) {
        return PST_ERROR;
    }
    return pst_send_raw_recompose(d->f, msg, d->env, what, err, size);
}
