"""The KV path over Redis: python benchmarks/kv.py [--redis URL] (default: a throwaway server)."""

import sys

from sessid.bench.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--redis" not in args:
        args += ["--redis", "auto"]
    sys.exit(main(["--only", "kv", *args]))
