/*
 * pst_spool_msg.c -- committed messages: where they live (queue/XY/ID),
 * opening one with its delivery state, replacing that state atomically,
 * removing, walking, injecting (see pst_spool.h, docs/SPOOL.md).
 *
 * The queue file never changes after its commit.  The delivery state
 * lives beside it in XY/ID.state, replaced as a whole: written to a new
 * file, fsynced, renamed over the old one, the directory fsynced.  A
 * rename is atomic, so a reader sees the old state or the new one.
 */

#include "pst_core.h"
#include "pst_spool.h"

#define PST_SPOOL_NEW_TAG   ".state-new-"
#define PST_SPOOL_TRIES     8

static unsigned  pst_spool_serial;


static int pst_spool_subdir(char *buf, size_t size, const char *sub);
static int pst_spool_open_queue(void);
static int pst_spool_open_sub(int qfd, const char *id, int create);
static int pst_spool_mksub(int qfd, const char *xy);
static void pst_spool_own_fd(int fd);
static int pst_spool_write_all(int fd, const void *p, size_t n);
static int pst_spool_fsync_dir(int dfd);
static int pst_spool_state_read(pst_pool_t *pool, int sfd, const char *id,
    pst_envelope_t *env, const char **why);
static int pst_spool_upgrade(int qfd, const char *id);
static int pst_spool_walk_flat(int qfd, int (*cb)(const char *, void *),
    void *data);
static int pst_spool_walk_sub(int qfd, const char *xy,
    int (*cb)(const char *, void *), void *data);
static void pst_spool_tidy(int qfd, int dfd, const char *name);
static int pst_spool_inject_file(int tfd, const char *tmp,
    pst_envelope_t *env, const u_char *msg, size_t len);


/* SPOOL/sub into buf */
static int
pst_spool_subdir(char *buf, size_t size, const char *sub)
{
    const pst_str_t  *d = pst_spool_dir();
    int               n;

    if (d == NULL) {
        errno = EINVAL;
        return PST_ERROR;
    }
    n = snprintf(buf, size, "%s/%s", d->data, sub);
    if (n < 0 || (size_t) n >= size) {
        errno = ENAMETOOLONG;
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_spool_queue_name(char *buf, size_t size, const char *id)
{
    if (!pst_spool_valid_id((const u_char *) id, strlen(id))
        || size < PST_SPOOL_NAME_LEN + 1)
    {
        return PST_ERROR;
    }

    buf[0] = id[PST_QUEUE_ID_LEN - 2];
    buf[1] = id[PST_QUEUE_ID_LEN - 1];
    buf[2] = '/';
    memcpy(buf + 3, id, PST_QUEUE_ID_LEN + 1);
    return PST_OK;
}


int
pst_spool_path(char *buf, size_t size, const char *id)
{
    char  name[PST_SPOOL_NAME_LEN + 1], sub[PST_SPOOL_NAME_LEN + 8];

    if (pst_spool_queue_name(name, sizeof(name), id) != PST_OK) {
        return PST_ERROR;
    }
    snprintf(sub, sizeof(sub), "queue/%s", name);
    return pst_spool_subdir(buf, size, sub);
}


static int
pst_spool_open_queue(void)
{
    char  path[PATH_MAX];

    if (pst_spool_subdir(path, sizeof(path), "queue") != PST_OK) {
        return -1;
    }
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}


/* queue/XY of id, created when asked and missing; -1 and errno. */
static int
pst_spool_open_sub(int qfd, const char *id, int create)
{
    char  xy[3];
    int   fd;

    xy[0] = id[PST_QUEUE_ID_LEN - 2];
    xy[1] = id[PST_QUEUE_ID_LEN - 1];
    xy[2] = '\0';

    fd = openat(qfd, xy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT && create
        && pst_spool_mksub(qfd, xy) == PST_OK)
    {
        fd = openat(qfd, xy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    return fd;
}


/* Create queue/XY durably, owned by the worker account. */
static int
pst_spool_mksub(int qfd, const char *xy)
{
    if (mkdirat(qfd, xy, 0750) == -1) {
        return errno == EEXIST ? PST_OK : PST_ERROR;
    }
    if (geteuid() == 0 && pst_cycle != NULL
        && fchownat(qfd, xy, pst_cycle->core->uid, pst_cycle->core->gid, 0)
           == -1)
    {
        return PST_ERROR;
    }
    return pst_spool_fsync_dir(qfd);
}


/* `postern queue` may run as root: what it creates stays the
 * worker account's. */
static void
pst_spool_own_fd(int fd)
{
    if (geteuid() == 0 && pst_cycle != NULL) {
        (void) !fchown(fd, pst_cycle->core->uid, pst_cycle->core->gid);
    }
}


static int
pst_spool_write_all(int fd, const void *p, size_t n)
{
    const u_char  *b = p;
    ssize_t        w;

    while (n > 0) {
        w = write(fd, b, n);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return PST_ERROR;
        }
        b += w;
        n -= (size_t) w;
    }
    return PST_OK;
}


static int
pst_spool_fsync_dir(int dfd)
{
    /* some file systems cannot fsync a directory: nothing to wait for */
    if (fsync(dfd) == -1 && errno != EINVAL && errno != EROFS) {
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_spool_queue_rename(int from_dirfd, const char *from, int queue_fd,
    const char *id)
{
    char  name[PST_SPOOL_NAME_LEN + 1];

    if (pst_spool_queue_name(name, sizeof(name), id) != PST_OK) {
        return EINVAL;
    }
    if (renameat(from_dirfd, from, queue_fd, name) == 0) {
        return 0;
    }
    if (errno == ENOENT) {
        /* the first message of this XY, or someone removed it */
        name[2] = '\0';
        if (pst_spool_mksub(queue_fd, name) != PST_OK) {
            return errno;
        }
        name[2] = '/';
        if (renameat(from_dirfd, from, queue_fd, name) == 0) {
            return 0;
        }
    }
    return errno;
}


/* ------------------------------------------------------------------ */
/* Opening a message                                                   */

/* Apply XY/ID.state, when there is one, to env. */
static int
pst_spool_state_read(pst_pool_t *pool, int sfd, const char *id,
    pst_envelope_t *env, const char **why)
{
    char         name[PST_QUEUE_ID_LEN + sizeof(PST_SPOOL_STATE_SUFFIX)];
    struct stat  st;
    u_char      *text;
    ssize_t      n;
    int          fd;

    snprintf(name, sizeof(name), "%s" PST_SPOOL_STATE_SUFFIX, id);
    fd = openat(sfd, name, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ENOENT) {
            return PST_OK;          /* never tried: the envelope's own */
        }
        *why = strerror(errno);
        return PST_AGAIN;
    }

    if (fstat(fd, &st) == -1 || st.st_size > PST_ENVELOPE_MAX) {
        close(fd);
        *why = "state file too large";
        return PST_ERROR;
    }

    text = pst_palloc(pool, (size_t) st.st_size + 1);
    if (text == NULL) {
        close(fd);
        *why = "out of memory";
        return PST_AGAIN;
    }
    n = pread(fd, text, (size_t) st.st_size, 0);
    close(fd);
    if (n != (ssize_t) st.st_size) {
        *why = "cannot read the state file";
        return PST_AGAIN;
    }

    return pst_envelope_parse_state(pool, text, (size_t) n, env, why);
}


int
pst_spool_msg_open(pst_pool_t *pool, const char *id, pst_spool_msg_t *m,
    const char **why)
{
    char  path[PATH_MAX];
    int   qfd, sfd, rc;

    memset(m, 0, sizeof(pst_spool_msg_t));
    m->fd = -1;

    if (!pst_spool_valid_id((const u_char *) id, strlen(id))) {
        *why = "not a queue ID";
        return PST_DECLINED;
    }

    qfd = pst_spool_open_queue();
    if (qfd == -1) {
        *why = strerror(errno);
        return PST_AGAIN;
    }

    snprintf(path, sizeof(path), "%c%c/%s", id[PST_QUEUE_ID_LEN - 2],
             id[PST_QUEUE_ID_LEN - 1], id);
    m->fd = openat(qfd, path, O_RDONLY | O_CLOEXEC);
    if (m->fd == -1 && errno == ENOENT) {
        /* format 2, not moved into queue/XY/ yet */
        m->fd = openat(qfd, id, O_RDONLY | O_CLOEXEC);
    }
    if (m->fd == -1) {
        rc = errno;
        close(qfd);
        *why = strerror(rc);
        return rc == ENOENT ? PST_DECLINED : PST_AGAIN;
    }

    rc = pst_spool_read_fd(pool, m->fd, &m->env, &m->msg_offset,
                           &m->msg_len, why);
    if (rc == PST_OK && (m->env.id.len != PST_QUEUE_ID_LEN
                         || memcmp(m->env.id.data, id, PST_QUEUE_ID_LEN)))
    {
        *why = "envelope of another message";
        rc = PST_ERROR;
    }

    if (rc == PST_OK) {
        sfd = pst_spool_open_sub(qfd, id, 0);
        if (sfd != -1) {
            rc = pst_spool_state_read(pool, sfd, id, &m->env, why);
            close(sfd);
        }
    }

    close(qfd);
    if (rc != PST_OK) {
        pst_spool_msg_close(m);
    }
    return rc;
}


void
pst_spool_msg_close(pst_spool_msg_t *m)
{
    if (m->fd != -1) {
        close(m->fd);
        m->fd = -1;
    }
}


int
pst_spool_msg_header(pst_pool_t *pool, pst_spool_msg_t *m)
{
    u_char   *buf, *p, *end, *nl;
    ssize_t   n;

    buf = malloc(PST_SPOOL_HEADER_MAX);
    if (buf == NULL) {
        return PST_ERROR;
    }
    n = pread(m->fd, buf, (size_t) pst_min(m->msg_len,
                                           (off_t) PST_SPOOL_HEADER_MAX),
              m->msg_offset);
    if (n < 0) {
        free(buf);
        return PST_ERROR;
    }

    /* whole lines up to the empty one (or as many as were read) */
    end = buf;
    for (p = buf; p < buf + n; p = nl + 1) {
        if (*p == '\n' || (*p == '\r' && p + 1 < buf + n && p[1] == '\n')) {
            break;
        }
        nl = memchr(p, '\n', (size_t) (buf + n - p));
        if (nl == NULL) {
            break;
        }
        end = nl + 1;
    }

    m->env.header.len = (size_t) (end - buf);
    m->env.header.data = pst_palloc(pool, m->env.header.len + 1);
    if (m->env.header.data == NULL) {
        m->env.header.len = 0;
        free(buf);
        return PST_ERROR;
    }
    memcpy(m->env.header.data, buf, m->env.header.len);
    m->env.header.data[m->env.header.len] = '\0';
    free(buf);
    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Delivery state                                                      */

static int pst_spool_state_put(const pst_envelope_t *env, int sync_dir);
static int pst_spool_unlink(const char *id, int ordered);


int
pst_spool_state_write(const pst_envelope_t *env)
{
    return pst_spool_state_put(env, 1);
}


int
pst_spool_release_write(const pst_envelope_t *env)
{
    return pst_spool_state_put(env, 0);
}


static int
pst_spool_state_put(const pst_envelope_t *env, int sync_dir)
{
    pst_buf_t  *b;
    char        id[PST_QUEUE_ID_LEN + 1], tmp[64], name[32];
    int         qfd, sfd = -1, fd = -1, rc = PST_ERROR, err;

    if (!pst_spool_valid_id(env->id.data, env->id.len)) {
        errno = EINVAL;
        return PST_ERROR;
    }
    memcpy(id, env->id.data, PST_QUEUE_ID_LEN);
    id[PST_QUEUE_ID_LEN] = '\0';

    if (pst_envelope_write_state(env, &b) != PST_OK) {
        errno = ENOMEM;
        return PST_ERROR;
    }

    snprintf(name, sizeof(name), "%s" PST_SPOOL_STATE_SUFFIX, id);
    snprintf(tmp, sizeof(tmp), "%s" PST_SPOOL_NEW_TAG "%d-%u", id,
             (int) getpid(),
             __atomic_fetch_add(&pst_spool_serial, 1, __ATOMIC_RELAXED));

    qfd = pst_spool_open_queue();
    if (qfd != -1) {
        sfd = pst_spool_open_sub(qfd, id, 1);
    }
    if (sfd != -1) {
        fd = openat(sfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    0640);
    }

    if (fd != -1) {
        pst_spool_own_fd(fd);
        if (pst_spool_write_all(fd, b->pos, pst_buf_size(b)) == PST_OK
            && fdatasync(fd) == 0)
        {
            rc = PST_OK;
        }
        if (close(fd) == -1) {
            rc = PST_ERROR;
        }
        /* the new state in place, and the rename durable */
        if (rc != PST_OK || renameat(sfd, tmp, sfd, name) == -1
            || (sync_dir && pst_spool_fsync_dir(sfd) != PST_OK))
        {
            err = errno;
            (void) unlinkat(sfd, tmp, 0);
            errno = err;
            rc = PST_ERROR;
        }
    }

    err = errno;
    pst_buf_destroy(b);
    if (sfd != -1) {
        close(sfd);
    }
    if (qfd != -1) {
        close(qfd);
    }
    errno = err;
    return rc;
}


/* ------------------------------------------------------------------ */
/* Removing                                                            */

int
pst_spool_remove(const char *id)
{
    return pst_spool_unlink(id, 1);
}


int
pst_spool_remove_fast(const char *id)
{
    return pst_spool_unlink(id, 0);
}


static int
pst_spool_unlink(const char *id, int ordered)
{
    char  name[PST_QUEUE_ID_LEN + sizeof(PST_SPOOL_STATE_SUFFIX)];
    int   qfd, sfd, gone = 0, err = 0;

    if (!pst_spool_valid_id((const u_char *) id, strlen(id))) {
        errno = EINVAL;
        return PST_ERROR;
    }

    qfd = pst_spool_open_queue();
    if (qfd == -1) {
        return PST_ERROR;
    }
    sfd = pst_spool_open_sub(qfd, id, 0);

    /* the message first and durably: a crash then leaves at most a
     * state without a message (the walk removes it), never a message
     * without its state (it would be delivered again) */
    if (sfd != -1 && unlinkat(sfd, id, 0) == 0) {
        gone = !ordered || pst_spool_fsync_dir(sfd) == PST_OK;
    } else if (sfd != -1 && errno != ENOENT) {
        gone = 0;
    } else if (unlinkat(qfd, id, 0) == 0 || errno == ENOENT) {
        /* format 2, not moved into queue/XY/ yet; or gone already */
        gone = !ordered || pst_spool_fsync_dir(qfd) == PST_OK;
    }
    err = errno;

    if (gone && sfd != -1) {
        snprintf(name, sizeof(name), "%s" PST_SPOOL_STATE_SUFFIX, id);
        (void) unlinkat(sfd, name, 0);
    }

    if (sfd != -1) {
        close(sfd);
    }
    close(qfd);
    errno = err;
    return gone ? PST_OK : PST_ERROR;
}


int
pst_spool_corrupt(const char *id, const char *why)
{
    char  from[PATH_MAX], to[PATH_MAX], sub[64];
    int   i, rc = PST_ERROR;

    if (!pst_spool_valid_id((const u_char *) id, strlen(id))) {
        return PST_ERROR;
    }

    pst_log_error(PST_LOG_ALERT, 0, "spool: moving %s to corrupt/: %s", id,
                  why);

    /* queue/XY/ID or queue/ID, then queue/XY/ID.state */
    for (i = 0; i < 3; i++) {
        if (i == 1) {
            snprintf(sub, sizeof(sub), "queue/%s", id);
        } else {
            snprintf(sub, sizeof(sub), "queue/%c%c/%s%s",
                     id[PST_QUEUE_ID_LEN - 2], id[PST_QUEUE_ID_LEN - 1], id,
                     i == 2 ? PST_SPOOL_STATE_SUFFIX : "");
        }
        if (pst_spool_subdir(from, sizeof(from), sub) != PST_OK) {
            return PST_ERROR;
        }
        snprintf(sub, sizeof(sub), "corrupt/%s%s", id,
                 i == 2 ? PST_SPOOL_STATE_SUFFIX : "");
        if (pst_spool_subdir(to, sizeof(to), sub) != PST_OK) {
            return PST_ERROR;
        }
        if (rename(from, to) == 0) {
            rc = PST_OK;
        } else if (errno != ENOENT) {
            pst_log_error(PST_LOG_ALERT, errno, "rename(%s) failed", from);
        }
    }

    return rc;
}


/* ------------------------------------------------------------------ */
/* Walking the queue                                                   */

/* queue/ID (format 2) -> queue/XY/ID: link, fsync XY, unlink. */
static int
pst_spool_upgrade(int qfd, const char *id)
{
    struct stat  a, b;
    char         name[PST_SPOOL_NAME_LEN + 1];
    int          sfd;

    if (pst_spool_queue_name(name, sizeof(name), id) != PST_OK) {
        return PST_ERROR;
    }

    sfd = pst_spool_open_sub(qfd, id, 1);
    if (sfd == -1) {
        return PST_ERROR;
    }

    /* link, not rename: never replaces a file already in place */
    if (linkat(qfd, id, qfd, name, 0) == -1) {
        if (errno != EEXIST) {
            close(sfd);
            return PST_ERROR;
        }
        if (fstatat(qfd, id, &a, AT_SYMLINK_NOFOLLOW) == -1
            || fstatat(qfd, name, &b, AT_SYMLINK_NOFOLLOW) == -1
            || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        {
            /* two files with one ID: not ours to choose */
            pst_log_error(PST_LOG_ALERT, 0, "spool: queue/%s and queue/%s"
                          " are different files; queue/%s left alone", id,
                          name, id);
            close(sfd);
            return PST_DECLINED;
        }
        /* one file, two names: a move that a crash interrupted */
    }

    if (pst_spool_fsync_dir(sfd) != PST_OK || unlinkat(qfd, id, 0) == -1) {
        close(sfd);
        return PST_ERROR;
    }

    close(sfd);
    return PST_OK;
}


static int
pst_spool_walk_flat(int qfd, int (*cb)(const char *, void *), void *data)
{
    struct dirent  *de;
    struct stat     st;
    DIR            *d;
    int             fd, moved = 0, rc = PST_OK;

    fd = dup(qfd);
    d = fd == -1 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd != -1) {
            close(fd);
        }
        return PST_ERROR;
    }
    rewinddir(d);       /* a dup shares the offset of qfd */

    while (rc == PST_OK && (de = readdir(d)) != NULL) {
        if (!pst_spool_valid_id((u_char *) de->d_name, strlen(de->d_name))
            || fstatat(qfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISREG(st.st_mode))
        {
            continue;
        }

        rc = pst_spool_upgrade(qfd, de->d_name);
        if (rc == PST_OK) {
            moved++;        /* the walk of queue/XY/ reports it */
        }
        if (rc != PST_ERROR) {
            rc = PST_OK;
            continue;
        }

        /* cannot move it (read-only spool, a tool without rights): it
         * is still a message, read where it is */
        rc = cb(de->d_name, data);
    }

    closedir(d);

    if (moved) {
        (void) pst_spool_fsync_dir(qfd);
        pst_log_error(PST_LOG_NOTICE, 0, "spool: moved %d message(s) of"
                      " format 2 into queue/XY/", moved);
    }

    return rc;
}


/* A file in queue/XY/ that is not a message: a state whose message is
 * gone (a crash in pst_spool_remove()) or a new state of a process that
 * died before its rename.  Removed; anything else is left alone. */
static void
pst_spool_tidy(int qfd, int dfd, const char *name)
{
    char          id[PST_QUEUE_ID_LEN + 1];
    const char   *rest;
    struct stat   st;
    long          pid;

    if (strlen(name) <= PST_QUEUE_ID_LEN
        || !pst_spool_valid_id((const u_char *) name, PST_QUEUE_ID_LEN))
    {
        return;
    }
    memcpy(id, name, PST_QUEUE_ID_LEN);
    id[PST_QUEUE_ID_LEN] = '\0';
    rest = name + PST_QUEUE_ID_LEN;

    if (strcmp(rest, PST_SPOOL_STATE_SUFFIX) == 0) {
        /* its message is in queue/XY/ or, not moved yet, in queue/ */
        if (fstatat(dfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1
            && errno == ENOENT
            && fstatat(qfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1
            && errno == ENOENT)
        {
            (void) unlinkat(dfd, name, 0);
        }
        return;
    }

    if (strncmp(rest, PST_SPOOL_NEW_TAG, sizeof(PST_SPOOL_NEW_TAG) - 1)
        == 0)
    {
        pid = strtol(rest + sizeof(PST_SPOOL_NEW_TAG) - 1, NULL, 10);
        if (pid > 0 && pid != (long) getpid()
            && kill((pid_t) pid, 0) == -1 && errno == ESRCH)
        {
            (void) unlinkat(dfd, name, 0);
        }
    }
}


static int
pst_spool_walk_sub(int qfd, const char *xy, int (*cb)(const char *, void *),
    void *data)
{
    struct dirent  *de;
    DIR            *d;
    int             fd, rc = PST_OK;

    fd = openat(qfd, xy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    d = fd == -1 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd != -1) {
            close(fd);
        }
        return PST_OK;      /* removed meanwhile, or not a directory */
    }

    while (rc == PST_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (pst_spool_valid_id((u_char *) de->d_name, strlen(de->d_name))) {
            rc = cb(de->d_name, data);
        } else {
            pst_spool_tidy(qfd, dirfd(d), de->d_name);
        }
    }

    closedir(d);
    return rc;
}


int
pst_spool_walk_part(unsigned part, int (*cb)(const char *id, void *data),
    void *data)
{
    static const char  b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
    char               xy[3];
    int                qfd, rc;

    if (part >= PST_SPOOL_WALK_PARTS) {
        return PST_DONE;
    }

    qfd = pst_spool_open_queue();
    if (qfd == -1) {
        return PST_ERROR;
    }

    if (part == 0) {
        /* the flat files of format 2, moved into place first, so that
         * the parts after this one see each file once */
        rc = pst_spool_walk_flat(qfd, cb, data);
    } else {
        xy[0] = b32[(part - 1) >> 5];
        xy[1] = b32[(part - 1) & 31];
        xy[2] = '\0';
        rc = pst_spool_walk_sub(qfd, xy, cb, data);
    }

    close(qfd);
    return rc;
}


int
pst_spool_walk(int (*cb)(const char *id, void *data), void *data)
{
    unsigned  part;
    int       rc = PST_OK;

    for (part = 0; rc == PST_OK && part < PST_SPOOL_WALK_PARTS; part++) {
        rc = pst_spool_walk_part(part, cb, data);
    }
    return rc;
}


/* ------------------------------------------------------------------ */
/* Injecting                                                           */

/* tmp: header, message, envelope; synced. */
static int
pst_spool_inject_file(int tfd, const char *tmp, pst_envelope_t *env,
    const u_char *msg, size_t len)
{
    int  fd, rc = PST_ERROR;

    fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd != -1) {
        pst_spool_own_fd(fd);
        rc = pst_spool_write_file(fd, env, msg, len);
        close(fd);
    }
    return rc;
}


int
pst_spool_write_file(int fd, const pst_envelope_t *env, const u_char *msg,
    size_t len)
{
    u_char      hdr[PST_SPOOL_HEADER_LEN];
    pst_buf_t  *b;
    int         rc = PST_ERROR;

    if (pst_envelope_write(env, &b) != PST_OK) {
        errno = ENOMEM;
        return PST_ERROR;
    }
    pst_spool_header(hdr, (off_t) len, pst_buf_size(b));
    if (pst_spool_write_all(fd, hdr, sizeof(hdr)) == PST_OK
        && pst_spool_write_all(fd, msg, len) == PST_OK
        && pst_spool_write_all(fd, b->pos, pst_buf_size(b)) == PST_OK
        && fdatasync(fd) == 0)
    {
        rc = PST_OK;
    }
    pst_buf_destroy(b);
    return rc;
}


int
pst_spool_inject(pst_envelope_t *env, const u_char *msg, size_t len,
    u_char *id_out)
{
    const pst_str_t  *own = pst_spool_tmp_dir();
    char              path[PATH_MAX], tmp[64], name[PST_SPOOL_NAME_LEN + 1];
    int               tfd, qfd, sfd, i, rc = PST_ERROR, err = 0;

    if (env->rcpts == NULL || env->rcpts->nelts == 0) {
        errno = EINVAL;
        return PST_ERROR;
    }

    /* writers write only inside their own tmp/PID/ (start-up removes
     * anything else in tmp/): this process's, made here if it has none
     * (a tool, the queue process) */
    if (own != NULL) {
        snprintf(path, sizeof(path), "%s", own->data);
    } else {
        snprintf(tmp, sizeof(tmp), "tmp/%d", (int) getpid());
        if (pst_spool_subdir(path, sizeof(path), tmp) != PST_OK
            || (mkdir(path, 0750) == -1 && errno != EEXIST))
        {
            return PST_ERROR;
        }
    }
    tfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    qfd = pst_spool_open_queue();

    for (i = 0; i < PST_SPOOL_TRIES && tfd != -1 && qfd != -1; i++) {
        pst_spool_new_id(id_out);
        env->id.data = id_out;
        env->id.len = PST_QUEUE_ID_LEN;
        if (env->arrival_sec == 0) {
            pst_spool_id_time(id_out, &env->arrival_sec, &env->arrival_usec);
        }

        snprintf(tmp, sizeof(tmp), "inject-%u",
                 __atomic_fetch_add(&pst_spool_serial, 1, __ATOMIC_RELAXED));
        if (pst_spool_inject_file(tfd, tmp, env, msg, len) != PST_OK) {
            err = errno;
            (void) unlinkat(tfd, tmp, 0);
            break;
        }

        /* link, not rename: an ID already queued is never replaced */
        sfd = pst_spool_open_sub(qfd, (char *) id_out, 1);
        (void) pst_spool_queue_name(name, sizeof(name), (char *) id_out);
        if (sfd != -1 && linkat(tfd, tmp, qfd, name, 0) == 0) {
            rc = pst_spool_fsync_dir(sfd);
        }
        err = errno;
        (void) unlinkat(tfd, tmp, 0);
        if (sfd != -1) {
            close(sfd);
        }
        if (rc == PST_OK || err != EEXIST) {
            break;
        }
    }

    if (tfd != -1) {
        close(tfd);
    }
    if (qfd != -1) {
        close(qfd);
    }
    errno = err;
    return rc;
}


/*
 * The length of the trace block at the top of a stored message: its
 * Received: and Return-Path: fields with their continuation lines, ours
 * first.  Header fields that hooks added (the envelope's prepend lines)
 * go below it whenever the message is written out, so that trace fields
 * stay on top (RFC 5321 4.4).  Looked for in the first 64 KiB; a field
 * cut by that window ends the block before it.
 */
off_t
pst_spool_trace_len(int fd, off_t offset, off_t len)
{
    u_char    buf[65536], *p, *end, *nl;
    ssize_t   n;
    int       trace = 0;

    n = pread(fd, buf, (size_t) pst_min(len, (off_t) sizeof(buf)), offset);
    if (n <= 0) {
        return 0;
    }
    for (p = buf, end = buf + n; p < end; p = nl + 1) {
        if (*p == ' ' || *p == '\t') {
            if (!trace) {
                break;
            }
        } else if (((size_t) (end - p) >= 9
                    && pst_strncasecmp(p, (u_char *) "Received:", 9) == 0)
                   || ((size_t) (end - p) >= 12
                       && pst_strncasecmp(p, (u_char *) "Return-Path:", 12)
                          == 0))
        {
            trace = 1;
        } else {
            break;                      /* the first other field */
        }
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            break;
        }
    }
    return (off_t) (p - buf);
}
