/*
 * pst_smtp_node.c -- the receiving side of a node transfer: another
 * Postern node of the same installation hands over a message of its
 * queue (`postern queue drain`, `drain_on_quit`) and keeps its facts
 * (docs/SCALING.md, "Draining a node").
 *
 * A client in node_trusted (the address the session sees, after a
 * PROXY header; never one that XCLIENT named) gets XPOSTERN in the EHLO
 * reply, and may then give the node facts as ESMTP parameters
 * (pst_smtp_parse_node() in pst_smtp_parse.c reads them):
 *
 *   MAIL FROM:<s> ... XP-ARRIVAL=SEC.USEC [XP-HOLD] [XP-REQUIRETLS]
 *                     [XP-NODE=NAME]
 *   RCPT TO:<r> ... [XP-ATTEMPTS=N] [XP-DSN=BITS] [XP-NEXT-TRY=SEC]
 *
 * XP-ARRIVAL makes the transaction a node transfer; any XP- parameter
 * from anyone else, or on RCPT outside a node transfer, gets the 555
 * of an unknown parameter.  In a node transfer a recipient that no
 * module accepted or refused is accepted (the node's queue held it
 * already); a module's refusal still refuses it.  The envelope keeps
 * the arrival, the hold, REQUIRETLS and each recipient's attempts, the
 * DSNs already sent and, for a deferred one, its next try.  XP-NODE,
 * the sending node's node_name, goes only into the log (here and in
 * the message's "queued" line); the 250 names this node in return.
 */

#include "pst_smtp.h"
#include "pst_envelope.h"


int
pst_smtp_node_allowed(pst_session_t *s)
{
    return s->esmtp && !s->xclient
           && pst_cidr_match_list(s->conf->node_trusted,
                                  &s->c->sockaddr.sa);
}


size_t
pst_smtp_node_ehlo(pst_session_t *s, char *buf, size_t size)
{
    static const char  line[] = "250-XPOSTERN\r\n";

    if (!pst_smtp_node_allowed(s) || size < sizeof(line)) {
        return 0;
    }

    memcpy(buf, line, sizeof(line));
    return sizeof(line) - 1;
}


/* MAIL: PST_OK, or PST_ERROR when its node facts are not for us. */
int
pst_smtp_node_mail(pst_session_t *s, const pst_smtp_params_t *prm)
{
    if (!prm->node) {
        return PST_OK;
    }
    if (!pst_smtp_node_allowed(s) || prm->node_arrival == 0) {
        pst_log_session(s, PST_LOG_NOTICE, "XP- parameters refused: %s",
                        prm->node_arrival == 0 ? "no XP-ARRIVAL"
                        : "the client is not in node_trusted");
        return PST_ERROR;
    }
    pst_log_session(s, PST_LOG_INFO, "node transfer%s%.*s: arrival"
                    " %lld.%06ld%s", prm->node_name.len ? " from node " : "",
                    (int) prm->node_name.len,
                    prm->node_name.len ? (char *) prm->node_name.data : "",
                    (long long) prm->node_arrival, prm->node_arrival_usec,
                    prm->node_hold ? ", held" : "");
    return PST_OK;
}


/* This node's name for the 250 to a node transfer (the sending node's
 * log then names both ends), or NULL. */
const pst_str_t *
pst_smtp_node_reply_name(pst_session_t *s)
{
    const pst_str_t  *node = &pst_cycle->core->node_name;

    return (s->tx->params.node && node->len) ? node : NULL;
}


/* RCPT: PST_OK, or PST_ERROR for node facts outside a node transfer. */
int
pst_smtp_node_rcpt(pst_session_t *s, const pst_smtp_params_t *prm)
{
    return prm->node && !s->tx->params.node ? PST_ERROR : PST_OK;
}


void
pst_smtp_node_keep(pst_smtp_rcpt_t *r, const pst_smtp_params_t *prm)
{
    r->attempts = prm->node_attempts;
    r->dsn_sent = prm->node_dsn;
    r->next_try = prm->node_next_try;
}


/* The node facts into the envelope built for the store. */
void
pst_smtp_node_envelope(pst_smtp_tx_t *tx, pst_envelope_t *env)
{
    pst_smtp_rcpt_t  *r = tx->rcpts.elts;
    pst_env_rcpt_t   *er = env->rcpts->elts;
    pst_uint_t        i;

    if (!tx->params.node) {
        return;
    }

    env->arrival_sec = tx->params.node_arrival;
    env->arrival_usec = tx->params.node_arrival_usec;
    env->hold |= tx->params.node_hold;
    env->requiretls |= tx->params.node_requiretls;

    for (i = 0; i < tx->rcpts.nelts && i < env->rcpts->nelts; i++) {
        er[i].attempts = r[i].attempts;
        er[i].dsn_sent = r[i].dsn_sent;
        if (r[i].next_try > 0) {
            er[i].state = PST_RCPT_DEFERRED;
            er[i].next_try = r[i].next_try;
        }
    }
}
