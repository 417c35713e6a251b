"""SMPL fitting and AMASS export on a tiny made-up SMPL model (no real model files needed)."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from smpl_fixtures import PER_JOINT, known_motion, make_tiny_smpl, make_tiny_smplx_file

from engine.errors import MotionError


def test_fit_recovers_known_parameters():
    pytest.importorskip("smplx")
    from engine.body.smpl_fit import FitOptions, fit_smpl, load_body_model

    model = make_tiny_smpl()
    body = load_body_model(model)
    joints, betas, root, trans = known_motion(body, frames=12)
    fit = fit_smpl(joints, model, device="cpu", options=FitOptions(chunk=8))
    assert fit.poses.shape == (12, 72) and fit.trans.shape == (12, 3)
    assert fit.model_type == "smpl" and fit.gender == "neutral"
    assert fit.joint_error_m < 0.01
    np.testing.assert_allclose(fit.betas, betas, atol=0.15)
    np.testing.assert_allclose(fit.poses[:, :3], root, atol=0.05)  # the pelvis fixes it
    np.testing.assert_allclose(fit.trans, trans, atol=0.01)
    assert np.all(fit.poses[:, 66:] == 0)  # hands left at rest

    # The returned parameters, run through the model, land on the joints they were fitted to.
    with torch.no_grad():
        poses = torch.as_tensor(fit.poses)
        out = body(betas=torch.as_tensor(fit.betas)[None].expand(12, -1),
                   global_orient=poses[:, :3], body_pose=poses[:, 3:],
                   transl=torch.as_tensor(fit.trans))  # fmt: skip
    error = np.linalg.norm(out.joints[:, :22].numpy() - joints, axis=-1).mean()
    assert error == pytest.approx(fit.joint_error_m, abs=1e-4)


def test_export_round_trips(tmp_path):
    from engine.body.smpl_fit import SMPLFit
    from engine.io.amass import load_amass, save_amass

    rng = np.random.default_rng(0)
    fit = SMPLFit(
        poses=rng.normal(size=(5, 72)).astype(np.float32),
        trans=rng.normal(size=(5, 3)).astype(np.float32),
        betas=rng.normal(size=10).astype(np.float32), joint_error_m=0.004,
        model_type="smpl", gender="female", fps=20.0,
    )  # fmt: skip
    path = save_amass(tmp_path / "clip.npz", fit)
    with np.load(path, allow_pickle=False) as data:
        assert {"poses", "trans", "betas", "mocap_framerate", "gender"} <= set(data.files)
        assert str(data["gender"]) == "female" and float(data["mocap_framerate"]) == 20.0
    back = load_amass(path)
    np.testing.assert_array_equal(back.poses, fit.poses)
    np.testing.assert_array_equal(back.trans, fit.trans)
    np.testing.assert_array_equal(back.betas, fit.betas)
    assert (back.model_type, back.gender, back.fps) == ("smpl", "female", 20.0)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.npz"]  # no temporary left behind


def test_without_smplx_says_how_to_install(monkeypatch):
    from engine.body.smpl_fit import fit_smpl

    real_import = builtins.__import__

    def no_smplx(name, *args, **kwargs):
        if name == "smplx" or name.startswith("smplx."):
            raise ImportError("No module named 'smplx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_smplx)
    with pytest.raises(MotionError, match="pip install smplx") as info:
        fit_smpl(np.zeros((3, 22, 3)), "/nowhere", device="cpu")
    assert "your own" in str(info.value)


def test_missing_model_files_name_the_folder(tmp_path):
    pytest.importorskip("smplx")
    from engine.body.smpl_fit import fit_smpl

    with pytest.raises(MotionError, match="SMPL_NEUTRAL") as info:
        fit_smpl(np.zeros((3, 22, 3)), tmp_path, device="cpu")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(MotionError, match="not found") as info:
        fit_smpl(np.zeros((3, 22, 3)), tmp_path / "absent", device="cpu")
    assert str(tmp_path / "absent") in str(info.value)


def test_cli_fits_and_exports(tmp_path):
    pytest.importorskip("smplx")
    from engine.body.smpl_fit import load_body_model
    from engine.cli import main
    from engine.io.amass import load_amass

    model = make_tiny_smpl()
    fields = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **{k: getattr(model, k) for k in fields})
    joints, *_ = known_motion(load_body_model(model), frames=4)
    np.save(tmp_path / "clip.npy", joints)
    out = tmp_path / "clip_smpl.npz"
    argv = ["fit-smpl", str(tmp_path / "clip.npy"), str(out), "--model-folder", str(tmp_path),
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert load_amass(out).poses.shape == (4, 72)
    assert main(["fit-smpl", str(tmp_path / "clip.npy"), str(out), "--model-folder",
                 str(tmp_path / "none")]) == 2  # fmt: skip


def test_smplx_fit_from_a_model_folder(tmp_path, monkeypatch):
    smplx = pytest.importorskip("smplx")
    from engine.body.smpl_fit import fit_smpl, load_body_model

    make_tiny_smplx_file(tmp_path)
    # SMPL-X always adds joints at real-model vertex ids; point them into the small mesh.
    small = {
        k: min(int(v), 55 * PER_JOINT - 1) for k, v in smplx.vertex_ids.vertex_ids["smplx"].items()
    }
    monkeypatch.setitem(smplx.vertex_ids.vertex_ids, "smplx", small)
    body = load_body_model(tmp_path, "smplx")
    joints, betas, root, trans = known_motion(body, frames=6)
    fit = fit_smpl(joints, tmp_path, "smplx", device="cpu")
    assert fit.poses.shape == (6, 165) and fit.model_type == "smplx"
    assert np.all(fit.poses[:, 66:] == 0)  # jaw, eyes and fingers stay at rest
    assert fit.joint_error_m < 0.01
    np.testing.assert_allclose(fit.trans, trans, atol=0.01)
