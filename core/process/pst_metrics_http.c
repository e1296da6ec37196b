/*
 * pst_metrics_http.c -- the metrics endpoint (metrics_listen ADDR;).
 *
 * The master binds the TCP socket (and keeps it over reloads while the
 * address does not change) so the port is never in two processes'
 * hands; the queue process serves it from its event loop, the way it
 * serves the control socket.  A minimal HTTP/1.1 responder: one
 * request per connection (Connection: close), GET or HEAD of
 * /metrics (or /), a request head of at most PST_METRICS_REQ_MAX bytes
 * read within PST_METRICS_TIMEOUT, at most PST_METRICS_CONN_MAX
 * connections at once.  "Accept: application/openmetrics-text" gets
 * OpenMetrics 1.0, anything else the Prometheus text format 0.0.4.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_metrics_http.h"
#include "pst_metrics.h"

#define PST_METRICS_REQ_MAX      8192
#define PST_METRICS_CONN_MAX     16
#define PST_METRICS_TIMEOUT      10000     /* ms, each side */

typedef struct {
    pst_connection_t            *c;
    u_char                       req[PST_METRICS_REQ_MAX];
    size_t                       len;
    pst_buf_t                   *out;
} pst_metrics_conn_t;


static void pst_metrics_accept(int fd, void *data);
static void pst_metrics_read(pst_event_t *ev);
static void pst_metrics_write(pst_event_t *ev);
static void pst_metrics_finish(pst_metrics_conn_t *mc);
static void pst_metrics_answer(pst_metrics_conn_t *mc, size_t head);
static int pst_metrics_reply(pst_buf_t *out, int code, const char *type,
    const pst_buf_t *body, int head_only);

static int         lfd = -1;
static char        laddr[128];
static int         serving;
static pst_uint_t  nconns;


int
pst_metrics_listen(pst_cycle_t *cycle)
{
    const pst_str_t  *spec;
    pst_sockaddr_t    sa;
    socklen_t         len;
    int               fd, on;

    spec = pst_metrics_listen_addr(cycle);
    if (spec != NULL && lfd != -1 && strcmp(laddr, (char *) spec->data) == 0)
    {
        return PST_OK;
    }
    pst_metrics_close();
    if (spec == NULL) {
        return PST_OK;
    }

    if (pst_listening_parse(NULL, spec, &sa, &len) != PST_OK) {
        return PST_ERROR;
    }

    fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    on = 1;
    if (fd == -1
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1
        || bind(fd, &sa.sa, len) == -1
        || listen(fd, 64) == -1)
    {
        pst_log_error(PST_LOG_EMERG, errno, "metrics_listen %s: cannot"
                      " listen", spec->data);
        if (fd != -1) {
            close(fd);
        }
        return PST_ERROR;
    }

    lfd = fd;
    snprintf(laddr, sizeof(laddr), "%s", spec->data);
    return PST_OK;
}


void
pst_metrics_close(void)
{
    pst_metrics_stop();
    if (lfd != -1) {
        close(lfd);
        lfd = -1;
    }
}


int
pst_metrics_serve(pst_cycle_t *cycle)
{
    (void) cycle;

    if (lfd == -1) {
        return PST_OK;
    }
    if (pst_fd_watch(lfd, pst_metrics_accept, NULL) != PST_OK) {
        return PST_ERROR;
    }
    serving = 1;
    return PST_OK;
}


void
pst_metrics_stop(void)
{
    if (serving) {
        (void) pst_fd_unwatch(lfd);
        serving = 0;
        /* the master keeps its copy: the next queue process serves it */
        close(lfd);
        lfd = -1;
    }
}


static void
pst_metrics_accept(int fd0, void *data)
{
    pst_metrics_conn_t  *mc;
    pst_connection_t    *c;
    int                  fd, i;

    (void) data;

    for (i = 0; i < 8; i++) {
        fd = accept4(fd0, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            return;
        }

        mc = NULL;
        c = NULL;
        if (nconns >= PST_METRICS_CONN_MAX
            || (mc = calloc(1, sizeof(pst_metrics_conn_t))) == NULL
            || (c = pst_get_connection(fd)) == NULL)
        {
            (void) !write(fd, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n", 58);
            free(mc);
            close(fd);
            continue;
        }

        nconns++;
        mc->c = c;
        c->data = mc;
        c->read.handler = pst_metrics_read;
        c->write.handler = pst_metrics_write;

        if (pst_event_add_conn(c) != PST_OK) {
            pst_metrics_finish(mc);
            continue;
        }
        pst_event_add_timer(&c->read, PST_METRICS_TIMEOUT);
        c->read.ready = 1;
        pst_metrics_read(&c->read);
    }
}


static void
pst_metrics_read(pst_event_t *ev)
{
    pst_connection_t    *c = ev->data;
    pst_metrics_conn_t  *mc = c->data;
    u_char              *end;
    ssize_t              n;

    if (ev->timedout) {
        pst_metrics_finish(mc);
        return;
    }

    while (mc->out == NULL) {
        n = c->recv(c, mc->req + mc->len, sizeof(mc->req) - mc->len);
        if (n == PST_AGAIN) {
            return;
        }
        if (n <= 0) {
            pst_metrics_finish(mc);
            return;
        }
        mc->len += (size_t) n;

        end = memmem(mc->req, mc->len, "\r\n\r\n", 4);
        if (end == NULL) {
            end = memmem(mc->req, mc->len, "\n\n", 2);
        }
        if (end == NULL && mc->len < sizeof(mc->req)) {
            continue;
        }

        mc->out = pst_buf_alloc(16384);
        if (mc->out == NULL) {
            pst_metrics_finish(mc);
            return;
        }
        pst_metrics_answer(mc, end == NULL ? 0 : (size_t) (end - mc->req));

        pst_event_del_timer(&c->read);
        pst_event_add_timer(&c->write, PST_METRICS_TIMEOUT);
        c->write.ready = 1;
        pst_metrics_write(&c->write);
        return;
    }
}


/* head: length of the request head, 0 when it did not fit */
static void
pst_metrics_answer(pst_metrics_conn_t *mc, size_t head)
{
    pst_buf_t   *body;
    const char  *type;
    char        *p, *sp;
    int          om, head_only;

    if (head == 0) {
        (void) pst_metrics_reply(mc->out, 431, "text/plain", NULL, 0);
        return;
    }
    mc->req[head] = '\0';
    p = (char *) mc->req;

    head_only = strncmp(p, "HEAD ", 5) == 0;
    if (strncmp(p, "GET ", 4) != 0 && !head_only) {
        (void) pst_metrics_reply(mc->out, 405, "text/plain", NULL, 0);
        return;
    }
    p = strchr(p, ' ') + 1;
    sp = strchr(p, ' ');
    if (sp == NULL || strncmp(sp + 1, "HTTP/1.", 7) != 0
        || ((sp - p != 8 || strncmp(p, "/metrics", 8) != 0)
            && (sp - p != 1 || *p != '/')))
    {
        (void) pst_metrics_reply(mc->out, sp == NULL ? 400 : 404,
                                 "text/plain", NULL, 0);
        return;
    }

    om = strcasestr(sp, "\naccept:") != NULL
         && strstr(sp, "application/openmetrics-text") != NULL;
    type = om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
              : "text/plain; version=0.0.4; charset=utf-8";

    body = pst_buf_alloc(32768);
    if (body == NULL || pst_metrics_render(body, om) != PST_OK) {
        (void) pst_metrics_reply(mc->out, 500, "text/plain", NULL, 0);
    } else {
        (void) pst_metrics_reply(mc->out, 200, type, body, head_only);
    }
    if (body != NULL) {
        pst_buf_destroy(body);
    }
}


static int
pst_metrics_reply(pst_buf_t *out, int code, const char *type,
    const pst_buf_t *body, int head_only)
{
    char        hdr[512];
    const char  *text;
    size_t       blen;
    int          n;

    switch (code) {
    case 200: text = "OK"; break;
    case 400: text = "Bad Request"; break;
    case 404: text = "Not Found"; break;
    case 405: text = "Method Not Allowed"; break;
    case 431: text = "Request Header Fields Too Large"; break;
    default:  text = "Internal Server Error"; break;
    }

    blen = body != NULL ? pst_buf_size(body) : 0;
    n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n", code,
                 text, type, blen);

    if (pst_buf_append(out, hdr, (size_t) n, 2 * 1024 * 1024) != PST_OK) {
        return PST_ERROR;
    }
    if (blen == 0 || head_only) {
        return PST_OK;
    }
    return pst_buf_append(out, body->pos, blen, 2 * 1024 * 1024);
}


static void
pst_metrics_write(pst_event_t *ev)
{
    pst_connection_t    *c = ev->data;
    pst_metrics_conn_t  *mc = c->data;
    ssize_t              n;

    if (ev->timedout || mc->out == NULL) {
        if (ev->timedout) {
            pst_metrics_finish(mc);
        }
        return;
    }

    while (pst_buf_size(mc->out) > 0) {
        n = c->send(c, mc->out->pos, pst_buf_size(mc->out));
        if (n == PST_AGAIN) {
            return;
        }
        if (n < 0) {
            break;
        }
        mc->out->pos += n;
    }

    pst_metrics_finish(mc);
}


static void
pst_metrics_finish(pst_metrics_conn_t *mc)
{
    pst_close_connection(mc->c);
    if (mc->out != NULL) {
        pst_buf_destroy(mc->out);
    }
    free(mc);
    nconns--;
}
