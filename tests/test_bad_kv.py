"""A misbehaving KV, one row per way it can misbehave. For each: what get and get_required do, and
that the next call with a healthy KV works.

Every row runs through each driver (the `drive` fixture): get/get_required with a synchronous KV,
aget/aget_required with a KV whose methods are coroutines (whose misbehaviour shows when the call is
awaited, as with redis.asyncio), and aget/aget_required with a synchronous KV."""

import asyncio
import threading
import time

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import AsyncFakeKV, FakeKV, ManualClock, ResponseError

KEY = "sk-ant-api03-key"
STORED = "01234567-89ab-4def-8012-3456789abcde"


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


class AsyncScripted(AsyncFakeKV):
    """Scripted with coroutine methods: calling one only makes a coroutine, and the misbehaviour
    (an exception, a reply of the wrong type) comes out when it is awaited."""

    def __init__(self, **options):
        super().__init__(**options)
        self.replies = {}

    async def _misbehave(self, method, real, *args, **kwargs):
        await asyncio.sleep(0)                 # the round trip, before the reply
        behaviour = self.replies.get(method)
        if behaviour is None:
            return await real(*args, **kwargs)
        if not getattr(behaviour, "raises", False):
            await real(*args, **kwargs)
        return behaviour()

    async def get(self, name):
        return await self._misbehave("get", super().get, name)

    async def getex(self, name, ex=None, **options):
        return await self._misbehave("getex", super().getex, name, ex=ex, **options)

    async def set(self, name, value, **options):
        return await self._misbehave("set", super().set, name, value, **options)

    async def expire(self, name, time):
        return await self._misbehave("expire", super().expire, name, time)


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
    "ResponseError-other": ResponseError("NOAUTH Authentication required."),
    "exception-with-bad-str": type("BadStr", (Exception,), {"__str__": lambda self: 1 / 0})(),
}
FATAL = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "GeneratorExit": GeneratorExit,
    "CancelledError": asyncio.CancelledError,      # what redis.asyncio raises in a cancelled task
    "own-BaseException": type("Shutdown", (BaseException,), {}),
}


def scripted(drive, **options):
    return drive.kv_class(Scripted, AsyncScripted)(**options)


def modern_store(drive, **options):
    clock = ManualClock()
    kv = scripted(drive, clock=clock)
    return sessid.Store(kv=kv, clock=clock, **options), kv


def used_methods(kind):
    """The methods a hit and a miss call, with the modern protocol."""
    return ["getex"] if kind == "hit" else ["getex", "set"]


def prepare(store, kv, kind):
    if kind == "hit":
        kv.store(store.key_for(KEY), STORED)


def heal_and_check(drive, store, kv):
    """The next calls with a healthy KV work, and count no KV error."""
    getattr(kv, "replies", {}).clear()
    kv.heal()
    errors = store.stats()["kv_errors"]
    first = drive.get_required(store, KEY)
    assert is_uuid4(first) or first == STORED
    assert drive.get(store, KEY) == first
    assert store.stats()["kv_errors"] == errors


@pytest.mark.parametrize("kind", ["hit", "miss"])
@pytest.mark.parametrize("name", EXCEPTIONS)
def test_each_method_raising(drive, name, kind):
    for method in used_methods(kind):
        store, kv = modern_store(drive)
        prepare(store, kv, kind)
        kv.replies[method] = raising(EXCEPTIONS[name])
        assert is_uuid4(drive.get(store, KEY))
        assert store.stats()["kv_errors"] == 1
        with pytest.raises(sessid.KVError) as info:
            drive.get_required(store, KEY)
        assert info.value.__cause__ is EXCEPTIONS[name]
        assert f"kv.{method}() raised {type(EXCEPTIONS[name]).__name__}" in str(info.value)
        assert store.stats()["kv_errors"] == 2
        heal_and_check(drive, store, kv)


@pytest.mark.parametrize("on_kv_error", ["random", "local"])
@pytest.mark.parametrize("name", FATAL)
@pytest.mark.parametrize("method", ["getex", "set"])
def test_base_exceptions_propagate_from_both(drive, name, method, on_kv_error):
    """Never swallowed, not even by the local fallback, and not counted as a KV error."""
    store, kv = modern_store(drive, on_kv_error=on_kv_error)
    kv.replies[method] = raising(FATAL[name]())
    with pytest.raises(FATAL[name]):
        drive.get(store, KEY)
    with pytest.raises(FATAL[name]):
        drive.get_required(store, KEY)
    assert store.stats()["kv_errors"] == 0
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("name", WRONG_REPLIES)
@pytest.mark.parametrize("method", ["get", "getex"])
def test_reads_returning_the_wrong_type(drive, name, method):
    clock = ManualClock()
    kv = scripted(drive, clock=clock, has_getex=method == "getex")
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies[method] = returning(WRONG_REPLIES[name])
    with pytest.raises(sessid.KVError, match="returned .*expected bytes, str or None") as info:
        drive.get_required(store, KEY)
    assert info.value.__cause__ is None           # the KV raised nothing
    assert store.stats()["kv_errors"] == 1
    assert is_uuid4(drive.get(store, KEY))
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("name", WRONG_REPLIES)
def test_set_get_returning_the_wrong_type(drive, name):
    store, kv = modern_store(drive)
    kv.replies["set"] = returning(WRONG_REPLIES[name])
    if name == "bool-true":          # a client that ignored get=True: read back instead
        assert is_uuid4(drive.get_required(store, KEY))
        return
    with pytest.raises(sessid.KVError, match="kv.set\\(\\) returned"):
        drive.get_required(store, KEY)
    assert store.stats()["kv_errors"] == 1
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("name", list(WRONG_REPLIES) + ["none"])
@pytest.mark.parametrize("method", ["expire", "plain-set"])
def test_writes_whose_reply_does_not_matter(drive, name, method):
    """EXPIRE's and SET NX's replies are not used (the read-back decides), whatever they are."""
    clock = ManualClock()
    kv = scripted(drive, clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies["expire" if method == "expire" else "set"] = returning(WRONG_REPLIES.get(name))
    first = drive.get_required(store, KEY)
    assert drive.get_required(store, KEY) == first


@pytest.mark.parametrize("name", BAD_VALUES)
@pytest.mark.parametrize("method", ["get", "getex", "set"])
def test_values_that_are_not_session_ids(drive, name, method):
    clock = ManualClock()
    kv = scripted(drive, clock=clock, has_getex=method != "get")
    store = sessid.Store(kv=kv, clock=clock)
    kv.replies[method] = returning(BAD_VALUES[name])
    # The value is damage: the call replaces it, unless the KV keeps answering damage.
    try:
        answer = drive.get_required(store, KEY)
    except sessid.KVError as error:
        assert "not a session id" in str(error)
    else:
        assert is_uuid4(answer)
    assert is_uuid4(drive.get(store, KEY))
    heal_and_check(drive, store, kv)


def test_a_kv_that_loses_the_value_after_set(drive):
    """With the read-back protocol, a set that stored nothing is seen by the read back."""
    clock = ManualClock()
    kv = drive.kv(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    kv.set_persists = False
    assert is_uuid4(drive.get(store, KEY))
    with pytest.raises(sessid.KVError, match="session id missing after set") as info:
        drive.get_required(store, KEY)
    assert info.value.__cause__ is None
    assert store.stats()["kv_errors"] == 2
    kv.set_persists = True
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("method", ["get", "set", "expire"])
def test_a_method_that_disappears(drive, method):
    clock = ManualClock()
    kv = drive.kv(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    drive.get_required(store, KEY)
    setattr(kv, method, None)              # now not callable
    with pytest.raises(sessid.KVError, match="TypeError") as info:
        drive.get_required(store, KEY if method != "set" else "another")
    assert isinstance(info.value.__cause__, TypeError)
    assert store.stats()["kv_errors"] == 1
    object.__delattr__(kv, method)         # back to the class's method
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("method", ["get", "set", "expire"])
def test_a_command_the_server_stops_knowing(drive, method):
    """Only an optional command falls back when the server does not know it; for one of the
    protocol's own it is a failure of the call (the error comes when awaited, with an asyncio KV)."""
    clock = ManualClock()
    kv = scripted(drive, clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    drive.get_required(store, KEY)
    unknown = ResponseError(f"ERR unknown command '{method}', with args beginning with: ")
    kv.replies[method] = raising(unknown)
    with pytest.raises(sessid.KVError, match="ResponseError") as info:
        drive.get_required(store, KEY if method != "set" else "another")
    assert info.value.__cause__ is unknown
    assert store.stats()["kv_errors"] == 1
    heal_and_check(drive, store, kv)


@pytest.mark.parametrize("how", ["attribute-error", "unknown-command"])
def test_getex_that_disappears_is_a_lacking_client(drive, how):
    clock = ManualClock()
    Shifting = type("Shifting", (drive.kv_class(Scripted, AsyncScripted),), {})
    kv = Shifting(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = drive.get_required(store, KEY)
    if how == "attribute-error":           # the client no longer has the method
        Shifting.getex = property(lambda self: (_ for _ in ()).throw(AttributeError("getex")))
    else:                                  # the server (or a proxy) no longer knows the command
        kv.replies["getex"] = raising(ResponseError("ERR unknown command 'getex'"))
    assert drive.get_required(store, KEY) == first   # the client lacks it: fall back
    assert kv.calls["get"] == 1 and kv.calls["expire"] == 1
    assert store.stats()["kv_errors"] == 0


@pytest.mark.parametrize("what", ["clear", "purge", "len", "stats", "get-other", "key_for"])
def test_a_kv_that_uses_the_store_from_inside_a_call(drive, what):
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

    class AsyncMeddling(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            if what == "get-other":
                await store.aget("other")
            else:
                actions[what](store)
            return await super().getex(name, ex=ex, **options)

    kv = drive.kv_class(Meddling, AsyncMeddling)(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, refresh_after=1, on_kv_error="local")
    first = drive.get_required(store, KEY)
    clock.advance(2)
    assert drive.get_required(store, KEY) == first


def test_a_kv_that_drops_the_last_reference_to_the_store(drive):
    holder = {}

    class Dropping(FakeKV):
        def getex(self, name, ex=None, **options):
            holder.clear()                   # the only other reference
            return super().getex(name, ex=ex, **options)

    class AsyncDropping(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            holder.clear()
            return await super().getex(name, ex=ex, **options)

    holder["store"] = sessid.Store(kv=drive.kv_class(Dropping, AsyncDropping)())
    if drive.is_async:
        pending = holder["store"].aget_required(KEY)    # only the coroutine keeps it alive
        assert is_uuid4(asyncio.run(pending))
    else:
        get = holder["store"].get_required     # the bound method keeps it alive, as a caller would
        assert is_uuid4(get(KEY))
        del get
    assert holder == {}                        # the KV did drop it during the call


def test_a_kv_that_replaces_the_default_store_it_is_called_from(drive):
    class Replacing(FakeKV):
        def getex(self, name, ex=None, **options):
            sessid.set_default_store(sessid.Store())    # drops the store that called us
            return super().getex(name, ex=ex, **options)

    class AsyncReplacing(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            sessid.set_default_store(sessid.Store())
            return await super().getex(name, ex=ex, **options)

    sessid.set_default_store(sessid.Store(kv=drive.kv_class(Replacing, AsyncReplacing)()))
    assert is_uuid4(drive.get_required(sessid, KEY))
    assert sessid.default_store().kv is None


def test_a_kv_that_blocks_while_other_threads_use_the_store(drive):
    """A lookup waiting on a slow KV holds no lock: lookups in other threads go on meanwhile."""
    release = threading.Event()
    entered = threading.Event()

    class Blocking(FakeKV):
        def getex(self, name, ex=None, **options):
            if name.endswith(self.slow_suffix):
                entered.set()
                release.wait(30)
            return super().getex(name, ex=ex, **options)

    class AsyncBlocking(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            if name.endswith(self.slow_suffix):
                entered.set()
                await asyncio.to_thread(release.wait, 30)
            return await super().getex(name, ex=ex, **options)

    kv = drive.kv_class(Blocking, AsyncBlocking)()
    store = sessid.Store(kv=kv, refresh_after=60)
    kv.slow_suffix = store.key_for("slow")[-8:]
    slow = threading.Thread(target=drive.get, args=(store, "slow"))
    slow.start()
    try:
        assert entered.wait(10)
        started = time.monotonic()
        ids = [drive.get_required(store, f"fast-{i % 20}") for i in range(500)]
        assert time.monotonic() - started < 10
        assert all(is_uuid4(i) for i in ids)
    finally:
        release.set()
        slow.join(10)
    assert not slow.is_alive()


def test_a_slow_aget_does_not_hold_up_other_tasks():
    """Single driver (aget): the asyncio form of the row above, where the lookups share one loop."""
    release = asyncio.Event()

    class Slow(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            if name == store.key_for("slow"):
                await release.wait()
            return await super().getex(name, ex=ex, **options)

    store = sessid.Store(kv=Slow())

    async def main():
        slow = asyncio.create_task(store.aget_required("slow"))
        await asyncio.sleep(0)
        fast = await asyncio.wait_for(
            asyncio.gather(*(store.aget_required(f"fast-{i % 20}") for i in range(100))), 10)
        assert not slow.done()
        release.set()
        return fast, await slow

    fast, slow = asyncio.run(main())
    assert all(is_uuid4(i) for i in fast + [slow])


def test_an_old_client_and_old_server_in_every_combination(drive):
    for version in [(5, 0), (6, 0), (6, 2), (7, 0), (7, 2)]:
        for has_getex in (True, False):
            for has_set_get in (True, False):
                clock = ManualClock()
                kv = drive.kv(clock=clock, server_version=version, has_getex=has_getex,
                              has_set_get=has_set_get)
                store = sessid.Store(kv=kv, clock=clock)
                first = drive.get_required(store, KEY)
                store.clear()
                assert drive.get_required(store, KEY) == first
                assert drive.get_required(store, "other") != first


def test_an_asyncio_kv_given_to_get_is_a_type_error():
    """Single driver (get): get cannot await, so a coroutine reply is refused, and closed, so that no
    'never awaited' warning follows (warnings are errors here). It is a programming error: a
    TypeError at once, from get as from get_required and forget, counted as no KV error."""
    clock = ManualClock()
    kv = AsyncFakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    for call in (store.get, store.get_required, store.forget):
        with pytest.raises(TypeError, match="asyncio client.*use aget\\(\\)"):
            call(KEY)
    assert store.stats()["kv_errors"] == 0 and store.stats()["kv_skipped"] == 0
    assert asyncio.run(store.aget_required(KEY)) == asyncio.run(store.aget(KEY))


def test_an_awaited_reply_that_is_itself_awaitable_is_a_kv_error():
    """Single driver (aget): only aget awaits a reply. What the await gives must be the value; a
    second awaitable is not awaited again, but refused and closed."""
    clock = ManualClock()

    class Nested(AsyncFakeKV):
        async def getex(self, name, ex=None, **options):
            return super().getex(name, ex=ex, **options)      # a coroutine, not its value

    store = sessid.Store(kv=Nested(clock=clock), clock=clock, kv_backoff=0)
    with pytest.raises(sessid.KVError, match="kv.getex\\(\\) returned an awaitable whose result is another"):
        asyncio.run(store.aget_required(KEY))
    assert is_uuid4(asyncio.run(store.aget(KEY)))
    assert store.stats()["kv_errors"] == 2
