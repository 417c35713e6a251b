"""A full-size MoLingo release with random weights, for speed measurements (benchmarks.md).

    python docs/molingo_bench_release.py --out /tmp/molingo-bench
    python docs/molingo_bench_release.py --sizes     # parameter counts only

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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine" / "store"))

from molingo_release_fixtures import (  # noqa: E402
    LARGE,
    tiny_t5,
    write_release,
    write_tokenizer,
)


def sizes() -> None:
    """Parameter counts of the converted models at the published sizes (meta tensors: no
    memory, no weights)."""
    import torch
    from transformers import T5Config, T5EncoderModel

    from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
    from engine.models.molingo_release import MoLingoRelease, MoLingoReleaseConfig
    from engine.store.molingo_release import REPRESENTATIONS

    def count(module: torch.nn.Module) -> int:
        return sum(t.numel() for t in [*module.parameters(), *module.buffers()])

    with torch.device("meta"):
        for rep, latent, down in ((REPRESENTATIONS["t2m"], 16, 2), (REPRESENTATIONS["ms"], 32, 1)):
            tokens = rep.max_frames // 2**down
            generator = MoLingoRelease(MoLingoReleaseConfig(latent_dim=latent, max_tokens=tokens))
            sae = MotionAutoencoder(AutoencoderConfig(
                feature_dim=rep.dim, width=1024, depth=3, down_t=down, latent_dim=latent,
                encoder_dilations_reversed=True, latent_projection=True, semantic_head=False,
                encoder_input_padding="replicate"))  # fmt: skip
            print(f"{rep.name}: generator {count(generator):,} (flow head "
                  f"{count(generator.head):,}), SAE {count(sae):,} (decoder "
                  f"{count(sae.decoder):,})")  # fmt: skip
        config = T5Config(vocab_size=32128, d_model=1024, d_kv=64, d_ff=4096, num_layers=24,
                          num_heads=16, is_encoder_decoder=False)  # fmt: skip
        t5 = T5EncoderModel(config)
        print(f"T5-Large encoder {count(t5):,}")


def write_large_release(out: Path, dim: int) -> tuple[Path, Path]:
    """The random full-size release (its tensors are freed when this returns, before the
    conversion reads them back)."""
    t5 = tiny_t5(d_model=1024, vocab=32128, num_layers=24, num_heads=16, d_kv=64, d_ff=4096)
    sae_options = {"width": 1024, "depth": 3}
    if dim == 272:
        sae_options["name"] = "sae_ms_l2_2_32_1024_d3"
    return write_release(
        out / "release", t5=t5, size=LARGE, sae_options=sae_options, dim=dim,
        model_options={"model_size": "large", "aligner_layers": 6},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the random release and convert it")
    parser.add_argument("--representation", type=int, choices=(263, 272), default=263)
    parser.add_argument("--sizes", action="store_true", help="print the parameter counts")
    args = parser.parse_args()
    if args.sizes:
        sizes()
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    sae, model = write_large_release(args.out, args.representation)
    tokenizer = write_tokenizer(args.out / "tokenizer")
    checkpoint = args.out / f"molingo-{args.representation}"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "engine", "import-molingo", str(sae), str(model),
         str(checkpoint), "--text-encoder", str(tokenizer), "--mean-std",
         str(args.out / "release" / "meanstd")], check=True, cwd=ROOT,
    )  # fmt: skip
    print(f"convert: {time.perf_counter() - start:.1f} s")
    frames = 196 if args.representation == 263 else 300
    print(f"python -m engine benchmark --checkpoint {checkpoint} --generators molingo "
          f"--batches 1,256 --frames {frames}")  # fmt: skip


if __name__ == "__main__":
    main()
