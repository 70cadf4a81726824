"""Bytes per live entry while a table fills: the growth of the process's resident size once the
fill is done, and its peak during the fill.

Each contender is measured in a fresh interpreter (``python -m sessid.bench.memory NAME COUNT``),
so that one's freed memory does not make room for the next. The peak is the kernel's high-water
mark of the resident size (VmHWM), set back to the resident size just before the fill by writing 5
to /proc/self/clear_refs. The kernel records the mark before each release of memory (munmap, and
madvise(MADV_DONTNEED)), so a peak that memory freed at once hides is still counted."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from .contenders import contenders
from .keys import numbered_key
from .report import Row, Steps, Table


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Sets the high-water mark back to the resident size; False where the kernel does not let us."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure_here(name: str, count: int) -> dict[str, float | None]:
    make = next(c.make for c in contenders() if c.name == name)
    assert make is not None
    cache = make(3600.0)
    cache.get(numbered_key(-1))
    gc.collect()
    before = status_bytes("VmRSS")
    peak_known = reset_peak()
    for i in range(count):
        cache.get(numbered_key(i))
    gc.collect()
    at_rest = (status_bytes("VmRSS") - before) / count
    peak = (status_bytes("VmHWM") - before) / count if peak_known else None
    return {"at_rest": at_rest, "peak": peak}


def tables(count: int, steps: Steps | None = None) -> tuple[Table, Table]:
    """The bytes per entry once filled, and at the peak of the fill."""
    steps = steps or Steps()
    steps.step(f"memory: bytes per entry of a table filled with {count:,} keys, each contender"
               " in a fresh interpreter")
    rest_rows, peak_rows = [], []
    for c in contenders():
        if c.floor:
            continue
        if c.make is None:
            rest_rows.append(Row(c.name, None, c.missing))
            peak_rows.append(Row(c.name, None, c.missing))
            continue
        steps.progress(c.name)
        out = subprocess.run(
            [sys.executable, "-m", "sessid.bench.memory", c.name, str(count)],
            check=True, capture_output=True, text=True,
        ).stdout
        figures = json.loads(out)
        rest_rows.append(Row(c.name, figures["at_rest"]))
        peak = figures["peak"]
        peak_rows.append(Row(c.name, peak, "" if peak is not None else "(no /proc/self/clear_refs here)"))
    at_rest = Table(f"memory with {count:,} live entries (growth of resident size)", "bytes/entry", rest_rows)
    peak = Table(f"memory while filling an empty table with {count:,} keys: the peak resident size",
                 "bytes/entry", peak_rows,
                 "(the kernel's high-water mark, VmHWM, over the resident size before the fill)")
    return at_rest, peak


if __name__ == "__main__":
    print(json.dumps(measure_here(sys.argv[1], int(sys.argv[2]))))
