/*
 * pst_test_auth.c -- libpostern-test's AUTH (postern/test.h,
 * pst_test_authenticate()): the fake client's side of an SMTP AUTH
 * exchange (RFC 4954), PLAIN (RFC 4616) with an initial response or
 * LOGIN with its two challenges, base64 as on the wire.  The server
 * side is the core's: its checks and replies, the AUTH hooks of the
 * loaded backends, the failure delay on the fake clock, and after a 235
 * the facts a plugin reads (pst_session_auth_id(), pst_auth_mechanism()).
 */

#include "pst_test_int.h"

#include <strings.h>

#define PST_TEST_AUTH_MAX    1024      /* user or password */


/* "VERB " (may be empty) and data in base64, as one command line. */
static const pst_test_reply_t *
pst_test_auth_line(pst_test_t *t, const char *verb, const u_char *data,
    size_t len)
{
    char    line[2 * PST_TEST_AUTH_MAX + 64];
    size_t  n = strlen(verb);

    memcpy(line, verb, n);
    n += pst_base64_encode((u_char *) line + n, data, len);
    line[n] = '\0';
    return pst_test_command(t, line);
}


static const pst_test_reply_t *
pst_test_auth_fail(pst_test_t *t, const char *why)
{
    fprintf(stderr, "postern-test: pst_test_authenticate(): %s\n", why);
    memset(&t->reply, 0, sizeof(t->reply));
    return &t->reply;
}


const pst_test_reply_t *
pst_test_authenticate(pst_test_t *t, const char *mech, const char *user,
    const char *password)
{
    const pst_test_reply_t  *r;
    u_char                   buf[2 * PST_TEST_AUTH_MAX + 2];
    size_t                   u = strlen(user), p = strlen(password);

    if (u > PST_TEST_AUTH_MAX || p > PST_TEST_AUTH_MAX) {
        return pst_test_auth_fail(t, "user or password too long");
    }
    if (strcasecmp(mech, "PLAIN") == 0) {
        /* authzid (none), NUL, authcid, NUL, password */
        buf[0] = '\0';
        memcpy(buf + 1, user, u);
        buf[u + 1] = '\0';
        memcpy(buf + u + 2, password, p);
        return pst_test_auth_line(t, "AUTH PLAIN ", buf, u + p + 2);
    }
    if (strcasecmp(mech, "LOGIN") != 0) {
        return pst_test_auth_fail(t, "only PLAIN and LOGIN are played"
                                  " (send other mechanisms with"
                                  " pst_test_command())");
    }
    r = pst_test_command(t, "AUTH LOGIN");
    if (r->code == 334) {
        r = pst_test_auth_line(t, "", (const u_char *) user, u);
    }
    if (r->code == 334) {
        r = pst_test_auth_line(t, "", (const u_char *) password, p);
    }
    return r;
}
