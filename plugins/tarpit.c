/*
 * tarpit.c -- an asynchronous plugin: delay the reply to every RCPT.
 *
 *     load_module /path/to/tarpit.so;
 *     smtp { server { ...; tarpit_delay 2s; } }
 *
 * Shows the PENDING pattern: the hook takes a token with
 * pst_call_defer(), starts a timer and returns PST_HOOK_PENDING; the
 * timer resumes the session with pst_hook_resume().  The worker keeps
 * serving every other session meanwhile.  If the session is gone when the
 * timer fires (the client hung up), pst_hook_resume() returns
 * PST_DECLINED and nothing else happens: the token is safe to use late.
 */

#include <stdlib.h>

#include <postern/module.h>

typedef struct {
    pst_msec_t                   delay;
} tarpit_conf_t;


static void *
tarpit_create(pst_conf_t *cf)
{
    tarpit_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(tarpit_conf_t));
    if (c != NULL) {
        c->delay = PST_CONF_UNSET_MSEC;
    }
    return c;
}


static char *
tarpit_merge(pst_conf_t *cf, void *parent, void *child)
{
    tarpit_conf_t  *prev = parent, *conf = child;

    (void) cf;
    pst_conf_merge_msec_value(conf->delay, prev->delay, 0);
    return PST_CONF_OK;
}


static void
tarpit_wake(void *data)
{
    uint64_t  *token = data;

    /* CONTINUE: let the next RCPT hook (relay control) decide */
    (void) pst_hook_resume(*token, PST_HOOK_CONTINUE, 0, NULL, NULL);
    free(token);
}


static pst_verdict_e
tarpit_rcpt(pst_call_t *call, void *data)
{
    tarpit_conf_t  *conf = data;
    uint64_t       *token;

    if (conf->delay == 0) {
        return PST_HOOK_CONTINUE;
    }

    token = malloc(sizeof(uint64_t));
    if (token == NULL) {
        return PST_HOOK_CONTINUE;
    }

    *token = pst_call_defer(call);
    if (pst_timer_add(conf->delay, tarpit_wake, token) == NULL) {
        free(token);
        return PST_HOOK_CONTINUE;
    }

    return PST_HOOK_PENDING;
}


static const pst_command_t  tarpit_commands[] = {
    { "tarpit_delay", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF, 0, NULL },
    pst_null_command
};

static const pst_hook_t  tarpit_hooks[] = {
    { PST_PHASE_RCPT, tarpit_rcpt, -10 },     /* before relay control */
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "tarpit",
    .version = "1.0",
    .description = "delays RCPT replies without blocking the worker",
    .commands = tarpit_commands,
    .create_srv_conf = tarpit_create,
    .merge_srv_conf = tarpit_merge,
    .hooks = tarpit_hooks,
};
