/*
 * pst_log.h -- the error log.
 *
 * One log per process, written with a single write(2) per line so lines
 * from several processes never interleave.  The target is stderr or a
 * file (error_log directive); USR1 reopens it.  Lines look like
 *   2026-11-22T20:55:39.123Z mx-a postern[1234] worker: warn: message
 * where mx-a is the node's name (node_name; left out before the
 * configuration is read and in the tools), as syslog puts the host
 * before the tag: logs gathered from several nodes say which one wrote
 * each line.  Secrets never reach this function: callers mask them
 * first.
 */

#ifndef PST_LOG_H
#define PST_LOG_H

#define PST_LOG_LINE_MAX   4096

struct pst_log_s {
    int                          fd;
    int                          level;
    const char                  *path;     /* NULL: stderr */
    const char                  *role;     /* "master", "worker", ... */
    int                          format;   /* PST_LOG_TEXT, PST_LOG_JSON */
    unsigned                     syslog:1; /* to syslog(3), not fd */
    char                         node[PST_NAME_MAX + 1];  /* "": none */
};

#define PST_LOG_TEXT       0
#define PST_LOG_JSON       1

extern const pst_conf_enum_t  pst_log_formats[];

/* One field of a structured record (pst_log_event()). */
typedef struct {
    const char                  *key;
    const u_char                *data;     /* NULL: skipped */
    size_t                       len;
    unsigned                     number:1; /* a JSON number, unquoted */
} pst_log_field_t;

/* A record with named fields: in the text format the line "text" (the
 * caller's Postfix-shaped sentence), in JSON the base keys, "event"
 * and the fields (docs/CONFIG.md lists them). */
void pst_log_event(int level, const char *event, const pst_log_field_t *f,
    size_t n, const char *text);
/* pst_log_json.c: a plain message as one JSON line. */
void pst_log_vjson(int level, int err, const char *fmt, va_list ap);
/* pst_log_syslog.c: "syslog:facility=F,tag=T"; facility and tag may be
 * NULL (a syntax check). */
int pst_log_syslog_parse(const char *spec, int *facility, char *tag,
    size_t tag_size);
int pst_log_syslog_open(const char *spec);
void pst_log_syslog_write(int level, const char *msg, size_t len);
/* Where every line goes: the fd, or syslog.  body: the line without
 * the time/pid prefix (syslog adds its own). */
void pst_log_write(int level, const char *line, size_t n, size_t body);

extern pst_log_t   pst_log_main;

/* The node's name on every line from now on (a copy; cut at
 * PST_NAME_MAX; NULL or "" for none). */
void pst_log_set_node(const pst_str_t *name);

void pst_log_error(int level, int err, const char *fmt, ...)
    PST_PRINTF(3, 4);
void pst_log_verror(int level, int err, const char *fmt, va_list ap);
/* Open (or reopen) path for appending; NULL path means stderr. */
int pst_log_open(pst_log_t *log, const char *path, int level);
int pst_log_reopen(pst_log_t *log);
int pst_log_level_parse(const pst_str_t *name);
const char *pst_log_level_name(int level);

#define pst_log_debug(...)                                                   \
    do { if (pst_log_main.level >= PST_LOG_DEBUG)                            \
        pst_log_error(PST_LOG_DEBUG, 0, __VA_ARGS__); } while (0)

/* Unrecoverable: log and exit(2).  Environment or config problems. */
void pst_fatal(int err, const char *fmt, ...) PST_PRINTF(2, 3)
    __attribute__((noreturn));

#endif /* PST_LOG_H */
