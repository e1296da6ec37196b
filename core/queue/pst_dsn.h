/*
 * pst_dsn.h -- delivery status notifications (RFC 3464 reports in
 * RFC 6522 multipart/report, RFC 6533 global forms for SMTPUTF8 mail).
 *
 * The relay engine decides when a DSN is due (NOTIFY, never to the
 * null sender), builds it here and injects it with pst_spool_inject()
 * from the null sender to env->sender.  This file only writes bytes:
 * no SMTP, no spool writes, no policy.
 *
 * Every value that came from a client or a remote server (addresses,
 * ENVID, replies, host names, the original header lines) is written
 * sanitised: no CR or LF of its own, no control characters, bounded in
 * length, folded so that no line exceeds 998 octets; non-ASCII only in
 * the global form and only as valid UTF-8.
 */

#ifndef PST_DSN_H
#define PST_DSN_H

#include "pst_spool.h"
typedef enum {
    PST_DSN_FAILED = 0,
    PST_DSN_DELAYED,
    PST_DSN_DELIVERED,
    PST_DSN_RELAYED
} pst_dsn_action_e;

typedef struct {
    const char          *reporting_mta;  /* our host name */
    time_t               now;            /* Date:; 0: time(NULL) */
    time_t               retry_until;    /* DELAYED: Will-Retry-Until;
                                            0: not said */
    off_t                full_max;       /* RET=FULL returns originals up
                                            to this size whole, larger
                                            ones as headers; 0: 10 MiB */
    unsigned             eightbit;       /* out: 8-bit content inside
                                            (inject with BODY=8BITMIME) */
} pst_dsn_opts_t;

/* Build one RFC 3464 report (RFC 6533 global form when env->smtputf8)
 * about the recipients whose index is in which[0..n) with the action
 * given, from the null sender to env->sender, as CRLF message bytes in
 * *out (headers or whole original per env->ret, read from m->fd).
 * reporting_mta: our host name.  PST_OK / PST_ERROR.  *out is
 * allocated with pst_buf_alloc(): pst_buf_destroy() it. */
int pst_dsn_build(pst_pool_t *pool, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    const char *reporting_mta, pst_buf_t **out);
/* The same with every option (pst_dsn_build() leaves all but
 * reporting_mta at 0). */
int pst_dsn_build_opts(pst_pool_t *pool, const pst_spool_msg_t *m,
    pst_dsn_action_e action, const pst_uint_t *which, pst_uint_t n,
    pst_dsn_opts_t *opts, pst_buf_t **out);

/* The status code of a recipient for a DSN: the enhanced code of its
 * reply when it has one of the right class, else one made from the
 * reply code or the action ("5.0.0").  out holds 16 bytes. */
void pst_dsn_status(const pst_env_rcpt_t *r, pst_dsn_action_e action,
    char *out);

#endif /* PST_DSN_H */
