"""What a Store needs of its ``kv``, as Protocols for type checkers."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

__all__ = ["AsyncKV", "KV"]


class KV(Protocol):
    """The subset of the redis-py client API that ``Store.get``, ``get_required`` and ``forget`` use,
    as they call it: ``redis.Redis``, ``redis.cluster.RedisCluster``, ``valkey.Valkey``,
    ``fakeredis.FakeRedis`` and ``sessid.testing.FakeKV`` have it.

    ``getex(name, ex=seconds)`` is left out: a Store calls it where the client has it and does
    without it elsewhere. A ``set`` without the ``get`` keyword works too (a Store then reads the
    value back), though it does not match this Protocol.

    Not ``runtime_checkable``: ``isinstance`` would only see that the methods exist, which cannot
    tell a client from an asyncio one, and ``Store(kv=...)`` checks that much itself.
    """

    def get(self, name: str, /) -> object: ...

    # A Store always passes nx and ex, so a client need not default them.
    def set(self, name: str, value: str, /, *, nx: bool, ex: int, get: bool = ...) -> object: ...

    def expire(self, name: str, time: int, /) -> object: ...

    # Only Store.forget calls it; a client without it works for everything else.
    def delete(self, name: str, /) -> object: ...


class AsyncKV(Protocol):
    """KV with awaitable replies, for ``Store.aget``, ``aget_required`` and ``aforget``: ``redis.asyncio.Redis``,
    ``redis.asyncio.cluster.RedisCluster``, ``valkey.asyncio.Valkey``, ``fakeredis.FakeAsyncRedis``
    and ``sessid.testing.AsyncFakeKV``. ``getex`` is optional here too, and it is not
    ``runtime_checkable`` either.
    """

    def get(self, name: str, /) -> Awaitable[object]: ...

    def set(
        self, name: str, value: str, /, *, nx: bool, ex: int, get: bool = ...
    ) -> Awaitable[object]: ...

    def expire(self, name: str, time: int, /) -> Awaitable[object]: ...

    def delete(self, name: str, /) -> Awaitable[object]: ...


# The repair of a damaged KV key, in one step of the server (EVAL, Redis 2.6+): when the key holds a
# session id (a version 4 UUID in its 36-character form, whitespace and letter case aside), it
# refreshes its TTL and returns it; otherwise (nothing, another value, or data of another type) it
# sets the new id given with the TTL and returns it. KEYS[1] is the KV key; ARGV is the new id and
# the TTL in seconds. Every worker that meets the damage at once therefore ends on one id.
REPAIR_SCRIPT = """\
local key, id, ttl = KEYS[1], ARGV[1], ARGV[2]
local kind = redis.call('TYPE', key)
if type(kind) == 'table' then kind = kind.ok end
if kind == 'string' then
  local value = redis.call('GET', key)
  if #value <= 1024 then
    local text = string.lower(string.match(value, '^%s*(.-)%s*$'))
    if string.match(text, '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$') then
      redis.call('EXPIRE', key, ttl)
      return value
    end
  end
end
redis.call('SET', key, id, 'EX', ttl)
return id
"""
