"""The secret never stays: sessid keeps digests, never API keys, and sends only digests to the KV."""

import gc
import hashlib
import sys

import sessid
from sessid.testing import FakeKV

KEYS = [f"sk-ant-api03-secret-{i:04d}-" + "x" * 20 for i in range(300)]


def test_the_store_holds_no_reference_to_any_key():
    kv = FakeKV()
    store = sessid.Store(kv=kv, refresh_after=60, on_kv_error="local")
    local = sessid.Store()
    counts = [sys.getrefcount(k) for k in KEYS]
    for _ in range(3):
        for key in KEYS:
            store.get(key)
            local.get(key)
            local.get(key.encode())
    del key
    assert [sys.getrefcount(k) for k in KEYS] == counts
    ids = {id(k) for k in KEYS}
    for obj in (store, local):
        assert not any(id(r) in ids for r in gc.get_referents(obj))


def test_the_table_memory_holds_digests_and_no_key_bytes():
    store = sessid.Store()
    for key in KEYS:
        store.get(key)
    store.get(bytearray(b"sk-bytearray-secret-key"))
    dump = store._memory_dump()
    assert len(dump) >= 64 * len(KEYS)
    for key in KEYS:
        assert key.encode() not in dump
        assert key.encode()[:16] not in dump
        assert hashlib.sha256(key.encode()).digest() in dump
    assert b"sk-bytearray-secret" not in dump
    assert b"sk-ant-api03" not in dump


def test_expired_and_cleared_entries_are_wiped(clock=None):
    from sessid.testing import ManualClock

    clock = ManualClock()
    store = sessid.Store(ttl=10, clock=clock)
    for key in KEYS:
        store.get(key)
    clock.advance(20)
    assert store.purge() == len(KEYS)
    dump = store._memory_dump()
    for key in KEYS:
        assert hashlib.sha256(key.encode()).digest() not in dump
    assert dump.count(0) == len(dump)


def test_the_kv_only_ever_sees_the_hashed_key():
    kv = FakeKV()
    store = sessid.Store(kv=kv, prefix="p:")
    for key in KEYS[:20]:
        store.get(key)
        store.get(key)
    seen = repr(kv.commands) + repr(kv.keys())
    for key in KEYS[:20]:
        assert key not in seen
        assert "p:" + hashlib.sha256(key.encode()).hexdigest() in seen
