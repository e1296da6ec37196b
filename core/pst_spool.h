/*
 * pst_spool.h -- the spool: layout, queue IDs, envelope format,
 * start-up recovery.  The format is documented in docs/SPOOL.md.
 *
 *   SPOOL/tmp/PID/ID      message being received by worker PID
 *   SPOOL/queue/ID        committed: header, message, envelope
 *   SPOOL/corrupt/        what recovery could not read, for a human
 *
 * A message is committed by: append the envelope, write the header,
 * fdatasync(file), rename into queue/, fsync(queue directory).  Only
 * then is 250 sent.  A file appears in queue/ complete or not at all.
 */

#ifndef PST_SPOOL_H
#define PST_SPOOL_H

#define PST_ENVELOPE_MAGIC       "POSTERN-ENVELOPE 1"
#define PST_QUEUE_ID_LEN         18

typedef struct {
    pst_str_t                    addr;
    unsigned                     notify;
    pst_str_t                    orcpt;      /* "type;address" decoded */
    pst_str_t                    state;      /* pending, sent, failed */
} pst_env_rcpt_t;

typedef struct {
    pst_str_t                    id;
    pst_str_t                    sender;
    pst_str_t                    client_addr;
    pst_str_t                    client_name;
    pst_str_t                    helo;
    pst_str_t                    protocol;
    pst_str_t                    auth;
    pst_str_t                    tls;
    pst_str_t                    envid;
    pst_str_t                    ret;
    pst_str_t                    body;
    int                          smtputf8;
    int64_t                      size;
    double                       arrival;
    pst_array_t                 *rcpts;      /* pst_env_rcpt_t */
    pst_array_t                 *prepend;    /* pst_str_t header lines */
} pst_envelope_t;

/* Make a new queue ID (upper-case base32, time ordered, unique across
 * the processes of one host).  buf holds PST_QUEUE_ID_LEN + 1 bytes. */
void pst_spool_new_id(u_char *buf);
/* Validate an ID read from the file system or a command line. */
int pst_spool_valid_id(const u_char *p, size_t n);
/* Parse an envelope's text; PST_OK or PST_ERROR with *why. */
int pst_envelope_parse(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why);
/* Read queue/ID: the envelope parsed, the message's offset and length
 * in the file.  PST_OK, PST_DECLINED (no such file) or PST_ERROR with
 * *why (not a complete format 2 file). */
int pst_spool_read(pst_pool_t *pool, const char *path, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why);
/* Master: create the directories (owned by the worker account); with
 * recover, clean up what a crash left and log what the queue holds. */
int pst_spool_prepare(pst_cycle_t *cycle);
/* Worker: create SPOOL/tmp/PID for this process (after dropping
 * privileges).  Master: remove the one of a process that exited. */
int pst_spool_process_init(pst_cycle_t *cycle);
void pst_spool_process_gone(pst_cycle_t *cycle, pid_t pid);
/* Remove what no live writer owns from tmp/ (startup: also every file
 * directly in tmp/).  Files removed, or -1 when tmp/ is unreadable. */
long pst_spool_clean_tmp(const char *spool, int startup);
int pst_spool_recover(pst_cycle_t *cycle);
/* postern queue count|list|show ID|check */
int pst_spool_tool(pst_cycle_t *cycle, int argc, char **argv);

#endif /* PST_SPOOL_H */
