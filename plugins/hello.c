/*
 * hello.c -- the smallest useful plugin: add a header to every message.
 *
 *     load_module /path/to/hello.so;
 *     smtp { server { ...; hello_header X-Hello "from $server"; } }
 *
 * Shows: the descriptor, a server-level directive with create/merge,
 * and a MESSAGE-phase hook that reads a session fact and adds a header.
 * Build it out of tree (see plugins/README).
 */

#include <string.h>

#include <postern/module.h>

typedef struct {
    pst_str_t                    name;
    pst_str_t                    value;
} hello_conf_t;


static void *
hello_create(pst_conf_t *cf)
{
    /* zeroed: name.data == NULL means "not set" */
    return pst_pcalloc(pst_conf_pool(cf), sizeof(hello_conf_t));
}


static char *
hello_merge(pst_conf_t *cf, void *parent, void *child)
{
    hello_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->name.data == NULL) {
        *conf = *prev;
    }
    return PST_CONF_OK;
}


static char *
hello_set_header(pst_conf_t *cf, const pst_command_t *cmd, void *data)
{
    hello_conf_t  *conf = data;
    pst_str_t     *args;
    size_t         i;

    (void) cmd;

    args = pst_conf_args(cf, NULL);
    for (i = 0; i < args[1].len; i++) {
        if (args[1].data[i] <= ' ' || args[1].data[i] == ':') {
            return "needs a header name without spaces or ':'";
        }
    }

    conf->name = args[1];
    conf->value = args[2];
    return PST_CONF_OK;
}


static pst_verdict_e
hello_message(pst_call_t *call, void *data)
{
    hello_conf_t     *conf = data;
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *server = pst_session_server_name(s);

    if (conf->name.data == NULL) {
        return PST_HOOK_CONTINUE;
    }

    /* "$server" in the value is replaced by our host name */
    if (strstr((char *) conf->value.data, "$server") != NULL) {
        const char  *p = strstr((char *) conf->value.data, "$server");

        pst_msg_add_header(s, (char *) conf->name.data, "%.*s%.*s%s",
                           (int) (p - (char *) conf->value.data),
                           conf->value.data, (int) server->len, server->data,
                           p + 7);
    } else {
        pst_msg_add_header(s, (char *) conf->name.data, "%s",
                           conf->value.data);
    }

    return PST_HOOK_CONTINUE;
}


static const pst_command_t  hello_commands[] = {
    { "hello_header", PST_CONF_ANY_SMTP | PST_CONF_TAKE2,
      hello_set_header, PST_SRV_CONF, 0, NULL },
    pst_null_command
};

static const pst_hook_t  hello_hooks[] = {
    { PST_PHASE_MESSAGE, hello_message, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "hello",
    .version = "1.0",
    .description = "adds a configurable header to every message",
    .commands = hello_commands,
    .create_srv_conf = hello_create,
    .merge_srv_conf = hello_merge,
    .hooks = hello_hooks,
};
