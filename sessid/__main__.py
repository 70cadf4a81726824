"""python -m sessid: get, forget, stats, remove, key, bench

    python -m sessid get KEY --shared NAME           the session id of KEY in the host's shared table
    python -m sessid get KEY --shared NAME --create  the same, making the table when there is none
        [--ttl SECONDS] [--max-entries N]            (the settings of the table it makes)
    python -m sessid get - --redis URL               read the key from stdin; ask a shared Redis
    python -m sessid forget KEY --shared NAME        start KEY's session over (or --redis URL)
    python -m sessid stats --shared NAME             the entries and counters of a shared table
    python -m sessid remove --shared NAME            remove a shared table
    python -m sessid key KEY --prefix p:             the KV key a key is stored under
    python -m sessid bench                           time sessid against plain Python equivalents

An id lives where it is kept, so get and forget need --shared or --redis: an id made inside one
command would die with it. Errors are one line; the exit code is 2 for a usage error, 1 for a
failure.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from typing import NoReturn

import sessid
from sessid._sessid import TTL_MAX, _shared_path, _shared_settings

PROG = "python -m sessid"
COMMANDS = ("get", "forget", "stats", "remove", "key", "bench")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (0 < value <= TTL_MAX) or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1e9 seconds, got {text!r}")
    return value


def entries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
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


class Failure(Exception):
    """A failure the user can act on, worded for this command line (exit code 1)."""


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


def in_cli_words(exc: BaseException, shared: str | None) -> str:
    """exc's message on one line, with the Python API's remedy given as this command line's."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if shared is not None:
        message = message.replace("sessid.remove_shared", f"{PROG} remove --shared {shlex.quote(shared)}")
    return message


def check_where(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors about where the id lives, before anything is read or opened."""
    shared = getattr(args, "shared", None)
    redis_url = getattr(args, "redis", None)
    if args.command in ("get", "forget") and shared is None and redis_url is None:
        parser.error(f"{args.command} needs --shared NAME or --redis URL: an id made inside one "
                     "command lives only as long as the command, so every run would print a new one")
    if args.command != "get":
        return
    if args.create and shared is None:
        parser.error("--create makes a shared table: give it with --shared NAME")
    if args.max_entries is not None and shared is None:
        parser.error("--max-entries is the capacity of a shared table: give it with --shared NAME --create")
    if shared is not None and not args.create:
        for given, option in ((args.ttl, "--ttl"), (args.max_entries, "--max-entries")):
            if given is not None:
                parser.error(f"{option} is a setting of a table being made: give it with --create "
                             "(an existing table keeps the settings it was made with)")


def no_table(shared: str) -> Failure:
    name = shlex.quote(shared)
    return Failure(f"there is no shared table {_shared_path(shared)}: check the name, or make the table "
                   f"with: {PROG} get KEY --shared {name} --create [--ttl SECONDS] [--max-entries N]")


def open_shared(args: argparse.Namespace, parser: argparse.ArgumentParser) -> sessid.Store:
    """The table at --shared as it is; with --create, made first when there is none (with --ttl and
    --max-entries, or the defaults)."""
    create = getattr(args, "create", False)
    try:
        ttl, max_entries = _shared_settings(args.shared)
        made = False
    except sessid.Error as exc:
        if not isinstance(exc.__cause__, FileNotFoundError):
            raise
        if not create:
            raise no_table(args.shared) from None
        ttl, max_entries, made = 3600.0, None, True
    if create:
        ttl = args.ttl if args.ttl is not None else ttl
        max_entries = args.max_entries if args.max_entries is not None else max_entries
    try:
        store = sessid.Store(shared=args.shared, ttl=ttl, max_entries=max_entries)
    except ValueError as exc:
        parser.error(str(exc))
    if made:
        print(f"{parser.prog}: made shared table {_shared_path(args.shared)} (ttl {store.ttl:g} s, "
              f"max_entries {store.max_entries})", file=sys.stderr)
    return store


def open_redis(args: argparse.Namespace, parser: argparse.ArgumentParser) -> sessid.Store:
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
    parser = argparse.ArgumentParser(
        prog=PROG, usage=f"%(prog)s [-h] [--version] {{{','.join(COMMANDS)}}} ...",
        description="Look up or forget a key's session id in a shared table or in Redis; inspect, "
                    "remove or time sessid.",
        epilog="Each command has its own --help (python -m sessid get --help).")
    parser.add_argument("--version", action="version", version=f"sessid {sessid.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog=PROG)
    get = commands.add_parser("get", help="print the session id of KEY")
    forget = commands.add_parser("forget", help="start KEY's session over, in Redis or a shared table")
    stats = commands.add_parser("stats", help="print the entries and counters of a shared table")
    remove = commands.add_parser("remove", help="remove a shared table")
    key = commands.add_parser("key", help="print the KV key of KEY (no KV is asked)")
    commands.add_parser("bench", add_help=False,
                        help="time sessid against plain Python equivalents (bench --help)")
    for command in (get, forget, key):
        command.add_argument("key", metavar="KEY", help="the API key, or - to read it from stdin")
        command.add_argument("--prefix", type=utf8_text, default="sessid:", help="KV key prefix (default sessid:)")
    for command in (get, forget):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--shared", type=shared_name, metavar="NAME",
                           help="the host's shared table NAME (or an absolute path); it must exist")
        where.add_argument("--redis", metavar="URL", help="a Redis URL to use as the shared KV")
    get.add_argument("--create", action="store_true",
                     help="with --shared: make the table when there is none")
    get.add_argument("--ttl", type=seconds, metavar="SECONDS",
                     help="seconds (default 3600); with --shared, the TTL of a table --create makes")
    get.add_argument("--max-entries", type=entries, metavar="N",
                     help="the capacity of a table --create makes (default 100000)")
    for command in (stats, remove):
        command.add_argument("--shared", type=shared_name, metavar="NAME", required=True,
                             help="the shared table's name (or an absolute path)")
    return parser, {"get": get, "key": key, "forget": forget, "stats": stats, "remove": remove}


def remove(args: argparse.Namespace) -> int:
    removed = sessid.remove_shared(args.shared)
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


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "remove":
        return remove(args)
    if args.command == "key":
        print(sessid.Store(prefix=args.prefix).key_for(read_key(args.key, parser)))
        return 0
    check_where(args, parser)
    key = read_key(args.key, parser) if args.command != "stats" else b""
    store = open_shared(args, parser) if args.shared is not None else open_redis(args, parser)
    if args.command == "stats":
        return show_stats(store)
    if args.command == "get":
        print(store.get_required(key))
        return 0
    store.forget(key)
    if store.shared is not None:
        print(f"forgot the key's session id in shared table {_shared_path(store.shared)} "
              "(its next get makes a new one)")
    else:
        print(f"forgot the key's session id in Redis, KV key {store.key_for(key)} "
              "(its next get makes a new one)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        from sessid.bench.cli import main as bench

        try:
            return bench(rest)
        except KeyboardInterrupt:
            print(f"{PROG} bench: interrupted", file=sys.stderr)
            return 130
    command = commands[args.command]
    if rest:
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return run(args, command)
    except KeyboardInterrupt:
        print(f"{command.prog}: interrupted", file=sys.stderr)
        return 130
    except (Failure, sessid.Error, OSError) as exc:
        fail(command, in_cli_words(exc, getattr(args, "shared", None)))
    except Exception as exc:            # a bug of sessid's: still one line, with what it was
        fail(command, f"unexpected {type(exc).__name__}: {in_cli_words(exc, None)}")


def fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
