"""Jitter of the issue's 32 clips (four prompts x 8 variations, 6 s, seed 1) per smoothing.

The test-split rows of docs/results.md need the evaluator's sampling of 512 clips per
replication, which MoLingo cannot do on this machine's CPU in a session; these 32 clips show
how much the default smoothing takes off each generator's acceleration and jerk (raw output,
the clean-up without smoothing, the default). Usage:
    python docs/results/cleanup/jitter_32.py [--generator mlagen|molingo]
"""

from __future__ import annotations

import argparse

import numpy as np
from planted_sliding import issue_clips  # this folder's script: the same 32 clips

from engine.edit.cleanup import Cleanup, clean_joints
from engine.motion.features import FOOT_CONTACT
from training.evaluation.physical import jitter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="mlagen")
    args = parser.parse_args()
    raw = issue_clips(args.generator)
    contacts = raw.features[..., FOOT_CONTACT]
    rows = {"raw": raw.joints.astype(np.float64)}
    for sigma in (0.0, 0.6):
        rows[f"clean-up, smoothing {sigma}"] = clean_joints(
            raw.joints, contacts, Cleanup(smoothing=sigma), raw.fps
        )
    for name, joints in rows.items():
        accel, jerk = np.mean([jitter(clip, raw.fps) for clip in joints], axis=0)
        print(f"{args.generator} {name:24s} accel {accel:.2f} m/s2  jerk {jerk:.1f} m/s3")


if __name__ == "__main__":
    main()
