/*
 * pst_queue.h -- the delivery engine of the queue process.
 *
 * The queue process (core/queue/pst_queue_process.c) calls these from its
 * event loop, after privileges are dropped and the event loop, the
 * resolver and the modules' init_process(PST_PROC_QUEUE) are up.  The
 * engine never runs in the master or in an SMTP worker.
 *
 * This interface is fixed by CONTRACTS.md section 3; core/queue/pst_queue.c
 * implements it (a stub that only logs until the relay engine lands).
 */

#ifndef PST_QUEUE_H
#define PST_QUEUE_H

#include "pst_process.h"
#include "pst_control.h"

/* Start: scan the spool without blocking the loop for long (bounded
 * batches).  PST_OK, or PST_ERROR: the queue process exits. */
int pst_queue_init(pst_cycle_t *cycle);
/* A worker committed this message (PST_MSG_COMMITTED). */
void pst_queue_committed(const u_char *id, size_t len);
/* Graceful stop: stop starting deliveries; *done set when idle. */
void pst_queue_shutdown(int *done);
void pst_queue_exit(void);
/* A control request (argv[0] is the verb: list, show, count, flush,
 * delete, hold, release, ...).  Write the answer into out; return the
 * status: 0 OK, 1 failed (out holds the reason), 64 usage (out holds
 * the usage text). */
int pst_queue_control(int argc, char **argv, pst_buf_t *out);

/* pst_pickup.c: SPOOL/maildrop into the spool, at start and every
 * second; engine: off the loop and each message told to the engine
 * (else on the loop: a receive-only Postern).  Stopped by stop(). */
int pst_pickup_start(pst_cycle_t *cycle, int engine);
void pst_pickup_stop(void);

/* pst_queue_process.c: the queue process's role (pst_main.c's table of
 * roles) */
extern const pst_role_t  pst_queue_role;

/* pst_queue_conf.c: the engine's main-level directives (built in) */
extern const pst_module_t  pst_queue_conf_module;

/* the control socket's codes (pst_control.h): the queue process
 * registers pst_queue_control() as its handler */
#define PST_QUEUE_CONTROL_OK      PST_CONTROL_OK
#define PST_QUEUE_CONTROL_FAILED  PST_CONTROL_FAILED
#define PST_QUEUE_CONTROL_USAGE   PST_CONTROL_USAGE

#endif /* PST_QUEUE_H */
