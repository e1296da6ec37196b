/*
 * pst_dns.h -- asynchronous DNS in the worker's event loop (libunbound).
 *
 * One libunbound context per worker, in asynchronous mode; its file
 * descriptor sits in the event loop and answers are processed there, so
 * a lookup never blocks a session.  With `resolver ADDR ...;` every
 * query is forwarded to those servers (loopback servers included: tests
 * start dnsmasq on 127.0.0.1); without it the system's resolv.conf is
 * used.  With `resolver_trust_anchor FILE;` answers are DNSSEC-validated
 * and carry secure/bogus flags; without it they are never "secure".
 * The public calls (pst_dns_resolve...) are declared in postern_module.h.
 */

#ifndef PST_DNS_H
#define PST_DNS_H

int pst_dns_init(pst_cycle_t *cycle);
void pst_dns_done(void);
/* Load a trust-anchor file as libunbound will: PST_OK, or PST_ERROR
 * with *err set (libunbound prints the details on stderr). */
int pst_dns_check_trust_anchor(const char *path, const char **err);
/* 1 when a resolver directive configured DNS explicitly. */
int pst_dns_configured(void);
/* The test harness's scripted DNS (libpostern-test): while set, every
 * pst_dns_resolve() asks fn(name, type, NULL, data) instead of
 * libunbound for the delay in ms after which the answer comes, or -1
 * for none (the query times out); when the delay is over,
 * fn(name, type, answer, data) fills the answer (status, records; its
 * memory must outlive the callback). */
typedef int (*pst_dns_script_pt)(const char *name, int type,
    pst_dns_answer_t *answer, void *data);
void pst_dns_script(pst_dns_script_pt fn, void *data);
/* A name from DNS is safe to put into a log or protocol line:
 * letters, digits, '-', '_' and '.', at most 253 bytes. */
int pst_dns_name_safe(const char *name);

#endif /* PST_DNS_H */
