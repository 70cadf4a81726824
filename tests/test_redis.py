"""Against a real redis-server: redis-py clients as they are, round trips counted by the server."""

import asyncio
import hashlib
import multiprocessing
import time

import pytest

import sessid
from conftest import command_calls, is_uuid4

pytestmark = pytest.mark.redis

KEY = "sk-ant-api03-shared-key"
COMMANDS = ("get", "getex", "set", "expire")


def calls(client):
    counts = command_calls(client)
    return {name: counts.get(name, 0) for name in COMMANDS}


def test_one_round_trip_per_hit_two_per_miss(redis_client):
    store = sessid.Store(kv=redis_client)
    first = store.get_required(KEY)
    assert calls(redis_client) == {"get": 0, "getex": 1, "set": 1, "expire": 0}
    for _ in range(10):
        assert store.get_required(KEY) == first
    assert calls(redis_client) == {"get": 0, "getex": 11, "set": 1, "expire": 0}


def test_a_client_without_getex_uses_the_reference_protocol(redis_client):
    import redis

    class NoGetex(redis.Redis):
        getex = None

    client = NoGetex(port=redis_client.connection_pool.connection_kwargs["port"])
    store = sessid.Store(kv=client)
    first = store.get_required(KEY)
    assert calls(redis_client) == {"get": 1, "getex": 0, "set": 1, "expire": 0}
    assert store.get_required(KEY) == first
    assert calls(redis_client) == {"get": 2, "getex": 0, "set": 1, "expire": 1}


def test_a_server_that_rejects_set_nx_get_falls_back_for_good(redis_client):
    """redis-py's own ResponseError, as a server before 7.0 answers SET ... NX GET."""
    import redis

    class OldServer(redis.Redis):
        def set(self, name, value, *args, get=False, nx=False, **kwargs):
            if get and nx:
                raise redis.exceptions.ResponseError("ERR syntax error")
            return super().set(name, value, *args, nx=nx, **kwargs)

    client = OldServer(port=redis_client.connection_pool.connection_kwargs["port"])
    store = sessid.Store(kv=client)
    first = store.get_required(KEY)
    second = store.get_required("another key")
    assert first != second and is_uuid4(first) and is_uuid4(second)
    # the first miss: GETEX, refused SET ... GET (never reached the server), SET NX, read-back GET
    assert calls(redis_client) == {"get": 2, "getex": 2, "set": 2, "expire": 0}


def test_the_ttl_really_slides_in_redis(redis_client):
    store = sessid.Store(kv=redis_client, ttl=100)
    store.get_required(KEY)
    name = store.key_for(KEY)
    assert 99_000 < redis_client.pttl(name) <= 100_000
    redis_client.expire(name, 5)
    store.get_required(KEY)
    assert 99_000 < redis_client.pttl(name) <= 100_000


def test_an_idle_key_expires_in_redis_and_gets_a_new_id(redis_client):
    store = sessid.Store(kv=redis_client, ttl=1)
    first = store.get_required(KEY)
    name = store.key_for(KEY)
    assert 0 < redis_client.pttl(name) <= 1000
    redis_client.pexpire(name, 1)               # the rest of its second, as if it went idle
    deadline = time.monotonic() + 5
    while redis_client.exists(name):
        assert time.monotonic() < deadline, "redis kept the key 5 s past its 1 ms TTL"
    second = store.get_required(KEY)
    assert is_uuid4(second) and second != first
    assert redis_client.get(name) == second.encode()


def test_key_format_matches_cli_proxy_api(redis_client):
    store = sessid.Store(kv=redis_client, prefix="cpa:claude:session-id:")
    session_id = store.get_required(KEY)
    name = "cpa:claude:session-id:" + hashlib.sha256(KEY.encode()).hexdigest()
    assert redis_client.get(name) == session_id.encode()
    assert redis_client.keys("*") == [name.encode()]


def test_an_id_written_by_another_proxy_is_adopted(redis_client):
    store = sessid.Store(kv=redis_client, prefix="cpa:claude:session-id:")
    name = store.key_for(KEY)
    written_by_go = "8f14e45f-ceea-467f-a8a1-0c3b9e1f3a77"
    redis_client.set(name, written_by_go, ex=3600)
    assert store.get_required(KEY) == written_by_go


def test_decode_responses_client(redis_client):
    import redis

    client = redis.Redis(port=redis_client.connection_pool.connection_kwargs["port"],
                         decode_responses=True)
    store = sessid.Store(kv=client)
    first = store.get_required(KEY)
    assert store.get_required(KEY) == first == client.get(store.key_for(KEY))


def test_near_cache_saves_round_trips(redis_client):
    store = sessid.Store(kv=redis_client, refresh_after=60)
    first = store.get_required(KEY)
    for _ in range(50):
        assert store.get_required(KEY) == first
    assert calls(redis_client) == {"get": 0, "getex": 1, "set": 1, "expire": 0}


def _ask(url, key, barrier, results):
    import redis

    store = sessid.Store(kv=redis.Redis.from_url(url))
    barrier.wait()
    results.put(store.get_required(key))


def test_many_processes_agree_on_one_id(redis_server, redis_client):
    context = multiprocessing.get_context("spawn")
    workers = 8
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [context.Process(target=_ask, args=(redis_server.url, KEY, barrier, results))
                 for _ in range(workers)]
    for p in processes:
        p.start()
    ids = [results.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert redis_client.get(sessid.Store().key_for(KEY)) == ids[0].encode()


def test_a_dead_server_then_a_restart(redis_server, redis_client):
    import redis

    client = redis.Redis(port=redis_server.port, socket_timeout=1, socket_connect_timeout=1)
    store = sessid.Store(kv=client)
    local = sessid.Store(kv=client, on_kv_error="local")
    first = store.get_required(KEY)
    kept = local.get("local key")
    redis_server.stop()
    try:
        fallback = store.get(KEY)
        assert is_uuid4(fallback) and fallback != first
        with pytest.raises(sessid.KVError) as info:
            store.get_required(KEY)
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        assert local.get("local key") == kept      # one process stays stable through the outage
        assert store.stats()["kv_errors"] == 2
    finally:
        redis_server.start()
    again = store.get_required(KEY)               # the data died with the server: a new id
    assert is_uuid4(again) and store.get(KEY) == again


def test_asyncio_client_under_gather(redis_server, redis_client):
    import redis.asyncio

    keys = [f"sk-async-{i}" for i in range(20)]

    async def main():
        pool = redis.asyncio.BlockingConnectionPool(port=redis_server.port, max_connections=20)
        client = redis.asyncio.Redis(connection_pool=pool)
        store = sessid.Store(kv=client)
        try:
            ids = await asyncio.gather(*(store.aget_required(k) for k in keys * 10))
            again = await asyncio.gather(*(store.aget(k) for k in keys))
        finally:
            await client.aclose()
            await pool.disconnect()
        return ids, again

    ids, again = asyncio.run(main())
    by_key = {}
    for key, session_id in zip(keys * 10, ids):
        by_key.setdefault(key, set()).add(session_id)
    assert all(len(found) == 1 for found in by_key.values())
    assert again == [by_key[k].pop() for k in keys]
    sync_store = sessid.Store(kv=redis_client)
    assert [sync_store.get_required(k) for k in keys] == again


def test_asyncio_round_trips(redis_server, redis_client):
    import redis.asyncio

    async def main():
        client = redis.asyncio.Redis(port=redis_server.port)
        store = sessid.Store(kv=client)
        try:
            first = await store.aget_required(KEY)
            second = await store.aget_required(KEY)
        finally:
            await client.aclose()
        return first, second

    first, second = asyncio.run(main())
    assert first == second
    assert calls(redis_client) == {"get": 0, "getex": 2, "set": 1, "expire": 0}


def test_asyncio_dead_server(redis_server, redis_client):
    import redis.asyncio

    async def main():
        client = redis.asyncio.Redis(port=redis_server.port, socket_timeout=1,
                                     socket_connect_timeout=1)
        store = sessid.Store(kv=client)
        try:
            first = await store.aget_required(KEY)
            redis_server.stop()
            try:
                fallback = await store.aget(KEY)
                with pytest.raises(sessid.KVError):
                    await store.aget_required(KEY)
            finally:
                redis_server.start()
            recovered = await store.aget_required(KEY)
        finally:
            await client.aclose()
        return first, fallback, recovered

    first, fallback, recovered = asyncio.run(main())
    assert is_uuid4(fallback) and fallback != first and is_uuid4(recovered)


@pytest.fixture
def cluster_server():
    from conftest import redis_server_executable
    from redis_server import RedisServer

    server = RedisServer(redis_server_executable(), cluster=True)
    server.start()
    yield server
    server.close()


def test_redis_cluster_client(cluster_server):
    from redis.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=cluster_server.port)
    try:
        store = sessid.Store(kv=client)
        first = store.get_required(KEY)
        store.clear()
        assert store.get_required(KEY) == first
        assert client.get(store.key_for(KEY)) == first.encode()
        assert 3590 < client.ttl(store.key_for(KEY)) <= 3600
    finally:
        client.close()


def test_the_kv_benchmark_counts_round_trips(redis_server):
    from sessid.bench.kv import kv_tables

    tables = kv_tables(redis_server.url, scale=0.2, repeat=1)
    hit, miss = tables["kv_hit_trips"], tables["kv_miss_trips"]
    assert hit.value("sessid") == 1.0 and hit.value("reference (GET + EXPIRE)") == 2.0
    assert hit.value("sessid, refresh_after=60 (near cache)") == 0.0
    assert miss.value("sessid") == 2.0 and miss.value("reference (GET + SET NX EX + GET)") == 3.0
    assert tables["kv_async_hit"].rows[0].note == "1.0 round trips per call"
    assert tables["kv_async_miss"].rows[1].note == "3.0 round trips per call"
    assert "µs per call" in tables["kv_hit_time"].render()
