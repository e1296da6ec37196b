/*
 * test_webhook.c -- webhook.c's tests, with the plugin test harness's
 * queue side (postern/test.h) and Check.  The test plays the web
 * service: a listening socket on 127.0.0.1 in this process, read and
 * answered between turns of the harness's event loop (pst_test_run());
 * the queued message's events come from pst_test_qevent(), the
 * webhook's timeouts and retry delays from the fake clock
 * (pst_test_advance()).  make -C plugins check (plugins/README).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <check.h>

#include <postern/test.h>

#ifndef PLUGIN_SO
#define PLUGIN_SO  "./webhook.so"
#endif

#define TRIES  400                  /* turns of ~5 ms: 2 s at most */

static int   srv = -1;              /* the web service's listener */
static char  req[8192];             /* the last request read */


/* The harness, the webhook loaded, a listener it POSTs to. */
static pst_test_t *
webhook(const char *more)
{
    pst_test_t          *t = pst_test_new();
    struct sockaddr_in   sin;
    socklen_t            len = sizeof(sin);
    char                 conf[512];

    ck_assert_ptr_nonnull(t);
    srv = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(srv, (struct sockaddr *) &sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(srv, 8), 0);
    ck_assert_int_eq(getsockname(srv, (struct sockaddr *) &sin, &len), 0);
    snprintf(conf, sizeof(conf), "webhook_url http://127.0.0.1:%d/hook;\n%s",
             ntohs(sin.sin_port), more != NULL ? more : "");

    ck_assert_int_eq(pst_test_load(t, PLUGIN_SO), PST_OK);
    ck_assert_int_eq(pst_test_process(t, PST_PROC_QUEUE), PST_OK);
    ck_assert_msg(pst_test_config(t, conf, NULL) == PST_OK, "%s",
                  pst_test_error(t));
    return t;
}


static void
done(pst_test_t *t)
{
    pst_test_free(t);
    close(srv);
    srv = -1;
}


/* The next connection to the listener, or -1 when none came while the
 * loop turned (bounded: TRIES turns). */
static int
next_conn(pst_test_t *t, int tries)
{
    int  fd;

    while (tries-- > 0) {
        pst_test_run(t, 5);
        fd = accept(srv, NULL, NULL);
        if (fd != -1) {
            return fd;
        }
    }
    return -1;
}


/* Read one whole request (header and Content-Length body) into req. */
static void
read_request(pst_test_t *t, int fd)
{
    size_t       n = 0;
    ssize_t      k;
    const char  *body, *cl;
    int          tries = TRIES;

    req[0] = '\0';
    while (tries-- > 0 && n + 1 < sizeof(req)) {
        pst_test_run(t, 5);
        k = recv(fd, req + n, sizeof(req) - 1 - n, MSG_DONTWAIT);
        if (k > 0) {
            n += (size_t) k;
            req[n] = '\0';
        }
        body = strstr(req, "\r\n\r\n");
        cl = strstr(req, "Content-Length: ");
        if (body != NULL && cl != NULL
            && strlen(body + 4) >= (size_t) atoi(cl + 16))
        {
            return;
        }
    }
    ck_abort_msg("no whole request: [%s]", req);
}


/* Take the next request and answer it with status. */
static void
serve(pst_test_t *t, const char *status)
{
    char  answer[128];
    int   fd = next_conn(t, TRIES);

    ck_assert_msg(fd != -1, "no request came");
    read_request(t, fd);
    snprintf(answer, sizeof(answer), "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
             "\r\n", status);
    ck_assert(send(fd, answer, strlen(answer), MSG_NOSIGNAL) > 0);
    close(fd);
    pst_test_run(t, 20);            /* the webhook reads the answer */
}


START_TEST(test_posts_delivered_and_failed)
{
    pst_test_t                *t = webhook(NULL);
    const pst_test_qresult_t  *r;
    char                       id[64];

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
        "b@example.test c@example.net",
        "Subject: Hello \"you\"\nMessage-ID: <1@client.test>\n\nbody\n"),
        PST_OK);
    /* ENQUEUED: the summary is kept with the message */
    ck_assert_uint_eq(pst_test_queue_states(t), 1);

    r = pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, "2.0.0 Ok: queued");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->final, 0);
    serve(t, "200 OK");
    ck_assert_ptr_nonnull(strstr(req, "POST /hook HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "Content-Type: application/json"));
    snprintf(id, sizeof(id), "\"id\":\"%s\"", pst_test_queue_id(t));
    ck_assert_ptr_nonnull(strstr(req, id));
    ck_assert_ptr_nonnull(strstr(req, "{\"event\":\"delivered\","));
    ck_assert_ptr_nonnull(strstr(req, "\"sender\":\"a@client.test\","
                                      "\"rcpt\":\"b@example.test\","
                                      "\"code\":250,"
                                      "\"reply\":\"2.0.0 Ok: queued\","
                                      "\"attempts\":1,"
                                      "\"subject\":\"Hello \\\"you\\\"\","
                                      "\"message_id\":\"<1@client.test>\"}"));

    r = pst_test_qevent(t, PST_QEV_FAILED, 1, 550, "5.1.1 no such user");
    ck_assert_int_eq(r->final, 1);
    serve(t, "204 No Content");
    ck_assert_ptr_nonnull(strstr(req, "{\"event\":\"failed\","));
    ck_assert_ptr_nonnull(strstr(req, "\"rcpt\":\"c@example.net\","
                                      "\"code\":550,"));
    ck_assert_ptr_nonnull(strstr(req, "\"subject\":\"Hello \\\"you\\\"\""));
    ck_assert_ptr_null(strstr(pst_test_log(t), "webhook:"));

    /* the message leaves the queue: the core frees the summary */
    pst_test_queue_remove(t);
    ck_assert_uint_eq(pst_test_queue_states(t), 0);
    done(t);
}
END_TEST


START_TEST(test_summary_per_message)
{
    pst_test_t  *t = webhook(NULL);

    /* no Subject, a folded Message-ID */
    ck_assert_int_eq(pst_test_queue_message(t, "", "b@example.test",
        "Message-ID:\n <2@client.test>\nFrom: x@client.test\n\nhi\n"),
        PST_OK);
    pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, "ok");
    serve(t, "200 OK");
    ck_assert_ptr_nonnull(strstr(req, "\"sender\":\"\","));
    ck_assert_ptr_nonnull(strstr(req, "\"subject\":null,"
                                      "\"message_id\":\"<2@client.test>\""));

    /* another message: its own summary */
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
        "b@example.test", "Subject: second\n\nhi\n"), PST_OK);
    pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, "ok");
    serve(t, "200 OK");
    ck_assert_ptr_nonnull(strstr(req, "\"subject\":\"second\","
                                      "\"message_id\":null}"));
    done(t);
}
END_TEST


START_TEST(test_deferred_is_not_posted)
{
    pst_test_t                *t = webhook(NULL);
    const pst_test_qresult_t  *r;

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
        "b@example.test", "Subject: s\n\nhi\n"), PST_OK);
    r = pst_test_qevent(t, PST_QEV_DEFERRED, 0, 451, "4.7.1 later");
    ck_assert_int_eq(r->final, 0);
    ck_assert_int_eq(r->next_try, r->backoff);  /* not the webhook's */
    ck_assert_int_eq(next_conn(t, 10), -1);
    done(t);
}
END_TEST


START_TEST(test_retries_then_gives_up)
{
    pst_test_t  *t = webhook("webhook_retries 1;");

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
        "b@example.test", "Subject: s\n\nhi\n"), PST_OK);
    pst_test_qevent(t, PST_QEV_DELIVERED, 0, 250, "ok");
    serve(t, "503 Busy");
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "webhook: not a 2xx answer; again in 1 s"));

    /* the retry waits for the (fake) second */
    pst_test_advance(t, 999);
    ck_assert_int_eq(next_conn(t, 10), -1);
    pst_test_advance(t, 1);
    serve(t, "500 Oops");
    ck_assert_ptr_nonnull(strstr(req, "\"event\":\"delivered\""));
    ck_assert_ptr_nonnull(strstr(pst_test_log(t), "webhook: not a 2xx"
                                 " answer; given up after 2 attempts"));
    pst_test_advance(t, 60000);
    ck_assert_int_eq(next_conn(t, 10), -1);
    done(t);
}
END_TEST


START_TEST(test_timeout)
{
    pst_test_t  *t = webhook("webhook_timeout 2s;\nwebhook_retries 0;");
    int          fd;

    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
        "b@example.test", "Subject: s\n\nhi\n"), PST_OK);
    /* the event returns at once; the service takes the request and
     * never answers */
    pst_test_qevent(t, PST_QEV_FAILED, 0, 550, "no");
    fd = next_conn(t, TRIES);
    ck_assert_int_ne(fd, -1);
    read_request(t, fd);
    pst_test_advance(t, 1999);
    ck_assert_ptr_null(strstr(pst_test_log(t), "timed out"));
    pst_test_advance(t, 1);
    ck_assert_ptr_nonnull(strstr(pst_test_log(t), "webhook: timed out;"
                                 " given up after 1 attempts"));
    close(fd);
    done(t);
}
END_TEST


int
main(void)
{
    Suite    *s = suite_create("webhook");
    TCase    *tc = tcase_create("webhook");
    SRunner  *sr;
    int       failed;

    tcase_add_test(tc, test_posts_delivered_and_failed);
    tcase_add_test(tc, test_summary_per_message);
    tcase_add_test(tc, test_deferred_is_not_posted);
    tcase_add_test(tc, test_retries_then_gives_up);
    tcase_add_test(tc, test_timeout);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
