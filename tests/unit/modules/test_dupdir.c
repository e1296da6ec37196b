/*
 * test_dupdir.c -- declares "hostname", a directive of the built-in
 * smtp module, in an overlapping context.
 */

#include <postern_module.h>

static char *
test_dupdir_set(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    (void) cf;
    (void) cmd;
    (void) conf;

    return PST_CONF_OK;
}


static const pst_command_t  test_dupdir_commands[] = {

    { "test_dupdir_ok", PST_CONF_SRV | PST_CONF_TAKE1,
      test_dupdir_set, PST_SRV_CONF, 0, NULL },

    { "hostname", PST_CONF_SRV | PST_CONF_TAKE1,
      test_dupdir_set, PST_SRV_CONF, 0, NULL },

    pst_null_command
};


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_dupdir",
    .commands = test_dupdir_commands,
};
