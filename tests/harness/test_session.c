/*
 * test_session.c -- libpostern-test's own tests, session side: what a
 * plugin's test can play and read besides commands -- STARTTLS in the
 * middle of a session, an AUTH exchange and the mechanism it leaves,
 * DNSSEC status of scripted answers, the stored envelope's parameters
 * after edits, a pending call resumed and given up by module_timeout,
 * one harness after another in a process, the second starting afresh.
 * The plugins are the test modules of tests/unit/modules (tls_facts,
 * dns_facts, test_verdict) and auth_file.  make harness-check (part of
 * make unit).
 */

#define _GNU_SOURCE

#include <dlfcn.h>

#include "mtest.h"

#define TLS_FACTS    TEST_MODULE_DIR "/tls_facts.so"
#define DNS_FACTS    TEST_MODULE_DIR "/dns_facts.so"
#define VERDICT      TEST_MODULE_DIR "/test_verdict.so"

/* postern passwd: alice/wonderland (sha512crypt) */
#define ALICE  "alice:$6$fgM6z/AP3FeFdG0M$6nwpm0xOtk3Ql4CXs5XCG27EKi4O6Vl3" \
               "gyivvSPQ3b0SHroMphus3VefQpPYlgIzmTlOMolWjSc4EuWxyg8nw1\n"


/* MAIL, RCPT and a message, stored: 250 to each. */
static void
send_message(pst_test_t *t, const char *sender, const char *rcpt,
    const char *message)
{
    ck_assert(pst_test_expect(pst_test_mail(t, sender), 250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, rcpt), 250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_data(t, message), 250, NULL, NULL));
}


/* ------------------------------------------------------------------ */
/* STARTTLS                                                            */

START_TEST(test_starttls_mid_session)
{
    pst_test_t              *t = mtest_new(NULL, PST_TEST_TLS_CONF,
                                           TLS_FACTS, NULL);
    const pst_test_reply_t  *r;
    const char              *facts;

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    r = pst_test_helo(t, "client.test");
    ck_assert_ptr_nonnull(strstr(r->raw, "250-STARTTLS"));
    /* a transaction in clear, then STARTTLS: forgotten, and EHLO too */
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_starttls(t, "mx.example.test"), 220,
                              "2.0.0", NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 503, NULL,
                              NULL));
    r = pst_test_helo(t, "client.test");
    ck_assert(pst_test_expect(r, 250, NULL, NULL));
    ck_assert_ptr_null(strstr(r->raw, "STARTTLS"));
    ck_assert(pst_test_expect(pst_test_starttls(t, NULL), 503, "5.5.1",
                              NULL));

    send_message(t, "a@client.test", "b@example.test", "Subject: s\n\nx\n");
    facts = pst_test_header(t, "X-Tls-Facts", 0);
    ck_assert_ptr_nonnull(facts);
    ck_assert_msg(strncmp(facts, "tls=1 version=TLSv1.3 cipher=TLS_", 33)
                  == 0 && strstr(facts, " sni=mx.example.test subject=-"
                                 " verified=0 fp=- user=- mech=-"), "%s",
                  facts);
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "Received", 0),
                                 "with ESMTPS id"));
    mtest_logged(t, "TLS established: TLSv1.3");
    pst_test_free(t);
}
END_TEST


START_TEST(test_starttls_not_offered)
{
    pst_test_t  *t = mtest_new(NULL, NULL, TLS_FACTS, NULL);

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_starttls(t, NULL), 502, "5.5.1",
                              NULL));
    /* still in clear, still usable */
    send_message(t, "a@client.test", "b@example.test", "Subject: s\n\nx\n");
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "X-Tls-Facts", 0),
                                 "tls=0 version=-"));
    pst_test_free(t);
}
END_TEST


/* ------------------------------------------------------------------ */
/* AUTH                                                                */

/* auth_file with alice's line in the scratch directory, tls_facts to
 * read what a later hook sees. */
static pst_test_t *
auth_harness(const char *server)
{
    pst_test_t  *t = pst_test_new();
    char         path[4096], conf[1024];
    FILE        *f;

    ck_assert_ptr_nonnull(t);
    snprintf(path, sizeof(path), "%s/users", pst_test_dir(t));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(ALICE, f);
    fclose(f);
    ck_assert_int_eq(pst_test_load(t, MODULE_DIR "/auth_file.so"), PST_OK);
    ck_assert_int_eq(pst_test_load(t, TLS_FACTS), PST_OK);
    snprintf(conf, sizeof(conf), "auth_users_file users;"
             " auth_failure_delay 2s; %s", server);
    ck_assert_msg(pst_test_config(t, NULL, conf) == PST_OK, "%s",
                  pst_test_error(t));
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    return t;
}


/* Wait (real time, bounded) until the backend's refusal is logged. */
static void
failed_logged(pst_test_t *t)
{
    int  i;

    for (i = 0; i < 100 && !strstr(pst_test_log(t), "authentication failed");
         i++)
    {
        (void) pst_test_wait(t, 50);
    }
    mtest_logged(t, "authentication failed");
}


START_TEST(test_auth_mechanism)
{
    pst_test_t  *t = auth_harness(PST_TEST_TLS_CONF);

    /* not in clear (the default), then over STARTTLS */
    ck_assert(pst_test_expect(pst_test_authenticate(t, "PLAIN", "alice",
                                                    "wonderland"),
                              538, "5.7.11", NULL));
    ck_assert(pst_test_expect(pst_test_starttls(t, NULL), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    /* a wrong password: checked on auth_file's threads (real time),
     * then answered 535 after the failure delay (the fake clock) */
    ck_assert(pst_test_authenticate(t, "LOGIN", "alice", "wrong")->pending);
    failed_logged(t);
    pst_test_advance(t, 1999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 535, "5.7.8", NULL));

    ck_assert(pst_test_authenticate(t, "LOGIN", "alice", "wonderland")
              != NULL);
    ck_assert(pst_test_expect(pst_test_wait(t, 5000), 235, "2.7.0", NULL));
    send_message(t, "alice@example.test", "b@example.test",
                 "Subject: s\n\nx\n");
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "X-Tls-Facts", 0),
                                 " user=alice mech=LOGIN"));
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "Received", 0),
                                 "with ESMTPSA id"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_auth_plain_in_clear)
{
    pst_test_t  *t = auth_harness("auth_allow_plaintext on;");

    ck_assert(pst_test_authenticate(t, "plain", "alice", "wonderland")
              != NULL);
    ck_assert(pst_test_expect(pst_test_wait(t, 5000), 235, NULL, NULL));
    send_message(t, "alice@example.test", "b@example.test",
                 "Subject: s\n\nx\n");
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "X-Tls-Facts", 0),
                                 "tls=0 "));
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "X-Tls-Facts", 0),
                                 " user=alice mech=PLAIN"));
    /* not a mechanism the harness plays */
    ck_assert_int_eq(pst_test_authenticate(t, "CRAM-MD5", "a", "b")->code,
                     0);
    pst_test_free(t);
}
END_TEST


/* ------------------------------------------------------------------ */
/* DNSSEC                                                              */

/* The facts dns_facts wrote for a lookup of www.example.test. */
static const char *
dns_facts(pst_test_t *t)
{
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    send_message(t, "a@client.test", "b@example.test", "Subject: s\n\nx\n");
    return pst_test_header(t, "X-DNS-Facts", 0);
}


START_TEST(test_dnssec_status)
{
    const char  *conf = "dns_facts_lookup www.example.test;";
    pst_test_t  *t = mtest_new(NULL, conf, DNS_FACTS, NULL);

    ck_assert_int_eq(pst_test_dns(t, "www.example.test", PST_DNS_A,
                                  PST_DNS_OK, "192.0.2.80", 0), PST_OK);
    ck_assert_str_eq(dns_facts(t), "name=www.example.test status=ok"
                     " secure=0 bogus=0 count=1 addr=192.0.2.80");
    pst_test_free(t);

    t = mtest_new(NULL, conf, DNS_FACTS, NULL);
    ck_assert_int_eq(pst_test_dns(t, "www.example.test", PST_DNS_A,
                                  PST_DNS_OK, "192.0.2.80", 0), PST_OK);
    ck_assert_int_eq(pst_test_dns_dnssec(t, "WWW.example.test", PST_DNS_A,
                                         PST_TEST_SECURE), PST_OK);
    ck_assert_int_eq(pst_test_dns_dnssec(t, "www.example.test",
                                         PST_DNS_AAAA, PST_TEST_SECURE),
                     PST_ERROR);            /* nothing scripted */
    ck_assert_str_eq(dns_facts(t), "name=www.example.test status=ok"
                     " secure=1 bogus=0 count=1 addr=192.0.2.80");
    pst_test_free(t);

    /* bogus: what the core makes of it, SERVFAIL without records */
    t = mtest_new(NULL, conf, DNS_FACTS, NULL);
    ck_assert_int_eq(pst_test_dns(t, "www.example.test", PST_DNS_A,
                                  PST_DNS_OK, "192.0.2.80", 0), PST_OK);
    ck_assert_int_eq(pst_test_dns_dnssec(t, "www.example.test", PST_DNS_A,
                                         PST_TEST_BOGUS), PST_OK);
    ck_assert_str_eq(dns_facts(t), "name=www.example.test status=servfail"
                     " secure=0 bogus=1 count=0 addr=-");
    pst_test_free(t);

    /* a secure denial of existence */
    t = mtest_new(NULL, conf, DNS_FACTS, NULL);
    ck_assert_int_eq(pst_test_dns(t, "www.example.test", PST_DNS_A,
                                  PST_DNS_NXDOMAIN, NULL, 0), PST_OK);
    ck_assert_int_eq(pst_test_dns_dnssec(t, "www.example.test", PST_DNS_A,
                                         PST_TEST_SECURE), PST_OK);
    ck_assert_str_eq(dns_facts(t), "name=www.example.test status=nxdomain"
                     " secure=1 bogus=0 count=0 addr=-");
    pst_test_free(t);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Edits and parameters; pending calls                                 */

/* A function test_verdict.so exports (it is loaded RTLD_LOCAL). */
static void *
verdict_sym(const char *name)
{
    void  *h = dlopen(VERDICT, RTLD_NOW | RTLD_NOLOAD);
    void  *f;

    ck_assert_ptr_nonnull(h);
    f = dlsym(h, name);
    ck_assert_ptr_nonnull(f);
    dlclose(h);
    return f;
}


START_TEST(test_envelope_edits_and_params)
{
    pst_test_t  *t = mtest_new(NULL, NULL, VERDICT, NULL);
    void        (*edit)(int);
    int         (*results)(void);
    const char  *msg;

    *(void **) &edit = verdict_sym("test_verdict_edit");
    *(void **) &results = verdict_sym("test_verdict_edit_results");

    /* as the client sent them */
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    ck_assert_ptr_null(pst_test_mail_params(t));
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test BODY=8BITMIME"
                                            " RET=HDRS ENVID=id+2B1"), 250,
                              NULL, NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "v@example.test"
                                            " NOTIFY=SUCCESS,DELAY"
                                            " ORCPT=rfc822;v+40example.test"),
                              250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "w@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_data(t, "Subject: s\n\nx\n"), 250,
                              NULL, NULL));
    ck_assert_str_eq(pst_test_mail_params(t),
                     "BODY=8BITMIME RET=HDRS ENVID=id+1");
    ck_assert_str_eq(pst_test_rcpt_params(t, 0), "NOTIFY=SUCCESS,DELAY"
                     " ORCPT=rfc822;v@example.test");
    ck_assert_str_eq(pst_test_rcpt_params(t, 1), "");
    ck_assert_ptr_null(pst_test_rcpt_params(t, 2));

    /* a MESSAGE hook's edits: sender, + x NOTIFY=NEVER, - u, fields */
    edit(1);
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "u@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "w@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_data(t, "Subject: old\nX-Drop: 1\n"
                                            "\nold body\n"), 250, NULL,
                              NULL));
    ck_assert_int_eq(results(), 0xfff);    /* and none at RCPT */
    ck_assert_str_eq(pst_test_sender(t), "new@client.test");
    ck_assert_str_eq(pst_test_mail_params(t), "");
    ck_assert_uint_eq(pst_test_rcpt_count(t), 2);
    ck_assert_str_eq(pst_test_rcpt_at(t, 0), "w@example.test");
    ck_assert_str_eq(pst_test_rcpt_at(t, 1), "x@example.test");
    ck_assert_str_eq(pst_test_rcpt_params(t, 1), "NOTIFY=NEVER");
    ck_assert_str_eq(pst_test_header(t, "Subject", 0), "changed");
    ck_assert_str_eq(pst_test_header(t, "X-First", 0), "top");
    ck_assert_str_eq(pst_test_header(t, "X-Last", 0), "a\r\n\tb");
    ck_assert_ptr_null(pst_test_header(t, "X-Drop", 0));
    msg = pst_test_message(t, NULL);
    ck_assert_msg(strncmp(msg, "X-First: top\r\nReceived: ", 24) == 0, "%s",
                  msg);
    ck_assert_ptr_nonnull(strstr(msg, "\r\n\r\nnew body\r\n"));
    ck_assert_ptr_null(strstr(msg, "old body"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_pending_resume_and_timeout)
{
    pst_test_t  *t = mtest_new("module_timeout test_verdict 3s accept;", NULL,
                               VERDICT, NULL);
    void        (*set)(int, int, int, const char *, const char *, int);

    *(void **) &set = verdict_sym("test_verdict_set");
    mtest_mail(t, NULL, "a@client.test");

    /* resumed from a 1 ms timer of the fake clock */
    set(PST_PHASE_RCPT, PST_HOOK_REJECT, 550, "5.1.1", "No such user", 1);
    ck_assert(pst_test_rcpt(t, "u@example.test")->pending);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_PENDING);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 550, "5.1.1",
                              "No such user"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_REJECT);

    /* never resumed: module_timeout ... accept skips the module */
    set(PST_PHASE_RCPT, PST_HOOK_REJECT, 550, "5.1.1", "No such user", 2);
    ck_assert(pst_test_rcpt(t, "u@example.test")->pending);
    pst_test_advance(t, 2999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 250, NULL, NULL));
    mtest_logged(t, "test_verdict");
    pst_test_free(t);
}
END_TEST


/* ------------------------------------------------------------------ */
/* One harness after another                                          */

START_TEST(test_next_harness_starts_afresh)
{
    const char  *conf = "limit_conn_rate 1/h;";
    pst_test_t  *t;
    int          i;

    /* a module's shared memory is the harness's, not the process's:
     * the second harness's bucket is full again */
    for (i = 0; i < 2; i++) {
        t = mtest_new(NULL, conf, "policy_limits", NULL);
        ck_assert_int_eq(pst_test_connect(t)->code, 220);
        ck_assert_int_eq(pst_test_connect(t)->code, 421);
        pst_test_free(t);
    }
}
END_TEST


MTEST_MAIN("harness_session", test_starttls_mid_session,
           test_starttls_not_offered, test_auth_mechanism,
           test_auth_plain_in_clear, test_dnssec_status,
           test_envelope_edits_and_params, test_pending_resume_and_timeout,
           test_next_harness_starts_afresh)
