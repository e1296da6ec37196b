/*
 * pst_queue_offline.c -- postern queue flush|hold|release|delete while
 * the server is not running (the control socket does not answer): the
 * spool is changed directly.  The answer is the live engine's: the
 * number of messages affected.  A state file this tool writes gets the
 * spool's owner (pst_spool_state_write()), so that the queue process
 * (unprivileged) can read and replace it; so does SPOOL/queue.lock,
 * taken here as an engine takes it, so that no engine starts on the
 * spool meanwhile.
 */

#include "pst_core.h"
#include "pst_spool.h"

#include <sys/file.h>


typedef struct {
    int          verb;       /* 'f'lush, 'h'old, 'r'elease, 'd'elete */
    pst_str_t    domain;     /* flush DOMAIN */
    long         count;
    long         found;
    int          rc;
} pst_qoff_t;

static int pst_queue_offline_lock(pst_cycle_t *cycle);
static int pst_queue_offline_verb(pst_cycle_t *cycle, int argc,
    char **argv);
static int pst_queue_offline_one(const char *id, void *data);
static int pst_queue_offline_change(pst_qoff_t *q, pst_envelope_t *env);


/* SPOOL/queue.lock, as a queue process holds it while it works: no
 * engine runs on the spool while the lock is ours.  The fd, or -1. */
static int
pst_queue_offline_lock(pst_cycle_t *cycle)
{
    char         path[PATH_MAX];
    struct stat  st;
    int          fd;

    snprintf(path, sizeof(path), "%s/queue.lock",
             cycle->core->spool_dir.data);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        fprintf(stderr, "postern: cannot open %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    /* made here first: the queue process (the spool's owner) opens it */
    if (stat((char *) cycle->core->spool_dir.data, &st) == 0) {
        (void) !fchown(fd, st.st_uid, st.st_gid);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        fprintf(stderr, "postern: a queue process works on this spool"
                " (%s is locked): try again when the server runs\n", path);
        close(fd);
        return -1;
    }
    return fd;
}


int
pst_queue_offline(pst_cycle_t *cycle, int argc, char **argv)
{
    int  fd, rc;

    fd = pst_queue_offline_lock(cycle);
    if (fd == -1) {
        return 1;
    }
    rc = pst_queue_offline_verb(cycle, argc, argv);
    close(fd);
    return rc;
}


static int
pst_queue_offline_verb(pst_cycle_t *cycle, int argc, char **argv)
{
    pst_qoff_t   q;
    const char  *arg;
    char         text[160];
    int          json;

    json = pst_spool_json_arg(&argc, argv);
    arg = argc > 1 ? argv[1] : NULL;
    memset(&q, 0, sizeof(q));
    q.verb = argv[0][0];

    if (argc > 2 || (arg == NULL && (q.verb == 'h' || q.verb == 'd'))) {
        fprintf(stderr, "usage: postern queue %s\n", q.verb == 'f'
                ? "flush [ID|DOMAIN]" : q.verb == 'r' ? "release [ID|ALL]"
                : q.verb == 'h' ? "hold ID|ALL" : "delete ID|ALL");
        return 64;
    }

    if (arg != NULL && strcmp(arg, "ALL") != 0) {
        if (pst_spool_valid_id((u_char *) arg, strlen(arg))) {
            if (pst_queue_offline_one(arg, &q) != PST_OK || q.found == 0) {
                fprintf(stderr, "postern: %s: no such message in the"
                        " queue\n", arg);
                return 1;
            }
            (void) pst_spool_json_count(text, sizeof(text), argv[0], arg,
                                        (unsigned long) q.count, json);
            fputs(text, stdout);
            return q.rc;
        }
        if (q.verb != 'f' || strchr(arg, '@') != NULL) {
            fprintf(stderr, "postern: \"%.64s\" is not a queue ID\n", arg);
            return 1;
        }
        q.domain.data = (u_char *) arg;
        q.domain.len = strlen(arg);
    }

    if (pst_spool_walk(pst_queue_offline_one, &q) != PST_OK) {
        fprintf(stderr, "postern: cannot read the queue of \"%s\": %s\n",
                cycle->core->spool_dir.data, strerror(errno));
        return 1;
    }
    (void) pst_spool_json_count(text, sizeof(text), argv[0],
                                arg != NULL ? arg : "ALL",
                                (unsigned long) q.count, json);
    fputs(text, stdout);
    return q.rc;
}


static int
pst_queue_offline_one(const char *id, void *data)
{
    pst_qoff_t       *q = data;
    pst_spool_msg_t   m;
    pst_pool_t       *pool;
    const char       *why;
    char              path[PATH_MAX];
    int               rc;

    if (q->verb == 'd') {
        if (pst_spool_path(path, sizeof(path), id) == PST_OK
            && access(path, F_OK) == 0 && pst_spool_remove(id) == PST_OK)
        {
            q->count++;
            q->found++;
        }
        return PST_OK;
    }

    pool = pst_create_pool(16384);
    if (pool == NULL) {
        return PST_ERROR;
    }
    rc = pst_spool_msg_open(pool, id, &m, &why);
    if (rc != PST_OK) {
        pst_destroy_pool(pool);
        return PST_OK;          /* gone, or unreadable: left alone */
    }
    q->found++;

    if (pst_queue_offline_change(q, &m.env)) {
        if (pst_spool_state_write(&m.env) != PST_OK) {
            fprintf(stderr, "postern: %s: cannot write its state: %s\n", id,
                    strerror(errno));
            q->rc = 1;
        } else {
            q->count++;         /* owned as the spool (state_write) */
        }
    }
    pst_spool_msg_close(&m);
    pst_destroy_pool(pool);
    return PST_OK;
}


/* 1 when env changed: hold/release flip the hold flag; flush makes the
 * deferred recipients (of DOMAIN) due now. */
static int
pst_queue_offline_change(pst_qoff_t *q, pst_envelope_t *env)
{
    pst_env_rcpt_t  *r = env->rcpts->elts;
    pst_uint_t       i;
    u_char          *at;
    int              changed = 0;

    if (q->verb == 'h' || q->verb == 'r') {
        changed = env->hold != (q->verb == 'h');
        env->hold = q->verb == 'h';
        return changed;
    }

    for (i = 0; i < env->rcpts->nelts; i++) {
        if (r[i].state != PST_RCPT_DEFERRED) {
            continue;
        }
        at = memchr(r[i].addr.data, '@', r[i].addr.len);
        if (q->domain.len > 0
            && (at == NULL
                || (size_t) (r[i].addr.data + r[i].addr.len - at - 1)
                   != q->domain.len
                || pst_strncasecmp(at + 1, q->domain.data, q->domain.len)
                   != 0))
        {
            continue;
        }
        r[i].next_try = 0;
        changed = 1;
    }
    return changed;
}
