/*
 * subject_filter.c -- reject a message at the end of data when its
 * Subject matches a PCRE2 pattern from the configuration.  The model for
 * a content check: a directive that compiles something once, per server
 * block, and a MESSAGE hook that reads the stored header.
 *
 *     load_module /path/to/subject_filter.so;
 *     smtp { server {
 *         subject_reject "(?i)\bviagra\b" "Message refused: spam subject";
 *     } }
 *
 * Build: make -C plugins (links libpcre2-8: pkg-config libpcre2-8).
 */

#define PCRE2_CODE_UNIT_WIDTH 8

#include <string.h>
#include <pcre2.h>

#include <postern/module.h>

typedef struct {
    pcre2_code                  *re;        /* NULL: not set */
    pst_str_t                    text;      /* the reply's text */
} subject_conf_t;


static void *
subject_create(pst_conf_t *cf)
{
    return pst_pcalloc(pst_conf_pool(cf), sizeof(subject_conf_t));
}


static char *
subject_merge(pst_conf_t *cf, void *parent, void *child)
{
    subject_conf_t  *prev = parent, *conf = child;

    (void) cf;

    if (conf->re == NULL) {
        *conf = *prev;
    }
    return PST_CONF_OK;
}


/* the compiled pattern goes with the configuration's pool */
static void
subject_free(void *data)
{
    pcre2_code_free(data);
}


static char *
subject_set(pst_conf_t *cf, const pst_command_t *cmd, void *data)
{
    subject_conf_t  *conf = data;
    pst_str_t       *args;
    pst_uint_t       n;
    PCRE2_SIZE       at;
    int              err;
    PCRE2_UCHAR      msg[128];

    (void) cmd;

    args = pst_conf_args(cf, &n);
    conf->re = pcre2_compile((PCRE2_SPTR) args[1].data, args[1].len,
                             PCRE2_UTF, &err, &at, NULL);
    if (conf->re == NULL) {
        pcre2_get_error_message(err, msg, sizeof(msg));
        pst_conf_warn(cf, "subject_reject: \"%s\" at offset %zu: %s",
                      args[1].data, (size_t) at, (char *) msg);
        return "has a pattern that does not compile";
    }
    if (pst_pool_cleanup_add(pst_conf_pool(cf), subject_free, conf->re)
        != PST_OK)
    {
        pcre2_code_free(conf->re);
        conf->re = NULL;
        return "cannot keep the pattern (out of memory)";
    }
    if (n > 2) {
        /* it goes out on the wire: printable ASCII, bounded */
        if (pst_conf_check_text(cf, "subject_reject", &args[2],
                                PST_CONF_TEXT_MAX) != PST_OK)
        {
            return PST_CONF_ERROR;
        }
        conf->text = args[2];
    } else {
        conf->text.data = (u_char *) "Message refused";
        conf->text.len = sizeof("Message refused") - 1;
    }
    return PST_CONF_OK;
}


/* 1 when the Subject matches (folded lines are matched as stored) */
static int
subject_matches(pst_session_t *s, const subject_conf_t *conf)
{
    pcre2_match_data  *md;
    pst_str_t          name, value;
    pst_uint_t         i;
    int                rc = 0;

    md = pcre2_match_data_create_from_pattern(conf->re, NULL);
    if (md == NULL) {
        return 0;
    }
    for (i = 0; pst_msg_header(s, i, &name, &value) == PST_OK; i++) {
        if (name.len == 7
            && pst_strncasecmp(name.data, (u_char *) "Subject", 7) == 0
            && pcre2_match(conf->re, (PCRE2_SPTR) value.data, value.len, 0,
                           0, md, NULL) >= 0)
        {
            rc = 1;
            break;
        }
    }
    pcre2_match_data_free(md);
    return rc;
}


static pst_verdict_e
subject_message(pst_call_t *call, void *data)
{
    subject_conf_t  *conf = data;
    pst_session_t   *s = pst_call_session(call);

    if (conf->re == NULL || !subject_matches(s, conf)) {
        return PST_HOOK_CONTINUE;
    }
    pst_log_session(s, PST_LOG_NOTICE, "subject_filter: rejected");
    pst_call_reply(call, 550, "5.7.1", "%.*s", (int) conf->text.len,
                   conf->text.data);
    return PST_HOOK_REJECT;
}


static const pst_command_t  subject_commands[] = {
    { "subject_reject", PST_CONF_ANY_SMTP | PST_CONF_TAKE12,
      subject_set, PST_SRV_CONF, 0, NULL },
    pst_null_command
};

static const pst_hook_t  subject_hooks[] = {
    { PST_PHASE_MESSAGE, subject_message, 0 },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "subject_filter",
    .version = "1.0",
    .description = "rejects a message whose Subject matches a pattern",
    .commands = subject_commands,
    .hooks = subject_hooks,
    .create_srv_conf = subject_create,
    .merge_srv_conf = subject_merge,
};
