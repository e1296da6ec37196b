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
 * Load "load_module test_mem" plus the smtp block with extra directives
 * and initialise what a worker initialises before its first accept.
 */
static void
ts_init(const char *extra)
{
    char  *conf, *out, *path;

    ts_dir = tu_tmpdir();
    ck_assert(asprintf(&conf, "load_module @MOD@/test_mem.so;\n" TS_SMTP,
                       extra) > 0);
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
    tcase_add_test(tc, test_commit_failure_keeps_session);
    tcase_add_test(tc, test_pipelined_replies_in_order);
    tcase_add_test(tc, test_too_many_errors);
    tcase_add_test(tc, test_command_timeout);
    tcase_add_test(tc, test_line_too_long);
    tcase_add_test(tc, test_disconnect_mid_data);
    tcase_add_test(tc, test_disconnect_during_commit);
    tcase_add_test(tc, test_bdat_states);
    tcase_add_test(tc, test_sessions_come_and_go);
    suite_add_tcase(s, tc);

    return s;
}
