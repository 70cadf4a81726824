"""API keys for the benchmarks: random-looking, 52 characters, reproducible."""

from __future__ import annotations

import bisect
import itertools
import random
import string

ALPHABET = string.ascii_letters + string.digits
PREFIX = "sk-ant-api03-"
LENGTH = 52


def random_keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    tail = LENGTH - len(PREFIX)
    return [PREFIX + "".join(rng.choices(ALPHABET, k=tail)) for _ in range(count)]


class HitKeys:
    """The keys of the hit workloads, the same in every suite that times hits: `large` keys (a
    million, scaled) and a shuffled order of them, and `calls` calls spread over their first
    `small`."""

    def __init__(self, scale: float, small: int = 1_000) -> None:
        self.small = small
        self.large = max(10_000, int(1_000_000 * scale))
        self.calls = max(20_000, int(200_000 * scale))
        rng = random.Random(7)
        self.large_keys = random_keys(self.large, seed=1)
        self.shuffled_large = self.large_keys[:]
        rng.shuffle(self.shuffled_large)
        self.small_keys = self.large_keys[:small]
        passes = max(1, self.calls // small)
        self.small_calls = [k for _ in range(passes) for k in rng.sample(self.small_keys, small)]


def numbered_key(i: int) -> str:
    """A 52-character key made on the fly, for fills that must not keep the keys alive."""
    return f"{PREFIX}{i:039d}"


def zipf_draws(population: list[str], draws: int, s: float, seed: int) -> list[str]:
    """draws keys of population, the k-th most popular with weight 1 / k**s."""
    rng = random.Random(seed)
    weights = [1.0 / (k**s) for k in range(1, len(population) + 1)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    last = len(population) - 1
    return [
        population[min(bisect.bisect(cumulative, rng.random() * total), last)] for _ in range(draws)
    ]
