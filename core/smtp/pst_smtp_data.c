/*
 * pst_smtp_data.c -- message data: DATA and BDAT streaming into the
 * store, the Received: header, the end-of-data checks, the MESSAGE and
 * QUEUE phases, and the commit that comes before "250 queued as".
 *
 * The message never sits in memory: input is parsed (dot-unstuffing,
 * bare CR/LF policy, limits) into a write buffer that goes to the store
 * in 64 KiB writes.  Only the header section is kept (up to
 * smtp_header_size_limit) for the MESSAGE hooks.  After an error the
 * rest of the message is read and thrown away so that the client and
 * server stay in step; the error is the answer to the final dot (or to
 * the failing BDAT chunk).
 */

#include "pst_smtp.h"
#include "pst_event.h"

#define PST_SMTP_WBUF_SIZE   65536

static void pst_smtp_data_end(pst_session_t *s);
static void pst_smtp_message_done(pst_session_t *s, pst_verdict_e v);
static void pst_smtp_queue_done(pst_session_t *s, pst_verdict_e v);
static int pst_smtp_tx_verdict(pst_session_t *s, pst_verdict_e v);
static void pst_smtp_tx_taken(pst_session_t *s, const char *why);
static void pst_smtp_commit(pst_session_t *s);
static int pst_smtp_received(pst_session_t *s);
static int pst_smtp_data_sync(pst_session_t *s);


static void *
pst_smtp_store_conf(pst_session_t *s)
{
    return s->server->srv_conf[s->server->store->index];
}


/* Open the store and prepare the parser (DATA or the first BDAT). */
static int
pst_smtp_data_open(pst_session_t *s, int dot_mode)
{
    pst_smtp_tx_t        *tx = s->tx;
    pst_smtp_srv_conf_t  *conf = s->conf;
    const pst_store_ops_t *ops = s->server->store->desc.store;

    tx->store = ops->open(s, pst_smtp_store_conf(s));
    if (tx->store == NULL) {
        pst_log_session(s, PST_LOG_ERR, "store \"%s\" could not open a"
                        " message", s->server->store->desc.name);
        return PST_ERROR;
    }

    tx->wbuf = pst_buf_alloc(PST_SMTP_WBUF_SIZE);
    tx->data.hdr = pst_buf_alloc(1024);
    if (tx->wbuf == NULL || tx->data.hdr == NULL) {
        return PST_ERROR;
    }

    pst_smtp_data_init(&tx->data, dot_mode);
    tx->data.max_line = conf->text_line_limit;
    tx->data.max_size = (off_t) conf->message_size_limit;
    tx->data.hdr_max = conf->header_size_limit;
    tx->data_started = 1;

    if (pst_smtp_received(s) != PST_OK) {
        return PST_ERROR;
    }

    return PST_OK;
}


/*
 * RFC 2920 3.1: DATA ends a pipelined group; the client waits for the
 * 354 before it sends the text.  Text already waiting when the 354
 * would go out is what a smuggled transaction looks like after a
 * lenient relay upstream (smtpsmug's pipelining probe), so sessions
 * that have not authenticated get 554 and are closed, as with Postfix's
 * smtpd_forbid_unauth_pipelining.  PST_OK: in step; PST_DONE: the
 * session is closing.
 */
static int
pst_smtp_data_sync(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    u_char             esc[256];
    ssize_t            n;

    if (!s->conf->forbid_unauth_pipelining || s->auth_id.len > 0) {
        return PST_OK;
    }

    if (pst_buf_size(s->in) == 0) {
        /* what the socket (or OpenSSL) holds counts too; a read now
         * keeps the event flags right whatever it finds */
        s->in->pos = s->in->start;
        s->in->last = s->in->start;
        n = c->recv(c, s->in->last, pst_buf_free(s->in));
        if (n == PST_AGAIN) {
            return PST_OK;
        }
        if (n <= 0) {
            /* the client is gone: no 354 for nobody */
            s->eof = 1;
            s->closing = 1;
            pst_smtp_tx_free(s);
            return PST_DONE;
        }
        s->in->last += n;
    }

    (void) pst_escape(esc, sizeof(esc), s->in->pos,
                      pst_min(pst_buf_size(s->in), 64));
    pst_log_session(s, PST_LOG_NOTICE, "SMTP protocol synchronization:"
                    " %zu byte(s) sent before the 354, helo=%.*s: \"%s\"",
                    pst_buf_size(s->in), (int) s->helo.len, s->helo.data,
                    esc);

    pst_smtp_tx_free(s);
    pst_smtp_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
    pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
    return PST_DONE;
}


void
pst_smtp_data_start(pst_session_t *s)
{
    if (pst_smtp_data_sync(s) != PST_OK) {
        return;
    }

    if (pst_smtp_data_open(s, 1) != PST_OK) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: cannot store the message"
                       " now");
        pst_smtp_tx_free(s);
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
        return;
    }

    pst_smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
    pst_smtp_enter_state(s, PST_SMTP_S_DATA);
}


void
pst_smtp_bdat_start(pst_session_t *s, off_t size, int last)
{
    pst_smtp_tx_t  *tx = s->tx;

    tx->bdat = 1;
    tx->bdat_left = size;
    tx->bdat_last = last;

    if (!tx->data_started && pst_smtp_data_open(s, 0) != PST_OK) {
        /* answer now and throw the chunk away (as for a BDAT that was
         * refused when announced): without a write buffer the end of
         * the chunk adds no second reply */
        pst_smtp_tx_abort(s);
        pst_buf_destroy(tx->wbuf);
        tx->wbuf = NULL;
        pst_smtp_reply(s, 451, "4.3.0", "Error: cannot store the message"
                       " now");
        tx->failed = 1;
        tx->data_started = 1;
    }

    pst_smtp_enter_state(s, PST_SMTP_S_BDAT);
}


static void
pst_smtp_wbuf_flush(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;
    size_t          n;

    n = pst_buf_size(tx->wbuf);
    if (n == 0) {
        return;
    }

    if (!tx->failed && !tx->data.too_big && tx->store != NULL
        && s->server->store->desc.store->write(tx->store, tx->wbuf->pos, n)
           != PST_OK)
    {
        pst_log_session(s, PST_LOG_ERR, "writing the message failed");
        tx->failed = 1;
    }

    tx->wbuf->pos = tx->wbuf->start;
    tx->wbuf->last = tx->wbuf->start;
}


/* Parse input bytes [*pos, end) into the write buffer. */
static int
pst_smtp_data_feed(pst_session_t *s, u_char **pos, u_char *end)
{
    pst_smtp_tx_t  *tx = s->tx;
    size_t          olen;
    int             rc;

    for ( ;; ) {
        if (pst_buf_free(tx->wbuf) < 3) {
            pst_smtp_wbuf_flush(s);
        }

        olen = pst_buf_free(tx->wbuf);
        rc = pst_smtp_data_parse(&tx->data, pos, end, tx->wbuf->last, &olen);
        tx->wbuf->last += olen;

        if (rc == PST_DONE || *pos == end) {
            return rc;
        }
    }
}


void
pst_smtp_data_read(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;
    u_char         *end, *start = s->in->pos;
    size_t          n;
    int             rc;

    if (pst_buf_size(s->in) > 0 && pst_smtp_clock_spent(s)) {
        /* slower than smtp_min_data_rate (pst_smtp_deadline.c) */
        pst_smtp_time_up(s);
        return;
    }

    if (s->state == PST_SMTP_S_DATA) {
        rc = pst_smtp_data_feed(s, &s->in->pos, s->in->last);
        pst_smtp_clock_credit(s, (size_t) (s->in->pos - start));
        if (rc == PST_DONE) {
            pst_smtp_wbuf_flush(s);
            pst_smtp_data_end(s);
        }
        return;
    }

    /* BDAT: exactly bdat_left bytes belong to this chunk */
    n = pst_min((size_t) tx->bdat_left, pst_buf_size(s->in));
    end = s->in->pos + n;

    if (tx->wbuf != NULL) {
        (void) pst_smtp_data_feed(s, &s->in->pos, end);
    } else {
        s->in->pos = end;               /* discarding */
    }
    tx->bdat_left -= (off_t) n;
    pst_smtp_clock_credit(s, n);

    if (tx->bdat_left > 0) {
        return;
    }

    if (tx->failed || tx->data.too_big) {
        /* the transaction is over: answer this chunk with the error */
        if (tx->data.too_big) {
            pst_smtp_reply(s, 552, "5.3.4", "Error: message size exceeds"
                           " fixed limit");
        } else if (s->tx->wbuf != NULL) {
            pst_smtp_reply(s, 451, "4.3.0", "Error: could not store the"
                           " message");
        }
        /* else: refused when the chunk was announced, already answered */
        pst_smtp_tx_free(s);
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
        return;
    }

    if (!tx->bdat_last) {
        pst_smtp_reply(s, 250, "2.0.0", "Ok: %lld octets received",
                       (long long) tx->data.size);
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
        return;
    }

    tx->wbuf->last += pst_smtp_data_finish(&tx->data, tx->wbuf->last);
    pst_smtp_wbuf_flush(s);
    pst_smtp_data_end(s);
}


static void
pst_smtp_data_end(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;

    if (tx->data.too_big) {
        pst_log_session(s, PST_LOG_NOTICE, "id=%s rejected: message size"
                        " %lld over the limit %zu", tx->id.data,
                        (long long) tx->data.size,
                        s->conf->message_size_limit);
        pst_smtp_reply(s, 552, "5.3.4", "Error: message size exceeds fixed"
                       " limit");
        goto reject;
    }

    if ((tx->data.bare_lf || tx->data.bare_cr)
        && s->conf->bare_newline == PST_BARE_NL_REJECT)
    {
        pst_log_session(s, PST_LOG_NOTICE, "id=%s rejected: bare %s in"
                        " message", tx->id.data,
                        tx->data.bare_lf ? "<LF>" : "<CR>");
        pst_smtp_reply(s, 554, "5.6.0", "Error: bare <CR> or <LF> in the"
                       " message (RFC 5321 2.3.8)");
        goto reject;
    }

    if (tx->data.long_line) {
        pst_smtp_reply(s, 554, "5.6.0", "Error: message line longer than"
                       " %zu octets", s->conf->text_line_limit);
        goto reject;
    }

    if (tx->failed) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: could not store the"
                       " message, try again later");
        goto reject;
    }

    if (tx->data.bare_lf || tx->data.bare_cr) {
        pst_log_session(s, PST_LOG_INFO, "id=%s: bare %s normalised to"
                        " <CR><LF>", tx->id.data,
                        tx->data.bare_lf ? "<LF>" : "<CR>");
    }

    if (tx->discard) {
        /* discarded at MAIL, RCPT or DATA: no content check needed */
        pst_smtp_tx_taken(s, "discarded by a hook");
        return;
    }

    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);
    pst_smtp_run_phase(s, PST_PHASE_MESSAGE, pst_smtp_message_done);
    return;

reject:

    pst_smtp_tx_free(s);
    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
}


/* MESSAGE or QUEUE refused the message: its reply, and the end of the
 * transaction (or of the session after a 421). */
static int
pst_smtp_tx_verdict(pst_session_t *s, pst_verdict_e v)
{
    int  code;

    code = pst_smtp_verdict_reply(s, v);
    if (code == 0) {
        return 0;
    }

    pst_log_session(s, PST_LOG_NOTICE, "id=%s not queued: %d %.*s",
                    s->tx->id.data, code, (int) s->call.text_len,
                    s->call.text);

    pst_smtp_tx_free(s);
    if (s->state != PST_SMTP_S_CLOSING) {
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    }
    pst_smtp_continue(s);
    return code;
}


/* The client is told "queued" but the store gets nothing: a DISCARD
 * verdict, or a queue hook that took the message over. */
static void
pst_smtp_tx_taken(pst_session_t *s, const char *why)
{
    pst_log_session(s, PST_LOG_NOTICE, "id=%s %s", s->tx->id.data, why);
    pst_smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", s->tx->id.data);
    pst_smtp_tx_free(s);
    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    pst_smtp_continue(s);
}


static void
pst_smtp_message_done(pst_session_t *s, pst_verdict_e v)
{
    if (pst_smtp_tx_verdict(s, v) != 0) {
        return;
    }

    if (s->tx->discard) {
        pst_smtp_tx_taken(s, "discarded by a hook");
        return;
    }

    pst_smtp_run_phase(s, PST_PHASE_QUEUE, pst_smtp_queue_done);
}


static void
pst_smtp_queue_done(pst_session_t *s, pst_verdict_e v)
{
    if (pst_smtp_tx_verdict(s, v) != 0) {
        return;
    }

    if (v == PST_HOOK_ACCEPT) {
        /* DISCARD ends the chain as an ACCEPT */
        pst_smtp_tx_taken(s, s->tx->discard ? "discarded by a hook"
                                            : "handed over by a queue hook");
        return;
    }

    /* the edits of MESSAGE and QUEUE hooks (pst_smtp_edit.c) */
    if (pst_smtp_edit_apply(s) != PST_OK) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: could not store the"
                       " message, try again later");
        pst_smtp_tx_free(s);
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
        pst_smtp_continue(s);
        return;
    }

    pst_smtp_commit(s);
}


static void
pst_smtp_commit(pst_session_t *s)
{
    const pst_store_ops_t  *ops = s->server->store->desc.store;
    uint64_t                token;
    void                   *h;
    int                     rc;

    s->serial++;
    if (s->serial == 0) {
        s->serial = 1;
    }
    token = (s->id << 16) | s->serial;

    h = s->tx->store;
    s->tx->store = NULL;          /* the store owns it from here on */

    pst_smtp_enter_state(s, PST_SMTP_S_COMMIT);
    pst_event_del_timer(&s->c->read);
    s->tx->commit_usec = pst_metric_usec();

    rc = ops->commit(h, token);

    if (rc == PST_AGAIN) {
        return;
    }

    pst_smtp_commit_done(s, rc);
}


void
pst_store_done(uint64_t token, int rc)
{
    pst_session_t  *s;

    s = pst_smtp_session_find(token >> 16);
    if (s == NULL || s->state != PST_SMTP_S_COMMIT
        || (uint16_t) (token & 0xffff) != s->serial)
    {
        pst_log_error(PST_LOG_ALERT, 0, "store completion for an unknown"
                      " session ignored");
        return;
    }

    pst_smtp_commit_done(s, rc);
}


void
pst_smtp_commit_done(pst_session_t *s, int rc)
{
    const pst_str_t  *node;

    if (s->state != PST_SMTP_S_COMMIT) {
        return;
    }

    pst_log_commit(s, rc);

    if (rc == PST_OK) {
        /* durable: the queue process may take it from here */
        pst_smtp_notify_committed(s->tx->id.data, s->tx->id.len);
    }

    if (s->closing) {
        if (rc == PST_OK) {
            /* durable, but the client never saw "250": it may send the
             * message again; that is a duplicate, never a loss */
            pst_log_session(s, PST_LOG_NOTICE, "id=%s queued after the"
                            " client left", s->tx->id.data);
            pst_smtp_committed(s);
        }
        pst_smtp_tx_free(s);
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
        pst_smtp_close_session(s);
        return;
    }

    if (rc == PST_OK) {
        node = pst_smtp_node_reply_name(s);
        pst_smtp_reply(s, 250, "2.0.0", "Ok: queued as %s%s%.*s",
                       s->tx->id.data, node ? " on node " : "",
                       node ? (int) node->len : 0,
                       node ? (char *) node->data : "");
        pst_smtp_committed(s);
    } else {
        pst_log_session(s, PST_LOG_ERR, "id=%s: the store could not commit"
                        " the message", s->tx->id.data);
        pst_smtp_reply(s, 451, "4.3.0", "Error: could not store the"
                       " message, try again later");
    }

    pst_smtp_tx_free(s);
    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    pst_smtp_continue(s);
}


void
pst_smtp_tx_abort(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;

    if (tx == NULL || tx->store == NULL) {
        return;
    }

    s->server->store->desc.store->abort(tx->store);
    tx->store = NULL;
}


/* ------------------------------------------------------------------ */
/* Received: (RFC 5321 4.4)                                            */

static size_t
pst_smtp_trace_clean(u_char *dst, size_t size, const pst_str_t *src)
{
    size_t  i, n;

    n = pst_min(src->len, size - 1);
    for (i = 0; i < n; i++) {
        u_char  c = src->data[i];
        dst[i] = (c <= 0x20 || c >= 0x7f || c == '(' || c == ')'
                  || c == '\\') ? '_' : c;
    }
    dst[n] = '\0';
    return n;
}


const char *
pst_smtp_protocol(pst_session_t *s)
{
    static const char  *names[2][4] = {
        { "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" },
        { "UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA" }
    };

    if (!s->esmtp) {
        return "SMTP";
    }

    return names[s->tx && s->tx->params.smtputf8]
                [(s->tls_facts ? 1 : 0) + (s->auth_id.len ? 2 : 0)];
}


/*
 * "by HOST (Postern node NAME) with PROTO id QID" -- the node's name in
 * a comment, which RFC 5321 4.4's Stamp allows around its clauses (the
 * name is letters, digits, "-", "_" and "."; never a parenthesis), so
 * nodes sharing one MX hostname are told apart.  "with" goes on a line
 * of its own when the line would pass 78 characters (RFC 5322 2.1.1).
 */
static size_t
pst_smtp_received_by(pst_session_t *s, char *buf, size_t size)
{
    const pst_str_t  *node = &pst_cycle->core->node_name;
    const char       *proto = pst_smtp_protocol(s);
    size_t            n;
    int               k;

    n = sizeof("\tby  (Postern node ) with  id ") - 1
        + s->conf->hostname.len + node->len + strlen(proto)
        + s->tx->id.len;
    k = snprintf(buf, size, "\tby %.*s (Postern%s%.*s)%swith %s id %s",
                 (int) s->conf->hostname.len, s->conf->hostname.data,
                 node->len ? " node " : "", (int) node->len,
                 node->len ? (char *) node->data : "",
                 n > 78 ? "\r\n\t" : " ", proto, s->tx->id.data);

    return (k < 0) ? 0 : pst_min((size_t) k, size - 1);
}


static int
pst_smtp_received(pst_session_t *s)
{
    pst_smtp_tx_t    *tx = s->tx;
    pst_smtp_rcpt_t  *r;
    u_char            helo[256], name[256], name2[256], rcpt[300], date[64];
    u_char           *p;
    char              tls[256], by[512];
    int               k;

    pst_smtp_trace_clean(helo, sizeof(helo), &s->helo);
    if (s->client_name.len) {
        pst_smtp_trace_clean(name, sizeof(name), &s->client_name);
    } else {
        memcpy(name, "unknown", 8);
    }
    pst_rfc5322_date(pst_current_time_sec, date, sizeof(date));

    tls[0] = '\0';
    if (s->tls_facts) {
        snprintf(tls, sizeof(tls), "\r\n\t(using %s with cipher %s)",
                 pst_session_tls_version(s), pst_session_tls_cipher(s));
    }

    rcpt[0] = '\0';
    if (tx->rcpts.nelts == 1) {
        r = tx->rcpts.elts;
        (void) pst_sanitize(name2, sizeof(name2), r->addr.data, r->addr.len);
        snprintf((char *) rcpt, sizeof(rcpt), "\r\n\tfor <%s>", name2);
    }

    (void) pst_smtp_received_by(s, by, sizeof(by));

    p = tx->wbuf->last;
    k = snprintf((char *) p, pst_buf_free(tx->wbuf),
                 "Received: from %s (%s [%s%.*s])\r\n%s%s%s;\r\n\t%s\r\n",
                 helo, name,
                 /* RFC 5321 4.1.3: an IPv6 address literal is tagged */
                 memchr(s->client_addr.data, ':', s->client_addr.len)
                     ? "IPv6:" : "",
                 (int) s->client_addr.len, s->client_addr.data, by, tls,
                 rcpt, date);
    if (k < 0 || (size_t) k >= pst_buf_free(tx->wbuf)) {
        return PST_ERROR;
    }

    tx->wbuf->last += k;
    tx->received_len = k;

    return PST_OK;
}
