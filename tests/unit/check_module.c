/*
 * check_module.c -- the module loader (pst_module.c): what it refuses,
 * with which message, and that a good module works once loaded.
 *
 * A module runs inside the master as root, so the loader is a security
 * boundary: a file others can write, or a descriptor this core cannot
 * read safely, must be refused before any of its code runs (the
 * descriptor checks) or before it is even opened (the permission
 * checks).  The test modules are built from tests/unit/modules/.
 */

#include "check_util.h"
#include "check_suites.h"

#define REFUSED_PERM(f)                                                      \
    "main.conf:1: refusing module \"" f "\": it must be owned by root or"   \
    " the user running postern and not be writable by group or others"

#define SMTP     "smtp { server { listen 127.0.0.1:2525; } }\n"


/* ------------------------------------------------------------------ */
/* pst_module_check() on descriptors built here                        */

START_TEST(test_check_descriptor)
{
    pst_module_t  m;
    const char   *why;
    char          buf[512], want[512];
    size_t        i;
    char          name[70];

    memset(&m, 0, sizeof(m));
    m.magic = POSTERN_MODULE_MAGIC;
    m.abi_major = POSTERN_ABI_MAJOR;
    m.abi_minor = POSTERN_ABI_MINOR;
    m.size = sizeof(pst_module_t);
    m.name = "ok";
    ck_assert_ptr_null(pst_module_check(&m, buf, sizeof(buf)));

    /* modules built for every older minor keep loading (1.0, 1.1...) */
    for (i = 0; i < POSTERN_ABI_MINOR; i++) {
        m.abi_minor = (uint16_t) i;
        ck_assert_ptr_null(pst_module_check(&m, buf, sizeof(buf)));
    }
    m.abi_minor = POSTERN_ABI_MINOR;

    /* an older minor has a shorter descriptor: still fine */
    m.size = offsetof(pst_module_t, hooks);
    ck_assert_ptr_null(pst_module_check(&m, buf, sizeof(buf)));
    m.size = offsetof(pst_module_t, hooks) - 1;
    why = pst_module_check(&m, buf, sizeof(buf));
    snprintf(want, sizeof(want), "has a truncated descriptor (%zu bytes)",
             offsetof(pst_module_t, hooks) - 1);
    ck_assert_str_eq(why, want);
    m.size = sizeof(pst_module_t);

    m.magic = POSTERN_MODULE_MAGIC ^ 1;
    why = pst_module_check(&m, buf, sizeof(buf));
    snprintf(want, sizeof(want), "is not a Postern module (bad magic"
             " 0x%08x)", POSTERN_MODULE_MAGIC ^ 1);
    ck_assert_str_eq(why, want);
    m.magic = POSTERN_MODULE_MAGIC;

    /* both versions named, whichever way the major differs */
    m.abi_major = POSTERN_ABI_MAJOR + 1;
    m.abi_minor = 0;
    why = pst_module_check(&m, buf, sizeof(buf));
    snprintf(want, sizeof(want), "was built for module ABI %d.0, but this"
             " postern provides ABI %d.%d; rebuild the module against this"
             " version (see docs/PLUGINS.md, \"ABI history\")",
             POSTERN_ABI_MAJOR + 1, POSTERN_ABI_MAJOR, POSTERN_ABI_MINOR);
    ck_assert_str_eq(why, want);

    m.abi_major = POSTERN_ABI_MAJOR - 1;
    m.abi_minor = 7;
    why = pst_module_check(&m, buf, sizeof(buf));
    ck_assert_ptr_nonnull(why);
    snprintf(want, sizeof(want), "ABI %d.7, but", POSTERN_ABI_MAJOR - 1);
    ck_assert_ptr_nonnull(strstr(why, want));

    m.abi_major = POSTERN_ABI_MAJOR;
    m.abi_minor = POSTERN_ABI_MINOR + 1;
    why = pst_module_check(&m, buf, sizeof(buf));
    ck_assert_ptr_nonnull(why);
    snprintf(want, sizeof(want), "ABI %d.%d, but this postern provides ABI"
             " %d.%d;", POSTERN_ABI_MAJOR, POSTERN_ABI_MINOR + 1,
             POSTERN_ABI_MAJOR, POSTERN_ABI_MINOR);
    ck_assert_ptr_nonnull(strstr(why, want));
    m.abi_minor = POSTERN_ABI_MINOR;

    /* names: present, not empty, at most 64 bytes */
    m.name = NULL;
    ck_assert_str_eq(pst_module_check(&m, buf, sizeof(buf)),
                     "has no valid name");
    m.name = "";
    ck_assert_str_eq(pst_module_check(&m, buf, sizeof(buf)),
                     "has no valid name");
    for (i = 0; i < 64; i++) {
        name[i] = 'n';
    }
    name[64] = '\0';
    m.name = name;
    ck_assert_ptr_null(pst_module_check(&m, buf, sizeof(buf)));
    name[64] = 'n';
    name[65] = '\0';
    ck_assert_str_eq(pst_module_check(&m, buf, sizeof(buf)),
                     "has no valid name");
}
END_TEST


/* ------------------------------------------------------------------ */
/* load_module refusals                                                */

typedef struct {
    const char                  *name;
    const char                  *modules[3];   /* copied with mode 0755 */
    const char                  *conf;
    const char                  *expect;
} module_error_t;

static const module_error_t  module_errors[] = {
    { "no postern_module symbol", { "test_nosym.so" },
      "load_module test_nosym.so;\n" SMTP,
      "main.conf:1: module \"test_nosym.so\" does not export"
      " \"postern_module\"" },
    { "bad magic", { "test_badmagic.so" },
      "load_module test_badmagic.so;\n" SMTP,
      "main.conf:1: module \"test_badmagic.so\" is not a Postern module"
      " (bad magic 0x12345678)" },
    { "different ABI major", { "test_abi_major.so" },
      "load_module test_abi_major.so;\n" SMTP,
      "main.conf:1: module \"test_abi_major.so\" was built for module ABI"
      " 2.0, but this postern provides ABI @CORE@; rebuild the module"
      " against this version (see docs/PLUGINS.md, \"ABI history\")" },
    { "newer ABI minor", { "test_abi_minor.so" },
      "load_module test_abi_minor.so;\n" SMTP,
      "main.conf:1: module \"test_abi_minor.so\" was built for module ABI"
      " @NEXT@, but this postern provides ABI @CORE@; rebuild the module"
      " against this version (see docs/PLUGINS.md, \"ABI history\")" },
    { "truncated descriptor", { "test_truncated.so" },
      "load_module test_truncated.so;\n" SMTP,
      "main.conf:1: module \"test_truncated.so\" has a truncated"
      " descriptor (16 bytes)" },
    { "empty name", { "test_noname.so" },
      "load_module test_noname.so;\n" SMTP,
      "main.conf:1: module \"test_noname.so\" has no valid name" },
    { "same file twice", { "test_good.so" },
      "load_module test_good.so;\nload_module test_good.so;\n" SMTP,
      "main.conf:2: module \"test_good\" is already loaded" },
    { "another file, same name", { "test_good.so", "test_dupname.so" },
      "load_module test_good.so;\nload_module test_dupname.so;\n" SMTP,
      "main.conf:2: module \"test_good\" is already loaded" },
    { "name of a built-in module", { "test_smtpname.so" },
      "load_module test_smtpname.so;\n" SMTP,
      "main.conf:1: module \"smtp\" is already loaded" },
    { "directive of the core", { "test_dupdir.so" },
      "load_module test_dupdir.so;\n" SMTP,
      "main.conf:1: module \"test_dupdir\" declares directive"
      " \"hostname\", which module \"smtp\" already owns" },
    { "directive of another module", { "test_good.so", "test_dupgood.so" },
      "load_module test_good.so;\nload_module test_dupgood.so;\n" SMTP,
      "main.conf:2: module \"test_dupgood\" declares directive"
      " \"test_good_value\", which module \"test_good\" already owns" },
    { "missing file", { NULL },
      "load_module nosuch.so;\n" SMTP,
      "main.conf:1: cannot load module \"nosuch.so\": No such file or"
      " directory" },
    { "after the smtp block", { "test_good.so" },
      SMTP "load_module test_good.so;\n",
      "main.conf:2: \"load_module\" directive is specified too late:"
      " load_module lines must come before the smtp block" },
    { "inside the smtp block", { "test_good.so" },
      "smtp {\n    load_module test_good.so;\n}\n",
      "main.conf:2: \"load_module\" directive is not allowed in the smtp"
      " block" },
    { "its directive at the top", { "test_good.so" },
      "load_module test_good.so;\ntest_good_value 1;\n" SMTP,
      "main.conf:2: \"test_good_value\" directive is not allowed at the top"
      " level" },
    { "its directive with a bad value", { "test_good.so" },
      "load_module test_good.so;\n"
      "smtp { server { listen 2525; test_good_value x; } }\n",
      "main.conf:2: invalid number \"x\" in \"test_good_value\""
      " directive" },
};


static char *
load(const char *dir, const char *const *modules, const char *conf,
    pst_cycle_t **cycle)
{
    char  *p;

    for ( /* void */ ; *modules != NULL; modules++) {
        p = tu_module_copy(dir, *modules, 0755);
        free(p);
    }

    return tu_load_conf(dir, conf, NULL, cycle);
}


/* "@CORE@" is this core's ABI, "@NEXT@" the next minor: the messages
 * must name both versions whatever the current ABI is. */
static char *
expand_abi(const char *expect)
{
    char        core[32], next[32], *out, *o;
    const char  *p;

    snprintf(core, sizeof(core), "%d.%d", POSTERN_ABI_MAJOR,
             POSTERN_ABI_MINOR);
    snprintf(next, sizeof(next), "%d.%d", POSTERN_ABI_MAJOR,
             POSTERN_ABI_MINOR + 1);

    out = malloc(strlen(expect) + 64);
    ck_assert_ptr_nonnull(out);

    for (p = expect, o = out; *p; ) {
        if (strncmp(p, "@CORE@", 6) == 0) {
            o += sprintf(o, "%s", core);
            p += 6;
        } else if (strncmp(p, "@NEXT@", 6) == 0) {
            o += sprintf(o, "%s", next);
            p += 6;
        } else {
            *o++ = *p++;
        }
    }
    *o++ = '\n';
    *o = '\0';

    return out;
}


START_TEST(test_module_error)
{
    const module_error_t  *c = &module_errors[_i];
    pst_cycle_t           *cycle;
    char                  *dir, *out, *want;

    dir = tu_tmpdir();
    out = load(dir, c->modules, c->conf, &cycle);

    ck_assert_msg(cycle == NULL, "%s: the configuration loaded", c->name);
    want = expand_abi(c->expect);
    ck_assert_msg(strcmp(out, want) == 0, "%s:\n got: %s\nwant: %s",
                  c->name, out, want);

    free(want);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_module_not_elf)
{
    static const char *const  none[] = { NULL };
    pst_cycle_t              *cycle;
    const char               *want;
    char                     *dir, *out, *junk, text[2048];

    /* dlopen's own reason follows; its wording is the C library's */
    dir = tu_tmpdir();
    ck_assert(asprintf(&junk, "%s/junk.so", dir) > 0);
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    tu_write(dir, "junk.so", text);
    ck_assert(chmod(junk, 0755) == 0);

    out = load(dir, none, "load_module junk.so;\n" SMTP, &cycle);
    ck_assert_ptr_null(cycle);
    want = "main.conf:1: cannot load module \"junk.so\": ";
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "got: %s", out);
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);

    free(out);
    free(junk);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Permissions                                                         */

typedef struct {
    const char                  *name;
    mode_t                       mode;
    int                          refused;
} perm_case_t;

static const perm_case_t  perm_cases[] = {
    { "0755", 0755, 0 },
    { "0700", 0700, 0 },
    { "0644 (no x bit is fine for dlopen)", 0644, 0 },
    { "group-writable 0775", 0775, 1 },
    { "group-writable 0765", 0765, 1 },
    { "world-writable 0757", 0757, 1 },
    { "world-writable 0777", 0777, 1 },
    { "world-writable only 0702", 0702, 1 },
};


START_TEST(test_module_permissions)
{
    const perm_case_t  *c = &perm_cases[_i];
    static const char  *const  none[] = { NULL };
    pst_cycle_t        *cycle;
    char               *dir, *out, *p;

    dir = tu_tmpdir();
    p = tu_module_copy(dir, "test_good.so", c->mode);
    free(p);

    out = load(dir, none, "load_module test_good.so;\n" SMTP, &cycle);

    if (c->refused) {
        ck_assert_msg(cycle == NULL, "%s: loaded", c->name);
        ck_assert_str_eq(out, REFUSED_PERM("test_good.so") "\n");
    } else {
        ck_assert_msg(cycle != NULL, "%s: %s", c->name, out);
        pst_destroy_cycle(cycle);
    }

    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_module_owner)
{
    static const char *const  none[] = { NULL };
    pst_cycle_t              *cycle;
    char                     *dir, *out, *p;

    /* a module owned by another user: only root can make one */
    if (geteuid() != 0) {
        return;
    }

    dir = tu_tmpdir();
    p = tu_module_copy(dir, "test_good.so", 0755);
    ck_assert(chown(p, 54321, 54321) == 0);
    free(p);

    out = load(dir, none, "load_module test_good.so;\n" SMTP, &cycle);
    ck_assert_ptr_null(cycle);
    ck_assert_str_eq(out, REFUSED_PERM("test_good.so") "\n");

    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* ------------------------------------------------------------------ */
/* A good module                                                       */

typedef struct {
    pst_int_t                    value;     /* test_good_conf_t */
} good_conf_t;


START_TEST(test_module_good)
{
    static const char *const  mods[] = { "test_good.so", NULL };
    pst_module_entry_t       *me;
    pst_server_t            **srv;
    pst_cycle_t              *cycle;
    good_conf_t              *gc;
    char                     *dir, *out;

    dir = tu_tmpdir();
    out = load(dir, mods,
               "load_module test_good.so;\n"
               "module_priority test_good -5;\n"
               "module_timeout test_good 2s accept;\n"
               "smtp {\n"
               "    test_good_value 3;\n"
               "    server { listen 2525; }\n"
               "    server { listen 2526; test_good_value 9; }\n"
               "    server { listen 2527; test_good off; }\n"
               "}\n", &cycle);
    ck_assert_msg(cycle != NULL, "did not load: %s", out);
    free(out);

    me = pst_module_find(cycle, (u_char *) "test_good", 9);
    ck_assert_ptr_nonnull(me);
    ck_assert_ptr_nonnull(me->handle);
    ck_assert_str_eq(me->desc.version, "1.0");
    /* loaded last, right after the built-in modules (core, smtp,
     * smtp_tls, smtp_auth): no fixed number, built-ins may be added */
    ck_assert_uint_eq(me->index, cycle->modules.nelts - 1);
    ck_assert_ptr_null(((pst_module_entry_t *)
                        cycle->modules.elts)[me->index - 1].handle);
    ck_assert_uint_eq(me->line, 1);
    ck_assert_int_eq(me->priority, -5);
    ck_assert_uint_eq(me->timeout, 2000);
    ck_assert_int_eq(me->fail_action, PST_FAIL_ACCEPT);
    ck_assert_ptr_eq(pst_module_entry(cycle, me->orig), me);

    srv = cycle->servers.elts;
    ck_assert_uint_eq(cycle->servers.nelts, 3);

    /* inherited from the smtp block, set in the server, switched off */
    gc = srv[0]->srv_conf[me->index];
    ck_assert_int_eq(gc->value, 3);
    ck_assert_int_eq(srv[0]->enabled[me->index], 1);
    gc = srv[1]->srv_conf[me->index];
    ck_assert_int_eq(gc->value, 9);
    ck_assert_int_eq(srv[1]->enabled[me->index], 1);
    ck_assert_int_eq(srv[2]->enabled[me->index], 0);

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* Modules built against the released 1.0 and 1.1 headers (tests/
 * fixtures/abi-*) load, are zero-extended (the fields added later read
 * as NULL) and their directives work. */
START_TEST(test_module_old_abi)
{
    static const char *const  mods[] = { "test_abi10.so", "test_abi11.so",
                                         NULL };
    static const char        *names[] = { "test_abi10", "test_abi11" };
    static const int          dflt[] = { 10, 11 };
    pst_module_entry_t       *me;
    pst_server_t            **srv;
    pst_cycle_t              *cycle;
    good_conf_t              *gc;
    char                     *dir, *out;
    int                       i;

    dir = tu_tmpdir();
    out = load(dir, mods,
               "load_module test_abi10.so;\n"
               "load_module test_abi11.so;\n"
               "smtp {\n"
               "    server { listen 2525; test_abi10_value 3; }\n"
               "}\n", &cycle);
    ck_assert_msg(cycle != NULL, "did not load: %s", out);
    free(out);

    srv = cycle->servers.elts;
    for (i = 0; i < 2; i++) {
        me = pst_module_find(cycle, (u_char *) names[i], 10);
        ck_assert_ptr_nonnull(me);
        ck_assert_uint_eq(me->desc.abi_minor, (unsigned) i);
        ck_assert_uint_lt(me->orig->size, sizeof(pst_module_t));
        ck_assert_ptr_null(me->desc.router);
        ck_assert_ptr_null(me->desc.queue_event);
        gc = srv[0]->srv_conf[me->index];
        ck_assert_int_eq(gc->value, i == 0 ? 3 : dflt[i]);
    }

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_module_switch_inherit)
{
    static const char *const  mods[] = { "test_good.so", NULL };
    pst_module_entry_t       *me;
    pst_server_t            **srv;
    pst_cycle_t              *cycle;
    good_conf_t              *gc;
    char                     *dir, *out;

    /* off for the smtp block, back on in one server; the module's own
     * default (7) when nothing sets its directive */
    dir = tu_tmpdir();
    out = load(dir, mods,
               "load_module test_good.so;\n"
               "smtp {\n"
               "    test_good off;\n"
               "    server { listen 2525; }\n"
               "    server { listen 2526; test_good on; }\n"
               "}\n", &cycle);
    ck_assert_msg(cycle != NULL, "did not load: %s", out);
    free(out);

    me = pst_module_find(cycle, (u_char *) "test_good", 9);
    srv = cycle->servers.elts;
    ck_assert_int_eq(srv[0]->enabled[me->index], 0);
    ck_assert_int_eq(srv[1]->enabled[me->index], 1);
    gc = srv[1]->srv_conf[me->index];
    ck_assert_int_eq(gc->value, 7);

    /* built-in modules are always on */
    ck_assert_int_eq(srv[0]->enabled[0], 1);
    ck_assert_int_eq(srv[0]->enabled[1], 1);

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


Suite *
suite_module(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("module");

    tc = tcase_create("refused");
    tcase_add_test(tc, test_check_descriptor);
    tcase_add_loop_test(tc, test_module_error, 0, pst_nelems(module_errors));
    tcase_add_test(tc, test_module_not_elf);
    tcase_add_loop_test(tc, test_module_permissions, 0,
                        pst_nelems(perm_cases));
    tcase_add_test(tc, test_module_owner);
    suite_add_tcase(s, tc);

    tc = tcase_create("loaded");
    tcase_add_test(tc, test_module_good);
    tcase_add_test(tc, test_module_old_abi);
    tcase_add_test(tc, test_module_switch_inherit);
    suite_add_tcase(s, tc);

    return s;
}
