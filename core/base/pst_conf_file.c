/*
 * pst_conf_file.c -- tokenizer, directive dispatch and slot setters
 * (see pst_conf_file.h).
 */

#include "pst_core.h"

#define PST_CONF_TOKEN_DONE      1     /* ';' */
#define PST_CONF_BLOCK_START     2     /* '{' */
#define PST_CONF_BLOCK_DONE      3     /* '}' */
#define PST_CONF_FILE_DONE       4     /* end of file */


static int pst_conf_read_file(pst_conf_t *cf, const char *name);
static int pst_conf_read_token(pst_conf_t *cf);
static int pst_conf_handler(pst_conf_t *cf, int last);
static int pst_conf_include(pst_conf_t *cf);
static int pst_conf_module_switch(pst_conf_t *cf);
static const char *pst_conf_ctx_name(unsigned ctx);
static int pst_conf_wanted(pst_conf_t *cf, const pst_str_t *name);
static int pst_conf_skip(pst_conf_t *cf, int last);

static const pst_uint_t  argument_number[] = {
    PST_CONF_NOARGS, PST_CONF_TAKE1, PST_CONF_TAKE2, PST_CONF_TAKE3,
    PST_CONF_TAKE4, PST_CONF_TAKE5, PST_CONF_TAKE6, PST_CONF_TAKE7
};


static void
pst_conf_verror(pst_conf_t *cf, int level, const char *file,
    pst_uint_t line, const char *fmt, va_list ap)
{
    char  msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);

    if (cf->quiet) {
        return;
    }

    if (file != NULL) {
        fprintf(stderr, "%s:%lu: %s%s\n", file, (unsigned long) line,
                level == PST_LOG_WARN ? "warning: " : "", msg);
    } else {
        fprintf(stderr, "postern: %s%s\n",
                level == PST_LOG_WARN ? "warning: " : "", msg);
    }

    /* also into a log file, when the log is not the terminal */
    if (pst_log_main.fd != STDERR_FILENO) {
        pst_log_error(level, 0, "%s:%lu: %s", file ? file : "-",
                      (unsigned long) line, msg);
    }
}


void
pst_conf_error(pst_conf_t *cf, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    pst_conf_verror(cf, PST_LOG_EMERG, cf->dir_file, cf->dir_line, fmt, ap);
    va_end(ap);
}


void
pst_conf_warn(pst_conf_t *cf, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    pst_conf_verror(cf, PST_LOG_WARN, cf->dir_file, cf->dir_line, fmt, ap);
    va_end(ap);
}


void
pst_conf_error_at(pst_conf_t *cf, const char *file, pst_uint_t line,
    const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    pst_conf_verror(cf, PST_LOG_EMERG, file, line, fmt, ap);
    va_end(ap);
}


const char *
pst_conf_position(pst_conf_t *cf, pst_uint_t *line)
{
    if (line != NULL) {
        *line = cf->dir_line;
    }
    return cf->dir_file ? cf->dir_file : "-";
}


pst_str_t *
pst_conf_args(pst_conf_t *cf, pst_uint_t *nargs)
{
    if (nargs != NULL) {
        *nargs = cf->args->nelts;
    }
    return cf->args->elts;
}


pst_pool_t *
pst_conf_pool(pst_conf_t *cf)
{
    return cf->pool;
}


int
pst_conf_path(pst_pool_t *pool, const pst_str_t *base, pst_str_t *name)
{
    u_char  *p;

    if (name->len > 0 && name->data[0] == '/') {
        p = pst_pstrdup(pool, name);
        if (p == NULL) {
            return PST_ERROR;
        }
        name->data = p;
        return PST_OK;
    }

    p = pst_palloc(pool, base->len + name->len + 1);
    if (p == NULL) {
        return PST_ERROR;
    }

    memcpy(p, base->data, base->len);
    memcpy(p + base->len, name->data, name->len);
    p[base->len + name->len] = '\0';

    name->data = p;
    name->len += base->len;

    return PST_OK;
}


int
pst_conf_full_name(pst_conf_t *cf, pst_str_t *name)
{
    return pst_conf_path(cf->pool, &cf->cycle->prefix, name);
}


int
pst_conf_parse(pst_conf_t *cf, const char *name)
{
    pst_conf_file_t  *prev;
    int               rc, block;

    block = (name == NULL);
    prev = cf->file;

    if (!block) {
        if (cf->depth >= PST_CONF_MAX_DEPTH) {
            pst_conf_error(cf, "includes nested too deeply at \"%s\"", name);
            return PST_ERROR;
        }
        if (pst_conf_read_file(cf, name) != PST_OK) {
            return PST_ERROR;
        }
        cf->depth++;
    }

    for ( ;; ) {
        rc = pst_conf_read_token(cf);

        if (rc == PST_ERROR) {
            goto failed;
        }

        if (rc == PST_CONF_BLOCK_DONE) {
            if (!block) {
                cf->dir_file = cf->file->name;
                cf->dir_line = cf->file->line;
                pst_conf_error(cf, "unexpected \"}\"");
                goto failed;
            }
            return PST_OK;
        }

        if (rc == PST_CONF_FILE_DONE) {
            if (block) {
                cf->dir_file = cf->file->name;
                cf->dir_line = cf->file->line;
                pst_conf_error(cf, "unexpected end of file, expecting \"}\"");
                goto failed;
            }
            break;
        }

        /* a directive: PST_CONF_TOKEN_DONE or PST_CONF_BLOCK_START */
        if (pst_conf_handler(cf, rc) != PST_OK) {
            goto failed;
        }
    }

    cf->file = prev;
    cf->depth--;
    return PST_OK;

failed:

    if (!block) {
        cf->file = prev;
        cf->depth--;
    }
    return PST_ERROR;
}


static int
pst_conf_read_file(pst_conf_t *cf, const char *name)
{
    pst_conf_file_t  *f;
    struct stat       st;
    ssize_t           n;
    int               fd;

    fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        pst_conf_error(cf, "cannot open \"%s\": %s", name, strerror(errno));
        return PST_ERROR;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)
        || st.st_size > PST_CONF_MAX_FILE)
    {
        pst_conf_error(cf, "\"%s\" is not a regular file of at most 16 MiB",
                       name);
        close(fd);
        return PST_ERROR;
    }

    f = pst_pcalloc(cf->pool, sizeof(pst_conf_file_t));
    if (f == NULL) {
        close(fd);
        return PST_ERROR;
    }

    f->start = pst_palloc(cf->pool, (size_t) st.st_size + 1);
    if (f->start == NULL) {
        close(fd);
        return PST_ERROR;
    }

    n = read(fd, f->start, (size_t) st.st_size);
    close(fd);

    if (n != st.st_size) {
        pst_conf_error(cf, "cannot read \"%s\"", name);
        return PST_ERROR;
    }

    f->start[n] = '\0';
    f->name = (const char *) pst_pstrdup(cf->pool,
                  &(pst_str_t) { strlen(name), (u_char *) name });
    f->pos = f->start;
    f->end = f->start + n;
    f->line = 1;
    f->parent = cf->file;
    cf->file = f;

    if (cf->dump != NULL) {
        fprintf(cf->dump, "# configuration file %s:\n", name);
        fwrite(f->start, 1, (size_t) n, cf->dump);
        if (n > 0 && f->start[n - 1] != '\n') {
            fputc('\n', cf->dump);
        }
        fputc('\n', cf->dump);
    }

    return PST_OK;
}


/*
 * Read one directive into cf->args.  Returns PST_CONF_TOKEN_DONE (';'),
 * PST_CONF_BLOCK_START ('{'), PST_CONF_BLOCK_DONE ('}'),
 * PST_CONF_FILE_DONE or PST_ERROR.
 */
static int
pst_conf_read_token(pst_conf_t *cf)
{
    pst_conf_file_t  *f = cf->file;
    pst_str_t        *word;
    u_char           *p, *start, *dst, quote, ch;
    pst_uint_t        start_line;

    cf->args->nelts = 0;
    start_line = f->line;

    for ( ;; ) {
        p = f->pos;

        /* skip blanks and comments */
        while (p < f->end) {
            if (*p == '\n') {
                f->line++;
                p++;
            } else if (*p == ' ' || *p == '\t' || *p == '\r') {
                p++;
            } else if (*p == '#') {
                while (p < f->end && *p != '\n') {
                    p++;
                }
            } else {
                break;
            }
        }

        f->pos = p;

        if (cf->args->nelts == 0) {
            cf->dir_file = f->name;
            cf->dir_line = f->line;
            start_line = f->line;
        }

        if (p == f->end) {
            if (cf->args->nelts > 0) {
                cf->dir_line = start_line;
                pst_conf_error(cf, "unexpected end of file, expecting \";\""
                               " or \"}\"");
                return PST_ERROR;
            }
            return PST_CONF_FILE_DONE;
        }

        ch = *p;

        if (ch == ';' || ch == '{') {
            f->pos = p + 1;
            if (cf->args->nelts == 0) {
                pst_conf_error(cf, "unexpected \"%c\"", ch);
                return PST_ERROR;
            }
            return ch == ';' ? PST_CONF_TOKEN_DONE : PST_CONF_BLOCK_START;
        }

        if (ch == '}') {
            f->pos = p + 1;
            if (cf->args->nelts != 0) {
                pst_conf_error(cf, "unexpected \"}\"");
                return PST_ERROR;
            }
            return PST_CONF_BLOCK_DONE;
        }

        if (cf->args->nelts > PST_CONF_MAX_ARGS) {
            word = cf->args->elts;
            pst_conf_error(cf, "\"%s\" directive has more than %d"
                           " arguments, the limit per directive (repeat"
                           " the directive, or use a file where it takes"
                           " one)", word[0].data, PST_CONF_MAX_ARGS);
            return PST_ERROR;
        }

        word = pst_array_push(cf->args);
        if (word == NULL) {
            return PST_ERROR;
        }

        if (ch == '"' || ch == '\'') {
            quote = ch;
            start = ++p;
            dst = start;
            for ( ;; ) {
                if (p == f->end) {
                    pst_conf_error(cf, "unterminated quoted string");
                    return PST_ERROR;
                }
                if (*p == quote) {
                    p++;
                    break;
                }
                if (*p == '\n') {
                    f->line++;
                }
                if (*p == '\\' && p + 1 < f->end) {
                    switch (p[1]) {
                    case 'n': *dst++ = '\n'; p += 2; continue;
                    case 't': *dst++ = '\t'; p += 2; continue;
                    case 'r': *dst++ = '\r'; p += 2; continue;
                    case '"': case '\'': case '\\': p++; break;
                    default:
                        /* as nginx: any other backslash stays, so that
                         * a quoted regex keeps "\." and "\d" */
                        break;
                    }
                }
                *dst++ = *p++;
            }

            if (p < f->end && *p != ' ' && *p != '\t' && *p != '\n'
                && *p != '\r' && *p != ';' && *p != '{' && *p != '}')
            {
                pst_conf_error(cf, "unexpected \"%c\" after quoted string",
                               *p);
                return PST_ERROR;
            }

            word->data = start;
            word->len = (size_t) (dst - start);
            /* in-place unescaping leaves room for a terminating NUL */
            *dst = '\0';
            f->pos = p;
            continue;
        }

        start = p;
        while (p < f->end && *p != ' ' && *p != '\t' && *p != '\n'
               && *p != '\r' && *p != ';' && *p != '{' && *p != '}')
        {
            if (*p == '"' || *p == '\'') {
                pst_conf_error(cf, "unexpected quote inside \"%.*s\"",
                               (int) (p - start), start);
                return PST_ERROR;
            }
            p++;
        }

        word->data = pst_palloc(cf->pool, (size_t) (p - start) + 1);
        if (word->data == NULL) {
            return PST_ERROR;
        }
        word->len = (size_t) (p - start);
        memcpy(word->data, start, word->len);
        word->data[word->len] = '\0';
        f->pos = p;
    }
}


static int
pst_conf_handler(pst_conf_t *cf, int last)
{
    pst_module_entry_t   *me;
    const pst_command_t  *cmd;
    pst_str_t            *name;
    pst_uint_t            i, nargs;
    void                 *conf;
    char                 *rv;
    int                   found;

    name = cf->args->elts;
    nargs = cf->args->nelts - 1;

    if (pst_str_eq(name, "include")) {
        if (last != PST_CONF_TOKEN_DONE || nargs != 1) {
            pst_conf_error(cf, "\"include\" takes one path and ends"
                           " with \";\"");
            return PST_ERROR;
        }
        return pst_conf_include(cf);
    }

    if (cf->only != NULL && !pst_conf_wanted(cf, name)) {
        return pst_conf_skip(cf, last);
    }

    found = 0;
    me = cf->cycle->modules.elts;

    for (i = 0; i < cf->cycle->modules.nelts; i++) {
        cmd = me[i].desc.commands;
        if (cmd == NULL) {
            continue;
        }

        for ( /* void */ ; cmd->name != NULL; cmd++) {
            if (strlen(cmd->name) != name->len
                || memcmp(cmd->name, name->data, name->len) != 0)
            {
                continue;
            }

            found = 1;

            if (!(cmd->type & cf->ctx)) {
                continue;       /* maybe another context's twin */
            }

            if (!(cmd->type & PST_CONF_BLOCK)
                && last != PST_CONF_TOKEN_DONE)
            {
                /* usually a ';' forgotten before the next block */
                pst_conf_error(cf, "directive \"%s\" is not terminated by"
                               " \";\"", cmd->name);
                return PST_ERROR;
            }

            if ((cmd->type & PST_CONF_BLOCK)
                && last != PST_CONF_BLOCK_START)
            {
                pst_conf_error(cf, "directive \"%s\" has no opening \"{\"",
                               cmd->name);
                return PST_ERROR;
            }

            if (cmd->type & PST_CONF_FLAG) {
                if (nargs != 1) {
                    goto invalid;
                }
            } else if (cmd->type & PST_CONF_1MORE) {
                if (nargs < 1) {
                    goto invalid;
                }
            } else if (cmd->type & PST_CONF_2MORE) {
                if (nargs < 2) {
                    goto invalid;
                }
            } else if (nargs >= pst_nelems(argument_number)
                       || !(cmd->type & argument_number[nargs]))
            {
                goto invalid;
            }

            if (cmd->conf == PST_MAIN_CONF) {
                conf = cf->cycle->main_conf[me[i].index];
            } else if (cf->srv_conf != NULL) {
                conf = cf->srv_conf[me[i].index];
            } else {
                conf = NULL;
            }

            rv = cmd->set(cf, cmd, conf);

            if (rv == PST_CONF_OK) {
                pst_conf_written_add(cf, cmd, conf);     /* -T only */
                return PST_OK;
            }
            if (rv != PST_CONF_ERROR) {
                pst_conf_error(cf, "\"%s\" directive %s", cmd->name, rv);
            }
            return PST_ERROR;
        }
    }

    if (found) {
        pst_conf_error(cf, "\"%.*s\" directive is not allowed %s",
                       (int) name->len, name->data,
                       pst_conf_ctx_name(cf->ctx));
        return PST_ERROR;
    }

    if (last == PST_CONF_TOKEN_DONE && nargs == 1
        && pst_module_find(cf->cycle, name->data, name->len) != NULL)
    {
        return pst_conf_module_switch(cf);
    }

    pst_conf_error(cf, "unknown directive \"%.*s\"", (int) name->len,
                   name->data);
    return PST_ERROR;

invalid:

    pst_conf_error(cf, "invalid number of arguments in \"%s\" directive",
                   cmd->name);
    return PST_ERROR;
}


/* With cf->only: a top-level directive of the list. */
static int
pst_conf_wanted(pst_conf_t *cf, const pst_str_t *name)
{
    const char  **p;

    if (cf->ctx != PST_CONF_MAIN) {
        return 0;
    }
    for (p = cf->only; *p != NULL; p++) {
        if (strlen(*p) == name->len && memcmp(*p, name->data, name->len) == 0)
        {
            return 1;
        }
    }
    return 0;
}


/* A directive not read: a block is tokenised (includes in it too) but
 * nothing in it is acted on. */
static int
pst_conf_skip(pst_conf_t *cf, int last)
{
    unsigned  ctx;
    int       rc;

    if (last != PST_CONF_BLOCK_START) {
        return PST_OK;
    }

    ctx = cf->ctx;
    cf->ctx = 0;
    rc = pst_conf_parse(cf, NULL);
    cf->ctx = ctx;

    return rc;
}


static const char *
pst_conf_ctx_name(unsigned ctx)
{
    switch (ctx) {
    case PST_CONF_MAIN: return "at the top level";
    case PST_CONF_SMTP: return "in the smtp block";
    case PST_CONF_SRV: return "in a server block";
    default: return "here";
    }
}


/* "NAME on|off;" turns a loaded module on or off for this block. */
static int
pst_conf_module_switch(pst_conf_t *cf)
{
    pst_module_entry_t  *me;
    pst_str_t           *args;

    args = cf->args->elts;
    me = pst_module_find(cf->cycle, args[0].data, args[0].len);

    if (me->handle == NULL) {
        pst_conf_error(cf, "built-in module \"%s\" cannot be switched off",
                       me->desc.name);
        return PST_ERROR;
    }

    if (cf->enabled == NULL) {
        pst_conf_error(cf, "\"%s on|off\" belongs in the smtp or a server"
                       " block", me->desc.name);
        return PST_ERROR;
    }

    if (pst_str_eq(&args[1], "on")) {
        cf->enabled[me->index] = 1;
    } else if (pst_str_eq(&args[1], "off")) {
        cf->enabled[me->index] = 0;
    } else {
        pst_conf_error(cf, "invalid value \"%s\" for module switch \"%s\","
                       " it must be \"on\" or \"off\"",
                       args[1].data, me->desc.name);
        return PST_ERROR;
    }

    return PST_OK;
}


static int
pst_conf_include(pst_conf_t *cf)
{
    pst_str_t   *args, path;
    glob_t       gl;
    const char  *dfile;
    pst_uint_t   dline;
    size_t       i;
    int          rc;

    args = cf->args->elts;
    path = args[1];

    if (pst_conf_path(cf->pool, &cf->cycle->conf_prefix, &path) != PST_OK) {
        return PST_ERROR;
    }

    dfile = cf->dir_file;
    dline = cf->dir_line;

    if (strpbrk((char *) path.data, "*?[") == NULL) {
        return pst_conf_parse(cf, (char *) path.data);
    }

    memset(&gl, 0, sizeof(gl));
    rc = glob((char *) path.data, 0, NULL, &gl);
    if (rc == GLOB_NOMATCH) {
        return PST_OK;       /* an empty conf.d is fine */
    }
    if (rc != 0) {
        pst_conf_error(cf, "glob \"%s\" failed", path.data);
        return PST_ERROR;
    }

    rc = PST_OK;
    for (i = 0; i < gl.gl_pathc; i++) {
        cf->dir_file = dfile;
        cf->dir_line = dline;
        if (pst_conf_parse(cf, gl.gl_pathv[i]) != PST_OK) {
            rc = PST_ERROR;
            break;
        }
    }

    globfree(&gl);
    return rc;
}


/* ------------------------------------------------------------------ */
/* Slot setters                                                        */

char *
pst_conf_set_flag_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_int_t  *fp;
    pst_str_t  *value;

    fp = (pst_int_t *) ((u_char *) conf + cmd->offset);
    if (*fp != PST_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (pst_str_eq(&value[1], "on")) {
        *fp = 1;
    } else if (pst_str_eq(&value[1], "off")) {
        *fp = 0;
    } else {
        pst_conf_error(cf, "invalid value \"%s\" in \"%s\" directive,"
                       " it must be \"on\" or \"off\"",
                       value[1].data, cmd->name);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


char *
pst_conf_set_num_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_int_t  *np;
    pst_str_t  *value;
    int64_t     n;

    np = (pst_int_t *) ((u_char *) conf + cmd->offset);
    if (*np != PST_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = pst_atoi(value[1].data, value[1].len, INT32_MAX);
    if (n < 0) {
        pst_conf_error(cf, "invalid number \"%s\" in \"%s\" directive",
                       value[1].data, cmd->name);
        return PST_CONF_ERROR;
    }

    *np = (pst_int_t) n;
    return PST_CONF_OK;
}


char *
pst_conf_set_size_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    size_t     *sp;
    pst_str_t  *value;
    ssize_t     n;

    sp = (size_t *) ((u_char *) conf + cmd->offset);
    if (*sp != PST_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = pst_parse_size(&value[1]);
    if (n < 0) {
        pst_conf_error(cf, "invalid size \"%s\" in \"%s\" directive"
                       " (use a number with an optional k, m or g)",
                       value[1].data, cmd->name);
        return PST_CONF_ERROR;
    }

    *sp = (size_t) n;
    return PST_CONF_OK;
}


char *
pst_conf_set_msec_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_msec_t  *mp;
    pst_str_t   *value;
    int64_t      n;

    mp = (pst_msec_t *) ((u_char *) conf + cmd->offset);
    if (*mp != PST_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = pst_parse_msec(&value[1]);
    if (n < 0) {
        pst_conf_error(cf, "invalid time \"%s\" in \"%s\" directive"
                       " (use e.g. 250ms, 30s, 5m, 1h)",
                       value[1].data, cmd->name);
        return PST_CONF_ERROR;
    }

    *mp = (pst_msec_t) n;
    return PST_CONF_OK;
}


char *
pst_conf_set_str_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *field, *value;

    field = (pst_str_t *) ((u_char *) conf + cmd->offset);
    if (field->data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *field = value[1];

    return PST_CONF_OK;
}


int
pst_conf_check_text(pst_conf_t *cf, const char *name, const pst_str_t *text,
    size_t max)
{
    u_char  esc[8];
    size_t  i;

    if (text->len > max) {
        pst_conf_error(cf, "\"%s\": the text is %zu bytes long, the limit"
                       " is %zu (it goes into SMTP replies, whose lines"
                       " RFC 5321 4.5.3.1.5 limits to 512)", name,
                       text->len, max);
        return PST_ERROR;
    }

    for (i = 0; i < text->len; i++) {
        /* RFC 5321 4.2: textstring = 1*(%d09 / %d32-126) */
        if ((text->data[i] < 0x20 && text->data[i] != '\t')
            || text->data[i] > 0x7e)
        {
            (void) pst_escape(esc, sizeof(esc), &text->data[i], 1);
            pst_conf_error(cf, "\"%s\": invalid character \"%s\" at byte"
                           " %zu: text sent to clients must be printable"
                           " ASCII or TAB, without CR, LF or other control"
                           " characters", name, esc, i + 1);
            return PST_ERROR;
        }
    }

    return PST_OK;
}


char *
pst_conf_set_text_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *value;
    char       *rv;

    rv = pst_conf_set_str_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    if (pst_conf_check_text(cf, cmd->name, &value[1], PST_CONF_TEXT_MAX)
        != PST_OK)
    {
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


/* A name (pst_name_check()): what a node calls itself. */
char *
pst_conf_set_name_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *value;
    u_char      esc[128];
    char       *rv;

    rv = pst_conf_set_str_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    if (pst_name_check(value[1].data, value[1].len) != PST_OK) {
        (void) pst_escape(esc, sizeof(esc), value[1].data, value[1].len);
        pst_conf_error(cf, "invalid %s \"%s\": it must be 1 to %d letters,"
                       " digits, \"-\", \"_\" or \".\", the first a letter"
                       " or a digit", cmd->name, esc, PST_NAME_MAX);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


char *
pst_conf_set_path_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *field, *value;

    field = (pst_str_t *) ((u_char *) conf + cmd->offset);
    if (field->data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (value[1].len == 0) {
        return "has an empty path";
    }

    *field = value[1];
    if (pst_conf_full_name(cf, field) != PST_OK) {
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


char *
pst_conf_set_enum_slot(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    const pst_conf_enum_t  *e;
    pst_uint_t             *np;
    pst_str_t              *value;
    char                    list[256];
    size_t                  n;

    np = (pst_uint_t *) ((u_char *) conf + cmd->offset);
    if (*np != PST_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post; e->name != NULL; e++) {
        if (strlen(e->name) == value[1].len
            && memcmp(e->name, value[1].data, value[1].len) == 0)
        {
            *np = e->value;
            return PST_CONF_OK;
        }
    }

    list[0] = '\0';
    n = 0;
    for (e = cmd->post; e->name != NULL && n < sizeof(list) - 1; e++) {
        n += (size_t) snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
                               n ? ", " : "", e->name);
        if (n >= sizeof(list)) {
            n = sizeof(list) - 1;
        }
    }

    pst_conf_error(cf, "invalid value \"%s\" in \"%s\" directive,"
                   " it must be one of %s", value[1].data, cmd->name, list);
    return PST_CONF_ERROR;
}


char *
pst_conf_set_str_array_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_array_t  **ap;
    pst_str_t     *value, *s;
    pst_uint_t     i;

    ap = (pst_array_t **) ((u_char *) conf + cmd->offset);

    if (*ap == PST_CONF_UNSET_PTR || *ap == NULL) {
        *ap = pst_array_create(cf->pool, 4, sizeof(pst_str_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }

    value = cf->args->elts;
    for (i = 1; i < cf->args->nelts; i++) {
        s = pst_array_push(*ap);
        if (s == NULL) {
            return PST_CONF_ERROR;
        }
        *s = value[i];
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* -T: print effective values of slot directives                       */

static void
pst_conf_dump_value(FILE *out, const pst_command_t *cmd, void *conf,
    const char *indent)
{
    const pst_conf_enum_t  *e;
    pst_array_t            *a;
    pst_str_t              *s;
    pst_uint_t              i, v;
    u_char                 *p;
    char                    num[32];

    p = (u_char *) conf + cmd->offset;

    if (cmd->set == pst_conf_set_flag_slot) {
        /* a flag left unset after merging means "decided at run time" */
        fprintf(out, "%s%s %s;\n", indent, cmd->name,
                *(pst_int_t *) p == PST_CONF_UNSET ? "auto"
                : *(pst_int_t *) p ? "on" : "off");

    } else if (cmd->set == pst_conf_set_num_slot) {
        fprintf(out, "%s%s %ld;\n", indent, cmd->name,
                (long) *(pst_int_t *) p);

    } else if (cmd->set == pst_conf_set_size_slot) {
        fprintf(out, "%s%s %s;\n", indent, cmd->name,
                pst_conf_written_size(*(size_t *) p, num, sizeof(num)));

    } else if (cmd->set == pst_conf_set_msec_slot) {
        fprintf(out, "%s%s %s;\n", indent, cmd->name,
                pst_conf_written_msec(*(pst_msec_t *) p, num, sizeof(num)));

    } else if (cmd->set == pst_conf_set_str_slot
               || cmd->set == pst_conf_set_name_slot
               || cmd->set == pst_conf_set_text_slot
               || cmd->set == pst_conf_set_path_slot)
    {
        s = (pst_str_t *) p;
        if (s->data != NULL) {
            fprintf(out, "%s%s \"%.*s\";\n", indent, cmd->name,
                    (int) s->len, s->data);
        }

    } else if (cmd->set == pst_conf_set_enum_slot) {
        v = *(pst_uint_t *) p;
        for (e = cmd->post; e->name != NULL; e++) {
            if (e->value == v) {
                fprintf(out, "%s%s %s;\n", indent, cmd->name, e->name);
                break;
            }
        }

    } else if (cmd->set == pst_conf_set_str_array_slot) {
        a = *(pst_array_t **) p;
        if (a != NULL && a != PST_CONF_UNSET_PTR && a->nelts) {
            fprintf(out, "%s%s", indent, cmd->name);
            s = a->elts;
            for (i = 0; i < a->nelts; i++) {
                fprintf(out, " %.*s", (int) s[i].len, s[i].data);
            }
            fprintf(out, ";\n");
        }
    }
}


void
pst_conf_dump_commands(FILE *out, const pst_command_t *cmds,
    void *main_conf, void *srv_conf, unsigned ctx, const char *indent)
{
    const pst_command_t  *cmd;
    void                 *conf;

    if (cmds == NULL) {
        return;
    }

    for (cmd = cmds; cmd->name != NULL; cmd++) {
        if (!(cmd->type & ctx) || (cmd->type & PST_CONF_BLOCK)) {
            continue;
        }
        conf = (cmd->conf == PST_MAIN_CONF) ? main_conf : srv_conf;
        if (conf == NULL) {
            continue;
        }
        if (ctx == PST_CONF_MAIN && cmd->conf != PST_MAIN_CONF) {
            continue;
        }
        if (ctx != PST_CONF_MAIN && cmd->conf == PST_MAIN_CONF) {
            continue;
        }
        if (pst_conf_written_dump(out, cmd, conf, ctx, indent)) {
            continue;
        }
        pst_conf_dump_value(out, cmd, conf, indent);
    }
}
