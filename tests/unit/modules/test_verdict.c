/*
 * test_verdict.c -- unit-test module for the verdict tests of the
 * session suite (check_session.c).
 *
 * It has a hook in every phase, run before test_mem's (priority -100).
 * A hook answers CONTINUE until the test sets an answer for its phase
 * with test_verdict_set(): a verdict with a code, an enhanced code and
 * a text, given at once or from a timer (pending 1: the answer is found
 * again through the call's data slot, pst_hook_data()), or never
 * (pending 2: only the cancel callback ends the call; 3: that callback
 * also resumes, which the core ignores).  The COMMITTED
 * hook keeps the queue ID, the HOLD mark and the envelope it sees.  The
 * test reads all that through the exported test_verdict_*() functions.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <postern_module.h>


typedef struct {
    int                          set;
    pst_verdict_e                verdict;
    int                          code;
    char                         ecode[32];
    char                         text[128];
    int                          pending;
    uint64_t                     token;
} test_verdict_answer_t;


PST_EXPORT void test_verdict_set(int phase, int verdict, int code,
    const char *ecode, const char *text, int pending);
PST_EXPORT int test_verdict_calls(int phase);
PST_EXPORT int test_verdict_cancelled(void);
PST_EXPORT uint64_t test_verdict_token(int phase);
PST_EXPORT const char *test_verdict_committed(int *hold);
PST_EXPORT const char *test_verdict_envelope(void);
PST_EXPORT void test_verdict_edit(int on);
PST_EXPORT int test_verdict_edit_results(void);


static test_verdict_answer_t  answers[PST_PHASE_MAX];
static int                    calls[PST_PHASE_MAX];
static int                    cancelled;
static char                   committed_id[64];
static int                    committed_hold;
static char                   envelope[4096];
static int                    edit, edit_results;


PST_EXPORT void
test_verdict_set(int phase, int verdict, int code, const char *ecode,
    const char *text, int pending)
{
    test_verdict_answer_t  *a = &answers[phase];

    a->set = 1;
    a->verdict = (pst_verdict_e) verdict;
    a->code = code;
    snprintf(a->ecode, sizeof(a->ecode), "%s", ecode ? ecode : "");
    snprintf(a->text, sizeof(a->text), "%s", text ? text : "");
    a->pending = pending;
}


PST_EXPORT int
test_verdict_calls(int phase)
{
    return calls[phase];
}


PST_EXPORT int
test_verdict_cancelled(void)
{
    return cancelled;
}


/* The token of the phase's last pending call. */
PST_EXPORT uint64_t
test_verdict_token(int phase)
{
    return answers[phase].token;
}


PST_EXPORT const char *
test_verdict_committed(int *hold)
{
    *hold = committed_hold;
    return committed_id;
}


PST_EXPORT const char *
test_verdict_envelope(void)
{
    return envelope;
}


static void
test_verdict_cancel(void *data)
{
    test_verdict_answer_t  *a = data;

    /* the data slot comes back, and the token is stale already */
    if (a >= answers && a < answers + PST_PHASE_MAX
        && pst_hook_data(a->token) == NULL)
    {
        cancelled++;
    }

    /* pending 3: a module that finishes its call from the cancel
     * callback anyway; the core ignores it */
    if (a->pending == 3
        && pst_hook_resume(a->token, PST_HOOK_TEMPFAIL, 0, NULL, NULL)
           == PST_DECLINED)
    {
        cancelled++;
    }
}


static void
test_verdict_later(void *data)
{
    test_verdict_answer_t  *a = data;

    a = pst_hook_data(a->token);
    if (a == NULL) {
        return;
    }

    (void) pst_hook_resume(a->token, a->verdict, a->code,
                           a->ecode[0] ? a->ecode : NULL, "%s", a->text);
}


/* The message edits of ABI 1.2, from a MESSAGE hook; bit i of
 * edit_results set when edit i returned what it should. */
PST_EXPORT void
test_verdict_edit(int on)
{
    edit = on;
    edit_results = 0;
}


PST_EXPORT int
test_verdict_edit_results(void)
{
    return edit_results;
}


#define TV_S(lit)   { sizeof(lit) - 1, (u_char *) lit }

static void
test_verdict_edits(pst_session_t *s)
{
    static const u_char  body[] = "new body\r\n";
    pst_str_t  sender = TV_S("new@client.test"), rcpt = TV_S("x@example.test"),
               params = TV_S("NOTIFY=NEVER"), old = TV_S("u@example.test"),
               bad = TV_S("a b@example.test"), first = TV_S("X-First"),
               top = TV_S(" top"), subj = TV_S("Subject"),
               news = TV_S(" changed"), drop = TV_S("X-Drop"),
               last = TV_S("X-Last"), lastv = TV_S(" a\nb"),
               badname = TV_S("Bad Name");
    int        r[11], i;

    r[0] = pst_tx_set_sender(s, &sender, NULL) == PST_OK;
    r[1] = pst_tx_add_rcpt(s, &rcpt, &params) == PST_OK;
    r[2] = pst_tx_del_rcpt(s, &old) == PST_OK;
    r[3] = pst_tx_del_rcpt(s, &old) == PST_DECLINED;
    r[4] = pst_tx_add_rcpt(s, &bad, NULL) == PST_ERROR;
    r[5] = pst_msg_insert_header(s, 0, &first, &top) == PST_OK;
    r[6] = pst_msg_change_header(s, &subj, 1, &news) == PST_OK;
    r[7] = pst_msg_change_header(s, &drop, 1, NULL) == PST_OK;
    r[8] = pst_msg_insert_header(s, PST_MSG_HEADER_END, &last, &lastv)
           == PST_OK;
    r[9] = pst_msg_insert_header(s, 0, &badname, &top) == PST_ERROR;
    r[10] = pst_msg_replace_body(s, body, sizeof(body) - 1) == PST_OK;
    for (i = 0; i < 11; i++) {
        edit_results |= r[i] << i;
    }
}


static void
test_verdict_committed_seen(pst_call_t *call)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *id = pst_tx_id(s);
    pst_str_t         env;

    snprintf(committed_id, sizeof(committed_id), "%.*s",
             id ? (int) id->len : 0, id ? (char *) id->data : "");
    committed_hold = pst_tx_hold(s);
    envelope[0] = '\0';
    if (pst_tx_envelope(s, &env) == PST_OK) {
        snprintf(envelope, sizeof(envelope), "%.*s", (int) env.len,
                 (char *) env.data);
    }
}


static pst_verdict_e
test_verdict_hook(pst_call_t *call, void *conf)
{
    pst_phase_e             p = pst_call_phase(call);
    test_verdict_answer_t  *a = &answers[p];

    (void) conf;

    calls[p]++;

    if (p == PST_PHASE_COMMITTED) {
        test_verdict_committed_seen(call);
    }
    if (edit && (p == PST_PHASE_MESSAGE || p == PST_PHASE_RCPT)) {
        if (p == PST_PHASE_RCPT) {
            /* outside the end of data every edit is refused */
            if (pst_msg_replace_body(pst_call_session(call),
                                     (u_char *) "x", 1) == PST_ERROR)
            {
                edit_results |= 1 << 11;
            }
        } else {
            test_verdict_edits(pst_call_session(call));
        }
    }

    if (!a->set) {
        return PST_HOOK_CONTINUE;
    }

    if (a->pending) {
        a->token = pst_call_defer(call);
        pst_call_set_data(call, a);
        pst_call_set_cancel(call, test_verdict_cancel);
        if (pst_call_data(call) != a
            || (a->pending == 1
                && pst_timer_add(1, test_verdict_later, a) == NULL))
        {
            return PST_HOOK_TEMPFAIL;
        }
        return PST_HOOK_PENDING;
    }

    pst_call_reply(call, a->code, a->ecode[0] ? a->ecode : NULL, "%s",
                   a->text);
    return a->verdict;
}


static const pst_hook_t  test_verdict_hooks[] = {
    { PST_PHASE_CONNECT, test_verdict_hook, -100 },
    { PST_PHASE_HELO, test_verdict_hook, -100 },
    { PST_PHASE_AUTH, test_verdict_hook, -100 },
    { PST_PHASE_MAIL, test_verdict_hook, -100 },
    { PST_PHASE_RCPT, test_verdict_hook, -100 },
    { PST_PHASE_DATA, test_verdict_hook, -100 },
    { PST_PHASE_MESSAGE, test_verdict_hook, -100 },
    { PST_PHASE_QUEUE, test_verdict_hook, -100 },
    { PST_PHASE_DISCONNECT, test_verdict_hook, -100 },
    { PST_PHASE_COMMITTED, test_verdict_hook, -100 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_verdict",
    .version = "1.0",
    .description = "unit test: answers each phase as the test says",
    .hooks = test_verdict_hooks,
};
