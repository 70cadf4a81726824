"""The README's examples as user code, for ``mypy --strict`` (see .ci/typecheck); never run.

Every example is a function, so importing this module connects to nothing.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

import fakeredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import valkey
import valkey.asyncio

import sessid
from sessid.testing import AsyncFakeKV, FakeKV, ManualClock

log = logging.getLogger(__name__)


def use(api_key: str) -> str:
    session_id = sessid.get(api_key)
    return session_id


def own_store(api_key: str) -> dict[str, int]:
    store = sessid.Store(ttl=1800, max_entries=100_000)
    store.get(api_key)
    live: int = len(store)
    dropped: int = store.purge()
    assert live >= dropped
    return store.stats()


def ttl_as_timedelta() -> sessid.Store:
    return sessid.Store(ttl=datetime.timedelta(minutes=30))


def shared_store(api_key: str) -> str:
    store = sessid.Store(kv=redis.Redis(host="redis.internal"))
    previous: sessid.Store = sessid.set_default_store(store)
    assert previous is not store
    session_id = sessid.get(api_key)
    return session_id


def cliproxyapi_prefix(api_key: str) -> str:
    store = sessid.Store(kv=redis.Redis(), prefix="cpa:claude:session-id:")
    return store.key_for(api_key)


async def with_asyncio(api_key: str) -> str:
    store = sessid.Store(kv=redis.asyncio.Redis())
    session_id = await store.aget(api_key)
    return session_id + await store.aget_required(api_key)


async def default_store_asyncio(api_key: bytes) -> str:
    return await sessid.aget(api_key) + await sessid.aget_required(memoryview(api_key))


def run_aget(store: sessid.Store, api_key: str) -> str:
    return asyncio.run(store.aget(api_key))


async def aget_as_task(store: sessid.Store, api_key: str) -> str:
    task: asyncio.Task[str] = asyncio.create_task(store.aget(api_key))
    other = asyncio.create_task(store.aget_required(api_key))
    return await task + await other


def forget(store: sessid.Store, api_key: str) -> None:
    store.forget(api_key)
    store.forget(memoryview(b"sk-bytes"))


async def aforget(api_key: str) -> None:
    store = sessid.Store(kv=redis.asyncio.Redis())
    await store.aforget(api_key)


def backoff_and_logging(api_key: str) -> str:
    store = sessid.Store(kv=redis.Redis(), kv_backoff=datetime.timedelta(milliseconds=500))
    off = sessid.Store(kv=redis.Redis(), kv_backoff=0)
    logging.getLogger("sessid").setLevel(logging.ERROR)
    skipped: int = store.stats()["kv_skipped"]
    assert skipped >= 0 and off.kv_backoff == 0.0
    return store.get(api_key)


def near_cache(api_key: str) -> str:
    store = sessid.Store(kv=redis.Redis(), refresh_after=60)
    store = sessid.Store(kv=redis.Redis(), refresh_after=datetime.timedelta(seconds=60))
    return store.get(api_key)


def when_the_kv_fails(store: sessid.Store, api_key: str) -> str | None:
    local = sessid.Store(kv=redis.Redis(), on_kv_error="local")
    assert local.on_kv_error == "local"
    try:
        session_id = store.get_required(api_key)
    except sessid.KVError as exc:
        log.warning("session store unavailable: %s", exc)
        return None
    kv_errors: int = store.stats()["kv_errors"]
    assert kv_errors >= 0
    return session_id


def testing() -> None:
    clock = ManualClock()
    kv = FakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get("sk-1")
    clock.advance(3599)
    assert store.get("sk-1") == first
    assert kv.calls["set"] == 1 and kv.last_ttl["set"] == 3600
    kv.fail("getex")
    kv.set_persists = False
    sessid.Store(kv=AsyncFakeKV(clock=clock), clock=clock)
    sessid.Store(kv=FakeKV(server_version=(6, 0)))


def settings(store: sessid.Store) -> None:
    ttl: float = store.ttl
    kv: sessid.KV | sessid.AsyncKV | None = store.kv
    prefix: str = store.prefix
    max_entries: int | None = store.max_entries
    refresh_after: float | None = store.refresh_after
    print(ttl, kv, prefix, max_entries, refresh_after, store.clock, bool(store))


def clients_are_kvs(
    client: redis.Redis,
    cluster: redis.cluster.RedisCluster,
    vk: valkey.Valkey,
    fake: fakeredis.FakeRedis,
    ours: FakeKV,
) -> list[sessid.KV]:
    return [client, cluster, vk, fake, ours]


def asyncio_clients_are_async_kvs(
    client: redis.asyncio.Redis,
    cluster: redis.asyncio.cluster.RedisCluster,
    vk: valkey.asyncio.Valkey,
    fake: fakeredis.FakeAsyncRedis,
    ours: AsyncFakeKV,
) -> list[sessid.AsyncKV]:
    return [client, cluster, vk, fake, ours]


def a_client_is_not_an_async_kv(fake: FakeKV) -> sessid.AsyncKV:
    # --strict makes an ignore that is not needed an error: these check that mistakes are caught.
    sessid.Store(kv=FakeKV)  # type: ignore[arg-type]
    return fake  # type: ignore[return-value]


def make_store(client: sessid.KV | sessid.AsyncKV) -> sessid.Store:
    return sessid.Store(kv=client, refresh_after=60)


def one_table_per_host(api_key: str) -> str:
    store = sessid.Store(shared="myproxy")
    sessid.set_default_store(store)
    near = sessid.Store(kv=redis.Redis(), shared="myproxy", refresh_after=60)
    removed: bool = sessid.remove_shared("myproxy")
    assert removed or not removed
    return sessid.get(api_key) + near.get(api_key)
