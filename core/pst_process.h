/*
 * pst_process.h -- the master process and its children.
 *
 * The master reads the configuration, binds the listeners, loads the
 * modules and forks worker_processes SMTP workers.  It never touches a
 * client.  Signal handlers only set the flags below; the master's loop
 * (and each worker's event loop) acts on them:
 *
 *   HUP   master: build a new cycle; on success fork new workers and ask
 *         the old ones to finish gracefully; on failure keep running
 *   QUIT  graceful stop: workers stop accepting, finish their sessions
 *   TERM  fast stop (INT too): workers close every session at once
 *   USR1  reopen log files
 *   CHLD  master: reap, clear the dead child's shared counters, respawn
 *
 * Children run as the `user` account when the master runs as root.
 */

#ifndef PST_PROCESS_H
#define PST_PROCESS_H

extern volatile sig_atomic_t  pst_quit;
extern volatile sig_atomic_t  pst_terminate;
extern volatile sig_atomic_t  pst_reconfigure;
extern volatile sig_atomic_t  pst_reopen;
extern volatile sig_atomic_t  pst_reap;
extern volatile sig_atomic_t  pst_alarm;
extern sigset_t               pst_wait_sigmask;   /* for epoll_pwait */
extern pst_proc_e             pst_process_type;
extern const char            *pst_prefix_arg;
extern const char            *pst_conf_arg;

int pst_init_signals(void);
int pst_master_run(pst_cycle_t *cycle);
/* Run one worker in the foreground (-F debugging aid). */
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

#endif /* PST_PROCESS_H */
