"""What travels between Blender and the engine process: requests (a folder stays a folder,
a Hub id a string) and generated motion (arrays bit for bit, prompts, diagnostics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bpy")


@pytest.fixture(scope="module")
def protocol(addon_pkg):
    from kinetext.addon import engine_process

    return engine_process


@pytest.mark.parametrize("checkpoint", [Path("/models/owner/name"), "owner/name", None])
def test_a_request_crosses_as_json_and_keeps_what_its_checkpoint_is(protocol, checkpoint):
    from kinetext.addon.jobs import Request

    request = Request("a person walks", 9.8, 3, 2, 4.5, None, "molingo", checkpoint, "v1",
                      "cpu", offline=True)  # fmt: skip
    crossed = protocol.decode_request(json.loads(json.dumps(protocol.encode_request(request))))
    assert crossed == request and type(crossed.checkpoint) is type(checkpoint)


def test_motion_crosses_unchanged(protocol, tmp_path):
    from kinetext.engine.motion import Motion

    rng = np.random.default_rng(0)
    motion = Motion(
        joints=rng.normal(size=(2, 8, 22, 3)).astype(np.float32),
        features=rng.normal(size=(2, 8, 263)).astype(np.float32),
        fps=20, prompts=["a person waves", "a person waves"],
        diagnostics={"seed": 3, "length_note": None, "prompt_notes": ["x"], "timings": {"a": 1.5}},
    )  # fmt: skip
    protocol.save_motion(motion, tmp_path / "out.npz")
    back = protocol.load_motion(tmp_path / "out.npz")
    np.testing.assert_array_equal(back.joints, motion.joints)
    np.testing.assert_array_equal(back.features, motion.features)
    assert (back.fps, back.prompts, back.diagnostics) == (20, motion.prompts, motion.diagnostics)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no partial file left
