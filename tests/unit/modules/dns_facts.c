/*
 * dns_facts.c -- test module: looks up one name (A) through the public
 * DNS API at connect and writes what the answer said -- status, DNSSEC
 * secure/bogus, addresses -- into a header of each message, so that an
 * integration test can check what a module sees
 * (tests/integration/test_dnssec.py).
 *
 *     smtp { server { ...; dns_facts_lookup www.example.test; } }
 *
 * The CONNECT hook is pending until the answer arrives; a session that
 * ends first cancels its query in the DISCONNECT hook.
 */

#include <stdio.h>
#include <string.h>

#include "postern_module.h"

#define DNS_FACTS_TIMEOUT        5000


typedef struct {
    pst_str_t                    name;
} dns_facts_conf_t;


typedef struct {
    pst_dns_query_t             *query;
    uint64_t                     token;
    char                         facts[512];
} dns_facts_ctx_t;


PST_EXPORT const pst_module_t  postern_module;


static void *
dns_facts_create(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(dns_facts_conf_t));
}


static char *
dns_facts_merge(pst_conf_t *cf, void *parent, void *child)
{
    dns_facts_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->name.data == NULL) {
        conf->name = prev->name;
    }

    return PST_CONF_OK;
}


static const char *
dns_facts_status(pst_dns_status_e status)
{
    switch (status) {
    case PST_DNS_OK:
        return "ok";
    case PST_DNS_NXDOMAIN:
        return "nxdomain";
    case PST_DNS_SERVFAIL:
        return "servfail";
    case PST_DNS_TIMEOUT:
        return "timeout";
    case PST_DNS_NO_RESOLVER:
        return "no_resolver";
    }

    return "unknown";
}


static void
dns_facts_answer(void *data, const pst_dns_answer_t *a)
{
    dns_facts_ctx_t  *ctx = data;
    pst_uint_t        i;
    size_t            n;
    char              addr[64];

    ctx->query = NULL;

    n = (size_t) snprintf(ctx->facts, sizeof(ctx->facts),
                          "name=%s status=%s secure=%d bogus=%d count=%lu"
                          " addr=", a->qname, dns_facts_status(a->status),
                          a->secure, a->bogus, (unsigned long) a->count);

    for (i = 0; i < a->count && n < sizeof(ctx->facts); i++) {
        if (pst_dns_rr_addr(a, i, addr, sizeof(addr)) != PST_OK) {
            snprintf(addr, sizeof(addr), "?");
        }
        n += (size_t) snprintf(ctx->facts + n, sizeof(ctx->facts) - n,
                               "%s%s", i ? "," : "", addr);
    }

    if (a->count == 0 && n < sizeof(ctx->facts)) {
        snprintf(ctx->facts + n, sizeof(ctx->facts) - n, "-");
    }

    (void) pst_hook_resume(ctx->token, PST_HOOK_CONTINUE, 0, NULL, NULL);
}


static pst_verdict_e
dns_facts_connect(pst_call_t *call, void *data)
{
    dns_facts_conf_t  *conf = data;
    pst_session_t     *s = pst_call_session(call);
    dns_facts_ctx_t   *ctx;

    if (conf->name.len == 0) {
        return PST_HOOK_CONTINUE;
    }

    ctx = pst_pcalloc(pst_session_pool(s), sizeof(dns_facts_ctx_t));
    if (ctx == NULL) {
        return PST_HOOK_CONTINUE;
    }

    snprintf(ctx->facts, sizeof(ctx->facts), "name=%s status=pending",
             (char *) conf->name.data);
    pst_session_set_ctx(s, &postern_module, ctx);

    ctx->token = pst_call_defer(call);
    ctx->query = pst_dns_resolve((char *) conf->name.data, PST_DNS_A,
                                 DNS_FACTS_TIMEOUT, dns_facts_answer, ctx);
    if (ctx->query == NULL) {
        snprintf(ctx->facts, sizeof(ctx->facts), "name=%s status=error",
                 (char *) conf->name.data);
        return PST_HOOK_CONTINUE;
    }

    return PST_HOOK_PENDING;
}


static pst_verdict_e
dns_facts_message(pst_call_t *call, void *data)
{
    pst_session_t    *s = pst_call_session(call);
    dns_facts_ctx_t  *ctx;

    (void) data;

    ctx = pst_session_get_ctx(s, &postern_module);
    if (ctx != NULL) {
        (void) pst_msg_add_header(s, "X-DNS-Facts", "%s", ctx->facts);
    }

    return PST_HOOK_CONTINUE;
}


static pst_verdict_e
dns_facts_disconnect(pst_call_t *call, void *data)
{
    pst_session_t    *s = pst_call_session(call);
    dns_facts_ctx_t  *ctx;

    (void) data;

    ctx = pst_session_get_ctx(s, &postern_module);
    if (ctx != NULL && ctx->query != NULL) {
        pst_dns_cancel(ctx->query);     /* its memory goes with the pool */
        ctx->query = NULL;
    }

    return PST_HOOK_CONTINUE;
}


static const pst_command_t  dns_facts_commands[] = {
    { "dns_facts_lookup", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_SRV_CONF,
      offsetof(dns_facts_conf_t, name), NULL },
    pst_null_command
};

static const pst_hook_t  dns_facts_hooks[] = {
    { PST_PHASE_CONNECT, dns_facts_connect, 0 },
    { PST_PHASE_MESSAGE, dns_facts_message, 0 },
    { PST_PHASE_DISCONNECT, dns_facts_disconnect, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "dns_facts",
    .version = "1.0",
    .description = "test: a DNS answer's status and DNSSEC facts"
                   " into a header",
    .commands = dns_facts_commands,
    .create_srv_conf = dns_facts_create,
    .merge_srv_conf = dns_facts_merge,
    .hooks = dns_facts_hooks,
};
