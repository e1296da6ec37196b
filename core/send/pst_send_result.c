/*
 * pst_send_result.c -- what postern-send tells its caller: the exit code
 * (sysexits.h, see pst_send.h), one line per recipient on stdout or the
 * whole result as one JSON object (--json), and the recipients left for
 * a later try (--process-queue).
 */

#include "pst_send_run.h"

static size_t pst_send_utf8_len(const u_char *p);
static void pst_send_json_reply(FILE *f, const pst_send_reply_t *r);
static void pst_send_json(pst_send_run_t *r);
static void pst_send_json_cmds(pst_send_run_t *r, const char *name,
    const pst_send_list_t *args, const pst_send_reply_t *rep);
static void pst_send_text(pst_send_run_t *r);
static const char *pst_send_queue_id(const char *text, size_t *len);


int
pst_send_exit_for(int code, int session)
{
    (void) session;

    if (code == 0) {
        return PST_SEND_PROTOCOL;
    }
    if (code == 530 || code == 534 || code == 535 || code == 538) {
        return PST_SEND_NOPERM;
    }
    return code / 100 == 4 ? PST_SEND_TEMPFAIL : PST_SEND_ALLREFUSED;
}


int
pst_send_exit_code(pst_send_run_t *r)
{
    size_t  i, n = r->job->env->rcpts.n, ok = 0, perm = 0, temp = 0;

    if (r->mail.code / 100 == 4 || r->mail.code / 100 == 5) {
        return pst_send_exit_for(r->mail.code, 0);
    }

    for (i = 0; i < n; i++) {
        if (r->res[i].code / 100 == 2 && !r->aborted) {
            ok++;
        } else if (r->res[i].code / 100 == 5) {
            perm++;
        } else if (r->res[i].code != 0 || !r->aborted) {
            temp++;
        }
    }

    if (ok == n) {
        return PST_SEND_OK;
    }
    if (ok > 0) {
        return PST_SEND_SOMEREFUSED;
    }
    if (perm > 0) {
        return PST_SEND_ALLREFUSED;
    }
    if (r->broken && r->data.code == 0) {
        return PST_SEND_PROTOCOL;
    }
    return temp > 0 ? PST_SEND_TEMPFAIL : PST_SEND_ALLREFUSED;
}


/* "queued as ID" in a reply text. */
static const char *
pst_send_queue_id(const char *text, size_t *len)
{
    const char  *p = strstr(text, "queued as ");

    if (p == NULL) {
        return NULL;
    }
    p += 10;
    *len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789.-_");
    return *len > 0 ? p : NULL;
}


/* The length of the UTF-8 sequence at p (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0 if p holds none. */
static size_t
pst_send_utf8_len(const u_char *p)
{
    size_t  n, i;
    u_char  lo = 0x80, hi = 0xBF;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        lo = p[0] == 0xE0 ? 0xA0 : 0x80;
        hi = p[0] == 0xED ? 0x9F : 0xBF;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        lo = p[0] == 0xF0 ? 0x90 : 0x80;
        hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
}


/* A server's text, an address or a path as a JSON string (RFC 8259):
 * quotes, backslashes and control characters escaped, and any byte
 * that is not part of a UTF-8 character replaced by U+FFFD, so that
 * the output always parses. */
void
pst_send_json_str(FILE *f, const char *s)
{
    const u_char  *p;
    size_t         n;

    fputc('"', f);
    for (p = (const u_char *) s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p);
        } else if (*p < 0x80) {
            fputc(*p, f);
        } else if ((n = pst_send_utf8_len(p)) > 0) {
            fwrite(p, 1, n, f);
            p += n - 1;
        } else {
            fputs("\\ufffd", f);
        }
    }
    fputc('"', f);
}


static void
pst_send_json_reply(FILE *f, const pst_send_reply_t *r)
{
    fprintf(f, "\"code\": %d, \"enhanced_code\": ", r->code);
    pst_send_json_str(f, r->ecode);
    fputs(", \"text\": ", f);
    pst_send_json_str(f, r->text);
}


static void
pst_send_json_cmds(pst_send_run_t *r, const char *name,
    const pst_send_list_t *args, const pst_send_reply_t *rep)
{
    size_t  i;

    (void) r;
    if (args->n == 0) {
        return;
    }
    printf(", \"%s\": [", name);
    for (i = 0; i < args->n; i++) {
        printf("%s{\"argument\": ", i ? ", " : "");
        pst_send_json_str(stdout, args->v[i]);
        printf(", ");
        pst_send_json_reply(stdout, &rep[i]);
        printf("}");
    }
    printf("]");
}


static void
pst_send_json(pst_send_run_t *r)
{
    const char  *qid;
    size_t       i, n;
    char         id[64];

    if (r->peer[0] == '\0') {
        /* never connected: what was asked for */
        snprintf(r->peer, sizeof(r->peer), "%.100s:%s", r->host, r->port);
    }
    printf("{\"server\": ");
    pst_send_json_str(stdout, r->peer);
    printf(", \"tls\": %s, \"tls_verified\": %s, \"exit\": %d",
           r->tls ? "true" : "false", r->tls_verified ? "true" : "false",
           r->exit);
    if (r->fail.code != 0 || r->fail.text[0] != '\0') {
        printf(", \"error\": {");
        pst_send_json_reply(stdout, &r->fail);
        printf("}");
    }
    if (r->sent || r->aborted) {
        printf(", \"mail\": {");
        pst_send_json_reply(stdout, &r->mail);
        printf("}, \"data\": {");
        pst_send_json_reply(stdout, &r->data);
        printf("}");
        qid = pst_send_queue_id(r->data.text, &n);
        if (qid != NULL) {
            snprintf(id, sizeof(id), "%.*s", (int) n, qid);
            printf(", \"queue_id\": ");
            pst_send_json_str(stdout, id);
        }
        printf(", \"recipients\": [");
        for (i = 0; i < r->job->env->rcpts.n; i++) {
            printf("%s{\"address\": ", i ? ", " : "");
            pst_send_json_str(stdout, r->job->env->rcpts.v[i]);
            printf(", \"accepted\": %s, ",
                   r->res[i].code / 100 == 2 && !r->aborted ? "true"
                                                            : "false");
            pst_send_json_reply(stdout, &r->res[i]);
            printf("}");
        }
        printf("]");
    }
    pst_send_json_cmds(r, "verify", &r->o->verify, r->vrfy);
    pst_send_json_cmds(r, "expand", &r->o->expand, r->expn);
    printf("}\n");
}


static void
pst_send_text(pst_send_run_t *r)
{
    const pst_send_reply_t  *p;
    const char              *what;
    size_t                   i;

    if (r->fail.code != 0 || r->fail.text[0] != '\0') {
        pst_send_err("%s: ", r->peer[0] ? r->peer
                                                         : r->host);
        if (r->fail.code != 0) {
            fprintf(stderr, "%d %s%s", r->fail.code, r->fail.ecode,
                    r->fail.ecode[0] ? " " : "");
        }
        fprintf(stderr, "%s\n", r->fail.text);
    }
    if (r->o->quiet) {
        /* sendmail: its stdout is the caller's; failures go to stderr */
        fflush(stdout);
        dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    for (i = 0; i < r->o->verify.n; i++) {
        printf("VRFY %s: %d %s%s%s\n", r->o->verify.v[i], r->vrfy[i].code,
               r->vrfy[i].ecode, r->vrfy[i].ecode[0] ? " " : "",
               r->vrfy[i].text);
    }
    for (i = 0; i < r->o->expand.n; i++) {
        printf("EXPN %s: %d %s%s%s\n", r->o->expand.v[i], r->expn[i].code,
               r->expn[i].ecode, r->expn[i].ecode[0] ? " " : "",
               r->expn[i].text);
    }
    if (!r->sent && !r->aborted) {
        return;
    }
    if (r->mail.code / 100 != 2 && r->mail.code != 0) {
        printf("sender <%s>: refused: %d %s%s%s\n", r->job->env->sender,
               r->mail.code, r->mail.ecode, r->mail.ecode[0] ? " " : "",
               r->mail.text);
    }
    for (i = 0; i < r->job->env->rcpts.n; i++) {
        p = &r->res[i];
        if (r->o->quiet && p->code / 100 == 2 && !r->aborted) {
            continue;
        }
        what = r->aborted ? (p->code / 100 == 2 ? "not sent (another "
                             "recipient was refused)" : "refused")
               : p->code / 100 == 2 ? "delivered"
               : p->code / 100 == 5 ? "refused"
               : p->code == 0 ? "not sent" : "deferred";
        printf("<%s>: %s: %d %s%s%s\n", r->job->env->rcpts.v[i], what,
               p->code, p->ecode, p->ecode[0] ? " " : "",
               p->code ? p->text : (r->fail.text[0] ? r->fail.text
                                    : "no reply"));
    }
}


void
pst_send_report(pst_send_run_t *r)
{
    size_t  i, n = 0;

    /* for the queue's ID.err: the session's failure, every recipient's */
    if (r->fail.text[0] != '\0') {
        n = (size_t) snprintf(r->last_reason, sizeof(r->last_reason),
                              "%d %s %.400s\n", r->fail.code,
                              r->fail.ecode, r->fail.text);
    }
    for (i = 0; i < r->job->env->rcpts.n && n < sizeof(r->last_reason);
         i++)
    {
        if (r->res[i].code / 100 != 2 && r->res[i].code != 0) {
            n += (size_t) snprintf(r->last_reason + n,
                                   sizeof(r->last_reason) - n,
                                   "<%.200s>: %d %s %.200s\n",
                                   r->job->env->rcpts.v[i], r->res[i].code,
                                   r->res[i].ecode, r->res[i].text);
        }
    }

    if (r->o->json) {
        pst_send_json(r);
    } else {
        pst_send_text(r);
    }
    fflush(stdout);
}


void
pst_send_retry_list(pst_send_run_t *r)
{
    char    line[1200], *p;
    size_t  i;

    pst_send_list_free(&r->job->retry);
    pst_send_list_free(&r->job->refused);
    for (i = 0; i < r->job->env->rcpts.n; i++) {
        if (r->res[i].code / 100 == 2 && !r->aborted) {
            continue;
        }
        if (r->res[i].code / 100 != 5) {
            pst_send_list_add(&r->job->retry, r->job->env->rcpts.v[i]);
            continue;
        }
        snprintf(line, sizeof(line), "%s %d %s %s", r->job->env->rcpts.v[i],
                 r->res[i].code, r->res[i].ecode, r->res[i].text);
        for (p = line; *p; p++) {
            if (*p == '\r' || *p == '\n') {
                *p = ' ';
            }
        }
        pst_send_list_add(&r->job->refused, line);
    }
}


void
pst_send_run_free(pst_send_run_t *r)
{
    size_t  i;

    if (r->rcpts != NULL) {
        for (i = 0; i < r->job->env->rcpts.n; i++) {
            free(r->rcpts[i].params.data);
        }
    }
    free(r->rcpts);
    free(r->res);
    free(r->vrfy);
    free(r->expn);
    if (r->pass != NULL) {
        explicit_bzero(r->pass, strlen(r->pass));
        free(r->pass);
    }
    if (r->ai != NULL) {
        freeaddrinfo(r->ai);
    }
    if (r->pool != NULL) {
        pst_destroy_pool(r->pool);
    }
}
