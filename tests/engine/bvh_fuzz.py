"""Mutation fuzzing of the BVH reader: one engine for the suite's short run and the long one.

Every mutant of a well-formed BVH must either read, giving finite joint positions (and finite
canonical joints when a joint map fits), or raise ``MotionError`` (``BVHError`` from the
reader); any other exception, a non-finite output or a slow read is a defect.

The long run, recorded in docs/reliability.md (seed files: a few real BVH files extracted to a
git-ignored folder such as data/fuzz-seeds/, cut to their first frames with --frames):

    python tests/engine/bvh_fuzz.py data/fuzz-seeds/*.bvh --count 100000 --frames 120

``--scaling`` times the reader on headers of growing size; ``--memory`` measures the peak
memory of files at the joint-frame limit.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import BVHError, MotionError
from engine.io.bvh import BVH, canonical_bvh, read_bvh, write_bvh
from engine.retarget.joint_map import read_canonical

HOSTILE_TOKENS = (
    "nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e999", "5e-324",
    "1e-300", "1e6", "1e10", "0", "-0", "0.0", "\u00b2", "\u2076", "\u0663", "9" * 5000,
    "1_0", "0x10", "{", "}", "{ }", "ROOT", "JOINT", "End", "End Site", "Site", "MOTION",
    "Frames:", "Frame Time:", "CHANNELS", "CHANNELS 6", "CHANNELS 0", "OFFSET", "OFFSET 0 0 0",
    "Xrotation", "Xposition", "xROTATION", "\x00", "\udcff", "\u00e9", "99999999999", "-1",
    "7", "3", "1e", ".", "--1", "+5", "HIERARCHY",
)  # fmt: skip
"""Tokens that broke readers: non-finite and extreme numbers, non-ASCII digits, keywords."""


@dataclass(frozen=True)
class Outcome:
    """What reading one file gave: kind is "ok", "bvh_error" (BVHError: the file is bad),
    "refused" (another MotionError: it reads, but no joint map or unit fits), "nonfinite"
    (read without error but with NaN/inf output) or "other" (any other exception)."""

    kind: str
    detail: str
    seconds: float


def check_file(path: str | os.PathLike) -> Outcome:
    """Read ``path`` the ways users do: ``read_bvh`` + world positions, then the canonical
    joints (map detection, unit detection, resampling to 20 fps)."""
    start = time.perf_counter()
    try:
        bvh = read_bvh(path)
        if not np.isfinite(bvh.world_positions()).all():
            return Outcome("nonfinite", "world_positions", time.perf_counter() - start)
        try:
            joints = read_canonical(path).joints
        except BVHError as error:  # the file read once already: it must read again
            raise AssertionError(f"read_canonical raised a BVHError: {error}") from error
        if not np.isfinite(joints).all():
            return Outcome("nonfinite", "read_canonical", time.perf_counter() - start)
        return Outcome("ok", "", time.perf_counter() - start)
    except BVHError as error:
        return Outcome("bvh_error", str(error), time.perf_counter() - start)
    except MotionError as error:
        return Outcome("refused", str(error), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - counting defects is the point
        return Outcome("other", f"{type(error).__name__}: {error}", time.perf_counter() - start)


# ----------------------------------------------------------------------------- mutations

Mutator = Callable[[random.Random, list[str]], list[str]]


def _replace_token(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    words = lines[i].split() or [""]
    words[rng.randrange(len(words))] = rng.choice(HOSTILE_TOKENS)
    lines[i] = " ".join(words)
    return lines


def _delete_line(rng: random.Random, lines: list[str]) -> list[str]:
    del lines[rng.randrange(len(lines))]
    return lines


def _duplicate_line(rng: random.Random, lines: list[str]) -> list[str]:
    i = rng.randrange(len(lines))
    lines[i:i] = [lines[i]] * rng.choice((1, 2, 50))
    return lines


def _swap_lines(rng: random.Random, lines: list[str]) -> list[str]:
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return lines


def _set_header_value(rng: random.Random, lines: list[str]) -> list[str]:
    """A hostile value after 'Frames:' or 'Frame Time:'."""
    key = rng.choice(("Frames:", "Frame Time:"))
    for i, line in enumerate(lines):
        if line.strip().startswith(key):
            lines[i] = f"{key} {rng.choice(HOSTILE_TOKENS)}"
            break
    return lines


def _set_number(rng: random.Random, lines: list[str]) -> list[str]:
    """One number of a frame line or OFFSET set to a hostile one (kept on its line)."""
    numeric = [i for i, line in enumerate(lines) if line.split()[:1] and
               line.split()[0].lstrip("-").replace(".", "", 1).isdigit()]  # fmt: skip
    offsets = [i for i, line in enumerate(lines) if line.strip().startswith("OFFSET")]
    pool = rng.choice([numeric, offsets]) or numeric or offsets
    if not pool:
        return lines
    i = rng.choice(pool)
    words = lines[i].split()
    words[rng.randrange(1 if words[0] == "OFFSET" else 0, len(words))] = rng.choice(
        ("nan", "inf", "-inf", "1e308", "-1e308", "1e999", "1e10", "5e-324", "1e300")
    )
    lines[i] = " ".join(words)
    return lines


def _zero_channel_joints(rng: random.Random, lines: list[str]) -> list[str]:
    """Many channel-less joints (free in the file, costly in memory) after the ROOT's '{'."""
    block = ["JOINT z", "{", "OFFSET 0 0 0", "CHANNELS 0", "}"]
    for i, line in enumerate(lines):
        if line.strip() == "{":
            lines[i + 1 : i + 1] = block * rng.choice((10, 1001, 3000))
            break
    return lines


def _one_line_header(rng: random.Random, lines: list[str]) -> list[str]:
    """The whole HIERARCHY on one line, or a long line of braces or a long name."""
    motion = next((i for i, line in enumerate(lines) if line.strip() == "MOTION"), len(lines))
    choice = rng.randrange(3)
    if choice == 0:
        return [" ".join(lines[:motion])] + lines[motion:]
    if choice == 1:
        return lines[:1] + ["} " * rng.choice((10, 20000))] + lines[1:]
    return [lines[0], "ROOT " + "x " * 20000] + lines[2:]


def _truncate(rng: random.Random, lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    return text[: rng.randrange(len(text) + 1)].split("\n")


def _flip_chars(rng: random.Random, lines: list[str]) -> list[str]:
    text = list("\n".join(lines))
    chars = (0, 9, 10, 13, 32, 45, 46, 101, 123, 125, 0xFF, 0x2076)
    for _ in range(rng.choice((1, 3, 10))):
        text[rng.randrange(len(text))] = chr(rng.choice((*chars, rng.randrange(256))))
    return "".join(text).split("\n")


def _line_ends(rng: random.Random, lines: list[str]) -> list[str]:
    """CRLF, old Mac CR or tabs for spaces."""
    end = rng.choice(("\r\n", "\r", "\t"))
    if end == "\t":
        return [line.replace(" ", "\t") for line in lines]
    return ["".join(line + end for line in lines)]


MUTATORS: tuple[Mutator, ...] = (
    _replace_token, _replace_token, _set_number, _set_number, _set_header_value,
    _delete_line, _duplicate_line, _swap_lines, _truncate, _flip_chars, _line_ends,
    _zero_channel_joints, _one_line_header,
)  # fmt: skip


def mutate(rng: random.Random, text: str) -> bytes:
    """One to three mutations of ``text``, as the bytes of a file (the surrogate U+DCFF
    becomes the byte 0xFF, so files carry invalid UTF-8 too)."""
    lines = text.split("\n")
    for _ in range(rng.choice((1, 1, 2, 3))):
        if not lines:
            break
        lines = rng.choice(MUTATORS)(rng, lines)
    return "\n".join(lines).encode("utf-8", errors="surrogateescape")


# ----------------------------------------------------------------------------- seed files


def walk_joints(frames: int = 12) -> np.ndarray:
    """(frames, 22, 3) canonical joints: the rest pose stepping forward with a swaying body."""
    from engine.motion.skeleton import CANONICAL_OFFSETS, PARENTS

    rest = np.zeros((len(PARENTS), 3))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            rest[j] = rest[p] + CANONICAL_OFFSETS[j]
    rest[:, 1] -= rest[:, 1].min()
    t = np.arange(frames)[:, None] / 30.0
    joints = np.repeat(rest[None], frames, axis=0)
    joints[..., 2] += 1.2 * t
    joints[..., 0] += 0.05 * np.sin(2 * np.pi * t)
    return joints


def seed_files(folder: Path) -> list[Path]:
    """Three small well-formed BVH files in real-world layouts: the canonical skeleton in
    metres (the joint map and unit detection run), a centimetre file with 6 channels on every
    joint (Bandai Namco's layout), and a CMU-like tree with ZYX rotations and End Sites."""
    folder.mkdir(parents=True, exist_ok=True)
    canonical = canonical_bvh(walk_joints(), fps=30)
    six = BVH(
        names=list(canonical.names), parents=list(canonical.parents),
        offsets=canonical.offsets * 100,
        channels=[["Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"]
                  for _ in canonical.names],
        frame_time=1 / 30,
        motion=np.random.default_rng(0).uniform(-30, 30, (8, 6 * len(canonical.names))),
    )  # fmt: skip
    cmu = BVH(
        names=["Hips", "LeftUpLeg", "LeftLeg", "RightUpLeg", "Spine", "Head"],
        parents=[-1, 0, 1, 0, 0, 4],
        offsets=np.array([[0, 0, 0], [3.4, -1, 0], [0, -7, 0], [-3.4, -1, 0], [0, 2, 0],
                          [0, 5, 0.2]], dtype=float),
        channels=[["Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"]]
        + [["Zrotation", "Yrotation", "Xrotation"]] * 5,
        frame_time=1 / 120,
        motion=np.random.default_rng(1).uniform(-40, 40, (10, 6 + 15)),
        end_sites={2: np.array([0, -1.0, 1.0]), 3: np.array([0, -7.0, 0]), 5: np.zeros(3) + 1},
    )  # fmt: skip
    paths = [folder / "canonical.bvh", folder / "six_channels_cm.bvh", folder / "cmu_like.bvh"]
    for path, bvh in zip(paths, (canonical, six, cmu), strict=True):
        write_bvh(path, bvh)
    return paths


def cut_frames(text: str, frames: int) -> str:
    """A BVH text keeping only its first ``frames`` frames (a long real file, made cheap)."""
    lines = text.replace("\r\n", "\n").split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip().lower().startswith("frames:"))
    body = [line for line in lines[at + 2 :] if line.strip()][:frames]
    return "\n".join(lines[:at] + [f"Frames: {len(body)}", lines[at + 1], *body]) + "\n"


# ----------------------------------------------------------------------------- campaign


@dataclass
class Tally:
    """Counts of a campaign and the first few examples of each defect kind."""

    kinds: Counter
    slowest: float
    over_2s: int
    examples: dict[str, list[str]]

    @property
    def tried(self) -> int:
        return sum(self.kinds.values())


def run_campaign(
    seeds: Sequence[Path], count: int, seed: int, work: Path, frames: int | None = None,
    progress: bool = False,
) -> Tally:  # fmt: skip
    """``count`` mutants, spread over the seed files, each written to ``work`` and checked."""
    rng = random.Random(seed)
    texts = [p.read_bytes().decode("utf-8", errors="surrogateescape") for p in seeds]
    if frames:
        texts = [cut_frames(t, frames) for t in texts]
    tally = Tally(Counter(), 0.0, 0, {})
    path = work / "mutant.bvh"
    for n in range(count):
        path.write_bytes(mutate(rng, texts[n % len(texts)]))
        outcome = check_file(path)
        tally.kinds[outcome.kind] += 1
        tally.slowest = max(tally.slowest, outcome.seconds)
        tally.over_2s += outcome.seconds > 2.0
        if progress and (n + 1) % 10_000 == 0:
            print(f"{n + 1} mutants: {dict(tally.kinds)}", flush=True)
        unlocated = outcome.kind == "bvh_error" and not outcome.detail.startswith(f"{path}:")
        slow = outcome.seconds > 1.0
        if outcome.kind in ("other", "nonfinite") or unlocated or slow:
            keep = work / f"defect-{n}.bvh"
            keep.write_bytes(path.read_bytes())
            kind = f"slow ({outcome.seconds:.2f} s, {outcome.kind})" if slow else outcome.kind
            tally.examples.setdefault(kind, []).append(f"{keep}: {outcome.detail[:200]}")
    return tally


def zero_channel_bvh(joints: int, frames: int, channelled: int = 1) -> str:
    """A root and ``joints - 1`` children, only the first ``channelled`` joints carrying a
    channel: 2,000 joints x 100,000 frames is 0.7 MB of file that asked world_positions for
    4.5 GiB."""
    chans = ["CHANNELS 1 Xrotation" if j < channelled else "CHANNELS 0" for j in range(joints)]
    tree = "".join(f"JOINT j{j}\n{{\nOFFSET 0 0 0\n{chans[j]}\n}}\n" for j in range(1, joints))
    frame = " ".join(["0"] * channelled) + "\n"
    return (f"HIERARCHY\nROOT r\n{{\nOFFSET 0 0 0\n{chans[0]}\n{tree}}}\n"
            f"MOTION\nFrames: {frames}\nFrame Time: 0.01\n" + frame * frames)  # fmt: skip


def wide_header(words_per_name: int, joints: int = 1000) -> str:
    """A well-formed BVH whose header grows with ``words_per_name`` (1000 joints in a chain,
    each with a many-word name), two frames: the reader's time in its header's size."""
    name = " ".join(["w"] * words_per_name)
    opened = "".join(f"JOINT {name} {j}\n{{\nOFFSET 0 1 0\nCHANNELS 0\n" for j in range(joints - 1))
    closed = "}\n" * joints
    return (f"HIERARCHY\nROOT root\n{{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\n{opened}{closed}"
            "MOTION\nFrames: 2\nFrame Time: 0.01\n0\n1\n")  # fmt: skip


def header_scaling(work: Path) -> None:
    """Print read_bvh's time for growing headers (linear: time ~ size): 1000 joints with
    longer and longer names (they read), then chains of more and more joints, up to the
    645 kB the issue timed (refused past MAX_JOINTS, after the whole header is tokenised)."""
    texts = [(f"1000 joints, {w}-word names", wide_header(w)) for w in (30, 60, 120, 240, 480)]
    texts += [(f"{n} joints", wide_header(1, joints=n)) for n in (1250, 2500, 5000, 10000, 20000)]
    for label, text in texts:
        path = work / "header.bvh"
        path.write_text(text)
        start = time.perf_counter()
        try:
            read_bvh(path)
            result = "read"
        except BVHError as error:
            result = error.reason
        seconds = time.perf_counter() - start
        print(f"{label}: {len(text) / 1000:.0f} kB header, {seconds:.3f} s ({result})")


BOMB = """
import resource, sys, time
from engine.io.bvh import read_bvh
start = time.perf_counter()
try:
    bvh = read_bvh(sys.argv[1])
    shape = bvh.world_positions().shape
except Exception as error:
    shape = f"{type(error).__name__}: {error}"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(f"{shape}; peak RSS {peak:.2f} GiB; {time.perf_counter() - start:.1f} s")
"""


def memory_at_limits(work: Path) -> None:
    """Peak memory (a fresh process each) of reading files at and past the joint-frame limit
    with joints that have no channels (free in the file, not in world_positions)."""
    from engine.io.bvh import JOINT_FRAMES_PER_VALUE, MAX_JOINT_FRAMES

    at_limit = MAX_JOINT_FRAMES // 1000, 1000 // JOINT_FRAMES_PER_VALUE
    for joints, frames, channelled in ((1000, *at_limit), (1000, 10_000, 1), (2000, 100_000, 1)):
        path = work / f"bomb-{joints}x{frames}.bvh"
        path.write_text(zero_channel_bvh(joints, frames, channelled))
        done = subprocess.run([sys.executable, "-c", BOMB, str(path)], capture_output=True,
                              text=True, check=False)  # fmt: skip
        size = path.stat().st_size / 1e6
        label = f"{joints} joints ({channelled} with a channel) x {frames} frames ({size:.2f} MB)"
        print(f"{label}: {done.stdout.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", nargs="*", type=Path, help="BVH files to mutate "
                        "(default: the three small files seed_files writes)")  # fmt: skip
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="cut seeds to this many frames")
    parser.add_argument("--keep", type=Path, default=None, help="folder for defect files")
    parser.add_argument("--scaling", action="store_true", help="time headers of growing size")
    parser.add_argument("--memory", action="store_true", help="peak memory at the limits")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bvh-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.scaling or args.memory:
        if args.scaling:
            header_scaling(work)
        if args.memory:
            memory_at_limits(work)
        return 0
    seeds = args.seeds or seed_files(work / "seeds")
    for seed in seeds:
        outcome = check_file(seed)
        if outcome.kind not in ("ok", "refused"):
            print(f"seed {seed} does not read: {outcome.detail}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    tally = run_campaign(seeds, args.count, args.seed, work, args.frames, progress=True)
    wall = time.perf_counter() - start
    print(f"seeds: {', '.join(p.name for p in seeds)} (frames: {args.frames or 'all'})")
    print(f"inputs tried: {tally.tried} in {wall:.0f} s; read fine: {tally.kinds['ok']}; "
          f"BVHError: {tally.kinds['bvh_error']}; read but refused (MotionError: no joint map "
          f"or unit fits): {tally.kinds['refused']}; other exceptions: "
          f"{tally.kinds['other']}; silently non-finite: {tally.kinds['nonfinite']}; "
          f"reads over 2 s: {tally.over_2s} (slowest {tally.slowest:.2f} s)")  # fmt: skip
    for kind, examples in tally.examples.items():  # bvh_error here: one without file:line
        print(f"{kind}: " + "\n  ".join(examples[:10]))
    defects = tally.kinds["other"] + tally.kinds["nonfinite"] + tally.over_2s
    return 1 if defects or any(not k.startswith("slow") for k in tally.examples) else 0


if __name__ == "__main__":
    sys.exit(main())
