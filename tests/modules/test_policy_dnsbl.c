/*
 * test_policy_dnsbl.c -- modules/policy_dnsbl.c on the plugin test
 * harness with scripted DNS: weighted block and allow lists against a
 * threshold (each zone asked once, all at connect), the refusal's
 * reply and what a refused client may still say, the tempfail action;
 * lookups that fail -- timeout, SERVFAIL, DNSSEC bogus -- counted as not
 * listed; exempt clients asking nothing; reverse DNS (ptr, fcrdns, IPv4
 * and IPv6, a failed lookup, a name the core confirmed); configuration
 * errors.  tests/integration/test_policy_dnsbl.py keeps what needs the
 * server: dnsmasq through libunbound, real clients, slow lists not
 * holding the worker, the core's own reverse lookup.
 * make modules-check (part of make unit).
 */

#include "mtest.h"

#include <arpa/inet.h>


static pst_test_t *
dnsbl(const char *server)
{
    return mtest_new(NULL, server, "policy_dnsbl", NULL);
}


/* The name of addr under zone (NULL: in-addr.arpa / ip6.arpa), as the
 * module asks it. */
static const char *
rname(const char *addr, const char *zone)
{
    static char          name[4][320];
    static int           k;
    struct sockaddr_in6  in6;
    struct sockaddr_in   in4;
    struct sockaddr     *sa;

    memset(&in4, 0, sizeof(in4));
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET, addr, &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        sa = (struct sockaddr *) &in4;
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
        in6.sin6_family = AF_INET6;
        sa = (struct sockaddr *) &in6;
    }
    k = (k + 1) % 4;
    ck_assert_int_eq(pst_dns_reverse_name(sa, zone, name[k],
                                          sizeof(name[k])), PST_OK);
    return name[k];
}


/* A list's answer for addr. */
static void
listed(pst_test_t *t, const char *addr, const char *zone, const char *a,
    int delay)
{
    ck_assert_int_eq(pst_test_dns(t, rname(addr, zone), PST_DNS_A,
                                  PST_DNS_OK, a, delay), PST_OK);
}


/* A new session from addr: the greeting (or the refusal). */
static const pst_test_reply_t *
from(pst_test_t *t, const char *addr)
{
    ck_assert_int_eq(pst_test_client(t, addr, NULL), PST_OK);
    return pst_test_connect(t);
}


START_TEST(test_weights_threshold_allowlist)
{
    pst_test_t  *t = dnsbl("dnsbl bl.test=127.0.0.2*2"
                           " \"bl.test=127.0.0.[10;11]*1\" other.test"
                           " fail.example*5;"
                           "dnswl wl.test*5; dnsbl_threshold 2;");

    listed(t, "198.51.100.2", "bl.test", "127.0.0.2", 0);
    listed(t, "198.51.100.3", "bl.test", "127.0.0.10", 0);
    listed(t, "198.51.100.3", "other.test", "127.0.0.1", 0);
    listed(t, "198.51.100.4", "bl.test", "127.0.0.2", 0);
    listed(t, "198.51.100.4", "wl.test", "127.0.0.3", 0);
    listed(t, "198.51.100.6", "bl.test", "127.0.0.11", 0);
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.5", "fail.example"),
                                  PST_DNS_A, PST_DNS_SERVFAIL, NULL, 0),
                     PST_OK);

    ck_assert(pst_test_expect(from(t, "198.51.100.2"), 554, "5.7.1",
                              "Service unavailable; client [198.51.100.2]"
                              " blocked using bl.test"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT), PST_HOOK_REJECT);
    /* a refused client may only QUIT (RFC 5321 3.1) */
    ck_assert_int_eq(pst_test_helo(t, "x.test")->code, 503);
    ck_assert_int_eq(pst_test_command(t, "QUIT")->code, 221);

    ck_assert_int_eq(from(t, "198.51.100.3")->code, 554);
    mtest_logged(t, "policy_dnsbl: reject client 198.51.100.3: score 2 >="
                 " dnsbl_threshold 2 (bl.test=127.0.0.[10;11]*1"
                 " other.test)");
    ck_assert(pst_test_expect(from(t, "198.51.100.4"), 220, NULL, NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_CONTINUE);
    mtest_logged(t, "policy_dnsbl: pass client 198.51.100.4: score -3 <"
                 " dnsbl_threshold 2 (bl.test=127.0.0.2*2 wl.test*5(allow))");
    ck_assert_int_eq(from(t, "198.51.100.5")->code, 220);
    mtest_logged(t, "policy_dnsbl: lookup of 5.100.51.198.fail.example"
                 " failed (error): counted as not listed");
    ck_assert_int_eq(from(t, "198.51.100.6")->code, 220);
    /* bl.test is in two entries and asked once a client */
    ck_assert_uint_eq(pst_test_dns_asked(t, rname("198.51.100.4",
                                                  "bl.test")), 1);
    pst_test_free(t);
}
END_TEST


START_TEST(test_parallel_lookups_and_tempfail)
{
    pst_test_t               *t = dnsbl("dnsbl bl.test other.test;"
                                        "dnsbl_action tempfail;");
    const pst_test_reply_t   *r;

    /* both lists asked at once: the greeting waits for the slower */
    listed(t, "198.51.100.2", "bl.test", "127.0.0.2", 200);
    listed(t, "198.51.100.2", "other.test", "127.0.0.2", 300);
    ck_assert(from(t, "198.51.100.2")->pending);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_PENDING);
    pst_test_advance(t, 299);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    r = pst_test_wait(t, 0);
    ck_assert(pst_test_expect(r, 421, "4.7.1", "Service unavailable; client"
                              " [198.51.100.2] blocked using bl.test, try"
                              " again later"));
    ck_assert(r->closed);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_CONNECT),
                     PST_HOOK_DISCONNECT);
    mtest_logged(t, "policy_dnsbl: tempfail client 198.51.100.2: score 2");
    pst_test_free(t);
}
END_TEST


START_TEST(test_failed_lookups_not_listed)
{
    pst_test_t  *t = dnsbl("dnsbl slow.test bad.test signed.test;"
                           "dnsbl_timeout 3s;");

    /* a list that never answers: the lookup times out, not listed */
    listed(t, "198.51.100.2", "slow.test", "127.0.0.2", -1);
    ck_assert(from(t, "198.51.100.2")->pending);
    pst_test_advance(t, 2999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 220, NULL, NULL));
    mtest_logged(t, "policy_dnsbl: lookup of 2.100.51.198.slow.test failed"
                 " (timeout): counted as not listed");

    /* SERVFAIL, and an answer whose DNSSEC validation failed */
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.3", "bad.test"),
                                  PST_DNS_A, PST_DNS_SERVFAIL, NULL, 0),
                     PST_OK);
    listed(t, "198.51.100.3", "signed.test", "127.0.0.2", 0);
    ck_assert_int_eq(pst_test_dns_dnssec(t, rname("198.51.100.3",
                                                  "signed.test"),
                                         PST_DNS_A, PST_TEST_BOGUS), PST_OK);
    ck_assert_int_eq(from(t, "198.51.100.3")->code, 220);
    mtest_logged(t, "lookup of 3.100.51.198.bad.test failed (error)");
    mtest_logged(t, "lookup of 3.100.51.198.signed.test failed (error)");

    /* the same listing validated is a listing */
    pst_test_free(t);
    t = dnsbl("dnsbl signed.test;");
    listed(t, "198.51.100.3", "signed.test", "127.0.0.2", 0);
    ck_assert_int_eq(pst_test_dns_dnssec(t, rname("198.51.100.3",
                                                  "signed.test"),
                                         PST_DNS_A, PST_TEST_SECURE), PST_OK);
    ck_assert_int_eq(from(t, "198.51.100.3")->code, 554);
    pst_test_free(t);
}
END_TEST


START_TEST(test_exempt)
{
    pst_test_t  *t = dnsbl("dnsbl bl.test; rdns_check fcrdns;"
                           "dnsbl_exempt 198.51.100.2/32 2001:db8::/32;");

    listed(t, "198.51.100.2", "bl.test", "127.0.0.2", 0);
    listed(t, "198.51.100.3", "bl.test", "127.0.0.2", 0);
    ck_assert_int_eq(from(t, "198.51.100.2")->code, 220);
    ck_assert_int_eq(from(t, "2001:db8::2")->code, 220);
    ck_assert_uint_eq(pst_test_dns_asked(t, rname("198.51.100.2",
                                                  "bl.test")), 0);
    ck_assert_int_eq(from(t, "198.51.100.3")->code, 554);
    pst_test_free(t);
}
END_TEST


START_TEST(test_fcrdns)
{
    pst_test_t  *t = dnsbl("rdns_check fcrdns;");

    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.5", NULL),
                                  PST_DNS_PTR, PST_DNS_OK, "good5.test", 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "good5.test", PST_DNS_A, PST_DNS_OK,
                                  "198.51.100.5", 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.6", NULL),
                                  PST_DNS_PTR, PST_DNS_OK, "liar6.test", 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "liar6.test", PST_DNS_A, PST_DNS_OK,
                                  "198.51.100.99", 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.8", NULL),
                                  PST_DNS_PTR, PST_DNS_SERVFAIL, NULL, 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.9", NULL),
                                  PST_DNS_PTR, PST_DNS_OK, "slow9.test", 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "slow9.test", PST_DNS_A, PST_DNS_OK,
                                  "198.51.100.9", -1), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, rname("2001:db8::5", NULL),
                                  PST_DNS_PTR, PST_DNS_OK, "good6.test", 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "good6.test", PST_DNS_AAAA, PST_DNS_OK,
                                  "2001:db8::5", 0), PST_OK);

    ck_assert_int_eq(from(t, "198.51.100.5")->code, 220);
    mtest_logged(t, "policy_dnsbl: rdns_check passed: good5.test");
    ck_assert_int_eq(from(t, "2001:db8::5")->code, 220);
    ck_assert(pst_test_expect(from(t, "198.51.100.6"), 554, "5.7.25",
                              "Client host rejected: cannot find your"
                              " hostname (reverse DNS does not match)"));
    mtest_logged(t, "rdns_check fcrdns: no PTR name resolves back to the"
                 " address");
    /* nothing scripted: NXDOMAIN, no PTR */
    ck_assert(pst_test_expect(from(t, "198.51.100.7"), 554, "5.7.25",
                              "Client host rejected: cannot find your"
                              " reverse hostname"));
    ck_assert(pst_test_expect(from(t, "198.51.100.8"), 421, "4.7.25",
                              "Client host rejected: cannot look up your"
                              " hostname, try again later"));
    /* a forward lookup that times out (dnsbl_timeout, 5 s) */
    ck_assert(from(t, "198.51.100.9")->pending);
    pst_test_advance(t, 5000);
    ck_assert_int_eq(pst_test_wait(t, 0)->code, 421);

    /* a name the core confirmed costs no lookup */
    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.10", NULL),
                                  PST_DNS_PTR, PST_DNS_NXDOMAIN, NULL, 0),
                     PST_OK);
    ck_assert_int_eq(pst_test_client(t, "198.51.100.10", "known.test"),
                     PST_OK);
    ck_assert_int_eq(pst_test_connect(t)->code, 220);
    ck_assert_uint_eq(pst_test_dns_asked(t, rname("198.51.100.10", NULL)),
                      0);
    ck_assert_int_eq(from(t, "198.51.100.10")->code, 554);
    ck_assert_uint_eq(pst_test_dns_asked(t, rname("198.51.100.10", NULL)),
                      1);
    pst_test_free(t);
}
END_TEST


START_TEST(test_ptr_only)
{
    pst_test_t  *t = dnsbl("rdns_check ptr;");

    ck_assert_int_eq(pst_test_dns(t, rname("198.51.100.6", NULL),
                                  PST_DNS_PTR, PST_DNS_OK, "liar6.test", 0),
                     PST_OK);
    ck_assert_int_eq(from(t, "198.51.100.6")->code, 220);
    ck_assert_uint_eq(pst_test_dns_asked(t, "liar6.test"), 0);
    ck_assert_int_eq(from(t, "198.51.100.7")->code, 554);
    pst_test_free(t);
}
END_TEST


START_TEST(test_config_errors)
{
    static const char  *bad[] = {
        "dnsbl bl.test=127.0.0;", "dnsbl bl.test=127.0.0.[5..2];",
        "dnsbl bl.test*x;", "dnsbl .bl.test;", "dnsbl bl.test=127.0.0.256;",
        "dnswl wl.test=1.2.3.[4,,5];", NULL
    };
    const char        **b;

    for (b = bad; *b != NULL; b++) {
        mtest_config_error("policy_dnsbl", NULL, *b, "invalid entry \"");
    }
    mtest_config_error("policy_dnsbl", NULL, "dnsbl bl.test*x;",
                       "invalid entry \"bl.test*x\" in \"dnsbl\"");
    mtest_config_error("policy_dnsbl", NULL, "dnsbl bl.test;"
                       " dnsbl_threshold 0;",
                       "dnsbl_threshold must be at least 1");
    mtest_config_error("policy_dnsbl", NULL, "rdns_check maybe;",
                       "rdns_check");
}
END_TEST


MTEST_MAIN("policy_dnsbl", test_weights_threshold_allowlist,
           test_parallel_lookups_and_tempfail, test_failed_lookups_not_listed,
           test_exempt, test_fcrdns, test_ptr_only, test_config_errors)
