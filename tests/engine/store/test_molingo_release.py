"""``python -m engine import-molingo``: a published MoLingo release -> a checkpoint that runs.

The releases here are tiny but in the authors' format (``molingo_release_fixtures``): the
tests convert them through the command line, load and generate from the result as a user
would, and break them the ways a download breaks.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from molingo_release_fixtures import write_release, write_tokenizer

from engine.cli import main
from engine.io.bvh import read_bvh
from engine.models.molingo_release import NULL_PROMPT, MoLingoRelease, MoLingoReleaseConfig
from engine.sampling.mar_release import sample_release
from engine.store.checkpoint import load_checkpoint
from engine.store.molingo_release import LICENSE, read_opt, sha256
from engine.text_encoder import TextEncoding, load_text_encoder


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("release")
    sae, model = write_release(root)
    return {"root": root, "sae": sae, "model": model, "tokenizer": write_tokenizer(root / "tok"),
            "meanstd": root / "meanstd"}  # fmt: skip


def _copy(release: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A private copy of the release that a test may break."""
    copy = dict(release)
    for key in ("sae", "model"):
        copy[key] = tmp_path / release[key].name
        shutil.copytree(release[key], copy[key])
    return copy


def _import(release: dict[str, Path], out: Path, *extra: str) -> int:
    return main([
        "import-molingo", str(release["sae"]), str(release["model"]), str(out),
        "--text-encoder", str(release["tokenizer"]), "--mean-std", str(release["meanstd"]),
        *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def converted(release: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "molingo-263"
    assert _import(release, out) == 0
    return out


def test_converted_release_is_a_checkpoint_with_the_release_facts(
    converted: Path, release: dict[str, Path]
) -> None:
    ckpt = load_checkpoint(converted)
    assert isinstance(ckpt.models["molingo"], MoLingoRelease)
    assert ckpt.fps == 20 and ckpt.license == LICENSE
    np.testing.assert_array_equal(ckpt.std, np.load(release["meanstd"] / "Std.npy"))
    encoder = ckpt.text_encoder
    assert (encoder.kind, encoder.max_tokens, encoder.null_prompt) == ("t5", 64, NULL_PROMPT)
    assert Path(encoder.name) == converted / "text_encoder"  # inside the checkpoint
    defaults = ckpt.metadata["sampling_defaults"]["molingo"]
    assert (defaults["guidance"], defaults["acc"], defaults["ar_steps"]) == (5.5, 3, 16)
    digests = ckpt.metadata["release"]["sha256"]
    weights = release["model"] / "net_best_fid.pth"
    assert digests[f"{release['model'].name}/net_best_fid.pth"] == sha256(weights)
    sae_weights = release["sae"] / "model" / "net_best_fid.ckpt"
    assert digests[f"{release['sae'].name}/model/net_best_fid.ckpt"] == sha256(sae_weights)
    # EMA weights by default, keyed by parameter name; the mask token lives in latent space
    ema = torch.load(weights, weights_only=True)["model_ema"]
    model = ckpt.models["molingo"]
    torch.testing.assert_close(model.z_proj.weight, ema["z_proj.weight"])
    torch.testing.assert_close(model.mask_token, ema["mask_token"].reshape(-1))
    sae = torch.load(release["sae"] / "model" / "net_best_fid.ckpt", weights_only=True)
    decoder_in = sae["state_dict"]["module.decoder.model.0.conv.weight"]
    torch.testing.assert_close(ckpt.models["autoencoder"].decoder.net[0].weight, decoder_in)


def test_converted_t5_matches_the_release_t5(converted: Path, release: dict[str, Path]) -> None:
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    state = torch.load(release["model"] / "net_best_fid.pth", weights_only=True)["model"]
    t5 = {k.removeprefix("t5_model."): v for k, v in state.items() if k.startswith("t5_model.")}
    reference = T5EncoderModel(T5Config.from_pretrained(converted / "text_encoder")).eval()
    reference.load_state_dict(t5)
    tokenizer = AutoTokenizer.from_pretrained(release["tokenizer"])
    ids = tokenizer(["a person jumps"], return_tensors="pt")
    expected = reference(**ids).last_hidden_state[0]
    ckpt = load_checkpoint(converted)
    got = load_text_encoder(ckpt.text_encoder).encode("a person jumps").tokens[0]
    torch.testing.assert_close(got, expected)


def test_generate_from_converted_release_on_the_command_line(
    converted: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "sit.npy"
    args = ["generate", "a person sits down on a chair", "--checkpoint", str(converted),
            "--seconds", "1", "--steps", "2", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().err  # a release does not say what it learned
    assert main(["info", str(converted)]) == 0
    info = capsys.readouterr().out
    assert "vocabulary: unknown" in info and "MoLingoRelease" in info
    joints = np.load(out)
    assert joints.shape == (1, 20, 22, 3) and np.isfinite(joints).all()
    assert main([*args[:-1], str(tmp_path / "again.npy")]) == 0  # same seed, same motion
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), joints)


def test_no_ema_converts_the_raw_weights(release: dict[str, Path], tmp_path: Path) -> None:
    assert _import(release, tmp_path / "raw", "--no-ema") == 0
    raw = torch.load(release["model"] / "net_best_fid.pth", weights_only=True)["model"]
    model = load_checkpoint(tmp_path / "raw").models["molingo"]
    torch.testing.assert_close(model.z_proj.weight, raw["z_proj.weight"])
    assert not load_checkpoint(tmp_path / "raw").metadata["release"]["ema"]


class _Touch:
    """Unpickling this would create a file: proof that it was (or was not) executed."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickle_object(path: Path, marker: Path) -> None:
    data = torch.load(path, weights_only=True)
    data["args"] = argparse.Namespace(lr=1e-4)
    data["hook"] = _Touch(marker)
    torch.save(data, path)


BROKEN = {
    "missing generator weights": (
        lambda r, m: (r["model"] / "net_best_fid.pth").unlink(), "net_best_fid.pth", "missing"),
    "missing SAE opt.txt": (
        lambda r, m: (r["sae"] / "opt.txt").unlink(), "opt.txt", "missing"),
    "truncated .pth": (
        lambda r, m: _truncate(r["model"] / "net_best_fid.pth"), "net_best_fid.pth",
        "truncated or corrupt"),
    "truncated SAE .ckpt": (
        lambda r, m: _truncate(r["sae"] / "model" / "net_best_fid.ckpt"), "net_best_fid.ckpt",
        "truncated or corrupt"),
    "pickled objects": (
        lambda r, m: _pickle_object(r["model"] / "net_best_fid.pth", m), "net_best_fid.pth",
        "refused without running it"),
    "SAE width unlike opt.txt": (
        lambda r, m: _edit_opt(r["sae"] / "opt.txt", width=64), "net_best_fid.ckpt", "opt.txt"),
    "model size unlike opt.txt": (
        lambda r, m: _edit_opt(r["model"] / "opt.txt", model_size="base"), "net_best_fid.pth",
        "opt.txt"),
    "adapter depth unlike opt.txt": (
        lambda r, m: _edit_opt(r["model"] / "opt.txt", aligner_layers=6), "net_best_fid.pth",
        "opt.txt"),
}  # fmt: skip


def _edit_opt(path: Path, **changes: object) -> None:
    from molingo_release_fixtures import write_opt

    write_opt(path, {**read_opt(path), **changes})


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_release_gives_one_clear_error_and_no_output(
    case: str, release: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _copy(release, tmp_path)
    marker = tmp_path / "executed"
    damage, filename, words = BROKEN[case]
    damage(broken, marker)
    out = tmp_path / "out" / "molingo"
    out.parent.mkdir()
    assert _import(broken, out) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and message.count("\n") == 0
    assert filename in message and words in message
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []  # nothing half-written
    assert not marker.exists()  # the pickled object was never run


def test_failed_conversion_leaves_an_existing_checkpoint_untouched(
    release: dict[str, Path], converted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ckpt"
    shutil.copytree(converted, out)
    before = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    broken = _copy(release, tmp_path)
    _truncate(broken["model"] / "net_best_fid.pth")
    assert _import(broken, out) == 2
    after = sorted((p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file())
    assert after == before


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(
    release: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _import(release, out) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_without_text_encoder_offline_says_what_to_do(
    release: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    args = ["import-molingo", str(release["sae"]), str(release["model"]), str(tmp_path / "o"),
            "--mean-std", str(release["meanstd"])]  # fmt: skip
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "google-t5/t5-large" in message
    assert not (tmp_path / "o").exists()


def test_missing_mean_std_names_the_option(
    release: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["import-molingo", str(release["sae"]), str(release["model"]), str(tmp_path / "o"),
            "--text-encoder", str(release["tokenizer"])]  # fmt: skip
    assert main(args) == 2
    assert "--mean-std" in capsys.readouterr().err


def test_272_release_converts_and_generates_at_30_fps(tmp_path: Path) -> None:
    sae, model = write_release(tmp_path / "r", dim=272)
    release = {"sae": sae, "model": model, "tokenizer": write_tokenizer(tmp_path / "tok"),
               "meanstd": tmp_path / "r" / "meanstd"}  # fmt: skip
    out = tmp_path / "molingo-272"
    assert _import(release, out) == 0
    ckpt = load_checkpoint(out)
    assert (ckpt.fps, ckpt.mean.shape, ckpt.metadata["representation"]) == (
        30, (272,), "humanml3d-272")  # fmt: skip
    defaults = ckpt.metadata["sampling_defaults"]["molingo"]
    assert (defaults["guidance"], defaults["acc"], defaults["ar_steps"]) == (7.0, 5, 30)
    assert ckpt.configs["molingo"].max_tokens == 150 and ckpt.models["autoencoder"].downsample == 2
    clip = tmp_path / "jump.npy"
    args = ["generate", "a person jumps", "--checkpoint", str(out), "--seconds", "1",
            "--steps", "1", "--device", "cpu", "--out", str(clip)]  # fmt: skip
    assert main(args) == 0
    joints = np.load(clip)
    assert joints.shape == (1, 30, 22, 3) and np.isfinite(joints).all()
    bvh = tmp_path / "jump.bvh"  # BVH export at the representation's 30 fps
    assert main([*args[:-1], str(bvh)]) == 0
    motion = read_bvh(bvh)
    assert motion.motion.shape[0] == 30 and abs(motion.fps - 30) < 1e-6


# ---- the release's sampling loop -----------------------------------------------------------


def _tiny_model() -> MoLingoRelease:
    torch.manual_seed(0)
    cfg = MoLingoReleaseConfig(
        latent_dim=4, text_dim=8, max_tokens=12, width=16, depth=2, heads=2, adapter_depth=1,
        head_width=16, head_depth=2, acc=3,
    )  # fmt: skip
    model = MoLingoRelease(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _text(batch: int, length: int) -> TextEncoding:
    tokens = torch.randn(batch, length, 8)
    return TextEncoding(tokens, torch.ones(batch, length, dtype=torch.bool), tokens.mean(1))


@torch.no_grad()
def test_release_loop_is_seeded_and_reports_progress_per_ar_step() -> None:
    model, text, null = _tiny_model(), _text(2, 5), _text(1, 3)
    calls: list[tuple[int, int]] = []
    first = sample_release(model, text, null, 12, flow_steps=3,
                           generator=torch.Generator().manual_seed(4),
                           progress=lambda s, n: calls.append((s, n)))  # fmt: skip
    again = sample_release(model, text, null, 12, flow_steps=3,
                           generator=torch.Generator().manual_seed(4))  # fmt: skip
    other = sample_release(model, text, null, 12, flow_steps=3,
                           generator=torch.Generator().manual_seed(5))  # fmt: skip
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    assert calls == [(i, 4) for i in range(1, 5)]  # max_tokens 12 // acc 3 AR steps


@torch.no_grad()
def test_release_loop_leaves_padding_zero_and_never_reads_it() -> None:
    model, text, null = _tiny_model(), _text(2, 5), _text(1, 3)
    valid = torch.arange(12)[None] < torch.tensor([[12], [7]])
    latents = sample_release(model, text, null, 12, flow_steps=2, token_valid=valid,
                             generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert (latents[1, 7:] == 0).all() and (latents[0] != 0).any(-1).all()
    # conditions of real tokens do not depend on what padded positions hold
    x = torch.randn(2, 12, 4)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    z = model(x, mask, text, valid)
    x2 = x.clone()
    x2[1, 7:] = 100.0
    torch.testing.assert_close(model(x2, mask, text, valid)[1, :7], z[1, :7])


def test_velocity_is_the_release_head_in_engine_time() -> None:
    model = _tiny_model()
    x, z = torch.randn(10, 4), torch.randn(10, 16)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0] * 2)
    expected = -model.release_velocity(x, 1.0 - t, z)
    torch.testing.assert_close(model.velocity(x, t, z), expected)


def test_config_json_keeps_existing_autoencoder_defaults(converted: Path) -> None:
    """The new autoencoder options are written out, and a config without them (every
    checkpoint before this) keeps the old layout."""
    from engine.models.autoencoder import AutoencoderConfig

    header = json.loads((converted / "config.json").read_text())
    saved = header["models"]["autoencoder"]["config"]
    assert saved["padding"] == "zero" and saved["encoder_input_padding"] == "replicate"
    sizes = ("feature_dim", "width", "depth", "dilation_growth", "down_t", "latent_dim")
    old = {k: v for k, v in saved.items() if k in sizes}
    defaults = AutoencoderConfig.from_dict(old)
    assert (defaults.padding, defaults.activation, defaults.latent_projection) == (
        "zero", "silu", False)  # fmt: skip
    assert defaults.semantic_head and not defaults.encoder_dilations_reversed


def test_release_without_t5_weights_takes_the_encoder_folder(
    release: dict[str, Path], tmp_path: Path
) -> None:
    from molingo_release_fixtures import tiny_t5

    broken = _copy(release, tmp_path)
    path = broken["model"] / "net_best_fid.pth"
    data = torch.load(path, weights_only=True)
    for key in ("model", "model_ema"):
        data[key] = {k: v for k, v in data[key].items() if not k.startswith("t5_model.")}
    torch.save(data, path)
    encoder = write_tokenizer(tmp_path / "t5")
    tiny_t5(seed=3).save_pretrained(encoder, safe_serialization=True)
    broken["tokenizer"] = encoder
    assert _import(broken, tmp_path / "out") == 0
    ckpt = load_checkpoint(tmp_path / "out")
    assert not ckpt.metadata["release"]["text_encoder"]["t5_from_release"]
    assert load_text_encoder(ckpt.text_encoder).encode("a person walks").tokens.shape[-1] == 32
