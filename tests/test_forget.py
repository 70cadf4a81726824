"""forget / aforget: a key's session starts over, here and in the KV."""

import logging

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import ResponseError

KEY = "sk-forget"


def test_forget_in_local_mode(drive, clock):
    store = sessid.Store(clock=clock)
    first = drive.get(store, KEY)
    other = drive.get(store, "sk-other")
    assert drive.forget(store, KEY) is None
    assert len(store) == 1
    second = drive.get(store, KEY)
    assert is_uuid4(second) and second != first
    assert drive.get(store, "sk-other") == other
    drive.forget(store, "sk-never-seen")                # nothing to drop is not an error
    drive.forget(store, "")                             # an empty key holds nothing


def test_forget_deletes_the_key_in_the_kv(drive, clock):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = drive.get_required(store, KEY)
    drive.forget(store, KEY)
    assert kv.calls["delete"] == 1 and kv.value(store.key_for(KEY)) is None
    second = drive.get_required(store, KEY)
    assert is_uuid4(second) and second != first
    assert kv.value(store.key_for(KEY)) == second.encode()
    drive.forget(store, "")
    assert kv.calls["delete"] == 1                      # an empty key never reaches the KV


def test_forget_drops_the_near_cache_too(drive, clock):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, refresh_after=60, on_kv_error="local")
    first = drive.get(store, KEY)
    drive.forget(store, KEY)
    assert len(store) == 0
    assert drive.get(store, KEY) != first


def test_another_store_sees_the_forget(clock, kv):
    one = sessid.Store(kv=kv, clock=clock)
    two = sessid.Store(kv=kv, clock=clock)
    first = one.get(KEY)
    assert two.get(KEY) == first
    two.forget(KEY)
    assert one.get(KEY) == two.get(KEY) != first


def test_a_failed_forget_raises_kv_error_and_keeps_nothing_here(drive, clock, caplog):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, refresh_after=60)
    first = drive.get(store, KEY)
    boom = ResponseError("NOPERM this user has no permissions to run the 'del' command")
    kv.fail("delete", boom)
    with pytest.raises(sessid.KVError, match="kv.delete\\(\\) raised ResponseError") as info:
        drive.forget(store, KEY)
    assert info.value.__cause__ is boom
    assert len(store) == 0                              # the local copy went first
    assert drive.get(store, KEY) == first               # the KV still holds it: forget again
    assert store.stats()["kv_errors"] == 1
    assert not [r for r in caplog.records if r.name == "sessid"]     # raised, not logged


def test_a_client_without_delete_cannot_forget(clock):
    class Minimal:
        def __init__(self):
            self.data = {}

        def get(self, name):
            return self.data.get(name)

        def set(self, name, value, nx=False, ex=None):
            self.data.setdefault(name, value)

        def expire(self, name, seconds):
            return name in self.data

    store = sessid.Store(kv=Minimal(), clock=clock)
    first = store.get_required(KEY)
    with pytest.raises(sessid.KVError, match="kv.delete\\(\\) raised AttributeError") as info:
        store.forget(KEY)
    assert isinstance(info.value.__cause__, AttributeError)
    assert store.get_required(KEY) == first


def test_forget_always_asks_even_inside_the_backoff_window(clock, kv):
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get(KEY)
    kv.fail("getex")
    store.get(KEY)                                      # opens the window
    kv.heal()
    store.forget(KEY)
    assert kv.calls["delete"] == 1
    assert store.get(KEY) != first                      # the success closed the window
    assert kv.calls["getex"] == 3


def test_aforget_with_an_asyncio_kv_is_a_coroutine(clock):
    import asyncio
    import inspect

    from sessid.testing import AsyncFakeKV

    kv = AsyncFakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = asyncio.run(store.aget(KEY))
    pending = store.aforget(KEY)
    assert inspect.iscoroutine(pending)
    assert kv.calls["delete"] == 0                      # nothing runs until awaited
    assert asyncio.run(pending) is None
    assert asyncio.run(store.aget(KEY)) != first


def test_forget_on_a_shared_table(tmp_path):
    path = str(tmp_path / "forget-table")
    try:
        one = sessid.Store(shared=path, max_entries=100)
        two = sessid.Store(shared=path, max_entries=100)
        first = one.get(KEY)
        assert two.get(KEY) == first
        two.forget(KEY)
        assert one.get(KEY) != first
        assert one._check() == 0
    finally:
        sessid.remove_shared(path)


def test_the_kv_method_that_calls_back_into_the_store(clock, kv):
    from sessid.testing import FakeKV

    class Reentrant(FakeKV):
        def delete(self, *names):
            inner.append(store.get("sk-inside-delete"))
            return super().delete(*names)

    inner = []
    store = sessid.Store(kv=Reentrant(clock=clock), clock=clock)
    store.get(KEY)
    store.forget(KEY)
    assert len(inner) == 1 and is_uuid4(inner[0])


def test_forget_logs_nothing_on_success(clock, kv, caplog):
    caplog.set_level(logging.DEBUG, logger="sessid")
    store = sessid.Store(kv=kv, clock=clock)
    store.get(KEY)
    store.forget(KEY)
    assert caplog.records == []
