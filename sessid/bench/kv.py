"""The KV path over a real Redis: sessid against the reference protocol written by hand with redis-py
(GET + EXPIRE on a hit; GET + SET NX EX + GET on a miss), run in the same process. Round trips are
counted by the server (INFO commandstats)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sessid

from .keys import random_keys
from .report import Row, Table

PREFIX = "sessid-bench:"
TTL = 3600
COMMANDS = ("get", "getex", "set", "expire")


def reference_key(api_key: str) -> str:
    return PREFIX + "reference:" + hashlib.sha256(api_key.encode()).hexdigest()


def reference_get(client: Any, api_key: str) -> str:
    """CLIProxyAPI's protocol, by hand: GET, then EXPIRE on a hit or SET NX EX + GET on a miss."""
    name = reference_key(api_key)
    raw: bytes | None = client.get(name)
    if raw is not None and raw.strip():
        client.expire(name, TTL)
        return raw.strip().decode()
    client.set(name, str(uuid.uuid4()), nx=True, ex=TTL)
    raw = client.get(name)
    if raw is None or not raw.strip():
        raise RuntimeError("missing after set")
    return raw.strip().decode()


async def reference_aget(client: Any, api_key: str) -> str:
    name = reference_key(api_key)
    raw: bytes | None = await client.get(name)
    if raw is not None and raw.strip():
        await client.expire(name, TTL)
        return raw.strip().decode()
    await client.set(name, str(uuid.uuid4()), nx=True, ex=TTL)
    raw = await client.get(name)
    if raw is None or not raw.strip():
        raise RuntimeError("missing after set")
    return raw.strip().decode()


@contextlib.contextmanager
def redis_url(url: str) -> Iterator[str]:
    """url itself, or for 'auto' a throwaway redis-server on a free loopback port."""
    if url != "auto":
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("--redis auto needs redis-server on PATH (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="sessid-bench-redis-")
    server = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def connect(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return client
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def command_count(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in COMMANDS)


class Runner:
    def __init__(self, url: str, scale: float, repeat: int) -> None:
        self.url = url
        self.client = connect(url)
        self.repeat = repeat
        self.calls = max(1_000, int(5_000 * scale))
        self.keys = random_keys(self.calls, seed=11)
        self.pass_number = 0

    def names(self, fresh: bool) -> list[str]:
        """API keys for one pass: the same ones every pass for hits, new ones for misses."""
        if fresh:
            self.pass_number += 1
            return [f"miss-{self.pass_number}-{k}" for k in self.keys]
        return self.keys

    def measure(self, run_pass: Callable[[list[str]], Any], fresh: bool) -> tuple[float, float]:
        """(µs per call, round trips per call) of the median pass, after one warm-up pass."""
        run_pass(self.names(fresh=False))
        samples = []
        for _ in range(self.repeat):
            names = self.names(fresh)
            before = command_count(self.client)
            start = time.perf_counter_ns()
            run_pass(names)
            elapsed = (time.perf_counter_ns() - start) / len(names) / 1000
            samples.append((elapsed, (command_count(self.client) - before) / len(names)))
        return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)

    def measure_sync(self, call: Callable[[str], Any], fresh: bool) -> tuple[float, float]:
        return self.measure(lambda names: [call(name) for name in names], fresh)

    def measure_async(self, make_call: Callable[[Any], Callable[[str], Any]], fresh: bool) -> tuple[float, float]:
        """The calls awaited one after another on a redis.asyncio client."""
        import redis.asyncio

        loop = asyncio.new_event_loop()
        client = redis.asyncio.Redis.from_url(self.url)
        call = make_call(client)

        async def each(names: list[str]) -> None:
            for name in names:
                await call(name)

        try:
            return self.measure(lambda names: loop.run_until_complete(each(names)), fresh)
        finally:
            loop.run_until_complete(client.aclose())
            loop.close()


def direct_store(client: Any, **options: Any) -> Callable[[str], str]:
    store = sessid.Store(kv=client, prefix=PREFIX + "sessid:", **options)
    return store.get_required


def kv_tables(url: str, scale: float, repeat: int) -> dict[str, Table]:
    with redis_url(url) as resolved:
        runner = Runner(resolved, scale, repeat)
        client = runner.client
        try:
            tables = build_tables(runner, client)
            tables.update(burst_tables(resolved, client))
            return tables
        finally:
            for name in client.scan_iter(match=PREFIX + "*", count=1000):
                client.delete(name)
            client.close()


def build_tables(runner: Runner, client: Any) -> dict[str, Table]:
    sync_rows: list[tuple[str, str, Callable[[str], Any], bool]] = [
        ("hit", "sessid", direct_store(client), False),
        ("hit", "reference (GET + EXPIRE)", lambda n: reference_get(client, n), False),
        ("hit", "sessid, refresh_after=60 (near cache)", direct_store(client, refresh_after=60), False),
        ("miss", "sessid", direct_store(client), True),
        ("miss", "reference (GET + SET NX EX + GET)", lambda n: reference_get(client, n), True),
    ]
    tables: dict[str, Table] = {}
    for kind in ("hit", "miss"):
        time_rows, trip_rows = [], []
        for row_kind, name, call, fresh in sync_rows:
            if row_kind != kind:
                continue
            micros, trips = runner.measure_sync(call, fresh)
            time_rows.append(Row(name, micros))
            trip_rows.append(Row(name, trips))
        tables[f"kv_{kind}_time"] = Table(f"KV {kind} over Redis, redis.Redis", "µs per call", time_rows)
        tables[f"kv_{kind}_trips"] = Table(f"KV {kind} over Redis: round trips", "per call", trip_rows)
    for kind, fresh in (("hit", False), ("miss", True)):
        ours = runner.measure_async(lambda c: sessid.Store(kv=c, prefix=PREFIX + "sessid:").aget_required, fresh)
        theirs = runner.measure_async(lambda c: (lambda n: reference_aget(c, n)), fresh)
        tables[f"kv_async_{kind}"] = Table(
            f"KV {kind} over Redis, redis.asyncio.Redis, awaited one after another", "µs per call",
            [Row("sessid", ours[0], f"{ours[1]:.1f} round trips per call"),
             Row("reference", theirs[0], f"{theirs[1]:.1f} round trips per call")],
        )
    return tables


BURST_CALLS = 1_000


def burst(url: str, client: Any, keys: int, max_connections: int | None, reference: bool,
          round_number: int) -> tuple[float, float, float, int]:
    """1,000 agets started at once (asyncio.gather) over `keys` new API keys, on a redis.asyncio
    client with the default pool or max_connections. Returns (µs per call, round trips per call,
    distinct ids per key, calls that raised)."""
    import redis.asyncio

    names = [f"burst-{round_number}-{i % keys}" for i in range(BURST_CALLS)]

    async def main() -> list[Any]:
        aclient = (redis.asyncio.Redis.from_url(url) if max_connections is None
                   else redis.asyncio.Redis.from_url(url, max_connections=max_connections))
        store = sessid.Store(kv=aclient, prefix=PREFIX + "sessid:")
        call = (lambda n: reference_aget(aclient, n)) if reference else store.aget
        try:
            return await asyncio.gather(*(call(n) for n in names), return_exceptions=True)
        finally:
            await aclient.aclose()

    before = command_count(client)
    start = time.perf_counter_ns()
    results = asyncio.run(main())
    elapsed = (time.perf_counter_ns() - start) / BURST_CALLS / 1000
    trips = (command_count(client) - before) / BURST_CALLS
    ids: dict[str, set[Any]] = {}
    errors = 0
    for name, result in zip(names, results):
        if isinstance(result, BaseException):
            errors += 1
        else:
            ids.setdefault(name, set()).add(result)
    distinct = statistics.mean(len(v) for v in ids.values()) if ids else 0.0
    return elapsed, trips, distinct, errors


def burst_tables(url: str, client: Any) -> dict[str, Table]:
    """The burst table: 1,000 concurrent agets of new keys, over 10 and over 1,000 keys, with the
    default pool and with 20 connections; sessid beside the reference protocol (GET / SET NX EX /
    GET / EXPIRE by hand). One exchange per key in flight makes a burst of one key cost one."""
    tables: dict[str, Table] = {}
    round_number = 0
    for keys in (10, 1_000):
        for pool in (None, 20):
            rows = []
            for name, reference in (("sessid", False), ("reference", True)):
                round_number += 1
                micros, trips, distinct, errors = burst(url, client, keys, pool, reference, round_number)
                note = f"{distinct:.2f} ids per key, {trips:.2f} round trips per call"
                if errors:
                    note += f", {errors} calls raised"
                rows.append(Row(name, micros, note))
            label = "default pool" if pool is None else f"max_connections={pool}"
            tables[f"kv_burst_{keys}_keys_{'default' if pool is None else pool}"] = Table(
                f"KV burst: {BURST_CALLS:,} concurrent agets over {keys:,} new keys, {label}",
                "µs per call", rows)
    return tables
