"""python -m sessid bench: what its output tells a user, and that the work it times is what it says."""

import os
import re
import subprocess
import sys
import time

import pytest

import sessid
from sessid.bench.contenders import Contender, make_sessid
from sessid.bench.local import Workloads, check_work, tail_rank, work_note

PROGRESS = "  ... "
COLUMNS = re.compile(r"÷ sessid$")          # the line of column names that opens every table
TARGET_WORDS = ("target", "MISSED", "[met]")


def bench(*args, merge=False):
    """python -m sessid bench ARGS; with merge, stderr's progress lines interleaved with stdout as a
    terminal shows them."""
    return subprocess.run(
        [sys.executable, "-m", "sessid", "bench", *args], text=True, timeout=600,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
    )


def shared_bench_tables():
    return {name for name in os.listdir("/dev/shm") if name.startswith("sessid-bench-")}


@pytest.fixture(scope="module")
def default_run():
    """The README's first command's bench, as written: no arguments. Its wall time is printed for
    the record (pytest -s shows it); it is not asserted, since it depends on the machine's load."""
    before = shared_bench_tables()
    started = time.monotonic()
    out = bench(merge=True)
    print(f"\npython -m sessid bench: {time.monotonic() - started:.1f} s wall, load {os.getloadavg()}")
    assert out.returncode == 0, out.stdout
    return out.stdout.splitlines(), before


def test_default_run_says_what_it_measures_before_each_table(default_run):
    lines, _ = default_run
    tables = [i for i, line in enumerate(lines) if COLUMNS.search(line)]
    assert len(tables) >= 7
    for i in tables:
        above = i - 1
        while lines[above].startswith(PROGRESS):
            above -= 1
        assert lines[above].strip() and not lines[above].startswith(" "), lines[above - 2: i + 1]
    # The step's heading comes before the progress of its measurement, not after it.
    first_progress = next(i for i, line in enumerate(lines) if line.startswith(PROGRESS))
    assert lines[first_progress - 1] == "hit, 1,000 keys in the table"
    assert first_progress < tables[0]


def test_default_run_shows_figures_not_targets(default_run):
    lines, _ = default_run
    text = "\n".join(lines)
    for word in TARGET_WORDS:
        assert word not in text
    assert "under a minute" in text and "--full" in text
    assert "99.999th percentile" not in text        # with 100,000 calls it is the slowest call
    assert "filling an empty table with 100,000 keys: the slowest single call" in text


def test_default_run_gives_the_cpus_and_the_ceiling_beside_two_processes(default_run):
    lines, _ = default_run
    cpus = len(os.sched_getaffinity(0))
    two = next(line for line in lines if line.startswith("sessid, 2 processes"))
    assert re.search(rf"the ceiling here: \d+\.\d\dx, on {cpus} CPUs?$", two), two
    assert f"This process may run on {cpus} of the machine's {os.cpu_count()} CPUs" in "\n".join(lines)


def test_default_run_removes_its_shared_tables(default_run):
    _, before = default_run
    assert shared_bench_tables() <= before


def test_targets_are_printed_when_asked():
    plain = bench("--repeat", "1", "--only", "hit", "miss")
    asked = bench("--repeat", "1", "--only", "hit", "miss", "--targets")
    for out in (plain, asked):
        assert out.returncode == 0, out.stderr
        assert "÷ sessid" in out.stdout and "floor: hashlib.sha256 alone" in out.stdout
    assert "targets:" not in plain.stdout
    assert "targets:" in asked.stdout
    assert re.search(r"\[(met|MISSED)\] miss: no slower than str\(uuid.uuid4\(\)\) alone", asked.stdout)


def test_quick_is_the_short_run_and_full_cannot_go_with_it():
    out = bench("--quick", "--repeat", "1", "--only", "miss")
    assert out.returncode == 0, out.stderr
    assert "A short run" in out.stdout
    both = bench("--quick", "--full")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


def test_shared_runs_and_removes_its_tables():
    before = shared_bench_tables()
    out = bench("--repeat", "1", "--only", "shared", "--targets")
    assert out.returncode == 0, out.stderr
    for row in ("sessid, shared", "sessid, 2 processes", "diskcache.Cache", "Redis (sessid's KV path)"):
        assert row in out.stdout
    assert "skipped (give --redis URL, or --redis auto)" in out.stdout
    assert "shared at most 1.5x private" in out.stdout and "two processes at least 1.5x one" in out.stdout
    assert shared_bench_tables() <= before


def only_sessid(scale):
    return Workloads([Contender("sessid", make_sessid)], scale=scale, repeat=1)


def test_a_short_fill_shows_its_slowest_call_once():
    tables = only_sessid(0.1).fill()
    assert [t.title for t in tables] == ["filling an empty table with 100,000 keys: the slowest single call"]
    assert tables[0].value("sessid") > 0


def test_a_fill_long_enough_has_a_tail_table_that_names_its_call():
    assert tail_rank(100_000) == 1 and tail_rank(200_000) == 2 and tail_rank(1_000_000) == 10
    slowest, tail = only_sessid(0.2).fill()
    assert tail.title == "filling an empty table with 200,000 keys: the 99.999th percentile call"
    assert "the figure is the 2nd slowest call of the 200,000 calls" in tail.footer
    assert tail.value("sessid") <= slowest.value("sessid")


def test_bench_checks_the_work_through_stats():
    store = sessid.Store()
    for key in ("a", "b", "a"):
        store.get(key)
    check_work(store, hits=1, misses=2)
    with pytest.raises(RuntimeError, match="the workload is wrong"):
        check_work(store, hits=3, misses=0)
    check_work(object(), hits=3)                    # only sessid reports what it did
    assert work_note(store) == "stats: 2 misses, 0 expired"
