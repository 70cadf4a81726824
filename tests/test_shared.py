"""Store(shared=...): one table per host in a file that every process maps.

What a user relies on: processes (spawn and fork) and threads agree on one id per key and ids
outlive the processes; the file has a fixed size and evicts when full; expiry is the same in every
process; every bad or mismatched file is a clear sessid.Error naming it; a file system without room
fails when the store is made and leaves nothing behind; a process killed at any moment, even inside
the table's lock, loses no id; counts, clear() and the KV near cache are host-wide.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import itertools
import math
import multiprocessing
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sessid
import shared_workers
from conftest import is_uuid4
from processes import describe, in_child, killed, wait_for
from sessid.testing import FakeKV

# Forking is how most of these tests make a second process; the parent starts no thread, but a test
# that ran earlier in the session may have left one (as in test_fork.py).
pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")

SHM_PREFIX = "/dev/shm/sessid-"
PAGE = 4096
LAYOUT_OFFSET = 8
BOOT_ID_OFFSET = 72             # after magic, layout, header_size, the fingerprint, five settings
BOOT_ID_SIZE = 40
READY_OFFSET = 112              # the word a maker sets last, once the table is whole
SMALL = {"ttl": 600.0, "max_entries": 1000}

kill_after = getattr(sessid._sessid, "_kill_after", None)
needs_kill_hook = pytest.mark.skipif(
    kill_after is None,
    reason="sessid._sessid._kill_after exists only in a debug build "
    "(SESSID_DEBUG=1 pip install -e .), which defines SESSID_FAULT_INJECTION",
)


def file_of(shared: str | os.PathLike[str]) -> str:
    text = os.fspath(shared)
    return text if text.startswith("/") else SHM_PREFIX + text


def slots_size(max_entries: int) -> int:
    """Bytes of the slots (64 each), of the repair's scratch words (4 each) and of the undo log's
    records (72 each, up to 4,096, from a cache line), in whole pages: room for max_entries within
    75% of the slots."""
    capacity = (4 * max_entries + 2) // 3 + 1
    undo = min(capacity + 16, 4096) * 72
    return -(-(-(-capacity * (64 + 4) // 64) * 64 + undo) // PAGE) * PAGE


def header_size(size: int, max_entries: int) -> int:
    """The header's bytes in a table file of `size` bytes: whole pages, a few of them."""
    header = size - slots_size(max_entries)
    assert header % PAGE == 0 and PAGE <= header <= 16 * PAGE, f"{size} bytes"
    return header


_serial = itertools.count()


class Tables:
    """Unique names and paths for the tables of one test; each is removed at teardown, whatever
    the test turned its file into."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[str] = []

    def name(self, tag: str) -> str:
        name = f"test-{os.getpid()}-{next(_serial)}-{tag}"
        self.made.append(name)
        return name

    def path(self, tag: str) -> str:
        path = str(self.directory / f"{tag}-{next(_serial)}")
        self.made.append(path)
        return path

    def remove_all(self) -> None:
        for shared in self.made:
            file = file_of(shared)
            try:
                mode = os.lstat(file).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                os.rmdir(file)
            elif not stat.S_ISREG(mode):
                os.unlink(file)             # remove_shared may not be given a FIFO: see below
            else:
                try:
                    sessid.remove_shared(shared)
                except sessid.Error:
                    os.unlink(file)         # a test made it into another kind of file


@pytest.fixture
def tables(tmp_path: Path):
    made = Tables(tmp_path)
    yield made
    gc.collect()
    made.remove_all()


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def overwrite(path: str, data: bytes, offset: int = 0) -> None:
    """Writes into the file in place, so that every mapping of it sees the change."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


# ---- processes and threads agree ----


def collect(results: Any, count: int) -> list[dict[str, str]]:
    answers = [results.get(timeout=120) for _ in range(count)]
    errors = [text for kind, text in answers if kind != "ok"]
    assert not errors, "\n".join(errors)
    return [ids for _, ids in answers]


def join_all(processes: list[Any]) -> None:
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0, f"{p} ended with {p.exitcode}"


def race(method: str, name: str, options: dict[str, Any], keys: list[str], processes: int,
         threads: int) -> dict[str, str]:
    """Starts processes of `threads` threads each that get keys from the table `name` at once (a
    barrier), and returns the ids they all saw (they must agree)."""
    context = multiprocessing.get_context(method)
    barrier = context.Barrier(processes)
    results = context.Queue()
    racers = [context.Process(target=shared_workers.race,
                              args=(name, options, keys, threads, barrier, results))
              for _ in range(processes)]
    for p in racers:
        p.start()
    seen = collect(results, processes)
    join_all(racers)
    assert all(ids == seen[0] for ids in seen)
    return seen[0]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_processes_and_their_threads_racing_on_new_keys_agree_and_the_ids_outlive_them(
        tables, method):
    """The racers also make the table: none of them finds it in place."""
    name = tables.name(method)
    keys = [f"sk-race-{i}" for i in range(300)]
    processes, threads = 4, 4
    ids = race(method, name, SMALL, keys, processes, threads)
    assert all(is_uuid4(ids[key]) for key in keys)
    assert len(set(ids.values())) == len(keys)

    # Once every racer has exited and no process maps the table, a new one finds the same ids.
    late = multiprocessing.get_context("spawn")
    results = late.Queue()
    reader = late.Process(target=shared_workers.read, args=(name, SMALL, keys, results))
    reader.start()
    assert collect(results, 1) == [ids]
    join_all([reader])

    store = sessid.Store(shared=name, **SMALL)
    stats = store.stats()
    assert stats["misses"] == len(keys)             # each id was made once on the whole host
    assert stats["hits"] == (processes * threads + 1) * len(keys) - len(keys)
    assert len(store) == len(keys)
    assert store._check() == 0


def test_processes_making_the_same_new_table_at_once_all_succeed_and_agree(tables):
    """A large table takes a while to allocate, which gives the racers time to collide."""
    options = {"ttl": 600.0, "max_entries": 200_000}
    for round_ in range(3):
        name = tables.name(f"create{round_}")
        ids = race("fork", name, options, ["sk-1", "sk-2"], processes=6, threads=1)
        store = sessid.Store(shared=name, **options)
        assert store.stats()["misses"] == 2
        assert store.get("sk-1") == ids["sk-1"]
        header_size(os.path.getsize(file_of(name)), options["max_entries"])
        del store


# ---- capacity ----


def test_a_full_table_evicts_the_least_recently_used_and_keeps_its_size(tables):
    name = tables.name("cap")
    n = 500
    store = sessid.Store(shared=name, ttl=600, max_entries=n)
    file = file_of(name)
    size = os.path.getsize(file)
    header_size(size, n)
    ids = {}
    for i in range(3 * n):
        ids[i] = store.get(f"sk-{i}")
        if i % 100 == 0:
            assert os.path.getsize(file) == size
    assert os.path.getsize(file) == size
    assert len(store) == n
    stats = store.stats()
    assert stats["evicted"] == 2 * n and stats["misses"] == 3 * n and stats["expired"] == 0
    assert store._check() == 0
    other = sessid.Store(shared=name, ttl=600, max_entries=n)
    assert all(other.get(f"sk-{i}") == ids[i] for i in range(2 * n, 3 * n))   # the newest n stay
    assert other.stats()["hits"] == n
    assert other.get("sk-0") != ids[0]                                        # the oldest went
    assert os.path.getsize(file) == size
    assert store._check() == 0


def test_the_default_capacity_is_allocated_in_full_when_the_table_is_made(tables):
    name = tables.name("default")
    store = sessid.Store(shared=name)
    assert store.max_entries == 100_000 and store.shared == name
    st = os.stat(file_of(name))
    assert header_size(st.st_size, 100_000) + slots_size(100_000) == st.st_size
    assert st.st_blocks * 512 >= st.st_size         # no hole left to fault on later
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert sessid._sessid._shared_settings(name) == (3600.0, 100_000)


# ---- expiry ----


def start_servers(name: str, options: dict[str, Any], count: int, method: str = "spawn"):
    """Processes that call the Store's methods on request (shared_workers.serve)."""
    context = multiprocessing.get_context(method)
    servers = []
    for _ in range(count):
        parent, child = context.Pipe()
        process = context.Process(target=shared_workers.serve, args=(name, options, child))
        process.start()
        servers.append((process, parent))
    for process, conn in servers:
        assert conn.poll(60), "a server did not start"
        answer = conn.recv()
        assert answer[0] == "ready", answer
    return servers


def stop_servers(servers) -> None:
    for _, conn in servers:
        conn.send(("stop",))
    join_all([process for process, _ in servers])


def ask(server, method: str, *args: Any):
    """(result, time before the call, time after it) from a server process."""
    _, conn = server
    conn.send((method, *args))
    assert conn.poll(60), f"no answer to {method}"
    result, before, after = conn.recv()
    assert not (isinstance(result, tuple) and result[:1] == ("error",)), result[1]
    return result, before, after


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_expiry_is_the_same_in_every_process(tables):
    """An id lives ttl seconds after its last use, whichever process used it. Each process reports
    the time around each call (the table's time of a call lies in between), so each assertion
    holds whatever the scheduler does. A TTL this short makes the store read the precise clock."""
    ttl = 0.5
    name = tables.name("expiry")
    servers = start_servers(name, {"ttl": ttl, "max_entries": 100}, 2)
    a, b = servers
    try:
        first, a_before, _ = ask(a, "get", "sk-1")
        _, _, other_after = ask(a, "get", "sk-other")
        sleep_until(a_before + 0.5 * ttl)
        same, b_before, b_after = ask(b, "get", "sk-1")           # renews it, from B
        assert b_after < a_before + ttl, "too slow to test"
        assert same == first
        sleep_until(other_after + ttl + 0.01)
        live, _, len_after = ask(b, "__len__")                  # sk-other is gone for B too
        assert len_after < b_before + ttl, "too slow to test"
        assert live == 1
        sleep_until(b_before + 0.8 * ttl)
        kept, _, kept_after = ask(a, "get", "sk-1")
        assert kept_after < b_before + ttl, "too slow to test"
        assert kept == first
        sleep_until(kept_after + ttl + 0.01)
        renewed, _, _ = ask(b, "get", "sk-1")
        assert renewed != first and is_uuid4(renewed)
        assert ask(a, "get", "sk-1")[0] == renewed                # one new id, for both
        stats = ask(a, "stats")[0]
        assert stats["expired"] == 2 and stats["misses"] == 3 and stats["hits"] == 3
    finally:
        stop_servers(servers)


# ---- bad arguments, mismatched and bad files ----


@pytest.mark.parametrize("shared, error", [
    ("", ValueError),
    ("../x", ValueError),
    ("a" * 65, ValueError),
    ("a/b", ValueError),
    ("relative/path", ValueError),
    (Path("relative/path"), ValueError),
    (".hidden", ValueError),
    ("a\0b", ValueError),
    ("/tmp/a\0b", ValueError),
    ("nam e", ValueError),
    (5, TypeError),
    (True, TypeError),
    (b"name", TypeError),
    (["name"], TypeError),
])
def test_a_bad_shared_argument_names_shared(shared, error):
    with pytest.raises(error, match="shared"):
        sessid.Store(shared=shared)
    with pytest.raises(error, match="shared"):
        sessid.remove_shared(shared)


def test_names_of_64_characters_and_absolute_path_likes_are_taken(tables):
    longest = tables.name("x")
    longest = longest + "a" * (64 - len(longest))
    tables.made.append(longest)
    store = sessid.Store(shared=longest, **SMALL)
    assert os.path.exists(SHM_PREFIX + longest)
    assert store.shared == longest
    path = Path(tables.path("pathlike"))
    sid = sessid.Store(shared=path, **SMALL).get("sk-1")
    assert sessid.Store(shared=str(path), **SMALL).get("sk-1") == sid
    assert sessid.remove_shared(path) is True and not path.exists()


def test_a_clock_cannot_be_combined_with_shared(tables):
    name = tables.name("clock")
    with pytest.raises(ValueError, match="clock.*shared"):
        sessid.Store(shared=name, clock=lambda: 0.0)
    assert not os.path.lexists(file_of(name))


def make_table(path: str, **options: Any) -> str:
    """Makes a table with one entry and lets go of it; returns the id."""
    store = sessid.Store(shared=path, **(options or SMALL))
    sid = store.get("sk-1")
    del store
    return sid


def open_fails(path: str, *patterns: str, **options: Any) -> sessid.Error:
    """Opening path fails with a sessid.Error that names it and matches each pattern; the file is
    left as it was."""
    before = read_file(path) if os.path.isfile(path) and not os.path.islink(path) else None
    with pytest.raises(sessid.Error) as info:
        sessid.Store(shared=path, **(options or SMALL))
    message = str(info.value)
    assert path in message
    for pattern in patterns:
        assert pattern in message, message
    if before is not None:
        assert read_file(path) == before
    return info.value


def test_other_settings_than_the_creator_are_refused(tables):
    path = tables.path("settings")
    make_table(path, ttl=60, max_entries=1000)
    common = ("was made with ttl=60.0 and max_entries=1000", "sessid.remove_shared")
    open_fails(path, *common, "not ttl=61.0 and max_entries=1000", ttl=61, max_entries=1000)
    open_fails(path, *common, "not ttl=60.0 and max_entries=1001", ttl=60, max_entries=1001)
    open_fails(path, *common, "not ttl=60.0 and max_entries=100000", ttl=60)
    assert sessid._sessid._shared_settings(path) == (60.0, 1000)
    assert sessid.Store(shared=path, ttl=60, max_entries=1000).get("sk-2")


def test_another_layout_version_is_refused(tables):
    path = tables.path("layout")
    make_table(path)
    overwrite(path, struct.pack("<I", 1), LAYOUT_OFFSET)
    open_fails(path, "has layout 1", "reads layout 4", "sessid.remove_shared")
    with pytest.raises(sessid.Error, match="has layout 1"):
        sessid._sessid._shared_settings(path)
    assert sessid.remove_shared(path) is True


def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def garbage_header(table: bytes) -> bytes:
    header = header_size(len(table), SMALL["max_entries"])
    return b"\xa5" * header + table[header:]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated inside the first page": lambda table: table[:100],
    "truncated to the first page": lambda table: table[:PAGE],
    "truncated by a page": lambda table: table[:-PAGE],
    "grown by a page": lambda table: table + bytes(PAGE),
    "random bytes": lambda table: random_bytes(len(table)),
    "an all-garbage header": garbage_header,
    # Magic, layout, boot and the ready word intact: a table in use, with its settings garbled.
    "garbage settings": lambda table: (table[:LAYOUT_OFFSET + 4] + random_bytes(BOOT_ID_OFFSET - 12)
                                       + table[BOOT_ID_OFFSET:]),
    "a text file": lambda table: b"not a table\n" * 1000,
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_file_that_is_not_a_table_is_refused_and_left_alone(tables, corruption):
    path = tables.path("bad")
    make_table(path)
    data = CORRUPTIONS[corruption](read_file(path))
    with open(path, "wb") as f:
        f.write(data)
    open_fails(path, "is not a sessid shared table")
    assert read_file(path) == data


def test_an_empty_file_is_refused_and_left_empty(tables):
    """A table appears at its name only when whole, so an empty file there is someone else's: at
    an absolute path the user gave, it may be anything the user meant to keep."""
    path = tables.path("empty")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    open_fails(path, "is not a sessid shared table", "it is empty")
    assert os.path.getsize(path) == 0


def test_a_table_made_before_the_last_boot_holds_no_entry(tables):
    name = tables.name("boot")
    sid = make_table(name)
    overwrite(file_of(name), b"00000000-0000-4000-8000-000000000000\n".ljust(BOOT_ID_SIZE, b"\0"),
              BOOT_ID_OFFSET)
    store = sessid.Store(shared=name, **SMALL)
    assert len(store) == 0
    assert store.get("sk-1") != sid
    assert store._check() == 0


@pytest.mark.parametrize("options", [SMALL, {"ttl": 30.0, "max_entries": 10}],
                         ids=["same settings", "other settings"])
def test_a_table_not_marked_whole_is_refused_and_left_alone(tables, options):
    """A table is made beside its name and renamed into place once whole: one at the name whose
    ready word is clear was damaged, and is never remade in place (a process may map it)."""
    name = tables.name("unfinished")
    make_table(name)
    overwrite(file_of(name), struct.pack("<I", 0), READY_OFFSET)
    before = Path(file_of(name)).read_bytes()
    open_fails(name, "is not a sessid shared table", "not marked complete", **options)
    assert Path(file_of(name)).read_bytes() == before


def test_symlinks_are_refused(tables, tmp_path):
    target = tables.path("target")
    make_table(target)
    link = tables.path("link")
    os.symlink(target, link)
    open_fails(link, "is a symbolic link")
    dangling = tables.path("dangling")
    os.symlink(str(tmp_path / "nowhere"), dangling)
    open_fails(dangling, "is a symbolic link")
    assert not (tmp_path / "nowhere").exists()      # nothing was made through the link
    with pytest.raises(sessid.Error, match="symbolic link"):
        sessid.remove_shared(link)
    assert os.path.islink(link) and os.path.isfile(target)


def test_a_directory_or_a_fifo_is_refused(tables):
    directory = tables.path("dir")
    os.mkdir(directory, 0o700)
    open_fails(directory, "Is a directory")
    fifo = tables.path("fifo")
    os.mkfifo(fifo, 0o600)
    open_fails(fifo, "is not a sessid shared table")


def test_remove_shared_and_the_settings_refuse_a_fifo_at_once(tables):
    fifo = tables.path("fifo")
    os.mkfifo(fifo, 0o600)

    def refused():
        for look in (sessid.remove_shared, sessid._sessid._shared_settings):
            with pytest.raises(sessid.Error, match="is not a sessid shared table"):
                look(fifo)

    status = in_child(refused, timeout=2)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o622, 0o666])
def test_a_table_writable_by_group_or_others_is_refused(tables, mode):
    path = tables.path("mode")
    make_table(path)
    os.chmod(path, mode)
    open_fails(path, "can be written by group or others", f"(mode 0{mode:o})", "0600")


def test_a_table_owned_by_another_user_is_refused(tables):
    """The check compares the owner with the effective uid: the same file is refused to root (this
    test's user) and accepted by the user who owns it, which a child becomes with seteuid."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give the file to another user and to act as that user")
    other = 65534
    name = tables.name("owner")
    sid = make_table(name)
    file = file_of(name)
    os.chown(file, other, other)
    open_fails(file, f"belongs to user {other}", "not to this process's user 0")

    def as_the_owner():
        os.seteuid(other)
        assert os.geteuid() == other
        assert sessid.Store(shared=name, **SMALL).get("sk-1") == sid

    status = in_child(as_the_owner)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)

    # And the other way round: a table of root's, which that user may not even open.
    mine = tables.name("root-owned")
    make_table(mine)

    def as_another_user():
        os.seteuid(other)
        with pytest.raises(sessid.Error) as info:
            sessid.Store(shared=mine, **SMALL)
        assert file_of(mine) in str(info.value) and "Permission denied" in str(info.value)
        assert isinstance(info.value.__cause__, PermissionError)

    status = in_child(as_another_user)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert sessid.remove_shared(name) is True


def test_remove_shared(tables):
    name = tables.name("remove")
    assert sessid.remove_shared(name) is False
    store = sessid.Store(shared=name, **SMALL)
    sid = store.get("sk-1")
    assert sessid.remove_shared(name) is True
    assert not os.path.exists(file_of(name))
    assert sessid.remove_shared(name) is False
    fresh = sessid.Store(shared=name, ttl=30, max_entries=10)   # new settings are fine now
    assert fresh.get("sk-1") != sid
    not_a_table = tables.path("text")
    Path(not_a_table).write_text("keep me\n")
    with pytest.raises(sessid.Error, match="is not a sessid shared table"):
        sessid.remove_shared(not_a_table)
    assert Path(not_a_table).read_text() == "keep me\n"


# ---- a file system without room ----


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 1 MB tmpfs, unmounted at the end whatever happened."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                                  str(mount_point)], capture_output=True, text=True)
    except OSError as e:
        pytest.skip(f"cannot run mount: {e}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        gc.collect()
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_file_system_without_room_for_the_table_fails_when_the_store_is_made(small_tmpfs):
    fits = str(small_tmpfs / "fits")
    store = sessid.Store(shared=fits, ttl=600, max_entries=1000)
    sid = store.get("sk-1")
    free = os.statvfs(small_tmpfs).f_bfree
    for max_entries in (15_000, 100_000):          # a bit too large, and far too large
        path = str(small_tmpfs / f"big-{max_entries}")
        with pytest.raises(sessid.Error) as info:
            sessid.Store(shared=path, ttl=600, max_entries=max_entries)
        message = str(info.value)
        assert path in message and "no room" in message, message
        cause = info.value.__cause__
        assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
        assert os.listdir(small_tmpfs) == ["fits"]
        assert os.statvfs(small_tmpfs).f_bfree == free      # what was allocated is given back
    assert store.get("sk-1") == sid
    assert store._check() == 0
    del store


# ---- kill -9 at every step of every mutation (debug builds) ----

ENTRY = struct.Struct("<32s16sdII")     # digest, id, time of last use, use-order links


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def slots(store: sessid.Store) -> dict[bytes, tuple[int, str]]:
    """digest -> (slot, id) of every entry the table's slots hold; a slot holds an entry when its id
    is a version 4 UUID. _memory_dump takes the table's lock, so it repairs the table first when a
    process died holding it."""
    dump = store._memory_dump()
    found: dict[bytes, tuple[int, str]] = {}
    for slot in range(len(dump) // ENTRY.size):
        key_digest, raw_id, _, _, _ = ENTRY.unpack_from(dump, slot * ENTRY.size)
        if raw_id[6] >> 4 == 4:
            assert key_digest not in found, "two entries for one key"
            found[key_digest] = (slot, str(uuid.UUID(bytes=raw_id)))
    return found


@dataclass
class Mutation:
    """A table in a known state, and one call that changes it."""
    path: str
    options: dict[str, Any]
    issued: dict[str, str]              # key -> the id handed out before the call
    call: Callable[[sessid.Store], object] = lambda store: None
    may_drop: frozenset[str] = frozenset()      # keys whose entries the call removes
    adds: frozenset[str] = frozenset()          # keys the call gives a new id
    live_until: float = math.inf        # when the entries that must stay expire
    # What the call has done once it finished, given the keys the table then holds.
    effect: Callable[[set[str]], bool] = lambda keys: True

    def open(self) -> sessid.Store:
        return sessid.Store(shared=self.path, **self.options)

    def check(self, called_at: float) -> set[str]:
        """What a process that comes after the call finds: the table repaired and whole, and every
        id handed out before the call unchanged. Returns the keys the table holds."""
        store = self.open()
        store.stats()
        assert store._check() == 0
        found = slots(store)
        expiring = called_at >= self.live_until - 0.05
        for key, sid in self.issued.items():
            if digest(key) in found:
                assert found[digest(key)][1] == sid, f"the id of {key} changed"
            else:
                assert key in self.may_drop or expiring, f"{key} lost its id"
        names = {digest(key): key for key in itertools.chain(self.issued, self.adds)}
        assert set(found) <= set(names), "an entry for a key nobody asked for"
        # The gets below come later than the call: in a slow (debug, sanitized) build, late enough
        # for the entries to have expired meanwhile.
        if not expiring and time.monotonic() < self.live_until - 0.05:
            for key, sid in self.issued.items():
                if key not in self.may_drop:
                    assert store.get(key) == sid
        return {names[d] for d in found}


def kill_at_each_step(m: Mutation, base: bytes | None = None) -> int:
    """Runs the call in a child killed at its step k (k = 1, 2, ...) until a child finishes it,
    checking the table after each death. Every run starts from the same bytes (base, or the
    table's file now), so each run kills the same call one step later. Returns the call's number
    of steps."""
    base = read_file(m.path) if base is None else base
    for k in range(1, 10_000):
        overwrite(m.path, base)
        called_at = time.monotonic()

        def work():
            store = m.open()
            kill_after(k)
            m.call(store)

        status = in_child(work)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            assert m.effect(m.check(called_at)), "the finished call did not do its work"
            overwrite(m.path, base)
            return k - 1
        assert killed(status), f"the child killed at step {k}: {describe(status)}"
        m.check(called_at)
    pytest.fail("the call never finished")


def filled(tables: Tables, tag: str, count: int, **options: Any) -> Mutation:
    path = tables.path(tag)
    store = sessid.Store(shared=path, **options)
    issued = {f"sk-{i}": store.get(f"sk-{i}") for i in range(count)}
    del store
    return Mutation(path, options, issued)


def moves_an_entry(m: Mutation) -> bool:
    """Whether the call moves an entry to another slot (a removal shifts its neighbours back):
    tried in this process, then undone."""
    base = read_file(m.path)
    store = m.open()
    before = slots(store)
    m.call(store)
    after = slots(store)
    del store
    overwrite(m.path, base)
    return any(after[d][0] != before[d][0] for d in after if d in before)


def crowded(tables: Tables, tag: str, make: Callable[[Mutation], Mutation]) -> Mutation:
    """A mutation of a full table that moves at least one other entry."""
    for _ in range(100):
        m = make(filled(tables, tag, 16, ttl=600, max_entries=16))
        if moves_an_entry(m):
            return m
        sessid.remove_shared(m.path)
    pytest.fail("no table in 100 whose mutation moved an entry")


def insert(m: Mutation) -> Mutation:
    m.call = lambda store: store.get("sk-new")
    m.adds = frozenset({"sk-new"})
    m.effect = lambda keys: keys == set(m.issued) | {"sk-new"}
    return m


def evict(m: Mutation) -> Mutation:
    insert(m)
    m.may_drop = frozenset({"sk-0"})        # the least recently used
    m.effect = lambda keys: keys == set(m.issued) - {"sk-0"} | {"sk-new"}
    return m


def renew(m: Mutation) -> Mutation:
    # A hit at the instant of the entry's last use changes nothing and takes no lock; this one must
    # move the entry, so it waits until the store's clock has moved past that instant.
    wait_for_clock_past(m.open(), "sk-0")
    m.call = lambda store: store.get("sk-0")
    m.effect = lambda keys: keys == set(m.issued)
    return m


CLOCK_MONOTONIC_COARSE = 6     # Linux's id; the time module does not name it


def wait_for_clock_past(store: sessid.Store, key: str) -> None:
    """Returns once the clock the store reads is past the time of key's last use. The store reads
    the coarse clock when its resolution is at most ttl / 1000, else the precise one."""
    dump = store._memory_dump()
    offsets = range(0, len(dump) - ENTRY.size + 1, ENTRY.size)
    entries = (ENTRY.unpack_from(dump, offset) for offset in offsets)
    used = [last_use for key_digest, _, last_use, _, _ in entries if key_digest == digest(key)]
    assert len(used) == 1, f"{key} has {len(used)} entries"
    coarse = time.clock_getres(CLOCK_MONOTONIC_COARSE) <= store.ttl / 1000
    clock = CLOCK_MONOTONIC_COARSE if coarse else time.CLOCK_MONOTONIC
    deadline = time.monotonic() + 5
    while time.clock_gettime(clock) <= used[0]:
        assert time.monotonic() < deadline, "the store's clock did not move in 5 s"
        time.sleep(0.001)


def clear(m: Mutation) -> Mutation:
    m.call = lambda store: store.clear()
    m.may_drop = frozenset(m.issued)
    m.effect = lambda keys: not keys
    return m


@needs_kill_hook
def test_kill_at_each_step_of_an_insert_a_renewal_and_a_clear(tables):
    """Steps at the time of writing: an insert into a table with room 5, a renewal of the least
    recently used entry 5, clear() 1 plus 1 per entry wiped (21 here)."""
    assert kill_at_each_step(insert(filled(tables, "insert", 20, ttl=600, max_entries=64))) >= 3
    assert kill_at_each_step(renew(filled(tables, "renew", 20, ttl=600, max_entries=64))) >= 3
    assert kill_at_each_step(clear(filled(tables, "clear", 20, ttl=600, max_entries=64))) >= 3


@needs_kill_hook
def test_kill_at_each_step_of_an_eviction_that_shifts_entries(tables):
    """A removal shifts the entries after the hole back (backward-shift deletion); the table here
    is one where evicting the least recently used entry moves at least one other. Steps at the
    time of writing: 4 for the removal, 5 per entry moved, 5 for the insert that follows (14 to
    54 seen)."""
    assert kill_at_each_step(crowded(tables, "evict", evict)) >= 9


@needs_kill_hook
def test_kill_at_each_step_of_a_purge(tables):
    """Expired and live entries in a crowded table: the purge removes the expired ones and shifts
    live ones back. (Each get reclaims a couple of expired entries on its way, so more expire
    than the live ones' gets can take.) Steps at the time of writing: 4 per expired entry, 5 per
    entry moved."""
    ttl = 1.0
    path = tables.path("purge")
    options = {"ttl": ttl, "max_entries": 32}
    store = sessid.Store(shared=path, **options)
    old = {f"sk-old-{i}": store.get(f"sk-old-{i}") for i in range(24)}
    time.sleep(ttl + 0.01)
    used = time.monotonic()
    live = {f"sk-live-{i}": store.get(f"sk-live-{i}") for i in range(4)}
    expired = len({digest(key) for key in old} & set(slots(store)))
    assert expired >= 8
    del store
    m = Mutation(path, options, {**old, **live}, call=lambda store: store.purge(),
                 may_drop=frozenset(old), live_until=used + ttl,
                 effect=lambda keys: not keys & set(old))
    assert kill_at_each_step(m) >= 4 * expired


@needs_kill_hook
@pytest.mark.parametrize("make", [insert, evict], ids=["insert", "eviction"])
def test_kill_at_each_step_of_the_repair_after_a_kill_at_each_step(tables, make):
    """For each step k1 of a call, a child dies there and leaves the lock to a dead owner; then for
    each step k2 of the repair that the next call makes, a second child dies there; after each, a
    third process repairs and checks the table. A repair puts back, from the undo log, what the
    dead call had changed, a step per slot written back: none for a death before the call's first
    record, and more the further the call got."""
    if make is evict:
        m = crowded(tables, "repair", evict)
    else:
        m = insert(filled(tables, "repair", 16, ttl=600, max_entries=64))
    clean = read_file(m.path)
    call, effect = m.call, m.effect
    call_steps = kill_at_each_step(m)
    repair_steps = []
    for k1 in range(1, call_steps + 1):
        overwrite(m.path, clean)

        def die_in_call():
            store = m.open()
            kill_after(k1)
            call(store)

        assert killed(in_child(die_in_call))
        dead_owner = read_file(m.path)
        m.call, m.effect = (lambda store: store.stats()), (lambda keys: True)
        repair_steps.append(kill_at_each_step(m, dead_owner))
        m.call, m.effect = call, effect
    assert repair_steps == sorted(repair_steps) and max(repair_steps) >= 2, repair_steps


# ---- kill -9 at random moments (any build) ----


def hammer(name: str, options: dict[str, Any], known: dict[str, str], report: int) -> None:
    """Gets the known keys in turn (checking their ids) between gets of keys of a large pool,
    until killed. The pool's new keys fill the table and evict each other (so entries move), while
    each known key is used again within len(known) pool keys of this process: far fewer than the
    room the known keys leave, so none of them is ever the least recently used. A wrong id is
    written to report."""
    store = sessid.Store(shared=name, **options)
    rng = random.Random(os.getpid())
    names = list(known)
    turn = rng.randrange(len(names))
    while True:
        key = names[turn % len(names)]
        turn += 1
        got = store.get(key)
        if got != known[key]:
            os.write(report, f"{key}: {got} instead of {known[key]}\n".encode())
            os._exit(3)
        store.get(f"sk-pool-{rng.randrange(1_000_000)}")


@pytest.mark.slow
def test_processes_killed_at_random_moments_lose_no_id(tables):
    """Three processes hammer a full table and are SIGKILLed at random moments, round after round
    for about eight seconds; the TTL is long and the known keys are used often enough that none of
    them expires or is evicted, so every id handed out before must survive every death."""
    name = tables.name("chaos")
    known_count = 300
    options = {"ttl": 3600.0, "max_entries": known_count + 5000}
    store = sessid.Store(shared=name, **options)
    known = {f"sk-known-{i}": store.get(f"sk-known-{i}") for i in range(known_count)}
    del store
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    rng = random.Random(1)
    deadline = time.monotonic() + 8
    rounds = 0
    try:
        while rounds < 20 or time.monotonic() < deadline:
            pids = []
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    try:
                        hammer(name, options, known, write_end)
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        os._exit(70)
                pids.append(pid)
            time.sleep(rng.uniform(0.002, 0.03))
            rng.shuffle(pids)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
                time.sleep(rng.uniform(0, 0.002))
            statuses = [wait_for(pid) for pid in pids]
            try:
                wrong = os.read(read_end, 65536).decode()
            except BlockingIOError:
                wrong = ""
            assert not wrong, f"round {rounds}: {wrong}"
            assert all(killed(s) for s in statuses), [describe(s) for s in statuses]
            check = sessid.Store(shared=name, **options)
            check.stats()
            assert check._check() == 0, f"round {rounds}"
            assert {key: check.get(key) for key in known} == known, f"round {rounds}"
            del check
            rounds += 1
    finally:
        os.close(read_end)
        os.close(write_end)
    stats = sessid.Store(shared=name, **options).stats()
    assert stats["evicted"] > 0 and stats["expired"] == 0


# ---- counts, clear() and the KV near cache are host-wide ----


def test_stats_and_clear_are_host_wide(tables):
    name = tables.name("host")
    options = {"ttl": 600.0, "max_entries": 100}
    (server,) = servers = start_servers(name, options, 1)
    try:
        store = sessid.Store(shared=name, **options)
        mine = store.get("sk-1")
        store.get("sk-1")
        assert ask(server, "get", "sk-1")[0] == mine
        theirs = ask(server, "get", "sk-2")[0]
        ask(server, "get", "sk-3")
        assert store.get("sk-2") == theirs
        stats = store.stats()
        assert stats["misses"] == 3 and stats["hits"] == 3
        assert ask(server, "stats")[0] == stats
        assert len(store) == 3 and ask(server, "__len__")[0] == 3

        ask(server, "clear")
        assert len(store) == 0 and ask(server, "__len__")[0] == 0
        assert store.get("sk-1") != mine
        assert store.stats()["misses"] == 4             # clear() keeps the counts
    finally:
        stop_servers(servers)
    assert store._check() == 0


def test_async_gets_use_the_shared_table(tables):
    name = tables.name("aget")
    store = sessid.Store(shared=name, **SMALL)
    other = sessid.Store(shared=name, **SMALL)
    sid = asyncio.run(store.aget("sk-1"))
    assert asyncio.run(other.aget_required("sk-1")) == sid == other.get("sk-1")


def test_with_a_kv_the_shared_table_is_the_near_cache_of_the_host(tables):
    """A second Store, with a KV of its own (another worker's connection), finds the id in the
    shared table and asks its KV nothing; so does another process."""
    name = tables.name("kv")
    options = {"refresh_after": 60, **SMALL}
    first_kv, second_kv = FakeKV(), FakeKV()
    first = sessid.Store(kv=first_kv, shared=name, **options)
    second = sessid.Store(kv=second_kv, shared=name, **options)
    sid = first.get("sk-1")
    assert sum(first_kv.calls.values()) > 0
    assert second.get("sk-1") == sid
    assert second.get_required("sk-1") == sid
    assert sum(second_kv.calls.values()) == 0

    (server,) = servers = start_servers(name, {"fake_kv": True, **options}, 1)
    try:
        assert ask(server, "get", "sk-1")[0] == sid
        assert ask(server, "kv_calls")[0] == 0
    finally:
        stop_servers(servers)


def test_with_a_kv_the_local_fallback_is_shared_by_the_host(tables):
    name = tables.name("fallback")
    working = sessid.Store(kv=FakeKV(), shared=name, on_kv_error="local", **SMALL)
    sid = working.get("sk-1")
    failing_kv = FakeKV()
    for method in ("get", "getex", "set", "expire"):
        failing_kv.fail(method)
    failing = sessid.Store(kv=failing_kv, shared=name, on_kv_error="local", **SMALL)
    assert failing.get("sk-1") == sid
    assert failing.stats()["kv_errors"] >= 1
