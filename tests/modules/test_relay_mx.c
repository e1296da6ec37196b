/*
 * test_relay_mx.c -- modules/relay_mx.c's router (and relay_smarthost's
 * beside it) on the plugin test
 * harness's queue side (postern/test.h): the answer is PENDING until
 * the scripted DNS answers on the fake clock, then the hops in
 * preference order; a null MX, NXDOMAIN, a lookup that never answers,
 * an address literal, a loop back to our own listener; a route asked
 * again cancels the one pending; the transport table's destinations
 * ("reject:0") as a queued message's recipients get them.
 * tests/unit/check_relay_mx.c has the parsers and the sort,
 * tests/integration/test_route_mx.py a real server with its DNS.
 * make modules-check (part of make unit).
 */

#include "mtest.h"


static pst_test_t *
mx(const char *main_conf)
{
    return mtest_queue_new(main_conf, "relay_mx", NULL);
}


START_TEST(test_pending_then_hops)
{
    pst_test_t              *t = mx("relay_mx_address_family ipv4;");
    const pst_test_route_t  *r;

    ck_assert_int_eq(pst_test_dns(t, "example.test", PST_DNS_MX, PST_DNS_OK,
                                  "20 mx2.example.test 10 mx1.example.test",
                                  200), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "mx1.example.test", PST_DNS_A,
                                  PST_DNS_OK, "192.0.2.1", 50), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "mx2.example.test", PST_DNS_A,
                                  PST_DNS_OK, "192.0.2.2 192.0.2.3", 0),
                     PST_OK);

    r = pst_test_route(t, "example.test");
    ck_assert_int_eq(r->pending, 1);
    pst_test_advance(t, 199);
    ck_assert_int_eq(r->pending, 1);
    pst_test_advance(t, 1);                     /* the MX answer */
    ck_assert_int_eq(r->pending, 1);
    ck_assert_uint_eq(pst_test_dns_asked(t, "mx1.example.test"), 1);
    pst_test_advance(t, 50);                    /* mx1's address */
    ck_assert_int_eq(r->pending, 0);
    ck_assert_int_eq(r->verdict, PST_HOOK_ACCEPT);
    ck_assert_uint_eq(r->nhops, 3);
    ck_assert_msg(strncmp(r->hops, "mx1.example.test[192.0.2.1]:25 "
                          "mx2.example.test[192.0.2.", 55) == 0, "%s",
                  r->hops);
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.2]:25"));
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.3]:25"));
    ck_assert_str_eq(r->local, "");
    pst_test_free(t);
}
END_TEST


START_TEST(test_failures)
{
    pst_test_t              *t = mx("relay_mx_dns_timeout 5s;");
    const pst_test_route_t  *r;

    ck_assert_int_eq(pst_test_dns(t, "null.test", PST_DNS_MX, PST_DNS_OK,
                                  "0 .", 0), PST_OK);
    r = pst_test_route(t, "null.test");
    ck_assert_int_eq(r->pending, 0);
    ck_assert_int_eq(r->verdict, PST_HOOK_REJECT);
    ck_assert_int_eq(r->code, 556);
    ck_assert_str_eq(r->ecode, "5.1.10");

    /* nobody scripted it: NXDOMAIN */
    r = pst_test_route(t, "nowhere.test");
    ck_assert_int_eq(r->verdict, PST_HOOK_REJECT);
    ck_assert_str_eq(r->ecode, "5.1.2");

    /* never answered: relay_mx_dns_timeout on the fake clock */
    ck_assert_int_eq(pst_test_dns(t, "slow.test", PST_DNS_MX, PST_DNS_OK,
                                  "10 mx.slow.test", -1), PST_OK);
    r = pst_test_route(t, "slow.test");
    pst_test_advance(t, 4999);
    ck_assert_int_eq(r->pending, 1);
    pst_test_advance(t, 1);
    ck_assert_int_eq(r->pending, 0);
    ck_assert_int_eq(r->verdict, PST_HOOK_TEMPFAIL);
    ck_assert_str_eq(r->ecode, "4.4.3");
    pst_test_free(t);
}
END_TEST


START_TEST(test_literal_and_loop)
{
    pst_test_t              *t = mx("relay_mx_port 2525;");
    const pst_test_route_t  *r;

    r = pst_test_route(t, "[192.0.2.9]");
    ck_assert_int_eq(r->verdict, PST_HOOK_ACCEPT);
    ck_assert_uint_eq(r->nhops, 1);
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.9]:2525"));

    /* the harness's server listens on 127.0.0.1:2525: that is us */
    ck_assert_int_eq(pst_test_dns(t, "loop.test", PST_DNS_MX, PST_DNS_OK,
                                  "10 mx.loop.test", 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "mx.loop.test", PST_DNS_A, PST_DNS_OK,
                                  "127.0.0.1", 0), PST_OK);
    r = pst_test_route(t, "loop.test");
    pst_test_run(t, 0);
    ck_assert_int_eq(r->pending, 0);
    ck_assert_int_eq(r->verdict, PST_HOOK_REJECT);
    ck_assert_str_eq(r->ecode, "5.4.6");
    pst_test_free(t);
}
END_TEST


START_TEST(test_route_again_cancels)
{
    pst_test_t              *t = mx(NULL);
    const pst_test_route_t  *r;

    ck_assert_int_eq(pst_test_dns(t, "a.test", PST_DNS_MX, PST_DNS_OK,
                                  "10 mx.a.test", 100), PST_OK);
    ck_assert_int_eq(pst_test_route(t, "a.test")->pending, 1);
    /* the second asks for [192.0.2.5]; a.test's answer never lands */
    r = pst_test_route(t, "[192.0.2.5]");
    ck_assert_int_eq(r->verdict, PST_HOOK_ACCEPT);
    pst_test_advance(t, 1000);
    ck_assert_uint_eq(r->nhops, 1);
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.5]:25"));
    ck_assert_uint_eq(pst_test_dns_asked(t, "mx.a.test"), 0);
    /* freed while one is pending: cancelled */
    ck_assert_int_eq(pst_test_route(t, "a.test")->pending, 1);
    pst_test_free(t);
}
END_TEST


START_TEST(test_transport_table)
{
    pst_test_t              *t;
    const pst_test_route_t  *r;

    t = mtest_queue_new("relay_host [192.0.2.50]:587;\n"
                        "relay_host_tls encrypt;\n"
                        "transport example.org reject 550 5.7.1 Not here;\n"
                        "transport .example.net mx [192.0.2.44];\n"
                        "transport example.com smarthost;",
                        "relay_mx", "relay_smarthost", NULL);
    ck_assert_int_eq(pst_test_queue_message(t, "a@client.test",
                         "b@example.org c@x.example.net d@example.com",
                         "Subject: s\n\nx\n"), PST_OK);
    ck_assert_str_eq(pst_test_queue_dest(t, 0), "reject:0");
    r = pst_test_route(t, pst_test_queue_dest(t, 0));
    ck_assert_int_eq(r->verdict, PST_HOOK_REJECT);
    ck_assert_int_eq(r->code, 550);
    ck_assert_str_eq(r->ecode, "5.7.1");
    ck_assert_str_eq(r->text, "Not here");

    r = pst_test_route(t, pst_test_queue_dest(t, 1));
    ck_assert_int_eq(r->verdict, PST_HOOK_ACCEPT);
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.44]:25"));

    /* the smarthost's own hosts, with its TLS policy */
    ck_assert_str_eq(pst_test_queue_dest(t, 2), "smarthost:");
    r = pst_test_route(t, pst_test_queue_dest(t, 2));
    ck_assert_int_eq(r->verdict, PST_HOOK_ACCEPT);
    ck_assert_ptr_nonnull(strstr(r->hops, "[192.0.2.50]:587"));
    ck_assert_int_eq(r->tls, PST_ROUTE_TLS_ENCRYPT);

    /* a transport nobody loaded */
    r = pst_test_route(t, "lmtp:");
    ck_assert_int_eq(r->verdict, -1);
    ck_assert_msg(strstr(r->text, "lmtp") != NULL, "%s", r->text);
    pst_test_free(t);
}
END_TEST


MTEST_MAIN("relay_mx", test_pending_then_hops, test_failures,
           test_literal_and_loop, test_route_again_cancels,
           test_transport_table)
