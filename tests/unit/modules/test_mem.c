/*
 * test_mem.c -- unit-test module for the session suite (check_session.c).
 *
 * It accepts recipients in example.test (others are left to the core,
 * which refuses them: no module accepted), and is a store that keeps
 * messages in memory.  Commits complete later, from a timer, as a real
 * store completes from its threads, so the session really waits in its
 * COMMIT state.  "test_mem_fail on;" makes every commit fail.  The test
 * reads what was stored through the exported test_mem_*() functions
 * (dlopen with RTLD_NOLOAD, then dlsym).
 */

#include <stdlib.h>
#include <string.h>

#include <postern_module.h>


typedef struct {
    pst_int_t                    fail;
} test_mem_conf_t;

typedef struct {
    u_char                      *data;
    size_t                       len;
    size_t                       size;
    uint64_t                     token;
    int                          fail;
} test_mem_msg_t;


PST_EXPORT const u_char *test_mem_last(size_t *len);
PST_EXPORT int test_mem_stored(void);
PST_EXPORT int test_mem_aborted(void);


static u_char  *last;
static size_t   last_len;
static int      stored, aborted;


PST_EXPORT const u_char *
test_mem_last(size_t *len)
{
    *len = last_len;
    return last;
}


PST_EXPORT int
test_mem_stored(void)
{
    return stored;
}


PST_EXPORT int
test_mem_aborted(void)
{
    return aborted;
}


static void *
test_mem_create(pst_conf_t *cf)
{
    test_mem_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(test_mem_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->fail = PST_CONF_UNSET;
    return c;
}


static char *
test_mem_merge(pst_conf_t *cf, void *parent, void *child)
{
    test_mem_conf_t  *prev = parent, *conf = child;

    (void) cf;
    pst_conf_merge_value(conf->fail, prev->fail, 0);
    return PST_CONF_OK;
}


static pst_verdict_e
test_mem_rcpt(pst_call_t *call, void *conf)
{
    const pst_str_t  *r = pst_call_rcpt(call);

    (void) conf;

    if (r->len > 13
        && memcmp(r->data + r->len - 13, "@example.test", 13) == 0)
    {
        return PST_HOOK_ACCEPT;
    }
    return PST_HOOK_CONTINUE;
}


static void *
test_mem_open(pst_session_t *s, void *conf)
{
    test_mem_conf_t  *c = conf;
    test_mem_msg_t   *m;

    (void) s;

    m = calloc(1, sizeof(test_mem_msg_t));
    if (m != NULL) {
        m->fail = (int) c->fail;
    }
    return m;
}


static int
test_mem_write(void *handle, const u_char *data, size_t len)
{
    test_mem_msg_t  *m = handle;
    u_char          *p;
    size_t           size;

    if (m->len + len > m->size) {
        size = (m->len + len) * 2;
        p = realloc(m->data, size);
        if (p == NULL) {
            return PST_ERROR;
        }
        m->data = p;
        m->size = size;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return PST_OK;
}


static void
test_mem_complete(void *data)
{
    test_mem_msg_t  *m = data;
    uint64_t         token = m->token;
    int              rc = PST_ERROR;

    if (!m->fail) {
        free(last);
        last = m->data;
        last_len = m->len;
        m->data = NULL;
        stored++;
        rc = PST_OK;
    }

    free(m->data);
    free(m);
    pst_store_done(token, rc);
}


static int
test_mem_commit(void *handle, uint64_t token)
{
    test_mem_msg_t  *m = handle;

    m->token = token;
    if (pst_timer_add(1, test_mem_complete, m) == NULL) {
        free(m->data);
        free(m);
        return PST_ERROR;
    }
    return PST_AGAIN;
}


static void
test_mem_abort(void *handle)
{
    test_mem_msg_t  *m = handle;

    aborted++;
    free(m->data);
    free(m);
}


static ssize_t
test_mem_read(void *handle, off_t offset, u_char *buf, size_t len)
{
    test_mem_msg_t  *m = handle;

    if ((size_t) offset >= m->len) {
        return 0;
    }
    if (len > m->len - (size_t) offset) {
        len = m->len - (size_t) offset;
    }
    memcpy(buf, m->data + offset, len);
    return (ssize_t) len;
}


static const pst_command_t  test_mem_commands[] = {
    { "test_mem_fail", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(test_mem_conf_t, fail), NULL },
    pst_null_command
};

static const pst_hook_t  test_mem_hooks[] = {
    { PST_PHASE_RCPT, test_mem_rcpt, 0 },
    pst_null_hook
};

static const pst_store_ops_t  test_mem_ops = {
    .open = test_mem_open,
    .write = test_mem_write,
    .commit = test_mem_commit,
    .abort = test_mem_abort,
    .read = test_mem_read,
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "test_mem",
    .version = "1.0",
    .description = "unit test: accept example.test, store in memory",
    .commands = test_mem_commands,
    .create_srv_conf = test_mem_create,
    .merge_srv_conf = test_mem_merge,
    .hooks = test_mem_hooks,
    .store = &test_mem_ops,
};
