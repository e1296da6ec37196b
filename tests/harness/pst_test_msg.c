/*
 * pst_test_msg.c -- libpostern-test's module (built in, after the
 * core's): hooks first and last in every phase (the session facts the
 * test asked for; whether the plugin's hooks all continued), the RCPT
 * acceptance of last resort, and an in-memory store whose commits keep
 * the message and its envelope for the test.  And scripted DNS.
 */

#include "pst_test_int.h"

#include <arpa/inet.h>

#define PST_TEST_FIRST   (-1000000)
#define PST_TEST_LAST    1000000

typedef struct {
    pst_session_t               *s;
    u_char                      *data;
    size_t                       len, size;
} pst_test_store_t;


/* ------------------------------------------------------------------ */
/* Hooks                                                               */

static void
pst_test_facts(pst_test_t *t, pst_session_t *s)
{
    size_t  n;

    if (t->name[0] != '\0') {
        n = strlen(t->name);
        s->client_name.data = pst_palloc(s->pool, n + 1);
        if (s->client_name.data != NULL) {
            memcpy(s->client_name.data, t->name, n + 1);
            s->client_name.len = n;
        }
    }
    if (t->auth[0] != '\0') {
        n = strlen(t->auth);
        s->auth_id.data = pst_palloc(s->pool, n + 1);
        if (s->auth_id.data != NULL) {
            memcpy(s->auth_id.data, t->auth, n + 1);
            s->auth_id.len = n;
        }
    }
    if (t->has_tls) {
        s->tls_facts = &t->tls;
    }
}


static pst_verdict_e
pst_test_first(pst_call_t *call, void *conf)
{
    pst_test_t     *t = pst_test_current;
    pst_session_t  *s = pst_call_session(call);
    pst_phase_e     p = pst_call_phase(call);

    (void) conf;
    if (t == NULL) {
        return PST_HOOK_CONTINUE;
    }
    if (p == PST_PHASE_CONNECT) {
        t->session = s;
        pst_test_facts(t, s);
    }
    if (p == PST_PHASE_MAIL) {
        t->committed = 0;
    }
    t->started[p] = 1;
    t->hold_at_start[p] = pst_tx_hold(s);
    return PST_HOOK_CONTINUE;
}


static pst_verdict_e
pst_test_last(pst_call_t *call, void *conf)
{
    pst_test_t  *t = pst_test_current;
    pst_phase_e  p = pst_call_phase(call);

    (void) conf;
    if (t == NULL) {
        return PST_HOOK_CONTINUE;
    }
    t->reached[p] = 1;
    if (p == PST_PHASE_DISCONNECT) {
        t->session = NULL;
    }
    /* nobody refused nor accepted the recipient: take it */
    return p == PST_PHASE_RCPT ? PST_HOOK_ACCEPT : PST_HOOK_CONTINUE;
}


/* ------------------------------------------------------------------ */
/* The in-memory store                                                 */

static void *
pst_test_open(pst_session_t *s, void *conf)
{
    pst_test_store_t  *m;

    (void) conf;
    m = calloc(1, sizeof(pst_test_store_t));
    if (m != NULL) {
        m->s = s;
    }
    return m;
}


static int
pst_test_write(void *handle, const u_char *data, size_t len)
{
    pst_test_store_t  *m = handle;
    u_char            *p;

    if (m->len + len > m->size) {
        p = realloc(m->data, (m->len + len) * 2);
        if (p == NULL) {
            return PST_ERROR;
        }
        m->data = p;
        m->size = (m->len + len) * 2;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return PST_OK;
}


static void
pst_test_abort(void *handle)
{
    pst_test_store_t  *m = handle;

    free(m->data);
    free(m);
}


static ssize_t
pst_test_read(void *handle, off_t offset, u_char *buf, size_t len)
{
    pst_test_store_t  *m = handle;

    if ((size_t) offset >= m->len) {
        return 0;
    }
    len = pst_min(len, m->len - (size_t) offset);
    memcpy(buf, m->data + offset, len);
    return (ssize_t) len;
}


/* Bytes of the trace block (Received:, Return-Path:) at the top. */
static size_t
pst_test_trace_len(const u_char *p, size_t n)
{
    const u_char  *q = p, *end = p + n, *nl;
    int            trace = 0;

    for ( /* void */ ; q < end; q = nl + 1) {
        if (*q == ' ' || *q == '\t') {
            if (!trace) {
                break;
            }
        } else if (((size_t) (end - q) >= 9
                    && pst_strncasecmp(q, (u_char *) "Received:", 9) == 0)
                   || ((size_t) (end - q) >= 12
                       && pst_strncasecmp(q, (u_char *) "Return-Path:", 12)
                          == 0))
        {
            trace = 1;
        } else {
            break;
        }
        nl = memchr(q, '\n', (size_t) (end - q));
        if (nl == NULL) {
            break;
        }
    }
    return (size_t) (q - p);
}


/* The message as delivered: the added fields below the trace block. */
static int
pst_test_keep(pst_test_t *t, pst_test_store_t *m)
{
    pst_str_t  *h;
    size_t      trace, n = m->len, i;
    u_char     *p;

    h = t->env.prepend != NULL ? t->env.prepend->elts : NULL;
    for (i = 0; h != NULL && i < t->env.prepend->nelts; i++) {
        n += h[i].len + 2;
    }
    p = pst_palloc(t->pool, n + 1);
    if (p == NULL) {
        return PST_ERROR;
    }
    trace = pst_test_trace_len(m->data, m->len);
    memcpy(p, m->data, trace);
    t->msg_len = trace;
    for (i = 0; h != NULL && i < t->env.prepend->nelts; i++) {
        memcpy(p + t->msg_len, h[i].data, h[i].len);
        memcpy(p + t->msg_len + h[i].len, "\r\n", 2);
        t->msg_len += h[i].len + 2;
    }
    memcpy(p + t->msg_len, m->data + trace, m->len - trace);
    t->msg_len += m->len - trace;
    p[t->msg_len] = '\0';
    t->msg = p;
    return PST_OK;
}


static int
pst_test_commit(void *handle, uint64_t token)
{
    pst_test_store_t  *m = handle;
    pst_test_t        *t = pst_test_current;
    pst_str_t          env;
    const char        *why;
    int                rc = PST_ERROR;

    (void) token;
    if (t != NULL && pst_tx_envelope(m->s, &env) == PST_OK) {
        pst_test_forget_message(t);
        t->pool = pst_create_pool(4096);
        if (t->pool != NULL
            && pst_envelope_parse(t->pool, env.data, env.len, &t->env, &why)
               == PST_OK
            && pst_test_keep(t, m) == PST_OK)
        {
            t->stored++;
            t->committed = 1;
            rc = PST_OK;
        }
    }
    pst_test_abort(m);
    return rc;
}


static const pst_hook_t  pst_test_hooks[] = {
    { PST_PHASE_CONNECT, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_HELO, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_MAIL, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_RCPT, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_DATA, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_MESSAGE, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_QUEUE, pst_test_first, PST_TEST_FIRST },
    { PST_PHASE_CONNECT, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_HELO, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_MAIL, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_RCPT, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_DATA, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_MESSAGE, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_QUEUE, pst_test_last, PST_TEST_LAST },
    { PST_PHASE_DISCONNECT, pst_test_last, PST_TEST_LAST },
    pst_null_hook
};

static const pst_store_ops_t  pst_test_store_ops = {
    .open = pst_test_open,
    .write = pst_test_write,
    .commit = pst_test_commit,
    .abort = pst_test_abort,
    .read = pst_test_read,
};

const pst_module_t  pst_test_module = {
    PST_MODULE_HEADER,
    .name = "test_harness",
    .version = "1.0",
    .description = "libpostern-test: session facts, verdicts, memory store",
    .hooks = pst_test_hooks,
    .store = &pst_test_store_ops,
};


/* ------------------------------------------------------------------ */
/* The stored message                                                  */

void
pst_test_forget_message(pst_test_t *t)
{
    if (t->pool != NULL) {
        pst_destroy_pool(t->pool);
        t->pool = NULL;
    }
    memset(&t->env, 0, sizeof(t->env));
    t->msg = NULL;
    t->msg_len = 0;
    free(t->value);
    t->value = NULL;
}


int
pst_test_stored(pst_test_t *t)
{
    return t->stored;
}


const char *
pst_test_message(pst_test_t *t, size_t *len)
{
    if (len != NULL) {
        *len = t->msg_len;
    }
    return (const char *) t->msg;
}


const char *
pst_test_header(pst_test_t *t, const char *name, unsigned index)
{
    const u_char  *p, *end, *nl, *v;
    size_t         n = strlen(name);

    if (t->msg == NULL) {
        return NULL;
    }
    end = t->msg + t->msg_len;
    for (p = t->msg; p < end && *p != '\r' && *p != '\n'; p = nl) {
        for (nl = p; nl < end; nl++) {       /* the end of the field */
            if (*nl == '\n' && (nl + 1 == end
                                || (nl[1] != ' ' && nl[1] != '\t')))
            {
                nl++;
                break;
            }
        }
        if ((size_t) (nl - p) <= n || p[n] != ':'
            || pst_strncasecmp(p, (const u_char *) name, n) != 0
            || index-- > 0)
        {
            continue;
        }
        for (v = p + n + 1; v < nl && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }
        for (n = (size_t) (nl - v); n && (v[n - 1] == '\r'
                                          || v[n - 1] == '\n'); n--) {
            /* void */
        }
        free(t->value);
        t->value = strndup((const char *) v, n);
        return t->value;
    }
    return NULL;
}


const char *
pst_test_sender(pst_test_t *t)
{
    return t->pool != NULL ? (const char *) t->env.sender.data : NULL;
}


unsigned
pst_test_rcpt_count(pst_test_t *t)
{
    return t->pool != NULL && t->env.rcpts != NULL
           ? (unsigned) t->env.rcpts->nelts : 0;
}


const char *
pst_test_rcpt_at(pst_test_t *t, unsigned i)
{
    pst_env_rcpt_t  *r;

    if (i >= pst_test_rcpt_count(t)) {
        return NULL;
    }
    r = t->env.rcpts->elts;
    return (const char *) r[i].addr.data;
}


int
pst_test_held(pst_test_t *t)
{
    return t->pool != NULL && t->env.hold;
}


/* Append " NAME=value" (v NULL: " NAME"; an empty value: nothing). */
static void
pst_test_param(pst_test_t *t, const char *name, const pst_str_t *v)
{
    size_t  n = strlen(t->params);

    if (v != NULL && v->len == 0) {
        return;
    }
    snprintf(t->params + n, sizeof(t->params) - n, "%s%s%s%.*s",
             n ? " " : "", name, v != NULL ? "=" : "",
             v != NULL ? (int) v->len : 0,
             v != NULL ? (const char *) v->data : "");
}


const char *
pst_test_mail_params(pst_test_t *t)
{
    if (t->pool == NULL) {
        return NULL;
    }
    t->params[0] = '\0';
    pst_test_param(t, "BODY", &t->env.body);
    pst_test_param(t, "RET", &t->env.ret);
    pst_test_param(t, "ENVID", &t->env.envid);
    pst_test_param(t, "AUTH", &t->env.auth_param);
    if (t->env.smtputf8) {
        pst_test_param(t, "SMTPUTF8", NULL);
    }
    if (t->env.requiretls) {
        pst_test_param(t, "REQUIRETLS", NULL);
    }
    return t->params;
}


const char *
pst_test_rcpt_params(pst_test_t *t, unsigned i)
{
    static const char  *notify[] = { "NEVER", "SUCCESS", "FAILURE",
                                     "DELAY" };
    pst_env_rcpt_t     *r;
    pst_str_t           v;
    u_char              list[64];
    size_t              n = 0;
    unsigned            k;

    if (i >= pst_test_rcpt_count(t)) {
        return NULL;
    }
    r = (pst_env_rcpt_t *) t->env.rcpts->elts + i;
    for (k = 0; k < 4; k++) {
        if (r->notify & (PST_NOTIFY_NEVER << k)) {
            n += (size_t) snprintf((char *) list + n, sizeof(list) - n,
                                   "%s%s", n ? "," : "", notify[k]);
        }
    }
    v.data = list;
    v.len = n;
    t->params[0] = '\0';
    pst_test_param(t, "NOTIFY", &v);
    pst_test_param(t, "ORCPT", &r->orcpt);
    return t->params;
}


/* ------------------------------------------------------------------ */
/* Scripted DNS                                                        */

/* A name in DNS wire format into p (at most 256 bytes); its length. */
static size_t
pst_test_dns_name(u_char *p, const char *name)
{
    const char  *dot;
    size_t       n = 0, k;

    while (*name != '\0' && n < 250) {
        dot = strchr(name, '.');
        k = dot != NULL ? (size_t) (dot - name) : strlen(name);
        if (k == 0 || k > 63 || n + k + 2 > 256) {
            break;
        }
        p[n++] = (u_char) k;
        memcpy(p + n, name, k);
        n += k;
        name += k + (dot != NULL);
    }
    p[n++] = 0;
    return n;
}


/* One record of type from its text into d->buf[i]. */
static int
pst_test_dns_rr(pst_test_dns_t *d, pst_uint_t i, char *word, char **rest)
{
    u_char  *b = d->buf[i];
    size_t   n;

    switch (d->type) {
    case PST_DNS_A:
        n = inet_pton(AF_INET, word, b) == 1 ? 4 : 0;
        break;
    case PST_DNS_AAAA:
        n = inet_pton(AF_INET6, word, b) == 1 ? 16 : 0;
        break;
    case PST_DNS_PTR:
        n = pst_test_dns_name(b, word);
        break;
    case PST_DNS_MX:
        b[0] = (u_char) (atoi(word) >> 8);
        b[1] = (u_char) atoi(word);
        word = strtok_r(NULL, " ", rest);
        n = word != NULL ? 2 + pst_test_dns_name(b + 2, word) : 0;
        break;
    case PST_DNS_TXT:
        n = strlen(word) + strlen(*rest) + (**rest != '\0');
        n = pst_min(n, 255);
        b[0] = (u_char) n;
        snprintf((char *) b + 1, 256, "%s%s%s", word, **rest ? " " : "",
                 *rest);
        *rest += strlen(*rest);
        n++;
        break;
    default:
        n = 0;
    }
    d->rd[i].data = b;
    d->rd[i].len = n;
    return n > 0 ? PST_OK : PST_ERROR;
}


int
pst_test_dns(pst_test_t *t, const char *name, int type,
    pst_dns_status_e status, const char *records, int delay)
{
    pst_test_dns_t  *d;
    char            *copy, *w, *rest;
    int              rc = PST_OK;

    if (t->ndns == PST_TEST_DNS_MAX || strlen(name) >= sizeof(d->name)) {
        return PST_ERROR;
    }
    d = &t->dns[t->ndns];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->type = type;
    d->status = status;
    d->delay = delay;

    copy = strdup(records != NULL ? records : "");
    if (copy == NULL) {
        return PST_ERROR;
    }
    for (w = strtok_r(copy, " ", &rest); w != NULL && rc == PST_OK;
         w = strtok_r(NULL, " ", &rest))
    {
        rc = d->n < PST_TEST_RR_MAX ? pst_test_dns_rr(d, d->n++, w, &rest)
                                    : PST_ERROR;
    }
    free(copy);
    if (rc == PST_OK) {
        t->ndns++;
    }
    return rc;
}


unsigned
pst_test_dns_asked(pst_test_t *t, const char *name)
{
    pst_uint_t  i;
    unsigned    n = 0;

    for (i = 0; i < t->ndns; i++) {
        if (strcasecmp(t->dns[i].name, name) == 0) {
            n += t->dns[i].asked;
        }
    }
    return n;
}


/* The core asks (pst_dns_script()): first for the delay (a NULL), then,
 * when it is over, for the answer itself. */
int
pst_test_dns_answer(const char *name, int type, pst_dns_answer_t *a,
    void *data)
{
    pst_test_t      *t = data;
    pst_test_dns_t  *d = NULL;
    pst_uint_t       i;

    for (i = 0; i < t->ndns && d == NULL; i++) {
        if (t->dns[i].type == type && strcasecmp(t->dns[i].name, name) == 0)
        {
            d = &t->dns[i];
        }
    }
    if (a == NULL) {                    /* asked: when does it come? */
        if (d == NULL) {
            return 0;
        }
        d->asked++;
        return d->delay;
    }
    if (d == NULL) {
        a->status = PST_DNS_NXDOMAIN;
        return 0;
    }
    a->status = d->status;
    a->count = d->status == PST_DNS_OK ? d->n : 0;
    a->rdata = d->rd;
    a->ttl = 300;
    a->secure = d->dnssec == PST_TEST_SECURE;
    if (d->dnssec == PST_TEST_BOGUS) {
        /* as the core gives a bogus answer (pst_dns_callback()) */
        a->bogus = 1;
        a->status = PST_DNS_SERVFAIL;
        a->count = 0;
    }
    return d->delay;
}


int
pst_test_dns_dnssec(pst_test_t *t, const char *name, int type,
    pst_test_dnssec_e dnssec)
{
    pst_uint_t  i;
    int         rc = PST_ERROR;

    for (i = 0; i < t->ndns; i++) {
        if (t->dns[i].type == type && strcasecmp(t->dns[i].name, name) == 0)
        {
            t->dns[i].dnssec = dnssec;
            rc = PST_OK;
        }
    }
    return rc;
}
