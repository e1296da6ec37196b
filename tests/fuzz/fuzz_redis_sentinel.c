/*
 * fuzz_redis_sentinel.c -- libFuzzer harness for what the Sentinel
 * discovery reads from the wire (pst_redis_reply.c): the answer to
 * SENTINEL get-master-addr-by-name, ROLE, and the pub/sub pushes of the
 * +switch-master subscription, all from servers the network controls.
 *
 * The input is the byte stream a sentinel or a Redis sends; hiredis's
 * own reader (as on a connection) cuts it into replies, each of which
 * goes through every reader.  Invariants besides the sanitizers:
 *   - every result is one of the documented ones, PST_ERROR with a
 *     reason;
 *   - an address that is accepted is an IP literal (inet_pton agrees)
 *     with a port 1..65535, NUL-terminated within its buffer;
 *   - ROLE's text for the log is printable and bounded, and "master"
 *     exactly when the instance is taken for a master;
 *   - an accepted +switch-master push names our master.
 */

#include "pst_core.h"
#include "pst_redis.h"

#include <hiredis/hiredis.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define R(x)  ((const pst_redis_reply_t *) (const void *) (x))


static void
fz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_redis_sentinel: invariant failed: %s\n",
                what);
        abort();
    }
}


static void
fz_addr(const char *host, size_t size, int port)
{
    u_char  a[16];

    fz_check(memchr(host, '\0', size) != NULL, "host terminated");
    fz_check(inet_pton(AF_INET, host, a) == 1
             || inet_pton(AF_INET6, host, a) == 1, "host is an address");
    fz_check(port >= 1 && port <= 65535, "port range");
}


static void
fz_reply(const redisReply *reply)
{
    static pst_str_t  name = { 8, (u_char *) "mymaster" };
    const char       *err;
    char              host[PST_REDIS_HOST_MAX], role[16], buf[64];
    size_t            i;
    int               rc, port;

    memset(host, 'x', sizeof(host));
    err = NULL;
    port = 0;
    rc = pst_redis_master_addr(R(reply), host, sizeof(host), &port, &err);
    fz_check(rc == PST_OK || rc == PST_DECLINED || rc == PST_ERROR, "rc");
    fz_check((rc == PST_ERROR) == (err != NULL), "reason iff error");
    if (rc == PST_OK) {
        fz_addr(host, sizeof(host), port);
    }

    memset(role, 'x', sizeof(role));
    rc = pst_redis_role_master(R(reply), role, sizeof(role));
    fz_check(memchr(role, '\0', sizeof(role)) != NULL, "role terminated");
    for (i = 0; role[i] != '\0'; i++) {
        fz_check(role[i] >= 0x20 && role[i] < 0x7f, "role printable");
    }
    fz_check(rc == (strcmp(role, "master") == 0), "master iff \"master\"");

    memset(host, 'x', sizeof(host));
    port = 0;
    rc = pst_redis_switch_master(R(reply), &name, host, sizeof(host), &port);
    fz_check(rc == PST_OK || rc == PST_DECLINED || rc == PST_ERROR,
             "switch rc");
    if (rc == PST_OK) {
        fz_addr(host, sizeof(host), port);
        fz_check(reply->elements == 3
                 && reply->element[2]->len > name.len
                 && memcmp(reply->element[2]->str, "mymaster ", 9) == 0,
                 "our master's push");
    }

    (void) pst_redis_reply_readonly(R(reply));
    (void) pst_redis_reply_noscript(R(reply));
    (void) pst_redis_reply_error(R(reply), buf, sizeof(buf));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader  *r;
    void         *reply;
    int           n;

    r = redisReaderCreate();
    if (r == NULL) {
        return 0;
    }
    if (redisReaderFeed(r, (const char *) data, size) != REDIS_OK) {
        redisReaderFree(r);
        return 0;
    }

    /* a connection's worth of replies, until the bytes or the protocol
     * end */
    for (n = 0; n < 256; n++) {
        reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK || reply == NULL) {
            break;
        }
        fz_reply(reply);
        freeReplyObject(reply);
    }

    redisReaderFree(r);
    return 0;
}
