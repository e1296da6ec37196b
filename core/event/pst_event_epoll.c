/*
 * pst_event_epoll.c -- the epoll backend of the event loop.
 *
 * Each registration stores the connection pointer with its `instance`
 * bit in the low bit: when a connection object is closed and reused
 * within one batch of events, the stale events still carry the old
 * instance and are dropped.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"

#include <sys/epoll.h>

#define PST_EPOLL_BATCH   512

static int                  ep = -1;
static struct epoll_event  *event_list;


int
pst_event_init(pst_uint_t max_fds)
{
    (void) max_fds;

    if (pst_event_timers_init() != PST_OK) {
        return PST_ERROR;
    }

    if (ep == -1) {
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep == -1) {
            pst_log_error(PST_LOG_EMERG, errno, "epoll_create1() failed");
            return PST_ERROR;
        }
    }

    if (event_list == NULL) {
        event_list = calloc(PST_EPOLL_BATCH, sizeof(struct epoll_event));
        if (event_list == NULL) {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


void
pst_event_done(void)
{
    if (ep != -1) {
        close(ep);
        ep = -1;
    }
    free(event_list);
    event_list = NULL;
}


static int
pst_epoll_ctl(int op, pst_connection_t *c, uint32_t events)
{
    struct epoll_event  ee;

    ee.events = events;
    ee.data.ptr = (void *) ((uintptr_t) c | c->read.instance);

    if (epoll_ctl(ep, op, c->fd, &ee) == -1) {
        pst_log_error(PST_LOG_ALERT, errno, "epoll_ctl(%d, %d) failed", op,
                      c->fd);
        return PST_ERROR;
    }

    return PST_OK;
}


int
pst_event_add_conn(pst_connection_t *c)
{
    if (pst_epoll_ctl(EPOLL_CTL_ADD, c,
                      EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != PST_OK)
    {
        return PST_ERROR;
    }

    c->read.active = 1;
    c->write.active = 1;

    return PST_OK;
}


int
pst_event_del_conn(pst_connection_t *c)
{
    c->read.active = 0;
    c->write.active = 0;

    /* a closed descriptor leaves the epoll set by itself; only a socket
     * that stays open (TLS shutdown, shared fds) needs the call */
    if (c->fd == -1) {
        return PST_OK;
    }

    return pst_epoll_ctl(EPOLL_CTL_DEL, c, 0);
}


int
pst_event_add_read(pst_connection_t *c)
{
    uint32_t  events = EPOLLIN;

    if (c->listener) {
        events |= EPOLLEXCLUSIVE;
    }

    if (pst_epoll_ctl(EPOLL_CTL_ADD, c, events) != PST_OK) {
        return PST_ERROR;
    }

    c->read.active = 1;
    return PST_OK;
}


/* A level-triggered watch for reading, writing or both: added, or
 * changed when one direction is already watched. */
int
pst_event_set_fd(pst_connection_t *c, int read, int write)
{
    uint32_t  events = 0;
    int       op;

    if (!read && !write) {
        return pst_event_del_read(c);
    }

    op = (c->read.active || c->write.active) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    events |= read ? EPOLLIN : 0;
    events |= write ? EPOLLOUT : 0;

    if (pst_epoll_ctl(op, c, events) != PST_OK) {
        return PST_ERROR;
    }

    c->read.active = read ? 1 : 0;
    c->write.active = write ? 1 : 0;
    return PST_OK;
}


int
pst_event_del_read(pst_connection_t *c)
{
    if (!c->read.active && !c->write.active) {
        return PST_OK;
    }
    c->read.active = 0;
    c->write.active = 0;
    return pst_epoll_ctl(EPOLL_CTL_DEL, c, 0);
}


int
pst_process_events_and_timers(void)
{
    pst_connection_t  *c;
    pst_msec_t         timer;
    uint32_t           revents;
    unsigned           instance;
    int                n, i, timeout, err;

    timer = pst_event_find_timer();
    if (timer == (pst_msec_t) -1) {
        timeout = -1;
    } else {
        timeout = timer > INT_MAX ? INT_MAX : (int) timer;
    }

    n = epoll_pwait(ep, event_list, PST_EPOLL_BATCH, timeout,
                    &pst_wait_sigmask);
    err = (n == -1) ? errno : 0;

    pst_time_update();

    if (err) {
        if (err == EINTR) {
            /* a signal: let the caller look at its flags */
            pst_event_expire_timers();
            pst_event_process_posted();
            return PST_OK;
        }
        pst_log_error(PST_LOG_ALERT, err, "epoll_pwait() failed");
        return PST_ERROR;
    }

    for (i = 0; i < n; i++) {
        c = event_list[i].data.ptr;
        instance = (uintptr_t) c & 1;
        c = (pst_connection_t *) ((uintptr_t) c & ~(uintptr_t) 1);

        if (c->fd == -1 || c->read.instance != instance) {
            continue;   /* stale event of a closed connection */
        }

        revents = event_list[i].events;

        if (revents & (EPOLLERR | EPOLLHUP)) {
            /* let the handlers see the error through recv/send */
            revents |= EPOLLIN | EPOLLOUT;
        }

        if ((revents & (EPOLLIN | EPOLLRDHUP)) && c->read.active) {
            c->read.ready = 1;
            if (revents & EPOLLRDHUP) {
                c->read.eof = 1;
            }
            c->read.handler(&c->read);
        }

        if ((revents & EPOLLOUT) && c->write.active
            && c->fd != -1 && c->read.instance == instance)
        {
            c->write.ready = 1;
            c->write.handler(&c->write);
        }
    }

    pst_event_expire_timers();
    pst_event_process_posted();

    return PST_OK;
}
