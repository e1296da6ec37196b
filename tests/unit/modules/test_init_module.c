/*
 * test_init_module.c -- a module whose init_module() leaves a trace, for
 * the tests of when the master calls it:
 *     test_init_marker PATH;   init_module() writes the master's pid there
 *     test_init_fail on;       init_module() fails
 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <postern_module.h>

typedef struct {
    pst_str_t                    marker;
    pst_int_t                    fail;
} tim_conf_t;


static void *
tim_create(pst_conf_t *cf)
{
    tim_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(tim_conf_t));
    if (c != NULL) {
        c->fail = PST_CONF_UNSET;
    }
    return c;
}


static int
tim_init_module(pst_cycle_t *cycle, void *data)
{
    tim_conf_t  *c = data;
    char         buf[32];
    int          fd, n;

    (void) cycle;

    if (c->fail == 1) {
        return PST_ERROR;
    }

    if (c->marker.data != NULL) {
        fd = open((char *) c->marker.data, O_WRONLY | O_CREAT | O_TRUNC,
                  0644);
        if (fd == -1) {
            return PST_ERROR;
        }
        n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
        (void) !write(fd, buf, (size_t) n);
        close(fd);
    }

    return PST_OK;
}


static const pst_command_t  tim_commands[] = {
    { "test_init_marker", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_MAIN_CONF, offsetof(tim_conf_t, marker),
      NULL },
    { "test_init_fail", PST_CONF_MAIN | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_MAIN_CONF, offsetof(tim_conf_t, fail),
      NULL },
    pst_null_command
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_init_module",
    .version = "1.0",
    .commands = tim_commands,
    .create_main_conf = tim_create,
    .init_module = tim_init_module,
};
