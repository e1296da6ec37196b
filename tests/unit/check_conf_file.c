/*
 * check_conf_file.c -- the configuration parser (pst_conf_file.c) and
 * the directives of the built-in core and smtp modules, through
 * pst_init_cycle() as postern -t runs it.
 *
 * An administrator sees only the message, so every error path is held
 * to its exact "file:line: message" text: the right file (an included
 * one when the error is there), the right line, and nothing else on
 * stderr.  The good configurations check the defaults that
 * pst_smtp_module.c and pst_cycle.c promise.
 */

#include "check_util.h"
#include "check_suites.h"

/* one server on a fixed address: enough for a configuration to load */
#define SMTP     "smtp { server { listen 127.0.0.1:2525; } }\n"
#define SRV(d)   "smtp { server { listen 127.0.0.1:2525; " d " } }\n"
#define NO_STORE "warning: this server has no store module (load"          \
                 " store_spool.so): it will refuse DATA"
#define BAD_LISTEN(a)                                                        \
    "main.conf:1: invalid listen address \"" a "\" (use ADDRESS:PORT,"      \
    " [IPv6]:PORT or PORT)"

typedef struct {
    const char                  *name;
    const char                  *conf;
    const char                  *expect;     /* all of stderr, one line */
    const char                  *files[7];   /* name, text, ..., NULL */
} conf_error_t;

static const conf_error_t  conf_errors[] = {

    /* unknown and misplaced directives */
    { "unknown directive", "bogus on;\n" SMTP,
      "main.conf:1: unknown directive \"bogus\"" },
    { "unknown directive in a server",
      "smtp {\n    server {\n        listen 2525;\n        bogus;\n"
      "    }\n}\n",
      "main.conf:4: unknown directive \"bogus\"" },
    { "server directive at the top", "hostname mx.example;\n" SMTP,
      "main.conf:1: \"hostname\" directive is not allowed at the top"
      " level" },
    { "listen in the smtp block",
      "smtp {\n    listen 2525;\n    server { listen 2526; }\n}\n",
      "main.conf:2: \"listen\" directive is not allowed in the smtp"
      " block" },
    { "top-level directive in a server", SRV("daemon off;"),
      "main.conf:1: \"daemon\" directive is not allowed in a server"
      " block" },
    { "server block at the top", "server { listen 2525; }\n" SMTP,
      "main.conf:1: \"server\" directive is not allowed at the top"
      " level" },
    { "smtp block inside smtp", "smtp { smtp { } }\n",
      "main.conf:1: \"smtp\" directive is not allowed in the smtp block" },

    /* arity */
    { "flag without argument", "daemon;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"daemon\" directive" },
    { "flag with two arguments", "daemon on off;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"daemon\" directive" },
    { "TAKE1 with two", "worker_processes 1 2;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"worker_processes\""
      " directive" },
    { "TAKE12 with three", "user a b c;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"user\" directive" },
    { "TAKE2 with one", "module_priority smtp;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"module_priority\""
      " directive" },
    { "1MORE with none", "resolver;\n" SMTP,
      "main.conf:1: invalid number of arguments in \"resolver\""
      " directive" },
    { "block with an argument", "smtp on { server { listen 2525; } }\n",
      "main.conf:1: invalid number of arguments in \"smtp\" directive" },
    { "listen without address", SRV("listen;"),
      "main.conf:1: invalid number of arguments in \"listen\" directive" },

    /* ';', '{' and '}' */
    { "missing ';' before a directive", "daemon off\nworker_processes 2;\n"
      SMTP,
      "main.conf:1: invalid number of arguments in \"daemon\" directive" },
    { "missing ';' before a block", "daemon off\n" SMTP,
      "main.conf:1: directive \"daemon\" is not terminated by \";\"" },
    { "missing ';' at the end of the file", SMTP "daemon off",
      "main.conf:2: unexpected end of file, expecting \";\" or \"}\"" },
    { "missing ';' before '}'", "smtp { server { listen 2525 } }\n",
      "main.conf:1: unexpected \"}\"" },
    { "block directive with ';'", "smtp;\n",
      "main.conf:1: directive \"smtp\" has no opening \"{\"" },
    { "'}' at the top", "}\n" SMTP,
      "main.conf:1: unexpected \"}\"" },
    { "one '}' too many", SMTP "\n}\n",
      "main.conf:3: unexpected \"}\"" },
    { "'{' without a directive", "{ daemon off; }\n" SMTP,
      "main.conf:1: unexpected \"{\"" },
    { "';' without a directive", "daemon off;;\n" SMTP,
      "main.conf:1: unexpected \";\"" },
    { "end of file inside a block",
      "smtp {\n    server {\n        listen 2525;\n    }\n",
      "main.conf:5: unexpected end of file, expecting \"}\"" },
    { "end of file inside a nested block", "smtp {\n    server {\n",
      "main.conf:3: unexpected end of file, expecting \"}\"" },

    /* quoting */
    { "unterminated double quote", "error_log \"stderr;\n" SMTP,
      "main.conf:1: unterminated quoted string" },
    { "unterminated single quote", "daemon off;\n\nerror_log 'stderr;\n",
      "main.conf:3: unterminated quoted string" },
    { "quote inside a word", "error_log std\"err\";\n" SMTP,
      "main.conf:1: unexpected quote inside \"std\"" },
    { "single quote inside a word", "error_log std'err';\n" SMTP,
      "main.conf:1: unexpected quote inside \"std\"" },
    { "text after a quoted string", "error_log \"std\"err;\n" SMTP,
      "main.conf:1: unexpected \"e\" after quoted string" },
    { "two quoted strings glued", "error_log 'std''err';\n" SMTP,
      "main.conf:1: unexpected \"'\" after quoted string" },
    { "line of a multi-line directive",
      "daemon off;\nerror_log\n    \"/no/such/dir/x.log\"\n    loud;\n"
      SMTP,
      "main.conf:2: unknown log level \"loud\" (use emerg, alert, crit,"
      " error, warn, notice, info or debug)" },

    /* values */
    { "bad flag", "daemon yes;\n" SMTP,
      "main.conf:1: invalid value \"yes\" in \"daemon\" directive, it must"
      " be \"on\" or \"off\"" },
    { "flag in capitals", "daemon ON;\n" SMTP,
      "main.conf:1: invalid value \"ON\" in \"daemon\" directive, it must"
      " be \"on\" or \"off\"" },
    { "bad number", "worker_connections many;\n" SMTP,
      "main.conf:1: invalid number \"many\" in \"worker_connections\""
      " directive" },
    { "negative number", "worker_connections -5;\n" SMTP,
      "main.conf:1: invalid number \"-5\" in \"worker_connections\""
      " directive" },
    { "number over 2^31-1", "worker_connections 2147483648;\n" SMTP,
      "main.conf:1: invalid number \"2147483648\" in"
      " \"worker_connections\" directive" },
    { "bad size", "smtp {\n    message_size_limit 10q;\n}\n",
      "main.conf:2: invalid size \"10q\" in \"message_size_limit\""
      " directive (use a number with an optional k, m or g)" },
    { "size overflow", SRV("message_size_limit 99999999999999999999k;"),
      "main.conf:1: invalid size \"99999999999999999999k\" in"
      " \"message_size_limit\" directive (use a number with an optional"
      " k, m or g)" },
    { "bad time", SRV("smtp_command_timeout 5y;"),
      "main.conf:1: invalid time \"5y\" in \"smtp_command_timeout\""
      " directive (use e.g. 250ms, 30s, 5m, 1h)" },
    { "time overflow", "worker_shutdown_timeout 1000000000000d;\n" SMTP,
      "main.conf:1: invalid time \"1000000000000d\" in"
      " \"worker_shutdown_timeout\" directive (use e.g. 250ms, 30s, 5m,"
      " 1h)" },
    /* as in nginx, '#' opens a comment only where a word would begin */
    { "'#' inside a word", SRV("max_messages_per_session 5#x;"),
      "main.conf:1: invalid number \"5#x\" in \"max_messages_per_session\""
      " directive" },
    { "bad enum", SRV("smtp_bare_newline lenient;"),
      "main.conf:1: invalid value \"lenient\" in \"smtp_bare_newline\""
      " directive, it must be one of \"normalize\", \"reject\"" },
    { "worker_processes 0", "worker_processes 0;\n" SMTP,
      "main.conf:1: invalid value \"0\" in \"worker_processes\", it must"
      " be \"auto\" or a number from 1" },
    { "bad log level", "error_log stderr loud;\n" SMTP,
      "main.conf:1: unknown log level \"loud\" (use emerg, alert, crit,"
      " error, warn, notice, info or debug)" },
    { "bad resolver", "resolver 127.0.0.1 192.0.2.1:99999;\n" SMTP,
      "main.conf:1: invalid resolver address \"192.0.2.1:99999\" (use"
      " ADDRESS, ADDRESS:PORT or [IPv6]:PORT)" },
    { "empty path", "pid \"\";\n" SMTP,
      "main.conf:1: \"pid\" directive has an empty path" },
    { "module_priority of an unknown module",
      "module_priority nosuch 1;\n" SMTP,
      "main.conf:1: module \"nosuch\" is not loaded (put"
      " \"module_priority\" after its load_module line)" },
    { "bad priority", "module_priority smtp high;\n" SMTP,
      "main.conf:1: invalid priority \"high\"" },
    { "module_timeout 0", "module_timeout smtp 0;\n" SMTP,
      "main.conf:1: invalid time \"0\" in \"module_timeout\"" },
    { "bad failure action", "module_timeout smtp 5s explode;\n" SMTP,
      "main.conf:1: invalid failure action \"explode\", it must be"
      " \"tempfail\", \"accept\" or \"reject\"" },

    /* duplicates */
    { "duplicate flag", "daemon off;\ndaemon on;\n" SMTP,
      "main.conf:2: \"daemon\" directive is duplicate" },
    { "duplicate number", "worker_connections 100;\n"
      "worker_connections 100;\n" SMTP,
      "main.conf:2: \"worker_connections\" directive is duplicate" },
    { "duplicate time", "worker_shutdown_timeout 1s;\n"
      "worker_shutdown_timeout 2s;\n" SMTP,
      "main.conf:2: \"worker_shutdown_timeout\" directive is duplicate" },
    { "duplicate path", "pid a.pid;\npid b.pid;\n" SMTP,
      "main.conf:2: \"pid\" directive is duplicate" },
    { "duplicate worker_processes", "worker_processes auto;\n"
      "worker_processes 2;\n" SMTP,
      "main.conf:2: \"worker_processes\" directive is duplicate" },
    { "duplicate error_log", "error_log stderr;\nerror_log stderr;\n" SMTP,
      "main.conf:2: \"error_log\" directive is duplicate" },
    { "duplicate user", "user a;\nuser b;\n" SMTP,
      "main.conf:2: \"user\" directive is duplicate" },
    { "duplicate resolver", "resolver 127.0.0.1;\nresolver 127.0.0.1;\n"
      SMTP,
      "main.conf:2: \"resolver\" directive is duplicate" },
    { "duplicate smtp block", SMTP SMTP,
      "main.conf:2: \"smtp\" directive is duplicate" },
    { "duplicate string", SRV("hostname a.example; hostname b.example;"),
      "main.conf:1: \"hostname\" directive is duplicate" },
    { "duplicate size", SRV("message_size_limit 1m;\n"
                            "message_size_limit 1m;"),
      "main.conf:2: \"message_size_limit\" directive is duplicate" },
    { "duplicate enum", SRV("smtp_bare_newline reject;"
                            " smtp_bare_newline reject;"),
      "main.conf:1: \"smtp_bare_newline\" directive is duplicate" },
    { "duplicate server flag", SRV("smtp_debug on; smtp_debug off;"),
      "main.conf:1: \"smtp_debug\" directive is duplicate" },
    { "duplicate listen", SRV("listen 127.0.0.1:2525;"),
      "main.conf:1: \"listen\" directive is duplicate" },
    { "duplicate listen, other spelling",
      "smtp { server { listen 2525; listen *:2525; } }\n",
      "main.conf:1: \"listen\" directive is duplicate" },

    /* include */
    { "include of a missing file", "include missing.conf;\n" SMTP,
      "main.conf:1: cannot open \"missing.conf\": No such file or"
      " directory" },
    { "include of a directory", "include conf.d;\n" SMTP,
      "main.conf:1: \"conf.d\" is not a regular file of at most 16 MiB",
      { "conf.d/x", "" } },
    { "error inside an included file", "daemon off;\ninclude inc.conf;\n"
      SMTP,
      "inc.conf:2: unknown directive \"bogus\"",
      { "inc.conf", "worker_processes 1;\nbogus;\n" } },
    { "error in the second file of a glob", "include conf.d/*.conf;\n"
      SMTP,
      "conf.d/b.conf:3: \"daemon\" directive is duplicate",
      { "conf.d/a.conf", "daemon off;\n", "conf.d/b.conf",
        "# b\n\ndaemon on;\n" } },
    { "block left open in an included file",
      "include inc.conf;\nserver { listen 2525; }\n}\n",
      "inc.conf:2: unexpected end of file, expecting \"}\"",
      { "inc.conf", "smtp {\n" } },
    { "include with two paths", "include a.conf b.conf;\n" SMTP,
      "main.conf:1: \"include\" takes one path and ends with \";\"" },
    { "include with a block", "include a.conf { }\n" SMTP,
      "main.conf:1: \"include\" takes one path and ends with \";\"" },
    { "include of itself", "include main.conf;\n" SMTP,
      "main.conf:1: includes nested too deeply at \"main.conf\"" },
    { "include loop", "include a.conf;\n" SMTP,
      "a.conf:1: includes nested too deeply at \"b.conf\"",
      { "a.conf", "include b.conf;\n", "b.conf", "include a.conf;\n" } },

    /* module switches and load_module */
    { "load_module after the smtp block",
      SMTP "load_module @MOD@/test_good.so;\n",
      "main.conf:2: \"load_module\" directive is specified too late:"
      " load_module lines must come before the smtp block" },
    { "module switch with a bad value",
      "load_module @MOD@/test_good.so;\n" SRV("test_good maybe;"),
      "main.conf:2: invalid value \"maybe\" for module switch"
      " \"test_good\", it must be \"on\" or \"off\"" },
    { "module switch at the top",
      "load_module @MOD@/test_good.so;\ntest_good off;\n" SMTP,
      "main.conf:2: \"test_good on|off\" belongs in the smtp or a server"
      " block" },
    { "switching a built-in module",
      "smtp {\n    core off;\n    server { listen 2525; }\n}\n",
      "main.conf:2: built-in module \"core\" cannot be switched off" },
    { "switch of a module not loaded", SRV("test_good off;"),
      "main.conf:1: unknown directive \"test_good\"" },

    /* server blocks and listen */
    { "server without listen",
      "smtp {\n    server {\n        hostname mx.example;\n    }\n}\n",
      "main.conf:2: server block without a \"listen\" directive" },
    { "second server without listen",
      "smtp {\n    server { listen 2525; }\n    server { }\n}\n",
      "main.conf:3: server block without a \"listen\" directive" },
    { "listen port too big", SRV("listen 127.0.0.1:65536;"),
      BAD_LISTEN("127.0.0.1:65536") },
    { "listen port 0", SRV("listen 0;"), BAD_LISTEN("0") },
    { "listen bare port too big", SRV("listen 99999;"),
      BAD_LISTEN("99999") },
    { "listen without a port", SRV("listen 127.0.0.1;"),
      BAD_LISTEN("127.0.0.1") },
    { "listen IPv6 without a port", SRV("listen [::1];"),
      BAD_LISTEN("[::1]") },
    { "listen unclosed IPv6", SRV("listen [::1:2525;"),
      BAD_LISTEN("[::1:2525") },
    { "listen IPv6 without brackets", SRV("listen ::1:2525;"),
      BAD_LISTEN("::1:2525") },
    { "listen junk after ']'", SRV("listen [::1]x2525;"),
      BAD_LISTEN("[::1]x2525") },
    { "listen empty IPv6", SRV("listen []:2525;"), BAD_LISTEN("[]:2525") },
    { "listen bad IPv4", SRV("listen 300.1.1.1:2525;"),
      BAD_LISTEN("300.1.1.1:2525") },
    { "listen host name", SRV("listen localhost:2525;"),
      BAD_LISTEN("localhost:2525") },
    { "listen empty port", SRV("listen 127.0.0.1:;"),
      BAD_LISTEN("127.0.0.1:") },
    { "listen empty host", SRV("listen :2525;"), BAD_LISTEN(":2525") },
    { "listen port with sign", SRV("listen 127.0.0.1:+25;"),
      BAD_LISTEN("127.0.0.1:+25") },
    { "listen unknown parameter", SRV("listen 2526 ssl;"),
      "main.conf:1: unknown listen parameter \"ssl\" (use tls, submission,"
      " proxy_protocol, default_server, backlog=N)" },
    { "listen empty backlog", SRV("listen 2526 backlog=;"),
      "main.conf:1: unknown listen parameter \"backlog=\" (use tls,"
      " submission, proxy_protocol, default_server, backlog=N)" },
    { "listen backlog 0", SRV("listen 2526 backlog=0;"),
      "main.conf:1: invalid \"backlog=0\"" },
    { "listen backlog too big", SRV("listen 2526 backlog=65536;"),
      "main.conf:1: invalid \"backlog=65536\"" },
    { "listen backlog not a number", SRV("listen 2526 backlog=lots;"),
      "main.conf:1: invalid \"backlog=lots\"" },
    { "listen options differ",
      "smtp {\n    server { listen 2525; }\n"
      "    server { listen 2525 tls; }\n}\n",
      "main.conf:3: listen 0.0.0.0:2525: options differ from the same"
      " address at main.conf:2" },
    { "listen proxy_protocol differs",
      "smtp {\n    server { listen 2525 proxy_protocol; }\n"
      "    server { listen 2525; }\n}\n",
      "main.conf:3: listen 0.0.0.0:2525: options differ from the same"
      " address at main.conf:2" },
    { "proxy_trusted bad range", SRV("proxy_trusted 10.0.0.0/33;"),
      "main.conf:1: invalid address range \"10.0.0.0/33\" in"
      " \"proxy_trusted\" (use ADDRESS or ADDRESS/BITS)" },
    { "xclient_trusted not an address", SRV("xclient_trusted nginx;"),
      "main.conf:1: invalid address range \"nginx\" in"
      " \"xclient_trusted\" (use ADDRESS or ADDRESS/BITS)" },

    /* limits checked when the server blocks are merged */
    { "command line limit below 512",
      "smtp {\n    smtp_command_line_limit 100;\n"
      "    server { listen 2525; }\n}\n",
      "main.conf:3: module \"smtp\": smtp_command_line_limit must be"
      " between 512 (RFC 5321 4.5.3.1.4) and 32k" },
    { "command line limit 511", SRV("smtp_command_line_limit 511;"),
      "main.conf:1: module \"smtp\": smtp_command_line_limit must be"
      " between 512 (RFC 5321 4.5.3.1.4) and 32k" },
    { "command line limit over 32k", SRV("smtp_command_line_limit 33k;"),
      "main.conf:1: module \"smtp\": smtp_command_line_limit must be"
      " between 512 (RFC 5321 4.5.3.1.4) and 32k" },
    { "text line limit 999", SRV("smtp_text_line_limit 999;"),
      "main.conf:1: module \"smtp\": smtp_text_line_limit must be 0"
      " (none) or at least 1000 (RFC 5321 4.5.3.1.6)" },
    { "max_recipients 99", SRV("max_recipients 99;"),
      "main.conf:1: module \"smtp\": max_recipients must be at least 100"
      " (RFC 5321 4.5.3.1.8)" },
    { "header size limit 1k", SRV("smtp_header_size_limit 1k;"),
      "main.conf:1: module \"smtp\": smtp_header_size_limit must be at"
      " least 4k" },
    { "bad hostname", SRV("hostname -bad-;"),
      "main.conf:1: invalid hostname \"-bad-\": it must be a domain name"
      " of at most 255 bytes" },
    { "UTF-8 hostname", SRV("hostname b\xc3\xbc" "cher.de;"),
      "main.conf:1: invalid hostname \"b\\xc3\\xbc" "cher.de\": it must"
      " be a domain name of at most 255 bytes" },
    { "store not loaded", SRV("store nosuch;"),
      "main.conf:1: \"store nosuch\": no such store module is loaded and"
      " switched on for this server" },
    { "worker_connections below 16", "worker_connections 8;\n" SMTP,
      "main.conf:1: module \"core\": worker_connections must be at least"
      " 16" },

    /* nothing to serve */
    { "no smtp block", "daemon off;\n",
      "main.conf:1: no \"smtp { server { listen ...; } }\" block: nothing"
      " to serve" },
    { "empty file", "",
      "main.conf:1: no \"smtp { server { listen ...; } }\" block: nothing"
      " to serve" },
    /* text that reaches the wire (issue #17) */
    { "CR LF in the banner",
      "smtp {\n    server {\n        listen 2525;\n"
      "        smtp_banner \"ESMTP\\r\\n250 injected\";\n    }\n}\n",
      "main.conf:4: \"smtp_banner\": invalid character \"\\r\" at byte 6:"
      " text sent to clients must be printable ASCII or TAB, without CR,"
      " LF or other control characters" },
    { "escape character in the banner",
      SRV("smtp_banner \"a\x1b[2Jb\";"),
      "main.conf:1: \"smtp_banner\": invalid character \"\\x1b\" at byte"
      " 2: text sent to clients must be printable ASCII or TAB, without"
      " CR, LF or other control characters" },
    { "non-ASCII banner", SRV("smtp_banner \"caf\xc3\xa9\";"),
      "main.conf:1: \"smtp_banner\": invalid character \"\\xc3\" at byte"
      " 4: text sent to clients must be printable ASCII or TAB, without"
      " CR, LF or other control characters" },
    { "LF in the host name",
      "smtp {\n    hostname \"mx.example\\nx\";\n"
      "    server { listen 2525; }\n}\n",
      "main.conf:2: invalid hostname \"mx.example\\nx\": it must be a"
      " domain name of at most 255 bytes" },

    /* node_name: a word that goes into headers and log lines as is */
    { "node name with a space", "node_name \"mx a\";\n" SMTP,
      "main.conf:1: invalid node_name \"mx a\": it must be 1 to 64"
      " letters, digits, \"-\", \"_\" or \".\", the first a letter or a"
      " digit" },
    { "node name with a comment's parenthesis",
      "\nnode_name \"a)(b\";\n" SMTP,
      "main.conf:2: invalid node_name \"a)(b\": it must be 1 to 64"
      " letters, digits, \"-\", \"_\" or \".\", the first a letter or a"
      " digit" },
    { "node name starting with a dash", "node_name -mx;\n" SMTP,
      "main.conf:1: invalid node_name \"-mx\": it must be 1 to 64"
      " letters, digits, \"-\", \"_\" or \".\", the first a letter or a"
      " digit" },
    { "node name with a LF", "node_name \"mx\\nb\";\n" SMTP,
      "main.conf:1: invalid node_name \"mx\\nb\": it must be 1 to 64"
      " letters, digits, \"-\", \"_\" or \".\", the first a letter or a"
      " digit" },
    { "node name of 65 bytes",
      "node_name 0123456789012345678901234567890123456789012345678901234"
      "5678901234;\n" SMTP,
      "main.conf:1: invalid node_name \"0123456789012345678901234567890123"
      "4567890123456789012345678901234\": it must be 1 to 64 letters,"
      " digits, \"-\", \"_\" or \".\", the first a letter or a digit" },
    { "node name twice", "node_name a;\nnode_name b;\n" SMTP,
      "main.conf:2: \"node_name\" directive is duplicate" },
    { "node name in smtp", "smtp { node_name a; server { listen 2525; } }\n",
      "main.conf:1: \"node_name\" directive is not allowed in the smtp"
      " block" },

    { "empty smtp block", "# nothing\nsmtp { }\n",
      "main.conf:1: no \"smtp { server { listen ...; } }\" block: nothing"
      " to serve" },
};


START_TEST(test_conf_error)
{
    const conf_error_t  *c = &conf_errors[_i];
    pst_cycle_t         *cycle;
    char                *dir, *out, *want;

    dir = tu_tmpdir();
    out = tu_load_conf(dir, c->conf, c->files, &cycle);

    ck_assert_msg(cycle == NULL, "%s: the configuration loaded", c->name);
    ck_assert(asprintf(&want, "%s\n", c->expect) > 0);
    ck_assert_msg(strcmp(out, want) == 0, "%s:\n got: %s\nwant: %s",
                  c->name, out, want);

    free(want);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_missing_file)
{
    pst_cycle_t  *cycle;
    char         *dir, *out;

    dir = tu_tmpdir();
    out = tu_load_conf(dir, SMTP, NULL, &cycle);
    pst_destroy_cycle(cycle);
    free(out);

    /* tu_load_conf wrote main.conf: ask for another one.  There is no
     * line to point at, only the file. */
    out = tu_init_cycle(dir, "nosuch.conf", &cycle);
    ck_assert_ptr_null(cycle);
    ck_assert_str_eq(out, "postern: cannot open \"nosuch.conf\": No such"
                     " file or directory\n");
    free(out);

    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_unknown_user)
{
    pst_cycle_t  *cycle;
    char         *dir, *out;

    /* user is only resolved when running as root */
    if (geteuid() != 0) {
        return;
    }

    dir = tu_tmpdir();
    out = tu_load_conf(dir, "user pst-no-such-user;\n" SMTP, NULL, &cycle);
    ck_assert_ptr_null(cycle);
    ck_assert_str_eq(out, "main.conf:1: module \"core\": names an unknown"
                     " user (directive \"user\")\n");

    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_include_depth)
{
    pst_cycle_t  *cycle;
    char         *dir, *out, name[32], text[64];
    int           i;

    /* main.conf and 15 nested includes (16 files) load; a 17th level
     * is refused, in the file that asks for it */
    dir = tu_tmpdir();
    for (i = 1; i <= 16; i++) {
        snprintf(name, sizeof(name), "f%d.conf", i);
        snprintf(text, sizeof(text), "include f%d.conf;\n", i + 1);
        tu_write(dir, name, i == 15 ? "daemon off;\n" : text);
    }

    out = tu_load_conf(dir, "include f1.conf;\n" SMTP, NULL, &cycle);
    ck_assert_msg(cycle != NULL, "15 levels: %s", out);
    ck_assert_int_eq(cycle->core->daemon, 0);
    pst_destroy_cycle(cycle);
    free(out);

    tu_write(dir, "f15.conf", "include f16.conf;\n");
    tu_write(dir, "f16.conf", "daemon off;\n");
    out = tu_load_conf(dir, "include f1.conf;\n" SMTP, NULL, &cycle);
    ck_assert_ptr_null(cycle);
    ck_assert_str_eq(out, "f15.conf:1: includes nested too deeply at"
                     " \"f16.conf\"\n");
    free(out);

    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* ------------------------------------------------------------------ */
/* Good configurations                                                 */

static pst_cycle_t *
load_good(const char *dir, const char *conf, const char *const *files,
    pst_uint_t nservers)
{
    pst_cycle_t  *cycle;
    const char   *p;
    char         *out;
    pst_uint_t    n;

    out = tu_load_conf(dir, conf, files, &cycle);
    ck_assert_msg(cycle != NULL, "did not load: %s", out);

    /* the only thing said: no store module (none is loaded here) */
    for (p = out, n = 0; *p != '\0'; p = strchr(p, '\n') + 1, n++) {
        ck_assert_msg(strstr(tu_first_line(p), NO_STORE) != NULL,
                      "unexpected: %s", tu_first_line(p));
    }
    ck_assert_uint_eq(n, nservers);
    ck_assert_uint_eq(cycle->servers.nelts, nservers);

    free(out);
    return cycle;
}


static pst_smtp_srv_conf_t *
server_conf(pst_cycle_t *cycle, pst_uint_t i)
{
    pst_server_t  **srv = cycle->servers.elts;

    ck_assert_uint_lt(i, cycle->servers.nelts);
    return srv[i]->conf;
}


static void
check_str_value(const pst_str_t *s, const char *want)
{
    ck_assert_msg(s->len == strlen(want)
                  && memcmp(s->data, want, s->len) == 0,
                  "\"%.*s\", expected \"%s\"", (int) s->len, s->data, want);
}


/* Lengths: 250 bytes of banner load, 251 do not (file:line named); 64
 * arguments after a directive's name load, 65 do not, and the error
 * names the directive and the limit. */
START_TEST(test_conf_limits)
{
    pst_cycle_t  *cycle;
    char          text[300], *dir, *conf, *out, *p;
    int           i, k;

    dir = tu_tmpdir();

    memset(text, 'x', sizeof(text));
    text[250] = '\0';
    ck_assert(asprintf(&conf, "smtp {\n    smtp_banner \"%s\";\n"
                       "    server { listen 2525; }\n}\n", text) > 0);
    out = tu_load_conf(dir, conf, NULL, &cycle);
    ck_assert_msg(cycle != NULL, "250 bytes refused: %s", out);
    ck_assert_uint_eq(server_conf(cycle, 0)->banner.len, 250);
    pst_destroy_cycle(cycle);
    free(out);
    free(conf);

    text[250] = 'x';
    text[251] = '\0';
    ck_assert(asprintf(&conf, "smtp {\n    smtp_banner \"%s\";\n"
                       "    server { listen 2525; }\n}\n", text) > 0);
    out = tu_load_conf(dir, conf, NULL, &cycle);
    ck_assert(cycle == NULL);
    ck_assert_str_eq(out, "main.conf:2: \"smtp_banner\": the text is 251"
                     " bytes long, the limit is 250 (it goes into SMTP"
                     " replies, whose lines RFC 5321 4.5.3.1.5 limits to"
                     " 512)\n");
    free(out);
    free(conf);

    for (i = 64; i <= 65; i++) {
        conf = malloc(64 + (size_t) i * 16);
        ck_assert_ptr_nonnull(conf);
        p = conf + sprintf(conf, "smtp {\n    server {\n        listen"
                           " 2525;\n        tls_server_names");
        for (k = 0; k < i; k++) {
            p += sprintf(p, " n%d.example", k);
        }
        sprintf(p, ";\n    }\n}\n");
        out = tu_load_conf(dir, conf, NULL, &cycle);
        if (i == 64) {
            ck_assert_msg(cycle != NULL, "64 arguments refused: %s", out);
            pst_destroy_cycle(cycle);
        } else {
            ck_assert(cycle == NULL);
            ck_assert_str_eq(out, "main.conf:4: \"tls_server_names\""
                             " directive has more than 64 arguments, the"
                             " limit per directive (repeat the directive,"
                             " or use a file where it takes one)\n");
        }
        free(out);
        free(conf);
    }

    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_defaults)
{
    pst_smtp_srv_conf_t  *c;
    pst_core_conf_t      *ccf;
    pst_listening_t      *ls;
    pst_cycle_t          *cycle;
    char                 *dir, *path, host[256];
    long                  n;

    dir = tu_tmpdir();
    cycle = load_good(dir, SMTP, NULL, 1);
    c = server_conf(cycle, 0);

    /* the defaults of pst_smtp_merge_srv_conf() */
    ck_assert_uint_eq(c->command_line_limit, 2048);
    ck_assert_uint_eq(c->text_line_limit, 65536);
    ck_assert_uint_eq(c->message_size_limit, 50 * 1024 * 1024);
    ck_assert_uint_eq(c->header_size_limit, 256 * 1024);
    ck_assert_int_eq(c->max_recipients, 1000);
    ck_assert_int_eq(c->max_messages, 1000);
    ck_assert_int_eq(c->max_errors, 20);
    ck_assert_int_eq(c->max_junk_commands, 100);
    ck_assert_int_eq(c->max_connections, 10000);
    ck_assert_int_eq(c->max_connections_per_ip, 50);
    ck_assert_uint_eq(c->command_timeout, 5 * 60 * 1000);
    ck_assert_uint_eq(c->data_timeout, 3 * 60 * 1000);
    ck_assert_uint_eq(c->hook_timeout, 30 * 1000);
    ck_assert_uint_eq(c->dns_timeout, 10 * 1000);
    ck_assert_uint_eq(c->bare_newline, PST_BARE_NL_NORMALIZE);
    ck_assert_int_eq(c->debug, 0);
    ck_assert_int_eq(c->pipelining, 1);
    ck_assert_int_eq(c->chunking, 1);
    ck_assert_int_eq(c->smtputf8, 1);
    ck_assert_int_eq(c->dsn, 1);
    /* unset: on exactly when a resolver is configured */
    ck_assert_int_eq(c->reverse_lookup, PST_CONF_UNSET);
    check_str_value(&c->banner, "ESMTP Postern");
    check_str_value(&c->store, "");

    /* hostname: the system's name */
    if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    check_str_value(&c->hostname, host);
    /* node_name: the same host name (a Linux one fits its 64 bytes) */
    check_str_value(&cycle->core->node_name, host);

    /* the defaults of pst_core_init_conf() */
    ccf = cycle->core;
    ck_assert_int_eq(ccf->daemon, 1);
    ck_assert_int_eq(ccf->worker_connections, 4096);
    ck_assert_int_eq(ccf->worker_rlimit_nofile, 0);
    ck_assert_int_eq(ccf->log_level, PST_LOG_NOTICE);
    ck_assert_uint_eq(ccf->shutdown_timeout, 10 * 60 * 1000);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(ccf->worker_processes,
                     pst_min(n > 0 ? n : 1, PST_MAX_PROCS / 2 - 1));
    ck_assert_ptr_null(ccf->resolvers);

    /* paths are under the prefix */
    ck_assert(asprintf(&path, "%s/postern.pid", dir) > 0);
    check_str_value(&ccf->pid, path);
    free(path);
    ck_assert(asprintf(&path, "%s/spool", dir) > 0);
    check_str_value(&ccf->spool_dir, path);
    free(path);

    /* one listener, not opened by reading the configuration */
    ck_assert_uint_eq(cycle->listening.nelts, 1);
    ls = cycle->listening.elts;
    ck_assert_str_eq((char *) ls->addr_text, "127.0.0.1:2525");
    ck_assert_int_eq(ls->fd, -1);
    ck_assert_int_eq(ls->backlog, 511);
    ck_assert_uint_eq(ls->tls, 0);
    ck_assert_uint_eq(ls->submission, 0);

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_values)
{
    static const char *const  files[] = {
        "conf.d/limits.conf", "max_errors 5;   # from an include\n",
        "server.inc", "server {\n    listen [::1]:2526 submission"
                      " backlog=16;\n}\n",
        NULL
    };
    pst_smtp_srv_conf_t      *a, *b;
    pst_core_conf_t          *ccf;
    pst_listening_t          *ls;
    pst_cycle_t              *cycle;
    char                     *dir;

    dir = tu_tmpdir();
    cycle = load_good(dir,
        "# comment line\n"
        "daemon off;      # trailing comment\n"
        "worker_processes 3;\n"
        "worker_connections 100;\n"
        "worker_shutdown_timeout 1h30m;\n"
        "error_log stderr debug;\n"
        "pid /run/postern-test.pid;\n"
        "node_name mx-b.node_2;\n"
        "\n"
        "smtp {\n"
        "    message_size_limit 10m;\n"
        "    smtp_command_timeout 90s;\n"
        "    smtp_bare_newline reject;\n"
        "    smtp_banner \"say \\\"hi\\\"\\tthere\";\n"
        "    hostname 'mx.example';\n"
        "    max_messages_per_session 5 #a comment before the ';'\n"
        "    ;\n"
        "    include conf.d/*.conf;\n"
        "    include conf.d/none-*.conf;\n"
        "\n"
        "    server {\n"
        "        listen 127.0.0.1:2525 default_server;\n"
        "        message_size_limit 512k;\n"
        "        smtp_pipelining off;\n"
        "        smtp_text_line_limit 0;\n"
        "        max_recipients 0;\n"
        "    }\n"
        "\n"
        "    include server.inc;\n"
        "}\n", files, 2);

    ccf = cycle->core;
    ck_assert_int_eq(ccf->daemon, 0);
    ck_assert_int_eq(ccf->worker_processes, 3);
    ck_assert_int_eq(ccf->worker_connections, 100);
    ck_assert_uint_eq(ccf->shutdown_timeout, 90 * 60 * 1000);
    ck_assert_int_eq(ccf->log_level, PST_LOG_DEBUG);
    check_str_value(&ccf->error_log, "stderr");
    check_str_value(&ccf->pid, "/run/postern-test.pid");
    check_str_value(&ccf->node_name, "mx-b.node_2");

    /* the first server overrides some smtp-level values ... */
    a = server_conf(cycle, 0);
    ck_assert_uint_eq(a->message_size_limit, 512 * 1024);
    ck_assert_int_eq(a->pipelining, 0);
    ck_assert_uint_eq(a->text_line_limit, 0);
    ck_assert_int_eq(a->max_recipients, 0);

    /* ... the second inherits them all */
    b = server_conf(cycle, 1);
    ck_assert_uint_eq(b->message_size_limit, 10 * 1024 * 1024);
    ck_assert_int_eq(b->pipelining, 1);
    ck_assert_uint_eq(b->text_line_limit, 65536);

    /* inherited by both */
    ck_assert_uint_eq(a->command_timeout, 90 * 1000);
    ck_assert_uint_eq(b->command_timeout, 90 * 1000);
    ck_assert_uint_eq(a->bare_newline, PST_BARE_NL_REJECT);
    ck_assert_uint_eq(b->bare_newline, PST_BARE_NL_REJECT);
    ck_assert_int_eq(a->max_errors, 5);
    ck_assert_int_eq(a->max_messages, 5);
    ck_assert_int_eq(b->max_errors, 5);
    check_str_value(&a->banner, "say \"hi\"\tthere");
    check_str_value(&b->hostname, "mx.example");

    ck_assert_uint_eq(cycle->listening.nelts, 2);
    ls = cycle->listening.elts;
    ck_assert_str_eq((char *) ls[1].addr_text, "[::1]:2526");
    ck_assert_uint_eq(ls[1].submission, 1);
    ck_assert_int_eq(ls[1].backlog, 16);

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


START_TEST(test_conf_shared_listen)
{
    pst_listening_t  *ls;
    pst_server_t    **srv;
    pst_cycle_t      *cycle;
    char             *dir;

    /* two servers on one address: one listener, default_server wins */
    dir = tu_tmpdir();
    cycle = load_good(dir,
        "smtp {\n"
        "    server { listen 2525; hostname a.example; }\n"
        "    server { listen *:2525 default_server; hostname b.example; }\n"
        "}\n", NULL, 2);

    srv = cycle->servers.elts;
    ck_assert_uint_eq(cycle->listening.nelts, 1);
    ls = cycle->listening.elts;
    ck_assert_uint_eq(ls->servers.nelts, 2);
    ck_assert_ptr_eq(ls->server, srv[1]);

    pst_destroy_cycle(cycle);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


Suite *
suite_conf_file(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("conf_file");

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_conf_error, 0, pst_nelems(conf_errors));
    tcase_add_test(tc, test_conf_missing_file);
    tcase_add_test(tc, test_conf_limits);
    tcase_add_test(tc, test_conf_unknown_user);
    tcase_add_test(tc, test_conf_include_depth);
    suite_add_tcase(s, tc);

    tc = tcase_create("good");
    tcase_add_test(tc, test_conf_defaults);
    tcase_add_test(tc, test_conf_values);
    tcase_add_test(tc, test_conf_shared_listen);
    suite_add_tcase(s, tc);

    return s;
}
