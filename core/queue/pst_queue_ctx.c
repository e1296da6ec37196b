/*
 * pst_queue_ctx.c -- what modules keep with a queued message
 * (pst_qevent_get_ctx(), pst_qevent_set_ctx(): ABI 1.2,
 * postern_module.h): a hash from (queue ID, module) to the module's
 * pointer and its cleanup, in the queue process's memory.
 *
 * A message no module keeps anything for costs nothing here (the
 * engine's compact record does not grow); one that has costs one entry
 * per module.  The engine calls pst_queue_ctx_forget() when a message
 * leaves the queue (pst_queue_forget(): removed, deleted, moved, gone)
 * and pst_queue_ctx_clear() when it stops; libpostern-test does the
 * same for its fake message.  Every cleanup runs on the loop, after
 * its entry is unlinked, so a cleanup may call anything a hook may.
 * Queue process event loop only: no lock.
 */

#include "pst_core.h"
#include "pst_queue_int.h"
#include "pst_queue_ctx.h"

#define PST_QCTX_MIN_BUCKETS     1024      /* a power of two */

typedef struct pst_qctx_s  pst_qctx_t;

struct pst_qctx_s {
    pst_qctx_t                  *next;
    void                        *value;
    pst_cleanup_pt               cleanup;
    pst_uint_t                   hash;
    pst_uint_t                   module;     /* the module's index */
    u_char                       id[PST_QUEUE_ID_LEN];
};

static pst_qctx_t  **buckets;
static pst_uint_t    nbuckets, nentries;


static const u_char *pst_qctx_key(const pst_qevent_t *ev,
    const pst_module_t *m, pst_uint_t *module);
static pst_qctx_t **pst_qctx_link(const u_char *id, pst_uint_t hash,
    pst_uint_t module);
static int pst_qctx_grow(void);
static void pst_qctx_drop(pst_qctx_t *e);


/* The message's ID and the module's index of an event; NULL when the
 * event has no message or m is not a loaded module. */
static const u_char *
pst_qctx_key(const pst_qevent_t *ev, const pst_module_t *m,
    pst_uint_t *module)
{
    pst_module_entry_t  *me;

    if (ev == NULL || ev->env == NULL || pst_cycle == NULL
        || ev->env->id.len != PST_QUEUE_ID_LEN)
    {
        return NULL;
    }
    me = pst_module_entry(pst_cycle, m);
    if (me == NULL) {
        return NULL;
    }
    *module = me->index;
    return ev->env->id.data;
}


/* The link that points to (id, module)'s entry, or to the NULL that
 * ends its chain; NULL before the first entry. */
static pst_qctx_t **
pst_qctx_link(const u_char *id, pst_uint_t hash, pst_uint_t module)
{
    pst_qctx_t  **l;

    if (buckets == NULL) {
        return NULL;
    }
    for (l = &buckets[hash & (nbuckets - 1)]; *l != NULL; l = &(*l)->next) {
        if ((*l)->hash == hash && (*l)->module == module
            && memcmp((*l)->id, id, PST_QUEUE_ID_LEN) == 0)
        {
            break;
        }
    }
    return l;
}


/* Twice the buckets (the first ones at the first entry), so that a
 * chain stays short with a million messages. */
static int
pst_qctx_grow(void)
{
    pst_qctx_t  **nb, *e, *next;
    pst_uint_t    n, i;

    n = nbuckets != 0 ? nbuckets * 2 : PST_QCTX_MIN_BUCKETS;
    nb = calloc(n, sizeof(pst_qctx_t *));
    if (nb == NULL) {
        return nbuckets != 0 ? PST_OK : PST_ERROR;  /* longer chains */
    }
    for (i = 0; i < nbuckets; i++) {
        for (e = buckets[i]; e != NULL; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(buckets);
    buckets = nb;
    nbuckets = n;
    return PST_OK;
}


/* An entry already unlinked: its cleanup, then the entry. */
static void
pst_qctx_drop(pst_qctx_t *e)
{
    nentries--;
    if (e->cleanup != NULL && e->value != NULL) {
        e->cleanup(e->value);
    }
    free(e);
}


void *
pst_qevent_get_ctx(const pst_qevent_t *ev, const pst_module_t *m)
{
    const u_char  *id;
    pst_qctx_t   **l;
    pst_uint_t     module;

    id = pst_qctx_key(ev, m, &module);
    l = id != NULL ? pst_qctx_link(id, pst_queue_hash(id), module) : NULL;
    return l != NULL && *l != NULL ? (*l)->value : NULL;
}


int
pst_qevent_set_ctx(const pst_qevent_t *ev, const pst_module_t *m, void *v,
    pst_cleanup_pt cleanup)
{
    const u_char  *id;
    pst_qctx_t   **l, *e, old;
    pst_uint_t     module, hash;

    id = pst_qctx_key(ev, m, &module);
    if (id == NULL) {
        return PST_ERROR;
    }
    hash = pst_queue_hash(id);
    l = pst_qctx_link(id, hash, module);

    if (l != NULL && *l != NULL) {
        e = *l;
        old = *e;
        if (v == NULL) {
            *l = e->next;                       /* forget it */
            pst_qctx_drop(e);
            return PST_OK;
        }
        e->value = v;
        e->cleanup = cleanup;
        if (old.value != v && old.cleanup != NULL && old.value != NULL) {
            old.cleanup(old.value);             /* replaced */
        }
        return PST_OK;
    }
    if (v == NULL) {
        return PST_OK;
    }

    if ((nentries >= nbuckets * 2 && pst_qctx_grow() != PST_OK)
        || (e = calloc(1, sizeof(pst_qctx_t))) == NULL)
    {
        return PST_ERROR;
    }
    e->value = v;
    e->cleanup = cleanup;
    e->hash = hash;
    e->module = module;
    memcpy(e->id, id, PST_QUEUE_ID_LEN);
    e->next = buckets[hash & (nbuckets - 1)];
    buckets[hash & (nbuckets - 1)] = e;
    nentries++;
    return PST_OK;
}


void
pst_queue_ctx_forget(const u_char *id)
{
    pst_qctx_t  **l, *e, *gone = NULL;
    pst_uint_t    hash;

    if (buckets == NULL) {
        return;
    }
    hash = pst_queue_hash(id);

    /* unlink them all first: a cleanup may set or clear other states */
    for (l = &buckets[hash & (nbuckets - 1)]; *l != NULL; /* void */ ) {
        e = *l;
        if (e->hash == hash && memcmp(e->id, id, PST_QUEUE_ID_LEN) == 0) {
            *l = e->next;
            e->next = gone;
            gone = e;
        } else {
            l = &e->next;
        }
    }
    while (gone != NULL) {
        e = gone;
        gone = e->next;
        pst_qctx_drop(e);
    }
}


void
pst_queue_ctx_clear(void)
{
    pst_qctx_t  *e;
    pst_uint_t   i;

    for (i = 0; i < nbuckets; i++) {
        while (buckets != NULL && (e = buckets[i]) != NULL) {
            buckets[i] = e->next;
            pst_qctx_drop(e);
        }
    }
    free(buckets);
    buckets = NULL;
    nbuckets = 0;
    nentries = 0;
}


pst_uint_t
pst_queue_ctx_count(const u_char *id)
{
    pst_qctx_t  *e;
    pst_uint_t   hash, n = 0;

    if (buckets == NULL) {
        return 0;
    }
    hash = pst_queue_hash(id);
    for (e = buckets[hash & (nbuckets - 1)]; e != NULL; e = e->next) {
        n += e->hash == hash && memcmp(e->id, id, PST_QUEUE_ID_LEN) == 0;
    }
    return n;
}
