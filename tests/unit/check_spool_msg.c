/*
 * check_spool_msg.c -- the spool service (core/spool/pst_spool_msg.c): the
 * queue/XY/ID layout, inject, open with the delivery state, state
 * replacement, remove, walk, the upgrade of format 2 files in place.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_spool.h"

#define MSG      "Received: x\r\n\r\nhello\r\n"
#define OLD_ID   "1LG6N7GTJFR01F6BA0"
#define OLD_ENV                                                              \
    "POSTERN-ENVELOPE 1\n"                                                   \
    "id " OLD_ID "\n"                                                        \
    "arrival 1795382512.000000\n"                                            \
    "client-addr 127.0.0.1\n"                                                \
    "server mx.example.test\n"                                               \
    "sender a@x.test\n"                                                      \
    "size 22\n"                                                              \
    "rcpt u@example.test notify=6 orcpt=rfc822;u@example.test"               \
    " state=pending\n"                                                       \
    "end\n"

static char  *dir;


static void
setup(void)
{
    char  *p;

    dir = tu_tmpdir();
    ck_assert(asprintf(&p, "%s/queue", dir) > 0);
    ck_assert_int_eq(mkdir(p, 0750), 0);
    free(p);
    ck_assert(asprintf(&p, "%s/tmp", dir) > 0);
    ck_assert_int_eq(mkdir(p, 0750), 0);
    free(p);
    ck_assert(asprintf(&p, "%s/corrupt", dir) > 0);
    ck_assert_int_eq(mkdir(p, 0750), 0);
    free(p);
    pst_spool_use_dir(dir);
}


static void
teardown(void)
{
    pst_spool_use_dir(NULL);
    tu_rmtree(dir);
    free(dir);
}


/* dir/a/b exists (b may be NULL) */
static int
exists(const char *a, const char *b)
{
    struct stat  st;
    char         path[PATH_MAX];
    int          n;

    n = snprintf(path, sizeof(path), "%s/%s%s%s", dir, a, b ? "/" : "",
                 b ? b : "");
    ck_assert(n > 0 && (size_t) n < sizeof(path));
    return lstat(path, &st) == 0;
}


/* queue/XY/ID[suffix] of id into buf */
static char *
qname(char *buf, size_t size, const char *id, const char *suffix)
{
    ck_assert_uint_gt(size, 6 + 3 + PST_QUEUE_ID_LEN + strlen(suffix));
    memcpy(buf, "queue/", 6);
    memcpy(buf + 6, id + 16, 2);
    buf[8] = '/';
    memcpy(buf + 9, id, PST_QUEUE_ID_LEN);
    strcpy(buf + 9 + PST_QUEUE_ID_LEN, suffix);
    return buf;
}


static void
put(const char *rel, const void *data, size_t n)
{
    char   path[PATH_MAX];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}


/* a format 2 file of the previous release, flat in queue/ */
static void
put_old(void)
{
    u_char  hdr[PST_SPOOL_HEADER_LEN];

    pst_spool_header(hdr, sizeof(MSG) - 1, sizeof(OLD_ENV) - 1);
    memcpy(hdr, "POSTERN-SPOOL 2", 15);
    put("queue/" OLD_ID, hdr, sizeof(hdr));
    {
        char   path[PATH_MAX];
        FILE  *f;

        snprintf(path, sizeof(path), "%s/queue/" OLD_ID, dir);
        f = fopen(path, "a");
        fputs(MSG OLD_ENV, f);
        fclose(f);
    }
}


static void
inject(pst_pool_t *pool, u_char *id)
{
    pst_envelope_t  env;

    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    pst_str_set(&env.sender, "s@x.test");
    ck_assert_ptr_nonnull(pst_envelope_add_rcpt(pool, &env,
                                                (u_char *) "a@x", 3));
    ck_assert_ptr_nonnull(pst_envelope_add_rcpt(pool, &env,
                                                (u_char *) "b@x", 3));
    ck_assert_int_eq(pst_spool_inject(&env, (u_char *) MSG, sizeof(MSG) - 1,
                                      id), PST_OK);
    ck_assert_ptr_eq(env.id.data, id);
}


START_TEST(test_path)
{
    char  buf[PATH_MAX], want[PATH_MAX], small[10];

    ck_assert_int_eq(pst_spool_path(buf, sizeof(buf), OLD_ID), PST_OK);
    snprintf(want, sizeof(want), "%s/queue/A0/" OLD_ID, dir);
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(pst_spool_queue_name(buf, sizeof(buf), OLD_ID),
                     PST_OK);
    ck_assert_str_eq(buf, "A0/" OLD_ID);
    ck_assert_int_eq(pst_spool_path(buf, sizeof(buf), "../etc/passwd"),
                     PST_ERROR);
    ck_assert_int_eq(pst_spool_path(small, sizeof(small), OLD_ID),
                     PST_ERROR);
    ck_assert_int_eq(pst_spool_queue_name(small, sizeof(small), OLD_ID),
                     PST_ERROR);
}
END_TEST


START_TEST(test_inject_open)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char             buf[64], tmp[PATH_MAX], name[64];
    u_char           id[PST_QUEUE_ID_LEN + 1];
    time_t           sec;
    long             usec;
    DIR             *d;
    struct dirent   *de;

    pool = pst_create_pool(4096);
    inject(pool, id);
    ck_assert(pst_spool_valid_id(id, strlen((char *) id)));
    ck_assert(exists(qname(name, sizeof(name), (char *) id, ""), NULL));

    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_OK);
    ck_assert_int_eq(m.msg_len, sizeof(MSG) - 1);
    ck_assert_int_eq(pread(m.fd, buf, (size_t) m.msg_len, m.msg_offset),
                     sizeof(MSG) - 1);
    ck_assert(memcmp(buf, MSG, sizeof(MSG) - 1) == 0);
    ck_assert_str_eq((char *) m.env.sender.data, "s@x.test");
    ck_assert_uint_eq(m.env.rcpts->nelts, 2);
    r = m.env.rcpts->elts;
    ck_assert_str_eq((char *) r[1].addr.data, "b@x");
    ck_assert_int_eq(r[1].state, PST_RCPT_PENDING);
    /* arrival: the ID's time, to the microsecond */
    pst_spool_id_time(id, &sec, &usec);
    ck_assert_int_eq(m.env.arrival_sec, sec);
    ck_assert_int_eq(m.env.arrival_usec, usec);
    ck_assert(sec > 1700000000);
    pst_spool_msg_close(&m);
    ck_assert_int_eq(m.fd, -1);

    /* nothing left in tmp/PID/ */
    snprintf(tmp, sizeof(tmp), "%s/tmp/%d", dir, (int) getpid());
    d = opendir(tmp);
    while ((de = readdir(d)) != NULL) {
        ck_assert_msg(de->d_name[0] == '.', "left in tmp/: %s", de->d_name);
    }
    closedir(d);

    ck_assert_int_eq(pst_spool_msg_open(pool, "0000000000000000A0", &m,
                                        &why), PST_DECLINED);
    ck_assert_int_eq(pst_spool_msg_open(pool, "nope", &m, &why),
                     PST_DECLINED);
    pst_destroy_pool(pool);
}
END_TEST


static void
read_file(const char *path, char *buf, size_t size, ssize_t *n)
{
    int  fd = open(path, O_RDONLY);

    ck_assert_int_ne(fd, -1);
    *n = read(fd, buf, size);
    close(fd);
}


START_TEST(test_state_write)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char             path[PATH_MAX], before[4096], after[4096];
    u_char           id[PST_QUEUE_ID_LEN + 1];
    ssize_t          n1, n2;
    int              round;

    pool = pst_create_pool(4096);
    inject(pool, id);
    ck_assert_int_eq(pst_spool_path(path, sizeof(path), (char *) id),
                     PST_OK);
    read_file(path, before, sizeof(before), &n1);

    for (round = 1; round <= 3; round++) {
        ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                         PST_OK);
        r = m.env.rcpts->elts;
        ck_assert_uint_eq(r[1].attempts, (unsigned) round - 1);
        r[0].state = PST_RCPT_DELIVERED;
        pst_str_set(&r[0].reply, "250 2.0.0 Ok");
        pst_str_set(&r[0].remote, "mx.example.net[192.0.2.1]:25");
        r[1].state = PST_RCPT_DEFERRED;
        r[1].attempts = (unsigned) round;
        r[1].next_try = 1795382512 + round;
        pst_str_set(&r[1].reply, "451 4.3.0 try again");
        m.env.hold = round == 2;
        ck_assert_int_eq(pst_spool_state_write(&m.env), PST_OK);
        pst_spool_msg_close(&m);

        ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                         PST_OK);
        r = m.env.rcpts->elts;
        ck_assert_int_eq(r[0].state, PST_RCPT_DELIVERED);
        ck_assert_str_eq((char *) r[0].remote.data,
                         "mx.example.net[192.0.2.1]:25");
        ck_assert_int_eq(r[1].state, PST_RCPT_DEFERRED);
        ck_assert_uint_eq(r[1].attempts, (unsigned) round);
        ck_assert_int_eq(r[1].next_try, 1795382512 + round);
        ck_assert_str_eq((char *) r[1].reply.data, "451 4.3.0 try again");
        ck_assert_int_eq(m.env.hold, round == 2);
        ck_assert(!pst_envelope_final(&m.env));
        pst_spool_msg_close(&m);
    }

    /* the queue file itself never changes */
    read_file(path, after, sizeof(after), &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert(memcmp(before, after, (size_t) n1) == 0);
    ck_assert(exists(qname(before, sizeof(before), (char *) id, ".state"),
                     NULL));

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_remove)
{
    pst_spool_msg_t  m;
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why = NULL;
    u_char           id[PST_QUEUE_ID_LEN + 1];
    char             name[64];

    pool = pst_create_pool(4096);
    inject(pool, id);
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_OK);
    env = m.env;
    pst_spool_msg_close(&m);
    ck_assert_int_eq(pst_spool_state_write(&env), PST_OK);
    ck_assert(exists(qname(name, sizeof(name), (char *) id, ".state"),
                     NULL));

    ck_assert_int_eq(pst_spool_remove((char *) id), PST_OK);
    ck_assert(!exists(qname(name, sizeof(name), (char *) id, ""), NULL));
    ck_assert(!exists(qname(name, sizeof(name), (char *) id, ".state"),
                      NULL));
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_DECLINED);
    /* gone is gone */
    ck_assert_int_eq(pst_spool_remove((char *) id), PST_OK);

    /* a message of format 2 not yet moved into place */
    put_old();
    ck_assert_int_eq(pst_spool_remove(OLD_ID), PST_OK);
    ck_assert(!exists("queue", OLD_ID));
    pst_destroy_pool(pool);
}
END_TEST


/* The flush-saving variants do the same on the files: a release reads
 * back as hold 0 with the recipients' states kept; a fast removal
 * leaves neither file. */
START_TEST(test_release_and_fast_remove)
{
    pst_spool_msg_t  m;
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why = NULL;
    u_char           id[PST_QUEUE_ID_LEN + 1];
    char             name[64];

    pool = pst_create_pool(4096);
    inject(pool, id);
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_OK);
    env = m.env;
    pst_spool_msg_close(&m);
    r = env.rcpts->elts;
    r[0].state = PST_RCPT_DEFERRED;
    r[0].attempts = 3;
    env.hold = 1;
    ck_assert_int_eq(pst_spool_state_write(&env), PST_OK);
    env.hold = 0;
    ck_assert_int_eq(pst_spool_release_write(&env), PST_OK);

    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_OK);
    pst_spool_msg_close(&m);
    ck_assert_int_eq(m.env.hold, 0);
    r = m.env.rcpts->elts;
    ck_assert_int_eq(r[0].state, PST_RCPT_DEFERRED);
    ck_assert_int_eq(r[0].attempts, 3);

    ck_assert_int_eq(pst_spool_remove_fast((char *) id), PST_OK);
    ck_assert(!exists(qname(name, sizeof(name), (char *) id, ""), NULL));
    ck_assert(!exists(qname(name, sizeof(name), (char *) id, ".state"),
                      NULL));
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_DECLINED);
    ck_assert_int_eq(pst_spool_remove_fast((char *) id), PST_OK);
    pst_destroy_pool(pool);
}
END_TEST


typedef struct {
    char   ids[8][PST_QUEUE_ID_LEN + 1];
    int    n;
    int    stop_after;
} walked_t;


static int
walked(const char *id, void *data)
{
    walked_t  *w = data;

    ck_assert_int_lt(w->n, 8);
    snprintf(w->ids[w->n++], PST_QUEUE_ID_LEN + 1, "%s", id);
    return w->n == w->stop_after ? PST_DONE : PST_OK;
}


static int
walked_has(walked_t *w, const char *id)
{
    int  i, k = 0;

    for (i = 0; i < w->n; i++) {
        k += strcmp(w->ids[i], id) == 0;
    }
    return k;
}


/* files of the previous release: read where they are, moved into place
 * by the walk, never reported twice, never replacing a file */
START_TEST(test_upgrade_in_place)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    walked_t         w;
    const char      *why = NULL;
    char             a[PATH_MAX], b[PATH_MAX];
    u_char           id[PST_QUEUE_ID_LEN + 1];
    int              round;

    pool = pst_create_pool(4096);
    put_old();
    inject(pool, id);

    /* readable before the walk */
    ck_assert_int_eq(pst_spool_msg_open(pool, OLD_ID, &m, &why), PST_OK);
    ck_assert_str_eq((char *) m.env.server.data, "mx.example.test");
    pst_spool_msg_close(&m);

    for (round = 0; round < 2; round++) {
        memset(&w, 0, sizeof(w));
        ck_assert_int_eq(pst_spool_walk(walked, &w), PST_OK);
        ck_assert_int_eq(w.n, 2);
        ck_assert_int_eq(walked_has(&w, OLD_ID), 1);
        ck_assert_int_eq(walked_has(&w, (char *) id), 1);
        ck_assert(!exists("queue", OLD_ID));
        ck_assert(exists("queue/A0", OLD_ID));
    }

    /* and it takes a state like any other */
    ck_assert_int_eq(pst_spool_msg_open(pool, OLD_ID, &m, &why), PST_OK);
    r = m.env.rcpts->elts;
    r->state = PST_RCPT_FAILED;
    ck_assert_int_eq(pst_spool_state_write(&m.env), PST_OK);
    pst_spool_msg_close(&m);
    ck_assert_int_eq(pst_spool_msg_open(pool, OLD_ID, &m, &why), PST_OK);
    ck_assert(pst_envelope_final(&m.env));
    pst_spool_msg_close(&m);

    /* a crash between the link and the unlink of the move: both names */
    snprintf(a, sizeof(a), "%s/queue/A0/" OLD_ID, dir);
    snprintf(b, sizeof(b), "%s/queue/" OLD_ID, dir);
    ck_assert_int_eq(link(a, b), 0);
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(pst_spool_walk(walked, &w), PST_OK);
    ck_assert_int_eq(walked_has(&w, OLD_ID), 1);
    ck_assert(!exists("queue", OLD_ID));

    /* two different files with one ID: the one in place is kept and
     * reported once */
    put_old();
    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(pst_spool_walk(walked, &w), PST_OK);
    ck_assert_int_eq(walked_has(&w, OLD_ID), 1);
    ck_assert(exists("queue", OLD_ID));
    ck_assert_int_eq(pst_spool_msg_open(pool, OLD_ID, &m, &why), PST_OK);
    ck_assert(pst_envelope_final(&m.env));
    pst_spool_msg_close(&m);

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_walk_tidies)
{
    pst_pool_t  *pool;
    walked_t     w;
    char         name[PATH_MAX];
    u_char       id[PST_QUEUE_ID_LEN + 1];
    pid_t        dead;
    unsigned     part;
    int          i;

    pool = pst_create_pool(4096);
    dead = fork();
    if (dead == 0) {
        _exit(0);
    }
    ck_assert_int_eq(waitpid(dead, NULL, 0), dead);

    snprintf(name, sizeof(name), "%s/queue/A0", dir);
    ck_assert_int_eq(mkdir(name, 0750), 0);
    put("queue/A0/" OLD_ID ".state", "orphan", 6);
    snprintf(name, sizeof(name), "queue/A0/" OLD_ID ".state-new-%d-1",
             (int) dead);
    put(name, "dead", 4);
    snprintf(name, sizeof(name), "queue/A0/" OLD_ID ".state-new-%d-1",
             (int) getpid());
    put(name, "mine", 4);
    put("queue/A0/README", "not ours", 8);
    put("queue/zz", "not ours", 8);

    memset(&w, 0, sizeof(w));
    ck_assert_int_eq(pst_spool_walk(walked, &w), PST_OK);
    ck_assert_int_eq(w.n, 0);
    ck_assert(!exists("queue/A0", OLD_ID ".state"));
    snprintf(name, sizeof(name), "queue/A0/" OLD_ID ".state-new-%d-1",
             (int) dead);
    ck_assert(!exists(name, NULL));
    snprintf(name, sizeof(name), "queue/A0/" OLD_ID ".state-new-%d-1",
             (int) getpid());
    ck_assert(exists(name, NULL));
    ck_assert(exists("queue/A0", "README"));
    ck_assert(exists("queue", "zz"));

    /* part by part: every ID once, whatever its directory */
    for (i = 0; i < 5; i++) {
        inject(pool, id);
    }
    memset(&w, 0, sizeof(w));
    for (part = 0; pst_spool_walk_part(part, walked, &w) == PST_OK; part++)
    {
        /* nothing */
    }
    ck_assert_uint_eq(part, PST_SPOOL_WALK_PARTS);
    ck_assert_int_eq(w.n, 5);
    ck_assert_int_eq(walked_has(&w, (char *) id), 1);
    ck_assert_int_eq(pst_spool_walk_part(PST_SPOOL_WALK_PARTS, walked, &w),
                     PST_DONE);

    /* the callback stops the walk and its value comes back */
    for (i = 0; i < 3; i++) {
        inject(pool, id);
    }
    memset(&w, 0, sizeof(w));
    w.stop_after = 2;
    ck_assert_int_eq(pst_spool_walk(walked, &w), PST_DONE);
    ck_assert_int_eq(w.n, 2);

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_open_corrupt)
{
    pst_spool_msg_t  m;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char             name[128], from[PATH_MAX], to[PATH_MAX];
    u_char           id[PST_QUEUE_ID_LEN + 1];

    pool = pst_create_pool(4096);
    inject(pool, id);

    /* a damaged state (not a crash: from outside) */
    snprintf(name, sizeof(name), "queue/%.2s/%s.state", (char *) id + 16,
             (char *) id);
    put(name, "POSTERN-STATE 1\nid ", 19);
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_ERROR);
    ck_assert_str_eq(why, "truncated line");
    ck_assert_int_eq(m.fd, -1);

    ck_assert_int_eq(pst_spool_corrupt((char *) id, why), PST_OK);
    ck_assert(exists("corrupt", (char *) id));
    snprintf(name, sizeof(name), "%s.state", (char *) id);
    ck_assert(exists("corrupt", name));
    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_DECLINED);

    /* a queue file under the name of another message */
    inject(pool, id);
    ck_assert_int_eq(pst_spool_path(from, sizeof(from), (char *) id),
                     PST_OK);
    snprintf(to, sizeof(to), "%s/queue/%.2s/0000000000000000%.2s", dir,
             (char *) id + 16, (char *) id + 16);
    ck_assert_int_eq(rename(from, to), 0);
    snprintf(name, sizeof(name), "0000000000000000%.2s", (char *) id + 16);
    ck_assert_int_eq(pst_spool_msg_open(pool, name, &m, &why), PST_ERROR);
    ck_assert_str_eq(why, "envelope of another message");

    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_spool_msg(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("spool_msg");
    tc = tcase_create("spool_msg");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_path);
    tcase_add_test(tc, test_inject_open);
    tcase_add_test(tc, test_state_write);
    tcase_add_test(tc, test_remove);
    tcase_add_test(tc, test_release_and_fast_remove);
    tcase_add_test(tc, test_upgrade_in_place);
    tcase_add_test(tc, test_walk_tidies);
    tcase_add_test(tc, test_open_corrupt);
    suite_add_tcase(s, tc);

    return s;
}
