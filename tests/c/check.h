/* A minimal test harness: CHECK records a failure and carries on; RUN runs one test function. */
#ifndef SESSID_TEST_CHECK_H
#define SESSID_TEST_CHECK_H

#include <stdio.h>

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
        test();                                                                            \
        printf("%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test);             \
    } while (0)

#endif
