"""The KV path over Redis, at full size: python benchmarks/kv.py [--redis URL] (default: a throwaway
server) [--quick for the short run's sizes]."""

import sys

from sessid.bench.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--redis" not in args:
        args += ["--redis", "auto"]
    if "--quick" not in args:
        args.append("--full")
    sys.exit(main(["--only", "kv", *args]))
