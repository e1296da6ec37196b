/*
 * pst_passwd.h -- "postern passwd": entries for auth_file's users file.
 */

#ifndef PST_PASSWD_H
#define PST_PASSWD_H

/* argv[0] is "passwd"; returns the exit status (64: usage). */
int pst_passwd_tool(int argc, char **argv);
void pst_passwd_usage(FILE *f);

#endif /* PST_PASSWD_H */
