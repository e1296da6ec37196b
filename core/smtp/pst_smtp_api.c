/*
 * pst_smtp_api.c -- the session, transaction and message accessors of
 * the public module API (postern_module.h), and the envelope writer.
 */

#include "pst_smtp.h"
#include "pst_spool.h"


void
pst_log_session(pst_session_t *s, int level, const char *fmt, ...)
{
    va_list  ap;
    char     msg[PST_LOG_LINE_MAX - 256];

    if (level > pst_log_main.level) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    pst_log_error(level, 0, "session=%012llx client=[%.*s] %s",
                  (unsigned long long) s->id, (int) s->client_addr.len,
                  s->client_addr.data, msg);
}


uint64_t
pst_session_id(pst_session_t *s)
{
    return s->id;
}


const struct sockaddr *
pst_session_client_sockaddr(pst_session_t *s)
{
    return &s->c->sockaddr.sa;
}


const pst_str_t *
pst_session_client_addr(pst_session_t *s)
{
    return &s->client_addr;
}


const pst_str_t *
pst_session_client_name(pst_session_t *s)
{
    return s->client_name.len ? &s->client_name : NULL;
}


const pst_str_t *
pst_session_server_name(pst_session_t *s)
{
    return &s->conf->hostname;
}


const pst_str_t *
pst_session_helo(pst_session_t *s)
{
    return s->helo.len ? &s->helo : NULL;
}


const pst_str_t *
pst_session_unknown(pst_session_t *s)
{
    return s->unknown.len ? &s->unknown : NULL;
}


int
pst_session_esmtp(pst_session_t *s)
{
    return s->esmtp;
}


const pst_str_t *
pst_session_auth_id(pst_session_t *s)
{
    return s->auth_id.len ? &s->auth_id : NULL;
}


int
pst_session_tls(pst_session_t *s)
{
    return s->tls_facts != NULL;
}


const char *
pst_session_tls_version(pst_session_t *s)
{
    return s->tls_facts ? s->tls_facts->version : NULL;
}


const char *
pst_session_tls_cipher(pst_session_t *s)
{
    return s->tls_facts ? s->tls_facts->cipher : NULL;
}


const pst_str_t *
pst_session_tls_peer_subject(pst_session_t *s)
{
    return (s->tls_facts && s->tls_facts->peer_subject.len)
           ? &s->tls_facts->peer_subject : NULL;
}


const pst_str_t *
pst_session_tls_peer_fingerprint(pst_session_t *s)
{
    return (s->tls_facts && s->tls_facts->peer_fingerprint.len)
           ? &s->tls_facts->peer_fingerprint : NULL;
}


int
pst_session_submission(pst_session_t *s)
{
    return s->ls->submission;
}


int
pst_session_early_talker(pst_session_t *s)
{
    return s->early_talker || (!s->greeted && pst_buf_size(s->in) > 0);
}


int
pst_session_bad_pipelining(pst_session_t *s)
{
    return s->bad_pipelining;
}


pst_pool_t *
pst_session_pool(pst_session_t *s)
{
    return s->pool;
}


void *
pst_session_get_ctx(pst_session_t *s, const pst_module_t *m)
{
    pst_module_entry_t  *me;

    if (s->module_ctx == NULL) {
        return NULL;
    }
    me = pst_module_entry(pst_cycle, m);
    return me ? s->module_ctx[me->index] : NULL;
}


void
pst_session_set_ctx(pst_session_t *s, const pst_module_t *m, void *v)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(pst_cycle, m);
    if (me == NULL) {
        return;
    }

    if (s->module_ctx == NULL) {
        s->module_ctx = pst_pcalloc(s->pool,
                                    PST_MAX_MODULES * sizeof(void *));
        if (s->module_ctx == NULL) {
            return;
        }
    }
    s->module_ctx[me->index] = v;
}


void *
pst_module_srv_conf(pst_session_t *s, const pst_module_t *m)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(pst_cycle, m);
    return me ? s->server->srv_conf[me->index] : NULL;
}


const pst_str_t *
pst_tx_id(pst_session_t *s)
{
    return s->tx ? &s->tx->id : NULL;
}


const pst_str_t *
pst_tx_sender(pst_session_t *s)
{
    return s->tx ? &s->tx->sender : NULL;
}


/* The local part (unquoted) or the domain of an address, split on the
 * first call for that address (pst_smtp_addr_split()); NULL when out of
 * memory. */
static const pst_str_t *
pst_smtp_addr_part(pst_session_t *s, const pst_str_t *addr,
    pst_smtp_addr_parts_t *p, int domain)
{
    if (p->of != addr->data) {
        if (pst_smtp_addr_split(s->tx->pool, addr, &p->local, &p->domain)
            != PST_OK)
        {
            return NULL;
        }
        p->of = addr->data;
    }
    return domain ? &p->domain : &p->local;
}


const pst_str_t *
pst_tx_sender_local(pst_session_t *s)
{
    if (s->tx == NULL) {
        return NULL;
    }
    return pst_smtp_addr_part(s, &s->tx->sender, &s->tx->sender_parts, 0);
}


const pst_str_t *
pst_tx_sender_domain(pst_session_t *s)
{
    if (s->tx == NULL) {
        return NULL;
    }
    return pst_smtp_addr_part(s, &s->tx->sender, &s->tx->sender_parts, 1);
}


pst_uint_t
pst_tx_rcpt_count(pst_session_t *s)
{
    return s->tx ? s->tx->rcpts.nelts : 0;
}


const pst_str_t *
pst_tx_rcpt(pst_session_t *s, pst_uint_t i)
{
    pst_smtp_rcpt_t  *r;

    if (s->tx == NULL || i >= s->tx->rcpts.nelts) {
        return NULL;
    }
    r = s->tx->rcpts.elts;
    return &r[i].addr;
}


const pst_str_t *
pst_call_rcpt(pst_call_t *call)
{
    pst_session_t  *s = call->session;

    if (call->phase != PST_PHASE_RCPT) {
        return NULL;
    }
    return &s->path.addr;
}


const pst_str_t *
pst_call_rcpt_local(pst_call_t *call)
{
    pst_session_t  *s = call->session;

    if (call->phase != PST_PHASE_RCPT || s->tx == NULL) {
        return NULL;
    }
    return pst_smtp_addr_part(s, &s->path.addr, &s->tx->rcpt_parts, 0);
}


const pst_str_t *
pst_call_rcpt_domain(pst_call_t *call)
{
    pst_session_t  *s = call->session;

    if (call->phase != PST_PHASE_RCPT || s->tx == NULL) {
        return NULL;
    }
    return pst_smtp_addr_part(s, &s->path.addr, &s->tx->rcpt_parts, 1);
}


const pst_str_t *
pst_call_params(pst_call_t *call)
{
    pst_session_t  *s = call->session;

    if ((call->phase != PST_PHASE_MAIL && call->phase != PST_PHASE_RCPT)
        || s->cmd_params.len == 0)
    {
        return NULL;
    }
    return &s->cmd_params;
}


off_t
pst_tx_size(pst_session_t *s)
{
    return s->tx ? s->tx->data.size : 0;
}


int
pst_tx_hold(pst_session_t *s)
{
    return s->tx != NULL && s->tx->hold;
}


int
pst_tx_discard(pst_session_t *s)
{
    return s->tx != NULL && s->tx->discard;
}


pst_pool_t *
pst_tx_pool(pst_session_t *s)
{
    return s->tx ? s->tx->pool : NULL;
}


/* ------------------------------------------------------------------ */
/* Message access                                                      */

typedef struct {
    pst_str_t                    name;
    pst_str_t                    value;
} pst_header_t;


static int
pst_msg_parse_headers(pst_smtp_tx_t *tx)
{
    pst_header_t  *h;
    u_char        *p, *end, *line, *eol, *colon;

    tx->headers = pst_array_create(tx->pool, 16, sizeof(pst_header_t));
    if (tx->headers == NULL) {
        return PST_ERROR;
    }

    if (tx->data.hdr == NULL) {
        return PST_OK;
    }

    p = tx->data.hdr->pos;
    end = tx->data.hdr->last;
    h = NULL;

    for (line = p; line < end; line = eol) {
        eol = memchr(line, '\n', (size_t) (end - line));
        eol = eol ? eol + 1 : end;

        if (eol - line <= 2 && (*line == '\r' || *line == '\n')) {
            break;                        /* the empty line */
        }

        if (*line == ' ' || *line == '\t') {
            if (h != NULL) {              /* folded continuation */
                h->value.len = (size_t) (eol - h->value.data);
            }
            continue;
        }

        colon = memchr(line, ':', (size_t) (eol - line));
        if (colon == NULL || colon == line) {
            h = NULL;                     /* not a header field */
            continue;
        }

        h = pst_array_push(tx->headers);
        if (h == NULL) {
            return PST_ERROR;
        }
        h->name.data = line;
        h->name.len = (size_t) (colon - line);
        while (h->name.len && (h->name.data[h->name.len - 1] == ' '
                               || h->name.data[h->name.len - 1] == '\t'))
        {
            h->name.len--;
        }
        p = colon + 1;
        while (p < eol && (*p == ' ' || *p == '\t')) {
            p++;
        }
        h->value.data = p;
        h->value.len = (size_t) (eol - p);
    }

    /* drop the line ending of each value (folding inside stays) */
    h = tx->headers->elts;
    for (p = NULL; tx->headers->nelts && h < (pst_header_t *)
         tx->headers->elts + tx->headers->nelts; h++)
    {
        while (h->value.len && (h->value.data[h->value.len - 1] == '\n'
                                || h->value.data[h->value.len - 1] == '\r'))
        {
            h->value.len--;
        }
    }

    return PST_OK;
}


int
pst_msg_header(pst_session_t *s, pst_uint_t i, pst_str_t *name,
    pst_str_t *value)
{
    pst_header_t  *h;

    if (s->tx == NULL || !s->tx->data_started) {
        return PST_ERROR;
    }

    if (s->tx->headers == NULL && pst_msg_parse_headers(s->tx) != PST_OK) {
        return PST_ERROR;
    }

    if (i >= s->tx->headers->nelts) {
        return PST_DONE;
    }

    h = s->tx->headers->elts;
    *name = h[i].name;
    *value = h[i].value;
    return PST_OK;
}


ssize_t
pst_msg_read(pst_session_t *s, off_t offset, u_char *buf, size_t len)
{
    if (s->tx == NULL || s->tx->store == NULL
        || s->server->store->desc.store->read == NULL)
    {
        return -1;
    }

    return s->server->store->desc.store->read(s->tx->store, offset, buf,
                                              len);
}


int
pst_msg_add_header(pst_session_t *s, const char *name, const char *fmt, ...)
{
    pst_str_t  *h;
    va_list     ap;
    char        value[1000];
    size_t      i, nlen;
    int         n;

    if (s->tx == NULL) {
        return PST_ERROR;
    }

    nlen = strlen(name);
    if (nlen == 0 || nlen > 76) {
        return PST_ERROR;
    }
    for (i = 0; i < nlen; i++) {
        if (name[i] < 33 || name[i] > 126 || name[i] == ':') {
            return PST_ERROR;      /* RFC 5322 ftext */
        }
    }

    va_start(ap, fmt);
    n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return PST_ERROR;
    }
    n = pst_min(n, (int) sizeof(value) - 1);
    for (i = 0; i < (size_t) n; i++) {
        if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0') {
            value[i] = ' ';
        }
    }

    if (s->tx->add_headers == NULL) {
        s->tx->add_headers = pst_array_create(s->tx->pool, 2,
                                              sizeof(pst_str_t));
        if (s->tx->add_headers == NULL) {
            return PST_ERROR;
        }
    }

    h = pst_array_push(s->tx->add_headers);
    if (h == NULL) {
        return PST_ERROR;
    }
    h->data = pst_palloc(s->tx->pool, nlen + (size_t) n + 3);
    if (h->data == NULL) {
        return PST_ERROR;
    }
    h->len = (size_t) snprintf((char *) h->data, nlen + (size_t) n + 3,
                               "%s: %.*s", name, n, value);
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Envelope (pst_envelope.h, docs/SPOOL.md)                            */

static int pst_tx_envelope_rcpts(pst_smtp_tx_t *tx, pst_envelope_t *env);


static void
pst_tx_cstr(pst_str_t *out, const char *s)
{
    out->data = (u_char *) s;
    out->len = s ? strlen(s) : 0;
}


/* The session's facts and the transaction as an envelope: strings point
 * into the session and the transaction (valid while they are). */
static int
pst_tx_build_envelope(pst_session_t *s, pst_envelope_t *env)
{
    static const char  *bodies[] = { NULL, "7BIT", "8BITMIME", "BINARYMIME" };
    pst_smtp_tx_t      *tx = s->tx;
    pst_pool_t         *pool = tx->pool;
    size_t              n;

    if (pst_envelope_init(pool, env) != PST_OK) {
        return PST_ERROR;
    }

    env->id = tx->id;
    /* the ID holds the moment the transaction began, to the microsecond */
    pst_spool_id_time(tx->id.data, &env->arrival_sec, &env->arrival_usec);
    env->client_addr = s->client_addr;
    env->client_name = s->client_name;
    env->helo = s->helo;
    pst_tx_cstr(&env->protocol, pst_smtp_protocol(s));
    env->auth = s->auth_id;
    if (s->tls_facts) {
        n = strlen(s->tls_facts->version) + strlen(s->tls_facts->cipher) + 2;
        env->tls.data = pst_palloc(pool, n);
        if (env->tls.data == NULL) {
            return PST_ERROR;
        }
        env->tls.len = (size_t) snprintf((char *) env->tls.data, n, "%s %s",
                                         s->tls_facts->version,
                                         s->tls_facts->cipher);
    }
    env->server = s->conf->hostname;
    /* MAIL AUTH= as we trust it (RFC 4954 5): "<>" unless the session
     * authenticated; a relay passes it on */
    env->auth_param = tx->auth_param;
    env->sender = tx->sender;
    pst_tx_cstr(&env->body, bodies[tx->params.body]);
    env->smtputf8 = tx->params.smtputf8;
    env->requiretls = tx->params.requiretls;
    if (tx->params.ret) {
        pst_tx_cstr(&env->ret, tx->params.ret == PST_RET_FULL ? "FULL"
                                                              : "HDRS");
    }
    env->envid = tx->params.envid;
    env->size = (int64_t) tx->data.size;
    /* a HOLD verdict: the queue keeps it until an operator says */
    env->hold = tx->hold;
    if (tx->add_headers != NULL) {
        env->prepend = tx->add_headers;
    }

    if (pst_tx_envelope_rcpts(tx, env) != PST_OK) {
        return PST_ERROR;
    }
    pst_smtp_node_envelope(tx, env);     /* XPOSTERN: the node's facts */
    return PST_OK;
}


static int
pst_tx_envelope_rcpts(pst_smtp_tx_t *tx, pst_envelope_t *env)
{
    pst_smtp_rcpt_t  *r = tx->rcpts.elts;
    pst_env_rcpt_t   *er;
    pst_uint_t        i;
    size_t            n;

    for (i = 0; i < tx->rcpts.nelts; i++) {
        er = pst_array_push(env->rcpts);
        if (er == NULL) {
            return PST_ERROR;
        }
        memset(er, 0, sizeof(pst_env_rcpt_t));
        er->addr = r[i].addr;
        er->notify = r[i].notify;
        if (r[i].orcpt.data != NULL) {
            n = r[i].orcpt_type.len + r[i].orcpt.len + 2;
            er->orcpt.data = pst_palloc(tx->pool, n);
            if (er->orcpt.data == NULL) {
                return PST_ERROR;
            }
            er->orcpt.len = (size_t) snprintf((char *) er->orcpt.data, n,
                                              "%.*s;%.*s",
                                              (int) r[i].orcpt_type.len,
                                              r[i].orcpt_type.data,
                                              (int) r[i].orcpt.len,
                                              r[i].orcpt.data);
        }
    }

    return PST_OK;
}


int
pst_tx_envelope(pst_session_t *s, pst_str_t *out)
{
    pst_envelope_t  env;
    pst_buf_t      *b;

    if (s->tx == NULL || pst_tx_build_envelope(s, &env) != PST_OK
        || pst_envelope_write(&env, &b) != PST_OK)
    {
        return PST_ERROR;
    }

    out->len = pst_buf_size(b);
    out->data = pst_palloc(s->tx->pool, out->len);
    if (out->data != NULL) {
        memcpy(out->data, b->pos, out->len);
    }
    pst_buf_destroy(b);

    return out->data != NULL ? PST_OK : PST_ERROR;
}
