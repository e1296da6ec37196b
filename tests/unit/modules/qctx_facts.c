/*
 * qctx_facts.c -- test module for the state a module keeps with a
 * queued message (pst_qevent_set_ctx(), pst_qevent_get_ctx();
 * tests/integration/test_queue_state.py, tests/harness/test_queue.c),
 * saying in the log what the engine (or the harness) does with it:
 *
 *   ENQUEUED       keeps a copy of the queue ID, with a cleanup that logs
 *                  "qctx_facts: freed ID" and frees it
 *   DELIVERED, DEFERRED, FAILED, EXPIRED
 *                  "qctx_facts: EVENT ID kept VALUE attempts=N rcpt=ADDR
 *                  code=CODE" (VALUE "none" when nothing is kept)
 *   BOUNCE         "qctx_facts: bounce ID reply=REPLY kept VALUE"
 *   RESOLVED, CONNECTED, DISCONNECTED
 *                  "qctx_facts: EVENT set=RC id=none" for a set without a
 *                  message (RC: -1, refused)
 */

#include <stdlib.h>
#include <string.h>

#include "postern_module.h"

PST_EXPORT const pst_module_t  postern_module;


static void
qctx_facts_free(void *v)
{
    pst_log(PST_LOG_INFO, 0, "qctx_facts: freed %s", (char *) v);
    free(v);
}


static void
qctx_facts_event(pst_qevent_t *ev, void *main_conf)
{
    const pst_str_t  *id = pst_qevent_id(ev);
    const char       *v;
    char             *copy;

    (void) main_conf;
    switch (ev->event) {
    case PST_QEV_ENQUEUED:
        copy = strndup((const char *) id->data, id->len);
        if (copy != NULL
            && pst_qevent_set_ctx(ev, &postern_module, copy, qctx_facts_free)
               != PST_OK)
        {
            free(copy);
        }
        return;
    case PST_QEV_DELIVERED:
    case PST_QEV_DEFERRED:
    case PST_QEV_FAILED:
    case PST_QEV_EXPIRED:
        v = pst_qevent_get_ctx(ev, &postern_module);
        pst_log(PST_LOG_INFO, 0, "qctx_facts: %s %.*s kept %s attempts=%u"
                " rcpt=%s code=%d", pst_qevent_name(ev->event),
                (int) id->len, id->data, v != NULL ? v : "none",
                pst_qevent_attempts(ev), pst_qevent_rcpt(ev)->data,
                ev->code);
        return;
    case PST_QEV_BOUNCE:
        v = pst_qevent_get_ctx(ev, &postern_module);
        pst_log(PST_LOG_INFO, 0, "qctx_facts: bounce %.*s reply=%s kept %s",
                (int) id->len, id->data, ev->reply,
                v != NULL ? v : "none");
        return;
    case PST_QEV_RESOLVED:
    case PST_QEV_CONNECTED:
    case PST_QEV_DISCONNECTED:
        pst_log(PST_LOG_INFO, 0, "qctx_facts: %s set=%d id=%s",
                pst_qevent_name(ev->event),
                pst_qevent_set_ctx(ev, &postern_module, "x", NULL),
                id != NULL ? (const char *) id->data : "none");
        return;
    default:
        return;
    }
}


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "qctx_facts",
    .version = "1.0",
    .description = "logs what it keeps with queued messages",
    .queue_event = qctx_facts_event,
};
