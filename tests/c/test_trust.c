/* A shared table trusts nothing it does not own (issue 18): a holder of its lock that stops, a lock
 * left beyond repair, header fields that no table of these settings has, every slot taken, times
 * ahead of the table's clock, and a death at any step of a mutation, which the undo log puts back
 * byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "table_calls.h"
#include "../../csrc/growth.h"
#include "../../csrc/sessid.h"
#include "../../csrc/table_layout.h"
#include "../../csrc/table_testing.h"
#include "check.h"
#include "tests.h"

#define TTL 60.0
#define MAX_ENTRIES 16

static char path[128];
static uint64_t max_entries = MAX_ENTRIES;     /* of the tables open_table opens */
/* The table a test has open while its children run: a static, so that valgrind sees it reachable
 * when a child exits. */
static sessid_table *t;

static void fresh_path(const char *what)
{
    snprintf(path, sizeof path, "/dev/shm/sessid-ctrust-%d-%s", (int)getpid(), what);
    unlink(path);
}

static void digest_of(int n, uint8_t out[SESSID_DIGEST_LEN])
{
    char key[32];
    int len = snprintf(key, sizeof key, "trust-%d", n);
    CHECK_STATUS(sessid_digest(key, (size_t)len, out), SESSID_OK);
}

static sessid_table *open_table(void)
{
    sessid_table *t = NULL;
    sessid_shared_problem problem;
    CHECK_STATUS(sessid_table_open_shared(path, TTL, max_entries, 1, &t, &problem), SESSID_OK);
    return t;
}

static int get_wait(sessid_table *t, int n, double now, uint8_t id[SESSID_ID_LEN], sessid_lock_wait wait)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    digest_of(n, digest);
    return sessid_table_get_or_create(t, digest, now, id, NULL, wait);
}

static void get(sessid_table *t, int n, double now, uint8_t id[SESSID_ID_LEN])
{
    CHECK_STATUS(get_wait(t, n, now, id, SESSID_LOCK_REQUIRED), SESSID_OK);
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exited_cleanly(pid_t pid)
{
    int status;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- a holder of the lock that stops ---- */

/* A child that takes the table's lock and stops (SIGSTOP); once continued, it lets go and exits.
 * Returns when it is stopped. */
static pid_t stopped_holder(void)
{
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        sessid_table *t = open_table();
        if (sessid_table_lock(t) != SESSID_OK)
            _exit(1);
        raise(SIGSTOP);
        sessid_table_unlock(t);
        sessid_table_free(t);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, WUNTRACED) == child && WIFSTOPPED(status));
    return child;
}

static void waits_no_longer_than_the_timeout(int kill_the_holder)
{
    fresh_path("stopped");
    t = open_table();
    uint8_t kept[8][SESSID_ID_LEN], id[SESSID_ID_LEN];
    for (int i = 0; i < 8; i++)
        get(t, i, 1, kept[i]);
    sessid_table_set_lock_wait(t, 0.2, NULL);
    pid_t holder = stopped_holder();

    double start = monotonic();
    CHECK_STATUS(get_wait(t, 100, 2, id, SESSID_LOCK_BEST_EFFORT), SESSID_ETIMEDOUT);
    double waited = monotonic() - start;
    CHECK(waited >= 0.19 && waited < 5.0);
    /* The window: best-effort calls do not wait; required ones wait the timeout again. */
    start = monotonic();
    CHECK_STATUS(get_wait(t, 101, 2, id, SESSID_LOCK_BEST_EFFORT), SESSID_EBUSY);
    uint8_t digest[SESSID_DIGEST_LEN];
    digest_of(102, digest);
    CHECK_STATUS(sessid_table_put(t, digest, kept[0], 2), SESSID_EBUSY);
    CHECK(monotonic() - start < 0.15);
    CHECK_STATUS(get_wait(t, 103, 2, id, SESSID_LOCK_REQUIRED), SESSID_ETIMEDOUT);
    sessid_stats stats;
    CHECK_STATUS(sessid_table_stats(t, &stats), SESSID_ETIMEDOUT);
    size_t count;
    CHECK_STATUS(sessid_table_live(t, 2, &count), SESSID_ETIMEDOUT);

    if (kill_the_holder) {
        kill(holder, SIGKILL);
        int status;
        CHECK(waitpid(holder, &status, 0) == holder && WIFSIGNALED(status));
    } else {
        kill(holder, SIGCONT);
        CHECK(exited_cleanly(holder));
    }
    for (int i = 0; i < 8; i++) {
        get(t, i, 3, id);
        CHECK(memcmp(id, kept[i], SESSID_ID_LEN) == 0);
    }
    CHECK_STATUS(sessid_table_stats(t, &stats), SESSID_OK);
    CHECK(stats.counters[SESSID_STAT_LOCK_TIMEOUTS] >= 5);
    CHECK(sessid_table_check(t) == 0);
    sessid_table_free(t);
    unlink(path);
}

static void a_stopped_holder_that_goes_on_costs_the_timeout_at_most(void)
{
    waits_no_longer_than_the_timeout(0);
}

static void a_stopped_holder_that_is_killed_costs_the_timeout_at_most(void)
{
    waits_no_longer_than_the_timeout(1);
}

/* ---- a lock beyond repair ---- */

/* One child dies holding the lock; another takes it (owner dead) and releases it unrepaired, as
 * only a program other than sessid would: the mutex can never be taken again. */
static void leave_the_lock_beyond_repair(void)
{
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* Mapped to the end, so that the kernel can mark the lock owner-dead; kept in a static,
         * so that valgrind sees the handle reachable at the exit. */
        static sessid_table *volatile holder;
        holder = open_table();
        pthread_mutex_lock(holder->file.mutex);
        _exit(0);
    }
    CHECK(exited_cleanly(child));
    child = fork();
    if (child == 0) {
        sessid_table *t = open_table();
        int rc = pthread_mutex_lock(t->file.mutex);
        pthread_mutex_unlock(t->file.mutex);
        sessid_table_free(t);
        _exit(rc == EOWNERDEAD ? 0 : 1);
    }
    CHECK(exited_cleanly(child));
}

enum call { GET, PUT, REMOVE, PURGE, LIVE, CLEAR, STATS, CALLS };
static const char *const call_names[] = {"get", "put", "remove", "purge", "live", "clear", "stats"};

static int call(sessid_table *t, enum call c)
{
    uint8_t digest[SESSID_DIGEST_LEN], id[SESSID_ID_LEN];
    size_t count;
    sessid_stats stats;
    digest_of(7, digest);
    CHECK_STATUS(sessid_id_new(id), SESSID_OK);
    switch (c) {
    case GET:
        return sessid_table_get_or_create(t, digest, 5, id, NULL, SESSID_LOCK_BEST_EFFORT);
    case PUT:
        return sessid_table_put(t, digest, id, 5);
    case REMOVE:
        return sessid_table_remove(t, digest, 5);
    case PURGE:
        return sessid_table_purge(t, 5, &count);
    case LIVE:
        return sessid_table_live(t, 5, &count);
    case CLEAR:
        return sessid_table_clear(t);
    case STATS:
        return sessid_table_stats(t, &stats);
    default:
        return SESSID_OK;
    }
}

static void a_lock_beyond_repair_is_elock_from_every_call(void)
{
    fresh_path("elock");
    for (enum call c = 0; c < CALLS; c++) {
        unlink(path);
        t = open_table();
        uint8_t id[SESSID_ID_LEN];
        get(t, 1, 1, id);
        sessid_table_set_lock_wait(t, 0.05, NULL);
        leave_the_lock_beyond_repair();
        int rc = call(t, c);
        if (rc != SESSID_ELOCK)
            fprintf(stderr, "%s on a lock beyond repair: %s\n", call_names[c], sessid_strerror(rc));
        CHECK(rc == SESSID_ELOCK);
        sessid_table_free(t);
    }
    unlink(path);
}

/* ---- a header that no table of these settings has ---- */

static void *read_all(const char *file, size_t *size)
{
    struct stat st;
    if (stat(file, &st) != 0)
        return NULL;
    *size = (size_t)st.st_size;
    char *data = malloc(*size + 1);
    int fd = open(file, O_RDONLY);
    CHECK(data != NULL && fd >= 0 && read(fd, data, *size) == (ssize_t)*size);
    close(fd);
    return data;
}

static void write_file_at(size_t offset, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, data, size, (off_t)offset) == (ssize_t)size);
    close(fd);
}

struct damage {
    const char *name;
    size_t offset;
    uint64_t value;             /* written as 4 or 8 bytes */
    size_t size;
    off_t shrink;               /* bytes the file loses, with file_size (0: none) */
    sessid_shared_problem_kind kind;
    const char *what;           /* part of problem.what, for NOT_A_TABLE */
};

static void a_damaged_header_is_refused_and_left_as_it_is(void)
{
    uint64_t size = sessid_file_size(sessid_file_capacity(MAX_ENTRIES), sizeof(struct entry));
    const struct damage damages[] = {
        {"capacity 2^40", offsetof(struct file_header, capacity), (uint64_t)1 << 40, 8, 0,
         SESSID_SHARED_NOT_A_TABLE, "settings"},
        {"capacity + 1", offsetof(struct file_header, capacity), sessid_file_capacity(MAX_ENTRIES) + 1,
         8, 0, SESSID_SHARED_NOT_A_TABLE, "settings"},
        {"max_entries 0", offsetof(struct file_header, max_entries), 0, 8, 0,
         SESSID_SHARED_NOT_A_TABLE, "settings"},
        {"slot size", offsetof(struct file_header, slot_size), 32, 8, 0, SESSID_SHARED_NOT_A_TABLE,
         "slot size"},
        {"undo records", offsetof(struct file_header, undo_records), 1, 8, 0,
         SESSID_SHARED_NOT_A_TABLE, "undo log"},
        {"file_size and the file shrunk together", offsetof(struct file_header, file_size),
         size - 4096, 8, 4096, SESSID_SHARED_NOT_A_TABLE, "size"},
        {"file_size alone", offsetof(struct file_header, file_size), size + 4096, 8, 0,
         SESSID_SHARED_NOT_A_TABLE, "size"},
        {"fingerprint", offsetof(struct file_header, fingerprint), 12345, 8, 0,
         SESSID_SHARED_NOT_A_TABLE, "fingerprint"},
        {"header size", offsetof(struct file_header, header_size), 64, 4, 0,
         SESSID_SHARED_NOT_A_TABLE, "fingerprint"},
        {"not ready", offsetof(struct file_header, ready), 0, 4, 0, SESSID_SHARED_NOT_A_TABLE,
         "complete"},
        {"layout", offsetof(struct file_header, layout), 99, 4, 0, SESSID_SHARED_LAYOUT_OTHER, NULL},
        {"magic", 0, 0, 8, 0, SESSID_SHARED_NOT_A_TABLE, "start"},
    };
    fresh_path("header");
    for (size_t i = 0; i < sizeof damages / sizeof damages[0]; i++) {
        const struct damage *d = &damages[i];
        unlink(path);
        sessid_table_free(open_table());
        if (d->size == 8)
            write_file_at(d->offset, &d->value, 8);
        else {
            uint32_t v = (uint32_t)d->value;
            write_file_at(d->offset, &v, 4);
        }
        if (d->shrink != 0)
            CHECK(truncate(path, (off_t)size - d->shrink) == 0);
        size_t before_size, after_size;
        void *before = read_all(path, &before_size);
        sessid_table *t = NULL;
        sessid_shared_problem problem;
        int rc = sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem);
        int right = rc == SESSID_EFILE && t == NULL && problem.kind == d->kind
                    && (d->what == NULL || (problem.what != NULL && strstr(problem.what, d->what)));
        if (!right)
            fprintf(stderr, "%s: status %d, problem %d (%s)\n", d->name, rc, (int)problem.kind,
                    problem.what != NULL ? problem.what : "");
        CHECK(right);
        if (d->kind == SESSID_SHARED_LAYOUT_OTHER)
            CHECK(problem.found_layout == 99);
        void *after = read_all(path, &after_size);
        CHECK(before != NULL && after != NULL && before_size == after_size
              && memcmp(before, after, before_size) == 0);
        free(before);
        free(after);
        sessid_table_free(t);
    }
    /* An empty file, and one whose header is all zeros: refused and left as they are. */
    unlink(path);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    sessid_table *t = NULL;
    sessid_shared_problem problem;
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_NOT_A_TABLE && strstr(problem.what, "empty") != NULL);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 0);
    CHECK(truncate(path, (off_t)size) == 0);
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_NOT_A_TABLE);
    size_t zeros_size;
    uint8_t *zeros = read_all(path, &zeros_size);
    int all_zero = zeros != NULL && zeros_size == size;
    for (size_t i = 0; all_zero && i < zeros_size; i++)
        all_zero = zeros[i] == 0;
    CHECK(all_zero);
    free(zeros);
    unlink(path);
}

/* ---- every slot taken ---- */

static void fill_every_slot(sessid_table *t, double last_use)
{
    for (size_t s = 0; s < t->bounds[0]; s++) {
        struct entry *e = &t->slots[s];
        CHECK_STATUS(sessid_id_new(e->digest), SESSID_OK);
        CHECK_STATUS(sessid_id_new(e->digest + 16), SESSID_OK);
        CHECK_STATUS(sessid_id_new(e->id), SESSID_OK);
        e->last_use = last_use;
        e->older = e->newer = NIL;
    }
}

static void every_slot_taken_ends_every_call(void)
{
    fresh_path("every");
    t = open_table();
    uint8_t id[SESSID_ID_LEN];
    get(t, 1, 10, id);
    fill_every_slot(t, 10);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        alarm(60);              /* a call that never ends fails the test, by SIGALRM */
        int ok = 1;
        for (int i = 0; i < 50; i++) {
            int rc = get_wait(t, 1000 + i, 11, id, SESSID_LOCK_REQUIRED);
            ok &= (rc == SESSID_OK && sessid_id_is_v4(id)) || rc == SESSID_EDAMAGED;
        }
        for (enum call c = 0; c < CALLS; c++) {
            int rc = call(t, c);
            ok &= rc == SESSID_OK || rc == SESSID_EDAMAGED;
        }
        ok &= sessid_table_check(t) == 0;
        _exit(ok ? 0 : 1);
    }
    CHECK(exited_cleanly(child));
    CHECK(sessid_table_check(t) == 0);
    sessid_table_free(t);
    unlink(path);
}

/* ---- times ahead of the table's clock ---- */

static void a_rebuild_drops_times_ahead_of_the_tables_clock(void)
{
    fresh_path("times");
    sessid_table *t = open_table();
    uint8_t kept[MAX_ENTRIES][SESSID_ID_LEN], id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
    for (int i = 0; i < 12; i++)
        get(t, i, 20 + i, kept[i]);
    /* Keys 0 to 3 get garbage times; the head's list end out of range makes the next taker of the
     * lock rebuild the table from its slots. */
    for (int i = 0; i < 4; i++) {
        digest_of(i, digest);
        t->slots[find_slot(t, digest)].last_use = 8.8e20;
    }
    t->h->oldest = (uint32_t)t->bounds[0] + 5;
    get(t, 11, 40, id);
    CHECK(memcmp(id, kept[11], SESSID_ID_LEN) == 0);
    CHECK(t->h->clock == 40);
    CHECK(sessid_table_check(t) == 0);
    CHECK(table_live(t, 40) == 8);
    for (int i = 0; i < 12; i++) {
        get(t, i, 41, id);
        CHECK((memcmp(id, kept[i], SESSID_ID_LEN) == 0) == (i >= 4));
    }
    CHECK(t->h->clock == 41 && table_live(t, 41) == 12);
    sessid_table_free(t);
    unlink(path);
}

/* ---- a death at every step: the undo log puts the slots back byte for byte ---- */

enum mutation {
    INSERT, EVICT, EXPIRE, REMOVE_ONE, CLEAR_ALL, HIT, HIT_MIDDLE, PUT_OTHER, MUTATIONS
};
static const char *const mutation_names[] = {"insert", "evict", "expire", "remove", "clear", "hit",
                                             "hit mid", "put"};

/* A fresh table: 8 entries used at t=50, and entries used at t=0 (they expire at 60): up to
 * max_entries for an eviction, else 8. Each mutation but clear then fits one piece of work, so a
 * death anywhere in it is undone back to before the call; clear commits its pieces one at a time. */
static sessid_table *set_up(enum mutation m)
{
    unlink(path);
    sessid_table *fresh = open_table();
    uint8_t id[SESSID_ID_LEN];
    int old = m == EVICT ? (int)max_entries - 8 : 8;
    for (int i = 0; i < old; i++)
        get(fresh, 1000 + i, 0, id);
    for (int i = 0; i < 8; i++)
        get(fresh, i, 50, id);
    return fresh;
}

static void mutate(sessid_table *t, enum mutation m)
{
    uint8_t id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
    switch (m) {
    case INSERT:
    case EVICT:
        get(t, 5000, 55, id);
        break;
    case EXPIRE:
        table_purge(t, 65);
        break;
    case REMOVE_ONE:
        digest_of(1000, digest);
        CHECK_STATUS(sessid_table_remove(t, digest, 55), SESSID_OK);
        break;
    case CLEAR_ALL:
        table_clear(t);
        break;
    case HIT:
        get(t, 1000, 55, id);       /* the oldest entry */
        break;
    case HIT_MIDDLE:
        get(t, 3, 55, id);          /* an entry with neighbours on both sides */
        break;
    case PUT_OTHER:
        digest_of(2, digest);
        CHECK_STATUS(sessid_id_new(id), SESSID_OK);
        CHECK_STATUS(sessid_table_put(t, digest, id, 55), SESSID_OK);
        break;
    default:
        break;
    }
}

struct image {
    uint8_t *slots;
    size_t size;
    struct head_before head;
};

static void take_image(sessid_table *t, struct image *out)
{
    CHECK_STATUS(sessid_table_dump(t, &out->slots, &out->size), SESSID_OK);
    CHECK_STATUS(sessid_table_lock(t), SESSID_OK);
    out->head.clock = t->h->clock;
    out->head.count = t->h->count;
    out->head.oldest = t->h->oldest;
    out->head.newest = t->h->newest;
    sessid_table_unlock(t);
}

/* The slots, and the head's time and list: not its counters (a dead call's counts may stand, and
 * the taker counts the repair). */
static int same_image(const struct image *a, const struct image *b)
{
    return a->size == b->size && memcmp(a->slots, b->slots, a->size) == 0
           && a->head.clock == b->head.clock && a->head.count == b->head.count
           && a->head.oldest == b->head.oldest && a->head.newest == b->head.newest;
}

/* 1 when every entry of b (a dump of whole slots) is in a too, with the same id: what a clear killed
 * after its first pieces leaves (each piece is a call of its own, and stands once done). */
static int entries_kept(const struct image *a, const struct image *b)
{
    for (size_t j = 0; j + sizeof(struct entry) <= b->size; j += sizeof(struct entry)) {
        const struct entry *e = (const struct entry *)(b->slots + j);
        if (!sessid_id_is_v4(e->id))
            continue;
        int found = 0;
        for (size_t i = 0; !found && i + sizeof(struct entry) <= a->size; i += sizeof(struct entry)) {
            const struct entry *f = (const struct entry *)(a->slots + i);
            found = memcmp(f->digest, e->digest, SESSID_DIGEST_LEN) == 0
                    && memcmp(f->id, e->id, SESSID_ID_LEN) == 0;
        }
        if (!found)
            return 0;
    }
    return 1;
}

/* Runs mutation m in a child killed at its step-th step; returns 1 if it was killed. */
static int killed_at(sessid_table *t, enum mutation m, long step)
{
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        sessid_table_kill_after(step);
        mutate(t, m);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

static void a_death_at_every_step_is_undone_byte_for_byte(void)
{
    fresh_path("undo");
    max_entries = 60;   /* 72 slots, an undo log of 88 records: room for each whole call (and an
                         * even capacity: see undo_records_are_aligned_whatever_the_capacity) */
    int stride = getenv("SESSID_TEST_LIGHT") != NULL ? 3 : 1;
    for (enum mutation m = 0; m < MUTATIONS; m++) {
        long step = 1;
        for (;; step += stride) {
            t = set_up(m);
            struct image before, after;
            take_image(t, &before);
            int killed = killed_at(t, m, step);
            take_image(t, &after);          /* takes the lock: puts back what the death left */
            if (killed) {
                int same = same_image(&before, &after)
                           || (m == CLEAR_ALL && entries_kept(&before, &after));
                if (!same)
                    fprintf(stderr, "%s killed at step %ld: the slots or the head differ\n",
                            mutation_names[m], step);
                CHECK(same);
                CHECK(sessid_table_check(t) == 0);
            }
            free(before.slots);
            free(after.slots);
            sessid_table_free(t);
            if (!killed)
                break;
        }
        printf("     %-8s undone after a death at each of its %ld steps\n", mutation_names[m],
               (step - 1) / stride * stride);
        CHECK(step > 2);
    }
    max_entries = MAX_ENTRIES;
    unlink(path);
}

/* A record the log cannot believe (a slot out of range, or a kind it does not know) writes nothing
 * back: the next taker of the lock rebuilds the table from its slots instead, and every id stays. */
static void a_damaged_undo_record_is_not_written_back(void)
{
    fresh_path("records");
    const uint64_t kinds[] = {0, UNDO_TOUCH, UNDO_INSERT, UNDO_KINDS};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        unlink(path);
        t = open_table();
        uint8_t kept[8][SESSID_ID_LEN], id[SESSID_ID_LEN];
        for (int i = 0; i < 8; i++)
            get(t, i, 10 + i, kept[i]);
        get(t, 3, 20, id);                  /* a locked hit: the log holds its touch record */
        struct undo_record *r = &t->file.undo[0];
        CHECK(atomic_load(&t->file.state->undo.records) == 1 && (r->slot & UNDO_TOUCH) != 0);
        /* A kind it does not know, or a slot out of range. */
        r->slot = kinds[k] | (kinds[k] == UNDO_KINDS ? 3 : t->bounds[0] + 3);
        atomic_store(&t->file.state->undo.armed, 1);        /* as a holder that died leaves it */
        get(t, 5, 21, id);
        CHECK(memcmp(id, kept[5], SESSID_ID_LEN) == 0);
        CHECK(sessid_table_check(t) == 0);
        for (int i = 0; i < 8; i++) {
            get(t, i, 22, id);
            CHECK(memcmp(id, kept[i], SESSID_ID_LEN) == 0);
        }
        sessid_table_free(t);
    }
    unlink(path);
}

/* The undo log's records follow the scratch area's 4-byte words: whatever the capacity (odd ones
 * too), they start aligned. */
static void undo_records_are_aligned_whatever_the_capacity(void)
{
    fresh_path("aligned");
    for (max_entries = 60; max_entries <= 70; max_entries++) {
        unlink(path);
        sessid_table *t = open_table();
        CHECK((uintptr_t)t->file.undo % alignof(struct undo_record) == 0);
        sessid_table_free(t);
    }
    max_entries = MAX_ENTRIES;
    unlink(path);
}

void test_trust(void)
{
    RUN(undo_records_are_aligned_whatever_the_capacity);
    RUN(a_stopped_holder_that_goes_on_costs_the_timeout_at_most);
    RUN(a_stopped_holder_that_is_killed_costs_the_timeout_at_most);
    RUN(a_lock_beyond_repair_is_elock_from_every_call);
    RUN(a_damaged_header_is_refused_and_left_as_it_is);
    RUN(every_slot_taken_ends_every_call);
    RUN(a_rebuild_drops_times_ahead_of_the_tables_clock);
    RUN(a_damaged_undo_record_is_not_written_back);
    RUN(a_death_at_every_step_is_undone_byte_for_byte);
}
