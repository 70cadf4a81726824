"""An optional command (GETEX, SET ... GET) that the KV does not offer, whatever words its refusal
uses, against a failure of one call: a connection error or a transient state of the server."""

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import ResponseError

KEY = "sk-refusals"


class NoPermissionError(ResponseError):
    """redis-py's class for NOPERM: it strips the code from the message."""


class ReadOnlyError(ResponseError):
    """redis-py's class for READONLY (a replica answering a write)."""


class OutOfMemoryError(ResponseError):
    """redis-py's class for OOM."""


class ClusterDownError(ResponseError):
    """redis-py's class for CLUSTERDOWN."""


class TryAgainError(ResponseError):
    """redis-py's class for TRYAGAIN."""


class MasterDownError(ClusterDownError):
    """redis-py's class for MASTERDOWN."""


class BusyLoadingError(ConnectionError):
    """redis-py's class for LOADING (a ConnectionError there)."""


REFUSALS = {
    "unknown command": ResponseError("unknown command 'GETEX', with args beginning with: 'k'"),
    "ACL (NOPERM)": NoPermissionError(
        "User proxy has no permissions to run the 'getex' command"),
    "Envoy's proxy": ResponseError("unsupported command 'getex'"),
    "a managed service": ResponseError("ERR command is not allowed in this tier"),
    "a syntax error": ResponseError("syntax error"),
    "no words at all": ResponseError(),
}

TRANSIENT = {
    "LOADING": BusyLoadingError("Redis is loading the dataset in memory"),
    "BUSY": ResponseError("BUSY Redis is busy running a script."),
    "TRYAGAIN (code)": ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
    "TRYAGAIN (class)": TryAgainError("Multiple keys request during rehashing of slot"),
    "CLUSTERDOWN (code)": ResponseError("CLUSTERDOWN The cluster is down"),
    "CLUSTERDOWN (class)": ClusterDownError("The cluster is down"),
    "MASTERDOWN (class)": MasterDownError("Link with MASTER is down"),
    "MASTERDOWN (code)": ResponseError("MASTERDOWN Link with MASTER is down"),
    "READONLY (class)": ReadOnlyError("You can't write against a read only replica."),
    "READONLY (code)": ResponseError("READONLY You can't write against a read only replica."),
    "OOM (class)": OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    "OOM (code)": ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
    "NOREPLICAS": ResponseError("NOREPLICAS Not enough good replicas to write."),
    "MISCONF": ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's "
                             "currently unable to persist to disk."),
    "a dead connection": ConnectionError("Error 111 connecting to localhost:6379."),
    "a timeout": TimeoutError("Timeout reading from socket"),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_any_error_reply_to_getex_means_not_offered(refusal, drive, clock):
    kv = drive.kv(clock=clock)
    kv.fail("getex", refusal)
    store = sessid.Store(kv=kv, clock=clock)
    first = drive.get_required(store, KEY)
    store.clear()
    assert drive.get_required(store, KEY) == first == drive.get(store, KEY)
    assert kv.calls["getex"] == 1                       # decided once, for this store
    assert kv.calls["expire"] == 2                      # the plain protocol: GET then EXPIRE
    assert store.stats()["kv_errors"] == 0


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_any_error_reply_to_set_get_means_not_offered(refusal, drive, clock):
    kv = drive.kv(clock=clock)

    class Refusing(type(kv)):
        def set(self, name, value, **options):
            if options.get("get"):
                self.calls["set ... get"] += 1
                raise refusal
            return super().set(name, value, **options)

    kv = Refusing(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = drive.get_required(store, KEY)
    second = drive.get_required(store, "sk-another")
    assert is_uuid4(first) and is_uuid4(second) and first != second
    assert kv.value(store.key_for(KEY)) == first.encode()
    assert kv.calls["set ... get"] == 1                 # then SET NX EX and a GET to read it back
    assert store.stats()["kv_errors"] == 0


@pytest.mark.parametrize("failure", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_state_fails_that_call_and_changes_nothing(failure, drive, clock):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock, kv_backoff=0)
    first = drive.get_required(store, KEY)
    kv.fail("getex", failure)
    with pytest.raises(sessid.KVError) as info:
        drive.get_required(store, KEY)
    assert info.value.__cause__ is failure
    fallback = drive.get(store, KEY)
    assert is_uuid4(fallback) and fallback != first
    kv.heal()
    assert drive.get_required(store, KEY) == first
    assert kv.calls["getex"] == 4 and kv.calls["expire"] == 0     # GETEX is still used
    assert store.stats()["kv_errors"] == 2


@pytest.mark.parametrize("failure", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_state_on_set_get_changes_nothing(failure, clock):
    from sessid.testing import FakeKV

    class Flaky(FakeKV):
        def set(self, name, value, **options):
            if options.get("get") and self.flaky:
                self.calls["failed set ... get"] += 1
                raise failure
            return super().set(name, value, **options)

    kv = Flaky(clock=clock)
    kv.flaky = True
    store = sessid.Store(kv=kv, clock=clock, kv_backoff=0)
    with pytest.raises(sessid.KVError):
        store.get_required(KEY)
    kv.flaky = False
    first = store.get_required(KEY)
    assert kv.value(store.key_for(KEY)) == first.encode()
    assert kv.calls["failed set ... get"] == 1 and kv.calls["set"] == 1
    assert kv.calls["get"] == 0                         # SET ... GET is still used: no read back


def test_an_error_reply_to_a_required_command_is_a_kv_error(drive, clock):
    kv = drive.kv(clock=clock, has_getex=False)
    kv.fail("get", NoPermissionError("User proxy has no permissions to run the 'get' command"))
    store = sessid.Store(kv=kv, clock=clock)
    with pytest.raises(sessid.KVError, match="kv.get\\(\\) raised NoPermissionError"):
        drive.get_required(store, KEY)


def test_a_client_without_the_method_or_keyword_falls_back(clock):
    from sessid.testing import FakeKV

    kv = FakeKV(clock=clock, has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get_required(KEY)
    assert store.get_required(KEY) == first
    assert kv.calls["get"] == 3 and kv.calls["set"] == 1 and kv.calls["expire"] == 1


def test_each_store_decides_for_itself(clock):
    from sessid.testing import FakeKV

    kv = FakeKV(clock=clock)
    kv.fail("getex", NoPermissionError("no permissions to run the 'getex' command"))
    refused = sessid.Store(kv=kv, clock=clock)
    refused.get_required(KEY)
    kv.heal()
    other = sessid.Store(kv=kv, clock=clock)
    other.get_required(KEY)
    refused.get_required(KEY)
    assert kv.calls["getex"] == 2                       # once each; the first store never again
