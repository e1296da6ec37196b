/*
 * pst_send.h -- postern-send and postern-sendmail: a command-line mail
 * composer and submitter on the core's outbound SMTP client.
 *
 *   pst_send_opts.c      command line -> pst_send_opts_t, usage
 *   pst_send_hdr.c       header fields: RFC 2047 words, folding, address
 *                        lists
 *   pst_send_mime.c      body encodings (7bit/8bit/quoted-printable,
 *                        streamed base64), content types by file name
 *   pst_send_compose.c   the message: headers, MIME structure, parts
 *   pst_send_raw.c       ready messages (--raw, -t): line checks, long
 *                        lines re-encoded, the recipients taken from
 *                        the header, Bcc removed
 *   pst_send_smtp.c      one SMTP session with pst_smtp_client: the
 *                        transaction, VRFY/EXPN, trail, results, JSON
 *   pst_send_queue.c     --queue DIR / --process-queue DIR
 *   pst_send_main.c      postern-send's main()
 *   pst_sendmail.c       postern-sendmail's main()
 *
 * Nothing here is linked into the server.
 */

#ifndef PST_SEND_H
#define PST_SEND_H

#include "pst_core.h"

#include <stdio.h>
#include <sysexits.h>

/* Exit codes (sysexits.h), documented in postern-send --help and README. */
#define PST_SEND_OK           EX_OK          /* 0: every recipient took it */
#define PST_SEND_USAGE        EX_USAGE       /* 64: bad command line */
#define PST_SEND_DATAERR      EX_DATAERR     /* 65: bad message input */
#define PST_SEND_NOINPUT      EX_NOINPUT     /* 66: a file is unreadable */
#define PST_SEND_ALLREFUSED   EX_NOUSER      /* 67: every recipient (or the
                                                message) refused */
#define PST_SEND_NOHOST       EX_NOHOST      /* 68: the server's name does
                                                not resolve */
#define PST_SEND_SOMEREFUSED  EX_UNAVAILABLE /* 69: some refused, the
                                                others took it */
#define PST_SEND_IOERR        EX_IOERR       /* 74: local I/O (temp file,
                                                queue directory) */
#define PST_SEND_TEMPFAIL     EX_TEMPFAIL    /* 75: 4xx: try again later */
#define PST_SEND_PROTOCOL     EX_PROTOCOL    /* 76: connection, TLS,
                                                timeout, protocol */
#define PST_SEND_NOPERM       EX_NOPERM      /* 77: authentication refused */
#define PST_SEND_CONFIG       EX_CONFIG      /* 78: password source failed */

#define PST_SEND_MAX_LINE     998            /* RFC 5322 2.1.1 */
#define PST_SEND_MAX_TEXT     (64 * 1024 * 1024) /* one text body */

typedef struct {
    char                  **v;
    size_t                  n, cap;
} pst_send_list_t;

typedef enum {
    PST_SEND_TLS_DEFAULT = 0,   /* STARTTLS when offered, verified */
    PST_SEND_TLS_NONE,
    PST_SEND_TLS_STARTTLS,      /* STARTTLS required */
    PST_SEND_TLS_IMPLICIT
} pst_send_tls_e;

typedef struct {
    /* composing */
    const char             *from, *subject, *reply_to, *date;
    const char             *message_id, *return_path, *read_receipt_to;
    const char             *importance, *priority, *sensitivity;
    pst_send_list_t         to, cc, bcc, headers, attach;
    const char             *body, *body_file, *html_file, *raw;
    int                     extract;        /* -t */
    /* transport */
    const char             *server;
    pst_send_tls_e          tls;
    int                     tls_required, insecure;
    const char             *ca_file, *ca_dir, *cert, *key, *tls_name;
    const char             *helo, *local_address;
    pst_msec_t              timeout, connect_timeout;
    const char             *auth, *user;
    const char             *password_file, *password_command;
    const char             *password_env, *password;
    const char             *notify, *ret, *envid;
    int                     stop_on_rcpt_error;
    pst_send_list_t         verify, expand;
    int                     verbose, json, progress, print;
    int                     quiet;          /* sendmail: failures only */
    const char             *queue, *process_queue;
    int                     keep;
    int                     help, version;
} pst_send_opts_t;

/* The envelope of one message: what MAIL and RCPT carry. */
typedef struct {
    char                   *sender;         /* "" for <> */
    pst_send_list_t         rcpts;
    pst_send_list_t         refused;        /* queue: "ADDR CODE TEXT" */
    int                     eightbit;       /* BODY=8BITMIME */
    int                     smtputf8;
    /* 8-bit octets in a ready message's header: SMTPUTF8 (RFC 6532),
     * or made 7-bit for a server without it (pst_send_raw_7bit()) */
    int                     hdr8;
} pst_send_env_t;

/* The composed message in a temporary file (CRLF lines). */
typedef struct {
    int                     fd;
    off_t                   length;
} pst_send_msg_t;

/* pst_send_opts.c */
int pst_send_list_add(pst_send_list_t *l, const char *s);
/* Split on commas outside quotes and <>; each item trimmed. */
int pst_send_list_split(pst_send_list_t *l, const char *s);
void pst_send_list_free(pst_send_list_t *l);
/* PST_OK, or PST_ERROR with a message in err (exit PST_SEND_USAGE). */
int pst_send_opts_parse(pst_send_opts_t *o, int argc, char **argv,
    char *err, size_t size);
void pst_send_opts_free(pst_send_opts_t *o);
void pst_send_usage(FILE *f);
/* A DSN NOTIFY value: NEVER alone, or a comma-separated list of
 * SUCCESS, FAILURE, DELAY (any case): 1, else 0. */
int pst_send_notify_ok(const char *v);
/* "1m", "30s", "500ms", "10" (seconds) -> msec; -1 if malformed. */
int64_t pst_send_parse_time(const char *s);

/* pst_send_hdr.c */
/* Write "Name: value" folded at 78 columns, value encoded per RFC 2047
 * when it holds non-ASCII or overlong words. */
int pst_send_hdr_text(FILE *f, const char *name, const char *value);
/* Write an address-list field; display names encoded or quoted.
 * PST_ERROR for a malformed address, PST_DECLINED for one too long to
 * fit a line of 998 octets (RFC 5322 2.1.1); either way nothing is
 * written. */
int pst_send_hdr_addrs(FILE *f, const char *name, const pst_send_list_t *l);
/* The bare address of "Name <addr>" or "addr": malloc'ed, or NULL when
 * there is none (or it holds CR, LF, NUL, spaces outside quotes). */
char *pst_send_addr_spec(const char *s);
int pst_send_is_ascii(const u_char *p, size_t n);
/* One encoded word sequence for p[0..n) with the given prefix length
 * already on the line; used for names and unstructured text. */
int pst_send_hdr_encode(FILE *f, const u_char *p, size_t n, size_t *col);
/* p[0..n) is well-formed UTF-8 (RFC 3629). */
int pst_send_is_utf8(const u_char *p, size_t n);

/* pst_send_mime.c */
typedef enum {
    PST_SEND_CTE_7BIT = 0,
    PST_SEND_CTE_8BIT,
    PST_SEND_CTE_QP
} pst_send_cte_e;
/* Choose an encoding for text p[0..n). */
pst_send_cte_e pst_send_text_cte(const u_char *p, size_t n, int allow_8bit);
/* Write text with LF or CRLF line ends as CRLF lines in encoding cte. */
int pst_send_text_write(FILE *f, const u_char *p, size_t n,
    pst_send_cte_e cte);
/* Quoted-printable, streamed: a line may come in any number of pieces
 * (pst_send_qp_put), then its end (pst_send_qp_eol).  Encoded lines are
 * at most 76 columns; white space before a line end is encoded. */
typedef struct {
    FILE                   *f;
    size_t                  col;
    u_char                  ws;         /* a space or tab held back */
} pst_send_qp_t;
void pst_send_qp_put(pst_send_qp_t *q, const u_char *p, size_t n);
void pst_send_qp_eol(pst_send_qp_t *q);
/* Stream a file in base64, 76 columns: PST_OK, or PST_ERROR. */
int pst_send_base64_file(FILE *f, int fd);
const char *pst_send_guess_type(const char *name);

/* pst_send_compose.c */
/* Compose into f from the options; env gets the envelope.  PST_OK or a
 * PST_SEND_* exit code with a message in err. */
int pst_send_compose(const pst_send_opts_t *o, int allow_8bit, FILE *f,
    pst_send_env_t *env, char *err, size_t size);
/* The envelope alone (sender, recipients, DSN) from the options. */
int pst_send_envelope(const pst_send_opts_t *o, pst_send_env_t *env,
    char *err, size_t size);
void pst_send_env_free(pst_send_env_t *env);
/* Random hex into buf (n chars + NUL). */
void pst_send_random_hex(char *buf, size_t n);

/* pst_send_raw.c */
#define PST_SEND_RAW_EXTRACT  1     /* -t: recipients from To/Cc/Bcc */
#define PST_SEND_RAW_ADD      2     /* add From/Date/Message-ID if none */
#define PST_SEND_RAW_DOT      4     /* a line "." ends the input */
#define PST_SEND_RAW_7BIT     8     /* 8-bit body text: quoted-printable */
#define PST_SEND_RAW_HDR7     16    /* 8-bit header fields: RFC 2047 */
/* Copy a ready message from fd into f (a file open for reading and
 * writing) as CRLF lines.  A header line over 998 octets fails; a body
 * line that long makes the body quoted-printable when its Content-Type
 * and Content-Transfer-Encoding allow it, and fails otherwise.  With
 * EXTRACT the To/Cc/Bcc fields give recipients (added to env) and Bcc
 * is left out; with ADD, From (env->sender and full_name), Date and
 * Message-ID are added when missing.  PST_OK or a PST_SEND_* exit code
 * with a message in err. */
int pst_send_raw(int fd, FILE *f, pst_send_env_t *env, unsigned flags,
    const char *full_name, char *err, size_t size);
/* The server lacks 8BITMIME (what has PST_SEND_RAW_7BIT) or SMTPUTF8
 * (PST_SEND_RAW_HDR7): the message pst_send_raw() wrote into f (msg)
 * again, with its body quoted-printable if it has 8-bit text, and its
 * unstructured header fields with 8-bit octets (Subject, Comments,
 * Content-Description, X-*) as RFC 2047 words when they are UTF-8.
 * PST_OK (f and msg hold it; env->eightbit says whether 8-bit octets
 * remain), PST_DECLINED (its MIME fields do not allow a 7-bit body: f
 * unchanged, why in err), PST_SEND_DATAERR (a header field with 8-bit
 * octets that cannot be encoded: f unchanged, which in err) or
 * PST_ERROR. */
int pst_send_raw_7bit(FILE *f, pst_send_msg_t *msg, pst_send_env_t *env,
    unsigned what, char *err, size_t size);
/* The recompose of a ready message (a job's, below): pst_send_raw_7bit()
 * into f (an empty or the message's own temporary file), a warning when
 * the body stays 8-bit.  PST_OK, PST_SEND_DATAERR (why in err: nothing
 * may be sent) or PST_ERROR (why in err). */
int pst_send_raw_recompose(FILE *f, pst_send_msg_t *msg,
    pst_send_env_t *env, unsigned what, char *err, size_t size);
/* The same as a job's recompose (data: a pst_send_redo_t; f NULL: a new
 * temporary file, the caller's to close, the message's file unchanged). */
typedef struct {
    FILE                   *f;
    pst_send_env_t         *env;
} pst_send_redo_t;
int pst_send_raw_redo(void *data, pst_send_msg_t *msg, unsigned what,
    char *err, size_t size);

/* pst_send_smtp.c */
typedef struct {
    pst_send_env_t         *env;
    pst_send_msg_t         *msg;        /* NULL: only VRFY/EXPN */
    /* recompose as 7-bit when the server lacks 8BITMIME (what has
     * PST_SEND_RAW_7BIT) or SMTPUTF8 for a header with 8-bit octets
     * (PST_SEND_RAW_HDR7), or NULL; PST_OK or an exit code, why in err */
    int                   (*recompose)(void *data, pst_send_msg_t *msg,
                                       unsigned what, char *err,
                                       size_t size);
    void                   *recompose_data;
    char                    reason[512];  /* for the queue: last failure */
    pst_send_list_t         retry;        /* recipients to try again */
    pst_send_list_t         refused;      /* "ADDR CODE TEXT", for good */
    int                     connected;    /* a session was ready */
} pst_send_job_t;

/* "host", "host:port", "[v6]:port", "v6" -> host and port. */
int pst_send_split_server(const char *s, char *host, size_t hsize,
    char *port, size_t psize, const char *defport);
/* Connect, send, print results.  Returns a PST_SEND_* exit code. */
int pst_send_run(const pst_send_opts_t *o, pst_send_job_t *job);

/* pst_send_result.c */
/* s as a JSON string, quotes included: '"', '\\' and control characters
 * escaped, bytes outside UTF-8 characters as U+FFFD. */
void pst_send_json_str(FILE *f, const char *s);

/* pst_send_queue.c */
int pst_send_queue_put(const pst_send_opts_t *o, pst_send_env_t *env,
    pst_send_msg_t *msg, char *err, size_t size);
int pst_send_queue_run(const pst_send_opts_t *o);

/* pst_sendmail_conf.c: from the Postern configuration (conf NULL: the
 * default), PST_OK or PST_SEND_CONFIG with the reason printed. */
const char *pst_sendmail_conf_path(const char *conf);
int pst_sendmail_server(const char *conf, char *buf, size_t size);
int pst_sendmail_maildrop(const char *conf, char *buf, size_t size);
int pst_sendmail_spool_dir(const char *conf, char *buf, size_t size);

/* pst_sendmail_spool.c: Postern is down or defers: where SPOOL (the
 * queue itself, if we may write it, else the maildrop) or MAILDROP
 * (only there).  PST_SENDMAIL_SPOOL (the queue ID in id) or
 * PST_SENDMAIL_MAILDROP (the file's name in id), or PST_ERROR with
 * the reason in err.  pst_sendmail_egid: the group postern-sendmail
 * is setgid to, held only to write into the maildrop. */
#define PST_SENDMAIL_SPOOL     1
#define PST_SENDMAIL_MAILDROP  2
extern gid_t  pst_sendmail_egid;
int pst_sendmail_spool(const char *conf, const pst_send_opts_t *o,
    const pst_send_env_t *env, const pst_send_msg_t *msg, int where,
    char *id, size_t size, char *err, size_t esize);

/* pst_send_err.c: "PROG: " and the message (with its "\n") on stderr */
extern const char *pst_send_prog;
void pst_send_err(const char *fmt, ...) PST_PRINTF(1, 2);

/* pst_send_msg.c: the temporary message file */
int pst_send_tmpfile(FILE **f, char *err, size_t size);
int pst_send_finish(FILE *f, pst_send_msg_t *msg, char *err, size_t size);

#endif /* PST_SEND_H */
