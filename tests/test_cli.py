"""python -m sessid as an operator meets it: get, forget, stats, remove and key (bench is
tests/test_bench.py's).

Every error is one line naming what the user can act on, exit code 2 for usage and 1 for failures,
never a traceback."""

import hashlib
import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

import sessid
from sessid.__main__ import main
from sessid._sessid import _shared_settings

from conftest import is_uuid4

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def sessid_cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "sessid", *args], capture_output=True, text=True, input=stdin, timeout=300
    )


def failed(out, code: int) -> str:
    """The error line of a command that failed with code: the last line of stderr, after argparse's
    usage for a usage error, and the only line for a failure."""
    assert out.returncode == code, out
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.splitlines()
    if code == 1:
        assert len(lines) == 1, out.stderr
    assert lines[-1].startswith("python -m sessid"), out.stderr
    return lines[-1]


@pytest.fixture
def table(tmp_path):
    """The path of a shared table made the way an operator makes one: with the command line."""
    path = str(tmp_path / "cli-table")
    out = sessid_cli("get", "sk-warm", "--shared", path, "--create", "--ttl", "60", "--max-entries", "1000")
    assert out.returncode == 0, out.stderr
    yield path
    sessid.remove_shared(path)


# ---- where the id lives ----


@pytest.mark.parametrize("command", ["get", "forget"])
def test_get_and_forget_need_a_place_that_outlives_the_command(command):
    line = failed(sessid_cli(command, "sk-test"), 2)
    assert f"{command} needs --shared NAME or --redis URL" in line
    assert "lives only as long as the command" in line


@pytest.mark.parametrize("command", ["get", "forget", "stats"])
def test_a_shared_name_with_no_table_is_an_error_that_says_how_to_make_one(tmp_path, command):
    path = str(tmp_path / "typo")
    args = ("stats",) if command == "stats" else (command, "sk-test")
    line = failed(sessid_cli(*args, "--shared", path), 1)
    assert f"there is no shared table {path}: check the name" in line
    assert f"python -m sessid get KEY --shared {path} --create [--ttl SECONDS] [--max-entries N]" in line
    assert not os.path.exists(path)


def test_create_makes_a_table_with_the_settings_given_and_then_opens_it(tmp_path):
    path = str(tmp_path / "made")
    try:
        made = sessid_cli("get", "sk-1", "--shared", path, "--create", "--ttl", "90", "--max-entries", "500")
        assert made.returncode == 0, made.stderr
        assert is_uuid4(made.stdout.strip())
        assert made.stderr == f"python -m sessid get: made shared table {path} (ttl 90 s, max_entries 500)\n"
        assert _shared_settings(path) == (90.0, 500)
        again = sessid_cli("get", "sk-1", "--shared", path)
        assert (again.returncode, again.stdout, again.stderr) == (0, made.stdout, "")
        # --create on a table that is there opens it, with its own settings, and says nothing.
        created_again = sessid_cli("get", "sk-1", "--shared", path, "--create")
        assert (created_again.returncode, created_again.stdout, created_again.stderr) == (0, made.stdout, "")
    finally:
        sessid.remove_shared(path)


def test_a_table_made_with_defaults(tmp_path):
    path = str(tmp_path / "defaults")
    try:
        assert sessid_cli("get", "sk-1", "--shared", path, "--create").returncode == 0
        assert _shared_settings(path) == (3600.0, 100_000)
    finally:
        sessid.remove_shared(path)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--ttl", "60"), "--ttl is a setting of a table being made: give it with --create"),
        (("--max-entries", "1000"), "--max-entries is a setting of a table being made: give it with --create"),
    ],
    ids=["ttl", "max-entries"],
)
def test_settings_of_an_existing_table_are_given_only_with_create(table, args, message):
    assert message in failed(sessid_cli("get", "sk", "--shared", table, *args), 2)


def test_other_settings_than_the_tables_name_the_command_that_removes_it(table):
    line = failed(sessid_cli("get", "sk", "--shared", table, "--create", "--ttl", "70"), 1)
    assert "was made with ttl=60.0 and max_entries=1000, not ttl=70.0 and max_entries=1000" in line
    assert f"remove the table with python -m sessid remove --shared {table})" in line
    assert "sessid.remove_shared" not in line
    # The remedy, as given, works.
    out = sessid_cli("remove", "--shared", table)
    assert (out.returncode, out.stdout) == (0, f"removed {table}\n")
    assert sessid_cli("get", "sk", "--shared", table, "--create", "--ttl", "70").returncode == 0
    assert _shared_settings(table) == (70.0, 100_000)


def test_a_name_is_quoted_for_the_shell_in_a_remedy(tmp_path):
    path = str(tmp_path / "a table")
    line = failed(sessid_cli("get", "sk", "--shared", path), 1)
    assert f"--shared '{path}' --create" in line


# ---- another user's table ----

OTHER_UID = 65534


def other_user() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a table to another user and to act as that user")
    try:
        return pwd.getpwuid(OTHER_UID).pw_name
    except KeyError:
        pytest.skip(f"no user has uid {OTHER_UID}")


def cli_as(uid: int, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """python -m sessid run in a forked child whose effective uid is uid (a subprocess could not run
    this Python as another user when it lives under root's home)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                os.seteuid(uid)
                sys.stdout, sys.stderr = out, err
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:
                err.write(f"Traceback (in the child): {exc!r}\n")
            finally:
                out.flush()
                err.flush()
                os._exit(code)
        deadline = time.monotonic() + timeout
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"python -m sessid {' '.join(args)} hung")
            time.sleep(0.001)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(done[1]), out.read(), err.read())


@pytest.mark.parametrize("command", ["get", "stats"])
def test_a_table_of_another_user_names_its_owner(table, command):
    name = other_user()
    os.chown(table, OTHER_UID, OTHER_UID)
    args = ("stats",) if command == "stats" else ("get", "sk")
    line = failed(sessid_cli(*args, "--shared", table), 1)
    assert f"shared table {table} belongs to user {OTHER_UID} ({name}), not to this process's user 0 (root)" in line
    assert f"run as user {OTHER_UID} ({name}), or use another name" in line


@pytest.mark.parametrize("command", ["get", "stats"])
def test_a_table_this_user_cannot_open_names_its_owner(command):
    name = other_user()
    path = f"/dev/shm/sessid-cli-test-{os.getpid()}"
    sessid.Store(shared=path, ttl=60, max_entries=100)     # root's, 0600, in a directory all can search
    try:
        args = ("stats",) if command == "stats" else ("get", "sk")
        out = cli_as(OTHER_UID, *args, "--shared", path)
        line = failed(out, 1)
        assert f"shared table {path} belongs to user 0 (root), and this process's user {OTHER_UID} " \
               f"({name}) cannot open it (open() failed: Permission denied): run as user 0 (root)" in line
    finally:
        sessid.remove_shared(path)


# ---- forget, help, and the other commands ----


def test_forget_in_a_shared_table_says_what_it_dropped_without_a_kv_key(table):
    first = sessid_cli("get", "sk-cli", "--shared", table)
    assert first.returncode == 0, first.stderr
    out = sessid_cli("forget", "-", "--shared", table, stdin="sk-cli\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"forgot the key's session id in shared table {table} (its next get makes a new one)\n"
    assert hashlib.sha256(b"sk-cli").hexdigest() not in out.stdout
    again = sessid_cli("get", "sk-cli", "--shared", table)
    assert is_uuid4(again.stdout.strip()) and again.stdout != first.stdout


@pytest.mark.redis
def test_get_and_forget_in_redis(redis_server, redis_client):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    first = sessid_cli("get", "sk-cli", "--redis", url, "--ttl", "60")
    assert first.returncode == 0, first.stderr
    assert sessid_cli("get", "sk-cli", "--redis", url).stdout == first.stdout
    kv_key = "sessid:" + hashlib.sha256(b"sk-cli").hexdigest()
    assert redis_client.get(kv_key).decode() == first.stdout.strip()
    out = sessid_cli("forget", "sk-cli", "--redis", url)
    assert out.stdout == f"forgot the key's session id in Redis, KV key {kv_key} (its next get makes a new one)\n"
    assert redis_client.get(kv_key) is None


def test_help_lists_every_command():
    out = sessid_cli("--help")
    assert out.returncode == 0
    usage = out.stdout.split("\n\n")[0]
    assert usage.startswith("usage: python -m sessid")
    for command in ("get", "forget", "stats", "remove", "key", "bench"):
        assert command in usage.split("python -m sessid", 1)[1], usage


def test_stats_of_a_table(table):
    out = sessid_cli("stats", "--shared", table)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"table: {table}\nttl: 60 s, max_entries: 1000\nentries: 1\nhits: 0\nmisses: 1\n")


def test_remove_a_table_and_one_that_is_not_there(table):
    assert sessid_cli("remove", "--shared", table).stdout == f"removed {table}\n"
    out = sessid_cli("remove", "--shared", table)
    assert (out.returncode, out.stdout) == (0, f"there is no shared table {table}\n")


def test_a_file_that_is_not_a_table_is_one_line_and_left_alone(tmp_path):
    path = tmp_path / "not-a-table"
    path.write_bytes(b"x" * 100)
    line = failed(sessid_cli("get", "sk", "--shared", str(path)), 1)
    assert f"{path} is not a sessid shared table" in line
    assert path.read_bytes() == b"x" * 100


def test_key_prints_the_kv_key_and_reads_stdin():
    out = sessid_cli("key", "-", "--prefix", "cpa:claude:session-id:", stdin="sk-secret\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cpa:claude:session-id:" + hashlib.sha256(b"sk-secret").hexdigest()


def test_version():
    out = sessid_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"sessid {sessid.__version__}"


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        ((), None, "the following arguments are required: COMMAND"),
        (("frobnicate",), None, "invalid choice: 'frobnicate'"),
        (("get", "", "--redis", UNREACHABLE_REDIS), None, "python -m sessid get: error: KEY is empty"),
        (("get", "-", "--redis", UNREACHABLE_REDIS), "", "get: error: the key read from stdin is empty"),
        (("forget", "-", "--redis", UNREACHABLE_REDIS), "\n", "forget: error: the key read from stdin is empty"),
        (("key", "-"), "\r\n", "python -m sessid key: error: the key read from stdin is empty"),
        (("get", "sk", "--ttl", "abc"), None, "argument --ttl: not a number of seconds: 'abc'"),
        (("get", "sk", "--ttl", "-1"), None, "argument --ttl: must be more than 0 and at most 1e9 seconds"),
        (("get", "sk", "--ttl", "nan"), None, "argument --ttl: must be more than 0"),
        (("get", "sk", "--ttl", "1e10"), None, "argument --ttl: must be more than 0"),
        (("get", "sk", "--max-entries", "x"), None, "argument --max-entries: not a whole number: 'x'"),
        (("get", "sk", "--max-entries", "0"), None, "argument --max-entries: must be at least 1, got '0'"),
        (("get", "sk", "--shared", "/dev/shm/sessid-cli-never-made", "--create", "--max-entries", "9999999999"),
         None, "max_entries must be from 1 to"),
        (("get", "sk", "--shared", "a/b"), None, "argument --shared:"),
        (("get", "sk", "--redis", "foo://x"), None, "argument --redis: Redis URL must specify"),
        (("get", "sk", "--redis", UNREACHABLE_REDIS, "--shared", "x"), None, "not allowed with argument"),
        (("get", "sk", "--redis", UNREACHABLE_REDIS, "--create"), None, "--create makes a shared table"),
        (("get", "sk", "--redis", UNREACHABLE_REDIS, "--max-entries", "5"), None,
         "--max-entries is the capacity of a shared table"),
        (("get", "sk", "--prefix", "\udcff"), None, "argument --prefix: not valid UTF-8"),
        (("key", "sk", "--redis", "redis://localhost"), None, "unrecognized arguments: --redis"),
        (("get", "sk", "--bogus"), None, "python -m sessid get: error: unrecognized arguments: --bogus"),
        (("forget", "sk", "--ttl", "5", "--shared", "x"), None, "unrecognized arguments: --ttl 5"),
        (("stats",), None, "the following arguments are required: --shared"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_bad_arguments_are_usage_errors_without_a_traceback(args, stdin, message):
    if any(arg.startswith("redis://") for arg in args):
        pytest.importorskip("redis")
    assert message in failed(sessid_cli(*args, stdin=stdin), 2)
    assert not os.path.exists("/dev/shm/sessid-cli-never-made")


def test_a_kv_that_fails_is_one_line_and_exit_1():
    pytest.importorskip("redis")
    for command in ("get", "forget"):
        line = failed(sessid_cli(command, "sk", "--redis", UNREACHABLE_REDIS), 1)
        assert line.startswith(f"python -m sessid {command}: error: kv.")


def test_an_interrupted_command_is_one_line_and_exit_130(table):
    """Ctrl-C while the command waits for the key on stdin."""
    if not os.path.exists(f"/proc/{os.getpid()}/syscall"):
        pytest.skip("this kernel does not show a process's system call in /proc")
    process = subprocess.Popen([sys.executable, "-m", "sessid", "get", "-", "--shared", table],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not reading_stdin(process.pid):           # a read(2) on fd 0: where the key is awaited
            assert process.poll() is None and time.monotonic() < deadline, "never read stdin"
            time.sleep(0.001)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert (process.returncode, stdout, stderr) == (130, "", "python -m sessid get: interrupted\n")


def reading_stdin(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields[:2] == ["0", "0x0"]                   # read(0, ...) on x86-64 and arm64 alike


def test_a_key_that_is_not_utf8_is_hashed_as_its_bytes():
    raw = b"sk-\xff\xfe"
    out = subprocess.run([sys.executable, "-m", "sessid", "key", raw], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sessid:" + hashlib.sha256(raw).hexdigest()


def test_get_does_not_import_the_benchmark(table):
    code = (f"import sys; from sessid.__main__ import main; main(['get', 'sk', '--shared', {table!r}]); "
            "print(sorted(m for m in sys.modules if m.startswith('sessid.bench')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
