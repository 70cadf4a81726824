"""KV mode with the fake redis-py client: the reference implementation's behaviours and more."""

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import FakeKV, ResponseError

KEY = "api-key-1"


@pytest.fixture(params=["modern", "reference"])
def any_kv(request, kv, reference_kv):
    """Every protocol test runs against both a current server and one with the plain commands."""
    return kv if request.param == "modern" else reference_kv


def test_same_key_reuses_its_id_from_the_kv_after_local_state_is_cleared(kv, clock):
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    store.clear()
    second = store.get_required(KEY)
    assert first == second and is_uuid4(first)
    assert kv.calls["set"] == 1 and kv.last_ttl["set"] == 3600
    assert kv.calls["getex"] == 2 and kv.last_ttl["getex"] == 3600   # the refresh of the hit
    assert kv.value(store.key_for(KEY)) == first.encode()


def test_reference_protocol_counts(reference_kv, clock):
    """The reference implementation's own test: one SET NX with an hour, one EXPIRE with an hour."""
    store = sessid.Store(kv=reference_kv, clock=clock)
    first = store.get_required(KEY)
    store.clear()
    assert store.get_required(KEY) == first
    assert reference_kv.calls["set"] == 1 and reference_kv.last_ttl["set"] == 3600
    assert reference_kv.calls["expire"] == 1 and reference_kv.last_ttl["expire"] == 3600
    assert reference_kv.calls["get"] == 3                            # miss: GET, read-back GET; hit: GET


def test_round_trips_hit_one_miss_two(kv, clock):
    store = sessid.Store(kv=kv, clock=clock)
    store.get(KEY)
    assert [c[0] for c in kv.commands] == ["getex", "set"]
    assert kv.commands[1][3] == {"ex": 3600, "nx": True, "get": True}
    kv.commands.clear()
    store.get(KEY)
    assert [c[0] for c in kv.commands] == ["getex"]


def test_empty_key_makes_zero_kv_calls(any_kv, clock):
    store = sessid.Store(kv=any_kv, clock=clock)
    assert is_uuid4(store.get_required(""))
    assert is_uuid4(store.get(b""))
    assert sum(any_kv.calls.values()) == 0


@pytest.mark.parametrize("method", ["get", "getex", "set", "expire"])
def test_a_failing_kv_method_is_a_kv_error_or_a_fresh_id(method, any_kv, clock):
    store = sessid.Store(kv=any_kv, clock=clock, kv_backoff=0)     # every call asks the KV
    if method == "expire":
        any_kv.store(store.key_for(KEY), "01234567-89ab-4def-8012-3456789abcde")
    used = method in ("getex", "set") if any_kv.getex is not None else method in ("get", "set", "expire")
    boom = ConnectionError(f"{method} is down")
    any_kv.fail(method, boom)
    if not used:
        assert is_uuid4(store.get_required(KEY))
        return
    with pytest.raises(sessid.KVError, match=f"kv.{method}\\(\\) raised ConnectionError") as info:
        store.get_required(KEY)
    assert info.value.__cause__ is boom
    assert isinstance(info.value, sessid.Error)
    fallback = store.get(KEY)
    assert is_uuid4(fallback) and fallback != store.get(KEY)        # a fresh id each time
    assert store.stats()["kv_errors"] == 3
    any_kv.heal()
    assert store.get(KEY) == store.get_required(KEY)


def test_a_set_that_does_not_persist_is_missing_after_set(reference_kv, clock):
    store = sessid.Store(kv=reference_kv, clock=clock)
    reference_kv.set_persists = False
    with pytest.raises(sessid.KVError, match="missing after set") as info:
        store.get_required(KEY)
    assert info.value.__cause__ is None
    assert is_uuid4(store.get(KEY))


def test_a_race_winner_is_returned_instead_of_our_id(kv, clock):
    class Racing(FakeKV):
        def getex(self, name, ex=None, **options):
            result = super().getex(name, ex=ex, **options)
            other.store(name, "ffffffff-ffff-4fff-bfff-ffffffffffff")   # another worker wins
            return result

    other = Racing(clock=clock)
    store = sessid.Store(kv=other, clock=clock)
    assert store.get_required(KEY) == "ffffffff-ffff-4fff-bfff-ffffffffffff"
    assert store.stats() == {"hits": 1, "misses": 0, "expired": 0, "evicted": 0, "kv_errors": 0,
                             "kv_skipped": 0, "kv_fallbacks": 0, "kv_repaired": 0,
                             "lock_timeouts": 0, "lock_repairs": 0}


@pytest.mark.parametrize(
    "stored, expected",
    [
        (b"  01234567-89ab-4def-8012-3456789abcde\r\n", "01234567-89ab-4def-8012-3456789abcde"),
        ("\t01234567-89ab-4def-8012-3456789abcde ", "01234567-89ab-4def-8012-3456789abcde"),
        (b"01234567-89AB-4DEF-8012-3456789ABCDE", "01234567-89ab-4def-8012-3456789abcde"),
    ],
)
def test_values_are_stripped_and_taken_as_bytes_or_str(stored, expected, clock):
    for decode in (False, True):
        kv = FakeKV(clock=clock, decode_responses=decode)
        store = sessid.Store(kv=kv, clock=clock)
        kv.store(store.key_for(KEY), stored)
        assert store.get_required(KEY) == expected


@pytest.mark.parametrize(
    "value",
    [b"   ", b"", b"has space", b"\xff\xfe", "caf\u00e9", b"nul\x00byte", b"x" * 129, b"custom-session-id",
     b"42", b"01234567-89ab-1def-8012-3456789abcde"],
)
def test_a_value_that_is_not_a_session_id_is_replaced(value, any_kv, clock):
    """Damage under the key: the first call sets a new id in its place, which every call then finds."""
    store = sessid.Store(kv=any_kv, clock=clock)
    any_kv.store(store.key_for(KEY), value)
    first = store.get_required(KEY)
    assert is_uuid4(first)
    assert any_kv.value(store.key_for(KEY)) == first.encode()
    assert store.get(KEY) == first and store.stats()["kv_repaired"] == 1


@pytest.mark.parametrize("reply", [1, 2.5, [b"x"], {"v": 1}, object()])
def test_a_reply_of_the_wrong_type_is_a_kv_error(reply, clock):
    class Odd(FakeKV):
        def get(self, name):
            super().get(name)
            return reply

        getex = None

    store = sessid.Store(kv=Odd(clock=clock), clock=clock)
    with pytest.raises(sessid.KVError, match="kv.get\\(\\) returned .*expected bytes, str or None"):
        store.get_required(KEY)
    assert is_uuid4(store.get(KEY))


def test_an_old_server_falls_back_once_and_for_all(clock):
    kv = FakeKV(clock=clock, server_version=(6, 0))
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    assert [c[0] for c in kv.commands] == ["getex", "get", "set", "set", "get"]
    kv.commands.clear()
    assert store.get_required(KEY) == first
    assert store.get_required("other") != first
    assert [c[0] for c in kv.commands] == ["get", "expire", "get", "set", "get"]


def test_redis_6_2_has_getex_but_not_set_nx_get(clock):
    kv = FakeKV(clock=clock, server_version=(6, 2))
    store = sessid.Store(kv=kv, clock=clock)
    store.get_required(KEY)
    store.get_required("other")
    assert [c[0] for c in kv.commands] == ["getex", "set", "set", "get", "getex", "set", "get"]


def test_a_client_without_the_get_keyword_falls_back(clock):
    class OldClient(FakeKV):
        def set(self, name, value, ex=None, nx=False):
            return super().set(name, value, ex=ex, nx=nx)

    kv = OldClient(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    store.clear()
    assert store.get_required(KEY) == first


def test_a_client_that_ignores_get_reads_back(clock):
    class Ignoring(FakeKV):
        def set(self, name, value, ex=None, nx=False, **ignored):
            return super().set(name, value, ex=ex, nx=nx)

    kv = Ignoring(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    assert [c[0] for c in kv.commands] == ["getex", "set", "get"]
    assert store.get_required(KEY) == first


def test_other_server_errors_are_kv_errors_not_fallbacks(clock):
    kv = FakeKV(clock=clock)
    kv.fail("getex", ResponseError("NOAUTH Authentication required."))
    store = sessid.Store(kv=kv, clock=clock)
    with pytest.raises(sessid.KVError, match="NOAUTH"):
        store.get_required(KEY)
    kv.heal()
    store.get_required(KEY)
    assert kv.calls["getex"] == 2 and kv.calls["get"] == 0


def test_ttl_is_sent_in_whole_seconds_rounded_up(clock):
    for ttl, sent in [(0.2, 1), (1.0, 1), (59.01, 60), (3600, 3600)]:
        kv = FakeKV(clock=clock)
        sessid.Store(kv=kv, ttl=ttl, clock=clock).get(KEY)
        assert kv.last_ttl == {"getex": sent, "set": sent}


def test_the_kv_really_expires_and_the_ttl_slides(kv, clock):
    store = sessid.Store(kv=kv, ttl=100, clock=clock)
    first = store.get(KEY)
    for _ in range(3):
        clock.advance(90)
        assert store.get(KEY) == first
        assert kv.ttl(store.key_for(KEY)) == 100
    clock.advance(100)
    assert store.get(KEY) != first


def test_near_cache_answers_locally_while_fresh(kv, clock):
    store = sessid.Store(kv=kv, clock=clock, refresh_after=30)
    first = store.get(KEY)
    calls = sum(kv.calls.values())
    clock.advance(29)
    assert store.get(KEY) == first
    assert sum(kv.calls.values()) == calls
    clock.advance(1)
    assert store.get(KEY) == first
    assert sum(kv.calls.values()) == calls + 1
    assert store.refresh_after == 30.0


def test_near_cache_can_serve_an_id_deleted_elsewhere_until_refresh(kv, clock):
    store = sessid.Store(kv=kv, clock=clock, refresh_after=30)
    first = store.get(KEY)
    kv.delete(store.key_for(KEY))
    clock.advance(10)
    assert store.get(KEY) == first            # the documented trade-off
    clock.advance(20)
    assert store.get(KEY) != first            # asked the KV again: a new id


def test_on_kv_error_local_keeps_one_id_through_an_outage(kv, clock):
    store = sessid.Store(kv=kv, clock=clock, on_kv_error="local")
    first = store.get(KEY)
    kv.fail("getex")
    assert store.get(KEY) == first
    assert store.get("new key during outage") == store.get("new key during outage")
    with pytest.raises(sessid.KVError):
        store.get_required(KEY)
    kv.heal()
    assert store.get_required(KEY) == first
    # the first failure opened the backoff window: the two gets of the new key did not ask the KV
    assert store.stats()["kv_errors"] == 2 and store.stats()["kv_skipped"] == 2


def test_on_kv_error_random_is_the_default(kv, clock):
    store = sessid.Store(kv=kv, clock=clock)
    store.get(KEY)
    kv.fail("getex")
    assert store.on_kv_error == "random"
    assert store.get(KEY) != store.get(KEY)


def test_a_kv_that_calls_back_into_sessid(clock):
    """A KV method that uses another store, the default store and the very store that called it."""
    inner = sessid.Store(clock=clock)

    class Reentrant(FakeKV):
        depth = 0

        def getex(self, name, ex=None, **options):
            self.depth += 1
            try:
                seen.append(inner.get("inner key"))
                seen.append(sessid.get("module key"))
                if self.depth == 1:
                    seen.append(outer.get_required("nested key"))
                return super().getex(name, ex=ex, **options)
            finally:
                self.depth -= 1

    seen = []
    kv = Reentrant(clock=clock)
    outer = sessid.Store(kv=kv, clock=clock)
    first = outer.get_required(KEY)
    assert outer.get_required(KEY) == first
    assert all(is_uuid4(v) for v in seen)
    # per outer call: inner id, module id, then the nested call's inner and module ids, nested id
    assert len(seen) == 10
    assert len({seen[i] for i in (0, 2, 5, 7)}) == 1
    assert len({seen[i] for i in (1, 3, 6, 8)}) == 1
    assert seen[4] == seen[9] == outer.get_required("nested key")


def test_a_kv_that_replaces_the_default_store_during_a_call(clock):
    class Swapping(FakeKV):
        def getex(self, name, ex=None, **options):
            sessid.set_default_store(sessid.Store())
            return super().getex(name, ex=ex, **options)

    sessid.set_default_store(sessid.Store(kv=Swapping(clock=clock), clock=clock))
    assert is_uuid4(sessid.get(KEY))
    assert is_uuid4(sessid.get(KEY))


def test_keyboard_interrupt_from_the_kv_propagates_from_get(kv, clock):
    store = sessid.Store(kv=kv, clock=clock)
    kv.fail("getex", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        store.get(KEY)
    with pytest.raises(KeyboardInterrupt):
        store.get_required(KEY)
    kv.heal()
    assert is_uuid4(store.get_required(KEY))


def test_an_async_client_used_synchronously_is_a_type_error(clock):
    from sessid.testing import AsyncFakeKV

    store = sessid.Store(kv=AsyncFakeKV(clock=clock), clock=clock)
    with pytest.raises(TypeError, match="asyncio client.*use aget"):
        store.get_required(KEY)
    with pytest.raises(TypeError, match="asyncio client.*use aget"):
        store.get(KEY)


def test_cli_proxy_api_key_format():
    store = sessid.Store(kv=FakeKV(), prefix="cpa:claude:session-id:")
    assert store.key_for("sk-fake-key") == (
        "cpa:claude:session-id:" + __import__("hashlib").sha256(b"sk-fake-key").hexdigest()
    )
