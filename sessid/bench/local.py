"""The local workloads: hits on small and large tables, misses, a Zipf mix, and mass expiry."""

from __future__ import annotations

import functools
import gc
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import sessid

from .contenders import Contender
from .keys import HitKeys, numbered_key, random_keys, zipf_draws
from .report import Row, Steps, Table

HOUR = 3600.0


def loop_overhead(keys: Sequence[str], repeat: int) -> float:
    """ns per iteration of the bare loop that every timed loop below runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _key in keys:
            pass
        samples.append((time.perf_counter_ns() - start) / len(keys))
    return statistics.median(samples)


def timed_loop(get: Callable[[str], Any], keys: Sequence[str]) -> float:
    """ns per call of get over keys, one pass, with the collector paused as timeit does."""
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for key in keys:
            get(key)
        return (time.perf_counter_ns() - start) / len(keys)
    finally:
        gc.enable()


class Workloads(HitKeys):
    def __init__(self, contenders: list[Contender], scale: float, repeat: int,
                 steps: Steps | None = None) -> None:
        super().__init__(scale)
        self.contenders = contenders
        self.repeat = repeat
        self.steps = steps or Steps()
        self.progress = self.steps.progress

    @functools.cached_property
    def zipf(self) -> list[str]:
        return zipf_draws(random_keys(100_000, seed=2), self.large, s=1.1, seed=3)

    def _rows(self, measure: Callable[[Contender], float], floors: bool = True) -> list[Row]:
        rows = []
        for c in self.contenders:
            if c.floor and not floors:
                continue
            if c.make is None:
                rows.append(Row(c.name, None, c.missing))
                continue
            rows.append(Row(c.name, measure(c)))
            gc.collect()
        return rows

    def _hits(self, c: Contender, warm: Sequence[str], calls: Sequence[str]) -> float:
        cache = c.make(HOUR)  # type: ignore[misc]  # callers pass only contenders that have a make
        self.progress(f"{c.name}: putting {len(warm):,} keys in")
        for key in warm:
            cache.get(key)
        samples = []
        for n in range(self.repeat):
            self.progress(f"{c.name}: pass {n + 1} of {self.repeat}")
            samples.append(timed_loop(cache.get, calls))
        ns = statistics.median(samples)
        check_work(cache, hits=self.repeat * len(calls), misses=len(warm))
        return ns

    def _hit_table(self, title: str, warm: Sequence[str], calls: Sequence[str]) -> Table:
        self.steps.step(title)
        overhead = loop_overhead(calls, self.repeat)
        table = Table(title, "ns per call")
        table.rows = self._rows(lambda c: self._hits(c, warm, calls) - overhead)
        table.footer = passes_footer(self.repeat, len(calls), overhead)
        return table

    def hit_small(self) -> Table:
        return self._hit_table(f"hit, {self.small:,} keys in the table", self.small_keys, self.small_calls)

    def hit_large(self) -> Table:
        return self._hit_table(f"hit, {self.large:,} keys in the table, random order",
                               self.large_keys, self.shuffled_large)

    def _fresh(self, c: Contender, calls_of_pass: Callable[[int], Sequence[str]]) -> float:
        samples = []
        for n in range(self.repeat):
            self.progress(f"{c.name}: pass {n + 1} of {self.repeat}")
            calls = calls_of_pass(n)
            cache = c.make(HOUR)  # type: ignore[misc]  # callers pass only contenders that have a make
            samples.append(timed_loop(cache.get, calls))
            del cache
            gc.collect()
        return statistics.median(samples)

    def miss(self) -> Table:
        batches = [[numbered_key(n * self.calls + i) for i in range(self.calls)] for n in range(self.repeat)]
        overhead = loop_overhead(batches[0], self.repeat)
        table = Table("miss: a new key every call, into an empty table", "ns per call")
        self.steps.step(table.title)
        table.rows = self._rows(lambda c: self._fresh(c, lambda n: batches[n]) - overhead)
        table.footer = passes_footer(self.repeat, self.calls, overhead)
        return table

    def zipf_mix(self) -> Table:
        distinct = len(set(self.zipf))
        table = Table(f"Zipf mix (s=1.1) over 100,000 keys: {len(self.zipf):,} calls, {distinct:,} distinct", "ns per call")
        self.steps.step(table.title)
        overhead = loop_overhead(self.zipf, self.repeat)
        table.rows = self._rows(lambda c: self._fresh(c, lambda n: self.zipf) - overhead)
        table.footer = f"(median of {self.repeat} passes, each into an empty table; loop overhead of {overhead:.0f} ns subtracted)"
        return table

    def _filled(self, c: Contender, keys: Sequence[str]) -> tuple[Any, float, list[int], int]:
        """A contender filled with keys under a TTL just longer than the fill takes, so that nothing
        expires before the fill is done; returns it, the TTL, each fill call's latency, and how many
        times the kernel took the CPU from the fill meanwhile."""
        probe = c.make(HOUR)  # type: ignore[misc]  # callers pass only contenders that have a make
        sample = keys[: len(keys) // 50 or 1]
        started = time.perf_counter()
        for key in sample:
            probe.get(key)
        ttl = 1.0 + 1.5 * (time.perf_counter() - started) * len(keys) / len(sample)
        del probe
        gc.collect()
        cache = c.make(ttl)  # type: ignore[misc]  # callers pass only contenders that have a make
        before = preemptions()
        latencies = per_call_latencies(cache.get, keys)
        return cache, ttl, latencies, preemptions() - before

    def fill(self) -> list[Table]:
        """Each call of a fill of an empty table: the slowest, and where the fill has enough calls
        for it to differ from the slowest, the 99.999th percentile."""
        return self.expiry(expire=False)

    def expiry(self, expire: bool = True) -> list[Table]:
        """Fills the table, lets every entry expire, then times each get of a new key: the table
        reclaims the old entries while it takes the new ones. The fill's own calls make the fill
        tables; with expire=False, only those."""
        fill = f"filling an empty table with {self.large:,} keys"
        self.steps.step(f"{fill}, each call timed on its own"
                        + (f"; then every entry expires, and {self.large:,} new keys follow" if expire else ""))
        old = [numbered_key(i) for i in range(self.large)]
        fresh = [numbered_key(10**9 + i) for i in range(self.large)] if expire else []
        mean_rows: list[Row] = []
        max_rows: list[Row] = []
        fill_rows: list[Row] = []
        tail_rows: list[Row] = []
        for c in self.contenders:
            if c.make is None:
                for rows in (mean_rows, max_rows, fill_rows, tail_rows):
                    rows.append(Row(c.name, None, c.missing))
                continue
            self.progress(f"{c.name}: filling")
            cache, ttl, filling, preempted = self._filled(c, old)
            fill_rows.append(Row(c.name, max(filling) / 1000, f"p99.99 {percentile(filling, 0.9999) / 1000:.1f} µs, "
                                                               f"{preempted:,} {'preemption' if preempted == 1 else 'preemptions'}"))
            tail_rows.append(Row(c.name, percentile(filling, 0.99999) / 1000,
                                 f"{slower_than(filling, 100_000):,} over 100 µs, {preempted:,} preemptions"))
            if c.floor or not expire:   # a floor keeps no table: its tail is the machine's alone
                del cache, filling
                gc.collect()
                continue
            self.wait(c.name, ttl * 1.05)
            self.progress(f"{c.name}: new keys into the expired table")
            latencies = per_call_latencies(cache.get, fresh)
            mean_rows.append(Row(c.name, statistics.fmean(latencies), work_note(cache)))
            max_rows.append(Row(c.name, max(latencies) / 1000, f"p99.99 {percentile(latencies, 0.9999) / 1000:.1f} µs"))
            del cache, latencies, filling
            gc.collect()
        title = f"{self.large:,} entries expired, then {self.large:,} gets of new keys"
        mean = Table(title + ": time per call", "ns per call", mean_rows,
                     "(each call timed on its own: includes ~30-60 ns of timer overhead)")
        worst = Table(title + ": the slowest single call", "µs", max_rows)
        growth = Table(f"{fill}: the slowest single call", "µs", fill_rows,
                       "(a table that grows by re-placing its entries stalls the call that grows it;"
                       " the floors keep no table. A preemption is a time the kernel gave the CPU to"
                       " another thread in the middle of the fill: on a busy machine, the slowest call"
                       " is often one of them)")
        tail = Table(f"{fill}: the 99.999th percentile call", "µs", tail_rows,
                     f"(each call timed on its own; the figure is the {ordinal(tail_rank(len(old)))} slowest call"
                     f" of the {len(old):,} calls; the floors keep no table: their tail is the machine's own,"
                     " as are the times the kernel gave the CPU to another thread in the middle of the fill)")
        # With fewer than 200,000 calls, the 99.999th percentile call is the slowest: said once.
        fills = [growth, tail] if tail_rank(len(old)) > 1 else [growth]
        return [mean, worst, *fills] if expire else fills

    def wait(self, name: str, seconds: float) -> None:
        """Sleeps while the entries expire, saying so every few seconds."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.progress(f"{name}: waiting {left:.0f} s for every entry to expire")
            time.sleep(min(left, 3.0))

    def purge(self) -> Table:
        """The time of purge() once every entry of a full table has expired."""
        title = f"purge of a table of {self.large:,} expired entries"
        self.steps.step(title)
        old = [numbered_key(i) for i in range(self.large)]
        rows = []
        for c in self.contenders:
            if c.floor:
                continue
            if c.make is None:
                rows.append(Row(c.name, None, c.missing))
                continue
            self.progress(f"{c.name}: filling")
            cache, ttl, _, _ = self._filled(c, old)
            self.wait(c.name, ttl * 1.05)
            start = time.perf_counter_ns()
            dropped = cache.purge()
            elapsed = (time.perf_counter_ns() - start) / 1e6
            rows.append(Row(c.name, elapsed, f"dropped {dropped:,}"))
            del cache
            gc.collect()
        return Table(title, "ms", rows)


def passes_footer(repeat: int, calls: int, overhead: float) -> str:
    return f"(median of {repeat} passes of {calls:,} calls; loop overhead of {overhead:.0f} ns subtracted)"


def check_work(cache: Any, **expected: int) -> None:
    """For sessid, whose stats() say what the calls did: raises when a workload did not do the
    work it is named after (a hit workload that missed, say), which would make its figure a lie."""
    if not isinstance(cache, sessid.Store):
        return
    counted = cache.stats()
    wrong = {name: counted[name] for name, n in expected.items() if counted[name] != n}
    if wrong:
        raise RuntimeError(f"sessid's stats show {wrong}, expected {expected}: the workload is wrong")


def work_note(cache: Any) -> str:
    if not isinstance(cache, sessid.Store):
        return ""
    counted = cache.stats()
    return f"stats: {counted['misses']:,} misses, {counted['expired']:,} expired"


def percentile(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def tail_rank(calls: int) -> int:
    """Which call percentile(latencies, 0.99999) picks, counting from the slowest (1)."""
    return calls - min(calls - 1, int(calls * 0.99999))


def slower_than(latencies: Sequence[int], ns: int) -> int:
    return sum(1 for latency in latencies if latency > ns)


def preemptions() -> int:
    """How many times the kernel has taken the CPU from this thread to give it to another."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def per_call_latencies(get: Callable[[str], Any], keys: Sequence[str]) -> list[int]:
    clock = time.perf_counter_ns
    latencies = [0] * len(keys)
    gc.disable()
    try:
        for i, key in enumerate(keys):
            start = clock()
            get(key)
            latencies[i] = clock() - start
    finally:
        gc.enable()
    return latencies
