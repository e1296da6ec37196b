/*
 * pst_channel.c -- typed, versioned messages between processes (see
 * pst_channel.h).
 */

#include "pst_core.h"
#include "pst_channel.h"

#define PST_MSG_HDR_LEN   sizeof(pst_msg_header_t)
#define PST_MSG_BUF_LEN   (PST_MSG_HDR_LEN + PST_CHANNEL_MAX_PAYLOAD)
#define PST_CMSG_LEN      CMSG_SPACE(PST_CHANNEL_MAX_FDS * sizeof(int))

typedef struct {
    const char                  *name;
    size_t                       min;
    size_t                       max;
    unsigned                     fd;        /* 1: exactly one descriptor */
} pst_msg_decl_t;

struct pst_channel_s {
    int                          sock;
    int                          stream;    /* SOCK_STREAM: reassemble */
    pst_channel_handler_pt       handler;
    void                        *data;
    u_char                      *buf;       /* PST_MSG_BUF_LEN */
    size_t                       have;      /* stream: bytes in buf */
    int                          fds[PST_CHANNEL_MAX_FDS];
    pst_uint_t                   nfds;      /* stream: pending descriptors */
    pst_uint_t                   malformed;
    unsigned                     watched:1;
};

static const pst_msg_decl_t  pst_msg_decls[PST_MSG_LAST] = {
    [PST_MSG_COMMITTED]  = { "COMMITTED", 1, 64, 0 },
    [PST_MSG_PING]       = { "PING", 0, 64, 0 },
    [PST_MSG_DESCRIPTOR] = { "DESCRIPTOR", 0, 64, 1 },
};


static const char *pst_channel_check(const pst_msg_header_t *h);
static const char *pst_channel_send_check(const pst_msg_header_t *h,
    unsigned type, size_t len, int fd);
static void pst_channel_bad(pst_channel_t *ch, const pst_msg_header_t *h,
    const char *why);
static void pst_channel_close_fds(int *fds, pst_uint_t n);
static ssize_t pst_channel_recv(pst_channel_t *ch, u_char *p, size_t size,
    int *fds, pst_uint_t *nfds, int *trunc);
static int pst_channel_read_record(pst_channel_t *ch);
static int pst_channel_read_stream(pst_channel_t *ch);
static int pst_channel_parse_stream(pst_channel_t *ch);
static void pst_channel_dispatch(pst_channel_t *ch,
    const pst_msg_header_t *h, const u_char *payload, int fd);
static void pst_channel_event(int fd, void *data);


const char *
pst_channel_type_name(unsigned type)
{
    if (type < PST_MSG_LAST && pst_msg_decls[type].name != NULL) {
        return pst_msg_decls[type].name;
    }
    return "unknown";
}


int
pst_channel_pair(int fds[2], int type)
{
    if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)
        == -1)
    {
        pst_log_error(PST_LOG_ALERT, errno, "socketpair() failed");
        return PST_ERROR;
    }

    return PST_OK;
}


/* NULL when the header is acceptable, else why not. */
static const char *
pst_channel_check(const pst_msg_header_t *h)
{
    const pst_msg_decl_t  *d;

    if (h->version != PST_CHANNEL_VERSION) {
        return "another protocol version";
    }
    if (h->type >= PST_MSG_LAST || pst_msg_decls[h->type].name == NULL) {
        return "unknown type";
    }
    d = &pst_msg_decls[h->type];
    if (h->len < d->min || h->len > d->max) {
        return "payload length out of bounds for the type";
    }

    return NULL;
}


/* The sender refuses what the receiver would refuse. */
static const char *
pst_channel_send_check(const pst_msg_header_t *h, unsigned type, size_t len,
    int fd)
{
    const char  *why;

    if (type > 0xffff || len > PST_CHANNEL_MAX_PAYLOAD) {
        return "too large";
    }

    why = pst_channel_check(h);
    if (why == NULL && pst_msg_decls[type].fd != (fd != -1)) {
        why = fd == -1 ? "no descriptor" : "a descriptor for a type"
                                           " without one";
    }

    return why;
}


int
pst_channel_send(int sock, unsigned type, const void *data, size_t len,
    int fd)
{
    pst_msg_header_t  h;
    struct cmsghdr   *cm;
    struct msghdr     msg;
    struct iovec      iov[2];
    const char       *why;
    ssize_t           n;
    union {
        struct cmsghdr  align;
        u_char          buf[CMSG_SPACE(sizeof(int))];
    } cmsg;

    h.version = PST_CHANNEL_VERSION;
    h.type = (uint16_t) type;
    h.len = (uint32_t) len;

    why = pst_channel_send_check(&h, type, len, fd);
    if (why != NULL) {
        pst_log_error(PST_LOG_ALERT, 0, "channel: refusing to send %s"
                      " (type %u, %zu bytes): %s",
                      pst_channel_type_name(type), type, len, why);
        errno = EINVAL;
        return PST_ERROR;
    }

    iov[0].iov_base = &h;
    iov[0].iov_len = PST_MSG_HDR_LEN;
    iov[1].iov_base = (void *) data;
    iov[1].iov_len = len;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;

    if (fd != -1) {
        memset(&cmsg, 0, sizeof(cmsg));
        msg.msg_control = cmsg.buf;
        msg.msg_controllen = sizeof(cmsg.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }

    do {
        n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);

    if (n == -1) {
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? PST_AGAIN
                                                         : PST_ERROR;
    }

    if ((size_t) n != PST_MSG_HDR_LEN + len) {
        /* only a stream socket writes part of a message */
        pst_log_error(PST_LOG_ALERT, 0, "channel: short write (%zd of %zu"
                      " bytes): the stream is out of step",
                      n, PST_MSG_HDR_LEN + len);
        errno = EPIPE;
        return PST_ERROR;
    }

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Reader                                                              */

pst_channel_t *
pst_channel_create(int sock, pst_channel_handler_pt handler, void *data)
{
    pst_channel_t  *ch;
    socklen_t       len;
    int             type;

    len = sizeof(type);
    if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) == -1) {
        pst_log_error(PST_LOG_ALERT, errno, "channel: getsockopt(%d)"
                      " failed", sock);
        return NULL;
    }

    ch = calloc(1, sizeof(pst_channel_t));
    if (ch == NULL) {
        return NULL;
    }
    ch->buf = malloc(PST_MSG_BUF_LEN);
    if (ch->buf == NULL) {
        free(ch);
        return NULL;
    }

    ch->sock = sock;
    ch->stream = (type == SOCK_STREAM);
    ch->handler = handler;
    ch->data = data;

    return ch;
}


void
pst_channel_destroy(pst_channel_t *ch)
{
    if (ch == NULL) {
        return;
    }
    pst_channel_unwatch(ch);
    pst_channel_close_fds(ch->fds, ch->nfds);
    free(ch->buf);
    free(ch);
}


pst_uint_t
pst_channel_malformed(pst_channel_t *ch)
{
    return ch->malformed;
}


static void
pst_channel_close_fds(int *fds, pst_uint_t n)
{
    pst_uint_t  i;

    for (i = 0; i < n; i++) {
        close(fds[i]);
    }
}


static void
pst_channel_bad(pst_channel_t *ch, const pst_msg_header_t *h,
    const char *why)
{
    ch->malformed++;

    if (h == NULL) {
        pst_log_error(PST_LOG_ALERT, 0, "channel %d: malformed message"
                      " refused: %s", ch->sock, why);
        return;
    }

    pst_log_error(PST_LOG_ALERT, 0, "channel %d: malformed message refused:"
                  " %s (version %u, type %u %s, length %u)", ch->sock, why,
                  (unsigned) h->version, (unsigned) h->type,
                  pst_channel_type_name(h->type), (unsigned) h->len);
}


/* One recvmsg: the bytes into p, descriptors appended to fds.  *trunc
 * says the record or its descriptors did not fit. */
static ssize_t
pst_channel_recv(pst_channel_t *ch, u_char *p, size_t size, int *fds,
    pst_uint_t *nfds, int *trunc)
{
    struct cmsghdr  *cm;
    struct msghdr    msg;
    struct iovec     iov;
    pst_uint_t       i, k;
    ssize_t          n;
    int              fd;
    union {
        struct cmsghdr  align;
        u_char          buf[PST_CMSG_LEN];
    } cmsg;

    iov.iov_base = p;
    iov.iov_len = size;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.buf;
    msg.msg_controllen = sizeof(cmsg.buf);

    do {
        n = recvmsg(ch->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n == -1 && errno == EINTR);

    if (n == -1) {
        return -1;
    }

    *trunc = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;

    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        k = (pst_uint_t) ((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (i = 0; i < k; i++) {
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*nfds < PST_CHANNEL_MAX_FDS) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
                *trunc = 1;
            }
        }
    }

    return n;
}


int
pst_channel_read(pst_channel_t *ch)
{
    return ch->stream ? pst_channel_read_stream(ch)
                      : pst_channel_read_record(ch);
}


/* SOCK_SEQPACKET: every record is exactly one message. */
static int
pst_channel_read_record(pst_channel_t *ch)
{
    pst_msg_header_t  h;
    const char       *why;
    pst_uint_t        nfds;
    ssize_t           n;
    int               fds[PST_CHANNEL_MAX_FDS], trunc;

    for ( ;; ) {
        nfds = 0;
        n = pst_channel_recv(ch, ch->buf, PST_MSG_BUF_LEN, fds, &nfds,
                             &trunc);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return PST_OK;
            }
            pst_log_error(PST_LOG_ALERT, errno, "channel %d: recvmsg()"
                          " failed", ch->sock);
            return PST_ERROR;
        }
        if (n == 0 && nfds == 0) {
            return PST_DONE;
        }

        if ((size_t) n < PST_MSG_HDR_LEN) {
            pst_channel_bad(ch, NULL, trunc ? "record truncated"
                                            : "shorter than a header");
            pst_channel_close_fds(fds, nfds);
            continue;
        }

        memcpy(&h, ch->buf, PST_MSG_HDR_LEN);
        why = pst_channel_check(&h);
        if (why == NULL && trunc) {
            why = "record or descriptors truncated";
        }
        if (why == NULL && (size_t) n != PST_MSG_HDR_LEN + h.len) {
            why = "record length differs from the header's";
        }
        if (why == NULL && nfds != pst_msg_decls[h.type].fd) {
            why = nfds ? "unexpected descriptor" : "descriptor missing";
        }
        if (why != NULL) {
            pst_channel_bad(ch, &h, why);
            pst_channel_close_fds(fds, nfds);
            continue;
        }

        pst_channel_dispatch(ch, &h, ch->buf + PST_MSG_HDR_LEN,
                             nfds ? fds[0] : -1);
    }
}


/* SOCK_STREAM: bytes arrive in any split; descriptors queue up and go
 * to the next message whose type carries one. */
static int
pst_channel_read_stream(pst_channel_t *ch)
{
    ssize_t  n;
    int      trunc, rc;

    for ( ;; ) {
        n = pst_channel_recv(ch, ch->buf + ch->have,
                             PST_MSG_BUF_LEN - ch->have, ch->fds, &ch->nfds,
                             &trunc);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return PST_OK;
            }
            pst_log_error(PST_LOG_ALERT, errno, "channel %d: recvmsg()"
                          " failed", ch->sock);
            return PST_ERROR;
        }
        if (n == 0) {
            if (ch->have != 0) {
                pst_channel_bad(ch, NULL, "closed inside a message");
            }
            return PST_DONE;
        }
        if (trunc) {
            pst_channel_bad(ch, NULL, "too many descriptors in flight");
            return PST_ERROR;
        }

        ch->have += (size_t) n;

        rc = pst_channel_parse_stream(ch);
        if (rc != PST_OK) {
            return rc;
        }
    }
}


static int
pst_channel_parse_stream(pst_channel_t *ch)
{
    pst_msg_header_t  h;
    const char       *why;
    size_t            total;
    int               fd;

    while (ch->have >= PST_MSG_HDR_LEN) {
        memcpy(&h, ch->buf, PST_MSG_HDR_LEN);
        why = pst_channel_check(&h);
        if (why != NULL) {
            /* framing is lost: nothing after this can be trusted */
            pst_channel_bad(ch, &h, why);
            return PST_ERROR;
        }

        total = PST_MSG_HDR_LEN + h.len;
        if (ch->have < total) {
            return PST_OK;
        }

        fd = -1;
        if (pst_msg_decls[h.type].fd) {
            if (ch->nfds == 0) {
                pst_channel_bad(ch, &h, "descriptor missing");
                return PST_ERROR;
            }
            fd = ch->fds[0];
            ch->nfds--;
            memmove(ch->fds, ch->fds + 1, ch->nfds * sizeof(int));
        }

        pst_channel_dispatch(ch, &h, ch->buf + PST_MSG_HDR_LEN, fd);

        ch->have -= total;
        memmove(ch->buf, ch->buf + total, ch->have);
    }

    return PST_OK;
}


static void
pst_channel_dispatch(pst_channel_t *ch, const pst_msg_header_t *h,
    const u_char *payload, int fd)
{
    pst_msg_t  msg;

    msg.type = h->type;
    msg.data = payload;
    msg.len = h->len;
    msg.fd = fd;

    ch->handler(ch, &msg, ch->data);
}


/* ------------------------------------------------------------------ */
/* In the event loop                                                   */

static void
pst_channel_event(int fd, void *data)
{
    pst_channel_t  *ch = data;
    int             rc;

    (void) fd;

    rc = pst_channel_read(ch);
    if (rc == PST_OK) {
        return;
    }

    pst_log_error(rc == PST_DONE ? PST_LOG_NOTICE : PST_LOG_ALERT, 0,
                  "channel %d: %s; no longer read", ch->sock,
                  rc == PST_DONE ? "closed by the peer" : "broken");
    pst_channel_unwatch(ch);
}


int
pst_channel_watch(pst_channel_t *ch)
{
    if (ch->watched) {
        return PST_OK;
    }
    if (pst_fd_watch(ch->sock, pst_channel_event, ch) != PST_OK) {
        return PST_ERROR;
    }
    ch->watched = 1;
    return PST_OK;
}


void
pst_channel_unwatch(pst_channel_t *ch)
{
    if (ch->watched) {
        (void) pst_fd_unwatch(ch->sock);
        ch->watched = 0;
    }
}
