/*
 * dnsbl_async.c -- refuse a client whose address is listed in a DNS
 * blocklist, asked without blocking the worker.  The model for any
 * network-bound plugin:
 *
 *   - the CONNECT hook starts an asynchronous lookup and returns
 *     PST_HOOK_PENDING with a token (pst_call_defer());
 *   - the lookup's callback answers with pst_hook_resume(token, ...);
 *   - the request lives in the call's data slot, and a cancel callback
 *     stops the lookup and frees it when the core gives the call up (the
 *     client left, or module_timeout fired) -- no timer of its own, no
 *     stale resume.
 *
 *     load_module /path/to/dnsbl_async.so;
 *     resolver 127.0.0.1:53;
 *     smtp { server { dnsbl_async_zone zen.example.test; } }
 *
 * A listed client (any A record under the zone) gets "554 5.7.1 ... is
 * listed in ZONE" instead of the greeting; a lookup that fails lets the
 * client in (a blocklist is advice, not a gate).  The built-in
 * policy_dnsbl does the same with more options (docs/POLICY.md).
 */

#include <stdlib.h>
#include <string.h>

#include <postern/module.h>

typedef struct {
    pst_str_t                    zone;      /* empty: off */
} dnsbl_conf_t;

typedef struct {
    uint64_t                     token;
    pst_dns_query_t             *query;
    const dnsbl_conf_t          *conf;
} dnsbl_req_t;


static void *
dnsbl_create(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(dnsbl_conf_t));
}


static char *
dnsbl_merge(pst_conf_t *cf, void *parent, void *child)
{
    dnsbl_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->zone.data == NULL) {
        conf->zone = prev->zone;
    }
    return PST_CONF_OK;
}


/* The answer: listed when the zone has an A record for the address. */
static void
dnsbl_answer(void *data, const pst_dns_answer_t *a)
{
    dnsbl_req_t  *req = data;

    if (a->status == PST_DNS_OK && a->count > 0) {
        (void) pst_hook_resume(req->token, PST_HOOK_REJECT, 554, "5.7.1",
                               "Client address listed in %s",
                               (char *) req->conf->zone.data);
    } else {
        (void) pst_hook_resume(req->token, PST_HOOK_CONTINUE, 0, NULL,
                               NULL);
    }
    free(req);
}


/* The core gave the call up: the answer must not come. */
static void
dnsbl_cancel(void *data)
{
    dnsbl_req_t  *req = data;

    pst_dns_cancel(req->query);
    free(req);
}


static pst_verdict_e
dnsbl_connect(pst_call_t *call, void *data)
{
    dnsbl_conf_t   *conf = data;
    pst_session_t  *s = pst_call_session(call);
    dnsbl_req_t    *req;
    char            name[320];

    if (conf->zone.len == 0
        || pst_dns_reverse_name(pst_session_client_sockaddr(s),
                                (char *) conf->zone.data, name,
                                sizeof(name)) != PST_OK)
    {
        return PST_HOOK_CONTINUE;
    }

    req = calloc(1, sizeof(dnsbl_req_t));
    if (req == NULL) {
        return PST_HOOK_CONTINUE;
    }
    req->conf = conf;
    req->token = pst_call_defer(call);
    req->query = pst_dns_resolve(name, PST_DNS_A, 5000, dnsbl_answer, req);
    if (req->query == NULL) {
        free(req);
        return PST_HOOK_CONTINUE;       /* no resolver: advice only */
    }

    pst_call_set_data(call, req);
    pst_call_set_cancel(call, dnsbl_cancel);
    return PST_HOOK_PENDING;
}


static const pst_command_t  dnsbl_commands[] = {
    { "dnsbl_async_zone", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_SRV_CONF, 0, NULL },
    pst_null_command
};

static const pst_hook_t  dnsbl_hooks[] = {
    { PST_PHASE_CONNECT, dnsbl_connect, -20 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "dnsbl_async",
    .version = "1.0",
    .description = "refuses clients listed in a DNS blocklist (example)",
    .commands = dnsbl_commands,
    .hooks = dnsbl_hooks,
    .create_srv_conf = dnsbl_create,
    .merge_srv_conf = dnsbl_merge,
};
