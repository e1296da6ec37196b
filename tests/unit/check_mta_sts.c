/*
 * check_mta_sts.c -- MTA-STS's pure parts (core/queue/pst_mta_sts_parse.c):
 * the TXT record (RFC 8461 3.1), the policy file (3.2) and MX host
 * matching (4.1).
 */

#include "pst_core.h"
#include "pst_mta_sts.h"
#include "check_suites.h"

#include <check.h>


static int
parse(const char *text, pst_sts_policy_t *p)
{
    return pst_sts_parse((const u_char *) text, strlen(text), p);
}


START_TEST(test_sts_policy)
{
    pst_sts_policy_t  p;

    ck_assert_int_eq(parse("version: STSv1\r\nmode: enforce\r\n"
                           "mx: MX1.example.com\r\nmx: *.example.net\r\n"
                           "max_age: 604800\r\n", &p), PST_OK);
    ck_assert_int_eq(p.mode, PST_STS_ENFORCE);
    ck_assert_int_eq(p.max_age, 604800);
    ck_assert_uint_eq(p.nmx, 2);
    ck_assert_str_eq(p.mx[0], "mx1.example.com");
    ck_assert_str_eq(p.mx[1], "*.example.net");
    pst_sts_policy_free(&p);

    /* LF only, white space around values, unknown keys, key order */
    ck_assert_int_eq(parse("mx:  a.example\nmax_age:86400 \nfoo: bar\n"
                           "mode: testing\nversion: STSv1", &p), PST_OK);
    ck_assert_int_eq(p.mode, PST_STS_TESTING);
    pst_sts_policy_free(&p);

    /* mode none needs no mx; max_age capped at a year */
    ck_assert_int_eq(parse("version: STSv1\nmode: none\n"
                           "max_age: 99999999999\n", &p), PST_OK);
    ck_assert_int_eq(p.max_age, PST_STS_MAX_AGE);
    pst_sts_policy_free(&p);

    ck_assert_int_eq(parse("", &p), PST_ERROR);
    ck_assert_int_eq(parse("version: STSv2\nmode: enforce\nmx: a.b\n"
                           "max_age: 1\n", &p), PST_ERROR);
    ck_assert_int_eq(parse("version: STSv1\nmode: enforce\nmax_age: 1\n",
                           &p), PST_ERROR);         /* no mx */
    ck_assert_int_eq(parse("version: STSv1\nmode: strict\nmx: a.b\n"
                           "max_age: 1\n", &p), PST_ERROR);
    ck_assert_int_eq(parse("version: STSv1\nmode: enforce\nmx: a.b\n", &p),
                     PST_ERROR);                    /* no max_age */
    ck_assert_int_eq(parse("version: STSv1\nmode: enforce\nmx: a.b\n"
                           "max_age: -5\n", &p), PST_ERROR);
    ck_assert_int_eq(parse("version: STSv1\nmode: enforce\nmx: a b\n"
                           "max_age: 5\n", &p), PST_ERROR);
    ck_assert_int_eq(parse("version: STSv1\nmode enforce\nmx: a.b\n"
                           "max_age: 5\n", &p), PST_ERROR);   /* no colon */
}
END_TEST


START_TEST(test_sts_txt)
{
    char         id[33];
    const char  *one[] = { "v=STSv1; id=20160831085700Z;" };
    const char  *other[] = { "v=spf1 -all", "v=STSv1;id=abc" };
    const char  *two[] = { "v=STSv1; id=a", "v=STSv1; id=b" };
    const char  *noid[] = { "v=STSv1;" };
    const char  *bad[] = { "v=STSv1; id=a-b" };
    const char  *v2[] = { "v=STSv10; id=a" };

    ck_assert_int_eq(pst_sts_txt_id(one, 1, id, sizeof(id)), PST_OK);
    ck_assert_str_eq(id, "20160831085700Z");
    ck_assert_int_eq(pst_sts_txt_id(other, 2, id, sizeof(id)), PST_OK);
    ck_assert_str_eq(id, "abc");
    ck_assert_int_eq(pst_sts_txt_id(two, 2, id, sizeof(id)), PST_ERROR);
    ck_assert_int_eq(pst_sts_txt_id(noid, 1, id, sizeof(id)), PST_ERROR);
    ck_assert_int_eq(pst_sts_txt_id(bad, 1, id, sizeof(id)), PST_ERROR);
    ck_assert_int_eq(pst_sts_txt_id(v2, 1, id, sizeof(id)), PST_DECLINED);
    ck_assert_int_eq(pst_sts_txt_id(other, 1, id, sizeof(id)), PST_DECLINED);
}
END_TEST


START_TEST(test_sts_mx_match)
{
    pst_sts_policy_t  p;

    ck_assert_int_eq(parse("version: STSv1\nmode: enforce\n"
                           "mx: mail.example.com\nmx: *.example.net\n"
                           "max_age: 5\n", &p), PST_OK);
    ck_assert(pst_sts_mx_match(&p, "mail.example.com"));
    ck_assert(pst_sts_mx_match(&p, "MAIL.Example.com."));
    ck_assert(!pst_sts_mx_match(&p, "mail.example.com.evil"));
    ck_assert(!pst_sts_mx_match(&p, "xmail.example.com"));
    ck_assert(pst_sts_mx_match(&p, "mx1.example.net"));
    ck_assert(!pst_sts_mx_match(&p, "a.mx1.example.net"));  /* one label */
    ck_assert(!pst_sts_mx_match(&p, "example.net"));
    ck_assert(!pst_sts_mx_match(&p, ".example.net"));
    pst_sts_policy_free(&p);
}
END_TEST


Suite *
suite_mta_sts(void)
{
    Suite  *s = suite_create("mta_sts");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_sts_policy);
    tcase_add_test(tc, test_sts_txt);
    tcase_add_test(tc, test_sts_mx_match);
    suite_add_tcase(s, tc);
    return s;
}
