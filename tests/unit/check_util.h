/*
 * check_util.h -- helpers shared by the unit suites.
 *
 * Byte strings in tables are tstr_t so that they may hold NUL and their
 * length does not depend on strlen().  The configuration helpers build
 * a private prefix directory per test, write configuration files into
 * it, and run pst_init_cycle() with stderr captured, so that a test can
 * compare the exact "file:line: message" text the parser printed.
 */

#ifndef CHECK_UTIL_H
#define CHECK_UTIL_H

/* before any system header: asprintf(), mkdtemp(), nftw() */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>

#include "pst_core.h"
#include "pst_smtp.h"

typedef struct {
    const char                  *data;
    size_t                       len;
} tstr_t;

#define T(lit)                   { lit, sizeof(lit) - 1 }
#define TNULL                    { NULL, 0 }

/* A fresh directory under $TMPDIR (or /tmp), without a trailing '/'. */
char *tu_tmpdir(void);
/* Remove a directory tree made by tu_tmpdir(). */
void tu_rmtree(const char *dir);
/* Write text into dir/name, making sub-directories; "@MOD@/x.so" in the
 * text is replaced by dir/x.so, a copy of the test module x.so made
 * with mode 0755 (see tu_module_copy()). */
void tu_write(const char *dir, const char *name, const char *text);
/* Copy the built test module name (objs/tests/modules/name) to
 * dir/name with the given mode; returns the new path. */
char *tu_module_copy(const char *dir, const char *name, mode_t mode);

/*
 * Write main.conf (and the extra files, name/text pairs ending with
 * NULL) into dir, then run pst_init_cycle(dir, "main.conf").  Returns
 * what was printed on stderr with every "dir/" removed, so expected
 * messages read "main.conf:3: ...".  *cycle gets the cycle (NULL on
 * failure); the caller destroys it.
 */
char *tu_load_conf(const char *dir, const char *main_text,
    const char *const *extra, pst_cycle_t **cycle);
/* The same for an existing file: pst_init_cycle(dir, file) with stderr
 * captured and "dir/" removed from it. */
char *tu_init_cycle(const char *dir, const char *file, pst_cycle_t **cycle);
/* The first line of s (a static copy, without the newline). */
const char *tu_first_line(const char *s);

#endif /* CHECK_UTIL_H */
