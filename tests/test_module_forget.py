"""sessid.forget / sessid.aforget: the module level starts a key's session over on the default
store, as sessid.get / sessid.aget read it."""

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import FakeKV, ResponseError

KEY = "sk-forget"


def test_module_forget_starts_the_key_over_in_the_default_store(drive):
    first = drive.get(sessid, KEY)
    other = drive.get(sessid, "sk-other")
    assert drive.forget(sessid, KEY) is None
    second = drive.get(sessid, KEY)
    assert is_uuid4(second) and second != first
    assert drive.get(sessid, "sk-other") == other
    assert sessid.default_store().get(KEY) == second
    drive.forget(sessid, "sk-never-seen")               # nothing to drop is not an error


def test_module_forget_acts_on_the_store_set_as_default(drive, clock):
    kv = drive.kv(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    sessid.set_default_store(store)
    first = drive.get_required(sessid, KEY)
    drive.forget(sessid, KEY)
    assert kv.calls["delete"] == 1 and kv.value(store.key_for(KEY)) is None
    assert drive.get_required(store, KEY) != first


def test_module_forget_raises_kv_error_when_the_kv_fails(drive, clock):
    kv = drive.kv(clock=clock)
    sessid.set_default_store(sessid.Store(kv=kv, clock=clock))
    drive.get_required(sessid, KEY)
    boom = ResponseError("NOPERM this user has no permissions to run the 'del' command")
    kv.fail("delete", boom)
    with pytest.raises(sessid.KVError, match="kv.delete\\(\\) raised ResponseError") as info:
        drive.forget(sessid, KEY)
    assert info.value.__cause__ is boom


def test_module_forget_names_a_bad_key(drive):
    for bad in (None, 42, ("sk-1",)):
        with pytest.raises(TypeError, match=f"api_key must be str or a bytes-like object, not "
                                            f"{type(bad).__name__}"):
            drive.forget(sessid, bad)


def test_the_default_store_replaced_during_a_forget_is_still_the_one_forgotten_in():
    """A KV method may call back into sessid; replacing the default store there leaves the call
    running on the store it started with."""
    replacement = sessid.Store()

    class Replacing(FakeKV):
        def delete(self, *names):
            sessid.set_default_store(replacement)
            return super().delete(*names)

    kv = Replacing()
    store = sessid.Store(kv=kv)
    sessid.set_default_store(store)
    first = sessid.get_required(KEY)
    sessid.forget(KEY)
    assert sessid.default_store() is replacement
    assert kv.value(store.key_for(KEY)) is None and store.get_required(KEY) != first
