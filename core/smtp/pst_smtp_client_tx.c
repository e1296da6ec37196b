/*
 * pst_smtp_client_tx.c -- one transaction of the SMTP client: MAIL,
 * RCPT..., then DATA and the dot-stuffed message, or BDAT chunks
 * (CHUNKING); LMTP's per-recipient replies after the message.
 *
 * The envelope is a numbered list of commands: 0 is MAIL, 1..n the
 * recipients, n + 1 DATA (not with BDAT).  nsent counts the commands
 * sent, ngot their replies; with PIPELINING up to PST_SMTPC_WINDOW are
 * in flight (RFC 2920: DATA ends the group), without it one.  The
 * message is read from the caller's fd in PST_SMTPC_CHUNK pieces (the
 * prepended header lines first) and never held whole in memory.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_smtp_client.h"
#include "pst_smtp_proto.h"
#include "pst_smtp_client_int.h"

static int pst_smtpc_tx_check(const pst_smtp_client_tx_t *tx);
static int pst_smtpc_str_ok(const pst_str_t *s);
static void pst_smtpc_tx_too_big(pst_smtp_client_t *cl, off_t size);
static int pst_smtpc_tx_envelope(pst_smtp_client_t *cl);
static int pst_smtpc_tx_command(pst_smtp_client_t *cl, pst_uint_t k);
static int pst_smtpc_tx_params(pst_smtp_client_t *cl, const pst_str_t *in,
    u_char *out, size_t *len);
static int pst_smtpc_tx_param_ok(pst_smtp_client_t *cl, const u_char *p,
    size_t n);
static void pst_smtpc_tx_wait(pst_smtp_client_t *cl);
static void pst_smtpc_tx_envelope_reply(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_tx_envelope_end(pst_smtp_client_t *cl);
static void pst_smtpc_tx_body_start(pst_smtp_client_t *cl);
static int pst_smtpc_tx_read(pst_smtp_client_t *cl);
static void pst_smtpc_tx_bdat(pst_smtp_client_t *cl);
static void pst_smtpc_tx_final(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_tx_data_failed(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r);
static void pst_smtpc_tx_rset(pst_smtp_client_t *cl);
static void pst_smtpc_tx_set(pst_smtp_client_t *cl, pst_smtp_reply_t *dst,
    const pst_smtp_reply_t *r);
static off_t pst_smtpc_tx_size(const pst_smtp_client_tx_t *tx);


int
pst_smtp_client_send(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx,
    pst_smtp_client_done_pt done, void *data)
{
    pst_uint_t  i;
    off_t       size;

    if (pst_smtpc_tx_check(tx) != PST_OK || !pst_smtpc_usable(cl)) {
        return PST_ERROR;
    }

    cl->tx = tx;
    cl->done = done;
    cl->data = data;

    memset(&tx->mail_reply, 0, sizeof(pst_smtp_reply_t));
    memset(&tx->data_reply, 0, sizeof(pst_smtp_reply_t));
    tx->mail_reply.text.data = (u_char *) "";
    tx->data_reply.text.data = (u_char *) "";
    for (i = 0; i < tx->nrcpts; i++) {
        memset(&tx->rcpts[i].reply, 0, sizeof(pst_smtp_reply_t));
        tx->rcpts[i].reply.text.data = (u_char *) "";
        tx->rcpts[i].accepted = 0;
    }

    cl->state = PST_SMTPC_TX;
    cl->tx_state = PST_SMTPC_TX_ENVELOPE;
    cl->bdat = (cl->caps & PST_SMTP_CAP_CHUNKING) ? 1 : 0;
    cl->ncmds = 1 + tx->nrcpts + (cl->bdat ? 0 : 1);
    cl->nsent = 0;
    cl->ngot = 0;
    cl->naccepted = 0;
    cl->nfinal = 0;
    cl->mail_ok = 0;
    cl->data_sent = 0;
    cl->got_354 = 0;
    cl->bdat_last = 0;

    size = pst_smtpc_tx_size(tx);
    if (cl->max_size > 0 && size > cl->max_size) {
        pst_smtpc_tx_too_big(cl, size);
        return PST_OK;
    }

    if (pst_smtpc_tx_envelope(cl) != PST_OK) {
        cl->state = PST_SMTPC_READY;
        return PST_ERROR;
    }

    (void) pst_smtpc_flush(cl);

    return PST_OK;
}


static int
pst_smtpc_tx_check(const pst_smtp_client_tx_t *tx)
{
    pst_uint_t  i;

    if (tx->nrcpts == 0 || !pst_smtpc_str_ok(&tx->sender)
        || !pst_smtpc_str_ok(&tx->params) || tx->length < 0
        || tx->offset < 0 || (tx->length > 0 && tx->fd < 0))
    {
        return PST_ERROR;
    }

    for (i = 0; i < tx->nrcpts; i++) {
        if (tx->rcpts[i].addr.len == 0
            || !pst_smtpc_str_ok(&tx->rcpts[i].addr)
            || !pst_smtpc_str_ok(&tx->rcpts[i].params))
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


/* Nothing that could end a command line early. */
static int
pst_smtpc_str_ok(const pst_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] == '\r' || s->data[i] == '\n' || s->data[i] == '\0')
        {
            return 0;
        }
    }

    return s->len < 4096;
}


static off_t
pst_smtpc_tx_size(const pst_smtp_client_tx_t *tx)
{
    off_t       size = tx->length;
    pst_uint_t  i;

    for (i = 0; i < tx->nprepend; i++) {
        size += (off_t) tx->prepend[i].len;
    }

    return size;
}


/* RFC 1870: a message over the server's SIZE is not offered at all. */
static void
pst_smtpc_tx_too_big(pst_smtp_client_t *cl, off_t size)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    pst_smtp_reply_t       r;
    pst_uint_t             i;
    char                   text[200];

    snprintf(text, sizeof(text), "message size %lld exceeds the limit "
             "%lld of %s", (long long) size, (long long) cl->max_size,
             cl->peer);
    pst_smtpc_local_reply(cl, &r, 552, "5.3.4", text);

    tx->mail_reply = r;
    for (i = 0; i < tx->nrcpts; i++) {
        tx->rcpts[i].reply = r;
    }

    pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
}


/* ------------------------------------------------------------------ */
/* Envelope                                                            */

/* Queue the commands the window allows; arm the timer for the next
 * reply. */
static int
pst_smtpc_tx_envelope(pst_smtp_client_t *cl)
{
    pst_uint_t  window, nr = cl->tx->nrcpts;
    int         pipelining;

    pipelining = (cl->caps & PST_SMTP_CAP_PIPELINING) != 0;
    window = pipelining ? PST_SMTPC_WINDOW : 1;

    while (cl->nsent < cl->ncmds && cl->nsent - cl->ngot < window) {
        /* DATA only behind a recipient, or at the end of a group */
        if (cl->nsent == nr + 1 && !pipelining && cl->naccepted == 0) {
            break;
        }
        if (pst_smtpc_tx_command(cl, cl->nsent) != PST_OK) {
            return PST_ERROR;
        }
        cl->nsent++;
    }

    pst_smtpc_tx_wait(cl);

    return PST_OK;
}


static void
pst_smtpc_tx_wait(pst_smtp_client_t *cl)
{
    pst_uint_t  k = cl->ngot;

    if (k == 0) {
        pst_smtpc_expect(cl, cl->conf.mail_timeout, "MAIL reply");
    } else if (k <= cl->tx->nrcpts) {
        pst_smtpc_expect(cl, cl->conf.rcpt_timeout, "RCPT reply");
    } else {
        pst_smtpc_expect(cl, cl->conf.data_init_timeout, "DATA reply");
    }
}


static int
pst_smtpc_tx_command(pst_smtp_client_t *cl, pst_uint_t k)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    const pst_str_t       *addr, *params;
    u_char                *line, *p;
    size_t                 n;

    if (k == tx->nrcpts + 1) {
        cl->data_sent = 1;
        return pst_smtpc_line(cl, (u_char *) "DATA", 4, PST_SMTPC_NOMASK);
    }

    addr = k == 0 ? &tx->sender : &tx->rcpts[k - 1].addr;
    params = k == 0 ? &tx->params : &tx->rcpts[k - 1].params;

    line = pst_palloc(cl->op_pool, 64 + addr->len + params->len);
    if (line == NULL) {
        return PST_ERROR;
    }

    p = line;
    p += sprintf((char *) p, "%s", k == 0 ? "MAIL FROM:<" : "RCPT TO:<");
    memcpy(p, addr->data, addr->len);
    p += addr->len;
    *p++ = '>';

    if (k == 0 && (cl->caps & PST_SMTP_CAP_SIZE)) {
        p += sprintf((char *) p, " SIZE=%lld",
                     (long long) pst_smtpc_tx_size(tx));
    }

    if (pst_smtpc_tx_params(cl, params, p, &n) != PST_OK) {
        return PST_ERROR;
    }
    p += n;

    return pst_smtpc_line(cl, line, (size_t) (p - line), PST_SMTPC_NOMASK);
}


/* Copy the caller's parameters, dropping those the server did not
 * announce (see pst_smtp_client_send()). */
static int
pst_smtpc_tx_params(pst_smtp_client_t *cl, const pst_str_t *in,
    u_char *out, size_t *len)
{
    const u_char  *p = in->data, *end = in->data + in->len, *w;
    u_char        *o = out;

    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }
        w = p;
        while (p < end && *p != ' ') {
            p++;
        }
        if (p > w && pst_smtpc_tx_param_ok(cl, w, (size_t) (p - w))) {
            *o++ = ' ';
            memcpy(o, w, (size_t) (p - w));
            o += p - w;
        }
    }

    *len = (size_t) (o - out);
    return PST_OK;
}


static int
pst_smtpc_tx_param_ok(pst_smtp_client_t *cl, const u_char *p, size_t n)
{
    static const struct {
        const char  *name;
        unsigned     cap;
    } need[] = {
        { "BODY=", PST_SMTP_CAP_8BITMIME },
        { "RET=", PST_SMTP_CAP_DSN },
        { "ENVID=", PST_SMTP_CAP_DSN },
        { "NOTIFY=", PST_SMTP_CAP_DSN },
        { "ORCPT=", PST_SMTP_CAP_DSN },
        { "AUTH=", PST_SMTP_CAP_AUTH },
        { "SIZE=", 0 },                 /* ours, never the caller's */
    };
    pst_uint_t  i;
    size_t      k;

    for (i = 0; i < pst_nelems(need); i++) {
        k = strlen(need[i].name);
        if (n >= k && pst_strncasecmp(p, (u_char *) need[i].name, k) == 0) {
            return need[i].cap != 0 && (cl->caps & need[i].cap) != 0;
        }
    }

    return 1;
}


void
pst_smtpc_tx_reply(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_reply_t  copy;

    switch (cl->tx_state) {

    case PST_SMTPC_TX_ENVELOPE:
        pst_smtpc_tx_envelope_reply(cl, r);
        return;

    case PST_SMTPC_TX_BDAT:
        if (cl->bdat_last) {
            pst_smtpc_tx_final(cl, r);      /* LMTP: one per recipient */
        } else if (r->code / 100 != 2) {
            pst_smtpc_tx_data_failed(cl, r);
        } else {
            pst_smtpc_tx_bdat(cl);
        }
        return;

    case PST_SMTPC_TX_DOT:
        pst_smtpc_tx_final(cl, r);
        return;

    case PST_SMTPC_TX_DISCARD:
        pst_smtpc_tx_set(cl, &cl->tx->data_reply, r);
        pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
        return;

    case PST_SMTPC_TX_RSET:
        pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
        return;

    default:
        /* the server answered before the end of the message: take it
         * as the final word on the message, and drop the session */
        if (pst_smtpc_copy_reply(cl, &copy, r) == PST_OK && !cl->conf.lmtp)
        {
            cl->tx_state = PST_SMTPC_TX_DOT;
            pst_smtpc_tx_final(cl, &copy);
            pst_delete_posted_event(&cl->cb_ev);
        }
        cl->state = PST_SMTPC_TX;
        pst_smtpc_fail(cl, "the server replied before the end of the "
                           "message");
        return;
    }
}


static void
pst_smtpc_tx_set(pst_smtp_client_t *cl, pst_smtp_reply_t *dst,
    const pst_smtp_reply_t *r)
{
    if (pst_smtpc_copy_reply(cl, dst, r) != PST_OK) {
        dst->code = r->code;
        memcpy(dst->ecode, r->ecode, sizeof(dst->ecode));
        dst->text.data = (u_char *) "";
        dst->text.len = 0;
    }
}


static void
pst_smtpc_tx_envelope_reply(pst_smtp_client_t *cl,
    const pst_smtp_reply_t *r)
{
    pst_smtp_client_tx_t    *tx = cl->tx;
    pst_smtp_client_rcpt_t  *rcpt;
    pst_uint_t               k = cl->ngot++;

    if (k == 0) {
        pst_smtpc_tx_set(cl, &tx->mail_reply, r);
        cl->mail_ok = r->code / 100 == 2;

    } else if (k <= tx->nrcpts) {
        rcpt = &tx->rcpts[k - 1];
        pst_smtpc_tx_set(cl, &rcpt->reply, r);
        rcpt->accepted = r->code / 100 == 2 && cl->mail_ok;
        cl->naccepted += rcpt->accepted;

    } else {
        pst_smtpc_tx_set(cl, &tx->data_reply, r);
        cl->got_354 = r->code / 100 == 3;
    }

    if (cl->ngot < cl->nsent) {
        pst_smtpc_tx_wait(cl);
        return;
    }

    if (cl->nsent < cl->ncmds && cl->mail_ok
        && (cl->nsent <= tx->nrcpts || cl->naccepted > 0))
    {
        if (pst_smtpc_tx_envelope(cl) != PST_OK) {
            pst_smtpc_fail(cl, "out of memory");
        }
        return;
    }

    pst_smtpc_tx_envelope_end(cl);
}


/* Every command sent has its reply. */
static void
pst_smtpc_tx_envelope_end(pst_smtp_client_t *cl)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    pst_uint_t             i;

    if (!cl->mail_ok) {
        /* the recipients share the fate of MAIL */
        for (i = 0; i < tx->nrcpts; i++) {
            tx->rcpts[i].reply = tx->mail_reply;
            tx->rcpts[i].accepted = 0;
        }
        cl->naccepted = 0;
    }

    if (cl->data_sent) {
        if (!cl->got_354) {
            if (tx->data_reply.code / 100 == 2 && cl->naccepted > 0) {
                /* "250" to DATA: the message was never sent, so no
                 * recipient may take it as delivered */
                pst_smtpc_fail(cl, "the server accepted DATA without "
                                   "asking for the message");
                return;
            }
            pst_smtpc_tx_data_failed(cl, &tx->data_reply);
            return;
        }

        if (cl->naccepted == 0) {
            /* a 354 nobody can use: end the empty message at once */
            if (pst_smtpc_append(cl, ".\r\n", 3) != PST_OK
                || pst_smtpc_due(cl, 1) != PST_OK)
            {
                pst_smtpc_fail(cl, "out of memory");
                return;
            }
            cl->tx_state = PST_SMTPC_TX_DISCARD;
            pst_smtpc_expect(cl, cl->conf.data_done_timeout,
                             "end of data reply");
            return;
        }

        pst_smtpc_tx_body_start(cl);
        return;
    }

    if (!cl->mail_ok) {
        pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
        return;
    }

    if (cl->naccepted == 0) {
        pst_smtpc_tx_rset(cl);
        return;
    }

    pst_smtpc_tx_body_start(cl);
}


/* DATA (or a BDAT chunk) refused: the accepted recipients get it. */
static void
pst_smtpc_tx_data_failed(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    pst_smtp_reply_t       copy;
    pst_uint_t             i;

    if (pst_smtpc_copy_reply(cl, &copy, r) != PST_OK) {
        pst_smtpc_fail(cl, "out of memory");
        return;
    }

    tx->data_reply = copy;
    for (i = 0; i < tx->nrcpts; i++) {
        if (tx->rcpts[i].accepted) {
            tx->rcpts[i].reply = copy;
        }
    }
    cl->nfinal = cl->naccepted;

    if (cl->mail_ok) {
        pst_smtpc_tx_rset(cl);
    } else {
        pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
    }
}


static void
pst_smtpc_tx_rset(pst_smtp_client_t *cl)
{
    if (pst_smtpc_line(cl, (u_char *) "RSET", 4, PST_SMTPC_NOMASK)
        != PST_OK)
    {
        pst_smtpc_fail(cl, "out of memory");
        return;
    }

    cl->tx_state = PST_SMTPC_TX_RSET;
    pst_smtpc_expect(cl, cl->conf.mail_timeout, "RSET reply");
}


/* The reply after the message; LMTP: one per accepted recipient. */
static void
pst_smtpc_tx_final(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    pst_uint_t             i, n = 0;

    pst_smtpc_tx_set(cl, &tx->data_reply, r);

    for (i = 0; i < tx->nrcpts; i++) {
        if (!tx->rcpts[i].accepted) {
            continue;
        }
        if (!cl->conf.lmtp || n == cl->nfinal) {
            tx->rcpts[i].reply = tx->data_reply;
            if (cl->conf.lmtp) {
                break;
            }
        }
        n++;
    }

    cl->nfinal = cl->conf.lmtp ? cl->nfinal + 1 : cl->naccepted;

    if (cl->nfinal < cl->naccepted) {
        pst_smtpc_expect(cl, cl->conf.data_done_timeout,
                         "end of data reply");
        return;
    }

    pst_smtpc_finish(cl, PST_SMTPC_CB_DONE, PST_OK, NULL);
}


/* The session broke: whatever has no final reply gets code 0. */
void
pst_smtpc_tx_broken(pst_smtp_client_t *cl, const char *why)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    pst_smtp_reply_t       r;
    pst_uint_t             i, n = 0;

    pst_smtpc_local_reply(cl, &r, 0, "", why);

    if (tx->mail_reply.code == 0) {
        tx->mail_reply = r;
    }
    if (cl->nfinal < cl->naccepted || tx->data_reply.code == 0) {
        tx->data_reply = r;
    }

    for (i = 0; i < tx->nrcpts; i++) {
        if (tx->rcpts[i].accepted) {
            if (n++ >= cl->nfinal) {
                tx->rcpts[i].reply = r;
            }
        } else if (tx->rcpts[i].reply.code == 0) {
            tx->rcpts[i].reply = r;
        }
    }
}


/* ------------------------------------------------------------------ */
/* The message                                                         */

static void
pst_smtpc_tx_body_start(pst_smtp_client_t *cl)
{
    size_t  need = 2 * PST_SMTPC_CHUNK + 256;

    if (cl->fbuf == NULL) {
        cl->fbuf = malloc(PST_SMTPC_CHUNK);
    }

    if (cl->fbuf == NULL
        || (pst_buf_capacity(cl->out) < need
            && pst_buf_resize(cl->out, need) != PST_OK))
    {
        pst_smtpc_fail(cl, "out of memory");
        return;
    }

    cl->prepend_i = 0;
    cl->prepend_off = 0;
    cl->body_done = 0;
    cl->fpos = cl->fbuf;
    cl->fend = cl->fbuf;
    cl->body_end = 0;
    pst_smtp_stuff_init(&cl->stuff, !cl->bdat);

    if (cl->bdat) {
        pst_smtpc_tx_bdat(cl);
        return;
    }

    cl->tx_state = PST_SMTPC_TX_BODY;
    pst_smtpc_expect(cl, cl->conf.data_block_timeout, "the message to go");
}


/* Message bytes from the fd into fbuf + *n, up to body offset limit. */
static int
pst_smtpc_tx_pread(pst_smtp_client_t *cl, size_t *n, off_t limit)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    size_t                 k;
    ssize_t                r;

    while (*n < PST_SMTPC_CHUNK && cl->body_done < limit) {
        k = (size_t) pst_min((off_t) (PST_SMTPC_CHUNK - *n),
                             limit - cl->body_done);
        r = pread(tx->fd, cl->fbuf + *n, k, tx->offset + cl->body_done);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            pst_smtpc_fail(cl, r == 0 ? "the message file is shorter than "
                                        "its length"
                                      : "reading the message failed");
            return PST_ERROR;
        }
        *n += (size_t) r;
        cl->body_done += r;
    }
    return PST_OK;
}


/* Next piece of the message into fbuf: its first prepend_at bytes (the
 * trace block: Received lines stay on top, RFC 5321 4.4), the
 * prepended lines, then the rest of the message. */
static int
pst_smtpc_tx_read(pst_smtp_client_t *cl)
{
    pst_smtp_client_tx_t  *tx = cl->tx;
    const pst_str_t       *s;
    size_t                 n = 0, k;

    if (cl->prepend_i < tx->nprepend
        && pst_smtpc_tx_pread(cl, &n, pst_min(tx->prepend_at, tx->length))
           != PST_OK)
    {
        return PST_ERROR;
    }

    while (n < PST_SMTPC_CHUNK && cl->prepend_i < tx->nprepend) {
        s = &tx->prepend[cl->prepend_i];
        k = pst_min(s->len - cl->prepend_off, PST_SMTPC_CHUNK - n);
        memcpy(cl->fbuf + n, s->data + cl->prepend_off, k);
        n += k;
        cl->prepend_off += k;
        if (cl->prepend_off == s->len) {
            cl->prepend_i++;
            cl->prepend_off = 0;
        }
    }

    if (cl->prepend_i == tx->nprepend
        && pst_smtpc_tx_pread(cl, &n, tx->length) != PST_OK)
    {
        return PST_ERROR;
    }

    cl->fpos = cl->fbuf;
    cl->fend = cl->fbuf + n;
    cl->body_end = cl->prepend_i == tx->nprepend
                   && cl->body_done == tx->length;

    return PST_OK;
}


int
pst_smtpc_tx_fill(pst_smtp_client_t *cl)
{
    pst_buf_t  *out = cl->out;
    size_t      n;

    while (pst_buf_free(out) >= 8) {
        if (cl->fpos == cl->fend) {
            if (cl->body_end) {
                n = pst_smtp_stuff_end(&cl->stuff, out->last);
                out->last += n;
                pst_smtpc_queued(cl, n);
                if (pst_smtpc_due(cl, cl->conf.lmtp ? cl->naccepted : 1)
                    != PST_OK)
                {
                    pst_smtpc_fail(cl, "too many replies due");
                    return PST_ERROR;
                }
                cl->tx_state = PST_SMTPC_TX_DOT;
                pst_smtpc_expect(cl, cl->conf.data_done_timeout,
                                 "end of data reply");
                return PST_DONE;
            }
            if (pst_smtpc_tx_read(cl) != PST_OK) {
                return PST_ERROR;
            }
            continue;
        }

        n = pst_smtp_stuff(&cl->stuff, &cl->fpos, cl->fend, out->last,
                           pst_buf_free(out) - 5);
        out->last += n;
        pst_smtpc_queued(cl, n);
    }

    return PST_OK;
}


/* Queue one chunk "BDAT n [LAST]" with its bytes (RFC 3030). */
static void
pst_smtpc_tx_bdat(pst_smtp_client_t *cl)
{
    pst_buf_t  *out = cl->out;
    u_char     *data, line[64];
    size_t      m;
    int         n;

    pst_buf_compact(out);

    if (pst_smtpc_tx_read(cl) != PST_OK) {
        return;
    }

    /* normalised into the free space behind room for the command */
    data = out->last + sizeof(line);
    m = pst_smtp_stuff(&cl->stuff, &cl->fpos, cl->fend, data,
                       (size_t) (out->end - data) - 8);
    if (cl->fpos != cl->fend) {
        pst_smtpc_fail(cl, "BDAT chunk does not fit");
        return;
    }

    if (cl->body_end) {
        m += pst_smtp_stuff_end(&cl->stuff, data + m);
    }

    n = snprintf((char *) line, sizeof(line), "BDAT %zu%s", m,
                 cl->body_end ? " LAST" : "");

    memmove(out->last + n + 2, data, m);
    cl->bdat_last = cl->body_end;

    /* LMTP: after BDAT LAST one reply per accepted recipient */
    if (pst_smtpc_line(cl, line, (size_t) n, PST_SMTPC_NOMASK) != PST_OK
        || (cl->bdat_last && cl->conf.lmtp && cl->naccepted > 1
            && pst_smtpc_due(cl, cl->naccepted - 1) != PST_OK))
    {
        pst_smtpc_fail(cl, "out of memory");
        return;
    }
    out->last += m;
    pst_smtpc_queued(cl, m);

    cl->tx_state = PST_SMTPC_TX_BDAT;
    pst_smtpc_expect(cl, cl->bdat_last ? cl->conf.data_done_timeout
                                       : cl->conf.data_block_timeout,
                     "BDAT reply");
}
