/*
 * route_by_header.c -- a queue-side route hook: a message that carries a
 * given header field goes through a chosen transport.
 *
 *     load_module /path/to/relay_mx.so;
 *     load_module /path/to/relay_smarthost.so;
 *     relay_host smtp.provider.example:587;
 *     load_module /path/to/route_by_header.so;
 *     route_by_header X-Route bulk smarthost:;
 *     route_by_header X-Route test [192.0.2.25];
 *
 * route_by_header NAME VALUE DESTINATION: a message with a field NAME
 * (any case) whose value is VALUE (any case, blanks around it ignored)
 * goes to DESTINATION, as a transport rule would send it (docs/RELAY.md
 * "Transports"): a domain or "[addr]" for MX routing, "smarthost:" or
 * "lmtp:" and an optional next hop for the other transports.  The
 * first rule that matches a field, in the order of the fields, wins;
 * a message no rule matches keeps the destination the transport table
 * gave it.
 *
 * The choice is made once per message, at its first recipient's ROUTE,
 * and kept with the message (pst_qevent_set_ctx()): its other
 * recipients get the same destination without reading the header again,
 * and the log says it once.
 *
 * Shows: a main-level directive, a queue_event function (it runs in the
 * queue process, synchronously, and must not block), the ROUTE event,
 * the message's header through pst_qevent_header(), ev->reroute, and a
 * module's state kept with a queued message -- here a pointer into the
 * configuration, so nothing to free (the queue process keeps its
 * configuration as long as it runs).  Build it out of tree (see
 * plugins/README).
 */

#include <string.h>

#include <postern/module.h>

/* what the core accepts in ev->reroute: a domain or "[addr]" at most
 * 255 + 2 bytes; the same bound holds for "NAME:NEXTHOP" */
#define RBH_DEST_MAX   257

typedef struct {
    pst_str_t                    name;
    pst_str_t                    value;
    pst_str_t                    dest;
} rbh_rule_t;

typedef struct {
    pst_array_t                 *rules;      /* rbh_rule_t, NULL: none */
} rbh_conf_t;

/* kept with a message no rule matches (NULL would mean "not chosen") */
static const rbh_rule_t  rbh_no_rule;

PST_EXPORT const pst_module_t  postern_module;


static void *
rbh_create(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(rbh_conf_t));
}


static char *
rbh_set(pst_conf_t *cf, const pst_command_t *cmd, void *data)
{
    rbh_conf_t  *conf = data;
    rbh_rule_t  *r;
    pst_str_t   *args;
    size_t       i;

    (void) cmd;

    args = pst_conf_args(cf, NULL);
    for (i = 0; i < args[1].len; i++) {
        if (args[1].data[i] <= ' ' || args[1].data[i] >= 127
            || args[1].data[i] == ':')
        {
            return "needs a header name without spaces or ':'";
        }
    }
    if (args[3].len == 0 || args[3].len > RBH_DEST_MAX) {
        return "needs a destination of 1 to 257 bytes";
    }

    if (conf->rules == NULL) {
        conf->rules = pst_array_create(pst_conf_pool(cf), 4,
                                       sizeof(rbh_rule_t));
    }
    r = conf->rules != NULL ? pst_array_push(conf->rules) : NULL;
    if (r == NULL) {
        return "cannot keep the rule (out of memory)";
    }
    r->name = args[1];
    r->value = args[2];
    r->dest = args[3];
    return PST_CONF_OK;
}


/* value (as pst_qevent_header() gives it: maybe folded) equals want,
 * ignoring case and the blanks around it */
static int
rbh_value_is(const pst_str_t *value, const pst_str_t *want)
{
    size_t  n = value->len;

    while (n > 0 && (value->data[n - 1] == ' ' || value->data[n - 1] == '\t'
                     || value->data[n - 1] == '\r'
                     || value->data[n - 1] == '\n'))
    {
        n--;
    }
    return n == want->len && pst_strncasecmp(value->data, want->data, n) == 0;
}


/* The first rule that matches a field of the message, in the order of
 * the fields; &rbh_no_rule when none does. */
static const rbh_rule_t *
rbh_choose(const pst_qevent_t *ev, const rbh_conf_t *conf)
{
    rbh_rule_t  *r = conf->rules->elts;
    pst_str_t    name, value;
    pst_uint_t   i, k;

    for (i = 0; pst_qevent_header(ev, i, &name, &value) == PST_OK; i++) {
        for (k = 0; k < conf->rules->nelts; k++) {
            if (name.len == r[k].name.len
                && pst_strncasecmp(name.data, r[k].name.data, name.len) == 0
                && rbh_value_is(&value, &r[k].value))
            {
                return &r[k];
            }
        }
    }
    return &rbh_no_rule;
}


static void
rbh_event(pst_qevent_t *ev, void *main_conf)
{
    rbh_conf_t        *conf = main_conf;
    const rbh_rule_t  *rule;
    const pst_str_t   *id;

    /* ignore every other event, and values a later core may add */
    if (ev->event != PST_QEV_ROUTE || conf->rules == NULL) {
        return;
    }

    /* the message's first ROUTE chooses; the others reuse the choice
     * (configuration memory: no cleanup) */
    rule = pst_qevent_get_ctx(ev, &postern_module);
    if (rule == NULL) {
        rule = rbh_choose(ev, conf);
        (void) pst_qevent_set_ctx(ev, &postern_module, (void *) rule, NULL);
        id = pst_qevent_id(ev);
        if (rule != &rbh_no_rule) {
            pst_log(PST_LOG_INFO, 0, "route_by_header: %.*s: %s: %s",
                    (int) id->len, id->data, (char *) rule->name.data,
                    (char *) rule->dest.data);
        }
    }

    /* the engine copies it: the configuration's string is fine (it
     * outlives the call anyway) */
    if (rule != &rbh_no_rule) {
        ev->reroute = rule->dest;
    }
}


static const pst_command_t  rbh_commands[] = {
    { "route_by_header", PST_CONF_MAIN | PST_CONF_TAKE3,
      rbh_set, PST_MAIN_CONF, 0, NULL },
    pst_null_command
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "route_by_header",
    .version = "1.1",
    .description = "routes messages with a given header to a transport",
    .commands = rbh_commands,
    .create_main_conf = rbh_create,
    .queue_event = rbh_event,
};
