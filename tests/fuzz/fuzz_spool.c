/*
 * fuzz_spool.c -- libFuzzer harness for the spool reader (pst_spool.c)
 * and the envelope's reader (pst_envelope.c): pst_spool_parse_header(),
 * pst_envelope_parse(), pst_envelope_parse_state() and pst_spool_read()
 * on a corrupt queue file or state file.  The queue process runs the
 * reader on whatever a crash, a full disk or an operator left in queue/:
 * it must refuse, never crash.  What it accepts must survive the writer:
 * write(parse(x)) parses again and writes the same bytes (every field
 * written is read back).
 *
 * The first input byte chooses the mode:
 *   even: the rest is written to a file as it is (a raw queue file);
 *   odd:  the next two bytes are the message length m; the file gets a
 *         correct format 3 header for m message bytes and the rest as
 *         envelope, so the fuzzer reaches the envelope parser through
 *         the file reader quickly.
 * The envelope part is also parsed directly from an exact-size copy,
 * without the NUL pst_spool_read() adds, so that a read past its end
 * shows, and as a state file applied to a fixed two-recipient envelope.
 */

#include "pst_core.h"
#include "pst_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char  fz_path[64];


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_spool: %s\n", what);
    abort();
}


static void
fz_cleanup(void)
{
    char  dir[64];

    if (fz_path[0] != '\0') {
        unlink(fz_path);
        memcpy(dir, fz_path, sizeof(dir));
        *strrchr(dir, '/') = '\0';
        rmdir(dir);
    }
}


static void
fz_check_env(const pst_envelope_t *env)
{
    pst_env_rcpt_t  *r;
    pst_uint_t       i;

    if (!pst_spool_valid_id(env->id.data, env->id.len)
        || env->rcpts == NULL || env->rcpts->nelts == 0)
    {
        fz_fail("accepted an envelope without an id or recipients");
    }

    r = env->rcpts->elts;
    for (i = 0; i < env->rcpts->nelts; i++) {
        if (r[i].addr.data == NULL || r[i].addr.data[r[i].addr.len] != '\0')
        {
            fz_fail("recipient address not terminated");
        }
    }
}


static void
fz_write(const u_char *p, size_t n)
{
    int  fd;

    fd = open(fz_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1 || (n > 0 && write(fd, p, n) != (ssize_t) n)) {
        fz_fail("cannot write the queue file");
    }
    close(fd);
}


/* write(env) parses back and writes the same bytes */
static void
fz_round_trip(pst_pool_t *pool, const pst_envelope_t *env, int state)
{
    pst_envelope_t   back;
    pst_buf_t       *a, *b;
    const char      *why = NULL;
    int              rc;

    rc = state ? pst_envelope_write_state(env, &a)
               : pst_envelope_write(env, &a);
    if (rc != PST_OK) {
        fz_fail("the writer refused what the parser accepted");
    }

    if (state) {
        back = *env;
        rc = pst_envelope_parse_state(pool, a->pos, pst_buf_size(a), &back,
                                      &why);
    } else {
        rc = pst_envelope_parse(pool, a->pos, pst_buf_size(a), &back, &why);
    }
    if (rc != PST_OK) {
        fprintf(stderr, "fuzz_spool: %s\n", why);
        fz_fail("written envelope does not parse");
    }

    rc = state ? pst_envelope_write_state(&back, &b)
               : pst_envelope_write(&back, &b);
    if (rc != PST_OK || pst_buf_size(a) != pst_buf_size(b)
        || memcmp(a->pos, b->pos, pst_buf_size(a)) != 0)
    {
        fz_fail("written, read and written again: not the same");
    }

    pst_buf_destroy(a);
    pst_buf_destroy(b);
}


/* the bytes as a state file, applied to a fixed envelope */
static void
fz_state(pst_pool_t *pool, u_char *p, size_t n)
{
    static char      base[] = "POSTERN-ENVELOPE 2\nid 1LG6N7GTJFR01F6BA0\n"
                              "rcpt a@x state=pending\n"
                              "rcpt b@x state=pending\nend\n";
    pst_envelope_t   env;
    const char      *why = NULL;

    if (pst_envelope_parse(pool, (u_char *) base, sizeof(base) - 1, &env,
                           &why) != PST_OK)
    {
        fz_fail("base envelope");
    }
    if (pst_envelope_parse_state(pool, p, n, &env, &why) == PST_OK) {
        fz_round_trip(pool, &env, 1);
    } else if (why == NULL) {
        fz_fail("state refused without saying why");
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_envelope_t   env;
    pst_pool_t      *pool;
    const char      *why;
    u_char          *file, *copy;
    size_t           m, n, elen;
    off_t            moff, mlen, hm;
    size_t           he;
    char             dir[] = "/tmp/pst-fuzz-spool-XXXXXX";
    int              rc;

    if (fz_path[0] == '\0') {
        if (mkdtemp(dir) == NULL) {
            fz_fail("mkdtemp");
        }
        snprintf(fz_path, sizeof(fz_path), "%s/1LG6N7GTJFR01F6BA0", dir);
        atexit(fz_cleanup);
    }

    if (size < 3 || size > 1024 * 1024) {
        return -1;
    }

    pool = pst_create_pool(4096);
    if (pool == NULL) {
        fz_fail("pool");
    }

    if (data[0] & 1) {
        m = (size_t) data[1] << 8 | data[2];
        data += 3;
        size -= 3;
        if (m > size) {
            m = size;
        }
        elen = size - m;

        n = PST_SPOOL_HEADER_LEN + size;
        file = malloc(n);
        if (file == NULL) {
            fz_fail("malloc");
        }
        /* an empty envelope cannot be described by a header */
        pst_spool_header(file, (off_t) m, elen ? elen : 1);
        memcpy(file + PST_SPOOL_HEADER_LEN, data, size);

        if (pst_spool_parse_header(file, n, &hm, &he) != PST_OK
            || hm != (off_t) m || he != (elen ? elen : 1))
        {
            fz_fail("header does not read back");
        }

        fz_write(file, n);
        free(file);

        data += m;
        size = elen;

    } else {
        data++;
        size--;
        fz_write(data, size);

        /* the header parser on a short, exact-size buffer too */
        copy = malloc(size ? size : 1);
        if (copy == NULL) {
            fz_fail("malloc");
        }
        memcpy(copy, data, size);
        (void) pst_spool_parse_header(copy, size, &hm, &he);
        free(copy);

        if (size > PST_SPOOL_HEADER_LEN
            && pst_spool_parse_header(data, size, &hm, &he) == PST_OK
            && hm >= 0 && (uint64_t) hm <= size - PST_SPOOL_HEADER_LEN)
        {
            data += PST_SPOOL_HEADER_LEN + (size_t) hm;
            size -= PST_SPOOL_HEADER_LEN + (size_t) hm;
        }
    }

    why = NULL;
    rc = pst_spool_read(pool, fz_path, &env, &moff, &mlen, &why);
    if (rc == PST_OK) {
        fz_check_env(&env);
        if (moff != PST_SPOOL_HEADER_LEN || mlen < 0) {
            fz_fail("bad message offset or length");
        }
    } else if (why == NULL) {
        fz_fail("refused without saying why");
    }

    /* the envelope parser alone, on an exact-size copy without a NUL */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        fz_fail("malloc");
    }
    memcpy(copy, data, size);
    why = NULL;
    if (pst_envelope_parse(pool, copy, size, &env, &why) == PST_OK) {
        fz_check_env(&env);
        fz_round_trip(pool, &env, 0);
    } else if (why == NULL) {
        fz_fail("envelope refused without saying why");
    }
    fz_state(pool, copy, size);
    free(copy);

    pst_destroy_pool(pool);
    return 0;
}
