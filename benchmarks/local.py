"""The benchmark from a checkout: python benchmarks/local.py [--full] [--only hit miss ...]."""

import sys

from sessid.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
