"""Foot skating split by the generator's own contacts: planted feet sliding, or low swings.

training/evaluation/physical.py's skating counts toe steps under 5 cm that move faster than
0.5 m/s. That mixes two things: a planted foot that slides (toe contact > 0.5 on both frames,
what an animator calls skating) and a free toe passing low over the floor (low clearance).
This script generates the issue's 32 clips (four prompts x 8 variations, 6 s, seed 1) raw on
the CPU and prints both parts for the raw output, the eased pins and the held pins (swing
clearance off), and the default (eased pins and a 5 cm swing clearance).

Usage: python docs/results/cleanup/planted_sliding.py [--generator mlagen|molingo]
"""

from __future__ import annotations

import argparse

import numpy as np

from engine.edit.cleanup import Cleanup, clean_joints
from engine.motion.features import FOOT_CONTACT
from engine.pipeline import generate
from training.evaluation.physical import CONTACT_HEIGHT, SKATE_SPEED, TOE_JOINTS

PROMPTS = [
    "a person walks forward",
    "a happy person dances",
    "a person waves with the right hand",
    "a tired person runs",
]
TOE_CONTACTS = [1, 3]  # columns of the toes in the features' four contacts


def split_skating(joints: np.ndarray, contacts: np.ndarray, fps: float) -> tuple[float, float]:
    """(planted, swing) sliding steps as shares of all low toe steps, pooled over clips."""
    planted_slides = swing_slides = low_steps = 0
    for clip, contact in zip(joints, contacts, strict=True):
        toes = clip[:, list(TOE_JOINTS)]
        low = toes[..., 1] < CONTACT_HEIGHT
        steps = low[1:] & low[:-1]
        moved = np.linalg.norm(np.diff(toes[..., [0, 2]], axis=0), axis=-1)
        slides = steps & (moved > SKATE_SPEED / fps)
        held = contact[:, TOE_CONTACTS] > 0.5
        held = held[1:] & held[:-1]
        planted_slides += int((slides & held).sum())
        swing_slides += int((slides & ~held).sum())
        low_steps += int(steps.sum())
    return planted_slides / low_steps, swing_slides / low_steps


def issue_clips(generator: str):
    """The issue's 32 clips, raw (``Motion``), on the CPU."""
    return generate(PROMPTS, seconds=6, variations=8, seed=1, generator=generator,
                    device="cpu", clean=False)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="mlagen")
    args = parser.parse_args()
    motion = issue_clips(args.generator)
    contacts = motion.features[..., FOOT_CONTACT]
    joints = motion.joints[:, : contacts.shape[1]]
    rows = {"raw": joints,
            "eased pins": clean_joints(joints, contacts, Cleanup(clearance=0.0)),
            "held pins": clean_joints(joints, contacts, Cleanup(pin_hold=True, clearance=0.0)),
            "eased + clearance (default)": clean_joints(joints, contacts)}  # fmt: skip
    for name, clips in rows.items():
        planted, swing = split_skating(clips, contacts, motion.fps)
        print(f"{args.generator} {name:27s} skating {planted + swing:.3f} = "
              f"planted {planted:.3f} + swing {swing:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
