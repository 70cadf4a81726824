"""What other processes wait for on a shared table when one process dies inside its lock, and while
one process empties a large table (purge(), len()).

A death inside the lock: a child process inserts keys into a full table (each insert evicts, the
longest change the table makes) and is killed (SIGKILL) after a random few milliseconds; when the
table's `lock_repairs` counter says the child died holding the lock, the next call of this process
is timed: it takes the lock from the dead holder and undoes the child's half-made change first.

purge() of a table of expired entries: a child calls it while this process times each of its own
calls, and the longest of them is the figure: purge() holds the lock for a bounded piece at a time.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import statistics
import time
from collections.abc import Callable, Iterator

import secrets

import sessid

from .report import Console, Row, Table


def _fill(store: sessid.Store, count: int, tag: str) -> None:
    get = store.get
    for i in range(count):
        get(f"{tag}-{i}")


def _insert_until_killed(name: str, ttl: float, max_entries: int, ready: object) -> None:
    store = sessid.Store(shared=name, ttl=ttl, max_entries=max_entries)
    ready.set()  # type: ignore[attr-defined]
    get = store.get
    i = 0
    while True:
        get(f"victim-{os.getpid()}-{i}")
        i += 1


def _purge(name: str, ttl: float, max_entries: int) -> None:
    sessid.Store(shared=name, ttl=ttl, max_entries=max_entries).purge()


def death_waits(name: str, entries: int, deaths: int, timeout: float = 60.0) -> list[float]:
    """Seconds the first call after each of `deaths` deaths inside the lock waited, in a table of
    `entries` entries."""
    ttl = 3600.0
    store = sessid.Store(shared=name, ttl=ttl, max_entries=entries)
    _fill(store, entries, "filled")
    context = multiprocessing.get_context("fork")
    rng = random.Random(entries)
    waits: list[float] = []
    deadline = time.monotonic() + timeout
    probe = 0
    while len(waits) < deaths and time.monotonic() < deadline:
        repairs = store.stats()["lock_repairs"]
        ready = context.Event()
        child = context.Process(target=_insert_until_killed, args=(name, ttl, entries, ready))
        child.start()
        ready.wait(10)
        time.sleep(rng.uniform(0.002, 0.02))
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join()
        probe += 1
        start = time.perf_counter()
        store.get(f"probe-{probe}")
        wait = time.perf_counter() - start
        if store.stats()["lock_repairs"] > repairs:
            waits.append(wait)
    return waits


def _timed_calls(store: sessid.Store, until: Callable[[], bool]) -> list[float]:
    times: list[float] = []
    i = 0
    while not until():
        start = time.perf_counter()
        store.get(f"beside-{i}")
        times.append(time.perf_counter() - start)
        i += 1
    return times


def purge_waits(name: str, entries: int) -> tuple[list[float], list[float]]:
    """This process's calls (seconds each) while another purges a table of `entries` expired
    entries, and the same calls for as long with nothing else running: the machine's own floor."""
    ttl = 1.0
    store = sessid.Store(shared=name, ttl=ttl, max_entries=entries + 100_000)
    _fill(store, entries, "expiring")
    time.sleep(ttl + 0.05)
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_purge, args=(name, ttl, entries + 100_000))
    start = time.monotonic()
    child.start()
    during = _timed_calls(store, lambda: not child.is_alive())
    child.join()
    end = time.monotonic() + (time.monotonic() - start)
    floor = _timed_calls(store, lambda: time.monotonic() > end)
    return during, floor


def repair_tables(sizes: list[int], console: Console,
                  deaths: int = 5) -> Iterator[tuple[str, Table]]:
    """The two tables, each as soon as it is made; each size has a table file of its own name,
    removed when its figure is taken."""
    tag = f"bench-repair-{os.getpid()}-{secrets.token_hex(4)}"
    death = Table("A process killed inside a shared table's lock: the next call's wait", "µs")
    purge = Table("Another process's slowest call while purge() empties a shared table", "µs")
    for entries in sizes:
        console.step(f"a shared table of {entries:,} entries: {deaths} processes killed inside its lock")
        name = f"{tag}-death-{entries}"
        try:
            waits = death_waits(name, entries, deaths)
        finally:
            sessid.remove_shared(name)
        if waits:
            note = (f"slowest of {len(waits)} deaths inside the lock; median "
                    f"{statistics.median(waits) * 1e6:,.0f} µs")
            death.rows.append(Row(f"{entries:,} entries", max(waits) * 1e6, note))
        else:
            death.rows.append(Row(f"{entries:,} entries", None, "no kill landed inside the lock"))
    death.footer = ("The next process to take the lock puts back what the dead call changed, from an "
                    "undo log: the wait does not grow with the table.")
    yield "repair_death", death
    for entries in sizes:
        console.step(f"purge() of {entries:,} expired entries beside another process's calls")
        name = f"{tag}-purge-{entries}"
        try:
            during, floor = purge_waits(name, entries)
        finally:
            sessid.remove_shared(name)
        for label, times in ((f"{entries:,} expired entries", during),
                             ("  the same calls, nothing else running", floor)):
            if times:
                note = (f"of {len(times):,} calls; {sum(t > 1e-3 for t in times)} over 1 ms; "
                        f"median {statistics.median(times) * 1e6:,.1f} µs")
                purge.rows.append(Row(label, max(times) * 1e6, note))
    purge.footer = ("purge() and len() hold the lock for a piece of at most 128 entries at a time; "
                    "the second row is this machine's own floor (its scheduler's stalls).")
    yield "repair_purge", purge
