/*
 * check_util.c -- helpers shared by the unit suites (see check_util.h).
 *
 * Failures in here are test-environment problems (no /tmp, a module
 * not built): they abort the test with a message rather than return
 * codes every caller would have to check.
 */

#include "check_util.h"

#include <ftw.h>


char *
tu_tmpdir(void)
{
    const char  *base;
    char        *dir;

    /* check_main.c makes one directory per run and removes it at the
     * end: a failed assertion _exit()s the test's process before it
     * can clean up after itself */
    base = getenv("PST_UNIT_TMP");
    if (base == NULL || base[0] == '\0') {
        base = getenv("TMPDIR");
    }
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }

    ck_assert(asprintf(&dir, "%s/pst-unit-XXXXXX", base) > 0);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp(%s): %s", dir,
                  strerror(errno));

    return dir;
}


static int
tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void) st;
    (void) f;

    if (flag == FTW_DP) {
        return rmdir(path);
    }
    return unlink(path);
}


void
tu_rmtree(const char *dir)
{
    if (dir != NULL) {
        (void) nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}


static void
tu_mkdirs(const char *dir, const char *name)
{
    char  *path, *p;

    ck_assert(asprintf(&path, "%s/%s", dir, name) > 0);

    for (p = path + strlen(dir) + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            (void) mkdir(path, 0755);
            *p = '/';
        }
    }

    free(path);
}


char *
tu_module_copy(const char *dir, const char *name, mode_t mode)
{
    const char  *src_dir;
    char        *src, *dst, buf[65536];
    ssize_t      n;
    int          in, out;

    /* make unit runs check_unit in objs/tests, next to modules/ */
    src_dir = getenv("PST_TEST_MODULES");
    if (src_dir == NULL) {
        src_dir = "modules";
    }

    ck_assert(asprintf(&src, "%s/%s", src_dir, name) > 0);
    ck_assert(asprintf(&dst, "%s/%s", dir, name) > 0);

    in = open(src, O_RDONLY);
    ck_assert_msg(in != -1, "test module %s: %s (run \"make unit\")", src,
                  strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_msg(out != -1, "%s: %s", dst, strerror(errno));

    while ((n = read(in, buf, sizeof(buf))) > 0) {
        ck_assert(write(out, buf, (size_t) n) == n);
    }

    close(in);
    close(out);

    /* explicit chmod: the umask must not decide what the loader sees */
    ck_assert(chmod(dst, mode) == 0);

    free(src);
    return dst;
}


void
tu_write(const char *dir, const char *name, const char *text)
{
    const char  *p, *q;
    char        *path, *mod, *copy;
    FILE        *f;

    tu_mkdirs(dir, name);

    ck_assert(asprintf(&path, "%s/%s", dir, name) > 0);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));

    for (p = text; *p != '\0'; /* void */) {
        if (strncmp(p, "@MOD@/", 6) != 0) {
            fputc(*p++, f);
            continue;
        }

        p += 6;
        q = p;
        while (*q != '\0' && *q != ';' && *q != ' ' && *q != '"'
               && *q != '\n')
        {
            q++;
        }

        mod = strndup(p, (size_t) (q - p));
        ck_assert(mod != NULL);
        copy = tu_module_copy(dir, mod, 0755);
        fputs(copy, f);
        free(copy);
        free(mod);
        p = q;
    }

    ck_assert(fclose(f) == 0);
    free(path);
}


/* Remove every occurrence of what from s, in place. */
static void
tu_strip(char *s, const char *what)
{
    size_t  n = strlen(what);
    char   *p;

    while ((p = strstr(s, what)) != NULL) {
        memmove(p, p + n, strlen(p + n) + 1);
    }
}


char *
tu_load_conf(const char *dir, const char *main_text,
    const char *const *extra, pst_cycle_t **cycle)
{
    tu_write(dir, "main.conf", main_text);
    for ( /* void */ ; extra != NULL && extra[0] != NULL; extra += 2) {
        tu_write(dir, extra[0], extra[1]);
    }

    return tu_init_cycle(dir, "main.conf", cycle);
}


char *
tu_init_cycle(const char *dir, const char *file, pst_cycle_t **cycle)
{
    char         *log, *out, *prefix;
    struct stat   st;
    ssize_t       n;
    int           fd, saved;

    ck_assert(asprintf(&log, "%s/.stderr", dir) > 0);
    fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert(fd != -1);

    fflush(stderr);
    saved = dup(STDERR_FILENO);
    ck_assert(saved != -1);
    ck_assert(dup2(fd, STDERR_FILENO) != -1);

    *cycle = pst_init_cycle(dir, file, NULL, NULL);

    fflush(stderr);
    ck_assert(dup2(saved, STDERR_FILENO) != -1);
    close(saved);

    ck_assert(fstat(fd, &st) == 0);
    out = calloc(1, (size_t) st.st_size + 1);
    ck_assert(out != NULL);
    n = pread(fd, out, (size_t) st.st_size, 0);
    ck_assert(n == st.st_size);
    close(fd);
    unlink(log);
    free(log);

    ck_assert(asprintf(&prefix, "%s/", dir) > 0);
    tu_strip(out, prefix);
    free(prefix);

    return out;
}


const char *
tu_first_line(const char *s)
{
    static char  line[1024];
    size_t       n;

    n = strcspn(s, "\n");
    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }
    memcpy(line, s, n);
    line[n] = '\0';

    return line;
}
