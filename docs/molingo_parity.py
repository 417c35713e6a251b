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
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine" / "store"))

from molingo_release_fixtures import (  # noqa: E402
    MODEL_OPTIONS,
    SAE_OPTIONS,
    tiny_t5,
    write_opt,
    write_tokenizer,
)

from engine.sampling import mar_release  # noqa: E402
from engine.store.checkpoint import load_checkpoint  # noqa: E402
from engine.text_encoder import load_text_encoder  # noqa: E402

PROMPTS = ["a person walks forward", "a person sits down on chair and then waves hand"]


@dataclass(frozen=True)
class Setup:
    """One release's shapes: features, SAE latent and downsampling, tokens, sampling."""

    dim: int
    dataset: str
    latent: int
    down_t: int
    frames: tuple[int, int]  # the two test clips' lengths in frames (the first the longest)
    guidance: float
    acc: int

    @property
    def unit(self) -> int:
        return 2**self.down_t

    @property
    def tokens(self) -> int:
        return self.frames[0] // self.unit


SETUPS = {
    263: Setup(263, "t2m", 16, 2, (196, 120), 5.5, 3),
    272: Setup(272, "ms", 32, 1, (300, 200), 7.0, 5),
}


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


def build_release(work: Path, pad_mode: str, activation: str, steps: int, setup: Setup):
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

    sae_opt = {**SAE_OPTIONS, "pad_mode": pad_mode, "activation": activation, "depth": 3,
               "dataset_name": setup.dataset, "output_emb_width": setup.latent,
               "down_t": setup.down_t}  # fmt: skip
    vae = VAE(input_width=setup.dim, output_emb_width=setup.latent, down_t=setup.down_t,
              stride_t=2, width=32, depth=3, dilation_growth_rate=3, activation=activation,
              norm=None, pad_mode=pad_mode)  # fmt: skip
    randomise(vae, g)
    sae_dir = work / "release" / sae_opt["name"]
    write_opt(sae_dir / "opt.txt", sae_opt)
    (sae_dir / "model").mkdir(parents=True, exist_ok=True)
    state = {f"module.{k}": v for k, v in vae.state_dict().items()}
    torch.save({"state_dict": state}, sae_dir / "model" / "net_best_fid.ckpt")

    model = molingo_module.molingo_tiny()(
        vae_embed_dim=setup.latent, token_size=setup.tokens, unit_length=setup.unit,
        sample_steps=steps, t5_max_len=64, adapter_layers=2,
    )  # fmt: skip
    randomise(model, g, skip="t5_model.")
    raw = copy.deepcopy(model.state_dict())
    ema = copy.deepcopy(raw)
    for name, p in model.named_parameters():
        if not name.startswith("t5_model."):
            ema[name] = p.detach() + 0.01 * torch.randn(p.shape, generator=g)
    model_dir = work / "release" / f"pretrained_model_{setup.dim}"
    write_opt(model_dir / "opt.txt", {**MODEL_OPTIONS, "dataset_name": setup.dataset})
    torch.save({"model": raw, "model_ema": ema, "epoch": 1}, model_dir / "net_best_fid.pth")
    model.load_state_dict(ema)  # what the authors' eval and demo run ("Switch to ema")
    meanstd = work / "release" / "meanstd"
    meanstd.mkdir(exist_ok=True)
    import numpy as np

    np.save(meanstd / "Mean.npy", np.zeros(setup.dim, np.float32))
    np.save(meanstd / "Std.npy", np.ones(setup.dim, np.float32))
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
def compare_float64(official, ckpt, setup: Setup) -> dict[str, str]:
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
    x, masked, valid, x_official = _tokens(official, setup, g, torch.float64)
    z_official = official.forward_z(x_official, PROMPTS, ~valid)
    z = model(x, masked, text, valid)
    xs = torch.randn(300, setup.latent, generator=g, dtype=torch.float64)
    # times k / 1024: exact in float32 (both sides embed 1000 t in float32) and 1 - (1 - t) = t
    t = torch.randint(0, 1025, (300,), generator=g).double() / 1024
    c = torch.randn(300, model.config.width, generator=g, dtype=torch.float64)
    return {
        "float64_conditions": biggest(z[valid], z_official[valid]),
        "float64_velocity": biggest(
            model.velocity(xs, 1.0 - t, c), -official.flow_loss.net(xs, t, c)
        ),
    }


def _tokens(official, setup: Setup, g: torch.Generator, dtype: torch.dtype):
    """A full clip and a shorter one padded to the release's token count, some tokens masked:
    (x, masked, valid) for the engine and x with the release's substitutions for its code."""
    n = setup.tokens
    x = torch.randn(2, n, setup.latent, generator=g, dtype=dtype)
    valid = torch.arange(n)[None] < torch.tensor([[f // setup.unit] for f in setup.frames])
    masked = (torch.rand(2, n, generator=g) < 0.5) & valid
    x_official = torch.where(valid[..., None], x, torch.zeros_like(x))
    mask_token = official.mask_token.expand(2, n, setup.latent)
    return x, masked, valid, torch.where(masked[..., None], mask_token, x_official)


@torch.no_grad()
def compare(vae, official, ckpt, steps: int, setup: Setup) -> dict[str, str]:
    ae, model = ckpt.models["autoencoder"], ckpt.models["molingo"]
    encoder = load_text_encoder(ckpt.text_encoder)
    g = torch.Generator().manual_seed(1)
    out = compare_float64(official, ckpt, setup)

    # conditions z
    x, masked, valid, x_official = _tokens(official, setup, g, torch.float32)
    for label, force in (("conditions_prompt", False), ("conditions_null", True)):
        z_official = official.forward_z(x_official, PROMPTS, ~valid, force_mask=force)
        text = encoder.null(2) if force else encoder.encode(PROMPTS)
        z = model(x, masked, text, valid)
        out[label] = biggest(z[valid], z_official[valid])

    # flow head
    xs, t = torch.randn(300, setup.latent, generator=g), torch.rand(300, generator=g)
    c = torch.randn(300, model.config.width, generator=g)
    v_official = official.flow_loss.net(xs, t, c)
    out["velocity_release_time"] = biggest(model.release_velocity(xs, t, c), v_official)
    out["velocity_engine_convention"] = biggest(model.velocity(xs, 1.0 - t, c), -v_official)

    # VAE
    z = torch.randn(2, 12, setup.latent, generator=g)
    out["vae_decode"] = biggest(ae.decode(z), vae.decode(z))
    feats = torch.randn(2, 48, setup.dim, generator=g)
    mean_official = vae.post_proj(vae.post_process(vae.encoder(vae.pre_process(feats))))
    out["vae_encode_mean"] = biggest(ae.encode(feats).mean, mean_official.chunk(2, -1)[0])

    # one guided flow-sampler call and the whole AR loop, same random numbers on both sides
    stream = Stream(7)
    official.flow_loss.rectified_flow.sample_source_distribution = lambda n: stream.randn(
        (n, setup.latent)
    )
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
            bsz=2, m_lens=torch.tensor(setup.frames), cfg=setup.guidance,
            cfg_schedule="linear", labels=PROMPTS, device="cpu", acc_ratio=setup.acc,
        )  # fmt: skip
    finally:
        torch.rand_like = real_rand_like
    stream.reset()
    latents = mar_release.sample_release(
        model, encoder.encode(PROMPTS), encoder.null(1), setup.tokens, flow_steps=steps,
        guidance=setup.guidance, token_valid=valid,
    )  # fmt: skip
    out["ar_loop_latents"] = biggest(latents, latents_official)
    out["ar_loop_decoded"] = biggest(ae.decode(latents), vae.decode(latents_official))
    return out


def official_functions(checkout: Path, relative: str, names: list[str]) -> dict:
    """Functions of one of the authors' files, without importing the rest of it (their
    module-level code moves tensors to CUDA)."""
    import ast

    import numpy as np
    import torch.nn.functional as F

    source = (checkout / relative).read_text(encoding="utf-8")
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    namespace = {"torch": torch, "np": np, "F": F}
    exec(compile(ast.Module(keep, []), relative, "exec"), namespace)  # noqa: S102
    return namespace


def compare_272_decode(checkout: Path) -> dict[str, str]:
    """272 features -> joints (their evaluation's recover_from_local_position_batched) and ->
    rotations + translation (their demo's recover_from_local_rotation), float64."""
    from scipy.spatial.transform import Rotation

    from engine.motion.representation_272 import joints_from_272, rotations_from_272

    ours = official_functions(checkout, "mogen/utils/eval_utils.py", [
        "recover_from_local_position_batched", "cumulative_matprod_time",
        "rotation_6d_to_matrix"])  # fmt: skip
    demo = official_functions(checkout, "mogen/utils/ms_utils.py", [
        "recover_from_local_rotation", "rotation_6d_to_matrix", "accumulate_rotations",
        "rotations_matrix_to_smpl85", "matrix_to_axis_angle", "matrix_to_quaternion",
        "quaternion_to_axis_angle", "_sqrt_positive_part", "_copysign"])  # fmt: skip
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 40, 272, generator=g, dtype=torch.float64)
    x[..., 2:8] = torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=torch.float64) + 0.1 * x[..., 2:8]
    x[..., :2] *= 0.05
    joints_official = ours["recover_from_local_position_batched"](x, 22)
    out = {"272_joints": biggest(joints_from_272(x), joints_official)}
    rotations, translation = rotations_from_272(x[0])
    smpl85 = demo["recover_from_local_rotation"](x[0].numpy(), 22)
    official_rot = Rotation.from_rotvec(smpl85[:, :66].reshape(-1, 3)).as_matrix()
    out["272_rotations"] = biggest(rotations.reshape(-1, 3, 3), torch.from_numpy(official_rot))
    out["272_translation"] = biggest(translation, torch.from_numpy(smpl85[:, 72:75]))
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
    runs = [(263, "zero", "silu"), (263, "replicate", "relu"), (272, "zero", "silu")]
    for dim, pad_mode, activation in runs:
        setup = SETUPS[dim]
        work = args.work / f"{dim}-{pad_mode}-{activation}"
        shutil.rmtree(work, ignore_errors=True)
        vae, official, sae_dir, model_dir, tokenizer, meanstd = build_release(
            work, pad_mode, activation, args.steps, setup
        )
        convert(sae_dir, model_dir, tokenizer, meanstd, work / "converted")
        ckpt = load_checkpoint(work / "converted")
        results[f"{dim} release, sae pad_mode={pad_mode} activation={activation}"] = compare(
            vae, official, ckpt, args.steps, setup
        )
    results["272 representation"] = compare_272_decode(args.official)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
