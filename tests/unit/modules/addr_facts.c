/*
 * addr_facts.c -- test module: what the address accessors give a
 * module (pst_call_rcpt(), pst_call_rcpt_local(), pst_call_rcpt_domain(),
 * pst_tx_sender_local(), pst_tx_sender_domain()), as a policy plugin
 * uses them (tests/integration/test_addresses.py):
 *
 *   MAIL     a sender whose local part, unquoted, is "noreply" gets
 *            550 5.7.1 sender local=<...> domain=<...> raw=<...>
 *   RCPT     the same for a recipient ("550 5.7.1 rcpt ..."); a
 *            recipient without a domain (<Postmaster>) gets its facts
 *            in a 450
 *   MESSAGE  X-Addr-Facts: sender local=<...> domain=<...>
 */

#include <string.h>

#include "postern_module.h"

#define ADDR_FACTS_FMT           "%s local=<%.*s> domain=<%.*s> raw=<%.*s>"
#define addr_facts_arg(str)      (int) (str)->len, (char *) (str)->data


static int
addr_facts_noreply(const pst_str_t *local)
{
    return local->len == 7 && memcmp(local->data, "noreply", 7) == 0;
}


static pst_verdict_e
addr_facts_mail(pst_call_t *call, void *conf)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *local, *domain;

    (void) conf;

    local = pst_tx_sender_local(s);
    domain = pst_tx_sender_domain(s);
    if (local == NULL || domain == NULL) {
        return PST_HOOK_TEMPFAIL;
    }
    if (!addr_facts_noreply(local)) {
        return PST_HOOK_CONTINUE;
    }
    pst_call_reply(call, 550, "5.7.1", ADDR_FACTS_FMT, "sender",
                   addr_facts_arg(local), addr_facts_arg(domain),
                   addr_facts_arg(pst_tx_sender(s)));
    return PST_HOOK_REJECT;
}


static pst_verdict_e
addr_facts_rcpt(pst_call_t *call, void *conf)
{
    const pst_str_t  *local, *domain, *raw;

    (void) conf;

    raw = pst_call_rcpt(call);
    local = pst_call_rcpt_local(call);
    domain = pst_call_rcpt_domain(call);
    if (raw == NULL || local == NULL || domain == NULL
        || local->data[local->len] != '\0'
        || domain->data[domain->len] != '\0')
    {
        return PST_HOOK_TEMPFAIL;
    }
    if (domain->len == 0) {
        pst_call_reply(call, 450, "4.7.1", ADDR_FACTS_FMT, "rcpt",
                       addr_facts_arg(local), addr_facts_arg(domain),
                       addr_facts_arg(raw));
        return PST_HOOK_TEMPFAIL;
    }
    if (!addr_facts_noreply(local)) {
        return PST_HOOK_CONTINUE;
    }
    pst_call_reply(call, 550, "5.7.1", ADDR_FACTS_FMT, "rcpt",
                   addr_facts_arg(local), addr_facts_arg(domain),
                   addr_facts_arg(raw));
    return PST_HOOK_REJECT;
}


static pst_verdict_e
addr_facts_message(pst_call_t *call, void *conf)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *local, *domain;

    (void) conf;

    local = pst_tx_sender_local(s);
    domain = pst_tx_sender_domain(s);
    if (local != NULL && domain != NULL) {
        (void) pst_msg_add_header(s, "X-Addr-Facts",
                                  "sender local=<%s> domain=<%s>",
                                  (char *) local->data,
                                  (char *) domain->data);
    }
    return PST_HOOK_CONTINUE;
}


static const pst_hook_t  addr_facts_hooks[] = {
    { PST_PHASE_MAIL, addr_facts_mail, -60 },    /* before relay control */
    { PST_PHASE_RCPT, addr_facts_rcpt, -60 },
    { PST_PHASE_MESSAGE, addr_facts_message, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "addr_facts",
    .version = "1.0",
    .description = "test: address accessors as a policy plugin uses them",
    .hooks = addr_facts_hooks,
};
