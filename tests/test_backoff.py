"""kv_backoff: after a KV failure, best-effort calls leave the KV alone for a while, and the failure
they hide is logged once per window."""

import datetime
import logging
import math

import pytest

import sessid
from conftest import is_uuid4

KEY = "sk-backoff-secret-key"


def failing_store(drive, clock, **options):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, **options)
    return kv, store


def test_best_effort_calls_skip_a_failing_kv_until_the_window_passes(drive, clock):
    kv, store = failing_store(drive, clock)
    kv.fail("getex")
    first = drive.get(store, KEY)
    asked = kv.calls["getex"]
    skipped = [drive.get(store, KEY) for _ in range(5)]
    assert kv.calls["getex"] == asked                   # not asked inside the window
    assert all(is_uuid4(x) for x in skipped) and len({first, *skipped}) == 6
    clock.advance(0.999)
    drive.get(store, KEY)
    assert kv.calls["getex"] == asked
    clock.advance(0.001)                                # 1 s after the failure: ask again
    drive.get(store, KEY)
    assert kv.calls["getex"] == asked + 1
    assert store.stats()["kv_errors"] == 2 and store.stats()["kv_skipped"] == 6


def test_required_calls_always_ask_and_a_success_ends_the_window(drive, clock):
    kv, store = failing_store(drive, clock)
    first = drive.get_required(store, KEY)
    kv.fail("getex")
    assert drive.get(store, KEY) != first
    with pytest.raises(sessid.KVError):
        drive.get_required(store, KEY)                  # inside the window, still asked
    kv.heal()
    assert drive.get_required(store, KEY) == first      # a success ends the window ...
    assert drive.get(store, KEY) == first               # ... so best-effort calls ask again
    assert store.stats()["kv_skipped"] == 0 and kv.calls["getex"] == 5


def test_the_window_starts_when_the_failure_is_known(clock):
    """A KV that takes long to fail (a client's retries) must not use up the window."""
    from sessid.testing import FakeKV

    class Slow(FakeKV):
        def getex(self, name, ex=None, **options):
            clock.advance(2.8)
            raise ConnectionError("cluster is down")

    kv = Slow(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    store.get(KEY)
    clock.advance(0.5)
    store.get(KEY)
    assert store.stats()["kv_skipped"] == 1


def test_after_the_window_one_call_asks_and_the_others_wait_for_it(clock):
    """While the first call after a window waits for a failing KV, other calls (other threads, or
    here a call made from inside the KV method) keep skipping it rather than all waiting too."""
    from sessid.testing import FakeKV

    class Probed(FakeKV):
        def getex(self, name, ex=None, **options):
            if self.concurrent:
                concurrent.append(store.get("sk-meanwhile"))
            return super().getex(name, ex=ex, **options)

    concurrent = []
    kv = Probed(clock=clock)
    kv.concurrent = False
    store = sessid.Store(kv=kv, clock=clock)
    kv.fail("getex")
    store.get(KEY)                                      # opens the window
    clock.advance(1)
    kv.concurrent = True
    store.get(KEY)                                      # the probe: asks, and fails again
    assert kv.calls["getex"] == 2 and len(concurrent) == 1 and is_uuid4(concurrent[0])
    assert store.stats()["kv_skipped"] == 1             # the call made meanwhile did not ask
    kv.heal()
    clock.advance(1)
    assert is_uuid4(store.get(KEY))                     # the probe succeeds: the window is over
    kv.concurrent = False
    store.get(KEY)
    assert kv.calls["getex"] == 4 and store.stats()["kv_skipped"] == 2


def test_on_kv_error_local_answers_from_the_table_inside_the_window(drive, clock):
    kv, store = failing_store(drive, clock, on_kv_error="local")
    first = drive.get(store, KEY)
    kv.fail("getex")
    assert [drive.get(store, KEY) for _ in range(3)] == [first] * 3
    assert store.stats()["kv_skipped"] == 2


def test_the_near_cache_still_answers_inside_the_window(drive, clock):
    kv, store = failing_store(drive, clock, refresh_after=60)
    first = drive.get(store, KEY)
    kv.fail("getex")
    clock.advance(30)
    second = drive.get(store, "sk-second")
    assert drive.get(store, "sk-second") != second      # asked, failed: the window opens
    assert drive.get(store, KEY) == first               # the near cache is not the KV
    assert kv.calls["getex"] == 2 and store.stats()["kv_skipped"] == 1


def test_zero_turns_the_backoff_off(drive, clock):
    kv, store = failing_store(drive, clock, kv_backoff=0)
    kv.fail("getex")
    for _ in range(4):
        drive.get(store, KEY)
    assert kv.calls["getex"] == 4 and store.stats()["kv_skipped"] == 0
    assert store.kv_backoff == 0.0


def test_kv_backoff_takes_seconds_or_a_timedelta(clock, kv):
    store = sessid.Store(kv=kv, clock=clock, kv_backoff=datetime.timedelta(milliseconds=250))
    assert store.kv_backoff == 0.25
    assert "kv_backoff=0.25" in repr(store)
    assert sessid.Store(kv=kv).kv_backoff == 1.0
    assert sessid.Store(kv=kv, kv_backoff=30).kv_backoff == 30.0


@pytest.mark.parametrize(
    "value, error, message",
    [
        (-1, ValueError, "kv_backoff must be from 0 (off) to 1e9 seconds, got -1"),
        (math.nan, ValueError, "kv_backoff must be from 0 (off) to 1e9 seconds, got nan"),
        (math.inf, ValueError, "kv_backoff must be from 0 (off) to 1e9 seconds, got inf"),
        (2e9, ValueError, "kv_backoff must be from 0 (off) to 1e9 seconds, got 2000000000.0"),
        (True, TypeError, "kv_backoff must be a number of seconds or a datetime.timedelta, not bool"),
        ("1", TypeError, "kv_backoff must be a number of seconds or a datetime.timedelta, not str"),
        (None, TypeError, "kv_backoff must be a number of seconds or a datetime.timedelta, not NoneType"),
    ],
)
def test_a_bad_kv_backoff_names_the_argument_and_the_value(value, error, message, kv):
    with pytest.raises(error) as info:
        sessid.Store(kv=kv, kv_backoff=value)
    assert str(info.value) == message


def test_kv_backoff_needs_a_kv():
    with pytest.raises(ValueError, match="^kv_backoff needs a kv$"):
        sessid.Store(kv_backoff=5)


# ---- the log line ----

def warnings_of(caplog):
    return [r for r in caplog.records if r.name == "sessid" and r.levelno == logging.WARNING]


def test_a_hidden_failure_is_logged_once_per_window(drive, clock, caplog):
    caplog.set_level(logging.WARNING, logger="sessid")
    kv, store = failing_store(drive, clock)
    boom = ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")
    kv.fail("getex", boom)
    for _ in range(3):
        drive.get(store, KEY)
    records = warnings_of(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert message == (
        "the KV failed: kv.getex() raised ConnectionError: Error 111 connecting to localhost:6379. "
        "Connection refused.; get() and aget() answer a random id without asking the KV for the "
        "next 1 s")
    error = records[0].exc_info[1]
    assert isinstance(error, sessid.KVError) and error.__cause__ is boom
    clock.advance(1)
    drive.get(store, KEY)                               # asks again, fails again: a new window
    assert len(warnings_of(caplog)) == 2
    assert KEY not in caplog.text                       # nor in the tracebacks


def test_without_backoff_a_failure_is_logged_at_most_once_a_second(clock, kv, caplog):
    caplog.set_level(logging.WARNING, logger="sessid")
    store = sessid.Store(kv=kv, clock=clock, kv_backoff=0, on_kv_error="local")
    kv.fail("getex")
    for _ in range(10):
        store.get(KEY)
        clock.advance(0.25)
    records = warnings_of(caplog)
    assert len(records) == 3
    assert records[0].getMessage().endswith(
        "get() answered the local table's id (kv_backoff=0: every call asks the KV)")


def test_required_failures_are_raised_not_logged(drive, clock, caplog):
    caplog.set_level(logging.WARNING, logger="sessid")
    kv, store = failing_store(drive, clock)
    kv.fail("getex")
    with pytest.raises(sessid.KVError):
        drive.get_required(store, KEY)
    assert warnings_of(caplog) == []


def test_a_bad_value_is_replaced_logged_once_and_opens_no_window(clock, kv, caplog):
    caplog.set_level(logging.WARNING, logger="sessid")
    store = sessid.Store(kv=kv, clock=clock)
    kv.store(store.key_for(KEY), "not a session id")
    first = store.get(KEY)
    assert is_uuid4(first)
    [warning] = warnings_of(caplog)
    message = warning.getMessage()
    assert "is not a session id" in message and store.key_for(KEY) in message and KEY not in message
    assert store.get(KEY) == first and len(warnings_of(caplog)) == 1
    assert kv.calls["getex"] == 2 and store.stats()["kv_skipped"] == 0


def test_a_logging_handler_that_calls_back_into_the_store(clock, kv):
    store = sessid.Store(kv=kv, clock=clock)
    seen = []

    class Reentrant(logging.Handler):
        def emit(self, record):
            seen.append(store.get("sk-from-the-handler"))

    handler = Reentrant()
    logger = logging.getLogger("sessid")
    logger.addHandler(handler)
    try:
        kv.fail("getex")
        assert is_uuid4(store.get(KEY))
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and is_uuid4(seen[0])
