"""What the processes that test_shared.py starts do. A module of its own, importing only sessid and
the standard library, so that a child started with the spawn start method imports it quickly."""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from typing import Any

import sessid
from sessid.testing import FakeKV


def race(name: str, options: dict[str, Any], keys: list[str], threads: int, barrier: Any,
         results: Any) -> None:
    """Opens the table (new to every process, so the processes also race to make it), then gets
    every key from `threads` threads at once, each in its own order; puts ("ok", {key: id}) when
    the threads agreed, else ("error", text)."""
    try:
        barrier.wait(timeout=60)
        store = sessid.Store(shared=name, **options)
        start = threading.Barrier(threads)
        seen: list[dict[str, str]] = [{} for _ in range(threads)]

        def run(index: int) -> None:
            order = list(keys)
            random.Random(os.getpid() * 100 + index).shuffle(order)
            start.wait(timeout=60)
            for key in order:
                seen[index][key] = store.get(key)

        workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if any(ids != seen[0] for ids in seen):
            results.put(("error", f"threads of process {os.getpid()} disagree"))
        else:
            results.put(("ok", seen[0]))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def read(name: str, options: dict[str, Any], keys: list[str], results: Any) -> None:
    """Puts the ids of keys as a process that starts after the others sees them."""
    try:
        store = sessid.Store(shared=name, **options)
        results.put(("ok", {key: store.get(key) for key in keys}))
        del store
    except BaseException:
        results.put(("error", traceback.format_exc()))


def serve(name: str, options: dict[str, Any], conn: Any) -> None:
    """Calls the Store's methods on request, for tests that need two processes in step: receives
    (method, *args), answers (result, monotonic time before the call, time after it), or
    ("error", text) as the result when the call raised. With options["fake_kv"], the store has a
    FakeKV of its own, and ("kv_calls",) answers how many calls it received."""
    options = dict(options)
    kv = FakeKV() if options.pop("fake_kv", False) else None
    try:
        store = sessid.Store(kv, shared=name, **options)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        method, *args = conn.recv()
        if method == "stop":
            break
        before = time.monotonic()
        try:
            if method == "kv_calls":
                result: Any = sum(kv.calls.values()) if kv is not None else 0
            else:
                result = getattr(store, method)(*args)
        except BaseException:
            result = ("error", traceback.format_exc())
        conn.send((result, before, time.monotonic()))
    del store
