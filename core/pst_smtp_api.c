/*
 * pst_smtp_api.c -- the session, transaction and message accessors of
 * the public module API (postern_module.h), and the envelope writer.
 */

#include "pst_smtp.h"


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
/* Envelope (docs/SPOOL.md)                                            */

static int
pst_env_put(pst_buf_t *b, const char *key, const u_char *v, size_t n,
    int encode)
{
    u_char  tmp[2048];
    size_t  k;

    if (pst_buf_append(b, key, strlen(key), 1 << 24) != PST_OK
        || pst_buf_append(b, " ", 1, 1 << 24) != PST_OK)
    {
        return PST_ERROR;
    }

    if (!encode) {
        if (pst_buf_append(b, v, n, 1 << 24) != PST_OK) {
            return PST_ERROR;
        }
    } else {
        while (n > 0) {
            /* encode in slices: 3 output bytes per input byte at most */
            k = pst_min(n, sizeof(tmp) / 3);
            if (pst_buf_append(b, tmp, pst_xtext_encode(tmp, v, k), 1 << 24)
                != PST_OK)
            {
                return PST_ERROR;
            }
            v += k;
            n -= k;
        }
    }

    return pst_buf_append(b, "\n", 1, 1 << 24);
}


#define PUT(key, str)                                                        \
    if (pst_env_put(b, key, (str)->data, (str)->len, 1) != PST_OK) {         \
        goto failed; }
#define PUTC(key, cstr)                                                      \
    if (pst_env_put(b, key, (u_char *) (cstr), strlen(cstr), 0) != PST_OK) { \
        goto failed; }


int
pst_tx_envelope(pst_session_t *s, pst_str_t *out)
{
    static const char  *bodies[] = { NULL, "7BIT", "8BITMIME", "BINARYMIME" };
    pst_smtp_tx_t      *tx = s->tx;
    pst_smtp_rcpt_t    *r;
    pst_str_t          *h;
    pst_buf_t          *b;
    pst_uint_t          i;
    char                num[64], line[1200];
    u_char              enc[1600];
    int                 n;

    if (tx == NULL) {
        return PST_ERROR;
    }

    b = pst_buf_alloc(1024);
    if (b == NULL) {
        return PST_ERROR;
    }

    if (pst_buf_append(b, PST_ENVELOPE_MAGIC "\n",
                       sizeof(PST_ENVELOPE_MAGIC), 1 << 24) != PST_OK)
    {
        goto failed;
    }

    PUT("id", &tx->id);
    snprintf(num, sizeof(num), "%lld.%06ld", (long long) tx->start, 0L);
    PUTC("arrival", num);
    PUT("client-addr", &s->client_addr);
    if (s->client_name.len) {
        PUT("client-name", &s->client_name);
    }
    PUT("helo", &s->helo);
    PUTC("protocol", pst_smtp_protocol(s));
    if (s->auth_id.len) {
        PUT("auth", &s->auth_id);
    }
    if (s->tls_facts) {
        snprintf(line, sizeof(line), "%s %s", s->tls_facts->version,
                 s->tls_facts->cipher);
        if (pst_env_put(b, "tls", (u_char *) line, strlen(line), 1)
            != PST_OK)
        {
            goto failed;
        }
    }
    PUT("server", &s->conf->hostname);
    PUT("sender", &tx->sender);
    if (tx->params.body) {
        PUTC("body", bodies[tx->params.body]);
    }
    if (tx->params.smtputf8) {
        PUTC("smtputf8", "1");
    }
    if (tx->params.ret) {
        PUTC("ret", tx->params.ret == PST_RET_FULL ? "FULL" : "HDRS");
    }
    if (tx->params.envid.data) {
        PUT("envid", &tx->params.envid);
    }
    if (tx->auth_param.data) {
        /* MAIL AUTH= as we trust it (RFC 4954 5): "<>" unless the
         * session authenticated; a relay passes it on */
        PUT("auth-param", &tx->auth_param);
    }
    snprintf(num, sizeof(num), "%lld", (long long) tx->data.size);
    PUTC("size", num);
    if (tx->hold) {
        /* a HOLD verdict: the queue keeps it until an operator says */
        PUTC("hold", "1");
    }

    r = tx->rcpts.elts;
    for (i = 0; i < tx->rcpts.nelts; i++) {
        n = (int) pst_xtext_encode(enc, r[i].addr.data,
                                   pst_min(r[i].addr.len, 512));
        n = snprintf(line, sizeof(line), "%.*s notify=%u", n, enc,
                     r[i].notify);
        if (r[i].orcpt.data != NULL) {
            char    orcpt[600];
            size_t  k;

            k = (size_t) snprintf(orcpt, sizeof(orcpt), "%.*s;%.*s",
                                  (int) r[i].orcpt_type.len,
                                  r[i].orcpt_type.data,
                                  (int) pst_min(r[i].orcpt.len, 500),
                                  r[i].orcpt.data);
            k = pst_xtext_encode(enc, (u_char *) orcpt,
                                 pst_min(k, sizeof(enc) / 3));
            n += snprintf(line + n, sizeof(line) - (size_t) n,
                          " orcpt=%.*s", (int) pst_min(k, 1000), enc);
        }
        snprintf(line + n, sizeof(line) - (size_t) n, " state=pending");
        PUTC("rcpt", line);
    }

    if (tx->add_headers != NULL) {
        h = tx->add_headers->elts;
        for (i = 0; i < tx->add_headers->nelts; i++) {
            PUT("prepend", &h[i]);
        }
    }

    if (pst_buf_append(b, "end\n", 4, 1 << 24) != PST_OK) {
        goto failed;
    }

    out->len = pst_buf_size(b);
    out->data = pst_palloc(tx->pool, out->len);
    if (out->data == NULL) {
        goto failed;
    }
    memcpy(out->data, b->pos, out->len);
    pst_buf_destroy(b);
    return PST_OK;

failed:

    pst_buf_destroy(b);
    return PST_ERROR;
}
