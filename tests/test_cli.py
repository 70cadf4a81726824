"""python -m sessid: its commands other than bench (which tests/test_bench.py covers)."""

import hashlib
import os
import subprocess
import sys

import pytest

import sessid

from conftest import is_uuid4


def sessid_cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "sessid", *args], capture_output=True, text=True, input=stdin, timeout=300
    )


def test_get_prints_an_id():
    out = sessid_cli("get", "sk-test")
    assert out.returncode == 0, out.stderr
    assert is_uuid4(out.stdout.strip())


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
        (("get", ""), None, "python -m sessid get: error: KEY is empty"),
        (("get", "-"), "", "python -m sessid get: error: the key read from stdin is empty"),
        (("get", "-"), "\n", "python -m sessid get: error: the key read from stdin is empty"),
        (("key", "-"), "\r\n", "python -m sessid key: error: the key read from stdin is empty"),
        (("get", "sk", "--ttl", "abc"), None, "argument --ttl: not a number of seconds: 'abc'"),
        (("get", "sk", "--ttl", "-1"), None, "argument --ttl: must be more than 0 and at most 1e9 seconds"),
        (("get", "sk", "--ttl", "nan"), None, "argument --ttl: must be more than 0"),
        (("get", "sk", "--ttl", "1e10"), None, "argument --ttl: must be more than 0"),
        (("get", "sk", "--redis", "foo://x"), None, "argument --redis: Redis URL must specify"),
        (("get", "sk", "--prefix", "\udcff"), None, "argument --prefix: not valid UTF-8"),
        (("key", "sk", "--redis", "redis://localhost"), None, "unrecognized arguments: --redis"),
        (("get", "sk", "--bogus"), None, "python -m sessid get: error: unrecognized arguments: --bogus"),
        (("forget", "sk"), None, "one of the arguments --redis --shared is required"),
        (("forget", "sk", "--ttl", "5", "--shared", "x"), None, "unrecognized arguments: --ttl 5"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_bad_arguments_are_usage_errors_without_a_traceback(args, stdin, message):
    out = sessid_cli(*args, stdin=stdin)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    assert message in out.stderr.splitlines()[-1]
    assert out.stdout == ""


def test_forget_in_a_shared_table(tmp_path):
    path = str(tmp_path / "cli-forget")
    try:
        first = sessid_cli("get", "sk-cli", "--shared", path)
        assert first.returncode == 0, first.stderr
        assert sessid_cli("get", "sk-cli", "--shared", path).stdout == first.stdout
        out = sessid_cli("forget", "-", "--shared", path, stdin="sk-cli\n")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "forgot sessid:" + hashlib.sha256(b"sk-cli").hexdigest()
        again = sessid_cli("get", "sk-cli", "--shared", path)
        assert is_uuid4(again.stdout.strip()) and again.stdout != first.stdout
    finally:
        sessid.remove_shared(path)


def test_forget_in_a_missing_shared_table_is_an_error(tmp_path):
    out = sessid_cli("forget", "sk", "--shared", str(tmp_path / "absent"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "absent").exists()


def test_a_kv_that_fails_is_one_line_and_exit_1():
    pytest.importorskip("redis")
    out = sessid_cli("get", "sk", "--redis", "redis://127.0.0.1:1/0")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("python -m sessid: error: kv.") and len(out.stderr.splitlines()) == 1


def test_a_key_that_is_not_utf8_is_hashed_as_its_bytes():
    raw = b"sk-\xff\xfe"
    out = subprocess.run([sys.executable, "-m", "sessid", "key", raw], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sessid:" + hashlib.sha256(raw).hexdigest()


def test_get_does_not_import_the_benchmark():
    code = ("import sys; from sessid.__main__ import main; main(['get', 'sk']); "
            "print(sorted(m for m in sys.modules if m.startswith('sessid.bench')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
