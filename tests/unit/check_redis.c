/*
 * check_redis.c -- the pure part of the Redis service
 * (core/redis/pst_redis_reply.c): redis_server's address forms, key
 * building and its escapes, script names, and replies as hiredis's own
 * reader parses them from RESP bytes.
 */

#include "pst_core.h"
#include "pst_redis.h"
#include "check_suites.h"

#include <check.h>
#include <hiredis/hiredis.h>


static const struct {
    const char  *spec;
    const char  *host;       /* NULL: refused */
    int          port;
} servers[] = {
    { "127.0.0.1:6380", "127.0.0.1", 6380 },
    { "127.0.0.1", "127.0.0.1", 6379 },
    { "[::1]:7000", "::1", 7000 },
    { "[2001:db8::5]", "2001:db8::5", 6379 },
    { "2001:db8::5", "2001:db8::5", 6379 },
    { "unix:/run/redis/redis.sock", "/run/redis/redis.sock", 0 },
    { "redis.example.test:6379", NULL, 0 },   /* a name: blocking DNS */
    { "localhost", NULL, 0 },
    { "127.0.0.1:", NULL, 0 },
    { "127.0.0.1:0", NULL, 0 },
    { "127.0.0.1:65536", NULL, 0 },
    { "127.0.0.1:63x", NULL, 0 },
    { "[::1", NULL, 0 },
    { "[::1]x", NULL, 0 },
    { "unix:relative.sock", NULL, 0 },
    { "", NULL, 0 },
};


START_TEST(test_redis_server_forms)
{
    pst_str_t    s;
    const char  *err;
    char         host[PST_REDIS_HOST_MAX];
    int          port, rc;
    size_t       i;

    for (i = 0; i < pst_nelems(servers); i++) {
        s.data = (u_char *) servers[i].spec;
        s.len = strlen(servers[i].spec);
        err = NULL;
        rc = pst_redis_parse_server(&s, 6379, host, sizeof(host), &port, &err);
        if (servers[i].host == NULL) {
            ck_assert_msg(rc == PST_ERROR && err != NULL, "%s accepted",
                          servers[i].spec);
            continue;
        }
        ck_assert_msg(rc == PST_OK, "%s: %s", servers[i].spec, err);
        ck_assert_str_eq(host, servers[i].host);
        ck_assert_int_eq(port, servers[i].port);
    }
}
END_TEST


static ssize_t
key(char *buf, size_t size, const char *prefix, const char *kind,
    const char *a, const char *b)
{
    pst_str_t  p, parts[2];
    pst_uint_t n = 0;

    p.data = (u_char *) prefix;
    p.len = strlen(prefix);
    if (a != NULL) {
        parts[n].data = (u_char *) a;
        parts[n++].len = strlen(a);
    }
    if (b != NULL) {
        parts[n].data = (u_char *) b;
        parts[n++].len = strlen(b);
    }
    return pst_redis_key_build(buf, size, &p, kind, parts, n);
}


START_TEST(test_redis_keys)
{
    char     buf[128];
    ssize_t  n;

    n = key(buf, sizeof(buf), "postern:", "limit:msg", "192.0.2.1", NULL);
    ck_assert_str_eq(buf, "postern:limit:msg:192.0.2.1");
    ck_assert_int_eq(n, (ssize_t) strlen(buf));

    /* a ':' inside a part is escaped: parts never run into each other */
    key(buf, sizeof(buf), "postern:", "grey", "a:b", "c");
    ck_assert_str_eq(buf, "postern:grey:a%3Ab:c");
    key(buf, sizeof(buf), "postern:", "grey", "a", "b:c");
    ck_assert_str_eq(buf, "postern:grey:a:b%3Ac");

    /* space, control bytes, '%' and 8-bit bytes as %XX */
    key(buf, sizeof(buf), "p:", "k", "\"a b\"@x%\r\xc3\xa9", NULL);
    ck_assert_str_eq(buf, "p:k:\"a%20b\"@x%25%0D%C3%A9");

    /* the prefix keeps its own ':' */
    key(buf, sizeof(buf), "site1:postern:", "auth", "::1", NULL);
    ck_assert_str_eq(buf, "site1:postern:auth:%3A%3A1");

    /* exactly fitting, and one byte short */
    n = key(buf, 12, "p:", "kind", "abcd", NULL);     /* 11 + NUL */
    ck_assert_int_eq(n, 11);
    ck_assert_str_eq(buf, "p:kind:abcd");
    ck_assert_int_eq(key(buf, 11, "p:", "kind", "abcd", NULL), -1);
    ck_assert_int_eq(key(buf, 12, "p:", "kind", "abc\x01", NULL), -1);
    ck_assert_int_eq(key(buf, 0, "p:", "kind", NULL, NULL), -1);
}
END_TEST


START_TEST(test_redis_sha1)
{
    char  sha[41];

    /* what SCRIPT LOAD "return 1" answers */
    ck_assert_int_eq(pst_redis_sha1_hex((const u_char *) "return 1", 8,
                                        sha), PST_OK);
    ck_assert_str_eq(sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}
END_TEST


/* One reply parsed by hiredis's reader from RESP bytes. */
static redisReply *
parse(const char *resp)
{
    redisReader  *r;
    void         *reply = NULL;

    r = redisReaderCreate();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(redisReaderFeed(r, resp, strlen(resp)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(r);
    return reply;
}


#define R(x)  ((const pst_redis_reply_t *) (const void *) (x))

START_TEST(test_redis_replies)
{
    redisReply  *r;
    pst_str_t    s;
    int64_t      v;
    char         err[16];

    r = parse(":42\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_INTEGER);
    ck_assert_int_eq(pst_redis_reply_integer(R(r), &v), PST_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(pst_redis_reply_string(R(r), &s), PST_ERROR);
    freeReplyObject(r);

    /* a number sent as a bulk string (GET of a counter) */
    r = parse("$16\r\n1733300000123456\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_STRING);
    ck_assert_int_eq(pst_redis_reply_integer(R(r), &v), PST_OK);
    ck_assert(v == 1733300000123456LL);
    freeReplyObject(r);

    r = parse("$3\r\n12x\r\n");
    ck_assert_int_eq(pst_redis_reply_integer(R(r), &v), PST_ERROR);
    ck_assert_int_eq(pst_redis_reply_string(R(r), &s), PST_OK);
    ck_assert_int_eq(s.len, 3);
    freeReplyObject(r);

    r = parse("$1\r\n-\r\n");
    ck_assert_int_eq(pst_redis_reply_integer(R(r), &v), PST_ERROR);
    freeReplyObject(r);

    r = parse("$-1\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_NIL);
    ck_assert_int_eq(pst_redis_reply_integer(R(r), &v), PST_ERROR);
    freeReplyObject(r);

    r = parse("+OK\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_STATUS);
    ck_assert_int_eq(pst_redis_reply_string(R(r), &s), PST_OK);
    ck_assert(s.len == 2 && memcmp(s.data, "OK", 2) == 0);
    ck_assert(!pst_redis_reply_error(R(r), err, sizeof(err)));
    freeReplyObject(r);

    /* the script's {allowed, wait} answer */
    r = parse("*2\r\n:0\r\n:1500\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_ARRAY);
    ck_assert_int_eq(pst_redis_reply_count(R(r)), 2);
    ck_assert_int_eq(pst_redis_reply_integer(
                         pst_redis_reply_element(R(r), 1), &v), PST_OK);
    ck_assert_int_eq(v, 1500);
    ck_assert_ptr_null(pst_redis_reply_element(R(r), 2));
    freeReplyObject(r);

    ck_assert_int_eq(pst_redis_reply_type(NULL), PST_REDIS_NIL);
    ck_assert_int_eq(pst_redis_reply_count(NULL), 0);
}
END_TEST


START_TEST(test_redis_errors)
{
    redisReply  *r;
    char         err[16];

    r = parse("-NOSCRIPT No matching script. Please use EVAL.\r\n");
    ck_assert_int_eq(pst_redis_reply_type(R(r)), PST_REDIS_ERROR_REPLY);
    ck_assert(pst_redis_reply_noscript(R(r)));
    /* bounded copy for the log */
    ck_assert(pst_redis_reply_error(R(r), err, sizeof(err)));
    ck_assert_str_eq(err, "NOSCRIPT No mat");
    freeReplyObject(r);

    r = parse("-WRONGPASS invalid username-password pair\r\n");
    ck_assert(!pst_redis_reply_noscript(R(r)));
    ck_assert(pst_redis_reply_error(R(r), err, sizeof(err)));
    freeReplyObject(r);

    r = parse("$8\r\nNOSCRIPT\r\n");            /* a string, not an error */
    ck_assert(!pst_redis_reply_noscript(R(r)));
    freeReplyObject(r);

    ck_assert(!pst_redis_reply_noscript(NULL));
}
END_TEST


START_TEST(test_redis_sentinel_port)
{
    pst_str_t    s = { 9, (u_char *) "127.0.0.1" };
    const char  *err;
    char         host[PST_REDIS_HOST_MAX], buf[64];
    int          port;

    /* redis_sentinel's default port */
    ck_assert_int_eq(pst_redis_parse_server(&s, PST_REDIS_SENTINEL_PORT,
                                            host, sizeof(host), &port,
                                            &err), PST_OK);
    ck_assert_int_eq(port, 26379);

    pst_redis_addr_text(buf, sizeof(buf), "2001:db8::1", 26379);
    ck_assert_str_eq(buf, "[2001:db8::1]:26379");
    pst_redis_addr_text(buf, sizeof(buf), "192.0.2.1", 6379);
    ck_assert_str_eq(buf, "192.0.2.1:6379");
    pst_redis_addr_text(buf, sizeof(buf), "/run/redis.sock", 0);
    ck_assert_str_eq(buf, "unix:/run/redis.sock");
}
END_TEST


/* ["IP", "PORT"] as SENTINEL get-master-addr-by-name sends it; ip may
 * hold a NUL (iplen). */
static redisReply *
addr_reply(const char *ip, size_t iplen, const char *port)
{
    redisReader  *r;
    void         *reply = NULL;
    char          buf[512];
    size_t        n;

    n = (size_t) snprintf(buf, sizeof(buf), "*2\r\n$%zu\r\n", iplen);
    memcpy(buf + n, ip, iplen);
    n += iplen;
    n += (size_t) snprintf(buf + n, sizeof(buf) - n, "\r\n$%zu\r\n%s\r\n",
                           strlen(port), port);

    r = redisReaderCreate();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(redisReaderFeed(r, buf, n), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(r);
    return reply;
}


static const struct {
    const char  *ip;
    const char  *port;
    int          ok;
} addrs[] = {
    { "127.0.0.1", "6380", 1 },
    { "2001:db8::5", "65535", 1 },
    { "::ffff:192.0.2.1", "1", 1 },
    { "redis.lan", "6379", 0 },         /* a name: a blocking lookup */
    { "localhost", "6379", 0 },
    { "127.0.0.1", "0", 0 },
    { "127.0.0.1", "65536", 0 },
    { "127.0.0.1", "006379", 0 },
    { "127.0.0.1", "63x", 0 },
    { "127.0.0.1", "-1", 0 },
    { "127.0.0.1", "", 0 },
    { "", "6379", 0 },
    { "127.0.0.1 ", "6379", 0 },
    { "fe80::1%eth0", "6379", 0 },
    { "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb", "1", 0 },
};


START_TEST(test_redis_master_addr)
{
    redisReply  *r;
    const char  *err;
    char         host[PST_REDIS_HOST_MAX];
    int          port, rc;
    size_t       i;

    for (i = 0; i < pst_nelems(addrs); i++) {
        r = addr_reply(addrs[i].ip, strlen(addrs[i].ip), addrs[i].port);
        err = NULL;
        port = -1;
        rc = pst_redis_master_addr(R(r), host, sizeof(host), &port, &err);
        if (addrs[i].ok) {
            ck_assert_msg(rc == PST_OK, "%s %s: %s", addrs[i].ip,
                          addrs[i].port, err);
            ck_assert_str_eq(host, addrs[i].ip);
            ck_assert_int_eq(port, atoi(addrs[i].port));
        } else {
            ck_assert_msg(rc == PST_ERROR && err != NULL, "%s %s accepted",
                          addrs[i].ip, addrs[i].port);
        }
        freeReplyObject(r);
    }

    /* a NUL inside the address */
    r = addr_reply("127.0.0.1\0x", 11, "6379");
    ck_assert_int_eq(pst_redis_master_addr(R(r), host, sizeof(host), &port,
                                           &err), PST_ERROR);
    freeReplyObject(r);

    /* the host buffer bounds the address */
    r = addr_reply("2001:db8::5", 11, "6379");
    ck_assert_int_eq(pst_redis_master_addr(R(r), host, 11, &port, &err),
                     PST_ERROR);
    ck_assert_int_eq(pst_redis_master_addr(R(r), host, 12, &port, &err),
                     PST_OK);
    freeReplyObject(r);

    /* the null reply: this sentinel does not know the name */
    r = parse("*-1\r\n");
    ck_assert_int_eq(pst_redis_master_addr(R(r), host, sizeof(host), &port,
                                           &err), PST_DECLINED);
    freeReplyObject(r);

    /* other shapes */
    {
        static const char  *bad[] = {
            "*1\r\n$9\r\n127.0.0.1\r\n",
            "*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n$1\r\nx\r\n",
            "*2\r\n:1\r\n$4\r\n6379\r\n",
            "*2\r\n$9\r\n127.0.0.1\r\n:6379\r\n",
            "*2\r\n*0\r\n$4\r\n6379\r\n",
            "*2\r\n+127.0.0.1\r\n+6379\r\n",
            "*0\r\n",
            "-ERR No such master with that name\r\n",
            "+OK\r\n",
            ":6379\r\n",
        };

        for (i = 0; i < pst_nelems(bad); i++) {
            r = parse(bad[i]);
            err = NULL;
            ck_assert_msg(pst_redis_master_addr(R(r), host, sizeof(host),
                                                &port, &err) == PST_ERROR
                          && err != NULL, "bad[%zu] accepted", i);
            freeReplyObject(r);
        }
    }
    ck_assert_int_eq(pst_redis_master_addr(NULL, host, sizeof(host), &port,
                                           &err), PST_ERROR);
}
END_TEST


START_TEST(test_redis_role)
{
    redisReply  *r;
    char         role[8];

    r = parse("*3\r\n$6\r\nmaster\r\n:3129\r\n*0\r\n");
    ck_assert(pst_redis_role_master(R(r), role, sizeof(role)));
    ck_assert_str_eq(role, "master");
    freeReplyObject(r);

    r = parse("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n"
              "$9\r\nconnected\r\n:3167\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    ck_assert_str_eq(role, "slave");
    freeReplyObject(r);

    r = parse("*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    ck_assert_str_eq(role, "sentine");          /* bounded */
    freeReplyObject(r);

    /* not "master" however close; a role printed safely */
    r = parse("*1\r\n$7\r\nmaster\n\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    ck_assert_str_eq(role, "master?");
    freeReplyObject(r);
    r = parse("*1\r\n$7\r\nmasters\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    freeReplyObject(r);
    r = parse("*0\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    ck_assert_str_eq(role, "?");
    freeReplyObject(r);
    r = parse("$6\r\nmaster\r\n");
    ck_assert(!pst_redis_role_master(R(r), role, sizeof(role)));
    freeReplyObject(r);
    ck_assert(!pst_redis_role_master(NULL, role, sizeof(role)));
}
END_TEST


/* A pub/sub push on channel with text, through pst_redis_switch_master
 * for "mymaster". */
static int
push(const char *channel, const char *text, char *host, int *port)
{
    static pst_str_t  name = { 8, (u_char *) "mymaster" };
    redisReply       *r;
    char              buf[512];
    int               rc;

    snprintf(buf, sizeof(buf), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n"
             "$%zu\r\n%s\r\n", strlen(channel), channel, strlen(text),
             text);
    r = parse(buf);
    rc = pst_redis_switch_master(R(r), &name, host, PST_REDIS_HOST_MAX,
                                 port);
    freeReplyObject(r);
    return rc;
}


static int
push_raw(const char *resp, char *host, int *port)
{
    static pst_str_t  name = { 8, (u_char *) "mymaster" };
    redisReply       *r;
    int               rc;

    r = parse(resp);
    rc = pst_redis_switch_master(R(r), &name, host, PST_REDIS_HOST_MAX,
                                 port);
    freeReplyObject(r);
    return rc;
}


#define SWITCH  "+switch-master"

START_TEST(test_redis_switch_master)
{
    char  host[PST_REDIS_HOST_MAX];
    int   port = 0;

    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 127.0.0.1 6380",
                          host, &port), PST_OK);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 6380);

    ck_assert_int_eq(push(SWITCH, "mymaster ::1 6379 2001:db8::7 26380",
                          host, &port), PST_OK);
    ck_assert_str_eq(host, "2001:db8::7");
    ck_assert_int_eq(port, 26380);

    /* another master, a name that is a prefix, another channel */
    ck_assert_int_eq(push(SWITCH, "mymaster2 127.0.0.1 1 127.0.0.1 2", host,
                          &port), PST_DECLINED);
    ck_assert_int_eq(push(SWITCH, "myma 127.0.0.1 1 127.0.0.1 2", host,
                          &port), PST_DECLINED);
    ck_assert_int_eq(push("+sdown", "master mymaster 127.0.0.1 6379", host,
                          &port), PST_DECLINED);
    /* the subscribe confirmation */
    ck_assert_int_eq(push_raw("*3\r\n$9\r\nsubscribe\r\n$14\r\n" SWITCH
                              "\r\n:1\r\n", host, &port), PST_DECLINED);

    /* malformed: fields, spaces, a name, a port */
    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 1.2.3.4", host,
                          &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 127.0.0.1 6380 ",
                          host, &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "mymaster  127.0.0.1 6379 127.0.0.1 6380",
                          host, &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 127.0.0.1 6380 x",
                          host, &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 redis.lan 6380",
                          host, &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "mymaster 127.0.0.1 6379 127.0.0.1 99999",
                          host, &port), PST_ERROR);
    ck_assert_int_eq(push(SWITCH, "", host, &port), PST_ERROR);
    ck_assert_int_eq(push_raw("*2\r\n$7\r\nmessage\r\n$14\r\n" SWITCH "\r\n",
                              host, &port), PST_ERROR);
    ck_assert_int_eq(push_raw("*3\r\n$7\r\nmessage\r\n$14\r\n" SWITCH
                              "\r\n:1\r\n", host, &port), PST_ERROR);
    ck_assert_int_eq(push_raw("*1\r\n:1\r\n", host, &port), PST_ERROR);
    ck_assert_int_eq(push_raw("*0\r\n", host, &port), PST_ERROR);
    ck_assert_int_eq(push_raw("-ERR x\r\n", host, &port), PST_ERROR);
    ck_assert_int_eq(pst_redis_switch_master(NULL, NULL, host, sizeof(host),
                                             &port), PST_ERROR);
}
END_TEST


START_TEST(test_redis_readonly)
{
    redisReply  *r;

    r = parse("-READONLY You can't write against a read only replica.\r\n");
    ck_assert(pst_redis_reply_readonly(R(r)));
    ck_assert(!pst_redis_reply_noscript(R(r)));
    freeReplyObject(r);
    r = parse("-ERR READONLY\r\n");
    ck_assert(!pst_redis_reply_readonly(R(r)));
    freeReplyObject(r);
    r = parse("+READONLY\r\n");
    ck_assert(!pst_redis_reply_readonly(R(r)));
    freeReplyObject(r);
    ck_assert(!pst_redis_reply_readonly(NULL));
}
END_TEST


Suite *
suite_redis(void)
{
    Suite  *s = suite_create("redis");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_redis_server_forms);
    tcase_add_test(tc, test_redis_keys);
    tcase_add_test(tc, test_redis_sha1);
    tcase_add_test(tc, test_redis_replies);
    tcase_add_test(tc, test_redis_errors);
    tcase_add_test(tc, test_redis_sentinel_port);
    tcase_add_test(tc, test_redis_master_addr);
    tcase_add_test(tc, test_redis_role);
    tcase_add_test(tc, test_redis_switch_master);
    tcase_add_test(tc, test_redis_readonly);
    suite_add_tcase(s, tc);
    return s;
}
