/*
 * test_dupname.c -- a second module that calls itself "test_good".
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_good",
};
