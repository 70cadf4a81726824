"""A table that has just grown: python benchmarks/after_growth.py [--keys 1000000] [--seconds 90]

Fills a Store with --keys keys, then, for --seconds seconds, times hits on those keys in random
order, one pass every 10 seconds. Each line gives the time since the fill, how much of the process
sits in huge pages (AnonHugePages, which grows as the kernel's khugepaged gathers the new table's
small pages), the mean hit (each call timed on its own, so the timer's overhead is in it), and how
many hits took over 100 µs. A growing table's arrays get small
pages (see docs/design.md): this shows what a hit costs until they are gathered, and what gathering
costs the calls made meanwhile. Linux only (it reads /proc/self/smaps_rollup); it judges nothing.
"""

from __future__ import annotations

import argparse
import random
import time

import sessid
from sessid.bench.local import per_call_latencies, slower_than


def huge_pages_kib() -> int:
    """AnonHugePages of this process, in KiB; -1 where the kernel does not say."""
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the table")
    parser.add_argument("--seconds", type=int, default=90, help="how long to watch after the fill")
    args = parser.parse_args()

    keys = [f"sk-ant-api03-{i:039d}" for i in range(args.keys)]
    store = sessid.Store(ttl=3600.0)
    for key in keys:
        store.get(key)
    order = keys[:]
    random.Random(7).shuffle(order)
    filled = time.monotonic()
    print(f"{args.keys:,} keys filled; {store.stats()['misses']:,} misses")
    print(" seconds  huge pages (MiB)  ns per hit  hits over 100 µs")
    for due in range(0, args.seconds + 1, 10):
        time.sleep(max(0.0, filled + due - time.monotonic()))
        latencies = per_call_latencies(store.get, order)
        ns = sum(latencies) / len(latencies)
        slow = slower_than(latencies, 100_000)
        print(f"{time.monotonic() - filled:8.0f}  {huge_pages_kib() / 1024:16.0f}  {ns:10.0f}  {slow:16,}")


if __name__ == "__main__":
    main()
