/*
 * pst_smtp_client.c -- the outbound SMTP client: the object, connect,
 * the connection's I/O, timers, callbacks, greeting, EHLO/HELO,
 * STARTTLS, single commands and QUIT (pst_smtp_client.h).
 *
 * One event handler serves both directions of the connection: it
 * finishes a connect, flushes the output buffer (and the message,
 * which pst_smtp_client_tx.c produces into it), reads, and hands each
 * complete reply to the handler of the current state.  The same
 * handlers stay in place over a TLS handshake, so the wrappers of
 * pst_ssl.c call them afterwards.  User callbacks run only from the
 * posted event cb_ev, and nothing touches the client after them.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_ssl.h"
#include "pst_smtp_client.h"
#include "pst_smtp_proto.h"
#include "pst_smtp_client_int.h"

#define PST_SMTPC_QUIT_TIMEOUT   10000

static int pst_smtpc_conf(pst_smtp_client_t *cl,
    const pst_smtp_client_conf_t *conf);
static const char *pst_smtpc_strdup(pst_pool_t *pool, const char *s);
static int pst_smtpc_copy_tlsa(pst_smtp_client_t *cl,
    const pst_smtp_client_conf_t *conf);
static int pst_smtpc_connect(pst_smtp_client_t *cl, const char **why);
static void pst_smtpc_handler(pst_event_t *ev);
static void pst_smtpc_io(pst_smtp_client_t *cl);
static int pst_smtpc_connected(pst_smtp_client_t *cl);
static int pst_smtpc_read(pst_smtp_client_t *cl);
static void pst_smtpc_dispatch(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_timer(pst_smtp_client_t *cl);
static void pst_smtpc_timeout(pst_event_t *ev);
static void pst_smtpc_deliver(pst_event_t *ev);
static void pst_smtpc_trail_in(void *data, const pst_str_t *line);
static const char *pst_smtpc_check_due(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static const char *pst_smtpc_reason(pst_smtp_client_t *cl,
    const char *fmt, ...);
static void pst_smtpc_greeting(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_send_ehlo(pst_smtp_client_t *cl);
static void pst_smtpc_ehlo(pst_smtp_client_t *cl, const pst_smtp_reply_t *r);
static void pst_smtpc_after_ehlo(pst_smtp_client_t *cl);
static void pst_smtpc_starttls(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_start_tls(pst_smtp_client_t *cl);
static void pst_smtpc_tls_done(pst_connection_t *c, int rc);
static void pst_smtpc_auth_or_ready(pst_smtp_client_t *cl);
static void pst_smtpc_free(pst_smtp_client_t *cl);


/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

pst_smtp_client_t *
pst_smtp_client_open(const pst_smtp_client_conf_t *conf,
    const struct sockaddr *sa, socklen_t len,
    pst_smtp_client_ready_pt ready, void *data)
{
    pst_smtp_client_t  *cl;
    pst_pool_t         *pool;
    const char         *why = NULL;

    if (len > sizeof(struct sockaddr_storage)) {
        return NULL;
    }

    pool = pst_create_pool(2048);
    if (pool == NULL) {
        return NULL;
    }

    cl = pst_pcalloc(pool, sizeof(pst_smtp_client_t));
    if (cl == NULL) {
        pst_destroy_pool(pool);
        return NULL;
    }

    cl->pool = pool;
    cl->ready = ready;
    cl->data = data;
    cl->timer.handler = pst_smtpc_timeout;
    cl->timer.data = cl;
    cl->cb_ev.handler = pst_smtpc_deliver;
    cl->cb_ev.data = cl;
    cl->state = PST_SMTPC_CONNECTING;
    memcpy(&cl->peer_sa, sa, len);
    cl->peer_len = len;
    (void) pst_sock_ntop(sa, (u_char *) cl->peer, sizeof(cl->peer), 1);

    pst_smtp_reply_init(&cl->rp, conf->max_reply);
    cl->rp.line = pst_smtpc_trail_in;
    cl->rp.line_data = cl;

    cl->op_pool = pst_create_pool(1024);
    cl->in = pst_buf_alloc(2 * PST_SMTP_REPLY_LINE_MAX);
    cl->out = pst_buf_alloc(4096);

    if (cl->op_pool == NULL || cl->in == NULL || cl->out == NULL
        || pst_smtpc_conf(cl, conf) != PST_OK)
    {
        pst_smtpc_free(cl);
        return NULL;
    }

    if (pst_smtpc_connect(cl, &why) != PST_OK) {
        if (why == NULL) {
            pst_smtpc_free(cl);
            return NULL;
        }
        /* reported from the event loop like any later failure */
        pst_smtpc_fail(cl, why);
    }

    return cl;
}


static int
pst_smtpc_conf(pst_smtp_client_t *cl, const pst_smtp_client_conf_t *conf)
{
    pst_smtp_client_conf_t  *cf = &cl->conf;
    struct sockaddr         *local;

    *cf = *conf;

    cf->helo_name = pst_smtpc_strdup(cl->pool, conf->helo_name
                                     ? conf->helo_name : "localhost");
    cf->tls_name = pst_smtpc_strdup(cl->pool, conf->tls_name);
    cf->auth_mech = pst_smtpc_strdup(cl->pool, conf->auth_mech);
    cf->auth_user = pst_smtpc_strdup(cl->pool, conf->auth_user);
    cf->auth_pass = pst_smtpc_strdup(cl->pool, conf->auth_pass);

    if (cf->helo_name == NULL || cf->helo_name[0] == '\0'
        || strpbrk(cf->helo_name, " \r\n") != NULL
        || strlen(cf->helo_name) > 255          /* a domain */
        || (conf->tls_name && cf->tls_name == NULL)
        || (conf->auth_mech && cf->auth_mech == NULL)
        || (conf->auth_user && cf->auth_user == NULL)
        || (conf->auth_pass && cf->auth_pass == NULL))
    {
        return PST_ERROR;
    }

    if (pst_smtpc_copy_tlsa(cl, conf) != PST_OK) {
        return PST_ERROR;
    }

    if (conf->local != NULL) {
        if (conf->local_len > sizeof(struct sockaddr_storage)) {
            return PST_ERROR;
        }
        local = pst_palloc(cl->pool, sizeof(struct sockaddr_storage));
        if (local == NULL) {
            return PST_ERROR;
        }
        memcpy(local, conf->local, conf->local_len);
        cf->local = local;
    }

    /* RFC 5321 4.5.3.2; the connect timeout is ours */
    cf->connect_timeout = cf->connect_timeout ? cf->connect_timeout : 30000;
    cf->greeting_timeout = cf->greeting_timeout ? cf->greeting_timeout
                                                : 300000;
    cf->helo_timeout = cf->helo_timeout ? cf->helo_timeout : 300000;
    cf->mail_timeout = cf->mail_timeout ? cf->mail_timeout : 300000;
    cf->rcpt_timeout = cf->rcpt_timeout ? cf->rcpt_timeout : 300000;
    cf->data_init_timeout = cf->data_init_timeout ? cf->data_init_timeout
                                                  : 120000;
    cf->data_block_timeout = cf->data_block_timeout
                             ? cf->data_block_timeout : 180000;
    cf->data_done_timeout = cf->data_done_timeout ? cf->data_done_timeout
                                                  : 600000;

    return PST_OK;
}


/* The TLSA records into the client's pool (the caller's go away). */
static int
pst_smtpc_copy_tlsa(pst_smtp_client_t *cl, const pst_smtp_client_conf_t *conf)
{
    pst_ssl_tlsa_t  *rr;
    u_char          *p;
    pst_uint_t       i;

    cl->conf.tlsa = NULL;
    cl->conf.ntlsa = 0;
    if (conf->ntlsa == 0) {
        return PST_OK;
    }
    rr = pst_palloc(cl->pool, conf->ntlsa * sizeof(pst_ssl_tlsa_t));
    if (rr == NULL) {
        return PST_ERROR;
    }
    for (i = 0; i < conf->ntlsa; i++) {
        rr[i] = conf->tlsa[i];
        p = pst_palloc(cl->pool, rr[i].len ? rr[i].len : 1);
        if (p == NULL) {
            return PST_ERROR;
        }
        memcpy(p, conf->tlsa[i].data, rr[i].len);
        rr[i].data = p;
    }
    cl->conf.tlsa = rr;
    cl->conf.ntlsa = conf->ntlsa;
    return PST_OK;
}


static const char *
pst_smtpc_strdup(pst_pool_t *pool, const char *s)
{
    pst_str_t  str;

    if (s == NULL) {
        return NULL;
    }

    str.data = (u_char *) s;
    str.len = strlen(s);

    return (const char *) pst_pstrdup(pool, &str);
}


/* PST_OK: connecting.  PST_ERROR with *why: report it; without: no
 * resources at all. */
static int
pst_smtpc_connect(pst_smtp_client_t *cl, const char **why)
{
    const pst_smtp_client_conf_t  *cf = &cl->conf;
    pst_connection_t              *c;
    int                            fd, on;

    fd = socket(cl->peer_sa.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *why = pst_smtpc_reason(cl, "socket() failed: %s", strerror(errno));
        return PST_ERROR;
    }

    /* every write is a whole command group or buffer of the message:
     * Nagle would only hold a short tail (the end of a body, QUIT)
     * behind an unacknowledged segment until the peer's delayed ACK */
    if (cl->peer_sa.ss_family != AF_UNIX) {
        on = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }

    if (cf->local != NULL && bind(fd, cf->local, cf->local_len) == -1) {
        *why = pst_smtpc_reason(cl, "bind() to the local address failed: %s",
                                strerror(errno));
        close(fd);
        return PST_ERROR;
    }

    if (connect(fd, (struct sockaddr *) &cl->peer_sa, cl->peer_len) == -1
        && errno != EINPROGRESS)
    {
        *why = pst_smtpc_reason(cl, "connect to %s failed: %s", cl->peer,
                                strerror(errno));
        close(fd);
        return PST_ERROR;
    }

    c = pst_get_connection(fd);
    if (c == NULL) {
        close(fd);
        return PST_ERROR;
    }

    c->data = cl;
    c->read.handler = pst_smtpc_handler;
    c->write.handler = pst_smtpc_handler;
    memcpy(&c->sockaddr, &cl->peer_sa,
           pst_min(cl->peer_len, sizeof(c->sockaddr)));
    c->socklen = cl->peer_len;
    cl->c = c;

    if (pst_event_add_conn(c) != PST_OK) {
        *why = "cannot watch the connection";
        return PST_ERROR;
    }

    pst_smtpc_expect(cl, cf->connect_timeout, "connect");

    return PST_OK;
}


static int
pst_smtpc_connected(pst_smtp_client_t *cl)
{
    pst_connection_t  *c = cl->c;
    socklen_t          len;
    int                err = 0;

    len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err != 0) {
        pst_smtpc_fail(cl, pst_smtpc_reason(cl, "connect to %s failed: %s",
                                            cl->peer, strerror(err)));
        return PST_ERROR;
    }

    len = sizeof(c->local_sockaddr);
    (void) getsockname(c->fd, &c->local_sockaddr.sa, &len);

    if (cl->conf.tls == PST_SMTPC_TLS_IMPLICIT) {
        pst_smtpc_start_tls(cl);
        return PST_DONE;
    }

    cl->state = PST_SMTPC_GREETING;
    (void) pst_smtpc_due(cl, 1);
    pst_smtpc_expect(cl, cl->conf.greeting_timeout, "greeting");

    return PST_OK;
}


void
pst_smtp_client_abort(pst_smtp_client_t *cl)
{
    pst_smtpc_free(cl);
}


void
pst_smtp_client_quit(pst_smtp_client_t *cl)
{
    if (cl->state != PST_SMTPC_READY || cl->c == NULL) {
        pst_smtpc_free(cl);
        return;
    }

    pst_delete_posted_event(&cl->cb_ev);
    cl->cb = PST_SMTPC_CB_NONE;

    if (pst_smtpc_line(cl, (u_char *) "QUIT", 4, PST_SMTPC_NOMASK)
        != PST_OK)
    {
        pst_smtpc_free(cl);
        return;
    }

    /* the object lives on until 221, the end or the timeout */
    cl->state = PST_SMTPC_QUIT;
    pst_smtpc_expect(cl, PST_SMTPC_QUIT_TIMEOUT, "QUIT reply");
    (void) pst_smtpc_flush(cl);
}


static void
pst_smtpc_free(pst_smtp_client_t *cl)
{
    pst_event_del_timer(&cl->timer);
    pst_delete_posted_event(&cl->cb_ev);

    if (cl->c != NULL) {
        pst_close_connection(cl->c);
        cl->c = NULL;
    }

    pst_smtpc_auth_free(cl);
    pst_smtp_reply_free(&cl->rp);
    pst_buf_destroy(cl->in);
    pst_buf_destroy(cl->out);
    free(cl->fbuf);

    if (cl->op_pool != NULL) {
        pst_destroy_pool(cl->op_pool);
    }

    pst_destroy_pool(cl->pool);
}


/* ------------------------------------------------------------------ */
/* Accessors                                                           */

int
pst_smtp_client_tls_refused(pst_smtp_client_t *cl)
{
    return cl->tls_refused;
}


const char *
pst_smtp_client_tls_result(pst_smtp_client_t *cl)
{
    if (!cl->tls_refused) {
        return NULL;
    }
    return cl->tls ? pst_ssl_tlsrpt_result(cl->verify_code)
                   : "starttls-not-supported";
}


unsigned
pst_smtp_client_caps(pst_smtp_client_t *cl)
{
    return cl->caps;
}


off_t
pst_smtp_client_max_size(pst_smtp_client_t *cl)
{
    return cl->max_size;
}


int
pst_smtp_client_tls(pst_smtp_client_t *cl)
{
    return cl->tls;
}


int
pst_smtp_client_tls_verified(pst_smtp_client_t *cl)
{
    return cl->tls_verified;
}


const char *
pst_smtp_client_peer(pst_smtp_client_t *cl)
{
    return cl->peer;
}


unsigned
pst_smtp_client_auth_mechs(pst_smtp_client_t *cl)
{
    return cl->auth_mechs;
}


/* ------------------------------------------------------------------ */
/* I/O                                                                 */

static void
pst_smtpc_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;

    pst_smtpc_io(c->data);
}


static void
pst_smtpc_io(pst_smtp_client_t *cl)
{
    if (cl->state == PST_SMTPC_CONNECTING) {
        if (!cl->c->write.ready) {
            return;
        }
        if (pst_smtpc_connected(cl) != PST_OK) {
            return;
        }
    }

    if (pst_smtpc_flush(cl) != PST_OK || pst_smtpc_read(cl) != PST_OK) {
        return;
    }

    (void) pst_smtpc_flush(cl);
}


/* Send what out holds (and the message, while one is being sent). */
int
pst_smtpc_flush(pst_smtp_client_t *cl)
{
    pst_connection_t  *c = cl->c;
    pst_buf_t         *out = cl->out;
    ssize_t            n;
    int                progress = 0, rc;

    if (c == NULL || cl->state == PST_SMTPC_HANDSHAKE
        || cl->state == PST_SMTPC_CONNECTING)
    {
        return PST_OK;
    }

    for ( ;; ) {
        if (pst_buf_size(out) == 0) {
            out->pos = out->start;
            out->last = out->start;

            if (cl->state != PST_SMTPC_TX
                || cl->tx_state != PST_SMTPC_TX_BODY)
            {
                break;
            }

            rc = pst_smtpc_tx_fill(cl);
            if (rc == PST_ERROR) {
                return PST_ERROR;
            }
            if (pst_buf_size(out) == 0) {
                break;
            }
        }

        n = c->send(c, out->pos, pst_buf_size(out));

        if (n > 0) {
            out->pos += n;
            cl->wire += (uint64_t) n;
            progress = 1;
            continue;
        }

        if (n == PST_AGAIN) {
            break;
        }

        pst_smtpc_fail(cl, pst_smtpc_reason(cl, "write to %s failed%s%s",
                       cl->peer, c->ssl ? ": " : "",
                       c->ssl ? pst_ssl_error(c) : ""));
        return PST_ERROR;
    }

    if (progress) {
        pst_smtpc_timer(cl);
    }

    return PST_OK;
}


static int
pst_smtpc_read(pst_smtp_client_t *cl)
{
    pst_connection_t  *c = cl->c;
    pst_buf_t         *in = cl->in;
    pst_smtp_reply_t   r;
    const char        *why;
    ssize_t            n;
    int                rc;

    for ( ;; ) {
        for ( ;; ) {
            rc = pst_smtp_reply_parse(&cl->rp, in, &r);
            if (rc == PST_AGAIN) {
                break;
            }
            if (rc == PST_ERROR) {
                pst_smtpc_fail(cl, pst_smtpc_reason(cl, "bad reply from "
                               "%s: %s", cl->peer, cl->rp.error));
                return PST_ERROR;
            }

            why = pst_smtpc_check_due(cl, &r);
            if (why != NULL) {
                pst_smtpc_fail(cl, why);
                return PST_ERROR;
            }

            pst_smtpc_dispatch(cl, &r);

            if (cl->c == NULL) {
                return PST_ERROR;
            }
            if (cl->state == PST_SMTPC_HANDSHAKE) {
                return PST_OK;       /* TLS owns the socket now */
            }
        }

        if (pst_buf_size(in) == 0) {
            in->pos = in->start;
            in->last = in->start;
        } else if (pst_buf_free(in) < PST_SMTP_REPLY_LINE_MAX) {
            pst_buf_compact(in);
        }

        if (!c->read.ready) {
            return PST_OK;
        }

        n = c->recv(c, in->last, pst_buf_free(in));

        if (n > 0) {
            in->last += n;
            continue;
        }

        if (n == PST_AGAIN) {
            return PST_OK;
        }

        pst_smtpc_fail(cl, n == 0
                       ? pst_smtpc_reason(cl, "%s closed the connection",
                                          cl->peer)
                       : pst_smtpc_reason(cl, "read from %s failed%s%s",
                                          cl->peer, c->ssl ? ": " : "",
                                          c->ssl ? pst_ssl_error(c) : ""));
        return PST_ERROR;
    }
}


static void
pst_smtpc_dispatch(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_reply_t  copy;

    switch (cl->state) {

    case PST_SMTPC_GREETING:
        pst_smtpc_greeting(cl, r);
        return;

    case PST_SMTPC_EHLO:
    case PST_SMTPC_HELO:
        pst_smtpc_ehlo(cl, r);
        return;

    case PST_SMTPC_STARTTLS:
        pst_smtpc_starttls(cl, r);
        return;

    case PST_SMTPC_AUTH:
        pst_smtpc_auth_reply(cl, r);
        return;

    case PST_SMTPC_TX:
        pst_smtpc_tx_reply(cl, r);
        return;

    case PST_SMTPC_COMMAND:
        if (pst_smtpc_copy_reply(cl, &copy, r) != PST_OK) {
            pst_smtpc_fail(cl, "out of memory");
            return;
        }
        pst_smtpc_finish(cl, PST_SMTPC_CB_COMMAND, PST_OK, &copy);
        return;

    case PST_SMTPC_QUIT:
        pst_smtpc_fail(cl, "QUIT");
        return;

    default:
        /* a 421 while idle, or anything else nobody asked for */
        pst_smtpc_fail(cl, pst_smtpc_reason(cl, "unexpected reply from %s: "
                       "%d %.*s", cl->peer, r->code,
                       (int) pst_min(r->text.len, 200), r->text.data));
        return;
    }
}


/* Queue one command line (CRLF added) and show it to the trail, with
 * the bytes from mask_from on replaced by stars (AUTH secrets). */
int
pst_smtpc_line(pst_smtp_client_t *cl, const u_char *p, size_t n,
    size_t mask_from)
{
    u_char  masked[80];
    size_t  m;

    if (pst_smtpc_append(cl, p, n) != PST_OK
        || pst_smtpc_append(cl, "\r\n", 2) != PST_OK
        || pst_smtpc_due(cl, 1) != PST_OK)
    {
        return PST_ERROR;
    }

    if (cl->conf.trail == NULL) {
        return PST_OK;
    }

    if (mask_from >= n) {
        cl->conf.trail(cl->conf.trail_data, 1, p, n);
        return PST_OK;
    }

    m = pst_min(mask_from, sizeof(masked) - 8);
    memcpy(masked, p, m);
    memcpy(masked + m, "********", 8);
    cl->conf.trail(cl->conf.trail_data, 1, masked, m + 8);

    return PST_OK;
}


int
pst_smtpc_append(pst_smtp_client_t *cl, const void *p, size_t n)
{
    if (pst_buf_append(cl->out, p, n, PST_SMTPC_OUT_MAX) != PST_OK) {
        return PST_ERROR;
    }

    cl->queued += n;
    return PST_OK;
}


void
pst_smtpc_queued(pst_smtp_client_t *cl, size_t n)
{
    cl->queued += n;
}


int
pst_smtpc_due(pst_smtp_client_t *cl, pst_uint_t n)
{
    pst_smtpc_due_t  *d;

    if (cl->due_len == PST_SMTPC_DUE) {
        return PST_ERROR;
    }

    d = &cl->due[(cl->due_head + cl->due_len) % PST_SMTPC_DUE];
    d->end = cl->queued;
    d->n = n;
    cl->due_len++;

    return PST_OK;
}


/*
 * Replies answer commands in order (RFC 2920); one that arrives when
 * nothing is asked, or before its command left, is a broken or hostile
 * server: matching it to a command would put words in its mouth.
 */
static const char *
pst_smtpc_check_due(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtpc_due_t  *d = &cl->due[cl->due_head];

    if (cl->due_len == 0 || d->end > cl->wire) {
        return pst_smtpc_reason(cl, "%s from %s: %d %.*s", cl->due_len
                                ? "reply before the command was sent"
                                : "unexpected reply", cl->peer, r->code,
                                (int) pst_min(r->text.len, 200),
                                r->text.data);
    }

    if (--d->n == 0) {
        cl->due_head = (cl->due_head + 1) % PST_SMTPC_DUE;
        cl->due_len--;
    }

    return NULL;
}


static void
pst_smtpc_trail_in(void *data, const pst_str_t *line)
{
    pst_smtp_client_t  *cl = data;

    if (cl->conf.trail != NULL) {
        cl->conf.trail(cl->conf.trail_data, 0, line->data, line->len);
    }
}


/* ------------------------------------------------------------------ */
/* Timers and callbacks                                                */

/* The next reply is due within wait ms; "what" names it for errors. */
void
pst_smtpc_expect(pst_smtp_client_t *cl, pst_msec_t wait, const char *what)
{
    cl->wait = wait;
    cl->what = what;
    pst_smtpc_timer(cl);
}


static void
pst_smtpc_timer(pst_smtp_client_t *cl)
{
    pst_msec_t  t = cl->wait;

    if (cl->state == PST_SMTPC_READY || cl->state == PST_SMTPC_BROKEN) {
        pst_event_del_timer(&cl->timer);
        return;
    }

    /* while the message goes out each block has its own time */
    if (cl->state == PST_SMTPC_TX && (cl->tx_state == PST_SMTPC_TX_BODY
                                      || pst_buf_size(cl->out) > 0))
    {
        t = pst_min(t, cl->conf.data_block_timeout);
    }

    pst_event_add_timer(&cl->timer, t);
}


static void
pst_smtpc_timeout(pst_event_t *ev)
{
    pst_smtp_client_t  *cl = ev->data;

    ev->timedout = 0;
    pst_smtpc_fail(cl, pst_smtpc_reason(cl, "timed out waiting for %s "
                                        "from %s", cl->what, cl->peer));
}


/* The operation in progress ends: its callback runs from the loop. */
void
pst_smtpc_finish(pst_smtp_client_t *cl, pst_smtpc_cb_e cb, int rc,
    const pst_smtp_reply_t *r)
{
    if (cl->state != PST_SMTPC_BROKEN) {
        cl->state = PST_SMTPC_READY;
        pst_event_del_timer(&cl->timer);
    }

    if (cb == PST_SMTPC_CB_DONE && pst_buf_size(cl->out) == 0
        && pst_buf_capacity(cl->out) > 4096)
    {
        /* an idle session keeps small buffers */
        (void) pst_buf_resize(cl->out, 4096);
        free(cl->fbuf);
        cl->fbuf = NULL;
    }

    cl->cb = cb;
    cl->cb_rc = rc;
    if (r != NULL) {
        cl->cb_reply = *r;
    } else {
        memset(&cl->cb_reply, 0, sizeof(pst_smtp_reply_t));
    }

    pst_post_event(&cl->cb_ev);
}


/*
 * The connection is lost or unusable: close it and end the operation
 * in progress with a code-0 reply saying why.  In QUIT the client frees
 * itself from the posted event (its owner forgot it already).
 */
void
pst_smtpc_fail(pst_smtp_client_t *cl, const char *why)
{
    pst_smtp_reply_t   r;
    pst_smtpc_state_e  state = cl->state;

    if (cl->c != NULL) {
        pst_close_connection(cl->c);
        cl->c = NULL;
    }

    pst_event_del_timer(&cl->timer);

    if (state == PST_SMTPC_QUIT) {
        pst_post_event(&cl->cb_ev);
        return;
    }

    cl->state = PST_SMTPC_BROKEN;

    if (state != PST_SMTPC_READY) {
        pst_log_error(PST_LOG_INFO, 0, "smtp client: %s", why);
    }

    pst_smtpc_local_reply(cl, &r, 0, "", why);

    switch (state) {
    case PST_SMTPC_TX:
        pst_smtpc_tx_broken(cl, r.text.len ? (char *) r.text.data : why);
        pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_ERROR, NULL);
        break;
    case PST_SMTPC_COMMAND:
        pst_smtpc_finish(cl, PST_SMTPC_CB_COMMAND, PST_ERROR, &r);
        break;
    case PST_SMTPC_READY:
    case PST_SMTPC_BROKEN:
        break;
    default:
        pst_smtpc_finish(cl, PST_SMTPC_CB_READY, PST_ERROR, &r);
    }
}


static void
pst_smtpc_deliver(pst_event_t *ev)
{
    pst_smtp_client_t  *cl = ev->data;
    pst_smtpc_cb_e      cb;

    if (cl->state == PST_SMTPC_QUIT) {
        pst_smtpc_free(cl);
        return;
    }

    cb = cl->cb;
    cl->cb = PST_SMTPC_CB_NONE;

    /* nothing may touch cl after a callback: it may have freed it */
    switch (cb) {
    case PST_SMTPC_CB_READY:
        cl->ready(cl, cl->data, cl->cb_rc, &cl->cb_reply);
        break;
    case PST_SMTPC_CB_DONE:
        cl->done(cl, cl->tx, cl->data, cl->cb_rc);
        break;
    case PST_SMTPC_CB_COMMAND:
        cl->cmd_done(cl, cl->data, &cl->cb_reply);
        break;
    default:
        break;
    }
}


/* ------------------------------------------------------------------ */
/* Replies                                                             */

static const char *
pst_smtpc_reason(pst_smtp_client_t *cl, const char *fmt, ...)
{
    va_list  ap;
    char    *p;

    p = pst_palloc(cl->op_pool, 256);
    if (p == NULL) {
        return "out of memory";
    }

    va_start(ap, fmt);
    vsnprintf(p, 256, fmt, ap);
    va_end(ap);

    return p;
}


int
pst_smtpc_copy_reply(pst_smtp_client_t *cl, pst_smtp_reply_t *dst,
    const pst_smtp_reply_t *src)
{
    *dst = *src;

    if (src->text.len == 0) {
        dst->text.data = (u_char *) "";
        return PST_OK;
    }

    dst->text.data = pst_pstrdup(cl->op_pool, &src->text);

    return dst->text.data != NULL ? PST_OK : PST_ERROR;
}


/* A reply of our own (code 0: no reply from the server). */
void
pst_smtpc_local_reply(pst_smtp_client_t *cl, pst_smtp_reply_t *r, int code,
    const char *ecode, const char *text)
{
    pst_str_t  s;

    memset(r, 0, sizeof(pst_smtp_reply_t));
    r->code = code;
    snprintf(r->ecode, sizeof(r->ecode), "%s", ecode);

    s.data = (u_char *) text;
    s.len = strlen(text);
    r->text.data = pst_pstrdup(cl->op_pool, &s);
    r->text.len = r->text.data != NULL ? s.len : 0;
    if (r->text.data == NULL) {
        r->text.data = (u_char *) "";
    }
}


/* The server refused the session (or we cannot go on): QUIT politely,
 * close, report r. */
void
pst_smtpc_give_up(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_reply_t  copy;

    if (pst_smtpc_copy_reply(cl, &copy, r) != PST_OK) {
        pst_smtpc_fail(cl, "out of memory");
        return;
    }

    /* best effort: one write, no wait */
    if (pst_smtpc_line(cl, (u_char *) "QUIT", 4, PST_SMTPC_NOMASK)
        == PST_OK)
    {
        (void) cl->c->send(cl->c, cl->out->pos, pst_buf_size(cl->out));
    }

    pst_close_connection(cl->c);
    cl->c = NULL;
    cl->state = PST_SMTPC_BROKEN;
    pst_event_del_timer(&cl->timer);

    pst_smtpc_finish(cl, PST_SMTPC_CB_READY, PST_ERROR, &copy);
}


/* ------------------------------------------------------------------ */
/* Session set-up                                                      */

static void
pst_smtpc_greeting(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    if (r->code / 100 != 2) {
        pst_smtpc_give_up(cl, r);
        return;
    }

    pst_smtpc_send_ehlo(cl);
}


static void
pst_smtpc_send_ehlo(pst_smtp_client_t *cl)
{
    u_char  line[300];
    int     n;

    n = snprintf((char *) line, sizeof(line), "%s %s",
                 cl->conf.lmtp ? "LHLO" : "EHLO", cl->conf.helo_name);

    if (n < 0 || (size_t) n >= sizeof(line)
        || pst_smtpc_line(cl, line, (size_t) n, PST_SMTPC_NOMASK) != PST_OK)
    {
        pst_smtpc_fail(cl, "cannot send EHLO");
        return;
    }

    cl->caps = 0;
    cl->auth_mechs = 0;
    cl->max_size = 0;
    cl->state = PST_SMTPC_EHLO;
    pst_smtpc_expect(cl, cl->conf.helo_timeout,
                     cl->conf.lmtp ? "LHLO reply" : "EHLO reply");
}


static void
pst_smtpc_ehlo(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_ehlo_t  e;
    u_char           line[300];
    int              n;

    if (r->code / 100 == 2) {
        if (pst_smtpc_copy_reply(cl, &cl->ehlo_reply, r) != PST_OK) {
            pst_smtpc_fail(cl, "out of memory");
            return;
        }
        if (cl->state == PST_SMTPC_EHLO) {
            pst_smtp_ehlo_parse(r->text.data, r->text.len, &e);
            cl->caps = e.caps;
            cl->auth_mechs = e.auth;
            cl->max_size = (e.caps & PST_SMTP_CAP_SIZE) ? e.size : 0;
            cl->ehlo = 1;
        }
        pst_smtpc_after_ehlo(cl);
        return;
    }

    /* RFC 5321 3.2: an old server that does not know EHLO */
    if (cl->state == PST_SMTPC_EHLO && !cl->conf.lmtp && r->code / 100 == 5)
    {
        n = snprintf((char *) line, sizeof(line), "HELO %s",
                     cl->conf.helo_name);
        if (pst_smtpc_line(cl, line, (size_t) n, PST_SMTPC_NOMASK)
            != PST_OK)
        {
            pst_smtpc_fail(cl, "cannot send HELO");
            return;
        }
        cl->state = PST_SMTPC_HELO;
        pst_smtpc_expect(cl, cl->conf.helo_timeout, "HELO reply");
        return;
    }

    pst_smtpc_give_up(cl, r);
}


static void
pst_smtpc_after_ehlo(pst_smtp_client_t *cl)
{
    pst_smtp_reply_t  r;
    pst_smtpc_tls_e   tls = cl->conf.tls;

    if (cl->tls || cl->tls_tried || tls == PST_SMTPC_TLS_NONE
        || tls == PST_SMTPC_TLS_IMPLICIT)
    {
        pst_smtpc_auth_or_ready(cl);
        return;
    }

    if ((cl->caps & PST_SMTP_CAP_STARTTLS) && cl->conf.ssl_ctx != NULL) {
        if (pst_smtpc_line(cl, (u_char *) "STARTTLS", 8, PST_SMTPC_NOMASK)
            != PST_OK)
        {
            pst_smtpc_fail(cl, "cannot send STARTTLS");
            return;
        }
        cl->tls_tried = 1;
        cl->state = PST_SMTPC_STARTTLS;
        pst_smtpc_expect(cl, cl->conf.helo_timeout, "STARTTLS reply");
        return;
    }

    if (tls == PST_SMTPC_TLS_MAY) {
        pst_smtpc_auth_or_ready(cl);
        return;
    }

    cl->tls_refused = 1;
    pst_smtpc_local_reply(cl, &r, 0, "", cl->conf.ssl_ctx == NULL
                          ? "TLS is required but no TLS context is set"
                          : "TLS is required but the server does not "
                            "offer STARTTLS");
    pst_smtpc_give_up(cl, &r);
}


static void
pst_smtpc_starttls(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    if (r->code / 100 == 2) {
        /* anything after the 220 was sent before TLS: an injection */
        if (pst_buf_size(cl->in) > 0) {
            pst_smtpc_fail(cl, pst_smtpc_reason(cl, "%s sent data after "
                           "its STARTTLS reply", cl->peer));
            return;
        }
        pst_smtpc_start_tls(cl);
        return;
    }

    if (cl->conf.tls == PST_SMTPC_TLS_MAY) {
        pst_smtpc_auth_or_ready(cl);
        return;
    }

    pst_smtpc_give_up(cl, r);
}


static void
pst_smtpc_start_tls(pst_smtp_client_t *cl)
{
    if (cl->conf.ssl_ctx == NULL
        || pst_ssl_create_connection(cl->c, cl->conf.ssl_ctx, 1,
                                     cl->conf.tls_name) != PST_OK
        || (cl->conf.ntlsa > 0
            && pst_ssl_set_dane(cl->c, cl->conf.tls_name, cl->conf.tlsa,
                                cl->conf.ntlsa) <= 0))
    {
        pst_smtpc_fail(cl, "cannot start TLS");
        return;
    }

    cl->state = PST_SMTPC_HANDSHAKE;
    pst_event_del_timer(&cl->timer);
    pst_ssl_handshake(cl->c, NULL, 0, cl->conf.helo_timeout,
                      pst_smtpc_tls_done);
}


static void
pst_smtpc_tls_done(pst_connection_t *c, int rc)
{
    pst_smtp_client_t  *cl = c->data;
    const char         *e;

    if (rc != PST_OK) {
        pst_smtpc_fail(cl, pst_smtpc_reason(cl, "TLS handshake with %s "
                       "failed: %s", cl->peer, pst_ssl_error(c)));
        return;
    }

    cl->tls = 1;
    cl->tls_verified = pst_ssl_verified(c) ? 1 : 0;

    if (cl->conf.tls == PST_SMTPC_TLS_VERIFY && !cl->tls_verified) {
        cl->tls_refused = 1;
        cl->verify_code = pst_ssl_verify_code(c);
        e = pst_ssl_verify_error(c);
        pst_smtpc_fail(cl, pst_smtpc_reason(cl, "the certificate of %s did "
                       "not verify: %s", cl->peer, e ? e : "unknown"));
        return;
    }

    if (cl->conf.tls == PST_SMTPC_TLS_IMPLICIT) {
        cl->state = PST_SMTPC_GREETING;
        (void) pst_smtpc_due(cl, 1);
        pst_smtpc_expect(cl, cl->conf.greeting_timeout, "greeting");
    } else {
        /* RFC 3207 4.2: forget what was learned before TLS */
        pst_smtpc_send_ehlo(cl);
    }

    pst_smtpc_io(cl);
}


static void
pst_smtpc_auth_or_ready(pst_smtp_client_t *cl)
{
    pst_smtp_reply_t  r;
    const char       *why = NULL;

    switch (pst_smtpc_auth_start(cl, &why)) {
    case PST_OK:
        cl->state = PST_SMTPC_AUTH;
        pst_smtpc_expect(cl, cl->conf.helo_timeout, "AUTH reply");
        return;
    case PST_DECLINED:
        pst_smtpc_finish(cl, PST_SMTPC_CB_READY, PST_OK, &cl->ehlo_reply);
        return;
    default:
        pst_smtpc_local_reply(cl, &r, 0, "", why ? why : "AUTH failed");
        pst_smtpc_give_up(cl, &r);
    }
}


/* ------------------------------------------------------------------ */
/* Commands                                                            */

int
pst_smtpc_usable(pst_smtp_client_t *cl)
{
    if (cl->state != PST_SMTPC_READY || cl->c == NULL
        || cl->cb != PST_SMTPC_CB_NONE)
    {
        return 0;
    }

    pst_reset_pool(cl->op_pool);
    return 1;
}


int
pst_smtp_client_command(pst_smtp_client_t *cl, const char *line,
    void (*done)(pst_smtp_client_t *cl, void *data,
                 const pst_smtp_reply_t *r), void *data)
{
    size_t  n = strlen(line);

    if (strpbrk(line, "\r\n") != NULL || n == 0 || !pst_smtpc_usable(cl)) {
        return PST_ERROR;
    }

    if (pst_smtpc_line(cl, (const u_char *) line, n, PST_SMTPC_NOMASK)
        != PST_OK)
    {
        return PST_ERROR;
    }

    cl->cmd_done = done;
    cl->data = data;
    cl->state = PST_SMTPC_COMMAND;
    pst_smtpc_expect(cl, cl->conf.helo_timeout, "a reply");

    (void) pst_smtpc_flush(cl);

    return PST_OK;
}
