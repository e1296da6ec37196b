/*
 * pst_spool_tool.c -- postern queue count|list|show ID|cat ID: what the
 * queue holds, read directly from the spool (pst_spool_walk(),
 * pst_spool_msg_open()); no server needed.  `list` is sorted by arrival
 * (queue IDs sort by arrival time, docs/SPOOL.md) and shows local
 * times ("2026-12-03 09:35:39").
 */

#include "pst_core.h"
#include "pst_spool.h"


typedef struct {
    pst_cycle_t                 *cycle;
    long                         count;
    int                          list;
    int                          json;
    int                          mailq;
    const char                  *state;     /* count: held, deferred */
    int                          rc;
    char                       (*ids)[PST_QUEUE_ID_LEN + 1];
    size_t                       nids, size;
} pst_spool_tool_t;


static void pst_spool_show_rcpt(const pst_env_rcpt_t *r);
static int pst_spool_cat(pst_spool_msg_t *m);
static int pst_spool_cat_range(pst_spool_msg_t *m, off_t from, off_t to);
static int pst_spool_show(const char *id, int mode);
static int pst_spool_tool_id(const char *id, void *data);
static int pst_spool_tool_cmp(const void *a, const void *b);
static const char *pst_spool_time(time_t t, char *buf, size_t size);
static int pst_spool_state_is(const char *id, const char *state);
static int pst_spool_tool_args(pst_spool_tool_t *t, int argc, char **argv);
static int pst_spool_tool_mailq(pst_spool_tool_t *t);


static void
pst_spool_show_rcpt(const pst_env_rcpt_t *r)
{
    char  when[32];

    printf("    <%s> %s", r->addr.data, pst_rcpt_state_name(r->state));
    if (r->attempts) {
        printf(" attempts %u", r->attempts);
    }
    if (r->state == PST_RCPT_DEFERRED && r->next_try) {
        printf(" next %s", pst_spool_time((time_t) r->next_try, when,
                                          sizeof(when)));
    }
    if (r->remote.len) {
        printf(" remote %s", r->remote.data);
    }
    if (r->reply.len) {
        printf(" reply \"%s\"", r->reply.data);
    }
    printf("\n");
}


/* the message as a delivery sends it: the trace block, the added
 * header lines, the rest */
static int
pst_spool_cat(pst_spool_msg_t *m)
{
    pst_str_t   *h;
    pst_uint_t   i;
    off_t        at;
    int          rc;

    at = m->env.prepend->nelts ? pst_spool_trace_len(m->fd, m->msg_offset,
                                                     m->msg_len) : 0;
    rc = pst_spool_cat_range(m, 0, at);
    h = m->env.prepend->elts;
    for (i = 0; i < m->env.prepend->nelts; i++) {
        printf("%.*s\r\n", (int) h[i].len, h[i].data);
    }
    fflush(stdout);
    return rc | pst_spool_cat_range(m, at, m->msg_len);
}


static int
pst_spool_cat_range(pst_spool_msg_t *m, off_t from, off_t to)
{
    char     buf[65536];
    off_t    left;
    ssize_t  n = 0;

    fflush(stdout);
    for (left = to - from; left > 0; left -= n) {
        n = pread(m->fd, buf, (size_t) pst_min(left, (off_t) sizeof(buf)),
                  m->msg_offset + (to - left));
        if (n <= 0 || write(STDOUT_FILENO, buf, (size_t) n) != n) {
            break;
        }
    }
    return left <= 0 ? 0 : 1;
}


/* mode 0: list entry, 1: show, 2: cat, 3: JSON, 4: mailq (counts the
 * message in mailq_shown, its size in mailq_bytes) */
static pst_uint_t          mailq_shown;
static unsigned long long  mailq_bytes;

static int
pst_spool_show(const char *id, int mode)
{
    pst_spool_msg_t  m;
    pst_env_rcpt_t  *r;
    pst_envelope_t  *env = &m.env;
    pst_pool_t      *pool;
    const char      *why;
    char             path[PATH_MAX], when[32];
    pst_uint_t       i;
    int              rc;

    if (!pst_spool_valid_id((u_char *) id, strlen(id))) {
        fprintf(stderr, "postern: \"%s\" is not a queue ID\n", id);
        return 1;
    }

    pool = pst_create_pool(16384);
    if (pool == NULL) {
        return 1;
    }

    rc = pst_spool_msg_open(pool, id, &m, &why);
    if (rc != PST_OK) {
        (void) pst_spool_path(path, sizeof(path), id);
        fprintf(stderr, "postern: cannot read %s: %s\n", path, why);
        pst_destroy_pool(pool);
        return 1;
    }

    if (mode >= 2) {
        rc = 0;
        if (mode == 2) {
            rc = pst_spool_cat(&m);
        } else if (mode == 4) {
            pst_spool_mailq_msg(&m, mailq_shown++);
            mailq_bytes += (unsigned long long) m.msg_len;
        } else {
            pst_spool_json_msg(&m);
        }
        pst_spool_msg_close(&m);
        pst_destroy_pool(pool);
        return rc;
    }

    printf("%s  %8lld  %s  <%s>%s\n", env->id.data, (long long) m.msg_len,
           pst_spool_time((time_t) env->arrival_sec, when, sizeof(when)),
           env->sender.data, env->hold ? "  held" : "");
    r = env->rcpts->elts;
    for (i = 0; i < env->rcpts->nelts; i++) {
        pst_spool_show_rcpt(&r[i]);
    }
    if (mode == 1) {
        printf("    client %s [%s] helo %s protocol %s%s%s\n",
               env->client_name.len ? (char *) env->client_name.data
                                    : "unknown",
               env->client_addr.data, env->helo.data, env->protocol.data,
               env->auth.len ? " auth " : "",
               env->auth.len ? (char *) env->auth.data : "");
        printf("    arrival %lld.%06ld size %lld\n",
               (long long) env->arrival_sec, env->arrival_usec,
               (long long) env->size);
    }

    pst_spool_msg_close(&m);
    pst_destroy_pool(pool);
    return 0;
}


static const char *
pst_spool_time(time_t t, char *buf, size_t size)
{
    struct tm  tm;

    if (localtime_r(&t, &tm) == NULL
        || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    {
        snprintf(buf, size, "%lld", (long long) t);
    }
    return buf;
}


static int
pst_spool_tool_id(const char *id, void *data)
{
    pst_spool_tool_t  *t = data;
    void              *p;

    if (t->state != NULL && !pst_spool_state_is(id, t->state)) {
        return PST_OK;
    }
    t->count++;
    if (!t->list) {
        return PST_OK;
    }

    if (t->nids == t->size) {
        t->size = t->size ? t->size * 2 : 256;
        p = realloc(t->ids, t->size * sizeof(*t->ids));
        if (p == NULL) {
            return PST_ERROR;
        }
        t->ids = p;
    }
    snprintf(t->ids[t->nids++], sizeof(*t->ids), "%s", id);
    return PST_OK;
}


static int
pst_spool_tool_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}


/* The state file alone (small): held ("hold 1") or deferred (a
 * recipient in state deferred, not held); no state file: pending. */
static int
pst_spool_state_is(const char *id, const char *state)
{
    char     path[PATH_MAX], buf[65536];
    ssize_t  n;
    int      fd, held;

    if (pst_spool_path(path, sizeof(path), id) != PST_OK
        || strlen(path) + sizeof(PST_SPOOL_STATE_SUFFIX) > sizeof(path))
    {
        return 0;
    }
    strcat(path, PST_SPOOL_STATE_SUFFIX);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    held = strstr(buf, "\nhold 1\n") != NULL;
    if (state[0] == 'h') {
        return held;
    }
    return !held && strstr(buf, " state=deferred ") != NULL;
}


/* count [all|held|deferred], list [--json|--mailq]: into t.  PST_OK, or the
 * exit status of a usage error. */
static int
pst_spool_tool_args(pst_spool_tool_t *t, int argc, char **argv)
{
    const char  *cmd = argc > 0 ? argv[0] : "list";
    int          i;

    t->list = strcmp(cmd, "list") == 0;
    if (!t->list && strcmp(cmd, "count") != 0) {
        return 64;
    }
    for (i = 1; i < argc; i++) {
        if (t->list && !t->mailq && strcmp(argv[i], "--json") == 0) {
            t->json = 1;
        } else if (t->list && !t->json && strcmp(argv[i], "--mailq") == 0) {
            t->mailq = 1;
        } else if (!t->list && t->state == NULL
                   && (strcmp(argv[i], "held") == 0
                       || strcmp(argv[i], "deferred") == 0))
        {
            t->state = argv[i];
        } else if (!t->list && strcmp(argv[i], "all") == 0) {
            continue;
        } else {
            return 64;
        }
    }
    return PST_OK;
}


static int
pst_spool_tool_show(int argc, char **argv)
{
    int  json = argc == 3 && strcmp(argv[2], "--json") == 0;

    if (argc != 2 && !(json && argv[0][0] == 's')) {
        fprintf(stderr, "usage: postern queue %s ID%s\n", argv[0],
                argv[0][0] == 's' ? " [--json]" : "");
        return 64;
    }
    if (json) {
        if (pst_spool_show(argv[1], 3) != 0) {
            return 1;
        }
        printf("\n");
        return 0;
    }
    return pst_spool_show(argv[1], argv[0][0] == 's' ? 1 : 2);
}


/* list --mailq: a message gone meanwhile (delivered) is left out */
static int
pst_spool_tool_mailq(pst_spool_tool_t *t)
{
    size_t  i;

    for (i = 0; i < t->nids; i++) {
        (void) pst_spool_show(t->ids[i], 4);
        fflush(stdout);
    }
    pst_spool_mailq_tail(mailq_shown, mailq_bytes);
    free(t->ids);
    return 0;
}


int
pst_spool_tool(pst_cycle_t *cycle, int argc, char **argv)
{
    pst_spool_tool_t  t;
    const char       *cmd;
    size_t            i;

    cmd = argc > 0 ? argv[0] : "list";

    if (strcmp(cmd, "show") == 0 || strcmp(cmd, "cat") == 0) {
        return pst_spool_tool_show(argc, argv);
    }
    if (strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0
        || strcmp(cmd, "delete") == 0 || strcmp(cmd, "flush") == 0)
    {
        return pst_queue_offline(cycle, argc, argv);
    }
    if (strcmp(cmd, "drain") == 0) {
        fprintf(stderr, "postern: a drain needs the running server (its"
                " queue process sends the mail)\n");
        return 1;
    }

    memset(&t, 0, sizeof(t));
    t.cycle = cycle;
    if (pst_spool_tool_args(&t, argc, argv) != PST_OK) {
        fprintf(stderr, "usage: postern queue count [all|held|deferred]"
                "|list [--json|--mailq]|show ID [--json]|cat ID"
                "|flush [ID|DOMAIN]|hold ID|ALL|release [ID|ALL]"
                "|delete ID|ALL|drain [--to ADDR:PORT]\n");
        return 64;
    }

    if (pst_spool_walk(pst_spool_tool_id, &t) != PST_OK) {
        fprintf(stderr, "postern: cannot read the queue of \"%s\": %s\n",
                cycle->core->spool_dir.data, strerror(errno));
        return 1;
    }

    if (!t.list) {
        printf("%ld\n", t.count);
        return 0;
    }

    if (t.nids > 0) {                   /* qsort(NULL, 0, ...) is UB */
        qsort(t.ids, t.nids, sizeof(*t.ids), pst_spool_tool_cmp);
    }
    if (t.mailq) {
        return pst_spool_tool_mailq(&t);
    }
    if (t.json) {
        printf("[");
    }
    for (i = 0; i < t.nids; i++) {
        if (t.json && i > 0) {
            printf(",");
        }
        t.rc |= pst_spool_show(t.ids[i], t.json ? 3 : 0);
    }
    if (t.json) {
        printf("]\n");
    }
    free(t.ids);

    return t.rc;
}
