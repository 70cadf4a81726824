/* The shared table: its file and its checks, and what a process killed at each step of each
 * mutation leaves behind (debug builds kill themselves at the n-th step; see table_testing.h). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table_calls.h"
#include "../../csrc/sessid.h"
#include "../../csrc/table_testing.h"
#include "check.h"
#include "tests.h"

#define TTL 60.0
#define MAX_ENTRIES 16
#define KEPT 8              /* entries whose ids must survive every kill */

static char path[128];

static void digest_of(int n, uint8_t out[SESSID_DIGEST_LEN])
{
    char key[32];
    int len = snprintf(key, sizeof key, "shared-%d", n);
    CHECK_STATUS(sessid_digest(key, (size_t)len, out), SESSID_OK);
}

static sessid_table *open_table(void)
{
    sessid_table *t = NULL;
    sessid_shared_problem problem;
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_OK);
    return t;
}

static void get(sessid_table *t, int n, double now, uint8_t id[SESSID_ID_LEN])
{
    uint8_t digest[SESSID_DIGEST_LEN];
    digest_of(n, digest);
    CHECK_STATUS(sessid_table_get_or_create(t, digest, now, id, NULL, SESSID_LOCK_REQUIRED), SESSID_OK);
}

static void fresh_path(const char *what)
{
    snprintf(path, sizeof path, "/dev/shm/sessid-ctest-%d-%s", (int)getpid(), what);
    unlink(path);
}

static void opens_the_same_table_in_every_process(void)
{
    fresh_path("same");
    sessid_table *t = open_table();
    uint8_t mine[SESSID_ID_LEN], theirs[SESSID_ID_LEN];
    get(t, 1, 0, mine);
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    fflush(stdout);
    int failures = check_failures;          /* an earlier test's failure is not the child's */
    pid_t child = fork();
    if (child == 0) {
        sessid_table *other = open_table();
        get(other, 1, 1, theirs);
        ssize_t written = write(pipefd[1], theirs, sizeof theirs);
        sessid_table_free(other);
        sessid_table_free(t);
        _exit(written == (ssize_t)sizeof theirs && check_failures == failures ? 0 : 1);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(read(pipefd[0], theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    CHECK(memcmp(mine, theirs, SESSID_ID_LEN) == 0);
    close(pipefd[0]);
    close(pipefd[1]);
    sessid_stats stats;
    sessid_table_stats(t, &stats);
    CHECK(stats.counters[SESSID_STAT_MISSES] == 1 && stats.counters[SESSID_STAT_HITS] == 1);
    sessid_table_free(t);
    unlink(path);
}

static void refuses_what_it_must(void)
{
    sessid_shared_problem problem;
    sessid_table *t = NULL;
    fresh_path("refuse");
    sessid_table_free(open_table());
    CHECK_STATUS(sessid_table_open_shared(path, TTL + 1, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_SETTINGS && problem.found_ttl == TTL);
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES + 1, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_SETTINGS && problem.found_max_entries == MAX_ENTRIES);
    CHECK(chmod(path, 0620) == 0);
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_MODE && problem.found_mode == 0620);
    CHECK(chmod(path, 0600) == 0);
    char link[160];
    snprintf(link, sizeof link, "%s.link", path);
    CHECK(symlink(path, link) == 0);
    CHECK_STATUS(sessid_table_open_shared(link, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_SYMLINK);
    unlink(link);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "junk", 4, 0) == 4);
    close(fd);
    CHECK_STATUS(sessid_table_open_shared(path, TTL, MAX_ENTRIES, 1, &t, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_NOT_A_TABLE);
    CHECK_STATUS(sessid_shared_remove(path, &problem), SESSID_EFILE);   /* not a table: kept */
    CHECK(access(path, F_OK) == 0);
    unlink(path);
    CHECK_STATUS(sessid_shared_remove(path, &problem), SESSID_EFILE);
    CHECK(problem.kind == SESSID_SHARED_SYSTEM && problem.errno_value == ENOENT);
    CHECK(t == NULL);
}

static void a_full_table_evicts_and_keeps_its_size(void)
{
    fresh_path("full");
    sessid_table *t = open_table();
    struct stat before, after;
    CHECK(stat(path, &before) == 0);
    uint8_t id[SESSID_ID_LEN];
    for (int i = 0; i < 3 * MAX_ENTRIES; i++)
        get(t, i, i, id);
    CHECK(table_live(t, 3 * MAX_ENTRIES) == MAX_ENTRIES);
    CHECK(stat(path, &after) == 0 && after.st_size == before.st_size);
    CHECK(sessid_table_check(t) == 0);
    sessid_table_free(t);
    unlink(path);
}

/* ---- a process killed at every step of every mutation ---- */

enum mutation { INSERT, EVICT, EXPIRE, REMOVE, CLEAR, HIT, REPAIR, MUTATIONS };
static const char *const mutation_names[] = {"insert", "evict", "expire", "remove", "clear", "hit",
                                             "repair"};

/* Fills a fresh table: KEPT entries used at t=50 (kept by every mutation but clear), and, for the
 * mutations that need them, entries used at t=0 (they expire at 60) up to max_entries. */
static void set_up(enum mutation m, uint8_t kept[KEPT][SESSID_ID_LEN])
{
    unlink(path);
    sessid_table *t = open_table();
    uint8_t id[SESSID_ID_LEN];
    int old = m == EVICT || m == EXPIRE ? MAX_ENTRIES - KEPT : 4;
    for (int i = 0; i < old; i++)
        get(t, 1000 + i, 0, id);
    for (int i = 0; i < KEPT; i++)
        get(t, i, 50, kept[i]);
    sessid_table_free(t);
}

static void mutate(enum mutation m)
{
    sessid_table *t = open_table();
    uint8_t id[SESSID_ID_LEN], digest[SESSID_DIGEST_LEN];
    switch (m) {
    case INSERT:
    case EVICT:
    case REPAIR:
        get(t, 5000, 55, id);
        break;
    case EXPIRE:
        table_purge(t, 65);
        break;
    case REMOVE:
        digest_of(1000, digest);
        sessid_table_remove(t, digest, 55);
        break;
    case CLEAR:
        table_clear(t);
        break;
    case HIT:
        get(t, 1000, 55, id);
        break;
    default:
        break;
    }
    sessid_table_free(t);
}

/* Runs mutation m in a child killed at its step-th step; returns 1 if it was killed. */
static int killed_at(enum mutation m, long step)
{
    fflush(stdout);                             /* or the child prints it again */
    pid_t child = fork();
    if (child == 0) {
        sessid_table_kill_after(step);
        mutate(m);
        _exit(0);
    }
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* After a kill: the next process repairs; every invariant holds and no kept id changed. */
static void check_after(enum mutation m, uint8_t kept[KEPT][SESSID_ID_LEN], long step)
{
    sessid_table *t = open_table();
    uint8_t id[SESSID_ID_LEN];
    get(t, 0, 56, id);                          /* takes the lock: repairs */
    int broken = sessid_table_check(t);
    if (broken != 0)
        fprintf(stderr, "%s killed at step %ld: invariant %d broken\n", mutation_names[m], step,
                broken);
    CHECK(broken == 0);
    for (int i = 0; m != CLEAR && i < KEPT; i++) {
        get(t, i, 57, id);
        CHECK(memcmp(id, kept[i], SESSID_ID_LEN) == 0);
    }
    sessid_table_free(t);
}

static long steps_of(enum mutation m)
{
    uint8_t kept[KEPT][SESSID_ID_LEN];
    long step = 1;
    int stride = getenv("SESSID_TEST_LIGHT") != NULL ? 3 : 1;
    for (;; step += stride) {
        set_up(m, kept);
        if (m == REPAIR && !killed_at(EXPIRE, 7))   /* mid backward shift: a table to repair */
            CHECK(!"the purge was not killed");
        if (!killed_at(m, step))
            break;
        check_after(m, kept, step);
    }
    return step - 1;
}

static void survives_a_kill_at_every_step(void)
{
    fresh_path("kill");
    for (enum mutation m = 0; m < MUTATIONS; m++) {
        long steps = steps_of(m);
        printf("     %-8s killed at each of its %ld steps\n", mutation_names[m], steps);
        CHECK(steps >= 2);
    }
    unlink(path);
}

/* Threads on one shared table, some on the lock-free path (hits at the same instant), some taking
 * the lock (misses, and hits as the time moves): one id per key. ThreadSanitizer runs this too. */
#define HAMMER_KEYS 64
#define HAMMER_THREADS 4

struct hammer {
    sessid_table *t;
    uint8_t ids[HAMMER_KEYS][SESSID_ID_LEN];
    int seed;
    int changed;                /* lookups that saw another id than the last one of their key */
};

static void *hammer_shared(void *arg)
{
    struct hammer *h = arg;
    for (int round = 0; round < 2000; round++) {
        int n = (round * 7 + h->seed) % HAMMER_KEYS;
        uint8_t id[SESSID_ID_LEN];
        get(h->t, n, (double)(round / 100), id);    /* the time moves every 100 calls */
        if (sessid_id_is_v4(h->ids[n]) && memcmp(h->ids[n], id, SESSID_ID_LEN) != 0)
            h->changed++;
        memcpy(h->ids[n], id, SESSID_ID_LEN);
    }
    return NULL;
}

static void threads_share_one_id_per_key(void)
{
    fresh_path("threads");
    sessid_table *t = NULL;
    sessid_shared_problem problem;
    CHECK_STATUS(sessid_table_open_shared(path, TTL, 1000, 1, &t, &problem), SESSID_OK);
    static struct hammer h[HAMMER_THREADS];
    pthread_t threads[HAMMER_THREADS];
    memset(h, 0, sizeof h);
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i].t = t;
        h[i].seed = i * 13;
        CHECK(pthread_create(&threads[i], NULL, hammer_shared, &h[i]) == 0);
    }
    for (int i = 0; i < HAMMER_THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(h[i].changed == 0);
    }
    for (int n = 0; n < HAMMER_KEYS; n++) {
        uint8_t id[SESSID_ID_LEN];
        get(t, n, 20, id);
        for (int i = 0; i < HAMMER_THREADS; i++)
            CHECK(memcmp(h[i].ids[n], id, SESSID_ID_LEN) == 0);
    }
    CHECK(sessid_table_check(t) == 0);
    sessid_table_free(t);
    unlink(path);
}

/* A key hit again and again within one instant of the clock keeps its place while hits answer
 * without the lock; once the instant has taken in more than a quarter of max_entries new entries,
 * hits take the lock and move it to the newest end: a burst of new keys within one tick, longer than
 * the table, does not evict a key in use. */
static void a_key_in_use_survives_a_burst_of_new_keys_within_one_tick(void)
{
    fresh_path("burst");
    sessid_table *t = open_table();
    uint8_t kept[SESSID_ID_LEN], id[SESSID_ID_LEN];
    get(t, 0, 10, kept);
    for (int i = 1; i <= 4 * MAX_ENTRIES; i++) {
        get(t, 1000 + i, 10, id);
        get(t, 0, 10, id);
        CHECK(memcmp(id, kept, SESSID_ID_LEN) == 0);
    }
    sessid_table_free(t);
    unlink(path);
}

void test_shared(void)
{
    RUN(threads_share_one_id_per_key);
    RUN(opens_the_same_table_in_every_process);
    RUN(refuses_what_it_must);
    RUN(a_full_table_evicts_and_keeps_its_size);
    RUN(a_key_in_use_survives_a_burst_of_new_keys_within_one_tick);
    RUN(survives_a_kill_at_every_step);
}
