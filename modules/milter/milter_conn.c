/*
 * milter_conn.c -- one connection to a milter, on the worker's event
 * loop: non-blocking connect (TCP or unix socket), option negotiation,
 * frames out as the socket takes them (write readiness), frames in,
 * a timer on every wait.  Nothing here blocks.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "milter.h"

static void milter_io(int fd, unsigned events, void *data);
static void milter_timeout(void *data);
static int milter_flush(milter_conn_t *m);
static void milter_read(milter_conn_t *m);
static void milter_arm(milter_conn_t *m, pst_msec_t t);
static int milter_watch(milter_conn_t *m);
static void milter_negotiated(milter_conn_t *m, const u_char *data,
    size_t len);
static int milter_optneg(milter_conn_t *m);


int
milter_connect(milter_conn_t *m)
{
    const milter_conf_t  *c = m->conf;
    int                   fd, on;

    /* (a failure is logged by milter_fail() with errno) */
    m->state = MILTER_S_CONNECTING;
    fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd == -1) {
        return PST_ERROR;
    }

    /*
     * No Nagle on TCP: after a frame the filter does not answer (the
     * QUIT_NC that ends a session on a kept connection; headers or body
     * chunks when it asked for no reply), our next small frame waited
     * for the ACK of that one, which the filter's kernel delays (~40 ms)
     * as it has nothing to send back.
     */
    if (c->sa.ss_family == AF_INET || c->sa.ss_family == AF_INET6) {
        on = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }

    if (connect(fd, (struct sockaddr *) &c->sa, c->salen) == -1
        && errno != EINPROGRESS && errno != EAGAIN)
    {
        close(fd);
        return PST_ERROR;
    }

    m->fd = fd;
    m->waiting = 1;
    if (pst_fd_watch_events(fd, PST_FD_WRITE, milter_io, m) != PST_OK) {
        close(fd);
        m->fd = -1;
        m->state = MILTER_S_CLOSED;
        return PST_ERROR;
    }
    milter_arm(m, c->connect_timeout);
    return PST_OK;
}


static int
milter_optneg(milter_conn_t *m)
{
    if (milter_frame_begin(&m->out, SMFIC_OPTNEG) != 0
        || milter_put_u32(&m->out, MILTER_VERSION) != 0
        || milter_put_u32(&m->out, MILTER_ACTIONS) != 0
        || milter_put_u32(&m->out, MILTER_PROTOCOL) != 0
        || milter_frame_end(&m->out) != 0)
    {
        return PST_ERROR;
    }
    m->state = MILTER_S_NEGOTIATING;
    return milter_send(m, 1);
}


static void
milter_arm(milter_conn_t *m, pst_msec_t t)
{
    if (m->timer != NULL) {
        pst_timer_cancel(m->timer);
    }
    m->timer = pst_timer_add(t, milter_timeout, m);
}


static void
milter_timeout(void *data)
{
    milter_conn_t  *m = data;

    m->timer = NULL;
    milter_fail(m, m->state == MILTER_S_CONNECTING ? "connect timed out"
                                                   : "timed out");
}


/* Watch for reading always, for writing while output waits. */
static int
milter_watch(milter_conn_t *m)
{
    return pst_fd_watch_events(m->fd, PST_FD_READ
                               | (m->out.len ? PST_FD_WRITE : 0),
                               milter_io, m);
}


int
milter_send(milter_conn_t *m, int waiting)
{
    m->waiting = waiting ? 1 : 0;
    m->eom_done = 0;
    if (milter_flush(m) != PST_OK) {
        return PST_ERROR;
    }
    if (m->waiting || m->out.len) {
        /* a kept connection that does not answer at once is replaced */
        milter_arm(m, m->reused ? m->conf->connect_timeout
                                : m->conf->timeout);
    }
    return milter_watch(m);
}


static int
milter_flush(milter_conn_t *m)
{
    ssize_t  n;

    while (m->out.len) {
        n = send(m->fd, m->out.data, m->out.len, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return PST_OK;
            }
            return PST_ERROR;
        }
        milter_buf_consume(&m->out, (size_t) n);
    }
    return PST_OK;
}


static void
milter_io(int fd, unsigned events, void *data)
{
    milter_conn_t  *m = data;
    int             err;
    socklen_t       len;

    (void) fd;

    if (m->state == MILTER_S_CONNECTING) {
        err = 0;
        len = sizeof(err);
        if (getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1
            || err != 0)
        {
            errno = err;
            milter_fail(m, "cannot connect");
            return;
        }
        if (milter_optneg(m) != PST_OK) {
            milter_fail(m, "cannot send the options");
        }
        return;
    }

    if (events & PST_FD_WRITE) {
        if (milter_flush(m) != PST_OK) {
            milter_fail(m, "write failed");
            return;
        }
        if (m->out.len == 0) {
            if (!m->waiting && m->timer != NULL) {
                pst_timer_cancel(m->timer);
                m->timer = NULL;
            }
            if (milter_watch(m) != PST_OK) {
                milter_fail(m, "cannot watch the socket");
                return;
            }
            if (m->draining) {
                m->draining = 0;
                milter_next(m->ms);
                return;
            }
        }
    }

    if ((events & PST_FD_READ) && m->fd != -1) {
        milter_read(m);
    }
}


static void
milter_read(milter_conn_t *m)
{
    const u_char  *data;
    size_t         len, used;
    ssize_t        n, k;
    unsigned       gen;
    int            cmd;

    if (m->in == NULL) {
        m->in = malloc(MILTER_RBUF);
        if (m->in == NULL) {
            milter_fail(m, "out of memory");
            return;
        }
    }

    n = recv(m->fd, m->in + m->in_len, MILTER_RBUF - m->in_len, 0);
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
        milter_fail(m, n == 0 ? "closed the connection" : "read failed");
        return;
    }
    if (n == -1) {
        return;
    }
    m->in_len += (size_t) n;

    /* a reply may close m (and even open it again): stop at once */
    used = 0;
    gen = m->gen;
    while (m->gen == gen) {
        k = milter_frame_parse(m->in + used, m->in_len - used, &cmd, &data,
                               &len);
        if (k == 0) {
            break;
        }
        if (k < 0) {
            milter_fail(m, "sent a malformed frame");
            return;
        }
        used += (size_t) k;
        if (!m->waiting) {
            milter_fail(m, "sent a reply nobody asked for");
            return;
        }
        if (m->state == MILTER_S_NEGOTIATING) {
            milter_negotiated(m, data, cmd == SMFIC_OPTNEG ? len
                                                           : (size_t) -1);
            continue;
        }
        milter_reply(m, cmd, data, len);
        if (m->gen == gen && !m->waiting && m->out.len == 0
            && m->timer != NULL)
        {
            /* answered: no timer runs while the session is elsewhere */
            pst_timer_cancel(m->timer);
            m->timer = NULL;
        }
    }

    if (m->gen == gen && used) {
        memmove(m->in, m->in + used, m->in_len - used);
        m->in_len -= used;
    }
}


/* The filter's OPTNEG: what it speaks, does and wants. */
static void
milter_negotiated(milter_conn_t *m, const u_char *data, size_t len)
{
    milter_optneg_t  o;
    pst_pool_t      *pool;
    int              i;

    if (len == (size_t) -1 || milter_parse_optneg(data, len, &o) != 0) {
        milter_fail(m, "answered the options with garbage");
        return;
    }
    if ((o.actions & ~MILTER_ACTIONS) || (o.protocol & ~MILTER_PROTOCOL)) {
        milter_fail(m, "asked for actions or steps we do not offer");
        return;
    }

    m->version = o.version < MILTER_VERSION ? o.version : MILTER_VERSION;
    m->actions = o.actions;
    m->protocol = o.protocol;
    if (m->version < 4) {
        m->protocol |= SMFIP_NODATA | SMFIP_NOUNKNOWN;
    }

    pool = pst_session_pool(m->ms->s);
    for (i = 0; i < MILTER_STAGES; i++) {
        if (o.macros[i] != NULL) {
            m->macros[i].len = o.macros_len[i];
            m->macros[i].data = pst_palloc(pool, o.macros_len[i] + 1);
            if (m->macros[i].data == NULL) {
                milter_fail(m, "out of memory");
                return;
            }
            memcpy(m->macros[i].data, o.macros[i], o.macros_len[i]);
        }
    }

    m->state = MILTER_S_READY;
    m->waiting = 0;
    if (m->timer != NULL) {
        pst_timer_cancel(m->timer);
        m->timer = NULL;
    }
    milter_next(m->ms);
}


void
milter_close(milter_conn_t *m)
{
    m->gen++;
    if (m->timer != NULL) {
        pst_timer_cancel(m->timer);
        m->timer = NULL;
    }
    if (m->fd != -1) {
        (void) pst_fd_unwatch(m->fd);
        close(m->fd);
        m->fd = -1;
    }
    milter_buf_free(&m->out);
    free(m->in);
    m->in = NULL;
    m->in_len = 0;
    m->waiting = 0;
    m->draining = 0;
    m->in_tx = 0;
    m->eom_done = 0;
    m->reused = 0;
}
