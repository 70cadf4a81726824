"""What the README promises about threads, copies and interpreters, as a user would meet it: a long
key is hashed while other threads run, a Store is never copied, and the module runs in an
interpreter that has its own GIL."""

import copy
import importlib
import os
import pickle
import sys
import threading
import time

import pytest

import sessid
from conftest import is_uuid4

GIL_RELEASED_FROM = 64 * 1024           # "Keys of 64 KiB or more are hashed with the GIL released."


def other_thread_ran_during(call, deadline: float) -> bool:
    """Whether a second Python thread ran while call() ran, trying again until the deadline.

    The switch interval is made so long that this thread never hands the GIL over by itself: the
    other thread can run only while call() releases the GIL. It hands the GIL back at once each
    time it runs (a sleep releases it), so the call never waits long to take it back."""
    runs = 0
    stop = False

    def count_runs():
        nonlocal runs
        while not stop:
            runs += 1
            time.sleep(0.0001)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    other = threading.Thread(target=count_runs)
    other.start()
    try:
        while True:
            before = runs
            call()
            if runs != before:
                return True
            if time.monotonic() > deadline:
                return False
    finally:
        stop = True
        other.join()
        sys.setswitchinterval(interval)


def test_a_call_that_holds_the_gil_lets_no_other_thread_run():
    """The method of the test below, checked: pure Python code never lets the other thread in."""
    assert not other_thread_ran_during(lambda: sum(range(100_000)), time.monotonic() + 0.5)


@pytest.mark.parametrize("size", [GIL_RELEASED_FROM, 16 * 1024 * 1024], ids=["64KiB", "16MiB"])
@pytest.mark.parametrize("kind", [bytes, bytearray, str])
def test_a_long_key_is_hashed_while_other_threads_run(size, kind):
    key = "k" * size if kind is str else kind(b"k" * size)
    store = sessid.Store()
    first = store.get(key)
    assert other_thread_ran_during(lambda: store.get(key), time.monotonic() + 10)
    assert store.get(key) == first and is_uuid4(first)


REFUSALS = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    **{f"pickle protocol {p}": (lambda s, p=p: pickle.dumps(s, protocol=p))
       for p in range(pickle.HIGHEST_PROTOCOL + 1)},
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
@pytest.mark.parametrize("options", [{}, {"max_entries": 10, "ttl": 60}], ids=["default", "set"])
def test_a_store_cannot_be_copied_or_pickled(refusal, options):
    """A copy would be a second table that hands out other ids for the same keys."""
    store = sessid.Store(**options)
    first = store.get("sk-1")
    with pytest.raises(TypeError, match="Store"):
        refusal(store)
    assert store.get("sk-1") == first


def test_a_store_inside_a_container_is_not_copied_either():
    store = sessid.Store()
    with pytest.raises(TypeError, match="Store"):
        copy.deepcopy({"store": store})


def isolated_interpreters():
    """Runs code in a new interpreter with its own GIL, through whichever interface this Python
    has: PEP 734's (concurrent.interpreters, or the interpreters backport), else the low-level
    module of 3.13 (_interpreters) or 3.12 (_xxsubinterpreters). None when it has none."""
    if sys.version_info < (3, 12):
        return None                     # a per-interpreter GIL came with 3.12
    for name in ("concurrent.interpreters", "interpreters"):
        try:
            high = importlib.import_module(name)
        except ImportError:
            continue

        def run_high(code, high=high):
            interp = high.create()
            try:
                interp.exec(code)
            finally:
                interp.close()
        return run_high
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            low = importlib.import_module(name)
        except ImportError:
            continue

        def run_low(code, low=low, name=name):
            if name == "_interpreters":
                interp = low.create("isolated")
            else:
                interp = low.create(isolated=True)
            try:
                if hasattr(low, "get_config"):
                    assert low.get_config(interp).gil == "own"
                failure = low.run_string(interp, code)      # 3.12 raises what the code raised
                assert failure is None, failure.errdisplay  # 3.13 returns it
            finally:
                low.destroy(interp)
        return run_low
    return None


run_isolated = isolated_interpreters()


@pytest.mark.skipif(run_isolated is None, reason="this Python has no interpreter with its own GIL")
def test_the_module_runs_in_an_interpreter_with_its_own_gil(tmp_path):
    """The module declares Py_MOD_PER_INTERPRETER_GIL_SUPPORTED; an isolated interpreter refuses to
    import a module that does not. There, the default store and a shared table work, and the table
    is the one this interpreter sees."""
    table = str(tmp_path / "table")
    here = sessid.Store(shared=table, ttl=60, max_entries=100)
    first = here.get("sk-shared")
    read_end, write_end = os.pipe()
    try:
        run_isolated(
            "import os, sessid\n"
            "assert sessid.get('sk-1') == sessid.get('sk-1')\n"
            f"store = sessid.Store(shared={table!r}, ttl=60, max_entries=100)\n"
            f"os.write({write_end}, ' '.join([sessid.get('sk-1'), store.get('sk-shared'),\n"
            "                                store.get('sk-made-there')]).encode())\n"
        )
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            theirs, shared, made_there = pipe.read().decode().split()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert is_uuid4(theirs) and theirs != sessid.get("sk-1")   # each interpreter its own default
    assert shared == first
    assert here.get("sk-made-there") == made_there
    del here
    sessid.remove_shared(table)
