/*
 * pst_send_msg.c -- the temporary file a composed or copied message is
 * written to before it is sent: in $TMPDIR (or /tmp), unlinked at once
 * so that nothing is left behind, whatever happens.
 */

#include "pst_send.h"

#include <fcntl.h>


int
pst_send_tmpfile(FILE **f, char *err, size_t size)
{
    const char  *dir = getenv("TMPDIR");
    char         path[4096];
    int          fd;

    snprintf(path, sizeof(path), "%s/postern-send.XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, size, "temporary file %s: %s", path, strerror(errno));
        return PST_SEND_IOERR;
    }
    unlink(path);
    *f = fdopen(fd, "w+");
    if (*f == NULL) {
        close(fd);
        snprintf(err, size, "temporary file: %s", strerror(errno));
        return PST_SEND_IOERR;
    }
    return PST_OK;
}


int
pst_send_finish(FILE *f, pst_send_msg_t *msg, char *err, size_t size)
{
    off_t  len;

    if (fflush(f) != 0 || (len = ftello(f)) == -1) {
        snprintf(err, size, "temporary file: %s", strerror(errno));
        return PST_SEND_IOERR;
    }
    msg->fd = fileno(f);
    msg->length = len;
    return PST_OK;
}
