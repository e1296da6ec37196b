/*
 * pst_send_compose.c -- the message postern-send builds from its options.
 *
 *   headers (Date, From, Reply-To, To, Cc, Subject, Message-ID, ...,
 *   the --header fields, MIME-Version)
 *   body:  text/plain                      text only
 *          text/html                       HTML only
 *          multipart/alternative           text and HTML
 *          multipart/mixed                 with attachments: the body
 *                                          above, then each file in
 *                                          base64
 *
 * Bcc recipients are in the envelope only.  The output is CRLF text
 * written to a FILE (a temporary file or the queue): attachments are
 * streamed into it, never read whole.
 */

#include "pst_send.h"

#include <fcntl.h>
#include <sys/random.h>

typedef struct {
    const pst_send_opts_t  *o;
    FILE                   *f;
    int                     allow_8bit;
    pst_send_env_t         *env;
    char                    boundary[40];
    u_char                 *text, *html;
    size_t                  text_len, html_len;
    char                   *err;
    size_t                  size;
} pst_send_cx_t;

static int pst_send_env_add(pst_send_env_t *env, const pst_send_list_t *l,
    char *err, size_t size);
static int pst_send_load(const char *path, u_char **p, size_t *n,
    char *err, size_t size);
static size_t pst_send_param_octet(char *out, u_char c);
static int pst_send_addr_field(pst_send_cx_t *cx, const char *name,
    const pst_send_list_t *l, const char *s);
static int pst_send_headers(pst_send_cx_t *cx);
static int pst_send_headers_more(pst_send_cx_t *cx);
static int pst_send_message_id(pst_send_cx_t *cx);
static int pst_send_text_part(pst_send_cx_t *cx, const u_char *p, size_t n,
    const char *subtype);
static int pst_send_body(pst_send_cx_t *cx);
static int pst_send_attachment(pst_send_cx_t *cx, const char *spec);
static void pst_send_param(FILE *f, const char *param, const char *v);

/* octets of a parameter value per line: " filename*12*=" and 60 stay
 * within 78 columns */
#define PST_SEND_PIECE  60
static int pst_send_attach_spec(const char *spec, char **path,
    const char **type, const char **name, char **buf);
static int pst_send_check_attachments(pst_send_cx_t *cx);


void
pst_send_random_hex(char *buf, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    u_char             r[64];
    size_t             i;

    if (n > sizeof(r)) {
        n = sizeof(r);
    }
    if (getrandom(r, n, 0) != (ssize_t) n) {
        for (i = 0; i < n; i++) {
            r[i] = (u_char) (rand() ^ getpid() ^ time(NULL));
        }
    }
    for (i = 0; i < n; i++) {
        buf[i] = hex[r[i] & 0x0f];
    }
    buf[n] = '\0';
}


static int
pst_send_env_add(pst_send_env_t *env, const pst_send_list_t *l, char *err,
    size_t size)
{
    size_t  i;
    char   *a;

    for (i = 0; i < l->n; i++) {
        a = pst_send_addr_spec(l->v[i]);
        if (a == NULL || *a == '\0') {
            snprintf(err, size, "not an address: \"%s\"", l->v[i]);
            free(a);
            return PST_SEND_USAGE;
        }
        if (!pst_send_is_ascii((u_char *) a, strlen(a))) {
            env->smtputf8 = 1;
        }
        if (pst_send_list_add(&env->rcpts, a) != PST_OK) {
            free(a);
            return PST_SEND_IOERR;
        }
        free(a);
    }
    return PST_OK;
}


int
pst_send_envelope(const pst_send_opts_t *o, pst_send_env_t *env, char *err,
    size_t size)
{
    const char  *s = o->return_path ? o->return_path : o->from;
    int          rc;

    memset(env, 0, sizeof(*env));
    if (s != NULL) {
        env->sender = pst_send_addr_spec(s);
        if (env->sender == NULL) {
            snprintf(err, size, "not an address: \"%s\"", s);
            return PST_SEND_USAGE;
        }
        if (!pst_send_is_ascii((u_char *) env->sender,
                               strlen(env->sender)))
        {
            env->smtputf8 = 1;
        }
    }

    rc = pst_send_env_add(env, &o->to, err, size);
    if (rc == PST_OK) {
        rc = pst_send_env_add(env, &o->cc, err, size);
    }
    if (rc == PST_OK) {
        rc = pst_send_env_add(env, &o->bcc, err, size);
    }
    return rc;
}


void
pst_send_env_free(pst_send_env_t *env)
{
    free(env->sender);
    pst_send_list_free(&env->rcpts);
    pst_send_list_free(&env->refused);
    memset(env, 0, sizeof(*env));
}


/* A text body from a file ("-": stdin), at most PST_SEND_MAX_TEXT. */
static int
pst_send_load(const char *path, u_char **p, size_t *n, char *err,
    size_t size)
{
    size_t   cap = 65536;
    ssize_t  r;
    int      fd;

    fd = strcmp(path, "-") == 0 ? STDIN_FILENO
                                : open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, size, "%s: %s", path, strerror(errno));
        return PST_SEND_NOINPUT;
    }

    *n = 0;
    *p = malloc(cap);
    for ( ;; ) {
        if (*p == NULL) {
            snprintf(err, size, "out of memory");
            break;
        }
        if (*n == cap) {
            if (cap >= PST_SEND_MAX_TEXT) {
                snprintf(err, size, "%s: a text body is limited to %d "
                         "MiB (attach bigger files)", path,
                         PST_SEND_MAX_TEXT >> 20);
                break;
            }
            cap *= 2;
            *p = realloc(*p, cap);
            continue;
        }
        r = read(fd, *p + *n, cap - *n);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            if (r == -1) {
                snprintf(err, size, "%s: %s", path, strerror(errno));
                break;
            }
            if (fd != STDIN_FILENO) {
                close(fd);
            }
            return PST_OK;
        }
        *n += (size_t) r;
    }

    if (fd != STDIN_FILENO) {
        close(fd);
    }
    return PST_SEND_NOINPUT;
}


static int
pst_send_message_id(pst_send_cx_t *cx)
{
    char         host[256], r1[17], r2[9];
    const char  *at = NULL;
    char        *from;
    int          rc;

    if (cx->o->message_id != NULL) {
        return pst_send_hdr_text(cx->f, "Message-ID", cx->o->message_id);
    }

    from = cx->o->from ? pst_send_addr_spec(cx->o->from) : NULL;
    if (from != NULL) {
        at = strrchr(from, '@');
    }
    if (at != NULL && at[1] != '\0'
        && pst_send_is_ascii((u_char *) at, strlen(at)))
    {
        snprintf(host, sizeof(host), "%s", at + 1);
    } else if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    pst_send_random_hex(r1, 16);
    pst_send_random_hex(r2, 8);
    rc = fprintf(cx->f, "Message-ID: <%lx.%s.%s@%s>\r\n",
                 (unsigned long) time(NULL), r1, r2, host) < 0
         ? PST_ERROR : PST_OK;
    free(from);
    return rc;
}


/* An address field from a list, or (l NULL) from the string s; a
 * precise error when it cannot be written. */
static int
pst_send_addr_field(pst_send_cx_t *cx, const char *name,
    const pst_send_list_t *l, const char *s)
{
    pst_send_list_t  one = { NULL, 0, 0 };
    int              rc;

    if (l == NULL) {
        if (pst_send_list_split(&one, s) != PST_OK) {
            return PST_SEND_IOERR;
        }
        l = &one;
    }
    rc = pst_send_hdr_addrs(cx->f, name, l);
    pst_send_list_free(&one);

    if (rc == PST_DECLINED) {
        snprintf(cx->err, cx->size, "%s: an address too long to fit a "
                 "header line of %d octets (it cannot be folded)", name,
                 PST_SEND_MAX_LINE);
        return PST_SEND_USAGE;
    }
    if (rc != PST_OK) {
        snprintf(cx->err, cx->size, "%s: a malformed address", name);
        return PST_SEND_USAGE;
    }
    return PST_OK;
}


static int
pst_send_headers(pst_send_cx_t *cx)
{
    const pst_send_opts_t  *o = cx->o;
    u_char                  date[64];
    size_t                  n;
    int                     rc = PST_OK;

    if (o->date != NULL) {
        rc = pst_send_hdr_text(cx->f, "Date", o->date);
    } else {
        n = pst_rfc5322_date(time(NULL), date, sizeof(date));
        fprintf(cx->f, "Date: %.*s\r\n", (int) n, date);
    }
    if (rc != PST_OK) {
        snprintf(cx->err, cx->size, "a header field is malformed");
        return PST_SEND_USAGE;
    }

    if (o->from != NULL) {
        rc = pst_send_addr_field(cx, "From", NULL, o->from);
    }
    if (rc == PST_OK && o->reply_to != NULL) {
        rc = pst_send_addr_field(cx, "Reply-To", NULL, o->reply_to);
    }
    if (rc == PST_OK && o->to.n > 0) {
        rc = pst_send_addr_field(cx, "To", &o->to, NULL);
    }
    if (rc == PST_OK && o->cc.n > 0) {
        rc = pst_send_addr_field(cx, "Cc", &o->cc, NULL);
    }
    if (rc != PST_OK) {
        return rc;
    }

    if (o->subject != NULL) {
        rc |= pst_send_hdr_text(cx->f, "Subject", o->subject);
    }
    rc |= pst_send_message_id(cx);
    if (rc != PST_OK) {
        snprintf(cx->err, cx->size, "a header field is malformed");
        return PST_SEND_USAGE;
    }
    return pst_send_headers_more(cx);
}


static int
pst_send_headers_more(pst_send_cx_t *cx)
{
    const pst_send_opts_t  *o = cx->o;
    const char             *p, *v;
    char                    name[128];
    size_t                  i, n;
    int                     rc = PST_OK, arc;

    if (o->importance != NULL) {
        rc |= pst_send_hdr_text(cx->f, "Importance", o->importance);
    }
    if (o->priority != NULL) {
        rc |= pst_send_hdr_text(cx->f, "Priority", o->priority);
    }
    if (o->sensitivity != NULL) {
        rc |= pst_send_hdr_text(cx->f, "Sensitivity", o->sensitivity);
    }
    if (o->read_receipt_to != NULL) {
        arc = pst_send_addr_field(cx, "Disposition-Notification-To", NULL,
                                  o->read_receipt_to);
        if (arc != PST_OK) {
            return arc;
        }
    }

    for (i = 0; i < o->headers.n; i++) {
        p = o->headers.v[i];
        v = strchr(p, ':');
        n = (size_t) (v - p);
        if (n >= sizeof(name) || strcspn(p, " \t") < n) {
            snprintf(cx->err, cx->size, "--header: bad field name in "
                     "\"%s\"", p);
            return PST_SEND_USAGE;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        for (v++; *v == ' ' || *v == '\t'; v++) {
            /* skip */
        }
        rc |= pst_send_hdr_text(cx->f, name, v);
    }

    fputs("MIME-Version: 1.0\r\n", cx->f);

    if (rc != PST_OK) {
        snprintf(cx->err, cx->size, "a header field is malformed");
        return PST_SEND_USAGE;
    }
    return PST_OK;
}


static int
pst_send_text_part(pst_send_cx_t *cx, const u_char *p, size_t n,
    const char *subtype)
{
    static const char  *names[] = { "7bit", "8bit", "quoted-printable" };
    pst_send_cte_e      cte;

    cte = pst_send_text_cte(p, n, cx->allow_8bit);
    if (cte == PST_SEND_CTE_8BIT) {
        cx->env->eightbit = 1;
    }

    fprintf(cx->f, "Content-Type: text/%s; charset=%s\r\n"
            "Content-Transfer-Encoding: %s\r\n\r\n", subtype,
            pst_send_is_ascii(p, n) ? "us-ascii" : "utf-8", names[cte]);

    return pst_send_text_write(cx->f, p, n, cte);
}


/* The body without attachments: text, HTML or both. */
static int
pst_send_body(pst_send_cx_t *cx)
{
    int  rc;

    if (cx->html == NULL) {
        return pst_send_text_part(cx, cx->text ? cx->text : (u_char *) "",
                                  cx->text_len, "plain");
    }
    if (cx->text == NULL) {
        return pst_send_text_part(cx, cx->html, cx->html_len, "html");
    }

    fprintf(cx->f, "Content-Type: multipart/alternative;\r\n"
            " boundary=\"%s-alt\"\r\n\r\n--%s-alt\r\n", cx->boundary,
            cx->boundary);
    rc = pst_send_text_part(cx, cx->text, cx->text_len, "plain");
    fprintf(cx->f, "\r\n--%s-alt\r\n", cx->boundary);
    rc |= pst_send_text_part(cx, cx->html, cx->html_len, "html");
    fprintf(cx->f, "\r\n--%s-alt--\r\n", cx->boundary);

    return rc;
}


/* One octet of an RFC 2231 value, as it is or %XX, into out (or only
 * its length, out NULL). */
static size_t
pst_send_param_octet(char *out, u_char c)
{
    if (isalnum(c) || strchr("!#$&+-.^_`|~", c) != NULL) {
        if (out != NULL) {
            out[0] = (char) c;
        }
        return 1;
    }
    if (out != NULL) {
        snprintf(out, 4, "%%%02X", c);
    }
    return 3;
}


/* A parameter as name="v" (short ASCII), name*=UTF-8''%XX (RFC 2231),
 * or, when that would pass the fold column, RFC 2231 continuations
 * (name*0*=UTF-8''..., name*1*=...) that never cut a UTF-8 character:
 * a long file name never makes a line over 998 octets. */
static void
pst_send_param(FILE *f, const char *param, const char *v)
{
    const u_char  *p = (const u_char *) v;
    char           piece[PST_SEND_PIECE + 16];
    size_t         k, n, j, need;
    int            i;

    if (pst_send_is_ascii(p, strlen(v)) && strpbrk(v, "\"\\\r\n") == NULL
        && strlen(param) + strlen(v) + 3 <= PST_SEND_PIECE)
    {
        fprintf(f, ";\r\n %s=\"%s\"", param, v);
        return;
    }

    for (i = 0; *p != '\0'; i++) {
        for (k = 0; *p != '\0'; p += n) {
            /* one character: a lead octet and at most 3 more */
            for (n = 1; n < 4 && (p[n] & 0xC0) == 0x80; n++) {
                /* count */
            }
            for (need = 0, j = 0; j < n; j++) {
                need += pst_send_param_octet(NULL, p[j]);
            }
            if (k > 0 && k + need > PST_SEND_PIECE) {
                break;
            }
            for (j = 0; j < n; j++) {
                k += pst_send_param_octet(piece + k, p[j]);
            }
        }
        if (i == 0 && *p == '\0') {
            fprintf(f, ";\r\n %s*=UTF-8''%.*s", param, (int) k, piece);
        } else {
            fprintf(f, ";\r\n %s*%d*=%s%.*s", param, i, i ? "" : "UTF-8''",
                    (int) k, piece);
        }
    }
}


/* "FILE[;type=T][;name=N]": path, type and name (malloc'ed). */
static int
pst_send_attach_spec(const char *spec, char **path, const char **type,
    const char **name, char **buf)
{
    char  *p, *semi, *next;

    *buf = strdup(spec);
    if (*buf == NULL) {
        return PST_ERROR;
    }
    *path = *buf;
    *type = NULL;
    *name = NULL;

    /* the path ends at the first ";type=" or ";name=" */
    for (p = *buf; (semi = strchr(p, ';')) != NULL; p = semi + 1) {
        if (strncmp(semi + 1, "type=", 5) == 0
            || strncmp(semi + 1, "name=", 5) == 0)
        {
            break;
        }
    }
    if (semi == NULL) {
        return PST_OK;
    }
    *semi = '\0';

    for (p = semi + 1; p != NULL; p = next) {
        next = strchr(p, ';');
        if (next != NULL) {
            *next++ = '\0';
        }
        if (strncmp(p, "type=", 5) == 0 && p[5] != '\0') {
            *type = p + 5;
        } else if (strncmp(p, "name=", 5) == 0 && p[5] != '\0') {
            *name = p + 5;
        } else {
            return PST_ERROR;
        }
    }
    return PST_OK;
}


static int
pst_send_attachment(pst_send_cx_t *cx, const char *spec)
{
    const char  *type, *name, *base;
    char        *path, *buf;
    int          fd, rc;

    if (pst_send_attach_spec(spec, &path, &type, &name, &buf) != PST_OK) {
        snprintf(cx->err, cx->size, "--attach: \"%s\": use FILE[;type=T]"
                 "[;name=N]", spec);
        free(buf);
        return PST_SEND_USAGE;
    }

    base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (name == NULL) {
        name = base;
    }
    if (type == NULL) {
        type = pst_send_guess_type(name);
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(cx->err, cx->size, "%s: %s", path, strerror(errno));
        free(buf);
        return PST_SEND_NOINPUT;
    }

    fprintf(cx->f, "\r\n--%s\r\nContent-Type: %s", cx->boundary, type);
    pst_send_param(cx->f, "name", name);
    fputs("\r\nContent-Disposition: attachment", cx->f);
    pst_send_param(cx->f, "filename", name);
    fputs("\r\nContent-Transfer-Encoding: base64\r\n\r\n", cx->f);

    rc = pst_send_base64_file(cx->f, fd);
    if (rc != PST_OK) {
        snprintf(cx->err, cx->size, "%s: %s", path,
                 errno ? strerror(errno) : "read error");
    }
    close(fd);
    free(buf);

    return rc == PST_OK ? PST_OK : PST_SEND_IOERR;
}


/* Every attachment readable before a byte is written. */
static int
pst_send_check_attachments(pst_send_cx_t *cx)
{
    const char  *type, *name;
    char        *path, *buf;
    size_t       i;

    for (i = 0; i < cx->o->attach.n; i++) {
        if (pst_send_attach_spec(cx->o->attach.v[i], &path, &type, &name,
                                 &buf) != PST_OK)
        {
            snprintf(cx->err, cx->size, "--attach: \"%s\": use "
                     "FILE[;type=T][;name=N]", cx->o->attach.v[i]);
            free(buf);
            return PST_SEND_USAGE;
        }
        /* RFC 6838 4.2: type and subtype at most 127 characters each */
        if (type != NULL && (strchr(type, '/') == NULL || strlen(type) > 255
                             || strpbrk(type, " \t\r\n\";") != NULL))
        {
            snprintf(cx->err, cx->size, "--attach: bad type \"%s\"", type);
            free(buf);
            return PST_SEND_USAGE;
        }
        if (access(path, R_OK) != 0) {
            snprintf(cx->err, cx->size, "%s: %s", path, strerror(errno));
            free(buf);
            return PST_SEND_NOINPUT;
        }
        free(buf);
    }
    return PST_OK;
}


int
pst_send_compose(const pst_send_opts_t *o, int allow_8bit, FILE *f,
    pst_send_env_t *env, char *err, size_t size)
{
    pst_send_cx_t  cx;
    size_t         i;
    int            rc;

    memset(&cx, 0, sizeof(cx));
    cx.o = o;
    cx.f = f;
    cx.allow_8bit = allow_8bit;
    cx.env = env;
    cx.err = err;
    cx.size = size;
    memcpy(cx.boundary, "=_pst_", 6);
    pst_send_random_hex(cx.boundary + 6, 24);

    rc = pst_send_envelope(o, env, err, size);
    if (rc == PST_OK) {
        rc = pst_send_check_attachments(&cx);
    }
    if (rc == PST_OK && o->body != NULL) {
        cx.text = (u_char *) strdup(o->body);
        cx.text_len = strlen(o->body);
    }
    if (rc == PST_OK && o->body_file != NULL) {
        rc = pst_send_load(o->body_file, &cx.text, &cx.text_len, err, size);
    }
    if (rc == PST_OK && o->html_file != NULL) {
        rc = pst_send_load(o->html_file, &cx.html, &cx.html_len, err, size);
    }
    if (rc == PST_OK) {
        rc = pst_send_headers(&cx);
    }

    if (rc == PST_OK && o->attach.n == 0) {
        rc = pst_send_body(&cx);
    } else if (rc == PST_OK) {
        fprintf(f, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n"
                "\r\nThis is a multi-part message in MIME format.\r\n",
                cx.boundary);
        if (cx.text != NULL || cx.html != NULL) {
            fprintf(f, "\r\n--%s\r\n", cx.boundary);
            rc = pst_send_body(&cx);
        }
        for (i = 0; rc == PST_OK && i < o->attach.n; i++) {
            rc = pst_send_attachment(&cx, o->attach.v[i]);
        }
        fprintf(f, "\r\n--%s--\r\n", cx.boundary);
    }

    free(cx.text);
    free(cx.html);

    if (rc == PST_OK && (fflush(f) != 0 || ferror(f))) {
        snprintf(err, size, "cannot write the message: %s",
                 strerror(errno));
        rc = PST_SEND_IOERR;
    }
    return rc == PST_ERROR ? PST_SEND_IOERR : rc;
}
