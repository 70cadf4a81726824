#include <pthread.h>
#include <string.h>

#include "../../csrc/sessid.h"
#include "check.h"
#include "tests.h"

static void hex_of(const char *text, char out[SESSID_HEX_LEN + 1])
{
    uint8_t digest[SESSID_DIGEST_LEN];
    CHECK_STATUS(sessid_digest(text, strlen(text), digest), SESSID_OK);
    sessid_digest_hex(digest, out);
    out[SESSID_HEX_LEN] = '\0';
}

static void known_vectors(void)
{
    char hex[SESSID_HEX_LEN + 1];
    hex_of("", hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    hex_of("abc", hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
}

static void null_data_with_zero_length(void)
{
    uint8_t digest[SESSID_DIGEST_LEN];
    char hex[SESSID_HEX_LEN + 1];
    CHECK_STATUS(sessid_digest(NULL, 0, digest), SESSID_OK);
    sessid_digest_hex(digest, hex);
    hex[SESSID_HEX_LEN] = '\0';
    CHECK(strncmp(hex, "e3b0c442", 8) == 0);
}

static void embedded_nul_bytes_count(void)
{
    uint8_t a[SESSID_DIGEST_LEN], b[SESSID_DIGEST_LEN];
    CHECK_STATUS(sessid_digest("key\0one", 7, a), SESSID_OK);
    CHECK_STATUS(sessid_digest("key\0two", 7, b), SESSID_OK);
    CHECK(memcmp(a, b, SESSID_DIGEST_LEN) != 0);
}

#define THREADS 4
#define ROUNDS 20000

static void *digest_many(void *arg)
{
    int *bad = arg;
    uint8_t digest[SESSID_DIGEST_LEN];
    for (int i = 0; i < ROUNDS; i++) {
        if (sessid_digest("abc", 3, digest) != SESSID_OK || digest[0] != 0xba || digest[31] != 0xad)
            (*bad)++;
    }
    return NULL;
}

static void threads_share_nothing(void)
{
    pthread_t threads[THREADS];
    int bad[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, digest_many, &bad[i]) == 0);
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(bad[i] == 0);
    }
}

void test_digest(void)
{
    RUN(known_vectors);
    RUN(null_data_with_zero_length);
    RUN(embedded_nul_bytes_count);
    RUN(threads_share_nothing);
}
