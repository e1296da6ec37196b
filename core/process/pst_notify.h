/*
 * pst_notify.h -- systemd's readiness protocol (sd_notify) without
 * libsystemd: the master tells the service manager READY=1,
 * RELOADING=1 and STOPPING=1 (dist/postern.service, Type=notify).
 */

#ifndef PST_NOTIFY_H
#define PST_NOTIFY_H

/* Send one state ("READY=1", ...) to $NOTIFY_SOCKET; nothing when it is
 * not set.  Never blocks; a failure is logged at info. */
int pst_notify(const char *state);

/* "RELOADING=1" with MONOTONIC_USEC=, as systemd 253 and later want it
 * (older ones ignore the second line); READY=1 ends the reload. */
void pst_notify_reloading(void);

#endif /* PST_NOTIFY_H */
