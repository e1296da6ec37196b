/*
 * pst_sendmail.c -- postern-sendmail: the sendmail(8) command line for
 * cron, mail(1) and scripts, injecting into the local Postern.
 *
 *   postern-sendmail [-t] [-i|-oi] [-f ADDR|-r ADDR] [-F NAME] [-N DSN]
 *                    [-R RET] [-V ENVID] [-C CONF] [-v] [-bm|-bs|-bp]
 *                    [RECIPIENT...]  < message
 *
 * -bm (default): the message on stdin goes over SMTP to the first
 * "listen" address of the Postern configuration (-C, $POSTERN_CONF, or
 * the server's default, PST_CONF_PATH; $POSTERN_SERVER overrides), in
 * clear on loopback, with From/Date/Message-ID added when missing; when
 * Postern does not answer or defers, into its spool or its maildrop
 * (pst_sendmail_spool.c).  -bs speaks SMTP on stdin/stdout (relayed to
 * that listener; a 421 and 75 when there is none).  -bp (and the
 * name mailq) runs "postern queue list --mailq".  Other sendmail
 * options (-o..., -B, -d...) are accepted and ignored.  Flags cluster
 * as with getopt(3) (-ti); -f, -N and -R are checked before anything is
 * read (exit 64 when wrong; -f '' and -f '<>' are the null sender).
 * Exit codes: sysexits.h, as postern-send.
 */

#include "pst_send.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>

typedef struct {
    int                 extract, dot, mode, verbose;
    const char         *from, *full_name, *notify, *ret, *envid, *conf;
    pst_send_list_t     rcpts;
} pst_sendmail_t;

/* sendmail's letters that take a value (as Postfix's and Sendmail's
 * getopt strings); -q is apart: its value, if any, is attached */
#define PST_SENDMAIL_VALUE  "BCFLMNOQRVXbdefhopr"

static int pst_sendmail_opt(pst_sendmail_t *sm, int c, const char *v);
static int pst_sendmail_check(pst_sendmail_t *sm);
static int pst_sendmail_args(pst_sendmail_t *sm, int argc, char **argv);
static int pst_sendmail_bs(const char *server);
static int pst_sendmail_bp(const pst_sendmail_t *sm, char *argv0);
static int pst_sendmail_bm(pst_sendmail_t *sm, const char *server);
static char *pst_sendmail_default_from(void);
static void pst_sendmail_env(pst_sendmail_t *sm, pst_send_env_t *env);
static int pst_sendmail_later(pst_sendmail_t *sm, pst_send_opts_t *o,
    pst_send_env_t *env, pst_send_job_t *job, pst_send_msg_t *msg, int rc);
static int pst_sendmail_q(pst_sendmail_t *sm, const char *server);


/* One option letter c, with its value v (NULL for a flag). */
static int
pst_sendmail_opt(pst_sendmail_t *sm, int c, const char *v)
{
    switch (c) {
    case 't': sm->extract = 1; break;
    case 'i': sm->dot = 0; break;
    case 'v': sm->verbose = 1; break;
    case 'f': case 'r': sm->from = v; break;
    case 'F': sm->full_name = v; break;
    case 'N': sm->notify = v; break;
    case 'R': sm->ret = v; break;
    case 'V': sm->envid = v; break;
    case 'C': sm->conf = v; break;
    case 'o':
        if (strcmp(v, "i") == 0) {
            sm->dot = 0;
        }
        break;      /* -oem, -odb, -oX...: ignored */
    case 'q':
        sm->mode = 'q';     /* -q, -q30m: run the maildrop once */
        break;
    case 'b':
        if (strcmp(v, "m") == 0 || strcmp(v, "s") == 0
            || strcmp(v, "p") == 0)
        {
            sm->mode = *v;
            break;
        }
        pst_send_err("-b%s: not a supported mode (-bm, -bs, -bp)\n", v);
        return PST_SEND_USAGE;
    default:
        break;      /* -G, -I, -m, -n, -U, -x...: ignored */
    }
    return PST_OK;
}


/* What the options say must make sense before anything is read: a
 * sender that is an address (or '' or '<>', the null sender), and DSN
 * values a server will take. */
static int
pst_sendmail_check(pst_sendmail_t *sm)
{
    char  *a;

    if (sm->from != NULL && *sm->from != '\0'
        && strcmp(sm->from, "<>") != 0)
    {
        a = pst_send_addr_spec(sm->from);
        if (a == NULL || *a == '\0') {
            pst_send_err("-f: not an address: \"%s\" (-f '<>' gives the "
                         "null sender)\n", sm->from);
            free(a);
            return PST_SEND_USAGE;
        }
        free(a);
    }
    if (sm->notify != NULL && !pst_send_notify_ok(sm->notify)) {
        pst_send_err("-N: never, or a comma-separated list of success, "
                     "failure, delay (not \"%s\")\n", sm->notify);
        return PST_SEND_USAGE;
    }
    if (sm->ret != NULL && strcasecmp(sm->ret, "full") != 0
        && strcasecmp(sm->ret, "hdrs") != 0)
    {
        pst_send_err("-R: full or hdrs (not \"%s\")\n", sm->ret);
        return PST_SEND_USAGE;
    }
    return PST_OK;
}


/* As getopt(3) with sendmail's letters: flags cluster (-ti is -t -i);
 * a letter that takes a value ends the cluster, its value the rest of
 * the argument or the next one (-fADDR, -f ADDR, -tf ADDR); -q takes
 * one only attached (-q, -q30m). */
static int
pst_sendmail_args(pst_sendmail_t *sm, int argc, char **argv)
{
    const char  *a, *v;
    int          i, rc;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (argv[i][1] == '-') {
            continue;       /* --anything: ignored */
        }
        for (a = argv[i] + 1; *a != '\0'; a++) {
            v = NULL;
            if (*a == 'q') {
                v = a + 1;
            } else if (strchr(PST_SENDMAIL_VALUE, *a) != NULL) {
                v = a[1] ? a + 1 : (i + 1 < argc ? argv[++i] : NULL);
                if (v == NULL) {
                    pst_send_err("-%c needs a value\n", *a);
                    return PST_SEND_USAGE;
                }
            }
            rc = pst_sendmail_opt(sm, *a, v);
            if (rc != PST_OK) {
                return rc;
            }
            if (v != NULL) {
                break;
            }
        }
    }

    for ( ; i < argc; i++) {
        if (pst_send_list_split(&sm->rcpts, argv[i]) != PST_OK) {
            return PST_SEND_IOERR;
        }
    }
    return pst_sendmail_check(sm);
}


static char *
pst_sendmail_default_from(void)
{
    struct passwd  *pw = getpwuid(getuid());
    char            host[256], *p;
    size_t          n;

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    n = strlen(host) + 64;
    p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s@%s", pw ? pw->pw_name : "nobody", host);
    }
    return p;
}


/* -bs: our stdin/stdout become an SMTP session with the listener. */
static int
pst_sendmail_bs(const char *server)
{
    struct addrinfo  hints, *ai;
    struct pollfd    pfd[2];
    char             host[256], port[16], buf[16384];
    ssize_t          n;
    int              fd, k, in_open = 1;

    if (pst_send_split_server(server, host, sizeof(host), port,
                              sizeof(port), "25") != PST_OK)
    {
        return PST_SEND_CONFIG;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        return PST_SEND_NOHOST;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        /* no session to relay, nothing taken: the client hears it as
         * SMTP says it (a 421 greeting), the caller from the status */
        pst_send_err("-bs: Postern is not answering at %s (%s): nothing "
                     "was taken; try again when it runs\n", server,
                     strerror(errno));
        printf("421 4.3.2 Postern is not running, try again later\r\n");
        fflush(stdout);
        if (fd != -1) {
            close(fd);
        }
        freeaddrinfo(ai);
        return PST_SEND_TEMPFAIL;
    }
    freeaddrinfo(ai);

    for ( ;; ) {
        pfd[0].fd = in_open ? STDIN_FILENO : -1;
        pfd[0].events = POLLIN;
        pfd[1].fd = fd;
        pfd[1].events = POLLIN;
        /* after our input ends, the server has a while to answer what
         * is still in flight and close (after QUIT) */
        k = poll(pfd, 2, in_open ? -1 : 30000);
        if (k == -1 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        if (pfd[1].revents) {
            n = read(fd, buf, sizeof(buf));
            if (n <= 0 || write(STDOUT_FILENO, buf, (size_t) n) != n) {
                break;      /* the server closed (after QUIT) */
            }
        }
        if (in_open && pfd[0].revents) {
            n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                in_open = 0;    /* no half-close: a server may take it
                                   as the client gone */
            } else if (write(fd, buf, (size_t) n) != n) {
                break;
            }
        }
    }
    close(fd);
    return PST_SEND_OK;
}


/* -bp (and mailq): the queue as "postern queue list --mailq" shows it,
 * in the format of Sendmail's and Postfix's mailq; the configuration is
 * the injector's own (-C, $POSTERN_CONF or the default), so that mailq
 * lists the spool the injector feeds. */
static int
pst_sendmail_bp(const pst_sendmail_t *sm, char *argv0)
{
    char    self[4096], *slash, *args[8];
    ssize_t n;
    int     i = 0;

    n = readlink("/proc/self/exe", self, sizeof(self) - 16);
    if (n <= 0) {
        snprintf(self, sizeof(self), "%s", argv0);
        n = (ssize_t) strlen(self);
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    snprintf(slash ? slash + 1 : self, 16, "postern");

    args[i++] = self;
    args[i++] = "-c";
    args[i++] = (char *) pst_sendmail_conf_path(sm->conf);
    args[i++] = "queue";
    args[i++] = "list";
    args[i++] = "--mailq";
    args[i] = NULL;
    execv(self, args);
    fprintf(stderr, "postern-sendmail: %s: %s\n", self, strerror(errno));
    return EX_UNAVAILABLE;
}


/* The envelope from -f and the arguments (-t adds the header's). */
static void
pst_sendmail_env(pst_sendmail_t *sm, pst_send_env_t *env)
{
    size_t   i;
    char    *a;

    /* -f '' and -f '<>' are the null sender, even with -t */
    env->sender = sm->from == NULL ? pst_sendmail_default_from()
                  : *sm->from == '\0' ? strdup("")
                  : pst_send_addr_spec(sm->from);
    for (i = 0; i < sm->rcpts.n; i++) {
        a = pst_send_addr_spec(sm->rcpts.v[i]);
        if (a != NULL && *a) {
            pst_send_list_add(&env->rcpts, a);
        } else {
            pst_send_err("not an address: \"%s\" (left out)\n",
                         sm->rcpts.v[i]);
        }
        free(a);
    }
}


static int
pst_sendmail_bm(pst_sendmail_t *sm, const char *server)
{
    pst_send_opts_t  o;
    pst_send_env_t   env;
    pst_send_job_t   job;
    pst_send_msg_t   msg;
    pst_send_redo_t  re;
    unsigned         flags;
    FILE            *f = NULL;
    char             err[1024];
    int              rc;

    memset(&o, 0, sizeof(o));
    memset(&env, 0, sizeof(env));
    memset(&job, 0, sizeof(job));
    o.server = server;
    o.tls = PST_SEND_TLS_NONE;
    o.verbose = sm->verbose;
    o.quiet = 1;
    o.notify = sm->notify;
    o.ret = sm->ret;
    o.envid = sm->envid;

    pst_sendmail_env(sm, &env);

    flags = PST_SEND_RAW_ADD | (sm->extract ? PST_SEND_RAW_EXTRACT : 0)
            | (sm->dot ? PST_SEND_RAW_DOT : 0);
    rc = pst_send_tmpfile(&f, err, sizeof(err));
    if (rc == PST_OK) {
        rc = pst_send_raw(STDIN_FILENO, f, &env, flags, sm->full_name, err,
                          sizeof(err));
    }
    if (rc == PST_OK) {
        rc = pst_send_finish(f, &msg, err, sizeof(err));
    }
    if (rc == PST_OK && env.rcpts.n == 0) {
        snprintf(err, sizeof(err), "no recipient (give them as arguments, "
                 "or -t)");
        rc = PST_SEND_USAGE;
    }
    if (rc != PST_OK) {
        fprintf(stderr, "postern-sendmail: %s\n", err);
    } else {
        job.env = &env;
        job.msg = &msg;
        /* a listener without 8BITMIME or SMTPUTF8: as --raw does it */
        re.f = f;
        re.env = &env;
        job.recompose = pst_send_raw_redo;
        job.recompose_data = &re;
        rc = pst_send_run(&o, &job);
        /* 65: the message cannot go as it is (a header field that
         * cannot be 7-bit): no later try would change that */
        if (job.retry.n > 0 && rc != PST_SEND_DATAERR) {
            rc = pst_sendmail_later(sm, &o, &env, &job, &msg, rc);
        }
    }

    if (f != NULL) {
        fclose(f);
    }
    pst_send_env_free(&env);
    pst_send_list_free(&job.retry);
    pst_send_list_free(&job.refused);
    return rc;
}


/* Postern is down or said 4xx.  Down, with its spool writable (root,
 * or Postern's account): the message goes straight into the spool, for
 * the queue process to take at start.  Otherwise, and for the
 * recipients a running Postern deferred, into SPOOL/maildrop, which
 * the queue process reads at start and every second while it runs.
 * Either way the caller sees the message accepted, as with sendmail. */
static int
pst_sendmail_later(pst_sendmail_t *sm, pst_send_opts_t *o,
    pst_send_env_t *env, pst_send_job_t *job, pst_send_msg_t *msg, int rc)
{
    pst_send_list_t  all = env->rcpts;
    char             id[256], err[1024];
    int              where;

    env->rcpts = job->retry;
    where = pst_sendmail_spool(sm->conf, o, env, msg,
                               job->connected ? PST_SENDMAIL_MAILDROP
                                              : PST_SENDMAIL_SPOOL,
                               id, sizeof(id), err, sizeof(err));
    env->rcpts = all;
    if (where == PST_SENDMAIL_SPOOL) {
        pst_send_err("Postern is not answering: queued as %s in its "
                     "spool\n", id);
    } else if (where == PST_SENDMAIL_MAILDROP) {
        pst_send_err("%s: kept in the maildrop as %s; Postern takes it "
                     "in when it runs\n", job->connected
                     ? "Postern defers" : "Postern is not answering", id);
    } else {
        pst_send_err("the message cannot be kept: %s\n", err);
        return rc;
    }
    /* some recipients may have been refused for good meanwhile */
    return rc == PST_SEND_SOMEREFUSED ? rc : PST_SEND_OK;
}


/* -q: send what waits in the maildrop. */
static int
pst_sendmail_q(pst_sendmail_t *sm, const char *server)
{
    pst_send_opts_t  o;
    char             dir[1024];
    int              rc;

    rc = pst_sendmail_maildrop(sm->conf, dir, sizeof(dir));
    if (rc != PST_OK) {
        return rc;
    }
    if (access(dir, F_OK) != 0) {
        return PST_SEND_OK;     /* nothing ever waited */
    }
    memset(&o, 0, sizeof(o));
    o.server = server;
    o.tls = PST_SEND_TLS_NONE;
    o.verbose = sm->verbose;
    o.quiet = 1;
    o.process_queue = dir;
    return pst_send_queue_run(&o);
}


int
main(int argc, char **argv)
{
    pst_sendmail_t  sm;
    char            server[512];
    const char     *base;
    int             rc;

    /* installed setgid to the maildrop group: that group only to
     * create the file in the maildrop (pst_sendmail_drop()) */
    pst_sendmail_egid = getegid();
    if (getegid() != getgid() && setegid(getgid()) != 0) {
        perror("postern-sendmail: setegid");
        return PST_SEND_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    pst_send_prog = "postern-sendmail";
    memset(&sm, 0, sizeof(sm));
    sm.dot = 1;
    sm.mode = 'm';

    /* installed as mailq: sendmail -bp */
    base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strcmp(base, "mailq") == 0) {
        sm.mode = 'p';
    }

    rc = pst_sendmail_args(&sm, argc, argv);
    if (rc == PST_OK && sm.mode == 'p') {
        rc = pst_sendmail_bp(&sm, argv[0]);
    } else if (rc == PST_OK) {
        rc = pst_sendmail_server(sm.conf, server, sizeof(server));
        if (rc == PST_OK) {
            rc = sm.mode == 's' ? pst_sendmail_bs(server)
                 : sm.mode == 'q' ? pst_sendmail_q(&sm, server)
                 : pst_sendmail_bm(&sm, server);
        }
    }

    pst_send_list_free(&sm.rcpts);
    return rc;
}
