/*
 * check_session.c -- the SMTP session state machine (pst_smtp_session.c,
 * pst_smtp_data.c) driven in-process: a configuration is loaded, the
 * worker's event loop is initialised, and a session runs on one end of
 * a socketpair while the test plays the client on the other end,
 * turning the event loop until each reply is complete.  The test module
 * test_mem accepts recipients in example.test and stores messages in
 * memory, completing each commit from a timer.
 *
 * Every test is a fork of its own (CK_FORK), so the process-wide event
 * loop and connection table start fresh each time.
 */

#include "check_util.h"
#include "check_suites.h"

#include <dlfcn.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>


#define TS_SMTP                                                             \
    "smtp {\n"                                                              \
    "    hostname mx.example.test;\n"                                       \
    "    %s\n"                                                              \
    "    server { listen 127.0.0.1:2525; }\n"                               \
    "}\n"

static pst_cycle_t  *ts_cycle;
static char         *ts_dir;
static void         *ts_mod;


/*
 * Load "load_module test_mem" (and more load lines) plus the smtp block
 * with extra directives and initialise what a worker initialises before
 * its first accept.
 */
static void
ts_init_with(const char *load, const char *extra)
{
    char  *conf, *out, *path;

    ts_dir = tu_tmpdir();
    ck_assert(asprintf(&conf, "load_module @MOD@/test_mem.so;\n%s" TS_SMTP,
                       load, extra) > 0);
    out = tu_load_conf(ts_dir, conf, NULL, &ts_cycle);
    ck_assert_msg(ts_cycle != NULL, "configuration refused: %s", out);
    free(out);
    free(conf);

    pst_cycle = ts_cycle;
    pst_time_update();

    ck_assert(asprintf(&path, "%s/error.log", ts_dir) > 0);
    ck_assert_int_eq(pst_log_open(&pst_log_main, path, PST_LOG_DEBUG),
                     PST_OK);

    ck_assert_int_eq(pst_event_init(64), PST_OK);
    ck_assert_int_eq(pst_connections_init(128), PST_OK);
    ck_assert_int_eq(pst_smtp_sessions_init(), PST_OK);

    free(path);
    ck_assert(asprintf(&path, "%s/test_mem.so", ts_dir) > 0);
    ts_mod = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    ck_assert_msg(ts_mod != NULL, "test_mem is not loaded: %s", dlerror());
    free(path);
}


static void
ts_init(const char *extra)
{
    ts_init_with("", extra);
}


static int
ts_mem(const char *fn)
{
    int  (*f)(void);

    *(void **) &f = dlsym(ts_mod, fn);
    ck_assert_msg(f != NULL, "%s: %s", fn, dlerror());
    return f();
}


static const char *
ts_stored(size_t *len)
{
    const u_char  *(*f)(size_t *);

    *(void **) &f = dlsym(ts_mod, "test_mem_last");
    ck_assert(f != NULL);
    return (const char *) f(len);
}


/* A client connects from 127.0.0.1: returns our end of the pair. */
static int
ts_connect(void)
{
    pst_listening_t   *ls;
    pst_connection_t  *c;
    int                sv[2];

    ck_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0, sv) == 0);

    c = pst_get_connection(sv[0]);
    ck_assert_ptr_nonnull(c);

    c->sockaddr.sin.sin_family = AF_INET;
    c->sockaddr.sin.sin_port = htons(40000);
    c->sockaddr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->socklen = sizeof(struct sockaddr_in);
    c->local_sockaddr = c->sockaddr;
    c->local_sockaddr.sin.sin_port = htons(2525);

    ls = ts_cycle->listening.elts;
    c->listening = &ls[0];

    ck_assert_int_eq(pst_event_add_conn(c), PST_OK);
    ls[0].handler(c);

    return sv[1];
}


static void
ts_guard(pst_event_t *ev)
{
    (void) ev;
}


/* Turn the event loop once; a guard timer keeps it from sleeping long. */
static void
ts_turn(void)
{
    static pst_event_t  guard;

    guard.handler = ts_guard;
    pst_event_add_timer(&guard, 50);
    ck_assert_int_eq(pst_process_events_and_timers(), PST_OK);
    pst_event_del_timer(&guard);
}


/*
 * The next complete reply (all its lines, CRLFs kept) into buf, reading
 * byte by byte so that pipelined replies come one at a time.  Returns
 * the code, 0 at end of file, and fails the test after secs seconds.
 */
static int
ts_reply_within(int fd, char *buf, size_t size, int secs)
{
    size_t      n = 0, line = 0;
    pst_msec_t  deadline;
    ssize_t     r;

    deadline = pst_current_time_msec + (pst_msec_t) secs * 1000;

    for ( ;; ) {
        r = recv(fd, buf + n, 1, MSG_DONTWAIT);

        if (r == 1) {
            n++;
            ck_assert_msg(n < size, "reply too long");
            if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n') {
                ck_assert_msg(n - line >= 6, "short reply line");
                if (buf[line + 3] == ' ') {
                    buf[n] = '\0';
                    return atoi(buf + line);
                }
                ck_assert_msg(buf[line + 3] == '-', "bad reply line");
                line = n;
            }
            continue;
        }

        if (r == 0) {
            ck_assert_msg(n == 0, "end of file inside a reply");
            buf[0] = '\0';
            return 0;
        }

        ck_assert_msg(errno == EAGAIN || errno == ECONNRESET, "recv: %s",
                      strerror(errno));
        if (errno == ECONNRESET) {
            buf[0] = '\0';
            return 0;
        }

        ck_assert_msg(pst_current_time_msec < deadline,
                      "no complete reply after %d s (have \"%.*s\")", secs,
                      (int) n, buf);
        ts_turn();
    }
}


static char  ts_buf[8192];

#define ts_reply(fd)  ts_reply_within(fd, ts_buf, sizeof(ts_buf), 3)


static void
ts_send(int fd, const char *text)
{
    size_t  len = strlen(text);

    ck_assert_int_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t) len);
}


/* Send one command line; expect the code and, if not NULL, the text at
 * the start of the reply's last line after the code. */
static void
ts_cmd(int fd, const char *cmd, int code, const char *text)
{
    char   line[1024];
    char  *last;
    int    got;

    snprintf(line, sizeof(line), "%s\r\n", cmd);
    ts_send(fd, line);
    got = ts_reply(fd);
    ck_assert_msg(got == code, "%s: expected %d, got \"%s\"", cmd, code,
                  ts_buf);
    if (text != NULL) {
        /* the last line is "ddd text\r\n"; find its start */
        last = ts_buf + strlen(ts_buf) - 2;
        while (last > ts_buf && last[-1] != '\n') {
            last--;
        }
        ck_assert_msg(strncmp(last + 4, text, strlen(text)) == 0,
                      "%s: expected \"%d %s...\", got \"%s\"", cmd, code,
                      text, ts_buf);
    }
}


/* Turn the loop until the worker has no session left (or fail). */
static void
ts_wait_no_sessions(void)
{
    pst_msec_t  deadline = pst_current_time_msec + 3000;

    while (pst_smtp_session_count() != 0) {
        ck_assert_msg(pst_current_time_msec < deadline,
                      "%lu session(s) still open",
                      (unsigned long) pst_smtp_session_count());
        ts_turn();
    }
}


static int
ts_session(void)
{
    int  fd = ts_connect();

    ck_assert_int_eq(ts_reply(fd), 220);
    return fd;
}


/* EHLO, MAIL, one accepted RCPT, DATA: the session waits for text. */
static void
ts_to_data(int fd)
{
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ts_cmd(fd, "DATA", 354, NULL);
}


/* ------------------------------------------------------------------ */

START_TEST(test_greeting_and_quit)
{
    int  fd;

    ts_init("");
    fd = ts_connect();
    ck_assert_int_eq(ts_reply(fd), 220);
    ck_assert_str_eq(ts_buf, "220 mx.example.test ESMTP Postern\r\n");
    ck_assert_uint_eq(pst_smtp_session_count(), 1);

    ts_cmd(fd, "QUIT", 221, "2.0.0 ");
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


/* Commands in and out of sequence, one after the other. */
static const struct {
    const char  *cmd;
    int          code;
    const char  *text;
} sequence[] = {
    { "MAIL FROM:<a@client.test>", 503, "5.5.1 Error: send HELO/EHLO" },
    { "RCPT TO:<u@example.test>", 503, "5.5.1 Error: need MAIL" },
    { "DATA", 503, "5.5.1 " },
    { "NOOP", 250, "2.0.0 " },
    { "EHLO client.test", 250, NULL },
    { "RCPT TO:<u@example.test>", 503, "5.5.1 Error: need MAIL" },
    { "DATA", 503, "5.5.1 " },
    { "MAIL FROM:<a@client.test>", 250, "2.1.0 " },
    { "MAIL FROM:<a@client.test>", 503, "5.5.1 Error: nested MAIL" },
    { "DATA", 554, "5.5.1 Error: no valid recipients" },
    { "RCPT TO:<u@elsewhere.test>", 550, "5.7.1 <u@elsewhere.test>: Relay" },
    { "RCPT TO:<u@example.test>", 250, "2.1.5 " },
    { "RSET", 250, "2.0.0 " },
    /* RSET ended the transaction */
    { "RCPT TO:<u@example.test>", 503, "5.5.1 Error: need MAIL" },
    { "MAIL FROM:<>", 250, "2.1.0 " },
    { "RCPT TO:<u@example.test>", 250, "2.1.5 " },
    /* so does a new EHLO (RFC 5321 4.1.4) */
    { "EHLO again.test", 250, NULL },
    { "RCPT TO:<u@example.test>", 503, "5.5.1 Error: need MAIL" },
    { "MAIL FROM:<a@client.test>", 250, "2.1.0 " },
    /* commands allowed at any time leave the transaction alone */
    { "NOOP", 250, "2.0.0 " },
    { "VRFY u", 252, "2.5.2 " },
    { "HELP", 214, "2.0.0 " },
    { "EXPN list", 502, "5.5.1 " },
    { "XYZZY", 500, "5.5.2 Error: command not recognized" },
    { "RCPT TO:<u@example.test>", 250, "2.1.5 " },
    { "RCPT TO:<u@example.test> FOO=BAR", 555, "5.5.4 " },
    { "RCPT TO:u@example.test", 501, "5.1.3 " },
    { "QUIT", 221, "2.0.0 " },
};


START_TEST(test_command_sequence)
{
    size_t  i;
    int     fd;

    ts_init("max_errors 100;");
    fd = ts_session();

    for (i = 0; i < sizeof(sequence) / sizeof(sequence[0]); i++) {
        ts_cmd(fd, sequence[i].cmd, sequence[i].code, sequence[i].text);
    }

    ck_assert_int_eq(ts_reply(fd), 0);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


START_TEST(test_ehlo_and_helo)
{
    int  fd;

    ts_init("");
    fd = ts_session();

    ts_cmd(fd, "EHLO", 501, "5.5.4 ");
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ck_assert_msg(strncmp(ts_buf, "250-mx.example.test", 19) == 0, "%s",
                  ts_buf);
    ck_assert_ptr_nonnull(strstr(ts_buf, "\r\n250-PIPELINING\r\n"));
    ck_assert_ptr_nonnull(strstr(ts_buf, "\r\n250-8BITMIME\r\n"));
    ck_assert_ptr_nonnull(strstr(ts_buf, "\r\n250-CHUNKING\r\n"));
    ck_assert_ptr_nonnull(strstr(ts_buf, "ENHANCEDSTATUSCODES\r\n"));
    /* no TLS configured: no STARTTLS, and no AUTH in the clear */
    ck_assert_ptr_null(strstr(ts_buf, "STARTTLS"));
    ck_assert_ptr_null(strstr(ts_buf, "AUTH"));

    /* HELO: plain SMTP, so ESMTP parameters are refused */
    ts_cmd(fd, "HELO client.test", 250, "mx.example.test");
    ts_cmd(fd, "MAIL FROM:<a@client.test> SIZE=10", 555,
           "5.5.4 Error: parameters need EHLO");
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, "2.1.0 ");
    ts_cmd(fd, "STARTTLS", 502, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_message_stored)
{
    const char  *body = "Subject: t\r\n\r\n.leading dot\r\nbody\r\n";
    const char  *msg;
    size_t       len;
    int          fd;

    ts_init("");
    fd = ts_session();

    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\n..leading dot\r\nbody\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_msg(strncmp(ts_buf, "250 2.0.0 Ok: queued as ", 24) == 0,
                  "%s", ts_buf);

    ck_assert_int_eq(ts_mem("test_mem_stored"), 1);
    msg = ts_stored(&len);
    /* our Received: first, then the message with the dot unstuffed */
    ck_assert_msg(len > 9 && memcmp(msg, "Received:", 9) == 0, "%.*s",
                  (int) len, msg);
    ck_assert_ptr_nonnull(memmem(msg, len, "for <u@example.test>", 20));
    ck_assert_msg(len > strlen(body)
                  && memcmp(msg + len - strlen(body), body, strlen(body)) == 0,
                  "%.*s", (int) len, msg);

    /* the transaction is over: a new one needs MAIL again */
    ts_cmd(fd, "RCPT TO:<u@example.test>", 503, "5.5.1 ");
    ts_cmd(fd, "MAIL FROM:<b@client.test>", 250, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_commit_failure_keeps_session)
{
    int  fd;

    ts_init("test_mem_fail on;");
    fd = ts_session();

    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 451);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);

    /* a temporary failure ends the transaction, not the session */
    ts_cmd(fd, "RCPT TO:<u@example.test>", 503, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_pipelined_replies_in_order)
{
    static const int  codes[] = { 250, 250, 550, 250, 354 };
    size_t            i;
    int               fd;

    ts_init("");
    fd = ts_session();

    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_send(fd, "MAIL FROM:<a@client.test>\r\n"
                "RCPT TO:<u1@example.test>\r\n"
                "RCPT TO:<u@elsewhere.test>\r\n"
                "RCPT TO:<u2@example.test>\r\n"
                "DATA\r\n");
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        ck_assert_int_eq(ts_reply(fd), codes[i]);
    }
    ts_send(fd, "Subject: p\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 221);
    ck_assert_int_eq(ts_reply(fd), 0);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 1);
    close(fd);
}
END_TEST


/* RFC 2920 3.1: the text after the 354, never with DATA (issue #17) */
START_TEST(test_text_before_354)
{
    static const char  group[] = "MAIL FROM:<a@client.test>\r\n"
                                 "RCPT TO:<u@example.test>\r\n"
                                 "DATA\r\n"
                                 "Subject: early\r\n\r\nx\r\n.\r\n";
    int                fd;

    ts_init("");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_send(fd, group);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 554);
    ck_assert_msg(strstr(ts_buf, "554 5.5.0 Error: SMTP protocol"
                         " synchronization\r\n") == ts_buf, "%s", ts_buf);
    ck_assert_int_eq(ts_reply(fd), 0);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    close(fd);
}
END_TEST


/* smtp_forbid_unauth_pipelining off: the old, lenient behaviour */
START_TEST(test_text_before_354_allowed)
{
    static const char  group[] = "MAIL FROM:<a@client.test>\r\n"
                                 "RCPT TO:<u@example.test>\r\n"
                                 "DATA\r\n"
                                 "Subject: early\r\n\r\nx\r\n.\r\n";
    int                fd;

    ts_init("smtp_forbid_unauth_pipelining off;");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_send(fd, group);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_reply(fd), 354);
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 1);
    close(fd);
}
END_TEST


START_TEST(test_too_many_errors)
{
    int  fd;

    ts_init("max_errors 3;");
    fd = ts_session();

    ts_cmd(fd, "XYZZY", 500, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 503, NULL);
    ts_cmd(fd, "PLUGH", 500, NULL);
    /* the third error is the last: 421 follows at once (as Postfix's
     * smtpd_hard_error_limit), without waiting for another command */
    ck_assert_int_eq(ts_reply(fd), 421);
    ck_assert_str_eq(ts_buf,
                     "421 4.7.0 mx.example.test Error: too many errors\r\n");
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


START_TEST(test_command_timeout)
{
    int  fd;

    ts_init("smtp_command_timeout 1s;");
    fd = ts_session();

    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ck_assert_int_eq(ts_reply_within(fd, ts_buf, sizeof(ts_buf), 5), 421);
    ck_assert_msg(strstr(ts_buf, "4.4.2") != NULL, "%s", ts_buf);
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


START_TEST(test_line_too_long)
{
    char  line[2100];
    int   fd;

    ts_init("smtp_command_line_limit 1024;");
    fd = ts_session();

    /* 1024 with CRLF is allowed, 1025 is not */
    memset(line, 'x', sizeof(line));
    memcpy(line, "NOOP ", 5);
    memcpy(line + 1022, "\r\n", 3);
    ts_send(fd, line);
    ck_assert_int_eq(ts_reply(fd), 250);
    memcpy(line + 1022, "x\r\n", 4);
    ts_send(fd, line);
    ck_assert_int_eq(ts_reply(fd), 500);
    ck_assert_str_eq(ts_buf, "500 5.5.2 Error: line too long\r\n");

    /* twice the buffer, without a line end for a while: one reply */
    memset(line + 5, 'x', sizeof(line) - 5);
    memcpy(line + sizeof(line) - 3, "\r\n", 3);
    ck_assert_uint_eq(strlen(line), sizeof(line) - 1);
    ts_send(fd, line);
    ck_assert_int_eq(ts_reply(fd), 500);
    /* the rest of the long line was skipped, not taken as a command */
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_disconnect_mid_data)
{
    int  fd;

    ts_init("");
    fd = ts_session();

    ts_to_data(fd);
    ts_send(fd, "Subject: half\r\n\r\nand then the client is gone\r\n");
    close(fd);

    ts_wait_no_sessions();
    ck_assert_int_eq(ts_mem("test_mem_aborted"), 1);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
}
END_TEST


START_TEST(test_disconnect_during_commit)
{
    pst_msec_t  deadline;
    int         fd;

    ts_init("");
    fd = ts_session();

    ts_to_data(fd);
    /* the end of data and the close arrive together: the session is
     * gone before the store completes, and the late completion must be
     * ignored, not touch freed memory */
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    close(fd);

    ts_wait_no_sessions();
    deadline = pst_current_time_msec + 3000;
    while (ts_mem("test_mem_stored") == 0) {
        ck_assert(pst_current_time_msec < deadline);
        ts_turn();
    }
    ck_assert_int_eq(ts_mem("test_mem_aborted"), 0);
}
END_TEST


START_TEST(test_bdat_states)
{
    size_t       len;
    const char  *msg;
    int          fd;

    ts_init("");
    fd = ts_session();

    ts_cmd(fd, "EHLO client.test", 250, NULL);
    /* without MAIL the chunk is refused and its bytes skipped */
    ts_send(fd, "BDAT 9\r\nNOOP\r\nxyz");
    ck_assert_int_eq(ts_reply(fd), 503);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ts_send(fd, "BDAT 14\r\nSubject: b\r\n\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ts_cmd(fd, "DATA", 503, "5.5.1 Error: DATA after BDAT");
    ts_cmd(fd, "RCPT TO:<v@example.test>", 503, "5.5.1 Error: RCPT after");
    ts_send(fd, "BDAT 6 LAST\r\nbody\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_msg(strncmp(ts_buf, "250 2.0.0 Ok: queued as ", 24) == 0,
                  "%s", ts_buf);

    msg = ts_stored(&len);
    ck_assert_msg(len > 20 && memcmp(msg + len - 20,
                  "Subject: b\r\n\r\nbody\r\n", 20) == 0, "%.*s", (int) len,
                  msg);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_sessions_come_and_go)
{
    int  fds[20];
    int  i;

    ts_init("");

    for (i = 0; i < 20; i++) {
        fds[i] = ts_session();
    }
    ck_assert_uint_eq(pst_smtp_session_count(), 20);

    for (i = 0; i < 20; i++) {
        if (i % 2) {
            ts_cmd(fds[i], "QUIT", 221, NULL);
        }
        close(fds[i]);
    }
    ts_wait_no_sessions();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Verdicts and their replies (test_verdict answers as told)           */

static void  *tv_mod;


static void
tv_init_with(const char *load, const char *extra)
{
    char  *all, *path;

    ck_assert(asprintf(&all, "load_module @MOD@/test_verdict.so;\n%s",
                       load) > 0);
    ts_init_with(all, extra);
    free(all);

    ck_assert(asprintf(&path, "%s/test_verdict.so", ts_dir) > 0);
    tv_mod = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    ck_assert_msg(tv_mod != NULL, "test_verdict is not loaded: %s",
                  dlerror());
    free(path);
}


static void
tv_init(const char *extra)
{
    tv_init_with("", extra);
}


static void *
tv_sym(const char *name)
{
    void  *f = dlsym(tv_mod, name);

    ck_assert_msg(f != NULL, "%s: %s", name, dlerror());
    return f;
}


/* The hook of this phase answers v with (code, ecode, text): at once
 * (pending 0), from a timer (1), or never (2). */
static void
tv_set(pst_phase_e phase, int v, int code, const char *ecode,
    const char *text, int pending)
{
    void  (*f)(int, int, int, const char *, const char *, int);

    *(void **) &f = tv_sym("test_verdict_set");
    f((int) phase, v, code, ecode, text, pending);
}


static int
tv_calls(pst_phase_e phase)
{
    int  (*f)(int);

    *(void **) &f = tv_sym("test_verdict_calls");
    return f((int) phase);
}


static int
tv_cancelled(void)
{
    int  (*f)(void);

    *(void **) &f = tv_sym("test_verdict_cancelled");
    return f();
}


static uint64_t
tv_token(pst_phase_e phase)
{
    uint64_t  (*f)(int);

    *(void **) &f = tv_sym("test_verdict_token");
    return f((int) phase);
}


/* How many lines of the worker's log (ts_init_with) hold text. */
static int
ts_logged(const char *text)
{
    char    line[2048], *path;
    FILE   *f;
    int     n = 0;

    ck_assert(asprintf(&path, "%s/error.log", ts_dir) > 0);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, text) != NULL;
    }
    fclose(f);
    free(path);
    return n;
}


static const char *
tv_committed(int *hold)
{
    const char  *(*f)(int *);

    *(void **) &f = tv_sym("test_verdict_committed");
    return f(hold);
}


static const char *
tv_envelope(void)
{
    const char  *(*f)(void);

    *(void **) &f = tv_sym("test_verdict_envelope");
    return f();
}


/* The case: a REJECT with a 2xx code, an enhanced code that
 * carries a line end and a text with one.  One 554 line, and the
 * greeting is not counted as the client's error. */
START_TEST(test_verdict_connect_reject)
{
    int  fd;

    tv_init("max_errors 3;");
    tv_set(PST_PHASE_CONNECT, PST_HOOK_REJECT, 250, "5.7.1\r\n250",
           "go\r\naway", 0);
    fd = ts_connect();
    ck_assert_int_eq(ts_reply(fd), 554);
    ck_assert_str_eq(ts_buf, "554 5.7.1 go away\r\n");

    ts_cmd(fd, "MAIL FROM:<a@client.test>", 503, "5.");
    ts_cmd(fd, "EHLO client.test", 503, "5.");
    ts_cmd(fd, "QUIT", 221, NULL);
    ck_assert_int_eq(ts_reply(fd), 0);
    close(fd);
}
END_TEST


START_TEST(test_verdict_connect_tempfail)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_CONNECT, PST_HOOK_TEMPFAIL, 550, "5.7.1", "later", 0);
    fd = ts_connect();
    ck_assert_int_eq(ts_reply(fd), 421);
    ck_assert_str_eq(ts_buf, "421 4.7.0 later\r\n");
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


START_TEST(test_verdict_connect_pending)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_CONNECT, PST_HOOK_REJECT, 451, "4.7.1", "no", 1);
    fd = ts_connect();
    ck_assert_int_eq(ts_reply(fd), 554);
    ck_assert_str_eq(ts_buf, "554 5.7.1 no\r\n");
    ts_cmd(fd, "QUIT", 221, NULL);
    ck_assert_int_eq(tv_cancelled(), 0);
    close(fd);
}
END_TEST


START_TEST(test_verdict_helo)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_HELO, PST_HOOK_REJECT, 250, "4.7.1", "bad\001name", 0);
    fd = ts_session();
    ts_send(fd, "EHLO client.test\r\n");
    ck_assert_int_eq(ts_reply(fd), 550);
    ck_assert_str_eq(ts_buf, "550 5.7.1 bad name\r\n");
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 503, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_verdict_auth)
{
    int  fd;

    tv_init("auth_allow_plaintext on; auth_mechanisms PLAIN;"
            " auth_failure_delay 10ms;");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ck_assert_ptr_nonnull(strstr(ts_buf, "250-AUTH PLAIN\r\n"));

    /* a REJECT's code and text are not for the client (RFC 4954) */
    tv_set(PST_PHASE_AUTH, PST_HOOK_REJECT, 250, "2.7.0", "no such user",
           0);
    ts_cmd(fd, "AUTH PLAIN AHVzZXIAcGFzcw==", 535, NULL);
    ck_assert_str_eq(ts_buf,
                     "535 5.7.8 Error: authentication credentials invalid"
                     "\r\n");

    tv_set(PST_PHASE_AUTH, PST_HOOK_TEMPFAIL, 250, "2.7.0", "db down", 0);
    ts_cmd(fd, "AUTH PLAIN AHVzZXIAcGFzcw==", 454, NULL);
    ck_assert_str_eq(ts_buf, "454 4.7.0 Temporary authentication"
                     " failure\r\n");

    tv_set(PST_PHASE_AUTH, PST_HOOK_DISCONNECT, 250, "5.7.1\r\n",
           "bye\r\n235 2.7.0 ok", 0);
    ts_cmd(fd, "AUTH PLAIN AHVzZXIAcGFzcw==", 421, NULL);
    ck_assert_str_eq(ts_buf, "421 4.7.0 bye 235 2.7.0 ok\r\n");
    ck_assert_int_eq(ts_reply(fd), 0);
    close(fd);
}
END_TEST


START_TEST(test_verdict_mail)
{
    int  fd;

    tv_init("");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);

    tv_set(PST_PHASE_MAIL, PST_HOOK_TEMPFAIL, 550, "5.1.1", "busy", 0);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 451, NULL);
    ck_assert_str_eq(ts_buf, "451 4.7.1 busy\r\n");

    /* an ACCEPT's own 2xx text, cleaned; its enhanced code if valid */
    tv_set(PST_PHASE_MAIL, PST_HOOK_ACCEPT, 250, "2.1.0", "Sender\r\nok",
           0);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ck_assert_str_eq(ts_buf, "250 2.1.0 Sender ok\r\n");
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_verdict_rcpt)
{
    int  fd;

    tv_init("");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);

    tv_set(PST_PHASE_RCPT, PST_HOOK_REJECT, 553, "5.1.1x", "who?", 0);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 553, NULL);
    ck_assert_str_eq(ts_buf, "553 5.1.1 who?\r\n");

    /* three digits are well formed (RFC 3463), four are not */
    tv_set(PST_PHASE_RCPT, PST_HOOK_REJECT, 550, "5.1.10", "moved", 0);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 550, NULL);
    ck_assert_str_eq(ts_buf, "550 5.1.10 moved\r\n");
    tv_set(PST_PHASE_RCPT, PST_HOOK_TEMPFAIL, 0, "4.2.1000", "full", 0);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 450, NULL);
    ck_assert_str_eq(ts_buf, "450 4.7.1 full\r\n");
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_verdict_rcpt_pending)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_RCPT, PST_HOOK_REJECT, 250, "2.1.5", "a\r\nb", 1);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 550, NULL);
    ck_assert_str_eq(ts_buf, "550 5.1.1 a b\r\n");
    ts_cmd(fd, "QUIT", 221, NULL);
    ts_wait_no_sessions();
    /* resumed: the cancel callback is not for this call */
    ck_assert_int_eq(tv_cancelled(), 0);
    close(fd);
}
END_TEST


/* The per-transaction slot and the notes (test_notes.so): a
 * transaction's are gone after RSET, the session's stay; a transaction
 * note hides the session's of the same key; a bad key is refused. */
START_TEST(test_notes_and_tx_ctx)
{
    int  fd;

    ts_init_with("load_module @MOD@/test_notes.so;\n", "");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<set@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<show@example.test>", 550, NULL);
    ck_assert_str_eq(ts_buf, "550 5.7.1 ctx=ctx-value mail=set@client.test"
                             " helo=tx bad=-1\r\n");
    ts_cmd(fd, "RSET", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<other@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<show@example.test>", 550, NULL);
    ck_assert_str_eq(ts_buf, "550 5.7.1 ctx=- mail=- helo=seen bad=-1\r\n");
    ts_cmd(fd, "QUIT", 221, NULL);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


/* The regex and domain-list setters, through a module's directives:
 * caseless by "(?i)", a parent entry covers subdomains only, the case
 * of a domain does not count. */
START_TEST(test_regex_and_domain_slots)
{
    int  fd, i;
    static const char  *cases[][2] = {
        { "MAIL FROM:<Bob@Sub.Example.ORG>", "re=1 dom=1" },
        { "MAIL FROM:<alice@example.org>", "re=0 dom=0" },
        { "MAIL FROM:<bob@exact.test>", "re=1 dom=1" },
        { "MAIL FROM:<bob@other.exact.test>", "re=1 dom=0" },
    };

    ts_init_with("load_module @MOD@/test_notes.so;\n"
                 "test_notes_regex \"(?i)^bob@\";\n"
                 "test_notes_domains .example.org exact.test;\n", "");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    for (i = 0; i < 4; i++) {
        ts_cmd(fd, cases[i][0], 250, NULL);
        ts_cmd(fd, "RCPT TO:<show@example.test>", 550, NULL);
        ck_assert_msg(strstr(ts_buf, cases[i][1]) != NULL, "%s: %s",
                      cases[i][0], ts_buf);
        ts_cmd(fd, "RSET", 250, NULL);
    }
    ts_cmd(fd, "QUIT", 221, NULL);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


/* A TEMPFAIL with 421 closes, as 421 says. */
START_TEST(test_verdict_tempfail_421)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_RCPT, PST_HOOK_TEMPFAIL, 421, "4.7.0", "enough", 0);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 421, NULL);
    ck_assert_str_eq(ts_buf, "421 4.7.0 enough\r\n");
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    close(fd);
}
END_TEST


/* DISCONNECT before a BDAT chunk: 421 and the end, not the chunk. */
START_TEST(test_verdict_data)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_DATA, PST_HOOK_DISCONNECT, 550, "5.7.1", "closing", 0);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ts_send(fd, "BDAT 5 LAST\r\nabcde");
    ck_assert_int_eq(ts_reply(fd), 421);
    ck_assert_str_eq(ts_buf, "421 4.7.0 closing\r\n");
    ck_assert_int_eq(ts_reply(fd), 0);
    ts_wait_no_sessions();
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    close(fd);
}
END_TEST


START_TEST(test_verdict_message)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_MESSAGE, PST_HOOK_REJECT, 450, "4.7.1", "spam", 0);
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 554);
    ck_assert_str_eq(ts_buf, "554 5.7.1 spam\r\n");
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_QUEUE), 0);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_verdict_queue)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_QUEUE, PST_HOOK_TEMPFAIL, 250, "2.0.0", "later", 0);
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 451);
    ck_assert_str_eq(ts_buf, "451 4.7.1 later\r\n");
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 0);
    /* the transaction is over, the session is not */
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


/* ------------------------------------------------------------------ */
/* ABI 1.2: DISCARD, HOLD, COMMITTED, call data and cancel, fd watches */

/* DISCARD at RCPT accepts even a recipient nobody else would, and the
 * message is answered as queued but never stored. */
START_TEST(test_verdict_discard_rcpt)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_RCPT, PST_HOOK_DISCARD, 0, NULL, NULL, 0);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@elsewhere.test>", 250, "2.1.5 Ok");
    ts_cmd(fd, "DATA", 354, NULL);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_msg(strncmp(ts_buf, "250 2.0.0 Ok: queued as ", 24) == 0,
                  "%s", ts_buf);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    ck_assert_int_eq(ts_mem("test_mem_aborted"), 1);
    ck_assert_int_eq(tv_calls(PST_PHASE_MESSAGE), 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 0);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


/* DISCARD at MESSAGE (the QUEUE hooks do not run) or, resumed, at
 * QUEUE: answered as queued, never stored. */
static void
tv_discard_at(pst_phase_e phase, int pending)
{
    int  fd;

    tv_init("");
    tv_set(phase, PST_HOOK_DISCARD, 0, NULL, NULL, pending);
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_msg(strncmp(ts_buf, "250 2.0.0 Ok: queued as ", 24) == 0,
                  "%s", ts_buf);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 0);
    ck_assert_int_eq(ts_mem("test_mem_aborted"), 1);
    ck_assert_int_eq(tv_calls(PST_PHASE_QUEUE),
                     phase == PST_PHASE_QUEUE ? 1 : 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 0);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}


START_TEST(test_verdict_discard_message)
{
    tv_discard_at(PST_PHASE_MESSAGE, 0);
}
END_TEST


START_TEST(test_verdict_discard_queue)
{
    tv_discard_at(PST_PHASE_QUEUE, 1);
}
END_TEST


/* HOLD at MESSAGE: the chain goes on, the message is stored with the
 * mark, and COMMITTED sees its queue ID (its own REJECT is ignored). */
START_TEST(test_verdict_hold_committed)
{
    const char  *id, *env;
    int          fd, hold;

    tv_init("");
    tv_set(PST_PHASE_MESSAGE, PST_HOOK_HOLD, 0, NULL, NULL, 0);
    tv_set(PST_PHASE_COMMITTED, PST_HOOK_REJECT, 550, "5.7.1", "late", 0);
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_msg(strncmp(ts_buf, "250 2.0.0 Ok: queued as ", 24) == 0,
                  "%s", ts_buf);
    ck_assert_int_eq(ts_mem("test_mem_stored"), 1);
    ck_assert_int_eq(tv_calls(PST_PHASE_QUEUE), 1);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 1);

    id = tv_committed(&hold);
    ck_assert_int_eq(hold, 1);
    ck_assert_msg(strlen(id) > 0 && strncmp(ts_buf + 24, id, strlen(id)) == 0
                  && strcmp(ts_buf + 24 + strlen(id), "\r\n") == 0,
                  "committed \"%s\", reply %s", id, ts_buf);
    env = tv_envelope();
    ck_assert_msg(strstr(env, "\nhold 1\n") != NULL, "%s", env);

    /* the next transaction starts without the mark */
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ts_cmd(fd, "DATA", 354, NULL);
    ts_send(fd, "Subject: t\r\n\r\ny\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    tv_set(PST_PHASE_MESSAGE, PST_HOOK_CONTINUE, 0, NULL, NULL, 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 2);
    (void) tv_committed(&hold);
    ck_assert_int_eq(hold, 1);      /* MESSAGE still answers HOLD */
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


START_TEST(test_verdict_committed_not_on_failure)
{
    int  fd;

    tv_init("test_mem_fail on;");
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: t\r\n\r\nx\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 451);
    ck_assert_int_eq(tv_calls(PST_PHASE_COMMITTED), 0);
    ck_assert_int_eq(tv_calls(PST_PHASE_QUEUE), 1);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


/* ABI 1.2 message edits from a MESSAGE hook: the envelope and the
 * stored message (here test_mem's, a store without files) show them. */
START_TEST(test_message_edits)
{
    static const char  tail[] = "\r\nSubject: changed\r\nTo: u@example"
                                ".test\r\nX-Last: a\r\n\tb\r\n\r\n"
                                "new body\r\n";
    const char  *env, *msg;
    size_t       len;
    int          fd;
    void        (*on)(int);
    int         (*results)(void);

    tv_init("");
    *(void **) &on = tv_sym("test_verdict_edit");
    *(void **) &results = tv_sym("test_verdict_edit_results");
    on(1);
    fd = ts_session();
    ts_to_data(fd);
    ts_send(fd, "Subject: old\r\nX-Drop: 1\r\nTo: u@example.test"
            "\r\n\r\nold body\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
    ck_assert_int_eq(results(), 0xfff);

    env = tv_envelope();
    ck_assert_msg(strstr(env, "\nsender new@client.test\n") != NULL, "%s",
                  env);
    ck_assert_msg(strstr(env, "\nrcpt x@example.test notify=1") != NULL,
                  "%s", env);
    ck_assert_msg(strstr(env, "u@example.test") == NULL, "%s", env);

    msg = ts_stored(&len);
    ck_assert_msg(len > 20 && strncmp(msg, "X-First: top\r\nReceived: ", 24)
                  == 0, "%.*s", (int) len, msg);
    ck_assert_msg(len > sizeof(tail)
                  && memcmp(msg + len - (sizeof(tail) - 1), tail,
                            sizeof(tail) - 1) == 0
                  && memmem(msg, len, "X-Drop", 6) == NULL,
                  "%.*s", (int) len, msg);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


/* HOLD and DISCARD outside a transaction are ignored. */
START_TEST(test_verdict_hold_outside_tx)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_CONNECT, PST_HOOK_DISCARD, 0, NULL, NULL, 0);
    tv_set(PST_PHASE_HELO, PST_HOOK_HOLD, 0, NULL, NULL, 0);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);
}
END_TEST


/* A call that is never resumed: its cancel callback runs once when the
 * session ends, and once when the module's timeout gives it up. */
START_TEST(test_verdict_cancel_on_close)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_RCPT, PST_HOOK_ACCEPT, 0, NULL, NULL, 2);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_send(fd, "RCPT TO:<u@example.test>\r\n");
    ts_turn();
    ts_turn();
    ck_assert_int_eq(tv_calls(PST_PHASE_RCPT), 1);
    ck_assert_int_eq(tv_cancelled(), 0);
    close(fd);
    ts_wait_no_sessions();
    ck_assert_int_eq(tv_cancelled(), 1);
}
END_TEST


START_TEST(test_verdict_cancel_on_timeout)
{
    int  fd;

    tv_init_with("module_timeout test_verdict 100ms;\n", "");
    tv_set(PST_PHASE_RCPT, PST_HOOK_ACCEPT, 0, NULL, NULL, 2);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 451, "4.4.3 ");
    ck_assert_int_eq(tv_cancelled(), 1);
    ts_cmd(fd, "QUIT", 221, NULL);
    ts_wait_no_sessions();
    ck_assert_int_eq(tv_cancelled(), 1);
    close(fd);
}
END_TEST


/* Completions the core ignores are logged by why: a second one of a
 * call warns (a module bug); one after the client hung up is ordinary,
 * a debug line (issue #11: a hang-up looked like a plugin bug). */
START_TEST(test_verdict_stale_completions)
{
    int  fd;

    tv_init("");
    tv_set(PST_PHASE_RCPT, PST_HOOK_ACCEPT, 0, NULL, NULL, 1);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ck_assert_int_eq(pst_hook_resume(tv_token(PST_PHASE_RCPT),
                                     PST_HOOK_REJECT, 0, NULL, NULL),
                     PST_DECLINED);
    ck_assert_int_eq(ts_logged("warn: stale or repeated hook completion"),
                     1);

    tv_set(PST_PHASE_RCPT, PST_HOOK_ACCEPT, 0, NULL, NULL, 2);
    ts_send(fd, "RCPT TO:<v@example.test>\r\n");
    ts_turn();
    ts_turn();
    ck_assert_int_eq(tv_calls(PST_PHASE_RCPT), 2);
    close(fd);
    ts_wait_no_sessions();
    ck_assert_int_eq(pst_hook_resume(tv_token(PST_PHASE_RCPT),
                                     PST_HOOK_ACCEPT, 0, NULL, NULL),
                     PST_DECLINED);
    ck_assert_int_eq(ts_logged("debug: hook completion after session"), 1);

    /* a module that resumes from its cancel callback, while the session
     * is being torn down: the same */
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_cmd(fd, "MAIL FROM:<a@client.test>", 250, NULL);
    tv_set(PST_PHASE_RCPT, PST_HOOK_ACCEPT, 0, NULL, NULL, 3);
    ts_send(fd, "RCPT TO:<w@example.test>\r\n");
    ts_turn();
    ts_turn();
    close(fd);
    ts_wait_no_sessions();
    ck_assert_int_eq(tv_cancelled(), 3);
    ck_assert_int_eq(ts_logged("debug: hook completion after session"), 2);
    ck_assert_int_eq(ts_logged("stale or repeated"), 1);
}
END_TEST


static unsigned  tv_fd_events;
static int       tv_fd_calls;


static void
tv_fd_handler(int fd, unsigned events, void *data)
{
    (void) fd;
    ck_assert_ptr_eq(data, &tv_fd_calls);
    tv_fd_events |= events;
    tv_fd_calls++;
}


/* Turn the loop once; what did the watch see? */
static unsigned
tv_fd_turn(void)
{
    tv_fd_events = 0;
    tv_fd_calls = 0;
    ts_turn();
    return tv_fd_events;
}


START_TEST(test_fd_watch_write)
{
    char  buf[65536];
    int   sv[2];

    ts_init("");
    ck_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);

    ck_assert_int_eq(pst_fd_watch_events(sv[0], 0, tv_fd_handler,
                                         &tv_fd_calls), PST_ERROR);
    ck_assert_int_eq(pst_fd_watch_events(sv[0], PST_FD_WRITE, tv_fd_handler,
                                         &tv_fd_calls), PST_OK);
    ck_assert_uint_eq(tv_fd_turn(), PST_FD_WRITE);
    /* level triggered: again, as long as it is writable */
    ck_assert_uint_eq(tv_fd_turn(), PST_FD_WRITE);

    /* only reading now: nothing until the peer writes */
    ck_assert_int_eq(pst_fd_watch_events(sv[0], PST_FD_READ, tv_fd_handler,
                                         &tv_fd_calls), PST_OK);
    ck_assert_uint_eq(tv_fd_turn(), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_uint_eq(tv_fd_turn(), PST_FD_READ);
    ck_assert_int_eq(read(sv[0], buf, 1), 1);

    /* full: no write readiness until the peer drains it */
    while (write(sv[0], buf, sizeof(buf)) > 0) {
        /* void */
    }
    ck_assert_int_eq(pst_fd_watch_events(sv[0], PST_FD_READ | PST_FD_WRITE,
                                         tv_fd_handler, &tv_fd_calls),
                     PST_OK);
    ck_assert_uint_eq(tv_fd_turn(), 0);
    while (read(sv[1], buf, sizeof(buf)) > 0) {
        /* void */
    }
    ck_assert_uint_eq(tv_fd_turn(), PST_FD_WRITE);

    ck_assert_int_eq(pst_fd_unwatch(sv[0]), PST_OK);
    ck_assert_uint_eq(tv_fd_turn(), 0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST


/* One message through an open session: DATA, the text, the 250. */
static void
ts_message(int fd, const char *mail)
{
    ts_cmd(fd, mail, 250, NULL);
    ts_cmd(fd, "RCPT TO:<u@example.test>", 250, NULL);
    ts_cmd(fd, "DATA", 354, NULL);
    ts_send(fd, "Subject: n\r\n\r\nbody\r\n.\r\n");
    ck_assert_int_eq(ts_reply(fd), 250);
}


/*
 * node_name: our Received: names the node in a comment, every log line
 * starts with it (pst_log_set_node(), as the master sets it), and a
 * node transfer's XP-NODE is logged and answered with this node's name.
 */
START_TEST(test_node_name_trace)
{
    static const char  want[] = "\r\n\tby mx.example.test (Postern node"
                                " mx-a) with ESMTP id ";
    pst_str_t           node = { 4, (u_char *) "mx-a" };
    const char         *msg;
    size_t              len;
    int                 fd;

    ts_init_with("node_name mx-a;\n", "node_trusted 127.0.0.0/8;");
    pst_log_set_node(&node);
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);

    ts_message(fd, "MAIL FROM:<a@client.test>");
    ck_assert_msg(strstr(ts_buf, " on node ") == NULL, "%s", ts_buf);
    msg = ts_stored(&len);
    ck_assert_msg(memmem(msg, len, want, sizeof(want) - 1) != NULL,
                  "%.*s", (int) len, msg);

    /* from another node: its name in the log, ours in the 250 */
    ts_message(fd, "MAIL FROM:<a@client.test> XP-ARRIVAL=1795382512.000001"
               " XP-NODE=mx-b");
    ck_assert_msg(strstr(ts_buf, " on node mx-a\r\n") != NULL, "%s",
                  ts_buf);
    ts_cmd(fd, "QUIT", 221, NULL);
    close(fd);

    ck_assert_int_eq(ts_logged("node transfer from node mx-b: arrival"
                               " 1795382512.000001"), 1);
    ck_assert_int_eq(ts_logged(" queued from=<a@client.test>"), 2);
    ck_assert_int_eq(ts_logged(" from_node=mx-b"), 1);
    ck_assert_int_eq(ts_logged("Z mx-a postern["), ts_logged("\n"));
}
END_TEST


/* A long name puts "with" on a line of its own (RFC 5322 2.1.1's 78). */
START_TEST(test_node_name_fold)
{
    static const char  want[] = "\r\n\tby mx.example.test (Postern node"
        " 0123456789012345678901234567890123456789012345678901234567890123)"
        "\r\n\twith ESMTP id ";
    const char         *msg;
    size_t              len;
    int                 fd;

    ts_init_with("node_name 012345678901234567890123456789012345678901234"
                 "5678901234567890123;\n", "");
    fd = ts_session();
    ts_cmd(fd, "EHLO client.test", 250, NULL);
    ts_message(fd, "MAIL FROM:<a@client.test>");
    msg = ts_stored(&len);
    ck_assert_msg(memmem(msg, len, want, sizeof(want) - 1) != NULL,
                  "%.*s", (int) len, msg);
    close(fd);
}
END_TEST


Suite *
suite_session(void)
{
    Suite  *s = suite_create("session");
    TCase  *tc = tcase_create("state machine");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_greeting_and_quit);
    tcase_add_test(tc, test_command_sequence);
    tcase_add_test(tc, test_ehlo_and_helo);
    tcase_add_test(tc, test_message_stored);
    tcase_add_test(tc, test_node_name_trace);
    tcase_add_test(tc, test_node_name_fold);
    tcase_add_test(tc, test_commit_failure_keeps_session);
    tcase_add_test(tc, test_pipelined_replies_in_order);
    tcase_add_test(tc, test_text_before_354);
    tcase_add_test(tc, test_text_before_354_allowed);
    tcase_add_test(tc, test_too_many_errors);
    tcase_add_test(tc, test_command_timeout);
    tcase_add_test(tc, test_line_too_long);
    tcase_add_test(tc, test_disconnect_mid_data);
    tcase_add_test(tc, test_disconnect_during_commit);
    tcase_add_test(tc, test_bdat_states);
    tcase_add_test(tc, test_sessions_come_and_go);
    suite_add_tcase(s, tc);

    tc = tcase_create("verdicts");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_verdict_connect_reject);
    tcase_add_test(tc, test_verdict_connect_tempfail);
    tcase_add_test(tc, test_verdict_connect_pending);
    tcase_add_test(tc, test_verdict_helo);
    tcase_add_test(tc, test_verdict_auth);
    tcase_add_test(tc, test_verdict_mail);
    tcase_add_test(tc, test_verdict_rcpt);
    tcase_add_test(tc, test_verdict_rcpt_pending);
    tcase_add_test(tc, test_notes_and_tx_ctx);
    tcase_add_test(tc, test_regex_and_domain_slots);
    tcase_add_test(tc, test_verdict_tempfail_421);
    tcase_add_test(tc, test_verdict_data);
    tcase_add_test(tc, test_verdict_message);
    tcase_add_test(tc, test_verdict_queue);
    suite_add_tcase(s, tc);

    tc = tcase_create("abi 1.2");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_verdict_discard_rcpt);
    tcase_add_test(tc, test_verdict_discard_message);
    tcase_add_test(tc, test_verdict_discard_queue);
    tcase_add_test(tc, test_verdict_hold_committed);
    tcase_add_test(tc, test_message_edits);
    tcase_add_test(tc, test_verdict_committed_not_on_failure);
    tcase_add_test(tc, test_verdict_hold_outside_tx);
    tcase_add_test(tc, test_verdict_cancel_on_close);
    tcase_add_test(tc, test_verdict_cancel_on_timeout);
    tcase_add_test(tc, test_verdict_stale_completions);
    tcase_add_test(tc, test_fd_watch_write);
    suite_add_tcase(s, tc);

    return s;
}
