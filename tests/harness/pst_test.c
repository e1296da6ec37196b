/*
 * pst_test.c -- libpostern-test (postern/test.h): the core's own
 * session code driven in-process, as tests/unit/check_session.c does,
 * made into a library for plugin authors.  A test's configuration is
 * read by the real parser, a session runs on one end of a socketpair
 * and the harness plays the client on the other, turning the event loop
 * until each reply is complete or nothing more happens (a pending
 * hook).  The clock is frozen (pst_time_freeze()) and DNS scripted
 * (pst_dns_script()).
 *
 * This file is the library's composition too: its table of built-in
 * modules is the server's (core/main/pst_modules.c, left out of the
 * library) plus the harness module of pst_test_msg.c.
 */

#define _GNU_SOURCE

#include "pst_test_int.h"
#include "pst_process.h"
#include "pst_queue.h"
#include "pst_deliver.h"
#include "pst_transport.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <sys/stat.h>



const pst_module_t *const  pst_builtin_modules[] = {
    &pst_core_module,
    &pst_smtp_core_module,
    &pst_smtp_tls_module,
    &pst_smtp_auth_module,
    &pst_metrics_module,
    &pst_queue_conf_module,
    &pst_deliver_conf_module,
    &pst_transport_module,
    &pst_test_module,
    NULL
};

pst_test_t  *pst_test_current;


/* ------------------------------------------------------------------ */
/* Set-up and configuration                                            */

pst_test_t *
pst_test_new(void)
{
    pst_test_t  *t;
    char         tmpl[] = "/tmp/postern-test.XXXXXX";
    const char  *base = getenv("TMPDIR");

    if (pst_test_current != NULL) {
        fprintf(stderr, "postern-test: one harness per process\n");
        return NULL;
    }
    t = calloc(1, sizeof(pst_test_t));
    if (t == NULL) {
        return NULL;
    }
    if (base != NULL && base[0] != '\0'
        && asprintf(&t->dir, "%s/postern-test.XXXXXX", base) > 0)
    {
        t->dir = mkdtemp(t->dir);
    } else {
        t->dir = strdup(mkdtemp(tmpl) != NULL ? tmpl : "");
    }
    if (t->dir == NULL || t->dir[0] == '\0') {
        fprintf(stderr, "postern-test: no scratch directory: %s\n",
                strerror(errno));
        free(t);
        return NULL;
    }
    t->fd = -1;
    t->proc = PST_PROC_WORKER;
    t->load = strdup("");
    (void) pst_test_client(t, "192.0.2.1", NULL);
    pst_time_freeze();
    pst_dns_script(pst_test_dns_answer, t);
    pst_test_current = t;
    return t;
}


static int
pst_test_rm(const char *path, const struct stat *st, int flag,
    struct FTW *f)
{
    (void) st;
    (void) flag;
    (void) f;
    return remove(path);
}


/* Undo pst_test_config() as a worker ends: the modules' exit_process
 * (their threads stopped, their files saved), then the shared memory
 * zones, so that the process's next harness starts afresh rather than
 * with this one's buckets and tables.  The cycle stays, as a worker's
 * does until the process ends: its modules stay loaded with what they
 * keep for the process (unloading them would make that a leak). */
static void
pst_test_unconfig(pst_test_t *t)
{
    static pst_cycle_t  **ended;
    static size_t         nended;
    pst_module_entry_t   *me;
    pst_cycle_t         **p;
    pst_uint_t            i;

    if (t->cycle == NULL) {
        return;
    }
    me = t->cycle->modules.elts;
    for (i = t->cycle->modules.nelts; i-- > 0; ) {
        if (me[i].desc.exit_process != NULL) {
            me[i].desc.exit_process(t->cycle, t->cycle->main_conf[i]);
        }
    }
    p = realloc(ended, (nended + 1) * sizeof(pst_cycle_t *));
    if (p != NULL) {
        ended = p;
        ended[nended++] = t->cycle;
    }
    pst_cycle = NULL;
    t->cycle = NULL;
    pst_shm_mark_unused();
    pst_shm_collect();
}


void
pst_test_free(pst_test_t *t)
{
    if (t == NULL) {
        return;
    }
    if (t->fd != -1) {
        pst_test_close(t);
    }
    pst_test_queue_free(t);
    pst_test_forget_message(t);
    pst_test_unconfig(t);
    if (t->dir != NULL && t->dir[0] == '/') {
        (void) nftw(t->dir, pst_test_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    pst_dns_script(NULL, NULL);
    free(t->dir);
    free(t->load);
    free(t->log);
    pst_test_current = NULL;
    free(t);
}


int
pst_test_load(pst_test_t *t, const char *path)
{
    char  *p, cwd[PATH_MAX];

    /* relative to the test's directory, not the harness's prefix */
    if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) {
        return PST_ERROR;
    }
    if (t->cycle != NULL
        || asprintf(&p, "%sload_module \"%s%s%s\";\n", t->load,
                    path[0] != '/' ? cwd : "", path[0] != '/' ? "/" : "",
                    path) < 0)
    {
        return PST_ERROR;
    }
    free(t->load);
    t->load = p;
    return PST_OK;
}


/* Read the configuration file with stderr into t->error. */
static pst_cycle_t *
pst_test_cycle(pst_test_t *t)
{
    pst_cycle_t  *cycle;
    char          path[PATH_MAX];
    ssize_t       n;
    int           fd, saved;

    snprintf(path, sizeof(path), "%s/.stderr", t->dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        return NULL;
    }
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    (void) dup2(fd, STDERR_FILENO);
    cycle = pst_init_cycle(t->dir, "main.conf", NULL, NULL);
    fflush(stderr);
    (void) dup2(saved, STDERR_FILENO);
    close(saved);

    n = pread(fd, t->error, sizeof(t->error) - 1, 0);
    t->error[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return cycle;
}


static int
pst_test_init_process(pst_test_t *t)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;
    char                 path[PATH_MAX];

    pst_cycle = t->cycle;
    snprintf(path, sizeof(path), "%s/error.log", t->dir);
    if (pst_log_open(&pst_log_main, path, PST_LOG_DEBUG) != PST_OK
        || pst_event_init(64) != PST_OK || pst_connections_init(128)
        != PST_OK || pst_smtp_sessions_init() != PST_OK)
    {
        snprintf(t->error, sizeof(t->error), "cannot start the loop");
        return PST_ERROR;
    }

    me = t->cycle->modules.elts;
    for (i = 0; i < t->cycle->modules.nelts; i++) {
        if (me[i].desc.init_process != NULL
            && me[i].desc.init_process(t->cycle, t->proc,
                                       t->cycle->main_conf[i]) != PST_OK)
        {
            snprintf(t->error, sizeof(t->error), "module \"%s\" failed to"
                     " initialise", me[i].desc.name);
            return PST_ERROR;
        }
    }
    return PST_OK;
}


int
pst_test_config(pst_test_t *t, const char *main, const char *server)
{
    char  path[PATH_MAX];
    FILE *f;

    if (t->cycle != NULL) {
        snprintf(t->error, sizeof(t->error), "configured already");
        return PST_ERROR;
    }
    if (pst_test_tls_certificate(t) != PST_OK) {
        return PST_ERROR;
    }
    snprintf(path, sizeof(path), "%s/main.conf", t->dir);
    f = fopen(path, "w");
    if (f == NULL) {
        snprintf(t->error, sizeof(t->error), "main.conf: %s",
                 strerror(errno));
        return PST_ERROR;
    }
    fprintf(f, "%s%s\nsmtp {\n    hostname mx.example.test;\n"
            "    server {\n        listen 127.0.0.1:2525;\n%s\n    }\n}\n",
            t->load, main != NULL ? main : "",
            server != NULL ? server : "");
    fclose(f);

    t->cycle = pst_test_cycle(t);
    if (t->cycle == NULL) {
        return PST_ERROR;
    }
    return pst_test_init_process(t);
}


const char *
pst_test_error(pst_test_t *t)
{
    return t->error;
}


const char *
pst_test_dir(pst_test_t *t)
{
    return t->dir;
}


const char *
pst_test_log(pst_test_t *t)
{
    char     path[PATH_MAX];
    FILE    *f;
    long     n;

    free(t->log);
    t->log = NULL;
    snprintf(path, sizeof(path), "%s/error.log", t->dir);
    f = fopen(path, "r");
    if (f == NULL) {
        return "";
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    t->log = calloc(1, (size_t) (n > 0 ? n : 0) + 1);
    if (t->log != NULL && n > 0) {
        n = (long) fread(t->log, 1, (size_t) n, f);
        t->log[n > 0 ? n : 0] = '\0';
    }
    fclose(f);
    return t->log != NULL ? t->log : "";
}


/* ------------------------------------------------------------------ */
/* Facts of the next session                                           */

int
pst_test_client(pst_test_t *t, const char *addr, const char *name)
{
    struct sockaddr_in   *in4 = (struct sockaddr_in *) &t->addr;
    struct sockaddr_in6  *in6 = (struct sockaddr_in6 *) &t->addr;

    memset(&t->addr, 0, sizeof(t->addr));
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(40000);
        t->addrlen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(40000);
        t->addrlen = sizeof(*in6);
    } else {
        return PST_ERROR;
    }
    snprintf(t->name, sizeof(t->name), "%s", name != NULL ? name : "");
    return PST_OK;
}


void
pst_test_tls(pst_test_t *t, const char *version, const char *cipher,
    const char *peer_subject, int verified)
{
    static char  subject[512];

    memset(&t->tls, 0, sizeof(t->tls));
    t->has_tls = version != NULL;
    t->tls.version = version;
    t->tls.cipher = cipher;
    t->tls.bits = 256;
    if (peer_subject != NULL) {
        snprintf(subject, sizeof(subject), "%s", peer_subject);
        t->tls.peer_subject.data = (u_char *) subject;
        t->tls.peer_subject.len = strlen(subject);
    }
    t->tls.verified = verified ? 1 : 0;
}


void
pst_test_auth(pst_test_t *t, const char *id)
{
    snprintf(t->auth, sizeof(t->auth), "%s", id != NULL ? id : "");
}
