/*
 * pst_connection.c -- listening sockets, the worker's connection table,
 * accept and plain recv/send (see pst_connection.h).
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"

#define PST_ACCEPT_BATCH   32

static pst_connection_t  *conn_table;
static pst_connection_t  *conn_free;
static pst_uint_t         conn_n;
static pst_uint_t         conn_free_n;
static uint64_t           conn_number;
static pst_event_t        accept_retry;


static void
pst_accept_retry(pst_event_t *ev)
{
    (void) ev;
    (void) pst_enable_accept(pst_cycle);
}


int
pst_nonblocking(int fd)
{
    int  fl;

    fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
        return PST_ERROR;
    }

    return PST_OK;
}


static pst_listening_t *
pst_find_old_listening(pst_cycle_t *old, pst_listening_t *ls)
{
    pst_listening_t  *ols;
    pst_uint_t        i;

    if (old == NULL) {
        return NULL;
    }

    ols = old->listening.elts;
    for (i = 0; i < old->listening.nelts; i++) {
        if (ols[i].fd != -1 && ols[i].socklen == ls->socklen
            && memcmp(&ols[i].sockaddr, &ls->sockaddr, ls->socklen) == 0)
        {
            return &ols[i];
        }
    }

    return NULL;
}


int
pst_open_listening_sockets(pst_cycle_t *cycle, pst_cycle_t *old)
{
    pst_listening_t  *ls, *ols;
    pst_uint_t        i;
    int               fd, on;

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {

        ols = pst_find_old_listening(old, &ls[i]);
        if (ols != NULL) {
            ls[i].fd = ols->fd;
            ols->inherited = 1;      /* the old cycle must not close it */
            if (ls[i].backlog != ols->backlog) {
                (void) listen(ls[i].fd, ls[i].backlog);
            }
            continue;
        }

        fd = socket(ls[i].sockaddr.sa.sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            pst_log_error(PST_LOG_EMERG, errno, "socket() for %s failed",
                          ls[i].addr_text);
            return PST_ERROR;
        }

        on = 1;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));

        if (ls[i].sockaddr.sa.sa_family == AF_INET6) {
            /* a [::] listener does not take IPv4: say 0.0.0.0 for that */
            (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
                              sizeof(on));
        }

        if (bind(fd, &ls[i].sockaddr.sa, ls[i].socklen) == -1) {
            pst_log_error(PST_LOG_EMERG, errno, "%s:%lu: bind() to %s failed",
                          ls[i].conf_file, (unsigned long) ls[i].conf_line,
                          ls[i].addr_text);
            close(fd);
            return PST_ERROR;
        }

        if (listen(fd, ls[i].backlog) == -1) {
            pst_log_error(PST_LOG_EMERG, errno, "listen() on %s failed",
                          ls[i].addr_text);
            close(fd);
            return PST_ERROR;
        }

        ls[i].fd = fd;
    }

    return PST_OK;
}


void
pst_close_listening_sockets(pst_cycle_t *cycle)
{
    pst_listening_t  *ls;
    pst_uint_t        i;

    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].fd != -1 && !ls[i].inherited) {
            close(ls[i].fd);
        }
        ls[i].fd = -1;
    }
}


/* ------------------------------------------------------------------ */
/* Worker side                                                         */

int
pst_connections_init(pst_uint_t n)
{
    pst_uint_t  i;

    /* again in one process (libpostern-test's next harness): the old
     * table's connections are all closed by then */
    free(conn_table);
    conn_table = calloc(n, sizeof(pst_connection_t));
    if (conn_table == NULL) {
        return PST_ERROR;
    }

    conn_n = n;
    conn_free = NULL;
    for (i = n; i-- > 0; ) {
        conn_table[i].fd = -1;
        conn_table[i].next_free = conn_free;
        conn_free = &conn_table[i];
    }
    conn_free_n = n;

    return PST_OK;
}


pst_uint_t
pst_connections_free(void)
{
    return conn_free_n;
}


pst_uint_t
pst_connections_used(void)
{
    return conn_n - conn_free_n;
}


pst_connection_t *
pst_get_connection(int fd)
{
    pst_connection_t  *c;
    unsigned           instance;

    c = conn_free;
    if (c == NULL) {
        pst_log_error(PST_LOG_ALERT, 0, "%lu worker_connections are not"
                      " enough", (unsigned long) conn_n);
        return NULL;
    }

    conn_free = c->next_free;
    conn_free_n--;

    instance = c->read.instance;
    memset(c, 0, sizeof(pst_connection_t));
    c->read.instance = !instance;
    c->write.instance = !instance;
    c->read.data = c;
    c->write.data = c;
    c->write.write = 1;
    c->fd = fd;
    c->number = ++conn_number;
    c->recv = pst_unix_recv;
    c->send = pst_unix_send;

    return c;
}


void
pst_free_connection(pst_connection_t *c)
{
    c->fd = -1;
    c->destroyed = 1;
    c->next_free = conn_free;
    conn_free = c;
    conn_free_n++;
}


void
pst_close_connection(pst_connection_t *c)
{
    int  fd;

    if (c->fd == -1) {
        return;
    }

    pst_event_del_timer(&c->read);
    pst_event_del_timer(&c->write);
    pst_delete_posted_event(&c->read);
    pst_delete_posted_event(&c->write);
    c->read.active = 0;
    c->write.active = 0;

    if (c->ssl != NULL && c->ssl_close != NULL) {
        c->ssl_close(c);        /* close_notify, best effort */
    }

    fd = c->fd;
    pst_free_connection(c);
    close(fd);       /* also leaves the epoll set */
}


ssize_t
pst_unix_recv(pst_connection_t *c, u_char *buf, size_t n)
{
    ssize_t  r;

    for ( ;; ) {
        r = recv(c->fd, buf, n, 0);

        if (r > 0) {
            if ((size_t) r < n && !c->read.eof) {
                /* drained the socket: wait for the next edge */
                c->read.ready = 0;
            }
            return r;
        }

        if (r == 0) {
            c->read.ready = 0;
            c->read.eof = 1;
            return 0;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->read.ready = 0;
            return PST_AGAIN;
        }

        c->read.ready = 0;
        c->read.error = 1;
        return PST_ERROR;
    }
}


ssize_t
pst_unix_send(pst_connection_t *c, const u_char *buf, size_t n)
{
    ssize_t  r;

    for ( ;; ) {
        r = send(c->fd, buf, n, MSG_NOSIGNAL);

        if (r >= 0) {
            if ((size_t) r < n) {
                c->write.ready = 0;
            }
            return r;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->write.ready = 0;
            return PST_AGAIN;
        }

        c->write.error = 1;
        return PST_ERROR;
    }
}


static void
pst_event_accept(pst_event_t *ev)
{
    pst_connection_t  *lc, *c;
    pst_listening_t   *ls;
    pst_sockaddr_t     sa;
    socklen_t          len;
    int                fd, i, on;

    lc = ev->data;
    ls = lc->listening;

    for (i = 0; i < PST_ACCEPT_BATCH; i++) {

        if (conn_free_n == 0) {
            /* let the other workers take connections for a while */
            pst_disable_accept(pst_cycle);
            accept_retry.handler = pst_accept_retry;
            pst_event_add_timer(&accept_retry, 500);
            return;
        }

        len = sizeof(pst_sockaddr_t);
        fd = accept4(lc->fd, &sa.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                pst_log_error(PST_LOG_CRIT, errno, "accept() failed; raise"
                              " worker_rlimit_nofile");
                pst_disable_accept(pst_cycle);
                accept_retry.handler = pst_accept_retry;
                pst_event_add_timer(&accept_retry, 500);
                return;
            }
            pst_log_error(PST_LOG_ERR, errno, "accept() on %s failed",
                          ls->addr_text);
            return;
        }

        c = pst_get_connection(fd);
        if (c == NULL) {
            close(fd);
            return;
        }

        on = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

        memcpy(&c->sockaddr, &sa, len);
        c->socklen = len;
        c->listening = ls;
        len = sizeof(pst_sockaddr_t);
        (void) getsockname(fd, &c->local_sockaddr.sa, &len);

        if (pst_event_add_conn(c) != PST_OK) {
            pst_close_connection(c);
            continue;
        }

        ls->handler(c);
    }
}


int
pst_enable_accept(pst_cycle_t *cycle)
{
    pst_listening_t   *ls;
    pst_connection_t  *c;
    pst_uint_t         i;

    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].fd == -1) {
            continue;
        }

        c = ls[i].connection;
        if (c == NULL) {
            c = pst_get_connection(ls[i].fd);
            if (c == NULL) {
                return PST_ERROR;
            }
            c->listening = &ls[i];
            c->listener = 1;
            c->read.handler = pst_event_accept;
            ls[i].connection = c;
        }

        if (!c->read.active && pst_event_add_read(c) != PST_OK) {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


void
pst_disable_accept(pst_cycle_t *cycle)
{
    pst_listening_t  *ls;
    pst_uint_t        i;

    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].connection != NULL) {
            (void) pst_event_del_read(ls[i].connection);
        }
    }
}


void
pst_close_listening_in_worker(pst_cycle_t *cycle)
{
    pst_listening_t  *ls;
    pst_uint_t        i;

    pst_event_del_timer(&accept_retry);

    ls = cycle->listening.elts;
    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].connection != NULL) {
            (void) pst_event_del_read(ls[i].connection);
            pst_close_connection(ls[i].connection);
            ls[i].connection = NULL;
        } else if (ls[i].fd != -1) {
            close(ls[i].fd);
        }
        ls[i].fd = -1;
    }
}


/* ------------------------------------------------------------------ */
/* Module API: watch a descriptor                                      */

#define PST_MAX_WATCHES   64

static pst_connection_t  *watches[PST_MAX_WATCHES];


static void
pst_fd_event_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;

    c->fd_handler(c->fd, c->fd_data);
}


static void
pst_fd_ev_handler(pst_event_t *ev)
{
    pst_connection_t  *c = ev->data;

    c->fd_ev_handler(c->fd, ev->write ? PST_FD_WRITE : PST_FD_READ,
                     c->fd_data);
}


/* A free watch slot with a connection for fd, or -1. */
static int
pst_fd_watch_slot(int fd)
{
    int  i;

    for (i = 0; i < PST_MAX_WATCHES; i++) {
        if (watches[i] == NULL) {
            break;
        }
    }
    if (i == PST_MAX_WATCHES) {
        pst_log_error(PST_LOG_ALERT, 0, "too many watched descriptors");
        return -1;
    }

    watches[i] = pst_get_connection(fd);
    return watches[i] != NULL ? i : -1;
}


int
pst_fd_watch(int fd, pst_fd_pt handler, void *data)
{
    pst_connection_t  *c;
    int                i;

    i = pst_fd_watch_slot(fd);
    if (i == -1) {
        return PST_ERROR;
    }

    c = watches[i];
    c->fd_handler = handler;
    c->fd_data = data;
    c->read.handler = pst_fd_event_handler;

    if (pst_event_add_read(c) != PST_OK) {
        pst_free_connection(c);
        watches[i] = NULL;
        return PST_ERROR;
    }

    return PST_OK;
}


int
pst_fd_watch_events(int fd, unsigned events, pst_fd_ev_pt handler,
    void *data)
{
    pst_connection_t  *c = NULL;
    int                i, added = 0;

    if (events == 0 || (events & ~(PST_FD_READ | PST_FD_WRITE))
        || handler == NULL)
    {
        return PST_ERROR;
    }

    for (i = 0; i < PST_MAX_WATCHES; i++) {
        if (watches[i] != NULL && watches[i]->fd == fd) {
            c = watches[i];
            break;
        }
    }

    if (c == NULL) {
        i = pst_fd_watch_slot(fd);
        if (i == -1) {
            return PST_ERROR;
        }
        c = watches[i];
        added = 1;
    }

    c->fd_ev_handler = handler;
    c->fd_data = data;
    c->read.handler = pst_fd_ev_handler;
    c->write.handler = pst_fd_ev_handler;

    if (pst_event_set_fd(c, (events & PST_FD_READ) != 0,
                         (events & PST_FD_WRITE) != 0) != PST_OK)
    {
        if (added) {
            pst_free_connection(c);
            watches[i] = NULL;
        }
        return PST_ERROR;
    }

    return PST_OK;
}


int
pst_fd_unwatch(int fd)
{
    int  i;

    for (i = 0; i < PST_MAX_WATCHES; i++) {
        if (watches[i] != NULL && watches[i]->fd == fd) {
            (void) pst_event_del_read(watches[i]);
            pst_free_connection(watches[i]);   /* the owner closes fd */
            watches[i] = NULL;
            return PST_OK;
        }
    }

    return PST_DECLINED;
}


/* ------------------------------------------------------------------ */
/* Address ranges (public API)                                         */

int
pst_cidr_parse(const pst_str_t *text, pst_cidr_t *cidr)
{
    char   buf[INET6_ADDRSTRLEN + 8], *slash, *end;
    long   bits;
    int    i, max;

    if (text->len == 0 || text->len >= sizeof(buf)) {
        return PST_ERROR;
    }
    memcpy(buf, text->data, text->len);
    buf[text->len] = '\0';

    slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash++ = '\0';
    }

    memset(cidr, 0, sizeof(pst_cidr_t));

    if (inet_pton(AF_INET, buf, cidr->addr) == 1) {
        cidr->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, cidr->addr) == 1) {
        cidr->family = AF_INET6;
        max = 128;
    } else {
        return PST_ERROR;
    }

    bits = max;
    if (slash != NULL) {
        if (*slash < '0' || *slash > '9') {
            return PST_ERROR;
        }
        bits = strtol(slash, &end, 10);
        if (*end != '\0' || bits > max) {
            return PST_ERROR;
        }
    }
    cidr->bits = (int) bits;

    /* clear the host bits, so that equal ranges compare equal */
    for (i = 0; i < max / 8; i++) {
        if (i * 8 >= cidr->bits) {
            cidr->addr[i] = 0;
        } else if (i * 8 + 8 > cidr->bits) {
            cidr->addr[i] &= (u_char) (0xff << (8 - (cidr->bits - i * 8)));
        }
    }

    return PST_OK;
}


char *
pst_conf_set_cidr_array_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_array_t  **ap;
    pst_cidr_t    *c;
    pst_str_t     *args;
    pst_uint_t     n, i;

    ap = (pst_array_t **) ((u_char *) conf + cmd->offset);
    if (*ap == PST_CONF_UNSET_PTR || *ap == NULL) {
        *ap = pst_array_create(pst_conf_pool(cf), 4, sizeof(pst_cidr_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        c = pst_array_push(*ap);
        if (c == NULL) {
            return PST_CONF_ERROR;
        }
        if (pst_cidr_parse(&args[i], c) != PST_OK) {
            pst_conf_error(cf, "invalid address range \"%s\" in \"%s\""
                           " (use ADDRESS or ADDRESS/BITS)", args[i].data,
                           cmd->name);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


int
pst_cidr_match_list(const pst_array_t *list, const struct sockaddr *sa)
{
    const pst_cidr_t  *c;
    pst_uint_t         i;

    if (list == NULL || list == PST_CONF_UNSET_PTR) {
        return 0;
    }

    c = list->elts;
    for (i = 0; i < list->nelts; i++) {
        if (pst_cidr_match(&c[i], sa)) {
            return 1;
        }
    }

    return 0;
}


int
pst_cidr_match(const pst_cidr_t *cidr, const struct sockaddr *sa)
{
    static const u_char  mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0xff, 0xff };
    const u_char        *a;
    int                  full, rest;

    if (sa->sa_family == AF_INET6) {
        a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        if (cidr->family == AF_INET) {
            /* an IPv4-mapped client matches IPv4 ranges */
            if (memcmp(a, mapped, 12) != 0) {
                return 0;
            }
            a += 12;
        }

    } else if (sa->sa_family == AF_INET) {
        if (cidr->family != AF_INET) {
            return 0;
        }
        a = (const u_char *) &((const struct sockaddr_in *) sa)->sin_addr;

    } else {
        return 0;
    }

    full = cidr->bits / 8;
    rest = cidr->bits % 8;

    if (memcmp(a, cidr->addr, (size_t) full) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a[full] ^ cidr->addr[full]) & (0xff << (8 - rest))) == 0;
}
