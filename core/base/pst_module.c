/*
 * pst_module.c -- module registry and the dynamic loader (see
 * pst_module.h).
 */

#include "pst_core.h"

#include <dlfcn.h>


pst_cycle_t  *pst_cycle;


static int pst_module_add(pst_conf_t *cf, pst_cycle_t *cycle,
    const pst_module_t *m, void *handle, const pst_str_t *path);
static void pst_module_unload(void *handle);


const char *
pst_module_check(const pst_module_t *m, char *buf, size_t size)
{
    if (m->magic != POSTERN_MODULE_MAGIC) {
        snprintf(buf, size, "is not a Postern module (bad magic 0x%08x)",
                 m->magic);
        return buf;
    }

    if (m->abi_major != POSTERN_ABI_MAJOR
        || m->abi_minor > POSTERN_ABI_MINOR)
    {
        snprintf(buf, size, "was built for module ABI %u.%u, but this"
                 " postern provides ABI %u.%u; rebuild the module against"
                 " this version (see docs/PLUGINS.md, \"ABI history\")",
                 m->abi_major, m->abi_minor, POSTERN_ABI_MAJOR,
                 POSTERN_ABI_MINOR);
        return buf;
    }

    if (m->size < offsetof(pst_module_t, hooks)) {
        snprintf(buf, size, "has a truncated descriptor (%u bytes)",
                 m->size);
        return buf;
    }

    if (m->name == NULL || m->name[0] == '\0' || strlen(m->name) > 64) {
        snprintf(buf, size, "has no valid name");
        return buf;
    }

    return NULL;
}


int
pst_modules_init(pst_conf_t *cf)
{
    pst_uint_t  i;

    for (i = 0; pst_builtin_modules[i] != NULL; i++) {
        if (pst_module_add(cf, cf->cycle, pst_builtin_modules[i], NULL, NULL)
            != PST_OK)
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


pst_module_entry_t *
pst_module_find(pst_cycle_t *cycle, const u_char *name, size_t len)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (strlen(me[i].desc.name) == len
            && memcmp(me[i].desc.name, name, len) == 0)
        {
            return &me[i];
        }
    }

    return NULL;
}


pst_module_entry_t *
pst_module_entry(pst_cycle_t *cycle, const pst_module_t *m)
{
    pst_module_entry_t  *me;
    pst_uint_t           i;

    me = cycle->modules.elts;
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].orig == m) {
            return &me[i];
        }
    }

    return NULL;
}


void *
pst_module_main_conf(const pst_module_t *m)
{
    pst_module_entry_t  *me;

    if (pst_cycle == NULL) {
        return NULL;
    }

    me = pst_module_entry(pst_cycle, m);
    return me ? pst_cycle->main_conf[me->index] : NULL;
}


/* Two modules may not declare the same directive in the same context. */
static const char *
pst_module_conflict(pst_cycle_t *cycle, const pst_module_t *m,
    const char **other)
{
    const pst_command_t  *a, *b;
    pst_module_entry_t   *me;
    pst_uint_t            i;
    unsigned              ctx = PST_CONF_MAIN | PST_CONF_SMTP | PST_CONF_SRV;

    if (m->commands == NULL) {
        return NULL;
    }

    me = cycle->modules.elts;
    for (a = m->commands; a->name != NULL; a++) {
        if (strcmp(a->name, "include") == 0) {
            *other = "core";
            return a->name;
        }
        for (i = 0; i < cycle->modules.nelts; i++) {
            if (strcmp(a->name, me[i].desc.name) == 0) {
                *other = me[i].desc.name;
                return a->name;
            }
            if (me[i].desc.commands == NULL) {
                continue;
            }
            for (b = me[i].desc.commands; b->name != NULL; b++) {
                if (strcmp(a->name, b->name) == 0
                    && (a->type & b->type & ctx))
                {
                    *other = me[i].desc.name;
                    return a->name;
                }
            }
        }
    }

    return NULL;
}


static int
pst_module_add(pst_conf_t *cf, pst_cycle_t *cycle, const pst_module_t *m,
    void *handle, const pst_str_t *path)
{
    pst_module_entry_t  *me;
    const char          *dir, *other;
    void                *conf;

    if (cycle->modules.nelts >= PST_MAX_MODULES) {
        pst_conf_error(cf, "too many modules (at most %d)", PST_MAX_MODULES);
        return PST_ERROR;
    }

    if (pst_module_find(cycle, (u_char *) m->name, strlen(m->name))
        != NULL)
    {
        pst_conf_error(cf, "module \"%s\" is already loaded", m->name);
        return PST_ERROR;
    }

    dir = pst_module_conflict(cycle, m, &other);
    if (dir != NULL) {
        pst_conf_error(cf, "module \"%s\" declares directive \"%s\", which"
                       " module \"%s\" already owns", m->name, dir, other);
        return PST_ERROR;
    }

    me = pst_array_push(&cycle->modules);
    if (me == NULL) {
        return PST_ERROR;
    }

    memset(me, 0, sizeof(pst_module_entry_t));
    memcpy(&me->desc, m, pst_min((size_t) m->size, sizeof(pst_module_t)));
    me->orig = m;
    me->handle = handle;
    me->index = cycle->modules.nelts - 1;
    me->timeout = PST_CONF_UNSET_MSEC;
    me->fail_action = PST_FAIL_TEMPFAIL;
    if (path != NULL) {
        me->path = *path;
    }
    me->file = cf->dir_file;
    me->line = cf->dir_line;

    if (me->desc.create_main_conf != NULL) {
        conf = me->desc.create_main_conf(cf);
        if (conf == NULL) {
            return PST_ERROR;
        }
        cycle->main_conf[me->index] = conf;
    }

    return PST_OK;
}


/*
 * A module file rebuilt at the same path while a running configuration
 * still has the old one loaded: dlopen() of the same name returns the
 * old, open handle, and a reload would keep running the old code.  The
 * loader remembers which file (device, inode, size, time) each open
 * handle came from.  A new file (another inode: what a build or an
 * install writes) is loaded through /proc/self/fd/N, a name dlopen() has
 * not seen, so its new code runs; a file changed in place (same inode)
 * is refused, since the old code's pages are that file and the process
 * that runs them can no longer be trusted: restart.
 */
typedef struct {
    void                        *handle;
    dev_t                        dev;
    ino_t                        ino;
    off_t                        size;
    struct timespec              mtime;
} pst_module_file_t;

static pst_module_file_t   *module_files;
static pst_uint_t           n_module_files;


static void
pst_module_unload(void *handle)
{
    pst_uint_t  i;

    for (i = 0; i < n_module_files; i++) {
        if (module_files[i].handle == handle) {
            module_files[i] = module_files[--n_module_files];
            break;
        }
    }
    dlclose(handle);
}


/* An open handle of the file at path (by its name), or NULL. */
static pst_module_file_t *
pst_module_file_open(const char *path)
{
    pst_uint_t  i;
    void       *h;

    h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (h == NULL) {
        return NULL;
    }
    dlclose(h);                 /* RTLD_NOLOAD took a reference */
    for (i = 0; i < n_module_files; i++) {
        if (module_files[i].handle == h) {
            return &module_files[i];
        }
    }
    return NULL;
}


static void
pst_module_file_note(void *handle, const struct stat *st)
{
    void  *p;

    p = realloc(module_files, (n_module_files + 1) * sizeof(*module_files));
    if (p == NULL) {
        return;                 /* only a rebuilt file goes unnoticed */
    }
    module_files = p;
    module_files[n_module_files].handle = handle;
    module_files[n_module_files].dev = st->st_dev;
    module_files[n_module_files].ino = st->st_ino;
    module_files[n_module_files].size = st->st_size;
    module_files[n_module_files].mtime = st->st_mtim;
    n_module_files++;
}


/* dlopen() the file at path as it is now (see above).  NULL: *why. */
static void *
pst_module_open(const char *path, const struct stat *st, const char **why)
{
    pst_module_file_t  *old;
    struct stat         now;
    char                name[64];
    void               *h;
    int                 fd;

    old = pst_module_file_open(path);
    if (old == NULL || (old->dev == st->st_dev && old->ino == st->st_ino
                        && old->size == st->st_size
                        && old->mtime.tv_sec == st->st_mtim.tv_sec
                        && old->mtime.tv_nsec == st->st_mtim.tv_nsec))
    {
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);    /* new, or the same */
        *why = h ? NULL : dlerror();
        return h;
    }
    if (old->dev == st->st_dev && old->ino == st->st_ino) {
        *why = "it was changed in place while loaded (write a new file and"
               " rename it over the old one, as make install does); restart"
               " postern to load it";
        return NULL;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        *why = strerror(errno);
        return NULL;
    }
    snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
    if (fstat(fd, &now) == -1 || now.st_dev != st->st_dev
        || now.st_ino != st->st_ino)
    {
        *why = "it was replaced while being loaded: try again";
        h = NULL;
    } else if (access(name, R_OK) == -1) {
        *why = "it was rebuilt since it was loaded, and without /proc the"
               " new file cannot be loaded beside the old one: restart"
               " postern to load it";
        h = NULL;
    } else {
        h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        *why = h ? NULL : dlerror();
    }
    close(fd);
    return h;
}


char *
pst_load_module(pst_conf_t *cf, const pst_str_t *arg)
{
    const pst_module_t  *m;
    struct stat          st;
    pst_str_t            path;
    const char          *why;
    char                 buf[512];
    void                *handle;

    if (cf->cycle->smtp_seen) {
        return "is specified too late: load_module lines must come before"
               " the smtp block";
    }

    path = *arg;
    if (pst_conf_full_name(cf, &path) != PST_OK) {
        return PST_CONF_ERROR;
    }

    if (stat((char *) path.data, &st) == -1) {
        pst_conf_error(cf, "cannot load module \"%s\": %s", path.data,
                       strerror(errno));
        return PST_CONF_ERROR;
    }

    /* code that runs as root must not be replaceable by others */
    if ((st.st_mode & (S_IWGRP | S_IWOTH))
        || (st.st_uid != 0 && st.st_uid != geteuid()))
    {
        pst_conf_error(cf, "refusing module \"%s\": it must be owned by root"
                       " or the user running postern and not be writable by"
                       " group or others", path.data);
        return PST_CONF_ERROR;
    }

    handle = pst_module_open((char *) path.data, &st, &why);
    if (handle == NULL) {
        pst_conf_error(cf, "cannot load module \"%s\": %s", path.data, why);
        return PST_CONF_ERROR;
    }

    if (pst_pool_cleanup_add(cf->pool, pst_module_unload, handle)
        != PST_OK)
    {
        dlclose(handle);
        return PST_CONF_ERROR;
    }
    pst_module_file_note(handle, &st);

    m = dlsym(handle, POSTERN_MODULE_SYMBOL);
    if (m == NULL) {
        pst_conf_error(cf, "module \"%s\" does not export \"%s\"",
                       path.data, POSTERN_MODULE_SYMBOL);
        return PST_CONF_ERROR;
    }

    why = pst_module_check(m, buf, sizeof(buf));
    if (why != NULL) {
        pst_conf_error(cf, "module \"%s\" %s", path.data, why);
        return PST_CONF_ERROR;
    }

    if (pst_module_add(cf, cf->cycle, m, handle, &path) != PST_OK) {
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}
