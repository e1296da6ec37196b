/*
 * pst_send_pass.c -- where postern-send's AUTH password comes from, in
 * this order: --password (shown to ps(1): a warning), --password-file,
 * --password-command (its first line of output), the environment
 * variable of --password-env, $POSTERN_PASSWORD.  The first line only,
 * without its line end; never echoed anywhere.
 */

#include "pst_send_run.h"

#include <fcntl.h>
#include <sys/wait.h>

#define PST_SEND_MAX_PASS  4096

static char *pst_send_first_line(FILE *f);


static char *
pst_send_first_line(FILE *f)
{
    char    *p;
    size_t   n;

    p = malloc(PST_SEND_MAX_PASS + 1);
    if (p == NULL) {
        return NULL;
    }
    if (fgets(p, PST_SEND_MAX_PASS + 1, f) == NULL) {
        p[0] = '\0';
    }
    n = strcspn(p, "\r\n");
    p[n] = '\0';
    return p;
}


char *
pst_send_get_password(const pst_send_opts_t *o)
{
    const char  *env;
    FILE        *f;
    char        *p;
    int          st;

    if (o->password != NULL) {
        pst_send_err("warning: --password shows the "
                "password to every user of this machine (ps); prefer "
                "--password-file, --password-command or $POSTERN_PASSWORD\n");
        return strdup(o->password);
    }

    if (o->password_file != NULL) {
        f = fopen(o->password_file, "re");
        if (f == NULL) {
            pst_send_err("--password-file: %s: %s\n",
                    o->password_file, strerror(errno));
            return NULL;
        }
        p = pst_send_first_line(f);
        fclose(f);
        return p;
    }

    if (o->password_command != NULL) {
        fflush(stdout);
        f = popen(o->password_command, "re");
        if (f == NULL) {
            pst_send_err("--password-command: %s\n",
                    strerror(errno));
            return NULL;
        }
        p = pst_send_first_line(f);
        while (fgetc(f) != EOF) {
            /* drain */
        }
        st = pclose(f);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            pst_send_err("--password-command failed "
                    "(status %d)\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            if (p != NULL) {
                explicit_bzero(p, strlen(p));
            }
            free(p);
            return NULL;
        }
        return p;
    }

    env = getenv(o->password_env ? o->password_env : "POSTERN_PASSWORD");
    if (env == NULL) {
        pst_send_err("no password for --user: use "
                "--password-file, --password-command or $%s\n",
                o->password_env ? o->password_env : "POSTERN_PASSWORD");
        return NULL;
    }
    return strdup(env);
}
