import re

import pytest

import sessid
from sessid.testing import FakeKV, ManualClock

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and UUID4.match(value) is not None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kv(clock: ManualClock) -> FakeKV:
    return FakeKV(clock=clock)


@pytest.fixture
def reference_kv(clock: ManualClock) -> FakeKV:
    """A KV that offers only GET, SET NX EX and EXPIRE: the reference implementation's protocol."""
    return FakeKV(clock=clock, has_getex=False, has_set_get=False)


@pytest.fixture(autouse=True)
def fresh_default_store():
    """Each test starts with a new default store and leaves the previous one in place."""
    previous = sessid.set_default_store(sessid.Store())
    yield
    sessid.set_default_store(previous)
