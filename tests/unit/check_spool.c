/*
 * check_spool.c -- the spool format (docs/SPOOL.md): queue file headers,
 * queue IDs, the envelope parser and the reference reader of queue files.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_spool.h"


START_TEST(test_header_round_trip)
{
    static const struct { off_t msg; size_t env; } cases[] = {
        { 0, 1 }, { 1, 40 }, { 123456789012LL, 512 },
        { 99999999999999999LL, 64 * 1024 * 1024 }
    };
    u_char  hdr[PST_SPOOL_HEADER_LEN];
    off_t   m;
    size_t  e, i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(hdr, 'x', sizeof(hdr));
        pst_spool_header(hdr, cases[i].msg, cases[i].env);
        ck_assert(memcmp(hdr, "POSTERN-SPOOL 3 ", 16) == 0);
        ck_assert_int_eq(hdr[PST_SPOOL_HEADER_LEN - 1], '\n');
        ck_assert_int_eq(pst_spool_parse_header(hdr, sizeof(hdr), &m, &e),
                         PST_OK);
        ck_assert_int_eq(m, cases[i].msg);
        ck_assert_uint_eq(e, cases[i].env);
    }
}
END_TEST


static const char  *bad_headers[] = {
    "POSTERN-SPOOL 1 00000000000000000001 00000000000000000001\n",
    "POSTERN-SPOOL 2 0000000000000000000x 00000000000000000001\n",
    "POSTERN-SPOOL 2 00000000000000000001-00000000000000000001\n",
    "POSTERN-SPOOL 2 00000000000000000001 00000000000000000001 ",
    /* an envelope cannot be empty, nor larger than 64 MiB */
    "POSTERN-SPOOL 2 00000000000000000001 00000000000000000000\n",
    "POSTERN-SPOOL 2 00000000000000000001 00000000000067108865\n",
    "postern-spool 2 00000000000000000001 00000000000000000001\n",
};


START_TEST(test_header_refused)
{
    const char  *h = bad_headers[_i];
    off_t        m;
    size_t       e;

    ck_assert_uint_eq(strlen(h), PST_SPOOL_HEADER_LEN);
    ck_assert_int_eq(pst_spool_parse_header((const u_char *) h, strlen(h),
                                            &m, &e), PST_ERROR);
    /* and a short buffer never reads past its end */
    ck_assert_int_eq(pst_spool_parse_header((const u_char *) h, 20, &m, &e),
                     PST_ERROR);
}
END_TEST


START_TEST(test_queue_ids)
{
    u_char  a[PST_QUEUE_ID_LEN + 1], b[PST_QUEUE_ID_LEN + 1];

    pst_spool_new_id(a);
    pst_spool_new_id(b);
    ck_assert_uint_eq(strlen((char *) a), PST_QUEUE_ID_LEN);
    ck_assert(pst_spool_valid_id(a, PST_QUEUE_ID_LEN));
    ck_assert(strcmp((char *) a, (char *) b) != 0);
    /* time ordered: the second is never smaller */
    ck_assert(strcmp((char *) a, (char *) b) < 0);

    /* one directory (the last two characters) for the IDs of a 4-second
     * window, so that a group commit fsyncs one directory; unique */
    {
        u_char  ids[1000][PST_QUEUE_ID_LEN + 1];
        time_t  s0, s1;
        long    us;
        int     i, k;

        for (i = 0; i < 1000; i++) {
            pst_spool_new_id(ids[i]);
        }
        for (i = 1; i < 1000; i++) {
            pst_spool_id_time(ids[i - 1], &s0, &us);
            pst_spool_id_time(ids[i], &s1, &us);
            if (s0 / 4 == s1 / 4) {
                ck_assert(memcmp(ids[i - 1] + 16, ids[i] + 16, 2) == 0);
            }
            for (k = 0; k < i; k++) {
                ck_assert(strcmp((char *) ids[k], (char *) ids[i]) != 0);
            }
        }
    }

    ck_assert(!pst_spool_valid_id((u_char *) "1LG6N7GTJFR01F6BA", 17));
    ck_assert(!pst_spool_valid_id((u_char *) "1LG6N7GTJFR01F6BAW", 18));
    ck_assert(!pst_spool_valid_id((u_char *) "1lg6n7gtjfr01f6ba0", 18));
    ck_assert(!pst_spool_valid_id((u_char *) "../../etc/passwd00", 18));
}
END_TEST


#define ENV_OK                                                               \
    "POSTERN-ENVELOPE 1\n"                                                   \
    "id 1LG6N7GTJFR01F6BA0\n"                                                \
    "arrival 1795382512.000000\n"                                            \
    "client-addr 127.0.0.1\n"                                                \
    "sender a+40b@x.test\n"                                                  \
    "future-key whatever\n"                                                  \
    "rcpt u@example.test notify=6 orcpt=rfc822;u@example.test"               \
    " state=pending\n"                                                       \
    "prepend X-A:+20b\n"                                                     \
    "end\n"


START_TEST(test_envelope_parse)
{
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    pst_str_t       *h;
    const char      *why = NULL;
    char             text[] = ENV_OK;

    pool = pst_create_pool(4096);
    ck_assert_int_eq(pst_envelope_parse(pool, (u_char *) text,
                                        sizeof(text) - 1, &env, &why),
                     PST_OK);
    ck_assert_str_eq((char *) env.id.data, "1LG6N7GTJFR01F6BA0");
    /* xtext decoded */
    ck_assert_str_eq((char *) env.sender.data, "a@b@x.test");
    ck_assert_uint_eq(env.rcpts->nelts, 1);
    r = env.rcpts->elts;
    ck_assert_str_eq((char *) r->addr.data, "u@example.test");
    ck_assert_uint_eq(r->notify, 6);
    ck_assert_str_eq((char *) r->orcpt.data, "rfc822;u@example.test");
    h = env.prepend->elts;
    ck_assert_str_eq((char *) h->data, "X-A: b");
    pst_destroy_pool(pool);
}
END_TEST


static const struct { const char *text; const char *why; } bad_envs[] = {
    { "POSTERN-ENVELOPE 3\nid 1LG6N7GTJFR01F6BA0\nend\n",
      "not a version 1 or 2 envelope" },
    { "POSTERN-ENVELOPE 1\nid 1LG6N7GTJFR01F6BA0\n"
      "rcpt u@example.test state=pending\n", "no \"end\" line (truncated)" },
    { "POSTERN-ENVELOPE 1\nid 1LG6N7GTJFR01F6BA0\n"
      "rcpt u@example.test state=pending", "truncated line" },
    { "POSTERN-ENVELOPE 1\nid 1LG6N7GTJFR01F6BA0\nend\n", "no recipients" },
    { "POSTERN-ENVELOPE 1\nid nope\nrcpt u@x state=pending\nend\n",
      "bad or missing id" },
    { "POSTERN-ENVELOPE 1\nid 1LG6N7GTJFR01F6BA0\nsender a+4\n"
      "rcpt u@x state=pending\nend\n", "bad xtext value" },
    { "POSTERN-ENVELOPE 1\nid 1LG6N7GTJFR01F6BA0\n"
      "rcpt u@x novalue\nend\n", "bad rcpt line" },
};


START_TEST(test_envelope_refused)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char            *text;

    pool = pst_create_pool(4096);
    text = strdup(bad_envs[_i].text);
    ck_assert_int_eq(pst_envelope_parse(pool, (u_char *) text, strlen(text),
                                        &env, &why), PST_ERROR);
    ck_assert_str_eq(why, bad_envs[_i].why);
    free(text);
    pst_destroy_pool(pool);
}
END_TEST


/* pst_spool_read() on files written the way store_spool writes them */
START_TEST(test_spool_read)
{
    static const char  msg[] = "Received: x\r\n\r\nhello\r\n";
    pst_envelope_t      env;
    pst_pool_t         *pool;
    const char         *why;
    char               *dir, *path;
    u_char              hdr[PST_SPOOL_HEADER_LEN];
    off_t               moff, mlen;
    FILE               *f;

    dir = tu_tmpdir();
    ck_assert(asprintf(&path, "%s/1LG6N7GTJFR01F6BA0", dir) > 0);
    pool = pst_create_pool(4096);

    pst_spool_header(hdr, sizeof(msg) - 1, sizeof(ENV_OK) - 1);
    f = fopen(path, "w");
    fwrite(hdr, 1, sizeof(hdr), f);
    fwrite(msg, 1, sizeof(msg) - 1, f);
    fwrite(ENV_OK, 1, sizeof(ENV_OK) - 1, f);
    fclose(f);

    ck_assert_int_eq(pst_spool_read(pool, path, &env, &moff, &mlen, &why),
                     PST_OK);
    ck_assert_int_eq(moff, PST_SPOOL_HEADER_LEN);
    ck_assert_int_eq(mlen, sizeof(msg) - 1);
    ck_assert_uint_eq(env.rcpts->nelts, 1);

    /* one byte short: truncated, whatever the envelope says */
    ck_assert_int_eq(truncate(path, PST_SPOOL_HEADER_LEN + sizeof(msg) - 1
                                    + sizeof(ENV_OK) - 2), 0);
    ck_assert_int_eq(pst_spool_read(pool, path, &env, &moff, &mlen, &why),
                     PST_ERROR);
    ck_assert_str_eq(why, "size does not match the header (truncated)");

    unlink(path);
    ck_assert_int_eq(pst_spool_read(pool, path, &env, &moff, &mlen, &why),
                     PST_DECLINED);

    free(path);
    tu_rmtree(dir);
    free(dir);
    pst_destroy_pool(pool);
}
END_TEST


/*
 * A corrupt header's message length near INT64_MAX: the size check
 * added it to the file's other lengths and overflowed (UBSan: signed
 * integer overflow in pst_spool_read; tests/fuzz/fuzz_spool.c).
 */
START_TEST(test_spool_read_huge_length)
{
    static const char  *hdrs[] = {
        "POSTERN-SPOOL 2 09223372036854775807 00000000000000000001\n",
        "POSTERN-SPOOL 2 09223372036854775750 00000000000000000001\n",
        "POSTERN-SPOOL 2 09223372036854775749 00000000000000000001\n",
    };
    pst_envelope_t      env;
    pst_pool_t         *pool;
    const char         *why;
    char               *dir, *path;
    off_t               moff, mlen;
    size_t              i;
    FILE               *f;

    dir = tu_tmpdir();
    ck_assert(asprintf(&path, "%s/1LG6N7GTJFR01F6BA0", dir) > 0);
    pool = pst_create_pool(4096);

    for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(hdrs[i], f);
        fputs("x", f);
        fclose(f);

        why = NULL;
        ck_assert_int_eq(pst_spool_read(pool, path, &env, &moff, &mlen,
                                        &why), PST_ERROR);
        ck_assert_str_eq(why, "size does not match the header (truncated)");
    }

    unlink(path);
    free(path);
    tu_rmtree(dir);
    free(dir);
    pst_destroy_pool(pool);
}
END_TEST


/*
 * The envelope parser takes counted bytes.  atoi() (notify=) and
 * strtod() (arrival) skip white space, "\n" included, and ran past the
 * end of an envelope that ended on such a value (ASan:
 * heap-buffer-overflow in pst_env_rcpt; tests/fuzz/fuzz_spool.c).
 * Each text goes into an allocation of exactly its length, so that
 * ASan (./configure --with-debug) sees any read past it.
 */
static const char  *overread_envs[] = {
    "POSTERN-ENVELOPE 1\nrcpt u notify=\n",
    "POSTERN-ENVELOPE 1\nrcpt u notify= \n",
    "POSTERN-ENVELOPE 1\narrival \n",
    "POSTERN-ENVELOPE 1\narrival\n",
};


START_TEST(test_envelope_counted)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why = NULL;
    size_t           n = strlen(overread_envs[_i]);
    u_char          *text;

    pool = pst_create_pool(4096);
    text = malloc(n);
    ck_assert_ptr_nonnull(text);
    memcpy(text, overread_envs[_i], n);

    ck_assert_int_eq(pst_envelope_parse(pool, text, n, &env, &why),
                     PST_ERROR);
    ck_assert_ptr_nonnull(why);

    free(text);
    pst_destroy_pool(pool);
}
END_TEST


/* notify= is a number of at most 8 bits, nothing else */
START_TEST(test_envelope_notify)
{
    static const struct { const char *v; int ok; unsigned n; } cases[] = {
        { "6", 1, 6 }, { "0", 1, 0 }, { "255", 1, 255 }, { "", 0, 0 },
        { "x", 0, 0 }, { "-1", 0, 0 }, { "256", 0, 0 }, { " 6", 0, 0 },
        { "99999999999999999999", 0, 0 },
    };
    pst_env_rcpt_t  *r;
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why;
    char            *text;
    size_t           i;
    int              rc;

    pool = pst_create_pool(4096);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert(asprintf(&text, "POSTERN-ENVELOPE 1\n"
                           "id 1LG6N7GTJFR01F6BA0\n"
                           "rcpt u@x notify=%s state=pending\nend\n",
                           cases[i].v) > 0);
        why = NULL;
        rc = pst_envelope_parse(pool, (u_char *) text, strlen(text), &env,
                                &why);
        ck_assert_msg(rc == (cases[i].ok ? PST_OK : PST_ERROR),
                      "notify=%s: %d", cases[i].v, rc);
        if (cases[i].ok) {
            r = env.rcpts->elts;
            ck_assert_uint_eq(r->notify, cases[i].n);
        } else {
            ck_assert_str_eq(why, "bad rcpt line");
        }
        free(text);
    }

    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_spool(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("spool");
    tc = tcase_create("format");
    tcase_add_test(tc, test_header_round_trip);
    tcase_add_loop_test(tc, test_header_refused, 0,
                        sizeof(bad_headers) / sizeof(bad_headers[0]));
    tcase_add_test(tc, test_queue_ids);
    tcase_add_test(tc, test_envelope_parse);
    tcase_add_loop_test(tc, test_envelope_refused, 0,
                        sizeof(bad_envs) / sizeof(bad_envs[0]));
    tcase_add_test(tc, test_spool_read);
    tcase_add_test(tc, test_spool_read_huge_length);
    tcase_add_loop_test(tc, test_envelope_counted, 0,
                        sizeof(overread_envs) / sizeof(overread_envs[0]));
    tcase_add_test(tc, test_envelope_notify);
    suite_add_tcase(s, tc);

    return s;
}
