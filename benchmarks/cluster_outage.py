"""A Redis Cluster that loses a node: python benchmarks/cluster_outage.py [--calls 50] [--seconds 10]

Starts three redis-server masters on loopback (tests/redis_cluster.py, the helper the tests use),
kills one, waits until the cluster reports fail, and times sessid calls while it is down: get with
kv_backoff=0 (every call asks the KV) and with kv_backoff=1.0 (the default: after a failure, calls
skip the KV for a second), and get_required, which always asks. Each series stops after --calls
calls or --seconds seconds, whichever comes first. It runs twice: with redis-py's RedisCluster as
it comes (ten retries on CLUSTERDOWN, a quarter of a second apart) and with one retry. Then it
restarts the node and times the first calls again. It prints figures and judges none.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import sessid

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
LOST = 1    # the node that is killed


class Counted(logging.Handler):
    """Counts the sessid logger's records instead of printing a traceback for each."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def series(call: Callable[[str], Any], api_keys: list[str], calls: int, seconds: float) -> list[float]:
    """Seconds per call, over api_keys in turn, until calls calls or seconds seconds."""
    taken: list[float] = []
    started = time.perf_counter()
    for api_key in itertools.islice(itertools.cycle(api_keys), calls):
        before = time.perf_counter()
        try:
            call(api_key)
        except sessid.KVError:
            pass
        taken.append(time.perf_counter() - before)
        if time.perf_counter() - started >= seconds:
            break
    return taken


def duration(seconds: float) -> str:
    return f"{seconds * 1e3:9.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:9.2f} µs"


def line(label: str, taken: list[float], store: sessid.Store | None = None,
         logged: Counted | None = None) -> str:
    text = (f"  {label:<24} {len(taken):>3} calls  mean {duration(statistics.mean(taken))}"
            f"  p50 {duration(statistics.median(taken))}  max {duration(max(taken))}")
    if store is not None:
        stats = store.stats()
        text += f"  kv_errors {stats['kv_errors']:>2}, kv_skipped {stats.get('kv_skipped', 0):>2}"
    if logged is not None:
        text += f", {logged.count} logged"
        logged.count = 0
    return text


def make_client(cluster: Any, retries: int | None) -> Any:
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    options: dict[str, Any] = {}
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                        **options)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per series at most (50)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds per series at most (10)")
    parser.add_argument("--node-timeout", type=int, default=1000,
                        help="cluster-node-timeout in ms (1000)")
    args = parser.parse_args(argv)

    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("needs redis-server on PATH (apt-get install redis-server)")
    import redis
    from redis.crc import key_slot

    sys.path.insert(0, TESTS)
    from redis_cluster import LocalCluster

    logged = Counted()
    logger = logging.getLogger("sessid")
    logger.addHandler(logged)
    logger.propagate = False

    version = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    print(f"redis-py {redis.__version__}, redis-server {version.split()[2].removeprefix('v=')}, "
          f"sessid {sessid.__version__}; cluster-node-timeout {args.node_timeout} ms")
    with LocalCluster(executable, node_timeout_ms=args.node_timeout) as cluster:
        owners = cluster.slot_owners()
        api_keys = [f"sk-ant-outage-{i}" for i in range(60)]
        on_lost = sum(owners[key_slot(sessid.Store().key_for(k).encode())] == LOST for k in api_keys)
        print(f"{len(api_keys)} keys, {on_lost} of them on the node that is killed")
        for retries, name in ((None, "redis-py's RedisCluster as it comes (10 retries)"),
                              (1, "RedisCluster(retry=Retry(NoBackoff(), 1))")):
            client = make_client(cluster, retries)
            try:
                warm = sessid.Store(kv=client)
                for api_key in api_keys:
                    warm.get_required(api_key)
                print(f"\n{name}")
                print(line("cluster up, get (hits)",
                           series(warm.get, api_keys, args.calls, args.seconds)))
                cluster.kill(LOST)
                print(f"  cluster_state:fail reported {cluster.wait_until('fail'):.2f} s after the kill")
                for label, store, method in (
                    ("get, kv_backoff=0", sessid.Store(kv=client, kv_backoff=0), "get"),
                    ("get, kv_backoff=1.0", sessid.Store(kv=client, kv_backoff=1.0), "get"),
                    ("get_required", sessid.Store(kv=client), "get_required"),
                ):
                    taken = series(getattr(store, method), api_keys, args.calls, args.seconds)
                    print(line(label, taken, store, logged))
                print(f"  cluster_state:ok again {cluster.restart(LOST):.2f} s after the restart")
                after = sessid.Store(kv=client)
                print(line("node back, get_required",
                           series(after.get_required, api_keys, args.calls, args.seconds), after))
            finally:
                client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
