/*
 * pst_spool_mailq.c -- `postern queue list --mailq`: the queue in the
 * format of Postfix's `mailq` (postqueue -p, itself after Sendmail's), so
 * that the scripts people wrote for it keep working.  Postfix's long
 * queue ID layout, since ours are long:
 *
 *   ----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------
 *   1LH4A8TCBQC01U1GM4!    1234 Fri Dec  4 02:44:45 sender@example.test
 *                                   (451 4.4.1 connect to ... refused)
 *                                                   rcpt@example.net
 *
 *   -- 1 Kbytes in 1 Request.
 *
 * A message line: the ID, '!' when held (Postfix marks its active queue
 * with '*'; the spool cannot tell which message an attempt holds), the
 * size, the arrival (asctime), the sender or MAILER-DAEMON.  Then each
 * recipient still to deliver; before it, right-aligned in parentheses,
 * its last reply when that differs from the previous recipient's
 * ("reason unavailable" when it has none after one that had).  Final
 * recipients are not listed.
 */

#include "pst_core.h"
#include "pst_spool.h"


#define PST_MAILQ_HEAD  "%-17s %8s %-19s %s\n"
#define PST_MAILQ_MSG   "%-17s %8lld %19.19s %s\n"

static void pst_spool_mailq_why(const pst_str_t *why);


void
pst_spool_mailq_tail(pst_uint_t n, unsigned long long bytes)
{
    if (n == 0) {
        printf("Mail queue is empty\n");
        return;
    }
    printf("\n-- %llu Kbytes in %lu Request%s.\n", bytes / 1024,
           (unsigned long) n, n == 1 ? "" : "s");
}


/* shown: the messages printed before this one (0: print the heading,
 * else the blank line between messages); as Postfix's, a message gone
 * since the listing (delivered) leaves no trace in the output */
void
pst_spool_mailq_msg(const pst_spool_msg_t *m, pst_uint_t shown)
{
    const pst_envelope_t  *env = &m->env;
    const pst_env_rcpt_t  *r = env->rcpts->elts;
    pst_str_t              last = pst_null_string, why;
    char                   when[32], id[PST_QUEUE_ID_LEN + 2];
    struct tm              tm;
    time_t                 t = (time_t) env->arrival_sec;
    pst_uint_t             i;

    if (localtime_r(&t, &tm) == NULL || asctime_r(&tm, when) == NULL) {
        snprintf(when, sizeof(when), "%lld", (long long) t);
    }
    snprintf(id, sizeof(id), "%s%s", (char *) env->id.data,
             env->hold ? "!" : "");
    if (shown == 0) {
        printf(PST_MAILQ_HEAD, "----Queue ID-----", "--Size--",
               "---Arrival Time----", "--Sender/Recipient------");
    } else {
        printf("\n");
    }
    printf(PST_MAILQ_MSG, id, (long long) m->msg_len, when,
           env->sender.len ? (char *) env->sender.data : "MAILER-DAEMON");

    for (i = 0; i < env->rcpts->nelts; i++) {
        if (r[i].state == PST_RCPT_DELIVERED
            || r[i].state == PST_RCPT_FAILED)
        {
            continue;
        }
        why = r[i].reply;
        if (why.len != last.len
            || (why.len > 0 && memcmp(why.data, last.data, why.len) != 0))
        {
            pst_spool_mailq_why(&why);
            last = why;
        }
        printf(PST_MAILQ_HEAD, "", "", "", (char *) r[i].addr.data);
    }
}


static void
pst_spool_mailq_why(const pst_str_t *why)
{
    const char  *text = why->len ? (const char *) why->data
                                  : "reason unavailable";
    size_t       n = why->len ? why->len : strlen(text);
    int          pad = 76 - (int) n;

    printf("%*s(%.*s)\n", pad > 0 ? pad : 0, "", (int) n, text);
}
