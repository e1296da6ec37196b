/*
 * pst_process.h -- the master process and its children.
 *
 * The master reads the configuration, binds the listeners, loads the
 * modules and forks its children from a table of roles (pst_role_t):
 * worker_processes SMTP workers and one queue process.  It never
 * touches a client and knows nothing about SMTP: each role brings its
 * own init, loop step and exit.  Every child gets the same set-up (its
 * slot, privileges dropped, resolver, event loop, modules'
 * init_process with the role's type), the same respawn with back-off
 * and the same graceful stop.  Signal handlers only set the flags
 * below; the master's loop (and each child's event loop) acts on them:
 *
 *   HUP   master: build a new cycle; on success fork new workers and ask
 *         the old ones to finish gracefully; on failure keep running
 *   QUIT  graceful stop: workers stop accepting, finish their sessions
 *   TERM  fast stop (INT too): workers close every session at once
 *   USR1  reopen log files
 *   CHLD  master: reap, clear the dead child's shared counters, respawn
 *
 * Children run as the `user` account when the master runs as root.
 *
 * A role may have an inbox: a SOCK_SEQPACKET socketpair the master
 * makes once and keeps, so a respawned child finds working ends.  The
 * role's processes read one end (pst_process_inbox()), every child may
 * write into the other (pst_process_send()); messages wait in the
 * socket while the reader restarts.
 */

#ifndef PST_PROCESS_H
#define PST_PROCESS_H

extern volatile sig_atomic_t  pst_quit;
extern volatile sig_atomic_t  pst_terminate;
extern volatile sig_atomic_t  pst_reconfigure;
extern volatile sig_atomic_t  pst_reopen;
extern volatile sig_atomic_t  pst_reap;
extern volatile sig_atomic_t  pst_alarm;
extern pst_proc_e             pst_process_type;
extern const char            *pst_prefix_arg;
extern const char            *pst_conf_arg;

#define PST_ROLE_RUN             0
#define PST_ROLE_QUIT            1    /* graceful: finish, then exit */
#define PST_ROLE_TERM            2    /* fast: close everything now */
#define PST_MAX_ROLES            4

typedef struct {
    const char                  *name;      /* title: "NAME process" */
    pst_proc_e                   type;      /* for init_process() */
    unsigned                     exclusive:1;  /* never two at once: after
                                               a reload the new one starts
                                               when the old one is gone */
    unsigned                     inbox:1;   /* has a pst_process_send()
                                               inbox */
    /* how many the master runs for this configuration */
    pst_int_t                  (*count)(pst_cycle_t *cycle);
    /* in the child, after the common set-up and the modules'
     * init_process(); PST_ERROR: exit code 2, not respawned */
    int                        (*init)(pst_cycle_t *cycle);
    /* after every pass of the event loop, with PST_ROLE_RUN, _QUIT or
     * _TERM; PST_DONE: the process may exit now; PST_ERROR: it cannot
     * work (exit code 2, as a failed init) */
    int                        (*loop)(pst_cycle_t *cycle, int stop);
    /* before the modules' exit_process() */
    void                       (*exit)(pst_cycle_t *cycle);
} pst_role_t;

/* What the master knows about its children, for `postern status`:
 * kept in shared memory by the master, read by any child. */
typedef struct {
    pid_t                        pid;       /* 0: free */
    int                          role;      /* index in the role table */
    time_t                       started;
    unsigned                     generation;
    unsigned                     exiting;
} pst_proc_info_t;

typedef struct {
    pid_t                        master;
    time_t                       started;
    time_t                       last_reload;   /* 0: never */
    unsigned                     reloads;       /* successful ones */
    unsigned                     reload_failures;
    unsigned                     generation;
    unsigned                     respawns;
    pst_proc_info_t              procs[PST_MAX_PROCS];
} pst_proc_status_t;

/* The roles, NULL-terminated, in start order; before pst_master_run. */
void pst_process_set_roles(const pst_role_t *const *roles);
const pst_role_t *pst_process_role(int index);
/* A consistent copy of the status table.  PST_ERROR: no master. */
int pst_process_status(pst_proc_status_t *st);
/* Send a message to the inbox of the role of type `to`.  PST_OK,
 * PST_AGAIN (its queue is full), PST_DECLINED (no such inbox here),
 * PST_ERROR. */
int pst_process_send(pst_proc_e to, unsigned type, const void *data,
    size_t len, int fd);
/* This process's inbox (read end), or -1. */
int pst_process_inbox(void);

int pst_init_signals(void);
int pst_master_run(pst_cycle_t *cycle);
/* Run the first role in the foreground (-F debugging aid). */
int pst_single_run(pst_cycle_t *cycle);
/* -s reload|quit|stop|reopen: signal the running master. */
int pst_signal_master(pst_cycle_t *cycle, const char *name);
/* reload, quit, stop, reopen: the signal number; 0 for another name. */
int pst_signal_by_name(const char *name);
int pst_daemonize(void);
/* Become the workers' account (when root); exits 2 if it cannot. */
void pst_drop_privileges(pst_cycle_t *cycle);
int pst_write_pid(pst_cycle_t *cycle);
void pst_delete_pid(pst_cycle_t *cycle);

void pst_init_setproctitle(int argc, char **argv);
void pst_setproctitle(const char *title);

/* pst_cycle.c: configuration generations (the cycle's types are in
 * pst_cycle.h, in the base layer) */

/* The built-in module of the top-level directives. */
extern const pst_module_t   pst_core_module;

/* Read the configuration and build a cycle.  On failure the messages
 * went to the log / stderr and NULL is returned. */
pst_cycle_t *pst_init_cycle(const char *prefix, const char *conf_file,
    pst_cycle_t *old, FILE *dump);
/* Only the top-level directives a tool needs to find the running
 * server (spool_dir, control_socket, pid, user): no module is loaded,
 * no block read, no key or users file opened.  For `postern queue`
 * and `postern status`. */
pst_cycle_t *pst_init_cycle_light(const char *prefix, const char *conf_file);
void pst_destroy_cycle(pst_cycle_t *cycle);
/* Master: run every module's init_module() for a cycle that is about to
 * serve (not for -t).  PST_ERROR refuses the cycle. */
int pst_cycle_init_modules(pst_cycle_t *cycle);
/* -T: effective configuration and the hook chains of each listener. */
void pst_cycle_dump(pst_cycle_t *cycle, FILE *out);

#endif /* PST_PROCESS_H */
