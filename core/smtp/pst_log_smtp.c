/*
 * pst_log_smtp.c -- the receive side's records, in the shape Postfix
 * administrators grep for, and the metrics counted at the same points.
 *
 * One line per received message, once it is durable:
 *   session=S client=NAME[ADDR] id=QID queued from=<s> to=<r>,...
 *   nrcpt=N size=N message-id=<m> helo=<h> proto=ESMTPS
 *   tls=TLSv1.3/TLS_AES_256_GCM_SHA384 sasl_username=u from_node=mx-a
 * (size: the bytes as stored, our Received: header included -- what
 * `postern queue list` shows; NAME "unknown" without a confirmed
 * reverse name; from_node: in a node transfer, the sending node's
 * XP-NODE).  One line per refusal a hook made (the module named):
 *   session=S NOQUEUE: reject: RCPT from NAME[ADDR]: 554 5.7.1 text;
 *   from=<s> to=<r> proto=ESMTP helo=<h> module=policy_relay
 * With log_format json the same facts go out as the fields of an
 * "event": "queued" or "reject" record (docs/CONFIG.md).
 */

#include "pst_smtp.h"

#define PST_LOG_VALUE_MAX   256

typedef struct {
    u_char                       name[PST_LOG_VALUE_MAX];
    u_char                       helo[PST_LOG_VALUE_MAX];
    u_char                       from[PST_LOG_VALUE_MAX];
    u_char                       user[PST_LOG_VALUE_MAX];
    size_t                       name_len, helo_len, from_len, user_len;
} pst_log_facts_t;


static void pst_log_facts(pst_session_t *s, pst_log_facts_t *lf);
static size_t pst_log_rcpts(pst_smtp_tx_t *tx, u_char *buf, size_t size);
static size_t pst_log_message_id(pst_session_t *s, u_char *buf,
    size_t size);
static const char *pst_log_command(pst_session_t *s);
static void pst_log_reject_metrics(pst_session_t *s, int code,
    const char *module);


static void
pst_log_facts(pst_session_t *s, pst_log_facts_t *lf)
{
    if (s->client_name.len) {
        lf->name_len = pst_sanitize(lf->name, sizeof(lf->name),
                                    s->client_name.data, s->client_name.len);
    } else {
        lf->name_len = 7;
        memcpy(lf->name, "unknown", 8);
    }
    lf->helo_len = pst_sanitize(lf->helo, sizeof(lf->helo), s->helo.data,
                                s->helo.len);
    lf->from_len = 0;
    lf->from[0] = '\0';
    if (s->tx != NULL) {
        lf->from_len = pst_sanitize(lf->from, sizeof(lf->from),
                                    s->tx->sender.data, s->tx->sender.len);
    }
    lf->user_len = pst_sanitize(lf->user, sizeof(lf->user),
                                s->auth_id.data, s->auth_id.len);
}


static size_t
pst_log_rcpts(pst_smtp_tx_t *tx, u_char *buf, size_t size)
{
    pst_smtp_rcpt_t  *r = tx->rcpts.elts;
    u_char            tmp[1024], *p, *end;
    pst_uint_t        i;
    int               n;

    p = tmp;
    end = tmp + pst_min(size, sizeof(tmp)) - 16;
    for (i = 0; i < tx->rcpts.nelts && p < end; i++) {
        n = snprintf((char *) p, (size_t) (end - p), "%s<%.*s>",
                     i ? "," : "", (int) r[i].addr.len, r[i].addr.data);
        if (n < 0 || p + n >= end) {
            p += snprintf((char *) p, 16, ",...");
            break;
        }
        p += n;
    }

    return pst_sanitize(buf, size, tmp, (size_t) (p - tmp));
}


/* The Message-ID field's value, angle brackets included, or "". */
static size_t
pst_log_message_id(pst_session_t *s, u_char *buf, size_t size)
{
    pst_str_t   name, value;
    pst_uint_t  i;
    size_t      a, b;

    buf[0] = '\0';
    for (i = 0; pst_msg_header(s, i, &name, &value) == PST_OK; i++) {
        if (!pst_str_caseeq(&name, "Message-ID")) {
            continue;
        }
        for (a = 0; a < value.len && isspace(value.data[a]); a++) {
            /* void */
        }
        for (b = value.len; b > a && isspace(value.data[b - 1]); b--) {
            /* void */
        }
        return pst_sanitize(buf, size, value.data + a, b - a);
    }

    return 0;
}


void
pst_log_commit(pst_session_t *s, int rc)
{
    pst_smtp_tx_t    *tx = s->tx;
    pst_log_facts_t   lf;
    pst_log_field_t   f[15];
    u_char            to[1024], mid[PST_LOG_VALUE_MAX];
    char              text[PST_LOG_LINE_MAX - 256], size[32], nrcpt[32];
    char              tls[128];
    size_t            to_len, mid_len;
    off_t             stored;

    if (rc != PST_OK) {
        pst_metric_inc(PST_M_MSG_TEMPFAIL_STORE);
        return;
    }

    stored = tx->data.size + tx->received_len;
    pst_metric_inc(PST_M_MSG_ACCEPTED);
    pst_metric_add(PST_M_MSG_BYTES, (uint64_t) stored);
    pst_metric_observe(PST_H_STORE_COMMIT,
                       pst_metric_usec() - tx->commit_usec);

    if (PST_LOG_NOTICE > pst_log_main.level) {
        return;
    }

    pst_log_facts(s, &lf);
    to_len = pst_log_rcpts(tx, to, sizeof(to));
    mid_len = pst_log_message_id(s, mid, sizeof(mid));
    snprintf(size, sizeof(size), "%lld", (long long) stored);
    snprintf(nrcpt, sizeof(nrcpt), "%lu", (unsigned long) tx->rcpts.nelts);
    tls[0] = '\0';
    if (s->tls_facts) {
        snprintf(tls, sizeof(tls), "%s/%s", pst_session_tls_version(s),
                 pst_session_tls_cipher(s));
    }

    snprintf(text, sizeof(text), "session=%012llx client=%s[%.*s] id=%s"
             " queued from=<%s> to=%s nrcpt=%s size=%s message-id=%s"
             " helo=<%s> proto=%s%s%s%s%s%s%.*s",
             (unsigned long long) s->id, lf.name, (int) s->client_addr.len,
             s->client_addr.data, tx->id.data, lf.from, to, nrcpt, size,
             mid_len ? (char *) mid : "<>", lf.helo, pst_smtp_protocol(s),
             tls[0] ? " tls=" : "", tls,
             lf.user_len ? " sasl_username=" : "", lf.user,
             tx->params.node_name.len ? " from_node=" : "",
             (int) tx->params.node_name.len,
             tx->params.node_name.len ? (char *) tx->params.node_name.data
                                      : "");

#define PST_F(k, d, l, num)  { k, (const u_char *) (d), l, num }
    f[0] = (pst_log_field_t) PST_F("queue_id", tx->id.data, tx->id.len, 0);
    f[1] = (pst_log_field_t) PST_F("session", text + 8, 12, 0);
    f[2] = (pst_log_field_t) PST_F("client_name", lf.name, lf.name_len, 0);
    f[3] = (pst_log_field_t) PST_F("client_addr", s->client_addr.data,
                                   s->client_addr.len, 0);
    f[4] = (pst_log_field_t) PST_F("helo", lf.helo, lf.helo_len, 0);
    f[5] = (pst_log_field_t) PST_F("from", lf.from, lf.from_len, 0);
    f[6] = (pst_log_field_t) PST_F("to", to, to_len, 0);
    f[7] = (pst_log_field_t) PST_F("nrcpt", nrcpt, strlen(nrcpt), 1);
    f[8] = (pst_log_field_t) PST_F("size", size, strlen(size), 1);
    f[9] = (pst_log_field_t) PST_F("message_id", mid_len ? mid : NULL,
                                   mid_len, 0);
    f[10] = (pst_log_field_t) PST_F("proto", pst_smtp_protocol(s),
                                    strlen(pst_smtp_protocol(s)), 0);
    f[11] = (pst_log_field_t) PST_F("tls", tls[0] ? tls : NULL,
                                    strlen(tls), 0);
    f[12] = (pst_log_field_t) PST_F("sasl_username",
                                    lf.user_len ? lf.user : NULL,
                                    lf.user_len, 0);
    f[13] = (pst_log_field_t) PST_F("listener", s->ls->addr_text,
                                    s->ls->addr_text_len, 0);
    f[14] = (pst_log_field_t) PST_F("from_node",
                                    tx->params.node_name.len
                                        ? tx->params.node_name.data : NULL,
                                    tx->params.node_name.len, 0);

    pst_log_event(PST_LOG_NOTICE, "queued", f, pst_nelems(f), text);
}


/* The command a refusal answers, as Postfix names it. */
static const char *
pst_log_command(pst_session_t *s)
{
    switch (s->phase) {
    case PST_PHASE_CONNECT: return "CONNECT";
    case PST_PHASE_HELO:    return s->cmd == PST_SMTP_CMD_HELO ? "HELO"
                                                               : "EHLO";
    case PST_PHASE_AUTH:    return "AUTH";
    case PST_PHASE_MAIL:    return "MAIL";
    case PST_PHASE_RCPT:    return "RCPT";
    case PST_PHASE_DATA:    return s->cmd == PST_SMTP_CMD_BDAT ? "BDAT"
                                                               : "DATA";
    default:                return "END-OF-MESSAGE";
    }
}


static void
pst_log_reject_metrics(pst_session_t *s, int code, const char *module)
{
    static const pst_metric_e  by_phase[2][6] = {
        { PST_M_MSG_REJECTED_CONNECT, PST_M_MSG_REJECTED_HELO,
          PST_M_MSG_REJECTED_MAIL, PST_M_MSG_REJECTED_RCPT,
          PST_M_MSG_REJECTED_DATA, PST_M_MSG_REJECTED_QUEUE },
        { PST_M_MSG_TEMPFAIL_CONNECT, PST_M_MSG_TEMPFAIL_HELO,
          PST_M_MSG_TEMPFAIL_MAIL, PST_M_MSG_TEMPFAIL_RCPT,
          PST_M_MSG_TEMPFAIL_DATA, PST_M_MSG_TEMPFAIL_QUEUE }
    };
    int  k;

    switch (s->phase) {
    case PST_PHASE_CONNECT: k = 0; break;
    case PST_PHASE_HELO:    k = 1; break;
    case PST_PHASE_AUTH:    return;          /* counted by AUTH itself */
    case PST_PHASE_MAIL:    k = 2; break;
    case PST_PHASE_RCPT:    k = 3; break;
    case PST_PHASE_DATA:
    case PST_PHASE_MESSAGE: k = 4; break;
    default:                k = 5; break;
    }

    pst_metric_inc(by_phase[code >= 500 ? 0 : 1][k]);
    if (s->phase == PST_PHASE_CONNECT) {
        pst_metric_inc(PST_M_CONN_REFUSED_ACCESS);
    }
    pst_metric_label_inc(PST_ML_REJECT_REASON, module, strlen(module));
}


void
pst_log_reject(pst_session_t *s, const pst_smtp_answer_t *a)
{
    pst_log_facts_t   lf;
    pst_log_field_t   f[13];
    u_char            rcpt[PST_LOG_VALUE_MAX];
    char              text[PST_LOG_LINE_MAX - 256], code[8];
    const char       *module, *qid;
    size_t            rcpt_len;

    module = s->verdict_module ? s->verdict_module->desc.name : "core";
    pst_log_reject_metrics(s, a->code, module);

    if (PST_LOG_NOTICE > pst_log_main.level) {
        return;
    }

    pst_log_facts(s, &lf);
    rcpt_len = 0;
    rcpt[0] = '\0';
    if (s->phase == PST_PHASE_RCPT) {
        rcpt_len = pst_sanitize(rcpt, sizeof(rcpt), s->path.addr.data,
                                s->path.addr.len);
    }
    qid = (s->tx != NULL && s->tx->id.len) ? (char *) s->tx->id.data
                                           : "NOQUEUE";
    snprintf(code, sizeof(code), "%d", a->code);

    snprintf(text, sizeof(text), "session=%012llx %s: reject: %s from"
             " %s[%.*s]: %d %s%s%.*s; from=<%s>%s%s%s proto=%s helo=<%s>"
             " module=%s", (unsigned long long) s->id, qid,
             pst_log_command(s), lf.name, (int) s->client_addr.len,
             s->client_addr.data, a->code, a->ecode ? a->ecode : "",
             a->ecode ? " " : "", (int) a->text_len, a->text, lf.from,
             rcpt_len ? " to=<" : "", rcpt, rcpt_len ? ">" : "",
             pst_smtp_protocol(s), lf.helo, module);

    f[0] = (pst_log_field_t) PST_F("queue_id", qid, strlen(qid), 0);
    f[1] = (pst_log_field_t) PST_F("session", text + 8, 12, 0);
    f[2] = (pst_log_field_t) PST_F("command", pst_log_command(s),
                                   strlen(pst_log_command(s)), 0);
    f[3] = (pst_log_field_t) PST_F("client_name", lf.name, lf.name_len, 0);
    f[4] = (pst_log_field_t) PST_F("client_addr", s->client_addr.data,
                                   s->client_addr.len, 0);
    f[5] = (pst_log_field_t) PST_F("code", code, strlen(code), 1);
    f[6] = (pst_log_field_t) PST_F("ecode", a->ecode,
                                   a->ecode ? strlen(a->ecode) : 0, 0);
    f[7] = (pst_log_field_t) PST_F("reply", a->text, a->text_len, 0);
    f[8] = (pst_log_field_t) PST_F("from", s->tx ? lf.from : NULL,
                                   lf.from_len, 0);
    f[9] = (pst_log_field_t) PST_F("to", rcpt_len ? rcpt : NULL, rcpt_len,
                                   0);
    f[10] = (pst_log_field_t) PST_F("helo", lf.helo, lf.helo_len, 0);
    f[11] = (pst_log_field_t) PST_F("proto", pst_smtp_protocol(s),
                                    strlen(pst_smtp_protocol(s)), 0);
    f[12] = (pst_log_field_t) PST_F("module", module, strlen(module), 0);

    pst_log_event(PST_LOG_NOTICE, "reject", f, pst_nelems(f), text);
}


void
pst_smtp_metric_hook(pst_session_t *s, pst_module_entry_t *me)
{
    if (me == NULL || s->hook_usec == 0) {
        return;
    }

    pst_metric_label_observe(PST_ML_HOOK_LATENCY, me->desc.name,
                             strlen(me->desc.name),
                             pst_metric_usec() - s->hook_usec);
    s->hook_usec = 0;
}
