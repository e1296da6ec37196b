/*
 * pst_redis_link.c -- one hiredis async context on this process's event
 * loop: hiredis's socket watched through a pst_connection_t (as
 * pst_dns.c puts libunbound's descriptor in the loop), and the one
 * signal that the context is gone, hiredis's cleanup hook, which runs
 * for a refused connect, an error, a close by the server and our own
 * redisAsyncFree alike.  The master connection (pst_redis_conn.c) and
 * the sentinel queries and subscription (pst_redis_sentinel.c) are
 * links.
 *
 * Nothing here blocks: the connect is non-blocking, and the host is
 * always an address (redis_server, redis_sentinel and what a sentinel
 * answers are checked to be IP literals), so hiredis's getaddrinfo()
 * never asks DNS.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"
#include "pst_redis.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


static void
pst_redis_link_watch(pst_redis_link_t *l)
{
    if (l->c != NULL) {
        (void) pst_event_set_fd(l->c, l->reading, l->writing);
    }
}


static void
pst_redis_link_add_read(void *p)
{
    pst_redis_link_t  *l = p;

    l->reading = 1;
    pst_redis_link_watch(l);
}


static void
pst_redis_link_del_read(void *p)
{
    pst_redis_link_t  *l = p;

    l->reading = 0;
    pst_redis_link_watch(l);
}


static void
pst_redis_link_add_write(void *p)
{
    pst_redis_link_t  *l = p;

    l->writing = 1;
    pst_redis_link_watch(l);
}


static void
pst_redis_link_del_write(void *p)
{
    pst_redis_link_t  *l = p;

    l->writing = 0;
    pst_redis_link_watch(l);
}


static void
pst_redis_link_read(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_redis_link_t  *l = c->data;

    if (l->ac != NULL) {
        redisAsyncHandleRead(l->ac);
    }
}


static void
pst_redis_link_write(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;
    pst_redis_link_t  *l = c->data;

    if (l->ac != NULL) {
        redisAsyncHandleWrite(l->ac);
    }
}


/* hiredis lets the context go; its fd is still open here and closed by
 * hiredis after we return. */
static void
pst_redis_link_cleanup(void *p)
{
    pst_redis_link_t  *l = p;

    snprintf(l->errstr, sizeof(l->errstr), "%s", l->ac->errstr);
    if (l->c != NULL) {
        (void) pst_event_set_fd(l->c, 0, 0);
        pst_free_connection(l->c);
        l->c = NULL;
    }
    l->reading = 0;
    l->writing = 0;
    l->ac = NULL;
    l->gone(l);
}


int
pst_redis_link_open(pst_redis_link_t *l, const char *host, int port,
    char *err, size_t size)
{
    redisAsyncContext  *ac;

    ac = port ? redisAsyncConnect(host, port) : redisAsyncConnectUnix(host);
    if (ac == NULL || ac->err) {
        snprintf(err, size, "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL) {
            redisAsyncFree(ac);          /* no hooks yet: no cleanup */
        }
        return PST_ERROR;
    }

    l->c = pst_get_connection(ac->c.fd);
    if (l->c == NULL) {
        snprintf(err, size, "no free connection");
        redisAsyncFree(ac);
        return PST_ERROR;
    }
    l->c->data = l;
    l->c->read.handler = pst_redis_link_read;
    l->c->write.handler = pst_redis_link_write;

    l->ac = ac;
    l->reading = 0;
    l->writing = 0;
    ac->ev.data = l;
    ac->ev.addRead = pst_redis_link_add_read;
    ac->ev.delRead = pst_redis_link_del_read;
    ac->ev.addWrite = pst_redis_link_add_write;
    ac->ev.delWrite = pst_redis_link_del_write;
    ac->ev.cleanup = pst_redis_link_cleanup;

    /* hiredis registered no write interest before the hooks were set:
     * the connect completes when the socket becomes writable */
    pst_redis_link_add_write(l);
    return PST_OK;
}


void
pst_redis_link_close(pst_redis_link_t *l)
{
    if (l->ac != NULL) {
        redisAsyncFree(l->ac);
    }
}


int
pst_redis_link_auth(pst_redis_link_t *l, const pst_str_t *user,
    const pst_str_t *password, void (*cb)(redisAsyncContext *, void *,
    void *), void *privdata)
{
    const char  *argv[3];
    size_t       len[3];
    int          n = 0;

    if (password->len == 0) {
        return PST_OK;
    }

    argv[n] = "AUTH";
    len[n++] = 4;
    if (user->len > 0) {
        argv[n] = (char *) user->data;
        len[n++] = user->len;
    }
    argv[n] = (char *) password->data;
    len[n++] = password->len;

    return redisAsyncCommandArgv(l->ac, cb, privdata, n, argv, len)
           == REDIS_OK ? PST_OK : PST_ERROR;
}
