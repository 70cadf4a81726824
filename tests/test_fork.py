"""os.fork(): a store keeps working on both sides, and the two sides never hand out the same id."""

import os
import threading
import time

import pytest

import sessid
from conftest import is_uuid4
from processes import describe, in_child, wait_for

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def test_a_store_used_before_fork_works_on_both_sides():
    store = sessid.Store()
    first = store.get("key")

    def in_the_child():
        assert store.get("key") == first
        assert is_uuid4(store.get("new")) and store.get("new") != first

    status = in_child(in_the_child)
    assert status == 0, describe(status)
    assert store.get("key") == first


def test_fork_while_another_thread_is_inside_the_store():
    store = sessid.Store(ttl=0.5, max_entries=1000)
    stop = threading.Event()
    calls = [0]

    def churn():
        i = 0
        while not stop.is_set():
            store.get(f"k{i % 5000}")
            i += 1
            calls[0] = i

    def in_the_child():
        # The table as the fork left it: whole (every invariant holds; no other thread is left to
        # use it), and it keeps a new key within its bound.
        assert store._check() == 0
        first = store.get("child")
        assert is_uuid4(first) and store.get("child") == first
        assert 1 <= len(store) <= 1000
        assert store._check() == 0

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(30):
            before = calls[0]
            while calls[0] < before + 100:
                time.sleep(0)
            status = in_child(in_the_child)
            assert status == 0, describe(status)
    finally:
        stop.set()
        worker.join()
    assert is_uuid4(store.get("parent"))


def collect_ids(store, count, tag):
    ids = [store.get("") for _ in range(count)]                  # fresh ids
    ids += [store.get(f"{tag}-{i}") for i in range(count)]       # new entries
    return ids


def test_parent_and_child_never_repeat_each_others_ids():
    store = sessid.Store()
    store.get("warm up the random pool")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            data = "\n".join(collect_ids(store, 2000, "same-tag")).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        finally:
            os._exit(0)
    os.close(write_end)
    ours = collect_ids(store, 2000, "same-tag")
    with os.fdopen(read_end, "rb") as inp:
        theirs = inp.read().decode().split("\n")
    status = wait_for(pid)
    assert status == 0, describe(status)
    assert len(theirs) == 4000 and all(is_uuid4(i) for i in theirs)
    assert not set(ours) & set(theirs)


class HeldKV:
    """A KV whose get of one key waits, in the parent, until released: a lookup left in flight
    across a fork."""

    def __init__(self) -> None:
        from sessid.testing import FakeKV

        self.inner = FakeKV()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.parent = os.getpid()

    def get(self, name):
        if os.getpid() == self.parent and not self.release.is_set():
            self.entered.set()
            self.release.wait(30)
        return self.inner.get(name)

    def set(self, name, value, nx=False, ex=None):
        return self.inner.set(name, value, nx=nx, ex=ex)

    def expire(self, name, seconds):
        return self.inner.expire(name, seconds)


def test_a_lookup_in_flight_at_the_fork_does_not_hold_up_the_child():
    """One KV exchange per key in flight: a child must not wait for a leader of its parent's, which
    never lands in the child."""
    kv = HeldKV()
    store = sessid.Store(kv=kv)
    leader = threading.Thread(target=store.get, args=("sk-held",))
    leader.start()
    try:
        assert kv.entered.wait(10)

        def in_the_child():
            assert is_uuid4(store.get("sk-held"))

        status = in_child(in_the_child, timeout=10)
        assert status == 0, describe(status)
    finally:
        kv.release.set()
        leader.join()
