/*
 * pst_shm.h -- shared memory zones and the connection counters.
 *
 * Zones are anonymous shared mappings made by the master before it
 * forks; they live in a process-wide list (not in a cycle) so a reload
 * keeps a zone whose name and size did not change.  Each zone starts
 * with a robust process-shared mutex.
 *
 * The connection counters answer "how many connections does this
 * client address have open, across all workers" and "how many in
 * total".  Each process owns one column of counts (its slot), so the
 * master can wipe the column of a worker that died without giving the
 * counts back.
 */

#ifndef PST_SHM_H
#define PST_SHM_H

#define PST_MAX_PROCS            64

extern int  pst_proc_slot_index;

int pst_shm_init_limits(pst_conf_t *cf);
/* Count a new connection: PST_OK, PST_BUSY (total limit reached) or
 * PST_DECLINED (per-address limit reached); 0 means no limit. */
int pst_conn_count_acquire(const struct sockaddr *sa, pst_int_t max_total,
    pst_int_t max_per_addr);
void pst_conn_count_release(const struct sockaddr *sa);
/* Connections open now, across all processes (metrics). */
pst_uint_t pst_conn_count_current(void);
/* The 16-byte key of a client address in the shared tables: IPv4 as
 * is (v4-mapped form), IPv6 by its /64 (one site, one key). */
void pst_addr_key(const struct sockaddr *sa, u_char key[16]);
/* Master: a process slot died; forget its counts in every zone. */
void pst_shm_clear_slot(int slot);
/* Whether a process still accepts connections: a worker clears its flag
 * once its listeners are closed, so a reload can wait for the old
 * generation to stop taking connections. */
void pst_shm_set_accepting(int slot, int on);
int pst_shm_accepting(int slot);
/* Master: unmap zones no cycle uses any more. */
void pst_shm_collect(void);
void pst_shm_mark_unused(void);
void pst_shm_mark_all_used(void);

#endif /* PST_SHM_H */
