/*
 * pst_send_mime.c -- body encodings and content types for postern-send.
 *
 * Text parts go as 7bit when they can, as 8bit when they hold 8-bit
 * characters and the server takes 8BITMIME, and as quoted-printable
 * otherwise -- and always when a line is over 998 octets or the text
 * holds NUL or a bare CR, so that no line over 998 octets is ever sent
 * raw.  Attachments are streamed in base64 from their file in 57-byte
 * groups (one 76-column line each): never held in memory.
 */

#include "pst_send.h"

#define PST_SEND_QP_LINE    76
#define PST_SEND_B64_IN     (57 * 1024)

static void pst_send_qp_out(pst_send_qp_t *q, u_char c, int literal);
static void pst_send_qp_line(FILE *f, const u_char *p, size_t n);

static const struct {
    const char  *ext;
    const char  *type;
} pst_send_types[] = {
    { "txt", "text/plain" }, { "text", "text/plain" },
    { "log", "text/plain" }, { "md", "text/markdown" },
    { "html", "text/html" }, { "htm", "text/html" },
    { "css", "text/css" }, { "csv", "text/csv" },
    { "ics", "text/calendar" }, { "xml", "application/xml" },
    { "json", "application/json" }, { "pdf", "application/pdf" },
    { "png", "image/png" }, { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
    { "webp", "image/webp" }, { "svg", "image/svg+xml" },
    { "bmp", "image/bmp" }, { "tif", "image/tiff" },
    { "tiff", "image/tiff" }, { "ico", "image/vnd.microsoft.icon" },
    { "zip", "application/zip" }, { "gz", "application/gzip" },
    { "tgz", "application/gzip" }, { "bz2", "application/x-bzip2" },
    { "xz", "application/x-xz" }, { "zst", "application/zstd" },
    { "tar", "application/x-tar" }, { "7z", "application/x-7z-compressed" },
    { "mp3", "audio/mpeg" }, { "ogg", "audio/ogg" },
    { "wav", "audio/wav" }, { "mp4", "video/mp4" },
    { "webm", "video/webm" }, { "doc", "application/msword" },
    { "docx", "application/vnd.openxmlformats-officedocument."
              "wordprocessingml.document" },
    { "xls", "application/vnd.ms-excel" },
    { "xlsx", "application/vnd.openxmlformats-officedocument."
              "spreadsheetml.sheet" },
    { "ppt", "application/vnd.ms-powerpoint" },
    { "pptx", "application/vnd.openxmlformats-officedocument."
              "presentationml.presentation" },
    { "odt", "application/vnd.oasis.opendocument.text" },
    { "ods", "application/vnd.oasis.opendocument.spreadsheet" },
    { "rtf", "application/rtf" }, { "asc", "application/pgp-signature" },
    { "sig", "application/pgp-signature" },
    { "p7s", "application/pkcs7-signature" },
    { NULL, NULL }
};


const char *
pst_send_guess_type(const char *name)
{
    const char  *dot, *slash;
    size_t       i;

    slash = strrchr(name, '/');
    dot = strrchr(name, '.');
    if (dot == NULL || (slash != NULL && dot < slash) || dot[1] == '\0') {
        return "application/octet-stream";
    }
    for (i = 0; pst_send_types[i].ext != NULL; i++) {
        if (strcasecmp(dot + 1, pst_send_types[i].ext) == 0) {
            return pst_send_types[i].type;
        }
    }
    return "application/octet-stream";
}


pst_send_cte_e
pst_send_text_cte(const u_char *p, size_t n, int allow_8bit)
{
    size_t  i, line = 0;
    int     eight = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == '\n') {
            line = 0;
            continue;
        }
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
            continue;
        }
        if (p[i] == '\0' || p[i] == '\r' || ++line > PST_SEND_MAX_LINE) {
            return PST_SEND_CTE_QP;
        }
        if (p[i] >= 0x80) {
            eight = 1;
        }
    }

    if (eight) {
        return allow_8bit ? PST_SEND_CTE_8BIT : PST_SEND_CTE_QP;
    }
    return PST_SEND_CTE_7BIT;
}


/* One encoded octet (1 or 3 characters), after a soft line break when
 * it would not leave room for the break's "=". */
static void
pst_send_qp_out(pst_send_qp_t *q, u_char c, int literal)
{
    static const char  hex[] = "0123456789ABCDEF";
    char               enc[3];
    size_t             k;

    if (literal) {
        enc[0] = (char) c;
        k = 1;
    } else {
        enc[0] = '=';
        enc[1] = hex[c >> 4];
        enc[2] = hex[c & 0x0f];
        k = 3;
    }
    if (q->col + k > PST_SEND_QP_LINE - 1) {
        fputs("=\r\n", q->f);
        q->col = 0;
    }
    fwrite(enc, 1, k, q->f);
    q->col += k;
}


void
pst_send_qp_put(pst_send_qp_t *q, const u_char *p, size_t n)
{
    size_t  i;
    u_char  c;

    for (i = 0; i < n; i++) {
        c = p[i];
        if (q->ws) {
            /* white space is literal unless it ends the line */
            pst_send_qp_out(q, q->ws, 1);
            q->ws = 0;
        }
        if (c == ' ' || c == '\t') {
            q->ws = c;
            continue;
        }
        pst_send_qp_out(q, c, c >= 33 && c <= 126 && c != '=');
    }
}


void
pst_send_qp_eol(pst_send_qp_t *q)
{
    if (q->ws) {
        pst_send_qp_out(q, q->ws, 0);
        q->ws = 0;
    }
    fputs("\r\n", q->f);
    q->col = 0;
}


/* One input line (no line end) as quoted-printable lines of <= 76. */
static void
pst_send_qp_line(FILE *f, const u_char *p, size_t n)
{
    pst_send_qp_t  q = { f, 0, 0 };

    pst_send_qp_put(&q, p, n);
    pst_send_qp_eol(&q);
}


int
pst_send_text_write(FILE *f, const u_char *p, size_t n, pst_send_cte_e cte)
{
    const u_char  *end = p + n, *nl;
    size_t         len;

    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        len = (size_t) ((nl ? nl : end) - p);
        if (nl != NULL && len > 0 && p[len - 1] == '\r') {
            len--;
        }
        if (cte == PST_SEND_CTE_QP) {
            pst_send_qp_line(f, p, len);
        } else {
            fwrite(p, 1, len, f);
            fputs("\r\n", f);
        }
        p = nl ? nl + 1 : end;
    }

    return ferror(f) ? PST_ERROR : PST_OK;
}


int
pst_send_base64_file(FILE *f, int fd)
{
    u_char   *in, *out;
    size_t    have, i, k, o;
    ssize_t   n;
    int       rc = PST_OK;

    in = malloc(PST_SEND_B64_IN);
    out = malloc(PST_SEND_B64_IN / 57 * 78 + 8);
    if (in == NULL || out == NULL) {
        free(in);
        free(out);
        return PST_ERROR;
    }

    for ( ;; ) {
        /* fill a whole buffer (a multiple of 57) unless at the end */
        for (have = 0; have < PST_SEND_B64_IN; have += (size_t) n) {
            n = read(fd, in + have, PST_SEND_B64_IN - have);
            if (n == -1 && errno == EINTR) {
                n = 0;
                continue;
            }
            if (n <= 0) {
                break;
            }
        }
        if (n == -1) {
            rc = PST_ERROR;
            break;
        }
        for (i = 0, o = 0; i < have; i += k) {
            k = have - i < 57 ? have - i : 57;
            o += pst_base64_encode(out + o, in + i, k);
            out[o++] = '\r';
            out[o++] = '\n';
        }
        if (o > 0 && fwrite(out, 1, o, f) != o) {
            rc = PST_ERROR;
            break;
        }
        if (have < PST_SEND_B64_IN) {
            break;
        }
    }

    free(in);
    free(out);
    return rc == PST_OK && !ferror(f) ? PST_OK : PST_ERROR;
}
