/*
 * pst_qio.c -- spool I/O threads of the queue process (pst_qio.h).
 *
 * The same shape as auth_file's threads: a mutex-protected list of
 * jobs to run, another of jobs done, an eventfd that the event loop
 * watches.  Jobs run in any order across threads; the engine keeps at
 * most one job per message in flight, so a message's writes are never
 * reordered.
 */

#include "pst_core.h"
#include "pst_qio.h"

#include <pthread.h>
#include <sys/eventfd.h>

#define PST_QIO_MAX_THREADS   32


typedef struct {
    pthread_mutex_t     lock;
    pthread_cond_t      cond;
    pst_qio_job_t      *pending;
    pst_qio_job_t     **pending_tail;
    pst_qio_job_t      *done;
    pst_qio_job_t     **done_tail;
    pthread_t           threads[PST_QIO_MAX_THREADS];
    pst_uint_t          nthreads;
    pst_uint_t          busy;
    int                 efd;
    int                 stop;
} pst_qio_t;

static pst_qio_t  qio = { .efd = -1 };


static void *
pst_qio_thread(void *arg)
{
    pst_qio_job_t  *j;
    uint64_t        one = 1;

    (void) arg;

    pthread_mutex_lock(&qio.lock);

    for ( ;; ) {
        while (qio.pending == NULL && !qio.stop) {
            pthread_cond_wait(&qio.cond, &qio.lock);
        }
        if (qio.pending == NULL) {
            break;
        }

        j = qio.pending;
        qio.pending = j->next;
        if (qio.pending == NULL) {
            qio.pending_tail = &qio.pending;
        }
        pthread_mutex_unlock(&qio.lock);

        j->run(j);

        pthread_mutex_lock(&qio.lock);
        j->next = NULL;
        *qio.done_tail = j;
        qio.done_tail = &j->next;
        pthread_mutex_unlock(&qio.lock);

        (void) !write(qio.efd, &one, sizeof(one));

        pthread_mutex_lock(&qio.lock);
    }

    pthread_mutex_unlock(&qio.lock);
    return NULL;
}


static void
pst_qio_done_handler(int fd, void *data)
{
    pst_qio_job_t  *list, *j, *next;
    uint64_t        n;

    (void) data;

    (void) !read(fd, &n, sizeof(n));

    pthread_mutex_lock(&qio.lock);
    list = qio.done;
    qio.done = NULL;
    qio.done_tail = &qio.done;
    pthread_mutex_unlock(&qio.lock);

    for (j = list; j != NULL; j = next) {
        next = j->next;
        qio.busy--;
        j->done(j);
    }
}


int
pst_qio_init(pst_uint_t threads)
{
    pst_uint_t  i;

    qio.pending = NULL;
    qio.pending_tail = &qio.pending;
    qio.done = NULL;
    qio.done_tail = &qio.done;
    qio.stop = 0;
    qio.busy = 0;

    qio.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (qio.efd == -1
        || pst_fd_watch(qio.efd, pst_qio_done_handler, NULL) != PST_OK)
    {
        pst_log_error(PST_LOG_EMERG, errno, "queue: eventfd failed");
        return PST_ERROR;
    }

    pthread_mutex_init(&qio.lock, NULL);
    pthread_cond_init(&qio.cond, NULL);

    threads = pst_min(pst_max(threads, 1), PST_QIO_MAX_THREADS);
    for (i = 0; i < threads; i++) {
        if (pthread_create(&qio.threads[i], NULL, pst_qio_thread, NULL)
            != 0)
        {
            pst_log_error(PST_LOG_EMERG, errno, "queue: cannot start an"
                          " I/O thread");
            return PST_ERROR;
        }
        qio.nthreads++;
    }

    return PST_OK;
}


void
pst_qio_post(pst_qio_job_t *job)
{
    job->next = NULL;
    qio.busy++;

    pthread_mutex_lock(&qio.lock);
    *qio.pending_tail = job;
    qio.pending_tail = &job->next;
    pthread_cond_signal(&qio.cond);
    pthread_mutex_unlock(&qio.lock);
}


pst_uint_t
pst_qio_busy(void)
{
    return qio.busy;
}


void
pst_qio_exit(void)
{
    pst_uint_t  i;

    if (qio.efd == -1) {
        return;
    }

    pthread_mutex_lock(&qio.lock);
    qio.stop = 1;
    pthread_cond_broadcast(&qio.cond);
    pthread_mutex_unlock(&qio.lock);

    for (i = 0; i < qio.nthreads; i++) {
        pthread_join(qio.threads[i], NULL);
    }
    qio.nthreads = 0;

    (void) pst_fd_unwatch(qio.efd);
    close(qio.efd);
    qio.efd = -1;
}
