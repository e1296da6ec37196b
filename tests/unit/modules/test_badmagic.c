/*
 * test_badmagic.c -- "postern_module" exists but is something else (or
 * a descriptor of a different, incompatible format): wrong magic.
 */

#include <postern_module.h>

PST_EXPORT const pst_module_t  postern_module = {
    .magic = 0x12345678, .abi_major = POSTERN_ABI_MAJOR,
    .abi_minor = POSTERN_ABI_MINOR, .size = sizeof(pst_module_t),
    .name = "test_badmagic",
};
