/*
 * pst_sendmail_spool.c -- postern-sendmail while Postern is down (or
 * defers): the message is committed straight into Postern's spool with
 * the spool service (pst_spool_inject(), the same call bounces use),
 * where the queue process finds it when it starts, when the spool is
 * writable by the caller (root, or Postern's own account); otherwise
 * it goes into SPOOL/maildrop (pst_spool_maildrop_put()), which the
 * queue process reads at start and every second while it runs.  A
 * caller of any account may write there through the maildrop group,
 * which postern-sendmail is installed setgid to: it holds that group
 * only for creating the file (pst_sendmail_drop()).
 *
 * The message is mapped from its temporary file, not read into memory;
 * a Received field says where it came from.
 */

#include "pst_send.h"
#include "pst_spool.h"

#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>

static unsigned pst_sendmail_notify(const char *v);
static int pst_sendmail_spool_env(pst_pool_t *pool, pst_envelope_t *e,
    const pst_send_env_t *env, const pst_send_opts_t *o, off_t size);
static int pst_sendmail_commit(const char *dir, pst_envelope_t *e,
    const u_char *p, size_t len, char *id, size_t size);
static int pst_sendmail_drop(const char *dir, const pst_envelope_t *e,
    const u_char *p, size_t len, char *id, size_t size);

gid_t  pst_sendmail_egid;


static unsigned
pst_sendmail_notify(const char *v)
{
    unsigned  bits = 0;

    if (v == NULL) {
        return 0;
    }
    if (strcasestr(v, "NEVER")) {
        return PST_NOTIFY_NEVER;
    }
    bits |= strcasestr(v, "SUCCESS") ? PST_NOTIFY_SUCCESS : 0;
    bits |= strcasestr(v, "FAILURE") ? PST_NOTIFY_FAILURE : 0;
    bits |= strcasestr(v, "DELAY") ? PST_NOTIFY_DELAY : 0;
    return bits;
}


static int
pst_sendmail_spool_env(pst_pool_t *pool, pst_envelope_t *e,
    const pst_send_env_t *env, const pst_send_opts_t *o, off_t size)
{
    pst_env_rcpt_t  *rc;
    struct passwd   *pw = getpwuid(getuid());
    size_t           i;

    if (pst_envelope_init(pool, e) != PST_OK) {
        return PST_ERROR;
    }
    e->sender.data = (u_char *) (env->sender ? env->sender : "");
    e->sender.len = strlen((char *) e->sender.data);
    pst_str_set(&e->protocol, "local");
    pst_str_set(&e->client_name, "localhost");
    /* a header with 8-bit octets is what SMTPUTF8 carries (RFC 6532) */
    e->smtputf8 = env->smtputf8 || env->hdr8;
    e->size = size;
    if (env->eightbit) {
        pst_str_set(&e->body, "8BITMIME");
    }
    if (o->ret != NULL) {
        e->ret.data = (u_char *) o->ret;
        e->ret.len = strlen(o->ret);
    }
    if (o->envid != NULL) {
        e->envid.data = (u_char *) o->envid;
        e->envid.len = strlen(o->envid);
    }
    for (i = 0; i < env->rcpts.n; i++) {
        rc = pst_envelope_add_rcpt(pool, e, (u_char *) env->rcpts.v[i],
                                   strlen(env->rcpts.v[i]));
        if (rc == NULL) {
            return PST_ERROR;
        }
        rc->notify = pst_sendmail_notify(o->notify);
    }

    return pst_spool_local_received(pool, e, "postern-sendmail", getuid(),
                                    pw ? pw->pw_name : NULL);
}


/* Committed into SPOOL/queue with pst_spool_inject(); the queue file
 * (and queue/XY) given to the spool's owner when we are root. */
static int
pst_sendmail_commit(const char *dir, pst_envelope_t *e, const u_char *p,
    size_t len, char *id, size_t size)
{
    struct stat  st;
    u_char       qid[PST_QUEUE_ID_LEN + 1];
    char         path[1200], *slash;
    int          rc;

    if (snprintf(path, sizeof(path), "%s/queue", dir) <= 0
        || access(path, W_OK) != 0 || stat(dir, &st) != 0)
    {
        return PST_DECLINED;
    }
    pst_spool_use_dir(dir);
    memset(qid, 0, sizeof(qid));
    rc = pst_spool_inject(e, p, len, qid);
    if (rc == PST_OK) {
        snprintf(id, size, "%s", (char *) qid);
        /* the queue process runs as the spool's owner */
        if (geteuid() == 0
            && pst_spool_path(path, sizeof(path), (char *) qid) == PST_OK)
        {
            (void) !chown(path, st.st_uid, st.st_gid);
            /* and queue/XY, which the injection may have made as root */
            slash = strrchr(path, '/');
            if (slash != NULL) {
                *slash = '\0';
                (void) !chown(path, st.st_uid, st.st_gid);
            }
        }
        /* the tmp/PID the injection made for this process */
        snprintf(path, sizeof(path), "%s/tmp/%d", dir, (int) getpid());
        (void) rmdir(path);
    }
    pst_spool_use_dir(NULL);
    return rc;
}


/* Into the maildrop, with the group postern-sendmail is setgid to (the
 * only thing that group is for). */
static int
pst_sendmail_drop(const char *dir, const pst_envelope_t *e, const u_char *p,
    size_t len, char *id, size_t size)
{
    int  rc, err;

    if (pst_sendmail_egid != getgid() && setegid(pst_sendmail_egid) != 0) {
        return PST_ERROR;
    }
    rc = pst_spool_maildrop_put(dir, e, p, len, id, size);
    err = errno;
    if (pst_sendmail_egid != getgid() && setegid(getgid()) != 0) {
        abort();        /* back to the real group: always allowed */
    }
    errno = err;
    return rc;
}


int
pst_sendmail_spool(const char *conf, const pst_send_opts_t *o,
    const pst_send_env_t *env, const pst_send_msg_t *msg, int where,
    char *id, size_t size, char *err, size_t esize)
{
    pst_envelope_t   e;
    pst_pool_t      *pool;
    char             dir[1024], drop[1024];
    void            *p;
    int              rc = PST_ERROR;

    if (msg->length == 0) {
        snprintf(err, esize, "an empty message");
        return PST_ERROR;
    }
    if (pst_sendmail_maildrop(conf, drop, sizeof(drop)) != PST_OK) {
        snprintf(err, esize, "no maildrop: no spool_dir in the "
                 "configuration");
        return PST_ERROR;
    }
    p = mmap(NULL, (size_t) msg->length, PROT_READ, MAP_PRIVATE, msg->fd,
             0);
    pool = pst_create_pool(4096);
    if (p == MAP_FAILED || pool == NULL
        || pst_sendmail_spool_env(pool, &e, env, o, msg->length) != PST_OK)
    {
        snprintf(err, esize, "out of memory");
    } else {
        rc = PST_DECLINED;
        if (where == PST_SENDMAIL_SPOOL
            && pst_sendmail_spool_dir(conf, dir, sizeof(dir)) == PST_OK)
        {
            rc = pst_sendmail_commit(dir, &e, p, (size_t) msg->length, id,
                                     size);
        }
        if (rc == PST_OK) {
            rc = PST_SENDMAIL_SPOOL;
        } else if (pst_sendmail_drop(drop, &e, p, (size_t) msg->length, id,
                                     size) == PST_OK)
        {
            rc = PST_SENDMAIL_MAILDROP;
        } else {
            snprintf(err, esize, "%s: %s%s", drop, strerror(errno),
                     errno == EACCES || errno == ENOENT
                     ? " (postern-sendmail must be setgid to the "
                       "maildrop_group of postern.conf, and Postern must "
                       "have run once: see postern-sendmail(8))" : "");
            rc = PST_ERROR;
        }
    }

    if (p != MAP_FAILED) {
        munmap(p, (size_t) msg->length);
    }
    if (pool != NULL) {
        pst_destroy_pool(pool);
    }
    return rc;
}
