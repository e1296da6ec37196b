/*
 * pst_core.h -- umbrella header for core files.
 *
 * Includes system headers, the build's feature header (objs/pst_auto.h,
 * written by configure), the public module API and the headers of the
 * base layer (core/base/) in dependency order.  Every core .c file
 * includes it first, then the headers of the layers below its own that
 * it uses (docs/ARCHITECTURE.md, "Layers"; tests/style.sh checks the
 * direction).
 */

#ifndef PST_CORE_H
#define PST_CORE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "pst_auto.h"
#include "postern_module.h"

#define PST_VERSION              "0.1.0"
#define PST_NAME                 "Postern"

#define pst_min(a, b)            ((a) < (b) ? (a) : (b))
#define pst_max(a, b)            ((a) > (b) ? (a) : (b))
#define pst_nelems(a)            (sizeof(a) / sizeof((a)[0]))
#define pst_align(n, a)          (((n) + ((a) - 1)) & ~((a) - 1))

#define pst_str_set(str, text)                                               \
    do { (str)->len = sizeof(text) - 1; (str)->data = (u_char *) text; }    \
    while (0)
#define pst_str_eq(a, lit)                                                   \
    ((a)->len == sizeof(lit) - 1 && memcmp((a)->data, lit, (a)->len) == 0)
#define pst_str_caseeq(a, lit)                                               \
    ((a)->len == sizeof(lit) - 1                                             \
     && pst_strncasecmp((a)->data, (u_char *) lit, (a)->len) == 0)

typedef struct pst_connection_s  pst_connection_t;
typedef struct pst_event_s       pst_event_t;
typedef struct pst_listening_s   pst_listening_t;
typedef struct pst_server_s      pst_server_t;
typedef struct pst_log_s         pst_log_t;
typedef struct pst_buf_s         pst_buf_t;

#include "pst_palloc.h"
#include "pst_string.h"
#include "pst_log.h"
#include "pst_buf.h"
#include "pst_list.h"
#include "pst_conf_file.h"
#include "pst_inet.h"
#include "pst_module.h"
#include "pst_shm.h"
#include "pst_cycle.h"
#include "pst_metrics.h"

#endif /* PST_CORE_H */
