/*
 * pst_cycle.c -- configuration generations and the built-in "core"
 * module (top-level directives).  The cycle's types are in pst_cycle.h
 * (base layer), these functions in pst_process.h.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_dns.h"
#include "pst_process.h"

#include <sys/un.h>


static void *pst_core_create_conf(pst_conf_t *cf);
static char *pst_core_init_conf(pst_conf_t *cf, void *conf);
static int pst_core_installed(pst_conf_t *cf);
static char *pst_core_load_module(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_core_worker_processes(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_core_error_log(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_core_user(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_core_module_priority(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_core_module_timeout(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static char *pst_core_trust_anchor(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_core_resolver(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static int pst_core_default_control(pst_conf_t *cf, pst_core_conf_t *ccf);
static char *pst_core_default_node(pst_conf_t *cf, pst_core_conf_t *ccf);
static pst_cycle_t *pst_cycle_build(const char *prefix,
    const char *conf_file, pst_cycle_t *old, FILE *dump, int light);
static pst_cycle_t *pst_cycle_light_done(pst_cycle_t *cycle, pst_conf_t *cf);


static const pst_command_t  pst_core_commands[] = {

    { "load_module", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_core_load_module, PST_MAIN_CONF, 0, NULL },

    { "daemon", PST_CONF_MAIN | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, daemon), NULL },

    { "worker_processes", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_core_worker_processes, PST_MAIN_CONF, 0, NULL },

    { "worker_connections", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, worker_connections), NULL },

    { "worker_rlimit_nofile", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, worker_rlimit_nofile), NULL },

    { "worker_shutdown_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, shutdown_timeout), NULL },

    { "user", PST_CONF_MAIN | PST_CONF_TAKE12,
      pst_core_user, PST_MAIN_CONF, 0, NULL },

    { "pid", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, pid), NULL },

    { "error_log", PST_CONF_MAIN | PST_CONF_TAKE12,
      pst_core_error_log, PST_MAIN_CONF, 0, NULL },

    { "log_format", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, log_format), pst_log_formats },

    { "node_name", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_name_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, node_name), NULL },

    { "spool_dir", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, spool_dir), NULL },

    { "maildrop_group", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, maildrop_group), NULL },

    { "control_socket", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, control_socket), NULL },

    { "resolver", PST_CONF_MAIN | PST_CONF_1MORE,
      pst_core_resolver, PST_MAIN_CONF, 0, NULL },

    { "resolver_trust_anchor", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_core_trust_anchor, PST_MAIN_CONF,
      offsetof(pst_core_conf_t, trust_anchor), NULL },

    { "module_priority", PST_CONF_MAIN | PST_CONF_TAKE2,
      pst_core_module_priority, PST_MAIN_CONF, 0, NULL },

    { "module_timeout", PST_CONF_MAIN | PST_CONF_TAKE23,
      pst_core_module_timeout, PST_MAIN_CONF, 0, NULL },

    pst_null_command
};


const pst_module_t  pst_core_module = {
    PST_MODULE_HEADER,
    .name = "core",
    .version = PST_VERSION,
    .description = "processes, logging, modules, spool location, resolver",
    .commands = pst_core_commands,
    .create_main_conf = pst_core_create_conf,
    .init_main_conf = pst_core_init_conf,
};


static void *
pst_core_create_conf(pst_conf_t *cf)
{
    pst_core_conf_t  *ccf;

    ccf = pst_pcalloc(cf->pool, sizeof(pst_core_conf_t));
    if (ccf == NULL) {
        return NULL;
    }

    ccf->daemon = PST_CONF_UNSET;
    ccf->worker_processes = PST_CONF_UNSET;
    ccf->worker_connections = PST_CONF_UNSET;
    ccf->worker_rlimit_nofile = PST_CONF_UNSET;
    ccf->log_level = PST_CONF_UNSET;
    ccf->log_format = PST_CONF_UNSET_UINT;
    ccf->shutdown_timeout = PST_CONF_UNSET_MSEC;
    ccf->uid = (uid_t) -1;
    ccf->gid = (gid_t) -1;
    ccf->maildrop_gid = (gid_t) -1;

    cf->cycle->core = ccf;

    return ccf;
}


/*
 * Without -p the prefix is the configuration's directory (PST_PREFIX),
 * and the spool and the pid file default to the installed places
 * (./configure --localstatedir, --runstatedir) rather than under it.
 */
static int
pst_core_installed(pst_conf_t *cf)
{
    return pst_str_eq(&cf->cycle->prefix, PST_PREFIX);
}


static char *
pst_core_init_conf(pst_conf_t *cf, void *conf)
{
    pst_core_conf_t  *ccf = conf;
    struct passwd    *pw;
    struct group     *gr;
    u_char           *p;
    char             *rv;
    long              n;

    pst_conf_merge_value(ccf->daemon, PST_CONF_UNSET, 1);
    pst_conf_merge_value(ccf->worker_connections, PST_CONF_UNSET, 4096);
    pst_conf_merge_value(ccf->worker_rlimit_nofile, PST_CONF_UNSET, 0);
    pst_conf_merge_value(ccf->log_level, PST_CONF_UNSET, PST_LOG_NOTICE);
    pst_conf_merge_uint_value(ccf->log_format, PST_CONF_UNSET_UINT,
                              PST_LOG_TEXT);
    pst_conf_merge_msec_value(ccf->shutdown_timeout, PST_CONF_UNSET_MSEC,
                              10 * 60 * 1000);

    if (ccf->worker_processes == PST_CONF_UNSET
        || ccf->worker_processes == 0)
    {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        ccf->worker_processes = (n > 0) ? n : 1;
    }
    if (ccf->worker_processes > PST_MAX_PROCS / 2 - 1) {
        ccf->worker_processes = PST_MAX_PROCS / 2 - 1;
    }

    if (ccf->worker_connections < 16) {
        return "worker_connections must be at least 16";
    }

    if (ccf->pid.data == NULL) {
        if (pst_core_installed(cf)) {
            pst_str_set(&ccf->pid, PST_RUN_DIR "/postern.pid");
        } else {
            pst_str_set(&ccf->pid, "postern.pid");
        }
        if (pst_conf_full_name(cf, &ccf->pid) != PST_OK) {
            return PST_CONF_ERROR;
        }
    }

    if (ccf->spool_dir.data == NULL) {
        if (pst_core_installed(cf)) {
            pst_str_set(&ccf->spool_dir, PST_SPOOL_DIR);
        } else {
            pst_str_set(&ccf->spool_dir, "spool");
        }
        if (pst_conf_full_name(cf, &ccf->spool_dir) != PST_OK) {
            return PST_CONF_ERROR;
        }
    }

    if (ccf->node_name.data == NULL) {
        rv = pst_core_default_node(cf, ccf);
        if (rv != PST_CONF_OK) {
            return rv;
        }
    }

    if (ccf->control_socket.data == NULL
        && pst_core_default_control(cf, ccf) != PST_OK)
    {
        return PST_CONF_ERROR;
    }
    /* a long directory is fine (pst_control.c binds from inside it),
     * the file name itself must fit a unix socket address */
    p = (u_char *) strrchr((char *) ccf->control_socket.data, '/');
    if (strlen(p ? (char *) p + 1 : (char *) ccf->control_socket.data)
        >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
    {
        return "has a control_socket file name longer than a unix socket"
               " allows (107 bytes)";
    }

    /* the account of the children, only meaningful when run as root */
    if (geteuid() == 0) {
        if (ccf->user.data == NULL) {
            pst_str_set(&ccf->user, "nobody");
        }

        pw = getpwnam((char *) ccf->user.data);
        if (pw == NULL) {
            return "names an unknown user (directive \"user\")";
        }
        ccf->uid = pw->pw_uid;
        ccf->gid = pw->pw_gid;

        if (ccf->group.data != NULL) {
            gr = getgrnam((char *) ccf->group.data);
            if (gr == NULL) {
                return "names an unknown group (directive \"user\")";
            }
            ccf->gid = gr->gr_gid;
        }
    }

    if (ccf->maildrop_group.data != NULL) {
        gr = getgrnam((char *) ccf->maildrop_group.data);
        if (gr == NULL) {
            return "names an unknown group (directive \"maildrop_group\")";
        }
        ccf->maildrop_gid = gr->gr_gid;
    }

    return PST_CONF_OK;
}


/* The machine's host name: what tells nodes apart without a setting
 * (hostname is often the one MX name they all share). */
static char *
pst_core_default_node(pst_conf_t *cf, pst_core_conf_t *ccf)
{
    char    host[256];
    u_char  esc[512];
    size_t  n;

    if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    n = strlen(host);

    if (pst_name_check((u_char *) host, n) != PST_OK) {
        (void) pst_escape(esc, sizeof(esc), (u_char *) host, n);
        pst_conf_error(cf, "the host name \"%s\" cannot be the node's name"
                       " (1 to %d letters, digits, \"-\", \"_\" or \".\"):"
                       " set \"node_name\"", esc, PST_NAME_MAX);
        return PST_CONF_ERROR;
    }

    ccf->node_name.data = pst_palloc(pst_conf_pool(cf), n + 1);
    if (ccf->node_name.data == NULL) {
        return PST_CONF_ERROR;
    }
    memcpy(ccf->node_name.data, host, n + 1);
    ccf->node_name.len = n;

    return PST_CONF_OK;
}


/* SPOOL/control: the spool belongs to the run user already. */
static int
pst_core_default_control(pst_conf_t *cf, pst_core_conf_t *ccf)
{
    size_t   n;
    u_char  *p;

    n = ccf->spool_dir.len + sizeof("/control");
    p = pst_palloc(pst_conf_pool(cf), n);
    if (p == NULL) {
        return PST_ERROR;
    }
    snprintf((char *) p, n, "%s/control", ccf->spool_dir.data);
    ccf->control_socket.data = p;
    ccf->control_socket.len = n - 1;

    return PST_OK;
}


static char *
pst_core_load_module(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_str_t  *args;

    (void) cmd;
    (void) conf;

    args = pst_conf_args(cf, NULL);
    return pst_load_module(cf, &args[1]);
}


static char *
pst_core_worker_processes(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_core_conf_t  *ccf = conf;
    pst_str_t        *args;
    int64_t           n;

    (void) cmd;

    if (ccf->worker_processes != PST_CONF_UNSET) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, NULL);
    if (pst_str_eq(&args[1], "auto")) {
        ccf->worker_processes = 0;
        return PST_CONF_OK;
    }

    n = pst_atoi(args[1].data, args[1].len, 1024);
    if (n < 1) {
        pst_conf_error(cf, "invalid value \"%s\" in \"worker_processes\","
                       " it must be \"auto\" or a number from 1",
                       args[1].data);
        return PST_CONF_ERROR;
    }

    ccf->worker_processes = n;
    return PST_CONF_OK;
}


/* user NAME [GROUP]; resolved in init_conf when running as root */
static char *
pst_core_user(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_core_conf_t  *ccf = conf;
    pst_str_t        *args;
    pst_uint_t        n;

    (void) cmd;

    if (ccf->user.data != NULL) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, &n);
    ccf->user = args[1];
    if (n == 3) {
        ccf->group = args[2];
    }

    return PST_CONF_OK;
}


static char *
pst_core_error_log(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_core_conf_t  *ccf = conf;
    pst_str_t        *args;
    pst_uint_t        n;
    int               level;

    (void) cmd;

    if (ccf->error_log.data != NULL) {
        return "is duplicate";
    }

    args = pst_conf_args(cf, &n);

    if (pst_str_eq(&args[1], "stderr")) {
        ccf->error_log = args[1];
    } else if (args[1].len > 7 && memcmp(args[1].data, "syslog:", 7) == 0) {
        if (pst_log_syslog_parse((char *) args[1].data, NULL, NULL, 0)
            != PST_OK)
        {
            pst_conf_error(cf, "invalid \"%s\" (use syslog:facility=NAME,"
                           "tag=TAG; facility kern, user, mail, daemon,"
                           " auth, syslog or local0 to local7)",
                           args[1].data);
            return PST_CONF_ERROR;
        }
        ccf->error_log = args[1];
    } else {
        ccf->error_log = args[1];
        if (pst_conf_full_name(cf, &ccf->error_log) != PST_OK) {
            return PST_CONF_ERROR;
        }
    }

    if (n == 3) {
        level = pst_log_level_parse(&args[2]);
        if (level < 0) {
            pst_conf_error(cf, "unknown log level \"%s\" (use emerg, alert,"
                           " crit, error, warn, notice, info or debug)",
                           args[2].data);
            return PST_CONF_ERROR;
        }
        ccf->log_level = level;
    }

    return PST_CONF_OK;
}


static char *
pst_core_module_priority(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_module_entry_t  *me;
    pst_str_t           *args;
    int64_t              n;
    int                  neg;

    (void) cmd;
    (void) conf;

    args = pst_conf_args(cf, NULL);
    me = pst_module_find(cf->cycle, args[1].data, args[1].len);
    if (me == NULL) {
        pst_conf_error(cf, "module \"%s\" is not loaded (put"
                       " \"module_priority\" after its load_module line)",
                       args[1].data);
        return PST_CONF_ERROR;
    }

    neg = (args[2].len > 1 && args[2].data[0] == '-');
    n = pst_atoi(args[2].data + neg, args[2].len - neg, 1000000);
    if (n < 0) {
        pst_conf_error(cf, "invalid priority \"%s\"", args[2].data);
        return PST_CONF_ERROR;
    }

    me->priority = (int) (neg ? -n : n);

    return PST_CONF_OK;
}


static char *
pst_core_module_timeout(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_module_entry_t  *me;
    pst_str_t           *args;
    pst_uint_t           n;
    int64_t              t;

    (void) cmd;
    (void) conf;

    args = pst_conf_args(cf, &n);
    me = pst_module_find(cf->cycle, args[1].data, args[1].len);
    if (me == NULL) {
        pst_conf_error(cf, "module \"%s\" is not loaded (put"
                       " \"module_timeout\" after its load_module line)",
                       args[1].data);
        return PST_CONF_ERROR;
    }

    t = pst_parse_msec(&args[2]);
    if (t <= 0) {
        pst_conf_error(cf, "invalid time \"%s\" in \"module_timeout\"",
                       args[2].data);
        return PST_CONF_ERROR;
    }
    me->timeout = (pst_msec_t) t;

    if (n == 4) {
        if (pst_str_eq(&args[3], "tempfail")) {
            me->fail_action = PST_FAIL_TEMPFAIL;
        } else if (pst_str_eq(&args[3], "accept")) {
            me->fail_action = PST_FAIL_ACCEPT;
        } else if (pst_str_eq(&args[3], "reject")) {
            me->fail_action = PST_FAIL_REJECT;
        } else {
            pst_conf_error(cf, "invalid failure action \"%s\", it must be"
                           " \"tempfail\", \"accept\" or \"reject\"",
                           args[3].data);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


static char *
pst_core_resolver(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_core_conf_t  *ccf = conf;
    pst_sockaddr_t    sa;
    socklen_t         len;
    pst_str_t        *args, *r;
    pst_uint_t        n, i;

    (void) cmd;

    if (ccf->resolvers != NULL) {
        return "is duplicate";
    }

    ccf->resolvers = pst_array_create(cf->pool, 2, sizeof(pst_str_t));
    if (ccf->resolvers == NULL) {
        return PST_CONF_ERROR;
    }

    args = pst_conf_args(cf, &n);
    for (i = 1; i < n; i++) {
        if (pst_listening_parse(cf, &args[i], &sa, &len) != PST_OK) {
            pst_conf_error(cf, "invalid resolver address \"%s\" (use"
                           " ADDRESS, ADDRESS:PORT or [IPv6]:PORT)",
                           args[i].data);
            return PST_CONF_ERROR;
        }
        r = pst_array_push(ccf->resolvers);
        if (r == NULL) {
            return PST_CONF_ERROR;
        }
        *r = args[i];
    }

    return PST_CONF_OK;
}


static char *
pst_core_trust_anchor(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_core_conf_t  *ccf = conf;
    const char       *err;
    char             *rv;

    rv = pst_conf_set_path_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }

    if (pst_dns_check_trust_anchor((char *) ccf->trust_anchor.data, &err)
        != PST_OK)
    {
        pst_conf_error(cf, "cannot load DNSSEC trust anchors from \"%s\":"
                       " %s", ccf->trust_anchor.data, err);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */

static int
pst_cycle_set_paths(pst_cycle_t *cycle, const char *prefix,
    const char *conf_file)
{
    pst_str_t   p, f;
    char        cwd[PATH_MAX];
    u_char     *s;
    size_t      n;

    /* the installed layout without -p, the build tree's with it */
    if (conf_file == NULL) {
        conf_file = (prefix == NULL || prefix[0] == '\0')
                    ? PST_CONF_PATH : PST_CONF_PREFIXED;
    }

    if (prefix == NULL || prefix[0] == '\0') {
        prefix = PST_PREFIX;
    }

    if (prefix[0] != '/') {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            return PST_ERROR;
        }
        n = strlen(cwd) + strlen(prefix) + 3;
        s = pst_palloc(cycle->pool, n);
        if (s == NULL) {
            return PST_ERROR;
        }
        snprintf((char *) s, n, "%s/%s", cwd, prefix);
        prefix = (char *) s;
    }

    n = strlen(prefix);
    s = pst_palloc(cycle->pool, n + 2);
    if (s == NULL) {
        return PST_ERROR;
    }
    memcpy(s, prefix, n);
    if (n == 0 || s[n - 1] != '/') {
        s[n++] = '/';
    }
    s[n] = '\0';
    cycle->prefix.data = s;
    cycle->prefix.len = n;

    f.data = (u_char *) conf_file;
    f.len = strlen(conf_file);
    p = cycle->prefix;
    if (pst_conf_path(cycle->pool, &p, &f) != PST_OK) {
        return PST_ERROR;
    }
    cycle->conf_file = f;

    cycle->conf_prefix = f;
    while (cycle->conf_prefix.len > 0
           && cycle->conf_prefix.data[cycle->conf_prefix.len - 1] != '/')
    {
        cycle->conf_prefix.len--;
    }

    return PST_OK;
}


/* What pst_init_cycle_light() reads; everything else is skipped. */
static const char  *pst_core_light[] = {
    "spool_dir", "control_socket", "pid", "user", NULL
};


pst_cycle_t *
pst_init_cycle_light(const char *prefix, const char *conf_file)
{
    return pst_cycle_build(prefix, conf_file, NULL, NULL, 1);
}


pst_cycle_t *
pst_init_cycle(const char *prefix, const char *conf_file, pst_cycle_t *old,
    FILE *dump)
{
    return pst_cycle_build(prefix, conf_file, old, dump, 0);
}


/* The core's defaults (spool, control socket), nothing else. */
static pst_cycle_t *
pst_cycle_light_done(pst_cycle_t *cycle, pst_conf_t *cf)
{
    pst_module_entry_t  *me;
    char                *rv;

    me = cycle->modules.elts;
    cf->dir_file = (char *) cycle->conf_file.data;
    cf->dir_line = 1;

    rv = me[0].desc.init_main_conf(cf, cycle->main_conf[0]);
    if (rv == PST_CONF_OK) {
        return cycle;
    }
    if (rv != PST_CONF_ERROR) {
        pst_conf_error(cf, "%s", rv);
    }

    pst_destroy_pool(cycle->pool);
    return NULL;
}


static pst_cycle_t *
pst_cycle_build(const char *prefix, const char *conf_file, pst_cycle_t *old,
    FILE *dump, int light)
{
    pst_module_entry_t  *me;
    pst_cycle_t         *cycle;
    pst_pool_t          *pool;
    pst_conf_t           conf;
    pst_uint_t           i;
    char                *rv;

    pool = pst_create_pool(16384);
    if (pool == NULL) {
        return NULL;
    }

    cycle = pst_pcalloc(pool, sizeof(pst_cycle_t));
    if (cycle == NULL) {
        goto failed;
    }

    cycle->pool = pool;
    cycle->old = old;
    cycle->test = (dump != NULL);
    cycle->light = light;

    if (pst_cycle_set_paths(cycle, prefix, conf_file) != PST_OK) {
        goto failed;
    }

    /* fixed capacity: hook chains keep pointers to module entries */
    cycle->modules.elts = pst_pcalloc(pool, PST_MAX_MODULES
                                            * sizeof(pst_module_entry_t));
    cycle->main_conf = pst_pcalloc(pool, PST_MAX_MODULES * sizeof(void *));
    if (cycle->modules.elts == NULL || cycle->main_conf == NULL) {
        goto failed;
    }
    cycle->modules.size = sizeof(pst_module_entry_t);
    cycle->modules.nalloc = PST_MAX_MODULES;
    cycle->modules.pool = pool;

    cycle->servers.elts = pst_palloc(pool, 8 * sizeof(pst_server_t *));
    cycle->servers.size = sizeof(pst_server_t *);
    cycle->servers.nalloc = 8;
    cycle->servers.pool = pool;
    cycle->listening.elts = pst_palloc(pool, 8 * sizeof(pst_listening_t));
    cycle->listening.size = sizeof(pst_listening_t);
    cycle->listening.nalloc = 8;
    cycle->listening.pool = pool;
    if (cycle->servers.elts == NULL || cycle->listening.elts == NULL) {
        goto failed;
    }

    memset(&conf, 0, sizeof(pst_conf_t));
    conf.cycle = cycle;
    conf.pool = pool;
    conf.ctx = PST_CONF_MAIN;
    conf.dump = dump;
    conf.args = pst_array_create(pool, 8, sizeof(pst_str_t));
    if (conf.args == NULL) {
        goto failed;
    }
    conf.dir_file = (char *) cycle->conf_file.data;
    conf.only = light ? pst_core_light : NULL;

    if (!light) {
        pst_shm_mark_unused();
    }

    if (pst_modules_init(&conf) != PST_OK
        || (!light && pst_shm_init_limits(&conf) != PST_OK))
    {
        goto failed;
    }

    /* no position for "cannot open" of the main file itself */
    conf.dir_file = NULL;
    conf.dir_line = 0;

    if (pst_conf_parse(&conf, (char *) cycle->conf_file.data) != PST_OK) {
        goto failed;
    }

    if (light) {
        return pst_cycle_light_done(cycle, &conf);
    }

    if (cycle->servers_init == NULL || cycle->servers.nelts == 0) {
        pst_conf_error_at(&conf, (char *) cycle->conf_file.data, 1,
                          "no \"smtp { server { listen ...; } }\" block:"
                          " nothing to serve");
        goto failed;
    }

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.init_main_conf == NULL) {
            continue;
        }
        conf.dir_file = me[i].file ? me[i].file
                                   : (char *) cycle->conf_file.data;
        /* built-in modules have no load_module line: point at line 1 */
        conf.dir_line = me[i].line ? me[i].line : 1;
        rv = me[i].desc.init_main_conf(&conf, cycle->main_conf[i]);
        if (rv == PST_CONF_OK) {
            continue;
        }
        if (rv != PST_CONF_ERROR) {
            pst_conf_error(&conf, "module \"%s\": %s", me[i].desc.name, rv);
        }
        goto failed;
    }

    /* each server's configurations merged, its hook chains built: the
     * smtp layer's part, which the smtp {} block registered */
    if (cycle->servers_init(&conf, cycle) != PST_OK) {
        goto failed;
    }

    return cycle;

failed:

    /* the running generation keeps its zones */
    pst_shm_mark_all_used();
    pst_destroy_pool(pool);
    return NULL;
}


int
pst_cycle_init_modules(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].desc.init_module != NULL
            && me[i].desc.init_module(cycle, cycle->main_conf[i]) != PST_OK)
        {
            pst_log_error(PST_LOG_EMERG, 0, "module \"%s\" failed to start"
                          " (init_module)", me[i].desc.name);
            return PST_ERROR;
        }
    }

    return PST_OK;
}


void
pst_destroy_cycle(pst_cycle_t *cycle)
{
    if (cycle == NULL) {
        return;
    }
    pst_destroy_pool(cycle->pool);
}


void
pst_cycle_dump(pst_cycle_t *cycle, FILE *out)
{
    pst_module_entry_t  *me;
    pst_uint_t           k;

    me = cycle->modules.elts;

    fprintf(out, "# effective configuration (defaults included)\n");
    for (k = 0; k < cycle->modules.nelts; k++) {
        if (cycle->main_conf[k] == NULL) {
            continue;
        }
        fprintf(out, "# module %s\n", me[k].desc.name);
        pst_conf_dump_commands(out, me[k].desc.commands, cycle->main_conf[k],
                               NULL, PST_CONF_MAIN, "");
    }

    if (cycle->servers_dump != NULL) {
        cycle->servers_dump(cycle, out);
    }
}
