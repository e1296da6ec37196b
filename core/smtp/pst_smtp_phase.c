/*
 * pst_smtp_phase.c -- hook chains, pending calls and resume tokens.
 *
 * Each server block has one chain per phase: the hooks of the modules
 * switched on for it, ordered by priority (a module_priority line, else
 * the hook's own) and then by load_module order.  Running a phase calls
 * the handlers in turn until one gives a verdict other than CONTINUE.
 *
 * A handler that returns PENDING has taken a token (pst_call_defer).  A
 * token is the session id and a 16-bit serial; pst_hook_resume() finds
 * the session through the worker's id table and checks the serial, so
 * a resume after the session ended, after the module's timeout fired or
 * a second resume of the same call is logged and ignored -- never a use
 * after free.  The verdict is applied from a posted event, not from
 * inside pst_hook_resume(), so a module may resume from anywhere
 * (including from inside its own handler) without re-entering the
 * session.
 *
 * What a verdict becomes on the wire is decided here too, in one place
 * for every phase (pst_smtp_verdict_map()): the reply class follows the
 * verdict, a module's enhanced code is used only when it is well formed
 * and of the reply's class, and control characters never reach the
 * client.
 */

#include "pst_smtp.h"
#include "pst_event.h"

#define PST_SESSION_BUCKETS   4096

static pst_session_t  **session_table;
static pst_uint_t       session_count;


static void pst_phase_next(pst_session_t *s);
static void pst_phase_timeout(pst_event_t *ev);
static void pst_phase_resume_handler(pst_event_t *ev);
static void pst_phase_finish(pst_session_t *s, pst_verdict_e v);
static pst_verdict_e pst_phase_verdict(pst_session_t *s, pst_verdict_e v);
static int pst_phase_notify(pst_phase_e p);
static void pst_phase_cancel_call(pst_session_t *s);
static pst_session_t *pst_hook_pending_session(uint64_t token);
static void pst_hook_stale(uint64_t token);
static size_t pst_phase_clean(u_char *dst, const u_char *src, size_t n);
static int pst_ecode_valid(const char *e, int cls);


static const char  *phase_names[] = {
    "connect", "helo", "auth", "mail", "rcpt", "data", "message", "queue",
    "deliver", "disconnect", "committed", "unknown"
};


/*
 * The replies of each phase: [0] success, [1] REJECT, [2] TEMPFAIL.  A
 * success code of 0 means the caller composes the success (greeting,
 * EHLO list, 354, "queued as").  secret: the module's code and text of
 * a REJECT or TEMPFAIL are logged, never sent (AUTH: RFC 4954 replies
 * only, nothing that tells a guesser which users exist).
 */
typedef struct {
    int                          code[3];
    const char                  *ecode[3];
    const char                  *text[3];
    unsigned                     own_ok:1;       /* ACCEPT's 2xx text */
    unsigned                     secret:1;
    unsigned                     tempfail_closes:1;
} pst_phase_reply_t;

#define PST_PHASE_MSG_REPLY                                                 \
    { { 0, 554, 451 }, { NULL, "5.7.1", "4.7.1" },                          \
      { NULL, "Message refused", "Try again later" }, 0, 0, 0 }

static const pst_phase_reply_t  phase_replies[] = {
    /* CONNECT: RFC 5321 3.1, 554 greeting or 421 and close */
    { { 0, 554, 421 }, { NULL, "5.7.1", "4.7.0" },
      { NULL, "Access denied", "Service not available, closing" },
      0, 0, 1 },
    /* HELO */
    { { 0, 550, 451 }, { NULL, "5.7.1", "4.7.1" },
      { NULL, "HELO rejected", "HELO temporarily rejected" }, 0, 0, 0 },
    /* AUTH: RFC 4954 6 */
    { { 0, 535, 454 }, { NULL, "5.7.8", "4.7.0" },
      { NULL, "Error: authentication credentials invalid",
        "Temporary authentication failure" }, 0, 1, 0 },
    /* MAIL */
    { { 250, 550, 451 }, { "2.1.0", "5.7.1", "4.7.1" },
      { "Ok", "Sender rejected", "Sender temporarily rejected" }, 1, 0, 0 },
    /* RCPT */
    { { 250, 550, 450 }, { "2.1.5", "5.1.1", "4.7.1" },
      { "Ok", "Recipient address rejected",
        "Recipient temporarily rejected" }, 1, 0, 0 },
    /* DATA, MESSAGE, QUEUE, DELIVER (reserved) */
    PST_PHASE_MSG_REPLY,
    PST_PHASE_MSG_REPLY,
    PST_PHASE_MSG_REPLY,
    PST_PHASE_MSG_REPLY,
    /* DISCONNECT, COMMITTED: nothing is sent, the verdict is ignored */
    { { 0, 0, 0 }, { NULL, NULL, NULL }, { NULL, NULL, NULL }, 0, 0, 0 },
    { { 0, 0, 0 }, { NULL, NULL, NULL }, { NULL, NULL, NULL }, 0, 0, 0 },
    /* UNKNOWN: success is the caller's 500 */
    { { 0, 500, 451 }, { NULL, "5.5.2", "4.7.1" },
      { NULL, "Error: command not recognized", "Try again later" },
      0, 0, 0 },
};

/* one entry per phase, or the build fails */
typedef char  pst_phase_tables_check[
    (sizeof(phase_replies) / sizeof(phase_replies[0]) == PST_PHASE_MAX
     && sizeof(phase_names) / sizeof(phase_names[0]) == PST_PHASE_MAX)
    ? 1 : -1];


const char *
pst_phase_name(pst_phase_e p)
{
    return p < PST_PHASE_MAX ? phase_names[p] : "?";
}


/* ------------------------------------------------------------------ */
/* Session id table                                                    */

int
pst_smtp_sessions_init(void)
{
    /* again in the same process: libpostern-test's next harness, whose
     * predecessor's sessions have all ended */
    if (session_table != NULL) {
        memset(session_table, 0, PST_SESSION_BUCKETS
                                 * sizeof(pst_session_t *));
    } else {
        session_table = calloc(PST_SESSION_BUCKETS,
                               sizeof(pst_session_t *));
    }
    session_count = 0;
    return session_table ? PST_OK : PST_ERROR;
}


void
pst_smtp_session_register(pst_session_t *s)
{
    pst_uint_t  b = s->id % PST_SESSION_BUCKETS;

    s->hash_next = session_table[b];
    session_table[b] = s;
    session_count++;
}


void
pst_smtp_session_unregister(pst_session_t *s)
{
    pst_session_t  **sp;

    for (sp = &session_table[s->id % PST_SESSION_BUCKETS]; *sp != NULL;
         sp = &(*sp)->hash_next)
    {
        if (*sp == s) {
            *sp = s->hash_next;
            session_count--;
            return;
        }
    }
}


pst_session_t *
pst_smtp_session_find(uint64_t id)
{
    pst_session_t  *s;

    if (session_table == NULL) {
        return NULL;
    }

    for (s = session_table[id % PST_SESSION_BUCKETS]; s != NULL;
         s = s->hash_next)
    {
        if (s->id == id) {
            return s;
        }
    }

    return NULL;
}


pst_uint_t
pst_smtp_session_count(void)
{
    return session_count;
}


/* ------------------------------------------------------------------ */
/* Chains                                                              */

static int
pst_hook_cmp(const void *a, const void *b)
{
    const pst_hook_entry_t  *x = a, *y = b;

    if (x->priority != y->priority) {
        return x->priority < y->priority ? -1 : 1;
    }
    return x->order < y->order ? -1 : (x->order > y->order);
}


int
pst_smtp_build_chains(pst_conf_t *cf, pst_cycle_t *cycle, pst_server_t *srv)
{
    pst_module_entry_t  *me;
    pst_hook_entry_t    *he;
    const pst_hook_t    *h;
    pst_uint_t           i, p, order;
    pst_str_t           *want;

    for (p = 0; p < PST_PHASE_MAX; p++) {
        srv->chains[p].elts = NULL;
        srv->chains[p].nelts = 0;
        srv->chains[p].nalloc = 0;
        srv->chains[p].size = sizeof(pst_hook_entry_t);
        srv->chains[p].pool = cycle->pool;
        srv->chains[p].elts = pst_palloc(cycle->pool,
                                         4 * sizeof(pst_hook_entry_t));
        if (srv->chains[p].elts == NULL) {
            return PST_ERROR;
        }
        srv->chains[p].nalloc = 4;
    }

    me = cycle->modules.elts;
    order = 0;

    for (i = 0; i < cycle->modules.nelts; i++) {
        if (!srv->enabled[i] || me[i].desc.hooks == NULL) {
            continue;
        }

        for (h = me[i].desc.hooks; h->handler != NULL; h++) {
            if (h->phase >= PST_PHASE_MAX) {
                pst_conf_error(cf, "module \"%s\" declares a hook for an"
                               " unknown phase %d", me[i].desc.name,
                               (int) h->phase);
                return PST_ERROR;
            }
            he = pst_array_push(&srv->chains[h->phase]);
            if (he == NULL) {
                return PST_ERROR;
            }
            he->handler = h->handler;
            he->module = &me[i];
            /* module_priority shifts all of a module's hooks, so a module
             * that refuses early and accepts late keeps that order */
            he->priority = h->priority + me[i].priority;
            he->order = order++;
        }
    }

    for (p = 0; p < PST_PHASE_MAX; p++) {
        qsort(srv->chains[p].elts, srv->chains[p].nelts,
              sizeof(pst_hook_entry_t), pst_hook_cmp);
    }

    /* the store: named by "store", else the first enabled store module */
    srv->store = NULL;
    want = &srv->conf->store;

    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.store == NULL || !srv->enabled[i]) {
            continue;
        }
        if (want->len == 0
            || (strlen(me[i].desc.name) == want->len
                && memcmp(me[i].desc.name, want->data, want->len) == 0))
        {
            srv->store = &me[i];
            break;
        }
    }

    if (want->len != 0 && srv->store == NULL) {
        pst_conf_error(cf, "\"store %.*s\": no such store module is loaded"
                       " and switched on for this server",
                       (int) want->len, want->data);
        return PST_ERROR;
    }

    if (srv->store == NULL) {
        pst_conf_warn(cf, "this server has no store module (load"
                      " store_spool.so): it will refuse DATA");
    }

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Running a phase                                                     */

void
pst_smtp_run_phase(pst_session_t *s, pst_phase_e phase,
    pst_phase_done_pt done)
{
    pst_smtp_run_phase_at(s, phase, 0, done);
}


/* Start at the hook with this index: a SASL exchange that a backend
 * took over goes on with that backend only (pst_smtp_auth.c). */
void
pst_smtp_run_phase_at(pst_session_t *s, pst_phase_e phase,
    pst_uint_t index, pst_phase_done_pt done)
{
    s->phase = phase;
    s->phase_done = done;
    s->hook_index = index;
    s->pending = 0;
    s->resumed = 0;
    s->verdict_module = NULL;

    if (s->hook_timer.handler == NULL) {
        s->hook_timer.data = s;
        s->hook_timer.handler = pst_phase_timeout;
        s->resume.data = s;
        s->resume.handler = pst_phase_resume_handler;
    }

    pst_phase_next(s);
}


static void
pst_phase_call_init(pst_session_t *s)
{
    pst_call_t  *call = &s->call;

    call->session = s;
    call->phase = s->phase;
    call->code = 0;
    call->ecode[0] = '\0';
    call->text_len = 0;
    call->token = 0;
    call->data = NULL;
    call->cancel = NULL;
}


static void
pst_phase_next(pst_session_t *s)
{
    pst_hook_entry_t  *he;
    pst_array_t       *chain;
    pst_verdict_e      v;
    void              *conf;

    chain = &s->server->chains[s->phase];

    while (s->hook_index < chain->nelts) {
        he = (pst_hook_entry_t *) chain->elts + s->hook_index;
        conf = s->server->srv_conf[he->module->index];

        pst_phase_call_init(s);
        s->pending_module = he->module;
        s->in_handler = 1;
        s->hook_usec = pst_metric_usec();
        v = he->handler(&s->call, conf);
        s->in_handler = 0;
        if (v != PST_HOOK_PENDING) {
            pst_smtp_metric_hook(s, he->module);
        }

        if (pst_phase_notify(s->phase)) {
            /* nothing waits for the end of a session or for a commit:
             * every hook runs, and a token taken here is stale at once */
            if (s->call.token != 0) {
                s->serial++;
            }
            s->hook_index++;
            continue;
        }

        v = pst_phase_verdict(s, v);

        if (v == PST_HOOK_PENDING) {
            if (s->call.token == 0) {
                pst_log_session(s, PST_LOG_ALERT, "module \"%s\" returned"
                                " PENDING in phase %s without"
                                " pst_call_defer(): treated as TEMPFAIL",
                                he->module->desc.name,
                                pst_phase_name(s->phase));
                v = PST_HOOK_TEMPFAIL;
            } else {
                s->pending = 1;
                if (s->resumed) {
                    /* resumed from inside the handler: already posted */
                    return;
                }
                pst_event_add_timer(&s->hook_timer,
                    he->module->timeout != PST_CONF_UNSET_MSEC
                    ? he->module->timeout : s->conf->hook_timeout);
                return;
            }
        }

        if (s->call.token != 0) {
            /* deferred but answered synchronously: the token is spent */
            s->serial++;
        }

        if (v != PST_HOOK_CONTINUE) {
            if (s->conf->debug) {
                pst_log_session(s, PST_LOG_INFO, "phase %s: module \"%s\""
                                " answered %d", pst_phase_name(s->phase),
                                he->module->desc.name, (int) v);
            }
            pst_phase_finish(s, v);
            return;
        }

        s->hook_index++;
    }

    pst_phase_finish(s, PST_HOOK_CONTINUE);
}


static void
pst_phase_finish(pst_session_t *s, pst_verdict_e v)
{
    pst_phase_done_pt  done;

    if (s->pending_module != NULL) {
        s->verdict_module = s->pending_module;     /* resumed */
    }
    s->pending = 0;
    s->pending_module = NULL;
    done = s->phase_done;
    s->phase_done = NULL;

    if (done != NULL) {
        done(s, v);
    }
}


uint64_t
pst_call_defer(pst_call_t *call)
{
    pst_session_t  *s = call->session;

    if (call->token == 0) {
        s->serial++;
        if (s->serial == 0) {
            s->serial = 1;
        }
        s->resumed = 0;
        call->token = (s->id << 16) | s->serial;
    }

    return call->token;
}


static void
pst_phase_timeout(pst_event_t *ev)
{
    pst_session_t       *s = ev->data;
    pst_module_entry_t  *me = s->pending_module;
    pst_verdict_e        v;

    if (!s->pending) {
        return;
    }

    pst_log_session(s, PST_LOG_WARN, "module \"%s\" did not answer in phase"
                    " %s in time", me ? me->desc.name : "?",
                    pst_phase_name(s->phase));

    pst_smtp_metric_hook(s, me);
    /* any later resume with this token is stale */
    s->timed_out = s->serial;
    pst_phase_cancel_call(s);

    pst_phase_call_init(s);

    switch (me ? me->fail_action : PST_FAIL_TEMPFAIL) {
    case PST_FAIL_ACCEPT:
        s->hook_index++;
        pst_phase_next(s);
        return;
    case PST_FAIL_REJECT:
        v = PST_HOOK_REJECT;
        break;
    default:
        v = PST_HOOK_TEMPFAIL;
        pst_call_reply(&s->call, 451, "4.4.3",
                       "Temporary failure, please try again later");
    }

    pst_phase_finish(s, v);
}


/*
 * A completion the core ignores, logged by why.  The client hung up
 * while the hook waited (the session is gone, or going: a cancel
 * callback that resumes): ordinary, debug.  The module's timeout gave
 * the call up first: the timeout has warned already.  Anything else is
 * a second completion of one call, or a token never given: a module
 * bug, a warning.
 */
static void
pst_hook_stale(uint64_t token)
{
    pst_session_t       *s;
    unsigned long long   id = token >> 16;
    unsigned             serial = (unsigned) (token & 0xffff);

    s = pst_smtp_session_find(id);

    if (s == NULL || s->closing) {
        pst_log_debug("hook completion after session %llu ended: ignored",
                      id);
    } else if (serial == s->timed_out) {
        pst_log_error(PST_LOG_INFO, 0, "hook completion after the module's"
                      " timeout (session %llu) ignored", id);
    } else {
        pst_log_error(PST_LOG_WARN, 0, "stale or repeated hook completion"
                      " (session %llu serial %u) ignored", id, serial);
    }
}


int
pst_hook_resume(uint64_t token, pst_verdict_e verdict, int code,
    const char *ecode, const char *fmt, ...)
{
    pst_session_t  *s;
    va_list         ap;
    char            text[384];

    s = pst_hook_pending_session(token);

    if (s == NULL) {
        pst_hook_stale(token);
        return PST_DECLINED;
    }

    if (verdict == PST_HOOK_PENDING) {
        verdict = PST_HOOK_TEMPFAIL;
    }

    s->resumed = 1;
    s->resume_verdict = verdict;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        pst_call_reply(&s->call, code, ecode, "%s", text);
    } else if (code != 0 || ecode != NULL) {
        pst_call_reply(&s->call, code, ecode, "%s", "");
    }

    pst_post_event(&s->resume);
    return PST_OK;
}


static void
pst_phase_resume_handler(pst_event_t *ev)
{
    pst_session_t  *s = ev->data;
    pst_verdict_e   v;

    if (!s->pending || !s->resumed) {
        return;
    }

    pst_event_del_timer(&s->hook_timer);
    pst_smtp_metric_hook(s, s->pending_module);
    s->pending = 0;
    s->resumed = 0;
    s->serial++;                       /* the token is spent */
    v = pst_phase_verdict(s, s->resume_verdict);

    if (v == PST_HOOK_CONTINUE) {
        s->hook_index++;
        pst_phase_next(s);
        return;
    }

    pst_phase_finish(s, v);
}


void
pst_smtp_phase_cancel(pst_session_t *s)
{
    pst_event_del_timer(&s->hook_timer);
    pst_delete_posted_event(&s->resume);
    pst_phase_cancel_call(s);
    s->resumed = 0;
    s->phase_done = NULL;
}


/* Give up the pending call (session gone, timeout): the token becomes
 * stale, then the module's cancel callback runs, unless the module has
 * already resumed. */
static void
pst_phase_cancel_call(pst_session_t *s)
{
    pst_call_cancel_pt   cancel = s->call.cancel;
    void                *data = s->call.data;
    int                  abandoned = s->pending && !s->resumed;

    s->serial++;
    s->pending = 0;
    s->call.cancel = NULL;
    s->call.data = NULL;

    if (abandoned && cancel != NULL) {
        cancel(data);
    }
}


/* Transaction phases take DISCARD and HOLD. */
static int
pst_phase_has_tx(pst_phase_e p)
{
    return p == PST_PHASE_MAIL || p == PST_PHASE_RCPT || p == PST_PHASE_DATA
           || p == PST_PHASE_MESSAGE || p == PST_PHASE_QUEUE;
}


/* Phases that only tell: every hook runs, verdicts are ignored. */
static int
pst_phase_notify(pst_phase_e p)
{
    return p == PST_PHASE_DISCONNECT || p == PST_PHASE_COMMITTED;
}


/*
 * A handler's verdict as the chain takes it: HOLD marks the transaction
 * and goes on (CONTINUE), DISCARD marks it and ends the phase as an
 * ACCEPT; both are CONTINUE outside a transaction.  A value that is no
 * verdict is a module bug: TEMPFAIL, never an accidental success.
 */
static pst_verdict_e
pst_phase_verdict(pst_session_t *s, pst_verdict_e v)
{
    const char  *name;

    name = s->pending_module ? s->pending_module->desc.name : "?";

    switch (v) {

    case PST_HOOK_CONTINUE:
    case PST_HOOK_ACCEPT:
    case PST_HOOK_REJECT:
    case PST_HOOK_TEMPFAIL:
    case PST_HOOK_DISCONNECT:
    case PST_HOOK_PENDING:
        return v;

    case PST_HOOK_DISCARD:
    case PST_HOOK_HOLD:
        if (s->tx == NULL || !pst_phase_has_tx(s->phase)) {
            pst_log_session(s, PST_LOG_WARN, "module \"%s\" answered %s in"
                            " phase %s, which has no message: ignored",
                            name, v == PST_HOOK_HOLD ? "HOLD" : "DISCARD",
                            pst_phase_name(s->phase));
            return PST_HOOK_CONTINUE;
        }
        if (v == PST_HOOK_HOLD) {
            s->tx->hold = 1;
            return PST_HOOK_CONTINUE;
        }
        s->tx->discard = 1;
        return PST_HOOK_ACCEPT;

    default:
        pst_log_session(s, PST_LOG_ALERT, "module \"%s\" answered %d in"
                        " phase %s, which is no verdict: treated as"
                        " TEMPFAIL", name, (int) v, pst_phase_name(s->phase));
        return PST_HOOK_TEMPFAIL;
    }
}


static pst_session_t *
pst_hook_pending_session(uint64_t token)
{
    pst_session_t  *s;

    s = pst_smtp_session_find(token >> 16);
    if (s == NULL || (uint16_t) (token & 0xffff) != s->serial
        || !(s->pending || s->in_handler) || s->resumed)
    {
        return NULL;
    }
    return s;
}


pst_session_t *
pst_hook_session(uint64_t token)
{
    pst_session_t  *s;

    s = pst_smtp_session_find(token >> 16);
    if (s == NULL || (uint16_t) (token & 0xffff) != s->serial) {
        return NULL;
    }
    return s;
}


/* ------------------------------------------------------------------ */
/* Call objects                                                        */

pst_session_t *
pst_call_session(pst_call_t *call)
{
    return call->session;
}


pst_phase_e
pst_call_phase(pst_call_t *call)
{
    return call->phase;
}


void
pst_call_reply(pst_call_t *call, int code, const char *ecode,
    const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (code != 0) {
        if (code < 200 || code > 599) {
            pst_log_error(PST_LOG_WARN, 0, "module reply code %d is not"
                          " an SMTP code; ignored", code);
        } else {
            call->code = code;
        }
    }

    if (ecode != NULL) {
        snprintf(call->ecode, sizeof(call->ecode), "%s", ecode);
    }

    if (fmt == NULL) {
        return;
    }

    va_start(ap, fmt);
    n = vsnprintf((char *) call->text, sizeof(call->text), fmt, ap);
    va_end(ap);

    if (n < 0) {
        n = 0;
    }
    /* clean at once too: the text also goes into log lines */
    call->text_len = pst_phase_clean(call->text, call->text,
                                     pst_min((size_t) n,
                                             sizeof(call->text) - 1));
    call->text[call->text_len] = '\0';
}


void
pst_call_set_data(pst_call_t *call, void *data)
{
    call->data = data;
}


void *
pst_call_data(pst_call_t *call)
{
    return call->data;
}


void
pst_call_set_cancel(pst_call_t *call, pst_call_cancel_pt handler)
{
    call->cancel = handler;
}


void *
pst_hook_data(uint64_t token)
{
    pst_session_t  *s = pst_hook_pending_session(token);

    return s ? s->call.data : NULL;
}


/* ------------------------------------------------------------------ */
/* What a verdict becomes on the wire                                  */

/* Control characters of a module's text: each run becomes one space,
 * so that no text can end a reply line and start another.  dst may be
 * src.  Returns the new length. */
static size_t
pst_phase_clean(u_char *dst, const u_char *src, size_t n)
{
    size_t  i, k;

    for (i = 0, k = 0; i < n; i++) {
        if (src[i] < 0x20 || src[i] == 0x7f) {
            if (k > 0 && dst[k - 1] == ' ') {
                continue;
            }
            dst[k++] = ' ';
            continue;
        }
        dst[k++] = src[i];
    }

    return k;
}


/* RFC 3463: class "." subject "." detail, 1 to 3 digits each, of the
 * class of the reply code. */
static int
pst_ecode_valid(const char *e, int cls)
{
    int  part, digits;

    if (e == NULL || e[0] != '0' + cls || e[1] != '.') {
        return 0;
    }

    e += 2;
    for (part = 0; part < 2; part++) {
        for (digits = 0; *e >= '0' && *e <= '9'; e++) {
            digits++;
        }
        if (digits < 1 || digits > 3) {
            return 0;
        }
        if (part == 0 && *e++ != '.') {
            return 0;
        }
    }

    return *e == '\0';
}


/*
 * The reply of verdict v in a phase, from the call the module filled
 * (or NULL: the defaults).  REJECT answers 5xx, TEMPFAIL 4xx (421 and
 * close at CONNECT, or when the module asks for 421), DISCONNECT 421
 * and close; ACCEPT and CONTINUE the
 * phase's success (a->send is 0 where the caller composes it).  Any
 * other value is taken as TEMPFAIL.
 */
void
pst_smtp_verdict_map(pst_phase_e phase, pst_verdict_e v,
    const pst_call_t *call, pst_smtp_answer_t *a)
{
    const pst_phase_reply_t  *pr;
    const char               *text;
    int                       k, own, lo;

    pr = &phase_replies[phase < PST_PHASE_MAX ? phase : PST_PHASE_DATA];

    switch (v) {
    case PST_HOOK_CONTINUE:
    case PST_HOOK_ACCEPT:
    case PST_HOOK_DISCARD:
    case PST_HOOK_HOLD:
        k = 0;
        break;
    case PST_HOOK_REJECT:
        k = 1;
        break;
    case PST_HOOK_TEMPFAIL:
    case PST_HOOK_DISCONNECT:
        k = 2;
        break;
    default:
        v = PST_HOOK_TEMPFAIL;
        k = 2;
    }

    if (v == PST_HOOK_TEMPFAIL && pr->tempfail_closes) {
        v = PST_HOOK_DISCONNECT;
    }

    a->failure = (k != 0);
    a->close = (v == PST_HOOK_DISCONNECT);
    a->code = a->close ? 421 : pr->code[k];
    a->send = pr->code[1] != 0 && a->code != 0;
    a->ecode = a->close ? "4.7.0" : pr->ecode[k];
    text = a->close ? "Service not available, closing" : pr->text[k];

    /* what of the module's answer may be used */
    own = call != NULL
          && (k == 0 ? pr->own_ok && v == PST_HOOK_ACCEPT
                       && call->code >= 200 && call->code <= 299
                     : a->close || !pr->secret);

    if (own && k != 0 && !a->close) {
        lo = k == 1 ? 500 : 400;
        if (call->code >= lo && call->code <= lo + 99) {
            a->code = call->code;
        }
        /* 421 says the channel closes (RFC 5321 4.2.3): so it does */
        a->close = (a->code == 421);
    }

    if (own && pst_ecode_valid(call->ecode, a->code / 100)) {
        a->ecode = call->ecode;
    }

    if (own && call->text_len > 0) {
        a->text_len = pst_phase_clean(a->text, call->text,
                                      pst_min(call->text_len,
                                              sizeof(a->text) - 1));
    } else {
        a->text_len = text ? strlen(text) : 0;
        memcpy(a->text, text ? text : "", a->text_len);
    }
    a->text[a->text_len] = '\0';
}


/* Send an answer; a 421 closes the session after it. */
void
pst_smtp_answer_reply(pst_session_t *s, const pst_smtp_answer_t *a)
{
    if (!a->send) {
        return;
    }

    pst_smtp_reply(s, a->code, a->ecode, "%.*s", (int) a->text_len,
                   (char *) a->text);

    if (a->close) {
        pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
    }
}


/*
 * Reply to verdict v of the session's current phase.  Returns the code
 * of the failure it sent (REJECT, TEMPFAIL, DISCONNECT: the session is
 * then closing after a 421), or 0 when the verdict lets the command go
 * on -- its success reply is sent too where the phase has a plain one
 * (MAIL, RCPT), else the caller composes it.
 */
int
pst_smtp_verdict_reply(pst_session_t *s, pst_verdict_e v)
{
    pst_smtp_answer_t  a;

    pst_smtp_verdict_map(s->phase, v, &s->call, &a);
    if (a.failure) {
        pst_log_reject(s, &a);
    }
    pst_smtp_answer_reply(s, &a);

    return a.failure ? a.code : 0;
}


/* The message is durable: tell the COMMITTED hooks (verdicts ignored,
 * nothing pending, so the chain ends before this returns). */
void
pst_smtp_committed(pst_session_t *s)
{
    pst_smtp_run_phase(s, PST_PHASE_COMMITTED, NULL);
}
