/*
 * test_abi_minor.c -- built for a newer ABI minor than the core's: it
 * may use functions this core does not have, so it is refused.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    .magic = POSTERN_MODULE_MAGIC, .abi_major = POSTERN_ABI_MAJOR,
    .abi_minor = POSTERN_ABI_MINOR + 1, .size = sizeof(pst_module_t),
    .name = "test_abi_minor",
};
