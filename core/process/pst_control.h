/*
 * pst_control.h -- the control socket.
 *
 * A unix stream socket (`control_socket PATH;`, default SPOOL/control)
 * that the master binds once (owner the run user, mode 0660) and keeps
 * over reloads and respawns; the queue process serves it from its
 * event loop.  `postern queue ...` and `postern status` are its
 * clients.
 *
 * Protocol: the client sends one line of words separated by one space,
 * each xtext-encoded (RFC 3461: "+XX" for a space, "+", "=", controls
 * and non-ASCII bytes), ended by LF.  The server answers with a first
 * line `OK`, `ERR text` or `USAGE text`, then the body, then closes.
 * "status [json]" is answered here (processes, pids, uptime, reloads);
 * every other verb goes to the handler the queue process registered
 * (pst_control_handler(): pst_queue_control()), so that this process
 * layer file does not call the queue engine above it.
 */

#ifndef PST_CONTROL_H
#define PST_CONTROL_H

#define PST_CONTROL_LINE_MAX     4096
#define PST_CONTROL_ARGS_MAX     64
#define PST_CONTROL_ANSWER_MAX   (256 * 1024 * 1024)
#define PST_CONTROL_CONN_MAX     16
#define PST_CONTROL_TIMEOUT      30000     /* ms, each side */
#define PST_CONTROL_EX_USAGE     64        /* sysexits.h EX_USAGE */

/* Master: bind the cycle's socket unless it is the one already bound
 * (a reload keeps it); then _switch(1) drops the previous one, or
 * _switch(0) goes back to it (the reload failed). */
int pst_control_listen(pst_cycle_t *cycle);
void pst_control_switch(int commit);
/* Close the socket in this process; the master also removes its file
 * (remove = 1). */
void pst_control_close(int remove);

/* Queue process: serve the socket inherited from the master; stop
 * accepting (graceful stop); connections still open. */
int pst_control_serve(pst_cycle_t *cycle);
/* Whether queue requests can go to the engine yet (0: not yet, ERR
 * "waits"; 1: yes; PST_CONTROL_NO_ENGINE: never, ERR "no router"). */
#define PST_CONTROL_NO_ENGINE  (-1)
void pst_control_engine(int ready);
/* What answers every verb but status: argv[0] is the verb; the answer
 * goes into out; returns PST_CONTROL_OK, _FAILED (the first line of out
 * is the reason) or _USAGE (out holds the usage text). */
#define PST_CONTROL_OK           0
#define PST_CONTROL_FAILED       1
#define PST_CONTROL_USAGE        PST_CONTROL_EX_USAGE
typedef int (*pst_control_handler_pt)(int argc, char **argv,
    pst_buf_t *out);
void pst_control_handler(pst_control_handler_pt handler);
void pst_control_stop(void);
pst_uint_t pst_control_busy(void);

/* The answer to one request line (without LF), status and body as the
 * server sends them; exposed for the unit tests. */
int pst_control_answer(u_char *line, size_t len, pst_buf_t *out);

/* Client: send argv[0..argc) and print the answer (body to stdout, an
 * ERR or USAGE text to stderr).  Returns the exit code (0 OK, 1 ERR, 64
 * USAGE), or -1 when nothing listens on path (Postern is not running). */
int pst_control_request(const char *path, int argc, char **argv);

#endif /* PST_CONTROL_H */
