/*
 * pst_smtp_client_int.h -- what the files of the SMTP client share:
 *
 *   pst_smtp_client.c       the object, connect, I/O, timers, callbacks,
 *                           greeting, EHLO/HELO, STARTTLS, commands, QUIT
 *   pst_smtp_client_tx.c    a transaction: MAIL, RCPT, DATA or BDAT, the
 *                           message streamed from its fd
 *   pst_smtp_client_auth.c  AUTH PLAIN, LOGIN, SCRAM-SHA-256
 *
 * Not for users of the client: they include pst_smtp_client.h.
 */

#ifndef PST_SMTP_CLIENT_INT_H
#define PST_SMTP_CLIENT_INT_H

#include "pst_event.h"
#include "pst_smtp_proto.h"
#include "pst_smtp_client.h"

#define PST_SMTPC_CHUNK          65536      /* message bytes per read */
#define PST_SMTPC_OUT_MAX        (1024 * 1024)
#define PST_SMTPC_WINDOW         100        /* pipelined commands */
#define PST_SMTPC_NOMASK         ((size_t) -1)
#define PST_SMTPC_DUE            128        /* > window + DATA + QUIT */

typedef enum {
    PST_SMTPC_CONNECTING = 0,
    PST_SMTPC_HANDSHAKE,        /* TLS, implicit or after STARTTLS */
    PST_SMTPC_GREETING,
    PST_SMTPC_EHLO,
    PST_SMTPC_HELO,
    PST_SMTPC_STARTTLS,
    PST_SMTPC_AUTH,
    PST_SMTPC_READY,
    PST_SMTPC_TX,
    PST_SMTPC_COMMAND,
    PST_SMTPC_QUIT,
    PST_SMTPC_BROKEN
} pst_smtpc_state_e;

/* what a transaction waits for */
typedef enum {
    PST_SMTPC_TX_ENVELOPE = 0,  /* MAIL, RCPT and (DATA mode) DATA replies */
    PST_SMTPC_TX_BODY,          /* sending the message after 354 */
    PST_SMTPC_TX_DOT,           /* final reply (LMTP: one per recipient) */
    PST_SMTPC_TX_BDAT,          /* a BDAT chunk's reply */
    PST_SMTPC_TX_DISCARD,       /* "." after a 354 nobody wanted */
    PST_SMTPC_TX_RSET
} pst_smtpc_tx_state_e;

/* n replies are due once the output up to byte `end` is sent */
typedef struct {
    uint64_t                     end;
    pst_uint_t                   n;
} pst_smtpc_due_t;

typedef enum {
    PST_SMTPC_CB_NONE = 0,
    PST_SMTPC_CB_READY,
    PST_SMTPC_CB_DONE,
    PST_SMTPC_CB_COMMAND
} pst_smtpc_cb_e;

struct pst_smtp_client_s {
    pst_smtp_client_conf_t       conf;      /* strings copied into pool */
    pst_pool_t                  *pool;      /* the client's lifetime */
    pst_pool_t                  *op_pool;   /* reply texts of one operation */
    pst_connection_t            *c;
    pst_buf_t                   *in;
    pst_buf_t                   *out;
    u_char                      *fbuf;      /* PST_SMTPC_CHUNK, for bodies */
    pst_smtp_reply_parser_t      rp;
    pst_smtpc_state_e            state;
    struct sockaddr_storage      peer_sa;
    socklen_t                    peer_len;
    char                         peer[64];

    /* replies in order: each is due for a command already sent */
    pst_smtpc_due_t              due[PST_SMTPC_DUE];
    pst_uint_t                   due_head, due_len;
    uint64_t                     queued;    /* bytes ever put into out */
    uint64_t                     wire;      /* bytes ever sent from out */

    pst_event_t                  timer;
    pst_msec_t                   wait;      /* for the reply awaited */
    const char                  *what;      /* what is awaited */

    pst_smtp_reply_t             ehlo_reply;   /* for ready() */
    unsigned                     caps;
    unsigned                     auth_mechs;
    off_t                        max_size;

    /* callbacks: one pending, delivered from cb_ev */
    pst_event_t                  cb_ev;
    pst_smtpc_cb_e               cb;
    int                          cb_rc;
    pst_smtp_reply_t             cb_reply;
    pst_smtp_client_ready_pt     ready;
    pst_smtp_client_done_pt      done;
    void                       (*cmd_done)(pst_smtp_client_t *cl,
                                           void *data,
                                           const pst_smtp_reply_t *r);
    void                        *data;

    /* the transaction */
    pst_smtp_client_tx_t        *tx;
    pst_smtpc_tx_state_e         tx_state;
    pst_uint_t                   ncmds;     /* MAIL + RCPTs (+ DATA) */
    pst_uint_t                   nsent;
    pst_uint_t                   ngot;
    pst_uint_t                   naccepted;
    pst_uint_t                   nfinal;    /* LMTP replies after data */
    pst_uint_t                   prepend_i; /* body source position */
    size_t                       prepend_off;
    off_t                        body_done; /* bytes of fd consumed */
    const u_char                *fpos, *fend;  /* unconsumed in fbuf */
    pst_smtp_stuff_t             stuff;
    unsigned                     body_end:1;   /* source exhausted */
    unsigned                     mail_ok:1;
    unsigned                     data_sent:1;
    unsigned                     got_354:1;
    unsigned                     bdat:1;
    unsigned                     bdat_last:1;

    /* AUTH */
    unsigned                     auth_step;
    unsigned                     auth_mech;    /* PST_SMTP_AUTH_* */
    void                        *sasl;          /* SCRAM state */

    unsigned                     tls:1;
    unsigned                     tls_verified:1;
    unsigned                     tls_tried:1;
    unsigned                     tls_refused:1; /* the TLS policy failed */
    long                         verify_code;   /* X509_V_*, -1: none */
    unsigned                     ehlo:1;        /* EHLO (not HELO) worked */
};

/* pst_smtp_client.c */
/* Ready for a new operation?  Then the last one's replies are freed. */
int pst_smtpc_usable(pst_smtp_client_t *cl);
int pst_smtpc_flush(pst_smtp_client_t *cl);
void pst_smtpc_fail(pst_smtp_client_t *cl, const char *why);
void pst_smtpc_finish(pst_smtp_client_t *cl, pst_smtpc_cb_e cb, int rc,
    const pst_smtp_reply_t *r);
int pst_smtpc_line(pst_smtp_client_t *cl, const u_char *p, size_t n,
    size_t mask_from);
int pst_smtpc_append(pst_smtp_client_t *cl, const void *p, size_t n);
/* Message bytes the caller wrote into out itself. */
void pst_smtpc_queued(pst_smtp_client_t *cl, size_t n);
/* n more replies will answer what is queued now (pst_smtpc_line()
 * already counts one for its command). */
int pst_smtpc_due(pst_smtp_client_t *cl, pst_uint_t n);
void pst_smtpc_trail_out(pst_smtp_client_t *cl, size_t start,
    size_t mask_from);
void pst_smtpc_expect(pst_smtp_client_t *cl, pst_msec_t wait,
    const char *what);
int pst_smtpc_copy_reply(pst_smtp_client_t *cl, pst_smtp_reply_t *dst,
    const pst_smtp_reply_t *src);
/* QUIT, close, and the ready callback with PST_ERROR and r. */
void pst_smtpc_give_up(pst_smtp_client_t *cl, const pst_smtp_reply_t *r);
void pst_smtpc_local_reply(pst_smtp_client_t *cl, pst_smtp_reply_t *r,
    int code, const char *ecode, const char *text);

/* pst_smtp_client_tx.c */
void pst_smtpc_tx_reply(pst_smtp_client_t *cl, const pst_smtp_reply_t *r);
/* Produce message bytes into out while there is room: PST_OK (more
 * later), PST_DONE (all queued), PST_ERROR (read error; reason set). */
int pst_smtpc_tx_fill(pst_smtp_client_t *cl);
void pst_smtpc_tx_broken(pst_smtp_client_t *cl, const char *why);

/* pst_smtp_client_auth.c */
/* Start AUTH: PST_OK (a command is queued), PST_DECLINED (nothing to
 * do), PST_ERROR (*why). */
int pst_smtpc_auth_start(pst_smtp_client_t *cl, const char **why);
void pst_smtpc_auth_reply(pst_smtp_client_t *cl, const pst_smtp_reply_t *r);
void pst_smtpc_auth_free(pst_smtp_client_t *cl);

#endif /* PST_SMTP_CLIENT_INT_H */
