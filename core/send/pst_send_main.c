/*
 * pst_send_main.c -- postern-send: compose a message from the command
 * line (or take a ready one) and submit it through any SMTP server,
 * print it (--print), or queue it (--queue DIR).  See --help and the
 * README's "postern-send" section.
 */

#include "pst_send.h"

#include <fcntl.h>
#include <signal.h>

typedef struct {
    const pst_send_opts_t  *o;
    FILE                   *f;
    pst_send_env_t         *env;
} pst_send_main_t;

static int pst_send_build(const pst_send_opts_t *o, FILE *f,
    pst_send_env_t *env, int allow_8bit, char *err, size_t size);
static int pst_send_recompose(void *data, pst_send_msg_t *msg,
    unsigned what, char *err, size_t size);
static int pst_send_print(pst_send_msg_t *msg);
static int pst_send_message(pst_send_opts_t *o);
static int pst_send_commands_only(pst_send_opts_t *o);
static int pst_send_stdin_body(pst_send_opts_t *o, FILE **keep, char *path,
    size_t psize, char *err, size_t size);


static int
pst_send_build(const pst_send_opts_t *o, FILE *f, pst_send_env_t *env,
    int allow_8bit, char *err, size_t size)
{
    int  fd, rc;

    if (o->raw == NULL) {
        return pst_send_compose(o, allow_8bit, f, env, err, size);
    }

    rc = pst_send_envelope(o, env, err, size);
    if (rc != PST_OK) {
        return rc;
    }
    fd = strcmp(o->raw, "-") == 0 ? STDIN_FILENO
                                  : open(o->raw, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, size, "%s: %s", o->raw, strerror(errno));
        return PST_SEND_NOINPUT;
    }
    rc = pst_send_raw(fd, f, env, o->extract ? PST_SEND_RAW_EXTRACT : 0,
                      NULL, err, size);
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    return rc;
}


/* The server lacks 8BITMIME: the same message with 7-bit text parts;
 * or SMTPUTF8: a ready message's 8-bit header fields encoded (a
 * composed one has none). */
static int
pst_send_recompose(void *data, pst_send_msg_t *msg, unsigned what,
    char *err, size_t size)
{
    pst_send_main_t  *m = data;
    pst_send_env_t    env;
    int               rc;

    if (m->o->raw != NULL) {
        return pst_send_raw_recompose(m->f, msg, m->env, what, err, size);
    }
    if (!(what & PST_SEND_RAW_7BIT)) {
        return PST_OK;
    }
    rewind(m->f);
    if (ftruncate(fileno(m->f), 0) != 0) {
        snprintf(err, size, "temporary file: %s", strerror(errno));
        return PST_ERROR;
    }
    rc = pst_send_compose(m->o, 0, m->f, &env, err, size);
    pst_send_env_free(&env);
    if (rc == PST_OK) {
        rc = pst_send_finish(m->f, msg, err, size);
    }
    return rc == PST_OK ? PST_OK : PST_ERROR;
}


/* A body on stdin is read once: into a temporary file, which a second
 * composition (no 8BITMIME) reads again by its /proc/self/fd name. */
static int
pst_send_stdin_body(pst_send_opts_t *o, FILE **keep, char *path,
    size_t psize, char *err, size_t size)
{
    char     buf[65536];
    ssize_t  n;
    int      rc;

    if (o->body_file == NULL || strcmp(o->body_file, "-") != 0) {
        return PST_OK;
    }
    rc = pst_send_tmpfile(keep, err, size);
    if (rc != PST_OK) {
        return rc;
    }
    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 || fwrite(buf, 1, (size_t) n, *keep) != (size_t) n) {
            snprintf(err, size, "the body on stdin: %s", strerror(errno));
            return PST_SEND_IOERR;
        }
    }
    if (fflush(*keep) != 0) {
        snprintf(err, size, "the body on stdin: %s", strerror(errno));
        return PST_SEND_IOERR;
    }
    snprintf(path, psize, "/proc/self/fd/%d", fileno(*keep));
    o->body_file = path;
    return PST_OK;
}


static int
pst_send_print(pst_send_msg_t *msg)
{
    char     buf[65536];
    ssize_t  n;
    off_t    off = 0;

    while ((n = pread(msg->fd, buf, sizeof(buf), off)) > 0) {
        if (fwrite(buf, 1, (size_t) n, stdout) != (size_t) n) {
            return PST_SEND_IOERR;
        }
        off += n;
    }
    return fflush(stdout) == 0 && n == 0 ? PST_OK : PST_SEND_IOERR;
}


/* --verify / --expand without a message. */
static int
pst_send_commands_only(pst_send_opts_t *o)
{
    pst_send_env_t  env;
    pst_send_job_t  job;
    char            err[1024];
    int             rc;

    memset(&job, 0, sizeof(job));
    job.env = &env;
    rc = pst_send_envelope(o, &env, err, sizeof(err));
    if (rc != PST_OK) {
        pst_send_err("%s\n", err);
    } else {
        rc = pst_send_run(o, &job);
    }
    pst_send_env_free(&env);
    pst_send_list_free(&job.retry);
    pst_send_list_free(&job.refused);
    return rc;
}


/* Compose (or take) the message, then print, queue or send it. */
static int
pst_send_message(pst_send_opts_t *o)
{
    pst_send_env_t   env;
    pst_send_job_t   job;
    pst_send_msg_t   msg;
    pst_send_main_t  m;
    FILE            *f = NULL, *body = NULL;
    char             err[1024], body_path[64];
    int              rc;

    memset(&env, 0, sizeof(env));
    memset(&job, 0, sizeof(job));
    job.env = &env;

    rc = pst_send_stdin_body(o, &body, body_path, sizeof(body_path), err,
                             sizeof(err));
    if (rc == PST_OK) {
        rc = pst_send_tmpfile(&f, err, sizeof(err));
    }
    if (rc == PST_OK) {
        rc = pst_send_build(o, f, &env, o->queue == NULL, err, sizeof(err));
    }
    if (rc == PST_OK) {
        rc = pst_send_finish(f, &msg, err, sizeof(err));
    }
    if (rc == PST_OK && env.rcpts.n == 0) {
        snprintf(err, sizeof(err), "no recipient in the message");
        rc = PST_SEND_USAGE;
    }

    if (rc != PST_OK) {
        pst_send_err("%s\n", err);
    } else if (o->print) {
        rc = pst_send_print(&msg);
    } else if (o->queue != NULL) {
        rc = pst_send_queue_put(o, &env, &msg, err, sizeof(err));
        if (rc != PST_OK) {
            pst_send_err("%s\n", err);
        }
    } else {
        m.o = o;
        m.f = f;
        m.env = &env;
        job.msg = &msg;
        job.recompose = pst_send_recompose;
        job.recompose_data = &m;
        rc = pst_send_run(o, &job);
    }

    if (f != NULL) {
        fclose(f);
    }
    if (body != NULL) {
        fclose(body);
    }
    pst_send_env_free(&env);
    pst_send_list_free(&job.retry);
    pst_send_list_free(&job.refused);
    return rc;
}


int
main(int argc, char **argv)
{
    pst_send_opts_t  o;
    char             err[1024];
    int              rc;

    signal(SIGPIPE, SIG_IGN);

    if (pst_send_opts_parse(&o, argc, argv, err, sizeof(err)) != PST_OK) {
        pst_send_err("%s\nTry 'postern-send --help'.\n", err);
        rc = PST_SEND_USAGE;
    } else if (o.help) {
        pst_send_usage(stdout);
        rc = PST_SEND_OK;
    } else if (o.version) {
        printf("postern-send %s\n", PST_VERSION);
        rc = PST_SEND_OK;
    } else if (o.process_queue != NULL) {
        rc = pst_send_queue_run(&o);
    } else if (o.to.n + o.cc.n + o.bcc.n == 0 && !o.extract) {
        rc = pst_send_commands_only(&o);
    } else {
        rc = pst_send_message(&o);
    }

    pst_send_opts_free(&o);
    return rc;
}
