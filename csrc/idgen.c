/* Random version 4 UUIDs, from per-thread batches of the kernel's random bytes, and their canonical
 * text. */
#include "idgen.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

#include "status.h"

/* 256 ids per getrandom() call. */
#define POOL_BYTES 4096

/* Zero-initialized means empty, so the pool lives in .tbss and costs nothing to threads that
 * never make an id. */
struct random_pool {
    size_t available;       /* unused bytes at the end of bytes[] */
    unsigned generation;    /* fork_generation when the pool was filled */
    uint8_t bytes[POOL_BYTES];
};

static _Thread_local struct random_pool pool;
static atomic_uint fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int pool_is_fork_safe;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    pool_is_fork_safe = pthread_atfork(NULL, NULL, on_fork_child) == 0;
}

static int fill_from_kernel(uint8_t *out, size_t len)
{
    while (len > 0) {
        ssize_t got = getrandom(out, len, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return SESSID_ERANDOM;
        }
        out += got;
        len -= (size_t)got;
    }
    return SESSID_OK;
}

static int take_random(uint8_t out[SESSID_ID_LEN])
{
    if (pthread_once(&atfork_once, register_atfork) != 0 || !pool_is_fork_safe)
        return fill_from_kernel(out, SESSID_ID_LEN);
    unsigned generation = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (pool.available < SESSID_ID_LEN || pool.generation != generation) {
        pool.available = 0;
        int rc = fill_from_kernel(pool.bytes, POOL_BYTES);
        if (rc != SESSID_OK)
            return rc;
        pool.available = POOL_BYTES;
        pool.generation = generation;
    }
    uint8_t *next = pool.bytes + POOL_BYTES - pool.available;
    memcpy(out, next, SESSID_ID_LEN);
    memset(next, 0, SESSID_ID_LEN);
    pool.available -= SESSID_ID_LEN;
    return SESSID_OK;
}

int sessid_id_new(uint8_t id[SESSID_ID_LEN])
{
    int rc = take_random(id);
    if (rc != SESSID_OK)
        return rc;
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
    return SESSID_OK;
}

void sessid_id_format(const uint8_t id[SESSID_ID_LEN], char out[SESSID_ID_TEXT_LEN + 1])
{
    uuid_unparse_lower(id, out);
}

int sessid_id_parse(const char *text, size_t len, uint8_t id[SESSID_ID_LEN])
{
    char copy[SESSID_ID_TEXT_LEN + 1];
    char canonical[SESSID_ID_TEXT_LEN + 1];
    if (len != SESSID_ID_TEXT_LEN)
        return 0;
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (uuid_parse(copy, id) != 0)
        return 0;
    uuid_unparse_lower(id, canonical);
    return memcmp(canonical, text, len) == 0;
}
