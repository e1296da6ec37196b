/*
 * milter.h -- shared by the files of the filter_milter module:
 * configuration, per-session state, and the functions each file gives
 * the others.
 *
 *   filter_milter.c   directives, hooks, the driver of each phase
 *   milter_conn.c     connections: connect, negotiate, frames in and
 *                     out on the event loop, timers, close
 *   milter_msg.c      end of data: headers, body chunks, end of message
 *                     and the filter's modifications
 *   milter_pool.c     idle connections kept between sessions (QUIT_NC)
 *   milter_codec.c    the wire format (no I/O)
 */

#ifndef MILTER_H
#define MILTER_H

#include <sys/socket.h>

#include "postern_module.h"
#include "milter_codec.h"

#define MILTER_MAX              16        /* milters per server block */
#define MILTER_RBUF             (MILTER_FRAME_MAX + 5)
#define MILTER_HDR_MAX          (1024 * 1024)

typedef enum {
    MILTER_FAIL_TEMPFAIL = 0,
    MILTER_FAIL_ACCEPT,
    MILTER_FAIL_REJECT
} milter_fail_e;

/* One "milter" directive. */
typedef struct {
    pst_str_t                    name;          /* as configured */
    struct sockaddr_storage      sa;
    socklen_t                    salen;
    milter_fail_e                fail;          /* default_action */
    pst_msec_t                   timeout;       /* per command */
    pst_msec_t                   connect_timeout;
} milter_conf_t;

typedef struct {
    pst_array_t                 *milters;       /* milter_conf_t */
} milter_srv_conf_t;

typedef enum {
    MILTER_S_CLOSED = 0,
    MILTER_S_CONNECTING,
    MILTER_S_NEGOTIATING,      /* OPTNEG sent */
    MILTER_S_READY,
    MILTER_S_FAILED            /* broke in this session: default action */
} milter_state_e;

/* what the milter is doing within the end-of-data phase */
typedef enum {
    MILTER_M_HEADERS = 0,
    MILTER_M_EOH,
    MILTER_M_BODY,
    MILTER_M_EOM,
    MILTER_M_DONE
} milter_mstep_e;

typedef struct milter_sess_s  milter_sess_t;

typedef struct {
    const milter_conf_t         *conf;
    milter_sess_t               *ms;
    int                          fd;
    milter_state_e               state;
    uint32_t                     version;
    uint32_t                     actions;
    uint32_t                     protocol;
    pst_str_t                    macros[MILTER_STAGES]; /* requested */
    milter_buf_t                 out;
    u_char                      *in;
    size_t                       in_len;
    pst_timer_t                 *timer;
    unsigned                     gen;           /* + 1 at each close */
    milter_mstep_e               mstep;
    pst_uint_t                   field;         /* next header field */
    off_t                        off;           /* next body byte */
    unsigned                     waiting:1;     /* a reply is due */
    unsigned                     draining:1;    /* go on once written */
    unsigned                     skip_conn:1;   /* accepted the session */
    unsigned                     skip_msg:1;    /* accepted the message */
    unsigned                     in_tx:1;       /* MAIL sent, no EOM yet */
    unsigned                     eom_done:1;    /* last: an EOM answered */
    unsigned                     reused:1;      /* from the idle pool, no
                                                   answer on it yet */
} milter_conn_t;

typedef struct {
    pst_str_t                    name;
    pst_str_t                    value;         /* after the colon */
} milter_field_t;

struct milter_sess_s {
    pst_session_t               *s;
    milter_conn_t               *m;
    pst_uint_t                   n;
    pst_uint_t                   cur;           /* milter being asked */
    pst_phase_e                  phase;
    uint64_t                     token;         /* pending call, or 0 */
    pst_str_t                    rcpt;          /* RCPT phase */
    pst_str_t                    params;        /* MAIL, RCPT: ESMTP args */
    milter_field_t              *fields;        /* end of data */
    pst_uint_t                   nfields;
    off_t                        body_off;
    unsigned                     hold:1;        /* a quarantine */
};

/* filter_milter.c */
extern const pst_module_t        postern_module;
milter_sess_t *milter_session(pst_session_t *s, milter_srv_conf_t *conf);
void milter_log(milter_conn_t *m, int level, const char *fmt, ...)
    PST_PRINTF(3, 4);
/* Go on with the current phase (after a reply, a connect, a drain). */
void milter_next(milter_sess_t *ms);
/* End the pending call with a verdict. */
void milter_answer(milter_sess_t *ms, pst_verdict_e v, int code,
    const char *ecode, const char *text);
/* The milter broke (why): close it, apply its default action. */
void milter_fail(milter_conn_t *m, const char *why);
/* Queue the macros of a stage (command letter) before its command. */
int milter_put_macros(milter_conn_t *m, int stage, int cmd);

/* milter_conn.c */
int milter_connect(milter_conn_t *m);
/* Send what m->out holds; expect a reply (waiting) or not. */
int milter_send(milter_conn_t *m, int waiting);
void milter_close(milter_conn_t *m);
/* A reply frame for the step in progress (filter_milter.c). */
void milter_reply(milter_conn_t *m, int cmd, const u_char *data,
    size_t len);

/* milter_pool.c */
int milter_pool_put(milter_conn_t *m);
int milter_pool_get(milter_conn_t *m);

/* milter_step.c */
pst_verdict_e milter_hook(pst_call_t *call, void *conf);
pst_verdict_e milter_disconnect(pst_call_t *call, void *conf);

/* milter_msg.c */
int milter_msg_fields(milter_sess_t *ms);
/* Next step of the end of data for m: 1 a reply or a drain is awaited,
 * 0 m is finished with this message, -1 failed (already handled). */
int milter_msg_step(milter_conn_t *m);
/* A frame during the end of data: 1 handled (the step goes on by
 * itself), 0 not a modification (a verdict for the caller). */
int milter_msg_modify(milter_conn_t *m, int cmd, const u_char *data,
    size_t len);

#endif /* MILTER_H */
