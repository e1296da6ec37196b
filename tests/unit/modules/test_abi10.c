/*
 * test_abi10.c -- a module built against the ABI 1.0 header (a copy of
 * the released core/postern_module.h, tests/fixtures/abi-1.0/): it must
 * keep loading and working in this core (docs/PLUGINS.md "The ABI
 * promise"; tests/unit/check_module.c test_module_old_abi).
 */

#include "../../fixtures/abi-1.0/postern_module.h"


typedef struct {
    pst_int_t                    value;
} test_abi_conf_t;


static void *
test_abi_create_srv_conf(pst_conf_t *cf)
{
    test_abi_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(test_abi_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->value = PST_CONF_UNSET;
    return c;
}


static char *
test_abi_merge_srv_conf(pst_conf_t *cf, void *parent, void *child)
{
    test_abi_conf_t  *prev = parent, *conf = child;

    (void) cf;

    pst_conf_merge_value(conf->value, prev->value, 10);
    return PST_CONF_OK;
}


static const pst_command_t  test_abi_commands[] = {

    { "test_abi10_value", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(test_abi_conf_t, value), NULL },

    pst_null_command
};


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_abi10",
    .version = "1.0",
    .description = "built against the ABI 1.0 header",
    .commands = test_abi_commands,
    .create_srv_conf = test_abi_create_srv_conf,
    .merge_srv_conf = test_abi_merge_srv_conf,
};
