/*
 * pst_tlsrpt_json.c -- the pure parts of TLS reporting (RFC 8460): the
 * aggregate report as JSON (4.4), the mail that carries it (5.3) and
 * the "rua" of a "_smtp._tls" TXT record (3).  No I/O: unit tested.
 */

#include "pst_core.h"
#include "pst_tlsrpt.h"


typedef struct {
    char    *p;
    size_t   len, cap;
    int      failed;
} pst_tr_out_t;


static void pst_tr_put(pst_tr_out_t *o, const char *s, size_t n);
static void pst_tr_printf(pst_tr_out_t *o, const char *fmt, ...)
    PST_PRINTF(2, 3);
static void pst_tr_str(pst_tr_out_t *o, const char *s, size_t n);
static void pst_tr_lines(pst_tr_out_t *o, const char *lines);
static void pst_tr_time(char *buf, size_t size, time_t t);


static void
pst_tr_put(pst_tr_out_t *o, const char *s, size_t n)
{
    char    *p;
    size_t   cap;

    if (o->failed) {
        return;
    }
    if (o->len + n + 1 > o->cap) {
        cap = (o->cap ? o->cap * 2 : 1024) + n;
        p = realloc(o->p, cap);
        if (p == NULL) {
            o->failed = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}


static void
pst_tr_printf(pst_tr_out_t *o, const char *fmt, ...)
{
    char     buf[600];
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0) {
        pst_tr_put(o, buf, pst_min((size_t) n, sizeof(buf) - 1));
    }
}


/* A JSON string (RFC 8259 7): quotes, backslashes and control
 * characters escaped. */
static void
pst_tr_str(pst_tr_out_t *o, const char *s, size_t n)
{
    size_t  i;
    char    esc[8];

    pst_tr_put(o, "\"", 1);
    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = s[i];
            pst_tr_put(o, esc, 2);
        } else if ((u_char) s[i] < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", (u_char) s[i]);
            pst_tr_put(o, esc, 6);
        } else {
            pst_tr_put(o, &s[i], 1);
        }
    }
    pst_tr_put(o, "\"", 1);
}


/* "a\nb\n" as ["a", "b"]. */
static void
pst_tr_lines(pst_tr_out_t *o, const char *lines)
{
    const char  *p = lines, *nl;
    int          first = 1;

    pst_tr_put(o, "[", 1);
    while (p != NULL && *p != '\0') {
        nl = strchr(p, '\n');
        if (nl == NULL) {
            nl = p + strlen(p);
        }
        if (nl > p) {
            pst_tr_put(o, first ? "" : ", ", first ? 0 : 2);
            pst_tr_str(o, p, (size_t) (nl - p));
            first = 0;
        }
        p = *nl ? nl + 1 : nl;
    }
    pst_tr_put(o, "]", 1);
}


static void
pst_tr_time(char *buf, size_t size, time_t t)
{
    struct tm  tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


char *
pst_tlsrpt_json(const pst_tlsrpt_dom_t *d, const char *org,
    const char *contact, const char *report_id, time_t start, time_t end)
{
    static const char  *types[] = { "no-policy-found", "sts", "tlsa" };
    pst_tr_out_t        o = { NULL, 0, 0, 0 };
    char                s[32], e[32];
    pst_uint_t          i;

    pst_tr_time(s, sizeof(s), start);
    pst_tr_time(e, sizeof(e), end);
    pst_tr_put(&o, "{\"organization-name\": ", 22);
    pst_tr_str(&o, org, strlen(org));
    pst_tr_printf(&o, ", \"date-range\": {\"start-datetime\": \"%s\","
                  " \"end-datetime\": \"%s\"}, \"contact-info\": ", s, e);
    pst_tr_str(&o, contact, strlen(contact));
    pst_tr_put(&o, ", \"report-id\": ", 15);
    pst_tr_str(&o, report_id, strlen(report_id));
    pst_tr_printf(&o, ", \"policies\": [{\"policy\": {\"policy-type\":"
                  " \"%s\", \"policy-string\": ", types[d->type]);
    pst_tr_lines(&o, d->policy);
    pst_tr_put(&o, ", \"policy-domain\": ", 19);
    pst_tr_str(&o, d->domain, strlen(d->domain));
    if (d->type == PST_TLSRPT_STS) {
        pst_tr_put(&o, ", \"mx-host\": ", 13);
        pst_tr_lines(&o, d->mx);
    }
    pst_tr_printf(&o, "}, \"summary\": {\"total-successful-session-count\":"
                  " %lu, \"total-failure-session-count\": %lu}",
                  d->ok, d->failed);
    if (d->nfail > 0) {
        pst_tr_put(&o, ", \"failure-details\": [", 22);
    }
    for (i = 0; i < d->nfail; i++) {
        pst_tr_printf(&o, "%s{\"result-type\": \"%s\", \"failed-session-"
                      "count\": %lu", i ? ", " : "", d->fail[i].result,
                      d->fail[i].count);
        if (d->fail[i].mx[0] != '\0') {
            pst_tr_put(&o, ", \"receiving-mx-hostname\": ", 27);
            pst_tr_str(&o, d->fail[i].mx, strlen(d->fail[i].mx));
        }
        if (d->fail[i].ip[0] != '\0') {
            pst_tr_put(&o, ", \"receiving-ip\": ", 18);
            pst_tr_str(&o, d->fail[i].ip, strlen(d->fail[i].ip));
        }
        pst_tr_put(&o, "}", 1);
    }
    pst_tr_put(&o, d->nfail > 0 ? "]}]}" : "}]}", d->nfail > 0 ? 4 : 3);

    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}


/* The report as an attachment (RFC 8460 5.3), base64 in 76-column
 * lines. */
u_char *
pst_tlsrpt_message(const pst_tlsrpt_dom_t *d, const char *json,
    const char *submitter, const char *rcpt, const char *report_id,
    time_t start, time_t end, size_t *len)
{
    pst_tr_out_t  o = { NULL, 0, 0, 0 };
    u_char       *b64;
    size_t        n = strlen(json), blen, i;
    char          date[64], s[32], e[32];
    struct tm     tm;
    time_t        now = time(NULL);

    b64 = malloc(pst_base64_encoded_length(n) + 1);
    if (b64 == NULL) {
        return NULL;
    }
    blen = pst_base64_encode(b64, (const u_char *) json, n);
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(s, sizeof(s), "%lld", (long long) start);
    snprintf(e, sizeof(e), "%lld", (long long) end);

    pst_tr_printf(&o, "From: TLS reports <noreply-smtp-tls-reporting@%s>\r\n"
                  "To: <%s>\r\nDate: %s\r\n", submitter, rcpt, date);
    pst_tr_printf(&o, "Subject: Report Domain: %s Submitter: %s Report-ID:"
                  " <%s>\r\n", d->domain, submitter, report_id);
    pst_tr_printf(&o, "Message-ID: <%s>\r\nTLS-Report-Domain: %s\r\n"
                  "TLS-Report-Submitter: %s\r\nAuto-Submitted: "
                  "auto-generated\r\nMIME-Version: 1.0\r\n", report_id,
                  d->domain, submitter);
    pst_tr_printf(&o, "Content-Type: multipart/report; report-type=\"tlsrpt\";"
                  "\r\n\tboundary=\"=_tlsrpt_%s\"\r\n\r\n--=_tlsrpt_%s\r\n"
                  "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                  "The TLS report of %s for %s.\r\n\r\n--=_tlsrpt_%s\r\n",
                  s, s, submitter, d->domain, s);
    pst_tr_printf(&o, "Content-Type: application/tlsrpt+json\r\n"
                  "Content-Transfer-Encoding: base64\r\nContent-Disposition:"
                  " attachment;\r\n\tfilename=\"%s!%s!%s!%s.json\"\r\n\r\n",
                  submitter, d->domain, s, e);
    for (i = 0; i < blen; i += 76) {
        pst_tr_put(&o, (char *) b64 + i, pst_min(76, blen - i));
        pst_tr_put(&o, "\r\n", 2);
    }
    pst_tr_printf(&o, "\r\n--=_tlsrpt_%s--\r\n", s);
    free(b64);

    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return (u_char *) o.p;
}


int
pst_tlsrpt_rua(const char *txt, char *out, size_t size)
{
    const char  *p, *end;
    size_t       n;

    if (strncmp(txt, "v=TLSRPTv1", 10) != 0
        || (txt[10] != ';' && txt[10] != ' '))
    {
        return PST_DECLINED;
    }
    p = strstr(txt, "rua=");
    while (p != NULL && *p != '\0') {
        p += (strncmp(p, "rua=", 4) == 0) ? 4 : 0;
        while (*p == ' ' || *p == ',') {
            p++;
        }
        end = p + strcspn(p, ",; ");
        n = (size_t) (end - p);
        if (n > 7 && strncasecmp(p, "mailto:", 7) == 0 && n - 7 < size
            && memchr(p + 7, '@', n - 7) != NULL
            && strcspn(p + 7, "<>\"\r\n") >= n - 7)
        {
            memcpy(out, p + 7, n - 7);
            out[n - 7] = '\0';
            return PST_OK;
        }
        if (*end != ',') {
            break;
        }
        p = end;
    }
    return PST_DECLINED;
}
