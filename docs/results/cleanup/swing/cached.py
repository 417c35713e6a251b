"""Score clean-up variants on one set of raw generations (CPU): generate once, clean many times.

``python -m training evaluate ... --cleanup K=V`` samples every clip again for each variant,
which on this machine's shared CPU costs minutes per replication, while the clean-up itself is
a post-process of the raw joints (``engine.pipeline.generate`` cleans after decoding). This
script runs the same ``evaluate`` with ``generate`` wrapped: each call's raw output is kept
in ``--cache`` (keyed by the call's captions, length and seed) and cleaned with the variant's
``Cleanup`` as ``generate`` would. The numbers are those of the command form (the same draws,
seeds and clips); docs/results.md checks one variant against it.

    python docs/results/cleanup/swing/cached.py --data DATA --evaluator EVAL --cache DIR \
        --split val --replications 5 [--raw] [--cleanup KEY=VALUE ...] --out F.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

import training.evaluation.generation as generation
from engine.edit.cleanup import clean_motion
from engine.motion import Motion
from engine.pipeline import generate
from training.evaluation.run import evaluate, parse_cleanup


def cached_generate(cache: Path, clean):
    """``generate`` that keeps raw outputs in ``cache`` and cleans them with ``clean``."""

    def call(prompts, frames, seed, clean=True, **kwargs):  # noqa: ARG001 (clean: ours wins)
        key = hashlib.sha1(repr((list(prompts), frames, seed)).encode()).hexdigest()[:20]
        path = cache / f"{key}.npz"
        if path.is_file():
            saved = np.load(path)
            raw = Motion(joints=saved["joints"], features=saved["features"], fps=int(saved["fps"]),
                         prompts=list(prompts), diagnostics={})  # fmt: skip
        else:
            raw = generate(prompts, frames=frames, seed=seed, clean=False, **kwargs)
            np.savez(path.with_suffix(".tmp.npz"), joints=raw.joints, features=raw.features,
                     fps=raw.fps, prompts=np.array(list(prompts)))  # fmt: skip
            path.with_suffix(".tmp.npz").replace(path)
        if chosen is False:
            return raw
        joints, features = clean_motion(raw.joints, raw.features, chosen, raw.fps)
        return dataclasses.replace(raw, joints=joints, features=features)

    chosen = clean
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--evaluator", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--cleanup", action="append", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    from engine.edit.cleanup import Cleanup

    clean = False if args.raw else (parse_cleanup(args.cleanup) if args.cleanup else Cleanup())
    generation.generate = cached_generate(cache, clean)
    report = evaluate("engine/checkpoints/default", args.data, args.evaluator, split=args.split,
                      replications=args.replications, mm=False, device="cpu",
                      clean=clean if clean is not False else False)  # fmt: skip
    report.save(args.out, None)
    print(report.to_markdown(), end="")


if __name__ == "__main__":
    main()
