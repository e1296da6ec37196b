/*
 * smtp_client_probe.c -- sends one message with the core's outbound
 * SMTP client (pst_smtp_client.h) from the event loop, the way the
 * relay does.  Used by tests/integration/test_smtp_client.py.
 *
 *   smtp_client_probe [-t none|may|encrypt|verify|implicit] [-a CAFILE]
 *       [-n TLSNAME] [-A MECH -u USER -p PASS] [-l] [-H HELO]
 *       [-f SENDER] [-o MAILPARAMS] -r 'RCPT[ PARAMS]'... [-P LINE]...
 *       [-m FILE] [-c COUNT] [-b LOCALADDR] [-T MS] [-v] HOST PORT
 *
 *   -l  LMTP        -c  send the message COUNT times on one session
 *   -P  a header line to prepend (CRLF added)
 *   -T  every timeout, in milliseconds
 *   -v  print the protocol trail ("> " sent, "< " received)
 *
 * Prints "ready ...", "caps ...", then per transaction "mail CODE ...",
 * "rcpt ADDR CODE ECODE accepted=N TEXT", "data CODE ..." and
 * "done rc=N"; exits 0 when every recipient got a final 2xx, 1 if not,
 * 2 on usage errors.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_ssl.h"
#include "pst_smtp_client.h"

#define PROBE_MAX  300

static pst_smtp_client_tx_t     tx;
static pst_smtp_client_rcpt_t   rcpts[PROBE_MAX];
static pst_str_t                prepend[PROBE_MAX];
static int                      finished, result = 1, count = 1;


static void
probe_trail(void *data, int outgoing, const u_char *line, size_t len)
{
    printf("%s %.*s\n", outgoing ? ">" : "<", (int) len, line);
}


static void
probe_reply(const char *what, const pst_smtp_reply_t *r)
{
    printf("%s %d %s %.*s\n", what, r->code, r->ecode[0] ? r->ecode : "-",
           (int) r->text.len, r->text.data);
}


static void
probe_done(pst_smtp_client_t *cl, pst_smtp_client_tx_t *t, void *data,
    int rc)
{
    pst_uint_t  i;
    int         ok = rc == PST_OK;

    probe_reply("mail", &t->mail_reply);
    for (i = 0; i < t->nrcpts; i++) {
        printf("rcpt %.*s %d %s accepted=%d %.*s\n",
               (int) t->rcpts[i].addr.len, t->rcpts[i].addr.data,
               t->rcpts[i].reply.code,
               t->rcpts[i].reply.ecode[0] ? t->rcpts[i].reply.ecode : "-",
               t->rcpts[i].accepted, (int) t->rcpts[i].reply.text.len,
               t->rcpts[i].reply.text.data);
        ok = ok && t->rcpts[i].reply.code / 100 == 2;
    }
    probe_reply("data", &t->data_reply);
    printf("done rc=%d\n", rc);

    if (!ok || --count == 0 || rc != PST_OK) {
        result = ok ? 0 : 1;
        finished = 1;
        if (rc == PST_OK) {
            pst_smtp_client_quit(cl);
        } else {
            pst_smtp_client_abort(cl);
        }
        return;
    }

    if (pst_smtp_client_send(cl, &tx, probe_done, NULL) != PST_OK) {
        printf("send refused\n");
        finished = 1;
        pst_smtp_client_abort(cl);
    }
}


static void
probe_ready(pst_smtp_client_t *cl, void *data, int rc,
    const pst_smtp_reply_t *r)
{
    static const char  *names[] = { "PIPELINING", "SIZE", "8BITMIME",
                                    "SMTPUTF8", "DSN", "CHUNKING",
                                    "STARTTLS", "ENHANCEDSTATUSCODES",
                                    "AUTH", "REQUIRETLS" };
    unsigned            caps, i;

    printf("ready rc=%d code=%d %.*s\n", rc, r->code, (int) r->text.len,
           r->text.data);

    if (rc != PST_OK) {
        finished = 1;
        pst_smtp_client_abort(cl);
        return;
    }

    caps = pst_smtp_client_caps(cl);
    printf("caps");
    for (i = 0; i < pst_nelems(names); i++) {
        if (caps & (1u << i)) {
            printf(" %s", names[i]);
        }
    }
    printf("\nsize %lld\ntls=%d verified=%d peer=%s\n",
           (long long) pst_smtp_client_max_size(cl), pst_smtp_client_tls(cl),
           pst_smtp_client_tls_verified(cl), pst_smtp_client_peer(cl));

    if (pst_smtp_client_send(cl, &tx, probe_done, NULL) != PST_OK) {
        printf("send refused\n");
        finished = 1;
        pst_smtp_client_abort(cl);
    }
}


static int
probe_addr(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
    struct sockaddr_in   *sin = (struct sockaddr_in *) ss;
    struct sockaddr_in6  *sin6 = (struct sockaddr_in6 *) ss;

    memset(ss, 0, sizeof(*ss));

    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        *len = sizeof(*sin);
        return PST_OK;
    }

    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        *len = sizeof(*sin6);
        return PST_OK;
    }

    return PST_ERROR;
}


static void
probe_rcpt(const char *arg)
{
    const char  *sp = strchr(arg, ' ');

    rcpts[tx.nrcpts].addr.data = (u_char *) arg;
    rcpts[tx.nrcpts].addr.len = sp ? (size_t) (sp - arg) : strlen(arg);
    if (sp != NULL) {
        rcpts[tx.nrcpts].params.data = (u_char *) sp;
        rcpts[tx.nrcpts].params.len = strlen(sp);
    }
    tx.nrcpts++;
}


static void
probe_prepend(const char *arg)
{
    char  *s;

    if (asprintf(&s, "%s\r\n", arg) < 0) {
        exit(2);
    }
    prepend[tx.nprepend].data = (u_char *) s;
    prepend[tx.nprepend].len = strlen(s);
    tx.nprepend++;
}


static int
probe_options(int argc, char **argv, pst_smtp_client_conf_t *conf,
    pst_ssl_client_conf_t *sconf, struct sockaddr_storage *local)
{
    static const char  *tls[] = { "none", "may", "encrypt", "verify",
                                  "implicit" };
    struct stat         st;
    socklen_t           len;
    pst_msec_t          t;
    unsigned            i;
    int                 opt;

    while ((opt = getopt(argc, argv, "t:a:n:A:u:p:lH:f:o:r:P:m:c:b:T:v"))
           != -1)
    {
        switch (opt) {
        case 't':
            for (i = 0; i < pst_nelems(tls) && strcmp(tls[i], optarg); i++)
            {
                /* void */
            }
            if (i == pst_nelems(tls)) {
                return PST_ERROR;
            }
            conf->tls = (pst_smtpc_tls_e) i;
            break;
        case 'a':
            sconf->ca_file.data = (u_char *) optarg;
            sconf->ca_file.len = strlen(optarg);
            break;
        case 'n':
            conf->tls_name = optarg;
            break;
        case 'A':
            conf->auth_mech = optarg;
            break;
        case 'u':
            conf->auth_user = optarg;
            break;
        case 'p':
            conf->auth_pass = optarg;
            break;
        case 'l':
            conf->lmtp = 1;
            break;
        case 'H':
            conf->helo_name = optarg;
            break;
        case 'f':
            tx.sender.data = (u_char *) optarg;
            tx.sender.len = strlen(optarg);
            break;
        case 'o':
            tx.params.data = (u_char *) optarg;
            tx.params.len = strlen(optarg);
            break;
        case 'r':
            if (tx.nrcpts == PROBE_MAX) {
                return PST_ERROR;
            }
            probe_rcpt(optarg);
            break;
        case 'P':
            if (tx.nprepend == PROBE_MAX) {
                return PST_ERROR;
            }
            probe_prepend(optarg);
            break;
        case 'm':
            tx.fd = open(optarg, O_RDONLY | O_CLOEXEC);
            if (tx.fd == -1 || fstat(tx.fd, &st) == -1) {
                perror(optarg);
                return PST_ERROR;
            }
            tx.length = st.st_size;
            break;
        case 'c':
            count = atoi(optarg);
            break;
        case 'b':
            if (probe_addr(optarg, 0, local, &len) != PST_OK) {
                return PST_ERROR;
            }
            conf->local = (struct sockaddr *) local;
            conf->local_len = len;
            break;
        case 'T':
            t = (pst_msec_t) atol(optarg);
            conf->connect_timeout = conf->greeting_timeout = t;
            conf->helo_timeout = conf->mail_timeout = t;
            conf->rcpt_timeout = conf->data_init_timeout = t;
            conf->data_block_timeout = conf->data_done_timeout = t;
            break;
        case 'v':
            conf->trail = probe_trail;
            break;
        default:
            return PST_ERROR;
        }
    }

    return optind + 2 == argc && tx.nrcpts > 0 && count > 0 ? PST_OK
                                                            : PST_ERROR;
}


int
main(int argc, char **argv)
{
    pst_smtp_client_conf_t   conf;
    pst_ssl_client_conf_t    sconf;
    struct sockaddr_storage  ss, local;
    pst_smtp_client_t       *cl;
    pst_pool_t              *pool;
    socklen_t                len;
    char                     err[512];

    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&conf, 0, sizeof(conf));
    memset(&sconf, 0, sizeof(sconf));
    tx.sender.data = (u_char *) "sender@client.test";
    tx.sender.len = strlen("sender@client.test");
    tx.rcpts = rcpts;
    tx.prepend = prepend;
    tx.fd = -1;
    conf.helo_name = "probe.test";

    if (probe_options(argc, argv, &conf, &sconf, &local) != PST_OK
        || probe_addr(argv[optind], atoi(argv[optind + 1]), &ss, &len)
           != PST_OK)
    {
        fprintf(stderr, "usage: smtp_client_probe [options] -r RCPT "
                        "HOST PORT\n");
        return 2;
    }

    pool = pst_create_pool(4096);
    if (pool == NULL || pst_event_init(64) != PST_OK
        || pst_connections_init(64) != PST_OK)
    {
        return 2;
    }
    pst_time_update();

    if (conf.tls != PST_SMTPC_TLS_NONE) {
        sconf.verify = conf.tls == PST_SMTPC_TLS_VERIFY
                       ? PST_SSL_VERIFY_PEER : PST_SSL_VERIFY_OPPORTUNISTIC;
        conf.ssl_ctx = pst_ssl_client_ctx(pool, &sconf, err, sizeof(err));
        if (conf.ssl_ctx == NULL) {
            printf("failed: %s\n", err);
            return 1;
        }
    }

    cl = pst_smtp_client_open(&conf, (struct sockaddr *) &ss, len,
                              probe_ready, NULL);
    if (cl == NULL) {
        printf("failed: cannot open\n");
        return 1;
    }

    /* after the last callback: until a QUIT is answered (or not) */
    while (!finished || pst_connections_used() > 0) {
        if (pst_process_events_and_timers() != PST_OK) {
            return 2;
        }
    }

    pst_destroy_pool(pool);

    return result;
}
