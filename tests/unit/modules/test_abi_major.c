/*
 * test_abi_major.c -- built for a future ABI major (2.0): refused, and
 * the message must name both versions.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    .magic = POSTERN_MODULE_MAGIC, .abi_major = POSTERN_ABI_MAJOR + 1,
    .abi_minor = 0, .size = sizeof(pst_module_t),
    .name = "test_abi_major",
};
