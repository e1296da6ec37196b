/*
 * pst_redis.c -- the built-in "redis" module: the top-level redis_*
 * directives, the scripts modules register while the configuration is
 * read, key names, and the connection of each child process
 * (pst_redis_conn.c) started and closed with the process.
 *
 * Directives (top level; docs/CONFIG.md "Redis", docs/SCALING.md):
 *   redis_server ADDR[:PORT] | [IPV6]:PORT | unix:/path;  (none: off)
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


pst_redis_conf_t *
pst_redis_conf(void)
{
    pst_redis_conf_t  *rc = pst_redis_cycle_conf(pst_cycle);

    return (rc != NULL && rc->server.len > 0) ? rc : NULL;
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
    args = pst_conf_args(cf, &n);
    if (pst_redis_parse_server(&args[1], rc->host, sizeof(rc->host),
                               &rc->port, &err) != PST_OK)
    {
        pst_conf_error(cf, "\"redis_server %s\" %s", args[1].data, err);
        return PST_CONF_ERROR;
    }
    rc->server = args[1];
    return PST_CONF_OK;
}


/* The first line of the password file, read now by the master (the
 * file may be readable by root only); children inherit the memory. */
static char *
pst_redis_read_password(pst_conf_t *cf, pst_redis_conf_t *rc)
{
    char    buf[1024];
    FILE   *f;
    size_t  n;

    f = fopen((char *) rc->password.data, "r");
    if (f == NULL) {
        pst_conf_error(cf, "cannot read redis_password_file \"%s\": %s",
                       rc->password.data, strerror(errno));
        return PST_CONF_ERROR;
    }
    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }
    fclose(f);

    n = strcspn(buf, "\r\n");
    if (n == 0) {
        explicit_bzero(buf, sizeof(buf));
        pst_conf_error(cf, "redis_password_file \"%s\" is empty",
                       rc->password.data);
        return PST_CONF_ERROR;
    }

    rc->password.data = pst_palloc(cf->pool, n + 1);
    if (rc->password.data == NULL) {
        explicit_bzero(buf, sizeof(buf));
        return PST_CONF_ERROR;
    }
    memcpy(rc->password.data, buf, n);
    rc->password.data[n] = '\0';
    rc->password.len = n;
    explicit_bzero(buf, sizeof(buf));
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
    if (rc->prefix.data == NULL) {
        rc->prefix.data = dflt;
        rc->prefix.len = sizeof(dflt) - 1;
    }

    if (rc->database < 0 || rc->database > 65535) {
        return "redis_database must be 0..65535";
    }
    if (rc->timeout < 1 || rc->connect_timeout < 1) {
        return "redis_timeout and redis_connect_timeout must be at least"
               " 1ms";
    }
    if (rc->max_pending < 1) {
        return "redis_max_pending must be at least 1";
    }
    if (rc->server.len == 0 && (rc->user.len || rc->password.len)) {
        return "redis_user and redis_password_file need redis_server";
    }
    if (rc->user.len > 0 && rc->password.len == 0) {
        return "redis_user needs redis_password_file";
    }

    if (rc->password.len > 0) {
        return pst_redis_read_password(cf, rc);
    }

    return PST_CONF_OK;
}


static int
pst_redis_init_process(pst_cycle_t *cycle, pst_proc_e type, void *conf)
{
    pst_redis_conf_t  *rc = conf;

    (void) cycle;

    if (rc == NULL || rc->server.len == 0 || type == PST_PROC_MASTER) {
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
    if (rc == NULL || rc->server.len == 0) {
        pst_conf_error(cf, "a Redis backend needs \"redis_server\" at the"
                       " top level");
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
