/*
 * pst_passwd.c -- "postern passwd": make (or update) a user's line in
 * the users file of the auth_file module.
 *
 *   postern passwd [-m yescrypt|bcrypt|sha512crypt] [-r ROUNDS]
 *                  [-s] [-i ITERATIONS] [-f FILE] [--] USER
 *
 *   -m  crypt(3) method (default yescrypt, libcrypt's own default)
 *   -r  cost parameter of the method (0: libcrypt's default)
 *   -s  add a SCRAM-SHA-256 secret (RFC 5803) so the user can log in
 *       with SCRAM-SHA-256 too; -i sets its PBKDF2 iterations (4096)
 *   -f  add or replace the line in FILE (created with mode 0640),
 *       instead of printing it
 *
 * The password is read twice from the terminal without echo, or from
 * the first line of standard input when that is not a terminal.  It is
 * never printed, and wiped from memory once hashed.
 */

#include "pst_core.h"
#include "pst_passwd.h"

#include <crypt.h>
#include <termios.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define PST_PASSWD_MAX   1024


static int
pst_passwd_read(const char *prompt, char *buf, size_t size)
{
    struct termios  t, saved;
    FILE           *in;
    size_t          n;
    int             tty;

    tty = isatty(STDIN_FILENO);
    in = tty ? fopen("/dev/tty", "r+") : stdin;
    if (in == NULL) {
        return PST_ERROR;
    }

    if (tty) {
        fprintf(in, "%s", prompt);
        fflush(in);
        tcgetattr(fileno(in), &saved);
        t = saved;
        t.c_lflag &= ~(tcflag_t) ECHO;
        tcsetattr(fileno(in), TCSAFLUSH, &t);
    }

    if (fgets(buf, (int) size, in) == NULL) {
        buf[0] = '\0';
    }

    if (tty) {
        tcsetattr(fileno(in), TCSAFLUSH, &saved);
        fprintf(in, "\n");
        fclose(in);
    }

    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }

    return n > 0 ? PST_OK : PST_ERROR;
}


static int
pst_passwd_scram(const char *pass, unsigned iter, char *out, size_t size)
{
    u_char    salt[16], salted[32], ckey[32], skey[32], stored[32];
    u_char    b64s[32], b64a[48], b64b[48];
    unsigned  len;

    if (RAND_bytes(salt, sizeof(salt)) != 1
        || PKCS5_PBKDF2_HMAC(pass, (int) strlen(pass), salt, sizeof(salt),
                             (int) iter, EVP_sha256(), 32, salted) != 1)
    {
        return PST_ERROR;
    }

    len = 32;
    HMAC(EVP_sha256(), salted, 32, (u_char *) "Client Key", 10, ckey, &len);
    len = 32;
    HMAC(EVP_sha256(), salted, 32, (u_char *) "Server Key", 10, skey, &len);
    SHA256(ckey, 32, stored);

    EVP_EncodeBlock(b64s, salt, sizeof(salt));
    EVP_EncodeBlock(b64a, stored, 32);
    EVP_EncodeBlock(b64b, skey, 32);
    snprintf(out, size, "SCRAM-SHA-256$%u:%s$%s:%s", iter, b64s, b64a,
             b64b);

    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(ckey, sizeof(ckey));
    return PST_OK;
}


/* Replace USER's line in file, or append it; atomic rename. */
static int
pst_passwd_update(const char *file, const char *user, const char *line)
{
    struct stat   st;
    FILE         *in, *out;
    char          tmp[PATH_MAX], buf[8192];
    size_t        ulen = strlen(user);
    mode_t        mode = 0640;
    int           fd, found = 0;

    if (stat(file, &st) == 0) {
        mode = st.st_mode & 0777;
    }

    snprintf(tmp, sizeof(tmp), "%s.tmp%d", file, (int) getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd == -1 || (out = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "postern: cannot create \"%s\": %s\n", tmp,
                strerror(errno));
        return PST_ERROR;
    }

    in = fopen(file, "r");
    while (in != NULL && fgets(buf, sizeof(buf), in) != NULL) {
        if (strncmp(buf, user, ulen) == 0 && buf[ulen] == ':') {
            if (!found) {
                fprintf(out, "%s\n", line);
            }
            found = 1;
            continue;
        }
        fputs(buf, out);
    }
    if (in != NULL) {
        fclose(in);
    }
    if (!found) {
        fprintf(out, "%s\n", line);
    }

    if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0
        || rename(tmp, file) != 0)
    {
        fprintf(stderr, "postern: cannot write \"%s\": %s\n", file,
                strerror(errno));
        unlink(tmp);
        return PST_ERROR;
    }

    fprintf(stderr, "postern: %s \"%s\" in %s\n",
            found ? "updated" : "added", user, file);
    return PST_OK;
}


void
pst_passwd_usage(FILE *f)
{
    fprintf(f,
        "usage: postern passwd [-m yescrypt|bcrypt|sha512crypt] [-r rounds]"
        " [-s]\n"
        "                      [-i iterations] [-f file] [--] user\n"
        "\n"
        "  -m method      crypt(3) method (default yescrypt)\n"
        "  -r rounds      cost of the method (default: libcrypt's)\n"
        "  -s             add a SCRAM-SHA-256 secret too\n"
        "  -i iterations  PBKDF2 iterations of the SCRAM secret (4096)\n"
        "  -f file        add or replace the line in file instead of"
        " printing it\n"
        "  -h, --help     this text\n"
        "\n"
        "The password is read from the terminal, or from the first line of"
        " standard\ninput.  The user name may not contain ':' or white"
        " space, nor start\nwith '-'.\n");
}


/* The value val of option -o (m, r, i or f).  PST_OK, or PST_ERROR
 * after saying why. */
static int
pst_passwd_value(char o, const char *val, const char **method,
    unsigned long *rounds, unsigned long *iter, const char **file)
{
    char  *end;

    if (o == 'f') {
        *file = val;
        return PST_OK;
    }

    if (o == 'm') {
        *method = strcmp(val, "yescrypt") == 0 ? "$y$"
                  : strcmp(val, "bcrypt") == 0 ? "$2b$"
                  : strcmp(val, "sha512crypt") == 0 ? "$6$" : NULL;
        if (*method == NULL) {
            fprintf(stderr, "postern passwd: unknown method \"%s\" (use"
                    " yescrypt, bcrypt or sha512crypt)\n", val);
            return PST_ERROR;
        }
        return PST_OK;
    }

    errno = 0;
    *(o == 'r' ? rounds : iter) = strtoul(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0' || val[0] == '-') {
        fprintf(stderr, "postern passwd: invalid number \"%s\"\n", val);
        return PST_ERROR;
    }

    return PST_OK;
}


/* Options into the variables; the index of the user name, or -1 with
 * the exit status in *rc (0 after --help, 64 for a usage error). */
static int
pst_passwd_options(int argc, char **argv, const char **method,
    unsigned long *rounds, unsigned long *iter, int *with_scram,
    const char **file, int *rc)
{
    const char  *opt;
    int          i;

    *rc = 64;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        opt = argv[i];

        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            pst_passwd_usage(stdout);
            *rc = 0;
            return -1;
        }
        if (strcmp(opt, "-s") == 0) {
            *with_scram = 1;
            continue;
        }
        if (strcmp(opt, "-m") != 0 && strcmp(opt, "-r") != 0
            && strcmp(opt, "-i") != 0 && strcmp(opt, "-f") != 0)
        {
            fprintf(stderr, "postern passwd: unknown option \"%s\"\n", opt);
            goto usage;
        }
        if (++i == argc) {
            fprintf(stderr, "postern passwd: option \"%s\" needs a value\n",
                    opt);
            goto usage;
        }

        if (pst_passwd_value(opt[1], argv[i], method, rounds, iter, file)
            != PST_OK)
        {
            goto usage;
        }
    }

    if (i != argc - 1 || argv[i][0] == '\0' || argv[i][0] == '-'
        || strchr(argv[i], ':') || strpbrk(argv[i], " \t\r\n")
        || strlen(argv[i]) > 255 || *iter < 1 || *iter > 10000000)
    {
        fprintf(stderr, "postern passwd: %s\n", i >= argc
                ? "no user name" : i < argc - 1 ? "one user name only"
                : *iter < 1 || *iter > 10000000
                ? "iterations must be between 1 and 10000000"
                : "invalid user name");
        goto usage;
    }

    return i;

usage:

    pst_passwd_usage(stderr);
    return -1;
}


int
pst_passwd_tool(int argc, char **argv)
{
    struct crypt_data  *cd;
    const char         *method = "$y$", *file = NULL, *user, *hash;
    unsigned long       rounds = 0, iter = 4096;
    char                setting[CRYPT_GENSALT_OUTPUT_SIZE];
    char                pass[PST_PASSWD_MAX + 2], again[PST_PASSWD_MAX + 2];
    char                scram[256], line[1024];
    int                 i, with_scram = 0, rc = 1;

    i = pst_passwd_options(argc, argv, &method, &rounds, &iter, &with_scram,
                           &file, &rc);
    if (i < 0) {
        return rc;
    }
    rc = 1;
    user = argv[i];

    if (pst_passwd_read("Password: ", pass, sizeof(pass)) != PST_OK
        || strlen(pass) > PST_PASSWD_MAX)
    {
        fprintf(stderr, "postern: no password (or longer than %d bytes)\n",
                PST_PASSWD_MAX);
        goto done;
    }

    if (isatty(STDIN_FILENO)) {
        if (pst_passwd_read("Again: ", again, sizeof(again)) != PST_OK
            || strcmp(pass, again) != 0)
        {
            fprintf(stderr, "postern: the passwords differ\n");
            goto done;
        }
    }

    cd = calloc(1, sizeof(struct crypt_data));
    if (cd == NULL
        || crypt_gensalt_rn(method, rounds, NULL, 0, setting,
                            sizeof(setting)) == NULL
        || (hash = crypt_rn(pass, setting, cd, sizeof(*cd))) == NULL
        || hash[0] == '*')
    {
        fprintf(stderr, "postern: hashing failed: %s\n", strerror(errno));
        free(cd);
        goto done;
    }

    scram[0] = '\0';
    if (with_scram
        && pst_passwd_scram(pass, (unsigned) iter, scram, sizeof(scram))
           != PST_OK)
    {
        fprintf(stderr, "postern: SCRAM secret failed\n");
        free(cd);
        goto done;
    }

    snprintf(line, sizeof(line), "%s:%s%s%s", user, hash,
             scram[0] ? ":" : "", scram);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);

    if (file != NULL) {
        rc = pst_passwd_update(file, user, line) == PST_OK ? 0 : 1;
    } else {
        printf("%s\n", line);
        rc = 0;
    }

done:

    explicit_bzero(pass, sizeof(pass));
    explicit_bzero(again, sizeof(again));
    return rc;
}
