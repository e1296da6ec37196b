/*
 * fuzz_session_auth.c -- libFuzzer harness for SMTP AUTH: the whole
 * session harness (fuzz_session.c) with only its two AUTH server
 * blocks, so that every input reaches pst_smtp_auth.c and auth_file
 * (PLAIN, LOGIN, SCRAM-SHA-256, pass-through mechanisms nobody takes).
 * The first input byte's low bit chooses the server.  Seeds:
 * tests/fuzz/session_auth_seeds.py.
 */

#define FZ_AUTH_ONLY  1

#include "fuzz_session.c"
