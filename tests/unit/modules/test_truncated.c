/*
 * test_truncated.c -- a descriptor whose size field says it is shorter
 * than the fields every ABI 1 module has.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    .magic = POSTERN_MODULE_MAGIC, .abi_major = POSTERN_ABI_MAJOR,
    .abi_minor = POSTERN_ABI_MINOR, .size = 16,
    .name = "test_truncated",
};
