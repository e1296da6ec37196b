/*
 * check_smtp_client.c -- the outbound SMTP client (pst_smtp_client*.c)
 * against a scripted server inside the test.
 *
 * The test listens on 127.0.0.1 (port 0), the client connects from the
 * worker's real event loop, and the test plays the server on the
 * accepted socket: it waits for the client's bytes while turning the
 * loop, checks them, and answers.  Every callback records that it ran
 * and fails the test if it runs while the test is inside the client
 * call that started the operation.  Each test is a fork (CK_FORK).
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_smtp_client.h"
#include "pst_spool.h"

#include <sys/mman.h>

#define TC_UNSET  (-100)

static int                  tc_in_call;
static int                  tc_ready_rc, tc_done_rc, tc_cmd_code;
static pst_smtp_reply_t     tc_reply;
static char                 tc_reply_text[4096];
static char                 tc_rbuf[1 << 20];
static size_t               tc_rlen;
static char                 tc_trail[8192];


static void
tc_guard(pst_event_t *ev)
{
    (void) ev;
}


static void
tc_turn(void)
{
    static pst_event_t  guard;

    guard.handler = tc_guard;
    pst_event_add_timer(&guard, 20);
    ck_assert_int_eq(pst_process_events_and_timers(), PST_OK);
    pst_event_del_timer(&guard);
}


static void
tc_until(int *flag)
{
    pst_msec_t  deadline = pst_current_time_msec + 5000;

    while (*flag == TC_UNSET) {
        ck_assert_msg(pst_current_time_msec < deadline, "no callback");
        tc_turn();
    }
}


static void
tc_init(void)
{
    pst_time_update();
    ck_assert_int_eq(pst_event_init(64), PST_OK);
    ck_assert_int_eq(pst_connections_init(64), PST_OK);
    tc_ready_rc = TC_UNSET;
    tc_done_rc = TC_UNSET;
    tc_cmd_code = TC_UNSET;
    tc_rlen = 0;
    tc_trail[0] = '\0';
}


static int
tc_listen(struct sockaddr_in *sin)
{
    socklen_t  len = sizeof(*sin);
    int        fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) sin, sizeof(*sin)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) sin, &len), 0);

    return fd;
}


static int
tc_accept(int lfd)
{
    pst_msec_t  deadline = pst_current_time_msec + 5000;
    int         fd;

    for ( ;; ) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            return fd;
        }
        ck_assert_msg(pst_current_time_msec < deadline, "no connection");
        tc_turn();
    }
}


static void
tc_send(int fd, const char *s)
{
    ck_assert_int_eq(send(fd, s, strlen(s), MSG_NOSIGNAL),
                     (ssize_t) strlen(s));
}


/* Read from the client until tc_rbuf holds `until`; 0 at EOF. */
static int
tc_wait(int fd, const char *until)
{
    pst_msec_t  deadline = pst_current_time_msec + 5000;
    ssize_t     n;

    for ( ;; ) {
        if (memmem(tc_rbuf, tc_rlen, until, strlen(until)) != NULL) {
            return 1;
        }
        n = recv(fd, tc_rbuf + tc_rlen, sizeof(tc_rbuf) - tc_rlen,
                 MSG_DONTWAIT);
        if (n > 0) {
            tc_rlen += (size_t) n;
            continue;
        }
        if (n == 0 || (n == -1 && errno == ECONNRESET)) {
            return 0;
        }
        ck_assert_msg(pst_current_time_msec < deadline,
                      "waiting for \"%s\", have \"%.*s\"", until,
                      (int) tc_rlen, tc_rbuf);
        tc_turn();
    }
}


/* Read from the client until tc_rbuf holds n bytes. */
static void
tc_fill(int fd, size_t n)
{
    pst_msec_t  deadline = pst_current_time_msec + 5000;
    ssize_t     r;

    while (tc_rlen < n) {
        r = recv(fd, tc_rbuf + tc_rlen, n - tc_rlen, MSG_DONTWAIT);
        if (r > 0) {
            tc_rlen += (size_t) r;
            continue;
        }
        ck_assert_msg(r == -1 && errno == EAGAIN, "end of data");
        ck_assert_msg(pst_current_time_msec < deadline, "no data");
        tc_turn();
    }
}


/* What the client sent (all of it so far) equals s; then forget it. */
static void
tc_expect(int fd, const char *s)
{
    size_t  n = strlen(s);

    ck_assert(tc_wait(fd, s));
    ck_assert_msg(tc_rlen == n && memcmp(tc_rbuf, s, n) == 0,
                  "expected \"%s\", got \"%.*s\"", s, (int) tc_rlen,
                  tc_rbuf);
    tc_rlen = 0;
}


static void
tc_ready(pst_smtp_client_t *cl, void *data, int rc, const pst_smtp_reply_t *r)
{
    ck_assert_msg(!tc_in_call, "ready called from inside the call");
    tc_ready_rc = rc;
    tc_reply = *r;
    snprintf(tc_reply_text, sizeof(tc_reply_text), "%.*s",
             (int) r->text.len, r->text.data);
}


static void
tc_done(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx, void *data, int rc)
{
    ck_assert_msg(!tc_in_call, "done called from inside the call");
    tc_done_rc = rc;
}


static void
tc_cmd(pst_smtp_client_t *cl, void *data, const pst_smtp_reply_t *r)
{
    ck_assert_msg(!tc_in_call, "command done called from inside the call");
    tc_cmd_code = r->code;
}


static void
tc_trail_cb(void *data, int outgoing, const u_char *line, size_t len)
{
    size_t  n = strlen(tc_trail);

    snprintf(tc_trail + n, sizeof(tc_trail) - n, "%c %.*s\n",
             outgoing ? '>' : '<', (int) len, line);
}


static pst_smtp_client_t *
tc_open(pst_smtp_client_conf_t *conf, struct sockaddr_in *sin)
{
    pst_smtp_client_t  *cl;

    tc_in_call = 1;
    cl = pst_smtp_client_open(conf, (struct sockaddr *) sin, sizeof(*sin),
                              tc_ready, NULL);
    tc_in_call = 0;
    ck_assert_ptr_nonnull(cl);

    return cl;
}


static void
tc_conf(pst_smtp_client_conf_t *conf)
{
    memset(conf, 0, sizeof(*conf));
    conf->helo_name = "client.test";
    conf->trail = tc_trail_cb;
}


/* Connect, greet, EHLO with the capabilities given; ready OK. */
static pst_smtp_client_t *
tc_session(pst_smtp_client_conf_t *conf, int lfd, struct sockaddr_in *sin,
    int *fd, const char *ehlo)
{
    pst_smtp_client_t  *cl;

    cl = tc_open(conf, sin);
    *fd = tc_accept(lfd);
    tc_send(*fd, "220 mx.test ESMTP\r\n");
    tc_expect(*fd, conf->lmtp ? "LHLO client.test\r\n"
                              : "EHLO client.test\r\n");
    tc_send(*fd, ehlo);
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_OK);

    return cl;
}


/* A message in a memory file, at an offset (garbage before it). */
static int
tc_message(const char *text, size_t len, off_t *offset)
{
    int  fd;

    fd = memfd_create("msg", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "GARBAGE", 7), 7);
    ck_assert_int_eq(write(fd, text, len), (ssize_t) len);
    ck_assert_int_eq(write(fd, "TRAILING", 8), 8);
    *offset = 7;

    return fd;
}


static void
tc_tx(pst_smtp_client_tx_t *tx, pst_smtp_client_rcpt_t *rcpts,
    pst_uint_t n, const char *msg)
{
    static const char  *addrs[] = { "b@y.test", "c@y.test", "d@y.test" };
    pst_uint_t          i;

    memset(tx, 0, sizeof(*tx));
    memset(rcpts, 0, n * sizeof(*rcpts));
    pst_str_set(&tx->sender, "a@x.test");
    for (i = 0; i < n; i++) {
        rcpts[i].addr.data = (u_char *) addrs[i];
        rcpts[i].addr.len = strlen(addrs[i]);
    }
    tx->rcpts = rcpts;
    tx->nrcpts = n;
    tx->length = (off_t) strlen(msg);
    tx->fd = tc_message(msg, strlen(msg), &tx->offset);
}


static void
tc_send_tx(pst_smtp_client_t *cl, pst_smtp_client_tx_t *tx)
{
    tc_done_rc = TC_UNSET;
    tc_in_call = 1;
    ck_assert_int_eq(pst_smtp_client_send(cl, tx, tc_done, NULL), PST_OK);
    tc_in_call = 0;
}


/* ------------------------------------------------------------------ */

/* PIPELINING: MAIL, both RCPTs and DATA in one group before any
 * reply; the message dot-stuffed and normalised; replies mapped. */
START_TEST(test_client_pipelined)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[2];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd, "250-mx.test\r\n250-PIPELINING\r\n"
                    "250-SIZE 100000\r\n250 8BITMIME\r\n");
    ck_assert_uint_eq(pst_smtp_client_caps(cl), PST_SMTP_CAP_PIPELINING
                      | PST_SMTP_CAP_SIZE | PST_SMTP_CAP_8BITMIME);
    ck_assert_int_eq(pst_smtp_client_max_size(cl), 100000);
    ck_assert_int_eq(tc_reply.code, 250);
    ck_assert_str_eq(tc_reply_text, "mx.test\nPIPELINING\nSIZE 100000\n"
                     "8BITMIME");
    ck_assert_int_eq(pst_smtp_client_tls(cl), 0);

    tc_tx(&tx, rcpts, 2, "Subject: x\r\n\r\n.leading\nbare\r\n.\r\nend");
    pst_str_set(&tx.params, " BODY=8BITMIME RET=HDRS");
    pst_str_set(&rcpts[0].params, " NOTIFY=NEVER");
    tc_send_tx(cl, &tx);

    /* no DSN offered: RET and NOTIFY dropped, BODY kept; SIZE added */
    tc_expect(fd, "MAIL FROM:<a@x.test> SIZE=35 BODY=8BITMIME\r\n"
              "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
    tc_send(fd, "250 2.1.0 ok\r\n550 5.1.1 no such user\r\n"
            "250 2.1.5 ok\r\n354 go ahead\r\n");
    tc_expect(fd, "Subject: x\r\n\r\n..leading\r\nbare\r\n..\r\nend\r\n"
              ".\r\n");
    ck_assert_int_eq(tc_done_rc, TC_UNSET);
    tc_send(fd, "250 2.0.0 Ok: queued as X\r\n");
    tc_until(&tc_done_rc);

    ck_assert_int_eq(tc_done_rc, PST_OK);
    ck_assert_int_eq(tx.mail_reply.code, 250);
    ck_assert_int_eq(rcpts[0].reply.code, 550);
    ck_assert_str_eq(rcpts[0].reply.ecode, "5.1.1");
    ck_assert(!rcpts[0].accepted);
    ck_assert(rcpts[1].accepted);
    ck_assert_int_eq(rcpts[1].reply.code, 250);
    ck_assert_str_eq(rcpts[1].reply.ecode, "2.0.0");
    ck_assert_uint_eq(rcpts[1].reply.text.len, 15);
    ck_assert_int_eq(tx.data_reply.code, 250);

    /* the trail saw both directions */
    ck_assert_ptr_nonnull(strstr(tc_trail, "> RCPT TO:<c@y.test>\n"));
    ck_assert_ptr_nonnull(strstr(tc_trail, "< 550 5.1.1 no such user\n"));

    /* a second transaction on the same session, then QUIT */
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test> SIZE=35 BODY=8BITMIME\r\n"
              "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
    tc_send(fd, "250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n");
    ck_assert(tc_wait(fd, "\r\n.\r\n"));
    tc_rlen = 0;
    tc_send(fd, "250 ok\r\n");
    tc_until(&tc_done_rc);
    ck_assert(rcpts[0].accepted && rcpts[1].accepted);

    pst_smtp_client_quit(cl);
    tc_expect(fd, "QUIT\r\n");
    tc_send(fd, "221 bye\r\n");
    ck_assert_int_eq(tc_wait(fd, "never"), 0);
    ck_assert_uint_eq(pst_connections_used(), 0);
    close(fd);
    close(lfd);
}
END_TEST


/* HELO fallback and, without PIPELINING, one command at a time. */
START_TEST(test_client_helo_lockstep)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[2];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    tc_send(fd, "220 old.test\r\n");
    tc_expect(fd, "EHLO client.test\r\n");
    tc_send(fd, "502 what\r\n");
    tc_expect(fd, "HELO client.test\r\n");
    tc_send(fd, "250 old.test\r\n");
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_OK);
    ck_assert_uint_eq(pst_smtp_client_caps(cl), 0);

    tc_tx(&tx, rcpts, 2, "x\r\n");
    pst_str_set(&tx.params, " BODY=8BITMIME");
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
    tc_send(fd, "250 ok\r\n");
    tc_expect(fd, "RCPT TO:<b@y.test>\r\n");
    tc_send(fd, "450 4.2.0 later\r\n");
    tc_expect(fd, "RCPT TO:<c@y.test>\r\n");
    tc_send(fd, "550 no\r\n");
    /* nobody accepted: no DATA, the transaction is reset */
    tc_expect(fd, "RSET\r\n");
    tc_send(fd, "250 ok\r\n");
    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_OK);
    ck_assert_int_eq(rcpts[0].reply.code, 450);
    ck_assert_int_eq(rcpts[1].reply.code, 550);

    /* MAIL refused: the recipients get its reply, nothing else sent */
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
    tc_send(fd, "553 5.1.8 bad sender\r\n");
    tc_until(&tc_done_rc);
    ck_assert_int_eq(rcpts[0].reply.code, 553);
    ck_assert_int_eq(rcpts[1].reply.code, 553);
    ck_assert_str_eq(rcpts[1].reply.ecode, "5.1.8");

    /* a 250 to DATA is no delivery: the session is dropped, the
     * accepted recipient has no final reply */
    pst_smtp_client_abort(cl);
    close(fd);
    tc_ready_rc = TC_UNSET;
    cl = tc_session(&conf, lfd, &sin, &fd, "250 mx.test\r\n");
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
    tc_send(fd, "250 ok\r\n");
    tc_expect(fd, "RCPT TO:<b@y.test>\r\n");
    tc_send(fd, "250 ok\r\n");
    tc_expect(fd, "RCPT TO:<c@y.test>\r\n");
    tc_send(fd, "550 no\r\n");
    tc_expect(fd, "DATA\r\n");
    tc_send(fd, "250 sure\r\n");
    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_ERROR);
    ck_assert_int_eq(rcpts[0].reply.code, 0);
    ck_assert_int_eq(rcpts[1].reply.code, 550);
    pst_smtp_client_abort(cl);

    /* one command */
    close(fd);
    tc_ready_rc = TC_UNSET;
    cl = tc_session(&conf, lfd, &sin, &fd, "250 mx.test\r\n");
    tc_in_call = 1;
    ck_assert_int_eq(pst_smtp_client_command(cl, "NOOP", tc_cmd, NULL),
                     PST_OK);
    ck_assert_int_eq(pst_smtp_client_command(cl, "NOOP", tc_cmd, NULL),
                     PST_ERROR);
    tc_in_call = 0;
    tc_expect(fd, "NOOP\r\n");
    tc_send(fd, "250 ok\r\n");
    tc_until(&tc_cmd_code);
    ck_assert_int_eq(tc_cmd_code, 250);
    ck_assert_int_eq(pst_smtp_client_command(cl, "NOOP\r\nRSET", tc_cmd,
                                             NULL), PST_ERROR);

    pst_smtp_client_abort(cl);
    ck_assert_uint_eq(pst_connections_used(), 0);

    /* no command smuggled in through the HELO name */
    conf.helo_name = "client.test\r\nMAIL FROM:<x>";
    ck_assert_ptr_null(pst_smtp_client_open(&conf, (struct sockaddr *) &sin,
                                            sizeof(sin), tc_ready, NULL));
    ck_assert_uint_eq(pst_connections_used(), 0);
    close(fd);
    close(lfd);
}
END_TEST


/* The server refuses the session: 554 greeting -> ready fails with it,
 * the client says QUIT and closes. */
START_TEST(test_client_refused)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    tc_send(fd, "554-5.7.1 go away\r\n554 5.7.1 really\r\n");
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_ERROR);
    ck_assert_int_eq(tc_reply.code, 554);
    ck_assert_str_eq(tc_reply.ecode, "5.7.1");
    ck_assert_str_eq(tc_reply_text, "go away\nreally");
    ck_assert(tc_wait(fd, "QUIT\r\n"));
    ck_assert_int_eq(tc_wait(fd, "never"), 0);
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* Nobody listens: ready fails with code 0, from the loop. */
START_TEST(test_client_connect_refused)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd;

    tc_init();
    lfd = tc_listen(&sin);
    close(lfd);
    tc_conf(&conf);
    cl = tc_open(&conf, &sin);
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_ERROR);
    ck_assert_int_eq(tc_reply.code, 0);
    ck_assert_ptr_nonnull(strstr(tc_reply_text, "refused"));
    pst_smtp_client_abort(cl);
}
END_TEST


/* A silent server: the greeting timeout; a garbage reply; a reply
 * larger than max_reply. */
START_TEST(test_client_bad_server)
{
    static const char       *greet[] = { NULL, "hello there\r\n",
                                         "220-a\r\n220-b\r\n220-c\r\n" };
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    conf.greeting_timeout = 200;
    conf.max_reply = 10;
    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    if (greet[_i] != NULL) {
        tc_send(fd, greet[_i]);
    }
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_ERROR);
    ck_assert_int_eq(tc_reply.code, 0);
    ck_assert_ptr_nonnull(strstr(tc_reply_text, _i == 0 ? "timed out"
                                 : _i == 1 ? "malformed reply line"
                                 : "reply too long"));
    ck_assert_int_eq(tc_wait(fd, "never"), 0);
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* SIZE: a message over the limit is refused locally, after the call
 * returned, and nothing is sent. */
START_TEST(test_client_size)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    pst_str_t                pre;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd, "250-mx.test\r\n250 SIZE 20\r\n");

    tc_tx(&tx, rcpts, 1, "0123456789012345\r\n");     /* 18 bytes */
    pst_str_set(&pre, "X-A: b\r\n");
    tx.prepend = &pre;
    tx.nprepend = 1;
    tc_send_tx(cl, &tx);
    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_OK);
    ck_assert_int_eq(rcpts[0].reply.code, 552);
    ck_assert_str_eq(rcpts[0].reply.ecode, "5.3.4");
    ck_assert_int_eq(tx.mail_reply.code, 552);

    /* without the prepended line it fits */
    tx.nprepend = 0;
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test> SIZE=18\r\n");
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* Prepended header lines go below the message's trace block
 * (prepend_at), not above our Received: (RFC 5321 4.4). */
START_TEST(test_client_prepend_below_trace)
{
    static const char        msg[] = "Received: from a\r\n\tby b\r\n"
                                     "Subject: s\r\n\r\nbody\r\n";
    static const char        want[] = "Received: from a\r\n\tby b\r\n"
                                      "X-A: 1\r\nSubject: s\r\n\r\n"
                                      "body\r\n.\r\n";
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    pst_str_t                pre;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd, "250-mx.test\r\n250 PIPELINING\r\n");

    tc_tx(&tx, rcpts, 1, msg);
    pst_str_set(&pre, "X-A: 1\r\n");
    tx.prepend = &pre;
    tx.nprepend = 1;
    tx.prepend_at = 25;                 /* the Received field, folded */
    ck_assert_int_eq(pst_spool_trace_len(tx.fd, tx.offset, tx.length), 25);
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
              "DATA\r\n");
    tc_send(fd, "250 ok\r\n250 ok\r\n354 go\r\n");
    ck_assert(tc_wait(fd, "\r\n.\r\n"));
    ck_assert_uint_eq(tc_rlen, strlen(want));
    ck_assert(memcmp(tc_rbuf, want, strlen(want)) == 0);
    tc_send(fd, "250 ok\r\n");
    tc_until(&tc_done_rc);
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* A big message across several 64 KiB reads: a '.' right at a read
 * boundary is stuffed, prepended lines come first, the offset is
 * honoured; then the same message with BDAT in chunks. */
START_TEST(test_client_big_message)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    pst_str_t                pre[2];
    static char              msg[200001], want[220000];
    char                     line[64], *p;
    size_t                   i, wl, total, m;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd,
                    _i ? "250-mx.test\r\n250-CHUNKING\r\n250 PIPELINING\r\n"
                       : "250-mx.test\r\n250 PIPELINING\r\n");

    /* lines of 10 bytes, and two dots at line starts near the end of
     * the first read */
    for (i = 0; i + 10 <= sizeof(msg) - 1; i += 10) {
        memcpy(msg + i, "abcdefgh\r\n", 10);
    }
    msg[sizeof(msg) - 1] = '\0';
    pst_str_set(&pre[0], "X-One: 1\r\n");
    pst_str_set(&pre[1], "X-Two: 22\r\n");
    /* the first chunk holds the 21 prepended bytes, then the message:
     * the message's byte 65536 - 21 starts the second chunk */
    msg[65536 - 21 - 10] = '\r';
    msg[65536 - 21 - 9] = '\n';
    msg[65536 - 21 - 8] = '.';
    msg[65536 - 21] = '.';
    msg[65536 - 21 - 1] = '\n';
    msg[65536 - 21 - 2] = '\r';
    msg[65536 - 21 + 1] = 'z';

    wl = 0;
    memcpy(want, "X-One: 1\r\nX-Two: 22\r\n", 21);
    wl = 21;
    for (i = 0; i < strlen(msg); i++) {
        if ((msg[i] == '.' && i >= 2 && msg[i - 1] == '\n') && !_i) {
            want[wl++] = '.';
        }
        want[wl++] = msg[i];
    }

    tc_tx(&tx, rcpts, 1, msg);
    tx.prepend = pre;
    tx.nprepend = 2;
    tc_send_tx(cl, &tx);

    if (_i == 0) {
        tc_expect(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
                  "DATA\r\n");
        tc_send(fd, "250 ok\r\n250 ok\r\n354 go\r\n");
        ck_assert(tc_wait(fd, "\r\n.\r\n"));
        ck_assert_uint_eq(tc_rlen, wl + 3);
        ck_assert(memcmp(tc_rbuf, want, wl) == 0);
        tc_send(fd, "250 ok\r\n");

    } else {
        /* CHUNKING: MAIL and RCPT pipelined, then BDAT chunks one by
         * one, each waiting for its reply */
        tc_expect(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n");
        tc_send(fd, "250 ok\r\n250 ok\r\n");
        total = 0;
        for (i = 0; ; i++) {
            ck_assert(tc_wait(fd, "\r\n"));
            p = memchr(tc_rbuf, '\n', tc_rlen);
            snprintf(line, sizeof(line), "%.*s", (int) (p - tc_rbuf),
                     tc_rbuf);
            ck_assert_msg(strncmp(line, "BDAT ", 5) == 0, "%s", line);
            m = strtoul(line + 5, NULL, 10);
            memmove(tc_rbuf, p + 1, tc_rlen - (size_t) (p + 1 - tc_rbuf));
            tc_rlen -= (size_t) (p + 1 - tc_rbuf);
            tc_fill(fd, m);
            ck_assert_uint_eq(tc_rlen, m);
            ck_assert(memcmp(tc_rbuf, want + total, m) == 0);
            total += m;
            tc_rlen = 0;
            tc_send(fd, "250 ok\r\n");
            if (strstr(line, " LAST") != NULL) {
                break;
            }
            ck_assert_uint_le(m, 2 * 65536);
        }
        ck_assert_uint_ge(i, 3);
        ck_assert_uint_eq(total, wl);
    }

    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_OK);
    ck_assert_int_eq(rcpts[0].reply.code, 250);
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* LMTP: LHLO, and one reply per accepted recipient after the data. */
START_TEST(test_client_lmtp)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[3];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    conf.lmtp = 1;
    cl = tc_session(&conf, lfd, &sin, &fd,
                    "250-lmtp.test\r\n250 PIPELINING\r\n");
    tc_tx(&tx, rcpts, 3, "hi\r\n");
    tc_send_tx(cl, &tx);
    tc_expect(fd, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
              "RCPT TO:<c@y.test>\r\nRCPT TO:<d@y.test>\r\nDATA\r\n");
    tc_send(fd, "250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n");
    tc_expect(fd, "hi\r\n.\r\n");
    tc_send(fd, "250 2.0.0 b delivered\r\n");
    tc_turn();
    ck_assert_int_eq(tc_done_rc, TC_UNSET);
    tc_send(fd, "452 4.2.2 d over quota\r\n");
    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_OK);
    ck_assert_int_eq(rcpts[0].reply.code, 250);
    ck_assert_int_eq(rcpts[1].reply.code, 550);
    ck_assert_int_eq(rcpts[2].reply.code, 452);
    ck_assert_str_eq(rcpts[2].reply.ecode, "4.2.2");
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* The server goes away in the middle: recipients without a final
 * reply get code 0, those refused keep their reply. */
START_TEST(test_client_broken)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[2];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd, "250-mx.test\r\n250 PIPELINING\r\n");
    tc_tx(&tx, rcpts, 2, "hi\r\n");
    tc_send_tx(cl, &tx);
    ck_assert(tc_wait(fd, "DATA\r\n"));
    tc_send(fd, "250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n");
    ck_assert(tc_wait(fd, "\r\n.\r\n"));
    close(fd);
    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_ERROR);
    ck_assert_int_eq(rcpts[0].reply.code, 550);
    ck_assert_int_eq(rcpts[1].reply.code, 0);
    ck_assert(rcpts[1].reply.text.len > 0);
    ck_assert_int_eq(tx.data_reply.code, 0);

    /* the session is gone */
    tc_in_call = 1;
    ck_assert_int_eq(pst_smtp_client_send(cl, &tx, tc_done, NULL),
                     PST_ERROR);
    tc_in_call = 0;
    pst_smtp_client_abort(cl);
    ck_assert_uint_eq(pst_connections_used(), 0);
    close(lfd);
}
END_TEST


/* AUTH PLAIN and LOGIN: the right bytes on the wire, secrets masked in
 * the trail; a refused AUTH fails the set-up with the server's reply. */
START_TEST(test_client_auth)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    conf.auth_mech = _i == 0 ? "PLAIN" : _i == 1 ? "LOGIN" : "auto";
    conf.auth_user = "user";
    conf.auth_pass = "secret";
    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    tc_send(fd, "220 mx.test\r\n");
    tc_expect(fd, "EHLO client.test\r\n");
    tc_send(fd, "250-mx.test\r\n250 AUTH LOGIN PLAIN\r\n");

    if (_i == 2) {
        /* auto: no plain text mechanism without TLS */
        tc_until(&tc_ready_rc);
        ck_assert_int_eq(tc_ready_rc, PST_ERROR);
        ck_assert_int_eq(tc_reply.code, 0);
        ck_assert_ptr_nonnull(strstr(tc_reply_text, "without TLS"));
        ck_assert(tc_wait(fd, "QUIT\r\n"));
    } else if (_i == 0) {
        tc_expect(fd, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
        tc_send(fd, "235 2.7.0 ok\r\n");
        tc_until(&tc_ready_rc);
        ck_assert_int_eq(tc_ready_rc, PST_OK);
        ck_assert_ptr_nonnull(strstr(tc_trail, "> AUTH PLAIN ********\n"));
    } else {
        tc_expect(fd, "AUTH LOGIN\r\n");
        tc_send(fd, "334 VXNlcm5hbWU6\r\n");
        tc_expect(fd, "dXNlcg==\r\n");
        tc_send(fd, "334 UGFzc3dvcmQ6\r\n");
        tc_expect(fd, "c2VjcmV0\r\n");
        tc_send(fd, "535 5.7.8 bad\r\n");
        tc_until(&tc_ready_rc);
        ck_assert_int_eq(tc_ready_rc, PST_ERROR);
        ck_assert_int_eq(tc_reply.code, 535);
        ck_assert_ptr_null(strstr(tc_trail, "dXNlcg=="));
        ck_assert_ptr_null(strstr(tc_trail, "c2VjcmV0"));
    }

    ck_assert_ptr_null(strstr(tc_trail, "AHVzZXIAc2VjcmV0"));
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* STARTTLS required but not offered; and a server that sends bytes
 * after its 220 to STARTTLS (a command injection) is dropped. */
START_TEST(test_client_starttls_policy)
{
    pst_smtp_client_conf_t   conf;
    pst_ssl_client_conf_t    sconf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    pst_pool_t              *pool;
    char                     err[256];
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    pool = pst_create_pool(4096);
    memset(&sconf, 0, sizeof(sconf));
    conf.ssl_ctx = pst_ssl_client_ctx(pool, &sconf, err, sizeof(err));
    ck_assert_ptr_nonnull(conf.ssl_ctx);
    conf.tls = _i == 0 ? PST_SMTPC_TLS_ENCRYPT : PST_SMTPC_TLS_MAY;

    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    tc_send(fd, "220 mx.test\r\n");
    tc_expect(fd, "EHLO client.test\r\n");

    if (_i == 0) {
        tc_send(fd, "250-mx.test\r\n250 PIPELINING\r\n");
        tc_until(&tc_ready_rc);
        ck_assert_int_eq(tc_ready_rc, PST_ERROR);
        ck_assert_ptr_nonnull(strstr(tc_reply_text, "STARTTLS"));
    } else {
        tc_send(fd, "250-mx.test\r\n250 STARTTLS\r\n");
        tc_expect(fd, "STARTTLS\r\n");
        tc_send(fd, "220 go\r\n250 injected\r\n");
        tc_until(&tc_ready_rc);
        ck_assert_int_eq(tc_ready_rc, PST_ERROR);
        ck_assert_ptr_nonnull(strstr(tc_reply_text, "after its STARTTLS"));
    }

    pst_smtp_client_abort(cl);
    pst_destroy_pool(pool);
    close(fd);
    close(lfd);
}
END_TEST


/* SCRAM-SHA-256: the client checks the server's signature; a server
 * that says 235 without one, or signs wrongly, is refused. */
START_TEST(test_client_scram_mutual)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    u_char                   dec[256], enc[512];
    char                     line[600], *nonce;
    ssize_t                  n;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    conf.auth_mech = "auto";
    conf.auth_user = "us,er";
    conf.auth_pass = "pencil";
    cl = tc_open(&conf, &sin);
    fd = tc_accept(lfd);
    tc_send(fd, "220 mx.test\r\n");
    tc_expect(fd, "EHLO client.test\r\n");
    tc_send(fd, "250-mx.test\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n");

    /* client-first: gs2 header, escaped user name, a nonce */
    ck_assert(tc_wait(fd, "\r\n"));
    ck_assert(strncmp(tc_rbuf, "AUTH SCRAM-SHA-256 ", 19) == 0);
    n = pst_base64_decode(dec, (u_char *) tc_rbuf + 19, tc_rlen - 21);
    ck_assert_int_gt(n, 0);
    dec[n] = '\0';
    ck_assert(strncmp((char *) dec, "n,,n=us=2Cer,r=", 15) == 0);
    nonce = (char *) dec + 15;
    ck_assert_uint_ge(strlen(nonce), 24);
    ck_assert_ptr_nonnull(strstr(tc_trail, "> AUTH SCRAM-SHA-256 ****"));
    tc_rlen = 0;

    n = snprintf(line, sizeof(line), "r=%sSRV,s=QSXCR+Q6sek8bf92,i=4096",
                 nonce);
    enc[pst_base64_encode(enc, (u_char *) line, (size_t) n)] = '\0';
    snprintf(line, sizeof(line), "334 %s\r\n", enc);
    tc_send(fd, line);

    /* client-final carries the combined nonce and a proof */
    ck_assert(tc_wait(fd, "\r\n"));
    n = pst_base64_decode(dec, (u_char *) tc_rbuf, tc_rlen - 2);
    ck_assert_int_gt(n, 0);
    dec[n] = '\0';
    ck_assert(strncmp((char *) dec, "c=biws,r=", 9) == 0);
    ck_assert_ptr_nonnull(strstr((char *) dec, "SRV,p="));
    tc_rlen = 0;

    if (_i == 0) {
        tc_send(fd, "235 2.7.0 ok\r\n");
    } else {
        /* v= with 32 zero bytes */
        tc_send(fd, "334 dj1BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQ"
                    "UFBQUE9\r\n");
    }
    tc_until(&tc_ready_rc);
    ck_assert_int_eq(tc_ready_rc, PST_ERROR);
    ck_assert_int_eq(tc_reply.code, 0);
    ck_assert_ptr_nonnull(strstr(tc_reply_text, _i == 0 ? "proving"
                                                        : "signature"));
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* A server's 421 while the session is idle: the next send is refused;
 * a message file shorter than its length: the message is never ended
 * with "." (no half message delivered), the transaction fails. */
START_TEST(test_client_idle_close_and_short_file)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    cl = tc_session(&conf, lfd, &sin, &fd, "250 mx.test\r\n");
    tc_tx(&tx, rcpts, 1, "hello\r\n");

    if (_i == 0) {
        tc_send(fd, "421 4.4.2 idle too long\r\n");
        ck_assert_int_eq(tc_wait(fd, "never"), 0);
        ck_assert_int_eq(pst_smtp_client_send(cl, &tx, tc_done, NULL),
                         PST_ERROR);
        ck_assert_int_eq(pst_smtp_client_command(cl, "NOOP", tc_cmd, NULL),
                         PST_ERROR);
    } else {
        tx.length += 100000;
        tc_send_tx(cl, &tx);
        tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
        tc_send(fd, "250 ok\r\n");
        tc_expect(fd, "RCPT TO:<b@y.test>\r\n");
        tc_send(fd, "250 ok\r\n");
        tc_expect(fd, "DATA\r\n");
        tc_send(fd, "354 go\r\n");
        ck_assert_int_eq(tc_wait(fd, "never"), 0);
        ck_assert_ptr_null(memmem(tc_rbuf, tc_rlen, "\r\n.\r\n", 5));
        tc_until(&tc_done_rc);
        ck_assert_int_eq(tc_done_rc, PST_ERROR);
        ck_assert_int_eq(rcpts[0].reply.code, 0);
        ck_assert_ptr_nonnull(strstr((char *) rcpts[0].reply.text.data,
                                     "shorter"));
    }

    pst_smtp_client_abort(cl);
    ck_assert_uint_eq(pst_connections_used(), 0);
    close(fd);
    close(lfd);
}
END_TEST


/* Each wait has its own timeout (RFC 5321 4.5.3.2): the one set short
 * fires, the others are long. */
START_TEST(test_client_timeouts)
{
    static const char       *why[] = { "MAIL reply", "RCPT reply",
                                       "DATA reply", "end of data reply" };
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);
    conf.mail_timeout = _i == 0 ? 200 : 60000;
    conf.rcpt_timeout = _i == 1 ? 200 : 60000;
    conf.data_init_timeout = _i == 2 ? 200 : 60000;
    conf.data_done_timeout = _i == 3 ? 200 : 60000;
    conf.data_block_timeout = 60000;
    cl = tc_session(&conf, lfd, &sin, &fd, "250 mx.test\r\n");
    tc_tx(&tx, rcpts, 1, "hello\r\n");
    tc_send_tx(cl, &tx);

    tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
    if (_i > 0) {
        tc_send(fd, "250 ok\r\n");
        tc_expect(fd, "RCPT TO:<b@y.test>\r\n");
    }
    if (_i > 1) {
        tc_send(fd, "250 ok\r\n");
        tc_expect(fd, "DATA\r\n");
    }
    if (_i > 2) {
        tc_send(fd, "354 go\r\n");
        tc_expect(fd, "hello\r\n.\r\n");
    }

    tc_until(&tc_done_rc);
    ck_assert_int_eq(tc_done_rc, PST_ERROR);
    ck_assert_int_eq(rcpts[0].reply.code, 0);
    ck_assert_msg(strstr((char *) rcpts[0].reply.text.data, why[_i])
                  != NULL, "%s", rcpts[0].reply.text.data);
    ck_assert_int_eq(tc_wait(fd, "never"), 0);
    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


/* Replies must answer commands that were sent: a reply ahead of its
 * command (a server that answers the RCPT it has not seen yet), or one
 * nobody asked for, drops the session instead of being believed. */
START_TEST(test_client_reply_order)
{
    pst_smtp_client_conf_t   conf;
    pst_smtp_client_tx_t     tx;
    pst_smtp_client_rcpt_t   rcpts[1];
    pst_smtp_client_t       *cl;
    struct sockaddr_in       sin;
    int                      lfd, fd;

    tc_init();
    lfd = tc_listen(&sin);
    tc_conf(&conf);

    if (_i == 0) {
        cl = tc_session(&conf, lfd, &sin, &fd, "250 mx.test\r\n");
        tc_tx(&tx, rcpts, 1, "hello\r\n");
        tc_send_tx(cl, &tx);
        tc_expect(fd, "MAIL FROM:<a@x.test>\r\n");
        tc_send(fd, "250 ok\r\n250 ok\r\n");
        tc_until(&tc_done_rc);
        ck_assert_int_eq(tc_done_rc, PST_ERROR);
        ck_assert_int_eq(rcpts[0].reply.code, 0);
        ck_assert(!rcpts[0].accepted);
        ck_assert_ptr_nonnull(strstr((char *) rcpts[0].reply.text.data,
                                     "before the command"));
    } else {
        /* a second reply to EHLO */
        cl = tc_open(&conf, &sin);
        fd = tc_accept(lfd);
        tc_send(fd, "220 mx.test\r\n");
        tc_expect(fd, "EHLO client.test\r\n");
        tc_send(fd, "250 mx.test\r\n250 again\r\n");
        tc_until(&tc_ready_rc);
        /* the ready callback was posted before the extra reply came:
         * the session is gone all the same */
        tc_turn();
        ck_assert_int_eq(pst_smtp_client_command(cl, "NOOP", tc_cmd, NULL),
                         PST_ERROR);
    }

    pst_smtp_client_abort(cl);
    close(fd);
    close(lfd);
}
END_TEST


Suite *
suite_smtp_client(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("smtp_client");

    tc = tcase_create("client");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_client_pipelined);
    tcase_add_test(tc, test_client_helo_lockstep);
    tcase_add_test(tc, test_client_refused);
    tcase_add_test(tc, test_client_connect_refused);
    tcase_add_loop_test(tc, test_client_bad_server, 0, 3);
    tcase_add_test(tc, test_client_size);
    tcase_add_loop_test(tc, test_client_big_message, 0, 2);
    tcase_add_test(tc, test_client_prepend_below_trace);
    tcase_add_test(tc, test_client_lmtp);
    tcase_add_test(tc, test_client_broken);
    tcase_add_loop_test(tc, test_client_auth, 0, 3);
    tcase_add_loop_test(tc, test_client_starttls_policy, 0, 2);
    tcase_add_loop_test(tc, test_client_scram_mutual, 0, 2);
    tcase_add_loop_test(tc, test_client_timeouts, 0, 4);
    tcase_add_loop_test(tc, test_client_reply_order, 0, 2);
    tcase_add_loop_test(tc, test_client_idle_close_and_short_file, 0, 2);
    suite_add_tcase(s, tc);

    return s;
}
