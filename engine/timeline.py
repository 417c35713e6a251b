"""Timelines as plain values: segments (prompt, seconds), the ``prompt#seconds`` file format
and the limits, without torch, so the command line and the Blender add-on check a timeline
before anything heavy is imported (``engine.sequence`` makes the motion)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from .errors import MotionError

METHODS = ("inpaint", "blend")
DEFAULT_METHOD = "blend"  # MLA-Gen; MoLingo always "inpaint" (docs/timeline.md)
MIN_SEGMENT_SECONDS = 1.0
MAX_SEGMENT_SECONDS = 60.0
MAX_TOTAL_SECONDS = 600.0  # 10 minutes: 3,000 latent steps, far past any shot
MAX_SEGMENTS = 100
MAX_TIMELINE_BYTES = 1 << 20
SECONDS_SLACK = 1e-4  # a float32 length (a Blender property) may miss a limit by this


@dataclasses.dataclass(frozen=True)
class Segment:
    """One entry of a timeline: what the character does, and for how long."""

    prompt: str
    seconds: float


# ---- timeline files ------------------------------------------------------------------------


def parse_timeline(text: str, source: str = "timeline") -> list[Segment]:
    """Segments from ``prompt#seconds`` lines (the MoLingo demo's format).

    Blank lines are skipped; the seconds follow the last ``#`` of a line, so a prompt may
    itself hold one. Any other line is an error naming ``source`` and the line.
    """
    segments = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        prompt, sep, seconds = line.rpartition("#")
        where = f"{source}:{number}"
        if not sep:
            raise MotionError(f"{where}: expected 'prompt#seconds', e.g. 'a person waves#3'")
        try:
            value = float(seconds)
        except ValueError:
            raise MotionError(f"{where}: {seconds.strip()!r} is not a number of seconds") from None
        if not prompt.strip():
            raise MotionError(f"{where}: the prompt before '#' is empty")
        segments.append(Segment(prompt.strip(), value))
    if not segments:
        raise MotionError(f"{source}: no segments (one 'prompt#seconds' per line)")
    return segments


def read_timeline(path: str | Path) -> list[Segment]:
    """``parse_timeline`` of a UTF-8 file (with or without a byte-order mark)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TIMELINE_BYTES:
            raise MotionError(f"{path}: {size} bytes; a timeline file holds at most 1 MiB")
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        reason = f"{error.reason} at byte {error.start}"
        raise MotionError(f"{path}: not UTF-8 text ({reason})") from None
    except FileNotFoundError:
        raise MotionError(f"{path}: no such timeline file") from None
    except IsADirectoryError:
        raise MotionError(f"{path}: a folder, not a timeline file") from None
    return parse_timeline(text, str(path))


def check_segments(segments: Sequence[Segment | tuple[str, float]]) -> list[Segment]:
    """Segments as ``Segment``s, every prompt and length checked (MotionError naming it)."""
    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence):
        raise MotionError("segments must be a list of (prompt, seconds)")
    if not segments:
        raise MotionError("the timeline is empty: add at least one segment (prompt, seconds)")
    if len(segments) > MAX_SEGMENTS:
        raise MotionError(f"{len(segments)} segments; a timeline holds at most {MAX_SEGMENTS}")
    out = []
    for i, item in enumerate(segments, start=1):
        if isinstance(item, Segment):
            prompt, seconds = item.prompt, item.seconds
        elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
            prompt, seconds = item
        else:
            raise MotionError(f"segment {i}: expected (prompt, seconds), got {item!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise MotionError(f"prompt {i} is empty: describe the motion, e.g. 'a person walks'")
        low, high = MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS
        number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
        if not (number and math.isfinite(seconds)) or not (
            low - SECONDS_SLACK <= seconds <= high + SECONDS_SLACK
        ):
            raise MotionError(
                f"segment {i} ({prompt[:40]!r}): length {seconds!r} s is outside {low:g} to "
                f"{high:g} seconds"
            )
        out.append(Segment(prompt, float(seconds)))
    total = sum(s.seconds for s in out)
    if total > MAX_TOTAL_SECONDS + 1e-6:
        raise MotionError(f"the timeline lasts {total:g} s; the limit is {MAX_TOTAL_SECONDS:g} s")
    return out
