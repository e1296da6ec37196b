/*
 * pst_smtp_auth_redis.c -- AUTH failures per client address counted in
 * Redis (auth_client_backend redis): every node that shares the Redis
 * adds to the same count, and a block set by one node holds on all.
 *
 * Keys (pst_redis_key(): redis_key_prefix first):
 *   postern:auth:fail:CLIENT    failures, INCR, expiring one
 *                               auth_client_block_time after the first
 *   postern:auth:block:CLIENT   set when they reach auth_client_failures,
 *                               expiring after auth_client_block_time
 * CLIENT is the address, an IPv6 one as its /64 (pst_addr_key()).
 *
 * pst_smtp_auth.c keeps its shared-memory table as before and uses it
 * as the fallback: a failure is counted there too, and a block Redis
 * reports (or finds at the next AUTH) is copied into it.  Nothing waits
 * on the failure count (the failure delay runs meanwhile); the check at
 * AUTH waits at most redis_timeout.
 */

#include "pst_smtp.h"
#include "pst_redis.h"

typedef struct {
    u_char                       key[16];
    pst_smtp_auth_block_pt       block;
    char                         client[INET6_ADDRSTRLEN + 4];
} pst_auth_redis_req_t;

/* KEYS: fail, block; ARGV: the limit, the window (ms).
 * {failures, ms blocked (0: not blocked)} */
static const char  pst_auth_redis_lua[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "if n < tonumber(ARGV[1]) then return {n, 0} end\n"
    "if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then\n"
    "  return {n, tonumber(ARGV[2])}\n"
    "end\n"
    "return {n, redis.call('PTTL', KEYS[2])}\n";


pst_redis_script_t *
pst_smtp_auth_redis_script(pst_conf_t *cf)
{
    return pst_redis_script(cf, pst_auth_redis_lua);
}


/* The client as the keys name it: "192.0.2.1", "2001:db8::/64". */
static void
pst_auth_redis_client(const u_char key[16], char *text, size_t size)
{
    u_char  a[16];

    if (key[10] == 0xff && key[11] == 0xff) {
        inet_ntop(AF_INET, key + 12, text, (socklen_t) size);
        return;
    }
    memset(a, 0, sizeof(a));
    memcpy(a, key, 8);
    inet_ntop(AF_INET6, a, text, (socklen_t) size);
    strncat(text, "/64", size - strlen(text) - 1);
}


static ssize_t
pst_auth_redis_key(const char *client, const char *kind, char *buf,
    size_t size)
{
    pst_str_t  part;

    part.data = (u_char *) client;
    part.len = strlen(client);
    return pst_redis_key(buf, size, kind, &part, 1);
}


static void
pst_auth_redis_counted(void *data, pst_redis_status_e status,
    const pst_redis_reply_t *reply)
{
    pst_auth_redis_req_t  *req = data;
    int64_t                n, ms;

    if (status == PST_REDIS_OK
        && pst_redis_reply_integer(pst_redis_reply_element(reply, 0), &n)
           == PST_OK
        && pst_redis_reply_integer(pst_redis_reply_element(reply, 1), &ms)
           == PST_OK && ms > 0)
    {
        pst_log_error(PST_LOG_WARN, 0, "%lld authentication failures from"
                      " %s on all nodes: AUTH blocked for %lld s",
                      (long long) n, req->client,
                      (long long) ((ms + 999) / 1000));
        req->block(req->key, (uint32_t) ((ms + 999) / 1000));

    } else if (status != PST_REDIS_OK) {
        pst_log_error(PST_LOG_INFO, 0, "AUTH failure of %s not counted in"
                      " Redis (%s): this node's count only", req->client,
                      status == PST_REDIS_TIMEOUT ? "timed out"
                                                  : "went down");
    }

    free(req);
}


void
pst_smtp_auth_redis_failed(const pst_redis_script_t *script,
    const u_char key[16], pst_int_t limit, pst_msec_t window,
    pst_smtp_auth_block_pt block)
{
    pst_auth_redis_req_t  *req;
    const char            *argv[4];
    size_t                 len[4];
    char                   fail[PST_REDIS_KEY_MAX], blk[PST_REDIS_KEY_MAX];
    char                   lim[24], win[24];
    ssize_t                nf, nb;

    req = calloc(1, sizeof(pst_auth_redis_req_t));
    if (req == NULL) {
        return;
    }
    memcpy(req->key, key, 16);
    req->block = block;
    pst_auth_redis_client(key, req->client, sizeof(req->client));

    nf = pst_auth_redis_key(req->client, "auth:fail", fail, sizeof(fail));
    nb = pst_auth_redis_key(req->client, "auth:block", blk, sizeof(blk));
    if (nf < 0 || nb < 0) {
        free(req);
        return;
    }

    argv[0] = fail;
    len[0] = (size_t) nf;
    argv[1] = blk;
    len[1] = (size_t) nb;
    argv[2] = lim;
    len[2] = (size_t) snprintf(lim, sizeof(lim), "%ld", (long) limit);
    argv[3] = win;
    len[3] = (size_t) snprintf(win, sizeof(win), "%llu",
                               (unsigned long long) window);

    /* the handler needs no session: it may outlive the client */
    if (pst_redis_eval(script, 0, pst_auth_redis_counted, req, 2, 4, argv,
                       len) == NULL)
    {
        free(req);
    }
}


pst_redis_cmd_t *
pst_smtp_auth_redis_blocked(const u_char key[16], pst_redis_pt handler,
    void *data)
{
    const char  *argv[2];
    size_t       len[2];
    char         client[INET6_ADDRSTRLEN + 4], blk[PST_REDIS_KEY_MAX];
    ssize_t      n;

    pst_auth_redis_client(key, client, sizeof(client));
    n = pst_auth_redis_key(client, "auth:block", blk, sizeof(blk));
    if (n < 0) {
        return NULL;
    }

    argv[0] = "PTTL";
    len[0] = 4;
    argv[1] = blk;
    len[1] = (size_t) n;
    return pst_redis_command(0, handler, data, 2, argv, len);
}
