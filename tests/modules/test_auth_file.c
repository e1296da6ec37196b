/*
 * test_auth_file.c -- modules/auth_file.c on the plugin test harness,
 * an AUTH exchange played by the harness's client
 * (pst_test_authenticate()) over a session in clear
 * (auth_allow_plaintext on): each hash method, PLAIN and LOGIN, wrong
 * passwords and unknown users, authorization identities and
 * auth_users_case_insensitive, the failure delay on the fake clock and
 * auth_max_failures, and the users file's errors and permissions.
 * Hashes are checked on the module's threads, in real time: replies
 * are waited for with pst_test_wait().  tests/integration/test_auth.py
 * keeps what needs the server: real clients over TLS, SCRAM-SHA-256,
 * submission listeners, limits across workers and reloads, secrets in
 * logs, throughput, postern passwd.
 * make modules-check (part of make unit).
 */

#include "mtest.h"

#include <sys/stat.h>

#define HASH_MS     10000           /* real time for a hash, loaded */

/* made by postern passwd: alice/wonderland (sha512crypt), bob/builder
 * (bcrypt), Carol/sing (yescrypt, the default) */
static const char  *users =
    "# test users\n"
    "alice:$6$fgM6z/AP3FeFdG0M$6nwpm0xOtk3Ql4CXs5XCG27EKi4O6Vl3gyivvSPQ3b0S"
    "HroMphus3VefQpPYlgIzmTlOMolWjSc4EuWxyg8nw1\n"
    "\n"
    "bob:$2b$05$rpOLT7MwpngykE3c5NFDpu/0dVchTue3dlsHpP9wgxYTzzm6ZT90u\n"
    "Carol:$y$j9T$gPWM0eSO2GGpVoK2Gm10A.$rLkOgHIHxyk2uKwkMrwJ5un7C61R//0PB"
    "i/CLYq4ah0\n";


/* A users file with text and mode in the harness's directory. */
static void
users_file(pst_test_t *t, const char *text, mode_t mode)
{
    char   path[4096];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/users", pst_test_dir(t));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}


/* auth_file on the users above, AUTH in clear, more directives in
 * server; without a failure delay unless server gives one. */
static pst_test_t *
auth(const char *server)
{
    pst_test_t  *t = pst_test_new();
    char         conf[1024];

    ck_assert_ptr_nonnull(t);
    users_file(t, users, 0640);
    ck_assert_int_eq(pst_test_load(t, MODULE_DIR "/auth_file.so"), PST_OK);
    snprintf(conf, sizeof(conf), "auth_users_file users;"
             " auth_allow_plaintext on; %s %s", server,
             strstr(server, "auth_failure_delay") == NULL
             ? "auth_failure_delay 0;" : "");
    ck_assert_msg(pst_test_config(t, NULL, conf) == PST_OK, "%s",
                  pst_test_error(t));
    return t;
}


/* A new session: EHLO, then AUTH mech as user: the final reply. */
static const pst_test_reply_t *
login(pst_test_t *t, const char *mech, const char *user, const char *pass)
{
    const pst_test_reply_t  *r;

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    r = pst_test_helo(t, "client.test");
    ck_assert_ptr_nonnull(strstr(r->raw, "250-AUTH PLAIN LOGIN"));
    (void) pst_test_authenticate(t, mech, user, pass);
    return pst_test_wait(t, HASH_MS);
}


START_TEST(test_hash_methods)
{
    static const char  *who[][2] = {
        { "alice", "wonderland" }, { "bob", "builder" }, { "Carol", "sing" }
    };
    pst_test_t         *t = auth("");
    char                wrong[64];
    int                 i;

    for (i = 0; i < 3; i++) {
        ck_assert_msg(pst_test_expect(login(t, "PLAIN", who[i][0],
                                            who[i][1]), 235, "2.7.0",
                                      "Authentication successful"),
                      "%s", who[i][0]);
        snprintf(wrong, sizeof(wrong), "x%s", who[i][1]);
        ck_assert_msg(pst_test_expect(login(t, "LOGIN", who[i][0], wrong),
                                      535, "5.7.8", NULL), "%s", who[i][0]);
    }
    mtest_logged(t, "authenticated as \"bob\" mechanism=PLAIN");
    /* an unknown user: hashed against a dummy, nobody takes him */
    ck_assert(pst_test_expect(login(t, "PLAIN", "mallory", "x"), 535, "5.7.8",
                              NULL));
    pst_test_free(t);
}
END_TEST


START_TEST(test_identity_and_case)
{
    pst_test_t  *t = auth("");

    /* an authorization identity other than the user's */
    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    (void) pst_test_command(t, "AUTH PLAIN Ym9iAGFsaWNlAHdvbmRlcmxhbmQ=");
    ck_assert_int_eq(pst_test_wait(t, HASH_MS)->code, 535);
    /* names are exact by default */
    ck_assert_int_eq(login(t, "PLAIN", "CAROL", "sing")->code, 535);
    pst_test_free(t);

    t = auth("auth_users_case_insensitive on;");
    ck_assert(pst_test_expect(login(t, "PLAIN", "CAROL", "sing"), 235, NULL,
                              NULL));
    /* the identity as written in the file */
    mtest_logged(t, "authenticated as \"Carol\"");
    /* and what the message's envelope carries */
    ck_assert(pst_test_expect(pst_test_mail(t, "carol@example.test"), 250,
                              NULL, NULL));
    ck_assert(pst_test_expect(pst_test_rcpt(t, "u@example.test"), 250, NULL,
                              NULL));
    ck_assert(pst_test_expect(pst_test_data(t, "Subject: s\n\nx\n"), 250,
                              NULL, NULL));
    ck_assert_ptr_nonnull(strstr(pst_test_header(t, "Received", 0),
                                 "with ESMTPA id"));
    pst_test_free(t);
}
END_TEST


/* Turn the loop (real time, bounded) until the log says a failure. */
static void
failure_logged(pst_test_t *t, int n)
{
    const char  *p;
    int          i, k;

    for (i = 0; i < 200; i++) {
        for (k = 0, p = pst_test_log(t);
             (p = strstr(p, "authentication failed")) != NULL; p++)
        {
            k++;
        }
        if (k >= n) {
            return;
        }
        (void) pst_test_wait(t, 50);
    }
    ck_abort_msg("no \"authentication failed\" in the log");
}


START_TEST(test_failure_delay_and_max)
{
    pst_test_t               *t = auth("auth_failure_delay 2s;"
                                       " auth_max_failures 2;");
    const pst_test_reply_t   *r;

    ck_assert(pst_test_expect(pst_test_connect(t), 220, NULL, NULL));
    ck_assert(pst_test_expect(pst_test_helo(t, "client.test"), 250, NULL,
                              NULL));
    /* the refusal waits the delay, on the fake clock */
    ck_assert(pst_test_authenticate(t, "PLAIN", "bob", "x")->pending);
    failure_logged(t, 1);
    pst_test_advance(t, 1999);
    ck_assert(pst_test_wait(t, 0)->pending);
    pst_test_advance(t, 1);
    ck_assert(pst_test_expect(pst_test_wait(t, 0), 535, "5.7.8", NULL));
    /* the second failure ends the session */
    (void) pst_test_authenticate(t, "PLAIN", "bob", "y");
    failure_logged(t, 2);
    pst_test_advance(t, 2000);
    r = pst_test_wait(t, 0);
    ck_assert(pst_test_expect(r, 421, "4.7.0", NULL));
    ck_assert(r->closed);
    pst_test_free(t);
}
END_TEST


/* The users file holds text: the configuration is refused with what. */
static void
file_error(const char *text, mode_t mode, const char *what)
{
    pst_test_t  *t = pst_test_new();

    ck_assert_ptr_nonnull(t);
    users_file(t, text, mode);
    ck_assert_int_eq(pst_test_load(t, MODULE_DIR "/auth_file.so"), PST_OK);
    ck_assert_msg(pst_test_config(t, NULL, "auth_users_file users;")
                  == PST_ERROR, "accepted: %s", text);
    ck_assert_msg(strstr(pst_test_error(t), what) != NULL,
                  "\"%s\" not in \"%s\"", what, pst_test_error(t));
    pst_test_free(t);
}


START_TEST(test_users_file)
{
    pst_test_t  *t;

    file_error("alice\n", 0640, ":1: expected \"name:hash\"");
    file_error("alice:secret\n", 0640, "\"alice\" has no modern crypt hash");
    file_error("a:$6$x$y\na:$6$x$y\n", 0640, "user \"a\" is listed twice");
    file_error("a:$6$x$y:SCRAM-SHA-256$1:zz\n", 0640,
               ":1: invalid SCRAM-SHA-256 secret");
    file_error(users, 0646, "is world-writable");

    /* world-readable: a warning, and it works */
    t = pst_test_new();
    users_file(t, users, 0644);
    ck_assert_int_eq(pst_test_load(t, MODULE_DIR "/auth_file.so"), PST_OK);
    ck_assert_int_eq(pst_test_config(t, NULL, "auth_users_file users;"
                                     " auth_allow_plaintext on;"), PST_OK);
    ck_assert_ptr_nonnull(strstr(pst_test_error(t), "is world-readable"));
    ck_assert_int_eq(login(t, "PLAIN", "bob", "builder")->code, 235);
    pst_test_free(t);

    mtest_config_error("auth_file", NULL, "auth_users_file missing;",
                       "cannot open auth_users_file \"");
}
END_TEST


MTEST_MAIN("auth_file", test_hash_methods, test_identity_and_case,
           test_failure_delay_and_max, test_users_file)
