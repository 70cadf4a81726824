/* The file of a shared table: created once, without a race, by whichever process comes first;
 * opened and checked by every other; mapped into each of them.
 *
 * A bare name is the file /dev/shm/sessid-NAME (see sessid_shared_path); an absolute path is used
 * as given. The file is created owner-only (0600) and allocated in full at once, so a full file
 * system is an error here, never a crash later. It holds, in order: a header (the layout, the
 * table's settings, the boot it was made in, the process-shared lock, and room for the table's
 * own state), the slots, and a scratch area the table uses for repairs.
 *
 * Every check an opener makes names what is wrong through a sessid_shared_problem, so the caller
 * can say it in words: another ttl or capacity than asked for, a file that is not a table of this
 * layout (truncated, random bytes, another version), a symlink, a file owned by another user or
 * writable by group or others, or an error of the system (errno).
 */
#ifndef SESSID_SHARED_H
#define SESSID_SHARED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped whenever the file's layout changes; an opener refuses any other. */
#define SESSID_SHARED_LAYOUT 2

/* Bytes of the header kept for the table's own state. */
#define SESSID_SHARED_STATE_SIZE 8192

/* The longest name sessid_shared_path takes, and the longest path it makes. */
#define SESSID_SHARED_NAME_MAX 64
#define SESSID_SHARED_PATH_MAX 4096

typedef enum sessid_shared_problem_kind {
    SESSID_SHARED_OK,
    SESSID_SHARED_SYSTEM,       /* a system call failed: errno_value */
    SESSID_SHARED_SETTINGS,     /* made with another ttl or max_entries: found_* */
    SESSID_SHARED_LAYOUT_OTHER, /* made by another layout version: found_layout */
    SESSID_SHARED_NOT_A_TABLE,  /* truncated, or not a sessid table at all */
    SESSID_SHARED_SYMLINK,
    SESSID_SHARED_OWNER,        /* owned by another user: found_uid */
    SESSID_SHARED_MODE          /* writable by group or others: found_mode */
} sessid_shared_problem_kind;

typedef struct sessid_shared_problem {
    sessid_shared_problem_kind kind;
    const char *call;           /* SYSTEM: the system call that failed */
    int errno_value;
    double found_ttl;
    uint64_t found_max_entries;
    uint32_t found_layout;
    unsigned long found_uid;
    unsigned long found_mode;
} sessid_shared_problem;

/* What the opener asks for; a file made with other settings is refused. */
typedef struct sessid_shared_spec {
    double ttl;
    uint64_t max_entries;
    uint64_t capacity;          /* slots */
    size_t slot_size;
} sessid_shared_spec;

typedef struct sessid_shared_file {
    void *base;                 /* the whole mapping */
    size_t size;
    pthread_mutex_t *mutex;     /* in the header */
    void *state;                /* SESSID_SHARED_STATE_SIZE bytes in the header, 64-byte aligned */
    void *slots;                /* capacity * slot_size bytes, 64-byte aligned */
    uint32_t *scratch;          /* capacity words */
    int fd;                     /* held while the file is being made, else -1 */
} sessid_shared_file;

/* Writes /dev/shm/sessid-NAME for a name (1 to SESSID_SHARED_NAME_MAX letters, digits, '.', '_',
 * '-', not starting with '.'), or copies an absolute path, into out (SESSID_SHARED_PATH_MAX bytes).
 * Returns 0 or SESSID_EINVAL (neither). */
int sessid_shared_path(const char *name, char out[SESSID_SHARED_PATH_MAX]);

/* Opens the table file at path, creating it when absent, and maps it. Returns:
 *   0 with *fresh = 0: a table made with spec, ready to use;
 *   0 with *fresh = 1: a new file (or one left unfinished by a process that died making it, or made
 *      before the last reboot), laid out and zeroed, with the lock not yet made; the caller
 *      initializes the lock and the state, then calls sessid_shared_publish;
 *   SESSID_EFILE with *problem saying what is wrong (nothing is left open or mapped).
 * SESSID_ENOMEM and SESSID_EINVAL (spec out of range) as usual. */
int sessid_shared_open(const char *path, const sessid_shared_spec *spec, sessid_shared_file *file,
                       int *fresh, sessid_shared_problem *problem);

/* Marks a fresh file ready for every other process. */
void sessid_shared_publish(sessid_shared_file *file);

/* Unmaps the file (and closes it, if a fresh file was never published). */
void sessid_shared_close(sessid_shared_file *file);

/* Reads the settings a ready table file at path was made with, without changing anything: for
 * tools that look at a table whose settings they do not know. Returns 0, or SESSID_EFILE with
 * *problem set as sessid_shared_open would (never SETTINGS). */
int sessid_shared_settings(const char *path, double *ttl, uint64_t *max_entries,
                           sessid_shared_problem *problem);

/* Removes the file at path. Processes that have it open keep using it until they close it; every
 * process that opens path afterwards gets a new table. Returns 0, or SESSID_EFILE with *problem set
 * (SYSTEM with ENOENT when there is no such file; NOT_A_TABLE when the file is not a sessid table,
 * which is then left in place). */
int sessid_shared_remove(const char *path, sessid_shared_problem *problem);

#endif
