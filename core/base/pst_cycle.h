/*
 * pst_cycle.h -- one configuration generation.
 *
 * A cycle owns everything read from the configuration: its pool, the
 * loaded modules and their configurations, the servers and the
 * listening sockets.  The master builds a new cycle on HUP; when that
 * fails the old cycle keeps running.  Workers run on the cycle they were
 * forked with.
 *
 * This header is the cycle's data, which every layer reads; building
 * one (pst_cycle.c) is the process layer's (pst_process.h).
 */

#ifndef PST_CYCLE_H
#define PST_CYCLE_H

typedef struct {
    pst_int_t                    daemon;
    pst_int_t                    worker_processes;   /* 0: auto */
    pst_int_t                    worker_connections;
    pst_int_t                    worker_rlimit_nofile;
    pst_str_t                    user;
    pst_str_t                    group;
    uid_t                        uid;
    gid_t                        gid;
    pst_str_t                    pid;
    pst_str_t                    error_log;
    pst_int_t                    log_level;
    pst_uint_t                   log_format;         /* PST_LOG_TEXT, JSON */
    pst_str_t                    spool_dir;
    /* what this node calls itself in our Received: fields, every log
     * line and a node transfer (pst_name_check(); default: the
     * machine's host name) */
    pst_str_t                    node_name;
    /* SPOOL/maildrop's group (postern-sendmail setgid to it), or none */
    pst_str_t                    maildrop_group;
    gid_t                        maildrop_gid;       /* -1: none */
    pst_str_t                    control_socket;     /* unix socket path */
    pst_array_t                 *resolvers;          /* pst_str_t */
    pst_str_t                    trust_anchor;       /* DNSSEC anchors */
    pst_msec_t                   shutdown_timeout;
    size_t                       limits_zone_size;
} pst_core_conf_t;

struct pst_cycle_s {
    pst_pool_t                  *pool;
    pst_str_t                    prefix;       /* -p, ends with '/' */
    pst_str_t                    conf_file;    /* absolute */
    pst_str_t                    conf_prefix;  /* its directory + '/' */

    pst_array_t                  modules;      /* pst_module_entry_t */
    void                       **main_conf;    /* per module index */

    void                       **smtp_srv_conf;  /* smtp { } level */
    signed char                 *smtp_enabled;
    pst_array_t                  servers;      /* pst_server_t * */
    pst_array_t                  listening;    /* pst_listening_t */

    pst_core_conf_t             *core;
    pst_array_t                 *worker_paths; /* pst_access.c */
    pst_cycle_t                 *old;

    /* Set by the smtp {} block (pst_smtp_module.c), called by
     * pst_init_cycle() and pst_cycle_dump(): the process layer that
     * builds a cycle knows nothing of SMTP.  servers_init merges each
     * server's configurations and builds its hook chains, after every
     * module's init_main_conf; servers_dump is the servers' part of
     * -T. */
    int                        (*servers_init)(pst_conf_t *cf,
                                               pst_cycle_t *cycle);
    void                       (*servers_dump)(pst_cycle_t *cycle,
                                               FILE *out);
    unsigned                     smtp_seen:1;
    unsigned                     test:1;       /* -t / -T */
    unsigned                     light:1;      /* pst_init_cycle_light() */
};

/* The cycle this process runs on (defined in pst_module.c: every layer
 * reads it; the process layer builds it, pst_process.h). */
extern pst_cycle_t         *pst_cycle;

#endif /* PST_CYCLE_H */
