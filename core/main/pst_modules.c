/*
 * pst_modules.c -- the built-in modules of this program, in registry
 * order (the index of each is fixed: core 0, smtp 1, smtp_tls 2,
 * smtp_auth 3, metrics 4, queue 5, deliver 6, transport 7, redis 8).
 * The registry (pst_module.c, in the base layer) reads this table, so
 * that it knows no layer above its own; this file is the program's
 * composition, as nginx's configure writes objs/ngx_modules.c.
 */

#include "pst_core.h"
#include "pst_process.h"
#include "pst_smtp.h"
#include "pst_queue.h"
#include "pst_deliver.h"
#include "pst_transport.h"
#include "pst_redis.h"


const pst_module_t *const  pst_builtin_modules[] = {
    &pst_core_module,
    &pst_smtp_core_module,
    &pst_smtp_tls_module,
    &pst_smtp_auth_module,
    &pst_metrics_module,
    &pst_queue_conf_module,
    &pst_deliver_conf_module,
    &pst_transport_module,
    &pst_redis_module,
    NULL
};
