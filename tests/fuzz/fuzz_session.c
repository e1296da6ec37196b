/*
 * fuzz_session.c -- libFuzzer harness for a whole SMTP session, driven
 * in-process the way tests/unit/check_session.c does it: the
 * configuration is loaded once with the test module test_mem
 * (recipients in example.test, an in-memory store that commits from a
 * timer), and each input is one client on a socketpair.
 *
 * Input: two option bytes, then the client's bytes.  The first byte
 * chooses the server block (defaults; strict bare newlines and small
 * limits; AUTH in the clear without pipelining; AUTH required, with
 * a failure delay and case-insensitive names; XCLIENT is trusted in the
 * first and the last) and the largest write;
 * the second seeds
 * the write sizes.  The harness waits for the greeting, then writes the
 * bytes in pieces, turning the worker's event loop after each, and
 * finally closes its end.  Besides the sanitizers it checks that every
 * reply line is "ddd" plus space or dash and ends with CRLF, and that
 * the session is gone within a bounded number of loop turns after the
 * client closed (a session that outlives its client is a leak).
 *
 * AUTH: the last two server blocks allow AUTH in the clear and load
 * auth_file, built with the sanitizers (objs/fuzz/modules/), with a
 * users file written at start: crypt hashes made here with cheap
 * sha512-crypt, SCRAM secrets from tests/fuzz/session_auth_seeds.py.
 * Two libcrypto/libcrypt functions are replaced for the whole process
 * so that the fuzzer can get through: RAND_bytes() gives zeros, which
 * makes the SCRAM server nonce known (the seeds carry correct proofs),
 * and crypt_gensalt_rn() gives a cheap sha512-crypt setting, which
 * auth_file uses for the dummy hash of unknown users (the default,
 * yescrypt, would cost milliseconds per login).  fuzz_session_auth.c
 * is this harness with only the AUTH servers.
 *
 * Run from the top of the tree: the test module is loaded from
 * objs/tests/modules/test_mem.so (PST_FUZZ_MODULES overrides the
 * directory), auth_file from objs/fuzz/modules/auth_file.so;
 * PST_FUZZ_VERBOSE=1 prints the server's replies, to read what a
 * crashing input did.
 */

#include "pst_core.h"
#include "pst_smtp.h"

#include <crypt.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int RAND_bytes(unsigned char *buf, int num);
char *crypt_gensalt_rn(const char *prefix, unsigned long count,
    const char *rbytes, int nrbytes, char *output, int output_size);

/* server blocks: the first two without AUTH, the last two with it */
#define FZ_SERVERS       4
#ifdef FZ_AUTH_ONLY
#define FZ_SERVER(b)     (2 + ((b) & 1))
#else
#define FZ_SERVER(b)     ((b) & 3)
#endif

/* "postern passwd -m sha512crypt -r 1000", with a fixed salt */
#define FZ_CRYPT         "$6$rounds=1000$fuzzsalt$"
#define FZ_SCRAM_SALT    "SCRAM-SHA-256$64:ZnV6enNhbHRmdXp6c2FsdA==$"

static const char  *fz_users[][3] = {
    { "alice", "secret", FZ_SCRAM_SALT
      "Oy4qsgW9KkKaJIxnmrtmqZLAujmvilQM55AS9kHEVAc=:"
      "jaAYPeN7+Y6L3RiExmUdnNqjFt0j4RCuK87occIH5vQ=" },
    { "bob", NULL, FZ_SCRAM_SALT               /* SCRAM only: hunter2 */
      "51MhJou577+M13Fr6ZExvyjGVLLug/n94nzG1sG0YV0=:"
      "Aktvb7FQQN5nWhuptdQiCJi8AiDzEDLjW+ONZCUvhgs=" },
    { "carol", "letmein", NULL },
    { "we,ird=user", "pa:ss", FZ_SCRAM_SALT
      "sC0l+xJfKUhwV23eJWRkbWZ5wPUOjnzSPFf9sTbJQgA=:"
      "EuNcFIH9NuJuVHlWyaN1sLlM58GUdQdlaP/Yj1v3xJI=" },
};

#define FZ_CONF                                                             \
    "load_module %s/test_mem.so;\n"                                         \
    "load_module %s/auth_file.so;\n"                                        \
    "auth_hash_threads 2;\n"                                                \
    "worker_connections 64;\n"                                              \
    "smtp {\n"                                                              \
    "    hostname mx.example.test;\n"                                       \
    "    smtp_reverse_lookup off;\n"                                        \
    "    max_errors 50;\n"                                                  \
    "    max_junk_commands 50;\n"                                           \
    "    server { listen 127.0.0.1:2525; xclient_trusted 127.0.0.1; }\n"    \
    "    server {\n"                                                        \
    "        listen 127.0.0.1:2526;\n"                                      \
    "        smtp_bare_newline reject;\n"                                   \
    "        message_size_limit 300;\n"                                     \
    "        max_recipients 100;\n"                                         \
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
    "        auth_users_file %s/users;\n"                                   \
    "        auth_mechanisms PLAIN LOGIN SCRAM-SHA-256 CRAM-MD5;\n"         \
    "        auth_max_failures 20;\n"                                       \
    "        auth_client_failures 0;\n"                                     \
    "    }\n"                                                               \
    "    server {\n"                                                        \
    "        listen 127.0.0.1:2528;\n"                                      \
    "        auth_allow_plaintext on;\n"                                    \
    "        auth_required on;\n"                                           \
    "        auth_failure_delay 1ms;\n"                                     \
    "        auth_users_file %s/users;\n"                                   \
    "        auth_users_case_insensitive on;\n"                             \
    "        xclient_trusted 127.0.0.0/8;\n"                                \
    "        auth_mechanisms SCRAM-SHA-256 LOGIN PLAIN XOAUTH2;\n"          \
    "        auth_max_failures 2;\n"                                        \
    "        auth_client_failures 0;\n"                                     \
    "    }\n"                                                               \
    "}\n"

static pst_cycle_t  *fz_cycle;
static char          fz_dir[64];
static char          fz_conf[96];
static char          fz_users_file[96];
static int           fz_verbose;     /* PST_FUZZ_VERBOSE: print replies */
static pst_connection_t  *fz_conn;   /* the input's client */


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
    unlink(fz_users_file);
    rmdir(fz_dir);
}


/* Instead of OpenSSL's: a known SCRAM server nonce (see the top). */
int
RAND_bytes(unsigned char *buf, int num)
{
    memset(buf, 0, (size_t) num);
    return 1;
}


/* Instead of libcrypt's: a cheap dummy hash for unknown users. */
char *
crypt_gensalt_rn(const char *prefix, unsigned long count, const char *rbytes,
    int nrbytes, char *output, int output_size)
{
    (void) prefix;
    (void) count;
    (void) rbytes;
    (void) nrbytes;

    if (output_size < (int) sizeof(FZ_CRYPT "dummy$")) {
        errno = ERANGE;
        return NULL;
    }
    memcpy(output, FZ_CRYPT "dummy$", sizeof(FZ_CRYPT "dummy$"));
    return output;
}


/* name:crypt-hash[:scram-secret], as "postern passwd" writes them */
static void
fz_write_users(void)
{
    struct crypt_data  *cd;
    const char         *h;
    size_t              i;
    FILE               *f;

    snprintf(fz_users_file, sizeof(fz_users_file), "%s/users", fz_dir);

    cd = calloc(1, sizeof(struct crypt_data));
    f = fopen(fz_users_file, "w");
    if (cd == NULL || f == NULL || chmod(fz_users_file, 0640) != 0) {
        fz_fail("cannot write the users file");
    }

    for (i = 0; i < sizeof(fz_users) / sizeof(fz_users[0]); i++) {
        h = "";
        if (fz_users[i][1] != NULL) {
            h = crypt_rn(fz_users[i][1], FZ_CRYPT, cd, sizeof(*cd));
            if (h == NULL || h[0] != '$') {
                fz_fail("crypt_rn");
            }
        }
        fprintf(f, "%s:%s%s%s\n", fz_users[i][0], h,
                fz_users[i][2] != NULL ? ":" : "",
                fz_users[i][2] != NULL ? fz_users[i][2] : "");
    }

    fclose(f);
    free(cd);
}


static void
fz_init(void)
{
    pst_module_entry_t  *me;
    const char          *mods;
    char                 path[PATH_MAX], fuzzmods[PATH_MAX];
    pst_uint_t           i;
    FILE                *f;

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
    if (realpath("objs/fuzz/modules", fuzzmods) == NULL) {
        fprintf(stderr, "fuzz_session: objs/fuzz/modules: %s (make fuzz"
                " builds it)\n", strerror(errno));
        exit(1);
    }

    snprintf(fz_dir, sizeof(fz_dir), "/tmp/pst-fuzz-session-XXXXXX");
    if (mkdtemp(fz_dir) == NULL) {
        fz_fail("mkdtemp");
    }
    snprintf(fz_conf, sizeof(fz_conf), "%s/main.conf", fz_dir);
    atexit(fz_cleanup);
    fz_write_users();

    f = fopen(fz_conf, "w");
    if (f == NULL) {
        fz_fail("cannot write main.conf");
    }
    fprintf(f, FZ_CONF, path, fuzzmods, fz_dir, fz_dir);
    fclose(f);

    fz_cycle = pst_init_cycle(fz_dir, "main.conf", NULL, NULL);
    if (fz_cycle == NULL || fz_cycle->listening.nelts != FZ_SERVERS) {
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

    /* what a worker does next (pst_process.c): auth_file's threads */
    me = fz_cycle->modules.elts;
    for (i = 0; i < fz_cycle->modules.nelts; i++) {
        if (me[i].desc.init_process != NULL
            && me[i].desc.init_process(fz_cycle, PST_PROC_WORKER,
                                       fz_cycle->main_conf[i]) != PST_OK)
        {
            fz_fail("a module's init_process");
        }
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
    fz_conn = c;

    return sv[1];
}


/* Is the input's session waiting for a hook or the store? */
static int
fz_busy(void)
{
    pst_session_t  *s;

    if (pst_smtp_session_count() == 0) {
        return 0;
    }
    s = fz_conn->data;
    return s != NULL && (s->state == PST_SMTP_S_PHASE
                         || s->state == PST_SMTP_S_COMMIT);
}


/* before the first input: libFuzzer then knows auth_file's counters */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    fz_init();
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader_t  r;
    uint32_t     seed;
    size_t       off, n, maxw;
    ssize_t      w;
    int          fd, i;

    if (size < 2 || size > 16384) {
        return -1;
    }

    maxw = 1 + ((data[0] >> 2) & 0x3f) * 8;
    seed = data[1] + 1u;
    fd = fz_connect(FZ_SERVER(data[0]));
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

    /* a session that waits for a backend (a hashing thread, the
     * failure delay, the store) ends at the client's EOF: let it
     * answer first, so that what comes after it is reached too */
    for (i = 0; !r.eof && fz_busy(); i++) {
        if (i == 3000) {
            fz_fail("a session waited 3 s for a backend");
        }
        fz_turn(1);
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
