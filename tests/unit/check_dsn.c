/*
 * check_dsn.c -- pst_dsn_build(): each report is parsed back (header
 * fields unfolded, MIME parts split at the boundary, the delivery-status
 * cut into its blocks of fields) and checked field by field; every line
 * of every report must end in CRLF and fit in 998 octets.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_dsn.h"

#define DSN_MAX_FIELDS           64
#define DSN_MAX_PARTS            8
#define DSN_MAX_BLOCKS           8

typedef struct {
    char                        *name[DSN_MAX_FIELDS];
    char                        *value[DSN_MAX_FIELDS];
    int                          n;
} fields_t;

typedef struct {
    fields_t                     head;
    char                        *content;    /* NUL-terminated copy */
} part_t;

typedef struct {
    fields_t                     head;
    part_t                       part[DSN_MAX_PARTS];
    int                          nparts;
    fields_t                     block[DSN_MAX_BLOCKS];   /* the report */
    int                          nblocks;
    char                        *raw;
} dsn_t;

typedef struct {
    pst_pool_t                  *pool;
    pst_spool_msg_t              m;
    char                        *dir;
    char                        *path;
} fixture_t;


static const char  *MSG =
    "Received: from client.test by mx.test\r\n"
    "From: Alice <alice@src.test>\r\n"
    "To: bob@dest.test\r\n"
    "Subject: the report\r\n"
    "Message-ID: <orig@src.test>\r\n"
    "\r\n"
    "The body line one.\r\n"
    "The body line two.\r\n";


/* ------------------------------------------------------------------ */
/* A tiny parser for what pst_dsn_build() writes                       */

/* Every line CRLF-terminated, no bare CR or LF, at most 998 octets. */
static void
check_lines(const char *p, size_t n)
{
    size_t  i, col = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == '\r') {
            ck_assert_msg(i + 1 < n && p[i + 1] == '\n',
                          "bare CR at %zu", i);
            i++;
            col = 0;
            continue;
        }
        ck_assert_msg(p[i] != '\n', "bare LF at %zu", i);
        ck_assert_msg(++col <= 998, "line over 998 at %zu", i);
    }
    ck_assert_msg(n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n',
                  "no final CRLF");
}


/* Parse header fields (unfolded) until an empty line; returns the
 * position after it (or end). */
static const char *
parse_fields(const char *p, const char *end, fields_t *f)
{
    const char  *eol, *colon;
    char        *v;
    size_t       vl;

    f->n = 0;
    while (p < end) {
        eol = strstr(p, "\r\n");
        if (eol == NULL || eol > end) {
            eol = end;
        }
        if (eol == p) {
            return eol + 2;                 /* the empty line */
        }
        if (*p == ' ' || *p == '\t') {
            /* continuation: unfold (drop the CRLF, keep the space) */
            ck_assert_int_gt(f->n, 0);
            v = f->value[f->n - 1];
            vl = strlen(v);
            v = realloc(v, vl + (size_t) (eol - p) + 1);
            memcpy(v + vl, p, (size_t) (eol - p));
            v[vl + (size_t) (eol - p)] = '\0';
            f->value[f->n - 1] = v;
        } else {
            colon = memchr(p, ':', (size_t) (eol - p));
            ck_assert_msg(colon != NULL, "not a field: %.*s",
                          (int) (eol - p), p);
            ck_assert_int_lt(f->n, DSN_MAX_FIELDS);
            f->name[f->n] = strndup(p, (size_t) (colon - p));
            colon++;
            while (*colon == ' ') {
                colon++;
            }
            f->value[f->n] = strndup(colon, (size_t) (eol - colon));
            f->n++;
        }
        p = eol + 2;
    }

    return end;
}


static const char *
get(const fields_t *f, const char *name)
{
    int  i;

    for (i = 0; i < f->n; i++) {
        if (strcasecmp(f->name[i], name) == 0) {
            return f->value[i];
        }
    }
    return NULL;
}


static int
count(const fields_t *f, const char *name)
{
    int  i, k = 0;

    for (i = 0; i < f->n; i++) {
        k += strcasecmp(f->name[i], name) == 0;
    }
    return k;
}


static void
parse_parts(dsn_t *d, const char *body, const char *end, const char *b)
{
    char         delim[160];
    const char  *p, *next, *content;

    snprintf(delim, sizeof(delim), "\r\n--%s", b);
    p = strstr(body - 2, delim);
    ck_assert_msg(p != NULL, "no first boundary");

    for ( ;; ) {
        p += strlen(delim);
        if (strncmp(p, "--\r\n", 4) == 0) {
            ck_assert_msg(p + 4 == end, "bytes after the last boundary");
            return;
        }
        ck_assert(strncmp(p, "\r\n", 2) == 0);
        p += 2;
        next = strstr(p, delim);
        ck_assert_msg(next != NULL, "part %d not closed", d->nparts);
        ck_assert_int_lt(d->nparts, DSN_MAX_PARTS);
        content = parse_fields(p, next, &d->part[d->nparts].head);
        d->part[d->nparts].content = strndup(content,
                                             (size_t) (next - content));
        d->nparts++;
        p = next;
    }
}


/* The delivery-status: blocks of fields separated by empty lines. */
static void
parse_report(dsn_t *d, const char *p)
{
    const char  *end = p + strlen(p), *next;
    char         copy[65536];

    d->nblocks = 0;
    while (p < end) {
        next = strstr(p, "\r\n\r\n");
        next = next ? next + 2 : end;
        ck_assert_int_lt(d->nblocks, DSN_MAX_BLOCKS);
        ck_assert_uint_lt((size_t) (next - p), sizeof(copy));
        memcpy(copy, p, (size_t) (next - p));
        copy[next - p] = '\0';
        parse_fields(copy, copy + (next - p), &d->block[d->nblocks++]);
        p = next + (next < end ? 2 : 0);
    }
}


static void
dsn_parse(dsn_t *d, pst_buf_t *b)
{
    const char  *raw, *body, *ct, *bnd;
    char         boundary[128];
    size_t       n = pst_buf_size(b);

    memset(d, 0, sizeof(*d));
    d->raw = strndup((char *) b->pos, n);
    ck_assert_uint_eq(strlen(d->raw), n);      /* no NUL inside */
    raw = d->raw;
    check_lines(raw, n);

    body = parse_fields(raw, raw + n, &d->head);
    ct = get(&d->head, "Content-Type");
    ck_assert_ptr_nonnull(ct);
    bnd = strstr(ct, "boundary=\"");
    ck_assert_ptr_nonnull(bnd);
    snprintf(boundary, sizeof(boundary), "%s", bnd + 10);
    *strchr(boundary, '"') = '\0';

    parse_parts(d, body, raw + n, boundary);
    ck_assert_int_eq(d->nparts, 3);
    parse_report(d, d->part[1].content);
}


static void
dsn_free(dsn_t *d)
{
    int  i, j;

    for (i = 0; i < d->head.n; i++) {
        free(d->head.name[i]);
        free(d->head.value[i]);
    }
    for (i = 0; i < d->nparts; i++) {
        for (j = 0; j < d->part[i].head.n; j++) {
            free(d->part[i].head.name[j]);
            free(d->part[i].head.value[j]);
        }
        free(d->part[i].content);
    }
    for (i = 0; i < d->nblocks; i++) {
        for (j = 0; j < d->block[i].n; j++) {
            free(d->block[i].name[j]);
            free(d->block[i].value[j]);
        }
    }
    free(d->raw);
}


/* ------------------------------------------------------------------ */
/* The message under report                                            */

/* The queue file holds junk, then the message at msg_offset. */
static void
fixture_init(fixture_t *fx, const char *msg, size_t len)
{
    static const char  junk[] = "POSTERN-SPOOL junk that is not mail\n";
    pst_envelope_t    *env = &fx->m.env;
    pst_env_rcpt_t    *r;
    int                fd;

    memset(fx, 0, sizeof(*fx));
    fx->pool = pst_create_pool(4096);
    fx->dir = tu_tmpdir();
    ck_assert_int_ne(asprintf(&fx->path, "%s/qf", fx->dir), -1);
    fd = open(fx->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, junk, sizeof(junk) - 1), sizeof(junk) - 1);
    ck_assert_int_eq(write(fd, msg, len), (ssize_t) len);
    ck_assert_int_eq(write(fd, "ENVELOPE AFTER", 14), 14);
    fx->m.fd = fd;
    fx->m.msg_offset = sizeof(junk) - 1;
    fx->m.msg_len = (off_t) len;

    ck_assert_int_eq(pst_envelope_init(fx->pool, env), PST_OK);
    pst_str_set(&env->id, "0123456789ABCDEFGH");
    pst_str_set(&env->sender, "alice@src.test");
    pst_str_set(&env->envid, "ENV-42");
    env->arrival_sec = 1764748800;          /* 2025-12-03 08:00 UTC */

    r = pst_envelope_add_rcpt(fx->pool, env, (u_char *) "bob@dest.test", 13);
    pst_str_set(&r->orcpt, "rfc822;Bob@dest.test");
    pst_str_set(&r->reply, "550 5.1.1 <bob@dest.test>: no such user");
    pst_str_set(&r->remote, "mx.dest.test[192.0.2.1]:25");
    r->state = PST_RCPT_FAILED;
    r->last_try = 1764752400;

    r = pst_envelope_add_rcpt(fx->pool, env, (u_char *) "carol@dest.test",
                              15);
    pst_str_set(&r->reply, "250 2.0.0 Ok: queued");
    r->state = PST_RCPT_DELIVERED;

    r = pst_envelope_add_rcpt(fx->pool, env, (u_char *) "dave@dest.test",
                              14);
    pst_str_set(&r->reply, "connect to mx.dest.test[192.0.2.1]:25:"
                " Connection refused");
    r->state = PST_RCPT_FAILED;
}


static void
fixture_free(fixture_t *fx)
{
    close(fx->m.fd);
    pst_destroy_pool(fx->pool);
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx->path);
}


static pst_env_rcpt_t *
rcpt(fixture_t *fx, pst_uint_t i)
{
    return &((pst_env_rcpt_t *) fx->m.env.rcpts->elts)[i];
}


static void
build(fixture_t *fx, pst_dsn_action_e action, const pst_uint_t *which,
    pst_uint_t n, pst_dsn_opts_t *opts, dsn_t *d)
{
    pst_dsn_opts_t  def;
    pst_buf_t      *out;

    if (opts == NULL) {
        memset(&def, 0, sizeof(def));
        def.reporting_mta = "mx.test";
        opts = &def;
    }
    ck_assert_int_eq(pst_dsn_build_opts(fx->pool, &fx->m, action, which, n,
                                        opts, &out), PST_OK);
    dsn_parse(d, out);
    pst_buf_destroy(out);
}


/* ------------------------------------------------------------------ */
/* The tests                                                           */

START_TEST(test_failed_fields)
{
    static const pst_uint_t  which[] = { 0, 2 };
    fixture_t                fx;
    dsn_t                    d;
    const fields_t          *b;
    const char              *v;

    fixture_init(&fx, MSG, strlen(MSG));
    build(&fx, PST_DSN_FAILED, which, 2, NULL, &d);

    /* top header */
    ck_assert_str_eq(get(&d.head, "From"),
                     "Mail Delivery System <MAILER-DAEMON@mx.test>");
    ck_assert_str_eq(get(&d.head, "To"), "<alice@src.test>");
    ck_assert_str_eq(get(&d.head, "Subject"),
                     "Undelivered Mail Returned to Sender");
    ck_assert_str_eq(get(&d.head, "Auto-Submitted"), "auto-replied");
    ck_assert_str_eq(get(&d.head, "MIME-Version"), "1.0");
    ck_assert_ptr_nonnull(get(&d.head, "Date"));
    v = get(&d.head, "Message-ID");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v[0], '<');
    ck_assert_ptr_nonnull(strstr(v, "@mx.test>"));
    ck_assert_ptr_nonnull(strstr(get(&d.head, "Content-Type"),
        "multipart/report; report-type=delivery-status;"));
    ck_assert_str_eq(get(&d.head, "Content-Transfer-Encoding"), "7bit");

    /* the parts */
    ck_assert_str_eq(get(&d.part[0].head, "Content-Type"),
                     "text/plain; charset=us-ascii");
    ck_assert_ptr_nonnull(strstr(d.part[0].content,
        "<bob@dest.test>: 550 5.1.1 <bob@dest.test>: no such user"));
    ck_assert_ptr_nonnull(strstr(d.part[0].content, "<dave@dest.test>:"));
    ck_assert_ptr_null(strstr(d.part[0].content, "carol"));
    ck_assert_str_eq(get(&d.part[1].head, "Content-Type"),
                     "message/delivery-status");
    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "text/rfc822-headers");

    /* per-message fields, then one block per recipient asked for */
    ck_assert_int_eq(d.nblocks, 3);
    b = &d.block[0];
    ck_assert_str_eq(get(b, "Reporting-MTA"), "dns; mx.test");
    ck_assert_str_eq(get(b, "Original-Envelope-Id"), "ENV-42");
    ck_assert_str_eq(get(b, "X-Postern-Queue-ID"), "0123456789ABCDEFGH");
    ck_assert_ptr_nonnull(strstr(get(b, "Arrival-Date"), " 2025 "));

    b = &d.block[1];
    ck_assert_str_eq(get(b, "Final-Recipient"), "rfc822; bob@dest.test");
    ck_assert_str_eq(get(b, "Original-Recipient"), "rfc822; Bob@dest.test");
    ck_assert_str_eq(get(b, "Action"), "failed");
    ck_assert_str_eq(get(b, "Status"), "5.1.1");
    ck_assert_str_eq(get(b, "Remote-MTA"), "dns; mx.dest.test");
    ck_assert_str_eq(get(b, "Diagnostic-Code"),
                     "smtp; 550 5.1.1 <bob@dest.test>: no such user");
    ck_assert_ptr_nonnull(get(b, "Last-Attempt-Date"));
    ck_assert_ptr_null(get(b, "Will-Retry-Until"));
    ck_assert_int_eq(b->n, 7);

    b = &d.block[2];
    ck_assert_str_eq(get(b, "Final-Recipient"), "rfc822; dave@dest.test");
    ck_assert_ptr_null(get(b, "Original-Recipient"));
    ck_assert_ptr_null(get(b, "Remote-MTA"));
    ck_assert_ptr_null(get(b, "Last-Attempt-Date"));
    ck_assert_str_eq(get(b, "Status"), "5.0.0");
    ck_assert_str_eq(get(b, "Diagnostic-Code"), "X-Postern; connect to"
                     " mx.dest.test[192.0.2.1]:25: Connection refused");

    /* RET=HDRS (none given): the header section only, in order */
    ck_assert_str_eq(d.part[2].content,
                     "Received: from client.test by mx.test\r\n"
                     "From: Alice <alice@src.test>\r\n"
                     "To: bob@dest.test\r\n"
                     "Subject: the report\r\n"
                     "Message-ID: <orig@src.test>\r\n");

    dsn_free(&d);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_ret_full)
{
    static const pst_uint_t  which[] = { 0 };
    pst_dsn_opts_t           opts;
    fixture_t                fx;
    dsn_t                    d;

    fixture_init(&fx, MSG, strlen(MSG));
    pst_str_set(&fx.m.env.ret, "FULL");
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);

    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "message/rfc822");
    ck_assert_str_eq(d.part[2].content, MSG);
    ck_assert_ptr_null(strstr(d.raw, "ENVELOPE AFTER"));
    ck_assert_ptr_null(strstr(d.raw, "junk"));
    dsn_free(&d);

    /* larger than full_max: the header only, and the text says so */
    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = "mx.test";
    opts.full_max = 20;
    build(&fx, PST_DSN_FAILED, which, 1, &opts, &d);
    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "text/rfc822-headers");
    ck_assert_ptr_null(strstr(d.part[2].content, "body line"));
    ck_assert_ptr_nonnull(strstr(d.part[0].content, "too large"));
    dsn_free(&d);

    /* RET=FULL does not apply to a delay warning */
    build(&fx, PST_DSN_DELAYED, which, 1, NULL, &d);
    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "text/rfc822-headers");
    dsn_free(&d);

    fixture_free(&fx);
}
END_TEST


START_TEST(test_delayed_delivered_relayed)
{
    static const pst_uint_t  which[] = { 1 };
    pst_dsn_opts_t           opts;
    fixture_t                fx;
    dsn_t                    d;

    fixture_init(&fx, MSG, strlen(MSG));
    pst_str_set(&rcpt(&fx, 1)->reply, "451 4.3.0 try later");

    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = "mx.test";
    opts.retry_until = 1765180800;
    build(&fx, PST_DSN_DELAYED, which, 1, &opts, &d);
    ck_assert_str_eq(get(&d.head, "Subject"),
                     "Delayed Mail (still being retried)");
    ck_assert_str_eq(get(&d.block[1], "Action"), "delayed");
    ck_assert_str_eq(get(&d.block[1], "Status"), "4.3.0");
    ck_assert_ptr_nonnull(strstr(get(&d.block[1], "Will-Retry-Until"),
                                 " 2025 "));
    dsn_free(&d);

    pst_str_set(&rcpt(&fx, 1)->reply, "250 2.6.0 Ok: queued as X");
    build(&fx, PST_DSN_DELIVERED, which, 1, NULL, &d);
    ck_assert_str_eq(get(&d.block[1], "Action"), "delivered");
    ck_assert_str_eq(get(&d.block[1], "Status"), "2.6.0");
    ck_assert_ptr_null(get(&d.block[1], "Will-Retry-Until"));
    dsn_free(&d);

    pst_str_set(&rcpt(&fx, 1)->reply, "250 Ok");
    build(&fx, PST_DSN_RELAYED, which, 1, NULL, &d);
    ck_assert_str_eq(get(&d.block[1], "Action"), "relayed");
    ck_assert_str_eq(get(&d.block[1], "Status"), "2.0.0");
    ck_assert_str_eq(get(&d.block[1], "Diagnostic-Code"), "smtp; 250 Ok");
    dsn_free(&d);

    fixture_free(&fx);
}
END_TEST


START_TEST(test_status_codes)
{
    static const struct {
        const char        *reply;
        pst_dsn_action_e   action;
        const char        *status;
    } t[] = {
        { "550 5.1.1 no", PST_DSN_FAILED, "5.1.1" },
        { "552 5.3.4 too big", PST_DSN_FAILED, "5.3.4" },
        { "550 5.7.26 dmarc", PST_DSN_FAILED, "5.7.26" },
        { "451 4.4.7 expired", PST_DSN_FAILED, "4.4.7" },
        { "550 too bad", PST_DSN_FAILED, "5.0.0" },
        { "421 closing", PST_DSN_FAILED, "4.0.0" },
        { "250 2.0.0 ok", PST_DSN_FAILED, "5.0.0" },
        { "550 5.1.1", PST_DSN_FAILED, "5.1.1" },
        { "550 5.1. x", PST_DSN_FAILED, "5.0.0" },
        { "550 5..1 x", PST_DSN_FAILED, "5.0.0" },
        { "550 5.1.1.1 x", PST_DSN_FAILED, "5.0.0" },
        { "550 5.1234567.1 x", PST_DSN_FAILED, "5.0.0" },
        { "", PST_DSN_FAILED, "5.0.0" },
        { "timeout", PST_DSN_DELAYED, "4.0.0" },
        { "450 4.2.0 busy", PST_DSN_DELAYED, "4.2.0" },
        { "550 5.1.1 x", PST_DSN_DELAYED, "4.0.0" },
        { "250 2.1.5 ok", PST_DSN_DELIVERED, "2.1.5" },
        { "", PST_DSN_RELAYED, "2.0.0" },
    };
    pst_env_rcpt_t  r;
    char            out[16];
    size_t          i;

    for (i = 0; i < pst_nelems(t); i++) {
        memset(&r, 0, sizeof(r));
        r.reply.data = (u_char *) t[i].reply;
        r.reply.len = strlen(t[i].reply);
        pst_dsn_status(&r, t[i].action, out);
        ck_assert_msg(strcmp(out, t[i].status) == 0, "%s: %s, not %s",
                      t[i].reply, out, t[i].status);
    }
}
END_TEST


START_TEST(test_injection)
{
    static const pst_uint_t  which[] = { 0, 1 };
    pst_dsn_opts_t           opts;
    fixture_t                fx;
    dsn_t                    d;
    char                    *longreply, *p;
    const char              *v;

    fixture_init(&fx, MSG, strlen(MSG));
    pst_str_set(&fx.m.env.sender, "alice@src.test>\r\nBcc: <evil@x.test");
    pst_str_set(&fx.m.env.envid, "E\r\nInjected-Envid: 1");
    pst_str_set(&rcpt(&fx, 0)->reply,
                "550 5.1.1 a\r\nInjected-Reply: 1\r\n\r\n--x\r\n");
    pst_str_set(&rcpt(&fx, 0)->remote, "mx\nInjected-Remote: 1[1.2.3.4]");
    pst_str_set(&rcpt(&fx, 0)->orcpt, "rfc822;b\rInjected-Orcpt: 1");

    /* one reply of 5000 bytes without a space, one with many words */
    longreply = malloc(5001);
    memcpy(longreply, "550 5.0.0 ", 10);
    memset(longreply + 10, 'x', 4990);
    longreply[5000] = '\0';
    rcpt(&fx, 1)->reply.data = (u_char *) longreply;
    rcpt(&fx, 1)->reply.len = 5000;

    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = "mx.test\r\nInjected-Mta: 1";
    build(&fx, PST_DSN_FAILED, which, 2, &opts, &d);

    /* no field of anybody else's making, anywhere */
    for (p = d.raw; (p = strstr(p, "\r\n")) != NULL; p += 2) {
        ck_assert_msg(strncmp(p + 2, "Injected", 8) != 0
                      && strncmp(p + 2, "Bcc", 3) != 0, "injected: %.40s",
                      p + 2);
    }
    ck_assert_int_eq(count(&d.head, "Bcc"), 0);
    ck_assert_int_eq(count(&d.head, "To"), 1);
    ck_assert_str_eq(get(&d.head, "To"),
                     "<alice@src.test> Bcc: <evil@x.test>");
    ck_assert_str_eq(get(&d.block[0], "Original-Envelope-Id"),
                     "E Injected-Envid: 1");
    /* a reporting MTA name with spaces is not used */
    ck_assert_str_eq(get(&d.block[0], "Reporting-MTA"), "dns; localhost");

    v = get(&d.block[1], "Diagnostic-Code");
    ck_assert_str_eq(v, "smtp; 550 5.1.1 a Injected-Reply: 1 --x");
    ck_assert_str_eq(get(&d.block[1], "Remote-MTA"),
                     "dns; mx Injected-Remote: 1");
    ck_assert_str_eq(get(&d.block[1], "Original-Recipient"),
                     "rfc822; b Injected-Orcpt: 1");

    /* bounded: the long reply is cut below 1000 bytes, in lines of at
     * most 998 (check_lines), still one field */
    v = get(&d.block[2], "Diagnostic-Code");
    ck_assert_int_eq(strncmp(v, "smtp; 550 5.0.0 xxxx", 20), 0);
    ck_assert_uint_lt(strlen(v), 1100);
    ck_assert_int_eq(d.nblocks, 3);

    free(longreply);
    dsn_free(&d);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_folding)
{
    static const pst_uint_t  which[] = { 0 };
    fixture_t                fx;
    dsn_t                    d;
    char                     reply[800], *p, *line;
    size_t                   i;

    fixture_init(&fx, MSG, strlen(MSG));
    strcpy(reply, "550 5.7.1");
    for (i = 0; i < 60; i++) {
        strcat(reply, " word");
    }
    rcpt(&fx, 0)->reply.data = (u_char *) reply;
    rcpt(&fx, 0)->reply.len = strlen(reply);
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);

    /* unfolding gives the reply back exactly */
    ck_assert_str_eq(get(&d.block[1], "Diagnostic-Code") + 6, reply);
    /* and the lines it was folded into are short */
    line = strstr(d.raw, "Diagnostic-Code:");
    for (i = 0; i < 3; i++) {
        p = strstr(line, "\r\n");
        ck_assert_uint_le((size_t) (p - line), 78);
        line = p + 2;
    }
    ck_assert_int_eq(line[0], ' ');

    dsn_free(&d);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_global)
{
    static const char        utf8_msg[] =
        "From: J\xc3\xb6rg <j\xc3\xb6rg@src.test>\r\n"
        "Subject: gr\xc3\xbc\xc3\x9f\x65\r\n"
        "\r\n"
        "body\r\n";
    static const pst_uint_t  which[] = { 0 };
    pst_dsn_opts_t           opts;
    fixture_t                fx;
    dsn_t                    d;

    fixture_init(&fx, utf8_msg, sizeof(utf8_msg) - 1);
    fx.m.env.smtputf8 = 1;
    pst_str_set(&fx.m.env.sender, "j\xc3\xb6rg@src.test");
    rcpt(&fx, 0)->addr.data = (u_char *) "b\xc3\xb8" "b@dest.test";
    rcpt(&fx, 0)->addr.len = strlen((char *) rcpt(&fx, 0)->addr.data);
    /* invalid UTF-8 from the remote becomes '?' even here */
    pst_str_set(&rcpt(&fx, 0)->reply, "550 5.1.1 n\xc3\xa5 \xff\xc0\xaf");

    memset(&opts, 0, sizeof(opts));
    opts.reporting_mta = "mx.test";
    build(&fx, PST_DSN_FAILED, which, 1, &opts, &d);

    ck_assert_uint_eq(opts.eightbit, 1);
    ck_assert_ptr_nonnull(strstr(get(&d.head, "Content-Type"),
        "report-type=global-delivery-status;"));
    ck_assert_str_eq(get(&d.head, "Content-Transfer-Encoding"), "8bit");
    ck_assert_str_eq(get(&d.head, "To"), "<j\xc3\xb6rg@src.test>");
    ck_assert_str_eq(get(&d.part[0].head, "Content-Type"),
                     "text/plain; charset=utf-8");
    ck_assert_str_eq(get(&d.part[1].head, "Content-Type"),
                     "message/global-delivery-status");
    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "message/global-headers");
    ck_assert_str_eq(get(&d.part[2].head, "Content-Transfer-Encoding"),
                     "8bit");
    ck_assert_str_eq(get(&d.block[1], "Final-Recipient"),
                     "utf-8; b\xc3\xb8" "b@dest.test");
    ck_assert_str_eq(get(&d.block[1], "Diagnostic-Code"),
                     "smtp; 550 5.1.1 n\xc3\xa5 ???");
    ck_assert_ptr_nonnull(strstr(d.part[2].content,
                                 "Subject: gr\xc3\xbc\xc3\x9f" "e\r\n"));
    dsn_free(&d);

    /* the same without SMTPUTF8: nothing 8-bit of ours, '?' instead */
    fx.m.env.smtputf8 = 0;
    build(&fx, PST_DSN_FAILED, which, 1, &opts, &d);
    ck_assert_str_eq(get(&d.block[1], "Final-Recipient"),
                     "rfc822; b??b@dest.test");
    ck_assert_str_eq(get(&d.part[1].head, "Content-Type"),
                     "message/delivery-status");
    /* the original's 8-bit header is said so */
    ck_assert_str_eq(get(&d.part[2].head, "Content-Transfer-Encoding"),
                     "8bit");
    ck_assert_str_eq(get(&d.head, "Content-Transfer-Encoding"), "8bit");
    dsn_free(&d);

    fixture_free(&fx);
}
END_TEST


START_TEST(test_original_lines)
{
    static const pst_uint_t  which[] = { 0 };
    fixture_t                fx;
    dsn_t                    d;
    char                    *msg, *p;
    size_t                   n = 0;

    /* bare LF, bare CR, a 3000-byte header line, NUL, a long body line */
    msg = malloc(10000);
    n += (size_t) sprintf(msg + n, "A: lf\nB: cr\rC: ");
    memset(msg + n, 'c', 3000);
    n += 3000;
    n += (size_t) sprintf(msg + n, "\r\nD: nul");
    msg[n++] = '\0';
    n += (size_t) sprintf(msg + n, "x\r\n\r\n");
    memset(msg + n, 'b', 2500);
    n += 2500;
    n += (size_t) sprintf(msg + n, "\r\nlast line without CRLF");

    fixture_init(&fx, msg, n);
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);   /* check_lines */
    p = d.part[2].content;
    ck_assert_int_eq(strncmp(p, "A: lf\r\nB: cr\r\nC: ccc", 20), 0);
    ck_assert_ptr_nonnull(strstr(p, "\r\n cccc"));      /* folded */
    ck_assert_ptr_nonnull(strstr(p, "D: nul?x\r\n"));
    ck_assert_ptr_null(strstr(p, "bbbb"));
    dsn_free(&d);

    pst_str_set(&fx.m.env.ret, "full");
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);
    p = d.part[2].content;
    ck_assert_ptr_nonnull(strstr(p, "\r\n\r\nbbbb"));
    ck_assert_ptr_nonnull(strstr(p, "\r\nlast line without CRLF\r\n"));
    dsn_free(&d);

    free(msg);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_large_original)
{
    static const pst_uint_t  which[] = { 0 };
    fixture_t                fx;
    dsn_t                    d;
    char                    *msg, *p;
    size_t                   n, lines = 0;

    /* 300 KB of body, several read chunks */
    msg = malloc(400000);
    n = (size_t) sprintf(msg, "Subject: big\r\n\r\n");
    while (n < 300000) {
        n += (size_t) sprintf(msg + n, "line %06zu of the big message\r\n",
                              lines++);
    }

    fixture_init(&fx, msg, n);
    pst_str_set(&fx.m.env.ret, "FULL");
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);
    ck_assert_uint_eq(strlen(d.part[2].content), n);
    ck_assert_int_eq(memcmp(d.part[2].content, msg, n), 0);
    p = d.part[2].content + n - 40;
    ck_assert_ptr_nonnull(strstr(p, "of the big message\r\n"));
    dsn_free(&d);

    free(msg);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_prepend)
{
    static const pst_uint_t  which[] = { 0 };
    fixture_t                fx;
    dsn_t                    d;
    pst_str_t               *h;

    fixture_init(&fx, MSG, strlen(MSG));
    h = pst_array_push(fx.m.env.prepend);
    pst_str_set(h, "X-Prepended: one\r\n");
    h = pst_array_push(fx.m.env.prepend);
    pst_str_set(h, "X-No-Crlf: two");
    build(&fx, PST_DSN_FAILED, which, 1, NULL, &d);
    /* below the trace block, as the message was sent on (RFC 5321 4.4) */
    ck_assert_int_eq(strncmp(d.part[2].content,
                             "Received: from client.test by mx.test\r\n"
                             "X-Prepended: one\r\nX-No-Crlf: two\r\n"
                             "From: ", 79), 0);
    dsn_free(&d);
    fixture_free(&fx);
}
END_TEST


START_TEST(test_errors)
{
    static const pst_uint_t  which[] = { 0 }, bad[] = { 3 };
    fixture_t                fx;
    pst_buf_t               *out = (pst_buf_t *) 1;
    int                      fd;

    fixture_init(&fx, MSG, strlen(MSG));

    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   0, "mx.test", &out), PST_ERROR);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, bad, 1,
                                   "mx.test", &out), PST_ERROR);
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, (pst_dsn_action_e) 9,
                                   which, 1, "mx.test", &out), PST_ERROR);

    /* never to the null sender */
    fx.m.env.sender.len = 0;
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   1, "mx.test", &out), PST_ERROR);
    pst_str_set(&fx.m.env.sender, " \r\n\t\x01 ");
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   1, "mx.test", &out), PST_ERROR);
    pst_str_set(&fx.m.env.sender, "alice@src.test");

    /* the queue file cannot be read, or is shorter than it says */
    fd = fx.m.fd;
    fx.m.fd = -1;
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   1, "mx.test", &out), PST_ERROR);
    fx.m.fd = fd;
    pst_str_set(&fx.m.env.ret, "FULL");
    fx.m.msg_len += 1000;
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   1, "mx.test", &out), PST_ERROR);
    ck_assert_ptr_null(out);

    /* and it works with the right length */
    fx.m.msg_len -= 1000;
    ck_assert_int_eq(pst_dsn_build(fx.pool, &fx.m, PST_DSN_FAILED, which,
                                   1, "mx.test", &out), PST_OK);
    ck_assert_ptr_nonnull(out);
    pst_buf_destroy(out);

    fixture_free(&fx);
}
END_TEST


/* Through the real spool, as the relay engine does it: a message
 * injected, its state written, opened again; the DSN built from that
 * and injected itself from the null sender; then read back. */
START_TEST(test_spool_round_trip)
{
    static const pst_uint_t  which[] = { 0 };
    static const char       *subs[] = { "queue", "tmp", "corrupt" };
    pst_spool_msg_t          m, bm;
    pst_envelope_t           env, benv;
    pst_env_rcpt_t          *r;
    pst_pool_t              *pool = pst_create_pool(4096);
    pst_buf_t               *out;
    const char              *why;
    char                    *dir, *p;
    u_char                   id[PST_QUEUE_ID_LEN + 1];
    u_char                   bid[PST_QUEUE_ID_LEN + 1];
    dsn_t                    d;
    size_t                   i;

    dir = tu_tmpdir();
    for (i = 0; i < 3; i++) {
        ck_assert_int_ne(asprintf(&p, "%s/%s", dir, subs[i]), -1);
        ck_assert_int_eq(mkdir(p, 0750), 0);
        free(p);
    }
    pst_spool_use_dir(dir);

    ck_assert_int_eq(pst_envelope_init(pool, &env), PST_OK);
    pst_str_set(&env.sender, "alice@src.test");
    pst_str_set(&env.ret, "FULL");
    r = pst_envelope_add_rcpt(pool, &env, (u_char *) "bob@dest.test", 13);
    r->notify = PST_NOTIFY_FAILURE;
    ck_assert_int_eq(pst_spool_inject(&env, (u_char *) MSG, strlen(MSG),
                                      id), PST_OK);

    /* the delivery failed: the state the relay engine writes */
    r->state = PST_RCPT_FAILED;
    r->attempts = 1;
    r->last_try = time(NULL);
    pst_str_set(&r->reply, "550 5.1.1 no such user");
    pst_str_set(&r->remote, "mx.dest.test[127.0.0.2]:25");
    ck_assert_int_eq(pst_spool_state_write(&env), PST_OK);

    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) id, &m, &why),
                     PST_OK);
    ck_assert_int_eq(pst_dsn_build(pool, &m, PST_DSN_FAILED, which, 1,
                                   "mx.test", &out), PST_OK);
    pst_spool_msg_close(&m);

    /* the bounce: from <> to the sender */
    ck_assert_int_eq(pst_envelope_init(pool, &benv), PST_OK);
    ck_assert_ptr_nonnull(pst_envelope_add_rcpt(pool, &benv,
        (u_char *) "alice@src.test", 14));
    ck_assert_int_eq(pst_spool_inject(&benv, out->pos, pst_buf_size(out),
                                      bid), PST_OK);
    pst_buf_destroy(out);

    ck_assert_int_eq(pst_spool_msg_open(pool, (char *) bid, &bm, &why),
                     PST_OK);
    out = pst_buf_alloc((size_t) bm.msg_len);
    ck_assert_int_eq(pread(bm.fd, out->last, (size_t) bm.msg_len,
                           bm.msg_offset), bm.msg_len);
    out->last += bm.msg_len;
    pst_spool_msg_close(&bm);

    dsn_parse(&d, out);
    ck_assert_str_eq(get(&d.block[0], "X-Postern-Queue-ID"), (char *) id);
    ck_assert_str_eq(get(&d.block[1], "Status"), "5.1.1");
    ck_assert_str_eq(get(&d.block[1], "Remote-MTA"), "dns; mx.dest.test");
    ck_assert_str_eq(get(&d.block[1], "Diagnostic-Code"),
                     "smtp; 550 5.1.1 no such user");
    ck_assert_ptr_nonnull(get(&d.block[1], "Last-Attempt-Date"));
    ck_assert_str_eq(get(&d.part[2].head, "Content-Type"),
                     "message/rfc822");
    ck_assert_str_eq(d.part[2].content, MSG);

    dsn_free(&d);
    pst_buf_destroy(out);
    pst_spool_use_dir(NULL);
    tu_rmtree(dir);
    free(dir);
    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_dsn(void)
{
    Suite  *s = suite_create("dsn");
    TCase  *tc = tcase_create("core");

    tcase_add_test(tc, test_failed_fields);
    tcase_add_test(tc, test_ret_full);
    tcase_add_test(tc, test_delayed_delivered_relayed);
    tcase_add_test(tc, test_status_codes);
    tcase_add_test(tc, test_injection);
    tcase_add_test(tc, test_folding);
    tcase_add_test(tc, test_global);
    tcase_add_test(tc, test_original_lines);
    tcase_add_test(tc, test_large_original);
    tcase_add_test(tc, test_prepend);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_spool_round_trip);
    suite_add_tcase(s, tc);

    return s;
}
