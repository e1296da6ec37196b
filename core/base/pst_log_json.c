/*
 * pst_log_json.c -- log_format json: one JSON object per line.
 *
 * Every record has the keys "time" (RFC 3339, UTC, milliseconds),
 * "level", "pid", "role" and (once the configuration is read) "node";
 * a plain message adds "msg" (and "errno",
 * "error" when a system call failed); a structured record
 * (pst_log_event()) adds "event" and its fields.  Strings are escaped
 * as RFC 8259 says; bytes that are not printable ASCII become \u00XX,
 * so a line is always valid JSON whatever a client sent.  The keys are
 * stable: docs/CONFIG.md lists them.
 */

#include "pst_core.h"

typedef struct {
    char                        *p;
    size_t                       n;
    size_t                       size;      /* room for "}\n" kept */
} pst_json_t;


static void pst_json_init(pst_json_t *j, char *buf, size_t size, int level);
static void pst_json_raw(pst_json_t *j, const char *s, size_t len);
static void pst_json_key(pst_json_t *j, const char *key);
static void pst_json_str(pst_json_t *j, const u_char *s, size_t len);
static void pst_json_end(pst_json_t *j, int level);


static void
pst_json_raw(pst_json_t *j, const char *s, size_t len)
{
    len = pst_min(len, j->size - j->n);
    memcpy(j->p + j->n, s, len);
    j->n += len;
}


static void
pst_json_key(pst_json_t *j, const char *key)
{
    pst_json_raw(j, ",\"", 2);
    pst_json_raw(j, key, strlen(key));
    pst_json_raw(j, "\":", 2);
}


static void
pst_json_str(pst_json_t *j, const u_char *s, size_t len)
{
    char    esc[8];
    size_t  i;

    pst_json_raw(j, "\"", 1);
    for (i = 0; i < len && j->n + 8 < j->size; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char) s[i];
            pst_json_raw(j, esc, 2);
        } else if (s[i] < 0x20 || s[i] >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", s[i]);
            pst_json_raw(j, esc, 6);
        } else {
            pst_json_raw(j, (const char *) &s[i], 1);
        }
    }
    pst_json_raw(j, "\"", 1);
}


static void
pst_json_init(pst_json_t *j, char *buf, size_t size, int level)
{
    struct timespec  ts;
    struct tm        tm;
    char             head[160];
    int              k;

    j->p = buf;
    j->n = 0;
    j->size = size - 3;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    k = snprintf(head, sizeof(head), "{\"time\":\"%04d-%02d-%02dT%02d:%02d:"
                 "%02d.%03ldZ\",\"level\":\"%s\",\"pid\":%d,\"role\":",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 pst_log_level_name(level), (int) getpid());
    pst_json_raw(j, head, (size_t) pst_max(k, 0));
    pst_json_str(j, (const u_char *) pst_log_main.role,
                 strlen(pst_log_main.role));
    if (pst_log_main.node[0] != '\0') {
        pst_json_key(j, "node");
        pst_json_str(j, (const u_char *) pst_log_main.node,
                     strlen(pst_log_main.node));
    }
}


static void
pst_json_end(pst_json_t *j, int level)
{
    /* size - 3 was kept for these */
    j->p[j->n++] = '}';
    j->p[j->n++] = '\n';

    pst_log_write(level, j->p, j->n, 0);
}


void
pst_log_vjson(int level, int err, const char *fmt, va_list ap)
{
    char        line[PST_LOG_LINE_MAX], msg[PST_LOG_LINE_MAX / 2];
    char        num[32];
    pst_json_t  j;
    int         k;

    k = vsnprintf(msg, sizeof(msg), fmt, ap);
    k = pst_max(pst_min(k, (int) sizeof(msg) - 1), 0);

    pst_json_init(&j, line, sizeof(line), level);
    pst_json_key(&j, "msg");
    pst_json_str(&j, (u_char *) msg, (size_t) k);

    if (err != 0) {
        k = snprintf(num, sizeof(num), "%d", err);
        pst_json_key(&j, "errno");
        pst_json_raw(&j, num, (size_t) k);
        pst_json_key(&j, "error");
        pst_json_str(&j, (u_char *) strerror(err), strlen(strerror(err)));
    }

    pst_json_end(&j, level);
}


void
pst_log_event(int level, const char *event, const pst_log_field_t *f,
    size_t n, const char *text)
{
    char        line[PST_LOG_LINE_MAX];
    pst_json_t  j;
    size_t      i;

    if (level > pst_log_main.level) {
        return;
    }

    if (pst_log_main.format != PST_LOG_JSON) {
        pst_log_error(level, 0, "%s", text);
        return;
    }

    pst_json_init(&j, line, sizeof(line), level);
    pst_json_key(&j, "event");
    pst_json_str(&j, (const u_char *) event, strlen(event));

    for (i = 0; i < n; i++) {
        if (f[i].data == NULL) {
            continue;
        }
        pst_json_key(&j, f[i].key);
        if (f[i].number) {
            pst_json_raw(&j, (const char *) f[i].data, f[i].len);
        } else {
            pst_json_str(&j, f[i].data, f[i].len);
        }
    }

    pst_json_end(&j, level);
}
