/* SHA-256 of API keys, through OpenSSL's EVP interface.
 *
 * The SHA-256 implementation is fetched from OpenSSL once per process and every thread reuses
 * one digest context of its own, so a digest costs no allocation after a thread's first one.
 * Safe to call from any number of threads at once.
 */
#ifndef SESSID_DIGEST_H
#define SESSID_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define SESSID_DIGEST_LEN 32
#define SESSID_HEX_LEN 64

/* Writes SHA-256(data[0..len)) to out. data may be NULL when len is 0.
 * Returns 0, SESSID_ENOMEM (no context could be allocated) or SESSID_EDIGEST (OpenSSL failed; its
 * error queue is cleared). out is unspecified on failure. */
int sessid_digest(const void *data, size_t len, uint8_t out[SESSID_DIGEST_LEN]);

/* Writes the 64 lowercase hexadecimal characters of digest to out (no terminating NUL). */
void sessid_digest_hex(const uint8_t digest[SESSID_DIGEST_LEN], char out[SESSID_HEX_LEN]);

#endif
