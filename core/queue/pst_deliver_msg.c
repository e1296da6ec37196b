/*
 * pst_deliver_msg.c -- the message side of a delivery attempt: the
 * transaction built from the envelope (DSN parameters xtext-encoded),
 * the Received: count that stops mail loops, the 8-bit check and the
 * 7-bit downgrade for a next hop without 8BITMIME (RFC 6152 section
 * 3), the client TLS context.
 */

#include "pst_core.h"
#include "pst_ssl.h"
#include "pst_spool.h"
#include "pst_smtp_client.h"
#include "pst_deliver.h"
#include "pst_qio.h"
#include "pst_deliver_int.h"
#include "pst_mime7.h"

#include <sys/mman.h>

#define PST_DLV_SCAN  65536

static pst_ssl_ctx_t  *pst_dlv_ssl;
static int             pst_dlv_ssl_tried;

static int pst_deliver_is_received(const u_char *p, size_t n);
static int pst_deliver_is_tls_no(const u_char *p, size_t n);


int
pst_deliver_received_count(pst_spool_msg_t *m, int *tls_no)
{
    static u_char   buf[PST_DLV_SCAN];
    pst_str_t      *h;
    pst_uint_t      i;
    ssize_t         n;
    u_char         *p, *end, *nl;
    int             count = 0;

    *tls_no = 0;
    h = m->env.prepend != NULL ? m->env.prepend->elts : NULL;
    for (i = 0; h != NULL && i < m->env.prepend->nelts; i++) {
        count += pst_deliver_is_received(h[i].data, h[i].len);
    }

    n = pread(m->fd, buf, (size_t) pst_min(m->msg_len, PST_DLV_SCAN),
              m->msg_offset);
    if (n <= 0) {
        return count;
    }
    for (p = buf, end = buf + n; p < end; p = nl + 1) {
        if (*p == '\r' || *p == '\n') {
            break;                      /* the end of the header */
        }
        count += pst_deliver_is_received(p, (size_t) (end - p));
        nl = memchr(p, '\n', (size_t) (end - p));
        *tls_no |= pst_deliver_is_tls_no(p, nl ? (size_t) (nl - p)
                                               : (size_t) (end - p));
        if (nl == NULL) {
            break;
        }
    }
    return count;
}


static int
pst_deliver_is_received(const u_char *p, size_t n)
{
    return n >= 9 && pst_strncasecmp(p, (u_char *) "Received:", 9) == 0;
}


/* "TLS-Required: No" (RFC 8689 3): the sender lets the message go
 * without the recipient domain's TLS policy. */
static int
pst_deliver_is_tls_no(const u_char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' '
                     || p[n - 1] == '\t'))
    {
        n--;
    }
    if (n < 15 || pst_strncasecmp(p, (u_char *) "TLS-Required:", 13) != 0) {
        return 0;
    }
    p += 13;
    n -= 13;
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    return n == 2 && pst_strncasecmp(p, (u_char *) "No", 2) == 0;
}


static int
pst_deliver_has_8bit(const u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (p[i] & 0x80) {
            return 1;
        }
    }
    return 0;
}


int
pst_deliver_needs_utf8(pst_dlv_t *d)
{
    static u_char     buf[PST_DLV_SCAN];
    pst_spool_msg_t  *m = d->job->msg;
    pst_env_rcpt_t   *er = m->env.rcpts->elts;
    pst_str_t        *h;
    pst_uint_t        i;
    ssize_t           n;
    u_char           *end;

    if (pst_deliver_has_8bit(m->env.sender.data, m->env.sender.len)) {
        return 1;
    }
    for (i = 0; i < d->job->nrcpts; i++) {
        if (pst_deliver_has_8bit(er[d->job->rcpts[i].index].addr.data,
                                 er[d->job->rcpts[i].index].addr.len))
        {
            return 1;
        }
    }
    h = m->env.prepend != NULL ? m->env.prepend->elts : NULL;
    for (i = 0; h != NULL && i < m->env.prepend->nelts; i++) {
        if (pst_deliver_has_8bit(h[i].data, h[i].len)) {
            return 1;
        }
    }

    /* the header section: it must end in the first 64 KiB */
    n = pread(m->fd, buf, (size_t) pst_min(m->msg_len, PST_DLV_SCAN),
              m->msg_offset);
    if (n <= 0) {
        return 1;
    }
    if (n >= 2 && buf[0] == '\r' && buf[1] == '\n') {
        return 0;
    }
    end = memmem(buf, (size_t) n, "\r\n\r\n", 4);
    if (end == NULL) {
        return n < m->msg_len ? 1 : pst_deliver_has_8bit(buf, (size_t) n);
    }
    return pst_deliver_has_8bit(buf, (size_t) (end - buf));
}


/* The converted message into an anonymous file, d->fd. */
static int
pst_deliver_convert_to_fd(pst_dlv_t *d, const u_char *msg, size_t len,
    const char **why)
{
    pst_buf_t  *out = NULL;
    ssize_t     n;
    size_t      left;
    int         rc;

    rc = pst_mime7_convert(msg, len, len * 3 + 65536, &out, why);
    if (rc != PST_OK) {
        if (rc == PST_ERROR) {
            *why = "out of memory";
        }
        return rc;
    }
    d->fd = memfd_create("postern-7bit", MFD_CLOEXEC);
    for (left = pst_buf_size(out); d->fd != -1 && left > 0; left -= n) {
        n = write(d->fd, out->pos, left);
        if (n <= 0) {
            break;
        }
        out->pos += n;
    }
    d->conv_len = (off_t) (out->last - out->start);
    pst_buf_destroy(out);
    if (d->fd == -1 || left > 0) {
        *why = "cannot write the converted message";
        return PST_ERROR;
    }
    return PST_OK;
}


/* On an I/O thread: only d's conversion fields and its own fds. */
static void
pst_deliver_convert_run(pst_qio_job_t *job)
{
    pst_dlv_t  *d = job->data;
    u_char     *map;
    size_t      maplen = (size_t) d->conv_off + d->conv_size;

    map = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE, d->conv_src, 0);
    if (map == MAP_FAILED) {
        d->conv_why = "cannot map the queue file";
        d->conv_rc = PST_ERROR;
    } else if (!pst_mime7_needed(map + d->conv_off, d->conv_size)) {
        d->conv_rc = PST_DONE;          /* 7-bit already: sent as it is */
        munmap(map, maplen);
    } else {
        d->conv_rc = pst_deliver_convert_to_fd(d, map + d->conv_off,
                                               d->conv_size, &d->conv_why);
        munmap(map, maplen);
    }
    close(d->conv_src);
    d->conv_src = -1;
}


static void
pst_deliver_convert_done(pst_qio_job_t *job)
{
    pst_deliver_converted(job->data);
}


/*
 * For a next hop without 8BITMIME.  The job looks at every octet (a
 * client may send 8-bit text without BODY=8BITMIME) and converts only
 * when it has to; reading and converting are work over the whole
 * message, so they run on the queue process's I/O threads, never on
 * its event loop.
 */
int
pst_deliver_convert(pst_dlv_t *d)
{
    pst_spool_msg_t  *m = d->job->msg;

    d->conv_src = dup(m->fd);
    if (d->conv_src == -1) {
        pst_deliver_convert_failed(d, PST_ERROR, "cannot read the message");
        return PST_DECLINED;
    }
    d->conv_off = m->msg_offset;
    d->conv_size = (size_t) m->msg_len;
    d->conv_why = NULL;
    d->converting = 1;
    d->conv.run = pst_deliver_convert_run;
    d->conv.done = pst_deliver_convert_done;
    d->conv.data = d;
    pst_qio_post(&d->conv);
    return PST_AGAIN;
}


void
pst_deliver_convert_failed(pst_dlv_t *d, int rc, const char *why)
{
    if (rc == PST_ERROR) {
        pst_deliver_all(d, PST_RCPT_DEFERRED, 451, "4.3.0", "%s lacks"
                        " 8BITMIME and the 7-bit conversion failed: %s",
                        d->remote, why);
    } else {
        pst_deliver_all(d, PST_RCPT_FAILED, 554, "5.6.3", "%s lacks"
                        " 8BITMIME and the message cannot be converted to"
                        " 7 bits: %s", d->remote, why);
    }
}


/* " NAME=" and value xtext-encoded, appended at *p. */
static u_char *
pst_deliver_param(u_char *p, const char *name, const pst_str_t *v, int xt)
{
    p = (u_char *) stpcpy((char *) p, name);
    if (xt) {
        return p + pst_xtext_encode(p, v->data, v->len);
    }
    memcpy(p, v->data, v->len);
    return p + v->len;
}


static int
pst_deliver_mail_params(pst_dlv_t *d, pst_str_t *out)
{
    pst_envelope_t   *env = &d->job->msg->env;
    const pst_str_t  *node;
    u_char           *p;
    size_t            n;

    n = 160 + PST_NAME_MAX + env->ret.len
        + pst_xtext_encoded_length(env->envid.data, env->envid.len);
    p = pst_palloc(d->pool, n);
    if (p == NULL) {
        return PST_ERROR;
    }
    out->data = p;
    if (env->body.len > 0 && d->fd == -1) {
        p = pst_deliver_param(p, " BODY=", &env->body, 0);
    }
    if (env->smtputf8 && !d->no_utf8) {
        p = (u_char *) stpcpy((char *) p, " SMTPUTF8");
    }
    if (d->job->peer != NULL) {
        /* a node transfer: the node facts (pst_smtp_node.c), and
         * which node sends them, for the other node's log */
        node = &pst_cycle->core->node_name;
        p += sprintf((char *) p, " XP-ARRIVAL=%lld.%06ld%s%s%s%.*s",
                     (long long) env->arrival_sec, env->arrival_usec,
                     env->hold ? " XP-HOLD" : "",
                     env->requiretls ? " XP-REQUIRETLS" : "",
                     node->len ? " XP-NODE=" : "", (int) node->len,
                     node->len ? (char *) node->data : "");
    } else if (env->requiretls) {
        p = (u_char *) stpcpy((char *) p, " REQUIRETLS");
    }
    if (env->ret.len > 0) {
        p = pst_deliver_param(p, " RET=", &env->ret, 0);
    }
    if (env->envid.len > 0) {
        p = pst_deliver_param(p, " ENVID=", &env->envid, 1);
    }
    out->len = (size_t) (p - out->data);
    return PST_OK;
}


static int
pst_deliver_rcpt_params(pst_dlv_t *d, const pst_env_rcpt_t *er,
    pst_str_t *out)
{
    u_char  *p;

    p = pst_palloc(d->pool, 128 + pst_xtext_encoded_length(er->orcpt.data,
                                                            er->orcpt.len));
    if (p == NULL) {
        return PST_ERROR;
    }
    out->data = p;
    if (er->notify & PST_NOTIFY_NEVER) {
        p = (u_char *) stpcpy((char *) p, " NOTIFY=NEVER");
    } else if (er->notify != 0) {
        p = (u_char *) stpcpy((char *) p, " NOTIFY=");
        if (er->notify & PST_NOTIFY_SUCCESS) {
            p = (u_char *) stpcpy((char *) p, "SUCCESS,");
        }
        if (er->notify & PST_NOTIFY_FAILURE) {
            p = (u_char *) stpcpy((char *) p, "FAILURE,");
        }
        if (er->notify & PST_NOTIFY_DELAY) {
            p = (u_char *) stpcpy((char *) p, "DELAY,");
        }
        p--;                                    /* the last comma */
    }
    if (er->orcpt.len > 0) {
        p = pst_deliver_param(p, " ORCPT=", &er->orcpt, 1);
    }
    if (d->job->peer != NULL) {
        p += sprintf((char *) p, " XP-ATTEMPTS=%u XP-DSN=%u",
                     pst_min(er->attempts, 65535u), er->dsn_sent & 0xff);
        if (er->state == PST_RCPT_DEFERRED && er->next_try > 0) {
            p += sprintf((char *) p, " XP-NEXT-TRY=%lld",
                         (long long) er->next_try);
        }
    }
    out->len = (size_t) (p - out->data);
    return PST_OK;
}


int
pst_deliver_build_tx(pst_dlv_t *d)
{
    pst_spool_msg_t         *m = d->job->msg;
    pst_smtp_client_tx_t    *tx = &d->tx;
    const pst_env_rcpt_t    *er = m->env.rcpts->elts;
    const pst_str_t         *h;
    pst_str_t               *pre;
    pst_uint_t               i, np;

    d->pool = pst_create_pool(4096);
    if (d->pool == NULL) {
        return PST_ERROR;
    }
    memset(tx, 0, sizeof(*tx));
    tx->sender = m->env.sender;
    tx->nrcpts = d->job->nrcpts;
    tx->rcpts = pst_pcalloc(d->pool, tx->nrcpts * sizeof(*tx->rcpts));
    if (tx->rcpts == NULL || pst_deliver_mail_params(d, &tx->params)
                             != PST_OK)
    {
        return PST_ERROR;
    }
    for (i = 0; i < tx->nrcpts; i++) {
        tx->rcpts[i].addr = er[d->job->rcpts[i].index].addr;
        if (pst_deliver_rcpt_params(d, &er[d->job->rcpts[i].index],
                                    &tx->rcpts[i].params) != PST_OK)
        {
            return PST_ERROR;
        }
    }

    np = m->env.prepend != NULL ? m->env.prepend->nelts : 0;
    pre = pst_pcalloc(d->pool, (np + 1) * sizeof(pst_str_t));
    if (pre == NULL) {
        return PST_ERROR;
    }
    h = np ? m->env.prepend->elts : NULL;
    for (i = 0; i < np; i++) {
        pre[i].data = pst_palloc(d->pool, h[i].len + 2);
        if (pre[i].data == NULL) {
            return PST_ERROR;
        }
        memcpy(pre[i].data, h[i].data, h[i].len);
        memcpy(pre[i].data + h[i].len, "\r\n", 2);
        pre[i].len = h[i].len + 2;
    }
    tx->prepend = pre;
    tx->nprepend = np;

    tx->fd = d->fd != -1 ? d->fd : m->fd;
    tx->offset = d->fd != -1 ? 0 : m->msg_offset;
    tx->length = d->fd != -1 ? d->conv_len : m->msg_len;
    /* hook-added fields below the trace block (RFC 5321 4.4) */
    tx->prepend_at = np ? pst_spool_trace_len(tx->fd, tx->offset,
                                              tx->length) : 0;
    return PST_OK;
}



pst_ssl_ctx_t *
pst_deliver_ssl_ctx(void)
{
    const pst_deliver_conf_t  *conf = pst_deliver_conf(pst_cycle);
    pst_ssl_client_conf_t      sc;
    char                       err[512];

    if (pst_dlv_ssl_tried) {
        return pst_dlv_ssl;
    }
    pst_dlv_ssl_tried = 1;

    /* one context for every route, whatever relay_tls says (a route may
     * ask for more): the CAs loaded and the chain always checked; the
     * client enforces the result on a connection whose policy is
     * verify */
    memset(&sc, 0, sizeof(sc));
    sc.verify = PST_SSL_VERIFY_OPPORTUNISTIC;
    sc.ca_file = conf->tls_ca_file;
    pst_dlv_ssl = pst_ssl_client_ctx(pst_cycle->pool, &sc, err, sizeof(err));
    if (pst_dlv_ssl == NULL) {
        pst_log_error(PST_LOG_ERR, 0, "deliver: no client TLS: %s", err);
    }
    return pst_dlv_ssl;
}
