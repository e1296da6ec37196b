/*
 * pst_notify.c -- sd_notify(3) in a few lines (see pst_notify.h).
 *
 * The protocol: one datagram of newline-separated VAR=VALUE lines to
 * the AF_UNIX socket named by $NOTIFY_SOCKET, a path or, with a leading
 * "@", an abstract name.  The master is the service's main process
 * (postern -f under systemd), so NotifyAccess=main suffices.  The
 * socket is opened for each message: three or four per start, reload
 * and stop, and nothing is kept across a fork.
 */

#include "pst_core.h"
#include "pst_notify.h"

#include <sys/un.h>


int
pst_notify(const char *state)
{
    struct sockaddr_un   sa;
    const char          *path;
    socklen_t            len;
    size_t               n;
    ssize_t              sent;
    int                  fd;

    path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@')) {
        return PST_DECLINED;
    }

    n = strlen(path);
    if (n < 2 || n >= sizeof(sa.sun_path)) {
        pst_log_error(PST_LOG_INFO, 0, "NOTIFY_SOCKET \"%s\" is not a"
                      " usable socket name", path);
        return PST_ERROR;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0';            /* abstract: no trailing NUL */
    }
    len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n
                       + (path[0] == '@' ? 0 : 1));

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        pst_log_error(PST_LOG_INFO, errno, "notify: socket() failed");
        return PST_ERROR;
    }

    /* MSG_DONTWAIT: a service manager that does not read must not stop
     * the master */
    sent = sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
                  (struct sockaddr *) &sa, len);
    if (sent == -1) {
        pst_log_error(PST_LOG_INFO, errno, "notify \"%s\" to \"%s\""
                      " failed", state, path);
    }
    close(fd);

    return sent == (ssize_t) strlen(state) ? PST_OK : PST_ERROR;
}


void
pst_notify_reloading(void)
{
    struct timespec  ts;
    char             buf[64];

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        (void) pst_notify("RELOADING=1");
        return;
    }
    snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long) ts.tv_sec * 1000000ULL
             + (unsigned long long) ts.tv_nsec / 1000);
    (void) pst_notify(buf);
}
