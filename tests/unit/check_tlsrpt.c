/*
 * check_tlsrpt.c -- TLS reporting's pure parts (core/queue/pst_tlsrpt_json.c):
 * the rua of a "_smtp._tls" record, the report's JSON and its mail.
 */

#include "pst_core.h"
#include "pst_tlsrpt.h"
#include "check_suites.h"

#include <check.h>


START_TEST(test_tlsrpt_rua)
{
    char  out[64];

    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1; rua=mailto:a@b.example",
                                    out, sizeof(out)), PST_OK);
    ck_assert_str_eq(out, "a@b.example");
    /* the first mailto: after an https: one */
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1;rua=https://r.example/x,"
                                    "mailto:tls@r.example", out,
                                    sizeof(out)), PST_OK);
    ck_assert_str_eq(out, "tls@r.example");
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1; rua=https://r.example/x",
                                    out, sizeof(out)), PST_DECLINED);
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv2; rua=mailto:a@b.example",
                                    out, sizeof(out)), PST_DECLINED);
    ck_assert_int_eq(pst_tlsrpt_rua("v=spf1 -all", out, sizeof(out)),
                     PST_DECLINED);
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1; rua=mailto:nobody", out,
                                    sizeof(out)), PST_DECLINED);
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1; rua=mailto:a<b>@c.example",
                                    out, sizeof(out)), PST_DECLINED);
    ck_assert_int_eq(pst_tlsrpt_rua("v=TLSRPTv1; rua=mailto:"
                                    "a-very-long-local-part-indeed-it-is@"
                                    "and-a-long-domain.example", out, 16),
                     PST_DECLINED);
}
END_TEST


START_TEST(test_tlsrpt_json)
{
    pst_tlsrpt_dom_t   d;
    char              *j;
    u_char            *m;
    size_t             len;

    memset(&d, 0, sizeof(d));
    snprintf(d.domain, sizeof(d.domain), "example.com");
    d.type = PST_TLSRPT_STS;
    d.policy = (char *) "version: STSv1\nmode: enforce\nmx: \"q\"\\\n";
    d.mx = (char *) "mx.example.com\n";
    d.ok = 3;
    d.failed = 1;
    d.nfail = 1;
    snprintf(d.fail[0].result, sizeof(d.fail[0].result),
             "certificate-expired");
    snprintf(d.fail[0].mx, sizeof(d.fail[0].mx), "mx.example.com");
    d.fail[0].count = 1;

    j = pst_tlsrpt_json(&d, "org\x01", "c", "id-1", 0, 86399);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_nonnull(strstr(j, "\"organization-name\": \"org\\u0001\""));
    ck_assert_ptr_nonnull(strstr(j, "\"start-datetime\": "
                                    "\"1970-01-01T00:00:00Z\""));
    ck_assert_ptr_nonnull(strstr(j, "\"end-datetime\": "
                                    "\"1970-01-01T23:59:59Z\""));
    ck_assert_ptr_nonnull(strstr(j, "\"policy-string\": [\"version: STSv1\","
                                    " \"mode: enforce\", \"mx: \\\"q\\\"\\\\\"]"));
    ck_assert_ptr_nonnull(strstr(j, "\"mx-host\": [\"mx.example.com\"]"));
    ck_assert_ptr_nonnull(strstr(j, "\"total-successful-session-count\": 3"));
    ck_assert_ptr_nonnull(strstr(j, "\"result-type\": \"certificate-expired\","
                                    " \"failed-session-count\": 1"));
    ck_assert_ptr_null(strstr(j, "receiving-ip"));

    m = pst_tlsrpt_message(&d, j, "mx.postern.test", "tls@r.example", "id-1",
                           0, 86399, &len);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr((char *) m, "TLS-Report-Domain: "
                                             "example.com\r\n"));
    ck_assert_ptr_nonnull(strstr((char *) m, "report-type=\"tlsrpt\""));
    ck_assert_ptr_nonnull(strstr((char *) m, "application/tlsrpt+json"));
    ck_assert_uint_eq(len, strlen((char *) m));
    free(m);
    free(j);
}
END_TEST


Suite *
suite_tlsrpt(void)
{
    Suite  *s = suite_create("tlsrpt");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_tlsrpt_rua);
    tcase_add_test(tc, test_tlsrpt_json);
    suite_add_tcase(s, tc);
    return s;
}
