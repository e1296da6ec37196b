/*
 * pst_send_smtp.c -- one SMTP session of postern-send on the core's
 * outbound client (pst_smtp_client.h), driven by the core event loop.
 *
 *   resolve --server, build the TLS context, read the password
 *   open -> ready: recompose 7-bit if the server lacks 8BITMIME (the
 *     body) or SMTPUTF8 (a header with 8-bit octets)
 *     -> VRFY/EXPN one by one -> (--stop-on-rcpt-error: MAIL/RCPT
 *     probe, RSET) -> the transaction -> QUIT
 *
 * Results are collected in pst_send_run_t and printed by
 * pst_send_result.c; the exit code follows the worst outcome.
 */

#include "pst_send_run.h"

#include <netdb.h>

static int pst_send_loop_ready;

static int pst_send_resolve(pst_send_run_t *r);
static int pst_send_tls_ctx(pst_send_run_t *r);
static int pst_send_open(pst_send_run_t *r);
static void pst_send_ready(pst_smtp_client_t *cl, void *data, int rc,
    const pst_smtp_reply_t *rep);
static void pst_send_next(pst_send_run_t *r);
static int pst_send_start_tx(pst_send_run_t *r);
static void pst_send_tx_done(pst_smtp_client_t *cl,
    pst_smtp_client_tx_t *tx, void *data, int rc);
static void pst_send_trail(void *data, int outgoing, const u_char *line,
    size_t len);
static void pst_send_finish_run(pst_send_run_t *r, int code);
static int pst_send_downgrade(pst_send_run_t *r);
static void pst_send_mail_params(pst_send_run_t *r);
static int pst_send_params(pst_send_run_t *r);
static int pst_send_setup(pst_send_run_t *r);
static void pst_send_probe_reply(pst_send_run_t *r,
    const pst_smtp_reply_t *rep);
static int pst_send_rset_reply(pst_send_run_t *r);


void
pst_send_reply_copy(pst_send_reply_t *d, const pst_smtp_reply_t *s)
{
    u_char  *p;

    d->code = s->code;
    snprintf(d->ecode, sizeof(d->ecode), "%s", s->ecode);
    snprintf(d->text, sizeof(d->text), "%.*s", (int) s->text.len,
             s->text.data ? (char *) s->text.data : "");
    /* a server's text reaches terminals and the queue's files: no
     * control characters but the line breaks of multi-line replies */
    for (p = (u_char *) d->text; *p; p++) {
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f) {
            *p = '?';
        }
    }
}


/* "host", "host:port", "[v6]:port", "v6" -> host and port strings. */
int
pst_send_split_server(const char *s, char *host, size_t hsize, char *port,
    size_t psize, const char *defport)
{
    const char  *colon, *end;

    if (*s == '[') {
        end = strchr(s, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            return PST_ERROR;
        }
        snprintf(host, hsize, "%.*s", (int) (end - s - 1), s + 1);
        snprintf(port, psize, "%s", end[1] == ':' ? end + 2 : defport);
    } else {
        colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            snprintf(host, hsize, "%.*s", (int) (colon - s), s);
            snprintf(port, psize, "%s", colon + 1);
        } else {
            /* no port, or a bare IPv6 literal */
            snprintf(host, hsize, "%s", s);
            snprintf(port, psize, "%s", defport);
        }
    }
    return *host != '\0' && *port != '\0'
           && strspn(port, "0123456789") == strlen(port) ? PST_OK
                                                          : PST_ERROR;
}


static int
pst_send_resolve(pst_send_run_t *r)
{
    struct addrinfo  hints;
    const char      *defport;
    int              rc;

    defport = r->o->tls == PST_SEND_TLS_IMPLICIT ? "465" : "25";
    if (pst_send_split_server(r->o->server ? r->o->server : "localhost",
                              r->host, sizeof(r->host), r->port,
                              sizeof(r->port), defport) != PST_OK)
    {
        pst_send_err("--server: HOST[:PORT] or "
                "[IPv6]:PORT\n");
        return PST_SEND_USAGE;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(r->host, r->port, &hints, &r->ai);
    if (rc != 0) {
        hints.ai_flags = 0;
        rc = getaddrinfo(r->host, r->port, &hints, &r->ai);
    }
    if (rc != 0) {
        pst_send_err("%s: %s\n", r->host, gai_strerror(rc));
        return PST_SEND_NOHOST;
    }
    r->cur = r->ai;

    if (r->o->local_address != NULL) {
        struct addrinfo  *la;

        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
        if (getaddrinfo(r->o->local_address, NULL, &hints, &la) != 0) {
            pst_send_err("--local-address: not an IP "
                    "address: %s\n", r->o->local_address);
            return PST_SEND_USAGE;
        }
        memcpy(&r->local, la->ai_addr, la->ai_addrlen);
        r->local_len = la->ai_addrlen;
        freeaddrinfo(la);
    }
    return PST_OK;
}


static int
pst_send_tls_ctx(pst_send_run_t *r)
{
    pst_ssl_client_conf_t  sc;
    char                   err[512];

    if (r->o->tls == PST_SEND_TLS_NONE) {
        return PST_OK;
    }

    memset(&sc, 0, sizeof(sc));
    sc.verify = r->o->insecure ? PST_SSL_VERIFY_NONE : PST_SSL_VERIFY_PEER;
#define PST_SET(field, v)                                                    \
    if ((v) != NULL) {                                                       \
        sc.field.data = (u_char *) (v);                                      \
        sc.field.len = strlen(v);                                            \
    }
    PST_SET(ca_file, r->o->ca_file);
    PST_SET(ca_path, r->o->ca_dir);
    PST_SET(certificate, r->o->cert);
    PST_SET(key, r->o->key);
#undef PST_SET

    r->ctx = pst_ssl_client_ctx(r->pool, &sc, err, sizeof(err));
    if (r->ctx == NULL) {
        pst_send_err("TLS: %s\n", err);
        return PST_SEND_USAGE;
    }
    return PST_OK;
}


static int
pst_send_open(pst_send_run_t *r)
{
    pst_smtp_client_conf_t  cf;
    const pst_send_opts_t  *o = r->o;

    memset(&cf, 0, sizeof(cf));
    cf.helo_name = o->helo ? o->helo : r->helo;
    cf.ssl_ctx = r->ctx;
    cf.tls_name = o->tls_name ? o->tls_name : r->host;
    switch (o->tls) {
    case PST_SEND_TLS_NONE:
        cf.tls = PST_SMTPC_TLS_NONE;
        break;
    case PST_SEND_TLS_IMPLICIT:
        cf.tls = PST_SMTPC_TLS_IMPLICIT;
        break;
    default:
        if (o->tls == PST_SEND_TLS_STARTTLS || o->tls_required) {
            cf.tls = o->insecure ? PST_SMTPC_TLS_ENCRYPT
                                 : PST_SMTPC_TLS_VERIFY;
        } else {
            cf.tls = PST_SMTPC_TLS_MAY;
        }
    }
    if (r->local_len > 0) {
        cf.local = (struct sockaddr *) &r->local;
        cf.local_len = r->local_len;
    }
    cf.connect_timeout = o->connect_timeout ? o->connect_timeout
                                            : o->timeout;
    cf.greeting_timeout = cf.helo_timeout = cf.mail_timeout =
        cf.rcpt_timeout = cf.data_init_timeout = cf.data_block_timeout =
        cf.data_done_timeout = o->timeout;
    r->xoauth = o->auth != NULL && strcasecmp(o->auth, "XOAUTH2") == 0;
    cf.auth_mech = r->xoauth ? NULL : o->auth;
    cf.auth_user = o->user;
    cf.auth_pass = r->pass;
    if (o->verbose) {
        cf.trail = pst_send_trail;
        cf.trail_data = r;
    }

    if (o->verbose) {
        pst_send_err("connecting to %s port %s\n",
                r->host, r->port);
    }
    r->cl = pst_smtp_client_open(&cf, r->cur->ai_addr, r->cur->ai_addrlen,
                                 pst_send_ready, r);
    if (r->cl == NULL) {
        pst_send_err("cannot set up the connection\n");
        return PST_SEND_IOERR;
    }
    return PST_OK;
}


static void
pst_send_trail(void *data, int outgoing, const u_char *line, size_t len)
{
    (void) data;
    if (outgoing && len > 13 && strncasecmp((char *) line, "AUTH XOAUTH2 ",
                                            13) == 0)
    {
        /* the token: the client does not know to mask it */
        fprintf(stderr, "C: AUTH XOAUTH2 ********\n");
        return;
    }
    fprintf(stderr, "%s %.*s\n", outgoing ? "C:" : "S:", (int) len, line);
}


static void
pst_send_ready(pst_smtp_client_t *cl, void *data, int rc,
    const pst_smtp_reply_t *rep)
{
    pst_send_run_t  *r = data;

    if (rc != PST_OK) {
        pst_send_reply_copy(&r->fail, rep);
        pst_smtp_client_abort(cl);
        r->cl = NULL;
        /* rep was the client's: gone with it; r->fail has the copy.
         * Nothing was sent yet: the next address may do better. */
        if (r->fail.code == 0 && r->cur->ai_next != NULL) {
            if (r->o->verbose) {
                pst_send_err("%s\n", r->fail.text);
            }
            r->cur = r->cur->ai_next;
            if (pst_send_open(r) == PST_OK) {
                return;
            }
        }
        pst_send_finish_run(r, pst_send_exit_for(r->fail.code, 1));
        return;
    }

    r->job->connected = 1;
    snprintf(r->peer, sizeof(r->peer), "%s", pst_smtp_client_peer(cl));
    r->tls = pst_smtp_client_tls(cl);
    r->tls_verified = pst_smtp_client_tls_verified(cl);

    if (r->job->msg != NULL && pst_send_downgrade(r) != PST_OK) {
        return;
    }

    pst_send_next(r);
}


/*
 * What the server lacks, the message is made without: its 8-bit text
 * quoted-printable without 8BITMIME (RFC 6152), its 8-bit header
 * fields RFC 2047 words without SMTPUTF8 (RFC 6532 3: only with it may
 * a header hold UTF-8), or, when a field cannot be, nothing is sent
 * (65).  With SMTPUTF8 such a header goes as it is, with the parameter.
 */
static int
pst_send_downgrade(pst_send_run_t *r)
{
    pst_send_env_t  *env = r->job->env;
    unsigned         caps = pst_smtp_client_caps(r->cl), what = 0;
    int              rc;

    if (env->eightbit && !(caps & PST_SMTP_CAP_8BITMIME)) {
        what |= PST_SEND_RAW_7BIT;
    }
    if (env->hdr8 && (caps & PST_SMTP_CAP_SMTPUTF8)) {
        env->smtputf8 = 1;
    } else if (env->hdr8) {
        what |= PST_SEND_RAW_HDR7;
    }
    if (what == 0 || r->job->recompose == NULL) {
        return PST_OK;
    }
    if (r->o->verbose) {
        pst_send_err("no %s: the message goes 7-bit\n",
                     (what & PST_SEND_RAW_HDR7) ? "SMTPUTF8" : "8BITMIME");
    }
    rc = r->job->recompose(r->job->recompose_data, r->job->msg, what,
                           r->fail.text, sizeof(r->fail.text));
    if (rc != PST_OK) {
        pst_send_finish_run(r, rc == PST_ERROR ? PST_SEND_IOERR : rc);
        return PST_ERROR;
    }
    return PST_OK;
}


/* The next step after the session is ready: a VRFY or EXPN, the probe
 * of --stop-on-rcpt-error, or the transaction. */
static void
pst_send_next(pst_send_run_t *r)
{
    char  line[1100];

    if (r->xoauth && !r->xoauth_done) {
        if (pst_send_xoauth_start(r) != PST_OK) {
            pst_send_finish_run(r, PST_SEND_NOPERM);
        }
        return;
    }
    if (r->vi < r->o->verify.n || r->ei < r->o->expand.n) {
        if (r->vi < r->o->verify.n) {
            snprintf(line, sizeof(line), "VRFY %s", r->o->verify.v[r->vi]);
        } else {
            snprintf(line, sizeof(line), "EXPN %s", r->o->expand.v[r->ei]);
        }
        r->step = PST_SEND_STEP_CMD;
    } else if (r->job->msg == NULL) {
        pst_send_finish_run(r, r->exit);
        return;
    } else if (r->o->stop_on_rcpt_error && r->probe <= r->job->env->rcpts.n)
    {
        if (r->probe == 0) {
            /* only what every server takes: the real transaction
             * carries the parameters the server announced */
            snprintf(line, sizeof(line), "MAIL FROM:<%s>%s",
                     r->job->env->sender ? r->job->env->sender : "",
                     r->job->env->smtputf8 ? " SMTPUTF8" : "");
        } else {
            snprintf(line, sizeof(line), "RCPT TO:<%s>",
                     r->job->env->rcpts.v[r->probe - 1]);
        }
        r->step = PST_SEND_STEP_PROBE;
    } else if (r->o->stop_on_rcpt_error && !r->rset_done) {
        snprintf(line, sizeof(line), "RSET");
        r->step = PST_SEND_STEP_RSET;
    } else {
        if (pst_send_start_tx(r) != PST_OK) {
            snprintf(r->fail.text, sizeof(r->fail.text), "cannot start the "
                     "transaction");
            pst_send_finish_run(r, PST_SEND_PROTOCOL);
        }
        return;
    }

    if (pst_smtp_client_command(r->cl, line, pst_send_cmd_done, r)
        != PST_OK)
    {
        snprintf(r->fail.text, sizeof(r->fail.text), "cannot send \"%.900s\"",
                 line);
        pst_send_finish_run(r, PST_SEND_PROTOCOL);
    }
}


/* --stop-on-rcpt-error: MAIL and each RCPT asked first, without data. */
static void
pst_send_probe_reply(pst_send_run_t *r, const pst_smtp_reply_t *rep)
{
    if (r->probe == 0) {
        pst_send_reply_copy(&r->mail, rep);
    } else {
        pst_send_reply_copy(&r->res[r->probe - 1], rep);
    }
    if (rep->code / 100 != 2) {
        r->probe_failed = 1;
    }
    /* a refused MAIL: no point asking about recipients */
    r->probe = r->probe == 0 && rep->code / 100 != 2
               ? r->job->env->rcpts.n + 1 : r->probe + 1;
}


/* The RSET after the probe: PST_OK to send, PST_DECLINED when some
 * recipient was refused and the run ends here with nothing sent. */
static int
pst_send_rset_reply(pst_send_run_t *r)
{
    size_t  i;

    r->rset_done = 1;
    if (!r->probe_failed) {
        return PST_OK;
    }
    for (i = 0; i < r->job->env->rcpts.n; i++) {
        r->res[i].aborted = r->res[i].code / 100 == 2;
    }
    r->aborted = 1;
    pst_send_finish_run(r, pst_send_exit_code(r));
    return PST_DECLINED;
}


void
pst_send_cmd_done(pst_smtp_client_t *cl, void *data,
    const pst_smtp_reply_t *rep)
{
    pst_send_run_t  *r = data;

    (void) cl;

    if (rep->code == 0) {
        pst_send_reply_copy(&r->fail, rep);
        pst_send_finish_run(r, PST_SEND_PROTOCOL);
        return;
    }

    switch (r->step) {
    case PST_SEND_STEP_CMD:
        if (r->vi < r->o->verify.n) {
            pst_send_reply_copy(&r->vrfy[r->vi++], rep);
        } else {
            pst_send_reply_copy(&r->expn[r->ei++], rep);
        }
        if (rep->code / 100 != 2 && r->job->msg == NULL) {
            r->exit = rep->code / 100 == 4 ? PST_SEND_TEMPFAIL
                                           : PST_SEND_ALLREFUSED;
        }
        break;
    case PST_SEND_STEP_PROBE:
        pst_send_probe_reply(r, rep);
        break;
    case PST_SEND_STEP_XOAUTH:
    case PST_SEND_STEP_XOAUTH_CANCEL:
        switch (pst_send_xoauth_reply(r, rep)) {
        case PST_AGAIN:
            return;
        case PST_OK:
            break;
        default:
            pst_send_finish_run(r, pst_send_exit_for(r->fail.code, 1));
            return;
        }
        break;
    case PST_SEND_STEP_RSET:
        if (pst_send_rset_reply(r) != PST_OK) {
            return;
        }
        break;
    default:
        break;
    }

    pst_send_next(r);
}


/* MAIL parameters from the envelope and --ret/--envid, once the
 * server is known (a recompose changes BODY, a header SMTPUTF8). */
static void
pst_send_mail_params(pst_send_run_t *r)
{
    const pst_send_env_t  *env = r->job->env;
    const pst_send_opts_t *o = r->o;
    size_t                 n = 0;

    if (env->eightbit) {
        n += snprintf(r->mail_params + n, sizeof(r->mail_params) - n,
                      " BODY=8BITMIME");
    }
    if (env->smtputf8) {
        n += snprintf(r->mail_params + n, sizeof(r->mail_params) - n,
                      " SMTPUTF8");
    }
    if (o->ret != NULL) {
        n += snprintf(r->mail_params + n, sizeof(r->mail_params) - n,
                      " RET=%s", strcasecmp(o->ret, "FULL") ? "HDRS" : "FULL");
    }
    if (o->envid != NULL && strlen(o->envid) < 100) {
        n += snprintf(r->mail_params + n, sizeof(r->mail_params) - n,
                      " ENVID=");
        pst_xtext_encode((u_char *) r->mail_params + n,
                         (const u_char *) o->envid, strlen(o->envid));
        n += pst_xtext_encoded_length((const u_char *) o->envid,
                                      strlen(o->envid));
        r->mail_params[n] = '\0';
    }
}


/* RCPT parameters from --notify. */
static int
pst_send_params(pst_send_run_t *r)
{
    const pst_send_env_t  *env = r->job->env;
    const pst_send_opts_t *o = r->o;
    size_t                 i, k;
    char                  *p;

    for (i = 0; i < env->rcpts.n; i++) {
        r->rcpts[i].addr.data = (u_char *) env->rcpts.v[i];
        r->rcpts[i].addr.len = strlen(env->rcpts.v[i]);
        k = o->notify ? pst_xtext_encoded_length((u_char *) env->rcpts.v[i],
                                                 r->rcpts[i].addr.len)
                      : 0;
        p = malloc(k + 64 + (o->notify ? strlen(o->notify) : 0));
        if (p == NULL) {
            return PST_ERROR;
        }
        *p = '\0';
        if (o->notify != NULL) {
            k = (size_t) sprintf(p, " NOTIFY=%s ORCPT=rfc822;", o->notify);
            k += pst_xtext_encode((u_char *) p + k,
                                  (u_char *) env->rcpts.v[i],
                                  r->rcpts[i].addr.len);
            p[k] = '\0';
            for (k = 0; p[k] != '\0' && p[k] != '='; k++) {
                /* nothing */
            }
            for (k++; p[k] != ' '; k++) {
                p[k] = (char) toupper((u_char) p[k]);
            }
        }
        r->rcpts[i].params.data = (u_char *) p;
        r->rcpts[i].params.len = strlen(p);
    }
    return PST_OK;
}


static int
pst_send_start_tx(pst_send_run_t *r)
{
    pst_smtp_client_tx_t  *tx = &r->tx;

    memset(tx, 0, sizeof(*tx));
    tx->sender.data = (u_char *) (r->job->env->sender ? r->job->env->sender
                                                      : "");
    tx->sender.len = strlen((char *) tx->sender.data);
    pst_send_mail_params(r);
    tx->params.data = (u_char *) r->mail_params;
    tx->params.len = strlen(r->mail_params);
    tx->rcpts = r->rcpts;
    tx->nrcpts = r->job->env->rcpts.n;
    tx->fd = r->job->msg->fd;
    tx->offset = 0;
    tx->length = r->job->msg->length;
    r->step = PST_SEND_STEP_TX;

    if (pst_smtp_client_send(r->cl, tx, pst_send_tx_done, r) != PST_OK) {
        return PST_ERROR;
    }
    pst_send_progress_start(r);
    return PST_OK;
}


static void
pst_send_tx_done(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx,
    void *data, int rc)
{
    pst_send_run_t  *r = data;
    size_t           i;

    (void) cl;

    pst_send_progress_stop(r, tx->data_reply.code / 100 == 2);
    pst_send_reply_copy(&r->mail, &tx->mail_reply);
    pst_send_reply_copy(&r->data, &tx->data_reply);
    for (i = 0; i < tx->nrcpts; i++) {
        pst_send_reply_copy(&r->res[i], &tx->rcpts[i].reply);
        r->res[i].accepted = tx->rcpts[i].accepted;
    }
    r->sent = 1;
    if (rc != PST_OK) {
        r->broken = 1;
    }
    pst_send_finish_run(r, pst_send_exit_code(r));
}


static void
pst_send_finish_run(pst_send_run_t *r, int code)
{
    r->exit = code;
    r->done = 1;
    pst_send_progress_stop(r, 0);
    if (r->cl != NULL) {
        pst_smtp_client_quit(r->cl);
        r->cl = NULL;
    }
}


static int pst_send_password(pst_send_run_t *r);


/* The password: --password, --password-file, --password-command, or
 * the environment ($POSTERN_PASSWORD or --password-env VAR). */
static int
pst_send_password(pst_send_run_t *r)
{
    const pst_send_opts_t  *o = r->o;

    if (o->user == NULL) {
        return PST_OK;
    }
    r->pass = pst_send_get_password(o);
    return r->pass != NULL ? PST_OK : PST_SEND_CONFIG;
}


/* Everything before the connection: memory, the password, the
 * address, the TLS context, the event loop (once per process). */
static int
pst_send_setup(pst_send_run_t *r)
{
    size_t  n = r->job->env->rcpts.n;
    int     rc;

    if (gethostname(r->helo, sizeof(r->helo) - 1) != 0
        || r->helo[0] == '\0' || strchr(r->helo, '.') == NULL)
    {
        snprintf(r->helo, sizeof(r->helo), "localhost");
    }

    r->pool = pst_create_pool(4096);
    r->rcpts = calloc(n + 1, sizeof(pst_smtp_client_rcpt_t));
    r->res = calloc(n + 1, sizeof(pst_send_reply_t));
    r->vrfy = calloc(r->o->verify.n + 1, sizeof(pst_send_reply_t));
    r->expn = calloc(r->o->expand.n + 1, sizeof(pst_send_reply_t));
    if (r->pool == NULL || r->rcpts == NULL || r->res == NULL
        || r->vrfy == NULL || r->expn == NULL
        || pst_send_params(r) != PST_OK)
    {
        return PST_SEND_IOERR;
    }

    rc = pst_send_password(r);
    if (rc == PST_OK) {
        rc = pst_send_resolve(r);
    }
    if (rc == PST_OK) {
        rc = pst_send_tls_ctx(r);
    }
    if (rc == PST_OK && !pst_send_loop_ready) {
        /* once per process: --process-queue runs many sessions */
        pst_time_update();
        if (pst_event_init(16) != PST_OK
            || pst_connections_init(16) != PST_OK)
        {
            return PST_SEND_IOERR;
        }
        pst_send_loop_ready = 1;
    }
    return rc;
}


/* The run failed before any recipient had an answer (a name that does
 * not resolve, no password, a bad --ca-file): every recipient is still
 * to send, so that --process-queue keeps the message with the reason
 * instead of taking it for sent. */
static void
pst_send_run_unsent(pst_send_run_t *r)
{
    pst_send_job_t  *job = r->job;
    size_t           i;

    pst_send_list_free(&job->retry);
    for (i = 0; job->env != NULL && i < job->env->rcpts.n; i++) {
        pst_send_list_add(&job->retry, job->env->rcpts.v[i]);
    }
    if (job->reason[0] == '\0') {
        snprintf(job->reason, sizeof(job->reason), "%.*s",
                 (int) sizeof(job->reason) - 1,
                 r->fail.text[0] ? r->fail.text
                                 : "failed before any recipient was tried");
    }
}


int
pst_send_run(const pst_send_opts_t *o, pst_send_job_t *job)
{
    pst_send_run_t  r;
    int             rc;

    memset(&r, 0, sizeof(r));
    r.o = o;
    r.job = job;

    rc = pst_send_setup(&r);
    if (rc == PST_OK) {
        rc = pst_send_open(&r);
    }
    if (rc == PST_OK) {
        while (!r.done) {
            if (pst_process_events_and_timers() != PST_OK) {
                snprintf(r.fail.text, sizeof(r.fail.text), "the event "
                         "loop failed: %s", strerror(errno));
                r.exit = PST_SEND_IOERR;
                break;
            }
        }
        rc = r.exit;
        pst_send_report(&r);
        snprintf(job->reason, sizeof(job->reason), "%s", r.last_reason);
        pst_send_retry_list(&r);
    } else {
        pst_send_run_unsent(&r);
    }

    pst_send_run_free(&r);
    return rc;
}
