#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../csrc/sessid.h"
#include "check.h"
#include "tests.h"

static void ids_are_version_4_variant_1(void)
{
    for (int i = 0; i < 1000; i++) {
        uint8_t id[SESSID_ID_LEN];
        char text[SESSID_ID_TEXT_LEN + 1];
        CHECK_STATUS(sessid_id_new(id), SESSID_OK);
        CHECK((id[6] >> 4) == 4);
        CHECK((id[8] >> 6) == 2);
        sessid_id_format(id, text);
        CHECK(strlen(text) == SESSID_ID_TEXT_LEN);
        CHECK(text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-');
        CHECK(text[14] == '4');
        CHECK(strchr("89ab", text[19]) != NULL);
        for (int j = 0; j < SESSID_ID_TEXT_LEN; j++)
            CHECK(text[j] == '-' || strchr("0123456789abcdef", text[j]) != NULL);
    }
}

static void format_and_parse_round_trip(void)
{
    const uint8_t id[SESSID_ID_LEN] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4d, 0xef,
                                       0x80, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde};
    char text[SESSID_ID_TEXT_LEN + 1];
    uint8_t back[SESSID_ID_LEN];
    sessid_id_format(id, text);
    CHECK(strcmp(text, "01234567-89ab-4def-8012-3456789abcde") == 0);
    CHECK(sessid_id_parse(text, SESSID_ID_TEXT_LEN, back) == 1);
    CHECK(memcmp(id, back, SESSID_ID_LEN) == 0);
}

static void parse_takes_only_the_canonical_form(void)
{
    uint8_t id[SESSID_ID_LEN];
    const char *good = "01234567-89ab-4def-8012-3456789abcde";
    CHECK(sessid_id_parse(good, 36, id) == 1);
    CHECK(sessid_id_parse("01234567-89AB-4DEF-8012-3456789ABCDE", 36, id) == 0);
    CHECK(sessid_id_parse(good, 35, id) == 0);
    CHECK(sessid_id_parse("0123456789ab4def80123456789abcde", 32, id) == 0);
    CHECK(sessid_id_parse("01234567-89ab-4def-8012-3456789abcdg", 36, id) == 0);
    CHECK(sessid_id_parse("01234567+89ab-4def-8012-3456789abcde", 36, id) == 0);
    CHECK(sessid_id_parse("", 0, id) == 0);
}

static int compare_ids(const void *a, const void *b)
{
    return memcmp(a, b, SESSID_ID_LEN);
}

static int count_repeats(uint8_t (*ids)[SESSID_ID_LEN], size_t n)
{
    qsort(ids, n, SESSID_ID_LEN, compare_ids);
    int repeats = 0;
    for (size_t i = 1; i < n; i++)
        repeats += memcmp(ids[i - 1], ids[i], SESSID_ID_LEN) == 0;
    return repeats;
}

#define MANY 200000

static void ids_do_not_repeat(void)
{
    uint8_t (*ids)[SESSID_ID_LEN] = malloc(MANY * sizeof *ids);
    CHECK(ids != NULL);
    if (ids == NULL)
        return;
    for (size_t i = 0; i < MANY; i++)
        CHECK_STATUS(sessid_id_new(ids[i]), SESSID_OK);
    CHECK(count_repeats(ids, MANY) == 0);
    free(ids);
}

#define PER_SIDE 1000

/* The parent draws one id, so the batch it inherits is partly used, then forks; both sides draw
 * PER_SIDE more and none may appear on both sides. */
static void fork_does_not_share_the_batch(void)
{
    uint8_t warm[SESSID_ID_LEN];
    CHECK_STATUS(sessid_id_new(warm), SESSID_OK);
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        close(pipe_fds[0]);
        for (int i = 0; i < PER_SIDE; i++) {
            uint8_t id[SESSID_ID_LEN];
            if (sessid_id_new(id) != SESSID_OK || write(pipe_fds[1], id, sizeof id) != sizeof id)
                _exit(1);
        }
        _exit(0);
    }
    close(pipe_fds[1]);
    uint8_t (*ids)[SESSID_ID_LEN] = malloc(2 * PER_SIDE * sizeof *ids);
    CHECK(ids != NULL);
    if (ids == NULL)
        return;
    for (int i = 0; i < PER_SIDE; i++)
        CHECK_STATUS(sessid_id_new(ids[i]), SESSID_OK);
    size_t got = 0;
    uint8_t *into = (uint8_t *)ids[PER_SIDE];
    ssize_t n;
    while (got < PER_SIDE * SESSID_ID_LEN
           && (n = read(pipe_fds[0], into + got, PER_SIDE * SESSID_ID_LEN - got)) > 0)
        got += (size_t)n;
    close(pipe_fds[0]);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(got == PER_SIDE * SESSID_ID_LEN);
    CHECK(count_repeats(ids, 2 * PER_SIDE) == 0);
    free(ids);
}

void test_idgen(void)
{
    RUN(ids_are_version_4_variant_1);
    RUN(format_and_parse_round_trip);
    RUN(parse_takes_only_the_canonical_form);
    RUN(ids_do_not_repeat);
    RUN(fork_does_not_share_the_batch);
}
