"""atheris harness for sessid's Python surface: stores built from fuzzed settings, keys of every kind,
and a fake KV that misbehaves as the input says. Only documented exceptions may come out, and every
id that comes back must be a usable session id.

    python tests/fuzz/fuzz_api.py -max_total_time=60 tests/fuzz/corpus/api
"""

import logging
import sys

import atheris

with atheris.instrument_imports():
    import sessid
    from sessid.testing import FakeKV, ManualClock, ResponseError

KEY_ERRORS = (TypeError, UnicodeEncodeError)
SETTING_ERRORS = (TypeError, ValueError, OverflowError)

# The log line of a hidden KV failure is formatted and handled, but not printed.
logging.getLogger("sessid").addHandler(logging.NullHandler())
logging.getLogger("sessid").propagate = False


def usable(value):
    return isinstance(value, str) and 1 <= len(value) <= 128 and all(
        0x21 <= ord(c) <= 0x7E for c in value)


class FuzzedKV(FakeKV):
    """Replies as the fuzzer says: the real answer, an exception, or a value of any kind."""

    def __init__(self, fdp, **options):
        super().__init__(**options)
        self.fdp = fdp

    def _reply(self, real):
        choice = self.fdp.ConsumeIntInRange(0, 9)
        if choice <= 4:
            return real()
        if choice == 5:
            raise ConnectionError("fuzzed")
        if choice == 6:
            raise ResponseError(self.fdp.PickValueInList(
                ["ERR syntax error", "ERR unknown command", "WRONGTYPE", "NOPERM no permissions",
                 "unsupported command 'getex'", "BUSY busy", "CLUSTERDOWN down", "", "LOADING"]))
        if choice == 7:
            return self.fdp.ConsumeBytes(self.fdp.ConsumeIntInRange(0, 200))
        if choice == 8:
            return self.fdp.ConsumeUnicodeNoSurrogates(self.fdp.ConsumeIntInRange(0, 60))
        return self.fdp.PickValueInList([None, True, False, 0, 1.5, [], {}, object()])

    def get(self, name):
        return self._reply(lambda: super(FuzzedKV, self).get(name))

    def getex(self, name, ex=None, **options):
        return self._reply(lambda: super(FuzzedKV, self).getex(name, ex=ex, **options))

    def set(self, name, value, **options):
        return self._reply(lambda: super(FuzzedKV, self).set(name, value, **options))

    def expire(self, name, time):
        return self._reply(lambda: super(FuzzedKV, self).expire(name, time))

    def delete(self, *names):
        return self._reply(lambda: super(FuzzedKV, self).delete(*names))


def fuzzed_key(fdp):
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 80))      # surrogates included
    if kind == 1:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80))
    if kind == 2:
        return bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80)))
    if kind == 3:
        return memoryview(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80)))[::2]
    if kind == 4:
        return fdp.PickValueInList(["", b"", "k", "key-1", "key-2"])
    if kind == 5:
        return fdp.PickValueInList([None, 0, 1.0, [], object()])
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60))


def fuzzed_store(fdp, clock):
    settings = {}
    if fdp.ConsumeBool():
        settings["ttl"] = fdp.PickValueInList([0, -1, 0.001, 1, 10, 3600, 1e9, 2e9, float("nan"), "x"])
    if fdp.ConsumeBool():
        settings["max_entries"] = fdp.PickValueInList([None, 0, 1, 2, 5, 1000, -3, 2**40, 1.5])
    kv = None
    if fdp.ConsumeBool():
        version = fdp.PickValueInList([(6, 0), (6, 2), (7, 0), (7, 2)])
        kv = FuzzedKV(fdp, clock=clock, server_version=version, has_getex=fdp.ConsumeBool(),
                      has_set_get=fdp.ConsumeBool(), decode_responses=fdp.ConsumeBool())
        kv.set_persists = fdp.ConsumeIntInRange(0, 9) > 0
        if fdp.ConsumeBool():
            settings["refresh_after"] = fdp.PickValueInList([None, 0.5, 5, 60, 0, 1e12])
        if fdp.ConsumeBool():
            settings["on_kv_error"] = fdp.PickValueInList(["random", "local", "x"])
        if fdp.ConsumeBool():
            settings["kv_backoff"] = fdp.PickValueInList([0, 0.5, 1, 60, -1, float("nan"), "1"])
    try:
        return sessid.Store(kv=kv, clock=clock, **settings)
    except SETTING_ERRORS:
        return None


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    clock = ManualClock()
    store = fuzzed_store(fdp, clock)
    if store is None:
        return
    for _ in range(fdp.ConsumeIntInRange(1, 30)):
        action = fdp.ConsumeIntInRange(0, 10)
        clock.advance(fdp.PickValueInList([0, 0.5, 1, 30, 3600, -5]))
        key = fuzzed_key(fdp)
        try:
            if action <= 3:
                assert usable(store.get(key))
            elif action <= 5:
                try:
                    assert usable(store.get_required(key))
                except sessid.KVError:
                    pass
            elif action == 6:
                assert store.key_for(key).startswith(store.prefix)
            elif action == 7:
                assert store.purge() >= 0 and len(store) >= 0
            elif action == 8:
                store.clear()
            elif action == 9:
                try:
                    assert store.forget(key) is None
                except sessid.KVError:
                    pass
            else:
                stats = store.stats()
                assert all(v >= 0 for v in stats.values())
        except KEY_ERRORS:
            if isinstance(key, (str, bytes, bytearray, memoryview)) and not (
                    isinstance(key, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in key)):
                raise


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
