"""Bad input, one row per case: the documented exception, and a store that still works afterwards.

Each row that looks a key up runs through each driver (the `drive` fixture): get/get_required, and
aget/aget_required with an asyncio KV and with a synchronous one."""

import asyncio
import gc
import math
import weakref
from datetime import timedelta

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import AsyncFakeKV, FakeKV, ManualClock

GOOD = "sk-ant-api03-good-key"


class OddStr:
    def __str__(self):
        return "looks like a key"


class OddBytes:
    def __bytes__(self):
        return b"looks like a key"


class RaisingStr:
    def __str__(self):
        raise RuntimeError("no")


class KeyStr(str):
    """A str subclass whose __str__ and encode lie: the key is its actual characters."""

    def __str__(self):
        return "something else"

    def encode(self, *args, **kwargs):
        return b"something else"


WRONG_TYPES = [None, 0, 1.5, 2j, True, ["k"], {"k": 1}, ("k",), {"k"}, object(), OddStr(),
               OddBytes(), RaisingStr(), sessid.Store, type, iter([b"k"])]


# Each driver on a store without and with a KV; without one, there is no KV to vary.
DRIVES_AND_STORES = [("sync", "local"), ("sync", "kv"), ("async", "local"), ("async", "kv"),
                     ("async-sync-kv", "kv")]
EVERY_DRIVE = pytest.mark.parametrize("drive, store", DRIVES_AND_STORES, indirect=True)
LOCAL_DRIVES = pytest.mark.parametrize("drive", ["sync", "async"], indirect=True)


@pytest.fixture
def store(request, drive):
    clock = ManualClock()
    kv = drive.kv(clock=clock) if request.param == "kv" else None
    return sessid.Store(kv=kv, clock=clock)


def still_works(drive, store):
    first = drive.get_required(store, GOOD)
    assert is_uuid4(first) and drive.get(store, GOOD) == first


@EVERY_DRIVE
@pytest.mark.parametrize("key", WRONG_TYPES, ids=lambda k: type(k).__name__)
@pytest.mark.parametrize("method", ["get", "get_required", "forget"])
def test_wrong_key_types_raise_type_error(drive, store, method, key):
    with pytest.raises(TypeError, match="api_key must be str or a bytes-like object"):
        getattr(drive, method)(store, key)
    still_works(drive, store)


@pytest.mark.parametrize("key", WRONG_TYPES, ids=lambda k: type(k).__name__)
def test_wrong_key_types_for_key_for(key):
    """Single driver: key_for does no lookup, so it has no async form."""
    store = sessid.Store(kv=FakeKV())
    with pytest.raises(TypeError, match="api_key must be str or a bytes-like object"):
        store.key_for(key)
    assert store.key_for(GOOD).startswith("sessid:")


@EVERY_DRIVE
@pytest.mark.parametrize("key", ["\udc80", "ok\ud800", "\udfff" * 3], ids=["alone", "trailing", "many"])
def test_lone_surrogates_raise_unicode_encode_error(drive, store, key):
    with pytest.raises(UnicodeEncodeError):
        drive.get(store, key)
    with pytest.raises(UnicodeEncodeError):
        drive.get_required(store, key)
    with pytest.raises(UnicodeEncodeError):
        drive.forget(store, key)
    still_works(drive, store)


@EVERY_DRIVE
def test_str_subclass_is_hashed_by_its_characters(drive, store):
    odd = KeyStr(GOOD)
    assert drive.get(store, odd) == drive.get(store, GOOD)
    assert store.key_for(odd) == store.key_for(GOOD)


@EVERY_DRIVE
@pytest.mark.parametrize("key", ["\x00", "a\x00b", b"\x00\x00", "\x00" * 100])
def test_nul_bytes_are_part_of_the_key(drive, store, key):
    first = drive.get(store, key)
    assert is_uuid4(first) and drive.get(store, key) == first
    assert drive.get(store, key + key[:1]) != first


@EVERY_DRIVE
def test_a_ten_megabyte_key(drive, store):
    big = "k" * (10 * 1024 * 1024)
    first = drive.get(store, big)
    assert drive.get(store, big) == first
    assert drive.get(store, big.encode()) == first
    assert drive.get(store, big[:-1] + "x") != first
    still_works(drive, store)


@EVERY_DRIVE
@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda b: memoryview(bytearray(b)),
     lambda b: memoryview(b"-" + b)[1:], lambda b: memoryview(bytes(x for c in b for x in (c, 0)))[::2],
     lambda b: memoryview(b).cast("c")],
    ids=["bytes", "bytearray", "memoryview", "view-of-bytearray", "sliced", "strided", "cast"],
)
def test_bytes_like_keys_agree_with_the_str(drive, store, make):
    assert drive.get(store, make(GOOD.encode())) == drive.get(store, GOOD)


@EVERY_DRIVE
def test_multidimensional_and_typed_buffers_hash_their_bytes(drive, store):
    import array

    numbers = array.array("I", [1, 2, 3])
    assert drive.get(store, numbers) == drive.get(store, numbers.tobytes())
    grid = memoryview(bytes(range(12))).cast("B", (3, 4))
    assert drive.get(store, grid) == drive.get(store, bytes(range(12)))


@EVERY_DRIVE
def test_a_bytearray_mutated_between_calls_is_a_new_key(drive, store):
    key = bytearray(GOOD.encode())
    first = drive.get(store, key)
    key[0] ^= 1
    assert drive.get(store, key) != first
    key[0] ^= 1
    assert drive.get(store, key) == first


class WeakKey(bytearray):
    """A bytes-like key that a weak reference can watch."""


def test_aget_reads_the_key_when_called_and_keeps_no_reference():
    """Single driver (aget): only aget has a gap between the call and the lookup. The key's bytes
    are read when aget is called, and the coroutine keeps no reference to the key object."""
    clock = ManualClock()
    store = sessid.Store(kv=AsyncFakeKV(clock=clock), clock=clock)
    key = WeakKey(GOOD.encode())
    watch = weakref.ref(key)
    pending = store.aget_required(key)
    key[0] ^= 1
    changed = bytes(key)
    del key
    gc.collect()
    assert watch() is None
    first = asyncio.run(pending)
    assert asyncio.run(store.aget_required(GOOD)) == first
    assert asyncio.run(store.aget_required(changed)) != first


class ClientClass:
    def get(self, name): ...
    def set(self, name, value, nx=False, ex=None): ...
    def expire(self, name, time): ...


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"ttl": 0}, ValueError, "ttl must be more than 0 and at most 1e9 seconds, got 0$"),
        ({"ttl": -1}, ValueError, "ttl must be .*, got -1$"),
        ({"ttl": -0.0}, ValueError, "ttl must be .*, got -0.0$"),
        ({"ttl": math.nan}, ValueError, "ttl must be .*, got nan$"),
        ({"ttl": math.inf}, ValueError, "ttl must be .*, got inf$"),
        ({"ttl": -math.inf}, ValueError, "ttl must be .*, got -inf$"),
        ({"ttl": 1e300}, ValueError, "ttl must be .*, got 1e\\+300$"),
        ({"ttl": 10**1000}, ValueError, "ttl must be at most 1e9 seconds, got 1000000"),
        ({"ttl": timedelta(0)}, ValueError, "ttl must be .*, got datetime.timedelta\\(0\\)$"),
        ({"ttl": timedelta(days=-1)}, ValueError, "ttl must be .*, got datetime.timedelta\\(days=-1\\)$"),
        ({"ttl": timedelta.max}, ValueError, "ttl must be .*, got datetime.timedelta\\(days=999999999"),
        ({"ttl": "1"}, TypeError, "ttl must be a number of seconds or a datetime.timedelta, not str$"),
        ({"ttl": None}, TypeError, "ttl must be a number .*, not NoneType$"),
        ({"ttl": False}, TypeError, "ttl must be a number .*, not bool$"),
        ({"max_entries": 0}, ValueError, "max_entries must be from 1 to 1073741824, got 0$"),
        ({"max_entries": -1}, ValueError, "max_entries must be from 1 to 1073741824, got -1$"),
        ({"max_entries": 2**31}, ValueError, "max_entries must be .*, got 2147483648$"),
        ({"max_entries": 10**100}, ValueError, "max_entries must be .*, got 1000000"),
        ({"max_entries": 3.0}, TypeError, "max_entries must be an int or None, not float$"),
        ({"max_entries": "3"}, TypeError, "max_entries must be an int or None, not str$"),
        ({"prefix": None}, TypeError, "prefix must be str, not NoneType$"),
        ({"prefix": b"p"}, TypeError, "prefix must be str, not bytes$"),
        ({"clock": "time"}, TypeError, "clock must be callable or None, not str$"),
        ({"clock": 1.0}, TypeError, "clock must be callable or None, not float$"),
        ({"kv": object()}, TypeError, "kv must have callable get, set and expire .* object has no callable get$"),
        ({"kv": 5}, TypeError, "kv must have callable .* int has no callable get$"),
        ({"kv": ClientClass}, TypeError, "kv must be a client object, not the class <class '.*ClientClass'>"),
        ({"kv": FakeKV}, TypeError, "kv must be a client object, not the class <class 'sessid.testing.FakeKV'>"),
        ({"kv": FakeKV(), "refresh_after": 0}, ValueError,
         "refresh_after must be more than 0 and at most ttl \\(3600.0\\), got 0$"),
        ({"kv": FakeKV(), "refresh_after": -1}, ValueError, "refresh_after must be .*, got -1$"),
        ({"kv": FakeKV(), "refresh_after": math.nan}, ValueError, "refresh_after must be .*, got nan$"),
        ({"kv": FakeKV(), "refresh_after": 7200}, ValueError, "refresh_after must be .*, got 7200$"),
        ({"kv": FakeKV(), "refresh_after": timedelta(hours=2)}, ValueError,
         "refresh_after must be .*, got datetime.timedelta\\(seconds=7200\\)$"),
        ({"kv": FakeKV(), "refresh_after": "60"}, TypeError,
         "refresh_after must be a number of seconds or a datetime.timedelta, not str$"),
        ({"kv": FakeKV(), "refresh_after": 10**1000}, ValueError, "refresh_after must be at most 1e9 seconds"),
        ({"kv": FakeKV(), "on_kv_error": "LOCAL"}, ValueError,
         "on_kv_error must be 'random' or 'local', got 'LOCAL'$"),
        ({"kv": FakeKV(), "on_kv_error": 1}, TypeError, "on_kv_error must be 'random' or 'local', not int$"),
        ({"nonsense": 1}, TypeError,   # CPython's own words, which 3.13 changed
         "'nonsense' is an invalid keyword argument for Store\\(\\)|Store\\(\\) got an unexpected keyword argument 'nonsense'"),
    ],
    ids=lambda v: repr(v),
)
def test_constructor_arguments_out_of_range(kwargs, error, message):
    """Each message names the argument and what was given, on every Python (a conversion the C API
    does not know, such as %g, raised SystemError on 3.12 and later and showed raw on 3.11)."""
    with pytest.raises(error, match=message) as raised:
        sessid.Store(**kwargs)
    assert type(raised.value) is error
    assert "%" not in str(raised.value)


@LOCAL_DRIVES
@pytest.mark.parametrize("ttl", [timedelta(minutes=30), timedelta(seconds=1.5), timedelta(days=365)])
def test_ttl_and_refresh_after_take_a_timedelta(drive, ttl):
    clock = ManualClock()
    store = sessid.Store(ttl=ttl, clock=clock)
    assert store.ttl == ttl.total_seconds()
    first = drive.get(store, GOOD)
    clock.advance(ttl.total_seconds() - 0.25)
    assert drive.get(store, GOOD) == first
    clock.advance(ttl.total_seconds())
    assert drive.get(store, GOOD) != first
    kv_store = sessid.Store(kv=FakeKV(clock=clock), ttl=ttl, clock=clock, refresh_after=ttl / 2)
    assert kv_store.refresh_after == ttl.total_seconds() / 2


@LOCAL_DRIVES
def test_the_largest_settings_are_taken(drive):
    store = sessid.Store(ttl=sessid._sessid.TTL_MAX, max_entries=2**30)
    assert store.ttl == 1e9 and store.max_entries == 2**30
    assert is_uuid4(drive.get(store, GOOD))


class Clock:
    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        value = self.readings.pop(0)
        if isinstance(value, BaseException):
            raise value
        return value


@pytest.mark.parametrize(
    "reading, error",
    [(RuntimeError("broken"), RuntimeError), (KeyboardInterrupt(), KeyboardInterrupt),
     ("12", TypeError), (None, TypeError), (b"1", TypeError), (math.nan, ValueError),
     (math.inf, ValueError), (10**400, OverflowError)],
    ids=["raises", "interrupt", "str", "none", "bytes", "nan", "inf", "huge-int"],
)
@pytest.mark.parametrize("drive, mode", DRIVES_AND_STORES, indirect=["drive"])
def test_a_bad_clock_reading_raises_and_the_next_good_one_works(drive, reading, error, mode):
    kv = drive.kv() if mode == "kv" else None
    store = sessid.Store(kv=kv, clock=Clock(1000.0, reading, 1001.0, 1002.0))
    first = drive.get(store, GOOD)
    with pytest.raises(error):
        drive.get(store, GOOD)
    assert drive.get(store, GOOD) == first
    assert drive.get_required(store, GOOD) == first
    assert store.stats()["kv_errors"] == 0


@LOCAL_DRIVES
def test_a_clock_that_goes_backwards_stands_still(drive):
    clock = ManualClock(5000)
    store = sessid.Store(ttl=10, clock=clock)
    first = drive.get(store, GOOD)
    for step in range(50):
        clock.now = 5000 - step * 100          # far into the past
        assert drive.get(store, GOOD) == first
    clock.now = 5009.9
    assert drive.get(store, GOOD) == first      # renewed at 5000 (the latest time seen)
    clock.now = 5020
    assert drive.get(store, GOOD) != first


@LOCAL_DRIVES
def test_an_int_clock_works(drive):
    ticks = iter(range(10**6))
    store = sessid.Store(ttl=5, clock=lambda: next(ticks))
    first = drive.get(store, GOOD)
    assert drive.get(store, GOOD) == first      # t=1, renewed to 6
    for _ in range(10):
        next(ticks)
    assert drive.get(store, GOOD) != first
