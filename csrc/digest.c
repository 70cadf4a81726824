/* SHA-256 of API keys through OpenSSL's EVP interface, with one reused context per thread. */
#include "digest.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "status.h"

static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;    /* NULL when OpenSSL has no SHA-256 to offer */
static pthread_key_t ctx_key;
static int ctx_key_ready;

static void free_thread_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void digest_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx_key_ready = pthread_key_create(&ctx_key, free_thread_ctx) == 0;
    ERR_clear_error();
}

/* The calling thread's digest context, made on its first use and freed when the thread exits. */
static EVP_MD_CTX *thread_ctx(void)
{
    EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
    if (ctx != NULL)
        return ctx;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (pthread_setspecific(ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int sessid_digest(const void *data, size_t len, uint8_t out[SESSID_DIGEST_LEN])
{
    if (pthread_once(&digest_once, digest_init) != 0 || !ctx_key_ready)
        return SESSID_ENOMEM;
    if (sha256_md == NULL)
        return SESSID_EDIGEST;
    EVP_MD_CTX *ctx = thread_ctx();
    if (ctx == NULL)
        return SESSID_ENOMEM;
    unsigned int out_len = 0;
    if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1
        || (len > 0 && EVP_DigestUpdate(ctx, data, len) != 1)
        || EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != SESSID_DIGEST_LEN) {
        ERR_clear_error();
        return SESSID_EDIGEST;
    }
    return SESSID_OK;
}

void sessid_digest_hex(const uint8_t digest[SESSID_DIGEST_LEN], char out[SESSID_HEX_LEN])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SESSID_DIGEST_LEN; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
}
