/*
 * pst_send_xoauth.c -- AUTH XOAUTH2 (Google/Microsoft OAuth 2.0 bearer
 * tokens), which the core client does not do: postern-send runs it as
 * one command after the session is ready.
 *
 *   C: AUTH XOAUTH2 base64("user=" USER ^A "auth=Bearer " TOKEN ^A ^A)
 *   S: 235                       authenticated
 *   S: 334 base64(JSON error)    refused: the client answers "*"
 *                                (RFC 4954 4: cancel), the server 501
 *
 * The token comes from the password sources (--password-command is the
 * usual one).  The trail shows the command masked.
 */

#include "pst_send_run.h"


int
pst_send_xoauth_start(pst_send_run_t *r)
{
    char    *raw, *line;
    size_t   n;

    if (!(pst_smtp_client_caps(r->cl) & PST_SMTP_CAP_AUTH)) {
        snprintf(r->fail.text, sizeof(r->fail.text), "the server offers "
                 "no AUTH");
        return PST_ERROR;
    }
    if (!pst_smtp_client_tls(r->cl) && r->o->tls != PST_SEND_TLS_NONE) {
        snprintf(r->fail.text, sizeof(r->fail.text), "no XOAUTH2 token "
                 "in clear: the session is not encrypted (--tls none "
                 "allows it)");
        return PST_ERROR;
    }

    n = strlen(r->o->user) + strlen(r->pass) + 32;
    raw = malloc(n);
    line = malloc(pst_base64_encoded_length(n) + 16);
    if (raw == NULL || line == NULL) {
        free(raw);
        free(line);
        return PST_ERROR;
    }
    n = (size_t) snprintf(raw, n, "user=%s\001auth=Bearer %s\001\001",
                          r->o->user, r->pass);
    memcpy(line, "AUTH XOAUTH2 ", 13);
    line[13 + pst_base64_encode((u_char *) line + 13, (u_char *) raw, n)] =
        '\0';
    explicit_bzero(raw, n);
    free(raw);

    r->step = PST_SEND_STEP_XOAUTH;
    n = pst_smtp_client_command(r->cl, line, pst_send_cmd_done, r)
        == PST_OK ? PST_OK : PST_ERROR;
    explicit_bzero(line, strlen(line));
    free(line);
    return (int) n;
}


/* The reply to AUTH XOAUTH2 (or to the "*" after a 334). */
int
pst_send_xoauth_reply(pst_send_run_t *r, const pst_smtp_reply_t *rep)
{
    u_char  json[512];
    ssize_t n;

    if (r->step == PST_SEND_STEP_XOAUTH && rep->code == 334) {
        n = rep->text.len < sizeof(json) * 3 / 4
            ? pst_base64_decode(json, rep->text.data, rep->text.len) : -1;
        snprintf(r->fail.text, sizeof(r->fail.text), "XOAUTH2 refused: "
                 "%.*s", n > 0 ? (int) n : 0, (char *) json);
        r->fail.code = 535;
        r->step = PST_SEND_STEP_XOAUTH_CANCEL;
        if (pst_smtp_client_command(r->cl, "*", pst_send_cmd_done, r)
            != PST_OK)
        {
            return PST_ERROR;
        }
        return PST_AGAIN;
    }
    if (r->step == PST_SEND_STEP_XOAUTH && rep->code / 100 == 2) {
        r->xoauth_done = 1;
        return PST_OK;
    }
    if (r->step == PST_SEND_STEP_XOAUTH) {
        pst_send_reply_copy(&r->fail, rep);
    }
    return PST_ERROR;
}
