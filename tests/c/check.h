/* A minimal test harness: CHECK records a failure and carries on; RUN runs one test function. */
#ifndef SESSID_TEST_CHECK_H
#define SESSID_TEST_CHECK_H

#include <stdio.h>
#include <time.h>

extern int check_failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            check_failures++;                                                              \
        }                                                                                  \
    } while (0)

#define CHECK_STATUS(expr, want)                                                           \
    do {                                                                                   \
        int got_ = (expr);                                                                 \
        if (got_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %d, want %d\n", __FILE__, __LINE__, #expr, \
                    got_, (want));                                                         \
            check_failures++;                                                              \
        }                                                                                  \
    } while (0)

#define RUN(test)                                                                          \
    do {                                                                                   \
        int before_ = check_failures;                                                      \
        struct timespec start_, end_;                                                      \
        clock_gettime(CLOCK_MONOTONIC, &start_);                                           \
        test();                                                                            \
        clock_gettime(CLOCK_MONOTONIC, &end_);                                             \
        printf("%s %-45s %8.1f ms\n", check_failures == before_ ? "ok  " : "FAIL", #test,  \
               (double)(end_.tv_sec - start_.tv_sec) * 1e3                                 \
                   + (double)(end_.tv_nsec - start_.tv_nsec) / 1e6);                       \
        fflush(stdout);                                                                    \
    } while (0)

#endif
