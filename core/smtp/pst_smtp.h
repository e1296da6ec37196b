/*
 * pst_smtp.h -- SMTP server: configuration, session, transaction and
 * the byte parsers.
 *
 * Files of this layer:
 *   pst_smtp_module.c   smtp { } / server { } / listen and the limits
 *   pst_smtp_parse.c    resumable byte parsers: command lines, paths and
 *                       ESMTP parameters, DATA (dot-unstuffing, CRLF.CRLF
 *                       only, bare CR/LF policy)
 *   pst_smtp_session.c  the session state machine and command table
 *   pst_smtp_data.c     DATA and BDAT streaming into the store, commit
 *   pst_smtp_phase.c    hook chains, pending calls, resume tokens
 *   pst_smtp_tls.c      the smtp_tls module: STARTTLS, implicit TLS, SNI
 *   pst_smtp_auth.c     the smtp_auth module: AUTH (RFC 4954), the SASL
 *                       exchange, brute-force limits
 *   pst_smtp_proxy.c    PROXY protocol on the accept path, XCLIENT
 *                       (the header parser: pst_proxy_protocol.c)
 *   pst_smtp_api.c      the session/transaction accessors of the public
 *                       API
 *   pst_smtp_proto.c    shared with the client: line reader, reply and
 *                       EHLO parsers, dot-stuffer (pst_smtp_proto.h)
 *   pst_smtp_client*.c  the outbound client (pst_smtp_client.h)
 */

#ifndef PST_SMTP_H
#define PST_SMTP_H

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"
#include "pst_process.h"
#include "pst_smtp_proto.h"

#define PST_SMTP_MIN_LINE        512        /* RFC 5321 4.5.3.1.4 */
#define PST_SMTP_PATH_MAX        256        /* RFC 5321 4.5.3.1.3 */
#define PST_SMTP_DOMAIN_MAX      255
#define PST_SMTP_LOCAL_MAX       64
#define PST_SMTP_ID_LEN          20

/* Built-in modules, in registration order (pst_modules_init). */
#define PST_SMTP_MODULE          1
#define PST_SMTP_TLS_MODULE      2
#define PST_SMTP_AUTH_MODULE     3

typedef enum {
    PST_BARE_NL_NORMALIZE = 0,
    PST_BARE_NL_REJECT
} pst_bare_nl_e;

/* Configuration of the built-in smtp module, per server block. */
typedef struct {
    pst_str_t                    hostname;
    pst_str_t                    banner;
    size_t                       command_line_limit;
    size_t                       text_line_limit;
    size_t                       message_size_limit;
    size_t                       header_size_limit;
    pst_int_t                    max_recipients;
    pst_int_t                    max_messages;
    pst_int_t                    max_errors;
    pst_int_t                    max_junk_commands;
    pst_msec_t                   command_timeout;
    pst_msec_t                   data_timeout;
    pst_msec_t                   command_deadline;
    size_t                       min_data_rate;   /* bytes/s, 0: off */
    pst_int_t                    max_rcpt_overflows;
    pst_msec_t                   hook_timeout;
    pst_msec_t                   dns_timeout;
    pst_uint_t                   bare_newline;
    pst_int_t                    debug;
    pst_int_t                    pipelining;
    pst_int_t                    forbid_unauth_pipelining;
    pst_int_t                    chunking;
    pst_int_t                    smtputf8;
    pst_int_t                    dsn;
    pst_int_t                    requiretls;
    pst_int_t                    reverse_lookup;
    pst_int_t                    max_connections;
    pst_int_t                    max_connections_per_ip;
    pst_str_t                    store;          /* module name */
    /* pst_smtp_proxy.c */
    pst_array_t                 *proxy_trusted;  /* pst_cidr_t, or NULL */
    pst_msec_t                   proxy_timeout;
    pst_array_t                 *xclient_trusted;
    pst_array_t                 *node_trusted;   /* pst_smtp_node.c */
} pst_smtp_srv_conf_t;

typedef struct {
    pst_hook_pt                  handler;
    pst_module_entry_t          *module;
    int                          priority;
    pst_uint_t                   order;
} pst_hook_entry_t;

struct pst_server_s {
    void                       **srv_conf;     /* per module index */
    signed char                 *enabled;      /* per module: -1, 0, 1 */
    pst_smtp_srv_conf_t         *conf;         /* the smtp module's */
    pst_array_t                  chains[PST_PHASE_MAX];
    pst_module_entry_t          *store;
    pst_uint_t                   index;
    const char                  *file;
    pst_uint_t                   line;
    unsigned                     has_listen:1;
};

/* ------------------------------------------------------------------ */
/* Parsed paths and parameters                                         */

/* NOTIFY= bits: PST_NOTIFY_* (pst_envelope.h) */

typedef enum {
    PST_BODY_NONE = 0,
    PST_BODY_7BIT,
    PST_BODY_8BITMIME,
    PST_BODY_BINARYMIME
} pst_body_e;

typedef enum {
    PST_RET_NONE = 0,
    PST_RET_FULL,
    PST_RET_HDRS
} pst_ret_e;

typedef struct {
    pst_str_t                    addr;       /* local@domain, or empty */
    pst_str_t                    local;
    pst_str_t                    domain;     /* as given */
    unsigned                     null:1;     /* <> */
    unsigned                     utf8:1;     /* non-ASCII seen */
    unsigned                     route:1;    /* had a source route */
    unsigned                     postmaster:1;  /* <Postmaster> alone */
    unsigned                     ip_literal:1;
} pst_smtp_path_t;

typedef struct {
    int64_t                      size;       /* SIZE=, -1 if absent */
    pst_body_e                   body;
    unsigned                     smtputf8:1;
    unsigned                     requiretls:1;   /* RFC 8689 */
    pst_ret_e                    ret;
    pst_str_t                    envid;      /* decoded */
    pst_str_t                    auth;       /* AUTH= decoded, "<>" */
    unsigned                     notify;     /* PST_NOTIFY_* */
    pst_str_t                    orcpt_type; /* "rfc822" */
    pst_str_t                    orcpt;      /* decoded address */
    /* XP-... node facts (XPOSTERN, pst_smtp_node.c): parsed from
     * anyone, accepted only from a node_trusted client */
    unsigned                     node:1;     /* some XP- parameter */
    unsigned                     node_hold:1;
    unsigned                     node_requiretls:1;
    time_t                       node_arrival;   /* 0: not given */
    long                         node_arrival_usec;
    pst_str_t                    node_name;  /* XP-NODE: the sender */
    unsigned                     node_attempts;
    unsigned                     node_dsn;       /* PST_NOTIFY_* sent */
    time_t                       node_next_try;  /* 0: pending */
} pst_smtp_params_t;

/* Parser results: PST_OK, or an error with its reply. */
typedef struct {
    int                          code;
    const char                  *ecode;
    const char                  *text;
} pst_smtp_error_t;

int pst_smtp_parse_path(pst_pool_t *pool, u_char **pos, u_char *end,
    int reverse, int utf8_ok, pst_smtp_path_t *path, pst_smtp_error_t *err);
int pst_smtp_parse_params(pst_pool_t *pool, u_char *pos, u_char *end,
    int mail, pst_smtp_params_t *prm, pst_smtp_error_t *err);
int pst_smtp_check_domain(const u_char *p, size_t n, int utf8_ok);
int pst_smtp_addr_split(pst_pool_t *pool, const pst_str_t *addr,
    pst_str_t *local, pst_str_t *domain);

/* ------------------------------------------------------------------ */
/* Command lines                                                       */

/* pst_smtp_read_line() and its results are in pst_smtp_proto.h. */

/* ------------------------------------------------------------------ */
/* DATA parser                                                         */

typedef struct {
    unsigned                     state;
    unsigned                     dot_mode:1;   /* DATA (not BDAT) */
    unsigned                     in_header:1;
    unsigned                     bare_lf:1;
    unsigned                     bare_cr:1;
    unsigned                     long_line:1;
    unsigned                     too_big:1;
    unsigned                     hdr_overflow:1;
    size_t                       line_len;
    size_t                       max_line;     /* 0: no limit */
    off_t                        size;         /* bytes produced */
    off_t                        max_size;     /* 0: no limit */
    pst_buf_t                   *hdr;          /* header section copy */
    size_t                       hdr_max;
} pst_smtp_data_t;

void pst_smtp_data_init(pst_smtp_data_t *d, int dot_mode);
/* Consume input at *pos..end, produce message bytes into out (olen: in
 * capacity, out bytes produced; needs at least 3 bytes).  Returns
 * PST_DONE at CRLF.CRLF (*pos just past it), PST_AGAIN when the input is
 * used up or out is full. */
int pst_smtp_data_parse(pst_smtp_data_t *d, u_char **pos, u_char *end,
    u_char *out, size_t *olen);
/* End of a BDAT LAST message: close an unterminated last line. */
size_t pst_smtp_data_finish(pst_smtp_data_t *d, u_char *out);

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

typedef enum {
    PST_SMTP_CMD_UNKNOWN = 0,
    PST_SMTP_CMD_HELO,
    PST_SMTP_CMD_EHLO,
    PST_SMTP_CMD_MAIL,
    PST_SMTP_CMD_RCPT,
    PST_SMTP_CMD_DATA,
    PST_SMTP_CMD_BDAT,
    PST_SMTP_CMD_RSET,
    PST_SMTP_CMD_NOOP,
    PST_SMTP_CMD_QUIT,
    PST_SMTP_CMD_HELP,
    PST_SMTP_CMD_VRFY,
    PST_SMTP_CMD_EXPN,
    PST_SMTP_CMD_STARTTLS,
    PST_SMTP_CMD_AUTH,
    PST_SMTP_CMD_XCLIENT
} pst_smtp_cmd_e;

typedef enum {
    PST_SMTP_S_CONNECT = 0,   /* connect hooks, before the greeting */
    PST_SMTP_S_COMMAND,       /* reading commands */
    PST_SMTP_S_PHASE,         /* hooks of a command are running */
    PST_SMTP_S_DATA,          /* DATA body */
    PST_SMTP_S_BDAT,          /* BDAT chunk */
    PST_SMTP_S_COMMIT,        /* waiting for the store */
    PST_SMTP_S_TLS,           /* TLS handshake */
    PST_SMTP_S_AUTH,          /* SASL exchange */
    PST_SMTP_S_CLOSING        /* flush the last reply, then close */
} pst_smtp_state_e;

typedef struct {
    pst_str_t                    addr;
    unsigned                     notify;
    pst_str_t                    orcpt_type;
    pst_str_t                    orcpt;
    /* a node transfer's facts (XP-ATTEMPTS, XP-DSN, XP-NEXT-TRY) */
    unsigned                     attempts;
    unsigned                     dsn_sent;
    time_t                       next_try;
} pst_smtp_rcpt_t;

typedef struct pst_smtp_edits_s  pst_smtp_edits_t;

/* An address in parts, made for the accessors on their first call for
 * the address at "of" (pst_smtp_api.c), in the transaction's pool. */
typedef struct {
    const u_char                *of;
    pst_str_t                    local;        /* unquoted */
    pst_str_t                    domain;
} pst_smtp_addr_parts_t;

typedef struct {
    pst_pool_t                  *pool;
    pst_str_t                    id;
    u_char                       id_data[PST_SMTP_ID_LEN + 1];
    pst_str_t                    sender;
    pst_smtp_params_t            params;
    pst_array_t                  rcpts;        /* pst_smtp_rcpt_t */
    pst_uint_t                   rcpt_accepted; /* duplicates included */
    pst_uint_t                   rcpt_overflows; /* 452s past the limit */
    pst_str_t                    auth_param;
    time_t                       start;

    void                        *store;        /* store handle */
    pst_smtp_data_t              data;
    off_t                        bdat_left;
    pst_buf_t                   *wbuf;
    pst_array_t                 *add_headers;  /* pst_str_t lines */
    uint64_t                     commit_usec;  /* commit started */
    pst_array_t                 *headers;      /* parsed, lazily */
    pst_smtp_edits_t            *edits;        /* pst_smtp_edit.c */
    off_t                        received_len; /* our Received: */
    pst_smtp_addr_parts_t        sender_parts;
    pst_smtp_addr_parts_t        rcpt_parts;   /* of the RCPT being run */
    void                       **module_ctx;   /* pst_tx_set_ctx() */
    pst_array_t                 *notes;        /* pst_note_set(), TX */

    unsigned                     bdat:1;       /* BDAT transaction */
    unsigned                     bdat_last:1;
    unsigned                     failed:1;     /* store write failed */
    unsigned                     data_started:1;
    unsigned                     hold:1;       /* a HOLD verdict */
    unsigned                     discard:1;    /* a DISCARD verdict */
    unsigned                     data_clock:1; /* s->data_by is ours */
} pst_smtp_tx_t;

struct pst_call_s {
    pst_session_t               *session;
    pst_phase_e                  phase;
    int                          code;
    char                         ecode[12];
    u_char                       text[384];
    size_t                       text_len;
    uint64_t                     token;        /* set by defer */
    void                        *data;         /* pst_call_set_data() */
    pst_call_cancel_pt           cancel;       /* pst_call_set_cancel() */
};

/* The reply a verdict becomes (pst_smtp_verdict_map()). */
typedef struct {
    int                          code;
    const char                  *ecode;        /* NULL: none */
    u_char                       text[384];
    size_t                       text_len;
    unsigned                     failure:1;    /* REJECT, TEMPFAIL, 421 */
    unsigned                     close:1;      /* 421: close after it */
    unsigned                     send:1;       /* a reply to send now */
} pst_smtp_answer_t;

typedef void (*pst_phase_done_pt)(pst_session_t *s, pst_verdict_e v);

/* What TLS established for a session (filled by pst_ssl). */
typedef struct {
    const char                  *version;
    const char                  *cipher;
    int                          bits;
    pst_str_t                    peer_subject;
    pst_str_t                    peer_fingerprint;   /* SHA-256, hex */
    pst_str_t                    sni;
    unsigned                     verified:1;     /* peer cert verified */
} pst_tls_facts_t;

typedef struct pst_smtp_auth_s   pst_smtp_auth_t;

struct pst_session_s {
    uint64_t                     id;
    pst_connection_t            *c;
    pst_pool_t                  *pool;
    pst_server_t                *server;
    pst_smtp_srv_conf_t         *conf;
    pst_listening_t             *ls;

    pst_buf_t                   *in;
    pst_buf_t                   *out;

    pst_str_t                    client_addr;
    pst_str_t                    client_name;   /* verified rDNS */
    pst_str_t                    helo;
    pst_str_t                    auth_id;
    pst_str_t                    arg;           /* current command args */
    pst_str_t                    unknown;       /* PST_PHASE_UNKNOWN's line */
    pst_smtp_cmd_e               cmd;

    pst_smtp_state_e             state;
    pst_smtp_tx_t               *tx;
    pst_smtp_path_t              path;          /* MAIL/RCPT being run */
    pst_smtp_params_t            params;
    pst_str_t                    cmd_params;    /* as sent (MAIL, RCPT) */

    /* hooks */
    pst_call_t                   call;
    pst_phase_e                  phase;
    pst_uint_t                   hook_index;
    pst_phase_done_pt            phase_done;
    pst_event_t                  hook_timer;
    pst_event_t                  resume;
    uint16_t                     serial;
    uint16_t                     timed_out;     /* serial of the call the
                                                   module timeout gave up */
    pst_verdict_e                resume_verdict;
    pst_module_entry_t          *pending_module;
    pst_module_entry_t          *verdict_module;  /* the last verdict's */
    uint64_t                     hook_usec;     /* the hook was called */

    void                       **module_ctx;
    pst_array_t                 *notes;        /* pst_note_set(), SESSION */
    pst_session_t               *hash_next;
    pst_list_t                   link;

    time_t                       start;
    pst_uint_t                   errors;
    pst_uint_t                   junk;
    pst_uint_t                   messages;
    unsigned                     skipping;     /* overlong line */

    /* slow clients (pst_smtp_deadline.c) */
    pst_msec_t                   command_by;   /* this line due by then */
    pst_msec_t                   data_by;      /* data credit lasts to */
    uint64_t                     data_carry;   /* credit below 1 ms */
    unsigned                     timer_why:2;  /* PST_SMTP_WAIT_* */

    pst_tls_facts_t             *tls_facts;    /* NULL: plaintext */
    pst_smtp_auth_t             *auth;         /* SASL state, or NULL */
    pst_dns_query_t             *dns;          /* reverse lookup */
    pst_str_t                    ptr_name;

    unsigned                     esmtp:1;
    unsigned                     helo_seen:1;
    unsigned                     tls:1;
    unsigned                     quit:1;
    unsigned                     early_talker:1;
    unsigned                     greeted:1;
    unsigned                     in_handler:1;
    unsigned                     resumed:1;
    unsigned                     pending:1;
    unsigned                     reading_paused:1;
    unsigned                     closing:1;
    unsigned                     shutdown:1;
    unsigned                     limit_counted:1;
    unsigned                     in_process:1;   /* inside the loop */
    unsigned                     rejected:1;     /* 554 greeting */
    unsigned                     bad_pipelining:1;
    unsigned                     eof:1;          /* client closed */
    unsigned                     tls_implicit:1; /* RFC 8314 listener */
    unsigned                     xclient:1;      /* XCLIENT accepted */
};

/* pst_smtp_session.c */
void pst_smtp_init_connection(pst_connection_t *c);
void pst_smtp_reply(pst_session_t *s, int code, const char *ecode,
    const char *fmt, ...) PST_PRINTF(4, 5);
void pst_smtp_reply_raw(pst_session_t *s, const char *text, size_t len);
void pst_smtp_close_session(pst_session_t *s);
void pst_smtp_set_timer(pst_session_t *s, pst_msec_t ms);
void pst_smtp_continue(pst_session_t *s);
void pst_smtp_enter_state(pst_session_t *s, pst_smtp_state_e st);
void pst_smtp_tx_free(pst_session_t *s);
int pst_smtp_flush(pst_session_t *s);
void pst_smtp_shutdown_all(int fast);
pst_uint_t pst_smtp_session_count(void);
void pst_smtp_protocol_log(pst_session_t *s, int client, const u_char *p,
    size_t n);
/* Reverse lookup, connect hooks, greeting (after implicit TLS). */
void pst_smtp_session_start(pst_session_t *s);
/* A time limit ran out: log, 421, enter CLOSING (the caller finalizes). */
void pst_smtp_time_up(pst_session_t *s);
/* Connect hooks and greeting only (XCLIENT with a NAME). */
void pst_smtp_connect_start(pst_session_t *s);

/* pst_smtp_deadline.c: time limits against slow clients */
#define PST_SMTP_WAIT_IDLE       0
#define PST_SMTP_WAIT_DEADLINE   1
#define PST_SMTP_WAIT_RATE       2

void pst_smtp_clock_start(pst_session_t *s, pst_smtp_state_e st);
void pst_smtp_clock_credit(pst_session_t *s, size_t n);
int pst_smtp_clock_spent(pst_session_t *s);
pst_msec_t pst_smtp_clock_wait(pst_session_t *s);
const char *pst_smtp_clock_reason(pst_session_t *s);

/* pst_smtp_data.c */
void pst_smtp_data_start(pst_session_t *s);
void pst_smtp_bdat_start(pst_session_t *s, off_t size, int last);
void pst_smtp_data_read(pst_session_t *s);
void pst_smtp_tx_abort(pst_session_t *s);
int pst_smtp_new_tx(pst_session_t *s);
const char *pst_smtp_protocol(pst_session_t *s);

/* pst_smtp_phase.c */
void pst_smtp_run_phase(pst_session_t *s, pst_phase_e phase,
    pst_phase_done_pt done);
void pst_smtp_run_phase_at(pst_session_t *s, pst_phase_e phase,
    pst_uint_t index, pst_phase_done_pt done);
void pst_smtp_phase_cancel(pst_session_t *s);
int pst_smtp_build_chains(pst_conf_t *cf, pst_cycle_t *cycle,
    pst_server_t *srv);
int pst_smtp_sessions_init(void);
void pst_smtp_session_register(pst_session_t *s);
void pst_smtp_session_unregister(pst_session_t *s);
pst_session_t *pst_smtp_session_find(uint64_t id);
const char *pst_phase_name(pst_phase_e p);
/* The one mapping from a verdict to its reply: the pure function and
 * the one that sends it for the session's current phase (returns
 * PST_DECLINED when the verdict failed the command, else PST_OK). */
void pst_smtp_verdict_map(pst_phase_e phase, pst_verdict_e v,
    const pst_call_t *call, pst_smtp_answer_t *a);
int pst_smtp_verdict_reply(pst_session_t *s, pst_verdict_e v);
void pst_smtp_answer_reply(pst_session_t *s, const pst_smtp_answer_t *a);
/* The message is durable: run the COMMITTED hooks. */
void pst_smtp_committed(pst_session_t *s);

/* pst_log_smtp.c: the per-message line, the rejection line and the
 * metrics counted at the same points. */
void pst_log_commit(pst_session_t *s, int rc);
void pst_log_reject(pst_session_t *s, const pst_smtp_answer_t *a);
void pst_smtp_metric_hook(pst_session_t *s, pst_module_entry_t *me);
/* Store commit completion token (queue phase). */
void pst_smtp_commit_done(pst_session_t *s, int rc);
/* Header and body edits of the end of data, before the commit. */
int pst_smtp_edit_apply(pst_session_t *s);

/* pst_smtp_tls.c */
/* pst_smtp_cmd.c: the command handlers of the table */
void pst_smtp_cmd_helo(pst_session_t *s);
void pst_smtp_cmd_mail(pst_session_t *s);
void pst_smtp_cmd_rcpt(pst_session_t *s);
void pst_smtp_cmd_data(pst_session_t *s);
void pst_smtp_cmd_bdat(pst_session_t *s);
void pst_smtp_cmd_rset(pst_session_t *s);
void pst_smtp_cmd_noop(pst_session_t *s);
void pst_smtp_cmd_quit(pst_session_t *s);
void pst_smtp_cmd_help(pst_session_t *s);
void pst_smtp_cmd_vrfy(pst_session_t *s);
void pst_smtp_cmd_expn(pst_session_t *s);
void pst_smtp_cmd_unknown(pst_session_t *s, pst_str_t *line);
/* pst_smtp_session.c: run a command's phase with the session parked;
 * continue the command loop after a phase done-callback */
void pst_smtp_run(pst_session_t *s, pst_phase_e phase,
    pst_phase_done_pt done);
void pst_smtp_after_phase(pst_session_t *s);

void pst_smtp_cmd_starttls(pst_session_t *s);
void pst_smtp_tls_implicit(pst_session_t *s);
int pst_smtp_tls_offered(pst_session_t *s);
size_t pst_smtp_tls_ehlo(pst_session_t *s, char *buf, size_t size);
int pst_smtp_tls_required(pst_session_t *s);
int pst_smtp_tls_check(pst_session_t *s);

/* pst_smtp_proxy.c: PROXY protocol listeners, XCLIENT */
void pst_smtp_proxy_accept(pst_connection_t *c);
/* Connections of this worker still waiting for their PROXY header. */
pst_uint_t pst_smtp_proxy_pending(void);
void pst_smtp_cmd_xclient(pst_session_t *s);
size_t pst_smtp_xclient_ehlo(pst_session_t *s, char *buf, size_t size);

/* pst_smtp_node.c: node transfers (XPOSTERN, node_trusted) */
int pst_smtp_node_allowed(pst_session_t *s);
size_t pst_smtp_node_ehlo(pst_session_t *s, char *buf, size_t size);
int pst_smtp_node_mail(pst_session_t *s, const pst_smtp_params_t *prm);
int pst_smtp_node_rcpt(pst_session_t *s, const pst_smtp_params_t *prm);
const pst_str_t *pst_smtp_node_reply_name(pst_session_t *s);
void pst_smtp_node_keep(pst_smtp_rcpt_t *r, const pst_smtp_params_t *prm);
void pst_smtp_node_envelope(pst_smtp_tx_t *tx, pst_envelope_t *env);

/* pst_smtp_auth_redis.c: AUTH failures in Redis (auth_client_backend) */
typedef void (*pst_smtp_auth_block_pt)(const u_char key[16],
    uint32_t seconds);
pst_redis_script_t *pst_smtp_auth_redis_script(pst_conf_t *cf);
void pst_smtp_auth_redis_failed(const pst_redis_script_t *script,
    const u_char key[16], pst_int_t limit, pst_msec_t window,
    pst_smtp_auth_block_pt block);
pst_redis_cmd_t *pst_smtp_auth_redis_blocked(const u_char key[16],
    pst_redis_pt handler, void *data);

/* pst_smtp_auth.c */
void pst_smtp_cmd_auth(pst_session_t *s);
int pst_smtp_auth_process(pst_session_t *s);
size_t pst_smtp_auth_ehlo(pst_session_t *s, char *buf, size_t size);
int pst_smtp_auth_mail_check(pst_session_t *s);
void pst_smtp_auth_mail_param(pst_session_t *s);
void pst_smtp_auth_reset(pst_session_t *s);

/* pst_smtp_worker.c: the SMTP workers' process role (pst_main.c's
 * table of roles); the message is durable, tell the queue process
 * (never blocks: a notification it cannot take is logged and dropped,
 * its spool scan finds the message) */
extern const pst_role_t  pst_smtp_worker_role;

/* the smtp layer's built-in modules (pst_modules.c): smtp {} and
 * server {}, STARTTLS, AUTH */
extern const pst_module_t  pst_smtp_core_module;
extern const pst_module_t  pst_smtp_tls_module;
extern const pst_module_t  pst_smtp_auth_module;
void pst_smtp_notify_committed(const u_char *id, size_t len);

#endif /* PST_SMTP_H */
