"""Does a checkpoint described on the GPU machine (whose MiniLM is the int8, slim copy of
``.carry/minilm-q8``, restored by ``training/recipes/slim_text_encoder.py``) flag the same
prompts as one described with the real MiniLM users have?

    python docs/knowledge_encoder_check.py ENCODER_FOLDER --data DATASET [CHECKPOINT]

Describes DATASET's train split with the encoder in ENCODER_FOLDER, then scores the
calibration prompts (``knowledge_calibration.py``), encoded by the real MiniLM as at
generation, against it and against CHECKPOINT's stored description (default: the embedded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "docs")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("encoder", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("checkpoint", nargs="?", default=None)
    args = parser.parse_args()
    from knowledge_calibration import KNOWN, UNRELATED

    from engine.store.info import checkpoint_source
    from engine.store.knowledge import read_knowledge
    from engine.text_encoder import TextEncoderConfig, load_text_encoder
    from training.describe import describe_data

    other = describe_data([args.data], TextEncoderConfig(name=str(args.encoder)))
    stored = read_knowledge(checkpoint_source(args.checkpoint).folder)
    encoder = load_text_encoder(TextEncoderConfig())
    for name, groups in (("known", KNOWN), ("unseen", UNRELATED)):
        prompts = [p for ps in groups.values() for p in ps]
        pooled = encoder.encode(prompts).pooled.numpy()
        a = np.array([m.similarity for m in stored.match(prompts, pooled)])
        b = np.array([m.similarity for m in other.match(prompts, pooled)])
        print(f"{name}: similarity differs by {np.abs(a - b).mean():.3f} on average, "
              f"{np.abs(a - b).max():.3f} at most; flagged {(a < stored.threshold).sum()} "
              f"(stored) vs {(b < other.threshold).sum()} of {len(a)}")  # fmt: skip
    same = len(set(other.captions) & set(stored.captions))
    print(f"captions kept by both: {same} of {len(stored.captions)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
