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
#define PST_REDIS_SENTINELS_MAX  16
#define PST_REDIS_PORT           6379
#define PST_REDIS_SENTINEL_PORT  26379

struct pst_redis_script_s {
    pst_str_t                    body;
    char                         sha[41];    /* hex SHA-1, EVALSHA */
};

/* An address of redis_server or redis_sentinel. */
typedef struct {
    pst_str_t                    spec;       /* as written */
    char                         host[PST_REDIS_HOST_MAX];
    int                          port;       /* 0: host is a unix path */
} pst_redis_addr_t;

typedef struct {
    pst_str_t                    server;     /* as written */
    char                         host[PST_REDIS_HOST_MAX];
    int                          port;       /* 0: host is a unix path */
    pst_str_t                    user;
    pst_str_t                    password;   /* from redis_password_file */
    /* redis_sentinel (exclusive with redis_server): the master is the
     * one the sentinels name master_name */
    pst_redis_addr_t             sentinels[PST_REDIS_SENTINELS_MAX];
    pst_uint_t                   nsentinels;
    pst_str_t                    master_name;
    pst_str_t                    sentinel_user;
    pst_str_t                    sentinel_password;
    pst_msec_t                   sentinel_timeout;
    const char                  *sentinel_file;  /* where redis_sentinel */
    pst_uint_t                   sentinel_line;  /* was first written */
    pst_str_t                    prefix;
    pst_msec_t                   timeout;
    pst_msec_t                   connect_timeout;
    pst_int_t                    database;
    pst_int_t                    max_pending;
    pst_array_t                 *scripts;    /* pst_redis_script_t * */
} pst_redis_conf_t;

extern const pst_module_t  pst_redis_module;

/* The running cycle's configuration, or NULL when there is neither
 * redis_server nor redis_sentinel. */
pst_redis_conf_t *pst_redis_conf(void);

/* The connection of this process (pst_redis_conn.c): started by the
 * module's init_process, closed by its exit_process. */
int pst_redis_conn_init(pst_redis_conf_t *conf);
void pst_redis_conn_done(void);


/* One hiredis async context on this process's event loop
 * (pst_redis_link.c).  open connects without blocking (host is an
 * address or, with port 0, a unix path): PST_OK, or PST_ERROR with
 * hiredis's reason in err and nothing to clean up.  After PST_OK, gone
 * runs exactly once, when hiredis lets the context go: a refused
 * connect, an error, a close by the server or pst_redis_link_close()
 * alike; inside a hiredis callback the close takes effect when the
 * callback returns.  gone must not open the link again at once (post
 * an event): hiredis is still freeing the old context. */
typedef struct pst_redis_link_s  pst_redis_link_t;

struct pst_redis_link_s {
    struct redisAsyncContext    *ac;         /* NULL: closed */
    pst_connection_t            *c;
    void                       (*gone)(pst_redis_link_t *link);
    void                        *data;
    char                         errstr[128];  /* hiredis's, at gone */
    unsigned                     reading:1;
    unsigned                     writing:1;
};

int pst_redis_link_open(pst_redis_link_t *link, const char *host, int port,
    char *err, size_t size);
void pst_redis_link_close(pst_redis_link_t *link);
/* AUTH [user] password on a link, if a password is set: PST_OK (queued
 * or nothing to send) or PST_ERROR; the reply goes to cb. */
int pst_redis_link_auth(pst_redis_link_t *link, const pst_str_t *user,
    const pst_str_t *password, void (*cb)(struct redisAsyncContext *,
    void *, void *), void *privdata);


/* Master discovery through Redis Sentinel (pst_redis_sentinel.c), per
 * the sentinel client guidelines: the sentinels asked in order, the one
 * that answered moved to the front.  pst_redis_sentinel_ask() starts a
 * discovery (nothing when one runs); found runs once at its end, with
 * the master's address, or with host NULL when no sentinel named one
 * (logged).  After an answer the process subscribes to +switch-master
 * on that sentinel; switched runs when the master of our name moved. */
typedef void (*pst_redis_found_pt)(const char *host, int port);
typedef void (*pst_redis_switched_pt)(const char *host, int port);

void pst_redis_sentinel_init(pst_redis_conf_t *conf,
    pst_redis_found_pt found, pst_redis_switched_pt switched);
void pst_redis_sentinel_ask(void);
void pst_redis_sentinel_done(void);


/* Pure helpers (pst_redis_reply.c; tests/unit/check_redis.c). */

/* "ADDR:PORT", "[IPV6]:PORT", "ADDR" (default_port) or "unix:/path":
 * host and port (0 for a unix path).  PST_OK, or PST_ERROR with *err.
 * A name is refused: hiredis would resolve it with a blocking call. */
int pst_redis_parse_server(const pst_str_t *spec, int default_port,
    char *host, size_t size, int *port, const char **err);
/* "ADDR:PORT" or "[IPV6]:PORT" into buf (for logs). */
void pst_redis_addr_text(char *buf, size_t size, const char *host,
    int port);
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

/* Sentinel's and Redis's answers that the discovery reads (untrusted:
 * tests/fuzz/fuzz_redis_sentinel.c).  Addresses must be IP literals
 * (a name would need a blocking lookup) with a port 1..65535. */

/* SENTINEL get-master-addr-by-name: PST_OK with the master's address,
 * PST_DECLINED for the null reply (the sentinel does not know the
 * name), PST_ERROR with *err for anything else. */
int pst_redis_master_addr(const pst_redis_reply_t *r, char *host,
    size_t size, int *port, const char **err);
/* ROLE: 1 when the instance says "master"; its role, printable and
 * bounded, in buf for the log ("slave", "sentinel", "?"). */
int pst_redis_role_master(const pst_redis_reply_t *r, char *buf,
    size_t size);
/* A pub/sub push of the +switch-master channel: ["message",
 * "+switch-master", "NAME OLDIP OLDPORT NEWIP NEWPORT"].  PST_OK with
 * the new address when NAME is name; PST_DECLINED for another name or
 * another push (the subscribe confirmation); PST_ERROR when malformed. */
int pst_redis_switch_master(const pst_redis_reply_t *r,
    const pst_str_t *name, char *host, size_t size, int *port);
/* 1 when r is a READONLY error: the server is a replica now. */
int pst_redis_reply_readonly(const pst_redis_reply_t *r);

#endif /* PST_REDIS_H */
