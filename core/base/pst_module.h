/*
 * pst_module.h -- the module registry and load_module.
 *
 * Built-in modules (core, smtp) come first; dynamic modules follow in
 * the order of their load_module lines, which is also the order their
 * hooks run in (a module's hook priority, or a module_priority line,
 * reorders them).  The loader refuses, with a file:line message naming
 * both versions:
 *   - a file without the postern_module symbol or with a wrong magic;
 *   - a different ABI major, or a newer ABI minor than this binary's;
 *   - a duplicate module name, or a directive another module declares;
 *   - load_module after the smtp block (too late);
 *   - a file writable by group or others, or owned by another user.
 * The descriptor is copied and zero-extended, so a module built against
 * an older ABI minor reads NULL for fields it does not know.
 */

#ifndef PST_MODULE_H
#define PST_MODULE_H

#define PST_MAX_MODULES          64

typedef enum {
    PST_FAIL_TEMPFAIL = 0,
    PST_FAIL_ACCEPT,
    PST_FAIL_REJECT
} pst_fail_action_e;

typedef struct {
    pst_module_t                 desc;       /* zero-extended copy */
    const pst_module_t          *orig;       /* address inside the .so */
    void                        *handle;     /* dlopen(); NULL: built in */
    pst_str_t                    path;
    pst_uint_t                   index;
    int                          priority;   /* module_priority: added */
    pst_msec_t                   timeout;    /* hook timeout */
    pst_fail_action_e            fail_action;
    const char                  *file;
    pst_uint_t                   line;
} pst_module_entry_t;

/* The built-in modules, NULL-terminated, in index order: defined by the
 * program (pst_modules.c), each module by its layer. */
extern const pst_module_t *const  pst_builtin_modules[];

/* Register the built-in modules in a new cycle. */
int pst_modules_init(pst_conf_t *cf);
/* load_module: path is the directive's argument. */
char *pst_load_module(pst_conf_t *cf, const pst_str_t *path);
/* Entry of a module by name or by descriptor address; NULL if absent. */
pst_module_entry_t *pst_module_find(pst_cycle_t *cycle, const u_char *name,
    size_t len);
pst_module_entry_t *pst_module_entry(pst_cycle_t *cycle,
    const pst_module_t *m);
/* Check a descriptor (also used by the unit tests).  Returns NULL or a
 * message in buf. */
const char *pst_module_check(const pst_module_t *m, char *buf, size_t size);

#endif /* PST_MODULE_H */
