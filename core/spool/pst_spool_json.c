/*
 * pst_spool_json.c -- `postern queue list --json` and `show ID --json`:
 * one JSON object per message (id, size, arrival, sender, state, held,
 * recipients with state, attempts, next try, remote, last reply), and
 * the message state `count` and `list` use: held (by the operator or
 * relay_hold), deferred (a recipient waits for a retry), or pending.
 */

#include "pst_core.h"
#include "pst_spool.h"


const char *
pst_spool_msg_state(const pst_envelope_t *env)
{
    pst_env_rcpt_t  *r = env->rcpts->elts;
    pst_uint_t       i;

    if (env->hold) {
        return "held";
    }
    for (i = 0; i < env->rcpts->nelts; i++) {
        if (r[i].state == PST_RCPT_DEFERRED) {
            return "deferred";
        }
    }
    return "pending";
}


/* s as a JSON string (quotes included). */
static void
pst_spool_json_str(const u_char *s, size_t n)
{
    size_t  i;

    putchar('"');
    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            printf("\\%c", s[i]);
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            printf("\\u%04x", s[i]);
        } else {
            putchar(s[i]);
        }
    }
    putchar('"');
}


static void
pst_spool_json_rcpt(const pst_env_rcpt_t *r)
{
    printf("{\"address\":");
    pst_spool_json_str(r->addr.data, r->addr.len);
    printf(",\"state\":\"%s\",\"attempts\":%u,\"next_try\":%lld,"
           "\"last_try\":%lld,\"remote\":", pst_rcpt_state_name(r->state),
           r->attempts, (long long) r->next_try, (long long) r->last_try);
    pst_spool_json_str(r->remote.data, r->remote.len);
    printf(",\"reply\":");
    pst_spool_json_str(r->reply.data, r->reply.len);
    printf("}");
}


void
pst_spool_json_msg(const pst_spool_msg_t *m)
{
    const pst_envelope_t  *env = &m->env;
    pst_env_rcpt_t        *r = env->rcpts->elts;
    pst_uint_t             i;

    printf("{\"id\":");
    pst_spool_json_str(env->id.data, env->id.len);
    printf(",\"size\":%lld,\"arrival\":%lld.%06ld,\"sender\":",
           (long long) m->msg_len, (long long) env->arrival_sec,
           env->arrival_usec);
    pst_spool_json_str(env->sender.data, env->sender.len);
    printf(",\"state\":\"%s\",\"held\":%s,\"recipients\":[",
           pst_spool_msg_state(env), env->hold ? "true" : "false");
    for (i = 0; i < env->rcpts->nelts; i++) {
        if (i > 0) {
            putchar(',');
        }
        pst_spool_json_rcpt(&r[i]);
    }
    printf("]}");
}


/*
 * The answer of a changing verb (flush, hold, release, delete), live or
 * offline: the number of messages it changed, or with --json
 * {"verb":"flush","target":"ALL","count":3}.  The target's characters
 * outside printable ASCII, quotes and backslashes are left out.
 */
int
pst_spool_json_count(char *buf, size_t size, const char *verb,
    const char *target, unsigned long count, int json)
{
    char    t[80];
    size_t  i, k = 0;

    if (!json) {
        return snprintf(buf, size, "%lu\n", count);
    }
    for (i = 0; target[i] != '\0' && k < sizeof(t) - 1; i++) {
        if (target[i] > 0x20 && target[i] < 0x7f && target[i] != '"'
            && target[i] != '\\')
        {
            t[k++] = target[i];
        }
    }
    t[k] = '\0';
    return snprintf(buf, size, "{\"verb\":\"%s\",\"target\":\"%s\","
                    "\"count\":%lu}\n", verb, t, count);
}


/* Take "--json" out of argv (argv[0] is the verb): 1 if it was there. */
int
pst_spool_json_arg(int *argc, char **argv)
{
    int  i, found = 0, k = 1;

    for (i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            found = 1;
        } else {
            argv[k++] = argv[i];
        }
    }
    *argc = k;
    return found;
}
