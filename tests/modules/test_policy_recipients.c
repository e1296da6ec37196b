/*
 * test_policy_recipients.c -- modules/policy_recipients.c on the plugin
 * test harness: recipient tables per domain (a file, lists, patterns,
 * catch-all, sub-addressing, quoting, case, UTF-8 and IDNA) and their
 * 550 5.1.1, table errors at configuration time; the sender checks
 * (null sender, FQDN) and sender_domain_check on scripted DNS (MX, A or
 * AAAA, null MX, NXDOMAIN, no record, SERVFAIL, a timeout on the fake
 * clock).  tests/integration/test_policy_recipients.py keeps what needs
 * the server: real clients, a 100,000-user file and its reload, the
 * domain check through dnsmasq.
 * make modules-check (part of make unit).
 */

#include "mtest.h"


/* A harness with policy_recipients, file (NULL: none) holding text in
 * its directory, and server as the configuration, which must be taken
 * when ok is set and refused when not. */
static pst_test_t *
harness(const char *server, const char *file, const char *text, int ok)
{
    pst_test_t  *t = pst_test_new();
    char         path[4096];
    FILE        *f;

    ck_assert_ptr_nonnull(t);
    if (file != NULL) {
        snprintf(path, sizeof(path), "%s/%s", pst_test_dir(t), file);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
    }
    ck_assert_int_eq(pst_test_load(t, MODULE_DIR "/policy_recipients.so"),
                     PST_OK);
    ck_assert_msg((pst_test_config(t, NULL, server) == PST_OK) == ok, "%s",
                  ok ? pst_test_error(t) : "accepted");
    return t;
}


static pst_test_t *
recipients(const char *server)
{
    return harness(server, NULL, NULL, 1);
}


/* RCPT TO:<rcpt> in a session up to MAIL: its code (a 550 checked). */
static int
rcpt(pst_test_t *t, const char *addr)
{
    const pst_test_reply_t  *r = pst_test_rcpt(t, addr);

    if (r->code == 550) {
        ck_assert_msg(strcmp(r->ecode, "5.1.1") == 0
                      && strstr(r->text, ": Recipient address rejected:"
                                " User unknown") != NULL, "%s", r->raw);
    }
    return r->code;
}


static const char  *users_txt =
    "# our users\nalice\n  Bob  \ncarol@EXAMPLE.test\n\ndave # the boss\n"
    "\tEve\r\n";


START_TEST(test_tables)
{
    static const struct {
        const char  *rcpt;
        int          code;
    } cases[] = {
        { "alice@example.test", 250 }, { "ALICE@example.test", 250 },
        { "bob@example.test", 250 }, { "carol@example.test", 250 },
        { "dave@example.test", 250 }, { "eve@example.test", 250 },
        { "extra@example.test", 250 }, { "\"alice\"@example.test", 250 },
        { "alice+news@example.test", 250 },
        { "alice-x-y@example.test", 250 },
        { "mallory@example.test", 550 }, { "alice.x@example.test", 550 },
        { "+alice@example.test", 550 },
        { "bob@list.test", 250 }, { "alice@LIST.test", 250 },
        { "carol@list.test", 550 },
        { "john.smith@re.test", 250 }, { "John.Smith@re.test", 250 },
        { "john@re.test", 550 }, { "postmaster@re.test", 250 },
        { "anything@any.test", 250 },
        { "whoever@other.test", 250 },           /* no table: not checked */
        { "Postmaster", 250 },
        { NULL, 0 }
    };
    pst_test_t  *t;
    int          i;

    t = harness("recipients example.test file users.txt;"
                "recipients example.test list extra;"
                "recipients list.test list alice bob@list.test;"
                "recipients re.test ~* \"^[a-z]+\\.[a-z]+$\";"
                "recipients re.test list postmaster;"
                "recipients any.test catch-all;"
                "recipients b\xc3\xbc" "cher.test list m\xc3\xbcller;"
                "recipients_delimiter \"+-\";", "users.txt", users_txt, 1);
    mtest_mail(t, NULL, "a@client.test SMTPUTF8");
    for (i = 0; cases[i].rcpt != NULL; i++) {
        ck_assert_msg(rcpt(t, cases[i].rcpt) == cases[i].code, "%s",
                      cases[i].rcpt);
    }
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_CONTINUE);
    ck_assert_int_eq(rcpt(t, "nobody@example.test"), 550);
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_RCPT), PST_HOOK_REJECT);
    mtest_logged(t, "policy_recipients: reject <mallory@example.test>:"
                 " unknown user in the table of example.test (6 users,"
                 " 0 patterns, case-insensitive)");
    /* UTF-8 local parts, an internationalised domain in either form */
    ck_assert_int_eq(rcpt(t, "m\xc3\xbcller@B\xc3\x9c" "CHER.test"), 250);
    ck_assert_int_eq(rcpt(t, "m\xc3\xbcller@xn--bcher-kva.test"), 250);
    ck_assert_int_eq(rcpt(t, "muller@b\xc3\xbc" "cher.test"), 550);
    pst_test_free(t);

    /* exact local parts */
    t = harness("recipients example.test file users.txt;"
                "recipients_case_insensitive off;", "users.txt", users_txt,
                1);
    mtest_mail(t, NULL, "a@client.test");
    ck_assert_int_eq(rcpt(t, "alice@example.test"), 250);
    ck_assert_int_eq(rcpt(t, "ALICE@example.test"), 550);
    ck_assert_int_eq(rcpt(t, "Bob@example.test"), 250);
    ck_assert_int_eq(rcpt(t, "bob@example.test"), 550);
    pst_test_free(t);
}
END_TEST


/* The configuration is refused with what in the message. */
static void
table_error(const char *server, const char *file, const char *text,
    const char *what)
{
    pst_test_t  *t = harness(server, file, text, 0);

    ck_assert_msg(strstr(pst_test_error(t), what) != NULL,
                  "\"%s\" not in \"%s\"", what, pst_test_error(t));
    pst_test_free(t);
}


START_TEST(test_table_errors)
{
    table_error("recipients example.test file missing.txt;", NULL, NULL,
                "cannot open recipient table \"");
    table_error("recipients example.test file u.txt;", "u.txt",
                "alice\nbad user\n", "u.txt:2: invalid user \"bad user\"");
    table_error("recipients example.test file u.txt;", "u.txt",
                "alice@other.test\n",
                "u.txt:1: \"alice@other.test\" is not in domain"
                " example.test");
    table_error("recipients example.test ~ \"(\";", NULL, NULL,
                "invalid regular expression \"(\" in \"recipients\":"
                " missing closing parenthesis at offset 1");
    table_error("recipients example.test files u.txt;", NULL, NULL,
                "invalid \"recipients\"");
    table_error("recipients example.test. list a;", NULL, NULL,
                "invalid domain \"example.test.\" in \"recipients\"");
}
END_TEST


/* MAIL FROM:<sender> in a new session: the reply. */
static const pst_test_reply_t *
mail(pst_test_t *t, const char *sender)
{
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    return pst_test_mail(t, sender);
}


START_TEST(test_sender_null_and_fqdn)
{
    pst_test_t  *t = recipients("");

    /* the defaults: <> and a bare domain are taken */
    ck_assert_int_eq(mail(t, "")->code, 250);
    ck_assert_int_eq(mail(t, "a@localhost")->code, 250);
    pst_test_free(t);

    t = recipients("sender_allow_null off; sender_require_fqdn on;");
    ck_assert(pst_test_expect(mail(t, ""), 550, "5.7.1",
                              "Null sender not accepted here"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_REJECT);
    ck_assert(pst_test_expect(mail(t, "a@localhost"), 504, "5.5.2",
                              "<a@localhost>: Sender address rejected:"
                              " need fully-qualified address"));
    ck_assert_int_eq(mail(t, "a@[192.0.2.1]")->code, 250);
    ck_assert_int_eq(mail(t, "a@mail.client.test")->code, 250);
    /* syntax is the core parser's */
    ck_assert(pst_test_expect(mail(t, "a@b@client.test"), 501, "5.1.7",
                              NULL));
    ck_assert(pst_test_expect(mail(t, "a@client..test"), 501, "5.1.7",
                              NULL));
    pst_test_free(t);
}
END_TEST


/* A domain's MX, A and AAAA answers (NULL: not scripted: NXDOMAIN). */
static void
domain(pst_test_t *t, const char *name, const char *mx, const char *a,
    const char *aaaa)
{
    if (mx != NULL) {
        ck_assert_int_eq(pst_test_dns(t, name, PST_DNS_MX, PST_DNS_OK,
                                      mx, 0), PST_OK);
    }
    if (a != NULL) {
        ck_assert_int_eq(pst_test_dns(t, name, PST_DNS_A, PST_DNS_OK, a, 0),
                         PST_OK);
    }
    if (aaaa != NULL) {
        ck_assert_int_eq(pst_test_dns(t, name, PST_DNS_AAAA, PST_DNS_OK,
                                      aaaa, 0), PST_OK);
    }
}


START_TEST(test_sender_domain_check)
{
    pst_test_t  *t = recipients("sender_domain_check on;"
                                "sender_dns_timeout 3s;");

    domain(t, "a-only.test", "", "192.0.2.9", "");
    domain(t, "v6-only.test", "", "", "2001:db8::9");
    domain(t, "mx.test", "10 mail.mx.test", "", "");
    domain(t, "xn--bcher-kva.test", "", "192.0.2.10", "");
    domain(t, "nullmx.test", "0 .", "", "");
    domain(t, "empty.test", "", "", "");
    ck_assert_int_eq(pst_test_dns(t, "broken.test", PST_DNS_MX,
                                  PST_DNS_SERVFAIL, NULL, 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "broken.test", PST_DNS_A,
                                  PST_DNS_SERVFAIL, NULL, 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "broken.test", PST_DNS_AAAA,
                                  PST_DNS_TIMEOUT, NULL, 0), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "slow.test", PST_DNS_MX, PST_DNS_OK,
                                  "10 mx.slow.test", -1), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "slow.test", PST_DNS_A, PST_DNS_OK,
                                  "192.0.2.11", -1), PST_OK);
    ck_assert_int_eq(pst_test_dns(t, "slow.test", PST_DNS_AAAA, PST_DNS_OK,
                                  "2001:db8::11", -1), PST_OK);

    ck_assert_int_eq(mail(t, "a@a-only.test")->code, 250);
    mtest_logged(t, "policy_recipients: sender domain a-only.test exists");
    ck_assert_int_eq(mail(t, "a@V6-only.test")->code, 250);
    ck_assert_int_eq(mail(t, "a@MX.test")->code, 250);
    ck_assert_int_eq(mail(t, "a@b\xc3\xbc" "cher.test SMTPUTF8")->code, 250);
    ck_assert_uint_eq(pst_test_dns_asked(t, "xn--bcher-kva.test"), 3);
    ck_assert_int_eq(mail(t, "")->code, 250);
    ck_assert_int_eq(mail(t, "a@[192.0.2.1]")->code, 250);

    ck_assert(pst_test_expect(mail(t, "a@missing.test"), 550, "5.1.8",
                              "Sender address rejected: Domain not found"));
    mtest_logged(t, "sender domain missing.test: sender_domain_check:"
                 " NXDOMAIN");
    ck_assert(pst_test_expect(mail(t, "a@nullmx.test"), 550, "5.7.27",
                              "Sender address rejected: domain nullmx.test"
                              " does not accept mail"));
    mtest_logged(t, "null MX (RFC 7505)");
    ck_assert(pst_test_expect(mail(t, "a@empty.test"), 550, "5.1.8", NULL));
    mtest_logged(t, "empty.test: sender_domain_check: no MX, A or AAAA"
                 " record");
    ck_assert(pst_test_expect(mail(t, "a@broken.test"), 451, "4.1.8",
                              "Sender address rejected: Domain lookup"
                              " failed, try again later"));
    ck_assert_int_eq(pst_test_verdict(t, PST_PHASE_MAIL), PST_HOOK_TEMPFAIL);

    /* lookups that never answer: 451 after sender_dns_timeout */
    ck_assert(mail(t, "a@slow.test")->pending);
    pst_test_advance(t, 2999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 451, "4.1.8", NULL));
    pst_test_free(t);
}
END_TEST


MTEST_MAIN("policy_recipients", test_tables, test_table_errors,
           test_sender_null_and_fqdn, test_sender_domain_check)
