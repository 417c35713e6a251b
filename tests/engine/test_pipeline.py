"""generate(): a tiny random checkpoint with both generators, shapes, seeds, lengths, errors."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_fixtures import save_tiny_checkpoint

from engine.errors import MotionError
from engine.motion.features import recover_from_ric
from engine.pipeline import DEFAULT_CHECKPOINT, generate, plan_length
from engine.store.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """A checkpoint folder of untrained tiny models: an autoencoder and both generators."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("pipeline") / "tiny")


def _run(checkpoint, generator="molingo", prompts=("a person walks", "a person jumps"), **kwargs):
    options = {"seconds": 2.0, "steps": 2, "checkpoint": checkpoint, "device": "cpu"}
    options.update(kwargs)
    return generate(list(prompts), generator=generator, **options)


@pytest.mark.parametrize("generator", ["molingo", "mlagen"])
def test_shapes_prompts_and_diagnostics(checkpoint, generator):
    motion = _run(checkpoint, generator, variations=2)
    assert motion.joints.shape == (4, 40, 22, 3) and motion.joints.dtype == np.float32
    assert motion.features.shape == (4, 40, 263) and motion.features.dtype == np.float32
    assert motion.fps == 20 and motion.seconds == 2.0 and len(motion) == 4
    assert motion.prompts == [
        "a person walks",
        "a person walks",
        "a person jumps",
        "a person jumps",
    ]
    np.testing.assert_allclose(motion.joints, recover_from_ric(motion.features), atol=1e-5)
    info = motion.diagnostics
    assert info["generator"] == generator and info["frames"] == 40 and info["length_note"] is None
    assert set(info["timings"]) == {"load", "encode", "sample", "decode", "clean"}
    if generator == "mlagen":
        assert len(info["sink_ratio"]) == 4 and all(0 < r <= 1 for r in info["sink_ratio"])
    else:
        assert info["sink_ratio"] is None


@pytest.mark.parametrize("generator", ["molingo", "mlagen"])
def test_same_seed_same_motion(checkpoint, generator):
    first = _run(checkpoint, generator, seed=3, variations=2)
    again = _run(checkpoint, generator, seed=3, variations=2)
    other = _run(checkpoint, generator, seed=4, variations=2)
    assert np.array_equal(first.features, again.features)
    assert np.array_equal(first.joints, again.joints)
    assert not np.array_equal(first.features, other.features)
    assert not np.array_equal(first.features[0], first.features[1])  # variations differ


def test_lengths_are_rounded_to_latent_steps_and_reported(checkpoint):
    motion = _run(checkpoint, seconds=2.1)  # 42 frames -> 10.5 steps -> 11 steps
    assert motion.num_frames == 44
    assert "2.10 s" in motion.diagnostics["length_note"]
    assert "2.20 s (44 frames)" in motion.diagnostics["length_note"]
    assert _run(checkpoint, seconds=None, frames=196).num_frames == 196


@pytest.mark.parametrize(
    ("seconds", "frames", "expected"),
    [(1.0, None, 20), (9.8, None, 196), (2.1, None, 44), (2.09, None, 40), (None, 50, 52),
     (None, 21, 20), (None, 195, 196), (None, None, 80)],
)  # fmt: skip
def test_plan_length(seconds, frames, expected):
    length = plan_length(seconds, frames, fps=20, down=4, max_frames=196)
    assert length.frames == expected and length.tokens == expected // 4
    assert (length.note is None) == (length.requested == expected)


@pytest.mark.parametrize("seconds", [9.8, 1.0, 2.2, 4.6])
def test_plan_length_takes_float32_seconds_as_whole_frames(seconds):
    """Blender's FloatProperty holds 32-bit floats: 9.8 arrives as 9.80000019 s, 196.0000038
    frames, and must be the longest length, met exactly, not an error or a note."""
    single = float(np.float32(seconds))
    assert single != seconds or seconds == 1.0  # really not the Python float
    length = plan_length(single, None, fps=20, down=4, max_frames=196)
    assert length.frames == round(seconds * 20) and length.requested == length.frames
    assert length.note is None
    with pytest.raises(MotionError, match="outside 1 to 9.8 seconds"):
        plan_length(float(np.float32(9.81)), None, fps=20, down=4, max_frames=196)


@pytest.mark.parametrize(
    ("seconds", "frames", "message"),
    [
        (0.5, None, r"0.5 s is outside 1 to 9.8 seconds \(20 to 196 frames at 20 fps\)"),
        (9.9, None, "outside 1 to 9.8 seconds"),
        (float("nan"), None, "outside"),
        ("3", None, "seconds must be a number, got '3'"),
        (2.0, 40, "not both"),
        (None, 19, "frames must be between 20 and 196, got 19"),
        (None, 197, "frames must be between 20 and 196"),
        (None, 20.5, "frames must be a whole number"),
    ],
)
def test_bad_lengths(checkpoint, seconds, frames, message):
    with pytest.raises(MotionError, match=message):
        _run(checkpoint, seconds=seconds, frames=frames)


def test_words_past_the_text_encoders_limit_are_named(checkpoint):
    """MiniLM reads 64 tokens: [CLS], 62 words of one token each, [SEP]; the rest is cut."""
    fits = " ".join(["walk"] * 62)
    motion = _run(checkpoint, prompts=[fits + " then jump high", fits, "a person waves"])
    (note,) = motion.diagnostics["prompt_notes"]
    assert note.startswith("prompt 1 is longer than the text encoder reads (64 tokens)")
    assert "its last 3 token(s), from 'then jump high' on, were left out" in note
    assert _run(checkpoint, prompts=[fits]).diagnostics["prompt_notes"] == []


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ("", "prompt 1 is empty"),
        (["a person walks", "kick\x07"], r"prompt 2 contains the control character U\+0007"),
        (["x" * 1001], "1001 characters long; the limit is 1000"),
        ([], "no prompt given"),
    ],
)
def test_bad_prompts_fail_before_loading_anything(tmp_path, prompts, message):
    with pytest.raises(MotionError, match=message):
        generate(prompts, checkpoint=tmp_path / "missing", device="cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variations": 0}, "variations must be between 1 and 16"),
        ({"guidance": 0.5}, "guidance must be between 1 and 20"),
        ({"steps": 0}, "steps must be between 1 and 1000"),
        ({"seed": -1}, "seed must be between 0"),
        ({"device": "quantum"}, "unknown device 'quantum'"),
        ({"generator": "gpt"}, r"no generator 'gpt'; it has \['molingo', 'mlagen'\]"),
    ],
)
def test_bad_settings(checkpoint, options, message):
    with pytest.raises(MotionError, match=message):
        _run(checkpoint, **options)


def test_without_a_checkpoint_says_how_to_pass_one(monkeypatch, tmp_path):
    import engine.pipeline as pipeline

    monkeypatch.setattr(pipeline, "DEFAULT_CHECKPOINT", tmp_path / "none")
    with pytest.raises(
        MotionError, match="no trained checkpoint ships.*--checkpoint PATH_OR_HUB_ID"
    ):
        generate("a person walks", device="cpu")


def test_the_shipped_checkpoint_generates_offline_with_its_attribution():
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert "Bandai Namco Research" in ckpt.attribution and "CC BY-NC 4.0" in ckpt.license
    assert sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir()) < 40e6
    motion = generate("a person waves with the right hand", seconds=2, steps=8, device="cpu")
    joints = motion.joints[0]  # (40, 22, 3)
    assert joints.shape == (40, 22, 3) and np.isfinite(joints).all()
    height = joints[:, 15, 1] - joints[:, :, 1].min(axis=1)  # head above the lowest joint
    assert 1.2 < np.median(height) < 2.0  # a standing person, not noise


def test_progress_and_loaded_checkpoints(checkpoint):
    calls = []
    loaded = load_checkpoint(checkpoint)
    motion = _run(
        loaded, "mlagen", steps=3, progress=lambda step, total: calls.append((step, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert np.array_equal(motion.features, _run(checkpoint, "mlagen", steps=3).features)


@pytest.mark.parametrize("generator", ["molingo", "mlagen"])
def test_sampling_options_reach_the_sampler(checkpoint, generator, monkeypatch):
    """A caller's FastOptions (e.g. the evaluation's compiled bf16 sampling) are what the
    sampler gets; without them, the module-wide default."""
    from engine import pipeline
    from engine.sampling import flow, mar
    from engine.sampling.graphs import FastOptions

    seen = []
    module, name = (mar, "sample_mar") if generator == "molingo" else (flow, "sample_flow")
    real = getattr(module, name)

    def spy(*args, fast=None, **kwargs):
        seen.append(fast)
        return real(*args, fast=fast, **kwargs)

    monkeypatch.setattr(module, name, spy)
    options = FastOptions(precision="bf16", compile=True)
    _run(checkpoint, generator, fast=options)
    monkeypatch.setattr(pipeline, "FAST_SAMPLING", FastOptions(precision="tf32"))
    _run(checkpoint, generator)
    assert seen == [options, FastOptions(precision="tf32")]


def _hub_cache(cache, repo_id: str, folder) -> str:
    """``folder``'s files laid out as huggingface_hub's cache holds a download at main."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_a_hub_checkpoint_offline_comes_from_the_cache_or_says_it_is_not_downloaded(
    checkpoint, tmp_path, monkeypatch
):
    """One resolver for every front end: ``offline`` (Blender's online access off) reads a
    Hub id from the local cache, at its commit, and never downloads."""
    import huggingface_hub
    from huggingface_hub import constants

    from engine.errors import NotDownloaded

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    real = huggingface_hub.snapshot_download

    def no_network(*args, **kwargs):
        assert kwargs["local_files_only"] is True  # offline: the cache only
        return real(*args, **{**kwargs, "cache_dir": tmp_path})

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    commit = _hub_cache(tmp_path, "someone/tiny-motion", checkpoint)
    motion = _run("someone/tiny-motion", "mlagen", offline=True, revision="main")
    source = motion.diagnostics["sources"]["checkpoint"]
    assert source == {"repo_id": "someone/tiny-motion", "revision": "main", "commit": commit}
    assert np.array_equal(motion.features, _run(checkpoint, "mlagen").features)
    with pytest.raises(NotDownloaded, match="someone/never-uploaded") as caught:
        _run("someone/never-uploaded", offline=True)
    assert caught.value.repo_id == "someone/never-uploaded"
