"""A full-size MoLingo release with random weights, for speed measurements (benchmarks.md).

    python docs/molingo_bench_release.py --out /tmp/molingo-bench

writes a release in the authors' format at the published size (SAE width 1024, 4x down,
16-d latent; MoLingo "large": 16 layers of width 1024, head 8 x 1280, 6 adapter layers;
a T5-Large-sized encoder with a word-level tokenizer), converts it with
``python -m engine import-molingo`` and prints the benchmark command. Speed does not depend
on the weights' values, so the numbers hold for the real release; only its prompts'
token counts differ slightly (the tokenizer is word-level, T5's is sentencepiece).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))

from molingo_release_fixtures import (  # noqa: E402
    LARGE,
    tiny_t5,
    write_release,
    write_tokenizer,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t5 = tiny_t5(d_model=1024, vocab=32128, num_layers=24, num_heads=16, d_kv=64, d_ff=4096)
    sae, model = write_release(
        args.out / "release", t5=t5, size=LARGE, sae_options={"width": 1024, "depth": 3},
        model_options={"model_size": "large", "aligner_layers": 6},
    )  # fmt: skip
    tokenizer = write_tokenizer(args.out / "tokenizer")
    checkpoint = args.out / "molingo-263"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine", "import-molingo", str(sae), str(model),
         str(checkpoint), "--text-encoder", str(tokenizer), "--mean-std",
         str(args.out / "release" / "meanstd")], check=True, cwd=ROOT,
    )  # fmt: skip
    print(f"convert: {time.perf_counter() - start:.1f} s")
    print(f"python -m engine benchmark --checkpoint {checkpoint} --generators molingo "
          "--batches 1,256 --frames 196")  # fmt: skip


if __name__ == "__main__":
    main()
