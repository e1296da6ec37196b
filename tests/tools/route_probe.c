/*
 * route_probe.c -- asks the router of a configuration (the first loaded
 * module with one: relay_mx) for the route of each domain, the way the
 * queue process does: the real event loop and resolver, the module
 * loaded by the configuration.  Used by tests/integration/test_relay_mx.py.
 *
 *   route_probe -p PREFIX -c CONF [-n N] [-x] DOMAIN...
 *
 *   -n N   ask N times for each domain (equal-preference spread)
 *   -x     cancel each request right after starting it (prints nothing
 *          for it; checks that done never runs after cancel)
 *
 * Prints for each answer:
 *   route DOMAIN verdict=accept|reject|tempfail code=N ecode=E port=P
 *         hops=N text=TEXT                                  (one line)
 *   hop NAME pref=N addr=ADDRESS secure=0|1                 (each hop)
 * and exits 0, or 1 when something went wrong in the probe itself.
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_dns.h"
#include "pst_process.h"
#include "pst_route.h"

static int  probe_done;
static int  probe_bad;


static const char *
probe_verdict(pst_verdict_e v)
{
    switch (v) {
    case PST_HOOK_ACCEPT:
        return "accept";
    case PST_HOOK_REJECT:
        return "reject";
    case PST_HOOK_TEMPFAIL:
        return "tempfail";
    default:
        return "other";
    }
}


static void
probe_route(void *data, const pst_route_t *r)
{
    const pst_nexthop_t  *h;
    char                  addr[INET6_ADDRSTRLEN];
    const void           *a;
    pst_uint_t            i;

    if (data == NULL) {
        printf("error: done ran after cancel\n");
        probe_bad = 1;
        probe_done = 1;
        return;
    }

    printf("route %s verdict=%s code=%d ecode=%s port=%u hops=%lu text=%s\n",
           (char *) data, probe_verdict(r->verdict), r->code,
           r->ecode ? r->ecode : "-", (unsigned) r->port,
           (unsigned long) r->nhops, r->text ? r->text : "-");

    for (i = 0; i < r->nhops; i++) {
        h = &r->hops[i];
        a = h->addr.ss_family == AF_INET
            ? (const void *) &((struct sockaddr_in *) &h->addr)->sin_addr
            : (const void *) &((struct sockaddr_in6 *) &h->addr)->sin6_addr;
        inet_ntop(h->addr.ss_family, a, addr, sizeof(addr));
        printf("hop %.*s pref=%d addr=%s secure=%u\n", (int) h->name.len,
               h->name.data, h->pref, addr, (unsigned) h->secure);
    }

    fflush(stdout);
    probe_done = 1;
}


static void
probe_wait(void *data)
{
    (void) data;
    probe_done = 1;
}


static int
probe_one(const pst_router_t *router, void *conf, char *domain, int cancel)
{
    pst_str_t   d;
    void       *handle;

    d.data = (u_char *) domain;
    d.len = strlen(domain);
    probe_done = 0;

    handle = router->resolve(&d, conf, probe_route, cancel ? NULL : domain);
    if (handle == NULL) {
        printf("route %s failed to start\n", domain);
        return PST_ERROR;
    }

    if (cancel) {
        router->cancel(handle);
        /* a turn of the loop: nothing may arrive for it any more */
        probe_done = 0;
        (void) pst_timer_add(300, probe_wait, NULL);
        while (!probe_done) {
            if (pst_process_events_and_timers() == PST_ERROR) {
                return PST_ERROR;
            }
        }
        return probe_bad ? PST_ERROR : PST_OK;
    }

    while (!probe_done) {
        if (pst_process_events_and_timers() == PST_ERROR) {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


int
main(int argc, char **argv)
{
    const pst_router_t  *router;
    pst_cycle_t         *cycle;
    const char          *prefix = NULL, *conf = NULL;
    void                *mconf;
    int                  opt, n = 1, cancel = 0, i, k;

    while ((opt = getopt(argc, argv, "p:c:n:x")) != -1) {
        switch (opt) {
        case 'p':
            prefix = optarg;
            break;
        case 'c':
            conf = optarg;
            break;
        case 'n':
            n = atoi(optarg);
            break;
        case 'x':
            cancel = 1;
            break;
        default:
            return 1;
        }
    }

    alarm(60);            /* a probe that hangs fails the test */
    pst_time_update();

    cycle = pst_init_cycle(prefix, conf, NULL, NULL);
    if (cycle == NULL) {
        return 1;
    }
    pst_cycle = cycle;

    if (pst_dns_init(cycle) != PST_OK || pst_event_init(256) != PST_OK
        || pst_connections_init(256) != PST_OK)
    {
        return 1;
    }

    router = pst_route_router(cycle, &mconf);
    if (router == NULL) {
        printf("no router\n");
        return 1;
    }

    for (i = optind; i < argc; i++) {
        for (k = 0; k < n; k++) {
            if (probe_one(router, mconf, argv[i], cancel) != PST_OK) {
                return 1;
            }
        }
    }

    pst_dns_done();
    return 0;
}
