/*
 * pst_queue_ctx.h -- what modules keep with a queued message
 * (pst_qevent_get_ctx(), pst_qevent_set_ctx(): ABI 1.2,
 * postern_module.h).  Queue process event loop only; in memory only.
 */

#ifndef PST_QUEUE_CTX_H
#define PST_QUEUE_CTX_H

/* The message id (PST_QUEUE_ID_LEN bytes) left the queue: every
 * module's state for it is dropped and its cleanup runs. */
void pst_queue_ctx_forget(const u_char *id);
/* The engine stops: every state is dropped and its cleanup runs. */
void pst_queue_ctx_clear(void);
/* How many modules keep state for the message id (the tests). */
pst_uint_t pst_queue_ctx_count(const u_char *id);

#endif /* PST_QUEUE_CTX_H */
