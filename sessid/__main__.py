"""Command line: python -m sessid get KEY | key KEY | bench

    python -m sessid get sk-...                  the session id of a key (in this process)
    python -m sessid get - --redis redis://...   read the key from stdin; ask a shared Redis
    python -m sessid key sk-... --prefix p:      the KV key a key is stored under
    python -m sessid bench                       time sessid against plain Python equivalents
"""

from __future__ import annotations

import argparse
import sys

import sessid


def read_key(arg: str) -> str:
    """'-' reads the key from stdin, so it stays out of the shell history and the process list."""
    if arg != "-":
        return arg
    return sys.stdin.readline().rstrip("\r\n")


def make_store(args: argparse.Namespace) -> sessid.Store:
    kv = None
    if args.redis:
        try:
            import redis
        except ImportError:
            raise SystemExit("--redis needs redis-py: pip install 'sessid[redis]'") from None
        kv = redis.Redis.from_url(args.redis)
    return sessid.Store(kv=kv, ttl=args.ttl, prefix=args.prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessid", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("get", "print the session id of KEY"), ("key", "print the KV key of KEY")):
        command = commands.add_parser(name, help=text)
        command.add_argument("key", metavar="KEY", help="the API key, or - to read it from stdin")
        command.add_argument("--redis", metavar="URL", help="a Redis URL to use as the shared KV")
        command.add_argument("--prefix", default="sessid:", help="KV key prefix (default sessid:)")
        command.add_argument("--ttl", type=float, default=3600.0, help="seconds (default 3600)")
    bench = commands.add_parser("bench", help="time sessid against plain Python equivalents")
    from sessid.bench.cli import add_arguments

    add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from sessid.bench.cli import run

        return run(args)
    store = make_store(args)
    key = read_key(args.key)
    try:
        print(store.get_required(key) if args.command == "get" else store.key_for(key))
    except sessid.KVError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
