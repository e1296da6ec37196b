/*
 * check_channel.c -- pst_channel.c: typed, versioned messages between
 * processes.
 *
 * The queue process trusts what arrives on its inbox only as far as the
 * channel checks it, so every way a message can be wrong (version,
 * type, length, descriptors, truncation) must be refused -- loudly, in
 * the log -- and never reach the handler; and every right message must
 * arrive whole, in order, however the bytes were split on the way.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_channel.h"

#define MAX_GOT  16

typedef struct {
    unsigned                     type;
    u_char                       data[128];
    size_t                       len;
    int                          fd;
} got_t;

static got_t       got[MAX_GOT];
static pst_uint_t  ngot;
static char       *log_path;
static char       *log_dir;


static void
handler(pst_channel_t *ch, const pst_msg_t *msg, void *data)
{
    (void) ch;
    ck_assert_ptr_eq(data, &ngot);
    ck_assert_uint_lt(ngot, MAX_GOT);
    ck_assert_uint_le(msg->len, sizeof(got[0].data));
    got[ngot].type = msg->type;
    memcpy(got[ngot].data, msg->data, msg->len);
    got[ngot].len = msg->len;
    got[ngot].fd = msg->fd;
    ngot++;
}


/* The log goes to a file so that a test can look for the alert. */
static void
setup(void)
{
    ngot = 0;
    log_dir = tu_tmpdir();
    ck_assert_int_ne(asprintf(&log_path, "%s/log", log_dir), -1);
    ck_assert_int_eq(pst_log_open(&pst_log_main, log_path, PST_LOG_INFO),
                     PST_OK);
}


static void
teardown(void)
{
    (void) pst_log_open(&pst_log_main, NULL, PST_LOG_NOTICE);
    tu_rmtree(log_dir);
    free(log_dir);
    free(log_path);
}


static int
log_has(const char *text)
{
    char     buf[8192];
    ssize_t  n;
    int      fd;

    fd = open(log_path, O_RDONLY);
    ck_assert_int_ne(fd, -1);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, text) != NULL;
}


static void
pair(int fds[2], int type)
{
    ck_assert_int_eq(pst_channel_pair(fds, type), PST_OK);
}


/* Raw bytes as a peer (or an attacker) might send them. */
static void
raw(int fd, unsigned version, unsigned type, uint32_t len,
    const void *payload, size_t n)
{
    pst_msg_header_t  h;
    struct iovec      iov[2];

    h.version = (uint16_t) version;
    h.type = (uint16_t) type;
    h.len = len;
    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    iov[1].iov_base = (void *) payload;
    iov[1].iov_len = n;
    ck_assert_int_eq(writev(fd, iov, 2), (ssize_t) (sizeof(h) + n));
}


START_TEST(test_framing_in_order)
{
    pst_channel_t  *ch;
    int             fds[2], i;
    char            id[32];

    pair(fds, SOCK_SEQPACKET);
    ch = pst_channel_create(fds[0], handler, &ngot);
    ck_assert_ptr_nonnull(ch);

    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "1LH29539EAD01L72O%d", i);
        ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_COMMITTED, id,
                                          strlen(id), -1), PST_OK);
    }
    ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_PING, "", 0, -1),
                     PST_OK);

    /* nothing is dispatched before the reader runs; all after */
    ck_assert_uint_eq(ngot, 0);
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 6);

    for (i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "1LH29539EAD01L72O%d", i);
        ck_assert_uint_eq(got[i].type, PST_MSG_COMMITTED);
        ck_assert_uint_eq(got[i].len, 18);
        ck_assert_mem_eq(got[i].data, id, 18);
        ck_assert_int_eq(got[i].fd, -1);
    }
    ck_assert_uint_eq(got[5].type, PST_MSG_PING);
    ck_assert_uint_eq(got[5].len, 0);
    ck_assert_uint_eq(pst_channel_malformed(ch), 0);

    /* an empty socket: nothing more, no error */
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 6);

    /* the writer's end closes: the reader says so */
    close(fds[1]);
    ck_assert_int_eq(pst_channel_read(ch), PST_DONE);

    pst_channel_destroy(ch);
    close(fds[0]);
}
END_TEST


/* Several processes write into one end (the inbox): records do not
 * interleave. */
START_TEST(test_many_writers)
{
    pst_channel_t  *ch;
    pid_t           pid[3];
    int             fds[2], i, k, st;
    char            id[64];

    pair(fds, SOCK_SEQPACKET);
    for (i = 0; i < 3; i++) {
        pid[i] = fork();
        ck_assert_int_ne(pid[i], -1);
        if (pid[i] == 0) {
            for (k = 0; k < 4; k++) {
                snprintf(id, sizeof(id), "%d-%d-%s", i, k,
                         "abcdefghijklmnopqrstuvwxyz0123456789");
                if (pst_channel_send(fds[1], PST_MSG_PING, id, strlen(id),
                                     -1) != PST_OK)
                {
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(waitpid(pid[i], &st, 0), pid[i]);
        ck_assert_int_eq(st, 0);
    }

    ch = pst_channel_create(fds[0], handler, &ngot);
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 12);
    for (i = 0; i < 12; i++) {
        ck_assert_uint_eq(got[i].len, 40);
        ck_assert_mem_eq(got[i].data + 4,
                         "abcdefghijklmnopqrstuvwxyz0123456789", 36);
    }
    ck_assert_uint_eq(pst_channel_malformed(ch), 0);

    pst_channel_destroy(ch);
    close(fds[0]);
    close(fds[1]);
}
END_TEST


/* A stream socket delivers bytes in any split: one byte at a time, a
 * message is dispatched exactly when its last byte arrives. */
START_TEST(test_partial_reads_stream)
{
    pst_channel_t     *ch;
    pst_msg_header_t   h;
    u_char             buf[64];
    size_t             n, i;
    int                fds[2];

    pair(fds, SOCK_STREAM);
    ch = pst_channel_create(fds[0], handler, &ngot);
    ck_assert_ptr_nonnull(ch);

    h.version = PST_CHANNEL_VERSION;
    h.type = PST_MSG_COMMITTED;
    h.len = 18;
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), "1LH29539EAD01L72OO", 18);
    n = sizeof(h) + 18;
    /* and a second message right behind it, in the same bytes */
    h.type = PST_MSG_PING;
    h.len = 2;
    memcpy(buf + n, &h, sizeof(h));
    memcpy(buf + n + sizeof(h), "hi", 2);

    for (i = 0; i < n; i++) {
        ck_assert_int_eq(write(fds[1], buf + i, 1), 1);
        ck_assert_int_eq(pst_channel_read(ch), PST_OK);
        ck_assert_uint_eq(ngot, i + 1 == n ? 1 : 0);
    }
    ck_assert_mem_eq(got[0].data, "1LH29539EAD01L72OO", 18);

    /* the next one split in two, the cut inside the header */
    ck_assert_int_eq(write(fds[1], buf + n, 3), 3);
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 1);
    ck_assert_int_eq(write(fds[1], buf + n + 3, sizeof(h) + 2 - 3),
                     (ssize_t) (sizeof(h) + 2 - 3));
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 2);
    ck_assert_uint_eq(got[1].type, PST_MSG_PING);
    ck_assert_mem_eq(got[1].data, "hi", 2);

    /* the peer leaves in the middle of a message: said, not dispatched */
    ck_assert_int_eq(write(fds[1], buf, 5), 5);
    close(fds[1]);
    ck_assert_int_eq(pst_channel_read(ch), PST_DONE);
    ck_assert_uint_eq(ngot, 2);
    ck_assert_uint_eq(pst_channel_malformed(ch), 1);

    pst_channel_destroy(ch);
    close(fds[0]);
}
END_TEST


static void
check_fd_works(int fd, int peer)
{
    char  c;

    ck_assert_int_ne(fd, -1);
    ck_assert_int_eq(write(fd, "x", 1), 1);
    ck_assert_int_eq(read(peer, &c, 1), 1);
    ck_assert_int_eq(c, 'x');
    /* received descriptors are close-on-exec */
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}


START_TEST(test_fd_passing)
{
    pst_channel_t  *ch;
    int             fds[2], p[2], type;

    for (type = 0; type < 2; type++) {
        ngot = 0;
        pair(fds, type ? SOCK_STREAM : SOCK_SEQPACKET);
        ck_assert_int_eq(pipe(p), 0);
        ch = pst_channel_create(fds[0], handler, &ngot);

        ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_DESCRIPTOR,
                                          "log", 3, p[1]), PST_OK);
        close(p[1]);               /* the receiver holds the only copy */
        ck_assert_int_eq(pst_channel_read(ch), PST_OK);
        ck_assert_uint_eq(ngot, 1);
        ck_assert_uint_eq(got[0].type, PST_MSG_DESCRIPTOR);
        ck_assert_mem_eq(got[0].data, "log", 3);
        check_fd_works(got[0].fd, p[0]);
        close(got[0].fd);
        close(p[0]);

        /* a type that carries one cannot go without it, and the
         * others cannot carry one */
        ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_DESCRIPTOR, "", 0,
                                          -1), PST_ERROR);
        ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_PING, "", 0,
                                          fds[1]), PST_ERROR);

        pst_channel_destroy(ch);
        close(fds[0]);
        close(fds[1]);
    }
}
END_TEST


/* Each malformed record is refused, logged, and the next good one
 * still arrives (a SEQPACKET record boundary is never lost). */
START_TEST(test_malformed_records)
{
    static const struct {
        unsigned     version, type;
        uint32_t     len;
        const char  *payload;
        size_t       n;
        const char  *why;
    } bad[] = {
        { 2, PST_MSG_PING, 2, "hi", 2, "another protocol version" },
        { 0, PST_MSG_PING, 2, "hi", 2, "another protocol version" },
        { 1, 999, 2, "hi", 2, "unknown type" },
        { 1, PST_MSG_NONE, 0, "", 0, "unknown type" },
        { 1, PST_MSG_LAST, 0, "", 0, "unknown type" },
        { 1, PST_MSG_COMMITTED, 0, "", 0, "out of bounds" },
        { 1, PST_MSG_COMMITTED, 65, "x", 1, "out of bounds" },
        { 1, PST_MSG_PING, 5, "hi", 2, "record length differs" },
        { 1, PST_MSG_PING, 1, "hi", 2, "record length differs" },
        { 1, PST_MSG_DESCRIPTOR, 0, "", 0, "descriptor missing" },
    };
    pst_channel_t  *ch;
    pst_uint_t      i;
    int             fds[2];

    pair(fds, SOCK_SEQPACKET);
    ch = pst_channel_create(fds[0], handler, &ngot);

    for (i = 0; i < pst_nelems(bad); i++) {
        raw(fds[1], bad[i].version, bad[i].type, bad[i].len,
            bad[i].payload, bad[i].n);
        ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_PING, "ok", 2,
                                          -1), PST_OK);
        ck_assert_int_eq(pst_channel_read(ch), PST_OK);
        ck_assert_msg(ngot == i + 1, "case %lu reached the handler",
                      (unsigned long) i);
        ck_assert_mem_eq(got[i].data, "ok", 2);
        ck_assert_uint_eq(pst_channel_malformed(ch), i + 1);
        ck_assert_msg(log_has(bad[i].why), "case %lu: no \"%s\" in the log",
                      (unsigned long) i, bad[i].why);
    }
    ck_assert(log_has("alert: channel"));

    /* shorter than a header */
    ck_assert_int_eq(write(fds[1], "abc", 3), 3);
    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert(log_has("shorter than a header"));
    ck_assert_uint_eq(ngot, pst_nelems(bad));

    pst_channel_destroy(ch);
    close(fds[0]);
    close(fds[1]);
}
END_TEST


/* A descriptor on a type without one: refused, and the descriptor is
 * closed rather than leaked into the receiver. */
START_TEST(test_unexpected_descriptor)
{
    pst_msg_header_t  h;
    struct cmsghdr   *cm;
    struct msghdr     msg;
    struct iovec      iov;
    pst_channel_t    *ch;
    struct stat       st;
    int               fds[2], p[2], before;
    union {
        struct cmsghdr  align;
        u_char          buf[CMSG_SPACE(sizeof(int))];
    } cmsg;

    pair(fds, SOCK_SEQPACKET);
    ck_assert_int_eq(pipe(p), 0);
    ch = pst_channel_create(fds[0], handler, &ngot);

    h.version = PST_CHANNEL_VERSION;
    h.type = PST_MSG_PING;
    h.len = 0;
    iov.iov_base = &h;
    iov.iov_len = sizeof(h);
    memset(&msg, 0, sizeof(msg));
    memset(&cmsg, 0, sizeof(cmsg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.buf;
    msg.msg_controllen = sizeof(cmsg.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    ck_assert_int_eq(sendmsg(fds[1], &msg, 0), (ssize_t) sizeof(h));
    close(p[1]);

    /* the next free descriptor number is where the copy would land */
    before = dup(0);
    close(before);

    ck_assert_int_eq(pst_channel_read(ch), PST_OK);
    ck_assert_uint_eq(ngot, 0);
    ck_assert_uint_eq(pst_channel_malformed(ch), 1);
    ck_assert(log_has("unexpected descriptor"));
    ck_assert_int_eq(fstat(before, &st), -1);

    pst_channel_destroy(ch);
    close(p[0]);
    close(fds[0]);
    close(fds[1]);
}
END_TEST


/* On a stream the framing cannot be recovered after a bad header: the
 * reader says so and the owner drops the channel. */
START_TEST(test_malformed_stream)
{
    pst_channel_t  *ch;
    int             fds[2];

    pair(fds, SOCK_STREAM);
    ch = pst_channel_create(fds[0], handler, &ngot);

    raw(fds[1], 1, PST_MSG_PING, 2, "hi", 2);
    raw(fds[1], 1, PST_MSG_PING, 70000, "", 0);
    ck_assert_int_eq(pst_channel_read(ch), PST_ERROR);
    ck_assert_uint_eq(ngot, 1);
    ck_assert_uint_eq(pst_channel_malformed(ch), 1);
    ck_assert(log_has("out of bounds"));

    pst_channel_destroy(ch);
    close(fds[0]);
    close(fds[1]);
}
END_TEST


/* The sender refuses what the receiver would refuse, and a full peer
 * is PST_AGAIN, not an error or a block. */
START_TEST(test_send_limits)
{
    u_char  big[100];
    int     fds[2], rc, i;

    pair(fds, SOCK_SEQPACKET);
    memset(big, 'x', sizeof(big));

    ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_COMMITTED, big, 65,
                                      -1), PST_ERROR);
    ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_COMMITTED, big, 0,
                                      -1), PST_ERROR);
    ck_assert_int_eq(pst_channel_send(fds[1], 999, big, 1, -1), PST_ERROR);
    ck_assert_int_eq(errno, EINVAL);

    for (i = 0; i < 1000000; i++) {
        rc = pst_channel_send(fds[1], PST_MSG_PING, big, 64, -1);
        if (rc != PST_OK) {
            break;
        }
    }
    ck_assert_int_eq(rc, PST_AGAIN);

    close(fds[0]);
    ck_assert_int_eq(pst_channel_send(fds[1], PST_MSG_PING, big, 1, -1),
                     PST_ERROR);
    close(fds[1]);
}
END_TEST


Suite *
suite_channel(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("channel");
    tc = tcase_create("channel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_framing_in_order);
    tcase_add_test(tc, test_many_writers);
    tcase_add_test(tc, test_partial_reads_stream);
    tcase_add_test(tc, test_fd_passing);
    tcase_add_test(tc, test_malformed_records);
    tcase_add_test(tc, test_unexpected_descriptor);
    tcase_add_test(tc, test_malformed_stream);
    tcase_add_test(tc, test_send_limits);
    suite_add_tcase(s, tc);

    return s;
}
