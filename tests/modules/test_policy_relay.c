/*
 * test_policy_relay.c -- modules/policy_relay.c on the plugin test
 * harness (postern/test.h), as a plugin author tests a plugin: which
 * recipients it accepts (local_domains, relay_domains, relay_networks,
 * an authenticated client), the 550 5.7.1 it gives the others and the
 * routing tricks, protect_local_senders' 553 5.7.1 at MAIL, and its
 * configuration errors.  The harness accepts a recipient that no hook
 * decided, so a 250 here is policy_relay's only when the RCPT verdict
 * is ACCEPT.  tests/integration/test_policy_relay.py keeps what needs
 * the real server: the address parser's 501s, SMTPUTF8, real clients.
 * make modules-check (part of make unit).
 */

#include "mtest.h"

static const char  *relay_conf =
    "local_domains example.test;"
    "relay_domains partner.test;"
    "relay_networks 192.0.2.0/24 2001:db8::/32;";


/* a session of a client at addr (NULL: the harness's default, which is
 * 192.0.2.1: in relay_networks) up to MAIL */
static pst_test_t *
relay(const char *server, const char *addr, const char *sender)
{
    pst_test_t  *t = mtest_new(NULL, server, "policy_relay", NULL);

    mtest_mail(t, addr, sender);
    return t;
}


static void
accepted(pst_test_t *t, const char *rcpt)
{
    ck_assert_msg(pst_test_expect(pst_test_rcpt(t, rcpt), 250, NULL, NULL),
                  "%s", rcpt);
    ck_assert_msg(pst_test_verdict(t, PST_PHASE_RCPT) == PST_HOOK_ACCEPT,
                  "%s: not accepted by policy_relay", rcpt);
}


static void
denied(pst_test_t *t, const char *rcpt, const char *text)
{
    ck_assert_msg(pst_test_expect(pst_test_rcpt(t, rcpt), 550, "5.7.1",
                                  text), "%s", rcpt);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_REJECT);
}


START_TEST(test_our_domains)
{
    pst_test_t  *t = relay(relay_conf, "198.51.100.7", "a@client.test");

    accepted(t, "user@example.test");
    accepted(t, "USER@Example.TEST");
    accepted(t, "user@partner.test");
    accepted(t, "Postmaster");
    denied(t, "user@other.test", "<user@other.test>: Relay access denied");
    denied(t, "user@sub.example.test", NULL);
    denied(t, "user@example.test.other.test", NULL);
    denied(t, "user@[127.0.0.1]", NULL);
    ck_assert_uint_eq(pst_test_rcpt_count(t), 0);    /* nothing stored */
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "policy_relay: reject <user@other.test>:"
                                 " relay access denied"));
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "policy_relay: accept <user@example.test>:"
                                 " local_domains example.test"));
    pst_test_free(t);
}
END_TEST


START_TEST(test_routing_tricks)
{
    pst_test_t  *t = relay(relay_conf, "198.51.100.7", "a@client.test");

    denied(t, "user%other.test@example.test",
           "<user%other.test@example.test>: Relay access denied"
           " (routing in local part)");
    denied(t, "other.test!user@example.test", NULL);
    denied(t, "\"user@other.test\"@partner.test", NULL);
    accepted(t, "\"john\"@example.test");          /* quoted, harmless */
    pst_test_free(t);
}
END_TEST


START_TEST(test_relay_networks)
{
    pst_test_t  *t = relay(relay_conf, "192.0.2.77", "a@client.test");

    accepted(t, "user@other.test");
    accepted(t, "user%other.test@example.test");     /* may relay anyway */
    ck_assert_ptr_nonnull(strstr(pst_test_log(t),
                                 "relaying for relay_networks"
                                 " 192.0.2.0/24"));
    pst_test_free(t);

    t = relay(relay_conf, "2001:db8::25", "a@client.test");
    accepted(t, "user@other.test");
    pst_test_free(t);

    t = relay(relay_conf, "2001:db9::25", "a@client.test");
    denied(t, "user@other.test", NULL);
    pst_test_free(t);
}
END_TEST


/* a session of an authenticated client from outside up to MAIL */
static pst_test_t *
authenticated(const char *server)
{
    pst_test_t  *t = mtest_new(NULL, server, "policy_relay", NULL);

    pst_test_auth(t, "alice");
    mtest_mail(t, "198.51.100.7", "a@c.test");
    return t;
}


START_TEST(test_authenticated)
{
    /* relay_authenticated is on by default */
    pst_test_t  *t = authenticated("local_domains example.test;");

    accepted(t, "user@other.test");
    pst_test_free(t);

    t = authenticated("local_domains example.test; relay_authenticated off;");
    denied(t, "user@other.test", NULL);
    accepted(t, "user@example.test");
    pst_test_free(t);
}
END_TEST


START_TEST(test_nothing_configured)
{
    /* no list and no network: the default relays nothing (the server's
     * core would refuse what nobody accepted; here the refusal is the
     * module's own) */
    pst_test_t  *t = relay("", "192.0.2.1", "a@client.test");

    denied(t, "user@example.test", NULL);
    accepted(t, "postmaster");
    pst_test_free(t);
}
END_TEST


START_TEST(test_protect_local_senders)
{
    const char  *conf = "local_domains example.test;"
                        "relay_networks 192.0.2.0/24;"
                        "protect_local_senders on;";
    pst_test_t  *t = mtest_new(NULL, conf, "policy_relay", NULL);

    ck_assert_int_eq(pst_test_client(t, "198.51.100.7", NULL), PST_OK);
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "c.test"), 250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, "boss@Example.Test"), 553,
                              "5.7.1", "<boss@example.test>: Sender address"
                              " rejected: not logged in"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_REJECT);
    /* bounces and other domains pass */
    ck_assert(pst_test_expect(pst_test_mail(t, ""), 250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_command(t, "RSET"), 250, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_mail(t, "a@client.test"), 250, NULL,
                              NULL));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_CONTINUE);
    pst_test_free(t);

    /* from a client that may relay */
    t = relay(conf, "192.0.2.9", "boss@example.test");
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_CONTINUE);
    pst_test_free(t);
}
END_TEST


static void
config_error(const char *server, const char *what)
{
    mtest_config_error("policy_relay", NULL, server, what);
}


START_TEST(test_config_errors)
{
    config_error("relay_networks 192.0.2.0/33;",
                 "invalid network \"192.0.2.0/33\" in \"relay_networks\"");
    config_error("relay_networks example.test;", "invalid network");
    config_error("local_domains good.test \"example.test.\";",
                 "invalid domain \"example.test.\" in \"local_domains\"");
    config_error("local_domains xn--zz.test;", "invalid domain");
    config_error("relay_domains \"[1.2.3]\";",
                 "invalid domain \"[1.2.3]\" in \"relay_domains\"");
    config_error("relay_authenticated maybe;", "relay_authenticated");
    config_error("local_domains;", "local_domains");
}
END_TEST


MTEST_MAIN("policy_relay", test_our_domains, test_routing_tricks,
           test_relay_networks, test_authenticated, test_nothing_configured,
           test_protect_local_senders, test_config_errors)
