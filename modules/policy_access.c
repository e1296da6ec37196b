/*
 * policy_access.c -- ordered access rules on the client, HELO, sender,
 * recipients, authenticated identity and header lines, with PCRE2
 * regular expressions and CIDR ranges.
 *
 * Directive (smtp or server block, any number, in order):
 *
 *   access_rule TARGET MATCH ACTION [ARGS];
 *
 *   TARGET and when it is checked:
 *     client       the client address          at connect
 *     client_name  its verified reverse name,  at connect
 *                  "unknown" when it has none
 *     helo         the HELO/EHLO argument      at HELO/EHLO
 *     mail         the sender, "" for <>       at MAIL
 *     auth         the authenticated identity  at MAIL (only when the
 *                                              session authenticated)
 *     rcpt         the recipient               at each RCPT
 *     header       each header line, unfolded, at the end of data
 *                  as "Name: value"
 *
 *   MATCH:
 *     ~ REGEX | ~* REGEX        PCRE2, case-sensitive / caseless
 *     !~ REGEX | !~* REGEX      the rule applies when the REGEX does
 *                               not match (for header: no line does)
 *     = STRING | != STRING      exact, caseless
 *     CIDR | !CIDR              client only: 192.0.2.0/24, 2001:db8::/32
 *
 *   ACTION:
 *     accept                    accept now: skips the later checks of
 *                               this phase, relay control included (an
 *                               accepted recipient is accepted!)
 *     pass                      stop the access rules of this phase and
 *                               let the other modules decide
 *     reject [CODE] [ECODE] [TEXT]     5xx (default 550 5.7.1, 554 at
 *                                      connect and end of data)
 *     tempfail [CODE] [ECODE] [TEXT]   4xx (default 450 4.7.1; at
 *                                      connect 421 and the session ends)
 *     disconnect [TEXT]         421 4.7.0 and close the session
 *     header NAME VALUE         add a header line to the message(s) and
 *                               go on with the next rule
 *
 * Rules of the smtp block come first, then those of the server block.
 * Within a phase the first rule that matches with a final action
 * decides.  Rules can live in included files ("include access.rules;"
 * inside smtp { } or server { }); a HUP re-reads them, and a broken
 * rule file leaves the running configuration in place.  Every decision
 * is logged with the rule (file:line) that made it.
 *
 * Regular expressions work on bytes (no UTF mode), are compiled once at
 * configuration time and JIT-compiled.  A bad one is a "file:line"
 * error with PCRE2's message and the offset.  So that a thousand rules
 * cost little, each rule's longest required literal (at least four
 * bytes) is extracted from its pattern and indexed by one of its
 * 4-byte substrings: a subject is checked only against the rules whose
 * substring it contains, plus the rules without a literal.  The filter
 * is conservative: a rule is skipped only when it cannot match.
 *
 * Hook priority -50: after policy_limits, before the DNS checks,
 * recipient validation, greylisting and relay control, so that an
 * operator's rule is the first word and a client refused here costs no
 * DNS lookup.
 */

#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>

#include "postern_module.h"

#define ACCESS_PRIORITY      -50
#define ACCESS_GRAM          4
/* access_apply(): a "header" rule matched, evaluation goes on (a value
 * no rule returns to the core) */
#define ACCESS_GO_ON         PST_HOOK_PENDING

typedef enum {
    ACCESS_T_CLIENT = 0,
    ACCESS_T_CLIENT_NAME,
    ACCESS_T_HELO,
    ACCESS_T_MAIL,
    ACCESS_T_AUTH,
    ACCESS_T_RCPT,
    ACCESS_T_HEADER,
    ACCESS_T_MAX
} access_target_e;

typedef enum {
    ACCESS_OP_REGEX = 0,
    ACCESS_OP_EQUAL,
    ACCESS_OP_CIDR
} access_op_e;

typedef enum {
    ACCESS_A_ACCEPT = 0,
    ACCESS_A_PASS,
    ACCESS_A_REJECT,
    ACCESS_A_TEMPFAIL,
    ACCESS_A_DISCONNECT,
    ACCESS_A_HEADER
} access_action_e;

typedef struct {
    pst_str_t                    pattern;     /* as written */
    const char                  *op_text;     /* "~*", "=", "" */
    pst_str_t                    literal;     /* lowercase, or len 0 */
    pcre2_code                  *re;
    pst_cidr_t                   cidr;
    const char                  *file;
    pst_uint_t                   line;
    uint8_t                      target;
    uint8_t                      op;
    uint8_t                      action;
    unsigned                     negate:1;
    unsigned                     jit:1;
    int                          code;
    const char                  *ecode;
    pst_str_t                    text;
    pst_str_t                    hname;
    pst_str_t                    hvalue;
} access_rule_t;

/* The rules of one target: those always checked, and the others by
 * their indexed 4-byte substring. */
typedef struct {
    uint32_t                    *always;      /* rule numbers, in order */
    pst_uint_t                   nalways;
    uint32_t                    *slot_gram;   /* open addressing table */
    uint32_t                    *slot_first;  /* into entries */
    uint32_t                    *slot_count;
    uint32_t                     mask;        /* 0: no table */
    uint32_t                    *entries;     /* rule numbers by gram */
} access_index_t;

typedef struct {
    pst_array_t                 *rules;       /* access_rule_t */
    access_index_t               index[ACCESS_T_MAX];
    pst_uint_t                   nrules;
    unsigned                     has[ACCESS_T_MAX];
} access_conf_t;

/* Headers from connect/HELO rules, waiting for a transaction. */
typedef struct {
    pst_array_t                 *headers;     /* access_rule_t * */
} access_session_t;

/* Scratch of this process (never configuration state). */
static pcre2_match_data  *access_md;
static uint32_t          *access_cand;
static uint32_t          *access_stamp;
static uint32_t           access_gen;
static pst_uint_t         access_scratch;
static u_char            *access_low;
static size_t             access_low_size;

static const char  *access_targets[] = {
    "client", "client_name", "helo", "mail", "auth", "rcpt", "header"
};

static const char  *access_actions[] = {
    "accept", "pass", "reject", "tempfail", "disconnect", "header"
};


static void *access_create_conf(pst_conf_t *cf);
static char *access_merge_conf(pst_conf_t *cf, void *prev, void *conf);
static char *access_rule_directive(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf);
static pst_verdict_e access_connect(pst_call_t *call, void *conf);
static pst_verdict_e access_helo(pst_call_t *call, void *conf);
static pst_verdict_e access_mail(pst_call_t *call, void *conf);
static pst_verdict_e access_rcpt(pst_call_t *call, void *conf);
static pst_verdict_e access_message(pst_call_t *call, void *conf);


static const pst_command_t  access_commands[] = {
    { "access_rule", PST_CONF_ANY_SMTP | PST_CONF_2MORE,
      access_rule_directive, PST_SRV_CONF, 0, NULL },
    pst_null_command
};

static const pst_hook_t  access_hooks[] = {
    { PST_PHASE_CONNECT, access_connect, ACCESS_PRIORITY },
    { PST_PHASE_HELO, access_helo, ACCESS_PRIORITY },
    { PST_PHASE_MAIL, access_mail, ACCESS_PRIORITY },
    { PST_PHASE_RCPT, access_rcpt, ACCESS_PRIORITY },
    { PST_PHASE_MESSAGE, access_message, ACCESS_PRIORITY },
    pst_null_hook
};

PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "policy_access",
    .version = "1.0",
    .description = "ordered PCRE2 and CIDR access rules",
    .commands = access_commands,
    .create_srv_conf = access_create_conf,
    .merge_srv_conf = access_merge_conf,
    .hooks = access_hooks,
};


/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *
access_create_conf(pst_conf_t *cf)
{
    access_conf_t  *c;

    c = pst_pcalloc(pst_conf_pool(cf), sizeof(access_conf_t));
    if (c == NULL) {
        return NULL;
    }
    c->rules = PST_CONF_UNSET_PTR;
    return c;
}


static void
access_free_code(void *data)
{
    pcre2_code_free(data);
}


static int
access_target(const pst_str_t *s)
{
    int  i;

    for (i = 0; i < ACCESS_T_MAX; i++) {
        if (strlen(access_targets[i]) == s->len
            && memcmp(access_targets[i], s->data, s->len) == 0)
        {
            return i;
        }
    }
    return -1;
}


static int
access_eq(const pst_str_t *s, const char *word)
{
    return strlen(word) == s->len && memcmp(word, s->data, s->len) == 0;
}


static int
access_is_ecode(const pst_str_t *s, int cls)
{
    pst_uint_t  i, dots = 0;

    if (s->len < 5 || s->len > 9 || s->data[0] != '0' + cls
        || s->data[1] != '.')
    {
        return 0;
    }
    for (i = 2; i < s->len; i++) {
        if (s->data[i] == '.') {
            if (s->data[i - 1] == '.') {
                return 0;
            }
            dots++;
        } else if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }
    }
    return dots == 1 && s->data[s->len - 1] != '.';
}


static int
access_is_code(const pst_str_t *s)
{
    return s->len == 3 && s->data[0] >= '2' && s->data[0] <= '5'
           && s->data[1] >= '0' && s->data[1] <= '9'
           && s->data[2] >= '0' && s->data[2] <= '9';
}


/*
 * The longest run of bytes that every match of the pattern must contain
 * (lowercased), or len 0.  Conservative by construction: a pattern with
 * a top-level alternation, extended mode, \Q or a leading (* verb gives
 * none; groups, classes, escapes other than an escaped punctuation
 * character, and anything a quantifier makes optional end a run.
 */
static void
access_literal(pst_pool_t *pool, const pst_str_t *pat, pst_str_t *lit)
{
    u_char   run[256], best[256];
    size_t   rn, bn, i, n;
    int      depth;
    u_char   c;

    lit->len = 0;
    lit->data = NULL;
    n = pat->len;
    rn = 0;
    bn = 0;

#define access_end_run()                                                     \
    do { if (rn > bn) { memcpy(best, run, rn); bn = rn; } rn = 0; } while (0)

    for (i = 0; i + 1 < n; i++) {
        if (pat->data[i] == '\\') {
            /* \Q quotes, and escapes whose argument follows them
             * (\x41, \g1, \k<n>, \cA, \pL, \0, \1...) would look
             * like literal text */
            if (strchr("QgkxocpPNu0123456789", pat->data[i + 1]) != NULL) {
                return;
            }
            i++;
            continue;
        }
        if (pat->data[i] == '(' && pat->data[i + 1] == '*') {
            return;
        }
        if (pat->data[i] == '(' && pat->data[i + 1] == '?'
            && memchr(pat->data + i, 'x', n - i) != NULL)
        {
            /* an inline option group might switch extended mode on */
            size_t  k;

            for (k = i + 2; k < n && pat->data[k] != ')'
                            && pat->data[k] != ':'; k++)
            {
                if (pat->data[k] == 'x') {
                    return;
                }
            }
        }
    }

    depth = 0;

    for (i = 0; i < n; i++) {
        c = pat->data[i];

        if (c == '\\') {
            if (i + 1 >= n) {
                return;
            }
            c = pat->data[++i];
            if (depth == 0 && !((c >= 'a' && c <= 'z') || (c >= 'A'
                && c <= 'Z') || (c >= '0' && c <= '9')) && c >= 0x20
                && c < 0x7f)
            {
                goto literal;
            }
            if (depth == 0) {
                access_end_run();
            }
            continue;
        }

        if (c == '[') {
            /* a class: skip to its end ("[]..." and "[^]..." hold ']') */
            i++;
            if (i < n && pat->data[i] == '^') {
                i++;
            }
            if (i < n && pat->data[i] == ']') {
                i++;
            }
            while (i < n && pat->data[i] != ']') {
                if (pat->data[i] == '\\') {
                    i++;
                } else if (pat->data[i] == '[' && i + 1 < n
                           && pat->data[i + 1] == ':')
                {
                    const u_char  *e;

                    e = (const u_char *) strstr((const char *) pat->data + i,
                                                ":]");
                    if (e != NULL && e < pat->data + n) {
                        i = (size_t) (e - pat->data) + 1;
                    }
                }
                i++;
            }
            if (depth == 0) {
                access_end_run();
            }
            continue;
        }

        if (c == '(') {
            depth++;
            if (depth == 1) {
                access_end_run();
            }
            continue;
        }

        if (c == ')') {
            if (depth == 0) {
                return;                     /* unbalanced: no literal */
            }
            depth--;
            continue;
        }

        if (depth > 0) {
            continue;
        }

        if (c == '|') {
            return;                         /* top-level alternation */
        }

        if (c == '*' || c == '?' || c == '{') {
            /* the previous atom is optional (or its count is unknown) */
            if (rn > 0) {
                rn--;
            }
            access_end_run();
            if (c == '{') {
                /* a count, or a literal brace: either way not taken */
                while (i + 1 < n && pat->data[i + 1] != '}') {
                    i++;
                }
            }
            continue;
        }

        if (c == '+') {
            /* the previous atom is required once; the run ends there */
            access_end_run();
            continue;
        }

        if (c == '.' || c == '^' || c == '$' || c < 0x20 || c >= 0x7f) {
            access_end_run();
            continue;
        }

        if (c == '}') {
            access_end_run();
            continue;
        }

    literal:

        if (rn < sizeof(run)) {
            run[rn++] = (u_char) ((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
        }
    }

    if (depth != 0) {
        return;
    }

    access_end_run();

#undef access_end_run

    if (bn < ACCESS_GRAM) {
        return;
    }

    lit->data = pst_palloc(pool, bn);
    if (lit->data != NULL) {
        memcpy(lit->data, best, bn);
        lit->len = bn;
    }
}


static char *
access_compile(pst_conf_t *cf, access_rule_t *r, int caseless)
{
    PCRE2_UCHAR  msg[256];
    PCRE2_SIZE   off;
    int          err;

    r->re = pcre2_compile(r->pattern.data, r->pattern.len,
                          caseless ? PCRE2_CASELESS : 0, &err, &off, NULL);
    if (r->re == NULL) {
        pcre2_get_error_message(err, msg, sizeof(msg));
        pst_conf_error(cf, "invalid regular expression \"%s\" in"
                       " \"access_rule\": %s at offset %zu",
                       r->pattern.data, (char *) msg, (size_t) off);
        return PST_CONF_ERROR;
    }

    if (pst_pool_cleanup_add(pst_conf_pool(cf), access_free_code, r->re)
        != PST_OK)
    {
        pcre2_code_free(r->re);
        r->re = NULL;
        return PST_CONF_ERROR;
    }

    /* without JIT (an unsupported CPU) the interpreter still works */
    r->jit = (pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE) == 0);

    return PST_CONF_OK;
}


/* "header NAME VALUE": one line of at most 998 octets (RFC 5322 2.1.1),
 * no CR, LF or other control character but TAB (a value with CR LF
 * would add header lines of its own). */
static char *
access_header_value(pst_conf_t *cf, access_rule_t *r)
{
    pst_uint_t  k;

    if (r->hname.len + 2 + r->hvalue.len > 998) {
        pst_conf_error(cf, "header \"%s\": the line would be %zu bytes"
                       " long, the limit is 998 (RFC 5322 2.1.1)",
                       r->hname.data, r->hname.len + 2 + r->hvalue.len);
        return PST_CONF_ERROR;
    }

    for (k = 0; k < r->hvalue.len; k++) {
        if ((r->hvalue.data[k] < 0x20 && r->hvalue.data[k] != '\t')
            || r->hvalue.data[k] == 0x7f)
        {
            pst_conf_error(cf, "header \"%s\": control character (byte"
                           " %lu) in the value: CR, LF and other control"
                           " characters are not allowed", r->hname.data,
                           (unsigned long) k + 1);
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* reject/tempfail [CODE] [ECODE] [TEXT] */
static char *
access_reply_args(pst_conf_t *cf, access_rule_t *r, pst_str_t *args,
    pst_uint_t i, pst_uint_t n)
{
    int  cls = (r->action == ACCESS_A_REJECT) ? 5 : 4;

    if (i < n && access_is_code(&args[i])) {
        r->code = (args[i].data[0] - '0') * 100 + (args[i].data[1] - '0') * 10
                  + (args[i].data[2] - '0');
        if (r->code / 100 != cls) {
            pst_conf_error(cf, "\"%s\" needs a %dxx reply code, not %s",
                           access_actions[r->action], cls, args[i].data);
            return PST_CONF_ERROR;
        }
        i++;
    }

    if (i < n && args[i].len > 0 && args[i].data[0] >= '0'
        && args[i].data[0] <= '9')
    {
        if (!access_is_ecode(&args[i], cls)) {
            pst_conf_error(cf, "invalid enhanced status code \"%s\" for"
                           " \"%s\" (use %d.X.Y, RFC 3463)", args[i].data,
                           access_actions[r->action], cls);
            return PST_CONF_ERROR;
        }
        r->ecode = (const char *) args[i].data;
        i++;
    }

    if (i < n) {
        r->text = args[i];
        i++;
        if (pst_conf_check_text(cf, "access_rule", &r->text,
                                PST_CONF_TEXT_MAX) != PST_OK)
        {
            return PST_CONF_ERROR;
        }
    }

    if (i < n) {
        pst_conf_error(cf, "unexpected \"%s\" in \"access_rule\": the reply"
                       " text must be one (quoted) argument", args[i].data);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


static char *
access_rule_directive(pst_conf_t *cf, const pst_command_t *cmd, void *conf)
{
    access_conf_t  *ac = conf;
    access_rule_t  *r;
    pst_str_t      *args, *op, act;
    pst_uint_t      n, i, k;
    int             t, caseless;
    char           *rv;

    (void) cmd;

    if (ac->rules == PST_CONF_UNSET_PTR) {
        ac->rules = pst_array_create(pst_conf_pool(cf), 16,
                                     sizeof(access_rule_t));
        if (ac->rules == NULL) {
            return PST_CONF_ERROR;
        }
    }

    args = pst_conf_args(cf, &n);

    t = access_target(&args[1]);
    if (t < 0) {
        pst_conf_error(cf, "unknown target \"%s\" in \"access_rule\" (use"
                       " client, client_name, helo, mail, auth, rcpt or"
                       " header)", args[1].data);
        return PST_CONF_ERROR;
    }

    r = pst_array_push(ac->rules);
    if (r == NULL) {
        return PST_CONF_ERROR;
    }
    memset(r, 0, sizeof(access_rule_t));
    r->target = (uint8_t) t;
    r->file = pst_conf_position(cf, &r->line);

    /* MATCH */
    op = &args[2];
    r->op_text = (const char *) op->data;
    caseless = 0;
    i = 3;

    if (op->len == 1 && op->data[0] == '~') {
        r->op = ACCESS_OP_REGEX;
    } else if (op->len == 2 && op->data[0] == '~' && op->data[1] == '*') {
        r->op = ACCESS_OP_REGEX;
        caseless = 1;
    } else if (op->len == 2 && op->data[0] == '!' && op->data[1] == '~') {
        r->op = ACCESS_OP_REGEX;
        r->negate = 1;
    } else if (op->len == 3 && memcmp(op->data, "!~*", 3) == 0) {
        r->op = ACCESS_OP_REGEX;
        r->negate = 1;
        caseless = 1;
    } else if (op->len == 1 && op->data[0] == '=') {
        r->op = ACCESS_OP_EQUAL;
    } else if (op->len == 2 && op->data[0] == '!' && op->data[1] == '=') {
        r->op = ACCESS_OP_EQUAL;
        r->negate = 1;
    } else if (t == ACCESS_T_CLIENT) {
        pst_str_t  c = *op;

        r->op = ACCESS_OP_CIDR;
        if (c.len > 0 && c.data[0] == '!') {
            r->negate = 1;
            c.data++;
            c.len--;
        }
        if (pst_cidr_parse(&c, &r->cidr) != PST_OK) {
            pst_conf_error(cf, "invalid address range \"%s\" in"
                           " \"access_rule client\"", op->data);
            return PST_CONF_ERROR;
        }
        r->pattern = *op;
        r->op_text = "";

    } else {
        pst_conf_error(cf, "invalid match \"%s\" in \"access_rule\" (use ~,"
                       " ~*, !~, !~*, = or !=)", op->data);
        return PST_CONF_ERROR;
    }

    if (r->op != ACCESS_OP_CIDR) {
        if (n < 5) {
            return "needs a target, a match and an action";
        }
        r->pattern = args[3];
        i = 4;
    } else {
        i = 3;
        if (n < 4) {
            return "needs a target, a match and an action";
        }
    }

    if (r->op == ACCESS_OP_REGEX) {
        rv = access_compile(cf, r, caseless);
        if (rv != PST_CONF_OK) {
            return rv;
        }
        if (!r->negate) {
            access_literal(pst_conf_pool(cf), &r->pattern, &r->literal);
        }

    } else if (r->op == ACCESS_OP_EQUAL && !r->negate) {
        r->literal.len = r->pattern.len;
        r->literal.data = pst_pstrdup(pst_conf_pool(cf), &r->pattern);
        if (r->literal.data == NULL) {
            return PST_CONF_ERROR;
        }
        for (k = 0; k < r->literal.len; k++) {
            if (r->literal.data[k] >= 'A' && r->literal.data[k] <= 'Z') {
                r->literal.data[k] |= 0x20;
            }
        }
        if (r->literal.len < ACCESS_GRAM) {
            r->literal.len = 0;
        }
    }

    /* ACTION */
    act = args[i++];

    if (access_eq(&act, "accept")) {
        r->action = ACCESS_A_ACCEPT;
    } else if (access_eq(&act, "pass")) {
        r->action = ACCESS_A_PASS;
    } else if (access_eq(&act, "reject")) {
        r->action = ACCESS_A_REJECT;
        return access_reply_args(cf, r, args, i, n);
    } else if (access_eq(&act, "tempfail")) {
        r->action = ACCESS_A_TEMPFAIL;
        return access_reply_args(cf, r, args, i, n);
    } else if (access_eq(&act, "disconnect")) {
        r->action = ACCESS_A_DISCONNECT;
        if (i < n) {
            r->text = args[i++];
            if (pst_conf_check_text(cf, "access_rule", &r->text,
                                    PST_CONF_TEXT_MAX) != PST_OK)
            {
                return PST_CONF_ERROR;
            }
        }
    } else if (access_eq(&act, "header")) {
        r->action = ACCESS_A_HEADER;
        if (n - i != 2) {
            return "\"header\" takes a name and a value";
        }
        r->hname = args[i++];
        r->hvalue = args[i++];
        for (k = 0; k < r->hname.len; k++) {
            if (r->hname.data[k] < 33 || r->hname.data[k] > 126
                || r->hname.data[k] == ':')
            {
                pst_conf_error(cf, "invalid header name \"%s\"",
                               r->hname.data);
                return PST_CONF_ERROR;
            }
        }
        return access_header_value(cf, r);
    } else {
        pst_conf_error(cf, "unknown action \"%s\" in \"access_rule\" (use"
                       " accept, pass, reject, tempfail, disconnect or"
                       " header)", act.data);
        return PST_CONF_ERROR;
    }

    if (i < n) {
        pst_conf_error(cf, "unexpected \"%s\" after \"%s\"", args[i].data,
                       act.data);
        return PST_CONF_ERROR;
    }

    return PST_CONF_OK;
}


static uint32_t
access_gram(const u_char *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16)
           | ((uint32_t) p[3] << 24);
}


static uint32_t
access_hash(uint32_t g)
{
    g ^= g >> 16;
    g *= 0x7feb352d;
    g ^= g >> 15;
    g *= 0x846ca68b;
    g ^= g >> 16;
    return g;
}


/* Slot of a gram in the table: its own, or the empty one it would go. */
static uint32_t
access_slot(const access_index_t *ix, uint32_t g)
{
    uint32_t  h;

    for (h = access_hash(g) & ix->mask; ix->slot_count[h] != 0
                                        && ix->slot_gram[h] != g;
         h = (h + 1) & ix->mask)
    {
        /* void */
    }
    return h;
}


/*
 * Index one target's rules.  Each rule with a literal is filed under
 * the 4-byte substring of its literal that the fewest rules use so far:
 * rules that share a domain suffix or a prefix then still spread over
 * many slots.
 */
static int
access_build_index(pst_pool_t *pool, access_conf_t *ac, int t)
{
    access_index_t  *ix = &ac->index[t];
    access_rule_t   *r = ac->rules->elts;
    uint32_t        *gram_of, *fill, h, g, best, bestc;
    pst_uint_t       i, k, nidx, size;

    nidx = 0;
    ix->nalways = 0;
    for (i = 0; i < ac->nrules; i++) {
        if (r[i].target != t) {
            continue;
        }
        ac->has[t] = 1;
        if (r[i].literal.len >= ACCESS_GRAM) {
            nidx++;
        } else {
            ix->nalways++;
        }
    }

    ix->always = pst_palloc(pool, (ix->nalways + 1) * sizeof(uint32_t));
    gram_of = pst_palloc(pool, (nidx + 1) * sizeof(uint32_t));
    if (ix->always == NULL || gram_of == NULL) {
        return PST_ERROR;
    }

    ix->mask = 0;
    if (nidx > 0) {
        for (size = 16; size < nidx * 4; size <<= 1) {
            /* void */
        }
        ix->mask = (uint32_t) size - 1;
        ix->slot_gram = pst_pcalloc(pool, size * sizeof(uint32_t));
        ix->slot_first = pst_pcalloc(pool, size * sizeof(uint32_t));
        ix->slot_count = pst_pcalloc(pool, size * sizeof(uint32_t));
        ix->entries = pst_palloc(pool, nidx * sizeof(uint32_t));
        fill = pst_pcalloc(pool, size * sizeof(uint32_t));
        if (ix->slot_gram == NULL || ix->slot_first == NULL
            || ix->slot_count == NULL || ix->entries == NULL || fill == NULL)
        {
            return PST_ERROR;
        }
    } else {
        fill = NULL;
    }

    /* pass 1: choose a gram per rule, count rules per slot */
    ix->nalways = 0;
    nidx = 0;
    for (i = 0; i < ac->nrules; i++) {
        if (r[i].target != t) {
            continue;
        }
        if (r[i].literal.len < ACCESS_GRAM) {
            ix->always[ix->nalways++] = (uint32_t) i;
            continue;
        }
        best = 0;
        bestc = UINT32_MAX;
        for (k = 0; k + ACCESS_GRAM <= r[i].literal.len; k++) {
            g = access_gram(r[i].literal.data + k);
            h = access_slot(ix, g);
            if (ix->slot_count[h] < bestc) {
                bestc = ix->slot_count[h];
                best = g;
            }
        }
        h = access_slot(ix, best);
        ix->slot_gram[h] = best;
        ix->slot_count[h]++;
        gram_of[nidx++] = best;
    }

    if (nidx == 0) {
        return PST_OK;
    }

    /* pass 2: lay the rule numbers out slot by slot, in rule order */
    k = 0;
    for (h = 0; h <= ix->mask; h++) {
        ix->slot_first[h] = (uint32_t) k;
        k += ix->slot_count[h];
    }

    nidx = 0;
    for (i = 0; i < ac->nrules; i++) {
        if (r[i].target != t || r[i].literal.len < ACCESS_GRAM) {
            continue;
        }
        h = access_slot(ix, gram_of[nidx++]);
        ix->entries[ix->slot_first[h] + fill[h]++] = (uint32_t) i;
    }

    return PST_OK;
}


static char *
access_merge_conf(pst_conf_t *cf, void *parent, void *child)
{
    access_conf_t  *prev = parent, *conf = child;
    pst_array_t    *all;
    access_rule_t  *r;
    pst_uint_t      i;
    int             t;

    /* the smtp block's rules first, then the server's own */
    if (prev->rules != PST_CONF_UNSET_PTR && prev->rules != NULL) {
        all = pst_array_create(pst_conf_pool(cf), prev->rules->nelts + 16,
                               sizeof(access_rule_t));
        if (all == NULL) {
            return PST_CONF_ERROR;
        }
        r = prev->rules->elts;
        for (i = 0; i < prev->rules->nelts; i++) {
            *(access_rule_t *) pst_array_push(all) = r[i];
        }
        if (conf->rules != PST_CONF_UNSET_PTR) {
            r = conf->rules->elts;
            for (i = 0; i < conf->rules->nelts; i++) {
                *(access_rule_t *) pst_array_push(all) = r[i];
            }
        }
        conf->rules = all;
    }

    if (conf->rules == PST_CONF_UNSET_PTR) {
        conf->rules = NULL;
        return PST_CONF_OK;
    }

    conf->nrules = conf->rules->nelts;

    for (t = 0; t < ACCESS_T_MAX; t++) {
        if (access_build_index(pst_conf_pool(cf), conf, t) != PST_OK) {
            return PST_CONF_ERROR;
        }
    }

    return PST_CONF_OK;
}


/* ------------------------------------------------------------------ */
/* Matching                                                            */

typedef struct {
    const pst_str_t             *values;      /* subjects of the target */
    pst_uint_t                   nvalues;
    const struct sockaddr       *sa;          /* client rules */
} access_subject_t;


static int
access_scratch_init(pst_uint_t nrules)
{
    if (access_md == NULL) {
        access_md = pcre2_match_data_create(1, NULL);
        if (access_md == NULL) {
            return PST_ERROR;
        }
    }

    if (access_scratch < nrules) {
        free(access_cand);
        free(access_stamp);
        access_cand = malloc(nrules * sizeof(uint32_t));
        access_stamp = calloc(nrules, sizeof(uint32_t));
        if (access_cand == NULL || access_stamp == NULL) {
            access_scratch = 0;
            return PST_ERROR;
        }
        access_scratch = nrules;
        access_gen = 0;
    }

    if (++access_gen == 0) {
        memset(access_stamp, 0, access_scratch * sizeof(uint32_t));
        access_gen = 1;
    }

    return PST_OK;
}


static const u_char *
access_lower(const pst_str_t *v)
{
    size_t  i;

    if (access_low_size < v->len) {
        free(access_low);
        access_low_size = v->len < 1024 ? 1024 : v->len;
        access_low = malloc(access_low_size);
        if (access_low == NULL) {
            access_low_size = 0;
            return NULL;
        }
    }

    for (i = 0; i < v->len; i++) {
        access_low[i] = (v->data[i] >= 'A' && v->data[i] <= 'Z')
                        ? (u_char) (v->data[i] | 0x20) : v->data[i];
    }

    return access_low;
}


static void
access_add(pst_uint_t *n, uint32_t rule)
{
    if (access_stamp[rule] != access_gen) {
        access_stamp[rule] = access_gen;
        access_cand[(*n)++] = rule;
    }
}


/* Candidates of one target: its always-checked rules and those whose
 * gram occurs in one of the subjects. */
static void
access_candidates(const access_index_t *ix, const access_subject_t *sub,
    pst_uint_t *n)
{
    const u_char  *low;
    pst_uint_t     i, v;
    uint32_t       h, k, g;
    size_t         j;

    for (i = 0; i < ix->nalways; i++) {
        access_add(n, ix->always[i]);
    }

    if (ix->mask == 0) {
        return;
    }

    for (v = 0; v < sub->nvalues; v++) {
        if (sub->values[v].len < ACCESS_GRAM) {
            continue;
        }
        low = access_lower(&sub->values[v]);
        if (low == NULL) {
            return;
        }
        for (j = 0; j + ACCESS_GRAM <= sub->values[v].len; j++) {
            g = access_gram(low + j);
            h = access_slot(ix, g);
            for (k = 0; k < ix->slot_count[h]; k++) {
                access_add(n, ix->entries[ix->slot_first[h] + k]);
            }
        }
    }
}


/* Rule order.  The candidates come mostly sorted (the always-checked
 * rules of each target in order, a few indexed ones after them), which
 * insertion sort handles in about one pass. */
static void
access_sort(uint32_t *a, pst_uint_t n)
{
    pst_uint_t  i, j;
    uint32_t    v;

    for (i = 1; i < n; i++) {
        v = a[i];
        for (j = i; j > 0 && a[j - 1] > v; j--) {
            a[j] = a[j - 1];
        }
        a[j] = v;
    }
}


static int
access_match_one(const access_rule_t *r, const pst_str_t *v)
{
    int  rc;

    if (r->op == ACCESS_OP_EQUAL) {
        return v->len == r->pattern.len
               && pst_strncasecmp(v->data, r->pattern.data, v->len) == 0;
    }

    if (r->jit) {
        rc = pcre2_jit_match(r->re, v->data, v->len, 0, 0, access_md, NULL);
    } else {
        rc = pcre2_match(r->re, v->data, v->len, 0, 0, access_md, NULL);
    }

    if (rc >= 0) {
        return 1;
    }
    if (rc != PCRE2_ERROR_NOMATCH) {
        pst_log(PST_LOG_WARN, 0, "policy_access: rule %s:%lu: match error"
                " %d (treated as no match)", r->file,
                (unsigned long) r->line, rc);
    }
    return 0;
}


static int
access_match(const access_rule_t *r, const access_subject_t *sub)
{
    pst_uint_t  v;
    int         m = 0;

    if (r->op == ACCESS_OP_CIDR) {
        m = pst_cidr_match(&r->cidr, sub->sa);
    } else {
        for (v = 0; v < sub->nvalues && !m; v++) {
            m = access_match_one(r, &sub->values[v]);
        }
    }

    return r->negate ? !m : m;
}


/* ------------------------------------------------------------------ */
/* Actions                                                             */

static void
access_add_header(pst_session_t *s, const access_rule_t *r)
{
    if (pst_msg_add_header(s, (const char *) r->hname.data, "%.*s",
                           (int) r->hvalue.len, r->hvalue.data) != PST_OK)
    {
        pst_log_session(s, PST_LOG_WARN, "policy_access: rule %s:%lu: cannot"
                        " add header %s", r->file, (unsigned long) r->line,
                        r->hname.data);
    }
}


static void
access_defer_header(pst_session_t *s, const access_rule_t *r)
{
    access_session_t  *as;
    const access_rule_t  **h;

    as = pst_session_get_ctx(s, &postern_module);
    if (as == NULL) {
        as = pst_pcalloc(pst_session_pool(s), sizeof(access_session_t));
        if (as == NULL) {
            return;
        }
        as->headers = pst_array_create(pst_session_pool(s), 2,
                                       sizeof(access_rule_t *));
        if (as->headers == NULL) {
            return;
        }
        pst_session_set_ctx(s, &postern_module, as);
    }

    h = pst_array_push(as->headers);
    if (h != NULL) {
        *h = r;
    }
}


static pst_verdict_e
access_apply(pst_call_t *call, const access_rule_t *r, const char *what,
    const pst_str_t *value)
{
    pst_session_t  *s = pst_call_session(call);
    pst_phase_e     ph = pst_call_phase(call);
    int             level, code;
    const char     *ecode, *text;
    pst_str_t       shown;

    /* client text in the log: bounded, and never a header's value */
    shown.len = 0;
    shown.data = (u_char *) "";
    if (value != NULL && r->target != ACCESS_T_HEADER) {
        shown = *value;
        if (shown.len > 200) {
            shown.len = 200;
        }
    }

    level = (r->action == ACCESS_A_REJECT || r->action == ACCESS_A_TEMPFAIL
             || r->action == ACCESS_A_DISCONNECT)
            ? PST_LOG_NOTICE : PST_LOG_INFO;

    pst_log_session(s, level, "policy_access: rule %s:%lu (%s %s%s%s) %s %s"
                    "<%.*s>", r->file, (unsigned long) r->line,
                    access_targets[r->target], r->op_text,
                    r->op_text[0] ? " " : "", r->pattern.data,
                    access_actions[r->action], what, (int) shown.len,
                    shown.data);

    switch (r->action) {

    case ACCESS_A_ACCEPT:
        return PST_HOOK_ACCEPT;

    case ACCESS_A_PASS:
        return PST_HOOK_CONTINUE;

    case ACCESS_A_HEADER:
        if (pst_tx_id(s) != NULL) {
            access_add_header(s, r);
        } else {
            access_defer_header(s, r);
        }
        return ACCESS_GO_ON;

    case ACCESS_A_REJECT:
        code = r->code ? r->code
               : (ph == PST_PHASE_CONNECT || ph == PST_PHASE_MESSAGE)
                 ? 554 : 550;
        ecode = r->ecode ? r->ecode : "5.7.1";
        text = r->text.len ? (const char *) r->text.data : "Access denied";
        pst_call_reply(call, code, ecode, "%s", text);
        return PST_HOOK_REJECT;

    case ACCESS_A_TEMPFAIL:
        code = r->code ? r->code : (ph == PST_PHASE_CONNECT) ? 421 : 450;
        ecode = r->ecode ? r->ecode : "4.7.1";
        text = r->text.len ? (const char *) r->text.data
                           : "Try again later";
        pst_call_reply(call, code, ecode, "%s", text);
        return PST_HOOK_TEMPFAIL;

    default: /* ACCESS_A_DISCONNECT */
        text = r->text.len ? (const char *) r->text.data
                           : "Closing connection";
        pst_call_reply(call, 421, "4.7.0", "%s", text);
        return PST_HOOK_DISCONNECT;
    }
}


/*
 * Run the rules of up to two targets (one phase) in rule order.  The
 * first rule with a final action decides; "header" rules add their
 * line and evaluation goes on.
 */
static pst_verdict_e
access_run(pst_call_t *call, access_conf_t *ac, int t1,
    const access_subject_t *s1, int t2, const access_subject_t *s2,
    const char *what, const pst_str_t *shown)
{
    const access_rule_t  *r;
    pst_verdict_e         v;
    pst_uint_t            n, i;

    if (ac->rules == NULL || (!ac->has[t1] && (t2 < 0 || !ac->has[t2]))) {
        return PST_HOOK_CONTINUE;
    }

    if (access_scratch_init(ac->nrules) != PST_OK) {
        pst_log_session(pst_call_session(call), PST_LOG_ERR,
                        "policy_access: out of memory");
        pst_call_reply(call, 451, "4.3.0", "Local error, try again later");
        return PST_HOOK_TEMPFAIL;
    }

    n = 0;
    if (s1 != NULL) {
        access_candidates(&ac->index[t1], s1, &n);
    }
    if (t2 >= 0 && s2 != NULL) {
        access_candidates(&ac->index[t2], s2, &n);
    }
    if (n == 0) {
        return PST_HOOK_CONTINUE;
    }
    access_sort(access_cand, n);

    r = ac->rules->elts;
    for (i = 0; i < n; i++) {
        const access_rule_t     *rule = &r[access_cand[i]];
        const access_subject_t  *sub = (rule->target == t1) ? s1 : s2;

        if (!access_match(rule, sub)) {
            continue;
        }

        v = access_apply(call, rule, what,
                         rule->target == ACCESS_T_CLIENT
                         ? pst_session_client_addr(pst_call_session(call))
                         : (sub->nvalues ? &sub->values[0] : shown));
        if (v != ACCESS_GO_ON) {
            return v;
        }
    }

    return PST_HOOK_CONTINUE;
}


/* ------------------------------------------------------------------ */
/* Hooks                                                               */

static pst_verdict_e
access_connect(pst_call_t *call, void *conf)
{
    pst_session_t     *s = pst_call_session(call);
    access_subject_t   c, cn;
    const pst_str_t   *name;
    static pst_str_t   unknown = pst_string("unknown");

    c.values = pst_session_client_addr(s);
    c.nvalues = 1;
    c.sa = pst_session_client_sockaddr(s);

    name = pst_session_client_name(s);
    cn.values = name ? name : &unknown;
    cn.nvalues = 1;
    cn.sa = c.sa;

    return access_run(call, conf, ACCESS_T_CLIENT, &c, ACCESS_T_CLIENT_NAME,
                      &cn, "client ", NULL);
}


static pst_verdict_e
access_helo(pst_call_t *call, void *conf)
{
    pst_session_t     *s = pst_call_session(call);
    access_subject_t   h;
    static pst_str_t   empty = pst_string("");

    h.values = pst_session_helo(s);
    if (h.values == NULL) {
        h.values = &empty;
    }
    h.nvalues = 1;
    h.sa = NULL;

    return access_run(call, conf, ACCESS_T_HELO, &h, -1, NULL, "helo ",
                      NULL);
}


static pst_verdict_e
access_mail(pst_call_t *call, void *conf)
{
    pst_session_t         *s = pst_call_session(call);
    access_session_t      *as;
    access_subject_t       m, a;
    const access_rule_t  **h;
    pst_uint_t             i;

    /* lines that connect and HELO rules asked for: every transaction */
    as = pst_session_get_ctx(s, &postern_module);
    if (as != NULL) {
        h = as->headers->elts;
        for (i = 0; i < as->headers->nelts; i++) {
            access_add_header(s, h[i]);
        }
    }

    m.values = pst_tx_sender(s);
    m.nvalues = (m.values != NULL);
    m.sa = NULL;

    a.values = pst_session_auth_id(s);
    a.nvalues = (a.values != NULL);
    a.sa = NULL;

    return access_run(call, conf, ACCESS_T_MAIL, &m, ACCESS_T_AUTH,
                      a.nvalues ? &a : NULL, "sender ", NULL);
}


static pst_verdict_e
access_rcpt(pst_call_t *call, void *conf)
{
    access_subject_t  r;

    r.values = pst_call_rcpt(call);
    r.nvalues = (r.values != NULL);
    r.sa = NULL;

    return access_run(call, conf, ACCESS_T_RCPT, &r, -1, NULL,
                      "recipient ", NULL);
}


/* Header lines as "Name: value" with folding undone. */
static pst_verdict_e
access_message(pst_call_t *call, void *conf)
{
    access_conf_t     *ac = conf;
    pst_session_t     *s = pst_call_session(call);
    access_subject_t   hs;
    pst_array_t       *lines;
    pst_str_t          name, value, *l;
    pst_uint_t         i;
    size_t             k;
    u_char            *p;
    static pst_str_t   none = pst_string("");

    if (ac->rules == NULL || !ac->has[ACCESS_T_HEADER]) {
        return PST_HOOK_CONTINUE;
    }

    lines = pst_array_create(pst_tx_pool(s), 16, sizeof(pst_str_t));
    if (lines == NULL) {
        return PST_HOOK_CONTINUE;
    }

    for (i = 0; pst_msg_header(s, i, &name, &value) == PST_OK; i++) {
        l = pst_array_push(lines);
        if (l == NULL) {
            break;
        }
        l->data = pst_palloc(pst_tx_pool(s), name.len + 2 + value.len);
        if (l->data == NULL) {
            break;
        }
        p = l->data;
        memcpy(p, name.data, name.len);
        p += name.len;
        *p++ = ':';
        *p++ = ' ';
        for (k = 0; k < value.len; k++) {
            if (value.data[k] == '\r' || value.data[k] == '\n') {
                continue;                  /* unfold: keep the WSP */
            }
            *p++ = value.data[k];
        }
        l->len = (size_t) (p - l->data);
    }

    hs.values = lines->elts;
    hs.nvalues = lines->nelts;
    hs.sa = NULL;

    return access_run(call, conf, ACCESS_T_HEADER, &hs, -1, NULL,
                      "message ", &none);
}
