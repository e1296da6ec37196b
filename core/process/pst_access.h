/*
 * pst_access.h -- can the worker account use the paths it needs?
 */

#ifndef PST_ACCESS_H
#define PST_ACCESS_H

/* Checked as the workers will run (a child with their credentials).
 * prepared: pst_spool_prepare() has run.  PST_OK, or PST_ERROR with
 * the path and the reason in the log. */
int pst_check_worker_access(pst_cycle_t *cycle, int prepared);

/* A path besides the spool (pst_conf_worker_path(), postern_module.h). */
typedef struct {
    char                        *path;         /* NUL-terminated */
    int                          mode;         /* access(2) */
    const char                  *what;
} pst_worker_path_t;

#endif /* PST_ACCESS_H */
