"""BVH motion files: read, write, pose, and the canonical 22-joint BVH.

Conventions (the ones Blender's importer and the Bandai Namco data follow):

- Rotation channels compose left to right in the order listed, R = R_0 R_1 R_2 (intrinsic),
  in degrees; a joint may list any subset of X/Y/Z rotations in any order.
- Position channels *replace* the matching component of the joint's OFFSET (they are the
  joint's full translation from its parent, not an addition to it). Blender's importer keys
  ``location = channel - offset`` on top of the rest offset, which is the same thing. Bandai
  Namco files carry 6 channels on every joint: on the Hips they hold the root motion (the
  OFFSET there is only a rest value) and on every other joint they repeat the OFFSET, so
  both readings agree on them except at the Hips, where only "replace" is right.
- A joint's world position is parent position + parent global rotation applied to its
  translation; its own rotation moves its children.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, NoReturn, TextIO

import numpy as np

from ..errors import BVHError, MotionError
from ..motion.quaternion import axis_angle_to_quat, qinv, qmul, qrot, quat_to_euler
from ..motion.rig_pose import forward_kinematics, local_from_global, rotations_from_joints
from ..motion.skeleton import CANONICAL_OFFSETS, FPS, JOINT_NAMES, PARENTS
from .files import atomic_output

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CHANNEL_CASE = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
_AXES = np.eye(3)


@dataclass
class BVH:
    """One BVH clip, everything in file units and file order (root first, depth first).

    offsets: (J, 3); channels: per joint, names as in the file (canonical case);
    end_sites: {joint index: (3,) offset}; motion: (T, C) all channels, C = total count.
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def channel_columns(self) -> list[list[int]]:
        """Column of ``motion`` for each of each joint's channels."""
        cols, start = [], 0
        for chans in self.channels:
            cols.append(list(range(start, start + len(chans))))
            start += len(chans)
        return cols

    def local_rotations(self) -> np.ndarray:
        """(T, J, 4) local rotations from each joint's rotation channels, in their order."""
        rot = np.zeros((self.num_frames, len(self.names), 4))
        rot[..., 0] = 1.0
        by_order: dict[str, list[tuple[int, list[int]]]] = {}
        for j, (chans, cols) in enumerate(zip(self.channels, self.channel_columns(), strict=True)):
            picked = [
                (c[0], col) for c, col in zip(chans, cols, strict=True) if c in ROTATION_CHANNELS
            ]
            if picked:
                order = "".join(axis for axis, _ in picked)
                by_order.setdefault(order, []).append((j, [col for _, col in picked]))
        for order, joints in by_order.items():  # one batched product per rotation order
            idx = [j for j, _ in joints]
            angles = np.radians(self.motion[:, [cols for _, cols in joints]])  # (T, n, k)
            rot[:, idx] = _compose(angles, order)
        return rot

    def local_translations(self) -> np.ndarray:
        """(T, J, 3) translation of each joint from its parent: OFFSET, replaced by positions."""
        trans = np.repeat(np.asarray(self.offsets, dtype=np.float64)[None], self.num_frames, axis=0)
        for j, (chans, cols) in enumerate(zip(self.channels, self.channel_columns(), strict=True)):
            for c, col in zip(chans, cols, strict=True):
                if c in POSITION_CHANNELS:
                    trans[:, j, POSITION_CHANNELS.index(c)] = self.motion[:, col]
        return trans

    def world_positions(self) -> np.ndarray:
        """(T, J, 3) joint positions in file units by forward kinematics."""
        trans = self.local_translations()
        return forward_kinematics(self.local_rotations(), trans[:, 0], self.parents, trans)


def _compose(angles: np.ndarray, order: str) -> np.ndarray:
    """Radians (..., k) about axes ``order`` (k letters) -> quaternions R_0 R_1 ... (..., 4)."""
    q = None
    for i, axis in enumerate(order):
        qi = axis_angle_to_quat(_AXES["XYZ".index(axis)], angles[..., i])
        q = qi if q is None else qmul(q, qi)
    return q


# ----------------------------------------------------------------------------- reading

MAX_FILE_BYTES = 256 << 20
"""Largest BVH read (256 MiB; 10 million joint-frames of 3 channels take about that). Reading
peaks at about 5 times the file's size (1.0 GiB measured for a 210 MB file)."""
MAX_JOINTS = 1000
"""Joints (ROOT and JOINT entries) in one hierarchy; mocap skeletons with fingers and face
have a few hundred at most."""
MAX_JOINT_FRAMES = 10_000_000
"""Frames x joints: ``world_positions`` holds about 15 floats per joint per frame, so this
bounds its memory (1.1 GiB measured at the limit; a 3-hour clip of 60 joints at 120 fps is
7.8 million)."""
JOINT_FRAMES_PER_VALUE = 4
FREE_JOINT_FRAMES = 250_000
"""Frames x joints may also be at most 4 per value in the MOTION block (or 250,000): joints
without channels cost nothing in the file but as much as any in ``world_positions``, so this
keeps the work linear in the file's size (real files carry 3 or more values per joint)."""
MAX_DURATION_S = 3 * 3600.0
"""Longest clip, (Frames - 1) x Frame Time, in seconds: bounds what resampling allocates."""
FRAME_TIME_RANGE = (1e-4, 10.0)
"""Frame Time, seconds: 10 kHz to one frame per 10 s (mocap runs at 24 to 960 fps)."""
MAX_ABS_VALUE = 1e9
"""Largest magnitude of any OFFSET, End Site or channel value (file units or degrees): sums
and products of such values down 1000 joints and any unit stay finite."""
_MAX_DIGITS = len(str(MAX_JOINT_FRAMES))

_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True
_MOTION_RE = re.compile(rb"^[ \t]*MOTION[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)
_FRAMES_RE = re.compile(r"^\s*frames\s*:\s*(\S+)\s*$", re.IGNORECASE)
_FRAME_TIME_RE = re.compile(r"^\s*frame\s+time\s*:\s*(\S+)\s*$", re.IGNORECASE)
_COUNT_RE = re.compile(r"[0-9]+", re.ASCII)


def read_bvh(path: str | os.PathLike) -> BVH:
    """Read any BVH: one ROOT, any channels and rotation orders, End Sites, CRLF or tabs.

    The MOTION block is parsed in bulk with numpy; lines are only scanned one by one to name
    the culprit once the bulk parse has failed. Every malformed or out-of-limit file (see the
    MAX_* and FRAME_TIME_RANGE limits above) raises BVHError naming the file and line, in time
    linear in the file's size; a clip that reads has finite values only.
    """
    path = str(path)
    data = _read_file(path)
    if b"\n" not in data and b"\r" in data:  # old Mac line ends
        data = data.replace(b"\r", b"\n")
    found = _MOTION_RE.search(data)
    if found is None:
        last = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        raise BVHError(path, last, "no MOTION section (the file ends before it)")
    header = data[: found.start()].decode("utf-8", errors="replace")
    motion_line = header.count("\n") + 1
    names, parents, offsets, channels, end_sites = _parse_hierarchy(path, header, motion_line)
    head = _parse_motion_header(path, data, found.end(), motion_line)
    num_frames, frame_time = head.frames, head.frame_time
    values = num_frames * sum(len(c) for c in channels)
    budget = min(MAX_JOINT_FRAMES, max(FREE_JOINT_FRAMES, JOINT_FRAMES_PER_VALUE * values))
    if num_frames * len(names) > budget:
        raise BVHError(
            path, head.frames_line, f"{num_frames} frames of {len(names)} joints is over the "
            f"limit of {budget:,} joint-frames for {values:,} values (engine.io.bvh."
            "MAX_JOINT_FRAMES, JOINT_FRAMES_PER_VALUE)",
        )  # fmt: skip
    if (num_frames - 1) * frame_time > MAX_DURATION_S:
        raise BVHError(
            path, head.time_line, f"{num_frames} frames of {frame_time:g} s last "
            f"{(num_frames - 1) * frame_time:.4g} s, over the limit of {MAX_DURATION_S:g} s",
        )  # fmt: skip
    motion = _parse_frames(path, data[head.body_start :], head.body_line, num_frames, channels)
    return BVH(names, parents, offsets, channels, frame_time, motion, end_sites)


class _MotionHeader(NamedTuple):
    """'Frames:' and 'Frame Time:' with their line numbers, and where the frame lines start."""

    frames: int
    frame_time: float
    frames_line: int
    time_line: int
    body_start: int  # byte offset of the first frame line
    body_line: int  # its line number


def _read_file(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (a FIFO or a device would block)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise BVHError(path, None, f"cannot read the file: it is {what}")
        if info.st_size > MAX_FILE_BYTES:
            raise BVHError(path, None, f"the file is {info.st_size:,} bytes, over the limit "
                           f"of {MAX_FILE_BYTES:,} (engine.io.bvh.MAX_FILE_BYTES)")  # fmt: skip
        return Path(path).read_bytes()
    except OSError as exc:
        raise BVHError(path, None, f"cannot read the file ({exc.strerror or exc})") from exc


def _line_tokens(header: str) -> tuple[list[tuple[str, int]], list[int]]:
    """Tokens with their line numbers, and for each token the index just past its line's
    last token (so a keyword reads the rest of its line without scanning for it)."""
    toks: list[tuple[str, int]] = []
    line_end: list[int] = []
    for n, line in enumerate(header.split("\n"), 1):
        words = line.split()
        end = len(toks) + len(words)
        toks.extend((word, n) for word in words)
        line_end.extend([end] * len(words))
    return toks, line_end


def _parse_hierarchy(path: str, header: str, motion_line: int):
    """Joints, parents, offsets, channels and End Sites; each token is looked at a bounded
    number of times, so the time is linear in the header's size."""
    toks, line_end = _line_tokens(header)
    if not toks or toks[0][0].upper() != "HIERARCHY":
        raise BVHError(path, toks[0][1] if toks else 1, "the file must start with HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray | None] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    joint_lines: list[int] = []
    stack: list[int] = []  # open joints; -1 - j marks the open End Site of joint j
    i = 1
    while i < len(toks):
        word, line = toks[i]
        key = word.upper()
        if key in ("ROOT", "JOINT"):
            misplaced = (key == "ROOT") == bool(stack or names) or bool(stack and stack[-1] < 0)
            k = i + 1  # the name: the rest of the line up to a '{'
            while k < line_end[i] and toks[k][0] != "{":
                k += 1
            if misplaced or k == i + 1:
                why = "misplaced" if misplaced else "without a name"
                raise BVHError(path, line, f"{word} {why} (one ROOT holding every JOINT)")
            if len(names) == MAX_JOINTS:
                raise BVHError(
                    path, line, f"more than {MAX_JOINTS} joints (engine.io.bvh.MAX_JOINTS)"
                )
            names.append(" ".join(t for t, _ in toks[i + 1 : k]))
            parents.append(stack[-1] if stack else -1)
            offsets.append(None)
            channels.append([])
            joint_lines.append(line)
            i = _expect_open(path, toks, k, line)
            stack.append(len(names) - 1)
            continue
        if key == "END":
            if i + 1 >= line_end[i] or toks[i + 1][0].upper() != "SITE":
                raise BVHError(path, line, "expected 'End Site'")
            if not stack or stack[-1] < 0:
                raise BVHError(path, line, "End Site outside a joint")
            if stack[-1] in end_sites:
                raise BVHError(path, line, "several End Sites under one joint are not supported")
            i = _expect_open(path, toks, i + 2, line)
            end_sites[stack[-1]] = np.zeros(3)
            stack.append(-1 - stack[-1])
            continue
        if key in ("OFFSET", "CHANNELS"):
            rest = [t for t, _ in toks[i + 1 : line_end[i]]]
            if not stack or (key == "CHANNELS" and stack[-1] < 0):
                raise BVHError(path, line, f"{key} outside a joint")
            if key == "CHANNELS":
                channels[stack[-1]] = _channels(path, line, rest)
            elif stack[-1] < 0:
                end_sites[-1 - stack[-1]] = _offset(path, line, rest)
            else:
                offsets[stack[-1]] = _offset(path, line, rest)
            i = line_end[i]
            continue
        if word == "}":
            if not stack:
                raise BVHError(path, line, "unbalanced braces: '}' without a matching '{'")
            stack.pop()
            i += 1
            continue
        raise BVHError(path, line, f"unexpected '{_shown(word)}' in HIERARCHY")
    if stack:
        raise BVHError(
            path, motion_line, f"unbalanced braces: {len(stack)} '{{' not closed before MOTION"
        )
    if not names:
        raise BVHError(path, motion_line, "HIERARCHY has no ROOT joint")
    for j, off in enumerate(offsets):
        if off is None:
            raise BVHError(path, joint_lines[j], f"joint '{_shown(names[j])}' has no OFFSET")
    if sum(len(c) for c in channels) == 0:
        raise BVHError(path, motion_line, "no CHANNELS declared: there is no motion to read")
    return names, parents, np.stack(offsets).astype(np.float64), channels, end_sites


def _shown(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message (a token may be a megabyte long)."""
    return text if len(text) <= limit else text[:limit] + "..."


def _expect_open(path: str, toks: list[tuple[str, int]], i: int, line: int) -> int:
    if i >= len(toks) or toks[i][0] != "{":
        where = toks[i][1] if i < len(toks) else line
        raise BVHError(path, where, "expected '{'")
    return i + 1


def _offset(path: str, line: int, rest: list[str]) -> np.ndarray:
    """Three finite numbers within MAX_ABS_VALUE, or BVHError naming the line."""
    shown = _shown(" ".join(rest))
    if len(rest) != 3:
        raise BVHError(path, line, f"OFFSET needs 3 numbers: {shown}")
    try:
        values = np.array([float(t) for t in rest])
    except ValueError:
        raise BVHError(path, line, f"OFFSET needs 3 numbers: {shown}") from None
    if not (np.abs(values) <= MAX_ABS_VALUE).all():  # also False for NaN
        raise BVHError(path, line, f"OFFSET values must be finite, at most {MAX_ABS_VALUE:g} "
                       f"in size: {shown}")  # fmt: skip
    return values


def _channels(path: str, line: int, rest: list[str]) -> list[str]:
    if not rest or not _COUNT_RE.fullmatch(rest[0]) or len(rest[0]) > 3:
        raise BVHError(path, line, "CHANNELS must be followed by a channel count (0 to 6)")
    count, names = int(rest[0]), rest[1:]
    if count != len(names):
        raise BVHError(path, line, f"CHANNELS declares {count} channels but lists {len(names)}")
    unknown = [n for n in names if n.lower() not in _CHANNEL_CASE]
    if unknown:
        raise BVHError(path, line, f"unknown channel name '{_shown(unknown[0])}'")
    out = [_CHANNEL_CASE[n.lower()] for n in names]
    if len(set(out)) != len(out):
        raise BVHError(path, line, "a channel is listed twice")
    return out


def _parse_motion_header(
    path: str, data: bytes, motion_end: int, motion_line: int
) -> _MotionHeader:
    """Read 'Frames:' and 'Frame Time:'; return them and where the frame lines start."""
    nl = data.find(b"\n", motion_end)
    pos = len(data) if nl < 0 else nl + 1  # start of the line after MOTION
    line_no = motion_line
    found: list[tuple[str, int]] = []
    while len(found) < 2:
        if pos >= len(data):
            what = "'Frames:'" if not found else "'Frame Time:'"
            raise BVHError(path, line_no, f"missing {what} after MOTION")
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl
        text, pos, line_no = data[pos:end], end + 1, line_no + 1
        if text.strip():
            found.append((text[:200].decode("utf-8", errors="replace"), line_no))
    (frames_text, frames_line), (time_text, time_line) = found
    frames = _FRAMES_RE.match(frames_text)
    if frames is None or not _COUNT_RE.fullmatch(frames.group(1)):
        raise BVHError(path, frames_line, f"expected 'Frames: <count>': '{frames_text.strip()}'")
    digits = frames.group(1).lstrip("0")
    if len(digits) > _MAX_DIGITS or int(digits or "0") > MAX_JOINT_FRAMES:
        raise BVHError(path, frames_line, f"'Frames: {_shown(frames.group(1), 20)}' is over the "
                       f"limit of {MAX_JOINT_FRAMES:,} frames")  # fmt: skip
    num_frames = int(digits or "0")
    if num_frames == 0:
        raise BVHError(path, frames_line, "the clip has zero frames")
    ftime = _FRAME_TIME_RE.match(time_text)
    if ftime is None:
        raise BVHError(path, time_line, f"missing 'Frame Time:' (found '{time_text.strip()}')")
    try:
        frame_time = float(ftime.group(1))
    except ValueError:
        frame_time = float("nan")
    low, high = FRAME_TIME_RANGE
    if not low <= frame_time <= high:  # also False for NaN
        raise BVHError(path, time_line, f"Frame Time must be {low:g} to {high:g} seconds: "
                       f"'{_shown(ftime.group(1), 30)}'")  # fmt: skip
    return _MotionHeader(num_frames, frame_time, frames_line, time_line, pos, line_no + 1)


def _parse_frames(
    path: str, body: bytes, first_line: int, num_frames: int, channels: list[list[str]]
) -> np.ndarray:
    """Frame lines -> (T, C): counts checked per line by a byte scan, values parsed in bulk."""
    width = sum(len(c) for c in channels)
    raw = np.frombuffer(body, dtype=np.uint8)
    space = _WHITESPACE[raw]
    starts = np.flatnonzero(~space & np.concatenate([[True], space[:-1]]))  # token starts
    line_of_tok = np.searchsorted(np.flatnonzero(raw == 10), starts)
    per_line = np.bincount(line_of_tok, minlength=1)
    lines = np.flatnonzero(per_line)  # non-blank lines, as offsets from first_line
    bad = np.flatnonzero(per_line[lines[:num_frames]] != width)
    if bad.size:
        j = lines[bad[0]]
        why = f"frame {bad[0] + 1} has {per_line[j]} values, the CHANNELS declare {width}"
        raise BVHError(path, first_line + int(j), why)
    if lines.size < num_frames:
        end = first_line + (int(lines[-1]) + 1 if lines.size else 0)
        raise BVHError(
            path,
            end,
            f"truncated: 'Frames: {num_frames}' declared but {lines.size} frame lines found",
        )
    if lines.size > num_frames:
        extra = first_line + int(lines[num_frames])
        raise BVHError(path, extra, f"more frame lines than 'Frames: {num_frames}' declares")
    values = _bulk_floats(body)
    if values is None or values.size != num_frames * width or not _in_range(values):
        _locate_bad_value(path, body, first_line)
    return values.reshape(num_frames, width)


def _bulk_floats(body: bytes) -> np.ndarray | None:
    """All whitespace-separated numbers, or None if any token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.fromstring(body, dtype=np.float64, sep=" ")
        except (DeprecationWarning, ValueError):
            return None


def _in_range(values: np.ndarray) -> bool:
    """Every value finite and at most MAX_ABS_VALUE in size."""
    return bool((np.abs(values) <= MAX_ABS_VALUE).all())  # False for NaN too


def _locate_bad_value(path: str, body: bytes, first_line: int) -> NoReturn:
    """Slow path after a failed bulk parse: raise naming the first bad value and its line."""
    for n, line in enumerate(body.split(b"\n")):
        tokens = line.split()
        values = _bulk_floats(line)
        if values is not None and values.size == len(tokens) and _in_range(values):
            continue
        for col, tok in enumerate(tokens, 1):
            value = _bulk_floats(tok)
            if value is None or value.size != 1 or not _in_range(value):
                text = _shown(tok.decode("utf-8", errors="replace"))
                raise BVHError(
                    path, first_line + n, f"value {col} is not a finite number of at most "
                    f"{MAX_ABS_VALUE:g} in size: '{text}'",
                )  # fmt: skip
        raise BVHError(path, first_line + n, "the values on this line cannot be read as numbers")
    raise BVHError(path, None, "the MOTION values cannot be read as numbers")


# ----------------------------------------------------------------------------- writing


def write_bvh(path: str | os.PathLike, bvh: BVH, precision: int = 6) -> None:
    """Write any BVH object; atomic (``files.atomic_output``: a failure names ``path``).

    Joints are written depth first; when ``bvh`` lists them in another order its motion
    columns are permuted to match, so reading the file back gives the same clip.
    """
    write_bvh_files([(path, bvh)], precision)


def write_bvh_files(items: Sequence[tuple[str | os.PathLike, BVH]], precision: int = 6) -> None:
    """Write several BVH files as one: every file goes to a temporary name first, and only
    when all are written are they renamed into place, so an error or an interruption while
    writing leaves every earlier file as it was (never some new clips beside old ones)."""
    with contextlib.ExitStack() as outputs:  # leaving it moves every file, or removes all
        for path, bvh in items:
            tmp = outputs.enter_context(atomic_output(path))
            with open(tmp, "w", newline="\n") as fh:
                _write_text(fh, bvh, precision)


def _write_text(fh: TextIO, bvh: BVH, precision: int) -> None:
    """The BVH text of ``bvh`` into an open file; MotionError for motion that cannot be written."""
    order = _depth_first(bvh)
    cols = bvh.channel_columns()
    motion = np.asarray(bvh.motion, dtype=np.float64)
    if motion.ndim != 2 or motion.shape[1] != sum(len(c) for c in bvh.channels) or not len(motion):
        raise MotionError(
            f"BVH motion {motion.shape} does not match its {len(bvh.channels)} joints' channels"
        )
    if not np.isfinite(motion).all():
        raise MotionError("BVH motion holds NaN or infinite values")
    ends = [np.asarray(v, dtype=np.float64) for v in bvh.end_sites.values()]
    if not all(_in_range(a) for a in (motion, np.asarray(bvh.offsets, dtype=np.float64), *ends)):
        raise MotionError(f"BVH values must be at most {MAX_ABS_VALUE:g} in size (file units)")
    low, high = FRAME_TIME_RANGE
    if not low <= bvh.frame_time <= high:
        raise MotionError(
            f"a BVH's frame time must be {low:g} to {high:g} s (fps {1 / high:g} to {1 / low:g}), "
            f"got {bvh.frame_time!r}"
        )
    lines = ["HIERARCHY"]
    _write_joint(lines, bvh, order[0], 0, precision)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {bvh.frame_time:.10g}"]
    body = motion[:, [c for j in order for c in cols[j]]]
    fh.write("\n".join(lines) + "\n")
    np.savetxt(fh, body, fmt=f"%.{precision}f", delimiter=" ")


def _depth_first(bvh: BVH) -> list[int]:
    roots = [j for j, p in enumerate(bvh.parents) if p < 0]
    if len(roots) != 1:
        raise MotionError(f"a BVH needs exactly one root joint, this one has {len(roots)}")
    kids: dict[int, list[int]] = {j: [] for j in range(len(bvh.parents))}
    for j, p in enumerate(bvh.parents):
        if p >= 0:
            kids[p].append(j)
    order, todo = [], [roots[0]]
    while todo:
        j = todo.pop()
        order.append(j)
        todo.extend(reversed(kids[j]))
    if len(order) != len(bvh.parents):
        raise MotionError("BVH parents do not form one tree")
    return order


def _write_joint(lines: list[str], bvh: BVH, j: int, depth: int, precision: int) -> None:
    pad = "  " * depth
    fmt = f"{{:.{precision}f}}"
    keyword = "ROOT" if bvh.parents[j] < 0 else "JOINT"
    lines += [f"{pad}{keyword} {bvh.names[j]}", f"{pad}{{"]
    lines.append(f"{pad}  OFFSET " + " ".join(fmt.format(v) for v in bvh.offsets[j]))
    lines.append(f"{pad}  CHANNELS {len(bvh.channels[j])} " + " ".join(bvh.channels[j]))
    for child in (c for c, p in enumerate(bvh.parents) if p == j):
        _write_joint(lines, bvh, child, depth + 1, precision)
    if j in bvh.end_sites:
        end = " ".join(fmt.format(v) for v in bvh.end_sites[j])
        lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {end}", f"{pad}  }}"]
    lines.append(f"{pad}}}")


# ----------------------------------------------------------------------------- canonical

CANONICAL_END_SITES = {15: (0.0, 0.10, 0.0), 20: (0.0, -0.08, 0.0), 21: (0.0, -0.08, 0.0),
                       10: (0.0, 0.0, 0.05), 11: (0.0, 0.0, 0.05)}  # fmt: skip
"""Metres: head top, hand and toe tips. Only the tails of Blender's leaf bones use them."""

_ROOT_CHANNELS = ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]
_JOINT_CHANNELS = ["Zrotation", "Xrotation", "Yrotation"]


def fitted_offsets(joints: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Canonical offsets (22, 3) with the branch bones turned to the clip's mean directions.

    A rigid skeleton can put every child of a branching joint on its joint only if the
    children sit where the rest pose has them; a clip from another skeleton (a model trained
    on Bandai Namco data holds its hips at ~137 degrees from the spine, SMPL's rest at 90)
    would otherwise be posed by a compromise that moves whole limbs by centimetres. Lengths
    stay canonical; a rigid canonical clip keeps exactly the canonical offsets.
    """
    offsets = CANONICAL_OFFSETS.copy()
    branches = [j for j, p in enumerate(PARENTS) if p >= 0 and PARENTS.count(p) > 1]
    for _ in range(iterations):
        world = rotations_from_joints(joints, PARENTS, offsets)  # (T, 22, 4) rest -> world
        for j in branches:
            p = PARENTS[j]
            rest = qrot(qinv(world[:, p]), joints[:, j] - joints[:, p]).mean(axis=0)  # (3,)
            length = np.linalg.norm(rest)
            if length > 1e-9:
                offsets[j] = rest / length * np.linalg.norm(CANONICAL_OFFSETS[j])
    return offsets


def canonical_bvh(joints: np.ndarray, fps: float = FPS, scale: float = 1.0) -> BVH:
    """The canonical 22-joint skeleton posed onto joints (T, 22, 3), metres, Y up.

    Units are metres so that Blender's importer at its default scale 1 builds a correctly
    sized character; ``scale=100`` writes centimetres for tools that expect them. Offsets are
    the canonical ones (arms hanging, facing +Z) except that the bones leaving a branching
    joint (hips and spine1 from the pelvis, neck and collars from spine3) point where the clip
    holds them on average (``fitted_offsets``); the root's rest OFFSET puts the rest feet on
    the floor. Joints whose bone lengths differ from the canonical ones are posed by bone
    direction: the pelvis path and single-child bone directions are kept exactly, branching
    joints (pelvis, spine3) by best fit. The BVH lists joints in JOINT_NAMES order; the
    written file is depth first, so read it back by name (the "smpl" joint map does).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(JOINT_NAMES), 3) or not len(joints):
        raise MotionError(f"canonical_bvh needs joints of shape (T, 22, 3), got {joints.shape}")
    offsets = fitted_offsets(joints)
    local = local_from_global(rotations_from_joints(joints, PARENTS, offsets), PARENTS)
    euler = quat_to_euler(local, "ZXY")  # (T, 22, 3) degrees, in the channel order
    motion = np.concatenate([joints[:, 0] * scale, euler.reshape(len(joints), -1)], axis=1)
    offsets = offsets * scale
    rest = forward_kinematics(
        np.tile([1.0, 0, 0, 0], (1, len(PARENTS), 1)), np.zeros((1, 3)), PARENTS, offsets
    )
    offsets = offsets.copy()
    offsets[0] = (0.0, -rest[0, :, 1].min(), 0.0)
    return BVH(
        names=list(JOINT_NAMES),
        parents=list(PARENTS),
        offsets=offsets,
        channels=[list(_ROOT_CHANNELS)] + [list(_JOINT_CHANNELS) for _ in PARENTS[1:]],
        frame_time=1.0 / fps,
        motion=motion,
        end_sites={j: np.array(v) * scale for j, v in CANONICAL_END_SITES.items()},
    )
