/* The file of a shared table: made under an exclusive flock by whichever process finds it absent
 * or unfinished, checked by every other, then mapped. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* O_CLOEXEC, O_NOFOLLOW */
#endif
#include "shared.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

#define HEADER_SIZE (3 * 4096)
#define BOOT_ID_SIZE 40
static const char magic[8] = {'s', 'e', 's', 's', 'i', 'd', 0x1a, 0x0a};

struct header {
    char magic[8];
    uint32_t layout;
    uint32_t header_size;       /* sizeof(struct header): guards the mutex's size and alignment */
    uint64_t slot_size;
    uint64_t capacity;
    uint64_t max_entries;
    double ttl;
    uint64_t file_size;
    char boot_id[BOOT_ID_SIZE]; /* the boot the file was made in: its monotonic clock */
    _Atomic uint32_t ready;     /* written last, when the table is made */
    pthread_mutex_t mutex;
    alignas(64) unsigned char state[SESSID_SHARED_STATE_SIZE];
};

_Static_assert(sizeof(struct header) <= HEADER_SIZE, "the header fits its pages");

int sessid_shared_path(const char *name, char out[SESSID_SHARED_PATH_MAX])
{
    size_t len = strlen(name);
    if (name[0] == '/') {
        if (len >= SESSID_SHARED_PATH_MAX)
            return SESSID_EINVAL;
        memcpy(out, name, len + 1);
        return SESSID_OK;
    }
    if (len == 0 || len > SESSID_SHARED_NAME_MAX || name[0] == '.')
        return SESSID_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                 || c == '.' || c == '_' || c == '-';
        if (!ok)
            return SESSID_EINVAL;
    }
    memcpy(out, "/dev/shm/sessid-", 16);
    memcpy(out + 16, name, len + 1);
    return SESSID_OK;
}

static size_t file_size_of(const sessid_shared_spec *spec)
{
    size_t bytes = HEADER_SIZE + spec->capacity * spec->slot_size + spec->capacity * 4;
    size_t page = 4096;
    return (bytes + page - 1) / page * page;
}

static void read_boot_id(char out[BOOT_ID_SIZE])
{
    memset(out, 0, BOOT_ID_SIZE);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;                 /* no /proc: every boot looks alike, and a table lives on */
    ssize_t n = read(fd, out, BOOT_ID_SIZE - 1);
    close(fd);
    if (n < 0)
        memset(out, 0, BOOT_ID_SIZE);
}

static int system_problem(sessid_shared_problem *p, const char *call)
{
    p->kind = SESSID_SHARED_SYSTEM;
    p->call = call;
    p->errno_value = errno;
    return SESSID_EFILE;
}

static int problem(sessid_shared_problem *p, sessid_shared_problem_kind kind)
{
    p->kind = kind;
    return SESSID_EFILE;
}

/* Opens path, creating it (0600) when absent; never follows a symlink. *created tells which. */
static int open_file(const char *path, int *fd, int *created, sessid_shared_problem *p)
{
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    *created = *fd >= 0;
    if (*fd < 0 && errno == EEXIST)
        *fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (*fd >= 0)
        return SESSID_OK;
    if (errno == ELOOP)
        return problem(p, SESSID_SHARED_SYMLINK);
    return system_problem(p, "open");
}

/* The owner and mode checks, on the open file. */
static int check_owner(int fd, struct stat *st, sessid_shared_problem *p)
{
    if (fstat(fd, st) != 0)
        return system_problem(p, "fstat");
    if (!S_ISREG(st->st_mode))
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    if (st->st_uid != geteuid()) {
        p->found_uid = (unsigned long)st->st_uid;
        return problem(p, SESSID_SHARED_OWNER);
    }
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        p->found_mode = (unsigned long)(st->st_mode & 07777);
        return problem(p, SESSID_SHARED_MODE);
    }
    return SESSID_OK;
}

/* Unlocks and closes fd. The unlock is explicit: a mapping of the file keeps its open file
 * description, and with it the flock, alive after close. */
static void release_file(int fd)
{
    flock(fd, LOCK_UN);
    close(fd);
}

/* 1 when path still names the file open as fd (it was not removed or replaced meanwhile). */
static int still_there(const char *path, const struct stat *st)
{
    struct stat now;
    return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

static int all_zero(const void *data, size_t len)
{
    const unsigned char *bytes = data;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            return 0;
    return 1;
}

enum verdict { READY, UNFINISHED };

/* Reads the header of an existing file of `size` bytes: READY (made with spec), UNFINISHED (to be
 * made again), or an error with *p set. */
static int judge(int fd, off_t size, const sessid_shared_spec *spec, const char *boot_id,
                 enum verdict *verdict, sessid_shared_problem *p)
{
    *verdict = UNFINISHED;
    if (size == 0)
        return SESSID_OK;
    if (size < HEADER_SIZE)
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    struct header *h = mmap(NULL, HEADER_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        return system_problem(p, "mmap");
    int rc = SESSID_OK;
    if (memcmp(h->magic, magic, sizeof magic) != 0) {
        if (!all_zero(h, HEADER_SIZE))          /* a maker died before writing anything */
            rc = problem(p, SESSID_SHARED_NOT_A_TABLE);
    } else if (h->layout != SESSID_SHARED_LAYOUT) {
        p->found_layout = h->layout;
        rc = problem(p, SESSID_SHARED_LAYOUT_OTHER);
    } else if (atomic_load_explicit(&h->ready, memory_order_acquire) != 1
               || memcmp(h->boot_id, boot_id, BOOT_ID_SIZE) != 0) {
        /* UNFINISHED: its maker died, or it was made before the last reboot; no one uses it */
    } else if (h->header_size != sizeof(struct header) || h->slot_size != spec->slot_size
               || h->file_size != (uint64_t)size) {
        rc = problem(p, SESSID_SHARED_NOT_A_TABLE);
    } else if (h->ttl != spec->ttl || h->max_entries != spec->max_entries) {
        p->found_ttl = h->ttl;
        p->found_max_entries = h->max_entries;
        rc = problem(p, SESSID_SHARED_SETTINGS);
    } else {
        *verdict = READY;
    }
    munmap(h, HEADER_SIZE);
    return rc;
}

static void lay_out(sessid_shared_file *f, const sessid_shared_spec *spec)
{
    struct header *h = f->base;
    f->mutex = &h->mutex;
    f->state = h->state;
    f->slots = (char *)f->base + HEADER_SIZE;
    f->scratch = (uint32_t *)((char *)f->slots + spec->capacity * spec->slot_size);
}

static int map_file(int fd, size_t size, sessid_shared_file *f, sessid_shared_problem *p)
{
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return system_problem(p, "mmap");
    f->base = base;
    f->size = size;
    return SESSID_OK;
}

/* Makes the file anew: its full size allocated (a full file system fails here), zeroed, and the
 * header written, not yet ready. */
static int make(int fd, const sessid_shared_spec *spec, const char *boot_id, sessid_shared_file *f,
                sessid_shared_problem *p)
{
    size_t size = file_size_of(spec);
    if (ftruncate(fd, 0) != 0)
        return system_problem(p, "ftruncate");
    int err = posix_fallocate(fd, 0, (off_t)size);
    if (err != 0) {
        errno = err;
        return system_problem(p, "posix_fallocate");
    }
    int rc = map_file(fd, size, f, p);
    if (rc != SESSID_OK)
        return rc;
    struct header *h = f->base;
    memcpy(h->magic, magic, sizeof magic);
    h->layout = SESSID_SHARED_LAYOUT;
    h->header_size = sizeof(struct header);
    h->slot_size = spec->slot_size;
    h->capacity = spec->capacity;
    h->max_entries = spec->max_entries;
    h->ttl = spec->ttl;
    h->file_size = size;
    memcpy(h->boot_id, boot_id, BOOT_ID_SIZE);
    lay_out(f, spec);
    return SESSID_OK;
}

int sessid_shared_open(const char *path, const sessid_shared_spec *spec, sessid_shared_file *f,
                       int *fresh, sessid_shared_problem *p)
{
    memset(f, 0, sizeof *f);
    memset(p, 0, sizeof *p);
    f->fd = -1;
    *fresh = 0;
    if (!(spec->ttl > 0) || spec->capacity == 0 || spec->capacity > UINT32_MAX - 1
        || spec->slot_size == 0 || spec->slot_size % 64 != 0)
        return SESSID_EINVAL;
    char boot_id[BOOT_ID_SIZE];
    read_boot_id(boot_id);
    for (int attempt = 0;; attempt++) {
        int fd, created;
        struct stat st;
        int rc = open_file(path, &fd, &created, p);
        if (rc != SESSID_OK)
            return rc;
        rc = check_owner(fd, &st, p);
        if (rc == SESSID_OK && flock(fd, LOCK_EX) != 0)
            rc = system_problem(p, "flock");
        if (rc == SESSID_OK && !still_there(path, &st)) {
            close(fd);                          /* removed or replaced while we waited: again */
            if (attempt < 100)
                continue;
            errno = EAGAIN;
            return system_problem(p, "open");
        }
        enum verdict verdict = UNFINISHED;
        if (rc == SESSID_OK && fstat(fd, &st) != 0)
            rc = system_problem(p, "fstat");
        if (rc == SESSID_OK)
            rc = judge(fd, st.st_size, spec, boot_id, &verdict, p);
        if (rc == SESSID_OK && verdict == READY) {
            rc = map_file(fd, (size_t)st.st_size, f, p);
            if (rc == SESSID_OK)
                lay_out(f, spec);
            release_file(fd);                   /* the mapping stays */
            return rc;
        }
        if (rc == SESSID_OK) {
            rc = make(fd, spec, boot_id, f, p);
            if (rc == SESSID_OK) {
                f->fd = fd;                     /* held, locked, until published */
                *fresh = 1;
                return SESSID_OK;
            }
            /* No half-made file of ours is left behind. Only when making it failed: a file this
             * process created may hold another's table by now (it won the flock first). */
            if (created)
                unlink(path);
        }
        sessid_shared_close(f);
        release_file(fd);
        return rc;
    }
}

void sessid_shared_publish(sessid_shared_file *f)
{
    struct header *h = f->base;
    atomic_store_explicit(&h->ready, 1, memory_order_release);
    if (f->fd >= 0) {
        release_file(f->fd);
        f->fd = -1;
    }
}

void sessid_shared_close(sessid_shared_file *f)
{
    if (f->base != NULL)
        munmap(f->base, f->size);
    if (f->fd >= 0)
        release_file(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

/* Opens path to read it, never following a symlink nor waiting on a FIFO; checks what
 * check_owner checks. */
static int open_to_read(const char *path, int *fd, struct stat *st, sessid_shared_problem *p)
{
    *fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0)
        return errno == ELOOP ? problem(p, SESSID_SHARED_SYMLINK) : system_problem(p, "open");
    int rc = check_owner(*fd, st, p);
    if (rc != SESSID_OK)
        close(*fd);
    return rc;
}

int sessid_shared_settings(const char *path, double *ttl, uint64_t *max_entries,
                           sessid_shared_problem *p)
{
    memset(p, 0, sizeof *p);
    int fd;
    struct stat st;
    int rc = open_to_read(path, &fd, &st, p);
    if (rc != SESSID_OK)
        return rc;
    struct header h;
    ssize_t n = pread(fd, &h, sizeof h, 0);
    close(fd);
    if (n != (ssize_t)sizeof h)
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    if (memcmp(h.magic, magic, sizeof magic) != 0)
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    if (h.layout != SESSID_SHARED_LAYOUT) {
        p->found_layout = h.layout;
        return problem(p, SESSID_SHARED_LAYOUT_OTHER);
    }
    if (h.header_size != sizeof h || h.file_size != (uint64_t)st.st_size || h.ready != 1)
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    *ttl = h.ttl;
    *max_entries = h.max_entries;
    return SESSID_OK;
}

int sessid_shared_remove(const char *path, sessid_shared_problem *p)
{
    memset(p, 0, sizeof *p);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? problem(p, SESSID_SHARED_SYMLINK) : system_problem(p, "open");
    struct stat st;
    char head[sizeof magic];
    int is_table = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                   && read(fd, head, sizeof head) == (ssize_t)sizeof head
                   && memcmp(head, magic, sizeof magic) == 0;
    close(fd);
    if (!is_table)
        return problem(p, SESSID_SHARED_NOT_A_TABLE);
    if (unlink(path) != 0)
        return system_problem(p, "unlink");
    return SESSID_OK;
}
