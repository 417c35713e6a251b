"""Several data sets in one: which source each clip came from, and per-source sampling weights.

A combined data set (``python -m training combine-datasets``) names every clip
``<source>_<id>`` and its mirror ``M<source>_<id>`` (the HumanML3D mirror convention kept), so
the source of any id is read off the id itself. ``source_weights`` (a TOML table in the
training config, e.g. ``source_weights = {deepmimic = 8.0, cmu = 2.0}``) makes each item of a
source count that many times per epoch of the train split: 1.0 for a source not listed, 0 to
leave a source out; a fraction repeats that share of the source's items once more (which ones
follows the seed). Why: the Bandai Namco set has ~40 times the frames of DeepMimic, whose new
actions would otherwise be one batch row in forty.
"""

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TypeVar

from engine.errors import MotionError

SOURCE_NAME = "a lowercase letter, then lowercase letters or digits"
Item = TypeVar("Item")


def check_source_name(name: str) -> str:
    """A source name for ids: lowercase (so an id never starts with the mirror's "M")."""
    if not (name[:1].isascii() and name[:1].islower() and name.isascii() and name.isalnum()
            and name == name.lower()):  # fmt: skip
        raise MotionError(f"source name {name!r}: use {SOURCE_NAME} (e.g. bandai, deepmimic)")
    return name


def combined_id(source: str, clip_id: str) -> str:
    """The id of ``clip_id`` of ``source`` in a combined data set; mirrors stay ``M`` + id."""
    if clip_id.startswith("M"):
        return "M" + combined_id(source, clip_id[1:])
    return f"{source}_{clip_id}"


def source_of(clip_id: str) -> str:
    """The source of a combined data set's id ("" for an id of a single data set)."""
    base = clip_id[1:] if clip_id.startswith("M") else clip_id
    head, sep, _ = base.partition("_")
    return head if sep and head[:1].islower() else ""


def _fraction(seed: int, number: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


def weighted_items(
    items: Sequence[Item], ids: Sequence[str], weights: Mapping[str, float], seed: int
) -> list[Item]:
    """``items`` (with ``ids[i]`` the clip id of item i) repeated by their sources' weights.

    Whole copies first, in order, so the result is stable for a given seed. Raises
    MotionError for a weight that is not a finite number >= 0, or one naming no source here.
    """
    present = Counter(source_of(i) for i in ids)
    unknown = sorted(set(weights) - set(present))
    if unknown:
        have = ", ".join(sorted(s or "(single data set)" for s in present))
        raise MotionError(f"source_weights names {unknown}; this data set's sources: {have}")
    for name, weight in weights.items():
        if not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise MotionError(f"source_weights.{name} must be a number >= 0, got {weight!r}")
    out: list[Item] = []
    for number, (item, clip_id) in enumerate(zip(items, ids, strict=True)):
        weight = float(weights.get(source_of(clip_id), 1.0))
        copies = int(weight) + (_fraction(seed, number) < weight - int(weight))
        out += [item] * copies
    return out


def source_shares(ids: Sequence[str]) -> dict[str, float]:
    """Fraction of items per source (for the log line that says what a mix came to)."""
    counts = Counter(source_of(i) for i in ids)
    total = sum(counts.values()) or 1
    return {name or "-": round(n / total, 4) for name, n in sorted(counts.items())}
