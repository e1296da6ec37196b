/*
 * pst_pickup.c -- the queue process takes what postern-sendmail left in
 * SPOOL/maildrop (pst_spool_maildrop.c) into the spool: at start, then
 * every PST_PICKUP_INTERVAL while it runs.  The files are read and
 * injected off the event loop (a pst_qio job, as other spool I/O); the
 * engine is told of each new message as a worker's COMMITTED would.  A
 * receive-only Postern (no engine) does the same on its loop.  Only the
 * process that holds queue.lock runs it, so no file is taken twice.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_queue.h"
#include "pst_qio.h"
#include "pst_smtp.h"

#include <dirent.h>

#define PST_PICKUP_INTERVAL  1000       /* ms */
#define PST_PICKUP_BATCH     64         /* files a job takes at most */

typedef struct {
    pst_qio_job_t       io;
    int                 dfd;
    off_t               max;            /* the largest message taken */
    pst_uint_t          n, nbad;
    int                 more;           /* the batch was full */
    u_char              id[PST_PICKUP_BATCH][PST_QUEUE_ID_LEN + 1];
    char                name[PST_PICKUP_BATCH][64];
    char                bad[PST_PICKUP_BATCH][64];
    const char         *why[PST_PICKUP_BATCH];
} pst_pickup_job_t;

static void pst_pickup_timer_handler(pst_event_t *ev);
static void pst_pickup_run(pst_qio_job_t *io);
static void pst_pickup_done(pst_qio_job_t *io);

static pst_event_t        pickup_timer;
static pst_pickup_job_t   pickup_job;
static int                pickup_on;       /* started, not stopped */
static int                pickup_busy;     /* a run in flight */
static int                pickup_engine;   /* in a qio thread, tell it */


/* The largest message_size_limit of the server blocks (a maildrop file
 * holds its envelope too: a few KiB of slack), 0 for none. */
static off_t
pst_pickup_max(pst_cycle_t *cycle)
{
    pst_server_t  **srv = cycle->servers.elts;
    size_t          max = 0;
    pst_uint_t      i;

    for (i = 0; i < cycle->servers.nelts; i++) {
        if (srv[i]->conf->message_size_limit == 0) {
            return 0;
        }
        max = pst_max(max, srv[i]->conf->message_size_limit);
    }
    return max > 0 ? (off_t) max + 65536 : 0;
}


int
pst_pickup_start(pst_cycle_t *cycle, int engine)
{
    char  path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/" PST_SPOOL_MAILDROP,
             cycle->core->spool_dir.data);
    pickup_job.dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pickup_job.dfd == -1) {
        pst_log_error(PST_LOG_ALERT, errno, "queue: open(\"%s\") failed:"
                      " the maildrop is not read", path);
        return PST_OK;      /* the rest of the queue works */
    }
    pickup_on = 1;
    pickup_engine = engine;
    pickup_job.max = pst_pickup_max(cycle);
    pickup_job.io.run = pst_pickup_run;
    pickup_job.io.done = pst_pickup_done;
    pickup_job.io.data = &pickup_job;
    pickup_timer.handler = pst_pickup_timer_handler;
    pickup_timer.data = NULL;
    pst_pickup_timer_handler(&pickup_timer);
    return PST_OK;
}


void
pst_pickup_stop(void)
{
    if (!pickup_on) {
        return;
    }
    pickup_on = 0;
    if (pickup_timer.timer_set) {
        pst_event_del_timer(&pickup_timer);
    }
    if (!pickup_busy) {
        close(pickup_job.dfd);      /* else when the run is done */
    }
}


static void
pst_pickup_timer_handler(pst_event_t *ev)
{
    (void) ev;

    if (pickup_busy || !pickup_on) {
        return;
    }
    pickup_busy = 1;
    if (pickup_engine) {
        pst_qio_post(&pickup_job.io);
    } else {
        pst_pickup_run(&pickup_job.io);
        pst_pickup_done(&pickup_job.io);
    }
}


/* In a thread: up to a batch of files into the spool. */
static void
pst_pickup_run(pst_qio_job_t *io)
{
    pst_pickup_job_t  *j = io->data;
    struct dirent     *de;
    const char        *why;
    DIR               *d;
    int                fd, rc;

    j->n = 0;
    j->nbad = 0;
    j->more = 0;
    fd = dup(j->dfd);
    d = fd == -1 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd != -1) {
            close(fd);
        }
        return;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        if (j->n == PST_PICKUP_BATCH || j->nbad == PST_PICKUP_BATCH) {
            j->more = 1;
            break;
        }
        why = NULL;
        rc = pst_spool_maildrop_take(j->dfd, de->d_name, j->max, j->id[j->n],
                                     &why);
        if (rc == PST_OK) {
            snprintf(j->name[j->n++], sizeof(j->name[0]), "%.63s",
                     de->d_name);
        } else if (rc == PST_ERROR || rc == PST_AGAIN) {
            snprintf(j->bad[j->nbad], sizeof(j->bad[0]), "%.63s", de->d_name);
            j->why[j->nbad++] = rc == PST_AGAIN ? "left for the next scan"
                                : why ? why : "unreadable";
            if (rc == PST_AGAIN) {
                break;      /* the spool fails: not the file's fault */
            }
        }
    }
    closedir(d);
}


/* On the loop: log, tell the engine, and the next run. */
static void
pst_pickup_done(pst_qio_job_t *io)
{
    pst_pickup_job_t  *j = io->data;
    pst_uint_t         i;

    pickup_busy = 0;
    for (i = 0; i < j->nbad; i++) {
        pst_log_error(PST_LOG_WARN, 0, "queue: maildrop file %s: %s%s",
                      j->bad[i], j->why[i],
                      strcmp(j->why[i], "left for the next scan") == 0
                      ? "" : " (removed)");
    }
    for (i = 0; i < j->n; i++) {
        pst_log_error(PST_LOG_INFO, 0, "queue: maildrop file %s taken as"
                      " %s", j->name[i], j->id[i]);
        if (pickup_engine && pickup_on) {
            pst_queue_committed(j->id[i], PST_QUEUE_ID_LEN);
        }
    }
    if (!pickup_on) {
        close(j->dfd);
        return;
    }
    pst_event_add_timer(&pickup_timer, j->more ? 1 : PST_PICKUP_INTERVAL);
}
