/*
 * tls_probe.c -- drives the core's client-side TLS API (pst_ssl.h) the
 * way relay code will: a non-blocking connect, a handshake in the
 * event loop, then the verification verdict.  Used by
 * tests/integration/test_tls_client.py.
 *
 *   tls_probe [-v none|opportunistic|verify] [-a CAFILE] [-d CADIR]
 *             [-n NAME] [-c CERT -k KEY] [-t TIMEOUT_MS] [-s] HOST PORT
 *
 *   -s  speak SMTP first: read the greeting, EHLO, STARTTLS
 *
 * Prints one line: "ok verified=0|1 version=... cipher=... [error=...]"
 * or "failed: reason", and exits 0 or 1.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_ssl.h"

static int  done_rc = -1;


static void
probe_noop(pst_event_t *ev)
{
    (void) ev;
}


static void
probe_done(pst_connection_t *c, int rc)
{
    const char  *e;

    if (rc != PST_OK) {
        printf("failed: %s\n", pst_ssl_error(c));
        done_rc = 1;
        return;
    }

    e = pst_ssl_verify_error(c);
    printf("ok verified=%d version=%s cipher=%s%s%s\n", pst_ssl_verified(c),
           pst_ssl_version(c), pst_ssl_cipher(c), e ? " error=" : "",
           e ? e : "");
    done_rc = 0;
}


/* Blocking SMTP preamble: greeting, EHLO, STARTTLS -> 220. */
static int
probe_starttls(int fd)
{
    static const char  *cmds[] = { NULL, "EHLO probe.test\r\n",
                                   "STARTTLS\r\n" };
    char                buf[4096];
    ssize_t             n;
    size_t              have;
    int                 i;

    for (i = 0; i < 3; i++) {
        if (cmds[i] != NULL
            && write(fd, cmds[i], strlen(cmds[i]))
               != (ssize_t) strlen(cmds[i]))
        {
            return PST_ERROR;
        }
        /* read one (multi-line) reply, byte by byte: nothing of the
         * TLS stream may be consumed here */
        have = 0;
        for ( ;; ) {
            n = read(fd, buf + have, 1);
            if (n != 1 || have + 2 >= sizeof(buf)) {
                return PST_ERROR;
            }
            have++;
            if (buf[have - 1] == '\n') {
                if (have >= 4 && buf[3] == ' ') {
                    break;
                }
                have = 0;
            }
        }
        if ((i < 2 && buf[0] != '2') || (i == 2 && strncmp(buf, "220", 3)))
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


int
main(int argc, char **argv)
{
    pst_ssl_client_conf_t   conf;
    pst_connection_t       *c;
    struct sockaddr_in      sin;
    pst_ssl_ctx_t          *ctx;
    pst_pool_t             *pool;
    const char             *name = NULL;
    pst_msec_t              timeout = 5000;
    char                    err[512];
    int                     fd, opt, smtp = 0;

    memset(&conf, 0, sizeof(conf));
    conf.verify = PST_SSL_VERIFY_PEER;

    while ((opt = getopt(argc, argv, "v:a:d:n:c:k:t:s")) != -1) {
        switch (opt) {
        case 'v':
            conf.verify = strcmp(optarg, "none") == 0 ? PST_SSL_VERIFY_NONE
                          : strcmp(optarg, "opportunistic") == 0
                            ? PST_SSL_VERIFY_OPPORTUNISTIC
                            : PST_SSL_VERIFY_PEER;
            break;
        case 'a':
            conf.ca_file.data = (u_char *) optarg;
            conf.ca_file.len = strlen(optarg);
            break;
        case 'd':
            conf.ca_path.data = (u_char *) optarg;
            conf.ca_path.len = strlen(optarg);
            break;
        case 'n':
            name = optarg;
            break;
        case 'c':
            conf.certificate.data = (u_char *) optarg;
            conf.certificate.len = strlen(optarg);
            break;
        case 'k':
            conf.key.data = (u_char *) optarg;
            conf.key.len = strlen(optarg);
            break;
        case 't':
            timeout = (pst_msec_t) atol(optarg);
            break;
        case 's':
            smtp = 1;
            break;
        default:
            return 2;
        }
    }

    if (optind + 2 != argc) {
        fprintf(stderr, "usage: tls_probe [options] HOST PORT\n");
        return 2;
    }

    pool = pst_create_pool(4096);
    if (pool == NULL) {
        return 2;
    }

    ctx = pst_ssl_client_ctx(pool, &conf, err, sizeof(err));
    if (ctx == NULL) {
        printf("failed: %s\n", err);
        pst_destroy_pool(pool);
        return 1;
    }

    if (pst_event_init(64) != PST_OK || pst_connections_init(64) != PST_OK)
    {
        pst_destroy_pool(pool);
        return 2;
    }

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) atoi(argv[optind + 1]));
    if (inet_pton(AF_INET, argv[optind], &sin.sin_addr) != 1) {
        return 2;
    }

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1)
    {
        printf("failed: connect: %s\n", strerror(errno));
        pst_destroy_pool(pool);
        return 1;
    }

    if (smtp && probe_starttls(fd) != PST_OK) {
        printf("failed: STARTTLS refused\n");
        pst_destroy_pool(pool);
        return 1;
    }

    c = pst_nonblocking(fd) == PST_OK ? pst_get_connection(fd) : NULL;
    if (c == NULL || pst_event_add_conn(c) != PST_OK) {
        pst_destroy_pool(pool);
        return 2;
    }
    c->read.handler = probe_noop;
    c->write.handler = probe_noop;

    if (pst_ssl_create_connection(c, ctx, 1, name) != PST_OK) {
        printf("failed: cannot create the TLS connection\n");
        pst_close_connection(c);
        pst_destroy_pool(pool);
        return 1;
    }

    pst_ssl_handshake(c, NULL, 0, timeout, probe_done);

    while (done_rc == -1) {
        if (pst_process_events_and_timers() != PST_OK) {
            return 2;
        }
    }

    pst_close_connection(c);
    pst_destroy_pool(pool);

    return done_rc;
}
