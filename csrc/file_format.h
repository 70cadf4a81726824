/* The format of a shared table's file: every struct that the file stores, in one place, pinned by
 * size and offset, and the fingerprint an opener checks. Not part of the core's contract.
 *
 * A file holds, in order: the header (struct file_header: what the file is, the table's settings,
 * the boot it was made in, the process-shared lock, and the table's state), the slots (struct
 * entry), a scratch area of one word per slot for repairs, and the undo log's records. A private
 * table uses struct entry and struct head the same way, in its own memory.
 *
 * Any change to a struct here changes SESSID_FILE_FINGERPRINT, so a process built with another
 * layout refuses the file instead of reading it wrong; SESSID_SHARED_LAYOUT (shared.h) names the
 * version in messages.
 */
#ifndef SESSID_FILE_FORMAT_H
#define SESSID_FILE_FORMAT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "idgen.h"
#include "table.h"

struct entry {
    uint8_t digest[SESSID_DIGEST_LEN];
    uint8_t id[SESSID_ID_LEN];          /* a version 4 UUID; its first half zero in an empty slot */
    double last_use;                    /* expires at last_use + ttl */
    uint32_t older, newer;              /* neighbours in the use-order list, NIL at the ends */
};

/* The table's state; a shared table keeps it in its file. */
struct head {
    /* What a lookup reads: written once, or once per tick of the clock. */
    double ttl;
    uint64_t max_entries;
    double clock;                       /* the latest `now` seen */
    uint64_t seed[4];                   /* keys the slot hash, so no one can aim keys at one slot */
    uint64_t capacity;
    /* What every insert and removal writes, on a cache line of its own: in a shared table, another
     * process's quick hits would otherwise wait for it at each change. */
    alignas(64) uint64_t count;
    uint32_t oldest, newest;
    uint64_t stats[SESSID_STAT_COUNT];
};

/* A shared table lets a hit on an entry already used at the same instant (the coarse clock's tick)
 * answer without its lock: such a hit would change nothing but a counter. It reads the entry under
 * a sequence count, odd while a holder of the lock may be changing slots, and counts itself in one
 * of several counters picked by thread, so that processes hammering one table share no cache line
 * on that path. Such a hit leaves its entry where its first use in the tick put it, so once the
 * tick has taken in many new entries (tick_inserts, kept under the lock), hits take the lock again
 * and move their entries: no entry in use drifts to the old end, however long a tick lasts. Calls
 * that answered without the table because its lock was held too long are counted here too,
 * without the lock. */
#define QUICK_HIT_COUNTERS 64

struct quick_hits {
    alignas(64) _Atomic uint64_t seq;
    _Atomic uint64_t lock_timeouts;
    _Atomic uint64_t tick_inserts;      /* entries inserted since the table's time last moved on */
    alignas(64) struct {
        _Atomic uint64_t hits;
        char pad[56];
    } counters[QUICK_HIT_COUNTERS];
};

/* What a mutation of a shared table changes in its head, saved before it starts (not the counters:
 * an undone call's counts may stand). */
struct head_before {
    double clock;
    uint64_t count;
    uint32_t oldest, newest;
};

/* The undo log: before a holder of the lock first changes anything, it saves the head's changing
 * fields and arms the log; before it writes to a slot, it appends the slot's bytes as they are.
 * The two changes that lookups make most have records of their own, which hold only what they
 * change: a touch (a locked hit moves its entry to the newest end of the use order) and an insert
 * (a new entry in a blank slot, linked after the newest). A process that takes the lock from a
 * holder that died puts back, newest first, what the log holds: the table is then as it was before
 * the interrupted call, whatever step the death interrupted, at the cost of that call's own work.
 * A mutation that writes to more slots than the log holds sets `overflowed`, and the next taker
 * rebuilds the table from its slots instead. */
struct undo_log {
    alignas(64) _Atomic uint32_t armed;     /* 1 while a mutation runs: `before` is whole */
    _Atomic uint32_t overflowed;
    _Atomic uint64_t records;               /* records appended, each whole */
    struct head_before before;
};

#define UNDO_TOUCH ((uint64_t)1 << 63)     /* in a record's slot: a touch record */
#define UNDO_INSERT ((uint64_t)1 << 62)    /* in a record's slot: an insert record */
#define UNDO_KINDS (UNDO_TOUCH | UNDO_INSERT)

struct undo_record {
    uint64_t slot;                          /* the slot saved, or a kind | the slot touched or filled */
    union {
        struct entry before;                /* the slot's bytes as they were */
        struct {                            /* a touch: the slot's time and neighbours as they were, */
            double last_use;                /* and the newest entry then; the slots between were */
            uint32_t older, newer, newest;  /* linked to it, the newest linked to none */
        } touch;
        struct {                            /* an insert: the slot was blank; the newest entry then, */
            uint32_t newest;                /* or NIL, was linked to none */
        } insert;
    };
};

struct shared_state {
    struct head head;
    struct quick_hits quick;
    struct undo_log undo;
};

#define SESSID_FILE_HEADER_SIZE (4 * 4096)
#define SESSID_FILE_BOOT_ID_SIZE 40
#define SESSID_FILE_MAGIC {'s', 'e', 's', 's', 'i', 'd', 0x1a, 0x0a}

struct file_header {
    char magic[8];
    uint32_t layout;                    /* SESSID_SHARED_LAYOUT */
    uint32_t header_size;               /* sizeof(struct file_header) */
    uint64_t fingerprint;               /* SESSID_FILE_FINGERPRINT */
    uint64_t slot_size;
    uint64_t capacity;                  /* slots */
    uint64_t max_entries;
    double ttl;
    uint64_t undo_records;              /* records the undo log holds */
    uint64_t file_size;
    char boot_id[SESSID_FILE_BOOT_ID_SIZE]; /* the boot the file was made in: its monotonic clock */
    _Atomic uint32_t ready;             /* 1: written whole (a file is renamed into place after) */
    pthread_mutex_t mutex;
    alignas(64) struct shared_state state;
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");
_Static_assert(offsetof(struct entry, last_use) == 48 && offsetof(struct entry, older) == 56,
               "entry fields");
_Static_assert(offsetof(struct head, count) == 64, "the changing fields have a line of their own");
_Static_assert(sizeof(struct undo_record) == 72 && offsetof(struct undo_record, touch.newest) == 24
                   && offsetof(struct undo_record, insert.newest) == 8,
               "undo records");
_Static_assert(offsetof(struct file_header, fingerprint) == 16, "the fingerprint sits early");
_Static_assert(offsetof(struct file_header, ready) == 112, "header fields");
_Static_assert(sizeof(struct file_header) <= SESSID_FILE_HEADER_SIZE, "the header fits its pages");
_Static_assert(SESSID_FILE_HEADER_SIZE % 4096 == 0, "slots start on a page");

/* Mixes the sizes and offsets of every stored field into one number, computed by the compiler. */
#define SESSID_FP_MIX(h, v) (((h) ^ (uint64_t)(v)) * 0x100000001b3u)
#define SESSID_FILE_FINGERPRINT                                                                    \
    SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX( \
    SESSID_FP_MIX(                                                                                 \
    SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(             \
    SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(SESSID_FP_MIX(0xcbf29ce484222325u,                     \
        SESSID_SHARED_LAYOUT), sizeof(struct entry)), offsetof(struct entry, last_use)),              \
        offsetof(struct entry, older)), sizeof(struct head)), offsetof(struct head, count)),        \
        offsetof(struct head, stats)), SESSID_STAT_COUNT), sizeof(struct quick_hits)),              \
        offsetof(struct quick_hits, counters)), sizeof(struct undo_log)),                           \
        sizeof(struct undo_record)), sizeof(pthread_mutex_t)), offsetof(struct file_header, mutex)), \
        offsetof(struct file_header, state)), SESSID_FILE_HEADER_SIZE),                             \
        offsetof(struct undo_record, touch.newest)), offsetof(struct undo_record, insert.newest))

/* The slots of a shared table of max_entries entries: room for them within 75% of its slots. A
 * shared table is made in full and never grows, so once full it stays at its most; at 75% the
 * probes of misses and the shifts of evictions stay short (a private table runs at 70% to 85%). */
static inline uint64_t sessid_file_capacity(uint64_t max_entries)
{
    return (4 * max_entries + 2) / 3 + 1;
}

/* The records of the undo log of a table of `capacity` slots: enough for any mutation of a small
 * table, and for all but the longest backward shifts of a large one. */
static inline uint64_t sessid_file_undo_records(uint64_t capacity)
{
    return capacity + 16 < 4096 ? capacity + 16 : 4096;
}

/* Where the undo log's records start in the file of a table of `capacity` slots of `slot_size`
 * bytes: after the slots and the scratch words, on a cache line. */
static inline uint64_t sessid_file_undo_offset(uint64_t capacity, uint64_t slot_size)
{
    uint64_t end = SESSID_FILE_HEADER_SIZE + capacity * slot_size + capacity * 4;
    return (end + 63) / 64 * 64;
}

/* The size of the file of a table of `capacity` slots of `slot_size` bytes, in whole pages; 0 when
 * it would not fit a size_t. */
static inline uint64_t sessid_file_size(uint64_t capacity, uint64_t slot_size)
{
    if (capacity > ((uint64_t)1 << 32) || slot_size > 4096)
        return 0;
    uint64_t bytes = sessid_file_undo_offset(capacity, slot_size)
                     + sessid_file_undo_records(capacity) * sizeof(struct undo_record);
    bytes = (bytes + 4095) / 4096 * 4096;
    return bytes <= (uint64_t)SIZE_MAX ? bytes : 0;
}

#endif
