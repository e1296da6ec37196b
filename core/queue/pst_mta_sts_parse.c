/*
 * pst_mta_sts_parse.c -- the pure parts of MTA-STS (RFC 8461): the
 * "_mta-sts" TXT record (3.1), the policy file (3.2) and MX host
 * matching (4.1).  No I/O: unit tested and fuzzed.
 */

#include "pst_core.h"
#include "pst_mta_sts.h"


static int pst_sts_field(const u_char **pos, const u_char *end,
    const u_char **key, size_t *klen, const u_char **val, size_t *vlen);
static int pst_sts_pattern_ok(const u_char *p, size_t n);


/* ------------------------------------------------------------------ */
/* The TXT record: "v=STSv1; id=20160831085700Z;"                      */

static int
pst_sts_txt_one(const char *txt, char *id, size_t size)
{
    const char  *p = txt, *k, *v;
    size_t       kl, vl;
    int          first = 1, have_id = 0;

    if (strncmp(txt, "v=STSv1", 7) != 0
        || (txt[7] != ';' && txt[7] != ' ' && txt[7] != '\0'))
    {
        return PST_DECLINED;                /* not an MTA-STS record */
    }

    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        k = p;
        while (*p && *p != '=' && *p != ';') {
            p++;
        }
        if (*p != '=') {
            return PST_ERROR;
        }
        kl = (size_t) (p - k);
        v = ++p;
        while (*p && *p != ';' && *p != ' ' && *p != '\t') {
            p++;
        }
        vl = (size_t) (p - v);
        if (first) {
            first = 0;                      /* "v=STSv1", checked */
            continue;
        }
        if (kl == 2 && memcmp(k, "id", 2) == 0) {
            if (vl == 0 || vl > 32 || vl >= size) {
                return PST_ERROR;
            }
            for (kl = 0; kl < vl; kl++) {
                if (!isalnum((u_char) v[kl])) {
                    return PST_ERROR;
                }
            }
            memcpy(id, v, vl);
            id[vl] = '\0';
            have_id = 1;
        }
    }
    return have_id ? PST_OK : PST_ERROR;
}


int
pst_sts_txt_id(const char *const *txt, pst_uint_t n, char *id, size_t size)
{
    pst_uint_t  i;
    int         rc, found = 0;

    for (i = 0; i < n; i++) {
        rc = pst_sts_txt_one(txt[i], id, size);
        if (rc == PST_DECLINED) {
            continue;
        }
        if (rc != PST_OK || found) {
            return PST_ERROR;       /* malformed, or several (3.1) */
        }
        found = 1;
    }
    return found ? PST_OK : PST_DECLINED;
}


/* ------------------------------------------------------------------ */
/* The policy file                                                     */

int
pst_sts_parse(const u_char *text, size_t len, pst_sts_policy_t *p)
{
    const u_char  *pos = text, *end = text + len, *k, *v;
    size_t         kl, vl, used = 0;
    int            version = 0, mode = -1;
    long           age = -1;
    char          *e, num[16];

    memset(p, 0, sizeof(*p));
    if (len > PST_STS_MAX_POLICY) {
        return PST_ERROR;
    }
    p->text = malloc(len + 1);
    if (p->text == NULL) {
        return PST_ERROR;
    }

    while (pos < end) {
        if (pst_sts_field(&pos, end, &k, &kl, &v, &vl) != PST_OK) {
            goto bad;
        }
        if (kl == 0) {
            continue;                               /* an empty line */
        }
        if (kl == 7 && memcmp(k, "version", 7) == 0) {
            version = (vl == 5 && memcmp(v, "STSv1", 5) == 0);
        } else if (kl == 4 && memcmp(k, "mode", 4) == 0) {
            mode = (vl == 7 && memcmp(v, "enforce", 7) == 0)
                   ? PST_STS_ENFORCE
                   : (vl == 7 && memcmp(v, "testing", 7) == 0)
                     ? PST_STS_TESTING
                     : (vl == 4 && memcmp(v, "none", 4) == 0)
                       ? PST_STS_NONE : -2;
        } else if (kl == 7 && memcmp(k, "max_age", 7) == 0) {
            if (vl == 0 || vl >= sizeof(num) || !isdigit(*v)) {
                goto bad;
            }
            memcpy(num, v, vl);
            num[vl] = '\0';
            age = strtol(num, &e, 10);
            if (*e != '\0' || age < 0) {
                goto bad;
            }
            age = pst_min(age, PST_STS_MAX_AGE);
        } else if (kl == 2 && memcmp(k, "mx", 2) == 0) {
            if (p->nmx == PST_STS_MAX_MX || !pst_sts_pattern_ok(v, vl)) {
                goto bad;
            }
            p->mx[p->nmx] = p->text + used;
            pst_strlow((u_char *) p->text + used, v, vl);
            used += vl;
            p->text[used++] = '\0';
            p->nmx++;
        }
        /* other keys are extensions: ignored (3.2) */
    }

    if (!version || mode < 0 || age < 0
        || (mode != PST_STS_NONE && p->nmx == 0))
    {
        goto bad;
    }
    p->mode = (pst_sts_mode_e) mode;
    p->max_age = age;
    return PST_OK;

bad:

    pst_sts_policy_free(p);
    return PST_ERROR;
}


void
pst_sts_policy_free(pst_sts_policy_t *p)
{
    free(p->text);
    p->text = NULL;
    p->nmx = 0;
}


/* One "key: value" line (LF or CRLF; white space around the value
 * dropped); kl 0 for an empty line.  PST_ERROR: no colon. */
static int
pst_sts_field(const u_char **pos, const u_char *end, const u_char **key,
    size_t *klen, const u_char **val, size_t *vlen)
{
    const u_char  *p = *pos, *eol, *colon, *ve;

    eol = memchr(p, '\n', (size_t) (end - p));
    if (eol == NULL) {
        eol = end;
    }
    *pos = eol < end ? eol + 1 : end;
    ve = eol;
    if (ve > p && ve[-1] == '\r') {
        ve--;
    }
    if (ve == p) {
        *klen = 0;
        return PST_OK;
    }
    colon = memchr(p, ':', (size_t) (ve - p));
    if (colon == NULL || colon == p) {
        return PST_ERROR;
    }
    *key = p;
    *klen = (size_t) (colon - p);
    p = colon + 1;
    while (p < ve && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (ve > p && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }
    *val = p;
    *vlen = (size_t) (ve - p);
    return PST_OK;
}


/* "mail.example.com" or "*.example.com": LDH labels. */
static int
pst_sts_pattern_ok(const u_char *p, size_t n)
{
    size_t  i;

    if (n == 0 || n > 253) {
        return 0;
    }
    if (n > 2 && p[0] == '*' && p[1] == '.') {
        p += 2;
        n -= 2;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum(p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_') {
            return 0;
        }
    }
    return p[0] != '.' && p[n - 1] != '.';
}


int
pst_sts_mx_match(const pst_sts_policy_t *p, const char *host)
{
    size_t       hl = strlen(host), pl;
    const char  *pat, *dot;
    pst_uint_t   i;

    if (hl > 0 && host[hl - 1] == '.') {
        hl--;                               /* an absolute name */
    }
    for (i = 0; i < p->nmx; i++) {
        pat = p->mx[i];
        pl = strlen(pat);
        if (pat[0] == '*') {
            /* one whole leftmost label: "*.example.com" matches
             * "mx.example.com", not "a.mx.example.com" (4.1) */
            dot = memchr(host, '.', hl);
            if (dot != NULL && dot > host
                && (size_t) (host + hl - dot) == pl - 1
                && strncasecmp(dot, pat + 1, pl - 1) == 0)
            {
                return 1;
            }
        } else if (pl == hl && strncasecmp(host, pat, hl) == 0) {
            return 1;
        }
    }
    return 0;
}
