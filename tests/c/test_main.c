#include <stdio.h>

#include "check.h"
#include "tests.h"

int check_failures;

int main(void)
{
    test_clock();
    test_digest();
    test_idgen();
    test_table();
    test_proto();
    test_shared();
    test_trust();
    if (check_failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", check_failures);
        return 1;
    }
    printf("all C tests passed\n");
    return 0;
}
