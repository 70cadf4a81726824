#include "../../csrc/sessid.h"
#include "check.h"
#include "tests.h"

static void clocks_run_forward(void)
{
    double fine = sessid_clock_now(), coarse = sessid_clock_coarse();
    CHECK(fine > 0 && coarse > 0);
    CHECK(coarse <= sessid_clock_now());
    double later = sessid_clock_now();
    CHECK(later >= fine);
}

static void resolution_picks_the_clock(void)
{
    CHECK(sessid_clock_for(1e-9) == sessid_clock_now);   /* no coarse clock ticks every ns */
    CHECK(sessid_clock_for(3.6) == sessid_clock_coarse);  /* a tick of a few ms is fine for 1 h */
}

void test_clock(void)
{
    RUN(clocks_run_forward);
    RUN(resolution_picks_the_clock);
}
