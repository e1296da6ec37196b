/*
 * pst_smtp_client_auth.c -- AUTH for the SMTP client (RFC 4954):
 * PLAIN (initial response), LOGIN, SCRAM-SHA-256 (RFC 5802, RFC 7677;
 * the server's signature is checked, so a server that does not know
 * the password cannot pretend it accepted us).
 *
 * "auto" picks SCRAM-SHA-256 when offered, else PLAIN or LOGIN, and
 * those two only over TLS.  The trail sees the mechanism names, never
 * the user name, the password or a proof.  Usernames are not SASLprep'ed
 * (RFC 4013); ASCII names are unaffected.
 */

#include "pst_core.h"
#include "pst_smtp_client.h"
#include "pst_smtp_proto.h"
#include "pst_smtp_client_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define PST_SCRAM_MAX_ITER       100000     /* bounds our CPU per login */
#define PST_SCRAM_NONCE          24

typedef struct {
    u_char                       nonce[48];     /* base64 of 24 bytes */
    size_t                       nonce_len;
    u_char                      *bare;          /* client-first-bare */
    size_t                       bare_len;
    u_char                       server_sig[32];
    unsigned                     verified:1;
} pst_smtpc_scram_t;

static unsigned pst_smtpc_auth_choose(pst_smtp_client_t *cl,
    const char **why);
static int pst_smtpc_auth_send(pst_smtp_client_t *cl, const char *prefix,
    const u_char *raw, size_t n);
static int pst_smtpc_auth_plain(pst_smtp_client_t *cl);
static int pst_smtpc_scram_first(pst_smtp_client_t *cl);
static int pst_smtpc_auth_step(pst_smtp_client_t *cl, const u_char *ch,
    size_t n, const char **why);
static int pst_smtpc_scram_final(pst_smtp_client_t *cl, const u_char *ch,
    size_t n, const char **why);
static int pst_smtpc_scram_verify(pst_smtp_client_t *cl, const u_char *ch,
    size_t n);
static const u_char *pst_smtpc_scram_attr(const u_char *p, size_t n,
    u_char name, size_t *len);


int
pst_smtpc_auth_start(pst_smtp_client_t *cl, const char **why)
{
    cl->auth_step = 0;

    if (cl->conf.auth_mech == NULL) {
        return PST_DECLINED;
    }

    cl->auth_mech = pst_smtpc_auth_choose(cl, why);

    switch (cl->auth_mech) {
    case PST_SMTP_AUTH_PLAIN:
        return pst_smtpc_auth_plain(cl);
    case PST_SMTP_AUTH_LOGIN:
        return pst_smtpc_line(cl, (u_char *) "AUTH LOGIN", 10,
                              PST_SMTPC_NOMASK);
    case PST_SMTP_AUTH_SCRAM_SHA256:
        return pst_smtpc_scram_first(cl);
    default:
        return PST_ERROR;
    }
}


static unsigned
pst_smtpc_auth_choose(pst_smtp_client_t *cl, const char **why)
{
    const char  *mech = cl->conf.auth_mech;
    unsigned     m, offered = cl->auth_mechs;

    if (!(cl->caps & PST_SMTP_CAP_AUTH)) {
        *why = "AUTH is configured but the server does not offer it";
        return 0;
    }

    if (cl->conf.auth_user == NULL || cl->conf.auth_pass == NULL) {
        *why = "AUTH needs a user and a password";
        return 0;
    }

    if (strcasecmp(mech, "auto") == 0) {
        if (offered & PST_SMTP_AUTH_SCRAM_SHA256) {
            return PST_SMTP_AUTH_SCRAM_SHA256;
        }
        if (cl->tls && (offered & PST_SMTP_AUTH_PLAIN)) {
            return PST_SMTP_AUTH_PLAIN;
        }
        if (cl->tls && (offered & PST_SMTP_AUTH_LOGIN)) {
            return PST_SMTP_AUTH_LOGIN;
        }
        *why = cl->tls ? "the server offers no AUTH mechanism we know"
                       : "the server offers no AUTH mechanism usable "
                         "without TLS";
        return 0;
    }

    m = pst_smtp_auth_mech((const u_char *) mech, strlen(mech));
    if (m == PST_SMTP_AUTH_OTHER) {
        *why = "unknown AUTH mechanism";
        return 0;
    }

    if (!(offered & m)) {
        *why = "the server does not offer the AUTH mechanism";
        return 0;
    }

    return m;
}


/* "PREFIX base64(raw)", everything after the prefix masked. */
static int
pst_smtpc_auth_send(pst_smtp_client_t *cl, const char *prefix,
    const u_char *raw, size_t n)
{
    size_t   plen = strlen(prefix), len;
    u_char  *line;

    line = pst_palloc(cl->op_pool, plen + pst_base64_encoded_length(n) + 1);
    if (line == NULL) {
        return PST_ERROR;
    }

    memcpy(line, prefix, plen);
    len = plen + pst_base64_encode(line + plen, raw, n);

    return pst_smtpc_line(cl, line, len, plen);
}


static int
pst_smtpc_auth_plain(pst_smtp_client_t *cl)
{
    size_t   ul = strlen(cl->conf.auth_user), pl = strlen(cl->conf.auth_pass);
    u_char  *raw;
    int      rc;

    raw = pst_palloc(cl->op_pool, ul + pl + 2);
    if (raw == NULL) {
        return PST_ERROR;
    }

    raw[0] = '\0';
    memcpy(raw + 1, cl->conf.auth_user, ul);
    raw[ul + 1] = '\0';
    memcpy(raw + ul + 2, cl->conf.auth_pass, pl);

    rc = pst_smtpc_auth_send(cl, "AUTH PLAIN ", raw, ul + pl + 2);
    explicit_bzero(raw, ul + pl + 2);

    return rc;
}


void
pst_smtpc_auth_reply(pst_smtp_client_t *cl, const pst_smtp_reply_t *r)
{
    pst_smtp_reply_t   copy;
    pst_smtpc_scram_t *sc = cl->sasl;
    const char        *why = NULL;
    u_char            *ch;
    ssize_t            n;

    if (r->code == 235) {
        if (cl->auth_mech == PST_SMTP_AUTH_SCRAM_SHA256
            && (sc == NULL || !sc->verified))
        {
            pst_smtpc_local_reply(cl, &copy, 0, "", "AUTH: the server "
                                  "accepted without proving it knows the "
                                  "password (SCRAM)");
            pst_smtpc_give_up(cl, &copy);
            return;
        }
        if (pst_smtpc_copy_reply(cl, &copy, r) != PST_OK) {
            pst_smtpc_fail(cl, "out of memory");
            return;
        }
        pst_smtpc_finish(cl, PST_SMTPC_CB_READY, PST_OK, &copy);
        return;
    }

    if (r->code != 334) {
        pst_smtpc_give_up(cl, r);
        return;
    }

    ch = pst_palloc(cl->op_pool, r->text.len + 1);
    n = ch ? pst_base64_decode(ch, r->text.data, r->text.len) : -1;

    if (n < 0 || pst_smtpc_auth_step(cl, ch, (size_t) n, &why) != PST_OK) {
        pst_smtpc_local_reply(cl, &copy, 0, "", why ? why
                              : "AUTH: the server's challenge is not "
                                "base64");
        pst_smtpc_give_up(cl, &copy);
        return;
    }

    cl->auth_step++;
    pst_smtpc_expect(cl, cl->conf.helo_timeout, "AUTH reply");
}


/* Answer the auth_step'th challenge (decoded: ch[0..n)). */
static int
pst_smtpc_auth_step(pst_smtp_client_t *cl, const u_char *ch, size_t n,
    const char **why)
{
    const char  *s;

    switch (cl->auth_mech) {

    case PST_SMTP_AUTH_LOGIN:
        if (cl->auth_step > 1) {
            break;
        }
        s = cl->auth_step == 0 ? cl->conf.auth_user : cl->conf.auth_pass;
        return pst_smtpc_auth_send(cl, "", (const u_char *) s, strlen(s));

    case PST_SMTP_AUTH_SCRAM_SHA256:
        if (cl->auth_step == 0) {
            return pst_smtpc_scram_final(cl, ch, n, why);
        }
        if (cl->auth_step == 1) {
            if (pst_smtpc_scram_verify(cl, ch, n) != PST_OK) {
                *why = "AUTH: the server's SCRAM signature is wrong";
                return PST_ERROR;
            }
            return pst_smtpc_line(cl, (u_char *) "", 0, PST_SMTPC_NOMASK);
        }
        break;

    default:
        break;
    }

    *why = "AUTH: unexpected challenge from the server";
    return PST_ERROR;
}


void
pst_smtpc_auth_free(pst_smtp_client_t *cl)
{
    pst_smtpc_scram_t  *sc = cl->sasl;

    if (sc == NULL) {
        return;
    }

    free(sc->bare);
    explicit_bzero(sc, sizeof(pst_smtpc_scram_t));
    free(sc);
    cl->sasl = NULL;
}


/* ------------------------------------------------------------------ */
/* SCRAM-SHA-256                                                       */

/* client-first: "n,,n=USER,r=NONCE" (',' and '=' in USER escaped). */
static int
pst_smtpc_scram_first(pst_smtp_client_t *cl)
{
    pst_smtpc_scram_t  *sc;
    const char         *u;
    u_char              rnd[PST_SCRAM_NONCE], *p, *raw;
    size_t              ul = strlen(cl->conf.auth_user);
    int                 rc;

    pst_smtpc_auth_free(cl);

    sc = calloc(1, sizeof(pst_smtpc_scram_t));
    if (sc == NULL) {
        return PST_ERROR;
    }
    cl->sasl = sc;

    sc->bare = malloc(3 * ul + sizeof(sc->nonce) + 8);
    if (sc->bare == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return PST_ERROR;
    }

    sc->nonce_len = pst_base64_encode(sc->nonce, rnd, sizeof(rnd));

    p = sc->bare;
    memcpy(p, "n=", 2);
    p += 2;
    for (u = cl->conf.auth_user; *u; u++) {
        if (*u == ',' || *u == '=') {
            p += sprintf((char *) p, "=%s", *u == ',' ? "2C" : "3D");
        } else {
            *p++ = (u_char) *u;
        }
    }
    memcpy(p, ",r=", 3);
    p += 3;
    memcpy(p, sc->nonce, sc->nonce_len);
    p += sc->nonce_len;
    sc->bare_len = (size_t) (p - sc->bare);

    raw = pst_palloc(cl->op_pool, sc->bare_len + 3);
    if (raw == NULL) {
        return PST_ERROR;
    }
    memcpy(raw, "n,,", 3);
    memcpy(raw + 3, sc->bare, sc->bare_len);

    rc = pst_smtpc_auth_send(cl, "AUTH SCRAM-SHA-256 ", raw,
                             sc->bare_len + 3);

    return rc;
}


/* server-first "r=NONCE,s=SALT,i=N" -> client-final "c=biws,r=..,p=..". */
static int
pst_smtpc_scram_final(pst_smtp_client_t *cl, const u_char *ch, size_t n,
    const char **why)
{
    pst_smtpc_scram_t  *sc = cl->sasl;
    const u_char       *nonce, *salt64, *iter;
    size_t              nl, sl, il, i, wl, ml;
    u_char              salt[128], salted[32], ckey[32], stored[32];
    u_char              sig[32], proof[32], skey[32], *msg, *fin;
    unsigned            len;
    int64_t             it;
    ssize_t             saltl;
    int                 rc;

    *why = "AUTH: malformed SCRAM server-first message";

    nonce = pst_smtpc_scram_attr(ch, n, 'r', &nl);
    salt64 = pst_smtpc_scram_attr(ch, n, 's', &sl);
    iter = pst_smtpc_scram_attr(ch, n, 'i', &il);

    if (nonce == NULL || salt64 == NULL || iter == NULL || n < 2
        || ch[0] == 'm' || nl <= sc->nonce_len
        || memcmp(nonce, sc->nonce, sc->nonce_len) != 0
        || sl > 4 * sizeof(salt) / 3)
    {
        return PST_ERROR;
    }

    saltl = pst_base64_decode(salt, salt64, sl);
    it = pst_atoi(iter, il, PST_SCRAM_MAX_ITER);
    if (saltl <= 0 || it < 1) {
        *why = it < 1 && saltl > 0 ? "AUTH: SCRAM iteration count out of "
                                     "range" : *why;
        return PST_ERROR;
    }

    /* client-final-without-proof, then the AuthMessage */
    wl = 9 + nl;
    ml = sc->bare_len + 1 + n + 1 + wl;
    msg = pst_palloc(cl->op_pool, ml);
    fin = pst_palloc(cl->op_pool, wl + 3 + 48);
    if (msg == NULL || fin == NULL) {
        return PST_ERROR;
    }
    memcpy(fin, "c=biws,r=", 9);
    memcpy(fin + 9, nonce, nl);
    i = 0;
    memcpy(msg, sc->bare, sc->bare_len);
    i += sc->bare_len;
    msg[i++] = ',';
    memcpy(msg + i, ch, n);
    i += n;
    msg[i++] = ',';
    memcpy(msg + i, fin, wl);

    if (PKCS5_PBKDF2_HMAC(cl->conf.auth_pass, (int) strlen(cl->conf.auth_pass),
                          salt, (int) saltl, (int) it, EVP_sha256(), 32,
                          salted) != 1)
    {
        return PST_ERROR;
    }

    len = 32;
    HMAC(EVP_sha256(), salted, 32, (u_char *) "Client Key", 10, ckey, &len);
    SHA256(ckey, 32, stored);
    len = 32;
    HMAC(EVP_sha256(), stored, 32, msg, ml, sig, &len);
    for (i = 0; i < 32; i++) {
        proof[i] = ckey[i] ^ sig[i];
    }
    len = 32;
    HMAC(EVP_sha256(), salted, 32, (u_char *) "Server Key", 10, skey, &len);
    len = 32;
    HMAC(EVP_sha256(), skey, 32, msg, ml, sc->server_sig, &len);

    memcpy(fin + wl, ",p=", 3);
    wl += 3 + pst_base64_encode(fin + wl + 3, proof, 32);

    rc = pst_smtpc_auth_send(cl, "", fin, wl);

    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(ckey, sizeof(ckey));
    explicit_bzero(skey, sizeof(skey));

    return rc;
}


/* server-final "v=SIGNATURE" */
static int
pst_smtpc_scram_verify(pst_smtp_client_t *cl, const u_char *ch, size_t n)
{
    pst_smtpc_scram_t  *sc = cl->sasl;
    const u_char       *v;
    u_char              sig[64];
    size_t              vl;

    v = pst_smtpc_scram_attr(ch, n, 'v', &vl);
    if (v == NULL || vl != 44 || pst_base64_decode(sig, v, vl) != 32
        || CRYPTO_memcmp(sig, sc->server_sig, 32) != 0)
    {
        return PST_ERROR;
    }

    sc->verified = 1;
    return PST_OK;
}


/* The value of "X=value" among the comma-separated attributes. */
static const u_char *
pst_smtpc_scram_attr(const u_char *p, size_t n, u_char name, size_t *len)
{
    const u_char  *end = p + n, *a, *comma;

    for (a = p; a < end; a = comma + 1) {
        comma = memchr(a, ',', (size_t) (end - a));
        if (comma == NULL) {
            comma = end;
        }
        if (comma - a >= 2 && a[0] == name && a[1] == '=') {
            *len = (size_t) (comma - a - 2);
            return a + 2;
        }
    }

    return NULL;
}
