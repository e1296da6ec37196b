/*
 * pst_process.c -- master loop, worker processes, signals, pid file
 * (see pst_process.h).
 */

#include "pst_core.h"
#include "pst_smtp.h"

#include <sys/prctl.h>

#define PST_RESPAWN_WINDOW   10        /* seconds */
#define PST_RESPAWN_MAX      8         /* crashes per window */
#define PST_KILL_AFTER       10        /* seconds after TERM */

typedef struct {
    pid_t                        pid;
    int                          slot;
    pst_proc_e                   type;
    pst_cycle_t                 *cycle;      /* generation it runs */
    time_t                       started;
    unsigned                     exiting:1;  /* asked to stop */
    unsigned                     old:1;      /* from a previous cycle */
} pst_child_t;

volatile sig_atomic_t  pst_quit;
volatile sig_atomic_t  pst_terminate;
volatile sig_atomic_t  pst_reconfigure;
volatile sig_atomic_t  pst_reopen;
volatile sig_atomic_t  pst_reap;
volatile sig_atomic_t  pst_alarm;
sigset_t               pst_wait_sigmask;
pst_proc_e             pst_process_type = PST_PROC_MASTER;
const char            *pst_prefix_arg;
const char            *pst_conf_arg;

static pst_child_t     children[PST_MAX_PROCS];
static time_t          crash_times[PST_RESPAWN_MAX];
static pst_uint_t      crash_next;
static int             respawn_paused;
static int             listeners_closed;  /* no worker was left */
static pid_t           master_pid;        /* what a worker's parent is */

static char           *title_start;
static size_t          title_size;


static void pst_signal_handler(int signo);
static pid_t pst_spawn_worker(pst_cycle_t *cycle);
static void pst_worker_process(pst_cycle_t *cycle, int slot)
    __attribute__((noreturn));
static void pst_reap_children(pst_cycle_t *cycle);
static void pst_signal_children(int signo, int only_old);
static pst_uint_t pst_live_children(void);
static void pst_start_workers(pst_cycle_t *cycle);
static void pst_master_reconfigure(void);
static void pst_wait_old_stop_accepting(void);
static void pst_no_worker_left(pst_cycle_t *cycle);
static int pst_reopen_listeners(pst_cycle_t *cycle);


/* ------------------------------------------------------------------ */
/* Signals                                                             */

static void
pst_signal_handler(int signo)
{
    int  saved = errno;

    switch (signo) {
    case SIGQUIT: pst_quit = 1; break;
    case SIGTERM:
    case SIGINT: pst_terminate = 1; break;
    case SIGHUP: pst_reconfigure = 1; break;
    case SIGUSR1: pst_reopen = 1; break;
    case SIGCHLD: pst_reap = 1; break;
    case SIGALRM: pst_alarm = 1; break;
    default: break;
    }

    errno = saved;
}


int
pst_init_signals(void)
{
    static const int   sigs[] = { SIGQUIT, SIGTERM, SIGINT, SIGHUP, SIGUSR1,
                                  SIGCHLD, SIGALRM };
    struct sigaction   sa;
    sigset_t           set;
    size_t             i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pst_signal_handler;
    sigemptyset(&sa.sa_mask);

    sigemptyset(&set);
    for (i = 0; i < pst_nelems(sigs); i++) {
        if (sigaction(sigs[i], &sa, NULL) == -1) {
            return PST_ERROR;
        }
        sigaddset(&set, sigs[i]);
    }

    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    /* signals are delivered only while waiting (sigsuspend/epoll_pwait) */
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1) {
        return PST_ERROR;
    }
    sigemptyset(&pst_wait_sigmask);

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Pid file, daemon, -s                                                */

int
pst_daemonize(void)
{
    pid_t  pid;
    int    fd;

    pid = fork();
    if (pid == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "fork() failed");
        return PST_ERROR;
    }
    if (pid > 0) {
        _exit(0);
    }

    if (setsid() == -1) {
        return PST_ERROR;
    }

    umask(0027);

    fd = open("/dev/null", O_RDWR);
    if (fd != -1) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (pst_log_main.fd != STDERR_FILENO) {
            dup2(pst_log_main.fd, STDERR_FILENO);
        }
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }

    return PST_OK;
}


int
pst_write_pid(pst_cycle_t *cycle)
{
    char  buf[32];
    int   fd, n;

    fd = open((char *) cycle->core->pid.data,
              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "cannot write pid file \"%s\"",
                      cycle->core->pid.data);
        return PST_ERROR;
    }

    n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
    if (write(fd, buf, (size_t) n) != n) {
        close(fd);
        return PST_ERROR;
    }
    close(fd);

    return PST_OK;
}


void
pst_delete_pid(pst_cycle_t *cycle)
{
    char  buf[32];
    int   fd;
    ssize_t n;

    /* only our own pid file: a newer master may have written it */
    fd = open((char *) cycle->core->pid.data, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (atoi(buf) == (int) getpid()) {
            unlink((char *) cycle->core->pid.data);
        }
    }
}


int
pst_signal_by_name(const char *name)
{
    static const struct { const char *name; int signo; } map[] = {
        { "reload", SIGHUP }, { "quit", SIGQUIT }, { "stop", SIGTERM },
        { "reopen", SIGUSR1 }
    };
    size_t  i;

    for (i = 0; i < pst_nelems(map); i++) {
        if (strcmp(map[i].name, name) == 0) {
            return map[i].signo;
        }
    }

    return 0;
}


int
pst_signal_master(pst_cycle_t *cycle, const char *name)
{
    char     buf[32];
    ssize_t  n;
    pid_t    pid;
    int      fd, signo;

    signo = pst_signal_by_name(name);
    if (signo == 0) {
        fprintf(stderr, "postern: invalid signal \"%s\" (use reload, quit,"
                " stop or reopen)\n", name);
        return 1;
    }

    fd = open((char *) cycle->core->pid.data, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        fprintf(stderr, "postern: cannot open pid file \"%s\": %s\n",
                cycle->core->pid.data, strerror(errno));
        return 1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        fprintf(stderr, "postern: empty pid file \"%s\"\n",
                cycle->core->pid.data);
        return 1;
    }
    buf[n] = '\0';
    pid = (pid_t) atoi(buf);

    if (pid <= 1 || kill(pid, signo) == -1) {
        fprintf(stderr, "postern: cannot signal process %d: %s\n",
                (int) pid, strerror(errno));
        return 1;
    }

    return 0;
}


/* ------------------------------------------------------------------ */
/* Process titles                                                      */

void
pst_init_setproctitle(int argc, char **argv)
{
    extern char  **environ;
    char          *end, **env;
    size_t         n;
    int            i;

    if (argc < 1 || argv[0] == NULL) {
        return;
    }

    end = argv[0] + strlen(argv[0]) + 1;
    for (i = 1; i < argc && argv[i] == end; i++) {
        end = argv[i] + strlen(argv[i]) + 1;
    }

    /* move the environment away to reuse its space for the title */
    for (i = 0; environ[i] != NULL; i++) {
        if (environ[i] == end) {
            end = environ[i] + strlen(environ[i]) + 1;
        }
    }

    env = malloc((size_t) (i + 1) * sizeof(char *));
    if (env == NULL) {
        return;
    }
    for (i = 0; environ[i] != NULL; i++) {
        n = strlen(environ[i]) + 1;
        env[i] = malloc(n);
        if (env[i] == NULL) {
            return;
        }
        memcpy(env[i], environ[i], n);
    }
    env[i] = NULL;
    environ = env;

    title_start = argv[0];
    title_size = (size_t) (end - argv[0]);
    argv[1] = NULL;
}


void
pst_setproctitle(const char *title)
{
    if (title_start == NULL) {
        return;
    }
    memset(title_start, 0, title_size);
    snprintf(title_start, title_size, "postern: %s", title);
    (void) prctl(PR_SET_NAME, "postern", 0, 0, 0);
}


/* ------------------------------------------------------------------ */
/* Master                                                              */

static int
pst_alloc_slot(void)
{
    int  i;

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid == 0) {
            return i;
        }
    }
    return -1;
}


static pid_t
pst_spawn_worker(pst_cycle_t *cycle)
{
    pid_t  pid;
    int    slot;

    slot = pst_alloc_slot();
    if (slot == -1) {
        pst_log_error(PST_LOG_ALERT, 0, "no free process slot");
        return -1;
    }

    /* a previous occupant's shared counters must not leak in */
    pst_shm_clear_slot(slot);

    pid = fork();

    switch (pid) {
    case -1:
        pst_log_error(PST_LOG_ALERT, errno, "fork() failed");
        return -1;

    case 0:
        pst_worker_process(cycle, slot);

    default:
        break;
    }

    children[slot].pid = pid;
    children[slot].slot = slot;
    children[slot].type = PST_PROC_WORKER;
    children[slot].cycle = cycle;
    children[slot].started = time(NULL);
    children[slot].exiting = 0;
    children[slot].old = 0;

    pst_log_error(PST_LOG_INFO, 0, "started worker process %d (slot %d)",
                  (int) pid, slot);

    return pid;
}


static void
pst_start_workers(pst_cycle_t *cycle)
{
    pst_int_t  i;

    for (i = 0; i < cycle->core->worker_processes; i++) {
        (void) pst_spawn_worker(cycle);
    }
}


static void
pst_signal_children(int signo, int only_old)
{
    int  i;

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid <= 0) {
            continue;
        }
        if (only_old && !children[i].old) {
            continue;
        }
        if (signo == SIGQUIT || signo == SIGTERM) {
            children[i].exiting = 1;
        }
        if (kill(children[i].pid, signo) == -1 && errno != ESRCH) {
            pst_log_error(PST_LOG_ALERT, errno, "kill(%d, %d) failed",
                          (int) children[i].pid, signo);
        }
    }
}


static pst_uint_t
pst_live_children(void)
{
    pst_uint_t  n = 0;
    int         i;

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid > 0) {
            n++;
        }
    }
    return n;
}


static int
pst_respawn_allowed(void)
{
    time_t      now = time(NULL);
    pst_uint_t  i, recent = 0;

    for (i = 0; i < PST_RESPAWN_MAX; i++) {
        if (crash_times[i] && now - crash_times[i] < PST_RESPAWN_WINDOW) {
            recent++;
        }
    }

    crash_times[crash_next++ % PST_RESPAWN_MAX] = now;

    return recent < PST_RESPAWN_MAX - 1;
}


static void
pst_reap_children(pst_cycle_t *cycle)
{
    pst_child_t  *ch;
    pid_t         pid;
    int           status, i;

    for ( ;; ) {
        pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }

        ch = NULL;
        for (i = 0; i < PST_MAX_PROCS; i++) {
            if (children[i].pid == pid) {
                ch = &children[i];
                break;
            }
        }
        if (ch == NULL) {
            continue;
        }

        if (WIFSIGNALED(status)) {
            pst_log_error(ch->exiting ? PST_LOG_NOTICE : PST_LOG_ALERT, 0,
                          "worker process %d exited on signal %d%s",
                          (int) pid, WTERMSIG(status),
                          WCOREDUMP(status) ? " (core dumped)" : "");
        } else if (WEXITSTATUS(status) != 0 || !ch->exiting) {
            pst_log_error(ch->exiting ? PST_LOG_NOTICE : PST_LOG_ALERT, 0,
                          "worker process %d exited with code %d", (int) pid,
                          WEXITSTATUS(status));
        } else {
            pst_log_error(PST_LOG_INFO, 0, "worker process %d exited",
                          (int) pid);
        }

        /* connections it counted are gone with it, and so is whatever it
         * was receiving */
        pst_shm_clear_slot(ch->slot);
        pst_spool_process_gone(ch->cycle ? ch->cycle : cycle, pid);

        i = !ch->exiting && !ch->old && !pst_quit && !pst_terminate
            && ch->cycle == cycle;
        ch->pid = 0;
        ch->cycle = NULL;

        if (!i) {
            continue;
        }

        if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
            /* the worker could not start (environment): do not loop */
            pst_log_error(PST_LOG_ALERT, 0, "worker failed to initialise;"
                          " not respawning, fix the cause and reload");
            continue;
        }

        if (!pst_respawn_allowed()) {
            pst_log_error(PST_LOG_ALERT, 0, "workers keep dying: pausing"
                          " respawns for %d s", PST_RESPAWN_WINDOW);
            respawn_paused = 1;
            alarm(PST_RESPAWN_WINDOW);
            continue;
        }

        (void) pst_spawn_worker(cycle);
    }
}


static void
pst_fill_workers(pst_cycle_t *cycle)
{
    pst_int_t  n = 0;
    int        i;

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid > 0 && children[i].cycle == cycle
            && !children[i].exiting)
        {
            n++;
        }
    }

    for ( /* void */ ; n < cycle->core->worker_processes; n++) {
        if (pst_spawn_worker(cycle) == -1) {
            break;
        }
    }
}


/* A log file the master (root) has just created: the workers reopen it
 * on USR1 as their own user, so it must be theirs (as at start-up). */
static void
pst_log_give_to_workers(pst_cycle_t *cycle)
{
    if (geteuid() == 0 && pst_log_main.fd != STDERR_FILENO) {
        (void) !fchown(pst_log_main.fd, cycle->core->uid, cycle->core->gid);
    }
}


/*
 * After a reload, new connections belong to the new configuration: wait
 * until every old worker has closed its listeners (it clears its
 * "accepting" flag in shared memory), at most a second.  A connection
 * that an old worker took in that instant still gets a complete session
 * under the old configuration.
 */
static void
pst_wait_old_stop_accepting(void)
{
    struct timespec  ts = { 0, 10 * 1000 * 1000 };
    int              i, busy, tries;

    for (tries = 0; tries < 100; tries++) {
        busy = 0;
        for (i = 0; i < PST_MAX_PROCS; i++) {
            if (children[i].pid > 0 && children[i].old
                && pst_shm_accepting(children[i].slot))
            {
                busy = 1;
                break;
            }
        }
        if (!busy) {
            return;
        }
        nanosleep(&ts, NULL);
    }

    pst_log_error(PST_LOG_WARN, 0, "old workers still accept connections"
                  " a second after the reload");
}


static void
pst_master_reconfigure(void)
{
    pst_cycle_t      *cycle, *old;
    pst_listening_t  *ls, *ols;
    pst_uint_t        k;
    int               i;

    old = pst_cycle;
    pst_log_error(PST_LOG_NOTICE, 0, "reconfiguring from \"%s\"",
                  old->conf_file.data);

    cycle = pst_init_cycle(pst_prefix_arg, pst_conf_arg, old, NULL);
    if (cycle == NULL) {
        pst_log_error(PST_LOG_ERR, 0, "reload failed: the new configuration"
                      " has errors; the running configuration stays");
        return;
    }

    if (pst_open_listening_sockets(cycle, old) != PST_OK
        || pst_spool_prepare(cycle) != PST_OK
        || pst_check_worker_access(cycle, 1) != PST_OK
        || pst_cycle_init_modules(cycle) != PST_OK)
    {
        /* sockets the new cycle took over stay with the old one: the
         * new cycle must not close them */
        for (i = 0; i < (int) old->listening.nelts; i++) {
            ols = &((pst_listening_t *) old->listening.elts)[i];
            ls = cycle->listening.elts;
            for (k = 0; ols->inherited && k < cycle->listening.nelts; k++) {
                if (ls[k].fd == ols->fd) {
                    ls[k].fd = -1;
                }
            }
            ols->inherited = 0;
        }
        pst_close_listening_sockets(cycle);
        pst_shm_mark_all_used();
        pst_destroy_cycle(cycle);
        pst_log_error(PST_LOG_ERR, 0, "reload failed; the running"
                      " configuration stays");
        return;
    }

    if (cycle->core->error_log.data != NULL
        && !pst_str_eq(&cycle->core->error_log, "stderr"))
    {
        (void) pst_log_open(&pst_log_main,
                            (char *) cycle->core->error_log.data,
                            (int) cycle->core->log_level);
        pst_log_give_to_workers(cycle);
    } else {
        pst_log_main.level = (int) cycle->core->log_level;
    }

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid > 0) {
            children[i].old = 1;
        }
    }

    pst_cycle = cycle;
    listeners_closed = 0;
    pst_start_workers(cycle);
    pst_signal_children(SIGQUIT, 1);
    pst_wait_old_stop_accepting();

    /* the old cycle's memory goes now: its workers, still finishing,
     * must not lead the reaper into it (their spool/tmp/PID is then
     * looked for under the current spool_dir) */
    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].cycle == old) {
            children[i].cycle = NULL;
        }
    }

    pst_close_listening_sockets(old);
    pst_destroy_cycle(old);
    pst_shm_collect();

    pst_log_error(PST_LOG_NOTICE, 0, "reconfigured: %ld worker(s)",
                  (long) cycle->core->worker_processes);
}


/*
 * A master whose workers are all gone (and that will not start another
 * now) must not keep its listeners: the kernel would complete client
 * connections into the backlog, and the clients would wait for a
 * greeting instead of trying the next MX.
 */
static void
pst_no_worker_left(pst_cycle_t *cycle)
{
    int  i;

    if (listeners_closed || pst_quit || pst_terminate) {
        return;
    }

    for (i = 0; i < PST_MAX_PROCS; i++) {
        if (children[i].pid > 0 && children[i].type == PST_PROC_WORKER
            && children[i].cycle == cycle && !children[i].exiting)
        {
            return;
        }
    }

    pst_close_listening_sockets(cycle);
    listeners_closed = 1;

    pst_log_error(PST_LOG_ALERT, 0, "no worker process left: listeners"
                  " closed %s", respawn_paused
                  ? "until the respawn pause ends"
                  : "until a reload (fix the cause first)");
}


static int
pst_reopen_listeners(pst_cycle_t *cycle)
{
    if (!listeners_closed) {
        return PST_OK;
    }

    if (pst_open_listening_sockets(cycle, NULL) != PST_OK) {
        /* the log says why; the next reload tries again */
        pst_close_listening_sockets(cycle);
        pst_log_error(PST_LOG_ALERT, 0, "cannot listen again: no workers"
                      " started, reload when the cause is fixed");
        return PST_ERROR;
    }

    listeners_closed = 0;
    pst_log_error(PST_LOG_NOTICE, 0, "listening again");
    return PST_OK;
}


/* After TERM: once a second, until the children are gone; SIGKILL
 * them after PST_KILL_AFTER seconds.  Returns 1 when it is time. */
static int
pst_alarm_fired(int *killed, time_t term_at)
{
    if (!pst_alarm) {
        return 0;
    }
    pst_alarm = 0;

    if (!*killed && time(NULL) - term_at >= PST_KILL_AFTER) {
        *killed = 1;
        return 1;
    }

    alarm(1);
    return 0;
}


int
pst_master_run(pst_cycle_t *cycle)
{
    sigset_t  empty;
    time_t    term_at = 0;
    int       sent_quit = 0, sent_term = 0, killed = 0;

    pst_log_main.role = "master";
    pst_process_type = PST_PROC_MASTER;
    master_pid = getpid();
    pst_setproctitle("master process");
    sigemptyset(&empty);

    pst_start_workers(cycle);

    for ( ;; ) {
        /* sleep unless something new happened: the quit/terminate
         * flags stay set while the children finish */
        if (!pst_reap && !pst_reconfigure && !pst_reopen && !pst_alarm
            && !(pst_terminate && !sent_term) && !(pst_quit && !sent_quit)
            && !((pst_quit || pst_terminate) && pst_live_children() == 0))
        {
            sigsuspend(&empty);
        }

        if (pst_reap) {
            pst_reap = 0;
            pst_reap_children(pst_cycle);
            pst_no_worker_left(pst_cycle);
        }

        if (pst_alarm && !pst_terminate) {
            pst_alarm = 0;
            if (respawn_paused && !pst_quit) {
                respawn_paused = 0;
                if (pst_reopen_listeners(pst_cycle) == PST_OK) {
                    pst_fill_workers(pst_cycle);
                }
            }
        }

        if (pst_terminate) {
            if (!sent_term) {
                sent_term = 1;
                term_at = time(NULL);
                pst_signal_children(SIGTERM, 0);
                alarm(1);
            } else if (pst_alarm_fired(&killed, term_at)) {
                pst_signal_children(SIGKILL, 0);
            }
        } else if (pst_quit && !sent_quit) {
            sent_quit = 1;
            pst_signal_children(SIGQUIT, 0);
            /* the workers stop accepting; with our copies closed too,
             * new clients are refused instead of waiting in the backlog
             * for a greeting that never comes */
            pst_close_listening_sockets(pst_cycle);
        }

        if ((pst_quit || pst_terminate) && pst_live_children() == 0) {
            pst_log_error(PST_LOG_NOTICE, 0, "exiting");
            pst_delete_pid(pst_cycle);
            return 0;
        }

        if (pst_quit || pst_terminate) {
            pst_reconfigure = 0;
            pst_reopen = 0;
            continue;
        }

        if (pst_reconfigure) {
            pst_reconfigure = 0;
            pst_master_reconfigure();
        }

        if (pst_reopen) {
            pst_reopen = 0;
            pst_log_error(PST_LOG_NOTICE, 0, "reopening logs");
            (void) pst_log_reopen(&pst_log_main);
            if (pst_log_main.fd != STDERR_FILENO) {
                dup2(pst_log_main.fd, STDERR_FILENO);
            }
            pst_log_give_to_workers(pst_cycle);
            pst_signal_children(SIGUSR1, 0);
        }
    }
}


/* ------------------------------------------------------------------ */
/* Workers                                                             */

void
pst_drop_privileges(pst_cycle_t *cycle)
{
    pst_core_conf_t  *ccf = cycle->core;

    if (geteuid() != 0) {
        return;
    }

    if (setgroups(0, NULL) == -1
        || setresgid(ccf->gid, ccf->gid, ccf->gid) == -1
        || setresuid(ccf->uid, ccf->uid, ccf->uid) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "cannot drop privileges to"
                      " \"%s\"", ccf->user.data);
        exit(2);
    }

    if (getuid() == 0 || geteuid() == 0) {
        pst_log_error(PST_LOG_EMERG, 0, "still root after setresuid()");
        exit(2);
    }

    /* setuid clears it; core dumps of a crashed worker help debugging */
    (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}


static int
pst_worker_init(pst_cycle_t *cycle, pst_proc_e type)
{
    pst_module_entry_t  *me;
    struct rlimit        rl;
    pst_uint_t           i;

    pst_time_update();

    if (cycle->core->worker_rlimit_nofile > 0) {
        rl.rlim_cur = (rlim_t) cycle->core->worker_rlimit_nofile;
        rl.rlim_max = (rlim_t) cycle->core->worker_rlimit_nofile;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            pst_log_error(PST_LOG_ALERT, errno, "setrlimit(RLIMIT_NOFILE)"
                          " failed");
        }
    }

    /* before the privileges go: the resolver reads its trust anchors
     * as the master checked them (a root-only key file stays usable) */
    if (pst_dns_init(cycle) != PST_OK) {
        return PST_ERROR;
    }

    pst_drop_privileges(cycle);

    if (pst_spool_process_init(cycle) != PST_OK
        || pst_event_init((pst_uint_t) cycle->core->worker_connections)
           != PST_OK
        || pst_connections_init((pst_uint_t)
                                cycle->core->worker_connections + 64)
           != PST_OK
        || pst_smtp_sessions_init() != PST_OK)
    {
        return PST_ERROR;
    }

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.init_process != NULL
            && me[i].desc.init_process(cycle, type, cycle->main_conf[i])
               != PST_OK)
        {
            pst_log_error(PST_LOG_EMERG, 0, "module \"%s\" failed to"
                          " initialise", me[i].desc.name);
            return PST_ERROR;
        }
    }

    return PST_OK;
}


static void
pst_worker_exit(pst_cycle_t *cycle, int code)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    me = cycle->modules.elts;
    for (i = cycle->modules.nelts; i-- > 0; ) {
        if (me[i].desc.exit_process != NULL) {
            me[i].desc.exit_process(cycle, cycle->main_conf[i]);
        }
    }

    pst_dns_done();
    exit(code);
}


static void
pst_shutdown_timer_handler(pst_event_t *ev)
{
    (void) ev;
    pst_log_error(PST_LOG_NOTICE, 0, "shutdown timeout: closing %lu"
                  " session(s)", (unsigned long) pst_smtp_session_count());
    pst_smtp_shutdown_all(1);
}


static void
pst_worker_loop(pst_cycle_t *cycle)
{
    pst_event_t  shutdown_timer;
    int          exiting = 0;

    memset(&shutdown_timer, 0, sizeof(shutdown_timer));
    shutdown_timer.handler = pst_shutdown_timer_handler;

    for ( ;; ) {
        if (pst_process_events_and_timers() != PST_OK) {
            pst_worker_exit(cycle, 1);
        }

        if (pst_terminate) {
            pst_close_listening_in_worker(cycle);
            pst_smtp_shutdown_all(1);
            pst_worker_exit(cycle, 0);
        }

        if (pst_quit && !exiting) {
            exiting = 1;
            pst_setproctitle("worker process is shutting down");
            pst_close_listening_in_worker(cycle);
            pst_shm_set_accepting(pst_proc_slot_index, 0);
            pst_smtp_shutdown_all(0);
            pst_event_add_timer(&shutdown_timer,
                                cycle->core->shutdown_timeout);
        }

        if (exiting && pst_smtp_session_count() == 0) {
            pst_worker_exit(cycle, 0);
        }

        if (pst_reopen) {
            pst_reopen = 0;
            (void) pst_log_reopen(&pst_log_main);
        }
    }
}


static void
pst_worker_process(pst_cycle_t *cycle, int slot)
{
    pst_process_type = PST_PROC_WORKER;
    pst_proc_slot_index = slot;
    pst_log_main.role = "worker";
    pst_reap = 0;
    pst_reconfigure = 0;
    pst_setproctitle("worker process");

    /* a worker outliving its master stops gracefully */
    (void) prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);

    if (pst_worker_init(cycle, PST_PROC_WORKER) != PST_OK) {
        exit(2);
    }

    /* changing credentials (pst_drop_privileges) clears the parent-death
     * signal: set it again, then catch a master that died before that
     * (an orphan's parent is init or a subreaper, not always pid 1) */
    (void) prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);
    if (getppid() != master_pid) {
        pst_quit = 1;
    }

    if (pst_enable_accept(cycle) != PST_OK) {
        exit(2);
    }
    pst_shm_set_accepting(slot, 1);

    pst_worker_loop(cycle);
    exit(0);
}


int
pst_single_run(pst_cycle_t *cycle)
{
    pst_process_type = PST_PROC_SINGLE;
    pst_log_main.role = "single";

    if (pst_worker_init(cycle, PST_PROC_SINGLE) != PST_OK
        || pst_enable_accept(cycle) != PST_OK)
    {
        return 2;
    }

    pst_worker_loop(cycle);
    return 0;
}
