/*
 * check_envelope.c -- the envelope's writer and its inverse
 * (core/spool/pst_envelope.c): any envelope written and read back is equal,
 * per-recipient delivery state and awkward bytes included; the state
 * file alone applies all or nothing; version 1 envelopes still read.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_spool.h"


static uint32_t  rnd_state;


static uint32_t
rnd(void)
{
    /* xorshift: the same sequence on every run and machine */
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}


/* a string of 0..max random bytes (any byte: NUL, LF, space, '+', '=') */
static void
rnd_str(pst_pool_t *pool, pst_str_t *s, size_t max)
{
    size_t  i;

    s->len = max ? rnd() % (max + 1) : 0;
    s->data = pst_palloc(pool, s->len + 1);
    ck_assert_ptr_nonnull(s->data);
    for (i = 0; i < s->len; i++) {
        s->data[i] = (u_char) rnd();
    }
}


static void
rnd_rcpt(pst_pool_t *pool, pst_env_rcpt_t *r)
{
    memset(r, 0, sizeof(pst_env_rcpt_t));
    rnd_str(pool, &r->addr, 40);
    r->notify = rnd() & 0xf;
    rnd_str(pool, &r->orcpt, rnd() % 2 ? 30 : 0);
    r->state = (pst_rcpt_state_e) (rnd() % 4);
    r->attempts = rnd() % 3 ? rnd() % 20 : UINT_MAX;
    r->next_try = rnd() % 2 ? (time_t) rnd() * 7 : 0;
    r->last_try = rnd() % 2 ? (time_t) rnd() : 0;
    rnd_str(pool, &r->reply, rnd() % 2 ? 200 : 0);
    rnd_str(pool, &r->remote, rnd() % 2 ? 50 : 0);
    r->dsn_sent = rnd() & 0xff;
}


static void
rnd_envelope(pst_pool_t *pool, pst_envelope_t *env)
{
    pst_str_t  *fields[] = {
        &env->sender, &env->client_addr, &env->client_name, &env->helo,
        &env->protocol, &env->auth, &env->tls, &env->server,
        &env->auth_param, &env->envid, &env->ret, &env->body
    };
    pst_str_t  *h;
    u_char     *id;
    size_t      i, n;

    ck_assert_int_eq(pst_envelope_init(pool, env), PST_OK);

    id = pst_palloc(pool, PST_QUEUE_ID_LEN + 1);
    pst_spool_new_id(id);
    env->id.data = id;
    env->id.len = PST_QUEUE_ID_LEN;

    for (i = 0; i < pst_nelems(fields); i++) {
        rnd_str(pool, fields[i], rnd() % 3 ? 60 : 0);
    }
    env->smtputf8 = rnd() % 2;
    env->requiretls = rnd() % 2;
    env->hold = rnd() % 2;
    env->size = rnd() % 4 ? (int64_t) rnd() * 1000 : -1;
    env->arrival_sec = (time_t) rnd();
    env->arrival_usec = (long) (rnd() % 1000000);

    n = 1 + rnd() % 5;
    for (i = 0; i < n; i++) {
        rnd_rcpt(pool, pst_array_push(env->rcpts));
    }
    n = rnd() % 4;
    for (i = 0; i < n; i++) {
        h = pst_array_push(env->prepend);
        rnd_str(pool, h, 100);
    }
}


static int
str_eq(const pst_str_t *a, const pst_str_t *b)
{
    return a->len == b->len && (a->len == 0
                                || memcmp(a->data, b->data, a->len) == 0);
}


#define ck_str(a, b, what)                                                   \
    ck_assert_msg(str_eq(&(a), &(b)), "%s differs", what)


static void
ck_rcpt_state_eq(const pst_env_rcpt_t *a, const pst_env_rcpt_t *b)
{
    ck_assert_int_eq(a->state, b->state);
    ck_assert_uint_eq(a->attempts, b->attempts);
    ck_assert_int_eq(a->next_try, b->next_try);
    ck_assert_int_eq(a->last_try, b->last_try);
    ck_str(a->reply, b->reply, "reply");
    ck_str(a->remote, b->remote, "remote");
    ck_assert_uint_eq(a->dsn_sent, b->dsn_sent);
}


static void
ck_envelope_eq(const pst_envelope_t *a, const pst_envelope_t *b)
{
    pst_env_rcpt_t  *ra = a->rcpts->elts, *rb = b->rcpts->elts;
    pst_str_t       *ha = a->prepend->elts, *hb = b->prepend->elts;
    pst_uint_t       i;

    ck_str(a->id, b->id, "id");
    ck_str(a->sender, b->sender, "sender");
    ck_str(a->client_addr, b->client_addr, "client_addr");
    ck_str(a->client_name, b->client_name, "client_name");
    ck_str(a->helo, b->helo, "helo");
    ck_str(a->protocol, b->protocol, "protocol");
    ck_str(a->auth, b->auth, "auth");
    ck_str(a->tls, b->tls, "tls");
    ck_str(a->server, b->server, "server");
    ck_str(a->auth_param, b->auth_param, "auth_param");
    ck_str(a->envid, b->envid, "envid");
    ck_str(a->ret, b->ret, "ret");
    ck_str(a->body, b->body, "body");
    ck_assert_int_eq(a->smtputf8, b->smtputf8);
    ck_assert_int_eq(a->requiretls, b->requiretls);
    ck_assert_int_eq(a->size, b->size);
    ck_assert_int_eq(a->arrival_sec, b->arrival_sec);
    ck_assert_int_eq(a->arrival_usec, b->arrival_usec);
    ck_assert_int_eq(a->hold, b->hold);

    ck_assert_uint_eq(a->rcpts->nelts, b->rcpts->nelts);
    for (i = 0; i < a->rcpts->nelts; i++) {
        ck_str(ra[i].addr, rb[i].addr, "rcpt addr");
        ck_assert_uint_eq(ra[i].notify, rb[i].notify);
        ck_str(ra[i].orcpt, rb[i].orcpt, "orcpt");
        ck_rcpt_state_eq(&ra[i], &rb[i]);
    }

    ck_assert_uint_eq(a->prepend->nelts, b->prepend->nelts);
    for (i = 0; i < a->prepend->nelts; i++) {
        ck_str(ha[i], hb[i], "prepend");
    }
}


/* write, parse: equal; write again: the same bytes */
static void
round_trip(pst_pool_t *pool, const pst_envelope_t *env)
{
    pst_envelope_t   back;
    pst_buf_t       *b, *b2;
    const char      *why = NULL;

    ck_assert_int_eq(pst_envelope_write(env, &b), PST_OK);
    ck_assert_msg(pst_envelope_parse(pool, b->pos, pst_buf_size(b), &back,
                                     &why) == PST_OK, "parse: %s", why);
    ck_envelope_eq(env, &back);

    ck_assert_int_eq(pst_envelope_write(&back, &b2), PST_OK);
    ck_assert_uint_eq(pst_buf_size(b), pst_buf_size(b2));
    ck_assert(memcmp(b->pos, b2->pos, pst_buf_size(b)) == 0);

    pst_buf_destroy(b);
    pst_buf_destroy(b2);
}


START_TEST(test_round_trip_random)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    int              i;

    rnd_state = 0x2545f491;
    pool = pst_create_pool(16384);

    for (i = 0; i < 500; i++) {
        pst_reset_pool(pool);
        rnd_envelope(pool, &env);
        round_trip(pool, &env);
    }

    pst_destroy_pool(pool);
}
END_TEST


/* every byte value in every string, the extremes of every number */
START_TEST(test_round_trip_awkward)
{
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    pst_str_t       *h, all;
    u_char           bytes[256];
    int              i;

    pool = pst_create_pool(16384);
    for (i = 0; i < 256; i++) {
        bytes[i] = (u_char) i;
    }
    all.data = bytes;
    all.len = sizeof(bytes);

    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    pst_str_set(&env.id, "1LG6N7GTJFR01F6BA0");
    env.sender = env.client_addr = env.client_name = env.helo = all;
    env.protocol = env.auth = env.tls = env.server = env.auth_param = all;
    env.envid = env.ret = env.body = all;
    env.smtputf8 = env.requiretls = env.hold = 1;
    env.size = INT64_MAX;
    env.arrival_sec = (time_t) INT64_MAX;
    env.arrival_usec = 999999;

    r = pst_envelope_add_rcpt(pool, &env, bytes, sizeof(bytes));
    ck_assert_ptr_nonnull(r);
    r->notify = 0xff;
    r->orcpt = r->reply = r->remote = all;
    r->state = PST_RCPT_FAILED;
    r->attempts = UINT_MAX;
    r->next_try = r->last_try = (time_t) INT64_MAX;
    r->dsn_sent = 0xff;
    /* and one with nothing but an empty address */
    ck_assert_ptr_nonnull(pst_envelope_add_rcpt(pool, &env, bytes, 0));

    h = pst_array_push(env.prepend);
    *h = all;
    h = pst_array_push(env.prepend);
    h->len = 0;

    round_trip(pool, &env);

    /* the null sender, nothing optional */
    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    pst_str_set(&env.id, "1LG6N7GTJFR01F6BA0");
    ck_assert_ptr_nonnull(pst_envelope_add_rcpt(pool, &env,
                                                (u_char *) "a@b", 3));
    round_trip(pool, &env);

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_writer_refuses)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    pst_buf_t       *b = (pst_buf_t *) 1;

    pool = pst_create_pool(4096);
    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    pst_str_set(&env.id, "1LG6N7GTJFR01F6BA0");
    env.arrival_usec = 1000000;
    ck_assert_int_eq(pst_envelope_write(&env, &b), PST_ERROR);
    ck_assert_ptr_null(b);
    pst_destroy_pool(pool);
}
END_TEST


/* the state alone, applied to the envelope as committed */
START_TEST(test_state_round_trip)
{
    pst_envelope_t   env, base;
    pst_pool_t      *pool;
    pst_buf_t       *b, *s;
    const char      *why = NULL;
    int              i;

    rnd_state = 0x9e3779b9;
    pool = pst_create_pool(16384);

    for (i = 0; i < 300; i++) {
        pst_reset_pool(pool);
        rnd_envelope(pool, &env);

        ck_assert_int_eq(pst_envelope_write(&env, &b), PST_OK);
        ck_assert_int_eq(pst_envelope_write_state(&env, &s), PST_OK);

        /* as committed: every recipient pending, not held */
        ck_assert_int_eq(pst_envelope_parse(pool, b->pos, pst_buf_size(b),
                                            &base, &why), PST_OK);
        ck_assert_msg(pst_envelope_parse_state(pool, s->pos,
                                               pst_buf_size(s), &base,
                                               &why) == PST_OK,
                      "state: %s", why);
        ck_envelope_eq(&env, &base);

        pst_buf_destroy(b);
        pst_buf_destroy(s);
    }

    pst_destroy_pool(pool);
}
END_TEST


#define ENV_TWO                                                              \
    "POSTERN-ENVELOPE 2\nid 1LG6N7GTJFR01F6BA0\nsender \n"                   \
    "rcpt a@x notify=0 state=pending\nrcpt b@x notify=0 state=pending\n"     \
    "end\n"

static const struct { const char *text; const char *why; } bad_states[] = {
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA1\n"
      "rcpt a@x state=failed\nrcpt b@x state=failed\nend\n",
      "state of another message" },
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA0\n"
      "rcpt a@x state=failed\nend\n", "state of another message" },
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA0\n"
      "rcpt a@x state=failed\nrcpt c@x state=failed\nend\n",
      "state of other recipients" },
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA0\nrcpt a@x state=failed\n"
      "rcpt b@x state=failed\nrcpt b@x state=failed\nend\n",
      "state of other recipients" },
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA0\nhold 1\n"
      "rcpt a@x state=failed\nrcpt b@x state=gone\nend\n",
      "state of other recipients" },
    { "POSTERN-STATE 1\nid 1LG6N7GTJFR01F6BA0\nhold 1\n"
      "rcpt a@x state=failed\nrcpt b@x state=failed\n",
      "no \"end\" line (truncated)" },
    { "POSTERN-STATE 2\nid 1LG6N7GTJFR01F6BA0\nend\n",
      "not a version 1 state file" },
};


/* a state that does not fit changes nothing */
START_TEST(test_state_refused)
{
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char             text[] = ENV_TWO, *st;

    pool = pst_create_pool(4096);
    ck_assert_int_eq(pst_envelope_parse(pool, (u_char *) text,
                                        sizeof(text) - 1, &env, &why),
                     PST_OK);
    st = strdup(bad_states[_i].text);
    ck_assert_int_eq(pst_envelope_parse_state(pool, (u_char *) st,
                                              strlen(st), &env, &why),
                     PST_ERROR);
    ck_assert_str_eq(why, bad_states[_i].why);
    r = env.rcpts->elts;
    ck_assert_int_eq(r[0].state, PST_RCPT_PENDING);
    ck_assert_int_eq(r[1].state, PST_RCPT_PENDING);
    ck_assert_int_eq(env.hold, 0);
    ck_assert(!pst_envelope_final(&env));
    free(st);
    pst_destroy_pool(pool);
}
END_TEST


/* what the previous release wrote: every field it wrote is read, the
 * ones the old reader dropped included */
START_TEST(test_version_1)
{
    static char      text[] =
        "POSTERN-ENVELOPE 1\n"
        "id 1LG6N7GTJFR01F6BA0\n"
        "arrival 1795382512.000000\n"
        "client-addr 192.0.2.7\n"
        "helo mail.example.net\n"
        "protocol ESMTPSA\n"
        "auth alice\n"
        "tls TLSv1.3+20TLS_AES_256_GCM_SHA384\n"
        "server mx.example.test\n"
        "sender alice@example.net\n"
        "body 8BITMIME\n"
        "smtputf8 1\n"
        "ret HDRS\n"
        "envid abc+2B123\n"
        "auth-param alice@example.net\n"
        "size 4218\n"
        "rcpt bob@example.test notify=6 orcpt=rfc822;bob@example.test"
        " state=pending\n"
        "rcpt carol@example.test notify=0 state=sent\n"
        "prepend X-Policy:+20checked\n"
        "end\n";
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why = NULL;

    pool = pst_create_pool(4096);
    ck_assert_int_eq(pst_envelope_parse(pool, (u_char *) text,
                                        sizeof(text) - 1, &env, &why),
                     PST_OK);
    ck_assert_int_eq(env.arrival_sec, 1795382512);
    ck_assert_int_eq(env.arrival_usec, 0);
    ck_assert_str_eq((char *) env.server.data, "mx.example.test");
    ck_assert_str_eq((char *) env.auth_param.data, "alice@example.net");
    ck_assert_str_eq((char *) env.tls.data,
                     "TLSv1.3 TLS_AES_256_GCM_SHA384");
    ck_assert_str_eq((char *) env.envid.data, "abc+123");
    ck_assert_str_eq((char *) env.ret.data, "HDRS");
    ck_assert_str_eq((char *) env.body.data, "8BITMIME");
    ck_assert_int_eq(env.smtputf8, 1);
    ck_assert_int_eq(env.size, 4218);
    r = env.rcpts->elts;
    ck_assert_int_eq(r[0].state, PST_RCPT_PENDING);
    ck_assert_int_eq(r[1].state, PST_RCPT_DELIVERED);
    pst_destroy_pool(pool);
}
END_TEST


static const char  *bad_arrivals[] = {
    "1.5", "1.0000000", "x.000000", "1.00000x", "", ".000000", "1.",
    "99999999999999999999.000000",
};


START_TEST(test_arrival_refused)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why = NULL;
    char            *text;

    pool = pst_create_pool(4096);
    ck_assert(asprintf(&text, "POSTERN-ENVELOPE 2\nid 1LG6N7GTJFR01F6BA0\n"
                       "arrival %s\nrcpt a@x state=pending\nend\n",
                       bad_arrivals[_i]) > 0);
    ck_assert_int_eq(pst_envelope_parse(pool, (u_char *) text, strlen(text),
                                        &env, &why), PST_ERROR);
    ck_assert_str_eq(why, "bad arrival line");
    free(text);
    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_envelope(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("envelope");
    tc = tcase_create("envelope");
    tcase_add_test(tc, test_round_trip_random);
    tcase_add_test(tc, test_round_trip_awkward);
    tcase_add_test(tc, test_writer_refuses);
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_loop_test(tc, test_state_refused, 0, pst_nelems(bad_states));
    tcase_add_test(tc, test_version_1);
    tcase_add_loop_test(tc, test_arrival_refused, 0,
                        pst_nelems(bad_arrivals));
    suite_add_tcase(s, tc);

    return s;
}
