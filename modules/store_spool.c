/*
 * store_spool.c -- the default store: messages go to the spool
 * directory, durably, before the client hears "250".
 *
 * One file per message (docs/SPOOL.md, format 3): a fixed-size header,
 * the message, the envelope.  While DATA streams in, the worker writes
 * the message to SPOOL/tmp/PID/ID behind a placeholder header (short
 * writes into the page cache; the core owns that directory and the
 * master removes it when the worker exits).  At commit it appends the
 * envelope, writes the real header in place and hands the file to the
 * sync threads, which
 *   1. start write-back of every file in the batch (sync_file_range),
 *   2. fdatasync() each file,
 *   3. rename each into SPOOL/queue/XY/ID (the layout is the core's:
 *      pst_spool_queue_rename()),
 *   4. fsync() each queue/XY directory once for the whole batch,
 * and report through an eventfd that sits in the worker's event loop.
 * Only then does the session answer "250 2.0.0 Ok: queued as ID".  A
 * batch is whatever arrived while the previous one was syncing, so the
 * cost of a directory fsync (and, with ext4's journal, of the file
 * fsyncs) is shared by all concurrent messages and the event loop never
 * waits for the disk.
 *
 * Creating a file is the most expensive step of a message on ext4 (inode
 * allocation) and the event loop's worst stall.  With spool_file_pool N
 * a pool thread keeps up to N empty files open in the worker's tmp/PID/
 * (named pool-PID-N) and the loop takes one per message; the sync
 * threads rename it to queue/XY/ID.  When the pool is empty (or off, the
 * default) the loop
 * creates tmp/PID/ID itself.  Off by default for now: with the pool,
 * tmp/PID/ is never empty while the worker runs.
 *
 * Directives (top level):
 *   spool_fsync on|off;        off is for benchmarks only: no durability
 *   spool_sync_threads N;      sync threads per worker (default 2)
 *   spool_file_pool N;         pre-created files per worker (default 0:
 *                              the event loop creates every file)
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "postern_module.h"

#define STORE_MAX_THREADS   8
#define STORE_POOL_MAX      1024

typedef struct store_job_s  store_job_t;

struct store_job_s {
    store_job_t                 *next;
    pst_session_t               *session;
    uint64_t                     token;
    int                          fd;
    int                          rc;
    int                          renamed;
    off_t                        msg_len;          /* message bytes */
    uint64_t                     queued_ns;
    char                         id[32];
    char                         qname[32];         /* XY/ID in queue/ */
    char                         tmp_name[32];      /* in tmp/PID/ */
};

typedef struct {
    int                          fd;
    char                         name[32];
} store_pool_file_t;

typedef struct {
    pst_int_t                    fsync;
    pst_int_t                    threads;
    pst_int_t                    pool;
} store_spool_conf_t;

typedef struct {
    pthread_mutex_t              lock;
    pthread_cond_t               cond;
    store_job_t                 *pending;
    store_job_t                **pending_tail;
    store_job_t                 *done;
    store_job_t                **done_tail;
    int                          efd;
    int                          tmp_fd;
    int                          queue_fd;
    int                          stop;
    int                          nthreads;
    int                          fsync;
    pthread_t                    threads[STORE_MAX_THREADS];

    /* group commit counters, logged when the worker exits */
    uint64_t                     n_batches;
    uint64_t                     n_msgs;
    uint64_t                     n_dir_fsyncs;
    uint64_t                     max_batch;
    uint64_t                     sync_ns;
    uint64_t                     lat_ns;
    uint64_t                     lat_max_ns;

    /* pre-created files (event loop takes, pool thread refills) */
    pthread_mutex_t              pool_lock;
    pthread_cond_t               pool_cond;
    pthread_t                    pool_thread;
    store_pool_file_t           *pool;
    int                          pool_n;
    int                          pool_max;
    int                          pool_stop;
    int                          pool_running;
    unsigned                     pool_serial;
    uint64_t                     n_pool_taken;
    uint64_t                     n_pool_missed;
} store_spool_state_t;

static store_spool_state_t  st = { .efd = -1, .tmp_fd = -1, .queue_fd = -1 };


static void *store_spool_create_conf(pst_conf_t *cf);
static char *store_spool_init_conf(pst_conf_t *cf, void *conf);
static int store_spool_init_process(pst_cycle_t *cycle, pst_proc_e type,
    void *conf);
static void store_spool_exit_process(pst_cycle_t *cycle, void *conf);
static void *store_spool_open(pst_session_t *s, void *conf);
static int store_spool_write(void *handle, const u_char *data, size_t len);
static int store_spool_commit(void *handle, uint64_t token);
static void store_spool_abort(void *handle);
static ssize_t store_spool_read(void *handle, off_t offset, u_char *buf,
    size_t len);
static int store_spool_same_dir(const store_job_t *j, const store_job_t *k);
static int store_spool_seen_dir(store_job_t *batch, const store_job_t *j);
static int store_spool_fsync_dir(const store_job_t *j);


static const pst_command_t  store_spool_commands[] = {
    { "spool_fsync", PST_CONF_MAIN | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_MAIN_CONF,
      offsetof(store_spool_conf_t, fsync), NULL },
    { "spool_sync_threads", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(store_spool_conf_t, threads), NULL },
    { "spool_file_pool", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(store_spool_conf_t, pool), NULL },
    pst_null_command
};

static const pst_store_ops_t  store_spool_ops = {
    .open = store_spool_open,
    .write = store_spool_write,
    .commit = store_spool_commit,
    .abort = store_spool_abort,
    .read = store_spool_read,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "store_spool",
    .version = "1.0",
    .description = "durable spool store with grouped fsync",
    .commands = store_spool_commands,
    .create_main_conf = store_spool_create_conf,
    .init_main_conf = store_spool_init_conf,
    .init_process = store_spool_init_process,
    .exit_process = store_spool_exit_process,
    .store = &store_spool_ops,
};


static void *
store_spool_create_conf(pst_conf_t *cf)
{
    store_spool_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(store_spool_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->fsync = PST_CONF_UNSET;
    c->threads = PST_CONF_UNSET;
    c->pool = PST_CONF_UNSET;
    return c;
}


static char *
store_spool_init_conf(pst_conf_t *cf, void *conf)
{
    store_spool_conf_t  *c = conf;

    pst_conf_merge_value(c->fsync, PST_CONF_UNSET, 1);
    pst_conf_merge_value(c->threads, PST_CONF_UNSET, 2);
    pst_conf_merge_value(c->pool, PST_CONF_UNSET, 0);

    if (c->pool < 0 || c->pool > STORE_POOL_MAX) {
        return "spool_file_pool must be between 0 and 1024";
    }

    if (c->threads < 1 || c->threads > STORE_MAX_THREADS) {
        return "spool_sync_threads must be between 1 and 8";
    }

    if (!c->fsync) {
        pst_conf_warn(cf, "spool_fsync is off: accepted mail can be lost"
                      " in a crash (benchmarks only)");
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Sync threads                                                        */

static int
store_spool_sync_batch(store_job_t *batch)
{
    store_job_t  *j, *k;
    int           dir_rc, dirs = 0;

    /* start write-back of the whole batch first, so that the fsyncs
     * below find their data on its way and share journal commits */
    for (j = batch; j != NULL; j = j->next) {
        (void) sync_file_range(j->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }

    for (j = batch; j != NULL; j = j->next) {
        if (fdatasync(j->fd) == -1) {
            j->rc = errno ? errno : EIO;
        }
    }

    for (j = batch; j != NULL; j = j->next) {
        if (j->rc != 0) {
            continue;
        }
        /* complete and on disk: its appearance in queue/XY/ is the
         * commit (the core owns the layout) */
        j->rc = pst_spool_queue_rename(st.tmp_fd, j->tmp_name, st.queue_fd,
                                       j->id);
        if (j->rc != 0) {
            continue;
        }
        j->renamed = 1;
    }

    /* each queue/XY/ directory once for the whole batch */
    for (j = batch; j != NULL; j = j->next) {
        if (j->renamed && !store_spool_seen_dir(batch, j)) {
            dir_rc = store_spool_fsync_dir(j);
            for (k = j; dir_rc != 0 && k != NULL; k = k->next) {
                if (k->renamed && store_spool_same_dir(j, k)) {
                    /* on disk in an unknown state: never acknowledged,
                     * and the client will retry; the queue keeps it if
                     * it survived */
                    k->rc = dir_rc;
                }
            }
            dirs++;
        }
    }

    return dirs;
}


/* j's queue/XY/ is the same as k's */
static int
store_spool_same_dir(const store_job_t *j, const store_job_t *k)
{
    return memcmp(j->qname, k->qname, 2) == 0;
}


/* an earlier renamed job of the batch has j's directory */
static int
store_spool_seen_dir(store_job_t *batch, const store_job_t *j)
{
    store_job_t  *k;

    for (k = batch; k != j; k = k->next) {
        if (k->renamed && store_spool_same_dir(j, k)) {
            return 1;
        }
    }
    return 0;
}


static int
store_spool_fsync_dir(const store_job_t *j)
{
    char  xy[3];
    int   fd, rc = 0;

    xy[0] = j->qname[0];
    xy[1] = j->qname[1];
    xy[2] = '\0';

    fd = openat(st.queue_fd, xy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1 || fsync(fd) == -1) {
        rc = errno ? errno : EIO;
    }
    if (fd != -1) {
        close(fd);
    }
    return rc;
}


static uint64_t
store_spool_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


static void *
store_spool_thread(void *arg)
{
    store_job_t  *batch, *last;
    uint64_t      one = 1, t0, t1, n, lat, lat_max;
    int           dir;

    (void) arg;

    pthread_mutex_lock(&st.lock);

    for ( ;; ) {
        while (st.pending == NULL && !st.stop) {
            pthread_cond_wait(&st.cond, &st.lock);
        }
        if (st.pending == NULL && st.stop) {
            break;
        }

        batch = st.pending;
        st.pending = NULL;
        st.pending_tail = &st.pending;
        pthread_mutex_unlock(&st.lock);

        t0 = store_spool_now_ns();
        dir = store_spool_sync_batch(batch);
        t1 = store_spool_now_ns();

        /* commit latency: from the session's commit to durable */
        n = 0;
        lat = 0;
        lat_max = 0;
        for (last = batch; ; last = last->next) {
            n++;
            lat += t1 - last->queued_ns;
            if (t1 - last->queued_ns > lat_max) {
                lat_max = t1 - last->queued_ns;
            }
            if (last->next == NULL) {
                break;
            }
        }

        pthread_mutex_lock(&st.lock);
        *st.done_tail = batch;
        st.done_tail = &last->next;
        st.n_batches++;
        st.n_msgs += n;
        st.n_dir_fsyncs += (uint64_t) dir;
        st.sync_ns += t1 - t0;
        st.lat_ns += lat;
        if (lat_max > st.lat_max_ns) {
            st.lat_max_ns = lat_max;
        }
        if (n > st.max_batch) {
            st.max_batch = n;
        }
        pthread_mutex_unlock(&st.lock);
        pst_metrics_group_commit((unsigned) n);

        (void) !write(st.efd, &one, sizeof(one));

        pthread_mutex_lock(&st.lock);
    }

    pthread_mutex_unlock(&st.lock);
    return NULL;
}


/* ------------------------------------------------------------------ */
/* File pool                                                           */

static void *
store_spool_pool_thread(void *arg)
{
    char  name[32];
    int   fd;

    (void) arg;

    pthread_mutex_lock(&st.pool_lock);

    for ( ;; ) {
        while (st.pool_n >= st.pool_max && !st.pool_stop) {
            pthread_cond_wait(&st.pool_cond, &st.pool_lock);
        }
        if (st.pool_stop) {
            break;
        }
        pthread_mutex_unlock(&st.pool_lock);

        snprintf(name, sizeof(name), "pool-%d-%u", (int) getpid(),
                 ++st.pool_serial);
        fd = openat(st.tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                    0640);
        if (fd == -1) {
            /* the loop creates its own files meanwhile */
            pst_log(PST_LOG_ERR, errno, "spool: cannot create tmp/%s",
                    name);
            sleep(1);
        }

        pthread_mutex_lock(&st.pool_lock);
        if (fd != -1) {
            st.pool[st.pool_n].fd = fd;
            memcpy(st.pool[st.pool_n].name, name, sizeof(name));
            st.pool_n++;
        }
    }

    pthread_mutex_unlock(&st.pool_lock);
    return NULL;
}


/* An empty file in tmp/: from the pool, else created here (name). */
static int
store_spool_tmp_file(char *name, size_t size, const char *fallback)
{
    int  fd = -1;

    if (st.pool_running) {
        pthread_mutex_lock(&st.pool_lock);
        if (st.pool_n > 0) {
            st.pool_n--;
            fd = st.pool[st.pool_n].fd;
            memcpy(name, st.pool[st.pool_n].name, size);
        }
        if (st.pool_n <= st.pool_max / 2) {
            pthread_cond_signal(&st.pool_cond);
        }
        pthread_mutex_unlock(&st.pool_lock);

        if (fd != -1) {
            st.n_pool_taken++;
            return fd;
        }
        st.n_pool_missed++;
    }

    snprintf(name, size, "%s", fallback);
    return openat(st.tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                  0640);
}


static void
store_spool_pool_start(int n)
{
    st.pool_max = n;
    st.pool_n = 0;
    st.pool_stop = 0;

    if (n == 0) {
        return;
    }

    st.pool = calloc((size_t) n, sizeof(store_pool_file_t));
    if (st.pool == NULL) {
        return;
    }

    pthread_mutex_init(&st.pool_lock, NULL);
    pthread_cond_init(&st.pool_cond, NULL);

    if (pthread_create(&st.pool_thread, NULL, store_spool_pool_thread, NULL)
        != 0)
    {
        pst_log(PST_LOG_ERR, errno, "spool: no file pool thread");
        return;
    }

    st.pool_running = 1;
}


static void
store_spool_pool_stop(void)
{
    int  i;

    if (!st.pool_running) {
        return;
    }

    pthread_mutex_lock(&st.pool_lock);
    st.pool_stop = 1;
    pthread_cond_signal(&st.pool_cond);
    pthread_mutex_unlock(&st.pool_lock);
    pthread_join(st.pool_thread, NULL);
    st.pool_running = 0;

    for (i = 0; i < st.pool_n; i++) {
        (void) unlinkat(st.tmp_fd, st.pool[i].name, 0);
        close(st.pool[i].fd);
    }
    st.pool_n = 0;

    if (st.n_pool_taken + st.n_pool_missed > 0) {
        pst_log(PST_LOG_NOTICE, 0, "spool: file pool: %llu file(s) taken,"
                " %llu created in the event loop",
                (unsigned long long) st.n_pool_taken,
                (unsigned long long) st.n_pool_missed);
    }
}


static void
store_spool_job_free(store_job_t *j)
{
    if (j->fd != -1) {
        close(j->fd);
    }
    free(j);
}


/* Completions, in the worker's event loop. */
static void
store_spool_done_handler(int fd, void *data)
{
    store_job_t  *list, *j, *next;
    uint64_t      n;

    (void) data;

    (void) !read(fd, &n, sizeof(n));

    pthread_mutex_lock(&st.lock);
    list = st.done;
    st.done = NULL;
    st.done_tail = &st.done;
    pthread_mutex_unlock(&st.lock);

    for (j = list; j != NULL; j = next) {
        next = j->next;

        if (j->rc != 0) {
            pst_log(PST_LOG_ERR, j->rc, "spool: committing %s failed",
                    j->id);
            if (!j->renamed) {
                (void) unlinkat(st.tmp_fd, j->tmp_name, 0);
            }
        }

        pst_store_done(j->token, j->rc == 0 ? PST_OK : PST_ERROR);
        store_spool_job_free(j);
    }
}


static int
store_spool_init_process(pst_cycle_t *cycle, pst_proc_e type, void *conf)
{
    store_spool_conf_t  *c = conf;
    const pst_str_t     *dir;
    char                 path[4096];
    int                  i;

    (void) cycle;

    if (type != PST_PROC_WORKER && type != PST_PROC_SINGLE) {
        return PST_OK;
    }

    dir = pst_spool_dir();
    st.tmp_fd = open((char *) pst_spool_tmp_dir()->data,
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(path, sizeof(path), "%s/queue", dir->data);
    st.queue_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (st.tmp_fd == -1 || st.queue_fd == -1) {
        pst_log(PST_LOG_EMERG, errno, "spool: cannot open \"%s\"",
                dir->data);
        return PST_ERROR;
    }

    st.fsync = (int) c->fsync;
    st.pending = NULL;
    st.pending_tail = &st.pending;
    st.done = NULL;
    st.done_tail = &st.done;
    st.stop = 0;

    store_spool_pool_start((int) c->pool);

    if (!st.fsync) {
        return PST_OK;
    }

    st.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st.efd == -1 || pst_fd_watch(st.efd, store_spool_done_handler, NULL)
                        != PST_OK)
    {
        pst_log(PST_LOG_EMERG, errno, "spool: eventfd failed");
        return PST_ERROR;
    }

    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);

    for (i = 0; i < c->threads; i++) {
        if (pthread_create(&st.threads[i], NULL, store_spool_thread, NULL)
            != 0)
        {
            pst_log(PST_LOG_EMERG, errno, "spool: cannot start a thread");
            return PST_ERROR;
        }
        st.nthreads++;
    }

    return PST_OK;
}


static void
store_spool_exit_process(pst_cycle_t *cycle, void *conf)
{
    int  i;

    (void) cycle;
    (void) conf;

    store_spool_pool_stop();

    if (st.nthreads == 0) {
        return;
    }

    pthread_mutex_lock(&st.lock);
    st.stop = 1;
    pthread_cond_broadcast(&st.cond);
    pthread_mutex_unlock(&st.lock);

    for (i = 0; i < st.nthreads; i++) {
        pthread_join(st.threads[i], NULL);
    }
    st.nthreads = 0;

    if (st.n_batches > 0) {
        /* 1 fdatasync per message + 1 directory fsync per batch */
        pst_log(PST_LOG_NOTICE, 0, "spool: group commit: %llu message(s)"
                " in %llu batch(es), %.2f per batch (max %llu),"
                " %.3f directory fsync(s) per message, %.2f ms per batch,"
                " commit latency %.2f ms (max %.2f)",
                (unsigned long long) st.n_msgs,
                (unsigned long long) st.n_batches,
                (double) st.n_msgs / (double) st.n_batches,
                (unsigned long long) st.max_batch,
                (double) st.n_dir_fsyncs / (double) st.n_msgs,
                (double) st.sync_ns / 1e6 / (double) st.n_batches,
                (double) st.lat_ns / 1e6 / (double) st.n_msgs,
                (double) st.lat_max_ns / 1e6);
    }
}


/* ------------------------------------------------------------------ */
/* Store operations                                                    */

static int
store_spool_write_all(int fd, const u_char *p, size_t n)
{
    ssize_t  w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR) {
                continue;
            }
            return PST_ERROR;
        }
        p += w;
        n -= (size_t) w;
    }

    return PST_OK;
}


static void *
store_spool_open(pst_session_t *s, void *conf)
{
    const pst_str_t  *id;
    store_job_t      *j;
    u_char            hdr[PST_SPOOL_HEADER_LEN];

    (void) conf;

    id = pst_tx_id(s);
    if (id == NULL || id->len >= sizeof(j->id)) {
        return NULL;
    }

    j = calloc(1, sizeof(store_job_t));
    if (j == NULL) {
        return NULL;
    }

    j->session = s;
    memcpy(j->id, id->data, id->len);
    if (pst_spool_queue_name(j->qname, sizeof(j->qname), j->id) != PST_OK) {
        free(j);
        return NULL;
    }

    j->fd = store_spool_tmp_file(j->tmp_name, sizeof(j->tmp_name), j->id);
    if (j->fd == -1) {
        pst_log_session(s, PST_LOG_ERR, "spool: cannot create tmp/%s: %s",
                        j->id, strerror(errno));
        free(j);
        return NULL;
    }

    /* a placeholder until commit knows both lengths */
    pst_spool_header(hdr, 0, 0);
    if (store_spool_write_all(j->fd, hdr, sizeof(hdr)) != PST_OK) {
        pst_log_session(s, PST_LOG_ERR, "spool: write to tmp/%s failed: %s",
                        j->id, strerror(errno));
        (void) unlinkat(st.tmp_fd, j->tmp_name, 0);
        store_spool_job_free(j);
        return NULL;
    }

    return j;
}


static int
store_spool_write(void *handle, const u_char *data, size_t len)
{
    store_job_t  *j = handle;

    if (store_spool_write_all(j->fd, data, len) != PST_OK) {
        pst_log_session(j->session, PST_LOG_ERR, "spool: write to tmp/%s"
                        " failed: %s", j->id, strerror(errno));
        return PST_ERROR;
    }

    j->msg_len += (off_t) len;
    return PST_OK;
}


static ssize_t
store_spool_read(void *handle, off_t offset, u_char *buf, size_t len)
{
    store_job_t  *j = handle;

    if (offset < 0 || offset >= j->msg_len) {
        return 0;
    }
    if ((off_t) len > j->msg_len - offset) {
        len = (size_t) (j->msg_len - offset);
    }

    return pread(j->fd, buf, len, PST_SPOOL_HEADER_LEN + offset);
}


static int
store_spool_commit(void *handle, uint64_t token)
{
    store_job_t  *j = handle;
    pst_str_t     env;
    u_char        hdr[PST_SPOOL_HEADER_LEN];

    j->token = token;

    if (pst_tx_envelope(j->session, &env) != PST_OK) {
        goto failed;
    }

    pst_spool_header(hdr, j->msg_len, env.len);

    if (store_spool_write_all(j->fd, env.data, env.len) != PST_OK
        || pwrite(j->fd, hdr, sizeof(hdr), 0) != (ssize_t) sizeof(hdr))
    {
        pst_log_session(j->session, PST_LOG_ERR, "spool: cannot write"
                        " the envelope of tmp/%s: %s", j->id,
                        strerror(errno));
        goto failed;
    }

    j->session = NULL;      /* the session may not outlive the commit */

    if (!st.fsync) {
        if (pst_spool_queue_rename(st.tmp_fd, j->tmp_name, st.queue_fd,
                                   j->id) != 0)
        {
            goto failed;
        }
        store_spool_job_free(j);
        return PST_OK;
    }

    j->queued_ns = store_spool_now_ns();

    pthread_mutex_lock(&st.lock);
    j->next = NULL;
    *st.pending_tail = j;
    st.pending_tail = &j->next;
    pthread_cond_signal(&st.cond);
    pthread_mutex_unlock(&st.lock);

    return PST_AGAIN;

failed:

    (void) unlinkat(st.tmp_fd, j->tmp_name, 0);
    store_spool_job_free(j);
    return PST_ERROR;
}


static void
store_spool_abort(void *handle)
{
    store_job_t  *j = handle;

    (void) unlinkat(st.tmp_fd, j->tmp_name, 0);
    store_spool_job_free(j);
}
