/*
 * webhook.c -- tell a web service about every delivered or failed
 * recipient: an HTTP POST of a small JSON object, from the queue
 * process, without ever delaying a delivery.
 *
 *     load_module /path/to/webhook.so;
 *     webhook_url http://127.0.0.1:8080/mail-events;
 *     webhook_timeout 5s;          # each attempt, connect to answer
 *     webhook_retries 3;           # attempts after the first
 *
 * Body: {"event":"delivered","id":"...","sender":"...","rcpt":"...",
 * "code":250,"reply":"...","attempts":1,"subject":"...",
 * "message_id":"..."}.  A 2xx answer ends it; anything else (refused,
 * a timeout, a 5xx) is tried again after 1 s, 2 s, 4 s ... up to
 * webhook_retries times, then logged and dropped.
 *
 * Subject and Message-ID come from the message's header, which a
 * queue_event function can read at ENQUEUED only (and ROUTE): the
 * webhook keeps them with the message (pst_qevent_set_ctx()) until its
 * recipients' last events; the core frees them when the message leaves
 * the queue.  null when the message has no such field.
 *
 * Shows the queue side's rule: a queue_event function runs inside the
 * delivery engine and must not block.  It only copies what it needs
 * into a request and returns; the request then lives on the event loop
 * with its own small HTTP/1.1 client: a non-blocking socket watched
 * with pst_fd_watch_events() and a pst_timer_add() timeout.  At most
 * WH_ACTIVE requests are on the wire at once and WH_WAITING wait; more
 * are dropped with a warning (a slow web service must not grow the
 * queue process without bound).
 *
 * Left out on purpose, to stay small: https (put a local TLS proxy in
 * front, or use a TLS library's non-blocking API the same way), host
 * names (the URL names an address: 127.0.0.1, [::1]; a name would need
 * pst_dns_resolve_addrs() first), and keeping requests over a restart.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <postern/module.h>

#define WH_ACTIVE      4        /* requests on the wire at once */
#define WH_WAITING     1000     /* requests waiting for a slot */
#define WH_BODY_MAX    4096
#define WH_FIELD_MAX   200      /* bytes kept of Subject, Message-ID */

typedef struct wh_req_s  wh_req_t;

typedef struct {
    struct sockaddr_storage      addr;       /* from webhook_url */
    socklen_t                    addrlen;
    pst_str_t                    host;       /* Host: header */
    pst_str_t                    path;
    pst_msec_t                   timeout;
    pst_int_t                    retries;
    /* queue process state, hung off the configuration */
    wh_req_t                    *head, *tail;   /* waiting, FIFO */
    pst_uint_t                   nwaiting, nactive;
} wh_conf_t;

struct wh_req_s {
    wh_req_t                    *next;
    wh_conf_t                   *conf;
    int                          fd;
    pst_timer_t                 *timer;      /* timeout or retry delay */
    int                          tries;
    size_t                       sent;       /* bytes of out written */
    size_t                       len;
    char                         in[16];     /* "HTTP/1.1 200" */
    size_t                       nin;
    char                         out[];      /* request line .. body */
};

/* What the webhook keeps with a queued message, from its ENQUEUED to
 * its recipients' last events: freed by the core (free()) when the
 * message leaves the queue. */
typedef struct {
    char                         subject[WH_FIELD_MAX + 1];
    char                         msgid[WH_FIELD_MAX + 1];
    unsigned                     has_subject:1;
    unsigned                     has_msgid:1;
} wh_msg_t;

PST_EXPORT const pst_module_t  postern_module;

static void wh_pump(wh_conf_t *c);


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
wh_create(pst_conf_t *cf)
{
    wh_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(wh_conf_t));
    if (c != NULL) {
        c->timeout = PST_CONF_UNSET_MSEC;
        c->retries = PST_CONF_UNSET;
    }
    return c;
}


static char *
wh_init(pst_conf_t *cf, void *data)
{
    wh_conf_t  *c = data;

    (void) cf;
    if (c->timeout == PST_CONF_UNSET_MSEC) {
        c->timeout = 5000;
    }
    if (c->retries == PST_CONF_UNSET) {
        c->retries = 3;
    }
    return PST_CONF_OK;
}


/* The address of "127.0.0.1", "[::1]", "localhost", with ":PORT". */
static char *
wh_addr(wh_conf_t *c, char *host)
{
    struct sockaddr_in   *in4 = (struct sockaddr_in *) &c->addr;
    struct sockaddr_in6  *in6 = (struct sockaddr_in6 *) &c->addr;
    char                 *colon, *end;
    long                  port = 80;

    colon = strrchr(host, ':');
    if (colon != NULL && (host[0] != '[' || colon > strchr(host, ']'))) {
        *colon++ = '\0';
        port = strtol(colon, &end, 10);
        if (*colon == '\0' || *end != '\0' || port < 1 || port > 65535) {
            return "has an invalid port";
        }
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host[strlen(host) - 1] = '\0';
        host++;
    }
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((in_port_t) port);
        c->addrlen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((in_port_t) port);
        c->addrlen = sizeof(*in6);
    } else {
        return "needs an address, not a name (http://127.0.0.1:8080/)";
    }
    return PST_CONF_OK;
}


/* http://HOST[:PORT][/PATH] */
static char *
wh_set_url(pst_conf_t *cf, const pst_command_t *cmd, void *data)
{
    wh_conf_t  *c = data;
    pst_str_t  *url;
    u_char     *host, *path;
    char        buf[80];

    (void) cmd;
    url = &pst_conf_args(cf, NULL)[1];
    if (url->len < 8 || strncmp((char *) url->data, "http://", 7) != 0) {
        return "needs an http:// URL (https is not supported)";
    }
    host = url->data + 7;
    path = (u_char *) strchr((char *) host, '/');
    if (path == NULL) {
        path = (u_char *) "/";
        c->host.len = url->len - 7;
    } else {
        c->host.len = (size_t) (path - host);
    }
    if (c->host.len == 0 || c->host.len >= sizeof(buf)) {
        return "needs a host of 1 to 79 bytes";
    }
    c->host.data = host;
    c->path.data = path;
    c->path.len = strlen((char *) path);

    /* Host: keeps the text; the address is parsed from a copy */
    memcpy(buf, host, c->host.len);
    buf[c->host.len] = '\0';
    c->host.data = pst_pstrdup(pst_conf_pool(cf), &c->host);
    return c->host.data != NULL ? wh_addr(c, buf) : "is out of memory";
}


/* ------------------------------------------------------------------ */
/* One request on the wire                                             */

static void
wh_push(wh_conf_t *c, wh_req_t *r)
{
    r->next = NULL;
    if (c->tail != NULL) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->nwaiting++;
}


static void
wh_retry(void *data)
{
    wh_req_t  *r = data;

    r->timer = NULL;                /* freed by the core after this */
    wh_push(r->conf, r);
    wh_pump(r->conf);
}


/* An attempt failed (why) or succeeded (why NULL): again later, or
 * the end of the request. */
static void
wh_done(wh_req_t *r, const char *why)
{
    if (why != NULL && r->tries <= r->conf->retries) {
        pst_log(PST_LOG_INFO, 0, "webhook: %s; again in %d s", why,
                1 << (r->tries - 1));
        r->timer = pst_timer_add((pst_msec_t) 1000 << (r->tries - 1),
                                 wh_retry, r);
        if (r->timer != NULL) {
            return;
        }
    }
    if (why != NULL) {
        pst_log(PST_LOG_WARN, 0, "webhook: %s; given up after %d attempts",
                why, r->tries);
    }
    free(r);
}


/* The socket's part is over: close it, free the slot, start the next. */
static void
wh_finish(wh_req_t *r, const char *why)
{
    wh_conf_t  *c = r->conf;

    if (r->timer != NULL) {
        pst_timer_cancel(r->timer);
        r->timer = NULL;
    }
    (void) pst_fd_unwatch(r->fd);
    close(r->fd);
    r->fd = -1;
    c->nactive--;
    wh_done(r, why);
    wh_pump(c);
}


/* Read until the status line is complete: "HTTP/1.x NNN". */
static void
wh_read(wh_req_t *r)
{
    ssize_t  n;

    n = recv(r->fd, r->in + r->nin, sizeof(r->in) - 1 - r->nin, 0);
    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        wh_finish(r, n == 0 ? "connection closed before an answer"
                            : strerror(errno));
        return;
    }
    r->nin += (size_t) n;
    if (r->nin < 12) {
        return;
    }
    r->in[r->nin] = '\0';
    if (strncmp(r->in, "HTTP/1.", 7) != 0) {
        wh_finish(r, "not an HTTP answer");
    } else if (r->in[9] != '2') {
        pst_log(PST_LOG_INFO, 0, "webhook: answer %.3s", r->in + 9);
        wh_finish(r, "not a 2xx answer");
    } else {
        wh_finish(r, NULL);
    }
}


static void
wh_io(int fd, unsigned events, void *data)
{
    wh_req_t   *r = data;
    ssize_t     n;
    int         err = 0;
    socklen_t   len = sizeof(err);

    if (events & PST_FD_READ) {
        wh_read(r);
        return;
    }

    /* writable: the connection is up (or failed), send what is left */
    if (r->sent == 0
        && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1
            || err != 0))
    {
        wh_finish(r, strerror(err ? err : errno));
        return;
    }
    n = send(fd, r->out + r->sent, r->len - r->sent, MSG_NOSIGNAL);
    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n == -1) {
        wh_finish(r, strerror(errno));
        return;
    }
    r->sent += (size_t) n;
    if (r->sent == r->len) {
        /* all out: wait for the answer only (or the loop spins) */
        (void) pst_fd_watch_events(fd, PST_FD_READ, wh_io, r);
    }
}


static void
wh_timeout(void *data)
{
    wh_req_t  *r = data;

    r->timer = NULL;                /* freed by the core after this */
    wh_finish(r, "timed out");
}


/* Connect without waiting; the loop calls wh_io() when it is up.
 * NULL, or why it failed at once. */
static const char *
wh_connect(wh_req_t *r)
{
    wh_conf_t  *c = r->conf;

    r->tries++;
    r->sent = 0;
    r->nin = 0;
    r->fd = socket(c->addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd == -1) {
        return strerror(errno);
    }
    if ((connect(r->fd, (struct sockaddr *) &c->addr, c->addrlen) == -1
         && errno != EINPROGRESS)
        || pst_fd_watch_events(r->fd, PST_FD_WRITE, wh_io, r) != PST_OK)
    {
        close(r->fd);
        r->fd = -1;
        return "cannot connect";
    }
    r->timer = pst_timer_add(c->timeout, wh_timeout, r);
    if (r->timer == NULL) {
        (void) pst_fd_unwatch(r->fd);
        close(r->fd);
        r->fd = -1;
        return "no timer";
    }
    return NULL;
}


/* Start waiting requests while there is a free slot. */
static void
wh_pump(wh_conf_t *c)
{
    wh_req_t    *r;
    const char  *why;

    while (c->nactive < WH_ACTIVE && c->head != NULL) {
        r = c->head;
        c->head = r->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->nwaiting--;
        why = wh_connect(r);
        if (why != NULL) {
            wh_done(r, why);
        } else {
            c->nactive++;
        }
    }
}


/* ------------------------------------------------------------------ */
/* The queue event: copy, queue, return                                */

/* s as a JSON string (quotes included) into buf; its length */
static size_t
wh_json(char *buf, size_t size, const u_char *s, size_t n)
{
    size_t  i, k = 0;

    buf[k++] = '"';
    for (i = 0; i < n && k + 8 < size; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char) s[i];
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            k += (size_t) snprintf(buf + k, size - k, "\\u%04x", s[i]);
        } else {
            buf[k++] = (char) s[i];
        }
    }
    buf[k++] = '"';
    buf[k] = '\0';
    return k;
}


/* The JSON string of a kept field, or null. */
static void
wh_json_field(char *buf, size_t size, int has, const char *v)
{
    if (!has) {
        snprintf(buf, size, "null");
        return;
    }
    (void) wh_json(buf, size, (const u_char *) v, strlen(v));
}


static int
wh_body(const pst_qevent_t *ev, char *body, size_t size)
{
    const pst_str_t  *id = pst_qevent_id(ev), *from = pst_qevent_sender(ev),
                     *rcpt = pst_qevent_rcpt(ev);
    const wh_msg_t   *m = pst_qevent_get_ctx(ev, &postern_module);
    char              a[160], b[700], d[700], e[1100], f[700], g[700];
    const char       *reply = ev->reply != NULL ? ev->reply : "";

    (void) wh_json(a, sizeof(a), id->data, id->len);
    (void) wh_json(b, sizeof(b), from->data, from->len);
    (void) wh_json(d, sizeof(d), rcpt->data, rcpt->len);
    (void) wh_json(e, sizeof(e), (const u_char *) reply, strlen(reply));
    wh_json_field(f, sizeof(f), m != NULL && m->has_subject,
                  m != NULL ? m->subject : NULL);
    wh_json_field(g, sizeof(g), m != NULL && m->has_msgid,
                  m != NULL ? m->msgid : NULL);
    return snprintf(body, size, "{\"event\":\"%s\",\"id\":%s,\"sender\":%s,"
                    "\"rcpt\":%s,\"code\":%d,\"reply\":%s,\"attempts\":%u,"
                    "\"subject\":%s,\"message_id\":%s}",
                    pst_qevent_name(ev->event), a, b, d, ev->code, e,
                    pst_qevent_attempts(ev), f, g);
}


/* A field's value unfolded (CR and LF dropped, no leading blanks), at
 * most WH_FIELD_MAX bytes, into buf. */
static void
wh_copy_field(char *buf, const pst_str_t *value)
{
    size_t  i, n = 0;
    u_char  ch;

    for (i = 0; i < value->len && n < WH_FIELD_MAX; i++) {
        ch = value->data[i];
        if (ch != '\r' && ch != '\n'
            && (n > 0 || (ch != ' ' && ch != '\t')))
        {
            buf[n++] = (char) ch;
        }
    }
    buf[n] = '\0';
}


/* ENQUEUED: keep what the final events report of the header. */
static void
wh_enqueued(pst_qevent_t *ev)
{
    wh_msg_t   *m;
    pst_str_t   name, value;
    pst_uint_t  i;

    m = calloc(1, sizeof(wh_msg_t));
    if (m == NULL) {
        return;                     /* reported without them */
    }
    for (i = 0; pst_qevent_header(ev, i, &name, &value) == PST_OK; i++) {
        if (!m->has_subject && name.len == 7
            && pst_strncasecmp(name.data, (u_char *) "Subject", 7) == 0)
        {
            wh_copy_field(m->subject, &value);
            m->has_subject = 1;
        } else if (!m->has_msgid && name.len == 10
                   && pst_strncasecmp(name.data, (u_char *) "Message-ID",
                                      10) == 0)
        {
            wh_copy_field(m->msgid, &value);
            m->has_msgid = 1;
        }
    }
    if (pst_qevent_set_ctx(ev, &postern_module, m, free) != PST_OK) {
        free(m);                    /* still ours */
    }
}


static void
wh_event(pst_qevent_t *ev, void *main_conf)
{
    wh_conf_t  *c = main_conf;
    wh_req_t   *r;
    char        body[WH_BODY_MAX];
    int         n;

    if (ev->event == PST_QEV_ENQUEUED && c->addrlen != 0) {
        wh_enqueued(ev);
        return;
    }
    if ((ev->event != PST_QEV_DELIVERED && ev->event != PST_QEV_FAILED)
        || c->addrlen == 0 || pst_qevent_rcpt(ev) == NULL)
    {
        return;
    }
    if (c->nwaiting >= WH_WAITING) {
        pst_log(PST_LOG_WARN, 0, "webhook: %u requests waiting: dropped",
                (unsigned) c->nwaiting);
        return;
    }

    n = wh_body(ev, body, sizeof(body));
    r = malloc(sizeof(wh_req_t) + (size_t) n + c->path.len + c->host.len
               + 200);
    if (r == NULL || n < 0 || n >= (int) sizeof(body)) {
        free(r);
        return;
    }
    memset(r, 0, sizeof(wh_req_t));
    r->conf = c;
    r->fd = -1;
    r->len = (size_t) sprintf(r->out, "POST %s HTTP/1.1\r\nHost: %s\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: %d\r\nConnection: close\r\n"
                              "\r\n%s", (char *) c->path.data,
                              (char *) c->host.data, n, body);

    wh_push(c, r);
    wh_pump(c);
}


static const pst_command_t  wh_commands[] = {
    { "webhook_url", PST_CONF_MAIN | PST_CONF_TAKE1,
      wh_set_url, PST_MAIN_CONF, 0, NULL },
    { "webhook_timeout", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_MAIN_CONF, offsetof(wh_conf_t, timeout),
      NULL },
    { "webhook_retries", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_conf_set_num_slot, PST_MAIN_CONF, offsetof(wh_conf_t, retries),
      NULL },
    pst_null_command
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "webhook",
    .version = "1.1",
    .description = "POSTs delivered and failed recipients to a URL",
    .commands = wh_commands,
    .create_main_conf = wh_create,
    .init_main_conf = wh_init,
    .queue_event = wh_event,
};
