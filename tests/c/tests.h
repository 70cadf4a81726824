/* The groups of C tests; test_main.c runs them all. */
#ifndef SESSID_TESTS_H
#define SESSID_TESTS_H

void test_clock(void);
void test_digest(void);
void test_idgen(void);
void test_table(void);
void test_proto(void);
void test_shared(void);
void test_trust(void);

#endif
