"""Local mode (no KV): the same key keeps its id while it is used at least once per TTL."""

import math

import pytest

import sessid
from conftest import is_uuid4

KEY = "sk-ant-api03-" + "k" * 39


def test_same_key_same_id_and_ids_are_scoped_by_key(clock):
    store = sessid.Store(clock=clock)
    first = store.get(KEY)
    assert is_uuid4(first)
    assert store.get(KEY) == first
    other = store.get(KEY + "x")
    assert is_uuid4(other) and other != first
    assert len(store) == 2


def test_entry_expires_after_the_ttl(clock):
    store = sessid.Store(ttl=10, clock=clock)
    first = store.get(KEY)
    clock.advance(10.5)
    assert store.get(KEY) != first


def test_a_hit_renews_the_ttl(clock):
    store = sessid.Store(ttl=10, clock=clock)
    first = store.get(KEY)
    for _ in range(5):
        clock.advance(9)
        assert store.get(KEY) == first


def test_exactly_ttl_after_the_last_use_is_expired(clock):
    store = sessid.Store(ttl=10, clock=clock)
    first = store.get(KEY)
    clock.advance(5)
    assert store.get(KEY) == first          # expires now at 1015
    clock.now = 1015 - 1e-9
    assert store.get(KEY) == first          # expires now at 1025 - 1e-9
    clock.now = (1015 - 1e-9) + 10
    assert store.get(KEY) != first


def test_empty_key_is_a_fresh_id_every_time_and_is_not_stored(clock):
    store = sessid.Store(clock=clock)
    ids = {store.get("") for _ in range(100)} | {store.get(b"") for _ in range(100)}
    assert len(ids) == 200 and all(is_uuid4(i) for i in ids)
    assert len(store) == 0
    assert store.stats()["misses"] == 0


def test_str_is_hashed_as_utf8_and_bytes_like_keys_agree(clock):
    store = sessid.Store(clock=clock)
    key = "clé-ünïcode-🔑"
    first = store.get(key)
    raw = key.encode()
    assert store.get(raw) == first
    assert store.get(bytearray(raw)) == first
    assert store.get(memoryview(raw)) == first
    assert store.get(memoryview(b"--" + raw)[2:]) == first
    assert store.key_for(key) == store.key_for(raw)


def test_non_contiguous_memoryview_is_hashed_as_its_bytes(clock):
    store = sessid.Store(clock=clock)
    data = b"aXbXcXdX"
    view = memoryview(data)[::2]
    assert not view.c_contiguous
    assert store.get(view) == store.get(b"abcd")


@pytest.mark.parametrize("bad", [None, 1, 1.5, ["k"], {"k": 1}, object(), ("k",)])
def test_keys_of_other_types_raise_type_error(bad, clock):
    store = sessid.Store(clock=clock)
    with pytest.raises(TypeError, match="api_key must be str or a bytes-like object"):
        store.get(bad)
    with pytest.raises(TypeError):
        sessid.get(bad)
    assert is_uuid4(store.get(KEY))


def test_lone_surrogate_raises_unicode_encode_error(clock):
    store = sessid.Store(clock=clock)
    with pytest.raises(UnicodeEncodeError):
        store.get("key\udc80")
    assert is_uuid4(store.get(KEY))


def test_key_for_is_prefix_and_sha256_hex():
    import hashlib

    store = sessid.Store(prefix="cpa:claude:session-id:")
    expected = "cpa:claude:session-id:" + hashlib.sha256(KEY.encode()).hexdigest()
    assert store.key_for(KEY) == expected
    assert sessid.Store().key_for(b"abc") == (
        "sessid:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_max_entries_evicts_the_least_recently_used(clock):
    store = sessid.Store(max_entries=3, clock=clock)
    ids = {k: store.get(k) for k in ("a", "b", "c")}
    clock.advance(1)
    assert store.get("a") == ids["a"]       # a is now the most recent; b the least
    store.get("d")
    assert len(store) == 3
    assert store.get("a") == ids["a"]
    assert store.get("c") == ids["c"]
    assert store.get("b") != ids["b"]       # b was evicted
    assert store.stats()["evicted"] == 2    # b, then d when b came back


def test_every_id_stays_while_the_table_grows(clock):
    """A table grows a little per insert, keeping the array it grows out of until the inserts that
    follow have moved its entries across: 300,000 keys take it through 48 growths, and
    lookups meet entries in either array."""
    store = sessid.Store(clock=clock)
    keys = [f"sk-grow-{i}" for i in range(300_000)]
    ids = []
    for i, key in enumerate(keys):
        ids.append(store.get(key))
        if i % 60_000 == 0:
            assert store._check() == 0
    assert len(store) == len(keys)
    assert [store.get(key) for key in keys] == ids
    assert store._check() == 0
    assert store.stats()["misses"] == len(keys) and store.stats()["hits"] == len(keys)


def test_purge_len_and_clear(clock):
    store = sessid.Store(ttl=10, clock=clock)
    for i in range(5):
        store.get(f"key-{i}")
    clock.advance(5)
    store.get("key-0")
    store.get("late")
    clock.advance(6)                          # key-1..4 expired; key-0 and late live
    assert store.purge() == 4
    assert store.purge() == 0
    assert len(store) == 2
    store.clear()
    assert len(store) == 0


def test_stats_count_hits_misses_and_expiry(clock):
    store = sessid.Store(ttl=10, clock=clock)
    store.get("a")
    store.get("a")
    store.get("b")
    clock.advance(20)
    store.get("a")
    assert store.stats() == {"hits": 1, "misses": 3, "expired": 2, "evicted": 0, "kv_errors": 0,
                             "kv_skipped": 0, "kv_fallbacks": 0, "kv_repaired": 0,
                             "lock_timeouts": 0, "lock_repairs": 0}


def test_a_clock_that_goes_backwards_counts_as_standing_still(clock):
    store = sessid.Store(ttl=10, clock=clock)
    first = store.get(KEY)
    clock.advance(-100)
    assert store.get(KEY) == first             # counts as time 1000: renewed to 1010
    clock.now = 1009.5
    assert store.get(KEY) == first


def test_local_mode_never_calls_a_kv(kv, clock):
    store = sessid.Store(clock=clock)
    store.get(KEY)
    store.get(KEY)
    assert store.kv is None
    assert sum(kv.calls.values()) == 0


def test_the_store_keeps_no_reference_to_the_key(clock):
    import sys

    store = sessid.Store(clock=clock)
    key = "".join(["sk-", "unique-key-object"])
    before = sys.getrefcount(key)
    for _ in range(100):
        store.get(key)
    assert sys.getrefcount(key) == before


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"ttl": 0}, ValueError, "ttl must be more than 0"),
        ({"ttl": -1}, ValueError, "ttl must be more than 0"),
        ({"ttl": math.nan}, ValueError, "ttl must be more than 0"),
        ({"ttl": math.inf}, ValueError, "ttl must be more than 0"),
        ({"ttl": 2e9}, ValueError, "at most"),
        ({"ttl": 10**400}, ValueError, "at most"),
        ({"ttl": "60"}, TypeError, "ttl must be a number of seconds"),
        ({"ttl": True}, TypeError, "ttl must be a number of seconds"),
        ({"max_entries": 0}, ValueError, "max_entries must be from 1"),
        ({"max_entries": -5}, ValueError, "max_entries must be from 1"),
        ({"max_entries": 2**64}, ValueError, "max_entries must be from 1"),
        ({"max_entries": 1.5}, TypeError, "max_entries must be an int"),
        ({"max_entries": True}, TypeError, "max_entries must be an int"),
        ({"prefix": b"x:"}, TypeError, "prefix must be str"),
        ({"prefix": "\udc80"}, UnicodeEncodeError, "surrogates"),
        ({"clock": 5}, TypeError, "clock must be callable"),
        ({"refresh_after": 5}, ValueError, "refresh_after needs a kv"),
        ({"on_kv_error": "local"}, ValueError, "needs a kv"),
        ({"on_kv_error": "ignore"}, ValueError, "on_kv_error must be"),
        ({"on_kv_error": None}, TypeError, "on_kv_error must be"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        sessid.Store(**kwargs)


def test_kv_must_offer_the_methods():
    class NoSet:
        def get(self, name): ...
        def expire(self, name, seconds): ...

    with pytest.raises(TypeError, match="has no callable set"):
        sessid.Store(kv=NoSet())
    with pytest.raises(TypeError, match="takes no positional|at most 1"):
        sessid.Store(None, 60)


@pytest.mark.parametrize("reading", ["1000", None, [1]])
def test_a_clock_returning_a_non_number_raises_type_error(reading):
    store = sessid.Store(clock=lambda: reading)
    with pytest.raises(TypeError, match="clock\\(\\) must return a number"):
        store.get(KEY)


@pytest.mark.parametrize("reading", [math.nan, math.inf, -math.inf])
def test_a_clock_returning_a_non_finite_number_raises_value_error(reading):
    store = sessid.Store(clock=lambda: reading)
    with pytest.raises(ValueError, match="finite"):
        store.get(KEY)


def test_a_clock_that_raises_propagates_and_the_store_recovers(clock):
    broken = {"on": True}

    def flaky():
        if broken["on"]:
            raise RuntimeError("clock broke")
        return clock()

    store = sessid.Store(clock=flaky)
    with pytest.raises(RuntimeError, match="clock broke"):
        store.get(KEY)
    broken["on"] = False
    first = store.get(KEY)
    assert store.get(KEY) == first


def test_attributes_are_read_only(clock):
    store = sessid.Store(ttl=60, prefix="p:", max_entries=10, clock=clock)
    assert (store.ttl, store.prefix, store.max_entries, store.kv, store.clock) == (
        60.0, "p:", 10, None, clock)
    assert store.refresh_after is None and store.on_kv_error == "random"
    for name in ("ttl", "prefix", "max_entries", "kv", "clock", "refresh_after", "on_kv_error"):
        with pytest.raises(AttributeError):
            setattr(store, name, None)
    assert "ttl=60.0" in repr(store) and "prefix='p:'" in repr(store)


def test_an_empty_store_is_still_true():
    assert sessid.Store()
    assert len(sessid.Store()) == 0


def test_store_cannot_be_pickled_or_subclassed():
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(sessid.Store())
    with pytest.raises(TypeError):
        type("Sub", (sessid.Store,), {})
