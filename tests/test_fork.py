"""os.fork(): a store keeps working on both sides, and the two sides never hand out the same id."""

import os
import threading
import time

import pytest

import sessid
from conftest import is_uuid4

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def wait_for(pid, timeout=20.0):
    """The child's exit status; a child that hangs (a lock left held) is killed and fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child hung: a lock was left held across fork()")


def in_child(work):
    """Runs work() in a forked child; returns its exit code (0 when work returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if work() else 2
        finally:
            os._exit(code)
    return wait_for(pid)


def test_a_store_used_before_fork_works_on_both_sides():
    store = sessid.Store()
    first = store.get("key")
    assert in_child(lambda: store.get("key") == first and is_uuid4(store.get("new"))) == 0
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

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(30):
            before = calls[0]
            while calls[0] < before + 100:
                time.sleep(0)
            code = in_child(lambda: store.get("child") == store.get("child") and len(store) >= 0)
            assert code == 0
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
    assert wait_for(pid) == 0
    assert len(theirs) == 4000 and all(is_uuid4(i) for i in theirs)
    assert not set(ours) & set(theirs)
