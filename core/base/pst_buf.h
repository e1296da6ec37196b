/*
 * pst_buf.h -- byte buffers.
 *
 * start/end delimit the allocation, pos/last the live data: parsers
 * advance pos, reads advance last.  When pos reaches last both rewind to
 * start.  A read is never attempted with no free space (see
 * pst_buf_compact()).
 */

#ifndef PST_BUF_H
#define PST_BUF_H

struct pst_buf_s {
    u_char                      *start;
    u_char                      *end;
    u_char                      *pos;
    u_char                      *last;
    size_t                       inline_size;   /* storage after the header */
};

#define pst_buf_size(b)          ((size_t) ((b)->last - (b)->pos))
#define pst_buf_free(b)          ((size_t) ((b)->end - (b)->last))
#define pst_buf_capacity(b)      ((size_t) ((b)->end - (b)->start))

/* malloc-backed buffer; NULL on failure. */
pst_buf_t *pst_buf_alloc(size_t size);
void pst_buf_destroy(pst_buf_t *b);
/* Move live data to the start to make room at the end. */
void pst_buf_compact(pst_buf_t *b);
/* Grow (or shrink, never below the live data) to size bytes. */
int pst_buf_resize(pst_buf_t *b, size_t size);
/* Append; grows up to max bytes.  PST_OK or PST_ERROR (full / ENOMEM). */
int pst_buf_append(pst_buf_t *b, const void *data, size_t n, size_t max);

#endif /* PST_BUF_H */
