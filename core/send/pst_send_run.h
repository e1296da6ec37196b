/*
 * pst_send_run.h -- the state of one postern-send SMTP session, shared
 * by pst_send_smtp.c (the dialogue) and pst_send_result.c (exit codes,
 * the printed and JSON results).  Internal to postern-send.
 */

#ifndef PST_SEND_RUN_H
#define PST_SEND_RUN_H

#include "pst_send.h"
#include "pst_ssl.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_smtp_client.h"

#include <netdb.h>

typedef struct {
    int                     code;       /* 0: no reply */
    char                    ecode[16];
    char                    text[1024];
    unsigned                accepted:1;
    unsigned                aborted:1;  /* accepted, then not sent */
} pst_send_reply_t;

typedef enum {
    PST_SEND_STEP_CMD = 1,
    PST_SEND_STEP_PROBE,
    PST_SEND_STEP_RSET,
    PST_SEND_STEP_TX,
    PST_SEND_STEP_XOAUTH,
    PST_SEND_STEP_XOAUTH_CANCEL
} pst_send_step_e;

typedef struct {
    const pst_send_opts_t  *o;
    pst_send_job_t         *job;
    pst_pool_t             *pool;
    pst_ssl_ctx_t          *ctx;
    pst_smtp_client_t      *cl;
    pst_smtp_client_tx_t    tx;
    pst_smtp_client_rcpt_t *rcpts;
    char                   *pass;
    char                    host[256], port[16], helo[256], peer[128];
    struct addrinfo        *ai, *cur;
    struct sockaddr_storage local;
    socklen_t               local_len;
    char                    mail_params[512];
    pst_send_step_e         step;
    size_t                  vi, ei, probe;
    unsigned                probe_failed:1;
    unsigned                rset_done:1;
    unsigned                aborted:1;
    unsigned                sent:1;
    unsigned                broken:1;
    unsigned                done:1;
    unsigned                xoauth:1;       /* --auth XOAUTH2 */
    unsigned                xoauth_done:1;
    int                     tls, tls_verified;
    int                     exit;
    pst_send_reply_t        fail, mail, data;
    pst_send_reply_t       *res, *vrfy, *expn;
    char                    last_reason[512];
    pst_event_t             progress;       /* --progress timer */
    uint64_t                wbase;
    unsigned                progress_on:1;
} pst_send_run_t;

void pst_send_reply_copy(pst_send_reply_t *d, const pst_smtp_reply_t *s);
/* Exit code for a failure before the transaction (code 0: network). */
int pst_send_exit_for(int code, int session);
/* Exit code from the transaction's replies. */
int pst_send_exit_code(pst_send_run_t *r);
/* Print the per-recipient results (or JSON) and set r->last_reason. */
void pst_send_report(pst_send_run_t *r);
/* The recipients to try again (no reply, or 4xx) into job->retry. */
void pst_send_retry_list(pst_send_run_t *r);
void pst_send_run_free(pst_send_run_t *r);
/* pst_send_progress.c: the --progress line during the transaction. */
void pst_send_progress_start(pst_send_run_t *r);
void pst_send_progress_stop(pst_send_run_t *r, int complete);
/* pst_send_xoauth.c: AUTH XOAUTH2 as a command after ready; the reply:
 * PST_OK authenticated, PST_AGAIN waiting ("*" sent), PST_ERROR
 * refused (r->fail says why). */
int pst_send_xoauth_start(pst_send_run_t *r);
int pst_send_xoauth_reply(pst_send_run_t *r, const pst_smtp_reply_t *rep);
/* pst_send_smtp.c: the command callback (also for XOAUTH2) */
void pst_send_cmd_done(pst_smtp_client_t *cl, void *data,
    const pst_smtp_reply_t *rep);
/* pst_send_pass.c: the password from the sources of the options, or
 * NULL (the reason printed). */
char *pst_send_get_password(const pst_send_opts_t *o);

#endif /* PST_SEND_RUN_H */
