"""SMPL fitting and AMASS export on a tiny made-up SMPL model (no real model files needed)."""

from __future__ import annotations

import builtins
import types

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.skeleton import CANONICAL_OFFSETS, PARENTS

SMPL_PARENTS = (*PARENTS, 20, 21)  # SMPL's 24 joints: the 22 plus two hands
PER_JOINT = 10  # vertices around each joint


def _rest_joints() -> np.ndarray:
    """(24, 3) rest joints from the canonical offsets; the hands 8 cm past the wrists."""
    offsets = np.concatenate([CANONICAL_OFFSETS, CANONICAL_OFFSETS[[20, 21]] * 0.3])
    joints = np.zeros((24, 3))
    for j in range(1, 24):
        joints[j] = joints[SMPL_PARENTS[j]] + offsets[j]
    return joints + np.array([0.0, 0.9, 0.0])


def make_tiny_smpl(seed: int = 0) -> types.SimpleNamespace:
    """A valid SMPL data structure: 10 vertices per joint, J_regressor = their mean.

    shapedirs move whole clusters (so betas change bone lengths), posedirs are small noise,
    each vertex is skinned to its own joint.
    """
    rng = np.random.default_rng(seed)
    joints = _rest_joints()
    cluster = np.repeat(np.arange(24), PER_JOINT)  # (V,) the joint of each vertex
    jitter = rng.normal(0, 0.02, (24, PER_JOINT, 3))
    jitter -= jitter.mean(axis=1, keepdims=True)  # cluster means are the joints exactly
    v_template = joints[cluster] + jitter.reshape(-1, 3)
    shapedirs = rng.normal(0, 0.02, (24, 3, 10))[cluster]  # whole clusters move together
    shapedirs = shapedirs + rng.normal(0, 0.002, shapedirs.shape)
    regressor = np.zeros((24, 24 * PER_JOINT))
    regressor[cluster, np.arange(24 * PER_JOINT)] = 1.0 / PER_JOINT
    kintree = np.array([[-1 if p < 0 else p for p in SMPL_PARENTS], list(range(24))])
    return types.SimpleNamespace(
        v_template=v_template, shapedirs=shapedirs,
        posedirs=rng.normal(0, 1e-3, (24 * PER_JOINT, 3, 207)), J_regressor=regressor,
        weights=np.eye(24)[cluster], kintree_table=kintree.astype(np.int64),
        f=rng.integers(0, 24 * PER_JOINT, (100, 3)),
    )  # fmt: skip


def _known_motion(body, frames: int, seed: int = 1):
    """Joints (T, 22, 3) of known smooth parameters (knees bent the natural way)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    width = 3 * body.NUM_BODY_JOINTS  # 69 for SMPL, 63 for SMPL-X
    pose = rng.normal(0, 0.25, (1, width)) + 0.3 * np.sin(4 * t + rng.uniform(0, 6, (1, width)))
    pose[:, 9:15] = np.abs(pose[:, 9:15])  # knees: body_pose joints 3, 4 bend about +x
    pose[:, 63:] = 0.0  # SMPL hands: not fitted
    root = np.array([[0.2, 1.0, -0.1]]) + 0.2 * t
    trans = np.array([[0.3, 0.0, -0.5]]) + np.array([[0.5, 0.05, 1.0]]) * t
    betas = rng.normal(0, 1.0, (1, 10))
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    rest = {}
    if hasattr(body, "jaw_pose"):  # SMPL-X: the face and hands at rest for every frame
        zero = torch.zeros(frames, 3)
        rest = dict(jaw_pose=zero, leye_pose=zero, reye_pose=zero, expression=torch.zeros(
            frames, 10), left_hand_pose=torch.zeros(frames, 45), right_hand_pose=torch.zeros(
            frames, 45))  # fmt: skip
    with torch.no_grad():
        out = body(betas=as_t(betas).expand(frames, -1), body_pose=as_t(pose),
                   global_orient=as_t(root), transl=as_t(trans), **rest)  # fmt: skip
    return out.joints[:, :22].numpy().astype(np.float64), betas[0], root, trans


def test_fit_recovers_known_parameters():
    pytest.importorskip("smplx")
    from engine.smpl_fit import FitOptions, fit_smpl, load_body_model

    model = make_tiny_smpl()
    body = load_body_model(model)
    joints, betas, root, trans = _known_motion(body, frames=12)
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
    from engine.amass import load_amass, save_amass
    from engine.smpl_fit import SMPLFit

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
    from engine.smpl_fit import fit_smpl

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
    from engine.smpl_fit import fit_smpl

    with pytest.raises(MotionError, match="SMPL_NEUTRAL") as info:
        fit_smpl(np.zeros((3, 22, 3)), tmp_path, device="cpu")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(MotionError, match="not found") as info:
        fit_smpl(np.zeros((3, 22, 3)), tmp_path / "absent", device="cpu")
    assert str(tmp_path / "absent") in str(info.value)


def test_cli_fits_and_exports(tmp_path):
    pytest.importorskip("smplx")
    from engine.amass import load_amass
    from engine.cli import main
    from engine.smpl_fit import load_body_model

    model = make_tiny_smpl()
    fields = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **{k: getattr(model, k) for k in fields})
    joints, *_ = _known_motion(load_body_model(model), frames=4)
    np.save(tmp_path / "clip.npy", joints)
    out = tmp_path / "clip_smpl.npz"
    argv = ["fit-smpl", str(tmp_path / "clip.npy"), str(out), "--model-folder", str(tmp_path),
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert load_amass(out).poses.shape == (4, 72)
    assert main(["fit-smpl", str(tmp_path / "clip.npy"), str(out), "--model-folder",
                 str(tmp_path / "none")]) == 2  # fmt: skip


def make_tiny_smplx_file(folder, seed: int = 0) -> None:
    """SMPLX_NEUTRAL.npz of a made-up SMPL-X: the tiny SMPL's body plus 33 face/hand joints."""
    rng = np.random.default_rng(seed)
    parents = [*PARENTS, 15, 15, 15] + [20, *range(25, 39)] + [21, *range(40, 54)]
    extra = _rest_joints()[[15] * 3 + [20] * 15 + [21] * 15] + rng.normal(0, 0.03, (33, 3))
    joints = np.concatenate([_rest_joints()[:22], extra])  # (55, 3)
    cluster = np.repeat(np.arange(55), PER_JOINT)
    vertices = len(cluster)
    jitter = rng.normal(0, 0.02, (55, PER_JOINT, 3))
    jitter -= jitter.mean(axis=1, keepdims=True)
    regressor = np.zeros((55, vertices))
    regressor[cluster, np.arange(vertices)] = 1.0 / PER_JOINT
    shapedirs = rng.normal(0, 0.02, (55, 3, 20))[cluster]
    np.savez(
        folder / "SMPLX_NEUTRAL.npz", v_template=joints[cluster] + jitter.reshape(-1, 3),
        shapedirs=shapedirs, posedirs=rng.normal(0, 1e-3, (vertices, 3, 54 * 9)),
        J_regressor=regressor, weights=np.eye(55)[cluster],
        kintree_table=np.array([[-1, *parents[1:]], list(range(55))]),
        f=rng.integers(0, vertices, (200, 3)), lmk_faces_idx=np.arange(51),
        lmk_bary_coords=np.full((51, 3), 1 / 3), hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45),
    )  # fmt: skip


def test_smplx_fit_from_a_model_folder(tmp_path, monkeypatch):
    smplx = pytest.importorskip("smplx")
    from engine.smpl_fit import fit_smpl, load_body_model

    make_tiny_smplx_file(tmp_path)
    # SMPL-X always adds joints at real-model vertex ids; point them into the small mesh.
    small = {
        k: min(int(v), 55 * PER_JOINT - 1) for k, v in smplx.vertex_ids.vertex_ids["smplx"].items()
    }
    monkeypatch.setitem(smplx.vertex_ids.vertex_ids, "smplx", small)
    body = load_body_model(tmp_path, "smplx")
    joints, betas, root, trans = _known_motion(body, frames=6)
    fit = fit_smpl(joints, tmp_path, "smplx", device="cpu")
    assert fit.poses.shape == (6, 165) and fit.model_type == "smplx"
    assert np.all(fit.poses[:, 66:] == 0)  # jaw, eyes and fingers stay at rest
    assert fit.joint_error_m < 0.01
    np.testing.assert_allclose(fit.trans, trans, atol=0.01)
