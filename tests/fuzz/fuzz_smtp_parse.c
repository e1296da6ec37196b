/*
 * fuzz_smtp_parse.c -- libFuzzer harness for the command-line parsers
 * (pst_smtp_parse.c): pst_smtp_read_line(), pst_smtp_parse_path() and
 * pst_smtp_parse_params(), called the way the session calls them.
 *
 * The first input byte chooses the options (line limit, strict bare LF,
 * SMTPUTF8, MAIL or RCPT, read size); the rest is what the client sent.
 * It is appended to a small buffer in reads of the chosen size, lines
 * are cut, and every complete line that looks like MAIL or RCPT is
 * parsed further.  Invariants checked besides the sanitizers: a line
 * never holds CR, LF or NUL; a parsed path fits PST_SMTP_PATH_MAX and
 * *pos stays inside the line.
 */

#include "pst_core.h"
#include "pst_smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_BUF   1024


static void
fz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_smtp_parse: invariant failed: %s\n", what);
        abort();
    }
}


static void
fz_command(pst_pool_t *pool, u_char *p, u_char *end, unsigned opt)
{
    pst_smtp_params_t  prm;
    pst_smtp_error_t   err;
    pst_smtp_path_t    path;
    u_char            *pos, *copy;
    size_t             n;
    int                mail, utf8;

    if (end - p >= 10 && pst_strncasecmp(p, (u_char *) "MAIL FROM:", 10)
                         == 0)
    {
        mail = 1;
        p += 10;
    } else if (end - p >= 8
               && pst_strncasecmp(p, (u_char *) "RCPT TO:", 8) == 0)
    {
        mail = 0;
        p += 8;
    } else {
        /* anything else: try it as a path of the kind opt says */
        mail = (opt & 0x10) != 0;
    }

    /* an exact-size copy: ASan sees a read past the line's end */
    n = (size_t) (end - p);
    copy = malloc(n ? n : 1);
    fz_check(copy != NULL, "malloc");
    memcpy(copy, p, n);

    utf8 = (opt & 0x20) != 0;
    pos = copy;
    memset(&err, 0, sizeof(err));

    if (pst_smtp_parse_path(pool, &pos, copy + n, mail, utf8, &path, &err)
        == PST_OK)
    {
        fz_check(pos > copy && pos <= copy + n, "path: pos outside");
        fz_check(path.addr.data != NULL, "path: no address");
        fz_check(path.addr.len + 2 <= PST_SMTP_PATH_MAX, "path too long");
        fz_check(path.local.len <= PST_SMTP_LOCAL_MAX, "local part");
        fz_check(path.addr.data[path.addr.len] == '\0', "not terminated");
        fz_check(!path.utf8 || utf8, "non-ASCII without SMTPUTF8");

        memset(&err, 0, sizeof(err));
        if (pst_smtp_parse_params(pool, pos, copy + n, mail, &prm, &err)
            != PST_OK)
        {
            fz_check(err.code >= 400 && err.code < 600 && err.text != NULL,
                     "params: error without a reply");
        } else {
            fz_check(mail || prm.size == -1, "RCPT with SIZE");
        }

    } else {
        fz_check(err.code >= 400 && err.code < 600 && err.text != NULL,
                 "path: error without a reply");
    }

    /* the parameters alone too, whatever the path was */
    memset(&err, 0, sizeof(err));
    (void) pst_smtp_parse_params(pool, copy, copy + n, mail, &prm, &err);

    free(copy);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_smtp_line_e   rc;
    pst_pool_t       *pool;
    pst_buf_t        *b;
    pst_str_t         line;
    unsigned          opt, skipping;
    size_t            limit, chunk, off, n, k;

    if (size == 0) {
        return 0;
    }

    opt = data[0];
    data++;
    size--;

    /* 16..512: short limits exercise the overlong-line path */
    limit = (opt & 0x08) ? PST_SMTP_MIN_LINE : 16 + (opt & 0x07) * 8;
    chunk = 1 + ((opt >> 6) * 37);

    pool = pst_create_pool(4096);
    b = pst_buf_alloc(FZ_BUF);
    fz_check(pool != NULL && b != NULL, "alloc");
    skipping = 0;

    for (off = 0; off < size; off += n) {
        n = pst_min(chunk, size - off);
        n = pst_min(n, (size_t) (b->end - b->last));
        if (n == 0) {
            /* the session never lets the buffer fill: a full buffer
             * without a line is an overlong line */
            fz_check(0, "buffer full without a line or a skip");
        }
        memcpy(b->last, data + off, n);
        b->last += n;

        for ( ;; ) {
            rc = pst_smtp_read_line(b, limit, (opt & 0x04) != 0,
                                    &skipping, &line);
            if (rc == PST_SMTP_LINE_AGAIN) {
                break;
            }
            fz_check(b->pos <= b->last, "pos past last");
            if (rc != PST_SMTP_LINE_OK) {
                continue;
            }

            fz_check(line.len + 1 <= limit, "line over the limit");
            for (k = 0; k < line.len; k++) {
                fz_check(line.data[k] != '\r' && line.data[k] != '\n'
                         && line.data[k] != '\0', "CR, LF or NUL in a line");
            }

            fz_command(pool, line.data, line.data + line.len, opt);
        }

        pst_buf_compact(b);
        fz_check(pst_buf_size(b) < limit, "buffer holds an overlong line");
    }

    pst_buf_destroy(b);
    pst_destroy_pool(pool);

    return 0;
}
