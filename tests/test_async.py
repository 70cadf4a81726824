"""aget / aget_required: the same protocol, stepped by asyncio, with a coroutine KV.

What they do with a misbehaving KV or bad input is in test_bad_kv.py and test_bad_input.py, whose
rows run through get and aget alike."""

import asyncio

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import AsyncFakeKV, FakeKV

KEY = "api-key-1"


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def akv(clock):
    return AsyncFakeKV(clock=clock)


def test_aget_matches_get_and_uses_the_same_round_trips(akv, clock):
    store = sessid.Store(kv=akv, clock=clock)

    async def main():
        first = await store.aget_required(KEY)
        store.clear()
        second = await store.aget(KEY)
        return first, second

    first, second = run(main())
    assert first == second and is_uuid4(first)
    assert [c[0] for c in akv.commands] == ["getex", "set", "getex"]
    assert akv.last_ttl == {"getex": 3600, "set": 3600}


def test_aget_on_the_reference_protocol(clock):
    akv = AsyncFakeKV(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=akv, clock=clock)
    first = run(store.aget_required(KEY))
    assert run(store.aget_required(KEY)) == first
    assert [c[0] for c in akv.commands] == ["get", "set", "get", "get", "expire"]


def test_aget_falls_back_locally_when_asked(akv, clock):
    store = sessid.Store(kv=akv, clock=clock, on_kv_error="local")
    first = run(store.aget(KEY))
    akv.fail("getex")
    assert run(store.aget(KEY)) == first


def test_gather_of_many_first_calls_agrees_on_one_id(akv, clock):
    store = sessid.Store(kv=akv, clock=clock)

    async def main():
        return await asyncio.gather(*(store.aget_required(KEY) for _ in range(50)))

    ids = run(main())
    assert len(set(ids)) == 1 and is_uuid4(ids[0])
    assert akv.value(store.key_for(KEY)) == ids[0].encode()


def test_aget_works_on_a_local_store_and_a_sync_kv(kv, clock):
    local = sessid.Store(clock=clock)
    assert run(local.aget(KEY)) == local.get(KEY)
    shared = sessid.Store(kv=kv, clock=clock)
    assert run(shared.aget_required(KEY)) == shared.get_required(KEY)
    assert is_uuid4(run(shared.aget("")))


def test_bad_keys_raise_when_awaited(akv, clock):
    store = sessid.Store(kv=akv, clock=clock)
    pending = store.aget(42)
    with pytest.raises(TypeError, match="api_key must be str"):
        run(pending)
    with pytest.raises(UnicodeEncodeError):
        run(store.aget_required("\udc80"))


def test_a_cancelled_aget_leaves_nothing_behind(clock):
    gate = asyncio.Event

    class Slow(AsyncFakeKV):
        async def set(self, name, value, **options):
            await self.gate.wait()
            return await super().set(name, value, **options)

    akv = Slow(clock=clock)
    store = sessid.Store(kv=akv, clock=clock)

    async def main():
        akv.gate = gate()
        task = asyncio.create_task(store.aget_required(KEY))
        while akv.calls["getex"] == 0:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        akv.gate.set()
        first = await store.aget_required(KEY)
        return first, await store.aget_required(KEY)

    first, second = run(main())
    assert first == second and is_uuid4(first)


def test_near_cache_in_async(akv, clock):
    store = sessid.Store(kv=akv, clock=clock, refresh_after=60)
    first = run(store.aget(KEY))
    calls = sum(akv.calls.values())
    assert run(store.aget(KEY)) == first
    assert sum(akv.calls.values()) == calls


def test_a_mixed_kv_is_driven_step_by_step(clock):
    """Some methods coroutines, some plain: each reply is awaited only when it is awaitable."""

    class Mixed(FakeKV):
        async def set(self, name, value, **options):
            return FakeKV.set(self, name, value, **options)

    kv = Mixed(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = run(store.aget_required(KEY))
    assert run(store.aget_required(KEY)) == first
    assert [c[0] for c in kv.commands] == ["getex", "set", "getex"]
