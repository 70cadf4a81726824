import asyncio
import re

import pytest

import sessid
from sessid.testing import AsyncFakeKV, FakeKV, ManualClock

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and UUID4.match(value) is not None


class Drive:
    """One way of running a lookup: get/get_required, or aget/aget_required awaited to the end.

    ``store`` may be a Store or the sessid module (its functions have the same names). ``kv_class``
    picks, from a synchronous KV class and its coroutine twin, the one this way drives.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_async = name != "sync"
        self.coroutine_kv = name == "async"

    def get(self, store, api_key):
        return asyncio.run(store.aget(api_key)) if self.is_async else store.get(api_key)

    def get_required(self, store, api_key):
        if self.is_async:
            return asyncio.run(store.aget_required(api_key))
        return store.get_required(api_key)

    def forget(self, store, api_key):
        return asyncio.run(store.aforget(api_key)) if self.is_async else store.forget(api_key)

    def kv_class(self, sync_class, async_class):
        return async_class if self.coroutine_kv else sync_class

    def kv(self, **options) -> FakeKV:
        return self.kv_class(FakeKV, AsyncFakeKV)(**options)

    def __repr__(self) -> str:
        return self.name


DRIVES = [
    "sync",             # get / get_required, a synchronous KV
    "async",            # aget / aget_required, a KV whose methods are coroutines (redis.asyncio)
    "async-sync-kv",    # aget / aget_required, a synchronous KV: allowed, its replies read at once
]


@pytest.fixture(params=DRIVES)
def drive(request) -> Drive:
    """Runs a test once per driver, so that a difference between them cannot hide."""
    return Drive(request.param)


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


def redis_server_executable():
    """The redis-server to test against; missing is a skip, but under CI a failure."""
    import os
    import shutil

    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must test against a real one")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis")
    return path


@pytest.fixture(scope="session")
def redis_server():
    from redis_server import RedisServer

    server = RedisServer(redis_server_executable())
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_client(redis_server):
    import redis

    if not redis_server.ping():
        redis_server.start()
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.config_resetstat()
    yield client
    client.close()


def command_calls(client) -> dict[str, int]:
    """Calls per command so far on the server, from INFO commandstats."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}
