/*
 * pst_list.h -- intrusive doubly linked lists.
 *
 * A pst_list_t is embedded in the object; a sentinel heads the list.
 * pst_list_data() gets the object back from its link.
 */

#ifndef PST_LIST_H
#define PST_LIST_H

typedef struct pst_list_s  pst_list_t;

struct pst_list_s {
    pst_list_t                  *prev;
    pst_list_t                  *next;
};

#define pst_list_init(h)         do { (h)->prev = (h); (h)->next = (h); }   \
                                 while (0)
#define pst_list_empty(h)        ((h)->next == (h))
#define pst_list_head(h)         ((h)->next)
#define pst_list_sentinel(h)     (h)
#define pst_list_next(x)         ((x)->next)

#define pst_list_insert_tail(h, x)                                           \
    do { (x)->prev = (h)->prev; (x)->prev->next = (x); (x)->next = (h);      \
         (h)->prev = (x); } while (0)

#define pst_list_insert_head(h, x)                                           \
    do { (x)->next = (h)->next; (x)->next->prev = (x); (x)->prev = (h);      \
         (h)->next = (x); } while (0)

#define pst_list_remove(x)                                                   \
    do { (x)->next->prev = (x)->prev; (x)->prev->next = (x)->next;           \
         (x)->prev = NULL; (x)->next = NULL; } while (0)

#define pst_list_linked(x)       ((x)->next != NULL)

#define pst_list_data(x, type, link)                                         \
    ((type *) ((u_char *) (x) - offsetof(type, link)))

#endif /* PST_LIST_H */
