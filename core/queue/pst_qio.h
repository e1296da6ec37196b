/*
 * pst_qio.h -- the queue process's spool I/O off the event loop: a
 * small pool of threads runs jobs that read envelopes, write delivery
 * state (fsync), inject DSNs and remove messages; each job's done
 * handler then runs on the event loop (an eventfd wakes it).
 *
 * A job's run() must not touch the event loop, the log or anything
 * the loop changes meanwhile: it works on what the job carries.
 */

#ifndef PST_QIO_H
#define PST_QIO_H

#define PST_QIO_THREADS   4

typedef struct pst_qio_job_s  pst_qio_job_t;

struct pst_qio_job_s {
    pst_qio_job_t      *next;
    void              (*run)(pst_qio_job_t *job);    /* in a thread */
    void              (*done)(pst_qio_job_t *job);   /* on the loop */
    void               *data;
};

int pst_qio_init(pst_uint_t threads);
/* Queue a job.  Always succeeds (the job is the caller's memory). */
void pst_qio_post(pst_qio_job_t *job);
/* Jobs queued or running whose done has not run yet. */
pst_uint_t pst_qio_busy(void);
/* Stop the threads once the jobs queued are run (done handlers of the
 * jobs still in the pool are not called). */
void pst_qio_exit(void);

#endif /* PST_QIO_H */
