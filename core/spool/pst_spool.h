/*
 * pst_spool.h -- the spool as a core service: layout, queue IDs, queue
 * files, per-recipient delivery state, start-up clean-up and the queue
 * tool.  The format is documented in docs/SPOOL.md.
 *
 *   SPOOL/tmp/PID/ID          message being received by worker PID
 *   SPOOL/queue/XY/ID         committed: header, message, envelope
 *                             (XY: the ID's last two characters);
 *                             immutable once there
 *   SPOOL/queue/XY/ID.state   its delivery state, replaced atomically
 *   SPOOL/corrupt/            what could not be read, for a human
 *
 * A message is committed by: append the envelope, write the header,
 * fdatasync(file), rename into queue/XY/, fsync(queue/XY).  Only then
 * is 250 sent.  A file appears in queue/ complete or not at all.
 */

#ifndef PST_SPOOL_H
#define PST_SPOOL_H

#include "pst_envelope.h"

#define PST_QUEUE_ID_LEN         18
/* "XY/ID" under queue/, and "XY/ID.state" */
#define PST_SPOOL_NAME_LEN       (3 + PST_QUEUE_ID_LEN)
#define PST_SPOOL_STATE_SUFFIX   ".state"

typedef struct {
    pst_envelope_t      env;        /* the envelope with the state applied */
    int                 fd;         /* queue file, read only */
    off_t               msg_offset; /* the message in fd */
    off_t               msg_len;
} pst_spool_msg_t;

/* Make a new queue ID (upper-case base32, time ordered, unique across
 * the processes of one host).  buf holds PST_QUEUE_ID_LEN + 1 bytes. */
void pst_spool_new_id(u_char *buf);
/* Validate an ID read from the file system or a command line. */
int pst_spool_valid_id(const u_char *p, size_t n);
/* The time an ID was made (its first 11 characters). */
void pst_spool_id_time(const u_char *id, time_t *sec, long *usec);

/* Read the queue file open on fd: the envelope parsed (without the
 * delivery state), the message's offset and length in the file.
 * PST_OK or PST_ERROR with *why. */
int pst_spool_read_fd(pst_pool_t *pool, int fd, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why);
/* The same from a path: PST_DECLINED when there is no such file. */
int pst_spool_read(pst_pool_t *pool, const char *path, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why);

/* Tools and tests without a configuration: the spool directory to use
 * instead of spool_dir (NUL-terminated, kept by the caller). */
void pst_spool_use_dir(const char *dir);

/* Path of queue file ID into buf.  PST_OK or PST_ERROR (bad ID / small
 * buf). */
int pst_spool_path(char *buf, size_t size, const char *id);
/* Open a committed message: envelope + current delivery state.
 * PST_OK, PST_DECLINED (gone), PST_ERROR (*why: corrupt: move it aside
 * with pst_spool_corrupt()), PST_AGAIN (*why: a system error such as
 * EMFILE or EACCES: try later, never a reason for corrupt/). */
int pst_spool_msg_open(pst_pool_t *pool, const char *id, pst_spool_msg_t *m,
    const char **why);
void pst_spool_msg_close(pst_spool_msg_t *m);
/* Make the delivery state of every recipient of env (and env->hold)
 * durable, atomically: after a crash either the old or the new state is
 * read, never a mix, never a message in corrupt/.  Blocking (fsync):
 * thread safe, meant to be called off the event loop or batched. */
int pst_spool_state_write(const pst_envelope_t *env);
/* The same for a release (env->hold 0 and nothing else changed): the
 * new file's data is durable, its rename is not (one flush instead of
 * two).  After a power loss the old state may be read again: the
 * message is held again, never corrupt, no outcome lost.  A process
 * crash loses nothing. */
int pst_spool_release_write(const pst_envelope_t *env);
/* Remove a message (queue file, then its state), ordered: the message's
 * removal is durable before its state goes, so that a power loss never
 * brings it back without the outcomes its state records.  PST_OK when
 * it is gone, PST_ERROR (errno) when it could not be removed. */
int pst_spool_remove(const char *id);
/* The same without a flush, for a message whose state on disk records
 * no outcome (no final recipient, no DSN sent): after a power loss it
 * may come back as it was before its last attempt, which is the crash
 * window of at-least-once delivery and nothing worse. */
int pst_spool_remove_fast(const char *id);
/* Bytes of the trace block (Received:, Return-Path:) at the top of the
 * message fd[offset..offset+len): where prepended header lines go when
 * the message is written out.  Blocking (one pread of 64 KiB at most). */
off_t pst_spool_trace_len(int fd, off_t offset, off_t len);
/* The header section of an open message (up to its empty line, at most
 * PST_SPOOL_HEADER_MAX bytes of whole lines) copied into pool as
 * m->env.header.  Blocking (one pread): a thread's work.  PST_OK or
 * PST_ERROR (read error, no memory; m->env.header stays empty). */
#define PST_SPOOL_HEADER_MAX     65536
int pst_spool_msg_header(pst_pool_t *pool, pst_spool_msg_t *m);
/* Move a message that cannot be read to corrupt/ (with its state),
 * logging why. */
int pst_spool_corrupt(const char *id, const char *why);
/* Every queue ID, cheaply (directory entries only, no parse).  The
 * callback returns PST_OK to go on, anything else stops the walk (and
 * is returned).  Flat queue/ID files of spool format 2 are moved into
 * queue/XY/ on the way; leftovers of a crash (a state without its
 * message, a temporary state file of a dead process) are removed. */
int pst_spool_walk(int (*cb)(const char *id, void *data), void *data);
/* The same walk one part at a time, for a caller that must not block
 * for long (the queue process from its event loop): part 0 is queue/
 * itself (format 2 files, moved into place), parts 1 to 1024 the
 * directories queue/XY/.  Walked in increasing order the parts report
 * every ID once.  PST_DONE for a part past the last. */
#define PST_SPOOL_WALK_PARTS     (1 + 32 * 32)
int pst_spool_walk_part(unsigned part, int (*cb)(const char *id, void *data),
    void *data);
/* Create and commit a new message (bounces, the injector): message
 * bytes (CRLF lines) with env; durable when PST_OK returns; the new ID
 * is written into id_out (PST_QUEUE_ID_LEN + 1 bytes) and env->id
 * points to it.  Blocking. */
int pst_spool_inject(pst_envelope_t *env, const u_char *msg, size_t len,
    u_char *id_out);
/* A queue file's bytes (header, message, envelope) into fd, fdatasync'ed:
 * PST_OK or PST_ERROR (errno). */
int pst_spool_write_file(int fd, const pst_envelope_t *env,
    const u_char *msg, size_t len);

/*
 * SPOOL/maildrop (pst_spool_maildrop.c): where postern-sendmail leaves
 * a message while Postern does not answer and the spool is not its to
 * write; the queue process takes each one into the spool, at start and
 * while it runs.  Mode 1730, the worker account's, group maildrop_group
 * (postern-sendmail setgid to it): members may create files but not
 * list, read or remove the others'.  A file is a queue file (the same
 * format), written as "t.NAME" and renamed to NAME when complete.
 */
#define PST_SPOOL_MAILDROP       "maildrop"
/* Master: make the directory (mode, owner, group) and let the group
 * through the spool directory. */
int pst_spool_maildrop_prepare(pst_cycle_t *cycle);
/* Injector: write env and msg into the maildrop dir; its NAME into
 * name (at least 40 bytes).  PST_OK, or PST_ERROR with errno. */
int pst_spool_maildrop_put(const char *dir, const pst_envelope_t *env,
    const u_char *msg, size_t len, char *name, size_t size);
/* The Received field of a local submission (the maildrop's pickup,
 * postern-sendmail straight into the spool) into e->prepend. */
int pst_spool_local_received(pst_pool_t *pool, pst_envelope_t *e,
    const char *via, uid_t uid, const char *user);
/* Queue process: file name of the maildrop open as dfd into the spool,
 * as a local submission (its sender, recipients and DSN parameters;
 * the rest, and a Received field with the file's owner, are ours),
 * then removed.  PST_OK (*id_out the queue ID), PST_DECLINED (not
 * complete yet: left), PST_ERROR (*why: not a message, or a file over
 * max bytes (0: no limit), removed; or the spool failed, errno, left for
 * the next scan: PST_AGAIN). */
int pst_spool_maildrop_take(int dfd, const char *name, off_t max,
    u_char *id_out, const char **why);

/* Master: create the directories (owned by the worker account). */
int pst_spool_prepare(pst_cycle_t *cycle);
/* Worker: create SPOOL/tmp/PID for this process (after dropping
 * privileges).  Master: remove the one of a process that exited. */
int pst_spool_process_init(pst_cycle_t *cycle);
void pst_spool_process_gone(pst_cycle_t *cycle, pid_t pid);
/* Remove what no live writer owns from tmp/ (startup: also every file
 * directly in tmp/).  Files removed, or -1 when tmp/ is unreadable. */
long pst_spool_clean_tmp(const char *spool, int startup);
/* Master, at start-up: remove what never got acknowledged in tmp/.
 * The queue itself is not read here (the queue process scans it). */
int pst_spool_recover(pst_cycle_t *cycle);
/* postern queue count|list|show ID|cat ID, and the mutating verbs
 * when the server does not run (pst_queue_offline.c) */
int pst_spool_tool(pst_cycle_t *cycle, int argc, char **argv);
int pst_queue_offline(pst_cycle_t *cycle, int argc, char **argv);
/* pst_spool_json.c: "held", "deferred" or "pending"; the JSON object of
 * a message on stdout */
const char *pst_spool_msg_state(const pst_envelope_t *env);
void pst_spool_json_msg(const pst_spool_msg_t *m);
/* The answer of flush/hold/release/delete: "N\n", or one JSON object;
 * snprintf's return value.  json_arg(): take "--json" out of argv. */
int pst_spool_json_count(char *buf, size_t size, const char *verb,
    const char *target, unsigned long count, int json);
int pst_spool_json_arg(int *argc, char **argv);
/* pst_spool_mailq.c: `list --mailq`, the format of Postfix's mailq */
void pst_spool_mailq_msg(const pst_spool_msg_t *m, pst_uint_t shown);
void pst_spool_mailq_tail(pst_uint_t n, unsigned long long bytes);

#endif /* PST_SPOOL_H */
