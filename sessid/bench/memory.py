"""Bytes per live entry, from the growth of the process's resident size while a table fills.

Each contender is measured in a fresh interpreter (``python -m sessid.bench.memory NAME COUNT``),
so that one's freed memory does not make room for the next."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from .contenders import contenders
from .keys import numbered_key
from .report import Row, Table


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_here(name: str, count: int) -> float:
    make = next(c.make for c in contenders() if c.name == name)
    assert make is not None
    cache = make(3600.0)
    cache.get(numbered_key(-1))
    gc.collect()
    before = resident_bytes()
    for i in range(count):
        cache.get(numbered_key(i))
    gc.collect()
    return (resident_bytes() - before) / count


def table(count: int) -> Table:
    rows = []
    for c in contenders():
        if c.floor:
            continue
        if c.make is None:
            rows.append(Row(c.name, None, c.missing))
            continue
        out = subprocess.run(
            [sys.executable, "-m", "sessid.bench.memory", c.name, str(count)],
            check=True, capture_output=True, text=True,
        ).stdout
        rows.append(Row(c.name, json.loads(out)))
    return Table(f"memory with {count:,} live entries (growth of resident size)", "bytes/entry", rows)


if __name__ == "__main__":
    print(json.dumps(measure_here(sys.argv[1], int(sys.argv[2]))))
