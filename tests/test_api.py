"""The module-level API, the exception hierarchy, and what ships with the package."""

import importlib.resources
import os
import pathlib
import subprocess
import sys

import pytest

import sessid
from conftest import is_uuid4


def test_module_get_uses_one_default_store():
    first = sessid.get("sk-1")
    assert is_uuid4(first)
    assert sessid.get("sk-1") == first
    assert sessid.get_required("sk-1") == first
    assert sessid.default_store().get("sk-1") == first
    assert len(sessid.default_store()) == 1


def test_module_aget_uses_the_default_store():
    import asyncio

    first = sessid.get("sk-1")
    assert asyncio.run(sessid.aget("sk-1")) == first
    assert asyncio.run(sessid.aget_required("sk-1")) == first

    async def both():
        return await asyncio.gather(sessid.aget("sk-2"), asyncio.create_task(sessid.aget("sk-2")))

    second, third = asyncio.run(both())
    assert is_uuid4(second) and second == third == sessid.get("sk-2")
    with pytest.raises(TypeError, match="api_key must be str"):
        asyncio.run(sessid.aget(None))


def test_default_store_is_local_with_one_hour():
    store = sessid.default_store()
    assert isinstance(store, sessid.Store)
    assert store.kv is None and store.ttl == 3600.0 and store.prefix == "sessid:"
    assert store.max_entries is None


def test_set_default_store_returns_the_previous_one():
    mine = sessid.Store(ttl=60)
    previous = sessid.set_default_store(mine)
    assert isinstance(previous, sessid.Store) and previous is not mine
    assert sessid.default_store() is mine
    assert sessid.set_default_store(previous) is mine
    with pytest.raises(TypeError, match="takes a sessid.Store"):
        sessid.set_default_store(object())


def test_exception_hierarchy():
    assert issubclass(sessid.KVError, sessid.Error)
    assert issubclass(sessid.Error, Exception)
    assert sessid.Error.__module__ == "sessid" and sessid.KVError.__module__ == "sessid"
    assert sessid.Store.__module__ == "sessid"


def test_public_names():
    assert sorted(sessid.__all__) == sorted(
        ["AsyncKV", "Error", "KV", "KVError", "LockTimeout",
         "Store", "aforget", "aget", "aget_required",
         "default_store", "forget", "get", "get_required", "remove_shared", "set_default_store"]
    )
    assert isinstance(sessid.__version__, str)


def test_typing_stubs_ship_with_the_package():
    files = importlib.resources.files("sessid")
    assert files.joinpath("py.typed").is_file()
    stub = files.joinpath("_sessid.pyi").read_text()
    for name in ("class Store", "def get(", "def aget_required(", "class KVError(Error)"):
        assert name in stub


def test_signatures_are_introspectable():
    import inspect

    assert str(inspect.signature(sessid.get)) == "(api_key, /)"
    assert str(inspect.signature(sessid.Store.get)) == "(self, api_key, /)"
    assert "refresh_after=None" in str(inspect.signature(sessid.Store))


def test_import_in_a_fresh_interpreter_and_reload_of_state():
    code = "import sessid, sessid.testing; print(sessid.get('k') == sessid.get('k'))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "True"


def test_python_m_sessid_works_from_a_checkout_root_after_a_plain_install(tmp_path):
    """The README's first command: pip install . puts the compiled module in site-packages, while
    python -m finds the checkout's sessid/ folder first. -S keeps this venv's site-packages out, so
    only the two copies made here can be found."""
    import shutil

    package = pathlib.Path(sessid._sessid.__file__).parent
    site, checkout = tmp_path / "site", tmp_path / "checkout"
    shutil.copytree(package, site / "sessid")
    shutil.copytree(package, checkout / "sessid", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(site))
    table = ["--shared", str(tmp_path / "table"), "--create", "--max-entries", "100"]
    out = subprocess.run([sys.executable, "-S", "-m", "sessid", "get", "sk-1", *table], cwd=checkout, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert is_uuid4(out.stdout.strip())

    del env["PYTHONPATH"]
    out = subprocess.run([sys.executable, "-S", "-c", "import sessid"], cwd=checkout, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "sessid's compiled module is not built in" in out.stderr
    assert "run 'pip install .'" in out.stderr
