/*
 * pst_mta_sts.h -- MTA-STS (RFC 8461) for the delivery layer: a
 * destination domain's policy, from its "_mta-sts" TXT record and the
 * policy file fetched over verified HTTPS, cached in memory and on disk
 * (SPOOL/mta-sts/DOMAIN: a restart keeps what was learned).
 *
 * Queue process, on its event loop: the TXT and address lookups go
 * through the core's resolver; the HTTPS fetch (libcurl, to the
 * addresses found, never its own DNS) and the cache files run on the
 * I/O threads (pst_qio).
 */

#ifndef PST_MTA_STS_H
#define PST_MTA_STS_H

#define PST_STS_MAX_MX           32
#define PST_STS_MAX_AGE          31557600  /* a year (RFC 8461 3.2) */
#define PST_STS_MAX_POLICY       65536     /* bytes of a policy file */

typedef enum {
    PST_STS_NONE = 0,
    PST_STS_TESTING,
    PST_STS_ENFORCE
} pst_sts_mode_e;

typedef struct {
    pst_sts_mode_e               mode;
    long                         max_age;
    pst_uint_t                   nmx;
    char                        *mx[PST_STS_MAX_MX];  /* into text */
    char                         id[33];
    time_t                       fetched;
    char                        *text;      /* the patterns, malloc'ed */
} pst_sts_policy_t;

typedef void (*pst_sts_done_pt)(void *data, const pst_sts_policy_t *p);

/* The policy of domain (lower case): PST_OK with *p (NULL: none, or
 * expired) when it is known now; PST_AGAIN with *handle when it is
 * being looked up (done is called later, once, with the policy or NULL:
 * it is valid during the call only); PST_ERROR on no memory. */
int pst_sts_get(const pst_str_t *domain, const pst_sts_policy_t **p,
    pst_sts_done_pt done, void *data, void **handle);
/* Forget a PST_AGAIN whose done has not run. */
void pst_sts_cancel(void *handle);
/* The fetch's port (443; another for tests), timeout and CA file. */
void pst_sts_configure(in_port_t port, pst_msec_t timeout,
    const char *ca_file);

/* The pure parts (unit tested, fuzzed).  parse(): a policy file into
 * *p (p->text malloc'ed: pst_sts_policy_free()); PST_ERROR when it is
 * not a valid STSv1 policy.  txt_id(): the id of the one "v=STSv1"
 * record among n TXT strings, PST_DECLINED when there is none,
 * PST_ERROR when there are several or it is malformed.  mx_match(): 1
 * when host matches one of the policy's mx patterns (RFC 8461 4.1). */
int pst_sts_parse(const u_char *text, size_t len, pst_sts_policy_t *p);
void pst_sts_policy_free(pst_sts_policy_t *p);
int pst_sts_txt_id(const char *const *txt, pst_uint_t n, char *id,
    size_t size);
int pst_sts_mx_match(const pst_sts_policy_t *p, const char *host);

#endif /* PST_MTA_STS_H */
