/*
 * pst_buf.c -- byte buffers (see pst_buf.h).
 */

#include "pst_core.h"


pst_buf_t *
pst_buf_alloc(size_t size)
{
    pst_buf_t  *b;

    b = malloc(sizeof(pst_buf_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->start = (u_char *) (b + 1);
    b->end = b->start + size;
    b->pos = b->start;
    b->last = b->start;
    b->inline_size = size;

    return b;
}


void
pst_buf_destroy(pst_buf_t *b)
{
    if (b == NULL) {
        return;
    }
    if (b->start != (u_char *) (b + 1)) {
        free(b->start);
    }
    free(b);
}


void
pst_buf_compact(pst_buf_t *b)
{
    size_t  n;

    if (b->pos == b->start) {
        return;
    }

    n = pst_buf_size(b);
    if (n) {
        memmove(b->start, b->pos, n);
    }
    b->pos = b->start;
    b->last = b->start + n;
}


int
pst_buf_resize(pst_buf_t *b, size_t size)
{
    u_char  *p;
    size_t   n;

    pst_buf_compact(b);
    n = pst_buf_size(b);
    if (size < n) {
        size = n;
    }

    if (size <= b->inline_size) {
        /* back into the storage that follows the header */
        p = (u_char *) (b + 1);
        if (b->start != p) {
            if (n) {
                memcpy(p, b->pos, n);
            }
            free(b->start);
        }
        b->start = p;
        b->end = p + b->inline_size;
        b->pos = p;
        b->last = p + n;
        return PST_OK;
    }

    p = malloc(size);
    if (p == NULL) {
        return PST_ERROR;
    }
    if (n) {
        memcpy(p, b->pos, n);
    }
    if (b->start != (u_char *) (b + 1)) {
        free(b->start);
    }

    b->start = p;
    b->end = p + size;
    b->pos = p;
    b->last = p + n;

    return PST_OK;
}


int
pst_buf_append(pst_buf_t *b, const void *data, size_t n, size_t max)
{
    size_t  want;

    if (pst_buf_free(b) < n) {
        pst_buf_compact(b);
    }

    if (pst_buf_free(b) < n) {
        want = pst_buf_capacity(b) * 2;
        if (want < pst_buf_size(b) + n) {
            want = pst_buf_size(b) + n;
        }
        if (want > max) {
            want = max;
        }
        if (want < pst_buf_size(b) + n
            || pst_buf_resize(b, want) != PST_OK)
        {
            return PST_ERROR;
        }
    }

    memcpy(b->last, data, n);
    b->last += n;

    return PST_OK;
}
