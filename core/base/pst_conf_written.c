/*
 * pst_conf_written.c -- `postern -T`: the directives as they were
 * written.
 *
 * While -T reads the configuration (cf->dump set), every directive that
 * was accepted is remembered with the configuration it went into and
 * its arguments as written.  The dump prints those lines for a
 * directive that was written -- so list directives (local_domains,
 * relay_networks, access rules, ...) appear, each occurrence in order,
 * and times and sizes keep the units they were written in -- and the
 * effective value (a default) only for the others.  A directive written
 * in smtp { } and inherited by a server { } is printed in that server
 * too.  Nothing is recorded outside -T.
 */

#include "pst_core.h"

typedef struct {
    const pst_command_t         *cmd;
    void                        *conf;
    unsigned                     ctx;
    pst_str_t                    line;      /* the arguments, joined */
} pst_conf_written_t;

static pst_array_t  *written;


void
pst_conf_written_add(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_conf_written_t  *w;
    pst_str_t           *args;
    pst_uint_t           i;
    size_t               len;
    u_char              *p;

    if (cf->dump == NULL || conf == NULL) {
        return;
    }
    if (written == NULL) {
        written = pst_array_create(cf->cycle->pool, 32,
                                   sizeof(pst_conf_written_t));
        if (written == NULL) {
            return;
        }
    }

    args = cf->args->elts;
    len = 0;
    for (i = 1; i < cf->args->nelts; i++) {
        len += args[i].len * 2 + 3;
    }

    w = pst_array_push(written);
    if (w == NULL || (p = pst_palloc(cf->cycle->pool, len + 1)) == NULL) {
        return;
    }
    w->cmd = cmd;
    w->conf = conf;
    w->ctx = cf->ctx;
    w->line.data = p;

    for (i = 1; i < cf->args->nelts; i++) {
        *p++ = ' ';
        p = pst_conf_written_quote(p, &args[i]);
    }
    *p = '\0';
    w->line.len = (size_t) (p - w->line.data);
}


/* An argument as the parser would read it back: bare when it can be,
 * else in double quotes with \ and " escaped. */
u_char *
pst_conf_written_quote(u_char *p, const pst_str_t *a)
{
    size_t  i;
    int     bare;

    bare = a->len > 0;
    for (i = 0; i < a->len && bare; i++) {
        if (a->data[i] <= ' ' || a->data[i] == ';' || a->data[i] == '"'
            || a->data[i] == '\'' || a->data[i] == '{' || a->data[i] == '}'
            || a->data[i] == '#' || a->data[i] == '\\')
        {
            bare = 0;
        }
    }
    if (bare) {
        memcpy(p, a->data, a->len);
        return p + a->len;
    }

    *p++ = '"';
    for (i = 0; i < a->len; i++) {
        switch (a->data[i]) {
        case '\n': *p++ = '\\'; *p++ = 'n'; continue;
        case '\t': *p++ = '\\'; *p++ = 't'; continue;
        case '\r': *p++ = '\\'; *p++ = 'r'; continue;
        case '"': case '\\': *p++ = '\\'; break;
        default: break;
        }
        *p++ = a->data[i];
    }
    *p++ = '"';
    return p;
}


/*
 * Print the written lines of cmd for conf (or, for a server block with
 * none, those of the smtp block); 1 when something was printed.
 */
int
pst_conf_written_dump(FILE *out, const pst_command_t *cmd, void *conf,
    unsigned ctx, const char *indent)
{
    pst_conf_written_t  *w;
    pst_uint_t           i;
    int                  pass, n;

    if (written == NULL) {
        return 0;
    }

    w = written->elts;
    n = 0;
    for (pass = 0; pass < 2 && n == 0; pass++) {
        if (pass == 1 && ctx != PST_CONF_SRV) {
            break;
        }
        for (i = 0; i < written->nelts; i++) {
            if (w[i].cmd != cmd
                || (pass == 0 ? w[i].conf != conf
                              : w[i].ctx != PST_CONF_SMTP))
            {
                continue;
            }
            fprintf(out, "%s%s%s;%s\n", indent, cmd->name,
                    (char *) w[i].line.data,
                    pass == 1 ? "    # from smtp { }" : "");
            n++;
        }
    }

    return n > 0;
}


const char *
pst_conf_written_msec(pst_msec_t v, char *buf, size_t size)
{
    static const struct { pst_msec_t ms; const char *unit; }  units[] = {
        { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" }
    };
    size_t  i;

    for (i = 0; v != 0 && i < pst_nelems(units); i++) {
        if (v % units[i].ms == 0) {
            snprintf(buf, size, "%llu%s",
                     (unsigned long long) (v / units[i].ms), units[i].unit);
            return buf;
        }
    }

    snprintf(buf, size, "%llums", (unsigned long long) v);
    return buf;
}


const char *
pst_conf_written_size(size_t v, char *buf, size_t size)
{
    static const struct { size_t n; const char *unit; }  units[] = {
        { 1024 * 1024 * 1024, "g" }, { 1024 * 1024, "m" }, { 1024, "k" }
    };
    size_t  i;

    for (i = 0; v != 0 && i < pst_nelems(units); i++) {
        if (v % units[i].n == 0) {
            snprintf(buf, size, "%zu%s", v / units[i].n, units[i].unit);
            return buf;
        }
    }

    snprintf(buf, size, "%zu", v);
    return buf;
}
