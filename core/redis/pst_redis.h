/*
 * pst_redis.h -- Redis as the store several Postern nodes share (issue
 * #14): one connection per process on its event loop, through hiredis's
 * async API.  The public calls (pst_redis_command, _eval, _script, _key,
 * the reply readers) are declared in postern_module.h; this header is
 * the layer's own: the built-in "redis" module and its configuration,
 * the connection's life cycle, and the pure helpers the unit tests use.
 *
 * Layer: core/redis/, above the event loop (it watches hiredis's socket
 * and keeps timers), below the process layer.
 */

#ifndef PST_REDIS_H
#define PST_REDIS_H

#define PST_REDIS_HOST_MAX       108      /* an address, or a unix path */

struct pst_redis_script_s {
    pst_str_t                    body;
    char                         sha[41];    /* hex SHA-1, EVALSHA */
};

typedef struct {
    pst_str_t                    server;     /* as written */
    char                         host[PST_REDIS_HOST_MAX];
    int                          port;       /* 0: host is a unix path */
    pst_str_t                    user;
    pst_str_t                    password;   /* from redis_password_file */
    pst_str_t                    prefix;
    pst_msec_t                   timeout;
    pst_msec_t                   connect_timeout;
    pst_int_t                    database;
    pst_int_t                    max_pending;
    pst_array_t                 *scripts;    /* pst_redis_script_t * */
} pst_redis_conf_t;

extern const pst_module_t  pst_redis_module;

/* The running cycle's configuration, or NULL when there is no
 * redis_server. */
pst_redis_conf_t *pst_redis_conf(void);

/* The connection of this process (pst_redis_conn.c): started by the
 * module's init_process, closed by its exit_process. */
int pst_redis_conn_init(pst_redis_conf_t *conf);
void pst_redis_conn_done(void);

/* Pure helpers (pst_redis_reply.c; tests/unit/check_redis.c). */

/* "ADDR:PORT", "[IPV6]:PORT", "ADDR" (port 6379) or "unix:/path":
 * host and port (0 for a unix path).  PST_OK, or PST_ERROR with *err.
 * A name is refused: hiredis would resolve it with a blocking call. */
int pst_redis_parse_server(const pst_str_t *spec, char *host, size_t size,
    int *port, const char **err);
/* prefix kind[:part]... with the escapes of pst_redis_key(). */
ssize_t pst_redis_key_build(char *buf, size_t size, const pst_str_t *prefix,
    const char *kind, const pst_str_t *parts, pst_uint_t nparts);
/* 1 when r is Redis's "NOSCRIPT ..." error: EVALSHA of a script it does
 * not have (flushed, or a new server behind the same address). */
int pst_redis_reply_noscript(const pst_redis_reply_t *r);
/* 1 when r is an error reply; its text (bounded, printable) in buf. */
int pst_redis_reply_error(const pst_redis_reply_t *r, char *buf,
    size_t size);
/* Lower-case hex SHA-1 of data, as Redis names a script. */
int pst_redis_sha1_hex(const u_char *data, size_t len, char out[41]);

#endif /* PST_REDIS_H */
