"""Why generated toes skate: real val clips against generated ones for the same captions.

Reads the real clips of a split (whole clips, joints recovered from their features as the
evaluator does) and the raw generations that ``cached.py`` kept for that split's captions,
cleans the generated ones with each ``--cleanup`` variant given, and prints per row:
- skating (``physical.skating_counts``, pooled), split by where each sliding toe step lies
  against the contact runs (the data set's contacts for real clips, the generator's own for
  generated ones): inside a run (eased or held), 1-2 or 3-4 frames from one, or mid swing;
- each free interval's lowest toe height (swing clearance), the planted toe height (what
  grounding left under planted feet) and the toe's height under its ankle in swing (the
  foot's pitch);
- how often a toe is under CONTACT_HEIGHT at each horizontal speed.

    python docs/results/cleanup/swing/clearance_stats.py --data DATA --cache DIR \
        --split val [--variant clearance=0.05 ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.edit.cleanup import Cleanup, clean_motion
from engine.edit.foot_cleanup import PLANTED
from engine.motion.features import FOOT_CONTACT, recover_from_ric
from engine.motion.skeleton import FOOT_LEFT, FOOT_RIGHT, FPS
from training.evaluation.physical import CONTACT_HEIGHT, SKATE_SPEED
from training.evaluation.run import parse_cleanup

FEET = ((FOOT_LEFT[0], FOOT_LEFT[1], 1), (FOOT_RIGHT[0], FOOT_RIGHT[1], 3))  # ankle, toe, column
SPEEDS = (0.25, 0.5, 1.0, 2.0, 3.0, np.inf)
PLACES = ("in run", "1-2 frames out", "3-4 frames out", "mid swing")


def describe(clips: list[np.ndarray], contacts: list[np.ndarray]) -> dict[str, object]:
    """The numbers of the module docstring for clips (T, 22, 3) and contacts (T, 4) bool."""
    places, low_steps = np.zeros(len(PLACES)), 0
    swing_min, planted_toe, pitch = [], [], []
    speed_low = np.zeros((len(SPEEDS) - 1, 2))  # per speed bin: (steps, low steps)
    for joints, contact in zip(clips, contacts, strict=True):
        frames = np.arange(len(joints))
        for ankle, toe, column in FEET:
            down = contact[:, column]
            where = np.flatnonzero(down)
            away = np.abs(frames[:, None] - where[None]).min(1) if len(where) else frames + 99
            y = joints[:, toe, 1]
            step = np.linalg.norm(np.diff(joints[:, toe, ::2], axis=0), axis=-1) * FPS
            low = (y[1:] < CONTACT_HEIGHT) & (y[:-1] < CONTACT_HEIGHT)
            low_steps += int(low.sum())
            for s in np.flatnonzero(low & (step > SKATE_SPEED)):
                out = max(away[s], away[s + 1])
                places[0 if out == 0 else 1 if out <= 2 else 2 if out <= 4 else 3] += 1
            bins = np.digitize(step, SPEEDS) - 1
            for b in range(len(SPEEDS) - 1):
                speed_low[b] += [(bins == b).sum(), ((bins == b) & low).sum()]
            planted_toe += list(y[down])
            edges = np.flatnonzero(np.diff(np.concatenate([[0], (~down).astype(int), [0]])))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                if b - a >= 3 and a > 0 and b < len(joints):  # a whole swing inside the clip
                    swing_min.append(y[a:b].min())
                    pitch += list(y[a:b] - joints[a:b, ankle, 1])
    pct = (10, 25, 50, 90)
    return {
        "skating": places.sum() / low_steps,
        "where": dict(zip(PLACES, np.round(places / low_steps, 4).tolist(), strict=True)),
        "swing lowest toe cm (p10/25/50/90)": np.round(100 * np.percentile(swing_min, pct), 2),
        "planted toe cm (p10/25/50/90)": np.round(100 * np.percentile(planted_toe, pct), 2),
        "toe under ankle in swing cm (median)": round(-100 * float(np.median(pitch)), 2),
        "share of toe steps under 5 cm by speed (m/s)": {
            f"{lo}-{hi}": round(float(n_low / max(n, 1)), 3)
            for (lo, hi), (n, n_low) in zip(
                zip(SPEEDS[:-1], SPEEDS[1:], strict=True), speed_low, strict=True
            )
        },
        "swings": len(swing_min),
    }


def real_clips(data: Path, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ids = (data / f"{split}.txt").read_text().split()
    feats = [np.load(data / "new_joint_vecs" / f"{i}.npy").astype(np.float64) for i in ids]
    return [recover_from_ric(f) for f in feats], [f[:, FOOT_CONTACT] > PLANTED for f in feats]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--variant", action="append", default=[], help="comma-separated K=V")
    args = parser.parse_args()
    rows = {"real": real_clips(args.data, args.split)}
    saved = [np.load(path) for path in sorted(args.cache.glob("*.npz"))]
    variants = {"raw": None, "default": Cleanup()}
    variants.update({v: parse_cleanup(v.split(",")) for v in args.variant})
    for name, options in variants.items():
        clips, contacts = [], []
        for call in saved:
            joints, feats = call["joints"].astype(np.float64), call["features"].astype(np.float64)
            if options is not None:
                joints = clean_motion(joints, feats, options, FPS)[0].astype(np.float64)
            clips += list(joints)
            contacts += list(feats[..., FOOT_CONTACT] > PLANTED)
        rows[name] = clips, contacts
    for name, (clips, contacts) in rows.items():
        print(f"## {name} ({len(clips)} clips)")
        for key, value in describe(clips, contacts).items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
