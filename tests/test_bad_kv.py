"""A misbehaving KV, one row per way it can misbehave. For each: what get and get_required do, and
that the next call with a healthy KV works."""

import threading
import time

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import FakeKV, ManualClock, ResponseError

KEY = "sk-ant-api03-key"


class Scripted(FakeKV):
    """A FakeKV whose methods can be replaced by a misbehaviour until healed."""

    def __init__(self, **options):
        super().__init__(**options)
        self.replies = {}

    def _misbehave(self, method, real, *args, **kwargs):
        behaviour = self.replies.get(method)
        if behaviour is None:
            return real(*args, **kwargs)
        if not getattr(behaviour, "raises", False):
            real(*args, **kwargs)              # the call still reaches the store
        return behaviour()

    def get(self, name):
        return self._misbehave("get", super().get, name)

    def getex(self, name, ex=None, **options):
        return self._misbehave("getex", super().getex, name, ex=ex, **options)

    def set(self, name, value, **options):
        return self._misbehave("set", super().set, name, value, **options)

    def expire(self, name, time):
        return self._misbehave("expire", super().expire, name, time)


def raising(error):
    def behave():
        raise error

    behave.raises = True
    return behave


def returning(value):
    return lambda: value


WRONG_REPLIES = {
    "int": 42, "float": 1.5, "bool-true": True, "list": [b"x"], "dict": {"v": 1}, "object": object(),
    "bytearray": bytearray(b"01234567-89ab-4def-8012-3456789abcde"),
    "memoryview": memoryview(b"01234567-89ab-4def-8012-3456789abcde"),
}
BAD_VALUES = {
    "huge": b"x" * (64 * 1024 * 1024),
    "huge-blank": b" " * (8 * 1024 * 1024),
    "non-utf8": b"\xff\xfe\xfd",
    "embedded-nul": b"0123\x004567",
    "nul-only": b"\x00",
    "control": b"abc\x07",
    "non-ascii-str": "s\u00e9ssion",
    "surrogate-str": "ab\udc80",
    "129-chars": b"a" * 129,
}
EXCEPTIONS = {
    "ConnectionError": ConnectionError("down"),
    "TimeoutError": TimeoutError("slow"),
    "ValueError": ValueError("odd"),
    "RuntimeError": RuntimeError("oops"),
    "MemoryError": MemoryError(),
    "RecursionError": RecursionError(),
    "ResponseError-other": ResponseError("WRONGTYPE Operation against a key"),
    "exception-with-bad-str": type("BadStr", (Exception,), {"__str__": lambda self: 1 / 0})(),
}
FATAL = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit,
}


def modern_store(**options):
    clock = ManualClock()
    kv = Scripted(clock=clock)
    return sessid.Store(kv=kv, clock=clock, **options), kv


def used_methods(kind):
    """The methods a hit and a miss call, with the modern protocol."""
    return ["getex"] if kind == "hit" else ["getex", "set"]


def prepare(store, kv, kind):
    if kind == "hit":
        kv.store(store.key_for(KEY), "01234567-89ab-4def-8012-3456789abcde")


def heal_and_check(store, kv):
    getattr(kv, "replies", {}).clear()
    kv.heal()
    first = store.get_required(KEY)
    assert is_uuid4(first) or first == "01234567-89ab-4def-8012-3456789abcde"
    assert store.get(KEY) == first


@pytest.mark.parametrize("kind", ["hit", "miss"])
@pytest.mark.parametrize("name", EXCEPTIONS)
def test_each_method_raising(name, kind):
    for method in used_methods(kind):
        store, kv = modern_store()
        prepare(store, kv, kind)
        kv.replies[method] = raising(EXCEPTIONS[name])
        with pytest.raises(sessid.KVError) as info:
            store.get_required(KEY)
        assert info.value.__cause__ is EXCEPTIONS[name]
        assert is_uuid4(store.get(KEY))
        heal_and_check(store, kv)


@pytest.mark.parametrize("name", FATAL)
@pytest.mark.parametrize("method", ["getex", "set"])
def test_base_exceptions_propagate_from_both(name, method):
    store, kv = modern_store()
    kv.replies[method] = raising(FATAL[name]())
    with pytest.raises(FATAL[name]):
        store.get(KEY)
    with pytest.raises(FATAL[name]):
        store.get_required(KEY)
    assert store.stats()["kv_errors"] == 0
    heal_and_check(store, kv)


@pytest.mark.parametrize("name", WRONG_REPLIES)
@pytest.mark.parametrize("method", ["get", "getex"])
def test_reads_returning_the_wrong_type(name, method):
    clock = ManualClock()
    kv = Scripted(clock=clock, has_getex=method == "getex")
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies[method] = returning(WRONG_REPLIES[name])
    with pytest.raises(sessid.KVError, match="returned .*expected bytes, str or None"):
        store.get_required(KEY)
    assert is_uuid4(store.get(KEY))
    heal_and_check(store, kv)


@pytest.mark.parametrize("name", WRONG_REPLIES)
def test_set_get_returning_the_wrong_type(name):
    store, kv = modern_store()
    kv.replies["set"] = returning(WRONG_REPLIES[name])
    if name == "bool-true":          # a client that ignored get=True: read back instead
        assert is_uuid4(store.get_required(KEY))
        return
    with pytest.raises(sessid.KVError, match="kv.set\\(\\) returned"):
        store.get_required(KEY)
    heal_and_check(store, kv)


@pytest.mark.parametrize("name", list(WRONG_REPLIES) + ["none"])
@pytest.mark.parametrize("method", ["expire", "plain-set"])
def test_writes_whose_reply_does_not_matter(name, method):
    """EXPIRE's and SET NX's replies are not used (the read-back decides), whatever they are."""
    clock = ManualClock()
    kv = Scripted(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies["expire" if method == "expire" else "set"] = returning(WRONG_REPLIES.get(name))
    first = store.get_required(KEY)
    assert store.get_required(KEY) == first


@pytest.mark.parametrize("name", BAD_VALUES)
@pytest.mark.parametrize("method", ["get", "getex", "set"])
def test_values_that_are_not_session_ids(name, method):
    clock = ManualClock()
    kv = Scripted(clock=clock, has_getex=method != "get")
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies[method] = returning(BAD_VALUES[name])
    if name == "huge-blank" and method != "set":
        # blank counts as absent: a new id is set, and read back through the healthy path
        assert is_uuid4(store.get_required(KEY))
        return
    with pytest.raises(sessid.KVError, match="not a session id|missing after set"):
        store.get_required(KEY)
    assert is_uuid4(store.get(KEY))
    heal_and_check(store, kv)


@pytest.mark.parametrize("method", ["get", "set", "expire"])
def test_a_method_that_disappears(method):
    clock = ManualClock()
    kv = FakeKV(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    store.get_required(KEY)
    setattr(kv, method, None)              # now not callable
    with pytest.raises(sessid.KVError, match="TypeError"):
        store.get_required(KEY if method != "set" else "another")
    object.__delattr__(kv, method)         # back to the class's method
    heal_and_check(store, kv)


def test_getex_that_disappears_is_a_lacking_client():
    clock = ManualClock()

    class Shifting(FakeKV):
        pass

    kv = Shifting(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    Shifting.getex = property(lambda self: (_ for _ in ()).throw(AttributeError("getex")))
    assert store.get_required(KEY) == first   # AttributeError: the client lacks it, fall back
    assert kv.calls["get"] == 1 and kv.calls["expire"] == 1


@pytest.mark.parametrize("what", ["clear", "purge", "len", "stats", "get-other", "key_for"])
def test_a_kv_that_uses_the_store_from_inside_a_call(what):
    clock = ManualClock()
    actions = {
        "clear": lambda s: s.clear(), "purge": lambda s: s.purge(), "len": len,
        "stats": lambda s: s.stats(), "get-other": lambda s: s.get("other"),
        "key_for": lambda s: s.key_for(KEY),
    }

    class Meddling(FakeKV):
        def getex(self, name, ex=None, **options):
            actions[what](store)
            return super().getex(name, ex=ex, **options)

    kv = Meddling(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, refresh_after=1, on_kv_error="local")
    first = store.get_required(KEY)
    clock.advance(2)
    assert store.get_required(KEY) == first


def test_a_kv_that_drops_the_last_reference_to_the_store():
    holder = {}

    class Dropping(FakeKV):
        def getex(self, name, ex=None, **options):
            holder.clear()                   # the only other reference
            return super().getex(name, ex=ex, **options)

    holder["store"] = sessid.Store(kv=Dropping())
    get = holder["store"].get_required     # the bound method keeps it alive, as a caller would
    assert is_uuid4(get(KEY))
    del get


def test_a_kv_that_replaces_the_default_store_it_is_called_from():
    class Replacing(FakeKV):
        def getex(self, name, ex=None, **options):
            sessid.set_default_store(sessid.Store())    # drops the store that called us
            return super().getex(name, ex=ex, **options)

    sessid.set_default_store(sessid.Store(kv=Replacing()))
    assert is_uuid4(sessid.get_required(KEY))
    assert sessid.default_store().kv is None


def test_a_kv_that_blocks_while_other_threads_use_the_store():
    release = threading.Event()
    entered = threading.Event()

    class Blocking(FakeKV):
        def getex(self, name, ex=None, **options):
            if name.endswith(self.slow_suffix):
                entered.set()
                release.wait(30)
            return super().getex(name, ex=ex, **options)

    kv = Blocking()
    store = sessid.Store(kv=kv, refresh_after=60)
    kv.slow_suffix = store.key_for("slow")[-8:]
    slow = threading.Thread(target=store.get, args=("slow",))
    slow.start()
    assert entered.wait(10)
    started = time.monotonic()
    ids = [store.get_required(f"fast-{i % 20}") for i in range(500)]
    assert time.monotonic() - started < 10
    assert all(is_uuid4(i) for i in ids)
    release.set()
    slow.join(10)
    assert not slow.is_alive()


def test_an_old_client_and_old_server_in_every_combination():
    for version in [(5, 0), (6, 0), (6, 2), (7, 0), (7, 2)]:
        for has_getex in (True, False):
            for has_set_get in (True, False):
                clock = ManualClock()
                kv = FakeKV(clock=clock, server_version=version, has_getex=has_getex,
                            has_set_get=has_set_get)
                store = sessid.Store(kv=kv, clock=clock)
                first = store.get_required(KEY)
                store.clear()
                assert store.get_required(KEY) == first
                assert store.get_required("other") != first
