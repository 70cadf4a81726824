"""Command line: python -m sessid get KEY | key KEY | stats | remove | bench

    python -m sessid get sk-...                  the session id of a key (in this process)
    python -m sessid get - --redis redis://...   read the key from stdin; ask a shared Redis
    python -m sessid get sk-... --shared NAME    ask the host's shared table NAME
    python -m sessid key sk-... --prefix p:      the KV key a key is stored under
    python -m sessid stats --shared NAME         the entries and counters of a shared table
    python -m sessid remove --shared NAME        remove a shared table
    python -m sessid bench                       time sessid against plain Python equivalents
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import NoReturn

import sessid
from sessid._sessid import TTL_MAX, _shared_path, _shared_settings


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (0 < value <= TTL_MAX) or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1e9 seconds, got {text!r}")
    return value


def shared_name(text: str) -> str:
    try:
        _shared_path(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def utf8_text(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {text!r}") from None
    return text


def read_key(arg: str, parser: argparse.ArgumentParser) -> bytes:
    """The key's bytes as typed: '-' reads one line from stdin, which keeps the key out of the shell
    history and the process list. An argument is taken as the bytes the shell passed, so a key that
    is not valid UTF-8 is hashed as it is rather than failing."""
    if arg == "-":
        key = sys.stdin.buffer.readline().rstrip(b"\r\n")
        where = "the key read from stdin"
    else:
        key = os.fsencode(arg)
        where = "KEY"
    if not key:
        parser.error(f"{where} is empty: an empty key has no session id")
    return key


def shared_settings(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[float, int | None]:
    """The ttl and max_entries to open a shared table with: those it was made with when it exists
    and --ttl is not given (so an operator need not know them), else --ttl (or 3600) and the
    default capacity."""
    ttl: float | None = getattr(args, "ttl", None)
    if ttl is not None:
        return ttl, None
    try:
        return _shared_settings(args.shared)
    except sessid.Error as exc:
        if args.command == "get" and isinstance(exc.__cause__, FileNotFoundError):
            return 3600.0, None
        fail(parser, exc)


def fail(parser: argparse.ArgumentParser, exc: Exception) -> NoReturn:
    print(f"{parser.prog}: error: {exc}", file=sys.stderr)
    raise SystemExit(1)


def make_store(args: argparse.Namespace, parser: argparse.ArgumentParser) -> sessid.Store:
    if getattr(args, "shared", None) is not None:
        try:
            ttl, max_entries = shared_settings(args, parser)
            return sessid.Store(shared=args.shared, ttl=ttl, max_entries=max_entries)
        except sessid.Error as exc:
            fail(parser, exc)
    kv = None
    if getattr(args, "redis", None):
        try:
            import redis
        except ImportError:
            parser.error("--redis needs redis-py: pip install 'sessid[redis]'")
        try:
            kv = redis.Redis.from_url(args.redis)
        except ValueError as exc:
            parser.error(f"argument --redis: {exc}")
    return sessid.Store(kv=kv, ttl=getattr(args, "ttl", None) or 3600.0, prefix=args.prefix)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="python -m sessid", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"sessid {sessid.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    get = commands.add_parser("get", help="print the session id of KEY")
    key = commands.add_parser("key", help="print the KV key of KEY (no KV is asked)")
    forget = commands.add_parser("forget", help="start KEY's session over, in Redis or a shared table")
    for command in (get, key, forget):
        command.add_argument("key", metavar="KEY", help="the API key, or - to read it from stdin")
        command.add_argument("--prefix", type=utf8_text, default="sessid:", help="KV key prefix (default sessid:)")
    for command in (get, forget):
        where = command.add_mutually_exclusive_group(required=command is forget)
        where.add_argument("--redis", metavar="URL", help="a Redis URL to use as the shared KV")
        where.add_argument("--shared", type=shared_name, metavar="NAME",
                           help="the host's shared table NAME (or an absolute path)")
    get.add_argument("--ttl", type=seconds, help="seconds (default 3600, or a shared table's own)")
    stats = commands.add_parser("stats", help="print the entries and counters of a shared table")
    remove = commands.add_parser("remove", help="remove a shared table")
    for command in (stats, remove):
        command.add_argument("--shared", type=shared_name, metavar="NAME", required=True,
                             help="the shared table's name (or an absolute path)")
    commands.add_parser("bench", add_help=False,
                        help="time sessid against plain Python equivalents (bench --help)")
    return parser, {"get": get, "key": key, "forget": forget, "stats": stats, "remove": remove}


def remove(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        removed = sessid.remove_shared(args.shared)
    except sessid.Error as exc:
        fail(parser, exc)
    path = _shared_path(args.shared)
    print(f"removed {path}" if removed else f"there is no shared table {path}")
    return 0


def show_stats(store: sessid.Store) -> int:
    print(f"table: {_shared_path(store.shared or '')}")
    print(f"ttl: {store.ttl:g} s, max_entries: {store.max_entries}")
    print(f"entries: {len(store)}")
    for name, count in store.stats().items():
        print(f"{name}: {count}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from sessid.bench.cli import main as bench

        return bench(rest)
    command = commands[args.command]
    if rest:
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "remove":
        return remove(args, command)
    store = make_store(args, command)
    if args.command == "stats":
        return show_stats(store)
    key = read_key(args.key, command)
    if args.command == "key":
        print(store.key_for(key))
        return 0
    try:
        if args.command == "forget":
            store.forget(key)
            print(f"forgot {store.key_for(key)}")
        else:
            print(store.get_required(key))
    except sessid.KVError as exc:
        print(f"python -m sessid: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
