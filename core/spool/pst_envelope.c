/*
 * pst_envelope.c -- the envelope's one writer and its exact inverse,
 * and the same pair for the delivery state kept beside a queue file
 * (pst_envelope.h; the text format is in docs/SPOOL.md).
 *
 * Every string is xtext-encoded (RFC 3461), so a record is one line
 * whatever bytes a client sent; numbers are decimal.  A field the writer
 * emits is read back by the parser below it, into the same member.
 */

#include "pst_core.h"
#include "pst_spool.h"


typedef struct {
    u_char                      *pos;
    u_char                      *end;
    pst_str_t                    key;
    u_char                      *v;         /* value: v .. eol */
    u_char                      *eol;
} pst_env_iter_t;

/* the string fields of an envelope line by line, in the written order */
typedef struct {
    const char                  *key;
    size_t                       off;
    unsigned                     always:1;  /* written even when empty */
} pst_env_field_t;


static int pst_env_put(pst_buf_t *b, const void *p, size_t n);
static int pst_env_xtext(pst_buf_t *b, const pst_str_t *v);
static int pst_env_line(pst_buf_t *b, const char *key, const pst_str_t *v);
static int pst_env_num(pst_buf_t *b, const char *pre, int64_t v,
    const char *post);
static int pst_env_rcpt_write(pst_buf_t *b, const pst_env_rcpt_t *r,
    int full);
static int pst_env_lists(pst_buf_t *b, const pst_envelope_t *env);
static int pst_env_start(pst_buf_t **out, const char *magic);
static int pst_env_finish(pst_buf_t *b, pst_buf_t **out);
static int pst_env_magic(pst_env_iter_t *it, u_char *p, size_t n,
    const char *magic);
static int pst_env_next(pst_env_iter_t *it, const char **why);
static int pst_env_value(pst_pool_t *pool, u_char *v, size_t n,
    pst_str_t *out);
static int pst_env_attr(pst_pool_t *pool, pst_str_t *name, u_char *v,
    size_t n, pst_env_rcpt_t *r);
static int pst_env_rcpt_parse(pst_pool_t *pool, u_char *v, u_char *end,
    pst_env_rcpt_t *r);
static int pst_env_arrival(u_char *v, size_t n, pst_envelope_t *env);
static int pst_env_flag(u_char *v, size_t n);
static int pst_env_check(pst_envelope_t *env, const char **why);
static int pst_env_parse_line(pst_pool_t *pool, pst_env_iter_t *it,
    pst_envelope_t *env, const char **why);
static void pst_env_apply(pst_envelope_t *env, const pst_env_rcpt_t *got,
    int hold);


static const pst_env_field_t  pst_env_head[] = {
    { "client-addr", offsetof(pst_envelope_t, client_addr), 0 },
    { "client-name", offsetof(pst_envelope_t, client_name), 0 },
    { "helo", offsetof(pst_envelope_t, helo), 0 },
    { "protocol", offsetof(pst_envelope_t, protocol), 0 },
    { "auth", offsetof(pst_envelope_t, auth), 0 },
    { "tls", offsetof(pst_envelope_t, tls), 0 },
    { "server", offsetof(pst_envelope_t, server), 0 },
    { "auth-param", offsetof(pst_envelope_t, auth_param), 0 },
    { "sender", offsetof(pst_envelope_t, sender), 1 },
    { "body", offsetof(pst_envelope_t, body), 0 },
    { "ret", offsetof(pst_envelope_t, ret), 0 },
    { "envid", offsetof(pst_envelope_t, envid), 0 },
    { NULL, 0, 0 }
};

static const char  *pst_rcpt_states[] = {
    "pending", "delivered", "deferred", "failed"
};


#define pst_env_member(env, f)                                               \
    ((pst_str_t *) (void *) ((u_char *) (env) + (f)->off))


const char *
pst_rcpt_state_name(pst_rcpt_state_e state)
{
    if ((unsigned) state >= pst_nelems(pst_rcpt_states)) {
        return "unknown";
    }
    return pst_rcpt_states[state];
}


int
pst_envelope_init(pst_pool_t *pool, pst_envelope_t *env)
{
    memset(env, 0, sizeof(pst_envelope_t));
    env->size = -1;
    env->rcpts = pst_array_create(pool, 4, sizeof(pst_env_rcpt_t));
    env->prepend = pst_array_create(pool, 1, sizeof(pst_str_t));

    return (env->rcpts && env->prepend) ? PST_OK : PST_ERROR;
}


pst_env_rcpt_t *
pst_envelope_add_rcpt(pst_pool_t *pool, pst_envelope_t *env,
    const u_char *addr, size_t len)
{
    pst_env_rcpt_t  *r;

    r = pst_array_push(env->rcpts);
    if (r == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(pst_env_rcpt_t));

    r->addr.data = pst_palloc(pool, len + 1);
    if (r->addr.data == NULL) {
        env->rcpts->nelts--;
        return NULL;
    }
    memcpy(r->addr.data, addr, len);
    r->addr.data[len] = '\0';
    r->addr.len = len;

    return r;
}


int
pst_envelope_final(const pst_envelope_t *env)
{
    pst_env_rcpt_t  *r;
    pst_uint_t       i;

    if (env->rcpts == NULL) {
        return 0;
    }
    r = env->rcpts->elts;
    for (i = 0; i < env->rcpts->nelts; i++) {
        if (r[i].state != PST_RCPT_DELIVERED && r[i].state != PST_RCPT_FAILED)
        {
            return 0;
        }
    }
    return env->rcpts->nelts > 0;
}


/* ------------------------------------------------------------------ */
/* Writer                                                              */

static int
pst_env_put(pst_buf_t *b, const void *p, size_t n)
{
    return pst_buf_append(b, p, n, PST_ENVELOPE_MAX);
}


static int
pst_env_xtext(pst_buf_t *b, const pst_str_t *v)
{
    const u_char  *p = v->data;
    u_char         tmp[3 * 512];
    size_t         n = v->len, k;

    while (n > 0) {
        /* in slices: at most 3 output bytes per input byte */
        k = pst_min(n, sizeof(tmp) / 3);
        if (pst_env_put(b, tmp, pst_xtext_encode(tmp, p, k)) != PST_OK) {
            return PST_ERROR;
        }
        p += k;
        n -= k;
    }

    return PST_OK;
}


/* "key xtext\n" */
static int
pst_env_line(pst_buf_t *b, const char *key, const pst_str_t *v)
{
    if (pst_env_put(b, key, strlen(key)) != PST_OK
        || pst_env_put(b, " ", 1) != PST_OK
        || pst_env_xtext(b, v) != PST_OK)
    {
        return PST_ERROR;
    }
    return pst_env_put(b, "\n", 1);
}


/* pre, the number, post */
static int
pst_env_num(pst_buf_t *b, const char *pre, int64_t v, const char *post)
{
    char  num[32];
    int   n;

    n = snprintf(num, sizeof(num), "%lld", (long long) v);
    if (pst_env_put(b, pre, strlen(pre)) != PST_OK
        || pst_env_put(b, num, (size_t) n) != PST_OK)
    {
        return PST_ERROR;
    }
    return pst_env_put(b, post, strlen(post));
}


/* One "rcpt" line; full: with the DSN parameters, else the state only. */
static int
pst_env_rcpt_write(pst_buf_t *b, const pst_env_rcpt_t *r, int full)
{
    const char  *state;

    if (pst_env_put(b, "rcpt ", 5) != PST_OK
        || pst_env_xtext(b, &r->addr) != PST_OK)
    {
        return PST_ERROR;
    }

    if (full) {
        if (pst_env_num(b, " notify=", r->notify, "") != PST_OK) {
            return PST_ERROR;
        }
        if (r->orcpt.len
            && (pst_env_put(b, " orcpt=", 7) != PST_OK
                || pst_env_xtext(b, &r->orcpt) != PST_OK))
        {
            return PST_ERROR;
        }
    }

    state = pst_rcpt_state_name(r->state);
    if (pst_env_put(b, " state=", 7) != PST_OK
        || pst_env_put(b, state, strlen(state)) != PST_OK
        || (r->attempts
            && pst_env_num(b, " attempts=", r->attempts, "") != PST_OK)
        || (r->next_try
            && pst_env_num(b, " next-try=", r->next_try, "") != PST_OK)
        || (r->last_try
            && pst_env_num(b, " last-try=", r->last_try, "") != PST_OK)
        || (r->reply.len
            && (pst_env_put(b, " reply=", 7) != PST_OK
                || pst_env_xtext(b, &r->reply) != PST_OK))
        || (r->remote.len
            && (pst_env_put(b, " remote=", 8) != PST_OK
                || pst_env_xtext(b, &r->remote) != PST_OK))
        || (r->dsn_sent
            && pst_env_num(b, " dsn=", r->dsn_sent, "") != PST_OK))
    {
        return PST_ERROR;
    }

    return pst_env_put(b, "\n", 1);
}


static int
pst_env_start(pst_buf_t **out, const char *magic)
{
    *out = pst_buf_alloc(1024);
    if (*out == NULL) {
        return PST_ERROR;
    }
    if (pst_env_put(*out, magic, strlen(magic)) != PST_OK
        || pst_env_put(*out, "\n", 1) != PST_OK)
    {
        pst_buf_destroy(*out);
        *out = NULL;
        return PST_ERROR;
    }
    return PST_OK;
}


static int
pst_env_finish(pst_buf_t *b, pst_buf_t **out)
{
    if (pst_env_put(b, "end\n", 4) != PST_OK) {
        pst_buf_destroy(b);
        *out = NULL;
        return PST_ERROR;
    }
    return PST_OK;
}


/* the rcpt and prepend lines */
static int
pst_env_lists(pst_buf_t *b, const pst_envelope_t *env)
{
    const pst_env_rcpt_t  *r;
    const pst_str_t       *h;
    pst_uint_t             i;

    r = env->rcpts ? env->rcpts->elts : NULL;
    for (i = 0; r && i < env->rcpts->nelts; i++) {
        if (pst_env_rcpt_write(b, &r[i], 1) != PST_OK) {
            return PST_ERROR;
        }
    }

    h = env->prepend ? env->prepend->elts : NULL;
    for (i = 0; h && i < env->prepend->nelts; i++) {
        if (pst_env_line(b, "prepend", &h[i]) != PST_OK) {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


int
pst_envelope_write(const pst_envelope_t *env, pst_buf_t **out)
{
    const pst_env_field_t  *f;
    const pst_str_t        *v;
    pst_buf_t              *b;
    char                    num[48];

    *out = NULL;

    if (env->arrival_usec < 0 || env->arrival_usec > 999999
        || pst_env_start(out, PST_ENVELOPE_MAGIC) != PST_OK)
    {
        return PST_ERROR;
    }
    b = *out;

    snprintf(num, sizeof(num), "arrival %lld.%06ld\n",
             (long long) env->arrival_sec, env->arrival_usec);
    if (pst_env_line(b, "id", &env->id) != PST_OK
        || pst_env_put(b, num, strlen(num)) != PST_OK)
    {
        goto failed;
    }

    for (f = pst_env_head; f->key; f++) {
        v = pst_env_member(env, f);
        if ((v->len || f->always) && pst_env_line(b, f->key, v) != PST_OK) {
            goto failed;
        }
    }

    if ((env->smtputf8 && pst_env_put(b, "smtputf8 1\n", 11) != PST_OK)
        || (env->requiretls
            && pst_env_put(b, "requiretls 1\n", 13) != PST_OK)
        || (env->size >= 0 && pst_env_num(b, "size ", env->size, "\n")
                              != PST_OK)
        || (env->hold && pst_env_put(b, "hold 1\n", 7) != PST_OK))
    {
        goto failed;
    }

    if (pst_env_lists(b, env) != PST_OK) {
        goto failed;
    }

    return pst_env_finish(b, out);

failed:

    pst_buf_destroy(b);
    *out = NULL;
    return PST_ERROR;
}


int
pst_envelope_write_state(const pst_envelope_t *env, pst_buf_t **out)
{
    const pst_env_rcpt_t  *r;
    pst_uint_t             i;

    *out = NULL;
    if (env->rcpts == NULL
        || pst_env_start(out, PST_ENVELOPE_STATE_MAGIC) != PST_OK)
    {
        return PST_ERROR;
    }
    r = env->rcpts->elts;

    if (pst_env_line(*out, "id", &env->id) != PST_OK
        || (env->hold && pst_env_put(*out, "hold 1\n", 7) != PST_OK))
    {
        goto failed;
    }

    for (i = 0; i < env->rcpts->nelts; i++) {
        if (pst_env_rcpt_write(*out, &r[i], 0) != PST_OK) {
            goto failed;
        }
    }

    return pst_env_finish(*out, out);

failed:

    pst_buf_destroy(*out);
    *out = NULL;
    return PST_ERROR;
}


/* ------------------------------------------------------------------ */
/* Parser                                                              */

/* PST_OK when p starts with the magic line. */
static int
pst_env_magic(pst_env_iter_t *it, u_char *p, size_t n, const char *magic)
{
    size_t  m = strlen(magic);

    if (n < m + 1 || memcmp(p, magic, m) != 0 || p[m] != '\n') {
        return PST_ERROR;
    }
    it->pos = p + m + 1;
    it->end = p + n;
    return PST_OK;
}


/* The next line: PST_OK (key, v..eol), PST_DONE at "end", PST_ERROR. */
static int
pst_env_next(pst_env_iter_t *it, const char **why)
{
    u_char  *line, *sp;

    line = it->pos;
    it->eol = (line < it->end)
              ? memchr(line, '\n', (size_t) (it->end - line)) : NULL;
    if (it->eol == NULL) {
        *why = line < it->end ? "truncated line"
                              : "no \"end\" line (truncated)";
        return PST_ERROR;
    }
    it->pos = it->eol + 1;

    if (it->eol - line == 3 && memcmp(line, "end", 3) == 0) {
        return PST_DONE;
    }

    sp = memchr(line, ' ', (size_t) (it->eol - line));
    it->key.data = line;
    it->key.len = sp ? (size_t) (sp - line) : (size_t) (it->eol - line);
    it->v = sp ? sp + 1 : it->eol;

    return PST_OK;
}


static int
pst_env_value(pst_pool_t *pool, u_char *v, size_t n, pst_str_t *out)
{
    ssize_t  k;

    out->data = pst_palloc(pool, n + 1);
    if (out->data == NULL) {
        return PST_ERROR;
    }
    k = pst_xtext_decode(out->data, v, n);
    if (k < 0) {
        return PST_ERROR;
    }
    out->len = (size_t) k;
    out->data[k] = '\0';
    return PST_OK;
}


static int
pst_env_attr(pst_pool_t *pool, pst_str_t *name, u_char *v, size_t n,
    pst_env_rcpt_t *r)
{
    int64_t  k;
    size_t   i;

    /* counted numbers: atoi() would read past the value */
    if (pst_str_eq(name, "notify")) {
        k = pst_atoi(v, n, 0xff);
        r->notify = (unsigned) k;
    } else if (pst_str_eq(name, "attempts")) {
        k = pst_atoi(v, n, UINT_MAX);
        r->attempts = (unsigned) k;
    } else if (pst_str_eq(name, "dsn")) {
        k = pst_atoi(v, n, 0xff);
        r->dsn_sent = (unsigned) k;
    } else if (pst_str_eq(name, "next-try")) {
        k = pst_atoi(v, n, INT64_MAX);
        r->next_try = (time_t) k;
    } else if (pst_str_eq(name, "last-try")) {
        k = pst_atoi(v, n, INT64_MAX);
        r->last_try = (time_t) k;
    } else if (pst_str_eq(name, "orcpt")) {
        return pst_env_value(pool, v, n, &r->orcpt);
    } else if (pst_str_eq(name, "reply")) {
        return pst_env_value(pool, v, n, &r->reply);
    } else if (pst_str_eq(name, "remote")) {
        return pst_env_value(pool, v, n, &r->remote);
    } else if (pst_str_eq(name, "state")) {
        for (i = 0; i < pst_nelems(pst_rcpt_states); i++) {
            if (strlen(pst_rcpt_states[i]) == n
                && memcmp(pst_rcpt_states[i], v, n) == 0)
            {
                r->state = (pst_rcpt_state_e) i;
                return PST_OK;
            }
        }
        /* "sent": what version 1's documentation called delivered */
        if (n == 4 && memcmp(v, "sent", 4) == 0) {
            r->state = PST_RCPT_DELIVERED;
            return PST_OK;
        }
        return PST_ERROR;
    } else {
        return PST_OK;      /* an attribute of a newer minor: skipped */
    }

    return k < 0 ? PST_ERROR : PST_OK;
}


static int
pst_env_rcpt_parse(pst_pool_t *pool, u_char *v, u_char *end,
    pst_env_rcpt_t *r)
{
    pst_str_t  name;
    u_char    *w, *eq;

    memset(r, 0, sizeof(pst_env_rcpt_t));

    w = v;
    while (v < end && *v != ' ') {
        v++;
    }
    if (pst_env_value(pool, w, (size_t) (v - w), &r->addr) != PST_OK) {
        return PST_ERROR;
    }

    while (v < end) {
        w = ++v;
        while (v < end && *v != ' ') {
            v++;
        }
        eq = memchr(w, '=', (size_t) (v - w));
        if (eq == NULL) {
            return PST_ERROR;
        }
        name.data = w;
        name.len = (size_t) (eq - w);
        if (pst_env_attr(pool, &name, eq + 1, (size_t) (v - eq - 1), r)
            != PST_OK)
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


/* "SECONDS.MICROSECONDS" (version 1 wrote .000000), or "SECONDS" */
static int
pst_env_arrival(u_char *v, size_t n, pst_envelope_t *env)
{
    u_char   *dot;
    int64_t   sec, usec = 0;
    size_t    k;

    dot = memchr(v, '.', n);
    k = dot ? (size_t) (dot - v) : n;
    sec = pst_atoi(v, k, INT64_MAX);
    if (sec < 0) {
        return PST_ERROR;
    }

    if (dot != NULL) {
        k = n - k - 1;
        if (k != 6) {
            return PST_ERROR;
        }
        usec = pst_atoi(dot + 1, k, 999999);
        if (usec < 0) {
            return PST_ERROR;
        }
    }

    env->arrival_sec = (time_t) sec;
    env->arrival_usec = (long) usec;
    return PST_OK;
}


static int
pst_env_flag(u_char *v, size_t n)
{
    return n == 1 && *v == '1';
}


static int
pst_env_check(pst_envelope_t *env, const char **why)
{
    if (!pst_spool_valid_id(env->id.data, env->id.len)) {
        *why = "bad or missing id";
        return PST_ERROR;
    }
    if (env->rcpts->nelts == 0) {
        *why = "no recipients";
        return PST_ERROR;
    }
    return PST_OK;
}


/* One line of an envelope into env. */
static int
pst_env_parse_line(pst_pool_t *pool, pst_env_iter_t *it, pst_envelope_t *env,
    const char **why)
{
    const pst_env_field_t  *f;
    pst_env_rcpt_t         *r;
    pst_str_t              *h, *field;
    size_t                  len = (size_t) (it->eol - it->v);

    field = pst_str_eq(&it->key, "id") ? &env->id : NULL;
    for (f = pst_env_head; field == NULL && f->key; f++) {
        if (it->key.len == strlen(f->key)
            && memcmp(it->key.data, f->key, it->key.len) == 0)
        {
            field = pst_env_member(env, f);
        }
    }

    if (field != NULL) {
        if (pst_env_value(pool, it->v, len, field) != PST_OK) {
            *why = "bad xtext value";
            return PST_ERROR;
        }

    } else if (pst_str_eq(&it->key, "smtputf8")) {
        env->smtputf8 = pst_env_flag(it->v, len);
    } else if (pst_str_eq(&it->key, "requiretls")) {
        env->requiretls = pst_env_flag(it->v, len);
    } else if (pst_str_eq(&it->key, "hold")) {
        env->hold = pst_env_flag(it->v, len);
    } else if (pst_str_eq(&it->key, "size")) {
        env->size = pst_atoi(it->v, len, INT64_MAX);

    } else if (pst_str_eq(&it->key, "arrival")) {
        if (pst_env_arrival(it->v, len, env) != PST_OK) {
            *why = "bad arrival line";
            return PST_ERROR;
        }

    } else if (pst_str_eq(&it->key, "rcpt")) {
        r = pst_array_push(env->rcpts);
        if (r == NULL || pst_env_rcpt_parse(pool, it->v, it->eol, r)
                         != PST_OK)
        {
            *why = "bad rcpt line";
            return PST_ERROR;
        }

    } else if (pst_str_eq(&it->key, "prepend")) {
        h = pst_array_push(env->prepend);
        if (h == NULL || pst_env_value(pool, it->v, len, h) != PST_OK) {
            *why = "bad prepend line";
            return PST_ERROR;
        }
    }
    /* other keys: added by a newer minor version, ignored */

    return PST_OK;
}


int
pst_envelope_parse(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why)
{
    pst_env_iter_t  it;
    int             rc;

    if (pst_envelope_init(pool, env) != PST_OK) {
        *why = "out of memory";
        return PST_ERROR;
    }

    if (pst_env_magic(&it, p, n, PST_ENVELOPE_MAGIC) != PST_OK
        && pst_env_magic(&it, p, n, PST_ENVELOPE_MAGIC_1) != PST_OK)
    {
        *why = "not a version 1 or 2 envelope";
        return PST_ERROR;
    }

    while ((rc = pst_env_next(&it, why)) == PST_OK) {
        if (pst_env_parse_line(pool, &it, env, why) != PST_OK) {
            return PST_ERROR;
        }
    }

    if (rc != PST_DONE) {
        return PST_ERROR;
    }

    return pst_env_check(env, why);
}


static void
pst_env_apply(pst_envelope_t *env, const pst_env_rcpt_t *got, int hold)
{
    pst_env_rcpt_t  *r = env->rcpts->elts;
    pst_uint_t       i;

    env->hold = hold;
    for (i = 0; i < env->rcpts->nelts; i++) {
        r[i].state = got[i].state;
        r[i].attempts = got[i].attempts;
        r[i].next_try = got[i].next_try;
        r[i].last_try = got[i].last_try;
        r[i].reply = got[i].reply;
        r[i].remote = got[i].remote;
        r[i].dsn_sent = got[i].dsn_sent;
    }
}


int
pst_envelope_parse_state(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why)
{
    pst_env_iter_t   it;
    pst_env_rcpt_t  *r, *got;
    pst_str_t        id;
    pst_uint_t       i = 0, nr = env->rcpts->nelts;
    int              rc, hold = 0;

    r = env->rcpts->elts;
    got = pst_palloc(pool, (nr ? nr : 1) * sizeof(pst_env_rcpt_t));
    if (got == NULL) {
        *why = "out of memory";
        return PST_ERROR;
    }
    id.len = 0;
    id.data = NULL;

    if (pst_env_magic(&it, p, n, PST_ENVELOPE_STATE_MAGIC) != PST_OK) {
        *why = "not a version 1 state file";
        return PST_ERROR;
    }

    while ((rc = pst_env_next(&it, why)) == PST_OK) {
        if (pst_str_eq(&it.key, "id")) {
            if (pst_env_value(pool, it.v, (size_t) (it.eol - it.v), &id)
                != PST_OK)
            {
                *why = "bad xtext value";
                return PST_ERROR;
            }
        } else if (pst_str_eq(&it.key, "hold")) {
            hold = pst_env_flag(it.v, (size_t) (it.eol - it.v));
        } else if (pst_str_eq(&it.key, "rcpt")) {
            if (i == nr
                || pst_env_rcpt_parse(pool, it.v, it.eol, &got[i]) != PST_OK
                || got[i].addr.len != r[i].addr.len
                || memcmp(got[i].addr.data, r[i].addr.data, r[i].addr.len))
            {
                *why = "state of other recipients";
                return PST_ERROR;
            }
            i++;
        }
    }

    if (rc != PST_DONE) {
        return PST_ERROR;
    }
    if (i != nr || id.len != env->id.len
        || memcmp(id.data, env->id.data, id.len) != 0)
    {
        *why = "state of another message";
        return PST_ERROR;
    }

    /* all or nothing: applied only once the whole file has parsed */
    pst_env_apply(env, got, hold);
    return PST_OK;
}
