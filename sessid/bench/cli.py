"""python -m sessid bench: sessid side by side with what users would otherwise write.

By default a short run, under a minute: hits and misses at small sizes, the slowest call of a
fill, memory per entry, and the shared table (beside the private one, from two processes at once,
and beside diskcache). --full runs every table at full size (about eight minutes)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time

from . import memory
from .contenders import contenders
from .local import Workloads
from .repair import repair_tables
from .report import Console, Table
from .shared import CEILING_ROW, SHARED_ROW, TWO_PROCESSES_ROW, shared_tables

LOCAL_WORKLOADS = ["hit", "miss", "zipf", "expiry", "memory"]
WORKLOADS = LOCAL_WORKLOADS + ["shared", "repair"]
SHORT_WORKLOADS = ["hit", "miss", "expiry", "memory", "shared", "repair"]   # zipf: --full, or --only
SHORT_SCALE, SHORT_REPEAT = 0.1, 3
FULL_SCALE, FULL_REPEAT = 1.0, 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true",
                      help="every table, at full size (1,000,000 entries, 5 repetitions): about eight "
                           "minutes; the default is a short run of the main tables at a tenth of the "
                           "sizes, under a minute")
    size.add_argument("--quick", action="store_true", help="the short run (the default; kept for scripts)")
    parser.add_argument("--repeat", type=int,
                        help=f"repetitions per figure, whose median is shown (default {SHORT_REPEAT}, "
                             f"or {FULL_REPEAT} with --full)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS + ["kv"], metavar="WORKLOAD",
                        help=f"run only these: {', '.join(WORKLOADS)}, kv (at the short run's sizes "
                             "unless --full)")
    parser.add_argument("--targets", action="store_true",
                        help="also check the figures against the targets the project holds itself to")
    parser.add_argument("--redis", metavar="URL",
                        help="also time the KV path over this Redis (or 'auto': start a throwaway "
                             "redis-server), and Redis beside the shared table; both write keys "
                             "under sessid-bench:")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpus = f"{os.cpu_count()} CPUs"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if usable != os.cpu_count():
        cpus += f" ({usable} usable by this process)"
    return f"{cpu}, {cpus}, Python {platform.python_version()}, {platform.system()}"


def targets(tables: dict[str, Table]) -> list[str]:
    """The performance targets, each with the figure that meets or misses it."""
    lines = []

    def check(label: str, ok: bool, figure: str) -> None:
        lines.append(f"  [{'met' if ok else 'MISSED'}] {label}: {figure}")

    def fastest_contender(table: Table) -> float | None:
        values = [r.value for r in table.rows
                  if r.value is not None and r.name != "sessid" and not r.name.startswith("floor")]
        return min(values) if values else None

    for key, limit in (("hit_small", 0.6), ("hit_large", 1.0)):
        table = tables.get(key)
        if table is None:
            continue
        ours, floor = table.value("sessid"), table.value("floor: hashlib.sha256 alone")
        if ours and floor:
            check(f"{table.title}: at most {limit}x hashlib.sha256 alone", ours <= limit * floor,
                  f"{ours / floor:.2f}x")
        best = fastest_contender(table)
        if ours and best:
            check(f"{table.title}: at least 2.5x faster than the fastest contender",
                  best >= 2.5 * ours, f"{best / ours:.2f}x")
    if "miss" in tables:
        ours, floor = tables["miss"].value("sessid"), tables["miss"].value("floor: str(uuid.uuid4()) alone")
        if ours and floor:
            check("miss: no slower than str(uuid.uuid4()) alone", ours <= floor, f"{ours / floor:.2f}x")
    if "memory" in tables:
        ours = tables["memory"].value("sessid")
        if ours is not None:
            check("memory: at most 96 bytes per entry", ours <= 96, f"{ours:.1f} bytes")
    if "expiry_worst" in tables:
        ours = tables["expiry_worst"].value("sessid")
        if ours is not None:
            check("no single call above 1 ms while entries expire", ours < 1000, f"{ours:.1f} µs")
    if "growth_worst" in tables:
        ours = tables["growth_worst"].value("sessid")
        if ours is not None:
            check("no single call above 1 ms while a table fills", ours < 1000, f"{ours:.1f} µs")
    if "growth_tail" in tables:
        ours = tables["growth_tail"].value("sessid")
        if ours is not None:
            check("99.999% of calls under 100 µs while a table fills", ours < 100, f"{ours:.1f} µs")
    for key, limit in (("shared_hit_small", 1.5), ("shared_hit_large", 1.5),
                       ("shared_miss_small", 2.0), ("shared_miss_large", 2.0)):
        table = tables.get(key)
        if table is None:
            continue
        ours, shared = table.value("sessid"), table.value(SHARED_ROW)
        if ours and shared:
            check(f"{table.title}: shared at most {limit}x private", shared <= limit * ours,
                  f"{shared / ours:.2f}x")
    for key in ("shared_processes_hit", "shared_processes_mixed"):
        table = tables.get(key)
        if table is None:
            continue
        one, two, ceiling = table.value("sessid"), table.value(TWO_PROCESSES_ROW), table.value(CEILING_ROW)
        if one and two:
            machine = f" (the ceiling: {ceiling / one:.2f}x)" if ceiling else ""
            check(f"{table.title}: two processes at least 1.5x one", two >= 1.5 * one,
                  f"{two / one:.2f}x{machine}")
    return lines


def run(args: argparse.Namespace) -> int:
    full = args.full
    default = WORKLOADS if full else SHORT_WORKLOADS
    only = set(args.only or default + (["kv"] if args.redis else []))
    scale = FULL_SCALE if full else SHORT_SCALE
    repeat = args.repeat or (FULL_REPEAT if full else SHORT_REPEAT)
    console = Console()
    console.print(f"sessid bench on {machine()}")
    if full:
        console.print("The full run: every table at full size, about eight minutes.")
    else:
        console.print("A short run, under a minute, at a tenth of the full sizes; --full runs every"
                      " table at full size (about eight minutes).")
    console.print("Each figure is the median of several passes; the column ÷ sessid is the figure"
                  " over sessid's.")
    started = time.monotonic()
    tables: dict[str, Table] = {}

    def show(key: str, table: Table) -> None:
        tables[key] = table
        console.table(table)

    local = only & set(LOCAL_WORKLOADS) - {"memory"}
    if local:
        work = Workloads(contenders(), scale=scale, repeat=repeat, steps=console)
        if "hit" in only:
            show("hit_small", work.hit_small())
            if full:
                show("hit_large", work.hit_large())
        if "miss" in only:
            show("miss", work.miss())
        if "zipf" in only:
            show("zipf", work.zipf_mix())
        if "expiry" in only:
            if full:
                mean, worst, *fills = work.expiry()
                show("expiry_mean", mean)
                show("expiry_worst", worst)
            else:
                fills = work.fill()
            for key, table in zip(("growth_worst", "growth_tail"), fills):
                show(key, table)
            if full:
                show("purge", work.purge())
    if "memory" in only:
        at_rest, peak = memory.tables(int(1_000_000 * scale), console)
        show("memory", at_rest)
        if full:                    # at a tenth of the size, the peak has matched the size at rest
            show("memory_peak", peak)
    if "shared" in only:
        with contextlib.closing(shared_tables(scale, repeat, args.redis, full, console)) as shared:
            for key, table in shared:
                show(key, table)
    if "repair" in only:
        sizes = [100_000, 1_000_000] if full else [int(1_000_000 * scale)]
        for key, table in repair_tables(sizes, console):
            show(key, table)
    if "kv" in only:
        if not args.redis:
            console.print("\nkv: skipped (give --redis URL, or --redis auto)")
        else:
            from .kv import kv_tables

            console.step("the KV path over Redis: sessid beside the same protocol written by hand")
            for key, table in kv_tables(args.redis, scale=scale, repeat=repeat).items():
                show(key, table)
    if args.targets:
        summary = targets(tables)
        console.print("\ntargets:")
        console.print("\n".join(summary) if summary else "  none of these tables has one")
    console.print(f"\n(finished in {time.monotonic() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({key: {r.name: r.value for r in t.rows} for key, t in tables.items()}, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sessid bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
