/* The sliding-TTL table: SHA-256 digest of an API key -> session id, in this process's memory or in
 * a file that every process of the host that opens it shares.
 *
 * Keys are the 32-byte digests only; the table never sees a raw API key. An entry is one 64-byte
 * cache line (digest, id, time of last use, links), held in an open-addressing table that is kept
 * between 70% and 85% full: at most 91 bytes of memory per entry. A table that must grow makes an
 * array 20% larger and keeps the old one until the inserts that follow have moved its entries
 * across, each insert the entries of at most 64 old slots: no call moves more, and a growth ends
 * long before the next is due. The new array's pages are made as the entries reach them and the
 * old array's are given back as they leave, so a growing table holds about as much memory as one at
 * rest. Large tables ask the kernel for huge pages once grown. An entry used at time t (in the caller's clock, in seconds)
 * expires at t + ttl, and an entry whose expiry is at or before `now` is gone. Because every entry
 * has the same TTL, the order of last use is also the order of expiry: entries sit on one list from
 * least to most recently used, and each call reclaims at most a couple of expired entries from its
 * old end, so expiry costs amortized O(1) with no sweep of the table and no background thread. With
 * max_entries set, a full table evicts its least recently used entry to make room.
 *
 * Time never runs backwards inside a table: a `now` older than the latest one seen counts as that
 * latest one, so a clock that steps back freezes the table's time instead of reordering it.
 *
 * Every function is safe to call from any number of threads at once on the same table; each holds
 * the table's lock for O(1) work (an insert into a growing table: a bounded amount), except purge,
 * live and clear.
 * A table stays usable in both processes after fork(), even when another thread was inside it at
 * the moment of the fork. Functions return 0 or a negative SESSID_E* status (status.h).
 *
 * A shared table (sessid_table_open_shared) is the same table in a file (shared.h): a fixed number
 * of slots with room for max_entries, so it never grows and a full one evicts; its lock, counters
 * and time are in the file too, so every process sees the same entries, counts and expiry. A process
 * killed at any moment, even inside a call, loses nothing but that call: the next process to take
 * the lock undoes what it left half done (undo.h), and no id changes. Its `now` must come from a
 * clock every process of the host shares (the monotonic clock). A hit on an entry already used at
 * the same `now` (within the coarse clock's tick, for a busy key) is answered without the lock and
 * changes nothing but a counter, so processes hammering one table do not queue on it; least
 * recently used then means to the clock's tick. Nothing read from the file is trusted: a call that
 * meets damage is undone and the table rebuilt from its slots. A call waits on another process's
 * hold of the lock as lock.h says, and fails with SESSID_ETIMEDOUT or SESSID_EBUSY; a lock that
 * something other than sessid released unrepaired is SESSID_ELOCK.
 */
#ifndef SESSID_TABLE_H
#define SESSID_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "idgen.h"
#include "lock.h"
#include "shared.h"

/* The most entries a table can hold, with or without max_entries. */
#define SESSID_TABLE_LIMIT ((uint64_t)1 << 30)

typedef struct sessid_table sessid_table;

enum sessid_stat {
    SESSID_STAT_HITS,       /* lookups that found a live id */
    SESSID_STAT_MISSES,     /* lookups that had to make (or fetch) a new id */
    SESSID_STAT_EXPIRED,    /* entries that outlived their TTL and were reclaimed or replaced */
    SESSID_STAT_EVICTED,    /* entries pushed out by max_entries */
    SESSID_STAT_KV_ERRORS,  /* KV failures, counted by the caller through sessid_table_count */
    SESSID_STAT_KV_SKIPPED, /* lookups answered without the KV while it was failing, likewise */
    SESSID_STAT_KV_FALLBACKS, /* runs that fell back from an optional KV command it did not offer */
    SESSID_STAT_KV_REPAIRED,  /* runs that replaced damage under a KV key */
    SESSID_STAT_LOCK_TIMEOUTS, /* calls that could not have a shared table's lock in time */
    SESSID_STAT_LOCK_REPAIRS,  /* a shared table's lock taken from a holder that died holding it */
    SESSID_STAT_COUNT
};

typedef struct sessid_stats {
    uint64_t counters[SESSID_STAT_COUNT];
} sessid_stats;

/* Creates an empty table. ttl: seconds, finite and > 0. max_entries: 0 for no bound other than
 * SESSID_TABLE_LIMIT, else 1..SESSID_TABLE_LIMIT. On success *out owns the table (free it with
 * sessid_table_free). Returns 0, SESSID_EINVAL, SESSID_ENOMEM or SESSID_ERANDOM. */
int sessid_table_new(double ttl, uint64_t max_entries, sessid_table **out);

/* Opens the shared table in the file at path (see shared.h for names and paths), creating it when
 * absent if create is 1, with room for max_entries (1..SESSID_TABLE_LIMIT) entries that live ttl
 * seconds. On success *out owns this process's handle (sessid_table_free unmaps it; the file
 * stays). Its lock's waits last 1 second until sessid_table_set_lock_wait says otherwise. Returns
 * 0, SESSID_EFILE with *problem saying what is wrong with the file (another ttl or max_entries
 * among them; no file, when create is 0), SESSID_EINVAL, SESSID_ENOMEM, SESSID_ERANDOM or
 * SESSID_ESTATE. */
int sessid_table_open_shared(const char *path, double ttl, uint64_t max_entries, int create,
                             sessid_table **out, sessid_shared_problem *problem);

/* A shared table: how long its calls wait on another process's hold of its lock, and the hooks run
 * around such a wait (see lock.h). Nothing for a private table. Not while other threads use it. */
void sessid_table_set_lock_wait(sessid_table *table, double timeout, const sessid_lock_hooks *hooks);

/* 1 when the file of a shared table is no longer at path (removed, or replaced by another). */
int sessid_table_moved(const sessid_table *table, const char *path);

/* Frees a table and everything it holds (a shared table: this process's mapping); NULL is allowed.
 * No other thread may be using it. */
void sessid_table_free(sessid_table *table);

/* The local get-or-create: copies the live id of digest to id and renews its expiry to now + ttl,
 * or, when there is none, makes a fresh random id, stores it and copies it to id. *created (created
 * may be NULL) is set to 1 when the id is new, 0 otherwise. Concurrent calls for one digest all get
 * the same id. wait says how a shared table's lock is waited for (lock.h). Returns 0,
 * SESSID_ENOMEM, SESSID_ERANDOM or SESSID_EFULL, and for a shared table SESSID_ETIMEDOUT,
 * SESSID_EBUSY, SESSID_ELOCK or SESSID_EDAMAGED; the table is unchanged on failure. */
int sessid_table_get_or_create(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN],
                               double now, uint8_t id[SESSID_ID_LEN], int *created,
                               sessid_lock_wait wait);

/* A read for the near cache: returns 1, with id holding the id, when digest has a live entry that
 * was last stored or renewed less than `window` seconds before now (now < last use + window), and 0
 * otherwise (also when a shared table's lock could not be had: a best-effort wait). Neither the
 * expiry nor the order of the entry changes. Never fails. */
int sessid_table_peek(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN], double now,
                      double window, uint8_t id[SESSID_ID_LEN]);

/* Stores id (a version 4 UUID) for digest with its expiry at now + ttl, replacing any entry digest
 * had (a best-effort wait for a shared table's lock). Returns 0, SESSID_EINVAL (id is not version
 * 4), SESSID_ENOMEM or SESSID_EFULL, or a shared table's lock statuses as for get_or_create; the
 * table is unchanged on failure. */
int sessid_table_put(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN],
                     const uint8_t id[SESSID_ID_LEN], double now);

/* Drops the entry of digest, if there is one. Returns 0, or a shared table's lock statuses as for
 * get_or_create. */
int sessid_table_remove(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN], double now);

/* A hint that a lookup of digest follows soon: starts fetching the memory it will read. Safe to
 * call at any time from any thread, without the lock; it changes nothing. */
void sessid_table_prefetch(sessid_table *table, const uint8_t digest[SESSID_DIGEST_LEN]);

/* The next three take time in proportion to the entries they drop; on a shared table they hold its
 * lock for a bounded piece of that work at a time, so other processes wait for one piece at most.
 * Each returns 0, or a shared table's lock statuses as for get_or_create. */

/* Reclaims every expired entry; *reclaimed tells how many. */
int sessid_table_purge(sessid_table *table, double now, size_t *reclaimed);

/* Drops every entry and gives the memory back (of a shared table: every entry last used before the
 * call began). Counters are kept. */
int sessid_table_clear(sessid_table *table);

/* Reclaims expired entries; *live tells how many entries are left. */
int sessid_table_live(sessid_table *table, double now, size_t *live);

/* Adds one to a counter (unless a shared table's lock is held too long: a best-effort wait). */
void sessid_table_count(sessid_table *table, enum sessid_stat stat);

/* Copies the counters to *out, as one consistent snapshot. Returns 0, or a shared table's lock
 * statuses as for get_or_create. */
int sessid_table_stats(sessid_table *table, sessid_stats *out);


#endif
