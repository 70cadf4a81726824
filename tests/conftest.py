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
