/*
 * pst_send_raw.c -- ready messages: postern-send --raw and the message
 * postern-sendmail reads on its standard input.
 *
 * The bytes are copied line by line into the output with CRLF line
 * ends; a line over 998 octets is refused (it cannot be sent raw and a
 * ready message is not ours to re-encode).  The header section is held
 * (at most 1 MiB) so that -t can read To/Cc/Bcc, drop Bcc, and sendmail
 * can add the fields a message must have.
 */

#include "pst_send.h"

#define PST_SEND_MAX_HEADER  (1024 * 1024)

typedef struct {
    FILE               *in;
    FILE               *out;
    pst_send_env_t     *env;
    unsigned            flags;
    char                line[PST_SEND_MAX_LINE + 3];
    size_t              len;
    int                 eof;
    char               *hdr;
    size_t              hlen, hcap;
    int                 has_from, has_date, has_msgid;
    char               *err;
    size_t              size;
} pst_send_raw_t;

static int pst_send_raw_line(pst_send_raw_t *r);
static int pst_send_raw_keep(pst_send_raw_t *r);
static int pst_send_raw_field(pst_send_raw_t *r, const char *f, size_t n);
static int pst_send_raw_rcpts(pst_send_raw_t *r, const char *v, size_t n);
static int pst_send_raw_header(pst_send_raw_t *r);
static int pst_send_raw_add(pst_send_raw_t *r, const char *full_name);
static int pst_send_raw_is_field(pst_send_raw_t *r);
static int pst_send_raw_end_header(pst_send_raw_t *r, const char *full_name,
    int blank);


/* One line without its line end into r->line: 1, 0 at the end. */
static int
pst_send_raw_line(pst_send_raw_t *r)
{
    int  c;

    r->len = 0;
    if (r->eof) {
        return 0;
    }
    for ( ;; ) {
        c = getc_unlocked(r->in);
        if (c == EOF) {
            r->eof = 1;
            break;
        }
        if (c == '\n') {
            break;
        }
        if (r->len > PST_SEND_MAX_LINE) {
            snprintf(r->err, r->size, "a line of the message is over %d "
                     "octets", PST_SEND_MAX_LINE);
            return -1;
        }
        r->line[r->len++] = (char) c;
        if (c >= 0x80) {
            r->env->eightbit = 1;
        }
    }
    if (r->len > 0 && r->line[r->len - 1] == '\r') {
        r->len--;
    }
    if (r->len > PST_SEND_MAX_LINE) {
        snprintf(r->err, r->size, "a line of the message is over %d octets",
                 PST_SEND_MAX_LINE);
        return -1;
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
    return fwrite(f, 1, n, r->out) == n ? PST_OK : PST_ERROR;
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
            snprintf(r->err, r->size, "cannot write the message");
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
 * then gets a blank line before it): out with it, and the added
 * fields. */
static int
pst_send_raw_end_header(pst_send_raw_t *r, const char *full_name,
    int blank)
{
    if (pst_send_raw_header(r) != PST_OK) {
        return PST_ERROR;
    }
    if ((r->flags & PST_SEND_RAW_ADD)
        && pst_send_raw_add(r, full_name) != PST_OK)
    {
        return PST_ERROR;
    }
    if (!blank) {
        fputs("\r\n", r->out);
    }
    return PST_OK;
}


int
pst_send_raw(int fd, FILE *f, pst_send_env_t *env, unsigned flags,
    const char *full_name, char *err, size_t size)
{
    pst_send_raw_t  r;
    int             rc, in_header = 1;

    memset(&r, 0, sizeof(r));
    r.in = fdopen(dup(fd), "r");
    if (r.in == NULL) {
        snprintf(err, size, "cannot read the message: %s", strerror(errno));
        return PST_SEND_NOINPUT;
    }
    r.out = f;
    r.env = env;
    r.flags = flags;
    r.err = err;
    r.size = size;

    while ((rc = pst_send_raw_line(&r)) == 1) {
        if (in_header && pst_send_raw_is_field(&r)) {
            if (pst_send_raw_keep(&r) != PST_OK) {
                rc = -1;
                break;
            }
            continue;
        }
        if (in_header) {
            in_header = 0;
            if (pst_send_raw_end_header(&r, full_name, r.len == 0)
                != PST_OK)
            {
                rc = -1;
                break;
            }
        }
        fwrite(r.line, 1, r.len, f);
        fputs("\r\n", f);
    }

    if (rc == 0 && in_header) {
        /* only a header, or nothing */
        rc = pst_send_raw_end_header(&r, full_name, 0) == PST_OK ? 0 : -1;
    }

    fclose(r.in);
    free(r.hdr);

    if (rc == -1) {
        return PST_SEND_DATAERR;
    }
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(err, size, "cannot write the message: %s", strerror(errno));
        return PST_SEND_IOERR;
    }
    return PST_OK;
}
