/*
 * pst_queue_conf.c -- the relay engine's main-level directives (a
 * built-in module, like metrics):
 *
 *   relay_hold on|off;                      hold every message taken
 *   relay_concurrency N;                    attempts at once (100)
 *   relay_destination_concurrency N;        per destination, max (20)
 *   relay_destination_rcpt_limit N;         recipients per transaction (50)
 *   relay_min_backoff TIME;                 first retry delay (5m)
 *   relay_max_backoff TIME;                 longest retry delay (1h)
 *   relay_dead_destination TIME;            dead destination back-off (60s)
 *   max_queue_lifetime TIME;                then bounced (5d)
 *   bounce_queue_lifetime TIME;             the same for bounces (5d)
 *   delay_warning_time TIME;                delay DSN after (0: none)
 *   drain_on_quit ADDR:PORT;                QUIT: the queue to that node
 */

#include "pst_core.h"
#include "pst_queue.h"
#include "pst_queue_int.h"


typedef struct {
    pst_int_t    min;
    pst_int_t    max;
} pst_queue_conf_range_t;

static void *pst_queue_conf_create(pst_conf_t *cf);
static char *pst_queue_conf_init(pst_conf_t *cf, void *conf);
static char *pst_queue_conf_num(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_queue_conf_time(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static char *pst_queue_conf_drain(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);

static const pst_queue_conf_range_t  pst_queue_conc = { 1, 100000 };
static const pst_queue_conf_range_t  pst_queue_dconc = { 1, 10000 };
static const pst_queue_conf_range_t  pst_queue_rlim = { 1, 10000 };
/* seconds: the engine counts in whole seconds */
static const pst_queue_conf_range_t  pst_queue_secs = { 1, INT32_MAX };
static const pst_queue_conf_range_t  pst_queue_secs0 = { 0, INT32_MAX };

#define QC(f)  offsetof(pst_queue_conf_t, f)

static const pst_command_t  pst_queue_conf_commands[] = {
    { "relay_hold", PST_CONF_MAIN | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_MAIN_CONF, QC(hold), NULL },
    { "relay_concurrency", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_num, PST_MAIN_CONF, QC(concurrency), &pst_queue_conc },
    { "relay_destination_concurrency", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_num, PST_MAIN_CONF, QC(dest_concurrency),
      &pst_queue_dconc },
    { "relay_destination_rcpt_limit", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_num, PST_MAIN_CONF, QC(rcpt_limit), &pst_queue_rlim },
    { "relay_min_backoff", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(min_backoff), &pst_queue_secs },
    { "relay_max_backoff", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(max_backoff), &pst_queue_secs },
    { "relay_dead_destination", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(dead_dest), &pst_queue_secs0 },
    { "max_queue_lifetime", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(max_lifetime),
      &pst_queue_secs0 },
    { "bounce_queue_lifetime", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(bounce_lifetime),
      &pst_queue_secs0 },
    { "delay_warning_time", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_time, PST_MAIN_CONF, QC(delay_warning),
      &pst_queue_secs0 },
    { "drain_on_quit", PST_CONF_MAIN | PST_CONF_TAKE1,
      pst_queue_conf_drain, PST_MAIN_CONF, QC(drain_on_quit), NULL },
    pst_null_command
};

const pst_module_t  pst_queue_conf_module = {
    PST_MODULE_HEADER,
    .name = "queue",
    .version = PST_VERSION,
    .description = "the relay engine: scheduling, retries, bounces",
    .commands = pst_queue_conf_commands,
    .create_main_conf = pst_queue_conf_create,
    .init_main_conf = pst_queue_conf_init,
};


static void *
pst_queue_conf_create(pst_conf_t *cf)
{
    pst_queue_conf_t  *c;

    c = pst_pcalloc(cf->pool, sizeof(pst_queue_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->hold = PST_CONF_UNSET;
    c->concurrency = PST_CONF_UNSET;
    c->dest_concurrency = PST_CONF_UNSET;
    c->rcpt_limit = PST_CONF_UNSET;
    c->min_backoff = PST_CONF_UNSET_MSEC;
    c->max_backoff = PST_CONF_UNSET_MSEC;
    c->dead_dest = PST_CONF_UNSET_MSEC;
    c->max_lifetime = PST_CONF_UNSET_MSEC;
    c->bounce_lifetime = PST_CONF_UNSET_MSEC;
    c->delay_warning = PST_CONF_UNSET_MSEC;
    return c;
}


#define pst_queue_default_msec(v, d)                                         \
    do { if ((v) == PST_CONF_UNSET_MSEC) { (v) = (d); } } while (0)

static char *
pst_queue_conf_init(pst_conf_t *cf, void *conf)
{
    pst_queue_conf_t  *c = conf;

    pst_conf_merge_value(c->hold, PST_CONF_UNSET, 0);
    pst_conf_merge_value(c->concurrency, PST_CONF_UNSET, 100);
    pst_conf_merge_value(c->dest_concurrency, PST_CONF_UNSET, 20);
    pst_conf_merge_value(c->rcpt_limit, PST_CONF_UNSET, 50);
    pst_queue_default_msec(c->min_backoff, 300 * 1000);
    pst_queue_default_msec(c->max_backoff, 3600 * 1000);
    pst_queue_default_msec(c->dead_dest, 60 * 1000);
    pst_queue_default_msec(c->max_lifetime, 5 * 86400 * 1000LL);
    pst_queue_default_msec(c->bounce_lifetime, 5 * 86400 * 1000LL);
    pst_queue_default_msec(c->delay_warning, 0);

    if (c->min_backoff > c->max_backoff) {
        pst_conf_error(cf, "relay_min_backoff (%llus) is longer than"
                       " relay_max_backoff (%llus)",
                       (unsigned long long) c->min_backoff / 1000,
                       (unsigned long long) c->max_backoff / 1000);
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


static char *
pst_queue_conf_num(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    const pst_queue_conf_range_t  *r = cmd->post;
    pst_int_t                     *np;
    char                          *rv;

    rv = pst_conf_set_num_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }
    np = (pst_int_t *) ((u_char *) conf + cmd->offset);
    if (*np < r->min || *np > r->max) {
        pst_conf_error(cf, "\"%s\" must be between %ld and %ld", cmd->name,
                       (long) r->min, (long) r->max);
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


static char *
pst_queue_conf_time(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    const pst_queue_conf_range_t  *r = cmd->post;
    pst_msec_t                    *mp;
    char                          *rv;

    rv = pst_conf_set_msec_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }
    mp = (pst_msec_t *) ((u_char *) conf + cmd->offset);
    if ((*mp % 1000) != 0 || (pst_int_t) (*mp / 1000) < r->min
        || *mp / 1000 > (pst_msec_t) r->max)
    {
        pst_conf_error(cf, "\"%s\" must be a whole number of seconds%s",
                       cmd->name, r->min > 0 ? ", at least 1s" : "");
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


/* "ADDR:PORT": an address (the queue process never waits on a lookup)
 * and a port. */
static char *
pst_queue_conf_drain(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    pst_queue_conf_t  *c = conf;
    pst_str_t         *args;
    char              *rv;

    rv = pst_conf_set_str_slot(cf, cmd, conf);
    if (rv != PST_CONF_OK) {
        return rv;
    }
    args = pst_conf_args(cf, NULL);
    if (memchr(args[1].data, ':', args[1].len) == NULL
        || args[1].data[0] == '*'
        || pst_listening_parse(NULL, &args[1], &c->drain_sa, &c->drain_len)
           != PST_OK)
    {
        pst_conf_error(cf, "\"drain_on_quit\" wants ADDR:PORT, an IP"
                       " address and a port, not \"%.*s\"",
                       (int) args[1].len, args[1].data);
        return PST_CONF_ERROR;
    }
    return PST_CONF_OK;
}


const pst_queue_conf_t *
pst_queue_conf(pst_cycle_t *cycle)
{
    pst_module_entry_t  *me;

    me = pst_module_entry(cycle, &pst_queue_conf_module);
    return me != NULL ? cycle->main_conf[me->index] : NULL;
}
