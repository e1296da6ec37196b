/*
 * pst_channel.h -- typed, versioned messages between processes.
 *
 * In the spirit of OpenSMTPD's imsg: every message is a header
 *
 *     uint16 version (PST_CHANNEL_VERSION), uint16 type, uint32 len
 *
 * in host byte order (both ends are the same binary) followed by len
 * bytes of payload, and a type may carry one descriptor (SCM_RIGHTS).
 * Channels are AF_UNIX SOCK_SEQPACKET socketpairs, non-blocking: one
 * send is one record, so several processes may write into the same
 * end without interleaving.  A SOCK_STREAM socket works too (the reader
 * then reassembles messages split across reads).
 *
 * Each type is declared once in pst_channel.c with its payload bounds
 * and whether a descriptor comes with it.  A message that breaks its
 * declaration (another version, an unknown type, a wrong length, a
 * missing or unexpected descriptor, a truncated record) is malformed:
 * it is logged at alert level and never handed to the handler.
 */

#ifndef PST_CHANNEL_H
#define PST_CHANNEL_H

#define PST_CHANNEL_VERSION      1
#define PST_CHANNEL_MAX_PAYLOAD  65536
#define PST_CHANNEL_MAX_FDS      8        /* stream: pending descriptors */

typedef enum {
    PST_MSG_NONE = 0,
    PST_MSG_COMMITTED,      /* worker -> queue: a queue ID, now durable */
    PST_MSG_PING,           /* anyone: up to 64 bytes, echoed or logged */
    PST_MSG_DESCRIPTOR,     /* anyone: a descriptor and a short label */
    PST_MSG_LAST
} pst_msg_type_e;

typedef struct {
    uint16_t                     version;
    uint16_t                     type;
    uint32_t                     len;
} pst_msg_header_t;

typedef struct {
    unsigned                     type;
    const u_char                *data;      /* valid during the callback */
    size_t                       len;
    int                          fd;        /* -1, or the handler's to close */
} pst_msg_t;

typedef struct pst_channel_s  pst_channel_t;

typedef void (*pst_channel_handler_pt)(pst_channel_t *ch,
    const pst_msg_t *msg, void *data);

/* A non-blocking, close-on-exec SOCK_SEQPACKET pair (or SOCK_STREAM). */
int pst_channel_pair(int fds[2], int type);

/* Send one message: PST_OK, PST_AGAIN (the peer's queue is full),
 * PST_ERROR (errno set; EPIPE: no reader).  fd -1 sends none; a type
 * that needs one refuses to go without it. */
int pst_channel_send(int sock, unsigned type, const void *data, size_t len,
    int fd);

/* A reader on sock (not owned: pst_channel_destroy leaves it open). */
pst_channel_t *pst_channel_create(int sock, pst_channel_handler_pt handler,
    void *data);
void pst_channel_destroy(pst_channel_t *ch);
/* Read what the socket holds now and hand each complete message to the
 * handler.  PST_OK (read everything available), PST_DONE (the peer
 * closed), PST_ERROR (a read error, or a malformed message on a stream
 * socket, where framing is lost: destroy the channel). */
int pst_channel_read(pst_channel_t *ch);
/* Read from the event loop (pst_fd_watch); stop with _unwatch. */
int pst_channel_watch(pst_channel_t *ch);
void pst_channel_unwatch(pst_channel_t *ch);
/* Messages refused as malformed so far. */
pst_uint_t pst_channel_malformed(pst_channel_t *ch);
const char *pst_channel_type_name(unsigned type);

#endif /* PST_CHANNEL_H */
