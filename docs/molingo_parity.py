"""Parity of a converted MoLingo release with the authors' own code (docs/molingo-release.md).

    python docs/molingo_parity.py --official PATH/TO/MoLingo --work /tmp/molingo-parity

PATH/TO/MoLingo is a checkout of github.com/hynann/MoLingo (nothing of it is part of
kinetext). Its ``mogen/models`` package is copied into ``--work`` with the hard-coded
``'cuda'`` device replaced by ``'cpu'`` and T5-Large replaced by a tiny random T5 and a
word-level tokenizer (no download). The script then builds the official VAE and
``molingo_tiny`` with random non-zero weights (EMA different from the raw weights), saves
them in the release format, converts them with ``python -m engine import-molingo`` (the
user's path) and compares, in float32 on the CPU, on the same inputs:

- the transformer's conditions z (prompt and null-prompt branches, a padded clip included);
- the flow head's velocity (release time, and the engine's convention ``-v(1 - t)``);
- the VAE's decoded features and the encoder's mean;
- one guided flow-sampler call and the whole AR sampling loop, with both sides drawing the
  same random numbers.

It prints one JSON object of maximum absolute differences.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))

from molingo_release_fixtures import (  # noqa: E402
    MODEL_OPTIONS,
    SAE_OPTIONS,
    tiny_t5,
    write_opt,
    write_tokenizer,
)

from engine.checkpoint import load_checkpoint  # noqa: E402
from engine.sampling import mar_release  # noqa: E402
from engine.text_encoder import load_text_encoder  # noqa: E402

PROMPTS = ["a person walks forward", "a person sits down on chair and then waves hand"]


def official_package(checkout: Path, work: Path) -> None:
    """Copy mogen/models into ``work`` with the device made the CPU."""
    target = work / "official" / "mogen" / "models"
    shutil.rmtree(work / "official", ignore_errors=True)
    shutil.copytree(checkout / "mogen" / "models", target)
    for path in target.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("'cuda'", "'cpu'").replace('"cuda"', '"cpu"')
        path.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(work / "official"))


def randomise(module: torch.nn.Module, generator: torch.Generator, skip: str = "") -> None:
    """Every parameter random and non-zero: matrices N(0, 1/fan_in) so activations stay near
    unit size, biases N(0, 0.1^2), norm weights 1 + N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if skip and name.startswith(skip):
                continue
            noise = torch.randn(p.shape, generator=generator)
            if p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            elif ("norm" in name or "in_ln" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


class Stream:
    """One random stream both implementations draw from, restarted per comparison."""

    def __init__(self, seed: int):
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.g = torch.Generator().manual_seed(self.seed)

    def randn(self, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.g)

    def rand(self, shape) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self.g)


def build_release(work: Path, pad_mode: str, activation: str, steps: int):
    """Official VAE + molingo_tiny with random weights, saved as a release; returns them."""
    import mogen.models.molingo.molingo as molingo_module
    from mogen.models.vae.vae import VAE

    g = torch.Generator().manual_seed(0)
    tokenizer_dir = write_tokenizer(work / "tokenizer")
    t5 = tiny_t5(d_model=1024)  # the release's cond_proj reads 1024 features

    class T5Factory:
        @staticmethod
        def from_pretrained(_name):
            return copy.deepcopy(t5)

    class TokenizerFactory:
        @staticmethod
        def from_pretrained(_name):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(tokenizer_dir)

    molingo_module.T5EncoderModel = T5Factory
    molingo_module.T5Tokenizer = TokenizerFactory

    sae_opt = {**SAE_OPTIONS, "pad_mode": pad_mode, "activation": activation, "depth": 3}
    vae = VAE(input_width=263, output_emb_width=16, down_t=2, stride_t=2, width=32, depth=3,
              dilation_growth_rate=3, activation=activation, norm=None,
              pad_mode=pad_mode)  # fmt: skip
    randomise(vae, g)
    sae_dir = work / "release" / sae_opt["name"]
    write_opt(sae_dir / "opt.txt", sae_opt)
    (sae_dir / "model").mkdir(parents=True, exist_ok=True)
    state = {f"module.{k}": v for k, v in vae.state_dict().items()}
    torch.save({"state_dict": state}, sae_dir / "model" / "net_best_fid.ckpt")

    model = molingo_module.molingo_tiny()(
        vae_embed_dim=16, token_size=49, unit_length=4, sample_steps=steps, t5_max_len=64,
        adapter_layers=2,
    )  # fmt: skip
    randomise(model, g, skip="t5_model.")
    raw = copy.deepcopy(model.state_dict())
    ema = copy.deepcopy(raw)
    for name, p in model.named_parameters():
        if not name.startswith("t5_model."):
            ema[name] = p.detach() + 0.01 * torch.randn(p.shape, generator=g)
    model_dir = work / "release" / "pretrained_model_263"
    write_opt(model_dir / "opt.txt", MODEL_OPTIONS)
    torch.save({"model": raw, "model_ema": ema, "epoch": 1}, model_dir / "net_best_fid.pth")
    model.load_state_dict(ema)  # what the authors' eval and demo run ("Switch to ema")
    meanstd = work / "release" / "meanstd"
    meanstd.mkdir(exist_ok=True)
    import numpy as np

    np.save(meanstd / "Mean.npy", np.zeros(263, np.float32))
    np.save(meanstd / "Std.npy", np.ones(263, np.float32))
    return vae.eval(), model.eval(), sae_dir, model_dir, tokenizer_dir, meanstd


def convert(sae_dir: Path, model_dir: Path, tokenizer: Path, meanstd: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "engine", "import-molingo", str(sae_dir), str(model_dir),
               str(out), "--text-encoder", str(tokenizer), "--mean-std", str(meanstd)]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)


def biggest(a: torch.Tensor, b: torch.Tensor) -> str:
    """Max absolute difference, and the largest magnitude of the reference beside it."""
    diff = float((a.double() - b.double()).abs().max())
    return f"{diff:.3g} (of values up to {float(b.abs().max()):.3g})"


@torch.no_grad()
def compare_float64(official, ckpt) -> dict[str, str]:
    """Architecture alone: both networks in float64 from the same T5 features (padded to the
    release's 64 tokens on its side, unpadded on the engine's), so only rounding differs."""
    from engine.text_encoder import TextEncoding

    model = copy.deepcopy(ckpt.models["molingo"]).double()
    official = copy.deepcopy(official).double()
    g = torch.Generator().manual_seed(3)
    lengths = [7, 12]
    features = torch.randn(2, 64, official.t5_dim, generator=g, dtype=torch.float64)
    pad = torch.arange(64)[None] >= torch.tensor(lengths)[:, None]
    official.encode_text = lambda _prompts: (features, pad)
    embedder = official.flow_loss.net.time_embed  # its sinusoid is float32 by construction
    embedder.forward = lambda t: embedder.mlp(
        embedder.timestep_embedding(t, embedder.frequency_embedding_size).double()
    )
    text = TextEncoding(features[:, :12], ~pad[:, :12], features[:, 0])
    x = torch.randn(2, 49, 16, generator=g, dtype=torch.float64)
    valid = torch.arange(49)[None] < torch.tensor([[49], [30]])
    masked = (torch.rand(2, 49, generator=g) < 0.5) & valid
    x_official = torch.where(valid[..., None], x, torch.zeros_like(x))
    x_official = torch.where(masked[..., None], official.mask_token.expand(2, 49, 16), x_official)
    z_official = official.forward_z(x_official, PROMPTS, ~valid)
    z = model(x, masked, text, valid)
    xs = torch.randn(300, 16, generator=g, dtype=torch.float64)
    # times k / 1024: exact in float32 (both sides embed 1000 t in float32) and 1 - (1 - t) = t
    t = torch.randint(0, 1025, (300,), generator=g).double() / 1024
    c = torch.randn(300, model.config.width, generator=g, dtype=torch.float64)
    return {
        "float64_conditions": biggest(z[valid], z_official[valid]),
        "float64_velocity": biggest(
            model.velocity(xs, 1.0 - t, c), -official.flow_loss.net(xs, t, c)
        ),
    }


@torch.no_grad()
def compare(vae, official, ckpt, steps: int) -> dict[str, str]:
    ae, model = ckpt.models["autoencoder"], ckpt.models["molingo"]
    encoder = load_text_encoder(ckpt.text_encoder)
    g = torch.Generator().manual_seed(1)
    out = compare_float64(official, ckpt)

    # conditions z: a full clip and a 30-token clip padded to 49, some tokens masked
    x = torch.randn(2, 49, 16, generator=g)
    valid = torch.arange(49)[None] < torch.tensor([[49], [30]])
    masked = (torch.rand(2, 49, generator=g) < 0.5) & valid
    x_official = torch.where(valid[..., None], x, torch.zeros_like(x))
    x_official = torch.where(masked[..., None], official.mask_token.expand(2, 49, 16), x_official)
    for label, force in (("conditions_prompt", False), ("conditions_null", True)):
        z_official = official.forward_z(x_official, PROMPTS, ~valid, force_mask=force)
        text = encoder.null(2) if force else encoder.encode(PROMPTS)
        z = model(x, masked, text, valid)
        out[label] = biggest(z[valid], z_official[valid])

    # flow head
    xs, t = torch.randn(300, 16, generator=g), torch.rand(300, generator=g)
    c = torch.randn(300, model.config.width, generator=g)
    v_official = official.flow_loss.net(xs, t, c)
    out["velocity_release_time"] = biggest(model.release_velocity(xs, t, c), v_official)
    out["velocity_engine_convention"] = biggest(model.velocity(xs, 1.0 - t, c), -v_official)

    # VAE
    z = torch.randn(2, 12, 16, generator=g)
    out["vae_decode"] = biggest(ae.decode(z), vae.decode(z))
    feats = torch.randn(2, 48, 263, generator=g)
    mean_official = vae.post_proj(vae.post_process(vae.encoder(vae.pre_process(feats))))
    out["vae_encode_mean"] = biggest(ae.encode(feats).mean, mean_official.chunk(2, -1)[0])

    # one guided flow-sampler call and the whole AR loop, same random numbers on both sides
    stream = Stream(7)
    official.flow_loss.rectified_flow.sample_source_distribution = lambda n: stream.randn((n, 16))
    mar_release._randn = lambda shape, _g, like: stream.randn(shape).to(like.dtype)
    mar_release._rand = lambda shape, _g, like: stream.rand(shape)
    zc, zu = torch.randn(2, 40, model.config.width, generator=g).unbind(0)
    stream.reset()
    sampled_official = official.flow_loss.sample(torch.cat([zc, zu]), 4.0)[:40]
    stream.reset()
    sampled = mar_release.sample_flow_tokens(model, zc, zu, 4.0, steps, "stochastic", None)
    out["flow_sampler"] = biggest(sampled, sampled_official)

    real_rand_like = torch.rand_like
    torch.rand_like = lambda like, dtype=None: stream.rand(like.shape)
    try:
        stream.reset()
        latents_official = official.sample_tokens(
            bsz=2, m_lens=torch.tensor([196, 120]), cfg=5.5, cfg_schedule="linear",
            labels=PROMPTS, device="cpu", acc_ratio=3,
        )  # fmt: skip
    finally:
        torch.rand_like = real_rand_like
    stream.reset()
    latents = mar_release.sample_release(
        model, encoder.encode(PROMPTS), encoder.null(1), 49, flow_steps=steps, guidance=5.5,
        token_valid=valid,
    )  # fmt: skip
    out["ar_loop_latents"] = biggest(latents, latents_official)
    out["ar_loop_decoded"] = biggest(ae.decode(latents), vae.decode(latents_official))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="MoLingo checkout")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--steps", type=int, default=8, help="flow steps of the sampler")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    official_package(args.official, args.work)
    results = {}
    for pad_mode, activation in (("zero", "silu"), ("replicate", "relu")):
        work = args.work / f"{pad_mode}-{activation}"
        shutil.rmtree(work, ignore_errors=True)
        vae, official, sae_dir, model_dir, tokenizer, meanstd = build_release(
            work, pad_mode, activation, args.steps
        )
        convert(sae_dir, model_dir, tokenizer, meanstd, work / "converted")
        ckpt = load_checkpoint(work / "converted")
        results[f"sae pad_mode={pad_mode} activation={activation}"] = compare(
            vae, official, ckpt, args.steps
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
