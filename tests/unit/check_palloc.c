/*
 * check_palloc.c -- pst_palloc.c: pools, large blocks, cleanup handlers
 * and pool arrays.
 *
 * Sessions, transactions and configuration generations live in pools;
 * a cleanup handler closes files and unloads modules.  Run under the
 * --with-debug build, ASan also checks that nothing is freed twice or
 * leaked by the pool code itself.
 */

#include "check_util.h"
#include "check_suites.h"


static int  order[16];
static int  norder;


static void
record(void *data)
{
    ck_assert_int_lt(norder, (int) pst_nelems(order));
    order[norder++] = (int) (intptr_t) data;
}


static int
is_large(pst_pool_t *pool, void *p)
{
    pst_pool_large_t  *l;
    size_t             hdr;

    hdr = pst_align(sizeof(pst_pool_large_t), 16);
    for (l = pool->large; l != NULL; l = l->next) {
        if ((u_char *) l + hdr == p) {
            return 1;
        }
    }

    return 0;
}


START_TEST(test_small)
{
    pst_pool_t  *pool;
    u_char      *p[64];
    size_t       i, k;

    pool = pst_create_pool(1024);
    ck_assert_ptr_nonnull(pool);

    for (i = 0; i < pst_nelems(p); i++) {
        p[i] = pst_palloc(pool, 1 + i * 5);
        ck_assert_ptr_nonnull(p[i]);
        /* aligned for any type a caller may put there */
        ck_assert_uint_eq((uintptr_t) p[i] % 16, 0);
        ck_assert(!is_large(pool, p[i]));
        memset(p[i], (int) i, 1 + i * 5);
    }

    /* no allocation overlaps another: every byte kept its value */
    for (i = 0; i < pst_nelems(p); i++) {
        for (k = 0; k < 1 + i * 5; k++) {
            ck_assert_int_eq(p[i][k], (u_char) i);
        }
    }

    /* that needed more than the first block */
    ck_assert_ptr_nonnull(pool->first->next);
    ck_assert_uint_gt(pst_pool_size(pool), 1024);

    pst_destroy_pool(pool);
    pst_destroy_pool(NULL);
}
END_TEST


START_TEST(test_tiny_block_size)
{
    pst_pool_t  *pool;
    void        *p;

    /* a block size below the header is raised, and the pool works */
    pool = pst_create_pool(1);
    ck_assert_ptr_nonnull(pool);
    ck_assert_uint_gt(pool->max_small, 0);

    p = pst_palloc(pool, 10);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 10);
    p = pst_palloc(pool, 1000);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 1000);

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_large_and_pfree)
{
    pst_pool_t  *pool;
    u_char      *a, *b, *c;
    size_t       base, big;

    pool = pst_create_pool(1024);
    base = pst_pool_size(pool);
    big = pool->max_small + 1;

    a = pst_palloc(pool, big);
    b = pst_palloc(pool, 2 * big);
    c = pst_palloc(pool, 3 * big);
    ck_assert(a != NULL && b != NULL && c != NULL);
    ck_assert(is_large(pool, a) && is_large(pool, b) && is_large(pool, c));
    ck_assert_uint_eq((uintptr_t) a % 16, 0);
    memset(a, 'a', big);
    memset(b, 'b', 2 * big);
    memset(c, 'c', 3 * big);
    ck_assert_uint_eq(pst_pool_size(pool), base + 6 * big);

    /* the one in the middle of the list: its neighbours stay linked */
    pst_pfree(pool, b);
    ck_assert(!is_large(pool, b));
    ck_assert(is_large(pool, a) && is_large(pool, c));
    ck_assert_uint_eq(pst_pool_size(pool), base + 4 * big);

    /* the head, then the last one */
    pst_pfree(pool, c);
    ck_assert(is_large(pool, a) && !is_large(pool, c));
    pst_pfree(pool, a);
    ck_assert_ptr_null(pool->large);
    ck_assert_uint_eq(pst_pool_size(pool), base);

    pst_pfree(pool, NULL);

    /* the pool is still usable and frees the rest on destroy */
    a = pst_palloc(pool, big);
    ck_assert_ptr_nonnull(a);
    memset(a, 'x', big);

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_pcalloc_pstrdup)
{
    pst_pool_t  *pool;
    pst_str_t    s = pst_string("hello");
    pst_str_t    empty = pst_null_string;
    u_char      *p, *q;
    size_t       i;

    pool = pst_create_pool(1024);

    p = pst_palloc(pool, 100);
    memset(p, 0xff, 100);
    pst_reset_pool(pool);

    /* the same memory again, now zeroed */
    q = pst_pcalloc(pool, 100);
    ck_assert_ptr_eq(q, p);
    for (i = 0; i < 100; i++) {
        ck_assert_int_eq(q[i], 0);
    }

    p = pst_pstrdup(pool, &s);
    ck_assert_str_eq((char *) p, "hello");
    ck_assert_ptr_ne(p, s.data);

    /* a NULL data pointer with length 0 is fine */
    p = pst_pstrdup(pool, &empty);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p[0], '\0');

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_cleanup_destroy)
{
    pst_pool_t  *pool;
    intptr_t     i;

    norder = 0;
    pool = pst_create_pool(1024);

    for (i = 1; i <= 5; i++) {
        ck_assert_int_eq(pst_pool_cleanup_add(pool, record, (void *) i),
                         PST_OK);
    }
    /* a NULL handler is skipped, not called */
    ck_assert_int_eq(pst_pool_cleanup_add(pool, NULL, NULL), PST_OK);

    ck_assert_int_eq(norder, 0);
    pst_destroy_pool(pool);

    /* reverse order of registration, like nested resources unwinding */
    ck_assert_int_eq(norder, 5);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(order[i], 5 - i);
    }
}
END_TEST


START_TEST(test_cleanup_reset)
{
    pst_pool_t  *pool;
    u_char      *first, *p;
    size_t       big;

    norder = 0;
    pool = pst_create_pool(1024);
    big = pool->max_small + 1;

    first = pst_palloc(pool, 16);
    ck_assert_int_eq(pst_pool_cleanup_add(pool, record, (void *) 1), PST_OK);
    ck_assert_int_eq(pst_pool_cleanup_add(pool, record, (void *) 2), PST_OK);
    ck_assert_int_eq(pst_pool_cleanup_add(pool, record, (void *) 3), PST_OK);

    /* blocks and large allocations that reset must give back */
    p = pst_palloc(pool, big);
    memset(p, 1, big);
    for (p = NULL; pool->first->next == NULL; /* void */) {
        p = pst_palloc(pool, 200);
        ck_assert_ptr_nonnull(p);
    }

    pst_reset_pool(pool);

    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(order[0], 3);
    ck_assert_int_eq(order[1], 2);
    ck_assert_int_eq(order[2], 1);

    /* everything was forgotten: the first allocation comes back */
    ck_assert_ptr_null(pool->large);
    ck_assert_ptr_null(pool->first->next);
    ck_assert_uint_eq(pst_pool_size(pool), pool->block_size);
    ck_assert_ptr_eq(pst_palloc(pool, 16), first);

    /* the handlers ran once: only new ones run on destroy */
    ck_assert_int_eq(pst_pool_cleanup_add(pool, record, (void *) 4), PST_OK);
    pst_destroy_pool(pool);
    ck_assert_int_eq(norder, 4);
    ck_assert_int_eq(order[3], 4);
}
END_TEST


typedef struct {
    uint32_t                     n;
    u_char                       pad[60];
} elt_t;


START_TEST(test_array_small)
{
    pst_pool_t   *pool;
    pst_array_t  *a;
    uint32_t     *v;
    uint32_t      i;

    pool = pst_create_pool(1024);

    /* n = 0 still gives a usable array */
    a = pst_array_create(pool, 0, sizeof(uint32_t));
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(a->nalloc, 1);

    for (i = 0; i < 5000; i++) {
        v = pst_array_push(a);
        ck_assert_ptr_nonnull(v);
        *v = i * 3;
    }

    ck_assert_uint_eq(a->nelts, 5000);
    ck_assert_uint_ge(a->nalloc, 5000);
    v = a->elts;
    for (i = 0; i < 5000; i++) {
        ck_assert_uint_eq(v[i], i * 3);
    }

    pst_destroy_pool(pool);
}
END_TEST


START_TEST(test_array_large)
{
    pst_pool_t   *pool;
    pst_array_t  *a;
    elt_t        *e;
    uint32_t      i;

    /* elements big enough that growth goes through large blocks and
     * frees the old ones (pst_pfree) */
    pool = pst_create_pool(1024);
    a = pst_array_create(pool, 2, sizeof(elt_t));
    ck_assert_ptr_nonnull(a);

    for (i = 0; i < 300; i++) {
        e = pst_array_push(a);
        ck_assert_ptr_nonnull(e);
        e->n = i;
        memset(e->pad, (int) (i & 0xff), sizeof(e->pad));
    }

    e = a->elts;
    for (i = 0; i < 300; i++) {
        ck_assert_uint_eq(e[i].n, i);
        ck_assert_int_eq(e[i].pad[0], (u_char) i);
        ck_assert_int_eq(e[i].pad[59], (u_char) i);
    }

    /* only the current element block is held as a large allocation */
    ck_assert(is_large(pool, a->elts));
    ck_assert_ptr_null(pool->large->next);

    pst_destroy_pool(pool);
}
END_TEST


Suite *
suite_palloc(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("palloc");

    tc = tcase_create("pool");
    tcase_add_test(tc, test_small);
    tcase_add_test(tc, test_tiny_block_size);
    tcase_add_test(tc, test_large_and_pfree);
    tcase_add_test(tc, test_pcalloc_pstrdup);
    tcase_add_test(tc, test_cleanup_destroy);
    tcase_add_test(tc, test_cleanup_reset);
    suite_add_tcase(s, tc);

    tc = tcase_create("array");
    tcase_add_test(tc, test_array_small);
    tcase_add_test(tc, test_array_large);
    suite_add_tcase(s, tc);

    return s;
}
