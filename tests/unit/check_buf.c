/*
 * check_buf.c -- pst_buf.c: the start/end/pos/last buffer, compaction,
 * resizing and bounded appends.
 *
 * The session reads into these buffers and the DATA parser keeps the
 * header section in one, so a buffer must never lose or reorder live
 * bytes and must never grow past the limit it is given.
 */

#include "check_util.h"
#include "check_suites.h"


static void
check_content(pst_buf_t *b, const char *text)
{
    size_t  n = strlen(text);

    ck_assert_uint_eq(pst_buf_size(b), n);
    ck_assert_mem_eq(b->pos, text, n);
    ck_assert(b->start <= b->pos && b->pos <= b->last && b->last <= b->end);
}


START_TEST(test_alloc)
{
    pst_buf_t  *b;

    b = pst_buf_alloc(16);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(pst_buf_capacity(b), 16);
    ck_assert_uint_eq(pst_buf_free(b), 16);
    ck_assert_uint_eq(pst_buf_size(b), 0);
    ck_assert_ptr_eq(b->pos, b->start);
    ck_assert_ptr_eq(b->last, b->start);

    /* the whole capacity is usable */
    memset(b->start, 'x', 16);
    b->last = b->end;
    ck_assert_uint_eq(pst_buf_free(b), 0);

    pst_buf_destroy(b);
    pst_buf_destroy(NULL);
}
END_TEST


START_TEST(test_compact)
{
    pst_buf_t  *b;

    b = pst_buf_alloc(16);
    ck_assert_int_eq(pst_buf_append(b, "0123456789", 10, 16), PST_OK);

    /* nothing consumed: nothing moves */
    pst_buf_compact(b);
    ck_assert_ptr_eq(b->pos, b->start);
    check_content(b, "0123456789");

    /* a parser consumed 4 bytes: the rest moves to the start */
    b->pos += 4;
    pst_buf_compact(b);
    ck_assert_ptr_eq(b->pos, b->start);
    check_content(b, "456789");
    ck_assert_uint_eq(pst_buf_free(b), 10);

    /* everything consumed: both pointers rewind */
    b->pos = b->last;
    pst_buf_compact(b);
    ck_assert_ptr_eq(b->pos, b->start);
    ck_assert_ptr_eq(b->last, b->start);
    ck_assert_uint_eq(pst_buf_free(b), 16);

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_compact_overlapping)
{
    pst_buf_t  *b;

    /* the live data overlaps its destination: memmove, not memcpy */
    b = pst_buf_alloc(8);
    ck_assert_int_eq(pst_buf_append(b, "abcdefgh", 8, 8), PST_OK);
    b->pos += 2;
    pst_buf_compact(b);
    check_content(b, "cdefgh");

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_resize)
{
    pst_buf_t  *b;

    b = pst_buf_alloc(8);
    ck_assert_int_eq(pst_buf_append(b, "abcdefgh", 8, 8), PST_OK);
    b->pos += 3;

    /* grow: the live data survives and moves to the new start */
    ck_assert_int_eq(pst_buf_resize(b, 64), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 64);
    ck_assert_ptr_eq(b->pos, b->start);
    check_content(b, "defgh");

    /* a second resize frees the first separate allocation (ASan) */
    ck_assert_int_eq(pst_buf_resize(b, 128), PST_OK);
    check_content(b, "defgh");

    /* shrink to what fits the storage behind the header: the data moves
     * back there (no allocation), never below the live data */
    ck_assert_int_eq(pst_buf_resize(b, 2), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 8);
    ck_assert_ptr_eq(b->start, (u_char *) (b + 1));
    check_content(b, "defgh");

    /* and out again, then to an odd size above the inline storage */
    ck_assert_int_eq(pst_buf_resize(b, 32), PST_OK);
    ck_assert_ptr_ne(b->start, (u_char *) (b + 1));
    ck_assert_int_eq(pst_buf_resize(b, 9), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 9);
    check_content(b, "defgh");

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_append_growth)
{
    pst_buf_t  *b;
    u_char     *start;

    b = pst_buf_alloc(4);

    /* fits: no growth */
    ck_assert_int_eq(pst_buf_append(b, "abc", 3, 64), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 4);

    /* doubles when doubling is enough */
    ck_assert_int_eq(pst_buf_append(b, "de", 2, 64), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 8);
    check_content(b, "abcde");

    /* grows to exactly what is needed when doubling is not */
    ck_assert_int_eq(pst_buf_append(b, "fghijklmnopqrstuvw", 18, 64), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 23);
    check_content(b, "abcdefghijklmnopqrstuvw");

    /* capped at max: doubling would give 46, max is 30 */
    ck_assert_int_eq(pst_buf_append(b, "1234567", 7, 30), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 30);
    check_content(b, "abcdefghijklmnopqrstuvw1234567");

    /* full at max: refused, nothing written, nothing lost */
    ck_assert_int_eq(pst_buf_append(b, "X", 1, 30), PST_ERROR);
    ck_assert_uint_eq(pst_buf_capacity(b), 30);
    check_content(b, "abcdefghijklmnopqrstuvw1234567");

    /* an empty append always fits */
    ck_assert_int_eq(pst_buf_append(b, "", 0, 30), PST_OK);

    /* consuming makes room again: compaction in place, no growth and
     * no new allocation */
    start = b->start;
    b->pos += 23;
    ck_assert_int_eq(pst_buf_append(b, "89", 2, 30), PST_OK);
    ck_assert_uint_eq(pst_buf_capacity(b), 30);
    ck_assert_ptr_eq(b->start, start);
    check_content(b, "123456789");

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_append_past_max)
{
    pst_buf_t  *b;

    b = pst_buf_alloc(4);

    /* one append larger than max: refused in one piece */
    ck_assert_int_eq(pst_buf_append(b, "0123456789", 10, 8), PST_ERROR);
    ck_assert_uint_eq(pst_buf_size(b), 0);

    /* up to max exactly is fine */
    ck_assert_int_eq(pst_buf_append(b, "01234567", 8, 8), PST_OK);
    check_content(b, "01234567");
    ck_assert_int_eq(pst_buf_append(b, "8", 1, 8), PST_ERROR);
    check_content(b, "01234567");

    pst_buf_destroy(b);
}
END_TEST


START_TEST(test_append_many)
{
    pst_buf_t  *b;
    u_char      c;
    size_t      i;

    /* byte by byte to 10000: every byte in place after many regrowths */
    b = pst_buf_alloc(1);
    for (i = 0; i < 10000; i++) {
        c = (u_char) (i * 7);
        ck_assert_int_eq(pst_buf_append(b, &c, 1, 10000), PST_OK);
    }
    ck_assert_int_eq(pst_buf_append(b, "x", 1, 10000), PST_ERROR);
    ck_assert_uint_eq(pst_buf_size(b), 10000);

    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(b->pos[i], (u_char) (i * 7));
    }

    pst_buf_destroy(b);
}
END_TEST


Suite *
suite_buf(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("buf");

    tc = tcase_create("buf");
    tcase_add_test(tc, test_alloc);
    tcase_add_test(tc, test_compact);
    tcase_add_test(tc, test_compact_overlapping);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_append_growth);
    tcase_add_test(tc, test_append_past_max);
    tcase_add_test(tc, test_append_many);
    suite_add_tcase(s, tc);

    return s;
}
