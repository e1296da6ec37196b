/*
 * pst_spool_maildrop.c -- SPOOL/maildrop, as Postfix's: where
 * postern-sendmail, run by any local user, leaves a message while
 * Postern does not answer, and where the queue process takes it from
 * into the spool (see pst_spool.h).
 *
 * The directory is mode 1730: the worker account's, group
 * maildrop_group.  postern-sendmail, setgid to that group, may create
 * files in it; nobody but the account may list, read or remove them
 * (the sticky bit keeps a writer from removing another's).  The spool
 * directory lets others through (o+x) so that the group reaches it;
 * what it holds stays closed (queue/, tmp/ are 0750).
 *
 * What a writer leaves is not trusted: only a regular file with one
 * link, not a symbolic link, is read; of its envelope only the sender,
 * the recipients and the DSN parameters are taken, as a local
 * submission would give them; the trace field names the file's owner,
 * which the writer cannot choose.
 */

#include "pst_core.h"
#include "pst_spool.h"

#include <pwd.h>
#include <sys/mman.h>
#include <sys/random.h>

/* an incomplete file ("t.NAME") of a writer that died goes after this */
#define PST_MAILDROP_STALE  86400

static int pst_spool_maildrop_env(pst_pool_t *pool, const pst_envelope_t *in,
    pst_envelope_t *e, const struct stat *st, off_t len);
static int pst_spool_maildrop_bad(int dfd, const char *name, int fd,
    const char **why, const char *what);


int
pst_spool_maildrop_prepare(pst_cycle_t *cycle)
{
    pst_core_conf_t  *ccf = cycle->core;
    char              path[PATH_MAX];
    struct stat       st;
    gid_t             gid;

    snprintf(path, sizeof(path), "%s/" PST_SPOOL_MAILDROP,
             ccf->spool_dir.data);
    if (mkdir(path, 0700) == -1 && errno != EEXIST) {
        pst_log_error(PST_LOG_EMERG, errno, "mkdir(\"%s\") failed", path);
        return PST_ERROR;
    }
    if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
        pst_log_error(PST_LOG_EMERG, errno, "\"%s\" is not a directory",
                      path);
        return PST_ERROR;
    }

    gid = ccf->maildrop_gid != (gid_t) -1 ? ccf->maildrop_gid : ccf->gid;
    if (geteuid() == 0 && (st.st_uid != ccf->uid || st.st_gid != gid)
        && chown(path, ccf->uid, gid) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "chown(\"%s\") failed", path);
        return PST_ERROR;
    }
    if ((st.st_mode & 07777) != 01730 && chmod(path, 01730) == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "chmod(\"%s\") failed", path);
        return PST_ERROR;
    }

    /* the group's way in: through the spool directory, not into it */
    if (ccf->maildrop_gid != (gid_t) -1
        && stat((char *) ccf->spool_dir.data, &st) == 0
        && !(st.st_mode & S_IXOTH)
        && chmod((char *) ccf->spool_dir.data,
                 (st.st_mode & 07777) | S_IXOTH) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "chmod(\"%s\") failed",
                      ccf->spool_dir.data);
        return PST_ERROR;
    }
    return PST_OK;
}


int
pst_spool_maildrop_put(const char *dir, const pst_envelope_t *env,
    const u_char *msg, size_t len, char *name, size_t size)
{
    pst_envelope_t  e = *env;
    unsigned char   rnd[12];
    u_char          qid[PST_QUEUE_ID_LEN + 1];
    char            tmp[PATH_MAX], path[PATH_MAX];
    int             fd, rc, err;
    size_t          i, k;

    if (size < 40 || getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        errno = size < 40 ? EINVAL : errno;
        return PST_ERROR;
    }
    /* time first: the queue process takes them in about that order */
    i = (size_t) snprintf(name, size, "%010lx", (unsigned long) time(NULL));
    for (k = 0; k < sizeof(rnd); k++) {
        i += (size_t) snprintf(name + i, size - i, "%02x", rnd[k]);
    }
    snprintf(tmp, sizeof(tmp), "%s/t.%s", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0644);
    if (fd == -1) {
        return PST_ERROR;
    }
    /* readable by the directory's owner whatever the writer's umask;
     * the directory itself keeps everyone else out */
    /* an ID, as every queue file has; the queue process gives it
     * another when it takes the message in */
    pst_spool_new_id(qid);
    e.id.data = qid;
    e.id.len = PST_QUEUE_ID_LEN;
    rc = fchmod(fd, 0644) == 0 ? pst_spool_write_file(fd, &e, msg, len)
                               : PST_ERROR;
    err = errno;
    if (close(fd) != 0 || rc != PST_OK || rename(tmp, path) != 0) {
        err = rc != PST_OK ? err : errno;
        (void) unlink(tmp);
        errno = err;
        return PST_ERROR;
    }
    return PST_OK;
}


/* The envelope we stand behind: what a local submission gives. */
static int
pst_spool_maildrop_env(pst_pool_t *pool, const pst_envelope_t *in,
    pst_envelope_t *e, const struct stat *st, off_t len)
{
    const pst_env_rcpt_t  *r;
    pst_env_rcpt_t        *o;
    struct passwd          pw, *pwp = NULL;
    char                   buf[1024];
    size_t                 i;

    if (pst_envelope_init(pool, e) != PST_OK || in->rcpts == NULL
        || in->rcpts->nelts == 0)
    {
        return PST_ERROR;
    }
    e->sender = in->sender;
    pst_str_set(&e->protocol, "local");
    pst_str_set(&e->client_name, "localhost");
    e->smtputf8 = in->smtputf8 ? 1 : 0;
    e->size = (int64_t) len;
    if (in->body.len == 8
        && strncasecmp((char *) in->body.data, "8BITMIME", 8) == 0)
    {
        pst_str_set(&e->body, "8BITMIME");
    }
    if ((in->ret.len == 4 && strncasecmp((char *) in->ret.data, "FULL", 4)
         == 0)
        || (in->ret.len == 4
            && strncasecmp((char *) in->ret.data, "HDRS", 4) == 0))
    {
        e->ret = in->ret;
    }
    if (in->envid.len <= 100) {
        e->envid = in->envid;
    }
    r = in->rcpts->elts;
    for (i = 0; i < in->rcpts->nelts; i++) {
        o = pst_envelope_add_rcpt(pool, e, r[i].addr.data, r[i].addr.len);
        if (o == NULL) {
            return PST_ERROR;
        }
        o->notify = r[i].notify & (PST_NOTIFY_NEVER | PST_NOTIFY_SUCCESS
                                   | PST_NOTIFY_FAILURE | PST_NOTIFY_DELAY);
        o->orcpt = r[i].orcpt;
    }

    /* the trace: the file's owner, not what the file says */
    (void) getpwuid_r(st->st_uid, &pw, buf, sizeof(buf), &pwp);
    return pst_spool_local_received(pool, e, "postern-sendmail via the"
                                    " maildrop", st->st_uid,
                                    pwp ? pwp->pw_name : NULL);
}


/* The trace field of a local submission, as the SMTP path would have
 * had one: "Received: by HOST (VIA, uid UID USER); DATE", first in
 * e->prepend. */
int
pst_spool_local_received(pst_pool_t *pool, pst_envelope_t *e,
    const char *via, uid_t uid, const char *user)
{
    pst_str_t  *h;
    u_char      date[64];
    char        host[256], *line;
    size_t      n;

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    n = pst_rfc5322_date(time(NULL), date, sizeof(date));
    line = pst_palloc(pool, 512);
    h = pst_array_push(e->prepend);
    if (line == NULL || h == NULL) {
        return PST_ERROR;
    }
    h->len = (size_t) snprintf(line, 512, "Received: by %.200s (%s, uid"
                               " %ld%s%.32s);\r\n\t%.*s\r\n", host, via,
                               (long) uid, user ? " " : "",
                               user ? user : "", (int) n, date);
    h->data = (u_char *) line;
    return PST_OK;
}


/* What is not a message is removed (it would be read again forever). */
static int
pst_spool_maildrop_bad(int dfd, const char *name, int fd, const char **why,
    const char *what)
{
    if (fd != -1) {
        close(fd);
    }
    (void) unlinkat(dfd, name, 0);
    *why = what;
    return PST_ERROR;
}


int
pst_spool_maildrop_take(int dfd, const char *name, off_t max,
    u_char *id_out, const char **why)
{
    pst_envelope_t   in, e;
    struct stat      st;
    pst_pool_t      *pool;
    off_t            off, len;
    void            *p;
    int              fd, rc;

    if (strncmp(name, "t.", 2) == 0) {
        /* being written, or left by a writer that died */
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
            && st.st_mtime + PST_MAILDROP_STALE < time(NULL))
        {
            return pst_spool_maildrop_bad(dfd, name, -1, why,
                                          "incomplete for a day");
        }
        return PST_DECLINED;
    }
    if (name[0] == '.' || strchr(name, '.') != NULL) {
        return PST_DECLINED;    /* ".", "..", an older postern-send queue */
    }

    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ELOOP) {
            return pst_spool_maildrop_bad(dfd, name, -1, why,
                                          "a symbolic link");
        }
        *why = strerror(errno);
        return errno == ENOENT ? PST_DECLINED : PST_AGAIN;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        return pst_spool_maildrop_bad(dfd, name, fd, why,
                                      "not a regular file");
    }
    if (st.st_nlink != 1) {
        return pst_spool_maildrop_bad(dfd, name, fd, why,
                                      "a file with another link");
    }
    if (max > 0 && st.st_size > max) {
        /* a local user may not fill the spool's disk (Postfix's pickup
         * applies message_size_limit too) */
        return pst_spool_maildrop_bad(dfd, name, fd, why,
                                      "larger than message_size_limit");
    }

    pool = pst_create_pool(8192);
    if (pool == NULL) {
        close(fd);
        *why = "out of memory";
        return PST_AGAIN;
    }
    if (pst_spool_read_fd(pool, fd, &in, &off, &len, why) != PST_OK) {
        pst_destroy_pool(pool);
        return pst_spool_maildrop_bad(dfd, name, fd, why, *why);
    }
    if (pst_spool_maildrop_env(pool, &in, &e, &st, len) != PST_OK) {
        pst_destroy_pool(pool);
        return pst_spool_maildrop_bad(dfd, name, fd, why,
                                      "not a message with recipients");
    }

    rc = PST_AGAIN;
    p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
        if (pst_spool_inject(&e, (u_char *) p + off, (size_t) len, id_out)
            == PST_OK)
        {
            rc = PST_OK;
        }
        munmap(p, (size_t) st.st_size);
    }
    if (rc == PST_OK) {
        (void) unlinkat(dfd, name, 0);
    } else {
        *why = strerror(errno);
    }
    pst_destroy_pool(pool);
    close(fd);
    return rc;
}
