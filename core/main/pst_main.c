/*
 * pst_main.c -- the postern command: options, configuration test,
 * signals to a running master, the queue tool, and start-up.
 *
 *   postern [-c FILE] [-p PREFIX] [-f]     start (-f: stay in foreground)
 *   postern -t | -T                        test (-T: and print) the config
 *   postern -s reload|quit|stop|reopen     signal the running master
 *   postern -V                             version, build, modules
 *   postern queue count|list|show ID|cat ID   look at the spool
 *                                          (through the control
 *                                          socket when running)
 *   postern status [--json]                processes, pids, uptime
 *   postern passwd [options] USER          a line for a users file
 *
 * Every subcommand takes -h/--help; an unknown option, command or
 * missing argument prints the usage and exits with 64 (EX_USAGE).
 */

#include "pst_core.h"
#include "pst_connection.h"
#include "pst_event.h"
#include "pst_spool.h"
#include "pst_access.h"
#include "pst_metrics_http.h"
#include "pst_process.h"
#include "pst_smtp.h"
#include "pst_passwd.h"
#include "pst_control.h"
#include "pst_queue.h"


static const pst_role_t *const  pst_roles[] = {
    &pst_smtp_worker_role,
    &pst_queue_role,
    NULL
};

static int pst_queue_command(int argc, char **argv);
static int pst_status_command(int argc, char **argv);

#define PST_EX_USAGE  64        /* sysexits.h */

#define PST_QUEUE_USAGE                                                      \
    "postern [-c file] [-p prefix] queue count [all|held|deferred]\n"       \
    "         | list [--json|--mailq] | show ID [--json] | cat ID\n"        \
    "         | flush [ID|DOMAIN] | hold ID|ALL | release [ID|ALL]\n"       \
    "         | delete ID|ALL | drain [--to ADDR:PORT]"
#define PST_STATUS_USAGE                                                     \
    "postern [-c file] [-p prefix] status [--json]"


static void
pst_usage(FILE *f)
{
    fprintf(f,
        "usage: postern [-hVtTf] [-c file] [-p prefix] [-s signal]\n"
        "       " PST_QUEUE_USAGE "\n"
        "       " PST_STATUS_USAGE "\n"
        "       postern passwd [-m method] [-r rounds] [-s] [-i iterations]\n"
        "                      [-f file] user\n"
        "\n"
        "  -c file    configuration file (default %s;\n"
        "             with -p: PREFIX/" PST_CONF_PREFIXED ")\n"
        "  -p prefix  prefix for relative paths (default %s)\n"
        "  -t         test the configuration and exit\n"
        "  -T         test, then print the effective configuration and the\n"
        "             hook chain of every listener\n"
        "  -s signal  send reload, quit (graceful), stop (fast) or reopen\n"
        "             to the running master\n"
        "  -f         stay in the foreground (same as \"daemon off;\")\n"
        "  -V         version, build options and modules\n"
        "\n"
        "  queue      look at the spool: count the messages, list them,\n"
        "             show one's envelope, cat one's message\n"
        "  status     the running processes (postern status --help)\n"
        "  passwd     make a users file line (postern passwd --help)\n",
        PST_CONF_PATH, PST_PREFIX);
}


static void
pst_queue_usage(FILE *f)
{
    fprintf(f,
        "usage: " PST_QUEUE_USAGE "\n"
        "\n"
        "  count      the number of messages (held: by the operator or\n"
        "             relay_hold; deferred: waiting for a retry)\n"
        "  list       every message: ID, size, arrival, sender, recipients\n"
        "             with state, attempts, next try, last reply\n"
        "  show ID    one message's envelope and delivery state\n"
        "  cat ID     one message as a delivery reads it\n"
        "  flush      deferred mail (of one message or domain) due now\n"
        "  hold       keep messages from delivery until released\n"
        "  release    held messages (all by default) due now\n"
        "  delete     remove messages, with no report to the sender\n"
        "  drain      hand every message to another node (its\n"
        "             node_trusted must name this one); without --to:\n"
        "             how the last drain went\n"
        "\n"
        "The read verbs read the spool; the others go to the running\n"
        "server, or change the spool when it is stopped.  --json: one\n"
        "JSON object per message (list, show) or per answer (the\n"
        "others); --mailq: the format of Postfix's and Sendmail's mailq.\n");
}


/* Options of "queue" (argv[0]): only -h/--help.  Returns -1 to go on,
 * or the exit status. */
static int
pst_queue_options(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            pst_queue_usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && strcmp(argv[i], "--json") != 0
            && strcmp(argv[i], "--mailq") != 0
            && strcmp(argv[i], "--to") != 0)
        {
            fprintf(stderr, "postern queue: unknown option \"%s\"\n",
                    argv[i]);
            pst_queue_usage(stderr);
            return PST_EX_USAGE;
        }
    }

    return -1;
}


static void
pst_show_version(void)
{
    pst_module_entry_t  *me;
    pst_cycle_t         *cycle;
    pst_uint_t           i;
    FILE                *devnull;

    printf("postern version %s (module ABI %d.%d)\n", PST_VERSION,
           POSTERN_ABI_MAJOR, POSTERN_ABI_MINOR);
    printf("built with %s\n", PST_CC_VERSION);
    printf("configure arguments:%s\n", PST_CONFIGURE_ARGS);
    printf("paths: configuration " PST_CONF_PATH ", modules "
           PST_MODULE_DIR ",\n       spool " PST_SPOOL_DIR ", run files "
           PST_RUN_DIR "\n");
    printf("built-in modules: core smtp smtp_tls smtp_auth\n");

    /* modules the configuration loads, when it reads */
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL) {
        return;
    }
    cycle = pst_init_cycle(pst_prefix_arg, pst_conf_arg, NULL, devnull);
    fclose(devnull);
    if (cycle == NULL) {
        return;
    }
    me = cycle->modules.elts;
    printf("loaded by %s:\n", cycle->conf_file.data);
    for (i = 0; i < cycle->modules.nelts; i++) {
        if (me[i].handle != NULL) {
            printf("  %-16s %-8s ABI %u.%u  %s\n", me[i].desc.name,
                   me[i].desc.version ? me[i].desc.version : "-",
                   me[i].desc.abi_major, me[i].desc.abi_minor,
                   me[i].path.data);
        }
    }
    pst_destroy_cycle(cycle);
}


static int
pst_open_log(pst_cycle_t *cycle)
{
    pst_core_conf_t  *ccf = cycle->core;

    pst_log_main.format = (int) ccf->log_format;
    pst_log_set_node(&ccf->node_name);

    if (ccf->error_log.data == NULL
        || pst_str_eq(&ccf->error_log, "stderr"))
    {
        pst_log_main.level = (int) ccf->log_level;
        return PST_OK;
    }

    if (pst_log_open(&pst_log_main, (char *) ccf->error_log.data,
                     (int) ccf->log_level) != PST_OK)
    {
        fprintf(stderr, "postern: cannot open error log \"%s\": %s\n",
                ccf->error_log.data, strerror(errno));
        return PST_ERROR;
    }

    if (geteuid() == 0) {
        /* workers reopen it on USR1 as their own user */
        (void) !fchown(pst_log_main.fd, ccf->uid, ccf->gid);
    }

    return PST_OK;
}


/* postern queue VERB ...: the read verbs on the spool directly; the
 * others through the control socket when the server runs, else on the
 * spool directly (pst_queue_offline.c). */
static int
pst_queue_command(int argc, char **argv)
{
    pst_cycle_t  *cycle;
    int           rc;

    cycle = pst_init_cycle_light(pst_prefix_arg, pst_conf_arg);
    if (cycle == NULL) {
        return 1;
    }
    pst_cycle = cycle;

    /* the read verbs never ask the daemon (a busy engine must not slow
     * them, nor they it) */
    rc = -1;
    if (argc > 0 && strcmp(argv[0], "count") != 0
        && strcmp(argv[0], "list") != 0 && strcmp(argv[0], "show") != 0
        && strcmp(argv[0], "cat") != 0)
    {
        rc = pst_control_request((char *) cycle->core->control_socket.data,
                                 argc, argv);
    }
    if (rc == -1) {
        rc = pst_spool_tool(cycle, argc, argv);
    }

    pst_destroy_cycle(cycle);
    return rc;
}


static int
pst_status_command(int argc, char **argv)
{
    static char   verb[] = "status", json[] = "json";
    pst_cycle_t  *cycle;
    char         *req[3];
    int           rc;

    if (argc == 1
        && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0))
    {
        printf("usage: " PST_STATUS_USAGE "\n\n"
               "  the master, the worker and queue processes: pids, start"
               " times,\n  uptime, reloads and respawns (--json: as JSON)\n");
        return 0;
    }
    if (argc > 1 || (argc == 1 && strcmp(argv[0], "--json") != 0)) {
        fprintf(stderr, "postern status: unknown %s \"%s\"\n"
                "usage: " PST_STATUS_USAGE "\n",
                argv[argc - 1][0] == '-' ? "option" : "argument",
                argv[argc - 1]);
        return PST_EX_USAGE;
    }

    cycle = pst_init_cycle_light(pst_prefix_arg, pst_conf_arg);
    if (cycle == NULL) {
        return 1;
    }

    req[0] = verb;
    req[1] = json;
    rc = pst_control_request((char *) cycle->core->control_socket.data,
                             1 + argc, req);
    if (rc == -1) {
        fprintf(stderr, "postern: not running (nothing answers on \"%s\")"
                "\n", cycle->core->control_socket.data);
        rc = 3;
    }

    pst_destroy_cycle(cycle);
    return rc;
}


int
main(int argc, char **argv)
{
    pst_cycle_t  *cycle;
    const char   *signal_name = NULL;
    int           test = 0, dump = 0, version = 0, foreground = 0, i;
    int           single = 0, rc;
    char         *p;

    pst_time_update();

    for (i = 1; i < argc; i++) {
        p = argv[i];

        if (p[0] != '-') {
            break;                     /* a subcommand */
        }

        if (strcmp(p, "-h") == 0 || strcmp(p, "--help") == 0) {
            pst_usage(stdout);
            return 0;
        } else if (strcmp(p, "-V") == 0 || strcmp(p, "-v") == 0) {
            version = 1;
        } else if (strcmp(p, "-t") == 0) {
            test = 1;
        } else if (strcmp(p, "-T") == 0) {
            test = 1;
            dump = 1;
        } else if (strcmp(p, "-f") == 0) {
            foreground = 1;
        } else if (strcmp(p, "-F") == 0) {
            foreground = 1;
            single = 1;
        } else if ((strcmp(p, "-c") == 0 || strcmp(p, "-p") == 0
                    || strcmp(p, "-s") == 0) && i + 1 == argc)
        {
            fprintf(stderr, "postern: option \"%s\" needs a value\n", p);
            pst_usage(stderr);
            return PST_EX_USAGE;
        } else if (strcmp(p, "-c") == 0) {
            /* copies: the process title reuses argv's memory */
            pst_conf_arg = strdup(argv[++i]);
        } else if (strcmp(p, "-p") == 0) {
            pst_prefix_arg = strdup(argv[++i]);
        } else if (strcmp(p, "-s") == 0) {
            signal_name = argv[++i];
        } else {
            fprintf(stderr, "postern: invalid option \"%s\"\n", p);
            pst_usage(stderr);
            return PST_EX_USAGE;
        }
    }

    if (signal_name != NULL && pst_signal_by_name(signal_name) == 0) {
        fprintf(stderr, "postern: invalid signal \"%s\" (use reload, quit,"
                " stop or reopen)\n", signal_name);
        pst_usage(stderr);
        return PST_EX_USAGE;
    }

    if (version) {
        pst_show_version();
        return 0;
    }

    if (i < argc && strcmp(argv[i], "passwd") == 0) {
        /* needs no configuration */
        return pst_passwd_tool(argc - i, argv + i);
    }

    if (i < argc) {
        if (strcmp(argv[i], "queue") == 0) {
            rc = pst_queue_options(argc - i, argv + i);
            if (rc >= 0) {
                return rc;
            }
            return pst_queue_command(argc - i - 1, argv + i + 1);
        }
        if (strcmp(argv[i], "status") == 0) {
            return pst_status_command(argc - i - 1, argv + i + 1);
        }
        fprintf(stderr, "postern: unknown command \"%s\"\n", argv[i]);
        pst_usage(stderr);
        return PST_EX_USAGE;
    }

    if (test) {
        cycle = pst_init_cycle(pst_prefix_arg, pst_conf_arg, NULL,
                               dump ? stdout : NULL);
        if (cycle == NULL) {
            fprintf(stderr, "postern: configuration test failed\n");
            return 1;
        }
        if (pst_check_worker_access(cycle, 0) != PST_OK) {
            fprintf(stderr, "postern: configuration test failed\n");
            pst_destroy_cycle(cycle);
            return 1;
        }
        if (dump) {
            pst_cycle_dump(cycle, stdout);
        }
        fprintf(stderr, "postern: configuration file %s test is"
                " successful\n", cycle->conf_file.data);
        /* leak checkers (--with-debug) see what -t leaves behind */
        pst_destroy_cycle(cycle);
        return 0;
    }

    if (signal_name != NULL) {
        cycle = pst_init_cycle(pst_prefix_arg, pst_conf_arg, NULL, NULL);
        if (cycle == NULL) {
            return 1;
        }
        i = pst_signal_master(cycle, signal_name);
        pst_destroy_cycle(cycle);
        return i;
    }

    pst_init_setproctitle(argc, argv);
    pst_process_set_roles(pst_roles);

    cycle = pst_init_cycle(pst_prefix_arg, pst_conf_arg, NULL, NULL);
    if (cycle == NULL) {
        return 1;
    }
    pst_cycle = cycle;

    if (pst_open_log(cycle) != PST_OK
        || pst_spool_prepare(cycle) != PST_OK
        || pst_check_worker_access(cycle, 1) != PST_OK
        || pst_spool_recover(cycle) != PST_OK
        || pst_open_listening_sockets(cycle, NULL) != PST_OK
        || (!single && pst_control_listen(cycle) != PST_OK)
        || (!single && pst_metrics_listen(cycle) != PST_OK)
        || pst_cycle_init_modules(cycle) != PST_OK)
    {
        return 1;
    }

    if (pst_init_signals() != PST_OK) {
        pst_log_error(PST_LOG_EMERG, errno, "cannot set up signals");
        return 1;
    }

    if (!foreground && cycle->core->daemon && pst_daemonize() != PST_OK) {
        return 1;
    }

    if (pst_write_pid(cycle) != PST_OK) {
        return 1;
    }

    pst_log_error(PST_LOG_NOTICE, 0, "postern %s started: %lu listener(s),"
                  " %ld worker(s)", PST_VERSION,
                  (unsigned long) cycle->listening.nelts,
                  (long) cycle->core->worker_processes);

    if (single) {
        return pst_single_run(cycle);
    }

    return pst_master_run(cycle);
}
