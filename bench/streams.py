"""Independent random streams, one per (seed, keys...): splits, label noise and a method's draws never share one.

With ``default_rng(seed)`` everywhere, two draws of the same shape coincide: for every dataset of the same
size, the positions whose labels :mod:`valbench.datasets.noise` flips were the positions ``random`` scored
highest (seed 13 put 28 % flipped labels into ``random``'s 5 % subset on three datasets at once). Here each
purpose gets its own stream from a :class:`numpy.random.SeedSequence` whose entropy is the seed followed by a
stable digest of each key (SHA-256 of its text, never Python's per-process salted ``hash``), so streams are
reproducible across processes and machines and statistically independent across keys.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_entropy(key: object) -> int:
    """A stable 128-bit integer for ``key`` (its ``str``): the first 16 bytes of its SHA-256 digest."""
    return int.from_bytes(hashlib.sha256(str(key).encode("utf-8")).digest()[:16], "little")


def stream(seed: int, *keys: object) -> np.random.Generator:
    """The generator for ``seed`` and a purpose named by ``keys``, e.g. ``stream(3, "digits", "noise")``.

    The same arguments give the same draws in every process; different keys give independent draws.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(key_entropy(k) for k in keys)]))
