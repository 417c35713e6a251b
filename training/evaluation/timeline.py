"""Measure timelines and in-betweening (issue 17, docs/timeline.md).

    python -m training.evaluation.timeline CHECKPOINT --data DATA --evaluator EVAL \
        [--split test] [--sequences 32] [--generator mlagen] [--method inpaint] \
        [--device cpu] [--seed 0] --out OUT.json

Sequences of 3 to 6 segments are built from the split's captions (each segment as long as
its caption's clip, 1 to 9.8 s). Reported, per run:

- per-segment R@1/R@3 and matching against each segment's own caption, in batches of 32
  segments, next to the same captions generated alone at the same lengths, and the real
  clips of those captions; also the segments' cores (``WINDOW`` frames off each end of a
  segment of 2 s or more: without the transitions);
- transitions: the peak joint acceleration and jerk in a window of ``WINDOW`` frames around
  each boundary divided by the same peaks in windows at the segments' middles, and the same
  ratio on real clips cut at their middle (the "boundary" of a clip that has none); the
  same with ``WIDE_WINDOW``; the share of joins ``generate_sequence`` had to smooth;
- foot skating (``physical.skating_counts``) in the boundary windows vs the rest;
- in-betweening: a middle range of each alone clip regenerated under another caption: the
  largest change of any kept frame (must be 0) and the peak acceleration at the two joins
  divided by the clip's own peak acceleration elsewhere;
- time and peak memory of one 60 s sequence (6 x 10 s; RSS on the CPU, CUDA's allocator
  peak on a GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine import sequence
from engine.errors import MotionError
from engine.motion.skeleton import FPS
from engine.pipeline import generate
from engine.sequence import generate_sequence, inbetween, peak_motion, window_peaks
from training.evaluation import metrics, physical
from training.evaluation.evaluator import load_evaluator

WINDOW = 10  # frames (0.5 s at 20 fps) each side of a boundary
# frames (1 s) each side: past the stretch generate_sequence smooths at full weight
# (engine.sequence.JOIN_SECONDS), so roughness only pushed aside from a join shows here
WIDE_WINDOW = 20
BATCH = 32  # segments per R-precision batch (the protocol's)
LONGEST = 196  # frames: a segment as long as one generator window at most
ENGINE_SETTINGS = (
    "OVERLAP_SECONDS",
    "HANDSHAKE_SHARE",
    "JOIN_SECONDS",
    "JOIN_ROUNDS",
    "JOIN_STEPS",
)


# ---- measures on joints --------------------------------------------------------------------


def transition_ratio(
    joints: np.ndarray, boundaries: list[int], middles: list[int], window: int = WINDOW
) -> tuple[float, float]:
    """(acceleration, jerk) ratios: mean peak in the windows around ``boundaries`` over the
    mean peak in the windows around ``middles`` (the segments' insides); the peaks are
    ``engine.sequence.window_peaks``, the ones ``generate_sequence`` holds its joins to."""

    def peaks(centres: list[int]) -> np.ndarray:
        return np.array([window_peaks(joints, c, window) for c in centres])

    at, inside = peaks(boundaries).mean(0), peaks(middles).mean(0)
    return float(at[0] / inside[0]), float(at[1] / inside[1])


def both_ratios(
    joints: np.ndarray, boundaries: list[int], middles: list[int]
) -> tuple[float, float, float, float]:
    """``transition_ratio`` over ``WINDOW`` then ``WIDE_WINDOW`` frames each side."""
    return (*transition_ratio(joints, boundaries, middles),
            *transition_ratio(joints, boundaries, middles, WIDE_WINDOW))  # fmt: skip


def boundary_mask(length: int, boundaries: list[int], window: int = WINDOW) -> np.ndarray:
    """(T-1,) True on the frame steps within ``window`` frames of a boundary."""
    steps = np.arange(length - 1)
    near = np.zeros(length - 1, dtype=bool)
    for b in boundaries:
        near |= np.abs(steps - b) < window
    return near


def skating_split(joints: np.ndarray, boundaries: list[int]) -> tuple[int, int, int, int]:
    """(sliding, contact) steps near the boundaries, then elsewhere (physical's definition)."""
    near = boundary_mask(len(joints), boundaries)
    toes = joints[:, list(physical.TOE_JOINTS)]
    low = toes[..., 1] < physical.CONTACT_HEIGHT
    contact = low[1:] & low[:-1]
    step = np.linalg.norm(toes[1:, :, [0, 2]] - toes[:-1, :, [0, 2]], axis=-1)
    sliding = contact & (step > physical.SKATE_SPEED / FPS)
    return (int(sliding[near].sum()), int(contact[near].sum()),
            int(sliding[~near].sum()), int(contact[~near].sum()))  # fmt: skip


# ---- the data ------------------------------------------------------------------------------


@dataclass
class Caption:
    clip: str
    text: str
    frames: int  # the clip's length, clamped to 1 .. 9.8 s and whole latent steps


def read_captions(data: Path, split: str, rng: np.random.Generator) -> list[Caption]:
    """One caption per clip of the split (picked at random), with the clip's length."""
    out = []
    for clip in (data / f"{split}.txt").read_text().split():
        lines = [x for x in (data / "texts" / f"{clip}.txt").read_text("utf-8").splitlines() if x]
        text = lines[rng.integers(len(lines))].split("#")[0].strip()
        frames = len(np.load(data / "new_joint_vecs" / f"{clip}.npy", mmap_mode="r"))
        frames = int(np.clip(frames // 4 * 4, 20, LONGEST))
        out.append(Caption(clip, text, frames))
    return out


def plan_sequences(captions: list[Caption], count: int, rng: np.random.Generator):
    """``count`` sequences of 3 to 6 distinct captions each."""
    order = rng.permutation(len(captions))
    plans, at = [], 0
    for _ in range(count):
        size = int(rng.integers(3, 7))
        plans.append([captions[i] for i in order[at : at + size]])
        at += size
        if at + 6 > len(order):
            order, at = rng.permutation(len(captions)), 0
    return plans


# ---- the run -------------------------------------------------------------------------------


def r_precision(embedder, captions: list[str], features: list[np.ndarray]) -> dict[str, float]:
    """R@1, R@3 and matching over whole batches of ``BATCH`` (caption, motion) pairs."""
    hits, total, match = np.zeros(3), 0, []
    for start in range(0, len(captions) - BATCH + 1, BATCH):
        texts = embedder.embed_text(captions[start : start + BATCH])
        clips = features[start : start + BATCH]
        lengths = [len(c) for c in clips]
        padded = np.zeros((len(clips), max(lengths), clips[0].shape[-1]), np.float32)
        for i, clip in enumerate(clips):
            padded[i, : len(clip)] = embedder.normalizer.normalize(clip)
        motion = embedder.embed_motion(padded, lengths)
        hits += metrics.r_precision_hits(metrics.distance_matrix(texts, motion))
        total += BATCH
        match.append(metrics.matching_score(texts, motion))
    if not total:
        raise MotionError(f"R-precision needs at least {BATCH} segments")
    return {"top1": hits[0] / total, "top3": hits[2] / total, "matching": float(np.mean(match)),
            "pairs": total}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    embedder = load_evaluator(args.evaluator, args.device)
    captions = read_captions(Path(args.data), args.split, rng)
    plans = plan_sequences(captions, args.sequences, rng)
    common = {"checkpoint": args.checkpoint, "device": args.device, "generator": args.generator,
              "clean": not args.raw}  # fmt: skip
    seg_captions, seg_features, alone_features, real_features = [], [], [], []
    core_features = []  # each segment less WINDOW frames at either end (no transition)
    ratios, real_ratios, skating, smoothed = [], [], np.zeros(4), []
    seconds = time.perf_counter()
    for k, plan in enumerate(plans):
        segments = [(c.text, c.frames / FPS) for c in plan]
        motion = generate_sequence(segments, seed=args.seed + k, method=args.method, **common)
        joints, features = motion.joints[0], motion.features[0]
        table = motion.diagnostics["segments"]
        starts = [s["start_frame"] for s in table]
        middles = [s["start_frame"] + s["frames"] // 2 for s in table]
        ratios.append(both_ratios(joints, starts[1:], middles))
        smoothed += [share > 0 for _, share in motion.diagnostics.get("join_smoothing", [])]
        skating += skating_split(joints, starts[1:])
        for caption, s in zip(plan, table, strict=True):
            seg_captions.append(caption.text)
            seg_features.append(features[s["start_frame"] : s["start_frame"] + s["frames"]])
            core = seg_features[-1][WINDOW:-WINDOW]
            core_features.append(core if len(core) >= 2 * WINDOW else seg_features[-1])
            real = np.load(Path(args.data) / "new_joint_vecs" / f"{caption.clip}.npy")
            real_features.append(real[:LONGEST].astype(np.float32))
            real_joints = np.load(Path(args.data) / "new_joints" / f"{caption.clip}.npy")
            if len(real_joints) >= 6 * WINDOW:
                third = len(real_joints) // 3
                real_ratios.append(
                    both_ratios(
                        real_joints,
                        [len(real_joints) // 2],
                        [third // 2, len(real_joints) - third // 2],
                    )
                )
        print(f"sequence {k + 1}/{len(plans)}: {len(plan)} segments, {motion.seconds:.1f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    sequence_time = time.perf_counter() - seconds
    report = {
        "settings": {**vars(args), "segments": len(seg_captions), "window_frames": WINDOW},
        "segments_in_sequence": r_precision(embedder, seg_captions, seg_features),
        "segment_cores_in_sequence": r_precision(embedder, seg_captions, core_features),
        "real": r_precision(embedder, seg_captions, real_features),
        "transition_ratio": _mean_ratio(ratios),
        "real_transition_ratio": _mean_ratio(real_ratios),
        "joins_smoothed": float(np.mean(smoothed)) if smoothed else 0.0,
        "skating": {
            "transitions": skating[0] / max(skating[1], 1),
            "inside": skating[2] / max(skating[3], 1),
        },  # fmt: skip
        "sequence_seconds_total": round(sequence_time, 1),
    }
    if args.sequences_only:
        return report
    alone_joints = []
    for i, (text, feats) in enumerate(zip(seg_captions, seg_features, strict=True)):
        clip = generate(text, frames=len(feats), seed=args.seed + i, **common)
        alone_features.append(clip.features[0])
        alone_joints.append(clip.joints[0])
    report["segments_alone"] = r_precision(embedder, seg_captions, alone_features)
    report["inbetween"] = _inbetween(alone_joints, seg_captions, common, args.seed)
    report["sixty_seconds"] = _sixty(common, args.seed)
    return report


def apply_engine_settings(settings: list[str]) -> None:
    """Set ``engine.sequence`` constants from ``NAME=VALUE`` (a number; ``JOIN_STEPS=none``
    turns the join smoothing off), to measure the choices behind them on val."""
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in ENGINE_SETTINGS:
            raise SystemExit(f"--engine-setting: {name!r} is not one of {ENGINE_SETTINGS}")
        if name == "JOIN_STEPS":
            if value != "none":
                raise SystemExit("--engine-setting: JOIN_STEPS takes only 'none'")
            sequence.JOIN_STEPS = ()
        else:
            setattr(sequence, name, type(getattr(sequence, name))(float(value)))


def _mean_ratio(ratios: list[tuple[float, ...]]) -> dict[str, float]:
    arr = np.array(ratios)
    return {"acceleration": float(arr[:, 0].mean()), "jerk": float(arr[:, 1].mean()),
            "acceleration_wide": float(arr[:, 2].mean()), "jerk_wide": float(arr[:, 3].mean()),
            "count": len(arr)}  # fmt: skip


def _inbetween(clips: list[np.ndarray], captions: list[str], common: dict, seed: int) -> dict:
    """A middle range of each clip of 3 s or more regenerated under the next clip's caption."""
    kept, joins = 0.0, []
    for i, clip in enumerate(clips):
        if len(clip) < 60:
            continue
        start, end = len(clip) // 3, 2 * len(clip) // 3
        out = inbetween(clip, start, end, captions[(i + 1) % len(captions)], seed=seed + i,
                        **common).joints[0]  # fmt: skip
        outside = np.r_[0:start, end : len(clip)]
        kept = max(kept, float(np.abs(out[outside] - clip[outside]).max()))
        elsewhere = np.r_[2 : start - 3, end + 3 : len(clip) - 2]
        base = peak_motion(clip, elsewhere)[0]
        join = max(peak_motion(out, np.arange(start - 1, start + 2))[0],
                   peak_motion(out, np.arange(end - 1, end + 2))[0])  # fmt: skip
        joins.append(join / base)
    return {"kept_frame_error_m": kept, "join_peak_accel_ratio": float(np.mean(joins)),
            "clips": len(joins)}  # fmt: skip


def _sixty(common: dict, seed: int) -> dict:
    """Time and peak memory of one 60 s sequence (6 x 10 s)."""
    prompts = [
        "a person walks forward",
        "a person waves with the right hand",
        "a person jumps",
        "a person turns around",
        "a person runs",
        "a person sits down",
    ]
    device = torch.device(common["device"]) if common["device"] != "auto" else None
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    generate("a person walks", seconds=1.0, steps=1, **common)  # load once, untimed
    clock, cpu = time.perf_counter(), time.process_time()
    motion = generate_sequence([(p, 10.0) for p in prompts], seed=seed, **common)
    elapsed, cpu = time.perf_counter() - clock, time.process_time() - cpu
    peak = (torch.cuda.max_memory_allocated() if cuda else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip
    return {"seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
            "frames": motion.num_frames,
            "peak_memory_mib": round(peak / 2**20, 1),
            "memory": "CUDA allocator peak" if cuda else "process max RSS"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.timeline")
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--evaluator", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--generator", default=None, choices=("mlagen", "molingo"))
    parser.add_argument("--method", default=None, choices=("inpaint", "blend"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="score the network's own joints")
    parser.add_argument(
        "--sixty-only",
        action="store_true",
        help="only time one 60 s sequence (a fresh process: its own peak memory)",
    )
    parser.add_argument(
        "--sequences-only",
        action="store_true",
        help="only the sequences' figures (no clips alone, in-betweening or 60 s timing)",
    )
    parser.add_argument(
        "--engine-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"set an engine.sequence constant first, one of {ENGINE_SETTINGS} "
        "(JOIN_STEPS=none: no join smoothing)",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    apply_engine_settings(args.engine_setting)
    common = {"checkpoint": args.checkpoint, "device": args.device, "generator": args.generator}
    report = {"sixty_seconds": _sixty(common, args.seed)} if args.sixty_only else run(args)
    text = json.dumps(report, indent=1, default=float)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
