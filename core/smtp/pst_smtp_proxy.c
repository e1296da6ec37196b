/*
 * pst_smtp_proxy.c -- when another host speaks for the client: the PROXY
 * protocol on a listener's accept path, and Postfix's XCLIENT command.
 *
 * PROXY ("listen ADDR proxy_protocol;"): before anything else -- the
 * connection counters, the session, a TLS handshake, the greeting -- the
 * peer must be in proxy_trusted of the listener's default server block
 * and must send one PROXY header (pst_proxy_protocol.c) within
 * proxy_protocol_timeout.  The header is read with MSG_PEEK and only its
 * own bytes are then taken from the socket, so what follows it (SMTP,
 * or a TLS ClientHello on an implicit-TLS listener) is left for the
 * session.  The client it names replaces the connection's peer address:
 * from then on the counters, logs, reverse lookup, policy modules,
 * Received and the envelope all see the proxied client.  A peer outside
 * proxy_trusted, a bad header, a timeout or an early close: a log line
 * and the connection is closed without a word (the peer is a proxy,
 * not an SMTP client).
 *
 * XCLIENT (www.postfix.org/XCLIENT_README.html): a client in
 * xclient_trusted -- nginx's mail proxy, a test tool -- replaces the
 * facts about the client: ADDR, PORT, NAME, HELO, LOGIN, PROTO (xtext
 * values, [UNAVAILABLE] and [TEMPUNAVAIL] for "unknown").  Outside a
 * transaction only.  The session then starts over as if the new client
 * had connected: the connection is counted for the new address, its
 * name looked up (unless NAME gave it), the CONNECT hooks run again and
 * their verdict is the new greeting (220, 554 or 421).  HELO is
 * forgotten unless given.  Once an XCLIENT is accepted the session may
 * send more (the new address need not be trusted itself).
 */

#include "pst_smtp.h"
#include "pst_proxy_protocol.h"
#include "pst_connection.h"
#include "pst_event.h"

#define PST_XCLIENT_VALUE_MAX    255

typedef struct {
    pst_sockaddr_t               addr;
    socklen_t                    socklen;
    pst_str_t                    name;
    pst_str_t                    helo;
    pst_str_t                    login;
    int                          port;      /* -1: not given */
    int                          esmtp;     /* -1: not given */
    unsigned                     has_addr:1;
    unsigned                     has_name:1;
    unsigned                     has_helo:1;
    unsigned                     has_login:1;
} pst_xclient_t;

static pst_uint_t  pst_smtp_proxy_waiting;     /* connections before the
                                                 header */

static void pst_smtp_proxy_read(pst_event_t *ev);
static void pst_smtp_proxy_idle(pst_event_t *ev);
static void pst_smtp_proxy_drop(pst_connection_t *c, int level,
    const char *what, const char *why);
static void pst_smtp_proxy_done(pst_connection_t *c,
    const pst_proxy_header_t *h);
static int pst_smtp_xclient_allowed(pst_session_t *s);
static int pst_smtp_xclient_parse(pst_session_t *s, pst_xclient_t *x);
static int pst_smtp_xclient_attr(pst_session_t *s, pst_xclient_t *x,
    const u_char *name, size_t nlen, pst_str_t *v);
static int pst_smtp_xclient_addr(pst_xclient_t *x, const pst_str_t *v);
static int pst_smtp_xclient_text(pst_session_t *s, pst_str_t *to,
    const pst_str_t *v, int hostname);
static int pst_smtp_xclient_move(pst_session_t *s, const pst_xclient_t *x);
static void pst_smtp_xclient_apply(pst_session_t *s, const pst_xclient_t *x,
    const pst_str_t *from);


/* ------------------------------------------------------------------ */
/* PROXY protocol                                                      */

void
pst_smtp_proxy_accept(pst_connection_t *c)
{
    pst_smtp_srv_conf_t  *conf = c->listening->server->conf;

    if (!pst_cidr_match_list(conf->proxy_trusted, &c->sockaddr.sa)) {
        pst_smtp_proxy_drop(c, PST_LOG_NOTICE, "refused connection",
                            "not in proxy_trusted");
        return;
    }

    pst_smtp_proxy_waiting++;
    c->data = NULL;
    c->read.handler = pst_smtp_proxy_read;
    c->write.handler = pst_smtp_proxy_idle;
    pst_event_add_timer(&c->read, conf->proxy_timeout);

    /* the header may be there already */
    pst_smtp_proxy_read(&c->read);
}


static void
pst_smtp_proxy_idle(pst_event_t *ev)
{
    (void) ev;
}


static void
pst_smtp_proxy_read(pst_event_t *ev)
{
    pst_connection_t    *c = ev->data;
    pst_proxy_header_t   h;
    u_char               buf[PST_PROXY_MAX];
    const char          *why;
    ssize_t              n;
    int                  rc;

    if (ev->timedout) {
        ev->timedout = 0;
        pst_smtp_proxy_drop(c, PST_LOG_INFO, "no PROXY header",
                            "timed out");
        return;
    }

    do {
        n = recv(c->fd, buf, sizeof(buf), MSG_PEEK);
    } while (n == -1 && errno == EINTR);

    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        ev->ready = 0;
        return;                         /* the next edge, or the timer */
    }

    if (n <= 0) {
        pst_smtp_proxy_drop(c, PST_LOG_INFO, "no PROXY header",
                            n == 0 ? "closed by the peer"
                                   : strerror(errno));
        return;
    }

    rc = pst_proxy_parse(buf, (size_t) n, &h, &why);

    if (rc == PST_AGAIN && (size_t) n < sizeof(buf)) {
        if (ev->eof) {
            /* the peek sees the same bytes again: nothing more comes */
            pst_smtp_proxy_drop(c, PST_LOG_INFO, "no PROXY header",
                                "closed by the peer");
            return;
        }
        ev->ready = 0;
        return;
    }

    if (rc != PST_OK) {
        pst_smtp_proxy_drop(c, PST_LOG_NOTICE, "invalid PROXY header",
                            why != NULL ? why : "too long");
        return;
    }

    pst_smtp_proxy_done(c, &h);
}


static void
pst_smtp_proxy_drop(pst_connection_t *c, int level, const char *what,
    const char *why)
{
    u_char  addr[INET6_ADDRSTRLEN + 1];
    size_t  n;

    if (c->read.handler == pst_smtp_proxy_read) {
        pst_smtp_proxy_waiting--;
    }

    n = pst_sock_ntop(&c->sockaddr.sa, addr, sizeof(addr), 0);
    pst_log_error(level, 0, "%s from %.*s on %s (proxy_protocol): %s",
                  what, (int) n, addr, c->listening->addr_text, why);
    pst_close_connection(c);
}


/* A worker that stops gracefully waits for these too: the client behind
 * the proxy has connected already. */
pst_uint_t
pst_smtp_proxy_pending(void)
{
    return pst_smtp_proxy_waiting;
}


static void
pst_smtp_proxy_done(pst_connection_t *c, const pst_proxy_header_t *h)
{
    u_char   peer[INET6_ADDRSTRLEN + 1], client[INET6_ADDRSTRLEN + 8];
    u_char   buf[PST_PROXY_MAX];
    size_t   n, k;
    ssize_t  r;

    /* take exactly the header: the rest belongs to the session */
    do {
        r = recv(c->fd, buf, h->len, 0);
    } while (r == -1 && errno == EINTR);

    if (r != (ssize_t) h->len) {
        pst_smtp_proxy_drop(c, PST_LOG_ERR, "PROXY header",
                            "short read of peeked bytes");
        return;
    }

    pst_event_del_timer(&c->read);
    pst_smtp_proxy_waiting--;

    n = pst_sock_ntop(&c->sockaddr.sa, peer, sizeof(peer), 0);

    if (!h->local) {
        c->sockaddr = h->src;              /* whole: no stale bytes */
        c->local_sockaddr = h->dst;
        c->socklen = h->socklen;
    }

    if (c->listening->server->conf->debug) {
        k = pst_sock_ntop(&c->sockaddr.sa, client, sizeof(client), 1);
        pst_log_error(PST_LOG_INFO, 0, "PROXY v%d from %.*s: client %.*s%s",
                      h->version, (int) n, peer, (int) k, client,
                      h->local ? " (LOCAL/UNKNOWN: the proxy itself)" : "");
    }

    pst_smtp_init_connection(c);
}


/* ------------------------------------------------------------------ */
/* XCLIENT                                                             */

static int
pst_smtp_xclient_allowed(pst_session_t *s)
{
    return s->xclient
           || pst_cidr_match_list(s->conf->xclient_trusted,
                                  &s->c->sockaddr.sa);
}


size_t
pst_smtp_xclient_ehlo(pst_session_t *s, char *buf, size_t size)
{
    static const char  line[] = "250-XCLIENT ADDR PORT NAME HELO LOGIN"
                                " PROTO\r\n";

    if (!pst_smtp_xclient_allowed(s) || size < sizeof(line)) {
        return 0;
    }

    memcpy(buf, line, sizeof(line));
    return sizeof(line) - 1;
}


void
pst_smtp_cmd_xclient(pst_session_t *s)
{
    pst_xclient_t  x;
    pst_str_t      from;

    if (!pst_smtp_xclient_allowed(s)) {
        pst_log_session(s, PST_LOG_NOTICE, "XCLIENT refused: not in"
                        " xclient_trusted");
        pst_smtp_reply(s, 550, "5.7.0", "Error: insufficient"
                       " authorization");
        return;
    }

    if (s->tx != NULL) {
        pst_smtp_reply(s, 503, "5.5.1", "Error: MAIL transaction in"
                       " progress");
        return;
    }

    if (pst_smtp_xclient_parse(s, &x) != PST_OK) {
        return;                          /* answered */
    }

    from = s->client_addr;        /* a new string replaces it */

    if (x.has_addr || x.port >= 0) {
        if (pst_smtp_xclient_move(s, &x) != PST_OK) {
            return;                      /* 421, closing */
        }
    }

    pst_smtp_xclient_apply(s, &x, &from);

    /* a new session for the new client: its name, the CONNECT hooks,
     * and their verdict as the new greeting */
    s->xclient = 1;
    s->greeted = 0;
    s->early_talker = 0;            /* that was the proxy */
    pst_smtp_enter_state(s, PST_SMTP_S_PHASE);

    if (x.has_addr && !x.has_name) {
        pst_smtp_session_start(s);
    } else {
        pst_smtp_connect_start(s);
    }
}


/* "XCLIENT NAME=value ..." into x; PST_OK, or PST_ERROR after a 501. */
static int
pst_smtp_xclient_parse(pst_session_t *s, pst_xclient_t *x)
{
    u_char     *p, *end, *tok, *eq;
    pst_str_t   v;

    memset(x, 0, sizeof(pst_xclient_t));
    x->port = -1;
    x->esmtp = -1;

    p = s->arg.data;
    end = p + s->arg.len;

    if (p == end) {
        pst_smtp_reply(s, 501, "5.5.4", "Syntax: XCLIENT attribute=value"
                       " ...");
        return PST_ERROR;
    }

    while (p < end) {
        tok = p;
        while (p < end && *p != ' ') {
            p++;
        }

        eq = memchr(tok, '=', (size_t) (p - tok));
        if (eq == NULL) {
            pst_smtp_reply(s, 501, "5.5.4", "Syntax: XCLIENT"
                           " attribute=value ...");
            return PST_ERROR;
        }

        v.data = eq + 1;
        v.len = (size_t) (p - v.data);

        if (pst_smtp_xclient_attr(s, x, tok, (size_t) (eq - tok), &v)
            != PST_OK)
        {
            return PST_ERROR;
        }

        while (p < end && *p == ' ') {
            p++;
        }
    }

    return PST_OK;
}


/* One attribute; its value is xtext (decoded in place). */
static int
pst_smtp_xclient_attr(pst_session_t *s, pst_xclient_t *x,
    const u_char *name, size_t nlen, pst_str_t *v)
{
    pst_str_t  n;
    ssize_t    k;
    int        unknown, ok;

    n.data = (u_char *) name;
    n.len = nlen;

    k = pst_xtext_decode(v->data, v->data, v->len);
    if (k < 0 || (size_t) k > PST_XCLIENT_VALUE_MAX) {
        pst_smtp_reply(s, 501, "5.5.4", "Bad %.*s value", (int) nlen, name);
        return PST_ERROR;
    }
    v->len = (size_t) k;

    unknown = pst_str_caseeq(v, "[UNAVAILABLE]")
              || pst_str_caseeq(v, "[TEMPUNAVAIL]");

    if (pst_str_caseeq(&n, "ADDR")) {
        ok = !unknown && pst_smtp_xclient_addr(x, v) == PST_OK;
    } else if (pst_str_caseeq(&n, "PORT")) {
        x->port = unknown ? 0 : (int) pst_atoi(v->data, v->len, 65535);
        ok = x->port >= 0;
    } else if (pst_str_caseeq(&n, "NAME")) {
        x->has_name = 1;
        ok = unknown || pst_smtp_xclient_text(s, &x->name, v, 1) == PST_OK;
    } else if (pst_str_caseeq(&n, "HELO")) {
        x->has_helo = 1;
        ok = unknown || pst_smtp_xclient_text(s, &x->helo, v, 0) == PST_OK;
    } else if (pst_str_caseeq(&n, "LOGIN")) {
        x->has_login = 1;
        ok = unknown || pst_smtp_xclient_text(s, &x->login, v, 0) == PST_OK;
    } else if (pst_str_caseeq(&n, "PROTO")) {
        x->esmtp = pst_str_caseeq(v, "ESMTP") ? 1
                   : pst_str_caseeq(v, "SMTP") ? 0 : -1;
        ok = unknown || x->esmtp >= 0;
    } else {
        pst_smtp_reply(s, 501, "5.5.4", "Bad XCLIENT attribute name: %.*s",
                       (int) pst_min(nlen, 32), name);
        return PST_ERROR;
    }

    if (!ok) {
        pst_smtp_reply(s, 501, "5.5.4", "Bad %.*s syntax", (int) nlen, name);
        return PST_ERROR;
    }

    return PST_OK;
}


/* ADDR: an IPv4 address, or an IPv6 one with or without "IPV6:". */
static int
pst_smtp_xclient_addr(pst_xclient_t *x, const pst_str_t *v)
{
    char  text[INET6_ADDRSTRLEN + 8];

    if (v->len == 0 || v->len >= sizeof(text)) {
        return PST_ERROR;
    }
    memcpy(text, v->data, v->len);
    text[v->len] = '\0';

    memset(&x->addr, 0, sizeof(x->addr));

    if (inet_pton(AF_INET, text, &x->addr.sin.sin_addr) == 1) {
        x->addr.sin.sin_family = AF_INET;
        x->socklen = sizeof(struct sockaddr_in);

    } else if (inet_pton(AF_INET6, strncasecmp(text, "IPV6:", 5) == 0
                                   ? text + 5 : text,
                         &x->addr.sin6.sin6_addr) == 1)
    {
        x->addr.sin6.sin6_family = AF_INET6;
        x->socklen = sizeof(struct sockaddr_in6);

    } else {
        return PST_ERROR;
    }

    x->has_addr = 1;
    return PST_OK;
}


/* NAME, HELO, LOGIN: printable ASCII, a host name for NAME; copied into
 * the session's pool. */
static int
pst_smtp_xclient_text(pst_session_t *s, pst_str_t *to, const pst_str_t *v,
    int hostname)
{
    size_t  i;

    if (v->len == 0) {
        return PST_ERROR;
    }

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < 0x21 || v->data[i] > 0x7e) {
            return PST_ERROR;
        }
    }

    if (hostname && pst_smtp_check_domain(v->data, v->len, 0) != PST_OK) {
        return PST_ERROR;
    }

    to->data = pst_palloc(s->pool, v->len + 1);
    if (to->data == NULL) {
        return PST_ERROR;
    }

    if (hostname) {
        pst_strlow(to->data, v->data, v->len);
    } else {
        memcpy(to->data, v->data, v->len);
    }
    to->data[v->len] = '\0';
    to->len = v->len;

    return PST_OK;
}


/* The new address (or port): the connection is counted for it, as if
 * it had connected.  PST_OK, or PST_ERROR after a 421. */
static int
pst_smtp_xclient_move(pst_session_t *s, const pst_xclient_t *x)
{
    pst_connection_t  *c = s->c;
    pst_sockaddr_t     sa;
    pst_str_t          addr;
    u_char             text[INET6_ADDRSTRLEN + 1];
    size_t             n;
    int                rc;

    sa = x->has_addr ? x->addr : c->sockaddr;

    if (x->port >= 0) {
        if (sa.sa.sa_family == AF_INET) {
            sa.sin.sin_port = htons((uint16_t) x->port);
        } else {
            sa.sin6.sin6_port = htons((uint16_t) x->port);
        }
    }

    n = pst_sock_ntop(&sa.sa, text, sizeof(text), 0);

    if (x->has_addr) {
        addr.data = pst_palloc(s->pool, n + 1);
        if (addr.data == NULL) {
            s->closing = 1;
            return PST_ERROR;
        }
        memcpy(addr.data, text, n + 1);
        addr.len = n;

        if (s->limit_counted) {
            pst_conn_count_release(&c->sockaddr.sa);
            s->limit_counted = 0;
        }

        rc = pst_conn_count_acquire(&sa.sa, s->conf->max_connections,
                                    s->conf->max_connections_per_ip);
        if (rc != PST_OK) {
            pst_log_session(s, PST_LOG_NOTICE, "XCLIENT ADDR=%.*s refused:"
                            " %s", (int) n, text, rc == PST_BUSY
                            ? "max_connections reached"
                            : "max_connections_per_ip reached");
            pst_smtp_reply(s, 421, "4.7.0", "Too many connections from"
                           " that address");
            pst_smtp_enter_state(s, PST_SMTP_S_CLOSING);
            return PST_ERROR;
        }
        s->limit_counted = 1;
        s->client_addr = addr;
    }

    c->sockaddr = sa;
    if (x->has_addr) {
        c->socklen = x->socklen;
    }

    return PST_OK;
}


static void
pst_smtp_xclient_apply(pst_session_t *s, const pst_xclient_t *x,
    const pst_str_t *from)
{
    u_char  login[PST_XCLIENT_VALUE_MAX + 1];

    if (x->has_addr) {
        /* the old name belongs to the old address */
        s->client_name.len = 0;
        s->ptr_name.len = 0;
    }

    if (x->has_name) {
        /* the proxy vouches for it, as for a confirmed name */
        s->client_name = x->name;
        s->ptr_name = x->name;
    }

    /* the new session has not said HELO yet, unless the proxy says so */
    pst_smtp_tx_free(s);
    s->helo = x->helo;
    s->helo_seen = x->has_helo && x->helo.len > 0;
    s->esmtp = x->esmtp == 1 && s->helo_seen;

    if (x->has_login) {
        pst_smtp_auth_reset(s);
        s->auth_id = x->login;
    }

    (void) pst_sanitize(login, sizeof(login), s->auth_id.data,
                        s->auth_id.len);
    pst_log_session(s, PST_LOG_INFO, "XCLIENT from %.*s: name=%.*s"
                    " helo=%.*s login=%s", (int) from->len, from->data,
                    (int) s->client_name.len,
                    s->client_name.len ? (char *) s->client_name.data : "",
                    (int) s->helo.len,
                    s->helo.len ? (char *) s->helo.data : "",
                    s->auth_id.len ? (char *) login : "");
}
