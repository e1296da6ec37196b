/*
 * test_smtpname.c -- a module that takes the name of a built-in one.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "smtp",
};
