/*
 * pst_smtp_client.h -- the non-blocking outbound SMTP/LMTP client.
 *
 * One pst_smtp_client_t is one connection to one server, driven by the
 * event loop (pst_event) on a pst_connection_t:
 *
 *   pst_smtp_client_open()     connect (IPv4/IPv6, optional local
 *                              address), greeting, EHLO (HELO fallback;
 *                              LHLO for LMTP), STARTTLS per policy with
 *                              the client TLS of pst_ssl.c, AUTH (PLAIN,
 *                              LOGIN, SCRAM-SHA-256) -> ready callback
 *   pst_smtp_client_send()     one transaction: MAIL, RCPT..., DATA or
 *                              BDAT, pipelined (RFC 2920) when offered;
 *                              SIZE checked before anything is sent; the
 *                              message read from an fd in 64 KiB chunks
 *                              and dot-stuffed on the way -> done callback
 *   pst_smtp_client_command()  one command (NOOP, RSET, VRFY...)
 *   pst_smtp_client_quit()     QUIT, close, free (the object is gone for
 *   pst_smtp_client_abort()    the caller at once); abort: close now
 *
 * Callbacks are never called from inside the function that started the
 * operation: they run from the event loop (a posted event), so callers
 * never re-enter.  A callback may start the next operation, or quit or
 * abort the client.
 *
 * Timeouts (0 in the configuration: RFC 5321 4.5.3.2): connect 30 s,
 * greeting 5 min, EHLO/HELO/STARTTLS/AUTH 5 min, MAIL 5 min, RCPT
 * 5 min, DATA 2 min, each data block 3 min, end of data 10 min.
 *
 * Reply texts handed to a callback (the ready reply, a command's
 * reply, the replies stored in a transaction) live in the client and
 * stay valid until the next operation is started on it or it is freed.
 */

#ifndef PST_SMTP_CLIENT_H
#define PST_SMTP_CLIENT_H

#include "pst_ssl.h"
#include "pst_smtp_proto.h"

typedef struct pst_smtp_client_s  pst_smtp_client_t;

/* PST_SMTP_CAP_* and pst_smtp_reply_t are in pst_smtp_proto.h. */

typedef enum {
    PST_SMTPC_TLS_NONE = 0,     /* never STARTTLS */
    PST_SMTPC_TLS_MAY,          /* STARTTLS when offered, no verification */
    PST_SMTPC_TLS_ENCRYPT,      /* STARTTLS required, no verification */
    PST_SMTPC_TLS_VERIFY,       /* STARTTLS required, chain + name verified */
    PST_SMTPC_TLS_IMPLICIT      /* TLS from the first byte (port 465) */
} pst_smtpc_tls_e;

typedef struct {
    const char         *helo_name;
    int                 lmtp;           /* LHLO and per-rcpt DATA replies */
    pst_smtpc_tls_e     tls;
    pst_ssl_ctx_t      *ssl_ctx;        /* pst_ssl_client_ctx() */
    const char         *tls_name;       /* SNI / name to verify */
    /* DANE (RFC 7672): with records, tls_name is the TLSA base domain
     * and the usable records, not the CAs, authenticate the server;
     * copied by open() */
    const pst_ssl_tlsa_t *tlsa;
    pst_uint_t          ntlsa;
    const struct sockaddr *local;       /* bind before connect, or NULL */
    socklen_t           local_len;
    /* 0: RFC 5321 4.5.3.2 (connect: 30 s) */
    pst_msec_t          connect_timeout, greeting_timeout, helo_timeout,
                        mail_timeout, rcpt_timeout, data_init_timeout,
                        data_block_timeout, data_done_timeout;
    const char         *auth_mech;      /* NULL none, "PLAIN", "LOGIN",
                                           "SCRAM-SHA-256", "auto" */
    const char         *auth_user, *auth_pass;
    size_t              max_reply;      /* 0: 64 KiB */
    /* every line sent (outgoing = 1) and received; AUTH secrets masked;
     * called from inside the client: it must not call the client */
    void              (*trail)(void *data, int outgoing, const u_char *line,
                               size_t len);
    void               *trail_data;
} pst_smtp_client_conf_t;

/* Connected, greeted, EHLO (HELO fallback), STARTTLS per policy, AUTH:
 * rc PST_OK and the session is ready for a transaction (r: the last
 * EHLO/HELO reply, or 235 after AUTH); otherwise
 * PST_ERROR and r says why (code 0 for network/timeout/TLS errors).
 * After PST_ERROR the connection is closed: abort() frees the client. */
typedef void (*pst_smtp_client_ready_pt)(pst_smtp_client_t *cl, void *data,
    int rc, const pst_smtp_reply_t *r);

/* Copies conf (and its strings); NULL only when nothing could be set up
 * (no memory, no free connection, a helo_name with a space, CR or LF),
 * and then ready is not called. */
pst_smtp_client_t *pst_smtp_client_open(const pst_smtp_client_conf_t *conf,
    const struct sockaddr *sa, socklen_t len,
    pst_smtp_client_ready_pt ready, void *data);

unsigned pst_smtp_client_caps(pst_smtp_client_t *cl);
off_t pst_smtp_client_max_size(pst_smtp_client_t *cl);   /* 0: none */
int pst_smtp_client_tls(pst_smtp_client_t *cl);          /* 1: encrypted */
int pst_smtp_client_tls_verified(pst_smtp_client_t *cl);
/* 1 when the connection failed its TLS policy (STARTTLS required but not
 * offered, or a certificate that did not verify); valid after a ready
 * callback with PST_ERROR, until abort(). */
int pst_smtp_client_tls_refused(pst_smtp_client_t *cl);
/* Its RFC 8460 result-type ("starttls-not-supported", "certificate-
 * expired", ...), NULL when the policy did not fail. */
const char *pst_smtp_client_tls_result(pst_smtp_client_t *cl);
const char *pst_smtp_client_peer(pst_smtp_client_t *cl); /* "addr:port" */
/* PST_SMTP_AUTH_* the server offered (added). */
unsigned pst_smtp_client_auth_mechs(pst_smtp_client_t *cl);

typedef struct {
    pst_str_t           addr;
    pst_str_t           params;     /* " NOTIFY=... ORCPT=..." or empty */
    pst_smtp_reply_t    reply;      /* RCPT reply; for an accepted
                                       recipient then the DATA reply
                                       (LMTP: its own) */
    unsigned            accepted:1;
} pst_smtp_client_rcpt_t;

typedef struct {
    pst_str_t           sender;
    pst_str_t           params;     /* " BODY=8BITMIME SMTPUTF8 RET= ENVID=";
                                       the client adds SIZE= when offered */
    pst_smtp_client_rcpt_t *rcpts;
    pst_uint_t          nrcpts;
    const pst_str_t    *prepend;    /* header lines (CRLF), sent after */
    pst_uint_t          nprepend;
    off_t               prepend_at; /* the message's first prepend_at
                                       bytes (its trace block; 0: none) */
    int                 fd;         /* message: CRLF text, not stuffed */
    off_t               offset, length;
    pst_smtp_reply_t    mail_reply, data_reply;
} pst_smtp_client_tx_t;

/* rc PST_OK: the transaction ran (each recipient has its reply; the
 * session can take the next one); PST_ERROR: the session broke;
 * recipients without a final reply have code 0. */
typedef void (*pst_smtp_client_done_pt)(pst_smtp_client_t *cl,
    pst_smtp_client_tx_t *tx, void *data, int rc);

/*
 * Start a transaction.  PST_ERROR (and no callback) when the client is
 * busy or its connection is gone, or an address or parameter holds CR,
 * LF or NUL.  Otherwise PST_OK and done is called once.
 *
 * - A message larger than the server's SIZE is not offered: MAIL and
 *   every recipient get a local "552 5.3.4" reply and nothing is sent.
 * - Parameters the server did not announce are dropped: DSN ones
 *   (NOTIFY, ORCPT, RET, ENVID) without DSN, BODY=8BITMIME without
 *   8BITMIME.  SMTPUTF8 is always sent as given.
 * - A rejected MAIL is copied into every recipient's reply.
 * - With CHUNKING the message goes in BDAT chunks, else with DATA.
 */
int pst_smtp_client_send(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx,
    pst_smtp_client_done_pt done, void *data);
/* One command (VRFY, EXPN, NOOP, RSET) and its reply; PST_ERROR as for
 * send() (or a line with CR/LF). */
int pst_smtp_client_command(pst_smtp_client_t *cl, const char *line,
    void (*done)(pst_smtp_client_t *cl, void *data,
                 const pst_smtp_reply_t *r), void *data);
void pst_smtp_client_quit(pst_smtp_client_t *cl);    /* QUIT, close, free */
void pst_smtp_client_abort(pst_smtp_client_t *cl);   /* close now, free */

#endif /* PST_SMTP_CLIENT_H */
