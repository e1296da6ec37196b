/*
 * pst_conf_file.h -- the configuration parser.
 *
 * Grammar (nginx style):
 *     directive arg ...;
 *     directive arg ... { directive ...; ... }
 *     # comment to end of line
 *     "quoted string with \" escapes"   'single quoted'
 *
 * Every directive belongs to a module's command table, which gives its
 * context (top level, smtp { }, server { }), its arity and its setter.
 * Unknown or misplaced directives, a wrong number of arguments and bad
 * values are reported as "file:line: message" and stop the parse.
 * `include` takes a path or glob, relative to the main file's directory.
 */

#ifndef PST_CONF_FILE_H
#define PST_CONF_FILE_H

#define PST_CONF_MAX_ARGS        64        /* after the directive's name */
#define PST_CONF_MAX_FILE        (16 * 1024 * 1024)
#define PST_CONF_MAX_DEPTH       16

typedef struct pst_conf_file_s  pst_conf_file_t;

struct pst_conf_file_s {
    const char                  *name;      /* as given, for messages */
    u_char                      *start;
    u_char                      *pos;
    u_char                      *end;
    pst_uint_t                   line;
    pst_conf_file_t             *parent;
};

struct pst_conf_s {
    pst_cycle_t                 *cycle;
    pst_pool_t                  *pool;
    pst_array_t                 *args;       /* pst_str_t */
    pst_conf_file_t             *file;
    unsigned                     ctx;        /* PST_CONF_MAIN/SMTP/SRV */
    void                       **srv_conf;   /* per-module, current block */
    signed char                 *enabled;    /* per-module switch */
    pst_server_t                *server;     /* inside server { } */
    const char                  *dir_file;   /* current directive */
    pst_uint_t                   dir_line;
    pst_uint_t                   depth;
    FILE                        *dump;       /* -T: copy of every file */
    const char                 **only;       /* NULL-terminated: read just
                                                these top-level directives,
                                                skip the rest unread */
    unsigned                     quiet:1;
};

/* pst_conf_written.c: -T prints directives as written (see there). */
void pst_conf_written_add(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
u_char *pst_conf_written_quote(u_char *p, const pst_str_t *a);
int pst_conf_written_dump(FILE *out, const pst_command_t *cmd, void *conf,
    unsigned ctx, const char *indent);
/* A default in the largest unit that is exact: 3m, 30s, 250ms; 256k. */
const char *pst_conf_written_msec(pst_msec_t v, char *buf, size_t size);
const char *pst_conf_written_size(size_t v, char *buf, size_t size);

/* Parse the file `name` (or, with NULL, the rest of the current block). */
int pst_conf_parse(pst_conf_t *cf, const char *name);
/* Report with explicit position (used for post-parse checks). */
void pst_conf_error_at(pst_conf_t *cf, const char *file, pst_uint_t line,
    const char *fmt, ...) PST_PRINTF(4, 5);
/* Full path against a base directory (prefix or config directory). */
int pst_conf_path(pst_pool_t *pool, const pst_str_t *base,
    pst_str_t *name);

/* Setter: a pst_str_t that passes pst_name_check() (node_name), or a
 * file:line error; -T prints it as a str slot. */
char *pst_conf_set_name_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);

/* Effective values of slot directives for -T. */
void pst_conf_dump_commands(FILE *out, const pst_command_t *cmds,
    void *main_conf, void *srv_conf, unsigned ctx, const char *indent);

#endif /* PST_CONF_FILE_H */
