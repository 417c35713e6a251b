"""evaluate(): end to end on a tiny data set, a tiny random checkpoint and tiny evaluators."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from engine.edit.cleanup import Cleanup
from engine.errors import MotionError
from engine.models.autoencoder import AutoencoderConfig, MotionAutoencoder
from engine.models.mlagen import MLAGen, MLAGenConfig
from engine.motion import Motion
from engine.motion.features import Normalizer
from engine.sampling.graphs import FastOptions
from engine.store.checkpoint import save_checkpoint
from engine.text_encoder import TextEncoderConfig
from training.data import MotionDataset, make_loader, set_epoch
from training.evaluation import generation, metrics
from training.evaluation.evaluator import (
    EvaluatorConfig,
    TextMotionEvaluator,
    load_evaluator,
    save_evaluator,
)
from training.evaluation.generation import parse_sampling
from training.evaluation.run import Protocol, evaluate, main_evaluate, parse_cleanup

TEXT_DIM = 384  # the bundled MiniLM
CLIPS = 8  # per split: two batches of 4
SMALL = Protocol(mm_batches=1, mm_repeats=4, mm_pairs=2, diversity_pairs=300)


def _caption(number: int) -> str:
    return f"a person does move number {number}"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """HumanML3D layout: clip k's features carry a one-hot of k in dims 0..15 on every frame.

    Clips have 49 or 65 frames (crops of 48 or 64): two lengths, so few generate() calls."""
    root = tmp_path_factory.mktemp("hml")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    rng = np.random.default_rng(0)
    for k in range(2 * CLIPS):
        features = rng.normal(0, 0.1, size=(49 + 16 * (k % 2), 263)).astype(np.float32)
        features[:, : 2 * CLIPS] = 0.0
        features[:, k] = 1.0
        np.save(root / "new_joint_vecs" / f"{k:06d}.npy", features)
        (root / "texts" / f"{k:06d}.txt").write_text(f"{_caption(k)}#a/DET#0.0#0.0\n")
    ids = [f"{k:06d}" for k in range(2 * CLIPS)]
    (root / "test.txt").write_text("\n".join(ids[:CLIPS]) + "\n")
    (root / "train.txt").write_text("\n".join(ids[CLIPS:]) + "\n")
    Normalizer(np.zeros(263), np.ones(263)).save(root)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    mlagen = MLAGen(MLAGenConfig.tiny().replace(text_dim=TEXT_DIM))
    torch.nn.init.normal_(mlagen.final.weight, std=0.1)  # untrained: non-zero velocity
    models = {
        "autoencoder": MotionAutoencoder(AutoencoderConfig.tiny().replace(text_dim=TEXT_DIM)),
        "mlagen": mlagen,
    }
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "tiny", models, text_encoder=TextEncoderConfig(),
        normalizer_mean=np.zeros(263), normalizer_std=np.ones(263), fps=20,
        license="random weights", attribution="kinetext tests",
    )  # fmt: skip


@pytest.fixture(scope="module")
def evaluator_path(tmp_path_factory):
    torch.manual_seed(1)
    model = TextMotionEvaluator(EvaluatorConfig.tiny().replace(text_dim=TEXT_DIM))
    return save_evaluator(
        tmp_path_factory.mktemp("eval") / "evaluator", model, text_encoder=TextEncoderConfig(),
        normalizer=Normalizer(np.zeros(263), np.ones(263)), license="random weights",
        attribution="kinetext tests",
    )  # fmt: skip


class Oracle:
    """An evaluator that reads the clip number off both captions and motions."""

    name = "oracle"
    normalizer = Normalizer(np.zeros(263), np.ones(263))

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(captions), 2 * CLIPS))
        for row, caption in enumerate(captions):
            out[row, int(re.search(r"\d+$", caption).group())] = 1.0
        return out

    def embed_motion(self, features, lengths: Sequence[int]) -> np.ndarray:
        x = np.asarray(features)[..., : 2 * CLIPS]
        return np.stack([x[row, :n].mean(0) for row, n in enumerate(lengths)])


def test_real_rows_with_an_oracle_evaluator(data_root):
    report = evaluate("real", data_root, Oracle(), replications=3, batch_size=4, protocol=SMALL)
    real = report.rows["real"]
    assert set(report.rows) == {"real"}
    for key in ("top1", "top2", "top3", "clip_score"):
        assert real[key].mean == pytest.approx(1.0) and real[key].half_width == pytest.approx(0)
    assert real["matching"].mean == pytest.approx(0.0, abs=1e-6)
    # Distinct one-hots: any two differ by sqrt(2); a pair may draw one clip twice.
    assert 0 < real["diversity"].mean <= np.sqrt(2) + 1e-9
    # n = 8 test one-hots in dims 0..7, train ones in 8..15: the means differ by 1/n in 2n
    # dims (2/n), each covariance (I/n - 1/n^2) n/(n-1) has trace 1, sqrt(C1 C2) = 0.
    assert real["fid"].mean == pytest.approx(2.0 + 2.0 / CLIPS, rel=1e-6)
    assert real["mmodality"] is None and real["sink_ratio"] is None


def test_end_to_end_with_generation(data_root, checkpoint, evaluator_path, tmp_path):
    def run():
        return evaluate(
            checkpoint, data_root, evaluator_path, replications=2, batch_size=4, steps=2,
            device="cpu", seed=3, protocol=SMALL,
        )  # fmt: skip

    report = run()
    assert run().values == report.values  # same seed, same numbers (MModality included)
    gen, real = report.rows["generated"], report.rows["real"]
    assert gen["top1"].count == 2 and report.settings["items_per_replication"] == 8
    assert gen["top1"].mean <= gen["top2"].mean <= gen["top3"].mean <= 1.0
    assert 0.0 <= gen["matching"].mean <= 2.0  # unit vectors
    assert gen["fid"].mean >= 0 and gen["mmodality"].mean >= 0
    assert 0.0 < gen["sink_ratio"].mean <= 1.0  # MLA-Gen reports it
    assert real["mmodality"] is None
    assert {"generation", "embedding", "scoring"} <= set(report.settings["phase_seconds"])
    # The real rows do not depend on generation: the same as a "real" run with that seed.
    alone = evaluate("real", data_root, evaluator_path, replications=2, batch_size=4,
                     device="cpu", seed=3, protocol=SMALL)  # fmt: skip
    assert alone.values["real"] == report.values["real"]

    report.save(tmp_path / "r.json", tmp_path / "r.md")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"]["generated"]["fid"]["mean"] == pytest.approx(gen["fid"].mean)
    assert len(data["replications"]["generated"]) == 2
    table = (tmp_path / "r.md").read_text().splitlines()
    assert table[0].startswith("| Motions | FID ↓ | R@1 ↑") and len(table[2].split("|")) == 12
    assert table[3].startswith("| Generated |") and "±" in table[3]


def test_same_seed_same_numbers_and_command_line(data_root, checkpoint, evaluator_path, tmp_path):
    args = [str(checkpoint), "--data", str(data_root), "--evaluator", str(evaluator_path),
            "--replications", "1", "--batch-size", "4", "--steps", "2", "--device", "cpu",
            "--no-mm", "--out", str(tmp_path / "a.json"),
            "--markdown", str(tmp_path / "a.md")]  # fmt: skip
    assert main_evaluate(args) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    assert main_evaluate(args) == 0
    again = json.loads((tmp_path / "a.json").read_text())
    assert first["replications"] == again["replications"]
    assert first["rows"]["generated"]["mmodality"] is None
    assert main_evaluate(["missing", "--data", str(data_root), "--evaluator", "nowhere"]) == 2


def test_without_a_train_split_the_real_row_has_no_fid(data_root, tmp_path):
    import shutil

    copy = shutil.copytree(data_root, tmp_path / "data")
    (copy / "train.txt").unlink()
    report = evaluate("real", copy, Oracle(), replications=1, batch_size=4, protocol=SMALL)
    assert report.rows["real"]["fid"] is None and report.rows["real"]["top1"].mean == 1.0
    assert "| Real (test; FID train vs test) | - |" in report.to_markdown()


def _draws(data_root, replications: int, batch_size: int, seed: int, normalizer=None):
    """Each replication's batches as the protocol's loader draws them."""
    test = MotionDataset(data_root, "test", normalizer=normalizer, seed=seed)
    loader = make_loader(test, batch_size, shuffle=True, seed=seed, drop_last=True)
    out = []
    for rep in range(replications):
        set_epoch(loader, rep)
        out.append(list(loader))
    return out


def test_real_rows_score_the_loaders_draws(data_root, evaluator_path):
    embedder = load_evaluator(evaluator_path)
    report = evaluate("real", data_root, embedder, replications=2, batch_size=4, seed=5,
                      protocol=SMALL)  # fmt: skip
    for rep, batches in enumerate(_draws(data_root, 2, 4, 5, embedder.normalizer)):
        text = [embedder.embed_text(b.captions) for b in batches]
        motion = [embedder.embed_motion(b.features, b.lengths.tolist()) for b in batches]
        hits = sum(metrics.r_precision_hits(metrics.distance_matrix(t, m))
                   for t, m in zip(text, motion, strict=True))  # fmt: skip
        got = report.values["real"][rep]
        assert [got["top1"], got["top2"], got["top3"]] == pytest.approx(hits / 8, abs=1e-12)
        all_text, all_motion = np.concatenate(text), np.concatenate(motion)
        assert got["matching"] == pytest.approx(metrics.matching_score(all_text, all_motion))
        assert got["clip_score"] == pytest.approx(metrics.clip_score(all_text, all_motion))


def _number(caption: str) -> int:
    return int(re.search(r"\d+$", caption).group())


def test_generation_is_batched_across_replications(data_root, checkpoint, monkeypatch):
    """A stand-in generator writes each caption's number as a one-hot scaled by seeded noise:
    the oracle then shows which caption every generated clip was paired with."""
    calls: list[tuple[list[str], int]] = []

    def fake_generate(prompts, *, frames, seed, fast, **_):
        assert fast == options  # every call samples as the evaluation was told to
        calls.append((list(prompts), frames))
        scale = 1.0 + 0.2 * np.random.default_rng(seed).random(len(prompts))  # (n,)
        features = np.zeros((len(prompts), frames, 263), np.float32)
        for row, prompt in enumerate(prompts):
            features[row, :, _number(prompt)] = scale[row]
        return Motion(np.zeros((len(prompts), frames, 22, 3), np.float32), features, 20,
                      list(prompts), {"sink_ratio": None})  # fmt: skip

    monkeypatch.setattr(generation, "generate", fake_generate)
    per_call, reps = 10, 3  # 12 clips per length: 2 calls (one per replication would be 3)
    protocol = Protocol(mm_batches=1, mm_repeats=4, mm_pairs=2, prompts_per_call=per_call)
    options = FastOptions(precision="bf16", compile=True)
    report = evaluate(checkpoint, data_root, Oracle(), replications=reps, batch_size=4, seed=2,
                      device="cpu", protocol=protocol, fast=options)  # fmt: skip
    assert report.settings["fast"] == {"enabled": True, "graphs": True, "precision": "bf16",
                                       "compile": True}  # fmt: skip

    main, mm = Counter(), Counter()
    for batches in _draws(data_root, reps, 4, 2):
        for k, b in enumerate(batches):
            pairs = [(c, int(n)) for c, n in zip(b.captions, b.lengths, strict=True)]
            main.update(pairs)
            mm.update(pairs if k == 0 else [])
    made = Counter((p, frames) for prompts, frames in calls for p in prompts)
    assert made == main + Counter({k: 4 * v for k, v in mm.items()})  # exactly the draws
    for length in {n for _, n in main}:  # few calls: clips of all replications together
        want = sum(v for (_, n), v in main.items() if n == length)
        want_mm = 4 * sum(v for (_, n), v in mm.items() if n == length)
        calls_here = [len(p) for p, n in calls if n == length]
        assert max(calls_here) <= per_call
        assert len(calls_here) <= math.ceil(want / per_call) + math.ceil(want_mm / per_call)
    assert report.settings["generate_calls"] == len(calls)
    gen = report.rows["generated"]
    assert gen["top1"].mean == 1.0 and gen["top1"].count == reps  # every clip its own caption
    assert 0.0 < gen["matching"].mean < 0.2  # |1 - scale|
    assert gen["mmodality"].count == reps and gen["mmodality"].mean > 0.0
    assert gen["sink_ratio"] is None
    alone = evaluate("real", data_root, Oracle(), replications=reps, batch_size=4, seed=2,
                     protocol=protocol)  # fmt: skip
    assert alone.values["real"] == report.values["real"]


def test_sampling_overrides(data_root, checkpoint, evaluator_path, tmp_path, capsys):
    assert parse_sampling(["steps=25", "method=heun", "guidance=4.5"]) == {
        "steps": 25, "method": "heun", "guidance": 4.5,
    }  # fmt: skip
    with pytest.raises(MotionError, match="KEY=VALUE"):
        parse_sampling(["steps"])
    with pytest.raises(MotionError, match="allowed are guidance, method, mode, steps"):
        evaluate(
            checkpoint,
            data_root,
            Oracle(),
            replications=1,
            batch_size=4,
            device="cpu",
            sampling={"ar_steps": 8},
        )  # MoLingo's setting; this checkpoint is MLA-Gen
    with pytest.raises(MotionError, match="steps='two' should be of type int"):
        evaluate(checkpoint, data_root, Oracle(), replications=1, batch_size=4, device="cpu",
                 sampling={"steps": "two"})  # fmt: skip

    base = [
        str(checkpoint),
        "--data",
        str(data_root),
        "--evaluator",
        str(evaluator_path),
        "--replications",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--no-mm",
    ]
    assert main_evaluate([*base, "--sampling", "bogus=1"]) == 2
    assert "allowed are guidance, method, mode, steps" in capsys.readouterr().err

    def numbers(*extra: str) -> list:
        assert main_evaluate([*base, "--out", str(tmp_path / "r.json"), *extra]) == 0
        return json.loads((tmp_path / "r.json").read_text())["replications"]["generated"]

    # --sampling steps=2 reaches the sampler as --steps 2 does (else: the default 100 steps).
    via_sampling = numbers("--sampling", "steps=2", "--sampling", "method=euler")
    assert via_sampling == numbers("--steps", "2")


def test_cleanup_settings_from_the_command_line():
    """``--cleanup KEY=VALUE`` reads every on/off setting as a switch ("false" is off, not a
    true string) and numbers as numbers."""
    chosen = parse_cleanup(["pin_hold=false", "clearance=0.05", "ground=off", "pin_blend=2"])
    assert chosen == Cleanup(pin_hold=False, clearance=0.05, ground=False, pin_blend=2)
    assert parse_cleanup(["pin_hold=true"]).pin_hold is True
    with pytest.raises(MotionError, match="pin_hold must be true or false"):
        parse_cleanup(["pin_hold=maybe"])
    with pytest.raises(MotionError, match="clearance must be 0 to 0.2 metres"):
        parse_cleanup(["clearance=5"])
