/*
 * pst_log_syslog.c -- error_log syslog:facility=NAME,tag=TAG;
 *
 * The local syslog daemon through syslog(3) (/dev/log, a datagram to a
 * local socket: bounded, never a network wait).  The facility defaults
 * to mail, the tag to "postern"; the process id is added by LOG_PID.
 * Our levels map one to one onto syslog's priorities.
 */

#include "pst_core.h"

#include <syslog.h>

#define PST_SYSLOG_TAG_MAX   32

static const struct {
    const char                  *name;
    int                          value;
} facilities[] = {
    { "kern", LOG_KERN }, { "user", LOG_USER }, { "mail", LOG_MAIL },
    { "daemon", LOG_DAEMON }, { "auth", LOG_AUTH }, { "syslog", LOG_SYSLOG },
    { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
    { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
    { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
    { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 }
};

/* openlog() keeps the pointer: the tag must outlive every call */
static char  syslog_tag[PST_SYSLOG_TAG_MAX + 1];


static int pst_log_syslog_facility(const char *v, size_t len);


static int
pst_log_syslog_facility(const char *v, size_t len)
{
    size_t  i;

    for (i = 0; i < pst_nelems(facilities); i++) {
        if (strlen(facilities[i].name) == len
            && memcmp(facilities[i].name, v, len) == 0)
        {
            return facilities[i].value;
        }
    }

    return -1;
}


int
pst_log_syslog_parse(const char *spec, int *facility, char *tag,
    size_t tag_size)
{
    const char  *p, *end, *v;
    size_t       len, i;
    int          fac;

    if (strncmp(spec, "syslog:", 7) != 0) {
        return PST_ERROR;
    }

    fac = LOG_MAIL;
    if (tag != NULL) {
        snprintf(tag, tag_size, "postern");
    }

    for (p = spec + 7; *p != '\0'; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }
        v = memchr(p, '=', (size_t) (end - p));
        if (v == NULL) {
            return PST_ERROR;
        }
        v++;
        len = (size_t) (end - v);

        if ((size_t) (v - p) == 9 && memcmp(p, "facility=", 9) == 0) {
            fac = pst_log_syslog_facility(v, len);
            if (fac < 0) {
                return PST_ERROR;
            }
        } else if ((size_t) (v - p) == 4 && memcmp(p, "tag=", 4) == 0) {
            if (len == 0 || len > PST_SYSLOG_TAG_MAX) {
                return PST_ERROR;
            }
            for (i = 0; i < len; i++) {
                if (!isalnum((u_char) v[i]) && v[i] != '_' && v[i] != '-'
                    && v[i] != '.')
                {
                    return PST_ERROR;
                }
            }
            if (tag != NULL) {
                snprintf(tag, tag_size, "%.*s", (int) len, v);
            }
        } else {
            return PST_ERROR;       /* server= and the like: not here */
        }
    }

    if (facility != NULL) {
        *facility = fac;
    }

    return PST_OK;
}


int
pst_log_syslog_open(const char *spec)
{
    int  fac;

    if (pst_log_syslog_parse(spec, &fac, syslog_tag, sizeof(syslog_tag))
        != PST_OK)
    {
        return PST_ERROR;
    }

    closelog();
    openlog(syslog_tag, LOG_PID | LOG_NDELAY, fac);
    return PST_OK;
}


void
pst_log_syslog_write(int level, const char *msg, size_t len)
{
    int  prio;

    /* PST_LOG_EMERG (1) .. PST_LOG_DEBUG (8) -> LOG_EMERG (0) .. */
    prio = pst_max(pst_min(level - 1, LOG_DEBUG), LOG_EMERG);

    if (len > 0 && msg[len - 1] == '\n') {
        len--;
    }

    syslog(prio, "%.*s", (int) len, msg);
}
