/*
 * check_hostlist.c -- host lists (core/queue/pst_hostlist.c): what
 * relay_host and lmtp_host accept and refuse.
 */

#include "pst_core.h"
#include "check_suites.h"

#include <check.h>


static int
parses(const char *text)
{
    pst_str_t        s;
    pst_hostlist_t  *hl;
    char             err[200];

    s.data = (u_char *) text;
    s.len = strlen(text);
    err[0] = '\0';
    hl = pst_hostlist_parse(&s, 1, 25, err, sizeof(err));
    if (hl == NULL) {
        ck_assert_msg(strstr(err, "invalid host") != NULL
                      || strstr(err, "hosts") != NULL, "%s: %s", text, err);
        return 0;
    }
    pst_hostlist_free(hl);
    return 1;
}


START_TEST(test_hostlist_forms)
{
    ck_assert(parses("smtp.example.test"));
    ck_assert(parses("smtp.example.test:587"));
    ck_assert(parses("[192.0.2.1]"));
    ck_assert(parses("[192.0.2.1]:2525"));
    ck_assert(parses("192.0.2.1:25"));
    ck_assert(parses("[ipv6:2001:db8::1]:25"));
    ck_assert(parses("[2001:db8::1]"));
    ck_assert(parses("unix:/run/dovecot/lmtp"));

    ck_assert(!parses(""));
    ck_assert(!parses("smtp.example.test:"));
    ck_assert(!parses("smtp.example.test:0"));
    ck_assert(!parses("smtp.example.test:65536"));
    ck_assert(!parses("smtp.example.test:25x"));
    ck_assert(!parses("2001:db8::1"));          /* IPv6 needs brackets */
    ck_assert(!parses("[192.0.2.1"));
    ck_assert(!parses("[192.0.2.1]x"));
    ck_assert(!parses("unix:relative/path"));
    ck_assert(!parses("bad host"));
    ck_assert(!parses("a/b"));
}
END_TEST


START_TEST(test_hostlist_count)
{
    pst_str_t        s[17];
    pst_hostlist_t  *hl;
    char             err[200];
    int              i;

    for (i = 0; i < 17; i++) {
        s[i].data = (u_char *) "h.example.test";
        s[i].len = 14;
    }
    hl = pst_hostlist_parse(s, 16, 25, err, sizeof(err));
    ck_assert_ptr_nonnull(hl);
    pst_hostlist_free(hl);
    ck_assert_ptr_null(pst_hostlist_parse(s, 17, 25, err, sizeof(err)));
    ck_assert_ptr_null(pst_hostlist_parse(s, 0, 25, err, sizeof(err)));
}
END_TEST


Suite *
suite_hostlist(void)
{
    Suite  *s = suite_create("hostlist");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_hostlist_forms);
    tcase_add_test(tc, test_hostlist_count);
    suite_add_tcase(s, tc);
    return s;
}
