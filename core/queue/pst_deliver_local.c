/*
 * pst_deliver_local.c -- local delivery (ABI 1.2, postern_module.h "local
 * delivery"): a route whose local function is set is not spoken to over
 * SMTP; the function runs once per recipient of the attempt, on one of
 * the queue process's I/O threads (pst_qio), and each result becomes the
 * recipient's outcome as an SMTP reply would (DELIVERED, DEFERRED,
 * FAILED), so retries, DSNs, the log line and the queue events do not
 * know the difference.
 *
 * What the thread reads is the attempt's own: a dup of the queue file's
 * descriptor, and copies (in d->pool) of the queue ID, the sender, the
 * recipients and the prepended header lines, so that a cancelled
 * attempt (the message deleted meanwhile) leaves it nothing freed to
 * read.  pst_local_copy() writes the text as the SMTP client sends it
 * (pst_smtp_client_tx.c): the message's trace block, the prepended
 * lines, the rest.
 */

#include "pst_core.h"
#include "pst_spool.h"
#include "pst_smtp_client.h"
#include "pst_deliver.h"
#include "pst_deliver_int.h"
#include "pst_queue_event.h"

#define PST_LOCAL_CHUNK  16384


struct pst_local_msg_s {
    int                  fd;            /* dup of the queue file */
    off_t                offset, length;
    off_t                prepend_at;    /* found on the thread */
    pst_str_t            id, sender;
    pst_str_t           *rcpts;
    pst_uint_t           nrcpts;
    pst_str_t           *prepend;       /* with CRLF */
    pst_uint_t           nprepend;
};

struct pst_dlv_local_s {
    pst_qio_job_t        job;
    pst_local_pt         fn;
    void                *conf;
    pst_local_msg_t      msg;
    pst_local_result_t  *res;
    int                 *rc;
};

/* pst_local_copy()'s output: a buffer, LF conversion across reads */
typedef struct {
    int                  fd;
    int                  lf_only;
    int                  cr;            /* a CR held back */
    size_t               n;
    off_t                written;
    u_char               buf[PST_LOCAL_CHUNK];
} pst_local_out_t;


static int pst_local_prepare(pst_dlv_t *d, pst_dlv_local_t *l);
static int pst_local_strcpy(pst_pool_t *pool, pst_str_t *to,
    const pst_str_t *from, int crlf);
static void pst_local_run(pst_qio_job_t *job);
static void pst_local_done(pst_qio_job_t *job);
static void pst_local_outcome(pst_dlv_rcpt_t *o, const pst_local_result_t *r,
    int rc);
static int pst_local_flush(pst_local_out_t *o);
static int pst_local_put(pst_local_out_t *o, const u_char *p, size_t n);
static int pst_local_file(const pst_local_msg_t *m, pst_local_out_t *o,
    off_t from, off_t to);


/*
 * The route says: deliver locally.  The function runs on an I/O
 * thread; pst_deliver_local_done() (pst_deliver.c) finishes the attempt
 * on the loop.
 */
void
pst_deliver_local(pst_dlv_t *d, const pst_route_t *route)
{
    pst_dlv_local_t  *l;
    pst_qevent_t      ev;

    snprintf(d->remote, sizeof(d->remote), "%s",
             route->local_name != NULL ? route->local_name : "local");

    l = calloc(1, sizeof(pst_dlv_local_t));
    d->local = l;
    if (l == NULL || pst_local_prepare(d, l) != PST_OK) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "local"
                        " delivery: out of resources");
        pst_deliver_local_done(d);
        return;
    }
    l->fn = route->local;
    l->conf = route->local_conf;

    memset(&ev, 0, sizeof(ev));
    ev.event = PST_QEV_BEFORE_SEND;
    ev.env = &d->job->msg->env;
    ev.rcpt = PST_QEV_NO_RCPT;
    ev.dest = &d->dest;
    ev.remote = d->remote;
    pst_queue_event(&ev);

    l->job.run = pst_local_run;
    l->job.done = pst_local_done;
    l->job.data = d;
    d->converting = 1;                  /* a job owns d: see cancel */
    pst_qio_post(&l->job);
}


void
pst_deliver_local_free(pst_dlv_t *d)
{
    pst_dlv_local_t  *l = d->local;

    if (l == NULL) {
        return;
    }
    if (l->msg.fd != -1) {
        close(l->msg.fd);
    }
    free(l);
    d->local = NULL;
}


/* Everything the thread reads, copied into the attempt's pool. */
static int
pst_local_prepare(pst_dlv_t *d, pst_dlv_local_t *l)
{
    pst_spool_msg_t       *m = d->job->msg;
    const pst_env_rcpt_t  *er = m->env.rcpts->elts;
    const pst_str_t       *h;
    pst_local_msg_t       *lm = &l->msg;
    pst_uint_t             i, n = d->job->nrcpts;

    lm->fd = -1;
    if (d->pool == NULL) {
        d->pool = pst_create_pool(4096);
        if (d->pool == NULL) {
            return PST_ERROR;
        }
    }
    lm->nprepend = m->env.prepend != NULL ? m->env.prepend->nelts : 0;
    lm->rcpts = pst_pcalloc(d->pool, (n + 1) * sizeof(pst_str_t));
    lm->prepend = pst_pcalloc(d->pool, (lm->nprepend + 1)
                                       * sizeof(pst_str_t));
    l->res = pst_pcalloc(d->pool, (n + 1) * sizeof(pst_local_result_t));
    l->rc = pst_pcalloc(d->pool, (n + 1) * sizeof(int));
    if (lm->rcpts == NULL || lm->prepend == NULL || l->res == NULL
        || l->rc == NULL
        || pst_local_strcpy(d->pool, &lm->id, &m->env.id, 0) != PST_OK
        || pst_local_strcpy(d->pool, &lm->sender, &m->env.sender, 0)
           != PST_OK)
    {
        return PST_ERROR;
    }
    for (i = 0; i < n; i++) {
        if (pst_local_strcpy(d->pool, &lm->rcpts[i],
                             &er[d->job->rcpts[i].index].addr, 0) != PST_OK)
        {
            return PST_ERROR;
        }
    }
    lm->nrcpts = n;
    h = lm->nprepend ? m->env.prepend->elts : NULL;
    for (i = 0; i < lm->nprepend; i++) {
        if (pst_local_strcpy(d->pool, &lm->prepend[i], &h[i], 1) != PST_OK) {
            return PST_ERROR;
        }
    }
    lm->offset = m->msg_offset;
    lm->length = m->msg_len;
    lm->fd = dup(m->fd);
    return lm->fd == -1 ? PST_ERROR : PST_OK;
}


static int
pst_local_strcpy(pst_pool_t *pool, pst_str_t *to, const pst_str_t *from,
    int crlf)
{
    to->data = pst_palloc(pool, from->len + 3);
    if (to->data == NULL) {
        return PST_ERROR;
    }
    if (from->len > 0) {
        memcpy(to->data, from->data, from->len);
    }
    to->len = from->len;
    if (crlf) {
        memcpy(to->data + to->len, "\r\n", 2);
        to->len += 2;
    }
    to->data[to->len] = '\0';
    return PST_OK;
}


/* On an I/O thread: every recipient in turn. */
static void
pst_local_run(pst_qio_job_t *job)
{
    pst_dlv_t        *d = job->data;
    pst_dlv_local_t  *l = d->local;
    pst_local_msg_t  *m = &l->msg;
    pst_uint_t        i;

    m->prepend_at = m->nprepend > 0
                    ? pst_spool_trace_len(m->fd, m->offset, m->length) : 0;

    for (i = 0; i < m->nrcpts; i++) {
        l->rc[i] = l->fn(m, i, l->conf, &l->res[i]);
    }
}


/* On the loop again: the results become the outcomes. */
static void
pst_local_done(pst_qio_job_t *job)
{
    pst_dlv_t        *d = job->data;
    pst_dlv_local_t  *l = d->local;
    pst_uint_t        i;

    if (!d->cancelled) {
        for (i = 0; i < d->job->nrcpts && i < l->msg.nrcpts; i++) {
            pst_local_outcome(&d->job->rcpts[i], &l->res[i], l->rc[i]);
        }
    }
    pst_deliver_local_done(d);
}


static void
pst_local_outcome(pst_dlv_rcpt_t *o, const pst_local_result_t *r, int rc)
{
    char    text[sizeof(r->text)];
    size_t  n;

    o->relayed = 0;
    o->final = 0;
    if (rc != PST_OK || r->code < 200 || r->code > 599) {
        o->state = PST_RCPT_DEFERRED;
        o->code = 451;
        snprintf(o->ecode, sizeof(o->ecode), "4.3.0");
        snprintf(o->reply, sizeof(o->reply), "451 4.3.0 local delivery"
                 " failed");
        return;
    }

    /* one line of printable text, whatever the module wrote */
    n = strnlen(r->text, sizeof(r->text) - 1);
    memcpy(text, r->text, n);
    text[n] = '\0';
    for (n = 0; text[n] != '\0'; n++) {
        if ((u_char) text[n] < 0x20 || text[n] == 0x7f) {
            text[n] = ' ';
        }
    }

    o->code = r->code;
    o->state = r->code / 100 == 2 ? PST_RCPT_DELIVERED
               : r->code / 100 == 5 ? PST_RCPT_FAILED : PST_RCPT_DEFERRED;
    o->final = o->state == PST_RCPT_DELIVERED;      /* into the mailbox */
    snprintf(o->ecode, sizeof(o->ecode), "%.15s", r->ecode);
    snprintf(o->reply, sizeof(o->reply), "%d %s%s%s", r->code, o->ecode,
             o->ecode[0] ? " " : "", text);
}


const pst_str_t *
pst_local_id(const pst_local_msg_t *m)
{
    return &m->id;
}


const pst_str_t *
pst_local_sender(const pst_local_msg_t *m)
{
    return &m->sender;
}


pst_uint_t
pst_local_nrcpts(const pst_local_msg_t *m)
{
    return m->nrcpts;
}


const pst_str_t *
pst_local_rcpt(const pst_local_msg_t *m, pst_uint_t i)
{
    return i < m->nrcpts ? &m->rcpts[i] : NULL;
}


off_t
pst_local_size(const pst_local_msg_t *m)
{
    off_t       size = m->length;
    pst_uint_t  i;

    for (i = 0; i < m->nprepend; i++) {
        size += (off_t) m->prepend[i].len;
    }
    return size;
}


int
pst_local_copy(const pst_local_msg_t *m, int fd, int lf_only,
    off_t *written)
{
    pst_local_out_t  *o;
    pst_uint_t        i;
    off_t             at = pst_min(m->prepend_at, m->length);
    int               rc, err;

    o = malloc(sizeof(pst_local_out_t));
    if (o == NULL) {
        errno = ENOMEM;
        return PST_ERROR;
    }
    o->fd = fd;
    o->lf_only = lf_only;
    o->cr = 0;
    o->n = 0;
    o->written = 0;

    rc = pst_local_file(m, o, 0, at);
    for (i = 0; rc == PST_OK && i < m->nprepend; i++) {
        rc = pst_local_put(o, m->prepend[i].data, m->prepend[i].len);
    }
    if (rc == PST_OK) {
        rc = pst_local_file(m, o, at, m->length);
    }
    if (rc == PST_OK && o->cr) {
        o->buf[o->n++] = '\r';          /* put() kept room for it */
        o->cr = 0;
    }
    if (rc == PST_OK) {
        rc = pst_local_flush(o);
    }
    err = errno;
    if (written != NULL) {
        *written = o->written;
    }
    free(o);
    errno = err;
    return rc;
}


/* The message's bytes [from, to) through o. */
static int
pst_local_file(const pst_local_msg_t *m, pst_local_out_t *o, off_t from,
    off_t to)
{
    u_char   buf[PST_LOCAL_CHUNK];
    ssize_t  n;

    while (from < to) {
        n = pread(m->fd, buf, (size_t) pst_min(to - from, PST_LOCAL_CHUNK),
                  m->offset + from);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            errno = EIO;                /* short: the file is damaged */
            return PST_ERROR;
        }
        if (pst_local_put(o, buf, (size_t) n) != PST_OK) {
            return PST_ERROR;
        }
        from += n;
    }
    return PST_OK;
}


static int
pst_local_put(pst_local_out_t *o, const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (o->n + 2 > sizeof(o->buf) && pst_local_flush(o) != PST_OK) {
            return PST_ERROR;
        }
        if (!o->lf_only) {
            o->buf[o->n++] = p[i];
            continue;
        }
        if (o->cr) {
            o->cr = 0;
            if (p[i] == '\n') {
                o->buf[o->n++] = '\n';  /* CRLF -> LF */
                continue;
            }
            o->buf[o->n++] = '\r';      /* a CR alone stays */
        }
        if (p[i] == '\r') {
            o->cr = 1;
        } else {
            o->buf[o->n++] = p[i];
        }
    }
    return PST_OK;
}


static int
pst_local_flush(pst_local_out_t *o)
{
    size_t   off = 0;
    ssize_t  n;

    while (off < o->n) {
        n = write(o->fd, o->buf + off, o->n - off);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return PST_ERROR;
        }
        off += (size_t) n;
        o->written += n;
    }
    o->n = 0;
    return PST_OK;
}
