"""Against Redis as it is deployed (issue 12), not as a laptop runs it: a user whose ACL lacks some
commands, a server that lacks GETEX, a read-only replica, a three-master cluster that loses a node
and gets it back, and the Go proxy CLIProxyAPI sharing one server with sessid.

Round trips are counted by the server (INFO commandstats, read by the default user). Redis 7 counts
a command that the ACL refuses as a rejected call, never as a call; a command the server does not
know at all shows in no commandstats entry.
"""

import asyncio
import hashlib
import itertools
import logging
import multiprocessing
import random
import statistics
import threading
import time
import uuid

import pytest

import sessid
from conftest import is_uuid4, redis_server_executable
from sessid.testing import ManualClock

pytestmark = pytest.mark.redis

KEY = "sk-ant-api03-deployed-key"
COUNTED = ("get", "getex", "set", "expire", "del")
PASSWORD = "pw"


def trips(*admins) -> dict[str, int]:
    """Calls of the KV's commands on the given servers since their last CONFIG RESETSTAT, those the
    server ran by name ("get") and those it refused by name and "refused" ("getex refused"). Only
    counts that are not zero appear."""
    counts: dict[str, int] = {}
    for admin in admins:
        stats = admin.info("commandstats")
        for name in COUNTED:
            entry = stats.get(f"cmdstat_{name}", {})
            refused = entry.get("rejected_calls", 0) + entry.get("failed_calls", 0)
            for label, count in ((name, entry.get("calls", 0)), (f"{name} refused", refused)):
                if count:
                    counts[label] = counts.get(label, 0) + count
    return counts


def sessid_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] == "sessid"]


# ------------------------------------------------------------------ ACL users, a server without GETEX


@pytest.fixture
def acl_users(redis_server, redis_client):
    """Makes users of the shared server with only the commands given, as a managed Redis or a careful
    operator sets one up for a proxy; returns a factory of redis-py clients (sync or asyncio) that
    log in as such a user. The users are removed afterwards."""
    import redis
    import redis.asyncio

    made = []

    def user(name, *commands, asyncio_client=False):
        if name not in made:
            redis_client.execute_command("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}",
                                         "~*", *(f"+{c}" for c in commands))
            made.append(name)
        module = redis.asyncio if asyncio_client else redis
        return module.Redis(port=redis_server.port, username=name, password=PASSWORD)

    yield user
    for name in made:
        redis_client.execute_command("ACL", "DELUSER", name)


PROXY_COMMANDS = ("get", "set", "expire", "del")    # the reference protocol's commands, and DEL


def test_a_user_without_getex_gets_stable_ids_and_the_store_falls_back_once(redis_client,
                                                                            acl_users, caplog):
    import redis

    caplog.set_level(logging.DEBUG, logger="sessid")
    proxy = acl_users("proxy", *PROXY_COMMANDS)
    with pytest.raises(redis.exceptions.NoPermissionError):
        proxy.getex("anything", ex=1)
    redis_client.config_resetstat()

    store = sessid.Store(kv=proxy)
    first = store.get_required(KEY)
    # GETEX refused (NOPERM) and never tried again; the plain GET finds nothing, and SET ... NX GET
    # is allowed (an ACL names commands, not options), so the miss ends there
    assert trips(redis_client) == {"getex refused": 1, "get": 1, "set": 1}

    redis_client.config_resetstat()
    for _ in range(10):
        assert store.get_required(KEY) == first
    assert trips(redis_client) == {"get": 10, "expire": 10}          # a hit: GET + EXPIRE

    redis_client.config_resetstat()
    second = store.get_required("another key")
    assert trips(redis_client) == {"get": 1, "set": 1}               # a miss: GET + SET NX EX GET
    assert is_uuid4(first) and is_uuid4(second) and first != second

    name = store.key_for(KEY)
    assert redis_client.get(name) == first.encode()
    assert 3590 < redis_client.ttl(name) <= 3600
    assert store.stats()["kv_errors"] == 0

    # each store decides for itself, once; the refusal is no failure, so get answers from Redis
    redis_client.config_resetstat()
    other = sessid.Store(kv=proxy)
    assert other.get(KEY) == first
    assert other.get(KEY) == first
    assert trips(redis_client) == {"getex refused": 1, "get": 2, "expire": 2}
    assert other.stats()["kv_errors"] == 0
    assert not [r for r in sessid_records(caplog) if r.levelno >= logging.WARNING]
    proxy.close()


def test_an_asyncio_client_of_a_user_without_getex(redis_client, acl_users):
    proxy = acl_users("proxy", *PROXY_COMMANDS, asyncio_client=True)

    async def main():
        store = sessid.Store(kv=proxy)
        try:
            first = await store.aget_required(KEY)
            miss = trips(redis_client)
            redis_client.config_resetstat()
            again = [await store.aget_required(KEY) for _ in range(5)]
            hits = trips(redis_client)
            redis_client.config_resetstat()
            other = await store.aget("another key")
            second_miss = trips(redis_client)
        finally:
            await proxy.aclose()
        return first, again, other, (miss, hits, second_miss), store.stats()

    first, again, other, (miss, hits, second_miss), stats = asyncio.run(main())
    assert is_uuid4(first) and again == [first] * 5 and is_uuid4(other) and other != first
    assert miss == {"getex refused": 1, "get": 1, "set": 1}
    assert hits == {"get": 5, "expire": 5}
    assert second_miss == {"get": 1, "set": 1}
    assert stats["kv_errors"] == 0


@pytest.fixture
def server_without_getex():
    """A server where GETEX is renamed away, so it answers "unknown command" (as a proxy in front
    of Redis, or an older server, does)."""
    from redis_server import RedisServer

    server = RedisServer(redis_server_executable(), options=["--rename-command", "GETEX", ""])
    server.start()
    yield server
    server.close()


def test_a_server_that_does_not_know_getex(server_without_getex):
    import redis

    client = redis.Redis(port=server_without_getex.port)
    try:
        with pytest.raises(redis.exceptions.ResponseError, match="unknown command"):
            client.getex("anything", ex=1)
        store = sessid.Store(kv=client)
        first = store.get_required(KEY)
        assert store.get_required(KEY) == first == store.get(KEY)
        # an unknown command shows in no commandstats entry: only the plain protocol's commands do
        assert trips(client) == {"get": 3, "set": 1, "expire": 2}
        assert store.stats()["kv_errors"] == 0
    finally:
        client.close()


def test_forget_through_a_user_allowed_del(redis_client, acl_users):
    proxy = acl_users("proxy", *PROXY_COMMANDS)
    store = sessid.Store(kv=proxy)
    first = store.get_required(KEY)
    redis_client.config_resetstat()
    store.forget(KEY)
    assert trips(redis_client) == {"del": 1}
    assert redis_client.exists(store.key_for(KEY)) == 0
    second = store.get_required(KEY)
    assert is_uuid4(second) and second != first
    assert redis_client.get(store.key_for(KEY)) == second.encode()
    proxy.close()


def test_aforget_through_an_asyncio_client(redis_client, acl_users):
    proxy = acl_users("proxy", *PROXY_COMMANDS, asyncio_client=True)

    async def main():
        store = sessid.Store(kv=proxy)
        try:
            first = await store.aget_required(KEY)
            await store.aforget(KEY)
            gone = redis_client.exists(store.key_for(KEY))
            second = await store.aget_required(KEY)
        finally:
            await proxy.aclose()
        return first, gone, second

    first, gone, second = asyncio.run(main())
    assert gone == 0 and is_uuid4(second) and second != first


def test_forget_by_a_user_without_del_raises_and_get_still_works(redis_client, acl_users):
    import redis

    reader = acl_users("no-del", "get", "set", "expire")
    store = sessid.Store(kv=reader)
    first = store.get_required(KEY)
    redis_client.config_resetstat()
    with pytest.raises(sessid.KVError) as info:
        store.forget(KEY)
    assert isinstance(info.value.__cause__, redis.exceptions.NoPermissionError)
    assert trips(redis_client) == {"del refused": 1}
    # the id is still in Redis, and every get finds it there (get_required first: it always asks
    # the KV, and its success ends any backoff window the refused DEL may have opened)
    assert store.get_required(KEY) == first
    assert store.get(KEY) == first
    reader.close()


class Switchable:
    """A KV that forwards to whichever redis-py client it holds now, as a client behind a DNS name
    does when the name moves from a replica to the primary."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, name):
        return self.client.get(name)

    def getex(self, name, **options):
        return self.client.getex(name, **options)

    def set(self, name, value, **options):
        return self.client.set(name, value, **options)

    def expire(self, name, seconds):
        return self.client.expire(name, seconds)

    def delete(self, *names):
        return self.client.delete(*names)


def test_a_read_only_replica_fails_the_call_and_changes_nothing(redis_client):
    """READONLY is an error reply too, but a transient one: the call fails, and GETEX stays."""
    import redis

    from redis_server import RedisServer, free_port

    # a replica whose primary is away still answers, and refuses every write, GETEX included
    replica = RedisServer(redis_server_executable(),
                          options=["--replicaof", "127.0.0.1", str(free_port())])
    replica.start()
    replica_client = redis.Redis(port=replica.port)
    try:
        kv = Switchable(replica_client)
        store = sessid.Store(kv=kv, kv_backoff=0)
        with pytest.raises(sessid.KVError) as info:
            store.get_required(KEY)
        assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
        assert is_uuid4(store.get(KEY))
        assert store.stats()["kv_errors"] == 2

        kv.client = redis_client
        redis_client.config_resetstat()
        first = store.get_required(KEY)
        assert store.get_required(KEY) == first
        assert trips(redis_client) == {"getex": 2, "set": 1}
    finally:
        replica_client.close()
        replica.close()


# ------------------------------------------------------------------ a three-master cluster

# redis-py retries a command ten times when the cluster is down, some 2.8 s a call; one retry keeps
# these tests short. benchmarks/cluster_outage.py times the client as it comes.
CLUSTER_RETRIES = 1
LOST = 1        # the node the outage tests kill


@pytest.fixture(scope="module")
def cluster_nodes():
    from redis_cluster import LocalCluster

    cluster = LocalCluster(redis_server_executable(), node_timeout_ms=1000)
    cluster.start()
    yield cluster
    cluster.close()


@pytest.fixture
def cluster(cluster_nodes):
    """The module's cluster, whole again (a test that failed mid-outage may have left a node down),
    empty, with its statistics reset."""
    for index, node in enumerate(cluster_nodes.nodes):
        if node.process is None:
            cluster_nodes.restart(index)
    cluster_nodes.wait_until("ok")
    cluster_nodes.flush()
    return cluster_nodes


def cluster_client(cluster):
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                        retry=Retry(NoBackoff(), CLUSTER_RETRIES),
                        socket_timeout=2, socket_connect_timeout=2)


def async_cluster_client(cluster):
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                        retry=Retry(NoBackoff(), CLUSTER_RETRIES),
                        socket_timeout=2, socket_connect_timeout=2)


def node_clients(cluster):
    import redis

    return [redis.Redis(port=node.port) for node in cluster.nodes]


def keys_on_every_node(cluster, store, per_node=2) -> dict[int, list[str]]:
    """API keys whose KV keys fall in slots of each node, per_node of them for each."""
    from redis.crc import key_slot

    owners = cluster.slot_owners()
    found: dict[int, list[str]] = {index: [] for index in range(len(cluster.nodes))}
    for i in itertools.count():
        if all(len(owned) >= per_node for owned in found.values()):
            break
        api_key = f"sk-ant-cluster-{i}"
        owned = found[owners[key_slot(store.key_for(api_key).encode())]]
        if len(owned) < per_node:
            owned.append(api_key)
    some = found[0][0]
    assert key_slot(store.key_for(some).encode()) == cluster.key_slot(store.key_for(some))
    return found


def every_key(keys: dict[int, list[str]]) -> list[str]:
    return [api_key for owned in keys.values() for api_key in owned]


def test_cluster_keys_on_every_node_keep_their_ids_and_slide_on_their_node(cluster):
    client = cluster_client(cluster)
    nodes = node_clients(cluster)
    try:
        store = sessid.Store(kv=client, ttl=5)
        keys = keys_on_every_node(cluster, store)
        ids = {api_key: store.get_required(api_key) for api_key in every_key(keys)}
        assert all(is_uuid4(i) for i in ids.values()) and len(set(ids.values())) == len(ids)
        store.clear()
        assert {api_key: store.get_required(api_key) for api_key in ids} == ids
        # one GETEX per lookup and a SET ... NX GET per miss, on whichever node served the key
        assert trips(*nodes) == {"getex": 2 * len(ids), "set": len(ids)}
        for owner, owned in keys.items():
            for api_key in owned:   # on the very node that serves its slot (another answers MOVED)
                assert nodes[owner].get(store.key_for(api_key)) == ids[api_key].encode()

        time.sleep(1.0)
        for owner, owned in keys.items():
            for api_key in owned:
                name = store.key_for(api_key)
                aged = nodes[owner].pttl(name)
                assert 0 < aged <= 4000
                assert store.get_required(api_key) == ids[api_key]
                assert 4000 < nodes[owner].pttl(name) <= 5000
    finally:
        client.close()
        for node in nodes:
            node.close()


def timed(call, api_keys) -> list[float]:
    seconds = []
    for api_key in api_keys:
        started = time.perf_counter()
        try:
            call(api_key)
        except sessid.KVError:
            pass
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{len(ms)} calls: mean {statistics.mean(ms):.2f} ms, p50 {statistics.median(ms):.2f} ms,"
            f" max {max(ms):.2f} ms")


def test_cluster_outage_and_recovery(cluster, caplog, record_property):
    import redis

    client = cluster_client(cluster)
    nodes = node_clients(cluster)
    clock = ManualClock()
    try:
        # the backoff window on a clock that moves only when told, so its counts are exact
        store = sessid.Store(kv=client, clock=clock)
        keys = keys_on_every_node(cluster, store)
        api_keys = every_key(keys)
        before = {api_key: store.get_required(api_key) for api_key in api_keys}

        cluster.kill(LOST)
        record_property("seconds_until_cluster_fail", round(cluster.wait_until("fail"), 2))
        caplog.set_level(logging.WARNING, logger="sessid")

        answers = [store.get(api_key) for api_key in api_keys]
        assert all(is_uuid4(a) for a in answers)
        assert store.stats()["kv_errors"] == 1
        assert store.stats()["kv_skipped"] == len(api_keys) - 1
        records = sessid_records(caplog)
        assert len(records) == 1 and records[0].levelno == logging.WARNING
        # the KV's own exception goes with it: as exc_info, or as the cause of the KVError there
        logged_error = records[0].exc_info[1]
        kv_error = (logged_error.__cause__ if isinstance(logged_error, sessid.KVError)
                    else logged_error)
        assert isinstance(kv_error, redis.exceptions.RedisError)
        logged = records[0].getMessage() + logging.Formatter().formatException(records[0].exc_info)
        assert type(kv_error).__name__ in logged
        assert not any(api_key in logged for api_key in api_keys)

        clock.advance(1.0)          # the window is over: the next get asks again, and fails again
        assert is_uuid4(store.get(api_keys[0]))
        assert store.stats()["kv_errors"] == 2 and len(sessid_records(caplog)) == 2

        for owner, owned in keys.items():     # CLUSTERDOWN from the live nodes, a refused connection
            with pytest.raises(sessid.KVError) as info:   # from the dead one
                store.get_required(owned[0])
            assert isinstance(info.value.__cause__, redis.exceptions.RedisError)
        assert store.stats()["kv_errors"] == 2 + len(keys)

        # time per call while the cluster is down: recorded, not judged
        no_backoff = sessid.Store(kv=client, kv_backoff=0)
        with_backoff = sessid.Store(kv=client)
        figures = {
            "get, kv_backoff=0": timed(no_backoff.get, api_keys[:4]),
            "get, kv_backoff=1.0": timed(with_backoff.get, api_keys * 4),
            "get_required": timed(with_backoff.get_required, api_keys[:3]),
        }
        for label, seconds in figures.items():
            record_property(f"outage {label}", summary(seconds))
            print(f"\ncluster down, {label}: {summary(seconds)}")
        assert with_backoff.stats()["kv_skipped"] >= 1

        record_property("seconds_until_cluster_ok", round(cluster.restart(LOST), 2))
        after = {api_key: store.get_required(api_key) for api_key in api_keys}
        for owner, owned in keys.items():
            for api_key in owned:
                if owner == LOST:       # the node came back without its data: new ids
                    assert is_uuid4(after[api_key]) and after[api_key] != before[api_key]
                else:
                    assert after[api_key] == before[api_key]
        # a success ended the window, though the store's clock has not moved: get asks again
        skipped = store.stats()["kv_skipped"]
        assert [store.get(api_key) for api_key in api_keys] == list(after.values())
        assert store.stats()["kv_skipped"] == skipped

        # CLUSTERDOWN and refused connections are no sign of a missing command: GETEX stays
        for node in nodes:
            node.config_resetstat()
        store.clear()
        assert [store.get_required(api_key) for api_key in api_keys] == list(after.values())
        assert trips(*nodes) == {"getex": len(api_keys)}
    finally:
        client.close()
        for node in nodes:
            node.close()


def test_asyncio_cluster_outage_and_recovery(cluster):
    import redis

    clock = ManualClock()
    nodes = node_clients(cluster)

    async def main():
        client = async_cluster_client(cluster)
        try:
            store = sessid.Store(kv=client, clock=clock)
            keys = keys_on_every_node(cluster, store)
            api_keys = every_key(keys)
            before = {api_key: await store.aget_required(api_key) for api_key in api_keys}
            store.clear()
            # each key aged on its own node, then looked up again: its TTL is back to the store's
            for owner, owned in keys.items():
                for api_key in owned:
                    nodes[owner].pexpire(store.key_for(api_key), 10_000)
            kept = {api_key: await store.aget_required(api_key) for api_key in api_keys}
            slid = [nodes[owner].pttl(store.key_for(api_key))
                    for owner, owned in keys.items() for api_key in owned]

            cluster.kill(LOST)
            cluster.wait_until("fail")
            answers = [await store.aget(api_key) for api_key in api_keys]
            counts = store.stats()
            failures = []
            for owned in keys.values():
                try:
                    await store.aget_required(owned[0])
                except sessid.KVError as error:
                    failures.append(error.__cause__)

            cluster.restart(LOST)
            after = {api_key: await store.aget_required(api_key) for api_key in api_keys}
            again = [await store.aget(api_key) for api_key in api_keys]
        finally:
            await client.aclose()
            for node in nodes:
                node.close()
        return keys, before, kept, slid, answers, counts, failures, after, again

    keys, before, kept, slid, answers, counts, failures, after, again = asyncio.run(main())
    assert kept == before and all(is_uuid4(i) for i in before.values())
    assert all(3_590_000 < ttl <= 3_600_000 for ttl in slid)
    assert all(is_uuid4(a) for a in answers)
    assert counts["kv_errors"] == 1 and counts["kv_skipped"] == len(answers) - 1
    assert len(failures) == len(keys)
    assert all(isinstance(cause, redis.exceptions.RedisError) for cause in failures)
    for owner, owned in keys.items():
        for api_key in owned:
            assert (after[api_key] != before[api_key]) == (owner == LOST)
    assert again == list(after.values())


# ------------------------------------------------------------------ the Go proxy's protocol beside sessid

REFERENCE_PREFIX = "cpa:claude:session-id:"
REFERENCE_TTL = 3600


class Reference:
    """CLIProxyAPI's session-id cache as it talks to Redis, and no more: GET; on a hit EXPIRE key
    3600; on a miss SET key <uuid4> NX EX 3600, then GET. The key is the prefix and the SHA-256 hex
    of the API key's bytes as given (no trimming)."""

    def __init__(self, client) -> None:
        self.client = client

    @staticmethod
    def key(api_key: str | bytes) -> str:
        data = api_key.encode() if isinstance(api_key, str) else bytes(api_key)
        return REFERENCE_PREFIX + hashlib.sha256(data).hexdigest()

    def read(self, name: str) -> str:
        raw = self.client.get(name)
        return raw.decode().strip() if raw is not None else ""

    def get(self, api_key: str | bytes) -> str:
        name = self.key(api_key)
        found = self.read(name)
        if found:
            self.client.expire(name, REFERENCE_TTL)
            return found
        self.client.set(name, str(uuid.uuid4()), nx=True, ex=REFERENCE_TTL)
        found = self.read(name)
        if not found:
            raise RuntimeError("missing after set")
        return found


INTEROP_KEYS = ["sk-ant-api03-go-and-python", "  sk-with-spaces-kept  ", "sk-ünïcödé",
                b"\x00\xff raw bytes", "oauth-access-token.abc.def"]


def test_reference_first_then_sessid(redis_client):
    reference = Reference(redis_client)
    store = sessid.Store(kv=redis_client, prefix=REFERENCE_PREFIX)
    for api_key in INTEROP_KEYS:
        assert store.key_for(api_key) == Reference.key(api_key)
        written = reference.get(api_key)
        assert store.get_required(api_key) == written
        assert store.get(api_key) == written
        assert reference.get(api_key) == written
        assert 3590 < redis_client.ttl(Reference.key(api_key)) <= REFERENCE_TTL
    assert len(redis_client.keys("*")) == len(INTEROP_KEYS)


def test_sessid_first_then_reference(redis_client):
    reference = Reference(redis_client)
    store = sessid.Store(kv=redis_client, prefix=REFERENCE_PREFIX)
    for api_key in INTEROP_KEYS:
        written = store.get_required(api_key)
        assert reference.get(api_key) == written
        assert store.get_required(api_key) == written
        assert 3590 < redis_client.ttl(Reference.key(api_key)) <= REFERENCE_TTL
    assert len(redis_client.keys("*")) == len(INTEROP_KEYS)


RACE_KEYS = [f"sk-ant-race-{i}" for i in range(200)]


def race_one(kind: str, url: str, seed: int, barrier) -> dict[str, str]:
    """Asks for every race key, in an order of its own, as one side: the reference or sessid."""
    import redis

    client = redis.Redis.from_url(url)
    ask = (Reference(client).get if kind == "reference"
           else sessid.Store(kv=client, prefix=REFERENCE_PREFIX).get_required)
    order = list(RACE_KEYS)
    random.Random(seed).shuffle(order)
    barrier.wait()
    try:
        return {api_key: ask(api_key) for api_key in order}
    finally:
        client.close()


def race_in_process(kind, url, seed, barrier, results) -> None:
    results.put((kind, seed, race_one(kind, url, seed, barrier)))


def check_agreement(redis_client, answers: list[dict[str, str]]) -> None:
    for api_key in RACE_KEYS:
        seen = {answer[api_key] for answer in answers}
        assert len(seen) == 1, (api_key, seen)
        (agreed,) = seen
        assert is_uuid4(agreed)
        assert redis_client.get(Reference.key(api_key)) == agreed.encode()
    assert len({answers[0][k] for k in RACE_KEYS}) == len(RACE_KEYS)


def test_reference_and_sessid_racing_in_threads_agree(redis_server, redis_client):
    kinds = ["reference", "sessid"] * 4
    barrier = threading.Barrier(len(kinds))
    answers: list[dict[str, str]] = [{} for _ in kinds]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            answers[index] = race_one(kinds[index], redis_server.url, index, barrier)
        except BaseException as error:     # reported below, in the test's own thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(kinds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    check_agreement(redis_client, answers)


def test_reference_and_sessid_racing_in_processes_agree(redis_server, redis_client):
    context = multiprocessing.get_context("spawn")
    kinds = ["reference", "sessid"] * 2
    barrier = context.Barrier(len(kinds))
    results = context.Queue()
    processes = [context.Process(target=race_in_process,
                                 args=(kind, redis_server.url, seed, barrier, results))
                 for seed, kind in enumerate(kinds)]
    for p in processes:
        p.start()
    try:
        answers = [results.get(timeout=60)[2] for _ in processes]
    finally:
        for p in processes:
            p.join(timeout=60)
            if p.exitcode is None:
                p.kill()
    assert all(p.exitcode == 0 for p in processes)
    check_agreement(redis_client, answers)
