/*
 * pst_smtp_notes.c -- what modules keep per transaction and share
 * (postern_module.h): the per-module transaction slot (pst_tx_set_ctx)
 * and the notes map (pst_note_set), in session or transaction memory.
 */

#include "pst_core.h"
#include "pst_smtp.h"

#define PST_NOTE_KEY_MAX         64
#define PST_NOTE_VALUE_MAX       1000

typedef struct {
    char                        *key;
    char                        *value;
} pst_note_t;


static pst_note_t *pst_note_find(pst_array_t *notes, const char *key);


void *
pst_tx_get_ctx(pst_session_t *s, const pst_module_t *m)
{
    pst_module_entry_t  *me;

    if (s->tx == NULL || s->tx->module_ctx == NULL) {
        return NULL;
    }
    me = pst_module_entry(pst_cycle, m);
    return me != NULL ? s->tx->module_ctx[me->index] : NULL;
}


void
pst_tx_set_ctx(pst_session_t *s, const pst_module_t *m, void *v)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(pst_cycle, m);
    if (s->tx == NULL || me == NULL) {
        return;
    }
    if (s->tx->module_ctx == NULL) {
        s->tx->module_ctx = pst_pcalloc(s->tx->pool,
                                        PST_MAX_MODULES * sizeof(void *));
        if (s->tx->module_ctx == NULL) {
            return;
        }
    }
    s->tx->module_ctx[me->index] = v;
}


static int
pst_note_key_ok(const char *key)
{
    size_t  i;

    for (i = 0; key[i] != '\0'; i++) {
        if (i >= PST_NOTE_KEY_MAX
            || !((key[i] >= 'a' && key[i] <= 'z')
                 || (key[i] >= '0' && key[i] <= '9')
                 || key[i] == '.' || key[i] == '_' || key[i] == '-'))
        {
            return 0;
        }
    }
    return i > 0;
}


int
pst_note_set(pst_session_t *s, int scope, const char *key,
    const char *value)
{
    pst_array_t  **notes;
    pst_pool_t    *pool;
    pst_note_t    *n;
    pst_str_t      v;

    if (key == NULL || value == NULL || !pst_note_key_ok(key)
        || strlen(value) > PST_NOTE_VALUE_MAX
        || (scope == PST_NOTE_TX && s->tx == NULL)
        || (scope != PST_NOTE_TX && scope != PST_NOTE_SESSION))
    {
        return PST_ERROR;
    }
    notes = scope == PST_NOTE_TX ? &s->tx->notes : &s->notes;
    pool = scope == PST_NOTE_TX ? s->tx->pool : s->pool;

    if (*notes == NULL) {
        *notes = pst_array_create(pool, 4, sizeof(pst_note_t));
        if (*notes == NULL) {
            return PST_ERROR;
        }
    }
    n = pst_note_find(*notes, key);
    if (n == NULL) {
        n = pst_array_push(*notes);
        if (n == NULL) {
            return PST_ERROR;
        }
        v.data = (u_char *) key;
        v.len = strlen(key);
        n->key = (char *) pst_pstrdup(pool, &v);
        n->value = NULL;
        if (n->key == NULL) {
            (*notes)->nelts--;
            return PST_ERROR;
        }
    }
    v.data = (u_char *) value;
    v.len = strlen(value);
    n->value = (char *) pst_pstrdup(pool, &v);
    return n->value != NULL ? PST_OK : PST_ERROR;
}


const char *
pst_note(pst_session_t *s, const char *key)
{
    pst_note_t  *n = NULL;

    if (key == NULL) {
        return NULL;
    }
    if (s->tx != NULL && s->tx->notes != NULL) {
        n = pst_note_find(s->tx->notes, key);
    }
    if ((n == NULL || n->value == NULL) && s->notes != NULL) {
        n = pst_note_find(s->notes, key);
    }
    return n != NULL ? n->value : NULL;
}


static pst_note_t *
pst_note_find(pst_array_t *notes, const char *key)
{
    pst_note_t  *n = notes->elts;
    pst_uint_t   i;

    for (i = 0; i < notes->nelts; i++) {
        if (strcmp(n[i].key, key) == 0) {
            return &n[i];
        }
    }
    return NULL;
}
