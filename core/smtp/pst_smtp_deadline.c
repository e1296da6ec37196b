/*
 * pst_smtp_deadline.c -- time limits against slow clients (slowloris).
 *
 * Two clocks per session, both checked through the one read timer:
 *
 *   - a command line must arrive whole within smtp_command_deadline of
 *     the moment the server starts waiting for it (the end of the
 *     previous line, or the state change that made it read again); the
 *     idle limit smtp_command_timeout still bounds each wait;
 *   - message data (DATA, and all the chunks of one BDAT transfer)
 *     earns credit: it starts with smtp_data_timeout and every byte
 *     adds 1/smtp_min_data_rate seconds, never beyond smtp_data_timeout
 *     ahead.  A client above the minimum rate never runs out; one that
 *     trickles does, however often it sends.  Rate 0 turns the credit
 *     off: smtp_data_timeout is then the limit per read, as before.
 *     The bytes earn credit when they are consumed as message data,
 *     whichever read brought them in (a BDAT chunk often comes with
 *     its command), and the credit is checked there too
 *     (pst_smtp_clock_spent): a client that sends small whole chunks
 *     never makes the server wait in BDAT state, so the read timer
 *     alone would never see it fall behind.
 *
 * Postfix's smtpd_per_request_deadline and smtpd_min_data_rate are the
 * model.  Nothing here reads the wall clock: the event loop's cached
 * pst_current_time_msec is enough.
 */

#include "pst_smtp.h"
#include "pst_event.h"


/* Entering a state that reads: start the clock that governs it. */
void
pst_smtp_clock_start(pst_session_t *s, pst_smtp_state_e st)
{
    pst_msec_t  now = pst_current_time_msec;

    switch (st) {
    case PST_SMTP_S_COMMAND:
    case PST_SMTP_S_AUTH:
        s->command_by = now + (s->conf->command_deadline
                               ? s->conf->command_deadline
                               : s->conf->command_timeout);
        return;

    case PST_SMTP_S_DATA:
    case PST_SMTP_S_BDAT:
        /* once per transaction: BDAT chunks share one credit */
        if (s->tx != NULL && !s->tx->data_clock) {
            s->tx->data_clock = 1;
            s->data_by = now + s->conf->data_timeout;
            s->data_carry = 0;
        }
        return;

    default:
        return;
    }
}


/* n bytes of message data came in.  What a read earns below 1 ms is
 * carried to the next one: at a rate that does not divide 1000, small
 * reads would otherwise lose up to 1 ms each. */
void
pst_smtp_clock_credit(pst_session_t *s, size_t n)
{
    pst_msec_t  now = pst_current_time_msec, cap, earned;
    uint64_t    rate = s->conf->min_data_rate, ms1000;

    cap = now + s->conf->data_timeout;

    if (rate == 0) {
        s->data_by = cap;
        return;
    }

    ms1000 = (uint64_t) n * 1000 + s->data_carry;
    earned = (pst_msec_t) (ms1000 / rate);
    s->data_carry = ms1000 % rate;
    s->data_by = pst_min(cap, s->data_by + earned);
}


/* Has the data credit run out?  Asked when message data is consumed,
 * before it is credited. */
int
pst_smtp_clock_spent(pst_session_t *s)
{
    if (s->tx == NULL || !s->tx->data_clock || s->conf->min_data_rate == 0
        || s->data_by > pst_current_time_msec)
    {
        return 0;
    }

    s->timer_why = PST_SMTP_WAIT_RATE;
    return 1;
}


/* How long to wait for input now (at least 1 ms: a clock that has run
 * out fires at the next turn of the loop). */
pst_msec_t
pst_smtp_clock_wait(pst_session_t *s)
{
    pst_msec_t  now = pst_current_time_msec, idle, by;
    unsigned    why;

    if (s->state == PST_SMTP_S_DATA || s->state == PST_SMTP_S_BDAT) {
        idle = s->conf->data_timeout;
        by = s->data_by;
        why = PST_SMTP_WAIT_RATE;
    } else {
        idle = s->conf->command_timeout;
        by = s->command_by;
        why = PST_SMTP_WAIT_DEADLINE;
    }

    if (by == 0 || by >= now + idle) {
        s->timer_why = PST_SMTP_WAIT_IDLE;
        return idle;
    }

    s->timer_why = why;
    return by > now ? by - now : 1;
}


/* For the log: which limit ended the wait. */
const char *
pst_smtp_clock_reason(pst_session_t *s)
{
    switch (s->timer_why) {
    case PST_SMTP_WAIT_DEADLINE:
        return " (smtp_command_deadline)";
    case PST_SMTP_WAIT_RATE:
        return " (smtp_min_data_rate)";
    default:
        return "";
    }
}
