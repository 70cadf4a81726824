/* libFuzzer target for a shared table's file: whole file images (header, state, slots, scratch and
 * undo log from the input), opened with sessid_table_open_shared and used. Whatever the file holds,
 * an open is refused with SESSID_EFILE or succeeds, every call ends with a status a caller knows,
 * every id answered is a version 4 UUID, and nothing crashes or hangs (ASan, UBSan, -timeout).
 *
 *   clang -DSESSID_FAULT_INJECTION -DSESSID_TESTING -fsanitize=fuzzer,address,undefined \
 *       tests/fuzz/fuzz_file.c csrc/(*).c -lcrypto -luuid
 *
 * Input: a flags byte, then an image of the file. The image is copied over (flags bit 1: XORed
 * into) a valid table file made at start (max_entries 12, a few entries); with flags bit 0 the file
 * is exactly as long as the input's image, else as long as a valid file. The process-shared mutex
 * keeps the valid file's bytes: it is glibc's object, not the table's, and a garbled one could only
 * make a call wait for it. Calls never wait for the lock (a lock timeout of 0).
 *
 * With SESSID_FUZZ_FILE_SEEDS set to a directory, the target writes a few valid images there (the
 * seed corpus; `make file-seeds`) and exits. */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../csrc/clock.h"
#include "../../csrc/file_format.h"
#include "../../csrc/sessid.h"
#include "../../csrc/status.h"
#include "../../csrc/table.h"

#define TTL 600.0
#define MAX_ENTRIES 12      /* 16 slots: an even count, so the undo log is aligned */
#define KEYS 24

static char path[128];
static uint8_t *base;       /* a valid file, with some entries */
static size_t base_size;
static double base_now;     /* the time its entries were used at */

static void die(const char *what, int rc)
{
    fprintf(stderr, "fuzz_file: %s: %s\n", what, sessid_strerror(rc));
    abort();
}

static void digest_of(int n, uint8_t out[SESSID_DIGEST_LEN])
{
    char key[32];
    int len = snprintf(key, sizeof key, "file-%d", n);
    int rc = sessid_digest(key, (size_t)len, out);
    if (rc != SESSID_OK)
        die("sessid_digest", rc);
}

static uint8_t *read_file(size_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0)
        abort();
    uint8_t *data = malloc((size_t)st.st_size);
    if (data == NULL || read(fd, data, (size_t)st.st_size) != st.st_size)
        abort();
    close(fd);
    *size = (size_t)st.st_size;
    return data;
}

/* A fresh table file with `entries` entries, the second newest of them then hit under the lock (so
 * that the undo log holds a touch record as well as the inserts'); returns its bytes. */
static uint8_t *make_image(int entries, size_t *size)
{
    unlink(path);
    sessid_table *t;
    sessid_shared_problem problem;
    int rc = sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem);
    if (rc != SESSID_OK)
        die("sessid_table_open_shared", rc);
    for (int i = 0; i < entries; i++) {
        uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN];
        digest_of(i, digest);
        rc = sessid_table_get_or_create(t, digest, base_now + i * 0.001, id, NULL,
                                        SESSID_LOCK_REQUIRED);
        if (rc != SESSID_OK)
            die("sessid_table_get_or_create", rc);
    }
    if (entries >= 2) {
        uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN];
        digest_of(entries - 2, digest);
        rc = sessid_table_get_or_create(t, digest, base_now + entries * 0.001, id, NULL,
                                        SESSID_LOCK_REQUIRED);
        if (rc != SESSID_OK)
            die("sessid_table_get_or_create", rc);
    }
    sessid_table_free(t);
    uint8_t *image = read_file(size);
    unlink(path);
    return image;
}

static void write_seeds(const char *dir)
{
    const int fills[] = {0, 5, MAX_ENTRIES, 3 * MAX_ENTRIES};
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) {
        size_t size;
        uint8_t *image = make_image(fills[i], &size);
        char seed[4200];
        snprintf(seed, sizeof seed, "%s/valid-%d-entries", dir, fills[i]);
        FILE *f = fopen(seed, "wb");
        uint8_t flags = 0;
        if (f == NULL || fwrite(&flags, 1, 1, f) != 1 || fwrite(image, 1, size, f) != size)
            abort();
        fclose(f);
        free(image);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/dev/shm/sessid-fuzz-file-%d", (int)getpid());
    base_now = sessid_clock_now();
    const char *seeds = getenv("SESSID_FUZZ_FILE_SEEDS");
    if (seeds != NULL) {
        write_seeds(seeds);
        exit(0);
    }
    base = make_image(8, &base_size);
    return 0;
}

static void write_image(const uint8_t *data, size_t size)
{
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);
}

/* A status a caller of the call knows: the call's own, a damaged file, or the lock's. */
static void check_status(int rc, const char *call)
{
    if (rc == SESSID_OK || rc == SESSID_EDAMAGED || rc == SESSID_ETIMEDOUT || rc == SESSID_EBUSY
        || rc == SESSID_ELOCK || rc == SESSID_EFULL)
        return;
    die(call, rc);
}

static void check_id(int rc, const uint8_t id[SESSID_ID_LEN], const char *call)
{
    check_status(rc, call);
    if (rc == SESSID_OK && !sessid_id_is_v4(id)) {
        fprintf(stderr, "fuzz_file: %s answered an id that is not version 4\n", call);
        abort();
    }
}

static void use(sessid_table *t)
{
    uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN], first[SESSID_ID_LEN];
    double now = base_now + 1.0;
    size_t count;
    sessid_stats stats;
    for (int n = 0; n < KEYS; n++) {
        digest_of(n, digest);
        int rc = sessid_table_get_or_create(t, digest, now, first, NULL,
                                            n % 2 ? SESSID_LOCK_REQUIRED : SESSID_LOCK_BEST_EFFORT);
        check_id(rc, first, "get_or_create");
        if (sessid_table_peek(t, digest, now, TTL, id) && !sessid_id_is_v4(id)) {
            fprintf(stderr, "fuzz_file: peek answered an id that is not version 4\n");
            abort();
        }
        if (n % 3 == 0) {
            check_status(sessid_table_remove(t, digest, now), "remove");
        } else if (n % 3 == 1) {
            int made = sessid_id_new(id);
            if (made != SESSID_OK)
                die("sessid_id_new", made);
            check_status(sessid_table_put(t, digest, id, now), "put");
        }
        now += 0.25;
    }
    check_status(sessid_table_purge(t, now + TTL / 2, &count), "purge");
    check_status(sessid_table_live(t, now + TTL / 2, &count), "live");
    if (count > MAX_ENTRIES) {
        fprintf(stderr, "fuzz_file: live counts %zu entries, beyond max_entries\n", count);
        abort();
    }
    sessid_table_count(t, SESSID_STAT_KV_ERRORS);
    check_status(sessid_table_stats(t, &stats), "stats");
    check_status(sessid_table_clear(t), "clear");
    digest_of(0, digest);
    check_id(sessid_table_get_or_create(t, digest, now + TTL, id, NULL, SESSID_LOCK_REQUIRED), id,
             "get_or_create after clear");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    size_t file_size = (flags & 1) ? size : base_size;
    uint8_t *image = calloc(file_size > 0 ? file_size : 1, 1);
    if (image == NULL)
        abort();
    memcpy(image, base, file_size < base_size ? file_size : base_size);
    size_t n = size < file_size ? size : file_size;
    for (size_t i = 0; i < n; i++)
        image[i] = (flags & 2) ? image[i] ^ data[i] : data[i];
    size_t mutex_at = offsetof(struct file_header, mutex);
    if (file_size >= mutex_at + sizeof(pthread_mutex_t))
        memcpy(image + mutex_at, base + mutex_at, sizeof(pthread_mutex_t));
    write_image(image, file_size);
    free(image);

    sessid_table *t = NULL;
    sessid_shared_problem problem;
    int rc = sessid_table_open_shared(path, TTL, MAX_ENTRIES, 0, &t, &problem);
    unlink(path);               /* the mapping stays; an input that crashes leaves no file behind */
    if (rc == SESSID_OK) {
        sessid_table_set_lock_wait(t, 0, NULL);
        use(t);
        sessid_table_free(t);
    } else if (rc != SESSID_EFILE || t != NULL) {
        die("sessid_table_open_shared", rc);
    }
    return 0;
}
