"""A shared table trusts nothing it does not own (issue 18): no neighbour can hang, crash or wipe it.

Each test is one row of the issue's table, as a user meets it: a process stopped while it holds
the table's lock, another boot id or none, a file that is not a table, damaged header and state
words, every slot taken, garbage times, another time namespace, a restrictive umask, a lock left
beyond repair, a table removed under running workers, a death inside the lock of a big table, and
len()/purge()/clear() of a big table. Whatever the file holds, every answer is a version 4 UUID or
a sessid.Error naming the file: never a crash, a hang, or a SystemError.

The byte offsets below are csrc/file_format.h's (pinned there by _Static_asserts).
"""

from __future__ import annotations

import ctypes
import logging
import math
import mmap
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sessid
from conftest import is_uuid4
from test_shared import (
    ENTRY,
    SMALL,
    describe,
    digest,
    file_of,
    in_child,
    kill_after,
    killed,
    needs_kill_hook,
    open_fails,
    overwrite,
    read_file,
    slots,
    start_servers,
    stop_servers,
    ask,
    tables,  # noqa: F401  (the fixture)
    wait_for,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")

# struct file_header
CAPACITY_OFFSET = 32
UNDO_RECORDS_OFFSET = 56
FILE_SIZE_OFFSET = 64
BOOT_ID_OFFSET = 72
BOOT_ID_SIZE = 40
MUTEX_OFFSET = 120
STATE_OFFSET = 192                  # struct shared_state, whose first member is struct head
SLOTS_OFFSET = 4 * 4096             # SESSID_FILE_HEADER_SIZE
# struct head, inside the state
HEAD_CLOCK = STATE_OFFSET + 16
HEAD_CAPACITY = STATE_OFFSET + 56
HEAD_COUNT = STATE_OFFSET + 64
HEAD_OLDEST = STATE_OFFSET + 72
HEAD_NEWEST = STATE_OFFSET + 76
NIL = 0xFFFFFFFF

EOWNERDEAD = 130                    # Linux

libc = ctypes.CDLL(None, use_errno=True)


def capacity_of(max_entries: int) -> int:
    return (4 * max_entries + 2) // 3 + 1         # room for max_entries within 75% of the slots


def table_clock(path: str) -> float:
    with open(path, "rb") as f:
        f.seek(HEAD_CLOCK)
        return struct.unpack("<d", f.read(8))[0]


def issue(store: sessid.Store, count: int, prefix: str = "sk") -> dict[str, str]:
    return {f"{prefix}-{i}": store.get(f"{prefix}-{i}") for i in range(count)}


def ids_of(store: sessid.Store, keys: Any) -> dict[str, str]:
    return {key: store.get(key) for key in keys}


# ---- another process's hold of the lock, as a program other than sessid takes it ----


def map_mutex(path: str) -> tuple[mmap.mmap, ctypes.c_void_p]:
    """Maps the file's first page; returns the mapping and the address of the table's mutex."""
    fd = os.open(path, os.O_RDWR)
    mapping = mmap.mmap(fd, 4096)
    os.close(fd)
    return mapping, ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(mapping, MUTEX_OFFSET)))


def stopped_holder(path: str) -> int:
    """A child that takes the table's lock and stops itself (SIGSTOP) while it holds it; returns
    once it is stopped. When continued, it releases the lock and exits."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _, mutex = map_mutex(path)
            rc = libc.pthread_mutex_lock(mutex)
            os.write(write_end, bytes([rc]))
            os.kill(os.getpid(), signal.SIGSTOP)
            code = libc.pthread_mutex_unlock(mutex)
        finally:
            os._exit(code)
    os.close(write_end)
    taken = os.read(read_end, 1)
    os.close(read_end)
    assert taken == b"\0", f"the holder could not take the lock: {taken!r}"
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), describe(status)
    return pid


def let_go(pid: int, how: str) -> None:
    """Continues the stopped holder (it releases the lock) or kills it (the lock is left
    owner-dead)."""
    if how == "continued":
        os.kill(pid, signal.SIGCONT)
        status = wait_for(pid)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    else:
        os.kill(pid, signal.SIGKILL)
        assert killed(wait_for(pid))


def lock_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sessid" and r.levelno == logging.WARNING]


# ---- row 1: a process stopped while it holds the lock ----


@pytest.mark.parametrize("then", ["continued", "killed"])
def test_a_stopped_holder_delays_a_call_by_lock_timeout_at_most_and_changes_no_id(
        tables, caplog, then):
    path = tables.path("stopped")
    timeout = 0.5
    store = sessid.Store(shared=path, lock_timeout=timeout, **SMALL)
    issued = issue(store, 20)
    holder = stopped_holder(path)
    try:
        caplog.set_level(logging.WARNING, logger="sessid")
        started = time.monotonic()
        answer = store.get("sk-new-0")
        waited = time.monotonic() - started
        assert is_uuid4(answer)
        assert timeout * 0.9 <= waited < timeout + 5.0
        # The window: best-effort calls answer at once, and the timeout is logged once.
        answers = [store.get(f"sk-new-{i}") for i in range(1, 4)]
        assert all(is_uuid4(a) for a in answers)
        assert len(set(answers + [answer])) == 4
        logged = lock_warnings(caplog)
        assert len(logged) == 1, [r.getMessage() for r in logged]
        assert path in logged[0].getMessage()
        assert "lock_timeout" in logged[0].getMessage()

        with pytest.raises(sessid.LockTimeout, match=re.escape(path)):
            store.get_required("sk-new-required")
        assert issubclass(sessid.LockTimeout, sessid.Error)
        window_ends = time.monotonic() + timeout       # the required call's timeout began one

        # Once the window has passed, one call waits again (a probe), and logs again.
        while time.monotonic() < window_ends + 0.05:
            time.sleep(0.05)
        assert is_uuid4(store.get("sk-new-probe"))
        assert len(lock_warnings(caplog)) == 2
    finally:
        let_go(holder, then)

    assert store.stats()["lock_timeouts"] >= 3
    assert ids_of(store, issued) == issued
    assert store._check() == 0
    other = sessid.Store(shared=path, **SMALL)
    assert ids_of(other, issued) == issued


def test_other_threads_run_while_a_call_waits_for_a_stopped_holder(tables):
    path = tables.path("gil")
    store = sessid.Store(shared=path, lock_timeout=1.0, **SMALL)
    store.get("sk-1")
    holder = stopped_holder(path)
    try:
        outcome: list[Any] = []

        def call() -> None:
            start = time.monotonic()
            try:
                store.get_required("sk-waits")
                outcome.append("answered")
            except BaseException as error:          # noqa: BLE001  (asserted below)
                outcome.append(error)
            outcome.extend([start, time.monotonic()])

        waiter = threading.Thread(target=call)
        waiter.start()
        ticks = []
        while waiter.is_alive():
            ticks.append(time.monotonic())
            time.sleep(0.001)
        waiter.join()
    finally:
        let_go(holder, "continued")
    error, start, end = outcome
    assert isinstance(error, sessid.LockTimeout), error
    assert end - start >= 0.9
    # This thread ran in the middle of the wait: the call did not hold the GIL while it waited.
    assert any(start + 0.2 < tick < end - 0.2 for tick in ticks)


def test_lock_timeout_needs_shared_and_a_sane_value(tables):
    with pytest.raises(ValueError, match="lock_timeout"):
        sessid.Store(lock_timeout=1.0)
    with pytest.raises(ValueError, match="lock_timeout"):
        sessid.Store(shared=tables.path("neg"), lock_timeout=-1, **SMALL)


# ---- rows 2 and 3: a table in use is never remade; a file that is not a table is left alone ----


@pytest.mark.parametrize("boot_id", [
    b"00000000-0000-4000-8000-000000000000\n",   # another boot: a container with another /proc
    b"",                                         # none: a maker that could not read /proc/sys
], ids=["another boot id", "no boot id"])
def test_a_table_in_use_is_never_remade_whatever_its_boot_id_says(tables, boot_id):
    path = tables.path("inuse")
    store = sessid.Store(shared=path, **SMALL)          # keeps the table open: in use
    issued = issue(store, 100)
    overwrite(path, boot_id.ljust(BOOT_ID_SIZE, b"\0"), BOOT_ID_OFFSET)

    def other_process() -> None:
        other = sessid.Store(shared=path, **SMALL)
        assert ids_of(other, issued) == issued
        assert len(other) == 100

    status = in_child(other_process)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert ids_of(store, issued) == issued
    assert store._check() == 0


def test_a_file_whose_header_is_all_zeros_is_refused_and_left_byte_for_byte(tables):
    path = tables.path("zeros")
    store = sessid.Store(shared=path, **SMALL)
    store.get("sk-1")
    del store
    data = read_file(path)
    data = bytes(SLOTS_OFFSET) + data[SLOTS_OFFSET:]
    Path(path).write_bytes(data)
    open_fails(path, "is not a sessid shared table")
    assert read_file(path) == data


def test_an_empty_file_at_an_absolute_path_is_refused_and_left_empty(tables):
    path = tables.path("empty")
    Path(path).write_bytes(b"")
    open_fails(path, "is not a sessid shared table", "it is empty")
    assert read_file(path) == b""


# ---- row 4: damaged header and state words ----


def damage_capacity(path: str) -> None:
    overwrite(path, struct.pack("<Q", 1 << 40), CAPACITY_OFFSET)


def damage_size_and_shrink(path: str) -> None:
    size = os.path.getsize(path) - 8 * 4096
    overwrite(path, struct.pack("<Q", size), FILE_SIZE_OFFSET)
    os.truncate(path, size)


def damage_undo_records(path: str) -> None:
    overwrite(path, struct.pack("<Q", 1 << 50), UNDO_RECORDS_OFFSET)


HEADER_DAMAGE: dict[str, Callable[[str], None]] = {
    "capacity 2^40": damage_capacity,
    "file_size and the file shrunk together": damage_size_and_shrink,
    "undo log of 2^50 records": damage_undo_records,
}


@pytest.mark.parametrize("damage", HEADER_DAMAGE)
def test_a_damaged_header_is_refused_and_left_alone(tables, damage):
    path = tables.path("header")
    store = sessid.Store(shared=path, **SMALL)
    store.get("sk-1")
    del store
    HEADER_DAMAGE[damage](path)
    data = read_file(path)
    open_fails(path, "is not a sessid shared table")
    assert read_file(path) == data


STATE_DAMAGE: dict[str, tuple[int, bytes]] = {
    "oldest out of range": (HEAD_OLDEST, struct.pack("<I", 0x7FFFFFF0)),
    "newest out of range": (HEAD_NEWEST, struct.pack("<I", 0x7FFFFFF0)),
    "both list ends out of range": (HEAD_OLDEST, struct.pack("<II", 5_000_000, 6_000_000)),
    "count beyond max_entries": (HEAD_COUNT, struct.pack("<Q", 1 << 40)),
    "count 0 with the list still there": (HEAD_COUNT, struct.pack("<Q", 0)),
    "capacity 2^40 in the state": (HEAD_CAPACITY, struct.pack("<Q", 1 << 40)),
    "clock NaN": (HEAD_CLOCK, struct.pack("<d", math.nan)),
    "clock 8.8e20": (HEAD_CLOCK, struct.pack("<d", 8.8e20)),
}


def state_damage_cases() -> list[Any]:
    return [pytest.param(damage, opened, id=f"{opened}-{damage}")
            for opened in ("before", "after") for damage in STATE_DAMAGE]


def answers_or_refuses(store: sessid.Store, path: str, keys: Any) -> dict[str, str]:
    """Every call answers a version 4 UUID or raises sessid.Error naming the file; returns the
    answers."""
    answers = {}
    for key in keys:
        try:
            answers[key] = store.get(key)
        except sessid.Error as error:
            assert path in str(error), error
            continue
        assert is_uuid4(answers[key]), answers[key]
    for call in (len, lambda s: s.purge(), lambda s: s.stats(), lambda s: s.get_required("sk-r")):
        try:
            call(store)
        except sessid.Error as error:
            assert path in str(error), error
    return answers


@pytest.mark.parametrize(("damage", "opened"), state_damage_cases())
def test_damaged_state_words_are_repaired_or_refused_never_a_crash(tables, damage, opened):
    """`before`: a process that had the table open meets the damage at its next call; `after`: a
    process opens the damaged table. Either way every id handed out before is kept (the table is
    rebuilt from its slots) or the call raises sessid.Error; the work runs in a child, so that a
    crash fails the test instead of ending the test session."""
    path = tables.path("state")
    store = sessid.Store(shared=path, **SMALL)
    issued = issue(store, 50)
    offset, data = STATE_DAMAGE[damage]

    def use() -> None:
        user = store if opened == "before" else None
        if opened == "before":
            overwrite(path, data, offset)
        else:
            overwrite(path, data, offset)
            user = sessid.Store(shared=path, **SMALL)
        answers = answers_or_refuses(user, path, list(issued) + [f"sk-new-{i}" for i in range(20)])
        for key, sid in issued.items():
            assert answers.get(key, sid) == sid, f"the id of {key} changed"
        assert user._check() == 0
        assert table_clock(path) < time.monotonic() + 86400

    status = in_child(use)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


# ---- row 5: every slot taken ----


def fill_every_slot(path: str, max_entries: int, last_use: float) -> None:
    """Writes a valid-looking entry (a random digest, a version 4 id) into every slot, with no
    links: a file no table can make."""
    capacity = capacity_of(max_entries)
    image = bytearray()
    for _ in range(capacity):
        image += ENTRY.pack(os.urandom(32), uuid.uuid4().bytes, last_use, NIL, NIL)
    overwrite(path, bytes(image), SLOTS_OFFSET)


@pytest.mark.parametrize("opened", ["before", "after"])
def test_every_slot_taken_ends_every_call_with_a_version_4_id(tables, opened):
    path = tables.path("full")
    options = {"ttl": 600.0, "max_entries": 100}
    store = sessid.Store(shared=path, **options)
    store.get("sk-0")

    def use() -> None:
        fill_every_slot(path, options["max_entries"], time.monotonic())
        user = store if opened == "before" else sessid.Store(shared=path, **options)
        answers = answers_or_refuses(user, path, [f"sk-{i}" for i in range(300)])
        assert answers, "every call was refused"
        again = {key: user.get(key) for key in list(answers)[-50:]}
        assert all(is_uuid4(sid) for sid in again.values())
        assert len(user) <= options["max_entries"]
        assert user._check() == 0

    status = in_child(use, timeout=120)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


# ---- row 6: garbage times in slots ----


def garble_times(path: str, store: sessid.Store, keys: list[str], value: float) -> None:
    where = slots(store)
    for key in keys:
        slot, _ = where[digest(key)]
        overwrite(path, struct.pack("<d", value), SLOTS_OFFSET + slot * ENTRY.size + 48)


@pytest.mark.parametrize("death", [
    "none",
    pytest.param("inside the lock", marks=needs_kill_hook),
])
def test_garbage_times_in_slots_never_become_the_tables_clock(tables, death):
    path = tables.path("times")
    store = sessid.Store(shared=path, **SMALL)
    issued = issue(store, 50)
    garbled = list(issued)[:10]
    garble_times(path, store, garbled, 8.8e20)
    if death != "none":
        def dies() -> None:
            other = sessid.Store(shared=path, **SMALL)
            kill_after(3)
            for key in issued:
                other.get(key)
            other.get("sk-new")
        assert killed(in_child(dies))

    first = ids_of(store, issued)
    assert all(is_uuid4(sid) for sid in first.values())
    assert table_clock(path) < time.monotonic() + 86400
    # Keys used afterwards keep their ids; the undamaged ones kept the ids handed out before.
    assert ids_of(store, issued) == first
    for key in issued:
        if key not in garbled:
            assert first[key] == issued[key], f"the id of {key} changed"
    assert len(store) == len(issued)
    assert store._check() == 0
    assert ids_of(sessid.Store(shared=path, **SMALL), issued) == first


# ---- row 7: another time namespace ----


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-T", "--monotonic", "100000", "true"],
                           capture_output=True)
    return probe.returncode == 0


TIME_NAMESPACE_USER = """
import sys, sessid
path, key = sys.argv[1], sys.argv[2]
try:
    store = sessid.Store(shared=path, ttl=600.0, max_entries=1000)
    print("id", store.get(key))
except sessid.Error as error:
    print("refused", error)
"""


def test_a_process_in_another_time_namespace_moves_no_clock(tables):
    if not unshare_works():
        pytest.skip("unshare -T needs root (or a user namespace) and a kernel with time "
                    "namespaces")
    path = tables.path("timens")
    store = sessid.Store(shared=path, **SMALL)
    sid = store.get("sk-1")
    clock_before = table_clock(path)
    result = subprocess.run(
        ["unshare", "-T", "--monotonic", "100000", sys.executable, "-c", TIME_NAMESPACE_USER,
         path, "sk-1"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    kind, _, answer = result.stdout.strip().partition(" ")
    assert kind in ("id", "refused"), result.stdout
    if kind == "id":
        assert answer == sid, "the key got a new id in the other namespace"
    else:
        assert path in answer
    assert table_clock(path) < clock_before + 1000, "the table's clock moved ahead"
    assert store.get("sk-1") == sid


# ---- row 8: the creator's umask ----


def test_the_file_is_0600_whatever_the_creators_umask(tables):
    path = tables.path("umask")
    read_end, write_end = os.pipe()

    def create() -> None:
        os.umask(0o277)
        made = sessid.Store(shared=path, **SMALL)
        os.write(write_end, made.get("sk-1").encode())

    status = in_child(create)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    os.close(write_end)
    sid = os.read(read_end, 64).decode()
    os.close(read_end)
    assert os.stat(path).st_mode & 0o7777 == 0o600

    def use() -> None:
        assert sessid.Store(shared=path, **SMALL).get("sk-1") == sid

    status = in_child(use)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


# ---- row 9: a lock left beyond repair ----


def leave_lock_unrecoverable(path: str) -> None:
    """One process dies holding the table's lock; another takes it (owner dead) and releases it
    without marking it consistent, as a program other than sessid may: the mutex is then
    ENOTRECOVERABLE for ever."""
    def die_holding() -> None:
        _, mutex = map_mutex(path)
        assert libc.pthread_mutex_lock(mutex) == 0
        os._exit(0)

    def release_unrepaired() -> None:
        _, mutex = map_mutex(path)
        assert libc.pthread_mutex_lock(mutex) == EOWNERDEAD
        assert libc.pthread_mutex_unlock(mutex) == 0

    for step in (die_holding, release_unrepaired):
        status = in_child(step)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


LOCKED_CALLS: dict[str, Callable[[sessid.Store], object]] = {
    "get": lambda s: s.get("sk-new"),
    "get_required": lambda s: s.get_required("sk-new"),
    "get of a known key": lambda s: s.get("sk-1"),
    "forget": lambda s: s.forget("sk-1"),
    "len": len,
    "purge": lambda s: s.purge(),
    "stats": lambda s: s.stats(),
    "clear": lambda s: s.clear(),
}


def beyond_repair(path: str, call: Callable[[], object]) -> None:
    with pytest.raises(sessid.Error) as info:
        call()
    message = str(info.value)
    assert not isinstance(info.value, sessid.LockTimeout), message
    assert path in message and "beyond repair" in message, message
    assert "remove_shared" in message, message


@pytest.mark.parametrize("call", LOCKED_CALLS)
def test_a_lock_beyond_repair_is_a_sessid_error_naming_the_file(tables, call):
    path = tables.path("unrecoverable")
    store = sessid.Store(shared=path, **SMALL)
    store.get("sk-1")
    leave_lock_unrecoverable(path)
    beyond_repair(path, lambda: LOCKED_CALLS[call](store))


def test_a_lock_beyond_repair_stays_a_sessid_error_for_every_later_call(tables):
    path = tables.path("unrecoverable")
    store = sessid.Store(shared=path, lock_timeout=0.2, **SMALL)
    store.get("sk-1")
    leave_lock_unrecoverable(path)
    for call in LOCKED_CALLS.values():
        beyond_repair(path, lambda: call(store))

    def aget() -> object:
        import asyncio
        return asyncio.run(store.aget("sk-new"))

    beyond_repair(path, aget)
    beyond_repair(path, lambda: sessid.Store(shared=path, **SMALL).get("sk-2"))

    def other_process() -> None:
        beyond_repair(path, lambda: sessid.Store(shared=path, **SMALL).get("sk-3"))

    status = in_child(other_process)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


def test_a_table_whose_lock_is_beyond_repair_can_be_removed_and_made_again(tables):
    path = tables.path("unrecoverable")
    store = sessid.Store(shared=path, **SMALL)
    store.get("sk-1")
    leave_lock_unrecoverable(path)
    assert sessid.remove_shared(path) is True
    assert is_uuid4(sessid.Store(shared=path, **SMALL).get("sk-1"))
    del store


# ---- row 10: a table removed while workers run ----


def test_a_worker_follows_its_tables_name_after_remove_shared(tables):
    name = tables.name("follow")
    (worker,) = start_servers(name, SMALL, 1, method="fork")
    try:
        keys = [f"sk-{i}" for i in range(20)]
        before = {key: ask(worker, "get", key)[0] for key in keys}
        assert sessid.remove_shared(name) is True
        # A store checks its name once a tick of its clock (4 ms): let one pass.
        time.sleep(0.01)
        newcomer = sessid.Store(shared=name, **SMALL)
        now_ids = {}
        for i, key in enumerate(keys):      # each key asked first by one or the other
            if i % 2:
                now_ids[key] = ask(worker, "get", key)[0]
                assert newcomer.get(key) == now_ids[key], key
            else:
                now_ids[key] = newcomer.get(key)
                assert ask(worker, "get", key)[0] == now_ids[key], key
        assert all(now_ids[key] != before[key] for key in keys)
        assert ask(worker, "__len__")[0] == len(keys)
    finally:
        stop_servers([worker])


# ---- rows 11 and 12: a big table ----

BIG = {"ttl": 3600.0, "max_entries": 1_000_000}


@pytest.fixture(scope="module")
def million(tmp_path_factory) -> Any:
    """A full table of a million entries, made once for the tests of this module that need one."""
    path = str(tmp_path_factory.mktemp("big") / "million")
    store = sessid.Store(shared=path, **BIG)
    get = store.get
    for i in range(BIG["max_entries"]):
        get(f"sk-big-{i}")
    del store
    yield path
    os.unlink(path)


@pytest.fixture
def big_table(million, tables) -> str:
    """A copy of the million-entry table, for one test to spend."""
    path = tables.path("big")
    shutil.copyfile(million, path)
    os.chmod(path, 0o600)
    return path


@pytest.mark.slow
@needs_kill_hook
def test_a_death_inside_the_lock_of_a_million_entries_costs_the_next_call_little(big_table):
    store = sessid.Store(shared=big_table, **BIG)
    known = store.get("sk-big-999999")
    waits = []
    for step in (1, 2, 3, 5, 8, 13, 21):
        def dies() -> None:
            other = sessid.Store(shared=big_table, **BIG)
            kill_after(step)
            other.get(f"sk-evicts-{step}")      # a full table: an eviction, then an insert

        status = in_child(dies, timeout=120)
        if not killed(status):
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
            continue
        started = time.monotonic()
        answer = store.get(f"sk-after-{step}")
        waits.append(time.monotonic() - started)
        assert is_uuid4(answer)
    assert waits, "no call was killed inside the lock"
    # The issue's bound is 5 ms (the benchmark reports the figure); this one leaves room for a
    # slow debug build on a busy machine, and still fails a repair that reads the whole table.
    assert max(waits) < 0.1, waits
    assert store.get("sk-big-999999") == known


def expire_every_entry(path: str, max_entries: int) -> int:
    """Moves every entry's time of last use to one moment a whole TTL before the table's clock:
    a table whose every entry has expired, its list still in order. Returns how many."""
    clock = table_clock(path)
    capacity = capacity_of(max_entries)
    fd = os.open(path, os.O_RDWR)
    try:
        with mmap.mmap(fd, SLOTS_OFFSET + capacity * ENTRY.size) as mapping:
            view = memoryview(mapping)[SLOTS_OFFSET:SLOTS_OFFSET + capacity * ENTRY.size]
            times = view.cast("d")
            ids = view
            expired = 0
            stale = clock - BIG["ttl"] - 1
            for slot in range(capacity):
                if ids[slot * 64 + 38] >> 4 == 4:
                    times[slot * 8 + 6] = stale
                    expired += 1
            del times, ids
            view.release()
    finally:
        os.close(fd)
    return expired


def longest_wait_of_another_process(path: str, options: dict[str, Any],
                                    work: Callable[[], object]) -> tuple[float, int]:
    """Runs work() here while another process makes new entries (each needs the lock) as fast as
    it can; returns the longest that process waited for one call, and how many entries it made."""
    ready_r, ready_w = os.pipe()
    stop_r, stop_w = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            other = sessid.Store(shared=path, lock_timeout=30.0, **options)
            os.write(ready_w, b"r")
            longest, i = 0.0, 0
            os.set_blocking(stop_r, False)
            while True:
                try:
                    if os.read(stop_r, 1):
                        break
                except BlockingIOError:
                    pass
                started = time.monotonic()
                other.get_required(f"sk-probe-{i}")
                longest = max(longest, time.monotonic() - started)
                i += 1
            os.write(result_w, struct.pack("<dQ", longest, i))
            code = 0
        finally:
            os._exit(code)
    assert os.read(ready_r, 1) == b"r"
    try:
        work()
    finally:
        os.write(stop_w, b"s")
    status = wait_for(pid, 120)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    longest, made = struct.unpack("<dQ", os.read(result_r, 16))
    for fd in (ready_r, ready_w, stop_r, stop_w, result_r, result_w):
        os.close(fd)
    return longest, made


@pytest.mark.slow
@pytest.mark.parametrize("call", ["purge", "len", "clear"])
def test_purge_len_and_clear_of_a_million_entries_hold_up_no_other_process(big_table, call):
    path = big_table
    count = expire_every_entry(path, BIG["max_entries"])
    assert count == BIG["max_entries"]
    store = sessid.Store(shared=path, **BIG)
    done: list[object] = []
    work = {"purge": store.purge, "len": lambda: len(store), "clear": store.clear}[call]
    started = time.monotonic()
    longest, made = longest_wait_of_another_process(path, BIG, lambda: done.append(work()))
    took = time.monotonic() - started
    print(f"{call} took {took:.3f} s; the other process made {made} entries meanwhile, waiting "
          f"{longest:.4f} s at most for one")
    # Every entry of before is gone (reclaimed by the call, or by the other process's calls);
    # those the other process made are all there.
    if call == "len":
        assert done[0] <= made
    if call == "clear":                 # it drops the entries made before it began, too
        assert len(store) <= made
    else:
        assert len(store) == made
    # The issue's bound is 1 ms (the benchmark reports the figure). Here, on a machine that may be
    # busy, the other process must not have waited for the whole call, as it would for one hold
    # of the lock over the whole table.
    assert longest < min(0.5, took / 4), (longest, took)

