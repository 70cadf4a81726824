"""Bad input, one row per case: the documented exception, and a store that still works afterwards."""

import math
from datetime import timedelta

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import FakeKV, ManualClock

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


@pytest.fixture(params=["local", "kv"])
def store(request):
    clock = ManualClock()
    kv = FakeKV(clock=clock) if request.param == "kv" else None
    return sessid.Store(kv=kv, clock=clock)


def still_works(store):
    first = store.get_required(GOOD)
    assert is_uuid4(first) and store.get(GOOD) == first


@pytest.mark.parametrize("key", WRONG_TYPES, ids=lambda k: type(k).__name__)
@pytest.mark.parametrize("method", ["get", "get_required", "key_for"])
def test_wrong_key_types_raise_type_error(store, method, key):
    with pytest.raises(TypeError, match="api_key must be str or a bytes-like object"):
        getattr(store, method)(key)
    still_works(store)


@pytest.mark.parametrize("key", ["\udc80", "ok\ud800", "\udfff" * 3], ids=["alone", "trailing", "many"])
def test_lone_surrogates_raise_unicode_encode_error(store, key):
    with pytest.raises(UnicodeEncodeError):
        store.get(key)
    with pytest.raises(UnicodeEncodeError):
        store.get_required(key)
    still_works(store)


def test_str_subclass_is_hashed_by_its_characters(store):
    odd = KeyStr(GOOD)
    assert store.get(odd) == store.get(GOOD)
    assert store.key_for(odd) == store.key_for(GOOD)


@pytest.mark.parametrize("key", ["\x00", "a\x00b", b"\x00\x00", "\x00" * 100])
def test_nul_bytes_are_part_of_the_key(store, key):
    first = store.get(key)
    assert is_uuid4(first) and store.get(key) == first
    assert store.get(key + key[:1]) != first


def test_a_ten_megabyte_key(store):
    big = "k" * (10 * 1024 * 1024)
    first = store.get(big)
    assert store.get(big) == first
    assert store.get(big.encode()) == first
    assert store.get(big[:-1] + "x") != first
    still_works(store)


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda b: memoryview(bytearray(b)),
     lambda b: memoryview(b"-" + b)[1:], lambda b: memoryview(bytes(x for c in b for x in (c, 0)))[::2],
     lambda b: memoryview(b).cast("c")],
    ids=["bytes", "bytearray", "memoryview", "view-of-bytearray", "sliced", "strided", "cast"],
)
def test_bytes_like_keys_agree_with_the_str(store, make):
    assert store.get(make(GOOD.encode())) == store.get(GOOD)


def test_multidimensional_and_typed_buffers_hash_their_bytes(store):
    import array

    numbers = array.array("I", [1, 2, 3])
    assert store.get(numbers) == store.get(numbers.tobytes())
    grid = memoryview(bytes(range(12))).cast("B", (3, 4))
    assert store.get(grid) == store.get(bytes(range(12)))


def test_a_bytearray_mutated_between_calls_is_a_new_key(store):
    key = bytearray(GOOD.encode())
    first = store.get(key)
    key[0] ^= 1
    assert store.get(key) != first
    key[0] ^= 1
    assert store.get(key) == first


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


@pytest.mark.parametrize("ttl", [timedelta(minutes=30), timedelta(seconds=1.5), timedelta(days=365)])
def test_ttl_and_refresh_after_take_a_timedelta(ttl):
    clock = ManualClock()
    store = sessid.Store(ttl=ttl, clock=clock)
    assert store.ttl == ttl.total_seconds()
    first = store.get(GOOD)
    clock.advance(ttl.total_seconds() - 0.25)
    assert store.get(GOOD) == first
    clock.advance(ttl.total_seconds())
    assert store.get(GOOD) != first
    kv_store = sessid.Store(kv=FakeKV(clock=clock), ttl=ttl, clock=clock, refresh_after=ttl / 2)
    assert kv_store.refresh_after == ttl.total_seconds() / 2


def test_the_largest_settings_are_taken():
    store = sessid.Store(ttl=sessid._sessid.TTL_MAX, max_entries=2**30)
    assert store.ttl == 1e9 and store.max_entries == 2**30
    assert is_uuid4(store.get(GOOD))


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
@pytest.mark.parametrize("mode", ["local", "kv"])
def test_a_bad_clock_reading_raises_and_the_next_good_one_works(reading, error, mode):
    kv = FakeKV() if mode == "kv" else None
    store = sessid.Store(kv=kv, clock=Clock(1000.0, reading, 1001.0, 1002.0))
    first = store.get(GOOD)
    with pytest.raises(error):
        store.get(GOOD)
    assert store.get(GOOD) == first
    assert store.get_required(GOOD) == first


def test_a_clock_that_goes_backwards_stands_still():
    clock = ManualClock(5000)
    store = sessid.Store(ttl=10, clock=clock)
    first = store.get(GOOD)
    for step in range(50):
        clock.now = 5000 - step * 100          # far into the past
        assert store.get(GOOD) == first
    clock.now = 5009.9
    assert store.get(GOOD) == first             # renewed at 5000 (the latest time seen)
    clock.now = 5020
    assert store.get(GOOD) != first


def test_an_int_clock_works():
    ticks = iter(range(10**6))
    store = sessid.Store(ttl=5, clock=lambda: next(ticks))
    first = store.get(GOOD)
    assert store.get(GOOD) == first             # t=1, renewed to 6
    for _ in range(10):
        next(ticks)
    assert store.get(GOOD) != first
