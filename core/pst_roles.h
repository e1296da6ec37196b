/*
 * pst_roles.h -- the process roles of the postern binary, in start
 * order (pst_main.c hands them to pst_process_set_roles()).
 */

#ifndef PST_ROLES_H
#define PST_ROLES_H

/* SMTP workers: pst_smtp_worker.c */
extern const pst_role_t  pst_smtp_worker_role;
/* the queue process: pst_queue_process.c */
extern const pst_role_t  pst_queue_role;

/* Worker: the message is durable; tell the queue process.  Never
 * blocks; a notification the queue process cannot take is logged and
 * dropped (its spool scan finds the message). */
void pst_queue_notify_committed(const u_char *id, size_t len);

#endif /* PST_ROLES_H */
