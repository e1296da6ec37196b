/*
 * test_noname.c -- a descriptor with an empty name: it could not be
 * switched on or off, nor named in a message.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "",
};
