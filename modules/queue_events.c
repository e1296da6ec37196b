/*
 * queue_events.c -- an example of the queue-side events (ABI 1.2):
 *
 *   queue_events_log FILE;              one JSON line per event
 *   queue_retry PATTERN TIME ...;       a retry schedule for deferred
 *                                       recipients of matching destinations
 *   queue_reroute DOMAIN DESTINATION;   send DOMAIN's mail to DESTINATION
 *
 * PATTERN: "*" (any), "*.example.net" (subdomains) or "example.net".
 * The log file is opened in the queue process (after the privilege
 * drop) with O_APPEND; each event is one write() of at most
 * QEV_LINE_MAX bytes to a local file, which does not wait on the
 * network: the same cost as the server's own log lines.
 */

#include <postern_module.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QEV_LINE_MAX   2048
#define QEV_TIMES_MAX  16


typedef struct {
    pst_str_t                    pattern;
    time_t                       times[QEV_TIMES_MAX];  /* seconds */
    pst_uint_t                   ntimes;
} qev_retry_t;

typedef struct {
    pst_str_t                    domain;
    pst_str_t                    dest;
} qev_reroute_t;

typedef struct {
    pst_str_t                    log;        /* "" when not set */
    int                          fd;
    pst_array_t                 *retry;      /* qev_retry_t */
    pst_array_t                 *reroute;    /* qev_reroute_t */
} qev_conf_t;


static int
qev_match(const pst_str_t *pattern, const pst_str_t *dest)
{
    size_t  n;

    if (pattern->len == 1 && pattern->data[0] == '*') {
        return 1;
    }

    if (pattern->len > 1 && pattern->data[0] == '*') {
        n = pattern->len - 1;       /* ".example.net" */
        return dest->len > n
               && pst_strncasecmp(dest->data + dest->len - n,
                                  pattern->data + 1, n) == 0;
    }

    return dest->len == pattern->len
           && pst_strncasecmp(dest->data, pattern->data, dest->len) == 0;
}


/* Append s to buf as a JSON string value (quotes included), truncated
 * to what fits; returns the new length. */
static size_t
qev_json_str(char *buf, size_t len, size_t size, const u_char *s, size_t n)
{
    size_t  i;

    if (len + 2 >= size) {
        return len;
    }

    buf[len++] = '"';
    for (i = 0; i < n && len + 8 < size; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            buf[len++] = '\\';
            buf[len++] = s[i];
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            len += snprintf(buf + len, size - len, "\\u%04x", s[i]);
        } else {
            buf[len++] = s[i];
        }
    }
    buf[len++] = '"';
    return len;
}


static size_t
qev_field(char *buf, size_t len, size_t size, const char *name,
    const u_char *s, size_t n)
{
    int  k;

    k = snprintf(buf + len, size - len, ",\"%s\":", name);
    if (k < 0 || (size_t) k >= size - len) {
        return len;
    }

    if (s == NULL) {
        len += k;
        return len + 4 < size ? len + snprintf(buf + len, size - len, "null")
                              : len;
    }

    return qev_json_str(buf, len + k, size, s, n);
}


/* The JSON line of ev (without being written), NUL-terminated, at most
 * size - 1 bytes of which the last is '\n'; returns its length. */
static size_t
qev_format(const pst_qevent_t *ev, time_t now, char *buf, size_t size)
{
    const pst_str_t  *s;
    size_t            len;

    size -= 2;                  /* room for "}\n" */
    len = snprintf(buf, size, "{\"time\":%lld,\"event\":\"%s\"",
                   (long long) now, pst_qevent_name(ev->event));
    s = pst_qevent_id(ev);
    len = qev_field(buf, len, size, "id", s ? s->data : NULL, s ? s->len : 0);
    s = pst_qevent_rcpt(ev);
    len = qev_field(buf, len, size, "rcpt", s ? s->data : NULL,
                    s ? s->len : 0);
    len = qev_field(buf, len, size, "dest", ev->dest ? ev->dest->data : NULL,
                    ev->dest ? ev->dest->len : 0);
    len = qev_field(buf, len, size, "remote", (const u_char *) ev->remote,
                    ev->remote ? strlen(ev->remote) : 0);
    if (len + 16 < size) {
        len += snprintf(buf + len, size - len, ",\"code\":%d", ev->code);
    }
    len = qev_field(buf, len, size, "reply", (const u_char *) ev->reply,
                    ev->reply ? strlen(ev->reply) : 0);
    buf[len++] = '}';
    buf[len++] = '\n';
    buf[len] = '\0';
    return len;
}


static void
qev_retry(qev_conf_t *c, pst_qevent_t *ev, time_t now)
{
    qev_retry_t  *r;
    pst_uint_t    i, n;

    if (c->retry == NULL || ev->dest == NULL) {
        return;
    }

    r = c->retry->elts;
    for (i = 0; i < c->retry->nelts; i++) {
        if (qev_match(&r[i].pattern, ev->dest)) {
            n = pst_qevent_attempts(ev);
            n = n == 0 ? 0 : n - 1;
            if (n >= r[i].ntimes) {
                n = r[i].ntimes - 1;
            }
            ev->next_try = now + r[i].times[n];
            return;
        }
    }
}


static void
qev_reroute(qev_conf_t *c, pst_qevent_t *ev)
{
    qev_reroute_t  *r;
    pst_uint_t      i;

    if (c->reroute == NULL || ev->dest == NULL) {
        return;
    }

    r = c->reroute->elts;
    for (i = 0; i < c->reroute->nelts; i++) {
        if (qev_match(&r[i].domain, ev->dest)) {
            ev->reroute = r[i].dest;
            return;
        }
    }
}


static void
qev_event(pst_qevent_t *ev, void *main_conf)
{
    qev_conf_t  *c = main_conf;
    char         line[QEV_LINE_MAX];
    size_t       len;
    time_t       now;

    now = pst_current_time();    /* the engine's clock (next_try) */
    if (ev->event == PST_QEV_DEFERRED) {
        qev_retry(c, ev, now);
    } else if (ev->event == PST_QEV_ROUTE) {
        qev_reroute(c, ev);
    }

    if (c->fd >= 0) {
        len = qev_format(ev, now, line, sizeof(line));
        if (write(c->fd, line, len) != (ssize_t) len) {
            pst_log(PST_LOG_WARN, 0, "queue_events_log: short write");
        }
    }
}


static char *
qev_set_retry(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    qev_conf_t   *c = conf;
    qev_retry_t  *r;
    pst_str_t    *a;
    pst_uint_t    n, i;
    int64_t       ms;

    (void) cmd;
    a = pst_conf_args(cf, &n);
    if (n - 2 > QEV_TIMES_MAX) {
        return "has more than 16 times";
    }

    if (c->retry == NULL) {
        c->retry = pst_array_create(pst_conf_pool(cf), 4,
                                    sizeof(qev_retry_t));
    }

    r = c->retry != NULL ? pst_array_push(c->retry) : NULL;
    if (r == NULL) {
        return "out of memory";
    }

    r->pattern = a[1];
    r->ntimes = n - 2;
    for (i = 2; i < n; i++) {
        ms = pst_parse_msec(&a[i]);
        if (ms < 1000) {
            return "has an invalid time (at least 1s)";
        }
        r->times[i - 2] = (time_t) (ms / 1000);
    }

    return PST_CONF_OK;
}


static char *
qev_set_reroute(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    qev_conf_t     *c = conf;
    qev_reroute_t  *r;
    pst_str_t      *a;
    pst_uint_t      n;

    (void) cmd;
    a = pst_conf_args(cf, &n);
    if (c->reroute == NULL) {
        c->reroute = pst_array_create(pst_conf_pool(cf), 4,
                                      sizeof(qev_reroute_t));
    }

    r = c->reroute != NULL ? pst_array_push(c->reroute) : NULL;
    if (r == NULL) {
        return "out of memory";
    }

    r->domain = a[1];
    r->dest = a[2];
    return PST_CONF_OK;
}


static char *
qev_set_log(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    qev_conf_t  *c = conf;
    pst_str_t   *a;
    pst_uint_t   n;

    (void) cmd;
    a = pst_conf_args(cf, &n);
    c->log = a[1];
    if (pst_conf_full_name(cf, &c->log) != PST_OK) {
        return "out of memory";
    }

    return PST_CONF_OK;
}


static void *
qev_create_conf(pst_conf_t *cf)
{
    qev_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(qev_conf_t));
    if (c != NULL) {
        c->fd = -1;
    }

    return c;
}


static int
qev_init_process(pst_cycle_t *cycle, pst_proc_e type, void *main_conf)
{
    qev_conf_t  *c = main_conf;

    (void) cycle;
    if ((type != PST_PROC_QUEUE && type != PST_PROC_SINGLE)
        || c->log.len == 0)
    {
        return PST_OK;
    }

    c->fd = open((const char *) c->log.data,
                 O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (c->fd < 0) {
        pst_log(PST_LOG_ERR, errno, "queue_events_log: open(\"%s\")",
                (const char *) c->log.data);
    }

    return PST_OK;
}


static void
qev_exit_process(pst_cycle_t *cycle, void *main_conf)
{
    qev_conf_t  *c = main_conf;

    (void) cycle;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}


static const pst_command_t  qev_commands[] = {

    { "queue_events_log", PST_CONF_MAIN | PST_CONF_TAKE1,
      qev_set_log, PST_MAIN_CONF, 0, NULL },

    { "queue_retry", PST_CONF_MAIN | PST_CONF_2MORE,
      qev_set_retry, PST_MAIN_CONF, 0, NULL },

    { "queue_reroute", PST_CONF_MAIN | PST_CONF_TAKE2,
      qev_set_reroute, PST_MAIN_CONF, 0, NULL },

    pst_null_command
};


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "queue_events",
    .version = "1.0",
    .description = "queue event log, retry schedule and reroute",
    .commands = qev_commands,
    .create_main_conf = qev_create_conf,
    .init_process = qev_init_process,
    .exit_process = qev_exit_process,
    .queue_event = qev_event,
};
