/*
 * check_relay_mx.c -- the parts of modules/relay_mx.c without I/O (MX
 * RDATA, names, order and shuffle) and the core's loop detection
 * (pst_route_own_addr_in).  The module's source is compiled in here
 * with its descriptor renamed, so its functions are called directly;
 * the lookups themselves are tested by test_route_mx.py.
 */

#define postern_module  relay_mx_test_module
#include "../../modules/relay_mx.c"
#undef postern_module

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_route.h"
#include "check_suites.h"


/* An answer of n MX records given as (pref, wire name) pairs. */
typedef struct {
    pst_dns_answer_t  a;
    pst_str_t         rd[8];
    u_char            buf[8][300];
} mx_answer_t;


static void
mx_add(mx_answer_t *m, int pref, const char *dotted)
{
    u_char      *p = m->buf[m->a.count];
    const char  *s = dotted, *dot;
    size_t       n, l;

    p[0] = (u_char) (pref >> 8);
    p[1] = (u_char) pref;
    n = 2;
    while (*s != '\0' && strcmp(s, ".") != 0) {
        dot = strchr(s, '.');
        l = dot ? (size_t) (dot - s) : strlen(s);
        p[n++] = (u_char) l;
        memcpy(p + n, s, l);
        n += l;
        s += l + (dot ? 1 : 0);
    }
    p[n++] = 0;

    m->rd[m->a.count].data = p;
    m->rd[m->a.count].len = n;
    m->a.count++;
    m->a.rdata = m->rd;
}


static void
mx_add_raw(mx_answer_t *m, const void *data, size_t len)
{
    memcpy(m->buf[m->a.count], data, len);
    m->rd[m->a.count].data = m->buf[m->a.count];
    m->rd[m->a.count].len = len;
    m->a.count++;
    m->a.rdata = m->rd;
}


START_TEST(test_valid_name)
{
    char  long_label[80], long_name[300];
    int   i;

    ck_assert(relay_mx_valid_name("mx1.example.test"));
    ck_assert(relay_mx_valid_name("a"));
    ck_assert(relay_mx_valid_name("_srv.x-y.test"));
    ck_assert(!relay_mx_valid_name(""));
    ck_assert(!relay_mx_valid_name("."));
    ck_assert(!relay_mx_valid_name("a..b"));
    ck_assert(!relay_mx_valid_name(".a"));
    ck_assert(!relay_mx_valid_name("a."));
    ck_assert(!relay_mx_valid_name("a b.test"));
    ck_assert(!relay_mx_valid_name("a\r\nb"));
    ck_assert(!relay_mx_valid_name("mx\xc3\xa9.test"));

    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    ck_assert(!relay_mx_valid_name(long_label));
    long_label[63] = '\0';
    ck_assert(relay_mx_valid_name(long_label));

    memset(long_name, 'a', 254);
    for (i = 50; i < 254; i += 50) {
        long_name[i] = '.';
    }
    long_name[254] = '\0';
    ck_assert(!relay_mx_valid_name(long_name));
    long_name[253] = '\0';
    ck_assert(relay_mx_valid_name(long_name));
}
END_TEST


START_TEST(test_parse_mx)
{
    relay_mx_host_t  hosts[RELAY_MX_MAX_HOSTS];
    mx_answer_t      m;
    pst_uint_t       n;

    memset(&m, 0, sizeof(m));
    mx_add(&m, 20, "mx2.dest.test");
    mx_add(&m, 10, "mx1.dest.test");
    mx_add(&m, 30, "MX1.dest.test");       /* duplicate: best pref kept */

    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, RELAY_MX_MAX_HOSTS, &n),
                     PST_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(hosts[0].name, "mx2.dest.test");
    ck_assert_int_eq(hosts[0].pref, 20);
    ck_assert_str_eq(hosts[1].name, "mx1.dest.test");
    ck_assert_int_eq(hosts[1].pref, 10);

    /* the cap */
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 1, &n), PST_OK);
    ck_assert_uint_eq(n, 1);

    /* preference 65535 is a number like any other */
    memset(&m, 0, sizeof(m));
    mx_add(&m, 65535, "far.test");
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 4, &n), PST_OK);
    ck_assert_int_eq(hosts[0].pref, 65535);
}
END_TEST


START_TEST(test_parse_null_mx)
{
    relay_mx_host_t  hosts[4];
    mx_answer_t      m;
    pst_uint_t       n;

    /* RFC 7505: one MX of preference 0 and exchange "." */
    memset(&m, 0, sizeof(m));
    mx_add(&m, 0, ".");
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 4, &n), PST_DONE);
    ck_assert_uint_eq(n, 0);

    /* a "." beside a real exchanger is ignored, not a null MX */
    mx_add(&m, 10, "mx.dest.test");
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 4, &n), PST_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(hosts[0].name, "mx.dest.test");
}
END_TEST


START_TEST(test_parse_malformed)
{
    static const u_char  short_rd[] = { 0, 10 };
    static const u_char  overrun[] = { 0, 10, 5, 'a', 'b', 0 };
    static const u_char  pointer[] = { 0, 10, 0xc0, 0x0c };
    static const u_char  no_end[] = { 0, 10, 2, 'm', 'x' };
    static const u_char  bad_char[] = { 0, 10, 3, 'a', '\n', 'b', 0 };
    relay_mx_host_t      hosts[4];
    mx_answer_t          m;
    pst_uint_t           n;

    memset(&m, 0, sizeof(m));
    mx_add_raw(&m, short_rd, sizeof(short_rd));
    mx_add_raw(&m, overrun, sizeof(overrun));
    mx_add_raw(&m, pointer, sizeof(pointer));
    mx_add_raw(&m, bad_char, sizeof(bad_char));
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 4, &n), PST_ERROR);
    ck_assert_uint_eq(n, 0);

    /* a name without its root label still reads as "mx" */
    mx_add_raw(&m, no_end, sizeof(no_end));
    mx_add(&m, 5, "good.test");
    ck_assert_int_eq(relay_mx_parse(&m.a, hosts, 4, &n), PST_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(hosts[0].name, "mx");
    ck_assert_str_eq(hosts[1].name, "good.test");
}
END_TEST


static void
hosts_set(relay_mx_host_t *h, const int *prefs, pst_uint_t n)
{
    pst_uint_t  i;

    memset(h, 0, n * sizeof(relay_mx_host_t));
    for (i = 0; i < n; i++) {
        h[i].pref = prefs[i];
        snprintf(h[i].name, sizeof(h[i].name), "%c", (int) ('a' + i));
    }
}


START_TEST(test_sort_order)
{
    static const int  prefs[] = { 30, 10, 20, 5, 65535, 0 };
    relay_mx_host_t   h[6];
    pst_uint_t        i;

    hosts_set(h, prefs, 6);
    relay_mx_sort(h, 6);
    for (i = 1; i < 6; i++) {
        ck_assert_int_lt(h[i - 1].pref, h[i].pref);
    }
    ck_assert_str_eq(h[0].name, "f");
    ck_assert_str_eq(h[5].name, "e");

    relay_mx_sort(h, 0);                   /* nothing to do, no crash */
    relay_mx_sort(h, 1);
    ck_assert_str_eq(h[0].name, "f");
}
END_TEST


START_TEST(test_sort_shuffles_equal)
{
    static const int  prefs[] = { 20, 10, 10, 10, 5 };
    relay_mx_host_t   h[5];
    int               seen[6] = { 0 }, k, i, perm;
    char              order[4];

    /* 600 sorts: every order of b, c, d appears, a and e never move */
    for (k = 0; k < 600; k++) {
        hosts_set(h, prefs, 5);
        relay_mx_sort(h, 5);
        ck_assert_str_eq(h[0].name, "e");
        ck_assert_str_eq(h[4].name, "a");
        for (i = 0; i < 3; i++) {
            order[i] = h[i + 1].name[0];
        }
        order[3] = '\0';
        perm = !strcmp(order, "bcd") ? 0 : !strcmp(order, "bdc") ? 1
               : !strcmp(order, "cbd") ? 2 : !strcmp(order, "cdb") ? 3
               : !strcmp(order, "dbc") ? 4 : !strcmp(order, "dcb") ? 5 : -1;
        ck_assert_int_ge(perm, 0);
        seen[perm]++;
    }

    /* each of the six expected 100 times; 40 is far below chance */
    for (i = 0; i < 6; i++) {
        ck_assert_int_gt(seen[i], 40);
    }
}
END_TEST


START_TEST(test_shuffle_addrs)
{
    u_char  a[5][16];
    int     first[5] = { 0 }, k, i, sum;

    for (k = 0; k < 500; k++) {
        memset(a, 0, sizeof(a));
        for (i = 0; i < 5; i++) {
            a[i][15] = (u_char) i;
        }
        relay_mx_shuffle_addrs(a, 5);
        sum = 0;
        for (i = 0; i < 5; i++) {
            sum |= 1 << a[i][15];
        }
        ck_assert_int_eq(sum, 0x1f);           /* a permutation */
        first[a[0][15]]++;
    }
    for (i = 0; i < 5; i++) {
        ck_assert_int_gt(first[i], 40);        /* expected 100 each */
    }

    relay_mx_shuffle_addrs(a, 0);
    relay_mx_shuffle_addrs(a, 1);
}
END_TEST


/* ------------------------------------------------------------------ */
/* loop detection                                                      */

static void
sa4(pst_sockaddr_t *sa, const char *addr, int port)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin.sin_family = AF_INET;
    sa->sin.sin_port = htons((in_port_t) port);
    ck_assert_int_eq(inet_pton(AF_INET, addr, &sa->sin.sin_addr), 1);
}


static void
sa6(pst_sockaddr_t *sa, const char *addr, int port)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin6.sin6_family = AF_INET6;
    sa->sin6.sin6_port = htons((in_port_t) port);
    ck_assert_int_eq(inet_pton(AF_INET6, addr, &sa->sin6.sin6_addr), 1);
}


static int
own4(const pst_listening_t *ls, pst_uint_t n, const pst_sockaddr_t *local,
    pst_uint_t nlocal, const char *addr, int port)
{
    pst_sockaddr_t  d;

    sa4(&d, addr, port);
    return pst_route_own_addr_in(&d.sa, ls, n, local, nlocal);
}


START_TEST(test_own_addr_exact)
{
    pst_listening_t  ls[2];
    pst_sockaddr_t   d;

    memset(ls, 0, sizeof(ls));
    sa4(&ls[0].sockaddr, "127.0.0.1", 2525);
    sa6(&ls[1].sockaddr, "::1", 2526);

    ck_assert(own4(ls, 2, NULL, 0, "127.0.0.1", 2525));
    /* another port, another loopback address: not us */
    ck_assert(!own4(ls, 2, NULL, 0, "127.0.0.1", 25));
    ck_assert(!own4(ls, 2, NULL, 0, "127.0.0.2", 2525));
    /* the IPv6 listener */
    sa6(&d, "::1", 2526);
    ck_assert(pst_route_own_addr_in(&d.sa, ls, 2, NULL, 0));
    sa6(&d, "::1", 2525);
    ck_assert(!pst_route_own_addr_in(&d.sa, ls, 2, NULL, 0));
    /* IPv4-mapped is the IPv4 address */
    sa6(&d, "::ffff:127.0.0.1", 2525);
    ck_assert(pst_route_own_addr_in(&d.sa, ls, 2, NULL, 0));
    sa6(&d, "::ffff:127.0.0.3", 2525);
    ck_assert(!pst_route_own_addr_in(&d.sa, ls, 2, NULL, 0));
    /* no listeners */
    ck_assert(!own4(ls, 0, NULL, 0, "127.0.0.1", 2525));
}
END_TEST


START_TEST(test_own_addr_wildcard)
{
    pst_listening_t  ls[2];
    pst_sockaddr_t   local[2], d;

    memset(ls, 0, sizeof(ls));
    sa4(&ls[0].sockaddr, "0.0.0.0", 25);
    sa6(&ls[1].sockaddr, "::", 587);
    sa4(&local[0], "192.0.2.10", 0);
    sa6(&local[1], "2001:db8::10", 0);

    /* every loopback address and our interfaces, on that port */
    ck_assert(own4(ls, 2, local, 2, "127.0.0.1", 25));
    ck_assert(own4(ls, 2, local, 2, "127.9.8.7", 25));
    ck_assert(own4(ls, 2, local, 2, "0.0.0.0", 25));
    ck_assert(own4(ls, 2, local, 2, "192.0.2.10", 25));
    ck_assert(!own4(ls, 2, local, 2, "192.0.2.11", 25));
    ck_assert(!own4(ls, 2, local, 2, "127.0.0.1", 26));
    /* the IPv6 wildcard does not take IPv4 (listeners are v6only) */
    ck_assert(!own4(ls, 2, local, 2, "127.0.0.1", 587));
    sa6(&d, "::1", 587);
    ck_assert(pst_route_own_addr_in(&d.sa, ls, 2, local, 2));
    sa6(&d, "2001:db8::10", 587);
    ck_assert(pst_route_own_addr_in(&d.sa, ls, 2, local, 2));
    sa6(&d, "2001:db8::11", 587);
    ck_assert(!pst_route_own_addr_in(&d.sa, ls, 2, local, 2));
}
END_TEST


Suite *
suite_relay_mx(void)
{
    Suite  *s = suite_create("relay_mx");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_valid_name);
    tcase_add_test(tc, test_parse_mx);
    tcase_add_test(tc, test_parse_null_mx);
    tcase_add_test(tc, test_parse_malformed);
    tcase_add_test(tc, test_sort_order);
    tcase_add_test(tc, test_sort_shuffles_equal);
    tcase_add_test(tc, test_shuffle_addrs);
    tcase_add_test(tc, test_own_addr_exact);
    tcase_add_test(tc, test_own_addr_wildcard);
    suite_add_tcase(s, tc);

    return s;
}
