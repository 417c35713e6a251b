"""Typed sampling settings per generator and the request limits, in one torch-free module
that the CLI, the add-on and the pipeline all read."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.errors import MotionError
from engine.generators import (
    GENERATORS,
    MAX_STEPS,
    MLAGenSettings,
    MoLingoSettings,
    sampling_settings,
    settings_class,
)


def test_the_limits_and_the_cli_parser_load_without_torch():
    script = (
        "import sys, engine.generators, engine.cli\n"
        "engine.cli.build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_each_generator_has_its_papers_defaults():
    assert GENERATORS == ("molingo", "mlagen")
    assert settings_class("molingo")().record() == {
        "guidance": 5.5, "steps": 32, "ar_steps": 16, "method": "euler",
    }  # fmt: skip
    assert settings_class("mlagen")().record() == {
        "guidance": 4.0, "steps": 100, "mode": "sink_ctrl", "method": "euler",
    }  # fmt: skip
    with pytest.raises(MotionError, match="unknown generator 'gpt'"):
        settings_class("gpt")


def test_layers_override_in_order_and_a_call_wins():
    checkpoint = {"steps": 25, "method": "heun"}
    evaluation = {"mode": "cfg", "guidance": 3}
    settings = sampling_settings("mlagen", checkpoint, evaluation, steps=np.int64(7))
    assert settings == MLAGenSettings(guidance=3.0, steps=7, mode="cfg", method="heun")
    assert isinstance(settings.guidance, float) and isinstance(settings.steps, int)
    release = {"ar_steps": 4, "method": "stochastic", "acc": 3}  # a converted release's
    assert sampling_settings("molingo", release) == MoLingoSettings(
        ar_steps=4, method="stochastic", acc=3
    )


@pytest.mark.parametrize(
    ("layer", "call", "message"),
    [
        ({"stepz": 3}, {}, r"unknown MLAGenSettings keys \['stepz'\]"),
        ({"mode": 2}, {}, "mode: expected str, got 2"),
        ({}, {"guidance": 0.5}, "guidance must be between 1 and 20, got 0.5"),
        ({}, {"guidance": float("nan")}, "guidance must be between 1 and 20"),
        ({"steps": 2.5}, {}, "steps must be a whole number"),
        ({}, {"steps": MAX_STEPS + 1}, f"steps must be between 1 and {MAX_STEPS}"),
    ],
)
def test_bad_settings_name_what_is_wrong(layer, call, message):
    with pytest.raises(MotionError, match=message):
        sampling_settings("mlagen", layer, **call)


def test_the_cli_offers_the_engines_generators_and_records_typed_settings(tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "clip.npy"
    argv = ["generate", "a person walks", "--seconds", "1", "--steps", "2", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*argv, "--generator", "gpt"])
    error = capsys.readouterr().err
    assert "invalid choice: 'gpt'" in error and all(name in error for name in GENERATORS)
    clips = {}
    for name in GENERATORS:
        assert main([*argv, "--generator", name, "--guidance", "2"]) == 0
        assert f"({name}, seed 0, cpu)" in capsys.readouterr().out
        clips[name] = np.load(out)
        assert clips[name].shape == (1, 20, 22, 3)
    assert not np.allclose(*clips.values())  # each name ran its own generator
