/*
 * pst_process.c -- master loop, child processes by role, signals, pid
 * file, process titles (see pst_process.h).  Nothing here knows SMTP.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_dns.h"
#include "pst_spool.h"
#include "pst_access.h"
#include "pst_metrics_http.h"
#include "pst_process.h"
#include "pst_channel.h"
#include "pst_control.h"
#include "pst_notify.h"

#include <sched.h>
#include <sys/prctl.h>

#define PST_RESPAWN_WINDOW   10        /* seconds; also the first pause */
#define PST_BACKOFF_MAX      300       /* longest pause, seconds */
#define PST_BACKOFF_RESET    300       /* calm this long: pauses restart */
#define PST_RESPAWN_MAX      8         /* crashes per window */
#define PST_KILL_AFTER       10        /* seconds after TERM */

typedef struct {
    pid_t                        pid;
    int                          slot;
    int                          role;       /* index in roles[] */
    pst_proc_e                   type;       /* its role's type */
    pst_cycle_t                 *cycle;      /* generation it runs */
    time_t                       started;
    unsigned                     generation;
    unsigned                     exiting:1;  /* asked to stop */
    unsigned                     old:1;      /* from a previous cycle */
} pst_child_t;

typedef struct {
    time_t                       crash_times[PST_RESPAWN_MAX];
    pst_uint_t                   crash_next;
    int                          paused;     /* respawns wait for alarm */
    time_t                       resume_at;  /* when the pause ends */
    time_t                       resumed;    /* when the last one ended */
    unsigned                     pause;      /* its length, seconds */
    int                          inbox[2];   /* read end, write end */
} pst_role_state_t;

volatile sig_atomic_t  pst_quit;
volatile sig_atomic_t  pst_terminate;
volatile sig_atomic_t  pst_reconfigure;
volatile sig_atomic_t  pst_reopen;
volatile sig_atomic_t  pst_reap;
volatile sig_atomic_t  pst_alarm;
pst_proc_e             pst_process_type = PST_PROC_MASTER;
const char            *pst_prefix_arg;
const char            *pst_conf_arg;

static pst_child_t     children[PST_MAX_PROCS];
static const pst_role_t *const *roles;
static int             nroles;
static pst_role_state_t  role_state[PST_MAX_ROLES];
static int             my_role = -1;      /* in a child */
static unsigned        generation;
static pst_proc_status_t  *shared;        /* shared with the children */
static volatile uint32_t  *shared_seq;    /* odd while it changes */
static pst_proc_status_t   counts;        /* master: reloads, respawns */
static int             listeners_closed;  /* no worker was left */
static pid_t           master_pid;        /* what a child's parent is */

static char           *title_start;
static size_t          title_size;


static void pst_signal_handler(int signo);
static int pst_status_init(void);
static void pst_status_sync(void);
static int pst_inboxes_init(void);
static pid_t pst_spawn(pst_cycle_t *cycle, int role);
static void pst_child_process(pst_cycle_t *cycle, int slot, int role)
    __attribute__((noreturn));
static void pst_reap_children(pst_cycle_t *cycle);
static void pst_respawn_pause(int r);
static void pst_respawn_arm(time_t now);
static void pst_signal_children(int signo, int only_old);
static pst_uint_t pst_live_children(void);
static void pst_fill_roles(pst_cycle_t *cycle);
static void pst_master_reconfigure(void);
static void pst_wait_old_stop_accepting(void);
static void pst_child_exit(pst_cycle_t *cycle, int code)
    __attribute__((noreturn));
static void pst_child_loop(pst_cycle_t *cycle) __attribute__((noreturn));
static void pst_no_worker_left(pst_cycle_t *cycle);
static int pst_reopen_listeners(pst_cycle_t *cycle);
static int pst_role_type_paused(pst_proc_e type);


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
/* Roles, inboxes, the status table                                    */

void
pst_process_set_roles(const pst_role_t *const *table)
{
    int  i;

    roles = table;
    for (nroles = 0; roles[nroles] != NULL && nroles < PST_MAX_ROLES;
         nroles++)
    {
        /* void */
    }

    for (i = 0; i < PST_MAX_ROLES; i++) {
        role_state[i].inbox[0] = -1;
        role_state[i].inbox[1] = -1;
    }
}


const pst_role_t *
pst_process_role(int index)
{
    return (index >= 0 && index < nroles) ? roles[index] : NULL;
}


/* Made once by the master and kept: a child that respawns inherits the
 * same ends, and what was sent meanwhile is still there. */
static int
pst_inboxes_init(void)
{
    int  i, size;

    for (i = 0; i < nroles; i++) {
        if (!roles[i]->inbox || role_state[i].inbox[0] != -1) {
            continue;
        }
        if (pst_channel_pair(role_state[i].inbox, SOCK_SEQPACKET)
            != PST_OK)
        {
            return PST_ERROR;
        }
        /* room for a burst while the reader restarts */
        size = 1024 * 1024;
        (void) setsockopt(role_state[i].inbox[1], SOL_SOCKET,
                          geteuid() == 0 ? SO_SNDBUFFORCE : SO_SNDBUF,
                          &size, sizeof(size));
    }

    return PST_OK;
}


int
pst_process_send(pst_proc_e to, unsigned type, const void *data, size_t len,
    int fd)
{
    int  i;

    for (i = 0; i < nroles; i++) {
        if (roles[i]->type == to && role_state[i].inbox[1] != -1) {
            return pst_channel_send(role_state[i].inbox[1], type, data, len,
                                    fd);
        }
    }

    return PST_DECLINED;
}


int
pst_process_inbox(void)
{
    return my_role == -1 ? -1 : role_state[my_role].inbox[0];
}


static int
pst_status_init(void)
{
    void  *p;

    p = mmap(NULL, sizeof(pst_proc_status_t) + 64, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        pst_log_error(PST_LOG_EMERG, errno, "mmap(status) failed");
        return PST_ERROR;
    }

    shared_seq = p;
    shared = (pst_proc_status_t *) ((u_char *) p + 64);
    counts.master = getpid();
    counts.started = time(NULL);
    pst_status_sync();

    return PST_OK;
}


/* Master: copy the child table to shared memory (a sequence lock: the
 * readers retry while the count is odd or has moved). */
static void
pst_status_sync(void)
{
    pst_proc_info_t  *pi;
    int               i;

    if (shared == NULL) {
        return;
    }

    __atomic_add_fetch(shared_seq, 1, __ATOMIC_SEQ_CST);

    shared->master = counts.master;
    shared->started = counts.started;
    shared->last_reload = counts.last_reload;
    shared->reloads = counts.reloads;
    shared->reload_failures = counts.reload_failures;
    shared->respawns = counts.respawns;
    shared->generation = generation;

    for (i = 0; i < PST_MAX_PROCS; i++) {
        pi = &shared->procs[i];
        pi->pid = children[i].pid;
        pi->role = children[i].role;
        pi->started = children[i].started;
        pi->generation = children[i].generation;
        pi->exiting = children[i].exiting;
    }

    __atomic_add_fetch(shared_seq, 1, __ATOMIC_SEQ_CST);
}


int
pst_process_status(pst_proc_status_t *st)
{
    uint32_t  before, after;
    int       tries;

    if (shared == NULL) {
        return PST_ERROR;
    }

    for (tries = 0; tries < 1000; tries++) {
        before = __atomic_load_n(shared_seq, __ATOMIC_SEQ_CST);
        if (before & 1) {
            sched_yield();
            continue;
        }
        memcpy(st, shared, sizeof(pst_proc_status_t));
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        after = __atomic_load_n(shared_seq, __ATOMIC_SEQ_CST);
        if (before == after) {
            return PST_OK;
        }
    }

    return PST_ERROR;
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
pst_spawn(pst_cycle_t *cycle, int role)
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
        pst_child_process(cycle, slot, role);

    default:
        break;
    }

    children[slot].pid = pid;
    children[slot].slot = slot;
    children[slot].role = role;
    children[slot].type = roles[role]->type;
    children[slot].cycle = cycle;
    children[slot].started = time(NULL);
    children[slot].generation = generation;
    children[slot].exiting = 0;
    children[slot].old = 0;
    pst_status_sync();

    pst_log_error(PST_LOG_INFO, 0, "started %s process %d (slot %d)",
                  roles[role]->name, (int) pid, slot);

    return pid;
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

    pst_status_sync();
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
pst_respawn_allowed(int role)
{
    pst_role_state_t  *rs = &role_state[role];
    time_t             now = time(NULL);
    pst_uint_t         i, recent = 0;

    for (i = 0; i < PST_RESPAWN_MAX; i++) {
        if (rs->crash_times[i]
            && now - rs->crash_times[i] < PST_RESPAWN_WINDOW)
        {
            recent++;
        }
    }

    rs->crash_times[rs->crash_next++ % PST_RESPAWN_MAX] = now;

    return recent < PST_RESPAWN_MAX - 1;
}


/* A role that keeps dying waits: 10 s, then twice as long each time it
 * crashes again soon after a pause (at most 5 min), back to 10 s after
 * 5 calm minutes. */
static void
pst_respawn_pause(int r)
{
    pst_role_state_t  *rs = &role_state[r];
    time_t             now = time(NULL);

    if (rs->pause == 0 || now - rs->resumed >= PST_BACKOFF_RESET) {
        rs->pause = PST_RESPAWN_WINDOW;
    } else {
        rs->pause = pst_min(rs->pause * 2, PST_BACKOFF_MAX);
    }

    rs->paused = 1;
    rs->resume_at = now + rs->pause;

    pst_log_error(PST_LOG_ALERT, 0, "%s processes keep dying: pausing"
                  " respawns for %u s", roles[r]->name, rs->pause);
    pst_respawn_arm(now);
}


/* The alarm for the first pause to end. */
static void
pst_respawn_arm(time_t now)
{
    time_t  next = 0;
    int     r;

    for (r = 0; r < nroles; r++) {
        if (role_state[r].paused
            && (next == 0 || role_state[r].resume_at < next))
        {
            next = role_state[r].resume_at;
        }
    }

    if (next != 0) {
        alarm(next > now ? (unsigned) (next - now) : 1);
    }
}


static void
pst_reap_children(pst_cycle_t *cycle)
{
    pst_child_t       *ch;
    const pst_role_t  *role;
    pid_t              pid;
    int                status, i, r;

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

        r = ch->role;
        role = roles[r];

        if (WIFSIGNALED(status)) {
            pst_log_error(ch->exiting ? PST_LOG_NOTICE : PST_LOG_ALERT, 0,
                          "%s process %d exited on signal %d%s", role->name,
                          (int) pid, WTERMSIG(status),
                          WCOREDUMP(status) ? " (core dumped)" : "");
        } else if (WEXITSTATUS(status) != 0 || !ch->exiting) {
            pst_log_error(ch->exiting ? PST_LOG_NOTICE : PST_LOG_ALERT, 0,
                          "%s process %d exited with code %d", role->name,
                          (int) pid, WEXITSTATUS(status));
        } else {
            pst_log_error(PST_LOG_INFO, 0, "%s process %d exited",
                          role->name, (int) pid);
        }

        /* connections it counted are gone with it, and so is whatever it
         * was receiving */
        pst_shm_clear_slot(ch->slot);
        pst_spool_process_gone(ch->cycle ? ch->cycle : cycle, pid);

        i = !ch->exiting && !ch->old && !pst_quit && !pst_terminate
            && ch->cycle == cycle;
        ch->pid = 0;
        ch->cycle = NULL;
        pst_status_sync();

        if (!i) {
            /* an old exclusive process made way for its successor */
            if (role->exclusive && !pst_quit && !pst_terminate) {
                pst_fill_roles(cycle);
            }
            continue;
        }

        if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
            /* the child could not start (environment): do not loop */
            pst_log_error(PST_LOG_ALERT, 0, "%s process failed to"
                          " initialise; not respawning, fix the cause and"
                          " reload", role->name);
            continue;
        }

        if (!pst_respawn_allowed(r)) {
            pst_respawn_pause(r);
            continue;
        }

        if (pst_spawn(cycle, r) > 0) {
            counts.respawns++;
            pst_metric_inc(PST_M_WORKER_RESTARTS);
            pst_status_sync();
        }
    }
}


/* Start what is missing: per role, up to its count of children on the
 * current cycle; an exclusive role only when none of it is alive. */
static void
pst_fill_roles(pst_cycle_t *cycle)
{
    pst_int_t  n, alive, want;
    int        i, r;

    for (r = 0; r < nroles; r++) {
        /* no worker without listeners (pst_no_worker_left()) */
        if (role_state[r].paused
            || (listeners_closed && roles[r]->type == PST_PROC_WORKER))
        {
            continue;
        }

        n = 0;
        alive = 0;
        for (i = 0; i < PST_MAX_PROCS; i++) {
            if (children[i].pid <= 0 || children[i].role != r) {
                continue;
            }
            alive++;
            if (children[i].cycle == cycle && !children[i].exiting) {
                n++;
            }
        }

        want = roles[r]->count(cycle);
        if (roles[r]->exclusive && alive > 0) {
            continue;
        }

        for ( /* void */ ; n < want; n++) {
            if (pst_spawn(cycle, r) == -1) {
                break;
            }
        }
    }
}


/* A log file the master (root) has just created: the children reopen
 * it on USR1 as their own user, so it must be theirs (as at start-up). */
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
        counts.reload_failures++;
        pst_status_sync();
        return;
    }

    if (pst_open_listening_sockets(cycle, old) != PST_OK
        || pst_spool_prepare(cycle) != PST_OK
        || pst_control_listen(cycle) != PST_OK
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
        pst_control_switch(0);
        pst_shm_mark_all_used();
        pst_destroy_cycle(cycle);
        pst_log_error(PST_LOG_ERR, 0, "reload failed; the running"
                      " configuration stays");
        counts.reload_failures++;
        pst_status_sync();
        return;
    }

    pst_control_switch(1);
    pst_log_main.format = (int) cycle->core->log_format;
    pst_log_set_node(&cycle->core->node_name);
    (void) pst_metrics_listen(cycle);   /* a new address, or none */

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

    /* the operator may have fixed what made a role crash */
    for (i = 0; i < nroles; i++) {
        role_state[i].paused = 0;
    }

    pst_cycle = cycle;
    listeners_closed = 0;
    generation++;
    counts.reloads++;
    counts.last_reload = time(NULL);
    pst_fill_roles(cycle);
    pst_signal_children(SIGQUIT, 1);
    pst_wait_old_stop_accepting();

    /* the old cycle's memory goes now: its children, still finishing,
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
                  " closed %s", pst_role_type_paused(PST_PROC_WORKER)
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


/* Pauses that are over: start what is missing again. */
static void
pst_respawn_resume(pst_cycle_t *cycle)
{
    time_t  now = time(NULL);
    int     r;

    for (r = 0; r < nroles; r++) {
        if (role_state[r].paused && role_state[r].resume_at <= now) {
            role_state[r].paused = 0;
            role_state[r].resumed = now;
        }
    }
    pst_respawn_arm(now);

    if (!pst_role_type_paused(PST_PROC_WORKER)) {
        (void) pst_reopen_listeners(cycle);
    }
    pst_fill_roles(cycle);
}


static int
pst_role_type_paused(pst_proc_e type)
{
    int  r;

    for (r = 0; r < nroles; r++) {
        if (roles[r]->type == type && role_state[r].paused) {
            return 1;
        }
    }
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

    if (pst_status_init() != PST_OK || pst_inboxes_init() != PST_OK) {
        return 1;
    }

    pst_fill_roles(cycle);
    (void) pst_notify("READY=1");

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
            if (!pst_quit) {
                pst_respawn_resume(pst_cycle);
            }
        }

        if (pst_terminate) {
            if (!sent_term) {
                if (!sent_quit) {
                    (void) pst_notify("STOPPING=1");
                }
                sent_term = 1;
                term_at = time(NULL);
                pst_signal_children(SIGTERM, 0);
                pst_control_close(1);
                alarm(1);
            } else if (pst_alarm_fired(&killed, term_at)) {
                pst_signal_children(SIGKILL, 0);
            }
        } else if (pst_quit && !sent_quit) {
            sent_quit = 1;
            (void) pst_notify("STOPPING=1");
            pst_signal_children(SIGQUIT, 0);
            /* the workers stop accepting; with our copies closed too,
             * new clients are refused instead of waiting in the backlog
             * for a greeting that never comes */
            pst_close_listening_sockets(pst_cycle);
            pst_control_close(1);
        }

        if ((pst_quit || pst_terminate) && pst_live_children() == 0) {
            pst_log_error(PST_LOG_NOTICE, 0, "exiting");
            pst_control_close(1);
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
            pst_notify_reloading();
            pst_master_reconfigure();
            (void) pst_notify("READY=1");
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
/* Children                                                            */

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

    /* setuid clears it; core dumps of a crashed child help debugging */
    (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}


/* The inboxes of other roles are not ours to read. */
static void
pst_child_inboxes(int role)
{
    int  i;

    for (i = 0; i < nroles; i++) {
        if (i != role && role_state[i].inbox[0] != -1) {
            close(role_state[i].inbox[0]);
            role_state[i].inbox[0] = -1;
        }
    }
}


static int
pst_child_init(pst_cycle_t *cycle, pst_proc_e type)
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
           != PST_OK)
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

    return roles[my_role]->init(cycle);
}


static void
pst_child_exit(pst_cycle_t *cycle, int code)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    if (roles[my_role]->exit != NULL) {
        roles[my_role]->exit(cycle);
    }

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
pst_child_loop(pst_cycle_t *cycle)
{
    const pst_role_t  *role = roles[my_role];
    char               title[64];
    int                stop = PST_ROLE_RUN, rc;

    for ( ;; ) {
        if (pst_process_events_and_timers() != PST_OK) {
            pst_child_exit(cycle, 1);
        }

        if (pst_terminate) {
            stop = PST_ROLE_TERM;
        } else if (pst_quit && stop == PST_ROLE_RUN) {
            stop = PST_ROLE_QUIT;
            snprintf(title, sizeof(title), "%s process is shutting down",
                     role->name);
            pst_setproctitle(title);
        }

        rc = role->loop(cycle, stop);
        if (rc == PST_ERROR) {
            pst_child_exit(cycle, 2);       /* as a failed init */
        }
        if (rc == PST_DONE || stop == PST_ROLE_TERM) {
            pst_child_exit(cycle, 0);
        }

        if (pst_reopen) {
            pst_reopen = 0;
            (void) pst_log_reopen(&pst_log_main);
        }
    }
}


static void
pst_child_process(pst_cycle_t *cycle, int slot, int role)
{
    char  title[64];

    my_role = role;
    pst_process_type = roles[role]->type;
    pst_proc_slot_index = slot;
    pst_log_main.role = roles[role]->name;
    pst_reap = 0;
    pst_reconfigure = 0;
    snprintf(title, sizeof(title), "%s process", roles[role]->name);
    pst_setproctitle(title);
    pst_child_inboxes(role);

    /* a child outliving its master stops gracefully */
    (void) prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);

    if (pst_child_init(cycle, roles[role]->type) != PST_OK) {
        exit(2);
    }

    /* changing credentials (pst_drop_privileges) clears the parent-death
     * signal: set it again, then catch a master that died before that
     * (an orphan's parent is init or a subreaper, not always pid 1) */
    (void) prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);
    if (getppid() != master_pid) {
        pst_quit = 1;
    }

    pst_child_loop(cycle);
}


int
pst_single_run(pst_cycle_t *cycle)
{
    pst_process_type = PST_PROC_SINGLE;
    pst_log_main.role = "single";
    my_role = 0;

    if (pst_child_init(cycle, PST_PROC_SINGLE) != PST_OK) {
        return 2;
    }

    pst_child_loop(cycle);
    return 0;
}
