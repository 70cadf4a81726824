"""Run by test_leaks.py in a fresh interpreter: calls each path of sessid many times and prints how
much the interpreter's allocated blocks and tracked objects grew. A path that leaks a reference per
call grows by about one block per call."""

import asyncio
import gc
import json
import sys

import sessid

UUID = b"01234567-89ab-4def-8012-3456789abcde"


class HitKV:
    def get(self, name):
        return UUID

    def getex(self, name, ex=None):
        return UUID

    def set(self, name, value, nx=False, ex=None, get=False):
        return None

    def expire(self, name, seconds):
        return True


class MissKV(HitKV):
    def getex(self, name, ex=None):
        return None


class PlainMissKV:
    """No getex, no get=True: GET, SET NX, read-back GET that finds ours."""

    def __init__(self):
        self.last = None

    def get(self, name):
        value, self.last = self.last, None
        return value

    def set(self, name, value, nx=False, ex=None):
        self.last = value
        return True

    def expire(self, name, seconds):
        return True


class FailingKV(HitKV):
    def getex(self, name, ex=None):
        raise ConnectionError("down")


class WrongTypeKV(HitKV):
    def getex(self, name, ex=None):
        return 42


class MissingKV(PlainMissKV):
    def set(self, name, value, nx=False, ex=None):
        return True


class BadValueKV(HitKV):
    def getex(self, name, ex=None):
        return b"not a session id"


class AsyncHitKV(HitKV):
    async def getex(self, name, ex=None):
        return UUID


def swallow(call, *args):
    try:
        call(*args)
    except sessid.KVError:
        pass


def run_async(store, key, n):
    async def loop():
        for _ in range(n):
            await store.aget(key)

    asyncio.run(loop())


def paths():
    local = sessid.Store(max_entries=64)
    keys = [f"key-{i}" for i in range(1000)]
    counter = iter(range(10**9))
    yield "local hit", lambda: local.get("hot key")
    yield "local miss (evicting)", lambda: local.get(keys[next(counter) % 1000])
    yield "empty key", lambda: local.get("")
    yield "bytes key", lambda: local.get(b"hot key")
    yield "memoryview strided", lambda: local.get(memoryview(b"hxoxtx xkxexyx")[::2])
    yield "bad key type", lambda: swallow_type(local.get, 5)
    yield "key_for", lambda: local.key_for("hot key")
    yield "stats and len", lambda: (local.stats(), len(local))
    for name, kv in [("kv hit", HitKV()), ("kv miss", MissKV()), ("kv plain miss", PlainMissKV())]:
        store = sessid.Store(kv=kv)
        yield name, lambda store=store: store.get_required("k")
    for name, kv in [("kv raises", FailingKV()), ("kv wrong type", WrongTypeKV()),
                     ("kv missing after set", MissingKV()), ("kv bad value", BadValueKV())]:
        store = sessid.Store(kv=kv)
        yield name + " (get)", lambda store=store: store.get("k")
        yield name + " (get_required)", lambda store=store: swallow(store.get_required, "k")
    near = sessid.Store(kv=HitKV(), refresh_after=3600)
    yield "near cache hit", lambda: near.get("k")
    fallback = sessid.Store(kv=FailingKV(), on_kv_error="local")
    yield "local fallback", lambda: fallback.get("k")


def swallow_type(call, arg):
    try:
        call(arg)
    except TypeError:
        pass


def measure(call, n):
    for _ in range(1000):
        call()
    gc.collect()
    blocks, objects = sys.getallocatedblocks(), len(gc.get_objects())
    for _ in range(n):
        call()
    gc.collect()
    return sys.getallocatedblocks() - blocks, len(gc.get_objects()) - objects


def main():
    n = int(sys.argv[1])
    report = {}
    for name, call in paths():
        report[name] = measure(call, n)
    store = sessid.Store(kv=AsyncHitKV())
    run_async(store, "k", 1000)
    gc.collect()
    blocks, objects = sys.getallocatedblocks(), len(gc.get_objects())
    run_async(store, "k", n // 10)
    gc.collect()
    report["async kv hit"] = (sys.getallocatedblocks() - blocks, len(gc.get_objects()) - objects)
    print(json.dumps(report))


main()
