/*
 * spool_state.c -- drives the spool service (pst_spool.h) the way the
 * queue process does, for tests/integration/test_spool.py: the kill -9
 * test of pst_spool_state_write() and the upgrade of format 2 files.
 *
 *   spool_state SPOOL inject          commit a message; prints its ID
 *   spool_state SPOOL loop ID N       N state writes: write k sets every
 *                                     recipient to attempt k (a reply of
 *                                     a length that depends on k, hold =
 *                                     k odd); prints k once it returned
 *   spool_state SPOOL check ID        walk the queue (which tidies), open
 *                                     ID, check that its state is one
 *                                     whole write: prints "attempts K"
 *   spool_state SPOOL walk            every ID the walk reports
 *
 * Exits 0, or 1 with "error: ..." on stdout.
 */

#include "pst_core.h"
#include "pst_spool.h"


static int state_inject(void);
static int state_loop(const char *id, long n);
static int state_check(const char *id);
static int state_walked(const char *id, void *data);
static int state_print(const char *id, void *data);
static void state_reply(pst_pool_t *pool, pst_str_t *r, unsigned k);


static void
state_reply(pst_pool_t *pool, pst_str_t *r, unsigned k)
{
    size_t  n = 20 + (k * 37) % 3000;

    r->data = pst_palloc(pool, n + 1);
    memset(r->data, 'x', n);
    memcpy(r->data, "451 4.3.0 attempt", 17);
    r->len = n;
}


static int
state_inject(void)
{
    static const char  msg[] = "Subject: state\r\n\r\nbody\r\n";
    pst_envelope_t     env;
    pst_pool_t        *pool;
    u_char             id[PST_QUEUE_ID_LEN + 1];
    char               addr[32];
    int                i;

    pool = pst_create_pool(4096);
    if (pool == NULL || pst_envelope_init(pool, &env) != PST_OK) {
        return 1;
    }
    pst_str_set(&env.sender, "sender@example.test");
    for (i = 0; i < 3; i++) {
        snprintf(addr, sizeof(addr), "r%d@example.test", i);
        if (pst_envelope_add_rcpt(pool, &env, (u_char *) addr, strlen(addr))
            == NULL)
        {
            return 1;
        }
    }
    if (pst_spool_inject(&env, (u_char *) msg, sizeof(msg) - 1, id)
        != PST_OK)
    {
        printf("error: inject: %s\n", strerror(errno));
        return 1;
    }
    printf("%s\n", id);
    pst_destroy_pool(pool);
    return 0;
}


static int
state_loop(const char *id, long n)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    const char      *why;
    pst_uint_t       i;
    long             k;

    pool = pst_create_pool(16384);

    for (k = 1; k <= n; k++) {
        pst_reset_pool(pool);
        if (pst_spool_msg_open(pool, id, &m, &why) != PST_OK) {
            printf("error: open: %s\n", why);
            return 1;
        }
        r = m.env.rcpts->elts;
        for (i = 0; i < m.env.rcpts->nelts; i++) {
            r[i].state = PST_RCPT_DEFERRED;
            r[i].attempts = (unsigned) k;
            r[i].next_try = (time_t) k;
            state_reply(pool, &r[i].reply, (unsigned) k);
        }
        m.env.hold = (int) (k & 1);
        if (pst_spool_state_write(&m.env) != PST_OK) {
            printf("error: state write: %s\n", strerror(errno));
            return 1;
        }
        pst_spool_msg_close(&m);
        printf("%ld\n", k);
        fflush(stdout);
    }

    pst_destroy_pool(pool);
    return 0;
}


static int
state_walked(const char *id, void *data)
{
    (void) id;
    (*(long *) data)++;
    return PST_OK;
}


static int
state_check(const char *id)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    pst_str_t        want;
    const char      *why;
    pst_uint_t       i;
    unsigned         k;
    long             n = 0;

    if (pst_spool_walk(state_walked, &n) != PST_OK || n != 1) {
        printf("error: the walk found %ld message(s)\n", n);
        return 1;
    }

    pool = pst_create_pool(16384);
    if (pst_spool_msg_open(pool, id, &m, &why) != PST_OK) {
        printf("error: open: %s\n", why);
        return 1;
    }

    r = m.env.rcpts->elts;
    k = r[0].attempts;
    state_reply(pool, &want, k);
    for (i = 0; k > 0 && i < m.env.rcpts->nelts; i++) {
        if (r[i].attempts != k || r[i].state != PST_RCPT_DEFERRED
            || r[i].next_try != (time_t) k || r[i].reply.len != want.len
            || memcmp(r[i].reply.data, want.data, want.len) != 0
            || m.env.hold != (int) (k & 1))
        {
            printf("error: a mix of states: recipient %u\n", (unsigned) i);
            return 1;
        }
    }

    printf("attempts %u\n", k);
    pst_spool_msg_close(&m);
    pst_destroy_pool(pool);
    return 0;
}


static int
state_print(const char *id, void *data)
{
    (void) data;
    printf("%s\n", id);
    return PST_OK;
}


int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: spool_state SPOOL inject|loop|check|walk"
                " ...\n");
        return 2;
    }

    pst_spool_use_dir(argv[1]);

    if (strcmp(argv[2], "inject") == 0) {
        return state_inject();
    }
    if (strcmp(argv[2], "loop") == 0 && argc == 5) {
        return state_loop(argv[3], atol(argv[4]));
    }
    if (strcmp(argv[2], "check") == 0 && argc == 4) {
        return state_check(argv[3]);
    }
    if (strcmp(argv[2], "walk") == 0) {
        return pst_spool_walk(state_print, NULL) == PST_OK ? 0 : 1;
    }

    fprintf(stderr, "spool_state: bad arguments\n");
    return 2;
}
