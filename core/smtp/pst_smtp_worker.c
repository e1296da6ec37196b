/*
 * pst_smtp_worker.c -- the SMTP worker role: what a worker process does
 * on top of the common child set-up of pst_process.c (accepting on the
 * shared listeners, sessions, graceful and fast shutdown).
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_metrics_http.h"
#include "pst_process.h"
#include "pst_smtp.h"
#include "pst_control.h"
#include "pst_channel.h"


static pst_int_t pst_smtp_worker_count(pst_cycle_t *cycle);
static int pst_smtp_worker_init(pst_cycle_t *cycle);
static int pst_smtp_worker_loop(pst_cycle_t *cycle, int stop);
static void pst_shutdown_timer_handler(pst_event_t *ev);


const pst_role_t  pst_smtp_worker_role = {
    .name = "worker",
    .type = PST_PROC_WORKER,
    .count = pst_smtp_worker_count,
    .init = pst_smtp_worker_init,
    .loop = pst_smtp_worker_loop,
};

static pst_event_t  shutdown_timer;
static int          exiting;


static pst_int_t
pst_smtp_worker_count(pst_cycle_t *cycle)
{
    return cycle->core->worker_processes;
}


static int
pst_smtp_worker_init(pst_cycle_t *cycle)
{
    /* the queue process serves the control socket, not us */
    pst_control_close(0);
    pst_metrics_close();

    if (pst_smtp_sessions_init() != PST_OK
        || pst_enable_accept(cycle) != PST_OK)
    {
        return PST_ERROR;
    }

    if (pst_process_type == PST_PROC_WORKER) {
        pst_shm_set_accepting(pst_proc_slot_index, 1);
    }

    return PST_OK;
}


static void
pst_shutdown_timer_handler(pst_event_t *ev)
{
    (void) ev;
    pst_log_error(PST_LOG_NOTICE, 0, "shutdown timeout: closing %lu"
                  " session(s)", (unsigned long) pst_smtp_session_count());
    pst_smtp_shutdown_all(1);
}


static int
pst_smtp_worker_loop(pst_cycle_t *cycle, int stop)
{
    if (stop == PST_ROLE_TERM) {
        pst_close_listening_in_worker(cycle);
        pst_smtp_shutdown_all(1);
        return PST_DONE;
    }

    if (stop == PST_ROLE_QUIT && !exiting) {
        exiting = 1;
        pst_close_listening_in_worker(cycle);
        pst_shm_set_accepting(pst_proc_slot_index, 0);
        pst_smtp_shutdown_all(0);
        shutdown_timer.handler = pst_shutdown_timer_handler;
        pst_event_add_timer(&shutdown_timer, cycle->core->shutdown_timeout);
    }

    if (exiting && pst_smtp_session_count() == 0
        && pst_smtp_proxy_pending() == 0)
    {
        return PST_DONE;
    }

    return PST_OK;
}


/*
 * The message is durable: tell the queue process (PST_MSG_COMMITTED to
 * its inbox).  Never blocks; a notification the queue process cannot
 * take is logged and dropped (its spool scan finds the message).
 */
void
pst_smtp_notify_committed(const u_char *id, size_t len)
{
    static time_t      warned;
    static pst_uint_t  dropped;
    int                rc;

    rc = pst_process_send(PST_PROC_QUEUE, PST_MSG_COMMITTED, id, len, -1);

    switch (rc) {
    case PST_OK:
    case PST_DECLINED:          /* no queue process (-F) */
        return;
    case PST_AGAIN:
        /* once a minute at most: a queue process that is down stays
         * down for a while */
        dropped++;
        if (pst_current_time_sec - warned >= 60) {
            warned = pst_current_time_sec;
            pst_log_error(PST_LOG_WARN, 0, "id=%.*s: the queue process's"
                          " inbox is full (%lu notification(s) dropped);"
                          " its spool scan will find the messages",
                          (int) len, id, (unsigned long) dropped);
        }
        return;
    default:
        pst_log_error(PST_LOG_ALERT, errno, "id=%.*s: cannot notify the"
                      " queue process", (int) len, id);
        return;
    }
}
