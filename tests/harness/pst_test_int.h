/*
 * pst_test_int.h -- libpostern-test's internals, shared by pst_test.c
 * (set-up, configuration, the fake client, verdicts) and pst_test_msg.c
 * (the harness module: its hooks and in-memory store; the stored
 * message; scripted DNS), pst_test_session.c (the fake client, the
 * loop), pst_test_tls.c (its STARTTLS), pst_test_auth.c (its AUTH) and
 * pst_test_queue.c (the queue side: a fake queued message, its events,
 * routers).
 */

#ifndef PST_TEST_INT_H
#define PST_TEST_INT_H

#include "pst_core.h"
#include "pst_event.h"
#include "pst_connection.h"
#include "pst_dns.h"
#include "pst_envelope.h"
#include "pst_smtp.h"

#include "postern_test.h"

#define PST_TEST_DNS_MAX     32
#define PST_TEST_RR_MAX      8
#define PST_TEST_QUIET_MS    100     /* no progress: a hook is pending */

typedef struct {
    char                         name[256];
    int                          type;
    pst_dns_status_e             status;
    int                          delay;
    pst_uint_t                   n;
    pst_str_t                    rd[PST_TEST_RR_MAX];
    u_char                       buf[PST_TEST_RR_MAX][260];
    unsigned                     asked;
    pst_test_dnssec_e            dnssec;
} pst_test_dns_t;

typedef struct pst_test_queue_s  pst_test_queue_t;

struct pst_test_s {
    char                        *dir;
    char                        *load;         /* load_module lines */
    pst_cycle_t                 *cycle;
    char                         error[4096];
    char                        *log;
    int                          fd;           /* the client's end */
    pst_test_reply_t             reply;
    const char                  *cmd;          /* phase of the last */

    /* facts of the next session */
    struct sockaddr_storage      addr;
    socklen_t                    addrlen;
    char                         name[256];
    char                         auth[256];
    int                          has_tls;
    pst_tls_facts_t              tls;

    /* what the harness module saw */
    pst_session_t               *session;
    int                          started[PST_PHASE_MAX];
    int                          reached[PST_PHASE_MAX];
    int                          hold_at_start[PST_PHASE_MAX];
    int                          committed;    /* in this transaction */

    /* the last message stored */
    int                          stored;
    pst_pool_t                  *pool;
    pst_envelope_t               env;
    u_char                      *msg;          /* as delivered */
    size_t                       msg_len;
    char                        *value;        /* pst_test_header() */

    pst_test_dns_t               dns[PST_TEST_DNS_MAX];
    pst_uint_t                   ndns;

    /* the client's TLS after pst_test_starttls() (pst_test_tls.c) */
    struct ssl_ctx_st           *ssl_ctx;
    struct ssl_st               *ssl;
    char                         params[2048]; /* pst_test_*_params() */

    /* the queue side (pst_test_queue.c) */
    pst_proc_e                   proc;         /* for init_process() */
    pst_test_queue_t            *queue;
};

extern pst_test_t          *pst_test_current;
extern const pst_module_t   pst_test_module;

/* pst_test_session.c */
pst_msec_t pst_test_real_ms(void);
void pst_test_turn(void);

/* pst_test_tls.c */
int pst_test_tls_certificate(pst_test_t *t);
void pst_test_tls_end(pst_test_t *t);
ssize_t pst_test_tls_recv(pst_test_t *t, void *buf, size_t n, int peek);
ssize_t pst_test_tls_send(pst_test_t *t, const void *buf, size_t n);

/* pst_test_msg.c */
int pst_test_dns_answer(const char *name, int type, pst_dns_answer_t *a,
    void *data);
void pst_test_forget_message(pst_test_t *t);

/* pst_test_queue.c */
/* The queued message leaves, a pending route is cancelled. */
void pst_test_queue_free(pst_test_t *t);

#endif /* PST_TEST_INT_H */
