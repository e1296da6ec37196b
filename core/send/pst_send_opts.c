/*
 * pst_send_opts.c -- postern-send's command line.
 *
 * getopt_long() with a table; every option's value is checked here so
 * that the rest of the program never sees a malformed one.  Errors are
 * one line in err; the caller prints it with a hint and exits
 * PST_SEND_USAGE.
 */

#include "pst_send.h"

#include <getopt.h>

enum {
    O_FROM = 256, O_TO, O_CC, O_BCC, O_SUBJECT, O_REPLY_TO, O_HEADER,
    O_DATE, O_MESSAGE_ID, O_IMPORTANCE, O_PRIORITY, O_SENSITIVITY,
    O_READ_RECEIPT_TO, O_RETURN_PATH, O_BODY, O_BODY_FILE, O_HTML_FILE,
    O_ATTACH, O_RAW, O_SERVER, O_TLS, O_TLS_REQUIRED, O_CA_FILE, O_CA_DIR,
    O_INSECURE, O_TLS_NAME, O_CERT, O_KEY, O_HELO, O_LOCAL_ADDRESS, O_TIMEOUT,
    O_CONNECT_TIMEOUT, O_AUTH, O_USER, O_PASSWORD_FILE, O_PASSWORD_COMMAND,
    O_PASSWORD_ENV, O_PASSWORD, O_NOTIFY, O_RET, O_ENVID,
    O_STOP_ON_RCPT_ERROR, O_VERIFY, O_EXPAND, O_JSON, O_PROGRESS, O_PRINT,
    O_QUEUE, O_PROCESS_QUEUE, O_KEEP, O_VERSION
};

static const struct option  pst_send_longopts[] = {
    { "from", required_argument, NULL, O_FROM },
    { "to", required_argument, NULL, O_TO },
    { "cc", required_argument, NULL, O_CC },
    { "bcc", required_argument, NULL, O_BCC },
    { "subject", required_argument, NULL, O_SUBJECT },
    { "reply-to", required_argument, NULL, O_REPLY_TO },
    { "header", required_argument, NULL, O_HEADER },
    { "date", required_argument, NULL, O_DATE },
    { "message-id", required_argument, NULL, O_MESSAGE_ID },
    { "importance", required_argument, NULL, O_IMPORTANCE },
    { "priority", required_argument, NULL, O_PRIORITY },
    { "sensitivity", required_argument, NULL, O_SENSITIVITY },
    { "read-receipt-to", required_argument, NULL, O_READ_RECEIPT_TO },
    { "return-path", required_argument, NULL, O_RETURN_PATH },
    { "body", required_argument, NULL, O_BODY },
    { "body-file", required_argument, NULL, O_BODY_FILE },
    { "html-file", required_argument, NULL, O_HTML_FILE },
    { "attach", required_argument, NULL, O_ATTACH },
    { "raw", required_argument, NULL, O_RAW },
    { "extract-recipients", no_argument, NULL, 't' },
    { "server", required_argument, NULL, O_SERVER },
    { "tls", required_argument, NULL, O_TLS },
    { "tls-required", no_argument, NULL, O_TLS_REQUIRED },
    { "ca-file", required_argument, NULL, O_CA_FILE },
    { "ca-dir", required_argument, NULL, O_CA_DIR },
    { "insecure", no_argument, NULL, O_INSECURE },
    { "tls-name", required_argument, NULL, O_TLS_NAME },
    { "cert", required_argument, NULL, O_CERT },
    { "key", required_argument, NULL, O_KEY },
    { "helo", required_argument, NULL, O_HELO },
    { "local-address", required_argument, NULL, O_LOCAL_ADDRESS },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
    { "auth", required_argument, NULL, O_AUTH },
    { "user", required_argument, NULL, O_USER },
    { "password-file", required_argument, NULL, O_PASSWORD_FILE },
    { "password-command", required_argument, NULL, O_PASSWORD_COMMAND },
    { "password-env", required_argument, NULL, O_PASSWORD_ENV },
    { "password", required_argument, NULL, O_PASSWORD },
    { "notify", required_argument, NULL, O_NOTIFY },
    { "ret", required_argument, NULL, O_RET },
    { "envid", required_argument, NULL, O_ENVID },
    { "stop-on-rcpt-error", no_argument, NULL, O_STOP_ON_RCPT_ERROR },
    { "verify", required_argument, NULL, O_VERIFY },
    { "expand", required_argument, NULL, O_EXPAND },
    { "verbose", no_argument, NULL, 'v' },
    { "json", no_argument, NULL, O_JSON },
    { "progress", no_argument, NULL, O_PROGRESS },
    { "print", no_argument, NULL, O_PRINT },
    { "queue", required_argument, NULL, O_QUEUE },
    { "process-queue", required_argument, NULL, O_PROCESS_QUEUE },
    { "keep", no_argument, NULL, O_KEEP },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, O_VERSION },
    { NULL, 0, NULL, 0 }
};

static const char  *pst_send_importance[] = { "low", "normal", "high", NULL };
static const char  *pst_send_priority[] = { "non-urgent", "normal", "urgent",
                                            NULL };
static const char  *pst_send_sensitivity[] = { "personal", "private",
                                               "company-confidential", NULL };
static const char  *pst_send_auths[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256",
                                         "XOAUTH2", "auto", NULL };

static int pst_send_opt(pst_send_opts_t *o, int c, char *arg, char *err,
    size_t size);
static int pst_send_opt_transport(pst_send_opts_t *o, int c, char *arg,
    char *err, size_t size);
static int pst_send_opt_more(pst_send_opts_t *o, int c, char *arg,
    char *err, size_t size);
static int pst_send_one_of(const char *v, const char **set, int nocase);
static int pst_send_opts_check(pst_send_opts_t *o, char *err, size_t size);


int
pst_send_list_add(pst_send_list_t *l, const char *s)
{
    char  **v;

    if (l->n == l->cap) {
        v = realloc(l->v, (l->cap ? l->cap * 2 : 8) * sizeof(char *));
        if (v == NULL) {
            return PST_ERROR;
        }
        l->v = v;
        l->cap = l->cap ? l->cap * 2 : 8;
    }

    l->v[l->n] = strdup(s);
    if (l->v[l->n] == NULL) {
        return PST_ERROR;
    }
    l->n++;

    return PST_OK;
}


int
pst_send_list_split(pst_send_list_t *l, const char *s)
{
    const char  *p, *start, *end;
    int          quoted = 0, angle = 0;
    char        *item;
    int          rc;

    for (p = start = s; ; p++) {
        if (*p == '\\' && quoted && p[1] != '\0') {
            p++;
            continue;
        }
        if (*p == '"') {
            quoted = !quoted;
        } else if (*p == '<' && !quoted) {
            angle = 1;
        } else if (*p == '>' && !quoted) {
            angle = 0;
        } else if (*p == '\0' || (*p == ',' && !quoted && !angle)) {
            end = p;
            while (start < end && isspace((u_char) *start)) {
                start++;
            }
            while (end > start && isspace((u_char) end[-1])) {
                end--;
            }
            if (end > start) {
                item = strndup(start, (size_t) (end - start));
                rc = item ? pst_send_list_add(l, item) : PST_ERROR;
                free(item);
                if (rc != PST_OK) {
                    return PST_ERROR;
                }
            }
            if (*p == '\0') {
                return PST_OK;
            }
            start = p + 1;
        }
    }
}


void
pst_send_list_free(pst_send_list_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}


int64_t
pst_send_parse_time(const char *s)
{
    char     *end;
    double    v;

    if (s == NULL || *s == '\0' || !isdigit((u_char) *s)) {
        return -1;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || v > 86400.0 * 30) {
        return -1;
    }
    if (*end == '\0' || strcmp(end, "s") == 0) {
        return (int64_t) (v * 1000);
    }
    if (strcmp(end, "ms") == 0) {
        return (int64_t) v;
    }
    if (strcmp(end, "m") == 0) {
        return (int64_t) (v * 60000);
    }
    return -1;
}


int
pst_send_opts_parse(pst_send_opts_t *o, int argc, char **argv, char *err,
    size_t size)
{
    int  c, i;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;

    while ((c = getopt_long(argc, argv, "+tvh", pst_send_longopts, NULL))
           != -1)
    {
        if (c == '?' || c == ':') {
            if (optopt >= O_FROM) {
                snprintf(err, size, "option %s needs a value",
                         argv[optind - 1]);
            } else if (optopt != 0) {
                snprintf(err, size, "unknown option -%c", optopt);
            } else {
                snprintf(err, size, "unknown option %s", argv[optind - 1]);
            }
            return PST_ERROR;
        }
        if (pst_send_opt(o, c, optarg, err, size) != PST_OK) {
            return PST_ERROR;
        }
    }

    /* the rest: recipients, and "-" for a body on stdin */
    for (i = optind; i < argc; i++) {
        if (strcmp(argv[i], "-") == 0) {
            o->body_file = "-";
            continue;
        }
        if (pst_send_list_split(&o->to, argv[i]) != PST_OK) {
            snprintf(err, size, "out of memory");
            return PST_ERROR;
        }
    }

    return pst_send_opts_check(o, err, size);
}


/* Message options. */
static int
pst_send_opt(pst_send_opts_t *o, int c, char *arg, char *err, size_t size)
{
    pst_send_list_t  *l = NULL;

    switch (c) {
    case O_FROM: o->from = arg; return PST_OK;
    case O_TO: l = &o->to; break;
    case O_CC: l = &o->cc; break;
    case O_BCC: l = &o->bcc; break;
    case O_SUBJECT: o->subject = arg; return PST_OK;
    case O_REPLY_TO: o->reply_to = arg; return PST_OK;
    case O_DATE: o->date = arg; return PST_OK;
    case O_MESSAGE_ID: o->message_id = arg; return PST_OK;
    case O_READ_RECEIPT_TO: o->read_receipt_to = arg; return PST_OK;
    case O_RETURN_PATH: o->return_path = arg; return PST_OK;
    case O_BODY: o->body = arg; return PST_OK;
    case O_BODY_FILE: o->body_file = arg; return PST_OK;
    case O_HTML_FILE: o->html_file = arg; return PST_OK;
    case O_RAW: o->raw = arg; return PST_OK;
    case 't': o->extract = 1; return PST_OK;
    case O_HEADER:
        if (strchr(arg, ':') == NULL || *arg == ':'
            || strpbrk(arg, "\r\n") != NULL)
        {
            snprintf(err, size, "--header wants 'Name: value' on one line, "
                     "not \"%s\"", arg);
            return PST_ERROR;
        }
        return pst_send_list_add(&o->headers, arg);
    case O_ATTACH:
        return pst_send_list_add(&o->attach, arg);
    case O_IMPORTANCE:
        o->importance = arg;
        return pst_send_one_of(arg, pst_send_importance, 1) ? PST_OK
               : (snprintf(err, size, "--importance: low, normal or high"),
                  PST_ERROR);
    case O_PRIORITY:
        o->priority = arg;
        return pst_send_one_of(arg, pst_send_priority, 1) ? PST_OK
               : (snprintf(err, size,
                           "--priority: non-urgent, normal or urgent"),
                  PST_ERROR);
    case O_SENSITIVITY:
        o->sensitivity = arg;
        return pst_send_one_of(arg, pst_send_sensitivity, 1) ? PST_OK
               : (snprintf(err, size, "--sensitivity: personal, private or "
                           "company-confidential"), PST_ERROR);
    default:
        return pst_send_opt_transport(o, c, arg, err, size);
    }

    if (pst_send_list_split(l, arg) != PST_OK) {
        snprintf(err, size, "out of memory");
        return PST_ERROR;
    }
    return PST_OK;
}


static int
pst_send_opt_transport(pst_send_opts_t *o, int c, char *arg, char *err,
    size_t size)
{
    int64_t  t;

    switch (c) {
    case O_SERVER: o->server = arg; return PST_OK;
    case O_TLS_REQUIRED: o->tls_required = 1; return PST_OK;
    case O_CA_FILE: o->ca_file = arg; return PST_OK;
    case O_CA_DIR: o->ca_dir = arg; return PST_OK;
    case O_INSECURE: o->insecure = 1; return PST_OK;
    case O_TLS_NAME: o->tls_name = arg; return PST_OK;
    case O_CERT: o->cert = arg; return PST_OK;
    case O_KEY: o->key = arg; return PST_OK;
    case O_HELO: o->helo = arg; return PST_OK;
    case O_LOCAL_ADDRESS: o->local_address = arg; return PST_OK;
    case O_TLS:
        if (strcmp(arg, "none") == 0) {
            o->tls = PST_SEND_TLS_NONE;
        } else if (strcmp(arg, "starttls") == 0) {
            o->tls = PST_SEND_TLS_STARTTLS;
        } else if (strcmp(arg, "implicit") == 0) {
            o->tls = PST_SEND_TLS_IMPLICIT;
        } else {
            snprintf(err, size, "--tls: none, starttls or implicit");
            return PST_ERROR;
        }
        return PST_OK;
    case O_TIMEOUT:
    case O_CONNECT_TIMEOUT:
        t = pst_send_parse_time(arg);
        if (t <= 0) {
            snprintf(err, size, "--%s: a time such as 30, 30s, 500ms or 2m",
                     c == O_TIMEOUT ? "timeout" : "connect-timeout");
            return PST_ERROR;
        }
        *(c == O_TIMEOUT ? &o->timeout : &o->connect_timeout) =
            (pst_msec_t) t;
        return PST_OK;
    case O_AUTH:
        o->auth = arg;
        if (!pst_send_one_of(arg, pst_send_auths, 1)) {
            snprintf(err, size, "--auth: PLAIN, LOGIN, SCRAM-SHA-256, "
                     "XOAUTH2 or auto");
            return PST_ERROR;
        }
        return PST_OK;
    default:
        return pst_send_opt_more(o, c, arg, err, size);
    }
}


static int
pst_send_opt_more(pst_send_opts_t *o, int c, char *arg, char *err,
    size_t size)
{
    switch (c) {
    case O_USER: o->user = arg; return PST_OK;
    case O_PASSWORD_FILE: o->password_file = arg; return PST_OK;
    case O_PASSWORD_COMMAND: o->password_command = arg; return PST_OK;
    case O_PASSWORD_ENV: o->password_env = arg; return PST_OK;
    case O_PASSWORD: o->password = arg; return PST_OK;
    case O_ENVID: o->envid = arg; return PST_OK;
    case O_STOP_ON_RCPT_ERROR: o->stop_on_rcpt_error = 1; return PST_OK;
    case O_VERIFY:
    case O_EXPAND:
        if (*arg == '\0' || strpbrk(arg, "\r\n") != NULL) {
            snprintf(err, size, "--%s: one line, not empty",
                     c == O_VERIFY ? "verify" : "expand");
            return PST_ERROR;
        }
        return pst_send_list_add(c == O_VERIFY ? &o->verify : &o->expand,
                                 arg);
    case 'v': o->verbose++; return PST_OK;
    case O_JSON: o->json = 1; return PST_OK;
    case O_PROGRESS: o->progress = 1; return PST_OK;
    case O_PRINT: o->print = 1; return PST_OK;
    case O_QUEUE: o->queue = arg; return PST_OK;
    case O_PROCESS_QUEUE: o->process_queue = arg; return PST_OK;
    case O_KEEP: o->keep = 1; return PST_OK;
    case 'h': o->help = 1; return PST_OK;
    case O_VERSION: o->version = 1; return PST_OK;
    case O_NOTIFY:
        o->notify = arg;
        if (!pst_send_notify_ok(arg)) {
            snprintf(err, size, "--notify: NEVER, or a list of SUCCESS, "
                     "FAILURE, DELAY");
            return PST_ERROR;
        }
        return PST_OK;
    case O_RET:
        o->ret = arg;
        if (strcasecmp(arg, "FULL") != 0 && strcasecmp(arg, "HDRS") != 0) {
            snprintf(err, size, "--ret: FULL or HDRS");
            return PST_ERROR;
        }
        return PST_OK;
    }

    snprintf(err, size, "unknown option");
    return PST_ERROR;
}


static int
pst_send_one_of(const char *v, const char **set, int nocase)
{
    for ( ; *set != NULL; set++) {
        if ((nocase ? strcasecmp(v, *set) : strcmp(v, *set)) == 0) {
            return 1;
        }
    }
    return 0;
}


int
pst_send_notify_ok(const char *v)
{
    static const char  *words[] = { "SUCCESS", "FAILURE", "DELAY", NULL };
    char                buf[64], *w, *save;

    if (strcasecmp(v, "NEVER") == 0) {
        return 1;
    }
    if (strlen(v) >= sizeof(buf) || *v == '\0' || strstr(v, ",,") != NULL)
    {
        return 0;
    }
    strcpy(buf, v);
    for (w = strtok_r(buf, ",", &save); w != NULL;
         w = strtok_r(NULL, ",", &save))
    {
        if (!pst_send_one_of(w, words, 1)) {
            return 0;
        }
    }
    return v[strlen(v) - 1] != ',' && v[0] != ',';
}


/* Combinations. */
static int
pst_send_opts_check(pst_send_opts_t *o, char *err, size_t size)
{
    int  bodies = (o->body != NULL) + (o->body_file != NULL);

    if (o->help || o->version) {
        return PST_OK;
    }
    if (o->user == NULL && (o->password || o->password_file
                            || o->password_command || o->password_env))
    {
        /* without a user name there is no AUTH: the password would be
         * dropped in silence and the message sent unauthenticated */
        snprintf(err, size, "a password (--password, --password-file, "
                 "--password-command, --password-env) needs --user");
        return PST_ERROR;
    }
    if (o->process_queue != NULL) {
        return PST_OK;
    }
    if (bodies > 1) {
        snprintf(err, size, "--body and --body-file (or -) exclude each "
                 "other");
        return PST_ERROR;
    }
    if (o->raw != NULL && (bodies || o->html_file || o->attach.n
                           || o->subject || o->headers.n))
    {
        snprintf(err, size, "--raw sends a ready message: no --body, "
                 "--html-file, --attach, --subject or --header with it");
        return PST_ERROR;
    }
    if ((o->cert == NULL) != (o->key == NULL)) {
        snprintf(err, size, "--cert and --key go together");
        return PST_ERROR;
    }
    if (o->tls == PST_SEND_TLS_NONE && o->tls_required) {
        snprintf(err, size, "--tls none and --tls-required contradict");
        return PST_ERROR;
    }
    if (o->extract && o->raw == NULL) {
        snprintf(err, size, "-t reads the recipients of a --raw message");
        return PST_ERROR;
    }
    if (o->to.n + o->cc.n + o->bcc.n == 0 && !o->extract
        && o->verify.n + o->expand.n == 0)
    {
        snprintf(err, size, "no recipient: give --to, --cc, --bcc (or -t "
                 "with --raw)");
        return PST_ERROR;
    }
    if (o->from == NULL && o->return_path == NULL && !o->extract
        && o->to.n + o->cc.n + o->bcc.n > 0)
    {
        snprintf(err, size, "no sender: give --from");
        return PST_ERROR;
    }
    if (o->user != NULL && o->auth == NULL) {
        o->auth = "auto";
    }
    if (o->auth != NULL && o->user == NULL) {
        snprintf(err, size, "--auth needs --user");
        return PST_ERROR;
    }
    return PST_OK;
}


void
pst_send_opts_free(pst_send_opts_t *o)
{
    pst_send_list_free(&o->to);
    pst_send_list_free(&o->cc);
    pst_send_list_free(&o->bcc);
    pst_send_list_free(&o->headers);
    pst_send_list_free(&o->attach);
    pst_send_list_free(&o->verify);
    pst_send_list_free(&o->expand);
}


void
pst_send_usage(FILE *f)
{
    fputs(
"usage: postern-send [options] [RECIPIENT...] [-]\n"
"\n"
"Message:\n"
"  --from ADDR             author and envelope sender (\"Name <a@b>\")\n"
"  --to, --cc, --bcc LIST  recipients, comma-separated, repeatable;\n"
"                          Bcc never appears in the header\n"
"  --subject TEXT          UTF-8 is encoded (RFC 2047) and folded\n"
"  --reply-to ADDR  --read-receipt-to ADDR  --date RFC5322-DATE\n"
"  --message-id <ID>       default: generated\n"
"  --importance low|normal|high   --priority non-urgent|normal|urgent\n"
"  --sensitivity personal|private|company-confidential\n"
"  --header 'Name: value'  any other field, repeatable\n"
"  --return-path ADDR      envelope sender (MAIL FROM) if not --from\n"
"  --body TEXT | --body-file FILE|- | -   the text body (- is stdin)\n"
"  --html-file FILE        HTML body (multipart/alternative with text)\n"
"  --attach 'FILE[;type=T][;name=N]'  attachment (base64), repeatable\n"
"  --raw FILE|-            a ready message, as it is but for lines\n"
"                          over 998 octets or 8-bit text without\n"
"                          8BITMIME: then quoted-printable\n"
"  -t                      with --raw: recipients from To/Cc/Bcc\n"
"  --print                 write the message to stdout, send nothing\n"
"\n"
"Transport:\n"
"  --server HOST[:PORT]    default localhost:25 (465 with --tls implicit);\n"
"                          IPv6: [::1]:2525\n"
"  --tls none|starttls|implicit   default: STARTTLS when offered\n"
"  --tls-required          fail rather than send in clear\n"
"  --ca-file F  --ca-dir D  --insecure (no certificate verification)\n"
"  --tls-name NAME         SNI and the name to verify (default: HOST;\n"
"                          an IP address: no SNI, its IP SAN checked)\n"
"  --cert FILE --key FILE  client certificate\n"
"  --helo NAME  --local-address ADDR\n"
"  --timeout T  --connect-timeout T   (30, 30s, 500ms, 2m)\n"
"  --auth PLAIN|LOGIN|SCRAM-SHA-256|XOAUTH2|auto  --user NAME\n"
"                          (XOAUTH2: the password is the bearer token)\n"
"  --password-file F | --password-command CMD | --password-env VAR\n"
"                          (default: $POSTERN_PASSWORD); --password P\n"
"                          works but shows the secret to `ps`\n"
"  --notify NEVER|SUCCESS,FAILURE,DELAY  --ret FULL|HDRS  --envid ID\n"
"  --stop-on-rcpt-error    abort if any recipient is refused\n"
"  --verify ADDR  --expand LIST    VRFY / EXPN\n"
"  -v                      protocol trail on stderr (C: / S:)\n"
"  --json                  result as JSON on stdout\n"
"  --progress              bytes sent, on a terminal\n"
"  --queue DIR             store the message in DIR instead of sending\n"
"  --process-queue DIR [--keep]   send what DIR holds\n"
"\n"
"Exit codes (sysexits.h): 0 every recipient accepted (or queued),\n"
"64 usage, 65 bad message data, 66 unreadable file, 67 every recipient\n"
"(or the message) refused, 68 unknown host, 69 some recipients refused\n"
"(the others got it), 74 local I/O error, 75 temporary failure,\n"
"76 connection/TLS/protocol failure, 77 authentication failed,\n"
"78 password source failed.\n", f);
}
