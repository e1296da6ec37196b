/*
 * pst_palloc.c -- memory pools (see pst_palloc.h).
 */

#include "pst_core.h"

#define PST_POOL_ALIGN  16


static void *pst_palloc_block(pst_pool_t *pool, size_t size);
static void *pst_palloc_large(pst_pool_t *pool, size_t size);


pst_pool_t *
pst_create_pool(size_t block_size)
{
    pst_pool_t        *pool;
    pst_pool_block_t  *b;
    size_t             hdr;

    hdr = pst_align(sizeof(pst_pool_t) + sizeof(pst_pool_block_t),
                    PST_POOL_ALIGN);
    if (block_size < hdr + 64) {
        block_size = hdr + 64;
    }

    pool = malloc(block_size);
    if (pool == NULL) {
        return NULL;
    }

    b = (pst_pool_block_t *) (pool + 1);
    b->next = NULL;
    b->last = (u_char *) pool + hdr;
    b->end = (u_char *) pool + block_size;

    pool->current = b;
    pool->first = b;
    pool->large = NULL;
    pool->cleanup = NULL;
    pool->block_size = block_size;
    pool->max_small = (block_size - hdr) / 2;

    return pool;
}


void
pst_destroy_pool(pst_pool_t *pool)
{
    pst_pool_cleanup_t  *c;
    pst_pool_large_t    *l, *ln;
    pst_pool_block_t    *b, *bn;

    if (pool == NULL) {
        return;
    }

    for (c = pool->cleanup; c != NULL; c = c->next) {
        if (c->handler != NULL) {
            c->handler(c->data);
        }
    }

    for (l = pool->large; l != NULL; l = ln) {
        ln = l->next;
        free(l);
    }

    /* the first block lives inside the pool allocation */
    for (b = pool->first->next; b != NULL; b = bn) {
        bn = b->next;
        free(b);
    }

    free(pool);
}


void
pst_reset_pool(pst_pool_t *pool)
{
    pst_pool_cleanup_t  *c;
    pst_pool_large_t    *l, *ln;
    pst_pool_block_t    *b, *bn;
    size_t               hdr;

    for (c = pool->cleanup; c != NULL; c = c->next) {
        if (c->handler != NULL) {
            c->handler(c->data);
        }
    }
    pool->cleanup = NULL;

    for (l = pool->large; l != NULL; l = ln) {
        ln = l->next;
        free(l);
    }
    pool->large = NULL;

    for (b = pool->first->next; b != NULL; b = bn) {
        bn = b->next;
        free(b);
    }

    hdr = pst_align(sizeof(pst_pool_t) + sizeof(pst_pool_block_t),
                    PST_POOL_ALIGN);
    pool->first->next = NULL;
    pool->first->last = (u_char *) pool + hdr;
    pool->current = pool->first;
}


void *
pst_palloc(pst_pool_t *pool, size_t size)
{
    pst_pool_block_t  *b;
    u_char            *m;

    if (size > pool->max_small) {
        return pst_palloc_large(pool, size);
    }

    for (b = pool->current; b != NULL; b = b->next) {
        m = (u_char *) pst_align((uintptr_t) b->last, PST_POOL_ALIGN);
        if (m <= b->end && (size_t) (b->end - m) >= size) {
            b->last = m + size;
            return m;
        }
    }

    return pst_palloc_block(pool, size);
}


void *
pst_pcalloc(pst_pool_t *pool, size_t size)
{
    void  *p;

    p = pst_palloc(pool, size);
    if (p != NULL) {
        memset(p, 0, size);
    }

    return p;
}


u_char *
pst_pstrdup(pst_pool_t *pool, const pst_str_t *s)
{
    u_char  *p;

    p = pst_palloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    if (s->len) {
        memcpy(p, s->data, s->len);
    }
    p[s->len] = '\0';

    return p;
}


static void *
pst_palloc_block(pst_pool_t *pool, size_t size)
{
    pst_pool_block_t  *b, *last;
    size_t             bsize, hdr;
    u_char            *m;

    hdr = pst_align(sizeof(pst_pool_block_t), PST_POOL_ALIGN);
    bsize = pool->block_size;
    if (bsize < hdr + size) {
        bsize = hdr + size;
    }

    b = malloc(bsize);
    if (b == NULL) {
        return NULL;
    }

    m = (u_char *) b + hdr;
    b->next = NULL;
    b->last = m + size;
    b->end = (u_char *) b + bsize;

    for (last = pool->current; last->next != NULL; last = last->next) {
        /* void */
    }
    last->next = b;

    /* stop scanning blocks that are nearly full */
    if ((size_t) (pool->current->end - pool->current->last) < 64) {
        pool->current = pool->current->next;
    }

    return m;
}


static void *
pst_palloc_large(pst_pool_t *pool, size_t size)
{
    pst_pool_large_t  *l;
    size_t             hdr;

    hdr = pst_align(sizeof(pst_pool_large_t), PST_POOL_ALIGN);

    l = malloc(hdr + size);
    if (l == NULL) {
        return NULL;
    }

    l->size = size;
    l->next = pool->large;
    l->prevp = &pool->large;
    if (pool->large != NULL) {
        pool->large->prevp = &l->next;
    }
    pool->large = l;

    return (u_char *) l + hdr;
}


void
pst_pfree(pst_pool_t *pool, void *p)
{
    pst_pool_large_t  *l;
    size_t             hdr;

    (void) pool;

    if (p == NULL) {
        return;
    }

    hdr = pst_align(sizeof(pst_pool_large_t), PST_POOL_ALIGN);
    l = (pst_pool_large_t *) ((u_char *) p - hdr);

    *l->prevp = l->next;
    if (l->next != NULL) {
        l->next->prevp = l->prevp;
    }

    free(l);
}


size_t
pst_pool_size(pst_pool_t *pool)
{
    pst_pool_large_t  *l;
    pst_pool_block_t  *b;
    size_t             n;

    n = pool->block_size;
    for (b = pool->first->next; b != NULL; b = b->next) {
        n += (size_t) (b->end - (u_char *) b);
    }
    for (l = pool->large; l != NULL; l = l->next) {
        n += l->size;
    }

    return n;
}


int
pst_pool_cleanup_add(pst_pool_t *pool, pst_cleanup_pt handler, void *data)
{
    pst_pool_cleanup_t  *c;

    c = pst_palloc(pool, sizeof(pst_pool_cleanup_t));
    if (c == NULL) {
        return PST_ERROR;
    }

    c->handler = handler;
    c->data = data;
    c->next = pool->cleanup;
    pool->cleanup = c;

    return PST_OK;
}


pst_array_t *
pst_array_create(pst_pool_t *p, pst_uint_t n, size_t size)
{
    pst_array_t  *a;

    a = pst_palloc(p, sizeof(pst_array_t));
    if (a == NULL) {
        return NULL;
    }

    if (n == 0) {
        n = 1;
    }

    a->elts = pst_palloc(p, n * size);
    if (a->elts == NULL) {
        return NULL;
    }

    a->nelts = 0;
    a->size = size;
    a->nalloc = n;
    a->pool = p;

    return a;
}


void *
pst_array_push(pst_array_t *a)
{
    void    *elts;
    size_t   size;

    if (a->nelts == a->nalloc) {
        size = a->size * a->nalloc;
        elts = pst_palloc(a->pool, 2 * size);
        if (elts == NULL) {
            return NULL;
        }
        memcpy(elts, a->elts, size);
        if (size > a->pool->max_small) {
            pst_pfree(a->pool, a->elts);
        }
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}
