"""Preferences > "Get published MoLingo model", against a local HTTP server on 127.0.0.1.

Headless Blender has online access off; the tests that download stand in for a user who
allowed it (``molingo_get.online_access``) and point the operator at the local server.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

RELEASE_FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "store"
sys.path.insert(0, str(RELEASE_FIXTURES))  # molingo_release_fixtures
from addon_helpers import clear_scene, enabled, preferences  # noqa: E402
from molingo_release_fixtures import write_release, write_tokenizer  # noqa: E402

from engine.store.molingo_download import RELEASES  # noqa: E402

SAE_ITEM, MODEL_ITEM = RELEASES["263"]


class _Slow(http.server.SimpleHTTPRequestHandler):
    """Serves files in small pieces with pauses, so that a download can be cancelled."""

    delay = 0.0

    def log_message(self, *args: object) -> None:
        pass

    def copyfile(self, source, outputfile) -> None:
        while block := source.read(256 * 1024):
            outputfile.write(block)
            time.sleep(self.delay)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(mirror URL, release folders) with the two zips served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("molingo-addon")
    files = root / "www"
    files.mkdir()
    for dim in (263, 272):
        sae_item, model_item = RELEASES[str(dim)]
        sae, model = write_release(root / str(dim), sae_options={"name": sae_item.folder}, dim=dim)
        for folder, item in ((sae, sae_item), (model, model_item)):
            with zipfile.ZipFile(files / item.filename, "w") as archive:
                for path in sorted(folder.rglob("*")):
                    archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    handler = functools.partial(_Slow, directory=str(files))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "files": files,
           "meanstd": root / "263" / "meanstd", "meanstd272": root / "272" / "meanstd",
           "tokenizer": write_tokenizer(root / "tok")}  # fmt: skip
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def addon(addon_pkg):
    with enabled(addon_pkg):
        yield addon_pkg


@pytest.fixture
def online(addon, served, tmp_path, monkeypatch):
    """The add-on with online access allowed and its preferences filled in by the user."""
    from kinetext.addon import molingo_get

    monkeypatch.setattr(molingo_get, "online_access", lambda: True)
    monkeypatch.setattr(molingo_get, "destination", lambda rep: tmp_path / f"molingo-{rep}")
    prefs = preferences()
    prefs.molingo_mean_std = str(served["meanstd"])
    prefs.molingo_tokenizer = str(served["tokenizer"])
    prefs.checkpoint_source = "EMBEDDED"
    prefs.device = "CPU"
    clear_scene()
    return molingo_get


def test_refused_while_blender_is_offline(addon, served):
    assert bpy.app.online_access is False  # headless Blender starts offline
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.motion.download_molingo(mirror=served["url"])


def test_button_downloads_converts_and_selects_the_model(online, served, tmp_path):
    assert bpy.ops.motion.get_molingo(mirror=served["url"]) == {"FINISHED"}
    prefs = preferences()
    target = tmp_path / "molingo-263"
    assert prefs.checkpoint_source == "FOLDER" and Path(prefs.checkpoint_folder) == target
    from kinetext.engine.store.checkpoint import load_checkpoint

    records = load_checkpoint(target).metadata["downloads"]
    for record, item in zip(records, (SAE_ITEM, MODEL_ITEM), strict=True):
        data = (served["files"] / item.filename).read_bytes()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
    # the selected model generates through the panel's own Generate
    panel = bpy.context.scene.kinetext
    panel.prompt, panel.seconds, panel.steps, panel.variations = "a person sits", 1.0, 1, 1
    assert bpy.ops.motion.generate() == {"FINISHED"}
    assert [e.frames for e in panel.variation_list] == [20]


def test_cancel_mid_download_keeps_nothing(online, served, tmp_path, monkeypatch):
    from kinetext.addon import jobs

    monkeypatch.setattr(_Slow, "delay", 0.05)
    request = online.DownloadRequest(
        "the MoLingo 263 model", "263", str(tmp_path / "molingo-263"), str(served["meanstd"]),
        str(served["tokenizer"]), served["url"],
    )  # fmt: skip
    job = jobs.begin(request, online.download, online.LABEL)
    try:
        job.start()
        deadline = time.monotonic() + 30
        while job.progress <= 0.5 and time.monotonic() < deadline:  # into the second zip
            time.sleep(0.02)
        assert 0.5 < job.progress < 1.0
        job.cancel()  # what Esc and the panel's Cancel do
        assert job.wait(30)
    finally:
        jobs.end(job)
    assert job.cancelled and job.error is None
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no partial download


def test_missing_mean_std_is_reported_before_downloading(online):
    preferences().molingo_mean_std = ""
    with pytest.raises(RuntimeError, match="Mean/Std"):
        bpy.ops.motion.download_molingo()


def test_272_model_downloads_generates_at_30_fps_and_bakes(online, served):
    from addon_helpers import mixamo_rig

    preferences().molingo_mean_std = str(served["meanstd272"])
    assert bpy.ops.motion.get_molingo(representation="272", mirror=served["url"]) == {"FINISHED"}
    panel = bpy.context.scene.kinetext
    panel.prompt, panel.seconds, panel.steps, panel.variations = "a person jumps", 1.0, 1, 1
    assert bpy.ops.motion.generate() == {"FINISHED"}
    (entry,) = panel.variation_list
    assert (entry.frames, entry.fps) == (30, 30)
    rig = mixamo_rig()
    panel.target = rig
    assert bpy.ops.motion.bake(variation=0) == {"FINISHED"}
    assert rig.animation_data.action.name == "a person jumps"
    # the generated rotations give the forearm its twist: baking the joints alone differs
    from kinetext.addon import bake, results
    from kinetext.addon.operators import results_folder

    clip = results.get(entry.key, results_folder())
    assert clip.features.shape == (30, 272)
    with_twist = _forearm_keys(rig)
    bake.bake(bpy.context, armature=rig, joints=clip.joints, fps=30.0, foot_cleanup=False)
    joints_only = _forearm_keys(rig)
    assert with_twist.shape == joints_only.shape and not np.allclose(with_twist, joints_only)


def _forearm_keys(rig) -> np.ndarray:
    """(frames, 4) the left forearm's baked quaternion keys of the rig's current action."""
    action = rig.animation_data.action
    channelbag = action.layers[0].strips[0].channelbag(rig.animation_data.action_slot)
    path = 'pose.bones["mixamorig:LeftForeArm"].rotation_quaternion'
    curves = [channelbag.fcurves.find(path, index=i) for i in range(4)]
    return np.array([[k.co[1] for k in c.keyframe_points] for c in curves]).T
