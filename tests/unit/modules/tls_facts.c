/*
 * tls_facts.c -- test module: reads the TLS and AUTH facts of a session
 * through the public API (postern_module.h) in a later hook and writes
 * them into a header of the message, so an integration test can check
 * what a plugin sees (tests/integration/test_tls.py, test_auth.py).
 */

#include <stdio.h>
#include <string.h>

#include "postern_module.h"


static pst_verdict_e
tls_facts_message(pst_call_t *call, void *conf)
{
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *subj, *fp, *sni, *user, *mech;

    (void) conf;

    subj = pst_session_tls_peer_subject(s);
    fp = pst_session_tls_peer_fingerprint(s);
    sni = pst_session_tls_sni(s);
    user = pst_session_auth_id(s);
    mech = pst_auth_mechanism(s);

    (void) pst_msg_add_header(s, "X-Tls-Facts",
        "tls=%d version=%s cipher=%s sni=%.*s subject=%.*s verified=%d"
        " fp=%.*s user=%.*s mech=%.*s", pst_session_tls(s),
        pst_session_tls_version(s) ? pst_session_tls_version(s) : "-",
        pst_session_tls_cipher(s) ? pst_session_tls_cipher(s) : "-",
        sni ? (int) sni->len : 1, sni ? (char *) sni->data : "-",
        subj ? (int) subj->len : 1, subj ? (char *) subj->data : "-",
        pst_session_tls_peer_verified(s),
        fp ? (int) fp->len : 1, fp ? (char *) fp->data : "-",
        user ? (int) user->len : 1, user ? (char *) user->data : "-",
        mech ? (int) mech->len : 1, mech ? (char *) mech->data : "-");

    return PST_HOOK_CONTINUE;
}


static const pst_hook_t  tls_facts_hooks[] = {
    { PST_PHASE_MESSAGE, tls_facts_message, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "tls_facts",
    .version = "1.0",
    .description = "test: TLS and AUTH facts into a header",
    .hooks = tls_facts_hooks,
};
