/*
 * pst_sendmail_conf.c -- what postern-sendmail needs from the Postern
 * configuration, without loading it (no modules, keys or users files):
 * the first "listen" address (to inject into) and "spool_dir" (for the
 * maildrop, where messages wait while Postern is down).  The file is
 * read as words: comments left out, split at white space and { } ;.
 * A "listen" without "submission" or "tls" is preferred: the injector
 * has no password and speaks in clear on loopback.
 *
 * $POSTERN_SERVER and $POSTERN_MAILDROP override both; the file is -C,
 * $POSTERN_CONF, or the server's default configuration (PST_CONF_PATH).
 */

#include "pst_send.h"

static int pst_sendmail_directive(const char *conf, const char *name,
    const char *const *avoid, char *buf, size_t size);
static void pst_sendmail_connect_addr(const char *p, char *buf,
    size_t size);


const char *
pst_sendmail_conf_path(const char *conf)
{
    if (conf == NULL || *conf == '\0') {
        conf = getenv("POSTERN_CONF");
    }
    if (conf == NULL || *conf == '\0') {
        conf = PST_CONF_PATH;
    }
    return conf;
}


/* The first argument of the first directive called name whose other
 * arguments hold none of the words in avoid (NULL: any). */
static int
pst_sendmail_directive(const char *conf, const char *name,
    const char *const *avoid, char *buf, size_t size)
{
    char    word[512], prev[32] = "";
    size_t  n = 0;
    FILE   *f;
    int     c, k, comment = 0, in = 0, bad = 0;

    f = fopen(conf, "re");
    if (f == NULL) {
        pst_send_err("%s: %s (use -C FILE or $POSTERN_SERVER)\n", conf,
                     strerror(errno));
        return PST_SEND_CONFIG;
    }
    for ( ;; ) {
        c = getc(f);
        comment = c == '#' ? 1 : c == '\n' ? 0 : comment;
        if (c != EOF && !comment && !isspace(c) && !strchr("{};", c)) {
            if (n < sizeof(word) - 1) {
                word[n++] = (char) c;
            }
            continue;
        }
        if (n > 0) {
            word[n] = '\0';
            n = 0;
            if (in) {
                /* an option of the directive being read */
                for (k = 0; avoid != NULL && avoid[k] != NULL; k++) {
                    bad |= strcmp(word, avoid[k]) == 0;
                }
            } else if (strcmp(prev, name) == 0) {
                snprintf(buf, size, "%.400s", word);
                in = 1;
                bad = 0;
            }
            snprintf(prev, sizeof(prev), "%.31s", word);
        }
        if (in && (c == ';' || c == EOF) && !bad) {
            fclose(f);
            return PST_OK;
        }
        if (c == ';' || c == '{' || c == '}') {
            in = 0;
            prev[0] = '\0';
        }
        if (c == EOF) {
            fclose(f);
            return PST_DECLINED;
        }
    }
}


/* A listen address as one to connect to: wildcards become loopback. */
static void
pst_sendmail_connect_addr(const char *p, char *buf, size_t size)
{
    if (strncmp(p, "0.0.0.0:", 8) == 0 || strncmp(p, "*:", 2) == 0) {
        snprintf(buf, size, "127.0.0.1:%.400s", strchr(p, ':') + 1);
    } else if (strncmp(p, "[::]:", 5) == 0) {
        snprintf(buf, size, "[::1]:%.400s", p + 5);
    } else if (strspn(p, "0123456789") == strlen(p)) {
        snprintf(buf, size, "127.0.0.1:%.400s", p);
    } else {
        snprintf(buf, size, "%.400s", p);
    }
}


int
pst_sendmail_server(const char *conf, char *buf, size_t size)
{
    static const char *const  plain[] = { "submission", "tls", NULL };
    const char                *env = getenv("POSTERN_SERVER");
    char                       addr[512];
    int                        rc;

    if (env != NULL && *env) {
        snprintf(buf, size, "%s", env);
        return PST_OK;
    }
    /* a listener that takes mail without AUTH and without TLS from the
     * first byte; else the first one */
    conf = pst_sendmail_conf_path(conf);
    rc = pst_sendmail_directive(conf, "listen", plain, addr, sizeof(addr));
    if (rc == PST_DECLINED) {
        rc = pst_sendmail_directive(conf, "listen", NULL, addr,
                                    sizeof(addr));
    }
    if (rc == PST_DECLINED) {
        fprintf(stderr, "postern-sendmail: %s has no listen directive\n",
                conf);
        return PST_SEND_CONFIG;
    }
    if (rc == PST_OK) {
        pst_sendmail_connect_addr(addr, buf, size);
    }
    return rc;
}


/* spool_dir of the configuration, made absolute with the prefix. */
int
pst_sendmail_spool_dir(const char *conf, char *buf, size_t size)
{
    char  dir[512];

    conf = pst_sendmail_conf_path(conf);
    if (pst_sendmail_directive(conf, "spool_dir", NULL, dir, sizeof(dir))
        != PST_OK)
    {
        return PST_SEND_CONFIG;
    }
    snprintf(buf, size, "%s%s", dir[0] == '/' ? "" : PST_PREFIX, dir);
    return PST_OK;
}


int
pst_sendmail_maildrop(const char *conf, char *buf, size_t size)
{
    const char  *env = getenv("POSTERN_MAILDROP");
    char         dir[1024];

    if (env != NULL && *env) {
        snprintf(buf, size, "%s", env);
        return PST_OK;
    }
    if (pst_sendmail_spool_dir(conf, dir, sizeof(dir)) != PST_OK) {
        return PST_SEND_CONFIG;
    }
    snprintf(buf, size, "%s/maildrop", dir);
    return PST_OK;
}
