/*
 * test_notes.c -- test module for the per-transaction slot and the
 * notes map (pst_tx_set_ctx(), pst_note_set(), check_session.c):
 *
 *   HELO   a session note "t.helo" = "seen"
 *   MAIL   for a sender "set@...": the module's transaction slot, a
 *          transaction note "t.mail" = the sender, and "t.helo" = "tx"
 *          (it hides the session's); "bad" = what a bad key gives
 *   RCPT   "show@...": 550 5.7.1 with what it finds
 *          "ctx=<slot> mail=<t.mail> helo=<t.helo> bad=<rc>"; with
 *          test_notes_regex and test_notes_domains set, also
 *          " re=<the regex on the sender> dom=<the sender's domain
 *          listed>"
 */

#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "postern_module.h"

typedef struct {
    pst_regex_t                 *re;
    pst_array_t                 *domains;
} test_notes_conf_t;

static int  test_notes_bad = 1;

PST_EXPORT const pst_module_t  postern_module;


static pst_verdict_e
test_notes_helo(pst_call_t *call, void *conf)
{
    (void) conf;
    (void) pst_note_set(pst_call_session(call), PST_NOTE_SESSION, "t.helo",
                        "seen");
    return PST_HOOK_CONTINUE;
}


static pst_verdict_e
test_notes_mail(pst_call_t *call, void *conf)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *from = pst_tx_sender(s);
    char              sender[256];
    pst_str_t         v = { 9, (u_char *) "ctx-value" };

    (void) conf;

    if (from->len < 4 || memcmp(from->data, "set@", 4) != 0) {
        return PST_HOOK_CONTINUE;
    }
    snprintf(sender, sizeof(sender), "%.*s", (int) from->len, from->data);
    pst_tx_set_ctx(s, &postern_module, pst_pstrdup(pst_tx_pool(s), &v));
    (void) pst_note_set(s, PST_NOTE_TX, "t.mail", sender);
    (void) pst_note_set(s, PST_NOTE_TX, "t.helo", "tx");
    test_notes_bad = pst_note_set(s, PST_NOTE_TX, "Bad Key", "x");
    return PST_HOOK_CONTINUE;
}


static pst_verdict_e
test_notes_rcpt(pst_call_t *call, void *conf)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *rcpt = pst_call_rcpt(call);
    const char       *ctx, *mail, *helo;
    test_notes_conf_t *c = pst_module_main_conf(&postern_module);
    const pst_str_t  *from;

    (void) conf;

    if (rcpt->len < 5 || memcmp(rcpt->data, "show@", 5) != 0) {
        return PST_HOOK_CONTINUE;
    }
    ctx = pst_tx_get_ctx(s, &postern_module);
    mail = pst_note(s, "t.mail");
    helo = pst_note(s, "t.helo");
    if (c->re == NULL) {
        pst_call_reply(call, 550, "5.7.1", "ctx=%s mail=%s helo=%s bad=%d",
                       ctx ? ctx : "-", mail ? mail : "-",
                       helo ? helo : "-", test_notes_bad);
        return PST_HOOK_REJECT;
    }
    from = pst_tx_sender_domain(s);
    pst_call_reply(call, 550, "5.7.1", "re=%d dom=%d",
                   pst_regex_match(c->re, pst_tx_sender(s)->data,
                                   pst_tx_sender(s)->len),
                   pst_domain_listed(c->domains, from->data, from->len));
    return PST_HOOK_REJECT;
}


static const pst_hook_t  test_notes_hooks[] = {
    { PST_PHASE_HELO, test_notes_helo, 0 },
    { PST_PHASE_MAIL, test_notes_mail, 0 },
    { PST_PHASE_RCPT, test_notes_rcpt, -60 },
    pst_null_hook
};

static void *
test_notes_create(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(test_notes_conf_t));
}


static const pst_command_t  test_notes_commands[] = {
    { "test_notes_regex", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_regex_slot, PST_MAIN_CONF,
      offsetof(test_notes_conf_t, re), NULL },
    { "test_notes_domains", PST_CONF_MAIN | PST_CONF_1MORE,
      pst_conf_set_domain_array_slot, PST_MAIN_CONF,
      offsetof(test_notes_conf_t, domains), NULL },
    pst_null_command
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .commands = test_notes_commands,
    .create_main_conf = test_notes_create,
    .name = "test_notes",
    .version = "1.0",
    .description = "test: the transaction slot and the notes map",
    .hooks = test_notes_hooks,
};
