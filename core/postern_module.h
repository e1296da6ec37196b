/**
 * @file
 * postern_module.h -- the public API for Postern modules and plugins,
 * installed as postern/module.h.
 *
 * This is the only header a module includes.  Everything here is a
 * promise to plugin authors: a change that breaks a compiled module bumps
 * POSTERN_ABI_MAJOR; an addition bumps POSTERN_ABI_MINOR (see
 * docs/PLUGINS.md for the history).  Structures that grow are opaque and
 * read through functions, so adding a field never breaks a plugin.
 *
 * Rules for code behind these functions (details in docs/PLUGINS.md):
 *  - Nothing a module does in a hook may block the worker: use the timer,
 *    event and DNS functions below and return PST_HOOK_PENDING.
 *  - Strings handed to a module (pst_str_t) are valid for the lifetime
 *    stated at the accessor; they are NUL-terminated unless stated
 *    otherwise, but always carry their length.
 *  - Module state lives in the config structures the core creates for the
 *    module (create/merge callbacks), never in globals that survive a
 *    reload.
 */

#ifndef POSTERN_MODULE_H
#define POSTERN_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The core is built with -fvisibility=hidden: what this header declares
 * is all that the postern binary exports to modules.
 */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/** @defgroup basics Versions, return codes, strings
 * @{ */

/** The ABI this header describes (docs/PLUGINS.md, "The ABI promise"):
 * the loader refuses a module of another major or of a newer minor. */
#define POSTERN_ABI_MAJOR        1
#define POSTERN_ABI_MINOR        2   /**< additions since the major */
/** The first word of every module descriptor. */
#define POSTERN_MODULE_MAGIC     0x4d545350u    /**< "PSTM" little endian */

/** Printf-style checking of a function's format and arguments. */
#if defined(__GNUC__)
#define PST_PRINTF(f, a)         __attribute__((format(printf, f, a)))
/** Put on the module descriptor: the one symbol a module exports. */
#define PST_EXPORT               __attribute__((visibility("default")))
#else
#define PST_PRINTF(f, a)
#define PST_EXPORT
#endif


/* Return codes shared by the whole tree (docs/PLUGINS.md, "Return codes").
 */
#define PST_OK                   0   /**< success */
#define PST_ERROR               -1   /**< failure; the caller logs or
                                          reports it */
#define PST_AGAIN               -2   /**< not finished, call again when
                                          the event fires */
#define PST_BUSY                -3   /**< busy (not returned to modules) */
#define PST_DONE                -4   /**< finished, nothing more to do */
#define PST_DECLINED            -5   /**< "not mine": a handler does not
                                          apply, try the next */

typedef intptr_t                 pst_int_t;    /**< pointer-wide int */
typedef uintptr_t                pst_uint_t;   /**< pointer-wide unsigned */
typedef uint64_t                 pst_msec_t;   /**< milliseconds */

/** A string with its length; the core's are also NUL-terminated unless
 * their accessor says otherwise. */
typedef struct {
    size_t                       len;       /**< bytes, without the NUL */
    u_char                      *data;           /**< the bytes */
} pst_str_t;

/** Initializers: a pst_str_t of a string literal, and the empty one. */
#define pst_string(s)            { sizeof(s) - 1, (u_char *) s }
#define pst_null_string          { 0, NULL }   /**< an unset pst_str_t */

/* Opaque objects of the core, read and changed through the functions
 * below (their layout is not part of the ABI). */
typedef struct pst_pool_s        pst_pool_t;   /**< a memory pool */
typedef struct pst_conf_s        pst_conf_t; /**< the configuration read */
typedef struct pst_cycle_s       pst_cycle_t; /**< a configuration generation */
typedef struct pst_session_s     pst_session_t;   /**< an SMTP session */
typedef struct pst_call_s        pst_call_t;   /**< one hook call */
typedef struct pst_module_s      pst_module_t;   /**< a module's descriptor */
typedef struct pst_command_s     pst_command_t;   /**< a directive */
typedef struct pst_timer_s       pst_timer_t;   /**< a timer */
typedef struct pst_dns_query_s   pst_dns_query_t;   /**< a DNS lookup */
typedef struct pst_store_s       pst_store_t;   /**< a store */
typedef struct pst_router_s      pst_router_t;   /**< a router */
typedef struct pst_qevent_s      pst_qevent_t;   /**< a queue-side event */
typedef struct pst_envelope_s    pst_envelope_t; /**< envelope (internal) */


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup conf Configuration directives
 * @{ */

/** Where a directive may appear (any combination). */
#define PST_CONF_MAIN            0x01000000    /**< top level */
#define PST_CONF_SMTP            0x02000000    /**< smtp { } */
#define PST_CONF_SRV             0x04000000    /**< smtp { server { } } */
#define PST_CONF_ANY_SMTP        (PST_CONF_SMTP | PST_CONF_SRV) /**< both */

/** How many arguments it takes (any combination of TAKEn). */
#define PST_CONF_NOARGS          0x00000001 /**< no argument */
#define PST_CONF_TAKE1           0x00000002 /**< one argument */
#define PST_CONF_TAKE2           0x00000004 /**< two */
#define PST_CONF_TAKE3           0x00000008 /**< three */
#define PST_CONF_TAKE4           0x00000010 /**< four */
#define PST_CONF_TAKE5           0x00000020 /**< five */
#define PST_CONF_TAKE6           0x00000040 /**< six */
#define PST_CONF_TAKE7           0x00000080 /**< seven */
/** 1 or 2 */
#define PST_CONF_TAKE12          (PST_CONF_TAKE1 | PST_CONF_TAKE2)
/** 1 to 3 */
#define PST_CONF_TAKE123         (PST_CONF_TAKE12 | PST_CONF_TAKE3)
/** 2 or 3 */
#define PST_CONF_TAKE23          (PST_CONF_TAKE2 | PST_CONF_TAKE3)
#define PST_CONF_BLOCK           0x00000100    /**< directive opens a block */
#define PST_CONF_FLAG            0x00000200    /**< exactly one: on | off */
#define PST_CONF_1MORE           0x00000400 /**< one or more */
#define PST_CONF_2MORE           0x00000800 /**< two or more */

/** Which structure a directive writes into (pst_command_t.conf). */
#define PST_MAIN_CONF            0             /**< module's main conf */
#define PST_SRV_CONF             1             /**< module's server conf */

/** Unset sentinels for create_*_conf; merge with the macros below. */
#define PST_CONF_UNSET           -1        /**< pst_int_t */
#define PST_CONF_UNSET_UINT      ((pst_uint_t) -1) /**< pst_uint_t */
#define PST_CONF_UNSET_SIZE      ((size_t) -1) /**< size_t */
#define PST_CONF_UNSET_MSEC      ((pst_msec_t) -1) /**< pst_msec_t */
#define PST_CONF_UNSET_PTR       ((void *) -1) /**< pointers */

#define PST_CONF_OK              NULL      /**< a setter succeeded */
/** a setter failed (reported) */
#define PST_CONF_ERROR           ((char *) -1)

/** A directive setter returns PST_CONF_OK, PST_CONF_ERROR (after calling
 * pst_conf_error()) or a short phrase such as "is duplicate"; the core
 * turns the phrase into 'file:line: "name" is duplicate'. */
typedef char *(*pst_conf_set_pt)(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);

/** A directive of a module's table (pst_module_t.commands). */
struct pst_command_s {
    const char                  *name;           /**< NULL ends the table */
    unsigned                     type;       /**< PST_CONF_* context | arity */
    pst_conf_set_pt              set;            /**< the setter */
    unsigned                     conf;       /**< PST_MAIN_CONF, PST_SRV_CONF */
    size_t                       offset;     /**< offsetof(field) for slots */
    const void                  *post;       /**< slot specific (enum table) */
};

/** ends a table */
#define pst_null_command         { NULL, 0, NULL, 0, 0, NULL }

/** Enum slot table entry, NULL-name terminated. */
typedef struct {
    const char                  *name;           /**< NULL ends the table */
    pst_uint_t                   value;          /**< the value stored */
} pst_conf_enum_t;

/* Generic setters (pst_command_t.set): each writes the directive's
 * arguments into the field at cmd->offset of the module's conf.  Field
 * types: flag/num -> pst_int_t, size -> size_t, msec -> pst_msec_t,
 * str -> pst_str_t, enum -> pst_uint_t, str_array -> pst_array_t * (of
 * pst_str_t). */
/** Setter: "on" or "off" into a pst_int_t (1, 0). */
char *pst_conf_set_flag_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a decimal number into a pst_int_t. */
char *pst_conf_set_num_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a size ("10m", "512k") into a size_t. */
char *pst_conf_set_size_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a time ("5m", "250ms") into a pst_msec_t. */
char *pst_conf_set_msec_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a word into a pst_str_t (configuration pool). */
char *pst_conf_set_str_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a path made absolute against the prefix (-p). */
char *pst_conf_set_path_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: a word of the pst_conf_enum_t table in cmd->post into a
 * pst_uint_t. */
char *pst_conf_set_enum_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** Setter: appends the arguments to a pst_array_t * of pst_str_t
 * (created on first use). */
char *pst_conf_set_str_array_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);

/** A compiled regular expression (PCRE2), opaque (ABI 1.2 addition). */
typedef struct pst_regex_s  pst_regex_t;
/** Setter (ABI 1.2 addition): the argument compiled as a PCRE2 pattern
 * (UTF-8; write "(?i)" in it for caseless) into a pst_regex_t * (freed
 * with the configuration; JIT when the CPU allows); a bad pattern is a
 * file:line error with PCRE2's reason. */
char *pst_conf_set_regex_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** 1 when re matches s[0..n), 0 when not, -1 when the match failed (a
 * PCRE2 limit).  Any thread; it does not block. */
int pst_regex_match(const pst_regex_t *re, const u_char *s, size_t n);

/** The arguments of the directive being set: args[0] is its name.  A
 * directive takes at most 64 arguments after its name. */
pst_str_t *pst_conf_args(pst_conf_t *cf, pst_uint_t *nargs);
/** Report 'file:line: message' for the directive being parsed. */
void pst_conf_error(pst_conf_t *cf, const char *fmt, ...) PST_PRINTF(2, 3);
/** A warning with 'file:line'; the configuration still loads. */
void pst_conf_warn(pst_conf_t *cf, const char *fmt, ...) PST_PRINTF(2, 3);
/** Memory that lives as long as the configuration generation. */
pst_pool_t *pst_conf_pool(pst_conf_t *cf);
/** Resolve a path against the prefix (-p); result is NUL-terminated. */
int pst_conf_full_name(pst_conf_t *cf, pst_str_t *name);
/** Parse a size: "10m", "512k" as bytes; -1 when malformed. */
ssize_t pst_parse_size(const pst_str_t *s);
/** Parse a time: "5m", "30s", "1h30m", "250ms" as milliseconds; -1 when
 * malformed. */
int64_t pst_parse_msec(const pst_str_t *s);

/** Merge a pst_int_t: unset conf takes prev, or dflt when prev is unset too. */
#define pst_conf_merge_value(conf, prev, dflt)                               \
    do { if ((conf) == PST_CONF_UNSET) {                                     \
        (conf) = ((prev) == PST_CONF_UNSET) ? (dflt) : (prev); } } while (0)
/** Merge a pst_uint_t: unset conf takes prev, else dflt. */
#define pst_conf_merge_uint_value(conf, prev, dflt)                          \
    do { if ((conf) == PST_CONF_UNSET_UINT) {                                \
        (conf) = ((prev) == PST_CONF_UNSET_UINT) ? (dflt) : (prev); }        \
    } while (0)
/** Merge a size_t: unset conf takes prev, or dflt when prev is unset too. */
#define pst_conf_merge_size_value(conf, prev, dflt)                          \
    do { if ((conf) == PST_CONF_UNSET_SIZE) {                                \
        (conf) = ((prev) == PST_CONF_UNSET_SIZE) ? (dflt) : (prev); }        \
    } while (0)
/** Merge a pst_msec_t: unset conf takes prev, else dflt. */
#define pst_conf_merge_msec_value(conf, prev, dflt)                          \
    do { if ((conf) == PST_CONF_UNSET_MSEC) {                                \
        (conf) = ((prev) == PST_CONF_UNSET_MSEC) ? (dflt) : (prev); }        \
    } while (0)
/** Merge a pointer: unset conf takes prev, or dflt when prev is unset too. */
#define pst_conf_merge_ptr_value(conf, prev, dflt)                           \
    do { if ((conf) == PST_CONF_UNSET_PTR) {                                 \
        (conf) = ((prev) == PST_CONF_UNSET_PTR) ? (dflt) : (prev); }         \
    } while (0)
/** Merge a pst_str_t: unset conf takes prev, or dflt when prev is unset too. */
#define pst_conf_merge_str_value(conf, prev, dflt)                           \
    do { if ((conf).data == NULL) {                                          \
        if ((prev).data != NULL) { (conf) = (prev); }                        \
        else { (conf).len = sizeof(dflt) - 1;                                \
               (conf).data = (u_char *) (dflt); } } } while (0)


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup memory Memory
 * @{ */

/** Pool allocation; memory is freed when the pool is destroyed (session,
 * transaction or configuration lifetime).  NULL on failure.  Pools are
 * not thread-safe: only the thread that owns one uses it. */
void *pst_palloc(pst_pool_t *pool, size_t size);
/** pst_palloc(), the memory zeroed. */
void *pst_pcalloc(pst_pool_t *pool, size_t size);
/** A NUL-terminated copy of s in the pool; NULL on failure. */
u_char *pst_pstrdup(pst_pool_t *pool, const pst_str_t *s);
/** A pool cleanup handler. */
typedef void (*pst_cleanup_pt)(void *data);
/** Run handler(data) when the pool is destroyed.  PST_OK or PST_ERROR. */
int pst_pool_cleanup_add(pst_pool_t *pool, pst_cleanup_pt handler,
    void *data);

/** A growable array of fixed-size elements in a pool. */
typedef struct {
    void                        *elts;           /**< the elements */
    pst_uint_t                   nelts;          /**< how many */
    size_t                       size;           /**< one element's size */
    pst_uint_t                   nalloc;         /**< room for */
    pst_pool_t                  *pool;           /**< where it grows */
} pst_array_t;

/** An array of room for n elements of size bytes; NULL on failure. */
pst_array_t *pst_array_create(pst_pool_t *p, pst_uint_t n, size_t size);
/** The address of a new element at the end (the array grows in its
 * pool); NULL when out of memory. */
void *pst_array_push(pst_array_t *a);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup log Logging
 * @{ */

#define PST_LOG_EMERG            1         /**< the system is unusable */
#define PST_LOG_ALERT            2         /**< act now */
#define PST_LOG_CRIT             3         /**< critical */
#define PST_LOG_ERR              4         /**< an error */
#define PST_LOG_WARN             5         /**< a warning */
#define PST_LOG_NOTICE           6         /**< normal but significant */
#define PST_LOG_INFO             7         /**< informational */
#define PST_LOG_DEBUG            8         /**< debugging */

/** Log to the process's error log.  err != 0 appends strerror(err). */
void pst_log(int level, int err, const char *fmt, ...) PST_PRINTF(3, 4);
/** The same, with the session's context appended (id, client). */
void pst_log_session(pst_session_t *s, int level, const char *fmt, ...)
    PST_PRINTF(3, 4);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup hooks SMTP phases, hooks and verdicts
 * @{ */

/** The SMTP phases a hook runs in (docs/PLUGINS.md, "Phases and
 * verdicts"). */
typedef enum {
    PST_PHASE_CONNECT = 0,   /**< after accept, before the greeting */
    PST_PHASE_HELO,          /**< EHLO/HELO argument known */
    PST_PHASE_AUTH,          /**< credentials to verify (auth backends) */
    PST_PHASE_MAIL,          /**< MAIL FROM parsed */
    PST_PHASE_RCPT,          /**< each RCPT TO parsed */
    PST_PHASE_DATA,          /**< DATA/first BDAT, before 354 */
    PST_PHASE_MESSAGE,       /**< end of data: the whole message readable */
    PST_PHASE_QUEUE,         /**< just before the store commits */
    PST_PHASE_DELIVER,       /**< reserved (the relay uses its own table) */
    PST_PHASE_DISCONNECT,    /**< session ends (verdict ignored) */
    PST_PHASE_COMMITTED,     /**< ABI 1.2: the message is durable (verdict
                                ignored; pst_tx_id() is its queue ID) */
    PST_PHASE_UNKNOWN,       /**< ABI 1.2: a command the server does not
                                know (pst_session_unknown()) */
    PST_PHASE_MAX
} pst_phase_e;

/** What a hook answers: one meaning per verdict in every phase
 * (docs/PLUGINS.md, "Phases and verdicts"). */
typedef enum {
    PST_HOOK_CONTINUE = 0,   /**< no opinion: run the next handler */
    PST_HOOK_ACCEPT,         /**< accept now, skip the remaining handlers */
    PST_HOOK_REJECT,         /**< permanent failure (5xx) */
    PST_HOOK_TEMPFAIL,       /**< temporary failure (4xx) */
    PST_HOOK_DISCONNECT,     /**< 421 and close the session */
    PST_HOOK_PENDING,        /**< answer later with pst_hook_resume() */
    PST_HOOK_DISCARD,        /**< ABI 1.2: answer 250, store nothing */
    PST_HOOK_HOLD            /**< ABI 1.2: store the message on hold */
} pst_verdict_e;

/**
 * A hook handler.  conf is the module's server configuration for the
 * session's server block.  The call object is valid only until the
 * handler returns; to answer later, take a token with pst_call_defer(),
 * return PST_HOOK_PENDING and call pst_hook_resume(token, ...) exactly
 * once from an event, timer, DNS or thread-completion callback.
 */
typedef pst_verdict_e (*pst_hook_pt)(pst_call_t *call, void *conf);

/** A hook of a module's table (pst_module_t.hooks). */
typedef struct {
    pst_phase_e                  phase;          /**< when it runs */
    pst_hook_pt                  handler;        /**< what runs */
    int                          priority;   /**< lower runs first; 0 */
} pst_hook_t;

/** ends a hook table */
#define pst_null_hook            { PST_PHASE_MAX, NULL, 0 }

/** The session of a call (it lives until the session ends). */
pst_session_t *pst_call_session(pst_call_t *call);
/** The phase a call runs in. */
pst_phase_e pst_call_phase(pst_call_t *call);
/** Set the reply used when the verdict is REJECT, TEMPFAIL or DISCONNECT
 * (or a custom 2xx text for ACCEPT at MAIL and RCPT).  code 0 keeps the
 * default code; ecode is an RFC 3463 enhanced code such as "5.7.1" or
 * NULL.  The reply always fits the verdict: a code of another class
 * (REJECT 5xx, TEMPFAIL 4xx, DISCONNECT 421), or an enhanced code that
 * is malformed or of another class than the code, gives way to the
 * phase's default; control characters in the text become spaces. */
void pst_call_reply(pst_call_t *call, int code, const char *ecode,
    const char *fmt, ...) PST_PRINTF(4, 5);
/** Take a resume token before returning PST_HOOK_PENDING. */
uint64_t pst_call_defer(pst_call_t *call);
/** Finish a pending call.  Returns PST_OK, or PST_DECLINED when the token
 * is stale and the core ignores the completion: the session is gone
 * (logged at debug: clients hang up), the module's timeout gave the call
 * up (info), or it was already resumed (a warning). */
int pst_hook_resume(uint64_t token, pst_verdict_e verdict, int code,
    const char *ecode, const char *fmt, ...) PST_PRINTF(5, 6);
/** The session behind a token, or NULL when it is gone.  Use it only to
 * read facts for a pending call. */
pst_session_t *pst_hook_session(uint64_t token);

/** The recipient a RCPT hook is about (same as the last recipient), as
 * `local@domain`: angle brackets and a source route removed, the domain
 * lowercased (ASCII), a quoted local part as the client wrote it
 * (`"no\reply"@example.test` keeps its quotes and backslashes, so a
 * prefix check on this string can be fooled by quoting: use
 * pst_call_rcpt_local(), ABI 1.2).  `<Postmaster>` without a domain is
 * "Postmaster".  Valid for the rest of the transaction; NULL outside
 * PST_PHASE_RCPT. */
const pst_str_t *pst_call_rcpt(pst_call_t *call);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup session Session and transaction facts
 * Valid during the session; in a worker's event loop (a hook, or its
 * pending call); none of them blocks.
 * @{ */

/** The session's number, as in the log's session=. */
uint64_t pst_session_id(pst_session_t *s);
/** The client's address (after PROXY or XCLIENT: the proxied client). */
const struct sockaddr *pst_session_client_sockaddr(pst_session_t *s);
/** The same address as text, "192.0.2.1". */
const pst_str_t *pst_session_client_addr(pst_session_t *s);
/** Verified reverse name, or NULL when unknown / not looked up. */
const pst_str_t *pst_session_client_name(pst_session_t *s);
/** Our host name for the session's server block. */
const pst_str_t *pst_session_server_name(pst_session_t *s);
/** The HELO/EHLO argument, NULL if none. */
const pst_str_t *pst_session_helo(pst_session_t *s);
/** 1 after EHLO. */
int pst_session_esmtp(pst_session_t *s);
/** Authenticated identity, or NULL. */
const pst_str_t *pst_session_auth_id(pst_session_t *s);
/** 1 when the session is encrypted.  The TLS facts below are NULL when
 * it is not. */
int pst_session_tls(pst_session_t *s);
/** The TLS version, "TLSv1.3". */
const char *pst_session_tls_version(pst_session_t *s);
/** The cipher's name. */
const char *pst_session_tls_cipher(pst_session_t *s);
/** The client certificate's subject, NULL without one. */
const pst_str_t *pst_session_tls_peer_subject(pst_session_t *s);
/** The client certificate's SHA-256 in lower-case hex. */
const pst_str_t *pst_session_tls_peer_fingerprint(pst_session_t *s);
/** 1 when the listener is a submission listener. */
int pst_session_submission(pst_session_t *s);
/** 1 when the client sent data before the greeting (early talker). */
int pst_session_early_talker(pst_session_t *s);
/** 1 when the client sent commands ahead of replies it must wait for
 * (pipelining without the extension, or past EHLO, DATA, QUIT...). */
int pst_session_bad_pipelining(pst_session_t *s);
/** Session memory (freed when the session ends). */
pst_pool_t *pst_session_pool(pst_session_t *s);
/** Per-module, per-session slot for module state (index = any small int
 * chosen by the core, keyed by module); NULL until set. */
void *pst_session_get_ctx(pst_session_t *s, const pst_module_t *m);
/** Set that slot (put v in session memory). */
void pst_session_set_ctx(pst_session_t *s, const pst_module_t *m, void *v);
/** Per-module, per-transaction slot (ABI 1.2 addition): NULL until set,
 * and again after RSET or the end of the transaction (put v in
 * transaction memory). */
void *pst_tx_get_ctx(pst_session_t *s, const pst_module_t *m);
/** Set that slot; nothing outside a transaction. */
void pst_tx_set_ctx(pst_session_t *s, const pst_module_t *m, void *v);

/** @name Notes (ABI 1.2 addition)
 * A map of short strings where modules leave results for each other
 * (a score, a flag): a DNSBL hook notes "dnsbl.listed", a later hook or
 * another module reads it.  Keys: 1 to 64 characters of [a-z0-9._-];
 * values: up to 1,000 bytes, copied.  A session note lives as long as
 * the session; a transaction note until RSET or the end of the
 * transaction. @{ */
#define PST_NOTE_SESSION         0  /**< for the session */
#define PST_NOTE_TX              1  /**< for the transaction */
/** Set (or replace) a note: PST_OK; PST_ERROR for a bad key or value,
 * PST_NOTE_TX outside a transaction, or no memory. */
int pst_note_set(pst_session_t *s, int scope, const char *key,
    const char *value);
/** A note's value: the transaction's, else the session's; NULL when
 * neither has one.  Valid until it is set again or its scope ends. */
const char *pst_note(pst_session_t *s, const char *key);
/** @} */

/* Transaction (MAIL .. end of data).  NULL / 0 outside a transaction. */
/** The transaction's queue ID. */
const pst_str_t *pst_tx_id(pst_session_t *s);
/** Reverse path without `<>`; empty string for the null sender.  The
 * same form as pst_call_rcpt() (a quoted local part kept as sent);
 * pst_tx_sender_local() and pst_tx_sender_domain() (ABI 1.2) give its
 * parts. */
const pst_str_t *pst_tx_sender(pst_session_t *s);
/** The number of accepted recipients so far. */
pst_uint_t pst_tx_rcpt_count(pst_session_t *s);
/** The i-th accepted recipient (0 first), in the form of
 * pst_call_rcpt(); NULL out of range. */
const pst_str_t *pst_tx_rcpt(pst_session_t *s, pst_uint_t i);
/** Bytes of message stored so far (after dot-unstuffing). */
off_t pst_tx_size(pst_session_t *s);
/** Transaction memory (freed at RSET / end of transaction). */
pst_pool_t *pst_tx_pool(pst_session_t *s);

/** Message access, PST_PHASE_MESSAGE and PST_PHASE_QUEUE only.
 * Header section: iterate i = 0.. until it returns PST_DONE.  name and
 * value point into transaction memory; value keeps folding (CRLF SP). */
int pst_msg_header(pst_session_t *s, pst_uint_t i, pst_str_t *name,
    pst_str_t *value);
/** Read message bytes as stored (with our Received: header first). */
ssize_t pst_msg_read(pst_session_t *s, off_t offset, u_char *buf,
    size_t len);
/** Add a header field to the message (any phase of a transaction;
 * value up to 999 bytes, CR and LF become spaces).  It is kept beside
 * the stored message and written out below the message's trace block
 * (the Received: and Return-Path: fields at its top, ours first: RFC
 * 5321 4.4) and above its other fields, in the order of the calls.
 * pst_msg_insert_header() puts a field at a chosen position. */
int pst_msg_add_header(pst_session_t *s, const char *name,
    const char *fmt, ...) PST_PRINTF(3, 4);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup shm Shared memory between the processes of one server
 *
 * A zone is created while the configuration is read (in a directive
 * setter or init_main_conf) and mapped into every worker.  It keeps its
 * contents over a reload when name and size stay the same; is_new tells
 * the module to initialise it.  The lock is a robust process-shared
 * mutex: a worker dying while it holds the lock does not block the
 * others.  Keep critical sections short: no I/O inside.
 * @{ */
typedef struct pst_shm_s         pst_shm_t;   /**< a shared zone */

/** Create (or find again after a reload) a zone of size bytes, while
 * the configuration is read; NULL on failure. */
pst_shm_t *pst_shm_add(pst_conf_t *cf, const char *name, size_t size);
/** The zone's memory, mapped at the same address in every process. */
void *pst_shm_addr(pst_shm_t *z);
/** The zone's size. */
size_t pst_shm_size(pst_shm_t *z);
/** 1 when the zone is new: initialise it (in init_main_conf). */
int pst_shm_is_new(pst_shm_t *z);
/** Take the zone's robust process-shared mutex (waits). */
void pst_shm_lock(pst_shm_t *z);
/** Release it. */
void pst_shm_unlock(pst_shm_t *z);

/** Metrics (an addition within ABI 1.2): a store tells how many messages
 * one fsync batch made durable (postern_group_commit_messages).  Safe
 * from any thread: an atomic add into the shared counters. */
void pst_metrics_group_commit(unsigned n);
/** Index (0 .. 63) of this process among the server's live processes;
 * lets a module keep per-process columns in a zone. */
int pst_proc_slot(void);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup events Events, timers and asynchronous DNS for modules
 * @{ */

/** A timer's handler. */
typedef void (*pst_timer_pt)(void *data);
/** One-shot timer in the current worker; NULL on failure.  The core
 * frees the timer once its handler has run: cancel it only before
 * that, never from its handler or after. */
pst_timer_t *pst_timer_add(pst_msec_t delay, pst_timer_pt handler,
    void *data);
/** Stop a timer that has not fired (it is freed). */
void pst_timer_cancel(pst_timer_t *t);
/** Current cached time in milliseconds (monotonic). */
pst_msec_t pst_current_msec(void);
/** Current cached wall-clock time, seconds since the epoch (an
 * addition within ABI 1.2): time() as the loop last read it, for what
 * outlives a process (a file of timestamps); libpostern-test's fake
 * clock moves it with pst_current_msec(). */
time_t pst_current_time(void);

/** An fd watch's handler. */
typedef void (*pst_fd_pt)(int fd, void *data);
/** Watch a file descriptor (readable) in the worker's event loop: for
 * eventfds, pipes to helper threads or processes.  PST_OK / PST_ERROR.
 * The fd stays yours. */
int pst_fd_watch(int fd, pst_fd_pt handler, void *data);
/** End either kind of watch (pst_fd_watch(), pst_fd_watch_events());
 * call it before you close fd.  PST_OK / PST_ERROR. */
int pst_fd_unwatch(int fd);

/** DNS types (RFC 1035 numbers). */
#define PST_DNS_A                1         /**< IPv4 address */
#define PST_DNS_PTR              12        /**< reverse name */
#define PST_DNS_MX               15        /**< mail exchanger */
#define PST_DNS_TXT              16        /**< text */
#define PST_DNS_AAAA             28        /**< IPv6 address */
#define PST_DNS_TLSA             52        /**< DANE */

/** How a lookup ended. */
typedef enum {
    PST_DNS_OK = 0,          /**< answer (possibly empty: NODATA) */
    PST_DNS_NXDOMAIN,
    PST_DNS_SERVFAIL,        /**< lookup failed: temporary */
    PST_DNS_TIMEOUT,
    PST_DNS_NO_RESOLVER      /**< DNS not available in this process */
} pst_dns_status_e;

/** A DNS answer, as a lookup's handler gets it. */
typedef struct {
    pst_dns_status_e             status;         /**< how it ended */
    int                          secure;   /**< DNSSEC validated */
    int                          bogus;    /**< DNSSEC validation failed */
    int                          ttl;            /**< seconds */
    pst_uint_t                   count;    /**< number of records */
    const pst_str_t             *rdata;    /**< raw RDATA of each record */
    const char                  *qname;          /**< the name asked */
    int                          qtype;          /**< the type asked */
} pst_dns_answer_t;

/** The answer and its memory are valid during the callback only. */
typedef void (*pst_dns_pt)(void *data, const pst_dns_answer_t *answer);
/** Start a lookup; the callback runs later from the event loop (never
 * from inside this call).  NULL on failure. */
pst_dns_query_t *pst_dns_resolve(const char *name, int type,
    pst_msec_t timeout, pst_dns_pt handler, void *data);
/** Cancel a lookup whose callback has not run: it will not run.  The
 * query is freed after its callback, so never cancel it then. */
void pst_dns_cancel(pst_dns_query_t *q);
/** RDATA decoders.  Return PST_OK or PST_ERROR on malformed data. */
int pst_dns_rr_addr(const pst_dns_answer_t *a, pst_uint_t i,
    char *text, size_t size);                     /**< A / AAAA to text */
int pst_dns_rr_name(const pst_dns_answer_t *a, pst_uint_t i, size_t skip,
    char *text, size_t size);   /**< PTR (skip 0), MX exchange (skip 2) */
/** The preference of the i-th MX record; -1 when malformed. */
int pst_dns_rr_mx_pref(const pst_dns_answer_t *a, pst_uint_t i);
/** TXT: the character-strings concatenated. */
int pst_dns_rr_txt(const pst_dns_answer_t *a, pst_uint_t i,
    char *text, size_t size);
/** Build the reverse name (x.y.z.w.in-addr.arpa / ip6.arpa) of an
 * address, optionally under a zone (DNSBL): "w.z.y.x.zone". */
int pst_dns_reverse_name(const struct sockaddr *sa, const char *zone,
    char *name, size_t size);

/* The addresses of a host (an addition within ABI 1.2): see
 * pst_dns_resolve_addrs(). */
typedef struct pst_dns_addrs_s  pst_dns_addrs_t;  /**< a host lookup */
/** The handler of pst_dns_resolve_addrs(). */
typedef void (*pst_dns_addrs_pt)(void *data, pst_dns_status_e status,
    int secure, const struct sockaddr_storage *addrs, pst_uint_t n);
/**
 * The addresses of a host (an addition within ABI 1.2): its AAAA and A
 * records, looked up at once (family AF_UNSPEC; AF_INET or AF_INET6 for
 * one only), or an address literal ("192.0.2.1", "2001:db8::1", with
 * or without brackets) without DNS.  The handler runs once, later, from
 * the event loop: status PST_DNS_OK with n >= 1 addresses (IPv6 first,
 * port 0; secure when every answer was DNSSEC-validated); PST_DNS_OK
 * with n == 0 when the name has no address; NXDOMAIN; SERVFAIL or
 * TIMEOUT when no lookup gave an address and one failed.  addrs is
 * valid during the call only.  NULL on failure (then no call).
 */
pst_dns_addrs_t *pst_dns_resolve_addrs(const char *name, int family,
    pst_msec_t timeout, pst_dns_addrs_pt handler, void *data);
/** Cancel before the handler ran: it will not run. */
void pst_dns_addrs_cancel(pst_dns_addrs_t *q);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup store Storage backends
 * One store per server block; store_spool is the default.
 * @{ */

/**
 * The core streams every accepted message into a store:
 *   open     at DATA / first BDAT: prepare to receive; return handle
 *   write    message bytes as they arrive (short, bounded disk writes)
 *   commit   make the message and its envelope durable; may complete
 *            later: return PST_AGAIN and call pst_store_done(token, ...)
 *   abort    discard everything (client gone, rejected, timeout)
 *   read     read back stored bytes for MESSAGE/QUEUE hooks
 */
typedef struct {
    /** At DATA / first BDAT: prepare to receive; a handle. */
    void *(*open)(pst_session_t *s, void *conf);
    /** Message bytes as they arrive. */
    int (*write)(void *handle, const u_char *data, size_t len);
    /** Make message and envelope durable (PST_AGAIN: later). */
    int (*commit)(void *handle, uint64_t token);
    /** Discard everything. */
    void (*abort)(void *handle);
    /** Read back stored bytes. */
    ssize_t (*read)(void *handle, off_t offset, u_char *buf, size_t len);
} pst_store_ops_t;

/** Completion of an asynchronous commit: rc is PST_OK when durable. */
void pst_store_done(uint64_t token, int rc);

/** Envelope of the message being committed, serialised in the spool
 * format (docs/SPOOL.md): for stores that keep the envelope beside the
 * message.  Allocated in the transaction pool. */
int pst_tx_envelope(pst_session_t *s, pst_str_t *out);

/** Spool directory (spool_dir directive), absolute, NUL-terminated. */
const pst_str_t *pst_spool_dir(void);

/** A queue file (docs/SPOOL.md, format 3) is one file per message:
 *   "POSTERN-SPOOL 3 `<20-digit message length>` `<20-digit envelope
 *   length>`\n" (PST_SPOOL_HEADER_LEN bytes), the message, the envelope.
 * pst_spool_header() writes that header into buf (at least
 * PST_SPOOL_HEADER_LEN bytes); pst_spool_parse_header() reads one back
 * (PST_OK, or PST_ERROR when it is not a format 2 or 3 header). */
#define PST_SPOOL_HEADER_LEN     58        /**< a queue file's header */
/** Write a queue file's header into buf (PST_SPOOL_HEADER_LEN bytes). */
void pst_spool_header(u_char *buf, off_t message_len, size_t envelope_len);
/** Read a queue file's header back: PST_OK, or PST_ERROR when buf does
 * not start with a format 2 or 3 header. */
int pst_spool_parse_header(const u_char *buf, size_t len, off_t *message_len,
    size_t *envelope_len);
/** This worker's own directory for messages being received
 * (SPOOL/tmp/PID): the master empties and removes it when the worker
 * exits, whatever the reason, so nothing half-received outlives it. */
const pst_str_t *pst_spool_tmp_dir(void);
/** The spool's layout belongs to the core: committed message ID lives
 * in SPOOL/queue/XY/ID (XY: the ID's last two characters).
 * pst_spool_queue_name() writes "XY/ID" into buf (at least 22 bytes);
 * PST_OK or PST_ERROR (not a queue ID).  pst_spool_queue_rename() moves
 * a complete, synced file there (renameat(from_dirfd, from, queue_fd,
 * "XY/ID"), creating queue/XY durably the first time); 0 or an errno.
 * The caller then fsyncs queue/XY. */
int pst_spool_queue_name(char *buf, size_t size, const char *id);
/** Move a complete, synced file into queue/XY/ID (see
 * pst_spool_queue_name()); 0 or an errno.  Blocks: not on the loop. */
int pst_spool_queue_rename(int from_dirfd, const char *from, int queue_fd,
    const char *id);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup descriptor The module descriptor
 * @{ */

/** The kind of process init_process() runs in. */
typedef enum {
    PST_PROC_MASTER = 0,
    PST_PROC_WORKER,
    PST_PROC_QUEUE,
    PST_PROC_SINGLE
} pst_proc_e;

/** The descriptor a module exports as postern_module (PST_EXPORT,
 * PST_MODULE_HEADER); every pointer may be NULL but the name. */
struct pst_module_s {
    uint32_t                     magic;        /**< POSTERN_MODULE_MAGIC */
    uint16_t                     abi_major;    /**< POSTERN_ABI_MAJOR */
    uint16_t                     abi_minor;    /**< POSTERN_ABI_MINOR */
    uint32_t                     size;         /**< sizeof(pst_module_t) */
    const char                  *name;         /**< also its on/off switch */
    const char                  *version;      /**< shown by postern -V */
    const char                  *description;  /**< one line */

    const pst_command_t         *commands;     /**< pst_null_command ends */

    /** The main configuration's structure (unset values), or NULL. */
    void *(*create_main_conf)(pst_conf_t *cf);
    /** After the whole configuration is read: defaults, checks. */
    char *(*init_main_conf)(pst_conf_t *cf, void *conf);
    /** A server block's structure (unset values), or NULL. */
    void *(*create_srv_conf)(pst_conf_t *cf);
    /** Fill conf's unset values from prev (the smtp block's). */
    char *(*merge_srv_conf)(pst_conf_t *cf, void *prev, void *conf);

    /** After each configuration is read, in the master.  PST_OK/ERROR. */
    int (*init_module)(pst_cycle_t *cycle, void *main_conf);
    /** In each child after privileges are dropped. */
    int (*init_process)(pst_cycle_t *cycle, pst_proc_e type,
        void *main_conf);
    /** In each child at its exit. */
    void (*exit_process)(pst_cycle_t *cycle, void *main_conf);

    const pst_hook_t            *hooks;        /**< pst_null_hook ends */
    const pst_store_ops_t       *store;        /**< NULL unless a store */

    /* ABI 1.2 */
    const pst_router_t          *router;       /**< NULL unless a router */
    /** Queue-side events (see "ABI 1.2: queue-side events" below): in
     * the queue process, synchronously, in module load order; must not
     * block; ev is valid during the call only.  NULL: none. */
    void (*queue_event)(pst_qevent_t *ev, void *main_conf);
};

/** Fill magic, ABI and size in a designated initializer:
 *   PST_EXPORT const pst_module_t postern_module = {
 *       PST_MODULE_HEADER, .name = "hello", ... };           */
#define PST_MODULE_HEADER                                                    \
    .magic = POSTERN_MODULE_MAGIC, .abi_major = POSTERN_ABI_MAJOR,           \
    .abi_minor = POSTERN_ABI_MINOR, .size = sizeof(pst_module_t)

/** The one symbol a module exports. */
#define POSTERN_MODULE_SYMBOL    "postern_module" /**< its name */

/** Main configuration of a loaded module in the current cycle, or NULL. */
void *pst_module_main_conf(const pst_module_t *m);
/** Server configuration of a module for a session's server block. */
void *pst_module_srv_conf(pst_session_t *s, const pst_module_t *m);

/** ASCII case-insensitive comparison of n bytes: <0, 0, >0. */
int pst_strncasecmp(const u_char *a, const u_char *b, size_t n);
/** Constant-time comparison: 0 when equal. */
int pst_memeq_const(const void *a, const void *b, size_t n);

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi11_conf ABI 1.1: configuration position and address ranges
 * @{ */

/** File and line of the directive being parsed (the included file when
 * the directive comes from an include), for modules that keep the
 * origin of a rule to name it in their logs.  The file name lives as
 * long as the configuration generation. */
const char *pst_conf_position(pst_conf_t *cf, pst_uint_t *line);

/** An address range "192.0.2.0/24", "2001:db8::/32" or a single address
 * (all bits).  An IPv4 range also matches IPv4-mapped IPv6 clients. */
typedef struct {
    int                          family;     /**< AF_INET or AF_INET6 */
    u_char                       addr[16];   /**< host bits cleared */
    int                          bits;           /**< prefix length */
} pst_cidr_t;

/** Parse ADDRESS or ADDRESS/BITS.  PST_OK, or PST_ERROR when malformed
 * (a prefix longer than the family allows included). */
int pst_cidr_parse(const pst_str_t *text, pst_cidr_t *cidr);
/** 1 when the address is inside the range, else 0. */
int pst_cidr_match(const pst_cidr_t *cidr, const struct sockaddr *sa);
/** A directive "NAME RANGE ...;" appending to a pst_array_t * of
 * pst_cidr_t at cmd->offset (PST_CONF_UNSET_PTR or NULL before), and the
 * test of an address against such a list (0 for NULL or unset). */
char *pst_conf_set_cidr_array_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** 1 when the address is in one of the list's ranges (0 for NULL or
 * unset). */
int pst_cidr_match_list(const pst_array_t *list, const struct sockaddr *sa);

/** The size of the longest domain, without the NUL. */
#define PST_DOMAIN_MAX           255
/** Domains are compared in one form: ASCII lowercased; internationalised
 * domains (U-labels, and A-labels checked the same way) as IDNA2008
 * A-labels after UTS #46 mapping; address literals re-printed canonically
 * ("[192.0.2.1]", "[ipv6:2001:db8::1]").  Writes the form, NUL-terminated,
 * into out (size at least PST_DOMAIN_MAX + 1) and returns its length, or
 * -1: an invalid domain or literal, or a non-ASCII domain in a build
 * without IDNA support (pst_domain_idna() is then 0). */
int pst_domain_normalize(const u_char *d, size_t n, u_char *out,
    size_t size);
/** 1 when this build converts internationalised domains (libidn2). */
int pst_domain_idna(void);
/** Setter (ABI 1.2 addition): appends each argument, a domain
 * ("example.com") or ".example.com" (its subdomains, not itself), in
 * the form of pst_domain_normalize(), to a pst_array_t * of pst_str_t;
 * anything else is a file:line error. */
char *pst_conf_set_domain_array_slot(pst_conf_t *cf,
    const pst_command_t *cmd, void *conf);
/** 1 when domain (any case; U- or A-labels) is in such a list. */
int pst_domain_listed(const pst_array_t *list, const u_char *domain,
    size_t len);


/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi11_auth ABI 1.1: TLS facts and SMTP AUTH backends
 * @{ */

/** 1 when the client presented a certificate that verified against
 * tls_client_certificate. */
int pst_session_tls_peer_verified(pst_session_t *s);
/** The SNI name the client asked for, or NULL. */
const pst_str_t *pst_session_tls_sni(pst_session_t *s);

/** @name Auth backends
 * Auth backends are hooks on PST_PHASE_AUTH.  The core runs the SASL
 * wire protocol (AUTH, 334 challenges, base64, "*" to cancel, limits)
 * and calls the chain once per step:
 *
 *   PLAIN and LOGIN are decoded by the core: the hook reads
 *   pst_auth_authcid()/pst_auth_authzid()/pst_auth_password() and
 *   answers ACCEPT (235), REJECT (535 5.7.8), TEMPFAIL (454 4.7.0),
 *   CONTINUE (not my user: the next backend; nobody: 535), or PENDING.
 *
 *   Any other mechanism listed in auth_mechanisms is passed through:
 *   the hook reads pst_auth_response() (the client's decoded data; NULL
 *   when it sent none) and pst_auth_step() (0 first); to send a 334
 *   challenge it calls pst_auth_challenge() and answers ACCEPT: the
 *   next response goes to the same hook alone.  ACCEPT without a
 *   challenge ends the exchange successfully; set the identity with
 *   pst_auth_set_user() first.  A hook that does not know the
 *   mechanism or the user answers CONTINUE (nobody: 535).
 *
 * The functions take the session so that they also work after
 * PST_HOOK_PENDING (pst_hook_session(token)) until pst_hook_resume().
 * The password is valid during the step only and is wiped after it: a
 * module that verifies it later copies it, wipes its copy, and never
 * logs it.  Strings are not NUL-terminated.  NULL outside an exchange.
 */
/**@{*/
/** The mechanism: "PLAIN", "LOGIN" or the one asked for. */
const pst_str_t *pst_auth_mechanism(pst_session_t *s);
/** The step of the exchange, 0 first. */
pst_uint_t pst_auth_step(pst_session_t *s);
/** PLAIN/LOGIN: the user name. */
const pst_str_t *pst_auth_authcid(pst_session_t *s);
/** PLAIN: the identity asked for, or empty. */
const pst_str_t *pst_auth_authzid(pst_session_t *s);
/** PLAIN/LOGIN: the password, wiped when the step ends: copy it, wipe
 * your copy, never log it. */
const pst_str_t *pst_auth_password(pst_session_t *s);
/** Another mechanism: the client's decoded data, NULL when none. */
const pst_str_t *pst_auth_response(pst_session_t *s);
/** Next challenge (raw bytes; the core base64-encodes).  PST_OK. */
int pst_auth_challenge(pst_session_t *s, const u_char *data, size_t len);
/** The authenticated identity (default: the authcid).  PST_OK. */
int pst_auth_set_user(pst_session_t *s, const u_char *name, size_t len);
/**@}*/

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi12_receive ABI 1.2: receive side
 * @{ */

/** @name DISCARD and HOLD
 * DISCARD and HOLD (pst_verdict_e) are transaction verdicts, answered
 * in MAIL, RCPT, DATA, MESSAGE or QUEUE; in any other phase the core
 * logs them and takes them as CONTINUE.
 *   DISCARD  the client is told the message was accepted (250, "queued
 *            as ID") but nothing is stored; at RCPT it also accepts the
 *            recipient.  Later handlers of the phase do not run, nor do
 *            MESSAGE and QUEUE hooks once a transaction is discarded.
 *   HOLD     the transaction is marked: the message is stored on hold
 *            (envelope "hold 1"), and an operator releases it.  The
 *            chain goes on as after CONTINUE: HOLD never accepts a
 *            recipient by itself.
 * The marks of the transaction, for stores and later hooks: */
/**@{*/
/** 1 when a HOLD verdict marked the transaction. */
int pst_tx_hold(pst_session_t *s);
/** 1 when a DISCARD verdict marked the transaction. */
int pst_tx_discard(pst_session_t *s);
/**@}*/

/** @name Unknown commands
 * PST_PHASE_UNKNOWN runs for a command line whose verb the server does
 * not know (a milter's SMFIC_UNKNOWN), when some module hooks it.  The
 * client gets "500 5.5.2 Error: command not recognized" after CONTINUE
 * or ACCEPT; REJECT and TEMPFAIL answer with the module's reply (5xx,
 * 4xx) instead.  Either counts as an error of the session. */
/**@{*/
/** The unknown command's line as the client sent it, without CRLF,
 * during PST_PHASE_UNKNOWN (else NULL). */
const pst_str_t *pst_session_unknown(pst_session_t *s);
/**@}*/

/** The ESMTP parameters of the MAIL or RCPT command being run, as the
 * client sent them ("SIZE=1024 BODY=8BITMIME", space-separated, already
 * checked), during PST_PHASE_MAIL and PST_PHASE_RCPT; NULL when it gave
 * none or in any other phase. */
const pst_str_t *pst_call_params(pst_call_t *call);

/** @name Addresses in parts
 * Addresses in parts, for checks on the local part or the domain (an
 * addition within ABI 1.2).  local: without its quoting (RFC 5321
 * 4.1.2: the quotes removed, each backslash escape undone), so that
 * `"noreply"@x`, `"no\reply"@x` and `noreply@x` all give noreply; its case
 * as sent.  domain: lowercased (ASCII; an address literal with its
 * brackets, "[192.0.2.1]").  A bare `<Postmaster>` gives "Postmaster" and
 * an empty domain, the null sender two empty strings.  NUL-terminated,
 * in transaction memory (made on the first call, then the same), valid
 * for the rest of the transaction; NULL outside their phase or when out
 * of memory.
 * Event loop thread only; they never block.
 *   pst_call_rcpt_local/_domain   the recipient of a RCPT hook
 *                                 (PST_PHASE_RCPT), as pst_call_rcpt()
 *   pst_tx_sender_local/_domain   the sender, while there is a
 *                                 transaction (MAIL hooks onwards;
 *                                 after pst_tx_set_sender(), the new one)
 */
/**@{*/
/** The local part of a RCPT hook's recipient, unquoted. */
const pst_str_t *pst_call_rcpt_local(pst_call_t *call);
/** The domain of a RCPT hook's recipient, lowercased. */
const pst_str_t *pst_call_rcpt_domain(pst_call_t *call);
/** The local part of the transaction's sender, unquoted. */
const pst_str_t *pst_tx_sender_local(pst_session_t *s);
/** The domain of the transaction's sender, lowercased. */
const pst_str_t *pst_tx_sender_domain(pst_session_t *s);
/**@}*/

/* PST_PHASE_COMMITTED runs once the store has made the message durable
 * (after its commit reported PST_OK; even when the client has gone), with
 * the transaction still readable: pst_tx_id() is the queue ID.  Its
 * verdict is ignored and PENDING is taken as CONTINUE: start what must
 * follow (a notification) with a timer or an fd watch.
 */

#define PST_FD_READ              0x01  /**< readable */
#define PST_FD_WRITE             0x02  /**< writable */
/** The handler of pst_fd_watch_events(): events says which are ready. */
typedef void (*pst_fd_ev_pt)(int fd, unsigned events, void *data);
/** fd watches with a direction.  events: PST_FD_READ, PST_FD_WRITE or
 * both; level triggered; the handler learns which are ready.
 * pst_fd_watch_events() adds the watch or changes the events of an
 * existing one (for example: wait for PST_FD_WRITE only while there is
 * something to write); pst_fd_unwatch() removes either kind. */
int pst_fd_watch_events(int fd, unsigned events, pst_fd_ev_pt handler,
    void *data);

/**
 * A per-call data slot and a cancel callback for pending calls.  Set them
 * in the handler before returning PST_HOOK_PENDING.  The data is read
 * back with pst_call_data() in the handler and pst_hook_data(token)
 * until the call is resumed (NULL for a stale token).  The cancel
 * callback runs, once, when the core gives up a pending call that was
 * not resumed: its session ends, or the module's timeout fires.  It
 * runs from the event loop; the token is already stale, so the module
 * only stops its work (cancel a DNS query, forget a request) and frees
 * what the data points at.  It does not run after pst_hook_resume()
 * was accepted, nor for a call answered without PENDING.
 */
typedef void (*pst_call_cancel_pt)(void *data);
/** Keep a pointer with the call (before returning PST_HOOK_PENDING). */
void pst_call_set_data(pst_call_t *call, void *data);
/** That pointer, in the handler. */
void *pst_call_data(pst_call_t *call);
/** That pointer from the token until the resume; NULL when stale. */
void *pst_hook_data(uint64_t token);
/** handler(data) runs once if the core gives the pending call up. */
void pst_call_set_cancel(pst_call_t *call, pst_call_cancel_pt handler);

/**
 * Configuration text that goes out on the wire (a greeting, a reply text
 * set in a directive): at most max bytes (PST_CONF_TEXT_MAX keeps a reply
 * line with a 255-byte host name before it within RFC 5321's 512
 * octets), and printable ASCII or TAB only (RFC 5321 textstring): CR, LF
 * and other control characters would let a configuration inject reply
 * lines.  The check reports 'file:line: "name": ...' and returns
 * PST_ERROR; the slot setter is pst_conf_set_str_slot() with this check.
 */
#define PST_CONF_TEXT_MAX        250 /**< wire text from the configuration */
/** Refuse wire text that is too long or not printable ASCII/TAB:
 * PST_OK, or PST_ERROR after reporting 'file:line: "name": ...'. */
int pst_conf_check_text(pst_conf_t *cf, const char *name,
    const pst_str_t *text, size_t max);
/** Setter: pst_conf_set_str_slot() with pst_conf_check_text() (at most
 * PST_CONF_TEXT_MAX bytes). */
char *pst_conf_set_text_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);

/** @name Message edits
 * Message edits (ABI 1.2), for MESSAGE and QUEUE hooks -- also while
 * their call is pending (the session from pst_hook_session()).  The
 * envelope edits change the transaction at once; header and body edits
 * are applied by the core after the QUEUE phase and before the commit,
 * by rewriting the stored message once: the envelope and the stored
 * message both reflect every edit, and a failure to rewrite answers 451
 * and stores nothing.  Each call returns PST_OK or PST_ERROR (outside
 * those phases, a malformed address, parameter or field name).
 *
 * Addresses are without angle brackets; params are ESMTP parameters as
 * on a MAIL or RCPT line ("NOTIFY=NEVER", empty or NULL for none),
 * checked as the client's are.  The new sender's parameters, when
 * given, replace BODY, RET and ENVID.  pst_tx_del_rcpt() removes every
 * recipient with that address (no case) and returns PST_DECLINED when
 * there was none.
 *
 * Header fields are counted in the stored message, our Received: first:
 * pst_msg_insert_header() puts a field at position pos (0: the first;
 * PST_MSG_HEADER_END or any larger number: after the last);
 * pst_msg_change_header() replaces the index-th (from 1) field of that
 * name, or removes it when value is NULL (a missing field is added when
 * changed, ignored when removed).  value is exactly what follows the
 * colon (give the space: " text"); line breaks in it become CRLF and a
 * TAB so that it stays one folded field.  pst_msg_replace_body()
 * appends to a new body (CRLF lines) that replaces the old one; the
 * first call starts it.
 */
/**@{*/
/** pst_msg_insert_header()'s position after the last field. */
#define PST_MSG_HEADER_END       ((pst_uint_t) -1)
/** A new sender (and its parameters). */
int pst_tx_set_sender(pst_session_t *s, const pst_str_t *addr,
    const pst_str_t *params);
/** Add a recipient. */
int pst_tx_add_rcpt(pst_session_t *s, const pst_str_t *addr,
    const pst_str_t *params);
/** Remove every recipient of that address; PST_DECLINED when none. */
int pst_tx_del_rcpt(pst_session_t *s, const pst_str_t *addr);
/** Insert a field at position pos of the stored header (0: first). */
int pst_msg_insert_header(pst_session_t *s, pst_uint_t pos,
    const pst_str_t *name, const pst_str_t *value);
/** Replace the index-th (from 1) field called name; value NULL: remove
 * it. */
int pst_msg_change_header(pst_session_t *s, const pst_str_t *name,
    pst_uint_t index, const pst_str_t *value);
/** Append to the new body that replaces the old one. */
int pst_msg_replace_body(pst_session_t *s, const u_char *data, size_t len);
/**@}*/

/**
 * A path the workers (the `user` account) must be able to use besides
 * the spool, e.g. a file a module loads and saves from the workers.
 * postern -t, the start and a reload check it as the spool is checked
 * (pst_access.c: in a child with the workers' credentials), with
 * access(2) and mode (R_OK, W_OK, X_OK); "what" names it in the error.
 * A path that does not exist yet is checked by its directory, which
 * must then let the workers create it (W_OK | X_OK); a directory that
 * does not exist either is left to the module.  Call it from a
 * directive's handler.  PST_OK or PST_ERROR (no memory).
 */
int pst_conf_worker_path(pst_conf_t *cf, const pst_str_t *path, int mode,
    const char *what);
/** Or'ed into pst_conf_worker_path()'s mode: the path belongs to another
 * daemon (e.g. its unix socket): when it does not exist yet, only its
 * directory must let the workers in (X_OK), not create it. */
#define PST_PATH_PEER  0x1000

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi12_route ABI 1.2: routing (next hops of a destination domain)
 * @{ */

/** Local delivery (an addition within ABI 1.2): the message of one
 * attempt as a local-delivery function reads it (pst_local_*() below),
 * and the outcome it gives for one recipient. */
typedef struct pst_local_msg_s  pst_local_msg_t;

/** The outcome of a local delivery for one recipient. */
typedef struct {
    int                          code;      /**< 2xx delivered, 5xx failed,
                                               anything else deferred */
    char                         ecode[16]; /**< "2.0.0", "4.2.2" or "" */
    char                         text[400]; /**< one line, no CR/LF */
} pst_local_result_t;

/** Deliver m to its recipient rcpt (0 .. pst_local_nrcpts(m) - 1) and
 * fill out; PST_OK, or PST_ERROR when out could not be filled (the
 * recipient is then deferred 451 4.3.0). */
typedef int (*pst_local_pt)(const pst_local_msg_t *m, pst_uint_t rcpt,
    void *local_conf, pst_local_result_t *out);

/**
 * The queue process asks the router of the first loaded module that has
 * one (modules/relay_mx.c: MX records) where a domain's mail goes.  A
 * route is a verdict and, for ACCEPT, the hops in the order to try
 * them; every address of a host is a hop of its own.
 */
typedef struct {
    pst_str_t                    name;      /**< MX host, or the domain
                                               itself (implicit MX) */
    int                          pref;      /**< MX preference; 0 implicit */
    struct sockaddr_storage      addr;      /**< port set to the route's */
    socklen_t                    addrlen;        /**< addr's length */
    unsigned                     secure:1;  /**< every answer on the way
                                               was DNSSEC-secure */
} pst_nexthop_t;

/** A router's answer for a destination domain. */
typedef struct {
    pst_verdict_e                verdict;   /**< ACCEPT: hops found;
                                               REJECT: fail the recipients
                                               (null MX, NXDOMAIN, loop);
                                               TEMPFAIL: defer (SERVFAIL,
                                               timeout) */
    int                          code;      /**< for REJECT / TEMPFAIL */
    const char                  *ecode;     /**< "5.1.10" */
    const char                  *text;      /**< one line, no CR/LF */
    const pst_nexthop_t         *hops;      /**< in the order to try them */
    pst_uint_t                   nhops;          /**< how many */
    in_port_t                    port;      /**< host order; 25 */
    /* An addition within ABI 1.2: how to speak to the hops.  A router
     * that leaves these zero gets SMTP under the relay_tls policy. */
    unsigned                     flags;     /**< PST_ROUTE_LMTP */
    int                          tls;       /**< PST_ROUTE_TLS_*; DEFAULT:
                                               relay_tls */
    const char                  *tls_name;  /**< name to verify and send
                                               (SNI); NULL: the hop's */
    const char                  *auth_user; /**< AUTH with these (never
                                               before TLS unless tls is
                                               NONE), or NULL */
    const char                  *auth_pass;      /**< with auth_user */
    /* An addition within ABI 1.2: local delivery.  A route with local
     * set is not spoken to over SMTP: hops, flags, tls and auth are
     * ignored, and the core calls local(m, i, local_conf, out) once for
     * each recipient i of the attempt, on one of the queue process's
     * I/O threads (blocking I/O is allowed there, nothing else of the
     * core but the pst_local_*() functions and the ones marked "any"
     * in docs/PLUGINS.md).  local_name is what the log's relay= says
     * ("maildir"; NULL: "local").  See "ABI 1.2: local delivery". */
    pst_local_pt                 local;          /**< see below */
    void                        *local_conf;     /**< local's argument */
    const char                  *local_name;     /**< for relay= in the log */
} pst_route_t;

#define PST_ROUTE_LMTP           0x01      /**< LHLO, a reply per recipient
                                              after the data (RFC 2033) */

#define PST_ROUTE_TLS_DEFAULT    0         /**< relay_tls */
#define PST_ROUTE_TLS_NONE       1         /**< never STARTTLS */
#define PST_ROUTE_TLS_MAY        2         /**< when offered, unverified */
#define PST_ROUTE_TLS_ENCRYPT    3         /**< required, unverified */
#define PST_ROUTE_TLS_VERIFY     4         /**< required, chain and name */
#define PST_ROUTE_TLS_IMPLICIT   5         /**< TLS from the first byte */
#define PST_ROUTE_TLS_DANE       6         /**< DANE (RFC 7672) when the
                                              hop's TLSA records are
                                              secure, else may */
#define PST_ROUTE_TLS_DANE_ONLY  7         /**< DANE or no delivery */

/** The route and everything it points to are valid during the call
 * only: copy what you keep. */
typedef void (*pst_route_done_pt)(void *data, const pst_route_t *route);

/** A router (pst_module_t.router): next hops of a domain. */
struct pst_router_s {
    /** Find the next hops of a destination domain (ASCII, A-labels; an
     * address literal "[192.0.2.1]" is a route of its own).  Calls done
     * exactly once, never from inside resolve(); returns a handle for
     * cancel (NULL only on immediate failure, then done is not called).
     * main_conf is the module's main configuration. */
    void *(*resolve)(const pst_str_t *domain, void *main_conf,
                     pst_route_done_pt done, void *data);
    /** Forget a resolve() whose done has not run: it never will. */
    void  (*cancel)(void *handle);
};

/**
 * Host lists (an addition within ABI 1.2): the routers of fixed next
 * hops (relay_smarthost, deliver_lmtp) write their hosts as
 *   "host", "host:port", "[addr]", "[addr]:port", "addr",
 *   "[ipv6:2001:db8::1]:port", "unix:/path/to/socket"
 * and route through them in the order written, every address of a
 * host a hop of its own (IPv6 first).  A hop that is one of our own
 * listeners is left out (a loop); when none is left the route fails
 * 5.4.6, and when no host has an address it is deferred (4.4.3).
 */
typedef struct pst_hostlist_s  pst_hostlist_t;

/** Parse n host strings (port: the default); NULL with a message in err
 * (size errlen) on a bad one.  Allocated with malloc: free with
 * pst_hostlist_free() (a module does that from a pool cleanup). */
pst_hostlist_t *pst_hostlist_parse(const pst_str_t *hosts, pst_uint_t n,
    in_port_t port, char *err, size_t errlen);
/** Free a host list (NULL is fine). */
void pst_hostlist_free(void *hl);
/** A directive's slot setter (pst_command_t.set): its arguments parsed
 * into a pst_hostlist_t * at cmd->offset (freed with the configuration;
 * a second occurrence is an error); cmd->post points to the default
 * port (an in_port_t). */
char *pst_conf_set_hostlist_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
/** The route of hl -- or, when nexthop is not empty, of that one host
 * (port: its default) -- as a router's resolve() returns it:
 * route_tmpl's flags, tls, tls_name and auth copied into the route given
 * to done (exactly once, later); a handle for pst_hostlist_cancel(), or
 * NULL (then done is not called).  timeout: each DNS lookup. */
void *pst_hostlist_resolve(const pst_hostlist_t *hl,
    const pst_str_t *nexthop, in_port_t port, const pst_route_t *route_tmpl,
    pst_msec_t timeout, pst_route_done_pt done, void *data);
/** Forget a pst_hostlist_resolve() whose done has not run; usable as
 * a router's cancel. */
void pst_hostlist_cancel(void *handle);

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi12_local ABI 1.2: local delivery
 * @{ */

/** @name The message of a local delivery
 * What a local-delivery function (pst_route_t.local) may read of its
 * message, on the I/O thread that runs it; m and every string are
 * valid during the call only.  The queue ID, the sender ("" for the
 * null sender), the number of recipients of the attempt and the
 * address of recipient i (no angle brackets; NULL out of range).
 */
/**@{*/
/** The message's queue ID. */
const pst_str_t *pst_local_id(const pst_local_msg_t *m);
/** Its sender, "" for the null sender. */
const pst_str_t *pst_local_sender(const pst_local_msg_t *m);
/** The number of recipients of the attempt. */
pst_uint_t pst_local_nrcpts(const pst_local_msg_t *m);
/** The address of recipient i; NULL out of range. */
const pst_str_t *pst_local_rcpt(const pst_local_msg_t *m, pst_uint_t i);
/**@}*/
/** The message's size as SMTP would send it (CRLF lines, the header
 * lines the core prepends included, no dot-stuffing). */
off_t pst_local_size(const pst_local_msg_t *m);
/** Write the message as it is delivered to fd: the spool's text with the
 * prepended header lines (of the receiving hooks) placed below its
 * trace block, exactly as the SMTP client sends it; lf_only: every CRLF
 * written as LF (Maildir, mbox).  *written (may be NULL): the bytes
 * written.  PST_OK, or PST_ERROR with errno set (a write's: ENOSPC,
 * EDQUOT...; EIO when the queue file could not be read).  Blocks. */
int pst_local_copy(const pst_local_msg_t *m, int fd, int lf_only,
    off_t *written);

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi12_qevent ABI 1.2: queue-side events
 * @{ */

/**
 * What happens to queued mail, told to every module that has a
 * queue_event function (pst_module_t), in the queue process.  A hook may
 * change a deferred recipient's next try (DEFERRED) or send a
 * recipient's mail to another destination (ROUTE).
 */
typedef enum {
    PST_QEV_ENQUEUED = 0,   /**< the engine took a message (committed, or
                               found at start) */
    PST_QEV_ROUTE,          /**< before a recipient's destination is chosen:
                               may set reroute */
    PST_QEV_RESOLVED,       /**< the destination's hops are known (or the
                               route failed: code and reply say why) */
    PST_QEV_CONNECTED,      /**< a connection to a hop is up */
    PST_QEV_DISCONNECTED,
    PST_QEV_BEFORE_SEND,    /**< a transaction is about to start */
    PST_QEV_DELIVERED,      /**< per recipient */
    PST_QEV_DEFERRED,       /**< per recipient: may change next_try */
    PST_QEV_FAILED,         /**< per recipient */
    PST_QEV_BOUNCE,         /**< a DSN about the message was injected
                               (reply: its queue ID) */
    PST_QEV_EXPIRED         /**< per recipient: max_queue_lifetime reached */
} pst_qevent_e;

#define PST_QEV_NO_RCPT  ((pst_uint_t) -1) /**< no recipient */

/** A queue-side event, as queue_event() gets it. */
struct pst_qevent_s {
    pst_qevent_e                 event;          /**< what happened */
    const pst_envelope_t        *env;       /**< NULL for RESOLVED,
                                               CONNECTED, DISCONNECTED */
    pst_uint_t                   rcpt;      /**< index in env->rcpts, or
                                               PST_QEV_NO_RCPT */
    const pst_str_t             *dest;      /**< destination (next-hop
                                               domain), or NULL */
    const char                  *remote;    /**< "host[addr]:port", or NULL */
    int                          code;      /**< reply code, or 0 */
    const char                  *reply;     /**< one line, or NULL */
    time_t                       next_try;  /**< DEFERRED: in/out; the
                                               engine clamps it to [now,
                                               expiry] */
    pst_str_t                    reroute;   /**< ROUTE: out; empty keeps the
                                               destination, else the one to
                                               use (domain or "[addr]"),
                                               copied by the engine */
};

/** @name What a module may read of the message
 * The envelope type is core internal: the queue ID, the sender (""
 * for the null sender) and the event's recipient address (no angle
 * brackets; NULL when the event has no recipient).  NULL for an event
 * without a message (RESOLVED, CONNECTED, DISCONNECTED).  The strings
 * live as long as ev. */
/**@{*/
/** The event's queue ID. */
const pst_str_t *pst_qevent_id(const pst_qevent_t *ev);
/** The message's sender, "" for the null sender. */
const pst_str_t *pst_qevent_sender(const pst_qevent_t *ev);
/** The event's recipient address; NULL when it has none. */
const pst_str_t *pst_qevent_rcpt(const pst_qevent_t *ev);
/**@}*/
/** The recipient's attempts as the engine has counted them (this one
 * included for DELIVERED, DEFERRED and FAILED); 0 without a recipient. */
unsigned pst_qevent_attempts(const pst_qevent_t *ev);
/** "enqueued", "route", ... "expired": the event's name, "unknown" for a
 * value this core does not know. */
const char *pst_qevent_name(pst_qevent_e event);
/** An addition within ABI 1.2: the message's header fields, for
 * ENQUEUED and ROUTE (the engine reads the header section, up to 64 KiB,
 * with the message, on its I/O threads: nothing blocks here).  Iterate
 * i = 0.. until it returns PST_DONE; PST_DECLINED for any other event.
 * The order is the delivered one: the trace block (our Received:
 * first), the fields receive-side hooks added (pst_msg_add_header()),
 * the message's other fields.  name without the colon, value after the
 * colon and its blanks, without the line ending (folding kept); both
 * live as long as ev. */
int pst_qevent_header(const pst_qevent_t *ev, pst_uint_t i, pst_str_t *name,
    pst_str_t *value);

/** @name A module's state kept with a queued message (ABI 1.2 addition)
 * One pointer per module and message, for what a module remembers
 * between the events of one message (a summary read at ENQUEUED for the
 * last event's report, a choice made at its first ROUTE).  Only in
 * queue_event(), for an event with a message (not RESOLVED, CONNECTED,
 * DISCONNECTED), in the queue process's loop; never blocks.  It lives
 * in that process's memory only, until the message leaves the queue
 * (removed once every recipient is final, after its BOUNCE events;
 * deleted; moved by a drain; gone from the spool), the queue process
 * stops (a stop, restart or reload: the next one tells ENQUEUED again
 * for every message it finds, so what is set at ENQUEUED comes back),
 * or the module replaces or clears it; then cleanup(v) runs once, on
 * the loop.  v is yours (malloc() and free, or configuration memory and
 * a NULL cleanup). */
/**@{*/
/** Module m's pointer for ev's message; NULL until set, or without a
 * message. */
void *pst_qevent_get_ctx(const pst_qevent_t *ev, const pst_module_t *m);
/** Keep v for ev's message (NULL: forget it; the cleanup of a value
 * replaced or forgotten runs at once).  PST_OK, or PST_ERROR (no
 * message, m not loaded, no memory): nothing kept, v is still yours. */
int pst_qevent_set_ctx(const pst_qevent_t *ev, const pst_module_t *m,
    void *v, pst_cleanup_pt cleanup);
/**@}*/

/** @name Loop detection
 * RFC 5321 5.1: a client must not deliver to itself.
 * pst_route_own_addr(): 1 when a connection to sa (address and port)
 * would reach this server: a listener bound to that address and port,
 * or a wildcard listener on that port and sa a local address (an
 * interface's, or loopback).  A destination on another port, or on a
 * loopback address nothing of ours is bound to, is not us.
 * pst_route_own_name(): 1 when name (case-insensitive, a trailing dot
 * ignored) is the hostname of one of our smtp server blocks.
 */
/**@{*/
/** 1 when a connection to sa would reach this server. */
int pst_route_own_addr(const struct sockaddr *sa);
/** 1 when name is the host name of one of our server blocks. */
int pst_route_own_name(const u_char *name, size_t len);
/**@}*/

/** @} */

/* ------------------------------------------------------------------ */
/** @defgroup abi12_redis ABI 1.2: Redis, the state several nodes share
 *
 * With redis_server (or redis_sentinel: the master Redis Sentinel
 * names) in the configuration, every process keeps one connection to
 * Redis on its event loop (hiredis's async API): commands are pipelined
 * on it, each with a timeout; a lost connection is made again with
 * back-off; AUTH, SELECT and the scripts registered with
 * pst_redis_script() are sent first each time.  Nothing here blocks.
 *
 * pst_redis_ready(): 1 when commands can be sent now.  When it is 0
 * (no Redis configured, connecting, no master known, down, too many
 * commands waiting) the senders below return NULL at once: take your
 * fallback.
 *
 * pst_redis_command() sends argv (binary-safe, argvlen each) and
 * pst_redis_eval() runs a registered script by EVALSHA (EVAL when Redis
 * answers NOSCRIPT), its nkeys first arguments being keys.  timeout 0
 * is redis_timeout.  The handler runs exactly once, later, from the
 * loop (never from inside the call), unless pst_redis_cancel() came
 * first: status PST_REDIS_OK with Redis's reply (an error reply is a
 * reply: PST_REDIS_ERROR_REPLY), PST_REDIS_TIMEOUT, or PST_REDIS_DOWN
 * (the connection went away first); reply is NULL unless OK, and valid
 * during the call only.  A command that timed out may still have run
 * in Redis.
 *
 * pst_redis_script() registers a Lua script while the configuration is
 * read (a module's init_main_conf or a directive's setter); the script
 * lives as long as that configuration.  NULL when out of memory.
 *
 * pst_redis_key() writes redis_key_prefix, kind, then each part after
 * a ':' into buf: bytes outside '!'..'~', and '%' and ':' inside a part,
 * as %XX, so keys are readable and parts cannot run into each other
 * ("postern:limit:msg:192.0.2.1").  The length, or -1 when it does not
 * fit (size includes the NUL).
 * @{
 */
#define PST_REDIS_KEY_MAX        1024   /**< a buffer for pst_redis_key() */

typedef struct pst_redis_cmd_s     pst_redis_cmd_t;    /**< a command */
typedef struct pst_redis_script_s  pst_redis_script_t; /**< a script */
typedef struct pst_redis_reply_s   pst_redis_reply_t;  /**< a reply */

/** How a command ended. */
typedef enum {
    PST_REDIS_OK = 0,
    PST_REDIS_TIMEOUT,
    PST_REDIS_DOWN
} pst_redis_status_e;

/** The type of a reply. */
typedef enum {
    PST_REDIS_NIL = 0,
    PST_REDIS_INTEGER,
    PST_REDIS_STRING,
    PST_REDIS_STATUS,              /**< "+OK" */
    PST_REDIS_ARRAY,
    PST_REDIS_ERROR_REPLY          /**< "-ERR ..." */
} pst_redis_type_e;

/** A command's handler. */
typedef void (*pst_redis_pt)(void *data, pst_redis_status_e status,
    const pst_redis_reply_t *reply);

/** 1 when a command can be sent now. */
int pst_redis_ready(void);
/** Send a command; NULL when Redis cannot take it now (the handler
 * never runs). */
pst_redis_cmd_t *pst_redis_command(pst_msec_t timeout, pst_redis_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen);
/** Register a Lua script while the configuration is read. */
pst_redis_script_t *pst_redis_script(pst_conf_t *cf, const char *lua);
/** Run a registered script; NULL as for pst_redis_command(). */
pst_redis_cmd_t *pst_redis_eval(const pst_redis_script_t *script,
    pst_msec_t timeout, pst_redis_pt handler, void *data, int nkeys,
    int argc, const char **argv, const size_t *argvlen);
/** The handler will not run; never after it ran. */
void pst_redis_cancel(pst_redis_cmd_t *cmd);
/** A key: redis_key_prefix, kind, then :part...; its length, or -1. */
ssize_t pst_redis_key(char *buf, size_t size, const char *kind,
    const pst_str_t *parts, pst_uint_t nparts);

/** @name Reading a reply
 * Valid during the handler only.  Strings are not NUL-terminated: use
 * the length. */
/**@{*/
/** The reply's type. */
pst_redis_type_e pst_redis_reply_type(const pst_redis_reply_t *r);
/** The value of an INTEGER, or of a STRING that is a decimal number;
 * PST_ERROR otherwise. */
int pst_redis_reply_integer(const pst_redis_reply_t *r, int64_t *value);
/** The bytes of a STRING, STATUS or ERROR_REPLY. */
int pst_redis_reply_string(const pst_redis_reply_t *r, pst_str_t *out);
/** The number of elements of an ARRAY. */
size_t pst_redis_reply_count(const pst_redis_reply_t *r);
/** The i-th element of an ARRAY, NULL past the end or for another
 * type. */
const pst_redis_reply_t *pst_redis_reply_element(const pst_redis_reply_t *r,
    size_t i);
/**@}*/

/** @} */

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* POSTERN_MODULE_H */
