/*
 * pst_mta_sts_io.c -- the blocking half of MTA-STS, on the queue
 * process's I/O threads (pst_qio): reading a domain's cached policy
 * from SPOOL/mta-sts/DOMAIN, and fetching the policy file over HTTPS
 * with libcurl (certificate and name verified, no redirect, text/plain,
 * at most 64 KiB, to the addresses the core's resolver found: curl does
 * no DNS of its own) then writing it to the cache (tmp, fsync, rename).
 *
 * Nothing here touches the event loop or the log: the job carries its
 * inputs and its outcome (pst_sts_io_t).
 */

#include "pst_core.h"
#include "pst_mta_sts.h"
#include "pst_mta_sts_int.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>


typedef struct {
    u_char      *data;
    size_t       len;
    int          too_big;
} pst_sts_body_t;


static void pst_sts_io_load(pst_sts_io_t *io);
static void pst_sts_io_fetch(pst_sts_io_t *io);
static void pst_sts_io_save(pst_sts_io_t *io, const u_char *text,
    size_t len);
static size_t pst_sts_io_write(char *ptr, size_t size, size_t n, void *d);


void
pst_sts_io_run(pst_qio_job_t *job)
{
    pst_sts_io_t  *io = job->data;

    io->rc = PST_ERROR;
    io->err[0] = '\0';
    if (io->kind == PST_STS_IO_LOAD) {
        pst_sts_io_load(io);
    } else {
        pst_sts_io_fetch(io);
    }
}


/* "id ID\nfetched TIME\n\n" then the policy file as it was fetched. */
static void
pst_sts_io_load(pst_sts_io_t *io)
{
    u_char      buf[PST_STS_MAX_POLICY + 128];
    char        id[40];
    long long   fetched;
    ssize_t     n;
    u_char     *body;
    int         fd, skip;

    fd = open(io->path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        io->rc = PST_DECLINED;              /* nothing cached */
        return;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    body = (u_char *) strstr((char *) buf, "\n\n");
    if (body == NULL
        || sscanf((char *) buf, "id %32s\nfetched %lld\n%n", id, &fetched,
                  &skip) != 2
        || pst_sts_parse(body + 2, (size_t) (n - (body + 2 - buf)),
                         &io->policy) != PST_OK)
    {
        snprintf(io->err, sizeof(io->err), "%.200s: not a cached policy",
                 io->path);
        return;
    }
    snprintf(io->policy.id, sizeof(io->policy.id), "%.32s", id);
    io->policy.fetched = (time_t) fetched;
    io->rc = PST_OK;
}


static void
pst_sts_io_fetch(pst_sts_io_t *io)
{
    CURL               *c;
    struct curl_slist  *resolve = NULL;
    pst_sts_body_t      body = { NULL, 0, 0 };
    char                url[400];
    long                code = 0;
    char               *type = NULL;
    CURLcode            rc;

    c = curl_easy_init();
    if (c == NULL) {
        snprintf(io->err, sizeof(io->err), "curl_easy_init() failed");
        return;
    }
    if (io->port == 443) {
        snprintf(url, sizeof(url), "https://mta-sts.%s/.well-known/"
                 "mta-sts.txt", io->domain);
    } else {
        snprintf(url, sizeof(url), "https://mta-sts.%s:%u/.well-known/"
                 "mta-sts.txt", io->domain, (unsigned) io->port);
    }
    resolve = curl_slist_append(NULL, io->resolve);

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) io->timeout);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (io->ca_file[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_CAINFO, io->ca_file);
    }
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Postern (MTA-STS)");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pst_sts_io_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);

    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    }

    if (rc != CURLE_OK) {
        snprintf(io->err, sizeof(io->err), "%.200s: %s", url, body.too_big
                 ? "the policy is over 64 KiB" : curl_easy_strerror(rc));
    } else if (code != 200) {
        snprintf(io->err, sizeof(io->err), "%.200s: HTTP %ld", url, code);
    } else if (type == NULL || strncasecmp(type, "text/plain", 10) != 0) {
        snprintf(io->err, sizeof(io->err), "%.200s: served as %.40s, not"
                 " text/plain", url, type ? type : "nothing");
    } else if (pst_sts_parse(body.data ? body.data : (u_char *) "",
                             body.len, &io->policy) != PST_OK)
    {
        snprintf(io->err, sizeof(io->err), "%.200s: not a valid STSv1 policy",
                 url);
    } else {
        snprintf(io->policy.id, sizeof(io->policy.id), "%s", io->id);
        io->policy.fetched = time(NULL);
        io->rc = PST_OK;
        pst_sts_io_save(io, body.data, body.len);
    }

    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    free(body.data);
}


static size_t
pst_sts_io_write(char *ptr, size_t size, size_t n, void *d)
{
    pst_sts_body_t  *b = d;
    size_t           len = size * n;
    u_char          *p;

    if (b->len + len > PST_STS_MAX_POLICY) {
        b->too_big = 1;
        return 0;                           /* curl stops: an error */
    }
    p = realloc(b->data, b->len + len + 1);
    if (p == NULL) {
        return 0;
    }
    memcpy(p + b->len, ptr, len);
    b->data = p;
    b->len += len;
    return len;
}


/* The cache file, whole or not at all (a failure only costs a fetch
 * after the next restart: io->err says why). */
static void
pst_sts_io_save(pst_sts_io_t *io, const u_char *text, size_t len)
{
    char     tmp[PATH_MAX + 8], head[128];
    int      fd, n, ok;
    char    *slash;

    slash = strrchr(io->path, '/');
    if (slash != NULL) {
        *slash = '\0';
        (void) mkdir(io->path, 0700);
        *slash = '/';
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", io->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        snprintf(io->err, sizeof(io->err), "cannot write %.200s: %s", tmp,
                 strerror(errno));
        return;
    }
    n = snprintf(head, sizeof(head), "id %s\nfetched %lld\n\n", io->id,
                 (long long) io->policy.fetched);
    ok = write(fd, head, (size_t) n) == n
         && write(fd, text, len) == (ssize_t) len
         && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, io->path) != 0) {
        snprintf(io->err, sizeof(io->err), "cannot write %.200s: %s", io->path,
                 strerror(errno));
        (void) unlink(tmp);
    }
}
