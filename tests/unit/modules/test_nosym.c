/*
 * test_nosym.c -- a shared object that is not a Postern module: it
 * exports a symbol, but not "postern_module".
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_modul = {
    PST_MODULE_HEADER,
    .name = "test_nosym",
};
