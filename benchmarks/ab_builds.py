"""Two builds of sessid's extension side by side in one process, on a shared table each.

    python benchmarks/ab_builds.py A=path/to/_sessid.so B=path/to/_sessid.so [--rounds 30]
        [--processes 5]

Each build gets its own table (same settings) and times the same block of calls, the two builds
taking turns (A B, then B A, ...), so that a machine whose speed drifts slows both alike. Workloads:
a locked hit (a key last used in an earlier tick of the clock: the lookup takes the lock and moves
the entry), a lock-free hit (the same key again within a tick), a miss into a table with room, and
a miss into a full table (which evicts). Prints each build's median time per call and the median of
the per-round ratios B/A; it judges nothing.

Where a process puts each build and each table tilts its ratio by a few percent (two copies of one
build gave 0.95 to 1.08 in six processes here), so --processes runs the comparison in that many
fresh processes and prints each one's ratios and their median; give one file twice to see the
spread.

To get the extension of another commit: `git worktree add /tmp/old COMMIT` and
`pip install --no-deps --target /tmp/old-pkg /tmp/old`; it is /tmp/old-pkg/sessid/_sessid*.so.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import Any, Callable

WORKLOADS = ("locked hit", "lock-free hit", "miss", "evicting miss")


def load(label: str, path: str) -> ModuleType:
    """The extension at path, as a module of its own (its init function is PyInit__sessid)."""
    name = f"{label}._sessid"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise SystemExit(f"{path}: not an extension module")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def blocks(workload: str, keys: int, rounds: int) -> tuple[int, list[list[str]], list[str]]:
    """max_entries, the block of keys of each round, and the keys made before timing."""
    known = [f"sk-ab-known-{i:08d}" for i in range(keys)]
    if workload == "locked hit":
        return 2 * keys, [known] * rounds, known
    if workload == "lock-free hit":
        return 2 * keys, [["sk-ab-hot"] * keys] * rounds, ["sk-ab-hot"]
    fresh = [[f"sk-ab-{r}-{i}" for i in range(keys)] for r in range(rounds)]
    return ((rounds + 2) * keys if workload == "miss" else keys), fresh, known


def run(workload: str, builds: list[tuple[str, ModuleType]], keys: int, rounds: int) -> None:
    max_entries, per_round, before = blocks(workload, keys, rounds)
    stores: dict[str, Any] = {}
    names = []
    for label, ext in builds:
        name = f"ab-builds-{label}-{os.getpid()}"
        names.append((ext, name))
        stores[label] = ext.Store(shared=name, ttl=3600, max_entries=max_entries)
        for key in before:
            stores[label].get(key)
    times: dict[str, list[float]] = {label: [] for label, _ in builds}
    try:
        for r, block in enumerate(per_round):
            for label, _ in builds if r % 2 == 0 else builds[::-1]:
                get: Callable[[str], str] = stores[label].get
                get(block[0])
                start = time.perf_counter_ns()
                for key in block:
                    get(key)
                times[label].append((time.perf_counter_ns() - start) / len(block))
    finally:
        stores.clear()
        for ext, name in names:
            ext.remove_shared(name)
    (a, _), (b, _) = builds
    ratios = [y / x for x, y in zip(times[a], times[b])]
    print(f"{workload:14} {a} {statistics.median(times[a]):7.1f} ns   {b} "
          f"{statistics.median(times[b]):7.1f} ns   {b}/{a} median of rounds "
          f"{statistics.median(ratios):.3f} (quartiles {statistics.quantiles(ratios)[0]:.3f} to "
          f"{statistics.quantiles(ratios)[2]:.3f})")


def across_processes(argv: list[str], processes: int) -> None:
    """Runs this script on argv in fresh processes one after another, then prints, per workload,
    the ratio of each process and their median."""
    ratios: dict[str, list[float]] = {}
    for n in range(processes):
        out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True,
                             text=True).stdout
        print(f"process {n + 1} of {processes}", out, sep="\n", end="", flush=True)
        for line in out.splitlines():
            found = re.match(r"(.+?)\s{2,}.*median of rounds ([0-9.]+)", line)
            if found:
                ratios.setdefault(found[1], []).append(float(found[2]))
    print(f"median of the {processes} processes' ratios")
    for workload, values in ratios.items():
        each = " ".join(f"{v:.3f}" for v in sorted(values))
        print(f"{workload:14} {statistics.median(values):.3f}   ({each})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs=2, metavar="LABEL=PATH", help="an extension module file")
    parser.add_argument("--rounds", type=int, default=30, help="blocks per build (default 30)")
    parser.add_argument("--keys", type=int, default=100_000, help="calls per block (default 100,000)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--processes", type=int, default=1,
                        help="fresh processes to compare in, one after another (default 1)")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes: {args.processes} is not a positive number")
    if args.processes > 1:
        rest = [*args.builds, "--rounds", str(args.rounds), "--keys", str(args.keys),
                "--only", *args.only]
        across_processes(rest, args.processes)
        return 0
    builds = []
    for item in args.builds:
        label, sep, path = item.partition("=")
        if not sep or not label.isidentifier():
            parser.error(f"builds: {item!r} is not LABEL=PATH")
        builds.append((label, load(label, path)))
    for workload in args.only:
        run(workload, builds, args.keys, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
