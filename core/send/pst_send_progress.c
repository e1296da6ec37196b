/*
 * pst_send_progress.c -- --progress: how much of a big message is sent,
 * on a terminal (stderr), twice a second and once more at the end.
 *
 * The outbound client reads the message itself (pread, 64 KiB at a
 * time, as the connection takes it), so the count is what this process
 * has read from files since the transaction started (/proc/self/io
 * "rchar", which socket reads do not touch): the message bytes handed
 * to the connection, ahead by at most a buffer -- close enough for a
 * progress line, and it needs no hook in the client.
 */

#include "pst_send_run.h"

#define PST_SEND_PROGRESS_MS  500

static uint64_t pst_send_rchar(void);
static void pst_send_progress_tick(pst_event_t *ev);
static void pst_send_progress_line(pst_send_run_t *r, int last);


static uint64_t
pst_send_rchar(void)
{
    char                 line[128];
    unsigned long long   v = 0;
    FILE                *f;

    f = fopen("/proc/self/io", "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "rchar: %llu", &v) == 1) {
            break;
        }
    }
    fclose(f);
    return v;
}


static void
pst_send_progress_line(pst_send_run_t *r, int last)
{
    uint64_t  done = last ? (uint64_t) r->job->msg->length
                          : pst_send_rchar() - r->wbase;
    double    total = (double) r->job->msg->length;

    if (done > (uint64_t) r->job->msg->length) {
        done = (uint64_t) r->job->msg->length;
    }
    fprintf(stderr, "\rpostern-send: %.1f MiB of %.1f MiB sent (%d%%)%s",
            (double) done / 1048576, total / 1048576,
            total > 0 ? (int) (done * 100 / total) : 100, last ? "\n" : "");
}


static void
pst_send_progress_tick(pst_event_t *ev)
{
    pst_send_run_t  *r = ev->data;

    pst_send_progress_line(r, 0);
    pst_event_add_timer(ev, PST_SEND_PROGRESS_MS);
}


void
pst_send_progress_start(pst_send_run_t *r)
{
    if (!r->o->progress || !isatty(STDERR_FILENO)) {
        return;
    }
    r->wbase = pst_send_rchar();
    r->progress.data = r;
    r->progress.handler = pst_send_progress_tick;
    r->progress_on = 1;
    pst_event_add_timer(&r->progress, PST_SEND_PROGRESS_MS);
}


void
pst_send_progress_stop(pst_send_run_t *r, int complete)
{
    if (!r->progress_on) {
        return;
    }
    r->progress_on = 0;
    if (r->progress.timer_set) {
        pst_event_del_timer(&r->progress);
    }
    if (complete) {
        pst_send_progress_line(r, 1);
    } else {
        fputc('\n', stderr);
    }
}
