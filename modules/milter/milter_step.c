/*
 * milter_step.c -- the driver: for each SMTP phase, ask every milter of
 * the server block in order, one at a time, and turn the first answer
 * that is not "continue" into the phase's verdict.  Failures (no
 * connection, timeout, garbage) become the milter's default_action.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "milter.h"

static int milter_stage(milter_conn_t *m);
static int milter_stage_connect(milter_conn_t *m);
static int milter_stage_cmd(milter_conn_t *m, int stage, int cmd,
    uint32_t no, uint32_t nr, const pst_str_t *arg, int brackets);
static void milter_cancel(void *data);
static const char *milter_phase_name(pst_phase_e p);
static void milter_verdict(milter_conn_t *m, int cmd, const u_char *data,
    size_t len);


pst_verdict_e
milter_hook(pst_call_t *call, void *conf)
{
    milter_srv_conf_t  *c = conf;
    milter_sess_t      *ms;
    pst_session_t      *s = pst_call_session(call);
    const pst_str_t    *r;
    pst_uint_t          i;

    if (c->milters == NULL || c->milters->nelts == 0) {
        return PST_HOOK_CONTINUE;
    }

    ms = milter_session(s, c);
    if (ms == NULL) {
        pst_log_session(s, PST_LOG_ERR, "milter: out of memory");
        return PST_HOOK_TEMPFAIL;
    }

    ms->phase = pst_call_phase(call);
    ms->cur = 0;
    ms->hold = 0;
    ms->rcpt.len = 0;
    if (ms->phase == PST_PHASE_RCPT && (r = pst_call_rcpt(call)) != NULL) {
        ms->rcpt = *r;
    }
    ms->params.len = 0;
    if ((r = pst_call_params(call)) != NULL) {      /* MAIL, RCPT */
        ms->params = *r;
    }

    if (ms->phase == PST_PHASE_MAIL) {
        for (i = 0; i < ms->n; i++) {
            ms->m[i].skip_msg = 0;
        }
    }
    if (ms->phase == PST_PHASE_MESSAGE) {
        if (milter_msg_fields(ms) != PST_OK) {
            pst_log_session(s, PST_LOG_ERR, "milter: cannot read the"
                            " stored header section");
            return PST_HOOK_TEMPFAIL;
        }
        for (i = 0; i < ms->n; i++) {
            ms->m[i].mstep = MILTER_M_HEADERS;
            ms->m[i].field = 0;
            ms->m[i].off = 0;
        }
    }

    ms->token = pst_call_defer(call);
    pst_call_set_data(call, ms);
    pst_call_set_cancel(call, milter_cancel);
    milter_next(ms);
    return PST_HOOK_PENDING;
}


/* The core gave the call up (session gone, module_timeout): whatever
 * the current milter was doing is lost with it. */
static void
milter_cancel(void *data)
{
    milter_sess_t  *ms = data;

    ms->token = 0;
    if (ms->cur < ms->n && ms->m[ms->cur].waiting) {
        milter_close(&ms->m[ms->cur]);
        ms->m[ms->cur].state = MILTER_S_FAILED;
    }
}


void
milter_answer(milter_sess_t *ms, pst_verdict_e v, int code,
    const char *ecode, const char *text)
{
    uint64_t  token = ms->token;

    ms->token = 0;
    if (token == 0) {
        return;
    }
    if (text != NULL) {
        (void) pst_hook_resume(token, v, code, ecode, "%s", text);
    } else {
        (void) pst_hook_resume(token, v, code, ecode, NULL);
    }
}


static const char *
milter_phase_name(pst_phase_e p)
{
    switch (p) {
    case PST_PHASE_CONNECT: return "connect";
    case PST_PHASE_HELO: return "helo";
    case PST_PHASE_MAIL: return "mail";
    case PST_PHASE_RCPT: return "rcpt";
    case PST_PHASE_DATA: return "data";
    case PST_PHASE_MESSAGE: return "end of data";
    case PST_PHASE_UNKNOWN: return "unknown command";
    default: return "disconnect";
    }
}


void
milter_fail(milter_conn_t *m, const char *why)
{
    milter_sess_t  *ms = m->ms;
    int             err = errno;
    static const char  *acts[] = { "tempfail", "accept", "reject" };

    if (m->reused) {
        /* the filter dropped a kept connection: once more, afresh */
        milter_log(m, PST_LOG_INFO, "kept connection %s: connecting again",
                   why);
        milter_close(m);
        m->state = MILTER_S_CLOSED;
        if (ms->token != 0 && &ms->m[ms->cur] == m) {
            milter_next(ms);
        }
        return;
    }

    milter_log(m, PST_LOG_WARN, "%s%s%s (at %s): default_action %s",
               why, err && m->state == MILTER_S_CONNECTING ? ": " : "",
               err && m->state == MILTER_S_CONNECTING ? strerror(err) : "",
               milter_phase_name(ms->phase), acts[m->conf->fail]);
    milter_close(m);
    m->state = MILTER_S_FAILED;

    if (ms->token == 0 || &ms->m[ms->cur] != m) {
        return;                /* nobody waits for it now */
    }

    switch (m->conf->fail) {
    case MILTER_FAIL_ACCEPT:
        ms->cur++;
        milter_next(ms);
        return;
    case MILTER_FAIL_REJECT:
        milter_answer(ms, PST_HOOK_REJECT, 550, "5.7.1",
                      "Command rejected");
        return;
    default:
        milter_answer(ms, PST_HOOK_TEMPFAIL, 451, "4.7.1",
                      "Service unavailable - try again later");
        return;
    }
}


/* Ask the milters from ms->cur on; resume once they all said go on. */
void
milter_next(milter_sess_t *ms)
{
    milter_conn_t  *m;
    int             rc;

    while (ms->token != 0 && ms->cur < ms->n) {
        m = &ms->m[ms->cur];

        if (m->skip_conn || (m->skip_msg && ms->phase != PST_PHASE_MAIL)) {
            ms->cur++;
            continue;
        }
        if (m->state == MILTER_S_FAILED
            && m->conf->fail == MILTER_FAIL_ACCEPT)
        {
            ms->cur++;             /* broken earlier: skipped, quietly */
            continue;
        }
        if (m->state == MILTER_S_FAILED) {
            /* broken earlier in this session: its default action again */
            errno = 0;
            m->state = MILTER_S_CLOSED;
            milter_fail(m, "is unavailable");
            return;
        }
        if (m->state == MILTER_S_CLOSED && milter_pool_get(m) == PST_OK) {
            milter_log(m, PST_LOG_INFO, "a kept connection taken");
            continue;
        }
        if (m->state == MILTER_S_CLOSED) {
            errno = 0;
            if (milter_connect(m) != PST_OK) {
                milter_fail(m, "cannot connect");
            }
            return;            /* milter_io() comes back here */
        }
        if (m->state != MILTER_S_READY || m->waiting) {
            return;
        }

        rc = milter_stage(m);
        if (rc != 0) {
            return;            /* a reply or a drain is awaited, or failed */
        }
        ms->cur++;
    }

    if (ms->token != 0) {
        milter_answer(ms, ms->hold ? PST_HOOK_HOLD : PST_HOOK_CONTINUE, 0,
                      NULL, NULL);
    }
}


/* Send the current phase's command to m: 1 awaiting, 0 nothing to wait
 * for (go on with the next milter), -1 failed (handled). */
static int
milter_stage(milter_conn_t *m)
{
    milter_sess_t  *ms = m->ms;
    pst_str_t       none = { 0, (u_char *) "" };
    uint32_t        i;

    switch (ms->phase) {
    case PST_PHASE_CONNECT:
        return milter_stage_connect(m);
    case PST_PHASE_HELO:
        return milter_stage_cmd(m, SMFIM_HELO, SMFIC_HELO, SMFIP_NOHELO,
                                SMFIP_NR_HELO, pst_session_helo(ms->s), 0);
    case PST_PHASE_MAIL:
        if (m->in_tx) {
            /* the last transaction ended without an end of message */
            if (milter_frame(&m->out, SMFIC_ABORT, NULL, 0) != 0) {
                return -1;
            }
        }
        m->in_tx = 1;
        return milter_stage_cmd(m, SMFIM_ENVFROM, SMFIC_MAIL, SMFIP_NOMAIL,
                                SMFIP_NR_MAIL, pst_tx_sender(ms->s), 1);
    case PST_PHASE_RCPT:
        return milter_stage_cmd(m, SMFIM_ENVRCPT, SMFIC_RCPT, SMFIP_NORCPT,
                                SMFIP_NR_RCPT, &ms->rcpt, 1);
    case PST_PHASE_DATA:
        return milter_stage_cmd(m, SMFIM_DATA, SMFIC_DATA, SMFIP_NODATA,
                                SMFIP_NR_DATA, NULL, 0);
    case PST_PHASE_UNKNOWN:
        /* the line as sent, NUL-terminated; no macro stage of its own */
        return milter_stage_cmd(m, -1, SMFIC_UNKNOWN, SMFIP_NOUNKNOWN,
                                SMFIP_NR_UNKN, pst_session_unknown(ms->s), 0);
    case PST_PHASE_MESSAGE:
        i = (uint32_t) milter_msg_step(m);
        if (i == 0) {
            m->in_tx = 0;
        }
        return (int) i;
    default:
        (void) none;
        return 0;
    }
}


static int
milter_stage_connect(milter_conn_t *m)
{
    pst_session_t           *s = m->ms->s;
    const struct sockaddr   *sa = pst_session_client_sockaddr(s);
    const pst_str_t         *name, *addr;
    char                     host[300];
    u_char                   fam;
    uint16_t                 port = 0;

    if (m->protocol & SMFIP_NOCONNECT) {
        return 0;
    }

    addr = pst_session_client_addr(s);
    name = pst_session_client_name(s);
    if (name != NULL) {
        snprintf(host, sizeof(host), "%.*s", (int) name->len, name->data);
    } else {
        snprintf(host, sizeof(host), "[%.*s]", (int) addr->len, addr->data);
    }

    if (sa->sa_family == AF_INET) {
        fam = SMFIA_INET;
        port = ((const struct sockaddr_in *) sa)->sin_port;
    } else if (sa->sa_family == AF_INET6) {
        fam = SMFIA_INET6;
        port = ((const struct sockaddr_in6 *) sa)->sin6_port;
    } else {
        fam = SMFIA_UNKNOWN;
    }

    if (milter_put_macros(m, SMFIM_CONNECT, SMFIC_CONNECT) != PST_OK
        || milter_frame_begin(&m->out, SMFIC_CONNECT) != 0
        || milter_put_str(&m->out, host, strlen(host)) != 0
        || milter_put(&m->out, &fam, 1) != 0
        || (fam != SMFIA_UNKNOWN
            && (milter_put(&m->out, &port, 2) != 0
                || milter_put_str(&m->out, addr->data, addr->len) != 0))
        || milter_frame_end(&m->out) != 0)
    {
        milter_fail(m, "cannot send the connection");
        return -1;
    }

    if (milter_send(m, !(m->protocol & SMFIP_NR_CONN)) != PST_OK) {
        milter_fail(m, "write failed");
        return -1;
    }
    return m->waiting;
}


/* The ESMTP arguments of M and R: each one NUL-terminated. */
static int
milter_put_args(milter_buf_t *b, const pst_str_t *params)
{
    const u_char  *p = params->data, *end = p + params->len, *q;

    while (p < end) {
        q = memchr(p, ' ', (size_t) (end - p));
        if (q == NULL) {
            q = end;
        }
        if (q > p && (milter_put(b, p, (size_t) (q - p)) != 0
                      || milter_put(b, "", 1) != 0))
        {
            return -1;
        }
        p = q + 1;
    }
    return 0;
}


static int
milter_stage_cmd(milter_conn_t *m, int stage, int cmd, uint32_t no,
    uint32_t nr, const pst_str_t *arg, int brackets)
{
    if (m->protocol & no) {
        return 0;
    }

    if ((stage >= 0 && milter_put_macros(m, stage, cmd) != PST_OK)
        || milter_frame_begin(&m->out, cmd) != 0
        || (brackets && milter_put(&m->out, "<", 1) != 0)
        || (arg != NULL && milter_put(&m->out, arg->data, arg->len) != 0)
        || (brackets && milter_put(&m->out, ">", 1) != 0)
        || ((arg != NULL || brackets) && milter_put(&m->out, "", 1) != 0)
        || ((cmd == SMFIC_MAIL || cmd == SMFIC_RCPT)
            && milter_put_args(&m->out, &m->ms->params) != 0)
        || milter_frame_end(&m->out) != 0)
    {
        milter_fail(m, "cannot send a command");
        return -1;
    }

    if (milter_send(m, !(m->protocol & nr)) != PST_OK) {
        milter_fail(m, "write failed");
        return -1;
    }
    return m->waiting;
}


/* ------------------------------------------------------------------ */
/* Replies                                                             */

void
milter_reply(milter_conn_t *m, int cmd, const u_char *data, size_t len)
{
    milter_sess_t  *ms = m->ms;

    if (&ms->m[ms->cur] != m || ms->token == 0) {
        milter_fail(m, "answered when nobody asked");
        return;
    }

    m->reused = 0;

    if (cmd == SMFIR_PROGRESS) {
        (void) milter_send(m, 1);        /* the timer starts again */
        return;
    }

    if (ms->phase == PST_PHASE_MESSAGE
        && milter_msg_modify(m, cmd, data, len))
    {
        return;
    }

    m->waiting = 0;

    if (cmd == SMFIR_CONTINUE
        || (cmd == SMFIR_SKIP && ms->phase == PST_PHASE_MESSAGE
            && m->mstep == MILTER_M_BODY && (m->protocol & SMFIP_SKIP)))
    {
        if (cmd == SMFIR_SKIP) {
            m->mstep = MILTER_M_EOM;
        }
        if (ms->phase == PST_PHASE_MESSAGE && m->mstep != MILTER_M_DONE) {
            if (milter_msg_step(m) != 0) {
                return;
            }
        }
        if (ms->phase == PST_PHASE_MESSAGE) {
            m->in_tx = 0;
            m->eom_done = 1;
        }
        ms->cur++;
        milter_next(ms);
        return;
    }

    milter_verdict(m, cmd, data, len);
}


static void
milter_verdict(milter_conn_t *m, int cmd, const u_char *data, size_t len)
{
    milter_sess_t  *ms = m->ms;
    char            ecode[16], text[384];
    int             code;

    switch (cmd) {

    case SMFIR_ACCEPT:
        if (ms->phase == PST_PHASE_CONNECT || ms->phase == PST_PHASE_HELO) {
            m->skip_conn = 1;
        } else {
            m->skip_msg = 1;
        }
        if (ms->phase == PST_PHASE_MESSAGE) {
            m->in_tx = 0;
            m->mstep = MILTER_M_DONE;
        }
        ms->cur++;
        milter_next(ms);
        return;

    case SMFIR_REJECT:
        milter_log(m, PST_LOG_NOTICE, "reject");
        milter_answer(ms, PST_HOOK_REJECT, 0, NULL, NULL);
        break;

    case SMFIR_TEMPFAIL:
        milter_log(m, PST_LOG_NOTICE, "tempfail");
        milter_answer(ms, PST_HOOK_TEMPFAIL, 0, NULL, NULL);
        break;

    case SMFIR_DISCARD:
        milter_log(m, PST_LOG_NOTICE, "discard");
        milter_answer(ms, PST_HOOK_DISCARD, 0, NULL, NULL);
        break;

    case SMFIR_REPLYCODE:
        if (milter_parse_replycode(data, len, &code, ecode, sizeof(ecode),
                                   text, sizeof(text)) != 0)
        {
            milter_fail(m, "sent a malformed reply code");
            return;
        }
        milter_log(m, PST_LOG_NOTICE, "%d %s %s", code, ecode, text);
        milter_answer(ms, code >= 500 ? PST_HOOK_REJECT : PST_HOOK_TEMPFAIL,
                      code, ecode[0] ? ecode : NULL, text);
        break;

    case SMFIR_SHUTDOWN:
    case SMFIR_CONN_FAIL:
        milter_fail(m, "shut down");
        return;

    default:
        milter_fail(m, "sent an unknown or misplaced reply");
        return;
    }

    /* a message verdict ends the transaction for this milter (and puts
     * libmilter back to its HELO state, where QUIT_NC is ignored: only a
     * "continue" to the end of message lets a connection be kept) */
    if (ms->phase == PST_PHASE_MESSAGE) {
        m->in_tx = 0;
        m->mstep = MILTER_M_DONE;
    }
}


pst_verdict_e
milter_disconnect(pst_call_t *call, void *conf)
{
    pst_session_t  *s = pst_call_session(call);
    milter_sess_t  *ms;
    milter_conn_t  *m;
    pst_uint_t      i;

    (void) conf;
    ms = pst_session_get_ctx(s, &postern_module);
    if (ms == NULL) {
        return PST_HOOK_CONTINUE;
    }

    /* a last ABORT and QUIT, as far as the socket takes them now; after a
     * finished message, QUIT_NC and the socket kept for the next session */
    for (i = 0; i < ms->n; i++) {
        m = &ms->m[i];
        if (m->state != MILTER_S_READY || m->fd == -1 || m->waiting) {
            continue;
        }
        if (m->eom_done && !m->in_tx && m->version >= 6 && m->out.len == 0
            && milter_frame(&m->out, SMFIC_QUIT_NC, NULL, 0) == 0
            && milter_send(m, 0) == PST_OK && m->out.len == 0
            && milter_pool_put(m) == PST_OK)
        {
            milter_close(m);
            m->state = MILTER_S_CLOSED;
            continue;
        }
        milter_buf_free(&m->out);
        if (m->in_tx) {
            (void) milter_frame(&m->out, SMFIC_ABORT, NULL, 0);
        }
        (void) milter_frame(&m->out, SMFIC_QUIT, NULL, 0);
        (void) milter_send(m, 0);
        milter_close(m);
        m->state = MILTER_S_CLOSED;
    }
    return PST_HOOK_CONTINUE;
}
