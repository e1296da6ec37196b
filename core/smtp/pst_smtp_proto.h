/*
 * pst_smtp_proto.h -- the SMTP protocol pieces both directions share.
 *
 *   line reader     cuts CRLF lines out of a buffer, bounded, resumable
 *                   (the server reads commands with it, the client
 *                   reads reply lines with it)
 *   reply parser    multi-line replies "250-..." / "250 ...": code,
 *                   enhanced status code, text; bounded per line and in
 *                   total, resumable across any split of the input
 *   EHLO parser     the keywords of an EHLO reply: capability bits, the
 *                   SIZE value, the AUTH mechanisms
 *   dot-stuffer     message bytes to the wire: bare CR and LF become
 *                   CRLF, a leading '.' is doubled (DATA) or not (BDAT),
 *                   lines over 998 bytes counted; state is carried
 *                   across buffer boundaries
 *
 * Dot-unstuffing (the receiving side) is pst_smtp_data_parse() in
 * pst_smtp_parse.c.  Nothing here does I/O or allocates from a pool.
 */

#ifndef PST_SMTP_PROTO_H
#define PST_SMTP_PROTO_H

/* ------------------------------------------------------------------ */
/* Line reader                                                         */

typedef enum {
    PST_SMTP_LINE_OK = 0,
    PST_SMTP_LINE_AGAIN,        /* need more input */
    PST_SMTP_LINE_TOO_LONG,     /* overlong line skipped up to LF */
    PST_SMTP_LINE_BARE_LF,      /* LF without CR (strict mode) */
    PST_SMTP_LINE_BAD_CHAR      /* NUL or bare CR inside the line */
} pst_smtp_line_e;

/* Find the next line in b.  On PST_SMTP_LINE_OK, *line is the line
 * without CRLF and b->pos is past it.  *skipping carries the "discard
 * to LF" state of an overlong line across reads. */
pst_smtp_line_e pst_smtp_read_line(pst_buf_t *b, size_t limit,
    int strict, unsigned *skipping, pst_str_t *line);

/* ------------------------------------------------------------------ */
/* Replies                                                             */

#define PST_SMTP_REPLY_MAX       65536      /* default total limit */
#define PST_SMTP_REPLY_LINE_MAX  4096       /* one line, CRLF included */

typedef struct {
    int                 code;       /* 0: no reply (network, timeout, TLS) */
    char                ecode[16];  /* "5.1.1" or "" */
    pst_str_t           text;       /* all lines' text, joined by "\n";
                                       for code 0 our own reason */
} pst_smtp_reply_t;

typedef struct {
    pst_buf_t          *text;       /* lines' text joined, malloc'ed */
    size_t              max;        /* total bytes of one reply */
    size_t              total;      /* bytes of this reply so far */
    int                 code;       /* of the first line, 0 before it */
    unsigned            lines;
    unsigned            skipping;
    char                ecode[16];
    const char         *error;      /* why PST_ERROR */
    /* optional: sees every line read, without its CRLF (a trail) */
    void              (*line)(void *data, const pst_str_t *line);
    void               *line_data;
} pst_smtp_reply_parser_t;

/* max: total bytes of one reply (0: PST_SMTP_REPLY_MAX). */
void pst_smtp_reply_init(pst_smtp_reply_parser_t *rp, size_t max);
void pst_smtp_reply_free(pst_smtp_reply_parser_t *rp);
/*
 * Consume complete reply lines from in.  PST_OK: one whole reply is in
 * *r (its text points into the parser, valid until the next call) and
 * in->pos is just past it, so pipelined replies come one per call.
 * PST_AGAIN: every complete line is consumed, more input is needed.
 * PST_ERROR: a line is not a reply line, the code changed between
 * lines, or a limit was passed; rp->error says which.  The connection
 * cannot be trusted after that.
 */
int pst_smtp_reply_parse(pst_smtp_reply_parser_t *rp, pst_buf_t *in,
    pst_smtp_reply_t *r);
/* "X.Y.Z" at p (class 2, 4 or 5, 1-3 digits, 1-3 digits) followed by a
 * space or the end: its length, else 0. */
size_t pst_smtp_ecode_len(const u_char *p, size_t n);

/* ------------------------------------------------------------------ */
/* EHLO keywords                                                       */

#define PST_SMTP_CAP_PIPELINING   0x0001
#define PST_SMTP_CAP_SIZE         0x0002
#define PST_SMTP_CAP_8BITMIME     0x0004
#define PST_SMTP_CAP_SMTPUTF8     0x0008
#define PST_SMTP_CAP_DSN          0x0010
#define PST_SMTP_CAP_CHUNKING     0x0020
#define PST_SMTP_CAP_STARTTLS     0x0040
#define PST_SMTP_CAP_ENHANCED     0x0080
#define PST_SMTP_CAP_AUTH         0x0100
#define PST_SMTP_CAP_REQUIRETLS   0x0200
#define PST_SMTP_CAP_XPOSTERN     0x0400   /* node facts (pst_smtp_node.c) */

#define PST_SMTP_AUTH_PLAIN       0x01
#define PST_SMTP_AUTH_LOGIN       0x02
#define PST_SMTP_AUTH_SCRAM_SHA256 0x04
#define PST_SMTP_AUTH_OTHER       0x80

typedef struct {
    unsigned            caps;       /* PST_SMTP_CAP_* */
    unsigned            auth;       /* PST_SMTP_AUTH_* offered */
    off_t               size;       /* SIZE value; 0: none or no limit */
} pst_smtp_ehlo_t;

/* The text of an EHLO reply (pst_smtp_reply_t.text: the first line is
 * the server's greeting, each further line one keyword).  Unknown
 * keywords and malformed values are ignored. */
void pst_smtp_ehlo_parse(const u_char *text, size_t len,
    pst_smtp_ehlo_t *e);
/* One mechanism name -> PST_SMTP_AUTH_* (OTHER when unknown). */
unsigned pst_smtp_auth_mech(const u_char *p, size_t n);

/* ------------------------------------------------------------------ */
/* Dot-stuffing                                                        */

#define PST_SMTP_LINE_MAX        998        /* RFC 5322 2.1.1, no CRLF */

typedef struct {
    unsigned            dot:1;      /* double leading dots (DATA) */
    unsigned            bol:1;      /* at the beginning of a line */
    unsigned            cr:1;       /* a CR waits for its LF */
    size_t              line_len;   /* bytes of the current line */
    pst_uint_t          long_lines; /* lines over PST_SMTP_LINE_MAX */
    pst_uint_t          bare;       /* bare CR or LF normalised */
} pst_smtp_stuff_t;

void pst_smtp_stuff_init(pst_smtp_stuff_t *st, int dot);
/* Consume input at *pos..end into out (capacity olen, at least 2);
 * returns the bytes written.  Stops when the input is used up or out
 * is full; *pos is where it stopped. */
size_t pst_smtp_stuff(pst_smtp_stuff_t *st, const u_char **pos,
    const u_char *end, u_char *out, size_t olen);
/* End of the message: finish a pending CR or an unterminated last line
 * with CRLF and, with dot set, add ".\r\n".  out needs 5 bytes. */
size_t pst_smtp_stuff_end(pst_smtp_stuff_t *st, u_char *out);

#endif /* PST_SMTP_PROTO_H */
