"""Command line: python -m sessid get KEY | key KEY | bench

    python -m sessid get sk-...                  the session id of a key (in this process)
    python -m sessid get - --redis redis://...   read the key from stdin; ask a shared Redis
    python -m sessid key sk-... --prefix p:      the KV key a key is stored under
    python -m sessid bench                       time sessid against plain Python equivalents
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import sessid
from sessid._sessid import TTL_MAX


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (0 < value <= TTL_MAX) or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1e9 seconds, got {text!r}")
    return value


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


def make_store(args: argparse.Namespace, parser: argparse.ArgumentParser) -> sessid.Store:
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
    return sessid.Store(kv=kv, ttl=getattr(args, "ttl", 3600.0), prefix=args.prefix)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="python -m sessid", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"sessid {sessid.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    get = commands.add_parser("get", help="print the session id of KEY")
    key = commands.add_parser("key", help="print the KV key of KEY (no KV is asked)")
    for command in (get, key):
        command.add_argument("key", metavar="KEY", help="the API key, or - to read it from stdin")
        command.add_argument("--prefix", type=utf8_text, default="sessid:", help="KV key prefix (default sessid:)")
    get.add_argument("--redis", metavar="URL", help="a Redis URL to use as the shared KV")
    get.add_argument("--ttl", type=seconds, default=3600.0, help="seconds (default 3600)")
    commands.add_parser("bench", add_help=False,
                        help="time sessid against plain Python equivalents (bench --help)")
    return parser, {"get": get, "key": key}


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from sessid.bench.cli import main as bench

        return bench(rest)
    command = commands[args.command]
    if rest:
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    store = make_store(args, command)
    key = read_key(args.key, command)
    if args.command == "key":
        print(store.key_for(key))
        return 0
    try:
        print(store.get_required(key))
    except sessid.KVError as exc:
        print(f"python -m sessid: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
