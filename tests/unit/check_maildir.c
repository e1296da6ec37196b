/*
 * check_maildir.c -- the parts of modules/deliver_maildir.c without I/O:
 * the maildir_path template's checks and base directory, and the
 * expansion of a recipient into its mailbox (lower case, quoting
 * undone, nothing that could leave its component).  The module's source
 * is compiled in here with its descriptor renamed; the deliveries
 * themselves are tested by test_maildir.py.
 */

#define postern_module  deliver_maildir_test_module
#include "../../modules/deliver_maildir.c"
#undef postern_module

#include "check_suites.h"


typedef struct {
    const char  *tmpl;
    const char  *base;          /* NULL: refused */
} tmpl_case_t;

static const tmpl_case_t  tmpl_cases[] = {
    { "/var/mail/%d/%u/Maildir", "/var/mail" },
    { "/var/mail/%u", "/var/mail" },
    { "/srv/%d-mail/%u", "/srv" },
    { "/%u", "/" },
    { "/home/%u/Maildir", "/home" },
    { "/srv/shared/Maildir", "/srv/shared" },
    { "/srv/100%%/%u", "/srv" },
    { "/srv/100%%", "/srv" },
    { "/srv/./%u", NULL },
    { "/srv/../%u", NULL },
    { "/srv/%u/..", NULL },
    { "/srv/%u/.", NULL },
    { "var/mail/%u", NULL },
    { "", NULL },
    { "/srv/%x", NULL },
    { "/srv/%", NULL },
    { "/srv/%U", NULL },
};


START_TEST(test_template)
{
    const tmpl_case_t  *tc = &tmpl_cases[_i];
    const char         *why = NULL;
    size_t              base = 0;
    int                 rc;

    rc = maildir_check_template((const u_char *) tc->tmpl,
                                strlen(tc->tmpl), &base, &why);
    if (tc->base == NULL) {
        ck_assert_msg(rc == PST_ERROR, "%s accepted", tc->tmpl);
        ck_assert_ptr_nonnull(why);
        return;
    }
    ck_assert_msg(rc == PST_OK, "%s: %s", tc->tmpl, why);
    ck_assert_msg(base == strlen(tc->base)
                  && memcmp(tc->tmpl, tc->base, base) == 0,
                  "%s: base %.*s", tc->tmpl, (int) base, tc->tmpl);
}
END_TEST


START_TEST(test_template_length)
{
    char         t[MAILDIR_PATH_MAX];
    const char  *why;
    size_t       base;

    memset(t, 'a', sizeof(t));
    t[0] = '/';
    ck_assert_int_eq(maildir_check_template((u_char *) t, sizeof(t) - 1,
                                            &base, &why), PST_ERROR);
}
END_TEST


typedef struct {
    const char  *tmpl;
    const char  *addr;
    const char  *path;          /* NULL: no mailbox (5xx) */
} expand_case_t;

static const expand_case_t  expand_cases[] = {
    { "/m/%d/%u/Maildir", "alice@example.com",
      "/m/example.com/alice/Maildir" },
    { "/m/%d/%u/Maildir", "Alice.B@Example.COM",
      "/m/example.com/alice.b/Maildir" },
    { "/m/%u", "a+tag@x.test", "/m/a+tag" },
    { "/m/100%%/%u", "bob@x.test", "/m/100%/bob" },
    { "/m/%u", "\"quoted name\"@x.test", "/m/quoted name" },
    { "/m/%u", "\"a\\\"b\"@x.test", "/m/a\"b" },
    { "/m/%u", "caf\xc3\xa9@x.test", "/m/caf\xc3\xa9" },
    { "/m/%d/%u", "a@[192.0.2.1]", "/m/[192.0.2.1]/a" },
    { "/m/%u.box", "a..b@x.test", "/m/a..b.box" },
    { "/m/%u", "a/b@x.test", NULL },
    { "/m/%u", "../x@x.test", NULL },
    { "/m/%u", ".hidden@x.test", NULL },
    { "/m/%u", "\".hidden\"@x.test", NULL },
    { "/m/%u", "\"..\"@x.test", NULL },
    { "/m/%u", "\"x/../../etc\"@x.test", NULL },
    { "/m/%u", "\"\"@x.test", NULL },
    { "/m/%u", "a\tb@x.test", NULL },
    { "/m/%u", "a\x7f" "b@x.test", NULL },
    { "/m/%d/%u", "postmaster", NULL },
    { "/m/%d/%u", "a@.x", NULL },
    { "/m/%u", "postmaster", "/m/postmaster" },
};


START_TEST(test_expand)
{
    const expand_case_t  *tc = &expand_cases[_i];
    pst_str_t             tmpl, addr;
    char                  out[256];
    const char           *why = NULL;
    int                   rc;

    tmpl.data = (u_char *) tc->tmpl;
    tmpl.len = strlen(tc->tmpl);
    addr.data = (u_char *) tc->addr;
    addr.len = strlen(tc->addr);
    rc = maildir_expand(&tmpl, &addr, out, sizeof(out), &why);
    if (tc->path == NULL) {
        ck_assert_msg(rc == PST_DECLINED, "%s -> %s", tc->addr, out);
        ck_assert_ptr_nonnull(why);
        return;
    }
    ck_assert_msg(rc == PST_OK, "%s: %s", tc->addr, why);
    ck_assert_str_eq(out, tc->path);
}
END_TEST


START_TEST(test_expand_too_long)
{
    pst_str_t    tmpl = { 6, (u_char *) "/m/%u/" };
    pst_str_t    addr;
    char         local[300], out[64];
    const char  *why = NULL;

    memset(local, 'a', sizeof(local));
    memcpy(local + 290, "@x.test", 8);
    addr.data = (u_char *) local;
    addr.len = strlen(local);
    ck_assert_int_eq(maildir_expand(&tmpl, &addr, out, sizeof(out), &why),
                     PST_DECLINED);
    ck_assert_ptr_nonnull(strstr(why, "too long"));
}
END_TEST


Suite *
suite_maildir(void)
{
    Suite  *s = suite_create("maildir");
    TCase  *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_template, 0,
                        sizeof(tmpl_cases) / sizeof(tmpl_cases[0]));
    tcase_add_test(tc, test_template_length);
    tcase_add_loop_test(tc, test_expand, 0,
                        sizeof(expand_cases) / sizeof(expand_cases[0]));
    tcase_add_test(tc, test_expand_too_long);
    suite_add_tcase(s, tc);

    return s;
}
