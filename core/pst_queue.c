/*
 * pst_queue.c -- STUB of the delivery engine (see pst_queue.h).
 *
 * It only logs what it is told, so that the queue process, the channel
 * and the control socket can be built and tested before the relay
 * engine exists.  Control requests are answered by the offline spool
 * tool (pst_spool_tool) with its output captured: good enough for
 * count, list, show and cat, and blocking (bounded local file I/O).
 * The relay branch replaces this file.
 */

#include "pst_core.h"
#include "pst_queue.h"
#include "pst_control.h"

#include <sys/mman.h>


static int pst_queue_capture(int argc, char **argv, pst_buf_t *out,
    pst_buf_t *err);
static int pst_queue_read_fd(int fd, pst_buf_t *b);
static void pst_queue_close(int fd);


int
pst_queue_init(pst_cycle_t *cycle)
{
    pst_log_error(PST_LOG_INFO, 0, "queue: engine stub started on spool"
                  " \"%s\"", cycle->core->spool_dir.data);
    return PST_OK;
}


void
pst_queue_committed(const u_char *id, size_t len)
{
    pst_log_error(PST_LOG_INFO, 0, "queue: committed %.*s", (int) len, id);
}


void
pst_queue_shutdown(int *done)
{
    *done = 1;
}


void
pst_queue_exit(void)
{
    pst_log_debug("queue: engine stub stopped");
}


int
pst_queue_control(int argc, char **argv, pst_buf_t *out)
{
    pst_buf_t  *err;
    size_t      n;
    int         rc;

    err = pst_buf_alloc(1024);
    if (err == NULL) {
        return PST_QUEUE_CONTROL_FAILED;
    }

    rc = pst_queue_capture(argc, argv, out, err);

    if (rc != 0) {
        /* the tool's first message line is the reason */
        out->pos = out->last = out->start;
        rc = PST_QUEUE_CONTROL_FAILED;
        if (pst_buf_size(err) > 9 && memcmp(err->pos, "postern: ", 9) == 0) {
            err->pos += 9;
        } else if (pst_buf_size(err) > 7
                   && memcmp(err->pos, "usage: ", 7) == 0)
        {
            err->pos += 7;
            rc = PST_QUEUE_CONTROL_USAGE;
        }
        n = pst_buf_size(err);
        (void) pst_buf_append(out, err->pos, n, PST_CONTROL_ANSWER_MAX);
    }

    pst_buf_destroy(err);
    return rc;
}


/* Run the spool tool with stdout and stderr sent to memory files. */
static int
pst_queue_capture(int argc, char **argv, pst_buf_t *out, pst_buf_t *err)
{
    int  mo, me, so, se, rc;

    mo = memfd_create("queue-out", MFD_CLOEXEC);
    me = memfd_create("queue-err", MFD_CLOEXEC);
    so = dup(STDOUT_FILENO);
    se = dup(STDERR_FILENO);

    if (mo == -1 || me == -1 || so == -1 || se == -1) {
        rc = 1;
        goto done;
    }

    fflush(stdout);
    fflush(stderr);
    dup2(mo, STDOUT_FILENO);
    dup2(me, STDERR_FILENO);

    rc = pst_spool_tool(pst_cycle, argc, argv);

    fflush(stdout);
    fflush(stderr);
    dup2(so, STDOUT_FILENO);
    dup2(se, STDERR_FILENO);

    if (pst_queue_read_fd(mo, out) != PST_OK
        || pst_queue_read_fd(me, err) != PST_OK)
    {
        rc = 1;
    }

done:

    pst_queue_close(mo);
    pst_queue_close(me);
    pst_queue_close(so);
    pst_queue_close(se);

    return rc;
}


static int
pst_queue_read_fd(int fd, pst_buf_t *b)
{
    u_char   buf[16384];
    off_t    off = 0;
    ssize_t  n;

    for ( ;; ) {
        n = pread(fd, buf, sizeof(buf), off);
        if (n == 0) {
            return PST_OK;
        }
        if (n < 0
            || pst_buf_append(b, buf, (size_t) n, PST_CONTROL_ANSWER_MAX)
               != PST_OK)
        {
            return PST_ERROR;
        }
        off += n;
    }
}


static void
pst_queue_close(int fd)
{
    if (fd != -1) {
        close(fd);
    }
}
