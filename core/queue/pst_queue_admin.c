/*
 * pst_queue_admin.c -- the control verbs that change the queue, on the
 * live engine (CONTRACTS.md D): flush [ID|DOMAIN], hold ID|ALL,
 * release [ID|ALL], delete ID|ALL.  The answer's first line is the
 * number of messages affected.  Memory changes at once; what must be
 * durable (hold, removal) is queued on the message's spool I/O, so a
 * request over 200,000 messages never stalls the loop.  Other verbs
 * (count, list, show, cat) read the spool: pst_queue_ctl_offline().
 */

#include "pst_core.h"
#include "pst_spool.h"
#include "pst_sched.h"
#include "pst_queue.h"
#include "pst_queue_int.h"
#include "pst_control.h"

#include <sys/mman.h>


typedef struct {
    pst_qdest_t  *dest;          /* flush DOMAIN */
    pst_uint_t    count;
    int           verb;
} pst_qadmin_t;

enum { PST_QA_FLUSH, PST_QA_HOLD, PST_QA_RELEASE, PST_QA_DELETE };

static const char  *pst_qadmin_verbs[] = {
    "flush", "hold", "release", "delete"
};


/* qctl's offline answer to the read verbs, when it is linked in */
int pst_queue_ctl_offline(int argc, char **argv, pst_buf_t *out)
    __attribute__((weak));

static int pst_queue_capture(int argc, char **argv, pst_buf_t *out);


/* Deferred recipients (of dest, or all) due now. */
int
pst_qadmin_flush_msg(pst_qmsg_t *msg, pst_qdest_t *dest)
{
    pst_uint_t  i;
    int         n = 0;

    for (i = 0; i < msg->nrcpts; i++) {
        if ((msg->rcpts[i].state == PST_RCPT_DEFERRED
             || msg->rcpts[i].state == PST_RCPT_PENDING)
            && (dest == NULL || msg->rcpts[i].dest == dest))
        {
            msg->rcpts[i].flags |= PST_QR_FLUSH;
            n = 1;
        }
    }
    if (n) {
        pst_queue_reschedule(msg);
    }
    return n;
}


static void
pst_qadmin_one(pst_qmsg_t *msg, void *data)
{
    pst_qadmin_t  *a = data;

    if (msg->deleted || msg->gone) {
        return;
    }

    switch (a->verb) {

    case PST_QA_FLUSH:
        a->count += pst_qadmin_flush_msg(msg, a->dest);
        return;

    case PST_QA_HOLD:
        if (msg->hold) {
            return;
        }
        msg->hold = 1;
        pst_q.held++;
        pst_queue_reschedule(msg);
        pst_queue_io(msg, PST_QM_HOLD);
        a->count++;
        return;

    case PST_QA_RELEASE:
        if (!msg->hold) {
            return;
        }
        /* durable, written by the open the attempt needs anyway */
        msg->hold = 0;
        pst_q.held--;
        (void) pst_qadmin_flush_msg(msg, NULL);
        pst_queue_reschedule(msg);
        pst_queue_io(msg, PST_QM_HOLD);
        a->count++;
        return;

    default:
        msg->deleted = 1;
        pst_queue_cancel_jobs(msg);
        pst_queue_reschedule(msg);
        pst_queue_io(msg, PST_QM_DELETE);
        a->count++;
        return;
    }
}


void
pst_qadmin_late(pst_qmsg_t *msg)
{
    pst_qadmin_t  a;

    a.verb = pst_q.all_verb == PST_QUEUE_ALL_HOLD ? PST_QA_HOLD
                                                  : PST_QA_RELEASE;
    a.dest = NULL;
    a.count = 0;
    pst_qadmin_one(msg, &a);
    if (a.count > 0) {
        pst_log_error(PST_LOG_INFO, 0, "queue: %s: %s ALL applied as it"
                      " was loaded", msg->id,
                      a.verb == PST_QA_HOLD ? "hold" : "release");
        pst_queue_kick();
    }
}


/* Hold one message as an operator's "hold ID" would (the transport
 * table's hold rule). */
void
pst_qadmin_late_hold(pst_qmsg_t *msg)
{
    pst_qadmin_t  a;

    a.verb = PST_QA_HOLD;
    a.dest = NULL;
    a.count = 0;
    pst_qadmin_one(msg, &a);
}


/* Dead destinations come back (flush). */
static void
pst_qadmin_revive(pst_qdest_t *only)
{
    pst_sched_t  *s = &pst_q.sched;
    pst_qdest_t  *d;
    pst_uint_t    i;

    for (i = 0; i < s->hsize; i++) {
        for (d = s->hash[i]; d != NULL; d = d->hnext) {
            if (only == NULL || d == only) {
                d->dead_until = 0;
            }
        }
    }
}


static int
pst_qadmin_verb(const char *verb)
{
    int  i;

    for (i = 0; i < (int) pst_nelems(pst_qadmin_verbs); i++) {
        if (strcmp(verb, pst_qadmin_verbs[i]) == 0) {
            return i;
        }
    }
    return -1;
}


static int
pst_qadmin_usage(pst_buf_t *out, const char *verb)
{
    char  text[128];
    int   n;

    n = snprintf(text, sizeof(text), "postern queue %s %s\n", verb,
                 strcmp(verb, "flush") == 0 ? "[ID|DOMAIN]"
                 : strcmp(verb, "release") == 0 ? "[ID|ALL]" : "ID|ALL");
    (void) pst_buf_append(out, text, (size_t) n, PST_CONTROL_ANSWER_MAX);
    return PST_QUEUE_CONTROL_USAGE;
}


int
pst_queue_admin(int argc, char **argv, pst_buf_t *out)
{
    pst_qadmin_t   a;
    pst_qmsg_t    *msg;
    const char    *arg;
    char           text[160];
    int            n, json;

    if (argc > 0 && strcmp(argv[0], "drain") == 0) {
        return pst_qdrain_control(argc, argv, out);
    }

    a.verb = argc > 0 ? pst_qadmin_verb(argv[0]) : -1;
    json = a.verb >= 0 && pst_spool_json_arg(&argc, argv);
    if (a.verb < 0) {
        if (pst_queue_ctl_offline != NULL) {
            return pst_queue_ctl_offline(argc, argv, out);
        }
        return pst_queue_capture(argc, argv, out);
    }

    if (argc > 2 || (argc == 1 && (a.verb == PST_QA_HOLD
                                   || a.verb == PST_QA_DELETE)))
    {
        return pst_qadmin_usage(out, argv[0]);
    }

    a.dest = NULL;
    a.count = 0;
    arg = argc == 2 ? argv[1] : NULL;

    if (arg == NULL || strcasecmp(arg, "ALL") == 0) {
        if (a.verb == PST_QA_HOLD || a.verb == PST_QA_RELEASE) {
            pst_q.all_gen++;
            pst_q.all_time = time(NULL);
            pst_q.all_verb = a.verb == PST_QA_HOLD ? PST_QUEUE_ALL_HOLD
                                                   : PST_QUEUE_ALL_RELEASE;
        }
        if (a.verb == PST_QA_FLUSH) {
            pst_qadmin_revive(NULL);
            /* what the start's scan has not read yet is flushed as it
             * comes (a flush right after a start, as the relay bench
             * does) */
            pst_q.flush_on_load = pst_q.loading;
        }
        pst_queue_each(pst_qadmin_one, &a);

    } else if (pst_spool_valid_id((u_char *) arg, strlen(arg))) {
        msg = pst_queue_find((u_char *) arg);
        if (msg == NULL) {
            n = snprintf(text, sizeof(text), "%s: no such message in the"
                         " queue%s\n", arg, pst_q.loading
                         ? " (the engine is still reading the spool after"
                           " its start: try again)" : "");
            (void) pst_buf_append(out, text, (size_t) n,
                                  PST_CONTROL_ANSWER_MAX);
            return PST_QUEUE_CONTROL_FAILED;
        }
        pst_qadmin_one(msg, &a);

    } else if (a.verb == PST_QA_FLUSH) {
        a.dest = pst_sched_find(&pst_q.sched, (u_char *) arg, strlen(arg));
        if (a.dest != NULL) {
            pst_qadmin_revive(a.dest);
            pst_queue_each(pst_qadmin_one, &a);
        }

    } else {
        n = snprintf(text, sizeof(text), "\"%.64s\" is not a queue ID\n",
                     arg);
        (void) pst_buf_append(out, text, (size_t) n, PST_CONTROL_ANSWER_MAX);
        return PST_QUEUE_CONTROL_FAILED;
    }

    pst_log_error(PST_LOG_NOTICE, 0, "queue: %s %s: %lu message(s)",
                  argv[0], arg != NULL ? arg : "ALL",
                  (unsigned long) a.count);
    pst_queue_gauges();
    pst_queue_kick();

    n = pst_spool_json_count(text, sizeof(text), argv[0],
                             arg != NULL ? arg : "ALL",
                             (unsigned long) a.count, json);
    (void) pst_buf_append(out, text, (size_t) pst_min((size_t) n,
                          sizeof(text) - 1), PST_CONTROL_ANSWER_MAX);
    return PST_QUEUE_CONTROL_OK;
}


static int pst_queue_capture_run(int argc, char **argv, pst_buf_t *out,
    pst_buf_t *err);
static int pst_queue_read_fd(int fd, pst_buf_t *b);
static void pst_queue_close(int fd);


/*
 * Until qctl's pst_queue_ctl_offline() is linked in: the offline spool
 * tool with its output captured (blocking, bounded local file I/O).
 */
static int
pst_queue_capture(int argc, char **argv, pst_buf_t *out)
{
    pst_buf_t  *err;
    size_t      n;
    int         rc;

    err = pst_buf_alloc(1024);
    if (err == NULL) {
        return PST_QUEUE_CONTROL_FAILED;
    }

    rc = pst_queue_capture_run(argc, argv, out, err);

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
pst_queue_capture_run(int argc, char **argv, pst_buf_t *out,
    pst_buf_t *err)
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
