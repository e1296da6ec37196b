/*
 * fuzz_conf.c -- libFuzzer harness for the configuration parser: the
 * input is written to main.conf in a private directory and read with
 * pst_init_cycle(), as the master does at start-up and on HUP (the
 * tokenizer, directive dispatch, every slot setter, the merge and
 * init functions of the built-in modules, the hook chains).  A cycle
 * that loads is destroyed again, so leaks show.
 *
 * Inputs that would reach outside the directory in a way a fuzzer
 * should not are skipped: "load_module" (dlopen of any file), paths
 * into /dev, /proc or /sys (a certificate read from /dev/zero never
 * ends), and glob includes (they would parse the whole disk).  The
 * tokenizer only unescapes quotes and backslashes, so none of these
 * can be spelled without the plain substring.  The error log goes to
 * /dev/null: messages are the parser's business, crashes ours.
 */

#include "pst_core.h"
#include "pst_event.h"
#include "pst_process.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char  fz_dir[64];
static char  fz_file[96];


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_conf: %s\n", what);
    abort();
}


static void
fz_cleanup(void)
{
    unlink(fz_file);
    rmdir(fz_dir);
}


static int
fz_has(const uint8_t *data, size_t size, const char *s)
{
    return memmem(data, size, s, strlen(s)) != NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_cycle_t  *cycle;
    int           fd;

    if (fz_dir[0] == '\0') {
        snprintf(fz_dir, sizeof(fz_dir), "/tmp/pst-fuzz-conf-XXXXXX");
        if (mkdtemp(fz_dir) == NULL) {
            fz_fail("mkdtemp");
        }
        snprintf(fz_file, sizeof(fz_file), "%s/main.conf", fz_dir);
        atexit(fz_cleanup);

        if (pst_log_open(&pst_log_main, "/dev/null", PST_LOG_EMERG)
            != PST_OK)
        {
            fz_fail("cannot open /dev/null");
        }
        pst_time_update();
    }

    if (size > 64 * 1024
        || fz_has(data, size, "load_module")
        || fz_has(data, size, "/dev") || fz_has(data, size, "/proc")
        || fz_has(data, size, "/sys")
        || (fz_has(data, size, "include")
            && (memchr(data, '*', size) || memchr(data, '?', size)
                || memchr(data, '[', size))))
    {
        return -1;
    }

    fd = open(fz_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1 || (size > 0 && write(fd, data, size) != (ssize_t) size)) {
        fz_fail("cannot write main.conf");
    }
    close(fd);

    cycle = pst_init_cycle(fz_dir, "main.conf", NULL, NULL);
    pst_destroy_cycle(cycle);

    return 0;
}
