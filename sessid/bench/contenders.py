"""The same job done by sessid and by what a user would otherwise write.

Every contender keys a 52-character API key by its SHA-256 digest, returns a stable UUID string and
refreshes a sliding TTL on every hit. Each is built by ``make(ttl)`` and used through ``get(key)``.
A contender whose package is not installed is reported as missing, never dropped quietly.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sessid

# Typed by its use here: typeshed gives it the signature of later 3.13 releases, not 3.13.0's.
sha256: Callable[[bytes], Any] = hashlib.sha256
uuid4 = uuid.uuid4
monotonic = time.monotonic

MAX_SIZE = 1 << 24


@dataclass
class Contender:
    name: str
    make: Callable[[float], Any] | None     # None when the package is missing
    missing: str = ""
    floor: bool = False                     # does only part of the job: a lower bound


class PlainPython:
    """A dict in use order (OrderedDict) + hashlib + uuid4, with sessid's sliding semantics:
    a hit moves the entry to the end and pushes its expiry; a few expired entries are dropped
    from the front on every call."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.entries: OrderedDict[bytes, list[Any]] = OrderedDict()

    def get(self, key: str) -> str:
        digest = sha256(key.encode()).digest()
        now = monotonic()
        entries = self.entries
        for _ in range(2):
            if not entries:
                break
            oldest = next(iter(entries.values()))
            if oldest[1] > now:
                break
            entries.popitem(last=False)
        entry = entries.get(digest)
        if entry is not None and entry[1] > now:
            entry[1] = now + self.ttl
            entries.move_to_end(digest)
            return entry[0]  # type: ignore[no-any-return]
        new_id = str(uuid4())
        entries[digest] = [new_id, now + self.ttl]
        entries.move_to_end(digest)
        return new_id

    def purge(self) -> int:
        now = monotonic()
        dropped = 0
        while self.entries and next(iter(self.entries.values()))[1] <= now:
            self.entries.popitem(last=False)
            dropped += 1
        return dropped


def make_sessid(ttl: float) -> Any:
    return sessid.Store(ttl=ttl)


def make_cachetools(ttl: float) -> Any:
    import cachetools  # type: ignore[import-untyped, unused-ignore]  # an optional bench extra

    cache: cachetools.TTLCache[bytes, str] = cachetools.TTLCache(maxsize=MAX_SIZE, ttl=ttl)

    class CachetoolsTTL:
        def get(self, key: str) -> str:
            digest = sha256(key.encode()).digest()
            value = cache.get(digest)
            if value is None:
                value = str(uuid4())
            cache[digest] = value           # setting again slides the TTL
            return value

        def purge(self) -> int:
            return len(cache.expire())

    return CachetoolsTTL()


def make_cachebox(ttl: float) -> Any:
    import cachebox  # type: ignore[import-not-found, unused-ignore]  # an optional bench extra

    cache: cachebox.TTLCache[bytes, str] = cachebox.TTLCache(0, global_ttl=ttl)

    class CacheboxTTL:
        def get(self, key: str) -> str:
            digest = sha256(key.encode()).digest()
            value: str | None = cache.get(digest, None)
            if value is None:
                value = str(uuid4())
            cache.insert(digest, value)     # inserting again slides the TTL
            return value

        def purge(self) -> int:
            before = len(cache)
            cache.expire()
            return before - len(cache)

    return CacheboxTTL()


def make_moka(ttl: float) -> Any:
    import moka_py  # type: ignore[import-not-found, unused-ignore]  # an optional bench extra

    cache: moka_py.Moka[bytes, str] = moka_py.Moka(MAX_SIZE, tti=ttl)

    class MokaTTI:
        def get(self, key: str) -> str:
            # typed by moka_py's stubs where it has them, Any where it has none
            return cache.get_with(sha256(key.encode()).digest(), new_id)  # type: ignore[no-any-return, unused-ignore]

        def purge(self) -> int:
            before = cache.count()
            cache.run_pending_tasks()
            return before - cache.count()

    return MokaTTI()


def new_id() -> str:
    return str(uuid4())


class DigestFloor:
    """Only the digest: what any contender spends before it touches its table."""

    def __init__(self, ttl: float) -> None:
        pass

    def get(self, key: str) -> bytes:
        digest: bytes = sha256(key.encode()).digest()
        return digest


class UUIDFloor:
    """Only a new id: what a miss costs a contender at the least."""

    def __init__(self, ttl: float) -> None:
        pass

    def get(self, key: str) -> str:
        return str(uuid4())


def _optional(name: str, module: str, make: Callable[[float], Any]) -> Contender:
    try:
        __import__(module)
    except ImportError:
        return Contender(name, None, missing="not installed (pip install 'sessid[bench]')")
    return Contender(name, make)


def contenders() -> list[Contender]:
    return [
        Contender("sessid", make_sessid),
        Contender("plain Python (OrderedDict)", PlainPython),
        _optional("cachetools.TTLCache", "cachetools", make_cachetools),
        _optional("cachebox.TTLCache", "cachebox", make_cachebox),
        _optional("moka_py.Moka(tti)", "moka_py", make_moka),
        Contender("floor: hashlib.sha256 alone", DigestFloor, floor=True),
        Contender("floor: str(uuid.uuid4()) alone", UUIDFloor, floor=True),
    ]
