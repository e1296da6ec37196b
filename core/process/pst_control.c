/*
 * pst_control.c -- the control socket: bound by the master, served by
 * the queue process, used by `postern queue` and `postern status`
 * (see pst_control.h).
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_process.h"
#include "pst_control.h"

#include <poll.h>
#include <sys/un.h>

typedef struct {
    int                          fd;
    char                         path[sizeof(((struct sockaddr_un *)
                                               NULL)->sun_path)];
    dev_t                        dev;
    ino_t                        ino;
} pst_control_sock_t;

typedef struct {
    pst_connection_t            *c;
    u_char                       line[PST_CONTROL_LINE_MAX];
    size_t                       len;
    pst_buf_t                   *out;
} pst_control_conn_t;


static int pst_control_sockop(int fd, const char *path, int do_connect);
static int pst_control_bind(pst_cycle_t *cycle, const char *path,
    pst_control_sock_t *cs);
static void pst_control_drop(pst_control_sock_t *cs, int remove);
static void pst_control_accept(int fd, void *data);
static void pst_control_read(pst_event_t *ev);
static void pst_control_write(pst_event_t *ev);
static void pst_control_timeout(pst_control_conn_t *cc);
static void pst_control_finish(pst_control_conn_t *cc);
static void pst_control_status(int json, pst_buf_t *out);
static const char *pst_control_time(time_t t, char *buf, size_t size);
static void pst_control_status_proc(pst_buf_t *out, int json, int first,
    const pst_role_t *role, const pst_proc_info_t *pi, int slot,
    time_t now);
static int pst_control_queue(int argc, char **argv, pst_buf_t *out);
static int pst_control_printf(pst_buf_t *out, const char *fmt, ...)
    PST_PRINTF(2, 3);
static int pst_control_words(u_char *line, size_t len, char **argv);
static int pst_control_client_io(int fd, const u_char *req, size_t len);
static FILE *pst_control_status_line(const u_char *p, size_t n, int *rc);

static pst_control_sock_t  cur = { -1, "", 0, 0 };
static pst_control_sock_t  prev = { -1, "", 0, 0 };
static pst_uint_t          nconns;
static int                 serving;
static int                 engine_ready = 1;
static pst_control_handler_pt  engine;


/* ------------------------------------------------------------------ */
/* Master                                                              */

/* bind() or connect() fd to path whatever the length of its directory:
 * a path too long for sun_path is reached from inside its directory. */
static int
pst_control_sockop(int fd, const char *path, int do_connect)
{
    struct sockaddr_un  sa;
    const char         *base;
    char                dir[PATH_MAX];
    size_t              n;
    int                 cwd, rc, err;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    base = path;
    cwd = -1;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        base = strrchr(path, '/');
        n = base ? (size_t) (base - path) : 0;
        if (base == NULL || strlen(++base) >= sizeof(sa.sun_path)
            || n >= sizeof(dir))
        {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
        cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cwd == -1 || chdir(n ? dir : "/") == -1) {
            err = errno;
            if (cwd != -1) {
                close(cwd);
            }
            errno = err;
            return -1;
        }
    }

    memcpy(sa.sun_path, base, strlen(base));
    rc = do_connect ? connect(fd, (struct sockaddr *) &sa, sizeof(sa))
                    : bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    err = errno;

    if (cwd != -1) {
        (void) !fchdir(cwd);
        close(cwd);
    }

    errno = err;
    return rc;
}


static int
pst_control_bind(pst_cycle_t *cycle, const char *path,
    pst_control_sock_t *cs)
{
    struct stat         st;
    mode_t              mask;
    int                 fd;

    /* what an earlier run left (a socket nobody serves any more) */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            pst_log_error(PST_LOG_EMERG, 0, "control socket \"%s\" exists"
                          " and is not a socket", path);
            return PST_ERROR;
        }
        (void) unlink(path);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "socket(AF_UNIX) failed");
        return PST_ERROR;
    }

    /* never a moment with more than 0660 */
    mask = umask(0117);
    if (pst_control_sockop(fd, path, 0) == -1) {
        umask(mask);
        pst_log_error(PST_LOG_EMERG, errno, "bind(\"%s\") failed", path);
        close(fd);
        return PST_ERROR;
    }
    umask(mask);

    if ((geteuid() == 0
         && chown(path, cycle->core->uid, cycle->core->gid) == -1)
        || chmod(path, 0660) == -1
        || listen(fd, 64) == -1
        || stat(path, &st) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "cannot set up control socket"
                      " \"%s\"", path);
        close(fd);
        (void) unlink(path);
        return PST_ERROR;
    }

    cs->fd = fd;
    snprintf(cs->path, sizeof(cs->path), "%s", path);
    cs->dev = st.st_dev;
    cs->ino = st.st_ino;

    return PST_OK;
}


int
pst_control_listen(pst_cycle_t *cycle)
{
    pst_control_sock_t  cs;
    const char         *path;

    path = (char *) cycle->core->control_socket.data;
    if (cur.fd != -1 && strcmp(cur.path, path) == 0) {
        return PST_OK;
    }

    if (pst_control_bind(cycle, path, &cs) != PST_OK) {
        return PST_ERROR;
    }

    prev = cur;
    cur = cs;
    return PST_OK;
}


void
pst_control_switch(int commit)
{
    if (prev.fd == -1) {
        return;
    }

    if (commit) {
        pst_control_drop(&prev, 1);
    } else {
        pst_control_drop(&cur, 1);
        cur = prev;
    }

    prev.fd = -1;
}


/* Close; remove the file only when it is still the one we bound. */
static void
pst_control_drop(pst_control_sock_t *cs, int remove)
{
    struct stat  st;

    if (cs->fd == -1) {
        return;
    }
    close(cs->fd);
    cs->fd = -1;

    if (remove && stat(cs->path, &st) == 0 && st.st_dev == cs->dev
        && st.st_ino == cs->ino)
    {
        (void) unlink(cs->path);
    }
}


void
pst_control_close(int remove)
{
    pst_control_stop();
    pst_control_drop(&prev, remove);
    pst_control_drop(&cur, remove);
}


/* ------------------------------------------------------------------ */
/* Queue process: the server                                           */

int
pst_control_serve(pst_cycle_t *cycle)
{
    (void) cycle;

    /* a previous socket of a reload still in progress is not ours */
    pst_control_drop(&prev, 0);

    if (cur.fd == -1) {
        pst_log_error(PST_LOG_WARN, 0, "no control socket to serve");
        return PST_OK;
    }

    if (pst_fd_watch(cur.fd, pst_control_accept, NULL) != PST_OK) {
        return PST_ERROR;
    }
    serving = 1;

    return PST_OK;
}


void
pst_control_engine(int ready)
{
    engine_ready = ready;
}


void
pst_control_handler(pst_control_handler_pt handler)
{
    engine = handler;
}


void
pst_control_stop(void)
{
    if (serving) {
        (void) pst_fd_unwatch(cur.fd);
        serving = 0;
        /* the master keeps its copy: the next queue process answers */
        pst_control_drop(&cur, 0);
    }
}


pst_uint_t
pst_control_busy(void)
{
    return nconns;
}


static void
pst_control_accept(int lfd, void *data)
{
    pst_control_conn_t  *cc;
    pst_connection_t    *c;
    int                  fd, i;

    (void) data;

    for (i = 0; i < 8; i++) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                pst_log_error(PST_LOG_ERR, errno, "control: accept()"
                              " failed");
            }
            return;
        }

        cc = NULL;
        c = NULL;
        if (nconns >= PST_CONTROL_CONN_MAX
            || (cc = calloc(1, sizeof(pst_control_conn_t))) == NULL
            || (c = pst_get_connection(fd)) == NULL)
        {
            pst_log_error(PST_LOG_WARN, 0, "control: connection refused"
                          " (%lu open)", (unsigned long) nconns);
            (void) !write(fd, "ERR busy, try again\n", 20);
            free(cc);
            close(fd);
            continue;
        }

        nconns++;
        cc->c = c;
        c->data = cc;
        c->read.handler = pst_control_read;
        c->write.handler = pst_control_write;

        if (pst_event_add_conn(c) != PST_OK) {
            pst_control_finish(cc);
            continue;
        }
        pst_event_add_timer(&c->read, PST_CONTROL_TIMEOUT);
        c->read.ready = 1;
        pst_control_read(&c->read);
    }
}


static void
pst_control_read(pst_event_t *ev)
{
    pst_connection_t    *c = ev->data;
    pst_control_conn_t  *cc = c->data;
    u_char              *lf;
    ssize_t              n;

    if (ev->timedout) {
        pst_control_timeout(cc);
        return;
    }

    while (cc->out == NULL) {
        n = c->recv(c, cc->line + cc->len, sizeof(cc->line) - cc->len);
        if (n == PST_AGAIN) {
            return;
        }
        if (n <= 0) {
            pst_control_finish(cc);     /* gone before asking */
            return;
        }
        cc->len += (size_t) n;

        lf = memchr(cc->line, '\n', cc->len);
        if (lf == NULL && cc->len < sizeof(cc->line)) {
            continue;
        }

        cc->out = pst_buf_alloc(4096);
        if (cc->out == NULL) {
            pst_control_finish(cc);
            return;
        }

        if (lf == NULL) {
            (void) pst_control_printf(cc->out, "ERR request line longer"
                                      " than %d bytes\n",
                                      PST_CONTROL_LINE_MAX);
        } else {
            (void) pst_control_answer(cc->line, (size_t) (lf - cc->line),
                                      cc->out);
        }

        pst_event_del_timer(&c->read);
        pst_event_add_timer(&c->write, PST_CONTROL_TIMEOUT);
        c->write.ready = 1;
        pst_control_write(&c->write);
        return;
    }
}


static void
pst_control_write(pst_event_t *ev)
{
    pst_connection_t    *c = ev->data;
    pst_control_conn_t  *cc = c->data;
    ssize_t              n;

    if (ev->timedout) {
        pst_control_timeout(cc);
        return;
    }
    if (cc->out == NULL) {
        return;
    }

    while (pst_buf_size(cc->out) > 0) {
        n = c->send(c, cc->out->pos, pst_buf_size(cc->out));
        if (n == PST_AGAIN) {
            return;
        }
        if (n < 0) {
            pst_control_finish(cc);
            return;
        }
        cc->out->pos += n;
    }

    pst_control_finish(cc);
}


static void
pst_control_timeout(pst_control_conn_t *cc)
{
    pst_log_error(PST_LOG_WARN, 0, "control: client timed out");
    pst_control_finish(cc);
}


static void
pst_control_finish(pst_control_conn_t *cc)
{
    pst_close_connection(cc->c);
    if (cc->out != NULL) {
        pst_buf_destroy(cc->out);
    }
    free(cc);
    nconns--;
}


/* Split on single spaces and xtext-decode each word in place. */
static int
pst_control_words(u_char *line, size_t len, char **argv)
{
    u_char   *p, *end, *sp;
    ssize_t   n;
    int       argc = 0;

    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }

    p = line;
    end = line + len;

    while (p < end) {
        sp = memchr(p, ' ', (size_t) (end - p));
        if (sp == NULL) {
            sp = end;
        }
        if (sp == p || argc == PST_CONTROL_ARGS_MAX) {
            return -1;
        }
        n = pst_xtext_decode(p, p, (size_t) (sp - p));
        if (n < 0 || memchr(p, '\0', (size_t) n) != NULL) {
            return -1;
        }
        p[n] = '\0';
        argv[argc++] = (char *) p;
        p = sp + 1;
        if (sp < end && p == end) {
            return -1;                  /* a trailing space */
        }
    }

    argv[argc] = NULL;
    return argc;
}


int
pst_control_answer(u_char *line, size_t len, pst_buf_t *out)
{
    char               *argv[PST_CONTROL_ARGS_MAX + 1];
    u_char              verb[64];
    size_t              n;
    int                 argc;

    argc = pst_control_words(line, len, argv);
    if (argc > 0) {
        n = pst_sanitize(verb, sizeof(verb), (u_char *) argv[0],
                         strlen(argv[0]));
        pst_log_error(PST_LOG_INFO, 0, "control: %.*s request (%d"
                      " word(s))", (int) n, verb, argc);
    }
    if (argc <= 0) {
        return pst_control_printf(out, "USAGE VERB [ARG...]: words separated"
                                  " by one space, xtext-encoded\n");
    }

    if (strcmp(argv[0], "status") == 0) {
        if (argc > 2 || (argc == 2 && strcmp(argv[1], "json") != 0)) {
            return pst_control_printf(out, "USAGE status [json]\n");
        }
        (void) pst_control_printf(out, "OK\n");
        pst_control_status(argc == 2, out);
        return PST_OK;
    }

    return pst_control_queue(argc, argv, out);
}


/* Everything but status: the engine's answer, its status made a line. */
static int
pst_control_queue(int argc, char **argv, pst_buf_t *out)
{
    static const char  *heads[] = { "OK", "ERR", "USAGE" };
    pst_buf_t          *body;
    u_char             *p, *nl;
    size_t              n;
    int                 rc, h;

    if (engine_ready == PST_CONTROL_NO_ENGINE) {
        return pst_control_printf(out, "ERR no router module is loaded"
                                  " (load_module relay_mx): nothing is"
                                  " delivered, the queue has no engine\n");
    }
    if (!engine_ready) {
        return pst_control_printf(out, "ERR the queue process waits for"
                                  " another one to finish with the spool;"
                                  " try again later\n");
    }
    if (engine == NULL) {
        return pst_control_printf(out, "ERR this process has no queue"
                                  " engine\n");
    }

    body = pst_buf_alloc(4096);
    if (body == NULL) {
        return pst_control_printf(out, "ERR out of memory\n");
    }

    rc = engine(argc, argv, body);
    h = rc == PST_CONTROL_OK ? 0 : rc == PST_CONTROL_USAGE ? 2 : 1;

    p = body->pos;
    n = pst_buf_size(body);
    (void) pst_control_printf(out, "%s", heads[h]);

    if (h != 0) {
        /* the first line of the body is the text of the status line */
        nl = memchr(p, '\n', n);
        (void) pst_control_printf(out, " %.*s",
                                  (int) (nl ? nl - p : (ssize_t) n),
                                  (char *) p);
        n -= nl ? (size_t) (nl + 1 - p) : n;
        p = nl ? nl + 1 : p + n;
    }

    if (pst_buf_append(out, "\n", 1, PST_CONTROL_ANSWER_MAX) != PST_OK
        || pst_buf_append(out, p, n, PST_CONTROL_ANSWER_MAX) != PST_OK)
    {
        out->pos = out->last = out->start;
        (void) pst_control_printf(out, "ERR answer too large\n");
    }

    pst_buf_destroy(body);
    return PST_OK;
}


static int
pst_control_printf(pst_buf_t *out, const char *fmt, ...)
{
    char     buf[1024];
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (n < 0) {
        return PST_ERROR;
    }

    return pst_buf_append(out, buf, pst_min((size_t) n, sizeof(buf) - 1),
                          PST_CONTROL_ANSWER_MAX);
}


/* ------------------------------------------------------------------ */
/* status                                                              */

/* "2026-12-03T08:13:19Z", or "never" for 0. */
static const char *
pst_control_time(time_t t, char *buf, size_t size)
{
    struct tm  tm;

    if (t == 0 || gmtime_r(&t, &tm) == NULL
        || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        return "never";
    }
    return buf;
}


static void
pst_control_status_proc(pst_buf_t *out, int json, int first,
    const pst_role_t *role, const pst_proc_info_t *pi, int slot, time_t now)
{
    char  t[32];

    if (json) {
        (void) pst_control_printf(out, "%s\n  {\"role\": \"%s\","
            " \"pid\": %d, \"slot\": %d, \"started\": %lld,"
            " \"uptime\": %lld, \"generation\": %u, \"state\": \"%s\"}",
            first ? "" : ",", role->name, (int) pi->pid, slot,
            (long long) pi->started, (long long) (now - pi->started),
            pi->generation, pi->exiting ? "exiting" : "running");
        return;
    }

    (void) pst_control_printf(out, "%-7s pid %d  slot %d  started %s"
        "  uptime %llds  generation %u  %s\n",
        role->name, (int) pi->pid, slot,
        pst_control_time(pi->started, t, sizeof(t)),
        (long long) (now - pi->started), pi->generation,
        pi->exiting ? "exiting" : "running");
}


static void
pst_control_status(int json, pst_buf_t *out)
{
    pst_proc_status_t  *st;
    pst_proc_info_t    *pi;
    const pst_role_t   *role;
    time_t              now;
    char                t1[32], t2[32];
    int                 i, first;

    st = malloc(sizeof(pst_proc_status_t));
    if (st == NULL || pst_process_status(st) != PST_OK) {
        free(st);
        (void) pst_control_printf(out, json ? "{}\n" : "no status\n");
        return;
    }

    now = time(NULL);

    if (json) {
        (void) pst_control_printf(out, "{\"master\": {\"pid\": %d,"
            " \"started\": %lld, \"uptime\": %lld, \"generation\": %u,"
            " \"reloads\": %u, \"last_reload\": %lld,"
            " \"reload_failures\": %u, \"respawns\": %u},\n"
            " \"processes\": [",
            (int) st->master, (long long) st->started,
            (long long) (now - st->started), st->generation, st->reloads,
            (long long) st->last_reload, st->reload_failures, st->respawns);
    } else {
        (void) pst_control_printf(out, "master  pid %d  started %s"
            "  uptime %llds  generation %u  reloads %u (last %s, %u failed)"
            "  respawns %u\n",
            (int) st->master, pst_control_time(st->started, t1, sizeof(t1)),
            (long long) (now - st->started), st->generation, st->reloads,
            pst_control_time(st->last_reload, t2, sizeof(t2)),
            st->reload_failures, st->respawns);
    }

    first = 1;
    for (i = 0; i < PST_MAX_PROCS; i++) {
        pi = &st->procs[i];
        role = pst_process_role(pi->role);
        if (pi->pid <= 0 || role == NULL) {
            continue;
        }
        pst_control_status_proc(out, json, first, role, pi, i, now);
        first = 0;
    }

    if (json) {
        (void) pst_control_printf(out, "]}\n");
    }

    free(st);
}


/* ------------------------------------------------------------------ */
/* Client                                                              */

int
pst_control_request(const char *path, int argc, char **argv)
{
    struct timeval      tv = { PST_CONTROL_TIMEOUT / 1000, 0 };
    u_char              req[PST_CONTROL_LINE_MAX], *p;
    size_t              n;
    int                 fd, i, rc;

    p = req;
    for (i = 0; i < argc; i++) {
        n = strlen(argv[i]);
        if (n == 0 || pst_xtext_encoded_length((u_char *) argv[i], n) + 2
                      > (size_t) (req + sizeof(req) - p))
        {
            fprintf(stderr, "postern: %s argument\n",
                    n ? "request too long at an" : "empty");
            return 1;
        }
        if (i > 0) {
            *p++ = ' ';
        }
        p += pst_xtext_encode(p, (u_char *) argv[i], n);
    }
    *p++ = '\n';

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fprintf(stderr, "postern: socket(): %s\n", strerror(errno));
        return 1;
    }
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    if (pst_control_sockop(fd, path, 1) == -1) {
        rc = errno;
        close(fd);
        if (rc == ENOENT || rc == ECONNREFUSED) {
            return -1;
        }
        fprintf(stderr, "postern: cannot connect to \"%s\": %s\n", path,
                strerror(rc));
        return 1;
    }

    rc = pst_control_client_io(fd, req, (size_t) (p - req));
    close(fd);

    return rc;
}


/* OK: the body goes to stdout, exit 0; ERR and USAGE: the text and
 * the body to stderr, exit 1 or 64 (EX_USAGE). */
static FILE *
pst_control_status_line(const u_char *p, size_t n, int *rc)
{
    *rc = 1;

    if (n == 2 && memcmp(p, "OK", 2) == 0) {
        *rc = 0;
        return stdout;
    }
    if (n >= 4 && memcmp(p, "ERR ", 4) == 0) {
        fprintf(stderr, "postern: %.*s\n", (int) n - 4, (char *) p + 4);
    } else if (n >= 6 && memcmp(p, "USAGE ", 6) == 0) {
        fprintf(stderr, "usage: %.*s\n", (int) n - 6, (char *) p + 6);
        *rc = PST_CONTROL_EX_USAGE;
    } else {
        fprintf(stderr, "postern: unexpected answer \"%.*s\"\n",
                (int) pst_min(n, 200), (char *) p);
    }

    return stderr;
}


/* Send the request, then copy the answer: the status line decides
 * where the rest goes. */
static int
pst_control_client_io(int fd, const u_char *req, size_t len)
{
    u_char   buf[16384], *nl;
    ssize_t  n;
    size_t   have = 0;
    FILE    *to = NULL;
    int      rc = 1;

    if (write(fd, req, len) != (ssize_t) len) {
        fprintf(stderr, "postern: control socket: %s\n", strerror(errno));
        return 1;
    }

    for ( ;; ) {
        n = read(fd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        have += (size_t) n;

        if (to == NULL) {
            nl = memchr(buf, '\n', have);
            if (nl == NULL && have < sizeof(buf)) {
                continue;
            }
            if (nl == NULL) {
                break;
            }
            to = pst_control_status_line(buf, (size_t) (nl - buf), &rc);
            n = (ssize_t) (have - (size_t) (nl + 1 - buf));
            memmove(buf, nl + 1, (size_t) n);
            have = (size_t) n;
        }

        if (have > 0 && fwrite(buf, 1, have, to) != have) {
            rc = 1;
        }
        have = 0;
    }

    if (n < 0) {
        fprintf(stderr, "postern: control socket: %s\n", strerror(errno));
        return 1;
    }
    if (to == NULL) {
        fprintf(stderr, "postern: no answer on the control socket\n");
        return 1;
    }

    fflush(to);
    return rc;
}
