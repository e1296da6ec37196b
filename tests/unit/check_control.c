/*
 * check_control.c -- the control socket's protocol (pst_control.c) and
 * the light configuration read by `postern queue` and `postern status`
 * (pst_init_cycle_light()).
 *
 * The request line is the only input the queue process takes from a
 * local user, so its parser must refuse anything but words separated
 * by one space, each valid xtext; and a tool that only needs the spool
 * must read nothing else: no module, no key, no users file.
 */

#include "check_util.h"
#include "check_suites.h"
#include "pst_control.h"
#include "pst_queue.h"

#include <sys/un.h>


static const char *
answer(const char *line)
{
    static char   text[4096];
    pst_buf_t    *out;
    u_char        buf[1024];
    size_t        n;

    n = strlen(line);
    memcpy(buf, line, n);
    out = pst_buf_alloc(256);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(pst_control_answer(buf, n, out), PST_OK);
    n = pst_min(pst_buf_size(out), sizeof(text) - 1);
    memcpy(text, out->pos, n);
    text[n] = '\0';
    pst_buf_destroy(out);

    return text;
}


START_TEST(test_request_syntax)
{
    static const char  *bad[] = {
        "", " ", "status ", " status", "status  json", "sta+ZZtus",
        "status+", "a+00b", "+0D",
    };
    pst_uint_t  i;

    /* every verb but status goes to the handler the queue process
     * registers; without one, the answer says so */
    pst_control_handler(NULL);
    ck_assert_str_eq(answer("count"), "ERR this process has no queue"
                     " engine\n");
    pst_control_handler(pst_queue_control);

    for (i = 0; i < pst_nelems(bad); i++) {
        ck_assert_msg(strncmp(answer(bad[i]), "USAGE ", 6) == 0,
                      "\"%s\" was answered \"%s\"", bad[i], answer(bad[i]));
    }

    /* status is answered by the control socket itself; without a
     * master there is no table, and the answer still says OK */
    ck_assert_str_eq(answer("status"), "OK\nno status\n");
    ck_assert_str_eq(answer("status\r"), "OK\nno status\n");
    ck_assert_str_eq(answer("status json"), "OK\n{}\n");
    ck_assert_str_eq(answer("st+61tus json"), "OK\n{}\n");
    ck_assert_str_eq(answer("status xml"), "USAGE status [json]\n");
    ck_assert_str_eq(answer("status json json"), "USAGE status [json]\n");

    /* before the engine runs, queue requests are refused with a reason
     * (and status still answered) */
    pst_control_engine(0);
    ck_assert_str_eq(answer("count"), "ERR the queue process waits for"
                     " another one to finish with the spool; try again"
                     " later\n");
    ck_assert_str_eq(answer("status"), "OK\nno status\n");
    pst_control_engine(1);
}
END_TEST


/* A server in the test: accept one client, return its request line,
 * answer with reply. */
static void
serve_one(int lfd, char *req, size_t size, const char *reply)
{
    ssize_t  n;
    size_t   have = 0;
    int      fd;

    fd = accept(lfd, NULL, NULL);
    ck_assert_int_ne(fd, -1);
    while (have == 0 || req[have - 1] != '\n') {
        n = read(fd, req + have, size - have - 1);
        ck_assert_int_gt(n, 0);
        have += (size_t) n;
    }
    req[have] = '\0';
    ck_assert_int_eq(write(fd, reply, strlen(reply)),
                     (ssize_t) strlen(reply));
    close(fd);
}


/* Run pst_control_request() in a child with stdout and stderr in files;
 * returns its exit code. */
static int
client(const char *dir, const char *path, int argc, char **argv, int lfd,
    char *req, size_t size, const char *reply)
{
    char   out[PATH_MAX];
    pid_t  pid;
    int    st, fd;

    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        snprintf(out, sizeof(out), "%s/stdout", dir);
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        snprintf(out, sizeof(out), "%s/stderr", dir);
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDERR_FILENO);
        _exit(pst_control_request(path, argc, argv) & 0xff);
    }

    if (lfd != -1) {
        serve_one(lfd, req, size, reply);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}


static const char *
file_text(const char *dir, const char *name)
{
    static char  text[4096];
    char         path[PATH_MAX];
    ssize_t      n;
    int          fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY);
    ck_assert_int_ne(fd, -1);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}


START_TEST(test_client)
{
    struct sockaddr_un  sa;
    char               *dir, path[108], req[4096];
    char               *argv[] = { "show", "a b+c\xc3\xa9", NULL };
    int                 lfd;

    dir = tu_tmpdir();
    snprintf(path, sizeof(path), "%s/control", dir);

    /* nothing there: "not running", so the tool reads the spool */
    ck_assert_int_eq(client(dir, path, 1, argv, -1, NULL, 0, NULL), 255);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);

    /* words xtext-encoded, one space between, LF at the end; the body
     * of an OK goes to stdout as it came */
    ck_assert_int_eq(client(dir, path, 2, argv, lfd, req, sizeof(req),
                            "OK\nline 1\nline 2\n"), 0);
    ck_assert_str_eq(req, "show a+20b+2Bc+C3+A9\n");
    ck_assert_str_eq(file_text(dir, "stdout"), "line 1\nline 2\n");
    ck_assert_str_eq(file_text(dir, "stderr"), "");

    /* ERR (exit 1) and USAGE (exit 64): the text and the body on
     * stderr */
    ck_assert_int_eq(client(dir, path, 1, argv, lfd, req, sizeof(req),
                            "ERR no such message\ndetail\n"), 1);
    ck_assert_str_eq(file_text(dir, "stdout"), "");
    ck_assert_str_eq(file_text(dir, "stderr"),
                     "postern: no such message\ndetail\n");

    ck_assert_int_eq(client(dir, path, 1, argv, lfd, req, sizeof(req),
                            "USAGE postern queue show ID\n"), 64);
    ck_assert_str_eq(file_text(dir, "stderr"),
                     "usage: postern queue show ID\n");

    /* a server that closes without a word */
    ck_assert_int_eq(client(dir, path, 1, argv, lfd, req, sizeof(req), ""),
                     1);
    ck_assert_str_eq(file_text(dir, "stderr"),
                     "postern: no answer on the control socket\n");

    close(lfd);
    unlink(path);
    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* pst_init_cycle_light(): what `postern queue` needs and nothing else. */
START_TEST(test_light_config)
{
    pst_cycle_t  *cycle;
    char         *dir, want[PATH_MAX];

    dir = tu_tmpdir();
    tu_write(dir, "main.conf",
        "load_module /nonexistent/module.so;\n"
        "resolver_trust_anchor /nonexistent/anchor;\n"
        "module_priority nosuchmodule 5;\n"
        "some_module_directive 1 2 3;\n"
        "spool_dir var/spool;\n"
        "include extra.conf;\n"
        "smtp {\n"
        "    tls_certificate /nonexistent/cert.pem;\n"
        "    tls_key /nonexistent/key.pem;\n"
        "    auth_users_file /nonexistent/users;\n"
        "    server { listen 127.0.0.1:1; spool_dir /elsewhere; }\n"
        "}\n");
    tu_write(dir, "extra.conf", "pid run/p.pid;\n");

    cycle = pst_init_cycle_light(dir, "main.conf");
    ck_assert_ptr_nonnull(cycle);
    ck_assert(cycle->light);
    snprintf(want, sizeof(want), "%s/var/spool", dir);
    ck_assert_str_eq((char *) cycle->core->spool_dir.data, want);
    snprintf(want, sizeof(want), "%s/var/spool/control", dir);
    ck_assert_str_eq((char *) cycle->core->control_socket.data, want);
    snprintf(want, sizeof(want), "%s/run/p.pid", dir);
    ck_assert_str_eq((char *) cycle->core->pid.data, want);
    ck_assert_uint_eq(cycle->servers.nelts, 0);
    pst_destroy_cycle(cycle);

    /* an explicit socket, relative to the prefix */
    tu_write(dir, "main.conf", "control_socket run/ctl;\n");
    cycle = pst_init_cycle_light(dir, "main.conf");
    ck_assert_ptr_nonnull(cycle);
    snprintf(want, sizeof(want), "%s/run/ctl", dir);
    ck_assert_str_eq((char *) cycle->core->control_socket.data, want);
    pst_destroy_cycle(cycle);

    /* the grammar still counts: an unfinished file is refused */
    tu_write(dir, "main.conf", "spool_dir /x;\nsmtp {\n");
    ck_assert_ptr_null(pst_init_cycle_light(dir, "main.conf"));

    tu_rmtree(dir);
    free(dir);
}
END_TEST


/* The full reader knows control_socket and refuses a path too long for
 * a unix socket. */
START_TEST(test_control_socket_directive)
{
    pst_cycle_t  *cycle;
    char         *dir, *err, conf[512], want[PATH_MAX];

    dir = tu_tmpdir();
    err = tu_load_conf(dir, "control_socket ctl/sock;\n"
                       "smtp { server { listen 127.0.0.1:1; } }\n",
                       NULL, &cycle);
    ck_assert_msg(cycle != NULL, "%s", err);
    snprintf(want, sizeof(want), "%s/ctl/sock", dir);
    ck_assert_str_eq((char *) cycle->core->control_socket.data, want);
    pst_destroy_cycle(cycle);
    free(err);

    /* a long directory is fine, a long file name is not */
    snprintf(conf, sizeof(conf), "control_socket /%0120d/ctl;\n"
             "smtp { server { listen 127.0.0.1:1; } }\n", 0);
    err = tu_load_conf(dir, conf, NULL, &cycle);
    ck_assert_msg(cycle != NULL, "%s", err);
    pst_destroy_cycle(cycle);
    free(err);

    snprintf(conf, sizeof(conf), "control_socket /tmp/%0120d;\n"
             "smtp { server { listen 127.0.0.1:1; } }\n", 0);
    err = tu_load_conf(dir, conf, NULL, &cycle);
    ck_assert_ptr_null(cycle);
    ck_assert_ptr_nonnull(strstr(err, "file name longer than a unix socket"
                                      " allows"));
    free(err);

    tu_rmtree(dir);
    free(dir);
}
END_TEST


Suite *
suite_control(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("control");
    tc = tcase_create("control");
    tcase_add_test(tc, test_request_syntax);
    tcase_add_test(tc, test_client);
    tcase_add_test(tc, test_light_config);
    tcase_add_test(tc, test_control_socket_directive);
    suite_add_tcase(s, tc);

    return s;
}
