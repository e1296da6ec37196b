/*
 * pst_spool.c -- queue IDs, spool directories, queue file headers and
 * the reader, start-up clean-up of tmp/ (see pst_spool.h,
 * docs/SPOOL.md).  Messages and their state: pst_spool_msg.c; the queue
 * tool: pst_spool_tool.c.
 */

#include "pst_core.h"
#include "pst_spool.h"

#define PST_STALE_SECONDS   3600

static const char  b32[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
static uint32_t    id_counter;
static pst_str_t   tmp_dir;
static pst_str_t   spool_dir;

static int pst_spool_writer_alive(pid_t pid);
static void pst_spool_strip_deleted(char *path);


const pst_str_t *
pst_spool_dir(void)
{
    if (spool_dir.len) {
        return &spool_dir;
    }
    return pst_cycle ? &pst_cycle->core->spool_dir : NULL;
}


void
pst_spool_use_dir(const char *dir)
{
    spool_dir.data = (u_char *) dir;
    spool_dir.len = dir ? strlen(dir) : 0;
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

    /*
     * The last two characters name the message's directory, queue/XY/
     * (pst_spool_queue_name()).  They are a time bucket, the second / 4
     * modulo 1,024: the messages of one group commit share a directory,
     * hence one directory fsync, while a day's messages still spread
     * over 1,024 directories.  The counter before them (15 bits, per
     * microsecond and process slot) keeps the IDs unique.
     */
    gettimeofday(&tv, NULL);
    p = pst_b32(buf, (uint64_t) tv.tv_sec, 7);
    p = pst_b32(p, (uint64_t) tv.tv_usec, 4);
    p = pst_b32(p, (uint64_t) pst_proc_slot_index, 2);
    p = pst_b32(p, (uint64_t) (id_counter++ & 0x7fff), 3);
    p = pst_b32(p, (uint64_t) ((tv.tv_sec >> 2) & 0x3ff), 2);
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


/* The inverse of the first two fields pst_spool_new_id() writes. */
void
pst_spool_id_time(const u_char *id, time_t *sec, long *usec)
{
    uint64_t  v = 0;
    int       i;

    for (i = 0; i < 11; i++) {
        v <<= 5;
        v |= (uint64_t) (id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
        if (i == 6) {
            *sec = (time_t) v;
            v = 0;
        }
    }
    *usec = (long) (v % 1000000);
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
        || pst_spool_mkdir(cycle, "corrupt") != PST_OK
        || pst_spool_maildrop_prepare(cycle) != PST_OK)
    {
        return PST_ERROR;
    }

    return PST_OK;
}


/* ------------------------------------------------------------------ */
/* Queue files (format 2)                                              */

/* format 3 (hashed queue/XY/, envelope 2, state files) writes "3";
 * the header of format 2 is the same but for the digit */
#define PST_SPOOL_MAGIC   "POSTERN-SPOOL 3 "
#define PST_SPOOL_MAGIC_2 "POSTERN-SPOOL 2 "


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

    if (len < PST_SPOOL_HEADER_LEN
        || (memcmp(buf, PST_SPOOL_MAGIC, m) != 0
            && memcmp(buf, PST_SPOOL_MAGIC_2, m) != 0)
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
pst_spool_read_fd(pst_pool_t *pool, int fd, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why)
{
    u_char       hdr[PST_SPOOL_HEADER_LEN], *text;
    struct stat  st;
    size_t       env_len;
    off_t        mlen;
    ssize_t      n;

    if (fstat(fd, &st) == -1
        || pread(fd, hdr, sizeof(hdr), 0) != (ssize_t) sizeof(hdr)
        || pst_spool_parse_header(hdr, sizeof(hdr), &mlen, &env_len)
           != PST_OK)
    {
        *why = "no format 2 or 3 header";
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
        return PST_ERROR;
    }

    text = pst_palloc(pool, env_len + 1);
    if (text == NULL) {
        *why = "out of memory";
        return PST_ERROR;
    }

    n = pread(fd, text, env_len, PST_SPOOL_HEADER_LEN + mlen);
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


int
pst_spool_read(pst_pool_t *pool, const char *path, pst_envelope_t *env,
    off_t *msg_offset, off_t *msg_len, const char **why)
{
    int  fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        *why = strerror(errno);
        return errno == ENOENT ? PST_DECLINED : PST_ERROR;
    }

    rc = pst_spool_read_fd(pool, fd, env, msg_offset, msg_len, why);
    close(fd);
    return rc;
}


/*
 * At start-up: remove what never got acknowledged (everything in tmp/
 * but the tmp/PID directories of live Postern processes).  The queue
 * is not read here: the master serves at once and the queue process
 * walks the queue (pst_spool_walk()), which also moves files of the
 * flat format 2 layout into place.
 */
int
pst_spool_recover(pst_cycle_t *cycle)
{
    const char  *spool = (char *) cycle->core->spool_dir.data;
    long         removed;

    removed = pst_spool_clean_tmp(spool, 1);
    if (removed < 0) {
        pst_log_error(PST_LOG_EMERG, errno, "opendir(\"%s/tmp\") failed",
                      spool);
        return PST_ERROR;
    }

    pst_log_error(PST_LOG_NOTICE, 0, "spool \"%s\": %ld stale file(s)"
                  " removed", spool, removed);

    return PST_OK;
}
