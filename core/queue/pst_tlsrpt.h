/*
 * pst_tlsrpt.h -- SMTP TLS reporting (RFC 8460): the queue process
 * counts, per policy domain (a destination under an MTA-STS or DANE
 * policy), the TLS sessions that succeeded and the ones that failed and
 * why; every tls_report_interval it mails each domain that publishes a
 * "_smtp._tls" TXT record with a mailto: rua its aggregate report (JSON,
 * RFC 8460 4.4, in a multipart/report; report-type="tlsrpt").
 *
 * The counts live in the queue process's memory: a restart loses those
 * of the period under way.
 */

#ifndef PST_TLSRPT_H
#define PST_TLSRPT_H

#define PST_TLSRPT_MAX_FAIL      32         /* distinct failure lines */

typedef enum {
    PST_TLSRPT_NO_POLICY = 0,               /* "no-policy-found" */
    PST_TLSRPT_STS,                         /* "sts" */
    PST_TLSRPT_TLSA                         /* "tlsa" */
} pst_tlsrpt_type_e;

typedef struct {
    char                         result[40];  /* "certificate-expired" */
    char                         mx[256];
    char                         ip[64];
    unsigned long                count;
} pst_tlsrpt_fail_t;

typedef struct pst_tlsrpt_dom_s  pst_tlsrpt_dom_t;

struct pst_tlsrpt_dom_s {
    pst_tlsrpt_dom_t            *next;
    pst_tlsrpt_type_e            type;
    char                        *policy;    /* policy strings, one per
                                               line, malloc'ed */
    char                        *mx;        /* sts mx patterns, ditto */
    unsigned long                ok, failed;
    pst_uint_t                   nfail;
    pst_tlsrpt_fail_t            fail[PST_TLSRPT_MAX_FAIL];
    char                         domain[256];
};

/* The delivery layer: one TLS session's outcome with domain (result
 * NULL: success).  policy: the policy strings (an MTA-STS policy's
 * lines, or the TLSA records), NULL for none; mx: its mx patterns. */
void pst_tlsrpt_record(const pst_str_t *domain, pst_tlsrpt_type_e type,
    const char *policy, const char *mx, const char *result,
    const char *mx_host, const char *ip);

/* Queue process: start (the timer, when tls_report is on) and stop. */
int pst_tlsrpt_init(pst_cycle_t *cycle);
void pst_tlsrpt_exit(void);

/* The pure parts (pst_tlsrpt_json.c; unit tested).  json(): the
 * report, malloc'ed.  message(): the whole mail (CRLF), malloc'ed, its
 * length in *len.  rua(): the first mailto: address of a TXT record
 * "v=TLSRPTv1; rua=..." into out; PST_DECLINED when there is none. */
char *pst_tlsrpt_json(const pst_tlsrpt_dom_t *d, const char *org,
    const char *contact, const char *report_id, time_t start, time_t end);
u_char *pst_tlsrpt_message(const pst_tlsrpt_dom_t *d, const char *json,
    const char *submitter, const char *rcpt, const char *report_id,
    time_t start, time_t end, size_t *len);
int pst_tlsrpt_rua(const char *txt, char *out, size_t size);

#endif /* PST_TLSRPT_H */
