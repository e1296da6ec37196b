/*
 * pst_palloc.h -- memory pools with cleanup handlers.
 *
 * A pool hands out small objects from a chain of blocks and keeps large
 * ones in a list; nothing is freed one at a time except large blocks
 * through pst_pfree().  Destroying the pool runs its cleanup handlers in
 * reverse order of registration and frees everything.  Pools are per
 * configuration cycle, per session and per transaction.
 *
 * Allocation failure returns NULL; callers return PST_ERROR.
 */

#ifndef PST_PALLOC_H
#define PST_PALLOC_H

typedef struct pst_pool_block_s    pst_pool_block_t;
typedef struct pst_pool_large_s    pst_pool_large_t;
typedef struct pst_pool_cleanup_s  pst_pool_cleanup_t;

struct pst_pool_block_s {
    pst_pool_block_t            *next;
    u_char                      *last;
    u_char                      *end;
};

struct pst_pool_large_s {
    pst_pool_large_t            *next;
    pst_pool_large_t           **prevp;
    size_t                       size;
};

struct pst_pool_cleanup_s {
    pst_cleanup_pt               handler;
    void                        *data;
    pst_pool_cleanup_t          *next;
};

struct pst_pool_s {
    pst_pool_block_t            *current;
    pst_pool_block_t            *first;
    pst_pool_large_t            *large;
    pst_pool_cleanup_t          *cleanup;
    size_t                       block_size;
    size_t                       max_small;
};

pst_pool_t *pst_create_pool(size_t block_size);
void pst_destroy_pool(pst_pool_t *pool);
/* Forget all allocations but keep the first block (transaction reuse). */
void pst_reset_pool(pst_pool_t *pool);
/* Free a large allocation early (only blocks above max_small). */
void pst_pfree(pst_pool_t *pool, void *p);
/* Bytes the pool holds from the allocator (for memory accounting). */
size_t pst_pool_size(pst_pool_t *pool);

#endif /* PST_PALLOC_H */
