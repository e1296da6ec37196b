/*
 * pst_smtp_session.c -- the SMTP session state machine.
 *
 * One session per client connection.  Input is read into s->in and
 * consumed by the state's parser: command lines in COMMAND state, the
 * message in DATA/BDAT state (pst_smtp_data.c).  Each command is looked
 * up in the command table; its handler (pst_smtp_cmd.c) checks state,
 * syntax and limits and, when it
 * has a phase, handed to the module hooks (pst_smtp_phase.c); the
 * phase's done-callback writes the reply.  Replies are collected in
 * s->out and flushed when the input runs dry (RFC 2920) or a command
 * needs an answer before the client goes on.
 *
 * Nothing here blocks: a pending hook parks the session (state PHASE)
 * and its completion continues it from a posted event.
 */

#include "pst_smtp.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_dns.h"
#include "pst_smtp_proto.h"

#define PST_SMTP_IN_SIZE       1024
#define PST_SMTP_DATA_IN_SIZE  32768
#define PST_SMTP_OUT_SIZE      512
#define PST_SMTP_OUT_MAX       (256 * 1024)
#define PST_SMTP_OUT_HIGH      (64 * 1024)

typedef void (*pst_smtp_handler_pt)(pst_session_t *s);

typedef struct {
    const char                  *verb;
    size_t                       len;
    pst_smtp_cmd_e               id;
    pst_smtp_handler_pt          handler;
    unsigned                     flags;
} pst_smtp_command_t;

#define PST_CMD_JUNK      0x01     /* counts toward max_junk_commands */
#define PST_CMD_LAST      0x02     /* must end a pipelined group */
#define PST_CMD_ANYTIME   0x04     /* allowed after a 554 greeting */

static void pst_smtp_read_handler(pst_event_t *ev);
static void pst_smtp_write_handler(pst_event_t *ev);
static int pst_smtp_read(pst_session_t *s);
static int pst_smtp_process_commands(pst_session_t *s);
static void pst_smtp_dispatch(pst_session_t *s, pst_str_t *line);
static void pst_smtp_connect_done(pst_session_t *s, pst_verdict_e v);
static void pst_smtp_rdns_start(pst_session_t *s);
static void pst_smtp_destroy(pst_session_t *s);


static const pst_smtp_command_t  pst_smtp_commands[] = {
    { "HELO", 4, PST_SMTP_CMD_HELO, pst_smtp_cmd_helo, PST_CMD_LAST },
    { "EHLO", 4, PST_SMTP_CMD_EHLO, pst_smtp_cmd_helo, PST_CMD_LAST },
    { "MAIL", 4, PST_SMTP_CMD_MAIL, pst_smtp_cmd_mail, 0 },
    { "RCPT", 4, PST_SMTP_CMD_RCPT, pst_smtp_cmd_rcpt, 0 },
    { "DATA", 4, PST_SMTP_CMD_DATA, pst_smtp_cmd_data, PST_CMD_LAST },
    { "BDAT", 4, PST_SMTP_CMD_BDAT, pst_smtp_cmd_bdat, 0 },
    { "RSET", 4, PST_SMTP_CMD_RSET, pst_smtp_cmd_rset,
      PST_CMD_JUNK | PST_CMD_ANYTIME },
    { "NOOP", 4, PST_SMTP_CMD_NOOP, pst_smtp_cmd_noop,
      PST_CMD_JUNK | PST_CMD_LAST | PST_CMD_ANYTIME },
    { "QUIT", 4, PST_SMTP_CMD_QUIT, pst_smtp_cmd_quit,
      PST_CMD_LAST | PST_CMD_ANYTIME },
    { "HELP", 4, PST_SMTP_CMD_HELP, pst_smtp_cmd_help,
      PST_CMD_JUNK | PST_CMD_ANYTIME },
    { "VRFY", 4, PST_SMTP_CMD_VRFY, pst_smtp_cmd_vrfy,
      PST_CMD_JUNK | PST_CMD_LAST },
    { "EXPN", 4, PST_SMTP_CMD_EXPN, pst_smtp_cmd_expn,
      PST_CMD_JUNK | PST_CMD_LAST },
    { "STARTTLS", 8, PST_SMTP_CMD_STARTTLS, pst_smtp_cmd_starttls,
      PST_CMD_LAST },
    { "AUTH", 4, PST_SMTP_CMD_AUTH, pst_smtp_cmd_auth, PST_CMD_LAST },
    { "XCLIENT", 7, PST_SMTP_CMD_XCLIENT, pst_smtp_cmd_xclient,
      PST_CMD_JUNK | PST_CMD_LAST },
    { NULL, 0, PST_SMTP_CMD_UNKNOWN, NULL, 0 }
};

static const char  *state_names[] = {
    "CONNECT", "COMMAND", "PHASE", "DATA", "BDAT", "COMMIT", "TLS", "AUTH",
    "CLOSING"
};

static pst_list_t  sessions = { &sessions, &sessions };
static uint64_t    session_serial;


/* ------------------------------------------------------------------ */
/* Connection set-up                                                   */

static void
pst_smtp_refuse(pst_connection_t *c, const char *text)
{
    (void) !send(c->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
    pst_close_connection(c);
}


void
pst_smtp_init_connection(pst_connection_t *c)
{
    pst_smtp_srv_conf_t  *conf;
    pst_session_t        *s;
    pst_pool_t           *pool;
    u_char                addr[INET6_ADDRSTRLEN + 1];
    size_t                n;
    int                   rc;

    conf = c->listening->server->conf;

    rc = pst_conn_count_acquire(&c->sockaddr.sa, conf->max_connections,
                                conf->max_connections_per_ip);
    if (rc != PST_OK) {
        pst_metric_inc(rc == PST_BUSY ? PST_M_CONN_REFUSED_LIMIT
                                      : PST_M_CONN_REFUSED_ADDR_LIMIT);
        n = pst_sock_ntop(&c->sockaddr.sa, addr, sizeof(addr), 0);
        pst_log_error(PST_LOG_NOTICE, 0, "refused connection from %.*s: %s",
                      (int) n, addr, rc == PST_BUSY
                      ? "max_connections reached"
                      : "max_connections_per_ip reached");
        pst_smtp_refuse(c, rc == PST_BUSY
            ? "421 4.3.2 Too many connections, try again later\r\n"
            : "421 4.7.0 Too many connections from your address\r\n");
        return;
    }

    pst_metric_inc(PST_M_CONN_TOTAL);
    pst_metric_label_inc(PST_ML_SESSIONS, (char *) c->listening->addr_text,
                         c->listening->addr_text_len);

    pool = pst_create_pool(1536);
    if (pool == NULL) {
        pst_metric_inc(PST_M_CONN_REFUSED_RESOURCES);
        pst_conn_count_release(&c->sockaddr.sa);
        pst_close_connection(c);
        return;
    }

    s = pst_pcalloc(pool, sizeof(pst_session_t));
    if (s == NULL) {
        goto failed;
    }

    s->pool = pool;
    s->c = c;
    s->ls = c->listening;
    s->server = c->listening->server;
    s->conf = conf;
    s->limit_counted = 1;
    s->start = pst_current_time_sec;
    s->id = ((uint64_t) pst_proc_slot_index << 40)
            | (++session_serial & 0xffffffffffULL);
    s->state = PST_SMTP_S_CONNECT;

    s->in = pst_buf_alloc(PST_SMTP_IN_SIZE);
    if (s->in == NULL) {
        goto failed;
    }

    n = pst_sock_ntop(&c->sockaddr.sa, addr, sizeof(addr), 0);
    s->client_addr.data = pst_palloc(pool, n + 1);
    if (s->client_addr.data == NULL) {
        pst_buf_destroy(s->in);
        goto failed;
    }
    memcpy(s->client_addr.data, addr, n + 1);
    s->client_addr.len = n;

    c->data = s;
    c->read.handler = pst_smtp_read_handler;
    c->write.handler = pst_smtp_write_handler;

    pst_smtp_session_register(s);
    pst_list_insert_tail(&sessions, &s->link);

    if (conf->debug) {
        pst_log_session(s, PST_LOG_INFO, "connect from %s to %s",
                        s->client_addr.data, s->ls->addr_text);
    }

    pst_smtp_set_timer(s, conf->command_timeout);

    if (s->ls->tls) {
        /* RFC 8314: the handshake first, then everything else */
        pst_smtp_tls_implicit(s);
        return;
    }

    pst_smtp_session_start(s);
    return;

failed:

    pst_conn_count_release(&c->sockaddr.sa);
    pst_destroy_pool(pool);
    pst_close_connection(c);
}


void
pst_smtp_session_start(pst_session_t *s)
{
    if (s->conf->reverse_lookup == 1
        || (s->conf->reverse_lookup == PST_CONF_UNSET
            && pst_dns_configured()))
    {
        pst_smtp_rdns_start(s);
        return;
    }

    pst_smtp_connect_start(s);
}


/* Reverse lookup, confirmed by a forward lookup (FCrDNS). */

static void
pst_smtp_rdns_forward(void *data, const pst_dns_answer_t *a)
{
    pst_session_t  *s = data;
    char            text[INET6_ADDRSTRLEN + 1];
    pst_uint_t      i;

    s->dns = NULL;

    for (i = 0; a->status == PST_DNS_OK && i < a->count; i++) {
        if (pst_dns_rr_addr(a, i, text, sizeof(text)) == PST_OK
            && strlen(text) == s->client_addr.len
            && memcmp(text, s->client_addr.data, s->client_addr.len) == 0)
        {
            s->client_name = s->ptr_name;
            break;
        }
    }

    pst_smtp_connect_start(s);
}


static void
pst_smtp_rdns_ptr(void *data, const pst_dns_answer_t *a)
{
    pst_session_t  *s = data;
    char            name[256];
    size_t          n;

    s->dns = NULL;

    if (a->status != PST_DNS_OK || a->count == 0
        || pst_dns_rr_name(a, 0, 0, name, sizeof(name)) != PST_OK
        || !pst_dns_name_safe(name))
    {
        pst_smtp_connect_start(s);
        return;
    }

    n = strlen(name);
    s->ptr_name.data = pst_palloc(s->pool, n + 1);
    if (s->ptr_name.data == NULL) {
        pst_smtp_connect_start(s);
        return;
    }
    pst_strlow(s->ptr_name.data, (u_char *) name, n + 1);
    s->ptr_name.len = n;

    s->dns = pst_dns_resolve(name, s->c->sockaddr.sa.sa_family == AF_INET6
                                   ? PST_DNS_AAAA : PST_DNS_A,
                             s->conf->dns_timeout, pst_smtp_rdns_forward, s);
    if (s->dns == NULL) {
        pst_smtp_connect_start(s);
    }
}


static void
pst_smtp_rdns_start(pst_session_t *s)
{
    char  name[128];

    if (pst_dns_reverse_name(&s->c->sockaddr.sa, NULL, name, sizeof(name))
        != PST_OK)
    {
        pst_smtp_connect_start(s);
        return;
    }

    s->dns = pst_dns_resolve(name, PST_DNS_PTR, s->conf->dns_timeout,
                             pst_smtp_rdns_ptr, s);
    if (s->dns == NULL) {
        pst_smtp_connect_start(s);
    }
}


void
pst_smtp_connect_start(pst_session_t *s)
{
    pst_smtp_run_phase(s, PST_PHASE_CONNECT, pst_smtp_connect_done);
}


static void
pst_smtp_connect_done(pst_session_t *s, pst_verdict_e v)
{
    if (pst_smtp_verdict_reply(s, v) == 0) {
        pst_smtp_reply(s, 220, NULL, "%.*s %.*s",
                       (int) s->conf->hostname.len, s->conf->hostname.data,
                       (int) s->conf->banner.len, s->conf->banner.data);

    } else if (s->state == PST_SMTP_S_CLOSING) {
        pst_smtp_continue(s);        /* 421: TEMPFAIL or DISCONNECT */
        return;

    } else {
        /* RFC 5321 3.1: 554 greeting, then 503 to all but QUIT; the
         * greeting is not an error of the client's */
        s->rejected = 1;
        s->errors--;
    }

    s->greeted = 1;
    if (pst_buf_size(s->in) > 0) {
        /* it spoke before our greeting */
        s->early_talker = 1;
    }
    pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    pst_smtp_continue(s);
}


/* ------------------------------------------------------------------ */
/* State, timers, replies                                              */

void
pst_smtp_enter_state(pst_session_t *s, pst_smtp_state_e st)
{
    if (s->conf->debug && s->state != st) {
        pst_log_session(s, PST_LOG_DEBUG, "state %s -> %s",
                        state_names[s->state], state_names[st]);
    }

    if (st == PST_SMTP_S_COMMAND
        && pst_buf_capacity(s->in) > PST_SMTP_IN_SIZE
        && pst_buf_size(s->in) <= PST_SMTP_IN_SIZE / 2)
    {
        /* back from DATA: an idle session keeps a small buffer */
        (void) pst_buf_resize(s->in, PST_SMTP_IN_SIZE);
    }

    pst_smtp_clock_start(s, st);
    s->state = st;
}


void
pst_smtp_set_timer(pst_session_t *s, pst_msec_t ms)
{
    pst_event_add_timer(&s->c->read, ms);
}


void
pst_smtp_protocol_log(pst_session_t *s, int client, const u_char *p,
    size_t n)
{
    u_char  buf[512];

    if (!s->conf->debug) {
        return;
    }

    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r')) {
        n--;
    }

    if (client && (s->state == PST_SMTP_S_AUTH
                   || (n > 4 && pst_strncasecmp(p, (u_char *) "AUTH", 4)
                                == 0)))
    {
        /* never log credentials: keep the verb and the mechanism only,
         * whatever separates them (a TAB makes an unknown command that
         * can still carry a secret) */
        size_t  i = 4;
        int     masked = 0;

        if (s->state == PST_SMTP_S_AUTH) {
            i = 0;
            masked = 1;
        } else {
            while (i < n && p[i] != ' ' && p[i] != '\t') {
                i++;
            }
            while (i < n && (p[i] == ' ' || p[i] == '\t')) {
                i++;
            }
            while (i < n && p[i] != ' ' && p[i] != '\t') {
                i++;
            }
            masked = (i < n);
        }

        pst_sanitize(buf, sizeof(buf), p, i);
        pst_log_session(s, PST_LOG_INFO, "< %s%s", buf,
                        masked ? " ***" : "");
        return;
    }

    pst_sanitize(buf, sizeof(buf), p, n);
    pst_log_session(s, PST_LOG_INFO, "%s %s", client ? "<" : ">", buf);
}


static int
pst_smtp_out(pst_session_t *s, const u_char *p, size_t n)
{
    if (s->out == NULL) {
        s->out = pst_buf_alloc(pst_max(PST_SMTP_OUT_SIZE, n));
        if (s->out == NULL) {
            return PST_ERROR;
        }
    }

    return pst_buf_append(s->out, p, n, PST_SMTP_OUT_MAX);
}


void
pst_smtp_reply_raw(pst_session_t *s, const char *text, size_t len)
{
    if (pst_smtp_out(s, (const u_char *) text, len) != PST_OK) {
        /* a client that does not read its replies */
        s->closing = 1;
        return;
    }
    pst_smtp_protocol_log(s, 0, (const u_char *) text, len);
}


void
pst_smtp_reply(pst_session_t *s, int code, const char *ecode,
    const char *fmt, ...)
{
    va_list  ap;
    char     line[600];
    int      n, k;

    if (ecode != NULL && ecode[0] != '\0') {
        n = snprintf(line, sizeof(line), "%d %s ", code, ecode);
    } else {
        n = snprintf(line, sizeof(line), "%d ", code);
    }

    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - (size_t) n - 2, fmt, ap);
    va_end(ap);

    if (k < 0) {
        k = 0;
    }
    n += pst_min(k, (int) (sizeof(line) - (size_t) n - 3));
    line[n++] = '\r';
    line[n++] = '\n';

    if (code >= 400) {
        s->errors++;
    }

    pst_smtp_reply_raw(s, line, (size_t) n);
}


/* Send what s->out holds.  PST_OK: all sent; PST_AGAIN: the rest waits
 * for the write event; PST_ERROR: the client is gone (s->closing). */
int
pst_smtp_flush(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    ssize_t            n;

    while (s->out != NULL && pst_buf_size(s->out) > 0) {
        n = c->send(c, s->out->pos, pst_buf_size(s->out));

        if (n > 0) {
            s->out->pos += n;
            continue;
        }

        if (n == PST_AGAIN) {
            /* wait for the write event; bound the wait */
            s->timer_why = PST_SMTP_WAIT_IDLE;
            pst_event_add_timer(&c->read, s->conf->command_timeout);
            return PST_AGAIN;
        }

        s->eof = 1;
        s->closing = 1;
        return PST_ERROR;
    }

    if (s->out != NULL) {
        s->out->pos = s->out->start;
        s->out->last = s->out->start;
        if (pst_buf_capacity(s->out) > 4096) {
            /* idle sessions keep little memory */
            pst_buf_destroy(s->out);
            s->out = NULL;
        }
    }

    return PST_OK;
}


/* Close when the loop is done with the session: after the last reply
 * went out (state CLOSING) or at once (s->closing). */
static int
pst_smtp_finalize(pst_session_t *s)
{
    int  rc;

    if (s->closing) {
        if (s->state == PST_SMTP_S_COMMIT) {
            return PST_AGAIN;       /* the commit completion closes */
        }
        pst_smtp_destroy(s);
        return PST_DONE;
    }

    if (s->state != PST_SMTP_S_CLOSING) {
        return PST_OK;
    }

    rc = pst_smtp_flush(s);
    if (rc == PST_AGAIN) {
        return PST_AGAIN;
    }

    pst_smtp_destroy(s);
    return PST_DONE;
}


static void
pst_smtp_write_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_session_t     *s = c->data;

    if (ev->timedout) {
        ev->timedout = 0;
        s->closing = 1;
        (void) pst_smtp_finalize(s);
        return;
    }

    if (s->out == NULL || pst_buf_size(s->out) == 0
        || s->in_process)
    {
        return;
    }

    (void) pst_smtp_flush(s);

    if (pst_smtp_finalize(s) != PST_OK) {
        return;
    }

    if ((s->out == NULL || pst_buf_size(s->out) == 0) && s->reading_paused)
    {
        s->reading_paused = 0;
        pst_smtp_continue(s);
    }
}


/* ------------------------------------------------------------------ */
/* Input                                                               */

/* Read what the socket has: PST_OK (got bytes), PST_AGAIN, PST_DONE
 * (client closed), PST_ERROR. */
static int
pst_smtp_read(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    size_t             want;
    ssize_t            n;

    if (pst_buf_free(s->in) == 0) {
        pst_buf_compact(s->in);
    }

    if (pst_buf_free(s->in) == 0) {
        want = pst_buf_capacity(s->in) * 2;
        if (s->state == PST_SMTP_S_DATA || s->state == PST_SMTP_S_BDAT) {
            want = pst_max(want, PST_SMTP_DATA_IN_SIZE);
        }
        if (want > PST_SMTP_DATA_IN_SIZE * 2) {
            /* a parser that cannot make progress: never read with 0 */
            return PST_AGAIN;
        }
        if (pst_buf_resize(s->in, want) != PST_OK) {
            return PST_ERROR;
        }
    }

    n = c->recv(c, s->in->last, pst_buf_free(s->in));

    if (n > 0) {
        s->in->last += n;
        return PST_OK;
    }

    if (n == PST_AGAIN) {
        return PST_AGAIN;
    }

    return n == 0 ? PST_DONE : PST_ERROR;
}


static void
pst_smtp_timeout(pst_session_t *s)
{
    if (s->state == PST_SMTP_S_COMMIT || s->state == PST_SMTP_S_CLOSING) {
        pst_log_session(s, PST_LOG_INFO, "timeout in state %s%s",
                        state_names[s->state], pst_smtp_clock_reason(s));
    }

    if (s->state == PST_SMTP_S_COMMIT) {
        return;    /* our own disk: the commit always completes */
    }

    if (s->state == PST_SMTP_S_CLOSING) {
        /* the client does not even read its last reply: drop it */
        s->closing = 1;
        (void) pst_smtp_finalize(s);
        return;
    }

    pst_smtp_time_up(s);
    (void) pst_smtp_finalize(s);
}


void
pst_smtp_time_up(pst_session_t *s)
{
    pst_log_session(s, PST_LOG_INFO, "timeout in state %s%s",
                    state_names[s->state], pst_smtp_clock_reason(s));
    pst_smtp_reply(s, 421, "4.4.2", "%.*s Error: timeout exceeded",
                   (int) s->conf->hostname.len, s->conf->hostname.data);
    pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
}


static void
pst_smtp_read_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_session_t     *s = c->data;
    int                rc;

    if (ev->timedout) {
        ev->timedout = 0;
        pst_smtp_timeout(s);
        return;
    }

    switch (s->state) {
    case PST_SMTP_S_COMMAND:
    case PST_SMTP_S_DATA:
    case PST_SMTP_S_BDAT:
    case PST_SMTP_S_AUTH:
        if (!s->reading_paused) {
            pst_smtp_continue(s);
        }
        return;

    case PST_SMTP_S_CONNECT:
    case PST_SMTP_S_PHASE:
    case PST_SMTP_S_COMMIT:
        /* not our turn to read: buffer what comes (bounded) and notice
         * a client that goes away */
        if (pst_buf_free(s->in) == 0 && pst_buf_capacity(s->in)
                                         >= PST_SMTP_DATA_IN_SIZE)
        {
            return;
        }
        rc = pst_smtp_read(s);
        if (rc == PST_DONE || rc == PST_ERROR) {
            s->eof = 1;
            pst_smtp_close_session(s);
        }
        return;

    default:
        return;
    }
}


/*
 * Drive the session: consume buffered input in the current state, read
 * more when needed, flush replies before waiting.  Called from the read
 * handler and when an asynchronous step (hook, commit) completes.  It
 * is the only place that destroys a session while it runs: anything
 * called from inside the loop only sets s->closing or enters CLOSING.
 */
void
pst_smtp_continue(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    int                rc;

    if (s->in_process) {
        return;            /* the running loop sees the new state */
    }

    s->in_process = 1;

    for ( ;; ) {
        if (s->closing) {
            break;
        }

        switch (s->state) {
        case PST_SMTP_S_COMMAND:
            rc = pst_smtp_process_commands(s);
            break;
        case PST_SMTP_S_DATA:
        case PST_SMTP_S_BDAT:
            pst_smtp_data_read(s);
            rc = (s->state == PST_SMTP_S_DATA
                  || s->state == PST_SMTP_S_BDAT) ? PST_AGAIN : PST_OK;
            break;
        case PST_SMTP_S_AUTH:
            rc = pst_smtp_auth_process(s);
            break;
        default:
            rc = PST_BUSY;
        }

        if (s->closing || s->state == PST_SMTP_S_CLOSING) {
            break;
        }

        if (rc == PST_BUSY) {
            if (s->state == PST_SMTP_S_PHASE) {
                /* the command came whole in time; whatever was left of
                 * its deadline does not bound the hooks */
                s->timer_why = PST_SMTP_WAIT_IDLE;
                pst_smtp_set_timer(s, s->conf->command_timeout);
            }
            (void) pst_smtp_flush(s);
            if (c->read.ready) {
                /* edge-triggered: the peer may already have closed; let
                 * the read handler look while we wait (bounded buffer) */
                pst_post_event(&c->read);
            }
            break;
        }

        if (rc == PST_OK) {
            continue;          /* the state changed: consume in the new one */
        }

        /* need input: answer what we have before waiting */
        if (s->out != NULL && pst_buf_size(s->out) > 0) {
            if (pst_smtp_flush(s) == PST_ERROR) {
                break;
            }
            if (s->out != NULL && pst_buf_size(s->out) > PST_SMTP_OUT_HIGH)
            {
                s->reading_paused = 1;
                break;
            }
        }

        if (!c->read.ready) {
            pst_smtp_set_timer(s, pst_smtp_clock_wait(s));
            break;
        }

        rc = pst_smtp_read(s);

        if (rc == PST_AGAIN) {
            if (c->read.ready) {
                /* the parser made no room: cannot happen, never spin */
                pst_log_session(s, PST_LOG_ALERT, "input buffer stuck");
                s->closing = 1;
            }
            continue;
        }

        if (rc != PST_OK) {
            s->eof = 1;
            if (s->state == PST_SMTP_S_DATA || s->state == PST_SMTP_S_BDAT) {
                pst_log_session(s, PST_LOG_INFO, "client closed during"
                                " message data: nothing stored");
            }
            s->closing = 1;
            break;
        }
    }

    s->in_process = 0;
    (void) pst_smtp_finalize(s);
}


/* Consume command lines until the input runs out (PST_AGAIN), the state
 * changes (PST_OK) or the session waits for something (PST_BUSY). */
static int
pst_smtp_process_commands(pst_session_t *s)
{
    pst_smtp_line_e  lr;
    pst_str_t        line;

    while (s->state == PST_SMTP_S_COMMAND && !s->closing) {

        if (s->errors >= (pst_uint_t) s->conf->max_errors
            && s->conf->max_errors > 0)
        {
            pst_log_session(s, PST_LOG_NOTICE, "too many errors");
            pst_smtp_reply(s, 421, "4.7.0", "%.*s Error: too many errors",
                           (int) s->conf->hostname.len,
                           s->conf->hostname.data);
            pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
            break;
        }

        if (s->out != NULL && pst_buf_size(s->out) > PST_SMTP_OUT_HIGH) {
            return PST_AGAIN;
        }

        lr = pst_smtp_read_line(s->in, s->conf->command_line_limit,
                                s->conf->bare_newline == PST_BARE_NL_REJECT,
                                &s->skipping, &line);

        if (lr != PST_SMTP_LINE_AGAIN) {
            /* a line is done: the next one has its own deadline */
            pst_smtp_clock_start(s, PST_SMTP_S_COMMAND);
        }

        switch (lr) {
        case PST_SMTP_LINE_AGAIN:
            return PST_AGAIN;

        case PST_SMTP_LINE_TOO_LONG:
            pst_smtp_reply(s, 500, "5.5.2", "Error: line too long");
            continue;

        case PST_SMTP_LINE_BARE_LF:
            pst_smtp_reply(s, 500, "5.5.2", "Error: bare <LF> received");
            continue;

        case PST_SMTP_LINE_BAD_CHAR:
            pst_smtp_reply(s, 500, "5.5.2",
                           "Error: invalid character in command");
            continue;

        case PST_SMTP_LINE_OK:
            break;
        }

        pst_smtp_protocol_log(s, 1, line.data, line.len);
        pst_smtp_dispatch(s, &line);
    }

    if (s->state == PST_SMTP_S_CLOSING) {
        return PST_BUSY;
    }

    /* AUTH reads the client's next line in the loop, like DATA */
    return s->state == PST_SMTP_S_COMMAND ? PST_AGAIN
           : (s->state == PST_SMTP_S_PHASE || s->state == PST_SMTP_S_COMMIT
              || s->state == PST_SMTP_S_TLS)
             ? PST_BUSY : PST_OK;
}


static void
pst_smtp_dispatch(pst_session_t *s, pst_str_t *line)
{
    const pst_smtp_command_t  *cmd;
    u_char                    *p, *end;
    size_t                     vlen;

    p = line->data;
    end = p + line->len;

    while (p < end && *p != ' ') {
        p++;
    }
    vlen = (size_t) (p - line->data);

    for (cmd = pst_smtp_commands; cmd->verb != NULL; cmd++) {
        if (cmd->len == vlen
            && pst_strncasecmp(line->data, (u_char *) cmd->verb, vlen) == 0)
        {
            break;
        }
    }

    if (cmd->verb == NULL) {
        pst_smtp_cmd_unknown(s, line);
        return;
    }

    /* arguments: after one space (tolerate several) */
    while (p < end && *p == ' ') {
        p++;
    }
    s->arg.data = p;
    s->arg.len = (size_t) (end - p);
    while (s->arg.len > 0 && s->arg.data[s->arg.len - 1] == ' ') {
        s->arg.len--;
    }
    s->cmd = cmd->id;

    if (s->rejected && !(cmd->flags & PST_CMD_ANYTIME)) {
        pst_smtp_reply(s, 503, "5.7.0", "Error: access denied");
        return;
    }

    if (cmd->flags & PST_CMD_JUNK) {
        if (++s->junk > (pst_uint_t) s->conf->max_junk_commands
            && s->conf->max_junk_commands > 0)
        {
            pst_smtp_reply(s, 421, "4.7.0", "%.*s Error: too many"
                           " commands without mail",
                           (int) s->conf->hostname.len,
                           s->conf->hostname.data);
            pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
            return;
        }
    }

    /* RFC 2920: pipelining needs the extension, and some commands must
     * end a group; note a client that does not wait */
    if (pst_buf_size(s->in) > 0 && !s->bad_pipelining
        && (!s->esmtp || !s->conf->pipelining || (cmd->flags & PST_CMD_LAST)))
    {
        s->bad_pipelining = 1;
        pst_log_session(s, PST_LOG_INFO, "improper command pipelining after"
                        " %s", cmd->verb);
    }

    cmd->handler(s);
}


/* A phase completed: if we were called from inside the command loop the
 * loop goes on by itself, otherwise restart the session from here. */
void
pst_smtp_after_phase(pst_session_t *s)
{
    if (s->state == PST_SMTP_S_PHASE) {
        pst_smtp_enter_state(s, PST_SMTP_S_COMMAND);
    }

    pst_smtp_continue(s);
}


void
pst_smtp_run(pst_session_t *s, pst_phase_e phase, pst_phase_done_pt done)
{
    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);
    pst_smtp_run_phase(s, phase, done);
}


/* ------------------------------------------------------------------ */
/* Closing                                                             */

void
pst_smtp_close_session(pst_session_t *s)
{
    s->closing = 1;

    if (s->in_process || s->state == PST_SMTP_S_COMMIT) {
        /* the loop, or the store's completion, closes it */
        return;
    }

    pst_smtp_destroy(s);
}


static void
pst_smtp_destroy(pst_session_t *s)
{
    pst_connection_t  *c = s->c;
    pst_pool_t        *pool = s->pool;

    if (s->dns != NULL) {
        pst_dns_cancel(s->dns);
        s->dns = NULL;
    }

    pst_smtp_phase_cancel(s);

    if (s->tx != NULL) {
        if (s->tx->data_started && !s->quit) {
            pst_log_session(s, PST_LOG_INFO, "session ended during"
                            " message transfer: nothing stored");
        }
        pst_smtp_tx_free(s);
    }

    /* informational: the verdicts of disconnect hooks are ignored */
    s->in_process = 1;
    pst_smtp_run_phase(s, PST_PHASE_DISCONNECT, NULL);
    pst_smtp_phase_cancel(s);

    if (s->conf->debug) {
        pst_log_session(s, PST_LOG_INFO, "disconnect (%lu message(s))",
                        (unsigned long) s->messages);
    }

    pst_smtp_session_unregister(s);
    pst_list_remove(&s->link);

    if (s->limit_counted) {
        pst_conn_count_release(&c->sockaddr.sa);
    }

    pst_buf_destroy(s->in);
    pst_buf_destroy(s->out);
    c->data = NULL;

    pst_close_connection(c);
    pst_destroy_pool(pool);
}


void
pst_smtp_shutdown_all(int fast)
{
    pst_session_t  *s;
    pst_list_t     *l, *next;

    if (!fast) {
        /* graceful: sessions finish by themselves, bounded by the
         * shutdown timeout; nothing to do now */
        return;
    }

    for (l = pst_list_head(&sessions); l != pst_list_sentinel(&sessions);
         l = next)
    {
        next = pst_list_next(l);
        s = pst_list_data(l, pst_session_t, link);

        if (s->state == PST_SMTP_S_COMMIT) {
            continue;
        }

        if (s->c->ssl == NULL) {
            (void) !send(s->c->fd, "421 4.3.2 Service shutting down\r\n",
                         33, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else if (s->state != PST_SMTP_S_TLS) {
            /* inside TLS: cleartext would corrupt the stream */
            (void) s->c->send(s->c, (u_char *) "421 4.3.2 Service"
                              " shutting down\r\n", 33);
        }
        pst_smtp_destroy(s);
    }
}
