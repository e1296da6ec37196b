/*
 * deliver_maildir.c -- a router (ABI 1.2, postern_module.h) whose route
 * delivers locally: each recipient's copy goes into a Maildir (the
 * format of qmail's maildir(5): tmp/, new/, cur/), on the queue
 * process's I/O threads (pst_route_t.local).
 *
 * Which mail: what the transport table sends to "maildir" ("transport
 * example.com maildir;"), or everything when this is the only router
 * module loaded.
 *
 * Directives (top level):
 *   maildir_path TEMPLATE;       the mailbox of a recipient (required):
 *                                %u its local part, %d its domain (both
 *                                lower case), %% a '%'; absolute, no "."
 *                                or ".." component.  The directory before
 *                                the first '%' must exist; what is below
 *                                it is created (mode 0700)
 *   maildir_user USER;           chown what is created to USER (and its
 *                                group); the queue process must be
 *                                allowed to (it runs as `user`: only
 *                                when USER is that account, or root)
 *   maildir_quota SIZE;          per mailbox: the sizes of the files in
 *                                new/ and cur/ (",S=" in their names)
 *                                plus the new message (0: none; 0)
 *   maildir_quota_exceeded defer|bounce;    452 4.2.2 (defer) or
 *                                552 5.2.2 (bounce)
 *
 * A delivery (Maildir spec, D. J. Bernstein): a unique name
 * SEC.MUSECPpidQn.host in tmp/, Return-Path: and Delivered-To: first,
 * the message with LF line ends, fsync, rename into new/ as
 * NAME,S=SIZE, fsync of new/.  A file in new/ is therefore always
 * whole; a crash leaves at worst a file in tmp/ (readers ignore it) and
 * a second copy after the retry.
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "postern_module.h"

#define MAILDIR_PATH_MAX   4096
#define maildir_min(a, b)  ((a) < (b) ? (a) : (b))

typedef struct {
    pst_str_t                    path;       /* the template */
    size_t                       base;       /* its directory that must
                                                exist: path[0..base) */
    pst_str_t                    user;
    uid_t                        uid;
    gid_t                        gid;
    size_t                       quota;
    pst_uint_t                   quota_bounce;
} maildir_conf_t;

typedef struct {
    maildir_conf_t              *conf;
    pst_route_done_pt            done;
    void                        *data;
    pst_timer_t                 *timer;
    unsigned                     nexthop:1;  /* a table rule gave one */
} maildir_resolve_t;


static void *maildir_create_conf(pst_conf_t *cf);
static char *maildir_init_conf(pst_conf_t *cf, void *conf);
static char *maildir_set_path(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static int maildir_init_process(pst_cycle_t *cycle, pst_proc_e type,
    void *main_conf);
static int maildir_check_template(const u_char *t, size_t n, size_t *base,
    const char **why);
static int maildir_expand(const pst_str_t *tmpl, const pst_str_t *addr,
    char *out, size_t size, const char **why);
static void *maildir_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data);
static void maildir_resolved(void *data);
static void maildir_cancel(void *handle);
static int maildir_deliver(const pst_local_msg_t *m, pst_uint_t rcpt,
    void *conf, pst_local_result_t *out);

static const pst_conf_enum_t  maildir_quota_modes[] = {
    { "defer", 0 },
    { "bounce", 1 },
    { NULL, 0 }
};

static const pst_command_t  maildir_commands[] = {
    { "maildir_path", PST_CONF_MAIN | PST_CONF_TAKE1,
      maildir_set_path, PST_MAIN_CONF, 0, NULL },
    { "maildir_user", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_MAIN_CONF,
      offsetof(maildir_conf_t, user), NULL },
    { "maildir_quota", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_size_slot, PST_MAIN_CONF,
      offsetof(maildir_conf_t, quota), NULL },
    { "maildir_quota_exceeded", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_enum_slot, PST_MAIN_CONF,
      offsetof(maildir_conf_t, quota_bounce), maildir_quota_modes },
    pst_null_command
};

static const pst_router_t  maildir_router = {
    .resolve = maildir_resolve,
    .cancel = maildir_cancel,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "deliver_maildir",
    .version = "1.0",
    .description = "local delivery into Maildir",
    .commands = maildir_commands,
    .create_main_conf = maildir_create_conf,
    .init_main_conf = maildir_init_conf,
    .init_process = maildir_init_process,
    .router = &maildir_router,
};

/* unique names within this process, from any I/O thread */
static unsigned long  maildir_seq;


static void *
maildir_create_conf(pst_conf_t *cf)
{
    maildir_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(maildir_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->quota = PST_CONF_UNSET_SIZE;
    c->quota_bounce = PST_CONF_UNSET_UINT;
    c->uid = (uid_t) -1;
    c->gid = (gid_t) -1;
    return c;
}


static char *
maildir_set_path(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    maildir_conf_t  *c = conf;
    pst_uint_t       n;
    pst_str_t       *a = pst_conf_args(cf, &n), base;
    const char      *why;

    (void) cmd;

    if (c->path.data != NULL) {
        return "is duplicate";
    }
    if (maildir_check_template(a[1].data, a[1].len, &c->base, &why)
        != PST_OK)
    {
        pst_conf_error(cf, "maildir_path \"%.*s\": %s", (int) a[1].len,
                       a[1].data, why);
        return PST_CONF_ERROR;
    }
    c->path = a[1];
    base.data = a[1].data;
    base.len = c->base;
    /* the queue process (the workers' account) must reach it */
    if (pst_conf_worker_path(cf, &base, X_OK, "maildir_path's directory")
        != PST_OK)
    {
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


static char *
maildir_init_conf(pst_conf_t *cf, void *conf)
{
    maildir_conf_t  *c = conf;
    struct passwd   *pw;

    pst_conf_merge_size_value(c->quota, PST_CONF_UNSET_SIZE, 0);
    pst_conf_merge_uint_value(c->quota_bounce, PST_CONF_UNSET_UINT, 0);

    if (c->path.data == NULL) {
        return "deliver_maildir is loaded without maildir_path";
    }
    if (c->user.len > 0) {
        pw = getpwnam((const char *) c->user.data);
        if (pw == NULL) {
            pst_conf_error(cf, "maildir_user \"%s\": no such user",
                           c->user.data);
            return PST_CONF_ERROR;
        }
        c->uid = pw->pw_uid;
        c->gid = pw->pw_gid;
    }
    return PST_CONF_OK;
}


/* Say at start when maildir_user cannot work: deliveries would defer. */
static int
maildir_init_process(pst_cycle_t *cycle, pst_proc_e type, void *main_conf)
{
    maildir_conf_t  *c = main_conf;

    (void) cycle;

    if (type == PST_PROC_QUEUE && c->uid != (uid_t) -1 && geteuid() != 0
        && geteuid() != c->uid)
    {
        pst_log(PST_LOG_ERR, 0, "deliver_maildir: the queue process runs"
                " as uid %ld and cannot give files to maildir_user %s:"
                " its deliveries will be deferred", (long) geteuid(),
                c->user.data);
    }
    return PST_OK;
}


/*
 * A template is an absolute path; '%' is followed by 'u', 'd' or '%';
 * no component written in it is "." or ".." (nor can an expansion make
 * one: see maildir_expand()).  *base: the directory above the first
 * expansion, which the module never creates.
 */
static int
maildir_check_template(const u_char *t, size_t n, size_t *base,
    const char **why)
{
    size_t  i, start = 0, first = n, clen;

    if (n == 0 || t[0] != '/') {
        *why = "must be an absolute path";
        return PST_ERROR;
    }
    if (n >= MAILDIR_PATH_MAX / 2) {
        *why = "is too long";
        return PST_ERROR;
    }
    for (i = 0; i <= n; i++) {
        if (i < n && t[i] == '%') {
            if (i + 1 == n || strchr("ud%", t[i + 1]) == NULL) {
                *why = "has a '%' that is not %u, %d or %%";
                return PST_ERROR;
            }
            first = maildir_min(first, i);
            i++;
            continue;
        }
        if (i < n && t[i] != '/') {
            continue;
        }
        clen = i - start;
        if ((clen == 2 && t[start + 1] == '.')
            || (clen == 3 && t[start + 1] == '.' && t[start + 2] == '.'))
        {
            *why = "has a \".\" or \"..\" component";
            return PST_ERROR;
        }
        start = i;
    }
    while (first > 0 && t[first - 1] != '/') {
        first--;
    }
    /* "/var/mail/%d/%u": "/var/mail"; "/%u": "/" */
    *base = first > 1 ? first - 1 : 1;
    if (first == n) {
        /* no expansion: one mailbox for everyone, below its parent */
        for (*base = n; *base > 1 && t[*base - 1] != '/'; (*base)--) {
            /* void */
        }
        *base = *base > 1 ? *base - 1 : 1;
    }
    return PST_OK;
}


/* One expansion: lower case, and never a way out of its component. */
static int
maildir_part(char *out, size_t *o, size_t size, const u_char *p, size_t n,
    const char **why)
{
    size_t  i;

    if (n == 0 || p[0] == '.') {
        *why = n == 0 ? "an empty mailbox name"
                      : "a mailbox name that starts with '.'";
        return PST_DECLINED;
    }
    if (*o + n >= size) {
        *why = "a mailbox path that is too long";
        return PST_DECLINED;
    }
    for (i = 0; i < n; i++) {
        if (p[i] == '/' || p[i] < 0x20 || p[i] == 0x7f) {
            *why = "a mailbox name with '/' or a control character";
            return PST_DECLINED;
        }
        out[(*o)++] = (char) ((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32
                                                           : p[i]);
    }
    return PST_OK;
}


/* A quoted local part without its quoting (RFC 5321 4.1.2): the quotes
 * removed, each backslash escape undone; else as it is. */
static void
maildir_unquote(pst_str_t *local, u_char *buf, size_t size)
{
    size_t  i, n = 0;

    if (local->len < 2 || local->data[0] != '"'
        || local->data[local->len - 1] != '"' || local->len > size)
    {
        return;
    }
    for (i = 1; i + 1 < local->len; i++) {
        if (local->data[i] == '\\' && i + 2 < local->len) {
            i++;
        }
        buf[n++] = local->data[i];
    }
    local->data = buf;
    local->len = n;
}


/*
 * The mailbox of addr ("local@domain") by the template into out:
 * PST_OK, or PST_DECLINED with why when the address cannot have one
 * (an unsafe or empty part, a path too long).
 */
static int
maildir_expand(const pst_str_t *tmpl, const pst_str_t *addr, char *out,
    size_t size, const char **why)
{
    const u_char  *at, *t = tmpl->data;
    u_char         unq[1024];
    pst_str_t      local, domain;
    size_t         i, o = 0;
    int            rc;

    at = addr->len > 0 ? memrchr(addr->data, '@', addr->len) : NULL;
    local.data = addr->data;
    local.len = at != NULL ? (size_t) (at - addr->data) : addr->len;
    domain.data = at != NULL ? (u_char *) at + 1 : addr->data;
    domain.len = at != NULL ? addr->len - local.len - 1 : 0;
    maildir_unquote(&local, unq, sizeof(unq));

    for (i = 0; i < tmpl->len; i++) {
        rc = PST_OK;
        if (t[i] == '%' && t[i + 1] == 'u') {
            rc = maildir_part(out, &o, size, local.data, local.len, why);
            i++;
        } else if (t[i] == '%' && t[i + 1] == 'd') {
            rc = maildir_part(out, &o, size, domain.data, domain.len, why);
            i++;
        } else if (o + 1 >= size) {
            *why = "a mailbox path that is too long";
            rc = PST_DECLINED;
        } else {
            out[o++] = (char) t[i];
            i += (t[i] == '%');         /* "%%" */
        }
        if (rc != PST_OK) {
            return rc;
        }
    }
    out[o] = '\0';
    return PST_OK;
}


static void *
maildir_resolve(const pst_str_t *nexthop, void *main_conf,
    pst_route_done_pt done, void *data)
{
    maildir_resolve_t  *r;

    r = calloc(1, sizeof(maildir_resolve_t));
    if (r == NULL) {
        return NULL;
    }
    r->nexthop = nexthop->len > 0;      /* the template is the next hop */
    r->conf = main_conf;
    r->done = done;
    r->data = data;
    /* done() must come later, never from inside resolve() */
    r->timer = pst_timer_add(0, maildir_resolved, r);
    if (r->timer == NULL) {
        free(r);
        return NULL;
    }
    return r;
}


static void
maildir_resolved(void *data)
{
    maildir_resolve_t  *r = data;
    pst_route_t         route;

    memset(&route, 0, sizeof(route));
    if (r->nexthop) {
        /* "transport KEY maildir NEXTHOP;": said, not silently ignored */
        route.verdict = PST_HOOK_TEMPFAIL;
        route.code = 451;
        route.ecode = "4.3.5";
        route.text = "deliver_maildir takes no next hop (maildir_path"
                     " says where mail goes)";
        r->done(r->data, &route);
        free(r);
        return;
    }
    route.verdict = PST_HOOK_ACCEPT;
    route.local = maildir_deliver;
    route.local_conf = r->conf;
    route.local_name = "maildir";
    r->done(r->data, &route);
    free(r);
}


static void
maildir_cancel(void *handle)
{
    maildir_resolve_t  *r = handle;

    pst_timer_cancel(r->timer);
    free(r);
}



/* The reply for errno err at step what (of path). */
static void
maildir_error(const maildir_conf_t *c, pst_local_result_t *out, int err,
    const char *what, const char *path)
{
    int          code = 451;
    const char  *ecode = "4.3.0";

    if (err == EDQUOT) {
        code = c->quota_bounce ? 552 : 452;
        ecode = c->quota_bounce ? "5.2.2" : "4.2.2";
    } else if (err == ENOSPC) {
        code = 452;
        ecode = "4.3.1";
    } else if (err == ENAMETOOLONG) {
        code = 553;
        ecode = "5.1.3";
    }
    out->code = code;
    snprintf(out->ecode, sizeof(out->ecode), "%s", ecode);
    snprintf(out->text, sizeof(out->text), "maildir delivery failed: %s"
             " %.300s: %s", what, path, strerror(err));
}


/* Give a new file (fd) or directory (path) to maildir_user. */
static int
maildir_own(const maildir_conf_t *c, int fd, const char *path)
{
    if (c->uid == (uid_t) -1) {
        return 0;
    }
    if (fd != -1) {
        return fchown(fd, c->uid, c->gid);
    }
    return path != NULL ? lchown(path, c->uid, c->gid) : -1;
}


/* mkdir path (0700, given to maildir_user); 0 when it is there, -1. */
static int
maildir_mkdir(const maildir_conf_t *c, const char *path)
{
    if (mkdir(path, 0700) == 0) {
        return maildir_own(c, -1, path);
    }
    return errno == EEXIST ? 0 : -1;
}


/*
 * The mailbox and every directory between the template's base and it,
 * then tmp/, new/, cur/.  -1 with errno and *what on failure (ENOTDIR:
 * a file where a directory should be).
 */
static int
maildir_make(const maildir_conf_t *c, char *path, const char **what)
{
    static const char  *sub[] = { "/tmp", "/new", "/cur" };
    size_t              i, n = strlen(path);
    struct stat         st;

    *what = "mkdir";
    for (i = c->base + 1; i < n; i++) {
        if (path[i] == '/') {
            path[i] = '\0';
            if (maildir_mkdir(c, path) != 0) {
                return -1;
            }
            path[i] = '/';
        }
    }
    if (maildir_mkdir(c, path) != 0) {
        return -1;
    }
    for (i = 0; i < 3; i++) {
        if (n + 5 >= MAILDIR_PATH_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(path + n, sub[i], 5);
        if (maildir_mkdir(c, path) != 0
            || stat(path, &st) != 0
            || (!S_ISDIR(st.st_mode) && (errno = ENOTDIR)))
        {
            return -1;
        }
        path[n] = '\0';
    }
    return 0;
}


/* The bytes in new/ and cur/ (",S=" of each name, else its size). */
static off_t
maildir_usage(const char *path)
{
    static const char  *sub[] = { "new", "cur" };
    char                dir[MAILDIR_PATH_MAX];
    struct dirent      *de;
    struct stat         st;
    const char         *s;
    DIR                *dp;
    off_t               sum = 0;
    int                 i;

    for (i = 0; i < 2; i++) {
        snprintf(dir, sizeof(dir), "%s/%s", path, sub[i]);
        dp = opendir(dir);
        if (dp == NULL) {
            return -1;
        }
        while ((de = readdir(dp)) != NULL) {
            if (de->d_name[0] == '.') {
                continue;
            }
            s = strstr(de->d_name, ",S=");
            if (s != NULL) {
                sum += strtoll(s + 3, NULL, 10);
            } else if (fstatat(dirfd(dp), de->d_name, &st, 0) == 0) {
                sum += st.st_size;
            }
        }
        closedir(dp);
    }
    return sum;
}


/* "SEC.MUSECPpidQn.host" (maildir(5)); '/' and ':' of host escaped. */
static void
maildir_unique(char *name, size_t size)
{
    struct timeval  tv;
    unsigned long   q = __atomic_add_fetch(&maildir_seq, 1, __ATOMIC_RELAXED);
    char            host[256], safe[800], *p = safe;
    size_t          i;

    gettimeofday(&tv, NULL);
    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    for (i = 0; host[i] != '\0'; i++) {
        if (host[i] == '/' || host[i] == ':') {
            p += sprintf(p, "\\%03o", (unsigned) (u_char) host[i]);
        } else {
            *p++ = host[i];
        }
    }
    *p = '\0';
    snprintf(name, size, "%ld.M%06ldP%ldQ%lu.%s", (long) tv.tv_sec,
             (long) tv.tv_usec, (long) getpid(), q, safe);
}


/* Return-Path:, Delivered-To:, the message; fsync.  -1 with errno. */
static int
maildir_write(const maildir_conf_t *c, const pst_local_msg_t *m,
    pst_uint_t rcpt, int fd, off_t *size)
{
    const pst_str_t  *snd = pst_local_sender(m);
    const pst_str_t  *to = pst_local_rcpt(m, rcpt);
    char              hdr[2048];
    off_t             n;
    int               len;

    len = snprintf(hdr, sizeof(hdr), "Return-Path: <%.*s>\nDelivered-To:"
                   " %.*s\n", (int) maildir_min(snd->len, 900), snd->data,
                   (int) maildir_min(to->len, 900), to->data);
    if (maildir_own(c, fd, NULL) != 0
        || write(fd, hdr, (size_t) len) != len
        || pst_local_copy(m, fd, 1, &n) != PST_OK
        || fsync(fd) != 0)
    {
        return -1;
    }
    *size = len + n;
    return 0;
}


/* Over quota with size more: 1 (out filled), else 0. */
static int
maildir_over_quota(const maildir_conf_t *c, const char *path, off_t size,
    pst_local_result_t *out)
{
    off_t  used;

    if (c->quota == 0) {
        return 0;
    }
    used = maildir_usage(path);
    if (used >= 0 && used + size <= (off_t) c->quota) {
        return 0;
    }
    out->code = c->quota_bounce ? 552 : 452;
    snprintf(out->ecode, sizeof(out->ecode), "%s",
             c->quota_bounce ? "5.2.2" : "4.2.2");
    snprintf(out->text, sizeof(out->text), "mailbox full: %lld + %lld"
             " bytes over the quota of %llu", (long long) (used > 0 ? used : 0),
             (long long) size, (unsigned long long) c->quota);
    return 1;
}


/* tmp/NAME written and synced, renamed into new/NAME,S=SIZE, new/ synced. */
static int
maildir_store(const maildir_conf_t *c, const pst_local_msg_t *m,
    pst_uint_t rcpt, const char *path, pst_local_result_t *out)
{
    char   name[1024], tmp[MAILDIR_PATH_MAX], dst[MAILDIR_PATH_MAX];
    off_t  size = 0;
    int    fd, dfd, err;

    maildir_unique(name, sizeof(name));
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s", path, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd == -1) {
        maildir_error(c, out, errno, "create", tmp);
        return PST_OK;
    }
    if (maildir_write(c, m, rcpt, fd, &size) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        maildir_error(c, out, err, "write", tmp);
        return PST_OK;
    }
    close(fd);
    if (maildir_over_quota(c, path, size, out)) {
        unlink(tmp);
        return PST_OK;
    }
    snprintf(dst, sizeof(dst), "%s/new/%s,S=%lld", path, name,
             (long long) size);
    if (rename(tmp, dst) != 0) {
        err = errno;
        unlink(tmp);
        maildir_error(c, out, err, "rename to", dst);
        return PST_OK;
    }
    snprintf(dst, sizeof(dst), "%s/new", path);
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1 || fsync(dfd) != 0) {
        /* in new/ already: a retry could make a second copy, but a
         * crash now could lose this one; defer is the safe side */
        maildir_error(c, out, errno, "fsync", dst);
    } else {
        out->code = 250;
        snprintf(out->ecode, sizeof(out->ecode), "2.0.0");
        snprintf(out->text, sizeof(out->text), "delivered to maildir");
    }
    if (dfd != -1) {
        close(dfd);
    }
    return PST_OK;
}


/* The local-delivery function (pst_local_pt), on an I/O thread. */
static int
maildir_deliver(const pst_local_msg_t *m, pst_uint_t rcpt, void *conf,
    pst_local_result_t *out)
{
    maildir_conf_t    *c = conf;
    const pst_str_t   *to = pst_local_rcpt(m, rcpt);
    const char        *why, *what;
    char               path[MAILDIR_PATH_MAX];

    if (to == NULL) {
        return PST_ERROR;
    }
    /* room left for "/tmp/" or "/new/", a unique name and ",S=" */
    if (maildir_expand(&c->path, to, path, sizeof(path) - 1100, &why)
        != PST_OK)
    {
        out->code = 550;
        snprintf(out->ecode, sizeof(out->ecode), "5.1.3");
        snprintf(out->text, sizeof(out->text), "no maildir for this"
                 " address: %s", why);
        return PST_OK;
    }
    if (maildir_make(c, path, &what) != 0) {
        maildir_error(c, out, errno, what, path);
        return PST_OK;
    }
    return maildir_store(c, m, rcpt, path, out);
}
