/*
 * auth_file.c -- AUTH backend: users from a file, passwords checked
 * with crypt(3) on a small thread pool, SCRAM-SHA-256 (RFC 7677) for
 * users that have a SCRAM secret.
 *
 * The file (created with "postern passwd"), one user per line:
 *
 *   name:crypt-hash[:scram-secret]        # comments and blank lines ok
 *
 *   crypt-hash    anything libcrypt verifies: yescrypt ($y$), bcrypt
 *                 ($2b$), sha512-crypt ($6$)...; may be empty when a
 *                 SCRAM secret is given (PLAIN is then checked against
 *                 the secret)
 *   scram-secret  RFC 5803: SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY
 *                 (base64 fields)
 *
 * It is read with the configuration, so a reload (HUP) re-reads it and
 * a broken file keeps the running configuration.  A world-writable
 * file is refused, a world-readable one gets a warning.
 *
 * Hashing is slow on purpose (yescrypt takes about 100 ms): it never
 * runs on the event loop.  The hook copies what the job needs, returns
 * PENDING, and a worker thread answers through an eventfd that the
 * event loop watches (the pattern of store_spool.c).  Unknown users are
 * hashed too, against a dummy hash, so that timing does not tell
 * whether a name exists; they get CONTINUE (another backend may know
 * them).  SCRAM needs no slow work per step: it runs in the hook.
 *
 * Directives:
 *   auth_users_file PATH;                  smtp or server block
 *   auth_users_case_insensitive on|off;    smtp or server block
 *   auth_hash_threads N;                   top level (default 2)
 */

#define _GNU_SOURCE
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "postern_module.h"

#define AF_MAX_THREADS     16
#define AF_MAX_QUEUE       4096          /* pending jobs per worker */
#define AF_NAME_MAX        255
#define AF_PASS_MAX        1024
#define AF_SCRAM_KEY       32            /* SHA-256 */
#define AF_SCRAM_SALT_MAX  64
#define AF_NONCE_LEN       24

typedef struct {
    pst_str_t                    name;        /* as in the file */
    pst_str_t                    key;         /* lookup key */
    char                        *hash;        /* NUL-terminated or NULL */
    int                          scram;       /* has a SCRAM secret */
    uint32_t                     iter;
    u_char                       salt[AF_SCRAM_SALT_MAX];
    size_t                       salt_len;
    u_char                       stored[AF_SCRAM_KEY];
    u_char                       server[AF_SCRAM_KEY];
} af_user_t;

typedef struct {
    pst_str_t                    path;
    af_user_t                   *users;       /* sorted by key */
    pst_uint_t                   nusers;
    pst_int_t                    icase;
} af_table_t;

typedef struct {
    pst_str_t                    path;
    pst_int_t                    icase;
    af_table_t                  *table;
} af_conf_t;

typedef struct {
    pst_int_t                    threads;
} af_main_conf_t;

typedef struct af_job_s  af_job_t;

struct af_job_s {
    af_job_t                    *next;
    uint64_t                     token;
    const af_user_t             *user;        /* NULL: unknown user */
    int                          ok;
    size_t                       plen;
    char                         password[AF_PASS_MAX + 1];
};

/* SCRAM exchange state, in the session's memory */
typedef struct {
    const af_user_t             *user;
    pst_str_t                    first_bare;  /* client-first-bare */
    pst_str_t                    server_first;
    pst_str_t                    nonce;       /* client + server */
    pst_str_t                    gs2;         /* "n,," or "n,a=...," */
    int                          stage;       /* AF_SCRAM_* */
} af_scram_t;

#define AF_SCRAM_WAIT_FIRST   0   /* sent an empty challenge */
#define AF_SCRAM_SENT_FIRST   1   /* sent server-first */
#define AF_SCRAM_SENT_FINAL   2   /* sent server-final */

typedef struct {
    pthread_mutex_t              lock;
    pthread_cond_t               cond;
    af_job_t                    *pending;
    af_job_t                   **pending_tail;
    af_job_t                    *done;
    af_job_t                   **done_tail;
    pst_uint_t                   queued;
    int                          efd;
    int                          stop;
    int                          nthreads;
    char                         dummy[CRYPT_OUTPUT_SIZE];
    pthread_t                    threads[AF_MAX_THREADS];
} af_state_t;

static af_state_t  af = { .efd = -1 };


static void *af_create_main(pst_conf_t *cf);
static char *af_init_main(pst_conf_t *cf, void *conf);
static void *af_create_conf(pst_conf_t *cf);
static char *af_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static int af_init_process(pst_cycle_t *cycle, pst_proc_e type,
    void *conf);
static void af_exit_process(pst_cycle_t *cycle, void *conf);
static pst_verdict_e af_auth(pst_call_t *call, void *conf);
static pst_verdict_e af_scram(pst_call_t *call, af_conf_t *conf);

PST_EXPORT const pst_module_t  postern_module;


static const pst_command_t  af_commands[] = {
    { "auth_users_file", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_path_slot, PST_SRV_CONF, offsetof(af_conf_t, path),
      NULL },
    { "auth_users_case_insensitive", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF, offsetof(af_conf_t, icase),
      NULL },
    { "auth_hash_threads", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF,
      offsetof(af_main_conf_t, threads), NULL },
    pst_null_command
};

static const pst_hook_t  af_hooks[] = {
    { PST_PHASE_AUTH, af_auth, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "auth_file",
    .version = "1.0",
    .description = "AUTH against a users file (crypt(3), SCRAM-SHA-256)",
    .commands = af_commands,
    .create_main_conf = af_create_main,
    .init_main_conf = af_init_main,
    .create_srv_conf = af_create_conf,
    .merge_srv_conf = af_merge_conf,
    .init_process = af_init_process,
    .exit_process = af_exit_process,
    .hooks = af_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration and the users file                                    */

static void *
af_create_main(pst_conf_t *cf)
{
    af_main_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(af_main_conf_t));
    if (c != NULL) {
        c->threads = PST_CONF_UNSET;
    }
    return c;
}


static char *
af_init_main(pst_conf_t *cf, void *conf)
{
    af_main_conf_t  *c = conf;

    (void) cf;

    pst_conf_merge_value(c->threads, PST_CONF_UNSET, 2);
    if (c->threads < 1 || c->threads > AF_MAX_THREADS) {
        return "auth_hash_threads must be between 1 and 16";
    }
    return PST_CONF_OK;
}


static void *
af_create_conf(pst_conf_t *cf)
{
    af_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(af_conf_t));
    if (c != NULL) {
        c->icase = PST_CONF_UNSET;
    }
    return c;
}


static void
af_lower(u_char *dst, const u_char *src, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? src[i] | 0x20 : src[i];
    }
}


static int
af_cmp(const void *a, const void *b)
{
    const af_user_t  *x = a, *y = b;
    size_t            n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int               rc;

    rc = memcmp(x->key.data, y->key.data, n);
    if (rc != 0) {
        return rc;
    }
    return x->key.len < y->key.len ? -1 : (x->key.len > y->key.len);
}


static int
af_b64(pst_pool_t *pool, const char *p, size_t n, u_char *out,
    size_t size, size_t *len)
{
    u_char  *tmp;
    int      k;

    (void) pool;

    if (n == 0 || n % 4 != 0 || n / 4 * 3 > size + 2) {
        return PST_ERROR;
    }

    tmp = malloc(n / 4 * 3 + 1);
    if (tmp == NULL) {
        return PST_ERROR;
    }

    k = EVP_DecodeBlock(tmp, (const u_char *) p, (int) n);
    if (k < 0) {
        free(tmp);
        return PST_ERROR;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (n >= 1 && p[n - 1] == '=') {
        k--;
    }
    if (n >= 2 && p[n - 2] == '=') {
        k--;
    }
    if ((size_t) k > size) {
        free(tmp);
        return PST_ERROR;
    }

    memcpy(out, tmp, (size_t) k);
    free(tmp);
    *len = (size_t) k;
    return PST_OK;
}


/* RFC 5803: SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY */
static int
af_parse_scram(pst_pool_t *pool, af_user_t *u, char *p)
{
    char    *iter, *salt, *stored, *server, *end;
    size_t   n;
    long     it;

    if (strncmp(p, "SCRAM-SHA-256$", 14) != 0) {
        return PST_ERROR;
    }

    iter = p + 14;
    salt = strchr(iter, ':');
    stored = salt ? strchr(salt, '$') : NULL;
    server = stored ? strchr(stored, ':') : NULL;
    if (server == NULL) {
        return PST_ERROR;
    }
    *salt++ = '\0';
    *stored++ = '\0';
    *server++ = '\0';

    it = strtol(iter, &end, 10);
    if (*end != '\0' || it < 1 || it > 10000000) {
        return PST_ERROR;
    }
    u->iter = (uint32_t) it;

    if (af_b64(pool, salt, strlen(salt), u->salt, sizeof(u->salt),
               &u->salt_len) != PST_OK
        || af_b64(pool, stored, strlen(stored), u->stored, AF_SCRAM_KEY,
                  &n) != PST_OK || n != AF_SCRAM_KEY
        || af_b64(pool, server, strlen(server), u->server, AF_SCRAM_KEY,
                  &n) != PST_OK || n != AF_SCRAM_KEY)
    {
        return PST_ERROR;
    }

    u->scram = 1;
    return PST_OK;
}


static af_table_t *
af_load(pst_conf_t *cf, const pst_str_t *path, pst_int_t icase)
{
    pst_pool_t   *pool = pst_conf_pool(cf);
    af_table_t   *t;
    af_user_t    *u;
    struct stat   st;
    pst_uint_t    nalloc, line, i;
    char         *buf, *p, *eol, *colon, *hash, *scram;
    ssize_t       n;
    int           fd;

    fd = open((char *) path->data, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &st) == -1) {
        pst_conf_error(cf, "cannot open auth_users_file \"%s\": %s",
                       path->data, strerror(errno));
        if (fd != -1) {
            close(fd);
        }
        return NULL;
    }

    if (st.st_mode & S_IWOTH) {
        pst_conf_error(cf, "auth_users_file \"%s\" is world-writable:"
                       " anyone could add a user (chmod 640)", path->data);
        close(fd);
        return NULL;
    }
    if (st.st_mode & S_IROTH) {
        pst_conf_warn(cf, "auth_users_file \"%s\" is world-readable: any"
                      " local user can try to crack its hashes (chmod 640)",
                      path->data);
    }
    if (st.st_size > 64 * 1024 * 1024) {
        pst_conf_error(cf, "auth_users_file \"%s\" is too large",
                       path->data);
        close(fd);
        return NULL;
    }

    buf = pst_palloc(pool, (size_t) st.st_size + 1);
    t = pst_pcalloc(pool, sizeof(af_table_t));
    if (buf == NULL || t == NULL) {
        close(fd);
        return NULL;
    }

    n = read(fd, buf, (size_t) st.st_size);
    close(fd);
    if (n != (ssize_t) st.st_size) {
        pst_conf_error(cf, "cannot read auth_users_file \"%s\"",
                       path->data);
        return NULL;
    }
    buf[n] = '\0';

    t->path = *path;
    t->icase = icase;
    nalloc = 16;
    t->users = pst_palloc(pool, nalloc * sizeof(af_user_t));
    if (t->users == NULL) {
        return NULL;
    }

    for (p = buf, line = 1; *p != '\0'; p = eol, line++) {
        eol = strchr(p, '\n');
        if (eol != NULL) {
            *eol++ = '\0';
        } else {
            eol = p + strlen(p);
        }
        if (eol > p && eol[-1] == '\r') {
            eol[-1] = '\0';
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0' || *p == '#') {
            continue;
        }

        colon = strchr(p, ':');
        if (colon == NULL || colon == p || colon - p > AF_NAME_MAX) {
            pst_conf_error(cf, "%s:%lu: expected \"name:hash\"", path->data,
                           (unsigned long) line);
            return NULL;
        }
        *colon = '\0';
        hash = colon + 1;
        scram = strchr(hash, ':');
        if (scram != NULL) {
            *scram++ = '\0';
        }

        if (t->nusers == nalloc) {
            u = pst_palloc(pool, 2 * nalloc * sizeof(af_user_t));
            if (u == NULL) {
                return NULL;
            }
            memcpy(u, t->users, nalloc * sizeof(af_user_t));
            t->users = u;
            nalloc *= 2;
        }

        u = &t->users[t->nusers];
        memset(u, 0, sizeof(af_user_t));
        u->name.data = (u_char *) p;
        u->name.len = strlen(p);
        u->key.data = pst_palloc(pool, u->name.len);
        if (u->key.data == NULL) {
            return NULL;
        }
        u->key.len = u->name.len;
        if (icase) {
            af_lower(u->key.data, u->name.data, u->name.len);
        } else {
            memcpy(u->key.data, u->name.data, u->name.len);
        }
        u->hash = hash[0] ? hash : NULL;

        if (scram != NULL && scram[0] != '\0'
            && af_parse_scram(pool, u, scram) != PST_OK)
        {
            pst_conf_error(cf, "%s:%lu: invalid SCRAM-SHA-256 secret for"
                           " \"%s\"", path->data, (unsigned long) line, p);
            return NULL;
        }

        if (u->hash == NULL && !u->scram) {
            pst_conf_error(cf, "%s:%lu: no password hash for \"%s\"",
                           path->data, (unsigned long) line, p);
            return NULL;
        }

        if (u->hash != NULL && u->hash[0] != '$') {
            /* DES crypt or a clear text password by mistake */
            pst_conf_error(cf, "%s:%lu: \"%s\" has no modern crypt hash"
                           " (create it with \"postern passwd\")",
                           path->data, (unsigned long) line, p);
            return NULL;
        }

        t->nusers++;
    }

    qsort(t->users, t->nusers, sizeof(af_user_t), af_cmp);

    for (i = 1; i < t->nusers; i++) {
        if (af_cmp(&t->users[i - 1], &t->users[i]) == 0) {
            pst_conf_error(cf, "%s: user \"%.*s\" is listed twice%s",
                           path->data, (int) t->users[i].name.len,
                           t->users[i].name.data,
                           icase ? " (names are case-insensitive)" : "");
            return NULL;
        }
    }

    return t;
}


static char *
af_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    af_conf_t  *prev = parent, *conf = child;

    if (conf->path.data == NULL) {
        conf->path = prev->path;
    }
    pst_conf_merge_value(conf->icase, prev->icase, 0);

    if (conf->path.data == NULL) {
        return PST_CONF_OK;          /* this server has no users file */
    }

    /* the smtp level's table serves every server that inherits it */
    if (prev->table != NULL && prev->path.data == conf->path.data
        && prev->icase == conf->icase)
    {
        conf->table = prev->table;
        return PST_CONF_OK;
    }

    conf->table = af_load(cf, &conf->path, conf->icase);
    if (conf->table == NULL) {
        return PST_CONF_ERROR;
    }

    if (prev->path.data == conf->path.data && prev->icase == conf->icase) {
        prev->table = conf->table;
    }

    return PST_CONF_OK;
}


static const af_user_t *
af_find(const af_table_t *t, const pst_str_t *name)
{
    af_user_t  key;
    u_char     low[AF_NAME_MAX];

    if (name->len == 0 || name->len > AF_NAME_MAX) {
        return NULL;
    }

    if (t->icase) {
        af_lower(low, name->data, name->len);
        key.key.data = low;
    } else {
        key.key.data = name->data;
    }
    key.key.len = name->len;

    return bsearch(&key, t->users, t->nusers, sizeof(af_user_t), af_cmp);
}


/* ------------------------------------------------------------------ */
/* Hashing threads                                                     */

static void
af_scram_keys(const char *pass, size_t plen, const af_user_t *u,
    u_char stored[AF_SCRAM_KEY])
{
    u_char    salted[AF_SCRAM_KEY], ckey[AF_SCRAM_KEY];
    unsigned  len = AF_SCRAM_KEY;

    PKCS5_PBKDF2_HMAC(pass, (int) plen, u->salt, (int) u->salt_len,
                      (int) u->iter, EVP_sha256(), AF_SCRAM_KEY, salted);
    HMAC(EVP_sha256(), salted, AF_SCRAM_KEY, (u_char *) "Client Key", 10,
         ckey, &len);
    SHA256(ckey, AF_SCRAM_KEY, stored);
    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(ckey, sizeof(ckey));
}


static void
af_verify(af_job_t *j, struct crypt_data *cd)
{
    const af_user_t  *u = j->user;
    const char       *setting, *out;
    u_char            stored[AF_SCRAM_KEY];
    size_t            n;

    if (u != NULL && u->hash == NULL) {
        /* SCRAM-only user: PLAIN is checked against the secret */
        af_scram_keys(j->password, j->plen, u, stored);
        j->ok = pst_memeq_const(stored, u->stored, AF_SCRAM_KEY) == 0;
        explicit_bzero(stored, sizeof(stored));
        return;
    }

    /* an unknown user costs the same time as a known one */
    setting = u != NULL ? u->hash : af.dummy;
    out = crypt_rn(j->password, setting, cd, sizeof(*cd));
    n = strlen(setting);

    j->ok = u != NULL && out != NULL && out[0] != '*'
            && strlen(out) == n && pst_memeq_const(out, setting, n) == 0;

    explicit_bzero(cd, sizeof(*cd));
}


static void *
af_thread(void *arg)
{
    struct crypt_data  *cd;
    af_job_t           *j;
    uint64_t            one = 1;

    (void) arg;

    cd = calloc(1, sizeof(struct crypt_data));

    pthread_mutex_lock(&af.lock);

    for ( ;; ) {
        while (af.pending == NULL && !af.stop) {
            pthread_cond_wait(&af.cond, &af.lock);
        }
        if (af.pending == NULL) {
            break;
        }

        j = af.pending;
        af.pending = j->next;
        if (af.pending == NULL) {
            af.pending_tail = &af.pending;
        }
        pthread_mutex_unlock(&af.lock);

        if (cd != NULL) {
            af_verify(j, cd);
        } else {
            j->ok = 0;
        }
        explicit_bzero(j->password, sizeof(j->password));

        pthread_mutex_lock(&af.lock);
        j->next = NULL;
        *af.done_tail = j;
        af.done_tail = &j->next;
        pthread_mutex_unlock(&af.lock);

        (void) !write(af.efd, &one, sizeof(one));

        pthread_mutex_lock(&af.lock);
    }

    pthread_mutex_unlock(&af.lock);
    free(cd);
    return NULL;
}


/* Results, in the event loop. */
static void
af_done_handler(int fd, void *data)
{
    af_job_t       *list, *j, *next;
    pst_session_t  *s;
    uint64_t        n;

    (void) data;

    (void) !read(fd, &n, sizeof(n));

    pthread_mutex_lock(&af.lock);
    list = af.done;
    af.done = NULL;
    af.done_tail = &af.done;
    pthread_mutex_unlock(&af.lock);

    for (j = list; j != NULL; j = next) {
        next = j->next;
        af.queued--;

        s = pst_hook_session(j->token);
        if (s == NULL) {
            /* the client left, or the hook timed out: nobody waits */
            free(j);
            continue;
        }

        if (j->ok) {
            (void) pst_auth_set_user(s, j->user->name.data,
                                     j->user->name.len);
            (void) pst_hook_resume(j->token, PST_HOOK_ACCEPT, 0, NULL,
                                   NULL);
        } else if (j->user != NULL) {
            (void) pst_hook_resume(j->token, PST_HOOK_REJECT, 0, NULL,
                                   "wrong password");
        } else {
            /* not ours: another backend may know the name */
            (void) pst_hook_resume(j->token, PST_HOOK_CONTINUE, 0, NULL,
                                   NULL);
        }

        free(j);
    }
}


static int
af_init_process(pst_cycle_t *cycle, pst_proc_e type, void *conf)
{
    af_main_conf_t  *c = conf;
    char             setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char      *h;
    int              i;

    (void) cycle;

    if (type != PST_PROC_WORKER && type != PST_PROC_SINGLE) {
        return PST_OK;
    }

    /* the dummy hash has the default method's cost */
    cd = calloc(1, sizeof(struct crypt_data));
    if (cd == NULL
        || crypt_gensalt_rn(NULL, 0, NULL, 0, setting, sizeof(setting))
           == NULL
        || (h = crypt_rn("postern-dummy", setting, cd, sizeof(*cd)))
           == NULL)
    {
        free(cd);
        pst_log(PST_LOG_EMERG, errno, "auth_file: libcrypt failed");
        return PST_ERROR;
    }
    snprintf(af.dummy, sizeof(af.dummy), "%s", h);
    free(cd);

    af.pending = NULL;
    af.pending_tail = &af.pending;
    af.done = NULL;
    af.done_tail = &af.done;
    af.queued = 0;
    af.stop = 0;

    af.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (af.efd == -1 || pst_fd_watch(af.efd, af_done_handler, NULL)
                        != PST_OK)
    {
        pst_log(PST_LOG_EMERG, errno, "auth_file: eventfd failed");
        return PST_ERROR;
    }

    pthread_mutex_init(&af.lock, NULL);
    pthread_cond_init(&af.cond, NULL);

    for (i = 0; i < c->threads; i++) {
        if (pthread_create(&af.threads[i], NULL, af_thread, NULL) != 0) {
            pst_log(PST_LOG_EMERG, errno, "auth_file: cannot start a"
                    " thread");
            return PST_ERROR;
        }
        af.nthreads++;
    }

    return PST_OK;
}


static void
af_exit_process(pst_cycle_t *cycle, void *conf)
{
    int  i;

    (void) cycle;
    (void) conf;

    if (af.nthreads == 0) {
        return;
    }

    pthread_mutex_lock(&af.lock);
    af.stop = 1;
    pthread_cond_broadcast(&af.cond);
    pthread_mutex_unlock(&af.lock);

    for (i = 0; i < af.nthreads; i++) {
        pthread_join(af.threads[i], NULL);
    }
    af.nthreads = 0;
}


/* ------------------------------------------------------------------ */
/* SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding          */

static size_t
af_b64_encode(u_char *dst, const u_char *src, size_t n)
{
    return (size_t) EVP_EncodeBlock(dst, src, (int) n);
}


/* "n=user": saslname with =2C and =3D decoded */
static int
af_scram_name(const u_char *p, size_t n, u_char *out, size_t *len)
{
    size_t  i, k = 0;

    for (i = 0; i < n; i++) {
        if (k >= AF_NAME_MAX) {
            return PST_ERROR;
        }
        if (p[i] == '=') {
            if (n - i < 3) {
                return PST_ERROR;
            }
            if (p[i + 1] == '2' && p[i + 2] == 'C') {
                out[k++] = ',';
            } else if (p[i + 1] == '3' && p[i + 2] == 'D') {
                out[k++] = '=';
            } else {
                return PST_ERROR;
            }
            i += 2;
            continue;
        }
        if (p[i] == ',' || p[i] == '\0') {
            return PST_ERROR;
        }
        out[k++] = p[i];
    }

    *len = k;
    return k > 0 ? PST_OK : PST_ERROR;
}


static pst_verdict_e
af_scram_first(pst_call_t *call, af_conf_t *conf, const pst_str_t *r)
{
    pst_session_t  *s = pst_call_session(call);
    pst_pool_t     *pool = pst_session_pool(s);
    af_scram_t     *sc;
    pst_str_t       name;
    u_char         *p, *end, *bare, *cnonce, *q;
    u_char          user[AF_NAME_MAX], snonce[AF_NONCE_LEN];
    u_char          snonce64[AF_NONCE_LEN * 2], salt64[AF_SCRAM_SALT_MAX * 2];
    size_t          ulen, n, cnlen;

    if (r == NULL || r->len < 8) {
        /* SCRAM has no empty first message */
        return PST_HOOK_REJECT;
    }

    p = r->data;
    end = p + r->len;

    /* gs2-header: "n," or "y," (no channel binding); "p=" is refused */
    if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',') {
        pst_call_reply(call, 0, NULL, "SCRAM: channel binding is not"
                       " supported");
        return PST_HOOK_REJECT;
    }
    q = memchr(p + 2, ',', (size_t) (end - p - 2));
    if (q == NULL) {
        return PST_HOOK_REJECT;
    }
    bare = q + 1;

    if (end - bare < 5 || bare[0] != 'n' || bare[1] != '=') {
        return PST_HOOK_REJECT;
    }
    q = memchr(bare, ',', (size_t) (end - bare));
    if (q == NULL || af_scram_name(bare + 2, (size_t) (q - bare - 2), user,
                                   &ulen) != PST_OK)
    {
        return PST_HOOK_REJECT;
    }
    if (end - q < 4 || q[1] != 'r' || q[2] != '=') {
        return PST_HOOK_REJECT;
    }
    cnonce = q + 3;
    q = memchr(cnonce, ',', (size_t) (end - cnonce));
    cnlen = (size_t) ((q ? q : end) - cnonce);
    if (cnlen == 0 || cnlen > 256) {
        return PST_HOOK_REJECT;
    }

    name.data = user;
    name.len = ulen;

    sc = pst_pcalloc(pool, sizeof(af_scram_t));
    if (sc == NULL) {
        return PST_HOOK_TEMPFAIL;
    }

    sc->user = af_find(conf->table, &name);
    if (sc->user == NULL || !sc->user->scram) {
        /* not ours: another backend may have a secret for it */
        pst_session_set_ctx(s, &postern_module, NULL);
        return PST_HOOK_CONTINUE;
    }
    sc->stage = AF_SCRAM_SENT_FIRST;

    if (RAND_bytes(snonce, sizeof(snonce)) != 1) {
        return PST_HOOK_TEMPFAIL;
    }
    n = af_b64_encode(snonce64, snonce, sizeof(snonce));

    sc->gs2.len = (size_t) (bare - p);
    sc->gs2.data = pst_pstrdup(pool, &(pst_str_t) { sc->gs2.len, p });
    sc->first_bare.len = (size_t) (end - bare);
    sc->first_bare.data = pst_pstrdup(pool, &(pst_str_t)
                                      { sc->first_bare.len, bare });
    sc->nonce.len = cnlen + n;
    sc->nonce.data = pst_palloc(pool, sc->nonce.len + 1);
    sc->server_first.data = pst_palloc(pool, 64 + cnlen + n
                                             + sizeof(salt64));
    if (sc->gs2.data == NULL || sc->first_bare.data == NULL
        || sc->nonce.data == NULL || sc->server_first.data == NULL)
    {
        return PST_HOOK_TEMPFAIL;
    }
    memcpy(sc->nonce.data, cnonce, cnlen);
    memcpy(sc->nonce.data + cnlen, snonce64, n);

    af_b64_encode(salt64, sc->user->salt, sc->user->salt_len);
    sc->server_first.len = (size_t) sprintf((char *) sc->server_first.data,
                                            "r=%.*s,s=%s,i=%u",
                                            (int) sc->nonce.len,
                                            sc->nonce.data, salt64,
                                            sc->user->iter);

    pst_session_set_ctx(s, &postern_module, sc);

    if (pst_auth_challenge(s, sc->server_first.data, sc->server_first.len)
        != PST_OK)
    {
        return PST_HOOK_TEMPFAIL;
    }
    return PST_HOOK_ACCEPT;
}


static pst_verdict_e
af_scram_final(pst_call_t *call, const pst_str_t *r)
{
    pst_session_t  *s = pst_call_session(call);
    af_scram_t     *sc = pst_session_get_ctx(s, &postern_module);
    const u_char   *p, *end, *proof64, *without_end;
    u_char          cb64[600], proof[64], csig[AF_SCRAM_KEY];
    u_char          ckey[AF_SCRAM_KEY], stored[AF_SCRAM_KEY];
    u_char          ssig[AF_SCRAM_KEY], final[128];
    u_char         *msg;
    unsigned        len;
    size_t          n, plen, mlen, i;
    int             ok;

    if (sc == NULL || r == NULL) {
        return PST_HOOK_CONTINUE;
    }

    if (sc->stage == AF_SCRAM_SENT_FINAL) {
        /* the client's empty answer to our server-final message */
        pst_session_set_ctx(s, &postern_module, NULL);
        if (r->len != 0) {
            return PST_HOOK_REJECT;
        }
        (void) pst_auth_set_user(s, sc->user->name.data,
                                 sc->user->name.len);
        return PST_HOOK_ACCEPT;
    }

    p = r->data;
    end = p + r->len;

    /* c=base64(gs2-header),r=nonce[,ext],p=proof */
    if (sc->gs2.len * 4 / 3 + 8 > sizeof(cb64)) {
        return PST_HOOK_REJECT;
    }
    n = af_b64_encode(cb64, sc->gs2.data, sc->gs2.len);
    if ((size_t) (end - p) < n + 3 || memcmp(p, "c=", 2) != 0
        || memcmp(p + 2, cb64, n) != 0 || p[2 + n] != ',')
    {
        return PST_HOOK_REJECT;
    }
    p += 3 + n;
    if ((size_t) (end - p) < sc->nonce.len + 3 || memcmp(p, "r=", 2) != 0
        || memcmp(p + 2, sc->nonce.data, sc->nonce.len) != 0
        || (p[2 + sc->nonce.len] != ','))
    {
        return PST_HOOK_REJECT;
    }

    /* the proof is the last attribute */
    for (proof64 = end; proof64 > p; proof64--) {
        if (proof64[-1] == ',' && end - proof64 > 2
            && proof64[0] == 'p' && proof64[1] == '=')
        {
            break;
        }
    }
    if (proof64 == p) {
        return PST_HOOK_REJECT;
    }
    without_end = proof64 - 1;
    proof64 += 2;

    if (af_b64(NULL, (const char *) proof64, (size_t) (end - proof64),
               proof, sizeof(proof), &plen) != PST_OK
        || plen != AF_SCRAM_KEY)
    {
        return PST_HOOK_REJECT;
    }

    /* AuthMessage = client-first-bare "," server-first ","
     *               client-final-without-proof */
    mlen = sc->first_bare.len + 1 + sc->server_first.len + 1
           + (size_t) (without_end - r->data);
    msg = malloc(mlen);
    if (msg == NULL) {
        return PST_HOOK_TEMPFAIL;
    }
    n = 0;
    memcpy(msg + n, sc->first_bare.data, sc->first_bare.len);
    n += sc->first_bare.len;
    msg[n++] = ',';
    memcpy(msg + n, sc->server_first.data, sc->server_first.len);
    n += sc->server_first.len;
    msg[n++] = ',';
    memcpy(msg + n, r->data, (size_t) (without_end - r->data));

    len = AF_SCRAM_KEY;
    HMAC(EVP_sha256(), sc->user->stored, AF_SCRAM_KEY, msg, mlen, csig,
         &len);
    for (i = 0; i < AF_SCRAM_KEY; i++) {
        ckey[i] = proof[i] ^ csig[i];
    }
    SHA256(ckey, AF_SCRAM_KEY, stored);
    ok = pst_memeq_const(stored, sc->user->stored, AF_SCRAM_KEY) == 0;

    len = AF_SCRAM_KEY;
    HMAC(EVP_sha256(), sc->user->server, AF_SCRAM_KEY, msg, mlen, ssig,
         &len);
    free(msg);
    explicit_bzero(ckey, sizeof(ckey));

    if (!ok) {
        pst_session_set_ctx(s, &postern_module, NULL);
        pst_call_reply(call, 0, NULL, "wrong password (SCRAM proof)");
        return PST_HOOK_REJECT;
    }

    memcpy(final, "v=", 2);
    n = 2 + af_b64_encode(final + 2, ssig, AF_SCRAM_KEY);
    sc->stage = AF_SCRAM_SENT_FINAL;

    if (pst_auth_challenge(s, final, n) != PST_OK) {
        return PST_HOOK_TEMPFAIL;
    }
    return PST_HOOK_ACCEPT;
}


static pst_verdict_e
af_scram(pst_call_t *call, af_conf_t *conf)
{
    pst_session_t  *s = pst_call_session(call);
    af_scram_t     *sc;

    if (pst_auth_step(s) == 0) {
        /* a new exchange: forget an earlier one of this session */
        pst_session_set_ctx(s, &postern_module, NULL);

        if (pst_auth_response(s) == NULL) {
            /* "AUTH SCRAM-SHA-256" alone: the client speaks first, so
             * ask for its message with an empty challenge */
            sc = pst_pcalloc(pst_session_pool(s), sizeof(af_scram_t));
            if (sc == NULL
                || pst_auth_challenge(s, (u_char *) "", 0) != PST_OK)
            {
                return PST_HOOK_TEMPFAIL;
            }
            sc->stage = AF_SCRAM_WAIT_FIRST;
            pst_session_set_ctx(s, &postern_module, sc);
            return PST_HOOK_ACCEPT;
        }

        return af_scram_first(call, conf, pst_auth_response(s));
    }

    sc = pst_session_get_ctx(s, &postern_module);
    if (sc != NULL && sc->stage == AF_SCRAM_WAIT_FIRST) {
        return af_scram_first(call, conf, pst_auth_response(s));
    }

    return af_scram_final(call, pst_auth_response(s));
}


/* ------------------------------------------------------------------ */
/* The hook                                                            */

static pst_verdict_e
af_auth(pst_call_t *call, void *cf)
{
    af_conf_t        *conf = cf;
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *mech, *user, *zid, *pass;
    af_job_t         *j;

    if (conf == NULL || conf->table == NULL) {
        return PST_HOOK_CONTINUE;
    }

    mech = pst_auth_mechanism(s);
    if (mech != NULL && mech->len == 13
        && memcmp(mech->data, "SCRAM-SHA-256", 13) == 0)
    {
        return af_scram(call, conf);
    }

    user = pst_auth_authcid(s);
    pass = pst_auth_password(s);
    zid = pst_auth_authzid(s);
    if (user == NULL || pass == NULL) {
        return PST_HOOK_CONTINUE;     /* a mechanism we do not run */
    }

    if (zid != NULL && zid->len > 0
        && (zid->len != user->len
            || memcmp(zid->data, user->data, user->len) != 0))
    {
        pst_call_reply(call, 0, NULL, "may not act for another user");
        return PST_HOOK_REJECT;
    }

    if (pass->len > AF_PASS_MAX || af.nthreads == 0) {
        return PST_HOOK_REJECT;
    }

    if (af.queued >= AF_MAX_QUEUE) {
        pst_call_reply(call, 0, NULL, "auth_file: too many logins"
                       " waiting");
        return PST_HOOK_TEMPFAIL;
    }

    j = calloc(1, sizeof(af_job_t));
    if (j == NULL) {
        return PST_HOOK_TEMPFAIL;
    }

    j->user = af_find(conf->table, user);
    memcpy(j->password, pass->data, pass->len);
    j->password[pass->len] = '\0';
    j->plen = pass->len;
    j->token = pst_call_defer(call);

    pthread_mutex_lock(&af.lock);
    *af.pending_tail = j;
    af.pending_tail = &j->next;
    af.queued++;
    pthread_cond_signal(&af.cond);
    pthread_mutex_unlock(&af.lock);

    return PST_HOOK_PENDING;
}
