/*
 * fuzz_session.c -- libFuzzer harness for a whole SMTP session, driven
 * in-process the way tests/unit/check_session.c does it: the
 * configuration is loaded once with the test module test_mem
 * (recipients in example.test, an in-memory store that commits from a
 * timer), and each input is one client on a socketpair.
 *
 * Input: two option bytes, then the client's bytes.  The first byte
 * chooses the server block (defaults; strict bare newlines and small
 * limits; AUTH in the clear) and the largest write; the second seeds
 * the write sizes.  The harness waits for the greeting, then writes the
 * bytes in pieces, turning the worker's event loop after each, and
 * finally closes its end.  Besides the sanitizers it checks that every
 * reply line is "ddd" plus space or dash and ends with CRLF, and that
 * the session is gone within a bounded number of loop turns after the
 * client closed (a session that outlives its client is a leak).
 *
 * Run from the top of the tree: the test module is loaded from
 * objs/tests/modules/test_mem.so (PST_FUZZ_MODULES overrides the
 * directory); PST_FUZZ_VERBOSE=1 prints the server's replies, to read
 * what a crashing input did.
 */

#include "pst_core.h"
#include "pst_smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CONF                                                             \
    "load_module %s/test_mem.so;\n"                                         \
    "worker_connections 64;\n"                                              \
    "smtp {\n"                                                              \
    "    hostname mx.example.test;\n"                                       \
    "    smtp_reverse_lookup off;\n"                                        \
    "    max_errors 50;\n"                                                  \
    "    max_junk_commands 50;\n"                                           \
    "    server { listen 127.0.0.1:2525; }\n"                               \
    "    server {\n"                                                        \
    "        listen 127.0.0.1:2526;\n"                                      \
    "        smtp_bare_newline reject;\n"                                   \
    "        message_size_limit 300;\n"                                     \
    "        max_recipients 100;\n"                                           \
    "        max_messages_per_session 2;\n"                                 \
    "        smtp_smtputf8 off;\n"                                          \
    "        smtp_dsn off;\n"                                               \
    "        smtp_chunking off;\n"                                          \
    "    }\n"                                                               \
    "    server {\n"                                                        \
    "        listen 127.0.0.1:2527;\n"                                      \
    "        auth_allow_plaintext on;\n"                                    \
    "        auth_failure_delay 0;\n"                                       \
    "        smtp_pipelining off;\n"                                        \
    "    }\n"                                                               \
    "}\n"

static pst_cycle_t  *fz_cycle;
static char          fz_dir[64];
static char          fz_conf[96];
static int           fz_verbose;     /* PST_FUZZ_VERBOSE: print replies */


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_session: %s\n", what);
    abort();
}


static void
fz_cleanup(void)
{
    unlink(fz_conf);
    rmdir(fz_dir);
}


static void
fz_init(void)
{
    const char  *mods;
    char         path[PATH_MAX];
    FILE        *f;

    fz_verbose = (getenv("PST_FUZZ_VERBOSE") != NULL);

    mods = getenv("PST_FUZZ_MODULES");
    if (mods == NULL) {
        mods = "objs/tests/modules";
    }
    if (realpath(mods, path) == NULL) {
        fprintf(stderr, "fuzz_session: %s: %s (make unit builds it)\n", mods,
                strerror(errno));
        exit(1);
    }

    snprintf(fz_dir, sizeof(fz_dir), "/tmp/pst-fuzz-session-XXXXXX");
    if (mkdtemp(fz_dir) == NULL) {
        fz_fail("mkdtemp");
    }
    snprintf(fz_conf, sizeof(fz_conf), "%s/main.conf", fz_dir);
    atexit(fz_cleanup);

    f = fopen(fz_conf, "w");
    if (f == NULL) {
        fz_fail("cannot write main.conf");
    }
    fprintf(f, FZ_CONF, path);
    fclose(f);

    fz_cycle = pst_init_cycle(fz_dir, "main.conf", NULL, NULL);
    if (fz_cycle == NULL || fz_cycle->listening.nelts != 3) {
        fz_fail("the configuration does not load");
    }

    pst_cycle = fz_cycle;
    pst_time_update();

    if (pst_log_open(&pst_log_main, "/dev/null", PST_LOG_EMERG) != PST_OK
        || pst_event_init(64) != PST_OK
        || pst_connections_init(128) != PST_OK
        || pst_smtp_sessions_init() != PST_OK)
    {
        fz_fail("worker initialisation");
    }
}


static void
fz_guard(pst_event_t *ev)
{
    (void) ev;
}


/* One turn of the worker's event loop, sleeping at most ms. */
static void
fz_turn(pst_msec_t ms)
{
    static pst_event_t  guard;

    guard.handler = fz_guard;
    pst_event_add_timer(&guard, ms);
    if (pst_process_events_and_timers() != PST_OK) {
        fz_fail("event loop");
    }
    pst_event_del_timer(&guard);
}


typedef struct {
    u_char                       line[1024];
    size_t                       len;
    size_t                       replies;
    unsigned                     eof:1;
} fz_reader_t;


/* Read what the server sent and check the reply syntax. */
static void
fz_read(int fd, fz_reader_t *r)
{
    u_char   buf[4096], c;
    ssize_t  n, i;

    for ( ;; ) {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0) {
            r->eof = 1;
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != ECONNRESET) {
                fz_fail("recv");
            }
            if (errno == ECONNRESET) {
                r->eof = 1;
            }
            return;
        }

        for (i = 0; i < n; i++) {
            c = buf[i];
            if (r->len == sizeof(r->line)) {
                fz_fail("reply line over 1 KiB");
            }
            r->line[r->len++] = c;
            if (c != '\n') {
                continue;
            }
            if (r->len < 6 || r->line[r->len - 2] != '\r'
                || !isdigit(r->line[0]) || !isdigit(r->line[1])
                || !isdigit(r->line[2])
                || (r->line[3] != ' ' && r->line[3] != '-')
                || r->line[0] < '2' || r->line[0] > '5')
            {
                fprintf(stderr, "fuzz_session: bad reply line \"%.*s\"\n",
                        (int) r->len, r->line);
                fz_fail("bad reply line");
            }
            if (memchr(r->line, '\r', r->len - 2) != NULL
                || memchr(r->line, '\0', r->len) != NULL)
            {
                fz_fail("CR or NUL inside a reply line");
            }
            if (r->line[3] == ' ') {
                r->replies++;
            }
            if (fz_verbose) {
                fprintf(stderr, "S: %.*s", (int) r->len, r->line);
            }
            r->len = 0;
        }
    }
}


static int
fz_connect(pst_uint_t index)
{
    pst_listening_t   *ls;
    pst_connection_t  *c;
    int                sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0)
    {
        fz_fail("socketpair");
    }

    c = pst_get_connection(sv[0]);
    if (c == NULL) {
        fz_fail("no free connection: a session of an earlier input leaked");
    }

    ls = fz_cycle->listening.elts;

    c->sockaddr.sin.sin_family = AF_INET;
    c->sockaddr.sin.sin_port = htons(40000);
    c->sockaddr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->socklen = sizeof(struct sockaddr_in);
    c->local_sockaddr = c->sockaddr;
    c->local_sockaddr.sin.sin_port = htons((uint16_t) (2525 + index));
    c->listening = &ls[index];

    if (pst_event_add_conn(c) != PST_OK) {
        fz_fail("pst_event_add_conn");
    }
    ls[index].handler(c);

    return sv[1];
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t  r;
    uint32_t     seed;
    size_t       off, n, maxw;
    ssize_t      w;
    int          fd, i;

    if (fz_cycle == NULL) {
        fz_init();
    }

    if (size < 2 || size > 16384) {
        return -1;
    }

    maxw = 1 + ((data[0] >> 2) & 0x3f) * 8;
    seed = data[1] + 1u;
    fd = fz_connect((data[0] & 3) % 3);
    data += 2;
    size -= 2;

    memset(&r, 0, sizeof(r));

    /* the greeting first: a client that talks before it is an early
     * talker, a different path every input would take */
    for (i = 0; r.replies == 0 && !r.eof; i++) {
        if (i == 1000) {
            fz_fail("no greeting");
        }
        fz_turn(1);
        fz_read(fd, &r);
    }

    for (off = 0; off < size && !r.eof; off += n) {
        seed = seed * 1103515245u + 12345u;
        n = pst_min(size - off, 1 + (seed >> 16) % maxw);

        w = send(fd, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN) {
                n = 0;
            } else if (errno == EPIPE || errno == ECONNRESET) {
                break;
            } else {
                fz_fail("send");
            }
        } else {
            n = (size_t) w;
        }

        /* no sleep while sending: what waits for a timer (the store's
         * commit) catches up below */
        fz_turn(0);
        fz_read(fd, &r);
    }

    /* the client is done: the session must end (QUIT, or EOF) */
    shutdown(fd, SHUT_WR);

    for (i = 0; pst_smtp_session_count() != 0; i++) {
        if (i == 3000) {
            fz_fail("the session outlived its client");
        }
        fz_turn(1);
        fz_read(fd, &r);
    }

    close(fd);

    /* let what the closed session posted run */
    fz_turn(0);

    return 0;
}
