/*
 * pst_connection.h -- listening sockets and connections.
 *
 * The master opens every listening socket (IPv4 and IPv6) and the workers
 * inherit them; each worker watches them with EPOLLEXCLUSIVE so that a new
 * connection wakes one worker.  A worker has a fixed table of connection
 * objects (worker_connections) with a free list; the same object serves
 * client sockets and the other descriptors a worker watches (listeners,
 * eventfds, the resolver's socket), so the event loop has one kind of
 * object to dispatch on.
 *
 * recv/send go through function pointers so that TLS can replace them
 * after a handshake without the SMTP layer knowing.
 */

#ifndef PST_CONNECTION_H
#define PST_CONNECTION_H

#include "pst_event.h"

typedef ssize_t (*pst_recv_pt)(pst_connection_t *c, u_char *buf, size_t n);
typedef ssize_t (*pst_send_pt)(pst_connection_t *c, const u_char *buf,
    size_t n);
typedef void (*pst_connection_handler_pt)(pst_connection_t *c);


struct pst_listening_s {
    int                          fd;
    pst_sockaddr_t               sockaddr;
    socklen_t                    socklen;
    u_char                       addr_text[64];
    size_t                       addr_text_len;
    int                          backlog;

    /* configuration: set by "listen" */
    const char                  *conf_file;
    pst_uint_t                   conf_line;
    pst_server_t                *server;        /* default server */
    pst_array_t                  servers;       /* pst_server_t *, for SNI */

    pst_connection_handler_pt    handler;
    pst_connection_t            *connection;    /* in a worker */

    unsigned                     tls:1;          /* implicit TLS */
    unsigned                     submission:1;
    unsigned                     inherited:1;    /* kept over a reload */
    unsigned                     ipv6only:1;
    unsigned                     proxy_protocol:1;  /* PROXY header first */
};

struct pst_connection_s {
    void                        *data;
    pst_event_t                  read;
    pst_event_t                  write;
    int                          fd;

    pst_recv_pt                  recv;
    pst_send_pt                  send;

    pst_listening_t             *listening;
    pst_sockaddr_t               sockaddr;
    socklen_t                    socklen;
    pst_sockaddr_t               local_sockaddr;

    void                        *ssl;           /* pst_ssl_conn_t */
    /* set with ssl by the tls layer (pst_ssl.c), which sits above this
     * one: pst_close_connection() sends close_notify through it */
    void                       (*ssl_close)(pst_connection_t *c);

    pst_fd_pt                    fd_handler;    /* pst_fd_watch() */
    pst_fd_ev_pt                 fd_ev_handler; /* pst_fd_watch_events() */
    void                        *fd_data;

    uint64_t                     number;
    pst_connection_t            *next_free;

    unsigned                     destroyed:1;
    unsigned                     error:1;
    unsigned                     listener:1;     /* a listening socket */
};

/* Master side. */
int pst_open_listening_sockets(pst_cycle_t *cycle, pst_cycle_t *old);
void pst_close_listening_sockets(pst_cycle_t *cycle);

/* Worker side. */
int pst_connections_init(pst_uint_t n);
pst_connection_t *pst_get_connection(int fd);
void pst_free_connection(pst_connection_t *c);
void pst_close_connection(pst_connection_t *c);
pst_uint_t pst_connections_free(void);
pst_uint_t pst_connections_used(void);
int pst_enable_accept(pst_cycle_t *cycle);
void pst_disable_accept(pst_cycle_t *cycle);
void pst_close_listening_in_worker(pst_cycle_t *cycle);

ssize_t pst_unix_recv(pst_connection_t *c, u_char *buf, size_t n);
ssize_t pst_unix_send(pst_connection_t *c, const u_char *buf, size_t n);

int pst_nonblocking(int fd);

#endif /* PST_CONNECTION_H */
