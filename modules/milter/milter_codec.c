/*
 * milter_codec.c -- milter frames in and out (milter_codec.h).
 */

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "milter_codec.h"

static int milter_reserve(milter_buf_t *b, size_t n);
static int milter_ecode_ok(const char *p, size_t n, int cls);


void
milter_buf_free(milter_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->size = 0;
    b->start = 0;
}


void
milter_buf_consume(milter_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    b->start = b->len;
}


static int
milter_reserve(milter_buf_t *b, size_t n)
{
    u_char  *p;
    size_t   size;

    if (b->len + n <= b->size) {
        return 0;
    }
    if (b->len + n - b->start > MILTER_FRAME_MAX + 5) {
        return -1;
    }

    size = b->size ? b->size : 4096;
    while (size < b->len + n) {
        size *= 2;
    }
    p = realloc(b->data, size);
    if (p == NULL) {
        return -1;
    }
    b->data = p;
    b->size = size;
    return 0;
}


int
milter_frame_begin(milter_buf_t *b, int cmd)
{
    if (milter_reserve(b, 5) != 0) {
        return -1;
    }
    b->start = b->len;
    memset(b->data + b->len, 0, 4);
    b->data[b->len + 4] = (u_char) cmd;
    b->len += 5;
    return 0;
}


int
milter_put(milter_buf_t *b, const void *data, size_t n)
{
    if (milter_reserve(b, n) != 0) {
        milter_frame_cancel(b);
        return -1;
    }
    if (n) {
        memcpy(b->data + b->len, data, n);
    }
    b->len += n;
    return 0;
}


int
milter_put_str(milter_buf_t *b, const void *s, size_t n)
{
    const u_char  *nul;

    if (s == NULL) {
        n = 0;
    } else if ((nul = memchr(s, '\0', n)) != NULL) {
        n = (size_t) (nul - (const u_char *) s);
    }
    if (milter_put(b, s, n) != 0) {
        return -1;
    }
    return milter_put(b, "", 1);
}


int
milter_put_u32(milter_buf_t *b, uint32_t v)
{
    uint32_t  n = htonl(v);

    return milter_put(b, &n, 4);
}


int
milter_put_u16(milter_buf_t *b, uint16_t v)
{
    uint16_t  n = htons(v);

    return milter_put(b, &n, 2);
}


int
milter_frame_end(milter_buf_t *b)
{
    uint32_t  n;

    n = htonl((uint32_t) (b->len - b->start - 4));
    memcpy(b->data + b->start, &n, 4);
    b->start = b->len;
    return 0;
}


void
milter_frame_cancel(milter_buf_t *b)
{
    b->len = b->start;
}


int
milter_frame(milter_buf_t *b, int cmd, const void *data, size_t n)
{
    if (milter_frame_begin(b, cmd) != 0 || milter_put(b, data, n) != 0) {
        return -1;
    }
    return milter_frame_end(b);
}


ssize_t
milter_frame_parse(const u_char *p, size_t n, int *cmd, const u_char **data,
    size_t *len)
{
    uint32_t  l;

    if (n < 4) {
        return 0;
    }
    memcpy(&l, p, 4);
    l = ntohl(l);
    if (l == 0 || l > MILTER_FRAME_MAX + 1) {
        return -1;
    }
    if (n - 4 < l) {
        return 0;
    }
    *cmd = p[4];
    *data = p + 5;
    *len = l - 1;
    return (ssize_t) l + 4;
}


static uint32_t
milter_get_u32(const u_char *p)
{
    uint32_t  v;

    memcpy(&v, p, 4);
    return ntohl(v);
}


int
milter_parse_optneg(const u_char *data, size_t len, milter_optneg_t *o)
{
    const u_char  *p, *end, *nul;
    uint32_t       stage;

    memset(o, 0, sizeof(milter_optneg_t));
    if (len < 12) {
        return -1;
    }
    o->version = milter_get_u32(data);
    o->actions = milter_get_u32(data + 4);
    o->protocol = milter_get_u32(data + 8);
    if (o->version < 2) {
        return -1;
    }

    /* version 6: pairs of a stage number and a macro list */
    p = data + 12;
    end = data + len;
    while (p < end) {
        if (end - p < 5) {
            return -1;
        }
        stage = milter_get_u32(p);
        p += 4;
        nul = memchr(p, '\0', (size_t) (end - p));
        if (nul == NULL || stage >= MILTER_STAGES) {
            return -1;
        }
        o->macros[stage] = p;
        o->macros_len[stage] = (size_t) (nul - p);
        p = nul + 1;
    }

    return 0;
}


int
milter_strings(const u_char *data, size_t len, const char **out,
    size_t *lens, int max)
{
    const u_char  *p, *end, *nul;
    int            n;

    p = data;
    end = data + len;
    for (n = 0; p < end; n++) {
        nul = memchr(p, '\0', (size_t) (end - p));
        if (nul == NULL || n == max) {
            return -1;
        }
        out[n] = (const char *) p;
        lens[n] = (size_t) (nul - p);
        p = nul + 1;
    }
    return n;
}


/* "5.7.1": class digit, dot, 1-3 digits, dot, 1-3 digits */
static int
milter_ecode_ok(const char *p, size_t n, int cls)
{
    size_t  i, d;
    int     part;

    if (n < 5 || n > 9 || p[0] != '0' + cls || p[1] != '.') {
        return 0;
    }
    part = 0;
    d = 0;
    for (i = 2; i < n; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            if (++d > 3) {
                return 0;
            }
        } else if (p[i] == '.' && d > 0 && part == 0) {
            part = 1;
            d = 0;
        } else {
            return 0;
        }
    }
    return part == 1 && d > 0;
}


int
milter_parse_replycode(const u_char *data, size_t len, int *code,
    char *ecode, size_t esize, char *text, size_t tsize)
{
    const u_char  *p, *end, *sp;
    size_t         n, t;

    end = memchr(data, '\0', len);
    if (end == NULL) {
        end = data + len;
    }
    if (end - data < 3 || tsize == 0 || esize < 10) {
        return -1;
    }
    if ((data[0] != '4' && data[0] != '5') || data[1] < '0' || data[1] > '9'
        || data[2] < '0' || data[2] > '9')
    {
        return -1;
    }
    if (end - data > 3 && data[3] != ' ' && data[3] != '-') {
        return -1;
    }
    *code = (data[0] - '0') * 100 + (data[1] - '0') * 10 + (data[2] - '0');
    ecode[0] = '\0';

    p = data + 3;
    if (p < end) {
        p++;
    }
    sp = p;
    while (sp < end && *sp != ' ' && *sp != '\r' && *sp != '\n') {
        sp++;
    }
    n = (size_t) (sp - p);
    if (milter_ecode_ok((const char *) p, n, data[0] - '0')) {
        memcpy(ecode, p, n);
        ecode[n] = '\0';
        p = sp < end ? sp + 1 : sp;
    }

    /* the text of every line, joined by a space: later lines lose their
     * "550-5.7.1 " prefix */
    t = 0;
    while (p < end && t + 1 < tsize) {
        if (*p == '\r' || *p == '\n') {
            while (p < end && (*p == '\r' || *p == '\n')) {
                p++;
            }
            if (end - p >= 4 && p[0] == data[0]) {
                p += 4;
                sp = p;
                while (sp < end && *sp != ' ' && *sp != '\r' && *sp != '\n') {
                    sp++;
                }
                if (ecode[0] && (size_t) (sp - p) == strlen(ecode)
                    && memcmp(p, ecode, (size_t) (sp - p)) == 0)
                {
                    p = sp < end ? sp + 1 : sp;
                }
            }
            text[t++] = ' ';
            continue;
        }
        text[t++] = (char) *p++;
    }
    text[t] = '\0';
    return 0;
}


int
milter_macro_listed(const u_char *list, size_t len, const char *name)
{
    const u_char  *p, *end, *w;
    size_t         n;

    n = strlen(name);
    p = list;
    end = list + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',')) {
            p++;
        }
        w = p;
        while (p < end && *p != ' ' && *p != ',') {
            p++;
        }
        if ((size_t) (p - w) == n && memcmp(w, name, n) == 0) {
            return 1;
        }
        /* "{name}" and "name" are the same macro for long names */
        if (n > 2 && name[0] == '{' && (size_t) (p - w) == n - 2
            && memcmp(w, name + 1, n - 2) == 0)
        {
            return 1;
        }
    }
    return 0;
}
