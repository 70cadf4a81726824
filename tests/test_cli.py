"""python -m sessid: get, key, and a smoke run of bench."""

import hashlib
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


def test_usage_errors_exit_2():
    assert sessid_cli().returncode == 2
    assert sessid_cli("frobnicate").returncode == 2


def test_bench_runs_and_prints_a_table():
    out = sessid_cli("bench", "--quick", "--repeat", "1", "--only", "hit", "miss")
    assert out.returncode == 0, out.stderr
    assert "÷ sessid" in out.stdout and "floor: hashlib.sha256 alone" in out.stdout
    assert "targets:" in out.stdout


def test_bench_checks_the_work_through_stats():
    from sessid.bench.local import check_work, work_note

    store = sessid.Store()
    for key in ("a", "b", "a"):
        store.get(key)
    check_work(store, hits=1, misses=2)
    with pytest.raises(RuntimeError, match="the workload is wrong"):
        check_work(store, hits=3, misses=0)
    check_work(object(), hits=3)                    # only sessid reports what it did
    assert work_note(store) == "stats: 2 misses, 0 expired"
