/**
 * @file
 * postern/test.h -- libpostern-test: test a plugin without a server.
 *
 * The library is the Postern core itself, linked into your test program,
 * with an in-memory store and a fake client instead of the network.  It
 * loads your plugin with load_module, reads the configuration you give
 * (the real parser: your directives, your errors), and runs real SMTP
 * sessions in-process: your hooks see real session, transaction and
 * message accessors, their verdicts become replies through the core's
 * own rules, PENDING calls wait until you resume them (a timer of the
 * fake clock, a scripted DNS answer), header and envelope edits are
 * applied as a server applies them.
 *
 *     #include <postern/test.h>
 *
 *     pst_test_t  *t = pst_test_new();
 *     pst_test_load(t, "./hello.so");
 *     pst_test_config(t, NULL, "hello_header X-Hello world;");
 *     pst_test_connect(t);
 *     pst_test_helo(t, "client.test");
 *     pst_test_mail(t, "a@client.test");
 *     pst_test_rcpt(t, "b@example.test");
 *     if (!pst_test_expect(pst_test_data(t, "Subject: hi\n\nbody\n"),
 *                          250, "2.0.0", NULL)) ...
 *     strcmp(pst_test_header(t, "X-Hello", 0), "world") == 0
 *     pst_test_free(t);
 *
 * Build and link (docs/PLUGINS.md, "Testing a plugin"):
 *     cc -o t t.c $(pkg-config --cflags --libs postern-test)
 * The plugin itself is built as for the server; the test program
 * exports the API it calls (the pkg-config flags say -Wl,-E).
 *
 * Rules:
 *  - One harness per process at a time (the core's event loop and
 *    tables are process-wide).  Check's default fork mode (CK_FORK)
 *    gives each test a process of its own; one harness after another
 *    is fine: pst_test_free() runs the modules' exit_process, and the
 *    next harness gets fresh shared memory zones.
 *  - The clock is fake: it stands still until pst_test_advance().
 *    Timers (pst_timer_add, module_timeout, the SMTP timeouts) fire
 *    only then; real threads and sockets still run in real time
 *    (pst_test_wait() waits for them).
 *  - DNS comes from pst_test_dns() lines; a lookup nobody scripted gets
 *    NXDOMAIN.
 *  - A recipient that no hook accepted or refused is accepted (the
 *    harness's own last RCPT hook), so a CONTINUE never turns into
 *    "550 Relay access denied".  Messages are kept in memory.
 *  - Session facts set with pst_test_client(), pst_test_tls() and
 *    pst_test_auth() apply to the next pst_test_connect(), from its
 *    CONNECT phase on.
 * Functions returning a string give memory of the harness, valid until
 * the next call that changes what it describes; NULL means "none".
 */

#ifndef POSTERN_TEST_H
#define POSTERN_TEST_H

#include <postern/module.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/** @defgroup harness libpostern-test: testing a plugin
 * @{ */

typedef struct pst_test_s  pst_test_t;   /**< one harness */

/** The reply to the last command. */
typedef struct {
    int                          code;      /**< 0: none (pending, closed) */
    char                         ecode[16]; /**< "5.7.1", "" when none */
    char                         text[1024];/**< the last line after the
                                               codes */
    char                         raw[4096]; /**< every line, CRLF kept */
    int                          pending;   /**< no reply yet */
    int                          closed;    /**< the server hung up (with
                                               this reply or before) */
} pst_test_reply_t;

/** Set up: a scratch directory, the fake clock.  NULL on failure (a
 * message on stderr).  pst_test_free() removes everything. */
pst_test_t *pst_test_new(void);
/** Free the harness: its sessions, messages and scratch directory. */
void pst_test_free(pst_test_t *t);

/** Before pst_test_config(): a module to load (your plugin, or an
 * installed one it works with), in load_module order. */
int pst_test_load(pst_test_t *t, const char *path);
/** Read the configuration: main is top-level text (directives of
 * PST_CONF_MAIN, resolver, module_timeout ...), server the inside of
 * the one server block (directives of PST_CONF_SRV); either may be
 * NULL.  PST_OK, or PST_ERROR with the parser's message in
 * pst_test_error() ("main.conf:3: ..."). */
int pst_test_config(pst_test_t *t, const char *main, const char *server);
/** The parser's message after a failed pst_test_config(). */
const char *pst_test_error(pst_test_t *t);
/** The error log so far (debug level): what your module logged. */
const char *pst_test_log(pst_test_t *t);

/** Facts of the next session.  addr: IPv4 or IPv6 text (default
 * 192.0.2.1); name: its verified reverse name (NULL: none). */
int pst_test_client(pst_test_t *t, const char *addr, const char *name);
/** An encrypted session: version ("TLSv1.3"), cipher, the client
 * certificate's subject (NULL: none) and whether it verified. */
void pst_test_tls(pst_test_t *t, const char *version, const char *cipher,
    const char *peer_subject, int verified);
/** An authenticated session (NULL: not authenticated). */
void pst_test_auth(pst_test_t *t, const char *id);

/** @name A session
 * Each call sends one command and returns its reply (or a pending one:
 * see pst_test_wait()); the reply lives in the harness until the next
 * command. */
/**@{*/
/** Connect: the greeting (or the CONNECT hooks' refusal, or pending). */
const pst_test_reply_t *pst_test_connect(pst_test_t *t);
/** EHLO name. */
const pst_test_reply_t *pst_test_helo(pst_test_t *t, const char *name);
/** MAIL FROM: the address without brackets, then optional ESMTP
 * parameters (`a@b SIZE=10`). */
const pst_test_reply_t *pst_test_mail(pst_test_t *t, const char *sender);
/** RCPT TO: as pst_test_mail(). */
const pst_test_reply_t *pst_test_rcpt(pst_test_t *t, const char *rcpt);
/** DATA, then the message (LF or CRLF lines; the harness dot-stuffs it
 * and adds the final dot): the reply to the end of data (or the
 * refusal of DATA). */
const pst_test_reply_t *pst_test_data(pst_test_t *t, const char *message);
/** Any command line, without CRLF. */
const pst_test_reply_t *pst_test_command(pst_test_t *t, const char *line);
/**@}*/
/** The client hangs up (the DISCONNECT hooks run; a pending call is
 * cancelled). */
void pst_test_close(pst_test_t *t);

/** The reply of a pending command once it came: turns the loop for up
 * to ms of real time (0: only what is ready now) and returns the same
 * reply object, still pending when nothing came. */
const pst_test_reply_t *pst_test_wait(pst_test_t *t, int ms);
/** Move the fake clock forward: due timers fire, then any reply that
 * follows can be read with pst_test_wait(t, 0). */
void pst_test_advance(pst_test_t *t, pst_msec_t ms);

/** How the hooks of phase ended for the last command that ran it:
 * CONTINUE (every hook continued), ACCEPT, REJECT, TEMPFAIL,
 * DISCONNECT, PENDING (no answer yet), DISCARD or HOLD; -1 when the
 * phase did not run.  (From what the core did: a hook's ACCEPT and a
 * CONTINUE the core then accepted differ; two hooks' verdicts are not
 * told apart.) */
int pst_test_verdict(pst_test_t *t, pst_phase_e phase);

/** 1 when r has that code and, when not NULL, that enhanced code and a
 * text that starts with text; otherwise 0 and a line on stderr saying
 * what came instead.  For ck_assert() or assert(). */
int pst_test_expect(const pst_test_reply_t *r, int code, const char *ecode,
    const char *text);

/** The number of messages stored so far. */
int pst_test_stored(pst_test_t *t);
/** The last message stored (after a 2xx to the end of data), as a
 * delivery would send it: the trace block, the fields hooks added,
 * the rest, header and body edits applied; *len its length. */
const char *pst_test_message(pst_test_t *t, size_t *len);
/** The value (after the colon and its blanks, folding kept) of the
 * index-th field (0 first) called name, any case. */
const char *pst_test_header(pst_test_t *t, const char *name,
    unsigned index);
/** The last message's sender ("" for the null sender). */
const char *pst_test_sender(pst_test_t *t);
/** Its number of recipients (after envelope edits). */
unsigned pst_test_rcpt_count(pst_test_t *t);
/** Its i-th recipient (0 first), NULL out of range. */
const char *pst_test_rcpt_at(pst_test_t *t, unsigned i);
/** 1 when it was stored on hold (a HOLD verdict). */
int pst_test_held(pst_test_t *t);

/** Scripted DNS: lookups of name (any case) and type (PST_DNS_A ...)
 * answer status after delay ms of the fake clock (-1: never: the
 * lookup times out), with records, space separated: addresses for A
 * and AAAA, names for PTR, "PREF NAME" pairs for MX, one string for
 * TXT.  PST_OK or PST_ERROR (a malformed record, too many lines). */
int pst_test_dns(pst_test_t *t, const char *name, int type,
    pst_dns_status_e status, const char *records, int delay);
/** How many lookups of name were asked for so far. */
unsigned pst_test_dns_asked(pst_test_t *t, const char *name);

/** @name Session side: STARTTLS, AUTH, DNSSEC, envelope parameters
 * The exchanges a client plays in the middle of a session, through the
 * core as a server runs them, and what the stored envelope carries
 * besides its addresses.  (An addition to the harness of 1.2.) */
/**@{*/
/** The scratch directory: the configuration's prefix (a relative path
 * in it names a file here), removed with everything in it by
 * pst_test_free(); put the files your directives read there. */
const char *pst_test_dir(pst_test_t *t);
/** Server-block text that offers STARTTLS with the harness's own
 * certificate (self-signed, for mx.example.test, made in the scratch
 * directory by pst_test_config()); add your tls_* directives after
 * it. */
#define PST_TEST_TLS_CONF                                                    \
    "tls_certificate harness.crt; tls_certificate_key harness.key;"
/** STARTTLS, then a real TLS handshake as the client (sni: the name
 * asked for, NULL: none; nothing verified), the rest of the session
 * encrypted: the reply to STARTTLS (220, or the refusal: 502 when the
 * server block offers no TLS, 503 when TLS is up).  As after a real
 * STARTTLS the session forgets its HELO, transaction and
 * authentication (EHLO again), and the hooks that follow see the TLS
 * facts OpenSSL gives (version, cipher, SNI; no client certificate:
 * pst_test_tls() sets those facts from the start instead).  A failed
 * handshake gives a reply with code 0 and closed set.  The process
 * then ignores SIGPIPE, as the server does. */
const pst_test_reply_t *pst_test_starttls(pst_test_t *t, const char *sni);
/** AUTH as a client: mech "PLAIN" (an initial response) or "LOGIN"
 * (user and password after the two 334 challenges), base64 as on the
 * wire; the last reply: 235, 535, 454, 538 (the server block wants TLS
 * first: auth_allow_plaintext on, or pst_test_starttls())...  The
 * server side is the core's and the loaded backends' (your AUTH hooks,
 * auth_file): a backend that hashes on its threads answers in real
 * time (pst_test_wait(t, ms)), the failure delay (auth_failure_delay)
 * is a timer of the fake clock.  After a 235 the hooks see
 * pst_session_auth_id() and pst_auth_mechanism().  Other mechanisms:
 * pst_test_command() with your own base64. */
const pst_test_reply_t *pst_test_authenticate(pst_test_t *t,
    const char *mech, const char *user, const char *password);

/** DNSSEC status of a scripted answer, as a module reads it in
 * pst_dns_answer_t. */
typedef enum {
    PST_TEST_INSECURE = 0,   /**< secure 0, bogus 0 (the default) */
    PST_TEST_SECURE,         /**< secure 1: validated */
    PST_TEST_BOGUS           /**< bogus 1: validation failed; as the
                                  core answers it: SERVFAIL, no record */
} pst_test_dnssec_e;
/** The DNSSEC status of the lines scripted so far for name and type
 * (pst_test_dns()).  PST_OK, or PST_ERROR when there is none. */
int pst_test_dns_dnssec(pst_test_t *t, const char *name, int type,
    pst_test_dnssec_e dnssec);

/** The last stored message's MAIL parameters as its envelope keeps
 * them (after pst_tx_set_sender()), values decoded, in this order:
 * "BODY=8BITMIME RET=HDRS ENVID=id AUTH=<a@b> SMTPUTF8 REQUIRETLS",
 * those given only; "" for none, NULL before a message. */
const char *pst_test_mail_params(pst_test_t *t);
/** The i-th recipient's DSN parameters (after pst_tx_add_rcpt()),
 * values decoded: "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b", those given
 * only; "" for none, NULL out of range. */
const char *pst_test_rcpt_params(pst_test_t *t, unsigned i);
/**@}*/

/** @} */

/** @defgroup harness_queue libpostern-test: the queue side
 * Drive a module's queue_event() function and a router as the queue
 * process would, with one fake queued message at a time: what the
 * engine tells (ENQUEUED, ROUTE for each recipient) when it takes the
 * message, then the events a test asks for, with the engine's own
 * bookkeeping (attempts, recipient states, the retry back-off and its
 * clamp, the destination a ROUTE hook chooses).  No delivery is made
 * and nothing is written to a spool.
 *
 *     pst_test_process(t, PST_PROC_QUEUE);   (before pst_test_config)
 *     pst_test_config(t, "webhook_url http://127.0.0.1:8080/;", NULL);
 *     pst_test_queue_message(t, "a@client.test", "b@example.test",
 *                            "Subject: hi

body
");
 *     r = pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451, "4.7.1 later");
 *     r->next_try == 600 ...
 *
 * The fake clock (pst_test_advance()) moves the modules' timers,
 * pst_current_time() and the scripted DNS of the queue side as it does
 * the session side's; pst_test_run() turns the loop in real time for a
 * module's own sockets and threads.
 * @{ */

/** What one event did (pst_test_qevent()). */
typedef struct {
    char                         dest[512]; /**< the recipient's
                                               destination after it (a
                                               ROUTE hook may change it);
                                               "" without a recipient */
    long                         next_try;  /**< DEFERRED: seconds from now
                                               to the next try, after the
                                               hooks and the engine's clamp
                                               to [now, expiry]; else 0 */
    long                         backoff;   /**< DEFERRED: the engine's own
                                               choice before the hooks
                                               (relay_min_backoff ...) */
    int                          final;     /**< every recipient is now
                                               delivered or failed */
} pst_test_qresult_t;

/** A router's answer (pst_test_route()): pst_route_t as text. */
typedef struct {
    int                          pending;   /**< no answer yet */
    int                          verdict;   /**< PST_HOOK_ACCEPT, REJECT or
                                               TEMPFAIL; -1: no router
                                               took the destination */
    int                          code;      /**< REJECT, TEMPFAIL: the code
                                               (a "reject" transport
                                               rule's too) */
    char                         ecode[16]; /**< "5.1.10", "" when none */
    char                         text[512]; /**< the reply's text; why for
                                               -1 */
    unsigned                     nhops;     /**< the hops */
    char                         hops[2048];/**< "name[addr]:port ...", in
                                               the order to try them */
    unsigned                     secure;    /**< how many hops are marked
                                               DNSSEC-secure */
    unsigned                     flags;     /**< PST_ROUTE_LMTP */
    int                          tls;       /**< PST_ROUTE_TLS_* */
    char                         tls_name[256]; /**< "" when none */
    char                         auth_user[256]; /**< "" when none */
    char                         local[64]; /**< a local delivery's name
                                               ("local" unnamed); "" */
} pst_test_route_t;

/** Before pst_test_config(): the process the modules' init_process()
 * is told it runs in: PST_PROC_WORKER (the default: sessions),
 * PST_PROC_QUEUE (queue events and routers) or PST_PROC_SINGLE (both,
 * one process).  PST_OK, or PST_ERROR (configured already, another
 * value).  The hooks run whichever it is. */
int pst_test_process(pst_test_t *t, pst_proc_e type);

/** The engine takes a message (committed from sender, "" or NULL for
 * the null sender, to rcpts: addresses separated by spaces; message:
 * its text, LF or CRLF lines, header first): ENQUEUED, then ROUTE for
 * each recipient, as the queue process tells them.  A message queued
 * before leaves the queue first (pst_test_queue_remove()).  PST_OK, or
 * PST_ERROR (no recipient, no memory; no configuration that reads). */
int pst_test_queue_message(pst_test_t *t, const char *sender,
    const char *rcpts, const char *message);
/** The queued message's queue ID (modules log it); NULL when none. */
const char *pst_test_queue_id(pst_test_t *t);
/** Recipient i's destination (0 first): its domain, the transport
 * table's ("smarthost:", "reject:0") or what a ROUTE hook chose; NULL
 * out of range. */
const char *pst_test_queue_dest(pst_test_t *t, unsigned i);
/**
 * Tell the modules one event about the queued message, as the engine
 * would: for ROUTE, DELIVERED, DEFERRED, FAILED and EXPIRED rcpt is the
 * recipient (0 first), with the attempt counted (not for ROUTE) and its
 * state changed; code and reply (one line, NULL: none) are the hop's;
 * ROUTE chooses the destination again.  For the other events rcpt only
 * picks the destination (PST_QEV_NO_RCPT: the first recipient's);
 * BOUNCE's reply is the DSN's queue ID; RESOLVED, CONNECTED and
 * DISCONNECTED carry no message.  remote is always NULL.  What the hooks
 * did, valid until the next call; NULL without a queued message or
 * with rcpt out of range for a recipient's event.
 */
const pst_test_qresult_t *pst_test_qevent(pst_test_t *t, pst_qevent_e event,
    pst_uint_t rcpt, int code, const char *reply);
/** How many modules keep state with the queued message
 * (pst_qevent_set_ctx()). */
unsigned pst_test_queue_states(pst_test_t *t);
/** The message leaves the queue, as the engine's removal once every
 * recipient is final (after its BOUNCE), a delete or a drain: each
 * module's state is given to its cleanup.  (pst_test_free() does it
 * too.) */
void pst_test_queue_remove(pst_test_t *t);

/** Ask the router of a destination (a domain, "[addr]", "smarthost:"
 * ...: as pst_test_queue_dest() gives it; the transport table picks
 * the module and its next hop, as in the engine) and turn the loop
 * until it answers or nothing more happens.  The answer is written into
 * the returned object (the harness's) when done() runs: still pending
 * until pst_test_advance() brings a scripted DNS answer or a timer.  A
 * new route cancels one still pending (the router's cancel()). */
const pst_test_route_t *pst_test_route(pst_test_t *t, const char *dest);
/** Turn the event loop for ms of real time (at least once): a module's
 * sockets and threads (a webhook's HTTP request) make progress; the
 * fake clock stands still. */
void pst_test_run(pst_test_t *t, int ms);

/** @} */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_TEST_H */
