/*
 * pst_test_session.c -- libpostern-test's fake client: a session on a
 * socketpair, commands out, replies in, the event loop turned in
 * between; the fake clock moved forward; verdicts read back from what
 * the harness module saw.
 */

#define _GNU_SOURCE

#include "pst_test_int.h"

#include <time.h>


pst_msec_t
pst_test_real_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (pst_msec_t) ts.tv_sec * 1000 + (pst_msec_t) ts.tv_nsec / 1000000;
}


static void
pst_test_guard(pst_event_t *ev)
{
    (void) ev;
}


/* Turn the loop once: I/O that is ready, timers that are due (by the
 * fake clock), posted events; waits at most a few ms of real time. */
void
pst_test_turn(void)
{
    static pst_event_t  guard;

    guard.handler = pst_test_guard;
    pst_event_add_timer(&guard, 5);
    (void) pst_process_events_and_timers();
    pst_event_del_timer(&guard);
}


/* Parse the complete reply in r->raw into code, ecode and text. */
static void
pst_test_parse(pst_test_reply_t *r)
{
    char    *last, *p;
    size_t   n;

    r->code = atoi(r->raw);
    n = strlen(r->raw);
    last = r->raw + n - 2;
    while (last > r->raw && last[-1] != '\n') {
        last--;
    }
    p = last + 4;
    r->ecode[0] = '\0';
    if (p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
        n = strcspn(p, " \r");
        if (n < sizeof(r->ecode)) {
            memcpy(r->ecode, p, n);
            r->ecode[n] = '\0';
            p += n + (p[n] == ' ');
        }
    }
    n = strcspn(p, "\r");
    snprintf(r->text, sizeof(r->text), "%.*s", (int) n, p);
}


/* recv() on the client's end, through TLS after pst_test_starttls(). */
static ssize_t
pst_test_recv(pst_test_t *t, void *buf, size_t n, int peek)
{
    if (t->ssl != NULL) {
        return pst_test_tls_recv(t, buf, n, peek);
    }
    return recv(t->fd, buf, n, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));
}


/* Read what is there; 1 when the reply is complete. */
static int
pst_test_read(pst_test_t *t)
{
    pst_test_reply_t  *r = &t->reply;
    size_t             n = strlen(r->raw), line;
    ssize_t            k;

    while (n + 1 < sizeof(r->raw)) {
        k = pst_test_recv(t, r->raw + n, 1, 0);
        if (k <= 0) {
            if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                r->closed = 1;
            }
            return 0;
        }
        r->raw[++n] = '\0';
        if (n >= 2 && r->raw[n - 2] == '\r' && r->raw[n - 1] == '\n') {
            for (line = n - 2; line > 0 && r->raw[line - 1] != '\n'; line--) {
                /* void */
            }
            if (n - line >= 6 && r->raw[line + 3] == ' ') {
                pst_test_parse(r);
                r->pending = 0;
                return 1;
            }
        }
    }
    return 0;
}


const pst_test_reply_t *
pst_test_wait(pst_test_t *t, int ms)
{
    pst_msec_t  quiet, deadline;
    size_t      had;
    char        eof;

    if (t->fd == -1 || !t->reply.pending) {
        return &t->reply;
    }
    deadline = pst_test_real_ms() + (pst_msec_t) ms;
    quiet = pst_test_real_ms() + PST_TEST_QUIET_MS;
    for ( ;; ) {
        had = strlen(t->reply.raw);
        pst_test_turn();
        if (pst_test_read(t)) {
            break;
        }
        if (t->reply.closed) {
            t->reply.pending = 0;
            break;
        }
        if (strlen(t->reply.raw) != had) {
            quiet = pst_test_real_ms() + PST_TEST_QUIET_MS;
        }
        if (pst_test_real_ms() >= pst_max(deadline, quiet)) {
            break;
        }
    }
    /* the rest of the loop's work (a session ending, DISCONNECT) */
    pst_test_turn();
    /* a server that hung up after its reply (421, DISCONNECT): closed
     * now, not only when the next command fails */
    if (!t->reply.pending && !t->reply.closed
        && pst_test_recv(t, &eof, 1, 1) == 0)
    {
        t->reply.closed = 1;
    }
    return &t->reply;
}


static const pst_test_reply_t *
pst_test_send(pst_test_t *t, const char *text, size_t len)
{
    size_t   off = 0;
    ssize_t  n;

    memset(&t->reply, 0, sizeof(t->reply));
    t->reply.pending = 1;
    if (t->fd == -1) {
        t->reply.pending = 0;
        t->reply.closed = 1;
        return &t->reply;
    }
    while (off < len) {
        n = t->ssl != NULL ? pst_test_tls_send(t, text + off, len - off)
                           : send(t->fd, text + off, len - off,
                                  MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t) n;
        } else if (n == -1 && errno == EAGAIN) {
            pst_test_turn();            /* the session reads meanwhile */
        } else {
            t->reply.pending = 0;
            t->reply.closed = 1;
            return &t->reply;
        }
    }
    return pst_test_wait(t, 0);
}


static void
pst_test_phases_reset(pst_test_t *t)
{
    memset(t->started, 0, sizeof(t->started));
    memset(t->reached, 0, sizeof(t->reached));
}


const pst_test_reply_t *
pst_test_connect(pst_test_t *t)
{
    pst_listening_t   *ls;
    pst_connection_t  *c;
    int                sv[2];

    if (t->cycle == NULL) {
        (void) pst_test_config(t, NULL, NULL);
    }
    if (t->fd != -1) {
        pst_test_close(t);
    }
    memset(&t->reply, 0, sizeof(t->reply));
    if (t->cycle == NULL
        || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                      sv) != 0
        || (c = pst_get_connection(sv[0])) == NULL)
    {
        t->reply.closed = 1;
        return &t->reply;
    }
    memcpy(&c->sockaddr, &t->addr, t->addrlen);
    c->socklen = t->addrlen;
    c->local_sockaddr = c->sockaddr;
    ls = t->cycle->listening.elts;
    c->listening = &ls[0];
    if (pst_event_add_conn(c) != PST_OK) {
        t->reply.closed = 1;
        return &t->reply;
    }

    t->fd = sv[1];
    pst_test_phases_reset(t);
    t->reply.pending = 1;
    ls[0].handler(c);
    return pst_test_wait(t, 0);
}


const pst_test_reply_t *
pst_test_command(pst_test_t *t, const char *line)
{
    char    buf[2048];
    int     n;

    pst_test_phases_reset(t);
    n = snprintf(buf, sizeof(buf), "%s\r\n", line);
    if (n < 0 || (size_t) n >= sizeof(buf)) {
        memset(&t->reply, 0, sizeof(t->reply));
        return &t->reply;
    }
    return pst_test_send(t, buf, (size_t) n);
}


const pst_test_reply_t *
pst_test_helo(pst_test_t *t, const char *name)
{
    char  buf[1024];

    snprintf(buf, sizeof(buf), "EHLO %s", name);
    return pst_test_command(t, buf);
}


/* "a@b PARAMS" as "<a@b> PARAMS" after the verb */
static const pst_test_reply_t *
pst_test_path(pst_test_t *t, const char *verb, const char *arg)
{
    char    buf[1024];
    size_t  n = strcspn(arg, " ");

    snprintf(buf, sizeof(buf), "%s:<%.*s>%s", verb, (int) n, arg, arg + n);
    return pst_test_command(t, buf);
}


const pst_test_reply_t *
pst_test_mail(pst_test_t *t, const char *sender)
{
    return pst_test_path(t, "MAIL FROM", sender);
}


const pst_test_reply_t *
pst_test_rcpt(pst_test_t *t, const char *rcpt)
{
    return pst_test_path(t, "RCPT TO", rcpt);
}


/* The message with CRLF line ends, dot-stuffed, and the final dot. */
static char *
pst_test_stuff(const char *m, size_t *len)
{
    size_t   n = strlen(m), k = 0;
    char    *out;
    int      bol = 1;

    out = malloc(n * 3 + 8);
    if (out == NULL) {
        return NULL;
    }
    for ( /* void */ ; *m != '\0'; m++) {
        if (bol && *m == '.') {
            out[k++] = '.';
        }
        if (*m == '\n' && (k == 0 || out[k - 1] != '\r')) {
            out[k++] = '\r';
        }
        out[k++] = *m;
        bol = *m == '\n';
    }
    if (!bol) {
        out[k++] = '\r';
        out[k++] = '\n';
    }
    memcpy(out + k, ".\r\n", 3);
    *len = k + 3;
    return out;
}


const pst_test_reply_t *
pst_test_data(pst_test_t *t, const char *message)
{
    const pst_test_reply_t  *r;
    char                    *text;
    size_t                   len;

    r = pst_test_command(t, "DATA");
    if (r->code != 354) {
        return r;
    }
    text = pst_test_stuff(message, &len);
    if (text == NULL) {
        return r;
    }
    pst_test_phases_reset(t);
    r = pst_test_send(t, text, len);
    free(text);
    return r;
}


void
pst_test_close(pst_test_t *t)
{
    pst_msec_t  deadline = pst_test_real_ms() + 1000;

    if (t->fd == -1) {
        return;
    }
    pst_test_tls_end(t);
    close(t->fd);
    t->fd = -1;
    while (pst_smtp_session_count() != 0 && pst_test_real_ms() < deadline) {
        pst_test_turn();
    }
}


void
pst_test_advance(pst_test_t *t, pst_msec_t ms)
{
    int  i;

    (void) t;
    pst_time_advance(ms);
    for (i = 0; i < 3; i++) {
        pst_test_turn();
    }
}


/* ------------------------------------------------------------------ */
/* Verdicts                                                            */

int
pst_test_verdict(pst_test_t *t, pst_phase_e phase)
{
    const pst_test_reply_t  *r = &t->reply;
    pst_session_t           *s = t->session;
    int                      end = phase == PST_PHASE_MESSAGE
                                   || phase == PST_PHASE_QUEUE;

    if ((unsigned) phase >= PST_PHASE_MAX || !t->started[phase]) {
        return -1;
    }
    if (t->reached[phase]) {
        return s != NULL && pst_tx_hold(s) && !t->hold_at_start[phase]
               ? PST_HOOK_HOLD
               : (t->committed && end && pst_test_held(t)
                  && !t->hold_at_start[phase]) ? PST_HOOK_HOLD
               : PST_HOOK_CONTINUE;
    }
    if (r->pending) {
        return PST_HOOK_PENDING;
    }
    if (r->code == 421 || (r->closed && r->code == 0)) {
        return PST_HOOK_DISCONNECT;
    }
    if (r->code >= 500) {
        return PST_HOOK_REJECT;
    }
    if (r->code >= 400) {
        return PST_HOOK_TEMPFAIL;
    }
    if ((end && !t->committed)
        || (phase == PST_PHASE_RCPT && s != NULL && pst_tx_discard(s)))
    {
        return PST_HOOK_DISCARD;
    }
    return PST_HOOK_ACCEPT;
}


int
pst_test_expect(const pst_test_reply_t *r, int code, const char *ecode,
    const char *text)
{
    if (r->code == code
        && (ecode == NULL || strcmp(r->ecode, ecode) == 0)
        && (text == NULL || strncmp(r->text, text, strlen(text)) == 0))
    {
        return 1;
    }
    fprintf(stderr, "postern-test: expected %d %s %s..., got %s%s\n", code,
            ecode != NULL ? ecode : "*", text != NULL ? text : "*",
            r->pending ? "no reply (a hook is pending)"
                       : r->closed && r->code == 0 ? "a closed connection"
                                                   : "",
            r->raw);
    return 0;
}
