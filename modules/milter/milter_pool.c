/*
 * milter_pool.c -- connections kept between sessions.  A session whose
 * last exchange with a milter was a finished end of message ends it
 * with SMFIC_QUIT_NC ("quit, a new connection follows"): libmilter and
 * rspamd then wait for the next SMFIC_CONNECT on the same socket, with
 * the options already negotiated.  The worker keeps such sockets idle,
 * watched (a filter that closes or talks is dropped) and for a bounded
 * time, and the next session for the same milter takes one instead of
 * connecting.  Anything unexpected on a reused socket before its first
 * answer is retried once on a fresh connection (milter_step.c).
 */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter.h"

#define MILTER_IDLE_MAX         64
#define MILTER_IDLE_TIME        60000      /* ms a socket may wait */

typedef struct {
    int                          fd;        /* -1: free slot */
    struct sockaddr_storage      sa;
    socklen_t                    salen;
    uint32_t                     version;
    uint32_t                     actions;
    uint32_t                     protocol;
    char                        *macros[MILTER_STAGES];
    pst_timer_t                 *timer;
} milter_idle_t;

static milter_idle_t  milter_idle[MILTER_IDLE_MAX];
static int            milter_idle_init;

static void milter_idle_drop(milter_idle_t *e);
static void milter_idle_event(int fd, unsigned events, void *data);
static void milter_idle_timeout(void *data);


static void
milter_idle_drop(milter_idle_t *e)
{
    int  i;

    if (e->timer != NULL) {
        pst_timer_cancel(e->timer);
        e->timer = NULL;
    }
    if (e->fd != -1) {
        (void) pst_fd_unwatch(e->fd);
        close(e->fd);
        e->fd = -1;
    }
    for (i = 0; i < MILTER_STAGES; i++) {
        free(e->macros[i]);
        e->macros[i] = NULL;
    }
}


/* An idle filter that closes, or says anything at all, is gone. */
static void
milter_idle_event(int fd, unsigned events, void *data)
{
    (void) fd;
    (void) events;
    milter_idle_drop(data);
}


static void
milter_idle_timeout(void *data)
{
    milter_idle_t  *e = data;

    e->timer = NULL;
    milter_idle_drop(e);
}


/* Park m's socket after QUIT_NC: PST_OK (m no longer owns the fd) or
 * PST_DECLINED (no room, or a milter that does not answer CONNECT, so
 * that a dead socket would go unnoticed: the caller closes it). */
int
milter_pool_put(milter_conn_t *m)
{
    milter_idle_t  *e = NULL;
    int             i;

    if (!milter_idle_init) {
        for (i = 0; i < MILTER_IDLE_MAX; i++) {
            milter_idle[i].fd = -1;
        }
        milter_idle_init = 1;
    }
    for (i = 0; i < MILTER_IDLE_MAX && e == NULL; i++) {
        if (milter_idle[i].fd == -1) {
            e = &milter_idle[i];
        }
    }
    if (e == NULL || (m->protocol & (SMFIP_NR_CONN | SMFIP_NOCONNECT))) {
        return PST_DECLINED;
    }

    for (i = 0; i < MILTER_STAGES; i++) {
        if (m->macros[i].data != NULL) {
            e->macros[i] = strndup((char *) m->macros[i].data,
                                   m->macros[i].len);
            if (e->macros[i] == NULL) {
                milter_idle_drop(e);
                return PST_DECLINED;
            }
        }
    }
    (void) pst_fd_unwatch(m->fd);     /* the pool watches it now */
    e->fd = m->fd;
    m->fd = -1;
    e->sa = m->conf->sa;
    e->salen = m->conf->salen;
    e->version = m->version;
    e->actions = m->actions;
    e->protocol = m->protocol;
    e->timer = pst_timer_add(MILTER_IDLE_TIME, milter_idle_timeout, e);
    if (e->timer == NULL
        || pst_fd_watch_events(e->fd, PST_FD_READ, milter_idle_event, e)
           != PST_OK)
    {
        milter_idle_drop(e);
    }
    return PST_OK;
}


/* An idle socket to m's milter, negotiated: PST_OK (m is READY) or
 * PST_DECLINED (connect afresh). */
int
milter_pool_get(milter_conn_t *m)
{
    milter_idle_t  *e;
    pst_pool_t     *pool = pst_session_pool(m->ms->s);
    int             i, k;

    if (!milter_idle_init) {
        return PST_DECLINED;
    }

    for (i = 0; i < MILTER_IDLE_MAX; i++) {
        e = &milter_idle[i];
        if (e->fd == -1 || e->salen != m->conf->salen
            || memcmp(&e->sa, &m->conf->sa, e->salen) != 0)
        {
            continue;
        }
        for (k = 0; k < MILTER_STAGES; k++) {
            m->macros[k].data = NULL;
            m->macros[k].len = 0;
            if (e->macros[k] != NULL) {
                m->macros[k].len = strlen(e->macros[k]);
                m->macros[k].data = pst_palloc(pool, m->macros[k].len + 1);
                if (m->macros[k].data == NULL) {
                    return PST_DECLINED;
                }
                memcpy(m->macros[k].data, e->macros[k],
                       m->macros[k].len + 1);
            }
        }
        (void) pst_fd_unwatch(e->fd);
        m->fd = e->fd;
        m->version = e->version;
        m->actions = e->actions;
        m->protocol = e->protocol;
        m->state = MILTER_S_READY;
        m->reused = 1;
        e->fd = -1;
        milter_idle_drop(e);
        return PST_OK;
    }
    return PST_DECLINED;
}
