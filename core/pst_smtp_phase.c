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
 */

#include "pst_smtp.h"

#define PST_SESSION_BUCKETS   4096

static pst_session_t  **session_table;
static pst_uint_t       session_count;


static void pst_phase_next(pst_session_t *s);
static void pst_phase_timeout(pst_event_t *ev);
static void pst_phase_resume_handler(pst_event_t *ev);
static void pst_phase_finish(pst_session_t *s, pst_verdict_e v);


static const char  *phase_names[] = {
    "connect", "helo", "auth", "mail", "rcpt", "data", "message", "queue",
    "deliver", "disconnect"
};


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
    session_table = calloc(PST_SESSION_BUCKETS, sizeof(pst_session_t *));
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
        v = he->handler(&s->call, conf);
        s->in_handler = 0;

        if (v == PST_HOOK_PENDING && s->phase == PST_PHASE_DISCONNECT) {
            /* nothing waits for the end of a session: the token of a
             * disconnect hook is stale once the session is gone */
            v = PST_HOOK_CONTINUE;
        }

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
            if (s->phase != PST_PHASE_DISCONNECT && s->conf->debug) {
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

    /* any later resume with this token is stale */
    s->serial++;
    s->pending = 0;

    pst_log_session(s, PST_LOG_WARN, "module \"%s\" did not answer in phase"
                    " %s in time", me ? me->desc.name : "?",
                    pst_phase_name(s->phase));

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


int
pst_hook_resume(uint64_t token, pst_verdict_e verdict, int code,
    const char *ecode, const char *fmt, ...)
{
    pst_session_t  *s;
    va_list         ap;
    char            text[384];

    s = pst_smtp_session_find(token >> 16);

    if (s == NULL || (uint16_t) (token & 0xffff) != s->serial
        || !(s->pending || s->in_handler) || s->resumed)
    {
        pst_log_error(PST_LOG_WARN, 0, "stale or repeated hook completion"
                      " (session %llu serial %u) ignored",
                      (unsigned long long) (token >> 16),
                      (unsigned) (token & 0xffff));
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
    s->pending = 0;
    s->resumed = 0;
    s->serial++;                       /* the token is spent */
    v = s->resume_verdict;

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
    s->serial++;
    s->pending = 0;
    s->resumed = 0;
    s->phase_done = NULL;
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
    size_t   i;
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
    call->text_len = pst_min((size_t) n, sizeof(call->text) - 1);

    /* a module's text must not be able to inject reply lines */
    for (i = 0; i < call->text_len; i++) {
        if (call->text[i] < 0x20 || call->text[i] == 0x7f) {
            call->text[i] = ' ';
        }
    }
}
