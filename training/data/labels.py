"""Time-stamped text labels of clips, and the labels of each latent step of a crop.

The semantic autoencoder (SPEC 3.1) aligns every latent step with the text labels whose time
span overlaps that step's window of ``unit`` frames. Labels come from BABEL (``babel.py``,
frame-accurate) or from a built data set's ``labels.json`` (one set of labels per clip, so
every step of the clip gets them all). Both end up here as ``LabelSpan`` lists in clip time:
second 0 is the clip's first feature frame, frame ``f`` starts at ``f / fps`` seconds.
"""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import MotionError


@dataclass(frozen=True)
class LabelSpan:
    """One label over ``[start, end)`` seconds of a clip; ``end`` may be ``math.inf``."""

    start: float
    end: float
    text: str


FrameLabels = Mapping[str, Sequence[LabelSpan]]
"""Clip id -> its label spans in clip time (mirror ids carry mirrored words)."""


@dataclass(frozen=True)
class SpanTable:
    """A clip's spans as arrays, so the labels of 49 steps cost one vectorised comparison."""

    starts: np.ndarray  # (S,) seconds
    ends: np.ndarray  # (S,) seconds
    texts: tuple[str, ...]

    @classmethod
    def of(cls, spans: Sequence[LabelSpan]) -> "SpanTable":
        return cls(
            starts=np.array([s.start for s in spans], dtype=np.float64),
            ends=np.array([s.end for s in spans], dtype=np.float64),
            texts=tuple(s.text for s in spans),
        )

    def step_labels(self, first_frame: int, steps: int, unit: int, fps: float) -> list[set[str]]:
        """Labels of each of ``steps`` windows ``[first_frame + unit*k, ... + unit)`` frames.

        A label belongs to a step when its span and the window's span in seconds overlap with
        positive length (touching ends do not count), so a label over 1.0-2.0 s at 20 fps
        covers the windows of frames 20-39 and no others.
        """
        if not self.texts:
            return [set() for _ in range(steps)]
        edges = (first_frame + unit * np.arange(steps + 1)) / fps  # (steps + 1,)
        overlap = (self.starts[None] < edges[1:, None]) & (self.ends[None] > edges[:-1, None])
        return [{self.texts[j] for j in np.flatnonzero(row)} for row in overlap]  # (steps,)


def label_phrase(value: str) -> str:
    """``walk-turn-left`` -> ``walk turn left``: labels read as words by a text encoder."""
    return " ".join(value.replace("-", " ").replace("_", " ").split())


def clip_labels(root: str | Path) -> dict[str, list[LabelSpan]]:
    """Per-clip labels of a built data set (``labels.json``) as spans over the whole clip.

    ``labels.json`` maps each id (mirrors included, their words already mirrored by the
    builder) to ``{"labels": {"content": "walk", "style": "happy"}, ...}``; every label value
    becomes one span ``[0, inf)``.
    """
    path = Path(root) / "labels.json"
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MotionError(f"{path}: cannot read per-clip labels ({err})") from err
    if not isinstance(table, dict):
        raise MotionError(f"{path}: expected an object of id -> entry")
    spans: dict[str, list[LabelSpan]] = {}
    for clip_id, entry in table.items():
        values = entry.get("labels") if isinstance(entry, dict) else None
        values = values if isinstance(values, dict) else {}
        texts = [label_phrase(str(v)) for v in values.values() if str(v).strip()]
        spans[str(clip_id)] = [LabelSpan(0.0, math.inf, t) for t in dict.fromkeys(texts)]
    return spans
