/*
 * pst_smtp_cmd.c -- the SMTP commands of a session: transactions, and
 * one handler per command of the table in pst_smtp_session.c (HELO/EHLO,
 * MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT, HELP, VRFY, EXPN; STARTTLS,
 * AUTH and XCLIENT have their own files).  A handler checks state,
 * syntax and limits, then runs the command's phase (pst_smtp_run());
 * the phase's done-callback writes the reply.
 */

#include "pst_smtp.h"
#include "pst_event.h"
#include "pst_spool.h"

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

int
pst_smtp_new_tx(pst_session_t *s)
{
    pst_smtp_tx_t  *tx;
    pst_pool_t     *pool;

    pool = pst_create_pool(2048);
    if (pool == NULL) {
        return PST_ERROR;
    }

    tx = pst_pcalloc(pool, sizeof(pst_smtp_tx_t));
    if (tx == NULL) {
        pst_destroy_pool(pool);
        return PST_ERROR;
    }

    tx->pool = pool;
    tx->start = pst_current_time_sec;
    pst_spool_new_id(tx->id_data);
    tx->id.data = tx->id_data;
    tx->id.len = PST_QUEUE_ID_LEN;

    tx->rcpts.elts = pst_palloc(pool, 4 * sizeof(pst_smtp_rcpt_t));
    if (tx->rcpts.elts == NULL) {
        pst_destroy_pool(pool);
        return PST_ERROR;
    }
    tx->rcpts.size = sizeof(pst_smtp_rcpt_t);
    tx->rcpts.nalloc = 4;
    tx->rcpts.pool = pool;

    s->tx = tx;
    return PST_OK;
}


void
pst_smtp_tx_free(pst_session_t *s)
{
    pst_smtp_tx_t  *tx = s->tx;

    if (tx == NULL) {
        return;
    }

    pst_smtp_tx_abort(s);
    pst_buf_destroy(tx->wbuf);
    pst_buf_destroy(tx->data.hdr);
    s->tx = NULL;
    pst_destroy_pool(tx->pool);
}


/* ------------------------------------------------------------------ */
/* Commands                                                            */

static int
pst_smtp_no_args(pst_session_t *s, const char *syntax)
{
    if (s->arg.len != 0) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: %s", syntax);
        return 0;
    }
    return 1;
}


static void
pst_smtp_helo_done(pst_session_t *s, pst_verdict_e v)
{
    pst_smtp_srv_conf_t  *conf = s->conf;
    char                  buf[1024];
    int                   n;

    if (pst_smtp_verdict_reply(s, v) != 0) {
        s->helo.len = 0;
        s->helo.data = NULL;
        s->helo_seen = 0;
        s->esmtp = 0;
        pst_smtp_after_phase(s);
        return;
    }

    s->helo_seen = 1;

    if (s->cmd == PST_SMTP_CMD_HELO) {
        s->esmtp = 0;
        pst_smtp_reply(s, 250, NULL, "%.*s", (int) conf->hostname.len,
                       conf->hostname.data);
        pst_smtp_after_phase(s);
        return;
    }

    s->esmtp = 1;

    n = snprintf(buf, sizeof(buf), "250-%.*s\r\n",
                 (int) conf->hostname.len, conf->hostname.data);
    if (conf->pipelining) {
        n += snprintf(buf + n, sizeof(buf) - n, "250-PIPELINING\r\n");
    }
    n += snprintf(buf + n, sizeof(buf) - n, "250-SIZE %zu\r\n",
                  conf->message_size_limit);
    n += snprintf(buf + n, sizeof(buf) - n, "250-8BITMIME\r\n");
    n += snprintf(buf + n, sizeof(buf) - n, "250-ENHANCEDSTATUSCODES\r\n");
    n += (int) pst_smtp_tls_ehlo(s, buf + n, sizeof(buf) - n);
    n += (int) pst_smtp_auth_ehlo(s, buf + n, sizeof(buf) - n);
    n += (int) pst_smtp_xclient_ehlo(s, buf + n, sizeof(buf) - n);
    n += (int) pst_smtp_node_ehlo(s, buf + n, sizeof(buf) - n);
    if (conf->smtputf8) {
        n += snprintf(buf + n, sizeof(buf) - n, "250-SMTPUTF8\r\n");
    }
    if (conf->dsn) {
        n += snprintf(buf + n, sizeof(buf) - n, "250-DSN\r\n");
    }
    if (conf->chunking) {
        n += snprintf(buf + n, sizeof(buf) - n, "250-CHUNKING\r\n");
    }
    if (conf->requiretls && s->tls_facts != NULL) {
        /* RFC 8689 2: only over TLS */
        n += snprintf(buf + n, sizeof(buf) - n, "250-REQUIRETLS\r\n");
    }
    n += snprintf(buf + n, sizeof(buf) - n, "250 HELP\r\n");

    pst_smtp_reply_raw(s, buf, (size_t) n);
    pst_smtp_after_phase(s);
}


void
pst_smtp_cmd_helo(pst_session_t *s)
{
    const char  *verb = s->cmd == PST_SMTP_CMD_HELO ? "HELO" : "EHLO";
    u_char      *p;
    size_t       i;

    if (s->arg.len == 0) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: %s hostname", verb);
        return;
    }

    if (s->arg.len > PST_SMTP_DOMAIN_MAX) {
        pst_smtp_reply(s, 501, "5.5.4", "Error: %s argument too long", verb);
        return;
    }

    for (i = 0; i < s->arg.len; i++) {
        if (s->arg.data[i] < 0x21 || s->arg.data[i] == 0x7f) {
            if (s->arg.data[i] == ' ') {
                /* "EHLO name trailing words": keep the first word */
                s->arg.len = i;
                break;
            }
            pst_smtp_reply(s, 501, "5.5.4", "Error: invalid %s argument",
                           verb);
            return;
        }
    }

    /* EHLO is also an implicit RSET (RFC 5321 4.1.4) */
    pst_smtp_tx_free(s);

    p = pst_palloc(s->pool, s->arg.len + 1);
    if (p == NULL) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    memcpy(p, s->arg.data, s->arg.len);
    p[s->arg.len] = '\0';
    s->helo.data = p;
    s->helo.len = s->arg.len;

    pst_smtp_run(s, PST_PHASE_HELO, pst_smtp_helo_done);
}


static void
pst_smtp_mail_done(pst_session_t *s, pst_verdict_e v)
{
    /* a failure, or "250 2.1.0" */
    if (pst_smtp_verdict_reply(s, v) != 0) {
        pst_smtp_tx_free(s);
        pst_smtp_after_phase(s);
        return;
    }

    s->messages++;
    s->junk = 0;
    pst_smtp_after_phase(s);
}


static int
pst_smtp_prefix(pst_session_t *s, const char *prefix, size_t n)
{
    if (s->arg.len < n
        || pst_strncasecmp(s->arg.data, (u_char *) prefix, n) != 0)
    {
        return 0;
    }
    s->arg.data += n;
    s->arg.len -= n;
    /* tolerated: "MAIL FROM: <a@b>" */
    while (s->arg.len > 0 && s->arg.data[0] == ' ') {
        s->arg.data++;
        s->arg.len--;
    }
    return 1;
}


/* The MAIL or RCPT parameters as sent, for the phase's hooks
 * (pst_call_params()): a copy in the transaction's pool, since the
 * input buffer moves on. */
static int
pst_smtp_keep_params(pst_session_t *s, const u_char *p, const u_char *end)
{
    while (p < end && *p == ' ') {
        p++;
    }
    s->cmd_params.len = (size_t) (end - p);
    s->cmd_params.data = NULL;
    if (s->cmd_params.len == 0) {
        return PST_OK;
    }
    s->cmd_params.data = pst_palloc(s->tx->pool, s->cmd_params.len + 1);
    if (s->cmd_params.data == NULL) {
        s->cmd_params.len = 0;
        return PST_ERROR;
    }
    memcpy(s->cmd_params.data, p, s->cmd_params.len);
    s->cmd_params.data[s->cmd_params.len] = '\0';
    return PST_OK;
}


void
pst_smtp_cmd_mail(pst_session_t *s)
{
    pst_smtp_srv_conf_t  *conf = s->conf;
    pst_smtp_error_t      err;
    pst_smtp_path_t       path;
    pst_smtp_params_t     prm;
    u_char               *p, *end;

    if (!s->helo_seen) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }

    if (s->tx != NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
        return;
    }

    /* tls_required, and AUTH on submission listeners (530) */
    if (pst_smtp_auth_mail_check(s) != PST_OK) {
        return;
    }

    if (conf->max_messages > 0
        && s->messages >= (pst_uint_t) conf->max_messages)
    {
        pst_smtp_reply(s, 452, "4.5.3", "Error: too many messages in this"
                       " session");
        return;
    }

    if (!pst_smtp_prefix(s, "FROM:", 5)) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
        return;
    }

    if (pst_smtp_new_tx(s) != PST_OK) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return;
    }

    p = s->arg.data;
    end = p + s->arg.len;
    err.code = 0;       /* still 0 when the path parses and junk follows */

    if (pst_smtp_parse_path(s->tx->pool, &p, end, 1, 1, &path, &err)
        != PST_OK
        || (p < end && *p != ' ')
        || pst_smtp_parse_params(s->tx->pool, p, end, 1, &prm, &err)
           != PST_OK)
    {
        if (p < end && *p != ' ' && err.code == 0) {
            err.code = 501;
            err.ecode = "5.5.4";
            err.text = "Syntax: MAIL FROM:<address> [parameters]";
        }
        pst_smtp_reply(s, err.code, err.ecode, "%s", err.text);
        pst_smtp_tx_free(s);
        return;
    }

    if (!s->esmtp && (prm.size >= 0 || prm.body || prm.smtputf8 || prm.ret
                      || prm.envid.data || prm.auth.data || prm.requiretls))
    {
        pst_smtp_reply(s, 555, "5.5.4", "Error: parameters need EHLO");
        pst_smtp_tx_free(s);
        return;
    }

    if ((prm.smtputf8 && !conf->smtputf8)
        || ((prm.ret || prm.envid.data) && !conf->dsn)
        || (prm.requiretls && (!conf->requiretls || s->tls_facts == NULL))
        || pst_smtp_node_mail(s, &prm) != PST_OK)
    {
        pst_smtp_reply(s, 555, "5.5.4", "Error: unsupported parameter");
        pst_smtp_tx_free(s);
        return;
    }

    if (path.utf8 && !prm.smtputf8) {
        pst_smtp_reply(s, 553, "5.6.7", "Error: non-ASCII address needs"
                       " SMTPUTF8");
        pst_smtp_tx_free(s);
        return;
    }

    if (prm.size > 0 && (uint64_t) prm.size > conf->message_size_limit) {
        pst_smtp_reply(s, 552, "5.3.4", "Error: message size exceeds fixed"
                       " limit");
        pst_smtp_tx_free(s);
        return;
    }

    s->tx->sender = path.addr;
    s->tx->params = prm;
    s->path = path;
    pst_smtp_auth_mail_param(s);

    if (pst_smtp_keep_params(s, p, end) != PST_OK) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        pst_smtp_tx_free(s);
        return;
    }
    pst_smtp_run(s, PST_PHASE_MAIL, pst_smtp_mail_done);
}


/*
 * The same mailbox with the same DSN request is stored once (RFC 5321
 * 3.3 lets a server drop duplicates; Postfix's cleanup does).  The
 * parser has lowercased the domain, the local part compares exactly.
 */
static pst_smtp_rcpt_t *
pst_smtp_rcpt_find(pst_smtp_tx_t *tx, pst_smtp_path_t *path,
    pst_smtp_params_t *prm)
{
    pst_uint_t        i;
    pst_smtp_rcpt_t  *r;

    r = tx->rcpts.elts;

    for (i = 0; i < tx->rcpts.nelts; i++) {
        if (r[i].addr.len != path->addr.len
            || r[i].notify != prm->notify
            || r[i].orcpt.len != prm->orcpt.len
            || r[i].orcpt_type.len != prm->orcpt_type.len
            || memcmp(r[i].addr.data, path->addr.data, path->addr.len) != 0
            || (prm->orcpt.len
                && memcmp(r[i].orcpt.data, prm->orcpt.data,
                          prm->orcpt.len) != 0)
            || (prm->orcpt_type.len
                && memcmp(r[i].orcpt_type.data, prm->orcpt_type.data,
                          prm->orcpt_type.len) != 0))
        {
            continue;
        }
        return &r[i];
    }

    return NULL;
}


static void
pst_smtp_rcpt_done(pst_session_t *s, pst_verdict_e v)
{
    pst_smtp_rcpt_t  *r;

    if (v == PST_HOOK_CONTINUE && s->tx->params.node) {
        v = PST_HOOK_ACCEPT;        /* a node's queue held it already */
    }

    if (v == PST_HOOK_CONTINUE) {
        /* nobody accepted this recipient: never an open relay */
        pst_smtp_reply(s, 550, "5.7.1", "<%.*s>: Relay access denied",
                       (int) s->path.addr.len, s->path.addr.data);
        pst_smtp_after_phase(s);
        return;
    }

    if (v != PST_HOOK_ACCEPT) {
        (void) pst_smtp_verdict_reply(s, v);
        pst_smtp_after_phase(s);
        return;
    }

    /* duplicates count against max_recipients all the same */
    s->tx->rcpt_accepted++;

    if (pst_smtp_rcpt_find(s->tx, &s->path, &s->params) != NULL) {
        (void) pst_smtp_verdict_reply(s, v);        /* 250 2.1.5 */
        pst_smtp_after_phase(s);
        return;
    }

    r = pst_array_push(&s->tx->rcpts);
    if (r == NULL) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        pst_smtp_after_phase(s);
        return;
    }

    r->addr = s->path.addr;
    r->notify = s->params.notify;
    r->orcpt_type = s->params.orcpt_type;
    r->orcpt = s->params.orcpt;
    pst_smtp_node_keep(r, &s->params);

    (void) pst_smtp_verdict_reply(s, v);            /* 250 2.1.5 */
    pst_smtp_after_phase(s);
}


void
pst_smtp_cmd_rcpt(pst_session_t *s)
{
    pst_smtp_srv_conf_t  *conf = s->conf;
    pst_smtp_error_t      err;
    u_char               *p, *end;

    if (s->tx == NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }

    if (s->tx->data_started) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: RCPT after BDAT");
        return;
    }

    if (!pst_smtp_prefix(s, "TO:", 3)) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
        return;
    }

    if (conf->max_recipients > 0
        && s->tx->rcpt_accepted >= (pst_uint_t) conf->max_recipients)
    {
        /* RFC 5321 4.5.3.1.10: the client goes on with the recipients
         * accepted so far, so these are not errors (up to a cap) */
        pst_smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
        if (++s->tx->rcpt_overflows
            <= (pst_uint_t) conf->max_rcpt_overflows)
        {
            s->errors--;
        }
        return;
    }

    p = s->arg.data;
    end = p + s->arg.len;

    if (pst_smtp_parse_path(s->tx->pool, &p, end, 0, s->tx->params.smtputf8,
                            &s->path, &err) != PST_OK)
    {
        pst_smtp_reply(s, err.code, err.ecode, "%s", err.text);
        return;
    }

    if (p < end && *p != ' ') {
        pst_smtp_reply(s, 501, "5.5.4",
                       "Syntax: RCPT TO:<address> [parameters]");
        return;
    }

    if (pst_smtp_parse_params(s->tx->pool, p, end, 0, &s->params, &err)
        != PST_OK)
    {
        pst_smtp_reply(s, err.code, err.ecode, "%s", err.text);
        return;
    }

    if (((s->params.notify || s->params.orcpt.data) && !conf->dsn)
        || pst_smtp_node_rcpt(s, &s->params) != PST_OK)
    {
        pst_smtp_reply(s, 555, "5.5.4", "Error: unsupported parameter");
        return;
    }

    if (pst_smtp_keep_params(s, p, end) != PST_OK) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    pst_smtp_run(s, PST_PHASE_RCPT, pst_smtp_rcpt_done);
}


static int
pst_smtp_data_check(pst_session_t *s)
{
    if (s->tx == NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: need MAIL command");
        return 0;
    }

    if (s->tx->rcpts.nelts == 0) {
        pst_smtp_reply(s, 554, "5.5.1", "Error: no valid recipients");
        return 0;
    }

    if (s->server->store == NULL) {
        pst_smtp_reply(s, 451, "4.3.5", "Error: no mail store configured");
        return 0;
    }

    return 1;
}


static void
pst_smtp_data_done(pst_session_t *s, pst_verdict_e v)
{
    if (pst_smtp_verdict_reply(s, v) != 0) {
        if (s->tx->bdat && s->state != PST_SMTP_S_CLOSING) {
            /* the chunk still has to be read and thrown away */
            s->tx->failed = 1;
            pst_smtp_enter_state(s, PST_SMTP_S_BDAT);
        } else {
            pst_smtp_tx_free(s);
            pst_smtp_after_phase(s);
        }
        pst_smtp_continue(s);
        return;
    }

    if (s->tx->bdat) {
        pst_smtp_bdat_start(s, s->tx->bdat_left, s->tx->bdat_last);
    } else {
        pst_smtp_data_start(s);
    }

    pst_smtp_continue(s);
}


void
pst_smtp_cmd_data(pst_session_t *s)
{
    if (!pst_smtp_no_args(s, "DATA")) {
        return;
    }

    if (s->tx != NULL && s->tx->bdat) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
        return;
    }

    if (!pst_smtp_data_check(s)) {
        return;
    }

    pst_smtp_run(s, PST_PHASE_DATA, pst_smtp_data_done);
}


void
pst_smtp_cmd_bdat(pst_session_t *s)
{
    u_char   *p, *end, *num;
    int64_t   size;
    int       last = 0;

    p = s->arg.data;
    end = p + s->arg.len;
    num = p;
    while (p < end && *p != ' ') {
        p++;
    }
    size = pst_atoi(num, (size_t) (p - num), INT64_MAX / 2);
    while (p < end && *p == ' ') {
        p++;
    }
    if (p < end) {
        if (end - p == 4 && pst_strncasecmp(p, (u_char *) "LAST", 4) == 0) {
            last = 1;
        } else {
            size = -1;
        }
    }

    if (size < 0 || !s->conf->chunking) {
        /* the chunk length is unknown: the stream cannot be resynced;
         * a server that closes says 421 (RFC 5321 3.8) */
        pst_smtp_reply(s, 421, s->conf->chunking ? "4.5.4" : "4.5.1",
                       "Error: %s, closing", s->conf->chunking
                       ? "invalid BDAT syntax" : "CHUNKING not offered");
        pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
        return;
    }

    if (s->tx != NULL && s->tx->data_started && s->tx->bdat) {
        /* a following chunk of a running BDAT transfer */
        pst_smtp_bdat_start(s, (off_t) size, last);
        return;
    }

    if (s->tx == NULL || s->tx->rcpts.nelts == 0
        || s->server->store == NULL)
    {
        (void) pst_smtp_data_check(s);
        /* throw the chunk away; the transaction (if any) fails */
        pst_smtp_tx_free(s);
        if (pst_smtp_new_tx(s) != PST_OK) {
            pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
            return;
        }
        s->tx->bdat = 1;
        s->tx->failed = 1;
        s->tx->data_started = 1;
        s->tx->bdat_left = (off_t) size;
        s->tx->bdat_last = 1;
        pst_smtp_enter_state(s, PST_SMTP_S_BDAT);
        return;
    }

    s->tx->bdat = 1;
    s->tx->bdat_left = (off_t) size;
    s->tx->bdat_last = last;

    pst_smtp_run(s, PST_PHASE_DATA, pst_smtp_data_done);
}


void
pst_smtp_cmd_rset(pst_session_t *s)
{
    if (!pst_smtp_no_args(s, "RSET")) {
        return;
    }
    pst_smtp_tx_free(s);
    pst_smtp_reply(s, 250, "2.0.0", "Ok");
}


void
pst_smtp_cmd_noop(pst_session_t *s)
{
    /* RFC 5321 4.1.1.9: an argument is allowed and ignored */
    pst_smtp_reply(s, 250, "2.0.0", "Ok");
}


void
pst_smtp_cmd_quit(pst_session_t *s)
{
    if (!pst_smtp_no_args(s, "QUIT")) {
        return;
    }
    pst_smtp_reply(s, 221, "2.0.0", "Bye");
    s->quit = 1;
    pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
}


void
pst_smtp_cmd_help(pst_session_t *s)
{
    static const char  help[] = "214-2.0.0 Commands: HELO EHLO MAIL RCPT"
                                " DATA BDAT RSET NOOP QUIT HELP VRFY\r\n"
                                "214 2.0.0 See RFC 5321\r\n";

    pst_smtp_reply_raw(s, help, sizeof(help) - 1);
}


void
pst_smtp_cmd_vrfy(pst_session_t *s)
{
    if (s->arg.len == 0) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return;
    }
    /* RFC 5321 7.3: never a user list */
    pst_smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept"
                   " message and attempt delivery");
}


void
pst_smtp_cmd_expn(pst_session_t *s)
{
    pst_smtp_reply(s, 502, "5.5.1", "Error: EXPN not supported");
}


/* A command we do not know: 500 -- unless modules hook it (a milter's
 * SMFIC_UNKNOWN), whose REJECT or TEMPFAIL then answers instead. */
static void
pst_smtp_unknown_done(pst_session_t *s, pst_verdict_e v)
{
    s->unknown.len = 0;
    s->unknown.data = NULL;
    if (pst_smtp_verdict_reply(s, v) == 0) {
        pst_smtp_reply(s, 500, "5.5.2", "Error: command not recognized");
    }
    pst_smtp_after_phase(s);
}


void
pst_smtp_cmd_unknown(pst_session_t *s, pst_str_t *line)
{
    if (s->server->chains[PST_PHASE_UNKNOWN].nelts == 0 || s->rejected) {
        pst_smtp_reply(s, 500, "5.5.2", "Error: command not recognized");
        return;
    }

    /* the line lives in the input buffer, which moves on: a copy (bounded
     * by the line length; every unknown command counts as an error) */
    s->unknown.data = pst_palloc(s->pool, line->len + 1);
    if (s->unknown.data == NULL) {
        pst_smtp_reply(s, 451, "4.3.0", "Error: out of memory");
        return;
    }
    memcpy(s->unknown.data, line->data, line->len);
    s->unknown.data[line->len] = '\0';
    s->unknown.len = line->len;
    s->cmd = PST_SMTP_CMD_UNKNOWN;
    pst_smtp_run(s, PST_PHASE_UNKNOWN, pst_smtp_unknown_done);
}
