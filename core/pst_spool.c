/*
 * pst_spool.c -- queue IDs, the envelope parser, spool directories,
 * recovery and the queue tool (see pst_spool.h, docs/SPOOL.md).
 */

#include "pst_core.h"

#define PST_STALE_SECONDS   3600

static const char  b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
static uint32_t    id_counter;
static pst_str_t   tmp_dir;

static int pst_spool_writer_alive(pid_t pid);
static void pst_spool_strip_deleted(char *path);


const pst_str_t *
pst_spool_dir(void)
{
    return pst_cycle ? &pst_cycle->core->spool_dir : NULL;
}


const pst_str_t *
pst_spool_tmp_dir(void)
{
    return tmp_dir.len ? &tmp_dir : NULL;
}


/* Remove the files of one directory (no subdirectories expected) and the
 * directory.  Returns the number of files removed. */
static long
pst_spool_rmdir(const char *path)
{
    struct dirent  *de;
    char            f[PATH_MAX];
    long            n = 0;
    DIR            *d;

    d = opendir(path);
    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
        if (unlink(f) == 0) {
            n++;
        }
    }
    closedir(d);
    (void) rmdir(path);

    return n;
}


int
pst_spool_process_init(pst_cycle_t *cycle)
{
    char     path[PATH_MAX];
    u_char  *p;
    int      n;

    n = snprintf(path, sizeof(path), "%s/tmp/%d",
                 cycle->core->spool_dir.data, (int) getpid());

    /* a directory of an earlier process with our pid: nothing in it is
     * acknowledged */
    (void) pst_spool_rmdir(path);

    if (mkdir(path, 0750) == -1) {
        pst_log_error(PST_LOG_EMERG, errno, "mkdir(\"%s\") failed", path);
        return PST_ERROR;
    }

    p = malloc((size_t) n + 1);
    if (p == NULL) {
        return PST_ERROR;
    }
    memcpy(p, path, (size_t) n + 1);
    tmp_dir.data = p;
    tmp_dir.len = (size_t) n;

    return PST_OK;
}


void
pst_spool_process_gone(pst_cycle_t *cycle, pid_t pid)
{
    char  path[PATH_MAX];
    long  n, others;

    snprintf(path, sizeof(path), "%s/tmp/%d", cycle->core->spool_dir.data,
             (int) pid);
    n = pst_spool_rmdir(path);

    /* and what other dead writers left: the workers of a master that
     * was killed are nobody's children to reap */
    others = pst_spool_clean_tmp((char *) cycle->core->spool_dir.data, 0);

    if (n > 0 || others > 0) {
        pst_log_error(PST_LOG_NOTICE, 0, "spool: removed %ld unacknowledged"
                      " file(s) of process %d, %ld of other dead writers",
                      n, (int) pid, pst_max(others, 0));
    }
}


/*
 * Is pid a live Postern process (one that may be writing into its
 * tmp/PID/)?  Not when it does not exist, is a zombie (killed, not yet
 * reaped: the workers of a killed master wait for an init that may
 * never reap them), or runs another program (the pid was reused).
 * Without /proc the answer is kill(pid, 0)'s.
 */
static int
pst_spool_writer_alive(pid_t pid)
{
    char     path[64], buf[512], self[PATH_MAX], exe[PATH_MAX];
    char    *p;
    ssize_t  n, k;
    int      fd;

    if (pid <= 0 || pid == getpid()
        || (kill(pid, 0) == -1 && errno == ESRCH))
    {
        return 0;
    }

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 1;       /* no /proc (or it just died: the next sweep) */
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 1;
    }
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')' */
    p = strrchr(buf, ')');
    if (p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X')) {
        return 0;
    }

    snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    k = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || k <= 0) {
        return 1;       /* not ours to look at: keep its files */
    }
    exe[n] = '\0';
    self[k] = '\0';

    /* an upgraded binary shows as "/usr/sbin/postern (deleted)" */
    pst_spool_strip_deleted(exe);
    pst_spool_strip_deleted(self);

    return strcmp(exe, self) == 0;
}


static void
pst_spool_strip_deleted(char *path)
{
    char  *p;

    p = strstr(path, " (deleted)");
    if (p != NULL && p[sizeof(" (deleted)") - 1] == '\0') {
        *p = '\0';
    }
}


/*
 * Remove from tmp/ what no live writer owns: the tmp/PID/ directories
 * of processes that are gone (pst_spool_writer_alive()), and files
 * directly in tmp/ -- at start-up all of them (writers only ever write
 * inside their own tmp/PID/), later those older than an hour.  Returns
 * the number of files removed, -1 when tmp/ cannot be read.
 */
long
pst_spool_clean_tmp(const char *spool, int startup)
{
    struct dirent  *de;
    struct stat     st;
    char            path[PATH_MAX];
    time_t          now;
    long            removed = 0;
    DIR            *d;

    now = time(NULL);

    snprintf(path, sizeof(path), "%s/tmp", spool);
    d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/tmp/%s", spool, de->d_name);
        if (lstat(path, &st) == -1) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            /* a live worker keeps its directory, however old (an idle
             * one does not touch it); so does a worker of a killed
             * master finishing its sessions */
            if (!pst_spool_writer_alive((pid_t) atoi(de->d_name))) {
                removed += pst_spool_rmdir(path);
            }
            continue;
        }
        if ((startup || now - st.st_mtime > PST_STALE_SECONDS)
            && unlink(path) == 0)
        {
            removed++;
        }
    }
    closedir(d);

    return removed;
}


static u_char *
pst_b32(u_char *p, uint64_t v, int digits)
{
    int  i;

    for (i = digits - 1; i >= 0; i--) {
        p[i] = (u_char) b32[v & 31];
        v >>= 5;
    }
    return p + digits;
}


void
pst_spool_new_id(u_char *buf)
{
    struct timeval  tv;
    u_char         *p;

    if (id_counter == 0) {
        id_counter = (uint32_t) getpid() * 2654435761u;
    }

    gettimeofday(&tv, NULL);
    p = pst_b32(buf, (uint64_t) tv.tv_sec, 7);
    p = pst_b32(p, (uint64_t) tv.tv_usec, 4);
    p = pst_b32(p, (uint64_t) pst_proc_slot_index, 2);
    p = pst_b32(p, (uint64_t) (id_counter++ & 0x1ffffff), 5);
    *p = '\0';
}


int
pst_spool_valid_id(const u_char *p, size_t n)
{
    size_t  i;

    if (n != PST_QUEUE_ID_LEN) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'V')))
        {
            return 0;
        }
    }
    return 1;
}


/* ------------------------------------------------------------------ */
/* Envelope parser                                                     */

static int
pst_env_value(pst_pool_t *pool, u_char *v, size_t n, pst_str_t *out)
{
    ssize_t  k;

    out->data = pst_palloc(pool, n + 1);
    if (out->data == NULL) {
        return PST_ERROR;
    }
    k = pst_xtext_decode(out->data, v, n);
    if (k < 0) {
        return PST_ERROR;
    }
    out->len = (size_t) k;
    out->data[k] = '\0';
    return PST_OK;
}


static int
pst_env_rcpt(pst_pool_t *pool, u_char *v, u_char *end, pst_env_rcpt_t *r)
{
    u_char   *w, *eq;
    int64_t   n;

    memset(r, 0, sizeof(pst_env_rcpt_t));

    w = v;
    while (v < end && *v != ' ') {
        v++;
    }
    if (pst_env_value(pool, w, (size_t) (v - w), &r->addr) != PST_OK) {
        return PST_ERROR;
    }

    while (v < end) {
        v++;
        w = v;
        while (v < end && *v != ' ') {
            v++;
        }
        eq = memchr(w, '=', (size_t) (v - w));
        if (eq == NULL) {
            return PST_ERROR;
        }

        if (eq - w == 6 && memcmp(w, "notify", 6) == 0) {
            /* counted: atoi() would read past the value (and past the
             * end of an envelope that ends here) */
            n = pst_atoi(eq + 1, (size_t) (v - eq - 1), 0xff);
            if (n < 0) {
                return PST_ERROR;
            }
            r->notify = (unsigned) n;
        } else if (eq - w == 5 && memcmp(w, "orcpt", 5) == 0) {
            if (pst_env_value(pool, eq + 1, (size_t) (v - eq - 1),
                              &r->orcpt) != PST_OK)
            {
                return PST_ERROR;
            }
        } else if (eq - w == 5 && memcmp(w, "state", 5) == 0) {
            r->state.data = eq + 1;
            r->state.len = (size_t) (v - eq - 1);
        }
        /* unknown attributes of a newer minor format are skipped */
    }

    return PST_OK;
}


int
pst_envelope_parse(pst_pool_t *pool, u_char *p, size_t n,
    pst_envelope_t *env, const char **why)
{
    u_char          *end, *line, *eol, *sp, *v;
    pst_env_rcpt_t  *r;
    pst_str_t       *h, key, *field;
    size_t           mlen;
    char             num[32];
    int              ended = 0;

    memset(env, 0, sizeof(pst_envelope_t));
    env->size = -1;
    env->rcpts = pst_array_create(pool, 4, sizeof(pst_env_rcpt_t));
    env->prepend = pst_array_create(pool, 1, sizeof(pst_str_t));
    if (env->rcpts == NULL || env->prepend == NULL) {
        *why = "out of memory";
        return PST_ERROR;
    }

    end = p + n;
    mlen = sizeof(PST_ENVELOPE_MAGIC) - 1;

    if (n < mlen + 1 || memcmp(p, PST_ENVELOPE_MAGIC, mlen) != 0
        || p[mlen] != '\n')
    {
        *why = "not a version 1 envelope";
        return PST_ERROR;
    }

    for (line = p + mlen + 1; line < end; line = eol + 1) {
        eol = memchr(line, '\n', (size_t) (end - line));
        if (eol == NULL) {
            *why = "truncated line";
            return PST_ERROR;
        }

        if (eol - line == 3 && memcmp(line, "end", 3) == 0) {
            ended = 1;
            break;
        }

        sp = memchr(line, ' ', (size_t) (eol - line));
        key.data = line;
        key.len = sp ? (size_t) (sp - line) : (size_t) (eol - line);
        v = sp ? sp + 1 : eol;

        field = NULL;
        if (pst_str_eq(&key, "id")) field = &env->id;
        else if (pst_str_eq(&key, "sender")) field = &env->sender;
        else if (pst_str_eq(&key, "client-addr")) field = &env->client_addr;
        else if (pst_str_eq(&key, "client-name")) field = &env->client_name;
        else if (pst_str_eq(&key, "helo")) field = &env->helo;
        else if (pst_str_eq(&key, "protocol")) field = &env->protocol;
        else if (pst_str_eq(&key, "auth")) field = &env->auth;
        else if (pst_str_eq(&key, "tls")) field = &env->tls;
        else if (pst_str_eq(&key, "envid")) field = &env->envid;
        else if (pst_str_eq(&key, "ret")) field = &env->ret;
        else if (pst_str_eq(&key, "body")) field = &env->body;

        if (field != NULL) {
            if (pst_env_value(pool, v, (size_t) (eol - v), field) != PST_OK)
            {
                *why = "bad xtext value";
                return PST_ERROR;
            }

        } else if (pst_str_eq(&key, "smtputf8")) {
            env->smtputf8 = (*v == '1');

        } else if (pst_str_eq(&key, "size")) {
            env->size = pst_atoi(v, (size_t) (eol - v), INT64_MAX);

        } else if (pst_str_eq(&key, "arrival")) {
            /* strtod() needs a NUL, and skips a leading "\n" into the
             * next line: parse a bounded copy of this value only */
            if ((size_t) (eol - v) >= sizeof(num)) {
                *why = "bad arrival line";
                return PST_ERROR;
            }
            memcpy(num, v, (size_t) (eol - v));
            num[eol - v] = '\0';
            env->arrival = strtod(num, NULL);

        } else if (pst_str_eq(&key, "rcpt")) {
            r = pst_array_push(env->rcpts);
            if (r == NULL || pst_env_rcpt(pool, v, eol, r) != PST_OK) {
                *why = "bad rcpt line";
                return PST_ERROR;
            }

        } else if (pst_str_eq(&key, "prepend")) {
            h = pst_array_push(env->prepend);
            if (h == NULL
                || pst_env_value(pool, v, (size_t) (eol - v), h) != PST_OK)
            {
                *why = "bad prepend line";
                return PST_ERROR;
            }
        }
        /* other keys: added by a newer minor version, ignored */
    }

    if (!ended) {
        *why = "no \"end\" line (truncated)";
        return PST_ERROR;
    }
    if (!pst_spool_valid_id(env->id.data, env->id.len)) {
        *why = "bad or missing id";
        return PST_ERROR;
    }
    if (env->rcpts->nelts == 0) {
        *why = "no recipients";
        return PST_ERROR;
    }

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Directories and recovery                                            */

static int
pst_spool_mkdir(pst_cycle_t *cycle, const char *sub)
{
    pst_core_conf_t  *ccf = cycle->core;
    char              path[PATH_MAX];
    struct stat       st;

    snprintf(path, sizeof(path), "%s%s%s", ccf->spool_dir.data,
             sub[0] ? "/" : "", sub);

    if (mkdir(path, 0750) == -1 && errno != EEXIST) {
        pst_log_error(PST_LOG_EMERG, errno, "mkdir(\"%s\") failed", path);
        return PST_ERROR;
    }

    if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode)) {
        pst_log_error(PST_LOG_EMERG, errno, "\"%s\" is not a directory",
                      path);
        return PST_ERROR;
    }

    if (geteuid() == 0 && (st.st_uid != ccf->uid || st.st_gid != ccf->gid)
        && chown(path, ccf->uid, ccf->gid) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "chown(\"%s\") failed", path);
        return PST_ERROR;
    }

    return PST_OK;
}


int
pst_spool_prepare(pst_cycle_t *cycle)
{
    if (pst_spool_mkdir(cycle, "") != PST_OK
        || pst_spool_mkdir(cycle, "tmp") != PST_OK
        || pst_spool_mkdir(cycle, "queue") != PST_OK
        || pst_spool_mkdir(cycle, "corrupt") != PST_OK)
    {
        return PST_ERROR;
    }

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Queue files (format 2)                                              */

#define PST_SPOOL_MAGIC   "POSTERN-SPOOL 2 "


void
pst_spool_header(u_char *buf, off_t message_len, size_t envelope_len)
{
    char  tmp[PST_SPOOL_HEADER_LEN + 1];

    /* fixed width, so the header can be rewritten in place at commit */
    snprintf(tmp, sizeof(tmp), PST_SPOOL_MAGIC "%020llu %020llu\n",
             (unsigned long long) message_len,
             (unsigned long long) envelope_len);
    memcpy(buf, tmp, PST_SPOOL_HEADER_LEN);
}


int
pst_spool_parse_header(const u_char *buf, size_t len, off_t *message_len,
    size_t *envelope_len)
{
    const size_t  m = sizeof(PST_SPOOL_MAGIC) - 1;
    int64_t       a, b;

    if (len < PST_SPOOL_HEADER_LEN || memcmp(buf, PST_SPOOL_MAGIC, m) != 0
        || buf[m + 20] != ' ' || buf[PST_SPOOL_HEADER_LEN - 1] != '\n')
    {
        return PST_ERROR;
    }

    a = pst_atoi(buf + m, 20, INT64_MAX);
    b = pst_atoi(buf + m + 21, 20, 64 * 1024 * 1024);
    if (a < 0 || b <= 0) {
        return PST_ERROR;
    }

    *message_len = (off_t) a;
    *envelope_len = (size_t) b;
    return PST_OK;
}


int
pst_spool_read(pst_pool_t *pool, const char *path, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why)
{
    u_char       hdr[PST_SPOOL_HEADER_LEN], *text;
    struct stat  st;
    size_t       env_len;
    off_t        mlen;
    ssize_t      n;
    int          fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        *why = strerror(errno);
        return errno == ENOENT ? PST_DECLINED : PST_ERROR;
    }

    if (fstat(fd, &st) == -1
        || read(fd, hdr, sizeof(hdr)) != (ssize_t) sizeof(hdr)
        || pst_spool_parse_header(hdr, sizeof(hdr), &mlen, &env_len)
           != PST_OK)
    {
        *why = "no format 2 header";
        close(fd);
        return PST_ERROR;
    }

    /* compared without adding: the lengths come from the file, and a
     * corrupt message length near INT64_MAX overflows the sum */
    if (st.st_size < PST_SPOOL_HEADER_LEN
        || (uint64_t) mlen > (uint64_t) st.st_size - PST_SPOOL_HEADER_LEN
        || (uint64_t) st.st_size - PST_SPOOL_HEADER_LEN - (uint64_t) mlen
           != env_len)
    {
        *why = "size does not match the header (truncated)";
        close(fd);
        return PST_ERROR;
    }

    text = pst_palloc(pool, env_len + 1);
    if (text == NULL) {
        close(fd);
        *why = "out of memory";
        return PST_ERROR;
    }

    n = pread(fd, text, env_len, PST_SPOOL_HEADER_LEN + mlen);
    close(fd);
    if (n != (ssize_t) env_len) {
        *why = "cannot read the envelope";
        return PST_ERROR;
    }
    text[env_len] = '\0';

    if (pst_envelope_parse(pool, text, env_len, env, why) != PST_OK) {
        return PST_ERROR;
    }

    *msg_offset = PST_SPOOL_HEADER_LEN;
    *msg_len = mlen;
    return PST_OK;
}


static void
pst_spool_quarantine(const char *spool, const char *name, const char *why)
{
    char  from[PATH_MAX], to[PATH_MAX];

    snprintf(from, sizeof(from), "%s/queue/%s", spool, name);
    snprintf(to, sizeof(to), "%s/corrupt/%s", spool, name);
    pst_log_error(PST_LOG_ALERT, 0, "spool: moving queue/%s to corrupt/:"
                  " %s", name, why);
    if (rename(from, to) == -1) {
        pst_log_error(PST_LOG_ALERT, errno, "rename(%s) failed", from);
    }
}


/*
 * At start-up: remove what never got acknowledged (everything in tmp/
 * but the tmp/PID directories of live Postern processes), move
 * unreadable queue files aside, and report what the queue holds.  A
 * queue file is complete by construction (fsynced before its rename),
 * so one that does not parse is damage, not a crash.
 */
int
pst_spool_recover(pst_cycle_t *cycle)
{
    const char     *spool = (char *) cycle->core->spool_dir.data;
    pst_envelope_t  env;
    struct dirent  *de;
    pst_pool_t     *pool;
    const char     *why;
    char            path[PATH_MAX];
    off_t           moff, mlen;
    DIR            *d;
    long            queued = 0, removed, bad = 0;

    removed = pst_spool_clean_tmp(spool, 1);
    if (removed < 0) {
        pst_log_error(PST_LOG_EMERG, errno, "opendir(\"%s/tmp\") failed",
                      spool);
        return PST_ERROR;
    }

    snprintf(path, sizeof(path), "%s/queue", spool);
    d = opendir(path);
    if (d == NULL) {
        pst_log_error(PST_LOG_EMERG, errno, "opendir(\"%s\") failed", path);
        return PST_ERROR;
    }

    pool = pst_create_pool(16384);
    if (pool == NULL) {
        closedir(d);
        return PST_ERROR;
    }

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        if (!pst_spool_valid_id((u_char *) de->d_name, strlen(de->d_name)))
        {
            pst_spool_quarantine(spool, de->d_name, "not a queue file name");
            bad++;
            continue;
        }

        snprintf(path, sizeof(path), "%s/queue/%s", spool, de->d_name);
        pst_reset_pool(pool);

        if (pst_spool_read(pool, path, &env, &moff, &mlen, &why) != PST_OK)
        {
            pst_spool_quarantine(spool, de->d_name, why);
            bad++;
            continue;
        }

        if (env.id.len != PST_QUEUE_ID_LEN
            || memcmp(env.id.data, de->d_name, PST_QUEUE_ID_LEN) != 0)
        {
            pst_spool_quarantine(spool, de->d_name, "envelope of another"
                                 " message");
            bad++;
            continue;
        }

        queued++;
    }

    closedir(d);
    pst_destroy_pool(pool);

    pst_log_error(PST_LOG_NOTICE, 0, "spool \"%s\": %ld message(s) queued,"
                  " %ld stale file(s) removed, %ld moved to corrupt/",
                  spool, queued, removed, bad);

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* postern queue ...                                                   */

static int
pst_spool_show(pst_cycle_t *cycle, const char *id, int mode)
{
    pst_envelope_t   env;
    pst_env_rcpt_t  *r;
    pst_pool_t      *pool;
    pst_str_t       *h;
    const char      *why;
    char             path[PATH_MAX], buf[65536];
    pst_uint_t       i;
    off_t            moff, mlen, left;
    ssize_t          n;
    int              fd, rc;

    if (!pst_spool_valid_id((u_char *) id, strlen(id))) {
        fprintf(stderr, "postern: \"%s\" is not a queue ID\n", id);
        return 1;
    }

    pool = pst_create_pool(16384);
    if (pool == NULL) {
        return 1;
    }

    snprintf(path, sizeof(path), "%s/queue/%s", cycle->core->spool_dir.data,
             id);
    rc = pst_spool_read(pool, path, &env, &moff, &mlen, &why);
    if (rc != PST_OK) {
        fprintf(stderr, "postern: cannot read %s: %s\n", path, why);
        pst_destroy_pool(pool);
        return 1;
    }

    if (mode == 2) {
        /* the message as a reader delivers it: added headers first */
        h = env.prepend->elts;
        for (i = 0; i < env.prepend->nelts; i++) {
            printf("%.*s\r\n", (int) h[i].len, h[i].data);
        }
        fflush(stdout);

        fd = open(path, O_RDONLY | O_CLOEXEC);
        for (left = mlen; fd != -1 && left > 0; left -= n) {
            n = pread(fd, buf, (size_t) pst_min(left, (off_t) sizeof(buf)),
                      moff + (mlen - left));
            if (n <= 0 || write(STDOUT_FILENO, buf, (size_t) n) != n) {
                break;
            }
        }
        if (fd != -1) {
            close(fd);
        }
        pst_destroy_pool(pool);
        return left == 0 ? 0 : 1;
    }

    printf("%s  %8lld  %.0f  <%s>\n", env.id.data, (long long) mlen,
           env.arrival, env.sender.data);
    r = env.rcpts->elts;
    for (i = 0; i < env.rcpts->nelts; i++) {
        printf("    <%s> %.*s\n", r[i].addr.data, (int) r[i].state.len,
               r[i].state.data);
    }
    if (mode == 1) {
        printf("    client %s [%s] helo %s protocol %s%s%s\n",
               env.client_name.len ? (char *) env.client_name.data
                                   : "unknown",
               env.client_addr.data, env.helo.data, env.protocol.data,
               env.auth.len ? " auth " : "",
               env.auth.len ? (char *) env.auth.data : "");
    }

    pst_destroy_pool(pool);
    return 0;
}


int
pst_spool_tool(pst_cycle_t *cycle, int argc, char **argv)
{
    struct dirent  *de;
    char            path[PATH_MAX];
    const char     *cmd;
    long            count = 0;
    DIR            *d;
    int             rc = 0;

    cmd = argc > 0 ? argv[0] : "list";

    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "cat") == 0) {
        if (argc < 2) {
            fprintf(stderr, "usage: postern queue %s ID\n", cmd);
            return 1;
        }
        return pst_spool_show(cycle, argv[1], cmd[0] == 's' ? 1 : 2);
    }

    if (strcmp(cmd, "count") != 0 && strcmp(cmd, "list") != 0) {
        fprintf(stderr, "usage: postern queue count|list|show ID|cat ID\n");
        return 1;
    }

    snprintf(path, sizeof(path), "%s/queue", cycle->core->spool_dir.data);
    d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "postern: cannot open \"%s\": %s\n", path,
                strerror(errno));
        return 1;
    }

    while ((de = readdir(d)) != NULL) {
        if (!pst_spool_valid_id((u_char *) de->d_name, strlen(de->d_name)))
        {
            continue;
        }
        count++;
        if (strcmp(cmd, "list") == 0) {
            rc |= pst_spool_show(cycle, de->d_name, 0);
        }
    }
    closedir(d);

    if (strcmp(cmd, "count") == 0) {
        printf("%ld\n", count);
    }

    return rc;
}
