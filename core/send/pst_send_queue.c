/*
 * pst_send_queue.c -- postern-send --queue DIR and --process-queue DIR.
 *
 * One queued message is two files in DIR:
 *
 *   ID.eml   the message (CRLF), written first, never changed
 *   ID.env   its envelope, one item a line ("postern-send-queue 1",
 *            "sender ADDR", "rcpt ADDR"..., "eightbit 0|1", "smtputf8",
 *            "hdr8" (8-bit octets in the header),
 *            "notify", "ret", "envid"); written last: its presence
 *            means "queued"
 *   ID.err   the reason of the last failed try (informational)
 *   ID.sent  (--keep) the envelope of a message every recipient took
 *   ID.failed  the envelope of a finished message some recipients
 *            refused for good ("refused ADDR CODE TEXT" lines), kept
 *            with ID.eml for a human; never sent again
 *
 * Each file is written under a temporary name, fsynced, and renamed.
 * A run takes an exclusive flock() on ID.eml (non-blocking: a message
 * another run holds is skipped) and, once it holds it, checks that
 * ID.env still exists -- the run before may have sent and removed it
 * while this one waited.  Sent: ID.env is removed first, then ID.eml
 * (--keep: ID.env becomes ID.sent).  Some recipients deferred: ID.env
 * is rewritten with only them, ID.err gets the reason.  The envelope's
 * text never holds CR or LF: addresses cannot, reply texts are made
 * one line.
 */

#include "pst_send.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#define PST_SEND_QMAGIC  "postern-send-queue 1"

static int pst_send_mkdirs(const char *dir);
static int pst_send_qwrite(const char *dir, const char *name,
    const char *data, size_t n, int srcfd, off_t len);
static int pst_send_qenv(char **out, const pst_send_opts_t *o,
    const pst_send_env_t *env, const pst_send_list_t *rcpts);
static int pst_send_qlock(const char *dir, const char *id, int verbose);
static int pst_send_qone(const pst_send_opts_t *o, const char *dir,
    const char *id);
static int pst_send_qparse(FILE *f, pst_send_env_t *env,
    pst_send_opts_t *o);
static int pst_send_qdone(const pst_send_opts_t *o, const char *dir,
    const char *id, pst_send_env_t *env, pst_send_job_t *job, int rc);


/* mkdir -p */
static int
pst_send_mkdirs(const char *dir)
{
    char  path[4096], *p;

    snprintf(path, sizeof(path), "%s", dir);
    for (p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                return PST_ERROR;
            }
            *p = '/';
        }
    }
    return mkdir(path, 0700) == 0 || errno == EEXIST ? PST_OK : PST_ERROR;
}


/* Write data (or len bytes of srcfd) to dir/name durably. */
static int
pst_send_qwrite(const char *dir, const char *name, const char *data,
    size_t n, int srcfd, off_t len)
{
    char     tmp[4096], path[4096], buf[65536];
    ssize_t  k;
    off_t    off = 0;
    int      fd, rc = PST_OK;

    snprintf(tmp, sizeof(tmp), "%s/.tmp.%s", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        return PST_ERROR;
    }
    if (data != NULL && write(fd, data, n) != (ssize_t) n) {
        rc = PST_ERROR;
    }
    while (rc == PST_OK && data == NULL && off < len) {
        k = pread(srcfd, buf, sizeof(buf), off);
        if (k <= 0 || write(fd, buf, (size_t) k) != k) {
            rc = PST_ERROR;
            break;
        }
        off += k;
    }
    if (rc == PST_OK && fsync(fd) != 0) {
        rc = PST_ERROR;
    }
    if (close(fd) != 0 || rc != PST_OK || rename(tmp, path) != 0) {
        unlink(tmp);
        return PST_ERROR;
    }
    return PST_OK;
}


static int
pst_send_qenv(char **out, const pst_send_opts_t *o,
    const pst_send_env_t *env, const pst_send_list_t *rcpts)
{
    size_t   size, i;
    FILE    *f;

    f = open_memstream(out, &size);
    if (f == NULL) {
        return PST_ERROR;
    }
    fprintf(f, "%s\nsender %s\neightbit %d\nsmtputf8 %d\nhdr8 %d\n",
            PST_SEND_QMAGIC, env->sender ? env->sender : "", env->eightbit,
            env->smtputf8, env->hdr8);
    if (o->notify != NULL) {
        fprintf(f, "notify %s\n", o->notify);
    }
    if (o->ret != NULL) {
        fprintf(f, "ret %s\n", o->ret);
    }
    if (o->envid != NULL && strpbrk(o->envid, "\r\n") == NULL) {
        fprintf(f, "envid %s\n", o->envid);
    }
    for (i = 0; i < rcpts->n; i++) {
        fprintf(f, "rcpt %s\n", rcpts->v[i]);
    }
    for (i = 0; i < env->refused.n; i++) {
        fprintf(f, "refused %s\n", env->refused.v[i]);
    }
    return fclose(f) == 0 ? PST_OK : PST_ERROR;
}


int
pst_send_queue_put(const pst_send_opts_t *o, pst_send_env_t *env,
    pst_send_msg_t *msg, char *err, size_t size)
{
    char   id[48], name[64], rnd[9], *e = NULL;
    int    fd;

    if (pst_send_mkdirs(o->queue) != PST_OK) {
        snprintf(err, size, "%s: %s", o->queue, strerror(errno));
        return PST_SEND_IOERR;
    }
    pst_send_random_hex(rnd, 8);
    snprintf(id, sizeof(id), "%010lx%s", (unsigned long) time(NULL), rnd);

    snprintf(name, sizeof(name), "%s.eml", id);
    if (pst_send_qwrite(o->queue, name, NULL, 0, msg->fd, msg->length)
        != PST_OK || pst_send_qenv(&e, o, env, &env->rcpts) != PST_OK)
    {
        snprintf(err, size, "%s: %s", o->queue, strerror(errno));
        free(e);
        return PST_SEND_IOERR;
    }
    snprintf(name, sizeof(name), "%s.env", id);
    if (pst_send_qwrite(o->queue, name, e, strlen(e), -1, 0) != PST_OK) {
        snprintf(err, size, "%s: %s", o->queue, strerror(errno));
        free(e);
        return PST_SEND_IOERR;
    }
    free(e);

    /* the directory entries themselves */
    fd = open(o->queue, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd != -1) {
        (void) fsync(fd);
        close(fd);
    }
    if (o->quiet) {
        /* sendmail: nothing on stdout */
    } else if (o->json) {
        printf("{\"queued\": ");
        pst_send_json_str(stdout, id);
        printf(", \"directory\": ");
        pst_send_json_str(stdout, o->queue);
        printf("}\n");
    } else {
        printf("queued as %s in %s\n", id, o->queue);
    }
    return PST_OK;
}


static int
pst_send_qparse(FILE *f, pst_send_env_t *env, pst_send_opts_t *o)
{
    char    line[2048], *v;
    size_t  n;

    if (fgets(line, sizeof(line), f) == NULL
        || strncmp(line, PST_SEND_QMAGIC "\n", sizeof(PST_SEND_QMAGIC)) != 0)
    {
        return PST_ERROR;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        n = strcspn(line, "\n");
        line[n] = '\0';
        v = strchr(line, ' ');
        if (v == NULL) {
            return PST_ERROR;
        }
        *v++ = '\0';
        if (strcmp(line, "sender") == 0) {
            env->sender = strdup(v);
        } else if (strcmp(line, "rcpt") == 0) {
            pst_send_list_add(&env->rcpts, v);
        } else if (strcmp(line, "refused") == 0) {
            pst_send_list_add(&env->refused, v);
        } else if (strcmp(line, "eightbit") == 0) {
            env->eightbit = atoi(v);
        } else if (strcmp(line, "smtputf8") == 0) {
            env->smtputf8 = atoi(v);
        } else if (strcmp(line, "hdr8") == 0) {
            env->hdr8 = atoi(v);
        } else if (strcmp(line, "notify") == 0 && o->notify == NULL) {
            o->notify = strdup(v);
        } else if (strcmp(line, "ret") == 0 && o->ret == NULL) {
            o->ret = strdup(v);
        } else if (strcmp(line, "envid") == 0 && o->envid == NULL) {
            o->envid = strdup(v);
        }
    }
    return env->rcpts.n > 0 ? PST_OK : PST_ERROR;
}


/* After a try: the envelope rewritten with the recipients to try again,
 * or, when none is left, removed (--keep: ID.sent) -- or kept as
 * ID.failed with the message when some recipient was refused for
 * good.  ID.err holds the reason of the last failure. */
static int
pst_send_qdone(const pst_send_opts_t *o, const char *dir, const char *id,
    pst_send_env_t *env, pst_send_job_t *job, int rc)
{
    char    path[4096], path2[4096], name[64], *e = NULL;
    size_t  i;
    int     err = PST_OK;

    for (i = 0; i < job->refused.n; i++) {
        pst_send_list_add(&env->refused, job->refused.v[i]);
    }
    if (rc != PST_OK && job->reason[0] != '\0') {
        snprintf(name, sizeof(name), "%s.err", id);
        (void) pst_send_qwrite(dir, name, job->reason, strlen(job->reason),
                               -1, 0);
    }

    snprintf(path, sizeof(path), "%s/%s.env", dir, id);
    if (job->retry.n > 0 || env->refused.n > 0) {
        snprintf(name, sizeof(name), job->retry.n ? "%s.env" : "%s.failed",
                 id);
        if (pst_send_qenv(&e, o, env, &job->retry) != PST_OK
            || pst_send_qwrite(dir, name, e, strlen(e), -1, 0) != PST_OK)
        {
            err = PST_ERROR;
        }
        free(e);
        if (job->retry.n > 0 || err != PST_OK) {
            return err;
        }
        return unlink(path) == 0 ? PST_OK : PST_ERROR;
    }

    /* every recipient has it */
    snprintf(path2, sizeof(path2), "%s/%s.err", dir, id);
    (void) unlink(path2);
    if (o->keep) {
        snprintf(path2, sizeof(path2), "%s/%s.sent", dir, id);
        return rename(path, path2) == 0 ? PST_OK : PST_ERROR;
    }
    err = unlink(path);
    snprintf(path2, sizeof(path2), "%s/%s.eml", dir, id);
    (void) unlink(path2);
    return err == 0 ? PST_OK : PST_ERROR;
}


/* The message file, opened and locked; -1 when it is gone (sent by
 * another run) or another run holds it now. */
static int
pst_send_qlock(const char *dir, const char *id, int verbose)
{
    char  path[4096];
    int   fd;

    snprintf(path, sizeof(path), "%s/%s.eml", dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        if (verbose) {
            pst_send_err("%s: another run has it\n", id);
        }
        return -1;
    }
    return fd;
}


static int
pst_send_qone(const pst_send_opts_t *o, const char *dir, const char *id)
{
    pst_send_opts_t  qo = *o;
    pst_send_env_t   env;
    pst_send_job_t   job;
    pst_send_msg_t   msg;
    pst_send_redo_t  re;
    struct stat      st;
    char             path[4096];
    FILE            *f;
    int              fd, rc;

    /* made 7-bit in a copy: ID.eml never changes */
    re.f = NULL;
    re.env = &env;
    fd = pst_send_qlock(dir, id, o->verbose);
    if (fd == -1) {
        return PST_OK;
    }

    memset(&env, 0, sizeof(env));
    memset(&job, 0, sizeof(job));
    qo.notify = qo.ret = qo.envid = NULL;
    snprintf(path, sizeof(path), "%s/%s.env", dir, id);
    f = fopen(path, "re");
    if (f == NULL || fstat(fd, &st) != 0) {
        rc = PST_OK;        /* sent while we waited for the lock */
        goto done;
    }
    if (pst_send_qparse(f, &env, &qo) != PST_OK) {
        pst_send_err("%s: a malformed envelope (left "
                "alone)\n", path);
        rc = PST_SEND_DATAERR;
        goto done;
    }

    msg.fd = fd;
    msg.length = st.st_size;
    job.env = &env;
    job.msg = &msg;
    job.recompose = pst_send_raw_redo;
    job.recompose_data = &re;
    if (!o->json && !o->quiet) {
        printf("%s:\n", id);
    }
    rc = pst_send_run(&qo, &job);
    if (pst_send_qdone(o, dir, id, &env, &job, rc) != PST_OK) {
        pst_send_err("%s: cannot update the queue: %s\n",
                id, strerror(errno));
        rc = rc == PST_OK ? PST_SEND_IOERR : rc;
    }

done:
    if (f != NULL) {
        fclose(f);
    }
    if (re.f != NULL) {
        fclose(re.f);
    }
    free((char *) qo.notify);
    free((char *) qo.ret);
    free((char *) qo.envid);
    pst_send_env_free(&env);
    pst_send_list_free(&job.retry);
    pst_send_list_free(&job.refused);
    close(fd);      /* the lock goes with it */
    return rc;
}


int
pst_send_queue_run(const pst_send_opts_t *o)
{
    struct dirent   *de;
    DIR             *d;
    char             id[64];
    size_t           n;
    int              rc, worst = PST_OK;

    d = opendir(o->process_queue);
    if (d == NULL) {
        pst_send_err("%s: %s\n", o->process_queue,
                strerror(errno));
        return PST_SEND_NOINPUT;
    }

    while ((de = readdir(d)) != NULL) {
        n = strlen(de->d_name);
        if (n < 5 || n >= sizeof(id) || de->d_name[0] == '.'
            || strcmp(de->d_name + n - 4, ".env") != 0)
        {
            continue;
        }
        snprintf(id, sizeof(id), "%.*s", (int) (n - 4), de->d_name);
        rc = pst_send_qone(o, o->process_queue, id);
        if (rc != PST_OK && worst == PST_OK) {
            worst = rc;
        }
    }
    closedir(d);

    return worst;
}
