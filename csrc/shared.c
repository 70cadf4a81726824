/* The file of a shared table: made beside its name and renamed into place, validated field by field
 * by every opener (and by the tools that read or remove it), then mapped under a shared flock. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* O_CLOEXEC, O_NOFOLLOW, mkostemp */
#endif
#include "shared.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file_format.h"
#include "status.h"

static const char magic[8] = SESSID_FILE_MAGIC;

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


/* Reads this boot's id; returns 0 when it cannot (no /proc, or a hidden /proc/sys): unknown. */
static int read_boot_id(char out[SESSID_FILE_BOOT_ID_SIZE])
{
    memset(out, 0, SESSID_FILE_BOOT_ID_SIZE);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, out, SESSID_FILE_BOOT_ID_SIZE - 1);
    close(fd);
    if (n < 16) {
        memset(out, 0, SESSID_FILE_BOOT_ID_SIZE);
        return 0;
    }
    return 1;
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

static const char not_sessid[] = "it does not start as a sessid table does";

static int not_a_table(sessid_shared_problem *p, const char *what)
{
    p->what = what;
    return problem(p, SESSID_SHARED_NOT_A_TABLE);
}

/* Opens path to read and write it (or only read it), never following a symlink nor waiting on a
 * FIFO. */
static int open_existing(const char *path, int writable, int *fd, sessid_shared_problem *p)
{
    *fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*fd >= 0)
        return SESSID_OK;
    return errno == ELOOP ? problem(p, SESSID_SHARED_SYMLINK) : system_problem(p, "open");
}

/* The owner and mode checks, on the open file. */
static int check_owner(int fd, struct stat *st, sessid_shared_problem *p)
{
    if (fstat(fd, st) != 0)
        return system_problem(p, "fstat");
    if (!S_ISREG(st->st_mode))
        return not_a_table(p, "it is not a regular file");
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

/* 1 when path still names the file whose identity st holds. */
static int still_there(const char *path, const struct stat *st)
{
    struct stat now;
    return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* Checks every field of a header read from a file of file_size bytes: the one check that opening,
 * reading the settings and removing share. spec, when given, is what the opener asks for. */
static int validate(const struct file_header *h, uint64_t file_size, const sessid_shared_spec *spec,
                    sessid_shared_problem *p)
{
    if (file_size == 0)
        return not_a_table(p, "it is empty");
    if (file_size < sizeof *h || memcmp(h->magic, magic, sizeof magic) != 0)
        return not_a_table(p, not_sessid);
    if (h->layout != SESSID_SHARED_LAYOUT) {
        p->found_layout = h->layout;
        return problem(p, SESSID_SHARED_LAYOUT_OTHER);
    }
    if (h->fingerprint != SESSID_FILE_FINGERPRINT || h->header_size != sizeof *h)
        return not_a_table(p, "its layout's fingerprint is not this build's: damaged, or made by "
                              "a sessid built with other structs");
    if (atomic_load_explicit(&h->ready, memory_order_acquire) != 1)
        return not_a_table(p, "its header is not marked complete");
    if (h->slot_size != sizeof(struct entry))
        return not_a_table(p, "its slot size is damaged");
    if (!(h->ttl > 0 && h->ttl <= 1e9) || h->max_entries == 0
        || h->max_entries > SESSID_TABLE_LIMIT || h->capacity != sessid_file_capacity(h->max_entries))
        return not_a_table(p, "its settings are damaged");
    if (h->undo_records != sessid_file_undo_records(h->capacity))
        return not_a_table(p, "its undo log's size is damaged");
    uint64_t size = sessid_file_size(h->capacity, h->slot_size);
    if (size == 0 || h->file_size != size || file_size != size)
        return not_a_table(p, "its size does not match its header (truncated or damaged)");
    if (spec != NULL && (h->ttl != spec->ttl || h->max_entries != spec->max_entries)) {
        p->found_ttl = h->ttl;
        p->found_max_entries = h->max_entries;
        return problem(p, SESSID_SHARED_SETTINGS);
    }
    return SESSID_OK;
}

/* Reads the header of the open file fd and validates it. */
static int read_header(int fd, const struct stat *st, const sessid_shared_spec *spec,
                       struct file_header *h, sessid_shared_problem *p)
{
    memset(h, 0, sizeof *h);
    ssize_t n = st->st_size > 0 ? pread(fd, h, sizeof *h, 0) : 0;
    if (n < 0)
        return system_problem(p, "read");
    return validate(h, (uint64_t)st->st_size, spec, p);
}

static void lay_out(sessid_shared_file *f, const struct file_header *h)
{
    struct file_header *mapped = f->base;
    f->mutex = &mapped->mutex;
    f->state = &mapped->state;
    f->slots = (struct entry *)((char *)f->base + SESSID_FILE_HEADER_SIZE);
    f->scratch = (uint32_t *)(f->slots + h->capacity);
    f->undo = (struct undo_record *)((char *)f->base
                                     + sessid_file_undo_offset(h->capacity, h->slot_size));
    f->undo_records = h->undo_records;
}

static int map_file(int fd, const struct file_header *h, sessid_shared_file *f, sessid_shared_problem *p)
{
    void *base = mmap(NULL, (size_t)h->file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return system_problem(p, "mmap");
    f->base = base;
    f->size = (size_t)h->file_size;
    lay_out(f, h);
    return SESSID_OK;
}

/* A shared flock, so that no process replaces the file while this one maps it. A replacer holds
 * the exclusive one only for a moment; a stopped one is not waited on past a second. */
static int share_lock(int fd, sessid_shared_problem *p)
{
    for (int tries = 0; tries < 1000; tries++) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            return SESSID_OK;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return system_problem(p, "flock");
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    errno = EWOULDBLOCK;
    return system_problem(p, "flock");
}

/* The name of a file beside path, for a table being made: a dot, path's last part, random. */
static int temp_path(const char *path, char out[SESSID_SHARED_PATH_MAX + 16])
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return SESSID_EINVAL;
    int n = snprintf(out, SESSID_SHARED_PATH_MAX + 16, "%.*s/.%s.XXXXXX", (int)(slash - path), path,
                     slash + 1);
    return n > 0 && n < SESSID_SHARED_PATH_MAX + 16 ? SESSID_OK : SESSID_EINVAL;
}

/* Makes a whole table beside path, then puts it at path: with link() where there is no file (it
 * fails if another process put one there first: *lost is then 1), or over the file that `stale`
 * (open, held with an exclusive flock) names. */
static int make(const char *path, const sessid_shared_spec *spec, const char *boot_id, int stale,
                const struct stat *stale_st, int *lost, sessid_shared_problem *p)
{
    *lost = 0;
    char temp[SESSID_SHARED_PATH_MAX + 16];
    if (temp_path(path, temp) != SESSID_OK)
        return SESSID_EINVAL;
    int fd = mkostemp(temp, O_CLOEXEC);
    if (fd < 0)
        return system_problem(p, "open");
    int rc = SESSID_OK;
    struct file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, magic, sizeof magic);
    h.layout = SESSID_SHARED_LAYOUT;
    h.header_size = sizeof h;
    h.fingerprint = SESSID_FILE_FINGERPRINT;
    h.slot_size = sizeof(struct entry);
    h.capacity = spec->capacity;
    h.max_entries = spec->max_entries;
    h.ttl = spec->ttl;
    h.undo_records = sessid_file_undo_records(spec->capacity);
    h.file_size = sessid_file_size(spec->capacity, sizeof(struct entry));
    memcpy(h.boot_id, boot_id, SESSID_FILE_BOOT_ID_SIZE);
    sessid_shared_file f = {.fd = -1};
    if (fchmod(fd, 0600) != 0) {
        rc = system_problem(p, "fchmod");
    } else {
        int err = posix_fallocate(fd, 0, (off_t)h.file_size);
        if (err != 0) {
            errno = err;
            rc = system_problem(p, "posix_fallocate");
        }
    }
    if (rc == SESSID_OK)
        rc = map_file(fd, &h, &f, p);
    if (rc == SESSID_OK) {
        memcpy(f.base, &h, offsetof(struct file_header, ready));
        rc = spec->init(f.state, f.mutex, spec);
    }
    if (rc == SESSID_OK) {
        atomic_store_explicit(&((struct file_header *)f.base)->ready, 1, memory_order_release);
        if (stale) {
            if (!still_there(path, stale_st))
                *lost = 1;
            else if (rename(temp, path) != 0)
                rc = system_problem(p, "rename");
        } else if (link(temp, path) != 0) {
            if (errno == EEXIST)
                *lost = 1;
            else
                rc = system_problem(p, "link");
        }
    }
    if (f.base != NULL)
        munmap(f.base, f.size);
    close(fd);
    unlink(temp);               /* after link(), or on failure; after rename() it is gone already */
    return rc;
}

/* 1 when the header's boot id and this boot's are both known and differ. */
static int made_before_boot(const struct file_header *h, const char *boot_id, int boot_known)
{
    char none[SESSID_FILE_BOOT_ID_SIZE] = {0};
    return boot_known && memcmp(h->boot_id, none, sizeof none) != 0
           && memcmp(h->boot_id, boot_id, SESSID_FILE_BOOT_ID_SIZE) != 0;
}

/* Replaces a table made before the last boot, if no process has it open: takes its exclusive flock
 * without waiting. Returns 0 with *replaced telling whether it did; the shared flock is held again
 * when it did not (a failed conversion drops it). */
static int replace_stale(const char *path, int fd, const struct stat *st, const sessid_shared_spec *spec,
                         const char *boot_id, int *replaced, sessid_shared_problem *p)
{
    *replaced = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return share_lock(fd, p);       /* in use: it is used as it is */
    int lost;
    int rc = make(path, spec, boot_id, 1, st, &lost, p);
    *replaced = rc == SESSID_OK;
    return rc;
}

int sessid_shared_open(const char *path, const sessid_shared_spec *spec, int create,
                       sessid_shared_file *f, sessid_shared_problem *p)
{
    memset(f, 0, sizeof *f);
    memset(p, 0, sizeof *p);
    f->fd = -1;
    if (!(spec->ttl > 0) || spec->capacity != sessid_file_capacity(spec->max_entries)
        || spec->capacity > UINT32_MAX - 1
        || sessid_file_size(spec->capacity, sizeof(struct entry)) == 0 || spec->init == NULL)
        return SESSID_EINVAL;
    char boot_id[SESSID_FILE_BOOT_ID_SIZE];
    int boot_known = read_boot_id(boot_id);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd, lost;
        struct stat st;
        struct file_header h;
        int rc = open_existing(path, 1, &fd, p);
        if (rc != SESSID_OK) {
            if (p->kind != SESSID_SHARED_SYSTEM || p->errno_value != ENOENT || !create)
                return rc;
            memset(p, 0, sizeof *p);
            rc = make(path, spec, boot_id, 0, NULL, &lost, p);
            if (rc != SESSID_OK)
                return rc;
            continue;                   /* open what is at the name now: ours, or the winner's */
        }
        rc = check_owner(fd, &st, p);
        if (rc == SESSID_OK)
            rc = share_lock(fd, p);
        if (rc == SESSID_OK && !still_there(path, &st)) {
            close(fd);                  /* removed or replaced meanwhile: again */
            continue;
        }
        if (rc == SESSID_OK)
            rc = read_header(fd, &st, NULL, &h, p);
        if (rc == SESSID_OK && made_before_boot(&h, boot_id, boot_known)) {
            int replaced;
            rc = replace_stale(path, fd, &st, spec, boot_id, &replaced, p);
            if (rc == SESSID_OK && replaced) {
                close(fd);
                continue;
            }
        }
        if (rc == SESSID_OK)
            rc = validate(&h, (uint64_t)st.st_size, spec, p);
        if (rc == SESSID_OK)
            rc = map_file(fd, &h, f, p);
        if (rc != SESSID_OK) {
            close(fd);
            return rc;
        }
        f->fd = fd;
        f->dev = (unsigned long long)st.st_dev;
        f->ino = (unsigned long long)st.st_ino;
        return SESSID_OK;
    }
    errno = EAGAIN;
    return system_problem(p, "open");
}

void sessid_shared_close(sessid_shared_file *f)
{
    if (f->base != NULL)
        munmap(f->base, f->size);
    if (f->fd >= 0)
        close(f->fd);           /* and with it the shared flock */
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

int sessid_shared_moved(const sessid_shared_file *f, const char *path)
{
    struct stat now;
    if (lstat(path, &now) != 0)
        return errno == ENOENT || errno == ENOTDIR;
    return (unsigned long long)now.st_dev != f->dev || (unsigned long long)now.st_ino != f->ino;
}

/* Opens path to read its header, and validates it (its owner and mode too, when owned is set). */
static int read_table_header(const char *path, int owned, struct file_header *h,
                             sessid_shared_problem *p)
{
    memset(p, 0, sizeof *p);
    memset(h, 0, sizeof *h);
    int fd;
    struct stat st;
    int rc = open_existing(path, 0, &fd, p);
    if (rc != SESSID_OK)
        return rc;
    if (owned)
        rc = check_owner(fd, &st, p);
    else if (fstat(fd, &st) != 0)
        rc = system_problem(p, "fstat");
    else if (!S_ISREG(st.st_mode))
        rc = not_a_table(p, "it is not a regular file");
    if (rc == SESSID_OK)
        rc = read_header(fd, &st, NULL, h, p);
    close(fd);
    return rc;
}

int sessid_shared_settings(const char *path, double *ttl, uint64_t *max_entries,
                           sessid_shared_problem *p)
{
    struct file_header h;
    int rc = read_table_header(path, 1, &h, p);
    if (rc == SESSID_OK) {
        *ttl = h.ttl;
        *max_entries = h.max_entries;
    }
    return rc;
}

int sessid_shared_remove(const char *path, sessid_shared_problem *p)
{
    struct file_header h;
    int rc = read_table_header(path, 0, &h, p);     /* whose file it is: the system's to say */
    /* A damaged table, or one of another layout, is still sessid's to remove. */
    int sessid_file = rc == SESSID_OK || p->kind == SESSID_SHARED_LAYOUT_OTHER
                      || (p->kind == SESSID_SHARED_NOT_A_TABLE && p->what != not_sessid
                          && memcmp(h.magic, magic, sizeof magic) == 0);
    if (!sessid_file)
        return rc;
    memset(p, 0, sizeof *p);
    return unlink(path) == 0 ? SESSID_OK : system_problem(p, "unlink");
}
