/*
 * pst_queue_process.c -- the queue process role: one process that runs
 * the delivery engine (pst_queue.h) in an event loop, reads the
 * COMMITTED notifications of the workers from its inbox and serves the
 * control socket.  A reload replaces it gracefully: the old one stops
 * reading its inbox, lets the engine finish (bounded by
 * worker_shutdown_timeout) while still answering the control socket,
 * and only then does the master start the new one (the role is
 * exclusive, so two never deliver at once).  SPOOL/queue.lock (flock)
 * extends that to a queue process whose master was killed and to
 * another instance on the same spool: a second one waits for the lock.
 * The one that holds it also takes SPOOL/maildrop in (pst_pickup.c).
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"
#include "pst_spool.h"
#include "pst_metrics_http.h"
#include "pst_process.h"
#include "pst_channel.h"
#include "pst_control.h"
#include "pst_queue.h"
#include "pst_route.h"

#include <sys/file.h>

#define PST_QUEUE_LOCK        "queue.lock"     /* in the spool */
#define PST_QUEUE_LOCK_RETRY  1000             /* ms */


static pst_int_t pst_queue_role_count(pst_cycle_t *cycle);
static int pst_queue_role_init(pst_cycle_t *cycle);
static int pst_queue_role_loop(pst_cycle_t *cycle, int stop);
static void pst_queue_role_exit(pst_cycle_t *cycle);
static void pst_queue_inbox_handler(pst_channel_t *ch, const pst_msg_t *msg,
    void *data);
static void pst_queue_stop_timer_handler(pst_event_t *ev);
static int pst_queue_start(pst_cycle_t *cycle);
static void pst_queue_lock_timer_handler(pst_event_t *ev);


const pst_role_t  pst_queue_role = {
    .name = "queue",
    .type = PST_PROC_QUEUE,
    .exclusive = 1,
    .inbox = 1,
    .count = pst_queue_role_count,
    .init = pst_queue_role_init,
    .loop = pst_queue_role_loop,
    .exit = pst_queue_role_exit,
};

static pst_channel_t  *inbox;
static pst_event_t     stop_timer;
static pst_event_t     lock_timer;
static int             lock_fd = -1;
static int             lock_waiting;
static int             started;        /* the engine runs */
static int             failed;         /* it could not start */
static int             stopping;
static int             engine_done;
static int             idle;          /* no router: no engine */


static pst_int_t
pst_queue_role_count(pst_cycle_t *cycle)
{
    (void) cycle;
    return 1;
}


static int
pst_queue_role_init(pst_cycle_t *cycle)
{
    pst_listening_t  *ls;
    pst_uint_t        i;
    char              path[PATH_MAX];

    /* it never accepts SMTP: its copies of the listeners go */
    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].fd != -1) {
            close(ls[i].fd);
            ls[i].fd = -1;
        }
    }

    inbox = pst_channel_create(pst_process_inbox(), pst_queue_inbox_handler,
                               NULL);
    if (inbox == NULL) {
        pst_log_error(PST_LOG_EMERG, 0, "queue: cannot read the inbox");
        return PST_ERROR;
    }

    snprintf(path, sizeof(path), "%s/" PST_QUEUE_LOCK,
             cycle->core->spool_dir.data);
    lock_fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "queue: open(\"%s\") failed",
                      path);
        return PST_ERROR;
    }

    lock_timer.handler = pst_queue_lock_timer_handler;
    lock_timer.data = cycle;

    /* status is answered at once; queue requests once the engine runs */
    pst_control_handler(pst_queue_control);
    pst_control_engine(0);
    if (pst_control_serve(cycle) != PST_OK
        || pst_metrics_serve(cycle) != PST_OK)
    {
        return PST_ERROR;
    }

    return pst_queue_start(cycle);
}


/*
 * One engine per spool: a queue process left from a master that was
 * killed (it finishes its deliveries) or another instance on the same
 * spool holds the lock; this one waits, its inbox filling meanwhile.
 */
static int
pst_queue_start(pst_cycle_t *cycle)
{
    void  *mc;

    /* a receive-only Postern (the spool is where mail ends): no engine,
     * so no attempt and no state written for every message received */
    if (pst_route_router(cycle, &mc) == NULL) {
        pst_log_error(PST_LOG_NOTICE, 0, "queue: no router module is"
                      " loaded (load_module relay_mx): nothing is"
                      " delivered, messages stay in the spool");
        idle = 1;
        pst_control_engine(PST_CONTROL_NO_ENGINE);
        if (pst_channel_watch(inbox) != PST_OK) {
            return PST_ERROR;
        }
        return pst_pickup_start(cycle, 0);
    }

    if (flock(lock_fd, LOCK_EX | LOCK_NB) == -1) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            pst_log_error(PST_LOG_EMERG, errno, "queue: flock(%s) failed",
                          PST_QUEUE_LOCK);
            return PST_ERROR;
        }
        if (!lock_waiting) {
            lock_waiting = 1;
            pst_log_error(PST_LOG_NOTICE, 0, "queue: another queue process"
                          " still works on this spool (%s): waiting",
                          PST_QUEUE_LOCK);
        }
        pst_event_add_timer(&lock_timer, PST_QUEUE_LOCK_RETRY);
        return PST_OK;
    }

    if (pst_channel_watch(inbox) != PST_OK
        || pst_queue_init(cycle) != PST_OK)
    {
        return PST_ERROR;
    }

    started = 1;
    pst_control_engine(1);
    pst_log_error(PST_LOG_INFO, 0, "queue process ready");
    return pst_pickup_start(cycle, 1);
}


static void
pst_queue_lock_timer_handler(pst_event_t *ev)
{
    if (pst_queue_start(ev->data) != PST_OK) {
        failed = 1;
    }
}


static void
pst_queue_inbox_handler(pst_channel_t *ch, const pst_msg_t *msg, void *data)
{
    (void) ch;
    (void) data;

    switch (msg->type) {

    case PST_MSG_COMMITTED:
        if (!pst_spool_valid_id(msg->data, msg->len)) {
            pst_log_error(PST_LOG_ALERT, 0, "queue: malformed COMMITTED"
                          " message refused: not a queue ID (%zu bytes)",
                          msg->len);
            return;
        }
        pst_log_debug("queue: notified: %.*s committed", (int) msg->len,
                      msg->data);
        if (!idle) {
            pst_queue_committed(msg->data, msg->len);
        }
        return;

    default:
        pst_log_error(PST_LOG_WARN, 0, "queue: %s message ignored",
                      pst_channel_type_name(msg->type));
        if (msg->fd != -1) {
            close(msg->fd);
        }
        return;
    }
}


static void
pst_queue_stop_timer_handler(pst_event_t *ev)
{
    (void) ev;
    pst_log_error(PST_LOG_NOTICE, 0, "shutdown timeout: the queue engine"
                  " is stopped");
    engine_done = 1;
}


static int
pst_queue_role_loop(pst_cycle_t *cycle, int stop)
{
    if (failed) {
        return PST_ERROR;
    }

    if (stop == PST_ROLE_TERM || (stop == PST_ROLE_QUIT && !started)) {
        pst_event_del_timer(&lock_timer);
        pst_pickup_stop();
        return PST_DONE;
    }

    if (stop == PST_ROLE_QUIT && !stopping) {
        /* what workers send from now on waits for our successor; the
         * control socket is still answered while the engine drains */
        stopping = 1;
        pst_pickup_stop();
        pst_channel_unwatch(inbox);
        pst_metrics_stop();
        stop_timer.handler = pst_queue_stop_timer_handler;
        pst_event_add_timer(&stop_timer, cycle->core->shutdown_timeout);
        pst_queue_shutdown(&engine_done);
    }

    if (stopping && engine_done && pst_control_busy() == 0) {
        return PST_DONE;
    }

    return PST_OK;
}


static void
pst_queue_role_exit(pst_cycle_t *cycle)
{
    (void) cycle;

    if (started) {
        pst_queue_exit();
    }
    pst_channel_destroy(inbox);
    inbox = NULL;
    if (lock_fd != -1) {
        close(lock_fd);             /* and the lock goes with it */
        lock_fd = -1;
    }
}
