"""A Store shared by many threads: one id per key, no crash, no deadlock."""

import faulthandler
import threading
import time

import pytest

import sessid
from conftest import is_uuid4
from sessid.testing import FakeKV

THREADS = 16


@pytest.fixture(autouse=True)
def watchdog():
    """A deadlock would hang CI; dump every thread's stack and exit instead."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def hammer(target, threads=THREADS):
    barrier = threading.Barrier(threads)
    results = [None] * threads
    errors = []

    def work(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return results


def test_concurrent_first_gets_of_one_key_agree_in_local_mode():
    for round_ in range(20):
        store = sessid.Store()
        ids = hammer(lambda i: [store.get(f"key-{round_}") for _ in range(200)])
        flat = {x for per_thread in ids for x in per_thread}
        assert len(flat) == 1 and is_uuid4(flat.pop())


def test_many_keys_many_threads_each_key_one_id():
    store = sessid.Store(max_entries=10_000)
    keys = [f"key-{i}" for i in range(500)]

    def work(i):
        order = keys[i:] + keys[:i]
        return {k: store.get(k) for _ in range(5) for k in order}

    maps = hammer(work)
    for key in keys:
        assert len({m[key] for m in maps}) == 1


class SlowKV(FakeKV):
    """Each method sleeps (releasing the GIL) before it runs, as a network call would."""

    def get(self, name):
        time.sleep(0.0005)
        return super().get(name)

    def getex(self, name, ex=None, **options):
        time.sleep(0.0005)
        return super().getex(name, ex=ex, **options)

    def set(self, name, value, **options):
        time.sleep(0.0005)
        return super().set(name, value, **options)

    def expire(self, name, time_):
        time.sleep(0.0005)
        return super().expire(name, time_)


@pytest.mark.parametrize("modern", [True, False])
def test_threads_over_a_kv_that_releases_the_gil_agree(modern):
    kv = SlowKV() if modern else SlowKV(has_getex=False, has_set_get=False)
    store = sessid.Store(kv=kv)
    ids = hammer(lambda i: [store.get_required(f"key-{n % 4}") for n in range(40)])
    for n in range(4):
        assert len({per_thread[m] for per_thread in ids for m in range(n, 40, 4)}) == 1


def test_local_use_continues_while_one_thread_blocks_in_the_kv():
    """A KV call holds no lock of sessid's: while one thread waits in the KV, other threads go on,
    on another store and on other keys of the same one, and the waiting call ends with its id."""
    inside, release = threading.Event(), threading.Event()

    class Blocking(FakeKV):
        def getex(self, name, ex=None, **options):
            if name == blocking_name:
                inside.set()
                release.wait(60)
            return super().getex(name, ex=ex, **options)

    kv = Blocking()
    shared = sessid.Store(kv=kv)
    blocking_name = shared.key_for("slow")
    answers = []
    blocked = threading.Thread(target=lambda: answers.append(shared.get_required("slow")))
    blocked.start()
    try:
        assert inside.wait(60), "the thread never reached the KV"
        local = sessid.Store()
        ids = {local.get(f"k{i % 10}") for i in range(2000)}
        other = shared.get_required("fast")
        # All of that ran while the thread was still waiting in the KV.
        assert blocked.is_alive() and not answers
    finally:
        release.set()
        blocked.join(60)
    assert len(ids) == 10 and all(is_uuid4(i) for i in ids)
    assert is_uuid4(other) and shared.get_required("fast") == other
    assert not blocked.is_alive() and len(answers) == 1 and is_uuid4(answers[0])
    assert kv.value(blocking_name) == answers[0].encode()
    assert shared.get_required("slow") == answers[0]


def test_clear_and_purge_race_with_gets():
    store = sessid.Store(ttl=0.001)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            store.clear()
            store.purge()
            len(store)

    cleaner = threading.Thread(target=churn)
    cleaner.start()
    try:
        results = hammer(lambda i: [is_uuid4(store.get(f"k{n % 50}")) for n in range(2000)], threads=4)
    finally:
        stop.set()
        cleaner.join()
    assert all(all(r) for r in results)
