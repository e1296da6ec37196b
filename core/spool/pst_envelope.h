/*
 * pst_envelope.h -- a message's envelope: sender and MAIL parameters,
 * recipients with their DSN parameters and delivery state, facts about
 * the client, arrival time, prepended header lines.
 *
 * The SMTP layer builds one from a session, the spool keeps it beside
 * the message, the queue process, bounces and the injector read and
 * build them without a session.  pst_envelope.c has the one writer and
 * its exact inverse (text format: docs/SPOOL.md).
 */

#ifndef PST_ENVELOPE_H
#define PST_ENVELOPE_H

#define PST_ENVELOPE_MAGIC       "POSTERN-ENVELOPE 2"
#define PST_ENVELOPE_MAGIC_1     "POSTERN-ENVELOPE 1"
#define PST_ENVELOPE_STATE_MAGIC "POSTERN-STATE 1"
/* the most a writer produces and a reader accepts */
#define PST_ENVELOPE_MAX         (16 * 1024 * 1024)

typedef enum {
    PST_RCPT_PENDING = 0,    /* not tried yet, or due again */
    PST_RCPT_DELIVERED,      /* final: the next hop said 2xx */
    PST_RCPT_DEFERRED,       /* temporary failure; next_try says when */
    PST_RCPT_FAILED          /* final: 5xx, expired, or local policy */
} pst_rcpt_state_e;

/* NOTIFY= (RFC 3461), as the SMTP parser reads it (pst_smtp.h) */
#define PST_NOTIFY_NEVER         0x01
#define PST_NOTIFY_SUCCESS       0x02
#define PST_NOTIFY_FAILURE       0x04
#define PST_NOTIFY_DELAY         0x08

typedef struct {
    pst_str_t           addr;        /* no angle brackets */
    unsigned            notify;      /* PST_NOTIFY_* bits, 0 = not given */
    pst_str_t           orcpt;       /* "rfc822;addr" decoded, or empty */
    pst_rcpt_state_e    state;
    unsigned            attempts;
    time_t              next_try;    /* 0: now */
    time_t              last_try;    /* 0: never */
    pst_str_t           reply;       /* last reply, one line */
    pst_str_t           remote;      /* "mx.example.net[192.0.2.1]:25" */
    unsigned            dsn_sent;    /* bits: which DSNs went out */
} pst_env_rcpt_t;

struct pst_envelope_s {
    pst_str_t           id;
    pst_str_t           sender;          /* empty: null sender */
    pst_str_t           client_addr, client_name, helo, protocol, auth;
    pst_str_t           tls, server, auth_param;
    pst_str_t           envid, ret, body;    /* DSN ENVID/RET, BODY= */
    int                 smtputf8;
    int                 requiretls;      /* MAIL REQUIRETLS (RFC 8689) */
    int64_t             size;            /* -1: unknown */
    time_t              arrival_sec;
    long                arrival_usec;
    int                 hold;            /* held by the operator */
    pst_array_t        *rcpts;           /* pst_env_rcpt_t */
    pst_array_t        *prepend;         /* pst_str_t header lines */
    /* never written: the message's header section when the queue
     * engine read it for the modules' events (pst_qevent_header()) */
    pst_str_t           header;
};

/* An empty envelope (no recipients yet) with its arrays in pool. */
int pst_envelope_init(pst_pool_t *pool, pst_envelope_t *env);
/* Append a pending recipient (addr copied into pool); NULL: no memory. */
pst_env_rcpt_t *pst_envelope_add_rcpt(pst_pool_t *pool, pst_envelope_t *env,
    const u_char *addr, size_t len);
/* "pending", "delivered", "deferred", "failed". */
const char *pst_rcpt_state_name(pst_rcpt_state_e state);
/* 1 when every recipient is DELIVERED or FAILED. */
int pst_envelope_final(const pst_envelope_t *env);

/* One writer and its exact inverse.  The writer allocates *out
 * (pst_buf_destroy() it); the parser's strings point into pool (p is
 * not modified and need not be NUL-terminated). */
int pst_envelope_write(const pst_envelope_t *env, pst_buf_t **out);
int pst_envelope_parse(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why);

/* The delivery state alone (every recipient's state fields and hold),
 * as the spool keeps it beside the immutable queue file, and its
 * inverse, which applies a state to an envelope already parsed: the
 * state must name the same ID and the same recipients in order. */
int pst_envelope_write_state(const pst_envelope_t *env, pst_buf_t **out);
int pst_envelope_parse_state(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why);

#endif /* PST_ENVELOPE_H */
