/*
 * pst_smtp_edit.c -- message edits at end of data (ABI 1.2): change the
 * sender, add and remove recipients, insert, change and remove header
 * fields, replace the body.  A milter client is the first user.
 *
 * Envelope edits change the transaction at once (the envelope writer
 * reads it at commit).  Header and body edits are recorded and applied
 * by pst_smtp_edit_apply() after the QUEUE phase, before the commit: the
 * message is rewritten once, from the store's read() into a new store
 * handle (through an unlinked file in the worker's tmp/), so that the
 * stored message is what the edits say whatever the store.  A
 * replacement body goes to another unlinked file while it arrives: no
 * message is ever held in memory, only its header section.
 */

#include "pst_smtp.h"

#include <fcntl.h>

#define PST_EDIT_HDR_MAX     (1024 * 1024)    /* header section we edit */
#define PST_EDIT_IO          65536

#define pst_edit_cpy(dst, src, n)  ((u_char *) memcpy(dst, src, n) + (n))

typedef enum {
    PST_EDIT_INSERT = 0,
    PST_EDIT_CHANGE
} pst_edit_op_e;

typedef struct {
    pst_edit_op_e                op;
    pst_uint_t                   index;    /* position, or nth of name */
    pst_str_t                    name;
    pst_str_t                    value;    /* after the colon, CRLF folds;
                                              data NULL: delete */
} pst_edit_hdr_t;

struct pst_smtp_edits_s {
    pst_array_t                 *headers;  /* pst_edit_hdr_t, in order */
    int                          body_fd;  /* replacement body, or -1 */
    off_t                        body_len;
};

typedef struct {
    u_char                      *start;
    size_t                       len;      /* the field with its CRLF */
    size_t                       nlen;     /* name length */
} pst_field_t;

static pst_smtp_edits_t *pst_edits(pst_session_t *s);
static void pst_edits_cleanup(void *data);
static int pst_edit_name_ok(const pst_str_t *name);
static int pst_edit_value(pst_pool_t *pool, const pst_str_t *in,
    pst_str_t *out);
static int pst_edit_tmpfile(void);
static int pst_edit_read_headers(pst_session_t *s, pst_buf_t *b,
    off_t *body_off);
static int pst_edit_fields(pst_pool_t *pool, pst_buf_t *b, pst_array_t **f);
static int pst_edit_one(pst_pool_t *pool, pst_array_t *fields,
    const pst_edit_hdr_t *e);
static int pst_edit_write_all(int fd, const u_char *p, size_t n);
static int pst_edit_copy(int out, int in_fd, pst_session_t *s, off_t off,
    off_t *total);
static int pst_edit_restore(pst_session_t *s, int fd, off_t total);
static int pst_edit_write(pst_session_t *s, int fd, pst_array_t *fields,
    off_t body_off, off_t *total);


/* Edits are for the end of data: MESSAGE and QUEUE hooks. */
static pst_smtp_edits_t *
pst_edits(pst_session_t *s)
{
    pst_smtp_tx_t     *tx = s->tx;
    pst_smtp_edits_t  *e;

    if (tx == NULL || !tx->data_started || tx->store == NULL
        || (s->phase != PST_PHASE_MESSAGE && s->phase != PST_PHASE_QUEUE))
    {
        return NULL;
    }
    if (tx->edits != NULL) {
        return tx->edits;
    }

    e = pst_pcalloc(tx->pool, sizeof(pst_smtp_edits_t));
    if (e == NULL) {
        return NULL;
    }
    e->headers = pst_array_create(tx->pool, 4, sizeof(pst_edit_hdr_t));
    if (e->headers == NULL) {
        return NULL;
    }
    e->body_fd = -1;
    if (pst_pool_cleanup_add(tx->pool, pst_edits_cleanup, e) != PST_OK) {
        return NULL;
    }
    tx->edits = e;
    return e;
}


static void
pst_edits_cleanup(void *data)
{
    pst_smtp_edits_t  *e = data;

    if (e->body_fd != -1) {
        close(e->body_fd);
        e->body_fd = -1;
    }
}


/* ------------------------------------------------------------------ */
/* Envelope edits                                                      */

/* "<addr> params" through the command parsers: the same checks as MAIL
 * and RCPT from a client. */
static int
pst_edit_path(pst_session_t *s, const pst_str_t *addr,
    const pst_str_t *params, int mail, pst_smtp_path_t *path,
    pst_smtp_params_t *prm)
{
    pst_smtp_error_t  err;
    size_t            n;
    u_char           *buf, *p, *end;

    n = addr->len + (params ? params->len : 0) + 4;
    buf = pst_palloc(s->tx->pool, n);
    if (buf == NULL || addr->len > 512
        || memchr(addr->data, '\0', addr->len) != NULL)
    {
        return PST_ERROR;
    }
    p = buf;
    *p++ = '<';
    p = pst_edit_cpy(p, addr->data, addr->len);
    *p++ = '>';
    if (params != NULL && params->len) {
        *p++ = ' ';
        p = pst_edit_cpy(p, params->data, params->len);
    }
    end = p;
    p = buf;

    memset(prm, 0, sizeof(pst_smtp_params_t));
    if (pst_smtp_parse_path(s->tx->pool, &p, end, mail,
                            s->tx->params.smtputf8, path, &err) != PST_OK
        || (p < end && *p != ' ')
        || pst_smtp_parse_params(s->tx->pool, p, end, mail, prm, &err)
           != PST_OK)
    {
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_tx_set_sender(pst_session_t *s, const pst_str_t *addr,
    const pst_str_t *params)
{
    pst_smtp_path_t    path;
    pst_smtp_params_t  prm;

    if (pst_edits(s) == NULL
        || pst_edit_path(s, addr, params, 1, &path, &prm) != PST_OK)
    {
        return PST_ERROR;
    }

    s->tx->sender = path.addr;
    if (params != NULL && params->len) {
        /* the new sender's parameters replace the old ones (DSN, BODY) */
        s->tx->params.body = prm.body;
        s->tx->params.ret = prm.ret;
        s->tx->params.envid = prm.envid;
    }
    return PST_OK;
}


int
pst_tx_add_rcpt(pst_session_t *s, const pst_str_t *addr,
    const pst_str_t *params)
{
    pst_smtp_path_t    path;
    pst_smtp_params_t  prm;
    pst_smtp_rcpt_t   *r;

    if (pst_edits(s) == NULL
        || pst_edit_path(s, addr, params, 0, &path, &prm) != PST_OK
        || path.addr.len == 0)
    {
        return PST_ERROR;
    }

    r = pst_array_push(&s->tx->rcpts);
    if (r == NULL) {
        return PST_ERROR;
    }
    memset(r, 0, sizeof(pst_smtp_rcpt_t));
    r->addr = path.addr;
    r->notify = prm.notify;
    if (prm.orcpt.data != NULL) {
        r->orcpt_type = prm.orcpt_type;
        r->orcpt = prm.orcpt;
    }
    return PST_OK;
}


/* Every recipient with this address (compared without case), as a
 * milter's SMFIR_DELRCPT means.  PST_OK, or PST_DECLINED for none. */
int
pst_tx_del_rcpt(pst_session_t *s, const pst_str_t *addr)
{
    pst_smtp_rcpt_t  *r;
    pst_uint_t        i, j;
    int               rc = PST_DECLINED;

    if (pst_edits(s) == NULL) {
        return PST_ERROR;
    }

    r = s->tx->rcpts.elts;
    for (i = 0, j = 0; i < s->tx->rcpts.nelts; i++) {
        if (r[i].addr.len == addr->len
            && pst_strncasecmp(r[i].addr.data, addr->data, addr->len) == 0)
        {
            rc = PST_OK;
            continue;
        }
        r[j++] = r[i];
    }
    s->tx->rcpts.nelts = j;
    return rc;
}


/* ------------------------------------------------------------------ */
/* Header and body edits, recorded                                     */

static int
pst_edit_name_ok(const pst_str_t *name)
{
    size_t  i;

    if (name->len == 0 || name->len > 76) {
        return 0;
    }
    for (i = 0; i < name->len; i++) {
        if (name->data[i] < 33 || name->data[i] > 126
            || name->data[i] == ':')
        {
            return 0;              /* RFC 5322 ftext */
        }
    }
    return 1;
}


/*
 * What follows the colon, as it will be stored: every line break (LF,
 * CR, CRLF, or several) becomes one CRLF, followed by a TAB when the
 * next line does not start with white space -- a value can never end
 * the header section or start a field of its own.  NUL becomes a space.
 */
static int
pst_edit_value(pst_pool_t *pool, const pst_str_t *in, pst_str_t *out)
{
    u_char  *p, *q, *end;

    out->data = pst_palloc(pool, in->len * 3 + 1);
    if (out->data == NULL || in->len > 65536) {
        return PST_ERROR;
    }

    q = out->data;
    p = in->data;
    end = p + in->len;
    while (p < end) {
        if (*p == '\r' || *p == '\n') {
            while (p < end && (*p == '\r' || *p == '\n')) {
                p++;
            }
            if (p == end) {
                break;             /* a trailing line end: dropped */
            }
            *q++ = '\r';
            *q++ = '\n';
            if (*p != ' ' && *p != '\t') {
                *q++ = '\t';
            }
            continue;
        }
        *q++ = *p ? *p : ' ';
        p++;
    }
    out->len = (size_t) (q - out->data);
    return PST_OK;
}


static int
pst_edit_header(pst_session_t *s, pst_edit_op_e op, pst_uint_t index,
    const pst_str_t *name, const pst_str_t *value)
{
    pst_smtp_edits_t  *e;
    pst_edit_hdr_t    *h;

    e = pst_edits(s);
    if (e == NULL || !pst_edit_name_ok(name)) {
        return PST_ERROR;
    }

    h = pst_array_push(e->headers);
    if (h == NULL) {
        return PST_ERROR;
    }
    h->op = op;
    h->index = index;
    h->name.len = name->len;
    h->name.data = pst_pstrdup(s->tx->pool, name);
    h->value.len = 0;
    h->value.data = NULL;
    if (h->name.data == NULL
        || (value != NULL
            && pst_edit_value(s->tx->pool, value, &h->value) != PST_OK))
    {
        e->headers->nelts--;
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_msg_insert_header(pst_session_t *s, pst_uint_t pos,
    const pst_str_t *name, const pst_str_t *value)
{
    if (value == NULL) {
        return PST_ERROR;
    }
    return pst_edit_header(s, PST_EDIT_INSERT, pos, name, value);
}


int
pst_msg_change_header(pst_session_t *s, const pst_str_t *name,
    pst_uint_t index, const pst_str_t *value)
{
    if (index == 0) {
        return PST_ERROR;
    }
    return pst_edit_header(s, PST_EDIT_CHANGE, index, name, value);
}


static int
pst_edit_tmpfile(void)
{
    const pst_str_t  *dir = pst_spool_tmp_dir();

    return open(dir != NULL && dir->len ? (char *) dir->data : "/tmp",
                O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}


int
pst_msg_replace_body(pst_session_t *s, const u_char *data, size_t len)
{
    pst_smtp_edits_t  *e;

    e = pst_edits(s);
    if (e == NULL) {
        return PST_ERROR;
    }
    if (e->body_fd == -1) {
        e->body_fd = pst_edit_tmpfile();
        if (e->body_fd == -1) {
            pst_log_session(s, PST_LOG_ERR, "id=%s: no file for a new"
                            " body: %s", s->tx->id.data, strerror(errno));
            return PST_ERROR;
        }
    }
    if (s->conf->message_size_limit
        && e->body_len + (off_t) len > (off_t) s->conf->message_size_limit)
    {
        return PST_ERROR;
    }
    if (pst_edit_write_all(e->body_fd, data, len) != PST_OK) {
        return PST_ERROR;
    }
    e->body_len += (off_t) len;
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Applying them: one rewrite of the stored message                    */

static int
pst_edit_write_all(int fd, const u_char *p, size_t n)
{
    ssize_t  w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return PST_ERROR;
        }
        p += w;
        n -= (size_t) w;
    }
    return PST_OK;
}


/* The stored header section, up to and without the empty line; the
 * body starts at *body_off (the empty line included). */
static int
pst_edit_read_headers(pst_session_t *s, pst_buf_t *b, off_t *body_off)
{
    u_char   buf[8192], *p, *eol;
    off_t    off = 0;
    ssize_t  n;

    for ( ;; ) {
        n = pst_msg_read(s, off, buf, sizeof(buf));
        if (n < 0) {
            return PST_ERROR;
        }
        if (n == 0) {
            *body_off = off;       /* only headers, no empty line */
            return PST_OK;
        }
        if (pst_buf_append(b, buf, (size_t) n, PST_EDIT_HDR_MAX) != PST_OK) {
            return PST_ERROR;
        }
        /* find CRLF CRLF (or a first line that is empty) */
        for (p = b->pos; p < b->last; p = eol + 1) {
            eol = memchr(p, '\n', (size_t) (b->last - p));
            if (eol == NULL) {
                break;
            }
            if (eol - p <= 1) {
                b->last = p;
                *body_off = (off_t) (p - b->pos);
                return PST_OK;
            }
        }
        off += n;
    }
}


static int
pst_edit_fields(pst_pool_t *pool, pst_buf_t *b, pst_array_t **out)
{
    pst_array_t  *a;
    pst_field_t  *f = NULL;
    u_char       *p, *eol, *colon;

    a = pst_array_create(pool, 32, sizeof(pst_field_t));
    if (a == NULL) {
        return PST_ERROR;
    }

    for (p = b->pos; p < b->last; p = eol) {
        eol = memchr(p, '\n', (size_t) (b->last - p));
        eol = eol ? eol + 1 : b->last;
        if ((*p == ' ' || *p == '\t') && f != NULL) {
            f->len += (size_t) (eol - p);     /* folded */
            continue;
        }
        f = pst_array_push(a);
        if (f == NULL) {
            return PST_ERROR;
        }
        f->start = p;
        f->len = (size_t) (eol - p);
        colon = memchr(p, ':', f->len);
        f->nlen = colon ? (size_t) (colon - p) : 0;
        while (f->nlen && (p[f->nlen - 1] == ' ' || p[f->nlen - 1] == '\t')) {
            f->nlen--;
        }
    }

    *out = a;
    return PST_OK;
}


static int
pst_edit_one(pst_pool_t *pool, pst_array_t *fields, const pst_edit_hdr_t *e)
{
    pst_field_t  *f, nf;
    pst_uint_t    i, nth;
    u_char       *p;

    if (e->value.data != NULL) {
        nf.nlen = e->name.len;
        nf.len = e->name.len + 1 + e->value.len + 2;
        nf.start = pst_palloc(pool, nf.len);
        if (nf.start == NULL) {
            return PST_ERROR;
        }
        p = pst_edit_cpy(nf.start, e->name.data, e->name.len);
        *p++ = ':';
        p = pst_edit_cpy(p, e->value.data, e->value.len);
        *p++ = '\r';
        *p = '\n';
    }

    f = fields->elts;

    if (e->op == PST_EDIT_CHANGE) {
        for (i = 0, nth = 0; i < fields->nelts; i++) {
            if (f[i].nlen == e->name.len
                && pst_strncasecmp(f[i].start, e->name.data, e->name.len)
                   == 0
                && ++nth == e->index)
            {
                break;
            }
        }
        if (i == fields->nelts) {
            /* Sendmail: changing a field that is not there adds it */
            if (e->value.data == NULL) {
                return PST_OK;
            }
            i = fields->nelts;
            if (pst_array_push(fields) == NULL) {
                return PST_ERROR;
            }
            f = fields->elts;
            f[i] = nf;
            return PST_OK;
        }
        if (e->value.data == NULL) {
            memmove(&f[i], &f[i + 1],
                    (fields->nelts - i - 1) * sizeof(pst_field_t));
            fields->nelts--;
        } else {
            f[i] = nf;
        }
        return PST_OK;
    }

    /* insert at position index (0: first; past the end: last) */
    if (pst_array_push(fields) == NULL) {
        return PST_ERROR;
    }
    f = fields->elts;
    i = pst_min(e->index, fields->nelts - 1);
    memmove(&f[i + 1], &f[i], (fields->nelts - 1 - i) * sizeof(pst_field_t));
    f[i] = nf;
    return PST_OK;
}


/* Copy the old body from the store (in_fd -1) or from in_fd. */
static int
pst_edit_copy(int out, int in_fd, pst_session_t *s, off_t off, off_t *total)
{
    u_char   buf[PST_EDIT_IO];
    ssize_t  n;

    for ( ;; ) {
        n = in_fd == -1 ? pst_msg_read(s, off, buf, sizeof(buf))
                        : pread(in_fd, buf, sizeof(buf), off);
        if (n < 0) {
            return PST_ERROR;
        }
        if (n == 0) {
            return PST_OK;
        }
        if (pst_edit_write_all(out, buf, (size_t) n) != PST_OK) {
            return PST_ERROR;
        }
        off += n;
        *total += n;
    }
}


/* The store gets the rewritten message: the old handle goes, a new one
 * (same queue ID) takes the bytes of fd. */
static int
pst_edit_restore(pst_session_t *s, int fd, off_t total)
{
    const pst_store_ops_t  *ops = s->server->store->desc.store;
    pst_smtp_tx_t          *tx = s->tx;
    u_char                  buf[PST_EDIT_IO];
    off_t                   off;
    ssize_t                 n;

    ops->abort(tx->store);
    tx->store = ops->open(s, s->server->srv_conf[s->server->store->index]);
    if (tx->store == NULL) {
        return PST_ERROR;
    }

    for (off = 0; off < total; off += n) {
        n = pread(fd, buf, sizeof(buf), off);
        if (n <= 0 || ops->write(tx->store, buf, (size_t) n) != PST_OK) {
            return PST_ERROR;
        }
    }

    tx->data.size = total - tx->received_len;
    return PST_OK;
}


/* The new message into fd: the fields, then the new body or the old. */
static int
pst_edit_write(pst_session_t *s, int fd, pst_array_t *fields,
    off_t body_off, off_t *total)
{
    pst_smtp_edits_t  *e = s->tx->edits;
    pst_field_t       *f = fields->elts;
    pst_uint_t         i;

    *total = 0;
    for (i = 0; i < fields->nelts; i++) {
        if (pst_edit_write_all(fd, f[i].start, f[i].len) != PST_OK) {
            return PST_ERROR;
        }
        *total += (off_t) f[i].len;
    }

    if (e->body_fd == -1) {
        return pst_edit_copy(fd, -1, s, body_off, total);
    }
    if (pst_edit_write_all(fd, (u_char *) "\r\n", 2) != PST_OK) {
        return PST_ERROR;
    }
    *total += 2;
    return pst_edit_copy(fd, e->body_fd, s, 0, total);
}


/*
 * Apply the recorded header and body edits to the stored message.
 * PST_OK (nothing to do, or done); PST_ERROR: the message could not be
 * rewritten -- the caller answers 451 and stores nothing.
 */
int
pst_smtp_edit_apply(pst_session_t *s)
{
    pst_smtp_edits_t  *e = s->tx->edits;
    pst_edit_hdr_t    *h;
    pst_array_t       *fields;
    pst_buf_t         *b;
    pst_uint_t         i;
    off_t              body_off, total;
    int                fd, rc;

    if (e == NULL || (e->headers->nelts == 0 && e->body_fd == -1)) {
        return PST_OK;
    }

    fd = -1;
    rc = PST_ERROR;
    errno = 0;
    b = pst_buf_alloc(16384);
    if (b == NULL) {
        return PST_ERROR;
    }

    if (pst_edit_read_headers(s, b, &body_off) != PST_OK
        || pst_edit_fields(s->tx->pool, b, &fields) != PST_OK)
    {
        goto done;
    }

    h = e->headers->elts;
    for (i = 0; i < e->headers->nelts; i++) {
        if (pst_edit_one(s->tx->pool, fields, &h[i]) != PST_OK) {
            goto done;
        }
    }

    fd = pst_edit_tmpfile();
    if (fd == -1
        || pst_edit_write(s, fd, fields, body_off, &total) != PST_OK)
    {
        goto done;
    }

    rc = pst_edit_restore(s, fd, total);

done:

    if (rc != PST_OK) {
        pst_log_session(s, PST_LOG_ERR, "id=%s: the message edits could not"
                        " be applied%s%s", s->tx->id.data, errno ? ": " : "",
                        errno ? strerror(errno) : "");
    }
    if (fd != -1) {
        close(fd);
    }
    pst_buf_destroy(b);
    return rc;
}
