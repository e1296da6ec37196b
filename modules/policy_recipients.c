/*
 * policy_recipients.c -- recipient validation for local domains and the
 * sender checks: unknown users get "550 5.1.1" at RCPT time (never a
 * bounce later), and the reverse path is checked at MAIL.
 *
 * Recipient tables, per domain (smtp or server block; several lines for
 * one domain add up; a server with its own "recipients" lines does not
 * inherit those of the smtp block):
 *
 *   recipients DOMAIN file PATH;       one user per line ("alice", or
 *                                      "alice@DOMAIN"); '#' comments
 *   recipients DOMAIN list USER ...;   users written in the config
 *   recipients DOMAIN ~ REGEX;         users matching a PCRE2 pattern
 *   recipients DOMAIN ~* REGEX;        ... caseless
 *   recipients DOMAIN catch-all;       every user of the domain exists
 *   recipients_case_insensitive on|off;  (default on) table lookups fold
 *                                      ASCII case, as the reference
 *                                      "CaseInsensitive" setting; off
 *                                      compares local parts exactly
 *                                      (RFC 5321 2.4)
 *   recipients_delimiter CHARS;        sub-addressing: "bob+tag" is
 *                                      also looked up as "bob"
 *
 * A domain without a table is not checked here (relay control decides
 * whether it is ours).  The local part is compared without its quotes
 * ("alice"@d is alice@d) and the domain after the same normalisation as
 * policy_relay's (ASCII lowercase, IDNA A-label).  Tables are loaded at
 * configuration time into a hash table (a 100,000-line file takes a few
 * milliseconds) and re-read on HUP.
 *
 * Sender checks (at MAIL):
 *   sender_allow_null on|off;        (default on) off refuses <>, which
 *                                    RFC 5321 4.5.5 says must be taken
 *   sender_require_fqdn on|off;      (default off) 504 5.5.2 for a
 *                                    sender domain without a dot
 *   sender_domain_check on|off;      (default off) the sender's domain
 *                                    must exist in DNS: an MX, A or AAAA
 *                                    record.  NXDOMAIN or no record:
 *                                    550 5.1.8; a null MX (RFC 7505):
 *                                    550 5.7.27; a failed or timed out
 *                                    lookup: 451 4.1.8.  The three
 *                                    lookups run in parallel through
 *                                    the core's resolver.
 *   sender_dns_timeout TIME;         (default 5s)
 * Syntax itself is the core parser's (501 5.1.7).  Refusing our own
 * domains as sender from unauthenticated clients is policy_relay's
 * protect_local_senders.
 *
 * Hooks run at priority 0: after policy_access and policy_dnsbl, before
 * policy_greylist and policy_relay (which gives the final ACCEPT).
 */

#define PCRE2_CODE_UNIT_WIDTH 8

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <pcre2.h>

#include "postern_module.h"

#define RCPT_PRIORITY        0
#define RCPT_LOCAL_MAX       64
#define RCPT_FILE_MAX        (256 * 1024 * 1024)

typedef struct {
    pcre2_code                  *re;
    pst_str_t                    pattern;
    int                          jit;
} rcpt_regex_t;

/* The table of one domain. */
typedef struct {
    pst_str_t                    domain;      /* normalised */
    pst_array_t                 *users;       /* pst_str_t, as loaded */
    pst_array_t                 *regexes;     /* rcpt_regex_t */
    pst_str_t                    source;      /* "users.txt, list" */
    unsigned                     catch_all:1;
    unsigned                     built:1;
    unsigned                     folded:1;    /* built case-insensitive */
    /* the hash table: slot -> index + 1 into users, 0 empty */
    uint32_t                    *slots;
    uint32_t                    *hashes;
    uint32_t                     mask;
} rcpt_table_t;

typedef struct {
    pst_array_t                 *tables;      /* rcpt_table_t */
    pst_int_t                    case_insensitive;
    pst_str_t                    delimiter;
    pst_int_t                    allow_null;
    pst_int_t                    require_fqdn;
    pst_int_t                    domain_check;
    pst_msec_t                   dns_timeout;
} rcpt_conf_t;

/* Per-session state of the sender domain check. */
typedef struct {
    pst_session_t               *session;
    uint64_t                     token;
    pst_dns_query_t             *q[3];
    pst_dns_status_e             status[3];
    pst_uint_t                   count[3];
    int                          null_mx;
    int                          pending;
    char                         domain[PST_DOMAIN_MAX + 1];
} rcpt_dns_t;

static pcre2_match_data  *rcpt_md;

static const int   rcpt_qtypes[3] = { PST_DNS_MX, PST_DNS_A, PST_DNS_AAAA };


static void *rcpt_create_conf(pst_conf_t *cf);
static char *rcpt_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *rcpt_set_recipients(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e rcpt_mail(pst_call_t *call, void *conf);
static pst_verdict_e rcpt_rcpt(pst_call_t *call, void *conf);


static const pst_command_t  rcpt_commands[] = {
    { "recipients", PST_CONF_ANY_SMTP | PST_CONF_2MORE,
      rcpt_set_recipients, PST_SRV_CONF, 0, NULL },
    { "recipients_case_insensitive", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, case_insensitive), NULL },
    { "recipients_delimiter", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_str_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, delimiter), NULL },
    { "sender_allow_null", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, allow_null), NULL },
    { "sender_require_fqdn", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, require_fqdn), NULL },
    { "sender_domain_check", PST_CONF_ANY_SMTP | PST_CONF_FLAG,
      pst_conf_set_flag_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, domain_check), NULL },
    { "sender_dns_timeout", PST_CONF_ANY_SMTP | PST_CONF_TAKE1,
      pst_conf_set_msec_slot, PST_SRV_CONF,
      offsetof(rcpt_conf_t, dns_timeout), NULL },
    pst_null_command
};

static const pst_hook_t  rcpt_hooks[] = {
    { PST_PHASE_MAIL, rcpt_mail, RCPT_PRIORITY },
    { PST_PHASE_RCPT, rcpt_rcpt, RCPT_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_recipients",
    .version = "1.0",
    .description = "recipient tables per local domain, sender checks",
    .commands = rcpt_commands,
    .create_srv_conf = rcpt_create_conf,
    .merge_srv_conf = rcpt_merge_conf,
    .hooks = rcpt_hooks,
};


/* The local part without quotes and quoting backslashes, into out
 * (RFC 5321 4.1.2: "a"@d and a@d are the same mailbox).  -1 if too
 * long. */
static int
rcpt_unquote(const u_char *p, size_t n, u_char *out, size_t size)
{
    size_t  i, o = 0;

    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        for (i = 1; i + 1 < n; i++) {
            if (p[i] == '\\' && i + 2 < n) {
                i++;
            }
            if (o >= size) {
                return -1;
            }
            out[o++] = p[i];
        }
        return (int) o;
    }

    if (n > size) {
        return -1;
    }
    memcpy(out, p, n);
    return (int) n;
}


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
rcpt_create_conf(pst_conf_t *cf)
{
    rcpt_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(rcpt_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->tables = PST_CONF_UNSET_PTR;
    c->case_insensitive = PST_CONF_UNSET;
    c->allow_null = PST_CONF_UNSET;
    c->require_fqdn = PST_CONF_UNSET;
    c->domain_check = PST_CONF_UNSET;
    c->dns_timeout = PST_CONF_UNSET_MSEC;
    return c;
}


static rcpt_table_t *
rcpt_table(pst_conf_t *cf, rcpt_conf_t *rc, const pst_str_t *name)
{
    rcpt_table_t  *t;
    pst_uint_t     i;
    u_char         norm[PST_DOMAIN_MAX + 1];
    int            k;

    k = -1;
    if (name->len > 0 && name->data[name->len - 1] != '.') {
        k = pst_domain_normalize(name->data, name->len, norm, sizeof(norm));
    }
    if (k <= 0) {
        pst_conf_error(cf, "invalid domain \"%s\" in \"recipients\"",
                       name->data);
        return NULL;
    }

    if (rc->tables == PST_CONF_UNSET_PTR) {
        rc->tables = pst_array_create(pst_conf_pool(cf), 4,
                                      sizeof(rcpt_table_t));
        if (rc->tables == NULL) {
            return NULL;
        }
    }

    t = rc->tables->elts;
    for (i = 0; i < rc->tables->nelts; i++) {
        if (t[i].domain.len == (size_t) k
            && memcmp(t[i].domain.data, norm, (size_t) k) == 0)
        {
            return &t[i];
        }
    }

    t = pst_array_push(rc->tables);
    if (t == NULL) {
        return NULL;
    }
    memset(t, 0, sizeof(rcpt_table_t));
    t->domain.len = (size_t) k;
    t->domain.data = pst_palloc(pst_conf_pool(cf), (size_t) k + 1);
    t->users = pst_array_create(pst_conf_pool(cf), 16, sizeof(pst_str_t));
    t->regexes = pst_array_create(pst_conf_pool(cf), 2,
                                  sizeof(rcpt_regex_t));
    if (t->domain.data == NULL || t->users == NULL || t->regexes == NULL) {
        return NULL;
    }
    memcpy(t->domain.data, norm, (size_t) k + 1);

    return t;
}


/* A user as written in a table: "alice" or "alice@DOMAIN". */
static int
rcpt_add_user(pst_conf_t *cf, rcpt_table_t *t, u_char *p, size_t n,
    const char *where, pst_uint_t line)
{
    pst_str_t  *u;
    u_char     *at, norm[PST_DOMAIN_MAX + 1];
    size_t      i;
    int         k;

    at = memchr(p, '@', n);
    if (at != NULL) {
        k = pst_domain_normalize(at + 1, (size_t) (p + n - at - 1), norm,
                           sizeof(norm));
        if (k < 0 || (size_t) k != t->domain.len
            || memcmp(norm, t->domain.data, (size_t) k) != 0)
        {
            pst_conf_error(cf, "%s:%lu: \"%.*s\" is not in domain %s",
                           where, (unsigned long) line, (int) n, p,
                           t->domain.data);
            return PST_ERROR;
        }
        n = (size_t) (at - p);
    }

    if (n == 0 || n > RCPT_LOCAL_MAX) {
        pst_conf_error(cf, "%s:%lu: invalid user \"%.*s\" (1 to %d bytes)",
                       where, (unsigned long) line, (int) n, p,
                       RCPT_LOCAL_MAX);
        return PST_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f) {
            pst_conf_error(cf, "%s:%lu: invalid user \"%.*s\" (space or"
                           " control character)", where,
                           (unsigned long) line, (int) n, p);
            return PST_ERROR;
        }
    }

    u = pst_array_push(t->users);
    if (u == NULL) {
        return PST_ERROR;
    }
    u->data = p;
    u->len = n;

    return PST_OK;
}


static int
rcpt_load_file(pst_conf_t *cf, rcpt_table_t *t, pst_str_t *path)
{
    struct stat   st;
    u_char       *buf, *p, *end, *eol, *s, *e;
    pst_uint_t    line;
    ssize_t       r;
    size_t        got;
    int           fd;

    if (pst_conf_full_name(cf, path) != PST_OK) {
        return PST_ERROR;
    }

    fd = open((char *) path->data, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || fstat(fd, &st) == -1) {
        pst_conf_error(cf, "cannot open recipient table \"%s\": %s",
                       path->data, strerror(errno));
        if (fd != -1) {
            close(fd);
        }
        return PST_ERROR;
    }

    if (st.st_size > RCPT_FILE_MAX) {
        pst_conf_error(cf, "recipient table \"%s\" is too large",
                       path->data);
        close(fd);
        return PST_ERROR;
    }

    buf = pst_palloc(pst_conf_pool(cf), (size_t) st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return PST_ERROR;
    }

    for (got = 0; got < (size_t) st.st_size; got += (size_t) r) {
        r = read(fd, buf + got, (size_t) st.st_size - got);
        if (r <= 0) {
            if (r == -1 && errno == EINTR) {
                r = 0;
                continue;
            }
            pst_conf_error(cf, "cannot read recipient table \"%s\": %s",
                           path->data, r == 0 ? "short read"
                                              : strerror(errno));
            close(fd);
            return PST_ERROR;
        }
    }
    close(fd);

    end = buf + got;
    line = 0;

    for (p = buf; p < end; p = eol + 1) {
        line++;
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }

        s = p;
        e = memchr(p, '#', (size_t) (eol - p));
        if (e == NULL) {
            e = eol;
        }
        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
            e--;
        }
        if (s == e) {
            continue;
        }

        if (rcpt_add_user(cf, t, s, (size_t) (e - s), (char *) path->data,
                          line) != PST_OK)
        {
            return PST_ERROR;
        }
    }

    return PST_OK;
}


static void
rcpt_free_code(void *data)
{
    pcre2_code_free(data);
}


static char *
rcpt_set_recipients(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    rcpt_conf_t   *rc = conf;
    rcpt_table_t  *t;
    rcpt_regex_t  *re;
    pst_str_t     *args, path;
    pst_uint_t     n, i;
    PCRE2_UCHAR    msg[256];
    PCRE2_SIZE     off;
    int            err, caseless;
    const char    *type;

    (void) cmd;

    args = pst_conf_args(cf, &n);

    t = rcpt_table(cf, rc, &args[1]);
    if (t == NULL) {
        return PST_CONF_ERROR;
    }

    type = (const char *) args[2].data;

    if (strcmp(type, "catch-all") == 0 && n == 3) {
        t->catch_all = 1;
        return PST_CONF_OK;
    }

    if (strcmp(type, "file") == 0 && n == 4) {
        path = args[3];
        return rcpt_load_file(cf, t, &path) == PST_OK ? PST_CONF_OK
                                                       : PST_CONF_ERROR;
    }

    if (strcmp(type, "list") == 0 && n >= 4) {
        for (i = 3; i < n; i++) {
            if (rcpt_add_user(cf, t, args[i].data, args[i].len, "list",
                              i - 2) != PST_OK)
            {
                return PST_CONF_ERROR;
            }
        }
        return PST_CONF_OK;
    }

    if ((strcmp(type, "~") == 0 || strcmp(type, "~*") == 0) && n == 4) {
        caseless = (type[1] == '*');
        re = pst_array_push(t->regexes);
        if (re == NULL) {
            return PST_CONF_ERROR;
        }
        re->pattern = args[3];
        re->re = pcre2_compile(args[3].data, args[3].len,
                               caseless ? PCRE2_CASELESS : 0, &err, &off,
                               NULL);
        if (re->re == NULL) {
            pcre2_get_error_message(err, msg, sizeof(msg));
            pst_conf_error(cf, "invalid regular expression \"%s\" in"
                           " \"recipients\": %s at offset %zu",
                           args[3].data, (char *) msg, (size_t) off);
            return PST_CONF_ERROR;
        }
        if (pst_pool_cleanup_add(pst_conf_pool(cf), rcpt_free_code, re->re)
            != PST_OK)
        {
            pcre2_code_free(re->re);
            return PST_CONF_ERROR;
        }
        re->jit = (pcre2_jit_compile(re->re, PCRE2_JIT_COMPLETE) == 0);
        return PST_CONF_OK;
    }

    pst_conf_error(cf, "invalid \"recipients\": use \"recipients DOMAIN"
                   " file PATH\", \"... list USER...\", \"... ~ REGEX\","
                   " \"... ~* REGEX\" or \"... catch-all\"");
    return PST_CONF_ERROR;
}


static uint32_t
rcpt_hash(const u_char *p, size_t n, int fold)
{
    uint32_t  h = 2166136261u;
    size_t    i;
    u_char    c;

    for (i = 0; i < n; i++) {
        c = p[i];
        if (fold && c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }
        h = (h ^ c) * 16777619u;
    }

    return h ^ (h >> 15);
}


static int
rcpt_user_eq(const pst_str_t *u, const u_char *p, size_t n, int fold)
{
    if (u->len != n) {
        return 0;
    }
    return fold ? pst_strncasecmp(u->data, p, n) == 0
                : memcmp(u->data, p, n) == 0;
}


static int
rcpt_table_find(const rcpt_table_t *t, const u_char *p, size_t n)
{
    const pst_str_t  *u = t->users->elts;
    uint32_t          h, k;

    if (t->mask == 0) {
        return 0;
    }

    h = rcpt_hash(p, n, t->folded);
    for (k = h & t->mask; t->slots[k] != 0; k = (k + 1) & t->mask) {
        if (t->hashes[k] == h
            && rcpt_user_eq(&u[t->slots[k] - 1], p, n, t->folded))
        {
            return 1;
        }
    }

    return 0;
}


static int
rcpt_table_build(pst_pool_t *pool, rcpt_table_t *t, int fold)
{
    const pst_str_t  *u = t->users->elts;
    pst_uint_t        i, size;
    uint32_t          h, k;

    t->built = 1;
    t->folded = (unsigned) fold;
    t->mask = 0;

    if (t->users->nelts == 0) {
        return PST_OK;
    }

    for (size = 16; size < t->users->nelts * 2; size <<= 1) {
        /* void */
    }

    t->slots = pst_pcalloc(pool, size * sizeof(uint32_t));
    t->hashes = pst_palloc(pool, size * sizeof(uint32_t));
    if (t->slots == NULL || t->hashes == NULL) {
        return PST_ERROR;
    }
    t->mask = (uint32_t) size - 1;

    for (i = 0; i < t->users->nelts; i++) {
        if (rcpt_table_find(t, u[i].data, u[i].len)) {
            continue;                       /* a duplicate line */
        }
        h = rcpt_hash(u[i].data, u[i].len, fold);
        for (k = h & t->mask; t->slots[k] != 0; k = (k + 1) & t->mask) {
            /* void */
        }
        t->slots[k] = (uint32_t) i + 1;
        t->hashes[k] = h;
    }

    return PST_OK;
}


static char *
rcpt_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    rcpt_conf_t   *prev = parent, *conf = child;
    rcpt_table_t  *t, *copy;
    pst_array_t   *own;
    pst_uint_t     i;
    int            fold;

    pst_conf_merge_value(conf->case_insensitive, prev->case_insensitive, 1);
    pst_conf_merge_str_value(conf->delimiter, prev->delimiter, "");
    pst_conf_merge_value(conf->allow_null, prev->allow_null, 1);
    pst_conf_merge_value(conf->require_fqdn, prev->require_fqdn, 0);
    pst_conf_merge_value(conf->domain_check, prev->domain_check, 0);
    pst_conf_merge_msec_value(conf->dns_timeout, prev->dns_timeout, 5000);
    pst_conf_merge_ptr_value(conf->tables, prev->tables, NULL);

    if (conf->tables == NULL) {
        return PST_CONF_OK;
    }

    fold = (conf->case_insensitive != 0);

    /* tables shared with the smtp block are built once; a server that
     * folds case differently gets its own copy */
    own = NULL;
    t = conf->tables->elts;
    for (i = 0; i < conf->tables->nelts; i++) {
        if (t[i].built && t[i].folded == (unsigned) fold) {
            continue;
        }
        if (t[i].built) {
            if (own == NULL) {
                own = pst_array_create(pst_conf_pool(cf),
                                       conf->tables->nelts,
                                       sizeof(rcpt_table_t));
                if (own == NULL) {
                    return PST_CONF_ERROR;
                }
                memcpy(own->elts, conf->tables->elts,
                       conf->tables->nelts * sizeof(rcpt_table_t));
                own->nelts = conf->tables->nelts;
                conf->tables = own;
                t = own->elts;
            }
            copy = &t[i];
            copy->built = 0;
        }
        if (rcpt_table_build(pst_conf_pool(cf), &t[i], fold) != PST_OK) {
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* RCPT                                                                */

static int
rcpt_regex_match(const rcpt_table_t *t, const u_char *p, size_t n)
{
    const rcpt_regex_t  *re = t->regexes->elts;
    pst_uint_t           i;
    int                  rc;

    if (t->regexes->nelts == 0) {
        return 0;
    }

    if (rcpt_md == NULL) {
        rcpt_md = pcre2_match_data_create(1, NULL);
        if (rcpt_md == NULL) {
            return 0;
        }
    }

    for (i = 0; i < t->regexes->nelts; i++) {
        rc = re[i].jit ? pcre2_jit_match(re[i].re, p, n, 0, 0, rcpt_md, NULL)
                       : pcre2_match(re[i].re, p, n, 0, 0, rcpt_md, NULL);
        if (rc >= 0) {
            return 1;
        }
    }

    return 0;
}


static int
rcpt_known(const rcpt_conf_t *conf, const rcpt_table_t *t, const u_char *p,
    size_t n)
{
    const u_char  *d;
    size_t         k;

    if (rcpt_table_find(t, p, n) || rcpt_regex_match(t, p, n)) {
        return 1;
    }

    if (conf->delimiter.len == 0) {
        return 0;
    }

    /* "bob+tag": the part before the first delimiter */
    for (k = 0; k < n; k++) {
        d = memchr(conf->delimiter.data, p[k], conf->delimiter.len);
        if (d != NULL) {
            return k > 0 && (rcpt_table_find(t, p, k)
                             || rcpt_regex_match(t, p, k));
        }
    }

    return 0;
}


static const u_char *
rcpt_at(const pst_str_t *addr)
{
    const u_char  *p;

    for (p = addr->data + addr->len; p > addr->data; p--) {
        if (p[-1] == '@') {
            return p - 1;
        }
    }
    return NULL;
}


static pst_verdict_e
rcpt_rcpt(pst_call_t *call, void *data)
{
    rcpt_conf_t         *conf = data;
    pst_session_t       *s = pst_call_session(call);
    const pst_str_t     *rcpt;
    const rcpt_table_t  *t;
    const u_char        *at;
    u_char               norm[PST_DOMAIN_MAX + 1];
    u_char               local[RCPT_LOCAL_MAX * 2];
    pst_uint_t           i;
    int                  k, n;

    if (conf->tables == NULL) {
        return PST_HOOK_CONTINUE;
    }

    rcpt = pst_call_rcpt(call);
    if (rcpt == NULL || (at = rcpt_at(rcpt)) == NULL) {
        return PST_HOOK_CONTINUE;          /* <Postmaster> */
    }

    k = pst_domain_normalize(at + 1, (size_t) (rcpt->data + rcpt->len - at - 1),
                       norm, sizeof(norm));
    if (k <= 0) {
        return PST_HOOK_CONTINUE;          /* not ours: relay decides */
    }

    t = conf->tables->elts;
    for (i = 0; i < conf->tables->nelts; i++) {
        if (t[i].domain.len == (size_t) k
            && memcmp(t[i].domain.data, norm, (size_t) k) == 0)
        {
            break;
        }
    }
    if (i == conf->tables->nelts) {
        return PST_HOOK_CONTINUE;
    }
    t = &t[i];

    n = rcpt_unquote(rcpt->data, (size_t) (at - rcpt->data), local,
                     sizeof(local));

    if (t->catch_all) {
        pst_log_session(s, PST_LOG_INFO, "policy_recipients: <%.*s> known:"
                        " catch-all for %s", (int) rcpt->len, rcpt->data,
                        t->domain.data);
        return PST_HOOK_CONTINUE;
    }

    if (n > 0 && rcpt_known(conf, t, local, (size_t) n)) {
        pst_log_session(s, PST_LOG_INFO, "policy_recipients: <%.*s> known"
                        " in the table of %s", (int) rcpt->len, rcpt->data,
                        t->domain.data);
        return PST_HOOK_CONTINUE;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: reject <%.*s>:"
                    " unknown user in the table of %s (%lu users, %lu"
                    " patterns, %s)", (int) rcpt->len, rcpt->data,
                    t->domain.data, (unsigned long) t->users->nelts,
                    (unsigned long) t->regexes->nelts,
                    t->folded ? "case-insensitive" : "case-sensitive");
    pst_call_reply(call, 550, "5.1.1", "<%.*s>: Recipient address rejected:"
                   " User unknown", (int) rcpt->len, rcpt->data);
    return PST_HOOK_REJECT;
}


/* ------------------------------------------------------------------ */
/* MAIL                                                                */

static void
rcpt_dns_cancel(void *data)
{
    rcpt_dns_t  *d = data;
    int          i;

    for (i = 0; i < 3; i++) {
        if (d->q[i] != NULL) {
            pst_dns_cancel(d->q[i]);
            d->q[i] = NULL;
        }
    }
    d->pending = 0;
}


static void
rcpt_dns_decide(rcpt_dns_t *d)
{
    pst_session_t  *s = d->session;
    int             i, failed, nx, records;

    nx = 0;
    failed = 0;
    records = 0;
    for (i = 0; i < 3; i++) {
        if (d->status[i] == PST_DNS_NXDOMAIN) {
            nx = 1;
        } else if (d->status[i] != PST_DNS_OK) {
            failed = 1;
        } else {
            records += (int) d->count[i];
        }
    }

    if (d->null_mx) {
        pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: reject sender"
                        " domain %s: sender_domain_check: null MX (RFC"
                        " 7505)", d->domain);
        (void) pst_hook_resume(d->token, PST_HOOK_REJECT, 550, "5.7.27",
                               "Sender address rejected: domain %s does"
                               " not accept mail", d->domain);
        return;
    }

    if (records > 0) {
        pst_log_session(s, PST_LOG_INFO, "policy_recipients: sender domain"
                        " %s exists", d->domain);
        (void) pst_hook_resume(d->token, PST_HOOK_CONTINUE, 0, NULL, NULL);
        return;
    }

    if (nx || !failed) {
        pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: reject sender"
                        " domain %s: sender_domain_check: %s", d->domain,
                        nx ? "NXDOMAIN" : "no MX, A or AAAA record");
        (void) pst_hook_resume(d->token, PST_HOOK_REJECT, 550, "5.1.8",
                               "Sender address rejected: Domain not found");
        return;
    }

    pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: tempfail sender"
                    " domain %s: sender_domain_check: lookup failed or"
                    " timed out", d->domain);
    (void) pst_hook_resume(d->token, PST_HOOK_TEMPFAIL, 451, "4.1.8",
                           "Sender address rejected: Domain lookup failed,"
                           " try again later");
}


static void
rcpt_dns_answer(rcpt_dns_t *d, int i, const pst_dns_answer_t *a)
{
    char  name[8];

    d->q[i] = NULL;
    d->status[i] = a->status;
    d->count[i] = (a->status == PST_DNS_OK) ? a->count : 0;

    if (i == 0 && a->status == PST_DNS_OK && a->count == 1
        && pst_dns_rr_name(a, 0, 2, name, sizeof(name)) == PST_OK
        && strcmp(name, ".") == 0)
    {
        d->null_mx = 1;
    }

    if (--d->pending == 0) {
        rcpt_dns_decide(d);
    }
}


static void
rcpt_dns_mx(void *data, const pst_dns_answer_t *a)
{
    rcpt_dns_answer(data, 0, a);
}


static void
rcpt_dns_a(void *data, const pst_dns_answer_t *a)
{
    rcpt_dns_answer(data, 1, a);
}


static void
rcpt_dns_aaaa(void *data, const pst_dns_answer_t *a)
{
    rcpt_dns_answer(data, 2, a);
}


static pst_verdict_e
rcpt_domain_check(pst_call_t *call, rcpt_conf_t *conf, const u_char *dom,
    size_t n)
{
    static const pst_dns_pt  handlers[3] = { rcpt_dns_mx, rcpt_dns_a,
                                             rcpt_dns_aaaa };
    pst_session_t  *s = pst_call_session(call);
    rcpt_dns_t     *d;
    u_char          norm[PST_DOMAIN_MAX + 1];
    int             i, k;

    if (n > 0 && dom[0] == '[') {
        return PST_HOOK_CONTINUE;          /* an address literal */
    }

    k = pst_domain_normalize(dom, n, norm, sizeof(norm));
    if (k <= 0) {
        pst_call_reply(call, 550, "5.1.8", "Sender address rejected:"
                       " invalid domain");
        return PST_HOOK_REJECT;
    }

    d = pst_session_get_ctx(s, &postern_module);
    if (d == NULL) {
        d = pst_pcalloc(pst_session_pool(s), sizeof(rcpt_dns_t));
        if (d == NULL
            || pst_pool_cleanup_add(pst_session_pool(s), rcpt_dns_cancel, d)
               != PST_OK)
        {
            return PST_HOOK_CONTINUE;
        }
        pst_session_set_ctx(s, &postern_module, d);
    }

    /* a lookup of an earlier MAIL that the core gave up on */
    rcpt_dns_cancel(d);

    d->session = s;
    d->null_mx = 0;
    memcpy(d->domain, norm, (size_t) k + 1);

    for (i = 0; i < 3; i++) {
        d->status[i] = PST_DNS_SERVFAIL;
        d->count[i] = 0;
    }

    for (i = 0; i < 3; i++) {
        d->q[i] = pst_dns_resolve(d->domain, rcpt_qtypes[i],
                                  conf->dns_timeout, handlers[i], d);
        if (d->q[i] == NULL) {
            rcpt_dns_cancel(d);
            pst_log_session(s, PST_LOG_WARN, "policy_recipients: cannot"
                            " look up %s: sender_domain_check skipped",
                            d->domain);
            return PST_HOOK_CONTINUE;
        }
        d->pending++;
    }

    d->token = pst_call_defer(call);
    return PST_HOOK_PENDING;
}


static pst_verdict_e
rcpt_mail(pst_call_t *call, void *data)
{
    rcpt_conf_t      *conf = data;
    pst_session_t    *s = pst_call_session(call);
    const pst_str_t  *from;
    const u_char     *at, *dom;
    size_t            n;

    from = pst_tx_sender(s);
    if (from == NULL) {
        return PST_HOOK_CONTINUE;
    }

    if (from->len == 0) {
        if (conf->allow_null) {
            return PST_HOOK_CONTINUE;
        }
        pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: reject"
                        " sender <>: sender_allow_null off");
        pst_call_reply(call, 550, "5.7.1", "Null sender not accepted here");
        return PST_HOOK_REJECT;
    }

    at = rcpt_at(from);
    if (at == NULL) {
        return PST_HOOK_CONTINUE;
    }
    dom = at + 1;
    n = (size_t) (from->data + from->len - dom);

    if (conf->require_fqdn && dom[0] != '[' && memchr(dom, '.', n) == NULL) {
        pst_log_session(s, PST_LOG_NOTICE, "policy_recipients: reject sender"
                        " <%.*s>: sender_require_fqdn", (int) from->len,
                        from->data);
        pst_call_reply(call, 504, "5.5.2", "<%.*s>: Sender address"
                       " rejected: need fully-qualified address",
                       (int) from->len, from->data);
        return PST_HOOK_REJECT;
    }

    if (conf->domain_check) {
        return rcpt_domain_check(call, conf, dom, n);
    }

    return PST_HOOK_CONTINUE;
}
