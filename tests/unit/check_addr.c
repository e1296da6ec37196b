/*
 * check_addr.c -- the address helpers of the public API shared by the
 * policy modules: pst_domain_normalize() (one comparable form for every
 * spelling of a domain) and CIDR lists (pst_conf_set_cidr_array_slot,
 * pst_cidr_match_list).
 */

#include "check_util.h"
#include "check_suites.h"


static const struct {
    const char  *in;
    const char  *out;      /* NULL: refused */
    int          idna;     /* needs IDNA support */
} domains[] = {
    { "example.test", "example.test", 0 },
    { "Example.TEST", "example.test", 0 },
    { "[192.0.2.1]", "[192.0.2.1]", 0 },
    { "[IPv6:2001:DB8:0:0::1]", "[ipv6:2001:db8::1]", 0 },
    { "[ipv6:::ffff:192.0.2.1]", "[ipv6:::ffff:192.0.2.1]", 0 },
    { "[192.0.2.256]", NULL, 0 },
    { "[192.0.2.1", NULL, 0 },
    { "[IPv6:nonsense]", NULL, 0 },
    { "", NULL, 0 },
    { "a..example.test", NULL, 0 },
    { ".example.test", NULL, 0 },
    { "..", NULL, 0 },
    { "bad domain.test", NULL, 0 },
    { "exa$mple.test", NULL, 0 },
    { "under_score.test", "under_score.test", 0 },
    { "b\xc3\xbc" "cher.test", "xn--bcher-kva.test", 1 },
    { "B\xc3\x9c" "CHER.test", "xn--bcher-kva.test", 1 },
    { "xn--bcher-kva.test", "xn--bcher-kva.test", 1 },
    { "xn--nonsense-.test", NULL, 1 },
};


START_TEST(test_domain_normalize)
{
    u_char  out[PST_DOMAIN_MAX + 1];
    int     k;

    if (domains[_i].idna && !pst_domain_idna()) {
        /* without IDNA a non-ASCII domain has no form at all */
        if (domains[_i].in[0] != 'x') {
            ck_assert_int_eq(pst_domain_normalize(
                (const u_char *) domains[_i].in, strlen(domains[_i].in),
                out, sizeof(out)), -1);
        }
        return;
    }

    k = pst_domain_normalize((const u_char *) domains[_i].in,
                             strlen(domains[_i].in), out, sizeof(out));

    if (domains[_i].out == NULL) {
        ck_assert_msg(k == -1, "%s: accepted as %s", domains[_i].in, out);
        return;
    }

    ck_assert_msg(k == (int) strlen(domains[_i].out), "%s: %d",
                  domains[_i].in, k);
    ck_assert_str_eq((char *) out, domains[_i].out);
}
END_TEST


START_TEST(test_domain_too_long)
{
    u_char  in[300], out[PST_DOMAIN_MAX + 1];

    memset(in, 'a', sizeof(in));
    ck_assert_int_eq(pst_domain_normalize(in, 256, out, sizeof(out)), -1);
    ck_assert_int_eq(pst_domain_normalize(in, 255, out, sizeof(out)), 255);
    /* an output buffer too small is refused, not overrun */
    ck_assert_int_eq(pst_domain_normalize(in, 10, out, 100), -1);
}
END_TEST


static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage  ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        ss.ss_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, text,
                         &((struct sockaddr_in6 *) &ss)->sin6_addr), 1);
    } else {
        ss.ss_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, text,
                         &((struct sockaddr_in *) &ss)->sin_addr), 1);
    }
    return ss;
}


START_TEST(test_cidr_list)
{
    pst_array_t             *list;
    pst_cidr_t              *c;
    pst_pool_t              *pool;
    struct sockaddr_storage  a;
    pst_str_t                r[] = { pst_string("192.0.2.0/24"),
                                     pst_string("2001:db8::/32"),
                                     pst_string("198.51.100.7") };
    size_t                   i;

    pool = pst_create_pool(4096);
    list = pst_array_create(pool, 1, sizeof(pst_cidr_t));
    for (i = 0; i < 3; i++) {
        c = pst_array_push(list);
        ck_assert_int_eq(pst_cidr_parse(&r[i], c), PST_OK);
    }

    a = addr("192.0.2.200");
    ck_assert(pst_cidr_match_list(list, (struct sockaddr *) &a));
    a = addr("192.0.3.1");
    ck_assert(!pst_cidr_match_list(list, (struct sockaddr *) &a));
    a = addr("198.51.100.7");
    ck_assert(pst_cidr_match_list(list, (struct sockaddr *) &a));
    a = addr("198.51.100.8");
    ck_assert(!pst_cidr_match_list(list, (struct sockaddr *) &a));
    a = addr("2001:db8:ffff::1");
    ck_assert(pst_cidr_match_list(list, (struct sockaddr *) &a));
    /* an IPv4-mapped client matches the IPv4 range */
    a = addr("::ffff:192.0.2.9");
    ck_assert(pst_cidr_match_list(list, (struct sockaddr *) &a));
    a = addr("2001:db9::1");
    ck_assert(!pst_cidr_match_list(list, (struct sockaddr *) &a));

    /* no list, or a list the configuration never set: no match */
    ck_assert(!pst_cidr_match_list(NULL, (struct sockaddr *) &a));
    ck_assert(!pst_cidr_match_list(PST_CONF_UNSET_PTR,
                                   (struct sockaddr *) &a));

    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_addr(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("addr");
    tc = tcase_create("addr");
    tcase_add_loop_test(tc, test_domain_normalize, 0,
                        sizeof(domains) / sizeof(domains[0]));
    tcase_add_test(tc, test_domain_too_long);
    tcase_add_test(tc, test_cidr_list);
    suite_add_tcase(s, tc);

    return s;
}
