/*
 * pst_string.c -- string helpers and encodings (see pst_string.h).
 */

#include "pst_core.h"


void
pst_strlow(u_char *dst, const u_char *src, size_t n)
{
    while (n--) {
        *dst++ = pst_tolower(*src);
        src++;
    }
}


int
pst_strncasecmp(const u_char *a, const u_char *b, size_t n)
{
    u_char  c1, c2;

    while (n--) {
        c1 = pst_tolower(*a);
        c2 = pst_tolower(*b);
        if (c1 != c2) {
            return c1 - c2;
        }
        a++;
        b++;
    }

    return 0;
}


int
pst_memeq_const(const void *a, const void *b, size_t n)
{
    const volatile u_char  *x = a, *y = b;
    u_char                  d = 0;
    size_t                  i;

    for (i = 0; i < n; i++) {
        d |= x[i] ^ y[i];
    }

    return d != 0;
}


int64_t
pst_atoi(const u_char *p, size_t n, int64_t max)
{
    int64_t  v = 0;

    if (n == 0) {
        return -1;
    }

    while (n--) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        /* v * 10 + d <= max, without overflow; (max - d) / 10 would
         * round a negative max - d up to 0 and let "7" pass max 5 */
        if (v > max / 10 || v * 10 > max - (*p - '0')) {
            return -1;
        }
        v = v * 10 + (*p++ - '0');
    }

    return v;
}


ssize_t
pst_parse_size(const pst_str_t *s)
{
    int64_t  v, scale;
    size_t   n;
    u_char   u;

    n = s->len;
    if (n == 0) {
        return -1;
    }

    u = pst_tolower(s->data[n - 1]);
    switch (u) {
    case 'k': scale = 1024; n--; break;
    case 'm': scale = 1024 * 1024; n--; break;
    case 'g': scale = 1024 * 1024 * 1024; n--; break;
    default: scale = 1;
    }

    v = pst_atoi(s->data, n, INT64_MAX / scale);
    if (v < 0 || v * scale > SSIZE_MAX) {
        return -1;
    }

    return (ssize_t) (v * scale);
}


int64_t
pst_parse_msec(const pst_str_t *s)
{
    const u_char  *p, *end;
    int64_t        total, v, scale;

    p = s->data;
    end = p + s->len;
    total = 0;

    if (p == end) {
        return -1;
    }

    while (p < end) {
        v = 0;
        if (*p < '0' || *p > '9') {
            return -1;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            if (v > 100000000000LL) {
                return -1;
            }
            v = v * 10 + (*p++ - '0');
        }

        if (p == end) {
            scale = 1000;            /* bare number: seconds */
        } else if (*p == 'm' && p + 1 < end && p[1] == 's') {
            scale = 1;
            p += 2;
        } else {
            switch (*p++) {
            case 's': scale = 1000; break;
            case 'm': scale = 60 * 1000; break;
            case 'h': scale = 3600 * 1000; break;
            case 'd': scale = 86400 * 1000; break;
            default: return -1;
            }
        }

        /* at most 100 years; checked before multiplying, because v
         * may be up to 10^12 and v * scale overflows int64 for days */
        if (v > (100LL * 365 * 86400 * 1000 - total) / scale) {
            return -1;
        }
        total += v * scale;
    }

    return total;
}


static const u_char  b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


size_t
pst_base64_encoded_length(size_t n)
{
    return ((n + 2) / 3) * 4;
}


size_t
pst_base64_encode(u_char *dst, const u_char *src, size_t n)
{
    u_char  *d = dst;

    while (n > 2) {
        *d++ = b64[(src[0] >> 2) & 0x3f];
        *d++ = b64[((src[0] & 3) << 4) | (src[1] >> 4)];
        *d++ = b64[((src[1] & 0x0f) << 2) | (src[2] >> 6)];
        *d++ = b64[src[2] & 0x3f];
        src += 3;
        n -= 3;
    }

    if (n) {
        *d++ = b64[(src[0] >> 2) & 0x3f];
        if (n == 1) {
            *d++ = b64[(src[0] & 3) << 4];
            *d++ = '=';
        } else {
            *d++ = b64[((src[0] & 3) << 4) | (src[1] >> 4)];
            *d++ = b64[(src[1] & 0x0f) << 2];
        }
        *d++ = '=';
    }

    return (size_t) (d - dst);
}


static int
pst_base64_value(u_char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}


ssize_t
pst_base64_decode(u_char *dst, const u_char *src, size_t n)
{
    u_char  *d = dst;
    size_t   i, pad;
    int      v[4], k;

    if (n % 4) {
        return -1;
    }

    pad = 0;
    if (n && src[n - 1] == '=') {
        pad++;
        if (src[n - 2] == '=') {
            pad++;
        }
    }

    for (i = 0; i < n; i += 4) {
        for (k = 0; k < 4; k++) {
            if (src[i + k] == '=' && i + 4 == n && k >= 4 - (int) pad) {
                v[k] = 0;
                continue;
            }
            v[k] = pst_base64_value(src[i + k]);
            if (v[k] < 0) {
                return -1;
            }
        }

        *d++ = (u_char) ((v[0] << 2) | (v[1] >> 4));
        if (i + 4 < n || pad < 2) {
            *d++ = (u_char) ((v[1] << 4) | (v[2] >> 2));
        }
        if (i + 4 < n || pad < 1) {
            *d++ = (u_char) ((v[2] << 6) | v[3]);
        }
    }

    return d - dst;
}


static int
pst_hexval(u_char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}


ssize_t
pst_xtext_decode(u_char *dst, const u_char *src, size_t n)
{
    u_char  *d = dst;
    int      h, l;

    while (n) {
        if (*src < 33 || *src > 126 || *src == '=') {
            return -1;
        }
        if (*src == '+') {
            /* xtext hexchar is uppercase only (RFC 3461) */
            if (n < 3) {
                return -1;
            }
            h = pst_hexval(src[1]);
            l = pst_hexval(src[2]);
            if (h < 0 || l < 0) {
                return -1;
            }
            *d++ = (u_char) (h * 16 + l);
            src += 3;
            n -= 3;
            continue;
        }
        *d++ = *src++;
        n--;
    }

    return d - dst;
}


#define pst_xtext_plain(c)  ((c) >= 33 && (c) <= 126 && (c) != '+'          \
                             && (c) != '=')


size_t
pst_xtext_encoded_length(const u_char *src, size_t n)
{
    size_t  len = 0;

    while (n--) {
        len += pst_xtext_plain(*src) ? 1 : 3;
        src++;
    }

    return len;
}


size_t
pst_xtext_encode(u_char *dst, const u_char *src, size_t n)
{
    static const u_char  hex[] = "0123456789ABCDEF";
    u_char              *d = dst;

    while (n--) {
        if (pst_xtext_plain(*src)) {
            *d++ = *src;
        } else {
            *d++ = '+';
            *d++ = hex[*src >> 4];
            *d++ = hex[*src & 0x0f];
        }
        src++;
    }

    return (size_t) (d - dst);
}


size_t
pst_sock_ntop(const struct sockaddr *sa, u_char *text, size_t len,
    int with_port)
{
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;
    char                        addr[INET6_ADDRSTRLEN];
    int                         n;

    switch (sa->sa_family) {
    case AF_INET:
        sin = (const struct sockaddr_in *) sa;
        inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
        n = with_port ? snprintf((char *) text, len, "%s:%u", addr,
                                 ntohs(sin->sin_port))
                      : snprintf((char *) text, len, "%s", addr);
        break;

    case AF_INET6:
        sin6 = (const struct sockaddr_in6 *) sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
        n = with_port ? snprintf((char *) text, len, "[%s]:%u", addr,
                                 ntohs(sin6->sin6_port))
                      : snprintf((char *) text, len, "%s", addr);
        break;

    case AF_UNIX:
        n = snprintf((char *) text, len, "unix:");
        break;

    default:
        n = snprintf((char *) text, len, "?");
    }

    if (n < 0) {
        return 0;
    }

    return pst_min((size_t) n, len - 1);
}


size_t
pst_sanitize(u_char *dst, size_t size, const u_char *src, size_t n)
{
    size_t  i;

    if (size == 0) {
        return 0;
    }

    for (i = 0; i < n && i < size - 1; i++) {
        dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
    }
    dst[i] = '\0';

    return i;
}


/* ASCII only, whatever the locale */
#define pst_name_alnum(c)                                                    \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z')               \
     || ((c) >= 'A' && (c) <= 'Z'))

int
pst_name_check(const u_char *p, size_t n)
{
    size_t  i;

    if (n == 0 || n > PST_NAME_MAX || !pst_name_alnum(p[0])) {
        return PST_ERROR;
    }

    for (i = 1; i < n; i++) {
        if (!pst_name_alnum(p[i]) && p[i] != '-' && p[i] != '_'
            && p[i] != '.')
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


size_t
pst_escape(u_char *dst, size_t size, const u_char *src, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    u_char             e[4];
    size_t             i, k, out = 0;

    if (size == 0) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        k = 2;
        e[0] = '\\';
        switch (src[i]) {
        case '\r': e[1] = 'r'; break;
        case '\n': e[1] = 'n'; break;
        case '\t': e[1] = 't'; break;
        case '\\': e[1] = '\\'; break;
        default:
            if (src[i] >= 0x20 && src[i] < 0x7f) {
                e[0] = src[i];
                k = 1;
            } else {
                e[1] = 'x';
                e[2] = (u_char) hex[src[i] >> 4];
                e[3] = (u_char) hex[src[i] & 0x0f];
                k = 4;
            }
        }
        if (out + k > size - 1) {
            break;
        }
        memcpy(dst + out, e, k);
        out += k;
    }
    dst[out] = '\0';

    return out;
}


size_t
pst_rfc5322_date(time_t t, u_char *buf, size_t size)
{
    static const char  *wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                   "Sat" };
    static const char  *mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm           tm;
    long                off;
    int                 n;

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;

    n = snprintf((char *) buf, size, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
                 wday[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);

    return n < 0 ? 0 : pst_min((size_t) n, size - 1);
}
