/*
 * test_good.c -- a well-formed module for the loader tests: one server
 * directive (a number slot) with a default, so a test can see both the
 * directive and the merge at work.
 */

#include <postern_module.h>


typedef struct {
    pst_int_t                    value;
} test_good_conf_t;


static void *
test_good_create_srv_conf(pst_conf_t *cf)
{
    test_good_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(test_good_conf_t));
    if (c == NULL) {
        return NULL;
    }

    c->value = PST_CONF_UNSET;
    return c;
}


static char *
test_good_merge_srv_conf(pst_conf_t *cf, void *parent, void *child)
{
    test_good_conf_t  *prev = parent, *conf = child;

    (void) cf;

    pst_conf_merge_value(conf->value, prev->value, 7);
    return PST_CONF_OK;
}


static const pst_command_t  test_good_commands[] = {

    { "test_good_value", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_SRV_CONF,
      offsetof(test_good_conf_t, value), NULL },

    pst_null_command
};


PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_good",
    .version = "1.0",
    .description = "unit test module",
    .commands = test_good_commands,
    .create_srv_conf = test_good_create_srv_conf,
    .merge_srv_conf = test_good_merge_srv_conf,
};
