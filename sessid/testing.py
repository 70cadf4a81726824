"""Test doubles for code that uses sessid: a fake KV with the redis-py client API and a clock.

    from sessid.testing import FakeKV, ManualClock

    clock = ManualClock()
    kv = FakeKV(clock=clock)
    store = sessid.Store(kv=kv, clock=clock)
    first = store.get("sk-1")
    clock.advance(3599)
    assert store.get("sk-1") == first
    assert kv.calls["set"] == 1 and kv.last_ttl["set"] == 3600

FakeKV keeps values with real TTLs on its clock, counts calls per method, remembers the last TTL
sent to each, and misbehaves on request: ``fail("get")`` makes get raise, ``set_persists = False``
makes set report success and store nothing, ``server_version=(6, 0)`` answers as a Redis server
without GETEX or SET ... NX GET would, and ``has_getex=False`` / ``has_set_get=False`` make a client
without the getex method or the get keyword of set. AsyncFakeKV is the same with coroutine methods,
the shape of ``redis.asyncio.Redis``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["AsyncFakeKV", "FakeKV", "ManualClock", "ResponseError"]


class ResponseError(Exception):
    """An error reply of the server, whatever its words. sessid recognizes redis-py's by the class
    name, as this one: to an optional command (GETEX, SET ... GET) it means "not offered here",
    unless its text starts with the code of a transient state (``ResponseError("BUSY ...")``)."""


class ManualClock:
    """A clock that moves only when told: ``clock()`` returns the time, ``advance(s)`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeKV:
    """An in-memory KV with the subset of the redis-py client API that sessid uses."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        server_version: tuple[int, int] = (7, 2),
        decode_responses: bool = False,
        has_getex: bool = True,
        has_set_get: bool = True,
    ) -> None:
        self.clock = clock if clock is not None else time.monotonic
        self.server_version = server_version
        self.decode_responses = decode_responses
        self.has_set_get = has_set_get
        self.set_persists = True
        self.calls: Counter[str] = Counter()
        self.last_ttl: dict[str, int] = {}
        self.commands: list[tuple[Any, ...]] = []
        self.failures: dict[str, BaseException] = {}
        self._data: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.RLock()
        if not has_getex:
            self.getex = None  # type: ignore[assignment]  # a client without the method

    # ---- fault injection and inspection ----

    def fail(self, method: str, error: BaseException | None = None) -> None:
        """Makes ``method`` raise ``error`` (a ConnectionError by default) until ``heal``."""
        self.failures[method] = error if error is not None else ConnectionError(f"{method} failed")

    def heal(self, method: str | None = None) -> None:
        """Stops the failures of ``method``, or of every method."""
        if method is None:
            self.failures.clear()
        else:
            self.failures.pop(method, None)

    def value(self, name: str) -> bytes | None:
        """The live value under ``name``, without counting a call."""
        with self._lock:
            item = self._live(name)
            return item[0] if item is not None else None

    def store(self, name: str, value: bytes | str, ex: float = 3600) -> None:
        """Puts a value in place, as another process would, without counting a call."""
        with self._lock:
            self._data[name] = (_to_bytes(value), self.clock() + ex)

    def ttl(self, name: str) -> float:
        """Seconds ``name`` has left, or -2 when it holds nothing (as Redis's TTL)."""
        with self._lock:
            item = self._live(name)
            return -2 if item is None else item[1] - self.clock()

    def keys(self) -> list[str]:
        with self._lock:
            return [name for name in list(self._data) if self._live(name) is not None]

    # ---- the redis-py client API ----

    def get(self, name: str) -> bytes | str | None:
        with self._lock:
            self._enter("get", name)
            item = self._live(name)
            return self._reply(item[0]) if item is not None else None

    def getex(self, name: str, ex: int | None = None, **options: Any) -> bytes | str | None:
        with self._lock:
            self._enter("getex", name, ex=ex, **options)
            if self.server_version < (6, 2):
                raise ResponseError(f"ERR unknown command 'getex', with args beginning with: '{name}'")
            self._record_ttl("getex", ex)
            item = self._live(name)
            if item is None:
                return None
            if ex is not None:
                self._data[name] = (item[0], self.clock() + ex)
            return self._reply(item[0])

    def set(
        self,
        name: str,
        value: bytes | str,
        ex: int | None = None,
        px: int | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
        **options: Any,
    ) -> bool | bytes | str | None:
        if get and not self.has_set_get:
            raise TypeError("set() got an unexpected keyword argument 'get'")  # an older client
        with self._lock:
            self._enter("set", name, value, ex=ex, nx=nx, get=get, **options)
            if get and (self.server_version < (6, 2) or (nx and self.server_version < (7, 0))):
                raise ResponseError("ERR syntax error")
            self._record_ttl("set", ex)
            item = self._live(name)
            if (nx and item is not None) or (xx and item is None):
                return self._reply(item[0]) if get and item is not None else None
            if self.set_persists:
                expires = self.clock() + ex if ex is not None else float("inf")
                self._data[name] = (_to_bytes(value), expires)
            if get:
                return self._reply(item[0]) if item is not None else None
            return True

    def delete(self, *names: str) -> int:
        with self._lock:
            self._enter("delete", *names)
            return sum(self._data.pop(name, None) is not None for name in names)

    def expire(self, name: str, time: int) -> bool:
        with self._lock:
            self._enter("expire", name, time)
            self._record_ttl("expire", time)
            item = self._live(name)
            if item is None:
                return False
            self._data[name] = (item[0], self.clock() + time)
            return True

    # ---- internals ----

    def _enter(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls[method] += 1
        self.commands.append((method, *args, kwargs) if kwargs else (method, *args))
        failure = self.failures.get(method)
        if failure is not None:
            raise failure

    def _record_ttl(self, method: str, ttl: int | None) -> None:
        if ttl is not None:
            self.last_ttl[method] = ttl

    def _live(self, name: str) -> tuple[bytes, float] | None:
        item = self._data.get(name)
        if item is not None and item[1] <= self.clock():
            del self._data[name]
            return None
        return item

    def _reply(self, value: bytes) -> bytes | str:
        return value.decode() if self.decode_responses else value


class AsyncFakeKV(FakeKV):
    """FakeKV with coroutine methods, the shape of redis.asyncio.Redis. Each call yields to the
    event loop once before it runs, as a network round trip would."""

    async def get(self, name: str) -> bytes | str | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().get(name)

    async def getex(self, name: str, ex: int | None = None, **options: Any) -> bytes | str | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().getex(name, ex=ex, **options)

    async def set(self, name: str, value: bytes | str, **options: Any) -> bool | bytes | str | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().set(name, value, **options)

    async def expire(self, name: str, time: int) -> bool:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().expire(name, time)

    async def delete(self, *names: str) -> int:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().delete(*names)


def _to_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
