"""The shared table: Store(shared=NAME) against the private Store(), hit and miss; one and two
processes calling one table at once; and what a user would otherwise pick to share ids between the
processes of one host: diskcache (SQLite) and Redis on loopback through sessid's own KV path.

Every table this suite makes has a name of its own and is removed when its figure is taken, and all
of them again at the end however the run ends, so none is left in /dev/shm."""

from __future__ import annotations

import contextlib
import hashlib
import math
import multiprocessing
import os
import queue
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import sessid

from .keys import HitKeys, numbered_key, random_keys
from .local import HOUR, check_work, loop_overhead, passes_footer, timed_loop
from .report import Row, Steps, Table

SHARED_ROW = "sessid, shared"
TWO_PROCESSES_ROW = "sessid, 2 processes"
CEILING_ROW = "ceiling: 2 processes, each its own Store()"
SMALL = 1_000
HEADROOM = 1.2          # max_entries over the keys a table is given, so that nothing is evicted
MISS_EVERY = 10         # the mixed load: one call in ten is a new key
START_TIMEOUT = 120.0   # seconds for the processes of a throughput run to start and meet
REDIS_PREFIX = "sessid-bench:shared:"

Get = Callable[[str], str]


def capacity(keys: int) -> int:
    return math.ceil(keys * HEADROOM)


class Missing(Exception):
    """A figure that cannot be taken here (a package not installed, no room in /dev/shm); the
    message goes in its rows, in place of a traceback."""


def missing_table(title: str, unit: str, rows: Sequence[str], why: Missing) -> Table:
    return Table(title, unit, [Row(row, None, str(why)) for row in rows])


class Names:
    """Unique names for the tables of this run: the pid and a random tag keep a second bench, or a
    table that a user happens to call bench-..., out of the way."""

    def __init__(self) -> None:
        self.tag = f"bench-{os.getpid()}-{secrets.token_hex(4)}"
        self.count = 0
        self.live: set[str] = set()

    def new(self) -> str:
        self.count += 1
        name = f"{self.tag}-{self.count}"
        self.live.add(name)
        return name

    def store(self, keys: int) -> tuple[sessid.Store, str]:
        name = self.new()
        return shared_store(name, capacity(keys)), name

    def remove(self, name: str) -> None:
        """Frees the table's memory once no process maps it any more (a Store keeps its mapping)."""
        sessid.remove_shared(name)
        self.live.discard(name)

    def remove_all(self) -> None:
        for name in sorted(self.live):
            self.remove(name)


def shared_store(name: str, entries: int) -> sessid.Store:
    """The table is allocated in full when it is made, so a /dev/shm too small for it (Docker's
    64 MB, say, for a million keys) fails here, with a message that says so."""
    try:
        return sessid.Store(shared=name, max_entries=entries)
    except sessid.Error as exc:
        raise Missing(str(exc)) from None


# --- shared against private, side by side ---


class Comparison(HitKeys):
    """Store() and Store(shared=...) on the same keys as the local hit workloads, their passes taken
    in turn so that a slower stretch of the machine falls on both."""

    def __init__(self, names: Names, scale: float, repeat: int, steps: Steps) -> None:
        super().__init__(scale, SMALL)
        self.names = names
        self.repeat = repeat
        self.steps = steps

    def hit_small(self) -> Table:
        return self._hits(f"shared against private: hit, {SMALL:,} keys in the table",
                          self.small_keys, self.small_calls)

    def hit_large(self) -> Table:
        return self._hits(f"shared against private: hit, {self.large:,} keys in the table, random order",
                          self.large_keys, self.shuffled_large)

    def miss_small(self) -> Table:
        return self._misses(SMALL)

    def miss_large(self) -> Table:
        return self._misses(self.large)

    def _hits(self, title: str, warm: Sequence[str], calls: Sequence[str]) -> Table:
        self.steps.step(title)
        overhead = loop_overhead(calls, self.repeat)
        private = sessid.Store()
        try:
            shared, name = self.names.store(len(warm))
        except Missing as why:
            return missing_table(title, "ns per call", ["sessid", SHARED_ROW], why)
        try:
            for store in (private, shared):
                for key in warm:
                    store.get(key)
            ours: list[float] = []
            theirs: list[float] = []
            for n in range(self.repeat):
                self.steps.progress(f"pass {n + 1} of {self.repeat}")
                ours.append(timed_loop(private.get, calls))
                theirs.append(timed_loop(shared.get, calls))
            for store in (private, shared):
                check_work(store, hits=self.repeat * len(calls), misses=len(warm))
        finally:
            self.names.remove(name)
        return Table(title, "ns per call", [
            Row("sessid", statistics.median(ours) - overhead, "Store()"),
            Row(SHARED_ROW, statistics.median(theirs) - overhead,
                f"Store(shared=..., max_entries={capacity(len(warm)):,})"),
        ], passes_footer(self.repeat, len(calls), overhead))

    def _misses(self, size: int) -> Table:
        """Fills empty tables with size new keys each, as many tables as make up a pass of at least
        self.calls calls: the miss of a table that holds from none to size keys."""
        title = f"shared against private: miss, a new key every call, filling an empty table with {size:,} keys"
        self.steps.step(title)
        keys = [numbered_key(i) for i in range(size)]
        tables = max(1, self.calls // size)
        overhead = loop_overhead(keys, self.repeat)
        ours: list[float] = []
        theirs: list[float] = []
        for n in range(self.repeat):
            self.steps.progress(f"pass {n + 1} of {self.repeat}")
            private_ns = shared_ns = 0.0
            for _ in range(tables):
                private_ns += self._fill(sessid.Store(), keys)
                try:
                    shared, name = self.names.store(size)
                except Missing as why:
                    return missing_table(title, "ns per call", ["sessid", SHARED_ROW], why)
                try:
                    shared_ns += self._fill(shared, keys)
                finally:
                    del shared
                    self.names.remove(name)
            ours.append(private_ns / tables)
            theirs.append(shared_ns / tables)
        return Table(title, "ns per call", [
            Row("sessid", statistics.median(ours) - overhead, "Store(): grows as it fills"),
            Row(SHARED_ROW, statistics.median(theirs) - overhead,
                f"Store(shared=..., max_entries={capacity(size):,}): made in full"),
        ], f"(median of {self.repeat} passes of {tables} {'table' if tables == 1 else 'tables'} x {size:,} "
           f"calls; loop overhead of {overhead:.0f} ns subtracted)")

    @staticmethod
    def _fill(store: sessid.Store, keys: Sequence[str]) -> float:
        ns = timed_loop(store.get, keys)
        check_work(store, hits=0, misses=len(keys))
        return ns


# --- one and two processes on one table ---


def process_calls(warm: Sequence[str], calls: int, miss_every: int, index: int) -> list[str]:
    """calls keys drawn from warm, with every miss_every-th replaced by a key that no other process
    and no other call asks for (none when miss_every is 0)."""
    keys = random.Random(index).choices(warm, k=calls)
    if miss_every:
        for i in range(0, calls, miss_every):
            keys[i] = numbered_key(index * calls + i)
    return keys


def new_keys(calls: int, miss_every: int) -> int:
    return len(range(0, calls, miss_every)) if miss_every else 0


def hammer(name: str | None, entries: int, calls: int, miss_every: int, index: int,
           barrier: Any, results: Any) -> None:
    """One process of a throughput run (spawned, so it is a module-level function): opens the table
    (or, with no name, a private one), warms up, waits for the others, then calls as fast as it can
    and reports when it started and ended."""
    store = sessid.Store(shared=name, max_entries=entries if name else None)
    warm = random_keys(SMALL, seed=1)
    keys = process_calls(warm, calls, miss_every, index)
    for key in warm:
        store.get(key)
    barrier.wait(timeout=START_TIMEOUT)
    # CLOCK_MONOTONIC is one clock for every process of the host, so the spans can be compared.
    start = time.monotonic_ns()
    timed_loop(store.get, keys)
    end = time.monotonic_ns()
    if name is None:
        new = new_keys(calls, miss_every)
        check_work(store, hits=calls - new, misses=SMALL + new)
    results.put((start, end))


class Throughput:
    """Aggregate calls per second of processes started with spawn that call at once, each a fixed
    number of calls: all their calls over the span from the first start to the last end."""

    def __init__(self, names: Names, scale: float, repeat: int, steps: Steps) -> None:
        self.names = names
        self.repeat = repeat
        self.steps = steps
        self.calls = max(200_000, int(2_000_000 * scale))
        self.context = multiprocessing.get_context("spawn")

    def hits(self) -> Table:
        return self._table(f"one shared table of {SMALL:,} keys, hits: aggregate throughput", 0)

    def mixed(self) -> Table:
        return self._table(f"one shared table of {SMALL:,} keys, one call in {MISS_EVERY} a new key: "
                           "aggregate throughput", MISS_EVERY)

    def _table(self, title: str, miss_every: int) -> Table:
        self.steps.step(title)
        runs = [("sessid", 1, True), (TWO_PROCESSES_ROW, 2, True), (CEILING_ROW, 2, False)]
        samples: dict[str, list[float]] = {row: [] for row, _, _ in runs}
        try:
            for n in range(self.repeat):
                for row, processes, shared in runs:
                    self.steps.progress(f"run {n + 1} of {self.repeat}: {row}")
                    samples[row].append(self._run(processes, miss_every, shared))
        except Missing as why:
            return missing_table(title, "calls/s", [row for row, _, _ in runs], why)
        rates = {row: statistics.median(samples[row]) for row, _, _ in runs}
        one, ceiling = rates["sessid"], rates[CEILING_ROW]
        cpus = usable_cpus()
        rows = []
        for row, processes, _ in runs:
            note = "1 process" if processes == 1 else f"{rates[row] / processes:,.0f} per process"
            if row == TWO_PROCESSES_ROW:
                note += f"; the ceiling here: {ceiling / one:.2f}x, on {cpus} {plural(cpus, 'CPU')}"
            rows.append(Row(row, rates[row], note))
        return Table(title, "calls/s", rows,
                     f"(median of {self.repeat} runs of {self.calls:,} calls per process, started together."
                     f" This process may run on {cpus} of the machine's {os.cpu_count()} CPUs. The ceiling is"
                     " two processes that share nothing: what this machine gives two processes, whatever"
                     " they run; it is the machine, not sessid, that sets it)")

    def _run(self, processes: int, miss_every: int, shared: bool) -> float:
        new = new_keys(self.calls, miss_every)
        entries = capacity(SMALL + processes * new)
        name = self.names.new() if shared else None
        store = None
        if name is not None:
            store = shared_store(name, entries)
            for key in random_keys(SMALL, seed=1):
                store.get(key)
        try:
            spans = self._spawn(processes, name, entries, miss_every)
            if store is not None:
                check_work(store, hits=processes * (SMALL + self.calls - new),
                           misses=SMALL + processes * new)
        finally:
            if name is not None:
                del store
                self.names.remove(name)
        elapsed = (max(end for _, end in spans) - min(start for start, _ in spans)) / 1e9
        return processes * self.calls / elapsed

    def _spawn(self, processes: int, name: str | None, entries: int, miss_every: int) -> list[tuple[int, int]]:
        barrier = self.context.Barrier(processes)
        results = self.context.Queue()
        workers = [self.context.Process(target=hammer, daemon=True,
                                        args=(name, entries, self.calls, miss_every, i, barrier, results))
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        try:
            spans: list[tuple[int, int]] = []
            while len(spans) < processes:
                try:
                    spans.append(results.get(timeout=0.2))
                except queue.Empty:
                    failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                    if failed:
                        raise RuntimeError(f"a throughput process failed (exit code {failed[0]})") from None
            for worker in workers:
                worker.join()
            return spans
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                    worker.join()
            results.close()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:        # not on Linux
        return os.cpu_count() or 1


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


# --- beside what a user would pick to share ids on one host ---


def diskcache_get(directory: str, ttl: float) -> tuple[Get, Callable[[], None]]:
    """The job written with diskcache as the Redis reference protocol does it (sessid/bench/kv.py):
    touch to slide the expiry of a hit, which rewrites only the expiry where set would rewrite the
    value too; add on a miss, then get, so that processes that miss the same key at once all return
    the id of the one that added first, where set would let each return its own."""
    try:
        import diskcache  # type: ignore[import-untyped, import-not-found, unused-ignore]  # an optional bench extra
    except ImportError:
        raise Missing("not installed (pip install 'sessid[bench]')") from None

    cache = diskcache.Cache(directory)

    def get(api_key: str) -> str:
        name = hashlib.sha256(api_key.encode()).hexdigest()
        value = cache.get(name)
        if value is not None:
            cache.touch(name, expire=ttl)
            return value  # type: ignore[no-any-return]
        cache.add(name, str(uuid.uuid4()), expire=ttl)
        value = cache.get(name)
        if value is None:
            raise RuntimeError("missing after add")
        return value  # type: ignore[no-any-return]

    return get, cache.close


@contextlib.contextmanager
def redis_get(url: str | None) -> Iterator[Get]:
    """sessid's own KV path over Redis (on loopback with --redis auto); its keys are deleted
    afterwards."""
    if not url:
        raise Missing("skipped (give --redis URL, or --redis auto)")
    try:
        import redis  # noqa: F401  # kv.connect imports it; asked here to say it is missing
    except ImportError:
        raise Missing("not installed (pip install 'sessid[bench]')") from None
    from . import kv

    with kv.redis_url(url) as resolved:
        client = kv.connect(resolved)
        try:
            yield sessid.Store(kv=client, prefix=REDIS_PREFIX).get_required
        finally:
            for key in client.scan_iter(match=REDIS_PREFIX + "*", count=1000):
                client.delete(key)
            client.close()


class Alternatives:
    """The same calls against Store(shared=...), a diskcache.Cache and sessid over Redis on
    loopback, one after another in this process."""

    def __init__(self, names: Names, scale: float, repeat: int, redis: str | None, steps: Steps) -> None:
        self.names = names
        self.repeat = repeat
        self.redis = redis
        self.steps = steps
        self.calls = max(1_000, int(5_000 * scale))
        self.warm = random_keys(SMALL, seed=21)
        rng = random.Random(22)
        self.hit_calls = [k for _ in range(max(1, self.calls // SMALL)) for k in rng.sample(self.warm, SMALL)]
        self.miss_passes = [[numbered_key(n * self.calls + i) for i in range(self.calls)]
                            for n in range(repeat)]

    def tables(self) -> tuple[Table, Table]:
        title = "sharing ids between the processes of one host"
        self.steps.step(f"{title}: sessid's shared table, diskcache and Redis, hits then misses")
        hit_overhead = loop_overhead(self.hit_calls, self.repeat)
        miss_overhead = loop_overhead(self.miss_passes[0], self.repeat)
        hits: list[Row] = []
        misses: list[Row] = []
        contenders: list[tuple[str, str, Callable[[], contextlib.AbstractContextManager[Get]]]] = [
            ("sessid", "Store(shared=...)", self._sessid),
            ("diskcache.Cache", "get + touch; add + get", self._diskcache),
            ("Redis (sessid's KV path)", "Store(kv=redis.Redis(...))", lambda: redis_get(self.redis)),
        ]
        for row, note, contender in contenders:
            self.steps.progress(row)
            try:
                with contender() as get:
                    for key in self.warm:
                        get(key)
                    hit = self._time(get, lambda n: self.hit_calls) - hit_overhead / 1000
                    miss = self._time(get, lambda n: self.miss_passes[n]) - miss_overhead / 1000
            except Missing as why:
                hits.append(Row(row, None, str(why)))
                misses.append(Row(row, None, str(why)))
                continue
            hits.append(Row(row, hit, note))
            misses.append(Row(row, miss, note))
        return (Table(f"{title}: hit, {SMALL:,} keys", "µs per call", hits,
                      passes_footer(self.repeat, len(self.hit_calls), hit_overhead)),
                Table(f"{title}: miss, a new key every call", "µs per call", misses,
                      passes_footer(self.repeat, self.calls, miss_overhead)))

    def _time(self, get: Get, calls_of_pass: Callable[[int], Sequence[str]]) -> float:
        """µs per call, the median of the passes."""
        return statistics.median(timed_loop(get, calls_of_pass(n)) for n in range(self.repeat)) / 1000

    @contextlib.contextmanager
    def _sessid(self) -> Iterator[Get]:
        store, name = self.names.store(SMALL + self.repeat * self.calls)
        try:
            yield store.get
        finally:
            del store
            self.names.remove(name)

    @contextlib.contextmanager
    def _diskcache(self) -> Iterator[Get]:
        with tempfile.TemporaryDirectory(prefix="sessid-bench-diskcache-") as directory:
            get, close = diskcache_get(directory, HOUR)
            try:
                yield get
            finally:
                close()


def shared_tables(scale: float, repeat: int, redis: str | None, full: bool = True,
                  steps: Steps | None = None) -> Generator[tuple[str, Table], None, None]:
    """Each table as soon as it is made, keyed for the targets and --json; every table made is
    removed when the run ends, also on an error or Ctrl-C (close the iterator when stopping early).
    Without full, only a hit beside the private table, two processes' hits, and the alternatives."""
    steps = steps or Steps()
    names = Names()
    try:
        comparison = Comparison(names, scale, repeat, steps)
        yield "shared_hit_small", comparison.hit_small()
        if full:
            yield "shared_hit_large", comparison.hit_large()
            yield "shared_miss_small", comparison.miss_small()
            yield "shared_miss_large", comparison.miss_large()
        del comparison
        throughput = Throughput(names, scale, repeat, steps)
        yield "shared_processes_hit", throughput.hits()
        if full:
            yield "shared_processes_mixed", throughput.mixed()
        hit, miss = Alternatives(names, scale, repeat, redis, steps).tables()
        yield "shared_alternatives_hit", hit
        yield "shared_alternatives_miss", miss
    finally:
        names.remove_all()
