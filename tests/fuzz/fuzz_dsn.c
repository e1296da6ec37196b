/*
 * fuzz_dsn.c -- libFuzzer harness for DSN generation (pst_dsn.c): every
 * value a client or a remote server controls -- sender, ENVID, the
 * recipients' addresses, ORCPTs, replies and remote names, the original
 * message's bytes -- comes from the input.  Whatever they hold, a
 * report must be well formed:
 *   - every line ends in CRLF and has at most 998 octets;
 *   - the top header has only our fields, each once;
 *   - the delivery-status has only the RFC 3464 fields we write;
 *   - the boundary appears exactly four times (three parts, the end);
 *   - without SMTPUTF8 the text and the report are pure ASCII.
 *
 * Input: byte 0 the action (mod 4), byte 1 flags (1 SMTPUTF8, 2
 * RET=FULL, 4 a small full_max), then fields each with a 2-byte length:
 * sender, envid, reporting MTA, prepend line, then for up to three
 * recipients addr, orcpt, reply, remote; the rest is the message.
 */

#include "pst_core.h"
#include "pst_dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char  *fz_top[] = {
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding", NULL
};

static const char  *fz_report[] = {
    "Reporting-MTA", "X-Postern-Queue-ID", "Original-Envelope-Id",
    "Arrival-Date", "Final-Recipient", "Original-Recipient", "Action",
    "Status", "Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date",
    "Will-Retry-Until", NULL
};


static void
fz_fail(const char *what, const u_char *at)
{
    fprintf(stderr, "fuzz_dsn: %s at \"%.60s\"\n", what, (char *) at);
    abort();
}


static int
fz_field(const u_char *p, size_t n, const char **names)
{
    size_t  l;

    for ( /* void */ ; *names != NULL; names++) {
        l = strlen(*names);
        if (n > l && p[l] == ':' && memcmp(p, *names, l) == 0) {
            return 1;
        }
    }
    return 0;
}


/* Lines of [p, end): only continuation lines, empty lines and fields of
 * names; with once, each name at most once; stop at an empty line when
 * head.  Returns the end of what was checked. */
static const u_char *
fz_fields(const u_char *p, const u_char *end, const char **names, int head,
    int ascii)
{
    const u_char  *eol;
    size_t         i;
    unsigned       seen = 0;

    for ( /* void */ ; p < end; p = eol + 2) {
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        if (eol == NULL) {
            eol = end;
        }
        for (i = 0; ascii && p + i < eol; i++) {
            if (p[i] >= 0x80) {
                fz_fail("8-bit in an ASCII part", p);
            }
        }
        if (eol == p) {
            if (head) {
                return eol + 2;
            }
            continue;
        }
        if (*p == ' ') {
            continue;
        }
        if (!fz_field(p, (size_t) (eol - p), names)) {
            fz_fail("a field that is not ours", p);
        }
        for (i = 0; head && names[i] != NULL; i++) {
            if ((size_t) (eol - p) > strlen(names[i])
                && memcmp(p, names[i], strlen(names[i])) == 0
                && p[strlen(names[i])] == ':')
            {
                if (seen & (1u << i)) {
                    fz_fail("a field twice", p);
                }
                seen |= 1u << i;
            }
        }
    }

    return end;
}


static void
fz_check(const u_char *p, size_t n, int utf8)
{
    const u_char  *end = p + n, *q, *body, *b, *parts[5];
    char           delim[128];
    size_t         col = 0, i, k;

    for (i = 0; i < n; i++) {
        if (p[i] == '\r') {
            if (i + 1 == n || p[i + 1] != '\n') {
                fz_fail("bare CR", p + i);
            }
            i++;
            col = 0;
        } else if (p[i] == '\n') {
            fz_fail("bare LF", p + i);
        } else if (++col > 998) {
            fz_fail("line over 998", p + i);
        }
    }
    if (n < 2 || col != 0) {
        fz_fail("no final CRLF", p);
    }

    body = fz_fields(p, end, fz_top, 1, !utf8);

    /* the boundary of our Content-Type (the To: field may hold any
     * text, "boundary=" included) */
    b = memmem(p, (size_t) (body - p), "\r\nContent-Type: multipart/report",
               32);
    b = b ? memmem(b, (size_t) (body - b), "boundary=\"", 10) : NULL;
    q = b ? memchr(b + 10, '"', (size_t) (body - b - 10)) : NULL;
    if (q == NULL || q - b - 10 > 100) {
        fz_fail("no boundary", p);
    }
    b += 10;
    k = (size_t) snprintf(delim, sizeof(delim), "\r\n--%.*s",
                          (int) (q - b), b);

    /* exactly four delimiters: the parts cannot hold the boundary */
    for (i = 0, q = body - 2; i < 5; i++, q += k) {
        q = memmem(q, (size_t) (end - q), delim, k);
        if (q == NULL) {
            break;
        }
        parts[i] = q;
    }
    if (i != 4 || memcmp(parts[3] + k, "--\r\n", 4) != 0) {
        fz_fail("boundaries", body);
    }

    /* the report's lines after its part header */
    q = memmem(parts[1], (size_t) (parts[2] - parts[1]), "\r\n\r\n", 4);
    if (q == NULL) {
        fz_fail("report part", parts[1]);
    }
    (void) fz_fields(q + 4, parts[2], fz_report, 0, !utf8);
}


/* The next field: 2-byte length, then bytes (cut at the input's end). */
static void
fz_take(const uint8_t **p, const uint8_t *end, pst_str_t *s)
{
    size_t  n;

    s->data = (u_char *) "";
    s->len = 0;
    if (end - *p < 2) {
        *p = end;
        return;
    }
    n = (size_t) ((*p)[0] << 8 | (*p)[1]);
    *p += 2;
    n = pst_min(n, (size_t) (end - *p));
    s->data = (u_char *) *p;
    s->len = n;
    *p += n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pst_uint_t   which[] = { 0, 1, 2 };
    const uint8_t      *p = data + 2, *end = data + size;
    pst_spool_msg_t     m;
    pst_env_rcpt_t     *r;
    pst_dsn_opts_t      opts;
    pst_pool_t         *pool;
    pst_buf_t          *out;
    pst_str_t           mta, *pre, addr;
    u_char             *mta_z;
    FILE               *f;
    int                 i;

    if (size < 2) {
        return 0;
    }

    pool = pst_create_pool(4096);
    memset(&m, 0, sizeof(m));
    memset(&opts, 0, sizeof(opts));
    (void) pst_envelope_init(pool, &m.env);
    pst_str_set(&m.env.id, "0123456789ABCDEFGH");
    m.env.smtputf8 = data[1] & 1;
    if (data[1] & 2) {
        pst_str_set(&m.env.ret, "FULL");
    }
    opts.full_max = (data[1] & 4) ? 64 : 0;
    opts.retry_until = 1765180800;
    m.env.arrival_sec = 1764748800;

    fz_take(&p, end, &m.env.sender);
    fz_take(&p, end, &m.env.envid);
    fz_take(&p, end, &mta);
    mta_z = pst_pstrdup(pool, &mta);
    opts.reporting_mta = mta_z ? (char *) mta_z : "mx.test";
    pre = pst_array_push(m.env.prepend);
    fz_take(&p, end, pre);

    for (i = 0; i < 3; i++) {
        fz_take(&p, end, &addr);
        r = pst_envelope_add_rcpt(pool, &m.env, addr.data, addr.len);
        fz_take(&p, end, &r->orcpt);
        fz_take(&p, end, &r->reply);
        fz_take(&p, end, &r->remote);
        r->last_try = 1764752400;
    }

    f = tmpfile();
    if (f == NULL || (end > p && fwrite(p, 1, (size_t) (end - p), f)
                                 != (size_t) (end - p))
        || fflush(f) != 0)
    {
        abort();
    }
    m.fd = fileno(f);
    m.msg_len = (off_t) (end - p);

    if (pst_dsn_build_opts(pool, &m, (pst_dsn_action_e) (data[0] % 4),
                           which, 1 + data[0] / 4 % 3, &opts, &out)
        == PST_OK)
    {
        fz_check(out->pos, pst_buf_size(out), m.env.smtputf8);
        pst_buf_destroy(out);
    } else {
        /* refused: only without a sender worth the name */
        for (i = 0; (size_t) i < m.env.sender.len; i++) {
            if (m.env.sender.data[i] > 0x20 && m.env.sender.data[i] < 0x7f)
            {
                fz_fail("failed with a sender", data);
            }
        }
    }

    fclose(f);
    pst_destroy_pool(pool);
    return 0;
}
