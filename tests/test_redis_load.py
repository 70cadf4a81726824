"""The Redis path under load and under damage, against a real redis-server: bursts of one key share
one exchange, a full pool is waited out, damage under a key is replaced, only an outage opens the
backoff window, refused commands are tried again, and no exception holds the raw key."""

import asyncio
import logging
import threading
import uuid

import pytest

import sessid
from conftest import command_calls, is_uuid4
from sessid.testing import FakeKV, ManualClock, ResponseError

pytestmark = pytest.mark.redis

KEY = "sk-ant-api03-load-and-damage-key"


def calls(client, *names):
    counts = command_calls(client)
    return {name: counts.get(name, 0) for name in names}


def run_threads(count, target):
    """Runs target(i) in count threads released at once; returns their results in order."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def work(i):
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


KINDS = ["sync", "async"]


def with_store(kind, redis_client, body, **options):
    """Runs body(store, call) in one event loop, with a Store over a redis-py client of kind: "sync"
    (call("get", key) is store.get(key)) or "async" (a redis.asyncio client; call awaits aget)."""
    import redis
    import redis.asyncio

    port = redis_client.connection_pool.connection_kwargs["port"]

    async def main():
        if kind == "async":
            client = redis.asyncio.Redis(port=port)
            store = sessid.Store(kv=client, **options)

            async def call(method, key):
                return await getattr(store, "a" + method)(key)
        else:
            client = redis.Redis(port=port)
            store = sessid.Store(kv=client, **options)

            async def call(method, key):
                return getattr(store, method)(key)
        try:
            return await body(store, call)
        finally:
            result = client.close() if kind == "sync" else client.aclose()
            if result is not None:
                await result

    return asyncio.run(main())


# ---- row 1: bursts of one key, and a full pool ----

@pytest.mark.parametrize("max_connections", [None, 20])
def test_a_burst_of_agets_of_one_new_key_makes_one_exchange(redis_server, redis_client, max_connections):
    import redis.asyncio

    async def main():
        client = redis.asyncio.Redis(port=redis_server.port, max_connections=max_connections)
        store = sessid.Store(kv=client)
        try:
            return await asyncio.gather(*(store.aget(KEY) for _ in range(1000))), store.stats()
        finally:
            await client.aclose()

    ids, stats = asyncio.run(main())
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert calls(redis_client, "getex", "set") == {"getex": 1, "set": 1}
    assert stats["kv_errors"] == 0 and stats["kv_skipped"] == 0
    assert stats["hits"] + stats["misses"] == 1000
    assert redis_client.get(sessid.Store(kv=redis_client).key_for(KEY)).decode() == ids[0]


def test_a_burst_of_agets_over_many_keys_with_a_small_pool_waits_for_connections(redis_server,
                                                                                 redis_client):
    """1,000 agets over 1,000 keys with 20 connections: the pool is full most of the time, and every
    call still answers its key's id from Redis, none a random one."""
    import redis.asyncio

    keys = [f"sk-burst-{i}" for i in range(1000)]

    async def main():
        client = redis.asyncio.Redis(port=redis_server.port, max_connections=20)
        store = sessid.Store(kv=client)
        try:
            return await asyncio.gather(*(store.aget(k) for k in keys)), store
        finally:
            await client.aclose()

    ids, store = asyncio.run(main())
    stored = redis_client.mget([store.key_for(k) for k in keys])
    assert [s.decode() for s in stored] == ids
    assert store.stats()["kv_errors"] == 0 and store.stats()["kv_skipped"] == 0


def test_threads_on_one_key_share_one_exchange(redis_server, redis_client):
    import redis

    client = redis.Redis(port=redis_server.port)
    store = sessid.Store(kv=client)
    ids = run_threads(150, lambda i: store.get(KEY))
    client.close()
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert store.stats()["kv_errors"] == 0 and store.stats()["kv_skipped"] == 0
    assert calls(redis_client, "set") == {"set": 1}


def test_threads_on_many_keys_wait_for_a_full_pool(redis_server, redis_client):
    import redis

    client = redis.Redis(port=redis_server.port, max_connections=3)
    store = sessid.Store(kv=client)
    ids = run_threads(40, lambda i: store.get(f"sk-thread-{i}"))
    client.close()
    assert ids == [redis_client.get(store.key_for(f"sk-thread-{i}")).decode() for i in range(40)]
    assert store.stats()["kv_errors"] == 0 and store.stats()["kv_skipped"] == 0


def test_a_pool_that_stays_full_fails_the_call_but_opens_no_window(clock):
    class Full(FakeKV):
        def getex(self, name, ex=None, **options):
            import redis

            super().getex(name, ex=ex, **options)
            raise redis.exceptions.MaxConnectionsError("Too many connections")

    pytest.importorskip("redis")
    kv = Full(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    with pytest.raises(sessid.KVError, match="Too many connections"):
        store.get_required(KEY)
    assert kv.calls["getex"] > 1                       # it waited, and tried again
    assert is_uuid4(store.get(KEY))
    asked = kv.calls["getex"]
    store.get(KEY)
    assert kv.calls["getex"] > asked and store.stats()["kv_skipped"] == 0


def test_async_followers_of_a_failing_leader_get_its_fallback_id(clock):
    from sessid.testing import AsyncFakeKV

    class Slow(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            await asyncio.sleep(0.01)
            raise ConnectionError("down")

    store = sessid.Store(kv=Slow(clock=clock), clock=clock)

    async def main():
        return await asyncio.gather(*(store.aget(KEY) for _ in range(50)))

    ids = asyncio.run(main())
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert store.stats()["kv_errors"] == 1 and store.stats()["kv_skipped"] == 49


# ---- rows 2, 5, 6: what opens the window ----

@pytest.mark.parametrize("kind", KINDS)
def test_a_key_of_another_type_is_replaced_and_opens_no_window(redis_client, kind):
    async def body(store, call):
        healthy = await call("get_required", "sk-healthy")
        redis_client.hset(store.key_for(KEY), mapping={"a": "1"})
        first = await call("get", KEY)
        assert is_uuid4(first)
        assert redis_client.type(store.key_for(KEY)) == b"string"
        assert redis_client.get(store.key_for(KEY)).decode() == first
        assert await call("get", "sk-healthy") == healthy
        assert await call("get", KEY) == first
        stats = store.stats()
        assert stats["kv_skipped"] == 0 and stats["kv_errors"] == 0 and stats["kv_repaired"] == 1

    with_store(kind, redis_client, body)


def test_a_failed_get_required_opens_the_window_only_for_an_outage(clock):
    kv = FakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    kv.fail("getex", ResponseError("NOAUTH Authentication required."))
    with pytest.raises(sessid.KVError):
        store.get_required(KEY)
    kv.heal()
    assert is_uuid4(store.get(KEY)) and store.stats()["kv_skipped"] == 0
    kv.fail("getex", TypeError("a bug in the client"))
    with pytest.raises(sessid.KVError):
        store.get_required("sk-other")
    kv.heal()
    store.get("sk-other")
    assert store.stats()["kv_skipped"] == 0
    kv.fail("getex", ResponseError("LOADING Redis is loading the dataset in memory"))
    with pytest.raises(sessid.KVError):
        store.get_required("sk-third")
    kv.heal()
    store.get("sk-third")
    assert store.stats()["kv_skipped"] == 1             # a transient state: an outage


def test_one_probe_at_a_time_while_the_kv_is_down(clock):
    """A probe that takes longer than the window (a connect timeout) keeps the others off the KV."""
    inside, most, asked = [0], [0], [0]
    lock = threading.Lock()

    class Hanging(FakeKV):
        def getex(self, name, ex=None, **options):
            with lock:
                inside[0] += 1
                asked[0] += 1
                most[0] = max(most[0], inside[0])
            threading.Event().wait(0.2)                 # a slow connect, while the others arrive
            with lock:
                clock.advance(5)                        # longer than kv_backoff
                inside[0] -= 1
            raise ConnectionError("Error 111 connecting. Connection refused.")

    store = sessid.Store(kv=Hanging(clock=clock), clock=clock, kv_backoff=1.0)
    store.get(KEY)                                      # opens the window
    clock.advance(2)                                    # the window is over: the next call probes
    results = run_threads(8, lambda i: store.get(f"{KEY}-{i}"))
    assert all(is_uuid4(r) for r in results)
    assert most[0] == 1 and asked[0] == 2
    assert store.stats()["kv_skipped"] == 7


def test_a_probe_that_the_server_answers_ends_the_window(clock):
    kv = FakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    kv.fail("getex")
    store.get(KEY)
    kv.heal()
    clock.advance(1)
    kv.store(store.key_for(KEY), "damaged")            # the probe meets damage, and repairs it
    first = store.get(KEY)
    assert is_uuid4(first)
    skipped = store.stats()["kv_skipped"]
    assert store.get(KEY) == first and store.stats()["kv_skipped"] == skipped


# ---- rows 3, 4: damage is replaced ----

DAMAGE = {
    "1MB": b"x" * (1 << 20),
    "nul": b"abc\x00def",
    "non-ascii": "caf\u00e9".encode(),
    "129-chars": b"a" * 129,
    "blank": b"   ",
    "empty": b"",
    "hello-world": b"hello-world",
    "42": b"42",
    "uuid-v1": str(uuid.uuid1()).encode(),
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_value_is_replaced_by_one_new_id(redis_client, kind, damage):
    async def body(store, call):
        name = store.key_for(KEY)
        redis_client.set(name, DAMAGE[damage], ex=10_000)
        first = await call("get", KEY)
        assert is_uuid4(first)
        assert redis_client.get(name).decode() == first and 0 < redis_client.ttl(name) <= 3600
        assert await call("get_required", KEY) == first
        assert store.stats()["kv_repaired"] == 1 and store.stats()["kv_errors"] == 0

    with_store(kind, redis_client, body)


def test_an_uppercase_uuid_is_an_id_read_in_lowercase(redis_client):
    store = sessid.Store(kv=redis_client)
    value = str(uuid.uuid4())
    redis_client.set(store.key_for(KEY), f" {value.upper()}\n")
    assert store.get_required(KEY) == value and store.stats()["kv_repaired"] == 0


def test_a_burst_on_a_damaged_key_ends_on_one_id(redis_server, redis_client):
    """Two workers (stores), 100 agets: whoever meets the damage first replaces it, once."""
    import redis.asyncio

    redis_client.hset(sessid.Store(kv=redis_client).key_for(KEY), mapping={"a": "1"})

    async def main():
        client = redis.asyncio.Redis(port=redis_server.port)
        workers = [sessid.Store(kv=client), sessid.Store(kv=client)]
        try:
            return await asyncio.gather(*(workers[i % 2].aget(KEY) for i in range(100)))
        finally:
            await client.aclose()

    ids = asyncio.run(main())
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert redis_client.get(sessid.Store(kv=redis_client).key_for(KEY)).decode() == ids[0]


def test_threads_of_two_workers_on_a_damaged_key_end_on_one_id(redis_server, redis_client):
    import redis

    stores = [sessid.Store(kv=redis.Redis(port=redis_server.port)) for _ in range(2)]
    redis_client.set(stores[0].key_for(KEY), b"hello-world")
    ids = run_threads(20, lambda i: stores[i % 2].get(KEY))
    for store in stores:
        store.kv.close()
    assert len(set(ids)) == 1 and is_uuid4(ids[0])


def acl_client(redis_server, redis_client, user, *rules):
    import redis

    redis_client.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"],
                             commands=["+@all", *rules], reset=True)
    return redis.Redis(port=redis_server.port, username=user, password="pw")


def test_without_eval_damage_is_replaced_by_delete_and_set(redis_server, redis_client):
    client = acl_client(redis_server, redis_client, "no-eval", "-eval")
    try:
        store = sessid.Store(kv=client)
        redis_client.set(store.key_for(KEY), b"hello-world")
        first = store.get_required(KEY)
        assert is_uuid4(first) and redis_client.get(store.key_for(KEY)).decode() == first
        assert store.stats()["kv_repaired"] == 1 and store.stats()["kv_fallbacks"] == 1
    finally:
        client.close()
        redis_client.acl_deluser("no-eval")


def test_without_eval_or_delete_damage_is_a_kv_error(redis_server, redis_client):
    client = acl_client(redis_server, redis_client, "no-del", "-eval", "-del")
    try:
        store = sessid.Store(kv=client)
        redis_client.set(store.key_for(KEY), b"hello-world")
        with pytest.raises(sessid.KVError, match="kv.delete\\(\\) raised NoPermissionError"):
            store.get_required(KEY)
        assert is_uuid4(store.get(KEY)) and store.stats()["kv_skipped"] == 0
        assert redis_client.get(store.key_for(KEY)) == b"hello-world"
    finally:
        client.close()
        redis_client.acl_deluser("no-del")


def test_a_set_get_reply_that_is_not_the_old_value_is_never_the_id(redis_client):
    import redis

    class Ok(redis.Redis):
        def set(self, *args, **kwargs):
            super().set(*args, **kwargs)
            return "OK" if kwargs.get("get") else True

    client = Ok(port=redis_client.connection_pool.connection_kwargs["port"])
    store = sessid.Store(kv=client)
    first = store.get_required(KEY)
    client.close()
    assert is_uuid4(first) and redis_client.get(store.key_for(KEY)).decode() == first


def test_the_reference_protocol_reads_and_writes_uuid_strings(redis_client):
    """Interop: the id a Go proxy wrote (uuid.New().String()) is taken, and ours is one too."""
    store = sessid.Store(kv=redis_client, prefix="cpa:claude:session-id:")
    theirs = str(uuid.uuid4())
    redis_client.set(store.key_for(KEY), theirs, ex=3600)
    assert store.get(KEY) == theirs
    assert str(uuid.UUID(store.get("sk-another"))) == store.get("sk-another")


# ---- row 7: refusals are revisited ----

def test_a_refused_getex_is_tried_again_after_60_seconds(redis_server, redis_client):
    clock = ManualClock()
    client = acl_client(redis_server, redis_client, "no-getex", "-getex")
    try:
        store = sessid.Store(kv=client, clock=clock)
        first = store.get_required(KEY)
        assert store.stats()["kv_fallbacks"] == 1
        redis_client.acl_setuser("no-getex", commands=["+getex"])     # a later ACL grant
        redis_client.config_resetstat()
        clock.advance(59)
        assert store.get_required(KEY) == first
        assert calls(redis_client, "getex", "get") == {"getex": 0, "get": 1}
        clock.advance(1)
        assert store.get_required(KEY) == first
        assert store.get_required(KEY) == first
        assert calls(redis_client, "getex", "get") == {"getex": 2, "get": 1}
        assert store.stats()["kv_fallbacks"] == 1
    finally:
        client.close()
        redis_client.acl_deluser("no-getex")


def test_one_transient_refusal_costs_60_seconds_at_most(drive, clock):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    kv.fail("getex", ResponseError("ERR no upstream host"))
    first = drive.get_required(store, KEY)
    kv.heal()
    clock.advance(60)
    assert drive.get_required(store, KEY) == first
    asked = kv.calls["getex"]
    drive.get_required(store, KEY)
    assert kv.calls["getex"] == asked + 1 and store.stats()["kv_fallbacks"] == 1


# ---- row 8: no exception holds the raw key ----

@pytest.mark.parametrize("kind", KINDS)
def test_a_key_without_utf8_raises_without_holding_it(redis_client, kind):
    import traceback

    secret = "sk-secret-" + "\udc80" + "-tail"

    def check(error):
        seen = [repr(error), str(error), repr(error.args), repr(error.object),
                "".join(traceback.format_exception(error))]
        assert not any("sk-secret" in text or "\\udc80" in text for text in seen)
        assert (error.start, error.end, len(error.object)) == (10, 11, len(secret))
        assert error.__cause__ is None and error.__context__ is None

    async def body(store, call):
        for method in ("get", "get_required", "forget"):
            with pytest.raises(UnicodeEncodeError) as info:
                await call(method, secret)
            check(info.value)
        for function in (store.key_for, sessid.get):
            with pytest.raises(UnicodeEncodeError) as info:
                function(secret)
            check(info.value)

    with_store(kind, redis_client, body)


# ---- row 9: an asyncio client given to get ----

def test_an_asyncio_client_given_to_get_is_a_type_error(redis_server, redis_client, caplog):
    import redis.asyncio

    client = redis.asyncio.Redis(port=redis_server.port)
    store = sessid.Store(kv=client)
    caplog.set_level(logging.WARNING, logger="sessid")
    for call in (store.get, store.get_required, store.forget):
        with pytest.raises(TypeError, match="use aget"):
            call(KEY)
    assert not caplog.records and store.stats()["kv_errors"] == 0

    async def then_aget():
        try:
            return await store.aget(KEY)
        finally:
            await client.aclose()

    assert is_uuid4(asyncio.run(then_aget()))
