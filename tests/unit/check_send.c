/*
 * check_send.c -- postern-send's composer and command line (core/send/):
 * options and their errors, address lists, header encoding and folding
 * parsed back, body encodings decoded back, a whole composed message
 * taken apart again, ready messages with -t, server specs.
 */

#include "check_util.h"
#include "check_suites.h"

#include "pst_send.h"


/* ------------------------------------------------------------------ */
/* helpers                                                             */

typedef struct {
    char       *buf;
    size_t      len;
    FILE       *f;
} mem_t;

static void
mem_open(mem_t *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    ck_assert_ptr_nonnull(m->f);
}

static char *
mem_close(mem_t *m)
{
    ck_assert_int_eq(fclose(m->f), 0);
    return m->buf;
}

static int
parse(pst_send_opts_t *o, const char *const *args, char *err, size_t size)
{
    char  *argv[64];
    int    argc = 0;

    argv[argc++] = "postern-send";
    while (*args != NULL) {
        argv[argc++] = (char *) *args++;
    }
    argv[argc] = NULL;
    return pst_send_opts_parse(o, argc, argv, err, size);
}

/* Every line of s (CRLF) is at most max octets. */
static void
assert_lines(const char *s, size_t max)
{
    const char  *nl;

    for ( ; *s; s = nl + 2) {
        nl = strstr(s, "\r\n");
        ck_assert_msg(nl != NULL, "a line without CRLF: \"%s\"", s);
        ck_assert_msg((size_t) (nl - s) <= max, "line of %zu > %zu: %.*s",
                      (size_t) (nl - s), max, (int) (nl - s), s);
        ck_assert_msg(memchr(s, '\n', (size_t) (nl - s)) == NULL,
                      "bare LF");
    }
}

/* Unfold in place: CRLF SP -> SP, the last CRLF -> LF. */
static void
unfold(char *s)
{
    char  *d = s;

    for ( ; *s; s++) {
        if (s[0] == '\r' && s[1] == '\n' && s[2] == ' ') {
            s++;
            continue;
        }
        if (s[0] == '\r' && s[1] == '\n') {
            continue;
        }
        *d++ = *s;
    }
    *d = '\0';
}

/* Unfold a field and decode its RFC 2047 B words (UTF-8): the text a
 * reader sees.  Words must be whole UTF-8. */
static void
decode_field(const char *field, char *out, size_t size)
{
    const char  *p, *q, *end;
    u_char       dec[256];
    ssize_t      n;
    size_t       o = 0;
    int          last_ew = 0;

    p = strchr(field, ':') + 1;
    while (*p == ' ') {
        p++;
    }
    end = field + strlen(field);
    while (p < end && o < size - 1) {
        if (strncmp(p, "\r\n", 2) == 0) {
            p += 2;
            continue;
        }
        if (strncmp(p, "=?UTF-8?B?", 10) == 0) {
            q = strstr(p + 10, "?=");
            ck_assert_ptr_nonnull(q);
            ck_assert_int_le(q + 2 - p, 75);
            n = pst_base64_decode(dec, (u_char *) p + 10,
                                  (size_t) (q - p - 10));
            ck_assert_int_ge(n, 1);
            /* no word starts inside a UTF-8 sequence */
            ck_assert_int_ne(dec[0] & 0xC0, 0x80);
            if (o > 0 && out[o - 1] == ' ' && last_ew) {
                o--;        /* white space between words is dropped */
            }
            memcpy(out + o, dec, (size_t) n);
            o += (size_t) n;
            p = q + 2;
            last_ew = 1;
            continue;
        }
        if (*p != ' ') {
            last_ew = 0;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}


/* ------------------------------------------------------------------ */
/* options                                                             */

START_TEST(test_opts_good)
{
    pst_send_opts_t  o;
    char             err[256];
    const char      *args[] = {
        "--from", "A <a@example.test>", "--to", "b@example.test",
        "--to", "\"Doe, John\" <j@example.test>, c@example.test",
        "--cc", "d@example.test", "--bcc", "e@example.test",
        "--subject", "s", "--header", "X-A: 1", "--attach", "f;type=a/b",
        "--server", "[::1]:2525", "--tls", "implicit", "--timeout", "2m",
        "--connect-timeout", "500ms", "--user", "u", "--auth", "xoauth2",
        "--notify",
        "success,FAILURE", "--ret", "hdrs", "--envid", "x", "-v", "-v",
        "--json", "--stop-on-rcpt-error", "extra@example.test", "-", NULL
    };

    ck_assert_int_eq(parse(&o, args, err, sizeof(err)), PST_OK);
    ck_assert_str_eq(o.from, "A <a@example.test>");
    ck_assert_uint_eq(o.to.n, 4);
    ck_assert_str_eq(o.to.v[1], "\"Doe, John\" <j@example.test>");
    ck_assert_str_eq(o.to.v[3], "extra@example.test");
    ck_assert_uint_eq(o.cc.n, 1);
    ck_assert_uint_eq(o.bcc.n, 1);
    ck_assert_uint_eq(o.headers.n, 1);
    ck_assert_str_eq(o.body_file, "-");
    ck_assert_int_eq(o.tls, PST_SEND_TLS_IMPLICIT);
    ck_assert_uint_eq(o.timeout, 120000);
    ck_assert_uint_eq(o.connect_timeout, 500);
    ck_assert_str_eq(o.auth, "xoauth2");
    ck_assert_int_eq(o.verbose, 2);
    ck_assert_int_eq(o.json, 1);
    ck_assert_int_eq(o.stop_on_rcpt_error, 1);
    pst_send_opts_free(&o);
}
END_TEST


static const struct {
    const char  *args[12];
    const char  *why;
} opts_bad[] = {
    { { "--to", "b@x", NULL }, "no sender" },
    { { "--from", "a@x", NULL }, "no recipient" },
    { { "--from", "a@x", "--to", "b@x", "--tls", "maybe", NULL }, "--tls" },
    { { "--from", "a@x", "--to", "b@x", "--importance", "max", NULL },
      "--importance" },
    { { "--from", "a@x", "--to", "b@x", "--priority", "now", NULL },
      "--priority" },
    { { "--from", "a@x", "--to", "b@x", "--sensitivity", "x", NULL },
      "--sensitivity" },
    { { "--from", "a@x", "--to", "b@x", "--auth", "CRAM-MD5", NULL },
      "--auth" },
    { { "--from", "a@x", "--to", "b@x", "--auth", "PLAIN", NULL },
      "--user" },
    { { "--from", "a@x", "--to", "b@x", "--password", "p", NULL },
      "needs --user" },
    { { "--from", "a@x", "--to", "b@x", "--password-file", "f", NULL },
      "needs --user" },
    { { "--process-queue", "d", "--password-env", "V", NULL },
      "needs --user" },
    { { "--from", "a@x", "--to", "b@x", "--cert", "c", NULL }, "--key" },
    { { "--from", "a@x", "--to", "b@x", "--timeout", "x", NULL },
      "--timeout" },
    { { "--from", "a@x", "--to", "b@x", "--notify", "SOMETIMES", NULL },
      "--notify" },
    { { "--from", "a@x", "--to", "b@x", "--notify", "success,,delay",
        NULL }, "--notify" },
    { { "--from", "a@x", "--to", "b@x", "--ret", "ALL", NULL }, "--ret" },
    { { "--from", "a@x", "--to", "b@x", "--header", "X", NULL },
      "--header" },
    { { "--from", "a@x", "--to", "b@x", "--nope", NULL }, "unknown" },
    { { "--from", "a@x", "--to", "b@x", "--subject", NULL }, "needs" },
    { { "--from", "a@x", "--to", "b@x", "--raw", "m", "--body", "x",
        NULL }, "--raw" },
    { { "--from", "a@x", "--to", "b@x", "-t", NULL }, "-t" },
    { { "--from", "a@x", "--verify", "a\r\nDATA", NULL }, "--verify" },
    { { "--from", "a@x", "--to", "b@x", "--tls", "none", "--tls-required",
        NULL }, "contradict" },
    { { "--from", "a@x", "--to", "b@x", "--body", "x", "--body-file",
        "y", NULL }, "exclude" },
};


START_TEST(test_opts_bad)
{
    pst_send_opts_t  o;
    char             err[256];

    err[0] = '\0';
    ck_assert_int_eq(parse(&o, opts_bad[_i].args, err, sizeof(err)),
                     PST_ERROR);
    ck_assert_msg(strstr(err, opts_bad[_i].why) != NULL,
                  "case %d: \"%s\" lacks \"%s\"", _i, err, opts_bad[_i].why);
    pst_send_opts_free(&o);
}
END_TEST


START_TEST(test_parse_time)
{
    ck_assert_int_eq(pst_send_parse_time("30"), 30000);
    ck_assert_int_eq(pst_send_parse_time("30s"), 30000);
    ck_assert_int_eq(pst_send_parse_time("1.5s"), 1500);
    ck_assert_int_eq(pst_send_parse_time("250ms"), 250);
    ck_assert_int_eq(pst_send_parse_time("2m"), 120000);
    ck_assert_int_eq(pst_send_parse_time(""), -1);
    ck_assert_int_eq(pst_send_parse_time("-1"), -1);
    ck_assert_int_eq(pst_send_parse_time("5h"), -1);
    ck_assert_int_eq(pst_send_parse_time("99999999999"), -1);
}
END_TEST


START_TEST(test_list_split_and_addr)
{
    pst_send_list_t  l = { NULL, 0, 0 };
    char            *a;

    ck_assert_int_eq(pst_send_list_split(&l, " a@x ,\"B, b\" <b@x>,, "
                                         "C <c,d@x> , "), PST_OK);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.v[0], "a@x");
    ck_assert_str_eq(l.v[1], "\"B, b\" <b@x>");
    ck_assert_str_eq(l.v[2], "C <c,d@x>");
    pst_send_list_free(&l);

    a = pst_send_addr_spec("Name <u@example.test>");
    ck_assert_str_eq(a, "u@example.test");
    free(a);
    a = pst_send_addr_spec("  u@example.test ");
    ck_assert_str_eq(a, "u@example.test");
    free(a);
    a = pst_send_addr_spec("<>");
    ck_assert_str_eq(a, "");
    free(a);
    ck_assert_ptr_null(pst_send_addr_spec("two words@x"));
    ck_assert_ptr_null(pst_send_addr_spec("a\r\n@x"));
    ck_assert_ptr_null(pst_send_addr_spec("N <a@x"));
    ck_assert_ptr_null(pst_send_addr_spec("N <a@x> tail"));
    ck_assert_ptr_null(pst_send_addr_spec(""));
}
END_TEST


/* ------------------------------------------------------------------ */
/* header fields                                                       */

static const char  *hdr_values[] = {
    "plain ascii",
    "a CR LF\r\nBcc: injected@x stays in the field",
    "Grüße aus Köln, ünïcödé everywhere — and a long tail of words to "
    "fold: lorem ipsum dolor sit amet consectetur adipiscing elit sed do",
    "日本語のテキストはマルチバイトで、単語の途中で切ってはいけません。"
    "もう少し長くして、複数のエンコードされた単語が必要になるようにする。",
    "a very long ascii line with many words that must be folded at white "
    "space somewhere before the seventy-eighth column and again later on",
    "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryvery"
    "longwordwithoutanyspace",
    "<https://example.test/unsubscribe?token=0123456789abcdef0123456789abcd"
    "ef0123456789abcdef>",
};


START_TEST(test_hdr_text_roundtrip)
{
    mem_t   m;
    char    *s, dec[2048], want[2048];
    size_t   i, k = 0;
    int      long_word;

    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_text(m.f, "Subject", hdr_values[_i]),
                     PST_OK);
    s = mem_close(&m);

    /* 78 columns, but a longer word keeps a line of its own, whole:
     * never encoded (it may be a URL in a structured field) */
    long_word = pst_send_is_ascii((u_char *) hdr_values[_i],
                                  strlen(hdr_values[_i]))
                && (strcspn(hdr_values[_i], " ") > 70
                    || strstr(hdr_values[_i], "averyvery") != NULL);
    assert_lines(s, long_word ? 998 : 78);
    ck_assert_msg(pst_send_is_ascii((u_char *) s, strlen(s)), "%s", s);
    ck_assert(strncmp(s, "Subject: ", 9) == 0);     /* never folded at once */
    if (long_word) {
        ck_assert_msg(strstr(s, "=?") == NULL, "%s", s);
    }
    decode_field(s, dec, sizeof(dec));
    /* white space runs collapse to one space in folding */
    for (i = 0; hdr_values[_i][i]; i++) {
        want[k++] = hdr_values[_i][i];
    }
    want[k] = '\0';
    ck_assert_str_eq(dec, want);
    free(s);
}
END_TEST


START_TEST(test_hdr_addrs)
{
    pst_send_list_t  l = { NULL, 0, 0 };
    mem_t            m;
    char            *s;

    pst_send_list_split(&l, "Jörg Müller <jm@example.test>, "
                        "\"Doe, John\" <j@example.test>, plain@example.test,"
                        " Dr. Who <who@example.test>");
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_addrs(m.f, "To", &l), PST_OK);
    s = mem_close(&m);
    assert_lines(s, 78);
    unfold(s);
    ck_assert_msg(strstr(s, "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= "
                          "<jm@example.test>,") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "\"Doe, John\" <j@example.test>,") != NULL,
                  "%s", s);
    ck_assert_msg(strstr(s, " plain@example.test,") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "\"Dr. Who\" <who@example.test>\n") != NULL,
                  "%s", s);
    free(s);
    pst_send_list_free(&l);

    /* a CR LF in a display name never starts a field */
    pst_send_list_split(&l, "Evil\r\nBcc: victim@x <a@x>");
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_addrs(m.f, "From", &l), PST_OK);
    s = mem_close(&m);
    assert_lines(s, 78);
    ck_assert_msg(strstr(s, "\nBcc") == NULL, "%s", s);
    ck_assert_msg(strstr(s, "=?UTF-8?B?") != NULL, "%s", s);
    free(s);
    pst_send_list_free(&l);

    pst_send_list_split(&l, "bad address@x");
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_addrs(m.f, "To", &l), PST_ERROR);
    free(mem_close(&m));
    pst_send_list_free(&l);
}
END_TEST


/* ------------------------------------------------------------------ */
/* bodies                                                              */

/* Fields built from long user input: never a line over 998 octets;
 * an address that cannot fit is refused before anything is written. */
START_TEST(test_hdr_998)
{
    pst_send_list_t  l = { NULL, 0, 0 };
    char             name[128], word[1000], addr[1000];
    mem_t            m;
    char            *s;

    /* a long field name and a word that would fit after "Subject: " */
    memset(name, 'N', 120);
    name[120] = '\0';
    memset(word, 'w', 898);
    word[898] = '\0';
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_text(m.f, name, word), PST_OK);
    s = mem_close(&m);
    assert_lines(s, 998);
    free(s);

    /* the longest word that fits is kept whole */
    memset(word, 'w', 989);
    word[989] = '\0';
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_text(m.f, "Subject", word), PST_OK);
    s = mem_close(&m);
    assert_lines(s, 998);
    ck_assert_msg(strstr(s, "=?") == NULL, "%.80s", s);
    free(s);

    /* an address too long for any line */
    memset(addr, 'a', 990);
    strcpy(addr + 990, "@x.test");
    pst_send_list_split(&l, "ok@example.test");
    pst_send_list_add(&l, addr);
    mem_open(&m);
    ck_assert_int_eq(pst_send_hdr_addrs(m.f, "To", &l), PST_DECLINED);
    s = mem_close(&m);
    ck_assert_str_eq(s, "");
    free(s);
    pst_send_list_free(&l);
}
END_TEST


START_TEST(test_text_cte)
{
    char  longline[1200];

    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';

    ck_assert_int_eq(pst_send_text_cte((u_char *) "ascii\r\nok\n", 10, 1),
                     PST_SEND_CTE_7BIT);
    ck_assert_int_eq(pst_send_text_cte((u_char *) "h\xc3\xa9", 3, 1),
                     PST_SEND_CTE_8BIT);
    ck_assert_int_eq(pst_send_text_cte((u_char *) "h\xc3\xa9", 3, 0),
                     PST_SEND_CTE_QP);
    ck_assert_int_eq(pst_send_text_cte((u_char *) longline,
                                       strlen(longline), 1),
                     PST_SEND_CTE_QP);
    ck_assert_int_eq(pst_send_text_cte((u_char *) "a\rb", 3, 1),
                     PST_SEND_CTE_QP);
    ck_assert_int_eq(pst_send_text_cte((u_char *) "a\0b", 3, 1),
                     PST_SEND_CTE_QP);
}
END_TEST


/* Decode quoted-printable s (CRLF lines) into out. */
static size_t
qp_decode(const char *s, char *out)
{
    size_t  o = 0;
    u_int   c;

    while (*s) {
        if (s[0] == '=' && s[1] == '\r' && s[2] == '\n') {
            s += 3;
        } else if (s[0] == '=') {
            ck_assert_int_eq(sscanf(s + 1, "%2X", &c), 1);
            out[o++] = (char) c;
            s += 3;
        } else if (s[0] == '\r' && s[1] == '\n') {
            out[o++] = '\n';
            s += 2;
        } else {
            ck_assert_msg(*s != ' ' || (s[1] != '\r'), "trailing space");
            out[o++] = *s++;
        }
    }
    out[o] = '\0';
    return o;
}


START_TEST(test_qp_roundtrip)
{
    char    text[4000], *s, dec[16000];
    mem_t   m;
    size_t  n;

    memset(text, 'x', 2000);
    strcpy(text + 2000, "\n=equals= trailing space \nGrüße\ttab\t\nend");
    n = strlen(text);

    mem_open(&m);
    ck_assert_int_eq(pst_send_text_write(m.f, (u_char *) text, n,
                                         PST_SEND_CTE_QP), PST_OK);
    s = mem_close(&m);
    assert_lines(s, 76);
    ck_assert(pst_send_is_ascii((u_char *) s, strlen(s)));
    qp_decode(s, dec);
    strcat(text, "\n");     /* the last line gets its line end */
    ck_assert_str_eq(dec, text);
    free(s);
}
END_TEST


START_TEST(test_base64_file)
{
    char     path[PATH_MAX], *s, *p, *nl;
    u_char   data[200000], dec[200000];
    size_t   got = 0, i;
    ssize_t  n;
    mem_t    m;
    int      fd;
    char    *dir = tu_tmpdir();

    for (i = 0; i < sizeof(data); i++) {
        data[i] = (u_char) (i * 7 + i / 251);
    }
    snprintf(path, sizeof(path), "%s/att.bin", dir);
    free(dir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t) sizeof(data));
    lseek(fd, 0, SEEK_SET);

    mem_open(&m);
    ck_assert_int_eq(pst_send_base64_file(m.f, fd), PST_OK);
    s = mem_close(&m);
    close(fd);
    assert_lines(s, 76);

    for (p = s; *p; p = nl + 2) {
        nl = strstr(p, "\r\n");
        n = pst_base64_decode(dec + got, (u_char *) p, (size_t) (nl - p));
        ck_assert_int_ge(n, 0);
        got += (size_t) n;
    }
    ck_assert_uint_eq(got, sizeof(data));
    ck_assert(memcmp(dec, data, sizeof(data)) == 0);
    free(s);
}
END_TEST


START_TEST(test_guess_type)
{
    ck_assert_str_eq(pst_send_guess_type("a/b/report.PDF"),
                     "application/pdf");
    ck_assert_str_eq(pst_send_guess_type("x.jpeg"), "image/jpeg");
    ck_assert_str_eq(pst_send_guess_type("x.tar.gz"), "application/gzip");
    ck_assert_str_eq(pst_send_guess_type("noext"),
                     "application/octet-stream");
    ck_assert_str_eq(pst_send_guess_type("dir.d/file"),
                     "application/octet-stream");
    ck_assert_str_eq(pst_send_guess_type("x."), "application/octet-stream");
}
END_TEST


/* ------------------------------------------------------------------ */
/* a whole message                                                     */

START_TEST(test_compose_parsed_back)
{
    pst_send_opts_t  o;
    pst_send_env_t   env;
    char             err[256], path[PATH_MAX], html[PATH_MAX], bnd[64];
    char            *s, *p, *hdr_end;
    const char      *args[] = {
        "--from", "Ann <ann@example.test>", "--to", "b@example.test",
        "--bcc", "hidden@example.test", "--subject", "hi",
        "--body", "caf\xc3\xa9\n", "--importance", "LOW", "--attach", path,
        "--html-file", html, "--date", "Mon, 1 Dec 2026 10:00:00 +0000",
        "--message-id", "<fixed@example.test>", NULL
    };
    mem_t            m;
    FILE            *f;
    char            *dir = tu_tmpdir();

    snprintf(path, sizeof(path), "%s/r\xc3\xa9sum\xc3\xa9.pdf", dir);
    snprintf(html, sizeof(html), "%s/b.html", dir);
    free(dir);
    f = fopen(path, "w");
    fputs("%PDF-1.4 fake", f);
    fclose(f);
    f = fopen(html, "w");
    fputs("<p>caf\xc3\xa9</p>", f);
    fclose(f);

    ck_assert_int_eq(parse(&o, args, err, sizeof(err)), PST_OK);
    mem_open(&m);
    ck_assert_int_eq(pst_send_compose(&o, 0, m.f, &env, err, sizeof(err)),
                     PST_OK);
    s = mem_close(&m);

    assert_lines(s, 998);
    ck_assert(pst_send_is_ascii((u_char *) s, strlen(s)));  /* 7-bit */
    ck_assert_str_eq(env.sender, "ann@example.test");
    ck_assert_uint_eq(env.rcpts.n, 2);
    ck_assert_str_eq(env.rcpts.v[1], "hidden@example.test");
    ck_assert_int_eq(env.eightbit, 0);

    hdr_end = strstr(s, "\r\n\r\n");
    ck_assert_ptr_nonnull(hdr_end);
    *hdr_end = '\0';
    ck_assert_ptr_null(strstr(s, "hidden"));
    ck_assert_ptr_null(strcasestr(s, "\r\nBcc:"));
    ck_assert_ptr_nonnull(strstr(s, "Date: Mon, 1 Dec 2026 10:00:00 +0000"
                                    "\r\n"));
    ck_assert_ptr_nonnull(strstr(s, "From: Ann <ann@example.test>\r\n"));
    ck_assert_ptr_nonnull(strstr(s, "Message-ID: <fixed@example.test>"));
    ck_assert_ptr_nonnull(strstr(s, "Importance: LOW\r\n"));
    ck_assert_ptr_nonnull(strstr(s, "MIME-Version: 1.0\r\n"));
    p = strstr(s, "multipart/mixed;\r\n boundary=\"");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + 30, "%63[^\"]", bnd), 1);
    *hdr_end = '\r';

    /* the parts, in order, and the closing delimiter last */
    p = strstr(s, "multipart/alternative");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                  "caf=C3=A9\r\n");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "Content-Type: application/pdf;\r\n"
                  " name*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
                  "Content-Disposition: attachment;\r\n"
                  " filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n"
                  "JVBERi0xLjQgZmFrZQ==\r\n");
    ck_assert_msg(p != NULL, "%s", s);
    p = strstr(p, bnd);
    ck_assert_ptr_nonnull(p);
    ck_assert(strncmp(p + strlen(bnd), "--\r\n", 4) == 0);
    ck_assert_str_eq(p + strlen(bnd) + 4, "");

    free(s);
    pst_send_env_free(&env);
    pst_send_opts_free(&o);
}
END_TEST


START_TEST(test_compose_8bit_and_missing_file)
{
    pst_send_opts_t  o;
    pst_send_env_t   env;
    char             err[256], *s;
    const char      *a1[] = { "--from", "a@x", "--to", "b@x", "--body",
                              "caf\xc3\xa9", NULL };
    const char      *a2[] = { "--from", "a@x", "--to", "b@x", "--attach",
                              "/nonexistent/x.pdf", NULL };
    mem_t            m;

    ck_assert_int_eq(parse(&o, a1, err, sizeof(err)), PST_OK);
    mem_open(&m);
    ck_assert_int_eq(pst_send_compose(&o, 1, m.f, &env, err, sizeof(err)),
                     PST_OK);
    s = mem_close(&m);
    ck_assert_int_eq(env.eightbit, 1);
    ck_assert_ptr_nonnull(strstr(s, "Content-Transfer-Encoding: 8bit\r\n"
                                    "\r\ncaf\xc3\xa9\r\n"));
    free(s);
    pst_send_env_free(&env);
    pst_send_opts_free(&o);

    ck_assert_int_eq(parse(&o, a2, err, sizeof(err)), PST_OK);
    mem_open(&m);
    ck_assert_int_eq(pst_send_compose(&o, 1, m.f, &env, err, sizeof(err)),
                     PST_SEND_NOINPUT);
    s = mem_close(&m);
    ck_assert_str_eq(s, "");        /* nothing written before the check */
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.pdf"));
    free(s);
    pst_send_env_free(&env);
    pst_send_opts_free(&o);
}
END_TEST


/* ------------------------------------------------------------------ */
/* ready messages                                                      */

/* pst_send_raw() from in (a file: no pipe to fill) into a file, which
 * re-encoding reads back; *out is what it holds. */
static int
raw_run(const char *in, unsigned flags, pst_send_env_t *env, char **out,
    char *err)
{
    FILE    *i, *o;
    long     n;
    int      rc;

    i = tmpfile();
    o = tmpfile();
    ck_assert_ptr_nonnull(i);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(write(fileno(i), in, strlen(in)), (ssize_t) strlen(in));
    ck_assert_int_eq(lseek(fileno(i), 0, SEEK_SET), 0);
    rc = pst_send_raw(fileno(i), o, env, flags, "Full Name", err, 256);
    ck_assert_int_eq(fflush(o), 0);
    n = ftell(o);
    ck_assert_int_ge(n, 0);
    *out = malloc((size_t) n + 1);
    rewind(o);
    ck_assert_int_eq(fread(*out, 1, (size_t) n, o), (size_t) n);
    (*out)[n] = '\0';
    fclose(i);
    fclose(o);
    return rc;
}


START_TEST(test_raw_extract)
{
    pst_send_env_t  env;
    char           *out, err[256];

    memset(&env, 0, sizeof(env));
    ck_assert_int_eq(raw_run("From: A <a@x>\nTo: b@x,\n\tC <c@x>\n"
                             "Bcc: d@x\n  , e@x\nCc: undisclosed:;\n"
                             "Subject: s\n\nbody\n", PST_SEND_RAW_EXTRACT,
                             &env, &out, err), PST_OK);
    ck_assert_str_eq(out, "From: A <a@x>\r\nTo: b@x,\r\n\tC <c@x>\r\n"
                          "Cc: undisclosed:;\r\nSubject: s\r\n\r\n"
                          "body\r\n");
    ck_assert_str_eq(env.sender, "a@x");
    ck_assert_uint_eq(env.rcpts.n, 4);
    ck_assert_str_eq(env.rcpts.v[0], "b@x");
    ck_assert_str_eq(env.rcpts.v[1], "c@x");
    ck_assert_str_eq(env.rcpts.v[2], "d@x");
    ck_assert_str_eq(env.rcpts.v[3], "e@x");
    free(out);
    pst_send_env_free(&env);
}
END_TEST


START_TEST(test_raw_add_and_dot)
{
    pst_send_env_t  env;
    char           *out, err[256];

    memset(&env, 0, sizeof(env));
    env.sender = strdup("root@host.test");
    ck_assert_int_eq(raw_run("Subject: cron\n\nline\n.\nafter\n",
                             PST_SEND_RAW_ADD | PST_SEND_RAW_DOT, &env,
                             &out, err), PST_OK);
    ck_assert_ptr_nonnull(strstr(out, "Subject: cron\r\nDate: "));
    ck_assert_ptr_nonnull(strstr(out, "\r\nFrom: Full Name "
                                      "<root@host.test>\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\nMessage-ID: <"));
    ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nline\r\n"));
    ck_assert_ptr_null(strstr(out, "after"));
    free(out);

    /* without DOT the "." line is text; a body without a header */
    ck_assert_int_eq(raw_run("just text\n.\nafter", PST_SEND_RAW_ADD, &env,
                             &out, err), PST_OK);
    ck_assert_ptr_nonnull(strstr(out, "\r\n\r\njust text\r\n.\r\nafter"
                                      "\r\n"));
    free(out);
    pst_send_env_free(&env);
}
END_TEST


START_TEST(test_raw_long_line)
{
    pst_send_env_t  env;
    char           *in, *out, err[256];

    memset(&env, 0, sizeof(env));
    in = malloc(2000);
    strcpy(in, "Subject: x\n\n");
    memset(in + 12, 'y', 998);
    strcpy(in + 12 + 998, "\n");        /* exactly 998: as it is */
    ck_assert_int_eq(raw_run(in, 0, &env, &out, err), PST_OK);
    ck_assert(strncmp(out, "Subject: x\r\n\r\n", 14) == 0);
    ck_assert_int_eq(strspn(out + 14, "y"), 998);
    ck_assert_str_eq(out + 14 + 998, "\r\n");
    free(out);
    free(in);
    pst_send_env_free(&env);
}
END_TEST


#define QP_CTE  "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"

/* A body line over 998 octets: the body goes quoted-printable, lines
 * before the long one too; the header keeps its fields, gets MIME ones. */
static const struct {
    const char  *head, *body;
    size_t       ylen;              /* "y" * ylen after body */
    const char  *tail;
    const char  *type;              /* the Content-Type field expected */
    int          eightbit;          /* env.eightbit after */
} raw_qp[] = {
    { "Subject: x\n", "a=b \n", 999, "\r\n",
      "Content-Type: text/plain; charset=us-ascii\r\n", 0 },
    { "Subject: x\n", "", 5000, " end\n",
      "Content-Type: text/plain; charset=us-ascii\r\n", 0 },
    /* the CR of CRLF just after a full piece, a CR of the text before */
    { "Subject: x\n", "caf\xc3\xa9\n", 999, "\r\r\n",
      "Content-Type: text/plain; charset=utf-8\r\n", 0 },
    { "Subject: x\n", "caf\xe9\n", 1998, "\n",
      "Content-Type: text/plain; charset=unknown-8bit\r\n", 0 },
    { "MIME-Version: 1.0\nContent-Type: text/html;\n charset=iso-8859-1\n"
      "Content-Transfer-Encoding: 8bit\nSubject: R\xc3\xa9sum\xc3\xa9\n",
      "<p>\xe9</p>\n", 1200, "",
      "Content-Type: text/html;\r\n charset=iso-8859-1\r\n", 1 },
    { "Content-Type: application/json\n", "{\n", 3000, "}\n",
      "Content-Type: application/json\r\n", 0 },
};


START_TEST(test_raw_long_line_qp)
{
    pst_send_env_t  env;
    char           *in, *out, *want, *dec, *p, err[256];
    size_t          n;

    memset(&env, 0, sizeof(env));
    n = strlen(raw_qp[_i].head) + strlen(raw_qp[_i].body) + raw_qp[_i].ylen
        + strlen(raw_qp[_i].tail) + 2;
    in = malloc(n);
    want = malloc(n);
    dec = malloc(n * 2);
    strcpy(in, raw_qp[_i].head);
    strcat(in, "\n");
    strcat(in, raw_qp[_i].body);
    p = in + strlen(in);
    memset(p, 'y', raw_qp[_i].ylen);
    strcpy(p + raw_qp[_i].ylen, raw_qp[_i].tail);

    ck_assert_int_eq(raw_run(in, 0, &env, &out, err), PST_OK);
    assert_lines(out, 998);
    ck_assert_msg(strstr(out, raw_qp[_i].type) != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "MIME-Version: 1.0\r\n"));
    ck_assert_ptr_null(strstr(strstr(out, "MIME-Version") + 1,
                              "MIME-Version"));
    ck_assert_ptr_null(strstr(out, "Encoding: 8bit"));
    p = strstr(out, QP_CTE);
    ck_assert_msg(p != NULL, "%s", out);
    p += strlen(QP_CTE);
    assert_lines(p, 76);
    ck_assert(pst_send_is_ascii((u_char *) p, strlen(p)));
    qp_decode(p, dec);

    /* the text as it came, with LF line ends */
    strcpy(want, in + strlen(raw_qp[_i].head) + 1);
    if (strlen(raw_qp[_i].tail) >= 2 && want[strlen(want) - 2] == '\r') {
        strcpy(want + strlen(want) - 2, "\n");
    }
    if (*raw_qp[_i].tail == '\0') {
        strcat(want, "\n");
    }
    ck_assert_str_eq(dec, want);
    ck_assert_int_eq(env.eightbit, raw_qp[_i].eightbit);
    free(out);
    free(in);
    free(want);
    free(dec);
    pst_send_env_free(&env);
}
END_TEST


/* What cannot be re-encoded, or is a header line: exit 65, and why. */
static const struct {
    const char  *head;
    const char  *why;
} raw_no_qp[] = {
    { "Subject: x\n\n", NULL },          /* the control: re-encoded */
    { "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n",
      "multipart/mixed" },
    { "Content-Type: (c) Message/RFC822\n\n", "Message/RFC822" },
    { "Content-Transfer-Encoding: base64\n\n", "base64" },
    { "Content-Transfer-Encoding: quoted-printable\n\n",
      "quoted-printable" },
    { "Content-Type: text/plain\nContent-Type: text/html\n\n",
      "more than one" },
    { "Subject: ", "header line" },
    { "Subject: x\nX-Long:\n ", "header line" },
};


START_TEST(test_raw_long_line_refused)
{
    pst_send_env_t  env;
    char           *in, *out, err[256];
    size_t          n;

    memset(&env, 0, sizeof(env));
    n = strlen(raw_no_qp[_i].head);
    in = malloc(n + 1200);
    strcpy(in, raw_no_qp[_i].head);
    memset(in + n, 'z', 1100);
    strcpy(in + n + 1100, "\nmore\n");
    if (raw_no_qp[_i].why == NULL) {
        ck_assert_int_eq(raw_run(in, 0, &env, &out, err), PST_OK);
        free(out);
        free(in);
        pst_send_env_free(&env);
        return;
    }
    ck_assert_int_eq(raw_run(in, 0, &env, &out, err), PST_SEND_DATAERR);
    ck_assert_msg(strstr(err, "998") != NULL, "%s", err);
    ck_assert_msg(strstr(err, raw_no_qp[_i].why) != NULL, "%s", err);
    free(out);
    free(in);
    pst_send_env_free(&env);
}
END_TEST


/* sendmail without -i: the "." left over at the end of a long line
 * read in pieces is text, not the end; Bcc stays out, recipients are
 * taken once. */
START_TEST(test_raw_long_line_dot)
{
    pst_send_env_t  env;
    char           *in, *out, *p, dec[4096], err[256];
    size_t          k;

    for (k = 1000; k <= 3000; k += 1000) {
        memset(&env, 0, sizeof(env));
        in = malloc(4096);
        strcpy(in, "To: a@x\nBcc: b@x\n\nfirst\n");
        p = in + strlen(in);
        memset(p, 'x', k);
        strcpy(p + k, ".\nafter\n.\nignored\n");
        ck_assert_int_eq(raw_run(in, PST_SEND_RAW_DOT | PST_SEND_RAW_EXTRACT,
                                 &env, &out, err), PST_OK);
        ck_assert_ptr_null(strstr(out, "Bcc"));
        ck_assert_uint_eq(env.rcpts.n, 2);
        p = strstr(out, "\r\n\r\n");
        ck_assert_ptr_nonnull(p);
        qp_decode(p + 4, dec);
        ck_assert_int_eq(strlen(dec), 6 + k + 2 + 6);
        ck_assert(strncmp(dec, "first\n", 6) == 0);
        ck_assert_str_eq(dec + 6 + k, ".\nafter\n");
        free(out);
        free(in);
        pst_send_env_free(&env);
    }
}
END_TEST


START_TEST(test_raw_add_from_too_long)
{
    pst_send_env_t  env;
    char           *out, err[256];

    memset(&env, 0, sizeof(env));
    env.sender = malloc(1100);
    memset(env.sender, 's', 1000);
    strcpy(env.sender + 1000, "@x.test");
    ck_assert_int_eq(raw_run("Subject: x\n\nbody\n", PST_SEND_RAW_ADD,
                             &env, &out, err), PST_SEND_DATAERR);
    ck_assert_msg(strstr(err, "From") != NULL, "%s", err);
    assert_lines(out, 998);
    free(out);
    pst_send_env_free(&env);
}
END_TEST


START_TEST(test_split_server)
{
    char  h[256], p[16];

    ck_assert_int_eq(pst_send_split_server("mx.example.test", h, sizeof(h),
                                           p, sizeof(p), "25"), PST_OK);
    ck_assert_str_eq(h, "mx.example.test");
    ck_assert_str_eq(p, "25");
    ck_assert_int_eq(pst_send_split_server("192.0.2.1:587", h, sizeof(h),
                                           p, sizeof(p), "25"), PST_OK);
    ck_assert_str_eq(h, "192.0.2.1");
    ck_assert_str_eq(p, "587");
    ck_assert_int_eq(pst_send_split_server("[2001:db8::1]:2525", h,
                                           sizeof(h), p, sizeof(p), "25"),
                     PST_OK);
    ck_assert_str_eq(h, "2001:db8::1");
    ck_assert_str_eq(p, "2525");
    ck_assert_int_eq(pst_send_split_server("::1", h, sizeof(h), p,
                                           sizeof(p), "465"), PST_OK);
    ck_assert_str_eq(h, "::1");
    ck_assert_str_eq(p, "465");
    ck_assert_int_eq(pst_send_split_server("[::1", h, sizeof(h), p,
                                           sizeof(p), "25"), PST_ERROR);
    ck_assert_int_eq(pst_send_split_server("host:port", h, sizeof(h), p,
                                           sizeof(p), "25"), PST_ERROR);
    ck_assert_int_eq(pst_send_split_server(":25", h, sizeof(h), p,
                                           sizeof(p), "25"), PST_ERROR);
}
END_TEST


START_TEST(test_json_str)
{
    static const struct {
        const char  *in, *out;
    } cases[] = {
        { "plain", "\"plain\"" },
        { "a\"b\\c", "\"a\\\"b\\\\c\"" },
        { "l1\nl2\r\t\x01\x7f",
          "\"l1\\nl2\\u000d\\u0009\\u0001\\u007f\"" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7",
          "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"" },
        /* not UTF-8: a lone byte, a cut sequence, overlong, surrogate */
        { "a\xff" "b", "\"a\\ufffdb\"" },
        { "x\xc3", "\"x\\ufffd\"" },
        { "\xc0\xaf", "\"\\ufffd\\ufffd\"" },
        { "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },
    };
    mem_t   m;
    char   *out;
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mem_open(&m);
        pst_send_json_str(m.f, cases[i].in);
        out = mem_close(&m);
        ck_assert_str_eq(out, cases[i].out);
        free(out);
    }
}
END_TEST


/* what a header field must be to become RFC 2047 words */
START_TEST(test_is_utf8)
{
    static const struct {
        const char  *in;
        int          ok;
    } cases[] = {
        { "plain", 1 },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 1 },
        { "\xf4\x8f\xbf\xbf", 1 },              /* U+10FFFF */
        { "K\xf6ln", 0 },                          /* Latin-1 */
        { "x\xc3", 0 },                            /* cut short */
        { "\xc0\xaf", 0 },                         /* overlong */
        { "\xe0\x80\xaf", 0 },                     /* overlong */
        { "\xed\xa0\x80", 0 },                     /* a surrogate */
        { "\xf4\x90\x80\x80", 0 },                 /* past U+10FFFF */
        { "\xc3\xa9\xa9", 0 },                     /* a stray byte */
    };
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(pst_send_is_utf8((const u_char *) cases[i].in,
                                       strlen(cases[i].in)) == cases[i].ok,
                      "case %zu", i);
    }
}
END_TEST


Suite *
suite_send(void)
{
    Suite  *s = suite_create("send");
    TCase  *tc;

    tc = tcase_create("options");
    tcase_add_test(tc, test_opts_good);
    tcase_add_loop_test(tc, test_opts_bad, 0,
                        (int) (sizeof(opts_bad) / sizeof(opts_bad[0])));
    tcase_add_test(tc, test_parse_time);
    tcase_add_test(tc, test_list_split_and_addr);
    tcase_add_test(tc, test_split_server);
    tcase_add_test(tc, test_json_str);
    tcase_add_test(tc, test_is_utf8);
    suite_add_tcase(s, tc);

    tc = tcase_create("compose");
    tcase_add_loop_test(tc, test_hdr_text_roundtrip, 0,
                        (int) (sizeof(hdr_values) / sizeof(hdr_values[0])));
    tcase_add_test(tc, test_hdr_addrs);
    tcase_add_test(tc, test_hdr_998);
    tcase_add_test(tc, test_text_cte);
    tcase_add_test(tc, test_qp_roundtrip);
    tcase_add_test(tc, test_base64_file);
    tcase_add_test(tc, test_guess_type);
    tcase_add_test(tc, test_compose_parsed_back);
    tcase_add_test(tc, test_compose_8bit_and_missing_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("raw");
    tcase_add_test(tc, test_raw_extract);
    tcase_add_test(tc, test_raw_add_and_dot);
    tcase_add_test(tc, test_raw_long_line);
    tcase_add_loop_test(tc, test_raw_long_line_qp, 0,
                        (int) (sizeof(raw_qp) / sizeof(raw_qp[0])));
    tcase_add_loop_test(tc, test_raw_long_line_refused, 0,
                        (int) (sizeof(raw_no_qp) / sizeof(raw_no_qp[0])));
    tcase_add_test(tc, test_raw_long_line_dot);
    tcase_add_test(tc, test_raw_add_from_too_long);
    suite_add_tcase(s, tc);

    return s;
}
