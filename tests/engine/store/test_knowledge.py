"""What a checkpoint learned: the shipped one warns about prompts unlike its training data
(command line and ``generate``), ``engine info`` lists its vocabulary and terms, and a
checkpoint without a description (or with a damaged one) says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline_fixtures import save_tiny_checkpoint

from engine.cli import main
from engine.errors import MotionError
from engine.pipeline import DEFAULT_CHECKPOINT, generate
from engine.store.checkpoint import load_checkpoint
from engine.store.knowledge import (
    KNOWLEDGE_JSON,
    KNOWLEDGE_WEIGHTS,
    build_knowledge,
    read_knowledge,
    write_knowledge,
)
from engine.text_encoder import TextEncoderConfig, load_text_encoder

FAR = "a person sits down on a chair"
NEAR = "someone waves goodbye with the right hand"


def _generate_cli(prompt: str, out: Path, *extra: str) -> list[str]:
    return ["generate", prompt, "--seconds", "1", "--steps", "2", "--device", "cpu",
            "--out", str(out), *extra]  # fmt: skip


def test_generate_warns_on_the_command_line_only_for_prompts_it_never_learned(tmp_path, capsys):
    assert main(_generate_cli(FAR, tmp_path / "sit.npy")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1  # one line
    assert warnings[0].startswith(
        f"warning: this checkpoint was not trained on anything like '{FAR}'; nearest: '"
    )
    assert main(_generate_cli(NEAR, tmp_path / "wave.npy")) == 0
    assert "warning" not in capsys.readouterr().err


def test_generate_reports_each_prompts_nearest_training_captions():
    motion = generate([FAR, NEAR], frames=20, steps=1, device="cpu", variations=2)
    far, near = motion.diagnostics["knowledge"]
    assert (far["prompt"], near["prompt"]) == (FAR, NEAR)
    assert not far["known"] and near["known"]
    assert far["similarity"] < 0.5 <= near["similarity"]
    assert len(near["nearest"]) == 3
    assert "wave" in near["nearest"][0]["caption"]
    scores = [n["similarity"] for n in near["nearest"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == near["similarity"]


def test_info_lists_what_the_shipped_checkpoint_knows(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for expected in ("vocabulary (43 actions", "bow", "wave right hand", "run (",
                     "cartwheel", "zombie walk",
                     "bandai: 2461 clips of its train split (the whole data set: 3.86 h)",
                     "deepmimic: 46 clips", "cmu: 49 clips", "CC BY-NC 4.0", "MIT licence",
                     "mocap.cs.cmu.edu", "Bandai Namco Research Inc.",
                     "mlagen: guidance 4.0, steps 25",
                     "molingo: guidance 5.5, steps 32, ar_steps 4", "M parameters",
                     "description of the training data"):  # fmt: skip
        assert expected in out, expected
    size = sum((DEFAULT_CHECKPOINT / n).stat().st_size for n in (KNOWLEDGE_JSON, KNOWLEDGE_WEIGHTS))
    assert size < 300 * 1024  # compact: a few hundred KB at most


def test_info_checks_prompts_and_speaks_json(capsys):
    assert main(["info", "--prompt", FAR, "--prompt", NEAR, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [p["known"] for p in info["prompts"]] == [False, True]
    assert info["knowledge"]["vocabulary"]["bow"] == 12
    assert info["sampling_defaults"]["mlagen"]["steps"] == 25
    assert main(["info", "--prompt", FAR]) == 0
    assert f"not trained on anything like '{FAR}'" in capsys.readouterr().out


def test_a_checkpoint_without_a_description_says_unknown_and_never_warns(tmp_path, capsys):
    folder = save_tiny_checkpoint(tmp_path / "tiny")
    assert load_checkpoint(folder).knowledge is None
    assert main(["info", str(folder), "--prompt", FAR]) == 0
    out = capsys.readouterr().out
    assert "vocabulary: unknown" in out
    assert "unknown: this checkpoint carries no description of its training data" in out
    assert main(_generate_cli(FAR, tmp_path / "sit.npy", "--checkpoint", str(folder))) == 0
    assert "warning" not in capsys.readouterr().err
    motion = generate(FAR, frames=20, steps=1, device="cpu", checkpoint=folder)
    assert motion.diagnostics["knowledge"] is None


def _described(tmp_path: Path, captions: list[str]) -> Path:
    """A copy of the tiny checkpoint described by ``captions``, encoded by MiniLM."""
    folder = save_tiny_checkpoint(tmp_path / "described")
    encoder = load_text_encoder(TextEncoderConfig())
    knowledge = build_knowledge(
        captions, encoder.pooled_many(captions).numpy(), vocabulary={"walk": 3, "kick": 1},
        datasets=[{"name": "mine", "split": "train", "clips": 4}],
        encoder=TextEncoderConfig().to_dict(), max_captions=3,
    )  # fmt: skip
    write_knowledge(folder, knowledge)
    return folder


CAPTIONS = ["a person walks forward", "someone walks ahead", "a man walks straight on",
            "a person kicks with the left leg", "a person walks forward slowly"]  # fmt: skip


def test_a_description_keeps_rare_actions_and_round_trips(tmp_path):
    folder = _described(tmp_path, CAPTIONS)
    knowledge = load_checkpoint(folder).knowledge
    assert len(knowledge.captions) == 3 and knowledge.total_captions == 5
    assert "a person kicks with the left leg" in knowledge.captions  # the outlier is kept
    assert knowledge.vocabulary == {"walk": 3, "kick": 1}
    encoder = load_text_encoder(TextEncoderConfig())
    pooled = encoder.encode(knowledge.captions).pooled.numpy()
    scores = [m.similarity for m in knowledge.match(knowledge.captions, pooled)]
    np.testing.assert_allclose(scores, 1.0, atol=0.01)  # int8 storage loses ~1e-3


def test_a_damaged_description_is_refused_naming_the_file_and_fix(tmp_path):
    folder = _described(tmp_path, CAPTIONS)
    weights = folder / KNOWLEDGE_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(MotionError, match="does not match knowledge.json.*describe"):
        load_checkpoint(folder)
    weights.unlink()
    with pytest.raises(MotionError, match="knowledge.safetensors: missing"):
        read_knowledge(folder)


def test_a_description_from_another_text_encoder_is_refused(tmp_path):
    folder = _described(tmp_path, CAPTIONS)
    config = json.loads((folder / "config.json").read_text())
    config["text_encoder"]["max_tokens"] = 32
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MotionError, match="another|encoded by"):
        load_checkpoint(folder)
