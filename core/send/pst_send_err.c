/*
 * pst_send_err.c -- diagnostics of postern-send and postern-sendmail:
 * one line on stderr, prefixed with the program's name.
 */

#include "pst_send.h"

#include <stdarg.h>

const char  *pst_send_prog = "postern-send";


void
pst_send_err(const char *fmt, ...)
{
    va_list  ap;

    fprintf(stderr, "%s: ", pst_send_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}
