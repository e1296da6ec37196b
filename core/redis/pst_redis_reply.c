/*
 * pst_redis_reply.c -- the pure part of the Redis service: reading
 * hiredis's replies through the public pst_redis_reply_*() calls, the
 * server address of redis_server, key building and the script names,
 * and what the Sentinel discovery reads: a master's address, ROLE, a
 * +switch-master push.  No I/O and no state: tests/unit/check_redis.c
 * feeds it replies that hiredis's own reader parsed from RESP bytes,
 * tests/fuzz/fuzz_redis_sentinel.c hostile ones.
 */

#include "pst_core.h"
#include "pst_redis.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#define pst_redis_r(r)   ((const redisReply *) (const void *) (r))


pst_redis_type_e
pst_redis_reply_type(const pst_redis_reply_t *r)
{
    if (r == NULL) {
        return PST_REDIS_NIL;
    }

    switch (pst_redis_r(r)->type) {
    case REDIS_REPLY_INTEGER:
        return PST_REDIS_INTEGER;
    case REDIS_REPLY_STRING:
        return PST_REDIS_STRING;
    case REDIS_REPLY_STATUS:
        return PST_REDIS_STATUS;
    case REDIS_REPLY_ARRAY:
        return PST_REDIS_ARRAY;
    case REDIS_REPLY_ERROR:
        return PST_REDIS_ERROR_REPLY;
    default:
        return PST_REDIS_NIL;
    }
}


int
pst_redis_reply_integer(const pst_redis_reply_t *r, int64_t *value)
{
    const redisReply  *rr = pst_redis_r(r);
    char               buf[24], *end;
    long long          v;

    if (r == NULL) {
        return PST_ERROR;
    }

    if (rr->type == REDIS_REPLY_INTEGER) {
        *value = (int64_t) rr->integer;
        return PST_OK;
    }

    if (rr->type != REDIS_REPLY_STRING || rr->len == 0
        || rr->len >= sizeof(buf))
    {
        return PST_ERROR;
    }

    memcpy(buf, rr->str, rr->len);
    buf[rr->len] = '\0';
    if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) {
        return PST_ERROR;
    }

    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || end == buf
        || (buf[0] == '-' && buf[1] == '\0'))
    {
        return PST_ERROR;
    }

    *value = (int64_t) v;
    return PST_OK;
}


int
pst_redis_reply_string(const pst_redis_reply_t *r, pst_str_t *out)
{
    const redisReply  *rr = pst_redis_r(r);

    if (r == NULL
        || (rr->type != REDIS_REPLY_STRING && rr->type != REDIS_REPLY_STATUS
            && rr->type != REDIS_REPLY_ERROR))
    {
        return PST_ERROR;
    }

    out->data = (u_char *) rr->str;
    out->len = rr->len;
    return PST_OK;
}


size_t
pst_redis_reply_count(const pst_redis_reply_t *r)
{
    if (r == NULL || pst_redis_r(r)->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    return pst_redis_r(r)->elements;
}


const pst_redis_reply_t *
pst_redis_reply_element(const pst_redis_reply_t *r, size_t i)
{
    if (i >= pst_redis_reply_count(r)) {
        return NULL;
    }
    return (const pst_redis_reply_t *) pst_redis_r(r)->element[i];
}


int
pst_redis_reply_noscript(const pst_redis_reply_t *r)
{
    const redisReply  *rr = pst_redis_r(r);

    return r != NULL && rr->type == REDIS_REPLY_ERROR && rr->len >= 8
           && memcmp(rr->str, "NOSCRIPT", 8) == 0;
}


int
pst_redis_reply_readonly(const pst_redis_reply_t *r)
{
    const redisReply  *rr = pst_redis_r(r);

    return r != NULL && rr->type == REDIS_REPLY_ERROR && rr->len >= 8
           && memcmp(rr->str, "READONLY", 8) == 0;
}


/* A bounded copy for the log: bytes outside ' '..'~' as '?'. */
static void
pst_redis_printable(char *buf, size_t size, const char *s, size_t len)
{
    size_t  i, n;

    n = pst_min(len, size - 1);
    for (i = 0; i < n; i++) {
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    buf[n] = '\0';
}


int
pst_redis_reply_error(const pst_redis_reply_t *r, char *buf, size_t size)
{
    const redisReply  *rr = pst_redis_r(r);

    if (r == NULL || rr->type != REDIS_REPLY_ERROR || size == 0) {
        return 0;
    }

    pst_redis_printable(buf, size, rr->str, rr->len);
    return 1;
}


/* ------------------------------------------------------------------ */
/* redis_server                                                        */

int
pst_redis_parse_server(const pst_str_t *spec, int default_port, char *host,
    size_t size, int *port, const char **err)
{
    u_char        a[16];
    const char   *p, *colon;
    char          buf[PST_REDIS_HOST_MAX + 16], *end;
    long          v;
    size_t        n;

    if (spec->len == 0 || spec->len >= sizeof(buf)) {
        *err = "is empty or too long";
        return PST_ERROR;
    }
    memcpy(buf, spec->data, spec->len);
    buf[spec->len] = '\0';

    if (strncmp(buf, "unix:", 5) == 0) {
        if (buf[5] != '/' || strlen(buf + 5) >= size) {
            *err = "needs an absolute socket path after \"unix:\"";
            return PST_ERROR;
        }
        snprintf(host, size, "%s", buf + 5);
        *port = 0;
        return PST_OK;
    }

    *port = default_port;
    p = buf;
    colon = NULL;

    if (buf[0] == '[') {
        end = strchr(buf, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            *err = "has a malformed [IPv6] address";
            return PST_ERROR;
        }
        *end = '\0';
        p = buf + 1;
        colon = end[1] == ':' ? end + 1 : NULL;
    } else if (strchr(buf, ':') == strrchr(buf, ':')) {
        colon = strchr(buf, ':');        /* one ':' at most: v4:port */
        if (colon != NULL) {
            *(char *) colon = '\0';
        }
    }

    if (colon != NULL) {
        v = strtol(colon + 1, &end, 10);
        if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || v < 1
            || v > 65535)
        {
            *err = "has an invalid port";
            return PST_ERROR;
        }
        *port = (int) v;
    }

    n = strlen(p);
    if (n == 0 || n >= size
        || (inet_pton(AF_INET, p, a) != 1 && inet_pton(AF_INET6, p, a) != 1))
    {
        *err = "must be an IP address (a name would be resolved by a"
               " blocking call) or unix:/path";
        return PST_ERROR;
    }

    memcpy(host, p, n + 1);
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Keys and scripts                                                    */

/* Appends s to buf at *o, escaping; part: ':' is escaped too. */
static int
pst_redis_key_add(char *buf, size_t size, size_t *o, const u_char *s,
    size_t n, int part)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i;
    u_char             c;

    for (i = 0; i < n; i++) {
        c = s[i];
        if (c > 0x20 && c < 0x7f && c != '%' && !(part && c == ':')) {
            if (*o + 1 >= size) {
                return PST_ERROR;
            }
            buf[(*o)++] = (char) c;
            continue;
        }
        if (*o + 3 >= size) {
            return PST_ERROR;
        }
        buf[(*o)++] = '%';
        buf[(*o)++] = hex[c >> 4];
        buf[(*o)++] = hex[c & 0x0f];
    }

    return PST_OK;
}


ssize_t
pst_redis_key_build(char *buf, size_t size, const pst_str_t *prefix,
    const char *kind, const pst_str_t *parts, pst_uint_t nparts)
{
    pst_uint_t  i;
    size_t      o = 0;

    if (size == 0
        || (prefix != NULL
            && pst_redis_key_add(buf, size, &o, prefix->data, prefix->len,
                                 0) != PST_OK)
        || pst_redis_key_add(buf, size, &o, (const u_char *) kind,
                             strlen(kind), 0) != PST_OK)
    {
        return -1;
    }

    for (i = 0; i < nparts; i++) {
        if (o + 1 >= size) {
            return -1;
        }
        buf[o++] = ':';
        if (pst_redis_key_add(buf, size, &o, parts[i].data, parts[i].len, 1)
            != PST_OK)
        {
            return -1;
        }
    }

    buf[o] = '\0';
    return (ssize_t) o;
}


int
pst_redis_sha1_hex(const u_char *data, size_t len, char out[41])
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       n, i;

    if (EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) != 1 || n != 20) {
        return PST_ERROR;
    }

    for (i = 0; i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[40] = '\0';
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Sentinel                                                            */

void
pst_redis_addr_text(char *buf, size_t size, const char *host, int port)
{
    if (port == 0) {
        snprintf(buf, size, "unix:%s", host);
    } else if (strchr(host, ':') != NULL) {
        snprintf(buf, size, "[%s]:%d", host, port);
    } else {
        snprintf(buf, size, "%s:%d", host, port);
    }
}


static int
pst_redis_is(const redisReply *rr, const char *s)
{
    size_t  n = strlen(s);

    return (rr->type == REDIS_REPLY_STRING || rr->type == REDIS_REPLY_STATUS)
           && rr->len == n && memcmp(rr->str, s, n) == 0;
}


/* An IP literal and a decimal port, as Sentinel sends them. */
static int
pst_redis_ip_port(const char *ip, size_t iplen, const char *pt,
    size_t ptlen, char *host, size_t size, int *port)
{
    u_char  a[16];
    char    buf[INET6_ADDRSTRLEN];
    size_t  i;
    int     v = 0;

    if (iplen == 0 || iplen >= sizeof(buf) || iplen >= size || ptlen == 0
        || ptlen > 5)
    {
        return PST_ERROR;
    }
    for (i = 0; i < ptlen; i++) {
        if (pt[i] < '0' || pt[i] > '9') {
            return PST_ERROR;
        }
        v = v * 10 + (pt[i] - '0');
    }
    if (v < 1 || v > 65535 || memchr(ip, '\0', iplen) != NULL) {
        return PST_ERROR;
    }

    memcpy(buf, ip, iplen);
    buf[iplen] = '\0';
    if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1) {
        return PST_ERROR;
    }

    memcpy(host, buf, iplen + 1);
    *port = v;
    return PST_OK;
}


int
pst_redis_master_addr(const pst_redis_reply_t *r, char *host, size_t size,
    int *port, const char **err)
{
    const redisReply  *rr = pst_redis_r(r), *ip, *pt;

    if (r != NULL && rr->type == REDIS_REPLY_NIL) {
        return PST_DECLINED;
    }
    if (r == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING)
    {
        *err = "is not an address and a port";
        return PST_ERROR;
    }

    ip = rr->element[0];
    pt = rr->element[1];
    if (pst_redis_ip_port(ip->str, ip->len, pt->str, pt->len, host, size,
                          port) != PST_OK)
    {
        *err = "is not an IP address and a port (a name would need a"
               " blocking lookup)";
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_redis_role_master(const pst_redis_reply_t *r, char *buf, size_t size)
{
    const redisReply  *rr = pst_redis_r(r), *role;

    if (r == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || (rr->element[0]->type != REDIS_REPLY_STRING
            && rr->element[0]->type != REDIS_REPLY_STATUS))
    {
        pst_redis_printable(buf, size, "?", 1);
        return 0;
    }

    role = rr->element[0];
    pst_redis_printable(buf, size, role->str, role->len);
    return pst_redis_is(role, "master");
}


/* The i-th of n space-separated fields of s; 0 when there are not
 * exactly n non-empty ones. */
static int
pst_redis_fields(const char *s, size_t len, const char **f, size_t *flen,
    int n)
{
    const char  *p = s, *end = s + len, *sp;
    int          i;

    for (i = 0; i < n; i++) {
        sp = memchr(p, ' ', (size_t) (end - p));
        if (sp == NULL) {
            sp = end;
        }
        if (sp == p || (i == n - 1) != (sp == end)) {
            return 0;
        }
        f[i] = p;
        flen[i] = (size_t) (sp - p);
        p = sp + 1;
    }
    return 1;
}


int
pst_redis_switch_master(const pst_redis_reply_t *r, const pst_str_t *name,
    char *host, size_t size, int *port)
{
    const redisReply  *rr = pst_redis_r(r), *msg;
    const char        *f[5];
    size_t             flen[5];

    if (r == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements == 0
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        return PST_ERROR;
    }
    if (!pst_redis_is(rr->element[0], "message")) {
        return PST_DECLINED;             /* "subscribe": the confirmation */
    }
    if (rr->elements != 3 || rr->element[1]->type != REDIS_REPLY_STRING
        || rr->element[2]->type != REDIS_REPLY_STRING)
    {
        return PST_ERROR;
    }
    if (!pst_redis_is(rr->element[1], "+switch-master")) {
        return PST_DECLINED;
    }

    /* "NAME OLDIP OLDPORT NEWIP NEWPORT" */
    msg = rr->element[2];
    if (!pst_redis_fields(msg->str, msg->len, f, flen, 5)) {
        return PST_ERROR;
    }
    if (flen[0] != name->len || memcmp(f[0], name->data, name->len) != 0) {
        return PST_DECLINED;
    }
    return pst_redis_ip_port(f[3], flen[3], f[4], flen[4], host, size, port);
}
