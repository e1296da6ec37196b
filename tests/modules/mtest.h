/*
 * mtest.h -- what the shipped modules' tests on libpostern-test share
 * (tests/modules/test_MODULE.c, and the harness's own tests in
 * tests/harness/test_*.c): where the modules are, a harness with
 * modules loaded and configured (in a worker, or in the queue process),
 * a session up to MAIL, a log line, a refused configuration, and
 * main().  Each test file includes it once; the helpers are static,
 * and a file uses those it needs.
 */

#ifndef MTEST_H
#define MTEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <postern/test.h>

/* the Makefile says where the modules were built */
#ifndef MODULE_DIR
#define MODULE_DIR       "objs/modules"
#endif
#ifndef TEST_MODULE_DIR
#define TEST_MODULE_DIR  "objs/tests/modules"
#endif

#define MTEST_UNUSED     __attribute__((unused))


/* A module's file: a name ("policy_relay") is MODULE_DIR's, a path (with
 * a '/') as it is. */
MTEST_UNUSED static const char *
mtest_path(const char *module, char *buf, size_t size)
{
    if (strchr(module, '/') != NULL) {
        return module;
    }
    snprintf(buf, size, "%s/%s.so", MODULE_DIR, module);
    return buf;
}


/* A harness for a process of type proc with the modules of ap loaded
 * in order, configured with main and server; every step must succeed. */
MTEST_UNUSED static pst_test_t *
mtest_vnew(pst_proc_e proc, const char *main, const char *server,
    va_list ap)
{
    pst_test_t  *t = pst_test_new();
    const char  *m;
    char         path[4096];

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_process(t, proc), PST_OK);
    while ((m = va_arg(ap, const char *)) != NULL) {
        ck_assert_msg(pst_test_load(t, mtest_path(m, path, sizeof(path)))
                      == PST_OK, "cannot load %s", m);
    }
    ck_assert_msg(pst_test_config(t, main, server) == PST_OK, "%s",
                  pst_test_error(t));
    return t;
}


/* A harness with modules loaded in order (names or paths, then NULL),
 * configured with main and server (either may be NULL); every step must
 * succeed. */
MTEST_UNUSED static pst_test_t *
mtest_new(const char *main, const char *server, ...)
{
    pst_test_t  *t;
    va_list      ap;

    va_start(ap, server);
    t = mtest_vnew(PST_PROC_WORKER, main, server, ap);
    va_end(ap);
    return t;
}


/* The same in the queue process (queue events, routers): the modules'
 * init_process() gets PST_PROC_QUEUE. */
MTEST_UNUSED static pst_test_t *
mtest_queue_new(const char *main, ...)
{
    pst_test_t  *t;
    va_list      ap;

    va_start(ap, main);
    t = mtest_vnew(PST_PROC_QUEUE, main, NULL, ap);
    va_end(ap);
    return t;
}


/* A session of a client at addr (NULL: the harness's 192.0.2.1) up to
 * MAIL FROM:<sender>, each step answered 2xx. */
MTEST_UNUSED static void
mtest_mail(pst_test_t *t, const char *addr, const char *sender)
{
    if (addr != NULL) {
        ck_assert_int_eq(pst_test_client(t, addr, NULL), PST_OK);
    }
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, sender), 250, NULL, NULL));
}


/* The error log has this text. */
#define mtest_logged(t, text)                                                \
    ck_assert_msg(strstr(pst_test_log(t), text) != NULL,                     \
                  "not in the log: %s", text)


/* The configuration (main, server) is refused with what in the message,
 * module loaded. */
MTEST_UNUSED static void
mtest_config_error(const char *module, const char *main, const char *server,
    const char *what)
{
    pst_test_t  *t = pst_test_new();
    char         path[4096];

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pst_test_load(t, mtest_path(module, path,
                                                 sizeof(path))), PST_OK);
    ck_assert_msg(pst_test_config(t, main, server) == PST_ERROR,
                  "accepted: %s %s", main ? main : "", server ? server : "");
    ck_assert_msg(strstr(pst_test_error(t), what) != NULL,
                  "\"%s\" not in \"%s\"", what, pst_test_error(t));
    pst_test_free(t);
}


/* Run the tests (then NULL) as one suite; the exit status of main(). */
MTEST_UNUSED static int
mtest_run(const char *name, const TTest **tests)
{
    Suite    *s = suite_create(name);
    TCase    *tc = tcase_create(name);
    SRunner  *sr;
    int       failed;

    /* a loaded machine: the harness's real-time waits are short, but
     * threads (hashing) and set-up add up */
    tcase_set_timeout(tc, 60);
    for ( /* void */ ; *tests != NULL; tests++) {
        tcase_add_test(tc, *tests);
    }
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#define MTEST_MAIN(name, ...)                                                \
    int                                                                      \
    main(void)                                                               \
    {                                                                        \
        const TTest  *tests[] = { __VA_ARGS__, NULL };                       \
                                                                             \
        return mtest_run(name, tests);                                       \
    }

#endif /* MTEST_H */
