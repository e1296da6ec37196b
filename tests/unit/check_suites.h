/* check_suites.h -- one constructor per suite, defined in check_*.c */

#ifndef CHECK_SUITES_H
#define CHECK_SUITES_H

#include <check.h>

Suite *suite_string(void);
Suite *suite_buf(void);
Suite *suite_palloc(void);
Suite *suite_smtp_parse(void);
Suite *suite_smtp_data(void);
Suite *suite_smtp_deadline(void);
Suite *suite_conf_file(void);
Suite *suite_module(void);
Suite *suite_spool(void);
Suite *suite_envelope(void);
Suite *suite_spool_msg(void);
Suite *suite_addr(void);
Suite *suite_session(void);
Suite *suite_channel(void);
Suite *suite_control(void);
Suite *suite_smtp_proto(void);
Suite *suite_smtp_client(void);
Suite *suite_milter(void);
Suite *suite_send(void);
Suite *suite_relay_mx(void);
Suite *suite_dsn(void);
Suite *suite_mime7(void);
Suite *suite_proxy_protocol(void);
Suite *suite_metrics(void);
Suite *suite_queue_event(void);
Suite *suite_sched(void);
Suite *suite_hostlist(void);
Suite *suite_mta_sts(void);
Suite *suite_tlsrpt(void);
Suite *suite_redis(void);
Suite *suite_maildir(void);

#endif
