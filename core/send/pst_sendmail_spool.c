/*
 * pst_sendmail_spool.c -- postern-sendmail while Postern is down: the
 * message is committed straight into Postern's spool with the spool
 * service (pst_spool_inject(), the same call bounces use), where the
 * queue process finds it when it starts.  Only when the spool is
 * writable by the caller (root, or Postern's own account); otherwise
 * the maildrop takes it.
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
    pst_str_t       *h;
    struct passwd   *pw = getpwuid(getuid());
    u_char           date[64];
    char             host[256], *line;
    size_t           i, n;

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

    /* a trace field, as the SMTP path would have had one */
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
    h->len = (size_t) snprintf(line, 512, "Received: by %.200s "
                               "(postern-sendmail, uid %ld%s%.32s);\r\n"
                               "\t%.*s\r\n", host, (long) getuid(),
                               pw ? " " : "", pw ? pw->pw_name : "",
                               (int) n, date);
    h->data = (u_char *) line;
    return PST_OK;
}


int
pst_sendmail_spool(const char *conf, const pst_send_opts_t *o,
    const pst_send_env_t *env, const pst_send_msg_t *msg, char *id,
    size_t size)
{
    pst_envelope_t  e;
    struct stat     st;
    pst_pool_t     *pool;
    u_char          qid[PST_QUEUE_ID_LEN + 1];
    char            dir[1024], path[1200], *slash;
    void           *p;
    int             rc = PST_ERROR;

    if (pst_sendmail_spool_dir(conf, dir, sizeof(dir)) != PST_OK
        || snprintf(path, sizeof(path), "%s/queue", dir) <= 0
        || access(path, W_OK) != 0 || stat(dir, &st) != 0
        || msg->length == 0)
    {
        return PST_DECLINED;
    }

    p = mmap(NULL, (size_t) msg->length, PROT_READ, MAP_PRIVATE, msg->fd,
             0);
    pool = pst_create_pool(4096);
    if (p != MAP_FAILED && pool != NULL
        && pst_sendmail_spool_env(pool, &e, env, o, msg->length) == PST_OK)
    {
        pst_spool_use_dir(dir);
        memset(qid, 0, sizeof(qid));
        rc = pst_spool_inject(&e, p, (size_t) msg->length, qid);
    }
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

    if (p != MAP_FAILED) {
        munmap(p, (size_t) msg->length);
    }
    if (pool != NULL) {
        pst_destroy_pool(pool);
    }
    pst_spool_use_dir(NULL);
    return rc;
}
