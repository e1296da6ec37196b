/*
 * test_dupgood.c -- declares "test_good_value", which the dynamic
 * module test_good already owns: the conflict is between two loaded
 * modules, not only with the core.
 */

#include <postern_module.h>

static char *
test_dupgood_set(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    (void) cf;
    (void) cmd;
    (void) conf;

    return PST_CONF_OK;
}


static const pst_command_t  test_dupgood_commands[] = {

    { "test_good_value", PST_CONF_SMTP | PST_CONF_TAKE1,
      test_dupgood_set, PST_SRV_CONF, 0, NULL },

    pst_null_command
};


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_dupgood",
    .commands = test_dupgood_commands,
};
