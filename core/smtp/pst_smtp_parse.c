/*
 * pst_smtp_parse.c -- byte parsers for the SMTP receive path.
 *
 * All parsers work on counted bytes, never on C strings, and never read
 * past `end`.  They return PST_OK or PST_ERROR with an RFC 3463 reply in
 * *err; they never decide policy.  Paths follow RFC 5321 4.1.2 with
 * RFC 6531 (UTF-8 local parts and U-label domains); ESMTP parameters
 * follow RFC 1870 (SIZE), RFC 6152 (BODY), RFC 6531 (SMTPUTF8), RFC 3461
 * (RET, ENVID, NOTIFY, ORCPT) and RFC 4954 (AUTH).
 */

#include "pst_smtp.h"
#include "pst_envelope.h"


#define PST_ATEXT    1
#define PST_LETDIG   2
#define PST_QTEXT    4

static u_char  pst_ctype[256];


static void
pst_ctype_init(void)
{
    const char  *specials = "!#$%&'*+-/=?^_`{|}~";
    int          c;

    if (pst_ctype['a']) {
        return;
    }

    for (c = 0; c < 256; c++) {
        if (isalnum(c) && c < 128) {
            pst_ctype[c] |= PST_ATEXT | PST_LETDIG;
        }
        if ((c >= 32 && c <= 33) || (c >= 35 && c <= 91)
            || (c >= 93 && c <= 126))
        {
            pst_ctype[c] |= PST_QTEXT;
        }
    }

    for ( /* void */ ; *specials; specials++) {
        pst_ctype[(u_char) *specials] |= PST_ATEXT;
    }
}


/* Length of a valid UTF-8 sequence starting at p (non-ASCII), or 0. */
static size_t
pst_utf8_len(const u_char *p, const u_char *end)
{
    size_t  n, i;
    u_char  c = *p;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
    } else {
        return 0;
    }

    if ((size_t) (end - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    /* overlongs and surrogates */
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)
        || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
    {
        return 0;
    }

    return n;
}


/* Domain or U-label domain (RFC 5321 Domain, RFC 6531).  PST_OK. */
int
pst_smtp_check_domain(const u_char *p, size_t n, int utf8_ok)
{
    const u_char  *end = p + n, *label;
    size_t         k;

    pst_ctype_init();

    if (n == 0 || n > PST_SMTP_DOMAIN_MAX) {
        return PST_ERROR;
    }

    while (p < end) {
        label = p;

        while (p < end && *p != '.') {
            if (*p >= 0x80) {
                if (!utf8_ok) {
                    return PST_ERROR;
                }
                k = pst_utf8_len(p, end);
                if (k == 0) {
                    return PST_ERROR;
                }
                p += k;
                continue;
            }
            if (!(pst_ctype[*p] & PST_LETDIG) && *p != '-') {
                return PST_ERROR;
            }
            p++;
        }

        /* let-dig [ldh-str]: no empty label, no leading/trailing '-' */
        if (p == label || p - label > 63 || *label == '-' || p[-1] == '-') {
            return PST_ERROR;
        }

        if (p < end) {
            p++;                         /* '.' */
            if (p == end) {
                return PST_ERROR;        /* trailing dot */
            }
        }
    }

    return PST_OK;
}


static int
pst_smtp_check_literal(const u_char *p, size_t n)
{
    char             buf[64];
    struct in6_addr  a6;
    struct in_addr   a4;

    /* p points inside the brackets */
    if (n >= sizeof(buf)) {
        return PST_ERROR;
    }

    if (n > 5 && pst_strncasecmp(p, (u_char *) "IPv6:", 5) == 0) {
        memcpy(buf, p + 5, n - 5);
        buf[n - 5] = '\0';
        return inet_pton(AF_INET6, buf, &a6) == 1 ? PST_OK : PST_ERROR;
    }

    memcpy(buf, p, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, &a4) == 1 ? PST_OK : PST_ERROR;
}


static void
pst_smtp_set_error(pst_smtp_error_t *err, int code, const char *ecode,
    const char *text)
{
    err->code = code;
    err->ecode = ecode;
    err->text = text;
}


/*
 * Parse "<path>" at *pos.  reverse: MAIL FROM (accepts "<>").  On
 * success *pos is just past '>' and path->addr is "local@domain" with the
 * domain lowercased (ASCII), allocated in pool.
 */
int
pst_smtp_parse_path(pst_pool_t *pool, u_char **pos, u_char *end,
    int reverse, int utf8_ok, pst_smtp_path_t *path, pst_smtp_error_t *err)
{
    u_char  *p, *local, *local_end, *dom, *dom_end, *a;
    size_t   k;
    int      quoted;

    pst_ctype_init();
    memset(path, 0, sizeof(pst_smtp_path_t));

    p = *pos;

    if (p == end || *p != '<') {
        goto syntax;
    }
    p++;

    if (p < end && *p == '>') {
        if (!reverse) {
            goto syntax;
        }
        path->null = 1;
        path->addr.data = (u_char *) "";
        *pos = p + 1;
        return PST_OK;
    }

    /* source route: @dom,@dom: -- accepted and ignored (RFC 5321 4.1.2,
     * appendix C) */
    if (p < end && *p == '@') {
        while (p < end && *p != ':') {
            if (*p == '>' || *p == '<' || *p == ' ') {
                goto syntax;
            }
            p++;
        }
        if (p == end) {
            goto syntax;
        }
        p++;
        path->route = 1;
    }

    /* local part */
    local = p;
    quoted = 0;

    if (p < end && *p == '"') {
        quoted = 1;
        p++;
        for ( ;; ) {
            if (p == end) {
                goto syntax;
            }
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\') {
                if (p + 1 == end || p[1] < 32 || p[1] > 126) {
                    goto syntax;
                }
                p += 2;
                continue;
            }
            if (*p >= 0x80) {
                k = pst_utf8_len(p, end);
                if (k == 0) {
                    goto syntax;
                }
                path->utf8 = 1;
                p += k;
                continue;
            }
            if (!(pst_ctype[*p] & PST_QTEXT)) {
                goto syntax;
            }
            p++;
        }

    } else {
        for ( ;; ) {
            /* atom */
            if (p == end) {
                goto syntax;
            }
            a = p;
            while (p < end) {
                if (*p >= 0x80) {
                    k = pst_utf8_len(p, end);
                    if (k == 0) {
                        goto syntax;
                    }
                    path->utf8 = 1;
                    p += k;
                    continue;
                }
                if (!(pst_ctype[*p] & PST_ATEXT)) {
                    break;
                }
                p++;
            }
            if (p == a) {
                goto syntax;             /* empty atom: "..", ".x", "x." */
            }
            if (p < end && *p == '.') {
                p++;
                continue;
            }
            break;
        }
    }

    local_end = p;

    if ((size_t) (local_end - local) > PST_SMTP_LOCAL_MAX) {
        pst_smtp_set_error(err, 501, "5.1.3", "Local part too long");
        return PST_ERROR;
    }

    if (p < end && *p == '>' && !reverse && !quoted && !path->route
        && local_end - local == 10
        && pst_strncasecmp(local, (u_char *) "postmaster", 10) == 0)
    {
        /* RFC 5321 4.5.1: <Postmaster> without a domain.  Copied like
         * any address: the recipient outlives the input line */
        path->addr.data = pst_palloc(pool, 11);
        if (path->addr.data == NULL) {
            pst_smtp_set_error(err, 451, "4.3.0", "Out of memory");
            return PST_ERROR;
        }
        memcpy(path->addr.data, local, 10);
        path->addr.data[10] = '\0';
        path->addr.len = 10;
        path->local = path->addr;
        path->postmaster = 1;
        *pos = p + 1;
        return PST_OK;
    }

    if (p == end || *p != '@') {
        goto syntax;
    }
    p++;

    /* domain or address literal */
    dom = p;
    if (p < end && *p == '[') {
        while (p < end && *p != ']') {
            p++;
        }
        if (p == end
            || pst_smtp_check_literal(dom + 1, (size_t) (p - dom - 1))
               != PST_OK)
        {
            goto syntax;
        }
        p++;
        path->ip_literal = 1;

    } else {
        while (p < end && *p != '>') {
            p++;
        }
        if (pst_smtp_check_domain(dom, (size_t) (p - dom), 1) != PST_OK) {
            goto syntax;
        }
        for (a = dom; a < p; a++) {
            if (*a >= 0x80) {
                path->utf8 = 1;
                break;
            }
        }
    }

    dom_end = p;

    if (p == end || *p != '>') {
        goto syntax;
    }

    if ((size_t) (dom_end - local) + 2 > PST_SMTP_PATH_MAX) {
        pst_smtp_set_error(err, 501, "5.1.3", "Path too long");
        return PST_ERROR;
    }

    if (path->utf8 && !utf8_ok) {
        pst_smtp_set_error(err, 553, "5.6.7",
                           "Non-ASCII address needs the SMTPUTF8 parameter");
        return PST_ERROR;
    }

    k = (size_t) (dom_end - local);
    path->addr.data = pst_palloc(pool, k + 1);
    if (path->addr.data == NULL) {
        pst_smtp_set_error(err, 451, "4.3.0", "Out of memory");
        return PST_ERROR;
    }

    memcpy(path->addr.data, local, (size_t) (local_end - local));
    path->addr.data[local_end - local] = '@';
    pst_strlow(path->addr.data + (local_end - local) + 1, dom,
               (size_t) (dom_end - dom));
    path->addr.len = k;
    path->addr.data[k] = '\0';

    path->local.data = path->addr.data;
    path->local.len = (size_t) (local_end - local);
    path->domain.data = path->addr.data + path->local.len + 1;
    path->domain.len = (size_t) (dom_end - dom);

    *pos = p + 1;
    return PST_OK;

syntax:

    if (reverse) {
        pst_smtp_set_error(err, 501, "5.1.7", "Bad sender address syntax");
    } else {
        pst_smtp_set_error(err, 501, "5.1.3",
                           "Bad recipient address syntax");
    }

    return PST_ERROR;
}


/*
 * An address as pst_smtp_parse_path() left it ("local@domain", "" or
 * "Postmaster") in parts: the local part without its quoting (RFC 5321
 * 4.1.2: the quotes removed, each quoted-pair "\x" taken as "x"), a
 * NUL-terminated copy in pool; the domain, the rest after the last '@'
 * (a quoted local part may hold '@', a domain never does), "" without
 * one.  PST_OK, or PST_ERROR when out of memory.
 */
int
pst_smtp_addr_split(pst_pool_t *pool, const pst_str_t *addr,
    pst_str_t *local, pst_str_t *domain)
{
    const u_char  *p, *end, *at;
    u_char        *d;

    at = NULL;
    for (p = addr->data, end = p + addr->len; p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at == NULL) {
        at = end;
        pst_str_set(domain, "");
    } else {
        domain->data = (u_char *) at + 1;
        domain->len = (size_t) (end - at - 1);
    }

    d = pst_palloc(pool, (size_t) (at - addr->data) + 1);
    if (d == NULL) {
        return PST_ERROR;
    }
    local->data = d;
    p = addr->data;
    if (at - p >= 2 && *p == '"' && at[-1] == '"') {
        for (p++, at--; p < at; p++) {         /* between the quotes */
            if (*p == '\\' && p + 1 < at) {
                p++;
            }
            *d++ = *p;
        }
    } else {
        for ( /* void */ ; p < at; p++) {
            *d++ = *p;
        }
    }
    *d = '\0';
    local->len = (size_t) (d - local->data);
    return PST_OK;
}


static int
pst_smtp_xtext_value(pst_pool_t *pool, const u_char *v, size_t n,
    size_t max, pst_str_t *out)
{
    size_t   i;
    ssize_t  k;

    out->data = pst_palloc(pool, n + 1);
    if (out->data == NULL) {
        return PST_ERROR;
    }

    k = pst_xtext_decode(out->data, v, n);
    if (k < 0 || (size_t) k > max) {
        return PST_ERROR;
    }

    /*
     * ENVID, ORCPT and AUTH= decode to printable text (RFC 3461 4.4,
     * 4.2; RFC 4954 5): "+00" or "+0A" would smuggle a NUL or a line
     * break into the envelope and, later, into a DSN.
     */
    for (i = 0; i < (size_t) k; i++) {
        if (out->data[i] < 0x20 || out->data[i] == 0x7f) {
            return PST_ERROR;
        }
    }

    out->len = (size_t) k;
    out->data[k] = '\0';
    return PST_OK;
}


static int
pst_smtp_parse_notify(const u_char *v, size_t n, unsigned *notify)
{
    const u_char  *end = v + n, *w;
    size_t         len;
    unsigned       f = 0;

    if (n == 5 && pst_strncasecmp(v, (u_char *) "NEVER", 5) == 0) {
        *notify = PST_NOTIFY_NEVER;
        return PST_OK;
    }

    while (v < end) {
        w = v;
        while (v < end && *v != ',') {
            v++;
        }
        len = (size_t) (v - w);

        if (len == 7 && pst_strncasecmp(w, (u_char *) "SUCCESS", 7) == 0) {
            f |= PST_NOTIFY_SUCCESS;
        } else if (len == 7
                   && pst_strncasecmp(w, (u_char *) "FAILURE", 7) == 0)
        {
            f |= PST_NOTIFY_FAILURE;
        } else if (len == 5
                   && pst_strncasecmp(w, (u_char *) "DELAY", 5) == 0)
        {
            f |= PST_NOTIFY_DELAY;
        } else {
            return PST_ERROR;            /* includes NEVER in a list */
        }

        if (v < end) {
            v++;
            if (v == end) {
                return PST_ERROR;
            }
        }
    }

    if (f == 0) {
        return PST_ERROR;
    }

    *notify = f;
    return PST_OK;
}


/* A number of at most 20 digits, at most max; -1 when it is not. */
static int64_t
pst_smtp_node_num(const u_char *v, size_t n, int64_t max)
{
    return v == NULL || n == 0 || n > 20 ? -1 : pst_atoi(v, n, max);
}


/* XP-NODE=NAME: the sending node's name (node_name), for the log. */
static int
pst_smtp_parse_node_name(pst_pool_t *pool, const u_char *val, size_t vlen,
    pst_smtp_params_t *prm)
{
    if (val == NULL || pst_name_check(val, vlen) != PST_OK) {
        return PST_ERROR;
    }
    prm->node_name.data = pst_palloc(pool, vlen + 1);
    if (prm->node_name.data == NULL) {
        return PST_ERROR;
    }
    memcpy(prm->node_name.data, val, vlen);
    prm->node_name.data[vlen] = '\0';
    prm->node_name.len = vlen;
    return PST_OK;
}


/*
 * The node facts of XPOSTERN (docs/SCALING.md, "Draining a node"),
 * "XP-" already taken off the key: ARRIVAL=SEC.USEC, HOLD, REQUIRETLS,
 * NODE=NAME on MAIL; ATTEMPTS=N, DSN=BITS, NEXT-TRY=SEC on RCPT.  Each
 * at most once (bits of *seen from 0x1000 up); anything else is a
 * syntax error.
 */
static int
pst_smtp_parse_node(pst_pool_t *pool, int mail, const u_char *key,
    size_t klen, const u_char *val, size_t vlen, pst_smtp_params_t *prm,
    unsigned *seen)
{
    static const char  *keys[] = {
        "ARRIVAL", "HOLD", "REQUIRETLS", "NODE", "ATTEMPTS", "DSN",
        "NEXT-TRY"
    };
    const u_char       *dot;
    int64_t             a, b;
    unsigned            i;

    for (i = 0; i < pst_nelems(keys); i++) {
        if (klen == strlen(keys[i])
            && pst_strncasecmp(key, (u_char *) keys[i], klen) == 0)
        {
            break;
        }
    }
    if (i == pst_nelems(keys) || (i < 4) != (mail != 0)
        || (*seen & (0x1000u << i)))
    {
        return PST_ERROR;
    }
    *seen |= 0x1000u << i;
    prm->node = 1;

    switch (i) {
    case 0:
        dot = val ? memchr(val, '.', vlen) : NULL;
        if (dot == NULL) {
            return PST_ERROR;
        }
        a = pst_smtp_node_num(val, (size_t) (dot - val), INT32_MAX * 4LL);
        b = pst_smtp_node_num(dot + 1, (size_t) (val + vlen - dot - 1),
                              999999);
        if (a <= 0 || b < 0 || val + vlen - dot - 1 != 6) {
            return PST_ERROR;
        }
        prm->node_arrival = (time_t) a;
        prm->node_arrival_usec = (long) b;
        return PST_OK;
    case 1:
    case 2:
        if (val != NULL) {
            return PST_ERROR;
        }
        prm->node_hold |= i == 1;
        prm->node_requiretls |= i == 2;
        return PST_OK;
    case 3:
        return pst_smtp_parse_node_name(pool, val, vlen, prm);
    case 4:
        a = pst_smtp_node_num(val, vlen, 65535);
        prm->node_attempts = (unsigned) a;
        return a < 0 ? PST_ERROR : PST_OK;
    case 5:
        a = pst_smtp_node_num(val, vlen, 255);
        prm->node_dsn = (unsigned) a;
        return a < 0 ? PST_ERROR : PST_OK;
    default:
        a = pst_smtp_node_num(val, vlen, INT32_MAX * 4LL);
        prm->node_next_try = (time_t) a;
        return a <= 0 ? PST_ERROR : PST_OK;
    }
}


/*
 * Parse " KEY[=VALUE] ..." after the path.  mail: MAIL (else RCPT).
 */
int
pst_smtp_parse_params(pst_pool_t *pool, u_char *p, u_char *end, int mail,
    pst_smtp_params_t *prm, pst_smtp_error_t *err)
{
    u_char   *key, *val, *q;
    size_t    klen, vlen, i;
    unsigned  seen = 0;
    int64_t   n;

    pst_ctype_init();
    memset(prm, 0, sizeof(pst_smtp_params_t));
    prm->size = -1;

#define SEEN(bit)                                                            \
    if (seen & (bit)) { goto duplicate; } seen |= (bit)

    for ( ;; ) {
        while (p < end && *p == ' ') {
            p++;
        }
        if (p == end) {
            break;
        }

        key = p;
        while (p < end && *p != '=' && *p != ' ') {
            if (!(pst_ctype[*p] & PST_LETDIG) && *p != '-') {
                goto bad;
            }
            p++;
        }
        klen = (size_t) (p - key);
        if (klen == 0 || *key == '-') {
            goto bad;
        }

        val = NULL;
        vlen = 0;
        if (p < end && *p == '=') {
            val = ++p;
            while (p < end && *p != ' ') {
                /* esmtp-value: %d33-60 / %d62-126, UTF-8 (RFC 6531) */
                if (*p < 33 || *p == '=' || *p == 127) {
                    goto bad;
                }
                p++;
            }
            vlen = (size_t) (p - val);
            if (vlen == 0) {
                goto bad;
            }
        }

#define KEY(lit)  (klen == sizeof(lit) - 1                                   \
                   && pst_strncasecmp(key, (u_char *) lit, klen) == 0)

        if (mail && KEY("SIZE")) {
            SEEN(0x01);
            if (val == NULL || vlen > 20) {
                goto bad;
            }
            n = pst_atoi(val, vlen, INT64_MAX);
            if (n < 0) {
                /* RFC 1870 allows 20 digits: a number past int64 is a
                 * size all the same, and too big for anyone */
                for (i = 0; i < vlen; i++) {
                    if (val[i] < '0' || val[i] > '9') {
                        goto bad;
                    }
                }
                n = INT64_MAX;
            }
            prm->size = n;

        } else if (mail && KEY("BODY")) {
            SEEN(0x02);
            if (val == NULL) {
                goto bad;
            }
            if (vlen == 4 && pst_strncasecmp(val, (u_char *) "7BIT", 4) == 0)
            {
                prm->body = PST_BODY_7BIT;
            } else if (vlen == 8
                       && pst_strncasecmp(val, (u_char *) "8BITMIME", 8)
                          == 0)
            {
                prm->body = PST_BODY_8BITMIME;
            } else {
                pst_smtp_set_error(err, 555, "5.5.4",
                                   "Unsupported BODY type");
                return PST_ERROR;
            }

        } else if (mail && KEY("SMTPUTF8")) {
            SEEN(0x04);
            if (val != NULL) {
                goto bad;
            }
            prm->smtputf8 = 1;

        } else if (mail && KEY("REQUIRETLS")) {
            SEEN(0x100);
            if (val != NULL) {
                goto bad;
            }
            prm->requiretls = 1;

        } else if (mail && KEY("RET")) {
            SEEN(0x08);
            if (val != NULL && vlen == 4
                && pst_strncasecmp(val, (u_char *) "FULL", 4) == 0)
            {
                prm->ret = PST_RET_FULL;
            } else if (val != NULL && vlen == 4
                       && pst_strncasecmp(val, (u_char *) "HDRS", 4) == 0)
            {
                prm->ret = PST_RET_HDRS;
            } else {
                goto bad;
            }

        } else if (mail && KEY("ENVID")) {
            SEEN(0x10);
            /* RFC 3461 4.4: at most 100 characters */
            if (val == NULL || vlen > 100
                || pst_smtp_xtext_value(pool, val, vlen, 100, &prm->envid)
                   != PST_OK)
            {
                goto bad;
            }

        } else if (mail && KEY("AUTH")) {
            SEEN(0x20);
            if (val == NULL
                || pst_smtp_xtext_value(pool, val, vlen, 512, &prm->auth)
                   != PST_OK)
            {
                goto bad;
            }

        } else if (!mail && KEY("NOTIFY")) {
            SEEN(0x40);
            if (val == NULL
                || pst_smtp_parse_notify(val, vlen, &prm->notify) != PST_OK)
            {
                goto bad;
            }

        } else if (!mail && KEY("ORCPT")) {
            SEEN(0x80);
            /* addr-type ";" xtext, at most 500 characters (RFC 3461) */
            if (val == NULL || vlen > 500) {
                goto bad;
            }
            q = memchr(val, ';', vlen);
            if (q == NULL || q == val || q + 1 == val + vlen) {
                goto bad;
            }
            prm->orcpt_type.data = pst_palloc(pool, (size_t) (q - val) + 1);
            if (prm->orcpt_type.data == NULL) {
                goto bad;
            }
            prm->orcpt_type.len = (size_t) (q - val);
            pst_strlow(prm->orcpt_type.data, val, prm->orcpt_type.len);
            prm->orcpt_type.data[prm->orcpt_type.len] = '\0';
            if (pst_smtp_xtext_value(pool, q + 1,
                                     (size_t) (val + vlen - q - 1), 500,
                                     &prm->orcpt) != PST_OK)
            {
                goto bad;
            }

        } else if (klen > 3
                   && pst_strncasecmp(key, (u_char *) "XP-", 3) == 0)
        {
            /* node facts (XPOSTERN): the session decides who may */
            if (pst_smtp_parse_node(pool, mail, key + 3, klen - 3, val,
                                    vlen, prm, &seen) != PST_OK)
            {
                goto bad;
            }

        } else {
            pst_smtp_set_error(err, 555, "5.5.4",
                               "Unsupported parameter");
            return PST_ERROR;
        }
#undef KEY
    }

#undef SEEN

    return PST_OK;

duplicate:
    pst_smtp_set_error(err, 501, "5.5.4", "Duplicate parameter");
    return PST_ERROR;

bad:
    pst_smtp_set_error(err, 501, "5.5.4", "Invalid parameter syntax");
    return PST_ERROR;
}


/* ------------------------------------------------------------------ */
/* DATA                                                                */

enum {
    sw_bol = 0,        /* line start after CRLF: "." may end the data */
    sw_bol_bare,       /* line start after a bare CR or LF */
    sw_dot,            /* "." at an eligible line start */
    sw_dot_cr,         /* ".\r" at an eligible line start */
    sw_text,
    sw_cr
};


void
pst_smtp_data_init(pst_smtp_data_t *d, int dot_mode)
{
    memset(d, 0, offsetof(pst_smtp_data_t, max_line));
    d->state = sw_bol;
    d->dot_mode = dot_mode ? 1 : 0;
    d->in_header = 1;
    d->line_len = 0;
    d->size = 0;
}


/*
 * Account for, and copy out, one produced byte run.  Header lines are
 * copied into d->hdr until the empty line; past max_size nothing is
 * produced any more but the input is still consumed.
 */
static inline void
pst_data_emit(pst_smtp_data_t *d, u_char **o, const u_char *s, size_t n)
{
    d->size += (off_t) n;

    if (d->max_size && d->size > d->max_size) {
        d->too_big = 1;
    }
    if (d->too_big) {
        return;
    }

    if (d->in_header && d->hdr != NULL && !d->hdr_overflow) {
        if (pst_buf_append(d->hdr, s, n, d->hdr_max) != PST_OK) {
            d->hdr_overflow = 1;
        }
    }

    memcpy(*o, s, n);
    *o += n;
}


static inline void
pst_data_eol(pst_smtp_data_t *d, u_char **o)
{
    pst_data_emit(d, o, (const u_char *) "\r\n", 2);

    if (d->in_header && d->line_len == 0) {
        d->in_header = 0;        /* the empty line ends the header */
    }
    d->line_len = 0;
}


static inline void
pst_data_text(pst_smtp_data_t *d, u_char **o, const u_char *s, size_t n)
{
    d->line_len += n;
    if (d->max_line && d->line_len > d->max_line) {
        d->long_line = 1;
    }
    pst_data_emit(d, o, s, n);
}


int
pst_smtp_data_parse(pst_smtp_data_t *d, u_char **pos, u_char *end,
    u_char *out, size_t *olen)
{
    u_char  *p, *o, *oend, *run;
    size_t   n;

    p = *pos;
    o = out;
    oend = out + *olen;

    while (p < end && oend - o >= 3) {

        switch (d->state) {

        case sw_bol:
        case sw_bol_bare:
            if (*p == '.' && d->dot_mode) {
                /* dot-stuffing is undone at every line start; only a
                 * line start after a real CRLF can end the data */
                d->state = (d->state == sw_bol) ? sw_dot : sw_text;
                p++;
                break;
            }
            d->state = sw_text;
            break;

        case sw_dot:
            if (*p == '\r') {
                d->state = sw_dot_cr;
                p++;
                break;
            }
            if (*p == '\n') {
                /* ".\n" is not the end of the data */
                d->bare_lf = 1;
                pst_data_eol(d, &o);
                d->state = sw_bol_bare;
                p++;
                break;
            }
            d->state = sw_text;
            break;

        case sw_dot_cr:
            if (*p == '\n') {
                *pos = p + 1;
                *olen = (size_t) (o - out);
                return PST_DONE;
            }
            /* ".\r" + other: a bare CR */
            d->bare_cr = 1;
            pst_data_eol(d, &o);
            d->state = sw_bol_bare;
            break;

        case sw_text:
            /* fast path: copy up to the next CR or LF */
            run = p;
            n = pst_min((size_t) (end - p), (size_t) (oend - o) - 2);
            while (n && *p != '\r' && *p != '\n') {
                p++;
                n--;
            }
            if (p > run) {
                pst_data_text(d, &o, run, (size_t) (p - run));
                break;
            }
            if (*p == '\r') {
                d->state = sw_cr;
                p++;
                break;
            }
            /* a bare LF */
            d->bare_lf = 1;
            pst_data_eol(d, &o);
            d->state = sw_bol_bare;
            p++;
            break;

        case sw_cr:
            if (*p == '\n') {
                pst_data_eol(d, &o);
                d->state = sw_bol;
                p++;
                break;
            }
            d->bare_cr = 1;
            pst_data_eol(d, &o);
            d->state = sw_bol_bare;
            break;
        }
    }

    *pos = p;
    *olen = (size_t) (o - out);
    return PST_AGAIN;
}


size_t
pst_smtp_data_finish(pst_smtp_data_t *d, u_char *out)
{
    u_char  *o = out;

    switch (d->state) {
    case sw_bol:
    case sw_bol_bare:
        return 0;
    case sw_cr:
        d->bare_cr = 1;
        break;
    case sw_dot:
    case sw_dot_cr:
    case sw_text:
        break;
    }

    pst_data_eol(d, &o);
    d->state = sw_bol;
    return (size_t) (o - out);
}
