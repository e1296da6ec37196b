/*
 * pst_redis.c -- the built-in "redis" module: the top-level redis_*
 * directives, the scripts modules register while the configuration is
 * read, key names, and the connection of each child process
 * (pst_redis_conn.c) started and closed with the process.
 *
 * Directives (top level; docs/CONFIG.md "Redis", docs/SCALING.md):
 *   redis_server ADDR[:PORT] | [IPV6]:PORT | unix:/path;  (none: off)
 *   redis_sentinel ADDR[:PORT] ...;  or: the sentinels (port 26379),
 *   redis_master_name NAME;          and the master they name
 *   redis_sentinel_user NAME;        AUTH to the sentinels
 *   redis_sentinel_password_file PATH;
 *   redis_sentinel_timeout TIME;     each sentinel asked (300ms)
 *   redis_user NAME;                 ACL user for AUTH (Redis 6+)
 *   redis_password_file PATH;        AUTH password: the file's first line
 *   redis_database N;                SELECT N (default 0)
 *   redis_key_prefix TEXT;           default "postern:"
 *   redis_timeout TIME;              each command (default 100ms)
 *   redis_connect_timeout TIME;      connect + AUTH + scripts (1s)
 *   redis_max_pending N;             commands waiting per process (1024)
 */

#include "pst_core.h"
#include "pst_module.h"
#include "pst_redis.h"


static void *pst_redis_create_conf(pst_conf_t *cf);
static char *pst_redis_init_conf(pst_conf_t *cf, void *conf);
static char *pst_redis_set_server(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_redis_set_sentinel(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_redis_set_master_name(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
static int pst_redis_init_process(pst_cycle_t *cycle, pst_proc_e type,
    void *conf);
static void pst_redis_exit_process(pst_cycle_t *cycle, void *conf);


#define REDIS(field)  PST_MAIN_CONF, offsetof(pst_redis_conf_t, field)

static const pst_command_t  pst_redis_commands[] = {
    { "redis_server", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_redis_set_server, REDIS(server), NULL },
    { "redis_user", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, REDIS(user), NULL },
    { "redis_password_file", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, REDIS(password), NULL },
    { "redis_database", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, REDIS(database), NULL },
    { "redis_key_prefix", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, REDIS(prefix), NULL },
    { "redis_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, REDIS(timeout), NULL },
    { "redis_connect_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, REDIS(connect_timeout), NULL },
    { "redis_max_pending", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, REDIS(max_pending), NULL },
    { "redis_sentinel", PST_CONF_MAIN | PST_CONF_1MORE,
      pst_redis_set_sentinel, REDIS(sentinels), NULL },
    { "redis_master_name", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_redis_set_master_name, REDIS(master_name), NULL },
    { "redis_sentinel_user", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, REDIS(sentinel_user), NULL },
    { "redis_sentinel_password_file", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_path_slot, REDIS(sentinel_password), NULL },
    { "redis_sentinel_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, REDIS(sentinel_timeout), NULL },
    pst_null_command
};

const pst_module_t  pst_redis_module = {
    PST_MODULE_HEADER,
    .name = "redis",
    .version = PST_VERSION,
    .description = "Redis connection for state shared by several nodes",
    .commands = pst_redis_commands,
    .create_main_conf = pst_redis_create_conf,
    .init_main_conf = pst_redis_init_conf,
    .init_process = pst_redis_init_process,
    .exit_process = pst_redis_exit_process,
};


static pst_redis_conf_t *
pst_redis_cycle_conf(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;

    if (cycle == NULL) {
        return NULL;
    }
    me = pst_module_entry(cycle, &pst_redis_module);
    return me != NULL ? cycle->main_conf[me->index] : NULL;
}


/* 1 when Redis is configured: redis_server or redis_sentinel. */
static int
pst_redis_on(const pst_redis_conf_t *rc)
{
    return rc != NULL && (rc->server.len > 0 || rc->nsentinels > 0);
}


pst_redis_conf_t *
pst_redis_conf(void)
{
    pst_redis_conf_t  *rc = pst_redis_cycle_conf(pst_cycle);

    return pst_redis_on(rc) ? rc : NULL;
}


static void *
pst_redis_create_conf(pst_conf_t *cf)
{
    pst_redis_conf_t  *rc;

    rc = pst_pcalloc(cf->pool, sizeof(pst_redis_conf_t));
    if (rc == NULL) {
        return NULL;
    }
    rc->database = PST_CONF_UNSET;
    rc->timeout = PST_CONF_UNSET_MSEC;
    rc->connect_timeout = PST_CONF_UNSET_MSEC;
    rc->max_pending = PST_CONF_UNSET;
    rc->sentinel_timeout = PST_CONF_UNSET_MSEC;
    rc->scripts = pst_array_create(cf->pool, 4, sizeof(pst_redis_script_t *));
    return rc->scripts != NULL ? rc : NULL;
}


static char *
pst_redis_set_server(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_redis_conf_t  *rc = conf;
    pst_str_t         *args;
    pst_uint_t         n;
    const char        *err;

    (void) cmd;

    if (rc->server.len > 0) {
        return "is duplicate";
    }
    if (rc->nsentinels > 0) {
        return "cannot be used with \"redis_sentinel\" (the sentinels"
               " name the server)";
    }
    args = pst_conf_args(cf, &n);
    if (pst_redis_parse_server(&args[1], PST_REDIS_PORT, rc->host,
                               sizeof(rc->host), &rc->port, &err) != PST_OK)
    {
        pst_conf_error(cf, "\"redis_server %s\" %s", args[1].data, err);
        return PST_CONF_ERROR;
    }
    rc->server = args[1];
    return PST_CONF_OK;
}


/* redis_sentinel ADDR ...; repeated, the lists add up, in order. */
static char *
pst_redis_set_sentinel(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_redis_conf_t  *rc = conf;
    pst_redis_addr_t  *sa;
    pst_str_t         *args;
    pst_uint_t         n, i;
    const char        *err;

    (void) cmd;

    if (rc->server.len > 0) {
        return "cannot be used with \"redis_server\" (the sentinels"
               " name the server)";
    }
    args = pst_conf_args(cf, &n);
    if (rc->nsentinels + n - 1 > PST_REDIS_SENTINELS_MAX) {
        pst_conf_error(cf, "more than %d \"redis_sentinel\" addresses",
                       PST_REDIS_SENTINELS_MAX);
        return PST_CONF_ERROR;
    }
    if (rc->nsentinels == 0) {
        rc->sentinel_file = cf->dir_file;
        rc->sentinel_line = cf->dir_line;
    }

    for (i = 1; i < n; i++) {
        sa = &rc->sentinels[rc->nsentinels];
        if (pst_redis_parse_server(&args[i], PST_REDIS_SENTINEL_PORT,
                                   sa->host, sizeof(sa->host), &sa->port,
                                   &err) != PST_OK)
        {
            pst_conf_error(cf, "\"redis_sentinel %s\" %s", args[i].data,
                           err);
            return PST_CONF_ERROR;
        }
        sa->spec = args[i];
        rc->nsentinels++;
    }
    return PST_CONF_OK;
}


/* Sentinel's names are single words: +switch-master's message splits
 * on spaces. */
static char *
pst_redis_set_master_name(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_redis_conf_t  *rc = conf;
    pst_str_t         *args;
    pst_uint_t         n, i;

    (void) cmd;

    if (rc->master_name.len > 0) {
        return "is duplicate";
    }
    args = pst_conf_args(cf, &n);
    if (args[1].len == 0 || args[1].len > 255) {
        return "must be 1 to 255 bytes";
    }
    for (i = 0; i < args[1].len; i++) {
        if (args[1].data[i] <= 0x20 || args[1].data[i] >= 0x7f) {
            return "must be printable ASCII without spaces";
        }
    }
    rc->master_name = args[1];
    return PST_CONF_OK;
}


/* The first line of the password file (pw holds its path, then the
 * password), read now by the master (the file may be readable by root
 * only); children inherit the memory. */
static char *
pst_redis_read_password(pst_conf_t *cf, pst_str_t *pw, const char *what)
{
    char    buf[1024];
    FILE   *f;
    size_t  n;

    f = fopen((char *) pw->data, "r");
    if (f == NULL) {
        pst_conf_error(cf, "cannot read %s \"%s\": %s", what, pw->data,
                       strerror(errno));
        return PST_CONF_ERROR;
    }
    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }
    fclose(f);

    n = strcspn(buf, "\r\n");
    if (n == 0) {
        explicit_bzero(buf, sizeof(buf));
        pst_conf_error(cf, "%s \"%s\" is empty", what, pw->data);
        return PST_CONF_ERROR;
    }

    pw->data = pst_palloc(cf->pool, n + 1);
    if (pw->data == NULL) {
        explicit_bzero(buf, sizeof(buf));
        return PST_CONF_ERROR;
    }
    memcpy(pw->data, buf, n);
    pw->data[n] = '\0';
    pw->len = n;
    explicit_bzero(buf, sizeof(buf));
    return PST_CONF_OK;
}


/* redis_sentinel's companions, checked where redis_sentinel was
 * written (or, without it, at line 1). */
static char *
pst_redis_check_sentinel(pst_conf_t *cf, pst_redis_conf_t *rc)
{
    const char  *file = rc->sentinel_file ? rc->sentinel_file : cf->dir_file;
    pst_uint_t   line = rc->sentinel_file ? rc->sentinel_line : cf->dir_line;
    const char  *err = NULL;

    if (rc->nsentinels > 0 && rc->master_name.len == 0) {
        err = "\"redis_sentinel\" needs \"redis_master_name\"";
    } else if (rc->nsentinels == 0
               && (rc->master_name.len || rc->sentinel_user.len
                   || rc->sentinel_password.len))
    {
        err = "\"redis_master_name\" and \"redis_sentinel_*\" need"
              " \"redis_sentinel\"";
    } else if (rc->sentinel_user.len > 0 && rc->sentinel_password.len == 0) {
        err = "\"redis_sentinel_user\" needs"
              " \"redis_sentinel_password_file\"";
    }
    if (err != NULL) {
        pst_conf_error_at(cf, file, line, "%s", err);
        return PST_CONF_ERROR;
    }

    if (rc->sentinel_password.len > 0) {
        return pst_redis_read_password(cf, &rc->sentinel_password,
                                       "redis_sentinel_password_file");
    }
    return PST_CONF_OK;
}


static char *
pst_redis_init_conf(pst_conf_t *cf, void *conf)
{
    pst_redis_conf_t  *rc = conf;
    static u_char      dflt[] = "postern:";

    pst_conf_merge_value(rc->database, PST_CONF_UNSET, 0);
    pst_conf_merge_msec_value(rc->timeout, PST_CONF_UNSET_MSEC, 100);
    pst_conf_merge_msec_value(rc->connect_timeout, PST_CONF_UNSET_MSEC,
                              1000);
    pst_conf_merge_value(rc->max_pending, PST_CONF_UNSET, 1024);
    pst_conf_merge_msec_value(rc->sentinel_timeout, PST_CONF_UNSET_MSEC, 300);
    if (rc->prefix.data == NULL) {
        rc->prefix.data = dflt;
        rc->prefix.len = sizeof(dflt) - 1;
    }

    if (rc->database < 0 || rc->database > 65535) {
        return "redis_database must be 0..65535";
    }
    if (rc->timeout < 1 || rc->connect_timeout < 1
        || rc->sentinel_timeout < 1)
    {
        return "redis_timeout, redis_connect_timeout and"
               " redis_sentinel_timeout must be at least 1ms";
    }
    if (rc->max_pending < 1) {
        return "redis_max_pending must be at least 1";
    }
    if (!pst_redis_on(rc) && (rc->user.len || rc->password.len)) {
        return "redis_user and redis_password_file need redis_server or"
               " redis_sentinel";
    }
    if (rc->user.len > 0 && rc->password.len == 0) {
        return "redis_user needs redis_password_file";
    }
    if (pst_redis_check_sentinel(cf, rc) != PST_CONF_OK) {
        return PST_CONF_ERROR;
    }

    if (rc->password.len > 0) {
        return pst_redis_read_password(cf, &rc->password,
                                       "redis_password_file");
    }

    return PST_CONF_OK;
}


static int
pst_redis_init_process(pst_cycle_t *cycle, pst_proc_e type, void *conf)
{
    pst_redis_conf_t  *rc = conf;

    (void) cycle;

    if (!pst_redis_on(rc) || type == PST_PROC_MASTER) {
        return PST_OK;
    }
    return pst_redis_conn_init(rc);
}


static void
pst_redis_exit_process(pst_cycle_t *cycle, void *conf)
{
    (void) cycle;
    (void) conf;

    pst_redis_conn_done();
}


/* ------------------------------------------------------------------ */
/* Public: scripts and keys                                            */

pst_redis_script_t *
pst_redis_script(pst_conf_t *cf, const char *lua)
{
    pst_redis_script_t  *sc, **slot;
    pst_redis_conf_t    *rc;
    pst_str_t            body;

    rc = pst_redis_cycle_conf(cf->cycle);
    if (!pst_redis_on(rc)) {
        pst_conf_error(cf, "a Redis backend needs \"redis_server\" (or"
                       " \"redis_sentinel\") at the top level");
        return NULL;
    }

    body.data = (u_char *) lua;
    body.len = strlen(lua);

    sc = pst_pcalloc(cf->pool, sizeof(pst_redis_script_t));
    if (sc == NULL) {
        return NULL;
    }
    sc->body.data = pst_pstrdup(cf->pool, &body);
    sc->body.len = body.len;
    if (sc->body.data == NULL
        || pst_redis_sha1_hex(sc->body.data, sc->body.len, sc->sha)
           != PST_OK)
    {
        return NULL;
    }

    slot = pst_array_push(rc->scripts);
    if (slot == NULL) {
        return NULL;
    }
    *slot = sc;
    return sc;
}


ssize_t
pst_redis_key(char *buf, size_t size, const char *kind,
    const pst_str_t *parts, pst_uint_t nparts)
{
    pst_redis_conf_t  *rc = pst_redis_cycle_conf(pst_cycle);

    return pst_redis_key_build(buf, size, rc != NULL ? &rc->prefix : NULL,
                               kind, parts, nparts);
}
