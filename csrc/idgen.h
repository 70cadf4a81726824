/* Session ids: random version 4 UUIDs and their canonical text.
 *
 * Random bytes come from the kernel (getrandom) in batches kept per thread, so a new id costs a
 * system call only once every few hundred ids. A batch is never used on both sides of a fork():
 * after fork() the child discards what it inherited, so parent and child never hand out the same
 * id. Safe to call from any number of threads at once.
 */
#ifndef SESSID_IDGEN_H
#define SESSID_IDGEN_H

#include <stddef.h>
#include <stdint.h>

#define SESSID_ID_LEN 16
#define SESSID_ID_TEXT_LEN 36

/* Fills id with a fresh random version 4 (variant 1) UUID.
 * Returns 0 or SESSID_ERANDOM (the kernel refused random bytes); id is unspecified on failure. */
int sessid_id_new(uint8_t id[SESSID_ID_LEN]);

/* 1 when id is a version 4 UUID (the version nibble is 4), 0 otherwise. Inline: the table asks it
 * of every slot it probes. */
static inline int sessid_id_is_v4(const uint8_t id[SESSID_ID_LEN])
{
    return (id[6] & 0xf0) == 0x40;
}

/* Writes the canonical 36-character lowercase form of id to out and a NUL after it. */
void sessid_id_format(const uint8_t id[SESSID_ID_LEN], char out[SESSID_ID_TEXT_LEN + 1]);

/* Parses text[0..len) into id when it is exactly the canonical lowercase form of a UUID (any
 * version), the form sessid_id_format writes. Returns 1 when it is, 0 otherwise (id unspecified). */
int sessid_id_parse(const char *text, size_t len, uint8_t id[SESSID_ID_LEN]);

#endif
