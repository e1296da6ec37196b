/*
 * pst_access.c -- can the worker account use the paths it needs?
 *
 * The master runs as root and the workers as `user`.  A spool under a
 * directory that account cannot enter passes everything the master
 * does as root, and then every worker dies at start.  This check asks
 * the question as a worker would: in a child that has dropped its
 * privileges exactly as a worker does (pst_drop_privileges), with
 * access(2), which sees modes, ACLs and every directory on the way.
 *
 * Modules add the paths their workers need (pst_conf_worker_path(): a
 * greylist file the workers save), checked the same way.
 *
 * The error log's directory is checked too, with a warning only: the
 * workers reopen the log by its name on USR1, and cannot if they
 * cannot reach it (they keep writing to the old file).
 *
 * "postern -t" runs it before the spool is prepared (as root, the
 * master will then chown the spool's own directories to the workers,
 * so only the directories on the way to it count); the start and a
 * reload run it after pst_spool_prepare() and fail instead of starting
 * workers that cannot work.
 */

#include "pst_core.h"
#include "pst_access.h"
#include "pst_process.h"

#include <sys/wait.h>


static int pst_access_check(pst_cycle_t *cycle, const char *path,
    int mode, const char *what);
static void pst_access_log_dir(pst_cycle_t *cycle);
static int pst_access_paths(pst_cycle_t *cycle);
static int pst_access_child(pst_cycle_t *cycle, int prepared, int root);


static int
pst_access_check(pst_cycle_t *cycle, const char *path, int mode,
    const char *what)
{
    char  user[32];

    if (access(path, mode) == 0) {
        return PST_OK;
    }

    if (cycle->core->user.data != NULL) {
        snprintf(user, sizeof(user), "%.*s",
                 (int) pst_min(cycle->core->user.len, 30),
                 cycle->core->user.data);
    } else {
        snprintf(user, sizeof(user), "uid %lu", (unsigned long) getuid());
    }

    pst_log_error(PST_LOG_EMERG, errno, "the worker account \"%s\" cannot"
                  " use %s \"%s\"", user, what, path);
    return PST_ERROR;
}


static void
pst_access_log_dir(pst_cycle_t *cycle)
{
    pst_str_t  *log = &cycle->core->error_log;
    char        path[PATH_MAX], *slash;

    if (log->data == NULL || pst_str_eq(log, "stderr")
        || strncmp((char *) log->data, "syslog:", 7) == 0
        || log->len >= sizeof(path))
    {
        return;
    }

    memcpy(path, log->data, log->len + 1);
    slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return;
    }
    *slash = '\0';

    if (access(path, X_OK) == -1) {
        pst_log_error(PST_LOG_WARN, errno, "the workers cannot reach the"
                      " error log's directory \"%s\": they will not reopen"
                      " the log on USR1", path);
    }
}


int
pst_conf_worker_path(pst_conf_t *cf, const pst_str_t *path, int mode,
    const char *what)
{
    pst_cycle_t        *cycle = cf->cycle;
    pst_worker_path_t  *wp;

    if (cycle->worker_paths == NULL) {
        cycle->worker_paths = pst_array_create(cycle->pool, 4,
                                               sizeof(pst_worker_path_t));
        if (cycle->worker_paths == NULL) {
            return PST_ERROR;
        }
    }

    wp = pst_array_push(cycle->worker_paths);
    if (wp == NULL) {
        return PST_ERROR;
    }

    wp->path = (char *) pst_pstrdup(cycle->pool, path);
    if (wp->path == NULL) {
        return PST_ERROR;
    }
    wp->mode = mode;
    wp->what = what;

    return PST_OK;
}


/* The modules' paths: a missing one by its directory, which the
 * workers must be able to create it in. */
static int
pst_access_paths(pst_cycle_t *cycle)
{
    pst_worker_path_t  *wp;
    pst_uint_t          i;
    int                 mode;
    char                dir[PATH_MAX], *slash;

    if (cycle->worker_paths == NULL) {
        return PST_OK;
    }

    wp = cycle->worker_paths->elts;

    for (i = 0; i < cycle->worker_paths->nelts; i++) {
        mode = wp[i].mode & ~PST_PATH_PEER;

        if (access(wp[i].path, F_OK) == 0 || errno != ENOENT) {
            if (pst_access_check(cycle, wp[i].path, mode, wp[i].what)
                != PST_OK)
            {
                return PST_ERROR;
            }
            continue;
        }

        if (strlen(wp[i].path) >= sizeof(dir)) {
            continue;
        }
        strcpy(dir, wp[i].path);
        slash = strrchr(dir, '/');
        if (slash == NULL) {
            continue;
        }
        slash[slash == dir] = '\0';
        if (access(dir, F_OK) == -1 && errno == ENOENT) {
            continue;
        }
        mode = (wp[i].mode & PST_PATH_PEER) ? X_OK : W_OK | X_OK;
        if (pst_access_check(cycle, dir, mode, wp[i].what) != PST_OK)
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


/* root: the master is root (the child no longer is) */
static int
pst_access_child(pst_cycle_t *cycle, int prepared, int root)
{
    static const char  *subs[] = { "tmp", "queue", NULL };
    pst_core_conf_t    *ccf = cycle->core;
    char                path[PATH_MAX], *slash;
    const char        **sub;

    pst_access_log_dir(cycle);

    if (pst_access_paths(cycle) != PST_OK) {
        return PST_ERROR;
    }

    if (ccf->spool_dir.len + 16 >= sizeof(path)) {
        return PST_ERROR;
    }

    /* every directory on the way to the spool: search permission */
    memcpy(path, ccf->spool_dir.data, ccf->spool_dir.len + 1);
    slash = strrchr(path, '/');
    if (slash != NULL && slash != path) {
        *slash = '\0';
        if (pst_access_check(cycle, path, X_OK, "the spool's directory")
            != PST_OK)
        {
            return PST_ERROR;
        }
    }

    if (!prepared
        && (root || (access((char *) ccf->spool_dir.data, F_OK) == -1
                     && errno == ENOENT)))
    {
        return PST_OK;          /* the master makes the rest theirs */
    }

    if (pst_access_check(cycle, (char *) ccf->spool_dir.data, X_OK,
                         "the spool") != PST_OK)
    {
        return PST_ERROR;
    }

    for (sub = subs; *sub != NULL; sub++) {
        snprintf(path, sizeof(path), "%s/%s", ccf->spool_dir.data, *sub);
        if (!prepared && access(path, F_OK) == -1 && errno == ENOENT) {
            continue;           /* the master will make it */
        }
        if (pst_access_check(cycle, path, R_OK | W_OK | X_OK,
                             "the spool directory") != PST_OK)
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


/* PST_OK when the workers can use the spool; otherwise the log says
 * which path and why.  prepared: pst_spool_prepare() has run. */
int
pst_check_worker_access(pst_cycle_t *cycle, int prepared)
{
    pid_t  pid;
    int    status, root;

    root = (geteuid() == 0);
    fflush(NULL);

    pid = fork();

    if (pid == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "fork() failed");
        return PST_ERROR;
    }

    if (pid == 0) {
        pst_drop_privileges(cycle);
        _exit(pst_access_child(cycle, prepared, root) == PST_OK ? 0 : 1);
    }

    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR) {
            pst_log_error(PST_LOG_EMERG, errno, "waitpid() failed");
            return PST_ERROR;
        }
    }

    return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? PST_OK
                                                            : PST_ERROR;
}
