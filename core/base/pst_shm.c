/*
 * pst_shm.c -- shared memory zones and connection counters (see
 * pst_shm.h).
 */

#include "pst_core.h"

#include <pthread.h>

#define PST_CONN_BUCKETS   8192
#define PST_CONN_PROBES    16

struct pst_shm_s {
    pst_shm_t                   *next;
    char                         name[64];
    size_t                       size;        /* usable bytes */
    void                        *map;         /* mutex header + data */
    size_t                       map_size;
    unsigned                     is_new:1;
    unsigned                     used:1;
};

typedef struct {
    u_char                       addr[16];
    uint16_t                     count[PST_MAX_PROCS];
} pst_conn_bucket_t;

typedef struct {
    uint32_t                     total[PST_MAX_PROCS];
    volatile int                 accepting[PST_MAX_PROCS];
    pst_conn_bucket_t            buckets[PST_CONN_BUCKETS];
} pst_conn_zone_t;

#define PST_SHM_HDR    pst_align(sizeof(pthread_mutex_t), 64)

int                 pst_proc_slot_index;
static pst_shm_t   *zones;
static pst_shm_t   *conn_zone;


int
pst_proc_slot(void)
{
    return pst_proc_slot_index;
}


pst_shm_t *
pst_shm_add(pst_conf_t *cf, const char *name, size_t size)
{
    pthread_mutexattr_t   attr;
    pst_shm_t            *z;

    if (strlen(name) >= sizeof(z->name) || size == 0) {
        pst_conf_error(cf, "invalid shared memory zone \"%s\"", name);
        return NULL;
    }

    for (z = zones; z != NULL; z = z->next) {
        if (strcmp(z->name, name) == 0 && z->size == size && !z->used) {
            z->used = 1;
            z->is_new = 0;
            return z;
        }
    }

    z = calloc(1, sizeof(pst_shm_t));
    if (z == NULL) {
        return NULL;
    }

    z->map_size = PST_SHM_HDR + pst_align(size, 4096);
    z->map = mmap(NULL, z->map_size, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (z->map == MAP_FAILED) {
        pst_conf_error(cf, "cannot map %zu bytes of shared memory for"
                       " \"%s\": %s", size, name, strerror(errno));
        free(z);
        return NULL;
    }

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(z->map, &attr);
    pthread_mutexattr_destroy(&attr);

    snprintf(z->name, sizeof(z->name), "%s", name);
    z->size = size;
    z->is_new = 1;
    z->used = 1;
    z->next = zones;
    zones = z;

    return z;
}


void *
pst_shm_addr(pst_shm_t *z)
{
    return (u_char *) z->map + PST_SHM_HDR;
}


size_t
pst_shm_size(pst_shm_t *z)
{
    return z->size;
}


int
pst_shm_is_new(pst_shm_t *z)
{
    return z->is_new;
}


void
pst_shm_lock(pst_shm_t *z)
{
    int  rc;

    rc = pthread_mutex_lock(z->map);
    if (rc == EOWNERDEAD) {
        /* the owner died inside a short critical section; the data it
         * guards are counters, consistent enough to go on with */
        pthread_mutex_consistent(z->map);
    }
}


void
pst_shm_unlock(pst_shm_t *z)
{
    pthread_mutex_unlock(z->map);
}


void
pst_shm_mark_unused(void)
{
    pst_shm_t  *z;

    for (z = zones; z != NULL; z = z->next) {
        z->used = 0;
    }
}


void
pst_shm_mark_all_used(void)
{
    pst_shm_t  *z;

    for (z = zones; z != NULL; z = z->next) {
        z->used = 1;
    }
}


void
pst_shm_collect(void)
{
    pst_shm_t  **zp, *z;

    for (zp = &zones; *zp != NULL; /* void */) {
        z = *zp;
        if (z->used) {
            zp = &z->next;
            continue;
        }
        *zp = z->next;
        munmap(z->map, z->map_size);
        free(z);
    }
}


int
pst_shm_init_limits(pst_conf_t *cf)
{
    conn_zone = pst_shm_add(cf, "postern:connections",
                            sizeof(pst_conn_zone_t));
    return conn_zone != NULL ? PST_OK : PST_ERROR;
}


void
pst_addr_key(const struct sockaddr *sa, u_char key[16])
{
    memset(key, 0, 16);

    if (sa->sa_family == AF_INET) {
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &((struct sockaddr_in *) sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(key, &((struct sockaddr_in6 *) sa)->sin6_addr, 8);
        key[8] = 0x06;   /* keep v6 keys apart from v4-mapped ones */
    }
}


static uint32_t
pst_conn_hash(const u_char key[16])
{
    uint32_t  h = 2166136261u;
    int       i;

    for (i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 16777619u;
    }

    return h;
}


static pst_conn_bucket_t *
pst_conn_bucket(pst_conn_zone_t *cz, const u_char key[16], int create)
{
    pst_conn_bucket_t  *b, *free_b;
    uint32_t            h, i;
    int                 k;
    unsigned            sum;

    h = pst_conn_hash(key);
    free_b = NULL;

    for (i = 0; i < PST_CONN_PROBES; i++) {
        b = &cz->buckets[(h + i) % PST_CONN_BUCKETS];

        if (memcmp(b->addr, key, 16) == 0) {
            return b;
        }

        if (free_b == NULL && create) {
            sum = 0;
            for (k = 0; k < PST_MAX_PROCS; k++) {
                sum += b->count[k];
            }
            if (sum == 0) {
                free_b = b;
            }
        }
    }

    if (free_b != NULL) {
        memcpy(free_b->addr, key, 16);
    }

    return free_b;
}


int
pst_conn_count_acquire(const struct sockaddr *sa, pst_int_t max_total,
    pst_int_t max_per_addr)
{
    pst_conn_zone_t    *cz;
    pst_conn_bucket_t  *b;
    u_char              key[16];
    unsigned            total, mine;
    int                 k, slot;

    if (conn_zone == NULL) {
        return PST_OK;
    }

    cz = pst_shm_addr(conn_zone);
    slot = pst_proc_slot_index;
    pst_addr_key(sa, key);

    pst_shm_lock(conn_zone);

    total = 0;
    for (k = 0; k < PST_MAX_PROCS; k++) {
        total += cz->total[k];
    }

    if (max_total > 0 && total >= (unsigned) max_total) {
        pst_shm_unlock(conn_zone);
        return PST_BUSY;
    }

    b = pst_conn_bucket(cz, key, 1);
    if (b != NULL) {
        mine = 0;
        for (k = 0; k < PST_MAX_PROCS; k++) {
            mine += b->count[k];
        }
        if (max_per_addr > 0 && mine >= (unsigned) max_per_addr) {
            pst_shm_unlock(conn_zone);
            return PST_DECLINED;
        }
        if (b->count[slot] < UINT16_MAX) {
            b->count[slot]++;
        }
    }
    /* a full table counts the total only: fail open per address */

    cz->total[slot]++;
    pst_shm_unlock(conn_zone);

    return PST_OK;
}


pst_uint_t
pst_conn_count_current(void)
{
    pst_conn_zone_t  *cz;
    pst_uint_t        total;
    int               k;

    if (conn_zone == NULL) {
        return 0;
    }

    cz = pst_shm_addr(conn_zone);
    total = 0;
    for (k = 0; k < PST_MAX_PROCS; k++) {
        total += __atomic_load_n(&cz->total[k], __ATOMIC_RELAXED);
    }

    return total;
}


void
pst_conn_count_release(const struct sockaddr *sa)
{
    pst_conn_zone_t    *cz;
    pst_conn_bucket_t  *b;
    u_char              key[16];
    int                 slot;

    if (conn_zone == NULL) {
        return;
    }

    cz = pst_shm_addr(conn_zone);
    slot = pst_proc_slot_index;
    pst_addr_key(sa, key);

    pst_shm_lock(conn_zone);

    b = pst_conn_bucket(cz, key, 0);
    if (b != NULL && b->count[slot] > 0) {
        b->count[slot]--;
    }
    if (cz->total[slot] > 0) {
        cz->total[slot]--;
    }

    pst_shm_unlock(conn_zone);
}


void
pst_shm_set_accepting(int slot, int on)
{
    pst_conn_zone_t  *cz;

    if (conn_zone == NULL || slot < 0 || slot >= PST_MAX_PROCS) {
        return;
    }
    cz = pst_shm_addr(conn_zone);
    __atomic_store_n(&cz->accepting[slot], on, __ATOMIC_SEQ_CST);
}


int
pst_shm_accepting(int slot)
{
    pst_conn_zone_t  *cz;

    if (conn_zone == NULL || slot < 0 || slot >= PST_MAX_PROCS) {
        return 0;
    }
    cz = pst_shm_addr(conn_zone);
    return __atomic_load_n(&cz->accepting[slot], __ATOMIC_SEQ_CST);
}


void
pst_shm_clear_slot(int slot)
{
    pst_conn_zone_t  *cz;
    int               i;

    if (conn_zone == NULL || slot < 0 || slot >= PST_MAX_PROCS) {
        return;
    }

    cz = pst_shm_addr(conn_zone);

    pst_shm_lock(conn_zone);
    cz->total[slot] = 0;
    cz->accepting[slot] = 0;
    for (i = 0; i < PST_CONN_BUCKETS; i++) {
        cz->buckets[i].count[slot] = 0;
    }
    pst_shm_unlock(conn_zone);
}
