/*
 * pst_log.c -- the error log (see pst_log.h).
 */

#include "pst_core.h"


pst_log_t  pst_log_main = { STDERR_FILENO, PST_LOG_NOTICE, NULL, "main",
                            PST_LOG_TEXT, 0, "" };

const pst_conf_enum_t  pst_log_formats[] = {
    { "text", PST_LOG_TEXT },
    { "json", PST_LOG_JSON },
    { NULL, 0 }
};

static const char  *levels[] = {
    "", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
};


int
pst_log_level_parse(const pst_str_t *name)
{
    size_t  i;

    for (i = 1; i < pst_nelems(levels); i++) {
        if (name->len == strlen(levels[i])
            && memcmp(name->data, levels[i], name->len) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


const char *
pst_log_level_name(int level)
{
    if (level < 1 || level > PST_LOG_DEBUG) {
        return "?";
    }
    return levels[level];
}


void
pst_log_set_node(const pst_str_t *name)
{
    size_t  n;

    n = (name == NULL) ? 0 : pst_min(name->len, PST_NAME_MAX);
    if (n > 0) {
        memcpy(pst_log_main.node, name->data, n);
    }
    pst_log_main.node[n] = '\0';
}


int
pst_log_open(pst_log_t *log, const char *path, int level)
{
    int  fd;

    log->level = level;
    log->path = path;

    if (path != NULL && strncmp(path, "syslog:", 7) == 0) {
        if (pst_log_syslog_open(path) != PST_OK) {
            errno = EINVAL;
            return PST_ERROR;
        }
        log->syslog = 1;
        log->path = NULL;           /* nothing to reopen */
        path = NULL;
    } else {
        log->syslog = 0;
    }

    if (path == NULL) {
        if (log->fd != STDERR_FILENO && log->fd >= 0) {
            close(log->fd);
        }
        log->fd = STDERR_FILENO;
        return PST_OK;
    }

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        return PST_ERROR;
    }

    if (log->fd != STDERR_FILENO && log->fd >= 0) {
        close(log->fd);
    }
    log->fd = fd;

    return PST_OK;
}


int
pst_log_reopen(pst_log_t *log)
{
    int  fd;

    if (log->path == NULL) {
        return PST_OK;
    }

    fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        pst_log_error(PST_LOG_ERR, errno, "cannot reopen \"%s\"", log->path);
        return PST_ERROR;
    }

    if (log->fd != STDERR_FILENO) {
        close(log->fd);
    }
    log->fd = fd;

    return PST_OK;
}


void
pst_log_verror(int level, int err, const char *fmt, va_list ap)
{
    char             line[PST_LOG_LINE_MAX];
    struct timespec  ts;
    struct tm        tm;
    size_t           n, body;
    int              k;

    if (level > pst_log_main.level) {
        return;
    }

    if (pst_log_main.format == PST_LOG_JSON) {
        pst_log_vjson(level, err, fmt, ap);
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    k = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s%spostern[%d] %s:"
                 " %s: ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 pst_log_main.node, pst_log_main.node[0] ? " " : "",
                 (int) getpid(), pst_log_main.role, levels[level]);
    n = (k < 0) ? 0 : pst_min((size_t) k, sizeof(line) - 1);
    body = n;

    k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (k > 0) {
        n = pst_min(n + (size_t) k, sizeof(line) - 1);
    }

    if (err != 0 && n < sizeof(line) - 1) {
        k = snprintf(line + n, sizeof(line) - n, " (%d: %s)", err,
                     strerror(err));
        if (k > 0) {
            n = pst_min(n + (size_t) k, sizeof(line) - 1);
        }
    }

    /* keep one line per record whatever the message contains */
    for (k = 0; (size_t) k < n; k++) {
        if (line[k] == '\n' || line[k] == '\r') {
            line[k] = ' ';
        }
    }

    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';

    pst_log_write(level, line, n, body);
}


void
pst_log_write(int level, const char *line, size_t n, size_t body)
{
    if (pst_log_main.syslog) {
        pst_log_syslog_write(level, line + body, n - body);
        return;
    }

    (void) !write(pst_log_main.fd, line, n);
}


void
pst_log_error(int level, int err, const char *fmt, ...)
{
    va_list  ap;

    if (level > pst_log_main.level) {
        return;
    }

    va_start(ap, fmt);
    pst_log_verror(level, err, fmt, ap);
    va_end(ap);
}


void
pst_log(int level, int err, const char *fmt, ...)
{
    va_list  ap;

    if (level > pst_log_main.level) {
        return;
    }

    va_start(ap, fmt);
    pst_log_verror(level, err, fmt, ap);
    va_end(ap);
}


void
pst_fatal(int err, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    pst_log_verror(PST_LOG_EMERG, err, fmt, ap);
    va_end(ap);

    exit(2);
}
