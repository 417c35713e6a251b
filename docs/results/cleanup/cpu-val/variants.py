"""Score one clean-up variant on val in-process (the step-by-step table of docs/results.md).

    python docs/results/cleanup/cpu-val/variants.py VARIANT --data DATA --evaluator EVAL --out F

VARIANT: ``default`` (the shipped Cleanup), ``floor`` (``floor_feet=True``), ``ankleonly``
(pins on the ankles only, with ``floor_feet``), ``raw`` or ``nopin``. The ankles-only variant
has no Cleanup option, so its legs are given to ``pin_feet`` without toes here.
"""

from __future__ import annotations

import argparse
import dataclasses

import engine.edit.cleanup as cleanup
from engine.edit.foot_cleanup import pin_feet
from training.evaluation.run import evaluate


def ankles_only(positions, contacts, legs, blend=3, fps=None):
    """``pin_feet`` with every leg's toe left out (it then moves with its ankle)."""
    legs = [dataclasses.replace(leg, toe=None) for leg in legs]
    return pin_feet(positions, contacts, legs, blend=blend, fps=fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variant", choices=("default", "floor", "ankleonly", "raw", "nopin"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--evaluator", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    clean: bool | cleanup.Cleanup = {
        "default": True,
        "raw": False,
        "nopin": cleanup.Cleanup(pin_feet=False),
    }.get(args.variant, cleanup.Cleanup(floor_feet=True))
    if args.variant == "ankleonly":
        cleanup.pin_feet = ankles_only
    report = evaluate("engine/checkpoints/default", args.data, args.evaluator, split="val",
                      replications=1, mm=False, device="cpu", clean=clean)  # fmt: skip
    report.save(args.out, None)


if __name__ == "__main__":
    main()
