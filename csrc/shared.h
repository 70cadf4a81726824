/* The file of a shared table: made beside its name and renamed into place when complete, so a file
 * at the name is always whole; checked field by field before any of it is believed; mapped into
 * every process that opens it, each of which holds a shared flock on it for as long as it is mapped.
 *
 * A bare name is the file /dev/shm/sessid-NAME (see sessid_shared_path); an absolute path is used
 * as given. The file is owner-only (0600, whatever the umask) and allocated in full at once, so a
 * full file system is an error here, never a crash later. Its format is csrc/file_format.h.
 *
 * Nothing in the file is trusted: a file at the name that is not a whole table of this layout is
 * refused and never changed. A table made before the last boot (both boot ids known, and different)
 * is replaced, but only when no process has it open (no other flock on it); a table in use is used
 * as it is, whatever its boot id says. A boot id that cannot be read is unknown, never different.
 *
 * Every check an opener makes names what is wrong through a sessid_shared_problem, so the caller
 * can say it in words: another ttl or capacity than asked for, a file that is not a table of this
 * layout (empty, truncated, damaged, random bytes, another version), a symlink, a file owned by
 * another user or writable by group or others, or an error of the system (errno).
 */
#ifndef SESSID_SHARED_H
#define SESSID_SHARED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The version of the file's layout (csrc/file_format.h), for messages; an opener refuses any other,
 * and any other build of the structs (their fingerprint). */
#define SESSID_SHARED_LAYOUT 4

struct shared_state;
struct entry;
struct undo_record;

/* The longest name sessid_shared_path takes, and the longest path it makes. */
#define SESSID_SHARED_NAME_MAX 64
#define SESSID_SHARED_PATH_MAX 4096

typedef enum sessid_shared_problem_kind {
    SESSID_SHARED_OK,
    SESSID_SHARED_SYSTEM,       /* a system call failed: errno_value */
    SESSID_SHARED_SETTINGS,     /* made with another ttl or max_entries: found_* */
    SESSID_SHARED_LAYOUT_OTHER, /* made by another layout version: found_layout */
    SESSID_SHARED_NOT_A_TABLE,  /* empty, truncated, damaged, or not a sessid table at all: what */
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
    const char *what;           /* NOT_A_TABLE: the check that failed, in words */
} sessid_shared_problem;

/* What the opener asks for; a file made with other settings is refused. */
typedef struct sessid_shared_spec {
    double ttl;
    uint64_t max_entries;
    uint64_t capacity;          /* slots */
    /* Makes the table's state and lock in a new file, before any other process can see it:
     * returns 0 or a negative status. */
    int (*init)(struct shared_state *state, pthread_mutex_t *mutex, const struct sessid_shared_spec *spec);
} sessid_shared_spec;

typedef struct sessid_shared_file {
    void *base;                 /* the whole mapping */
    size_t size;
    pthread_mutex_t *mutex;     /* in the header */
    struct shared_state *state; /* in the header */
    struct entry *slots;        /* capacity slots */
    uint32_t *scratch;          /* capacity words */
    struct undo_record *undo;   /* undo_records records */
    uint64_t undo_records;
    int fd;                     /* open, with a shared flock, while mapped; else -1 */
    unsigned long long dev, ino; /* the file's identity, to notice that its name moved on */
} sessid_shared_file;

/* Writes /dev/shm/sessid-NAME for a name (1 to SESSID_SHARED_NAME_MAX letters, digits, '.', '_',
 * '-', not starting with '.'), or copies an absolute path, into out (SESSID_SHARED_PATH_MAX bytes).
 * Returns 0 or SESSID_EINVAL (neither). */
int sessid_shared_path(const char *name, char out[SESSID_SHARED_PATH_MAX]);

/* Opens the table file at path and maps it, making it (with spec->init) when there is none, or when
 * the one there was made before the last boot and no process has it open. When create is 0, a path
 * with no file is SESSID_EFILE with SYSTEM and ENOENT. Returns 0, or SESSID_EFILE with *problem
 * saying what is wrong (nothing is left open or mapped), or what spec->init returned; SESSID_EINVAL
 * for a spec out of range. The header's fields are checked; the table's state is the caller's to
 * check. */
int sessid_shared_open(const char *path, const sessid_shared_spec *spec, int create,
                       sessid_shared_file *file, sessid_shared_problem *problem);

/* Unmaps and closes the file. */
void sessid_shared_close(sessid_shared_file *file);

/* 1 when path no longer names the file (removed, or replaced by another), 0 when it still does. */
int sessid_shared_moved(const sessid_shared_file *file, const char *path);

/* Reads the settings a ready table file at path was made with, without changing anything: for
 * tools that look at a table whose settings they do not know. Returns 0, or SESSID_EFILE with
 * *problem set as sessid_shared_open would (never SETTINGS). */
int sessid_shared_settings(const char *path, double *ttl, uint64_t *max_entries,
                           sessid_shared_problem *problem);

/* Removes the file at path (a sessid table, whole, damaged or of another layout, whoever owns it:
 * the system says whether this process may). The processes that have it open go on mapping it
 * until they notice (sessid_shared_moved); every process that opens path afterwards gets a new
 * table. Returns 0, or SESSID_EFILE with *problem set (SYSTEM with ENOENT when there is no such
 * file; NOT_A_TABLE when the file is not a sessid table, which is then left in place). */
int sessid_shared_remove(const char *path, sessid_shared_problem *problem);

#endif
