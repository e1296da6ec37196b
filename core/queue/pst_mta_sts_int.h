/*
 * pst_mta_sts_int.h -- between the two halves of MTA-STS: the cache and
 * its lookups on the event loop (pst_mta_sts.c) and the jobs on the I/O
 * threads (pst_mta_sts_io.c).
 */

#ifndef PST_MTA_STS_INT_H
#define PST_MTA_STS_INT_H

#include "pst_qio.h"

#define PST_STS_IO_LOAD          0
#define PST_STS_IO_FETCH         1

typedef struct {
    pst_qio_job_t                job;
    /* in */
    int                          kind;
    void                        *entry;
    char                         domain[256];
    char                         path[PATH_MAX];
    char                         id[33];       /* FETCH: the TXT's id */
    char                         resolve[700]; /* "host:port:addr,..." */
    in_port_t                    port;
    pst_msec_t                   timeout;
    char                         ca_file[PATH_MAX];
    /* out: PST_OK with policy; LOAD: PST_DECLINED, nothing cached */
    int                          rc;
    pst_sts_policy_t             policy;
    char                         err[300];
} pst_sts_io_t;

void pst_sts_io_run(pst_qio_job_t *job);

#endif /* PST_MTA_STS_INT_H */
